/* Readers shared by the sections of the configuration; see walk.h.
 *
 * These sit between conf/yaml.c, which knows YAML and paths but no schema,
 * and the section walkers in config.c, catalog.c and plans.c: the value
 * kinds that recur across tollgate's sections (names, ids, tags, URLs,
 * environment variable names, money, model references, units) and the
 * shape every list section has (items filled in place, then names checked
 * unique). */
#include "conf/walk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tg_conf__dup(tg_yaml_walk *w, tg_str s, char **out)
{
    *out = tg_str_dup(s);
    return *out ? TG_OK : tg_yaml_nomem(w);
}

int tg_conf__name(tg_yaml_walk *w, const tg_yaml_node *v, tg_str *out)
{
    int rc = tg_yaml_text(w, v, TG_CONF_MAX_NAME, out);
    if (rc) return rc;
    const char *ok = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
    if (strspn(out->p, ok) != out->n)
        return tg_yaml_fail(w, v->line, "may contain only letters, digits, '.', '_' and '-'");
    return TG_OK;
}

int tg_conf__id(tg_yaml_walk *w, const tg_yaml_node *v, tg_str *out)
{
    int rc = tg_yaml_text(w, v, TG_CONF_MAX_ID, out);
    if (rc) return rc;
    if (memchr(out->p, ' ', out->n)) return tg_yaml_fail(w, v->line, "must not contain spaces");
    return TG_OK;
}

int tg_conf__tag(tg_yaml_walk *w, const tg_yaml_node *v, tg_str *out)
{
    int rc = tg_yaml_text(w, v, TG_CONF_MAX_TAG, out);
    if (rc) return rc;
    char q[48];
    if (!tg_tag_valid(*out))
        return tg_yaml_fail(w, v->line,
                            "'%s' may contain only letters, digits and . _ - : @ / + = #",
                            tg_yaml_quote(q, *out));
    return TG_OK;
}

int tg_conf__url(tg_yaml_walk *w, const tg_yaml_node *v, tg_str *out)
{
    tg_str s;
    int rc = tg_yaml_text(w, v, TG_CONF_MAX_URL, &s);
    if (rc) return rc;
    size_t scheme = tg_str_has_prefix(s, TG_STR("https://"))  ? 8
                    : tg_str_has_prefix(s, TG_STR("http://")) ? 7
                                                              : 0;
    if (!scheme) return tg_yaml_fail(w, v->line, "must start with http:// or https://");
    if (s.n == scheme || strchr("/?#", s.p[scheme]))
        return tg_yaml_fail(w, v->line, "has no host after the scheme");
    if (memchr(s.p, ' ', s.n)) return tg_yaml_fail(w, v->line, "must not contain spaces");
    *out = s;
    return TG_OK;
}

int tg_conf__env_name(tg_yaml_walk *w, const tg_yaml_node *v, tg_str *out)
{
    int rc = tg_yaml_text(w, v, TG_CONF_MAX_NAME, out);
    if (rc) return rc;
    if ((out->p[0] >= '0' && out->p[0] <= '9') ||
        strspn(out->p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") != out->n)
        return tg_yaml_fail(w, v->line,
                            "must be an environment variable name (letters, digits, '_')");
    return TG_OK;
}

int tg_conf__model(tg_yaml_walk *w, const tg_yaml_node *v, tg_model **out)
{
    tg_config *c = tg_conf__config(w);
    char q[48], list[120];
    int rc = tg_yaml_need_scalar(w, v);
    if (rc) return rc;
    if (!(*out = (tg_model *)tg_config_model(c, v->str)))
        return tg_yaml_fail(w, v->line, "unknown model '%s' (defined: %s)",
                            tg_yaml_quote(q, v->str),
                            TG_CONF_NAMES(list, tg_model, c->models, c->nmodels, name));
    return TG_OK;
}

int tg_conf__bool_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    return tg_yaml_bool(w, v, dst);
}

int tg_conf__name_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_str s;
    int rc = tg_conf__name(w, v, &s);
    return rc ? rc : tg_conf__dup(w, s, dst);
}

int tg_conf__id_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_str s;
    int rc = tg_conf__id(w, v, &s);
    return rc ? rc : tg_conf__dup(w, s, dst);
}

int tg_conf__tag_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_str s;
    int rc = tg_conf__tag(w, v, &s);
    return rc ? rc : tg_conf__dup(w, s, dst);
}

int tg_conf__money_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    int rc = tg_yaml_need_scalar(w, v);
    if (rc) return rc;
    tg_errmsg e;
    if (tg_money_parse(v->str, dst, &e)) {
        char q[48];
        return tg_yaml_fail(w, v->line, "\"%s\" %s", tg_yaml_quote(q, v->str), e.msg);
    }
    return TG_OK;
}

int tg_conf__units(tg_yaml_walk *w, const tg_yaml_node *v, size_t size, size_t name_off,
                   size_t value_off, tg_yaml_value_fn fn, void **arr, size_t *n)
{
    char q[48];
    int rc = tg_yaml_need_map(w, v);
    if (rc || v->n == 0) return rc;
    if (v->n > TG_CONF_MAX_UNITS)
        return tg_yaml_fail(w, v->line, "at most %d units", TG_CONF_MAX_UNITS);
    if (!(*arr = calloc(v->n, size))) return tg_yaml_nomem(w);
    for (const tg_yaml_node *it = v->child; it && !rc; it = it->next) {
        tg_str name;
        char *item, *dup;
        if ((rc = tg_conf__tag(w, it->key, &name))) break;
        for (size_t j = 0; j < *n; j++) {
            memcpy(&dup, (char *)*arr + j * size + name_off, sizeof dup);
            if (tg_str_eq(name, tg_str_c(dup)))
                return tg_yaml_fail(w, it->key->line, "unit '%s' is listed twice",
                                    tg_yaml_quote(q, name));
        }
        if ((rc = tg_conf__dup(w, name, &dup))) break;
        item = (char *)*arr + *n * size;
        memcpy(item + name_off, &dup, sizeof dup);
        (*n)++;
        size_t mark = tg_yaml_push_field(w, dup);
        rc = fn(w, it, item + value_off);
        tg_yaml_pop(w, mark);
    }
    return rc;
}

/* Walks list v into a calloc'd array; d gets one entry per item for the
 * duplicate check. */
static int walk_list(tg_yaml_walk *w, const tg_yaml_node *v, size_t item_size, void **arr,
                     size_t *count, tg_conf__item_fn fn, tg_yaml_dupent **d)
{
    int rc = tg_yaml_need_seq(w, v);
    if (rc || v->n == 0) return rc;
    *arr = calloc(v->n, item_size);
    *d = calloc(v->n, sizeof **d);
    if (!*arr || !*d) return tg_yaml_nomem(w);
    size_t i = 0;
    for (const tg_yaml_node *it = v->child; it && !rc; it = it->next, i++) {
        size_t mark = tg_yaml_push_index(w, i);
        *count = i + 1;
        rc = fn(w, it, (char *)*arr + i * item_size, &(*d)[i]);
        (*d)[i].idx = i;
        tg_yaml_pop(w, mark);
    }
    return rc;
}

int tg_conf__section_list(tg_yaml_walk *w, const tg_yaml_node *root, const char *name,
                          size_t item_size, void **arr, size_t *count, tg_conf__item_fn fn,
                          const char *idfield, const char *what)
{
    const tg_yaml_node *v = tg_yaml_get(root, name);
    if (!v || tg_yaml_is_null(v)) return TG_OK;
    tg_yaml_dupent *d = NULL;
    size_t mark = tg_yaml_push_field(w, name);
    int rc = walk_list(w, v, item_size, arr, count, fn, &d);
    tg_yaml_pop(w, mark);
    if (!rc) rc = tg_yaml_dup_check(w, d, *count, name, idfield, what, true);
    free(d);
    return rc;
}

const char *tg_conf__names(char *out, size_t max, const void *base, size_t size, size_t off,
                           size_t n)
{
    size_t used = 0;
    if (n == 0) return "none";
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *name;
        memcpy(&name, (const char *)base + i * size + off, sizeof name);
        int r = snprintf(out + used, max - used, "%s%s", i ? ", " : "", name);
        if (r < 0 || (size_t)r >= max - used) { /* does not fit: end with "..." */
            memcpy(out + max - 4, "...", 4);
            break;
        }
        used += (size_t)r;
    }
    return out;
}
