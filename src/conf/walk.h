/* Private to src/conf: the schema-level readers that config.c (server,
 * sim, providers, offerings, models, metering), catalog.c (prices, apps,
 * customers, keys) and plans.c (plans, rate and run limits) share, and the
 * entry points between them. Nothing outside src/conf includes this; the
 * public contract is config.h.
 *
 * Every reader follows conf/yaml.h: TG_OK, or err filled with
 * "FILE:LINE: path: problem" and TG_EINVAL (TG_ENOMEM). w->data is the
 * tg_config under construction. */
#ifndef TG_CONF_WALK_H
#define TG_CONF_WALK_H

#include "conf/config.h"
#include "conf/yaml.h"

#include <stddef.h>

#define TG_CONF_MAX_NAME 64 /* provider names, key ids, env names, header names */
#define TG_CONF_MAX_ID 256  /* offering ids, model names, upstream model names */
#define TG_CONF_MAX_TAG 128 /* app, customer, plan and unit ids (tg_tag_valid) */
#define TG_CONF_MAX_URL 2048
#define TG_CONF_MAX_UNITS 256 /* per units mapping: the duplicate check is quadratic */

static inline tg_config *tg_conf__config(tg_yaml_walk *w)
{
    return w->data;
}

/* malloc'd copy of s into *out, or the walk's out-of-memory error. */
int tg_conf__dup(tg_yaml_walk *w, tg_str s, char **out);

/* Scalars, into *out pointing into the tree: a name for logs, metrics and
 * paths (letters, digits, . _ -, up to TG_CONF_MAX_NAME); an id as clients
 * and providers spell it (no spaces, up to TG_CONF_MAX_ID); a tag
 * (tg_tag_valid). */
int tg_conf__name(tg_yaml_walk *w, const tg_yaml_node *v, tg_str *out);
int tg_conf__id(tg_yaml_walk *w, const tg_yaml_node *v, tg_str *out);
int tg_conf__tag(tg_yaml_walk *w, const tg_yaml_node *v, tg_str *out);
/* An http:// or https:// URL naming a host, without spaces, up to
 * TG_CONF_MAX_URL. */
int tg_conf__url(tg_yaml_walk *w, const tg_yaml_node *v, tg_str *out);
/* An environment variable name: letters, digits and '_', not starting
 * with a digit, up to TG_CONF_MAX_NAME. */
int tg_conf__env_name(tg_yaml_walk *w, const tg_yaml_node *v, tg_str *out);
/* A public model defined under models:, by name ("unknown model" with the
 * defined ones otherwise). The snapshot is immutable once built, so the
 * const of the lookup is dropped only while it is being built. */
int tg_conf__model(tg_yaml_walk *w, const tg_yaml_node *v, tg_model **out);

/* tg_yaml_value_fn readers: dst is a bool / a char * that gets a malloc'd
 * copy. */
int tg_conf__bool_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst);
int tg_conf__name_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst);
int tg_conf__id_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst);
int tg_conf__tag_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst);
/* A non-negative decimal read exactly with tg_money_parse, quoted or not
 * ("0.15", 0.15, "12"), into the int64_t at dst: money (tg_nanos) or
 * credits (tg_ncredits, the same nine decimal places). */
int tg_conf__money_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst);

/* A mapping of unit name (a tag) -> value, such as margin.units and
 * plan.unit_credits, into a calloc'd *arr of items of `size` bytes: each
 * gets a malloc'd copy of its name (a char * at name_off) and fn reads its
 * value into value_off. At most TG_CONF_MAX_UNITS, none twice; *n grows as
 * items are filled, so a failure leaves a freeable prefix. */
int tg_conf__units(tg_yaml_walk *w, const tg_yaml_node *v, size_t size, size_t name_off,
                   size_t value_off, tg_yaml_value_fn fn, void **arr, size_t *n);

/* One item of a list section: fills *item (zeroed) from mapping m, and *d
 * with its name and the line of that name for the duplicate check. */
typedef int (*tg_conf__item_fn)(tg_yaml_walk *w, const tg_yaml_node *m, void *item,
                                tg_yaml_dupent *d);

/* Top-level section `name` of root, a list, into a calloc'd array of
 * item_size: *count grows as items are filled, so a failure leaves a
 * freeable prefix. Then names are checked unique ("duplicate WHAT"). An
 * absent or empty section is TG_OK with *arr NULL. */
int tg_conf__section_list(tg_yaml_walk *w, const tg_yaml_node *root, const char *name,
                          size_t item_size, void **arr, size_t *count, tg_conf__item_fn fn,
                          const char *idfield, const char *what);

/* "a, b, c" of up to `max` bytes ("none" for n == 0, cut with "..."), for
 * "unknown X (defined: ...)": the char * at offset `off` of each of the n
 * items of size `size` at base. */
const char *tg_conf__names(char *out, size_t max, const void *base, size_t size, size_t off,
                           size_t n);
// clang-format off
#define TG_CONF_NAMES(buf, type, arr, n, member) \
    tg_conf__names(buf, sizeof buf, arr, sizeof(type), offsetof(type, member), n)
#define TG_CONF_U32(type, yname, member, lo, hi) {yname, offsetof(type, member), lo, hi}
#define TG_CONF_UNITS(w, v, type, member, fn, arr, n) \
    tg_conf__units(w, v, sizeof(type), offsetof(type, name), offsetof(type, member), fn, \
                   (void **)&(arr), &(n))
// clang-format on

/* ---- catalog.c ---------------------------------------------------------- */

/* offerings[i].price; dst is the offering's tg_price. */
int tg_conf__price_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst);
/* plans, apps, customers, then the apps' overrides (which name customers,
 * and customers name apps). Needs models read: plans name them. */
int tg_conf__catalog(tg_yaml_walk *w, const tg_yaml_node *root);
/* keys, unique by id and by hash. Needs the catalog. */
int tg_conf__keys(tg_yaml_walk *w, const tg_yaml_node *root);
/* Frees what tg_conf__catalog filled, however far it got. */
void tg_conf__catalog_free(tg_config *c);

/* ---- config.c ----------------------------------------------------------- */

/* priority | cheapest | fastest | weighted; dst is a tg_strategy. */
int tg_conf__strategy_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst);

/* ---- routing.c ----------------------------------------------------------- */

/* The routing section (v may be NULL: the defaults). Needs the catalog and
 * the keys: rules name plans, customers and keys. */
int tg_conf__routing(tg_yaml_walk *w, const tg_yaml_node *v);
/* Frees what tg_conf__routing filled, however far it got. */
void tg_conf__routing_free(tg_routing_conf *r);

/* ---- plans.c ------------------------------------------------------------ */

/* One item of plans (a tg_conf__item_fn): every field, models resolved. */
int tg_conf__plan_item(tg_yaml_walk *w, const tg_yaml_node *m, void *item, tg_yaml_dupent *d);
/* Frees what tg_conf__plan_item filled, however far it got. */
void tg_conf__plan_free(tg_plan *p);
/* {rpm, tpm, concurrent}, each optional (0: no limit); dst is a tg_limits.
 * Plans, their key_limits and keys share it. */
int tg_conf__limits_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst);
/* {max_steps, max_cost}, each optional (0: none); dst is a tg_run_limits.
 * Plans and apps share it. */
int tg_conf__runs_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst);

#endif
