/* Unit tests for pricing (src/meter/price.c): cost by the five disjoint
 * token kinds, provider usage normalisation, the batch discount, each
 * margin policy, override resolution by weight, requests without an app,
 * the record fill, explain's text, overflow refusals, and a conservation
 * run over a million random records: charge == cost + margin + fee for
 * each and for the sums, to the nano.
 *
 * The config loader applies price defaults (cached_input = input, ...);
 * these tests build tg_price in full, as the loader would leave it. */
#include "meter/price.h"
#include "base/rng.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USD TG_NANOS_PER_USD
/* a price per 1M tokens from nanos per token, to keep the arithmetic legible */
#define PER_TOKEN(n) ((tg_nanos)(n)*1000000)

static tg_offering offering(tg_nanos in, tg_nanos cached, tg_nanos cw, tg_nanos out, tg_nanos reas)
{
    tg_offering o = {.id = "sim/model", .line = 7};
    o.price = (tg_price){
        .input = in, .cached_input = cached, .cache_write = cw, .output = out, .reasoning = reas};
    return o;
}

static tg_margin margin(int64_t markup, tg_nanos surcharge, int64_t fee)
{
    return (tg_margin){.has_markup = true,
                       .has_surcharge = true,
                       .has_fee = true,
                       .markup_bps = markup,
                       .surcharge = surcharge,
                       .platform_fee_bps = fee};
}

static tg_app app_with(tg_margin m)
{
    return (tg_app){.id = "shop", .line = 3, .margin = m};
}

static tg_price_ctx ctx_for(const tg_app *app)
{
    return (tg_price_ctx){.app = app,
                          .customer = TG_STR("acme"),
                          .plan = TG_STR("pro"),
                          .feature = TG_STR("chat"),
                          .model = TG_STR("gpt"),
                          .unit = TG_STR("")};
}

static tg_priced price_ok(const tg_offering *o, const tg_price_ctx *c, tg_tokens t)
{
    tg_priced p;
    tg_errmsg e = {{0}};
    if (tg_price_request(o, c, &t, &p, &e)) fail_msg("price: %s", e.msg);
    assert_true((__int128)p.cost + p.margin + p.fee == p.charge);
    return p;
}

static const tg_tokens T_ALL = {
    .prompt = 1000, .cached = 200, .cache_write = 100, .completion = 500, .reasoning = 50};

static void test_cost_kinds(void **state)
{
    (void)state;
    tg_offering o = offering(PER_TOKEN(1000), PER_TOKEN(100), PER_TOKEN(1250), PER_TOKEN(2000),
                             PER_TOKEN(3000));
    o.price.per_request = USD / 100;
    tg_price_ctx c = ctx_for(NULL);
    tg_priced p = price_ok(&o, &c, T_ALL);
    assert_int_equal(p.input, 700 * 1000); /* 1000 - 200 cached - 100 written */
    assert_int_equal(p.cached_input, 200 * 100);
    assert_int_equal(p.cache_write, 100 * 1250);
    assert_int_equal(p.output, 450 * 2000); /* 500 - 50 reasoning */
    assert_int_equal(p.reasoning, 50 * 3000);
    assert_int_equal(p.per_request, USD / 100);
    assert_int_equal(p.batch_discount, 0);
    assert_int_equal(p.cost, 700000 + 20000 + 125000 + 900000 + 150000 + USD / 100);
    /* no app: at cost */
    assert_int_equal(p.charge, p.cost);
    assert_int_equal(p.margin, 0);
    assert_int_equal(p.fee, 0);
    assert_null(p.rule);
    assert_null(p.app);
}

static void test_cost_rounds_per_kind(void **state)
{
    (void)state;
    /* 0.00015 USD/1M is 0.15 nano a token: 3 tokens = 0.45 -> 0; 0.5 -> 1 */
    tg_offering o = offering(150000, 500000, 150000, 1500000, 1500000);
    tg_price_ctx c = ctx_for(NULL);
    tg_priced p =
        price_ok(&o, &c, (tg_tokens){.prompt = 4, .cached = 1, .completion = 3, .reasoning = 1});
    assert_int_equal(p.input, 0);        /* 3 x 0.15 = 0.45 */
    assert_int_equal(p.cached_input, 1); /* 1 x 0.5 */
    assert_int_equal(p.output, 3);       /* 2 x 1.5 = 3 */
    assert_int_equal(p.reasoning, 2);    /* 1 x 1.5 -> 2 */
    assert_int_equal(p.cost, 6);
}

static void test_normalise(void **state)
{
    (void)state;
    /* the same real usage: 700 fresh input, 300 cache reads, 200 output */
    tg_tokens a = tg_tokens_openai(1000, 200, 300, 0);
    tg_tokens b = tg_tokens_anthropic(700, 200, 300, 0);
    assert_memory_equal(&a, &b, sizeof a);
    assert_int_equal(a.prompt, 1000);
    assert_int_equal(a.cached, 300);
    tg_offering o =
        offering(PER_TOKEN(10), PER_TOKEN(1), PER_TOKEN(12), PER_TOKEN(40), PER_TOKEN(40));
    tg_price_ctx c = ctx_for(NULL);
    tg_priced pa = price_ok(&o, &c, a), pb = price_ok(&o, &c, b);
    assert_int_equal(pa.cost, pb.cost);
    assert_int_equal(pa.cost, 700 * 10 + 300 * 1 + 200 * 40); /* cached counted once */

    /* Anthropic cache writes are inside the prompt, billed at cache_write */
    tg_tokens w = tg_tokens_anthropic(700, 200, 300, 50);
    assert_int_equal(w.prompt, 1050);
    assert_int_equal(w.cache_write, 50);
    assert_int_equal(price_ok(&o, &c, w).cost, pa.cost + 50 * 12);

    /* OpenAI reasoning is inside completion */
    tg_tokens r = tg_tokens_openai(10, 100, 0, 30);
    assert_int_equal(r.completion, 100);
    assert_int_equal(r.reasoning, 30);
}

static void test_normalise_clamps(void **state)
{
    (void)state;
    tg_tokens t = tg_tokens_openai(-5, -1, 10, 10);
    assert_int_equal(t.prompt + t.cached + t.cache_write + t.completion + t.reasoning, 0);
    t = tg_tokens_openai(100, 10, 150, 20);
    assert_int_equal(t.cached, 100);
    assert_int_equal(t.reasoning, 10);
    t = tg_tokens_anthropic(-3, -3, -3, -3);
    assert_int_equal(t.prompt + t.cached + t.cache_write + t.completion, 0);
    t = tg_tokens_anthropic(INT64_MAX, 1, INT64_MAX, INT64_MAX);
    assert_int_equal(t.prompt, INT64_MAX);
    assert_true(t.cached + t.cache_write <= t.prompt);
    t = tg_tokens_anthropic(10, 1, INT64_MAX, INT64_MAX);
    assert_int_equal(t.prompt, INT64_MAX);
    assert_int_equal(t.cached, INT64_MAX - 10);
    assert_int_equal(t.cache_write, 0);
}

static void test_defaults_shape(void **state)
{
    (void)state;
    /* as loaded with only input and output given: cached and writes at the
       input price, reasoning at the output price, so splitting changes nothing */
    tg_offering o = offering(PER_TOKEN(5), PER_TOKEN(5), PER_TOKEN(5), PER_TOKEN(9), PER_TOKEN(9));
    tg_price_ctx c = ctx_for(NULL);
    tg_nanos plain = price_ok(&o, &c, (tg_tokens){.prompt = 1000, .completion = 500}).cost;
    assert_int_equal(price_ok(&o, &c, T_ALL).cost, plain);
    assert_int_equal(plain, 1000 * 5 + 500 * 9);
}

static void test_batch_discount(void **state)
{
    (void)state;
    tg_offering o = offering(PER_TOKEN(1000), PER_TOKEN(100), PER_TOKEN(1250), PER_TOKEN(2000),
                             PER_TOKEN(3000));
    o.price.per_request = 1000;
    o.price.batch_discount_bps = 5000;
    tg_price_ctx c = ctx_for(NULL);
    tg_priced full = price_ok(&o, &c, T_ALL);
    assert_int_equal(full.batch_discount, 0); /* not a batch call */
    c.batch = true;
    tg_priced half = price_ok(&o, &c, T_ALL);
    /* half the token cost, the per-request fee untouched */
    assert_int_equal(half.batch_discount, 1895000 / 2);
    assert_int_equal(half.cost, 1895000 / 2 + 1000);
    assert_int_equal(half.input, full.input); /* kinds are before the discount */
    /* the discount rounds half-up: 3 nanos of tokens at 50% -> 2 off */
    tg_offering s = offering(PER_TOKEN(3), 0, 0, 0, 0);
    s.price.batch_discount_bps = 5000;
    tg_priced p = price_ok(&s, &c, (tg_tokens){.prompt = 1});
    assert_int_equal(p.batch_discount, 2);
    assert_int_equal(p.cost, 1);
    s.price.batch_discount_bps = 10000;
    assert_int_equal(price_ok(&s, &c, (tg_tokens){.prompt = 1}).cost, 0);
}

static tg_offering simple(void)
{
    return offering(PER_TOKEN(10), PER_TOKEN(10), PER_TOKEN(10), PER_TOKEN(30), PER_TOKEN(30));
}
/* cost 1000 x 10 + 1000 x 30 = 40,000 nanos */
static const tg_tokens T_SIMPLE = {.prompt = 1000, .completion = 1000};

static void test_markup(void **state)
{
    (void)state;
    tg_offering o = simple();
    tg_app a = app_with(margin(2500, 0, 0));
    tg_price_ctx c = ctx_for(&a);
    tg_priced p = price_ok(&o, &c, T_SIMPLE);
    assert_int_equal(p.cost, 40000);
    assert_int_equal(p.charge, 50000);
    assert_int_equal(p.margin, 10000);
    assert_int_equal(p.fee, 0);
    assert_null(p.rule);
    assert_ptr_equal(p.app, &a);
    assert_int_equal(p.markup_bps, 2500);
    /* markup rounds half-up: 1 bps of 40,000 is 4; of 5,000 it is 0.5 */
    a.margin.markup_bps = 1;
    assert_int_equal(price_ok(&o, &c, T_SIMPLE).charge, 40004);
    assert_int_equal(price_ok(&o, &c, (tg_tokens){.prompt = 500}).charge, 5001); /* 0.5 -> 1 */
}

static void test_negative_markup(void **state)
{
    (void)state;
    tg_offering o = simple();
    tg_app a = app_with(margin(-2500, 0, 0));
    tg_price_ctx c = ctx_for(&a);
    tg_priced p = price_ok(&o, &c, T_SIMPLE);
    assert_int_equal(p.charge, 30000);
    assert_int_equal(p.margin, -10000); /* a margin leak, recorded as such */
    /* -0.5 nano of markup rounds away from zero */
    a.margin.markup_bps = -1;
    assert_int_equal(price_ok(&o, &c, (tg_tokens){.prompt = 500}).charge, 4999);
    /* -100%: free, never a credit */
    a.margin.markup_bps = -10000;
    p = price_ok(&o, &c, T_SIMPLE);
    assert_int_equal(p.charge, 0);
    assert_int_equal(p.margin, -40000);
    /* deeper than the cost (the loader refuses it; pricing still clamps) */
    a.margin.markup_bps = -30000;
    a.margin.surcharge = 5000;
    p = price_ok(&o, &c, T_SIMPLE);
    assert_int_equal(p.charge, 0);
    assert_int_equal(p.margin, -40000);
}

static void test_surcharge_and_fee(void **state)
{
    (void)state;
    tg_offering o = simple();
    tg_app a = app_with(margin(1000, USD / 100, 0));
    tg_price_ctx c = ctx_for(&a);
    tg_priced p = price_ok(&o, &c, T_SIMPLE);
    assert_int_equal(p.charge, 44000 + USD / 100);
    assert_int_equal(p.surcharge, USD / 100);
    /* a 3% platform fee comes out of the margin */
    a.margin.platform_fee_bps = 300;
    p = price_ok(&o, &c, T_SIMPLE);
    assert_int_equal(p.fee, (44000 + USD / 100) * 3 / 100);
    assert_int_equal(p.margin, p.charge - 40000 - p.fee);
    assert_int_equal(p.platform_fee_bps, 300);
    /* the fee rounds half-up: 1 bps of 5,000 nanos is 0.5 */
    tg_app b = app_with(margin(0, 0, 1));
    c.app = &b;
    p = price_ok(&o, &c, (tg_tokens){.prompt = 500});
    assert_int_equal(p.fee, 1);
    assert_int_equal(p.margin, -1);
    /* a fee on a zero-margin app is a margin leak too */
    b.margin.platform_fee_bps = 10000;
    p = price_ok(&o, &c, T_SIMPLE);
    assert_int_equal(p.fee, 40000);
    assert_int_equal(p.margin, -40000);
}

/* A hard cap's room lowers the charge; the fee follows the lowered charge
 * and the margin takes the rest (negative when the cost is not covered). */
static void test_charge_cap(void **state)
{
    (void)state;
    tg_offering o = simple();
    tg_app a = app_with(margin(1000, 0, 500));
    tg_price_ctx c = ctx_for(&a);
    c.has_cap = true;
    c.charge_cap = 44000; /* exactly the charge: nothing changes */
    tg_priced p = price_ok(&o, &c, T_SIMPLE);
    assert_false(p.capped);
    assert_int_equal(p.charge, 44000);
    c.charge_cap = 30000; /* under the cost of 40,000 */
    p = price_ok(&o, &c, T_SIMPLE);
    assert_true(p.capped);
    assert_int_equal(p.cost, 40000);
    assert_int_equal(p.charge, 30000);
    assert_int_equal(p.fee, 1500);
    assert_int_equal(p.margin, 30000 - 40000 - 1500);
    char rule[TG_PRICE_RULE_LEN];
    tg_price_rule_name(&p, rule);
    assert_string_equal(rule, "app+cap");
    c.charge_cap = -5; /* no room at all */
    p = price_ok(&o, &c, T_SIMPLE);
    assert_int_equal(p.charge, 0);
    assert_int_equal(p.fee, 0);
    assert_int_equal(p.margin, -40000);
}

static void test_unit_prices(void **state)
{
    (void)state;
    tg_offering o = simple();
    tg_unit_price units[] = {{"report", 40 * USD / 100}, {"summary", 5 * USD / 100}};
    tg_app a = app_with(margin(2000, 7, 1000));
    a.margin.units = units;
    a.margin.nunits = 2;
    tg_price_ctx c = ctx_for(&a);
    c.unit = TG_STR("report");
    static const int64_t counts[] = {0, 1, 3};
    for (size_t i = 0; i < 3; i++) {
        c.unit_count = counts[i];
        tg_priced p = price_ok(&o, &c, T_SIMPLE);
        assert_ptr_equal(p.unit, &units[0]);
        assert_int_equal(p.charge, counts[i] * 40 * USD / 100); /* no markup, no surcharge */
        assert_int_equal(p.fee, p.charge / 10);
        assert_int_equal(p.margin, p.charge - 40000 - p.fee);
    }
    /* a unit the app does not price falls back to the markup */
    c.unit = TG_STR("essay");
    c.unit_count = 3;
    tg_priced p = price_ok(&o, &c, T_SIMPLE);
    assert_null(p.unit);
    assert_int_equal(p.charge, 48007);
    /* no unit at all: the markup */
    c.unit = TG_STR("");
    assert_int_equal(price_ok(&o, &c, T_SIMPLE).charge, 48007);
    /* a negative count is refused, and out is zeroed */
    c.unit = TG_STR("summary");
    c.unit_count = -1;
    tg_errmsg e = {{0}};
    tg_tokens t = T_SIMPLE;
    assert_int_equal(tg_price_request(&o, &c, &t, &p, &e), TG_EINVAL);
    assert_non_null(strstr(e.msg, "negative"));
    assert_int_equal(p.cost, 0);
    assert_int_equal(p.charge, 0);
}

/* ---- overrides ---- */

static tg_override ov(int line, const char *customer, const char *plan, const char *feature,
                      const char *model, int64_t markup)
{
    tg_override o = {.line = line,
                     .customer = (char *)customer,
                     .plan = (char *)plan,
                     .feature = (char *)feature,
                     .model = (char *)model};
    o.margin.has_markup = true;
    o.margin.markup_bps = markup;
    return o;
}

static int rule_line(tg_override *ovs, size_t n, const tg_price_ctx *base)
{
    tg_app a = app_with(margin(0, 0, 0));
    a.overrides = ovs;
    a.noverrides = n;
    tg_price_ctx c = *base;
    c.app = &a;
    const tg_override *r = tg_price_rule(&a, &c);
    return r ? r->line : 0;
}

static void test_override_weights(void **state)
{
    (void)state;
    tg_price_ctx c = ctx_for(NULL);
    tg_override m = ov(10, NULL, NULL, NULL, "gpt", 1), f = ov(11, NULL, NULL, "chat", NULL, 2),
                p = ov(12, NULL, "pro", NULL, NULL, 3), cu = ov(13, "acme", NULL, NULL, NULL, 4);
    /* customer 8 > plan 4 > feature 2 > model 1, whatever the order in the file */
    assert_int_equal(rule_line((tg_override[]){m, f, p, cu}, 4, &c), 13);
    assert_int_equal(rule_line((tg_override[]){cu, p, f, m}, 4, &c), 13);
    assert_int_equal(rule_line((tg_override[]){m, f, p}, 3, &c), 12);
    assert_int_equal(rule_line((tg_override[]){p, f, m}, 3, &c), 12);
    assert_int_equal(rule_line((tg_override[]){m, f}, 2, &c), 11);
    assert_int_equal(rule_line((tg_override[]){m}, 1, &c), 10);
    /* fields add up: plan+feature+model is 7, still below customer's 8 */
    tg_override pfm = ov(20, NULL, "pro", "chat", "gpt", 0);
    assert_int_equal(rule_line((tg_override[]){pfm, cu}, 2, &c), 13);
    assert_int_equal(rule_line((tg_override[]){pfm, p}, 2, &c), 20);
    /* plan+feature (6) beats plan (4) and feature (2) but not customer (8) */
    tg_override pf = ov(21, NULL, "pro", "chat", NULL, 0);
    assert_int_equal(rule_line((tg_override[]){p, pf, f}, 3, &c), 21);
    assert_int_equal(rule_line((tg_override[]){pf, cu}, 2, &c), 13);
    /* customer+model (9) beats customer (8) */
    tg_override cm = ov(22, "acme", NULL, NULL, "gpt", 0);
    assert_int_equal(rule_line((tg_override[]){cu, cm}, 2, &c), 22);
    /* a field that differs disqualifies the whole override */
    tg_override other = ov(23, "globex", "pro", "chat", "gpt", 0);
    assert_int_equal(rule_line((tg_override[]){other, m}, 2, &c), 10);
    assert_int_equal(rule_line((tg_override[]){other}, 1, &c), 0);
    /* an absent request field matches no named value */
    tg_price_ctx anon = c;
    anon.customer = TG_STR("");
    assert_int_equal(rule_line((tg_override[]){cu, p}, 2, &anon), 12);
    /* a tie (the loader refuses it) goes to the first in the file */
    tg_override p2 = ov(30, NULL, "pro", NULL, NULL, 0);
    assert_int_equal(rule_line((tg_override[]){p, p2}, 2, &c), 12);
    assert_int_equal(rule_line((tg_override[]){p2, p}, 2, &c), 30);
    /* no app, no rule */
    assert_null(tg_price_rule(NULL, &c));
}

static void test_override_policy(void **state)
{
    (void)state;
    tg_offering o = simple();
    tg_unit_price app_units[] = {{"report", 100}, {"page", 7}};
    tg_unit_price ov_units[] = {{"report", 300}};
    tg_app a = app_with(margin(1000, 50, 500));
    a.margin.units = app_units;
    a.margin.nunits = 2;
    tg_override ovs[] = {ov(40, NULL, "pro", NULL, NULL, 5000)};
    a.overrides = ovs;
    a.noverrides = 1;
    tg_price_ctx c = ctx_for(&a);
    /* the override names only the markup: surcharge and fee stay the app's */
    tg_priced p = price_ok(&o, &c, T_SIMPLE);
    assert_ptr_equal(p.rule, &ovs[0]);
    assert_int_equal(p.markup_bps, 5000);
    assert_int_equal(p.surcharge, 50);
    assert_int_equal(p.platform_fee_bps, 500);
    assert_int_equal(p.charge, 60050);
    assert_int_equal(p.fee, 3003); /* 5% of 60,050 = 3,002.5 -> 3,003 */
    /* it names the surcharge and fee too */
    ovs[0].margin.has_surcharge = ovs[0].margin.has_fee = true;
    ovs[0].margin.surcharge = 0;
    ovs[0].margin.platform_fee_bps = 0;
    p = price_ok(&o, &c, T_SIMPLE);
    assert_int_equal(p.charge, 60000);
    assert_int_equal(p.fee, 0);
    assert_int_equal(p.margin, 20000);
    /* units: the override's list first, then the app's */
    ovs[0].margin.units = ov_units;
    ovs[0].margin.nunits = 1;
    c.unit = TG_STR("report");
    c.unit_count = 2;
    p = price_ok(&o, &c, T_SIMPLE);
    assert_ptr_equal(p.unit, &ov_units[0]);
    assert_int_equal(p.charge, 600);
    c.unit = TG_STR("page");
    p = price_ok(&o, &c, T_SIMPLE);
    assert_ptr_equal(p.unit, &app_units[1]);
    assert_int_equal(p.charge, 14);
    /* the override does not match: the app's own margin, app's unit price */
    c.plan = TG_STR("free");
    c.unit = TG_STR("report");
    p = price_ok(&o, &c, T_SIMPLE);
    assert_null(p.rule);
    assert_ptr_equal(p.unit, &app_units[0]);
    assert_int_equal(p.charge, 200);
}

static void test_record_fill(void **state)
{
    (void)state;
    tg_offering o = simple();
    tg_app a = app_with(margin(2000, 0, 100));
    tg_override ovs[] = {ov(57, "acme", NULL, NULL, NULL, 3000)};
    tg_price_ctx c = ctx_for(&a);
    static tg_usage_rec r;
    char rule[TG_PRICE_RULE_LEN];
    tg_priced p = price_ok(&o, &c, T_SIMPLE);
    tg_price_to_record(&p, &r);
    r.tokens = T_SIMPLE;
    assert_int_equal(tg_price_rule_name(&p, rule), 3);
    assert_string_equal(rule, "app");
    assert_int_equal(r.charge, 48000);
    assert_int_equal(r.fee, 480);
    assert_int_equal(r.margin, 48000 - 40000 - 480);
    assert_int_equal(r.cost, 40000);
    tg_record_check(&r);
    a.overrides = ovs;
    a.noverrides = 1;
    p = price_ok(&o, &c, T_SIMPLE);
    tg_price_to_record(&p, &r);
    assert_int_equal(tg_price_rule_name(&p, rule), 11);
    assert_string_equal(rule, "override@57");
    assert_int_equal(r.charge, 52000);
    tg_record_check(&r);
    c.app = NULL;
    p = price_ok(&o, &c, T_SIMPLE);
    tg_price_to_record(&p, &r);
    assert_int_equal(tg_price_rule_name(&p, rule), 4);
    assert_string_equal(rule, "cost");
    assert_int_equal(r.charge, 40000);
    tg_record_check(&r);
}

static void test_overflow(void **state)
{
    (void)state;
    tg_offering o = offering(9000000000LL * USD, 0, 0, 9000000000LL * USD, 0);
    tg_price_ctx c = ctx_for(NULL);
    tg_tokens t = {.prompt = 1000000000};
    tg_priced p;
    tg_errmsg e = {{0}};
    assert_int_equal(tg_price_request(&o, &c, &t, &p, &e), TG_EINVAL);
    assert_non_null(strstr(e.msg, "input cost"));
    assert_int_equal(p.cost, 0);
    /* each kind fits but their sum does not */
    t = (tg_tokens){.prompt = 1000, .completion = 1000};
    assert_int_equal(tg_price_request(&o, &c, &t, &p, &e), TG_OK);
    t = (tg_tokens){.prompt = 1000000, .completion = 1000000};
    o.price.input = o.price.output = INT64_MAX / 2 + 1;
    assert_int_equal(tg_price_request(&o, &c, &t, &p, &e), TG_EINVAL);
    assert_non_null(strstr(e.msg, "token cost"));
    /* the markup overflows */
    o.price.input = o.price.output = 0;
    o.price.per_request = INT64_MAX / 2;
    tg_app a = app_with(margin(15000, 0, 0)); /* the markup fits, the sum does not */
    c.app = &a;
    assert_int_equal(tg_price_request(&o, &c, &t, &p, &e), TG_EINVAL);
    assert_non_null(strstr(e.msg, "charge"));
    assert_int_equal(p.charge, 0);
    /* a unit charge too large */
    tg_unit_price u = {"x", INT64_MAX / 2};
    a.margin.units = &u;
    a.margin.nunits = 1;
    c.unit = TG_STR("x");
    c.unit_count = 3;
    assert_int_equal(tg_price_request(&o, &c, &t, &p, &e), TG_EINVAL);
    assert_non_null(strstr(e.msg, "unit charge"));
}

static void test_explain(void **state)
{
    (void)state;
    tg_offering o = offering(150000000, 75000000, 187500000, 600000000, 600000000);
    tg_app a = app_with(margin(2000, USD / 1000, 300));
    tg_override ovs[] = {ov(41, "globex", NULL, NULL, NULL, 0),
                         ov(42, NULL, "pro", NULL, NULL, 5000),
                         ov(43, NULL, "pro", "chat", NULL, 4000)};
    a.overrides = ovs;
    a.noverrides = 3;
    tg_price_ctx c = ctx_for(&a);
    tg_tokens t = T_ALL;
    tg_priced p = price_ok(&o, &c, t);
    tg_buf b;
    tg_buf_init(&b, 1 << 16);
    assert_int_equal(tg_price_explain(&o, &c, &t, &p, &b), TG_OK);
    const char *want[] = {"sim/model",
                          "input 0.150000000",
                          "cached 200",
                          "override@43",
                          "override@41",
                          "request customer is \"acme\"",
                          "weight 4",
                          "weight 6 (highest: chosen)",
                          "markup 4000 bps of cost = 0.000175500",
                          "300 bps of charge = 0.000048428",
                          "% of charge",
                          "charge       USD "};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(b.p, want[i])) fail_msg("explain lacks \"%s\":\n%s", want[i], b.p);
    if (getenv("TG_SHOW_EXPLAIN")) fputs(b.p, stdout);
    /* no app */
    tg_buf_clear(&b);
    c.app = NULL;
    p = price_ok(&o, &c, t);
    assert_int_equal(tg_price_explain(&o, &c, &t, &p, &b), TG_OK);
    assert_non_null(strstr(b.p, "rule         cost"));
    /* a unit price */
    tg_buf_clear(&b);
    tg_unit_price u = {"report", USD / 2};
    a.margin.units = &u;
    a.margin.nunits = 1;
    c.app = &a;
    c.unit = TG_STR("report");
    c.unit_count = 2;
    p = price_ok(&o, &c, t);
    assert_int_equal(tg_price_explain(&o, &c, &t, &p, &b), TG_OK);
    assert_non_null(strstr(b.p, "per report x 2 units"));
    /* a charge clamped at zero says so */
    tg_buf_clear(&b);
    c.unit = TG_STR("");
    a.noverrides = 0;
    a.margin.markup_bps = -30000; /* outside the loader's range: pricing still clamps */
    a.margin.surcharge = 0;
    p = price_ok(&o, &c, t);
    assert_int_equal(tg_price_explain(&o, &c, &t, &p, &b), TG_OK);
    assert_non_null(strstr(b.p, "below 0: clamped to 0"));
    assert_non_null(strstr(b.p, "it has no overrides"));
    assert_non_null(strstr(b.p, "(no charge: no percentage)"));
    /* a small cap refuses instead of truncating silently */
    tg_buf small;
    tg_buf_init(&small, 40);
    assert_int_equal(tg_price_explain(&o, &c, &t, &p, &small), TG_ETOOBIG);
    tg_buf_release(&small);
    tg_buf_release(&b);
}

/* ---- conservation over random records ---- */

#define R_OFFERINGS 64
#define R_APPS 16
#define R_OVERRIDES 6
#define R_RECORDS 1000000

static const char *const r_customers[] = {"acme", "globex", "initech"};
static const char *const r_plans[] = {"free", "pro"};
static const char *const r_features[] = {"chat", "report"};
static const char *const r_models[] = {"gpt", "claude"};
static tg_unit_price r_units[][2] = {{{"report", 40 * USD / 100}, {"page", 3 * USD / 100}},
                                     {{"report", 0}, {"essay", 2 * USD}}};

static const char *pick(tg_rng *r, const char *const *v, size_t n, bool may_be_null)
{
    if (may_be_null && tg_rng_below(r, 2)) return NULL;
    return v[tg_rng_below(r, n)];
}

static tg_str pick_str(tg_rng *r, const char *const *v, size_t n)
{
    /* one time in four the request does not carry the tag */
    const char *s = tg_rng_below(r, 4) ? v[tg_rng_below(r, n)] : "";
    return tg_str_c(s);
}

static tg_nanos r_price(tg_rng *r)
{
    /* up to 100 USD per 1M tokens, a zero now and then */
    return tg_rng_below(r, 8) ? (tg_nanos)tg_rng_below(r, 100 * USD + 1) : 0;
}

static void r_margin(tg_rng *r, tg_margin *m, bool all)
{
    m->has_markup = all || tg_rng_below(r, 2);
    m->has_surcharge = all || tg_rng_below(r, 2);
    m->has_fee = all || tg_rng_below(r, 2);
    m->markup_bps = (int64_t)tg_rng_below(r, 1010001) - 10000; /* the loader's range */
    m->surcharge = tg_rng_below(r, 2) ? (tg_nanos)tg_rng_below(r, USD) : 0;
    m->platform_fee_bps = (int64_t)tg_rng_below(r, 10001);
    size_t u = (size_t)tg_rng_below(r, 3);
    m->units = u ? r_units[u - 1] : NULL;
    m->nunits = u ? 2 : 0;
}

typedef struct {
    tg_offering offs[R_OFFERINGS];
    tg_app apps[R_APPS];
    tg_override ovs[R_APPS][R_OVERRIDES];
} r_world;

static void r_build(tg_rng *r, r_world *w)
{
    for (size_t i = 0; i < R_OFFERINGS; i++) {
        w->offs[i] = offering(r_price(r), r_price(r), r_price(r), r_price(r), r_price(r));
        w->offs[i].price.per_request = tg_rng_below(r, 4) ? 0 : (tg_nanos)tg_rng_below(r, USD / 10);
        w->offs[i].price.batch_discount_bps = (int64_t)tg_rng_below(r, 10001);
    }
    for (size_t i = 0; i < R_APPS; i++) {
        tg_app *a = &w->apps[i];
        *a = app_with((tg_margin){0});
        r_margin(r, &a->margin, true);
        a->overrides = w->ovs[i];
        a->noverrides = (size_t)tg_rng_below(r, R_OVERRIDES + 1);
        for (size_t j = 0; j < a->noverrides; j++) {
            tg_override *o = &w->ovs[i][j];
            *o = ov((int)(100 + j), pick(r, r_customers, 3, true), pick(r, r_plans, 2, true),
                    pick(r, r_features, 2, true), pick(r, r_models, 2, true), 0);
            r_margin(r, &o->margin, false);
        }
    }
}

static tg_tokens r_tokens(tg_rng *r)
{
    /* one in 4096 is absurdly large, to take the overflow path */
    uint64_t cap = tg_rng_below(r, 4096) ? 2000000 : (uint64_t)INT64_MAX;
    tg_tokens t;
    t.prompt = (int64_t)tg_rng_below(r, cap);
    t.cached = (int64_t)tg_rng_below(r, (uint64_t)t.prompt + 1);
    t.cache_write = (int64_t)tg_rng_below(r, (uint64_t)(t.prompt - t.cached) + 1);
    t.completion = (int64_t)tg_rng_below(r, cap / 8);
    t.reasoning = tg_rng_below(r, 2) ? (int64_t)tg_rng_below(r, (uint64_t)t.completion + 1) : 0;
    return t;
}

/* The rule by brute force, to check tg_price_rule against. */
static int r_best_line(const tg_app *a, const tg_price_ctx *c)
{
    int best = -1, line = 0;
    for (size_t i = 0; i < a->noverrides; i++) {
        const tg_override *o = &a->overrides[i];
        const char *f[4] = {o->customer, o->plan, o->feature, o->model};
        const tg_str h[4] = {c->customer, c->plan, c->feature, c->model};
        int w = 0;
        for (int k = 0; k < 4 && w >= 0; k++)
            if (f[k]) w = tg_str_eq(tg_str_c(f[k]), h[k]) ? w + (8 >> k) : -1;
        if (w > best) best = w, line = o->line;
    }
    return line;
}

static void test_conservation(void **state)
{
    (void)state;
    static r_world w;
    static tg_usage_rec rec;
    tg_rng r = {20240613};
    r_build(&r, &w);
    __int128 sum_charge = 0, sum_cost = 0, sum_margin = 0, sum_fee = 0;
    long refused = 0, leaks = 0, units = 0, overrides = 0;
    for (long i = 0; i < R_RECORDS; i++) {
        const tg_offering *o = &w.offs[tg_rng_below(&r, R_OFFERINGS)];
        tg_price_ctx c = {.app = tg_rng_below(&r, 16) ? &w.apps[tg_rng_below(&r, R_APPS)] : NULL};
        c.customer = pick_str(&r, r_customers, 3);
        c.plan = pick_str(&r, r_plans, 2);
        c.feature = pick_str(&r, r_features, 2);
        c.model = tg_str_c(r_models[tg_rng_below(&r, 2)]);
        c.unit =
            tg_rng_below(&r, 2)
                ? tg_str_c((const char *[]){"report", "page", "essay", "x"}[tg_rng_below(&r, 4)])
                : TG_STR("");
        c.unit_count = (int64_t)tg_rng_below(&r, 6);
        c.batch = tg_rng_below(&r, 8) == 0;
        tg_tokens t = r_tokens(&r);
        tg_priced p;
        tg_errmsg e;
        if (tg_price_request(o, &c, &t, &p, &e)) {
            /* only the absurd token counts may overflow; out is zeroed */
            assert_true(t.prompt > 2000000 || t.completion > 2000000);
            assert_true(p.cost == 0 && p.charge == 0 && p.margin == 0 && p.fee == 0);
            refused++;
            continue;
        }
        assert_true((__int128)p.cost + p.margin + p.fee == p.charge);
        assert_true(p.cost >= 0 && p.charge >= 0 && p.fee >= 0 && p.fee <= p.charge);
        if (c.app) {
            int want = r_best_line(c.app, &c);
            assert_int_equal(p.rule ? p.rule->line : 0, want);
        } else {
            assert_true(p.charge == p.cost && p.margin == 0 && p.fee == 0);
        }
        leaks += p.margin < 0;
        units += p.unit != NULL;
        overrides += p.rule != NULL;
        rec.tokens = t;
        tg_price_to_record(&p, &rec);
        tg_record_check(&rec);
        sum_charge += p.charge;
        sum_cost += p.cost;
        sum_margin += p.margin;
        sum_fee += p.fee;
    }
    assert_true(sum_charge == sum_cost + sum_margin + sum_fee);
    /* the run reached every branch it means to test */
    assert_true(refused > 0 && leaks > 0 && units > 0 && overrides > 0);
    print_message("conservation: %d records, %ld refused (overflow), %ld margin leaks, %ld unit "
                  "priced, %ld by an override\n",
                  R_RECORDS, refused, leaks, units, overrides);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cost_kinds),
        cmocka_unit_test(test_cost_rounds_per_kind),
        cmocka_unit_test(test_normalise),
        cmocka_unit_test(test_normalise_clamps),
        cmocka_unit_test(test_defaults_shape),
        cmocka_unit_test(test_batch_discount),
        cmocka_unit_test(test_markup),
        cmocka_unit_test(test_negative_markup),
        cmocka_unit_test(test_surcharge_and_fee),
        cmocka_unit_test(test_charge_cap),
        cmocka_unit_test(test_unit_prices),
        cmocka_unit_test(test_override_weights),
        cmocka_unit_test(test_override_policy),
        cmocka_unit_test(test_record_fill),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_explain),
        cmocka_unit_test(test_conservation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
