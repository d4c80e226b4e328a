/* Agent runs on the request path (gate/runs.h): a request with a run id
 * (X-Tollgate-Run or metadata.run) is a step of that run; its customer's
 * plan, or its app, may limit a run's steps and its provider cost, and a
 * run past a limit has its next step refused with a 403 that says which.
 * Every step is a usage record with the run id, so `tollgate usage --run`
 * and GET /admin/v1/runs/{id} show a run's steps, and `report --by
 * workflow` what its workflow cost. At start the runs of the last day are
 * counted again from the store, so a restart does not reset a run. */
#include "api/api.h"

#include "base/clock.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "report/records.h"
#include "store/records.h"

#include <stdio.h>
#include <stdlib.h>

bool tg_runs_gate(tg_exchange *x)
{
    const tg_tags *t = &x->attr.tags;
    if (!t->run[0] || !x->attr.app || !x->ww->gw->runs) return true;
    tg_run_limits lim = tg_runs_limits(x->attr.plan, x->attr.app);
    if (!lim.max_steps && !lim.max_cost) return true;
    tg_run_verdict v;
    tg_run_state st;
    int rc = tg_runs_admit(x->ww->gw->runs, tg_str_c(t->app), tg_str_c(t->customer), tg_str_c(t->run),
                           &lim, (int64_t)tg_clock_wall_ms(), &v, &st);
    if (rc) {
        tg_exchange_error(x, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    if (v == TG_RUN_OK) {
        x->run_counted = true;
        return true;
    }
    char msg[1024], cost[TG_MONEY_STRLEN], max[TG_MONEY_STRLEN];
    const char *whose = x->attr.plan && (v == TG_RUN_STEPS ? x->attr.plan->has_run_steps
                                                           : x->attr.plan->has_run_cost)
                            ? "plan"
                            : "app";
    const char *name = whose[0] == 'p' ? x->attr.plan->id : x->attr.app->id;
    if (v == TG_RUN_STEPS) {
        snprintf(msg, sizeof msg,
                 "Run '%s' of customer '%s' has taken %llu steps, the most the %s '%s' allows a run "
                 "(runs.max_steps). Start a new run (a new X-Tollgate-Run), or raise the limit.",
                 t->run, t->customer, (unsigned long long)st.steps, whose, name);
    } else {
        tg_money_fmt(cost, st.cost);
        tg_money_fmt(max, lim.max_cost);
        snprintf(msg, sizeof msg,
                 "Run '%s' of customer '%s' has cost %s USD over %llu steps, past the %s USD the %s "
                 "'%s' allows a run (runs.max_cost). Start a new run (a new X-Tollgate-Run), or raise "
                 "the limit.",
                 t->run, t->customer, cost, (unsigned long long)st.steps, max, whose, name);
    }
    tg_exchange_error(x, 403, "invalid_request_error",
                    v == TG_RUN_STEPS ? "run_step_limit" : "run_cost_limit", "X-Tollgate-Run", msg);
    return false;
}

void tg_runs_end(tg_exchange *x)
{
    if (!x->run_counted || !x->rec) return;
    const tg_tags *t = &x->attr.tags;
    tg_runs *runs = x->ww->gw->runs;
    tg_str app = tg_str_c(t->app), customer = tg_str_c(t->customer), run = tg_str_c(t->run);
    /* a step a later gate refused (rate limit, reservation, journal) never ran */
    if (!x->upstream_called) tg_runs_cancel(runs, app, customer, run);
    else tg_runs_cost(runs, app, customer, run, x->rec->r.cost);
}

/* ---- at start ---- */

/* A record is a step its run counted when its request passed the gates to
 * its offering (a refusal before that has none). An attempt record is no
 * step; its cost is the run's (it follows its request's record in time). */
static int note(void *ud, const tg_usage_rec *r)
{
    if (!r->tags.run[0] || !r->offering[0]) return TG_OK;
    tg_str app = tg_str_c(r->tags.app), customer = tg_str_c(r->tags.customer);
    if (r->attempt) {
        tg_runs_cost(ud, app, customer, tg_str_c(r->tags.run), r->cost);
        return TG_OK;
    }
    return tg_runs_note(ud, app, customer, tg_str_c(r->tags.run), r->cost, r->t_start_ms);
}

int tg_runs_load(tg_gateway *gw, tg_store *s, tg_errmsg *err)
{
    if (!(gw->runs = tg_runs_new())) return TG_ENOMEM;
    int64_t now = (int64_t)tg_clock_wall_ms();
    int rc = tg_store_each_record(s, now - TG_RUN_IDLE_MS, INT64_MAX, NULL, 0, note, gw->runs, err);
    if (rc == TG_ENOMEM) tg_errmsg_set(err, "loading runs: out of memory");
    return rc;
}
