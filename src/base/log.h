/* Structured logging: one JSON object per line on stderr (or a file).
 *
 * Two paths. tg_log() is for events (start, reload, errors): it formats and
 * writes a line at once. Request lines are hot: each worker builds them into
 * its own batch buffer and hands the batch to tg_log_write() once per loop
 * iteration, so a busy worker makes one write(2) for many requests.
 * A single write(2) of a whole batch keeps lines from different threads from
 * interleaving. Secrets (provider keys, customer keys) are never passed here;
 * keys are logged by their configured id only.
 *
 * Every line starts {"ts":"YYYY-MM-DDTHH:MM:SS.mmmZ","level":"<level>" (UTC,
 * milliseconds). Each thread formats the seconds part once per second, and
 * request lines are written at a cursor (tg_log_line) without printf. */
#ifndef TG_BASE_LOG_H
#define TG_BASE_LOG_H

#include "base/buf.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum { TG_LOG_DEBUG, TG_LOG_INFO, TG_LOG_WARN, TG_LOG_ERROR, TG_LOG_OFF } tg_log_level;

void tg_log_set_level(tg_log_level lvl);
tg_log_level tg_log_get_level(void);
/* Parses "debug|info|warn|error|off"; TG_EINVAL otherwise. */
int tg_log_parse_level(tg_str s, tg_log_level *out);
/* Where lines go (default 2, stderr). */
void tg_log_set_fd(int fd);

/* One event line: {"ts":...,"level":...,"msg":"<formatted>"}. Events are
 * rare (a request's line is the hot path below), so it is marked cold: the
 * branches that log are moved out of the hot code. */
void tg_log(tg_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3), cold));
/* Starts a line in b: {"ts":"...","level":"info" (the caller adds fields
 * and closes it with tg_log_end). */
int tg_log_begin(tg_buf *b, tg_log_level lvl);
int tg_log_end(tg_buf *b);
/* Writes whole lines; retries short writes. */
void tg_log_write(const char *p, size_t n);

/* ---- hot lines, written at a cursor ----
 *
 *     tg_log_line l;
 *     tg_log_line_begin(&l, b, TG_LOG_INFO);
 *     tg_log_kv_str(&l, "rid", rid);        ,"rid":"..."
 *     tg_log_kv_u64(&l, "bytes_in", n);     ,"bytes_in":123
 *     int rc = tg_log_line_end(&l);         }\n
 *
 * Keys are string literals that need no escaping. String values are escaped
 * exactly as tg_jsonw_str does. Room is reserved in b ahead of the cursor,
 * so most appends are a bounds check and a copy. Errors (TG_ETOOBIG past
 * b's cap, TG_ENOMEM) are sticky: later appends write nothing, and
 * tg_log_line_end returns the error and takes the partial line back out of
 * b. The buffer must not be touched between begin and end. */
typedef struct {
    tg_buf *b;
    size_t mark;   /* b->n when the line began */
    char *p, *end; /* cursor, and the end of the room reserved in b */
    int err;
} tg_log_line;

void tg_log_line_begin(tg_log_line *l, tg_buf *b, tg_log_level lvl);
int tg_log_line_end(tg_log_line *l);
/* The slow path of the helpers below: more room, or the sticky error. */
bool tg_log_line_grow_(tg_log_line *l, size_t n);

/* Room for n more bytes at the cursor; false after an error. */
static inline bool tg_log_line_room_(tg_log_line *l, size_t n)
{
    return (size_t)(l->end - l->p) >= n || tg_log_line_grow_(l, n);
}

static inline void tg_log_line_put_(tg_log_line *l, const char *s, size_t n)
{
    memcpy(l->p, s, n);
    l->p += n;
}

#define TG_LOG_KEY_(key) ",\"" key "\":", sizeof(",\"" key "\":") - 1
#define tg_log_kv_str(l, key, v) tg_log_kv_str_((l), TG_LOG_KEY_(key), (v))
#define tg_log_kv_u64(l, key, v) tg_log_kv_u64_((l), TG_LOG_KEY_(key), (v))
#define tg_log_kv_i64(l, key, v) tg_log_kv_i64_((l), TG_LOG_KEY_(key), (v))
#define tg_log_kv_bool(l, key, v) tg_log_kv_bool_((l), TG_LOG_KEY_(key), (v))

/* True when s is printable ASCII but '"' and '\\': JSON takes it as it is. */
bool tg_log_plain_(const char *p, size_t n);
/* Appends key and v through tg_jsonw_str. */
void tg_log_kv_escaped_(tg_log_line *l, const char *key, size_t kn, tg_str v);

static inline void tg_log_kv_str_(tg_log_line *l, const char *key, size_t kn, tg_str v)
{
    if (!tg_log_plain_(v.p, v.n)) {
        tg_log_kv_escaped_(l, key, kn, v);
        return;
    }
    if (!tg_log_line_room_(l, kn + v.n + 2)) return;
    tg_log_line_put_(l, key, kn);
    *l->p++ = '"';
    if (v.n) tg_log_line_put_(l, v.p, v.n); /* v.p may be NULL then */
    *l->p++ = '"';
}

extern const char tg_log_digits_[200]; /* "00" "01" ... "99" */

/* v in decimal at the cursor, two digits at a time; room for 20 bytes is
 * the caller's. */
static inline void tg_log_line_digits_(tg_log_line *l, uint64_t v)
{
    size_t nd = 1;
    for (uint64_t t = 10; nd < 20 && v >= t; t *= 10) nd++;
    char *q = l->p + nd;
    l->p = q;
    while (v >= 100) {
        const char *d = tg_log_digits_ + 2 * (v % 100);
        v /= 100;
        *--q = d[1];
        *--q = d[0];
    }
    if (v >= 10) {
        *--q = tg_log_digits_[2 * v + 1];
        *--q = tg_log_digits_[2 * v];
    } else {
        *--q = (char)('0' + v);
    }
}

static inline void tg_log_kv_u64_(tg_log_line *l, const char *key, size_t kn, uint64_t v)
{
    if (!tg_log_line_room_(l, kn + 20)) return;
    tg_log_line_put_(l, key, kn);
    tg_log_line_digits_(l, v);
}

static inline void tg_log_kv_i64_(tg_log_line *l, const char *key, size_t kn, int64_t v)
{
    if (!tg_log_line_room_(l, kn + 21)) return;
    tg_log_line_put_(l, key, kn);
    if (v < 0) *l->p++ = '-';
    tg_log_line_digits_(l, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);
}

static inline void tg_log_kv_bool_(tg_log_line *l, const char *key, size_t kn, bool v)
{
    if (!tg_log_line_room_(l, kn + 5)) return;
    tg_log_line_put_(l, key, kn);
    if (v) tg_log_line_put_(l, "true", 4);
    else tg_log_line_put_(l, "false", 5);
}

#endif
