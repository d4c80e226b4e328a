/* The translation context; see translate_ctx.h. */
#include "route/adapters/translate_ctx.h"
#include "base/jsonw.h"

#include <stdarg.h>
#include <stdio.h>

#define NAME_MAX_BYTES 64

void tg_xl_init(tg_xl *x, tg_buf *out, size_t input_size, tg_errmsg *err, tg_translate_param *param,
                const char *peer)
{
    memset(x, 0, sizeof *x);
    x->out = out;
    x->out0 = out->n;
    x->err = err;
    x->param = param;
    x->peer = peer;
    param->name[0] = '\0';
    tg_buf_init(&x->tmp, input_size);
    tg_buf_init(&x->name, NAME_MAX_BYTES);
}

int tg_xl_done(tg_xl *x, int rc)
{
    tg_buf_release(&x->tmp);
    tg_buf_release(&x->name);
    if (rc && x->out->p) {
        x->out->n = x->out0;
        x->out->p[x->out0] = '\0';
    }
    return rc;
}

size_t tg_xl_push(tg_xl *x, const char *fmt, ...)
{
    size_t was = x->npath;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(x->path + was, sizeof x->path - was, fmt, ap);
    va_end(ap);
    if (n > 0) x->npath = was + (size_t)n < sizeof x->path ? was + (size_t)n : sizeof x->path - 1;
    return was;
}

/* Appends s to the param being built, cutting what does not fit. */
static void param_add(tg_translate_param *p, size_t *n, const char *s, size_t len)
{
    size_t room = sizeof p->name - 1 - *n;
    if (len > room) len = room;
    memcpy(p->name + *n, s, len);
    *n += len;
    p->name[*n] = '\0';
}

/* param = path[.field] */
static void set_param(tg_xl *x, const char *field, size_t nfield)
{
    size_t n = 0;
    x->param->name[0] = '\0';
    param_add(x->param, &n, x->path, x->npath);
    if (field && x->npath) param_add(x->param, &n, ".", 1);
    if (field) param_add(x->param, &n, field, nfield);
}

/* err = "<param>: " and the formatted text. */
static int vsay(tg_xl *x, const char *fmt, va_list ap)
{
    int n = snprintf(x->err->msg, sizeof x->err->msg, "%s: ", x->param->name);
    if (n >= 0 && (size_t)n < sizeof x->err->msg)
        vsnprintf(x->err->msg + n, sizeof x->err->msg - (size_t)n, fmt, ap);
    return TG_EINVAL;
}

static int say(tg_xl *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int say(tg_xl *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(x, fmt, ap);
    va_end(ap);
    return TG_EINVAL;
}

int tg_xl_fail(tg_xl *x, const char *field, const char *fmt, ...)
{
    set_param(x, field, field ? strlen(field) : 0);
    va_list ap;
    va_start(ap, fmt);
    vsay(x, fmt, ap);
    va_end(ap);
    return TG_EINVAL;
}

int tg_xl_unsupported(tg_xl *x, const char *field)
{
    return tg_xl_fail(x, field, "%s cannot honour this field; remove it", x->peer);
}

int tg_xl_unknown(tg_xl *x, tg_str name)
{
    set_param(x, name.p ? name.p : "", name.n);
    return say(x,
               "unknown field; %s cannot honour it, so the request is refused rather than sent "
               "without it",
               x->peer);
}

tg_json_val tg_xl_get(tg_json_val obj, const char *key)
{
    tg_json_val v = tg_json_get(obj, tg_str_c(key));
    return v.type == TG_JSON_NULL ? (tg_json_val){TG_JSON_NONE, NULL, 0} : v;
}

tg_str tg_xl_name(tg_xl *x, tg_json_val key)
{
    tg_str s;
    if (tg_json_str_view(key, &s)) return s;
    tg_buf_clear(&x->name);
    if (!tg_json_str_decode(key, &x->name)) return tg_buf_str(&x->name);
    /* too long for any known name: its raw text, cut, is enough to name it */
    s = key.n >= 2 ? tg_str_make(key.p + 1, key.n - 2) : TG_STR("");
    if (s.n > NAME_MAX_BYTES) s.n = NAME_MAX_BYTES;
    return s;
}

bool tg_xl_is(tg_json_val v, const char *lit)
{
    tg_str s, want = tg_str_c(lit);
    if (tg_json_str_view(v, &s)) return tg_str_eq(s, want);
    if (v.type != TG_JSON_STRING || v.n > 6 * want.n + 2) return false;
    tg_buf b;
    tg_buf_init(&b, want.n);
    bool eq = !tg_json_str_decode(v, &b) && tg_str_eq(tg_buf_str(&b), want);
    tg_buf_release(&b);
    return eq;
}

int tg_xl_only(tg_xl *x, tg_json_val obj, const char *const *allowed)
{
    tg_json_iter it = tg_json_iter_init(obj);
    tg_json_val k, v;
    uint32_t seen = 0;
    while (tg_json_iter_next(&it, &k, &v)) {
        tg_str name = tg_xl_name(x, k);
        size_t i = 0;
        while (allowed[i] && !tg_str_eq(name, tg_str_c(allowed[i])))
            i++;
        if (!allowed[i] && v.type == TG_JSON_NULL) continue;
        if (!allowed[i]) return tg_xl_unknown(x, name);
        if (seen & (1u << i))
            return tg_xl_fail(x, allowed[i],
                              "appears twice; send it once (dialects disagree on which "
                              "one counts)");
        seen |= 1u << i;
    }
    return TG_OK;
}

int tg_xl_decode(tg_xl *x, tg_json_val s, tg_str *out)
{
    if (tg_json_str_view(s, out)) return TG_OK;
    tg_buf_clear(&x->tmp);
    int rc = tg_json_str_decode(s, &x->tmp);
    if (rc == TG_OK) *out = tg_buf_str(&x->tmp);
    return rc == TG_ENOMEM ? rc : rc ? TG_EINVAL : TG_OK;
}

static int keep(tg_xl *x, int rc)
{
    if (rc && !x->rc) x->rc = rc;
    return x->rc;
}

int tg_xl_lit(tg_xl *x, const char *s)
{
    return x->rc ? x->rc : keep(x, tg_buf_add_str(x->out, tg_str_c(s)));
}

int tg_xl_add(tg_xl *x, tg_str s)
{
    return x->rc ? x->rc : keep(x, tg_buf_add_str(x->out, s));
}

int tg_xl_raw(tg_xl *x, tg_json_val v)
{
    return tg_xl_add(x, tg_str_make(v.p, v.n));
}

int tg_xl_str(tg_xl *x, tg_str s)
{
    return x->rc ? x->rc : keep(x, tg_jsonw_str(x->out, s));
}

int tg_xl_inner(tg_xl *x, tg_json_val s)
{
    if (x->rc) return x->rc;
    return keep(x, s.n >= 2 ? tg_buf_append(x->out, s.p + 1, s.n - 2) : TG_OK);
}

int tg_xl_i64(tg_xl *x, int64_t v)
{
    return x->rc ? x->rc : keep(x, tg_buf_add_i64(x->out, v));
}

int tg_xl_sep(tg_xl *x, size_t *n)
{
    return (*n)++ ? tg_xl_lit(x, ",") : x->rc;
}
