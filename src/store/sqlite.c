/* The SQLite store: opening, migrations, closing, and the helpers its
 * other files share. See store.h for the contract, migrations.c for the
 * schema, sqlite_int.h for how rollups are kept (folding), put.c for
 * writing and scan.c for reading. */
#include "store/sqlite_int.h"

#include "base/clock.h"
#include "store/migrations.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const tg_store_rollup_tables_[TG_ROLL_COUNT_] = {
    "rollup_day", "rollup_month", "rollup_user_day", "rollup_user_month"};

/* ---- shared helpers ---- */

int tg_sq_fail(tg_store *s, tg_errmsg *err, const char *what)
{
    tg_errmsg_set(err, "%s: %s: %s", s->path, what, s->db ? sqlite3_errmsg(s->db) : "no memory");
    return TG_EIO;
}

int tg_sq_exec(tg_store *s, const char *sql, tg_errmsg *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) == SQLITE_OK) return TG_OK;
    tg_errmsg_set(err, "%s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    return TG_EIO;
}

int tg_sq_prepare(tg_store *s, sqlite3_stmt **st, const char *sql, tg_errmsg *err)
{
    if (*st) return TG_OK;
    return sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK
               ? TG_OK
               : tg_sq_fail(s, err, "preparing a statement");
}

int tg_sq_frontier(tg_store *s, int64_t *out, tg_errmsg *err)
{
    int rc = tg_sq_prepare(s, &s->frontier_get, "SELECT frontier_ms FROM fold_state", err);
    if (rc) return rc;
    rc = sqlite3_step(s->frontier_get);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(s->frontier_get, 0) : 0;
    sqlite3_reset(s->frontier_get);
    return rc == SQLITE_ROW ? TG_OK : tg_sq_fail(s, err, "reading the fold frontier");
}

int64_t tg_sq_id_ms(const uint8_t *id)
{
    uint64_t v = 0;
    for (int i = 0; i < 6; i++) v = v << 8 | id[i];
    return (int64_t)v;
}

int tg_sq_chunk_records(tg_store *s, sqlite3_stmt *st, int col, int64_t from, int64_t to,
                        int (*fn)(void *ud, const tg_usage_rec *r), void *ud, tg_errmsg *err)
{
    const uint8_t *p = sqlite3_column_blob(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col), at = 0;
    tg_usage_rec r;
    while (at < n) {
        uint32_t len = 0;
        bool intent = true;
        if (n - at >= 4) memcpy(&len, p + at, 4), len = le32toh(len);
        if (n - at < 4 || len > n - at - 4 || tg_record_decode(p + at + 4, len, &r, &intent) ||
            intent) {
            tg_errmsg_set(err, "%s: usage chunk %lld does not hold a valid record at byte %zu",
                          s->path, (long long)sqlite3_column_int64(st, 0), at);
            return TG_EIO;
        }
        at += 4 + (size_t)len;
        int64_t ms = tg_sq_id_ms(r.id);
        if (ms < from || ms >= to) continue;
        int rc = fn(ud, &r);
        if (rc) return rc;
    }
    return TG_OK;
}

int tg_sq_each_usage(tg_store *s, int64_t from, int64_t to,
                     int (*fn)(void *ud, const tg_usage_rec *r), void *ud, tg_errmsg *err)
{
    int rc = tg_sq_prepare(s, &s->usage_rd,
                           "SELECT seq, recs FROM usage WHERE hi_ms >= ?1 AND lo_ms < ?2", err);
    if (rc) return rc;
    sqlite3_stmt *st = s->usage_rd;
    sqlite3_bind_int64(st, 1, from);
    sqlite3_bind_int64(st, 2, to);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW)
        if ((rc = tg_sq_chunk_records(s, st, 1, from, to, fn, ud, err))) break;
    if (!rc && step != SQLITE_DONE) rc = tg_sq_fail(s, err, "reading usage");
    sqlite3_reset(st);
    return rc;
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
                                                              : tg_sq_fail(s, err, "reading version");
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? TG_OK : tg_sq_fail(s, err, "reading version");
}

static int apply_one(tg_store *s, int v, tg_errmsg *err)
{
    char sql[128];
    int rc = tg_sq_exec(s, tg_store_migrations_[v - 1], err);
    if (rc) return rc;
    snprintf(sql, sizeof sql, "INSERT INTO schema_version VALUES (%d, %lld)", v,
             (long long)tg_clock_wall_ms());
    return tg_sq_exec(s, sql, err);
}

/* Each migration in its own transaction, the version read inside the same
 * one: two processes migrating at once apply each migration once. */
static int migrate(tg_store *s, int *applied, int *version, tg_errmsg *err)
{
    int rc = TG_OK, v = 0;
    *applied = 0;
    for (;;) {
        if ((rc = tg_sq_exec(s, "BEGIN IMMEDIATE", err))) return rc;
        if ((rc = tg_sq_exec(s, TG_STORE_VERSION_TABLE, err)) || (rc = read_version(s, &v, err)))
            goto fail;
        if (v > tg_store_nmigrations_) {
            rc = tg_errmsg_set(err, "%s has schema version %d, newer than this tollgate's (%d)",
                               s->path, v, tg_store_nmigrations_);
            goto fail;
        }
        if (v == tg_store_nmigrations_) break;
        if ((rc = apply_one(s, v + 1, err))) goto fail;
        if ((rc = tg_sq_exec(s, "COMMIT", err))) goto fail;
        ++*applied;
    }
    *version = v;
    return tg_sq_exec(s, "COMMIT", err);
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

/* WAL lets the report readers and the ledger's writer run at once.
 * synchronous=FULL syncs the WAL at every commit: the ledger settles a
 * batch's journal records after its commit, and a settled segment is
 * deleted, so a commit must be on disk before then or a power loss could
 * take a record out of both (NORMAL syncs only at checkpoints). It costs
 * one fsync per batch, on the ledger thread. The writer's page
 * cache is 2 MiB (SQLite's default): usage chunks are only appended and
 * folds walk the rollups in key order, so pages are rarely wanted twice
 * while the OS caches them anyway. bench/ledger_bench (10M records) ran
 * faster with less: 104k records/s at 128 MiB, 113k at 16 MiB, 143k at
 * 2 MiB (the chunked usage table). And the ledger shares its core with a
 * worker in the gateway: with 16 MiB its page traffic evicted the worker's
 * data, whose user time per request, metering on minus off, was +3.0 us
 * against +1.5 us with 2 MiB. */
static int configure(tg_store *s, tg_errmsg *err)
{
    sqlite3_busy_timeout(s->db, 10000);
    if (s->ro) return tg_sq_exec(s, "PRAGMA query_only = 1; PRAGMA cache_size = -65536", err);
    /* page_size only takes on a new file: 16 KiB pages measured ~10%
     * faster appends than 4 KiB */
    return tg_sq_exec(s,
                      "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL;"
                      "PRAGMA synchronous = FULL; PRAGMA cache_size = -2048;"
                      "PRAGMA temp_store = MEMORY",
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
        rc = tg_sq_fail(s, err, "cannot open");
        goto fail;
    }
    if ((rc = configure(s, err))) goto fail;
    int a = 0, v = 0;
    rc = s->ro ? check_version(s, err) : migrate(s, &a, &v, err);
    if (!rc && !s->ro) rc = tg_sq_frontier(s, &s->frontier, err);
    if (rc) goto fail;
    if (applied) *applied = a;
    if (version) *version = s->ro ? tg_store_nmigrations_ : v;
    tg_buf_init(&s->enc, TG_SQ_SLICE * (size_t)TG_RECORD_MAX_LEN);
    tg_buf_init(&s->chunk, TG_SQ_SLICE * (size_t)(TG_RECORD_MAX_LEN + 4));
    for (int i = 0; i < AGG_COUNT_; i++)
        tg_agg_init(&s->agg[i], i >= AGG_USER_DAY ? TG_AGG_USER : TG_AGG_DIMS);
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
    /* every statement the handle prepared, whichever file did it */
    sqlite3_stmt *st;
    while (s->db && (st = sqlite3_next_stmt(s->db, NULL))) sqlite3_finalize(st);
    for (int i = 0; i < AGG_COUNT_; i++) tg_agg_release(&s->agg[i]);
    free(s->slice);
    tg_buf_release(&s->enc);
    tg_buf_release(&s->chunk);
    tg_sq_known_drop(&s->known);
    tg_sq_wallets_drop(s);
    tg_sq_burns_release(s);
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

