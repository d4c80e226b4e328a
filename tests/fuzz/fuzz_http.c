/* libFuzzer target: the request parser (http/parse.c) on arbitrary bytes,
 * fed in pieces whose sizes come from the input itself, as a connection
 * would feed it. Checks: it never reads out of bounds, every view it fills
 * lies inside its own buffers, consumption never exceeds what was fed, and
 * limits hold (the body never passes its cap). */
#include "http/parse.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>

static bool inside(tg_str s, const tg_buf *b)
{
    return s.n == 0 || (b->p && s.p >= b->p && s.p + s.n <= b->p + b->n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t step = (size_t)data[0] % 37 + 1; /* the read size of this run */
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    tg_http_in in;
    tg_req r;
    tg_http_in_init(&in, 2048, 4096);
    size_t off = 0;
    while (off < n) {
        size_t len = n - off < step ? n - off : step, used;
        tg_in_event ev = tg_http_in_feed(&in, p + off, len, &used);
        assert(used <= len);
        off += used;
        if (ev == TG_IN_ERROR) {
            assert(in.status == 400 || in.status == 413 || in.status == 431 || in.status == 505);
            break;
        }
        if (ev == TG_IN_HEAD || ev == TG_IN_MESSAGE) {
            memset(&r, 0, sizeof r);
            tg_http_in_fill(&in, &r);
            assert(r.nheaders <= TG_MAX_REQ_HEADERS);
            assert(inside(r.path, &in.hdrs.bytes) && inside(r.query, &in.hdrs.bytes));
            for (size_t i = 0; i < r.nheaders; i++)
                assert(inside(r.headers[i].name, &in.hdrs.bytes) && inside(r.headers[i].value, &in.hdrs.bytes));
            assert(r.body.n <= 4096);
            if (ev == TG_IN_MESSAGE) tg_http_in_next(&in);
        } else if (ev == TG_IN_MORE && used == 0) {
            break;
        }
    }
    tg_http_in_release(&in);
    return 0;
}
