/* Private to translate*.c: the context one translation carries (tg_xl).
 *
 * It knows where in the input the translation is (a path such as
 * "messages[2].content[0]", pushed and popped as it descends), so that a
 * refusal names its field without each caller formatting paths; it holds
 * the scratch buffers for decoded strings (capped by the input's size:
 * decoded text is never longer than its JSON); and it makes writes
 * sticky: the first write error is kept in rc, so a chain of writes reads
 * `if (tg_xl_lit(x, "{") || tg_xl_raw(x, v)) return x->rc;`. */
#ifndef TG_ROUTE_ADAPTERS_TRANSLATE_CTX_H
#define TG_ROUTE_ADAPTERS_TRANSLATE_CTX_H

#include "route/adapters/translate.h"

typedef struct {
    tg_buf *out;
    size_t out0; /* out->n on entry: restored on failure */
    tg_errmsg *err;
    tg_translate_param *param;
    const char *peer; /* who cannot honour a refused field: "this model's ... provider" */
    char path[TG_TRANSLATE_PARAM_MAX];
    size_t npath;
    tg_buf tmp;  /* decoded strings (tg_xl_decode) */
    tg_buf name; /* decoded member names (tg_xl_name) */
    int rc;      /* the first write error, sticky */
} tg_xl;

/* input_size bounds the scratch buffers; peer is a literal. */
void tg_xl_init(tg_xl *x, tg_buf *out, size_t input_size, tg_errmsg *err, tg_translate_param *param,
                const char *peer);
/* Releases the scratch buffers; on failure (rc != 0) puts out back as it
 * was. Returns rc. */
int tg_xl_done(tg_xl *x, int rc);

/* Appends a path step ("messages[%zu]", ".content") and returns the
 * length to give tg_xl_pop to take it off again. */
size_t tg_xl_push(tg_xl *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void tg_xl_pop(tg_xl *x, size_t n)
{
    x->npath = n;
    x->path[n] = '\0';
}

/* Refuses: param = the path, then ".field" when field is not NULL; the
 * message is "<param>: " and the formatted text. Returns TG_EINVAL. */
int tg_xl_fail(tg_xl *x, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Refuses field (NULL: the path itself) as one the peer cannot honour. */
int tg_xl_unsupported(tg_xl *x, const char *field);
/* Refuses a member named by a decoded key (unknown fields). */
int tg_xl_unknown(tg_xl *x, tg_str name);

static inline bool tg_xl_absent(tg_json_val v)
{
    return v.type == TG_JSON_NONE || v.type == TG_JSON_NULL;
}
/* A member of obj, NONE when absent or null. */
tg_json_val tg_xl_get(tg_json_val obj, const char *key);
/* A member key decoded (a view when it has no escapes, else decoded into
 * x->name); valid until the next call. Keys longer than 64 decoded bytes
 * come back as their first 64. */
tg_str tg_xl_name(tg_xl *x, tg_json_val key);
/* Whether v is a string whose decoded text is lit. */
bool tg_xl_is(tg_json_val v, const char *lit);
/* Refuses the first member of obj (not null) whose name is not in the
 * NULL-terminated list (at most 32 names), and a listed name that appears
 * twice: lookups read the first, many parsers keep the last, so a
 * translation could say something else than the client meant. */
int tg_xl_only(tg_xl *x, tg_json_val obj, const char *const *allowed);
/* A string value decoded into x->tmp (or a view); valid until the next
 * call. TG_EINVAL when s is not a string. */
int tg_xl_decode(tg_xl *x, tg_json_val s, tg_str *out);

/* Writes; each returns 0 or the sticky write error. */
int tg_xl_lit(tg_xl *x, const char *s);   /* bytes of a program-owned C string */
int tg_xl_add(tg_xl *x, tg_str s);        /* bytes as they are */
int tg_xl_raw(tg_xl *x, tg_json_val v);   /* a value's bytes as they are */
int tg_xl_str(tg_xl *x, tg_str s);        /* s quoted and escaped */
int tg_xl_inner(tg_xl *x, tg_json_val s); /* a string value's bytes between its quotes */
int tg_xl_i64(tg_xl *x, int64_t v);
/* A separator: "," unless *n is 0; counts the element. */
int tg_xl_sep(tg_xl *x, size_t *n);

#endif
