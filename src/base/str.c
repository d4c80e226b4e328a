/* Length-carrying string helpers; see str.h. */
#include "base/str.h"
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

int tg_str_cmp(tg_str a, tg_str b)
{
    size_t n = a.n < b.n ? a.n : b.n;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    return c ? c : (a.n > b.n) - (a.n < b.n);
}

bool tg_str_ieq(tg_str a, tg_str b)
{
    if (a.n != b.n) return false;
    for (size_t i = 0; i < a.n; i++)
        if (lower(a.p[i]) != lower(b.p[i])) return false;
    return true;
}

bool tg_str_has_prefix(tg_str s, tg_str prefix)
{
    return s.n >= prefix.n && memcmp(s.p, prefix.p, prefix.n) == 0;
}

tg_str tg_str_trim(tg_str s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) s.p++, s.n--;
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) s.n--;
    return s;
}

int tg_str_to_u64(tg_str s, uint64_t *out)
{
    if (s.n == 0 || s.n > 20) return TG_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return TG_EINVAL;
        uint64_t d = (uint64_t)(s.p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return TG_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return TG_OK;
}

char *tg_str_dup(tg_str s)
{
    char *c = malloc(s.n + 1);
    if (!c) return NULL;
    if (s.n) memcpy(c, s.p, s.n);
    c[s.n] = '\0';
    return c;
}

int tg_errmsg_set(tg_errmsg *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return TG_EINVAL;
}
