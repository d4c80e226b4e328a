/* libFuzzer target: a plan made through the admin API (the body of PUT
 * /admin/v1/plans/{id}, conf/plans.c tg_config_add_plans), read after a
 * small configuration file with two models and a file plan.
 * Checks: no crash, no leak; a plan read is found by its id as an API
 * plan, with a credit above 0, thresholds ascending in 1..1000, a degrade
 * target among its models (when it lists models), a hard cap above 0; a
 * refusal names the plan and leaves the snapshot without API plans. */
#include "conf/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char base_text[] =
    "providers: [{name: p, base_url: \"http://127.0.0.1:1/v1\"}]\n"
    "offerings: [{id: o, provider: p, model: m}]\n"
    "models: [{name: fast, offerings: [o]}, {name: premium, offerings: [o]}]\n"
    "plans: [{id: starter}]\n";

static void check(const tg_plan *p)
{
    if (p->credit <= 0 || p->fee < 0 || p->included < 0 || p->nthresholds > TG_MAX_THRESHOLDS)
        abort();
    for (size_t i = 0; i < p->nthresholds; i++)
        if (p->thresholds[i] < 1 || p->thresholds[i] > 1000 ||
            (i && p->thresholds[i] <= p->thresholds[i - 1]))
            abort();
    if (p->cap == TG_CAP_USD && p->cap_usd <= 0) abort();
    if (p->cap == TG_CAP_CREDITS && p->cap_credits <= 0) abort();
    if (p->degrade_to && p->nmodels) {
        bool in = false;
        for (size_t i = 0; i < p->nmodels; i++)
            in |= p->models[i] == p->degrade_to;
        if (!in) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tg_config *c;
    tg_errmsg err;
    if (tg_config_parse("t.yaml", tg_str_make(base_text, sizeof base_text - 1), &c, &err)) abort();
    tg_plan_def def = {TG_STR("fz"), tg_str_make((const char *)data, size)};
    if (!tg_config_add_plans(c, &def, 1, &err)) {
        const tg_plan *p = tg_config_plan(c, TG_STR("fz"));
        if (!p || !tg_config_plan_api(c, p) || c->napi_plans != 1) abort();
        check(p);
    } else if (c->napi_plans || c->api_plans || strncmp(err.msg, "API plan 'fz'", 13)) {
        abort();
    }
    tg_config_unref(c);
    return 0;
}
