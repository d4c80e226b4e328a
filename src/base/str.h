/* Strings that carry their length.
 *
 * A tg_str never owns its bytes and is never assumed NUL-terminated: data off
 * the network is sliced, compared and parsed through these helpers, never
 * through strlen or the str* family. */
#ifndef TG_BASE_STR_H
#define TG_BASE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const char *p;
    size_t n;
} tg_str;

#define TG_STR(lit) ((tg_str){(lit), sizeof(lit) - 1})
#define TG_STR_NULL ((tg_str){NULL, 0})
/* For printf: printf("%.*s", TG_STR_FMT(s)). */
#define TG_STR_FMT(s) (int)(s).n, (s).p

static inline tg_str tg_str_make(const char *p, size_t n) { return (tg_str){p, n}; }
/* Only for C strings the program owns (config, argv, literals). */
static inline tg_str tg_str_c(const char *s) { return (tg_str){s, s ? strlen(s) : 0}; }

static inline bool tg_str_eq(tg_str a, tg_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* Byte order, a prefix first (memcmp, then length: SQLite's BINARY
 * collation): <0, 0, >0. */
int tg_str_cmp(tg_str a, tg_str b);
/* ASCII case-insensitive equality (header names). */
bool tg_str_ieq(tg_str a, tg_str b);
bool tg_str_has_prefix(tg_str s, tg_str prefix);
/* Strips ASCII spaces and tabs at both ends. */
tg_str tg_str_trim(tg_str s);
/* Parses a decimal unsigned integer that fills all of s; TG_EINVAL on
 * anything else, including overflow. */
int tg_str_to_u64(tg_str s, uint64_t *out);
/* malloc'd NUL-terminated copy; NULL on allocation failure. */
char *tg_str_dup(tg_str s);

#endif
