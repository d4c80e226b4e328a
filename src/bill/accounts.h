/* Accounts: the live balances that admit or refuse a customer's requests
 * (DESIGN.md, Budgets that hold under concurrency; docs/plans.md).
 *
 * One account per customer on a plan, shared by every worker: its
 * period's consumption (credits and charge), what requests in flight have
 * reserved, and its grants with what they have left, the period's
 * included credits first. A request reserves its worst case before it is
 * forwarded (tg_account_reserve) and settles to its actual credits and
 * charge when it ends (tg_account_settle), which burns them in the
 * wallet's order (bill/wallet.h); a reservation that cannot be had is a
 * refusal, so the sum of what is reserved and consumed never passes the
 * plan's hard cap, nor, without overage, the credits there are, whatever
 * the concurrency. A stream may grow its reservation as it goes
 * (tg_account_extend) and is cut when it cannot.
 *
 * The accounts mirror the wallet ledger in the store, which stays the
 * truth: they are loaded from it at start (tg_accounts_load) and learn of
 * grants added since through tg_account_add_grant. A crash loses only the
 * reservations in flight, whose requests the journal settles at the next
 * start. Each account has its own mutex, held for a few comparisons;
 * finding an account takes no lock (only creating one does), and accounts
 * are never freed before the registry. */
#ifndef TG_BILL_ACCOUNTS_H
#define TG_BILL_ACCOUNTS_H

#include "bill/period.h"
#include "bill/wallet.h"
#include "conf/config.h"

typedef struct tg_accounts tg_accounts;
typedef struct tg_account tg_account;

tg_accounts *tg_accounts_new(void);
void tg_accounts_free(tg_accounts *a);

/* The account of (app, customer), created empty on first use; NULL when
 * out of memory. Valid until tg_accounts_free. */
tg_account *tg_accounts_get(tg_accounts *a, tg_str app, tg_str customer);

/* A grant the account does not know yet (by id): a top-up, or one the
 * store had at start. Its left is what it has left now. TG_ENOMEM. */
int tg_account_add_grant(tg_account *acc, const tg_grant *g);
/* The period p's use as the store had it at start (credits and charge
 * consumed), after its grants were added: without the period's included
 * grant (nothing burned yet), plan's is made. */
void tg_account_set_use(tg_account *acc, const tg_plan *plan, const tg_period *p,
                        tg_ncredits credits, tg_nanos charge);

/* What a request asks of an account. */
typedef struct {
    const tg_plan *plan;   /* the customer's plan (not NULL) */
    uint32_t anchor_day;   /* its app's */
    int64_t now_ms;
    tg_ncredits credits;   /* worst case */
    tg_nanos charge;       /* worst case */
} tg_account_ask;

typedef enum {
    TG_ACCOUNT_OK = 0,
    TG_ACCOUNT_NO_CREDITS, /* past included credits and grants, and the plan has no overage */
    TG_ACCOUNT_CAP_USD,    /* the plan's hard cap in USD */
    TG_ACCOUNT_CAP_CREDITS,/* the plan's hard cap in credits */
} tg_account_verdict;

/* A request's hold on an account. */
typedef struct {
    tg_account *acc;
    char period[8];
    tg_ncredits credits;
    tg_nanos charge;
} tg_account_hold;

/* Where an account stands, for messages, headers and degrade decisions. */
typedef struct {
    tg_period period;
    tg_ncredits included, included_left; /* the period's included credits */
    tg_ncredits grants_left;             /* in other grants usable now */
    tg_ncredits used;                    /* consumed in the period */
    tg_nanos charge;                     /* charged in the period */
    tg_ncredits reserved;                /* held by requests in flight */
    tg_nanos reserved_charge;
} tg_account_state;

/* Reserves ask's worst case, or refuses and says why (nothing reserved).
 * On TG_ACCOUNT_OK *hold is the reservation. *st (when not NULL) is the
 * account as the decision saw it. */
tg_account_verdict tg_account_reserve(tg_account *acc, const tg_account_ask *ask,
                                      tg_account_hold *hold, tg_account_state *st);
/* Adds more (credits, charge) to a hold, with reserve's checks. */
tg_account_verdict tg_account_extend(tg_account_hold *hold, const tg_account_ask *more);
/* What the hold may still be settled for at most: what it holds plus what
 * the plan's limits leave (credits and charge; INT64_MAX when unlimited). */
void tg_account_room(const tg_account_hold *hold, const tg_account_ask *ask, tg_ncredits *credits,
                     tg_nanos *charge);
/* Releases the hold and consumes (credits, charge) at t_ms (the request's
 * start), burning included credits, then grants, then overage. Returns
 * the thresholds of plan (percent of included credits) that this crossed,
 * as a bitmask over plan->thresholds, each once per period. A hold of
 * another period is released without counting in this one. */
uint32_t tg_account_settle(tg_account_hold *hold, const tg_plan *plan, int64_t t_ms,
                           tg_ncredits credits, tg_nanos charge);
/* The account now (rolled to now's period first). */
void tg_account_state_of(tg_account *acc, const tg_plan *plan, uint32_t anchor_day, int64_t now_ms,
                         tg_account_state *st);

#endif
