/* The wallet ledger in the store (src/store/wallet.c), on real SQLite
 * files: grants and their funding transactions, burns as usage is stored
 * (included credits first, then grants in burn order, then overage), one
 * burn transaction per customer, period and day, expiry written at its
 * instant, grants from another handle picked up by the poll, replays that
 * burn nothing twice, and a random month checked against an independent
 * model: every transaction sums to zero, no grant goes below zero, and for
 * every customer included + grants + overage burned equals the credits of
 * its records. */
#include "base/rng.h"
#include "store/store.h"
#include "store/wallet.h"

#include <sqlite3.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CR TG_NCREDITS_PER_CREDIT
#define MS_DAY 86400000LL

static char dir[64];
static int64_t nov1; /* 2026-11-01T00:00Z */
static int nstore;

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/tg-test-wallet-XXXXXX");
    assert_non_null(mkdtemp(dir));
    struct tm tm = {.tm_year = 126, .tm_mon = 10, .tm_mday = 1};
    nov1 = (int64_t)timegm(&tm) * 1000;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Plan "pro" includes 5 credits a period, "free" none; app "late" has
 * periods from the 15th. */
static void terms(void *ud, tg_str app, tg_str plan, tg_store_terms *out)
{
    (void)ud;
    out->anchor_day = tg_str_eq(app, TG_STR("late")) ? 15 : 1;
    out->included = tg_str_eq(plan, TG_STR("pro")) ? 5 * CR : 0;
}

static tg_store *fresh(char *path, size_t n)
{
    snprintf(path, n, "%s/w%d.db", dir, nstore++);
    tg_store *s;
    tg_errmsg err;
    assert_int_equal(tg_store_open(path, TG_STORE_RW, &s, &err), TG_OK);
    tg_store_set_terms(s, terms, NULL);
    return s;
}

static void rec(tg_usage_rec *r, uint64_t i, const char *app, const char *cust, const char *plan,
                int64_t t, tg_ncredits credits)
{
    memset(r, 0, sizeof *r);
    for (int b = 0; b < 6; b++) r->id[b] = (uint8_t)((uint64_t)t >> (40 - 8 * b));
    for (int b = 0; b < 8; b++) r->id[8 + b] = (uint8_t)(i >> (56 - 8 * b));
    snprintf(r->rid, sizeof r->rid, "r%llu", (unsigned long long)i);
    snprintf(r->tags.app, sizeof r->tags.app, "%s", app);
    snprintf(r->tags.customer, sizeof r->tags.customer, "%s", cust);
    snprintf(r->tags.plan, sizeof r->tags.plan, "%s", plan);
    strcpy(r->model, "fast");
    r->status = 200;
    r->t_start_ms = t;
    r->cost = credits / 100;
    r->charge = r->cost;
    r->credits = credits;
}

static void put(tg_store *s, tg_usage_rec *r, size_t n)
{
    tg_errmsg err;
    assert_int_equal(tg_store_put(s, r, n, &err), TG_OK);
}

static tg_grant grant(const char *id, tg_grant_kind k, int64_t prio, int64_t created, int64_t expires,
                      tg_ncredits credits)
{
    tg_grant g = {.kind = k, .priority = prio, .created_ms = created, .expires_ms = expires,
                  .granted = credits, .left = credits};
    snprintf(g.id, sizeof g.id, "%s", id);
    return g;
}

static void add(tg_store *s, const char *app, const char *cust, tg_grant g, tg_nanos paid)
{
    tg_errmsg err;
    assert_int_equal(tg_store_add_grant(s, tg_str_c(app), tg_str_c(cust), &g, paid, TG_STR("test"),
                                        g.created_ms, &err),
                     TG_OK);
}

typedef struct {
    tg_store_grant v[16];
    size_t n;
} grants;

static grants list(tg_store *s, const char *app, const char *cust)
{
    grants l = {0};
    tg_store_grant *g;
    tg_errmsg err;
    assert_int_equal(tg_store_grants(s, tg_str_c(app), tg_str_c(cust), &g, &l.n, &err), TG_OK);
    assert_true(l.n <= 16);
    if (l.n) memcpy(l.v, g, l.n * sizeof *g);
    free(g);
    return l;
}

static tg_ncredits left_of(tg_store *s, const char *app, const char *cust, const char *id)
{
    grants l = list(s, app, cust);
    for (size_t i = 0; i < l.n; i++)
        if (!strcmp(l.v[i].g.id, id)) return l.v[i].g.left;
    fail_msg("no grant %s", id);
    return -1;
}

static tg_store_period_sums use(tg_store *s, const char *app, const char *cust, const char *period)
{
    tg_store_period_sums u;
    tg_errmsg err;
    assert_int_equal(tg_store_period_use(s, tg_str_c(app), tg_str_c(cust), period, &u, &err), TG_OK);
    return u;
}

static void check(tg_store *s)
{
    tg_errmsg err;
    int64_t ntx, ngrants;
    int rc = tg_store_wallet_check(s, &ntx, &ngrants, &err);
    if (rc) fail_msg("%s", err.msg);
}

static void test_burn_order(void **state)
{
    (void)state;
    char path[128];
    tg_store *s = fresh(path, sizeof path);
    int64_t t = nov1 + MS_DAY;
    add(s, "acme", "c1", grant("g_paid", TG_GRANT_PAID, 0, nov1, 0, 3 * CR), 150000000);
    add(s, "acme", "c1", grant("g_promo", TG_GRANT_PROMO, 0, nov1, nov1 + 20 * MS_DAY, 2 * CR), 0);
    tg_usage_rec r[4];
    rec(&r[0], 1, "acme", "c1", "pro", t, 4 * CR);       /* included: 4 of 5 */
    rec(&r[1], 2, "acme", "c1", "pro", t + 1, 2 * CR);   /* included 1, then the promo 1 */
    rec(&r[2], 3, "acme", "c1", "pro", t + 2, 3 * CR);   /* promo 1 (expires first), paid 2 */
    rec(&r[3], 4, "acme", "c1", "pro", t + 3, 3 * CR);   /* paid 1, then 2 of overage */
    put(s, r, 2);
    put(s, r + 2, 2);
    grants l = list(s, "acme", "c1");
    assert_int_equal(l.n, 3);
    assert_string_equal(l.v[0].g.id, "inc:2026-11"); /* burn order */
    assert_string_equal(l.v[1].g.id, "g_promo");
    assert_string_equal(l.v[2].g.id, "g_paid");
    assert_int_equal(l.v[0].g.left, 0);
    assert_int_equal(l.v[0].g.expires_ms, nov1 + 30 * MS_DAY);
    assert_int_equal(l.v[1].g.left, 0);
    assert_int_equal(l.v[2].g.left, 0);
    assert_int_equal(l.v[2].paid, 150000000);
    tg_store_period_sums u = use(s, "acme", "c1", "2026-11");
    assert_int_equal(u.included, 5 * CR);
    assert_int_equal(u.included_used, 5 * CR);
    assert_int_equal(u.grants_used, 5 * CR);
    assert_int_equal(u.overage, 2 * CR);
    assert_int_equal(u.records, 4);
    assert_int_equal(u.charge, 12 * CR / 100);
    check(s);

    /* a customer on a plan without included credits, and one of an app
     * whose periods start on the 15th */
    rec(&r[0], 5, "acme", "c2", "free", t, CR);
    rec(&r[1], 6, "late", "c3", "pro", nov1 + 20 * MS_DAY, CR);
    rec(&r[2], 7, "late", "c3", "pro", nov1 + 10 * MS_DAY, CR);
    put(s, r, 3);
    assert_int_equal(use(s, "acme", "c2", "2026-11").overage, CR);
    assert_int_equal(use(s, "acme", "c2", "2026-11").included, 0);
    assert_int_equal(use(s, "late", "c3", "2026-11").included_used, CR);
    assert_int_equal(use(s, "late", "c3", "2026-10").included_used, CR);
    assert_int_equal(list(s, "late", "c3").n, 2);
    check(s);
    tg_store_close(s);
}

/* One burn transaction per customer, period and day, whatever the puts. */
static void test_burn_per_day(void **state)
{
    (void)state;
    char path[128];
    tg_store *s = fresh(path, sizeof path);
    tg_usage_rec r;
    for (int i = 0; i < 30; i++) {
        rec(&r, (uint64_t)i, "acme", "c1", "free", nov1 + (i / 10) * MS_DAY + i, CR);
        put(s, &r, 1);
    }
    tg_store_close(s);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*), sum(records) FROM wallet_tx WHERE kind = 'burn'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 3);
    assert_int_equal(sqlite3_column_int(st, 1), 30);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static int count(void *ud, tg_str app, tg_str cust, tg_str id)
{
    assert_true(tg_str_eq(app, TG_STR("acme")) && tg_str_eq(cust, TG_STR("c1")) &&
                tg_str_eq(id, TG_STR("g_new")));
    ++*(size_t *)ud;
    return 0;
}

static void test_expiry_and_poll(void **state)
{
    (void)state;
    char path[128];
    tg_errmsg err;
    tg_store *s = fresh(path, sizeof path);
    int64_t exp = nov1 + 3 * MS_DAY;
    add(s, "acme", "c1", grant("g_e", TG_GRANT_PROMO, 0, nov1, exp, 4 * CR), 0);
    tg_usage_rec r[3];
    rec(&r[0], 1, "acme", "c1", "free", exp - 1, CR);  /* before the instant: the grant */
    rec(&r[1], 2, "acme", "c1", "free", exp, CR);      /* at it: overage */
    put(s, r, 2);
    assert_int_equal(left_of(s, "acme", "c1", "g_e"), 3 * CR);
    assert_int_equal(use(s, "acme", "c1", "2026-11").overage, CR);
    size_t n;
    /* within the grace nothing closes; after it, the rest expires */
    assert_int_equal(tg_store_expire_grants(s, exp + 1000, 60000, &n, &err), TG_OK);
    assert_int_equal(n, 0);
    assert_int_equal(tg_store_expire_grants(s, exp + 60000, 60000, &n, &err), TG_OK);
    assert_int_equal(n, 1);
    assert_int_equal(left_of(s, "acme", "c1", "g_e"), 0);
    assert_true(list(s, "acme", "c1").v[0].closed_ms > 0);
    assert_int_equal(tg_store_expire_grants(s, exp + 120000, 60000, &n, &err), TG_OK);
    assert_int_equal(n, 0);
    check(s);

    /* a grant added by another handle reaches the writer through the poll */
    int64_t seen = 0;
    size_t polled = 0;
    assert_int_equal(tg_store_wallet_poll(s, &seen, NULL, NULL, &err), TG_OK);
    tg_store *other;
    assert_int_equal(tg_store_open(path, TG_STORE_RW, &other, &err), TG_OK);
    add(other, "acme", "c1", grant("g_new", TG_GRANT_PAID, 0, exp, 0, 2 * CR), 80000000);
    tg_store_close(other);
    assert_int_equal(tg_store_wallet_poll(s, &seen, count, &polled, &err), TG_OK);
    assert_int_equal(polled, 1);
    rec(&r[2], 3, "acme", "c1", "free", exp + 10, CR);
    put(s, r + 2, 1);
    assert_int_equal(left_of(s, "acme", "c1", "g_new"), CR);
    assert_int_equal(use(s, "acme", "c1", "2026-11").overage, CR);
    /* the id is unique per customer */
    tg_grant dup = grant("g_new", TG_GRANT_PAID, 0, exp, 0, CR);
    assert_int_equal(tg_store_add_grant(s, TG_STR("acme"), TG_STR("c1"), &dup, 0, TG_STR(""), exp, &err),
                     TG_EINVAL);
    assert_non_null(strstr(err.msg, "already has a grant g_new"));
    check(s);
    tg_store_close(s);
}

/* A replayed record is dropped before the put and burns nothing twice. */
static void test_replay(void **state)
{
    (void)state;
    char path[128];
    tg_errmsg err;
    tg_store *s = fresh(path, sizeof path);
    tg_usage_rec r[3];
    for (int i = 0; i < 3; i++) rec(&r[i], (uint64_t)i, "acme", "c1", "pro", nov1 + i, 2 * CR);
    put(s, r, 3);
    size_t n = 3;
    assert_int_equal(tg_store_drop_known(s, r, &n, &err), TG_OK);
    assert_int_equal(n, 0);
    put(s, r, n);
    tg_store_period_sums u = use(s, "acme", "c1", "2026-11");
    assert_int_equal(u.included_used + u.grants_used + u.overage, 6 * CR);
    assert_int_equal(u.records, 3);
    check(s);
    tg_store_close(s);
}

/* A random month: 40 customers with random grants, 20,000 records in
 * random puts, against a model kept here: what each customer's records
 * consumed is what its grants and overage gave, every transaction sums to
 * zero, and every grant's balance is what the model's burn order left. */
static void test_random(void **state)
{
    (void)state;
    enum { NCUST = 40, NREC = 20000 };
    char path[128];
    tg_store *s = fresh(path, sizeof path);
    tg_rng g = {99};
    tg_grant model[NCUST][8];
    size_t nm[NCUST] = {0};
    tg_ncredits consumed[NCUST] = {0}, over[NCUST] = {0};
    for (int c = 0; c < NCUST; c++) {
        char cust[16];
        snprintf(cust, sizeof cust, "c%d", c);
        if (c % 2 == 0) /* "pro": the included grant, as the writer makes it */
            model[c][nm[c]++] = grant("inc:2026-11", TG_GRANT_INCLUDED, 0, nov1, nov1 + 30 * MS_DAY, 5 * CR);
        int k = (int)tg_rng_below(&g, 4);
        for (int j = 0; j < k; j++) {
            char id[32];
            snprintf(id, sizeof id, "g_%d_%d", c, j);
            int64_t created = nov1 + (int64_t)tg_rng_below(&g, 10 * MS_DAY);
            int64_t exp = tg_rng_below(&g, 2) ? 0 : created + (int64_t)tg_rng_below(&g, 20 * MS_DAY) + 1;
            tg_grant gr = grant(id, (tg_grant_kind)(1 + tg_rng_below(&g, 2)), (int64_t)tg_rng_below(&g, 3),
                                created, exp, (int64_t)tg_rng_below(&g, 20 * CR) + 1);
            add(s, "acme", cust, gr, 0);
            model[c][nm[c]++] = gr;
        }
        tg_wallet_order(model[c], nm[c]);
    }
    tg_usage_rec *r = malloc(NREC * sizeof *r);
    assert_non_null(r);
    for (int i = 0; i < NREC; i++) {
        int c = (int)tg_rng_below(&g, NCUST);
        char cust[16];
        snprintf(cust, sizeof cust, "c%d", c);
        int64_t t = nov1 + (int64_t)((__int128)i * 29 * MS_DAY / NREC);
        tg_ncredits cr = (tg_ncredits)tg_rng_below(&g, CR / 2);
        rec(&r[i], (uint64_t)i, "acme", cust, c % 2 ? "free" : "pro", t, cr);
        consumed[c] += cr;
        over[c] += tg_wallet_burn(model[c], nm[c], cr, t, NULL);
    }
    for (int i = 0; i < NREC;) {
        int k = 1 + (int)tg_rng_below(&g, 2000);
        if (k > NREC - i) k = NREC - i;
        put(s, r + i, (size_t)k);
        i += k;
    }
    for (int c = 0; c < NCUST; c++) {
        char cust[16];
        snprintf(cust, sizeof cust, "c%d", c);
        tg_store_period_sums u = use(s, "acme", cust, "2026-11");
        assert_int_equal(u.included_used + u.grants_used + u.overage, consumed[c]);
        assert_int_equal(u.overage, over[c]);
        for (size_t j = 0; j < nm[c]; j++)
            assert_int_equal(left_of(s, "acme", cust, model[c][j].id), model[c][j].left);
    }
    check(s);
    free(r);
    tg_store_close(s);
}

/* One put burning for more customers than the writer's table of wallets
 * first holds (it grows under the put's pending burns, which must still
 * find their wallets: a regression). */
static void test_many_customers_in_one_put(void **state)
{
    (void)state;
    char path[128];
    tg_store *s = fresh(path, sizeof path);
    enum { N = 1500 };
    tg_usage_rec *r = calloc(2 * N, sizeof *r);
    assert_non_null(r);
    for (size_t i = 0; i < 2 * N; i++) {
        char cust[16];
        snprintf(cust, sizeof cust, "c%zu", i % N);
        rec(&r[i], i, "acme", cust, "pro", nov1 + MS_DAY + (int64_t)i, (tg_ncredits)(i % 7 + 1) * CR);
    }
    put(s, r, 2 * N);
    for (size_t i = 0; i < N; i++) {
        char cust[16];
        snprintf(cust, sizeof cust, "c%zu", i);
        tg_store_period_sums u = use(s, "acme", cust, "2026-11");
        tg_ncredits want = r[i].credits + r[i + N].credits;
        assert_int_equal(u.included_used + u.overage, want);
        assert_int_equal(u.records, 2);
    }
    check(s);
    free(r);
    tg_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burn_order), cmocka_unit_test(test_burn_per_day),
        cmocka_unit_test(test_expiry_and_poll), cmocka_unit_test(test_replay),
        cmocka_unit_test(test_random), cmocka_unit_test(test_many_customers_in_one_put),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
