/* Plans: what a customer pays per period, the credits it gets, what
 * happens past them and the limits that hold whatever the concurrency;
 * and the rate and run limits that apps and keys share with plans. See
 * config.h for what each field means.
 *
 * Credits are decimals read exactly like money (tg_money_parse, never a
 * float), in nano-credits: "2.5" is 2,500,000,000. A plan names public
 * models, so models are read before it (config.c). Defaults are set before
 * any field is read, so a field left out keeps its default and a plan that
 * fails half-way is still whole enough to free: its arrays are calloc'd to
 * their final size and their counts grow as items are filled. */
#include "conf/walk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CREDIT TG_NANOS_PER_CENT /* "0.01" USD of charge per credit */
#define DEFAULT_MAX_TOKENS 1024
#define DEFAULT_DEGRADE_AT 100
#define MAX_PERCENT 1000 /* thresholds and degrade.at: up to 10x the included credits */

/* ---- limits, shared with apps and keys -------------------------------- */

int tg_conf__limits_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    static const char *const fields[] = {"rpm", "tpm", "concurrent", NULL};
    static const tg_yaml_u32 f[] = {
        TG_CONF_U32(tg_limits, "rpm", rpm, 0, 10000000),
        TG_CONF_U32(tg_limits, "concurrent", concurrent, 0, 100000),
    };
    tg_limits *l = dst;
    int rc = tg_yaml_need_map(w, v);
    if (!rc) rc = tg_yaml_check_fields(w, v, fields);
    if (!rc) rc = tg_yaml_u32_fields(w, v, l, f, sizeof f / sizeof *f);
    const tg_yaml_node *tpm = tg_yaml_get(v, "tpm");
    if (!rc && tpm) {
        size_t mark = tg_yaml_push_field(w, "tpm");
        rc = tg_yaml_u64(w, tpm, 0, 1000000000000ULL, &l->tpm);
        tg_yaml_pop(w, mark);
    }
    return rc;
}

int tg_conf__runs_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    static const char *const fields[] = {"max_steps", "max_cost", NULL};
    static const tg_yaml_u32 f[] = {TG_CONF_U32(tg_run_limits, "max_steps", max_steps, 0, 1000000)};
    tg_run_limits *r = dst;
    int rc = tg_yaml_need_map(w, v);
    if (!rc) rc = tg_yaml_check_fields(w, v, fields);
    if (!rc) rc = tg_yaml_u32_fields(w, v, r, f, 1);
    if (!rc) rc = tg_yaml_field(w, v, "max_cost", tg_conf__money_value, &r->max_cost);
    return rc;
}

/* ---- values ------------------------------------------------------------ */

/* Money or credits that must be more than 0: a credit worth 0 USD would
 * turn any charge into infinitely many credits, and a cap of 0 would
 * refuse every request. */
static int positive_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    int rc = tg_conf__money_value(w, v, dst);
    if (!rc && *(int64_t *)dst == 0) rc = tg_yaml_fail(w, v->line, "must be more than 0");
    return rc;
}

static int unit_credits_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_plan *p = dst;
    /* credits per unit are decimals like money: tg_conf__money_value reads them */
    return TG_CONF_UNITS(w, v, tg_unit_credits, credits, tg_conf__money_value, p->unit_credits,
                         p->nunit_credits);
}

static int hard_cap_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    static const char *const fields[] = {"usd", "credits", NULL};
    tg_plan *p = dst;
    int rc = tg_yaml_need_map(w, v);
    if (!rc) rc = tg_yaml_check_fields(w, v, fields);
    if (rc) return rc;
    bool usd = tg_yaml_get(v, "usd") != NULL, credits = tg_yaml_get(v, "credits") != NULL;
    if (usd && credits) return tg_yaml_fail(w, v->line, "give usd or credits, not both");
    if (!usd && !credits)
        return tg_yaml_fail(w, v->line,
                            "give usd (a cap on the period's charge, {usd: \"100.00\"}) or "
                            "credits (on its credits, {credits: 5000})");
    p->cap = usd ? TG_CAP_USD : TG_CAP_CREDITS;
    return usd ? tg_yaml_field(w, v, "usd", positive_value, &p->cap_usd)
               : tg_yaml_field(w, v, "credits", positive_value, &p->cap_credits);
}

/* Percents of the included credits, each crossed once per period. */
static int thresholds_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_plan *p = dst;
    int rc = tg_yaml_need_seq(w, v);
    if (rc) return rc;
    if (v->n > TG_MAX_THRESHOLDS)
        return tg_yaml_fail(w, v->line, "at most %d thresholds", TG_MAX_THRESHOLDS);
    p->nthresholds = 0; /* the file's list replaces the default */
    size_t i = 0;
    for (const tg_yaml_node *it = v->child; it && !rc; it = it->next, i++) {
        size_t mark = tg_yaml_push_index(w, i);
        uint64_t x;
        rc = tg_yaml_u64(w, it, 1, MAX_PERCENT, &x);
        if (!rc && i > 0 && x <= p->thresholds[i - 1])
            rc = tg_yaml_fail(w, it->line, "must be more than the threshold before it (%u)",
                              p->thresholds[i - 1]);
        if (!rc) p->thresholds[p->nthresholds++] = (uint32_t)x;
        tg_yaml_pop(w, mark);
    }
    return rc;
}

/* A list of at least one defined model, none twice, into a calloc'd *arr. */
static int model_list(tg_yaml_walk *w, const tg_yaml_node *v, tg_model ***arr, size_t *n,
                      const char *empty)
{
    int rc = tg_yaml_need_seq(w, v);
    if (rc) return rc;
    if (v->n == 0) return tg_yaml_fail(w, v->line, "%s", empty);
    if (!(*arr = calloc(v->n, sizeof **arr))) return tg_yaml_nomem(w);
    size_t i = 0;
    for (const tg_yaml_node *it = v->child; it && !rc; it = it->next, i++) {
        size_t mark = tg_yaml_push_index(w, i);
        tg_model *md;
        char q[48];
        rc = tg_conf__model(w, it, &md);
        for (size_t j = 0; !rc && j < *n; j++)
            if ((*arr)[j] == md)
                rc = tg_yaml_fail(w, it->line, "model '%s' is listed twice",
                                  tg_yaml_quote(q, it->str));
        if (!rc) (*arr)[(*n)++] = md;
        tg_yaml_pop(w, mark);
    }
    return rc;
}

static int models_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_plan *p = dst;
    return model_list(w, v, &p->models, &p->nmodels,
                      "must list at least one model (leave it out to allow all)");
}

static int degrade_from_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_plan *p = dst;
    return model_list(w, v, &p->degrade_from, &p->ndegrade_from,
                      "must list at least one model (leave degrade out for none)");
}

static bool plan_allows(const tg_plan *p, const tg_model *md)
{
    for (size_t i = 0; i < p->nmodels; i++)
        if (p->models[i] == md) return true;
    return false;
}

/* Read after from and after the plan's models, which it is checked against. */
static int degrade_to_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_plan *p = dst;
    tg_model *md;
    char q[48];
    int rc = tg_conf__model(w, v, &md);
    if (rc) return rc;
    for (size_t i = 0; i < p->ndegrade_from; i++)
        if (p->degrade_from[i] == md)
            return tg_yaml_fail(w, v->line,
                                "'%s' is also in from: a model cannot degrade to itself",
                                tg_yaml_quote(q, v->str));
    if (p->nmodels && !plan_allows(p, md))
        return tg_yaml_fail(w, v->line,
                            "'%s' is not one of the plan's models, so its customers could not "
                            "be served it (add it to models)",
                            tg_yaml_quote(q, v->str));
    p->degrade_to = md;
    return TG_OK;
}

static int degrade_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    static const char *const fields[] = {"from", "to", "at", NULL};
    static const tg_yaml_u32 at[] = {TG_CONF_U32(tg_plan, "at", degrade_at, 0, MAX_PERCENT)};
    const tg_yaml_node *n;
    int rc = tg_yaml_need_map(w, v);
    if (!rc) rc = tg_yaml_check_fields(w, v, fields);
    if (!rc) rc = tg_yaml_require(w, v, "from", &n);
    if (!rc) rc = tg_yaml_require(w, v, "to", &n);
    if (!rc) rc = tg_yaml_field(w, v, "from", degrade_from_value, dst);
    if (!rc) rc = tg_yaml_field(w, v, "to", degrade_to_value, dst);
    if (!rc) rc = tg_yaml_u32_fields(w, v, dst, at, 1);
    return rc;
}

/* ---- plans ------------------------------------------------------------- */

static void plan_defaults(tg_plan *p)
{
    p->credit = DEFAULT_CREDIT;
    p->thresholds[0] = 80;
    p->thresholds[1] = 100;
    p->nthresholds = 2;
    p->degrade_at = DEFAULT_DEGRADE_AT;
    p->default_max_tokens = DEFAULT_MAX_TOKENS;
}

static int plan_runs(tg_yaml_walk *w, const tg_yaml_node *m, tg_plan *p)
{
    const tg_yaml_node *v = tg_yaml_get(m, "runs");
    int rc = tg_yaml_field(w, m, "runs", tg_conf__runs_value, &p->runs);
    if (!rc && v) {
        /* what the plan leaves out comes from the app */
        p->has_run_steps = tg_yaml_get(v, "max_steps") != NULL;
        p->has_run_cost = tg_yaml_get(v, "max_cost") != NULL;
    }
    return rc;
}

#define PLAN_FIELDS                                                                               \
    "id", "fee", "included_credits", "credit", "unit_credits", "overage", "hard_cap",             \
        "thresholds", "models", "degrade", "default_max_tokens", "limits", "key_limits", "runs"

/* Every field of plan m but its id, onto p's defaults. */
static int plan_fields(tg_yaml_walk *w, const tg_yaml_node *m, tg_plan *p)
{
    static const tg_yaml_u32 max_tokens[] = {
        TG_CONF_U32(tg_plan, "default_max_tokens", default_max_tokens, 1, 10000000)};
    int rc = tg_yaml_field(w, m, "fee", tg_conf__money_value, &p->fee);
    if (!rc) /* credits are decimals like money */
        rc = tg_yaml_field(w, m, "included_credits", tg_conf__money_value, &p->included);
    if (!rc) rc = tg_yaml_field(w, m, "credit", positive_value, &p->credit);
    if (!rc) rc = tg_yaml_field(w, m, "unit_credits", unit_credits_value, p);
    if (!rc) rc = tg_yaml_field(w, m, "overage", tg_conf__money_value, &p->overage);
    if (!rc) p->has_overage = tg_yaml_get(m, "overage") != NULL;
    if (!rc) rc = tg_yaml_field(w, m, "hard_cap", hard_cap_value, p);
    if (!rc) rc = tg_yaml_field(w, m, "thresholds", thresholds_value, p);
    if (!rc) rc = tg_yaml_field(w, m, "models", models_value, p);
    if (!rc) rc = tg_yaml_field(w, m, "degrade", degrade_value, p); /* after models */
    if (!rc) rc = tg_yaml_u32_fields(w, m, p, max_tokens, 1);
    if (!rc) rc = tg_yaml_field(w, m, "limits", tg_conf__limits_value, &p->limits);
    if (!rc) rc = tg_yaml_field(w, m, "key_limits", tg_conf__limits_value, &p->key_limits);
    if (!rc) rc = plan_runs(w, m, p);
    return rc;
}

int tg_conf__plan_item(tg_yaml_walk *w, const tg_yaml_node *m, void *item, tg_yaml_dupent *d)
{
    static const char *const fields[] = {PLAN_FIELDS, NULL};
    tg_plan *p = item;
    const tg_yaml_node *id;
    p->line = m->line;
    plan_defaults(p);
    int rc = tg_yaml_need_map(w, m);
    if (!rc) rc = tg_yaml_check_fields(w, m, fields);
    if (!rc) rc = tg_yaml_require(w, m, "id", &id);
    if (!rc) rc = tg_yaml_field(w, m, "id", tg_conf__tag_value, &p->id);
    if (!rc) rc = plan_fields(w, m, p);
    if (!rc) *d = (tg_yaml_dupent){tg_str_c(p->id), 0, id->line};
    return rc;
}

/* ---- plans made through the admin API ----------------------------------- */

/* Takes the members of mapping m whose value is null out of the tree,
 * in m and in the mappings under it: in a JSON plan null means "left
 * out", as GET /admin/v1/plans writes what a plan does not set. */
static void drop_nulls(tg_yaml_node *m)
{
    if (m->kind == TG_YAML_SEQ) {
        for (tg_yaml_node *it = m->child; it; it = it->next) drop_nulls(it);
        return;
    }
    if (m->kind != TG_YAML_MAP) return;
    for (tg_yaml_node **link = &m->child; *link;) {
        tg_yaml_node *v = *link;
        if (tg_yaml_is_null(v) || tg_str_eq(v->key->str, TG_STR("source"))) {
            *link = v->next;
            m->n--;
        } else {
            drop_nulls(v);
            link = &v->next;
        }
    }
}

/* API plan def into p (zeroed), which is freeable whatever happens. */
static int api_plan(tg_config *c, const tg_plan_def *def, tg_plan *p, tg_errmsg *err)
{
    static const char *const fields[] = {PLAN_FIELDS, NULL};
    char name[64], q[48];
    snprintf(name, sizeof name, "API plan '%s'", tg_yaml_quote(q, def->id));
    tg_yaml_walk w = {.file = name, .err = err, .data = c, .no_lines = true};
    plan_defaults(p);
    if (!tg_tag_valid(def->id))
        return tg_errmsg_set(err, "%s: a plan id is 1 to 128 letters, digits and . _ : @ / + = # -", name);
    for (size_t i = 0; i < c->nplans; i++)
        if (tg_str_eq(tg_str_c(c->plans[i].id), def->id))
            return tg_errmsg_set(err, "%s: %s defines a plan of this id too; rename or remove "
                                      "one of them", name, c->path);
    if (!(p->id = tg_str_dup(def->id))) return tg_yaml_nomem(&w);
    tg_yaml_doc doc;
    int rc = tg_yaml_parse(&doc, name, def->body, err);
    if (rc) return rc;
    tg_yaml_node *m = doc.root;
    if (!m || m->kind != TG_YAML_MAP) {
        rc = tg_errmsg_set(err, "%s: must be an object of the plan's fields", name);
    } else {
        drop_nulls(m);
        rc = tg_yaml_check_fields(&w, m, fields);
        const tg_yaml_node *id = tg_yaml_get(m, "id");
        if (!rc && id && !tg_str_eq(id->str, def->id))
            rc = tg_errmsg_set(err, "%s: id: '%s' is not the plan's id", name, tg_yaml_quote(q, id->str));
        if (!rc) rc = plan_fields(&w, m, p);
    }
    tg_yaml_release(&doc);
    return rc;
}

int tg_config_add_plans(tg_config *c, const tg_plan_def *defs, size_t n, tg_errmsg *err)
{
    if (!n) return TG_OK;
    for (size_t i = 1; i < n; i++)
        if (tg_str_cmp(defs[i - 1].id, defs[i].id) >= 0)
            return tg_errmsg_set(err, "plans: not sorted by id, or one twice");
    if (!(c->api_plans = calloc(n, sizeof *c->api_plans))) {
        tg_errmsg_set(err, "plans: out of memory");
        return TG_ENOMEM;
    }
    int rc = TG_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = api_plan(c, &defs[i], &c->api_plans[i], err);
        c->napi_plans = i + 1; /* so that a failed one is freed too */
    }
    if (rc) {
        for (size_t i = 0; i < c->napi_plans; i++)
            tg_conf__plan_free(&c->api_plans[i]);
        free(c->api_plans);
        c->api_plans = NULL;
        c->napi_plans = 0;
    }
    return rc;
}

void tg_conf__plan_free(tg_plan *p)
{
    free(p->id);
    for (size_t i = 0; i < p->nunit_credits; i++)
        free(p->unit_credits[i].name);
    free(p->unit_credits);
    free(p->models);
    free(p->degrade_from);
}

const tg_unit_credits *tg_plan_unit(const tg_plan *p, tg_str name)
{
    for (size_t i = 0; i < p->nunit_credits; i++)
        if (tg_str_eq(tg_str_c(p->unit_credits[i].name), name)) return &p->unit_credits[i];
    return NULL;
}
