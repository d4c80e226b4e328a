/* Pricing: tokens -> cost -> charge, margin and fee; see price.h and
 * docs/pricing.md.
 *
 * Invariants kept here: every amount is integer nanos computed through
 * money.h (128-bit intermediates, half-up rounding, overflow reported);
 * cost >= 0 and charge >= 0; and charge == cost + margin + fee exactly,
 * asserted on every priced request. Margin alone may be negative: a price
 * below cost is a margin leak the reports must show, not hide.
 *
 * Two choices the contract left open, both documented in docs/pricing.md:
 *   - the batch discount comes off the token cost only, not the offering's
 *     per-request fee (providers discount batch tokens, not calls);
 *   - a negative markup (or any policy) never charges below zero: the
 *     charge is clamped at 0 and the loss shows as negative margin. */
#include "meter/price.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static int64_t clamp0(int64_t v)
{
    return v < 0 ? 0 : v;
}
static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

tg_tokens tg_tokens_openai(int64_t prompt, int64_t completion, int64_t cached, int64_t reasoning)
{
    /* OpenAI counts cached reads inside prompt_tokens and reasoning inside
       completion_tokens; it reports no cache writes */
    tg_tokens t = {0};
    t.prompt = clamp0(prompt);
    t.cached = min64(clamp0(cached), t.prompt);
    t.completion = clamp0(completion);
    t.reasoning = min64(clamp0(reasoning), t.completion);
    return t;
}

tg_tokens tg_tokens_anthropic(int64_t input, int64_t output, int64_t cache_read,
                              int64_t cache_creation)
{
    /* Anthropic's input_tokens exclude both cache counts: the prompt is the
       sum. Each addend is capped so the sum cannot pass INT64_MAX. Thinking
       tokens are inside output_tokens and not reported apart. */
    tg_tokens t = {0};
    int64_t in = clamp0(input);
    t.cached = min64(clamp0(cache_read), INT64_MAX - in);
    t.cache_write = min64(clamp0(cache_creation), INT64_MAX - in - t.cached);
    t.prompt = in + t.cached + t.cache_write;
    t.completion = clamp0(output);
    return t;
}

/* ---- override resolution ---- */

#define W_CUSTOMER 8
#define W_PLAN 4
#define W_FEATURE 2
#define W_MODEL 1

typedef struct {
    const char *name; /* "customer" */
    const char *want; /* the override's value; NULL: any */
    tg_str have;      /* the request's */
    int weight;
} ov_field;

static void ov_fields(const tg_override *o, const tg_price_ctx *ctx, ov_field f[4])
{
    f[0] = (ov_field){"customer", o->customer, ctx->customer, W_CUSTOMER};
    f[1] = (ov_field){"plan", o->plan, ctx->plan, W_PLAN};
    f[2] = (ov_field){"feature", o->feature, ctx->feature, W_FEATURE};
    f[3] = (ov_field){"model", o->model, ctx->model, W_MODEL};
}

/* The override's weight when it matches ctx, -1 when it does not; *miss
 * (may be NULL) gets the first field that differs. */
static int ov_weight(const tg_override *o, const tg_price_ctx *ctx, const ov_field **miss,
                     ov_field f[4])
{
    ov_fields(o, ctx, f);
    int w = 0;
    for (int i = 0; i < 4; i++) {
        if (!f[i].want) continue;
        if (!tg_str_eq(tg_str_c(f[i].want), f[i].have)) {
            if (miss) *miss = &f[i];
            return -1;
        }
        w += f[i].weight;
    }
    return w;
}

const tg_override *tg_price_rule(const tg_app *app, const tg_price_ctx *ctx)
{
    if (!app) return NULL;
    const tg_override *best = NULL;
    int best_w = -1;
    for (size_t i = 0; i < app->noverrides; i++) {
        ov_field f[4];
        int w = ov_weight(&app->overrides[i], ctx, NULL, f);
        /* strictly greater: on a tie (config refuses those) the first in
           the file keeps it, so the answer never depends on luck */
        if (w > best_w) best = &app->overrides[i], best_w = w;
    }
    return best;
}

/* ---- cost ---- */

static int overflow(tg_errmsg *err, const char *what)
{
    return tg_errmsg_set(err, "the %s does not fit in int64 nanos (over 9.2 billion USD)", what);
}

static int kind_cost(int64_t tokens, tg_nanos price, const char *kind, tg_nanos *out,
                     tg_errmsg *err)
{
    if (!tokens) { /* most kinds, most requests: no multiply, no rounding */
        *out = 0;
        return TG_OK;
    }
    if (tg_money_tokens(tokens, price, out)) return overflow(err, kind);
    return TG_OK;
}

static int price_cost(const tg_price *pr, const tg_tokens *t, bool batch, tg_priced *p,
                      tg_errmsg *err)
{
    /* the five kinds are disjoint: each token is billed once */
    int64_t uncached = t->prompt - t->cached - t->cache_write;
    int64_t plain_out = t->completion - t->reasoning;
    int rc;
    if ((rc = kind_cost(uncached, pr->input, "input cost", &p->input, err)) ||
        (rc = kind_cost(t->cached, pr->cached_input, "cached input cost", &p->cached_input, err)) ||
        (rc = kind_cost(t->cache_write, pr->cache_write, "cache write cost", &p->cache_write,
                        err)) ||
        (rc = kind_cost(plain_out, pr->output, "output cost", &p->output, err)) ||
        (rc = kind_cost(t->reasoning, pr->reasoning, "reasoning cost", &p->reasoning, err)))
        return rc;
    p->per_request = pr->per_request;
    tg_nanos tokens_cost = 0;
    if (tg_money_add(tokens_cost, p->input, &tokens_cost) ||
        tg_money_add(tokens_cost, p->cached_input, &tokens_cost) ||
        tg_money_add(tokens_cost, p->cache_write, &tokens_cost) ||
        tg_money_add(tokens_cost, p->output, &tokens_cost) ||
        tg_money_add(tokens_cost, p->reasoning, &tokens_cost))
        return overflow(err, "token cost");
    if (batch && pr->batch_discount_bps) {
        /* cannot overflow: the discount is at most the token cost */
        assert(pr->batch_discount_bps > 0 && pr->batch_discount_bps <= 10000);
        rc = tg_money_bps(tokens_cost, pr->batch_discount_bps, &p->batch_discount);
        assert(rc == TG_OK && p->batch_discount <= tokens_cost);
    }
    if (tg_money_add(tokens_cost - p->batch_discount, p->per_request, &p->cost))
        return overflow(err, "cost");
    assert(p->cost >= 0);
    return TG_OK;
}

/* ---- margin ---- */

static const tg_unit_price *find_unit(const tg_margin *m, tg_str unit)
{
    for (size_t i = 0; i < m->nunits; i++)
        if (tg_str_eq(tg_str_c(m->units[i].name), unit)) return &m->units[i];
    return NULL;
}

/* The effective policy: the app's margin with the override's named fields
 * in place of its own. Units are looked up in the override first. */
static void effective_policy(const tg_app *app, const tg_override *o, const tg_price_ctx *ctx,
                             tg_priced *p)
{
    const tg_margin *a = &app->margin, *m = o ? &o->margin : NULL;
    p->markup_bps = m && m->has_markup ? m->markup_bps : a->markup_bps;
    p->surcharge = m && m->has_surcharge ? m->surcharge : a->surcharge;
    p->platform_fee_bps = m && m->has_fee ? m->platform_fee_bps : a->platform_fee_bps;
    p->unit = NULL;
    if (ctx->unit.n == 0) return;
    if (m) p->unit = find_unit(m, ctx->unit);
    if (!p->unit) p->unit = find_unit(a, ctx->unit);
}

static int policy_charge(const tg_price_ctx *ctx, tg_priced *p, tg_errmsg *err)
{
    if (p->unit) {
        if (ctx->unit_count < 0)
            return tg_errmsg_set(err, "unit count %lld of \"%.*s\" is negative",
                                 (long long)ctx->unit_count, TG_STR_FMT(ctx->unit));
        __int128 c = (__int128)p->unit->price * ctx->unit_count;
        if (c > INT64_MAX) return overflow(err, "unit charge");
        p->charge = (tg_nanos)c;
        return TG_OK;
    }
    tg_nanos markup;
    if (tg_money_bps(p->cost, p->markup_bps, &markup)) return overflow(err, "markup");
    __int128 c = (__int128)p->cost + markup + p->surcharge;
    if (c < 0) c = 0; /* a discount deeper than the cost charges nothing, never a credit */
    if (c > INT64_MAX) return overflow(err, "charge");
    p->charge = (tg_nanos)c;
    return TG_OK;
}

static int price_margin(const tg_price_ctx *ctx, tg_priced *p, tg_errmsg *err)
{
    if (!ctx->app) {
        p->charge = p->cost;
        return TG_OK;
    }
    p->rule = tg_price_rule(ctx->app, ctx);
    effective_policy(ctx->app, p->rule, ctx, p);
    int rc = policy_charge(ctx, p, err);
    if (rc) return rc;
    if (ctx->has_cap && p->charge > ctx->charge_cap) {
        /* what a hard cap leaves: the builder's margin takes the rest */
        p->charge = ctx->charge_cap > 0 ? ctx->charge_cap : 0;
        p->capped = true;
    }
    if (tg_money_bps(p->charge, p->platform_fee_bps, &p->fee)) return overflow(err, "platform fee");
    __int128 margin = (__int128)p->charge - p->cost - p->fee;
    if (margin < INT64_MIN || margin > INT64_MAX) return overflow(err, "margin");
    p->margin = (tg_nanos)margin;
    return TG_OK;
}

int tg_price_request(const tg_offering *off, const tg_price_ctx *ctx, const tg_tokens *t,
                     tg_priced *out, tg_errmsg *err)
{
    assert(t->prompt >= 0 && t->cached >= 0 && t->cache_write >= 0 && t->completion >= 0 &&
           t->reasoning >= 0);
    assert(t->cached <= t->prompt && t->cache_write <= t->prompt - t->cached);
    assert(t->reasoning <= t->completion);
    *out = (tg_priced){.app = ctx->app};
    int rc = price_cost(&off->price, t, ctx->batch, out, err);
    if (!rc) rc = price_margin(ctx, out, err);
    if (rc) {
        *out = (tg_priced){0};
        return rc;
    }
    assert(out->charge >= 0);
    assert((__int128)out->cost + out->margin + out->fee == out->charge);
    return TG_OK;
}

size_t tg_price_rule_name(const tg_priced *p, char out[TG_PRICE_RULE_LEN])
{
    const char *cap = p->capped ? "+cap" : "";
    if (p->rule) return (size_t)snprintf(out, TG_PRICE_RULE_LEN, "override@%d%s", p->rule->line, cap);
    return (size_t)snprintf(out, TG_PRICE_RULE_LEN, "%s%s", p->app ? "app" : "cost", cap);
}

void tg_price_to_record(const tg_priced *p, tg_usage_rec *r)
{
    r->cost = p->cost;
    r->charge = p->charge;
    r->margin = p->margin;
    r->fee = p->fee;
}

/* ---- explain ---- */

/* Each helper appends to b and returns its rc; callers chain them with ||
 * because the only failures (TG_ETOOBIG, TG_ENOMEM) all mean "stop". */

static int put_usd(tg_buf *b, const char *label, tg_nanos v)
{
    char m[TG_MONEY_STRLEN];
    tg_money_fmt(m, v);
    return tg_buf_printf(b, "%s%s", label, m);
}

static int explain_prices(tg_buf *b, const tg_offering *off)
{
    const tg_price *pr = &off->price;
    int rc = tg_buf_printf(b, "offering     %s\n", off->id ? off->id : "?");
    rc = rc ? rc : tg_buf_add_lit(b, "prices       USD per 1M tokens:");
    rc = rc ? rc : put_usd(b, " input ", pr->input);
    rc = rc ? rc : put_usd(b, ", cached_input ", pr->cached_input);
    rc = rc ? rc : put_usd(b, ", cache_write ", pr->cache_write);
    rc = rc ? rc : put_usd(b, ", output ", pr->output);
    rc = rc ? rc : put_usd(b, ", reasoning ", pr->reasoning);
    rc = rc ? rc : put_usd(b, "\n             per request USD ", pr->per_request);
    rc = rc ? rc
            : tg_buf_printf(b, ", batch discount %lld bps\n", (long long)pr->batch_discount_bps);
    return rc;
}

static int explain_tokens(tg_buf *b, const tg_tokens *t, bool batch)
{
    return tg_buf_printf(b,
                         "tokens       prompt %lld = input %lld + cached %lld + cache_write %lld;"
                         " completion %lld = output %lld + reasoning %lld%s\n",
                         (long long)t->prompt, (long long)(t->prompt - t->cached - t->cache_write),
                         (long long)t->cached, (long long)t->cache_write, (long long)t->completion,
                         (long long)(t->completion - t->reasoning), (long long)t->reasoning,
                         batch ? " (batch)" : "");
}

static int cost_line(tg_buf *b, const char *kind, int64_t tokens, tg_nanos price, tg_nanos v)
{
    char pm[TG_MONEY_STRLEN], vm[TG_MONEY_STRLEN];
    tg_money_fmt(pm, price);
    tg_money_fmt(vm, v);
    return tg_buf_printf(b, "  %-12s %lld x %s / 1M = %s\n", kind, (long long)tokens, pm, vm);
}

static int explain_cost(tg_buf *b, const tg_offering *off, const tg_tokens *t, const tg_priced *p)
{
    const tg_price *pr = &off->price;
    int rc = tg_buf_add_lit(b, "cost by kind (USD, each rounded half-up to the nano)\n");
    rc = rc ? rc
            : cost_line(b, "input", t->prompt - t->cached - t->cache_write, pr->input, p->input);
    rc = rc ? rc : cost_line(b, "cached_input", t->cached, pr->cached_input, p->cached_input);
    rc = rc ? rc : cost_line(b, "cache_write", t->cache_write, pr->cache_write, p->cache_write);
    rc = rc ? rc : cost_line(b, "output", t->completion - t->reasoning, pr->output, p->output);
    rc = rc ? rc : cost_line(b, "reasoning", t->reasoning, pr->reasoning, p->reasoning);
    rc = rc ? rc : put_usd(b, "  per request  ", p->per_request);
    if (!rc && p->batch_discount) {
        rc = put_usd(b, "\n  batch        - ", p->batch_discount);
        rc = rc ? rc
                : tg_buf_printf(b, " (%lld bps of the token cost, not of the per-request fee)",
                                (long long)pr->batch_discount_bps);
    }
    return rc ? rc : tg_buf_add_char(b, '\n');
}

static int put_fields(tg_buf *b, const ov_field f[4])
{
    int rc = TG_OK, any = 0;
    for (int i = 0; i < 4 && !rc; i++)
        if (f[i].want) rc = tg_buf_printf(b, "%s%s=%s", any++ ? " " : "", f[i].name, f[i].want);
    return rc ? rc : any ? TG_OK : tg_buf_add_lit(b, "(no fields: any request)");
}

/* One line per override: matched with its weight, or the field that
 * differs. */
static int explain_overrides(tg_buf *b, const tg_app *app, const tg_price_ctx *ctx,
                             const tg_override *chosen)
{
    int rc = TG_OK;
    for (size_t i = 0; i < app->noverrides && !rc; i++) {
        const tg_override *o = &app->overrides[i];
        const ov_field *miss = NULL;
        ov_field f[4];
        int w = ov_weight(o, ctx, &miss, f);
        rc = tg_buf_printf(b, "  override@%d  ", o->line);
        rc = rc ? rc : put_fields(b, f);
        if (rc) break;
        if (w < 0)
            rc = tg_buf_printf(b, ": no match, request %s is \"%.*s\"\n", miss->name,
                               TG_STR_FMT(miss->have));
        else
            rc = tg_buf_printf(b, ": matches, weight %d%s\n", w,
                               o == chosen ? " (highest: chosen)" : " (lower: not chosen)");
    }
    return rc;
}

static int explain_rule(tg_buf *b, const tg_price_ctx *ctx, const tg_priced *p)
{
    const tg_app *app = ctx->app;
    if (!app)
        return tg_buf_add_lit(b, "rule         cost: no app, so charge = cost, margin and fee 0\n");
    int rc =
        p->rule
            ? tg_buf_printf(b,
                            "rule         override@%d of app %s: the most specific match"
                            " (weights customer 8, plan 4, feature 2, model 1)\n",
                            p->rule->line, app->id ? app->id : "?")
            : tg_buf_printf(b, "rule         app %s's own margin: %s\n", app->id ? app->id : "?",
                            app->noverrides ? "no override matches" : "it has no overrides");
    return rc ? rc : explain_overrides(b, app, ctx, p->rule);
}

static int explain_markup(tg_buf *b, const tg_price_ctx *ctx, const tg_priced *p)
{
    /* recomputed: it succeeded when the request was priced */
    tg_nanos markup = 0;
    (void)tg_money_bps(p->cost, p->markup_bps, &markup);
    int rc = tg_buf_printf(b, "policy       markup %lld bps of cost = ", (long long)p->markup_bps);
    rc = rc ? rc : put_usd(b, "", markup);
    rc = rc ? rc : put_usd(b, "; surcharge ", p->surcharge);
    if (!rc && ctx->unit.n)
        rc = tg_buf_printf(b, "; unit \"%.*s\" has no price here", TG_STR_FMT(ctx->unit));
    rc = rc ? rc : tg_buf_add_lit(b, "\n             charge = cost + markup + surcharge");
    if (!rc && (__int128)p->cost + markup + p->surcharge < 0)
        rc = tg_buf_add_lit(b, ", below 0: clamped to 0");
    return rc ? rc : tg_buf_add_char(b, '\n');
}

static int explain_policy(tg_buf *b, const tg_price_ctx *ctx, const tg_priced *p)
{
    if (!ctx->app) return TG_OK;
    int rc;
    if (p->unit) {
        rc = put_usd(b, "policy       unit price ", p->unit->price);
        rc = rc ? rc
                : tg_buf_printf(b, " per %s x %lld units = charge (tokens do not change it)\n",
                                p->unit->name, (long long)ctx->unit_count);
    } else {
        rc = explain_markup(b, ctx, p);
    }
    if (!rc && p->capped) rc = put_usd(b, "             capped at USD ", p->charge);
    if (!rc && p->capped)
        rc = tg_buf_add_lit(b, ": what the plan's hard cap left (the margin takes the rest)\n");
    rc = rc ? rc
            : tg_buf_printf(
                  b, "             fee = %lld bps of charge = ", (long long)p->platform_fee_bps);
    rc = rc ? rc : put_usd(b, "", p->fee);
    return rc ? rc : tg_buf_add_lit(b, "; margin = charge - cost - fee\n");
}

/* margin / charge as a percentage with two decimals, rounded half away from zero */
static int put_margin_pct(tg_buf *b, const tg_priced *p)
{
    if (p->charge == 0) return tg_buf_add_lit(b, " (no charge: no percentage)\n");
    __int128 num = (__int128)p->margin * 10000 * 2, den = (__int128)p->charge * 2;
    __int128 q = num >= 0 ? (num + p->charge) / den : -((-num + p->charge) / den);
    __int128 a = q < 0 ? -q : q;
    return tg_buf_printf(b, " (%s%lld.%02lld%% of charge)\n", q < 0 ? "-" : "",
                         (long long)(a / 100), (long long)(a % 100));
}

int tg_price_explain(const tg_offering *off, const tg_price_ctx *ctx, const tg_tokens *t,
                     const tg_priced *p, tg_buf *out)
{
    int rc = explain_prices(out, off);
    rc = rc ? rc : explain_tokens(out, t, ctx->batch);
    rc = rc ? rc : explain_cost(out, off, t, p);
    rc = rc ? rc : explain_rule(out, ctx, p);
    rc = rc ? rc : explain_policy(out, ctx, p);
    rc = rc ? rc : put_usd(out, "cost         USD ", p->cost);
    rc = rc ? rc : put_usd(out, "\ncharge       USD ", p->charge);
    rc = rc ? rc : put_usd(out, "\nmargin       USD ", p->margin);
    rc = rc ? rc : put_margin_pct(out, p);
    rc = rc ? rc : put_usd(out, "fee          USD ", p->fee);
    return rc ? rc : tg_buf_add_char(out, '\n');
}
