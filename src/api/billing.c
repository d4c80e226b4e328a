/* The gateway's side of plans and wallets outside the request path: the
 * terms the store burns by (each record's app and plan, from the current
 * configuration), the live accounts loaded from the store at start, and
 * the ledger's tick, which brings grants added by other processes (the
 * CLI) into the accounts and writes the expiry of grants that ran out.
 * See bill/accounts.h and store/wallet.h. */
#include "api/api.h"

#include "base/clock.h"
#include "base/log.h"

#include <stdlib.h>

#define EXPIRY_GRACE_MS (15 * 60 * 1000) /* a request that began before an expiry may use the grant */
#define TICK_MS 1000

static void terms(void *ud, tg_str app, tg_str plan, tg_store_terms *out)
{
    tg_config *c = tg_gateway_config(ud);
    const tg_app *a = tg_config_app(c, app);
    const tg_plan *p = plan.n ? tg_config_plan(c, plan) : NULL;
    out->anchor_day = a ? a->period_anchor_day : 1;
    out->included = p ? p->included : 0;
    tg_config_unref(c);
}

void tg_billing_store(tg_gateway *gw, tg_store *s) { tg_store_set_terms(s, terms, gw); }

/* The plan of a customer the gateway knows (configured, or created at
 * runtime), in c; NULL for none. */
static const tg_plan *plan_of(tg_gateway *gw, const tg_config *c, tg_str customer)
{
    const tg_customer *cu = tg_config_customer(c, customer);
    if (cu) return cu->plan;
    tg_customer_info info;
    if (gw->customers && tg_customers_get(gw->customers, customer, &info) && info.plan[0])
        return tg_config_plan(c, tg_str_c(info.plan));
    return NULL;
}

typedef struct {
    tg_gateway *gw;
    tg_config *cfg;
    tg_store *store;
    int64_t now;
    size_t accounts;
    tg_errmsg *err;
} loader;

static int load_account(void *ud, tg_str app, tg_str customer)
{
    loader *l = ud;
    const tg_app *a = tg_config_app(l->cfg, app);
    const tg_plan *p = plan_of(l->gw, l->cfg, customer);
    if (!a || !p) return TG_OK; /* no plan: nothing to enforce */
    tg_account *acc = tg_accounts_get(l->gw->accounts, app, customer);
    if (!acc) return TG_ENOMEM;
    tg_period per;
    tg_period_at(a->period_anchor_day, l->now, &per);
    tg_store_period_sums u;
    tg_store_grant *g;
    size_t n;
    int rc = tg_store_grants(l->store, app, customer, &g, &n, l->err);
    for (size_t i = 0; !rc && i < n; i++)
        if (g[i].g.left > 0) rc = tg_account_add_grant(acc, &g[i].g);
    free(g);
    if (!rc) rc = tg_store_period_use(l->store, app, customer, per.name, &u, l->err);
    if (rc) return rc;
    tg_account_set_use(acc, p, &per, u.included_used + u.grants_used + u.overage, u.charge);
    tg_webhooks_loaded(l->gw, a, p, customer, per.name, u.included,
                       u.included_used + u.grants_used + u.overage);
    l->accounts++;
    return TG_OK;
}

int tg_billing_load(tg_gateway *gw, tg_store *s, tg_errmsg *err)
{
    if (!(gw->accounts = tg_accounts_new())) return TG_ENOMEM;
    loader l = {.gw = gw, .cfg = tg_gateway_config(gw), .store = s, .now = (int64_t)tg_clock_wall_ms(),
                .err = err};
    /* the grants there are now are loaded below: the tick polls past them */
    int rc = tg_store_wallet_poll(s, &gw->grants_seen, NULL, NULL, err);
    if (!rc) rc = tg_store_each_account(s, load_account, &l, err);
    tg_config_unref(l.cfg);
    if (rc == TG_ENOMEM) tg_errmsg_set(err, "loading accounts: out of memory");
    if (!rc && l.accounts) tg_log(TG_LOG_INFO, "billing: %zu accounts on plans loaded", l.accounts);
    return rc;
}

/* A grant another handle added (the admin API, the CLI): into its
 * customer's live account. Only that grant: the account's others are ahead
 * of the store (what requests burned is stored a batch later), and one it
 * emptied and dropped must not come back. */
static int new_grant(void *ud, tg_str app, tg_str customer, tg_str id)
{
    loader *l = ud;
    tg_account *acc = tg_accounts_get(l->gw->accounts, app, customer);
    tg_store_grant *g;
    size_t n;
    if (!acc) return TG_ENOMEM;
    int rc = tg_store_grants(l->store, app, customer, &g, &n, l->err);
    for (size_t i = 0; !rc && i < n; i++)
        if (tg_str_eq(tg_str_c(g[i].g.id), id)) rc = tg_account_add_grant(acc, &g[i].g);
    free(g);
    return rc;
}

static void tick(void *ud, tg_store *s)
{
    tg_gateway *gw = ud;
    tg_errmsg err;
    loader l = {.gw = gw, .store = s, .err = &err};
    size_t n;
    if (tg_store_wallet_poll(s, &gw->grants_seen, new_grant, &l, &err))
        tg_log(TG_LOG_WARN, "billing: reading new grants: %s", err.msg);
    if (tg_store_expire_grants(s, (int64_t)tg_clock_wall_ms(), EXPIRY_GRACE_MS, &n, &err))
        tg_log(TG_LOG_WARN, "billing: writing grant expiries: %s", err.msg);
    else if (n)
        tg_log(TG_LOG_INFO, "billing: %zu grants expired", n);
}

void tg_billing_start(tg_gateway *gw) { tg_ledger_set_tick(gw->ledger, tick, gw, TICK_MS); }
