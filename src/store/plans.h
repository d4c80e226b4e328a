/* Plans made through the admin API, and the plans of customers created
 * at runtime, in the store (issue 4; docs/plans.md). Part of the store's
 * interface, like store/wallet.h.
 *
 * A plan is kept as the JSON body it was made with (conf/config.h,
 * tg_plan_def), validated before it is stored; a snapshot reads them all
 * after its file (tg_store_config_plans). A customer's plan is the plan
 * column of the customers table: what the admin API last set, else the
 * plan of the customer's first usage record. */
#ifndef TG_STORE_PLANS_H
#define TG_STORE_PLANS_H

#include "conf/config.h"
#include "store/store.h"

typedef struct {
    char *id, *body;
    int64_t updated_ms;
} tg_store_plan;

/* Every stored plan, sorted by id (tg_str_cmp's order), in *out
 * (malloc'd; free with tg_store_plans_free; NULL when *n is 0). TG_EIO,
 * TG_ENOMEM. */
int tg_store_plans(tg_store *s, tg_store_plan **out, size_t *n, tg_errmsg *err);
void tg_store_plans_free(tg_store_plan *p, size_t n);
/* Makes or replaces plan id. TG_EIO. */
int tg_store_plan_put(tg_store *s, tg_str id, tg_str body, int64_t now_ms, tg_errmsg *err);
/* Removes plan id; *deleted says whether there was one. TG_EIO. */
int tg_store_plan_delete(tg_store *s, tg_str id, bool *deleted, tg_errmsg *err);
/* Puts customer of app on plan ("": none) from now_ms on, adding the
 * customer if the store has not seen it (first seen now_ms), and records
 * the change in the plan history that closing a period prorates by
 * (store/close.h). TG_EIO. */
int tg_store_customer_plan(tg_store *s, tg_str app, tg_str customer, tg_str plan, int64_t now_ms,
                           tg_errmsg *err);
/* Adds the stored plans to cfg, a snapshot being built
 * (tg_config_add_plans). TG_EINVAL (a stored plan the file no longer
 * allows: err says which and why), TG_EIO, TG_ENOMEM. */
int tg_store_config_plans(tg_store *s, tg_config *cfg, tg_errmsg *err);

#endif
