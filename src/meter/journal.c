/* The journal's files: segments, writers, the fsync flusher, and recovery
 * at start (see journal.h; the record codec is codec.c).
 *
 * A segment (tg_jseg) lives while anything may still need its file. Its
 * reference count holds: one for the writer while the segment is open for
 * appends, one per record appended and not yet settled, and one for the
 * flusher while it fsyncs it. Whoever drops the last reference deletes the
 * file, so a settle on a ledger thread, a rotation on a worker and the
 * flusher can race in any order: the file goes exactly once, after the
 * last of them. The flusher finds segments through j->segs (under j->mu)
 * and takes a reference only from a count that is not already zero, so it
 * never revives a segment being deleted.
 *
 * Segment numbers (the SEQ in w<WORKER>-<SEQ>.tgj) come from one counter
 * for all workers, started at one past the largest number found in the
 * directory at open: numbers only grow while files exist, so sorting by
 * SEQ is the order records were appended in (per worker exactly, across
 * workers by the time each segment was opened), and a restart never
 * reuses a name that is still on disk.
 *
 * A writer batches: intents and outcomes (outcomes not under `always`)
 * wait in w->frames and go out at tg_journal_writer_flush, before a
 * rotation, or when the batch passes BATCH_MAX; an outcome under `always`
 * takes what is held with it. A held frame takes its record's reference
 * on w->seg when it is held, and that is the segment it lands in: the
 * writer writes what it holds before it leaves a segment, and its own
 * reference keeps the open segment alive, so a settle that comes before
 * the write cannot delete the file under it.
 *
 * A write that fails part way leaves a torn frame; the writer cuts the
 * whole batch off again (ftruncate) if it can and, either way, moves on to
 * a new segment, so valid frames never follow a torn one in the same file:
 * recovery stops reading a segment at its first bad frame. The held frames
 * of a failed batch are not in the journal; their tickets still hold
 * references on the broken segment, dropped by their settles as any
 * others, so it is deleted once they all came. A failed batch that held
 * intents is remembered (w->lost_intents) until the next public flush
 * reports it: only there does the caller learn which requests may go
 * upstream, and a write that failed inside an append (BATCH_MAX, a
 * rotation, an outcome under `always`) has no other way to reach it. */
#include "meter/journal.h"
#include "base/hash.h"
#include "base/log.h"

#include <assert.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct tg_jseg {
    tg_journal *j;
    atomic_long refs;
    atomic_bool dirty;      /* appended since the flusher last fsynced it */
    int fd;
    uint64_t bytes;         /* the file's size; the writer's alone */
    bool broken;            /* a write failed: no more appends here */
    tg_jseg *prev, *next;   /* j->segs, under j->mu */
    char path[];
};

typedef struct {
    uint64_t seq;
    unsigned worker;
    char *path;
} old_seg;

struct tg_journal {
    char *dir;
    int dirfd, lockfd;
    tg_fsync_policy policy;
    uint32_t interval_ms;
    uint64_t segment_bytes;
    _Atomic uint64_t next_seq;
    atomic_bool dir_dirty;  /* a segment was created since the last dir fsync */

    pthread_mutex_t mu;
    pthread_cond_t cv;      /* wakes the flusher to stop */
    tg_jseg *segs;          /* every live segment */
    bool stopping, flusher_on;
    pthread_t flusher;

    old_seg *old;           /* segments found at open, in replay order */
    size_t nold;
    bool recovered;         /* tg_journal_recover read all of them */
};

/* Held frames are written before the batch passes this many bytes:
 * about 260 typical records, a loop turn's worth at high load. */
#define BATCH_MAX (64 * 1024)

struct tg_journal_writer {
    tg_journal *j;
    unsigned worker;
    tg_jseg *seg;        /* open for appends; NULL until the first */
    tg_buf frames;       /* held frames, all for seg; when held is 0, the last batch written */
    size_t held;         /* frames in frames not yet written */
    size_t intents;      /* of them, intents */
    bool lost_intents;   /* a write of held intents failed since the last flush */
    const uint8_t *last; /* the last payload appended, in frames; NULL after a failure */
    size_t nlast;
    tg_record_marks marks; /* last's, when it is an outcome */
};

/* ---- segments ---- */

static void seg_delete(tg_jseg *s)
{
    tg_journal *j = s->j;
    pthread_mutex_lock(&j->mu);
    if (s->prev) s->prev->next = s->next;
    else j->segs = s->next;
    if (s->next) s->next->prev = s->prev;
    pthread_mutex_unlock(&j->mu);
    if (unlink(s->path) && errno != ENOENT)
        tg_log(TG_LOG_WARN, "journal: cannot delete settled segment %s: %s", s->path, strerror(errno));
    close(s->fd);
    free(s);
}

static void seg_unref(tg_jseg *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) seg_delete(s);
}

/* A reference unless the count already reached zero (being deleted). */
static bool seg_tryref(tg_jseg *s)
{
    long n = atomic_load_explicit(&s->refs, memory_order_relaxed);
    while (n > 0)
        if (atomic_compare_exchange_weak_explicit(&s->refs, &n, n + 1, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return true;
    return false;
}

static int dir_sync(tg_journal *j)
{
    if (fsync(j->dirfd) == 0) return TG_OK;
    tg_log(TG_LOG_ERROR, "journal: fsync %s: %s", j->dir, strerror(errno));
    return TG_EIO;
}

/* Creates the next segment for worker, holding the writer's reference. */
static int seg_create(tg_journal *j, unsigned worker, tg_jseg **out)
{
    uint64_t seq = atomic_fetch_add(&j->next_seq, 1);
    size_t n = strlen(j->dir) + 48;
    tg_jseg *s = calloc(1, sizeof *s + n);
    if (!s) return TG_ENOMEM;
    snprintf(s->path, n, "%s/w%u-%llu.tgj", j->dir, worker, (unsigned long long)seq);
    /* O_EXCL: a name in use means a second process shares this directory */
    s->fd = open(s->path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (s->fd < 0) {
        tg_log(TG_LOG_ERROR, "journal: cannot create %s: %s", s->path, strerror(errno));
        free(s);
        return TG_EIO;
    }
    s->j = j;
    atomic_init(&s->refs, 1);
    atomic_init(&s->dirty, false);
    if (j->policy == TG_FSYNC_ALWAYS) dir_sync(j);
    else if (j->policy == TG_FSYNC_INTERVAL) atomic_store(&j->dir_dirty, true);
    pthread_mutex_lock(&j->mu);
    s->next = j->segs;
    if (j->segs) j->segs->prev = s;
    j->segs = s;
    pthread_mutex_unlock(&j->mu);
    *out = s;
    return TG_OK;
}

/* ---- the flusher (policy interval) ---- */

/* fsyncs every segment appended to since the last pass. */
static void flush_pass(tg_journal *j)
{
    tg_jseg *batch[64];
    bool more = true;
    while (more) {
        size_t n = 0;
        more = false;
        pthread_mutex_lock(&j->mu);
        for (tg_jseg *s = j->segs; s; s = s->next) {
            if (!atomic_load(&s->dirty)) continue;
            if (n == sizeof batch / sizeof batch[0]) {
                more = true;
                break;
            }
            /* clear before the fsync: an append after it marks it again */
            if (seg_tryref(s)) {
                atomic_store(&s->dirty, false);
                batch[n++] = s;
            }
        }
        pthread_mutex_unlock(&j->mu);
        for (size_t i = 0; i < n; i++) {
            if (fsync(batch[i]->fd))
                tg_log(TG_LOG_ERROR, "journal: fsync %s: %s", batch[i]->path, strerror(errno));
            seg_unref(batch[i]);
        }
    }
    if (atomic_exchange(&j->dir_dirty, false)) dir_sync(j);
}

static void *flusher_main(void *arg)
{
    tg_journal *j = arg;
    pthread_setname_np(pthread_self(), "tg-jflush");
    pthread_mutex_lock(&j->mu);
    while (!j->stopping) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        uint64_t ns = (uint64_t)t.tv_nsec + (uint64_t)j->interval_ms * 1000000u;
        t.tv_sec += (time_t)(ns / 1000000000u);
        t.tv_nsec = (long)(ns % 1000000000u);
        while (!j->stopping && pthread_cond_timedwait(&j->cv, &j->mu, &t) != ETIMEDOUT) {}
        pthread_mutex_unlock(&j->mu);
        flush_pass(j); /* also the last one, after stopping */
        pthread_mutex_lock(&j->mu);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

static int start_flusher(tg_journal *j)
{
    if (j->policy != TG_FSYNC_INTERVAL) return TG_OK;
    if (pthread_create(&j->flusher, NULL, flusher_main, j)) return TG_ENOMEM;
    j->flusher_on = true;
    return TG_OK;
}

/* The lock and the flusher's clock-monotonic condition variable. */
static void init_sync(tg_journal *j)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&j->mu, NULL);
}

/* ---- open and close ---- */

/* "w<worker>-<seq>.tgj", digits only; false for anything else. */
static bool parse_name(const char *name, unsigned *worker, uint64_t *seq)
{
    const char *p = name;
    if (*p++ != 'w') return false;
    uint64_t v[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        const char *start = p;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (v[k] > (UINT64_MAX - 9) / 10) return false;
            v[k] = v[k] * 10 + (uint64_t)(*p - '0');
        }
        if (p == start || (p - start > 1 && *start == '0')) return false;
        if (*p++ != (k == 0 ? '-' : '.')) return false;
    }
    if (strcmp(p, "tgj") != 0 || v[0] > 0xffffffffu) return false;
    *worker = (unsigned)v[0];
    *seq = v[1];
    return true;
}

static int old_cmp(const void *a, const void *b)
{
    const old_seg *x = a, *y = b;
    if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
    return x->worker < y->worker ? -1 : x->worker > y->worker;
}

/* Lists the segments an earlier process left, sorted, and sets next_seq. */
static int list_old(tg_journal *j, tg_errmsg *err)
{
    int rc = TG_OK;
    size_t cap = 0;
    uint64_t max = 0;
    DIR *d = opendir(j->dir);
    if (!d) {
        tg_errmsg_set(err, "journal: cannot list %s: %s", j->dir, strerror(errno));
        return TG_EIO;
    }
    for (struct dirent *e; (e = readdir(d));) {
        old_seg o;
        if (!parse_name(e->d_name, &o.worker, &o.seq)) continue;
        if (j->nold == cap) {
            cap = cap ? 2 * cap : 16;
            old_seg *n = realloc(j->old, cap * sizeof *n);
            if (!n) { rc = TG_ENOMEM; goto out; }
            j->old = n;
        }
        if (asprintf(&o.path, "%s/%s", j->dir, e->d_name) < 0) { rc = TG_ENOMEM; goto out; }
        j->old[j->nold++] = o;
        if (o.seq > max) max = o.seq;
    }
    if (j->nold) qsort(j->old, j->nold, sizeof *j->old, old_cmp);
    atomic_init(&j->next_seq, max + 1);
out:
    closedir(d);
    if (rc) tg_errmsg_set(err, "journal: out of memory listing %s", j->dir);
    return rc;
}

static int make_dir(const char *path, tg_errmsg *err)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST) return TG_OK;
    tg_errmsg_set(err, "journal: cannot create %s: %s", path, strerror(errno));
    return TG_EIO;
}

/* The directory, a lock that keeps a second process out, the old segments. */
static int open_dir(tg_journal *j, const char *data_dir, tg_errmsg *err)
{
    char *lock = NULL;
    int rc = make_dir(data_dir, err);
    if (!rc) rc = make_dir(j->dir, err);
    if (rc) goto out;
    rc = TG_EIO;
    j->dirfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dirfd < 0) {
        tg_errmsg_set(err, "journal: cannot open %s: %s", j->dir, strerror(errno));
        goto out;
    }
    if (asprintf(&lock, "%s/lock", j->dir) < 0) { rc = TG_ENOMEM; lock = NULL; goto out; }
    j->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (j->lockfd < 0 || flock(j->lockfd, LOCK_EX | LOCK_NB)) {
        if (errno == EWOULDBLOCK)
            tg_errmsg_set(err, "journal %s is in use by another tollgate (%s is locked); "
                               "give each gateway its own metering.data_dir", j->dir, lock);
        else
            tg_errmsg_set(err, "journal: cannot lock %s: %s", lock, strerror(errno));
        goto out;
    }
    rc = list_old(j, err);
out:
    free(lock);
    return rc;
}

int tg_journal_open(const tg_metering_conf *c, tg_journal **out, tg_errmsg *err)
{
    int rc = TG_ENOMEM;
    tg_journal *j = calloc(1, sizeof *j);
    if (!j) goto fail;
    j->dirfd = j->lockfd = -1;
    j->policy = c->fsync;
    j->interval_ms = c->fsync_interval_ms ? c->fsync_interval_ms : 1;
    j->segment_bytes = c->segment_bytes;
    atomic_init(&j->dir_dirty, false);
    init_sync(j);
    if (asprintf(&j->dir, "%s/journal", c->data_dir) < 0) {
        j->dir = NULL;
        goto fail;
    }
    rc = open_dir(j, c->data_dir, err);
    if (rc) goto fail;
    if (j->policy != TG_FSYNC_NEVER) dir_sync(j);
    rc = start_flusher(j);
    if (rc) goto fail;
    *out = j;
    return TG_OK;
fail:
    if (rc == TG_ENOMEM) tg_errmsg_set(err, "journal: out of memory");
    tg_journal_close(j);
    return rc;
}

static void free_old(tg_journal *j)
{
    for (size_t i = 0; i < j->nold; i++) free(j->old[i].path);
    free(j->old);
    j->old = NULL;
    j->nold = 0;
}

void tg_journal_close(tg_journal *j)
{
    if (!j) return;
    if (j->flusher_on) {
        pthread_mutex_lock(&j->mu);
        j->stopping = true;
        pthread_cond_signal(&j->cv);
        pthread_mutex_unlock(&j->mu);
        pthread_join(j->flusher, NULL);
    }
    /* What is left holds records nobody settled: keep the files for the
     * next start, durable whatever the policy. */
    for (tg_jseg *s = j->segs, *next; s; s = next) {
        next = s->next;
        if (j->policy != TG_FSYNC_NEVER && fsync(s->fd))
            tg_log(TG_LOG_ERROR, "journal: fsync %s: %s", s->path, strerror(errno));
        close(s->fd);
        free(s);
    }
    if (j->dirfd >= 0) close(j->dirfd);
    if (j->lockfd >= 0) close(j->lockfd); /* releases the flock */
    free_old(j);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j->dir);
    free(j);
}

/* ---- writers ---- */

tg_journal_writer *tg_journal_writer_new(tg_journal *j, unsigned worker)
{
    tg_journal_writer *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->j = j;
    w->worker = worker;
    tg_buf_init(&w->frames, BATCH_MAX + TG_JOURNAL_FRAME_HDR + TG_RECORD_MAX_LEN);
    return w;
}

void tg_journal_writer_free(tg_journal_writer *w)
{
    if (!w) return;
    tg_journal_writer_flush(w);
    if (w->seg) seg_unref(w->seg);
    tg_buf_release(&w->frames);
    free(w);
}

/* Whether w->seg can take every frame in w->frames: a sound segment that
 * stays within segment_bytes, or that they would be the first frame of
 * (a segment may pass segment_bytes by its last frame only). */
static bool seg_takes(const tg_journal_writer *w)
{
    const tg_jseg *s = w->seg;
    return s && !s->broken &&
           (s->bytes + w->frames.n <= w->j->segment_bytes || (s->bytes == 0 && !w->held));
}

/* A segment for the new frame: the current one, or a new one. When a new
 * one cannot be created, a full but sound segment takes the frame. */
static int writer_segment(tg_journal_writer *w)
{
    tg_jseg *s = w->seg, *next;
    if (seg_takes(w)) return TG_OK;
    assert(!w->held); /* held frames land in the segment their tickets name */
    int rc = seg_create(w->j, w->worker, &next);
    if (rc) return s && !s->broken ? TG_OK : rc;
    if (s) seg_unref(s);
    w->seg = next;
    return TG_OK;
}

/* The whole batch, in one write(2) unless the kernel takes less. */
static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (k == 0) errno = EIO;
            return TG_EIO;
        }
        p += k;
        n -= (size_t)k;
    }
    return TG_OK;
}

/* After a failed write or fsync: takes the batch back out if the file
 * lets us (it then never existed), and leaves the segment either way, so
 * no valid frame is ever written after a torn one. */
static void seg_fail(tg_jseg *s, const char *what)
{
    int e = errno;
    bool cut = ftruncate(s->fd, (off_t)s->bytes) == 0;
    tg_log(TG_LOG_ERROR, "journal: %s %s: %s (%s)", what, s->path, strerror(e),
           cut ? "records removed" : "the segment ends in a torn record");
    s->broken = true;
}

/* Writes the first n bytes of w->frames (the held frames, and the new
 * frame when it goes at once) to w->seg and, under `always`, fsyncs. The
 * held frames are gone from w either way: written, or lost to the journal
 * (logged, and remembered if intents were among them), see the top of the
 * file. */
static int write_frames(tg_journal_writer *w, size_t n)
{
    tg_jseg *s = w->seg;
    int rc = write_all(s->fd, w->frames.p, n);
    if (!rc && w->j->policy == TG_FSYNC_ALWAYS && fsync(s->fd)) rc = TG_EIO;
    if (rc) {
        seg_fail(s, "write");
        if (w->intents) {
            w->lost_intents = true;
            tg_log(TG_LOG_ERROR, "journal: the %zu request(s) whose intent that write held are "
                   "refused, not sent upstream", w->intents);
        }
        if (w->held > w->intents)
            tg_log(TG_LOG_ERROR,
                   "journal: %zu request outcome(s) in that write are not in the journal; if "
                   "tollgate stops before the ledger commits them, they are settled from their "
                   "intents as interrupted", w->held - w->intents);
    } else {
        s->bytes += n;
        /* seq_cst: a flusher that cleared the flag after we saw it set fsyncs after our write */
        if (w->j->policy == TG_FSYNC_INTERVAL && !atomic_load(&s->dirty))
            atomic_store(&s->dirty, true);
    }
    w->held = w->intents = 0;
    return rc;
}

static int write_held(tg_journal_writer *w)
{
    return w->held ? write_frames(w, w->frames.n) : TG_OK;
}

int tg_journal_writer_flush(tg_journal_writer *w)
{
    int rc = write_held(w);
    if (w->lost_intents) rc = TG_EIO;
    w->lost_intents = false;
    return rc;
}

/* r's frame at the end of b; on error b is as it was. */
static int frame_add(tg_buf *b, const tg_usage_rec *r, const tg_record_strs *s, bool intent,
                     tg_record_marks *m)
{
    size_t at = b->n;
    int rc = tg_buf_reserve(b, TG_JOURNAL_FRAME_HDR + TG_RECORD_MAX_LEN);
    if (rc) return rc;
    b->n += TG_JOURNAL_FRAME_HDR; /* filled in below */
    rc = s ? tg_record_encode_strs(r, s, intent, b, m) : tg_record_encode(r, intent, b, m);
    if (rc) {
        b->n = at;
        return rc;
    }
    uint8_t *f = (uint8_t *)b->p + at;
    size_t len = b->n - at - TG_JOURNAL_FRAME_HDR;
    uint32_t hdr[2] = {htole32((uint32_t)len), htole32(tg_crc32c(0, f + TG_JOURNAL_FRAME_HDR, len))};
    memcpy(f, hdr, sizeof hdr);
    return TG_OK;
}

/* Outcomes under `always` are written (and fsynced) before this returns,
 * with whatever was held; everything else is held. */
static int append(tg_journal_writer *w, const tg_usage_rec *r, const tg_record_strs *s, bool intent,
                  tg_jseg **slot)
{
    tg_buf *b = &w->frames;
    if (!w->held) tg_buf_clear(b); /* all written: a new batch */
    w->last = NULL;
    size_t at = b->n;
    int rc = frame_add(b, r, s, intent, intent ? NULL : &w->marks);
    if (rc) return rc;
    size_t len = b->n - at;
    if (w->held && !seg_takes(w)) {
        /* the segment is full: what it holds goes to it first, alone */
        write_frames(w, at);
        tg_buf_consume(b, at);
    }
    rc = writer_segment(w);
    if (rc) {
        b->n -= len;
        return rc;
    }
    tg_jseg *seg = w->seg;
    bool now = !intent && w->j->policy == TG_FSYNC_ALWAYS;
    if (now && (rc = write_frames(w, b->n))) return rc;
    atomic_fetch_add_explicit(&seg->refs, 1, memory_order_relaxed);
    *slot = seg;
    w->last = (const uint8_t *)b->p + b->n - len + TG_JOURNAL_FRAME_HDR;
    w->nlast = len - TG_JOURNAL_FRAME_HDR;
    if (!now) {
        w->held++;
        w->intents += intent;
        if (b->n >= BATCH_MAX) write_held(w); /* a failure is logged, and remembered for intents */
    }
    return TG_OK;
}

int tg_journal_intent(tg_journal_writer *w, const tg_usage_rec *r, const tg_record_strs *s,
                      tg_jticket *t)
{
    return append(w, r, s, true, &t->intent);
}

int tg_journal_outcome(tg_journal_writer *w, const tg_usage_rec *r, const tg_record_strs *s,
                       tg_jticket *t)
{
    return append(w, r, s, false, &t->outcome);
}

const uint8_t *tg_journal_last_payload(const tg_journal_writer *w, size_t *n, tg_record_marks *m)
{
    *n = w->last ? w->nlast : 0;
    *m = w->marks;
    return w->last;
}

void tg_journal_settle(tg_journal *j, const tg_jticket *t)
{
    (void)j;
    if (t->intent) seg_unref(t->intent);
    if (t->outcome) seg_unref(t->outcome);
}

/* ---- recovery ----
 *
 * One table of every record id seen, open addressing with linear probing.
 * A slot is empty, "done" (the outcome was handed over: a second outcome
 * or a late intent with that id is ignored), or names a pending intent,
 * kept encoded (a few hundred bytes rather than a whole tg_usage_rec) in
 * pend[], in file order, until its outcome arrives. About 40 bytes per
 * record read, plus the pending intents. */

#define SLOT_DONE UINT32_MAX

typedef struct {
    uint8_t id[TG_RECORD_ID_LEN];
    uint32_t v; /* 0: empty; SLOT_DONE; else 1 + index in pend */
} id_slot;

typedef struct {
    uint8_t *p; /* the intent's payload; NULL once its outcome came */
    uint32_t n;
} pending;

typedef struct {
    id_slot *t;
    size_t cap, used; /* cap a power of two */
    pending *pend;
    size_t npend, pcap;
    tg_buf enc;
    int (*fn)(void *ud, const tg_usage_rec *r);
    void *ud;
    tg_journal_stats *st;
    bool stopped; /* fn stopped the scan: its code is not a tear */
} recov;

static id_slot *id_find(recov *x, const uint8_t id[TG_RECORD_ID_LEN])
{
    size_t i = (size_t)tg_hash64(id, TG_RECORD_ID_LEN, 0) & (x->cap - 1);
    while (x->t[i].v && memcmp(x->t[i].id, id, TG_RECORD_ID_LEN)) i = (i + 1) & (x->cap - 1);
    return &x->t[i];
}

/* Room for one more id (load at most 3/4). */
static int id_room(recov *x)
{
    if (4 * (x->used + 1) <= 3 * x->cap) return TG_OK;
    size_t oldcap = x->cap;
    id_slot *old = x->t;
    x->cap = oldcap ? 2 * oldcap : 4096;
    x->t = calloc(x->cap, sizeof *x->t);
    if (!x->t) {
        x->t = old;
        x->cap = oldcap;
        return TG_ENOMEM;
    }
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].v) *id_find(x, old[i].id) = old[i];
    free(old);
    return TG_OK;
}

static int keep_intent(recov *x, id_slot *s, const tg_usage_rec *r)
{
    if (x->npend == x->pcap) {
        size_t cap = x->pcap ? 2 * x->pcap : 1024;
        pending *n = realloc(x->pend, cap * sizeof *n);
        if (!n) return TG_ENOMEM;
        x->pend = n;
        x->pcap = cap;
    }
    tg_buf_clear(&x->enc);
    int rc = tg_record_encode(r, true, &x->enc, NULL);
    if (rc) return rc;
    uint8_t *p = malloc(x->enc.n);
    if (!p) return TG_ENOMEM;
    memcpy(p, x->enc.p, x->enc.n);
    x->pend[x->npend] = (pending){p, (uint32_t)x->enc.n};
    s->v = (uint32_t)++x->npend;
    return TG_OK;
}

static int on_record(void *ud, const tg_usage_rec *r, bool intent)
{
    recov *x = ud;
    int rc = id_room(x);
    if (rc) goto stop;
    id_slot *s = id_find(x, r->id);
    bool fresh = s->v == 0;
    if (fresh) {
        memcpy(s->id, r->id, TG_RECORD_ID_LEN);
        x->used++;
    }
    if (intent) {
        /* a repeated intent, or one after its outcome, changes nothing */
        rc = fresh ? keep_intent(x, s, r) : TG_OK;
        if (rc) goto stop;
        return TG_OK;
    }
    if (s->v == SLOT_DONE) return TG_OK; /* the same outcome twice */
    if (!fresh) {
        pending *p = &x->pend[s->v - 1];
        free(p->p);
        p->p = NULL;
    }
    s->v = SLOT_DONE;
    x->st->outcomes++;
    rc = x->fn(x->ud, r);
    if (!rc) return TG_OK;
stop:
    x->stopped = true;
    return rc;
}

/* Every intent that found no outcome, in file order, as interrupted. */
static int settle_interrupted(recov *x)
{
    for (size_t i = 0; i < x->npend; i++) {
        tg_usage_rec r;
        bool intent;
        if (!x->pend[i].p) continue;
        int rc = tg_record_decode(x->pend[i].p, x->pend[i].n, &r, &intent);
        if (rc) return rc; /* cannot happen: encode made it */
        r.outcome = TG_OUT_INTERRUPTED;
        r.status = 0;
        r.estimated = true;
        r.latency_us = 0;
        x->st->interrupted++;
        rc = x->fn(x->ud, &r);
        if (rc) return rc;
    }
    return TG_OK;
}

static void recov_release(recov *x)
{
    for (size_t i = 0; i < x->npend; i++) free(x->pend[i].p);
    free(x->pend);
    free(x->t);
    tg_buf_release(&x->enc);
}

/* The whole file at path into b. */
static int read_file(const char *path, tg_buf *b, tg_errmsg *err)
{
    int rc = TG_EIO;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    tg_buf_clear(b);
    if (fd < 0 || fstat(fd, &st)) goto out;
    rc = tg_buf_reserve(b, (size_t)st.st_size);
    if (rc) goto out;
    rc = TG_EIO;
    for (;;) {
        if (b->n == b->cap - 1 && tg_buf_reserve(b, 65536)) goto out;
        ssize_t k = read(fd, b->p + b->n, b->cap - 1 - b->n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) goto out;
        if (k == 0) break;
        b->n += (size_t)k;
    }
    rc = TG_OK;
out:
    if (rc) tg_errmsg_set(err, "journal: cannot read %s: %s", path, rc == TG_EIO ? strerror(errno) : "too large");
    if (fd >= 0) close(fd);
    return rc;
}

static int replay(tg_journal *j, recov *x, tg_errmsg *err)
{
    tg_buf b;
    tg_buf_init(&b, SIZE_MAX - 1);
    int rc = TG_OK;
    for (size_t i = 0; i < j->nold; i++) {
        rc = read_file(j->old[i].path, &b, err);
        if (rc) goto out;
        x->st->segments++;
        size_t used;
        rc = tg_journal_scan((const uint8_t *)b.p, b.n, on_record, x, &used);
        if (rc && x->stopped) goto out;
        if (rc) {
            x->st->torn++;
            tg_log(TG_LOG_WARN, "journal: %s ends in a torn or corrupt record at byte %zu of %zu; the rest is ignored",
                   j->old[i].path, used, b.n);
            rc = TG_OK;
        }
    }
out:
    tg_buf_release(&b);
    return rc;
}

int tg_journal_recover(tg_journal *j, int (*fn)(void *ud, const tg_usage_rec *r), void *ud,
                       tg_journal_stats *st, tg_errmsg *err)
{
    recov x = {.fn = fn, .ud = ud, .st = st};
    tg_buf_init(&x.enc, TG_RECORD_MAX_LEN);
    memset(st, 0, sizeof *st);
    int rc = replay(j, &x, err);
    if (!rc) rc = settle_interrupted(&x);
    if (rc == TG_ENOMEM) tg_errmsg_set(err, "journal: out of memory replaying %s", j->dir);
    else if (rc && x.stopped) tg_errmsg_set(err, "journal: replay stopped (%d)", rc);
    j->recovered = rc == TG_OK;
    recov_release(&x);
    return rc;
}

int tg_journal_recovered(tg_journal *j, tg_errmsg *err)
{
    if (!j->recovered) {
        tg_errmsg_set(err, "journal: segments not recovered; not deleting them");
        return TG_EINVAL;
    }
    for (size_t i = 0; i < j->nold; i++)
        if (unlink(j->old[i].path) && errno != ENOENT) {
            tg_errmsg_set(err, "journal: cannot delete %s: %s", j->old[i].path, strerror(errno));
            return TG_EIO;
        }
    free_old(j);
    j->recovered = false;
    if (dir_sync(j)) {
        tg_errmsg_set(err, "journal: fsync %s: %s", j->dir, strerror(errno));
        return TG_EIO;
    }
    return TG_OK;
}
