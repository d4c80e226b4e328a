/* Structured JSON-lines logging; see log.h.
 *
 * The request line is the hot path: one per request, on every worker. It is
 * written at a cursor into room reserved ahead in the worker's batch
 * buffer, its timestamp comes from a per-thread cache of the seconds part,
 * and its strings are checked for escaping eight bytes at a time. What it
 * writes is byte for byte what the printf-based code wrote before
 * (tests/unit/test_log.c). */
#include "base/log.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/jsonw.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = TG_LOG_INFO;
static _Atomic int log_fd = 2;
static const char *const names[] = {"debug", "info", "warn", "error", "off"};

void tg_log_set_level(tg_log_level lvl) { atomic_store(&log_level, (int)lvl); }
tg_log_level tg_log_get_level(void) { return (tg_log_level)atomic_load(&log_level); }
void tg_log_set_fd(int fd) { atomic_store(&log_fd, fd); }

int tg_log_parse_level(tg_str s, tg_log_level *out)
{
    for (int i = 0; i <= TG_LOG_OFF; i++)
        if (tg_str_eq(s, tg_str_c(names[i]))) {
            *out = (tg_log_level)i;
            return TG_OK;
        }
    return TG_EINVAL;
}

/* ---- the cursor ---- */

#define LINE_ROOM 512 /* reserved at a time: a request line fits at once */

/* Where a failed line's cursor points: no room, so every later append
 * takes the slow path and sees the error. */
static char no_room[1];

static void line_fail(tg_log_line *l, int rc)
{
    l->err = rc;
    l->p = l->end = no_room;
}

/* Moves l's cursor to the end of what b holds, with room for want bytes,
 * or at least need when want would pass b's cap; sticky errors. */
static bool line_reserve(tg_log_line *l, size_t need, size_t want)
{
    if (l->err) return false;
    tg_buf *b = l->b;
    int rc = tg_buf_reserve(b, want);
    if (rc == TG_ETOOBIG && want > need) rc = tg_buf_reserve(b, need);
    if (rc) {
        line_fail(l, rc);
        return false;
    }
    l->p = b->p + b->n;
    /* All of the allocation but the NUL's byte, and never past the cap. */
    l->end = b->p + (b->cap - 1 < b->max ? b->cap - 1 : b->max);
    return true;
}

bool tg_log_line_grow_(tg_log_line *l, size_t n)
{
    if (l->err) return false;
    l->b->n = (size_t)(l->p - l->b->p);
    return line_reserve(l, n, n > LINE_ROOM ? n : LINE_ROOM);
}

/* ---- the timestamp ---- */

/* The seconds part, formatted once per second per thread: a busy worker
 * writes thousands of lines a second, and gmtime and printf per line were
 * most of the cost of a request line. */
typedef struct {
    time_t sec; /* what head was formatted for; -1: nothing yet */
    size_t n;
    char head[80]; /* {"ts":"YYYY-MM-DDTHH:MM:SS. (room for any int in each field) */
} ts_cache;

static _Thread_local ts_cache tls_ts = {.sec = -1};

/* What follows the milliseconds, one per level. */
#define TAIL_(name) "Z\",\"level\":\"" name "\""
#define TAIL(name) {TAIL_(name), sizeof TAIL_(name) - 1}
static const tg_str tails[] = {TAIL("debug"), TAIL("info"), TAIL("warn"), TAIL("error"), TAIL("off")};
#undef TAIL
#undef TAIL_

void tg_log_line_begin(tg_log_line *l, tg_buf *b, tg_log_level lvl)
{
    l->b = b;
    l->mark = b->n;
    l->err = 0;
    if (!line_reserve(l, 0, LINE_ROOM)) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts_cache *c = &tls_ts;
    if (ts.tv_sec != c->sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        int len = snprintf(c->head, sizeof c->head, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.",
                           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                           tm.tm_sec);
        if (len < 0 || (size_t)len >= sizeof c->head) {
            line_fail(l, TG_EINVAL);
            return;
        }
        c->n = (size_t)len;
        c->sec = ts.tv_sec;
    }
    tg_str tail = tails[lvl];
    if (!tg_log_line_room_(l, c->n + 3 + tail.n)) return;
    unsigned ms = (unsigned)(ts.tv_nsec / 1000000);
    tg_log_line_put_(l, c->head, c->n);
    l->p[0] = (char)('0' + ms / 100);
    l->p[1] = (char)('0' + ms / 10 % 10);
    l->p[2] = (char)('0' + ms % 10);
    l->p += 3;
    tg_log_line_put_(l, tail.p, tail.n);
}

/* Ends the line in b at the cursor, or takes it back out on error. */
static int line_close(tg_log_line *l)
{
    tg_buf *b = l->b;
    b->n = l->err ? l->mark : (size_t)(l->p - b->p);
    if (b->p) b->p[b->n] = '\0';
    return l->err;
}

int tg_log_line_end(tg_log_line *l)
{
    if (tg_log_line_room_(l, 2)) tg_log_line_put_(l, "}\n", 2);
    return line_close(l);
}

/* ---- values ---- */

const char tg_log_digits_[200] = "0001020304050607080910111213141516171819"
                                 "2021222324252627282930313233343536373839"
                                 "4041424344454647484950515253545556575859"
                                 "6061626364656667686970717273747576777879"
                                 "8081828384858687888990919293949596979899";

/* Flags (high bits) the bytes of the word x that JSON does not take as
 * they are: x's own high bit is set for a byte >= 0x80, (x - 0x20..) & ~x
 * has it for one below 0x20, and the zero-byte test on x ^ '"'.. and
 * x ^ '\\'.. for the two that need a backslash. Borrows can flag a byte
 * next to a real hit, never when there is none: zero exactly when every
 * byte is plain. */
static inline uint64_t unplain(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    uint64_t q = x ^ (ones * '"'), s = x ^ (ones * '\\');
    return (x | ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((s - ones) & ~s)) & high;
}

/* True when s is printable ASCII but '"' and '\\', eight bytes at a time.
 * A string shorter than a word is shifted into one padded with 'a'; the
 * tail of a longer one is covered by its last eight bytes, read again. */
bool tg_log_plain_(const char *p, size_t n)
{
    if (n < 8) {
        uint64_t x = 0x6161616161616161u;
        for (size_t i = 0; i < n; i++) x = x << 8 | (unsigned char)p[i];
        return !unplain(x);
    }
    uint64_t bad = 0;
    for (size_t i = 0;; i += 8) {
        if (i > n - 8) i = n - 8;
        uint64_t x;
        memcpy(&x, p + i, 8);
        bad |= unplain(x);
        if (i == n - 8) break;
    }
    return !bad;
}

void tg_log_kv_escaped_(tg_log_line *l, const char *key, size_t kn, tg_str v)
{
    if (l->err) return;
    tg_buf *b = l->b;
    b->n = (size_t)(l->p - b->p);
    int rc = tg_buf_append(b, key, kn);
    if (!rc) rc = tg_jsonw_str(b, v);
    if (rc) line_fail(l, rc);
    else line_reserve(l, 0, LINE_ROOM);
}

/* ---- the event path ---- */

int tg_log_begin(tg_buf *b, tg_log_level lvl)
{
    tg_log_line l;
    tg_log_line_begin(&l, b, lvl);
    return line_close(&l);
}

int tg_log_end(tg_buf *b) { return tg_buf_add_lit(b, "}\n"); }

void tg_log_write(const char *p, size_t n)
{
    int fd = atomic_load(&log_fd);
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return; /* nowhere left to report it */
        }
        p += w;
        n -= (size_t)w;
    }
}

void tg_log(tg_log_level lvl, const char *fmt, ...)
{
    if ((int)lvl < atomic_load(&log_level)) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tg_buf b;
    tg_buf_init(&b, 4096);
    int rc = tg_log_begin(&b, lvl);
    if (!rc) rc = tg_buf_add_lit(&b, ",\"msg\":");
    if (!rc) rc = tg_jsonw_str(&b, tg_str_c(msg));
    if (!rc) rc = tg_log_end(&b);
    if (!rc) tg_log_write(b.p, b.n);
    tg_buf_release(&b);
}
