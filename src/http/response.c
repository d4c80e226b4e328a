/* Writing responses.
 *
 * A response is written with uv_try_write first, which on an idle socket
 * sends it with one writev and no copy; whatever the kernel does not take
 * is copied into a write request and queued, so callers never keep buffers
 * alive for us. Streams use chunked transfer encoding (HTTP/1.0 clients get
 * the raw bytes and a close). The connection is closed after the response
 * when the client asked, when the server is draining, or after an error
 * the server raised itself. */
#include "http/conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
    uv_write_t w;
    tg_conn *c;
    char data[];
} tg_wreq;

static void on_write(uv_write_t *w, int status)
{
    tg_wreq *wr = (tg_wreq *)w;
    tg_conn *c = wr->c;
    free(wr);
    if (status < 0) return; /* the read side sees the broken connection */
    tg_req *r = &c->req;
    if (c->state == TG_CONN_ACTIVE && r->drain_cb_ && c->tcp.write_queue_size == 0) {
        void (*cb)(tg_req *, void *) = r->drain_cb_;
        r->drain_cb_ = NULL;
        cb(r, r->drain_data_);
    }
}

int tg_conn_write(tg_conn *c, uv_buf_t *bufs, unsigned nbufs)
{
    if (c->peer_gone || c->state >= TG_CONN_FLUSHING) return TG_EIO;
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++) total += bufs[i].len;
    int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
    size_t done = n > 0 ? (size_t)n : 0;
    if (n < 0 && n != UV_EAGAIN) return TG_EIO;
    if (done == total) return TG_OK;
    tg_wreq *wr = malloc(sizeof *wr + (total - done));
    if (!wr) return TG_ENOMEM;
    wr->c = c;
    size_t at = 0, skip = done;
    for (unsigned i = 0; i < nbufs; i++) {
        size_t len = bufs[i].len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(wr->data + at, bufs[i].base + skip, len - skip);
        at += len - skip;
        skip = 0;
    }
    uv_buf_t rest = uv_buf_init(wr->data, (unsigned)at);
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &rest, 1, on_write)) {
        free(wr);
        return TG_EIO;
    }
    return TG_OK;
}

const char *tg_worker_date(tg_worker *w)
{
    time_t now = time(NULL);
    if (now != w->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(w->date, sizeof w->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        w->date_sec = now;
    }
    return w->date;
}

const char *tg_http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static bool closes_after(tg_req *r)
{
    tg_conn *c = r->conn_;
    if (c->w->draining) c->must_close = true;
    return c->must_close || !r->keep_alive_;
}

/* Formats the head into the worker's buffer; TG_ENOMEM on overflow. */
static int format_head(tg_req *r, int status, tg_str ctype, const tg_header *h, size_t nh,
                       const size_t *length)
{
    tg_conn *c = r->conn_;
    tg_buf *b = &c->w->out;
    tg_buf_clear(b);
    bool http10 = tg_http_in_minor(&c->in) == 0;
    /* A server answers with its own version (RFC 9110 6.2), whatever the
     * client's; what HTTP/1.0 changes is chunking and keep-alive. */
    int rc = tg_buf_add_lit(b, "HTTP/1.1 ");
    if (!rc) rc = tg_buf_add_u64(b, (uint64_t)status);
    if (!rc) rc = tg_buf_add_char(b, ' ');
    if (!rc) rc = tg_buf_add_str(b, tg_str_c(tg_http_reason(status)));
    if (!rc) rc = tg_buf_add_lit(b, "\r\n");
    const char *date = tg_worker_date(c->w);
    if (!rc) rc = tg_buf_append(b, date, strlen(date));
    if (!rc && ctype.n) {
        rc = tg_buf_add_lit(b, "Content-Type: ");
        if (!rc) rc = tg_buf_add_str(b, ctype);
        if (!rc) rc = tg_buf_add_lit(b, "\r\n");
    }
    if (!rc && length) {
        rc = tg_buf_add_lit(b, "Content-Length: ");
        if (!rc) rc = tg_buf_add_u64(b, *length);
        if (!rc) rc = tg_buf_add_lit(b, "\r\n");
    } else if (!rc && !http10) {
        rc = tg_buf_add_lit(b, "Transfer-Encoding: chunked\r\n");
    }
    if (!length) r->keep_alive_ = r->keep_alive_ && !http10;
    if (!rc && closes_after(r)) rc = tg_buf_add_lit(b, "Connection: close\r\n");
    else if (!rc && http10) rc = tg_buf_add_lit(b, "Connection: keep-alive\r\n");
    for (size_t i = 0; !rc && i < nh; i++) {
        rc = tg_buf_add_str(b, h[i].name);
        if (!rc) rc = tg_buf_add_lit(b, ": ");
        if (!rc) rc = tg_buf_add_str(b, h[i].value);
        if (!rc) rc = tg_buf_add_lit(b, "\r\n");
    }
    if (!rc) rc = tg_buf_add_lit(b, "\r\n");
    r->status = status;
    return rc;
}

static void sent(tg_req *r, size_t n)
{
    r->bytes_out += n;
    if (!r->t_first_byte_ns) r->t_first_byte_ns = uv_hrtime();
}

static void finish(tg_req *r)
{
    r->done_ = true;
    r->abort_cb_ = NULL;
    r->drain_cb_ = NULL;
    tg_conn_request_done(r->conn_);
}

void tg_resp_send(tg_req *r, int status, tg_str ctype, const tg_header *h, size_t nh, tg_str body)
{
    if (r->done_) return;
    if (format_head(r, status, ctype, h, nh, &body.n)) {
        r->conn_->must_close = true;
        finish(r);
        return;
    }
    tg_buf *b = &r->conn_->w->out;
    uv_buf_t bufs[2] = {uv_buf_init(b->p, (unsigned)b->n), uv_buf_init((char *)body.p, (unsigned)body.n)};
    unsigned nb = r->method == TG_HEAD || body.n == 0 ? 1 : 2;
    tg_conn_write(r->conn_, bufs, nb);
    sent(r, b->n + (nb == 2 ? body.n : 0));
    finish(r);
}

int tg_resp_stream_begin(tg_req *r, int status, tg_str ctype, const tg_header *h, size_t nh)
{
    if (r->done_ || r->streaming_) return TG_EINVAL;
    int rc = format_head(r, status, ctype, h, nh, NULL);
    if (rc) return rc;
    tg_buf *b = &r->conn_->w->out;
    uv_buf_t buf = uv_buf_init(b->p, (unsigned)b->n);
    r->streaming_ = true;
    rc = tg_conn_write(r->conn_, &buf, 1);
    sent(r, b->n);
    return rc;
}

int tg_resp_stream_write(tg_req *r, tg_str data)
{
    if (r->done_ || !r->streaming_) return TG_EINVAL;
    if (data.n == 0) return TG_OK; /* an empty chunk would end the stream */
    tg_conn *c = r->conn_;
    if (tg_http_in_minor(&c->in) == 0) {
        uv_buf_t raw = uv_buf_init((char *)data.p, (unsigned)data.n);
        sent(r, data.n);
        return tg_conn_write(c, &raw, 1);
    }
    char size[20];
    int sn = snprintf(size, sizeof size, "%zx\r\n", data.n);
    uv_buf_t bufs[3] = {uv_buf_init(size, (unsigned)sn), uv_buf_init((char *)data.p, (unsigned)data.n),
                        uv_buf_init("\r\n", 2)};
    sent(r, (size_t)sn + data.n + 2);
    return tg_conn_write(c, bufs, 3);
}

void tg_resp_stream_end(tg_req *r)
{
    if (r->done_ || !r->streaming_) return;
    tg_conn *c = r->conn_;
    if (tg_http_in_minor(&c->in) == 0) {
        c->must_close = true;
    } else {
        uv_buf_t last = uv_buf_init("0\r\n\r\n", 5);
        tg_conn_write(c, &last, 1);
        sent(r, 5);
    }
    finish(r);
}

size_t tg_resp_queued(const tg_req *r) { return r->conn_->tcp.write_queue_size; }

void tg_req_on_drain(tg_req *r, void (*cb)(tg_req *, void *), void *data)
{
    r->drain_cb_ = cb;
    r->drain_data_ = data;
}

void tg_req_on_end(tg_req *r, void (*cb)(tg_req *, void *), void *data)
{
    r->end_cb_ = cb;
    r->end_data_ = data;
}

void tg_req_on_abort(tg_req *r, void (*cb)(tg_req *, void *), void *data)
{
    r->abort_cb_ = cb;
    r->abort_data_ = data;
}

void tg_resp_close(tg_req *r, bool reset)
{
    if (r->done_) return;
    tg_conn *c = r->conn_;
    c->must_close = true;
    if (reset) {
        uv_os_fd_t fd;
        struct linger lg = {1, 0};
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        r->done_ = true;
        tg_conn_end_request(c);
        c->state = TG_CONN_IDLE;
        tg_conn_close(c);
        return;
    }
    finish(r);
}
