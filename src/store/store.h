/* The store: where usage records and their rollups live (DESIGN.md, Storage).
 *
 * This is the SQLite backend: one database file (data_dir/ledger.db) in WAL
 * mode, so readers (reports, the admin API) never block the one writer (the
 * ledger thread) and the writer never blocks them. Other processes (the
 * `tollgate report` CLI) open it read-only while the gateway runs.
 *
 * Usage is append-only, stored in chunks of encoded records. The store is
 * an idempotent projection of the journal: a replay keeps out the records
 * the store has (tg_store_drop_known), so rollups count each record exactly
 * once. Rollups by
 * day and month over (app, customer, workspace, feature, workflow, model,
 * offering, provider, route), and by day and month over (app, customer,
 * user), are filled by folding whole days of usage into them
 * (a day is folded in the first put that carries ids an hour past its end;
 * records that arrive later for a folded day go into the rollups at once).
 * A scan adds the usage rows not folded yet to the rollup rows it reads, in
 * one snapshot, so what a reader sees always equals sums over the usage
 * table.
 *
 * Money columns are INTEGER nano-USD in STRICT tables: an addition that
 * overflowed int64 would become a REAL, which a STRICT table refuses, so
 * the transaction fails rather than losing precision.
 *
 * Threads: a tg_store handle is used by one thread at a time. Open one
 * handle per thread that needs one (the ledger thread owns the writer;
 * each report caller opens its own, read-only). */
#ifndef TG_STORE_STORE_H
#define TG_STORE_STORE_H

#include "base/err.h"
#include "base/money.h"
#include "meter/journal.h"
#include "meter/record.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tg_store tg_store;

/* The database file inside a data_dir. */
#define TG_STORE_FILE "ledger.db"

enum {
    /* Read-write: creates the file (and its directory) if missing and
     * applies pending migrations. */
    TG_STORE_RW = 0,
    /* Read-only: the file must exist and be at the binary's schema
     * version (TG_ENOTFOUND / TG_EINVAL otherwise, with err saying to run
     * `tollgate migrate`). */
    TG_STORE_RO = 1,
};

/* Opens path. TG_EIO (err names the path and SQLite's reason),
 * TG_ENOTFOUND (read-only and missing), TG_EINVAL (the schema is newer
 * than this binary, or older and read-only). *out is set only on success. */
int tg_store_open(const char *path, unsigned flags, tg_store **out, tg_errmsg *err);
void tg_store_close(tg_store *s);

/* `tollgate migrate`: opens path read-write (creating it), applies the
 * pending migrations, closes it. *applied is how many ran now, *version
 * the schema version after. Safe while a gateway runs: migrations take
 * the write lock (and wait busy_timeout for it). */
int tg_store_migrate(const char *path, int *applied, int *version, tg_errmsg *err);
/* The schema version this binary writes (the number of migrations). */
int tg_store_schema_version(void);
/* malloc'd "<data_dir>/ledger.db"; NULL on out-of-memory. */
char *tg_store_path(const char *data_dir);

/* Writes n records in one transaction: each is checked (tg_record_check
 * aborts on a broken invariant), stored and added to every rollup. A put
 * does not look for ids the store already has: the ledger commits each
 * record once, and a replay drops what is stored first
 * (tg_store_drop_known). On failure nothing is written (TG_EIO, err says
 * why) and the call may be repeated. */
int tg_store_put(tg_store *s, const tg_usage_rec *recs, size_t n, tg_errmsg *err);
/* The same for records already encoded (tg_record_encode, as outcomes:
 * the journal's bytes, which the ledger queues): rec[i] is len[i] bytes,
 * marks[i] the marks encode reported for them. A record is read in place
 * by its marks (tg_record_view_at), which trusts the pair and checks only
 * that the marked strings lie inside the bytes. A record whose marks do
 * not fit, or an intent, is TG_EINVAL and nothing is written; bytes that
 * are not encode's (only a broken caller could give them) are stored, and
 * the reads that meet them fail, naming their chunk. */
int tg_store_put_encoded(tg_store *s, const uint8_t *const *rec, const size_t *len,
                         const tg_record_marks *marks, size_t n, tg_errmsg *err);
/* Removes from recs[0 .. *n) the records whose ids the store has, keeping
 * the order of the others, and sets *n to how many are left: what makes a
 * journal replay (tollgate starting after a crash) a no-op for what was
 * committed. It reads only the chunks whose time range covers a
 * candidate's id time, so its cost follows the records committed around
 * those times, not the size of the store. The ids in recs must be
 * distinct. TG_EIO, TG_ENOMEM. */
int tg_store_drop_known(tg_store *s, tg_usage_rec *recs, size_t *n, tg_errmsg *err);

/* Folds every day that ended an hour or more before now_ms (unix ms) into
 * the rollups now, instead of at the next put that passes it. Reads see
 * the same sums either way; this only moves work. TG_EIO. */
int tg_store_fold(tg_store *s, int64_t now_ms, tg_errmsg *err);

/* The customers seen in usage records, in (app, id) order: a customer
 * created at runtime (by a key or a header) is remembered here from its
 * first record. fn returning nonzero stops the walk with that code. */
int tg_store_each_customer(tg_store *s,
                           int (*fn)(void *ud, const char *app, const char *id,
                                     const char *plan, int64_t first_seen_ms),
                           void *ud, tg_errmsg *err);

/* ---- rollups, for reports ---- */

/* The sums kept for every rollup key. requests counts client requests:
 * the records that are not attempt records (meter/record.h); errors
 * counts those with outcome failed and interrupted those so flagged;
 * estimated counts every record whose tokens are estimated, attempt
 * records included. Tokens and money sum every record, attempt records
 * included, so charge == cost + margin + fee holds in every sum.
 * asked_cost sums what the served tokens would have cost at the models
 * asked for (attempt records carry 0), attempts the upstream calls the
 * requests made (an attempt record adds none: its request's own record
 * counts every call). */
typedef struct {
    int64_t requests, errors, interrupted, estimated;
    tg_tokens tokens;
    tg_nanos cost, charge, margin, fee;
    tg_nanos asked_cost;
    int64_t attempts;
} tg_measures;

/* Adds b into a; TG_EINVAL when a sum would overflow int64 (a unchanged). */
int tg_measures_add(tg_measures *a, const tg_measures *b);

typedef enum {
    TG_ROLL_DAY = 0,
    TG_ROLL_MONTH,
    TG_ROLL_USER_DAY,   /* keyed by (app, customer, user) */
    TG_ROLL_USER_MONTH,
    TG_ROLL_COUNT_
} tg_rollup_kind;

/* One rollup row, as tg_store_scan hands it over. The strings are valid
 * only during the callback. The dimension rollups leave user ""; the user
 * rollups leave everything but app, customer and user "" (route 0). */
typedef struct {
    int64_t bucket_ms; /* UTC start of the day or month */
    const char *app, *customer, *workspace, *feature, *workflow, *model, *offering, *provider;
    const char *user;
    uint8_t route; /* tg_route_kind */
    tg_measures m;
} tg_rollup_row;

/* Filters for tg_store_scan; NULL or "" matches everything. */
typedef struct {
    const char *app;
    const char *customer;
} tg_scan_filter;

/* Calls fn for every row of rollup k with from_ms <= bucket < to_ms that
 * passes f, then for every usage record not folded yet whose t_start_ms
 * is in [from_ms, to_ms) and passes f, as a row of its own (bucket and
 * key as rollup k would file it). So a key may come more than once: the
 * caller sums. from_ms and to_ms should be bucket boundaries of k. fn
 * returning nonzero stops the scan with that code. TG_EIO on a database
 * error. */
int tg_store_scan(tg_store *s, tg_rollup_kind k, int64_t from_ms, int64_t to_ms,
                  const tg_scan_filter *f, int (*fn)(void *ud, const tg_rollup_row *r), void *ud,
                  tg_errmsg *err);

#endif
