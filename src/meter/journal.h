/* The journal: usage records made durable before anything else sees them
 * (DESIGN.md, Durability).
 *
 * Before a request goes upstream its worker appends an *intent* (the
 * record as far as it is known, priced for its estimated input), and when
 * it ends, the *outcome* (the whole record). Each worker appends to its own
 * segment files, data_dir/journal/w<WORKER>-<SEQ>.tgj, with write(2): a
 * kill -9 loses nothing that write returned for. The writer holds what is
 * appended and writes it at tg_journal_writer_flush, which the worker
 * calls once the I/O of a loop turn has been handled and again before the
 * loop waits, so one write(2) carries the turn's intents and outcomes. An
 * intent is in the file only once a flush after it returned TG_OK: the
 * worker starts a request's upstream call only then, and refuses the
 * request if that flush failed, so nothing unrecorded goes upstream. A
 * kill -9 before the flush loses the turn's intents, of requests that had
 * not gone upstream (their clients see the connection drop), and the
 * outcomes of requests that ended in the turn: the next start settles
 * those from their intents as interrupted, as if the crash had come a
 * moment earlier. fsync follows the policy: `always` at every flush (one
 * fsync for a turn's intents: group commit), and an outcome is written and
 * fsynced at once, with whatever is held; `interval` from a flusher thread
 * at most fsync_interval_ms after the write, `never` leaves it to the
 * kernel.
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

/* What the store needs of most records, read in place: the ledger's
 * records are on time and need only this, and copying every field into a
 * ~2 KB tg_usage_rec was about a quarter of what a record cost it. The
 * strings are views into the bytes (not NUL-terminated). */
typedef struct {
    const uint8_t *id; /* TG_RECORD_ID_LEN bytes */
    int64_t t_start_ms;
    tg_str app, customer, plan;
    int64_t credits;   /* what the wallet burns */
    tg_nanos charge;
    bool intent;
} tg_record_view;

/* Where tg_record_encode put what a view holds, as it wrote the bytes:
 * the time, credits and charge, and the offsets of the app, customer and
 * plan strings' length bytes. With them the ledger reads its records in place without
 * parsing them (finding those strings behind 14 varints and two strings
 * was a fifth of what the ledger thread spent per record). */
typedef struct {
    int64_t t_start_ms;
    int64_t credits;
    tg_nanos charge;
    uint16_t app, customer, plan;
} tg_record_marks;

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

/* Opens (creating) data_dir/journal. TG_EIO with err naming the path.
 * Takes an flock on data_dir/journal/lock, so a second process on the
 * same data_dir fails here (TG_EIO) rather than deleting the first one's
 * segments. Lists the segments already there (those tg_journal_recover
 * reads); new segments are numbered from one past the largest SEQ found,
 * one counter for all workers, so SEQ order is append order. Under
 * `interval` it starts the flusher thread. */
int tg_journal_open(const tg_metering_conf *c, tg_journal **out, tg_errmsg *err);
/* See above. fn returning nonzero stops the replay with that code.
 * Outcomes come in file order, then the interrupted intents in file
 * order; an id seen twice is handed over once. TG_EIO when a segment
 * cannot be read, TG_ENOMEM; never fails on a torn or corrupt segment (it
 * is logged and counted in st->torn). Keeps ~40 bytes per record read,
 * plus each pending intent encoded, until it returns. Call once. */
int tg_journal_recover(tg_journal *j, int (*fn)(void *ud, const tg_usage_rec *r), void *ud,
                       tg_journal_stats *st, tg_errmsg *err);
/* Deletes the segments tg_journal_recover read, then fsyncs the
 * directory. TG_EINVAL (nothing deleted) unless tg_journal_recover
 * returned TG_OK: what was not handed over stays for the next start. */
int tg_journal_recovered(tg_journal *j, tg_errmsg *err);
/* Stops the flusher (a last fsync of everything) and frees j; writers and
 * tickets must be gone. Segments whose records are all settled are
 * deleted, the others stay for the next start. */
void tg_journal_close(tg_journal *j);

/* One per worker thread; used only from that thread. free writes what w
 * still holds first. */
tg_journal_writer *tg_journal_writer_new(tg_journal *j, unsigned worker);
void tg_journal_writer_free(tg_journal_writer *w);
/* Append r as an intent / an outcome, with the strings s (NULL: r's
 * own; see tg_record_encode_strs), and record in t the segment its
 * frame goes to (t starts zeroed). The frame is held until the next
 * flush or free, or until the held frames pass 64 KiB or the segment is
 * full (then what is held is written first); except an outcome under
 * `always`, which is written and fsynced at once, with what is held.
 *
 * On any error t is untouched and the record is not in the journal:
 * TG_EINVAL for a record tg_record_check would refuse; TG_ENOMEM; TG_EIO
 * when no segment can take it, or when an outcome under `always` cannot
 * be written or fsynced (the batch is cut off, or, if that fails, left as
 * a torn tail that recovery skips; the writer moves to a new segment
 * either way).
 *
 * TG_OK means held (or, for an outcome under `always`, written), and t is
 * valid to settle; whether a held record reaches the file is known only
 * at the flush. An intent: the caller must not call upstream before a
 * later tg_journal_writer_flush returned TG_OK, and refuses the request
 * if it failed. An outcome whose later write fails (logged) is not in the
 * journal, only in the ledger the caller hands it to: its intent stays in
 * the journal until the ledger commits the outcome and settles t, so a
 * crash before then settles the request as interrupted, the same as a
 * failed outcome append. */
int tg_journal_intent(tg_journal_writer *w, const tg_usage_rec *r, const tg_record_strs *s,
                      tg_jticket *t);
int tg_journal_outcome(tg_journal_writer *w, const tg_usage_rec *r, const tg_record_strs *s,
                       tg_jticket *t);
/* Writes what w holds, in one write(2), and under `always` fsyncs. TG_OK:
 * every intent appended before it is in the file (and the outcomes held
 * with them). TG_EIO (logged) when this write failed, or when a write
 * since the previous flush failed that carried held intents (inside an
 * append, above): some intent appended since the previous flush may not
 * be in the file, so the caller refuses every request whose intent it
 * appended since then. Outcomes in a failed write are lost to the journal
 * as above; every ticket stays valid to settle. */
int tg_journal_writer_flush(tg_journal_writer *w);
/* The payload (tg_record_encode's bytes, without the frame header) of the
 * record w appended last, so a caller can keep the bytes the journal
 * encoded rather than encode the record again. *n is its length; *m its
 * marks when it is an outcome (an intent's are not kept). Valid until the
 * next call on w (append, flush, free); NULL (*n 0) before the first
 * append and after one that failed. */
const uint8_t *tg_journal_last_payload(const tg_journal_writer *w, size_t *n, tg_record_marks *m);
/* The ledger committed the outcome behind t: both segments may go. Any thread. */
void tg_journal_settle(tg_journal *j, const tg_jticket *t);

/* Record encoding, shared with the ledger's queue: a compact, versioned
 * binary form of every field. encode fills *m when m is not NULL. decode
 * validates everything (lengths, enums, the record invariants) and
 * returns TG_EINVAL on bytes that are not a record, so it is safe on a
 * torn or hostile file. */
int tg_record_encode(const tg_usage_rec *r, bool intent, tg_buf *out, tg_record_marks *m);
/* The same bytes, with the strings taken from s (all TG_RECORD_NSTR
 * fields; TG_EINVAL otherwise) rather than from r's fields, which it does
 * not read. tg_record_encode is this with tg_record_strs_of. */
int tg_record_encode_strs(const tg_usage_rec *r, const tg_record_strs *s, bool intent, tg_buf *out,
                          tg_record_marks *m);
/* r's strings as s; TG_EINVAL when one has no NUL within TG_TAG_MAX
 * bytes. */
int tg_record_strs_of(const tg_usage_rec *r, tg_record_strs *s);
int tg_record_decode(const uint8_t *p, size_t n, tg_usage_rec *r, bool *intent);

/* The view of p[0..n), bytes tg_record_encode wrote with marks *m. It
 * trusts the pair (the ledger's queue holds what encode gave the journal
 * in this process, which checked every field as it wrote them) and checks
 * only what keeps the view inside p[0..n): the size bounds, the version
 * and flags, and that each marked string lies within the bytes; TG_EINVAL
 * otherwise. It never reads outside p[0..n), whatever the bytes and
 * marks. */
int tg_record_view_at(const uint8_t *p, size_t n, const tg_record_marks *m, tg_record_view *v);

/* The encoding, version 4 (docs/durability.md has the table): a version
 * byte, a flags byte (intent, stream, estimated, attempt), the 16-byte id,
 * the enums, then the status and the integers as varints (LEB128, the
 * integers zigzagged; each value in its one shortest form), attempts and
 * asked_cost as plain varints, then each
 * string as a u8 length and its bytes (no NUL, at most TG_TAG_MAX). tg_record_encode
 * appends to out and refuses (TG_EINVAL, out unchanged) a record that
 * decode would refuse: one that breaks record.h's invariants, or whose
 * strings are not NUL-terminated within TG_TAG_MAX bytes. TG_ETOOBIG /
 * TG_ENOMEM come from out. decode also reads version 3 (no attempts,
 * asked_cost nor attempt flag: 0, 0, false) and version 2 (no credits
 * either: 0). A payload is between these sizes (the shortest is version
 * 2's): */
#define TG_RECORD_VERSION 4
#define TG_RECORD_MIN_LEN 50
#define TG_RECORD_MAX_LEN (2 + TG_RECORD_ID_LEN + 3 + 5 + 14 * 10 + 5 + 9 + 15 * (1 + TG_TAG_MAX))
/* A frame: [u32 payload length][u32 crc32c of the payload][payload]. */
#define TG_JOURNAL_FRAME_HDR 8

/* CRC-32C (Castagnoli, reflected, as iSCSI and ext4 use it), continuing
 * from crc: tg_crc32c(0, "123456789", 9) == 0xE3069283, and
 * tg_crc32c(tg_crc32c(0, a, na), b, nb) is the CRC of a followed by b. */
uint32_t tg_crc32c(uint32_t crc, const void *p, size_t n);
/* The same function, always computed with tables, never with the CPU's
 * CRC instruction that tg_crc32c uses where there is one: the unit tests
 * compare the two. */
uint32_t tg_crc32c_table(uint32_t crc, const void *p, size_t n);

/* Reads the frames of a segment's bytes p[0..n) in order, decoding each
 * and calling fn with the record and its intent flag. Returns TG_OK when
 * p is whole frames only; TG_EINVAL at the first frame that is short (a
 * torn tail), has a length outside the payload sizes above, a wrong
 * checksum or a payload decode refuses; fn's nonzero return as it is (the
 * scan stops there). *consumed is the number of bytes of whole, valid
 * frames before the stop (n on TG_OK; with fn's code, the end of the
 * frame fn refused). Recovery uses it; so does the fuzz target, which is
 * why it is public. Never reads outside p[0..n). */
int tg_journal_scan(const uint8_t *p, size_t n, int (*fn)(void *ud, const tg_usage_rec *r, bool intent),
                    void *ud, size_t *consumed);

#endif
