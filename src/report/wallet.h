/* A customer's wallet and period, as `tollgate wallet` and the admin API
 * show them: the plan's terms, what the period consumed from included
 * credits, grants and overage (and what the overage costs), the charge,
 * and every grant with what it has left, in burn order. Read from the
 * store's wallet ledger (store/wallet.h), to which a running gateway adds
 * what it has in flight (the live part). */
#ifndef TG_REPORT_WALLET_H
#define TG_REPORT_WALLET_H

#include "bill/accounts.h"
#include "report/report.h"
#include "store/wallet.h"

typedef struct {
    char app[TG_TAG_MAX + 1], customer[TG_TAG_MAX + 1];
    const tg_plan *plan;           /* NULL: the customer has none */
    tg_period period;
    tg_store_period_sums use;
    tg_nanos overage_charge;       /* use.overage at the plan's overage price */
    tg_store_grant *grants;        /* burn order */
    size_t ngrants;
    bool live;                     /* state is the gateway's, now */
    tg_account_state state;
} tg_wallet_view;

/* Loads (app, customer)'s wallet for period name ("" or NULL: the period
 * holding now_ms, by anchor_day). TG_EINVAL (err says why) for a bad
 * period name or an overage charge past int64; TG_EIO, TG_ENOMEM. */
int tg_wallet_view_load(tg_store *s, tg_str app, tg_str customer, const tg_plan *plan,
                        uint32_t anchor_day, const char *period, int64_t now_ms,
                        tg_wallet_view *v, tg_errmsg *err);
void tg_wallet_view_release(tg_wallet_view *v);

/* As JSON (an object; credits and money as exact 9-decimal strings) or a
 * table for people. */
int tg_wallet_render(const tg_wallet_view *v, tg_report_format f, tg_buf *out);

#endif
