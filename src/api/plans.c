/* The admin API's plans, and the plan of a customer created at runtime.
 *
 *   GET    /admin/v1/plans                   every plan: the file's, then the API's
 *   GET    /admin/v1/plans/{id}              one plan
 *   PUT    /admin/v1/plans/{id}              make or replace a plan (body: its fields
 *                                            as the file spells them, in JSON)
 *   DELETE /admin/v1/plans/{id}              remove a plan no customer is on
 *   PUT    /admin/v1/customers/{id}/plan     {"plan": P, "app": A}: put a customer
 *                                            the file does not list on plan P (null:
 *                                            none), creating it for app A if new
 *
 * The file stays the file's: its plans and customers change there (and a
 * reload), never here. A plan made here is stored (store/plans.h) and a
 * new snapshot is built from the running one's text with the new set of
 * API plans, then swapped in, so a write takes effect for the next
 * request and survives a restart. One mutex (gw->plans_mu) orders these
 * writes and reloads: each builds its snapshot from what the last one
 * left. A write is validated by that build before anything is stored, so
 * a refused plan changes nothing; the work runs on the thread pool, as
 * every store access of the admin API does. */
#include "api/api.h"

#include "base/clock.h"
#include "base/jsonw.h"
#include "store/plans.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- rendering ---- */

static int j_amount(tg_buf *b, const char *name, int64_t v)
{
    char s[TG_MONEY_STRLEN];
    tg_money_fmt(s, v);
    return tg_buf_printf(b, "\"%s\":\"%s\"", name, s);
}

static int j_limits(tg_buf *b, const char *name, const tg_limits *l)
{
    return tg_buf_printf(b, ",\"%s\":{\"rpm\":%u,\"tpm\":%llu,\"concurrent\":%u}", name, l->rpm,
                         (unsigned long long)l->tpm, l->concurrent);
}

static int j_models(tg_buf *b, struct tg_model *const *m, size_t n)
{
    int rc = tg_buf_add_char(b, '[');
    for (size_t i = 0; !rc && i < n; i++) {
        if (i) rc = tg_buf_add_char(b, ',');
        if (!rc) rc = tg_jsonw_str(b, tg_str_c(m[i]->name));
    }
    return rc ? rc : tg_buf_add_char(b, ']');
}

/* Plan p as the JSON object PUT takes back: what the plan leaves out is
 * null (the run limits it leaves to its app, no overage, no cap). */
static int j_plan(tg_buf *b, const tg_config *c, const tg_plan *p)
{
    int rc = tg_buf_add_lit(b, "{\"id\":");
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(p->id));
    if (!rc)
        rc = tg_buf_printf(b, ",\"source\":\"%s\",", tg_config_plan_api(c, p) ? "api" : "file");
    if (!rc) rc = j_amount(b, "fee", p->fee);
    if (!rc) rc = tg_buf_add_char(b, ',');
    if (!rc) rc = j_amount(b, "included_credits", p->included);
    if (!rc) rc = tg_buf_add_char(b, ',');
    if (!rc) rc = j_amount(b, "credit", p->credit);
    if (!rc) rc = tg_buf_add_lit(b, ",\"unit_credits\":{");
    for (size_t i = 0; !rc && i < p->nunit_credits; i++) {
        if (i) rc = tg_buf_add_char(b, ',');
        if (!rc) rc = tg_jsonw_str(b, tg_str_c(p->unit_credits[i].name));
        char s[TG_MONEY_STRLEN];
        tg_money_fmt(s, p->unit_credits[i].credits);
        if (!rc) rc = tg_buf_printf(b, ":\"%s\"", s);
    }
    if (!rc) rc = tg_buf_add_lit(b, "},");
    if (!rc)
        rc = p->has_overage ? j_amount(b, "overage", p->overage)
                            : tg_buf_add_lit(b, "\"overage\":null");
    if (!rc) rc = tg_buf_add_lit(b, ",\"hard_cap\":");
    if (!rc && p->cap == TG_CAP_NONE) rc = tg_buf_add_lit(b, "null");
    if (!rc && p->cap != TG_CAP_NONE) {
        rc = tg_buf_add_char(b, '{');
        if (!rc)
            rc = p->cap == TG_CAP_USD ? j_amount(b, "usd", p->cap_usd)
                                      : j_amount(b, "credits", p->cap_credits);
        if (!rc) rc = tg_buf_add_char(b, '}');
    }
    if (!rc) rc = tg_buf_add_lit(b, ",\"thresholds\":[");
    for (size_t i = 0; !rc && i < p->nthresholds; i++)
        rc = tg_buf_printf(b, "%s%u", i ? "," : "", p->thresholds[i]);
    if (!rc) rc = tg_buf_add_lit(b, "],\"models\":");
    if (!rc) rc = p->nmodels ? j_models(b, p->models, p->nmodels) : tg_buf_add_lit(b, "null");
    if (!rc) rc = tg_buf_add_lit(b, ",\"degrade\":");
    if (!rc && !p->degrade_to) rc = tg_buf_add_lit(b, "null");
    if (!rc && p->degrade_to) {
        rc = tg_buf_add_lit(b, "{\"from\":");
        if (!rc) rc = j_models(b, p->degrade_from, p->ndegrade_from);
        if (!rc) rc = tg_buf_add_lit(b, ",\"to\":");
        if (!rc) rc = tg_jsonw_str(b, tg_str_c(p->degrade_to->name));
        if (!rc) rc = tg_buf_printf(b, ",\"at\":%u}", p->degrade_at);
    }
    if (!rc) rc = tg_buf_printf(b, ",\"default_max_tokens\":%u", p->default_max_tokens);
    if (!rc) rc = j_limits(b, "limits", &p->limits);
    if (!rc) rc = j_limits(b, "key_limits", &p->key_limits);
    if (!rc) rc = tg_buf_add_lit(b, ",\"runs\":{\"max_steps\":");
    if (!rc)
        rc = p->has_run_steps ? tg_buf_printf(b, "%u", p->runs.max_steps)
                              : tg_buf_add_lit(b, "null");
    if (!rc) rc = tg_buf_add_char(b, ',');
    if (!rc)
        rc = p->has_run_cost ? j_amount(b, "max_cost", p->runs.max_cost)
                             : tg_buf_add_lit(b, "\"max_cost\":null");
    return rc ? rc : tg_buf_add_lit(b, "}}");
}

static void send_plans(tg_exchange *x, tg_str id)
{
    const tg_config *c = x->cfg;
    tg_buf *b = &x->scratch;
    tg_buf_clear(b);
    int rc;
    if (id.n) {
        const tg_plan *p = tg_config_plan(c, id);
        if (!p) {
            tg_exchange_error(x, 404, "invalid_request_error", "plan_not_found", NULL,
                            "No plan of that id, in the file or made through the admin API.");
            return;
        }
        rc = tg_buf_add_lit(b, "{\"plan\":");
        if (!rc) rc = j_plan(b, c, p);
    } else {
        rc = tg_buf_add_lit(b, "{\"plans\":[");
        for (size_t i = 0; !rc && i < c->nplans + c->napi_plans; i++) {
            if (i) rc = tg_buf_add_char(b, ',');
            if (!rc) rc = j_plan(b, c, i < c->nplans ? &c->plans[i] : &c->api_plans[i - c->nplans]);
        }
        if (!rc) rc = tg_buf_add_char(b, ']');
    }
    if (!rc) rc = tg_buf_add_lit(b, "}\n");
    if (rc)
        tg_exchange_error(x, 500, "server_error", NULL, NULL, "out of memory");
    else
        tg_exchange_json(x, 200, tg_buf_str(b));
}

/* ---- writes ---- */

typedef enum { PUT_PLAN, DELETE_PLAN, CUSTOMER_PLAN } write_kind;

typedef struct {
    tg_pool_job job;
    tg_gateway *gw;
    write_kind kind;
    char id[TG_TAG_MAX + 1]; /* the plan's, or the customer's */
    char *body;              /* PUT_PLAN: the plan's JSON */
    size_t nbody;
    char plan[TG_TAG_MAX + 1]; /* CUSTOMER_PLAN: "" for none */
    char app[TG_TAG_MAX + 1];  /* CUSTOMER_PLAN: as given, then the customer's */
    int status;                /* what to answer: 200, 201, or an error's */
    const char *code;          /* the error's */
    bool created;
    tg_config *cfg; /* the snapshot made (PUT_PLAN) */
    tg_errmsg err;
} write_job;

static int job_fail(write_job *j, int status, const char *code)
{
    j->status = status;
    j->code = code;
    return TG_EINVAL;
}

/* The stored plans with j's change, in id order, into a new snapshot in
 * j->cfg built from cur's text. */
static int rebuild(write_job *j, const tg_config *cur, const tg_store_plan *sp, size_t n)
{
    tg_plan_def *defs = malloc((n + 1) * sizeof *defs);
    if (!defs) return job_fail(j, 500, "out_of_memory");
    tg_str id = tg_str_c(j->id);
    size_t nd = 0;
    bool placed = j->kind != PUT_PLAN;
    for (size_t i = 0; i < n; i++) {
        int cmp = tg_str_cmp(tg_str_c(sp[i].id), id);
        if (!placed && cmp >= 0) {
            defs[nd++] = (tg_plan_def){id, tg_str_make(j->body, j->nbody)};
            placed = true;
        }
        if (cmp == 0) {
            j->created = false;
            continue; /* replaced, or deleted */
        }
        defs[nd++] = (tg_plan_def){tg_str_c(sp[i].id), tg_str_c(sp[i].body)};
    }
    if (!placed) defs[nd++] = (tg_plan_def){id, tg_str_make(j->body, j->nbody)};
    tg_config *fresh = NULL;
    int rc = tg_config_reparse(cur, &fresh, &j->err);
    if (!rc) rc = tg_config_add_plans(fresh, defs, nd, &j->err);
    free(defs);
    if (rc) {
        if (fresh) tg_config_unref(fresh);
        return job_fail(j, rc == TG_ENOMEM ? 500 : 400,
                        rc == TG_ENOMEM ? "out_of_memory" : "invalid_plan");
    }
    j->cfg = fresh;
    return TG_OK;
}

static int plan_write(write_job *j, tg_store *s, const tg_config *cur)
{
    tg_str id = tg_str_c(j->id);
    const tg_plan *p = tg_config_plan(cur, id);
    if (p && !tg_config_plan_api(cur, p)) {
        tg_errmsg_set(&j->err, "Plan '%s' is defined in %s: change it there and reload (SIGHUP).",
                      j->id, cur->path);
        return job_fail(j, 409, "plan_in_file");
    }
    if (j->kind == DELETE_PLAN && !p) {
        tg_errmsg_set(&j->err, "No plan '%s' made through the admin API.", j->id);
        return job_fail(j, 404, "plan_not_found");
    }
    size_t on = j->kind == DELETE_PLAN ? tg_customers_on_plan(j->gw->customers, id) : 0;
    if (on) {
        tg_errmsg_set(&j->err,
                      "%zu customer%s on plan '%s': move %s to another plan first (PUT "
                      "/admin/v1/customers/{id}/plan).",
                      on, on == 1 ? " is" : "s are", j->id, on == 1 ? "it" : "them");
        return job_fail(j, 409, "plan_in_use");
    }
    tg_store_plan *sp;
    size_t n;
    j->created = true;
    int rc = tg_store_plans(s, &sp, &n, &j->err);
    if (rc) return job_fail(j, 500, "store_failed");
    rc = rebuild(j, cur, sp, n);
    tg_store_plans_free(sp, n);
    if (!rc) rc = tg_gateway_adopt(j->gw, j->cfg, &j->err);
    if (rc) return j->status ? rc : job_fail(j, 500, "server_error");
    int64_t now = (int64_t)tg_clock_wall_ms();
    bool deleted;
    rc = j->kind == PUT_PLAN
             ? tg_store_plan_put(s, id, tg_str_make(j->body, j->nbody), now, &j->err)
             : tg_store_plan_delete(s, id, &deleted, &j->err);
    if (rc) return job_fail(j, 500, "store_failed");
    tg_gateway_publish(j->gw, tg_config_ref(j->cfg));
    j->status = j->kind == PUT_PLAN && j->created ? 201 : 200;
    return TG_OK;
}

/* Puts customer j->id on j->plan, as the file and the registry allow. */
static int customer_write(write_job *j, tg_store *s, const tg_config *cur)
{
    tg_str id = tg_str_c(j->id);
    if (tg_config_customer(cur, id)) {
        tg_errmsg_set(&j->err,
                      "Customer '%s' is defined in %s: change its plan there and reload "
                      "(SIGHUP).",
                      j->id, cur->path);
        return job_fail(j, 409, "customer_in_file");
    }
    if (j->plan[0] && !tg_config_plan(cur, tg_str_c(j->plan))) {
        tg_errmsg_set(&j->err, "No plan '%s': make it first (PUT /admin/v1/plans/%s).", j->plan,
                      j->plan);
        return job_fail(j, 404, "plan_not_found");
    }
    tg_customer_info info;
    if (tg_customers_get(j->gw->customers, id, &info)) {
        if (j->app[0] && strcmp(j->app, info.app)) {
            tg_errmsg_set(&j->err, "Customer '%s' belongs to app '%s', not '%s'.", j->id, info.app,
                          j->app);
            return job_fail(j, 409, "customer_of_another_app");
        }
        snprintf(j->app, sizeof j->app, "%s", info.app);
    } else if (!j->app[0]) {
        tg_errmsg_set(&j->err, "Customer '%s' is new: name its app (\"app\": \"...\").", j->id);
        return job_fail(j, 400, "app_required");
    } else if (!tg_config_app(cur, tg_str_c(j->app))) {
        tg_errmsg_set(&j->err, "No app '%s' in %s.", j->app, cur->path);
        return job_fail(j, 404, "app_not_found");
    }
    if (tg_store_customer_plan(s, tg_str_c(j->app), id, tg_str_c(j->plan),
                               (int64_t)tg_clock_wall_ms(), &j->err))
        return job_fail(j, 500, "store_failed");
    if (tg_customers_set_plan(j->gw->customers, id, tg_str_c(j->app), tg_str_c(j->plan))) {
        tg_errmsg_set(&j->err, "out of memory");
        return job_fail(j, 500, "out_of_memory");
    }
    j->status = 200;
    return TG_OK;
}

static void run_write(tg_pool_job *pj)
{
    write_job *j = (write_job *)pj;
    tg_gateway *gw = j->gw;
    pthread_mutex_lock(&gw->plans_mu);
    tg_store *s = NULL;
    tg_config *cur = tg_gateway_config(gw);
    if (tg_store_open(pj->db, TG_STORE_RW, &s, &j->err))
        job_fail(j, 500, "store_failed");
    else if (j->kind == CUSTOMER_PLAN)
        customer_write(j, s, cur);
    else
        plan_write(j, s, cur);
    if (s) tg_store_close(s);
    tg_config_unref(cur);
    pthread_mutex_unlock(&gw->plans_mu);
}

static void write_done(tg_pool_job *pj, tg_exchange *x)
{
    write_job *j = (write_job *)pj;
    if (x && j->status >= 400) {
        tg_exchange_error(x, j->status, j->status >= 500 ? "server_error" : "invalid_request_error",
                        j->code, NULL, j->err.msg);
    } else if (x) {
        tg_buf *b = &x->scratch;
        tg_buf_clear(b);
        int rc;
        if (j->kind == PUT_PLAN) {
            rc = tg_buf_add_lit(b, "{\"plan\":");
            if (!rc) rc = j_plan(b, j->cfg, tg_config_plan(j->cfg, tg_str_c(j->id)));
            if (!rc) rc = tg_buf_add_lit(b, "}\n");
        } else if (j->kind == DELETE_PLAN) {
            rc = tg_buf_add_lit(b, "{\"deleted\":");
            if (!rc) rc = tg_jsonw_str(b, tg_str_c(j->id));
            if (!rc) rc = tg_buf_add_lit(b, "}\n");
        } else {
            rc = tg_buf_add_lit(b, "{\"customer\":");
            if (!rc) rc = tg_jsonw_str(b, tg_str_c(j->id));
            if (!rc) rc = tg_buf_add_lit(b, ",\"app\":");
            if (!rc) rc = tg_jsonw_str(b, tg_str_c(j->app));
            if (!rc) rc = tg_buf_add_lit(b, ",\"plan\":");
            if (!rc)
                rc = j->plan[0] ? tg_jsonw_str(b, tg_str_c(j->plan)) : tg_buf_add_lit(b, "null");
            if (!rc) rc = tg_buf_add_lit(b, "}\n");
        }
        if (rc)
            tg_exchange_error(x, 500, "server_error", NULL, NULL, "out of memory");
        else
            tg_exchange_json(x, j->status, tg_buf_str(b));
    }
    if (j->cfg) tg_config_unref(j->cfg);
    free(j->body);
    tg_pool_free(pj);
}

/* A write job for id (a valid tag), or NULL after answering. */
static write_job *new_write(tg_exchange *x, write_kind kind, tg_str id, const char *what)
{
    if (!tg_tag_valid(id)) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "A %s id is 1 to 128 letters, digits and . _ : @ / + = # - "
                 "(percent-encoded in the URL).",
                 what);
        tg_exchange_error(x, 400, "invalid_request_error", "invalid_id", NULL, msg);
        return NULL;
    }
    write_job *j = tg_pool_new(x, sizeof *j);
    if (!j) return NULL;
    j->gw = x->ww->gw;
    j->kind = kind;
    memcpy(j->id, id.p, id.n);
    return j;
}

/* Whether the request's body is a JSON object (*root), else answers 400
 * with code and an example. */
static bool json_object(tg_exchange *x, const char *code, const char *example, tg_json_val *root)
{
    tg_str body = x->req->body;
    size_t off;
    const char *why = "not an object";
    if (!body.n || tg_json_validate(body.p, body.n, TG_JSON_NO_DUP_TOPLEVEL, &off, &why) ||
        (*root = tg_json_root(body.p, body.n)).type != TG_JSON_OBJECT) {
        char msg[300];
        snprintf(msg, sizeof msg, "The body must be a JSON object (%s), such as %s",
                 body.n ? why : "empty", example);
        tg_exchange_error(x, 400, "invalid_request_error", code, NULL, msg);
        return false;
    }
    return true;
}

static void put_plan(tg_exchange *x, tg_str id)
{
    tg_json_val root;
    if (!json_object(x, "invalid_plan",
                     "{\"fee\": \"49.00\", \"included_credits\": 1500, \"overage\": \"0.05\"}",
                     &root))
        return;
    write_job *j = new_write(x, PUT_PLAN, id, "plan");
    if (!j) return;
    tg_str body = x->req->body;
    if (!(j->body = malloc(body.n))) {
        tg_exchange_error(x, 500, "server_error", NULL, NULL, "out of memory");
        tg_pool_free(&j->job);
        return;
    }
    memcpy(j->body, body.p, body.n);
    j->nbody = body.n;
    tg_pool_start(x, &j->job, run_write, write_done, "the plan's write");
}

/* A string member of the body, or "" for null or absent, into dst; false
 * after answering 400. */
static bool tag_member(tg_exchange *x, tg_json_val root, const char *name, char dst[TG_TAG_MAX + 1])
{
    tg_json_val v = tg_json_get(root, tg_str_c(name));
    tg_str s;
    dst[0] = '\0';
    if (v.type == TG_JSON_NONE || v.type == TG_JSON_NULL) return true;
    if (v.type == TG_JSON_STRING && tg_json_str_view(v, &s) && tg_tag_valid(s)) {
        memcpy(dst, s.p, s.n);
        dst[s.n] = '\0';
        return true;
    }
    char msg[160];
    snprintf(msg, sizeof msg, "%s must be an id (1 to 128 letters, digits and . _ : @ / + = # -)%s",
             name, strcmp(name, "plan") ? "" : " or null for none");
    tg_exchange_error(x, 400, "invalid_request_error", "invalid_customer_plan", name, msg);
    return false;
}

void tg_admin_customer_plan(tg_exchange *x, tg_str customer)
{
    tg_json_val root, k, v;
    if (!json_object(x, "invalid_customer_plan", "{\"plan\": \"pro\", \"app\": \"my-app\"}", &root))
        return;
    tg_json_iter it = tg_json_iter_init(root);
    while (tg_json_iter_next(&it, &k, &v)) {
        tg_str name;
        if (!tg_json_str_view(k, &name) ||
            !(tg_str_eq(name, TG_STR("plan")) || tg_str_eq(name, TG_STR("app")))) {
            tg_exchange_error(x, 400, "invalid_request_error", "invalid_customer_plan", NULL,
                            "unknown member: the body takes plan (an id, or null for none) and app "
                            "(needed when the customer is new)");
            return;
        }
    }
    if (tg_json_get(root, TG_STR("plan")).type == TG_JSON_NONE) {
        tg_exchange_error(x, 400, "invalid_request_error", "invalid_customer_plan", "plan",
                        "plan is required (an id, or null for none)");
        return;
    }
    char plan[TG_TAG_MAX + 1], app[TG_TAG_MAX + 1];
    if (!tag_member(x, root, "plan", plan) || !tag_member(x, root, "app", app)) return;
    write_job *j = new_write(x, CUSTOMER_PLAN, customer, "customer");
    if (!j) return;
    memcpy(j->plan, plan, sizeof plan);
    memcpy(j->app, app, sizeof app);
    tg_pool_start(x, &j->job, run_write, write_done, "the customer's plan");
}

void tg_admin_plans(tg_exchange *x, tg_str rest)
{
    if (!tg_admin_auth(x)) return;
    tg_method m = x->req->method;
    tg_str id = rest.n ? tg_path_segment(x, rest) : TG_STR_NULL;
    if (m == TG_GET || m == TG_HEAD) {
        send_plans(x, id);
        return;
    }
    if (!tg_admin_metering_on(x, "plans made through the admin API (kept in the store)")) return;
    if (m == TG_PUT) {
        put_plan(x, id);
    } else {
        write_job *j = new_write(x, DELETE_PLAN, id, "plan");
        if (j) tg_pool_start(x, &j->job, run_write, write_done, "the plan's removal");
    }
}
