/* Connections: reading, the request deadlines, and handing requests over.
 *
 * Bytes read are appended to c->rx and parsed from there (parse.c, which
 * keeps the size limits). When a message completes the handler owns
 * c->req; bytes that arrive meanwhile (pipelined requests) wait in c->rx,
 * and reading stops while more than RX_HIGH_WATER bytes wait. Reading goes on during the handler so that a
 * client that disconnects is noticed and its upstream work cancelled.
 *
 * One timer per connection serves three deadlines: the head must arrive
 * within header_timeout_ms of its first byte (slow-loris), the body within
 * request_timeout_ms of the head, and an idle keep-alive connection is
 * closed after idle_timeout_ms. */
#include "http/conn.h"
#include "base/log.h"

#include <stdlib.h>

#define RX_HIGH_WATER (256 * 1024)
#define RX_MAX (RX_HIGH_WATER + 65536)

static void conn_process(tg_conn *c);

static void on_handle_closed(uv_handle_t *h)
{
    tg_conn *c = h->data;
    if (--c->handles_open) return;
    tg_worker *w = c->w;
    tg_arena_release(&c->req.arena);
    tg_buf_release(&c->rx);
    tg_http_in_release(&c->in);
    free(c);
    tg_worker_conn_gone(w);
}

void tg_conn_close(tg_conn *c)
{
    if (c->state == TG_CONN_CLOSING) return;
    bool owned = c->state == TG_CONN_ACTIVE && !c->req.done_;
    c->state = TG_CONN_CLOSING;
    if (owned && c->req.abort_cb_) {
        c->req.done_ = true;
        c->req.abort_cb_(&c->req, c->req.abort_data_);
        tg_conn_end_request(c);
    } else if (owned) {
        /* The handler has no abort callback: it still owns req and will end
         * it; its writes are dropped and the close happens then. */
        c->peer_gone = true;
        c->state = TG_CONN_ACTIVE;
        uv_read_stop((uv_stream_t *)&c->tcp);
        return;
    }
    if (c->prev) c->prev->next = c->next;
    else c->w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *sr, int status)
{
    (void)status;
    tg_conn *c = sr->data;
    free(sr);
    tg_conn_close(c);
}

/* Closes once what is queued has been written. */
static void conn_close_after_write(tg_conn *c)
{
    uv_shutdown_t *sr = malloc(sizeof *sr);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    if (!sr || uv_shutdown(sr, (uv_stream_t *)&c->tcp, on_shutdown)) {
        free(sr);
        tg_conn_close(c);
        return;
    }
    sr->data = c;
    c->state = TG_CONN_FLUSHING;
}

static void on_timer(uv_timer_t *t)
{
    tg_conn *c = t->data;
    switch (c->state) {
    case TG_CONN_IDLE:
        tg_conn_close(c);
        break;
    case TG_CONN_HEAD:
        tg_conn_error(c, 408, "timeout_error",
                      "the request head did not arrive in time; send it whole and promptly");
        break;
    case TG_CONN_BODY:
        tg_conn_error(c, 408, "timeout_error",
                      "the request body did not arrive in time; send it whole and promptly");
        break;
    default:
        break;
    }
}

static void timer_arm(tg_conn *c, uint32_t ms) { uv_timer_start(&c->timer, on_timer, ms, 0); }

static void req_reset(tg_conn *c)
{
    tg_req *r = &c->req;
    tg_arena_release(&r->arena);
    memset(r, 0, offsetof(tg_req, arena));
    memset(&r->method, 0, sizeof *r - offsetof(tg_req, method));
    r->worker = c->w;
    r->loop = &c->w->loop;
    r->conn_ = c;
    tg_http_in_next(&c->in);
}

/* Reads land in the worker's buffer (one per loop: libuv calls alloc and
 * read back to back for one stream) and are appended to c->in, so an idle
 * connection holds no read buffer of its own. */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    tg_conn *c = h->data;
    buf->base = c->w->rbuf;
    buf->len = sizeof c->w->rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    tg_conn *c = s->data;
    if (nread < 0) {
        tg_conn_close(c);
        return;
    }
    if (tg_buf_append(&c->rx, buf->base, (size_t)nread)) {
        tg_conn_close(c);
        return;
    }
    if (c->state == TG_CONN_ACTIVE) {
        if (c->rx.n > RX_HIGH_WATER) {
            uv_read_stop(s);
            c->reading = false;
        }
        return;
    }
    conn_process(c);
}

static void reading_on(tg_conn *c)
{
    if (c->reading || c->state == TG_CONN_CLOSING || c->peer_gone) return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = true;
}

void tg_conn_accept(tg_worker *w)
{
    tg_server *s = w->srv;
    tg_conn *c = calloc(1, sizeof *c);
    if (!c) return;
    c->w = w;
    tg_buf_init(&c->rx, RX_MAX);
    tg_http_in_init(&c->in, s->opts.conf.max_header_bytes, s->opts.conf.max_body_bytes);
    uv_tcp_init(&w->loop, &c->tcp);
    uv_timer_init(&w->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles_open = 2;
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    long n = atomic_fetch_add_explicit(&s->connections, 1, memory_order_relaxed) + 1;
    if (uv_accept((uv_stream_t *)&w->listener, (uv_stream_t *)&c->tcp)) {
        tg_conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    req_reset(c);
    c->state = TG_CONN_IDLE;
    if (s->opts.conf.max_connections && n > (long)s->opts.conf.max_connections) {
        tg_conn_error(c, 503, "server_busy",
                      "the gateway has reached its connection limit; retry shortly");
        return;
    }
    timer_arm(c, s->opts.conf.header_timeout_ms);
    reading_on(c);
}

void tg_conn_error(tg_conn *c, int status, const char *type, const char *msg)
{
    if (c->state >= TG_CONN_FLUSHING) return;
    c->must_close = true;
    c->state = TG_CONN_ACTIVE;
    uv_timer_stop(&c->timer);
    tg_server *s = c->w->srv;
    s->opts.error(&c->req, status, type, msg, s->opts.data);
}

void tg_conn_drain(tg_conn *c)
{
    c->must_close = true;
    if (c->state == TG_CONN_IDLE) tg_conn_close(c);
}

static void dispatch(tg_conn *c)
{
    tg_req *r = &c->req;
    uv_timer_stop(&c->timer);
    c->state = TG_CONN_ACTIVE;
    tg_http_in_fill(&c->in, r);
    if (c->must_close) r->keep_alive_ = false;
    tg_server *s = c->w->srv;
    s->opts.handler(r, s->opts.data);
}

/* The head is in: the body deadline starts, and a client waiting for
 * 100 Continue gets it. */
static void head_done(tg_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    tg_http_in_fill(&c->in, &c->req);
    if (tg_http_in_expects_continue(&c->in, &c->req)) {
        uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
        tg_conn_write(c, &b, 1);
    }
    c->state = TG_CONN_BODY;
    timer_arm(c, c->w->srv->opts.conf.request_timeout_ms);
}

/* Parses what waits in c->rx and dispatches complete requests, one at a
 * time; returns when more bytes are needed or the handler owns a request. */
static void conn_process(tg_conn *c)
{
    if (c->in_process) return;
    c->in_process = true;
    while (c->rx.n && c->state <= TG_CONN_BODY) {
        size_t used;
        tg_in_event ev = tg_http_in_feed(&c->in, c->rx.p, c->rx.n, &used);
        tg_buf_consume(&c->rx, used);
        c->req.bytes_in += used;
        if (ev == TG_IN_BEGIN) {
            c->state = TG_CONN_HEAD;
            c->req.t_start_ns = uv_hrtime();
            timer_arm(c, c->w->srv->opts.conf.header_timeout_ms);
        } else if (ev == TG_IN_HEAD) {
            head_done(c);
        } else if (ev == TG_IN_MESSAGE) {
            dispatch(c);
        } else if (ev == TG_IN_ERROR) {
            tg_conn_error(c, c->in.status,
                          c->in.status == 413 || c->in.status == 431 ? "request_too_large"
                                                                     : "invalid_request_error",
                          c->in.msg);
        } else if (used == 0) {
            break;
        }
    }
    c->in_process = false;
}

void tg_conn_end_request(tg_conn *c)
{
    void (*cb)(tg_req *, void *) = c->req.end_cb_;
    c->req.end_cb_ = NULL;
    if (cb) cb(&c->req, c->req.end_data_);
}

void tg_conn_request_done(tg_conn *c)
{
    tg_conn_end_request(c);
    if (c->peer_gone) {
        c->req.done_ = true;
        c->state = TG_CONN_IDLE; /* lets tg_conn_close go through */
        tg_conn_close(c);
        return;
    }
    if (c->must_close || !c->req.keep_alive_) {
        c->req.done_ = true;
        conn_close_after_write(c);
        return;
    }
    req_reset(c);
    c->state = TG_CONN_IDLE;
    timer_arm(c, c->w->srv->opts.conf.idle_timeout_ms);
    reading_on(c);
    if (c->rx.n) conn_process(c);
}
