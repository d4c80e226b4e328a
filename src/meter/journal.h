/* The journal: usage records made durable before anything else sees them
 * (DESIGN.md, Durability).
 *
 * Before a request goes upstream its worker appends an *intent* (the
 * record as far as it is known, priced for its estimated input), and when
 * it ends, the *outcome* (the whole record). Each worker appends to its own
 * segment files, data_dir/journal/w<WORKER>-<SEQ>.tgj, with write(2): a
 * kill -9 loses nothing that write returned for. fsync follows the policy:
 * `always` after every append (on the worker's thread), `interval` from a
 * flusher thread at most fsync_interval_ms after the append, `never` leaves
 * it to the kernel.
 *
 * A segment rotates when it passes segment_bytes, and is deleted once it is
 * closed and every record in it is settled: an intent when its request's
 * outcome has been committed to the store, an outcome when it has been
 * committed (tg_journal_settle, called by the ledger after each commit).
 *
 * Records are framed [u32 length][u32 crc32c][payload] (little-endian); a
 * torn tail (short frame or bad checksum at the end of a segment, as a
 * crash leaves) ends that segment's replay and is reported, never fatal.
 *
 * At start, before any worker writes, tg_journal_recover reads the
 * segments an earlier process left, in order, and hands the caller every
 * outcome, and for every intent that has none, the intent settled as
 * TG_OUT_INTERRUPTED (status 0, estimated, priced as its intent was). The
 * caller commits them (the store ignores record ids it already has) and
 * then calls tg_journal_recovered, which deletes those segments. */
#ifndef TG_METER_JOURNAL_H
#define TG_METER_JOURNAL_H

#include "base/buf.h"
#include "base/err.h"
#include "conf/config.h"
#include "meter/record.h"

typedef struct tg_journal tg_journal;
typedef struct tg_journal_writer tg_journal_writer;
typedef struct tg_jseg tg_jseg;

/* Which segments hold a request's records, so the ledger can settle them. */
typedef struct {
    tg_jseg *intent;  /* NULL when no intent was written */
    tg_jseg *outcome;
} tg_jticket;

typedef struct {
    uint64_t segments;     /* segments read */
    uint64_t outcomes;     /* outcome records handed over */
    uint64_t interrupted;  /* intents without outcome, settled as interrupted */
    uint64_t torn;         /* segments that ended in a torn or corrupt frame */
} tg_journal_stats;

/* Opens (creating) data_dir/journal. TG_EIO with err naming the path. */
int tg_journal_open(const tg_metering_conf *c, tg_journal **out, tg_errmsg *err);
/* See above. fn returning nonzero stops the replay with that code. */
int tg_journal_recover(tg_journal *j, int (*fn)(void *ud, const tg_usage_rec *r), void *ud,
                       tg_journal_stats *st, tg_errmsg *err);
/* Deletes the segments tg_journal_recover read. */
int tg_journal_recovered(tg_journal *j, tg_errmsg *err);
/* Stops the flusher (a last fsync of everything) and frees j; writers and
 * tickets must be gone. Segments whose records are all settled are
 * deleted, the others stay for the next start. */
void tg_journal_close(tg_journal *j);

/* One per worker thread; used only from that thread. */
tg_journal_writer *tg_journal_writer_new(tg_journal *j, unsigned worker);
void tg_journal_writer_free(tg_journal_writer *w);
/* Append r as an intent / an outcome and record the segment in t (t
 * starts zeroed). TG_EIO when the write fails (the caller refuses the
 * request: nothing unrecorded goes upstream). */
int tg_journal_intent(tg_journal_writer *w, const tg_usage_rec *r, tg_jticket *t);
int tg_journal_outcome(tg_journal_writer *w, const tg_usage_rec *r, tg_jticket *t);
/* The ledger committed the outcome behind t: both segments may go. Any thread. */
void tg_journal_settle(tg_journal *j, const tg_jticket *t);

/* Record encoding, shared with the ledger's queue: a compact, versioned
 * binary form of every field. decode validates everything (lengths,
 * enums, the record invariants) and returns TG_EINVAL on bytes that are
 * not a record, so it is safe on a torn or hostile file. */
int tg_record_encode(const tg_usage_rec *r, bool intent, tg_buf *out);
int tg_record_decode(const uint8_t *p, size_t n, tg_usage_rec *r, bool *intent);

#endif
