/* Configuration loader: the example file, defaults, every kind of error with
 * its exact message (file, line, field), availability from the environment,
 * and the small parsers (addresses, fault kinds). Run under ASan the
 * failure paths double as leak tests: every rejected file has built part of
 * a snapshot that must be freed. */
#include "conf/config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define DEMO_HASH "179510ee3e248a7bfae1a518d344461ddef0e32bbf53b40845f2d3e157c5973f"
#define ADMIN_HASH "3ccc6727fd85e14ec4d049a9975b00b20e1f1e46cd2933fd1239d254e6cde07c"

static tg_config *parse_ok(const char *text)
{
    tg_config *c = NULL;
    tg_errmsg err = {{0}};
    int rc = tg_config_parse("t.yaml", tg_str_c(text), &c, &err);
    if (rc) fail_msg("unexpected error: %s", err.msg);
    assert_non_null(c);
    return c;
}

static void expect_error(const char *text, const char *msg)
{
    tg_config *c = (tg_config *)0x1; /* must stay untouched */
    tg_errmsg err = {{0}};
    int rc = tg_config_parse("t.yaml", tg_str_c(text), &c, &err);
    assert_int_equal(rc, TG_EINVAL);
    assert_ptr_equal(c, (tg_config *)0x1);
    assert_string_equal(err.msg, msg);
}

/* The part of a valid file most error cases build on. */
#define BASE                                                                                       \
    "providers:\n"                                                                                 \
    "  - name: openai\n"                                                                           \
    "    base_url: https://api.openai.com/v1\n"                                                    \
    "offerings:\n"                                                                                 \
    "  - {id: openai/mini, provider: openai, model: gpt-4o-mini}\n"                                \
    "models:\n"                                                                                    \
    "  - {name: mini, offerings: [openai/mini]}\n"

static const char *example_path(void)
{
    const char *root = getenv("TOLLGATE_ROOT");
    static char path[512];
    snprintf(path, sizeof path, "%s/examples/tollgate.yaml", root ? root : ".");
    return path;
}

static void test_example(void **state)
{
    (void)state;
    unsetenv("OPENAI_API_KEY");
    tg_config *c = NULL;
    tg_errmsg err = {{0}};
    int rc = tg_config_load(example_path(), &c, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_string_equal(c->path, example_path());
    assert_string_equal(c->server.listen.host, "127.0.0.1");
    assert_int_equal(c->server.listen.port, 8080);
    assert_true(c->sim.enabled);
    assert_int_equal(c->sim.seed, 42);
    assert_int_equal(c->sim.ttft_ms, 120);
    assert_int_equal(c->sim.tokens_per_sec, 120);
    assert_int_equal(c->sim.listen.port, 0);

    assert_int_equal(c->nproviders, 4);
    const tg_provider *oa = tg_config_provider(c, TG_STR("openai"));
    const tg_provider *sim = tg_config_provider(c, TG_STR("sim"));
    const tg_provider *an = tg_config_provider(c, TG_STR("anthropic"));
    const tg_provider *san = tg_config_provider(c, TG_STR("sim-anthropic"));
    assert_int_equal(an->dialect, TG_DIALECT_ANTHROPIC);
    assert_string_equal(an->anthropic_version, "2023-06-01");
    assert_int_equal(san->dialect, TG_DIALECT_ANTHROPIC);
    assert_true(san->builtin_sim);
    assert_int_equal(sim->dialect, TG_DIALECT_OPENAI);
    assert_non_null(oa);
    assert_non_null(sim);
    assert_string_equal(oa->base_url, "https://api.openai.com/v1");
    assert_string_equal(oa->api_key_env, "OPENAI_API_KEY");
    assert_false(oa->available); /* unset above */
    assert_null(oa->api_key);
    assert_true(sim->builtin_sim);
    assert_null(sim->base_url);
    assert_true(sim->available);
    assert_int_equal(sim->nforward_headers, 1);
    assert_string_equal(sim->forward_headers[0], "X-Sim-Fault");

    const char *models[] = {"gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "fast", "premium"};
    assert_int_equal(c->nmodels, 8);
    const tg_model *claude = tg_config_model(c, TG_STR("claude-3-5-haiku"));
    assert_ptr_equal(claude->offerings[0]->provider, an);
    assert_ptr_equal(claude->offerings[1]->provider, san);
    assert_int_equal(tg_config_model(c, TG_STR("balanced"))->strategy, TG_STRATEGY_CHEAPEST);
    assert_int_equal(c->routing.nrules, 2);
    assert_ptr_equal(c->routing.rules[1].try_first, tg_config_model(c, TG_STR("fast")));
    for (size_t i = 0; i < 3; i++) {
        const tg_model *m = tg_config_model(c, tg_str_c(models[i]));
        assert_non_null(m);
        assert_int_equal(m->noffering, 2);
        assert_ptr_equal(m->offerings[0]->provider, oa);
        assert_ptr_equal(m->offerings[1]->provider, sim);
        assert_string_equal(m->offerings[0]->upstream_model, models[i]);
        assert_string_equal(m->offerings[1]->upstream_model, models[i]);
    }
    const tg_model *fast = tg_config_model(c, TG_STR("fast"));
    assert_int_equal(fast->noffering, 1);
    assert_string_equal(fast->offerings[0]->upstream_model, "sim-fast");
    assert_string_equal(fast->offerings[0]->upstream_json, "\"sim-fast\"");
    assert_string_equal(tg_config_model(c, TG_STR("premium"))->offerings[0]->upstream_model,
                        "sim-premium");
    assert_null(tg_config_model(c, TG_STR("gpt-5")));

    /* prices, exact to the nano */
    const tg_offering *mini = tg_config_model(c, TG_STR("gpt-4o-mini"))->offerings[0];
    assert_int_equal(mini->price.input, 150000000);
    assert_int_equal(mini->price.cached_input, 75000000);
    assert_int_equal(mini->price.cache_write, 150000000);
    assert_int_equal(mini->price.output, 600000000);
    assert_int_equal(mini->price.reasoning, 600000000);
    assert_int_equal(mini->price.per_request, 0);
    assert_int_equal(mini->price.batch_discount_bps, 5000);
    const tg_offering *prem = tg_config_model(c, TG_STR("premium"))->offerings[0];
    assert_int_equal(prem->price.input, 2500000000);
    assert_int_equal(prem->price.cached_input, 1250000000);
    assert_int_equal(prem->price.output, 10000000000);
    assert_int_equal(fast->offerings[0]->price.input, 100000000);
    assert_int_equal(fast->offerings[0]->price.output, 400000000);
    for (size_t i = 0; i < c->nofferings; i++)
        assert_true(c->offerings[i].price.input > 0); /* every offering is priced */

    /* the credit ladder */
    assert_int_equal(c->nplans, 4);
    const char *ladder[] = {"starter", "pro", "team", "enterprise"};
    const int64_t fee_usd[] = {29, 99, 299, 2000}, overage_cents[] = {8, 6, 4, 3};
    const int64_t included[] = {500, 2500, 10000, 60000};
    for (size_t i = 0; i < 4; i++) {
        const tg_plan *p = tg_config_plan(c, tg_str_c(ladder[i]));
        assert_ptr_equal(p, &c->plans[i]);
        assert_int_equal(p->fee, fee_usd[i] * TG_NANOS_PER_USD);
        assert_int_equal(p->included, included[i] * TG_NCREDITS_PER_CREDIT);
        assert_int_equal(p->credit, 40000000);
        assert_true(p->has_overage);
        assert_int_equal(p->overage, overage_cents[i] * TG_NANOS_PER_CENT);
        assert_int_equal(tg_plan_unit(p, TG_STR("report"))->credits, 10 * TG_NCREDITS_PER_CREDIT);
        assert_int_equal(p->nthresholds, 2);
        assert_int_equal(p->thresholds[0], 80);
        assert_int_equal(p->thresholds[1], 100);
        assert_null(p->models); /* every model */
        assert_true(p->limits.rpm > 0 && p->limits.concurrent > 0);
        assert_true(i == 0 || p->limits.rpm > c->plans[i - 1].limits.rpm);
    }
    const tg_plan *starter = &c->plans[0], *enterprise = &c->plans[3];
    assert_int_equal(starter->ndegrade_from, 1);
    assert_ptr_equal(starter->degrade_from[0], tg_config_model(c, TG_STR("premium")));
    assert_ptr_equal(starter->degrade_to, fast);
    assert_int_equal(starter->degrade_at, 100);
    assert_int_equal(starter->limits.rpm, 60);
    assert_int_equal(starter->limits.concurrent, 5);
    assert_int_equal(starter->key_limits.rpm, 30);
    assert_true(starter->has_run_steps && starter->has_run_cost);
    assert_int_equal(starter->cap, TG_CAP_NONE);
    assert_null(c->plans[1].degrade_to);
    assert_int_equal(enterprise->cap, TG_CAP_CREDITS);
    assert_int_equal(enterprise->cap_credits, 200000 * TG_NCREDITS_PER_CREDIT);
    assert_int_equal(enterprise->default_max_tokens, 4096);
    assert_int_equal(c->napps, 1);
    const tg_app *app = tg_config_app(c, TG_STR("demo-app"));
    assert_non_null(app);
    assert_int_equal(app->margin.markup_bps, 3000);
    assert_int_equal(app->margin.platform_fee_bps, 500);
    assert_int_equal(app->margin.surcharge, 0);
    assert_int_equal(app->margin.nunits, 1);
    assert_string_equal(app->margin.units[0].name, "report");
    assert_int_equal(app->margin.units[0].price, 400000000);
    assert_int_equal(app->noverrides, 2);
    assert_string_equal(app->overrides[0].plan, "pro");
    assert_int_equal(app->overrides[0].margin.markup_bps, 2000);
    assert_string_equal(app->overrides[1].feature, "classify");
    assert_int_equal(app->overrides[1].margin.surcharge, 1000000);
    assert_true(app->show_charge);
    assert_false(app->show_cost);
    assert_true(app->create_customers);
    assert_ptr_equal(app->default_plan, starter);
    assert_int_equal(app->period_anchor_day, 1);
    assert_null(app->webhook_url); /* its secret would be unset: make run would fail */
    assert_int_equal(app->runs.max_steps, 50);
    assert_int_equal(app->runs.max_cost, 2 * TG_NANOS_PER_USD);
    const tg_customer *acme = tg_config_customer(c, TG_STR("acme"));
    assert_ptr_equal(acme->app, app);
    assert_ptr_equal(acme->plan, tg_config_plan(c, TG_STR("pro")));
    assert_ptr_equal(tg_config_customer(c, TG_STR("globex"))->plan,
                     tg_config_plan(c, TG_STR("starter")));

    assert_int_equal(c->nkeys, 3);
    uint8_t h[TG_SHA256_LEN];
    tg_sha256(TG_STR("sk-tollgate-demo"), h);
    assert_string_equal(c->keys[0].id, "demo");
    assert_memory_equal(c->keys[0].hash, h, TG_SHA256_LEN);
    assert_false(c->keys[0].admin);
    assert_true(tg_key_allows(&c->keys[0], fast));
    assert_ptr_equal(c->keys[0].customer, acme);
    assert_ptr_equal(c->keys[0].app, app);
    tg_sha256(TG_STR("sk-tollgate-app"), h);
    assert_string_equal(c->keys[1].id, "demo-app");
    assert_memory_equal(c->keys[1].hash, h, TG_SHA256_LEN);
    assert_ptr_equal(c->keys[1].app, app);
    assert_null(c->keys[1].customer);
    tg_sha256(TG_STR("sk-tollgate-admin"), h);
    assert_string_equal(c->keys[2].id, "admin");
    assert_memory_equal(c->keys[2].hash, h, TG_SHA256_LEN);
    assert_true(c->keys[2].admin);
    assert_null(c->keys[2].app);

    assert_true(c->metering.enabled);
    assert_string_equal(c->metering.data_dir, "tollgate-data");
    assert_int_equal(c->metering.fsync, TG_FSYNC_INTERVAL);
    tg_config_unref(c);
}

static void test_defaults(void **state)
{
    (void)state;
    const char *empties[] = {"", "# nothing\n", "{}\n", "---\n", "~\n", "server:\n"};
    for (size_t i = 0; i < sizeof empties / sizeof *empties; i++) {
        tg_config *c = parse_ok(empties[i]);
        assert_string_equal(c->path, "t.yaml");
        assert_string_equal(c->server.listen.host, "127.0.0.1");
        assert_int_equal(c->server.listen.port, 8080);
        assert_int_equal(c->server.workers, 0);
        assert_int_equal(c->server.max_connections, 4096);
        assert_int_equal(c->server.max_header_bytes, 32768);
        assert_int_equal(c->server.max_body_bytes, 8388608);
        assert_int_equal(c->server.max_response_bytes, 67108864);
        assert_int_equal(c->server.header_timeout_ms, 10000);
        assert_int_equal(c->server.request_timeout_ms, 60000);
        assert_int_equal(c->server.idle_timeout_ms, 60000);
        assert_int_equal(c->server.shutdown_timeout_ms, 10000);
        assert_int_equal(c->log_level, TG_LOG_INFO);
        assert_false(c->sim.enabled);
        assert_int_equal(c->nproviders + c->nofferings + c->nmodels + c->nkeys, 0);
        assert_int_equal(c->nplans + c->napps + c->ncustomers, 0);
        assert_true(c->metering.enabled);
        assert_string_equal(c->metering.data_dir, "tollgate-data");
        assert_int_equal(c->metering.fsync, TG_FSYNC_INTERVAL);
        assert_int_equal(c->metering.fsync_interval_ms, 1000);
        assert_int_equal(c->metering.segment_bytes, 64u << 20);
        assert_int_equal(c->metering.batch_records, 8192);
        assert_int_equal(c->metering.flush_ms, 200);
        assert_int_equal(atomic_load(&c->refs), 1);
        tg_config_unref(c);
    }

    tg_sim_conf s;
    tg_sim_conf_defaults(&s);
    assert_false(s.enabled);
    assert_string_equal(s.listen.host, "127.0.0.1");
    assert_int_equal(s.listen.port, 0);
    assert_int_equal(s.seed, 1);
    assert_int_equal(s.ttft_ms, 0);
    assert_int_equal(s.tokens_per_sec, 0);
    assert_int_equal(s.completion_min, 16);
    assert_int_equal(s.completion_max, 64);
    assert_int_equal(s.embedding_dims, 16);
    assert_int_equal(s.retry_after_s, 1);
    assert_int_equal(s.nfaults, 0);

    /* provider defaults */
    tg_config *c = parse_ok(BASE);
    const tg_provider *p = &c->providers[0];
    assert_int_equal(p->dialect, TG_DIALECT_OPENAI);
    assert_true(p->available);
    assert_null(p->api_key_env);
    assert_null(p->api_key);
    assert_int_equal(p->connect_timeout_ms, 5000);
    assert_int_equal(p->first_byte_timeout_ms, 120000);
    assert_int_equal(p->total_timeout_ms, 600000);
    assert_int_equal(p->nforward_headers, 0);
    assert_int_equal(p->line, 2);
    assert_int_equal(c->offerings[0].line, 5);
    assert_int_equal(c->models[0].line, 7);
    /* no price block: free */
    const tg_price zero = {0};
    assert_memory_equal(&c->offerings[0].price, &zero, sizeof zero);
    assert_null(c->keys);
    tg_config_unref(c);
}

static void test_full(void **state)
{
    (void)state;
    tg_config *c =
        parse_ok("server:\n"
                 "  listen: \"[::1]:9090\"\n"
                 "  workers: 3\n"
                 "  max_connections: 10\n"
                 "  max_header_bytes: 4096\n"
                 "  max_body_bytes: 1\n"
                 "  max_response_bytes: 2048\n"
                 "  header_timeout_ms: 1\n"
                 "  request_timeout_ms: 2\n"
                 "  idle_timeout_ms: 3\n"
                 "  shutdown_timeout_ms: 0\n"
                 "log: {level: debug}\n"
                 "sim:\n"
                 "  enabled: true\n"
                 "  listen: 0.0.0.0:7000\n"
                 "  seed: 18446744073709551615\n"
                 "  ttft_ms: 5\n"
                 "  tokens_per_second: 6\n"
                 "  completion_tokens: {min: 1, max: 1}\n"
                 "  embedding_dims: 8\n"
                 "  retry_after_s: 0\n"
                 "  faults: [{kind: \"429\", percent: 5}, {kind: malformed, percent: 95}]\n"
                 "providers:\n"
                 "  - name: local\n"
                 "    dialect: openai\n"
                 "    base_url: http://127.0.0.1:8000/v1///\n"
                 "    connect_timeout_ms: 7\n"
                 "    first_byte_timeout_ms: 8\n"
                 "    total_timeout_ms: 9\n"
                 "    forward_headers: [X-A, x-b]\n"
                 "  - {name: sim, base_url: \"builtin:sim\"}\n"
                 "offerings:\n"
                 "  - {id: a, provider: local, model: m1}\n"
                 "  - {id: b, provider: sim, model: m2}\n"
                 "models:\n"
                 "  - {name: x, offerings: [b, a]}\n"
                 "  - {name: y, offerings: [a]}\n"
                 "keys:\n"
                 "  - {id: k1, sha256: " DEMO_HASH ", models: [y]}\n"
                 "  - {id: k2, sha256: " ADMIN_HASH ", admin: true}\n");
    assert_string_equal(c->server.listen.host, "::1");
    assert_int_equal(c->server.listen.port, 9090);
    assert_int_equal(c->server.workers, 3);
    assert_int_equal(c->server.max_connections, 10);
    assert_int_equal(c->server.max_header_bytes, 4096);
    assert_int_equal(c->server.max_body_bytes, 1);
    assert_int_equal(c->server.max_response_bytes, 2048);
    assert_int_equal(c->server.header_timeout_ms, 1);
    assert_int_equal(c->server.request_timeout_ms, 2);
    assert_int_equal(c->server.idle_timeout_ms, 3);
    assert_int_equal(c->server.shutdown_timeout_ms, 0);
    assert_int_equal(c->log_level, TG_LOG_DEBUG);
    assert_true(c->sim.enabled);
    assert_string_equal(c->sim.listen.host, "0.0.0.0");
    assert_int_equal(c->sim.listen.port, 7000);
    assert_true(c->sim.seed == UINT64_MAX);
    assert_int_equal(c->sim.ttft_ms, 5);
    assert_int_equal(c->sim.tokens_per_sec, 6);
    assert_int_equal(c->sim.completion_min, 1);
    assert_int_equal(c->sim.completion_max, 1);
    assert_int_equal(c->sim.embedding_dims, 8);
    assert_int_equal(c->sim.retry_after_s, 0);
    assert_int_equal(c->sim.nfaults, 2);
    assert_int_equal(c->sim.faults[0].kind, TG_SIM_FAULT_429);
    assert_int_equal(c->sim.faults[0].percent, 5);
    assert_int_equal(c->sim.faults[1].kind, TG_SIM_FAULT_MALFORMED);
    assert_int_equal(c->sim.faults[1].percent, 95);

    const tg_provider *p = &c->providers[0];
    assert_string_equal(p->base_url, "http://127.0.0.1:8000/v1"); /* trailing '/' dropped */
    assert_int_equal(p->connect_timeout_ms, 7);
    assert_int_equal(p->first_byte_timeout_ms, 8);
    assert_int_equal(p->total_timeout_ms, 9);
    assert_int_equal(p->nforward_headers, 2);
    assert_string_equal(p->forward_headers[1], "x-b");
    assert_true(c->providers[1].builtin_sim);

    const tg_model *x = tg_config_model(c, TG_STR("x")), *y = tg_config_model(c, TG_STR("y"));
    assert_string_equal(x->offerings[0]->id, "b");
    assert_string_equal(x->offerings[1]->id, "a");
    assert_ptr_equal(x->offerings[1], y->offerings[0]);
    assert_int_equal(c->keys[0].nmodels, 1);
    assert_false(tg_key_allows(&c->keys[0], x));
    assert_true(tg_key_allows(&c->keys[0], y));
    assert_true(tg_key_allows(&c->keys[1], x));
    assert_true(c->keys[1].admin);

    /* references: the last unref frees */
    assert_ptr_equal(tg_config_ref(c), c);
    assert_int_equal(atomic_load(&c->refs), 2);
    tg_config_unref(c);
    assert_int_equal(atomic_load(&c->refs), 1);
    tg_config_unref(c);
    tg_config_unref(NULL);
}

static void test_error_messages(void **state)
{
    (void)state;
    /* unknown fields, at every level */
    expect_error("server:\n  listn: 127.0.0.1:8080\n",
                 "t.yaml:2: server: unknown field 'listn' (expected one of: listen, workers, "
                 "max_connections, max_header_bytes, max_body_bytes, max_response_bytes, "
                 "header_timeout_ms, request_timeout_ms, idle_timeout_ms, shutdown_timeout_ms)");
    expect_error("sever: {}\n", "t.yaml:1: unknown field 'sever' (expected one of: server, log, "
                                "sim, providers, offerings, models, plans, apps, customers, keys, "
                                "metering, routing)");
    expect_error(BASE "keys:\n  - {id: a, sha256: " DEMO_HASH ", admn: true}\n",
                 "t.yaml:9: keys[0]: unknown field 'admn' (expected one of: id, sha256, admin, "
                 "models, app, customer, limits)");
    expect_error("server:\n  workers: 1\n  workers: 2\n",
                 "t.yaml:3: server: field 'workers' appears twice (first at line 2)");

    /* types and ranges */
    expect_error("server:\n  workers: four\n",
                 "t.yaml:2: server.workers: must be a whole number (decimal digits only)");
    expect_error("server:\n  workers: \"4\"\n",
                 "t.yaml:2: server.workers: must be a whole number (decimal digits only)");
    expect_error("server:\n  workers: -1\n",
                 "t.yaml:2: server.workers: must be a whole number (decimal digits only)");
    expect_error("server:\n  workers: 1025\n",
                 "t.yaml:2: server.workers: must be between 0 and 1024");
    expect_error("server:\n  idle_timeout_ms: 99999999999999999999999\n",
                 "t.yaml:2: server.idle_timeout_ms: must be between 1 and 86400000");
    expect_error("server: [1]\n",
                 "t.yaml:1: server: must be a mapping of field: value, not a list");
    expect_error("server:\n  workers: [1]\n",
                 "t.yaml:2: server.workers: must be a single value, not a list");
    expect_error("server:\n  listen:\n  workers: 1\n", "t.yaml:2: server.listen: missing value");
    expect_error("sim: {enabled: yes}\n", "t.yaml:1: sim.enabled: must be true or false");
    expect_error("log: {level: loud}\n",
                 "t.yaml:1: log.level: must be one of debug, info, warn, error, off");
    expect_error("providers: {name: x}\n", "t.yaml:1: providers: must be a list, not a mapping");
    expect_error("- 1\n", "t.yaml:1: the top level must be a mapping of sections (server:, "
                          "providers:, ...)");

    /* addresses */
    expect_error("server:\n  listen: localhost:8080\n",
                 "t.yaml:2: server.listen: must be IPV4:PORT or [IPV6]:PORT with a numeric "
                 "address, e.g. 127.0.0.1:8080 or [::1]:8080");
    expect_error("sim:\n  listen: 127.0.0.1:65536\n",
                 "t.yaml:2: sim.listen: must be IPV4:PORT or [IPV6]:PORT with a numeric "
                 "address, e.g. 127.0.0.1:8080 or [::1]:8080");

    /* sim */
    expect_error("sim:\n  completion_tokens: {min: 70}\n",
                 "t.yaml:2: sim.completion_tokens: min (70) is more than max (64)");
    expect_error("sim:\n  faults: [{kind: \"404\", percent: 5}]\n",
                 "t.yaml:2: sim.faults[0].kind: must be one of 429, 500, 503, timeout, reset, "
                 "cut, malformed");
    expect_error("sim:\n  faults: [{kind: cut, percent: 0}]\n",
                 "t.yaml:2: sim.faults[0].percent: must be between 1 and 100");
    expect_error("sim:\n  faults: [{kind: cut}]\n",
                 "t.yaml:2: sim.faults[0]: missing required field 'percent'");
    expect_error(
        "sim:\n  faults:\n    - {kind: cut, percent: 60}\n    - {kind: reset, percent: 50}\n",
        "t.yaml:3: sim.faults: percentages add up to 110, more than 100");
    expect_error("sim:\n  faults:\n    - {kind: cut, percent: 6}\n    - {kind: cut, percent: 5}\n",
                 "t.yaml:4: sim.faults[1]: fault kind cut is listed twice");

    /* providers */
    expect_error("providers:\n  - name: openai\n    base_url: api.openai.com\n",
                 "t.yaml:3: providers[0].base_url: must start with http:// or https://");
    expect_error("providers:\n  - name: openai\n",
                 "t.yaml:2: providers[0]: missing required field 'base_url'");
    expect_error("providers:\n  - {name: \"open ai\", base_url: \"http://x\"}\n",
                 "t.yaml:2: providers[0].name: may contain only letters, digits, '.', '_' and '-'");
    expect_error("providers:\n  - {name: sim, base_url: \"builtin:sim\"}\n",
                 "t.yaml:2: providers[0].base_url: builtin:sim needs the simulated provider: set "
                 "sim.enabled: true");
    expect_error("providers:\n  - {name: a, base_url: \"http://x\", dialect: gemini}\n",
                 "t.yaml:2: providers[0].dialect: must be openai or anthropic");
    expect_error("providers:\n  - {name: a, base_url: \"http://x\", anthropic_version: \"a b\"}\n",
                 "t.yaml:2: providers[0].anthropic_version: must be printable ASCII without spaces");
    expect_error(
        "providers:\n  - {name: a, base_url: \"http://x\", forward_headers: [Authorization]}\n",
        "t.yaml:2: providers[0].forward_headers[0]: Authorization is never forwarded (it "
        "carries credentials or belongs to one connection)");
    expect_error(
        "providers:\n  - {name: a, base_url: \"http://x\", forward_headers: [X-A, \"x a\"]}\n",
        "t.yaml:2: providers[0].forward_headers[1]: is not a valid header name");
    expect_error("providers:\n  - {name: a, base_url: \"http://x\", forward_headers: [X-A, x-a]}\n",
                 "t.yaml:2: providers[0].forward_headers[1]: header 'x-a' is listed twice");
    expect_error("providers:\n  - {name: a, base_url: \"http://x\", api_key_env: 1KEY}\n",
                 "t.yaml:2: providers[0].api_key_env: must be an environment variable name "
                 "(letters, digits, '_')");

    /* references */
    expect_error(
        BASE "  - {name: bad, offerings: [openai/mini, nope]}\n",
        "t.yaml:8: models[1].offerings[1]: unknown offering 'nope' (defined: openai/mini)");
    expect_error("providers:\n  - {name: openai, base_url: \"https://x\"}\n"
                 "offerings:\n  - {id: o, provider: opnai, model: m}\n",
                 "t.yaml:4: offerings[0].provider: unknown provider 'opnai' (defined: openai)");
    expect_error("offerings:\n  - {id: o, provider: opnai, model: m}\n",
                 "t.yaml:2: offerings[0].provider: unknown provider 'opnai' (defined: none)");
    expect_error(BASE "keys:\n  - {id: a, sha256: " DEMO_HASH ", models: [maxi]}\n",
                 "t.yaml:9: keys[0].models[0]: unknown model 'maxi' (defined: mini)");
    expect_error(BASE "  - {name: m2, offerings: []}\n",
                 "t.yaml:8: models[1].offerings: must list at least one offering");
    expect_error(BASE "keys:\n  - {id: a, sha256: " DEMO_HASH ", models: []}\n",
                 "t.yaml:9: keys[0].models: must list at least one model (leave it out to allow "
                 "all)");

    /* keys: the value is never echoed, it may be the key itself */
    expect_error("keys:\n  - id: a\n    sha256: sk-tollgate-demo\n",
                 "t.yaml:3: keys[0].sha256: must be 64 hex digits, the SHA-256 of the key "
                 "(tollgate keys hash KEY); got 16 characters");
    expect_error("keys:\n  - id: a\n", "t.yaml:2: keys[0]: missing required field 'sha256'");
}

static void test_duplicates(void **state)
{
    (void)state;
    expect_error("providers:\n"
                 "  - {name: a, base_url: \"http://x\"}\n"
                 "  - {name: b, base_url: \"http://x\"}\n"
                 "  - {name: a, base_url: \"http://y\"}\n",
                 "t.yaml:4: providers[2].name: duplicate provider name 'a' (first at line 2)");
    expect_error("providers:\n  - {name: a, base_url: \"http://x\"}\n"
                 "offerings:\n"
                 "  - {id: o, provider: a, model: m}\n"
                 "  - {id: p, provider: a, model: m}\n"
                 "  - {id: o, provider: a, model: m2}\n",
                 "t.yaml:6: offerings[2].id: duplicate offering id 'o' (first at line 4)");
    expect_error(BASE "  - {name: mini, offerings: [openai/mini]}\n",
                 "t.yaml:8: models[1].name: duplicate model name 'mini' (first at line 7)");
    expect_error(BASE "  - {name: m2, offerings: [openai/mini, openai/mini]}\n",
                 "t.yaml:8: models[1].offerings[1]: offering 'openai/mini' is listed twice");
    expect_error(BASE "keys:\n"
                      "  - {id: a, sha256: " DEMO_HASH "}\n"
                      "  - {id: a, sha256: " ADMIN_HASH "}\n",
                 "t.yaml:10: keys[1].id: duplicate key id 'a' (first at line 9)");
    /* the same hash in either case of hex digits */
    expect_error(BASE
                 "keys:\n"
                 "  - {id: a, sha256: " DEMO_HASH "}\n"
                 "  - {id: b, sha256: " ADMIN_HASH "}\n"
                 "  - id: c\n"
                 "    sha256: 179510EE3E248A7BFAE1A518D344461DDEF0E32BBF53B40845F2D3E157C5973F\n",
                 "t.yaml:12: keys[2].sha256: duplicate sha256 (keys[0] at line 9 has the same)");
}

/* ---- prices, plans, apps, customers, key owners, metering ------------- */

#define H3 "1111111111111111111111111111111111111111111111111111111111111111"
#define H4 "2222222222222222222222222222222222222222222222222222222222222222"

/* BASE, two plans, a customer of each of two apps, and the apps last so a
 * case can go on with a1's fields: lines 1..14, a1 at 14. */
#define CAT                                                                                        \
    BASE "plans: [{id: starter}, {id: pro}]\n"                                                     \
         "customers:\n"                                                                            \
         "  - {id: acme, app: a1, plan: pro}\n"                                                    \
         "  - {id: globex, app: a2}\n"                                                             \
         "apps:\n"                                                                                 \
         "  - id: a2\n"                                                                            \
         "  - id: a1\n"

/* One priced offering, on line 4. */
#define PRICE(block)                                                                               \
    "providers:\n  - {name: p, base_url: \"http://x\"}\n"                                          \
    "offerings:\n  - {id: o, provider: p, model: m, price: " block "}\n"

/* An app x with one more field on line 11. */
#define APP(field) BASE "plans: [{id: starter}]\napps:\n  - id: x\n    " field "\n"

static void test_prices(void **state)
{
    (void)state;
    /* plain and quoted scalars alike, read exactly from their text */
    tg_config *c = parse_ok("providers:\n  - {name: p, base_url: \"http://x\"}\n"
                            "offerings:\n"
                            "  - id: o\n"
                            "    provider: p\n"
                            "    model: m\n"
                            "    price:\n"
                            "      input: 0.15\n"
                            "      cached_input: \"0.075\"\n"
                            "      cache_write: \"1\"\n"
                            "      output: .6\n"
                            "      reasoning: \"2.\"\n"
                            "      request: \"0.000000001\"\n"
                            "      batch_discount_bps: 5000\n");
    const tg_price *p = &c->offerings[0].price;
    assert_int_equal(p->input, 150000000);
    assert_int_equal(p->cached_input, 75000000);
    assert_int_equal(p->cache_write, 1000000000);
    assert_int_equal(p->output, 600000000);
    assert_int_equal(p->reasoning, 2000000000);
    assert_int_equal(p->per_request, 1);
    assert_int_equal(p->batch_discount_bps, 5000);
    tg_config_unref(c);

    /* left out: cached input and cache writes at the input price, reasoning at output */
    c = parse_ok(PRICE("{input: \"3\", output: \"15\"}"));
    p = &c->offerings[0].price;
    assert_int_equal(p->cached_input, 3000000000);
    assert_int_equal(p->cache_write, 3000000000);
    assert_int_equal(p->reasoning, 15000000000);
    assert_int_equal(p->per_request, 0);
    assert_int_equal(p->batch_discount_bps, 0);
    tg_config_unref(c);
    c = parse_ok(PRICE("{}"));
    const tg_price zero = {0};
    assert_memory_equal(&c->offerings[0].price, &zero, sizeof zero);
    tg_config_unref(c);
    /* the largest price there is, and a discount of everything */
    c = parse_ok(PRICE("{output: 9000000000.000000000, batch_discount_bps: 10000}"));
    assert_true(c->offerings[0].price.output == 9000000000LL * TG_NANOS_PER_USD);
    assert_int_equal(c->offerings[0].price.batch_discount_bps, 10000);
    tg_config_unref(c);

    expect_error(PRICE("{input: garbage}"),
                 "t.yaml:4: offerings[0].price.input: \"garbage\" is not a decimal number");
    expect_error(PRICE("{input: \"-1\"}"),
                 "t.yaml:4: offerings[0].price.input: \"-1\" is negative");
    expect_error(PRICE("{output: -0.5}"),
                 "t.yaml:4: offerings[0].price.output: \"-0.5\" is negative");
    expect_error(PRICE("{cached_input: 0.1234567891}"),
                 "t.yaml:4: offerings[0].price.cached_input: \"0.1234567891\" has more than 9 "
                 "digits after the point");
    expect_error(PRICE("{reasoning: \"9000000000.000000001\"}"),
                 "t.yaml:4: offerings[0].price.reasoning: \"9000000000.000000001\" is too large");
    expect_error(PRICE("{cache_write: 99999999999999999999999}"),
                 "t.yaml:4: offerings[0].price.cache_write: \"99999999999999999999999\" is too "
                 "large");
    expect_error(PRICE("{request: 1e3}"),
                 "t.yaml:4: offerings[0].price.request: \"1e3\" is not a decimal number");
    expect_error(PRICE("{input: \" 1\"}"),
                 "t.yaml:4: offerings[0].price.input: \" 1\" is not a decimal number");
    expect_error(PRICE("{input: \"1,5\"}"),
                 "t.yaml:4: offerings[0].price.input: \"1,5\" is not a decimal number");
    expect_error(PRICE("{input: \"\"}"),
                 "t.yaml:4: offerings[0].price.input: \"\" is not a decimal number");
    expect_error(PRICE("{input: }"), "t.yaml:4: offerings[0].price.input: missing value");
    expect_error(PRICE("{input: [1]}"),
                 "t.yaml:4: offerings[0].price.input: must be a single value, not a list");
    expect_error(PRICE("{inpt: 1}"),
                 "t.yaml:4: offerings[0].price: unknown field 'inpt' (expected one of: input, "
                 "cached_input, cache_write, output, reasoning, request, batch_discount_bps)");
    expect_error(PRICE("{batch_discount_bps: 10001}"),
                 "t.yaml:4: offerings[0].price.batch_discount_bps: must be between 0 and 10000");
    expect_error(PRICE("{batch_discount_bps: -1}"),
                 "t.yaml:4: offerings[0].price.batch_discount_bps: must be between 0 and 10000");
    expect_error(PRICE("{batch_discount_bps: \"50\"}"),
                 "t.yaml:4: offerings[0].price.batch_discount_bps: must be a whole number "
                 "(decimal digits, '-' if negative)");
    expect_error(PRICE("0.15"), "t.yaml:4: offerings[0].price: must be a mapping of field: "
                                "value, not a single value");
}

static void test_catalog(void **state)
{
    (void)state;
    tg_config *c =
        parse_ok(BASE "plans: [{id: starter}, {id: pro}]\n"
                      "apps:\n"
                      "  - id: \"shop:eu/1\"\n"
                      "    margin:\n"
                      "      markup_bps: -2500\n"
                      "      surcharge: \"0.002\"\n"
                      "      platform_fee_bps: 10000\n"
                      "      units: {report: \"0.40\", \"doc#2\": 1}\n"
                      "    overrides:\n"
                      "      - {customer: acme, markup_bps: 0}\n"
                      "      - {plan: pro, feature: summarize, model: mini, surcharge: "
                      "0, platform_fee_bps: 0}\n"
                      "      - {plan: pro, units: {report: \"0.30\"}}\n"
                      "      - {customer: acme, plan: pro, markup_bps: 1000000}\n"
                      "    show_charge: false\n"
                      "    show_cost: true\n"
                      "    create_customers: true\n"
                      "    default_plan: starter\n"
                      "  - id: a2\n"
                      "customers:\n"
                      "  - {id: acme, app: \"shop:eu/1\", plan: pro}\n"
                      "  - {id: globex, app: a2}\n"
                      "keys:\n"
                      "  - {id: k1, sha256: " DEMO_HASH ", customer: acme}\n"
                      "  - {id: k2, sha256: " ADMIN_HASH ", app: a2}\n"
                      "  - {id: k3, sha256: " H3 ", customer: acme, app: \"shop:eu/1\"}\n"
                      "  - {id: k4, sha256: " H4 ", admin: true}\n");
    assert_int_equal(c->nplans, 2);
    assert_int_equal(c->napps, 2);
    assert_int_equal(c->ncustomers, 2);
    const tg_plan *starter = tg_config_plan(c, TG_STR("starter"));
    const tg_plan *pro = tg_config_plan(c, TG_STR("pro"));
    assert_ptr_equal(starter, &c->plans[0]);
    assert_ptr_equal(pro, &c->plans[1]);
    assert_int_equal(pro->line, 8);

    const tg_app *a = tg_config_app(c, TG_STR("shop:eu/1"));
    assert_ptr_equal(a, &c->apps[0]);
    assert_int_equal(a->line, 10);
    assert_true(a->margin.has_markup && a->margin.has_surcharge && a->margin.has_fee);
    assert_int_equal(a->margin.markup_bps, -2500);
    assert_int_equal(a->margin.surcharge, 2000000);
    assert_int_equal(a->margin.platform_fee_bps, 10000);
    assert_int_equal(a->margin.nunits, 2);
    assert_string_equal(a->margin.units[0].name, "report");
    assert_int_equal(a->margin.units[0].price, 400000000);
    assert_string_equal(a->margin.units[1].name, "doc#2");
    assert_int_equal(a->margin.units[1].price, 1000000000);
    assert_false(a->show_charge);
    assert_true(a->show_cost);
    assert_true(a->create_customers);
    assert_ptr_equal(a->default_plan, starter);

    assert_int_equal(a->noverrides, 4);
    const tg_override *o = a->overrides;
    assert_int_equal(o[0].line, 17);
    assert_string_equal(o[0].customer, "acme");
    assert_null(o[0].plan);
    assert_null(o[0].feature);
    assert_null(o[0].model);
    assert_true(o[0].margin.has_markup);
    assert_int_equal(o[0].margin.markup_bps, 0);
    assert_false(o[0].margin.has_surcharge || o[0].margin.has_fee || o[0].margin.nunits);
    assert_string_equal(o[1].plan, "pro");
    assert_string_equal(o[1].feature, "summarize");
    assert_string_equal(o[1].model, "mini");
    assert_false(o[1].margin.has_markup);
    assert_true(o[1].margin.has_surcharge && o[1].margin.has_fee);
    assert_int_equal(o[1].margin.surcharge + o[1].margin.platform_fee_bps, 0);
    assert_false(o[2].margin.has_markup || o[2].margin.has_surcharge || o[2].margin.has_fee);
    assert_int_equal(o[2].margin.nunits, 1);
    assert_int_equal(o[2].margin.units[0].price, 300000000);
    assert_string_equal(o[3].customer, "acme");
    assert_string_equal(o[3].plan, "pro");
    assert_int_equal(o[3].margin.markup_bps, 1000000);

    /* an app without a margin block: every field set, all zero; headers by default */
    const tg_app *a2 = tg_config_app(c, TG_STR("a2"));
    assert_true(a2->margin.has_markup && a2->margin.has_surcharge && a2->margin.has_fee);
    assert_int_equal(a2->margin.markup_bps + a2->margin.surcharge + a2->margin.platform_fee_bps, 0);
    assert_int_equal(a2->margin.nunits, 0);
    assert_null(a2->margin.units);
    assert_int_equal(a2->noverrides, 0);
    assert_true(a2->show_charge);
    assert_false(a2->show_cost);
    assert_false(a2->create_customers);
    assert_null(a2->default_plan);

    const tg_customer *acme = tg_config_customer(c, TG_STR("acme"));
    const tg_customer *globex = tg_config_customer(c, TG_STR("globex"));
    assert_ptr_equal(acme->app, a);
    assert_ptr_equal(acme->plan, pro);
    assert_int_equal(acme->line, 27);
    assert_ptr_equal(globex->app, a2);
    assert_null(globex->plan);

    /* a customer key bills its customer's app; an app key names no customer */
    assert_ptr_equal(c->keys[0].customer, acme);
    assert_ptr_equal(c->keys[0].app, a);
    assert_null(c->keys[1].customer);
    assert_ptr_equal(c->keys[1].app, a2);
    assert_ptr_equal(c->keys[2].customer, acme);
    assert_ptr_equal(c->keys[2].app, a);
    assert_true(c->keys[3].admin);
    assert_null(c->keys[3].app);
    assert_null(c->keys[3].customer);

    /* lookups: exact, whole ids only */
    assert_null(tg_config_app(c, TG_STR("shop")));
    assert_null(tg_config_app(c, TG_STR("A2")));
    assert_null(tg_config_customer(c, TG_STR("acme ")));
    assert_null(tg_config_customer(c, TG_STR_NULL));
    assert_null(tg_config_plan(c, TG_STR("team")));
    tg_config_unref(c);
}

static void test_catalog_errors(void **state)
{
    (void)state;
    /* plans */
    expect_error("plans: [{id: a}, {id: b}, {id: a}]\n",
                 "t.yaml:1: plans[2].id: duplicate plan id 'a' (first at line 1)");
    expect_error("plans: [{id: a, price: 1}]\n",
                 "t.yaml:1: plans[0]: unknown field 'price' (expected one of: id, fee, "
                 "included_credits, credit, unit_credits, overage, hard_cap, thresholds, models, "
                 "degrade, default_max_tokens, limits, key_limits, runs)");
    expect_error("plans: [{id: \"\"}]\n", "t.yaml:1: plans[0].id: must not be empty");
    expect_error("plans: [starter]\n",
                 "t.yaml:1: plans[0]: must be a mapping of field: value, not a single value");

    /* apps */
    expect_error(APP("default_plan: gold"),
                 "t.yaml:11: apps[0].default_plan: unknown plan 'gold' (defined: starter)");
    expect_error(APP("margin: {markup_bps: 1000001}"),
                 "t.yaml:11: apps[0].margin.markup_bps: must be between -10000 and 1000000");
    expect_error(APP("margin: {markup_bps: -10001}"),
                 "t.yaml:11: apps[0].margin.markup_bps: must be between -10000 and 1000000");
    expect_error(APP("margin: {markup_bps: 99999999999999999999}"),
                 "t.yaml:11: apps[0].margin.markup_bps: must be between -10000 and 1000000");
    expect_error(APP("margin: {markup_bps: 1.5}"),
                 "t.yaml:11: apps[0].margin.markup_bps: must be a whole number (decimal digits, "
                 "'-' if negative)");
    expect_error(APP("margin: {markup_bps: \"-\"}"),
                 "t.yaml:11: apps[0].margin.markup_bps: must be a whole number (decimal digits, "
                 "'-' if negative)");
    expect_error(APP("margin: {platform_fee_bps: 10001}"),
                 "t.yaml:11: apps[0].margin.platform_fee_bps: must be between 0 and 10000");
    expect_error(APP("margin: {surcharge: \"-1\"}"),
                 "t.yaml:11: apps[0].margin.surcharge: \"-1\" is negative");
    expect_error(APP("margin: {units: {r: \"0.1234567890\"}}"),
                 "t.yaml:11: apps[0].margin.units.r: \"0.1234567890\" has more than 9 digits "
                 "after the point");
    expect_error(APP("margin: {units: [r]}"),
                 "t.yaml:11: apps[0].margin.units: must be a mapping of field: value, not a list");
    expect_error(APP("margin: {units: {\"a b\": 1}}"),
                 "t.yaml:11: apps[0].margin.units: 'a b' may contain only letters, digits and . "
                 "_ - : @ / + = #");
    expect_error(APP("margin: {units: {r: 1, s: 2, r: 3}}"),
                 "t.yaml:11: apps[0].margin.units: unit 'r' is listed twice");
    expect_error(APP("margin: {fee: 1}"),
                 "t.yaml:11: apps[0].margin: unknown field 'fee' (expected one of: markup_bps, "
                 "surcharge, platform_fee_bps, units)");
    expect_error(APP("show_cost: yes"), "t.yaml:11: apps[0].show_cost: must be true or false");
    expect_error(APP("overrides: {plan: starter}"),
                 "t.yaml:11: apps[0].overrides: must be a list, not a mapping");
    expect_error(APP("owner: me"),
                 "t.yaml:11: apps[0]: unknown field 'owner' (expected one of: id, margin, "
                 "overrides, show_charge, show_cost, create_customers, default_plan, "
                 "period_anchor_day, webhook, runs)");
    expect_error("apps:\n  - id: \"my app\"\n",
                 "t.yaml:2: apps[0].id: 'my app' may contain only letters, digits and . _ - : @ "
                 "/ + = #");
    expect_error("apps:\n  - id: a,b\n",
                 "t.yaml:2: apps[0].id: 'a,b' may contain only letters, digits and . _ - : @ / + "
                 "= #");
    expect_error("apps:\n  - id: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
                 "t.yaml:2: apps[0].id: must be at most 128 characters");
    expect_error("apps:\n  - {show_cost: true}\n",
                 "t.yaml:2: apps[0]: missing required field 'id'");
    expect_error("apps:\n  - id: x\n  - id: y\n  - id: x\n",
                 "t.yaml:4: apps[2].id: duplicate app id 'x' (first at line 2)");

    /* customers */
    expect_error("customers:\n  - {id: c, app: nope}\n",
                 "t.yaml:2: customers[0].app: unknown app 'nope' (defined: none)");
    expect_error("apps: [{id: a}]\ncustomers:\n  - {id: c, app: a, plan: gold}\n",
                 "t.yaml:3: customers[0].plan: unknown plan 'gold' (defined: none)");
    expect_error("apps: [{id: a}]\ncustomers:\n  - {id: c}\n",
                 "t.yaml:3: customers[0]: missing required field 'app'");
    expect_error("apps: [{id: a}, {id: b}]\ncustomers:\n  - {id: c, app: a}\n  - {id: c, app: b}\n",
                 "t.yaml:4: customers[1].id: duplicate customer id 'c' (first at line 3)");

    /* overrides, on a1 (line 14) */
#define OV CAT "    overrides:\n"
    expect_error(OV "      - {markup_bps: 1}\n",
                 "t.yaml:16: apps[1].overrides[0]: names none of plan, customer, feature or "
                 "model (the app's margin covers every request)");
    expect_error(OV "      - {plan: pro}\n",
                 "t.yaml:16: apps[1].overrides[0]: sets none of markup_bps, surcharge, "
                 "platform_fee_bps or units");
    expect_error(OV "      - {plan: pro, units: {}}\n",
                 "t.yaml:16: apps[1].overrides[0]: sets none of markup_bps, surcharge, "
                 "platform_fee_bps or units");
    expect_error(OV "      - {plan: gold, markup_bps: 1}\n",
                 "t.yaml:16: apps[1].overrides[0].plan: unknown plan 'gold' (defined: starter, "
                 "pro)");
    expect_error(OV "      - {customer: acme, markup_bps: 1}\n      - {customer: globex, "
                    "markup_bps: 1}\n",
                 "t.yaml:17: apps[1].overrides[1].customer: customer 'globex' belongs to app "
                 "'a2', not to 'a1'");
    expect_error(OV "      - {customer: nobody, markup_bps: 1}\n",
                 "t.yaml:16: apps[1].overrides[0].customer: unknown customer 'nobody' (defined: "
                 "acme, globex)");
    expect_error(OV "      - {model: maxi, markup_bps: 1}\n",
                 "t.yaml:16: apps[1].overrides[0].model: unknown model 'maxi' (defined: mini)");
    expect_error(OV "      - {feature: \"a b\", markup_bps: 1}\n",
                 "t.yaml:16: apps[1].overrides[0].feature: 'a b' may contain only letters, "
                 "digits and . _ - : @ / + = #");
    expect_error(OV "      - {plan: pro, markup_bps: -10001}\n",
                 "t.yaml:16: apps[1].overrides[0].markup_bps: must be between -10000 and "
                 "1000000");
    expect_error(OV "      - {plan: pro, platform_fee_bps: 10001}\n",
                 "t.yaml:16: apps[1].overrides[0].platform_fee_bps: must be between 0 and 10000");
    expect_error(OV "      - {plan: pro, surcharge: 0.0000000001}\n",
                 "t.yaml:16: apps[1].overrides[0].surcharge: \"0.0000000001\" has more than 9 "
                 "digits after the point");
    expect_error(OV "      - {plan: pro, units: {r: x}}\n",
                 "t.yaml:16: apps[1].overrides[0].units.r: \"x\" is not a decimal number");
    expect_error(OV "      - {plan: pro, markup: 1}\n",
                 "t.yaml:16: apps[1].overrides[0]: unknown field 'markup' (expected one of: plan, "
                 "customer, feature, model, markup_bps, surcharge, platform_fee_bps, units)");
    /* the same match twice, whatever else differs and whatever the field order */
    expect_error(OV "      - {plan: pro, feature: x, markup_bps: 1}\n"
                    "      - {plan: pro, markup_bps: 1}\n"
                    "      - {customer: acme, markup_bps: 1}\n"
                    "      - {feature: x, surcharge: 1, plan: pro}\n",
                 "t.yaml:19: apps[1].overrides[3]: matches the same requests as overrides[0] at "
                 "line 16");
    expect_error(OV "      - {customer: acme, markup_bps: 1}\n"
                    "      - {model: mini, markup_bps: 1}\n"
                    "      - {model: mini, markup_bps: 2}\n"
                    "      - {customer: acme, markup_bps: 2}\n",
                 "t.yaml:18: apps[1].overrides[2]: matches the same requests as overrides[1] at "
                 "line 17");
    /* overlapping but different matches are fine: the most specific wins */
    tg_config *c = parse_ok(OV "      - {plan: pro, markup_bps: 1}\n"
                               "      - {plan: pro, feature: x, markup_bps: 2}\n"
                               "      - {customer: acme, plan: pro, markup_bps: 3}\n"
                               "      - {customer: acme, markup_bps: 4}\n"
                               "      - {model: mini, markup_bps: 5}\n");
    assert_int_equal(c->apps[1].noverrides, 5);
    tg_config_unref(c);
#undef OV

    /* keys */
    expect_error(CAT "keys:\n  - {id: k, sha256: " DEMO_HASH ", customer: acme, app: a2}\n",
                 "t.yaml:16: keys[0].app: is 'a2', but customer 'acme' belongs to app 'a1'");
    expect_error(CAT "keys:\n  - {id: k, sha256: " DEMO_HASH ", customer: nobody}\n",
                 "t.yaml:16: keys[0].customer: unknown customer 'nobody' (defined: acme, globex)");
    expect_error(CAT "keys:\n  - {id: k, sha256: " DEMO_HASH ", app: nope}\n",
                 "t.yaml:16: keys[0].app: unknown app 'nope' (defined: a2, a1)");
    expect_error("keys:\n  - {id: k, sha256: " DEMO_HASH ", app: a}\n",
                 "t.yaml:2: keys[0].app: unknown app 'a' (defined: none)");

    /* an empty quoted string is no name */
    expect_error("providers:\n  - {name: \"\", base_url: \"http://x\"}\n",
                 "t.yaml:2: providers[0].name: must not be empty");
}

/* BASE with a second model: mini on line 7, maxi on line 8. */
#define MODELS2 BASE "  - {name: maxi, offerings: [openai/mini]}\n"

static void test_plans(void **state)
{
    (void)state;
    setenv("TG_TEST_WEBHOOK", "whsec-test-123", 1);
    tg_config *c =
        parse_ok(MODELS2 "plans:\n"
                         "  - id: starter\n"
                         "    fee: \"29.00\"\n"
                         "    included_credits: 2.5\n"
                         "    credit: \"0.04\"\n"
                         "    unit_credits: {report: 5, \"doc#2\": \"0.5\"}\n"
                         "    overage: \"0.08\"\n"
                         "    hard_cap: {usd: \"100.00\"}\n"
                         "    thresholds: [50, 80, 100, 1000]\n"
                         "    models: [mini, maxi]\n"
                         "    degrade: {from: [maxi], to: mini, at: 90}\n"
                         "    default_max_tokens: 2048\n"
                         "    limits: {rpm: 60, tpm: 200000, concurrent: 10}\n"
                         "    key_limits: {rpm: 30}\n"
                         "    runs: {max_steps: 50, max_cost: \"2.00\"}\n"
                         "  - id: bare\n"
                         "  - id: capped\n"
                         "    hard_cap: {credits: 5000}\n"
                         "    thresholds: []\n"
                         "    overage: 0\n"
                         "    credit: \"0.000000001\"\n"
                         "    runs: {max_cost: 1}\n"
                         "    degrade: {from: [mini], to: maxi, at: 0}\n"
                         "    default_max_tokens: 10000000\n"
                         "    limits: {rpm: 10000000, tpm: 1000000000000, concurrent: 100000}\n"
                         "apps:\n"
                         "  - id: a\n"
                         "    period_anchor_day: 28\n"
                         "    webhook: {url: \"https://hooks.example.com/tg?x=1\", secret_env: "
                         "TG_TEST_WEBHOOK}\n"
                         "    runs: {max_steps: 100, max_cost: \"5.00\"}\n"
                         "  - id: b\n"
                         "customers:\n"
                         "  - {id: acme, app: a, plan: starter}\n"
                         "keys:\n"
                         "  - {id: k1, sha256: " DEMO_HASH ", customer: acme, limits: {rpm: 10, "
                         "concurrent: 2}}\n"
                         "  - {id: k2, sha256: " ADMIN_HASH ", app: b, limits: {}}\n"
                         "  - {id: k3, sha256: " H3 ", admin: true}\n");
    const tg_model *mini = tg_config_model(c, TG_STR("mini"));
    const tg_model *maxi = tg_config_model(c, TG_STR("maxi"));
    assert_int_equal(c->nplans, 3);

    const tg_plan *p = tg_config_plan(c, TG_STR("starter"));
    assert_int_equal(p->line, 10);
    assert_int_equal(p->fee, 29 * TG_NANOS_PER_USD);
    assert_int_equal(p->included, 2500000000);
    assert_int_equal(p->credit, 40000000);
    assert_int_equal(p->nunit_credits, 2);
    assert_string_equal(p->unit_credits[0].name, "report");
    assert_int_equal(p->unit_credits[0].credits, 5 * TG_NCREDITS_PER_CREDIT);
    assert_string_equal(p->unit_credits[1].name, "doc#2");
    assert_int_equal(p->unit_credits[1].credits, 500000000);
    assert_true(p->has_overage);
    assert_int_equal(p->overage, 80000000);
    assert_int_equal(p->cap, TG_CAP_USD);
    assert_int_equal(p->cap_usd, 100 * TG_NANOS_PER_USD);
    assert_int_equal(p->cap_credits, 0);
    assert_int_equal(p->nthresholds, 4);
    assert_int_equal(p->thresholds[0], 50);
    assert_int_equal(p->thresholds[1], 80);
    assert_int_equal(p->thresholds[2], 100);
    assert_int_equal(p->thresholds[3], 1000);
    assert_int_equal(p->nmodels, 2);
    assert_ptr_equal(p->models[0], mini);
    assert_ptr_equal(p->models[1], maxi);
    assert_int_equal(p->ndegrade_from, 1);
    assert_ptr_equal(p->degrade_from[0], maxi);
    assert_ptr_equal(p->degrade_to, mini);
    assert_int_equal(p->degrade_at, 90);
    assert_int_equal(p->default_max_tokens, 2048);
    assert_int_equal(p->limits.rpm, 60);
    assert_int_equal(p->limits.tpm, 200000);
    assert_int_equal(p->limits.concurrent, 10);
    assert_int_equal(p->key_limits.rpm, 30);
    assert_int_equal(p->key_limits.tpm + p->key_limits.concurrent, 0);
    assert_int_equal(p->runs.max_steps, 50);
    assert_int_equal(p->runs.max_cost, 2 * TG_NANOS_PER_USD);
    assert_true(p->has_run_steps && p->has_run_cost);

    /* units in credits: exact names only */
    assert_ptr_equal(tg_plan_unit(p, TG_STR("report")), &p->unit_credits[0]);
    assert_ptr_equal(tg_plan_unit(p, TG_STR("doc#2")), &p->unit_credits[1]);
    assert_null(tg_plan_unit(p, TG_STR("Report")));
    assert_null(tg_plan_unit(p, TG_STR("repor")));
    assert_null(tg_plan_unit(p, TG_STR_NULL));

    /* every default */
    const tg_plan *bare = tg_config_plan(c, TG_STR("bare"));
    assert_int_equal(bare->fee + bare->included + bare->overage, 0);
    assert_int_equal(bare->credit, 10000000);
    assert_int_equal(bare->nunit_credits, 0);
    assert_null(bare->unit_credits);
    assert_null(tg_plan_unit(bare, TG_STR("report")));
    assert_false(bare->has_overage);
    assert_int_equal(bare->cap, TG_CAP_NONE);
    assert_int_equal(bare->nthresholds, 2);
    assert_int_equal(bare->thresholds[0], 80);
    assert_int_equal(bare->thresholds[1], 100);
    assert_null(bare->models);
    assert_int_equal(bare->nmodels, 0);
    assert_null(bare->degrade_from);
    assert_null(bare->degrade_to);
    assert_int_equal(bare->degrade_at, 100);
    assert_int_equal(bare->default_max_tokens, 1024);
    assert_int_equal(bare->limits.rpm + bare->limits.tpm + bare->limits.concurrent, 0);
    assert_int_equal(bare->key_limits.rpm + bare->key_limits.tpm + bare->key_limits.concurrent, 0);
    assert_int_equal(bare->runs.max_steps + bare->runs.max_cost, 0);
    assert_false(bare->has_run_steps || bare->has_run_cost);

    /* the other cap, no thresholds, overage at 0, the extremes of the ranges */
    const tg_plan *capped = tg_config_plan(c, TG_STR("capped"));
    assert_int_equal(capped->cap, TG_CAP_CREDITS);
    assert_int_equal(capped->cap_credits, 5000 * TG_NCREDITS_PER_CREDIT);
    assert_int_equal(capped->cap_usd, 0);
    assert_int_equal(capped->nthresholds, 0);
    assert_true(capped->has_overage);
    assert_int_equal(capped->overage, 0);
    assert_int_equal(capped->credit, 1);
    assert_false(capped->has_run_steps);
    assert_true(capped->has_run_cost);
    assert_int_equal(capped->runs.max_cost, TG_NANOS_PER_USD);
    assert_ptr_equal(capped->degrade_from[0], mini);
    assert_ptr_equal(capped->degrade_to, maxi); /* any model: the plan allows all */
    assert_int_equal(capped->degrade_at, 0);
    assert_int_equal(capped->default_max_tokens, 10000000);
    assert_int_equal(capped->limits.rpm, 10000000);
    assert_int_equal(capped->limits.tpm, 1000000000000);
    assert_int_equal(capped->limits.concurrent, 100000);

    /* apps */
    const tg_app *a = tg_config_app(c, TG_STR("a"));
    assert_int_equal(a->period_anchor_day, 28);
    assert_string_equal(a->webhook_url, "https://hooks.example.com/tg?x=1");
    assert_string_equal(a->webhook_secret_env, "TG_TEST_WEBHOOK");
    assert_string_equal(a->webhook_secret, "whsec-test-123");
    assert_int_equal(a->runs.max_steps, 100);
    assert_int_equal(a->runs.max_cost, 5 * TG_NANOS_PER_USD);
    const tg_app *b = tg_config_app(c, TG_STR("b"));
    assert_int_equal(b->period_anchor_day, 1);
    assert_null(b->webhook_url);
    assert_null(b->webhook_secret_env);
    assert_null(b->webhook_secret);
    assert_int_equal(b->runs.max_steps + b->runs.max_cost, 0);

    /* keys: their own limits, none ({} sets them all to 0), or the plan's */
    assert_true(c->keys[0].has_limits);
    assert_int_equal(c->keys[0].limits.rpm, 10);
    assert_int_equal(c->keys[0].limits.tpm, 0);
    assert_int_equal(c->keys[0].limits.concurrent, 2);
    assert_true(c->keys[1].has_limits);
    assert_int_equal(c->keys[1].limits.rpm + c->keys[1].limits.tpm + c->keys[1].limits.concurrent,
                     0);
    assert_false(c->keys[2].has_limits);
    tg_config_unref(c);
    unsetenv("TG_TEST_WEBHOOK");
}

/* A plan p with one more field on line 11. */
#define PLAN(field) MODELS2 "plans:\n  - id: p\n    " field "\n"

static void test_plan_errors(void **state)
{
    (void)state;
    /* money and credits */
    expect_error(PLAN("fee: \"29,00\""),
                 "t.yaml:11: plans[0].fee: \"29,00\" is not a decimal number");
    expect_error(PLAN("fee: [1]"), "t.yaml:11: plans[0].fee: must be a single value, not a list");
    expect_error(PLAN("included_credits: -5"),
                 "t.yaml:11: plans[0].included_credits: \"-5\" is negative");
    expect_error(PLAN("included_credits: 0.0000000001"),
                 "t.yaml:11: plans[0].included_credits: \"0.0000000001\" has more than 9 digits "
                 "after the point");
    expect_error(PLAN("included_credits: 9000000001"),
                 "t.yaml:11: plans[0].included_credits: \"9000000001\" is too large");
    expect_error(PLAN("credit: 0"), "t.yaml:11: plans[0].credit: must be more than 0");
    expect_error(PLAN("credit: \"0.000\""), "t.yaml:11: plans[0].credit: must be more than 0");
    expect_error(PLAN("credit: \"-0.01\""), "t.yaml:11: plans[0].credit: \"-0.01\" is negative");
    expect_error(PLAN("overage: free"), "t.yaml:11: plans[0].overage: \"free\" is not a decimal "
                                        "number");
    expect_error(PLAN("overage:"), "t.yaml:11: plans[0].overage: missing value");

    /* unit_credits */
    expect_error(PLAN("unit_credits: {report: 1, doc: 2, report: 3}"),
                 "t.yaml:11: plans[0].unit_credits: unit 'report' is listed twice");
    expect_error(PLAN("unit_credits: {report: x}"),
                 "t.yaml:11: plans[0].unit_credits.report: \"x\" is not a decimal number");
    expect_error(PLAN("unit_credits: {\"a b\": 1}"),
                 "t.yaml:11: plans[0].unit_credits: 'a b' may contain only letters, digits and . "
                 "_ - : @ / + = #");
    expect_error(PLAN("unit_credits: [report]"),
                 "t.yaml:11: plans[0].unit_credits: must be a mapping of field: value, not a "
                 "list");
    {
        /* 257 units: one too many */
        char text[8192];
        int n = snprintf(text, sizeof text, "%s", PLAN("unit_credits: {"));
        text[n - 1] = '\0'; /* the newline PLAN ends with */
        n--;
        for (int i = 0; i < 257; i++)
            n += snprintf(text + n, sizeof text - (size_t)n, "%su%d: 1", i ? ", " : "", i);
        snprintf(text + n, sizeof text - (size_t)n, "}\n");
        expect_error(text, "t.yaml:11: plans[0].unit_credits: at most 256 units");
    }

    /* hard_cap */
    expect_error(PLAN("hard_cap: {usd: \"100.00\", credits: 5000}"),
                 "t.yaml:11: plans[0].hard_cap: give usd or credits, not both");
    expect_error(PLAN("hard_cap: {}"),
                 "t.yaml:11: plans[0].hard_cap: give usd (a cap on the period's charge, {usd: "
                 "\"100.00\"}) or credits (on its credits, {credits: 5000})");
    expect_error(PLAN("hard_cap: {usd: 0}"), "t.yaml:11: plans[0].hard_cap.usd: must be more "
                                             "than 0");
    expect_error(PLAN("hard_cap: {credits: \"0.0\"}"),
                 "t.yaml:11: plans[0].hard_cap.credits: must be more than 0");
    expect_error(PLAN("hard_cap: {eur: 5}"),
                 "t.yaml:11: plans[0].hard_cap: unknown field 'eur' (expected one of: usd, "
                 "credits)");
    expect_error(PLAN("hard_cap: \"100.00\""),
                 "t.yaml:11: plans[0].hard_cap: must be a mapping of field: value, not a single "
                 "value");

    /* thresholds */
    expect_error(PLAN("thresholds: [80, 80]"),
                 "t.yaml:11: plans[0].thresholds[1]: must be more than the threshold before it "
                 "(80)");
    expect_error(PLAN("thresholds: [100, 80]"),
                 "t.yaml:11: plans[0].thresholds[1]: must be more than the threshold before it "
                 "(100)");
    expect_error(PLAN("thresholds: [0, 100]"),
                 "t.yaml:11: plans[0].thresholds[0]: must be between 1 and 1000");
    expect_error(PLAN("thresholds: [80, 1001]"),
                 "t.yaml:11: plans[0].thresholds[1]: must be between 1 and 1000");
    expect_error(PLAN("thresholds: [-80]"),
                 "t.yaml:11: plans[0].thresholds[0]: must be a whole number (decimal digits "
                 "only)");
    expect_error(PLAN("thresholds: [10, 20, 30, 40, 50, 60, 70, 80, 90]"),
                 "t.yaml:11: plans[0].thresholds: at most 8 thresholds");
    expect_error(PLAN("thresholds: 80"),
                 "t.yaml:11: plans[0].thresholds: must be a list, not a single value");

    /* models and degrade */
    expect_error(PLAN("models: [mini, gpt-5]"),
                 "t.yaml:11: plans[0].models[1]: unknown model 'gpt-5' (defined: mini, maxi)");
    expect_error(PLAN("models: [mini, mini]"),
                 "t.yaml:11: plans[0].models[1]: model 'mini' is listed twice");
    expect_error(PLAN("models: []"),
                 "t.yaml:11: plans[0].models: must list at least one model (leave it out to "
                 "allow all)");
    expect_error(PLAN("degrade: {from: [gpt-5], to: mini}"),
                 "t.yaml:11: plans[0].degrade.from[0]: unknown model 'gpt-5' (defined: mini, "
                 "maxi)");
    expect_error(PLAN("degrade: {from: [maxi], to: gpt-5}"),
                 "t.yaml:11: plans[0].degrade.to: unknown model 'gpt-5' (defined: mini, maxi)");
    expect_error(PLAN("degrade: {from: [maxi, maxi], to: mini}"),
                 "t.yaml:11: plans[0].degrade.from[1]: model 'maxi' is listed twice");
    expect_error(PLAN("degrade: {from: [], to: mini}"),
                 "t.yaml:11: plans[0].degrade.from: must list at least one model (leave degrade "
                 "out for none)");
    expect_error(PLAN("degrade: {from: [maxi, mini], to: mini}"),
                 "t.yaml:11: plans[0].degrade.to: 'mini' is also in from: a model cannot degrade "
                 "to itself");
    expect_error(PLAN("models: [maxi]\n    degrade: {from: [maxi], to: mini}"),
                 "t.yaml:12: plans[0].degrade.to: 'mini' is not one of the plan's models, so its "
                 "customers could not be served it (add it to models)");
    expect_error(PLAN("degrade: {to: mini}"),
                 "t.yaml:11: plans[0].degrade: missing required field 'from'");
    expect_error(PLAN("degrade: {from: [maxi]}"),
                 "t.yaml:11: plans[0].degrade: missing required field 'to'");
    expect_error(PLAN("degrade: {from: [maxi], to: mini, at: 1001}"),
                 "t.yaml:11: plans[0].degrade.at: must be between 0 and 1000");
    expect_error(PLAN("degrade: {from: [maxi], to: mini, when: 90}"),
                 "t.yaml:11: plans[0].degrade: unknown field 'when' (expected one of: from, to, "
                 "at)");

    /* default_max_tokens */
    expect_error(PLAN("default_max_tokens: 0"),
                 "t.yaml:11: plans[0].default_max_tokens: must be between 1 and 10000000");
    expect_error(PLAN("default_max_tokens: 10000001"),
                 "t.yaml:11: plans[0].default_max_tokens: must be between 1 and 10000000");

    /* limits, key_limits, runs */
    expect_error(PLAN("limits: {rph: 60}"),
                 "t.yaml:11: plans[0].limits: unknown field 'rph' (expected one of: rpm, tpm, "
                 "concurrent)");
    expect_error(PLAN("limits: {rpm: -1}"),
                 "t.yaml:11: plans[0].limits.rpm: must be a whole number (decimal digits only)");
    expect_error(PLAN("limits: {rpm: 10000001}"),
                 "t.yaml:11: plans[0].limits.rpm: must be between 0 and 10000000");
    expect_error(PLAN("limits: {tpm: 1000000000001}"),
                 "t.yaml:11: plans[0].limits.tpm: must be between 0 and 1000000000000");
    expect_error(PLAN("limits: {tpm: 99999999999999999999999}"),
                 "t.yaml:11: plans[0].limits.tpm: must be between 0 and 1000000000000");
    expect_error(PLAN("limits: {concurrent: 100001}"),
                 "t.yaml:11: plans[0].limits.concurrent: must be between 0 and 100000");
    expect_error(PLAN("limits: 60"),
                 "t.yaml:11: plans[0].limits: must be a mapping of field: value, not a single "
                 "value");
    expect_error(PLAN("key_limits: {concurrent: \"2\"}"),
                 "t.yaml:11: plans[0].key_limits.concurrent: must be a whole number (decimal "
                 "digits only)");
    expect_error(PLAN("runs: {max_steps: 1000001}"),
                 "t.yaml:11: plans[0].runs.max_steps: must be between 0 and 1000000");
    expect_error(PLAN("runs: {max_cost: \"-2\"}"),
                 "t.yaml:11: plans[0].runs.max_cost: \"-2\" is negative");
    expect_error(PLAN("runs: {steps: 5}"),
                 "t.yaml:11: plans[0].runs: unknown field 'steps' (expected one of: max_steps, "
                 "max_cost)");

    /* a failure after the arrays are filled frees them (ASan checks) */
    expect_error(PLAN("unit_credits: {report: 1}\n    models: [mini]\n    degrade: {from: [maxi], "
                      "to: mini}\n    runs: {max_steps: x}"),
                 "t.yaml:14: plans[0].runs.max_steps: must be a whole number (decimal digits "
                 "only)");
    expect_error(MODELS2 "plans:\n  - {id: p, unit_credits: {r: 1}, models: [mini]}\n"
                         "  - {id: p, degrade: {from: [mini], to: maxi}}\n",
                 "t.yaml:11: plans[1].id: duplicate plan id 'p' (first at line 10)");
}

/* Plans made through the admin API: read after the file from JSON, null
 * members left out, found by id next to the file's; every refusal names
 * the plan and leaves the snapshot without API plans. */
static void expect_api_error(const tg_plan_def *defs, size_t n, const char *msg)
{
    tg_config *c = parse_ok(MODELS2 "plans: [{id: file-plan}]\n");
    tg_errmsg err = {{0}};
    assert_int_equal(tg_config_add_plans(c, defs, n, &err), TG_EINVAL);
    assert_string_equal(err.msg, msg);
    assert_int_equal(c->napi_plans, 0);
    assert_null(c->api_plans);
    tg_config_unref(c);
}

static void test_api_plans(void **state)
{
    (void)state;
    tg_config *base = parse_ok(MODELS2 "plans: [{id: file-plan}]\n"), *c;
    tg_errmsg err = {{0}};
    assert_int_equal(tg_config_reparse(base, &c, &err), TG_OK);
    assert_string_equal(c->path, "t.yaml");
    assert_int_equal(c->nplans, 1);
    tg_config_unref(base);
    const tg_plan_def defs[] = {
        {TG_STR("a/custom"),
         TG_STR("{\"id\": \"a/custom\", \"source\": \"api\", \"fee\": \"500.00\", \"credit\": "
                "\"0.001\",\n \"hard_cap\": {\"usd\": \"0.01\"}, \"overage\": null, \"models\": "
                "[\"mini\"], \"degrade\": null,\n \"runs\": {\"max_steps\": 3, \"max_cost\": null}, "
                "\"thresholds\": [50], \"unit_credits\": {}, \"included_credits\": 12.5}")},
        {TG_STR("b"), TG_STR("{}")},
    };
    assert_int_equal(tg_config_add_plans(c, defs, 2, &err), TG_OK);
    const tg_plan *p = tg_config_plan(c, TG_STR("a/custom")), *b = tg_config_plan(c, TG_STR("b"));
    assert_non_null(p);
    assert_true(tg_config_plan_api(c, p));
    assert_int_equal(p->fee, 500 * TG_NANOS_PER_USD);
    assert_int_equal(p->credit, TG_NANOS_PER_USD / 1000);
    assert_int_equal(p->included, 12500000000LL);
    assert_int_equal(p->cap, TG_CAP_USD);
    assert_int_equal(p->cap_usd, TG_NANOS_PER_USD / 100);
    assert_false(p->has_overage);
    assert_int_equal(p->nmodels, 1);
    assert_string_equal(p->models[0]->name, "mini");
    assert_null(p->degrade_to);
    assert_true(p->has_run_steps);
    assert_false(p->has_run_cost);
    assert_int_equal(p->runs.max_steps, 3);
    assert_int_equal(p->nthresholds, 1);
    assert_int_equal(p->thresholds[0], 50);
    /* {} is every default */
    assert_non_null(b);
    assert_int_equal(b->credit, TG_NANOS_PER_CENT);
    assert_int_equal(b->nthresholds, 2);
    assert_int_equal(b->default_max_tokens, 1024);
    assert_false(tg_config_plan_api(c, tg_config_plan(c, TG_STR("file-plan"))));
    assert_null(tg_config_plan(c, TG_STR("a")));
    assert_null(tg_config_plan(c, TG_STR("c")));
    tg_config_unref(c);

    /* many, each found (a binary search) */
    enum { MANY = 300 };
    static char ids[MANY][16];
    tg_plan_def many[MANY];
    for (int i = 0; i < MANY; i++) {
        snprintf(ids[i], sizeof ids[i], "p%04d", i);
        many[i] = (tg_plan_def){tg_str_c(ids[i]), TG_STR("{\"fee\": 1}")};
    }
    c = parse_ok(MODELS2);
    assert_int_equal(tg_config_add_plans(c, many, MANY, &err), TG_OK);
    for (int i = 0; i < MANY; i++) assert_ptr_equal(tg_config_plan(c, tg_str_c(ids[i])), &c->api_plans[i]);
    assert_null(tg_config_plan(c, TG_STR("p")));
    assert_null(tg_config_plan(c, TG_STR("p9999")));
    tg_config_unref(c);

    const tg_plan_def ok = {TG_STR("a"), TG_STR("{\"models\": [\"mini\"]}")};
    expect_api_error((tg_plan_def[]){{TG_STR("file-plan"), TG_STR("{}")}}, 1,
                     "API plan 'file-plan': t.yaml defines a plan of this id too; rename or remove "
                     "one of them");
    expect_api_error((tg_plan_def[]){{TG_STR("b"), TG_STR("{}")}, ok}, 2,
                     "plans: not sorted by id, or one twice");
    expect_api_error((tg_plan_def[]){ok, ok}, 2, "plans: not sorted by id, or one twice");
    expect_api_error((tg_plan_def[]){{TG_STR("a b"), TG_STR("{}")}}, 1,
                     "API plan 'a b': a plan id is 1 to 128 letters, digits and . _ : @ / + = # -");
    expect_api_error((tg_plan_def[]){{TG_STR("x"), TG_STR("[1]")}}, 1,
                     "API plan 'x': must be an object of the plan's fields");
    expect_api_error((tg_plan_def[]){{TG_STR("x"), TG_STR("{\"id\": \"y\"}")}}, 1,
                     "API plan 'x': id: 'y' is not the plan's id");
    expect_api_error((tg_plan_def[]){{TG_STR("x"), TG_STR("{\"fe\": 1}")}}, 1,
                     "API plan 'x': unknown field 'fe' (expected one of: id, fee, included_credits, "
                     "credit, unit_credits, overage, hard_cap, thresholds, models, degrade, "
                     "default_max_tokens, limits, key_limits, runs)");
    /* the second fails after the first was read whole: both are freed */
    expect_api_error((tg_plan_def[]){ok, {TG_STR("b"), TG_STR("{\"models\": [\"gpt\"]}")}}, 2,
                     "API plan 'b': models[0]: unknown model 'gpt' (defined: mini, maxi)");
    expect_api_error((tg_plan_def[]){{TG_STR("x"), TG_STR("{\"limits\": {\"rpm\": -1}}")}}, 1,
                     "API plan 'x': limits.rpm: must be a whole number (decimal digits only)");
}

static void test_app_limits_errors(void **state)
{
    (void)state;
    /* period_anchor_day and runs */
    expect_error(APP("period_anchor_day: 29"),
                 "t.yaml:11: apps[0].period_anchor_day: must be between 1 and 28");
    expect_error(APP("period_anchor_day: 0"),
                 "t.yaml:11: apps[0].period_anchor_day: must be between 1 and 28");
    expect_error(APP("runs: {max_steps: -1}"),
                 "t.yaml:11: apps[0].runs.max_steps: must be a whole number (decimal digits "
                 "only)");
    expect_error(APP("runs: {max_cost: \"1.0000000001\"}"),
                 "t.yaml:11: apps[0].runs.max_cost: \"1.0000000001\" has more than 9 digits "
                 "after the point");

    /* webhook */
#define HOOK(rest) APP("webhook: {url: \"https://hooks.example.com/tg\"" rest "}")
    expect_error(HOOK(""), "t.yaml:11: apps[0].webhook: missing required field 'secret_env' (the "
                           "environment variable that holds the secret webhooks are signed with)");
    expect_error(APP("webhook: {secret_env: TG_TEST_WEBHOOK}"),
                 "t.yaml:11: apps[0].webhook: missing required field 'url'");
    expect_error(HOOK(", secret_env: TG_TEST_WEBHOOK, secret: s3cret"),
                 "t.yaml:11: apps[0].webhook: unknown field 'secret' (expected one of: url, "
                 "secret_env)");
    expect_error(HOOK(", secret_env: 1SECRET"),
                 "t.yaml:11: apps[0].webhook.secret_env: must be an environment variable name "
                 "(letters, digits, '_')");
    expect_error(HOOK(", secret_env: \"MY-SECRET\""),
                 "t.yaml:11: apps[0].webhook.secret_env: must be an environment variable name "
                 "(letters, digits, '_')");
    expect_error(APP("webhook: \"https://hooks.example.com/tg\""),
                 "t.yaml:11: apps[0].webhook: must be a mapping of field: value, not a single "
                 "value");
#undef HOOK
    const char *urls[][2] = {
        {"ftp://hooks.example.com/tg", "must start with http:// or https://"},
        {"hooks.example.com/tg", "must start with http:// or https://"},
        {"https://", "has no host after the scheme"},
        {"https:///tg", "has no host after the scheme"},
        {"http://?x=1", "has no host after the scheme"},
        {"https://hooks.example.com/a b", "must not contain spaces"},
        {"", "must not be empty"},
    };
    setenv("TG_TEST_WEBHOOK", "whsec-test-123", 1);
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++) {
        char text[512], want[256];
        snprintf(text, sizeof text, APP("webhook: {url: \"%s\", secret_env: TG_TEST_WEBHOOK}"),
                 urls[i][0]);
        snprintf(want, sizeof want, "t.yaml:11: apps[0].webhook.url: %s", urls[i][1]);
        expect_error(text, want);
    }
    /* the providers' base_url shares the check, and refuses a query too */
    expect_error("providers:\n  - {name: p, base_url: \"https://x/v1?a=b\"}\n",
                 "t.yaml:2: providers[0].base_url: must not contain '?' or '#'");
    expect_error("providers:\n  - {name: p, base_url: \"http:///v1\"}\n",
                 "t.yaml:2: providers[0].base_url: has no host after the scheme");

    /* the secret comes from the environment, and without it there is no
       webhook: the load fails, naming the variable and never the value */
    const char *ok = APP("webhook: {url: \"https://h/x\", secret_env: TG_TEST_WEBHOOK}");
    tg_config *c = parse_ok(ok);
    assert_string_equal(c->apps[0].webhook_secret, "whsec-test-123");
    tg_config_unref(c);
    const char *unset = "t.yaml:11: apps[0].webhook.secret_env: $TG_TEST_WEBHOOK is not set or "
                        "empty: set it to the secret webhooks are signed with (they are never "
                        "sent unsigned)";
    setenv("TG_TEST_WEBHOOK", "", 1);
    expect_error(ok, unset);
    unsetenv("TG_TEST_WEBHOOK");
    expect_error(ok, unset);
    /* an error after the secret was read: freed, and not in the message */
    setenv("TG_TEST_WEBHOOK", "whsec-test-123", 1);
    tg_errmsg err = {{0}};
    c = NULL;
    assert_int_equal(tg_config_parse("t.yaml",
                                     tg_str_c(APP("webhook: {url: \"https://h/x\", secret_env: "
                                                  "TG_TEST_WEBHOOK}\n    runs: {max_steps: x}")),
                                     &c, &err),
                     TG_EINVAL);
    assert_null(c);
    assert_string_equal(err.msg, "t.yaml:12: apps[0].runs.max_steps: must be a whole number "
                                 "(decimal digits only)");
    assert_null(strstr(err.msg, "whsec"));
    unsetenv("TG_TEST_WEBHOOK");

    /* keys */
    expect_error(BASE "keys:\n  - {id: k, sha256: " DEMO_HASH ", limits: {burst: 5}}\n",
                 "t.yaml:9: keys[0].limits: unknown field 'burst' (expected one of: rpm, tpm, "
                 "concurrent)");
    expect_error(BASE "keys:\n  - {id: k, sha256: " DEMO_HASH ", limits: {rpm: 1e3}}\n",
                 "t.yaml:9: keys[0].limits.rpm: must be a whole number (decimal digits only)");
    expect_error(BASE "keys:\n  - {id: k, sha256: " DEMO_HASH ", limits: {concurrent: 100001}}\n",
                 "t.yaml:9: keys[0].limits.concurrent: must be between 0 and 100000");
    expect_error(BASE "keys:\n  - {id: k, sha256: " DEMO_HASH ", limits: [10]}\n",
                 "t.yaml:9: keys[0].limits: must be a mapping of field: value, not a list");
}

static void test_metering(void **state)
{
    (void)state;
    tg_config *c = parse_ok("metering:\n"
                            "  enabled: false\n"
                            "  data_dir: /var/lib/tollgate\n"
                            "  fsync: always\n"
                            "  fsync_interval_ms: 60000\n"
                            "  segment_bytes: 65536\n"
                            "  batch_records: 1000000\n"
                            "  flush_ms: 1\n");
    const tg_metering_conf *m = &c->metering;
    assert_false(m->enabled);
    assert_string_equal(m->data_dir, "/var/lib/tollgate");
    assert_int_equal(m->fsync, TG_FSYNC_ALWAYS);
    assert_int_equal(m->fsync_interval_ms, 60000);
    assert_int_equal(m->segment_bytes, 65536);
    assert_int_equal(m->batch_records, 1000000);
    assert_int_equal(m->flush_ms, 1);

    /* a reload is refused when any field differs */
    tg_config *d = parse_ok("metering: {fsync: never}\n");
    tg_config *e = parse_ok("metering:\n");
    tg_config *f = parse_ok("log: {level: warn}\nmetering: {data_dir: tollgate-data}\n");
    assert_int_equal(d->metering.fsync, TG_FSYNC_NEVER);
    assert_true(tg_metering_conf_eq(&e->metering, &f->metering));
    assert_true(tg_metering_conf_eq(&c->metering, &c->metering));
    assert_false(tg_metering_conf_eq(&c->metering, &e->metering));
    assert_false(tg_metering_conf_eq(&d->metering, &e->metering));
    tg_metering_conf x = e->metering, y = x;
    char other[] = "other";
    y.data_dir = other;
    assert_false(tg_metering_conf_eq(&x, &y));
    y = x, y.enabled = false;
    assert_false(tg_metering_conf_eq(&x, &y));
    y = x, y.fsync_interval_ms++;
    assert_false(tg_metering_conf_eq(&x, &y));
    y = x, y.segment_bytes++;
    assert_false(tg_metering_conf_eq(&x, &y));
    y = x, y.batch_records++;
    assert_false(tg_metering_conf_eq(&x, &y));
    y = x, y.flush_ms++;
    assert_false(tg_metering_conf_eq(&x, &y));
    tg_config_unref(c);
    tg_config_unref(d);
    tg_config_unref(e);
    tg_config_unref(f);

    expect_error("metering: {fsync: sometimes}\n",
                 "t.yaml:1: metering.fsync: must be one of always, interval, never");
    expect_error("metering: {segment_bytes: 65535}\n",
                 "t.yaml:1: metering.segment_bytes: must be between 65536 and 1073741824");
    expect_error("metering: {fsync_interval_ms: 0}\n",
                 "t.yaml:1: metering.fsync_interval_ms: must be between 1 and 60000");
    expect_error("metering: {batch_records: 1000001}\n",
                 "t.yaml:1: metering.batch_records: must be between 1 and 1000000");
    expect_error("metering: {flush_ms: 60001}\n",
                 "t.yaml:1: metering.flush_ms: must be between 1 and 60000");
    expect_error("metering: {data_dir: \"\"}\n", "t.yaml:1: metering.data_dir: must not be empty");
    expect_error("metering: {enabled: 1}\n", "t.yaml:1: metering.enabled: must be true or false");
    expect_error("metering: [1]\n",
                 "t.yaml:1: metering: must be a mapping of field: value, not a list");
    expect_error("metering: {fsync_ms: 1}\n",
                 "t.yaml:1: metering: unknown field 'fsync_ms' (expected one of: enabled, "
                 "data_dir, fsync, fsync_interval_ms, segment_bytes, batch_records, flush_ms)");
}

static void test_tags(void **state)
{
    (void)state;
    char max[129];
    memset(max, 'x', 128);
    max[128] = '\0';
    const char *good[] = {"a", "0", "acme", "A-Z_0.9:@/+=#-", "user@example.com", "team/eu+1=2#3",
                          max};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(tg_tag_valid(tg_str_c(good[i])));
    assert_false(tg_tag_valid(TG_STR_NULL));
    assert_false(tg_tag_valid(tg_str_make(max, 0)));
    char over[130];
    memset(over, 'x', 129);
    assert_false(tg_tag_valid(tg_str_make(over, 129)));
    const char *bad[] = {"a b", "a,b", "a;b", "a\"b", "a'b", "a\\b", "a\tb", "caf\xc3\xa9", "a\nb",
                         "a*b", "a?b", "a%b", "a&b",  "<a>", "a|b",  "a!b",  "a(b)"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(tg_tag_valid(tg_str_c(bad[i])));
    assert_false(tg_tag_valid(tg_str_make("a\0b", 3))); /* a NUL is not a tag byte */
}

static void test_yaml_errors(void **state)
{
    (void)state;
    expect_error("server:\n  listen: 127.0.0.1:8080\n workers: 2\n",
                 "t.yaml:3: yaml: did not find expected key (while parsing a block mapping at "
                 "line 1)");
    expect_error("server:\n  listen 127.0.0.1:8080\n  workers: 2\n",
                 "t.yaml:3: yaml: mapping values are not allowed in this context");
    expect_error("models: [a, b\nkeys: []\n",
                 "t.yaml:2: yaml: did not find expected ',' or ']' (while parsing a flow sequence "
                 "at line 1)");
    expect_error("log:\n\tlevel: info\n", "t.yaml:2: yaml: a tab character; indent with spaces");
    expect_error("log: &l {level: info}\n", "t.yaml:1: yaml: anchors (&name) are not supported");
    expect_error("a: &x 1\nb: *x\n", "t.yaml:1: yaml: anchors (&name) are not supported");
    expect_error("log: {level: info}\n---\nlog: {level: info}\n",
                 "t.yaml:2: yaml: only one document is allowed (remove '---')");
    expect_error("? [a]\n: 1\n", "t.yaml:1: yaml: mapping keys must be plain names");
    /* NUL bytes and invalid UTF-8 are refused by libyaml's reader */
    tg_config *c = NULL;
    tg_errmsg err = {{0}};
    assert_int_equal(
        tg_config_parse("t.yaml", tg_str_make("log:\n  level: i\0nfo\n", 19), &c, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "t.yaml:2: yaml: "));
    assert_int_equal(tg_config_parse("t.yaml", TG_STR("log: {level: \xff}\n"), &c, &err),
                     TG_EINVAL);
    assert_non_null(strstr(err.msg, "t.yaml:1: yaml: "));
    assert_null(c);
}

static void test_api_key_env(void **state)
{
    (void)state;
    const char *text = "providers:\n"
                       "  - {name: a, base_url: \"https://x/v1\", api_key_env: TG_TEST_KEY}\n";
    unsetenv("TG_TEST_KEY");
    tg_config *c = parse_ok(text);
    assert_false(c->providers[0].available);
    assert_null(c->providers[0].api_key);
    assert_string_equal(c->providers[0].api_key_env, "TG_TEST_KEY");
    tg_config_unref(c);

    setenv("TG_TEST_KEY", "", 1); /* empty counts as unset */
    c = parse_ok(text);
    assert_false(c->providers[0].available);
    assert_null(c->providers[0].api_key);
    tg_config_unref(c);

    setenv("TG_TEST_KEY", "sk-secret-123", 1);
    c = parse_ok(text);
    assert_true(c->providers[0].available);
    assert_string_equal(c->providers[0].api_key, "sk-secret-123");
    tg_config_unref(c);

    /* a key that would break the Authorization header; never echoed */
    setenv("TG_TEST_KEY", "sk-secret\r\nX-Evil: 1", 1);
    expect_error(text, "t.yaml:2: providers[0].api_key_env: the value of $TG_TEST_KEY contains "
                       "spaces or control characters");
    unsetenv("TG_TEST_KEY");
}

static void test_load_errors(void **state)
{
    (void)state;
    tg_config *c = NULL;
    tg_errmsg err = {{0}};
    assert_int_equal(tg_config_load("/nonexistent/tollgate.yaml", &c, &err), TG_EIO);
    assert_string_equal(err.msg, "/nonexistent/tollgate.yaml: cannot open: No such file or "
                                 "directory");
    assert_null(c);

    char path[] = "/tmp/tg_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("server:\n  listen: 127.0.0.1:9\n  wrkers: 2\n", f);
    fclose(f);
    assert_int_equal(tg_config_load(path, &c, &err), TG_EINVAL);
    char want[256];
    snprintf(want, sizeof want, "%s:3: server: unknown field 'wrkers' (expected one of: ", path);
    assert_memory_equal(err.msg, want, strlen(want));
    unlink(path);
}

static void test_addr(void **state)
{
    (void)state;
    tg_addr a;
    assert_int_equal(tg_addr_parse(TG_STR("127.0.0.1:8080"), &a), TG_OK);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 8080);
    assert_int_equal(tg_addr_parse(TG_STR("[::1]:0"), &a), TG_OK);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 0);
    assert_int_equal(tg_addr_parse(TG_STR("[::]:65535"), &a), TG_OK);
    assert_int_equal(a.port, 65535);
    const char *bad[] = {
        "",           ":80",           "127.0.0.1",    "127.0.0.1:",  "1.2.3.4:x",
        "1.2.3.4:-1", "1.2.3.4:65536", "::1:80",       "[::1]80",     "[::1]",
        "[::1:80",    "localhost:80",  "[1.2.3.4]:80", "1.2.3.4 :80", "999.1.1.1:80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tg_addr b = {"untouched", 7};
        assert_int_equal(tg_addr_parse(tg_str_c(bad[i]), &b), TG_EINVAL);
        assert_string_equal(b.host, "untouched");
    }
}

static void test_faults(void **state)
{
    (void)state;
    const char *names[] = {"429", "500", "503", "timeout", "reset", "cut", "malformed"};
    for (size_t i = 0; i < 7; i++) {
        tg_sim_fault f = TG_SIM_FAULT_NONE;
        assert_int_equal(tg_sim_fault_parse(tg_str_c(names[i]), &f), TG_OK);
        assert_int_equal(f, (tg_sim_fault)(i + 1));
        assert_string_equal(tg_sim_fault_name(f), names[i]);
    }
    tg_sim_fault f;
    assert_int_equal(tg_sim_fault_parse(TG_STR("none"), &f), TG_EINVAL);
    assert_int_equal(tg_sim_fault_parse(TG_STR("TIMEOUT"), &f), TG_EINVAL);
    assert_string_equal(tg_sim_fault_name(TG_SIM_FAULT_NONE), "none");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example),        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full),           cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_duplicates),     cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_api_key_env),    cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_addr),           cmocka_unit_test(test_faults),
        cmocka_unit_test(test_prices),         cmocka_unit_test(test_catalog),
        cmocka_unit_test(test_catalog_errors), cmocka_unit_test(test_metering),
        cmocka_unit_test(test_tags),           cmocka_unit_test(test_plans),
        cmocka_unit_test(test_plan_errors),    cmocka_unit_test(test_app_limits_errors),
        cmocka_unit_test(test_api_plans),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
