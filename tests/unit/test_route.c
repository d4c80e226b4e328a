/* Routing: the routing section of the configuration (defaults, every
 * field, the errors with their messages), the rules (first match wins,
 * refuse, use, strategy, cheap first but not for streams), the strategies'
 * orders (priority, cheapest by the request's expected cost, fastest by
 * measured latency with unmeasured offerings first, weighted draws), and
 * the breaker's states (closed, open after N failures, half-open with a
 * single probe, closed again or reopened). */
#include "conf/config.h"
#include "route/health.h"
#include "route/route.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static tg_config *parse_ok(const char *text)
{
    tg_config *c = NULL;
    tg_errmsg err = {{0}};
    int rc = tg_config_parse("t.yaml", tg_str_c(text), &c, &err);
    if (rc) fail_msg("unexpected error: %s", err.msg);
    return c;
}

static void expect_error(const char *text, const char *msg)
{
    tg_config *c = NULL;
    tg_errmsg err = {{0}};
    assert_int_equal(tg_config_parse("t.yaml", tg_str_c(text), &c, &err), TG_EINVAL);
    assert_null(c);
    assert_string_equal(err.msg, msg);
}

#define HASH "179510ee3e248a7bfae1a518d344461ddef0e32bbf53b40845f2d3e157c5973f"
#define BASE                                                                                       \
    "providers:\n"                                                                                 \
    "  - {name: a, base_url: http://127.0.0.1:1/v1}\n"                                             \
    "  - {name: b, base_url: http://127.0.0.1:2/v1}\n"                                             \
    "  - {name: off, base_url: http://127.0.0.1:3/v1, api_key_env: TG_TEST_ROUTE_UNSET}\n"         \
    "offerings:\n"                                                                                 \
    "  - {id: a/m, provider: a, model: m, price: {input: '1.00', output: '2.00'}}\n"               \
    "  - {id: b/m, provider: b, model: m, price: {input: '0.10', output: '8.00'}}\n"               \
    "  - {id: off/m, provider: off, model: m}\n"                                                   \
    "models:\n"                                                                                    \
    "  - {name: prio, offerings: [off/m, a/m, b/m]}\n"                                             \
    "  - {name: cheap, strategy: cheapest, offerings: [a/m, b/m]}\n"                               \
    "  - {name: fastest, strategy: fastest, offerings: [a/m, b/m]}\n"                              \
    "  - name: weighted\n"                                                                         \
    "    strategy: weighted\n"                                                                     \
    "    offerings: [{offering: a/m, weight: 3}, b/m]\n"                                           \
    "  - {name: none, offerings: [off/m]}\n"                                                       \
    "plans:\n"                                                                                     \
    "  - {id: starter}\n"                                                                          \
    "apps:\n"                                                                                      \
    "  - {id: app}\n"                                                                              \
    "customers:\n"                                                                                 \
    "  - {id: acme, app: app, plan: starter}\n"                                                    \
    "keys:\n"                                                                                      \
    "  - {id: k, sha256: " HASH "}\n"

static void test_defaults(void **state)
{
    (void)state;
    tg_config *c = parse_ok(BASE);
    const tg_routing_conf *r = &c->routing;
    assert_int_equal(r->attempts, 3);
    assert_int_equal(r->deadline_ms, 30000);
    assert_int_equal(r->backoff_ms, 50);
    assert_int_equal(r->max_backoff_ms, 2000);
    assert_int_equal(r->breaker_failures, 5);
    assert_int_equal(r->breaker_cooldown_ms, 30000);
    assert_int_equal(r->nrules, 0);
    const tg_model *w = tg_config_model(c, TG_STR("weighted"));
    assert_int_equal(w->strategy, TG_STRATEGY_WEIGHTED);
    assert_int_equal(w->weights[0], 3);
    assert_int_equal(w->weights[1], 1);
    assert_int_equal(tg_config_model(c, TG_STR("prio"))->strategy, TG_STRATEGY_PRIORITY);
    assert_int_equal(c->providers[0].dialect, TG_DIALECT_OPENAI);
    assert_string_equal(c->providers[0].anthropic_version, "2023-06-01");
    assert_int_equal(c->providers[0].default_max_tokens, 4096);
    tg_config_unref(c);
}

static void test_full(void **state)
{
    (void)state;
    tg_config *c = parse_ok(BASE
                            "routing:\n"
                            "  attempts: 5\n"
                            "  deadline_ms: 1000\n"
                            "  backoff_ms: 0\n"
                            "  max_backoff_ms: 10\n"
                            "  breaker: {failures: 2, cooldown_ms: 100}\n"
                            "  rules:\n"
                            "    - {match: {plan: starter, model: prio}, refuse: true}\n"
                            "    - {match: {feature: classify}, use: cheap, strategy: weighted}\n"
                            "    - match: {customer: acme, key: k}\n"
                            "      try_first: cheap\n"
                            "      escalate_on: [length, invalid_json, {content_matches: 'no+'}]\n");
    const tg_routing_conf *r = &c->routing;
    assert_int_equal(r->attempts, 5);
    assert_int_equal(r->deadline_ms, 1000);
    assert_int_equal(r->backoff_ms, 0);
    assert_int_equal(r->max_backoff_ms, 10);
    assert_int_equal(r->breaker_failures, 2);
    assert_int_equal(r->breaker_cooldown_ms, 100);
    assert_int_equal(r->nrules, 3);
    assert_true(r->rules[0].refuse);
    assert_string_equal(r->rules[0].plan, "starter");
    assert_ptr_equal(r->rules[0].model, tg_config_model(c, TG_STR("prio")));
    assert_string_equal(r->rules[1].feature, "classify");
    assert_ptr_equal(r->rules[1].use, tg_config_model(c, TG_STR("cheap")));
    assert_true(r->rules[1].has_strategy);
    assert_int_equal(r->rules[1].strategy, TG_STRATEGY_WEIGHTED);
    assert_int_equal(r->rules[2].escalate_on,
                     TG_ESCALATE_LENGTH | TG_ESCALATE_JSON | TG_ESCALATE_REGEX);
    assert_string_equal(r->rules[2].regex_src, "no+");
    assert_non_null(r->rules[2].regex);
    tg_config_unref(c);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error(BASE "routing: {attempts: 0}\n",
                 "t.yaml:25: routing.attempts: must be between 1 and 10");
    expect_error(BASE "routing: {retries: 2}\n",
                 "t.yaml:25: routing: unknown field 'retries' (expected one of: attempts, "
                 "deadline_ms, backoff_ms, max_backoff_ms, breaker, rules)");
    expect_error(BASE "routing: {breaker: {failures: 0}}\n",
                 "t.yaml:25: routing.breaker.failures: must be between 1 and 1000");
    expect_error(BASE "routing:\n  rules:\n    - {match: {plan: gold}, refuse: true}\n",
                 "t.yaml:27: routing.rules[0].match.plan: unknown plan 'gold'");
    expect_error(BASE "routing:\n  rules:\n    - {match: {customer: nobody}, refuse: true}\n",
                 "t.yaml:27: routing.rules[0].match.customer: unknown customer 'nobody'");
    expect_error(BASE "routing:\n  rules:\n    - {match: {key: nokey}, refuse: true}\n",
                 "t.yaml:27: routing.rules[0].match.key: unknown key 'nokey'");
    expect_error(BASE "routing:\n  rules:\n    - {match: {feature: x}}\n",
                 "t.yaml:27: routing.rules[0]: does nothing: set refuse, use, strategy or try_first");
    expect_error(BASE "routing:\n  rules:\n    - {refuse: true, use: cheap}\n",
                 "t.yaml:27: routing.rules[0]: refuse: true cannot be combined with use, strategy "
                 "or try_first");
    expect_error(BASE "routing:\n  rules:\n    - {try_first: cheap}\n",
                 "t.yaml:27: routing.rules[0]: try_first needs escalate_on (the checks that send a "
                 "request on to the model asked)");
    expect_error(BASE "routing:\n  rules:\n    - {escalate_on: [length], use: cheap}\n",
                 "t.yaml:27: routing.rules[0]: escalate_on needs try_first (the model to try first)");
    expect_error(BASE "routing:\n  rules:\n    - {try_first: cheap, escalate_on: [lenght]}\n",
                 "t.yaml:27: routing.rules[0].escalate_on[0]: must be length, invalid_json or "
                 "{content_matches: REGEX}");
    expect_error(BASE "routing:\n  rules:\n    - {try_first: cheap, escalate_on: [{content_matches: "
                      "'a('}]}\n",
                 "t.yaml:27: routing.rules[0].escalate_on[0].content_matches: is not a valid POSIX "
                 "extended regex: Unmatched ( or \\(");
    expect_error(BASE "routing:\n  rules:\n    - {match: {model: cheap}, try_first: cheap, "
                      "escalate_on: [length]}\n",
                 "t.yaml:27: routing.rules[0]: try_first names the model the request would "
                 "escalate to");
    expect_error(BASE "routing:\n  rules:\n    - {use: nomodel}\n",
                 "t.yaml:27: routing.rules[0].use: unknown model 'nomodel' (defined: prio, cheap, "
                 "fastest, weighted, none)");
    expect_error(BASE "routing:\n  rules:\n    - {strategy: fastest-ish}\n",
                 "t.yaml:27: routing.rules[0].strategy: must be one of priority, cheapest, "
                 "fastest, weighted");
}

static tg_route_ctx ctx_of(const tg_config *c)
{
    return (tg_route_ctx){.key = &c->keys[0], .max_tokens = -1, .prompt_tokens = 10};
}

static void test_rules(void **state)
{
    (void)state;
    tg_config *c = parse_ok(BASE
                            "routing:\n"
                            "  rules:\n"
                            "    - {match: {plan: starter, model: prio}, refuse: true}\n"
                            "    - {match: {feature: classify}, use: cheap}\n"
                            "    - {match: {feature: classify}, refuse: true}\n"
                            "    - {match: {customer: acme}, strategy: weighted}\n"
                            "    - {match: {feature: extract}, try_first: cheap, escalate_on: [length]}\n");
    tg_route_ctx x = ctx_of(c);
    tg_route_choice ch;
    assert_int_equal(tg_route_choose(c, &x, TG_STR("nothing"), &ch), TG_ROUTE_UNKNOWN_MODEL);
    assert_int_equal(tg_route_choose(c, &x, TG_STR("prio"), &ch), TG_ROUTE_OK);
    assert_null(ch.rule);
    x.plan = TG_STR("starter");
    assert_int_equal(tg_route_choose(c, &x, TG_STR("prio"), &ch), TG_ROUTE_REFUSED);
    assert_int_equal(ch.rule->line, 27);
    /* the first match wins: rule 2 serves, rule 3 is never reached */
    x = ctx_of(c);
    x.feature = TG_STR("classify");
    assert_int_equal(tg_route_choose(c, &x, TG_STR("prio"), &ch), TG_ROUTE_OK);
    assert_string_equal(ch.asked->name, "prio");
    assert_string_equal(ch.model->name, "cheap");
    assert_int_equal(ch.strategy, TG_STRATEGY_CHEAPEST);
    x = ctx_of(c);
    x.customer = TG_STR("acme");
    assert_int_equal(tg_route_choose(c, &x, TG_STR("prio"), &ch), TG_ROUTE_OK);
    assert_string_equal(ch.model->name, "prio");
    assert_int_equal(ch.strategy, TG_STRATEGY_WEIGHTED);
    x = ctx_of(c);
    x.feature = TG_STR("extract");
    assert_int_equal(tg_route_choose(c, &x, TG_STR("fastest"), &ch), TG_ROUTE_OK);
    assert_string_equal(ch.first->name, "cheap");
    assert_string_equal(ch.model->name, "fastest");
    x.stream = true; /* streams are never sent cheap first */
    assert_int_equal(tg_route_choose(c, &x, TG_STR("fastest"), &ch), TG_ROUTE_OK);
    assert_null(ch.first);
    tg_config_unref(c);
}

static void test_order(void **state)
{
    (void)state;
    tg_config *c = parse_ok(BASE);
    tg_route_ctx x = ctx_of(c);
    tg_rng rng = {1};
    const tg_offering *o[TG_ROUTE_MAX];
    tg_errmsg why;
    /* priority: as listed, the unavailable provider left out */
    assert_int_equal(tg_route_order(tg_config_model(c, TG_STR("prio")), TG_STRATEGY_PRIORITY, &x,
                                    &rng, 0, o, &why), 2);
    assert_string_equal(o[0]->id, "a/m");
    assert_string_equal(o[1]->id, "b/m");
    assert_int_equal(tg_route_order(tg_config_model(c, TG_STR("none")), TG_STRATEGY_PRIORITY, &x,
                                    &rng, 0, o, &why), 0);
    assert_string_equal(why.msg, "no provider is available for model none: provider off needs "
                                 "its API key in the environment variable TG_TEST_ROUTE_UNSET");
    /* cheapest: b's input is cheaper, its output dearer; the request's shape decides */
    const tg_model *cheap = tg_config_model(c, TG_STR("cheap"));
    x.prompt_tokens = 100000, x.max_tokens = 10; /* a: 0.1 + 0.00002; b: 0.01 + 0.00008 */
    tg_route_order(cheap, TG_STRATEGY_CHEAPEST, &x, &rng, 0, o, &why);
    assert_string_equal(o[0]->id, "b/m");
    assert_int_equal(tg_route_expected_cost(o[0], &x), 10000000 + 80000);
    x.prompt_tokens = 10, x.max_tokens = 10000; /* a: 0.00001 + 0.02; b: 0.000001 + 0.08 */
    tg_route_order(cheap, TG_STRATEGY_CHEAPEST, &x, &rng, 0, o, &why);
    assert_string_equal(o[0]->id, "a/m");
    x.max_tokens = -1; /* 256 expected */
    assert_int_equal(tg_route_expected_cost(o[0], &x), 10000 + 512000); /* 10 x $1/M + 256 x $2/M */
    /* weighted: 3:1 over many draws */
    const tg_model *w = tg_config_model(c, TG_STR("weighted"));
    int first_a = 0;
    for (int i = 0; i < 4000; i++) {
        assert_int_equal(tg_route_order(w, TG_STRATEGY_WEIGHTED, &x, &rng, 0, o, &why), 2);
        assert_ptr_not_equal(o[0], o[1]);
        first_a += !strcmp(o[0]->id, "a/m");
    }
    assert_in_range(first_a, 2800, 3200);
    tg_config_unref(c);
}

static void test_fastest(void **state)
{
    (void)state;
    tg_config *c = parse_ok(BASE);
    tg_health_table *t = tg_health_table_new();
    for (size_t i = 0; i < c->nofferings; i++) c->offerings[i].health = tg_health_get(t, c->offerings[i].id);
    const tg_model *m = tg_config_model(c, TG_STR("fastest"));
    tg_route_ctx x = ctx_of(c);
    tg_rng rng = {1};
    const tg_offering *o[TG_ROUTE_MAX];
    tg_errmsg why;
    /* neither measured: as listed */
    tg_route_order(m, TG_STRATEGY_FASTEST, &x, &rng, 0, o, &why);
    assert_string_equal(o[0]->id, "a/m");
    /* a measured, b not: b first, to be measured */
    tg_health_success(tg_health_get(t, "a/m"), false, 1000, 1000, 10);
    tg_route_order(m, TG_STRATEGY_FASTEST, &x, &rng, 0, o, &why);
    assert_string_equal(o[0]->id, "b/m");
    /* b has a slower first byte but is faster per token: max_tokens decides */
    tg_health_success(tg_health_get(t, "b/m"), false, 5000, 100, 10); /* 10 us a token */
    x.max_tokens = 10; /* a: 1000 + 100 * 10; b: 5000 + 10 * 10 */
    tg_route_order(m, TG_STRATEGY_FASTEST, &x, &rng, 0, o, &why);
    assert_string_equal(o[0]->id, "a/m");
    x.max_tokens = 1000; /* a: 1000 + 100000; b: 5000 + 10000 */
    tg_route_order(m, TG_STRATEGY_FASTEST, &x, &rng, 0, o, &why);
    assert_string_equal(o[0]->id, "b/m");
    tg_config_unref(c);
    tg_health_table_free(t);
}

static void test_breaker(void **state)
{
    (void)state;
    tg_health_table *t = tg_health_table_new();
    tg_health *h = tg_health_get(t, "x");
    assert_ptr_equal(tg_health_get(t, "x"), h);
    tg_health_view v;
    /* closed: admitted; two failures do not open it at threshold 3, a success clears them */
    assert_int_equal(tg_health_admit(h, 0), TG_ADMIT_YES);
    tg_health_failure(h, false, 0, 3, 1000, "http_500");
    tg_health_failure(h, false, 0, 3, 1000, "http_500");
    tg_health_success(h, false, 0, 0, 0);
    tg_health_view_of(h, 0, &v);
    assert_int_equal(v.state, TG_BREAKER_CLOSED);
    assert_int_equal(v.failures, 0);
    assert_int_equal(v.samples, 0); /* no ttft: no latency sample */
    /* three in a row open it until now + cooldown */
    for (int i = 0; i < 3; i++) tg_health_failure(h, false, 100, 3, 1000, "connect");
    tg_health_view_of(h, 100, &v);
    assert_int_equal(v.state, TG_BREAKER_OPEN);
    assert_int_equal(v.open_until_ms, 1100);
    assert_int_equal(v.opens, 1);
    assert_string_equal(v.last_error, "connect");
    assert_int_equal(tg_health_admit(h, 1099), TG_ADMIT_NO);
    /* half-open: one probe, nobody else */
    tg_health_view_of(h, 1100, &v);
    assert_int_equal(v.state, TG_BREAKER_HALF_OPEN);
    assert_int_equal(tg_health_admit(h, 1100), TG_ADMIT_PROBE);
    assert_int_equal(tg_health_admit(h, 1100), TG_ADMIT_NO);
    /* a probe released without a verdict frees the slot */
    tg_health_release(h, true);
    assert_int_equal(tg_health_admit(h, 1200), TG_ADMIT_PROBE);
    /* a failed probe opens it again */
    tg_health_failure(h, true, 1200, 3, 1000, "timeout_first_byte");
    tg_health_view_of(h, 1200, &v);
    assert_int_equal(v.state, TG_BREAKER_OPEN);
    assert_int_equal(v.opens, 2);
    assert_int_equal(tg_health_admit(h, 2199), TG_ADMIT_NO);
    /* a late failure of a call admitted before does not extend it */
    tg_health_failure(h, false, 1500, 3, 1000, "reset");
    assert_int_equal(tg_health_admit(h, 2200), TG_ADMIT_PROBE);
    /* a probe that succeeds closes it; latency sampled */
    tg_health_success(h, true, 2000, 1000, 100);
    tg_health_view_of(h, 2200, &v);
    assert_int_equal(v.state, TG_BREAKER_CLOSED);
    assert_int_equal(v.failures, 0);
    assert_int_equal(v.ttft_us, 2000);
    assert_int_equal(v.us_per_token, 10);
    assert_int_equal(tg_health_admit(h, 2200), TG_ADMIT_YES);
    /* the average moves a fifth of the way to each new sample */
    tg_health_success(h, false, 7000, 0, 0);
    tg_health_view_of(h, 2200, &v);
    assert_int_equal(v.ttft_us, 3000);
    assert_int_equal(v.samples, 2);
    tg_health_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults), cmocka_unit_test(test_full),
        cmocka_unit_test(test_errors),   cmocka_unit_test(test_rules),
        cmocka_unit_test(test_order),    cmocka_unit_test(test_fastest),
        cmocka_unit_test(test_breaker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
