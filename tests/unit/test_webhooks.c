/* Threshold webhooks: the signature, the event's id and body, the backoff
 * (src/bill/webhook.c), and the events in the store (src/store/webhooks.c)
 * on real SQLite files: created once across adds and handles, due events
 * oldest first, attempts that reschedule, deliver or give up, and the
 * admin listing's filters. Expected signatures and ids were computed
 * apart from tollgate:
 *   printf '%s' '1767225600.{"id":"evt_1","threshold":80}' |
 *       openssl dgst -sha256 -hmac 'whsec_test_secret'
 *   python3 -c "import hashlib;
 *       print(hashlib.sha256(b'shop\0acme\0002026-11\00080').hexdigest()[:24])" */
#include "base/hash.h"
#include "base/json.h"
#include "bill/webhook.h"
#include "store/store.h"
#include "store/webhooks.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CR TG_NCREDITS_PER_CREDIT
#define SEC 1000LL
#define DAY (86400 * SEC)

static char dir[64];
static int64_t t0; /* 2026-11-03T10:00:00Z */
static int nstore;

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/tg-test-webhooks-XXXXXX");
    assert_non_null(mkdtemp(dir));
    struct tm tm = {.tm_year = 126, .tm_mon = 10, .tm_mday = 3, .tm_hour = 10};
    t0 = (int64_t)timegm(&tm) * 1000;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- signing, ids, bodies, backoff ---- */

static void test_hmac(void **state)
{
    (void)state;
    char hex[TG_SHA256_HEX_LEN + 1];
    /* RFC 4231, test case 2 */
    tg_hmac_sha256_hex(TG_STR("Jefe"), TG_STR("what do ya want for nothing?"), hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    tg_hmac_sha256_hex(TG_STR("key"), TG_STR("data"), hex);
    assert_string_equal(hex, "5031fe3d989c6d1537a013fa6e739da23463fdaec3b70137d828e36ace221bd0");
}

static void test_signature(void **state)
{
    (void)state;
    char sig[TG_WEBHOOK_SIG_MAX];
    assert_int_equal(tg_webhook_sign(TG_STR("whsec_test_secret"), 1767225600,
                                     TG_STR("{\"id\":\"evt_1\",\"threshold\":80}"), sig),
                     TG_OK);
    assert_string_equal(sig, "t=1767225600,v1=0c80af5b478cac1553c2f385f62fdb806226937ef420a9dfd"
                             "f45617d7b23b2e7");
    /* another time signs another text */
    assert_int_equal(tg_webhook_sign(TG_STR("whsec_test_secret"), 1767225601,
                                     TG_STR("{\"id\":\"evt_1\",\"threshold\":80}"), sig),
                     TG_OK);
    assert_null(strstr(sig, "0c80af5b"));
}

static tg_webhook_event event(const char *app, const char *cust, const char *period, uint32_t thr)
{
    tg_webhook_event e = {.threshold = thr, .included = 500 * CR, .used = 400 * CR + CR / 2,
                          .at_ms = t0};
    snprintf(e.app, sizeof e.app, "%s", app);
    snprintf(e.customer, sizeof e.customer, "%s", cust);
    snprintf(e.plan, sizeof e.plan, "pro");
    snprintf(e.period, sizeof e.period, "%s", period);
    return e;
}

static void test_event_id_and_body(void **state)
{
    (void)state;
    tg_webhook_event e = event("shop", "acme", "2026-11", 80);
    char id[TG_WEBHOOK_ID_LEN + 1], again[TG_WEBHOOK_ID_LEN + 1];
    tg_webhook_event_id(&e, id);
    assert_string_equal(id, "evt_b754c4cad2d89e2f89949b11");
    e.used = 1; /* the id is the event's key only */
    e.at_ms = 0;
    tg_webhook_event_id(&e, again);
    assert_string_equal(again, id);
    e.threshold = 100;
    tg_webhook_event_id(&e, again);
    assert_string_equal(again, "evt_8605c4e834a624fd2db472a2");

    e = event("shop", "acme", "2026-11", 80);
    tg_buf b;
    tg_buf_init(&b, 4096);
    assert_int_equal(tg_webhook_payload(&e, id, t0 + 1500, &b), TG_OK);
    assert_string_equal(b.p, "{\"id\":\"evt_b754c4cad2d89e2f89949b11\","
                             "\"type\":\"credits.threshold\","
                             "\"created\":\"2026-11-03T10:00:01Z\",\"app\":\"shop\",\"customer\":"
                             "\"acme\",\"plan\":\"pro\",\"period\":\"2026-11\",\"threshold\":80,"
                             "\"included_credits\":\"500.000000000\",\"used_credits\":"
                             "\"400.500000000\",\"at\":\"2026-11-03T10:00:00Z\"}");
    assert_int_equal(tg_json_validate(b.p, b.n, TG_JSON_NO_DUP_TOPLEVEL, NULL, NULL), TG_OK);
    tg_buf_release(&b);
}

static void test_backoff(void **state)
{
    (void)state;
    /* 1 s after the first failure, doubling, 5 minutes at most */
    static const int64_t waits[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300};
    for (uint32_t n = 1; n <= 11; n++)
        assert_int_equal(tg_webhook_retry_at(t0, n, t0 + 10 * SEC),
                         t0 + 10 * SEC + waits[n - 1] * SEC);
    assert_int_equal(tg_webhook_retry_at(t0, 4000000000u, t0), t0 + 300 * SEC);
    /* 24 hours after the event was made, not a millisecond more */
    assert_int_equal(tg_webhook_retry_at(t0, 1, t0 + DAY - SEC), t0 + DAY);
    assert_int_equal(tg_webhook_retry_at(t0, 1, t0 + DAY - SEC + 1), 0);
    /* an event whose every attempt fails at once is tried 296 times:
       10 attempts in the first 511 s, then one every 5 minutes */
    int64_t now = t0, next;
    uint32_t n = 0;
    while ((next = tg_webhook_retry_at(t0, ++n, now))) now = next;
    assert_int_equal(n, 296);
    assert_int_equal(now - t0, (511 + 286 * 300) * SEC); /* the last attempt */
}

/* ---- the store ---- */

static tg_store *fresh(char *path, size_t n)
{
    snprintf(path, n, "%s/h%d.db", dir, nstore++);
    tg_store *s;
    tg_errmsg err;
    assert_int_equal(tg_store_open(path, TG_STORE_RW, &s, &err), TG_OK);
    return s;
}

/* Adds the event of (app, cust, period, thr) made at created; whether it was new. */
static bool add(tg_store *s, const char *app, const char *cust, const char *period, uint32_t thr,
                int64_t created)
{
    tg_webhook_event e = event(app, cust, period, thr);
    char id[TG_WEBHOOK_ID_LEN + 1];
    tg_webhook_event_id(&e, id);
    tg_buf b;
    tg_buf_init(&b, 4096);
    assert_int_equal(tg_webhook_payload(&e, id, created, &b), TG_OK);
    tg_store_webhook row = {.id = id, .app = app, .customer = cust, .period = period,
                            .threshold = thr, .payload = tg_buf_str(&b), .created_ms = created};
    bool added;
    tg_errmsg err;
    assert_int_equal(tg_store_webhook_add(s, &row, &added, &err), TG_OK);
    tg_buf_release(&b);
    return added;
}

typedef struct {
    char id[TG_WEBHOOK_ID_LEN + 1], customer[16], app[16], error[64], payload[1024];
    uint32_t threshold, attempts;
    tg_webhook_status status;
    int64_t created, next, delivered;
} row;

typedef struct {
    row v[32];
    size_t n;
} rows;

static int keep(void *ud, const tg_store_webhook *e)
{
    rows *r = ud;
    assert_true(r->n < 32);
    row *o = &r->v[r->n++];
    snprintf(o->id, sizeof o->id, "%s", e->id);
    snprintf(o->customer, sizeof o->customer, "%s", e->customer);
    snprintf(o->app, sizeof o->app, "%s", e->app);
    snprintf(o->error, sizeof o->error, "%s", e->last_error);
    snprintf(o->payload, sizeof o->payload, "%.*s", TG_STR_FMT(e->payload));
    o->threshold = e->threshold;
    o->attempts = e->attempts;
    o->status = e->status;
    o->created = e->created_ms;
    o->next = e->next_ms;
    o->delivered = e->delivered_ms;
    return 0;
}

static rows due(tg_store *s, int64_t now, size_t limit)
{
    rows r = {.n = 0};
    tg_errmsg err;
    assert_int_equal(tg_store_webhooks_due(s, now, limit, keep, &r, &err), TG_OK);
    return r;
}

static rows list(tg_store *s, const char *app, const char *cust, int status, size_t limit)
{
    rows r = {.n = 0};
    tg_errmsg err;
    tg_webhook_filter f = {.app = app, .customer = cust, .status = status};
    assert_int_equal(tg_store_webhooks_list(s, &f, limit, keep, &r, &err), TG_OK);
    return r;
}

static int64_t next_of(tg_store *s)
{
    int64_t next;
    tg_errmsg err;
    assert_int_equal(tg_store_webhook_next(s, &next, &err), TG_OK);
    return next;
}

static int try_(tg_store *s, const char *id, int64_t at, tg_webhook_status st, int64_t next,
                const char *error)
{
    tg_store_webhook_try t = {.at_ms = at, .status = st, .next_ms = next, .error = error};
    tg_errmsg err;
    return tg_store_webhook_attempt(s, tg_str_c(id), &t, &err);
}

static void test_created_once(void **state)
{
    (void)state;
    char path[128];
    tg_store *s = fresh(path, sizeof path);
    assert_true(add(s, "shop", "acme", "2026-11", 80, t0));
    /* again, later (a restart): the first stays as it was */
    assert_false(add(s, "shop", "acme", "2026-11", 80, t0 + 5 * SEC));
    /* from another handle, as another process would */
    tg_store *s2;
    tg_errmsg err;
    assert_int_equal(tg_store_open(path, TG_STORE_RW, &s2, &err), TG_OK);
    assert_false(add(s2, "shop", "acme", "2026-11", 80, t0 + 9 * SEC));
    /* another threshold, period, customer or app is another event */
    assert_true(add(s2, "shop", "acme", "2026-11", 100, t0));
    assert_true(add(s2, "shop", "acme", "2026-12", 80, t0));
    assert_true(add(s2, "shop", "beta", "2026-11", 80, t0));
    assert_true(add(s2, "mall", "acme", "2026-11", 80, t0));
    tg_store_close(s2);
    rows r = list(s, NULL, NULL, -1, 100);
    assert_int_equal(r.n, 5);
    const row *first = &r.v[4]; /* newest first */
    assert_string_equal(first->id, "evt_b754c4cad2d89e2f89949b11");
    assert_int_equal(first->created, t0);
    assert_int_equal(first->next, t0);
    assert_int_equal(first->status, TG_WEBHOOK_PENDING);
    assert_int_equal(first->attempts, 0);
    assert_int_equal(first->delivered, 0);
    assert_string_equal(first->error, "");
    assert_non_null(strstr(first->payload, "\"created\":\"2026-11-03T10:00:00Z\""));
    tg_store_close(s);
}

static void test_due_and_attempts(void **state)
{
    (void)state;
    char path[128];
    tg_store *s = fresh(path, sizeof path);
    assert_int_equal(next_of(s), 0);
    assert_true(add(s, "shop", "c1", "2026-11", 80, t0));
    assert_true(add(s, "shop", "c2", "2026-11", 80, t0 + 1 * SEC));
    assert_true(add(s, "shop", "c3", "2026-11", 80, t0 + 2 * SEC));
    assert_int_equal(next_of(s), t0);
    /* due: next attempt at or before now, oldest first, at most limit */
    rows r = due(s, t0 + 1 * SEC, 10);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.v[0].customer, "c1");
    assert_string_equal(r.v[1].customer, "c2");
    r = due(s, t0 + 5 * SEC, 1);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.v[0].customer, "c1");
    char c1[TG_WEBHOOK_ID_LEN + 1], c2[TG_WEBHOOK_ID_LEN + 1], c3[TG_WEBHOOK_ID_LEN + 1];
    r = due(s, t0 + 5 * SEC, 10);
    assert_int_equal(r.n, 3);
    strcpy(c1, r.v[0].id);
    strcpy(c2, r.v[1].id);
    strcpy(c3, r.v[2].id);

    /* c1 fails (HTTP 500): again 1 s later, by the backoff */
    int64_t at = t0 + 5 * SEC, again = tg_webhook_retry_at(t0, 1, at);
    assert_int_equal(again, at + 1 * SEC);
    assert_int_equal(try_(s, c1, at, TG_WEBHOOK_PENDING, again, "HTTP 500"), TG_OK);
    r = due(s, at, 10);
    assert_int_equal(r.n, 2); /* c1 waits */
    assert_string_equal(r.v[0].customer, "c2");
    assert_int_equal(next_of(s), t0 + 1 * SEC); /* c2's */
    r = due(s, again, 10);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.v[0].customer, "c1"); /* still the oldest */
    assert_int_equal(r.v[0].attempts, 1);
    assert_string_equal(r.v[0].error, "HTTP 500");
    assert_int_equal(r.v[0].next, again);
    /* then delivered: no longer due, the last error kept, the time noted */
    assert_int_equal(try_(s, c1, again + 40, TG_WEBHOOK_DELIVERED, 0, ""), TG_OK);
    r = list(s, NULL, "c1", -1, 10);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.v[0].status, TG_WEBHOOK_DELIVERED);
    assert_int_equal(r.v[0].attempts, 2);
    assert_int_equal(r.v[0].delivered, again + 40);
    assert_string_equal(r.v[0].error, "HTTP 500");
    /* an event that is not pending takes no attempt */
    assert_int_equal(try_(s, c1, again + 50, TG_WEBHOOK_PENDING, again + 99, "x"), TG_ENOTFOUND);
    assert_int_equal(try_(s, "evt_none", at, TG_WEBHOOK_DELIVERED, 0, ""), TG_ENOTFOUND);

    /* c2 is given up after 24 hours of failures: the backoff decides,
       the store keeps what each attempt left */
    uint32_t n = 0;
    int64_t now = t0 + 1 * SEC, next;
    do {
        next = tg_webhook_retry_at(t0 + 1 * SEC, ++n, now);
        char why[32];
        snprintf(why, sizeof why, "attempt %u failed", n);
        assert_int_equal(try_(s, c2, now, next ? TG_WEBHOOK_PENDING : TG_WEBHOOK_FAILED, next, why),
                         TG_OK);
        now = next;
    } while (next);
    r = list(s, NULL, "c2", -1, 10);
    assert_int_equal(r.v[0].status, TG_WEBHOOK_FAILED);
    assert_int_equal(r.v[0].attempts, 296);
    assert_string_equal(r.v[0].error, "attempt 296 failed");
    assert_int_equal(r.v[0].delivered, 0);
    r = due(s, t0 + 2 * DAY, 10);
    assert_int_equal(r.n, 1); /* c3 only */
    assert_string_equal(r.v[0].id, c3);
    assert_int_equal(next_of(s), t0 + 2 * SEC);
    assert_int_equal(try_(s, c3, now, TG_WEBHOOK_DELIVERED, 0, ""), TG_OK);
    assert_int_equal(next_of(s), 0);
    assert_int_equal(due(s, t0 + 2 * DAY, 10).n, 0);
    tg_store_close(s);
}

static void test_listing(void **state)
{
    (void)state;
    char path[128];
    tg_store *s = fresh(path, sizeof path);
    static const char *const custs[] = {"acme", "beta", "acme", "gamma", "acme"};
    static const char *const apps[] = {"shop", "shop", "mall", "shop", "shop"};
    for (int i = 0; i < 5; i++)
        assert_true(add(s, apps[i], custs[i], "2026-11", i == 4 ? 100 : 80, t0 + i * SEC));
    rows all = list(s, NULL, NULL, -1, 100);
    assert_int_equal(all.n, 5);
    for (int i = 0; i < 5; i++) /* newest first */
        assert_int_equal(all.v[i].created, t0 + (4 - i) * SEC);
    assert_int_equal(try_(s, all.v[0].id, t0, TG_WEBHOOK_DELIVERED, 0, ""), TG_OK); /* acme, shop */
    assert_int_equal(try_(s, all.v[1].id, t0, TG_WEBHOOK_FAILED, 0, "HTTP 410"), TG_OK); /* gamma */

    rows r = list(s, NULL, "acme", -1, 100);
    assert_int_equal(r.n, 3);
    r = list(s, "shop", "acme", -1, 100);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.v[0].created, t0 + 4 * SEC);
    r = list(s, "mall", "", -1, 100);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.v[0].app, "mall");
    r = list(s, NULL, NULL, TG_WEBHOOK_PENDING, 100);
    assert_int_equal(r.n, 3);
    r = list(s, NULL, NULL, TG_WEBHOOK_DELIVERED, 100);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.v[0].customer, "acme");
    r = list(s, NULL, NULL, TG_WEBHOOK_FAILED, 100);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.v[0].error, "HTTP 410");
    r = list(s, "shop", "acme", TG_WEBHOOK_PENDING, 100);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.v[0].created, t0);
    r = list(s, NULL, NULL, -1, 2);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.v[1].created, t0 + 3 * SEC);
    assert_int_equal(list(s, "nope", NULL, -1, 100).n, 0);
    tg_store_close(s);
}

static void test_status_names(void **state)
{
    (void)state;
    tg_webhook_status st;
    for (int i = 0; i < 3; i++) {
        const char *name = tg_webhook_status_name((tg_webhook_status)i);
        assert_int_equal(tg_webhook_status_parse(tg_str_c(name), &st), TG_OK);
        assert_int_equal(st, i);
    }
    assert_string_equal(tg_webhook_status_name(TG_WEBHOOK_FAILED), "failed");
    assert_int_equal(tg_webhook_status_parse(TG_STR("Pending"), &st), TG_EINVAL);
    assert_int_equal(tg_webhook_status_parse(TG_STR(""), &st), TG_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac),          cmocka_unit_test(test_signature),
        cmocka_unit_test(test_event_id_and_body), cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_created_once),  cmocka_unit_test(test_due_and_attempts),
        cmocka_unit_test(test_listing),       cmocka_unit_test(test_status_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
