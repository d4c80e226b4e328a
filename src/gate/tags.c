/* Attribution. See tags.h: the rules for keys, customers and tags live
 * there; here is the order they are applied in. */
#include "gate/tags.h"

#define MAX_UNIT_COUNT 1000000

bool tg_tag_value_ok(tg_str v)
{
    if (v.n == 0 || v.n > TG_TAG_MAX || v.p[0] == ' ' || v.p[v.n - 1] == ' ') return false;
    for (size_t i = 0; i < v.n; i++)
        if ((unsigned char)v.p[i] < 0x20 || (unsigned char)v.p[i] > 0x7e) return false;
    return true;
}

typedef struct {
    const char *header;   /* X-Tollgate-... */
    const char *meta;     /* metadata key */
    const char *field;    /* "metadata." meta: what an error names */
    size_t off;           /* field of tg_tags */
} tag_source;

#define SOURCE(h, m, f) {"X-Tollgate-" h, m, "metadata." m, offsetof(tg_tags, f)}
static const tag_source sources[] = {
    SOURCE("Workspace", "workspace", workspace), SOURCE("User", "user", user),
    SOURCE("Feature", "feature", feature),       SOURCE("Workflow", "workflow", workflow),
    SOURCE("Run", "run", run),                   SOURCE("Unit", "unit", unit),
};

static tg_attr_result bad(tg_errmsg *err, const char **param, const char *name, const char *why)
{
    tg_errmsg_set(err, "%s %s", name, why);
    *param = name;
    return TG_ATTR_BAD_TAG;
}

#define BAD_VALUE "must be 1 to 128 printable ASCII characters, without leading or trailing spaces"

/* A body string value: a view when it has no escapes, else decoded into
 * tmp (a tag with escapes is rare: they only ever spell printable ASCII).
 * `field` names it for the client ("user", "metadata.feature"); `param`
 * is the top-level member at fault. */
static tg_attr_result body_string(tg_json_val v, const char *field, const char *param_name,
                                  tg_buf *tmp, tg_str *out, tg_errmsg *err, const char **param)
{
    const char *why = NULL;
    if (v.type != TG_JSON_STRING) {
        why = "must be a string";
    } else if (!tg_json_str_view(v, out)) {
        tg_buf_clear(tmp);
        if (tg_json_str_decode(v, tmp)) why = BAD_VALUE;
        else *out = tg_buf_str(tmp);
    }
    if (!why && !tg_tag_value_ok(*out)) why = BAD_VALUE;
    if (!why) return TG_ATTR_OK;
    tg_errmsg_set(err, "%s %s", field, why);
    *param = param_name;
    return TG_ATTR_BAD_TAG;
}

static tg_attr_result read_count(tg_str s, const char *name, int64_t *out, tg_errmsg *err,
                                 const char **param)
{
    uint64_t v;
    if (tg_str_to_u64(s, &v) || v > MAX_UNIT_COUNT)
        return bad(err, param, name, "must be a whole number from 0 to 1000000");
    *out = (int64_t)v;
    return TG_ATTR_OK;
}

/* The request's tags from headers, else body. */
static tg_attr_result read_tags(const tg_req *r, tg_json_val body, tg_tags *t, tg_errmsg *err,
                                const char **param)
{
    tg_buf tmp;
    tg_buf_init(&tmp, 4 * TG_TAG_MAX); /* escapes decode shorter than they are written */
    tg_json_val meta = tg_json_get(body, TG_STR("metadata"));
    tg_attr_result rc = TG_ATTR_OK;
    if (meta.type != TG_JSON_NONE && meta.type != TG_JSON_OBJECT && meta.type != TG_JSON_NULL)
        rc = bad(err, param, "metadata", "must be an object of strings");
    for (size_t i = 0; !rc && i < sizeof sources / sizeof sources[0]; i++) {
        const tag_source *s = &sources[i];
        char *dst = (char *)t + s->off;
        tg_str h = tg_req_header(r, tg_str_c(s->header));
        if (h.p) {
            h = tg_str_trim(h);
            if (!tg_tag_value_ok(h)) rc = bad(err, param, s->header, BAD_VALUE);
            else tg_record_set(dst, h.p, h.n);
            continue;
        }
        tg_json_val v = tg_json_get(meta, tg_str_c(s->meta));
        const char *field = s->field, *param_name = "metadata";
        if (v.type == TG_JSON_NONE && s->off == offsetof(tg_tags, user)) {
            v = tg_json_get(body, TG_STR("user"));
            field = param_name = "user";
        }
        if (v.type == TG_JSON_NONE || v.type == TG_JSON_NULL) continue;
        tg_str val;
        rc = body_string(v, field, param_name, &tmp, &val, err, param);
        if (!rc) tg_record_set(dst, val.p, val.n);
    }
    if (!rc) {
        t->unit_count = t->unit[0] ? 1 : 0;
        tg_str h = tg_req_header(r, TG_STR("X-Tollgate-Unit-Count"));
        tg_json_val v = tg_json_get(meta, TG_STR("unit_count"));
        if (h.p) {
            rc = read_count(tg_str_trim(h), "X-Tollgate-Unit-Count", &t->unit_count, err, param);
        } else if (v.type == TG_JSON_STRING || v.type == TG_JSON_NUMBER) {
            tg_str s;
            if (v.type == TG_JSON_NUMBER) s = tg_str_make(v.p, v.n);
            else if (!tg_json_str_view(v, &s)) s = TG_STR("x");
            rc = read_count(s, "metadata.unit_count", &t->unit_count, err, param);
            if (rc) *param = "metadata";
        } else if (v.type != TG_JSON_NONE && v.type != TG_JSON_NULL) {
            rc = bad(err, param, "metadata.unit_count", "must be a whole number from 0 to 1000000");
            *param = "metadata";
        }
        if (!rc && (h.p || v.type == TG_JSON_STRING || v.type == TG_JSON_NUMBER) && !t->unit[0])
            rc = bad(err, param, h.p ? "X-Tollgate-Unit-Count" : "metadata.unit_count",
                     "needs a unit (X-Tollgate-Unit or metadata.unit) to count");
    }
    tg_buf_release(&tmp);
    return rc;
}

/* plan is the customer's plan by id; the record keeps the id even when
 * the configuration no longer defines it (then out->plan is NULL). */
static void set_customer(const tg_config *cfg, tg_attribution *out, const tg_app *app, tg_str id,
                         tg_str plan)
{
    out->app = app;
    out->plan = plan.n ? tg_config_plan(cfg, plan) : NULL;
    tg_record_set(out->tags.app, app->id, strlen(app->id));
    tg_record_set(out->tags.customer, id.p, id.n);
    tg_record_set(out->tags.plan, plan.p, plan.n);
}

static tg_str plan_id(const tg_plan *p) { return p ? tg_str_c(p->id) : TG_STR(""); }

/* The customer named by X-Tollgate-Customer for an app key (app != NULL)
 * or an admin key (app == NULL). */
static tg_attr_result named_customer(const tg_config *cfg, tg_customers *reg, const tg_app *app,
                                     tg_str id, tg_attribution *out, tg_errmsg *err)
{
    const tg_customer *c = tg_config_customer(cfg, id);
    if (c) {
        if (app && c->app != app) goto forbidden;
        set_customer(cfg, out, c->app, id, plan_id(c->plan));
        return TG_ATTR_OK;
    }
    tg_customer_info info;
    if (reg && tg_customers_get(reg, id, &info)) {
        const tg_app *owner = tg_config_app(cfg, tg_str_c(info.app));
        if (!owner || (app && owner != app)) goto forbidden;
        set_customer(cfg, out, owner, id, tg_str_c(info.plan));
        return TG_ATTR_OK;
    }
    if (!app || !app->create_customers || !reg) {
        tg_errmsg_set(err, "Unknown customer '%.*s'. Add it under customers: in the configuration%s.",
                      TG_STR_FMT(id), app ? ", or set create_customers: true on its app" : "");
        return TG_ATTR_UNKNOWN_CUSTOMER;
    }
    if (!tg_tag_valid(id)) {
        tg_errmsg_set(err, "X-Tollgate-Customer: a new customer id must be 1 to 128 characters of "
                           "letters, digits and . _ : @ / + = # -");
        return TG_ATTR_BAD_TAG;
    }
    if (tg_customers_get_or_add(reg, id, tg_str_c(app->id), plan_id(app->default_plan), &info))
        return TG_ATTR_NOMEM;
    if (strcmp(info.app, app->id) != 0) goto forbidden;
    set_customer(cfg, out, app, id, tg_str_c(info.plan));
    return TG_ATTR_OK;
forbidden:
    tg_errmsg_set(err, "This key may not bill customer '%.*s': it belongs to another app.",
                  TG_STR_FMT(id));
    return TG_ATTR_FORBIDDEN;
}

tg_attr_result tg_attribute(const tg_config *cfg, tg_customers *reg, const tg_key *key,
                            const tg_req *r, tg_json_val body, tg_attribution *out,
                            tg_errmsg *err, const char **param)
{
    memset(out, 0, sizeof *out);
    *param = NULL;
    tg_attr_result rc = read_tags(r, body, &out->tags, err, param);
    if (rc) return rc;
    tg_str named = tg_req_header(r, TG_STR("X-Tollgate-Customer"));
    if (named.p) {
        named = tg_str_trim(named);
        if (!tg_tag_value_ok(named)) return bad(err, param, "X-Tollgate-Customer", BAD_VALUE);
    }
    if (key->customer) {
        const tg_customer *c = key->customer;
        if (named.p && !tg_str_eq(named, tg_str_c(c->id))) {
            tg_errmsg_set(err, "This key bills customer '%s' and may not name another "
                               "(X-Tollgate-Customer: %.*s).", c->id, TG_STR_FMT(named));
            *param = "X-Tollgate-Customer";
            return TG_ATTR_FORBIDDEN;
        }
        set_customer(cfg, out, c->app, tg_str_c(c->id), plan_id(c->plan));
        return TG_ATTR_OK;
    }
    if (key->app || key->admin) {
        if (named.p) {
            rc = named_customer(cfg, reg, key->app, named, out, err);
            if (rc) *param = "X-Tollgate-Customer";
            return rc;
        }
        if (key->app) {
            out->app = key->app;
            tg_record_set(out->tags.app, key->app->id, strlen(key->app->id));
        }
        return TG_ATTR_OK;
    }
    if (named.p) {
        tg_errmsg_set(err, "This key belongs to no app, so it cannot name a customer. Give the "
                           "key an app or a customer in the configuration.");
        *param = "X-Tollgate-Customer";
        return TG_ATTR_FORBIDDEN;
    }
    return TG_ATTR_OK;
}
