/* Rate limiters and their registry. See limits.h.
 *
 * A limiter keeps, besides its ring, the sums of the ring's requests and
 * tokens, so that admission is a few comparisons; the ring moves forward
 * lazily, when a call comes with a later second than `head`, subtracting
 * each bucket that leaves. Invariants, under the limiter's mutex: the ring
 * holds exactly the buckets of seconds head-60..head (slot s % RING), the
 * sums are their sums, and a bucket's tokens are the sum of what the
 * tickets counted in it still count.
 *
 * The registry is a base/pmap.h map keyed by (kind, id): read without a
 * lock, a limiter published only once it is fully built. */
#include "gate/limits.h"

#include "base/hash.h"
#include "base/pmap.h"

#include <assert.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_S 60
#define RING (WINDOW_S + 1)
#define CACHE_LINE 64

struct tg_limiter {
    pthread_mutex_t mu;
    int64_t head;      /* the latest second the ring has reached */
    uint64_t requests; /* sum of reqs[] */
    uint64_t tokens;   /* sum of toks[] */
    uint32_t in_flight;
    uint32_t reqs[RING];
    uint64_t toks[RING];
    /* Identity: written before the limiter is published, then read-only. */
    tg_limiter_kind kind;
    size_t idn;
    char id[];
};

struct tg_limiters {
    tg_pmap *map;
};

/* ---- one limiter ---- */

static size_t slot_of(int64_t second)
{
    return (size_t)((uint64_t)second % RING);
}

static uint64_t clamp_tokens(uint64_t t)
{
    return t < TG_LIMITER_TOKENS_MAX ? t : TG_LIMITER_TOKENS_MAX;
}

/* Moves the window to second s (never back): the buckets of seconds up to
 * s-61 leave. */
static void advance(tg_limiter *l, int64_t s)
{
    if (s <= l->head) return;
    if (s - l->head >= RING) {
        memset(l->reqs, 0, sizeof l->reqs);
        memset(l->toks, 0, sizeof l->toks);
        l->requests = l->tokens = 0;
    } else {
        /* Second t takes the slot of t-61, the bucket leaving at t. */
        for (int64_t t = l->head + 1; t <= s; t++) {
            size_t i = slot_of(t);
            l->requests -= l->reqs[i];
            l->tokens -= l->toks[i];
            l->reqs[i] = 0;
            l->toks[i] = 0;
        }
    }
    l->head = s;
}

static bool in_window(const tg_limiter *l, int64_t second)
{
    return second >= l->head - WINDOW_S;
}

/* The first second, from head+1 on, at which enough old buckets have left
 * for one more request and `tokens` more tokens to fit, when `head` itself
 * is too early. Buckets leave oldest first (head-60 at head+1, and so
 * on); at head+61 the window is empty, so the scan ends for any rpm >= 1
 * and tokens <= tpm. */
static int64_t first_fit(const tg_limiter *l, uint32_t rpm, uint64_t tpm, uint64_t tokens)
{
    uint64_t reqs = l->requests, toks = l->tokens;
    int64_t t = l->head + 1;
    for (;; t++) {
        size_t i = slot_of(t); /* the bucket leaving at t */
        reqs -= l->reqs[i];
        toks -= l->toks[i];
        bool rpm_ok = !rpm || reqs < rpm;
        bool tpm_ok = !tpm || toks <= tpm - tokens;
        if (rpm_ok && tpm_ok) return t;
    }
}

/* Under l's mutex: whether a request of `tokens` passes at second now_s;
 * when not, fills *v (index 0). */
static bool judge(tg_limiter *l, const tg_limits *lim, uint64_t tokens, int64_t now_s,
                  tg_limit_verdict *v)
{
    advance(l, now_s);
    if (lim->tpm && tokens > lim->tpm) {
        *v = (tg_limit_verdict){.limit = TG_LIMIT_TPM, .value = lim->tpm, .never = true};
        return false;
    }
    uint64_t counted = clamp_tokens(tokens);
    bool rpm_ok = !lim->rpm || l->requests < lim->rpm;
    bool tpm_ok = !lim->tpm || l->tokens <= lim->tpm - counted;
    bool conc_ok = !lim->concurrent || l->in_flight < lim->concurrent;
    if (rpm_ok && tpm_ok && conc_ok) return true;

    *v = (tg_limit_verdict){.limit = TG_LIMIT_CONCURRENT, .value = lim->concurrent};
    int64_t wait = 0;
    if (!rpm_ok || !tpm_ok) {
        int64_t at = first_fit(l, lim->rpm, lim->tpm, counted);
        /* Name the limit that still refuses one second before `at`. */
        bool rpm_last = !rpm_ok && first_fit(l, lim->rpm, 0, 0) == at;
        v->limit = rpm_last || tpm_ok ? TG_LIMIT_RPM : TG_LIMIT_TPM;
        v->value = v->limit == TG_LIMIT_RPM ? lim->rpm : lim->tpm;
        wait = at - now_s; /* now_s <= head < at */
    }
    if (!conc_ok && wait < 1) wait = 1;
    v->retry_after_s = (uint32_t)wait;
    return false;
}

/* Under l's mutex, after judge passed. */
static void record(tg_limiter *l, uint64_t tokens, tg_limiter_ticket *t)
{
    size_t i = slot_of(l->head);
    uint64_t counted = clamp_tokens(tokens);
    assert(l->reqs[i] < UINT32_MAX && l->in_flight < UINT32_MAX);
    l->reqs[i]++;
    l->toks[i] += counted;
    l->requests++;
    l->tokens += counted;
    l->in_flight++;
    *t = (tg_limiter_ticket){.limiter = l, .second = l->head, .tokens = counted};
}

/* Whether a waits longer than b: never first, then the later retry. */
static bool worse(const tg_limit_verdict *a, const tg_limit_verdict *b)
{
    if (a->never != b->never) return a->never;
    return a->retry_after_s > b->retry_after_s;
}

bool tg_limiter_admit_all(tg_limiter *const *ls, const tg_limits *const *limits, size_t n,
                          uint64_t tokens, int64_t now_ms, tg_limiter_ticket *tickets,
                          tg_limit_verdict *v)
{
    assert(n >= 1 && n <= TG_LIMITER_SET_MAX && now_ms >= 0);
    /* Lock order: increasing address (see limits.h). */
    tg_limiter *order[TG_LIMITER_SET_MAX];
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        for (; j > 0 && (uintptr_t)order[j - 1] > (uintptr_t)ls[i]; j--)
            order[j] = order[j - 1];
        assert(j == 0 || order[j - 1] != ls[i]);
        order[j] = ls[i];
    }
    for (size_t i = 0; i < n; i++)
        pthread_mutex_lock(&order[i]->mu);

    int64_t now_s = now_ms / 1000;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        tg_limit_verdict vi;
        if (judge(ls[i], limits[i], tokens, now_s, &vi)) continue;
        vi.index = i;
        if (ok || worse(&vi, v)) *v = vi;
        ok = false;
    }
    if (ok)
        for (size_t i = 0; i < n; i++)
            record(ls[i], tokens, &tickets[i]);

    for (size_t i = n; i-- > 0;)
        pthread_mutex_unlock(&order[i]->mu);
    return ok;
}

bool tg_limiter_admit(tg_limiter *l, const tg_limits *limits, uint64_t tokens, int64_t now_ms,
                      tg_limiter_ticket *ticket, tg_limit_verdict *v)
{
    return tg_limiter_admit_all(&l, &limits, 1, tokens, now_ms, ticket, v);
}

/* Takes the ticket's request back out of its bucket (requests: 1 or 0)
 * and puts `tokens` in place of its count there; releases its place in
 * flight. */
static void release(tg_limiter_ticket *t, uint32_t requests, uint64_t tokens)
{
    tg_limiter *l = t->limiter;
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    assert(l->in_flight > 0);
    l->in_flight--;
    if (in_window(l, t->second)) {
        size_t i = slot_of(t->second);
        assert(l->reqs[i] >= requests && l->toks[i] >= t->tokens);
        l->reqs[i] -= requests;
        l->requests -= requests;
        l->toks[i] = l->toks[i] - t->tokens + tokens;
        l->tokens = l->tokens - t->tokens + tokens;
    }
    pthread_mutex_unlock(&l->mu);
    t->limiter = NULL;
}

void tg_limiter_settle(tg_limiter_ticket *t, uint64_t actual)
{
    release(t, 0, clamp_tokens(actual));
}

void tg_limiter_cancel(tg_limiter_ticket *t)
{
    release(t, 1, 0);
}

void tg_limiter_read(tg_limiter *l, int64_t now_ms, tg_limiter_usage *out)
{
    assert(now_ms >= 0);
    pthread_mutex_lock(&l->mu);
    advance(l, now_ms / 1000);
    *out =
        (tg_limiter_usage){.requests = l->requests, .tokens = l->tokens, .in_flight = l->in_flight};
    pthread_mutex_unlock(&l->mu);
}

/* ---- the registry ---- */

typedef struct {
    uint64_t hash;
    tg_limiter_kind kind;
    tg_str id;
} limiter_key;

static bool is(const void *obj, const void *key)
{
    const tg_limiter *l = obj;
    const limiter_key *k = key;
    return l->kind == k->kind && tg_str_eq(tg_str_make(l->id, l->idn), k->id);
}

static void *limiter_new(void *ud)
{
    const limiter_key *k = ud;
    /* Whole cache lines, so that two busy limiters never share one. */
    size_t size = (sizeof(tg_limiter) + k->id.n + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    tg_limiter *l = aligned_alloc(CACHE_LINE, size);
    if (!l) return NULL;
    memset(l, 0, size);
    pthread_mutex_init(&l->mu, NULL);
    l->kind = k->kind;
    l->idn = k->id.n;
    if (k->id.n) memcpy(l->id, k->id.p, k->id.n);
    return l;
}

static void limiter_free(void *obj)
{
    tg_limiter *l = obj;
    pthread_mutex_destroy(&l->mu);
    free(l);
}

tg_limiters *tg_limiters_new(void)
{
    tg_limiters *r = calloc(1, sizeof *r);
    if (r && !(r->map = tg_pmap_new())) {
        free(r);
        r = NULL;
    }
    return r;
}

void tg_limiters_free(tg_limiters *r)
{
    if (!r) return;
    tg_pmap_free(r->map, limiter_free);
    free(r);
}

int tg_limiters_get(tg_limiters *r, tg_limiter_kind kind, tg_str id, tg_limiter **out)
{
    limiter_key k = {tg_hash64(id.p, id.n, (uint64_t)kind + 1), kind, id};
    tg_limiter *l = tg_pmap_get_or_add(r->map, k.hash, &k, is, limiter_new, &k);
    if (!l) return TG_ENOMEM;
    *out = l;
    return TG_OK;
}
