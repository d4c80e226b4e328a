/* The ledger: one background thread that projects usage records into the
 * store in batches (DESIGN.md, the last stage of the request path).
 *
 * Workers hand each finished record to tg_ledger_submit together with its
 * journal ticket; the call copies the record's encoding into a queue and
 * returns (no I/O, a short mutex). The thread commits a batch when it has
 * batch_records or flush_ms has passed, then settles the batch's tickets
 * in the journal. If the store fails, the batch is retried with backoff
 * (50 ms doubling to 5 s, each failure logged) and its records stay in the
 * journal, so nothing is lost.
 *
 * The queue is unbounded by design: submit must never block a worker, and
 * a record may not be dropped. While the store fails the queue grows (each
 * record is its encoding, a few hundred bytes); tg_ledger_stats shows
 * it, and a warning is logged each time the depth doubles past 64 Ki. */
#ifndef TG_STORE_LEDGER_H
#define TG_STORE_LEDGER_H

#include "meter/journal.h"
#include "store/store.h"

typedef struct tg_ledger tg_ledger;

/* Starts the thread over an open store (the ledger owns it from here,
 * also when the call fails). Uses c->batch_records and c->flush_ms (0
 * takes the defaults 8192 and 200). After each commit it calls
 * tg_journal_settle for every record's ticket; j may be NULL (no journal:
 * nothing to settle). TG_ENOMEM, or TG_EIO when the thread cannot start. */
int tg_ledger_start(const tg_metering_conf *c, tg_store *s, tg_journal *j, tg_ledger **out,
                    tg_errmsg *err);

/* The same with the settling step given as a function (tests, or a caller
 * that settles differently): fn(ud, t) runs on the ledger thread after the
 * commit that holds t's record, once per submitted record. fn may be NULL. */
typedef void (*tg_ledger_settle_fn)(void *ud, const tg_jticket *t);
int tg_ledger_start_with(const tg_metering_conf *c, tg_store *s, tg_ledger_settle_fn fn, void *ud,
                         tg_ledger **out, tg_errmsg *err);
/* Calls fn(ud, store) on the ledger thread, between batches, at once and
 * then every every_ms (also when no records come): for work on the store
 * that must be done by its writer (wallets: new grants, expiry). fn must
 * not call into the ledger. */
void tg_ledger_set_tick(tg_ledger *l, void (*fn)(void *ud, tg_store *s), void *ud, uint32_t every_ms);
/* Queues a record, given as its encoding and marks (tg_record_encode as
 * an outcome: the bytes the journal wrote, tg_journal_last_payload),
 * copied, with its ticket. Never fails; never blocks on I/O. The store
 * reads the record in place by its marks (tg_record_view_at), so callers
 * hand over only what the journal's encoder produced, with the marks it
 * reported: a pair that does not fit fails its whole batch at every retry. */
void tg_ledger_submit(tg_ledger *l, const uint8_t *rec, size_t len, const tg_record_marks *m,
                      const tg_jticket *t);
/* Blocks until every record submitted before the call is committed (and
 * settled). While the store keeps failing this waits as long; a caller
 * that needs a bound uses tg_store_put itself. */
void tg_ledger_sync(tg_ledger *l);
/* Commits what is queued, stops the thread, closes the store. If the
 * store still fails after a few last tries, the records not committed are
 * logged as an error and freed: they are not settled, so they stay in the
 * journal and are committed at the next start (without a journal, they
 * are lost, and the log says how many). */
void tg_ledger_stop(tg_ledger *l);

/* Counters for /metrics; any thread, at any time (relaxed reads). */
typedef struct {
    uint64_t submitted; /* records handed to tg_ledger_submit */
    uint64_t committed; /* records in committed batches */
    uint64_t batches;   /* committed transactions */
    uint64_t failures;  /* failed commit attempts (each retried) */
    uint64_t queued;    /* records waiting or in the batch being committed */
} tg_ledger_counts;
void tg_ledger_stats(tg_ledger *l, tg_ledger_counts *out);

#endif
