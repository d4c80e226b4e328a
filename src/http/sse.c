/* Incremental SSE event splitting; see sse.h. */
#include "http/sse.h"
#include "base/err.h"

#include <string.h>

void tg_sse_init(tg_sse *s, size_t max_event)
{
    tg_buf_init(&s->partial, max_event);
    tg_buf_init(&s->data, max_event);
}

void tg_sse_release(tg_sse *s)
{
    tg_buf_release(&s->partial);
    tg_buf_release(&s->data);
}

/* Length of the event at p (through its blank line), or 0 if it has not
 * ended within n bytes. */
static size_t event_end(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] == '\n') {
            if (p[i + 1] == '\n') return i + 2;
            if (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n') return i + 3;
        } else if (p[i] == '\r') {
            if (p[i + 1] == '\r') return i + 2;
            if (p[i + 1] == '\n' && i + 3 < n && p[i + 2] == '\r' && p[i + 3] == '\n')
                return i + 4;
        }
    }
    return 0;
}

/* The data payload of one event; a view when it has one data line. */
static int event_data(tg_sse *s, tg_str ev, tg_str *out)
{
    tg_str first = TG_STR_NULL;
    int lines = 0, rc = TG_OK;
    tg_buf_clear(&s->data);
    const char *p = ev.p, *end = ev.p + ev.n;
    while (p < end) {
        const char *eol = p;
        while (eol < end && *eol != '\n' && *eol != '\r') eol++;
        tg_str line = tg_str_make(p, (size_t)(eol - p));
        p = eol < end && *eol == '\r' && eol + 1 < end && eol[1] == '\n' ? eol + 2 : eol + 1;
        if (!tg_str_has_prefix(line, TG_STR("data"))) continue;
        tg_str v = tg_str_make(line.p + 4, line.n - 4);
        if (v.n && v.p[0] != ':') continue; /* a field named data-something */
        if (v.n) v.p++, v.n--;
        if (v.n && v.p[0] == ' ') v.p++, v.n--;
        if (++lines == 1) {
            first = v;
            continue;
        }
        if (lines == 2) rc = tg_buf_add_str(&s->data, first);
        if (!rc) rc = tg_buf_add_char(&s->data, '\n');
        if (!rc) rc = tg_buf_add_str(&s->data, v);
        if (rc) return rc;
    }
    *out = lines > 1 ? tg_buf_str(&s->data) : (lines ? first : TG_STR(""));
    return TG_OK;
}

static int emit(tg_sse *s, tg_str ev, tg_sse_event_fn cb, void *ud)
{
    tg_str data;
    int rc = event_data(s, ev, &data);
    return rc ? rc : cb(ud, ev, data);
}

int tg_sse_feed(tg_sse *s, const char *p, size_t n, tg_sse_event_fn cb, void *ud)
{
    int rc;
    if (s->partial.n) {
        /* The pending event ends at the first blank line of partial + p; it
         * may straddle the boundary, so look at the joint first. */
        size_t tail = s->partial.n < 3 ? s->partial.n : 3, head = n < 3 ? n : 3;
        char win[6];
        memcpy(win, s->partial.p + s->partial.n - tail, tail);
        memcpy(win + tail, p, head);
        size_t used = event_end(win, tail + head);
        used = used > tail ? used - tail : event_end(p, n);
        if (!used) return tg_buf_append(&s->partial, p, n);
        rc = tg_buf_append(&s->partial, p, used);
        if (!rc) rc = emit(s, tg_buf_str(&s->partial), cb, ud);
        tg_buf_clear(&s->partial);
        if (rc) return rc;
        p += used;
        n -= used;
    }
    while (n) {
        size_t len = event_end(p, n);
        if (!len) return tg_buf_append(&s->partial, p, n);
        rc = emit(s, tg_str_make(p, len), cb, ud);
        if (rc) return rc;
        p += len;
        n -= len;
    }
    return TG_OK;
}
