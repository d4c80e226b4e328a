/* Pricing: what a request costs the builder, what its customer is charged,
 * and how the difference splits into margin and platform fee.
 *
 *   cost   = sum over token kinds of round-half-up(tokens x price / 1M)
 *            (+ the offering's per-request fee), less the batch discount
 *            for batch calls; kinds are disjoint: uncached input
 *            (prompt - cached - cache_write), cached input, cache writes,
 *            output (completion - reasoning), reasoning
 *   charge, fee, margin: by the app's margin policy after overrides
 *            (conf/config.h, tg_margin), so charge == cost + margin + fee.
 * A request without an app (an unattributed key) is charged its cost:
 * margin and fee are zero. Pure functions over the configuration snapshot;
 * safe on any thread. */
#ifndef TG_METER_PRICE_H
#define TG_METER_PRICE_H

#include "base/buf.h"
#include "base/err.h"
#include "conf/config.h"
#include "meter/record.h"

/* What pricing needs to know of a request besides its tokens. */
typedef struct {
    const tg_app *app;    /* NULL: priced at cost */
    tg_str customer;      /* ids as attributed ("" when absent) */
    tg_str plan;
    tg_str feature;
    tg_str model;         /* the public model asked for */
    tg_str unit;
    int64_t unit_count;
    bool batch;
    bool has_cap;         /* the charge may not pass charge_cap (a plan's hard cap) */
    tg_nanos charge_cap;
} tg_price_ctx;

typedef struct {
    /* cost by kind, before the batch discount */
    tg_nanos input, cached_input, cache_write, output, reasoning, per_request;
    tg_nanos batch_discount;  /* subtracted from the sum above */
    tg_nanos cost, charge, margin, fee;
    const tg_override *rule;  /* the override that applied; NULL: the app's margin */
    const tg_unit_price *unit;/* the unit price that set the charge, or NULL */
    int64_t markup_bps, platform_fee_bps; /* the effective policy */
    tg_nanos surcharge;
    const tg_app *app;        /* ctx->app: NULL when priced at cost */
    bool capped;              /* the charge was lowered to ctx->charge_cap */
} tg_priced;

/* Normalises a provider's usage to tg_tokens (counted once each):
 * OpenAI's prompt_tokens already include cached_tokens and completion
 * includes reasoning; Anthropic's input_tokens exclude its
 * cache_read_input_tokens and cache_creation_input_tokens. Negative or
 * inconsistent counts are clamped (cached <= prompt, ...). */
tg_tokens tg_tokens_openai(int64_t prompt, int64_t completion, int64_t cached, int64_t reasoning);
tg_tokens tg_tokens_anthropic(int64_t input, int64_t output, int64_t cache_read, int64_t cache_creation);

/* The override that applies to ctx, or NULL for the app's own margin. */
const tg_override *tg_price_rule(const tg_app *app, const tg_price_ctx *ctx);

/* Prices t at off for ctx. t must hold the invariants of record.h (as
 * tg_tokens_openai/anthropic return them). TG_EINVAL (err says why) only
 * when an amount would overflow int64 or ctx->unit_count is negative;
 * out then holds zeros. */
int tg_price_request(const tg_offering *off, const tg_price_ctx *ctx, const tg_tokens *t,
                     tg_priced *out, tg_errmsg *err);

/* The name of the rule that priced p, NUL-terminated in out, and its
 * length: "app", "override@LINE", or "cost" for a request without an
 * app. */
#define TG_PRICE_RULE_LEN 32
size_t tg_price_rule_name(const tg_priced *p, char out[TG_PRICE_RULE_LEN]);
/* Fills r->cost, charge, margin and fee from p; the rule's name comes
 * from tg_price_rule_name. */
void tg_price_to_record(const tg_priced *p, tg_usage_rec *r);

/* A person's explanation of p: the offering's prices, each kind's cost,
 * the rule that applied (and the overrides that did not), the policy's
 * figures and the resulting amounts, as text lines. */
int tg_price_explain(const tg_offering *off, const tg_price_ctx *ctx, const tg_tokens *t,
                     const tg_priced *p, tg_buf *out);

#endif
