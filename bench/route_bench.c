/* What the routing decision costs a request: the rules, the strategy's
 * order of the model's offerings, and each candidate's breaker asked
 * until one admits the call, as src/api/routing.c does per request. Timed
 * for a model with one offering (priority) and for models with three
 * offerings under each strategy, the first candidate's breaker open (so
 * every decision skips it), with a routing section of four rules that do
 * not match, the usual case of a request that no rule is for.
 *
 *     make build/bench/route_bench
 *     build/bench/route_bench [decisions]
 *
 * decisions defaults to 5,000,000 per case. Prints ns per decision. */
#include "conf/config.h"
#include "route/health.h"
#include "route/route.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char conf[] =
    "providers:\n"
    "  - {name: a, base_url: http://127.0.0.1:1/v1}\n"
    "  - {name: b, base_url: http://127.0.0.1:2/v1}\n"
    "  - {name: c, base_url: http://127.0.0.1:3/v1}\n"
    "offerings:\n"
    "  - {id: a/m, provider: a, model: m, price: {input: '0.05', output: '0.20'}}\n"
    "  - {id: b/m, provider: b, model: m, price: {input: '0.15', output: '0.60'}}\n"
    "  - {id: c/m, provider: c, model: m, price: {input: '0.30', output: '1.20'}}\n"
    "models:\n"
    "  - {name: single, offerings: [b/m]}\n"
    "  - {name: priority, offerings: [a/m, b/m, c/m]}\n"
    "  - {name: cheapest, strategy: cheapest, offerings: [c/m, b/m, a/m]}\n"
    "  - {name: fastest, strategy: fastest, offerings: [a/m, b/m, c/m]}\n"
    "  - {name: weighted, strategy: weighted, offerings: [{offering: a/m, weight: 1000}, b/m, c/m]}\n"
    "keys:\n"
    "  - {id: k, sha256: 179510ee3e248a7bfae1a518d344461ddef0e32bbf53b40845f2d3e157c5973f}\n"
    "routing:\n"
    "  rules:\n"
    "    - {match: {feature: classify}, use: single}\n"
    "    - {match: {feature: extract}, strategy: cheapest}\n"
    "    - {match: {key: k, feature: batch}, strategy: weighted}\n"
    "    - {match: {feature: draft}, try_first: single, escalate_on: [length]}\n";

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* One decision; returns the offering admitted (so the work is not elided). */
static const tg_offering *decide(const tg_config *c, const tg_route_ctx *x, tg_str model,
                                 tg_rng *rng)
{
    tg_route_choice ch;
    const tg_offering *o[TG_ROUTE_MAX];
    tg_errmsg why;
    if (tg_route_choose(c, x, model, &ch) != TG_ROUTE_OK) return NULL;
    size_t n = tg_route_order(ch.model, ch.strategy, x, rng, 1000, o, &why);
    for (size_t i = 0; i < n; i++)
        if (tg_health_admit(o[i]->health, 1000) != TG_ADMIT_NO) return o[i];
    return NULL;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 5000000;
    tg_config *c;
    tg_errmsg err;
    if (n <= 0 || tg_config_parse("route_bench", tg_str_c(conf), &c, &err)) {
        fprintf(stderr, "route_bench: %s\n", n <= 0 ? "decisions must be > 0" : err.msg);
        return 2;
    }
    tg_health_table *t = tg_health_table_new();
    for (size_t i = 0; i < c->nofferings; i++) c->offerings[i].health = tg_health_get(t, c->offerings[i].id);
    /* a/m fails until its breaker opens; b/m and c/m measured for fastest */
    for (int i = 0; i < 5; i++) tg_health_failure(tg_health_get(t, "a/m"), false, 0, 5, 3600000, "connect");
    tg_health_success(tg_health_get(t, "b/m"), false, 200000, 100000, 100);
    tg_health_success(tg_health_get(t, "c/m"), false, 300000, 100000, 100);
    tg_route_ctx x = {.key = &c->keys[0], .feature = TG_STR("summarize"), .prompt_tokens = 500,
                      .max_tokens = 256};
    static const char *const models[] = {"single", "priority", "cheapest", "fastest", "weighted"};
    tg_rng rng = {42};
    printf("routing decision (rules, order, breakers), %ld decisions each:\n", n);
    const tg_offering *b = &c->offerings[1];
    for (size_t m = 0; m < sizeof models / sizeof *models; m++) {
        tg_str name = tg_str_c(models[m]);
        long other = 0;
        double t0 = now_s();
        for (long i = 0; i < n; i++) other += decide(c, &x, name, &rng) != b;
        double dt = now_s() - t0;
        printf("  %-9s %s  %7.1f ns/decision  (%ld of them not served by b/m)\n", models[m],
               m == 0 ? "1 offering          " : "3 offerings, 1 open ", dt * 1e9 / (double)n, other);
    }
    tg_config_unref(c);
    tg_health_table_free(t);
    return 0;
}
