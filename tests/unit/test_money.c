/* Unit tests for money arithmetic (src/base/money.c): exact decimal
 * parsing and its refusals, formatting round-trips, tokens x price and bps
 * rounding at the exact half-nano boundaries, overflow detection, rounding
 * to cents and largest-remainder splits. */
#include "base/money.h"
#include "base/rng.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

static int parse(const char *s, tg_nanos *v, tg_errmsg *e)
{
    return tg_money_parse(tg_str_c(s), v, e);
}

static void test_parse_forms(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        tg_nanos v;
    } ok[] = {
        {"0", 0},
        {"12", 12 * TG_NANOS_PER_USD},
        {"0.15", 150000000},
        {".5", 500000000},
        {"3.", 3 * TG_NANOS_PER_USD},
        {"0.000000001", 1},
        {"0.0375", 37500000},
        {"9000000000", 9000000000LL * TG_NANOS_PER_USD},
        {"9000000000.000000000", 9000000000LL * TG_NANOS_PER_USD},
        {"007.50", 7500000000LL},
        {"0000000000000000000000000000001", TG_NANOS_PER_USD},
        {"00000000000000000000000.000000001", 1},
        {"1.123456789", 1123456789},
        {"0.", 0},
        {".0", 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        tg_nanos v = -1;
        tg_errmsg e = {{0}};
        if (parse(ok[i].s, &v, &e)) fail_msg("%s: %s", ok[i].s, e.msg);
        if (v != ok[i].v)
            fail_msg("%s: got %lld, want %lld", ok[i].s, (long long)v, (long long)ok[i].v);
    }
}

static void test_parse_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *s, *why;
    } bad[] = {
        {"", "is not a decimal number"},
        {".", "is not a decimal number"},
        {"abc", "is not a decimal number"},
        {"0x10", "is not a decimal number"},
        {"-1", "is negative"},
        {"-0.5", "is negative"},
        {"-", "is not a decimal number"},
        {"-x", "is not a decimal number"},
        {"+1", "is not a decimal number"},
        {"1e3", "is not a decimal number"},
        {"1E3", "is not a decimal number"},
        {" 1", "is not a decimal number"},
        {"1 ", "is not a decimal number"},
        {"1,5", "is not a decimal number"},
        {"1..2", "is not a decimal number"},
        {"1.2.3", "is not a decimal number"},
        {"1.0000000001", "has more than 9 digits after the point"},
        {"0.0000000000", "has more than 9 digits after the point"},
        {"9000000000.000000001", "is too large"},
        {"9000000001", "is too large"},
        {"9223372037", "is too large"},
        {"99999999999999999999999999999999", "is too large"},
        {"18446744073709551617", "is too large"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tg_nanos v = 42;
        tg_errmsg e = {{0}};
        int rc = parse(bad[i].s, &v, &e);
        if (rc != TG_EINVAL) fail_msg("\"%s\" should be refused", bad[i].s);
        if (strcmp(e.msg, bad[i].why))
            fail_msg("\"%s\": got \"%s\", want \"%s\"", bad[i].s, e.msg, bad[i].why);
        assert_int_equal(v, 42); /* untouched on error */
    }
    /* a NUL inside the length is a character like any other */
    tg_nanos v;
    tg_errmsg e;
    assert_int_equal(tg_money_parse(tg_str_make("1\0", 2), &v, &e), TG_EINVAL);
    /* the length bounds the parse: "12" of "123" */
    assert_int_equal(tg_money_parse(tg_str_make("123", 2), &v, &e), TG_OK);
    assert_int_equal(v, 12 * TG_NANOS_PER_USD);
}

static void check_fmt(tg_nanos v, const char *want)
{
    char s[TG_MONEY_STRLEN];
    size_t n = tg_money_fmt(s, v);
    assert_string_equal(s, want);
    assert_int_equal(n, strlen(want));
    tg_buf b;
    tg_buf_init(&b, 64);
    assert_int_equal(tg_money_format(&b, v), TG_OK);
    assert_int_equal(b.n, n);
    assert_memory_equal(b.p, want, n);
    tg_buf_release(&b);
}

static void test_format(void **state)
{
    (void)state;
    check_fmt(0, "0.000000000");
    check_fmt(1, "0.000000001");
    check_fmt(1500, "0.000001500");
    check_fmt(-1500, "-0.000001500");
    check_fmt(150000000, "0.150000000");
    check_fmt(12 * TG_NANOS_PER_USD + 5, "12.000000005");
    check_fmt(INT64_MAX, "9223372036.854775807");
    check_fmt(INT64_MIN, "-9223372036.854775808");
    /* a capped buffer refuses instead of truncating */
    tg_buf b;
    tg_buf_init(&b, 5);
    assert_int_equal(tg_money_format(&b, 1), TG_ETOOBIG);
    tg_buf_release(&b);
}

static void test_format_round_trip(void **state)
{
    (void)state;
    tg_rng r = {7};
    for (int i = 0; i < 100000; i++) {
        tg_nanos v = (tg_nanos)tg_rng_below(&r, 9000000000ULL * TG_NANOS_PER_USD + 1);
        if (i < 1000) v = (tg_nanos)tg_rng_below(&r, 10000); /* small ones too */
        char s[TG_MONEY_STRLEN];
        tg_money_fmt(s, v);
        tg_nanos back = -1;
        tg_errmsg e;
        if (parse(s, &back, &e) || back != v)
            fail_msg("%lld -> %s -> %lld", (long long)v, s, (long long)back);
    }
}

/* tg_money_fmt formats by hand; printf is the reference, over all of int64. */
static void test_format_like_printf(void **state)
{
    (void)state;
    tg_rng r = {11};
    for (int i = 0; i < 200000; i++) {
        tg_nanos v = (tg_nanos)tg_rng_next(&r);
        if (i % 4 == 1) v %= 1000000000000LL; /* and shorter ones */
        if (i % 4 == 2) v %= 100000;
        uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        char want[32], got[TG_MONEY_STRLEN];
        snprintf(want, sizeof want, "%s%llu.%09llu", v < 0 ? "-" : "",
                 (unsigned long long)(m / TG_NANOS_PER_USD), (unsigned long long)(m % TG_NANOS_PER_USD));
        size_t n = tg_money_fmt(got, v);
        if (strcmp(got, want) || n != strlen(want)) fail_msg("%lld: %s, want %s", (long long)v, got, want);
    }
}

static tg_nanos tokens(int64_t t, tg_nanos price)
{
    tg_nanos v = -1;
    assert_int_equal(tg_money_tokens(t, price, &v), TG_OK);
    return v;
}

static void test_tokens_rounding(void **state)
{
    (void)state;
    assert_int_equal(tokens(0, 150000000), 0);
    assert_int_equal(tokens(1000000, 150000000), 150000000); /* 1M at 0.15 = 0.15 */
    assert_int_equal(tokens(1, 150000000), 150);             /* exact */
    /* 1 token at 0.0000005 USD/1M (500 nanos per 1M) is 0.0005 nano: down */
    assert_int_equal(tokens(1, 500), 0);
    /* exactly half a nano: 1 token at 500,000 nanos per 1M rounds up */
    assert_int_equal(tokens(1, 500000), 1);
    assert_int_equal(tokens(1, 499999), 0);
    assert_int_equal(tokens(1, 500001), 1);
    assert_int_equal(tokens(3, 500000), 2);  /* 1.5 -> 2 */
    assert_int_equal(tokens(5, 300000), 2);  /* 1.5 -> 2 */
    assert_int_equal(tokens(7, 100000), 1);  /* 0.7 -> 1 */
    assert_int_equal(tokens(2, 1250000), 3); /* 2.5 -> 3 */
    assert_int_equal(tokens(1, 1499999), 1); /* 1.499999 -> 1 */
    assert_int_equal(tokens(1, 1500000), 2); /* 1.5 -> 2 */
    /* 0.0375 per 1M x 1 token = 0.0375 nano -> 0; x 40 = 1.5 -> 2 */
    assert_int_equal(tokens(1, 37500000), 38); /* 37.5 nano -> 38 */
    assert_int_equal(tokens(40, 37500), 2);
}

static void test_tokens_overflow(void **state)
{
    (void)state;
    tg_nanos v = 7;
    /* the product needs 128 bits but the result fits */
    assert_int_equal(tg_money_tokens(INT64_MAX, 1000000, &v), TG_OK);
    assert_int_equal(v, INT64_MAX);
    assert_int_equal(tg_money_tokens(1000000, INT64_MAX, &v), TG_OK);
    assert_int_equal(v, INT64_MAX);
    v = 7;
    assert_int_equal(tg_money_tokens(INT64_MAX, 1000001, &v), TG_EINVAL);
    assert_int_equal(tg_money_tokens(INT64_MAX, INT64_MAX, &v), TG_EINVAL);
    assert_int_equal(tg_money_tokens(2000000, INT64_MAX / 2 + 1, &v), TG_EINVAL);
    assert_int_equal(v, 7);
    assert_int_equal(tg_money_tokens(-1, 1, &v), TG_EINVAL);
    assert_int_equal(tg_money_tokens(1, -1, &v), TG_EINVAL);
    /* the largest parseable price times a billion tokens */
    assert_int_equal(tg_money_tokens(1000000000, 9000000000LL * TG_NANOS_PER_USD, &v), TG_EINVAL);
    assert_int_equal(tg_money_tokens(1000, 9000000000LL * TG_NANOS_PER_USD, &v), TG_OK);
}

static tg_nanos bps(tg_nanos x, int64_t b)
{
    tg_nanos v = -7;
    assert_int_equal(tg_money_bps(x, b, &v), TG_OK);
    return v;
}

static void test_bps(void **state)
{
    (void)state;
    assert_int_equal(bps(10000, 2000), 2000);
    assert_int_equal(bps(1, 5000), 1); /* 0.5 -> 1 */
    assert_int_equal(bps(1, 4999), 0);
    assert_int_equal(bps(3, 5000), 2);   /* 1.5 -> 2 */
    assert_int_equal(bps(1, -5000), -1); /* -0.5 -> -1, away from zero */
    assert_int_equal(bps(1, -4999), 0);
    assert_int_equal(bps(3, -5000), -2);
    assert_int_equal(bps(-3, 5000), -2);
    assert_int_equal(bps(-3, -5000), 2);
    assert_int_equal(bps(12345, 0), 0);
    assert_int_equal(bps(12345, 10000), 12345);
    assert_int_equal(bps(12345, -10000), -12345);
    assert_int_equal(bps(INT64_MAX, 10000), INT64_MAX);
    assert_int_equal(bps(INT64_MIN, 10000), INT64_MIN);
}

static void test_bps_overflow(void **state)
{
    (void)state;
    tg_nanos v = 5;
    assert_int_equal(tg_money_bps(INT64_MAX, 10001, &v), TG_EINVAL);
    assert_int_equal(tg_money_bps(INT64_MIN, -10000, &v), TG_EINVAL);
    assert_int_equal(tg_money_bps(INT64_MAX, INT64_MAX, &v), TG_EINVAL);
    assert_int_equal(tg_money_bps(INT64_MIN, INT64_MIN, &v), TG_EINVAL);
    assert_int_equal(v, 5);
    assert_int_equal(tg_money_bps(INT64_MAX / 100, 1000000, &v), TG_OK);
    assert_int_equal(v, INT64_MAX / 100 * 100);
}

static void test_add(void **state)
{
    (void)state;
    tg_nanos v = 9;
    assert_int_equal(tg_money_add(1, 2, &v), TG_OK);
    assert_int_equal(v, 3);
    assert_int_equal(tg_money_add(INT64_MAX, 0, &v), TG_OK);
    assert_int_equal(tg_money_add(INT64_MAX, -1, &v), TG_OK);
    assert_int_equal(v, INT64_MAX - 1);
    v = 9;
    assert_int_equal(tg_money_add(INT64_MAX, 1, &v), TG_EINVAL);
    assert_int_equal(tg_money_add(INT64_MIN, -1, &v), TG_EINVAL);
    assert_int_equal(v, 9);
}

static void test_round_cents(void **state)
{
    (void)state;
    assert_int_equal(tg_money_round_cents(0), 0);
    assert_int_equal(tg_money_round_cents(5000000), 10000000); /* half a cent: up */
    assert_int_equal(tg_money_round_cents(4999999), 0);
    assert_int_equal(tg_money_round_cents(10000000), 10000000);
    assert_int_equal(tg_money_round_cents(14999999), 10000000);
    assert_int_equal(tg_money_round_cents(15000000), 20000000);
    assert_int_equal(tg_money_round_cents(1), 0);
    assert_int_equal(tg_money_round_cents(-5000000), -10000000); /* away from zero */
    assert_int_equal(tg_money_round_cents(-4999999), 0);
    assert_int_equal(tg_money_round_cents(1234567890123), 1234570000000);
    assert_int_equal(tg_money_round_cents(INT64_MAX), INT64_MAX - 4775807);
    assert_int_equal(tg_money_round_cents(INT64_MIN), INT64_MIN + 4775808);
}

static void split_ok(tg_nanos total, const int64_t *w, size_t n, tg_nanos unit,
                     const tg_nanos *want)
{
    tg_nanos parts[16];
    assert_int_equal(tg_money_split(total, w, n, unit, parts), TG_OK);
    for (size_t i = 0; i < n; i++)
        if (parts[i] != want[i])
            fail_msg("part %zu: got %lld, want %lld", i, (long long)parts[i], (long long)want[i]);
}

static void test_split(void **state)
{
    (void)state;
    split_ok(100, (int64_t[]){1, 1, 1}, 3, 1, (tg_nanos[]){34, 33, 33}); /* tie: lower index */
    split_ok(200, (int64_t[]){1, 1, 1}, 3, 1, (tg_nanos[]){67, 67, 66});
    split_ok(10, (int64_t[]){1, 2, 3, 4}, 4, 1, (tg_nanos[]){1, 2, 3, 4});
    /* exact shares: nothing left over */
    split_ok(7, (int64_t[]){3, 3, 1}, 3, 1, (tg_nanos[]){3, 3, 1});
    /* 10 by 3:3:1 = 4.285, 4.285, 1.428: the two .285 lose to .428 */
    split_ok(10, (int64_t[]){3, 3, 1}, 3, 1, (tg_nanos[]){4, 4, 2});
    /* 11 by 3:3:1 = 4.714, 4.714, 1.571: the two largest get one each */
    split_ok(11, (int64_t[]){3, 3, 1}, 3, 1, (tg_nanos[]){5, 5, 1});
    /* zero weights get nothing, even with units left over */
    split_ok(5, (int64_t[]){0, 1, 0, 1, 0}, 5, 1, (tg_nanos[]){0, 3, 0, 2, 0});
    split_ok(0, (int64_t[]){1, 2}, 2, 1, (tg_nanos[]){0, 0});
    split_ok(9, (int64_t[]){5}, 1, 1, (tg_nanos[]){9});
    /* cents: 1.00 USD in three, each part a whole cent */
    const tg_nanos c = TG_NANOS_PER_CENT;
    split_ok(100 * c, (int64_t[]){1, 1, 1}, 3, c, (tg_nanos[]){34 * c, 33 * c, 33 * c});
    /* huge weights and total: products need 128 bits */
    split_ok(INT64_MAX, (int64_t[]){INT64_MAX, INT64_MAX}, 2, 1,
             (tg_nanos[]){INT64_MAX / 2 + 1, INT64_MAX / 2});
}

static void test_split_refusals(void **state)
{
    (void)state;
    tg_nanos parts[3];
    const int64_t w[] = {1, 2, 3};
    assert_int_equal(tg_money_split(10, w, 0, 1, parts), TG_EINVAL);
    assert_int_equal(tg_money_split(-10, w, 3, 1, parts), TG_EINVAL);
    assert_int_equal(tg_money_split(10, w, 3, 0, parts), TG_EINVAL);
    assert_int_equal(tg_money_split(10, w, 3, -1, parts), TG_EINVAL);
    assert_int_equal(tg_money_split(TG_NANOS_PER_CENT + 1, w, 3, TG_NANOS_PER_CENT, parts),
                     TG_EINVAL);
    assert_int_equal(tg_money_split(10, (int64_t[]){0, 0, 0}, 3, 1, parts), TG_EINVAL);
    assert_int_equal(tg_money_split(10, (int64_t[]){1, -1, 3}, 3, 1, parts), TG_EINVAL);
}

/* Random splits: the parts sum to the total, no part is more than one unit
 * away from its exact share, and zero weights get zero. */
static void test_split_random(void **state)
{
    (void)state;
    tg_rng r = {42};
    for (int round = 0; round < 20000; round++) {
        size_t n = 1 + (size_t)tg_rng_below(&r, 16);
        int64_t w[16];
        tg_nanos parts[16];
        int64_t sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += w[i] = (int64_t)tg_rng_below(&r, round % 2 ? 4 : 1000000);
        if (sum == 0) w[0] = 1, sum = 1;
        tg_nanos unit = round % 3 ? 1 : TG_NANOS_PER_CENT;
        tg_nanos total = (tg_nanos)tg_rng_below(&r, 1000000000000ULL) / unit * unit;
        assert_int_equal(tg_money_split(total, w, n, unit, parts), TG_OK);
        __int128 got = 0;
        for (size_t i = 0; i < n; i++) {
            got += parts[i];
            assert_int_equal(parts[i] % unit, 0);
            __int128 exact_units = (__int128)(total / unit) * w[i]; /* / sum */
            __int128 lo = exact_units / sum * unit;
            assert_true(parts[i] == lo || parts[i] == lo + unit);
            if (w[i] == 0) assert_int_equal(parts[i], 0);
        }
        assert_true(got == total);
    }
}

static void apportion_ok(tg_nanos whole, const tg_nanos *exact, size_t n, tg_nanos unit,
                         const tg_nanos *want)
{
    tg_nanos parts[16];
    assert_int_equal(tg_money_apportion(whole, exact, n, unit, parts), TG_OK);
    for (size_t i = 0; i < n; i++)
        if (parts[i] != want[i])
            fail_msg("part %zu: got %lld, want %lld", i, (long long)parts[i], (long long)want[i]);
}

static void test_apportion(void **state)
{
    (void)state;
    /* 10 in units of 1 from 3.4 + 3.3 + 3.3 (as tenths: unit 10) */
    apportion_ok(100, (tg_nanos[]){34, 33, 33}, 3, 10, (tg_nanos[]){40, 30, 30});
    /* a negative part rounds down towards minus infinity, remainder 5 of 10 */
    apportion_ok(0, (tg_nanos[]){25, -15, -10}, 3, 10, (tg_nanos[]){30, -20, -10});
    /* a statement: 12.35 billed, cost 10.004, fee 0.617, earnings 1.729
     * (nanos per cent 10,000,000): remainders .4, .7, .9 of a cent */
    const tg_nanos c = TG_NANOS_PER_CENT;
    apportion_ok(1235 * c, (tg_nanos[]){10004000000, 617000000, 1729000000}, 3, c,
                 (tg_nanos[]){1000 * c, 62 * c, 173 * c});
    /* a loss: billed 1.00, cost 1.506, fee 0.05, earnings -0.556 */
    apportion_ok(100 * c, (tg_nanos[]){1506000000, 50000000, -556000000}, 3, c,
                 (tg_nanos[]){151 * c, 5 * c, -56 * c});
    /* too many units: taken from the smallest remainders, ties to the higher index */
    apportion_ok(0, (tg_nanos[]){5, 5}, 2, 10, (tg_nanos[]){0, 0});
    apportion_ok(-10, (tg_nanos[]){5, 5}, 2, 10, (tg_nanos[]){0, -10});
    /* more units missing than parts: every part gets some */
    apportion_ok(50, (tg_nanos[]){1, 2}, 2, 10, (tg_nanos[]){20, 30});
    tg_nanos parts[2];
    assert_int_equal(tg_money_apportion(5, (tg_nanos[]){1, 2}, 2, 10, parts), TG_EINVAL);
    assert_int_equal(tg_money_apportion(0, (tg_nanos[]){1, 2}, 0, 10, parts), TG_EINVAL);
    assert_int_equal(tg_money_apportion(0, (tg_nanos[]){1, 2}, 2, 0, parts), TG_EINVAL);
}

/* Random apportionments: the parts sum to the whole, and when the whole
 * is the exact sum rounded, every part is within a unit of its amount. */
static void test_apportion_random(void **state)
{
    (void)state;
    tg_rng r = {7};
    for (int round = 0; round < 20000; round++) {
        size_t n = 1 + (size_t)tg_rng_below(&r, 16);
        tg_nanos exact[16], parts[16];
        __int128 sum = 0;
        for (size_t i = 0; i < n; i++) {
            exact[i] = (tg_nanos)tg_rng_below(&r, 100000000000ULL) - 30000000000LL;
            sum += exact[i];
        }
        tg_nanos unit = round % 3 ? TG_NANOS_PER_CENT : 1;
        tg_nanos whole = tg_money_round_cents((tg_nanos)sum);
        if (unit == 1) whole = (tg_nanos)sum + (tg_nanos)tg_rng_below(&r, 5) - 2;
        assert_int_equal(tg_money_apportion(whole, exact, n, unit, parts), TG_OK);
        __int128 got = 0;
        for (size_t i = 0; i < n; i++) {
            got += parts[i];
            assert_int_equal(parts[i] % unit, 0);
            if (unit > 1) assert_true(parts[i] - exact[i] < unit && exact[i] - parts[i] < unit);
        }
        assert_true(got == whole);
    }
}

static void grouped_ok(tg_nanos v, size_t places, const char *want)
{
    char out[TG_MONEY_GROUPED_STRLEN];
    size_t n = tg_money_fmt_grouped(out, v, places);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

static void test_fmt_grouped(void **state)
{
    (void)state;
    grouped_ok(0, 0, "0");
    grouped_ok(0, 2, "0.00");
    grouped_ok(2500 * TG_NANOS_PER_USD, 0, "2,500");
    grouped_ok(310500000000, 0, "310.5");
    grouped_ok(-50000000, 2, "-0.05");
    grouped_ok(37500000, 2, "0.0375");
    grouped_ok(123456789012345, 2, "123,456.789012345");
    grouped_ok(999 * TG_NANOS_PER_USD, 2, "999.00");
    grouped_ok(1000 * TG_NANOS_PER_USD, 2, "1,000.00");
    grouped_ok(1, 9, "0.000000001");
    grouped_ok(INT64_MIN, 0, "-9,223,372,036.854775808");
    grouped_ok(INT64_MAX, 2, "9,223,372,036.854775807");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_forms),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_format_like_printf),
        cmocka_unit_test(test_tokens_rounding),
        cmocka_unit_test(test_tokens_overflow),
        cmocka_unit_test(test_bps),
        cmocka_unit_test(test_bps_overflow),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_round_cents),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_split_refusals),
        cmocka_unit_test(test_split_random),
        cmocka_unit_test(test_apportion),
        cmocka_unit_test(test_fmt_grouped),
        cmocka_unit_test(test_apportion_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
