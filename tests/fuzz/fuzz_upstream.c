/* libFuzzer target: upstream answers, the untrusted bytes the built-in
 * HTTP/1.1 client (http/h1.c) parses. An in-process loopback server
 * answers each call with the input, then closes; the call goes through
 * tg_upcall_start as the relay makes it. Checks: on_done comes exactly
 * once, never inside tg_upcall_start; on_head at most once and before any
 * body, with a final (non-1xx) status; no more body bytes than were sent;
 * a call that ends OK had a head. Keep-alive connections left by one input
 * are reused by the next, so the stale-connection retry is exercised too. */
#include "http/upstream.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    uv_tcp_t tcp;
    const uint8_t *answer;
    size_t n;
    bool answered;
} peer;

static uv_loop_t loop;
static uv_tcp_t listener;
static tg_upstream *up;
static char url[64];
static const uint8_t *g_data;
static size_t g_size;

typedef struct {
    int heads, dones;
    bool in_start;
    size_t body;
    tg_up_result r;
} probe;

static void peer_closed(uv_handle_t *h) { free(h->data); }

static void peer_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)h;
    (void)hint;
    static char buf[65536];
    *b = uv_buf_init(buf, sizeof buf);
}

static void peer_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    (void)b;
    peer *p = s->data;
    if (nread < 0 || p->answered) {
        if (nread < 0 && !uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, peer_closed);
        return;
    }
    if (nread == 0) return;
    p->answered = true; /* one request per connection: answer, then close */
    uv_buf_t out = uv_buf_init((char *)g_data, (unsigned)g_size);
    uv_try_write(s, &out, 1);
    uv_close((uv_handle_t *)s, peer_closed);
}

static void on_peer(uv_stream_t *l, int status)
{
    if (status < 0) return;
    peer *p = calloc(1, sizeof *p);
    uv_tcp_init(&loop, &p->tcp);
    p->tcp.data = p;
    if (uv_accept(l, (uv_stream_t *)&p->tcp)) {
        uv_close((uv_handle_t *)&p->tcp, peer_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&p->tcp, peer_alloc, peer_read);
}

static void on_head(void *ud, int status, const tg_header *h, size_t nh)
{
    probe *pr = ud;
    (void)h;
    assert(!pr->in_start && pr->heads == 0 && pr->body == 0 && pr->dones == 0);
    assert(status >= 200 && nh <= 256);
    pr->heads++;
}

static int on_body(void *ud, const char *p, size_t n)
{
    probe *pr = ud;
    (void)p;
    assert(!pr->in_start && pr->heads == 1 && pr->dones == 0);
    pr->body += n;
    assert(pr->body <= g_size);
    return 0;
}

static void on_done(void *ud, tg_up_result r, const char *detail)
{
    probe *pr = ud;
    assert(!pr->in_start && pr->dones == 0 && detail);
    pr->dones++;
    pr->r = r;
    if (r == TG_UP_OK) assert(pr->heads == 1);
}

static void setup(void)
{
    struct sockaddr_in a;
    uv_loop_init(&loop);
    uv_tcp_init(&loop, &listener);
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&listener, (struct sockaddr *)&a, 0);
    uv_listen((uv_stream_t *)&listener, 128, on_peer);
    int len = sizeof a;
    uv_tcp_getsockname(&listener, (struct sockaddr *)&a, &len);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/chat/completions", ntohs(a.sin_port));
    up = tg_upstream_new(&loop);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) setup(), ready = true;
    g_data = data;
    g_size = size;
    probe pr = {0};
    static const tg_upcall_cbs cbs = {on_head, on_body, on_done};
    tg_upcall_opts o = {.method = TG_STR("POST"), .url = tg_str_c(url), .body = TG_STR("{}"),
                        .connect_timeout_ms = 1000, .first_byte_timeout_ms = 1000,
                        .total_timeout_ms = 2000};
    pr.in_start = true;
    tg_upcall *c = tg_upcall_start(up, &o, &cbs, &pr);
    pr.in_start = false;
    assert(c);
    while (!pr.dones) uv_run(&loop, UV_RUN_ONCE);
    assert(pr.dones == 1);
    return 0;
}
