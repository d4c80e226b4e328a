/* Reading: rollup rows for reports, plus the usage records not folded yet
 * (sqlite_int.h, Folding), and the customers table. */
#include "store/sqlite_int.h"

#include <stdio.h>
#include <string.h>

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v, (int)strlen(v), SQLITE_STATIC);
}

int tg_store_each_customer(tg_store *s,
                           int (*fn)(void *ud, const char *app, const char *id,
                                     const char *plan, int64_t first_seen_ms),
                           void *ud, tg_errmsg *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT app, id, plan, first_seen_ms FROM customers ORDER BY app, id",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return tg_sq_fail(s, err, "reading customers");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int r = fn(ud, (const char *)sqlite3_column_text(st, 0),
                   (const char *)sqlite3_column_text(st, 1),
                   (const char *)sqlite3_column_text(st, 2), sqlite3_column_int64(st, 3));
        if (r) {
            sqlite3_finalize(st);
            return r;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? TG_OK : tg_sq_fail(s, err, "reading customers");
}

/* Statements for rollup k with filter bits f (1: app, 2: customer). A scan
 * goes one bucket at a time so that the filters use the primary key
 * (bucket, app, customer, ...): after a range on bucket, SQLite could not
 * use app and customer, and a customer's report would read a whole month. */
static int scan_stmts(tg_store *s, int k, int f, tg_errmsg *err)
{
    bool user = k >= TG_ROLL_USER_DAY;
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT min(bucket) FROM %s WHERE bucket >= ?1 AND bucket < ?2",
             tg_store_rollup_tables_[k]);
    int rc = tg_sq_prepare(s, &s->next_bucket[k], sql, err);
    if (rc) return rc;
    snprintf(sql, sizeof sql,
             "SELECT %s, " TG_SQ_MEASURE_COLS " FROM %s WHERE bucket = ?1%s%s ORDER BY %s",
             user ? TG_SQ_USER_KEY : TG_SQ_DIM_KEY, tg_store_rollup_tables_[k], f & 1 ? " AND app = ?2" : "",
             f & 2 ? " AND customer = ?3" : "", user ? TG_SQ_USER_KEY : TG_SQ_DIM_KEY);
    return tg_sq_prepare(s, &s->scan[k][f], sql, err);
}

/* The first bucket in [from, to): 1 and *b, 0 when none, or an error. */
static int next_bucket(tg_store *s, int k, int64_t from, int64_t to, int64_t *b, tg_errmsg *err)
{
    sqlite3_stmt *st = s->next_bucket[k];
    sqlite3_bind_int64(st, 1, from);
    sqlite3_bind_int64(st, 2, to);
    int rc = sqlite3_step(st), found = 0;
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        *b = sqlite3_column_int64(st, 0);
        found = 1;
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? found : tg_sq_fail(s, err, "reading a rollup");
}

static void read_measures(sqlite3_stmt *st, int i, tg_measures *m)
{
    int64_t *v[TG_SQ_NMEASURES] = {
        &m->requests,         &m->errors,         &m->interrupted,         &m->estimated,
        &m->tokens.prompt,    &m->tokens.cached,  &m->tokens.cache_write, &m->tokens.completion,
        &m->tokens.reasoning, &m->cost,           &m->charge,              &m->margin,
        &m->fee,              &m->asked_cost,     &m->attempts};
    for (size_t k = 0; k < sizeof v / sizeof *v; k++) *v[k] = sqlite3_column_int64(st, i + (int)k);
}

static const char *col(sqlite3_stmt *st, int i) { return (const char *)sqlite3_column_text(st, i); }

static void read_row(sqlite3_stmt *st, bool user, tg_rollup_row *r)
{
    *r = (tg_rollup_row){.bucket_ms = sqlite3_column_int64(st, 0),
                         .app = col(st, 1),
                         .customer = col(st, 2),
                         .workspace = "", .feature = "", .workflow = "", .model = "",
                         .offering = "", .provider = "", .user = ""};
    if (user) {
        r->user = col(st, 3);
        read_measures(st, 4, &r->m);
        return;
    }
    r->workspace = col(st, 3);
    r->feature = col(st, 4);
    r->workflow = col(st, 5);
    r->model = col(st, 6);
    r->offering = col(st, 7);
    r->provider = col(st, 8);
    r->route = (uint8_t)sqlite3_column_int(st, 9);
    read_measures(st, 10, &r->m);
}

static int scan_bucket(tg_store *s, sqlite3_stmt *st, bool user, int64_t b,
                       int (*fn)(void *ud, const tg_rollup_row *r), void *ud, tg_errmsg *err)
{
    tg_rollup_row row;
    int rc;
    sqlite3_bind_int64(st, 1, b);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_row(st, user, &row);
        int r = fn(ud, &row);
        if (r) {
            sqlite3_reset(st);
            return r;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? TG_OK : tg_sq_fail(s, err, "reading a rollup");
}

/* ---- usage not folded yet ---- */

/* One record as a row of rollup k (a rollup of one record). */
static void usage_row(const tg_usage_rec *u, tg_rollup_kind k, int64_t *day_c, int64_t *month_c,
                      tg_rollup_row *r)
{
    int64_t day = tg_bucket_day(u->t_start_ms);
    if (day != *day_c) {
        *day_c = day;
        *month_c = tg_bucket_month(day);
    }
    bool user = k >= TG_ROLL_USER_DAY;
    *r = (tg_rollup_row){
        .bucket_ms = k == TG_ROLL_DAY || k == TG_ROLL_USER_DAY ? day : *month_c,
        .app = u->tags.app, .customer = u->tags.customer,
        .workspace = user ? "" : u->tags.workspace, .feature = user ? "" : u->tags.feature,
        .workflow = user ? "" : u->tags.workflow, .model = user ? "" : u->model,
        .offering = user ? "" : u->offering, .provider = user ? "" : u->provider,
        .route = user ? 0 : u->route,
        .user = user ? u->tags.user : "",
    };
    tg_measures_of(u, &r->m);
}

typedef struct {
    tg_rollup_kind k;
    int64_t from, to;
    const char *app, *cust;
    int (*fn)(void *ud, const tg_rollup_row *r);
    void *ud;
    int64_t day_c, month_c;
} usage_scan;

static int usage_one(void *ud, const tg_usage_rec *u)
{
    usage_scan *c = ud;
    if (u->t_start_ms < c->from || u->t_start_ms >= c->to) return TG_OK;
    if ((c->app && strcmp(c->app, u->tags.app)) || (c->cust && strcmp(c->cust, u->tags.customer)))
        return TG_OK;
    tg_rollup_row row;
    usage_row(u, c->k, &c->day_c, &c->month_c, &row);
    return c->fn(c->ud, &row);
}

/* Every record from the frontier on is read and decoded; the filters are
 * applied to the records. That is at most a day and an hour of usage. */
static int scan_usage(tg_store *s, usage_scan *c, tg_errmsg *err)
{
    int64_t frontier;
    int rc = tg_sq_frontier(s, &frontier, err);
    c->day_c = INT64_MIN;
    return rc ? rc : tg_sq_each_usage(s, frontier, INT64_MAX, usage_one, c, err);
}

/* ---- scan ---- */

static int scan_rollup(tg_store *s, tg_rollup_kind k, int64_t from_ms, int64_t to_ms, int fi,
                       const char *app, const char *cust,
                       int (*fn)(void *ud, const tg_rollup_row *r), void *ud, tg_errmsg *err)
{
    int rc = scan_stmts(s, k, fi, err);
    if (rc) return rc;
    sqlite3_stmt *st = s->scan[k][fi];
    if (app) bind_text(st, 2, app);
    if (cust) bind_text(st, 3, cust);
    int64_t b = from_ms;
    while ((rc = next_bucket(s, k, b, to_ms, &b, err)) == 1) {
        if ((rc = scan_bucket(s, st, k >= TG_ROLL_USER_DAY, b, fn, ud, err))) break;
        if (b == INT64_MAX) break;
        b++;
    }
    sqlite3_clear_bindings(st);
    return rc;
}

/* Rollups and unfolded usage are read in one transaction: one snapshot,
 * so a fold committing meanwhile cannot count a record twice or never. */
int tg_store_scan(tg_store *s, tg_rollup_kind k, int64_t from_ms, int64_t to_ms,
                  const tg_scan_filter *f, int (*fn)(void *ud, const tg_rollup_row *r), void *ud,
                  tg_errmsg *err)
{
    if ((unsigned)k >= TG_ROLL_COUNT_) return tg_errmsg_set(err, "no such rollup");
    const char *app = f && f->app && f->app[0] ? f->app : NULL;
    const char *cust = f && f->customer && f->customer[0] ? f->customer : NULL;
    int fi = (app ? 1 : 0) | (cust ? 2 : 0);
    int rc = tg_sq_exec(s, "BEGIN", err);
    if (rc) return rc;
    rc = scan_rollup(s, k, from_ms, to_ms, fi, app, cust, fn, ud, err);
    usage_scan c = {k, from_ms, to_ms, app, cust, fn, ud, 0, 0};
    if (!rc) rc = scan_usage(s, &c, err);
    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    return rc;
}
