/* The upstream client; see upstream.h.
 *
 * curl's multi interface runs on the worker's libuv loop: curl says which
 * sockets to watch (sock_cb: one uv_poll_t per socket, with a sockctx) and
 * when to wake it (timer_cb: one uv_timer_t); each wake-up calls
 * curl_multi_socket_action, then settle() reports the finished transfers
 * that curl_multi_info_read hands back.
 *
 * Re-entrancy. on_head and on_body run inside curl's header and write
 * callbacks, where curl forbids adding or removing easy handles. So every
 * entry into curl that can reach a user callback, and every user callback we
 * make ourselves, sits between enter() and leave(); what needs curl from the
 * outside (adding a call started from a callback, removing one cancelled or
 * refused from a callback) goes on a list that settle() works through when
 * the outermost leave() runs. A call is in exactly one state:
 *   IDLE      on the free list
 *   QUEUED    started while depth > 0, not yet in the multi handle
 *   ACTIVE    in the multi handle
 *   DEFERRED  still in the multi handle, to be removed by settle(): its
 *             curl callbacks return 0 (abort) and reach the user no more
 *   DONE      inside its on_done; recycled when on_done returns
 * tg_upstream_free from inside a callback is deferred the same way.
 *
 * Allocation. Calls (easy handle, first-byte timer, buffers) and socket
 * contexts are recycled through free lists and the request header list is
 * built from the call's own curl_slist nodes, so a warm upstream makes no
 * allocation of its own per call. The memory of the upstream goes when the
 * last of its uv handles has closed (`handles` counts them). */
#include "http/upstream.h"
#include "http/h1.h"
#include "base/err.h"

#include <assert.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UP_MAXCONNECTS 256       /* idle upstream connections kept for reuse */
#define UP_SPARE_CALLS 128       /* calls kept on the free list at most */
#define UP_HEAD_MAX (64 * 1024)  /* bytes of response header names and values */
#define UP_HEADERS_MAX 256       /* response headers */
#define UP_REQ_MAX (1024 * 1024) /* url, method and request header lines */
#define UP_BUF_KEEP (16 * 1024)  /* a pooled call keeps buffers up to this */

typedef enum { CALL_IDLE, CALL_QUEUED, CALL_ACTIVE, CALL_DEFERRED, CALL_DONE } call_state;

typedef struct {
    uint32_t no, nn, vo, vn; /* name and value as offsets into head */
} hdr_span;

struct tg_upcall {
    int kind; /* TG_UPCALL_CURL, first: see h1.h */
    tg_upstream *u;
    CURL *easy;
    uv_timer_t fb_timer; /* first-byte timeout */
    tg_upcall_cbs cbs;
    void *ud;
    call_state state;
    bool in_multi, cancelled, paused, got_byte, head_done, tls;
    int status;
    uint32_t fb_ms;
    tg_up_result abort_r;     /* DEFERRED: what to report */
    const char *abort_detail; /* DEFERRED: a literal or msg */
    tg_upcall *next;          /* free, queued or deferred list */
    tg_upcall *bprev, *bnext; /* busy list: every call not IDLE */
    tg_buf head;              /* response header bytes of the current head */
    hdr_span *spans;
    tg_header *hdrs;
    size_t nhdr, hdr_cap;
    tg_buf req; /* url, method and header lines, each NUL-terminated */
    struct curl_slist *nodes;
    size_t node_cap;
    char err[CURL_ERROR_SIZE]; /* curl's CURLOPT_ERRORBUFFER */
    char msg[96];              /* our own failure text */
};

typedef struct sockctx {
    uv_poll_t poll;
    tg_upstream *u;
    curl_socket_t fd;
    struct sockctx *prev, *next; /* live list; next also links the spares */
} sockctx;

struct tg_upstream {
    uv_loop_t *loop;
    tg_h1 *h1; /* the built-in client, for the upstreams it serves */
    CURLM *multi;
    uv_timer_t timer; /* curl's timeout */
    unsigned depth;   /* enter() without leave() */
    bool settling, free_pending, dead;
    size_t handles; /* uv handles not yet closed: the memory waits for 0 */
    tg_upcall *spare_calls, *busy, *queued, *queued_tail, *deferred;
    size_t nspare;
    sockctx *live, *spare_socks;
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static CURLcode g_init_rc;

static void global_init(void)
{
    g_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *tg_up_result_str(tg_up_result r)
{
    switch (r) {
    case TG_UP_OK:
        return "ok";
    case TG_UP_CONNECT:
        return "connect";
    case TG_UP_TIMEOUT_CONNECT:
        return "timeout_connect";
    case TG_UP_TIMEOUT_FIRST_BYTE:
        return "timeout_first_byte";
    case TG_UP_TIMEOUT_TOTAL:
        return "timeout_total";
    case TG_UP_RESET:
        return "reset";
    case TG_UP_TOO_BIG:
        return "too_big";
    case TG_UP_OTHER:
        break;
    }
    return "other";
}

static void settle(tg_upstream *u);
static void do_free(tg_upstream *u);

/* ---- handle accounting and re-entrancy ---- */

static void handle_closed(tg_upstream *u)
{
    assert(u->handles > 0);
    if (--u->handles == 0 && u->dead) free(u);
}

static void enter(tg_upstream *u)
{
    u->depth++;
}

/* The last thing an entry point does: u may be gone once it returns. */
static void leave(tg_upstream *u)
{
    assert(u->depth > 0);
    if (--u->depth > 0 || u->settling) return;
    settle(u);
    if (u->free_pending && !u->dead) do_free(u);
}

/* ---- calls: pool ---- */

static void call_closed(uv_handle_t *h)
{
    tg_upcall *c = h->data;
    tg_upstream *u = c->u;
    free(c);
    handle_closed(u);
}

static void call_destroy(tg_upcall *c)
{
    curl_easy_cleanup(c->easy);
    tg_buf_release(&c->head);
    tg_buf_release(&c->req);
    free(c->spans);
    free(c->hdrs);
    free(c->nodes);
    uv_close((uv_handle_t *)&c->fb_timer, call_closed);
}

static tg_upcall *call_new(tg_upstream *u)
{
    tg_upcall *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->easy = curl_easy_init();
    if (!c->easy) {
        free(c);
        return NULL;
    }
    c->kind = TG_UPCALL_CURL;
    c->u = u;
    tg_buf_init(&c->head, UP_HEAD_MAX);
    tg_buf_init(&c->req, UP_REQ_MAX);
    uv_timer_init(u->loop, &c->fb_timer);
    c->fb_timer.data = c;
    u->handles++;
    return c;
}

static void busy_link(tg_upstream *u, tg_upcall *c)
{
    c->bprev = NULL;
    c->bnext = u->busy;
    if (u->busy) u->busy->bprev = c;
    u->busy = c;
}

static void busy_unlink(tg_upstream *u, tg_upcall *c)
{
    if (c->bprev)
        c->bprev->bnext = c->bnext;
    else
        u->busy = c->bnext;
    if (c->bnext) c->bnext->bprev = c->bprev;
    c->bprev = c->bnext = NULL;
}

static void buf_trim(tg_buf *b)
{
    if (b->cap > UP_BUF_KEEP) tg_buf_release(b);
    tg_buf_clear(b);
}

/* Back to the free list: the call must be out of the multi handle. */
static void call_recycle(tg_upcall *c)
{
    tg_upstream *u = c->u;
    assert(!c->in_multi);
    busy_unlink(u, c);
    uv_timer_stop(&c->fb_timer);
    c->state = CALL_IDLE;
    c->cbs = (tg_upcall_cbs){0};
    c->ud = NULL;
    curl_easy_reset(c->easy); /* drops our pointers into the caller's body */
    buf_trim(&c->head);
    buf_trim(&c->req);
    if (u->free_pending || u->nspare >= UP_SPARE_CALLS) {
        call_destroy(c);
        return;
    }
    c->next = u->spare_calls;
    u->spare_calls = c;
    u->nspare++;
}

/* Out of the multi handle (if in), on_done when asked, then recycled. */
static void call_finish(tg_upcall *c, tg_up_result r, const char *detail, bool notify)
{
    tg_upstream *u = c->u;
    if (c->in_multi) {
        curl_multi_remove_handle(u->multi, c->easy);
        c->in_multi = false;
    }
    uv_timer_stop(&c->fb_timer);
    if (notify && !u->free_pending && c->cbs.on_done) {
        c->state = CALL_DONE;
        c->cbs.on_done(c->ud, r, detail ? detail : "");
    }
    call_recycle(c);
}

/* From inside a curl callback: the call ends at the next settle(). */
static void call_defer(tg_upcall *c, tg_up_result r, const char *detail)
{
    assert(c->state == CALL_ACTIVE);
    c->state = CALL_DEFERRED;
    c->abort_r = r;
    c->abort_detail = detail;
    uv_timer_stop(&c->fb_timer);
    c->next = c->u->deferred;
    c->u->deferred = c;
}

/* ---- result mapping ---- */

/* Whether a timeout hit after the connection was up. A reused connection
 * reports no connect time, but a pretransfer time: the request was about
 * to go out, so the connection (with its TLS) was there. */
static bool call_connected(tg_upcall *c)
{
    if (c->got_byte) return true;
    curl_off_t t = 0;
    if (curl_easy_getinfo(c->easy, CURLINFO_PRETRANSFER_TIME_T, &t) == CURLE_OK && t != 0)
        return true;
    t = 0;
    if (curl_easy_getinfo(c->easy, CURLINFO_CONNECT_TIME_T, &t) != CURLE_OK || t == 0) return false;
    if (!c->tls) return true;
    t = 0;
    return curl_easy_getinfo(c->easy, CURLINFO_APPCONNECT_TIME_T, &t) == CURLE_OK && t != 0;
}

static tg_up_result map_result(tg_upcall *c, CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return TG_UP_OK;
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
        return TG_UP_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return call_connected(c) ? TG_UP_TIMEOUT_TOTAL : TG_UP_TIMEOUT_CONNECT;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return TG_UP_RESET;
    default:
        return TG_UP_OTHER;
    }
}

static void transfer_done(tg_upcall *c, CURLcode rc)
{
    tg_up_result r = map_result(c, rc);
    const char *detail = "";
    if (rc != CURLE_OK)
        detail = c->err[0] ? c->err : curl_easy_strerror(rc);
    else if (!c->head_done)
        r = TG_UP_OTHER, detail = "the upstream sent no response head";
    call_finish(c, r, detail, true);
}

/* ---- settle: the work that must happen outside curl's callbacks ---- */

static void call_add(tg_upcall *c)
{
    if (c->cancelled) {
        call_recycle(c);
        return;
    }
    CURLMcode mc = curl_multi_add_handle(c->u->multi, c->easy);
    if (mc != CURLM_OK) {
        snprintf(c->msg, sizeof c->msg, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
        call_finish(c, TG_UP_OTHER, c->msg, true);
        return;
    }
    c->in_multi = true;
    c->state = CALL_ACTIVE;
}

static void settle(tg_upstream *u)
{
    u->settling = true;
    while (!u->free_pending) {
        tg_upcall *c = u->queued;
        if (c) {
            u->queued = c->next;
            if (!u->queued) u->queued_tail = NULL;
            call_add(c);
            continue;
        }
        if ((c = u->deferred)) {
            u->deferred = c->next;
            call_finish(c, c->abort_r, c->abort_detail, !c->cancelled);
            continue;
        }
        int left;
        CURLMsg *m = curl_multi_info_read(u->multi, &left);
        if (!m) break;
        if (m->msg != CURLMSG_DONE) continue;
        CURLcode rc = m->data.result; /* m dies with curl_multi_remove_handle */
        char *priv = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        c = (tg_upcall *)(void *)priv;
        assert(c && c->state == CALL_ACTIVE);
        transfer_done(c, rc);
    }
    u->settling = false;
}

/* ---- curl's socket and timer callbacks on libuv ---- */

static void poll_cb(uv_poll_t *p, int status, int events)
{
    sockctx *x = p->data;
    tg_upstream *u = x->u;
    int flags = CURL_CSELECT_ERR, running;
    if (status >= 0)
        flags = (events & UV_READABLE ? CURL_CSELECT_IN : 0) |
                (events & UV_WRITABLE ? CURL_CSELECT_OUT : 0);
    enter(u);
    curl_multi_socket_action(u->multi, x->fd, flags, &running);
    leave(u);
}

static void sock_closed(uv_handle_t *h)
{
    sockctx *x = h->data;
    tg_upstream *u = x->u;
    if (u->dead) {
        free(x);
    } else {
        x->next = u->spare_socks;
        u->spare_socks = x;
    }
    handle_closed(u);
}

static void sock_close(sockctx *x)
{
    tg_upstream *u = x->u;
    if (x->prev)
        x->prev->next = x->next;
    else
        u->live = x->next;
    if (x->next) x->next->prev = x->prev;
    /* uv_close stops watching the fd at once, so curl may close it and a
     * new socket may reuse the number before sock_closed runs. */
    uv_close((uv_handle_t *)&x->poll, sock_closed);
}

static sockctx *sock_open(tg_upstream *u, curl_socket_t fd)
{
    sockctx *x = u->spare_socks;
    if (x)
        u->spare_socks = x->next;
    else if (!(x = malloc(sizeof *x)))
        return NULL;
    if (uv_poll_init_socket(u->loop, &x->poll, fd) != 0) {
        x->next = u->spare_socks;
        u->spare_socks = x;
        return NULL;
    }
    u->handles++;
    x->poll.data = x;
    x->u = u;
    x->fd = fd;
    x->prev = NULL;
    x->next = u->live;
    if (u->live) u->live->prev = x;
    u->live = x;
    return x;
}

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    tg_upstream *u = userp;
    sockctx *x = socketp;
    (void)e;
    if (what == CURL_POLL_REMOVE) { /* curl forgets socketp itself */
        if (x) sock_close(x);
        return 0;
    }
    if (!x) {
        if (!(x = sock_open(u, fd))) return -1;
        curl_multi_assign(u->multi, fd, x);
    }
    int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&x->poll, ev, poll_cb);
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    tg_upstream *u = t->data;
    int running;
    enter(u);
    curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    leave(u);
}

/* Never acts itself: a 0 ms timeout runs on the next loop iteration, which
 * is also why tg_upcall_start never runs a callback. */
static int timer_cb(CURLM *m, long ms, void *userp)
{
    tg_upstream *u = userp;
    (void)m;
    if (ms < 0)
        uv_timer_stop(&u->timer);
    else
        uv_timer_start(&u->timer, on_timer, (uint64_t)ms, 0);
    return 0;
}

/* ---- response head and body ---- */

static bool call_live(const tg_upcall *c)
{
    return c->state == CALL_ACTIVE && !c->u->free_pending;
}

static void got_byte(tg_upcall *c)
{
    if (c->got_byte) return;
    c->got_byte = true;
    uv_timer_stop(&c->fb_timer);
}

static void head_reset(tg_upcall *c)
{
    c->status = 0;
    c->nhdr = 0;
    tg_buf_clear(&c->head);
}

/* "HTTP/1.1 200 OK", "HTTP/2 200": curl has validated it already. */
static int head_status(tg_upcall *c, tg_str line)
{
    size_t i = 0;
    if (!tg_str_has_prefix(line, TG_STR("HTTP/"))) return TG_EINVAL;
    while (i < line.n && line.p[i] != ' ')
        i++;
    while (i < line.n && line.p[i] == ' ')
        i++;
    if (line.n - i < 3) return TG_EINVAL;
    int st = 0;
    for (size_t k = i; k < i + 3; k++) {
        if (line.p[k] < '0' || line.p[k] > '9') return TG_EINVAL;
        st = st * 10 + (line.p[k] - '0');
    }
    if (st < 100) return TG_EINVAL;
    c->status = st;
    return TG_OK;
}

static int head_field(tg_upcall *c, tg_str line)
{
    tg_buf *b = &c->head;
    if (line.p[0] == ' ' ||
        line.p[0] == '\t') { /* obsolete folding: the last value is at the end */
        if (c->nhdr == 0) return TG_OK;
        tg_str more = tg_str_trim(line);
        int rc = tg_buf_add_char(b, ' ');
        if (!rc) rc = tg_buf_add_str(b, more);
        if (rc) return rc;
        hdr_span *s = &c->spans[c->nhdr - 1];
        s->vn = (uint32_t)(b->n - s->vo);
        return TG_OK;
    }
    const char *colon = memchr(line.p, ':', line.n);
    if (!colon) return TG_OK; /* not a field; curl let it through, so do we */
    if (c->nhdr == c->hdr_cap) {
        if (c->hdr_cap == UP_HEADERS_MAX) return TG_ETOOBIG;
        size_t cap = c->hdr_cap ? c->hdr_cap * 2 : 16;
        hdr_span *s = realloc(c->spans, cap * sizeof *s);
        if (!s) return TG_ENOMEM;
        c->spans = s;
        tg_header *h = realloc(c->hdrs, cap * sizeof *h);
        if (!h) return TG_ENOMEM;
        c->hdrs = h;
        c->hdr_cap = cap;
    }
    tg_str name = tg_str_trim(tg_str_make(line.p, (size_t)(colon - line.p)));
    tg_str value = tg_str_trim(tg_str_make(colon + 1, line.n - (size_t)(colon + 1 - line.p)));
    hdr_span s = {.no = (uint32_t)b->n, .nn = (uint32_t)name.n};
    int rc = tg_buf_add_str(b, name);
    s.vo = (uint32_t)b->n;
    s.vn = (uint32_t)value.n;
    if (!rc) rc = tg_buf_add_str(b, value);
    if (rc) return rc;
    c->spans[c->nhdr++] = s;
    return TG_OK;
}

/* The blank line: skip a 1xx head, deliver the final one. False when the
 * transfer must stop. */
static bool head_end(tg_upcall *c)
{
    if (c->status < 200) {
        head_reset(c);
        return true;
    }
    for (size_t i = 0; i < c->nhdr; i++) {
        hdr_span s = c->spans[i];
        c->hdrs[i] =
            (tg_header){tg_str_make(c->head.p + s.no, s.nn), tg_str_make(c->head.p + s.vo, s.vn)};
    }
    c->head_done = true;
    if (c->cbs.on_head) c->cbs.on_head(c->ud, c->status, c->hdrs, c->nhdr);
    return call_live(c);
}

static size_t header_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    tg_upcall *c = ud;
    size_t n = size * nmemb;
    if (!call_live(c)) return 0;
    got_byte(c);
    if (c->head_done) return n; /* trailers */
    tg_str line = tg_str_make(p, n);
    while (line.n && (line.p[line.n - 1] == '\n' || line.p[line.n - 1] == '\r'))
        line.n--;
    if (line.n == 0) {
        if (c->status) return head_end(c) ? n : 0;
        call_defer(c, TG_UP_OTHER, "the upstream sent an empty response head");
        return 0;
    }
    int rc = c->status ? head_field(c, line) : head_status(c, line);
    if (rc == TG_OK) return n;
    call_defer(c, TG_UP_OTHER,
               rc == TG_EINVAL    ? "the upstream sent a malformed status line"
               : rc == TG_ETOOBIG ? "the upstream response head is too large"
                                  : "out of memory reading the upstream response head");
    return 0;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    tg_upcall *c = ud;
    size_t n = size * nmemb;
    if (!call_live(c)) return 0;
    /* curl hands a large buffer over in pieces and keeps going after a
     * pause from inside the callback: hold the rest until resumed. */
    if (c->paused) return CURL_WRITEFUNC_PAUSE;
    got_byte(c);
    if (!c->head_done) {
        call_defer(c, TG_UP_OTHER, "the upstream sent a body without a head");
        return 0;
    }
    if (!c->cbs.on_body) return n;
    int r = c->cbs.on_body(c->ud, p, n);
    if (!call_live(c)) return 0; /* cancelled (or upstream freed) inside */
    if (r < 0) {
        call_defer(c, TG_UP_TOO_BIG, "the response body was refused (too big)");
        return 0;
    }
    if (r > 0) {
        /* Pause with curl_easy_pause rather than CURL_WRITEFUNC_PAUSE: the
         * caller has consumed these bytes; curl must not hand them again. */
        c->paused = true;
        curl_easy_pause(c->easy, CURLPAUSE_RECV);
    }
    return n;
}

/* ---- starting a call ---- */

static bool has_ctl(tg_str s, bool space)
{
    for (size_t i = 0; i < s.n; i++)
        if (s.p[i] == '\r' || s.p[i] == '\n' || s.p[i] == '\0' || (space && s.p[i] == ' '))
            return true;
    return false;
}

/* url\0 method\0 then one "Name: value\0" per header and "Expect:\0", with
 * our own curl_slist nodes pointing into it: curl only reads the list. */
static int build_req(tg_upcall *c, const tg_upcall_opts *o, const char **url, const char **method)
{
    size_t need = o->url.n + 1 + o->method.n + 1 + sizeof "Expect:";
    if (has_ctl(o->url, true) || has_ctl(o->method, true)) return TG_EINVAL;
    for (size_t i = 0; i < o->nheaders; i++) {
        const tg_header *h = &o->headers[i];
        if (h->name.n == 0 || has_ctl(h->name, true) || memchr(h->name.p, ':', h->name.n) ||
            has_ctl(h->value, false))
            return TG_EINVAL;
        need += h->name.n + 2 + h->value.n + 1;
    }
    size_t nn = o->nheaders + 1;
    if (nn > c->node_cap) {
        struct curl_slist *nodes = realloc(c->nodes, nn * sizeof *nodes);
        if (!nodes) return TG_ENOMEM;
        c->nodes = nodes;
        c->node_cap = nn;
    }
    tg_buf *b = &c->req;
    tg_buf_clear(b);
    int rc = tg_buf_reserve(b, need); /* no realloc below: pointers stay put */
    if (rc) return rc;
    *url = b->p;
    tg_buf_add_str(b, o->url);
    tg_buf_add_char(b, '\0');
    *method = b->p + b->n;
    tg_buf_add_str(b, o->method);
    tg_buf_add_char(b, '\0');
    for (size_t i = 0; i < o->nheaders; i++) {
        const tg_header *h = &o->headers[i];
        c->nodes[i] = (struct curl_slist){b->p + b->n, &c->nodes[i + 1]};
        tg_buf_add_str(b, h->name);
        /* "Name:" alone would make curl drop the header; "Name;" sends it empty */
        if (h->value.n)
            tg_buf_add_lit(b, ": ");
        else
            tg_buf_add_char(b, ';');
        tg_buf_add_str(b, h->value);
        tg_buf_add_char(b, '\0');
    }
    /* curl would send Expect: 100-continue for large bodies and wait a
     * round trip for it; the empty header turns that off. */
    c->nodes[o->nheaders] = (struct curl_slist){b->p + b->n, NULL};
    tg_buf_add_lit(b, "Expect:");
    tg_buf_add_char(b, '\0');
    assert(b->n <= need);
    return TG_OK;
}

static void set_method(CURL *e, const tg_upcall_opts *o, const char *method)
{
    bool body = o->body.n > 0, none = o->method.n == 0;
    bool get = none || tg_str_eq(o->method, TG_STR("GET"));
    bool post = tg_str_eq(o->method, TG_STR("POST")) || (none && body);
    if (tg_str_eq(o->method, TG_STR("HEAD"))) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (body || post) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body.n);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? o->body.p : "");
        if (!post) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    } else if (!get) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
}

static int call_setup(tg_upcall *c, const tg_upcall_opts *o)
{
    const char *url, *method;
    int rc = build_req(c, o, &url, &method);
    if (rc) return rc;
    CURL *e = c->easy;
    if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK) return TG_ENOMEM;
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)c);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* Without it, removing a transfer whose threaded DNS lookup is still
     * running joins the resolver thread: a cancel or a timeout would block
     * the worker for the rest of the lookup. With it the thread is detached
     * and frees its own data when getaddrinfo returns. */
    curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    /* Wait for a connection that may multiplex (h2) rather than open one
     * per call; costs one handshake's wait the first time per host. */
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->err);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)c);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)c);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->nodes);
    if (o->connect_timeout_ms)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
    if (o->total_timeout_ms) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)o->total_timeout_ms);
    set_method(e, o, method);
    return TG_OK;
}

static tg_upcall *call_take(tg_upstream *u)
{
    tg_upcall *c = u->spare_calls;
    if (c) {
        u->spare_calls = c->next;
        u->nspare--;
    } else if (!(c = call_new(u))) {
        return NULL;
    }
    c->next = NULL;
    c->in_multi = c->cancelled = c->paused = c->got_byte = c->head_done = false;
    c->err[0] = c->msg[0] = '\0';
    head_reset(c);
    busy_link(u, c);
    return c;
}

static void fb_timeout(uv_timer_t *t)
{
    tg_upcall *c = t->data;
    tg_upstream *u = c->u;
    if (c->state != CALL_ACTIVE) return;
    snprintf(c->msg, sizeof c->msg, "no response byte from the upstream within %u ms", c->fb_ms);
    enter(u);
    call_finish(c, TG_UP_TIMEOUT_FIRST_BYTE, c->msg, true);
    leave(u);
}

tg_upcall *tg_upcall_start(tg_upstream *u, const tg_upcall_opts *o, const tg_upcall_cbs *cbs,
                           void *ud)
{
    if (u->free_pending) return NULL;
    if (o->client != TG_UP_CURL && tg_h1_serves(o->url))
        return (tg_upcall *)tg_h1_start(u->h1, o, cbs, ud);
    tg_upcall *c = call_take(u);
    if (!c) return NULL;
    c->cbs = *cbs;
    c->ud = ud;
    c->fb_ms = o->first_byte_timeout_ms;
    c->tls = o->url.n >= 8 && tg_str_ieq(tg_str_make(o->url.p, 8), TG_STR("https://"));
    if (call_setup(c, o)) {
        call_recycle(c);
        return NULL;
    }
    if (c->fb_ms) uv_timer_start(&c->fb_timer, fb_timeout, c->fb_ms, 0);
    if (u->depth > 0) { /* maybe inside a curl callback: add at settle() */
        c->state = CALL_QUEUED;
        if (u->queued_tail)
            u->queued_tail->next = c;
        else
            u->queued = c;
        u->queued_tail = c;
        return c;
    }
    if (curl_multi_add_handle(u->multi, c->easy) != CURLM_OK) {
        call_recycle(c);
        return NULL;
    }
    c->in_multi = true;
    c->state = CALL_ACTIVE;
    return c;
}

void tg_upcall_cancel(tg_upcall *c)
{
    if (!c) return;
    if (c->kind == TG_UPCALL_H1) {
        tg_h1_cancel((tg_h1call *)c);
        return;
    }
    switch (c->state) {
    case CALL_QUEUED:
    case CALL_DEFERRED:
        c->cancelled = true;
        break;
    case CALL_ACTIVE:
        if (c->u->depth > 0) { /* maybe inside curl: remove at settle() */
            c->cancelled = true;
            call_defer(c, TG_UP_OTHER, NULL);
        } else {
            call_finish(c, TG_UP_OTHER, NULL, false);
        }
        break;
    case CALL_DONE: /* from its own on_done: it ends when that returns */
    case CALL_IDLE:
        break;
    }
}

void tg_upcall_resume(tg_upcall *c)
{
    if (c && c->kind == TG_UPCALL_H1) {
        tg_h1_resume((tg_h1call *)c);
        return;
    }
    if (!c || c->state != CALL_ACTIVE || !c->paused) return;
    tg_upstream *u = c->u;
    c->paused = false;
    enter(u);
    /* curl hands over what it held from inside curl_easy_pause: write_cb
     * (and on_body) may run, pause again or cancel before it returns. */
    CURLcode rc = curl_easy_pause(c->easy, CURLPAUSE_CONT);
    if (rc != CURLE_OK && c->state == CALL_ACTIVE) {
        snprintf(c->msg, sizeof c->msg, "curl_easy_pause: %s", curl_easy_strerror(rc));
        call_defer(c, TG_UP_OTHER, c->msg);
    }
    leave(u);
}

/* ---- the upstream ---- */

tg_upstream *tg_upstream_new(uv_loop_t *loop)
{
    pthread_once(&g_once, global_init);
    if (g_init_rc != CURLE_OK) return NULL;
    tg_upstream *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->loop = loop;
    u->multi = curl_multi_init();
    u->h1 = tg_h1_new(loop);
    if (!u->multi || !u->h1) {
        if (u->multi) curl_multi_cleanup(u->multi);
        free(u->h1);
        free(u);
        return NULL;
    }
    uv_timer_init(loop, &u->timer);
    u->timer.data = u;
    u->handles = 1;
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, (void *)u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, (void *)u);
    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, (long)UP_MAXCONNECTS);
    curl_multi_setopt(u->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    return u;
}

static void timer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void do_free(tg_upstream *u)
{
    u->dead = true;
    while (u->busy) {
        tg_upcall *c = u->busy;
        if (c->in_multi) curl_multi_remove_handle(u->multi, c->easy);
        c->in_multi = false;
        busy_unlink(u, c);
        call_destroy(c);
    }
    u->queued = u->queued_tail = u->deferred = NULL;
    while (u->spare_calls) {
        tg_upcall *c = u->spare_calls;
        u->spare_calls = c->next;
        call_destroy(c);
    }
    curl_multi_cleanup(u->multi); /* closes the cached connections */
    u->multi = NULL;
    while (u->live)
        sock_close(u->live);
    while (u->spare_socks) {
        sockctx *x = u->spare_socks;
        u->spare_socks = x->next;
        free(x);
    }
    uv_close((uv_handle_t *)&u->timer, timer_closed);
}

void tg_upstream_free(tg_upstream *u)
{
    if (!u || u->free_pending) return;
    u->free_pending = true;
    tg_h1_free(u->h1);
    if (u->depth == 0 && !u->settling) do_free(u);
}
