/* Money arithmetic in integer nano-USD; see money.h.
 *
 * Every product and quotient goes through __int128, so no intermediate can
 * wrap: the largest product here is int64 x int64, below 2^126. Rounding
 * is half away from zero (half-up for the non-negative amounts that are
 * nearly all of them) and happens once per operation. Results that do not
 * fit int64 come back as TG_EINVAL instead of wrapping. Nothing here
 * allocates. */
#include "base/money.h"

#include <assert.h>

#define MONEY_MAX_USD 9000000000LL /* tg_money_parse's ceiling */
#define MONEY_FRAC_DIGITS 9

static int say(tg_errmsg *err, const char *what)
{
    if (!err) return TG_EINVAL;
    return tg_errmsg_set(err, "%s", what);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Whether s has the shape digits[.digits] with at least one digit overall
 * and at most one point; nothing else is a decimal here. */
static bool decimal_shape(tg_str s)
{
    size_t digits = 0, points = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (is_digit(s.p[i]))
            digits++;
        else if (s.p[i] == '.')
            points++;
        else
            return false;
    }
    return digits > 0 && points <= 1;
}

int tg_money_parse(tg_str s, tg_nanos *out, tg_errmsg *err)
{
    if (s.n > 0 && s.p[0] == '-') {
        /* "-1" is a decimal with the wrong sign, "-x" is not a decimal */
        tg_str rest = {s.p + 1, s.n - 1};
        return say(err, decimal_shape(rest) ? "is negative" : "is not a decimal number");
    }
    if (!decimal_shape(s)) return say(err, "is not a decimal number");
    /* whole USD accumulate saturated just past the ceiling, so a thousand
       digits cannot wrap and leading zeros cost nothing */
    int64_t whole = 0, frac = 0;
    size_t i = 0, nfrac = 0;
    for (; i < s.n && s.p[i] != '.'; i++) {
        whole = whole * 10 + (s.p[i] - '0');
        if (whole > MONEY_MAX_USD) whole = MONEY_MAX_USD + 1;
    }
    for (i++; i < s.n; i++, nfrac++) {
        if (nfrac == MONEY_FRAC_DIGITS) return say(err, "has more than 9 digits after the point");
        frac = frac * 10 + (s.p[i] - '0');
    }
    for (; nfrac < MONEY_FRAC_DIGITS; nfrac++)
        frac *= 10;
    if (whole > MONEY_MAX_USD || (whole == MONEY_MAX_USD && frac > 0))
        return say(err, "is too large");
    *out = whole * TG_NANOS_PER_USD + frac;
    return TG_OK;
}

size_t tg_money_fmt(char out[TG_MONEY_STRLEN], tg_nanos v)
{
    /* By hand, right to left: snprintf took 1,400 instructions a call,
     * and a response header formats one on every metered request. The
     * magnitude is unsigned, as -INT64_MIN does not fit int64. */
    uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char tmp[TG_MONEY_STRLEN];
    size_t at = sizeof tmp;
    for (int i = 0; i < MONEY_FRAC_DIGITS; i++, m /= 10) tmp[--at] = (char)('0' + m % 10);
    tmp[--at] = '.';
    do {
        tmp[--at] = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    if (v < 0) tmp[--at] = '-';
    size_t n = sizeof tmp - at; /* at most 21: "-9223372036.854775808" */
    memcpy(out, tmp + at, n);
    out[n] = '\0';
    return n;
}

size_t tg_money_fmt_grouped(char out[TG_MONEY_GROUPED_STRLEN], tg_nanos v, size_t places)
{
    char raw[TG_MONEY_STRLEN];
    size_t n = tg_money_fmt(raw, v), at = 0;
    const char *digits = raw + (raw[0] == '-'), *dot = raw + n - MONEY_FRAC_DIGITS - 1;
    size_t whole = (size_t)(dot - digits), keep = MONEY_FRAC_DIGITS;
    while (keep > places && dot[keep] == '0') keep--;
    if (raw[0] == '-') out[at++] = '-';
    for (size_t i = 0; i < whole; i++) {
        if (i && (whole - i) % 3 == 0) out[at++] = ',';
        out[at++] = digits[i];
    }
    if (keep) {
        out[at++] = '.';
        memcpy(out + at, dot + 1, keep);
        at += keep;
    }
    out[at] = '\0';
    return at;
}

int tg_money_format(tg_buf *b, tg_nanos v)
{
    char tmp[TG_MONEY_STRLEN];
    size_t n = tg_money_fmt(tmp, v);
    return tg_buf_append(b, tmp, n);
}

static bool fits(__int128 v)
{
    return v >= INT64_MIN && v <= INT64_MAX;
}

/* round-half-away-from-zero(p / d) for d > 0. For an odd d there are no
 * exact halves, and adding d / 2 (rounded down) still rounds a remainder
 * of at least half up. */
static __int128 div_round(__int128 p, int64_t d)
{
    assert(d > 0);
    __int128 half = d / 2;
    return p >= 0 ? (p + half) / d : -((-p + half) / d);
}

int tg_money_muldiv(int64_t a, int64_t b, int64_t d, int64_t *out)
{
    if (d <= 0) return TG_EINVAL;
    __int128 r = div_round((__int128)a * b, d);
    if (!fits(r)) return TG_EINVAL;
    *out = (int64_t)r;
    return TG_OK;
}

int tg_money_tokens(int64_t tokens, tg_nanos price_per_1m, tg_nanos *out)
{
    if (tokens < 0 || price_per_1m < 0) return TG_EINVAL;
    __int128 r = div_round((__int128)tokens * price_per_1m, 1000000);
    if (!fits(r)) return TG_EINVAL;
    *out = (tg_nanos)r;
    return TG_OK;
}

int tg_money_bps(tg_nanos v, int64_t bps, tg_nanos *out)
{
    __int128 r = div_round((__int128)v * bps, 10000);
    if (!fits(r)) return TG_EINVAL;
    *out = (tg_nanos)r;
    return TG_OK;
}

int tg_money_add(tg_nanos a, tg_nanos b, tg_nanos *out)
{
    tg_nanos r;
    if (__builtin_add_overflow(a, b, &r)) return TG_EINVAL;
    *out = r;
    return TG_OK;
}

tg_nanos tg_money_round_cents(tg_nanos v)
{
    /* the remainder of int64's extremes is below half a cent, so the
       result always fits: INT64_MAX = ...685.4775807 cents */
    __int128 r = div_round(v, TG_NANOS_PER_CENT) * TG_NANOS_PER_CENT;
    assert(fits(r));
    return (tg_nanos)r;
}

/* How many of the n remainders (units x w[i] mod sum) are >= r. */
static size_t count_at_least(__int128 units, const int64_t *w, size_t n, __int128 sum, __int128 r)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += (units * w[i]) % sum >= r;
    return c;
}

/* The largest remainder value R such that at least `left` remainders are
 * >= R: the remainders strictly above R all get a unit, and the first
 * ones equal to R (by index) take what is left. Found by bisection over
 * [0, sum) so the split needs no scratch memory: about 128 passes over
 * the weights, cheap for the invoice-sized n this is for. */
static __int128 cut_remainder(__int128 units, const int64_t *w, size_t n, __int128 sum, size_t left)
{
    __int128 lo = 0, hi = sum - 1; /* count(lo) >= left always holds */
    while (lo < hi) {
        __int128 mid = lo + (hi - lo + 1) / 2;
        if (count_at_least(units, w, n, sum, mid) >= left)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

int tg_money_split(tg_nanos total, const int64_t *weights, size_t n, tg_nanos unit, tg_nanos *parts)
{
    if (n == 0 || unit <= 0 || total < 0 || total % unit != 0) return TG_EINVAL;
    __int128 sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (weights[i] < 0) return TG_EINVAL;
        sum += weights[i];
    }
    if (sum == 0) return TG_EINVAL;
    __int128 units = total / unit, given = 0;
    for (size_t i = 0; i < n; i++) {
        parts[i] = (tg_nanos)(units * weights[i] / sum);
        given += parts[i];
    }
    /* each floor loses less than one unit, so fewer than n are left */
    size_t left = (size_t)(units - given);
    assert(left < n);
    if (left > 0) {
        __int128 cut = cut_remainder(units, weights, n, sum, left);
        for (size_t i = 0; i < n && left > 0; i++)
            if ((units * weights[i]) % sum > cut) parts[i]++, left--;
        for (size_t i = 0; i < n && left > 0; i++)
            if ((units * weights[i]) % sum == cut) parts[i]++, left--;
        assert(left == 0);
    }
    __int128 check = 0;
    for (size_t i = 0; i < n; i++) {
        parts[i] *= unit;
        check += parts[i];
    }
    assert(check == total); /* the parts add up to the whole, exactly */
    return TG_OK;
}

static int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b < 0); }
static int64_t floor_mod(int64_t a, int64_t b) { return a - floor_div(a, b) * b; }

/* How many of the n remainders of exact (mod unit) are >= v. */
static size_t rem_at_least(const tg_nanos *exact, size_t n, tg_nanos unit, int64_t v)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += floor_mod(exact[i], unit) >= v;
    return c;
}

/* Gives (up) or takes (!up) one unit to or from `left` parts, by
 * remainder: the largest first when giving, the smallest when taking.
 * 0 < left < n. The cut is found by bisection over [0, unit), as
 * tg_money_split does, so no scratch memory is needed. */
static void nudge(const tg_nanos *exact, size_t n, tg_nanos unit, size_t left, bool up,
                  tg_nanos *parts)
{
    /* the k-th largest remainder, k = left (giving) or n - left + 1 (taking) */
    size_t k = up ? left : n - left + 1;
    int64_t lo = 0, hi = unit - 1; /* rem_at_least(lo) >= k always holds */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (rem_at_least(exact, n, unit, mid) >= k) lo = mid;
        else hi = mid - 1;
    }
    if (up) {
        for (size_t i = 0; i < n && left; i++)
            if (floor_mod(exact[i], unit) > lo) parts[i] += unit, left--;
        for (size_t i = 0; i < n && left; i++)
            if (floor_mod(exact[i], unit) == lo) parts[i] += unit, left--;
    } else {
        for (size_t i = n; i-- > 0 && left;)
            if (floor_mod(exact[i], unit) < lo) parts[i] -= unit, left--;
        for (size_t i = n; i-- > 0 && left;)
            if (floor_mod(exact[i], unit) == lo) parts[i] -= unit, left--;
    }
    assert(left == 0);
}

int tg_money_apportion(tg_nanos whole, const tg_nanos *exact, size_t n, tg_nanos unit,
                       tg_nanos *parts)
{
    if (n == 0 || unit <= 0 || whole % unit != 0) return TG_EINVAL;
    __int128 given = 0;
    for (size_t i = 0; i < n; i++) {
        parts[i] = floor_div(exact[i], unit) * unit;
        given += parts[i];
    }
    __int128 missing = ((__int128)whole - given) / unit; /* units to give (< 0: to take) */
    __int128 each = missing / (__int128)n, rest = missing % (__int128)n;
    for (size_t i = 0; i < n; i++) {
        __int128 v = (__int128)parts[i] + each * unit;
        if (v > INT64_MAX || v < INT64_MIN) return TG_EINVAL;
        parts[i] = (tg_nanos)v;
    }
    if (rest > 0) {
        for (size_t i = 0; i < n; i++)
            if (parts[i] > INT64_MAX - unit) return TG_EINVAL;
        nudge(exact, n, unit, (size_t)rest, true, parts);
    } else if (rest < 0) {
        for (size_t i = 0; i < n; i++)
            if (parts[i] < INT64_MIN + unit) return TG_EINVAL;
        nudge(exact, n, unit, (size_t)-rest, false, parts);
    }
    __int128 check = 0;
    for (size_t i = 0; i < n; i++) check += parts[i];
    assert(check == whole); /* the parts add up to the whole, exactly */
    return TG_OK;
}
