/* libFuzzer target: stream translation (route/adapters/xstream.c) both
 * ways on arbitrary upstream events.
 *
 * Input: a flags byte (bit 0: the client asked for usage; bit 1: a stream
 * still open at the end is cut at a plan's limit rather than failed), then
 * one upstream event's data per line. Every line goes to both translators,
 * as the relay would feed them, until one refuses; the stream is then
 * ended the way the gateway ends it (an error event, or the cut, or the
 * last event). Checks: a refused event appends nothing; the client's
 * stream splits into whole events, every data line is valid JSON (or
 * OpenAI's [DONE]), nothing follows the end of the stream, and toward
 * Anthropic clients each event's `event:` line names its type and content
 * blocks open and close in index order, one at a time. */
#include "http/sse.h"
#include "route/adapters/xstream.h"

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct {
    tg_xs_dir dir;
    bool over;          /* [DONE], message_stop or an error was seen */
    int64_t next, open; /* Anthropic clients: the next block index, the open one (-1: none) */
} reader;

static bool type_is(tg_json_val ev, const char *t)
{
    tg_str s;
    return tg_json_str_view(tg_json_get(ev, TG_STR("type")), &s) && tg_str_eq(s, tg_str_c(t));
}

static int64_t index_of(tg_json_val ev)
{
    int64_t i = -2;
    tg_json_int(tg_json_get(ev, TG_STR("index")), &i);
    return i;
}

/* Blocks toward an Anthropic client: one open at a time, in index order. */
static void check_anthropic(reader *r, tg_str raw, tg_json_val ev)
{
    tg_str type;
    CHECK(tg_json_str_view(tg_json_get(ev, TG_STR("type")), &type));
    CHECK(raw.n > 8 + type.n && !memcmp(raw.p, "event: ", 7) && !memcmp(raw.p + 7, type.p, type.n));
    if (type_is(ev, "content_block_start")) {
        CHECK(r->open == -1 && index_of(ev) == r->next);
        r->open = r->next++;
    } else if (type_is(ev, "content_block_delta")) {
        CHECK(r->open >= 0 && index_of(ev) == r->open);
    } else if (type_is(ev, "content_block_stop")) {
        CHECK(r->open >= 0 && index_of(ev) == r->open);
        r->open = -1;
    } else if (type_is(ev, "message_delta")) {
        CHECK(r->open == -1);
    }
    r->over |= type_is(ev, "message_stop") || type_is(ev, "error");
}

static int on_client_event(void *ud, tg_str raw, tg_str data)
{
    reader *r = ud;
    if (data.n == 0) return 0; /* the charge comment */
    CHECK(!r->over);
    if (r->dir == TG_XS_ANTHROPIC_TO_OPENAI && tg_str_eq(data, TG_STR("[DONE]"))) {
        r->over = true;
        return 0;
    }
    CHECK(tg_json_validate(data.p, data.n, 0, NULL, NULL) == TG_OK);
    tg_json_val ev = tg_json_root(data.p, data.n);
    CHECK(ev.type == TG_JSON_OBJECT);
    if (r->dir == TG_XS_OPENAI_TO_ANTHROPIC)
        check_anthropic(r, raw, ev);
    else
        r->over |= tg_json_get(ev, TG_STR("error")).type != TG_JSON_NONE;
    return 0;
}

/* Ends the client's stream as the gateway would. */
static void end_stream(tg_xstream *xs, bool cut, tg_buf *out)
{
    if (tg_xstream_phase(xs) == TG_XS_OPEN && cut) tg_xstream_cut(xs, TG_STR("limit"), out);
    if (tg_xstream_phase(xs) == TG_XS_ENDED && tg_xstream_finish(xs, out) == TG_OK) return;
    if (tg_xstream_phase(xs) != TG_XS_FINISHED && tg_xstream_phase(xs) != TG_XS_FAILED)
        CHECK(tg_xstream_error(xs, "upstream_error", "upstream_malformed",
                               tg_str_c(tg_xstream_why(xs)), out) == TG_OK);
}

static void run(tg_xs_dir dir, uint8_t flags, const char *p, size_t n)
{
    tg_xstream xs;
    tg_buf out;
    tg_buf_init(&out, 1 << 24);
    CHECK(tg_xstream_init(&xs, dir, TG_STR("model \"x\""), TG_STR("id-1"), flags & 1, 1, 5) ==
          TG_OK);
    for (size_t off = 0; off <= n && tg_xstream_phase(&xs) == TG_XS_OPEN;) {
        const char *nl = memchr(p + off, '\n', n - off);
        size_t len = nl ? (size_t)(nl - (p + off)) : n - off, n0 = out.n;
        int rc = tg_xstream_event(&xs, tg_str_make(p + off, len), &out);
        if (rc) {
            CHECK(out.n == n0 && tg_xstream_why(&xs)[0]);
            break;
        }
        if (tg_xstream_phase(&xs) == TG_XS_ENDED)
            CHECK(tg_buf_add_lit(&out, ": charge\n\n") == TG_OK);
        off += len + 1;
    }
    end_stream(&xs, flags & 2, &out);
    const tg_usage *u = tg_xstream_usage(&xs);
    CHECK(u->prompt >= 0 && u->completion >= 0 && u->cached >= 0);
    tg_sse sse;
    reader r = {dir, false, 0, -1};
    tg_sse_init(&sse, 1 << 24);
    CHECK(tg_sse_feed(&sse, out.p, out.n, on_client_event, &r) == TG_OK);
    CHECK(tg_sse_pending(&sse) == 0 && r.over);
    tg_sse_release(&sse);
    tg_xstream_release(&xs);
    tg_buf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    run(TG_XS_ANTHROPIC_TO_OPENAI, data[0], (const char *)data + 1, size - 1);
    run(TG_XS_OPENAI_TO_ANTHROPIC, data[0], (const char *)data + 1, size - 1);
    return 0;
}
