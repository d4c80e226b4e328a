/* The ledger thread. See ledger.h.
 *
 * A queue is the records' encodings end to end in one buffer, with each
 * one's end offset and ticket in parallel arrays: workers append to the
 * pending queue under the mutex; the thread swaps it with its own and
 * commits outside the lock, so a worker waits at most for a copy of a
 * few hundred bytes and, rarely, a realloc.
 *
 * A record is settled in the journal only after the transaction holding
 * it committed; a record whose commit keeps failing is never settled, so
 * the journal still has it for the next start. */
#include "store/ledger.h"

#include "base/clock.h"
#include "base/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BATCH 8192
#define DEFAULT_FLUSH_MS 200
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000
#define TRIES_AT_STOP 5 /* commit attempts left once stop is asked */
#define WARN_DEPTH 65536
#define PREFETCH_BYTES 384 /* a record is about 200 bytes, more with long tags */

typedef struct {
    uint8_t *bytes;    /* the encodings, end to end */
    size_t nbytes, capbytes;
    size_t *end;       /* record i is bytes[end[i-1] (0 for i = 0) .. end[i]) */
    tg_record_marks *marks;
    tg_jticket *tickets;
    size_t n, cap;
} queue;

struct tg_ledger {
    tg_store *store;
    tg_ledger_settle_fn settle;
    void *settle_ud;
    size_t batch;
    uint32_t flush_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* the thread: records arrived, or stop */
    pthread_cond_t done; /* tg_ledger_sync: records were committed */
    queue pending;       /* under mu */
    queue work;          /* the thread's own */
    const uint8_t **rec; /* the thread's: a batch's records, for tg_store_put_encoded */
    size_t *len;
    bool stopping;       /* under mu */
    uint64_t seq_in;     /* under mu: records submitted */
    uint64_t seq_done;   /* under mu: records committed or given up */
    size_t warn_at;      /* under mu: the depth that logs the next warning */
    _Atomic uint64_t submitted, committed, batches, failures, queued;
    /* tg_ledger_set_tick, under mu */
    void (*tick)(void *ud, tg_store *s);
    void *tick_ud;
    uint32_t tick_ms;
    struct timespec next_tick;
};

static void queue_release(queue *q)
{
    free(q->bytes);
    free(q->end);
    free(q->marks);
    free(q->tickets);
    *q = (queue){0};
}

/* Room for want records and wantb bytes. */
static int queue_reserve(queue *q, size_t want, size_t wantb)
{
    if (wantb > q->capbytes) {
        size_t cap = q->capbytes ? q->capbytes : (size_t)1 << 20;
        while (cap < wantb) cap *= 2;
        uint8_t *b = realloc(q->bytes, cap);
        if (!b) return TG_ENOMEM;
        q->bytes = b;
        q->capbytes = cap;
    }
    if (want <= q->cap) return TG_OK;
    size_t cap = q->cap ? q->cap : 1024;
    while (cap < want) cap *= 2;
    size_t *e = realloc(q->end, cap * sizeof *e);
    if (!e) return TG_ENOMEM;
    q->end = e;
    tg_record_marks *m = realloc(q->marks, cap * sizeof *m);
    if (!m) return TG_ENOMEM;
    q->marks = m;
    tg_jticket *t = realloc(q->tickets, cap * sizeof *t);
    if (!t) return TG_ENOMEM;
    q->tickets = t;
    q->cap = cap;
    return TG_OK;
}

/* ---- the thread ---- */

static void deadline_in(struct timespec *ts, uint32_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static bool before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static bool tick_due(const tg_ledger *l)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return l->tick && !before(&now, &l->next_tick);
}

/* Waits (mu held) for a full batch, flush_ms after the first record, the
 * tick's time, or stop. Returns false when stopping with nothing left. */
static bool wait_for_work(tg_ledger *l)
{
    while (!l->stopping && l->pending.n == 0 && !tick_due(l)) {
        if (l->tick) pthread_cond_timedwait(&l->wake, &l->mu, &l->next_tick);
        else pthread_cond_wait(&l->wake, &l->mu);
    }
    if (l->pending.n == 0) return !l->stopping;
    struct timespec dl;
    deadline_in(&dl, l->flush_ms);
    while (!l->stopping && l->pending.n < l->batch)
        if (pthread_cond_timedwait(&l->wake, &l->mu, &dl) == ETIMEDOUT) break;
    return true;
}

/* The tick, when due (mu held; released while it runs). */
static void run_tick(tg_ledger *l)
{
    if (!tick_due(l)) return;
    deadline_in(&l->next_tick, l->tick_ms);
    void (*fn)(void *, tg_store *) = l->tick;
    void *ud = l->tick_ud;
    pthread_mutex_unlock(&l->mu);
    fn(ud, l->store);
    pthread_mutex_lock(&l->mu);
}

/* Sleeps ms, or less when stop is asked (mu not held). */
static void backoff(tg_ledger *l, uint32_t ms)
{
    struct timespec dl;
    deadline_in(&dl, ms);
    pthread_mutex_lock(&l->mu);
    while (!l->stopping)
        if (pthread_cond_timedwait(&l->wake, &l->mu, &dl) == ETIMEDOUT) break;
    pthread_mutex_unlock(&l->mu);
}

static bool stopping(tg_ledger *l)
{
    pthread_mutex_lock(&l->mu);
    bool s = l->stopping;
    pthread_mutex_unlock(&l->mu);
    return s;
}

/* Commits records [off, off + n) of w with retries; false when it gave
 * up (at stop). */
static bool commit_batch(tg_ledger *l, const queue *w, size_t off, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t from = off + i ? w->end[off + i - 1] : 0;
        l->rec[i] = w->bytes + from;
        l->len[i] = w->end[off + i] - from;
    }
    uint32_t wait_ms = BACKOFF_MIN_MS;
    for (unsigned tries = 1, at_stop = 0;; tries++) {
        tg_errmsg err = {{0}};
        int rc = tg_store_put_encoded(l->store, l->rec, l->len, w->marks + off, n, &err);
        if (!rc) {
            atomic_fetch_add_explicit(&l->batches, 1, memory_order_relaxed);
            return true;
        }
        atomic_fetch_add_explicit(&l->failures, 1, memory_order_relaxed);
        if (stopping(l) && ++at_stop >= TRIES_AT_STOP) return false;
        tg_log(TG_LOG_WARN, "ledger: committing %zu records failed (attempt %u): %s; retrying in %u ms",
               n, tries, err.msg, wait_ms);
        backoff(l, wait_ms);
        wait_ms = wait_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : wait_ms * 2;
    }
}

static void commit_all(tg_ledger *l, queue *w)
{
    size_t lost = 0;
    for (size_t off = 0; off < w->n; off += l->batch) {
        size_t n = w->n - off < l->batch ? w->n - off : l->batch;
        if (commit_batch(l, w, off, n)) {
            for (size_t i = 0; l->settle && i < n; i++)
                l->settle(l->settle_ud, &w->tickets[off + i]);
            atomic_fetch_add_explicit(&l->committed, n, memory_order_relaxed);
        } else {
            lost += n;
        }
        atomic_fetch_sub_explicit(&l->queued, n, memory_order_relaxed);
    }
    if (lost)
        tg_log(TG_LOG_ERROR,
               "ledger: stopping with %zu records not committed to the store; %s", lost,
               l->settle ? "they stay in the journal for the next start"
                         : "there is no journal: they are lost");
}

static void *ledger_main(void *arg)
{
    tg_ledger *l = arg;
    pthread_setname_np(pthread_self(), "tg-ledger");
    pthread_mutex_lock(&l->mu);
    while (wait_for_work(l)) {
        run_tick(l);
        if (l->pending.n == 0) continue;
        queue t = l->pending;
        l->pending = l->work;
        l->work = t;
        l->warn_at = WARN_DEPTH;
        pthread_mutex_unlock(&l->mu);
        commit_all(l, &l->work);
        size_t n = l->work.n;
        l->work.n = l->work.nbytes = 0;
        pthread_mutex_lock(&l->mu);
        l->seq_done += n;
        pthread_cond_broadcast(&l->done);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* ---- the API ---- */

static void journal_settle(void *ud, const tg_jticket *t) { tg_journal_settle(ud, t); }

int tg_ledger_start(const tg_metering_conf *c, tg_store *s, tg_journal *j, tg_ledger **out,
                    tg_errmsg *err)
{
    return tg_ledger_start_with(c, s, j ? journal_settle : NULL, j, out, err);
}

static int init_sync(tg_ledger *l)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca)) return TG_ENOMEM;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_mutex_init(&l->mu, NULL) || pthread_cond_init(&l->wake, &ca) ||
             pthread_cond_init(&l->done, NULL);
    pthread_condattr_destroy(&ca);
    return rc ? TG_ENOMEM : TG_OK;
}

int tg_ledger_start_with(const tg_metering_conf *c, tg_store *s, tg_ledger_settle_fn fn, void *ud,
                         tg_ledger **out, tg_errmsg *err)
{
    tg_ledger *l = calloc(1, sizeof *l);
    if (!l || init_sync(l)) {
        free(l);
        tg_store_close(s);
        tg_errmsg_set(err, "ledger: out of memory");
        return TG_ENOMEM;
    }
    l->store = s;
    l->settle = fn;
    l->settle_ud = ud;
    l->batch = c && c->batch_records ? c->batch_records : DEFAULT_BATCH;
    l->flush_ms = c && c->flush_ms ? c->flush_ms : DEFAULT_FLUSH_MS;
    l->warn_at = WARN_DEPTH;
    l->rec = malloc(l->batch * sizeof *l->rec);
    l->len = malloc(l->batch * sizeof *l->len);
    if (!l->rec || !l->len || queue_reserve(&l->pending, l->batch, 0) ||
        queue_reserve(&l->work, l->batch, 0) ||
        pthread_create(&l->thread, NULL, ledger_main, l)) {
        queue_release(&l->pending);
        queue_release(&l->work);
        free(l->rec);
        free(l->len);
        tg_store_close(s);
        free(l);
        tg_errmsg_set(err, "ledger: cannot start its thread");
        return TG_EIO;
    }
    *out = l;
    return TG_OK;
}

void tg_ledger_set_tick(tg_ledger *l, void (*fn)(void *ud, tg_store *s), void *ud, uint32_t every_ms)
{
    pthread_mutex_lock(&l->mu);
    l->tick = fn;
    l->tick_ud = ud;
    l->tick_ms = every_ms;
    clock_gettime(CLOCK_MONOTONIC, &l->next_tick);
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->mu);
}

void tg_ledger_submit(tg_ledger *l, const uint8_t *rec, size_t len, const tg_record_marks *m,
                      const tg_jticket *t)
{
    pthread_mutex_lock(&l->mu);
    queue *q = &l->pending;
    /* Out of memory here leaves no good choice: dropping a record is what
     * the ledger must never do, and the journal has it anyway. Abort. */
    if (queue_reserve(q, q->n + 1, q->nbytes + len)) {
        tg_log(TG_LOG_ERROR, "ledger: out of memory queueing a usage record");
        abort();
    }
    memcpy(q->bytes + q->nbytes, rec, len);
    q->nbytes += len;
    q->end[q->n] = q->nbytes;
    q->marks[q->n] = *m;
    q->tickets[q->n] = t ? *t : (tg_jticket){0};
    size_t n = ++q->n;
    /* Ask the CPU for the lines the next record will take. A queue is
     * megabytes that the thread last read a batch ago, so its lines are
     * long out of the worker's caches: the copy above missed on them, and
     * the misses held up the mutex's atomic release until served
     * (tg_ledger_submit was 0.6% of a worker's samples at 32 connections;
     * 0.15% with this). The next submit comes a request later, time for
     * the lines to arrive. Within the buffers only: a prefetch never
     * faults, but a pointer past an object is not C. (Written here, not
     * in a helper: GCC finds a function of prefetches alone free of side
     * effects and drops the call.) */
    if (q->capbytes - q->nbytes >= PREFETCH_BYTES)
        for (size_t k = 0; k < PREFETCH_BYTES; k += 64) __builtin_prefetch(q->bytes + q->nbytes + k, 1);
    if (n < q->cap) {
        __builtin_prefetch(&q->end[n], 1);
        __builtin_prefetch(&q->marks[n], 1);
        __builtin_prefetch(&q->tickets[n], 1);
    }
    l->seq_in++;
    if (n == 1 || n == l->batch) pthread_cond_signal(&l->wake);
    if (n >= l->warn_at) {
        tg_log(TG_LOG_WARN, "ledger: %zu records waiting for the store", n);
        l->warn_at *= 2;
    }
    /* counted under mu, before the thread can take the record and count
     * it out of `queued` */
    atomic_fetch_add_explicit(&l->submitted, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&l->queued, 1, memory_order_relaxed);
    pthread_mutex_unlock(&l->mu);
}

void tg_ledger_sync(tg_ledger *l)
{
    pthread_mutex_lock(&l->mu);
    uint64_t want = l->seq_in;
    pthread_cond_signal(&l->wake);
    while (l->seq_done < want) pthread_cond_wait(&l->done, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

void tg_ledger_stop(tg_ledger *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stopping = true;
    pthread_cond_broadcast(&l->wake);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    tg_store_close(l->store);
    queue_release(&l->pending);
    queue_release(&l->work);
    free(l->rec);
    free(l->len);
    pthread_cond_destroy(&l->wake);
    pthread_cond_destroy(&l->done);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

void tg_ledger_stats(tg_ledger *l, tg_ledger_counts *out)
{
    *out = (tg_ledger_counts){
        .submitted = atomic_load_explicit(&l->submitted, memory_order_relaxed),
        .committed = atomic_load_explicit(&l->committed, memory_order_relaxed),
        .batches = atomic_load_explicit(&l->batches, memory_order_relaxed),
        .failures = atomic_load_explicit(&l->failures, memory_order_relaxed),
        .queued = atomic_load_explicit(&l->queued, memory_order_relaxed),
    };
}
