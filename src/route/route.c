/* Rules and strategies; see route.h. */
#include "route/route.h"
#include "route/health.h"

static bool field_matches(const char *want, tg_str have)
{
    return !want || tg_str_eq(tg_str_c(want), have);
}

static bool rule_matches(const tg_route_rule *r, const tg_route_ctx *c, const tg_model *asked)
{
    return field_matches(r->feature, c->feature) && field_matches(r->plan, c->plan) &&
           field_matches(r->customer, c->customer) &&
           (!r->key || (c->key && tg_str_eq(tg_str_c(r->key), tg_str_c(c->key->id)))) &&
           (!r->model || r->model == asked);
}

tg_route_result tg_route_choose(const tg_config *cfg, const tg_route_ctx *ctx, tg_str model_name,
                                tg_route_choice *out)
{
    const tg_model *m = tg_config_model(cfg, model_name);
    *out = (tg_route_choice){0};
    if (!m || !tg_key_allows(ctx->key, m)) return TG_ROUTE_UNKNOWN_MODEL;
    out->asked = out->model = m;
    out->strategy = m->strategy;
    const tg_routing_conf *rt = &cfg->routing;
    for (size_t i = 0; i < rt->nrules; i++) {
        const tg_route_rule *r = &rt->rules[i];
        if (!rule_matches(r, ctx, m)) continue;
        out->rule = r;
        if (r->refuse) return TG_ROUTE_REFUSED;
        if (r->use) out->model = r->use, out->strategy = r->use->strategy;
        if (r->has_strategy) out->strategy = r->strategy;
        if (r->try_first && !ctx->stream) out->first = r->try_first;
        break;
    }
    return TG_ROUTE_OK;
}

static tg_nanos sat_add(tg_nanos a, __int128 b)
{
    __int128 s = (__int128)a + b;
    return s > INT64_MAX ? INT64_MAX : (tg_nanos)s;
}

tg_nanos tg_route_expected_cost(const tg_offering *o, const tg_route_ctx *ctx)
{
    int64_t out = ctx->max_tokens >= 0 ? ctx->max_tokens : TG_ROUTE_EXPECTED_OUTPUT;
    int64_t in = ctx->prompt_tokens > 0 ? ctx->prompt_tokens : 0;
    const tg_price *p = &o->price;
    tg_nanos c = sat_add(p->per_request, (__int128)in * p->input / 1000000);
    return sat_add(c, (__int128)out * p->output / 1000000);
}

/* The expected time of ctx at o in µs; -1 when o has no measurement yet. */
static int64_t expected_us(const tg_offering *o, const tg_route_ctx *ctx, int64_t now_ms)
{
    tg_health_view v;
    if (!o->health) return -1;
    tg_health_view_of(o->health, now_ms, &v);
    if (!v.samples) return -1;
    int64_t out = ctx->max_tokens >= 0 ? ctx->max_tokens : TG_ROUTE_EXPECTED_OUTPUT;
    __int128 t = (__int128)v.ttft_us + (__int128)v.us_per_token * out;
    return t > INT64_MAX ? INT64_MAX : (int64_t)t;
}

/* Sorts out[0..n) by key ascending, stable (few items: insertion sort). */
static void sort_by(const tg_offering **out, int64_t *key, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        const tg_offering *o = out[i];
        int64_t k = key[i];
        size_t j = i;
        for (; j > 0 && key[j - 1] > k; j--) {
            out[j] = out[j - 1];
            key[j] = key[j - 1];
        }
        out[j] = o;
        key[j] = k;
    }
}

/* One drawn by weight goes first; the rest follow by weight, heaviest first. */
static void weighted(const tg_offering **out, const uint32_t *w, size_t n, tg_rng *rng)
{
    int64_t key[TG_ROUTE_MAX];
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) total += w[i];
    uint64_t r = total ? tg_rng_below(rng, total) : 0;
    size_t pick = 0;
    for (size_t i = 0; i < n; i++, pick = i) {
        if (r < w[i]) break;
        r -= w[i];
    }
    for (size_t i = 0; i < n; i++) key[i] = i == pick ? INT64_MIN : -(int64_t)w[i];
    sort_by(out, key, n);
}

size_t tg_route_order(const tg_model *m, tg_strategy s, const tg_route_ctx *ctx, tg_rng *rng,
                      int64_t now_ms, const tg_offering **out, tg_errmsg *why)
{
    size_t n = 0;
    uint32_t w[TG_ROUTE_MAX];
    int64_t key[TG_ROUTE_MAX];
    for (size_t i = 0; i < m->noffering && n < TG_ROUTE_MAX; i++) {
        if (!m->offerings[i]->provider->available) continue;
        w[n] = m->weights ? m->weights[i] : 1;
        out[n++] = m->offerings[i];
    }
    if (!n) {
        const tg_provider *p = m->noffering ? m->offerings[0]->provider : NULL;
        if (p && p->api_key_env)
            tg_errmsg_set(why, "no provider is available for model %s: provider %s needs its API "
                               "key in the environment variable %s", m->name, p->name, p->api_key_env);
        else
            tg_errmsg_set(why, "no provider is available for model %s", m->name);
        return 0;
    }
    if (n == 1 || s == TG_STRATEGY_PRIORITY) return n;
    if (s == TG_STRATEGY_WEIGHTED) {
        weighted(out, w, n, rng);
        return n;
    }
    for (size_t i = 0; i < n; i++) {
        if (s == TG_STRATEGY_CHEAPEST) key[i] = tg_route_expected_cost(out[i], ctx);
        else key[i] = expected_us(out[i], ctx, now_ms); /* -1: unmeasured, first */
    }
    sort_by(out, key, n);
    return n;
}
