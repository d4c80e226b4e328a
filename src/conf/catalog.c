/* The catalog of the configuration: what offerings cost, who may call and
 * who pays. Offering prices, apps with their margin policy, overrides and
 * webhook, customers, and keys with the app and customer each bills to;
 * plans are read by plans.c. See config.h for the structs and what each
 * field means.
 *
 * Money is read from the scalar's text with tg_money_parse, never through a
 * float, so "0.15" and an unquoted 0.15 are the same exact 150,000,000
 * nanos. Order matters because names must resolve: plans first, then apps
 * without their overrides, then customers (which name an app), and only
 * then the overrides (which name customers, and must name a customer of
 * their own app), and keys last. A sha256 value is never echoed in a
 * message: someone may have pasted the key itself there. A webhook's
 * secret is read from the environment, like a provider key, and never
 * appears in a message either. Every array is calloc'd to its final size
 * and its count grows as items are filled, so a snapshot that fails
 * half-way is freed by tg_conf__catalog_free like a whole one. */
#include "conf/walk.h"

#include <stdlib.h>
#include <string.h>

bool tg_tag_valid(tg_str s)
{
    if (s.n < 1 || s.n > TG_CONF_MAX_TAG) return false;
    for (size_t i = 0; i < s.n; i++) {
        char ch = s.p[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || (ch && strchr("._:@/+=#-", ch));
        if (!ok) return false;
    }
    return true;
}

/* ---- values ------------------------------------------------------------ */

/* Field `name` of m, a whole number in min..max that may be negative;
 * *has (when given) says whether it was there. */
static int int_field(tg_yaml_walk *w, const tg_yaml_node *m, const char *name, int64_t min,
                     int64_t max, int64_t *out, bool *has)
{
    const tg_yaml_node *v = tg_yaml_get(m, name);
    if (!v) return TG_OK;
    size_t mark = tg_yaml_push_field(w, name);
    int rc = tg_yaml_need_scalar(w, v);
    tg_str s = v->str;
    bool neg = s.n > 0 && s.p[0] == '-';
    if (neg) s = tg_str_make(s.p + 1, s.n - 1);
    uint64_t x;
    /* strspn stops at a NUL, so a scalar holding one fails here too */
    if (!rc && (!v->plain || s.n == 0 || strspn(s.p, "0123456789") != s.n))
        rc = tg_yaml_fail(w, v->line, "must be a whole number (decimal digits, '-' if negative)");
    if (!rc &&
        (tg_str_to_u64(s, &x) || x > INT64_MAX || (neg ? -(int64_t)x < min : (int64_t)x > max)))
        rc = tg_yaml_fail(w, v->line, "must be between %lld and %lld", (long long)min,
                          (long long)max);
    if (!rc) {
        *out = neg ? -(int64_t)x : (int64_t)x;
        if (has) *has = true;
    }
    tg_yaml_pop(w, mark);
    return rc;
}

/* A reference by id to a plan / an app / a customer: dst is a tg_plan **
 * (tg_app **, tg_customer **). The snapshot is immutable once built, so
 * the const of the lookups is dropped only while it is being built. */
static int plan_ref(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_config *c = tg_conf__config(w);
    char q[48], list[120];
    int rc = tg_yaml_need_scalar(w, v);
    if (rc) return rc;
    if (!(*(tg_plan **)dst = (tg_plan *)tg_config_plan(c, v->str)))
        return tg_yaml_fail(w, v->line, "unknown plan '%s' (defined: %s)", tg_yaml_quote(q, v->str),
                            TG_CONF_NAMES(list, tg_plan, c->plans, c->nplans, id));
    return TG_OK;
}

static int app_ref(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_config *c = tg_conf__config(w);
    char q[48], list[120];
    int rc = tg_yaml_need_scalar(w, v);
    if (rc) return rc;
    if (!(*(tg_app **)dst = (tg_app *)tg_config_app(c, v->str)))
        return tg_yaml_fail(w, v->line, "unknown app '%s' (defined: %s)", tg_yaml_quote(q, v->str),
                            TG_CONF_NAMES(list, tg_app, c->apps, c->napps, id));
    return TG_OK;
}

static int customer_ref(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_config *c = tg_conf__config(w);
    char q[48], list[120];
    int rc = tg_yaml_need_scalar(w, v);
    if (rc) return rc;
    if (!(*(tg_customer **)dst = (tg_customer *)tg_config_customer(c, v->str)))
        return tg_yaml_fail(w, v->line, "unknown customer '%s' (defined: %s)",
                            tg_yaml_quote(q, v->str),
                            TG_CONF_NAMES(list, tg_customer, c->customers, c->ncustomers, id));
    return TG_OK;
}

/* ---- prices ------------------------------------------------------------ */

int tg_conf__price_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    static const char *const fields[] = {
        "input",     "cached_input", "cache_write",        "output",
        "reasoning", "request",      "batch_discount_bps", NULL};
    tg_price *p = dst;
    const struct {
        const char *name;
        tg_nanos *dst;
    } money[] = {{"input", &p->input},
                 {"cached_input", &p->cached_input},
                 {"cache_write", &p->cache_write},
                 {"output", &p->output},
                 {"reasoning", &p->reasoning},
                 {"request", &p->per_request}};
    int rc = tg_yaml_need_map(w, v);
    if (!rc) rc = tg_yaml_check_fields(w, v, fields);
    for (size_t i = 0; !rc && i < sizeof money / sizeof *money; i++)
        rc = tg_yaml_field(w, v, money[i].name, tg_conf__money_value, money[i].dst);
    if (!rc) rc = int_field(w, v, "batch_discount_bps", 0, 10000, &p->batch_discount_bps, NULL);
    if (rc) return rc;
    /* kinds left out bill like their parent */
    if (!tg_yaml_get(v, "cached_input")) p->cached_input = p->input;
    if (!tg_yaml_get(v, "cache_write")) p->cache_write = p->input;
    if (!tg_yaml_get(v, "reasoning")) p->reasoning = p->output;
    return TG_OK;
}

/* ---- margins ----------------------------------------------------------- */

static int units_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_margin *g = dst;
    return TG_CONF_UNITS(w, v, tg_unit_price, price, tg_conf__money_value, g->units, g->nunits);
}

/* The margin fields present in m; an app's block and an override share
 * them. */
static int margin_fields(tg_yaml_walk *w, const tg_yaml_node *m, tg_margin *g)
{
    int rc = int_field(w, m, "markup_bps", -10000, 1000000, &g->markup_bps, &g->has_markup);
    if (!rc) rc = tg_yaml_field(w, m, "surcharge", tg_conf__money_value, &g->surcharge);
    if (!rc) g->has_surcharge = tg_yaml_get(m, "surcharge") != NULL;
    if (!rc) rc = int_field(w, m, "platform_fee_bps", 0, 10000, &g->platform_fee_bps, &g->has_fee);
    if (!rc) rc = tg_yaml_field(w, m, "units", units_value, g);
    return rc;
}

static int app_margin_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    static const char *const fields[] = {"markup_bps", "surcharge", "platform_fee_bps", "units",
                                         NULL};
    int rc = tg_yaml_need_map(w, v);
    if (!rc) rc = tg_yaml_check_fields(w, v, fields);
    if (!rc) rc = margin_fields(w, v, dst);
    return rc;
}

static void margin_free(tg_margin *g)
{
    for (size_t i = 0; i < g->nunits; i++)
        free(g->units[i].name);
    free(g->units);
}

/* ---- webhooks ---------------------------------------------------------- */

static int webhook_url_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_str s;
    int rc = tg_conf__url(w, v, &s);
    return rc ? rc : tg_conf__dup(w, s, dst);
}

/* Reads the secret now, as a provider key is read, so a reload sees the
 * environment of the process. Unlike a provider key, a missing one fails
 * the load: a webhook is never sent unsigned. */
static int webhook_secret_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_app *a = dst;
    tg_str s;
    int rc = tg_conf__env_name(w, v, &s);
    if (!rc) rc = tg_conf__dup(w, s, &a->webhook_secret_env);
    if (rc) return rc;
    const char *secret = getenv(a->webhook_secret_env);
    if (!secret || !*secret)
        return tg_yaml_fail(w, v->line,
                            "$%s is not set or empty: set it to the secret webhooks are signed "
                            "with (they are never sent unsigned)",
                            a->webhook_secret_env);
    return tg_conf__dup(w, tg_str_c(secret), &a->webhook_secret);
}

static int webhook_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    static const char *const fields[] = {"url", "secret_env", NULL};
    tg_app *a = dst;
    const tg_yaml_node *url;
    int rc = tg_yaml_need_map(w, v);
    if (!rc) rc = tg_yaml_check_fields(w, v, fields);
    if (!rc) rc = tg_yaml_require(w, v, "url", &url);
    if (!rc && !tg_yaml_get(v, "secret_env"))
        rc = tg_yaml_fail(w, v->line,
                          "missing required field 'secret_env' (the environment variable that "
                          "holds the secret webhooks are signed with)");
    if (!rc) rc = tg_yaml_field(w, v, "url", webhook_url_value, &a->webhook_url);
    if (!rc) rc = tg_yaml_field(w, v, "secret_env", webhook_secret_value, a);
    return rc;
}

/* ---- apps, customers ---------------------------------------------------- */

/* Everything of an app but its overrides, which wait for the customers. */
static int app_item(tg_yaml_walk *w, const tg_yaml_node *m, void *item, tg_yaml_dupent *d)
{
    // clang-format off
    static const char *const fields[] = {
        "id", "margin", "overrides", "show_charge", "show_cost", "create_customers",
        "default_plan", "period_anchor_day", "webhook", "runs", NULL};
    // clang-format on
    static const tg_yaml_u32 anchor[] = {
        TG_CONF_U32(tg_app, "period_anchor_day", period_anchor_day, 1, 28)};
    tg_app *a = item;
    const tg_yaml_node *id, *ov;
    a->line = m->line;
    a->show_charge = true;
    a->period_anchor_day = 1;
    int rc = tg_yaml_need_map(w, m);
    if (!rc) rc = tg_yaml_check_fields(w, m, fields);
    if (!rc) rc = tg_yaml_require(w, m, "id", &id);
    if (!rc) rc = tg_yaml_field(w, m, "id", tg_conf__tag_value, &a->id);
    if (!rc) rc = tg_yaml_field(w, m, "margin", app_margin_value, &a->margin);
    /* an app's margin is whole: what the file leaves out is zero */
    a->margin.has_markup = a->margin.has_surcharge = a->margin.has_fee = true;
    if (!rc) rc = tg_yaml_field(w, m, "show_charge", tg_conf__bool_value, &a->show_charge);
    if (!rc) rc = tg_yaml_field(w, m, "show_cost", tg_conf__bool_value, &a->show_cost);
    if (!rc)
        rc = tg_yaml_field(w, m, "create_customers", tg_conf__bool_value, &a->create_customers);
    if (!rc) rc = tg_yaml_field(w, m, "default_plan", plan_ref, &a->default_plan);
    if (!rc) rc = tg_yaml_u32_fields(w, m, a, anchor, 1);
    if (!rc) rc = tg_yaml_field(w, m, "webhook", webhook_value, a);
    if (!rc) rc = tg_yaml_field(w, m, "runs", tg_conf__runs_value, &a->runs);
    if (!rc && (ov = tg_yaml_get(m, "overrides"))) {
        size_t mark = tg_yaml_push_field(w, "overrides");
        rc = tg_yaml_need_seq(w, ov);
        tg_yaml_pop(w, mark);
    }
    if (!rc) *d = (tg_yaml_dupent){tg_str_c(a->id), 0, id->line};
    return rc;
}

static int customer_item(tg_yaml_walk *w, const tg_yaml_node *m, void *item, tg_yaml_dupent *d)
{
    static const char *const fields[] = {"id", "app", "plan", NULL};
    tg_customer *cu = item;
    const tg_yaml_node *id, *app;
    cu->line = m->line;
    int rc = tg_yaml_need_map(w, m);
    if (!rc) rc = tg_yaml_check_fields(w, m, fields);
    if (!rc) rc = tg_yaml_require(w, m, "id", &id);
    if (!rc) rc = tg_yaml_require(w, m, "app", &app);
    if (!rc) rc = tg_yaml_field(w, m, "id", tg_conf__tag_value, &cu->id);
    if (!rc) rc = tg_yaml_field(w, m, "app", app_ref, &cu->app);
    if (!rc) rc = tg_yaml_field(w, m, "plan", plan_ref, &cu->plan);
    if (!rc) *d = (tg_yaml_dupent){tg_str_c(cu->id), 0, id->line};
    return rc;
}

/* ---- overrides --------------------------------------------------------- */

static int override_plan(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_plan *p;
    int rc = plan_ref(w, v, &p);
    return rc ? rc : tg_conf__dup(w, tg_str_c(p->id), dst);
}

static int override_model(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_model *md;
    int rc = tg_conf__model(w, v, &md);
    return rc ? rc : tg_conf__dup(w, tg_str_c(md->name), dst);
}

/* A customer of this app: another app's customer would never match. */
static int override_customer(tg_yaml_walk *w, const tg_yaml_node *m, tg_override *o,
                             const tg_app *a)
{
    const tg_yaml_node *v = tg_yaml_get(m, "customer");
    if (!v) return TG_OK;
    tg_customer *cu;
    char q[48], q2[48];
    size_t mark = tg_yaml_push_field(w, "customer");
    int rc = customer_ref(w, v, &cu);
    if (!rc && cu->app != a)
        rc =
            tg_yaml_fail(w, v->line, "customer '%s' belongs to app '%s', not to '%s'",
                         tg_yaml_quote(q, v->str), cu->app->id, tg_yaml_quote(q2, tg_str_c(a->id)));
    if (!rc) rc = tg_conf__dup(w, tg_str_c(cu->id), &o->customer);
    tg_yaml_pop(w, mark);
    return rc;
}

static int override_item(tg_yaml_walk *w, const tg_yaml_node *m, tg_override *o, const tg_app *a)
{
    static const char *const fields[] = {"plan",       "customer",  "feature",          "model",
                                         "markup_bps", "surcharge", "platform_fee_bps", "units",
                                         NULL};
    o->line = m->line;
    int rc = tg_yaml_need_map(w, m);
    if (!rc) rc = tg_yaml_check_fields(w, m, fields);
    if (!rc) rc = tg_yaml_field(w, m, "plan", override_plan, &o->plan);
    if (!rc) rc = override_customer(w, m, o, a);
    if (!rc) rc = tg_yaml_field(w, m, "feature", tg_conf__tag_value, &o->feature);
    if (!rc) rc = tg_yaml_field(w, m, "model", override_model, &o->model);
    if (!rc && !o->plan && !o->customer && !o->feature && !o->model)
        rc = tg_yaml_fail(w, m->line,
                          "names none of plan, customer, feature or model (the app's margin "
                          "covers every request)");
    if (!rc) rc = margin_fields(w, m, &o->margin);
    const tg_margin *g = &o->margin;
    if (!rc && !g->has_markup && !g->has_surcharge && !g->has_fee && !g->nunits)
        rc = tg_yaml_fail(w, m->line,
                          "sets none of markup_bps, surcharge, platform_fee_bps or units");
    return rc;
}

static int cmp_opt(const char *a, const char *b)
{
    if (!a || !b) return (a != NULL) - (b != NULL);
    return strcmp(a, b);
}

static int override_cmp(const void *x, const void *y)
{
    const tg_override *a = *(const tg_override *const *)x, *b = *(const tg_override *const *)y;
    int c = cmp_opt(a->plan, b->plan);
    if (!c) c = cmp_opt(a->customer, b->customer);
    if (!c) c = cmp_opt(a->feature, b->feature);
    if (!c) c = cmp_opt(a->model, b->model);
    if (!c) c = (a > b) - (a < b); /* file order within a run of equals */
    return c;
}

/* Two overrides matching the same requests would tie on specificity, so
 * which one wins would be an accident of the file's order. Sorted, so a
 * few thousand per-customer overrides stay cheap; the earliest repeat in
 * file order is reported. */
static int override_dups(tg_yaml_walk *w, const tg_app *a)
{
    if (a->noverrides < 2) return TG_OK;
    const tg_override **s = calloc(a->noverrides, sizeof *s);
    if (!s) return tg_yaml_nomem(w);
    for (size_t i = 0; i < a->noverrides; i++)
        s[i] = &a->overrides[i];
    qsort(s, a->noverrides, sizeof *s, override_cmp);
    const tg_override *dup = NULL, *first = NULL;
    for (size_t i = 1, run = 0; i < a->noverrides; i++) {
        if (cmp_opt(s[i]->plan, s[run]->plan) || cmp_opt(s[i]->customer, s[run]->customer) ||
            cmp_opt(s[i]->feature, s[run]->feature) || cmp_opt(s[i]->model, s[run]->model)) {
            run = i;
            continue;
        }
        if (!dup || s[i] < dup) {
            dup = s[i];
            first = s[run];
        }
    }
    free(s);
    if (!dup) return TG_OK;
    size_t mark = tg_yaml_push_index(w, (size_t)(dup - a->overrides));
    int rc = tg_yaml_fail(w, dup->line, "matches the same requests as overrides[%zu] at line %d",
                          (size_t)(first - a->overrides), first->line);
    tg_yaml_pop(w, mark);
    return rc;
}

static int app_overrides(tg_yaml_walk *w, const tg_yaml_node *v, tg_app *a)
{
    /* app_item checked that it is a list */
    if (v->n == 0) return TG_OK;
    if (!(a->overrides = calloc(v->n, sizeof *a->overrides))) return tg_yaml_nomem(w);
    int rc = TG_OK;
    size_t i = 0;
    for (const tg_yaml_node *it = v->child; it && !rc; it = it->next, i++) {
        size_t mark = tg_yaml_push_index(w, i);
        a->noverrides = i + 1;
        rc = override_item(w, it, &a->overrides[i], a);
        tg_yaml_pop(w, mark);
    }
    return rc ? rc : override_dups(w, a);
}

static int walk_overrides(tg_yaml_walk *w, const tg_yaml_node *apps)
{
    tg_config *c = tg_conf__config(w);
    int rc = TG_OK;
    size_t i = 0;
    for (const tg_yaml_node *it = apps ? apps->child : NULL; it && !rc; it = it->next, i++) {
        const tg_yaml_node *ov = tg_yaml_get(it, "overrides");
        if (!ov) continue;
        size_t mark = tg_yaml_push(w, "apps[%zu].overrides", i);
        rc = app_overrides(w, ov, &c->apps[i]);
        tg_yaml_pop(w, mark);
    }
    return rc;
}

/* ---- keys -------------------------------------------------------------- */

static int key_model(tg_yaml_walk *w, const tg_yaml_node *v, tg_key *k)
{
    tg_model *md;
    char q[48];
    int rc = tg_conf__model(w, v, &md);
    if (rc) return rc;
    for (size_t i = 0; i < k->nmodels; i++)
        if (strcmp(k->models[i], md->name) == 0)
            return tg_yaml_fail(w, v->line, "model '%s' is listed twice", tg_yaml_quote(q, v->str));
    return tg_conf__dup(w, tg_str_c(md->name), &k->models[k->nmodels++]);
}

static int key_models_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_key *k = dst;
    int rc = tg_yaml_need_seq(w, v);
    if (rc) return rc;
    if (v->n == 0)
        return tg_yaml_fail(w, v->line, "must list at least one model (leave it out to allow all)");
    if (!(k->models = calloc(v->n, sizeof *k->models))) return tg_yaml_nomem(w);
    size_t i = 0;
    for (const tg_yaml_node *it = v->child; it && !rc; it = it->next, i++) {
        size_t mark = tg_yaml_push_index(w, i);
        rc = key_model(w, it, k);
        tg_yaml_pop(w, mark);
    }
    return rc;
}

static int sha256_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    int rc = tg_yaml_need_scalar(w, v);
    if (rc) return rc;
    /* Never echo the value: it may be the key itself, pasted by mistake. */
    if (tg_hex_decode32(v->str, dst))
        return tg_yaml_fail(w, v->line,
                            "must be 64 hex digits, the SHA-256 of the key "
                            "(tollgate keys hash KEY); got %zu characters",
                            v->str.n);
    return TG_OK;
}

/* The app and customer a key bills to: a customer key bills its customer's
 * app, so naming another app is a contradiction. */
static int key_owner(tg_yaml_walk *w, const tg_yaml_node *m, tg_key *k)
{
    int rc = tg_yaml_field(w, m, "customer", customer_ref, &k->customer);
    if (!rc && k->customer) k->app = k->customer->app;
    const tg_yaml_node *v = tg_yaml_get(m, "app");
    if (rc || !v) return rc;
    tg_app *a;
    char q[48];
    size_t mark = tg_yaml_push_field(w, "app");
    rc = app_ref(w, v, &a);
    if (!rc && k->customer && k->customer->app != a)
        rc = tg_yaml_fail(w, v->line, "is '%s', but customer '%s' belongs to app '%s'",
                          tg_yaml_quote(q, v->str), k->customer->id, k->customer->app->id);
    if (!rc) k->app = a;
    tg_yaml_pop(w, mark);
    return rc;
}

static int key_item(tg_yaml_walk *w, const tg_yaml_node *m, void *item, tg_yaml_dupent *d)
{
    static const char *const fields[] = {"id",  "sha256",   "admin",  "models",
                                         "app", "customer", "limits", NULL};
    tg_key *k = item;
    const tg_yaml_node *id, *sha;
    k->line = m->line;
    int rc = tg_yaml_need_map(w, m);
    if (!rc) rc = tg_yaml_check_fields(w, m, fields);
    if (!rc) rc = tg_yaml_require(w, m, "id", &id);
    if (!rc) rc = tg_yaml_require(w, m, "sha256", &sha);
    if (!rc) rc = tg_yaml_field(w, m, "id", tg_conf__name_value, &k->id);
    if (!rc) rc = tg_yaml_field(w, m, "sha256", sha256_value, k->hash);
    if (!rc) rc = tg_yaml_field(w, m, "admin", tg_conf__bool_value, &k->admin);
    if (!rc) rc = tg_yaml_field(w, m, "models", key_models_value, k);
    if (!rc) rc = key_owner(w, m, k);
    if (!rc) rc = tg_yaml_field(w, m, "limits", tg_conf__limits_value, &k->limits);
    if (!rc) k->has_limits = tg_yaml_get(m, "limits") != NULL;
    if (!rc) *d = (tg_yaml_dupent){tg_str_c(k->id), 0, id->line};
    return rc;
}

/* Keys are unique by hash too: two ids for one secret would make the id a
 * lie in every log line. */
static int key_hash_check(tg_yaml_walk *w, const tg_yaml_node *keys)
{
    tg_config *c = tg_conf__config(w);
    if (c->nkeys < 2) return TG_OK;
    tg_yaml_dupent *d = calloc(c->nkeys, sizeof *d);
    if (!d) return tg_yaml_nomem(w);
    /* the list in the file, item by item, for the line of each sha256 */
    const tg_yaml_node *it = keys->child;
    for (size_t i = 0; i < c->nkeys; i++, it = it->next) {
        tg_str h = tg_str_make((const char *)c->keys[i].hash, TG_SHA256_LEN);
        d[i] = (tg_yaml_dupent){h, i, tg_yaml_get(it, "sha256")->line};
    }
    int rc = tg_yaml_dup_check(w, d, c->nkeys, "keys", "sha256", "sha256", false);
    free(d);
    return rc;
}

int tg_conf__keys(tg_yaml_walk *w, const tg_yaml_node *root)
{
    tg_config *c = tg_conf__config(w);
    int rc = tg_conf__section_list(w, root, "keys", sizeof(tg_key), (void **)&c->keys, &c->nkeys,
                                   key_item, "id", "key id");
    if (!rc && c->nkeys) rc = key_hash_check(w, tg_yaml_get(root, "keys"));
    return rc;
}

/* ---- entry points ------------------------------------------------------ */

int tg_conf__catalog(tg_yaml_walk *w, const tg_yaml_node *root)
{
    tg_config *c = tg_conf__config(w);
    int rc = tg_conf__section_list(w, root, "plans", sizeof(tg_plan), (void **)&c->plans,
                                   &c->nplans, tg_conf__plan_item, "id", "plan id");
    if (!rc)
        rc = tg_conf__section_list(w, root, "apps", sizeof(tg_app), (void **)&c->apps, &c->napps,
                                   app_item, "id", "app id");
    if (!rc)
        rc =
            tg_conf__section_list(w, root, "customers", sizeof(tg_customer), (void **)&c->customers,
                                  &c->ncustomers, customer_item, "id", "customer id");
    if (!rc && c->napps) rc = walk_overrides(w, tg_yaml_get(root, "apps"));
    return rc;
}

void tg_conf__catalog_free(tg_config *c)
{
    for (size_t i = 0; i < c->nplans; i++)
        tg_conf__plan_free(&c->plans[i]);
    for (size_t i = 0; i < c->napi_plans; i++)
        tg_conf__plan_free(&c->api_plans[i]);
    for (size_t i = 0; i < c->napps; i++) {
        tg_app *a = &c->apps[i];
        free(a->id);
        margin_free(&a->margin);
        for (size_t j = 0; j < a->noverrides; j++) {
            tg_override *o = &a->overrides[j];
            free(o->plan);
            free(o->customer);
            free(o->feature);
            free(o->model);
            margin_free(&o->margin);
        }
        free(a->overrides);
        free(a->webhook_url);
        free(a->webhook_secret_env);
        if (a->webhook_secret) explicit_bzero(a->webhook_secret, strlen(a->webhook_secret));
        free(a->webhook_secret);
    }
    for (size_t i = 0; i < c->ncustomers; i++)
        free(c->customers[i].id);
    free(c->plans);
    free(c->api_plans);
    free(c->apps);
    free(c->customers);
}

/* ---- lookups ----------------------------------------------------------- */

/* Linear: the lists are short, and while a section is being read its last
 * item may not have an id yet. */
const tg_app *tg_config_app(const tg_config *c, tg_str id)
{
    for (size_t i = 0; i < c->napps; i++)
        if (c->apps[i].id && tg_str_eq(tg_str_c(c->apps[i].id), id)) return &c->apps[i];
    return NULL;
}

const tg_customer *tg_config_customer(const tg_config *c, tg_str id)
{
    for (size_t i = 0; i < c->ncustomers; i++)
        if (c->customers[i].id && tg_str_eq(tg_str_c(c->customers[i].id), id))
            return &c->customers[i];
    return NULL;
}

/* The API plans are sorted by id and may be many (a plan per large
 * customer): a binary search. */
const tg_plan *tg_config_plan(const tg_config *c, tg_str id)
{
    for (size_t i = 0; i < c->nplans; i++)
        if (c->plans[i].id && tg_str_eq(tg_str_c(c->plans[i].id), id)) return &c->plans[i];
    size_t lo = 0, hi = c->napi_plans;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = tg_str_cmp(tg_str_c(c->api_plans[mid].id), id);
        if (cmp == 0) return &c->api_plans[mid];
        if (cmp < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

bool tg_config_plan_api(const tg_config *c, const tg_plan *p)
{
    return c->napi_plans && p >= c->api_plans && p < c->api_plans + c->napi_plans;
}
