/* The SQLite store. See store.h for the contract and migrations.c for the
 * schema.
 *
 * The writer's speed comes from three things: one transaction per batch,
 * statements prepared once per handle, and rollup deltas summed in memory
 * per batch (agg.c) so each distinct rollup key is written once. Records
 * that conflict on id are skipped and never reach the rollups, which is
 * what makes a replay a no-op. */
#include "store/store.h"

#include "base/clock.h"
#include "store/agg.h"
#include "store/migrations.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The aggregates of a batch, in the order of roll_tables plus customers. */
enum { AGG_HOUR, AGG_DAY, AGG_MONTH, AGG_USER_DAY, AGG_USER_MONTH, AGG_CUSTOMERS, AGG_COUNT_ };

static const char *const roll_tables[TG_ROLL_COUNT_] = {
    "rollup_hour", "rollup_day", "rollup_month", "rollup_user_day", "rollup_user_month"};

#define NFILTERS 4 /* none, app, customer, both */

struct tg_store {
    sqlite3 *db;
    char *path;
    bool ro;
    sqlite3_stmt *ins_usage;
    sqlite3_stmt *up_roll[TG_ROLL_COUNT_];
    sqlite3_stmt *ins_customer;
    sqlite3_stmt *next_bucket[TG_ROLL_COUNT_];
    sqlite3_stmt *scan[TG_ROLL_COUNT_][NFILTERS];
    tg_agg agg[AGG_COUNT_];
};

/* ---- errors ---- */

static int db_fail(tg_store *s, tg_errmsg *err, const char *what)
{
    tg_errmsg_set(err, "%s: %s: %s", s->path, what, s->db ? sqlite3_errmsg(s->db) : "no memory");
    return TG_EIO;
}

static int exec(tg_store *s, const char *sql, tg_errmsg *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) == SQLITE_OK) return TG_OK;
    tg_errmsg_set(err, "%s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    return TG_EIO;
}

/* ---- open, migrations ---- */

/* mkdir -p of the directory part of path. */
static int make_parent(const char *path, tg_errmsg *err)
{
    char *d = strdup(path);
    int rc = TG_OK;
    if (!d) return TG_ENOMEM;
    char *slash = strrchr(d, '/');
    if (!slash || slash == d) goto out;
    *slash = '\0';
    for (char *p = d + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(d, 0700) && errno != EEXIST) {
            tg_errmsg_set(err, "%s: cannot create directory: %s", d, strerror(errno));
            rc = TG_EIO;
            goto out;
        }
        *p = c;
        if (!c) break;
    }
out:
    free(d);
    return rc;
}

/* The highest migration applied; 0 for a new file. */
static int read_version(tg_store *s, int *version, tg_errmsg *err)
{
    sqlite3_stmt *st = NULL;
    *version = 0;
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT coalesce(max(version), 0) FROM schema_version", -1, &st,
                                NULL);
    if (rc != SQLITE_OK) {
        /* no schema_version table: nothing was ever applied */
        sqlite3_finalize(st);
        return strstr(sqlite3_errmsg(s->db), "no such table") ? TG_OK
                                                              : db_fail(s, err, "reading version");
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? TG_OK : db_fail(s, err, "reading version");
}

static int apply_one(tg_store *s, int v, tg_errmsg *err)
{
    char sql[128];
    int rc = exec(s, tg_store_migrations_[v - 1], err);
    if (rc) return rc;
    snprintf(sql, sizeof sql, "INSERT INTO schema_version VALUES (%d, %lld)", v,
             (long long)tg_clock_wall_ms());
    return exec(s, sql, err);
}

/* Each migration in its own transaction, the version read inside the same
 * one: two processes migrating at once apply each migration once. */
static int migrate(tg_store *s, int *applied, int *version, tg_errmsg *err)
{
    int rc = TG_OK, v = 0;
    *applied = 0;
    for (;;) {
        if ((rc = exec(s, "BEGIN IMMEDIATE", err))) return rc;
        if ((rc = exec(s, TG_STORE_VERSION_TABLE, err)) || (rc = read_version(s, &v, err)))
            goto fail;
        if (v > tg_store_nmigrations_) {
            rc = tg_errmsg_set(err, "%s has schema version %d, newer than this tollgate's (%d)",
                               s->path, v, tg_store_nmigrations_);
            goto fail;
        }
        if (v == tg_store_nmigrations_) break;
        if ((rc = apply_one(s, v + 1, err))) goto fail;
        if ((rc = exec(s, "COMMIT", err))) goto fail;
        ++*applied;
    }
    *version = v;
    return exec(s, "COMMIT", err);
fail:
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int check_version(tg_store *s, tg_errmsg *err)
{
    int v, rc = read_version(s, &v, err);
    if (rc) return rc;
    if (v == tg_store_nmigrations_) return TG_OK;
    if (v > tg_store_nmigrations_)
        return tg_errmsg_set(err, "%s has schema version %d, newer than this tollgate's (%d)",
                             s->path, v, tg_store_nmigrations_);
    return tg_errmsg_set(err, "%s has schema version %d, this tollgate needs %d: run `tollgate migrate`",
                         s->path, v, tg_store_nmigrations_);
}

/* WAL lets the report readers and the ledger's writer run at once;
 * synchronous=NORMAL in WAL syncs at checkpoints, not at every commit: the
 * journal, not the store, is what makes a record durable. A large page
 * cache holds the hot ends of the rollup b-trees. */
static int configure(tg_store *s, tg_errmsg *err)
{
    sqlite3_busy_timeout(s->db, 10000);
    if (s->ro) return exec(s, "PRAGMA query_only = 1", err);
    return exec(s,
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                "PRAGMA cache_size = -131072; PRAGMA temp_store = MEMORY",
                err);
}

int tg_store_schema_version(void) { return tg_store_nmigrations_; }

char *tg_store_path(const char *data_dir)
{
    size_t n = strlen(data_dir) + sizeof("/" TG_STORE_FILE);
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", data_dir, TG_STORE_FILE);
    return p;
}

static int open_db(const char *path, unsigned flags, tg_store **out, int *applied, int *version,
                   tg_errmsg *err)
{
    int rc = TG_ENOMEM;
    tg_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) goto fail;
    s->ro = flags & TG_STORE_RO;
    struct stat sb;
    if (s->ro && stat(path, &sb)) {
        rc = TG_ENOTFOUND;
        tg_errmsg_set(err, "%s: no ledger database (%s)", path, strerror(errno));
        goto fail;
    }
    if (!s->ro && (rc = make_parent(path, err))) goto fail;
    int oflags = s->ro ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, &s->db, oflags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        rc = db_fail(s, err, "cannot open");
        goto fail;
    }
    if ((rc = configure(s, err))) goto fail;
    int a = 0, v = 0;
    rc = s->ro ? check_version(s, err) : migrate(s, &a, &v, err);
    if (rc) goto fail;
    if (applied) *applied = a;
    if (version) *version = s->ro ? tg_store_nmigrations_ : v;
    for (int i = 0; i < AGG_COUNT_; i++)
        tg_agg_init(&s->agg[i], i == AGG_CUSTOMERS ? TG_AGG_CUSTOMER
                                : i >= AGG_USER_DAY ? TG_AGG_USER
                                                    : TG_AGG_DIMS);
    *out = s;
    return TG_OK;
fail:
    if (rc == TG_ENOMEM) tg_errmsg_set(err, "%s: out of memory", path);
    tg_store_close(s);
    return rc;
}

int tg_store_open(const char *path, unsigned flags, tg_store **out, tg_errmsg *err)
{
    return open_db(path, flags, out, NULL, NULL, err);
}

int tg_store_migrate(const char *path, int *applied, int *version, tg_errmsg *err)
{
    tg_store *s;
    int rc = open_db(path, TG_STORE_RW, &s, applied, version, err);
    if (!rc) tg_store_close(s);
    return rc;
}

void tg_store_close(tg_store *s)
{
    if (!s) return;
    sqlite3_finalize(s->ins_usage);
    sqlite3_finalize(s->ins_customer);
    for (int k = 0; k < TG_ROLL_COUNT_; k++) {
        sqlite3_finalize(s->up_roll[k]);
        sqlite3_finalize(s->next_bucket[k]);
        for (int f = 0; f < NFILTERS; f++) sqlite3_finalize(s->scan[k][f]);
    }
    for (int i = 0; i < AGG_COUNT_; i++) tg_agg_release(&s->agg[i]);
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

/* ---- put ---- */

#define MEASURE_COLS                                                                              \
    "requests, errors, interrupted, estimated, prompt, cached, cache_write, completion,"          \
    " reasoning, cost, charge, margin, fee"
#define ADD_(c) c " = " c " + excluded." c
#define MEASURE_ADD                                                                               \
    ADD_("requests") "," ADD_("errors") "," ADD_("interrupted") "," ADD_("estimated") ","         \
    ADD_("prompt") "," ADD_("cached") "," ADD_("cache_write") "," ADD_("completion") ","          \
    ADD_("reasoning") "," ADD_("cost") "," ADD_("charge") "," ADD_("margin") "," ADD_("fee")
#define DIM_KEY "bucket, app, customer, workspace, feature, workflow, model, offering, provider, route"
#define USER_KEY "bucket, app, customer, user_id"

static int prepare(tg_store *s, sqlite3_stmt **st, const char *sql, tg_errmsg *err)
{
    if (*st) return TG_OK;
    return sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK
               ? TG_OK
               : db_fail(s, err, "preparing a statement");
}

static int prepare_put(tg_store *s, tg_errmsg *err)
{
    int rc = prepare(s, &s->ins_usage,
                     "INSERT INTO usage VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
                     "?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO NOTHING",
                     err);
    if (!rc)
        rc = prepare(s, &s->ins_customer,
                     "INSERT INTO customers VALUES (?,?,?,?) ON CONFLICT (app, id) DO NOTHING",
                     err);
    for (int k = 0; k < TG_ROLL_COUNT_ && !rc; k++) {
        bool user = k >= TG_ROLL_USER_DAY;
        char sql[1024];
        snprintf(sql, sizeof sql,
                 "INSERT INTO %s (%s, " MEASURE_COLS ") VALUES (%s?,?,?,?,?,?,?,?,?,?,?,?,?)"
                 " ON CONFLICT (%s) DO UPDATE SET " MEASURE_ADD,
                 roll_tables[k], user ? USER_KEY : DIM_KEY,
                 user ? "?,?,?,?," : "?,?,?,?,?,?,?,?,?,?,", user ? USER_KEY : DIM_KEY);
        rc = prepare(s, &s->up_roll[k], sql, err);
    }
    return rc;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

/* Returns 1 when the record was new, 0 when its id was there, or an error. */
static int insert_usage(tg_store *s, const tg_usage_rec *r, tg_errmsg *err)
{
    sqlite3_stmt *st = s->ins_usage;
    int i = 1;
    sqlite3_bind_blob(st, i++, r->id, TG_RECORD_ID_LEN, SQLITE_STATIC);
    const char *texts1[] = {r->rid,           r->key_id,        r->tags.app,     r->tags.customer,
                            r->tags.plan,     r->tags.workspace, r->tags.user,   r->tags.feature,
                            r->tags.workflow, r->tags.run,      r->tags.unit};
    for (size_t k = 0; k < sizeof texts1 / sizeof *texts1; k++) bind_text(st, i++, texts1[k]);
    sqlite3_bind_int64(st, i++, r->tags.unit_count);
    const char *texts2[] = {r->model, r->offering, r->provider, r->rule};
    for (size_t k = 0; k < 4; k++) bind_text(st, i++, texts2[k]);
    const int64_t ints[] = {r->t_start_ms,        r->latency_us,         r->ttft_us,
                            r->status,            r->endpoint,           r->route,
                            r->outcome,           r->stream,             r->estimated,
                            r->tokens.prompt,     r->tokens.cached,      r->tokens.cache_write,
                            r->tokens.completion, r->tokens.reasoning,   r->cost,
                            r->charge,            r->margin,             r->fee};
    for (size_t k = 0; k < sizeof ints / sizeof *ints; k++) sqlite3_bind_int64(st, i++, ints[k]);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return db_fail(s, err, "inserting usage");
    return sqlite3_changes(s->db) == 1;
}

static void bind_measures(sqlite3_stmt *st, int i, const tg_measures *m)
{
    const int64_t v[] = {m->requests,          m->errors,           m->interrupted,
                         m->estimated,         m->tokens.prompt,    m->tokens.cached,
                         m->tokens.cache_write, m->tokens.completion, m->tokens.reasoning,
                         m->cost,              m->charge,           m->margin,
                         m->fee};
    for (size_t k = 0; k < sizeof v / sizeof *v; k++) sqlite3_bind_int64(st, i + (int)k, v[k]);
}

static int upsert_rollup(tg_store *s, int k, const tg_agg *a, tg_errmsg *err)
{
    sqlite3_stmt *st = s->up_roll[k];
    for (size_t e = 0; e < a->n; e++) {
        const tg_agg_ent *x = &a->ents[e];
        const tg_usage_rec *r = x->r;
        int i = 1;
        sqlite3_bind_int64(st, i++, x->bucket);
        bind_text(st, i++, r->tags.app);
        bind_text(st, i++, r->tags.customer);
        if (a->kind == TG_AGG_USER) {
            bind_text(st, i++, r->tags.user);
        } else {
            const char *t[] = {r->tags.workspace, r->tags.feature,  r->tags.workflow,
                               r->model,          r->offering,      r->provider};
            for (int j = 0; j < 6; j++) bind_text(st, i++, t[j]);
            sqlite3_bind_int(st, i++, r->route);
        }
        bind_measures(st, i, &x->m);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) return db_fail(s, err, "updating a rollup");
    }
    return TG_OK;
}

static int upsert_customers(tg_store *s, const tg_agg *a, tg_errmsg *err)
{
    sqlite3_stmt *st = s->ins_customer;
    for (size_t e = 0; e < a->n; e++) {
        const tg_usage_rec *r = a->ents[e].r;
        if (!r->tags.customer[0]) continue; /* no customer attributed */
        bind_text(st, 1, r->tags.app);
        bind_text(st, 2, r->tags.customer);
        bind_text(st, 3, r->tags.plan);
        sqlite3_bind_int64(st, 4, r->t_start_ms);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) return db_fail(s, err, "recording a customer");
    }
    return TG_OK;
}

/* Adds a newly inserted record to every aggregate. The month of a day is
 * cached: gmtime per record would cost more than the rest of the add. */
static int aggregate(tg_store *s, const tg_usage_rec *r, int64_t *day_c, int64_t *month_c)
{
    int64_t day = tg_bucket_day(r->t_start_ms);
    if (day != *day_c) {
        *day_c = day;
        *month_c = tg_bucket_month(day);
    }
    uint64_t hd = tg_agg_key_hash(r, TG_AGG_DIMS), hu = tg_agg_key_hash(r, TG_AGG_USER);
    int rc = tg_agg_add(&s->agg[AGG_HOUR], r, tg_bucket_hour(r->t_start_ms), hd);
    if (!rc) rc = tg_agg_add(&s->agg[AGG_DAY], r, day, hd);
    if (!rc) rc = tg_agg_add(&s->agg[AGG_MONTH], r, *month_c, hd);
    if (!rc) rc = tg_agg_add(&s->agg[AGG_USER_DAY], r, day, hu);
    if (!rc) rc = tg_agg_add(&s->agg[AGG_USER_MONTH], r, *month_c, hu);
    if (!rc) rc = tg_agg_add(&s->agg[AGG_CUSTOMERS], r, 0, tg_agg_key_hash(r, TG_AGG_CUSTOMER));
    return rc;
}

static int put_batch(tg_store *s, const tg_usage_rec *recs, size_t n, size_t *inserted,
                     tg_errmsg *err)
{
    int rc = TG_OK;
    int64_t day_c = INT64_MIN, month_c = 0;
    for (int i = 0; i < AGG_COUNT_ && !rc; i++) rc = tg_agg_reset(&s->agg[i], n);
    if (rc) return tg_errmsg_set(err, "%s: out of memory", s->path), TG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        tg_record_check(&recs[i]);
        int fresh = insert_usage(s, &recs[i], err);
        if (fresh < 0) return fresh;
        if (!fresh) continue;
        ++*inserted;
        if ((rc = aggregate(s, &recs[i], &day_c, &month_c))) {
            tg_errmsg_set(err, "%s: a rollup sum would overflow", s->path);
            return rc;
        }
    }
    for (int k = 0; k < TG_ROLL_COUNT_ && !rc; k++) rc = upsert_rollup(s, k, &s->agg[k], err);
    if (!rc) rc = upsert_customers(s, &s->agg[AGG_CUSTOMERS], err);
    return rc;
}

int tg_store_put(tg_store *s, const tg_usage_rec *recs, size_t n, size_t *inserted,
                 tg_errmsg *err)
{
    size_t ins = 0;
    int rc;
    if (s->ro) return tg_errmsg_set(err, "%s: opened read-only", s->path);
    if ((rc = prepare_put(s, err)) || (rc = exec(s, "BEGIN IMMEDIATE", err))) return rc;
    rc = put_batch(s, recs, n, &ins, err);
    if (!rc) rc = exec(s, "COMMIT", err);
    if (rc) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        ins = 0;
    }
    if (inserted) *inserted = ins;
    return rc;
}

/* ---- reading ---- */

int tg_store_each_customer(tg_store *s,
                           int (*fn)(void *ud, const char *app, const char *id,
                                     const char *plan, int64_t first_seen_ms),
                           void *ud, tg_errmsg *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT app, id, plan, first_seen_ms FROM customers ORDER BY app, id",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return db_fail(s, err, "reading customers");
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
    return rc == SQLITE_DONE ? TG_OK : db_fail(s, err, "reading customers");
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
             roll_tables[k]);
    int rc = prepare(s, &s->next_bucket[k], sql, err);
    if (rc) return rc;
    snprintf(sql, sizeof sql,
             "SELECT %s, " MEASURE_COLS " FROM %s WHERE bucket = ?1%s%s ORDER BY %s",
             user ? USER_KEY : DIM_KEY, roll_tables[k], f & 1 ? " AND app = ?2" : "",
             f & 2 ? " AND customer = ?3" : "", user ? USER_KEY : DIM_KEY);
    return prepare(s, &s->scan[k][f], sql, err);
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
    return rc == SQLITE_ROW ? found : db_fail(s, err, "reading a rollup");
}

static void read_measures(sqlite3_stmt *st, int i, tg_measures *m)
{
    int64_t *v[] = {&m->requests,          &m->errors,            &m->interrupted,
                    &m->estimated,         &m->tokens.prompt,     &m->tokens.cached,
                    &m->tokens.cache_write, &m->tokens.completion, &m->tokens.reasoning,
                    &m->cost,              &m->charge,            &m->margin,
                    &m->fee};
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
    return rc == SQLITE_DONE ? TG_OK : db_fail(s, err, "reading a rollup");
}

int tg_store_scan(tg_store *s, tg_rollup_kind k, int64_t from_ms, int64_t to_ms,
                  const tg_scan_filter *f, int (*fn)(void *ud, const tg_rollup_row *r), void *ud,
                  tg_errmsg *err)
{
    if ((unsigned)k >= TG_ROLL_COUNT_) return tg_errmsg_set(err, "no such rollup");
    const char *app = f && f->app && f->app[0] ? f->app : NULL;
    const char *cust = f && f->customer && f->customer[0] ? f->customer : NULL;
    int fi = (app ? 1 : 0) | (cust ? 2 : 0), rc;
    if ((rc = scan_stmts(s, k, fi, err))) return rc;
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
