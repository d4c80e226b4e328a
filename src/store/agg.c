/* Batch aggregation of rollup deltas. See agg.h.
 *
 * The table is sized once per batch for the worst case (every record a new
 * key) at half load, so an add never rehashes. */
#include "store/agg.h"

#include "base/hash.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MS_DAY 86400000LL

int tg_measures_add(tg_measures *a, const tg_measures *b)
{
    tg_measures s;
    bool ovf = false;
    ovf |= __builtin_add_overflow(a->requests, b->requests, &s.requests);
    ovf |= __builtin_add_overflow(a->errors, b->errors, &s.errors);
    ovf |= __builtin_add_overflow(a->interrupted, b->interrupted, &s.interrupted);
    ovf |= __builtin_add_overflow(a->estimated, b->estimated, &s.estimated);
    ovf |= __builtin_add_overflow(a->tokens.prompt, b->tokens.prompt, &s.tokens.prompt);
    ovf |= __builtin_add_overflow(a->tokens.cached, b->tokens.cached, &s.tokens.cached);
    ovf |= __builtin_add_overflow(a->tokens.cache_write, b->tokens.cache_write,
                                  &s.tokens.cache_write);
    ovf |= __builtin_add_overflow(a->tokens.completion, b->tokens.completion,
                                  &s.tokens.completion);
    ovf |= __builtin_add_overflow(a->tokens.reasoning, b->tokens.reasoning, &s.tokens.reasoning);
    ovf |= __builtin_add_overflow(a->cost, b->cost, &s.cost);
    ovf |= __builtin_add_overflow(a->charge, b->charge, &s.charge);
    ovf |= __builtin_add_overflow(a->margin, b->margin, &s.margin);
    ovf |= __builtin_add_overflow(a->fee, b->fee, &s.fee);
    ovf |= __builtin_add_overflow(a->asked_cost, b->asked_cost, &s.asked_cost);
    ovf |= __builtin_add_overflow(a->attempts, b->attempts, &s.attempts);
    if (ovf) return TG_EINVAL;
    *a = s;
    return TG_OK;
}

/* An attempt record bills an upstream call of a request whose own record
 * counts the request, its outcome and all its calls (attempts), so it adds
 * its tokens and money only. */
void tg_measures_of(const tg_usage_rec *r, tg_measures *m)
{
    bool req = !r->attempt;
    *m = (tg_measures){
        .requests = req,
        .errors = req && r->outcome == TG_OUT_FAILED,
        .interrupted = req && r->outcome == TG_OUT_INTERRUPTED,
        .estimated = r->estimated,
        .tokens = r->tokens,
        .cost = r->cost,
        .charge = r->charge,
        .margin = r->margin,
        .fee = r->fee,
        .asked_cost = r->asked_cost,
        .attempts = req ? r->attempts : 0,
    };
}

static int64_t floor_to(int64_t t, int64_t unit)
{
    int64_t q = t / unit;
    if (t % unit < 0) q--;
    return q * unit;
}

int64_t tg_bucket_day(int64_t t_ms) { return floor_to(t_ms, MS_DAY); }

int64_t tg_bucket_month(int64_t t_ms)
{
    time_t secs = (time_t)(floor_to(t_ms, 1000) / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    return (int64_t)timegm(&tm) * 1000;
}

/* Each string with its NUL, so ("ab","c") and ("a","bc") hash apart. */
static uint64_t hash_strs(const char *const *s, size_t n)
{
    uint64_t h = 0x6a09e667f3bcc909ull;
    for (size_t i = 0; i < n; i++) h = tg_hash64(s[i], strlen(s[i]) + 1, h);
    return h;
}

uint64_t tg_agg_key_hash(const tg_usage_rec *r, tg_agg_kind kind)
{
    if (kind == TG_AGG_USER) {
        const char *k[] = {r->tags.app, r->tags.customer, r->tags.user};
        return hash_strs(k, 3);
    }
    const char *k[] = {r->tags.app,      r->tags.customer, r->tags.workspace, r->tags.feature,
                       r->tags.workflow, r->model,         r->offering,       r->provider};
    return hash_strs(k, 8) ^ r->route;
}

static bool same_key(const tg_agg *a, const tg_agg_ent *e, const tg_usage_rec *r, int64_t bucket)
{
    const tg_usage_rec *q = e->r;
    if (e->bucket != bucket || strcmp(q->tags.app, r->tags.app) ||
        strcmp(q->tags.customer, r->tags.customer))
        return false;
    if (a->kind == TG_AGG_USER) return strcmp(q->tags.user, r->tags.user) == 0;
    return q->route == r->route && !strcmp(q->tags.workspace, r->tags.workspace) &&
           !strcmp(q->tags.feature, r->tags.feature) &&
           !strcmp(q->tags.workflow, r->tags.workflow) && !strcmp(q->model, r->model) &&
           !strcmp(q->offering, r->offering) && !strcmp(q->provider, r->provider);
}

void tg_agg_init(tg_agg *a, tg_agg_kind kind) { *a = (tg_agg){.kind = kind}; }

void tg_agg_release(tg_agg *a)
{
    free(a->ents);
    free(a->slots);
    tg_agg_init(a, a->kind);
}

int tg_agg_reset(tg_agg *a, size_t n)
{
    if (n > a->cap) {
        size_t ns = 16;
        while (ns < 2 * n) ns *= 2;
        tg_agg_ent *e = malloc(n * sizeof *e);
        uint32_t *s = malloc(ns * sizeof *s);
        if (!e || !s || n >= UINT32_MAX) {
            free(e);
            free(s);
            return TG_ENOMEM;
        }
        free(a->ents);
        free(a->slots);
        a->ents = e;
        a->slots = s;
        a->cap = n;
        a->nslots = ns;
    }
    /* only the slots a batch used need clearing, but a memset of a few
     * hundred KiB per batch is cheaper than tracking them */
    memset(a->slots, 0, a->nslots * sizeof *a->slots);
    a->n = 0;
    return TG_OK;
}

int tg_agg_add(tg_agg *a, const tg_usage_rec *r, int64_t bucket, uint64_t key_hash)
{
    uint64_t h = key_hash ^ ((uint64_t)bucket * 0x9e3779b97f4a7c15ull);
    h ^= h >> 29;
    tg_measures m;
    tg_measures_of(r, &m);
    size_t mask = a->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t s = a->slots[i];
        if (!s) {
            if (a->n >= a->cap) return TG_ENOMEM; /* more adds than reset promised */
            a->ents[a->n] = (tg_agg_ent){.r = r, .bucket = bucket, .hash = h, .m = m};
            a->slots[i] = (uint32_t)++a->n;
            return TG_OK;
        }
        tg_agg_ent *e = &a->ents[s - 1];
        if (e->hash != h || !same_key(a, e, r, bucket)) continue;
        return tg_measures_add(&e->m, &m);
    }
}
