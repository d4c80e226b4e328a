/* What the journal adds to a request: one intent and one outcome append
 * (and the settle the ledger would do), timed per fsync policy, in two
 * shapes of event-loop turn as the gateway runs them (the turn's intents,
 * the flush their upstream calls wait for, then outcomes, which are held
 * and written with the next turn's flush):
 *
 *   serial  one request per turn (a single busy connection): its intent,
 *           the flush, which carries the previous request's outcome, and
 *           its outcome, so one write(2) per request;
 *   turn32  32 requests per turn (32 busy connections): 32 intents, the
 *           flush, 32 outcomes, so one write(2) per 32 requests.
 *
 * Under `always` an outcome is written and fsynced as it comes, so serial
 * fsyncs twice per request and turn32 33 times per 32 requests (one for
 * the 32 intents: group commit). A worker that goes idle writes its held
 * outcomes before it waits, a second write(2) the serial shape leaves out.
 *
 *     make build/bench/journal_bench
 *     build/bench/journal_bench [requests] [dir]
 *
 * requests defaults to 200000 (a tenth of that for `always`, which waits
 * for the disk once or twice per request); dir (default /tmp) is where a
 * temporary data_dir is made and removed: put it on the disk the journal
 * will live on. One writer thread, as one worker; 64 MiB segments, each
 * deleted as it rotates away since every request is settled at once.
 * Prints ns per request (intent + outcome), records per second and the
 * bytes a record takes on disk. */
#include "meter/journal.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void make_rec(tg_usage_rec *r, uint64_t i)
{
    memset(r, 0, sizeof *r);
    memcpy(r->id, &i, sizeof i);
    snprintf(r->rid, sizeof r->rid, "01JD3F8Q6W4Z%014llu", (unsigned long long)i);
    strcpy(r->key_id, "acme-prod");
    strcpy(r->tags.app, "support-bot");
    strcpy(r->tags.customer, "acme");
    strcpy(r->tags.plan, "pro");
    strcpy(r->tags.feature, "summarize");
    strcpy(r->model, "gpt-4o-mini");
    strcpy(r->offering, "openai/gpt-4o-mini");
    strcpy(r->provider, "openai");
    strcpy(r->rule, "app");
    r->tags.unit_count = 1;
    r->t_start_ms = 1700000000000LL;
    r->latency_us = 350000;
    r->ttft_us = 120000;
    r->status = 200;
    r->stream = true;
    r->tokens = (tg_tokens){1200, 1024, 0, 300, 0};
    r->cost = 360000;
    r->margin = 72000;
    r->fee = 3600;
    r->charge = r->cost + r->margin + r->fee;
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Requests [i, i + k) as one loop turn: their intents, the flush (with
 * the previous turn's outcomes), their outcomes, held for the next turn's
 * flush, and the ledger's settles. Each request's strings are encoded
 * once, as the gateway does (all requests here have the same ones, so
 * the outcomes reuse the last request's). */
static int turn(tg_journal *j, tg_journal_writer *w, tg_usage_rec *r, uint64_t i, unsigned k)
{
    tg_jticket t[32] = {{0}};
    tg_record_strs s;
    int rc = 0;
    for (unsigned x = 0; x < k && !rc; x++) {
        uint64_t id = i + x;
        memcpy(r->id, &id, sizeof id);
        rc = tg_record_strs_of(r, &s);
        if (!rc) rc = tg_journal_intent(w, r, &s, &t[x]);
    }
    if (!rc) rc = tg_journal_writer_flush(w);
    for (unsigned x = 0; x < k && !rc; x++) {
        uint64_t id = i + x;
        memcpy(r->id, &id, sizeof id);
        rc = tg_journal_outcome(w, r, &s, &t[x]);
    }
    for (unsigned x = 0; x < k; x++) tg_journal_settle(j, &t[x]);
    return rc;
}

static int run(const char *base, tg_fsync_policy p, const char *name, uint64_t n, unsigned k)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tg-journal-bench-XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror(dir);
        return 1;
    }
    tg_metering_conf c = {.enabled = true, .data_dir = dir, .fsync = p,
                          .fsync_interval_ms = 1000, .segment_bytes = 64u << 20};
    tg_journal *j;
    tg_errmsg err;
    int rc = tg_journal_open(&c, &j, &err);
    if (rc) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    tg_journal_writer *w = tg_journal_writer_new(j, 0);
    tg_usage_rec r;
    make_rec(&r, 0);
    n -= n % k;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n && !rc; i += k) rc = turn(j, w, &r, i, k);
    if (!rc) rc = tg_journal_writer_flush(w); /* the last turn's outcomes */
    uint64_t dt = now_ns() - t0;
    tg_journal_writer_free(w);
    tg_journal_close(j);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    if (rc) {
        fprintf(stderr, "%s: append failed\n", name);
        return 1;
    }
    tg_buf b;
    tg_buf_init(&b, TG_RECORD_MAX_LEN);
    tg_record_encode(&r, false, &b, NULL);
    printf("%-8s %-7s %9llu requests  %9.0f ns/request  %10.0f records/s  %zu bytes/record\n", name,
           k == 1 ? "serial" : "turn32", (unsigned long long)n, (double)dt / (double)n,
           2e9 * (double)n / (double)dt, b.n + TG_JOURNAL_FRAME_HDR);
    tg_buf_release(&b);
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000;
    const char *base = argc > 2 ? argv[2] : "/tmp";
    if (n < 320) n = 320;
    int rc = 0;
    static const unsigned per_turn[] = {1, 32};
    for (int s = 0; s < 2; s++) {
        rc |= run(base, TG_FSYNC_NEVER, "never", n, per_turn[s]);
        rc |= run(base, TG_FSYNC_INTERVAL, "interval", n, per_turn[s]);
        rc |= run(base, TG_FSYNC_ALWAYS, "always", n / 10, per_turn[s]);
    }
    return rc;
}
