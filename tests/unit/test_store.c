/* The store, the ledger thread and reports, on real SQLite files in a
 * temporary directory: migrations (and migration 5 on a store a binary of
 * schema 4 wrote), idempotent puts, rollups equal to sums over the usage
 * table (checked with SQL, every measure, before and after folding),
 * attempt records that count no request, reports by every grouping with
 * their filters, period forms, errors and formats, savings by route, and
 * the ledger delivering each record exactly once from several threads.
 * The usage table holds encoded records, so the SQL checks read it
 * through a temporary table of decoded columns (sql_open). */
#include "base/json.h"
#include "base/rng.h"
#include "meter/journal.h"
#include "report/records.h"
#include "report/report.h"
#include "store/ledger.h"
#include "store/migrations.h"
#include "store/plans.h"
#include "store/records.h"
#include "store/store.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MS_HOUR 3600000LL
#define MS_DAY 86400000LL

static char dir[64];
static char path[128];
static int64_t nov1; /* 2026-11-01T00:00Z */

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/tg-test-store-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/sub/dir/" TG_STORE_FILE, dir);
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

/* ---- records ---- */

static const char *const apps[] = {"acme", "globex", "initech"};
static const char *const features[] = {"summarize", "chat", "search", "", "odd,\"feature\""};
static const char *const models[] = {"fast", "premium", "embed"};

/* A random record at time t with id sequence i: ids are time-ordered. */
static void make_rec(tg_rng *g, uint64_t i, int64_t t, tg_usage_rec *r)
{
    memset(r, 0, sizeof *r);
    for (int b = 0; b < 6; b++) r->id[b] = (uint8_t)((uint64_t)t >> (40 - 8 * b));
    for (int b = 0; b < 8; b++) r->id[8 + b] = (uint8_t)(i >> (56 - 8 * b));
    unsigned c = (unsigned)tg_rng_below(g, 12);
    snprintf(r->rid, sizeof r->rid, "r%llu", (unsigned long long)i);
    snprintf(r->tags.app, sizeof r->tags.app, "%s", apps[c % 3]);
    snprintf(r->tags.customer, sizeof r->tags.customer, "cus%u", c);
    snprintf(r->tags.plan, sizeof r->tags.plan, "plan%u", c % 2);
    snprintf(r->tags.workspace, sizeof r->tags.workspace, "ws%u", (unsigned)tg_rng_below(g, 2));
    snprintf(r->tags.user, sizeof r->tags.user, "u%u", (unsigned)tg_rng_below(g, 4));
    snprintf(r->tags.feature, sizeof r->tags.feature, "%s", features[tg_rng_below(g, 5)]);
    snprintf(r->tags.workflow, sizeof r->tags.workflow, "wf%u", (unsigned)tg_rng_below(g, 2));
    unsigned m = (unsigned)tg_rng_below(g, 3);
    snprintf(r->model, sizeof r->model, "%s", models[m]);
    snprintf(r->offering, sizeof r->offering, "off-%s", models[m]);
    snprintf(r->provider, sizeof r->provider, "prov%u", m % 2);
    r->route = (uint8_t)tg_rng_below(g, TG_RT_COUNT_);
    r->outcome = (uint8_t)tg_rng_below(g, TG_OUT_COUNT_);
    r->endpoint = (uint8_t)tg_rng_below(g, TG_EPK_COUNT_);
    r->estimated = tg_rng_below(g, 10) == 0;
    r->stream = tg_rng_below(g, 2);
    r->status = 200;
    r->t_start_ms = t;
    r->latency_us = 1000;
    r->tokens.prompt = (int64_t)tg_rng_below(g, 5000);
    r->tokens.cached = (int64_t)tg_rng_below(g, (uint64_t)r->tokens.prompt / 2 + 1);
    r->tokens.cache_write = (int64_t)tg_rng_below(g, (uint64_t)r->tokens.prompt / 4 + 1);
    r->tokens.completion = (int64_t)tg_rng_below(g, 2000);
    r->tokens.reasoning = (int64_t)tg_rng_below(g, (uint64_t)r->tokens.completion + 1);
    r->cost = (int64_t)tg_rng_below(g, 10000000);
    r->fee = (int64_t)tg_rng_below(g, 100000);
    r->margin = (int64_t)tg_rng_below(g, 3000000) - 500000; /* sometimes negative */
    r->charge = r->cost + r->margin + r->fee;
    /* routing: one record in eight bills an earlier attempt of a request
     * (its position, no asked cost); a request made 0 to 3 upstream calls
     * and its tokens would have cost up to twice as much, or as little as
     * nothing, at the model asked */
    r->attempt = tg_rng_below(g, 8) == 0;
    r->attempts = (int32_t)tg_rng_below(g, 4) + r->attempt;
    r->asked_cost = r->attempt ? 0 : (int64_t)tg_rng_below(g, 2 * (uint64_t)r->cost + 1);
}

/* n records over `days` days from t0, in time order. */
static tg_usage_rec *make_recs(uint64_t seed, size_t n, int64_t t0, int days)
{
    tg_usage_rec *v = malloc(n * sizeof *v);
    assert_non_null(v);
    tg_rng g = {seed};
    for (size_t i = 0; i < n; i++)
        make_rec(&g, seed * 1000000 + i, t0 + (int64_t)((__int128)i * days * MS_DAY / (int64_t)n), &v[i]);
    return v;
}

static tg_store *open_rw(void)
{
    tg_store *s = NULL;
    tg_errmsg err = {{0}};
    int rc = tg_store_open(path, TG_STORE_RW, &s, &err);
    if (rc) fail_msg("open: %s", err.msg);
    return s;
}

static void put_all(tg_store *s, const tg_usage_rec *v, size_t n, size_t batch)
{
    for (size_t i = 0; i < n; i += batch) {
        size_t k = n - i < batch ? n - i : batch;
        tg_errmsg err = {{0}};
        if (tg_store_put(s, v + i, k, &err)) fail_msg("put: %s", err.msg);
    }
}

/* As a journal replay does: each batch without the records the store has,
 * then put. *kept is how many were put. */
static void replay_all(tg_store *s, const tg_usage_rec *v, size_t n, size_t batch, size_t *kept)
{
    tg_usage_rec *b = malloc(batch * sizeof *b);
    assert_non_null(b);
    *kept = 0;
    for (size_t i = 0; i < n; i += batch) {
        size_t k = n - i < batch ? n - i : batch;
        tg_errmsg err = {{0}};
        memcpy(b, v + i, k * sizeof *b);
        if (tg_store_drop_known(s, b, &k, &err)) fail_msg("drop_known: %s", err.msg);
        if (k && tg_store_put(s, b, k, &err)) fail_msg("put: %s", err.msg);
        *kept += k;
    }
    free(b);
}

/* ---- SQL over the file, independent of the store's code ---- */

static int64_t sql_int(sqlite3 *db, const char *sql);

/* One decoded record as a row of the TEMP usage table (wr). */
static void insert_decoded(sqlite3_stmt *wr, const tg_usage_rec *r)
{
    int i = 1;
    sqlite3_bind_blob(wr, i++, r->id, TG_RECORD_ID_LEN, SQLITE_TRANSIENT);
    const char *t[] = {r->rid,            r->tags.app,     r->tags.customer, r->tags.user,
                       r->tags.workspace, r->tags.feature, r->tags.workflow, r->model,
                       r->offering,       r->provider};
    for (size_t k = 0; k < sizeof t / sizeof *t; k++)
        sqlite3_bind_text(wr, i++, t[k], -1, SQLITE_TRANSIENT);
    const int64_t v[] = {r->route,              r->outcome,         r->estimated,
                         r->t_start_ms,         r->tokens.prompt,   r->tokens.cached,
                         r->tokens.cache_write, r->tokens.completion, r->tokens.reasoning,
                         r->cost,               r->charge,          r->margin,
                         r->fee,                r->attempt,         r->attempts,
                         r->asked_cost};
    for (size_t k = 0; k < sizeof v / sizeof *v; k++) sqlite3_bind_int64(wr, i++, v[k]);
    assert_int_equal(sqlite3_step(wr), SQLITE_DONE);
    sqlite3_reset(wr);
}

/* Opens p read-only with a TEMP table named usage, which hides the file's
 * own, holding each stored record decoded into typed columns. */
static sqlite3 *sql_open_at(const char *p)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db,
                          "CREATE TEMP TABLE usage (id BLOB, rid TEXT, app TEXT, customer TEXT,"
                          " user_id TEXT, workspace TEXT, feature TEXT, workflow TEXT, model TEXT,"
                          " offering TEXT, provider TEXT, route INT, outcome INT, estimated INT,"
                          " t_start_ms INT, prompt INT, cached INT, cache_write INT,"
                          " completion INT, reasoning INT, cost INT, charge INT, margin INT,"
                          " fee INT, attempt INT, attempts INT, asked_cost INT)",
                          NULL, NULL, &msg);
    if (rc) fail_msg("temp table: %s", msg);
    sqlite3_stmt *rd, *wr;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT n, recs FROM main.usage", -1, &rd, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO temp.usage VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,"
                                        "?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                        -1, &wr, NULL),
                     SQLITE_OK);
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    while (sqlite3_step(rd) == SQLITE_ROW) {
        /* a chunk: n records, each a 4-byte little-endian length and the encoding */
        const uint8_t *blob = sqlite3_column_blob(rd, 1);
        size_t len = (size_t)sqlite3_column_bytes(rd, 1), at = 0;
        int64_t nrec = 0;
        while (at < len) {
            assert_true(len - at >= 4);
            size_t rl = blob[at] | (size_t)blob[at + 1] << 8 | (size_t)blob[at + 2] << 16 |
                        (size_t)blob[at + 3] << 24;
            assert_true(rl <= len - at - 4);
            tg_usage_rec r;
            bool intent = true;
            assert_int_equal(tg_record_decode(blob + at + 4, rl, &r, &intent), TG_OK);
            assert_false(intent);
            at += 4 + rl;
            nrec++;
            insert_decoded(wr, &r);
        }
        assert_int_equal(nrec, sqlite3_column_int64(rd, 0));
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_finalize(rd);
    sqlite3_finalize(wr);
    assert_int_equal(sql_int(db, "SELECT coalesce(sum(n), 0) FROM main.usage"),
                     sql_int(db, "SELECT count(*) FROM temp.usage"));
    return db;
}

static sqlite3 *sql_open(void) { return sql_open_at(path); }

static int64_t sql_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The measures as SQL over decoded records: an attempt record counts no
 * request, error, interruption nor attempt, and adds its tokens and money. */
#define SUMS                                                                                      \
    "sum(NOT attempt), sum(outcome = 2 AND NOT attempt), sum(outcome = 3 AND NOT attempt),"       \
    " sum(estimated), sum(prompt), sum(cached), sum(cache_write), sum(completion),"               \
    " sum(reasoning), sum(cost), sum(charge), sum(margin), sum(fee), sum(asked_cost),"            \
    " sum(CASE WHEN attempt THEN 0 ELSE attempts END)"
#define RSUMS                                                                                     \
    "sum(requests), sum(errors), sum(interrupted), sum(estimated), sum(prompt), sum(cached),"     \
    " sum(cache_write), sum(completion), sum(reasoning), sum(cost), sum(charge), sum(margin),"    \
    " sum(fee), sum(asked_cost), sum(attempts)"
#define DIMS "app, customer, workspace, feature, workflow, model, offering, provider, route"

/* Rows of a that are not in b plus rows of b not in a: 0 when equal. */
static int64_t sql_diff(sqlite3 *db, const char *a, const char *b)
{
    char sql[8192];
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM (%s EXCEPT %s)) + (SELECT count(*) FROM (%s EXCEPT %s))",
             a, b, b, a);
    return sql_int(db, sql);
}

static void check_rollups_equal_usage(void)
{
    sqlite3 *db = sql_open();
    const char *day = "t_start_ms - t_start_ms % 86400000";
    const char *month = "CAST(strftime('%s', t_start_ms / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000";
    const char *buckets[] = {day, month};
    const char *tables[] = {"rollup_day", "rollup_month"};
    char a[1024], b[1024];
    for (int i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "SELECT %s AS bk, " DIMS ", " SUMS " FROM usage GROUP BY bk, " DIMS,
                 buckets[i]);
        snprintf(b, sizeof b, "SELECT bucket, " DIMS ", " RSUMS " FROM %s GROUP BY bucket, " DIMS,
                 tables[i]);
        assert_int_equal(sql_diff(db, a, b), 0);
    }
    const char *ubuckets[] = {day, month};
    const char *utables[] = {"rollup_user_day", "rollup_user_month"};
    for (int i = 0; i < 2; i++) {
        snprintf(a, sizeof a,
                 "SELECT %s AS bk, app, customer, user_id, " SUMS
                 " FROM usage GROUP BY bk, app, customer, user_id",
                 ubuckets[i]);
        snprintf(b, sizeof b,
                 "SELECT bucket, app, customer, user_id, " RSUMS
                 " FROM %s GROUP BY bucket, app, customer, user_id",
                 utables[i]);
        assert_int_equal(sql_diff(db, a, b), 0);
    }
    /* a rollup row without requests holds attempt records only */
    snprintf(a, sizeof a,
             "SELECT count(*) FROM (SELECT 1 FROM usage GROUP BY %s, " DIMS
             " HAVING sum(NOT attempt) = 0)",
             day);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM rollup_day WHERE requests <= 0"),
                     sql_int(db, a));
    sqlite3_close(db);
}

/* ---- tests ---- */

static void test_migrations(void **state)
{
    (void)state;
    tg_errmsg err = {{0}};
    tg_store *s = NULL;
    char missing[160];
    snprintf(missing, sizeof missing, "%s/none.db", dir);
    assert_int_equal(tg_store_open(missing, TG_STORE_RO, &s, &err), TG_ENOTFOUND);
    assert_non_null(strstr(err.msg, "none.db"));

    s = open_rw(); /* creates sub/dir and applies everything */
    tg_store_close(s);
    int applied = -1, version = -1;
    assert_int_equal(tg_store_migrate(path, &applied, &version, &err), TG_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(version, tg_store_schema_version());
    sqlite3 *db = sql_open();
    assert_int_equal(sql_int(db, "SELECT max(version) FROM schema_version"), tg_store_schema_version());
    assert_int_equal(sql_int(db, "SELECT count(*) FROM schema_version"), tg_store_schema_version());
    sqlite3_close(db);

    assert_int_equal(tg_store_open(path, TG_STORE_RO, &s, &err), TG_OK);
    tg_usage_rec r;
    tg_rng g = {1};
    make_rec(&g, 1, nov1, &r);
    assert_int_not_equal(tg_store_put(s, &r, 1, &err), TG_OK);
    tg_store_close(s);

    /* a fresh file by the CLI path */
    char other[160];
    snprintf(other, sizeof other, "%s/m/" TG_STORE_FILE, dir);
    assert_int_equal(tg_store_migrate(other, &applied, &version, &err), TG_OK);
    assert_int_equal(applied, tg_store_schema_version());
    char *p = tg_store_path("/var/x");
    assert_string_equal(p, "/var/x/ledger.db");
    free(p);
}

/* Sums of the usage table and of every rollup, as one string. */
static void snapshot(char *out, size_t n)
{
    sqlite3 *db = sql_open();
    const char *q[] = {"SELECT count(*) FROM usage", "SELECT sum(charge) FROM usage",
                       "SELECT total(requests) + total(charge) FROM rollup_day",
                       "SELECT total(requests) + total(charge) FROM rollup_month",
                       "SELECT total(requests) + total(cost) FROM rollup_user_day",
                       "SELECT total(requests) + total(fee) FROM rollup_user_month",
                       "SELECT count(*) FROM customers"};
    size_t at = 0;
    for (size_t i = 0; i < sizeof q / sizeof *q; i++)
        at += (size_t)snprintf(out + at, n - at, "%lld;", (long long)sql_int(db, q[i]));
    sqlite3_close(db);
}

/* Encoded puts refuse bytes that are not framed as an outcome record,
 * whole batch and all; they do not check fields (the encoder did), so a
 * record framed right with a field decode refuses is stored, and a read
 * that meets it fails, as one of a usage row damaged behind the store's
 * back does. */
static void test_put_encoded_errors(void **state)
{
    (void)state;
    tg_store *s = open_rw();
    tg_usage_rec r[2];
    tg_rng g = {5};
    make_rec(&g, 1, nov1, &r[0]);
    make_rec(&g, 2, nov1 + 1, &r[1]);
    tg_buf a, b;
    tg_buf_init(&a, TG_RECORD_MAX_LEN + 1);
    tg_buf_init(&b, TG_RECORD_MAX_LEN + 1);
    tg_record_marks m[2];
    assert_int_equal(tg_record_encode(&r[0], false, &a, &m[0]), TG_OK);
    assert_int_equal(tg_record_encode(&r[1], true, &b, &m[1]), TG_OK); /* an intent */
    const uint8_t *rec[2] = {(const uint8_t *)a.p, (const uint8_t *)b.p};
    size_t len[2] = {a.n, b.n};
    tg_errmsg err = {{0}};
    assert_int_not_equal(tg_store_put_encoded(s, rec, len, m, 2, &err), TG_OK);
    assert_non_null(strstr(err.msg, "not a valid outcome"));
    rec[1] = (const uint8_t *)a.p;
    len[1] = a.n;
    m[1] = m[0];
    m[1].customer = (uint16_t)a.n; /* a mark past the bytes */
    assert_int_not_equal(tg_store_put_encoded(s, rec, len, m, 2, &err), TG_OK);
    assert_non_null(strstr(err.msg, "not a valid outcome"));
    sqlite3 *db = sql_open();
    assert_int_equal(sql_int(db, "SELECT count(*) FROM main.usage"), 0);
    sqlite3_close(db);
    assert_int_equal(tg_store_put_encoded(s, rec, len, m, 1, &err), TG_OK);
    db = sql_open();
    assert_int_equal(sql_int(db, "SELECT count(*) FROM temp.usage"), 1);
    sqlite3_close(db);
    tg_store_close(s);
    tg_buf out;
    tg_buf_init(&out, 1 << 20);
    tg_report_query q;
    assert_int_equal(tg_report_query_parse(&q, "2026-11", "customer", NULL, NULL, 0, &err), 0);

    /* bytes that are not encode's but fit their marks (a route out of
     * range; a record cut short): stored; the report that reads them fails */
    for (int cut = 0; cut < 2; cut++) {
        s = open_rw();
        tg_buf_clear(&b);
        assert_int_equal(tg_record_encode(&r[1], false, &b, &m[0]), TG_OK);
        if (!cut) b.p[2 + TG_RECORD_ID_LEN + 1] = TG_RT_COUNT_;
        rec[0] = (const uint8_t *)b.p;
        len[0] = b.n - (size_t)cut;
        assert_int_equal(tg_store_put_encoded(s, rec, len, m, 1, &err), TG_OK);
        assert_int_equal(tg_report_run(s, &q, TG_REPORT_TABLE, &out, &err), TG_EIO);
        assert_non_null(strstr(err.msg, "does not hold a valid record"));
        tg_store_close(s);
        sqlite3 *d; /* the bad chunk goes, for the next case */
        assert_int_equal(sqlite3_open(path, &d), SQLITE_OK);
        assert_int_equal(sqlite3_exec(d, "DELETE FROM usage WHERE seq = (SELECT max(seq) FROM usage)",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(d);
    }

    /* damage the stored chunk behind the store's back: a length past its end */
    sqlite3 *w;
    assert_int_equal(sqlite3_open(path, &w), SQLITE_OK);
    assert_int_equal(sqlite3_exec(w, "UPDATE usage SET recs = x'ff000000aa'", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(w);
    assert_int_equal(tg_store_open(path, TG_STORE_RO, &s, &err), TG_OK);
    tg_buf_clear(&out);
    assert_int_equal(tg_report_run(s, &q, TG_REPORT_TABLE, &out, &err), TG_EIO);
    assert_non_null(strstr(err.msg, "does not hold a valid record"));
    tg_buf_release(&out);
    tg_buf_release(&a);
    tg_buf_release(&b);
    tg_store_close(s);
}

/* A replay (as after a crash: the same records again, cut into other
 * batches, some new among them) puts only what the store lacks, before and
 * after the days are folded. */
static void test_replay_idempotent(void **state)
{
    (void)state;
    tg_store *s = open_rw();
    tg_usage_rec *v = make_recs(7, 3000, nov1, 3);
    size_t kept;
    put_all(s, v, 2000, 500);
    char a[512], b[512];
    snapshot(a, sizeof a);
    replay_all(s, v, 2000, 500, &kept); /* the same batches again */
    assert_int_equal(kept, 0);
    replay_all(s, v + 100, 1000, 333, &kept); /* and cut differently */
    assert_int_equal(kept, 0);
    snapshot(b, sizeof b);
    assert_string_equal(a, b);
    replay_all(s, v + 1500, 1500, 256, &kept); /* the last 1000 are new */
    assert_int_equal(kept, 1000);
    tg_errmsg err = {{0}};
    assert_int_equal(tg_store_fold(s, INT64_MAX, &err), TG_OK);
    check_rollups_equal_usage();
    snapshot(a, sizeof a);
    replay_all(s, v, 3000, 3000, &kept); /* replay after everything is folded */
    assert_int_equal(kept, 0);
    snapshot(b, sizeof b);
    assert_string_equal(a, b);
    check_rollups_equal_usage();
    sqlite3 *db = sql_open();
    assert_int_equal(sql_int(db, "SELECT count(DISTINCT id) FROM temp.usage"), 3000);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM temp.usage"), 3000);
    sqlite3_close(db);
    tg_store_close(s);
    free(v);
}

/* 50k records over 5 days, put in time order, then records that arrive
 * late (days already folded), then the rest folded: the rollups equal SQL
 * sums over usage for every measure, and reports agree before and after
 * folding. */
static tg_buf run_report(tg_store *s, const char *period, const char *by, const char *app,
                         const char *cust, tg_report_format f)
{
    tg_report_query q;
    tg_errmsg err = {{0}};
    int rc = tg_report_query_parse(&q, period, by, app, cust, 0, &err);
    if (rc) fail_msg("query: %s", err.msg);
    tg_buf out;
    tg_buf_init(&out, 1 << 26);
    rc = tg_report_run(s, &q, f, &out, &err);
    if (rc) fail_msg("report: %s", err.msg);
    return out;
}

static void test_rollups_match_usage(void **state)
{
    (void)state;
    tg_store *s = open_rw();
    size_t n = 50000;
    tg_usage_rec *v = make_recs(11, n, nov1 - 2 * MS_DAY, 5); /* Oct 30 .. Nov 3 */
    put_all(s, v, n - 5000, 4096);
    /* late: new records with ids in the first, folded, days */
    tg_usage_rec *late = make_recs(12, 2000, nov1 - 2 * MS_DAY + 5 * MS_HOUR, 1);
    put_all(s, late, 2000, 700);
    put_all(s, v + n - 5000, 5000, 4096);
    tg_buf before = run_report(s, "2026-11", "feature", NULL, NULL, TG_REPORT_CSV);
    tg_buf before_u = run_report(s, "2026-10-30..2026-11-03", "user", NULL, NULL, TG_REPORT_JSON);
    tg_errmsg err = {{0}};
    assert_int_equal(tg_store_fold(s, INT64_MAX, &err), TG_OK);
    check_rollups_equal_usage();
    tg_buf after = run_report(s, "2026-11", "feature", NULL, NULL, TG_REPORT_CSV);
    tg_buf after_u = run_report(s, "2026-10-30..2026-11-03", "user", NULL, NULL, TG_REPORT_JSON);
    assert_int_equal(before.n, after.n);
    assert_memory_equal(before.p, after.p, before.n);
    assert_int_equal(before_u.n, after_u.n);
    assert_memory_equal(before_u.p, after_u.p, before_u.n);
    tg_buf_release(&before);
    tg_buf_release(&after);
    tg_buf_release(&before_u);
    tg_buf_release(&after_u);
    tg_store_close(s);
    free(v);
    free(late);
}

/* ---- reports ---- */

/* A report's rows against SQL over usage: requests, money, prompt
 * tokens, asked cost and attempts per key; the total (every measure, and
 * savings) is the sum of the rows. */
static void check_report_vs_sql(tg_store *s, const char *period, int64_t from, int64_t to,
                                tg_report_by by, const char *app, const char *cust)
{
    static const char *const keycols[TG_BY_COUNT_] = {
        "app || '|' || customer", "app || '|' || customer || '|' || workspace",
        "app || '|' || customer || '|' || user_id", "app || '|' || feature",
        "app || '|' || workflow", "model", "offering", "provider",
        "CASE route WHEN 0 THEN 'primary' WHEN 1 THEN 'fallback' WHEN 2 THEN 'cache'"
        " WHEN 3 THEN 'batch' WHEN 4 THEN 'degraded' ELSE 'escalated' END",
        "app", "strftime('%Y-%m-%d', t_start_ms / 1000, 'unixepoch')"};
    tg_report_query q;
    tg_errmsg err = {{0}};
    assert_int_equal(tg_report_query_parse(&q, period, tg_report_by_name(by), app, cust, 0, &err), 0);
    tg_report *r;
    if (tg_report_exec(s, &q, &r, &err)) fail_msg("%s", err.msg);
    /* the total is the sum of the rows, exactly */
    tg_measures sum = {0};
    tg_nanos savings = 0;
    for (size_t i = 0; i < r->nrows; i++) {
        const tg_measures *m = &r->rows[i].m;
        assert_int_equal(tg_measures_add(&sum, m), 0);
        assert_true(m->charge == m->cost + m->margin + m->fee);
        assert_true(tg_report_savings(m) == m->asked_cost - m->cost);
        savings += tg_report_savings(m);
        if (i && by != TG_BY_DAY) assert_true(r->rows[i - 1].m.charge >= m->charge);
    }
    assert_memory_equal(&sum, &r->total, sizeof sum);
    assert_true(savings == tg_report_savings(&r->total));
    sqlite3 *db = sql_open();
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT %s AS k, sum(NOT attempt), sum(charge), sum(cost), sum(prompt),"
             " sum(asked_cost), sum(CASE WHEN attempt THEN 0 ELSE attempts END) FROM usage WHERE"
             " t_start_ms >= %lld AND t_start_ms < %lld AND (?1 = '' OR app = ?1) AND"
             " (?2 = '' OR customer = ?2) GROUP BY k",
             keycols[by], (long long)from, (long long)to);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, app ? app : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, cust ? cust : "", -1, SQLITE_STATIC);
    size_t groups = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        bool found = false;
        for (size_t i = 0; i < r->nrows && !found; i++) {
            char key[512] = "";
            for (int j = 0; j < TG_REPORT_KEYS && r->rows[i].key[j]; j++)
                snprintf(key + strlen(key), sizeof key - strlen(key), "%s%s", j ? "|" : "",
                         r->rows[i].key[j]);
            if (strcmp(key, k)) continue;
            found = true;
            assert_int_equal(r->rows[i].m.requests, sqlite3_column_int64(st, 1));
            assert_int_equal(r->rows[i].m.charge, sqlite3_column_int64(st, 2));
            assert_int_equal(r->rows[i].m.cost, sqlite3_column_int64(st, 3));
            assert_int_equal(r->rows[i].m.tokens.prompt, sqlite3_column_int64(st, 4));
            assert_int_equal(r->rows[i].m.asked_cost, sqlite3_column_int64(st, 5));
            assert_int_equal(r->rows[i].m.attempts, sqlite3_column_int64(st, 6));
        }
        if (!found) fail_msg("by %s: no row for %s", tg_report_by_name(by), k);
        groups++;
    }
    assert_int_equal(groups, r->nrows);
    sqlite3_finalize(st);
    sqlite3_close(db);
    tg_report_free(r);
}

static void test_reports(void **state)
{
    (void)state;
    tg_store *s = open_rw();
    tg_usage_rec *v = make_recs(21, 6000, nov1 - MS_DAY, 4); /* Oct 31 .. Nov 3 */
    put_all(s, v, 6000, 1000);
    tg_store_close(s);
    tg_errmsg err = {{0}};
    assert_int_equal(tg_store_open(path, TG_STORE_RO, &s, &err), TG_OK);
    int64_t nov = nov1, dec = nov1 + 30 * MS_DAY;
    for (int by = 0; by < TG_BY_COUNT_; by++) {
        check_report_vs_sql(s, "2026-11", nov, dec, (tg_report_by)by, NULL, NULL);
        check_report_vs_sql(s, "2026-10-31..2026-11-02", nov - MS_DAY, nov + 2 * MS_DAY,
                            (tg_report_by)by, NULL, NULL);
        check_report_vs_sql(s, "2026-11-02", nov + MS_DAY, nov + 2 * MS_DAY, (tg_report_by)by,
                            "acme", NULL);
        check_report_vs_sql(s, "2026-11", nov, dec, (tg_report_by)by, "globex", "cus1");
    }
    check_report_vs_sql(s, "2026-10", nov - 31 * MS_DAY, nov, TG_BY_CUSTOMER, NULL, "cus3");
    tg_store_close(s);
    free(v);
}

static void test_report_queries(void **state)
{
    (void)state;
    tg_report_query q;
    tg_errmsg err = {{0}};
    assert_int_equal(tg_report_query_parse(&q, "2026-02", "day", NULL, NULL, 0, &err), 0);
    assert_int_equal(q.to_ms - q.from_ms, 28 * MS_DAY);
    assert_int_equal(tg_report_query_parse(&q, "2028-02", "day", NULL, NULL, 0, &err), 0);
    assert_int_equal(q.to_ms - q.from_ms, 29 * MS_DAY);
    assert_int_equal(tg_report_query_parse(&q, "2026-11-05", "model", "a", "c", 3, &err), 0);
    assert_int_equal(q.from_ms, nov1 + 4 * MS_DAY);
    assert_int_equal(q.to_ms, nov1 + 5 * MS_DAY);
    assert_string_equal(q.app, "a");
    assert_int_equal(tg_report_query_parse(&q, "2026-11-01..2026-11-15", "app", NULL, NULL, 0, &err), 0);
    assert_int_equal(q.to_ms - q.from_ms, 15 * MS_DAY);
    const char *bad[] = {"2026-13", "2026-02-30", "2026-11-15..2026-11-01", "nov", "2026-1",
                         "2026-11-01..", "1969-12", "2026-11-01..2026-11", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err.msg[0] = '\0';
        assert_int_equal(tg_report_query_parse(&q, bad[i], "app", NULL, NULL, 0, &err), TG_EINVAL);
        assert_non_null(strstr(err.msg, "period"));
    }
    assert_int_equal(tg_report_query_parse(&q, "2026-x1", "app", NULL, NULL, 0, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "YYYY-MM-DD..YYYY-MM-DD"));
    assert_int_equal(tg_report_query_parse(&q, "2026-11", "colour", NULL, NULL, 0, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "customer, workspace, user, feature, workflow, model"));
    tg_report_format f;
    assert_int_equal(tg_report_format_parse("xml", &f, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "table, csv or json"));
    assert_int_equal(tg_report_format_parse("csv", &f, &err), 0);
    assert_int_equal(f, TG_REPORT_CSV);
}

static void test_margin_pct(void **state)
{
    (void)state;
    char b[TG_PCT_STRLEN];
    tg_report_margin_pct(0, 0, b);
    assert_string_equal(b, "-");
    tg_report_margin_pct(1234, 10000, b);
    assert_string_equal(b, "12.34");
    tg_report_margin_pct(1, 3, b); /* 33.333.. */
    assert_string_equal(b, "33.33");
    tg_report_margin_pct(2, 3, b); /* 66.666.. */
    assert_string_equal(b, "66.67");
    tg_report_margin_pct(-1, 8, b); /* -12.5 exactly: half away from zero */
    assert_string_equal(b, "-12.50");
    tg_report_margin_pct(-1, 80000, b); /* -0.00125 rounds to -0.00: no sign */
    assert_string_equal(b, "0.00");
    tg_report_margin_pct(INT64_MAX, INT64_MAX, b);
    assert_string_equal(b, "100.00");
}

/* Odd tag values survive CSV (RFC 4180) and JSON; shapes and exact money. */
static void test_formats(void **state)
{
    (void)state;
    tg_store *s = open_rw();
    tg_usage_rec r[3];
    tg_rng g = {5};
    for (int i = 0; i < 3; i++) make_rec(&g, 900 + (uint64_t)i, nov1 + MS_DAY + i, &r[i]);
    snprintf(r[0].tags.feature, sizeof r[0].tags.feature, "a,\"b\"");
    snprintf(r[1].tags.feature, sizeof r[1].tags.feature, "line\nbreak");
    snprintf(r[2].tags.feature, sizeof r[2].tags.feature, "plain");
    for (int i = 0; i < 3; i++) {
        snprintf(r[i].tags.app, sizeof r[i].tags.app, "fmt");
        r[i].cost = 1234500;
        r[i].fee = 0;
        r[i].margin = 100 * (i + 1);
        r[i].charge = r[i].cost + r[i].margin;
        r[i].attempt = false;
        r[i].attempts = 1;
        r[i].asked_cost = 1000000; /* routing saved 0.0002345 */
    }
    put_all(s, r, 3, 3);
    tg_buf csv = run_report(s, "2026-11", "feature", "fmt", NULL, TG_REPORT_CSV);
    assert_true(tg_str_has_prefix(tg_buf_str(&csv), TG_STR("kind,app,feature,requests,")));
    assert_non_null(strstr(csv.p, ",margin_pct,attempts,asked_cost,savings\r\n"));
    assert_non_null(strstr(csv.p, "row,fmt,\"a,\"\"b\"\"\",1,"));
    assert_non_null(strstr(csv.p, "row,fmt,\"line\nbreak\",1,"));
    assert_non_null(strstr(csv.p, ",0.001234500,0.001234800,0.000000300,0.000000000,0.02,1,"
                                  "0.001000000,-0.000234500\r\n"));
    assert_non_null(strstr(csv.p, "\r\ntotal,,,3,"));
    tg_buf_release(&csv);

    tg_buf js = run_report(s, "2026-11", "feature", "fmt", NULL, TG_REPORT_JSON);
    size_t off;
    const char *why;
    if (tg_json_validate(js.p, js.n, 0, &off, &why))
        fail_msg("json at %zu: %s: %s", off, why, js.p + (off > 20 ? off - 20 : 0));
    tg_json_val root = tg_json_root(js.p, js.n);
    int64_t v;
    assert_int_equal(tg_json_get(root, TG_STR("period")).type, TG_JSON_STRING);
    assert_int_equal(tg_json_get(root, TG_STR("customer")).type, TG_JSON_NULL);
    tg_json_val total = tg_json_get(root, TG_STR("total"));
    assert_int_equal(tg_json_int(tg_json_get(total, TG_STR("cost_nanos")), &v), 0);
    assert_int_equal(v, 3 * 1234500);
    tg_str cost;
    assert_true(tg_json_str_view(tg_json_get(total, TG_STR("cost")), &cost));
    assert_true(tg_str_eq(cost, TG_STR("0.003703500")));
    tg_json_val rows = tg_json_get(root, TG_STR("rows"));
    assert_int_equal(rows.type, TG_JSON_ARRAY);
    tg_json_iter it = tg_json_iter_init(rows);
    tg_json_val k, row;
    int nrows = 0;
    int64_t sum = 0;
    while (tg_json_iter_next(&it, &k, &row)) {
        assert_int_equal(tg_json_int(tg_json_get(row, TG_STR("charge_nanos")), &v), 0);
        sum += v;
        nrows++;
    }
    assert_int_equal(nrows, 3);
    assert_int_equal(tg_json_int(tg_json_get(total, TG_STR("charge_nanos")), &v), 0);
    assert_int_equal(sum, v);
    assert_int_equal(tg_json_int(tg_json_get(total, TG_STR("savings_nanos")), &v), 0);
    assert_int_equal(v, 3 * -234500);
    assert_true(tg_json_str_view(tg_json_get(total, TG_STR("savings")), &cost));
    assert_true(tg_str_eq(cost, TG_STR("-0.000703500")));
    assert_int_equal(tg_json_int(tg_json_get(total, TG_STR("attempts")), &v), 0);
    assert_int_equal(v, 3);
    tg_buf_release(&js);

    tg_buf t = run_report(s, "2026-11", "feature", "fmt", NULL, TG_REPORT_TABLE);
    assert_non_null(strstr(t.p, "rounded to 6 decimals"));
    assert_non_null(strstr(t.p, "0.001235")); /* 0.0012348 rounded */
    assert_non_null(strstr(t.p, "TOTAL"));
    assert_non_null(strstr(t.p, "  attempts     asked    savings\n"));
    assert_non_null(strstr(t.p, "  -0.000235\n")); /* -0.0002345, half away from zero */
    tg_buf_release(&t);

    /* a limit folds the tail into "rest"; the total still covers all */
    tg_report_query q;
    tg_errmsg err = {{0}};
    assert_int_equal(tg_report_query_parse(&q, "2026-11", "feature", "fmt", NULL, 1, &err), 0);
    tg_report *rep;
    assert_int_equal(tg_report_exec(s, &q, &rep, &err), 0);
    assert_int_equal(rep->nrows, 1);
    assert_int_equal(rep->nrest, 2);
    assert_int_equal(rep->rows[0].m.charge + rep->rest.charge, rep->total.charge);
    assert_int_equal(rep->rows[0].m.asked_cost + rep->rest.asked_cost, rep->total.asked_cost);
    assert_int_equal(tg_report_savings(&rep->rows[0].m) + tg_report_savings(&rep->rest),
                     tg_report_savings(&rep->total));
    tg_report_free(rep);
    tg_store_close(s);
}

static int count_customer(void *ud, const char *app, const char *id, const char *plan, int64_t t)
{
    (void)plan;
    int *n = ud;
    if (!strcmp(app, "solo") && !strcmp(id, "first")) {
        assert_int_equal(t, nov1 + 8); /* the earliest record's time */
        assert_string_equal(plan, "gold");
    }
    assert_true(id[0] != '\0');
    ++*n;
    return 0;
}

/* tg_store_each_record over chunks: a period, a filter, a limit, and a
 * callback's own stop code. */
typedef struct {
    size_t n;
    int stop_at; /* return 7 at this call (1-based); 0: never */
} each_count;

static int count_one(void *ud, const tg_usage_rec *r)
{
    (void)r;
    each_count *c = ud;
    return ++c->n == (size_t)c->stop_at ? 7 : 0;
}

static void test_each_record(void **state)
{
    (void)state;
    tg_store *s = open_rw();
    tg_usage_rec *v = make_recs(21, 1000, nov1, 2); /* 4 chunks over Nov 1 and 2 */
    put_all(s, v, 1000, 1000);
    tg_errmsg err = {{0}};
    each_count c = {0};
    assert_int_equal(tg_store_each_record(s, nov1, nov1 + 2 * MS_DAY, NULL, 0, count_one, &c, &err), 0);
    assert_int_equal(c.n, 1000);
    c = (each_count){0};
    assert_int_equal(tg_store_each_record(s, nov1 + MS_DAY, nov1 + 2 * MS_DAY, NULL, 0, count_one, &c, &err), 0);
    assert_int_equal(c.n, 500);
    size_t cus3 = 0;
    for (size_t i = 0; i < 1000; i++) cus3 += !strcmp(v[i].tags.customer, "cus3");
    assert_true(cus3 > 0);
    tg_record_filter f = {.customer = "cus3"};
    c = (each_count){0};
    assert_int_equal(tg_store_each_record(s, nov1, nov1 + 2 * MS_DAY, &f, 0, count_one, &c, &err), 0);
    assert_int_equal(c.n, cus3);
    c = (each_count){0};
    assert_int_equal(tg_store_each_record(s, nov1, nov1 + 2 * MS_DAY, NULL, 300, count_one, &c, &err), 0);
    assert_int_equal(c.n, 300); /* across a chunk boundary */
    c = (each_count){.stop_at = 5};
    assert_int_equal(tg_store_each_record(s, nov1, nov1 + 2 * MS_DAY, NULL, 300, count_one, &c, &err), 7);
    assert_int_equal(c.n, 5);
    tg_store_close(s);
    free(v);
}

/* A record of request rid on offering off: tokens priced at 1 nano each
 * for cost, +30% margin and 1 nano of fee per 10 of cost. */
static tg_usage_rec routed(uint64_t i, const char *rid, const char *off, tg_route_kind route,
                           int64_t tokens, int32_t attempts, bool attempt, tg_nanos asked)
{
    tg_usage_rec r;
    tg_rng g = {i};
    make_rec(&g, i, nov1 + 5 * MS_DAY + (int64_t)i, &r);
    snprintf(r.rid, sizeof r.rid, "%s", rid);
    snprintf(r.tags.app, sizeof r.tags.app, "route");
    snprintf(r.model, sizeof r.model, "auto");
    snprintf(r.offering, sizeof r.offering, "%s", off);
    r.route = (uint8_t)route;
    r.outcome = TG_OUT_COMPLETED;
    r.estimated = false;
    r.tokens = (tg_tokens){.prompt = tokens};
    r.cost = tokens;
    r.margin = tokens * 3 / 10;
    r.fee = tokens / 10;
    r.charge = r.cost + r.margin + r.fee;
    r.attempts = attempts;
    r.attempt = attempt;
    r.asked_cost = asked;
    return r;
}

static const tg_report_row *route_row(const tg_report *r, const char *route)
{
    for (size_t i = 0; i < r->nrows; i++)
        if (!strcmp(r->rows[i].key[0], route)) return &r->rows[i];
    fail_msg("no row for route %s", route);
    return NULL;
}

/* Requests routed three ways, as the gateway records them: a primary one
 * (one attempt); a fallback one whose first attempt the provider billed
 * though it failed (an attempt record, then the request's record on the
 * fallback offering, dearer than the model asked); an escalated one
 * whose cheap first answer is billed too. Attempt records carry their
 * request's route and count no request nor attempt, so each route's row
 * has its requests, their upstream calls, everything they cost, and
 * savings = what the served tokens would have cost at the model asked
 * minus that; every total is the sum of the rows. And the records read
 * back with their routing fields, in `tollgate usage` too. */
static void test_attempt_records(void **state)
{
    (void)state;
    tg_store *s = open_rw();
    tg_usage_rec r[] = {
        routed(1, "req-p", "cheap", TG_RT_PRIMARY, 1000, 1, false, 1000),
        routed(2, "req-f", "cheap", TG_RT_FALLBACK, 400, 1, true, 0),
        routed(3, "req-f", "other", TG_RT_FALLBACK, 1500, 2, false, 1000),
        routed(4, "req-e", "cheap", TG_RT_ESCALATED, 800, 1, true, 0),
        routed(5, "req-e", "premium", TG_RT_ESCALATED, 9000, 2, false, 600),
    };
    size_t n = sizeof r / sizeof *r;
    put_all(s, r, n, n);
    tg_report_query q;
    tg_errmsg err = {{0}};
    tg_report *rep;
    assert_int_equal(tg_report_query_parse(&q, "2026-11", "route", "route", NULL, 0, &err), 0);
    assert_int_equal(tg_report_exec(s, &q, &rep, &err), 0);
    assert_int_equal(rep->nrows, 3);
    const tg_measures *p = &route_row(rep, "primary")->m, *f = &route_row(rep, "fallback")->m,
                      *e = &route_row(rep, "escalated")->m;
    assert_int_equal(p->requests, 1);
    assert_int_equal(p->attempts, 1);
    assert_int_equal(tg_report_savings(p), 0);
    assert_int_equal(f->requests, 1);
    assert_int_equal(f->attempts, 2);
    assert_int_equal(f->cost, 1900);
    assert_int_equal(f->asked_cost, 1000);
    assert_int_equal(tg_report_savings(f), -900);
    assert_int_equal(e->requests, 1);
    assert_int_equal(e->attempts, 2);
    assert_int_equal(e->tokens.prompt, 9800);
    assert_int_equal(e->cost, 9800);
    assert_int_equal(e->charge, 9800 + 240 + 2700 + 80 + 900); /* cost, margins, fees */
    assert_int_equal(tg_report_savings(e), 600 - 9800);
    assert_int_equal(e->errors + f->errors + p->errors, 0);
    const tg_measures *t = &rep->total;
    assert_int_equal(t->requests, 3);
    assert_int_equal(t->attempts, 5);
    assert_int_equal(t->cost, 12700);
    assert_int_equal(t->charge, t->cost + t->margin + t->fee);
    assert_int_equal(tg_report_savings(t), 2600 - 12700);
    tg_report_free(rep);

    /* by offering, the attempts' money is where it was spent */
    assert_int_equal(tg_report_query_parse(&q, "2026-11", "offering", "route", NULL, 0, &err), 0);
    assert_int_equal(tg_report_exec(s, &q, &rep, &err), 0);
    for (size_t i = 0; i < rep->nrows; i++)
        if (!strcmp(rep->rows[i].key[0], "cheap")) {
            assert_int_equal(rep->rows[i].m.requests, 1);
            assert_int_equal(rep->rows[i].m.cost, 2200);
        }
    tg_report_free(rep);

    /* the records keep their fields */
    tg_record_filter rf = {.rid = "req-e"};
    each_count c = {0};
    assert_int_equal(tg_store_each_record(s, nov1, nov1 + 30 * MS_DAY, &rf, 0, count_one, &c, &err), 0);
    assert_int_equal(c.n, 2);
    tg_store_close(s);
    assert_int_equal(tg_store_open(path, TG_STORE_RO, &s, &err), TG_OK);
    char *out = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&out, &len);
    tg_records_query rq;
    assert_int_equal(tg_records_query_parse(&rq, "2026-11", "route", NULL, "req-e", NULL, 0, &err), 0);
    assert_int_equal(tg_records_print(s, &rq, TG_REPORT_JSON, mf, &err), 0);
    fclose(mf);
    assert_non_null(strstr(out, "\"attempts\":1,\"attempt\":true,\"asked_cost\":\"0.000000000\",\"asked_cost_nanos\":0}"));
    assert_non_null(strstr(out, "\"attempts\":2,\"attempt\":false,\"asked_cost\":\"0.000000600\",\"asked_cost_nanos\":600}"));
    free(out);
    mf = open_memstream(&out, &len);
    assert_int_equal(tg_records_print(s, &rq, TG_REPORT_TABLE, mf, &err), 0);
    fclose(mf);
    assert_non_null(strstr(out, "  (attempt)\n"));
    assert_non_null(strstr(out, " escalated "));
    free(out);
    tg_store_close(s);
}

static void test_customers(void **state)
{
    (void)state;
    tg_store *s = open_rw();
    tg_usage_rec r[4];
    tg_rng g = {9};
    for (int i = 0; i < 4; i++) {
        make_rec(&g, 700 + (uint64_t)i, nov1 + 10 - i, &r[i]);
        snprintf(r[i].tags.app, sizeof r[i].tags.app, "solo");
        snprintf(r[i].tags.customer, sizeof r[i].tags.customer, "%s", i < 3 ? "first" : "");
        snprintf(r[i].tags.plan, sizeof r[i].tags.plan, "gold");
    }
    put_all(s, r, 4, 4);
    int n = 0;
    tg_errmsg err = {{0}};
    assert_int_equal(tg_store_each_customer(s, count_customer, &n, &err), 0);
    sqlite3 *db = sql_open();
    assert_int_equal(n, sql_int(db, "SELECT count(*) FROM customers"));
    assert_int_equal(sql_int(db, "SELECT count(*) FROM customers WHERE app = 'solo'"), 1);
    assert_int_equal(sql_int(db, "SELECT count(DISTINCT app || '/' || customer) FROM usage WHERE customer != ''"), n);
    sqlite3_close(db);
    /* a later put, and a reopened store, keep the earliest record's time
     * and plan; an earlier record arriving late moves the time only: the
     * plan is the one the customer has now */
    tg_store_close(s);
    s = open_rw();
    tg_usage_rec later = r[0], earlier = r[0];
    later.id[15] ^= 0x55;
    later.t_start_ms = nov1 + 100;
    snprintf(later.tags.plan, sizeof later.tags.plan, "silver");
    put_all(s, &later, 1, 1);
    earlier.id[15] ^= 0xaa;
    earlier.t_start_ms = nov1 - 5;
    snprintf(earlier.tags.plan, sizeof earlier.tags.plan, "bronze");
    put_all(s, &earlier, 1, 1);
    db = sql_open();
    assert_int_equal(sql_int(db, "SELECT first_seen_ms FROM customers WHERE id = 'first'"), nov1 - 5);
    assert_int_equal(sql_int(db, "SELECT plan = 'gold' FROM customers WHERE id = 'first'"), 1);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM customers WHERE app = 'solo'"), 1);
    sqlite3_close(db);
    /* the admin API's plan holds against records arriving late; a
     * customer it names first is added */
    assert_int_equal(tg_store_customer_plan(s, TG_STR("solo"), TG_STR("first"), TG_STR("platinum"),
                                            nov1 + 500, &err), 0);
    assert_int_equal(tg_store_customer_plan(s, TG_STR("solo"), TG_STR("new"), TG_STR(""), nov1 + 600,
                                            &err), 0);
    earlier.id[14] ^= 0x11;
    earlier.t_start_ms = nov1 - 9;
    put_all(s, &earlier, 1, 1);
    db = sql_open();
    assert_int_equal(sql_int(db, "SELECT first_seen_ms FROM customers WHERE id = 'first'"), nov1 - 9);
    assert_int_equal(sql_int(db, "SELECT plan = 'platinum' FROM customers WHERE id = 'first'"), 1);
    assert_int_equal(sql_int(db, "SELECT first_seen_ms FROM customers WHERE id = 'new' AND plan = ''"),
                     nov1 + 600);
    sqlite3_close(db);
    tg_store_close(s);
}

/* Plans made through the admin API: kept by id, replaced, deleted, read
 * back in id order, and into a snapshot. */
static void test_plans(void **state)
{
    (void)state;
    tg_store *s = open_rw();
    tg_errmsg err = {{0}};
    const char *ids[] = {"zeta", "alpha", "team/a", "alpha2"};
    for (int i = 0; i < 4; i++)
        assert_int_equal(tg_store_plan_put(s, tg_str_c(ids[i]), TG_STR("{\"fee\": \"1\"}"), nov1 + i, &err), 0);
    assert_int_equal(tg_store_plan_put(s, TG_STR("alpha"), TG_STR("{\"fee\": \"2.50\"}"), nov1 + 9, &err), 0);
    bool deleted;
    assert_int_equal(tg_store_plan_delete(s, TG_STR("zeta"), &deleted, &err), 0);
    assert_true(deleted);
    assert_int_equal(tg_store_plan_delete(s, TG_STR("zeta"), &deleted, &err), 0);
    assert_false(deleted);
    tg_store_plan *p;
    size_t n;
    assert_int_equal(tg_store_plans(s, &p, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(p[0].id, "alpha");
    assert_string_equal(p[0].body, "{\"fee\": \"2.50\"}");
    assert_int_equal(p[0].updated_ms, nov1 + 9);
    assert_string_equal(p[1].id, "alpha2");
    assert_string_equal(p[2].id, "team/a");
    tg_store_plans_free(p, n);

    tg_config *c;
    const char *yaml = "providers: [{name: p, base_url: \"http://127.0.0.1:1/v1\"}]\n"
                       "offerings: [{id: o, provider: p, model: m}]\n"
                       "models: [{name: m, offerings: [o]}]\n"
                       "plans: [{id: file}]\n";
    assert_int_equal(tg_config_parse("t.yaml", tg_str_c(yaml), &c, &err), 0);
    assert_int_equal(tg_store_config_plans(s, c, &err), 0);
    assert_int_equal(c->napi_plans, 3);
    assert_int_equal(tg_config_plan(c, TG_STR("alpha"))->fee, 2500000000LL);
    assert_true(tg_config_plan_api(c, tg_config_plan(c, TG_STR("team/a"))));
    assert_false(tg_config_plan_api(c, tg_config_plan(c, TG_STR("file"))));
    tg_config_unref(c);
    /* a stored plan the file no longer allows: the snapshot is refused */
    assert_int_equal(tg_store_plan_put(s, TG_STR("file"), TG_STR("{}"), nov1, &err), 0);
    assert_int_equal(tg_config_parse("t.yaml", tg_str_c(yaml), &c, &err), 0);
    assert_int_equal(tg_store_config_plans(s, c, &err), TG_EINVAL);
    assert_string_equal(err.msg, "API plan 'file': t.yaml defines a plan of this id too; rename or "
                                 "remove one of them");
    assert_int_equal(c->napi_plans, 0);
    tg_config_unref(c);
    tg_store_close(s);
}

/* ---- a store written before routing (schema 4, records version 3) ---- */

/* The version 3 encoding of a record encoded now (version 4) at p[0..n)
 * whose routing fields are all zero: the same bytes without the tail
 * (attempts and asked_cost, one zero byte each) after the status and the
 * 14 integers. Returns the new length. */
static size_t as_v3(uint8_t *p, size_t n)
{
    size_t at = 2 + TG_RECORD_ID_LEN + 3;
    for (int i = 0; i < 1 + 14; i++)
        while (p[at++] & 0x80) {}
    assert_int_equal(p[0], 4);
    assert_int_equal(p[at], 0);
    assert_int_equal(p[at + 1], 0);
    memmove(p + at, p + at + 2, n - at - 2);
    p[0] = 3;
    return n - 2;
}

/* Writes v[0..n) into the usage table of db as a schema 4 binary did:
 * chunks of records in version 3. */
static void put_v3_chunks(sqlite3 *db, const tg_usage_rec *v, size_t n)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO usage (lo_ms, hi_ms, n, recs) VALUES (?,?,?,?)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    tg_buf chunk, rec;
    tg_buf_init(&chunk, 1 << 22);
    tg_buf_init(&rec, TG_RECORD_MAX_LEN + 1);
    for (size_t i = 0; i < n; i += 256) {
        size_t k = n - i < 256 ? n - i : 256;
        tg_buf_clear(&chunk);
        for (size_t j = i; j < i + k; j++) {
            tg_buf_clear(&rec);
            assert_int_equal(tg_record_encode(&v[j], false, &rec, NULL), TG_OK);
            uint32_t len = (uint32_t)as_v3((uint8_t *)rec.p, rec.n);
            uint8_t le[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
            assert_int_equal(tg_buf_append(&chunk, le, 4), 0);
            assert_int_equal(tg_buf_append(&chunk, rec.p, len), 0);
        }
        sqlite3_bind_int64(st, 1, v[i].t_start_ms); /* ids are their start times */
        sqlite3_bind_int64(st, 2, v[i + k - 1].t_start_ms);
        sqlite3_bind_int64(st, 3, (int64_t)k);
        sqlite3_bind_blob(st, 4, chunk.p, (int)chunk.n, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    tg_buf_release(&chunk);
    tg_buf_release(&rec);
}

/* At `path`, the store a binary of schema 4 would have left after
 * storing v[0..n) (no routing fields): migrations 1 to 4 as they ran,
 * the records in version 3, and the rollups, customers and fold frontier
 * that the current store makes of the same records at src (whose rollup
 * columns past fee, migration 5's, are left behind). */
static void make_schema4(const tg_usage_rec *v, size_t n, const char *src)
{
    tg_store *s;
    tg_errmsg err = {{0}};
    assert_int_equal(tg_store_open(src, TG_STORE_RW, &s, &err), TG_OK);
    put_all(s, v, n, 1000);
    tg_store_close(s);
    s = open_rw(); /* makes the directories; the schema is replaced below */
    tg_store_close(s);
    unlink(path);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char sql[2048];
    assert_int_equal(sqlite3_exec(db, TG_STORE_VERSION_TABLE, NULL, NULL, NULL), SQLITE_OK);
    for (int m = 1; m <= 4; m++) {
        assert_int_equal(sqlite3_exec(db, tg_store_migrations_[m - 1], NULL, NULL, NULL), SQLITE_OK);
        snprintf(sql, sizeof sql, "INSERT INTO schema_version VALUES (%d, 0)", m);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    snprintf(sql, sizeof sql, "ATTACH '%s' AS src", src);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    const char *m13 = "requests, errors, interrupted, estimated, prompt, cached, cache_write,"
                      " completion, reasoning, cost, charge, margin, fee";
    const char *rollups[] = {"rollup_day", "rollup_month", "rollup_user_day", "rollup_user_month"};
    for (int i = 0; i < 4; i++) {
        snprintf(sql, sizeof sql, "INSERT INTO main.%s SELECT %s, %s FROM src.%s", rollups[i],
                 i < 2 ? "bucket, " DIMS : "bucket, app, customer, user_id", m13, rollups[i]);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO main.customers SELECT * FROM src.customers;"
                                  "UPDATE main.fold_state SET frontier_ms ="
                                  " (SELECT frontier_ms FROM src.fold_state); DETACH src",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    put_v3_chunks(db, v, n);
    sqlite3_close(db);
}

/* Migration 5 on a store written before routing: a read-only open asks
 * for `tollgate migrate`; migrating adds the rollups' asked_cost and
 * attempts as 0, which is what the version 3 records decode to, so the
 * rollups still equal the records and every report agrees with SQL; and
 * records with routing fields, attempt records among them, go on top:
 * late ones into folded days, new ones folded later. */
static void test_migration_5(void **state)
{
    (void)state;
    char src[160];
    snprintf(src, sizeof src, "%s/src/" TG_STORE_FILE, dir);
    size_t n = 4000;
    tg_usage_rec *v = make_recs(31, n, nov1 - 2 * MS_DAY, 3); /* Oct 30 .. Nov 1 */
    for (size_t i = 0; i < n; i++) {
        v[i].attempt = false;
        v[i].attempts = 0;
        v[i].asked_cost = 0;
    }
    make_schema4(v, n, src);
    tg_store *s;
    tg_errmsg err = {{0}};
    assert_int_equal(tg_store_open(path, TG_STORE_RO, &s, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "schema version 4"));
    assert_non_null(strstr(err.msg, "tollgate migrate"));
    sqlite3 *db = sql_open();
    assert_true(sql_int(db, "SELECT count(*) FROM rollup_day") > 0);
    assert_true(sql_int(db, "SELECT frontier_ms FROM fold_state") > nov1 - 2 * MS_DAY);
    sqlite3_close(db);

    int applied = 0, version = 0;
    assert_int_equal(tg_store_migrate(path, &applied, &version, &err), TG_OK);
    /* 5 (routing), then 6 (closing periods: new tables only) */
    assert_int_equal(applied, 2);
    assert_int_equal(version, 6);
    assert_int_equal(version, tg_store_schema_version());
    db = sql_open();
    /* rows from before routing: served as asked, so they save nothing */
    assert_int_equal(sql_int(db, "SELECT total(attempts) FROM rollup_month"), 0);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM rollup_month WHERE asked_cost != cost"), 0);
    assert_true(sql_int(db, "SELECT total(asked_cost) FROM rollup_month") > 0);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM temp.usage"), (int64_t)n);
    sqlite3_close(db);
    /* reports read the migrated rollups and the records not folded yet */
    assert_int_equal(tg_store_open(path, TG_STORE_RO, &s, &err), TG_OK);
    for (int by = 0; by < TG_BY_COUNT_; by++)
        check_report_vs_sql(s, "2026-10-30..2026-11-03", nov1 - 2 * MS_DAY, nov1 + 3 * MS_DAY,
                            (tg_report_by)by, NULL, NULL);
    tg_store_close(s);
    /* the rest of the version 3 records folded into them */
    s = open_rw();
    assert_int_equal(tg_store_fold(s, INT64_MAX, &err), TG_OK);
    check_rollups_equal_usage();

    tg_usage_rec *late = make_recs(32, 500, nov1 - 2 * MS_DAY + 7 * MS_HOUR, 1);
    tg_usage_rec *now = make_recs(33, 3000, nov1 + MS_DAY, 3); /* Nov 2 .. Nov 4 */
    put_all(s, late, 500, 128);
    put_all(s, now, 3000, 1000);
    assert_int_equal(tg_store_fold(s, INT64_MAX, &err), TG_OK);
    check_rollups_equal_usage();
    tg_store_close(s);
    assert_int_equal(tg_store_open(path, TG_STORE_RO, &s, &err), TG_OK);
    check_report_vs_sql(s, "2026-11", nov1, nov1 + 30 * MS_DAY, TG_BY_ROUTE, NULL, NULL);
    check_report_vs_sql(s, "2026-10-30..2026-11-04", nov1 - 2 * MS_DAY, nov1 + 4 * MS_DAY,
                        TG_BY_ROUTE, "acme", NULL);
    check_report_vs_sql(s, "2026-10", nov1 - 31 * MS_DAY, nov1, TG_BY_CUSTOMER, NULL, NULL);
    tg_store_close(s);
    free(v);
    free(late);
    free(now);
}

/* ---- the ledger ---- */

typedef struct {
    atomic_int settled;
    atomic_int bad;
} settle_count;

static void on_settle(void *ud, const tg_jticket *t)
{
    settle_count *c = ud;
    if (t->outcome != (tg_jseg *)(uintptr_t)0x1234) atomic_fetch_add(&c->bad, 1);
    atomic_fetch_add(&c->settled, 1);
}

typedef struct {
    tg_ledger *l;
    uint64_t seed;
    size_t n;
} submitter;

/* Hands r to the ledger as the journal would: encoded as an outcome. */
static void submit(tg_ledger *l, const tg_usage_rec *r, const tg_jticket *t)
{
    tg_buf b;
    tg_buf_init(&b, TG_RECORD_MAX_LEN + 1);
    tg_record_marks m;
    assert_int_equal(tg_record_encode(r, false, &b, &m), TG_OK);
    tg_ledger_submit(l, (const uint8_t *)b.p, b.n, &m, t);
    tg_buf_release(&b);
}

static void *submit_thread(void *arg)
{
    submitter *sb = arg;
    tg_usage_rec *v = make_recs(sb->seed, sb->n, nov1 + 10 * MS_DAY, 2);
    tg_jticket t = {.outcome = (tg_jseg *)(uintptr_t)0x1234};
    for (size_t i = 0; i < sb->n; i++) submit(sb->l, &v[i], &t);
    free(v);
    return NULL;
}

static void test_ledger(void **state)
{
    (void)state;
    char lpath[160];
    snprintf(lpath, sizeof lpath, "%s/ledger/" TG_STORE_FILE, dir);
    tg_store *s;
    tg_errmsg err = {{0}};
    assert_int_equal(tg_store_open(lpath, TG_STORE_RW, &s, &err), 0);
    tg_metering_conf c = {.batch_records = 1000, .flush_ms = 20};
    settle_count sc = {0};
    tg_ledger *l;
    assert_int_equal(tg_ledger_start_with(&c, s, on_settle, &sc, &l, &err), 0);
    enum { NT = 4, PER = 2500 };
    pthread_t th[NT];
    submitter sb[NT];
    for (int i = 0; i < NT; i++) {
        sb[i] = (submitter){l, 100 + (uint64_t)i, PER};
        pthread_create(&th[i], NULL, submit_thread, &sb[i]);
    }
    for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
    tg_ledger_sync(l);
    tg_ledger_counts k;
    tg_ledger_stats(l, &k);
    assert_int_equal(k.submitted, NT * PER);
    assert_int_equal(k.committed, NT * PER);
    assert_int_equal(k.queued, 0);
    assert_true(k.batches >= NT * PER / 1000);
    assert_int_equal(atomic_load(&sc.settled), NT * PER);
    /* records submitted just before the stop are drained by it */
    sb[0] = (submitter){l, 200, PER};
    submit_thread(&sb[0]);
    tg_ledger_stop(l); /* closes s */
    assert_int_equal(atomic_load(&sc.settled), NT * PER + PER);
    assert_int_equal(atomic_load(&sc.bad), 0);
    sqlite3 *db = sql_open_at(lpath);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM usage"), NT * PER + PER);
    assert_int_equal(sql_int(db, "SELECT count(DISTINCT rid) FROM usage"), NT * PER + PER);
    sqlite3_close(db);

    /* a small flush_ms commits a lone record without a full batch */
    assert_int_equal(tg_store_open(lpath, TG_STORE_RW, &s, &err), 0);
    assert_int_equal(tg_ledger_start(&c, s, NULL, &l, &err), 0);
    tg_usage_rec one;
    tg_rng g = {77};
    make_rec(&g, 999999999, nov1 + 20 * MS_DAY, &one);
    submit(l, &one, NULL);
    for (int i = 0; i < 200; i++) {
        tg_ledger_stats(l, &k);
        if (k.committed == 1) break;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(k.committed, 1);
    tg_ledger_stop(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_5, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_encoded_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollups_match_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_queries, setup, teardown),
        cmocka_unit_test(test_margin_pct),
        cmocka_unit_test_setup_teardown(test_formats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attempt_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_customers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
