/* The gateway: server set-up, the per-worker context, routing of paths to
 * endpoints, configuration swaps, the life of an exchange (its log line
 * and metrics), and the upstream calls that wait for the journal's write.
 * See gateway.h and api.h. */
#include "api/api.h"
#include "base/clock.h"
#include "base/hash.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "sim/sim.h"
#include "store/close.h"
#include "store/plans.h"

#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define LOG_BATCH_MAX (256 * 1024)

/* ---- work on the thread pool ---- */

void *tg_pool_new(tg_exchange *x, size_t size)
{
    tg_pool_job *j = calloc(1, size);
    if (j && !(j->db = tg_store_path(x->ww->gw->metering.data_dir))) {
        free(j);
        j = NULL;
    }
    if (!j) tg_exchange_error(x, 500, "server_error", NULL, NULL, "out of memory");
    return j;
}

void tg_pool_free(tg_pool_job *j)
{
    free(j->db);
    free(j);
}

static void pool_gone(tg_req *r, void *data)
{
    (void)r;
    ((tg_pool_job *)data)->x = NULL;
}

static void pool_run(uv_work_t *w)
{
    tg_pool_job *j = w->data;
    j->run(j);
}

static void pool_done(uv_work_t *w, int status)
{
    tg_pool_job *j = w->data;
    (void)status;
    if (j->x) tg_req_on_abort(j->x->req, NULL, NULL);
    j->done(j, j->x);
}

void tg_pool_start(tg_exchange *x, tg_pool_job *j, void (*run)(tg_pool_job *),
                   void (*done)(tg_pool_job *, tg_exchange *), const char *what)
{
    j->x = x;
    j->run = run;
    j->done = done;
    j->work.data = j;
    tg_req_on_abort(x->req, pool_gone, j);
    if (!uv_queue_work(x->req->loop, &j->work, pool_run, pool_done)) return;
    tg_req_on_abort(x->req, NULL, NULL);
    char msg[128];
    snprintf(msg, sizeof msg, "%s could not be started", what);
    tg_exchange_error(x, 500, "server_error", NULL, NULL, msg);
    done(j, NULL);
}

/* ---- configuration snapshots ---- */

tg_config *tg_gateway_config(tg_gateway *gw)
{
    pthread_mutex_lock(&gw->cfg_mu);
    tg_config *c = tg_config_ref(gw->cfg);
    pthread_mutex_unlock(&gw->cfg_mu);
    return c;
}

/* The worker's current snapshot, refreshed when a reload happened. */
static tg_config *worker_config(tg_gw_worker *ww)
{
    tg_gateway *gw = ww->gw;
    unsigned long gen = atomic_load_explicit(&gw->cfg_gen, memory_order_acquire);
    if (gen != ww->cfg_gen) {
        pthread_mutex_lock(&gw->cfg_mu);
        tg_config *fresh = tg_config_ref(gw->cfg);
        ww->cfg_gen = atomic_load(&gw->cfg_gen);
        pthread_mutex_unlock(&gw->cfg_mu);
        if (ww->cfg) tg_config_unref(ww->cfg);
        ww->cfg = fresh;
    }
    return ww->cfg;
}

/* Points providers at the embedded sim; refuses what needs a restart. */
/* What a snapshot needs of this gateway: the embedded sim's URL for
 * builtin:sim, and each offering's live health entry (kept by id, so a
 * reload keeps the breakers and latencies it had). */
static int resolve_builtin(tg_gateway *gw, tg_config *cfg, tg_errmsg *err)
{
    for (size_t i = 0; i < cfg->nofferings; i++)
        if (!(cfg->offerings[i].health = tg_health_get(gw->health, cfg->offerings[i].id)))
            return tg_errmsg_set(err, "out of memory");
    for (size_t i = 0; i < cfg->nproviders; i++) {
        tg_provider *p = &cfg->providers[i];
        if (!p->builtin_sim) continue;
        if (!gw->sim)
            return tg_errmsg_set(err, "%s:%d: providers[%zu]: builtin:sim needs the simulated "
                                      "provider, which only starts with the gateway; restart",
                                 cfg->path, p->line, i);
        char *url = strdup(gw->sim_url);
        if (!url) return TG_ENOMEM;
        free(p->base_url);
        p->base_url = url;
    }
    return TG_OK;
}

int tg_gateway_adopt(tg_gateway *gw, tg_config *cfg, tg_errmsg *err)
{
    int rc = resolve_builtin(gw, cfg, err);
    if (!rc && !tg_metering_conf_eq(&cfg->metering, &gw->metering))
        rc = tg_errmsg_set(err, "%s: metering: this section changed; it takes effect only "
                                "at a restart", cfg->path);
    return rc;
}

void tg_gateway_publish(tg_gateway *gw, tg_config *cfg)
{
    tg_log_set_level(cfg->log_level);
    pthread_mutex_lock(&gw->cfg_mu);
    tg_config *old = gw->cfg;
    gw->cfg = cfg;
    atomic_fetch_add_explicit(&gw->cfg_gen, 1, memory_order_release);
    pthread_mutex_unlock(&gw->cfg_mu);
    tg_config_unref(old);
}

/* The plans made through the admin API, from the store, into cfg. */
static int stored_plans(tg_gateway *gw, tg_config *cfg, tg_errmsg *err)
{
    if (!gw->ledger) return TG_OK;
    char *path = tg_store_path(gw->metering.data_dir);
    if (!path) return TG_ENOMEM;
    tg_store *s;
    int rc = tg_store_open(path, TG_STORE_RO, &s, err);
    free(path);
    if (rc) return rc;
    rc = tg_store_config_plans(s, cfg, err);
    tg_store_close(s);
    return rc;
}

/* A reload's plans of the file's customers, into the plan history that
 * closing a period prorates by (store/close.h). The reload has happened:
 * a failure here is logged, and the next reload or close records them. */
static void plans_loaded(tg_gateway *gw, const tg_config *cfg)
{
    if (!gw->ledger) return;
    char *path = tg_store_path(gw->metering.data_dir);
    tg_store *s;
    tg_errmsg err = {0};
    int rc = path ? tg_store_open(path, TG_STORE_RW, &s, &err) : TG_ENOMEM;
    free(path);
    if (!rc) {
        rc = tg_store_plan_sync(s, cfg, (int64_t)tg_clock_wall_ms(), &err);
        tg_store_close(s);
    }
    if (rc)
        tg_log(TG_LOG_ERROR, "billing: the plans of the file's customers were not recorded for "
                             "closing periods: %s", rc == TG_ENOMEM ? "out of memory" : err.msg);
}

int tg_gateway_reload(tg_gateway *gw, const char *path, tg_errmsg *err)
{
    tg_config *cfg;
    pthread_mutex_lock(&gw->plans_mu);
    int rc = tg_config_load(path, &cfg, err);
    if (!rc) {
        rc = stored_plans(gw, cfg, err);
        if (!rc) rc = tg_gateway_adopt(gw, cfg, err);
        if (rc) tg_config_unref(cfg);
    }
    tg_metrics_reload(gw->metrics, rc == TG_OK);
    if (!rc) tg_gateway_publish(gw, cfg);
    pthread_mutex_unlock(&gw->plans_mu);
    if (!rc) plans_loaded(gw, cfg);
    return rc;
}

/* ---- exchanges ---- */

static bool rid_ok(tg_str s)
{
    if (s.n == 0 || s.n > 128) return false;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

static void exchange_end(tg_req *r, void *data);

tg_exchange *tg_exchange_new(tg_req *r, tg_gw_worker *ww, const char *endpoint)
{
    tg_exchange *x = tg_arena_alloc(&r->arena, sizeof *x);
    if (!x) return NULL;
    memset(x, 0, sizeof *x);
    x->req = r;
    x->ww = ww;
    x->cfg = tg_config_ref(worker_config(ww));
    x->endpoint = endpoint;
    x->model_label = TG_STR("-");
    tg_buf_init(&x->scratch, 1 << 16);
    tg_buf_init(&x->upbody, (size_t)x->cfg->server.max_body_bytes + 4096);
    tg_buf_init(&x->resp, x->cfg->server.max_response_bytes);
    r->data = x;
    tg_req_on_end(r, exchange_end, x);
    tg_str given = tg_req_header(r, TG_STR("x-request-id"));
    if (given.p && rid_ok(given)) {
        x->rid = given;
    } else {
        static const char hex[] = "0123456789abcdef";
        char *id = tg_arena_alloc(&r->arena, 28);
        if (id) {
            uint64_t a = tg_rng_next(&ww->rng), b = tg_rng_next(&ww->rng);
            memcpy(id, "req_", 4);
            for (int i = 0; i < 12; i++) {
                id[4 + i] = hex[(a >> (4 * i)) & 15];
                id[16 + i] = hex[(b >> (4 * i)) & 15];
            }
            x->rid = tg_str_make(id, 28);
        }
    }
    return x;
}

/* The request's line. Hot: one per request, so written at a cursor, no
 * printf (base/log.h). The field names and their order are an interface:
 * log shippers parse them. */
static int log_line(tg_exchange *x, tg_buf *b, uint64_t now)
{
    tg_req *r = x->req;
    uint64_t ttfb = r->t_first_byte_ns ? r->t_first_byte_ns - r->t_start_ns : 0;
    tg_log_line l;
    tg_log_line_begin(&l, b, TG_LOG_INFO);
    tg_log_kv_str(&l, "msg", TG_STR("request"));
    tg_log_kv_str(&l, "rid", x->rid);
    tg_log_kv_str(&l, "key", x->key ? tg_str_c(x->key->id) : TG_STR("-"));
    tg_log_kv_str(&l, "endpoint", tg_str_c(x->endpoint));
    tg_log_kv_str(&l, "model", x->model_label);
    tg_log_kv_str(&l, "provider", x->off ? tg_str_c(x->off->provider->name) : TG_STR("-"));
    tg_log_kv_str(&l, "offering", x->off ? tg_str_c(x->off->id) : TG_STR("-"));
    tg_log_kv_bool(&l, "stream", x->oreq.stream);
    tg_log_kv_i64(&l, "status", r->status);
    tg_log_kv_i64(&l, "upstream_status", x->up_status);
    tg_log_kv_u64(&l, "bytes_in", r->bytes_in);
    tg_log_kv_u64(&l, "bytes_out", r->bytes_out);
    tg_log_kv_u64(&l, "latency_us", (now - r->t_start_ns) / 1000);
    tg_log_kv_u64(&l, "ttfb_us", ttfb / 1000);
    if (x->usage.present) {
        tg_log_kv_i64(&l, "prompt_tokens", x->usage.prompt);
        tg_log_kv_i64(&l, "completion_tokens", x->usage.completion);
        tg_log_kv_i64(&l, "cached_tokens", x->usage.cached);
    }
    if (x->rec) {
        tg_log_kv_i64(&l, "cost_nanos", x->rec->r.cost);
        tg_log_kv_i64(&l, "charge_nanos", x->rec->r.charge);
    }
    if (x->error) tg_log_kv_str(&l, "error", tg_str_c(x->error));
    return tg_log_line_end(&l);
}

static void held_unlink(tg_xlink *l);

/* The request's end callback: every exchange ends here exactly once. */
static void exchange_end(tg_req *r, void *data)
{
    tg_exchange *x = data;
    if (x->held.next) held_unlink(&x->held); /* its arena goes after this */
    if (x->call) tg_upcall_cancel(x->call);
    x->call = NULL;
    tg_routing_end(x);
    tg_gw_worker *ww = x->ww;
    uint64_t now = uv_hrtime();
    tg_metering_end(x, now);
    tg_policy_end(x);
    if (tg_log_get_level() <= TG_LOG_INFO) {
        log_line(x, &ww->log, now); /* a line that does not fit is dropped */
        if (ww->log.n > LOG_BATCH_MAX / 2) {
            tg_log_write(ww->log.p, ww->log.n);
            tg_buf_clear(&ww->log);
        }
    }
    tg_metrics_request(ww->metrics, x->model_label, r->status, now - r->t_start_ns,
                       r->t_first_byte_ns ? r->t_first_byte_ns - r->t_start_ns : 0,
                       x->usage.prompt, x->usage.completion);
    tg_buf_release(&x->scratch);
    tg_buf_release(&x->upbody);
    tg_buf_release(&x->resp);
    tg_buf_release(&x->xbody);
    tg_sse_release(&x->sse);
    tg_adapter_release(x);
    tg_config_unref(x->cfg);
}

void tg_exchange_json(tg_exchange *x, int status, tg_str body)
{
    tg_header h[5] = {{TG_STR("X-Request-Id"), x->rid}};
    size_t nh = 1;
    if (x->retry_after.n && (status == 429 || status == 503))
        h[nh++] = (tg_header){TG_STR("Retry-After"), x->retry_after};
    for (size_t i = 0; i < x->nresp_hdr; i++)
        h[nh++] = x->resp_hdr[i];
    tg_resp_send(x->req, status, TG_STR("application/json"), h, nh, body);
}

void tg_exchange_error(tg_exchange *x, int status, const char *type, const char *code,
                       const char *param, const char *msg)
{
    tg_buf b;
    tg_buf_init(&b, 1 << 16);
    if (!x->error) x->error = code ? code : type;
    int rc;
    if (x->anthropic) {
        /* Anthropic's shape has a type from the status and a message; the
         * parameter, when there is one, leads the message */
        char m[1200];
        snprintf(m, sizeof m, "%s%s%s", param ? param : "", param ? ": " : "", msg);
        rc = tg_anthropic_error_body(&b, tg_anthropic_error_type(status), tg_str_c(m));
    } else {
        rc = tg_buf_add_lit(&b, "{\"error\":{\"message\":");
        if (!rc) rc = tg_jsonw_str(&b, tg_str_c(msg));
        if (!rc) rc = tg_buf_add_lit(&b, ",\"type\":");
        if (!rc) rc = tg_jsonw_str(&b, tg_str_c(type));
        if (!rc) rc = tg_buf_add_lit(&b, ",\"param\":");
        if (!rc) rc = param ? tg_jsonw_str(&b, tg_str_c(param)) : tg_buf_add_lit(&b, "null");
        if (!rc) rc = tg_buf_add_lit(&b, ",\"code\":");
        if (!rc) rc = code ? tg_jsonw_str(&b, tg_str_c(code)) : tg_buf_add_lit(&b, "null");
        if (!rc) rc = tg_buf_add_lit(&b, "}}");
    }
    tg_exchange_json(x, status, rc ? TG_STR("{\"error\":{\"message\":\"internal error\"}}") : tg_buf_str(&b));
    tg_buf_release(&b);
}

/* ---- endpoints of the gateway itself ---- */

static void health(tg_exchange *x)
{
    tg_exchange_json(x, 200, TG_STR("{\"status\":\"ok\"}"));
}

/* The ledger's counters: how far the projection into the store is behind. */
static int ledger_metrics(tg_ledger *l, tg_buf *b)
{
    tg_ledger_counts c;
    tg_ledger_stats(l, &c);
    return tg_buf_printf(
        b,
        "# HELP tollgate_usage_records_total Usage records handed to the ledger.\n"
        "# TYPE tollgate_usage_records_total counter\n"
        "tollgate_usage_records_total %llu\n"
        "# HELP tollgate_ledger_committed_total Usage records committed to the store.\n"
        "# TYPE tollgate_ledger_committed_total counter\n"
        "tollgate_ledger_committed_total %llu\n"
        "# HELP tollgate_ledger_queued Usage records waiting for the store.\n"
        "# TYPE tollgate_ledger_queued gauge\n"
        "tollgate_ledger_queued %llu\n"
        "# HELP tollgate_ledger_failures_total Failed store commits (each retried).\n"
        "# TYPE tollgate_ledger_failures_total counter\n"
        "tollgate_ledger_failures_total %llu\n",
        (unsigned long long)c.submitted, (unsigned long long)c.committed,
        (unsigned long long)c.queued, (unsigned long long)c.failures);
}

static void metrics(tg_exchange *x)
{
    tg_buf b;
    tg_buf_init(&b, 16 << 20);
    tg_gateway *gw = x->ww->gw;
    int rc = tg_metrics_render(gw->metrics, tg_server_connections(gw->server), &b);
    if (!rc && gw->ledger) rc = ledger_metrics(gw->ledger, &b);
    if (!rc) rc = tg_routing_metrics(gw, &b);
    if (rc) {
        tg_exchange_error(x, 500, "server_error", NULL, NULL, "metrics could not be rendered");
    } else {
        tg_header h = {TG_STR("X-Request-Id"), x->rid};
        tg_resp_send(x->req, 200, TG_STR("text/plain; version=0.0.4"), &h, 1, tg_buf_str(&b));
    }
    tg_buf_release(&b);
}

/* The endpoints. A path ending in '/' is a prefix: what follows it (an id,
 * maybe more segments) is the handler's `rest`, which is never empty. */
typedef struct {
    tg_method method;
    const char *path;
    const char *name;
    void (*fn)(tg_exchange *x, tg_str rest);
} tg_route_entry;

static void chat(tg_exchange *x, tg_str rest) { (void)rest, tg_openai_proxy(x, TG_EP_CHAT); }
static void messages(tg_exchange *x, tg_str rest) { (void)rest, tg_anthropic_proxy(x); }
static void completions(tg_exchange *x, tg_str rest) { (void)rest, tg_openai_proxy(x, TG_EP_COMPLETIONS); }
static void embeddings(tg_exchange *x, tg_str rest) { (void)rest, tg_openai_proxy(x, TG_EP_EMBEDDINGS); }
static void models(tg_exchange *x, tg_str rest) { tg_openai_models(x, rest); }
static void usage(tg_exchange *x, tg_str rest) { (void)rest, tg_usage_report(x); }
static void reports(tg_exchange *x, tg_str rest) { (void)rest, tg_admin_reports(x); }
static void healthz(tg_exchange *x, tg_str rest) { (void)rest, health(x); }
static void prom(tg_exchange *x, tg_str rest) { (void)rest, metrics(x); }

static const tg_route_entry routes[] = {
    {TG_POST, "/v1/chat/completions", "chat", chat},
    {TG_POST, "/v1/completions", "completions", completions},
    {TG_POST, "/v1/embeddings", "embeddings", embeddings},
    {TG_POST, "/v1/messages", "messages", messages},
    {TG_GET, "/v1/models", "models", models},
    {TG_GET, "/v1/models/", "models", models},
    {TG_GET, "/v1/usage", "usage", usage},
    {TG_GET, "/v1/wallet", "wallet", tg_customer_wallet},
    {TG_GET, "/admin/v1/reports", "admin_reports", reports},
    {TG_GET, "/admin/v1/plans", "admin_plans", tg_admin_plans},
    {TG_GET, "/admin/v1/plans/", "admin_plans", tg_admin_plans},
    {TG_PUT, "/admin/v1/plans/", "admin_plans", tg_admin_plans},
    {TG_DELETE, "/admin/v1/plans/", "admin_plans", tg_admin_plans},
    {TG_GET, "/admin/v1/customers/", "admin_customers", tg_admin_customers},
    {TG_POST, "/admin/v1/customers/", "admin_customers", tg_admin_customers},
    {TG_PUT, "/admin/v1/customers/", "admin_customers", tg_admin_customers},
    {TG_GET, "/admin/v1/runs/", "admin_runs", tg_admin_runs},
    {TG_GET, "/admin/v1/periods/", "admin_periods", tg_admin_periods},
    {TG_POST, "/admin/v1/periods/", "admin_periods", tg_admin_periods},
    {TG_GET, "/admin/v1/invoices/", "admin_invoices", tg_admin_invoices},
    {TG_GET, "/admin/v1/webhooks", "admin_webhooks", tg_admin_webhooks},
    {TG_GET, "/admin/v1/routing", "admin_routing", tg_admin_routing},
    {TG_GET, "/healthz", "healthz", healthz},
    {TG_GET, "/metrics", "metrics", prom},
};

static void handle(tg_req *r, void *data)
{
    tg_gw_worker *ww = tg_worker_data(r->worker);
    (void)data;
    const tg_route_entry *hit = NULL;
    bool path_known = false;
    tg_str rest = TG_STR_NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        tg_str p = tg_str_c(routes[i].path);
        tg_str tail = TG_STR_NULL;
        bool match = tg_str_eq(r->path, p);
        if (!match && p.p[p.n - 1] == '/' && r->path.n > p.n && tg_str_has_prefix(r->path, p)) {
            match = true;
            tail = tg_str_make(r->path.p + p.n, r->path.n - p.n);
        }
        if (!match) continue;
        path_known = true;
        if (routes[i].method == r->method || (r->method == TG_HEAD && routes[i].method == TG_GET)) {
            hit = &routes[i];
            rest = tail;
            break;
        }
    }
    tg_exchange *x = tg_exchange_new(r, ww, hit ? hit->name : "-");
    if (!x) {
        tg_resp_send(r, 500, TG_STR("application/json"), NULL, 0,
                     TG_STR("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\"}}"));
        return;
    }
    if (!hit) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s %.*s", path_known ? "Method not allowed for" : "Unknown request URL:",
                 (int)(r->path.n > 120 ? 120 : r->path.n), r->path.p);
        tg_exchange_error(x, path_known ? 405 : 404, "invalid_request_error",
                        path_known ? "method_not_allowed" : "unknown_url", NULL, msg);
        return;
    }
    hit->fn(x, rest);
}

static void on_server_error(tg_req *r, int status, const char *type, const char *msg, void *data)
{
    (void)data;
    tg_exchange *x = tg_exchange_new(r, tg_worker_data(r->worker), "-");
    if (!x) {
        tg_resp_send(r, status, TG_STR("application/json"), NULL, 0, TG_STR("{\"error\":{}}"));
        return;
    }
    tg_exchange_error(x, status, type, NULL, NULL, msg);
}

/* ---- metering: journal, store and ledger ---- */

#define RECOVERY_BATCH 4096

typedef struct {
    tg_store *store;
    tg_usage_rec *batch;
    size_t n;
    uint64_t inserted;
    tg_errmsg *err;
} tg_recovery;

/* Puts what the store does not have yet: a crash can come after the
 * ledger committed a record and before its journal segment went. */
static int flush_recovery(tg_recovery *rv)
{
    size_t n = rv->n;
    rv->n = 0;
    int rc = tg_store_drop_known(rv->store, rv->batch, &n, rv->err);
    if (!rc && n) rc = tg_store_put(rv->store, rv->batch, n, rv->err);
    if (!rc) rv->inserted += n;
    return rc;
}

static int load_customer(void *ud, const char *app, const char *id, const char *plan, int64_t first_ms)
{
    (void)first_ms;
    return tg_customers_put(ud, tg_str_c(id), tg_str_c(app), tg_str_c(plan));
}

static int recovered_record(void *ud, const tg_usage_rec *r)
{
    tg_recovery *rv = ud;
    rv->batch[rv->n++] = *r;
    if (rv->n < RECOVERY_BATCH) return TG_OK;
    return flush_recovery(rv);
}

/* Opens the store, settles what an earlier process left in the journal,
 * and starts the ledger thread. Runs before any worker, so the journal's
 * old segments are read while nothing appends. */
static int metering_start(tg_gateway *gw, const tg_config *cfg, tg_errmsg *err)
{
    const tg_metering_conf *m = &cfg->metering;
    gw->metering = *m;
    /* the snapshot goes at the next reload; the copy must not point into it */
    if (m->data_dir && !(gw->metering.data_dir = strdup(m->data_dir))) return TG_ENOMEM;
    if (!m->enabled) return TG_OK;
    tg_store *st = NULL;
    tg_recovery rv = {0};
    tg_journal_stats js = {0};
    int rc = TG_ENOMEM;
    if (!(gw->customers = tg_customers_new())) goto out;
    char *path = tg_store_path(m->data_dir);
    if (!path) goto out;
    rc = tg_store_open(path, TG_STORE_RW, &st, err);
    free(path);
    if (rc) goto out;
    tg_billing_store(gw, st);
    /* workers are not running: cfg is still the gateway's alone */
    if ((rc = tg_store_config_plans(st, gw->cfg, err))) goto out;
    if ((rc = tg_store_plan_sync(st, gw->cfg, (int64_t)tg_clock_wall_ms(), err))) goto out;
    if ((rc = tg_store_each_customer(st, load_customer, gw->customers, err))) goto out;
    if ((rc = tg_journal_open(m, &gw->journal, err))) goto out;
    rv.store = st;
    rv.err = err;
    rc = TG_ENOMEM;
    if (!(rv.batch = malloc(RECOVERY_BATCH * sizeof *rv.batch))) goto out;
    if ((rc = tg_journal_recover(gw->journal, recovered_record, &rv, &js, err))) goto out;
    if ((rc = flush_recovery(&rv))) goto out;
    if ((rc = tg_journal_recovered(gw->journal, err))) goto out;
    if (js.segments)
        tg_log(TG_LOG_INFO, "metering: recovered %llu records from %llu journal segments (%llu "
               "interrupted, %llu torn segments), %llu new in the store",
               (unsigned long long)(js.outcomes + js.interrupted), (unsigned long long)js.segments,
               (unsigned long long)js.interrupted, (unsigned long long)js.torn,
               (unsigned long long)rv.inserted);
    if ((rc = tg_webhooks_start(gw, err))) goto out;
    if ((rc = tg_billing_load(gw, st, err))) goto out;
    if ((rc = tg_runs_load(gw, st, err))) goto out;
    rc = tg_ledger_start(m, st, gw->journal, &gw->ledger, err);
    st = NULL; /* the ledger's now, also when it failed to start */
    if (!rc) tg_billing_start(gw);
out:
    free(rv.batch);
    if (st) tg_store_close(st);
    return rc;
}

static void metering_stop(tg_gateway *gw)
{
    tg_webhook_stop(gw->webhooks);
    gw->webhooks = NULL;
    if (gw->ledger) tg_ledger_stop(gw->ledger);
    if (gw->journal) tg_journal_close(gw->journal);
    tg_customers_free(gw->customers);
    tg_accounts_free(gw->accounts);
    tg_runs_free(gw->runs);
    free(gw->metering.data_dir);
    gw->metering.data_dir = NULL;
    gw->ledger = NULL;
    gw->journal = NULL;
    gw->customers = NULL;
}

/* ---- upstream calls held for the journal ----
 *
 * A metered request's upstream call waits until its intent is in the
 * journal. The journal holds intents until a flush, so the calls wait on
 * the worker's held list, and start_held flushes once for all of them:
 * one write(2) per loop turn rather than one per request. It runs from a
 * check handle, right after the loop's I/O callbacks (where requests are
 * parsed and dispatched), and from the prepare handle before the loop
 * waits, which catches requests dispatched elsewhere (timers, close
 * callbacks, a pipelined request dispatched by start_held itself). */

static bool held_empty(const tg_xlink *head) { return head->next == head; }

static void held_unlink(tg_xlink *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = NULL;
}

static void held_append(tg_xlink *head, tg_xlink *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

/* Moves the links of the non-empty list from to the sentinel to. */
static void held_move(tg_xlink *from, tg_xlink *to)
{
    *to = *from;
    to->next->prev = to->prev->next = to;
    from->next = from->prev = from;
}

void tg_exchange_call(tg_exchange *x)
{
    tg_gw_worker *ww = x->ww;
    if (!ww->jw) {
        tg_relay_start(x);
        return;
    }
    held_append(&ww->held, &x->held);
    tg_req_on_abort(x->req, tg_relay_client_gone, x);
}

static tg_exchange *held_exchange(tg_xlink *l)
{
    return (tg_exchange *)((char *)l - offsetof(tg_exchange, held));
}

/* Appends the outcomes of the requests that ended and the intents of the
 * calls that wait (refusing a call whose intent cannot be appended),
 * writes them in one write(2), then starts the calls whose intents that
 * write carried, or refuses them all if it failed. Again until nothing is
 * left: ending a request (a refusal, a call that cannot start) leaves an
 * outcome, and may dispatch a pipelined request whose call waits. Those
 * wait for the next write, never for this one's result. */
static void start_held(tg_gw_worker *ww)
{
    if (!ww->jw) return;
    for (;;) {
        tg_metering_journal_outcomes(ww);
        tg_xlink batch = {&batch, &batch};
        if (!held_empty(&ww->held)) held_move(&ww->held, &batch);
        for (tg_xlink *l = batch.next, *next; l != &batch; l = next) {
            next = l->next;
            tg_exchange *x = held_exchange(l);
            if (tg_metering_journal_intent(x)) {
                held_unlink(&x->held);
                tg_metering_refuse(x);
            }
        }
        int rc = tg_journal_writer_flush(ww->jw);
        while (!held_empty(&batch)) {
            tg_exchange *x = held_exchange(batch.next);
            held_unlink(&x->held);
            if (rc) tg_metering_refuse(x);
            else tg_relay_start(x);
        }
        if (held_empty(&ww->held) && !ww->nended) return;
    }
}

static void on_io_done(uv_check_t *c) { start_held(c->data); }

/* ---- workers ---- */

/* A prepare handle runs right before the loop blocks for I/O, so lines
 * written anywhere in a loop turn (I/O, timers) go out before it sleeps,
 * and so do the journal records the turn held back since the check handle
 * ran (start_held: one write(2) for all of them, then the calls that
 * waited for it). */
static void on_flush(uv_prepare_t *c)
{
    tg_gw_worker *ww = c->data;
    start_held(ww);
    if (ww->log.n) {
        tg_log_write(ww->log.p, ww->log.n);
        tg_buf_clear(&ww->log);
    }
}

static void worker_start(tg_worker *w, void *data)
{
    tg_gateway *gw = data;
    tg_gw_worker *ww = calloc(1, sizeof *ww);
    if (!ww || !(ww->up = tg_upstream_new(tg_worker_loop(w)))) {
        tg_log(TG_LOG_ERROR, "gateway: out of memory starting a worker");
        abort();
    }
    ww->gw = gw;
    ww->w = w;
    ww->metrics = tg_metrics_shard_of(gw->metrics, tg_worker_index(w));
    ww->rng.s = tg_hash64(&ww, sizeof ww, (uint64_t)tg_clock_wall_ms()) ^ tg_worker_index(w);
    tg_buf_init(&ww->log, LOG_BATCH_MAX);
    uv_prepare_init(tg_worker_loop(w), &ww->flush);
    ww->flush.data = ww;
    uv_prepare_start(&ww->flush, on_flush);
    uv_unref((uv_handle_t *)&ww->flush);
    uv_check_init(tg_worker_loop(w), &ww->io_done);
    ww->io_done.data = ww;
    uv_check_start(&ww->io_done, on_io_done);
    uv_unref((uv_handle_t *)&ww->io_done);
    ww->held.prev = ww->held.next = &ww->held;
    worker_config(ww);
    if (gw->journal && !(ww->jw = tg_journal_writer_new(gw->journal, tg_worker_index(w)))) {
        tg_log(TG_LOG_ERROR, "gateway: out of memory starting a worker");
        abort();
    }
    tg_worker_set_data(w, ww);
}

/* ww holds both handles: it goes after the second one's close. */
static void on_handle_closed(uv_handle_t *h)
{
    tg_gw_worker *ww = h->data;
    if (--ww->handles_open) return;
    tg_buf_release(&ww->log);
    free(ww);
}

static void worker_stop(tg_worker *w, void *data)
{
    (void)data;
    tg_gw_worker *ww = tg_worker_data(w);
    /* No call waits: this runs once the worker has no connection left, so
     * every request has ended, and an exchange leaves the list as it ends
     * (a client leaving a held request ends it: tg_exchange_call). */
    assert(held_empty(&ww->held));
    on_flush(&ww->flush);
    tg_upstream_free(ww->up);
    if (ww->jw) tg_journal_writer_free(ww->jw);
    tg_metering_worker_free(ww);
    if (ww->cfg) tg_config_unref(ww->cfg);
    /* both at once: neither may run again, the journal writer is gone */
    ww->handles_open = 2;
    uv_close((uv_handle_t *)&ww->flush, on_handle_closed);
    uv_close((uv_handle_t *)&ww->io_done, on_handle_closed);
}

int tg_gateway_start(tg_config *cfg, tg_gateway **out, tg_errmsg *err)
{
    tg_gateway *gw = calloc(1, sizeof *gw);
    if (!gw) return TG_ENOMEM;
    pthread_mutex_init(&gw->cfg_mu, NULL);
    pthread_mutex_init(&gw->plans_mu, NULL);
    gw->cfg = cfg;
    gw->cfg_gen = 1;
    gw->shutdown_timeout_ms = cfg->server.shutdown_timeout_ms;
    tg_log_set_level(cfg->log_level);
    int rc = (gw->health = tg_health_table_new()) ? TG_OK : TG_ENOMEM;
    if (!rc && cfg->sim.enabled) {
        rc = tg_sim_start(&cfg->sim, NULL, &gw->sim, err);
        if (!rc)
            snprintf(gw->sim_url, sizeof gw->sim_url, "http://127.0.0.1:%u/v1", tg_server_port(gw->sim));
    }
    if (!rc) rc = resolve_builtin(gw, cfg, err);
    if (!rc) rc = metering_start(gw, cfg, err);
    unsigned workers = cfg->server.workers;
    if (!rc && !(gw->metrics = tg_metrics_new(workers ? workers : 64))) rc = TG_ENOMEM;
    if (!rc && !(gw->limiters = tg_limiters_new())) rc = TG_ENOMEM;
    if (!rc) {
        tg_server_opts o = {.name = "gateway", .conf = cfg->server, .handler = handle,
                            .error = on_server_error, .worker_start = worker_start,
                            .worker_stop = worker_stop, .data = gw};
        rc = tg_server_start(&gw->server, &o, err);
    }
    if (rc) {
        if (gw->sim) {
            tg_server_drain(gw->sim, 0);
            tg_server_join(gw->sim);
        }
        metering_stop(gw);
        tg_metrics_free(gw->metrics);
        tg_limiters_free(gw->limiters);
        tg_health_table_free(gw->health);
        pthread_mutex_destroy(&gw->cfg_mu);
        pthread_mutex_destroy(&gw->plans_mu);
        free(gw);
        return rc; /* cfg stays the caller's */
    }
    *out = gw;
    return TG_OK;
}

uint16_t tg_gateway_port(const tg_gateway *gw) { return tg_server_port(gw->server); }

void tg_gateway_stop(tg_gateway *gw)
{
    tg_server_drain(gw->server, gw->shutdown_timeout_ms);
    tg_server_join(gw->server);
    if (gw->sim) {
        tg_server_drain(gw->sim, 0);
        tg_server_join(gw->sim);
    }
    metering_stop(gw);
    tg_metrics_free(gw->metrics);
    tg_limiters_free(gw->limiters);
    tg_config_unref(gw->cfg);
    tg_health_table_free(gw->health); /* after the last snapshot that points into it */
    pthread_mutex_destroy(&gw->cfg_mu);
    pthread_mutex_destroy(&gw->plans_mu);
    free(gw);
}
