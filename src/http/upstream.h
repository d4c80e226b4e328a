/* The upstream client: libcurl's multi interface driven by a worker's own
 * libuv loop (curl's socket and timer callbacks become uv_poll and uv_timer
 * handles), so no call on a worker ever blocks. One tg_upstream per worker;
 * its multi handle keeps upstream connections alive for reuse, and speaks
 * HTTP/2 where a TLS upstream offers it.
 *
 * A call reports through three callbacks, in order: on_head once (status
 * and headers are in), on_body any number of times, on_done exactly once
 * (unless the caller cancelled). A call that fails before any head calls
 * on_done only. After tg_upcall_cancel or after on_done the call is gone.
 * Callbacks never run inside tg_upcall_start. Every function here may be
 * called from inside any of the callbacks (tg_upstream_free then takes
 * effect when the callback returns). */
#ifndef TG_HTTP_UPSTREAM_H
#define TG_HTTP_UPSTREAM_H

#include "base/str.h"
#include "http/server.h"

#include <stdint.h>
#include <uv.h>

typedef struct tg_upstream tg_upstream;
typedef struct tg_upcall tg_upcall;

/* How a call ended. */
typedef enum {
    TG_UP_OK = 0,
    TG_UP_CONNECT,          /* could not connect (refused, DNS, TLS handshake) */
    TG_UP_TIMEOUT_CONNECT,
    TG_UP_TIMEOUT_FIRST_BYTE,
    TG_UP_TIMEOUT_TOTAL,
    TG_UP_RESET,            /* the connection broke mid-way (reset, closed early) */
    TG_UP_TOO_BIG,          /* the caller's on_body refused more bytes */
    TG_UP_OTHER,
} tg_up_result;
const char *tg_up_result_str(tg_up_result r); /* "connect", "timeout_first_byte", ... */

typedef struct {
    /* status is the final one (1xx are skipped); headers live until on_done */
    void (*on_head)(void *ud, int status, const tg_header *h, size_t nh);
    /* return 0 to go on, 1 to pause (resume with tg_upcall_resume), -1 to
     * fail the call with TG_UP_TOO_BIG. The n bytes count as consumed
     * whatever it returns; after 1 no on_body comes until the resume. */
    int (*on_body)(void *ud, const char *p, size_t n);
    /* detail: curl's own words for a failure, for logs and error messages;
     * "" on success; valid during the call only */
    void (*on_done)(void *ud, tg_up_result r, const char *detail);
} tg_upcall_cbs;

/* Which client carries a call. AUTO: the built-in HTTP/1.1 client for
 * http:// upstreams addressed by IP or localhost (see h1.h), libcurl for
 * the rest (TLS, HTTP/2, names to resolve). CURL: libcurl always. */
typedef enum { TG_UP_AUTO = 0, TG_UP_CURL } tg_up_client;

typedef struct {
    tg_str method;          /* "POST" */
    tg_str url;
    const tg_header *headers; /* sent as given */
    size_t nheaders;
    tg_str body;            /* must stay valid until on_done or cancel */
    /* 0: no limit (for connect: curl's default, 300 s) */
    uint32_t connect_timeout_ms, first_byte_timeout_ms, total_timeout_ms;
    tg_up_client client;
} tg_upcall_opts;

tg_upstream *tg_upstream_new(uv_loop_t *loop);
/* Cancels every call in flight (no callbacks) and closes the handles; the
 * memory goes once libuv has closed them, so the loop must run after. */
void tg_upstream_free(tg_upstream *u);

/* NULL on out-of-memory, or when the URL, the method or a header cannot be
 * sent as given (CR, LF or NUL in it; a space in the URL, the method or a
 * header name; a colon in a header name). */
tg_upcall *tg_upcall_start(tg_upstream *u, const tg_upcall_opts *o, const tg_upcall_cbs *cbs,
                           void *ud);
/* Stops the transfer; no callback fires after this returns. */
void tg_upcall_cancel(tg_upcall *c);
/* Resumes a transfer that on_body paused. What curl held back is handed
 * over before this returns: on_body may run (and pause again), and so may
 * on_done if the call fails there. */
void tg_upcall_resume(tg_upcall *c);

#endif
