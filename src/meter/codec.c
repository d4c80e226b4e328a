/* The journal's record codec and framing (see journal.h): a usage record
 * as a compact, versioned binary payload, CRC-32C, and the frame reader
 * recovery and the fuzz target share.
 *
 * decode reads bytes that a crash may have torn or a person may have
 * edited, so it trusts nothing: every length is checked against what is
 * left, every enum against its range, and the record's money and token
 * invariants are checked here (returning TG_EINVAL) rather than with
 * tg_record_check, which aborts. encode runs the same checks, so a record
 * the journal writes is always one recovery can read back: a record that
 * decode refused would end its segment's replay and take the records
 * after it along. */
#include "meter/journal.h"

#include <endian.h>
#include <pthread.h>
#include <string.h>

/* ---- CRC-32C ----
 *
 * x86-64 has had an instruction for exactly this polynomial since SSE4.2
 * (2008): eight bytes a step instead of eight table lookups. It is used
 * when the CPU has it (checked once); elsewhere, and on other
 * architectures, slicing-by-8 over tables built once. Both keep the
 * reflected, un-inverted state; tg_crc32c inverts at the ends. */

static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static uint32_t (*crc_run)(uint32_t c, const uint8_t *p, size_t n);

static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t crc_table(uint32_t c, const uint8_t *p, size_t n)
{
    for (; n >= 8; n -= 8, p += 8) {
        uint32_t lo = rd32(p) ^ c, hi = rd32(p + 4);
        c = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^ crc_tab[5][(lo >> 16) & 0xff] ^
            crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xff] ^ crc_tab[2][(hi >> 8) & 0xff] ^
            crc_tab[1][(hi >> 16) & 0xff] ^ crc_tab[0][hi >> 24];
    }
    while (n--) c = (c >> 8) ^ crc_tab[0][(c ^ *p++) & 0xff];
    return c;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t c, const uint8_t *p, size_t n)
{
    uint64_t c64 = c;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8); /* unaligned; x86 is little-endian like the table path */
        c64 = _mm_crc32_u64(c64, v);
    }
    c = (uint32_t)c64;
    while (n--) c = _mm_crc32_u8(c, *p++);
    return c;
}
#endif

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
    crc_run = crc_table;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) crc_run = crc_sse42;
#endif
}

uint32_t tg_crc32c(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
    return ~crc_run(~crc, p, n);
}

uint32_t tg_crc32c_table(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
    return ~crc_table(~crc, p, n);
}

/* ---- the record ---- */

/* The flags byte. Version 4 added F_ATTEMPT; earlier versions have only
 * the first three bits. */
enum { F_INTENT = 1, F_STREAM = 2, F_ESTIMATED = 4, F_ATTEMPT = 8, F_ALL_V3 = 7, F_ALL = 15 };

/* The string fields, in their order on disk. */
#define NSTR TG_RECORD_NSTR
static void str_fields(tg_usage_rec *r, char *f[NSTR])
{
    char *all[NSTR] = {r->rid,           r->key_id,       r->tags.app,      r->tags.customer,
                       r->tags.plan,     r->tags.workspace, r->tags.user,   r->tags.feature,
                       r->tags.workflow, r->tags.run,     r->tags.unit,     r->model,
                       r->offering,      r->provider,     r->rule};
    memcpy(f, all, sizeof all);
}

/* record.h's invariants, as a test rather than an abort. */
static bool rec_valid(const tg_usage_rec *r)
{
    const tg_tokens *t = &r->tokens;
    if (t->prompt < 0 || t->cached < 0 || t->cache_write < 0 || t->completion < 0 || t->reasoning < 0)
        return false;
    if (t->cached > t->prompt || t->cache_write > t->prompt - t->cached) return false;
    if (t->reasoning > t->completion || r->credits < 0) return false;
    if (r->attempts < 0 || r->asked_cost < 0) return false;
    if ((__int128)r->cost + r->margin + r->fee != r->charge) return false;
    return r->route < TG_RT_COUNT_ && r->outcome < TG_OUT_COUNT_ && r->endpoint < TG_EPK_COUNT_;
}

/* Integers are LEB128 varints, signed ones zigzagged first: a record's
 * integers are mostly small (tokens, latencies, sub-dollar amounts), so
 * they take 1 to 4 bytes instead of 8, and every byte saved is saved in
 * the journal, the ledger's queue and the store. */
static inline uint8_t *put_uv(uint8_t *q, uint64_t v)
{
    while (v >= 0x80) {
        *q++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *q++ = (uint8_t)v;
    return q;
}

static inline uint8_t *put_sv(uint8_t *q, int64_t v)
{
    return put_uv(q, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

/* The varint at *q (before end) into *v; false when it runs past end,
 * takes more than the 10 bytes 64 bits need, or ends in a zero byte
 * (padding): each value has exactly one encoding, so a payload decoded and
 * encoded again is the same bytes. */
static inline bool get_uv(const uint8_t **q, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *q;
    uint64_t x = 0;
    for (int shift = 0; p < end && shift < 64; shift += 7) {
        uint8_t c = *p++;
        if (shift == 63 && c > 1) return false; /* bits past 64 */
        x |= (uint64_t)(c & 0x7f) << shift;
        if (c < 0x80) {
            if (!c && shift) return false; /* a padded encoding: each value has one */
            *q = p;
            *v = x;
            return true;
        }
    }
    return false;
}

static inline bool get_sv(const uint8_t **q, const uint8_t *end, int64_t *v)
{
    uint64_t u;
    if (!get_uv(q, end, &u)) return false;
    *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return true;
}

/* The integers after the header, in order: the same list for both ways.
 * Version 3 added credits at the end; a version 2 payload has the first
 * NINT_V2 (and decodes with credits 0). Version 4 follows them with the
 * routing tail below. */
#define NINT 14
#define NINT_V2 13
static void int_fields(tg_usage_rec *r, int64_t *f[NINT])
{
    int64_t *all[NINT] = {&r->t_start_ms,       &r->latency_us,         &r->ttft_us,
                          &r->tokens.prompt,    &r->tokens.cached,      &r->tokens.cache_write,
                          &r->tokens.completion, &r->tokens.reasoning,  &r->cost,
                          &r->charge,           &r->margin,             &r->fee,
                          &r->tags.unit_count,  &r->credits};
    memcpy(f, all, sizeof all);
}

/* Version 4's tail after the integers: attempts and asked_cost, plain
 * varints, as both are never negative (one byte each for most records,
 * at most 5 and 9). Versions 2 and 3 decode without it: attempts 0
 * (unknown), asked_cost their cost (served as asked, before routing). */
#define TAIL_MAX (5 + 9)
static inline uint8_t *put_tail(uint8_t *q, const tg_usage_rec *r)
{
    q = put_uv(q, (uint32_t)r->attempts);
    return put_uv(q, (uint64_t)r->asked_cost);
}

static bool get_tail(const uint8_t **q, const uint8_t *end, tg_usage_rec *r)
{
    uint64_t attempts, asked;
    if (!get_uv(q, end, &attempts) || attempts > INT32_MAX || !get_uv(q, end, &asked) ||
        asked > INT64_MAX)
        return false;
    r->attempts = (int32_t)attempts;
    r->asked_cost = (tg_nanos)asked;
    return true;
}

int tg_record_strs_of(const tg_usage_rec *rec, tg_record_strs *s)
{
    /* The field list takes non-const pointers; this only reads them. */
    char *f[NSTR];
    str_fields((tg_usage_rec *)rec, f);
    tg_record_strs_clear(s);
    for (int i = 0; i < NSTR; i++)
        if (!tg_record_strs_add_field(s, f[i])) return TG_EINVAL;
    return TG_OK;
}

int tg_record_encode_strs(const tg_usage_rec *rec, const tg_record_strs *s, bool intent, tg_buf *out,
                          tg_record_marks *m)
{
    /* The field lists take non-const pointers; encode only reads them. */
    tg_usage_rec *r = (tg_usage_rec *)rec;
    if (s->nstr != NSTR || !rec_valid(r)) return TG_EINVAL;
    int rc = tg_buf_reserve(out, TG_RECORD_MAX_LEN);
    if (rc) return rc;

    uint8_t *q = (uint8_t *)out->p + out->n;
    *q++ = TG_RECORD_VERSION;
    *q++ = (uint8_t)((intent ? F_INTENT : 0) | (r->stream ? F_STREAM : 0) |
                     (r->estimated ? F_ESTIMATED : 0) | (r->attempt ? F_ATTEMPT : 0));
    memcpy(q, r->id, TG_RECORD_ID_LEN);
    q += TG_RECORD_ID_LEN;
    *q++ = r->endpoint;
    *q++ = r->route;
    *q++ = r->outcome;
    q = put_uv(q, (uint32_t)r->status);
    int64_t *f[NINT];
    int_fields(r, f);
    for (int i = 0; i < NINT; i++) q = put_sv(q, *f[i]);
    q = put_tail(q, r);
    if (m) {
        /* past rid and key_id to app, then customer and plan (str_fields'
         * order), as offsets in the payload */
        size_t h = (size_t)(q - (uint8_t *)out->p - out->n);
        size_t app = 1 + s->b[0];
        app += 1 + s->b[app];
        size_t cust = app + 1 + s->b[app], plan = cust + 1 + s->b[cust];
        *m = (tg_record_marks){.t_start_ms = r->t_start_ms, .credits = r->credits,
                               .charge = r->charge, .app = (uint16_t)(h + app),
                               .customer = (uint16_t)(h + cust), .plan = (uint16_t)(h + plan)};
    }
    memcpy(q, s->b, s->n);
    out->n = (size_t)((char *)q - out->p) + s->n;
    out->p[out->n] = '\0';
    return TG_OK;
}

int tg_record_encode(const tg_usage_rec *r, bool intent, tg_buf *out, tg_record_marks *m)
{
    tg_record_strs s;
    return tg_record_strs_of(r, &s) ? TG_EINVAL : tg_record_encode_strs(r, &s, intent, out, m);
}

/* The strings of p[0..n) into r; false unless they fill it exactly. */
static bool decode_strings(const uint8_t *p, size_t n, tg_usage_rec *r)
{
    char *s[NSTR];
    str_fields(r, s);
    for (int i = 0; i < NSTR; i++) {
        if (n < 1) return false;
        size_t l = *p++;
        n--;
        if (l > TG_TAG_MAX || l > n || memchr(p, '\0', l)) return false;
        memcpy(s[i], p, l);
        s[i][l] = '\0';
        p += l;
        n -= l;
    }
    return n == 0;
}

/* The header both readers check: the size bounds, a version this binary
 * reads (the current one; 3, written before routing; 2, before credits),
 * the flags that version has. */
#define HDR_LEN (2 + TG_RECORD_ID_LEN + 3)
static bool header_ok(const uint8_t *p, size_t n)
{
    if (n < TG_RECORD_MIN_LEN || n > TG_RECORD_MAX_LEN) return false;
    if (p[0] == TG_RECORD_VERSION) return !(p[1] & ~F_ALL);
    return (p[0] == 2 || p[0] == 3) && !(p[1] & ~F_ALL_V3);
}

int tg_record_decode(const uint8_t *p, size_t n, tg_usage_rec *r, bool *intent)
{
    if (!header_ok(p, n)) return TG_EINVAL;
    const uint8_t *q = p + HDR_LEN, *end = p + n;
    uint64_t st;
    if (!get_uv(&q, end, &st) || st > UINT32_MAX) return TG_EINVAL;
    memset(r, 0, sizeof *r);
    r->status = (int32_t)(uint32_t)st;
    int64_t *f[NINT];
    int_fields(r, f);
    for (int i = 0, nint = p[0] == 2 ? NINT_V2 : NINT; i < nint; i++)
        if (!get_sv(&q, end, f[i])) return TG_EINVAL;
    if (p[0] == TG_RECORD_VERSION && !get_tail(&q, end, r)) return TG_EINVAL;
    /* a record from before routing was served as asked: it saves nothing */
    if (p[0] != TG_RECORD_VERSION) r->asked_cost = r->cost < 0 ? 0 : r->cost;
    memcpy(r->id, p + 2, TG_RECORD_ID_LEN);
    r->endpoint = p[2 + TG_RECORD_ID_LEN];
    r->route = p[3 + TG_RECORD_ID_LEN];
    r->outcome = p[4 + TG_RECORD_ID_LEN];
    r->stream = p[1] & F_STREAM;
    r->estimated = p[1] & F_ESTIMATED;
    r->attempt = p[1] & F_ATTEMPT;
    if (!decode_strings(q, n - (size_t)(q - p), r) || !rec_valid(r)) return TG_EINVAL;
    *intent = p[1] & F_INTENT;
    return TG_OK;
}

_Static_assert(HDR_LEN + 1 + NINT_V2 + NSTR == TG_RECORD_MIN_LEN,
               "a byte per varint and length, in the shortest version");
_Static_assert(HDR_LEN + 5 + 10 * NINT + TAIL_MAX + NSTR * (1 + TG_TAG_MAX) == TG_RECORD_MAX_LEN,
               "the widest varints and the longest strings");

/* The string whose length byte is at p[at], if it lies inside p[0..n). */
static bool marked(const uint8_t *p, size_t n, uint16_t at, tg_str *out)
{
    if (at >= n || p[at] > n - at - 1) return false;
    *out = tg_str_make((const char *)p + at + 1, p[at]);
    return true;
}

int tg_record_view_at(const uint8_t *p, size_t n, const tg_record_marks *m, tg_record_view *v)
{
    tg_str app, customer, plan;
    if (!header_ok(p, n) || !marked(p, n, m->app, &app) || !marked(p, n, m->customer, &customer) ||
        !marked(p, n, m->plan, &plan))
        return TG_EINVAL;
    *v = (tg_record_view){.id = p + 2, .t_start_ms = m->t_start_ms, .app = app,
                          .customer = customer, .plan = plan, .credits = m->credits,
                          .charge = m->charge, .intent = p[1] & F_INTENT};
    return TG_OK;
}

/* ---- frames ---- */

int tg_journal_scan(const uint8_t *p, size_t n, int (*fn)(void *ud, const tg_usage_rec *r, bool intent),
                    void *ud, size_t *consumed)
{
    tg_usage_rec r;
    size_t off = 0;
    int rc = TG_OK;
    while (off < n) {
        bool intent;
        if (n - off < TG_JOURNAL_FRAME_HDR) goto bad;
        uint32_t len = rd32(p + off), crc = rd32(p + off + 4);
        if (len < TG_RECORD_MIN_LEN || len > TG_RECORD_MAX_LEN) goto bad;
        if (n - off - TG_JOURNAL_FRAME_HDR < len) goto bad;
        const uint8_t *pl = p + off + TG_JOURNAL_FRAME_HDR;
        if (tg_crc32c(0, pl, len) != crc || tg_record_decode(pl, len, &r, &intent)) goto bad;
        off += TG_JOURNAL_FRAME_HDR + len;
        rc = fn(ud, &r, intent);
        if (rc) goto out;
    }
    goto out;
bad:
    rc = TG_EINVAL;
out:
    *consumed = off;
    return rc;
}
