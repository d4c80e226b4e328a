/* Routing: from the model a client asks for to the offerings that may
 * serve it, in the order they are tried (docs/routing.md).
 *
 * Two steps. tg_route_choose applies the first routing rule that matches
 * the request (routing.rules): it may refuse the model, serve it with
 * another model, change the model's strategy, or name a cheap model to
 * try first. tg_route_order then lists a model's offerings whose provider
 * is available, ordered by the strategy: priority (as listed), cheapest
 * (the request's expected cost), fastest (measured time to first byte and
 * per token; offerings with no measurement yet go first, so each gets
 * measured), weighted (one drawn by weight first, the rest by weight).
 * Breakers are not consulted here: the caller asks each offering's health
 * when it is about to call it (route/health.h), so an open breaker is
 * skipped and a half-open one gets its single probe. */
#ifndef TG_ROUTE_ROUTE_H
#define TG_ROUTE_ROUTE_H

#include "base/err.h"
#include "base/rng.h"
#include "conf/config.h"

typedef enum {
    TG_ROUTE_OK = 0,
    TG_ROUTE_UNKNOWN_MODEL, /* no such model, or the key may not use it */
    TG_ROUTE_REFUSED,       /* a rule refuses it for this request */
    TG_ROUTE_UNAVAILABLE,   /* no offering has an available provider */
} tg_route_result;

/* Offerings one request tries at most. */
#define TG_ROUTE_MAX 16
/* The output tokens the cheapest and fastest strategies expect of a
 * request that sets no max_tokens. */
#define TG_ROUTE_EXPECTED_OUTPUT 256

/* What of a request the rules and strategies read. */
typedef struct {
    const tg_key *key;
    tg_str feature, plan, customer;
    bool stream;
    int64_t prompt_tokens;    /* estimated input */
    int64_t max_tokens;       /* -1: not set */
} tg_route_ctx;

typedef struct {
    const tg_model *asked;    /* the model asked */
    const tg_model *model;    /* serves the request: the one asked or the rule's `use` */
    const tg_model *first;    /* the model to try first (cheap first), or NULL */
    tg_strategy strategy;
    const tg_route_rule *rule; /* the rule that matched, or NULL */
} tg_route_choice;

/* Looks model_name up and applies the rules. UNKNOWN_MODEL when the model
 * does not exist or the key may not use it (a rule may then serve it
 * with a model the key does not name: rules are the operator's);
 * REFUSED with out->rule set. A stream is never sent cheap first (its
 * bytes reach the client as they come: a failed check could not be taken
 * back), so out->first is NULL for streams. */
tg_route_result tg_route_choose(const tg_config *cfg, const tg_route_ctx *ctx, tg_str model_name,
                                tg_route_choice *out);

/* Writes into out (room for TG_ROUTE_MAX) m's offerings with an available
 * provider, in the order strategy s tries them, and returns how many; 0
 * means UNAVAILABLE, and why says so (naming a provider and its missing
 * key). rng draws the weighted choice. */
size_t tg_route_order(const tg_model *m, tg_strategy s, const tg_route_ctx *ctx, tg_rng *rng,
                      int64_t now_ms, const tg_offering **out, tg_errmsg *why);

/* The expected cost of ctx at offering o, in nanos (saturating): what
 * `cheapest` sorts by. */
tg_nanos tg_route_expected_cost(const tg_offering *o, const tg_route_ctx *ctx);

#endif
