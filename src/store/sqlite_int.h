/* Internals shared by the SQLite store's files (sqlite.c: open, close,
 * migrations; put.c: writing and folding; scan.c: reading). See store.h.
 *
 * Folding. Writing every record's deltas into the day and month rollups
 * at every commit would rewrite most pages of those tables each batch
 * (their keys are spread over the whole month), so the ledger could not
 * keep up. Instead the store keeps a frontier, a UTC day boundary in the
 * time of record ids (their first 48 bits are unix ms):
 *   - a record whose id is before the frontier is in every rollup;
 *   - a record at or after it is only in the usage table.
 * tg_store_put inserts records; ones that land before the frontier (late:
 * a journal replay, a request that began long ago) are added to the
 * rollups at once. When a batch carries ids past the end of a day plus
 * TG_STORE_FOLD_GRACE_MS, that day is folded: its usage records are
 * summed into every rollup (fold.c) and the frontier moves past it, in the
 * same transaction. Readers (scan.c) add the usage records at or after the
 * frontier to what the rollups hold, in one read transaction, so a report
 * is exact whatever has been folded. */
#ifndef TG_STORE_SQLITE_INT_H
#define TG_STORE_SQLITE_INT_H

#include "base/arena.h"
#include "base/buf.h"
#include "meter/journal.h"
#include "store/agg.h"
#include "store/store.h"
#include "store/wallet.h"

#include <sqlite3.h>
#include <stdbool.h>

#define TG_STORE_FOLD_GRACE_MS 3600000LL

/* The aggregates of a put's late records: the rollups' order, then customers. */
enum { AGG_DAY, AGG_MONTH, AGG_USER_DAY, AGG_USER_MONTH, AGG_COUNT_ };
/* A put works through its batch this many records at a time: the records
 * of a slice (decoded, or encoded) are what its aggregates point into. */
#define TG_SQ_SLICE 256
#define NFILTERS 4 /* scan filters: none, app, customer, both */

extern const char *const tg_store_rollup_tables_[TG_ROLL_COUNT_];

/* The (app, customer) pairs the customers table has, as far as the writer
 * knows (put.c): loaded on the first put, dropped on a rollback. */
typedef struct {
    uint64_t hash;
    tg_str app, cust;       /* app.p NULL: an empty slot */
    int64_t first;          /* first_seen_ms in the table */
} tg_sq_known_ent;
typedef struct {
    tg_sq_known_ent *e; /* open addressing, cap a power of two */
    size_t n, cap;
    tg_arena arena;
    bool loaded;
} tg_sq_known;
void tg_sq_known_drop(tg_sq_known *k);

/* The writer's wallets (wallet.c): per customer, the grants it burns from
 * and what they have left; stale after another handle added a grant. */
typedef struct {
    uint64_t hash;
    tg_str app, customer;
    tg_grant *g;          /* in burn order */
    size_t n, cap;
    bool stale;
} tg_sq_wallet;
typedef struct {
    tg_sq_wallet **e; /* open addressing, cap a power of two; each wallet is
                         allocated once and never moves: a put's pending
                         burns point at them while the table grows */
    size_t n, cap;
    tg_arena arena;
    bool arena_ready;
    int64_t seen_tx;  /* the last grant transaction the writer looked at */
} tg_sq_wallets;
void tg_sq_wallets_drop(tg_store *s);
/* Forgets the wallets of customers whose grants another handle changed
 * since the last look (inside the caller's transaction). TG_EIO. */
int tg_sq_wallets_refresh(tg_store *s, tg_errmsg *err);

/* A put's burn of one customer and period, written at its end. */
typedef struct {
    tg_sq_wallet *wallet;
    char period[8];
    int64_t t_ms;         /* the latest record start */
    int64_t records;
    tg_nanos charge;
    tg_ncredits total, overage;
    struct {
        char id[TG_GRANT_ID_MAX + 1];
        tg_ncredits credits;
    } *takes;
    size_t ntakes, captakes;
} tg_sq_burn;
typedef struct {
    tg_sq_burn *v;
    size_t n, cap;
    /* the terms of the last (app, plan) burned, for this put: records of
     * one app and plan come in runs */
    char app[TG_TAG_MAX + 1], plan[TG_TAG_MAX + 1];
    tg_store_terms terms;
    bool have_terms;
} tg_sq_burns;
/* Burns v's credits (v->credits > 0) into the put's pending burns. */
int tg_sq_burn_record(tg_store *s, const tg_record_view *v, tg_errmsg *err);
/* Writes the pending burns (inside the put's transaction) and clears them. */
int tg_sq_burns_write(tg_store *s, tg_errmsg *err);
void tg_sq_burns_reset(tg_store *s);
void tg_sq_burns_release(tg_store *s);

struct tg_store {
    sqlite3 *db;
    char *path;
    bool ro;
    int64_t frontier; /* writer: fold_state.frontier_ms, read at open, kept current */
    sqlite3_stmt *ins_usage;
    sqlite3_stmt *usage_rd;   /* tg_sq_each_usage */
    sqlite3_stmt *up_roll[TG_ROLL_COUNT_];
    sqlite3_stmt *add_roll[TG_ROLL_COUNT_];
    sqlite3_stmt *ins_customer;
    sqlite3_stmt *first_ms;
    sqlite3_stmt *frontier_get;
    sqlite3_stmt *next_bucket[TG_ROLL_COUNT_];
    sqlite3_stmt *scan[TG_ROLL_COUNT_][NFILTERS];
    tg_agg agg[AGG_COUNT_];
    tg_usage_rec *slice;  /* TG_SQ_SLICE records, decoded by a put (malloc'd on first use) */
    tg_buf enc;           /* a slice's records, encoded by a put */
    tg_buf chunk;         /* a slice's records as one usage row */
    tg_sq_known known;
    /* wallets (wallet.c) */
    tg_store_terms_fn terms;
    void *terms_ud;
    tg_sq_wallets wallets;
    tg_sq_burns burns;
    sqlite3_stmt *w_entry, *w_tx, *w_grant, *w_grants, *w_day, *w_burn_add, *w_balance,
        *w_close, *w_poll;
    /* webhook events (webhooks.c) */
    sqlite3_stmt *h_add, *h_due, *h_next, *h_try, *h_list;
};

/* TG_EIO with err = "<path>: <what>: <SQLite's message>". */
int tg_sq_fail(tg_store *s, tg_errmsg *err, const char *what);
/* sqlite3_exec of sql; TG_EIO with err set. */
int tg_sq_exec(tg_store *s, const char *sql, tg_errmsg *err);
/* Prepares *st once per handle (a no-op when already done). */
int tg_sq_prepare(tg_store *s, sqlite3_stmt **st, const char *sql, tg_errmsg *err);
/* Reads fold_state.frontier_ms. */
int tg_sq_frontier(tg_store *s, int64_t *out, tg_errmsg *err);
/* Prepares s->add_roll[k]: an UPDATE adding measures to an existing row of
 * rollup k, with the parameters of s->up_roll[k]. */
int tg_sq_prepare_add(tg_store *s, int k, tg_errmsg *err);
/* Binds m's TG_SQ_NMEASURES measures from parameter i on, in
 * TG_SQ_MEASURE_COLS order. */
void tg_sq_bind_measures(sqlite3_stmt *st, int i, const tg_measures *m);
/* Sums the usage records with ids in [from, to) into every rollup (fold.c);
 * inside the caller's transaction, with the put statements prepared. */
int tg_sq_fold_range(tg_store *s, int64_t from, int64_t to, tg_errmsg *err);
/* The unix ms in an id's first 48 bits. */
int64_t tg_sq_id_ms(const uint8_t *id);
/* Calls fn for each record of the usage chunk in column col of st's row
 * (column 0 its seq) whose id time is in [from, to). */
int tg_sq_chunk_records(tg_store *s, sqlite3_stmt *st, int col, int64_t from, int64_t to,
                        int (*fn)(void *ud, const tg_usage_rec *r), void *ud, tg_errmsg *err);
/* Calls fn for every stored record whose id time is in [from, to), chunk
 * by chunk (roughly in commit order, not sorted). fn returning nonzero
 * stops with that code; TG_EIO on a database error or a chunk that does
 * not decode (err names it). Not reentrant on one handle. */
int tg_sq_each_usage(tg_store *s, int64_t from, int64_t to,
                     int (*fn)(void *ud, const tg_usage_rec *r), void *ud, tg_errmsg *err);

/* The rollups' measure columns (tg_measures), as migrations made them. */
#define TG_SQ_NMEASURES 15
#define TG_SQ_MEASURE_COLS                                                                        \
    "requests, errors, interrupted, estimated, prompt, cached, cache_write, completion,"          \
    " reasoning, cost, charge, margin, fee, asked_cost, attempts"
#define TG_SQ_DIM_KEY                                                                             \
    "bucket, app, customer, workspace, feature, workflow, model, offering, provider, route"
#define TG_SQ_USER_KEY "bucket, app, customer, user_id"

#endif
