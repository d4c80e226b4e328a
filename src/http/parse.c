/* http_parser glue with limits; see parse.h. Callbacks record positions
 * (offsets, since the head buffer may move as it grows) and pause the
 * parser at each event; tg_http_in_fill turns offsets into views. */
#include "http/parse.h"

#include <stdio.h>

static tg_http_in *in_of(http_parser *p) { return p->data; }

static int refuse(tg_http_in *in, int status, const char *msg)
{
    in->status = status;
    snprintf(in->msg, sizeof in->msg, "%s", msg);
    in->event = TG_IN_ERROR;
    return -1;
}

static int pause_at(http_parser *p, tg_in_event ev)
{
    in_of(p)->event = ev;
    http_parser_pause(p, 1);
    return 0;
}

static int head_refused(tg_http_in *in, int rc)
{
    if (rc == TG_EINVAL)
        return refuse(in, 431, "the request has more headers than the gateway accepts (64)");
    return refuse(in, 431, "the request head is larger than the gateway accepts "
                           "(server.max_header_bytes)");
}

static int on_message_begin(http_parser *p) { return pause_at(p, TG_IN_BEGIN); }

static int on_url(http_parser *p, const char *at, size_t n)
{
    tg_http_in *in = in_of(p);
    if (!in->url_len) in->url_off = (uint32_t)in->hdrs.bytes.n;
    in->url_len += (uint32_t)n;
    int rc = tg_buf_append(&in->hdrs.bytes, at, n);
    return rc ? head_refused(in, rc) : 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    int rc = tg_hdrs_field(&in_of(p)->hdrs, at, n);
    return rc ? head_refused(in_of(p), rc) : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    int rc = tg_hdrs_value(&in_of(p)->hdrs, at, n);
    return rc ? head_refused(in_of(p), rc) : 0;
}

static int too_big(tg_http_in *in)
{
    char msg[160];
    snprintf(msg, sizeof msg, "the request body is larger than the gateway accepts (%u bytes, "
             "server.max_body_bytes)", in->max_body);
    return refuse(in, 413, msg);
}

static int on_headers_complete(http_parser *p)
{
    tg_http_in *in = in_of(p);
    if (p->http_major != 1) return refuse(in, 505, "only HTTP/1.0 and HTTP/1.1 are served here");
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > in->max_body) return too_big(in);
    return pause_at(p, TG_IN_HEAD);
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    tg_http_in *in = in_of(p);
    return tg_buf_append(&in->body, at, n) ? too_big(in) : 0;
}

static int on_message_complete(http_parser *p) { return pause_at(p, TG_IN_MESSAGE); }

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void tg_http_in_init(tg_http_in *in, uint32_t max_header_bytes, uint32_t max_body_bytes)
{
    memset(in, 0, sizeof *in);
    http_parser_init(&in->parser, HTTP_REQUEST);
    in->parser.data = in;
    in->max_body = max_body_bytes;
    tg_hdrs_init(&in->hdrs, max_header_bytes, TG_MAX_REQ_HEADERS);
    tg_buf_init(&in->body, max_body_bytes);
}

void tg_http_in_release(tg_http_in *in)
{
    tg_hdrs_release(&in->hdrs);
    tg_buf_release(&in->body);
}

tg_in_event tg_http_in_feed(tg_http_in *in, const char *p, size_t n, size_t *used)
{
    in->event = TG_IN_MORE;
    *used = http_parser_execute(&in->parser, &settings, p, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&in->parser);
    if (e == HPE_PAUSED) {
        http_parser_pause(&in->parser, 0);
        return in->event;
    }
    if (in->event == TG_IN_ERROR) return TG_IN_ERROR;
    if (e != HPE_OK) {
        if (e == HPE_HEADER_OVERFLOW)
            refuse(in, 431, "the request head is larger than the gateway accepts");
        else {
            char msg[160];
            snprintf(msg, sizeof msg, "malformed HTTP request: %s", http_errno_description(e));
            refuse(in, 400, msg);
        }
        return TG_IN_ERROR;
    }
    return TG_IN_MORE;
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

void tg_http_in_fill(tg_http_in *in, tg_req *r)
{
    const char *h = in->hdrs.bytes.p ? in->hdrs.bytes.p : "";
    tg_hdrs_views(&in->hdrs, r->headers);
    r->nheaders = in->hdrs.n;
    tg_str url = tg_str_make(h + in->url_off, in->url_len);
    const char *q = memchr(url.p, '?', url.n);
    r->path = q ? tg_str_make(url.p, (size_t)(q - url.p)) : url;
    r->query = q ? tg_str_make(q + 1, url.n - (size_t)(q - url.p) - 1) : TG_STR("");
    r->method = method_of(in->parser.method);
    r->keep_alive_ = http_should_keep_alive(&in->parser);
    r->body = tg_buf_str(&in->body);
}

bool tg_http_in_expects_continue(const tg_http_in *in, const tg_req *r)
{
    tg_str e = tg_req_header(r, TG_STR("expect"));
    return e.p && tg_str_ieq(e, TG_STR("100-continue")) && in->parser.http_minor >= 1;
}

void tg_http_in_next(tg_http_in *in)
{
    tg_hdrs_clear(&in->hdrs);
    tg_buf_clear(&in->body);
    in->url_off = in->url_len = 0;
    in->event = TG_IN_MORE;
}

tg_str tg_req_header(const tg_req *r, tg_str name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (tg_str_ieq(r->headers[i].name, name)) return r->headers[i].value;
    return TG_STR_NULL;
}

void tg_hdrs_init(tg_hdrs *h, size_t max_bytes, size_t max_headers)
{
    tg_buf_init(&h->bytes, max_bytes);
    h->n = 0;
    h->max = max_headers < TG_MAX_HDR_SPANS ? max_headers : TG_MAX_HDR_SPANS;
    h->last_was_value = false;
}

void tg_hdrs_release(tg_hdrs *h) { tg_buf_release(&h->bytes); }

void tg_hdrs_clear(tg_hdrs *h)
{
    tg_buf_clear(&h->bytes);
    h->n = 0;
    h->last_was_value = false;
}

int tg_hdrs_field(tg_hdrs *h, const char *at, size_t n)
{
    if (h->last_was_value || h->n == 0) {
        if (h->n == h->max) return TG_EINVAL;
        h->spans[h->n++] = (tg_hdr_span){(uint32_t)h->bytes.n, 0, 0, 0};
        h->last_was_value = false;
    }
    h->spans[h->n - 1].name_len += (uint32_t)n;
    return tg_buf_append(&h->bytes, at, n);
}

int tg_hdrs_value(tg_hdrs *h, const char *at, size_t n)
{
    tg_hdr_span *sp = &h->spans[h->n - 1];
    if (!h->last_was_value) {
        sp->value_off = (uint32_t)h->bytes.n;
        h->last_was_value = true;
    }
    sp->value_len += (uint32_t)n;
    return tg_buf_append(&h->bytes, at, n);
}

void tg_hdrs_views(const tg_hdrs *h, tg_header *out)
{
    const char *b = h->bytes.p ? h->bytes.p : "";
    for (size_t i = 0; i < h->n; i++) {
        const tg_hdr_span *sp = &h->spans[i];
        out[i] = (tg_header){tg_str_make(b + sp->name_off, sp->name_len),
                             tg_str_make(b + sp->value_off, sp->value_len)};
    }
}
