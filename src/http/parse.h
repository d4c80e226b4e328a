/* Request parsing, apart from sockets: bytes in, requests out.
 *
 * tg_http_in wraps http_parser with the gateway's limits. The url and
 * header bytes are copied into a head buffer capped at max_header_bytes
 * (431 past it, or past TG_MAX_REQ_HEADERS headers; 505 for a version
 * other than 1.x) and the de-chunked
 * body into a body buffer capped at max_body_bytes (413 past it, decided
 * from Content-Length before any body byte when there is one). Feeding
 * stops at each event so the connection can act on it: the first byte of
 * a request (start the head deadline), a complete head (switch to the body
 * deadline, answer Expect: 100-continue), a complete message (dispatch).
 * Bytes after a complete message are left unconsumed: the next request of
 * a pipeline is not parsed until tg_http_in_next. Views filled into a
 * tg_req stay valid until tg_http_in_next. */
#ifndef TG_HTTP_PARSE_H
#define TG_HTTP_PARSE_H

#include "http/server.h"

#include <http_parser.h>

typedef struct {
    uint32_t name_off, name_len, value_off, value_len;
} tg_hdr_span;

#define TG_MAX_HDR_SPANS (2 * TG_MAX_REQ_HEADERS)

/* Header names and values as http_parser hands them over: a name or a
 * value may come in several pieces, across reads. Bytes are copied into
 * `bytes` (capped) and remembered as offsets, since the buffer may move as
 * it grows; tg_hdrs_views turns them into views once the head is whole.
 * Shared by the request parser and the upstream client (h1.c). */
typedef struct {
    tg_buf bytes;
    tg_hdr_span spans[TG_MAX_HDR_SPANS];
    size_t n, max;
    bool last_was_value;
} tg_hdrs;

void tg_hdrs_init(tg_hdrs *h, size_t max_bytes, size_t max_headers);
void tg_hdrs_release(tg_hdrs *h);
void tg_hdrs_clear(tg_hdrs *h);
/* TG_ETOOBIG past the byte cap, TG_EINVAL past max_headers. */
int tg_hdrs_field(tg_hdrs *h, const char *at, size_t n);
int tg_hdrs_value(tg_hdrs *h, const char *at, size_t n);
/* Views of the n headers into out (valid until the next change). */
void tg_hdrs_views(const tg_hdrs *h, tg_header *out);

typedef enum {
    TG_IN_MORE,     /* everything fed was consumed; feed more */
    TG_IN_BEGIN,    /* a request started */
    TG_IN_HEAD,     /* its head is complete */
    TG_IN_MESSAGE,  /* the whole request is in */
    TG_IN_ERROR,    /* refused: status and msg say why; the connection must close */
} tg_in_event;

typedef struct {
    http_parser parser;
    tg_hdrs hdrs;           /* the url's bytes go in hdrs.bytes too */
    tg_buf body;
    uint32_t url_off, url_len;
    uint32_t max_body;
    tg_in_event event;      /* what the last callback saw */
    int status;             /* on TG_IN_ERROR: 400, 413, 431 or 505 */
    char msg[160];          /* on TG_IN_ERROR: for the client */
} tg_http_in;

void tg_http_in_init(tg_http_in *in, uint32_t max_header_bytes, uint32_t max_body_bytes);
void tg_http_in_release(tg_http_in *in);
/* Consumes a prefix of [p, p+n) and says what happened; *used gets the
 * bytes consumed. After TG_IN_ERROR feeding again is not allowed. */
tg_in_event tg_http_in_feed(tg_http_in *in, const char *p, size_t n, size_t *used);
/* After TG_IN_HEAD or TG_IN_MESSAGE: method, path, query, headers and
 * keep-alive into r (the body too after TG_IN_MESSAGE). */
void tg_http_in_fill(tg_http_in *in, tg_req *r);
/* Whether the head asked for 100 Continue (HTTP/1.1 and a body to come). */
bool tg_http_in_expects_continue(const tg_http_in *in, const tg_req *r);
/* Ready for the next request on the connection. */
void tg_http_in_next(tg_http_in *in);
/* 0 for HTTP/1.0, 1 for HTTP/1.1 */
static inline int tg_http_in_minor(const tg_http_in *in) { return in->parser.http_minor; }

#endif
