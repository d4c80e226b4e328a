/* Private to http/: the built-in HTTP/1.1 client for cleartext upstreams.
 *
 * libcurl costs about as much CPU per request as all the rest of the
 * gateway together (docs/benchmarks.md). For the common self-hosted case,
 * an http:// upstream addressed by IP or localhost (the simulated
 * provider, vLLM or llama.cpp next to the gateway), this client does the
 * same work on the worker's loop with keep-alive connections, no DNS and
 * no TLS. upstream.c hands it the calls it serves and keeps libcurl for
 * the rest; callers see one contract, upstream.h's. */
#ifndef TG_HTTP_H1_H
#define TG_HTTP_H1_H

#include "http/upstream.h"

/* The first member of both kinds of call, so upstream.c can tell them. */
enum { TG_UPCALL_CURL = 1, TG_UPCALL_H1 = 2 };

typedef struct tg_h1 tg_h1;
typedef struct tg_h1call tg_h1call;

tg_h1 *tg_h1_new(uv_loop_t *loop);
/* Cancels every call (no callbacks), closes connections; the memory goes
 * once libuv has closed the handles. */
void tg_h1_free(tg_h1 *h);
/* Whether this client serves url: http:// with an IP address or localhost. */
bool tg_h1_serves(tg_str url);
/* As tg_upcall_start, for a url tg_h1_serves. */
tg_h1call *tg_h1_start(tg_h1 *h, const tg_upcall_opts *o, const tg_upcall_cbs *cbs, void *ud);
void tg_h1_cancel(tg_h1call *c);
void tg_h1_resume(tg_h1call *c);

#endif
