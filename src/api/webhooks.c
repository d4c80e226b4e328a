/* Threshold webhooks at the gateway (bill/webhook.h sends them): the
 * sender's start, the events handed to it, and the admin API's listing.
 *
 * Events come from two places. A settlement that crosses thresholds
 * (policy.c) hands over one event per threshold. At start, every account
 * loaded from the store (billing.c) hands over the events of every
 * threshold its period's use has reached: a crash between a settlement
 * and the sender's store write must not lose an event, and the store
 * keeps one per (app, customer, period, threshold) however often it is
 * handed over, so this makes no event twice. Only apps with a webhook get
 * events.
 *
 *   GET /admin/v1/webhooks[?status=pending|delivered|failed][&customer=C][&app=A][&limit=N]
 *       an admin key; newest first, 100 by default, 1000 at most
 *
 * The listing reads the store on libuv's thread pool with a read-only
 * handle of its own, as reports do (usage.c). */
#include "api/api.h"

#include "base/clock.h"
#include "base/jsonw.h"
#include "store/webhooks.h"

#include <stdio.h>
#include <stdlib.h>

#define LIST_DEFAULT 100
#define LIST_MAX 1000

/* ---- events ---- */

static tg_config *config_now(void *ud) { return tg_gateway_config(ud); }

int tg_webhooks_start(tg_gateway *gw, tg_errmsg *err)
{
    char *db = tg_store_path(gw->metering.data_dir);
    if (!db) return TG_ENOMEM;
    int rc = tg_webhook_start(db, config_now, gw, &gw->webhooks, err);
    free(db);
    return rc;
}

/* Hands over the events of the thresholds of p in mask (bits over
 * p->thresholds) for customer of app a in period. */
static void queue_events(tg_gateway *gw, const tg_app *a, const tg_plan *p, tg_str customer,
                         const char *period, uint32_t mask, tg_ncredits included, tg_ncredits used)
{
    if (!gw->webhooks || !a->webhook_url || !mask) return;
    tg_webhook_event e = {.included = included, .used = used, .at_ms = tg_clock_wall_ms()};
    snprintf(e.app, sizeof e.app, "%s", a->id);
    snprintf(e.customer, sizeof e.customer, "%.*s", TG_STR_FMT(customer));
    snprintf(e.plan, sizeof e.plan, "%s", p->id);
    snprintf(e.period, sizeof e.period, "%s", period);
    for (size_t i = 0; i < p->nthresholds; i++) {
        if (!(mask & (1u << i))) continue;
        e.threshold = p->thresholds[i];
        tg_webhook_queue(gw->webhooks, &e);
    }
}

void tg_webhooks_settled(tg_exchange *x, tg_account *acc, uint32_t crossed)
{
    const tg_plan *p = x->attr.plan;
    tg_account_state st;
    tg_account_state_of(acc, p, x->attr.app->period_anchor_day, tg_clock_wall_ms(), &st);
    if (strcmp(st.period.name, x->hold.period)) {
        /* The period ended since the settlement (it would take the
         * microseconds around its boundary), and the account's use with
         * it: the least use that crosses the highest of these thresholds
         * stands for it. */
        uint32_t top = 0;
        for (size_t i = 0; i < p->nthresholds; i++)
            if (crossed & (1u << i)) top = p->thresholds[i];
        st.included = p->included;
        st.used = (tg_ncredits)(((__int128)p->included * top + 99) / 100);
    }
    queue_events(x->ww->gw, x->attr.app, p, tg_str_c(x->attr.tags.customer), x->hold.period,
                 crossed, st.included, st.used);
}

void tg_webhooks_loaded(tg_gateway *gw, const tg_app *a, const tg_plan *p, tg_str customer,
                        const char *period, tg_ncredits included, tg_ncredits used)
{
    uint32_t reached = 0;
    for (size_t i = 0; included > 0 && i < p->nthresholds; i++)
        if ((__int128)used * 100 >= (__int128)included * p->thresholds[i]) reached |= 1u << i;
    queue_events(gw, a, p, customer, period, reached, included, used);
}

/* ---- GET /admin/v1/webhooks ---- */

typedef struct {
    tg_pool_job job;
    char app[TG_TAG_MAX + 1], customer[TG_TAG_MAX + 1];
    tg_webhook_filter f;
    size_t limit, n;
    tg_buf out;
    tg_errmsg err;
    int rc;
} list_job;

/* "name":"<UTC>", or "name":null for 0. */
static int j_time(tg_buf *b, const char *name, int64_t ms)
{
    if (!ms) return tg_buf_printf(b, ",\"%s\":null", name);
    char t[TG_UTC_STRLEN];
    tg_utc_format(ms, t);
    return tg_buf_printf(b, ",\"%s\":\"%s\"", name, t);
}

static int j_str(tg_buf *b, const char *name, const char *v)
{
    int rc = tg_buf_printf(b, ",\"%s\":", name);
    return rc ? rc : tg_jsonw_str(b, tg_str_c(v));
}

static int render(void *ud, const tg_store_webhook *e)
{
    list_job *j = ud;
    tg_buf *b = &j->out;
    int rc = j->n++ ? tg_buf_add_char(b, ',') : TG_OK;
    if (!rc) rc = tg_buf_add_lit(b, "{\"id\":");
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(e->id));
    if (!rc) rc = j_str(b, "app", e->app);
    if (!rc) rc = j_str(b, "customer", e->customer);
    if (!rc) rc = j_str(b, "period", e->period);
    if (!rc)
        rc = tg_buf_printf(b, ",\"threshold\":%u,\"status\":\"%s\",\"attempts\":%u", e->threshold,
                           tg_webhook_status_name(e->status), e->attempts);
    if (!rc) rc = e->last_error[0] ? j_str(b, "last_error", e->last_error)
                                   : tg_buf_add_lit(b, ",\"last_error\":null");
    if (!rc) rc = j_time(b, "created", e->created_ms);
    if (!rc) rc = j_time(b, "next_attempt", e->status == TG_WEBHOOK_PENDING ? e->next_ms : 0);
    if (!rc) rc = j_time(b, "delivered", e->delivered_ms);
    /* the body as it is sent: JSON tollgate wrote */
    if (!rc) rc = tg_buf_add_lit(b, ",\"payload\":");
    if (!rc) rc = tg_buf_add_str(b, e->payload);
    return rc ? rc : tg_buf_add_char(b, '}');
}

static void run_list(tg_pool_job *pj)
{
    list_job *j = (list_job *)pj;
    tg_store *s = NULL;
    j->rc = tg_store_open(pj->db, TG_STORE_RO, &s, &j->err);
    if (!j->rc) j->rc = tg_buf_add_lit(&j->out, "{\"webhooks\":[");
    if (!j->rc) j->rc = tg_store_webhooks_list(s, &j->f, j->limit, render, j, &j->err);
    if (!j->rc) j->rc = tg_buf_add_lit(&j->out, "]}\n");
    if (j->rc == TG_ENOMEM || j->rc == TG_ETOOBIG) tg_errmsg_set(&j->err, "out of memory");
    if (s) tg_store_close(s);
}

static void list_done(tg_pool_job *pj, tg_exchange *x)
{
    list_job *j = (list_job *)pj;
    if (x) {
        if (j->rc) tg_exchange_error(x, 500, "server_error", "webhooks_failed", NULL, j->err.msg);
        else tg_exchange_json(x, 200, tg_buf_str(&j->out));
    }
    tg_buf_release(&j->out);
    tg_pool_free(pj);
}

static void bad_query(tg_exchange *x, const char *param, const char *msg)
{
    tg_exchange_error(x, 400, "invalid_request_error", "invalid_query", param, msg);
}

/* The filters of the query into j; false after answering 400. */
static bool parse_query(tg_exchange *x, list_job *j)
{
    tg_str status = tg_query_param(x, "status"), customer = tg_query_param(x, "customer");
    tg_str app = tg_query_param(x, "app"), limit = tg_query_param(x, "limit");
    tg_webhook_status st;
    uint64_t lim = LIST_DEFAULT;
    j->f.status = -1;
    if (status.p) {
        if (tg_webhook_status_parse(status, &st)) {
            bad_query(x, "status", "status must be pending, delivered or failed");
            return false;
        }
        j->f.status = (int)st;
    }
    if (limit.p && (tg_str_to_u64(limit, &lim) || lim < 1 || lim > LIST_MAX)) {
        bad_query(x, "limit", "limit must be a whole number from 1 to 1000");
        return false;
    }
    if (customer.n > TG_TAG_MAX || app.n > TG_TAG_MAX) {
        bad_query(x, customer.n > TG_TAG_MAX ? "customer" : "app",
                  "customer and app are ids of at most 128 characters");
        return false;
    }
    j->limit = (size_t)lim;
    snprintf(j->customer, sizeof j->customer, "%.*s", TG_STR_FMT(customer));
    snprintf(j->app, sizeof j->app, "%.*s", TG_STR_FMT(app));
    j->f.customer = j->customer;
    j->f.app = j->app;
    return true;
}

void tg_admin_webhooks(tg_exchange *x, tg_str rest)
{
    (void)rest;
    if (!tg_admin_auth(x)) return;
    tg_gateway *gw = x->ww->gw;
    if (!gw->webhooks) {
        tg_exchange_error(x, 404, "invalid_request_error", "metering_disabled", NULL,
                        "webhook events need metering, which this gateway runs without "
                        "(metering.enabled: false)");
        return;
    }
    list_job *j = tg_pool_new(x, sizeof *j);
    if (!j) return;
    if (!parse_query(x, j)) {
        tg_pool_free(&j->job);
        return;
    }
    tg_buf_init(&j->out, 64u << 20);
    tg_pool_start(x, &j->job, run_list, list_done, "the listing");
}
