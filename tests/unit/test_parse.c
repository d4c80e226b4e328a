/* Request parsing glue (http/parse.c): events, views, limits, pipelining,
 * chunked bodies, and the same results whatever the read boundaries. */
#include "http/parse.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>

/* Feeds all of s in pieces of `step` bytes until a message or an error;
 * returns the final event and the bytes consumed in *used. */
static tg_in_event feed_all(tg_http_in *in, const char *s, size_t n, size_t step, size_t *used)
{
    size_t off = 0;
    while (off < n) {
        size_t len = n - off < step ? n - off : step, u;
        tg_in_event ev = tg_http_in_feed(in, s + off, len, &u);
        off += u;
        if (ev == TG_IN_MESSAGE || ev == TG_IN_ERROR) {
            *used = off;
            return ev;
        }
    }
    *used = off;
    return TG_IN_MORE;
}

static void test_simple_get(void **state)
{
    (void)state;
    static const char req[] = "GET /v1/models?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer k\r\n\r\n";
    for (size_t step = 1; step <= sizeof req; step++) {
        tg_http_in in;
        tg_req r;
        memset(&r, 0, sizeof r);
        tg_http_in_init(&in, 4096, 4096);
        size_t used;
        assert_int_equal(feed_all(&in, req, sizeof req - 1, step, &used), TG_IN_MESSAGE);
        assert_int_equal(used, sizeof req - 1);
        tg_http_in_fill(&in, &r);
        assert_int_equal(r.method, TG_GET);
        assert_true(tg_str_eq(r.path, TG_STR("/v1/models")));
        assert_true(tg_str_eq(r.query, TG_STR("x=1")));
        assert_int_equal(r.nheaders, 2);
        assert_true(tg_str_eq(tg_req_header(&r, TG_STR("AUTHORIZATION")), TG_STR("Bearer k")));
        assert_null(tg_req_header(&r, TG_STR("cookie")).p);
        assert_true(r.keep_alive_);
        tg_http_in_release(&in);
    }
}

static void test_chunked_body(void **state)
{
    (void)state;
    static const char req[] = "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    for (size_t step = 1; step <= sizeof req; step += 3) {
        tg_http_in in;
        tg_req r;
        memset(&r, 0, sizeof r);
        tg_http_in_init(&in, 4096, 4096);
        size_t used;
        assert_int_equal(feed_all(&in, req, sizeof req - 1, step, &used), TG_IN_MESSAGE);
        tg_http_in_fill(&in, &r);
        assert_int_equal(r.method, TG_POST);
        assert_true(tg_str_eq(r.body, TG_STR("hello world")));
        tg_http_in_release(&in);
    }
}

static void test_pipelined_stop_between(void **state)
{
    (void)state;
    static const char two[] = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\n";
    tg_http_in in;
    tg_req r;
    memset(&r, 0, sizeof r);
    tg_http_in_init(&in, 4096, 4096);
    size_t used;
    assert_int_equal(feed_all(&in, two, sizeof two - 1, sizeof two, &used), TG_IN_MESSAGE);
    assert_int_equal(used, strlen("GET /a HTTP/1.1\r\n\r\n")); /* /b is left for later */
    tg_http_in_fill(&in, &r);
    assert_true(tg_str_eq(r.path, TG_STR("/a")));
    tg_http_in_next(&in);
    size_t used2;
    assert_int_equal(feed_all(&in, two + used, sizeof two - 1 - used, 7, &used2), TG_IN_MESSAGE);
    tg_http_in_fill(&in, &r);
    assert_true(tg_str_eq(r.path, TG_STR("/b")));
    assert_false(r.keep_alive_);
    tg_http_in_release(&in);
}

static void test_limits(void **state)
{
    (void)state;
    tg_http_in in;
    size_t used;
    /* Content-Length over the cap: refused before any body byte. */
    static const char big[] = "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n";
    tg_http_in_init(&in, 4096, 99);
    assert_int_equal(feed_all(&in, big, sizeof big - 1, 1000, &used), TG_IN_ERROR);
    assert_int_equal(in.status, 413);
    assert_non_null(strstr(in.msg, "max_body_bytes"));
    tg_http_in_release(&in);
    /* A chunked body that grows past the cap. */
    static const char chunks[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n";
    tg_http_in_init(&in, 4096, 10);
    assert_int_equal(feed_all(&in, chunks, sizeof chunks - 1, 5, &used), TG_IN_ERROR);
    assert_int_equal(in.status, 413);
    tg_http_in_release(&in);
    /* A head over max_header_bytes. */
    char head[600];
    int n = snprintf(head, sizeof head, "GET / HTTP/1.1\r\nX-Big: %0500d\r\n\r\n", 7);
    tg_http_in_init(&in, 256, 10);
    assert_int_equal(feed_all(&in, head, (size_t)n, 64, &used), TG_IN_ERROR);
    assert_int_equal(in.status, 431);
    tg_http_in_release(&in);
    /* More headers than TG_MAX_REQ_HEADERS. */
    char many[4096];
    size_t m = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < TG_MAX_REQ_HEADERS + 1; i++)
        m += (size_t)snprintf(many + m, sizeof many - m, "H%d: v\r\n", i);
    m += (size_t)snprintf(many + m, sizeof many - m, "\r\n");
    tg_http_in_init(&in, 8192, 10);
    assert_int_equal(feed_all(&in, many, m, m, &used), TG_IN_ERROR);
    assert_int_equal(in.status, 431);
    tg_http_in_release(&in);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {"GARBAGE\r\n\r\n",
                                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                                "GET / HTTP/1.1\r\nBad Header\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tg_http_in in;
        size_t used;
        tg_http_in_init(&in, 4096, 4096);
        assert_int_equal(feed_all(&in, bad[i], strlen(bad[i]), 3, &used), TG_IN_ERROR);
        assert_int_equal(in.status, 400);
        assert_non_null(strstr(in.msg, "malformed HTTP request"));
        tg_http_in_release(&in);
    }
}

static void test_version(void **state)
{
    (void)state;
    static const char req[] = "GET / HTTP/2.0\r\n\r\n";
    tg_http_in in;
    size_t used;
    tg_http_in_init(&in, 4096, 4096);
    assert_int_equal(feed_all(&in, req, sizeof req - 1, 4, &used), TG_IN_ERROR);
    assert_int_equal(in.status, 505);
    tg_http_in_release(&in);
}

static void test_expect_continue_and_http10(void **state)
{
    (void)state;
    static const char req[] = "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi";
    tg_http_in in;
    tg_req r;
    memset(&r, 0, sizeof r);
    tg_http_in_init(&in, 4096, 4096);
    size_t used, off = 0;
    tg_in_event ev;
    do {
        ev = tg_http_in_feed(&in, req + off, sizeof req - 1 - off, &used);
        off += used;
    } while (ev != TG_IN_HEAD);
    tg_http_in_fill(&in, &r);
    assert_true(tg_http_in_expects_continue(&in, &r));
    tg_http_in_release(&in);

    static const char old[] = "GET / HTTP/1.0\r\n\r\n";
    tg_http_in_init(&in, 4096, 4096);
    assert_int_equal(feed_all(&in, old, sizeof old - 1, 100, &used), TG_IN_MESSAGE);
    tg_http_in_fill(&in, &r);
    assert_int_equal(tg_http_in_minor(&in), 0);
    assert_false(r.keep_alive_);
    tg_http_in_release(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_pipelined_stop_between),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_expect_continue_and_http10),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
