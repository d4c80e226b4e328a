/* JSON scanning without a tree; see json.h.
 *
 * Two halves that trust different things. The validator reads untrusted
 * text once, strictly (RFC 8259, well-formed UTF-8, TG_JSON_MAX_DEPTH), with
 * an explicit stack of expected closers instead of recursion, and allocates
 * nothing except in one rare case: duplicate keys of a root object with more
 * than DUP_INLINE members are found by sorting, which needs memory in
 * proportion to the keys (a bounded-memory check would be quadratic, a
 * denial of service on a gateway).
 *
 * The lookups (root, get, iter, decode) assume nothing: every pointer they
 * move is bounded by the end of the span they were handed, so on text that
 * was not validated they return NONE or a span inside the input, never read
 * past it. A span they return always starts with its type's first byte and,
 * for strings and containers, ends with the matching closer.
 *
 * Decoded bytes never outnumber raw bytes (each escape shrinks or keeps its
 * length), which key comparisons use to reject early. */
#include "base/json.h"

#include <stdlib.h>
#include <string.h>

#define DUP_INLINE 64

static const tg_json_val json_none = {TG_JSON_NONE, NULL, 0};

/* ---- shared byte-level helpers ---- */

static inline bool is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static const uint8_t *skip_ws(const uint8_t *p, const uint8_t *end)
{
    while (p < end && is_ws(*p)) p++;
    return p;
}

static inline bool is_digit(uint8_t c) { return (unsigned)(c - '0') < 10; }

static bool hex4(const uint8_t *p, const uint8_t *end, uint32_t *out)
{
    uint32_t v = 0;
    if (end - p < 4) return false;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i], lc = c | 0x20;
        if (is_digit(c)) v = v << 4 | (uint32_t)(c - '0');
        else if (lc >= 'a' && lc <= 'f') v = v << 4 | (uint32_t)(lc - 'a' + 10);
        else return false;
    }
    *out = v;
    return true;
}

/* The escape at p (a backslash): its code point in *cp and the byte after
 * it, or NULL when it is not valid. A high surrogate must be followed by an
 * escaped low one and the pair is one code point; a lone one is refused,
 * since it could not be decoded to UTF-8. */
static const uint8_t *unescape(const uint8_t *p, const uint8_t *end, uint32_t *cp)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (end - p < 2) return NULL;
    const char *e = memchr(from, p[1], sizeof from - 1);
    if (e) {
        *cp = (uint8_t)to[e - from];
        return p + 2;
    }
    if (p[1] != 'u') return NULL;
    uint32_t hi, lo;
    if (!hex4(p + 2, end, &hi)) return NULL;
    if (hi < 0xd800 || hi > 0xdfff) {
        *cp = hi;
        return p + 6;
    }
    if (hi > 0xdbff || end - p < 12 || p[6] != '\\' || p[7] != 'u' || !hex4(p + 8, end, &lo) ||
        lo < 0xdc00 || lo > 0xdfff)
        return NULL;
    *cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
    return p + 12;
}

/* Writes cp (at most U+10FFFF, never a surrogate) as UTF-8; returns 1..4. */
static size_t utf8_put(uint8_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    size_t n = cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (size_t i = n - 1; i > 0; i--, cp >>= 6) o[i] = (uint8_t)(0x80 | (cp & 0x3f));
    o[0] = (uint8_t)((0xff00u >> n & 0xff) | cp); /* 110xxxxx, 1110xxxx, 11110xxx */
    return n;
}

/* Length of the well-formed UTF-8 sequence at p (whose lead byte is
 * >= 0x80), or 0. The second-byte ranges are RFC 3629's table: they exclude
 * overlong forms, encoded surrogates and code points past U+10FFFF. */
static size_t utf8_seq(const uint8_t *p, const uint8_t *end)
{
    uint8_t c = p[0], lo = 0x80, hi = 0xbf;
    size_t len;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < len || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    return len;
}

/* ---- decoded views of string contents ---- */

/* A JSON string's raw contents (quotes excluded); esc when it has escapes. */
typedef struct {
    const uint8_t *p;
    size_t n;
    bool esc;
} keyspan;

static keyspan keyspan_of(const uint8_t *quote, size_t n)
{
    keyspan k = {quote + 1, n - 2, false};
    k.esc = k.n && memchr(k.p, '\\', k.n) != NULL;
    return k;
}

/* Reads string contents one decoded byte at a time, so keys with escapes
 * compare without a copy. */
typedef struct {
    const uint8_t *p, *end;
    uint8_t pend[4];
    size_t npend, ipend;
} dcur;

/* The next decoded byte, -1 at the end, -2 at a malformed escape. */
static int dcur_next(dcur *c)
{
    if (c->ipend < c->npend) return c->pend[c->ipend++];
    if (c->p >= c->end) return -1;
    if (*c->p != '\\') return *c->p++;
    uint32_t cp;
    const uint8_t *q = unescape(c->p, c->end, &cp);
    if (!q) {
        c->p = c->end;
        return -2;
    }
    c->p = q;
    c->npend = utf8_put(c->pend, cp);
    c->ipend = 1;
    return c->pend[0];
}

/* Orders keys by their decoded bytes. */
static int key_cmp(const keyspan *a, const keyspan *b)
{
    if (!a->esc && !b->esc) {
        size_t m = a->n < b->n ? a->n : b->n;
        int c = m ? memcmp(a->p, b->p, m) : 0;
        return c ? c : (a->n > b->n) - (a->n < b->n);
    }
    dcur x = {a->p, a->p + a->n, {0}, 0, 0}, y = {b->p, b->p + b->n, {0}, 0, 0};
    for (;;) {
        int cx = dcur_next(&x), cy = dcur_next(&y);
        if (cx != cy || cx < 0) return (cx > cy) - (cx < cy);
    }
}

static bool key_eq(const keyspan *a, const keyspan *b)
{
    if (!a->esc && !b->esc) return a->n == b->n && (a->n == 0 || !memcmp(a->p, b->p, a->n));
    return key_cmp(a, b) == 0;
}

/* Whether raw contents k decode to exactly key. */
static bool key_is(const keyspan *k, tg_str key)
{
    if (k->n < key.n) return false;
    if (!k->esc) return k->n == key.n && (key.n == 0 || !memcmp(k->p, key.p, key.n));
    dcur c = {k->p, k->p + k->n, {0}, 0, 0};
    for (size_t i = 0; i < key.n; i++)
        if (dcur_next(&c) != (uint8_t)key.p[i]) return false;
    return dcur_next(&c) == -1;
}

/* ---- validation ----
 *
 * Error offsets point at the first byte that cannot continue a valid text:
 * n when the text stops early, the opening quote of an unterminated string,
 * the backslash of a bad escape, the lead byte of bad UTF-8, the opener
 * past the depth limit, the opening quote of a repeated root key. */

typedef struct {
    keyspan k[DUP_INLINE];
    size_t n;
    bool overflow; /* more root members than k holds: checked after parsing */
} dupset;

typedef struct {
    const uint8_t *base, *p, *end;
    const uint8_t *err;
    const char *why;
    dupset *dups; /* NULL unless TG_JSON_NO_DUP_TOPLEVEL */
    int depth;
    uint8_t close[TG_JSON_MAX_DEPTH]; /* the closer each open container expects */
} vstate;

enum { ST_VALUE, ST_KEY, ST_NEXT, ST_DONE, ST_FAIL };

static const uint8_t *fail(vstate *v, const uint8_t *at, const char *why)
{
    v->err = at;
    v->why = at == v->end && !strcmp(why, "unexpected character") ? "unexpected end of input" : why;
    return NULL;
}

static int fail_st(vstate *v, const uint8_t *at, const char *why)
{
    fail(v, at, why);
    return ST_FAIL;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* True when none of the 8 bytes at p needs a closer look: no quote,
 * backslash, control character or non-ASCII byte. Once every byte is known
 * to be below 0x80, (x - n) sets a high bit iff some byte of x is below n. */
static inline bool plain8(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    if (w & HIGHS) return false;
    uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
    return (((w - ONES * 0x20) | (q - ONES) | (b - ONES)) & HIGHS) == 0;
}

/* p is at an opening quote; returns the byte after the closing one. */
static const uint8_t *scan_string(vstate *v, const uint8_t *p)
{
    const uint8_t *open = p++, *end = v->end;
    for (;;) {
        while (end - p >= 8 && plain8(p)) p += 8;
        if (p >= end) return fail(v, open, "unterminated string");
        uint8_t c = *p;
        if (c == '"') return p + 1;
        if (c == '\\') {
            uint32_t cp;
            const uint8_t *q = unescape(p, end, &cp);
            if (!q) return fail(v, p, "invalid escape");
            p = q;
        } else if (c < 0x20) {
            return fail(v, p, "unexpected character");
        } else if (c < 0x80) {
            p++;
        } else {
            size_t len = utf8_seq(p, end);
            if (!len) return fail(v, p, "invalid UTF-8");
            p += len;
        }
    }
}

static const uint8_t *digits(const uint8_t *p, const uint8_t *end)
{
    while (p < end && is_digit(*p)) p++;
    return p;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? ; a leading zero ends the
 * integer part, so "01" fails on the '1' as an unexpected character. */
static const uint8_t *scan_number(vstate *v, const uint8_t *p)
{
    const uint8_t *end = v->end, *q;
    if (*p == '-') p++;
    if (p < end && *p == '0') p++;
    else if ((q = digits(p, end)) > p) p = q;
    else return fail(v, p, "unexpected character");
    if (p < end && *p == '.') {
        if ((q = digits(p + 1, end)) == p + 1) return fail(v, q, "unexpected character");
        p = q;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if ((q = digits(p, end)) == p) return fail(v, p, "unexpected character");
        p = q;
    }
    return p;
}

static const uint8_t *scan_literal(vstate *v, const uint8_t *p)
{
    const char *lit = *p == 't' ? "true" : *p == 'f' ? "false" : "null";
    for (; *lit; lit++, p++)
        if (p == v->end || *p != (uint8_t)*lit) return fail(v, p, "unexpected character");
    return p;
}

/* Records a root member's key; fails on one equal to an earlier key. */
static bool dup_note(vstate *v, const uint8_t *quote, const uint8_t *after)
{
    dupset *d = v->dups;
    if (d->overflow) return true;
    keyspan k = keyspan_of(quote, (size_t)(after - quote));
    for (size_t i = 0; i < d->n; i++) {
        if (key_eq(&k, &d->k[i])) {
            fail(v, quote, "duplicate key");
            return false;
        }
    }
    if (d->n == DUP_INLINE) d->overflow = true;
    else d->k[d->n++] = k;
    return true;
}

static int open_container(vstate *v)
{
    if (v->depth == TG_JSON_MAX_DEPTH) return fail_st(v, v->p, "nesting too deep");
    uint8_t close = *v->p == '{' ? '}' : ']';
    v->close[v->depth++] = close;
    v->p = skip_ws(v->p + 1, v->end);
    if (v->p < v->end && *v->p == close) {
        v->p++;
        v->depth--;
        return ST_NEXT;
    }
    return close == '}' ? ST_KEY : ST_VALUE;
}

static int st_value(vstate *v)
{
    const uint8_t *p = v->p = skip_ws(v->p, v->end);
    if (p == v->end) return fail_st(v, p, "unexpected character");
    switch (*p) {
    case '{': case '[': return open_container(v);
    case '"': p = scan_string(v, p); break;
    case 't': case 'f': case 'n': p = scan_literal(v, p); break;
    default: p = scan_number(v, p); break;
    }
    if (!p) return ST_FAIL;
    v->p = p;
    return ST_NEXT;
}

static int st_key(vstate *v)
{
    const uint8_t *p = skip_ws(v->p, v->end), *quote = p;
    if (p == v->end || *p != '"') return fail_st(v, p, "unexpected character");
    if (!(p = scan_string(v, p))) return ST_FAIL;
    if (v->dups && v->depth == 1 && !dup_note(v, quote, p)) return ST_FAIL;
    p = skip_ws(p, v->end);
    if (p == v->end || *p != ':') return fail_st(v, p, "unexpected character");
    v->p = p + 1;
    return ST_VALUE;
}

/* After a value: the end of the text, a comma or the container's closer. */
static int st_next(vstate *v)
{
    const uint8_t *p = skip_ws(v->p, v->end);
    if (v->depth == 0) return p == v->end ? ST_DONE : fail_st(v, p, "trailing data");
    if (p == v->end) return fail_st(v, p, "unexpected character");
    uint8_t close = v->close[v->depth - 1];
    v->p = p + 1;
    if (*p == ',') return close == '}' ? ST_KEY : ST_VALUE;
    if (*p != close) return fail_st(v, p, "unexpected character");
    v->depth--;
    return ST_NEXT;
}

static tg_json_val val_at(const uint8_t *p, const uint8_t *end);

static int cmp_keyspans(const void *a, const void *b)
{
    const keyspan *x = a, *y = b;
    int c = key_cmp(x, y);
    return c ? c : (x->p > y->p) - (x->p < y->p); /* equal keys in text order */
}

/* The duplicate check for root objects too big for the inline set: sort
 * the keys, then the earliest duplicate is the smallest offset that follows
 * an equal key in sorted order. Runs only on text that parsed, so a syntax
 * error after the 64th member wins over an earlier duplicate. */
static int dup_check_sorted(vstate *v)
{
    tg_json_val root = val_at(skip_ws(v->base, v->end), v->end), k;
    tg_json_iter it = tg_json_iter_init(root);
    size_t n = 0, i;
    while (tg_json_iter_next(&it, NULL, NULL)) n++;
    keyspan *ks = malloc(n * sizeof *ks);
    if (!ks) return TG_ENOMEM;
    it = tg_json_iter_init(root);
    for (i = 0; i < n && tg_json_iter_next(&it, &k, NULL); i++)
        ks[i] = keyspan_of((const uint8_t *)k.p, k.n);
    n = i;
    qsort(ks, n, sizeof *ks, cmp_keyspans);
    const uint8_t *first = NULL;
    for (i = 1; i < n; i++)
        if (key_eq(&ks[i - 1], &ks[i]) && (!first || ks[i].p < first)) first = ks[i].p;
    free(ks);
    if (!first) return TG_OK;
    fail(v, first - 1, "duplicate key");
    return TG_EINVAL;
}

int tg_json_validate(const char *p, size_t n, int flags, size_t *err_off, const char **why)
{
    const uint8_t *base = p ? (const uint8_t *)p : (const uint8_t *)"";
    vstate v = {.base = base, .p = base, .end = base + (p ? n : 0)};
    dupset dups;
    if (flags & TG_JSON_NO_DUP_TOPLEVEL) {
        dups.n = 0;
        dups.overflow = false;
        v.dups = &dups;
    }
    int st = ST_VALUE, rc = TG_OK;
    while (st != ST_DONE && st != ST_FAIL) {
        switch (st) {
        case ST_VALUE: st = st_value(&v); break;
        case ST_KEY: st = st_key(&v); break;
        default: st = st_next(&v); break;
        }
    }
    if (st == ST_FAIL) rc = TG_EINVAL;
    else if (v.dups && dups.overflow) rc = dup_check_sorted(&v);
    if (rc == TG_EINVAL) {
        if (err_off) *err_off = (size_t)(v.err - base);
        if (why) *why = v.why;
    }
    return rc;
}

/* ---- lookups: bounded by `end`, trusting nothing ---- */

/* p at an opening quote; the byte after the closing one, or NULL. A quote
 * closes when an even number of backslashes precedes it; each run of
 * backslashes is counted once, so this stays linear. */
static const uint8_t *skip_string(const uint8_t *p, const uint8_t *end)
{
    const uint8_t *open = p++;
    while (p < end) {
        const uint8_t *q = memchr(p, '"', (size_t)(end - p)), *b;
        if (!q) return NULL;
        for (b = q; b > open + 1 && b[-1] == '\\'; b--) {}
        if ((q - b) % 2 == 0) return q + 1;
        p = q + 1;
    }
    return NULL;
}

static const uint8_t structural[256] = {['"'] = 1, ['{'] = 1, ['['] = 1, ['}'] = 1, [']'] = 1};

/* p at '{' or '['; the byte after the matching closer, or NULL. Kinds are
 * not matched against each other: the validator did that, or nobody did. */
static const uint8_t *skip_container(const uint8_t *p, const uint8_t *end)
{
    size_t depth = 0;
    while (p < end) {
        while (p < end && !structural[*p]) p++;
        if (p == end) break;
        if (*p == '"') {
            if (!(p = skip_string(p, end))) return NULL;
            continue;
        }
        if (*p == '{' || *p == '[') depth++;
        else if (--depth == 0) return p + 1;
        p++;
    }
    return NULL;
}

static const uint8_t *skip_literal(const uint8_t *p, const uint8_t *end, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)(end - p) >= n && !memcmp(p, lit, n) ? p + n : NULL;
}

static const uint8_t *skip_number(const uint8_t *p, const uint8_t *end)
{
    while (p < end && (is_digit(*p) || *p == '-' || *p == '+' || *p == '.' || *p == 'e' ||
                       *p == 'E'))
        p++;
    return p;
}

/* The value starting exactly at p, or NONE. */
static tg_json_val val_at(const uint8_t *p, const uint8_t *end)
{
    tg_json_val v = json_none;
    const uint8_t *q = NULL;
    if (p >= end) return v;
    switch (*p) {
    case '{': v.type = TG_JSON_OBJECT; q = skip_container(p, end); break;
    case '[': v.type = TG_JSON_ARRAY; q = skip_container(p, end); break;
    case '"': v.type = TG_JSON_STRING; q = skip_string(p, end); break;
    case 't': v.type = TG_JSON_TRUE; q = skip_literal(p, end, "true"); break;
    case 'f': v.type = TG_JSON_FALSE; q = skip_literal(p, end, "false"); break;
    case 'n': v.type = TG_JSON_NULL; q = skip_literal(p, end, "null"); break;
    default:
        if (*p == '-' || is_digit(*p)) v.type = TG_JSON_NUMBER, q = skip_number(p, end);
        break;
    }
    if (!q) return json_none;
    v.p = (const char *)p;
    v.n = (size_t)(q - p);
    return v;
}

tg_json_val tg_json_root(const char *p, size_t n)
{
    if (!p) return json_none;
    const uint8_t *b = (const uint8_t *)p, *end = b + n;
    return val_at(skip_ws(b, end), end);
}

tg_json_iter tg_json_iter_init(tg_json_val c)
{
    tg_json_iter it = {NULL, NULL, false};
    if (!c.p || c.n < 2) return it;
    if (c.type == TG_JSON_OBJECT && c.p[0] == '{') it.object = true;
    else if (c.type != TG_JSON_ARRAY || c.p[0] != '[') return it;
    it.p = c.p + 1;
    it.end = c.p + c.n - 1; /* the closer */
    return it;
}

/* Lenient about commas (validated text has them right); strict about
 * bounds: nothing past it->end is read, and each step consumes a byte. */
bool tg_json_iter_next(tg_json_iter *it, tg_json_val *key, tg_json_val *val)
{
    const uint8_t *end = (const uint8_t *)it->end, *p = skip_ws((const uint8_t *)it->p, end);
    tg_json_val k = json_none, v = json_none;
    if (p < end && *p == ',') p = skip_ws(p + 1, end);
    if (it->object) {
        k = val_at(p, end);
        if (k.type != TG_JSON_STRING) goto stop;
        p = skip_ws(p + k.n, end);
        if (p == end || *p != ':') goto stop;
        p = skip_ws(p + 1, end);
    }
    v = val_at(p, end);
    if (v.type == TG_JSON_NONE) goto stop;
    it->p = (const char *)p + v.n;
    if (key) *key = k;
    if (val) *val = v;
    return true;
stop:
    it->p = it->end;
    if (key) *key = json_none;
    if (val) *val = json_none;
    return false;
}

tg_json_val tg_json_get(tg_json_val obj, tg_str key)
{
    if (obj.type != TG_JSON_OBJECT || (key.n && !key.p)) return json_none;
    tg_json_iter it = tg_json_iter_init(obj);
    tg_json_val k, v;
    while (tg_json_iter_next(&it, &k, &v)) {
        keyspan ks = keyspan_of((const uint8_t *)k.p, k.n);
        if (key_is(&ks, key)) return v;
    }
    return json_none;
}

static bool is_string(tg_json_val s)
{
    return s.type == TG_JSON_STRING && s.p && s.n >= 2 && s.p[0] == '"' && s.p[s.n - 1] == '"';
}

bool tg_json_str_view(tg_json_val s, tg_str *out)
{
    if (!is_string(s) || memchr(s.p + 1, '\\', s.n - 2)) return false;
    *out = tg_str_make(s.p + 1, s.n - 2);
    return true;
}

/* Copies runs between escapes in one append each; on any failure the
 * buffer is put back as it was. */
int tg_json_str_decode(tg_json_val s, tg_buf *out)
{
    if (!is_string(s)) return TG_EINVAL;
    const uint8_t *p = (const uint8_t *)s.p + 1, *end = (const uint8_t *)s.p + s.n - 1;
    size_t n0 = out->n;
    int rc = TG_OK;
    while (p < end) {
        const uint8_t *bs = memchr(p, '\\', (size_t)(end - p));
        const uint8_t *stop = bs ? bs : end;
        if (stop > p && (rc = tg_buf_append(out, p, (size_t)(stop - p)))) goto out;
        if (!bs) break;
        uint32_t cp;
        uint8_t u[4];
        if (!(p = unescape(bs, end, &cp))) {
            rc = TG_EINVAL;
            goto out;
        }
        if ((rc = tg_buf_append(out, u, utf8_put(u, cp)))) goto out;
    }
out:
    if (rc && out->p) {
        out->n = n0;
        out->p[n0] = '\0';
    }
    return rc;
}

int tg_json_int(tg_json_val v, int64_t *out)
{
    if (v.type != TG_JSON_NUMBER || !v.p || v.n == 0) return TG_EINVAL;
    const uint8_t *p = (const uint8_t *)v.p, *end = p + v.n;
    bool neg = *p == '-';
    if (neg) p++;
    if (p == end || (*p == '0' && end - p > 1)) return TG_EINVAL;
    uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, acc = 0;
    for (; p < end; p++) {
        if (!is_digit(*p)) return TG_EINVAL;
        uint64_t d = (uint64_t)(*p - '0');
        if (acc > (lim - d) / 10) return TG_EINVAL;
        acc = acc * 10 + d;
    }
    /* -(acc - 1) - 1 reaches INT64_MIN without overflowing */
    *out = neg ? (acc ? -(int64_t)(acc - 1) - 1 : 0) : (int64_t)acc;
    return TG_OK;
}

/* Checks every splice and reserves the whole result before appending, so
 * a bad splice list or the cap leaves out unchanged. */
int tg_json_apply(tg_str src, const tg_json_splice *s, size_t ns, tg_buf *out)
{
    const char *sp = src.p ? src.p : "";
    size_t srcn = src.p ? src.n : 0, pos = 0, kept = 0, added = 0, i;
    if (ns && !s) return TG_EINVAL;
    for (i = 0; i < ns; i++) {
        if (s[i].off < pos || s[i].off > srcn || s[i].len > srcn - s[i].off) return TG_EINVAL;
        if (s[i].with.n && !s[i].with.p) return TG_EINVAL;
        if (s[i].with.n > SIZE_MAX - srcn - added) return TG_ETOOBIG; /* kept <= srcn */
        kept += s[i].off - pos;
        added += s[i].with.n;
        pos = s[i].off + s[i].len;
    }
    kept += srcn - pos;
    int rc = tg_buf_reserve(out, kept + added);
    for (i = 0, pos = 0; !rc && i < ns; i++) {
        rc = tg_buf_append(out, sp + pos, s[i].off - pos);
        if (!rc) rc = tg_buf_add_str(out, s[i].with);
        pos = s[i].off + s[i].len;
    }
    if (!rc) rc = tg_buf_append(out, sp + pos, srcn - pos);
    return rc;
}
