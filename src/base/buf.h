/* Growable byte buffers with a cap.
 *
 * Every buffer fed by the network is created with the most it may ever hold;
 * an append past that returns TG_ETOOBIG and leaves the buffer unchanged, so
 * the caller answers 413/502 instead of growing without bound. The buffer
 * owns p; tg_buf_release frees it. p is always NUL-terminated after a
 * successful append (one spare byte), for the convenience of C APIs, but
 * callers must still use n. */
#ifndef TG_BASE_BUF_H
#define TG_BASE_BUF_H

#include "base/str.h"

#include <stdarg.h>
#include <stddef.h>

typedef struct {
    char *p;
    size_t n;   /* bytes used */
    size_t cap; /* bytes allocated */
    size_t max; /* the cap: n never exceeds it */
} tg_buf;

void tg_buf_init(tg_buf *b, size_t max);
void tg_buf_release(tg_buf *b);
/* Empties the buffer, keeping its allocation. */
static inline void tg_buf_clear(tg_buf *b) { b->n = 0; }
/* Makes room for `extra` more bytes; TG_ETOOBIG or TG_ENOMEM. */
int tg_buf_reserve(tg_buf *b, size_t extra);
int tg_buf_append(tg_buf *b, const void *p, size_t n);
static inline int tg_buf_add_str(tg_buf *b, tg_str s) { return tg_buf_append(b, s.p, s.n); }
static inline int tg_buf_add_lit_(tg_buf *b, const char *s, size_t n) { return tg_buf_append(b, s, n); }
#define tg_buf_add_lit(b, lit) tg_buf_add_lit_((b), (lit), sizeof(lit) - 1)
int tg_buf_add_char(tg_buf *b, char c);
int tg_buf_add_u64(tg_buf *b, uint64_t v);
int tg_buf_add_i64(tg_buf *b, int64_t v);
int tg_buf_printf(tg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Removes the first n bytes (consumed input), moving the rest down. */
void tg_buf_consume(tg_buf *b, size_t n);
static inline tg_str tg_buf_str(const tg_buf *b) { return (tg_str){b->p, b->n}; }

/* Makes room for element n of a growing array: arrp is the address of
 * the array's pointer (malloc'd, or NULL), *cap its elements of `size`
 * bytes; when n == *cap the array is reallocated to twice as many (8 at
 * first). TG_ENOMEM, the array unchanged. */
int tg_array_grow(void *arrp, size_t *cap, size_t n, size_t size);

#endif
