/* Wallets: the credits a customer can spend, as grants, and the order they
 * burn in (docs/plans.md, Wallets).
 *
 * A grant is an amount of credits from one source: the period's included
 * credits (one grant per period, "inc:2026-11", usable for that period
 * only), a paid top-up, or a promotional grant; paid and promotional grants
 * may expire. A grant covers consumption settled at t with created_ms <= t
 * and, when it expires, t < expires_ms: expiry applies at its instant.
 *
 * Burn order: included credits first; then grants by priority (highest
 * first), then the one expiring soonest (one that never expires last),
 * then the oldest, then by id, so the order is total and every reader of
 * the same grants burns them alike. What no grant covers is overage.
 *
 * This file is the arithmetic alone, shared by the gateway's live balances
 * (bill/accounts.h) and the ledger, which writes each burn as a
 * transaction of the double-entry wallet ledger (store/wallet.c): every
 * transaction's entries sum to zero, and a balance is the sum of its
 * account's entries, never a counter of its own. */
#ifndef TG_BILL_WALLET_H
#define TG_BILL_WALLET_H

#include "base/err.h"
#include "conf/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { TG_GRANT_INCLUDED = 0, TG_GRANT_PAID, TG_GRANT_PROMO, TG_GRANT_KIND_COUNT_ } tg_grant_kind;
/* "included", "paid", "promo"; and back (TG_EINVAL for anything else). */
const char *tg_grant_kind_name(tg_grant_kind k);
int tg_grant_kind_parse(tg_str s, tg_grant_kind *out);

#define TG_GRANT_ID_MAX 40

typedef struct {
    char id[TG_GRANT_ID_MAX + 1]; /* "inc:2026-11", or "g_" and 32 hex digits */
    tg_grant_kind kind;
    int64_t priority;             /* higher burns first (not for included) */
    int64_t created_ms;           /* usable from */
    int64_t expires_ms;           /* usable until (exclusive); 0: never */
    tg_ncredits granted;          /* > 0 */
    tg_ncredits left;             /* 0..granted: what burns and expiry have not taken */
} tg_grant;

/* Whether g covers consumption settled at t_ms. */
static inline bool tg_grant_usable(const tg_grant *g, int64_t t_ms)
{
    return g->left > 0 && g->created_ms <= t_ms && (!g->expires_ms || t_ms < g->expires_ms);
}

/* Burn order: < 0 when a burns before b. */
int tg_grant_burn_cmp(const tg_grant *a, const tg_grant *b);
/* Sorts g[0..n) into burn order. */
void tg_wallet_order(tg_grant *g, size_t n);

/* Burns amount (>= 0) at t_ms from g[0..n), which must be in burn order:
 * takes from each usable grant in turn, adds what it took from g[i] to
 * take[i] (when take is not NULL) and lowers g[i].left. Returns the part no
 * grant covered: the overage. */
tg_ncredits tg_wallet_burn(tg_grant *g, size_t n, tg_ncredits amount, int64_t t_ms,
                           tg_ncredits *take);

/* What g[0..n) can still cover at t_ms. */
tg_ncredits tg_wallet_available(const tg_grant *g, size_t n, int64_t t_ms);

/* A top-up as a person gives it (the admin API, `tollgate topup`): credits
 * (a decimal, > 0), what was paid (USD; absent: nothing), promotional or
 * paid, a priority (-1000000..1000000) and an expiry ("YYYY-MM-DD" or
 * "YYYY-MM-DDTHH:MM:SSZ", after now; absent: never). Fills *g with a new
 * random id ("g_" and 32 hex digits), created now, and *paid. TG_EINVAL
 * with err naming the field and what is wrong. A promotional grant is not
 * paid for: paid must then be absent or 0. */
typedef struct {
    tg_str credits, paid, expires;
    bool promo;
    int64_t priority;
} tg_topup;
int tg_grant_from_topup(const tg_topup *t, int64_t now_ms, tg_grant *g, tg_nanos *paid,
                        tg_errmsg *err);

/* The id of the included grant of a period: "inc:" and its name. */
void tg_grant_included_id(const char *period, char out[TG_GRANT_ID_MAX + 1]);

#endif
