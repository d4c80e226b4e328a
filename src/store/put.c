/* Writing: records into usage, one chunk row per slice of a put, late ones
 * straight into the rollups, and folding closed days into the rollups
 * (sqlite_int.h, Folding).
 *
 * One transaction per put; statements prepared once per handle. A put
 * appends: it does not look for the ids it is given. Replays are kept out
 * before the put (tg_store_drop_known). */
#include "store/sqlite_int.h"

#include "base/hash.h"

#include <endian.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_DAY 86400000LL

#define ADD_(c) c " = " c " + excluded." c
#define MEASURE_ADD                                                                               \
    ADD_("requests") "," ADD_("errors") "," ADD_("interrupted") "," ADD_("estimated") ","         \
    ADD_("prompt") "," ADD_("cached") "," ADD_("cache_write") "," ADD_("completion") ","          \
    ADD_("reasoning") "," ADD_("cost") "," ADD_("charge") "," ADD_("margin") "," ADD_("fee") "," \
    ADD_("asked_cost") "," ADD_("attempts")

/* ---- statements ---- */

static int prepare_put(tg_store *s, tg_errmsg *err)
{
    int rc = tg_sq_prepare(s, &s->ins_usage,
                           "INSERT INTO usage (lo_ms, hi_ms, n, recs) VALUES (?, ?, ?, ?)", err);
    if (!rc)
        rc = tg_sq_prepare(s, &s->ins_customer,
                           /* an earlier record arriving late moves first_seen_ms
                            * only: the plan is the one the customer has now
                            * (store/plans.h) */
                           "INSERT INTO customers VALUES (?,?,?,?) ON CONFLICT (app, id) DO UPDATE"
                           " SET first_seen_ms = excluded.first_seen_ms"
                           " WHERE excluded.first_seen_ms < first_seen_ms",
                           err);
    if (!rc)
        rc = tg_sq_prepare(s, &s->first_ms,
                           "SELECT min(lo_ms) FROM usage WHERE hi_ms >= ?1", err);
    for (int k = 0; k < TG_ROLL_COUNT_ && !rc; k++) {
        bool user = k >= TG_ROLL_USER_DAY;
        char sql[1024];
        snprintf(sql, sizeof sql,
                 "INSERT INTO %s (%s, " TG_SQ_MEASURE_COLS ")"
                 " VALUES (%s?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                 " ON CONFLICT (%s) DO UPDATE SET " MEASURE_ADD,
                 tg_store_rollup_tables_[k], user ? TG_SQ_USER_KEY : TG_SQ_DIM_KEY,
                 user ? "?,?,?,?," : "?,?,?,?,?,?,?,?,?,?,", user ? TG_SQ_USER_KEY : TG_SQ_DIM_KEY);
        rc = tg_sq_prepare(s, &s->up_roll[k], sql, err);
    }
    return rc;
}

int tg_sq_prepare_add(tg_store *s, int k, tg_errmsg *err)
{
    static const char *const measures[TG_SQ_NMEASURES] = {
        "requests", "errors",     "interrupted", "estimated", "prompt",
        "cached",   "cache_write", "completion", "reasoning", "cost",
        "charge",   "margin",     "fee",         "asked_cost", "attempts"};
    static const char *const dims[] = {"bucket", "app", "customer", "workspace", "feature",
                                       "workflow", "model", "offering", "provider", "route"};
    static const char *const users[] = {"bucket", "app", "customer", "user_id"};
    bool user = k >= TG_ROLL_USER_DAY;
    const char *const *key = user ? users : dims;
    int nkey = user ? 4 : 10;
    char sql[2048];
    int at = snprintf(sql, sizeof sql, "UPDATE %s SET ", tg_store_rollup_tables_[k]);
    for (int i = 0; i < TG_SQ_NMEASURES; i++)
        at += snprintf(sql + at, sizeof sql - (size_t)at, "%s%s = %s + ?%d", i ? ", " : "",
                       measures[i], measures[i], nkey + 1 + i);
    for (int i = 0; i < nkey; i++)
        at += snprintf(sql + at, sizeof sql - (size_t)at, "%s%s = ?%d", i ? " AND " : " WHERE ",
                       key[i], i + 1);
    return tg_sq_prepare(s, &s->add_roll[k], sql, err);
}

/* ---- late records: straight into the rollups ---- */

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v, (int)strlen(v), SQLITE_STATIC);
}

void tg_sq_bind_measures(sqlite3_stmt *st, int i, const tg_measures *m)
{
    const int64_t v[TG_SQ_NMEASURES] = {
        m->requests,         m->errors,          m->interrupted,         m->estimated,
        m->tokens.prompt,    m->tokens.cached,   m->tokens.cache_write, m->tokens.completion,
        m->tokens.reasoning, m->cost,            m->charge,              m->margin,
        m->fee,              m->asked_cost,      m->attempts};
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
        tg_sq_bind_measures(st, i, &x->m);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) return tg_sq_fail(s, err, "updating a rollup");
    }
    return TG_OK;
}

/* ---- customers ---- */

/* The writer remembers which (app, customer) pairs the customers table
 * has, and since when, so a record costs a hash lookup and only a
 * customer's first record (or an earlier one arriving late) a write.
 * (With one upsert per distinct customer per slice, a batch of 8192
 * records over 2,000 customers made about 5,000 of them.) */

static uint64_t cust_hash(tg_str app, tg_str cust)
{
    return tg_hash64(cust.p, cust.n, tg_hash64(app.p, app.n, 0xc057) ^ app.n);
}

static int known_grow(tg_sq_known *k)
{
    size_t cap = k->cap ? k->cap * 2 : 1024;
    tg_sq_known_ent *e = calloc(cap, sizeof *e);
    if (!e) return TG_ENOMEM;
    for (size_t i = 0; i < k->cap; i++) {
        if (!k->e[i].app.p) continue;
        size_t j = k->e[i].hash & (cap - 1);
        while (e[j].app.p) j = (j + 1) & (cap - 1);
        e[j] = k->e[i];
    }
    free(k->e);
    k->e = e;
    k->cap = cap;
    return TG_OK;
}

/* The entry of (app, cust), added with first = INT64_MAX when new; NULL
 * on out-of-memory. */
static tg_sq_known_ent *known_get(tg_sq_known *k, tg_str app, tg_str cust)
{
    if (2 * (k->n + 1) > k->cap && known_grow(k)) return NULL;
    uint64_t h = cust_hash(app, cust);
    size_t j = h & (k->cap - 1);
    for (; k->e[j].app.p; j = (j + 1) & (k->cap - 1))
        if (k->e[j].hash == h && tg_str_eq(k->e[j].app, app) && tg_str_eq(k->e[j].cust, cust))
            return &k->e[j];
    tg_str a = tg_arena_dup(&k->arena, app), c = tg_arena_dup(&k->arena, cust);
    if (!a.p || !c.p) return NULL;
    k->e[j] = (tg_sq_known_ent){h, a, c, INT64_MAX};
    k->n++;
    return &k->e[j];
}

void tg_sq_known_drop(tg_sq_known *k)
{
    free(k->e);
    tg_arena_release(&k->arena);
    *k = (tg_sq_known){0};
}

static int load_known(void *ud, const char *app, const char *id, const char *plan, int64_t first)
{
    (void)plan;
    tg_sq_known_ent *e = known_get(ud, tg_str_c(app), tg_str_c(id));
    if (!e) return TG_ENOMEM;
    e->first = first;
    return TG_OK;
}

/* Records v's customer unless the table has it from an earlier (or the
 * same) time: first_seen_ms and plan come from the customer's earliest
 * record, whatever order records arrive in. */
static int note_customer(tg_store *s, const tg_record_view *v, tg_errmsg *err)
{
    if (!v->customer.n) return TG_OK; /* no customer attributed */
    tg_sq_known *k = &s->known;
    int rc = TG_OK;
    if (!k->loaded) {
        tg_arena_init(&k->arena);
        k->loaded = true;
        if ((rc = tg_store_each_customer(s, load_known, k, err))) {
            if (rc == TG_ENOMEM) tg_errmsg_set(err, "%s: out of memory", s->path);
            return rc;
        }
    }
    tg_sq_known_ent *e = known_get(k, v->app, v->customer);
    if (!e) return tg_errmsg_set(err, "%s: out of memory", s->path), TG_ENOMEM;
    if (e->first <= v->t_start_ms) return TG_OK;
    e->first = v->t_start_ms;
    sqlite3_stmt *st = s->ins_customer;
    sqlite3_bind_text(st, 1, v->app.p, (int)v->app.n, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, v->customer.p, (int)v->customer.n, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, v->plan.p, (int)v->plan.n, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, v->t_start_ms);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? TG_OK : tg_sq_fail(s, err, "recording a customer");
}

/* Adds a late record to every aggregate. The month of a day is cached:
 * gmtime per record would cost more than the rest of the add. */
static int aggregate(tg_store *s, const tg_usage_rec *r, int64_t *day_c, int64_t *month_c)
{
    int64_t day = tg_bucket_day(r->t_start_ms);
    if (day != *day_c) {
        *day_c = day;
        *month_c = tg_bucket_month(day);
    }
    uint64_t hd = tg_agg_key_hash(r, TG_AGG_DIMS), hu = tg_agg_key_hash(r, TG_AGG_USER);
    int rc = tg_agg_add(&s->agg[AGG_DAY], r, day, hd);
    if (!rc) rc = tg_agg_add(&s->agg[AGG_MONTH], r, *month_c, hd);
    if (!rc) rc = tg_agg_add(&s->agg[AGG_USER_DAY], r, day, hu);
    if (!rc) rc = tg_agg_add(&s->agg[AGG_USER_MONTH], r, *month_c, hu);
    return rc;
}

/* ---- folding ---- */

/* A lower bound of the first record id time at or after `at`: the
 * earliest start of the chunks that hold any (a chunk can also hold
 * earlier ones). 1 and *ms, 0 when no chunk does. */
static int next_record(tg_store *s, int64_t at, int64_t *ms, tg_errmsg *err)
{
    sqlite3_bind_int64(s->first_ms, 1, at);
    int rc = sqlite3_step(s->first_ms), found = 0;
    if (rc == SQLITE_ROW && sqlite3_column_type(s->first_ms, 0) == SQLITE_INTEGER) {
        *ms = sqlite3_column_int64(s->first_ms, 0);
        found = 1;
    }
    sqlite3_reset(s->first_ms);
    return rc == SQLITE_ROW ? found : tg_sq_fail(s, err, "finding records");
}

/* Folds, day by day, every record with an id before `target` (a day
 * boundary) that is not folded yet, and moves the frontier there: inside
 * the caller's transaction. *frontier is the new one, for after commit. */
static int fold_until(tg_store *s, int64_t target, int64_t *frontier, tg_errmsg *err)
{
    int64_t at = s->frontier, ms = 0;
    int rc, found;
    *frontier = s->frontier;
    if (target <= at) return TG_OK;
    /* at: a day boundary, everything before it folded; ms: a lower bound
     * of the next record at or after it (next_record) */
    while ((found = next_record(s, at, &ms, err)) == 1) {
        int64_t day = tg_bucket_day(ms > at ? ms : at); /* >= at: at is a day boundary */
        if (day >= target) break;
        if ((rc = tg_sq_fold_range(s, day, day + MS_DAY, err))) return rc;
        at = day + MS_DAY;
    }
    if (found < 0) return found;
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(s->db, "UPDATE fold_state SET frontier_ms = ?1", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, target);
        rc = sqlite3_step(st) == SQLITE_DONE ? TG_OK : TG_EIO;
    }
    sqlite3_finalize(st);
    if (rc) return tg_sq_fail(s, err, "moving the fold frontier");
    *frontier = target;
    return TG_OK;
}

/* The day boundary before which ids are folded, given the newest id time
 * seen: a day closes TG_STORE_FOLD_GRACE_MS after it ends, so records of
 * requests that straddle midnight still arrive before their day is
 * folded and take the cheap path. */
static int64_t fold_target(int64_t newest_ms)
{
    return tg_bucket_day(newest_ms - TG_STORE_FOLD_GRACE_MS);
}

/* ---- put ---- */

/* The slice as one usage row: each record's length (4 bytes,
 * little-endian) and encoding, end to end. */
static int insert_chunk(tg_store *s, const tg_record_view *v, const uint8_t *const *rec,
                        const size_t *len, size_t n, tg_errmsg *err)
{
    tg_buf *c = &s->chunk;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    tg_buf_clear(c);
    for (size_t i = 0; i < n; i++) {
        uint32_t l = htole32((uint32_t)len[i]);
        if (tg_buf_append(c, &l, 4) || tg_buf_append(c, rec[i], len[i]))
            return tg_errmsg_set(err, "%s: out of memory", s->path), TG_ENOMEM;
        int64_t ms = tg_sq_id_ms(v[i].id);
        if (ms < lo) lo = ms;
        if (ms > hi) hi = ms;
    }
    sqlite3_stmt *st = s->ins_usage;
    sqlite3_bind_int64(st, 1, lo);
    sqlite3_bind_int64(st, 2, hi);
    sqlite3_bind_int64(st, 3, (int64_t)n);
    sqlite3_bind_blob(st, 4, c->p, (int)c->n, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? TG_OK : tg_sq_fail(s, err, "inserting usage");
}

static int not_an_outcome(tg_store *s, tg_errmsg *err)
{
    return tg_errmsg_set(err, "%s: a usage record to store is not a valid outcome", s->path);
}

/* The whole record i of a slice, for the rollups, in *out: recs[i] when
 * the put was given records, else rec[i] decoded into s->slice[i] (the
 * aggregates point into it until the slice is written out). */
static int full_record(tg_store *s, const tg_usage_rec *recs, const uint8_t *const *rec,
                       const size_t *len, size_t i, const tg_usage_rec **out, tg_errmsg *err)
{
    bool intent;
    if (recs) {
        *out = &recs[i];
        return TG_OK;
    }
    if (!s->slice && !(s->slice = malloc(TG_SQ_SLICE * sizeof *s->slice)))
        return tg_errmsg_set(err, "%s: out of memory", s->path), TG_ENOMEM;
    if (tg_record_decode(rec[i], len[i], &s->slice[i], &intent) || intent)
        return not_an_outcome(s, err);
    *out = &s->slice[i];
    return TG_OK;
}

/* One slice: rec[i] is len[i] bytes with marks marks[i], the encoding of
 * recs[i] when the put was given records (recs NULL otherwise). A record
 * is read in place (tg_record_view_at); only one that lands before the
 * frontier is decoded whole, to go into the rollups. The aggregates point into the
 * records, so they are written out before the next slice replaces them.
 *
 * A batch takes the ledger thread milliseconds. Where it shares a core with
 * a worker, a request arriving meanwhile would wait for the scheduler to
 * preempt the ledger (p99 at one connection on one core went from 75 us to
 * 2.6 ms), so each slice first offers the core (sched_yield). */
static int put_slice(tg_store *s, const tg_usage_rec *recs, const uint8_t *const *rec,
                     const size_t *len, const tg_record_marks *marks, size_t n, int64_t *newest,
                     tg_errmsg *err)
{
    tg_record_view v[TG_SQ_SLICE];
    int rc = TG_OK;
    int64_t day_c = INT64_MIN, month_c = 0;
    for (size_t i = 0; i < n; i++)
        if (tg_record_view_at(rec[i], len[i], &marks[i], &v[i]) || v[i].intent)
            return not_an_outcome(s, err);
    for (int i = 0; i < AGG_COUNT_ && !rc; i++) rc = tg_agg_reset(&s->agg[i], n);
    if (rc) return tg_errmsg_set(err, "%s: out of memory", s->path), TG_ENOMEM;
    sched_yield();
    if ((rc = insert_chunk(s, v, rec, len, n, err))) return rc;
    for (size_t i = 0; i < n; i++) {
        int64_t ms = tg_sq_id_ms(v[i].id);
        if (ms > *newest) *newest = ms;
        if ((rc = note_customer(s, &v[i], err))) return rc;
        if (v[i].credits > 0 && v[i].customer.n && (rc = tg_sq_burn_record(s, &v[i], err)))
            return rc;
        if (ms >= s->frontier) continue;
        const tg_usage_rec *r = NULL;
        if ((rc = full_record(s, recs, rec, len, i, &r, err))) return rc;
        if (aggregate(s, r, &day_c, &month_c))
            return tg_errmsg_set(err, "%s: a rollup sum would overflow", s->path);
    }
    for (int k = 0; k < TG_ROLL_COUNT_ && !rc; k++) rc = upsert_rollup(s, k, &s->agg[k], err);
    return rc;
}

/* A batch is given as records (recs) or as their encodings (rec, len,
 * marks); records are encoded here, a slice at a time. */
typedef struct {
    const tg_usage_rec *recs;
    const uint8_t *const *rec;
    const size_t *len;
    const tg_record_marks *marks;
    size_t n;
} put_args;

static int encode_slice(tg_store *s, const tg_usage_rec *recs, size_t n, const uint8_t **rec,
                        size_t *len, tg_record_marks *marks, tg_errmsg *err)
{
    size_t off[TG_SQ_SLICE];
    tg_buf_clear(&s->enc);
    for (size_t i = 0; i < n; i++) {
        tg_record_check(&recs[i]);
        off[i] = s->enc.n;
        int rc = tg_record_encode(&recs[i], false, &s->enc, &marks[i]);
        if (rc == TG_EINVAL)
            return tg_errmsg_set(err, "%s: record %s has a string too long to store", s->path,
                                 recs[i].rid);
        if (rc) return tg_errmsg_set(err, "%s: out of memory", s->path), TG_ENOMEM;
        len[i] = s->enc.n - off[i];
    }
    for (size_t i = 0; i < n; i++) rec[i] = (const uint8_t *)s->enc.p + off[i];
    return TG_OK;
}

static int put_fn(tg_store *s, void *ud, int64_t *frontier, tg_errmsg *err)
{
    put_args *a = ud;
    int64_t newest = INT64_MIN;
    int rc = tg_sq_wallets_refresh(s, err);
    for (size_t off = 0; off < a->n && !rc; off += TG_SQ_SLICE) {
        size_t k = a->n - off < TG_SQ_SLICE ? a->n - off : TG_SQ_SLICE;
        const uint8_t *rec[TG_SQ_SLICE];
        size_t len[TG_SQ_SLICE];
        tg_record_marks marks[TG_SQ_SLICE];
        const tg_record_marks *m = marks;
        const tg_usage_rec *recs = a->recs ? a->recs + off : NULL;
        if (recs) {
            rc = encode_slice(s, recs, k, rec, len, marks, err);
        } else {
            memcpy(rec, a->rec + off, k * sizeof *rec);
            memcpy(len, a->len + off, k * sizeof *len);
            m = a->marks + off;
        }
        if (!rc) rc = put_slice(s, recs, rec, len, m, k, &newest, err);
    }
    *frontier = s->frontier;
    if (!rc) rc = tg_sq_burns_write(s, err);
    if (!rc && newest != INT64_MIN) rc = fold_until(s, fold_target(newest), frontier, err);
    return rc;
}

/* Runs fn in a write transaction; the frontier it reports takes effect
 * only if the commit does. */
static int in_write_txn(tg_store *s, int (*fn)(tg_store *s, void *ud, int64_t *frontier,
                                               tg_errmsg *err),
                        void *ud, tg_errmsg *err)
{
    int64_t frontier = s->frontier;
    int rc;
    if (s->ro) return tg_errmsg_set(err, "%s: opened read-only", s->path);
    if ((rc = prepare_put(s, err)) || (rc = tg_sq_exec(s, "BEGIN IMMEDIATE", err))) return rc;
    rc = fn(s, ud, &frontier, err);
    if (!rc) rc = tg_sq_exec(s, "COMMIT", err);
    if (rc) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        /* they may hold customers and burns the rollback took back */
        tg_sq_known_drop(&s->known);
        tg_sq_wallets_drop(s);
        tg_sq_burns_reset(s);
    } else {
        s->frontier = frontier;
    }
    return rc;
}

int tg_store_put(tg_store *s, const tg_usage_rec *recs, size_t n, tg_errmsg *err)
{
    put_args a = {.recs = recs, .n = n};
    return in_write_txn(s, put_fn, &a, err);
}

int tg_store_put_encoded(tg_store *s, const uint8_t *const *rec, const size_t *len,
                         const tg_record_marks *marks, size_t n, tg_errmsg *err)
{
    put_args a = {.rec = rec, .len = len, .marks = marks, .n = n};
    return in_write_txn(s, put_fn, &a, err);
}

static int fold_fn(tg_store *s, void *ud, int64_t *frontier, tg_errmsg *err)
{
    return fold_until(s, fold_target(*(const int64_t *)ud), frontier, err);
}

int tg_store_fold(tg_store *s, int64_t now_ms, tg_errmsg *err)
{
    return in_write_txn(s, fold_fn, &now_ms, err);
}

/* ---- replays ---- */

/* The candidates of tg_store_drop_known: their ids in a hash set, and
 * their id times sorted, to tell which chunks can hold one. */
typedef struct {
    tg_usage_rec *recs;
    size_t n;
    int64_t *ms;      /* sorted */
    uint32_t *slots;  /* index + 1 into recs, 0 empty; cap of them */
    size_t cap;
    bool *known;
} known_ids;

static uint32_t *id_slot(const known_ids *k, const uint8_t *id)
{
    uint64_t h = tg_hash64(id, TG_RECORD_ID_LEN, 0x1d5);
    size_t j = h & (k->cap - 1);
    for (; k->slots[j]; j = (j + 1) & (k->cap - 1))
        if (!memcmp(k->recs[k->slots[j] - 1].id, id, TG_RECORD_ID_LEN)) break;
    return &k->slots[j];
}

static int note_known(void *ud, const tg_usage_rec *r)
{
    known_ids *k = ud;
    uint32_t *slot = id_slot(k, r->id);
    if (*slot) k->known[*slot - 1] = true;
    return TG_OK;
}

static int cmp_ms(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Whether some candidate's id time is in [lo, hi]. */
static bool any_in(const known_ids *k, int64_t lo, int64_t hi)
{
    size_t a = 0, b = k->n;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (k->ms[m] < lo) a = m + 1;
        else b = m;
    }
    return a < k->n && k->ms[a] <= hi;
}

/* Walks the chunks that can hold a candidate (by their time range; only
 * those are read whole) and marks the candidates found. */
static int find_known(tg_store *s, known_ids *k, tg_errmsg *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT seq, lo_ms, hi_ms, recs FROM usage WHERE hi_ms >= ?1 AND"
                           " lo_ms <= ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return tg_sq_fail(s, err, "looking for replayed records");
    sqlite3_bind_int64(st, 1, k->ms[0]);
    sqlite3_bind_int64(st, 2, k->ms[k->n - 1]);
    int rc = TG_OK, step;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW)
        if (any_in(k, sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2)))
            rc = tg_sq_chunk_records(s, st, 3, INT64_MIN, INT64_MAX, note_known, k, err);
    if (!rc && step != SQLITE_DONE) rc = tg_sq_fail(s, err, "looking for replayed records");
    sqlite3_finalize(st);
    return rc;
}

int tg_store_drop_known(tg_store *s, tg_usage_rec *recs, size_t *n, tg_errmsg *err)
{
    known_ids k = {.recs = recs, .n = *n, .cap = 16};
    if (!k.n) return TG_OK;
    while (k.cap < 2 * k.n) k.cap *= 2;
    k.ms = malloc(k.n * sizeof *k.ms);
    k.slots = calloc(k.cap, sizeof *k.slots);
    k.known = calloc(k.n, sizeof *k.known);
    int rc = TG_ENOMEM;
    if (!k.ms || !k.slots || !k.known) goto out;
    for (size_t i = 0; i < k.n; i++) {
        k.ms[i] = tg_sq_id_ms(recs[i].id);
        uint32_t *slot = id_slot(&k, recs[i].id);
        if (!*slot) *slot = (uint32_t)(i + 1);
    }
    qsort(k.ms, k.n, sizeof *k.ms, cmp_ms);
    if ((rc = find_known(s, &k, err))) goto out;
    size_t keep = 0;
    for (size_t i = 0; i < k.n; i++)
        if (!k.known[i]) recs[keep++] = recs[i];
    *n = keep;
out:
    if (rc == TG_ENOMEM) tg_errmsg_set(err, "%s: out of memory", s->path);
    free(k.ms);
    free(k.slots);
    free(k.known);
    return rc;
}
