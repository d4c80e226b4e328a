/* The log line format (base/log.c): the timestamp's exact shape, including
 * across second boundaries where its cached part is rebuilt; string values
 * byte for byte as tg_jsonw_str writes them, whatever the bytes; integers
 * as printf writes them; and a line that does not fit leaving the buffer as
 * it was. */
#include "base/log.h"
#include "base/err.h"
#include "base/jsonw.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The timestamp as the printf-based code wrote it, up to its 'Z'. */
static void ref_ts(const struct timespec *ts, char out[64])
{
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    snprintf(out, 64, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts->tv_nsec / 1000000);
}

/* Begins a line and checks it against the clock read just before and just
 * after: the format is fixed-width, so string order is time order. */
static void check_begin(tg_log_level lvl, const char *name)
{
    tg_buf b;
    tg_buf_init(&b, 4096);
    struct timespec t0, t1;
    char r0[64], r1[64], want[128];
    clock_gettime(CLOCK_REALTIME, &t0);
    assert_int_equal(tg_log_begin(&b, lvl), TG_OK);
    clock_gettime(CLOCK_REALTIME, &t1);
    ref_ts(&t0, r0);
    ref_ts(&t1, r1);
    size_t tn = strlen(r0);
    assert_true(b.n > tn);
    assert_int_equal(b.p[b.n], '\0');
    char got[64];
    memcpy(got, b.p, tn);
    got[tn] = '\0';
    if (strcmp(r0, got) > 0 || strcmp(got, r1) > 0) fail_msg("%s not within [%s, %s]", got, r0, r1);
    snprintf(want, sizeof want, ",\"level\":\"%s\"", name);
    assert_int_equal(b.n - tn, strlen(want) + 1);
    assert_int_equal(b.p[tn], '"');
    assert_memory_equal(b.p + tn + 1, want, strlen(want));
    tg_buf_release(&b);
}

static void test_timestamp(void **state)
{
    (void)state;
    check_begin(TG_LOG_DEBUG, "debug");
    check_begin(TG_LOG_INFO, "info");
    check_begin(TG_LOG_WARN, "warn");
    check_begin(TG_LOG_ERROR, "error");
}

/* Lines across two second boundaries: the cached seconds must follow. */
static void test_timestamp_rollover(void **state)
{
    (void)state;
    struct timespec start, now;
    clock_gettime(CLOCK_REALTIME, &start);
    int lines = 0;
    do {
        check_begin(TG_LOG_INFO, "info");
        lines++;
        nanosleep(&(struct timespec){0, 3 * 1000 * 1000}, NULL);
        clock_gettime(CLOCK_REALTIME, &now);
    } while (now.tv_sec < start.tv_sec + 2);
    assert_true(lines > 100);
}

/* The line of one string field, or NULL with *rc set when it failed. */
static char *kv_line(tg_str v, size_t max, int *rc)
{
    tg_buf b;
    tg_buf_init(&b, max);
    tg_log_line l;
    tg_log_line_begin(&l, &b, TG_LOG_INFO);
    tg_log_kv_str(&l, "k", v);
    *rc = tg_log_line_end(&l);
    if (*rc) {
        tg_buf_release(&b);
        return NULL;
    }
    return b.p;
}

/* tg_log_kv_str must write exactly ,"k": and then what tg_jsonw_str does. */
static void check_str(const char *p, size_t n)
{
    tg_buf want;
    tg_buf_init(&want, 1 << 20);
    assert_int_equal(tg_buf_add_lit(&want, ",\"k\":"), TG_OK);
    assert_int_equal(tg_jsonw_str(&want, tg_str_make(p, n)), TG_OK);
    assert_int_equal(tg_buf_add_lit(&want, "}\n"), TG_OK);
    int rc;
    char *line = kv_line(tg_str_make(p, n), 1 << 20, &rc);
    assert_int_equal(rc, TG_OK);
    const char *rest = strstr(line, "\",\"level\":\"info\"");
    assert_non_null(rest);
    rest += strlen("\",\"level\":\"info\"");
    if (strlen(rest) != want.n || memcmp(rest, want.p, want.n) != 0)
        fail_msg("string of %zu bytes: got %s, want %s", n, rest, want.p);
    free(line);
    tg_buf_release(&want);
}

/* Every byte value at every position of strings short and long, so that
 * both the shifted word and the last-eight-bytes tail are exercised. */
static void test_strings_every_byte(void **state)
{
    (void)state;
    char s[24];
    for (size_t n = 1; n <= sizeof s; n++)
        for (size_t at = 0; at < n; at++)
            for (int c = 0; c < 256; c++) {
                memset(s, 'x', n);
                s[at] = (char)c;
                check_str(s, n);
            }
}

static void test_strings_samples(void **state)
{
    (void)state;
    static const char *const samples[] = {
        "", "-", "request", "req_0123456789abcdef01234567", "sim/bench", "gpt-4o-mini",
        "a\"b", "\\", "line\nbreak\ttab\rcr", "\x01\x1f", "\x7f", "h\xc3\xa9llo", "\xe2\x82\xac",
        "\xf0\x9f\x98\x80 emoji", "\xff", "\xc3", "\xed\xa0\x80", "ab\xc3\xa9-cdefghij\"",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    };
    for (size_t i = 0; i < sizeof samples / sizeof *samples; i++)
        check_str(samples[i], strlen(samples[i]));
    check_str(NULL, 0);
    check_str("nul\0inside", 10);
}

/* Random strings over bytes that matter to JSON and UTF-8. */
static void test_strings_random(void **state)
{
    (void)state;
    static const char alpha[] = "ab\"\\\n\x01\x1f \x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff\xed";
    uint64_t x = 0x9e3779b97f4a7c15ull;
    char s[80];
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(round % (int)sizeof s);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            s[i] = alpha[x % (sizeof alpha - 1)];
        }
        check_str(s, n);
    }
}

/* What a line starts with at level info or warn, as long as any. */
#define HEAD_LEN (sizeof "{\"ts\":\"2026-11-22T15:32:37.686Z\",\"level\":\"info\"" - 1)

/* The text after the level of a line of numbers. */
static void check_fields(void (*fill)(tg_log_line *), const char *want)
{
    tg_buf b;
    tg_buf_init(&b, 1 << 16);
    tg_log_line l;
    tg_log_line_begin(&l, &b, TG_LOG_INFO);
    fill(&l);
    assert_int_equal(tg_log_line_end(&l), TG_OK);
    const char *rest = strstr(b.p, "\"level\":\"info\"") + strlen("\"level\":\"info\"");
    assert_string_equal(rest, want);
    assert_int_equal(strlen(b.p), b.n);
    tg_buf_release(&b);
}

static const uint64_t u64s[] = {0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 12345, 99999, 100000,
                                4294967295u, 4294967296u, 999999999999999999u,
                                1000000000000000000u, 9999999999999999999u,
                                10000000000000000000u, UINT64_MAX};
static const int64_t i64s[] = {0, -1, 1, -9, -10, 200, 499, -12345, INT64_MAX, INT64_MIN,
                               INT64_MIN + 1};

static char *expect_numbers(void)
{
    static char want[2048];
    size_t n = 0;
    for (size_t i = 0; i < sizeof u64s / sizeof *u64s; i++)
        n += (size_t)snprintf(want + n, sizeof want - n, ",\"u\":%" PRIu64, u64s[i]);
    for (size_t i = 0; i < sizeof i64s / sizeof *i64s; i++)
        n += (size_t)snprintf(want + n, sizeof want - n, ",\"i\":%" PRId64, i64s[i]);
    snprintf(want + n, sizeof want - n, ",\"t\":true,\"f\":false}\n");
    return want;
}

static void fill_numbers(tg_log_line *l)
{
    for (size_t i = 0; i < sizeof u64s / sizeof *u64s; i++) tg_log_kv_u64(l, "u", u64s[i]);
    for (size_t i = 0; i < sizeof i64s / sizeof *i64s; i++) tg_log_kv_i64(l, "i", i64s[i]);
    tg_log_kv_bool(l, "t", true);
    tg_log_kv_bool(l, "f", false);
}

static void test_numbers(void **state)
{
    (void)state;
    check_fields(fill_numbers, expect_numbers());
}

/* The shape of a request line (api/gateway.c writes it this way). */
static void fill_request(tg_log_line *l)
{
    tg_log_kv_str(l, "msg", TG_STR("request"));
    tg_log_kv_str(l, "rid", TG_STR("req_1"));
    tg_log_kv_str(l, "key", TG_STR("k\"1"));
    tg_log_kv_str(l, "endpoint", TG_STR("chat"));
    tg_log_kv_bool(l, "stream", false);
    tg_log_kv_i64(l, "status", 200);
    tg_log_kv_u64(l, "latency_us", 1234);
}

static void test_request_shape(void **state)
{
    (void)state;
    check_fields(fill_request, ",\"msg\":\"request\",\"rid\":\"req_1\",\"key\":\"k\\\"1\","
                               "\"endpoint\":\"chat\",\"stream\":false,\"status\":200,"
                               "\"latency_us\":1234}\n");
}

/* Lines after what the buffer already holds, and lines far longer than the
 * room reserved at a time, plain and escaped. */
static void test_append_and_grow(void **state)
{
    (void)state;
    tg_buf b;
    tg_buf_init(&b, 1 << 20);
    assert_int_equal(tg_buf_add_lit(&b, "earlier\n"), TG_OK);
    char big[5000];
    memset(big, 'v', sizeof big);
    for (int round = 0; round < 2; round++) {
        if (round) big[2500] = '"';
        size_t before = b.n;
        tg_log_line l;
        tg_log_line_begin(&l, &b, TG_LOG_WARN);
        tg_log_kv_str(&l, "big", tg_str_make(big, sizeof big));
        tg_log_kv_u64(&l, "n", 42);
        tg_log_kv_str(&l, "big2", tg_str_make(big, sizeof big));
        assert_int_equal(tg_log_line_end(&l), TG_OK);
        assert_int_equal(b.p[b.n], '\0');
        assert_memory_equal(b.p, "earlier\n", 8);
        const char *line = b.p + before;
        assert_memory_equal(line, "{\"ts\":\"", 7);
        assert_int_equal(b.n - before, HEAD_LEN + (7 + 5002) + 7 + (8 + 5002) + 2 + 2 * round);
        assert_memory_equal(b.p + b.n - 2, "}\n", 2);
    }
    tg_buf_release(&b);
}

/* A line that passes the buffer's cap fails as a whole: the buffer is left
 * as it was, and later appends stay off. */
static void test_cap(void **state)
{
    (void)state;
    tg_buf b;
    tg_buf_init(&b, 120);
    assert_int_equal(tg_buf_add_lit(&b, "kept\n"), TG_OK);
    char big[200];
    memset(big, 'v', sizeof big);
    tg_log_line l;
    tg_log_line_begin(&l, &b, TG_LOG_INFO);
    tg_log_kv_str(&l, "big", tg_str_make(big, sizeof big));
    tg_log_kv_u64(&l, "n", 1);
    tg_log_kv_str(&l, "s", TG_STR("x"));
    assert_int_equal(tg_log_line_end(&l), TG_ETOOBIG);
    assert_int_equal(b.n, 5);
    assert_string_equal(b.p, "kept\n");
    /* The same with a value that must be escaped. */
    big[10] = '\n';
    tg_log_line_begin(&l, &b, TG_LOG_INFO);
    tg_log_kv_str(&l, "big", tg_str_make(big, sizeof big));
    assert_int_equal(tg_log_line_end(&l), TG_ETOOBIG);
    assert_string_equal(b.p, "kept\n");
    /* A line that fits, though less than the usual room is left. */
    tg_log_line_begin(&l, &b, TG_LOG_INFO);
    tg_log_kv_str(&l, "s", tg_str_make(big + 20, 40));
    assert_int_equal(tg_log_line_end(&l), TG_OK);
    assert_int_equal(b.n, 5 + HEAD_LEN + 5 + 42 + 2);
    /* And the event path refuses what does not fit, leaving b alone. */
    size_t n = b.n;
    assert_int_equal(tg_log_begin(&b, TG_LOG_INFO), TG_ETOOBIG);
    assert_int_equal(b.n, n);
    tg_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timestamp),       cmocka_unit_test(test_timestamp_rollover),
        cmocka_unit_test(test_strings_every_byte), cmocka_unit_test(test_strings_samples),
        cmocka_unit_test(test_strings_random),  cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_request_shape),   cmocka_unit_test(test_append_and_grow),
        cmocka_unit_test(test_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
