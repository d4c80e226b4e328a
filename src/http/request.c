/* Connections: reading, parsing and the limits.
 *
 * Bytes read are appended to c->in and parsed from there by http_parser;
 * the url and header bytes are copied into c->head (capped at
 * max_header_bytes, 431 past it) and the de-chunked body into c->body
 * (capped at max_body_bytes, 413 past it). When a message completes the
 * parser is paused and the handler owns c->req; bytes that arrive meanwhile
 * (pipelined requests) wait in c->in, and reading stops while more than
 * IN_HIGH_WATER bytes wait. Reading goes on during the handler so that a
 * client that disconnects is noticed and its upstream work cancelled.
 *
 * One timer per connection serves three deadlines: the head must arrive
 * within header_timeout_ms of its first byte (slow-loris), the body within
 * request_timeout_ms of the head, and an idle keep-alive connection is
 * closed after idle_timeout_ms. */
#include "http/conn.h"
#include "base/log.h"

#include <stdlib.h>

#define IN_HIGH_WATER (256 * 1024)
#define IN_MAX (IN_HIGH_WATER + 65536)

static const http_parser_settings settings;
static void conn_process(tg_conn *c);

static tg_conn *conn_of(http_parser *p) { return p->data; }

static void on_handle_closed(uv_handle_t *h)
{
    tg_conn *c = h->data;
    if (--c->handles_open) return;
    tg_worker *w = c->w;
    tg_arena_release(&c->req.arena);
    tg_buf_release(&c->in);
    tg_buf_release(&c->head);
    tg_buf_release(&c->body);
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
    tg_buf_clear(&c->head);
    tg_buf_clear(&c->body);
    c->nspans = 0;
    c->url_off = c->url_len = 0;
    c->last_was_value = false;
    c->message_done = false;
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
    if (tg_buf_append(&c->in, buf->base, (size_t)nread)) {
        tg_conn_close(c);
        return;
    }
    if (c->state == TG_CONN_ACTIVE) {
        if (c->in.n > IN_HIGH_WATER) {
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
    tg_buf_init(&c->in, IN_MAX);
    tg_buf_init(&c->head, s->opts.conf.max_header_bytes);
    tg_buf_init(&c->body, s->opts.conf.max_body_bytes);
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
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
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

/* ---- http_parser callbacks ---- */

static int refuse(tg_conn *c, int status, const char *msg)
{
    c->err_status = status;
    c->err_msg = msg;
    return -1;
}

static int head_append(tg_conn *c, const char *p, size_t n)
{
    if (tg_buf_append(&c->head, p, n))
        return refuse(c, 431, "the request head is larger than the gateway accepts "
                              "(server.max_header_bytes)");
    return 0;
}

static int on_message_begin(http_parser *p)
{
    tg_conn *c = conn_of(p);
    c->state = TG_CONN_HEAD;
    c->req.t_start_ns = uv_hrtime();
    timer_arm(c, c->w->srv->opts.conf.header_timeout_ms);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    tg_conn *c = conn_of(p);
    if (!c->url_len) c->url_off = (uint32_t)c->head.n;
    c->url_len += (uint32_t)n;
    return head_append(c, at, n);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    tg_conn *c = conn_of(p);
    if (c->last_was_value || c->nspans == 0) {
        if (c->nspans == TG_MAX_REQ_HEADERS)
            return refuse(c, 431, "the request has more headers than the gateway accepts (64)");
        c->spans[c->nspans++] = (tg_hdr_span){(uint32_t)c->head.n, 0, 0, 0};
        c->last_was_value = false;
    }
    c->spans[c->nspans - 1].name_len += (uint32_t)n;
    return head_append(c, at, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    tg_conn *c = conn_of(p);
    tg_hdr_span *sp = &c->spans[c->nspans - 1];
    if (!c->last_was_value) {
        sp->value_off = (uint32_t)c->head.n;
        c->last_was_value = true;
    }
    sp->value_len += (uint32_t)n;
    return head_append(c, at, n);
}

static tg_method method_of(unsigned m)
{
    switch (m) {
    case HTTP_GET: return TG_GET;
    case HTTP_POST: return TG_POST;
    case HTTP_HEAD: return TG_HEAD;
    case HTTP_PUT: return TG_PUT;
    case HTTP_DELETE: return TG_DELETE;
    default: return TG_OTHER_METHOD;
    }
}

static int on_headers_complete(http_parser *p)
{
    tg_conn *c = conn_of(p);
    tg_req *r = &c->req;
    const tg_server_conf *conf = &c->w->srv->opts.conf;
    const char *h = c->head.p;
    for (size_t i = 0; i < c->nspans; i++) {
        tg_hdr_span *sp = &c->spans[i];
        r->headers[i].name = tg_str_make(h + sp->name_off, sp->name_len);
        r->headers[i].value = tg_str_make(sp->value_len ? h + sp->value_off : "", sp->value_len);
    }
    r->nheaders = c->nspans;
    tg_str url = tg_str_make(c->url_len ? h + c->url_off : "", c->url_len);
    const char *q = memchr(url.p, '?', url.n);
    r->path = q ? tg_str_make(url.p, (size_t)(q - url.p)) : url;
    r->query = q ? tg_str_make(q + 1, url.n - (size_t)(q - url.p) - 1) : TG_STR("");
    r->method = method_of(p->method);
    r->keep_alive_ = http_should_keep_alive(p);
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > conf->max_body_bytes)
        return refuse(c, 413, NULL);
    tg_str expect = tg_req_header(r, TG_STR("expect"));
    if (expect.p && tg_str_ieq(expect, TG_STR("100-continue")) && p->http_minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
        tg_conn_write(c, &b, 1);
    }
    c->state = TG_CONN_BODY;
    timer_arm(c, conf->request_timeout_ms);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    tg_conn *c = conn_of(p);
    if (tg_buf_append(&c->body, at, n)) return refuse(c, 413, NULL);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    tg_conn *c = conn_of(p);
    c->message_done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void dispatch(tg_conn *c)
{
    tg_req *r = &c->req;
    uv_timer_stop(&c->timer);
    c->state = TG_CONN_ACTIVE;
    r->body = tg_buf_str(&c->body);
    if (c->must_close) r->keep_alive_ = false;
    tg_server *s = c->w->srv;
    s->opts.handler(r, s->opts.data);
}

static void parse_failed(tg_conn *c)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    int status = c->err_status ? c->err_status : 400;
    const char *msg = c->err_msg;
    char buf[160];
    if (status == 413) {
        snprintf(buf, sizeof buf,
                 "the request body is larger than the gateway accepts (%u bytes, "
                 "server.max_body_bytes)",
                 c->w->srv->opts.conf.max_body_bytes);
        msg = buf;
    } else if (!msg) {
        if (e == HPE_HEADER_OVERFLOW) {
            status = 431;
            msg = "the request head is larger than the gateway accepts";
        } else {
            snprintf(buf, sizeof buf, "malformed HTTP request: %s", http_errno_description(e));
            msg = buf;
        }
    }
    tg_conn_error(c, status, status == 400 ? "invalid_request_error" : "request_too_large", msg);
}

/* Parses what waits in c->in and dispatches complete requests, one at a
 * time; returns when more bytes are needed or the handler owns a request. */
static void conn_process(tg_conn *c)
{
    if (c->in_process) return;
    c->in_process = true;
    while (c->in.n && (c->state == TG_CONN_IDLE || c->state == TG_CONN_HEAD ||
                       c->state == TG_CONN_BODY)) {
        size_t used = http_parser_execute(&c->parser, &settings, c->in.p, c->in.n);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        tg_buf_consume(&c->in, used);
        c->req.bytes_in += used;
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            if (c->message_done) dispatch(c);
            continue;
        }
        if (e != HPE_OK) {
            parse_failed(c);
            break;
        }
        if (used == 0) break;
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
    if (c->in.n) conn_process(c);
}

tg_str tg_req_header(const tg_req *r, tg_str name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (tg_str_ieq(r->headers[i].name, name)) return r->headers[i].value;
    return TG_STR_NULL;
}
