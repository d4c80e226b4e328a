/* JSON scanning without a tree.
 *
 * Request and response bodies pass through the gateway mostly untouched, so
 * instead of building a DOM we validate a text once (RFC 8259, strict) and
 * then look values up by scanning spans of the original bytes. A tg_json_val
 * is a view into the caller's buffer: its p/n cover the value's exact bytes
 * (for a string, the quotes included), so an edit is a splice of the
 * original text, and every byte not spliced is forwarded as it came.
 *
 * Lookups assume the text was validated by tg_json_validate; on text that
 * was not, they never read out of bounds but may answer "not found".
 * Nesting is limited to TG_JSON_MAX_DEPTH. Duplicate keys: lookups return
 * the first occurrence (what most parsers keep is the last; the gateway
 * refuses ambiguity where it matters by validating with
 * TG_JSON_NO_DUP_TOPLEVEL). */
#ifndef TG_BASE_JSON_H
#define TG_BASE_JSON_H

#include "base/buf.h"
#include "base/err.h"

#include <stdbool.h>
#include <stdint.h>

#define TG_JSON_MAX_DEPTH 128

typedef enum {
    TG_JSON_NONE = 0, /* absent / not found */
    TG_JSON_OBJECT,
    TG_JSON_ARRAY,
    TG_JSON_STRING,
    TG_JSON_NUMBER,
    TG_JSON_TRUE,
    TG_JSON_FALSE,
    TG_JSON_NULL,
} tg_json_type;

typedef struct {
    tg_json_type type;
    const char *p; /* first byte of the value ('{', '"', '-', 't', ...) */
    size_t n;      /* bytes of the value, exactly */
} tg_json_val;

enum { TG_JSON_NO_DUP_TOPLEVEL = 1 }; /* flags for tg_json_validate */

/* Validates that [p, p+n) is exactly one JSON value, optionally surrounded
 * by whitespace. Returns TG_OK, or TG_EINVAL with *err_off (when not NULL)
 * set to the offset of the first offending byte and *why (when not NULL) to
 * a short static description ("unexpected character", "unexpected end of
 * input", "unterminated string" (at its opening quote), "invalid escape",
 * "invalid UTF-8", "nesting too deep", "trailing data", "duplicate key").
 * Strings must be valid UTF-8; control characters inside strings are
 * refused. With TG_JSON_NO_DUP_TOPLEVEL and more than 64 root members the
 * duplicate check sorts the keys in one allocation (linear-time checks
 * would be quadratic for an attacker's body) and can return TG_ENOMEM.
 * Decoded strings may hold NUL bytes (\u0000): use their length. */
int tg_json_validate(const char *p, size_t n, int flags, size_t *err_off, const char **why);

/* The value the whole text holds (whitespace skipped). type NONE if empty. */
tg_json_val tg_json_root(const char *p, size_t n);

/* Member `key` of object obj (compared against the decoded key, so
 * "mo\u0064el" matches "model"). type NONE when obj is not an object or has
 * no such key. */
tg_json_val tg_json_get(tg_json_val obj, tg_str key);

/* Iteration over an object's members or an array's elements:
 *   tg_json_iter it = tg_json_iter_init(v);
 *   tg_json_val k, v;
 *   while (tg_json_iter_next(&it, &k, &v)) ...   (k is NONE for arrays) */
typedef struct {
    const char *p, *end;
    bool object;
} tg_json_iter;
tg_json_iter tg_json_iter_init(tg_json_val container);
bool tg_json_iter_next(tg_json_iter *it, tg_json_val *key, tg_json_val *val);

/* Decodes a string value (escapes, surrogate pairs) by appending to out. */
int tg_json_str_decode(tg_json_val s, tg_buf *out);
/* When s is a string without escapes, its contents as a view (no copy);
 * returns false when it has escapes or is not a string. */
bool tg_json_str_view(tg_json_val s, tg_str *out);
/* An integer number (no fraction or exponent) that fits int64. */
int tg_json_int(tg_json_val v, int64_t *out);

/* A splice replaces bytes [off, off+len) of the source with `with`.
 * Splices must be sorted by off and must not overlap; len 0 inserts. */
typedef struct {
    size_t off, len;
    tg_str with;
} tg_json_splice;
/* Appends src with the splices applied to out. */
int tg_json_apply(tg_str src, const tg_json_splice *s, size_t ns, tg_buf *out);

#endif
