/* Agent runs: the requests that share an X-Tollgate-Run id, counted so a
 * plan's (or app's) run limits can refuse the next step (docs/plans.md,
 * Agent runs).
 *
 * A run is keyed by (app, customer, run id): two customers' runs of the
 * same id are two runs. A step counts when it is admitted (so steps
 * running at once count at once); its provider cost counts when it ends.
 * A step is refused when the run already has max_steps steps, or its cost
 * has reached max_cost: the step that passes a limit is the last one let
 * through. Limits are passed at each call (they come from the request's
 * configuration snapshot).
 *
 * The registry lives in memory, sharded, each shard with a short mutex; a
 * run idle for TG_RUN_IDLE_MS is forgotten (a sweep on insertion, so
 * memory follows the runs of the last day). At start the gateway loads
 * the runs of that last day from the store (tg_runs_note), so a restart
 * forgets no live run. */
#ifndef TG_GATE_RUNS_H
#define TG_GATE_RUNS_H

#include "base/err.h"
#include "base/money.h"
#include "base/str.h"
#include "conf/config.h"

#include <stdbool.h>
#include <stdint.h>

#define TG_RUN_IDLE_MS (24LL * 3600 * 1000)

typedef struct tg_runs tg_runs;

tg_runs *tg_runs_new(void);
void tg_runs_free(tg_runs *r);

typedef enum { TG_RUN_OK = 0, TG_RUN_STEPS, TG_RUN_COST } tg_run_verdict;

/* What a run has done. */
typedef struct {
    uint64_t steps;
    tg_nanos cost;
} tg_run_state;

/* Admits a step of run (app, customer, run) under lim at now_ms: counts it
 * (*v TG_RUN_OK), or refuses it, counting nothing (*v says which limit).
 * *st is the run as the decision saw it, this step included when admitted.
 * TG_ENOMEM (nothing counted) when a new run cannot be recorded. */
int tg_runs_admit(tg_runs *r, tg_str app, tg_str customer, tg_str run, const tg_run_limits *lim,
                  int64_t now_ms, tg_run_verdict *v, tg_run_state *st);
/* Takes back a step tg_runs_admit counted, for a request a later gate
 * refused. */
void tg_runs_cancel(tg_runs *r, tg_str app, tg_str customer, tg_str run);
/* Adds a finished step's provider cost to its run. */
void tg_runs_cost(tg_runs *r, tg_str app, tg_str customer, tg_str run, tg_nanos cost);
/* Counts a step from the store (a record of the last day) at t_ms: one
 * step and its cost. TG_ENOMEM. */
int tg_runs_note(tg_runs *r, tg_str app, tg_str customer, tg_str run, tg_nanos cost, int64_t t_ms);
/* The run's state; false when the registry does not know it. */
bool tg_runs_get(tg_runs *r, tg_str app, tg_str customer, tg_str run, tg_run_state *st);

/* The limits for a customer on plan p of app a: each of the plan's fields
 * it sets, else the app's. */
tg_run_limits tg_runs_limits(const tg_plan *p, const tg_app *a);

#endif
