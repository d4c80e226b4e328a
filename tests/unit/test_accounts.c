/* Live accounts (src/bill/accounts.c): reservations against included
 * credits, grants, overage and hard caps; refusals that reserve nothing;
 * extending a hold; the room a hold may settle for; thresholds crossed
 * once per period; period roll-over; and 8 threads reserving and settling
 * at random against one hard cap, which the total never passes. */
#include "base/rng.h"
#include "bill/accounts.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>
#include <time.h>

#define CR TG_NCREDITS_PER_CREDIT
#define USD TG_NANOS_PER_USD
#define MS_DAY 86400000LL

static int64_t nov1; /* 2026-11-01T00:00Z */

static int setup(void **state)
{
    (void)state;
    struct tm tm = {.tm_year = 126, .tm_mon = 10, .tm_mday = 1};
    nov1 = (int64_t)timegm(&tm) * 1000;
    return 0;
}

static tg_account_ask ask(const tg_plan *p, int64_t t, tg_ncredits credits, tg_nanos charge)
{
    return (tg_account_ask){.plan = p, .anchor_day = 1, .now_ms = t, .credits = credits, .charge = charge};
}

static void test_no_overage(void **state)
{
    (void)state;
    tg_plan p = {.id = "starter", .credit = USD / 100, .included = 5 * CR, .thresholds = {80, 100},
                 .nthresholds = 2};
    tg_accounts *a = tg_accounts_new();
    tg_account *acc = tg_accounts_get(a, TG_STR("app"), TG_STR("c1"));
    assert_ptr_equal(tg_accounts_get(a, TG_STR("app"), TG_STR("c1")), acc);
    assert_ptr_not_equal(tg_accounts_get(a, TG_STR("app"), TG_STR("c2")), acc);
    tg_grant g = {.id = "g_1", .kind = TG_GRANT_PAID, .created_ms = nov1, .granted = 2 * CR, .left = 2 * CR};
    assert_int_equal(tg_account_add_grant(acc, &g), TG_OK);
    assert_int_equal(tg_account_add_grant(acc, &g), TG_OK); /* known: ignored */
    int64_t t = nov1 + MS_DAY;
    tg_account_hold h1, h2, h3;
    tg_account_state st;
    tg_account_ask q = ask(&p, t, 4 * CR, 4 * USD / 100);
    assert_int_equal(tg_account_reserve(acc, &q, &h1, &st), TG_ACCOUNT_OK);
    assert_int_equal(st.included, 5 * CR);
    assert_int_equal(st.grants_left, 2 * CR);
    assert_int_equal(st.reserved, 4 * CR);
    q.credits = 3 * CR;
    assert_int_equal(tg_account_reserve(acc, &q, &h2, NULL), TG_ACCOUNT_OK); /* 7 of 7 */
    q.credits = 1;
    assert_int_equal(tg_account_reserve(acc, &q, &h3, &st), TG_ACCOUNT_NO_CREDITS);
    assert_int_equal(st.reserved, 7 * CR); /* the refusal reserved nothing */
    /* the first settles for less: 3 credits, crossing nothing (60%) */
    assert_int_equal(tg_account_settle(&h1, &p, t, 3 * CR, 3 * USD / 100), 0);
    /* the second for 2: 5 used of 5 included, crossing 80% and 100% at once */
    assert_int_equal(tg_account_settle(&h2, &p, t, 2 * CR, 2 * USD / 100), 3u);
    tg_account_state_of(acc, &p, 1, t, &st);
    assert_int_equal(st.used, 5 * CR);
    assert_int_equal(st.included_left, 0);
    assert_int_equal(st.grants_left, 2 * CR);
    assert_int_equal(st.reserved, 0);
    assert_int_equal(st.charge, 5 * USD / 100);
    q.credits = 2 * CR;
    assert_int_equal(tg_account_reserve(acc, &q, &h3, NULL), TG_ACCOUNT_OK);
    assert_int_equal(tg_account_settle(&h3, &p, t, 2 * CR, 0), 0); /* fired already */
    q.credits = 1;
    assert_int_equal(tg_account_reserve(acc, &q, &h3, NULL), TG_ACCOUNT_NO_CREDITS);

    /* December: included again, nothing used, thresholds fire anew */
    int64_t dec = nov1 + 30 * MS_DAY;
    q = ask(&p, dec, 5 * CR, 0);
    assert_int_equal(tg_account_reserve(acc, &q, &h3, &st), TG_ACCOUNT_OK);
    assert_string_equal(st.period.name, "2026-12");
    assert_int_equal(st.used, 0);
    assert_int_equal(st.included_left, 5 * CR);
    assert_int_equal(tg_account_settle(&h3, &p, dec, 4 * CR, 0), 1u);
    tg_accounts_free(a);
}

static void test_caps_and_overage(void **state)
{
    (void)state;
    tg_plan p = {.id = "pro", .credit = USD / 100, .has_overage = true, .overage = 8 * USD / 100,
                 .cap = TG_CAP_USD, .cap_usd = USD};
    tg_accounts *a = tg_accounts_new();
    tg_account *acc = tg_accounts_get(a, TG_STR("app"), TG_STR("c1"));
    int64_t t = nov1;
    tg_account_hold h, h2;
    tg_account_ask q = ask(&p, t, 60 * CR, 60 * USD / 100);
    assert_int_equal(tg_account_reserve(acc, &q, &h, NULL), TG_ACCOUNT_OK); /* overage: fine */
    assert_int_equal(tg_account_reserve(acc, &q, &h2, NULL), TG_ACCOUNT_CAP_USD);
    /* extend to the cap exactly, and not a nano past it */
    tg_account_ask more = ask(&p, t, 40 * CR, 40 * USD / 100);
    assert_int_equal(tg_account_extend(&h, &more), TG_ACCOUNT_OK);
    more.charge = 1;
    more.credits = 1;
    assert_int_equal(tg_account_extend(&h, &more), TG_ACCOUNT_CAP_USD);
    tg_ncredits rc;
    tg_nanos rm;
    tg_account_room(&h, &q, &rc, &rm);
    assert_int_equal(rm, USD);
    assert_int_equal(rc, INT64_MAX);
    tg_account_settle(&h, &p, t, 30 * CR, 30 * USD / 100);
    q.charge = 70 * USD / 100;
    assert_int_equal(tg_account_reserve(acc, &q, &h, NULL), TG_ACCOUNT_OK);
    tg_account_room(&h, &q, &rc, &rm);
    assert_int_equal(rm, 70 * USD / 100);
    tg_account_settle(&h, &p, t, 0, 0);

    tg_plan c = {.id = "capc", .credit = USD / 100, .has_overage = true, .cap = TG_CAP_CREDITS,
                 .cap_credits = 10 * CR};
    tg_account *acc2 = tg_accounts_get(a, TG_STR("app"), TG_STR("c2"));
    q = ask(&c, t, 10 * CR, 0);
    assert_int_equal(tg_account_reserve(acc2, &q, &h, NULL), TG_ACCOUNT_OK);
    q.credits = 1;
    assert_int_equal(tg_account_reserve(acc2, &q, &h2, NULL), TG_ACCOUNT_CAP_CREDITS);
    tg_account_room(&h, &q, &rc, &rm);
    assert_int_equal(rc, 10 * CR);
    tg_account_settle(&h, &c, t, 10 * CR, 0);
    tg_accounts_free(a);
}

/* A hold from the period before settles without counting in this one. */
static void test_hold_across_periods(void **state)
{
    (void)state;
    tg_plan p = {.id = "p", .credit = USD / 100, .included = 10 * CR, .thresholds = {50},
                 .nthresholds = 1};
    tg_accounts *a = tg_accounts_new();
    tg_account *acc = tg_accounts_get(a, TG_STR("app"), TG_STR("c1"));
    int64_t end = nov1 + 30 * MS_DAY;
    tg_account_hold old, now;
    tg_account_ask q = ask(&p, end - 1, 6 * CR, 0);
    assert_int_equal(tg_account_reserve(acc, &q, &old, NULL), TG_ACCOUNT_OK);
    q = ask(&p, end, 1 * CR, 0);
    assert_int_equal(tg_account_reserve(acc, &q, &now, NULL), TG_ACCOUNT_OK);
    assert_int_equal(tg_account_settle(&old, &p, end - 1, 6 * CR, 0), 0);
    tg_account_state st;
    tg_account_state_of(acc, &p, 1, end, &st);
    assert_int_equal(st.used, 0);
    assert_int_equal(st.included_left, 10 * CR);
    assert_int_equal(st.reserved, CR);
    tg_account_settle(&now, &p, end, CR, 0);
    /* the store's figures at start: 6 of 10 used; the first settle crosses nothing already past */
    tg_account *acc3 = tg_accounts_get(a, TG_STR("app"), TG_STR("c3"));
    tg_period per;
    tg_period_at(1, nov1, &per);
    tg_account_set_use(acc3, &p, &per, 6 * CR, 0);
    q = ask(&p, nov1, CR, 0);
    assert_int_equal(tg_account_reserve(acc3, &q, &now, &st), TG_ACCOUNT_OK);
    assert_int_equal(st.included_left, 10 * CR); /* no included grant in the store: made whole */
    assert_int_equal(tg_account_settle(&now, &p, nov1, CR, 0), 0);
    tg_accounts_free(a);
}

/* 8 threads, each reserving a random worst case and settling for a random
 * part of it (sometimes more, clamped to the hold's room as the gateway
 * does), against a 1 USD cap: the total never passes it, every refusal
 * came when the cap could not take the worst case, and nothing stays
 * reserved. */
typedef struct {
    tg_account *acc;
    const tg_plan *plan;
    uint64_t seed;
    tg_nanos settled;
    int refused;
} worker;

static void *run(void *arg)
{
    worker *w = arg;
    tg_rng g = {w->seed};
    for (int i = 0; i < 20000; i++) {
        tg_nanos worst = 1 + (tg_nanos)tg_rng_below(&g, 5000000);
        tg_account_ask q = ask(w->plan, nov1, worst, worst);
        tg_account_hold h;
        if (tg_account_reserve(w->acc, &q, &h, NULL) != TG_ACCOUNT_OK) {
            w->refused++;
            continue;
        }
        tg_nanos actual = (tg_nanos)tg_rng_below(&g, (uint64_t)worst * 2);
        tg_ncredits rc;
        tg_nanos rm;
        tg_account_room(&h, &q, &rc, &rm);
        if (actual > rm) actual = rm;
        tg_account_settle(&h, w->plan, nov1, actual, actual);
        w->settled += actual;
    }
    return NULL;
}

static void test_threads_cap(void **state)
{
    (void)state;
    tg_plan p = {.id = "cap", .credit = 1, .has_overage = true, .cap = TG_CAP_USD, .cap_usd = USD};
    tg_accounts *a = tg_accounts_new();
    tg_account *acc = tg_accounts_get(a, TG_STR("app"), TG_STR("c"));
    worker w[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (worker){.acc = acc, .plan = &p, .seed = 100 + (uint64_t)i};
        assert_int_equal(pthread_create(&th[i], NULL, run, &w[i]), 0);
    }
    tg_nanos total = 0;
    int refused = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        total += w[i].settled;
        refused += w[i].refused;
    }
    tg_account_state st;
    tg_account_state_of(acc, &p, 1, nov1, &st);
    assert_int_equal(st.charge, total);
    assert_true(total <= USD);
    assert_true(refused > 0);
    assert_int_equal(st.reserved, 0);
    assert_int_equal(st.reserved_charge, 0);
    tg_accounts_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_overage),
        cmocka_unit_test(test_caps_and_overage),
        cmocka_unit_test(test_hold_across_periods),
        cmocka_unit_test(test_threads_cap),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
