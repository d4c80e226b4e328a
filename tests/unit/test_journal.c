/* The journal (meter/journal.c, meter/codec.c): the record codec and what
 * it refuses, CRC-32C, and the files: recovery of outcomes and interrupted
 * intents, torn tails, rotation and deletion on settle, fsync policies,
 * held records and what a flush reports, group commit, and a large
 * replay. Each test works in its own mkdtemp directory. */
#include "meter/journal.h"
#include "base/err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---- */

/* The process's fsync calls, counted: this definition is the one the
 * journal's objects, linked into this program, call. */
static atomic_int fsyncs;

int fsync(int fd)
{
    atomic_fetch_add(&fsyncs, 1);
    return (int)syscall(SYS_fsync, fd);
}

typedef struct {
    char dir[64];
    char jdir[96];
    tg_metering_conf c;
} tmp;

static void tmp_make(tmp *t, tg_fsync_policy p, uint64_t segment_bytes)
{
    strcpy(t->dir, "/tmp/tg-journal-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->jdir, sizeof t->jdir, "%s/journal", t->dir);
    memset(&t->c, 0, sizeof t->c);
    t->c.enabled = true;
    t->c.data_dir = t->dir;
    t->c.fsync = p;
    t->c.fsync_interval_ms = 5;
    t->c.segment_bytes = segment_bytes;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void tmp_remove(tmp *t) { assert_int_equal(nftw(t->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0); }

/* How many segment files the journal directory holds. */
static int nsegs(tmp *t)
{
    int n = 0;
    DIR *d = opendir(t->jdir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tgj")) n++;
    closedir(d);
    return n;
}

static bool seg_exists(tmp *t, unsigned worker, unsigned seq)
{
    char p[160];
    snprintf(p, sizeof p, "%s/w%u-%u.tgj", t->jdir, worker, seq);
    return access(p, F_OK) == 0;
}

/* A valid record numbered i, priced and tagged from i. */
static void make_rec(tg_usage_rec *r, uint32_t i)
{
    memset(r, 0, sizeof *r);
    r->id[0] = 0x01;
    memcpy(r->id + 12, &i, 4);
    snprintf(r->rid, sizeof r->rid, "req-%u", i);
    snprintf(r->key_id, sizeof r->key_id, "key-%u", i % 7);
    strcpy(r->tags.app, "support-bot");
    /* 83 bytes: with it a frame is as long as in the fixed-width version 1
     * (about 218 bytes), which the segment and file sizes below count in */
    memset(r->tags.workspace, 'w', 83);
    snprintf(r->tags.customer, sizeof r->tags.customer, "cust-%u", i % 13);
    strcpy(r->model, "gpt-4o-mini");
    strcpy(r->offering, "openai/gpt-4o-mini");
    strcpy(r->provider, "openai");
    strcpy(r->rule, "app");
    r->tags.unit_count = 1;
    r->t_start_ms = 1700000000000LL + i;
    r->latency_us = 1000 + i;
    r->status = 200;
    r->outcome = TG_OUT_COMPLETED;
    r->tokens.prompt = 100 + i;
    r->tokens.cached = 10;
    r->tokens.completion = 50;
    r->cost = 1000 + i;
    r->margin = 300;
    r->fee = 20;
    r->charge = r->cost + r->margin + r->fee;
}

static uint32_t rec_num(const tg_usage_rec *r)
{
    uint32_t i;
    memcpy(&i, r->id + 12, 4);
    return i;
}

/* What recovery handed over: a few records kept whole, every one counted. */
#define KEEP 64
typedef struct {
    tg_usage_rec kept[KEEP];
    size_t n, ninterrupted;
    uint8_t *seen; /* per record number, how often */
    size_t nseen;
} got;

static int collect(void *ud, const tg_usage_rec *r)
{
    got *g = ud;
    tg_record_check(r);
    if (g->n < KEEP) g->kept[g->n] = *r;
    g->n++;
    if (r->outcome == TG_OUT_INTERRUPTED) g->ninterrupted++;
    uint32_t i = rec_num(r);
    if (g->seen && i < g->nseen) g->seen[i]++;
    return 0;
}

static tg_journal *jopen(tmp *t)
{
    tg_journal *j = NULL;
    tg_errmsg err;
    int rc = tg_journal_open(&t->c, &j, &err);
    if (rc) fail_msg("open: %s", err.msg);
    return j;
}

/* Opens, recovers into g, marks recovered, closes. */
static tg_journal_stats recover_all(tmp *t, got *g)
{
    tg_journal_stats st;
    tg_errmsg err;
    tg_journal *j = jopen(t);
    int rc = tg_journal_recover(j, collect, g, &st, &err);
    if (rc) fail_msg("recover: %s", err.msg);
    assert_int_equal(tg_journal_recovered(j, &err), 0);
    tg_journal_close(j);
    return st;
}

/* A request's intent as the gateway appends it: then the flush that its
 * upstream call waits for. */
static int intent_turn(tg_journal_writer *w, const tg_usage_rec *r, tg_jticket *t)
{
    int rc = tg_journal_intent(w, r, NULL, t);
    return rc ? rc : tg_journal_writer_flush(w);
}

/* ---- codec ---- */

static void test_crc32c(void **state)
{
    (void)state;
    assert_int_equal(tg_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(tg_crc32c(0, "", 0), 0);
    assert_int_equal(tg_crc32c(tg_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    uint8_t zeros[32] = {0};
    assert_int_equal(tg_crc32c(0, zeros, 32), 0x8A9136AAu); /* RFC 3720 B.4 */
    uint8_t inc[32];
    for (int i = 0; i < 32; i++) inc[i] = (uint8_t)i;
    assert_int_equal(tg_crc32c(0, inc, 32), 0x46DD794Eu);
}

/* tg_crc32c (the CPU's CRC instruction where there is one) against the
 * tables, on every alignment, lengths around the 8-byte steps, and
 * continuations split anywhere. */
static void test_crc32c_paths(void **state)
{
    (void)state;
    assert_int_equal(tg_crc32c_table(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(tg_crc32c_table(tg_crc32c_table(0, "12345", 5), "6789", 4), 0xE3069283u);
    uint8_t data[4096 + 8];
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < sizeof data; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        data[i] = (uint8_t)x;
    }
    for (int k = 0; k < 20000; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t off = x % 8, n = k < 600 ? (size_t)k % 300 : (x >> 8) % 4096;
        size_t cut = n ? (x >> 24) % n : 0;
        uint32_t seed = k % 3 ? (uint32_t)(x >> 32) : 0;
        const uint8_t *p = data + off;
        uint32_t want = tg_crc32c_table(seed, p, n);
        assert_int_equal(tg_crc32c(seed, p, n), want);
        assert_int_equal(tg_crc32c(tg_crc32c(seed, p, cut), p + cut, n - cut), want);
        assert_int_equal(tg_crc32c_table(tg_crc32c_table(seed, p, cut), p + cut, n - cut), want);
    }
}

static void full_rec(tg_usage_rec *r)
{
    make_rec(r, 77);
    char *s[] = {r->rid,       r->key_id,         r->tags.app,     r->tags.customer, r->tags.plan,
                 r->tags.workspace, r->tags.user, r->tags.feature, r->tags.workflow, r->tags.run,
                 r->tags.unit, r->model,          r->offering,     r->provider,      r->rule};
    for (size_t k = 0; k < sizeof s / sizeof s[0]; k++) {
        memset(s[k], 'a' + (int)k, TG_TAG_MAX);
        s[k][TG_TAG_MAX] = '\0';
        s[k][3] = (char)0xC3; /* any byte but NUL */
    }
    /* every integer as wide as its varint gets (10 bytes; the status 5) */
    r->t_start_ms = INT64_MAX;
    r->latency_us = INT64_MIN;
    r->ttft_us = (int64_t)1 << 62;
    r->tags.unit_count = -((int64_t)1 << 62) - 1;
    r->status = -1;
    r->endpoint = TG_EPK_MESSAGES;
    r->route = TG_RT_ESCALATED;
    r->outcome = TG_OUT_PARTIAL;
    r->stream = true;
    r->estimated = true;
    int64_t big = (int64_t)1 << 62;
    r->tokens = (tg_tokens){INT64_MAX, big, INT64_MAX - big, INT64_MAX, big};
    r->cost = INT64_MIN;
    r->margin = INT64_MAX;
    r->fee = -big - 1;
    r->charge = -big - 2;
    r->credits = INT64_MAX;
    r->attempts = INT32_MAX;
    r->attempt = true;
    r->asked_cost = INT64_MAX;
}

/* The view of p[0..n) by the marks encode reported shows r's fields. */
static void check_view(const uint8_t *p, size_t n, const tg_record_marks *m, const tg_usage_rec *r,
                       bool intent)
{
    tg_record_view v;
    assert_int_equal(tg_record_view_at(p, n, m, &v), 0);
    assert_memory_equal(v.id, r->id, TG_RECORD_ID_LEN);
    assert_int_equal(v.t_start_ms, r->t_start_ms);
    assert_int_equal(v.credits, r->credits);
    assert_int_equal(v.charge, r->charge);
    assert_true(v.intent == intent);
    assert_int_equal(v.app.n, strlen(r->tags.app));
    assert_memory_equal(v.app.p, r->tags.app, v.app.n);
    assert_int_equal(v.customer.n, strlen(r->tags.customer));
    assert_memory_equal(v.customer.p, r->tags.customer, v.customer.n);
    assert_int_equal(v.plan.n, strlen(r->tags.plan));
    assert_memory_equal(v.plan.p, r->tags.plan, v.plan.n);
}

static void roundtrip(const tg_usage_rec *r, bool intent, size_t want_len)
{
    tg_buf b;
    tg_buf_init(&b, 1 << 16);
    tg_buf_add_lit(&b, "junk before"); /* marks count from where the record starts */
    size_t at = b.n;
    tg_record_marks m;
    assert_int_equal(tg_record_encode(r, intent, &b, &m), 0);
    assert_int_equal(b.n - at, want_len);
    const uint8_t *p = (const uint8_t *)b.p + at;
    size_t n = b.n - at;
    tg_usage_rec back;
    bool bi = !intent;
    assert_int_equal(tg_record_decode(p, n, &back, &bi), 0);
    assert_true(bi == intent);
    assert_memory_equal(&back, r, sizeof back);
    check_view(p, n, &m, r, intent);
    tg_record_view v;
    /* the view never reads outside the bytes: a marked string past them,
     * or a size, version or flag no record has, is refused */
    tg_record_marks bad = m;
    bad.plan = (uint16_t)(n - 1);
    if (p[n - 1]) assert_int_equal(tg_record_view_at(p, n, &bad, &v), TG_EINVAL);
    bad.plan = (uint16_t)n;
    assert_int_equal(tg_record_view_at(p, n, &bad, &v), TG_EINVAL);
    bad = m;
    bad.app = UINT16_MAX;
    assert_int_equal(tg_record_view_at(p, n, &bad, &v), TG_EINVAL);
    assert_int_equal(tg_record_view_at(p, TG_RECORD_MIN_LEN - 1, &m, &v), TG_EINVAL);
    assert_int_equal(tg_record_view_at(p, TG_RECORD_MAX_LEN + 1, &m, &v), TG_EINVAL);
    uint8_t *w = (uint8_t *)b.p + at;
    w[1] ^= 0x40;
    assert_int_equal(tg_record_view_at(p, n, &m, &v), TG_EINVAL);
    w[1] ^= 0x40;
    w[0]++;
    assert_int_equal(tg_record_view_at(p, n, &m, &v), TG_EINVAL);
    w[0]--;
    /* a route out of range: the view trusts encode's bytes and takes it;
     * decode refuses it */
    w[2 + TG_RECORD_ID_LEN + 1] = TG_RT_COUNT_;
    assert_int_equal(tg_record_view_at(p, n, &m, &v), TG_OK);
    assert_int_equal(tg_record_decode(p, n, &back, &bi), TG_EINVAL);
    tg_buf_release(&b);
}

static void test_roundtrip(void **state)
{
    (void)state;
    tg_usage_rec r;
    full_rec(&r);
    /* a byte short of the bound: cached and cache_write cannot both be
     * 2^62 or more (they add up to at most prompt), and one of them is
     * 9 bytes long */
    roundtrip(&r, true, TG_RECORD_MAX_LEN - 1);
    roundtrip(&r, false, TG_RECORD_MAX_LEN - 1);
    memset(&r, 0, sizeof r);
    /* TG_RECORD_MIN_LEN is version 2's shortest; version 3 adds credits,
     * version 4 attempts and asked_cost */
    roundtrip(&r, false, TG_RECORD_MIN_LEN + 3);
    make_rec(&r, 3);
    /* past the minimum: the status 200 takes 2 bytes, t_start_ms 6, the
     * latency, prompt, cost, charge and margin 2 each; and the strings */
    roundtrip(&r, true, TG_RECORD_MIN_LEN + 3 + 1 + 5 + 5 + 83 +
                            strlen("req-3key-3support-botcust-3gpt-4o-miniopenai/gpt-4o-miniopenaiapp"));
    /* an attempt record: the flag, and its position and asked cost in the
     * tail (two bytes for 1000) */
    r.attempt = true;
    r.attempts = 1;
    r.asked_cost = 1000;
    roundtrip(&r, false, TG_RECORD_MIN_LEN + 3 + 1 + 5 + 5 + 83 + 1 +
                             strlen("req-3key-3support-botcust-3gpt-4o-miniopenai/gpt-4o-miniopenaiapp"));
}

/* Encodes make_rec(1), applies edit, expects decode to refuse. */
static void refuse(void (*edit)(tg_buf *b))
{
    tg_usage_rec r;
    bool intent;
    tg_buf b;
    tg_buf_init(&b, 1 << 16);
    make_rec(&r, 1);
    assert_int_equal(tg_record_encode(&r, false, &b, NULL), 0);
    assert_int_equal(tg_record_decode((const uint8_t *)b.p, b.n, &r, &intent), 0);
    edit(&b);
    assert_int_equal(tg_record_decode((const uint8_t *)b.p, b.n, &r, &intent), TG_EINVAL);
    tg_buf_release(&b);
}

#define OFF_FLAGS 1
#define OFF_ENUMS 18
#define OFF_STATUS 21 /* then the integers, each a varint */

/* The offset of the varint after the status and `field` integers (field
 * NINT: the first string's length byte). */
static size_t int_at(const tg_buf *b, int field)
{
    size_t at = OFF_STATUS;
    for (int i = 0; i <= field; i++)
        while ((uint8_t)b->p[at++] & 0x80) {}
    return at;
}

/* Integer `field` (int_fields' order in codec.c) of the encoding set to
 * v, the bytes after it moved to fit. */
static void put_int(tg_buf *b, int field, int64_t v)
{
    size_t at = int_at(b, field), old = int_at(b, field + 1) - at;
    uint8_t enc[10];
    size_t n = 0;
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    for (; z >= 0x80; z >>= 7) enc[n++] = (uint8_t)(z | 0x80);
    enc[n++] = (uint8_t)z;
    assert_int_equal(tg_buf_reserve(b, n), 0);
    memmove(b->p + at + n, b->p + at + old, b->n - at - old);
    memcpy(b->p + at, enc, n);
    b->n = b->n - old + n;
}

/* The `old` bytes at `at` replaced by raw[0..n). */
static void put_raw(tg_buf *b, size_t at, size_t old, const char *raw, size_t n)
{
    assert_int_equal(tg_buf_reserve(b, n), 0);
    memmove(b->p + at + n, b->p + at + old, b->n - at - old);
    memcpy(b->p + at, raw, n);
    b->n = b->n - old + n;
}

#define NINT 14
#define TAIL 2 /* version 4's attempts and asked_cost, after the integers */
#define STRS(b) int_at(b, NINT + TAIL) /* past the status, the integers and the tail */
static void e_version(tg_buf *b) { b->p[0] = TG_RECORD_VERSION + 1; }
static void e_flags(tg_buf *b) { b->p[OFF_FLAGS] |= 16; } /* 8 is attempt */
static void e_padded(tg_buf *b) { put_raw(b, int_at(b, 2), 1, "\x80\x00", 2); } /* ttft 0 as 2 bytes */
static void e_varint_long(tg_buf *b) /* ttft as 11 bytes */
{
    put_raw(b, int_at(b, 2), 1, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x81\x01", 11);
}
static void e_varint_wide(tg_buf *b) { put_raw(b, int_at(b, 2), 1, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10); }
static void e_status_wide(tg_buf *b) { put_raw(b, OFF_STATUS, 2, "\x80\x80\x80\x80\x10", 5); } /* 2^32 */
/* the record ends inside a varint (long enough to pass the length check) */
static void e_varint_cut(tg_buf *b)
{
    for (int i = 10; i < 13; i++) put_int(b, i, INT64_MAX);
    b->n = STRS(b) - 1;
    assert_true(b->n >= TG_RECORD_MIN_LEN);
}
static void e_trailing(tg_buf *b) { tg_buf_add_char(b, 'x'); }
static void e_short(tg_buf *b) { b->n--; }
static void e_endpoint(tg_buf *b) { b->p[OFF_ENUMS] = TG_EPK_COUNT_; }
static void e_route(tg_buf *b) { b->p[OFF_ENUMS + 1] = TG_RT_COUNT_; }
static void e_outcome(tg_buf *b) { b->p[OFF_ENUMS + 2] = (char)200; }
static void e_neg_tokens(tg_buf *b) { put_int(b, 7, -1); } /* reasoning */
static void e_cached(tg_buf *b) { put_int(b, 4, 1000000); }
static void e_cache_write(tg_buf *b) { put_int(b, 5, INT64_MAX); }
static void e_reasoning(tg_buf *b) { put_int(b, 7, 51); }
static void e_charge(tg_buf *b) { put_int(b, 9, 1); }
static void e_credits(tg_buf *b) { put_int(b, 13, -1); }
/* version 2 with a version 4 payload: three varints too many for it;
 * version 3: two */
static void e_v2_credits(tg_buf *b) { b->p[0] = 2; }
static void e_v3_tail(tg_buf *b) { b->p[0] = 3; }
/* version 3 had no attempt flag (the tail removed, so only the flag is wrong) */
static void e_v3_attempt(tg_buf *b)
{
    put_raw(b, int_at(b, NINT), 2, "", 0);
    b->p[0] = 3;
    b->p[OFF_FLAGS] |= 8;
}
/* attempts past INT32_MAX, asked_cost past INT64_MAX: plain varints that
 * no valid record has */
static void e_attempts_wide(tg_buf *b) { put_raw(b, int_at(b, NINT), 1, "\x80\x80\x80\x80\x08", 5); }
static void e_asked_wide(tg_buf *b)
{
    put_raw(b, int_at(b, NINT + 1), 1, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 10);
}
static void e_nul(tg_buf *b) { b->p[STRS(b) + 2] = '\0'; }         /* in "req-1" */
static void e_strlen_over(tg_buf *b) { b->p[STRS(b)] = 100; } /* past the end */

/* The last string ("app") made TG_TAG_MAX + 1 bytes long. */
static void e_strlen_cap(tg_buf *b)
{
    b->n -= 4;
    tg_buf_add_char(b, (char)(TG_TAG_MAX + 1));
    for (int i = 0; i <= TG_TAG_MAX; i++) tg_buf_add_char(b, 'r');
}

/* Every string length from 0 to TG_TAG_MAX in every field, with bytes
 * that are not NUL after each string's end (the encoder copies words, and
 * must stop at the first NUL whatever follows it), into a buffer that
 * holds exactly TG_RECORD_MAX_LEN: the copy never writes past the bound. */
static void test_string_lengths(void **state)
{
    (void)state;
    static const uint8_t junk[] = {0xff, 0x80, 0x01, 0x7f};
    tg_usage_rec r, back;
    tg_buf b;
    tg_buf_init(&b, TG_RECORD_MAX_LEN);
    for (size_t len = 0; len <= TG_TAG_MAX; len++) {
        full_rec(&r);
        char *s[] = {r.rid,       r.key_id,         r.tags.app,     r.tags.customer, r.tags.plan,
                     r.tags.workspace, r.tags.user, r.tags.feature, r.tags.workflow, r.tags.run,
                     r.tags.unit, r.model,          r.offering,     r.provider,      r.rule};
        size_t want = 0;
        for (size_t k = 0; k < sizeof s / sizeof s[0]; k++) {
            size_t l = (len + 17 * k) % (TG_TAG_MAX + 1); /* each field a different length */
            memset(s[k], junk[(len + k) % 4], TG_TAG_MAX + 1);
            memset(s[k], 'a' + (int)k, l);
            s[k][l] = '\0';
            want += l;
        }
        tg_buf_clear(&b);
        assert_int_equal(tg_record_encode(&r, false, &b, NULL), TG_OK);
        assert_int_equal(b.n, TG_RECORD_MAX_LEN - 1 - 15 * TG_TAG_MAX + want);
        bool intent = true;
        assert_int_equal(tg_record_decode((const uint8_t *)b.p, b.n, &back, &intent), TG_OK);
        assert_false(intent);
        for (size_t k = 0; k < sizeof s / sizeof s[0]; k++) {
            const char *t = (const char *)&back + ((const char *)s[k] - (const char *)&r);
            assert_string_equal(t, s[k]);
        }
    }
    tg_buf_release(&b);
}

/* The strings added one at a time, as the gateway builds them, encode to
 * the same bytes and marks as the same strings in the record's fields:
 * each cut at its first NUL and at TG_TAG_MAX bytes, the rule set again
 * over an earlier one; and a set without all its fields is refused. */
static void test_encode_strs(void **state)
{
    (void)state;
    tg_usage_rec r;
    tg_record_strs rs;
    tg_buf a, b;
    tg_buf_init(&a, TG_RECORD_MAX_LEN);
    tg_buf_init(&b, TG_RECORD_MAX_LEN);
    char src[2 * TG_TAG_MAX];
    for (size_t len = 0; len <= TG_TAG_MAX + 20; len++) {
        full_rec(&r);
        char *f[] = {r.rid,       r.key_id,         r.tags.app,     r.tags.customer, r.tags.plan,
                     r.tags.workspace, r.tags.user, r.tags.feature, r.tags.workflow, r.tags.run,
                     r.tags.unit, r.model,          r.offering,     r.provider,      r.rule};
        _Static_assert(sizeof f / sizeof f[0] == TG_RECORD_NSTR, "every string field");
        tg_record_strs_clear(&rs);
        for (size_t k = 0; k < TG_RECORD_NSTR; k++) {
            /* a source of n bytes, up to TG_TAG_MAX + 20, with a NUL in
             * one in four: what the field keeps is cut at both */
            size_t n = (len + 13 * k) % (TG_TAG_MAX + 21), keep = n > TG_TAG_MAX ? TG_TAG_MAX : n;
            memset(src, 'A' + (int)k, n);
            if (n > 2 && (len + k) % 4 == 0) {
                src[n / 2] = '\0';
                if (keep > n / 2) keep = n / 2;
            }
            memset(f[k], 'z', TG_TAG_MAX + 1); /* junk after the NUL */
            memcpy(f[k], src, keep);
            f[k][keep] = '\0';
            if (k == TG_RECORD_NSTR - 1) {
                /* a rule set first, then replaced, as pricing does */
                tg_record_strs_add(&rs, "override@9999", 13);
                tg_record_strs_rule(&rs, src, n);
                tg_record_strs_rule(&rs, src, n);
            } else {
                tg_record_strs_add(&rs, src, n);
            }
        }
        bool intent = len & 1;
        tg_record_marks ma, mb;
        tg_buf_clear(&a);
        tg_buf_clear(&b);
        assert_int_equal(tg_record_encode(&r, intent, &a, &ma), TG_OK);
        /* encode_strs reads none of r's strings */
        for (size_t k = 0; k < TG_RECORD_NSTR; k++) memset(f[k], 0x80, TG_TAG_MAX + 1);
        assert_int_equal(tg_record_encode_strs(&r, &rs, intent, &b, &mb), TG_OK);
        assert_int_equal(a.n, b.n);
        assert_memory_equal(a.p, b.p, a.n);
        assert_memory_equal(&ma, &mb, sizeof ma);
    }
    /* fourteen fields are not a record, and out is left as it was */
    tg_record_strs_clear(&rs);
    for (int k = 0; k < TG_RECORD_NSTR - 1; k++) tg_record_strs_add(&rs, "x", 1);
    full_rec(&r);
    tg_buf_clear(&b);
    assert_int_equal(tg_record_encode_strs(&r, &rs, false, &b, NULL), TG_EINVAL);
    assert_int_equal(b.n, 0);
    tg_buf_release(&a);
    tg_buf_release(&b);
}

/* A version 2 payload (a store or journal written before credits) is
 * the version 4 one without its last integer and the tail: it decodes,
 * credits, attempts and asked_cost 0. */
static void test_version2(void **state)
{
    (void)state;
    tg_usage_rec r, back;
    bool intent;
    tg_buf b;
    tg_buf_init(&b, 1 << 16);
    make_rec(&r, 5);
    assert_int_equal(tg_record_encode(&r, false, &b, NULL), 0);
    size_t at = int_at(&b, 13);
    assert_memory_equal(b.p + at, "\0\0\0", 3); /* credits, attempts, asked_cost 0: a byte each */
    put_raw(&b, at, 3, "", 0);
    b.p[0] = 2;
    r.credits = 77;
    assert_int_equal(tg_record_decode((const uint8_t *)b.p, b.n, &back, &intent), TG_OK);
    assert_int_equal(back.credits, 0);
    r.credits = 0;
    r.asked_cost = r.cost; /* served as asked, before routing */
    assert_memory_equal(&back, &r, sizeof r);
    tg_buf_release(&b);
}

/* A version 3 payload (written before routing) is the version 4 one
 * without the tail and the attempt flag: it decodes with attempts 0,
 * asked_cost its cost (served as asked) and attempt false, its credits as
 * they were; and it reads
 * in place by the marks of the same record encoded now less the tail. */
static void test_version3(void **state)
{
    (void)state;
    tg_usage_rec r, back;
    bool intent;
    tg_buf b;
    tg_buf_init(&b, 1 << 16);
    make_rec(&r, 6);
    r.credits = 123456789;
    r.attempt = true;
    r.attempts = 2;
    r.asked_cost = 777; /* two bytes */
    tg_record_marks m;
    assert_int_equal(tg_record_encode(&r, true, &b, &m), 0);
    assert_int_equal((uint8_t)b.p[OFF_FLAGS], 1 | 8); /* intent, attempt */
    size_t at = int_at(&b, NINT);
    assert_memory_equal(b.p + at, "\x02\x89\x06", 3);
    put_raw(&b, at, 3, "", 0);
    b.p[0] = 3;
    assert_int_equal(tg_record_decode((const uint8_t *)b.p, b.n, &back, &intent), TG_EINVAL);
    b.p[OFF_FLAGS] = 1;
    assert_int_equal(tg_record_decode((const uint8_t *)b.p, b.n, &back, &intent), TG_OK);
    assert_true(intent);
    r.attempt = false;
    r.attempts = 0;
    r.asked_cost = r.cost;
    assert_memory_equal(&back, &r, sizeof r);
    m.app -= 3;
    m.customer -= 3;
    m.plan -= 3;
    check_view((const uint8_t *)b.p, b.n, &m, &r, true);
    tg_buf_release(&b);
}

static void test_decode_refuses(void **state)
{
    (void)state;
    void (*edits[])(tg_buf *) = {e_version,  e_flags,      e_trailing, e_short,       e_endpoint,
                                 e_route,    e_outcome,    e_neg_tokens, e_cached,    e_cache_write,
                                 e_reasoning, e_charge, e_credits, e_v2_credits, e_v3_tail, e_v3_attempt,
                                 e_attempts_wide, e_asked_wide, e_nul,      e_strlen_over, e_strlen_cap,
                                 e_padded,   e_varint_long, e_varint_wide, e_status_wide, e_varint_cut};
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) refuse(edits[i]);

    /* every truncation */
    tg_usage_rec r;
    bool intent;
    tg_buf b;
    tg_buf_init(&b, 1 << 16);
    make_rec(&r, 9);
    assert_int_equal(tg_record_encode(&r, true, &b, NULL), 0);
    for (size_t n = 0; n < b.n; n++)
        assert_int_equal(tg_record_decode((const uint8_t *)b.p, n, &r, &intent), TG_EINVAL);

    /* encode refuses what decode would */
    size_t n0 = b.n;
    make_rec(&r, 9);
    r.charge++;
    assert_int_equal(tg_record_encode(&r, true, &b, NULL), TG_EINVAL);
    make_rec(&r, 9);
    memset(r.model, 'm', sizeof r.model); /* no NUL within TG_TAG_MAX + 1 */
    assert_int_equal(tg_record_encode(&r, true, &b, NULL), TG_EINVAL);
    make_rec(&r, 9);
    r.outcome = TG_OUT_COUNT_;
    assert_int_equal(tg_record_encode(&r, true, &b, NULL), TG_EINVAL);
    assert_int_equal(b.n, n0);
    tg_buf_release(&b);
}

static int count_frames(void *ud, const tg_usage_rec *r, bool intent)
{
    (void)r, (void)intent;
    (*(int *)ud)++;
    return 0;
}

static void test_scan(void **state)
{
    (void)state;
    tg_buf b;
    tg_buf_init(&b, 1 << 20);
    size_t ends[3];
    for (uint32_t i = 0; i < 3; i++) {
        tg_usage_rec r;
        make_rec(&r, i);
        size_t at = b.n;
        tg_buf_append(&b, "\0\0\0\0\0\0\0\0", 8);
        assert_int_equal(tg_record_encode(&r, i & 1, &b, NULL), 0);
        uint32_t len = (uint32_t)(b.n - at - 8), crc = tg_crc32c(0, b.p + at + 8, len);
        memcpy(b.p + at, &len, 4);
        memcpy(b.p + at + 4, &crc, 4);
        ends[i] = b.n;
    }
    int n = 0;
    size_t used;
    assert_int_equal(tg_journal_scan((const uint8_t *)b.p, b.n, count_frames, &n, &used), 0);
    assert_int_equal(n, 3);
    assert_int_equal(used, b.n);
    n = 0;
    assert_int_equal(tg_journal_scan((const uint8_t *)b.p, b.n - 1, count_frames, &n, &used), TG_EINVAL);
    assert_int_equal(n, 2);
    assert_int_equal(used, ends[1]);
    b.p[ends[0] + 20] ^= 1; /* a bit flip in the second payload */
    n = 0;
    assert_int_equal(tg_journal_scan((const uint8_t *)b.p, b.n, count_frames, &n, &used), TG_EINVAL);
    assert_int_equal(n, 1);
    assert_int_equal(used, ends[0]);
    tg_buf_release(&b);
}

/* ---- files ---- */

static void test_recover_interrupted(void **state)
{
    (void)state;
    tmp t;
    tmp_make(&t, TG_FSYNC_NEVER, 64 << 20);
    tg_journal *j = jopen(&t);
    tg_journal_writer *w = tg_journal_writer_new(j, 3);
    for (uint32_t i = 0; i < 10; i++) {
        tg_usage_rec r;
        tg_jticket tk = {0};
        make_rec(&r, i);
        r.tokens.completion = 0; /* an intent knows only its input */
        assert_int_equal(intent_turn(w, &r, &tk), 0);
        assert_non_null(tk.intent);
        if (i % 2) continue;
        make_rec(&r, i);
        r.cost += 500; /* the outcome's price replaces the estimate */
        r.charge += 500;
        assert_int_equal(tg_journal_outcome(w, &r, NULL, &tk), 0);
    }
    tg_journal_writer_free(w);
    tg_journal_close(j); /* nothing settled: the segment stays */
    assert_true(seg_exists(&t, 3, 1));

    got *g = calloc(1, sizeof *g);
    tg_journal_stats st;
    tg_errmsg err;
    j = jopen(&t);
    tg_journal_writer *w2 = tg_journal_writer_new(j, 0); /* a new process's writer */
    assert_int_equal(tg_journal_recovered(j, &err), TG_EINVAL); /* not before recover */
    assert_int_equal(tg_journal_recover(j, collect, g, &st, &err), 0);
    assert_int_equal(st.segments, 1);
    assert_int_equal(st.outcomes, 5);
    assert_int_equal(st.interrupted, 5);
    assert_int_equal(st.torn, 0);
    assert_int_equal(g->n, 10);
    for (uint32_t k = 0; k < 5; k++) { /* outcomes first, in file order */
        tg_usage_rec *r = &g->kept[k];
        assert_int_equal(rec_num(r), 2 * k);
        assert_int_equal(r->outcome, TG_OUT_COMPLETED);
        assert_int_equal(r->cost, 1000 + 2 * k + 500);
        assert_int_equal(r->tokens.completion, 50);
    }
    for (uint32_t k = 0; k < 5; k++) { /* then the interrupted intents */
        tg_usage_rec *r = &g->kept[5 + k];
        uint32_t i = 2 * k + 1;
        assert_int_equal(rec_num(r), i);
        assert_int_equal(r->outcome, TG_OUT_INTERRUPTED);
        assert_int_equal(r->status, 0);
        assert_true(r->estimated);
        assert_int_equal(r->latency_us, 0);
        assert_int_equal(r->cost, 1000 + i); /* priced as the intent was */
        assert_int_equal(r->charge, 1000 + i + 320);
        assert_int_equal(r->tokens.prompt, 100 + i);
        assert_int_equal(r->tokens.completion, 0);
        assert_string_equal(r->tags.app, "support-bot");
    }
    tg_usage_rec r;
    tg_jticket tk = {0};
    make_rec(&r, 99);
    assert_int_equal(tg_journal_intent(w2, &r, NULL, &tk), 0); /* a segment after the old ones */
    assert_int_equal(tg_journal_recovered(j, &err), 0);
    assert_false(seg_exists(&t, 3, 1));
    assert_true(seg_exists(&t, 0, 2));
    tg_journal_settle(j, &tk);
    tg_journal_writer_free(w2);
    assert_int_equal(nsegs(&t), 0);
    tg_journal_close(j);

    memset(g, 0, sizeof *g);
    st = recover_all(&t, g); /* nothing left */
    assert_int_equal(st.segments, 0);
    assert_int_equal(g->n, 0);
    free(g);
    tmp_remove(&t);
}

/* Writes n intent+outcome pairs with worker 0, settling none. */
static void write_pairs(tmp *t, uint32_t n)
{
    tg_journal *j = jopen(t);
    tg_journal_writer *w = tg_journal_writer_new(j, 0);
    for (uint32_t i = 0; i < n; i++) {
        tg_usage_rec r;
        tg_jticket tk = {0};
        make_rec(&r, i);
        assert_int_equal(intent_turn(w, &r, &tk), 0);
        assert_int_equal(tg_journal_outcome(w, &r, NULL, &tk), 0);
    }
    tg_journal_writer_free(w);
    tg_journal_close(j);
}

static void test_torn_tail(void **state)
{
    (void)state;
    tmp t;
    char path[160];
    tmp_make(&t, TG_FSYNC_NEVER, 64 << 20);
    snprintf(path, sizeof path, "%s/w0-1.tgj", t.jdir);

    /* cut mid-frame: the last pair's outcome is torn, its intent is interrupted */
    write_pairs(&t, 20);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size - 10), 0);
    got *g = calloc(1, sizeof *g);
    tg_journal_stats st = recover_all(&t, g);
    assert_int_equal(st.torn, 1);
    assert_int_equal(st.outcomes, 19);
    assert_int_equal(st.interrupted, 1);
    assert_int_equal(rec_num(&g->kept[19]), 19);

    /* a flipped byte in the 6th frame (record 2's outcome): nothing after it */
    write_pairs(&t, 20);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    off_t at = 0;
    for (int k = 0; k < 5; k++) { /* walk the frame headers */
        uint32_t len;
        assert_int_equal(pread(fd, &len, 4, at), 4);
        at += TG_JOURNAL_FRAME_HDR + len;
    }
    char c;
    at += TG_JOURNAL_FRAME_HDR + 100;
    assert_int_equal(pread(fd, &c, 1, at), 1);
    c ^= 0x40;
    assert_int_equal(pwrite(fd, &c, 1, at), 1);
    close(fd);
    memset(g, 0, sizeof *g);
    st = recover_all(&t, g);
    assert_int_equal(st.torn, 1);
    assert_int_equal(st.outcomes, 2);
    assert_int_equal(st.interrupted, 1); /* record 2's intent was intact, its outcome lost */
    assert_int_equal(g->n, 3);

    /* a file of garbage and an empty file: no crash, no records */
    write_pairs(&t, 1);
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "\xff\xff\xff\xffgarbage", 11), 11);
    close(fd);
    snprintf(path, sizeof path, "%s/w1-7.tgj", t.jdir);
    fd = open(path, O_WRONLY | O_CREAT, 0600);
    close(fd);
    memset(g, 0, sizeof *g);
    st = recover_all(&t, g);
    assert_int_equal(st.segments, 2);
    assert_int_equal(st.torn, 1);
    assert_int_equal(g->n, 0);
    assert_int_equal(nsegs(&t), 0);
    free(g);
    tmp_remove(&t);
}

static void test_rotation_and_settle(void **state)
{
    (void)state;
    tmp t;
    tmp_make(&t, TG_FSYNC_NEVER, 1000); /* about four frames a segment */
    tg_journal *j = jopen(&t);
    tg_journal_writer *w = tg_journal_writer_new(j, 0);
    enum { N = 40 };
    tg_jticket tk[N];
    memset(tk, 0, sizeof tk);
    for (uint32_t i = 0; i < N; i++) {
        tg_usage_rec r;
        make_rec(&r, i);
        assert_int_equal(intent_turn(w, &r, &tk[i]), 0);
        assert_int_equal(tg_journal_outcome(w, &r, NULL, &tk[i]), 0);
    }
    int before = nsegs(&t);
    assert_true(before >= 15);
    struct stat sb;
    char path[160];
    snprintf(path, sizeof path, "%s/w0-1.tgj", t.jdir);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size <= 1000);

    /* all settled but request 0, which is in the first segment */
    assert_ptr_equal(tk[0].intent, tk[0].outcome);
    for (int i = N - 1; i > 0; i--) tg_journal_settle(j, &tk[i]);
    assert_int_equal(nsegs(&t), 2); /* the first, and the one still open */
    assert_true(seg_exists(&t, 0, 1));
    tg_journal_settle(j, &tk[0]);
    assert_int_equal(nsegs(&t), 1);
    assert_false(seg_exists(&t, 0, 1));
    tg_journal_writer_free(w);
    assert_int_equal(nsegs(&t), 0);
    tg_journal_close(j);
    tmp_remove(&t);
}

/* An outcome written segments after its intent, and an outcome written twice. */
static void test_pairs_across_segments(void **state)
{
    (void)state;
    tmp t;
    tmp_make(&t, TG_FSYNC_NEVER, 800);
    tg_journal *j = jopen(&t);
    tg_journal_writer *w = tg_journal_writer_new(j, 0);
    tg_usage_rec a, r;
    tg_jticket tk = {0};
    make_rec(&a, 1000);
    assert_int_equal(intent_turn(w, &a, &tk), 0);
    for (uint32_t i = 0; i < 20; i++) {
        make_rec(&r, i);
        assert_int_equal(intent_turn(w, &r, &tk), 0);
        assert_int_equal(tg_journal_outcome(w, &r, NULL, &tk), 0);
    }
    assert_int_equal(tg_journal_outcome(w, &r, NULL, &tk), 0); /* record 19 again */
    a.latency_us = 777;
    assert_int_equal(tg_journal_outcome(w, &a, NULL, &tk), 0);
    assert_int_equal(intent_turn(w, &a, &tk), 0); /* an intent after its outcome */
    tg_journal_writer_free(w);
    tg_journal_close(j);
    assert_true(nsegs(&t) > 5);

    got *g = calloc(1, sizeof *g);
    uint8_t seen[1001] = {0};
    g->seen = seen;
    g->nseen = sizeof seen;
    tg_journal_stats st = recover_all(&t, g);
    assert_int_equal(st.outcomes, 21);
    assert_int_equal(st.interrupted, 0);
    assert_int_equal(seen[1000], 1);
    assert_int_equal(seen[19], 1);
    assert_int_equal(g->kept[20].latency_us, 777);
    free(g);
    tmp_remove(&t);
}

static void policy_run(tg_fsync_policy p)
{
    tmp t;
    tmp_make(&t, p, 4096);
    tg_journal *j = jopen(&t);
    tg_journal_writer *w = tg_journal_writer_new(j, 1);
    for (uint32_t i = 0; i < 200; i++) {
        tg_usage_rec r;
        tg_jticket tk = {0};
        make_rec(&r, i);
        assert_int_equal(intent_turn(w, &r, &tk), 0);
        assert_int_equal(tg_journal_outcome(w, &r, NULL, &tk), 0);
        if (i < 100) tg_journal_settle(j, &tk); /* settled segments go, even mid-flush */
        if (i % 50 == 0) nanosleep(&(struct timespec){0, 3000000}, NULL);
    }
    nanosleep(&(struct timespec){0, 20000000}, NULL); /* a few flusher passes */
    tg_journal_writer_free(w);
    tg_journal_close(j);
    got *g = calloc(1, sizeof *g);
    tg_journal_stats st = recover_all(&t, g);
    assert_true(st.outcomes >= 100 && st.outcomes < 120); /* the first kept segment may hold settled ones */
    assert_int_equal(st.interrupted, 0);
    free(g);
    tmp_remove(&t);
}

static void test_fsync_policies(void **state)
{
    (void)state;
    policy_run(TG_FSYNC_ALWAYS);
    policy_run(TG_FSYNC_INTERVAL);
    policy_run(TG_FSYNC_NEVER);
}

static void test_many(void **state)
{
    (void)state;
    enum { N = 100000 };
    tmp t;
    tmp_make(&t, TG_FSYNC_NEVER, 4 << 20);
    tg_journal *j = jopen(&t);
    tg_journal_writer *w[2] = {tg_journal_writer_new(j, 0), tg_journal_writer_new(j, 1)};
    for (uint32_t i = 0; i < N; i++) {
        tg_usage_rec r;
        tg_jticket tk = {0};
        make_rec(&r, i);
        assert_int_equal(intent_turn(w[i & 1], &r, &tk), 0);
        if (i % 7) assert_int_equal(tg_journal_outcome(w[i & 1], &r, NULL, &tk), 0);
    }
    tg_journal_writer_free(w[0]);
    tg_journal_writer_free(w[1]);
    tg_journal_close(j);
    got *g = calloc(1, sizeof *g);
    g->seen = calloc(N, 1);
    g->nseen = N;
    tg_journal_stats st = recover_all(&t, g);
    assert_int_equal(st.outcomes, N - (N + 6) / 7);
    assert_int_equal(st.interrupted, (N + 6) / 7);
    assert_true(st.segments > 2);
    for (uint32_t i = 0; i < N; i++) assert_int_equal(g->seen[i], 1);
    assert_int_equal(nsegs(&t), 0);
    free(g->seen);
    free(g);
    tmp_remove(&t);
}

static int stop_at_third(void *ud, const tg_usage_rec *r)
{
    (void)r;
    return ++*(int *)ud == 3 ? 42 : 0;
}

static void test_lock_and_stop(void **state)
{
    (void)state;
    tmp t;
    tmp_make(&t, TG_FSYNC_INTERVAL, 64 << 20);
    write_pairs(&t, 5);
    tg_journal *j = jopen(&t), *j2 = NULL;
    tg_errmsg err;
    assert_int_equal(tg_journal_open(&t.c, &j2, &err), TG_EIO); /* one process per data_dir */
    assert_non_null(strstr(err.msg, "another tollgate"));
    int n = 0;
    tg_journal_stats st;
    assert_int_equal(tg_journal_recover(j, stop_at_third, &n, &st, &err), 42);
    assert_int_equal(tg_journal_recovered(j, &err), TG_EINVAL); /* keeps what was not handed over */
    tg_journal_close(j);
    assert_int_equal(nsegs(&t), 1);
    tmp_remove(&t);
}

/* Caps the size of files this process writes (SIGXFSZ ignored, so a
 * write past it fails with EFBIG); fsize_lift undoes it. */
typedef struct {
    struct rlimit old;
    void (*oldsig)(int);
} fsize_cap;

static void fsize_limit(fsize_cap *c, rlim_t bytes)
{
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &c->old), 0);
    c->oldsig = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = c->old;
    lim.rlim_cur = bytes;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
}

static void fsize_lift(fsize_cap *c)
{
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &c->old), 0);
    signal(SIGXFSZ, c->oldsig);
}

/* Segment seq's size, -1 when there is no such file. */
static off_t seg_size(tmp *t, unsigned seq)
{
    char path[160];
    struct stat sb;
    snprintf(path, sizeof path, "%s/w0-%u.tgj", t->jdir, seq);
    return stat(path, &sb) ? -1 : sb.st_size;
}

static off_t file_size(tmp *t, unsigned seq)
{
    off_t n = seg_size(t, seq);
    assert_true(n >= 0);
    return n;
}

/* Requests one after another, each intent flushed before its upstream
 * call and each outcome held and written with the next request's intent,
 * under a file size limit that cuts the third write of each segment short
 * (frames are ~218 bytes: intent 0, then outcome 0 with intent 1, then
 * outcome 1 with intent 2 passes 900 bytes). The failed flush refuses its
 * intent's request (its ticket names the broken segment, valid to
 * settle), the outcome that rode with it is lost (its request is
 * interrupted), the torn bytes are cut off, and the writer moves on to a
 * new segment. */
static void test_failed_write(void **state)
{
    (void)state;
    tmp t;
    tmp_make(&t, TG_FSYNC_NEVER, 64 << 20);
    tg_journal *j = jopen(&t);
    tg_journal_writer *w = tg_journal_writer_new(j, 0);
    fsize_cap cap;
    fsize_limit(&cap, 900);
    for (uint32_t i = 0; i < 7; i++) {
        tg_usage_rec r;
        tg_jticket tk = {0};
        make_rec(&r, i);
        assert_int_equal(tg_journal_intent(w, &r, NULL, &tk), 0);
        assert_non_null(tk.intent);
        int rc = tg_journal_writer_flush(w);
        if (i % 3 == 2) {
            assert_int_equal(rc, TG_EIO);
            continue; /* the request is refused */
        }
        assert_int_equal(rc, 0);
        assert_int_equal(tg_journal_outcome(w, &r, NULL, &tk), 0);
        assert_ptr_equal(tk.outcome, tk.intent);
    }
    fsize_lift(&cap);
    assert_int_equal(nsegs(&t), 3);
    off_t sz = file_size(&t, 1);
    assert_true(sz <= 900 && sz > 600); /* three frames: the torn bytes are gone */
    assert_int_equal(file_size(&t, 2), sz);
    tg_journal_writer_free(w); /* writes outcome 6 */
    tg_journal_close(j);
    got *g = calloc(1, sizeof *g);
    uint8_t seen[7] = {0};
    g->seen = seen;
    g->nseen = sizeof seen;
    tg_journal_stats st = recover_all(&t, g);
    assert_int_equal(st.torn, 0);
    assert_int_equal(st.outcomes, 3); /* 0, 3, 6 */
    assert_int_equal(st.interrupted, 2); /* 1 and 4: their outcomes rode with a failed write */
    for (uint32_t i = 0; i < 7; i++) assert_int_equal(seen[i], i % 3 != 2);
    free(g);
    tmp_remove(&t);
}

/* Held outcomes whose flush fails: their appends succeeded and their
 * tickets stay valid; the segment they name, now broken, stays while any
 * of them is unsettled, and goes with the last settle. */
static void test_failed_flush(void **state)
{
    (void)state;
    tmp t;
    tmp_make(&t, TG_FSYNC_NEVER, 64 << 20);
    tg_journal *j = jopen(&t);
    tg_journal_writer *w = tg_journal_writer_new(j, 0);
    tg_usage_rec r;
    tg_jticket tk[4];
    memset(tk, 0, sizeof tk);
    for (uint32_t i = 0; i < 3; i++) {
        make_rec(&r, i);
        assert_int_equal(intent_turn(w, &r, &tk[i]), 0);
    }
    off_t sz = file_size(&t, 1);
    fsize_cap cap;
    fsize_limit(&cap, 900);
    for (uint32_t i = 0; i < 3; i++) {
        make_rec(&r, i);
        assert_int_equal(tg_journal_outcome(w, &r, NULL, &tk[i]), 0);
        assert_ptr_equal(tk[i].outcome, tk[i].intent);
    }
    assert_int_equal(file_size(&t, 1), sz); /* held */
    assert_int_equal(tg_journal_writer_flush(w), TG_EIO);
    fsize_lift(&cap);
    assert_int_equal(file_size(&t, 1), sz); /* the part written is cut off */
    assert_int_equal(tg_journal_writer_flush(w), 0); /* nothing held any more */
    tg_journal_settle(j, &tk[1]);
    tg_journal_settle(j, &tk[2]);
    make_rec(&r, 3);
    assert_int_equal(intent_turn(w, &r, &tk[3]), 0);
    assert_ptr_not_equal(tk[3].intent, tk[0].intent); /* a new segment */
    assert_true(seg_exists(&t, 0, 1) && seg_exists(&t, 0, 2)); /* request 0 is not settled */
    tg_journal_settle(j, &tk[0]);
    assert_false(seg_exists(&t, 0, 1));
    tg_journal_writer_free(w);
    tg_journal_close(j);
    got *g = calloc(1, sizeof *g);
    tg_journal_stats st = recover_all(&t, g);
    assert_int_equal(st.outcomes, 0);
    assert_int_equal(st.interrupted, 1); /* request 3 */
    free(g);
    tmp_remove(&t);
}

/* A write of held intents that fails inside an append (the segment is
 * full, or the batch passed 64 KiB) is reported by the next flush, even
 * when that flush's own write succeeds, and only by that one; a failed
 * write of outcomes alone leaves the next flush clean. */
static void test_lost_intents(void **state)
{
    (void)state;
    tmp t;
    tmp_make(&t, TG_FSYNC_NEVER, 1000); /* four ~218-byte frames a segment */
    tg_journal *j = jopen(&t);
    tg_journal_writer *w = tg_journal_writer_new(j, 0);
    tg_usage_rec r;
    tg_jticket tk[8];
    memset(tk, 0, sizeof tk);
    fsize_cap cap;
    fsize_limit(&cap, 500);
    for (uint32_t i = 0; i < 5; i++) { /* the fifth writes the four held first: cut short */
        make_rec(&r, i);
        assert_int_equal(tg_journal_intent(w, &r, NULL, &tk[i]), 0);
    }
    assert_ptr_not_equal(tk[4].intent, tk[3].intent);
    assert_int_equal(tg_journal_writer_flush(w), TG_EIO); /* wrote intent 4, reports 0-3 */
    assert_int_equal(tg_journal_writer_flush(w), 0);
    make_rec(&r, 5);
    assert_int_equal(intent_turn(w, &r, &tk[5]), 0);
    assert_int_equal(file_size(&t, 1), 0);
    off_t two = file_size(&t, 2); /* intents 4 and 5 */
    fsize_lift(&cap);

    fsize_limit(&cap, (rlim_t)two); /* the outcome's write fails */
    assert_int_equal(tg_journal_outcome(w, &r, NULL, &tk[5]), 0);
    assert_int_equal(tg_journal_writer_flush(w), TG_EIO);
    make_rec(&r, 6);
    assert_int_equal(intent_turn(w, &r, &tk[6]), 0); /* a new segment, and a clean flush */
    fsize_lift(&cap);
    assert_int_equal(file_size(&t, 2), two);
    tg_journal_writer_free(w);
    tg_journal_close(j);
    tmp_remove(&t);

    tmp_make(&t, TG_FSYNC_NEVER, 64 << 20);
    j = jopen(&t);
    w = tg_journal_writer_new(j, 0);
    fsize_limit(&cap, 32 << 10);
    for (uint32_t i = 0; i < 400; i++) { /* the 64 KiB write, at about 300, fails part way */
        tg_jticket k = {0};
        make_rec(&r, i);
        assert_int_equal(tg_journal_intent(w, &r, NULL, &k), 0);
    }
    assert_int_equal(tg_journal_writer_flush(w), TG_EIO);
    assert_int_equal(tg_journal_writer_flush(w), 0);
    fsize_lift(&cap);
    assert_int_equal(file_size(&t, 1), 0);
    assert_true(file_size(&t, 2) > 0); /* the intents after the failure, written */
    tg_journal_writer_free(w);
    tg_journal_close(j);
    got *g = calloc(1, sizeof *g);
    tg_journal_stats st = recover_all(&t, g);
    assert_true(st.interrupted > 50 && st.interrupted < 150); /* those after the failure */
    free(g);
    tmp_remove(&t);
}

/* The payload of the last append decodes back to its record, and an
 * outcome's marks point at its fields. */
static void check_last(tg_journal_writer *w, const tg_usage_rec *want, bool intent)
{
    size_t n;
    tg_record_marks m;
    const uint8_t *p = tg_journal_last_payload(w, &n, &m);
    assert_non_null(p);
    tg_usage_rec back;
    bool bi = !intent;
    assert_int_equal(tg_record_decode(p, n, &back, &bi), 0);
    assert_true(bi == intent);
    assert_memory_equal(&back, want, sizeof back);
    if (!intent) check_view(p, n, &m, want, false);
}

/* Appends records 0..n-1 as intents or outcomes, checking each one's
 * tg_journal_last_payload, and returns after how many appends segment 1
 * first grew (0: never); *size is its size at the end. */
static uint32_t append_all(tmp *t, tg_journal_writer *w, uint32_t n, bool intent, off_t *size)
{
    off_t prev = seg_size(t, 1) < 0 ? 0 : seg_size(t, 1);
    uint32_t first_write = 0;
    for (uint32_t i = 0; i < n; i++) {
        tg_usage_rec r;
        tg_jticket tk = {0};
        make_rec(&r, i);
        r.latency_us = intent ? 1000 + i : 5000 + i; /* varints of one length: frames of one size */
        assert_int_equal((intent ? tg_journal_intent : tg_journal_outcome)(w, &r, NULL, &tk), 0);
        check_last(w, &r, intent);
        off_t sz = file_size(t, 1);
        if (sz != prev && !first_write) first_write = i + 1;
        prev = sz;
    }
    *size = prev;
    return first_write;
}

/* When records are written: held until a flush or 64 KiB of them, intents
 * and outcomes alike; an outcome at once under `always`, with what is
 * held. And tg_journal_last_payload. */
static void test_held_records(void **state)
{
    (void)state;
    enum { N = 400 }; /* ~87 KB of each */
    tmp t;
    tmp_make(&t, TG_FSYNC_NEVER, 64 << 20);
    tg_journal *j = jopen(&t);
    tg_journal_writer *w = tg_journal_writer_new(j, 0);
    tg_usage_rec r;
    tg_jticket tk = {0};
    size_t n;
    tg_record_marks m;
    assert_null(tg_journal_last_payload(w, &n, &m));
    assert_int_equal(n, 0);
    off_t sz;
    uint32_t first_write = append_all(&t, w, N, true, &sz);
    assert_true(first_write > 250 && first_write < 320); /* 64 KiB of ~218-byte frames */
    assert_true(sz > 0);
    assert_int_equal(tg_journal_writer_flush(w), 0);
    off_t intents = file_size(&t, 1);
    assert_true(intents > sz);
    first_write = append_all(&t, w, N, false, &sz);
    assert_true(first_write > 250 && first_write < 320);
    assert_true(sz > intents && sz < 2 * intents);
    assert_int_equal(tg_journal_writer_flush(w), 0);
    assert_int_equal(file_size(&t, 1), 2 * intents);
    make_rec(&r, N - 1);
    r.latency_us = 5000 + N - 1;
    check_last(w, &r, false); /* still there after the flush */
    make_rec(&r, N);
    assert_int_equal(tg_journal_outcome(w, &r, NULL, &tk), 0);
    size_t held;
    assert_non_null(tg_journal_last_payload(w, &held, &m));
    r.charge++; /* refused by encode: no payload */
    assert_int_equal(tg_journal_outcome(w, &r, NULL, &tk), TG_EINVAL);
    assert_null(tg_journal_last_payload(w, &n, &m));
    make_rec(&r, N + 1);
    assert_int_equal(tg_journal_intent(w, &r, NULL, &tk), 0);
    assert_non_null(tg_journal_last_payload(w, &n, &m));
    assert_int_equal(file_size(&t, 1), 2 * intents); /* both held */
    assert_int_equal(tg_journal_writer_flush(w), 0);
    assert_int_equal(file_size(&t, 1), 2 * intents + (off_t)(held + n + 2 * TG_JOURNAL_FRAME_HDR));
    tg_journal_writer_free(w);
    tg_journal_close(j);
    tmp_remove(&t);

    tmp_make(&t, TG_FSYNC_ALWAYS, 64 << 20);
    j = jopen(&t);
    w = tg_journal_writer_new(j, 0);
    make_rec(&r, 0);
    assert_int_equal(tg_journal_intent(w, &r, NULL, &tk), 0);
    assert_int_equal(file_size(&t, 1), 0);
    assert_int_equal(tg_journal_outcome(w, &r, NULL, &tk), 0); /* takes the intent with it */
    tg_journal_last_payload(w, &n, &m);
    assert_int_equal(file_size(&t, 1), 2 * (off_t)(n + TG_JOURNAL_FRAME_HDR));
    tg_journal_writer_free(w);
    tg_journal_close(j);
    tmp_remove(&t);
}

/* Intents are in the file only after a flush: a process that dies with
 * intents held (here it exits without flushing, as kill -9 would stop
 * it) leaves the flushed ones, settled as interrupted at the next start,
 * and no trace of the others, whose requests never went upstream. */
static void test_held_intents(void **state)
{
    (void)state;
    tmp t;
    tmp_make(&t, TG_FSYNC_NEVER, 64 << 20);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tg_journal *j = NULL;
        tg_errmsg err;
        if (tg_journal_open(&t.c, &j, &err)) _exit(2);
        tg_journal_writer *w = tg_journal_writer_new(j, 0);
        for (uint32_t i = 0; i < 10; i++) {
            tg_usage_rec r;
            tg_jticket tk = {0};
            make_rec(&r, i);
            if (tg_journal_intent(w, &r, NULL, &tk)) _exit(3);
            if (i == 4 && tg_journal_writer_flush(w)) _exit(4);
            if ((seg_size(&t, 1) == 0) != (i < 4)) _exit(5); /* no cmocka here: a child */
        }
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    got *g = calloc(1, sizeof *g);
    uint8_t seen[10] = {0};
    g->seen = seen;
    g->nseen = sizeof seen;
    tg_journal_stats st = recover_all(&t, g);
    assert_int_equal(st.interrupted, 5);
    assert_int_equal(st.torn, 0);
    for (uint32_t i = 0; i < 10; i++) assert_int_equal(seen[i], i < 5);
    free(g);
    tmp_remove(&t);
}

/* Under `always` intents are held like the rest and a flush writes and
 * fsyncs them all at once (group commit), while an outcome is written and
 * fsynced as it comes. */
static void test_group_commit(void **state)
{
    (void)state;
    enum { N = 10 };
    tmp t;
    tmp_make(&t, TG_FSYNC_ALWAYS, 64 << 20);
    tg_journal *j = jopen(&t);
    tg_journal_writer *w = tg_journal_writer_new(j, 0);
    tg_usage_rec r;
    tg_jticket tk[N];
    memset(tk, 0, sizeof tk);
    make_rec(&r, 0);
    /* the first creates the segment, which fsyncs the directory */
    assert_int_equal(tg_journal_intent(w, &r, NULL, &tk[0]), 0);
    int before = atomic_load(&fsyncs);
    for (uint32_t i = 1; i < N; i++) {
        make_rec(&r, i);
        assert_int_equal(tg_journal_intent(w, &r, NULL, &tk[i]), 0);
    }
    assert_int_equal(atomic_load(&fsyncs), before);
    assert_int_equal(file_size(&t, 1), 0);
    assert_int_equal(tg_journal_writer_flush(w), 0);
    assert_int_equal(atomic_load(&fsyncs), before + 1);
    off_t intents = file_size(&t, 1);
    assert_int_equal(intents % N, 0);
    make_rec(&r, 0);
    assert_int_equal(tg_journal_outcome(w, &r, NULL, &tk[0]), 0);
    assert_int_equal(atomic_load(&fsyncs), before + 2);
    assert_int_equal(file_size(&t, 1), intents + intents / N);
    assert_int_equal(tg_journal_writer_flush(w), 0); /* nothing held: no fsync */
    assert_int_equal(atomic_load(&fsyncs), before + 2);
    for (uint32_t i = 0; i < N; i++) tg_journal_settle(j, &tk[i]);
    tg_journal_writer_free(w);
    tg_journal_close(j);
    tmp_remove(&t);
}

/* Loop turns as the gateway runs them: a few intents, the flush their
 * upstream calls wait for, then their outcomes, flushed at the end of
 * every other turn (else with the next turn's intents), in segments of
 * about nine frames, so held records meet rotations. Every
 * ticket names the segment its frame is in: with all but every third
 * request settled, the unsettled ones are all recovered whole, and once
 * the rest are settled too, every segment goes. */
static void test_batches(void **state)
{
    (void)state;
    enum { TURNS = 60, MAXK = 12 };
    tmp t;
    tmp_make(&t, TG_FSYNC_NEVER, 2000);
    tg_journal *j = jopen(&t);
    tg_journal_writer *w = tg_journal_writer_new(j, 0);
    tg_jticket *tk = calloc(TURNS * MAXK, sizeof *tk);
    uint32_t n = 0;
    for (uint32_t turn = 0; turn < TURNS; turn++) {
        uint32_t k = 1 + turn % MAXK;
        tg_usage_rec r;
        for (uint32_t i = n; i < n + k; i++) {
            make_rec(&r, i);
            assert_int_equal(tg_journal_intent(w, &r, NULL, &tk[i]), 0);
        }
        assert_int_equal(tg_journal_writer_flush(w), 0);
        for (uint32_t i = n; i < n + k; i++) {
            make_rec(&r, i);
            assert_int_equal(tg_journal_outcome(w, &r, NULL, &tk[i]), 0);
        }
        n += k;
        if (turn % 2) assert_int_equal(tg_journal_writer_flush(w), 0);
    }
    for (uint32_t i = 0; i < n; i++)
        if (i % 3) tg_journal_settle(j, &tk[i]);
    tg_journal_writer_free(w);
    assert_true(nsegs(&t) > 10);
    tg_journal_close(j);
    got *g = calloc(1, sizeof *g);
    g->seen = calloc(n, 1);
    g->nseen = n;
    tg_journal_stats st = recover_all(&t, g);
    assert_int_equal(st.interrupted, 0);
    assert_int_equal(st.torn, 0);
    for (uint32_t i = 0; i < n; i += 3) assert_int_equal(g->seen[i], 1);

    j = jopen(&t);
    w = tg_journal_writer_new(j, 0);
    memset(tk, 0, TURNS * MAXK * sizeof *tk);
    for (uint32_t i = 0; i < n; i++) {
        tg_usage_rec r;
        make_rec(&r, i);
        assert_int_equal(intent_turn(w, &r, &tk[i]), 0);
        assert_int_equal(tg_journal_outcome(w, &r, NULL, &tk[i]), 0);
        if (i % 5 == 0) tg_journal_settle(j, &tk[i]); /* before its outcome is written */
    }
    for (uint32_t i = 0; i < n; i++)
        if (i % 5) tg_journal_settle(j, &tk[i]);
    assert_int_equal(nsegs(&t), 1); /* the writer's open segment */
    tg_journal_writer_free(w);
    assert_int_equal(nsegs(&t), 0);
    tg_journal_close(j);
    free(g->seen);
    free(g);
    free(tk);
    tmp_remove(&t);
}

/* Settles on another thread while the writer rotates and the flusher
 * runs: every segment goes exactly once (ASan / TSan builds check it). */
enum { QN = 4096 };
typedef struct {
    pthread_mutex_t mu;
    tg_jticket q[QN];
    size_t head, tail;
    bool done;
    tg_journal *j;
} settle_q;

static void *settler(void *arg)
{
    settle_q *sq = arg;
    for (;;) {
        pthread_mutex_lock(&sq->mu);
        bool empty = sq->head == sq->tail, done = sq->done;
        tg_jticket t = empty ? (tg_jticket){0} : sq->q[sq->head++ % QN];
        pthread_mutex_unlock(&sq->mu);
        if (!empty) tg_journal_settle(sq->j, &t);
        else if (done) return NULL;
        else sched_yield();
    }
}

static void test_settle_threads(void **state)
{
    (void)state;
    tmp t;
    tmp_make(&t, TG_FSYNC_INTERVAL, 1500);
    t.c.fsync_interval_ms = 1;
    settle_q sq = {.j = jopen(&t)};
    pthread_mutex_init(&sq.mu, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, settler, &sq), 0);
    tg_journal_writer *w = tg_journal_writer_new(sq.j, 0);
    for (uint32_t i = 0; i < 20000; i++) {
        tg_usage_rec r;
        tg_jticket tk = {0};
        make_rec(&r, i);
        assert_int_equal(intent_turn(w, &r, &tk), 0);
        assert_int_equal(tg_journal_outcome(w, &r, NULL, &tk), 0);
        for (;;) {
            pthread_mutex_lock(&sq.mu);
            bool room = sq.tail - sq.head < QN;
            if (room) sq.q[sq.tail++ % QN] = tk;
            pthread_mutex_unlock(&sq.mu);
            if (room) break;
            sched_yield();
        }
    }
    tg_journal_writer_free(w);
    pthread_mutex_lock(&sq.mu);
    sq.done = true;
    pthread_mutex_unlock(&sq.mu);
    pthread_join(th, NULL);
    tg_journal_close(sq.j); /* the flusher may hold the last reference until it stops */
    assert_int_equal(nsegs(&t), 0);
    pthread_mutex_destroy(&sq.mu);
    tmp_remove(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_crc32c_paths),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_string_lengths),
        cmocka_unit_test(test_encode_strs),
        cmocka_unit_test(test_version2), cmocka_unit_test(test_version3),
        cmocka_unit_test(test_decode_refuses),
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_recover_interrupted),
        cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_rotation_and_settle),
        cmocka_unit_test(test_pairs_across_segments),
        cmocka_unit_test(test_fsync_policies),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_lock_and_stop),
        cmocka_unit_test(test_failed_write),
        cmocka_unit_test(test_failed_flush),
        cmocka_unit_test(test_lost_intents),
        cmocka_unit_test(test_held_records),
        cmocka_unit_test(test_held_intents),
        cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_batches),
        cmocka_unit_test(test_settle_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
