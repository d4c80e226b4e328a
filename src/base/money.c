/* Money: exact USD decimals to nano-USD; see money.h.
 *
 * Placeholder holding only tg_money_parse, which the configuration loader
 * needs; the rest of money.h lands with the money module itself. The parse
 * never goes through a float: digits are accumulated as integers, and the
 * 9,000,000,000 USD bound keeps the result (at most 9e18 nanos) inside
 * int64 without any step overflowing. */
#include "base/money.h"

#include <stdbool.h>

#define MAX_USD 9000000000ULL

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* Digits with at most one '.' and at least one digit; how many of them
 * follow the point. */
static bool decimal_shape(tg_str s, size_t *frac)
{
    size_t digits = 0, points = 0;
    *frac = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] == '.') {
            points++;
        } else if (is_digit(s.p[i])) {
            digits++;
            if (points) (*frac)++;
        } else {
            return false;
        }
    }
    return digits > 0 && points <= 1;
}

int tg_money_parse(tg_str s, tg_nanos *out, tg_errmsg *err)
{
    size_t frac;
    /* "-1" deserves a better message than "not a decimal number" */
    if (s.n > 1 && s.p[0] == '-' && decimal_shape(tg_str_make(s.p + 1, s.n - 1), &frac))
        return tg_errmsg_set(err, "is negative");
    if (!decimal_shape(s, &frac)) return tg_errmsg_set(err, "is not a decimal number");
    if (frac > 9) return tg_errmsg_set(err, "has more than 9 digits after the point");

    uint64_t usd = 0, nanos = 0;
    size_t i = 0;
    for (; i < s.n && s.p[i] != '.'; i++) {
        usd = usd * 10 + (uint64_t)(s.p[i] - '0');
        if (usd > MAX_USD) return tg_errmsg_set(err, "is too large"); /* before it can wrap */
    }
    size_t scale = 9;
    for (i++; i < s.n; i++, scale--)
        nanos = nanos * 10 + (uint64_t)(s.p[i] - '0');
    for (; scale > 0; scale--)
        nanos *= 10;
    if (usd == MAX_USD && nanos > 0) return tg_errmsg_set(err, "is too large");
    *out = (tg_nanos)(usd * (uint64_t)TG_NANOS_PER_USD + nanos);
    return TG_OK;
}
