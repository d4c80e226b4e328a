/* Routing: from the model a client asks for to the offering that serves it.
 *
 * A public model lists its offerings in order of preference; this stage
 * takes the first whose provider is available (configured with its key).
 * Later strategies (cheapest, fastest, weighted, fallback with breakers)
 * replace tg_route_pick's choice without changing its callers. */
#ifndef TG_ROUTE_ROUTE_H
#define TG_ROUTE_ROUTE_H

#include "base/err.h"
#include "conf/config.h"

typedef enum {
    TG_ROUTE_OK = 0,
    TG_ROUTE_UNKNOWN_MODEL, /* no such model, or the key may not use it */
    TG_ROUTE_UNAVAILABLE,   /* no offering has an available provider */
} tg_route_result;

/* On TG_ROUTE_OK sets *model and *off. On TG_ROUTE_UNAVAILABLE sets *model
 * and writes why into why (naming the provider and its missing key). */
tg_route_result tg_route_pick(const tg_config *cfg, const tg_key *key, tg_str model_name,
                              const tg_model **model, const tg_offering **off, tg_errmsg *why);

#endif
