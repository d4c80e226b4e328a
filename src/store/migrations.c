/* The schema, as numbered migrations (see migrations.h).
 *
 * Encoding choices, for anyone reading the file with the sqlite3 shell:
 *  - ids are the record's 16 raw bytes (time-ordered: 48-bit unix ms
 *    first), so the usage table is appended to in key order;
 *  - enums are their tg_* integer values: endpoint (0 chat, 1 completions,
 *    2 embeddings, 3 messages), route (0 primary, 1 fallback, 2 cache,
 *    3 batch, 4 degraded, 5 escalated), outcome (0 completed, 1 partial,
 *    2 failed, 3 interrupted);
 *  - money is INTEGER nano-USD; times are unix ms (bucket: UTC start of
 *    the hour, day or month); "" means an absent tag.
 *  - the day and month rollups are filled by folding whole days of usage
 *    (see sqlite_int.h), so they lag the usage table by a day at most;
 *    reports add the rows not folded yet.
 * Every table is STRICT: a value of the wrong type (a REAL from an
 * overflowing sum) is an error, never a silent conversion. The usage table
 * has no secondary index: reports read rollups, and every index would slow
 * the ledger. */
#include "store/migrations.h"

/* The measures every rollup keeps (tg_measures). */
#define MEASURES                                                                                  \
    " requests INTEGER NOT NULL, errors INTEGER NOT NULL, interrupted INTEGER NOT NULL,"          \
    " estimated INTEGER NOT NULL, prompt INTEGER NOT NULL, cached INTEGER NOT NULL,"              \
    " cache_write INTEGER NOT NULL, completion INTEGER NOT NULL, reasoning INTEGER NOT NULL,"     \
    " cost INTEGER NOT NULL, charge INTEGER NOT NULL, margin INTEGER NOT NULL,"                   \
    " fee INTEGER NOT NULL,"

#define DIM_ROLLUP(name)                                                                          \
    "CREATE TABLE " name " ("                                                                     \
    " bucket INTEGER NOT NULL, app TEXT NOT NULL, customer TEXT NOT NULL,"                        \
    " workspace TEXT NOT NULL, feature TEXT NOT NULL, workflow TEXT NOT NULL,"                    \
    " model TEXT NOT NULL, offering TEXT NOT NULL, provider TEXT NOT NULL,"                       \
    " route INTEGER NOT NULL," MEASURES                                                           \
    " PRIMARY KEY (bucket, app, customer, workspace, feature, workflow, model, offering,"         \
    " provider, route)) STRICT, WITHOUT ROWID;\n"

#define USER_ROLLUP(name)                                                                         \
    "CREATE TABLE " name " ("                                                                     \
    " bucket INTEGER NOT NULL, app TEXT NOT NULL, customer TEXT NOT NULL,"                        \
    " user_id TEXT NOT NULL," MEASURES " PRIMARY KEY (bucket, app, customer, user_id))"           \
    " STRICT, WITHOUT ROWID;\n"

static const char m1_initial[] =
    /* WITHOUT ROWID: one b-tree keyed by id instead of a rowid table plus a
     * unique index on id. Measured with bench/ledger_bench (1M records):
     * the same speed within noise (50-56k vs 53k records/s), 2% smaller. */
    "CREATE TABLE usage ("
    " id BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),"
    " rid TEXT NOT NULL, key_id TEXT NOT NULL,"
    " app TEXT NOT NULL, customer TEXT NOT NULL, plan TEXT NOT NULL, workspace TEXT NOT NULL,"
    " user_id TEXT NOT NULL, feature TEXT NOT NULL, workflow TEXT NOT NULL, run TEXT NOT NULL,"
    " unit TEXT NOT NULL, unit_count INTEGER NOT NULL,"
    " model TEXT NOT NULL, offering TEXT NOT NULL, provider TEXT NOT NULL, rule TEXT NOT NULL,"
    " t_start_ms INTEGER NOT NULL, latency_us INTEGER NOT NULL, ttft_us INTEGER NOT NULL,"
    " status INTEGER NOT NULL, endpoint INTEGER NOT NULL, route INTEGER NOT NULL,"
    " outcome INTEGER NOT NULL, stream INTEGER NOT NULL, estimated INTEGER NOT NULL,"
    " prompt INTEGER NOT NULL, cached INTEGER NOT NULL, cache_write INTEGER NOT NULL,"
    " completion INTEGER NOT NULL, reasoning INTEGER NOT NULL,"
    " cost INTEGER NOT NULL, charge INTEGER NOT NULL, margin INTEGER NOT NULL,"
    " fee INTEGER NOT NULL,"
    " CHECK (charge = cost + margin + fee)"
    ") STRICT, WITHOUT ROWID;\n"
    DIM_ROLLUP("rollup_hour") DIM_ROLLUP("rollup_day") DIM_ROLLUP("rollup_month")
    USER_ROLLUP("rollup_user_day") USER_ROLLUP("rollup_user_month")
    "CREATE TABLE customers ("
    " app TEXT NOT NULL, id TEXT NOT NULL, plan TEXT NOT NULL, first_seen_ms INTEGER NOT NULL,"
    " PRIMARY KEY (app, id)) STRICT, WITHOUT ROWID;\n"
    /* usage rows whose id (its unix ms) is before frontier_ms are in the
     * rollups, the others not yet (sqlite_int.h, Folding) */
    "CREATE TABLE fold_state ("
    " one INTEGER PRIMARY KEY CHECK (one = 1), frontier_ms INTEGER NOT NULL) STRICT;\n"
    "INSERT INTO fold_state VALUES (1, 0);\n";

const char *const tg_store_migrations_[] = {
    m1_initial,
};

const int tg_store_nmigrations_ = (int)(sizeof tg_store_migrations_ / sizeof *tg_store_migrations_);
