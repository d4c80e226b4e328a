/* SSE splitting (http/sse.c): events whole or split anywhere, every line
 * ending, multi-line data, the cap. */
#include "http/sse.h"
#include "base/err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>

typedef struct {
    tg_buf raw, data; /* every event's raw bytes and data, joined with '|' */
    int events;
} seen;

static int collect(void *ud, tg_str raw, tg_str data)
{
    seen *s = ud;
    s->events++;
    tg_buf_add_str(&s->raw, raw);
    tg_buf_add_str(&s->data, data);
    tg_buf_add_char(&s->data, '|');
    return 0;
}

static void run_split(const char *text, size_t step, seen *s)
{
    tg_sse sse;
    tg_sse_init(&sse, 1 << 16);
    memset(s, 0, sizeof *s);
    tg_buf_init(&s->raw, 1 << 20);
    tg_buf_init(&s->data, 1 << 20);
    size_t n = strlen(text);
    for (size_t off = 0; off < n; off += step)
        assert_int_equal(tg_sse_feed(&sse, text + off, n - off < step ? n - off : step, collect, s), 0);
    assert_int_equal(tg_sse_pending(&sse), 0);
    tg_sse_release(&sse);
}

static void release(seen *s)
{
    tg_buf_release(&s->raw);
    tg_buf_release(&s->data);
}

static void test_every_split(void **state)
{
    (void)state;
    static const char *streams[] = {
        "data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n",
        "data: {\"a\":1}\r\n\r\ndata: {\"b\":2}\r\n\r\ndata: [DONE]\r\n\r\n",
        "data: {\"a\":1}\r\rdata: {\"b\":2}\r\rdata: [DONE]\r\r",
    };
    for (size_t i = 0; i < 3; i++) {
        for (size_t step = 1; step <= strlen(streams[i]); step++) {
            seen s;
            run_split(streams[i], step, &s);
            assert_int_equal(s.events, 3);
            assert_string_equal(s.data.p, "{\"a\":1}|{\"b\":2}|[DONE]|");
            assert_string_equal(s.raw.p, streams[i]); /* forwarded byte for byte */
            release(&s);
        }
    }
}

static void test_fields(void **state)
{
    (void)state;
    seen s;
    run_split(": keep-alive\n\nevent: x\nid: 7\ndata:first\ndata: second\ndata-x: no\n\n", 5, &s);
    assert_int_equal(s.events, 2);
    assert_string_equal(s.data.p, "|first\nsecond|");
    release(&s);
}

static int stop_at_second(void *ud, tg_str raw, tg_str data)
{
    (void)raw;
    (void)data;
    return ++*(int *)ud == 2 ? 42 : 0;
}

static void test_stop_and_cap(void **state)
{
    (void)state;
    tg_sse sse;
    int count = 0;
    tg_sse_init(&sse, 16);
    static const char two[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    assert_int_equal(tg_sse_feed(&sse, two, sizeof two - 1, stop_at_second, &count), 42);
    tg_sse_release(&sse);

    tg_sse_init(&sse, 16);
    static const char big[] = "data: 0123456789012345678901234567890123456789";
    assert_int_equal(tg_sse_feed(&sse, big, sizeof big - 1, stop_at_second, &count), TG_ETOOBIG);
    tg_sse_release(&sse);

    /* A partial event is kept and reported as pending (a cut stream). */
    tg_sse_init(&sse, 1024);
    assert_int_equal(tg_sse_feed(&sse, "data: {\"a\"", 10, stop_at_second, &count), 0);
    assert_int_equal(tg_sse_pending(&sse), 10);
    tg_sse_release(&sse);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_stop_and_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
