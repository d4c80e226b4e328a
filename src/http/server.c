/* Workers, listeners and shutdown.
 *
 * Each worker is a thread running its own uv loop with its own listening
 * socket bound with SO_REUSEPORT, so the kernel spreads connections across
 * workers and no state is shared on the hot path but the connection count
 * (an atomic, for max_connections). Sockets are bound in tg_server_start on
 * the caller's thread so that a busy port is an error the caller sees.
 * Drain: each worker closes its listener, closes idle connections, lets
 * active ones finish their response, and force-closes what is left when the
 * deadline passes; the loop ends once every handle is closed. */
#include "http/conn.h"
#include "base/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* Binds a listening socket; with reuseport every worker of this server
 * shares the port. */
static int bind_socket(const tg_addr *a, uint16_t port, bool reuseport, int *fd_out,
                       uint16_t *bound, tg_errmsg *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, a->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        len = sizeof *v4;
    } else if (inet_pton(AF_INET6, a->host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        len = sizeof *v6;
    } else {
        return tg_errmsg_set(err, "listen address %s is not an IP address", a->host);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return tg_errmsg_set(err, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 1024) < 0) {
        int e = errno;
        close(fd);
        return tg_errmsg_set(err, "cannot listen on %s:%u: %s", a->host, port, strerror(e));
    }
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *bound = ntohs(ss.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
    *fd_out = fd;
    return TG_OK;
}

static void on_connection(uv_stream_t *listener, int status)
{
    tg_worker *w = listener->data;
    if (status < 0) {
        tg_log(TG_LOG_WARN, "%s: accept: %s", w->srv->opts.name, uv_strerror(status));
        return;
    }
    tg_conn_accept(w);
}

static void maybe_stop(tg_worker *w);

static void on_closed_quietly(uv_handle_t *h) { (void)h; }

static void on_drain_deadline(uv_timer_t *t)
{
    tg_worker *w = t->data;
    for (tg_conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        c->req.cut_by_server = true;
        tg_conn_close(c);
    }
}

static void on_wake(uv_async_t *a)
{
    tg_worker *w = a->data;
    if (w->draining) return;
    w->draining = true;
    uv_close((uv_handle_t *)&w->listener, on_closed_quietly);
    for (tg_conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        tg_conn_drain(c);
    }
    uv_timer_start(&w->drain_timer, on_drain_deadline, atomic_load(&w->srv->drain_timeout_ms), 0);
    maybe_stop(w);
}

/* Called whenever a connection goes; ends the worker once drained. */
static void maybe_stop(tg_worker *w)
{
    if (!w->draining || w->stopped || w->nconns) return;
    w->stopped = true;
    if (w->srv->opts.worker_stop) w->srv->opts.worker_stop(w, w->srv->opts.data);
    uv_close((uv_handle_t *)&w->wake, on_closed_quietly);
    uv_close((uv_handle_t *)&w->drain_timer, on_closed_quietly);
}

void tg_worker_conn_gone(tg_worker *w)
{
    w->nconns--;
    atomic_fetch_sub_explicit(&w->srv->connections, 1, memory_order_relaxed);
    maybe_stop(w);
}

static void worker_main(void *arg)
{
    tg_worker *w = arg;
    /* named for top -H, perf and taskset (bench/run.sh finds threads by name) */
    char name[16];
    snprintf(name, sizeof name, "tg-worker-%u", w->index);
    pthread_setname_np(pthread_self(), name);
    if (w->srv->opts.worker_start) w->srv->opts.worker_start(w, w->srv->opts.data);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&w->loop);
    tg_buf_release(&w->out);
    if (rc) tg_log(TG_LOG_WARN, "%s: worker %u ended with open handles", w->srv->opts.name, w->index);
}

/* Handle setup on a loop that no thread runs yet. Only resource exhaustion
 * makes these fail, at start, where giving up is the right answer. */
static void worker_init(tg_server *s, tg_worker *w, unsigned index, int fd)
{
    w->srv = s;
    w->index = index;
    tg_buf_init(&w->out, 1 << 20);
    int rc = uv_loop_init(&w->loop);
    if (!rc) rc = uv_tcp_init(&w->loop, &w->listener);
    if (!rc) rc = uv_tcp_open(&w->listener, fd);
    if (!rc) rc = uv_listen((uv_stream_t *)&w->listener, 1024, on_connection);
    if (!rc) rc = uv_async_init(&w->loop, &w->wake, on_wake);
    if (!rc) rc = uv_timer_init(&w->loop, &w->drain_timer);
    if (rc) {
        tg_log(TG_LOG_ERROR, "%s: worker setup: %s", s->opts.name, uv_strerror(rc));
        abort();
    }
    w->listener.data = w->wake.data = w->drain_timer.data = w;
}

int tg_server_start(tg_server **out, const tg_server_opts *opts, tg_errmsg *err)
{
    unsigned n = opts->conf.workers ? opts->conf.workers : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    tg_server *s = calloc(1, sizeof *s);
    int *fds = calloc(n, sizeof *fds);
    tg_worker *workers = calloc(n, sizeof *workers);
    int rc = s && fds && workers ? TG_OK : TG_ENOMEM;
    uint16_t port = opts->conf.listen.port;
    unsigned bound = 0;
    /* SO_REUSEPORT would let this process share a port another process
     * (another tollgate) listens on; a probe without it finds that out. */
    if (!rc && port) {
        int probe;
        uint16_t ignored;
        rc = bind_socket(&opts->conf.listen, port, false, &probe, &ignored, err);
        if (!rc) close(probe);
    }
    for (; !rc && bound < n; bound++)
        rc = bind_socket(&opts->conf.listen, port, true, &fds[bound], &port, err);
    if (rc) {
        for (unsigned i = 0; i + 1 < bound; i++) close(fds[i]);
        free(s);
        free(fds);
        free(workers);
        return rc;
    }
    s->opts = *opts;
    s->nworkers = n;
    s->workers = workers;
    s->port = port;
    for (unsigned i = 0; i < n; i++) worker_init(s, &workers[i], i, fds[i]);
    free(fds);
    for (unsigned i = 0; i < n; i++) uv_thread_create(&workers[i].thread, worker_main, &workers[i]);
    *out = s;
    return TG_OK;
}

uint16_t tg_server_port(const tg_server *s) { return s->port; }
long tg_server_connections(const tg_server *s) { return atomic_load(&s->connections); }

void tg_server_drain(tg_server *s, uint32_t timeout_ms)
{
    atomic_store(&s->drain_timeout_ms, timeout_ms);
    for (unsigned i = 0; i < s->nworkers; i++) uv_async_send(&s->workers[i].wake);
}

void tg_server_join(tg_server *s)
{
    for (unsigned i = 0; i < s->nworkers; i++) uv_thread_join(&s->workers[i].thread);
    free(s->workers);
    free(s);
}

uv_loop_t *tg_worker_loop(tg_worker *w) { return &w->loop; }
unsigned tg_worker_index(const tg_worker *w) { return w->index; }
void *tg_worker_data(tg_worker *w) { return w->data; }
void tg_worker_set_data(tg_worker *w, void *data) { w->data = data; }
