/* Closing periods through the admin API (docs/invoices.md):
 *
 *   POST /admin/v1/periods/{YYYY-MM}/close          close it: a draft, or with
 *                                                   {"finalize": true} for good
 *   GET  /admin/v1/periods/{YYYY-MM}                its close, every document
 *   GET  /admin/v1/periods/{YYYY-MM}/invoices       [?customer=C][&format=csv]
 *   GET  /admin/v1/periods/{YYYY-MM}/statements     [?app=A][&format=csv]
 *   GET  /admin/v1/periods/{YYYY-MM}/settlements    [?provider=P][&format=csv]
 *   GET  /admin/v1/invoices/{id}                    [?format=csv|html]
 *
 * Each runs on libuv's thread pool with a store handle of its own, as
 * reports do (usage.c). A close reads the store in one snapshot and
 * writes in one short transaction, beside the ledger. The JSON is what
 * `tollgate close-period --format json` and the other commands print.
 * Errors come in OpenAI's shape. */
#include "api/api.h"

#include "base/clock.h"
#include "bill/period.h"
#include "report/docs.h"
#include "report/invoice_html.h"
#include "store/close.h"

#include <stdio.h>
#include <string.h>

typedef enum { DOC_CLOSE, DOC_READ, DOC_INVOICES, DOC_STATEMENTS, DOC_SETTLEMENTS, DOC_INVOICE } doc_kind;

typedef struct {
    tg_pool_job job;
    doc_kind kind;
    tg_config *cfg;          /* a close's reference: the plans it bills by */
    char period[8];
    char id[TG_INVOICE_ID_MAX + 1];
    char filter[TG_TAG_MAX + 1];
    bool finalize, html, unchanged;
    tg_report_format format;
    tg_buf out;
    tg_errmsg err;
    int rc;
} doc_job;

static void run_doc(tg_pool_job *pj)
{
    doc_job *j = (doc_job *)pj;
    tg_store *s = NULL;
    tg_close_docs d = {0};
    bool have = false;
    j->rc = tg_store_open(pj->db, j->kind == DOC_CLOSE ? TG_STORE_RW : TG_STORE_RO, &s, &j->err);
    if (!j->rc && j->kind == DOC_CLOSE) {
        tg_close_opts o = {.period = j->period, .finalize = j->finalize,
                           .now_ms = (int64_t)tg_clock_wall_ms()};
        j->rc = tg_store_plan_sync(s, j->cfg, o.now_ms, &j->err);
        if (!j->rc) j->rc = tg_close_period(s, j->cfg, &o, &d, &j->unchanged, &j->err);
        have = !j->rc;
    } else if (!j->rc) {
        if (j->kind == DOC_INVOICE) j->rc = tg_store_invoice_period(s, j->id, j->period, &j->err);
        if (!j->rc) j->rc = tg_store_close_read(s, j->period, &d, &j->err);
        have = !j->rc;
    }
    if (s) tg_store_close(s);
    if (!have) return;
    const char *f = j->filter[0] ? j->filter : NULL;
    int rc = TG_OK;
    switch (j->kind) {
    case DOC_CLOSE:
    case DOC_READ: rc = tg_docs_close(&d, j->unchanged, TG_REPORT_JSON, &j->out); break;
    case DOC_INVOICES: rc = tg_docs_invoices(&d, f, j->format, &j->out); break;
    case DOC_STATEMENTS: rc = tg_docs_statements(&d, f, j->format, &j->out); break;
    case DOC_SETTLEMENTS: rc = tg_docs_settlements(&d, f, j->format, &j->out); break;
    case DOC_INVOICE: {
        const tg_invoice *inv = tg_docs_find(&d, j->id);
        rc = j->html ? tg_invoice_html(inv, &d.st, &j->out) : tg_docs_invoice(&d, inv, j->format, &j->out);
        break;
    }
    }
    tg_close_docs_release(&d);
    if (rc) {
        j->rc = rc;
        tg_errmsg_set(&j->err, "%s", rc == TG_ENOMEM ? "out of memory" : "the documents are too large to send");
    }
}

static void doc_done(tg_pool_job *pj, tg_exchange *x)
{
    doc_job *j = (doc_job *)pj;
    if (x && j->rc == TG_ENOTFOUND) {
        tg_exchange_error(x, 404, "invalid_request_error",
                          j->kind == DOC_INVOICE ? "invoice_not_found" : "period_not_closed", NULL,
                          j->err.msg);
    } else if (x && j->rc == TG_EINVAL) {
        /* a close refused: out of order, too early, or a ledger that
         * disagrees with its records (the message says which) */
        tg_exchange_error(x, 409, "invalid_request_error", "close_refused", NULL, j->err.msg);
    } else if (x && j->rc) {
        tg_exchange_error(x, 500, "server_error", "close_failed", NULL, j->err.msg);
    } else if (x) {
        tg_header h = {TG_STR("X-Request-Id"), x->rid};
        tg_str type = j->html ? TG_STR("text/html; charset=utf-8")
                      : j->format == TG_REPORT_CSV ? TG_STR("text/csv; charset=utf-8")
                                                   : TG_STR("application/json");
        tg_resp_send(x->req, 200, type, &h, 1, tg_buf_str(&j->out));
    }
    tg_buf_release(&j->out);
    if (j->cfg) tg_config_unref(j->cfg);
    tg_pool_free(pj);
}

/* The ?format= of x: json (default) or csv, and html when html is allowed;
 * false after answering 400. */
static bool format_of(tg_exchange *x, doc_job *j, bool html)
{
    tg_str f = tg_query_param(x, "format");
    j->format = TG_REPORT_JSON;
    if (!f.p || tg_str_eq(f, TG_STR("json"))) return true;
    if (tg_str_eq(f, TG_STR("csv"))) return j->format = TG_REPORT_CSV, true;
    if (html && tg_str_eq(f, TG_STR("html"))) return j->html = true, true;
    tg_exchange_error(x, 400, "invalid_request_error", "invalid_format", "format",
                      html ? "format must be json, csv or html" : "format must be json or csv");
    return false;
}

/* {"finalize": true|false} or an empty body; false after answering 400. */
static bool close_body(tg_exchange *x, doc_job *j)
{
    tg_str body = x->req->body;
    if (!body.n) return true;
    size_t off;
    const char *why;
    tg_json_val root = tg_json_root(body.p, body.n), v;
    if (tg_json_validate(body.p, body.n, TG_JSON_NO_DUP_TOPLEVEL, &off, &why) ||
        root.type != TG_JSON_OBJECT) {
        tg_exchange_error(x, 400, "invalid_request_error", "invalid_close", NULL,
                          "the body must be empty or a JSON object such as {\"finalize\": true}");
        return false;
    }
    tg_json_iter it = tg_json_iter_init(root);
    tg_json_val k;
    while (tg_json_iter_next(&it, &k, &v)) {
        tg_str name;
        if (!tg_json_str_view(k, &name) || !tg_str_eq(name, TG_STR("finalize"))) {
            tg_exchange_error(x, 400, "invalid_request_error", "invalid_close", NULL,
                              "unknown member; a close takes only finalize (true or false)");
            return false;
        }
        if (v.type != TG_JSON_TRUE && v.type != TG_JSON_FALSE) {
            tg_exchange_error(x, 400, "invalid_request_error", "invalid_close", "finalize",
                              "finalize must be true or false");
            return false;
        }
        j->finalize = v.type == TG_JSON_TRUE;
    }
    return true;
}

static doc_job *new_doc(tg_exchange *x, doc_kind kind)
{
    doc_job *j = tg_pool_new(x, sizeof *j);
    if (!j) return NULL;
    j->kind = kind;
    tg_buf_init(&j->out, 1u << 30);
    return j;
}

static void start(tg_exchange *x, doc_job *j, const char *what)
{
    tg_pool_start(x, &j->job, run_doc, doc_done, what);
}

/* rest: "{YYYY-MM}" or "{YYYY-MM}/close|invoices|statements|settlements" */
void tg_admin_periods(tg_exchange *x, tg_str rest)
{
    if (!tg_admin_auth(x) || !tg_admin_metering_on(x, "closing periods")) return;
    const char *slash = memchr(rest.p, '/', rest.n);
    tg_str period = slash ? tg_str_make(rest.p, (size_t)(slash - rest.p)) : rest;
    tg_str what = slash ? tg_str_make(slash + 1, rest.n - period.n - 1) : TG_STR_NULL;
    tg_period p;
    if (period.n != 7 || tg_period_named(1, period, &p)) {
        tg_exchange_error(x, 400, "invalid_request_error", "invalid_period", NULL,
                          "the period in the URL must be a month, YYYY-MM: /admin/v1/periods/2026-11");
        return;
    }
    tg_method m = x->req->method;
    doc_kind kind;
    const char *filter = NULL;
    if (tg_str_eq(what, TG_STR("close")) && m == TG_POST) kind = DOC_CLOSE;
    else if (!what.p && m == TG_GET) kind = DOC_READ;
    else if (tg_str_eq(what, TG_STR("invoices")) && m == TG_GET) kind = DOC_INVOICES, filter = "customer";
    else if (tg_str_eq(what, TG_STR("statements")) && m == TG_GET) kind = DOC_STATEMENTS, filter = "app";
    else if (tg_str_eq(what, TG_STR("settlements")) && m == TG_GET) kind = DOC_SETTLEMENTS, filter = "provider";
    else {
        tg_exchange_error(x, 404, "invalid_request_error", "unknown_url", NULL,
                          "Unknown admin URL: use POST /admin/v1/periods/{YYYY-MM}/close, or GET "
                          "/admin/v1/periods/{YYYY-MM}[/invoices|/statements|/settlements]");
        return;
    }
    doc_job *j = new_doc(x, kind);
    if (!j) return;
    memcpy(j->period, period.p, 7);
    /* after an answer (a 400) x is gone: nothing of it is read then */
    bool ok = kind == DOC_CLOSE ? close_body(x, j) : kind == DOC_READ || format_of(x, j, false);
    tg_str fv = ok && filter ? tg_query_param(x, filter) : TG_STR_NULL;
    if (ok && fv.n > TG_TAG_MAX) {
        tg_exchange_error(x, 400, "invalid_request_error", "invalid_filter", filter,
                          "a filter is at most 128 bytes");
        ok = false;
    }
    if (!ok) {
        tg_buf_release(&j->out);
        tg_pool_free(&j->job);
        return;
    }
    if (fv.n) memcpy(j->filter, fv.p, fv.n);
    if (kind == DOC_CLOSE) j->cfg = tg_config_ref(x->cfg);
    start(x, j, kind == DOC_CLOSE ? "the close" : "the documents");
}

/* rest: "{id}" */
void tg_admin_invoices(tg_exchange *x, tg_str rest)
{
    if (!tg_admin_auth(x) || !tg_admin_metering_on(x, "invoices")) return;
    tg_str id = rest.n ? tg_path_segment(x, rest) : TG_STR_NULL;
    if (!id.n || id.n > TG_INVOICE_ID_MAX || memchr(id.p, '/', id.n)) {
        tg_exchange_error(x, 404, "invalid_request_error", "invoice_not_found", NULL,
                          "Use GET /admin/v1/invoices/{id}, an id such as INV-2026-11-00001 "
                          "(GET /admin/v1/periods/{YYYY-MM}/invoices lists them).");
        return;
    }
    doc_job *j = new_doc(x, DOC_INVOICE);
    if (!j) return;
    if (!format_of(x, j, true)) {
        tg_buf_release(&j->out);
        tg_pool_free(&j->job);
        return;
    }
    memcpy(j->id, id.p, id.n);
    start(x, j, "the invoice");
}
