/* Money: integer nano-USD, never a float.
 *
 * Every amount in tollgate is a tg_nanos, a signed 64-bit count of 1e-9 USD
 * (range about +-9.2 billion USD). Prices come from configuration as
 * decimal strings and are parsed exactly; products and quotients go through
 * 128-bit intermediates and round half-up (away from zero for negatives:
 * -0.5 nano rounds to -1) exactly once, where DESIGN.md says. Operations
 * that could overflow int64 report it instead of wrapping.
 *
 * Prices of tokens are kept as tg_nanos per 1,000,000 tokens: "0.15" USD
 * per 1M tokens is 150,000,000 nanos per 1M. */
#ifndef TG_BASE_MONEY_H
#define TG_BASE_MONEY_H

#include "base/buf.h"
#include "base/err.h"
#include "base/str.h"

#include <stdint.h>

typedef int64_t tg_nanos;

#define TG_NANOS_PER_USD 1000000000LL
#define TG_NANOS_PER_CENT 10000000LL

/* Parses a non-negative USD decimal: "0", "12", "0.15", ".5", "3.", "0.000000001"
 * (digits, at most one '.', at least one digit, at most 9 fractional digits,
 * no sign, no exponent, no spaces, at most 9,000,000,000 USD). TG_EINVAL on
 * anything else, with err saying what is wrong ("has more than 9 digits
 * after the point", "is negative", "is not a decimal number", "is too
 * large"); the caller prefixes the field's name. */
int tg_money_parse(tg_str s, tg_nanos *out, tg_errmsg *err);

/* Writes v as a USD decimal with all 9 fractional digits, "-" for
 * negatives: 1500 -> "0.000001500". Exact; no rounding. */
int tg_money_format(tg_buf *b, tg_nanos v);
/* The same into a caller's array of at least TG_MONEY_STRLEN bytes,
 * NUL-terminated; returns the length. */
#define TG_MONEY_STRLEN 24
size_t tg_money_fmt(char out[TG_MONEY_STRLEN], tg_nanos v);
/* v (nanos of a USD or a credit) as a person reads it, for documents:
 * thousands grouped, at least `places` (0..9) decimals and no trailing
 * zeros past them: (2500e9, 0) "2,500", (310.5e9, 0) "310.5", (-0.05e9,
 * 2) "-0.05", (0.0375e9, 2) "0.0375". Exact: nothing is rounded. Returns
 * the length. */
#define TG_MONEY_GROUPED_STRLEN 32
size_t tg_money_fmt_grouped(char out[TG_MONEY_GROUPED_STRLEN], tg_nanos v, size_t places);

/* round-half-up(tokens * price_per_1m / 1,000,000), tokens >= 0,
 * price_per_1m >= 0. TG_EINVAL when the result exceeds int64. */
int tg_money_tokens(int64_t tokens, tg_nanos price_per_1m, tg_nanos *out);

/* round-half-up(v * bps / 10,000), bps may be negative (a discount);
 * TG_EINVAL on overflow. */
int tg_money_bps(tg_nanos v, int64_t bps, tg_nanos *out);

/* round-half-up(a * b / d) for d > 0 (away from zero for negatives), in
 * 128 bits: a price per unit times a count over a unit size. TG_EINVAL
 * when d <= 0 or the result exceeds int64. */
int tg_money_muldiv(int64_t a, int64_t b, int64_t d, int64_t *out);

/* a + b, TG_EINVAL on overflow. */
int tg_money_add(tg_nanos a, tg_nanos b, tg_nanos *out);

/* v rounded half-up to whole cents (still in nanos): 5,000,000 -> 10,000,000. */
tg_nanos tg_money_round_cents(tg_nanos v);

/* Splits total into n parts proportional to weights (each >= 0, not all
 * zero) by the largest-remainder method: each part is floor(total * w /
 * sum), and the units left over go one each to the largest remainders
 * (ties to the lower index). The parts always sum to total, exactly.
 * `unit` is the granularity in nanos (1, or TG_NANOS_PER_CENT to split
 * cents). total must be a multiple of unit and >= 0. TG_EINVAL on bad
 * arguments or overflow. */
int tg_money_split(tg_nanos total, const int64_t *weights, size_t n, tg_nanos unit, tg_nanos *parts);

/* Rounds n exact amounts (any sign) to multiples of unit so that they sum
 * to whole (a multiple of unit), by the largest-remainder method: each
 * part starts at its exact amount rounded down (towards minus infinity)
 * to a unit, and the units missing to reach whole go one each to the
 * parts with the largest remainders (ties to the lower index); units too
 * many come off those with the smallest remainders (ties to the higher
 * index). When whole is within half a unit per part of the exact sum,
 * every part stays within a unit of its exact amount. It is how a
 * statement's cents are cut into cost, fee and earnings, one of which may
 * be negative (docs/invoices.md). TG_EINVAL on bad arguments or
 * overflow. */
int tg_money_apportion(tg_nanos whole, const tg_nanos *exact, size_t n, tg_nanos unit,
                       tg_nanos *parts);

#endif
