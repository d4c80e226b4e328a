/* The admin API's wallets and runs, and a customer's own wallet (plans
 * are plans.c's).
 *
 *   POST /admin/v1/customers/{id}/topups          add a grant (prepaid credits)
 *   GET  /admin/v1/customers/{id}/wallet[?period=YYYY-MM]
 *                                                 its grants and a period's use
 *   GET  /v1/wallet[?period=][&customer=]         the same for a customer key
 *                                                 (its own), or an app key (its
 *                                                 app's customers)
 *   GET  /admin/v1/runs/{run}?customer=C[&days=N] an agent run's steps (its usage
 *                                                 records of the last N days, 1 by
 *                                                 default) and their totals
 *
 * The store is read and written on libuv's thread pool with a handle of
 * the job's own, as reports are (usage.c), never on the worker's loop. A
 * top-up is in the store before it is answered, and in the customer's
 * live account (bill/accounts.h) at once, so the next request can spend
 * it. Errors come in OpenAI's shape. */
#include "api/api.h"

#include "base/clock.h"
#include "base/jsonw.h"
#include "report/records.h"
#include "report/wallet.h"

#include <stdio.h>
#include <stdlib.h>

bool tg_admin_auth(tg_exchange *x)
{
    if (!tg_authenticate(x)) return false;
    if (x->key->admin) return true;
    tg_exchange_error(x, 403, "invalid_request_error", "admin_key_required", NULL,
                    "The admin API needs an admin key (admin: true in the configuration).");
    return false;
}

/* ---- customers ---- */

/* The app and plan of customer id, as the gateway knows it: configured,
 * created at runtime, or (for a top-up) new to app_id when that app
 * creates customers. Answers 404 and returns false when unknown. */
static bool find_customer(tg_exchange *x, tg_str id, tg_str app_id, bool create, const tg_app **app,
                          const tg_plan **plan)
{
    const tg_customer *c = tg_config_customer(x->cfg, id);
    tg_customer_info info;
    tg_customers *reg = x->ww->gw->customers;
    if (c) {
        *app = c->app;
        *plan = c->plan;
    } else if (reg && tg_customers_get(reg, id, &info) && (*app = tg_config_app(x->cfg, tg_str_c(info.app)))) {
        *plan = info.plan[0] ? tg_config_plan(x->cfg, tg_str_c(info.plan)) : NULL;
    } else if (create && reg && app_id.n && (*app = tg_config_app(x->cfg, app_id)) && (*app)->create_customers &&
               tg_tag_valid(id)) {
        *plan = (*app)->default_plan;
        if (tg_customers_get_or_add(reg, id, app_id, tg_str_c(*plan ? (*plan)->id : ""), &info)) {
            tg_exchange_error(x, 500, "server_error", NULL, NULL, "out of memory");
            return false;
        }
    } else {
        char msg[400];
        snprintf(msg, sizeof msg,
                 "Unknown customer '%.*s'. %s", (int)(id.n > 128 ? 128 : id.n), id.p,
                 create ? "To add credits for a customer an app will create, give \"app\" (an app "
                          "with create_customers)."
                        : "It is not in the configuration and has made no request.");
        tg_exchange_error(x, 404, "invalid_request_error", "customer_not_found", NULL, msg);
        return false;
    }
    if (app_id.n && !tg_str_eq(app_id, tg_str_c((*app)->id))) {
        tg_exchange_error(x, 404, "invalid_request_error", "customer_not_found", "app",
                        "That customer belongs to another app.");
        return false;
    }
    return true;
}

typedef struct {
    tg_pool_job job;
    tg_gateway *gw;
    tg_config *cfg;         /* the job's reference: app and plan point into it */
    const tg_app *app;
    const tg_plan *plan;
    char app_id[TG_TAG_MAX + 1], customer[TG_TAG_MAX + 1], period[16], memo[TG_TAG_MAX + 1];
    uint32_t anchor_day;
    bool topup;
    tg_grant grant;
    tg_nanos paid;
    tg_wallet_view view;
    tg_errmsg err;
    int rc;
} wallet_job;

static void run_job(tg_pool_job *pj)
{
    wallet_job *j = (wallet_job *)pj;
    tg_store *s = NULL;
    j->rc = tg_store_open(pj->db, j->topup ? TG_STORE_RW : TG_STORE_RO, &s, &j->err);
    tg_str app = tg_str_c(j->app_id), cust = tg_str_c(j->customer);
    if (!j->rc && j->topup)
        j->rc = tg_store_add_grant(s, app, cust, &j->grant, j->paid, tg_str_c(j->memo),
                                   j->grant.created_ms, &j->err);
    if (!j->rc)
        j->rc = tg_wallet_view_load(s, app, cust, j->plan, j->anchor_day, j->period,
                                    (int64_t)tg_clock_wall_ms(), &j->view, &j->err);
    if (s) tg_store_close(s);
}

/* A top-up whose client left is in the store: the ledger's tick brings it
 * into the live account within a second. */
static void job_done(tg_pool_job *pj, tg_exchange *x)
{
    wallet_job *j = (wallet_job *)pj;
    if (x) {
        tg_accounts *accounts = j->gw->accounts;
        tg_account *acc = accounts && j->plan ? tg_accounts_get(accounts, tg_str_c(j->app_id),
                                                                tg_str_c(j->customer))
                                              : NULL;
        if (!j->rc && j->topup && acc && tg_account_add_grant(acc, &j->grant)) j->rc = TG_ENOMEM;
        if (!j->rc && acc) {
            tg_account_state_of(acc, j->plan, j->anchor_day, (int64_t)tg_clock_wall_ms(), &j->view.state);
            j->view.live = true;
        }
        tg_buf *b = &x->scratch;
        tg_buf_clear(b);
        if (!j->rc && j->topup) {
            char c[TG_MONEY_STRLEN], p[TG_MONEY_STRLEN], e[TG_UTC_STRLEN];
            tg_money_fmt(c, j->grant.granted);
            tg_money_fmt(p, j->paid);
            if (j->grant.expires_ms) tg_utc_format(j->grant.expires_ms, e);
            j->rc = tg_buf_printf(b, "{\"grant\":{\"id\":\"%s\",\"kind\":\"%s\",\"credits\":\"%s\",\"paid\":\"%s\","
                                     "\"priority\":%lld,\"expires\":%s%s%s},\"wallet\":",
                                  j->grant.id, tg_grant_kind_name(j->grant.kind), c, p,
                                  (long long)j->grant.priority, j->grant.expires_ms ? "\"" : "",
                                  j->grant.expires_ms ? e : "null", j->grant.expires_ms ? "\"" : "");
        }
        if (!j->rc) j->rc = tg_wallet_render(&j->view, TG_REPORT_JSON, b);
        if (!j->rc && j->topup) j->rc = tg_buf_add_lit(b, "}\n");
        if (j->rc)
            tg_exchange_error(x, 500, "server_error", "wallet_failed", NULL,
                            j->rc == TG_ENOMEM ? "out of memory" : j->err.msg);
        else
            tg_exchange_json(x, j->topup ? 201 : 200, tg_buf_str(b));
    }
    tg_wallet_view_release(&j->view);
    tg_config_unref(j->cfg);
    tg_pool_free(pj);
}

/* Starts j for x (its customer found), on the thread pool. */
static void start_job(tg_exchange *x, wallet_job *j)
{
    j->gw = x->ww->gw;
    j->cfg = tg_config_ref(x->cfg);
    j->anchor_day = j->app->period_anchor_day;
    snprintf(j->app_id, sizeof j->app_id, "%s", j->app->id);
    tg_pool_start(x, &j->job, run_job, job_done, "the wallet");
}

bool tg_admin_metering_on(tg_exchange *x, const char *what)
{
    if (x->ww->gw->ledger) return true;
    char msg[200];
    snprintf(msg, sizeof msg, "%s need metering, which this gateway runs without (metering.enabled: false)",
             what);
    tg_exchange_error(x, 404, "invalid_request_error", "metering_disabled", NULL, msg);
    return false;
}

static wallet_job *new_job(tg_exchange *x, tg_str customer, tg_str period)
{
    if (period.p && period.n != 7) {
        tg_exchange_error(x, 400, "invalid_request_error", "invalid_period", "period",
                        "period must be a month, YYYY-MM");
        return NULL;
    }
    wallet_job *j = tg_pool_new(x, sizeof *j);
    if (!j) return NULL;
    snprintf(j->customer, sizeof j->customer, "%.*s", (int)customer.n, customer.p);
    if (period.p) memcpy(j->period, period.p, period.n);
    return j;
}

/* A JSON string or number member as text (a view into the body, or NULL
 * when absent); false, after answering 400, for anything else. */
static bool text_member(tg_exchange *x, tg_json_val obj, const char *name, tg_str *out)
{
    tg_json_val v = tg_json_get(obj, tg_str_c(name));
    *out = TG_STR_NULL;
    if (v.type == TG_JSON_NONE || v.type == TG_JSON_NULL) return true;
    if (v.type == TG_JSON_NUMBER) {
        *out = tg_str_make(v.p, v.n);
        return true;
    }
    if (v.type == TG_JSON_STRING && tg_json_str_view(v, out)) return true;
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be a string or a number without escapes", name);
    tg_exchange_error(x, 400, "invalid_request_error", "invalid_topup", name, msg);
    return false;
}

static void topup(tg_exchange *x, tg_str customer)
{
    tg_str body = x->req->body;
    size_t off;
    const char *why;
    if (!body.n || tg_json_validate(body.p, body.n, TG_JSON_NO_DUP_TOPLEVEL, &off, &why) ||
        tg_json_root(body.p, body.n).type != TG_JSON_OBJECT) {
        tg_exchange_error(x, 400, "invalid_request_error", "invalid_topup", NULL,
                        "the body must be a JSON object such as {\"credits\": \"500\", \"paid\": \"20.00\"}");
        return;
    }
    tg_json_val root = tg_json_root(body.p, body.n);
    static const char *const known[] = {"credits", "paid", "kind", "priority", "expires", "memo", "app"};
    tg_json_iter it = tg_json_iter_init(root);
    tg_json_val k, v;
    while (tg_json_iter_next(&it, &k, &v)) {
        tg_str name;
        bool ok = false;
        if (tg_json_str_view(k, &name))
            for (size_t i = 0; i < sizeof known / sizeof *known && !ok; i++) ok = tg_str_eq(name, tg_str_c(known[i]));
        if (!ok) {
            tg_exchange_error(x, 400, "invalid_request_error", "invalid_topup", NULL,
                            "unknown member; a top-up takes credits, paid, kind (paid or promo), "
                            "priority, expires, memo and app");
            return;
        }
    }
    tg_topup t = {0};
    tg_str kind, prio, memo, app;
    if (!text_member(x, root, "credits", &t.credits) || !text_member(x, root, "paid", &t.paid) ||
        !text_member(x, root, "expires", &t.expires) || !text_member(x, root, "kind", &kind) ||
        !text_member(x, root, "priority", &prio) || !text_member(x, root, "memo", &memo) ||
        !text_member(x, root, "app", &app))
        return;
    tg_errmsg err;
    if (kind.p && !tg_str_eq(kind, TG_STR("paid")) && !tg_str_eq(kind, TG_STR("promo"))) {
        tg_exchange_error(x, 400, "invalid_request_error", "invalid_topup", "kind", "kind must be paid or promo");
        return;
    }
    t.promo = kind.p && tg_str_eq(kind, TG_STR("promo"));
    if (prio.p && tg_json_int(tg_json_get(root, TG_STR("priority")), &t.priority)) {
        tg_exchange_error(x, 400, "invalid_request_error", "invalid_topup", "priority",
                        "priority must be a whole number");
        return;
    }
    if (memo.p && (memo.n > TG_TAG_MAX || !tg_tag_value_ok(memo))) {
        tg_exchange_error(x, 400, "invalid_request_error", "invalid_topup", "memo",
                        "memo must be 1 to 128 printable ASCII characters");
        return;
    }
    wallet_job *j = NULL;
    int64_t now = (int64_t)tg_clock_wall_ms();
    const tg_app *a;
    const tg_plan *p;
    tg_grant g;
    tg_nanos paid;
    if (tg_grant_from_topup(&t, now, &g, &paid, &err)) {
        tg_exchange_error(x, 400, "invalid_request_error", "invalid_topup", NULL, err.msg);
        return;
    }
    if (!find_customer(x, customer, app, true, &a, &p) || !(j = new_job(x, customer, TG_STR_NULL))) return;
    j->topup = true;
    j->grant = g;
    j->paid = paid;
    j->app = a;
    j->plan = p;
    if (memo.p) memcpy(j->memo, memo.p, memo.n);
    start_job(x, j);
}

static void wallet(tg_exchange *x, tg_str customer, tg_str app_id)
{
    const tg_app *a;
    const tg_plan *p;
    wallet_job *j;
    if (!find_customer(x, customer, app_id, false, &a, &p) ||
        !(j = new_job(x, customer, tg_query_param(x, "period"))))
        return;
    j->app = a;
    j->plan = p;
    start_job(x, j);
}

void tg_admin_customers(tg_exchange *x, tg_str rest)
{
    if (!tg_admin_auth(x) || !tg_admin_metering_on(x, "wallets and customer plans")) return;
    const char *slash = memchr(rest.p, '/', rest.n);
    tg_str seg = slash ? tg_str_make(rest.p, (size_t)(slash - rest.p)) : rest;
    tg_str what = slash ? tg_str_make(slash + 1, rest.n - seg.n - 1) : TG_STR_NULL;
    tg_str id = seg.n ? tg_path_segment(x, seg) : TG_STR_NULL;
    tg_method m = x->req->method;
    if (id.n && tg_str_eq(what, TG_STR("topups")) && m == TG_POST) topup(x, id);
    else if (id.n && tg_str_eq(what, TG_STR("wallet")) && (m == TG_GET || m == TG_HEAD))
        wallet(x, id, tg_query_param(x, "app"));
    else if (id.n && tg_str_eq(what, TG_STR("plan")) && m == TG_PUT) tg_admin_customer_plan(x, id);
    else
        tg_exchange_error(x, 404, "invalid_request_error", "unknown_url", NULL,
                        "Unknown admin URL: use POST /admin/v1/customers/{id}/topups, GET "
                        "/admin/v1/customers/{id}/wallet or PUT /admin/v1/customers/{id}/plan");
}

void tg_customer_wallet(tg_exchange *x, tg_str rest)
{
    (void)rest;
    if (!tg_authenticate(x) || !tg_admin_metering_on(x, "wallets")) return;
    const tg_key *k = x->key;
    tg_str named = tg_query_param(x, "customer");
    if (k->customer) {
        if (named.p && !tg_str_eq(named, tg_str_c(k->customer->id))) {
            tg_exchange_error(x, 403, "invalid_request_error", "customer_forbidden", "customer",
                            "This key may read only its own customer's wallet.");
            return;
        }
        wallet(x, tg_str_c(k->customer->id), tg_str_c(k->customer->app->id));
        return;
    }
    if ((!k->app && !k->admin) || !named.n) {
        tg_exchange_error(x, k->app || k->admin ? 400 : 403, "invalid_request_error",
                        k->app || k->admin ? "customer_required" : "customer_forbidden", "customer",
                        k->app || k->admin ? "Name the customer: /v1/wallet?customer=ID."
                                           : "This key belongs to no app or customer, so it has no wallet.");
        return;
    }
    wallet(x, named, k->app ? tg_str_c(k->app->id) : TG_STR_NULL);
}

/* ---- runs ---- */

typedef struct {
    tg_pool_job job;
    char app[TG_TAG_MAX + 1], customer[TG_TAG_MAX + 1], run[TG_TAG_MAX + 1];
    int64_t from_ms;
    uint64_t requests, steps;
    tg_nanos cost, charge;
    int64_t credits, first_ms, last_ms;
    char *records;          /* `tollgate usage --format json` of the run's steps */
    size_t nrecords;
    tg_errmsg err;
    int rc;
} steps_job;

static int sum_step(void *ud, const tg_usage_rec *r)
{
    steps_job *j = ud;
    if (!r->attempt) j->requests++;
    if (!r->offering[0]) return TG_OK; /* refused before its offering: no step */
    if (!r->attempt) j->steps++; /* an earlier try of a step: its cost, no step */
    j->cost += r->cost;
    j->charge += r->charge;
    j->credits += r->credits;
    if (!j->first_ms || r->t_start_ms < j->first_ms) j->first_ms = r->t_start_ms;
    if (r->t_start_ms > j->last_ms) j->last_ms = r->t_start_ms;
    return TG_OK;
}

static void run_read(tg_pool_job *pj)
{
    steps_job *j = (steps_job *)pj;
    tg_store *s = NULL;
    tg_records_query q;
    FILE *f = NULL;
    j->rc = tg_store_open(pj->db, TG_STORE_RO, &s, &j->err);
    if (!j->rc) {
        q = (tg_records_query){.from_ms = j->from_ms, .to_ms = INT64_MAX,
                               .f = {.app = j->app, .customer = j->customer, .run = j->run}};
        j->rc = tg_store_each_record(s, q.from_ms, q.to_ms, &q.f, 0, sum_step, j, &j->err);
    }
    if (!j->rc && !(f = open_memstream(&j->records, &j->nrecords))) j->rc = TG_ENOMEM;
    if (!j->rc) j->rc = tg_records_print(s, &q, TG_REPORT_JSON, f, &j->err);
    if (f) fclose(f);
    if (s) tg_store_close(s);
}

static void run_done(tg_pool_job *pj, tg_exchange *x)
{
    steps_job *j = (steps_job *)pj;
    if (x) {
        tg_buf *b = &x->scratch;
        tg_buf_clear(b);
        char cost[TG_MONEY_STRLEN], charge[TG_MONEY_STRLEN], credits[TG_MONEY_STRLEN];
        tg_money_fmt(cost, j->cost);
        tg_money_fmt(charge, j->charge);
        tg_money_fmt(credits, j->credits);
        int rc = j->rc;
        if (!rc) rc = tg_buf_add_lit(b, "{\"run\":");
        if (!rc) rc = tg_jsonw_str(b, tg_str_c(j->run));
        if (!rc) rc = tg_buf_add_lit(b, ",\"app\":");
        if (!rc) rc = tg_jsonw_str(b, tg_str_c(j->app));
        if (!rc) rc = tg_buf_add_lit(b, ",\"customer\":");
        if (!rc) rc = tg_jsonw_str(b, tg_str_c(j->customer));
        char first[TG_UTC_STRLEN] = "", last[TG_UTC_STRLEN] = "";
        if (j->first_ms) tg_utc_format(j->first_ms, first);
        if (j->last_ms) tg_utc_format(j->last_ms, last);
        if (!rc)
            rc = tg_buf_printf(b, ",\"requests\":%llu,\"steps\":%llu,\"cost\":\"%s\",\"charge\":\"%s\","
                                  "\"credits\":\"%s\",\"first\":\"%s\",\"last\":\"%s\"",
                               (unsigned long long)j->requests, (unsigned long long)j->steps, cost, charge,
                               credits, first, last);
        tg_run_state st;
        tg_runs *runs = x->ww->gw->runs;
        if (!rc && runs && tg_runs_get(runs, tg_str_c(j->app), tg_str_c(j->customer), tg_str_c(j->run), &st)) {
            tg_money_fmt(cost, st.cost);
            rc = tg_buf_printf(b, ",\"live\":{\"steps\":%llu,\"cost\":\"%s\"}", (unsigned long long)st.steps, cost);
        }
        if (!rc) rc = tg_buf_add_lit(b, ",\"usage\":");
        if (!rc) rc = tg_buf_append(b, j->records, j->nrecords);
        if (!rc) rc = tg_buf_add_lit(b, "}\n");
        if (rc) tg_exchange_error(x, 500, "server_error", NULL, NULL, j->rc ? j->err.msg : "out of memory");
        else if (!j->requests) tg_exchange_error(x, 404, "invalid_request_error", "run_not_found", NULL,
                                             "No step of that run in the days asked (days=N, 1 by default).");
        else tg_exchange_json(x, 200, tg_buf_str(b));
    }
    free(j->records);
    tg_pool_free(pj);
}

void tg_admin_runs(tg_exchange *x, tg_str run)
{
    if (!tg_admin_auth(x) || !tg_admin_metering_on(x, "runs")) return;
    tg_str customer = tg_query_param(x, "customer"), days_s = tg_query_param(x, "days");
    const tg_app *app;
    const tg_plan *plan;
    uint64_t days = 1;
    if (!customer.n) {
        tg_exchange_error(x, 400, "invalid_request_error", "customer_required", "customer",
                        "Name the run's customer: /admin/v1/runs/{id}?customer=ID (runs are per customer).");
        return;
    }
    if (days_s.p && (tg_str_to_u64(days_s, &days) || days < 1 || days > 400)) {
        tg_exchange_error(x, 400, "invalid_request_error", "invalid_days", "days",
                        "days must be a whole number from 1 to 400");
        return;
    }
    if (run.n > TG_TAG_MAX || !find_customer(x, customer, tg_query_param(x, "app"), false, &app, &plan)) {
        if (run.n > TG_TAG_MAX)
            tg_exchange_error(x, 404, "invalid_request_error", "run_not_found", NULL, "No such run.");
        return;
    }
    steps_job *j = tg_pool_new(x, sizeof *j);
    if (!j) return;
    snprintf(j->app, sizeof j->app, "%s", app->id);
    snprintf(j->customer, sizeof j->customer, "%.*s", (int)customer.n, customer.p);
    snprintf(j->run, sizeof j->run, "%.*s", (int)run.n, run.p);
    j->from_ms = (int64_t)tg_clock_wall_ms() - (int64_t)days * 86400000LL;
    tg_pool_start(x, &j->job, run_read, run_done, "the run");
}
