/* The schema, as numbered migrations (see migrations.h).
 *
 * Encoding choices, for anyone reading the file with the sqlite3 shell:
 *  - a usage row is a chunk of records, each in the journal's encoding,
 *    version byte first; `tollgate usage --format csv` prints records as
 *    text. A binary that changes the encoding must still decode every
 *    earlier version, or migrate the rows;
 *  - in the rollups, route is its tg_route_kind value (0 primary,
 *    1 fallback, 2 cache, 3 batch, 4 degraded, 5 escalated);
 *  - money is INTEGER nano-USD; times are unix ms (bucket: UTC start of
 *    the day or month); "" means an absent tag.
 *  - the day and month rollups are filled by folding whole days of usage
 *    (see sqlite_int.h), so they lag the usage table by a day at most;
 *    reports add the rows not folded yet. There is no hour rollup: with
 *    real tag cardinality it had a row for almost every record (8.3M rows
 *    for 10M records in bench/ledger_bench), so it saved nothing over
 *    reading usage, and no report read it.
 * Every table is STRICT: a value of the wrong type (a REAL from an
 * overflowing sum) is an error, never a silent conversion. */
#include "store/migrations.h"

/* The measures every rollup keeps (tg_measures), as migration 1 made
 * them; migration 5 adds asked_cost and attempts after fee. */
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
    /* Usage is stored in chunks: each row holds the records of one slice
     * of a ledger batch (up to 256, TG_SQ_SLICE), each as its encoding
     * (meter/journal.h, tg_record_encode: the bytes the journal already
     * wrote for the outcome) behind a 4-byte little-endian length. lo_ms
     * and hi_ms are the earliest and latest start (id time) of its
     * records; readers pick chunks by them and filter records in C.
     * Measured with bench/ledger_bench: a row of 35 typed columns per
     * record cost 3.3 us to insert, a row of its encoding 1.9 us, a chunk
     * well under 1 us per record. Record ids are unique by construction;
     * the store does not index them: the ledger commits each record once,
     * and a journal replay at start asks which of its ids the store has
     * (tg_store_drop_known) before it puts the rest. */
    "CREATE TABLE usage ("
    " seq INTEGER PRIMARY KEY,"
    " lo_ms INTEGER NOT NULL, hi_ms INTEGER NOT NULL CHECK (hi_ms >= lo_ms),"
    " n INTEGER NOT NULL CHECK (n > 0),"
    " recs BLOB NOT NULL"
    ") STRICT;\n"
    "CREATE INDEX usage_hi ON usage (hi_ms);\n"
    DIM_ROLLUP("rollup_day") DIM_ROLLUP("rollup_month")
    USER_ROLLUP("rollup_user_day") USER_ROLLUP("rollup_user_month")
    "CREATE TABLE customers ("
    " app TEXT NOT NULL, id TEXT NOT NULL, plan TEXT NOT NULL, first_seen_ms INTEGER NOT NULL,"
    " PRIMARY KEY (app, id)) STRICT, WITHOUT ROWID;\n"
    /* usage records whose id time (unix ms) is before frontier_ms are in
     * the rollups, the others not yet (sqlite_int.h, Folding) */
    "CREATE TABLE fold_state ("
    " one INTEGER PRIMARY KEY CHECK (one = 1), frontier_ms INTEGER NOT NULL) STRICT;\n"
    "INSERT INTO fold_state VALUES (1, 0);\n";

/* Wallets (issue 4; bill/wallet.h, store/wallet.h): a double-entry
 * ledger of credits. A grant row says what a grant is (its credits, what
 * was paid, priority, validity); every movement of credits is a
 * transaction whose entries sum to zero: a grant moves credits from its
 * source ("source:included", "source:paid", "source:promo") to
 * "grant:<id>"; a burn, one per customer, period and ledger batch, moves
 * them from grants (and "overage", which goes negative) to "usage"; an
 * expiry moves what a grant had left to "expired". A balance is the sum of
 * its account's entries. Credits are INTEGER nano-credits. */
static const char m2_wallets[] =
    "CREATE TABLE grants ("
    " app TEXT NOT NULL, customer TEXT NOT NULL, id TEXT NOT NULL,"
    " kind TEXT NOT NULL CHECK (kind IN ('included', 'paid', 'promo')),"
    " credits INTEGER NOT NULL CHECK (credits > 0),"
    " paid INTEGER NOT NULL CHECK (paid >= 0),"   /* nano-USD paid for it */
    " priority INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL CHECK (expires_ms >= 0)," /* 0: never */
    " closed_ms INTEGER NOT NULL DEFAULT 0,"      /* when its expiry was written */
    " memo TEXT NOT NULL,"
    " PRIMARY KEY (app, customer, id)) STRICT, WITHOUT ROWID;\n"
    "CREATE INDEX grants_open ON grants (expires_ms) WHERE expires_ms > 0 AND closed_ms = 0;\n"
    "CREATE TABLE wallet_tx ("
    " tx INTEGER PRIMARY KEY,"
    " app TEXT NOT NULL, customer TEXT NOT NULL,"
    " t_ms INTEGER NOT NULL,"
    " kind TEXT NOT NULL CHECK (kind IN ('grant', 'burn', 'expire')),"
    " ref TEXT NOT NULL,"                         /* grant, expire: the grant id; burn: the period */
    " records INTEGER NOT NULL CHECK (records >= 0)," /* burn: the usage records it covers */
    " charge INTEGER NOT NULL"                    /* burn: their charge, nano-USD */
    ") STRICT;\n"
    "CREATE INDEX wallet_tx_customer ON wallet_tx (app, customer, kind, ref);\n"
    "CREATE TABLE wallet_entries ("
    " tx INTEGER NOT NULL, account TEXT NOT NULL, credits INTEGER NOT NULL,"
    " PRIMARY KEY (tx, account)) STRICT, WITHOUT ROWID;\n";

/* Threshold webhooks (issue 4; store/webhooks.h): one row per event, at
 * most one per (app, customer, period, threshold), whatever the restarts
 * and races, by the UNIQUE key. payload is the JSON body as it is sent at
 * every attempt; status pending is tried again at next_ms, delivered and
 * failed are final. Times are unix ms (delivered_ms 0: not delivered);
 * last_error is "" until an attempt fails. id is "evt_" and 24 hex
 * digits (bill/webhook.h), what receivers deduplicate by. */
static const char m3_webhooks[] =
    "CREATE TABLE webhook_events ("
    " seq INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"
    " app TEXT NOT NULL, customer TEXT NOT NULL, period TEXT NOT NULL,"
    " threshold INTEGER NOT NULL CHECK (threshold > 0),"
    " payload TEXT NOT NULL,"
    " status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),"
    " attempts INTEGER NOT NULL CHECK (attempts >= 0),"
    " next_ms INTEGER NOT NULL,"
    " last_error TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " delivered_ms INTEGER NOT NULL,"
    " UNIQUE (app, customer, period, threshold)) STRICT;\n"
    "CREATE INDEX webhook_events_due ON webhook_events (next_ms) WHERE status = 'pending';\n";

/* Plans made through the admin API (issue 4; store/plans.h): the JSON
 * body each was made with, validated before it was stored; read after
 * the configuration file at every start and reload. */
static const char m4_plans[] =
    "CREATE TABLE plans ("
    " id TEXT PRIMARY KEY,"
    " body TEXT NOT NULL,"
    " updated_ms INTEGER NOT NULL"
    ") STRICT, WITHOUT ROWID;\n";

/* Routing (issue 5): every rollup gains asked_cost (nano-USD: what the
 * served tokens would have cost at the models asked for, so a report's
 * savings are asked_cost - cost) and attempts (the upstream calls the
 * requests made), in tg_measures order after fee. Rows already there sum
 * records from before routing, which were served as asked: their
 * asked_cost is their cost (as those records decode, meter/codec.c), so
 * a report reaching back before the upgrade saves 0 there, not minus its
 * cost; their attempts stay 0 (unknown). The usage table needs nothing:
 * its chunks hold each record's encoding, and version 4 carries the new
 * fields. */
#define ROUTING_MEASURES(t)                                                                       \
    "ALTER TABLE " t " ADD COLUMN asked_cost INTEGER NOT NULL DEFAULT 0;\n"                       \
    "ALTER TABLE " t " ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;\n"                         \
    "UPDATE " t " SET asked_cost = cost;\n"

static const char m5_routing[] =
    ROUTING_MEASURES("rollup_day") ROUTING_MEASURES("rollup_month")
    ROUTING_MEASURES("rollup_user_day") ROUTING_MEASURES("rollup_user_month");

/* Closing periods (issue 6; store/close.h, bill/close.h, docs/invoices.md).
 * plan_changes: a customer's plans over time, each from t_ms on (0: as
 * far back as anything goes). closes: one row per period closed; at most
 * one is a draft, and periods are finalized in order. through_seq and
 * through_tx are the last usage chunk and wallet transaction the close
 * read: usage of a finalized period stored after them is *late* and goes
 * to the next close. The documents are rows of their own (money INTEGER
 * nano-USD; an amount rounded to cents is still nanos, a multiple of
 * 10,000,000): invoices and their lines, builder statement rows (one per
 * app and customer, "" for usage no customer is billed for) and provider
 * settlement rows (one per provider and offering). A close writes all of
 * them, and its closes row, in one transaction. */
static const char m6_close[] =
    "CREATE TABLE plan_changes ("
    " app TEXT NOT NULL, customer TEXT NOT NULL, t_ms INTEGER NOT NULL, plan TEXT NOT NULL,"
    " PRIMARY KEY (app, customer, t_ms)) STRICT, WITHOUT ROWID;\n"
    "CREATE TABLE closes ("
    " period TEXT PRIMARY KEY,"
    " status TEXT NOT NULL CHECK (status IN ('draft', 'finalized')),"
    " through_seq INTEGER NOT NULL, through_tx INTEGER NOT NULL,"
    " late_seq INTEGER NOT NULL, late_tx INTEGER NOT NULL," /* late usage read: after these */
    " closed_ms INTEGER NOT NULL, finalized_ms INTEGER NOT NULL"
    ") STRICT, WITHOUT ROWID;\n"
    "CREATE TABLE invoices ("
    " id TEXT PRIMARY KEY, period TEXT NOT NULL, app TEXT NOT NULL, customer TEXT NOT NULL,"
    " plan TEXT NOT NULL, start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,"
    " exact INTEGER NOT NULL, subtotal INTEGER NOT NULL, tax INTEGER NOT NULL,"
    " total INTEGER NOT NULL,"
    " records INTEGER NOT NULL, charge INTEGER NOT NULL, cost INTEGER NOT NULL,"
    " fee INTEGER NOT NULL, credits INTEGER NOT NULL, allowance INTEGER NOT NULL,"
    " UNIQUE (period, app, customer)) STRICT, WITHOUT ROWID;\n"
    "CREATE TABLE invoice_lines ("
    " invoice TEXT NOT NULL, n INTEGER NOT NULL, kind TEXT NOT NULL, ref TEXT NOT NULL,"
    " description TEXT NOT NULL, quantity TEXT NOT NULL, unit_price INTEGER NOT NULL,"
    " exact INTEGER NOT NULL, amount INTEGER NOT NULL, credits INTEGER NOT NULL,"
    " records INTEGER NOT NULL,"
    " PRIMARY KEY (invoice, n)) STRICT, WITHOUT ROWID;\n"
    "CREATE TABLE statement_rows ("
    " period TEXT NOT NULL, app TEXT NOT NULL, customer TEXT NOT NULL, invoice TEXT NOT NULL,"
    " records INTEGER NOT NULL, charge INTEGER NOT NULL, margin INTEGER NOT NULL,"
    " billed_exact INTEGER NOT NULL, cost_exact INTEGER NOT NULL, fee_exact INTEGER NOT NULL,"
    " earnings_exact INTEGER NOT NULL, billed INTEGER NOT NULL, cost INTEGER NOT NULL,"
    " fee INTEGER NOT NULL, earnings INTEGER NOT NULL,"
    " PRIMARY KEY (period, app, customer)) STRICT, WITHOUT ROWID;\n"
    "CREATE TABLE settlement_rows ("
    " period TEXT NOT NULL, provider TEXT NOT NULL, offering TEXT NOT NULL,"
    " records INTEGER NOT NULL, prompt INTEGER NOT NULL, cached INTEGER NOT NULL,"
    " cache_write INTEGER NOT NULL, completion INTEGER NOT NULL, reasoning INTEGER NOT NULL,"
    " cost_exact INTEGER NOT NULL, cost INTEGER NOT NULL,"
    " PRIMARY KEY (period, provider, offering)) STRICT, WITHOUT ROWID;\n";

const char *const tg_store_migrations_[] = {
    m1_initial,
    m2_wallets,
    m3_webhooks,
    m4_plans,
    m5_routing,
    m6_close,
};

const int tg_store_nmigrations_ = (int)(sizeof tg_store_migrations_ / sizeof *tg_store_migrations_);
