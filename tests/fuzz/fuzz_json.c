/* libFuzzer target for the JSON scanner (src/base/json.c).
 *
 * Any input: validation returns OK or EINVAL with an offset inside the
 * input, and the lookups stay in bounds (ASan watches), even when handed
 * spans of arbitrary type. Valid input: every span found by walking the
 * tree lies inside its parent, starts with its type's byte and re-validates
 * on its own; keys decode and find their value again (first occurrence);
 * integers print back to their text; the duplicate-key verdict matches a
 * brute-force check; apply with no splices reproduces the input, and
 * replacing the root's children with 0 keeps it valid. */
#include "base/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                          \
    do {                                                                                  \
        if (!(c)) {                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);         \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

#define MAX_KEYS 256 /* brute-force duplicate check and get() checks stop here */

static bool within(tg_json_val v, const char *p, size_t n)
{
    return v.p >= p && v.n <= n && (size_t)(v.p - p) <= n - v.n;
}

/* Any input, any span: must not crash or read outside [p, p+n). */
static void poke(const char *p, size_t n)
{
    tg_buf b;
    tg_buf_init(&b, 1 << 20);
    tg_json_val r = tg_json_root(p, n);
    CHECK(r.type == TG_JSON_NONE || (within(r, p, n) && r.n > 0));
    tg_json_val any[] = {r, {TG_JSON_OBJECT, p, n}, {TG_JSON_ARRAY, p, n}, {TG_JSON_STRING, p, n},
                         {TG_JSON_NUMBER, p, n}};
    for (size_t i = 0; i < sizeof any / sizeof *any; i++) {
        tg_json_val k, v, c = any[i];
        (void)tg_json_get(c, TG_STR("model"));
        tg_json_iter it = tg_json_iter_init(c);
        for (int j = 0; j < 4096 && tg_json_iter_next(&it, &k, &v); j++) {
            CHECK(within(v, p, n) && v.n > 0);
            CHECK(k.type == TG_JSON_NONE || within(k, p, n));
            (void)tg_json_get(v, TG_STR("a"));
            tg_buf_clear(&b);
            (void)tg_json_str_decode(k, &b);
            (void)tg_json_str_decode(v, &b);
        }
        int64_t x;
        tg_str s;
        (void)tg_json_int(c, &x);
        (void)tg_json_str_view(c, &s);
        tg_buf_clear(&b);
        (void)tg_json_str_decode(c, &b);
    }
    tg_buf_release(&b);
}

static void check_number(tg_json_val v)
{
    int64_t x;
    bool frac = memchr(v.p, '.', v.n) || memchr(v.p, 'e', v.n) || memchr(v.p, 'E', v.n);
    size_t digits = v.n - (v.p[0] == '-');
    if (tg_json_int(v, &x)) {
        CHECK(frac || digits >= 19); /* only non-integers and big ones fail */
        return;
    }
    CHECK(!frac);
    tg_buf b;
    tg_buf_init(&b, 64);
    CHECK(tg_buf_add_i64(&b, x) == TG_OK);
    CHECK((b.n == v.n && !memcmp(b.p, v.p, v.n)) || (v.n == 2 && !memcmp(v.p, "-0", 2) && x == 0));
    tg_buf_release(&b);
}

static void check_string(tg_json_val v)
{
    tg_buf b;
    tg_buf_init(&b, v.n);
    CHECK(tg_json_str_decode(v, &b) == TG_OK); /* decoded never exceeds raw */
    CHECK(b.n <= v.n - 2);
    tg_str s;
    if (tg_json_str_view(v, &s)) CHECK(s.n == b.n && (!s.n || !memcmp(s.p, b.p, s.n)));
    else CHECK(memchr(v.p + 1, '\\', v.n - 2));
    tg_buf_release(&b);
}

static const char first_byte[] = {[TG_JSON_OBJECT] = '{', [TG_JSON_ARRAY] = '[',
                                  [TG_JSON_STRING] = '"', [TG_JSON_TRUE] = 't',
                                  [TG_JSON_FALSE] = 'f', [TG_JSON_NULL] = 'n'};

static void check_value(tg_json_val v, int depth);

static void check_member(tg_json_val obj, tg_json_val k, tg_json_val v, int index)
{
    check_string(k);
    if (index >= MAX_KEYS) return;
    tg_buf key;
    tg_buf_init(&key, k.n);
    CHECK(tg_json_str_decode(k, &key) == TG_OK);
    tg_json_val got = tg_json_get(obj, tg_buf_str(&key));
    CHECK(got.type != TG_JSON_NONE && got.p <= v.p); /* the first occurrence */
    if (got.p == v.p) CHECK(got.n == v.n && got.type == v.type);
    tg_buf_release(&key);
}

static void check_container(tg_json_val c, int depth)
{
    tg_json_iter it = tg_json_iter_init(c);
    tg_json_val k, v;
    const char *prev = c.p;
    for (int i = 0; tg_json_iter_next(&it, &k, &v); i++) {
        CHECK(v.p > prev && within(v, c.p + 1, c.n - 2));
        if (c.type == TG_JSON_OBJECT) {
            CHECK(k.type == TG_JSON_STRING && k.p > prev && k.p + k.n <= v.p);
            check_member(c, k, v, i);
        } else {
            CHECK(k.type == TG_JSON_NONE);
        }
        check_value(v, depth + 1);
        prev = v.p + v.n - 1;
    }
}

static void check_value(tg_json_val v, int depth)
{
    CHECK(v.type != TG_JSON_NONE && v.n > 0 && depth < TG_JSON_MAX_DEPTH);
    CHECK(tg_json_validate(v.p, v.n, 0, NULL, NULL) == TG_OK);
    CHECK(tg_json_root(v.p, v.n).p == v.p && tg_json_root(v.p, v.n).n == v.n);
    if (v.type == TG_JSON_NUMBER) CHECK(v.p[0] == '-' || (v.p[0] >= '0' && v.p[0] <= '9'));
    else CHECK(v.p[0] == first_byte[v.type]);
    if (v.type == TG_JSON_NUMBER) check_number(v);
    if (v.type == TG_JSON_STRING) check_string(v);
    if (v.type == TG_JSON_OBJECT || v.type == TG_JSON_ARRAY) check_container(v, depth);
}

/* The earliest offset of a root key equal to an earlier one, or SIZE_MAX. */
static size_t brute_dup(const char *p, tg_json_val root, bool *checked)
{
    tg_buf keys[MAX_KEYS];
    size_t offs[MAX_KEYS], n = 0, found = SIZE_MAX;
    tg_json_iter it = tg_json_iter_init(root);
    tg_json_val k;
    *checked = true;
    while (tg_json_iter_next(&it, &k, NULL)) {
        if (n == MAX_KEYS) {
            *checked = false;
            break;
        }
        tg_buf_init(&keys[n], k.n);
        CHECK(tg_json_str_decode(k, &keys[n]) == TG_OK);
        offs[n] = (size_t)(k.p - p);
        for (size_t i = 0; i < n && found == SIZE_MAX; i++)
            if (tg_str_eq(tg_buf_str(&keys[i]), tg_buf_str(&keys[n]))) found = offs[n];
        n++;
    }
    for (size_t i = 0; i < n; i++) tg_buf_release(&keys[i]);
    return found;
}

static void check_valid(const char *p, size_t n, int rc_dup, size_t off_dup, const char *why_dup)
{
    tg_json_val r = tg_json_root(p, n);
    CHECK(r.type != TG_JSON_NONE && within(r, p, n));
    for (size_t i = (size_t)(r.p - p) + r.n; i < n; i++)
        CHECK(p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r');
    check_value(r, 0);

    bool checked = false;
    size_t dup = r.type == TG_JSON_OBJECT ? brute_dup(p, r, &checked) : SIZE_MAX;
    if (r.type != TG_JSON_OBJECT) CHECK(rc_dup == TG_OK);
    if (checked && dup == SIZE_MAX) CHECK(rc_dup == TG_OK);
    if (checked && dup != SIZE_MAX)
        CHECK(rc_dup == TG_EINVAL && off_dup == dup && !strcmp(why_dup, "duplicate key"));

    tg_buf out;
    tg_buf_init(&out, 2 * n + 64);
    CHECK(tg_json_apply(tg_str_make(p, n), NULL, 0, &out) == TG_OK);
    CHECK(out.n == n && (!n || !memcmp(out.p, p, n)));
    /* replace the root's children by 0 (at most 64 of them) */
    tg_json_splice sp[64];
    size_t ns = 0;
    tg_json_iter it = tg_json_iter_init(r);
    tg_json_val v;
    while (ns < 64 && tg_json_iter_next(&it, NULL, &v))
        sp[ns++] = (tg_json_splice){(size_t)(v.p - p), v.n, TG_STR("0")};
    tg_buf_clear(&out);
    CHECK(tg_json_apply(tg_str_make(p, n), sp, ns, &out) == TG_OK);
    CHECK(tg_json_validate(out.p, out.n, 0, NULL, NULL) == TG_OK);
    if (ns >= 2) { /* out of order */
        tg_json_splice swap[2] = {sp[1], sp[0]};
        CHECK(tg_json_apply(tg_str_make(p, n), swap, 2, &out) == TG_EINVAL);
    }
    tg_buf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    size_t off = SIZE_MAX, off_dup = SIZE_MAX;
    const char *why = NULL, *why_dup = NULL;
    int rc = tg_json_validate(p, size, 0, &off, &why);
    int rc_dup = tg_json_validate(p, size, TG_JSON_NO_DUP_TOPLEVEL, &off_dup, &why_dup);
    poke(p, size);
    if (rc == TG_OK) {
        check_valid(p, size, rc_dup, off_dup, why_dup);
        return 0;
    }
    CHECK(rc == TG_EINVAL && why && off <= size);
    /* the flag can only add an earlier duplicate-key error */
    CHECK(rc_dup == TG_EINVAL && why_dup && off_dup <= off);
    if (off_dup < off) CHECK(!strcmp(why_dup, "duplicate key"));
    else CHECK(!strcmp(why_dup, why));
    return 0;
}
