/* Capped growable buffers; see buf.h. Growth doubles, clamped to the cap. */
#include "base/buf.h"
#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>

void tg_buf_init(tg_buf *b, size_t max)
{
    b->p = NULL;
    b->n = b->cap = 0;
    b->max = max;
}

void tg_buf_release(tg_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

int tg_buf_reserve(tg_buf *b, size_t extra)
{
    if (extra > b->max - b->n) return TG_ETOOBIG;
    size_t need = b->n + extra + 1; /* +1: the NUL kept after the data */
    if (need <= b->cap) return TG_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max + 1) cap = b->max + 1;
    char *p = realloc(b->p, cap);
    if (!p) return TG_ENOMEM;
    b->p = p;
    b->cap = cap;
    return TG_OK;
}

int tg_buf_append(tg_buf *b, const void *p, size_t n)
{
    int rc = tg_buf_reserve(b, n);
    if (rc) return rc;
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = '\0';
    return TG_OK;
}

int tg_buf_add_char(tg_buf *b, char c) { return tg_buf_append(b, &c, 1); }

int tg_buf_add_u64(tg_buf *b, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return tg_buf_append(b, tmp + i, sizeof tmp - i);
}

int tg_buf_add_i64(tg_buf *b, int64_t v)
{
    if (v >= 0) return tg_buf_add_u64(b, (uint64_t)v);
    int rc = tg_buf_add_char(b, '-');
    return rc ? rc : tg_buf_add_u64(b, (uint64_t)0 - (uint64_t)v);
}

int tg_buf_printf(tg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0) return TG_EINVAL;
    int rc = tg_buf_reserve(b, (size_t)len);
    if (rc) return rc;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)len + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)len;
    return TG_OK;
}

void tg_buf_consume(tg_buf *b, size_t n)
{
    if (n >= b->n) {
        b->n = 0;
    } else {
        memmove(b->p, b->p + n, b->n - n);
        b->n -= n;
    }
    if (b->p) b->p[b->n] = '\0';
}

int tg_array_grow(void *arrp, size_t *cap, size_t n, size_t size)
{
    void **arr = arrp;
    if (n < *cap) return TG_OK;
    size_t c = *cap ? *cap * 2 : 8;
    if (c > SIZE_MAX / size) return TG_ENOMEM;
    void *p = realloc(*arr, c * size);
    if (!p) return TG_ENOMEM;
    *arr = p;
    *cap = c;
    return TG_OK;
}
