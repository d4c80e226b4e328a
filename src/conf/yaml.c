/* libyaml events to a line-numbered tree, and path-aware readers over it;
 * see yaml.h.
 *
 * The tree is built iteratively with a fixed stack of open containers, so no
 * input, however nested, recurses here; the depth cap keeps the stack fixed.
 * Every node and string is allocated from the document's arena. */
#include "conf/yaml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct {
    tg_yaml_node *node;
    tg_yaml_node *last;        /* last child appended, for O(1) append */
    tg_yaml_node *pending_key; /* mapping: a key whose value has not come yet */
} frame;

typedef struct {
    tg_yaml_doc *d;
    const char *name;
    tg_errmsg *err;
    frame stack[TG_YAML_MAX_DEPTH];
    int depth;
    int ndocs;
} builder;

static int line_at_offset(tg_str text, size_t off)
{
    int line = 1;
    for (size_t i = 0; i < off && i < text.n; i++)
        if (text.p[i] == '\n') line++;
    return line;
}

static int syntax_error(builder *b, const yaml_parser_t *p, tg_str text)
{
    if (p->error == YAML_MEMORY_ERROR) {
        tg_errmsg_set(b->err, "%s: out of memory", b->name);
        return TG_ENOMEM;
    }
    const char *problem = p->problem ? p->problem : "malformed YAML";
    /* Reader errors (bad encoding, control characters) carry an offset,
     * not a mark. */
    int line = p->error == YAML_READER_ERROR ? line_at_offset(text, p->problem_offset)
                                             : (int)p->problem_mark.line + 1;
    /* The commonest YAML mistake gets a hint of its own. */
    if (p->error == YAML_SCANNER_ERROR && p->problem_mark.index < text.n &&
        text.p[p->problem_mark.index] == '\t')
        return tg_errmsg_set(b->err, "%s:%d: yaml: a tab character; indent with spaces", b->name,
                             line);
    if (p->context)
        return tg_errmsg_set(b->err, "%s:%d: yaml: %s (%s at line %d)", b->name, line, problem,
                             p->context, (int)p->context_mark.line + 1);
    return tg_errmsg_set(b->err, "%s:%d: yaml: %s", b->name, line, problem);
}

static int fail(builder *b, int line, const char *problem)
{
    return tg_errmsg_set(b->err, "%s:%d: yaml: %s", b->name, line, problem);
}

static int oom(builder *b)
{
    tg_errmsg_set(b->err, "%s: out of memory", b->name);
    return TG_ENOMEM;
}

/* Places a new node under the innermost open container (or as the root). */
static int attach(builder *b, tg_yaml_node *n)
{
    if (b->depth == 0) {
        b->d->root = n;
        return TG_OK;
    }
    frame *f = &b->stack[b->depth - 1];
    if (f->node->kind == TG_YAML_MAP) {
        if (!f->pending_key) {
            if (n->kind != TG_YAML_SCALAR)
                return fail(b, n->line, "mapping keys must be plain names");
            f->pending_key = n;
            return TG_OK;
        }
        n->key = f->pending_key;
        f->pending_key = NULL;
    }
    if (f->last)
        f->last->next = n;
    else
        f->node->child = n;
    f->last = n;
    f->node->n++;
    return TG_OK;
}

static int open_node(builder *b, const yaml_event_t *ev, tg_yaml_node **out)
{
    int line = (int)ev->start_mark.line + 1;
    const yaml_char_t *anchor = NULL;
    if (ev->type == YAML_SCALAR_EVENT) anchor = ev->data.scalar.anchor;
    if (ev->type == YAML_MAPPING_START_EVENT) anchor = ev->data.mapping_start.anchor;
    if (ev->type == YAML_SEQUENCE_START_EVENT) anchor = ev->data.sequence_start.anchor;
    if (anchor) return fail(b, line, "anchors (&name) are not supported");

    tg_yaml_node *n = tg_arena_alloc(&b->d->arena, sizeof *n);
    if (!n) return oom(b);
    memset(n, 0, sizeof *n);
    n->line = line;
    if (ev->type == YAML_SCALAR_EVENT) {
        n->kind = TG_YAML_SCALAR;
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        n->str = tg_arena_dup(
            &b->d->arena, tg_str_make((const char *)ev->data.scalar.value, ev->data.scalar.length));
        if (!n->str.p) return oom(b);
    } else {
        n->kind = ev->type == YAML_MAPPING_START_EVENT ? TG_YAML_MAP : TG_YAML_SEQ;
    }
    *out = n;
    return attach(b, n);
}

static int on_event(builder *b, const yaml_event_t *ev)
{
    int line = (int)ev->start_mark.line + 1;
    tg_yaml_node *n = NULL;
    int rc;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->ndocs > 1) return fail(b, line, "only one document is allowed (remove '---')");
        return TG_OK;
    case YAML_ALIAS_EVENT:
        return fail(b, line, "aliases (*name) are not supported");
    case YAML_SCALAR_EVENT:
        return open_node(b, ev, &n);
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT:
        if (b->depth == TG_YAML_MAX_DEPTH) return fail(b, line, "nested too deeply");
        rc = open_node(b, ev, &n);
        if (rc) return rc;
        b->stack[b->depth++] = (frame){n, NULL, NULL};
        return TG_OK;
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
        /* libyaml guarantees balance; the check only guards the stack. */
        if (b->depth > 0) b->depth--;
        return TG_OK;
    default:
        return TG_OK;
    }
}

int tg_yaml_parse(tg_yaml_doc *d, const char *name, tg_str text, tg_errmsg *err)
{
    builder b = {.d = d, .name = name, .err = err};
    yaml_parser_t p;
    int rc = TG_OK;

    tg_arena_init(&d->arena);
    d->root = NULL;
    if (!yaml_parser_initialize(&p)) return oom(&b);
    yaml_parser_set_input_string(&p, (const unsigned char *)(text.p ? text.p : ""), text.n);
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = syntax_error(&b, &p, text);
            break;
        }
        bool end = ev.type == YAML_STREAM_END_EVENT;
        rc = on_event(&b, &ev);
        yaml_event_delete(&ev);
        if (rc || end) break;
    }
    yaml_parser_delete(&p);
    if (rc) tg_yaml_release(d);
    return rc;
}

void tg_yaml_release(tg_yaml_doc *d)
{
    tg_arena_release(&d->arena);
    d->root = NULL;
}

bool tg_yaml_is_null(const tg_yaml_node *n)
{
    if (!n || n->kind != TG_YAML_SCALAR || !n->plain) return false;
    tg_str s = n->str;
    return s.n == 0 || tg_str_eq(s, TG_STR("~")) || tg_str_eq(s, TG_STR("null")) ||
           tg_str_eq(s, TG_STR("Null")) || tg_str_eq(s, TG_STR("NULL"));
}

const tg_yaml_node *tg_yaml_get(const tg_yaml_node *m, const char *name)
{
    if (!m || m->kind != TG_YAML_MAP) return NULL;
    tg_str want = tg_str_c(name);
    for (const tg_yaml_node *v = m->child; v; v = v->next)
        if (tg_str_eq(v->key->str, want)) return v;
    return NULL;
}

const char *tg_yaml_kind_name(const tg_yaml_node *n)
{
    switch (n->kind) {
    case TG_YAML_MAP:
        return "a mapping";
    case TG_YAML_SEQ:
        return "a list";
    default:
        return "a single value";
    }
}

/* ---- reading a tree into structs -------------------------------------- */

size_t tg_yaml_push(tg_yaml_walk *w, const char *fmt, ...)
{
    size_t mark = w->plen, room = sizeof w->path - w->plen;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(w->path + w->plen, room, fmt, ap);
    va_end(ap);
    /* a path longer than the buffer is cut, never overrun */
    w->plen += (k < 0) ? 0 : ((size_t)k >= room ? room - 1 : (size_t)k);
    return mark;
}

size_t tg_yaml_push_field(tg_yaml_walk *w, const char *name)
{
    return tg_yaml_push(w, "%s%s", w->plen ? "." : "", name);
}

size_t tg_yaml_push_index(tg_yaml_walk *w, size_t i)
{
    return tg_yaml_push(w, "[%zu]", i);
}

void tg_yaml_pop(tg_yaml_walk *w, size_t mark)
{
    w->plen = mark;
    w->path[mark] = '\0';
}

int tg_yaml_fail(tg_yaml_walk *w, int line, const char *fmt, ...)
{
    char msg[sizeof w->err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char at[16] = "";
    if (!w->no_lines) snprintf(at, sizeof at, ":%d", line);
    if (w->plen) return tg_errmsg_set(w->err, "%s%s: %s: %s", w->file, at, w->path, msg);
    return tg_errmsg_set(w->err, "%s%s: %s", w->file, at, msg);
}

int tg_yaml_nomem(tg_yaml_walk *w)
{
    tg_errmsg_set(w->err, "%s: out of memory", w->file);
    return TG_ENOMEM;
}

const char *tg_yaml_quote(char buf[48], tg_str s)
{
    size_t n = 0;
    for (size_t i = 0; i < s.n && n < 40; i++)
        buf[n++] = (s.p[i] >= 0x20 && s.p[i] < 0x7f) ? s.p[i] : '?';
    if (s.n > 40) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

int tg_yaml_line(const tg_yaml_node *v)
{
    return (tg_yaml_is_null(v) && v->key) ? v->key->line : v->line;
}

int tg_yaml_need_scalar(tg_yaml_walk *w, const tg_yaml_node *v)
{
    if (v->kind != TG_YAML_SCALAR)
        return tg_yaml_fail(w, v->line, "must be a single value, not %s", tg_yaml_kind_name(v));
    if (tg_yaml_is_null(v)) return tg_yaml_fail(w, tg_yaml_line(v), "missing value");
    return TG_OK;
}

int tg_yaml_need_map(tg_yaml_walk *w, const tg_yaml_node *v)
{
    if (v->kind == TG_YAML_MAP) return TG_OK;
    return tg_yaml_fail(w, tg_yaml_line(v), "must be a mapping of field: value, not %s",
                        tg_yaml_kind_name(v));
}

int tg_yaml_need_seq(tg_yaml_walk *w, const tg_yaml_node *v)
{
    if (v->kind == TG_YAML_SEQ) return TG_OK;
    return tg_yaml_fail(w, tg_yaml_line(v), "must be a list, not %s", tg_yaml_kind_name(v));
}

int tg_yaml_u64(tg_yaml_walk *w, const tg_yaml_node *v, uint64_t min, uint64_t max, uint64_t *out)
{
    int rc = tg_yaml_need_scalar(w, v);
    if (rc) return rc;
    /* strspn stops at a NUL, so a scalar holding one fails here too */
    if (!v->plain || strspn(v->str.p, "0123456789") != v->str.n)
        return tg_yaml_fail(w, v->line, "must be a whole number (decimal digits only)");
    uint64_t x;
    if (tg_str_to_u64(v->str, &x) || x < min || x > max)
        return tg_yaml_fail(w, v->line, "must be between %llu and %llu", (unsigned long long)min,
                            (unsigned long long)max);
    *out = x;
    return TG_OK;
}

int tg_yaml_bool(tg_yaml_walk *w, const tg_yaml_node *v, bool *out)
{
    int rc = tg_yaml_need_scalar(w, v);
    if (rc) return rc;
    if (v->plain && tg_str_eq(v->str, TG_STR("true"))) {
        *out = true;
        return TG_OK;
    }
    if (v->plain && tg_str_eq(v->str, TG_STR("false"))) {
        *out = false;
        return TG_OK;
    }
    return tg_yaml_fail(w, v->line, "must be true or false");
}

int tg_yaml_text(tg_yaml_walk *w, const tg_yaml_node *v, size_t max, tg_str *out)
{
    int rc = tg_yaml_need_scalar(w, v);
    if (rc) return rc;
    for (size_t i = 0; i < v->str.n; i++) {
        unsigned char ch = (unsigned char)v->str.p[i];
        if (ch < 0x20 || ch == 0x7f)
            return tg_yaml_fail(w, v->line, "must not contain control characters");
    }
    if (v->str.n > max) return tg_yaml_fail(w, v->line, "must be at most %zu characters", max);
    if (v->str.n == 0) return tg_yaml_fail(w, v->line, "must not be empty");
    *out = v->str;
    return TG_OK;
}

static void join(char *out, size_t max, const char *const names[])
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; names[i]; i++) {
        int r = snprintf(out + n, max - n, "%s%s", i ? ", " : "", names[i]);
        if (r < 0 || (size_t)r >= max - n) return;
        n += (size_t)r;
    }
}

int tg_yaml_check_fields(tg_yaml_walk *w, const tg_yaml_node *m, const char *const names[])
{
    for (const tg_yaml_node *v = m->child; v; v = v->next) {
        tg_str k = v->key->str;
        bool known = false;
        for (size_t i = 0; names[i] && !known; i++)
            known = tg_str_eq(k, tg_str_c(names[i]));
        char q[48];
        if (!known) {
            char list[200];
            join(list, sizeof list, names);
            return tg_yaml_fail(w, v->key->line, "unknown field '%s' (expected one of: %s)",
                                tg_yaml_quote(q, k), list);
        }
        /* only known keys get here, so this loop is short */
        for (const tg_yaml_node *p = m->child; p != v; p = p->next)
            if (tg_str_eq(p->key->str, k))
                return tg_yaml_fail(w, v->key->line, "field '%s' appears twice (first at line %d)",
                                    tg_yaml_quote(q, k), p->key->line);
    }
    return TG_OK;
}

int tg_yaml_require(tg_yaml_walk *w, const tg_yaml_node *m, const char *name,
                    const tg_yaml_node **out)
{
    *out = tg_yaml_get(m, name);
    if (!*out) return tg_yaml_fail(w, m->line, "missing required field '%s'", name);
    return TG_OK;
}

int tg_yaml_field(tg_yaml_walk *w, const tg_yaml_node *m, const char *name, tg_yaml_value_fn fn,
                  void *dst)
{
    const tg_yaml_node *v = tg_yaml_get(m, name);
    if (!v) return TG_OK;
    size_t mark = tg_yaml_push_field(w, name);
    int rc = fn(w, v, dst);
    tg_yaml_pop(w, mark);
    return rc;
}

int tg_yaml_u32_fields(tg_yaml_walk *w, const tg_yaml_node *m, void *base, const tg_yaml_u32 *f,
                       size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const tg_yaml_node *v = tg_yaml_get(m, f[i].name);
        if (!v) continue;
        size_t mark = tg_yaml_push_field(w, f[i].name);
        uint64_t x;
        int rc = tg_yaml_u64(w, v, f[i].min, f[i].max, &x);
        tg_yaml_pop(w, mark);
        if (rc) return rc;
        uint32_t x32 = (uint32_t)x;
        memcpy((char *)base + f[i].off, &x32, sizeof x32);
    }
    return TG_OK;
}

static int keycmp(tg_str a, tg_str b)
{
    if (a.n != b.n) return a.n < b.n ? -1 : 1;
    return a.n ? memcmp(a.p, b.p, a.n) : 0;
}

static int dupcmp(const void *a, const void *b)
{
    const tg_yaml_dupent *x = a, *y = b;
    int c = keycmp(x->key, y->key);
    if (c) return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

int tg_yaml_dup_check(tg_yaml_walk *w, tg_yaml_dupent *e, size_t n, const char *section,
                      const char *field, const char *what, bool echo)
{
    if (n < 2) return TG_OK;
    qsort(e, n, sizeof *e, dupcmp);
    /* within a run of equal keys the first is the original (lowest idx) */
    const tg_yaml_dupent *dup = NULL, *first = NULL;
    for (size_t i = 1, run = 0; i < n; i++) {
        if (keycmp(e[i].key, e[run].key) != 0) {
            run = i;
            continue;
        }
        if (!dup || e[i].idx < dup->idx) {
            dup = &e[i];
            first = &e[run];
        }
    }
    if (!dup) return TG_OK;
    size_t mark = tg_yaml_push(w, "%s%s[%zu].%s", w->plen ? "." : "", section, dup->idx, field);
    char q[48];
    int rc = echo ? tg_yaml_fail(w, dup->line, "duplicate %s '%s' (first at line %d)", what,
                                 tg_yaml_quote(q, dup->key), first->line)
                  : tg_yaml_fail(w, dup->line, "duplicate %s (%s[%zu] at line %d has the same)",
                                 what, section, first->idx, first->line);
    tg_yaml_pop(w, mark);
    return rc;
}
