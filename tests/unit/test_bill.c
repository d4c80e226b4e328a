/* Unit tests for the billing arithmetic of src/bill: credits a request
 * consumes, billing periods by anchor day (against the C library's own
 * calendar), and wallets: burn order, burns, expiry at its instant, and
 * conservation over random wallets (what every burn takes plus its
 * overage is what was asked, and no grant goes below zero). */
#include "base/rng.h"
#include "bill/credits.h"
#include "bill/period.h"
#include "bill/wallet.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#define CR TG_NCREDITS_PER_CREDIT
#define USD TG_NANOS_PER_USD

/* ---- credits ---- */

static void test_credits_of(void **state)
{
    (void)state;
    tg_unit_credits units[] = {{"report", 10 * CR}, {"page", CR / 2}};
    tg_plan p = {.id = "pro", .credit = USD / 25, .unit_credits = units, .nunit_credits = 2};
    tg_ncredits c;
    /* a charge of 0.04 USD is one credit of 0.04 */
    assert_int_equal(tg_credits_of(&p, TG_STR(""), 0, USD / 25, &c), TG_OK);
    assert_int_equal(c, CR);
    /* 0.000029640 USD / 0.04 = 0.000741 credits */
    assert_int_equal(tg_credits_of(&p, TG_STR(""), 0, 29640, &c), TG_OK);
    assert_int_equal(c, 741000);
    /* rounded half-up to the nano-credit: at 0.03 a credit, 1 nano-USD is
     * 33.3 nano-credits, 2 are 66.7, and at 0.000000002 a credit, 1 is 0.5 */
    tg_plan odd = {.id = "odd", .credit = 3 * USD / 100};
    assert_int_equal(tg_credits_of(&odd, TG_STR(""), 0, 1, &c), TG_OK);
    assert_int_equal(c, 33);
    assert_int_equal(tg_credits_of(&odd, TG_STR(""), 0, 2, &c), TG_OK);
    assert_int_equal(c, 67);
    tg_plan two = {.id = "two", .credit = 2 * USD};
    assert_int_equal(tg_credits_of(&two, TG_STR(""), 0, 1, &c), TG_OK);
    assert_int_equal(c, 1);
    /* a unit the plan prices in credits: its credits x count, whatever the charge */
    assert_int_equal(tg_credits_of(&p, TG_STR("report"), 3, 5 * USD, &c), TG_OK);
    assert_int_equal(c, 30 * CR);
    assert_int_equal(tg_credits_of(&p, TG_STR("page"), 0, USD, &c), TG_OK);
    assert_int_equal(c, 0);
    /* a unit the plan does not list goes by charge */
    assert_int_equal(tg_credits_of(&p, TG_STR("ticket"), 2, USD, &c), TG_OK);
    assert_int_equal(c, 25 * CR);
    /* no plan: nothing */
    assert_int_equal(tg_credits_of(NULL, TG_STR("report"), 3, USD, &c), TG_OK);
    assert_int_equal(c, 0);
    /* overflow is refused, not wrapped */
    assert_int_equal(tg_credits_of(&p, TG_STR("report"), INT64_MAX / 2, 0, &c), TG_EINVAL);
    tg_plan tiny = {.id = "t", .credit = 1};
    assert_int_equal(tg_credits_of(&tiny, TG_STR(""), 0, INT64_MAX, &c), TG_EINVAL);

    tg_nanos v;
    assert_int_equal(tg_credits_value(&p, 30 * CR, &v), TG_OK);
    assert_int_equal(v, 30 * USD / 25);
    assert_int_equal(tg_credits_value(&p, 741000, &v), TG_OK);
    assert_int_equal(v, 29640);
}

/* ---- periods ---- */

static int64_t utc_ms(int y, int m, int d)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
    return (int64_t)timegm(&tm) * 1000;
}

static void test_period_calendar(void **state)
{
    (void)state;
    tg_period p;
    tg_period_at(1, utc_ms(2026, 11, 30) + 86399999, &p);
    assert_string_equal(p.name, "2026-11");
    assert_int_equal(p.start_ms, utc_ms(2026, 11, 1));
    assert_int_equal(p.end_ms, utc_ms(2026, 12, 1));
    tg_period_at(1, utc_ms(2026, 12, 1), &p);
    assert_string_equal(p.name, "2026-12");
    assert_int_equal(p.end_ms, utc_ms(2027, 1, 1));
    /* anchor 15: before the 15th is last month's period */
    tg_period_at(15, utc_ms(2027, 1, 14), &p);
    assert_string_equal(p.name, "2026-12");
    assert_int_equal(p.start_ms, utc_ms(2026, 12, 15));
    assert_int_equal(p.end_ms, utc_ms(2027, 1, 15));
    tg_period_at(15, utc_ms(2027, 1, 15), &p);
    assert_string_equal(p.name, "2027-01");
    /* a leap February */
    tg_period_at(28, utc_ms(2028, 2, 29), &p);
    assert_string_equal(p.name, "2028-02");
    assert_int_equal(p.end_ms - p.start_ms, 29LL * 86400000);
    assert_int_equal(tg_period_named(1, TG_STR("2026-02"), &p), TG_OK);
    assert_int_equal(p.start_ms, utc_ms(2026, 2, 1));
    assert_int_equal(p.end_ms, utc_ms(2026, 3, 1));
    const char *bad[] = {"2026-13", "2026-00", "2026-1", "26-11", "2026/11", "1969-12", "abcd-ef", "2026-11x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(tg_period_named(1, tg_str_c(bad[i]), &p), TG_EINVAL);
}

/* Every period holds its instant, starts on its anchor day at midnight
 * UTC and ends where the next one starts; its name parses back to it. */
static void test_period_random(void **state)
{
    (void)state;
    tg_rng rng = {42};
    for (int i = 0; i < 200000; i++) {
        /* 1971 .. 2100: a period named before 1970-01 is not one */
        int64_t t = 31536000000LL + (int64_t)tg_rng_below(&rng, 4070908800000ULL);
        uint32_t anchor = 1 + (uint32_t)tg_rng_below(&rng, 28);
        tg_period p, q, named;
        tg_period_at(anchor, t, &p);
        assert_true(p.start_ms <= t && t < p.end_ms);
        time_t s = (time_t)(p.start_ms / 1000);
        struct tm tm;
        gmtime_r(&s, &tm);
        assert_int_equal(p.start_ms % 1000, 0);
        assert_int_equal(tm.tm_mday, (int)anchor);
        assert_int_equal(tm.tm_hour + tm.tm_min + tm.tm_sec, 0);
        char name[32];
        snprintf(name, sizeof name, "%04d-%02d", tm.tm_year + 1900, tm.tm_mon + 1);
        assert_string_equal(p.name, name);
        tg_period_at(anchor, p.end_ms, &q);
        assert_int_equal(q.start_ms, p.end_ms);
        tg_period_at(anchor, p.start_ms - 1, &q);
        assert_int_equal(q.end_ms, p.start_ms);
        assert_int_equal(tg_period_named(anchor, tg_str_c(p.name), &named), TG_OK);
        assert_int_equal(named.start_ms, p.start_ms);
        assert_int_equal(named.end_ms, p.end_ms);
    }
}

static void test_utc(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(tg_utc_parse(TG_STR("2026-11-01"), &ms), TG_OK);
    assert_int_equal(ms, utc_ms(2026, 11, 1));
    assert_int_equal(tg_utc_parse(TG_STR("2028-02-29T23:59:59Z"), &ms), TG_OK);
    assert_int_equal(ms, utc_ms(2028, 3, 1) - 1000);
    const char *bad[] = {"2026-02-30", "2027-02-29", "2026-11-01T24:00:00Z", "2026-11-01T10:00:00",
                         "2026-11-01T10:00:00+01:00", "2026-11-1", "1969-12-31", "2026-13-01",
                         "2026-11-01T10:00:00.5Z", "", "2026-11-01 10:00:00Z"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(tg_utc_parse(tg_str_c(bad[i]), &ms), TG_EINVAL);
    tg_rng rng = {5};
    for (int i = 0; i < 100000; i++) {
        int64_t t = (int64_t)tg_rng_below(&rng, 4102444800ULL) * 1000;
        char s[TG_UTC_STRLEN], want[32];
        tg_utc_format(t + (int64_t)tg_rng_below(&rng, 1000), s);
        time_t sec = (time_t)(t / 1000);
        struct tm tm;
        gmtime_r(&sec, &tm);
        strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%SZ", &tm);
        assert_string_equal(s, want);
        assert_int_equal(tg_utc_parse(tg_str_c(s), &ms), TG_OK);
        assert_int_equal(ms, t);
    }
}

/* ---- wallets ---- */

static tg_grant grant(const char *id, tg_grant_kind k, int64_t prio, int64_t created, int64_t expires,
                      tg_ncredits credits)
{
    tg_grant g = {.kind = k, .priority = prio, .created_ms = created, .expires_ms = expires,
                  .granted = credits, .left = credits};
    snprintf(g.id, sizeof g.id, "%s", id);
    return g;
}

static void test_burn_order(void **state)
{
    (void)state;
    tg_grant g[] = {
        grant("g_never", TG_GRANT_PAID, 0, 100, 0, CR),
        grant("g_late", TG_GRANT_PAID, 0, 100, 5000, CR),
        grant("g_soon", TG_GRANT_PROMO, 0, 100, 3000, CR),
        grant("g_prio", TG_GRANT_PROMO, 5, 300, 0, CR),
        grant("inc:2026-11", TG_GRANT_INCLUDED, 0, 0, 9000, CR),
        grant("g_old", TG_GRANT_PAID, 0, 50, 0, CR),
        grant("g_b", TG_GRANT_PAID, 0, 50, 0, CR),
    };
    tg_wallet_order(g, 7);
    const char *want[] = {"inc:2026-11", "g_prio", "g_soon", "g_late", "g_b", "g_old", "g_never"};
    for (int i = 0; i < 7; i++) assert_string_equal(g[i].id, want[i]);
}

static void test_burn(void **state)
{
    (void)state;
    tg_grant g[] = {
        grant("inc:2026-11", TG_GRANT_INCLUDED, 0, 0, 1000, 5 * CR),
        grant("g_a", TG_GRANT_PAID, 1, 0, 2000, 3 * CR),
        grant("g_b", TG_GRANT_PAID, 0, 500, 0, 4 * CR),
    };
    tg_ncredits take[3] = {0};
    /* at 100: included, then g_a; g_b is not there yet */
    assert_int_equal(tg_wallet_available(g, 3, 100), 8 * CR);
    assert_int_equal(tg_wallet_burn(g, 3, 6 * CR, 100, take), 0);
    assert_int_equal(take[0], 5 * CR);
    assert_int_equal(take[1], CR);
    assert_int_equal(take[2], 0);
    assert_int_equal(tg_wallet_burn(g, 3, 3 * CR, 100, take), CR); /* 1 credit of overage */
    assert_int_equal(g[1].left, 0);
    /* from 500 g_b is usable too; the included grant expired at 1000 */
    g[0].left = CR;
    assert_int_equal(tg_wallet_available(g, 3, 499), CR);
    assert_int_equal(tg_wallet_available(g, 3, 999), 5 * CR);
    assert_int_equal(tg_wallet_available(g, 3, 1000), 4 * CR);
    memset(take, 0, sizeof take);
    assert_int_equal(tg_wallet_burn(g, 3, 2 * CR, 1000, take), 0);
    assert_int_equal(take[0], 0);
    assert_int_equal(take[2], 2 * CR);
    /* expiry at its instant: usable one ms before, not at it */
    tg_grant e = grant("g_e", TG_GRANT_PROMO, 0, 0, 5000, CR);
    assert_int_equal(tg_wallet_burn(&e, 1, CR / 2, 4999, NULL), 0);
    assert_int_equal(tg_wallet_burn(&e, 1, CR / 4, 5000, NULL), CR / 4);
    assert_int_equal(e.left, CR / 2);
    char id[TG_GRANT_ID_MAX + 1];
    tg_grant_included_id("2026-11", id);
    assert_string_equal(id, "inc:2026-11");
    tg_grant_kind k;
    assert_int_equal(tg_grant_kind_parse(TG_STR("promo"), &k), TG_OK);
    assert_int_equal(k, TG_GRANT_PROMO);
    assert_string_equal(tg_grant_kind_name(TG_GRANT_PAID), "paid");
    assert_int_equal(tg_grant_kind_parse(TG_STR("gift"), &k), TG_EINVAL);
}

/* Random wallets and burns: each burn's takes plus its overage equal what
 * it asked, no grant goes below zero or is taken from while unusable, and
 * a later grant in burn order is taken from only when every usable one
 * before it is empty. */
static void test_burn_random(void **state)
{
    (void)state;
    tg_rng rng = {7};
    for (int round = 0; round < 20000; round++) {
        tg_grant g[8];
        size_t n = 1 + tg_rng_below(&rng, 8);
        for (size_t i = 0; i < n; i++) {
            char id[16];
            snprintf(id, sizeof id, "g_%zu", i);
            int64_t created = (int64_t)tg_rng_below(&rng, 1000);
            int64_t expires = tg_rng_below(&rng, 3) ? 0 : created + 1 + (int64_t)tg_rng_below(&rng, 2000);
            g[i] = grant(id, (tg_grant_kind)tg_rng_below(&rng, 3), (int64_t)tg_rng_below(&rng, 3),
                         created, expires, 1 + (int64_t)tg_rng_below(&rng, 10 * CR));
        }
        tg_wallet_order(g, n);
        for (int b = 0; b < 6; b++) {
            int64_t t = (int64_t)tg_rng_below(&rng, 3000);
            tg_ncredits amount = (tg_ncredits)tg_rng_below(&rng, 20 * CR);
            tg_grant before[8];
            memcpy(before, g, sizeof g);
            tg_ncredits avail = tg_wallet_available(g, n, t), take[8] = {0};
            tg_ncredits over = tg_wallet_burn(g, n, amount, t, take);
            tg_ncredits sum = over;
            for (size_t i = 0; i < n; i++) {
                sum += take[i];
                assert_true(g[i].left >= 0);
                assert_int_equal(g[i].left, before[i].left - take[i]);
                if (take[i]) {
                    assert_true(tg_grant_usable(&before[i], t));
                    for (size_t j = 0; j < i; j++)
                        assert_true(!tg_grant_usable(&g[j], t)); /* emptied or unusable */
                }
            }
            assert_int_equal(sum, amount);
            assert_int_equal(over, amount > avail ? amount - avail : 0);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_credits_of),   cmocka_unit_test(test_period_calendar),
        cmocka_unit_test(test_period_random), cmocka_unit_test(test_utc),
        cmocka_unit_test(test_burn_order),
        cmocka_unit_test(test_burn),         cmocka_unit_test(test_burn_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
