/* The built-in HTTP/1.1 upstream client; see h1.h.
 *
 * A call takes an idle keep-alive connection to its origin or opens one,
 * writes the request (uv_try_write first: usually one writev, no copy) and
 * parses the answer with http_parser as it arrives. Idle connections keep
 * reading, so one the upstream closes is noticed and dropped; a call whose
 * reused connection breaks before any answer byte is retried once on a
 * fresh connection, as a request on a stale keep-alive connection never
 * reached the upstream.
 *
 * Invariants: a call is attached to at most one connection and a busy
 * connection to exactly one call; callbacks never run inside tg_h1_start;
 * after on_done or a cancel the call is recycled and no callback follows.
 * A pause (on_body returning 1) holds the decoded body bytes that the same
 * parse produced, and the read side stops, until tg_h1_resume. */
#include "http/h1.h"
#include "http/parse.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#define H1_IDLE_MAX 256        /* idle connections kept per worker */
#define H1_SPARE_MAX 128       /* recycled calls kept per worker */
#define H1_HEAD_MAX (64 * 1024)
#define H1_REQ_MAX (1024 * 1024)
#define H1_HOLD_MAX (64 * 1024 * 1024)

typedef struct h1conn h1conn;

struct tg_h1call {
    int kind; /* TG_UPCALL_H1, first: see h1.h */
    tg_h1 *h;
    h1conn *conn;
    tg_h1call *prev, *next; /* busy list; next also links the spares */
    tg_upcall_cbs cbs;
    void *ud;
    uv_timer_t timer;
    uint64_t connect_at, first_byte_at, total_at; /* loop ms; 0: none */
    uint32_t connect_ms, first_byte_ms, total_ms;
    struct sockaddr_storage addr;
    char origin[80];
    tg_buf req; /* request line and headers */
    tg_str body;
    tg_hdrs head; /* the answer's header names and values */
    tg_header hdrs[TG_MAX_HDR_SPANS];
    tg_buf hold; /* decoded body bytes held by a pause */
    uint64_t rx; /* answer bytes received */
    tg_up_result deferred; /* a failure found inside tg_h1_start, reported by the timer */
    bool connecting, interim, paused, complete, in_feed, cancelled, retried;
    char msg[160];
};

struct h1conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    tg_h1 *h;
    h1conn *prev, *next; /* idle list */
    tg_h1call *call;
    http_parser parser;
    tg_buf wbuf;    /* what the kernel did not take at once */
    tg_buf pending; /* read while paused, not parsed yet */
    char origin[80];
    bool idle, reused, closing, writing, spent; /* spent: not reusable */
};

struct tg_h1 {
    uv_loop_t *loop;
    h1conn *idle;
    size_t nidle;
    tg_h1call *busy, *spare;
    size_t nspare;
    size_t handles; /* open uv handles: the memory waits for 0 */
    bool freeing;
    char rbuf[65536];
};

static const http_parser_settings settings;
static void conn_send(tg_h1call *c);
static void conn_open(tg_h1call *c);
static void on_alloc(uv_handle_t *t, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ---- memory ---- */

static void handle_gone(tg_h1 *h)
{
    if (--h->handles == 0 && h->freeing) free(h);
}

static void call_closed(uv_handle_t *t)
{
    tg_h1call *c = t->data;
    tg_h1 *h = c->h;
    tg_buf_release(&c->req);
    tg_hdrs_release(&c->head);
    tg_buf_release(&c->hold);
    free(c);
    handle_gone(h);
}

static void conn_closed(uv_handle_t *t)
{
    h1conn *k = t->data;
    tg_h1 *h = k->h;
    tg_buf_release(&k->wbuf);
    tg_buf_release(&k->pending);
    free(k);
    handle_gone(h);
}

static void idle_unlink(h1conn *k)
{
    if (!k->idle) return;
    if (k->prev) k->prev->next = k->next;
    else k->h->idle = k->next;
    if (k->next) k->next->prev = k->prev;
    k->prev = k->next = NULL;
    k->idle = false;
    k->h->nidle--;
}

static void conn_close(h1conn *k)
{
    if (k->closing) return;
    k->closing = true;
    idle_unlink(k);
    if (k->call) k->call->conn = NULL;
    k->call = NULL;
    uv_close((uv_handle_t *)&k->tcp, conn_closed);
}

static void busy_unlink(tg_h1call *c)
{
    tg_h1 *h = c->h;
    if (c->prev) c->prev->next = c->next;
    else h->busy = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* The call is over: back to the spares (or freed). */
static void call_recycle(tg_h1call *c)
{
    tg_h1 *h = c->h;
    uv_timer_stop(&c->timer);
    busy_unlink(c);
    if (c->conn) conn_close(c->conn);
    if (h->freeing || h->nspare >= H1_SPARE_MAX) {
        uv_close((uv_handle_t *)&c->timer, call_closed);
        return;
    }
    c->next = h->spare;
    h->spare = c;
    h->nspare++;
}

static tg_h1call *call_take(tg_h1 *h)
{
    tg_h1call *c = h->spare;
    if (c) {
        h->spare = c->next;
        h->nspare--;
    } else {
        if (!(c = calloc(1, sizeof *c))) return NULL;
        c->kind = TG_UPCALL_H1;
        c->h = h;
        tg_buf_init(&c->req, H1_REQ_MAX);
        tg_hdrs_init(&c->head, H1_HEAD_MAX, TG_MAX_HDR_SPANS);
        tg_buf_init(&c->hold, H1_HOLD_MAX);
        uv_timer_init(h->loop, &c->timer);
        c->timer.data = c;
        h->handles++;
    }
    tg_buf_clear(&c->req);
    tg_buf_clear(&c->hold);
    c->conn = NULL;
    c->rx = 0;
    c->deferred = TG_UP_OK;
    c->connecting = c->paused = c->complete = c->in_feed = c->cancelled = c->retried = false;
    c->next = h->busy;
    c->prev = NULL;
    if (h->busy) h->busy->prev = c;
    h->busy = c;
    return c;
}

/* ---- ending a call ---- */

static void call_end(tg_h1call *c, tg_up_result r, const char *detail)
{
    if (c->conn) conn_close(c->conn);
    uv_timer_stop(&c->timer);
    c->cancelled = true; /* nothing more reaches the caller */
    c->cbs.on_done(c->ud, r, detail);
    if (!c->in_feed) call_recycle(c);
}

/* A whole answer: the connection goes back to the pool if it can. */
static void call_complete(tg_h1call *c)
{
    h1conn *k = c->conn;
    tg_h1 *h = c->h;
    if (k && http_should_keep_alive(&k->parser) && !k->spent && !k->pending.n && !k->writing &&
        h->nidle < H1_IDLE_MAX && !h->freeing) {
        k->call = NULL;
        c->conn = NULL;
        k->idle = true;
        k->next = h->idle;
        k->prev = NULL;
        if (h->idle) h->idle->prev = k;
        h->idle = k;
        h->nidle++;
        /* Idle, it reads on, to notice the upstream closing it. */
        uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
    }
    call_end(c, TG_UP_OK, "");
}

/* The connection broke: a stale reused one is retried once, fresh. */
static void conn_broke(tg_h1call *c, const char *why)
{
    h1conn *k = c->conn;
    if (k && k->reused && c->rx == 0 && !c->retried && !c->in_feed) {
        c->retried = true;
        conn_close(k);
        conn_open(c);
        return;
    }
    snprintf(c->msg, sizeof c->msg, "the upstream connection broke: %s", why);
    call_end(c, TG_UP_RESET, c->msg);
}

static void on_timeout(uv_timer_t *t)
{
    tg_h1call *c = t->data;
    uint64_t now = uv_now(c->h->loop);
    if (c->deferred) {
        call_end(c, c->deferred, c->msg);
    } else if (c->connecting && c->connect_at && now >= c->connect_at) {
        snprintf(c->msg, sizeof c->msg, "no connection to the upstream within %u ms", c->connect_ms);
        call_end(c, TG_UP_TIMEOUT_CONNECT, c->msg);
    } else if (!c->rx && c->first_byte_at && now >= c->first_byte_at) {
        snprintf(c->msg, sizeof c->msg, "no response byte from the upstream within %u ms",
                 c->first_byte_ms);
        call_end(c, TG_UP_TIMEOUT_FIRST_BYTE, c->msg);
    } else {
        snprintf(c->msg, sizeof c->msg, "the upstream did not finish within %u ms", c->total_ms);
        call_end(c, TG_UP_TIMEOUT_TOTAL, c->msg);
    }
}

/* Arms the timer at the nearest deadline still in force. */
static void timer_arm(tg_h1call *c)
{
    uint64_t d = c->total_at;
    if (!c->rx && c->first_byte_at && (!d || c->first_byte_at < d)) d = c->first_byte_at;
    if (c->connecting && c->connect_at && (!d || c->connect_at < d)) d = c->connect_at;
    if (!d) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = uv_now(c->h->loop);
    uv_timer_start(&c->timer, on_timeout, d > now ? d - now : 0, 0);
}

/* ---- the answer ---- */

static tg_h1call *call_of(http_parser *p) { return ((h1conn *)p->data)->call; }

static int on_begin(http_parser *p)
{
    tg_hdrs_clear(&call_of(p)->head);
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t n)
{
    return tg_hdrs_field(&call_of(p)->head, at, n) ? -1 : 0;
}

static int on_value(http_parser *p, const char *at, size_t n)
{
    return tg_hdrs_value(&call_of(p)->head, at, n) ? -1 : 0;
}

static int on_head_done(http_parser *p)
{
    tg_h1call *c = call_of(p);
    if (p->status_code < 100 || p->status_code > 599) return -1; /* not HTTP: malformed */
    c->interim = p->status_code < 200;
    if (c->interim) return 0;
    tg_hdrs_views(&c->head, c->hdrs);
    c->cbs.on_head(c->ud, p->status_code, c->hdrs, c->head.n);
    if (c->cancelled) http_parser_pause(p, 1);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    tg_h1call *c = call_of(p);
    if (c->cancelled || c->interim) return 0; /* a 1xx has no body for the caller */
    if (c->paused) return tg_buf_append(&c->hold, at, n) ? -1 : 0;
    int rc = c->cbs.on_body(c->ud, at, n);
    if (rc < 0) {
        snprintf(c->msg, sizeof c->msg, "the caller refused more of the upstream's answer");
        call_end(c, TG_UP_TOO_BIG, c->msg);
        http_parser_pause(p, 1);
    } else if (rc == 1) {
        c->paused = true;
    }
    return 0;
}

static int on_complete(http_parser *p)
{
    tg_h1call *c = call_of(p);
    if (c->interim) {
        c->interim = false;
        return 0;
    }
    c->complete = true;
    http_parser_pause(p, 1); /* bytes after the answer are not ours */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_begin,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_head_done,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

/* Delivers held body bytes; false when the call paused again or ended. */
static bool deliver_held(tg_h1call *c)
{
    while (c->hold.n && !c->paused && !c->cancelled) {
        size_t n = c->hold.n;
        int rc = c->cbs.on_body(c->ud, c->hold.p, n);
        tg_buf_consume(&c->hold, n);
        if (rc < 0 && !c->cancelled) {
            snprintf(c->msg, sizeof c->msg, "the caller refused more of the upstream's answer");
            call_end(c, TG_UP_TOO_BIG, c->msg);
        } else if (rc == 1) {
            c->paused = true;
        }
    }
    return !c->paused && !c->cancelled;
}

/* Parses answer bytes (n 0: the upstream closed its side). */
static void feed(tg_h1call *c, const char *p, size_t n)
{
    h1conn *k = c->conn;
    bool first = c->rx == 0 && n > 0;
    c->rx += n;
    if (first) timer_arm(c);
    c->in_feed = true;
    size_t used = http_parser_execute(&k->parser, &settings, p, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&k->parser);
    c->in_feed = false;
    if (c->cancelled) {
        call_recycle(c);
        return;
    }
    if (n == 0 && !c->complete) { /* EOF: http_parser calls a short body an error */
        conn_broke(c, "closed before the answer was complete");
        return;
    }
    if (e == HPE_PAUSED) http_parser_pause(&k->parser, 0);
    else if (e != HPE_OK) {
        snprintf(c->msg, sizeof c->msg, "malformed HTTP answer from the upstream: %s",
                 http_errno_description(e));
        call_end(c, TG_UP_OTHER, c->msg);
        return;
    }
    if (used < n) k->spent = true; /* bytes after the answer: not reusable */
    if (c->paused) {
        uv_read_stop((uv_stream_t *)&k->tcp);
        return;
    }
    if (c->complete) call_complete(c);
}

static void on_alloc(uv_handle_t *t, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    h1conn *k = t->data;
    buf->base = k->h->rbuf;
    buf->len = sizeof k->h->rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    h1conn *k = s->data;
    tg_h1call *c = k->call;
    if (!c) { /* idle: the upstream closed it, or sent what nobody asked for */
        if (nread != 0) conn_close(k);
        return;
    }
    if (nread == 0) return; /* libuv's EAGAIN, not an end */
    if (nread == UV_EOF) {
        feed(c, NULL, 0);
        return;
    }
    if (nread < 0) {
        conn_broke(c, uv_strerror((int)nread));
        return;
    }
    if (c->paused) {
        if (tg_buf_append(&k->pending, buf->base, (size_t)nread)) conn_broke(c, "too much held");
        else uv_read_stop(s);
        return;
    }
    feed(c, buf->base, (size_t)nread);
}

/* ---- the request ---- */

static void on_write(uv_write_t *w, int status)
{
    h1conn *k = w->data;
    k->writing = false;
    tg_buf_clear(&k->wbuf);
    if (status < 0 && k->call && !k->closing) conn_broke(k->call, uv_strerror(status));
}

static void conn_send(tg_h1call *c)
{
    h1conn *k = c->conn;
    http_parser_init(&k->parser, HTTP_RESPONSE);
    k->parser.data = k;
    uv_buf_t bufs[2] = {uv_buf_init(c->req.p, (unsigned)c->req.n),
                        uv_buf_init((char *)c->body.p, (unsigned)c->body.n)};
    size_t total = c->req.n + c->body.n;
    int n = uv_try_write((uv_stream_t *)&k->tcp, bufs, c->body.n ? 2 : 1);
    if (n < 0 && n != UV_EAGAIN) {
        conn_broke(c, uv_strerror(n));
        return;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    if (done == total) return;
    /* The rest is copied: the connection may outlive a cancelled call. */
    int rc = 0;
    if (done < c->req.n) rc = tg_buf_append(&k->wbuf, c->req.p + done, c->req.n - done);
    size_t bdone = done > c->req.n ? done - c->req.n : 0;
    if (!rc) rc = tg_buf_append(&k->wbuf, c->body.p + bdone, c->body.n - bdone);
    uv_buf_t rest = uv_buf_init(k->wbuf.p, (unsigned)k->wbuf.n);
    if (rc || uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &rest, 1, on_write)) {
        conn_broke(c, "the request could not be queued");
        return;
    }
    k->writing = true;
}

static void on_connect(uv_connect_t *req, int status)
{
    h1conn *k = req->data;
    tg_h1call *c = k->call;
    if (!c || k->closing) return; /* cancelled meanwhile */
    c->connecting = false;
    if (status < 0) {
        snprintf(c->msg, sizeof c->msg, "cannot connect to %s: %s", k->origin, uv_strerror(status));
        call_end(c, TG_UP_CONNECT, c->msg);
        return;
    }
    uv_tcp_nodelay(&k->tcp, 1);
    uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
    timer_arm(c);
    conn_send(c);
}

/* Reports a failure from the loop: this may run inside tg_h1_start. */
static void defer_failure(tg_h1call *c, tg_up_result r, const char *why)
{
    snprintf(c->msg, sizeof c->msg, "cannot connect to %s: %s", c->origin, why);
    c->deferred = r;
    uv_timer_start(&c->timer, on_timeout, 0, 0);
}

/* A fresh connection for c. */
static void conn_open(tg_h1call *c)
{
    tg_h1 *h = c->h;
    h1conn *k = calloc(1, sizeof *k);
    if (!k) {
        defer_failure(c, TG_UP_OTHER, "out of memory");
        return;
    }
    k->h = h;
    k->call = c;
    c->conn = k;
    memcpy(k->origin, c->origin, sizeof k->origin);
    tg_buf_init(&k->wbuf, (size_t)H1_REQ_MAX + 8 * 1024 * 1024);
    tg_buf_init(&k->pending, 256 * 1024);
    uv_tcp_init(h->loop, &k->tcp);
    h->handles++;
    k->tcp.data = k->creq.data = k->wreq.data = k;
    c->connecting = true;
    timer_arm(c);
    int rc = uv_tcp_connect(&k->creq, &k->tcp, (struct sockaddr *)&c->addr, on_connect);
    if (rc) {
        conn_close(k);
        defer_failure(c, TG_UP_CONNECT, uv_strerror(rc));
    }
}

/* "http://HOST[:PORT]/path": the address, origin and path, when HOST is
 * an IP address or localhost. */
static bool parse_url(tg_str url, struct sockaddr_storage *sa, char *origin, size_t on, tg_str *path)
{
    if (url.n < 8 || !tg_str_ieq(tg_str_make(url.p, 7), TG_STR("http://"))) return false;
    const char *p = url.p + 7, *end = url.p + url.n;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *hend = slash ? slash : end;
    char host[64];
    const char *hp = p, *colon = NULL;
    if (*hp == '[') {
        const char *rb = memchr(hp, ']', (size_t)(hend - hp));
        if (!rb) return false;
        colon = rb + 1 < hend && rb[1] == ':' ? rb + 1 : NULL;
        if ((size_t)(rb - hp - 1) >= sizeof host) return false;
        memcpy(host, hp + 1, (size_t)(rb - hp - 1));
        host[rb - hp - 1] = '\0';
    } else {
        colon = memchr(hp, ':', (size_t)(hend - hp));
        const char *he = colon ? colon : hend;
        if ((size_t)(he - hp) >= sizeof host || he == hp) return false;
        memcpy(host, hp, (size_t)(he - hp));
        host[he - hp] = '\0';
    }
    uint64_t port = 80;
    if (colon && tg_str_to_u64(tg_str_make(colon + 1, (size_t)(hend - colon - 1)), &port)) return false;
    if (port == 0 || port > 65535) return false;
    if (!strcmp(host, "localhost")) strcpy(host, "127.0.0.1");
    memset(sa, 0, sizeof *sa);
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)sa) &&
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)sa))
        return false;
    snprintf(origin, on, "%.*s", (int)(hend - p), p);
    *path = slash ? tg_str_make(slash, (size_t)(end - slash)) : TG_STR("/");
    return true;
}

bool tg_h1_serves(tg_str url)
{
    struct sockaddr_storage sa;
    char origin[80];
    tg_str path;
    return url.n < 512 && parse_url(url, &sa, origin, sizeof origin, &path);
}

static bool sendable(tg_str s, bool name)
{
    for (size_t i = 0; i < s.n; i++) {
        char ch = s.p[i];
        if (ch == '\r' || ch == '\n' || ch == '\0' || (name && (ch == ' ' || ch == ':'))) return false;
    }
    return true;
}

static int build_request(tg_h1call *c, const tg_upcall_opts *o, tg_str path)
{
    tg_buf *b = &c->req;
    if (!sendable(o->method, true) || !sendable(path, true) || !o->method.n) return TG_EINVAL;
    int rc = tg_buf_add_str(b, o->method);
    if (!rc) rc = tg_buf_add_char(b, ' ');
    if (!rc) rc = tg_buf_add_str(b, path);
    if (!rc) rc = tg_buf_add_lit(b, " HTTP/1.1\r\nHost: ");
    if (!rc) rc = tg_buf_add_str(b, tg_str_c(c->origin));
    if (!rc) rc = tg_buf_add_lit(b, "\r\nContent-Length: ");
    if (!rc) rc = tg_buf_add_u64(b, o->body.n);
    if (!rc) rc = tg_buf_add_lit(b, "\r\n");
    for (size_t i = 0; !rc && i < o->nheaders; i++) {
        const tg_header *hd = &o->headers[i];
        if (!hd->name.n || !sendable(hd->name, true) || !sendable(hd->value, false)) return TG_EINVAL;
        rc = tg_buf_add_str(b, hd->name);
        if (!rc) rc = tg_buf_add_lit(b, ": ");
        if (!rc) rc = tg_buf_add_str(b, hd->value);
        if (!rc) rc = tg_buf_add_lit(b, "\r\n");
    }
    if (!rc) rc = tg_buf_add_lit(b, "\r\n");
    return rc;
}

/* ---- the contract ---- */

tg_h1call *tg_h1_start(tg_h1 *h, const tg_upcall_opts *o, const tg_upcall_cbs *cbs, void *ud)
{
    if (h->freeing) return NULL;
    tg_h1call *c = call_take(h);
    if (!c) return NULL;
    tg_str path;
    if (!parse_url(o->url, &c->addr, c->origin, sizeof c->origin, &path) ||
        build_request(c, o, path)) {
        call_recycle(c);
        return NULL;
    }
    c->cbs = *cbs;
    c->ud = ud;
    c->body = o->body;
    uint64_t now = uv_now(h->loop);
    c->connect_ms = o->connect_timeout_ms;
    c->first_byte_ms = o->first_byte_timeout_ms;
    c->total_ms = o->total_timeout_ms;
    c->connect_at = o->connect_timeout_ms ? now + o->connect_timeout_ms : 0;
    c->first_byte_at = o->first_byte_timeout_ms ? now + o->first_byte_timeout_ms : 0;
    c->total_at = o->total_timeout_ms ? now + o->total_timeout_ms : 0;
    for (h1conn *k = h->idle; k; k = k->next) {
        if (strcmp(k->origin, c->origin)) continue;
        idle_unlink(k);
        k->call = c;
        k->reused = true;
        c->conn = k;
        timer_arm(c);
        conn_send(c); /* a stale connection is retried inside, quietly */
        return c;
    }
    conn_open(c);
    return c;
}

void tg_h1_cancel(tg_h1call *c)
{
    if (!c || c->cancelled) return;
    c->cancelled = true;
    if (!c->in_feed) call_recycle(c);
}

void tg_h1_resume(tg_h1call *c)
{
    if (!c || c->cancelled || !c->paused) return;
    c->paused = false;
    if (c->in_feed) return; /* the running feed delivers what is held */
    c->in_feed = true;
    bool go = deliver_held(c);
    c->in_feed = false;
    if (c->cancelled) {
        call_recycle(c);
        return;
    }
    if (!go) return;
    if (c->complete) {
        call_complete(c);
        return;
    }
    h1conn *k = c->conn;
    if (k && k->pending.n) {
        tg_buf rest = k->pending;
        tg_buf_init(&k->pending, rest.max);
        feed(c, rest.p, rest.n);
        tg_buf_release(&rest);
        if (c->cancelled || c->paused || !c->conn) return;
    }
    if (c->conn) uv_read_start((uv_stream_t *)&c->conn->tcp, on_alloc, on_read);
}

tg_h1 *tg_h1_new(uv_loop_t *loop)
{
    tg_h1 *h = calloc(1, sizeof *h);
    if (h) h->loop = loop;
    return h;
}

void tg_h1_free(tg_h1 *h)
{
    if (!h) return;
    h->freeing = true;
    h->handles++; /* hold the memory until the end of this function */
    for (tg_h1call *c = h->busy, *next; c; c = next) {
        next = c->next;
        c->cancelled = true;
        if (!c->in_feed) call_recycle(c); /* else its feed does, on the way out */
    }
    while (h->idle) conn_close(h->idle);
    while (h->spare) {
        tg_h1call *c = h->spare;
        h->spare = c->next;
        uv_close((uv_handle_t *)&c->timer, call_closed);
    }
    h->nspare = 0;
    handle_gone(h);
}
