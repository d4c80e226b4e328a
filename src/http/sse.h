/* Server-sent events, read incrementally from an upstream stream.
 *
 * tg_sse_feed splits bytes into events (an event ends at a blank line: LF
 * LF, CR LF CR LF or CR CR) and calls back with each event's raw bytes, so
 * the relay can forward it unchanged, and its data payload (the "data:"
 * lines joined with LF, one leading space stripped), so the relay can read
 * usage from it. Events that arrive whole inside one feed are passed as
 * views of the input with no copy; only a partial event is kept, capped at
 * the max given to tg_sse_init (TG_ETOOBIG past it). Comment lines and
 * other fields (event:, id:, retry:) stay in raw and out of data. */
#ifndef TG_HTTP_SSE_H
#define TG_HTTP_SSE_H

#include "base/buf.h"

typedef struct {
    tg_buf partial; /* bytes of an event not yet ended */
    tg_buf data;    /* scratch for payloads spread over several lines */
} tg_sse;

/* The callback returns 0 to go on; anything else stops the feed and is
 * returned by tg_sse_feed. */
typedef int (*tg_sse_event_fn)(void *ud, tg_str raw, tg_str data);

void tg_sse_init(tg_sse *s, size_t max_event);
void tg_sse_release(tg_sse *s);
int tg_sse_feed(tg_sse *s, const char *p, size_t n, tg_sse_event_fn cb, void *ud);
/* Bytes of an unfinished event (a stream that ends with them was cut). */
static inline size_t tg_sse_pending(const tg_sse *s) { return s->partial.n; }

#endif
