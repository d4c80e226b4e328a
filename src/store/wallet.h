/* Wallets in the store: grants, and the double-entry ledger of credits
 * (bill/wallet.h has the model, migrations.c the tables). Part of the
 * store's interface, like store/records.h.
 *
 * The writer burns credits as it stores usage: every record with credits
 * is burned, in the order the put is given, from its customer's grants in
 * burn order at the record's start time (the time its credits were
 * reserved), in the same transaction as the record itself, so a record is
 * never stored without its burn and a replay that drops known records
 * burns nothing twice. Each put writes one burn transaction per customer
 * and period. The period is the record's by its app's anchor day; a
 * customer whose plan includes credits gets its period's included grant
 * (created by the first burn of the period) before anything else. Both
 * come from the terms function the gateway sets (tg_store_set_terms);
 * without one, periods are calendar months and nothing is included.
 *
 * Grants added by another handle or process (the admin API, `tollgate
 * topup`) are seen by the writer at the start of every put, in its
 * transaction, so a record is never burned without a grant committed
 * before it. tg_store_wallet_poll tells a caller (the gateway's live
 * accounts) about them. */
#ifndef TG_STORE_WALLET_H
#define TG_STORE_WALLET_H

#include "bill/period.h"
#include "bill/wallet.h"
#include "store/store.h"

/* What the writer needs to know of an (app, plan) to burn. */
typedef struct {
    uint32_t anchor_day;   /* 1..28 */
    tg_ncredits included;  /* per period; 0: none */
} tg_store_terms;
/* Fills *out for app and plan (strings of a record: plan may be ""); it
 * is called on the writer's thread, during a put. */
typedef void (*tg_store_terms_fn)(void *ud, tg_str app, tg_str plan, tg_store_terms *out);
void tg_store_set_terms(tg_store *s, tg_store_terms_fn fn, void *ud);

/* A grant as the store has it. */
typedef struct {
    tg_grant g;            /* left: what its entries leave it */
    tg_nanos paid;
    char memo[TG_TAG_MAX + 1];
    int64_t closed_ms;     /* its expiry is written; 0: open */
} tg_store_grant;

/* Adds a grant to (app, customer) at t_ms: its row and the transaction
 * that funds it from its source, in one transaction. g->id must be new
 * for the customer (TG_EINVAL with err saying so otherwise); g->left is
 * ignored (it starts at g->granted). TG_EIO. */
int tg_store_add_grant(tg_store *s, tg_str app, tg_str customer, const tg_grant *g,
                       tg_nanos paid, tg_str memo, int64_t t_ms, tg_errmsg *err);

/* Calls fn for every (app, customer) the store knows: seen in usage, or
 * holding a grant. */
int tg_store_each_account(tg_store *s, int (*fn)(void *ud, tg_str app, tg_str customer), void *ud,
                          tg_errmsg *err);

/* The grants of (app, customer), in burn order, in *out (malloc'd; the
 * caller frees it; NULL when *n is 0). TG_EIO, TG_ENOMEM. */
int tg_store_grants(tg_store *s, tg_str app, tg_str customer, tg_store_grant **out, size_t *n,
                    tg_errmsg *err);

/* Writes the expiry of every grant that expired before now_ms - grace_ms
 * and is still open: what it had left moves to "expired" (a transaction
 * at its expiry instant, even when written later), and it is closed.
 * *n is how many grants closed. TG_EIO. */
int tg_store_expire_grants(tg_store *s, int64_t now_ms, int64_t grace_ms, size_t *n,
                           tg_errmsg *err);

/* Calls fn for every grant transaction (not the included ones the writer
 * makes itself) numbered above *seen, and moves *seen past them; the
 * writer forgets what it knew of those customers' grants. Start *seen at
 * 0 to see every grant there is. TG_EIO. */
int tg_store_wallet_poll(tg_store *s, int64_t *seen,
                         int (*fn)(void *ud, tg_str app, tg_str customer, tg_str grant_id),
                         void *ud, tg_errmsg *err);

/* A customer's period, as the wallet ledger has it. */
typedef struct {
    tg_ncredits included;      /* the period's included grant; 0: none yet */
    tg_ncredits included_used; /* burned from it */
    tg_ncredits grants_used;   /* burned from other grants */
    tg_ncredits overage;       /* burned past every grant */
    int64_t records;           /* usage records burned in the period */
    tg_nanos charge;           /* and their charge */
} tg_store_period_sums;

int tg_store_period_use(tg_store *s, tg_str app, tg_str customer, const char *period,
                        tg_store_period_sums *out, tg_errmsg *err);

/* Checks the whole wallet ledger: every transaction's entries sum to zero
 * and no grant's balance is below zero or above what it granted; *ntx and
 * *ngrants say how many there are. TG_EINVAL with err naming the first
 * transaction or grant that breaks it; TG_EIO. For tests and `tollgate
 * wallet --check`. */
int tg_store_wallet_check(tg_store *s, int64_t *ntx, int64_t *ngrants, tg_errmsg *err);

#endif
