/* Offering health: breakers and latency averages; see health.h. */
#include "route/health.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

struct tg_health {
    pthread_mutex_t mu;
    char *id;
    _Atomic int state;        /* tg_breaker_state: read without the lock to admit */
    /* under mu */
    uint32_t failures;
    bool probing;             /* the half-open probe is out */
    int64_t open_until_ms;
    uint64_t opens, successes, errors, samples;
    int64_t ttft_us, us_per_token;
    char last_error[64];
};

struct tg_health_table {
    pthread_mutex_t mu;
    tg_health **e;
    size_t n, cap;
};

const char *tg_breaker_name(tg_breaker_state s)
{
    switch (s) {
    case TG_BREAKER_OPEN: return "open";
    case TG_BREAKER_HALF_OPEN: return "half_open";
    default: return "closed";
    }
}

tg_health_table *tg_health_table_new(void)
{
    tg_health_table *t = calloc(1, sizeof *t);
    if (t) pthread_mutex_init(&t->mu, NULL);
    return t;
}

void tg_health_table_free(tg_health_table *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) {
        pthread_mutex_destroy(&t->e[i]->mu);
        free(t->e[i]->id);
        free(t->e[i]);
    }
    free(t->e);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static tg_health *entry_new(const char *id)
{
    tg_health *h = calloc(1, sizeof *h);
    if (!h || !(h->id = strdup(id))) {
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    return h;
}

tg_health *tg_health_get(tg_health_table *t, const char *id)
{
    tg_health *h = NULL;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->n && !h; i++)
        if (!strcmp(t->e[i]->id, id)) h = t->e[i];
    if (!h && t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        tg_health **e = realloc(t->e, cap * sizeof *e);
        if (e) t->e = e, t->cap = cap;
    }
    if (!h && t->n < t->cap && (h = entry_new(id))) t->e[t->n++] = h;
    pthread_mutex_unlock(&t->mu);
    return h;
}

void tg_health_each(tg_health_table *t, int64_t now_ms, void (*fn)(void *ud, const tg_health_view *v),
                    void *ud)
{
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->n; i++) {
        tg_health_view v;
        tg_health_view_of(t->e[i], now_ms, &v);
        fn(ud, &v);
    }
    pthread_mutex_unlock(&t->mu);
}

tg_admit tg_health_admit(tg_health *h, int64_t now_ms)
{
    if (atomic_load_explicit(&h->state, memory_order_relaxed) == TG_BREAKER_CLOSED) return TG_ADMIT_YES;
    tg_admit a = TG_ADMIT_NO;
    pthread_mutex_lock(&h->mu);
    int s = atomic_load_explicit(&h->state, memory_order_relaxed);
    if (s == TG_BREAKER_CLOSED) {
        a = TG_ADMIT_YES;
    } else if (!h->probing && (s == TG_BREAKER_HALF_OPEN || now_ms >= h->open_until_ms)) {
        atomic_store_explicit(&h->state, TG_BREAKER_HALF_OPEN, memory_order_relaxed);
        h->probing = true;
        a = TG_ADMIT_PROBE;
    }
    pthread_mutex_unlock(&h->mu);
    return a;
}

/* An average with weight 1/5 to the new sample; the first sample is taken whole. */
static int64_t ewma(int64_t avg, int64_t sample, uint64_t n)
{
    return n == 0 ? sample : avg + (sample - avg) / 5;
}

void tg_health_success(tg_health *h, bool probe, int64_t ttft_us, int64_t gen_us, int64_t tokens)
{
    pthread_mutex_lock(&h->mu);
    h->successes++;
    if (probe) {
        h->probing = false;
        atomic_store_explicit(&h->state, TG_BREAKER_CLOSED, memory_order_relaxed);
    }
    /* a call admitted before the breaker opened does not close it */
    if (atomic_load_explicit(&h->state, memory_order_relaxed) == TG_BREAKER_CLOSED) h->failures = 0;
    if (ttft_us > 0) {
        int64_t per = tokens > 0 && gen_us > 0 ? gen_us / tokens : 0;
        h->us_per_token = ewma(h->us_per_token, per, h->samples);
        h->ttft_us = ewma(h->ttft_us, ttft_us, h->samples);
        h->samples++;
    }
    pthread_mutex_unlock(&h->mu);
}

void tg_health_failure(tg_health *h, bool probe, int64_t now_ms, uint32_t threshold,
                       uint32_t cooldown_ms, const char *why)
{
    pthread_mutex_lock(&h->mu);
    h->errors++;
    snprintf(h->last_error, sizeof h->last_error, "%s", why);
    int s = atomic_load_explicit(&h->state, memory_order_relaxed);
    if (probe) h->probing = false;
    if (s == TG_BREAKER_CLOSED && h->failures < UINT32_MAX) h->failures++;
    if (probe || (s == TG_BREAKER_CLOSED && h->failures >= threshold)) {
        atomic_store_explicit(&h->state, TG_BREAKER_OPEN, memory_order_relaxed);
        h->open_until_ms = now_ms + cooldown_ms;
        h->opens++;
    }
    pthread_mutex_unlock(&h->mu);
}

void tg_health_release(tg_health *h, bool probe)
{
    if (!probe) return;
    pthread_mutex_lock(&h->mu);
    h->probing = false;
    pthread_mutex_unlock(&h->mu);
}

void tg_health_view_of(tg_health *h, int64_t now_ms, tg_health_view *out)
{
    pthread_mutex_lock(&h->mu);
    int s = atomic_load_explicit(&h->state, memory_order_relaxed);
    /* an open breaker past its cooldown takes the next call as its probe */
    if (s == TG_BREAKER_OPEN && now_ms >= h->open_until_ms) s = TG_BREAKER_HALF_OPEN;
    *out = (tg_health_view){
        .id = h->id, .state = (tg_breaker_state)s, .failures = h->failures, .opens = h->opens,
        .open_until_ms = s == TG_BREAKER_OPEN ? h->open_until_ms : 0,
        .successes = h->successes, .errors = h->errors, .samples = h->samples,
        .ttft_us = h->ttft_us, .us_per_token = h->us_per_token};
    memcpy(out->last_error, h->last_error, sizeof out->last_error);
    pthread_mutex_unlock(&h->mu);
}
