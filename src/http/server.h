/* The HTTP/1.1 server: N workers, each a thread with its own libuv loop and
 * its own SO_REUSEPORT listener, so a connection and every request on it
 * live and die on one thread and the hot path takes no lock.
 *
 * The server parses requests (keep-alive, pipelining, chunked bodies),
 * enforces the limits of tg_server_conf, and hands each complete request to
 * the handler. The handler owns the request until it has sent a whole
 * response (tg_resp_send, or tg_resp_stream_begin ... tg_resp_stream_end)
 * or until the abort callback told it the client went away; after that it
 * must not touch the request again. Pipelined requests are answered in
 * order: the next one is not parsed before the current response ends.
 *
 * Errors the server detects itself (malformed request 400, head too large
 * 431, body too large 413, slow head or body 408, too many connections 503)
 * are rendered by opts->error, so each endpoint family can answer in its
 * own dialect; a request that fails before its path is known has an empty
 * path. */
#ifndef TG_HTTP_SERVER_H
#define TG_HTTP_SERVER_H

#include "base/arena.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/str.h"
#include "conf/config.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct tg_server tg_server;
typedef struct tg_worker tg_worker;
typedef struct tg_conn tg_conn;
typedef struct tg_req tg_req;

typedef struct {
    tg_str name, value;
} tg_header;

typedef enum { TG_GET, TG_POST, TG_HEAD, TG_PUT, TG_DELETE, TG_OTHER_METHOD } tg_method;

#define TG_MAX_REQ_HEADERS 64

struct tg_req {
    tg_worker *worker;
    uv_loop_t *loop;
    tg_arena arena;            /* released when the request ends */
    tg_method method;
    tg_str path;               /* without the query */
    tg_str query;              /* after '?', may be empty */
    tg_header headers[TG_MAX_REQ_HEADERS];
    size_t nheaders;
    tg_str body;               /* decoded (de-chunked); valid until the end */
    uint64_t t_start_ns;       /* monotonic: first byte of the request */
    uint64_t t_first_byte_ns;  /* monotonic: first response byte queued, 0 before */
    uint64_t bytes_in;         /* head + body as received */
    uint64_t bytes_out;        /* response bytes queued */
    int status;                /* response status once begun */
    bool cut_by_server;        /* ended by the shutdown deadline, not the client */
    void *data;                /* the handler's */
    /* private to the server */
    tg_conn *conn_;
    void (*abort_cb_)(tg_req *, void *);
    void *abort_data_;
    void (*drain_cb_)(tg_req *, void *);
    void *drain_data_;
    void (*end_cb_)(tg_req *, void *);
    void *end_data_;
    bool streaming_, done_, keep_alive_;
};

typedef void (*tg_handler_fn)(tg_req *r, void *data);
/* Must answer with tg_resp_send. `type` is a machine word such as
 * "invalid_request_error"; msg says what to do. */
typedef void (*tg_error_fn)(tg_req *r, int status, const char *type, const char *msg, void *data);
typedef void (*tg_worker_fn)(tg_worker *w, void *data);

typedef struct {
    const char *name;         /* in logs: "gateway", "sim" */
    tg_server_conf conf;      /* listen, workers and limits */
    tg_handler_fn handler;
    tg_error_fn error;
    tg_worker_fn worker_start;/* on the worker's thread, before accepting */
    tg_worker_fn worker_stop; /* on the worker's thread once drained: close
                                 the handles worker_start opened */
    void *data;
} tg_server_opts;

/* Binds every worker's listener (so a busy port is reported here), then
 * starts the worker threads. */
int tg_server_start(tg_server **out, const tg_server_opts *opts, tg_errmsg *err);
/* The bound port (useful when conf.listen.port was 0). */
uint16_t tg_server_port(const tg_server *s);
/* Thread-safe: stop accepting, let in-flight requests finish, close idle
 * connections; after timeout_ms close whatever is left. Returns at once. */
void tg_server_drain(tg_server *s, uint32_t timeout_ms);
/* Waits for the workers to end (after a drain) and frees the server. */
void tg_server_join(tg_server *s);
/* Open client connections, all workers. */
long tg_server_connections(const tg_server *s);

uv_loop_t *tg_worker_loop(tg_worker *w);
unsigned tg_worker_index(const tg_worker *w);
void *tg_worker_data(tg_worker *w);
void tg_worker_set_data(tg_worker *w, void *data);

/* First header named `name` (case-insensitive); p NULL when absent. */
tg_str tg_req_header(const tg_req *r, tg_str name);

/* A whole response. Content-Length, Date-less minimal headers, keep-alive
 * handling and the extra headers h[0..nh) are written by the server. */
void tg_resp_send(tg_req *r, int status, tg_str content_type, const tg_header *h, size_t nh,
                  tg_str body);
/* A response whose body follows in pieces (chunked transfer encoding). */
int tg_resp_stream_begin(tg_req *r, int status, tg_str content_type, const tg_header *h,
                         size_t nh);
/* Queues one piece (copied). TG_EIO when the client is gone. */
int tg_resp_stream_write(tg_req *r, tg_str data);
/* The last piece; the request ends when it is written. */
void tg_resp_stream_end(tg_req *r);
/* Bytes queued for the client and not yet written: for backpressure. */
size_t tg_resp_queued(const tg_req *r);
/* Called (once per registration) when the queue empties. */
void tg_req_on_drain(tg_req *r, void (*cb)(tg_req *, void *), void *data);
/* Called if the client goes away before the response ended; the request
 * is freed when cb returns. */
void tg_req_on_abort(tg_req *r, void (*cb)(tg_req *, void *), void *data);
/* Called exactly once when the request ends, however it ends (response
 * complete, client gone, connection closed), while everything in the
 * request (its arena included) is still valid: the place to log and free. */
void tg_req_on_end(tg_req *r, void (*cb)(tg_req *, void *), void *data);
/* Ends the request by closing the connection: with reset, an RST (SO_LINGER
 * 0) at once; without, after what is queued is written. No abort callback
 * fires. For the simulated provider's faults. */
void tg_resp_close(tg_req *r, bool reset);

const char *tg_http_reason(int status);

#endif
