/* The upstream client against a real libuv loop and a tiny HTTP/1.1 server.
 *
 * The server is test scaffolding: blocking sockets on 127.0.0.1, a thread
 * per connection, keep-alive, behaviour chosen by the request path. It
 * counts the connections it accepted, so connection reuse can be checked.
 * Each test arms alarm() so that a hang fails the run instead of stalling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/buf.h"
#include "http/upstream.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- the test server ---- */

#define BIG_N (2 * 1024 * 1024)
#define SRV_BUF (BIG_N + 64 * 1024)
static const char OK_BODY[] = "hello from upstream\n";
static const char CHUNKED_BODY[] = "alpha beta gamma delta";
static char big_body[BIG_N];

static struct {
    int fd;
    uint16_t port;
    pthread_t thr;
    atomic_int accepted, active;
} srv;

typedef struct {
    char method[16], path[64], echo[256], expect[64];
    bool has_echo;
    size_t clen;
} srv_req;

enum { SRV_KEEP, SRV_CLOSE, SRV_CLOSED, SRV_DROP_NEXT };

static void send_all(int fd, const void *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return; /* the client left: fine for slow paths */
        p = (const char *)p + w;
        n -= (size_t)w;
    }
}

static void send_str(int fd, const char *s)
{
    send_all(fd, s, strlen(s));
}

/* Copies the value of header `name` (case-insensitive) into out. */
static bool srv_header(const char *head, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = memchr(head, '\n', n), *end = head + n;
    while (p && p + 1 < end) {
        const char *line = p + 1, *eol = memchr(line, '\r', (size_t)(end - line));
        if (!eol) break;
        if ((size_t)(eol - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1;
            while (v < eol && *v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(eol - v), v);
            return true;
        }
        p = eol + 1;
    }
    return false;
}

static void srv_parse(const char *head, size_t n, srv_req *rq)
{
    char cl[32];
    memset(rq, 0, sizeof *rq);
    sscanf(head, "%15s %63s", rq->method, rq->path);
    if (srv_header(head, n, "Content-Length", cl, sizeof cl)) rq->clen = strtoul(cl, NULL, 10);
    rq->has_echo = srv_header(head, n, "X-Echo", rq->echo, sizeof rq->echo);
    if (!srv_header(head, n, "Expect", rq->expect, sizeof rq->expect))
        snprintf(rq->expect, sizeof rq->expect, "none");
}

static void srv_send_body(int fd, const char *extra, const void *body, size_t n)
{
    char h[512];
    snprintf(h, sizeof h, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n%s\r\n", n, extra);
    send_str(fd, h);
    send_all(fd, body, n);
}

static int srv_answer(int fd, const srv_req *rq, const char *body)
{
    const char *p = rq->path;
    if (!strcmp(p, "/ok")) {
        srv_send_body(fd, "X-Test: ok\r\nContent-Type: text/plain\r\n", OK_BODY,
                      sizeof OK_BODY - 1);
    } else if (!strcmp(p, "/big")) {
        srv_send_body(fd, "", big_body, BIG_N);
    } else if (!strcmp(p, "/chunked")) {
        send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        const char *parts[] = {"alpha ", "beta ", "gamma ", "delta"};
        for (size_t i = 0; i < 4; i++) {
            char c[64];
            usleep(100 * 1000);
            snprintf(c, sizeof c, "%zx\r\n%s\r\n", strlen(parts[i]), parts[i]);
            send_str(fd, c);
        }
        usleep(100 * 1000);
        send_str(fd, "0\r\n\r\n");
    } else if (!strcmp(p, "/slow-head")) {
        usleep(800 * 1000);
        srv_send_body(fd, "", OK_BODY, sizeof OK_BODY - 1);
        return SRV_CLOSE;
    } else if (!strcmp(p, "/reset")) {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd);
        return SRV_CLOSED;
    } else if (!strcmp(p, "/close-mid")) {
        send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
        send_all(fd, big_body, 50);
        return SRV_CLOSE;
    } else if (!strcmp(p, "/echo")) {
        char h[512];
        int n = snprintf(h, sizeof h, "X-Method: %s\r\nX-Expect: %s\r\n", rq->method, rq->expect);
        if (rq->has_echo) snprintf(h + n, sizeof h - (size_t)n, "X-Echo: %s\r\n", rq->echo);
        srv_send_body(fd, h, body, rq->clen);
    } else if (!strcmp(p, "/then-drop")) {
        /* answers keep-alive, then closes on the next request unanswered:
         * a connection that went stale as the client reused it */
        srv_send_body(fd, "", OK_BODY, sizeof OK_BODY - 1);
        return SRV_DROP_NEXT;
    } else if (!strcmp(p, "/interim")) {
        send_str(fd, "HTTP/1.1 100 Continue\r\n\r\n"
                     "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: yes\r\n\r\nok");
    } else {
        send_str(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
    return SRV_KEEP;
}

static void *srv_conn(void *arg)
{
    int fd = (int)(intptr_t)arg, what = SRV_CLOSE;
    bool drop = false;
    char *buf = malloc(SRV_BUF);
    size_t have = 0;
    while (buf) {
        char *end;
        while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
            ssize_t r = have < SRV_BUF ? recv(fd, buf + have, SRV_BUF - have, 0) : -1;
            if (r <= 0) goto out;
            have += (size_t)r;
        }
        size_t hlen = (size_t)(end + 4 - buf);
        srv_req rq;
        srv_parse(buf, hlen, &rq);
        if (hlen + rq.clen > SRV_BUF) goto out;
        while (have < hlen + rq.clen) {
            ssize_t r = recv(fd, buf + have, SRV_BUF - have, 0);
            if (r <= 0) goto out;
            have += (size_t)r;
        }
        if (drop) break;
        what = srv_answer(fd, &rq, buf + hlen);
        drop = what == SRV_DROP_NEXT;
        if (drop) what = SRV_KEEP;
        if (what != SRV_KEEP) break;
        have -= hlen + rq.clen;
        memmove(buf, buf + hlen + rq.clen, have);
    }
out:
    if (what != SRV_CLOSED) close(fd);
    free(buf);
    atomic_fetch_sub(&srv.active, 1);
    return NULL;
}

static void *srv_accept(void *arg)
{
    (void)arg;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 * 1024);
    for (;;) {
        int fd = accept(srv.fd, NULL, NULL);
        if (fd < 0) break; /* shut down */
        int one = 1;       /* head and body go in two writes: no Nagle stall */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        atomic_fetch_add(&srv.accepted, 1);
        atomic_fetch_add(&srv.active, 1);
        pthread_t t;
        if (pthread_create(&t, &at, srv_conn, (void *)(intptr_t)fd) != 0) {
            close(fd);
            atomic_fetch_sub(&srv.active, 1);
        }
    }
    pthread_attr_destroy(&at);
    return NULL;
}

/* A listening socket on 127.0.0.1 and an ephemeral port. */
static int listen_any(int backlog, uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, backlog) ||
        getsockname(fd, (struct sockaddr *)&a, &al))
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static int srv_start(void **state)
{
    (void)state;
    for (size_t i = 0; i < BIG_N; i++)
        big_body[i] = (char)('a' + (i * 7 + i / 4096) % 26);
    srv.fd = listen_any(1024, &srv.port);
    if (srv.fd < 0) return -1;
    return pthread_create(&srv.thr, NULL, srv_accept, NULL);
}

static int srv_stop(void **state)
{
    (void)state;
    shutdown(srv.fd, SHUT_RDWR); /* wakes accept() */
    pthread_join(srv.thr, NULL);
    close(srv.fd);
    for (int i = 0; i < 500 && atomic_load(&srv.active) > 0; i++)
        usleep(10 * 1000);
    return atomic_load(&srv.active) == 0 ? 0 : -1;
}

/* A slow DNS server, by interposing on libc: "slow.test" takes 500 ms to
 * fail; every other name resolves as usual. */
int getaddrinfo(const char *node, const char *svc, const struct addrinfo *hints,
                struct addrinfo **res)
{
    typedef int gai_fn(const char *, const char *, const struct addrinfo *, struct addrinfo **);
    if (node && !strcmp(node, "slow.test")) {
        usleep(500 * 1000);
        return EAI_NONAME;
    }
    gai_fn *real = (gai_fn *)dlsym(RTLD_NEXT, "getaddrinfo");
    return real(node, svc, hints, res);
}

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- the client side: a loop, an upstream and probes ---- */

typedef struct {
    uv_loop_t loop;
    uv_timer_t wd, rt; /* watchdog for run_until; resumes paused probes */
    tg_upstream *u;
} fixture;

static fixture *F;
static bool g_in_start; /* callbacks must never run inside tg_upcall_start */
static tg_up_client g_client; /* which client the tests run against */

typedef struct probe probe;
struct probe {
    tg_upcall *call;
    int heads, bodies, dones, pauses;
    int status;
    const tg_header *h; /* the views on_head got: checked again in on_done */
    size_t nh;
    char hcopy[4096];
    tg_buf body;
    tg_up_result r;
    char detail[256];
    bool cancel_in_head, cancel_in_body, cancel_in_done, free_in_head, refuse, pause;
    bool paused;
    int *counter;               /* incremented by on_done */
    void (*then)(probe *);      /* run from on_head */
    void (*then_done)(probe *); /* run from on_done */
    probe *next;                /* started by then / then_done */
    probe *victim;              /* cancelled from on_head */
};

static void probe_init(probe *p)
{
    memset(p, 0, sizeof *p);
    tg_buf_init(&p->body, 4 * BIG_N);
}

static void fmt_headers(const tg_header *h, size_t nh, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < nh && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%.*s: %.*s\n", TG_STR_FMT(h[i].name),
                              TG_STR_FMT(h[i].value));
}

/* The value of a response header from the copy taken at on_head; NULL when
 * absent. */
static const char *hget(const probe *p, const char *name)
{
    static char v[512];
    size_t nl = strlen(name);
    for (const char *l = p->hcopy; *l;) {
        const char *eol = strchr(l, '\n');
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            snprintf(v, sizeof v, "%.*s", (int)(eol - l - nl - 2), l + nl + 2);
            return v;
        }
        l = eol + 1;
    }
    return NULL;
}

static void resume_cb(uv_timer_t *t)
{
    probe *p = t->data;
    if (!p->call) return; /* ended while paused: every byte was handed over */
    p->paused = false;
    tg_upcall_resume(p->call);
}

static void p_head(void *ud, int status, const tg_header *h, size_t nh)
{
    probe *p = ud;
    assert_false(g_in_start);
    assert_int_equal(p->heads, 0);
    assert_int_equal(p->dones, 0);
    p->heads++;
    p->status = status;
    p->h = h;
    p->nh = nh;
    fmt_headers(h, nh, p->hcopy, sizeof p->hcopy);
    if (p->then) p->then(p);
    if (p->victim) tg_upcall_cancel(p->victim->call);
    if (p->cancel_in_head) tg_upcall_cancel(p->call);
    if (p->free_in_head) {
        tg_upstream_free(F->u);
        F->u = NULL;
    }
}

static int p_body(void *ud, const char *s, size_t n)
{
    probe *p = ud;
    assert_false(g_in_start);
    assert_int_equal(p->heads, 1);
    assert_int_equal(p->dones, 0);
    assert_false(p->paused);
    p->bodies++;
    uv_stop(&F->loop); /* run_until: check again before blocking in poll */
    assert_int_equal(tg_buf_append(&p->body, s, n), 0);
    if (p->cancel_in_body) {
        tg_upcall_cancel(p->call);
        return 0;
    }
    if (p->refuse) return -1;
    if (p->pause) {
        p->paused = true;
        p->pauses++;
        F->rt.data = p;
        uv_timer_start(&F->rt, resume_cb, 1, 0);
        return 1;
    }
    return 0;
}

static void p_done(void *ud, tg_up_result r, const char *detail)
{
    probe *p = ud;
    assert_false(g_in_start);
    assert_int_equal(p->dones, 0);
    assert_non_null(detail);
    p->dones++;
    uv_stop(&F->loop);
    p->r = r;
    snprintf(p->detail, sizeof p->detail, "%s", detail);
    if (p->heads) { /* the head's views are still good */
        char now[sizeof p->hcopy];
        fmt_headers(p->h, p->nh, now, sizeof now);
        assert_string_equal(now, p->hcopy);
    }
    if (p->cancel_in_done) tg_upcall_cancel(p->call); /* a no-op */
    p->call = NULL;
    if (p->then_done) p->then_done(p);
    if (p->counter) (*p->counter)++;
}

static const tg_upcall_cbs CBS = {p_head, p_body, p_done};

typedef struct {
    const char *method, *path;
    tg_str body;
    const tg_header *h;
    size_t nh;
    uint16_t port; /* 0: the test server */
    uint32_t connect_ms, fb_ms, total_ms;
} req;

static tg_upcall *go(tg_upstream *u, probe *p, req q)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", q.port ? q.port : srv.port, q.path);
    tg_upcall_opts o = {
        .method = tg_str_c(q.method ? q.method : "GET"),
        .url = tg_str_c(url),
        .headers = q.h,
        .nheaders = q.nh,
        .body = q.body,
        .connect_timeout_ms = q.connect_ms ? q.connect_ms : 2000,
        .first_byte_timeout_ms = q.fb_ms,
        .total_timeout_ms = q.total_ms,
        .client = g_client,
    };
    g_in_start = true;
    p->call = tg_upcall_start(u, &o, &CBS, p);
    g_in_start = false;
    return p->call;
}

static void wd_cb(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until *n reaches target or ms pass. */
static void run_until(const int *n, int target, uint64_t ms)
{
    uv_update_time(&F->loop);
    uint64_t deadline = uv_now(&F->loop) + ms;
    uv_timer_start(&F->wd, wd_cb, ms, 0);
    while ((!n || *n < target) && uv_now(&F->loop) < deadline)
        uv_run(&F->loop, UV_RUN_ONCE);
    uv_timer_stop(&F->wd);
}

static void run_for(uint64_t ms)
{
    run_until(NULL, 0, ms);
}

/* One call to completion. */
static void call1(probe *p, req q)
{
    assert_non_null(go(F->u, p, q));
    run_until(&p->dones, 1, 5000);
    assert_int_equal(p->dones, 1);
}

static int setup(void **state)
{
    alarm(30);
    F = calloc(1, sizeof *F);
    if (!F || uv_loop_init(&F->loop)) return -1;
    uv_timer_init(&F->loop, &F->wd);
    uv_timer_init(&F->loop, &F->rt);
    F->u = tg_upstream_new(&F->loop);
    *state = F;
    return F->u ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tg_upstream_free(F->u);
    uv_close((uv_handle_t *)&F->wd, NULL);
    uv_close((uv_handle_t *)&F->rt, NULL);
    uv_run(&F->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&F->loop);
    free(F);
    F = NULL;
    alarm(0);
    return rc == 0 ? 0 : -1;
}

/* ---- tests ---- */

static void test_result_str(void **state)
{
    (void)state;
    assert_string_equal(tg_up_result_str(TG_UP_OK), "ok");
    assert_string_equal(tg_up_result_str(TG_UP_CONNECT), "connect");
    assert_string_equal(tg_up_result_str(TG_UP_TIMEOUT_FIRST_BYTE), "timeout_first_byte");
    assert_string_equal(tg_up_result_str(TG_UP_TOO_BIG), "too_big");
    assert_string_equal(tg_up_result_str((tg_up_result)99), "other");
}

static void test_ok(void **state)
{
    (void)state;
    probe p;
    probe_init(&p);
    p.cancel_in_done = true;
    call1(&p, (req){.path = "/ok"});
    assert_int_equal(p.r, TG_UP_OK);
    assert_string_equal(p.detail, "");
    assert_int_equal(p.heads, 1);
    assert_int_equal(p.status, 200);
    assert_string_equal(hget(&p, "x-test"), "ok");
    assert_string_equal(hget(&p, "Content-Type"), "text/plain");
    assert_string_equal(hget(&p, "content-length"), "20");
    assert_int_equal(p.body.n, sizeof OK_BODY - 1);
    assert_memory_equal(p.body.p, OK_BODY, p.body.n);
    tg_buf_release(&p.body);
}

static void test_interim_heads_skipped(void **state)
{
    (void)state;
    probe p;
    probe_init(&p);
    call1(&p, (req){.path = "/interim"});
    assert_int_equal(p.r, TG_UP_OK);
    assert_int_equal(p.heads, 1);
    assert_int_equal(p.status, 200);
    assert_string_equal(hget(&p, "X-Final"), "yes");
    assert_null(hget(&p, "Link"));
    assert_int_equal(p.body.n, 2);
    tg_buf_release(&p.body);
}

static void test_chunked(void **state)
{
    (void)state;
    probe p;
    probe_init(&p);
    /* the head comes at once, the body over ~500 ms: the first-byte limit
     * (250 ms, generous for the head on a loaded machine) stops applying
     * once the first byte is in */
    call1(&p, (req){.path = "/chunked", .fb_ms = 250});
    assert_int_equal(p.r, TG_UP_OK);
    assert_int_equal(p.status, 200);
    assert_true(p.bodies >= 2); /* the pieces arrive 100 ms apart */
    assert_int_equal(p.body.n, sizeof CHUNKED_BODY - 1);
    assert_memory_equal(p.body.p, CHUNKED_BODY, p.body.n);
    tg_buf_release(&p.body);
}

static void test_big_body(void **state)
{
    (void)state;
    probe p;
    probe_init(&p);
    call1(&p, (req){.path = "/big"});
    assert_int_equal(p.r, TG_UP_OK);
    assert_int_equal(p.body.n, BIG_N);
    assert_memory_equal(p.body.p, big_body, BIG_N);
    tg_buf_release(&p.body);
}

static void test_echo(void **state)
{
    (void)state;
    const tg_header hs[] = {{TG_STR("X-Echo"), TG_STR("abc")},
                            {TG_STR("Content-Type"), TG_STR("application/json")}};
    /* A POST over 1 MiB, where curl would ask for 100-continue and wait a
     * round trip: no Expect is sent, the body arrives whole. */
    probe p;
    probe_init(&p);
    tg_str body = tg_str_make(big_body, 1536 * 1024);
    call1(&p, (req){.method = "POST", .path = "/echo", .body = body, .h = hs, .nh = 2});
    assert_int_equal(p.r, TG_UP_OK);
    assert_string_equal(hget(&p, "X-Method"), "POST");
    assert_string_equal(hget(&p, "X-Expect"), "none");
    assert_string_equal(hget(&p, "X-Echo"), "abc");
    assert_int_equal(p.body.n, body.n);
    assert_memory_equal(p.body.p, body.p, body.n);
    tg_buf_release(&p.body);

    /* Another method with a body; an empty header value is still sent. */
    const tg_header empty[] = {{TG_STR("X-Echo"), TG_STR("")}};
    probe_init(&p);
    call1(
        &p,
        (req){.method = "PUT", .path = "/echo", .body = TG_STR("{\"a\":1}"), .h = empty, .nh = 1});
    assert_int_equal(p.r, TG_UP_OK);
    assert_string_equal(hget(&p, "X-Method"), "PUT");
    assert_string_equal(hget(&p, "X-Echo"), "");
    assert_int_equal(p.body.n, 7);
    assert_memory_equal(p.body.p, "{\"a\":1}", 7);
    tg_buf_release(&p.body);

    const char *methods[] = {"GET", "DELETE"};
    for (size_t i = 0; i < 2; i++) {
        probe_init(&p);
        call1(&p, (req){.method = methods[i], .path = "/echo"});
        assert_int_equal(p.r, TG_UP_OK);
        assert_string_equal(hget(&p, "X-Method"), methods[i]);
        assert_null(hget(&p, "X-Echo"));
        assert_int_equal(p.body.n, 0);
        assert_int_equal(p.bodies, 0);
        tg_buf_release(&p.body);
    }
}

static void test_reset(void **state)
{
    (void)state;
    probe p;
    probe_init(&p);
    call1(&p, (req){.path = "/reset"});
    assert_int_equal(p.r, TG_UP_RESET);
    assert_int_equal(p.heads, 0);
    assert_true(strlen(p.detail) > 0);
    tg_buf_release(&p.body);
}

static void test_close_mid_body(void **state)
{
    (void)state;
    probe p;
    probe_init(&p);
    call1(&p, (req){.path = "/close-mid"});
    assert_int_equal(p.r, TG_UP_RESET);
    assert_int_equal(p.heads, 1);
    assert_int_equal(p.status, 200);
    assert_int_equal(p.body.n, 50);
    assert_memory_equal(p.body.p, big_body, 50);
    tg_buf_release(&p.body);
}

static void test_connect_refused(void **state)
{
    (void)state;
    uint16_t port;
    int fd = listen_any(1, &port);
    assert_true(fd >= 0);
    close(fd); /* nobody listens there now */
    probe p;
    probe_init(&p);
    call1(&p, (req){.path = "/ok", .port = port});
    assert_int_equal(p.r, TG_UP_CONNECT);
    assert_int_equal(p.heads, 0);
    assert_int_equal(p.bodies, 0);
    assert_true(strlen(p.detail) > 0);
    tg_buf_release(&p.body);
}

static void test_connect_timeout(void **state)
{
    (void)state;
    /* A listener whose accept queue is full drops further SYNs. */
    uint16_t port;
    int l = listen_any(0, &port), fill[2];
    assert_true(l >= 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < 2; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    usleep(50 * 1000);
    probe p;
    probe_init(&p);
    call1(&p, (req){.path = "/ok", .port = port, .connect_ms = 200});
    assert_int_equal(p.r, TG_UP_TIMEOUT_CONNECT);
    assert_int_equal(p.heads, 0);
    for (int i = 0; i < 2; i++)
        close(fill[i]);
    close(l);
    tg_buf_release(&p.body);
}

static void test_first_byte_timeout(void **state)
{
    (void)state;
    probe p;
    probe_init(&p);
    uv_update_time(&F->loop);
    uint64_t t0 = uv_now(&F->loop);
    call1(&p, (req){.path = "/slow-head", .fb_ms = 150});
    uint64_t took = uv_now(&F->loop) - t0;
    assert_int_equal(p.r, TG_UP_TIMEOUT_FIRST_BYTE);
    assert_int_equal(p.heads, 0);
    assert_true(took >= 140 && took < 600);
    assert_non_null(strstr(p.detail, "150 ms"));
    /* nothing more arrives once the server does answer */
    run_for(900);
    assert_int_equal(p.dones, 1);
    assert_int_equal(p.heads, 0);
    tg_buf_release(&p.body);
}

static void test_total_timeout(void **state)
{
    (void)state;
    probe p;
    probe_init(&p);
    call1(&p, (req){.path = "/slow-head", .total_ms = 150});
    assert_int_equal(p.r, TG_UP_TIMEOUT_TOTAL);
    assert_int_equal(p.heads, 0);
    tg_buf_release(&p.body);

    /* on a reused connection too (connected, no byte yet) */
    int before = atomic_load(&srv.accepted);
    for (int i = 0; i < 2; i++) {
        probe_init(&p);
        call1(&p, i ? (req){.path = "/slow-head", .total_ms = 150} : (req){.path = "/ok"});
        assert_int_equal(p.r, i ? TG_UP_TIMEOUT_TOTAL : TG_UP_OK);
        tg_buf_release(&p.body);
    }
    assert_int_equal(atomic_load(&srv.accepted) - before, 1);
}

static void test_cancel(void **state)
{
    (void)state;
    /* from inside on_head */
    probe p;
    probe_init(&p);
    p.cancel_in_head = true;
    assert_non_null(go(F->u, &p, (req){.path = "/chunked"}));
    run_for(300); /* the whole body would have come by now */
    assert_int_equal(p.heads, 1);
    assert_int_equal(p.bodies, 0);
    assert_int_equal(p.dones, 0);
    tg_buf_release(&p.body);

    /* from inside on_body */
    probe_init(&p);
    p.cancel_in_body = true;
    assert_non_null(go(F->u, &p, (req){.path = "/chunked"}));
    run_for(300);
    assert_int_equal(p.bodies, 1);
    assert_int_equal(p.dones, 0);
    tg_buf_release(&p.body);

    /* from outside any callback, mid-body */
    probe_init(&p);
    assert_non_null(go(F->u, &p, (req){.path = "/chunked"}));
    run_until(&p.bodies, 1, 2000);
    assert_int_equal(p.bodies, 1);
    tg_upcall_cancel(p.call);
    run_for(300);
    assert_int_equal(p.bodies, 1);
    assert_int_equal(p.dones, 0);
    tg_buf_release(&p.body);

    /* another call, from inside on_head */
    probe v;
    probe_init(&p);
    probe_init(&v);
    assert_non_null(go(F->u, &v, (req){.path = "/chunked"}));
    run_until(&v.heads, 1, 2000);
    p.victim = &v;
    assert_non_null(go(F->u, &p, (req){.path = "/ok"}));
    run_until(&p.dones, 1, 2000);
    run_for(200);
    assert_int_equal(p.r, TG_UP_OK);
    assert_int_equal(v.heads, 1);
    assert_int_equal(v.dones, 0);
    assert_true(v.bodies <= 1);
    tg_buf_release(&p.body);
    tg_buf_release(&v.body);

    /* before anything happened */
    probe_init(&p);
    assert_non_null(go(F->u, &p, (req){.path = "/ok"}));
    tg_upcall_cancel(p.call);
    run_for(100);
    assert_int_equal(p.heads + p.bodies + p.dones, 0);
    tg_buf_release(&p.body);

    /* the upstream still works */
    probe_init(&p);
    call1(&p, (req){.path = "/ok"});
    assert_int_equal(p.r, TG_UP_OK);
    tg_buf_release(&p.body);
}

static void test_pause_resume(void **state)
{
    (void)state;
    const char *paths[] = {"/big", "/chunked"};
    for (size_t i = 0; i < 2; i++) {
        probe p;
        probe_init(&p);
        p.pause = true;
        call1(&p, (req){.path = paths[i]});
        assert_int_equal(p.r, TG_UP_OK);
        assert_true(p.pauses >= 2);
        if (i == 0) {
            assert_int_equal(p.body.n, BIG_N);
            assert_memory_equal(p.body.p, big_body, BIG_N);
        } else {
            assert_int_equal(p.body.n, sizeof CHUNKED_BODY - 1);
            assert_memory_equal(p.body.p, CHUNKED_BODY, p.body.n);
        }
        uv_timer_stop(&F->rt);
        tg_buf_release(&p.body);
    }
}

static void test_too_big(void **state)
{
    (void)state;
    probe p;
    probe_init(&p);
    p.refuse = true;
    call1(&p, (req){.path = "/big"});
    assert_int_equal(p.r, TG_UP_TOO_BIG);
    assert_int_equal(p.bodies, 1);
    run_for(50);
    assert_int_equal(p.bodies, 1);
    assert_int_equal(p.dones, 1);
    tg_buf_release(&p.body);
}

/* A request on a reused connection that the upstream drops unanswered is
 * sent again on a fresh connection, never reported as a failure. */
static void test_stale_connection_retried(void **state)
{
    (void)state;
    int before = atomic_load(&srv.accepted);
    const char *paths[] = {"/then-drop", "/ok"};
    for (int i = 0; i < 2; i++) {
        probe p;
        probe_init(&p);
        call1(&p, (req){.path = paths[i]});
        assert_int_equal(p.r, TG_UP_OK);
        assert_int_equal(p.status, 200);
        assert_int_equal(p.body.n, sizeof OK_BODY - 1);
        tg_buf_release(&p.body);
    }
    assert_int_equal(atomic_load(&srv.accepted) - before, 2);
}

static void test_connection_reused(void **state)
{
    (void)state;
    int before = atomic_load(&srv.accepted);
    for (int i = 0; i < 2; i++) {
        probe p;
        probe_init(&p);
        call1(&p, (req){.path = "/ok"});
        assert_int_equal(p.r, TG_UP_OK);
        tg_buf_release(&p.body);
    }
    assert_int_equal(atomic_load(&srv.accepted) - before, 1);
}

static void test_parallel(void **state)
{
    (void)state;
    enum { N = 200 };
    probe *ps = calloc(N, sizeof *ps);
    int done = 0;
    assert_non_null(ps);
    for (int i = 0; i < N; i++) {
        probe_init(&ps[i]);
        ps[i].counter = &done;
        assert_non_null(go(F->u, &ps[i],
                           (req){.path = i % 2 ? "/ok" : "/echo",
                                 .method = "POST",
                                 .body = tg_str_make(big_body + i, 1000)}));
    }
    run_until(&done, N, 15000);
    assert_int_equal(done, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ps[i].r, TG_UP_OK);
        if (i % 2) {
            assert_int_equal(ps[i].body.n, sizeof OK_BODY - 1);
        } else {
            assert_int_equal(ps[i].body.n, 1000);
            assert_memory_equal(ps[i].body.p, big_body + i, 1000);
        }
        tg_buf_release(&ps[i].body);
    }
    free(ps);
}

static void start_next(probe *p)
{
    assert_non_null(go(F->u, p->next, (req){.path = "/chunked"}));
}

static void test_start_from_callback(void **state)
{
    (void)state;
    probe a, b;
    probe_init(&a);
    probe_init(&b);
    a.then = start_next;
    a.next = &b;
    call1(&a, (req){.path = "/ok"});
    run_until(&b.dones, 1, 3000);
    assert_int_equal(a.r, TG_UP_OK);
    assert_int_equal(b.r, TG_UP_OK);
    assert_int_equal(b.body.n, sizeof CHUNKED_BODY - 1);
    tg_buf_release(&a.body);
    tg_buf_release(&b.body);
}

static void test_start_from_done(void **state)
{
    (void)state;
    probe a, b;
    probe_init(&a);
    probe_init(&b);
    a.then_done = start_next;
    a.next = &b;
    call1(&a, (req){.path = "/ok"});
    run_until(&b.dones, 1, 3000);
    assert_int_equal(b.r, TG_UP_OK);
    assert_int_equal(b.body.n, sizeof CHUNKED_BODY - 1);
    tg_buf_release(&a.body);
    tg_buf_release(&b.body);
}

static void test_cancel_during_dns_does_not_block(void **state)
{
    (void)state;
    probe p;
    probe_init(&p);
    tg_upcall_opts o = {.method = TG_STR("GET"), .url = TG_STR("http://slow.test:1/")};
    g_in_start = true;
    p.call = tg_upcall_start(F->u, &o, &CBS, &p);
    g_in_start = false;
    assert_non_null(p.call);
    run_for(100); /* the lookup is under way */
    double t0 = mono_s();
    tg_upcall_cancel(p.call);
    assert_true(mono_s() - t0 < 0.1);
    /* and a first-byte timeout during the lookup does not block either */
    probe q;
    probe_init(&q);
    o.first_byte_timeout_ms = 100;
    g_in_start = true;
    q.call = tg_upcall_start(F->u, &o, &CBS, &q);
    g_in_start = false;
    t0 = mono_s();
    run_until(&q.dones, 1, 2000);
    assert_int_equal(q.r, TG_UP_TIMEOUT_FIRST_BYTE);
    assert_true(mono_s() - t0 < 0.4);
    tg_buf_release(&p.body);
    tg_buf_release(&q.body);
}

static void test_free_in_flight(void **state)
{
    (void)state;
    probe p[3];
    const char *paths[] = {"/slow-head", "/chunked", "/big"};
    for (int i = 0; i < 3; i++) {
        probe_init(&p[i]);
        p[i].pause = i == 2;
        assert_non_null(go(F->u, &p[i], (req){.path = paths[i]}));
    }
    run_for(50);
    int seen = 0;
    for (int i = 0; i < 3; i++)
        seen += p[i].heads + p[i].bodies + p[i].dones;
    uv_timer_stop(&F->rt);
    tg_upstream_free(F->u);
    F->u = NULL;
    run_for(300);
    int now = 0;
    for (int i = 0; i < 3; i++) {
        now += p[i].heads + p[i].bodies + p[i].dones;
        tg_buf_release(&p[i].body);
    }
    assert_int_equal(p[0].heads + p[0].dones, 0); /* /slow-head was in flight at the free */
    assert_int_equal(now, seen);                  /* and nothing reached anyone after it */
}

static void test_free_in_callback(void **state)
{
    (void)state;
    probe p, q;
    probe_init(&p);
    probe_init(&q);
    p.free_in_head = true;
    assert_non_null(go(F->u, &p, (req){.path = "/chunked"}));
    assert_non_null(go(F->u, &q, (req){.path = "/slow-head"}));
    run_for(400);
    assert_null(F->u);
    assert_int_equal(p.heads, 1);
    assert_int_equal(p.bodies + p.dones, 0);
    assert_int_equal(q.heads + q.bodies + q.dones, 0);
    tg_buf_release(&p.body);
    tg_buf_release(&q.body);
}

static void test_unsendable_request(void **state)
{
    (void)state;
    const tg_header bad[] = {{TG_STR("X-A"), TG_STR("1\r\nX-Injected: 1")}};
    probe p;
    probe_init(&p);
    assert_null(go(F->u, &p, (req){.path = "/ok", .h = bad, .nh = 1}));
    assert_null(go(F->u, &p, (req){.path = "/ok", .method = "GET /x HTTP/1.1\r\n"}));
    const tg_header colon[] = {{TG_STR("X-A: 1\r\nX-B"), TG_STR("2")},
                               {TG_STR("X:B"), TG_STR("2")}};
    assert_null(go(F->u, &p, (req){.path = "/ok", .h = colon, .nh = 1}));
    assert_null(go(F->u, &p, (req){.path = "/ok", .h = colon + 1, .nh = 1}));
    run_for(50);
    assert_int_equal(p.heads + p.bodies + p.dones, 0);
    tg_buf_release(&p.body);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    /* Every test runs twice: with the built-in HTTP/1.1 client that
     * http://127.0.0.1 upstreams get by default, and with libcurl, which
     * TLS and named upstreams get. */
    const struct CMUnitTest tests[] = {
        T(test_result_str),
        T(test_ok),
        T(test_interim_heads_skipped),
        T(test_chunked),
        T(test_big_body),
        T(test_echo),
        T(test_reset),
        T(test_close_mid_body),
        T(test_connect_refused),
        T(test_connect_timeout),
        T(test_first_byte_timeout),
        T(test_total_timeout),
        T(test_cancel),
        T(test_pause_resume),
        T(test_too_big),
        T(test_connection_reused),
        T(test_stale_connection_retried),
        T(test_parallel),
        T(test_start_from_callback),
        T(test_start_from_done),
        T(test_cancel_during_dns_does_not_block),
        T(test_free_in_flight),
        T(test_free_in_callback),
        T(test_unsendable_request),
    };
    g_client = TG_UP_AUTO;
    int failed = cmocka_run_group_tests_name("built-in client", tests, srv_start, srv_stop);
    g_client = TG_UP_CURL;
    failed += cmocka_run_group_tests_name("libcurl", tests, srv_start, srv_stop);
    return failed;
}
