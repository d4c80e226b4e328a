/* Sharded request metrics and their Prometheus rendering; see metrics.h. */
#include "api/metrics.h"
#include "base/err.h"
#include "base/hash.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define NBUCKETS 15
static const uint64_t bucket_us[NBUCKETS - 1] = {1000,   5000,   10000,   25000,   50000,
                                                 100000, 250000, 500000,  1000000, 2500000,
                                                 5000000, 10000000, 30000000, 60000000};
static const char *const bucket_le[NBUCKETS] = {"0.001", "0.005", "0.01", "0.025", "0.05",
                                                "0.1",   "0.25",  "0.5",  "1",     "2.5",
                                                "5",     "10",    "30",   "60",    "+Inf"};

typedef struct {
    uint64_t count[NBUCKETS]; /* not cumulative; summed when rendered */
    uint64_t sum_us, n;
} tg_hist;

typedef struct {
    char *a;       /* model or provider */
    size_t an;     /* strlen(a) */
    const char *b; /* kind (static) or NULL */
    int status;
    uint64_t requests, prompt_tokens, completion_tokens;
    tg_hist latency, ttfb;
} tg_series;

/* A slot of a shard's index: where the series of one (model, status) are. */
typedef struct {
    uint64_t h;    /* hash of (model, status) */
    uint32_t req;  /* in req, plus one; 0: a free slot */
    uint32_t lat;  /* in lat */
} tg_slot;

/* The arrays keep the order series first appeared in, which is the order
 * they are rendered in. A request finds its two series through idx, an
 * open-addressing table (linear probing, at most half full) over the
 * (model, status) pairs seen, instead of comparing labels one by one. */
struct tg_metrics_shard {
    pthread_mutex_t mu;
    tg_series *req; /* by (model, status) */
    size_t nreq, capreq;
    tg_series *lat; /* by model: latency and ttfb histograms */
    size_t nlat, caplat;
    tg_series *err; /* by (provider, kind) */
    size_t nerr, caperr;
    tg_slot *idx;   /* NULL until the first request */
    size_t nidx, capidx; /* capidx: 0 or a power of two */
};

struct tg_metrics {
    unsigned n;
    atomic_ulong reload_ok, reload_failed;
    tg_metrics_shard shards[];
};

tg_metrics *tg_metrics_new(unsigned nshards)
{
    tg_metrics *m = calloc(1, sizeof *m + nshards * sizeof(tg_metrics_shard));
    if (!m) return NULL;
    m->n = nshards;
    for (unsigned i = 0; i < nshards; i++) pthread_mutex_init(&m->shards[i].mu, NULL);
    return m;
}

static void free_series(tg_series *s, size_t n)
{
    for (size_t i = 0; i < n; i++) free(s[i].a);
    free(s);
}

void tg_metrics_free(tg_metrics *m)
{
    if (!m) return;
    for (unsigned i = 0; i < m->n; i++) {
        tg_metrics_shard *s = &m->shards[i];
        free_series(s->req, s->nreq);
        free_series(s->lat, s->nlat);
        free_series(s->err, s->nerr);
        free(s->idx);
        pthread_mutex_destroy(&s->mu);
    }
    free(m);
}

tg_metrics_shard *tg_metrics_shard_of(tg_metrics *m, unsigned i) { return &m->shards[i % m->n]; }

/* The series labelled (a, b, status) in the array, added when missing;
 * NULL on out-of-memory (the sample is then dropped). */
static tg_series *series(tg_series **arr, size_t *n, size_t *cap, tg_str a, const char *b, int status)
{
    for (size_t i = 0; i < *n; i++) {
        tg_series *s = &(*arr)[i];
        if (s->status == status && s->b == b && s->an == a.n && memcmp(s->a, a.p, a.n) == 0)
            return s;
    }
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        tg_series *na = realloc(*arr, nc * sizeof *na);
        if (!na) return NULL;
        *arr = na;
        *cap = nc;
    }
    tg_series *s = &(*arr)[*n];
    memset(s, 0, sizeof *s);
    if (!(s->a = tg_str_dup(a))) return NULL;
    s->an = a.n;
    s->b = b;
    s->status = status;
    (*n)++;
    return s;
}

static void observe(tg_hist *h, uint64_t ns)
{
    uint64_t us = ns / 1000;
    int i = 0;
    while (i < NBUCKETS - 1 && us > bucket_us[i]) i++;
    h->count[i]++;
    h->sum_us += us;
    h->n++;
}

/* FNV-1a's low bits depend only on the low bits of the input: fold the
 * high half in. */
static size_t slot_of(uint64_t h, size_t cap) { return (size_t)(h ^ (h >> 32)) & (cap - 1); }

/* Inserts into an index known to have a free slot. */
static void idx_put(tg_slot *idx, size_t cap, tg_slot e)
{
    size_t i = slot_of(e.h, cap);
    while (idx[i].req) i = (i + 1) & (cap - 1);
    idx[i] = e;
}

/* Remembers where (model, status)'s series are. Failing to grow the index
 * loses nothing: the next request for the pair looks it up again. */
static void idx_add(tg_metrics_shard *s, tg_slot e)
{
    if ((s->nidx + 1) * 2 > s->capidx) {
        size_t cap = s->capidx ? s->capidx * 2 : 16;
        tg_slot *idx = calloc(cap, sizeof *idx);
        if (!idx) return;
        for (size_t i = 0; i < s->capidx; i++)
            if (s->idx[i].req) idx_put(idx, cap, s->idx[i]);
        free(s->idx);
        s->idx = idx;
        s->capidx = cap;
    }
    idx_put(s->idx, s->capidx, e);
    s->nidx++;
}

/* The (model, status) and the model series of a request, added when
 * missing; NULL on out-of-memory (that part of the sample is dropped). */
static void request_series(tg_metrics_shard *s, uint64_t h, tg_str model, int status,
                           tg_series **r, tg_series **l)
{
    if (s->capidx) {
        for (size_t i = slot_of(h, s->capidx); s->idx[i].req; i = (i + 1) & (s->capidx - 1)) {
            tg_slot *e = &s->idx[i];
            tg_series *c = &s->req[e->req - 1];
            if (e->h == h && c->status == status && c->an == model.n &&
                memcmp(c->a, model.p, model.n) == 0) {
                *r = c;
                *l = &s->lat[e->lat];
                return;
            }
        }
    }
    /* A pair not seen yet: the arrays are the record, the index follows. */
    *r = series(&s->req, &s->nreq, &s->capreq, model, NULL, status);
    *l = series(&s->lat, &s->nlat, &s->caplat, model, NULL, 0);
    if (*r && *l) idx_add(s, (tg_slot){h, (uint32_t)(*r - s->req) + 1, (uint32_t)(*l - s->lat)});
}

void tg_metrics_request(tg_metrics_shard *s, tg_str model, int status, uint64_t latency_ns,
                        uint64_t ttfb_ns, int64_t prompt_tokens, int64_t completion_tokens)
{
    uint64_t h = tg_hash64(model.p, model.n, (uint64_t)(unsigned)status);
    tg_series *r, *l;
    pthread_mutex_lock(&s->mu);
    request_series(s, h, model, status, &r, &l);
    if (r) {
        r->requests++;
        r->prompt_tokens += (uint64_t)(prompt_tokens > 0 ? prompt_tokens : 0);
        r->completion_tokens += (uint64_t)(completion_tokens > 0 ? completion_tokens : 0);
    }
    if (l) {
        observe(&l->latency, latency_ns);
        if (ttfb_ns) observe(&l->ttfb, ttfb_ns);
    }
    pthread_mutex_unlock(&s->mu);
}

void tg_metrics_upstream_error(tg_metrics_shard *s, tg_str provider, const char *kind)
{
    pthread_mutex_lock(&s->mu);
    tg_series *e = series(&s->err, &s->nerr, &s->caperr, provider, kind, 0);
    if (e) e->requests++;
    pthread_mutex_unlock(&s->mu);
}

void tg_metrics_reload(tg_metrics *m, bool ok)
{
    atomic_fetch_add(ok ? &m->reload_ok : &m->reload_failed, 1);
}

/* Merges one array of every shard into a fresh array (caller frees). */
static int merge(tg_metrics *m, size_t field, tg_series **out, size_t *nout)
{
    tg_series *all = NULL;
    size_t n = 0, cap = 0;
    for (unsigned i = 0; i < m->n; i++) {
        tg_metrics_shard *s = &m->shards[i];
        tg_series *arr = field == 0 ? s->req : field == 1 ? s->lat : s->err;
        size_t an = field == 0 ? s->nreq : field == 1 ? s->nlat : s->nerr;
        for (size_t j = 0; j < an; j++) {
            tg_series *src = &arr[j];
            tg_series *d = series(&all, &n, &cap, tg_str_make(src->a, src->an), src->b, src->status);
            if (!d) {
                free_series(all, n);
                return TG_ENOMEM;
            }
            d->requests += src->requests;
            d->prompt_tokens += src->prompt_tokens;
            d->completion_tokens += src->completion_tokens;
            for (int k = 0; k < NBUCKETS; k++) {
                d->latency.count[k] += src->latency.count[k];
                d->ttfb.count[k] += src->ttfb.count[k];
            }
            d->latency.sum_us += src->latency.sum_us;
            d->latency.n += src->latency.n;
            d->ttfb.sum_us += src->ttfb.sum_us;
            d->ttfb.n += src->ttfb.n;
        }
    }
    *out = all;
    *nout = n;
    return TG_OK;
}

static int render_hist(tg_buf *b, const char *name, const char *model, const tg_hist *h)
{
    uint64_t cum = 0;
    int rc = 0;
    for (int k = 0; !rc && k < NBUCKETS; k++) {
        cum += h->count[k];
        rc = tg_buf_printf(b, "%s_bucket{model=\"%s\",le=\"%s\"} %lu\n", name, model, bucket_le[k],
                           (unsigned long)cum);
    }
    if (!rc)
        rc = tg_buf_printf(b, "%s_sum{model=\"%s\"} %lu.%06lu\n%s_count{model=\"%s\"} %lu\n", name,
                           model, (unsigned long)(h->sum_us / 1000000),
                           (unsigned long)(h->sum_us % 1000000), name, model, (unsigned long)h->n);
    return rc;
}

int tg_metrics_render(tg_metrics *m, long open_connections, tg_buf *out)
{
    tg_series *req = NULL, *lat = NULL, *err = NULL;
    size_t nreq = 0, nlat = 0, nerr = 0;
    for (unsigned i = 0; i < m->n; i++) pthread_mutex_lock(&m->shards[i].mu);
    int rc = merge(m, 0, &req, &nreq);
    if (!rc) rc = merge(m, 1, &lat, &nlat);
    if (!rc) rc = merge(m, 2, &err, &nerr);
    for (unsigned i = 0; i < m->n; i++) pthread_mutex_unlock(&m->shards[i].mu);
    /* Labels are config names (validated) or "unknown": no escaping needed. */
    if (!rc) rc = tg_buf_add_lit(out, "# HELP tollgate_requests_total Client requests by model and status.\n"
                                      "# TYPE tollgate_requests_total counter\n");
    for (size_t i = 0; !rc && i < nreq; i++)
        rc = tg_buf_printf(out, "tollgate_requests_total{model=\"%s\",status=\"%d\"} %lu\n", req[i].a,
                           req[i].status, (unsigned long)req[i].requests);
    if (!rc) rc = tg_buf_add_lit(out, "# HELP tollgate_tokens_total Tokens reported by providers.\n"
                                      "# TYPE tollgate_tokens_total counter\n");
    for (size_t i = 0; !rc && i < nreq; i++) {
        if (req[i].status != 200) continue;
        rc = tg_buf_printf(out,
                           "tollgate_tokens_total{model=\"%s\",kind=\"prompt\"} %lu\n"
                           "tollgate_tokens_total{model=\"%s\",kind=\"completion\"} %lu\n",
                           req[i].a, (unsigned long)req[i].prompt_tokens, req[i].a,
                           (unsigned long)req[i].completion_tokens);
    }
    if (!rc) rc = tg_buf_add_lit(out, "# HELP tollgate_request_duration_seconds Time from the first request byte to the last response byte.\n"
                                      "# TYPE tollgate_request_duration_seconds histogram\n");
    for (size_t i = 0; !rc && i < nlat; i++)
        rc = render_hist(out, "tollgate_request_duration_seconds", lat[i].a, &lat[i].latency);
    if (!rc) rc = tg_buf_add_lit(out, "# HELP tollgate_time_to_first_byte_seconds Time from the first request byte to the first response byte.\n"
                                      "# TYPE tollgate_time_to_first_byte_seconds histogram\n");
    for (size_t i = 0; !rc && i < nlat; i++)
        rc = render_hist(out, "tollgate_time_to_first_byte_seconds", lat[i].a, &lat[i].ttfb);
    if (!rc) rc = tg_buf_add_lit(out, "# HELP tollgate_upstream_errors_total Failed upstream calls by provider and kind.\n"
                                      "# TYPE tollgate_upstream_errors_total counter\n");
    for (size_t i = 0; !rc && i < nerr; i++)
        rc = tg_buf_printf(out, "tollgate_upstream_errors_total{provider=\"%s\",kind=\"%s\"} %lu\n",
                           err[i].a, err[i].b, (unsigned long)err[i].requests);
    if (!rc)
        rc = tg_buf_printf(out,
                           "# HELP tollgate_open_connections Open client connections.\n"
                           "# TYPE tollgate_open_connections gauge\n"
                           "tollgate_open_connections %ld\n"
                           "# HELP tollgate_config_reloads_total Configuration reloads by result.\n"
                           "# TYPE tollgate_config_reloads_total counter\n"
                           "tollgate_config_reloads_total{result=\"ok\"} %lu\n"
                           "tollgate_config_reloads_total{result=\"failed\"} %lu\n",
                           open_connections, (unsigned long)atomic_load(&m->reload_ok),
                           (unsigned long)atomic_load(&m->reload_failed));
    free_series(req, nreq);
    free_series(lat, nlat);
    free_series(err, nerr);
    return rc;
}
