/* Usage reports over HTTP: the same reports as `tollgate report`, every
 * column included (the routing columns too: attempts, asked_cost and
 * savings; by=route compares the routes).
 *
 *   GET /admin/v1/reports?period=2026-11&by=customer[&app=A][&customer=C][&limit=N][&format=json|csv]
 *       an admin key; any app and customer
 *   GET /v1/usage?period=2026-11&by=feature[&customer=C][&limit=N][&format=json|csv]
 *       a customer key reads its own customer only (naming another is a
 *       403); an app key reads its app's customers; an admin key anything
 *
 * A report reads SQLite, which may take a while on a big month, so it runs
 * on libuv's thread pool with its own read-only store handle, never on
 * the worker's loop. A client that leaves meanwhile is noticed by the
 * abort callback; the finished report is then dropped. */
#include "api/api.h"
#include "report/report.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
    tg_pool_job job;
    tg_report_query q;
    tg_report_format format;
    tg_buf out;
    tg_errmsg err;
    int rc;
} report_job;

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* v percent-decoded into the request's arena ('+' a space when plus). */
static tg_str pct_decode(tg_exchange *x, tg_str v, bool plus)
{
    char *d = tg_arena_alloc(&x->req->arena, v.n + 1);
    if (!d) return TG_STR_NULL;
    size_t n = 0;
    for (size_t j = 0; j < v.n; j++) {
        int hi = v.p[j] == '%' && j + 2 < v.n ? hexval(v.p[j + 1]) : -1;
        int lo = hi >= 0 ? hexval(v.p[j + 2]) : -1;
        if (lo >= 0) {
            d[n++] = (char)(hi << 4 | lo);
            j += 2;
        } else {
            d[n++] = plus && v.p[j] == '+' ? ' ' : v.p[j];
        }
    }
    d[n] = '\0';
    return tg_str_make(d, n);
}

tg_str tg_query_param(tg_exchange *x, const char *name)
{
    tg_str q = x->req->query, key = tg_str_c(name);
    size_t i = 0;
    while (i < q.n) {
        size_t end = i;
        while (end < q.n && q.p[end] != '&') end++;
        tg_str pair = tg_str_make(q.p + i, end - i);
        i = end + 1;
        if (pair.n <= key.n || pair.p[key.n] != '=' || memcmp(pair.p, key.p, key.n)) continue;
        return pct_decode(x, tg_str_make(pair.p + key.n + 1, pair.n - key.n - 1), true);
    }
    return TG_STR_NULL;
}

tg_str tg_path_segment(tg_exchange *x, tg_str seg) { return pct_decode(x, seg, false); }

/* The parameter as a C string of at most TG_TAG_MAX bytes ("" when absent). */
static const char *cparam(tg_exchange *x, const char *name)
{
    tg_str v = tg_query_param(x, name);
    return v.p && v.n <= TG_TAG_MAX ? v.p : v.p ? "\x01" /* refused by the parser */ : "";
}

static void run_report(tg_pool_job *pj)
{
    report_job *j = (report_job *)pj;
    tg_store *s = NULL;
    j->rc = tg_store_open(pj->db, TG_STORE_RO, &s, &j->err);
    if (!j->rc) j->rc = tg_report_run(s, &j->q, j->format, &j->out, &j->err);
    if (s) tg_store_close(s);
}

static void report_done(tg_pool_job *pj, tg_exchange *x)
{
    report_job *j = (report_job *)pj;
    if (x) {
        if (j->rc) {
            tg_exchange_error(x, 500, "server_error", "report_failed", NULL, j->err.msg);
        } else {
            tg_header h = {TG_STR("X-Request-Id"), x->rid};
            tg_str type = j->format == TG_REPORT_CSV ? TG_STR("text/csv; charset=utf-8")
                                                     : TG_STR("application/json");
            tg_resp_send(x->req, 200, type, &h, 1, tg_buf_str(&j->out));
        }
    }
    tg_buf_release(&j->out);
    tg_pool_free(pj);
}

/* Parses the query for a caller restricted to app (NULL: any) and
 * customer (NULL: any), and starts the report. */
static void start_report(tg_exchange *x, const tg_app *app, const char *customer)
{
    if (!x->ww->gw->ledger) {
        tg_exchange_error(x, 404, "invalid_request_error", "metering_disabled", NULL,
                        "usage reports need metering, which this gateway runs without "
                        "(metering.enabled: false)");
        return;
    }
    report_job *j = tg_pool_new(x, sizeof *j);
    if (!j) return;
    const char *named = cparam(x, "customer");
    const char *fmt = cparam(x, "format");
    const char *limit = cparam(x, "limit");
    uint64_t lim = 0;
    int rc = TG_OK;
    if (*limit && (tg_str_to_u64(tg_str_c(limit), &lim) || lim > 1000000)) {
        rc = tg_errmsg_set(&j->err, "limit must be a whole number from 0 to 1000000");
    }
    if (!rc && *fmt && strcmp(fmt, "json") && strcmp(fmt, "csv"))
        rc = tg_errmsg_set(&j->err, "format must be json or csv");
    j->format = !strcmp(fmt, "csv") ? TG_REPORT_CSV : TG_REPORT_JSON;
    if (!rc)
        rc = tg_report_query_parse(&j->q, cparam(x, "period"), *cparam(x, "by") ? cparam(x, "by") : "customer",
                                   app ? app->id : cparam(x, "app"), customer ? customer : named,
                                   (size_t)lim, &j->err);
    if (rc) {
        tg_exchange_error(x, 400, "invalid_request_error", "invalid_report", NULL, j->err.msg);
        tg_pool_free(&j->job);
        return;
    }
    tg_buf_init(&j->out, 64u << 20);
    tg_pool_start(x, &j->job, run_report, report_done, "the report");
}

void tg_admin_reports(tg_exchange *x)
{
    if (tg_admin_auth(x)) start_report(x, NULL, NULL);
}

void tg_usage_report(tg_exchange *x)
{
    if (!tg_authenticate(x)) return;
    const tg_key *k = x->key;
    const char *named = cparam(x, "customer");
    if (k->customer) {
        if (*named && strcmp(named, k->customer->id)) {
            tg_exchange_error(x, 403, "invalid_request_error", "customer_forbidden", "customer",
                            "This key may read only its own customer's usage.");
            return;
        }
        start_report(x, k->customer->app, k->customer->id);
        return;
    }
    if (!k->app && !k->admin) {
        tg_exchange_error(x, 403, "invalid_request_error", "customer_forbidden", NULL,
                        "This key belongs to no app or customer, so it has no usage to read.");
        return;
    }
    start_report(x, k->app, NULL);
}
