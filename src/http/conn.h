/* Private to http/: the connection and worker structs shared by server.c
 * (workers, listeners, drain), request.c (reading, parsing, limits) and
 * response.c (writing). Nothing outside http/ includes this. */
#ifndef TG_HTTP_CONN_H
#define TG_HTTP_CONN_H

#include "http/server.h"

#include "http/parse.h"

struct tg_server {
    tg_server_opts opts;
    unsigned nworkers;
    tg_worker *workers;
    uint16_t port;
    atomic_long connections;
    atomic_uint drain_timeout_ms;
};

struct tg_worker {
    tg_server *srv;
    unsigned index;
    uv_thread_t thread;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t wake;         /* tg_server_drain -> this worker */
    uv_timer_t drain_timer;
    bool draining, stopped;
    long nconns;
    tg_conn *conns;          /* every open connection, for drain */
    void *data;
    char date[40];           /* "Date: ...\r\n", rebuilt once a second */
    time_t date_sec;
    tg_buf out;              /* response heads are formatted here */
    char rbuf[65536];        /* every read lands here, then moves to conn->in */
};

typedef enum {
    TG_CONN_IDLE,            /* between requests, nothing received */
    TG_CONN_HEAD,            /* receiving a request head */
    TG_CONN_BODY,            /* receiving its body */
    TG_CONN_ACTIVE,          /* the handler owns the request */
    TG_CONN_FLUSHING,        /* writing what is queued, then closing */
    TG_CONN_CLOSING,
} tg_conn_state;

struct tg_conn {
    uv_tcp_t tcp;            /* first: a uv_handle_t* is a tg_conn* */
    uv_timer_t timer;        /* head, body and idle timeouts */
    tg_worker *w;
    tg_conn *prev, *next;
    tg_conn_state state;
    int handles_open;        /* tcp + timer; freed when both closed */
    tg_http_in in;           /* the parser and the request being read */
    tg_buf rx;               /* received, not yet parsed */
    bool must_close;         /* answer with Connection: close, then close */
    bool peer_gone;          /* EOF or error while the handler owns req */
    bool reading;
    bool in_process;         /* re-entrancy guard for conn_process */
    tg_req req;
};

/* request.c */
void tg_conn_accept(tg_worker *w);
void tg_conn_close(tg_conn *c);
/* Fires c->req's end callback, once. */
void tg_conn_end_request(tg_conn *c);
/* The handler is done with c->req: reset for the next request and go on. */
void tg_conn_request_done(tg_conn *c);
/* Answers an error the server found, in the dialect of opts->error. */
void tg_conn_error(tg_conn *c, int status, const char *type, const char *msg);
/* Drain: close now if nothing is in flight, else after the response. */
void tg_conn_drain(tg_conn *c);

/* server.c: a connection of w has closed. */
void tg_worker_conn_gone(tg_worker *w);

/* response.c */
/* Writes bufs in order (copying what the kernel does not take at once). */
int tg_conn_write(tg_conn *c, uv_buf_t *bufs, unsigned nbufs);
const char *tg_worker_date(tg_worker *w);

#endif
