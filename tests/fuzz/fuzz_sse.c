/* libFuzzer target: the SSE splitter (http/sse.c) on arbitrary upstream
 * bytes, fed in pieces. Checks: the raw bytes of all events plus what is
 * still pending are exactly the input (nothing lost, nothing invented),
 * and no payload is longer than its event. */
#include "http/sse.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    tg_buf all;
} acc;

static int on_event(void *ud, tg_str raw, tg_str data)
{
    acc *a = ud;
    assert(data.n <= raw.n);
    tg_buf_add_str(&a->all, raw);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    tg_sse s;
    acc a;
    tg_sse_init(&s, 1 << 20);
    tg_buf_init(&a.all, 1 << 21);
    for (size_t off = 0; off < n; off += step) {
        size_t len = n - off < step ? n - off : step;
        int rc = tg_sse_feed(&s, p + off, len, on_event, &a);
        assert(rc == 0);
    }
    assert(a.all.n + tg_sse_pending(&s) == n);
    assert(a.all.n == 0 || memcmp(a.all.p, p, a.all.n) == 0);
    assert(tg_sse_pending(&s) == 0 || memcmp(s.partial.p, p + a.all.n, s.partial.n) == 0);
    tg_buf_release(&a.all);
    tg_sse_release(&s);
    return 0;
}
