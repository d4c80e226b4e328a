/* A closed period's documents as tables, CSV and JSON. See docs.h. */
#include "report/docs.h"

#include "base/jsonw.h"
#include "base/money.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- cells ---- */

/* v (whole cents, in nanos) as "1,234.56" or "-0.05". */
static const char *cents(char out[TG_MONEY_GROUPED_STRLEN], tg_nanos v)
{
    tg_money_fmt_grouped(out, v, 2);
    return out;
}

static const char *nanos(char out[TG_MONEY_STRLEN], tg_nanos v)
{
    tg_money_fmt(out, v);
    return out;
}

static const char *status(const tg_close_state *st) { return st->finalized ? "finalized" : "draft"; }

/* ---- tables ---- */

typedef struct {
    char **cell;
    size_t ncol, n, cap;
    uint32_t right; /* bit i: column i is right-aligned */
} grid;

static int grid_row(grid *g, ...)
{
    if (g->n + g->ncol > g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64 * g->ncol;
        while (cap < g->n + g->ncol) cap *= 2;
        char **v = realloc(g->cell, cap * sizeof *v);
        if (!v) return TG_ENOMEM;
        g->cell = v;
        g->cap = cap;
    }
    va_list ap;
    va_start(ap, g);
    int rc = TG_OK;
    for (size_t i = 0; i < g->ncol; i++) {
        const char *s = va_arg(ap, const char *);
        char *c = rc ? NULL : strdup(s ? s : "");
        if (!c) rc = TG_ENOMEM;
        g->cell[g->n + i] = c;
    }
    va_end(ap);
    g->n += g->ncol;
    return rc;
}

static void grid_free(grid *g)
{
    for (size_t i = 0; i < g->n; i++) free(g->cell[i]);
    free(g->cell);
}

static int grid_render(const grid *g, tg_buf *b)
{
    size_t w[16] = {0};
    for (size_t i = 0; i < g->n; i++) {
        size_t l = strlen(g->cell[i]);
        if (l > w[i % g->ncol]) w[i % g->ncol] = l;
    }
    int rc = TG_OK;
    for (size_t r = 0; !rc && r < g->n; r += g->ncol) {
        for (size_t c = 0; !rc && c < g->ncol; c++) {
            const char *s = g->cell[r + c];
            size_t l = strlen(s), padn = w[c] - l;
            bool right = g->right >> c & 1, last = c + 1 == g->ncol;
            if (c) rc = tg_buf_add_lit(b, "  ");
            for (size_t k = 0; !rc && right && k < padn; k++) rc = tg_buf_add_char(b, ' ');
            if (!rc) rc = tg_buf_append(b, s, l);
            for (size_t k = 0; !rc && !right && !last && k < padn; k++) rc = tg_buf_add_char(b, ' ');
        }
        if (!rc) rc = tg_buf_add_char(b, '\n');
    }
    return rc;
}

/* ---- CSV ---- */

static int csv_row(tg_buf *b, size_t n, ...)
{
    va_list ap;
    va_start(ap, n);
    int rc = TG_OK;
    for (size_t i = 0; !rc && i < n; i++) {
        if (i) rc = tg_buf_add_char(b, ',');
        if (!rc) rc = tg_report_csv_field(b, va_arg(ap, const char *));
    }
    va_end(ap);
    return rc ? rc : tg_buf_add_char(b, '\n');
}

/* ---- JSON ---- */

static int jstr(tg_buf *b, const char *name, const char *v)
{
    int rc = tg_buf_printf(b, "\"%s\":", name);
    return rc ? rc : tg_jsonw_str(b, tg_str_c(v));
}

static int jmoney(tg_buf *b, const char *name, tg_nanos v)
{
    char s[TG_MONEY_STRLEN];
    return tg_buf_printf(b, ",\"%s\":\"%s\"", name, nanos(s, v));
}

static int jtime(tg_buf *b, const char *name, int64_t ms)
{
    char t[TG_UTC_STRLEN];
    if (!ms) return tg_buf_printf(b, ",\"%s\":null", name);
    tg_utc_format(ms, t);
    return tg_buf_printf(b, ",\"%s\":\"%s\"", name, t);
}

static int json_line(tg_buf *b, const tg_invoice_line *l, size_t n)
{
    int rc = tg_buf_printf(b, "{\"n\":%zu,", n);
    if (!rc) rc = jstr(b, "kind", tg_line_kind_name(l->kind));
    if (!rc) rc = tg_buf_add_char(b, ',');
    if (!rc) rc = jstr(b, "ref", l->ref);
    if (!rc) rc = tg_buf_add_char(b, ',');
    if (!rc) rc = jstr(b, "description", l->desc);
    if (!rc) rc = tg_buf_add_char(b, ',');
    if (!rc) rc = jstr(b, "quantity", l->qty);
    if (!rc && l->unit_price < 0) rc = tg_buf_add_lit(b, ",\"unit_price\":null");
    if (!rc && l->unit_price >= 0) rc = jmoney(b, "unit_price", l->unit_price);
    if (!rc) rc = jmoney(b, "exact", l->exact);
    if (!rc) rc = jmoney(b, "amount", l->amount);
    if (!rc) rc = jmoney(b, "credits", l->credits);
    if (!rc) rc = tg_buf_printf(b, ",\"records\":%lld}", (long long)l->records);
    return rc;
}

static int json_invoice(tg_buf *b, const tg_close_state *st, const tg_invoice *inv)
{
    int rc = tg_buf_add_char(b, '{');
    if (!rc) rc = jstr(b, "id", inv->id);
    if (!rc) rc = tg_buf_printf(b, ",\"period\":\"%s\",\"status\":\"%s\",", inv->period, status(st));
    if (!rc) rc = jstr(b, "app", inv->app);
    if (!rc) rc = tg_buf_add_char(b, ',');
    if (!rc) rc = jstr(b, "customer", inv->customer);
    if (!rc) rc = tg_buf_add_lit(b, ",\"plan\":");
    if (!rc) rc = inv->plan[0] ? tg_jsonw_str(b, tg_str_c(inv->plan)) : tg_buf_add_lit(b, "null");
    if (!rc) rc = jtime(b, "start", inv->start_ms);
    if (!rc) rc = jtime(b, "end", inv->end_ms);
    if (!rc) rc = tg_buf_add_lit(b, ",\"lines\":[");
    for (size_t i = 0; !rc && i < inv->nlines; i++) {
        if (i) rc = tg_buf_add_char(b, ',');
        if (!rc) rc = json_line(b, &inv->lines[i], i + 1);
    }
    if (!rc) rc = tg_buf_add_char(b, ']');
    if (!rc) rc = jmoney(b, "exact", inv->exact);
    if (!rc) rc = jmoney(b, "subtotal", inv->subtotal);
    if (!rc) rc = jmoney(b, "tax", inv->tax);
    if (!rc) rc = jmoney(b, "total", inv->total);
    if (!rc) rc = tg_buf_printf(b, ",\"usage\":{\"records\":%lld", (long long)inv->records);
    if (!rc) rc = jmoney(b, "charge", inv->charge);
    if (!rc) rc = jmoney(b, "cost", inv->cost);
    if (!rc) rc = jmoney(b, "fee", inv->fee);
    if (!rc) rc = jmoney(b, "credits", inv->credits);
    if (!rc) rc = jmoney(b, "allowance", inv->allowance);
    return rc ? rc : tg_buf_add_lit(b, "}}");
}

static int json_stmt_row(tg_buf *b, const tg_stmt_row *r)
{
    int rc = tg_buf_add_char(b, '{');
    if (!rc) rc = jstr(b, "customer", r->customer);
    if (!rc) rc = tg_buf_add_lit(b, ",\"invoice\":");
    if (!rc) rc = r->invoice[0] ? tg_jsonw_str(b, tg_str_c(r->invoice)) : tg_buf_add_lit(b, "null");
    if (!rc) rc = tg_buf_printf(b, ",\"records\":%lld", (long long)r->records);
    if (!rc) rc = jmoney(b, "billed", r->billed);
    if (!rc) rc = jmoney(b, "cost", r->cost);
    if (!rc) rc = jmoney(b, "fee", r->fee);
    if (!rc) rc = jmoney(b, "earnings", r->earnings);
    if (!rc) rc = jmoney(b, "billed_exact", r->billed_exact);
    if (!rc) rc = jmoney(b, "cost_exact", r->cost_exact);
    if (!rc) rc = jmoney(b, "fee_exact", r->fee_exact);
    if (!rc) rc = jmoney(b, "earnings_exact", r->earnings_exact);
    if (!rc) rc = jmoney(b, "charge", r->charge);
    if (!rc) rc = jmoney(b, "margin", r->margin);
    return rc ? rc : tg_buf_add_char(b, '}');
}

static int json_settle_row(tg_buf *b, const tg_settle_row *r)
{
    int rc = tg_buf_add_char(b, '{');
    if (!rc) rc = jstr(b, "offering", r->offering);
    if (!rc)
        rc = tg_buf_printf(b,
                           ",\"records\":%lld,\"tokens\":{\"prompt\":%lld,\"cached\":%lld,"
                           "\"cache_write\":%lld,\"completion\":%lld,\"reasoning\":%lld}",
                           (long long)r->records, (long long)r->tokens.prompt,
                           (long long)r->tokens.cached, (long long)r->tokens.cache_write,
                           (long long)r->tokens.completion, (long long)r->tokens.reasoning);
    if (!rc) rc = jmoney(b, "cost", r->cost);
    if (!rc) rc = jmoney(b, "cost_exact", r->cost_exact);
    return rc ? rc : tg_buf_add_char(b, '}');
}

/* ---- groups: an app's statement rows, a provider's settlement rows ---- */

typedef struct {
    tg_nanos billed, cost, fee, earnings, billed_exact, cost_exact, fee_exact, earnings_exact;
    int64_t records, customers;
} stmt_total;

static size_t stmt_group(const tg_close_docs *d, size_t i, stmt_total *t)
{
    memset(t, 0, sizeof *t);
    size_t j = i;
    for (; j < d->nstmt && !strcmp(d->stmt[j].app, d->stmt[i].app); j++) {
        const tg_stmt_row *r = &d->stmt[j];
        t->billed += r->billed;
        t->cost += r->cost;
        t->fee += r->fee;
        t->earnings += r->earnings;
        t->billed_exact += r->billed_exact;
        t->cost_exact += r->cost_exact;
        t->fee_exact += r->fee_exact;
        t->earnings_exact += r->earnings_exact;
        t->records += r->records;
        t->customers += r->customer[0] != '\0';
    }
    return j;
}

static size_t settle_group(const tg_close_docs *d, size_t i, tg_settle_row *t)
{
    memset(t, 0, sizeof *t);
    size_t j = i;
    for (; j < d->nsettle && !strcmp(d->settle[j].provider, d->settle[i].provider); j++) {
        const tg_settle_row *r = &d->settle[j];
        t->records += r->records;
        t->tokens.prompt += r->tokens.prompt;
        t->tokens.cached += r->tokens.cached;
        t->tokens.cache_write += r->tokens.cache_write;
        t->tokens.completion += r->tokens.completion;
        t->tokens.reasoning += r->tokens.reasoning;
        t->cost += r->cost;
        t->cost_exact += r->cost_exact;
    }
    return j;
}

static bool match(const char *want, const char *have) { return !want || !want[0] || !strcmp(want, have); }

static int json_statements(tg_buf *b, const tg_close_docs *d, const char *app)
{
    int rc = tg_buf_add_char(b, '[');
    bool first = true;
    for (size_t i = 0; !rc && i < d->nstmt;) {
        stmt_total t;
        size_t j = stmt_group(d, i, &t);
        if (match(app, d->stmt[i].app)) {
            if (!first) rc = tg_buf_add_char(b, ',');
            first = false;
            if (!rc) rc = tg_buf_add_char(b, '{');
            if (!rc) rc = jstr(b, "app", d->stmt[i].app);
            if (!rc) rc = tg_buf_printf(b, ",\"period\":\"%s\",\"customers\":%lld,\"records\":%lld",
                                        d->st.period, (long long)t.customers, (long long)t.records);
            if (!rc) rc = jmoney(b, "billed", t.billed);
            if (!rc) rc = jmoney(b, "cost", t.cost);
            if (!rc) rc = jmoney(b, "fee", t.fee);
            if (!rc) rc = jmoney(b, "earnings", t.earnings);
            if (!rc) rc = jmoney(b, "billed_exact", t.billed_exact);
            if (!rc) rc = jmoney(b, "cost_exact", t.cost_exact);
            if (!rc) rc = jmoney(b, "fee_exact", t.fee_exact);
            if (!rc) rc = jmoney(b, "earnings_exact", t.earnings_exact);
            if (!rc) rc = tg_buf_add_lit(b, ",\"rows\":[");
            for (size_t k = i; !rc && k < j; k++) {
                if (k > i) rc = tg_buf_add_char(b, ',');
                if (!rc) rc = json_stmt_row(b, &d->stmt[k]);
            }
            if (!rc) rc = tg_buf_add_lit(b, "]}");
        }
        i = j;
    }
    return rc ? rc : tg_buf_add_char(b, ']');
}

static int json_settlements(tg_buf *b, const tg_close_docs *d, const char *provider)
{
    int rc = tg_buf_add_char(b, '[');
    bool first = true;
    for (size_t i = 0; !rc && i < d->nsettle;) {
        tg_settle_row t;
        size_t j = settle_group(d, i, &t);
        if (match(provider, d->settle[i].provider)) {
            if (!first) rc = tg_buf_add_char(b, ',');
            first = false;
            if (!rc) rc = tg_buf_add_char(b, '{');
            if (!rc) rc = jstr(b, "provider", d->settle[i].provider);
            if (!rc)
                rc = tg_buf_printf(b,
                                   ",\"period\":\"%s\",\"records\":%lld,\"tokens\":{\"prompt\":%lld,"
                                   "\"cached\":%lld,\"cache_write\":%lld,\"completion\":%lld,"
                                   "\"reasoning\":%lld}",
                                   d->st.period, (long long)t.records, (long long)t.tokens.prompt,
                                   (long long)t.tokens.cached, (long long)t.tokens.cache_write,
                                   (long long)t.tokens.completion, (long long)t.tokens.reasoning);
            if (!rc) rc = jmoney(b, "cost", t.cost);
            if (!rc) rc = jmoney(b, "cost_exact", t.cost_exact);
            if (!rc) rc = tg_buf_add_lit(b, ",\"offerings\":[");
            for (size_t k = i; !rc && k < j; k++) {
                if (k > i) rc = tg_buf_add_char(b, ',');
                if (!rc) rc = json_settle_row(b, &d->settle[k]);
            }
            if (!rc) rc = tg_buf_add_lit(b, "]}");
        }
        i = j;
    }
    return rc ? rc : tg_buf_add_char(b, ']');
}

static int json_invoices(tg_buf *b, const tg_close_docs *d, const char *customer)
{
    int rc = tg_buf_add_char(b, '[');
    bool first = true;
    for (size_t i = 0; !rc && i < d->ninv; i++) {
        if (!match(customer, d->inv[i].customer)) continue;
        if (!first) rc = tg_buf_add_char(b, ',');
        first = false;
        if (!rc) rc = json_invoice(b, &d->st, &d->inv[i]);
    }
    return rc ? rc : tg_buf_add_char(b, ']');
}

static int json_close_head(tg_buf *b, const tg_close_docs *d, bool unchanged)
{
    int rc = tg_buf_printf(b, "{\"period\":\"%s\",\"status\":\"%s\",\"unchanged\":%s", d->st.period,
                           status(&d->st), unchanged ? "true" : "false");
    if (!rc) rc = jtime(b, "closed", d->st.closed_ms);
    if (!rc) rc = jtime(b, "finalized", d->st.finalized_ms);
    if (!rc && d->replaced[0]) rc = tg_buf_printf(b, ",\"replaced_draft\":\"%s\"", d->replaced);
    if (!rc && !d->replaced[0]) rc = tg_buf_add_lit(b, ",\"replaced_draft\":null");
    return rc;
}

/* ---- the commands' renderings ---- */

static tg_nanos invoices_total(const tg_close_docs *d, const char *customer, size_t *n)
{
    tg_nanos t = 0;
    *n = 0;
    for (size_t i = 0; i < d->ninv; i++)
        if (match(customer, d->inv[i].customer)) t += d->inv[i].total, ++*n;
    return t;
}

int tg_docs_close(const tg_close_docs *d, bool unchanged, tg_report_format f, tg_buf *out)
{
    if (f == TG_REPORT_JSON) {
        int rc = json_close_head(out, d, unchanged);
        if (!rc) rc = tg_buf_add_lit(out, ",\"invoices\":");
        if (!rc) rc = json_invoices(out, d, NULL);
        if (!rc) rc = tg_buf_add_lit(out, ",\"statements\":");
        if (!rc) rc = json_statements(out, d, NULL);
        if (!rc) rc = tg_buf_add_lit(out, ",\"settlements\":");
        if (!rc) rc = json_settlements(out, d, NULL);
        return rc ? rc : tg_buf_add_lit(out, "}\n");
    }
    char a[TG_MONEY_GROUPED_STRLEN], b2[TG_MONEY_GROUPED_STRLEN], c[TG_MONEY_GROUPED_STRLEN], e[TG_MONEY_GROUPED_STRLEN], n1[24], n2[24];
    int rc = TG_OK;
    if (f == TG_REPORT_CSV) {
        rc = csv_row(out, 8, "document", "name", "records", "billed", "cost", "fee", "earnings", "status");
        for (size_t i = 0; !rc && i < d->nstmt;) {
            stmt_total t;
            size_t j = stmt_group(d, i, &t);
            char s[4][TG_MONEY_STRLEN];
            snprintf(n1, sizeof n1, "%lld", (long long)t.records);
            rc = csv_row(out, 8, "statement", d->stmt[i].app, n1, nanos(s[0], t.billed),
                         nanos(s[1], t.cost), nanos(s[2], t.fee), nanos(s[3], t.earnings),
                         status(&d->st));
            i = j;
        }
        for (size_t i = 0; !rc && i < d->nsettle;) {
            tg_settle_row t;
            size_t j = settle_group(d, i, &t);
            char s[TG_MONEY_STRLEN];
            snprintf(n1, sizeof n1, "%lld", (long long)t.records);
            rc = csv_row(out, 8, "settlement", d->settle[i].provider, n1, "", nanos(s, t.cost), "", "",
                         status(&d->st));
            i = j;
        }
        return rc;
    }
    size_t ninv;
    tg_nanos total = invoices_total(d, NULL, &ninv);
    rc = tg_buf_printf(out, "period %s: %s%s; %zu invoices, total %s USD\n", d->st.period,
                       status(&d->st), unchanged ? " (already; nothing changed)" : "", ninv,
                       cents(a, total));
    if (!rc && d->replaced[0])
        rc = tg_buf_printf(out, "(the draft of %s was replaced: there is one draft at a time)\n",
                           d->replaced);
    if (!rc) rc = tg_buf_add_char(out, '\n');
    grid g = {.ncol = 7, .right = 0x7c};
    if (!rc) rc = grid_row(&g, "statement (app)", "customers", "records", "billed USD", "cost USD",
                           "fee USD", "earnings USD");
    for (size_t i = 0; !rc && i < d->nstmt;) {
        stmt_total t;
        size_t j = stmt_group(d, i, &t);
        snprintf(n1, sizeof n1, "%lld", (long long)t.customers);
        snprintf(n2, sizeof n2, "%lld", (long long)t.records);
        rc = grid_row(&g, d->stmt[i].app[0] ? d->stmt[i].app : "(no app)", n1, n2,
                      cents(a, t.billed), cents(b2, t.cost), cents(c, t.fee), cents(e, t.earnings));
        i = j;
    }
    if (!rc) rc = grid_render(&g, out);
    grid_free(&g);
    if (!rc) rc = tg_buf_add_char(out, '\n');
    grid s = {.ncol = 3, .right = 0x6};
    if (!rc) rc = grid_row(&s, "settlement (provider)", "records", "cost USD");
    for (size_t i = 0; !rc && i < d->nsettle;) {
        tg_settle_row t;
        size_t j = settle_group(d, i, &t);
        snprintf(n1, sizeof n1, "%lld", (long long)t.records);
        rc = grid_row(&s, d->settle[i].provider[0] ? d->settle[i].provider : "(none)", n1, cents(a, t.cost));
        i = j;
    }
    if (!rc) rc = grid_render(&s, out);
    grid_free(&s);
    return rc;
}

static int csv_lines_head(tg_buf *b)
{
    return csv_row(b, 14, "invoice", "period", "status", "app", "customer", "n", "kind", "ref",
                   "description", "quantity", "unit_price", "exact", "amount", "credits");
}

static int csv_lines(tg_buf *b, const tg_close_docs *d, const tg_invoice *inv)
{
    int rc = TG_OK;
    for (size_t i = 0; !rc && i < inv->nlines; i++) {
        const tg_invoice_line *l = &inv->lines[i];
        char n[24], s[4][TG_MONEY_STRLEN];
        snprintf(n, sizeof n, "%zu", i + 1);
        rc = csv_row(b, 14, inv->id, inv->period, status(&d->st), inv->app, inv->customer, n,
                     tg_line_kind_name(l->kind), l->ref, l->desc, l->qty,
                     l->unit_price >= 0 ? nanos(s[0], l->unit_price) : "", nanos(s[1], l->exact),
                     nanos(s[2], l->amount), nanos(s[3], l->credits));
    }
    return rc;
}

int tg_docs_invoices(const tg_close_docs *d, const char *customer, tg_report_format f, tg_buf *out)
{
    int rc = TG_OK;
    if (f == TG_REPORT_JSON) {
        rc = json_invoices(out, d, customer);
        return rc ? rc : tg_buf_add_char(out, '\n');
    }
    if (f == TG_REPORT_CSV) {
        rc = csv_lines_head(out);
        for (size_t i = 0; !rc && i < d->ninv; i++)
            if (match(customer, d->inv[i].customer)) rc = csv_lines(out, d, &d->inv[i]);
        return rc;
    }
    grid g = {.ncol = 6, .right = 0x20};
    rc = grid_row(&g, "invoice", "app", "customer", "plan", "status", "total USD");
    for (size_t i = 0; !rc && i < d->ninv; i++) {
        const tg_invoice *inv = &d->inv[i];
        char t[TG_MONEY_GROUPED_STRLEN];
        if (!match(customer, inv->customer)) continue;
        rc = grid_row(&g, inv->id, inv->app, inv->customer, inv->plan[0] ? inv->plan : "-",
                      status(&d->st), cents(t, inv->total));
    }
    if (!rc) rc = grid_render(&g, out);
    grid_free(&g);
    size_t n;
    char t[TG_MONEY_GROUPED_STRLEN];
    tg_nanos total = invoices_total(d, customer, &n);
    if (!rc) rc = tg_buf_printf(out, "%zu invoices, total %s USD\n", n, cents(t, total));
    return rc;
}

int tg_docs_invoice(const tg_close_docs *d, const tg_invoice *inv, tg_report_format f, tg_buf *out)
{
    int rc;
    if (f == TG_REPORT_JSON) {
        rc = json_invoice(out, &d->st, inv);
        return rc ? rc : tg_buf_add_char(out, '\n');
    }
    if (f == TG_REPORT_CSV) {
        rc = csv_lines_head(out);
        return rc ? rc : csv_lines(out, d, inv);
    }
    char from[TG_UTC_STRLEN], to[TG_UTC_STRLEN];
    tg_utc_format(inv->start_ms, from);
    tg_utc_format(inv->end_ms - 86400000, to); /* its last day */
    rc = tg_buf_printf(out, "invoice %s (%s): customer %s of app %s, plan %s\nperiod %s, %.10s to %.10s\n\n",
                       inv->id, status(&d->st), inv->customer, inv->app,
                       inv->plan[0] ? inv->plan : "none", inv->period, from, to);
    grid g = {.ncol = 5, .right = 0x1c};
    if (!rc) rc = grid_row(&g, "description", "quantity", "unit price", "exact USD", "amount USD");
    for (size_t i = 0; !rc && i < inv->nlines; i++) {
        const tg_invoice_line *l = &inv->lines[i];
        char p[TG_MONEY_STRLEN], e[TG_MONEY_STRLEN], a[TG_MONEY_GROUPED_STRLEN];
        rc = grid_row(&g, l->desc, l->qty, l->unit_price >= 0 ? nanos(p, l->unit_price) : "",
                      nanos(e, l->exact), cents(a, l->amount));
    }
    char s[TG_MONEY_GROUPED_STRLEN], t[TG_MONEY_GROUPED_STRLEN], x[TG_MONEY_STRLEN];
    if (!rc) rc = grid_row(&g, "subtotal", "", "", nanos(x, inv->exact), cents(s, inv->subtotal));
    if (!rc) rc = grid_row(&g, "tax (not computed)", "", "", "", cents(t, inv->tax));
    if (!rc) rc = grid_row(&g, "total", "", "", "", cents(t, inv->total));
    if (!rc) rc = grid_render(&g, out);
    grid_free(&g);
    return rc;
}

int tg_docs_statements(const tg_close_docs *d, const char *app, tg_report_format f, tg_buf *out)
{
    int rc = TG_OK;
    if (f == TG_REPORT_JSON) {
        rc = json_statements(out, d, app);
        return rc ? rc : tg_buf_add_char(out, '\n');
    }
    if (f == TG_REPORT_CSV) {
        rc = csv_row(out, 16, "period", "status", "app", "customer", "invoice", "records", "billed",
                     "cost", "fee", "earnings", "billed_exact", "cost_exact", "fee_exact",
                     "earnings_exact", "charge", "margin");
        for (size_t i = 0; !rc && i < d->nstmt; i++) {
            const tg_stmt_row *r = &d->stmt[i];
            char n[24], s[10][TG_MONEY_STRLEN];
            if (!match(app, r->app)) continue;
            snprintf(n, sizeof n, "%lld", (long long)r->records);
            rc = csv_row(out, 16, d->st.period, status(&d->st), r->app, r->customer, r->invoice, n,
                         nanos(s[0], r->billed), nanos(s[1], r->cost), nanos(s[2], r->fee),
                         nanos(s[3], r->earnings), nanos(s[4], r->billed_exact),
                         nanos(s[5], r->cost_exact), nanos(s[6], r->fee_exact),
                         nanos(s[7], r->earnings_exact), nanos(s[8], r->charge), nanos(s[9], r->margin));
        }
        return rc;
    }
    for (size_t i = 0; !rc && i < d->nstmt;) {
        stmt_total t;
        size_t j = stmt_group(d, i, &t);
        if (!match(app, d->stmt[i].app)) {
            i = j;
            continue;
        }
        char a[TG_MONEY_GROUPED_STRLEN], b2[TG_MONEY_GROUPED_STRLEN], c[TG_MONEY_GROUPED_STRLEN], e[TG_MONEY_GROUPED_STRLEN], n[24];
        rc = tg_buf_printf(out, "%sstatement of app %s, period %s (%s): billed %s, cost %s, fee %s, "
                           "earnings %s USD\n\n", i ? "\n" : "",
                           d->stmt[i].app[0] ? d->stmt[i].app : "(no app)", d->st.period,
                           status(&d->st), cents(a, t.billed), cents(b2, t.cost), cents(c, t.fee),
                           cents(e, t.earnings));
        grid g = {.ncol = 7, .right = 0x7c};
        if (!rc) rc = grid_row(&g, "customer", "invoice", "records", "billed USD", "cost USD", "fee USD",
                               "earnings USD");
        for (size_t k = i; !rc && k < j; k++) {
            const tg_stmt_row *r = &d->stmt[k];
            snprintf(n, sizeof n, "%lld", (long long)r->records);
            rc = grid_row(&g, r->customer[0] ? r->customer : "(unbilled)", r->invoice[0] ? r->invoice : "-",
                          n, cents(a, r->billed), cents(b2, r->cost), cents(c, r->fee),
                          cents(e, r->earnings));
        }
        if (!rc) rc = grid_render(&g, out);
        grid_free(&g);
        i = j;
    }
    return rc;
}

int tg_docs_settlements(const tg_close_docs *d, const char *provider, tg_report_format f,
                        tg_buf *out)
{
    int rc = TG_OK;
    if (f == TG_REPORT_JSON) {
        rc = json_settlements(out, d, provider);
        return rc ? rc : tg_buf_add_char(out, '\n');
    }
    char v[8][24];
    if (f == TG_REPORT_CSV) {
        rc = csv_row(out, 12, "period", "status", "provider", "offering", "records", "prompt", "cached",
                     "cache_write", "completion", "reasoning", "cost", "cost_exact");
        for (size_t i = 0; !rc && i < d->nsettle; i++) {
            const tg_settle_row *r = &d->settle[i];
            char s[2][TG_MONEY_STRLEN];
            if (!match(provider, r->provider)) continue;
            int64_t n[] = {r->records, r->tokens.prompt, r->tokens.cached, r->tokens.cache_write,
                           r->tokens.completion, r->tokens.reasoning};
            for (int k = 0; k < 6; k++) snprintf(v[k], sizeof v[k], "%lld", (long long)n[k]);
            rc = csv_row(out, 12, d->st.period, status(&d->st), r->provider, r->offering, v[0], v[1],
                         v[2], v[3], v[4], v[5], nanos(s[0], r->cost), nanos(s[1], r->cost_exact));
        }
        return rc;
    }
    for (size_t i = 0; !rc && i < d->nsettle;) {
        tg_settle_row t;
        size_t j = settle_group(d, i, &t);
        if (!match(provider, d->settle[i].provider)) {
            i = j;
            continue;
        }
        char a[TG_MONEY_GROUPED_STRLEN];
        rc = tg_buf_printf(out, "%ssettlement of provider %s, period %s (%s): cost %s USD\n\n",
                           i ? "\n" : "", d->settle[i].provider[0] ? d->settle[i].provider : "(none)",
                           d->st.period, status(&d->st), cents(a, t.cost));
        grid g = {.ncol = 9, .right = 0x1fe};
        if (!rc) rc = grid_row(&g, "offering", "records", "input", "cached", "cache write", "output",
                               "reasoning", "cost exact USD", "cost USD");
        for (size_t k = i; !rc && k < j; k++) {
            const tg_settle_row *r = &d->settle[k];
            const tg_tokens *tk = &r->tokens;
            int64_t n[] = {r->records, tk->prompt - tk->cached - tk->cache_write, tk->cached,
                           tk->cache_write, tk->completion - tk->reasoning, tk->reasoning};
            char x[TG_MONEY_STRLEN];
            for (int m = 0; m < 6; m++) snprintf(v[m], sizeof v[m], "%lld", (long long)n[m]);
            rc = grid_row(&g, r->offering[0] ? r->offering : "(none)", v[0], v[1], v[2], v[3], v[4],
                          v[5], nanos(x, r->cost_exact), cents(a, r->cost));
        }
        if (!rc) rc = grid_render(&g, out);
        grid_free(&g);
        i = j;
    }
    return rc;
}

const tg_invoice *tg_docs_find(const tg_close_docs *d, const char *id)
{
    for (size_t i = 0; i < d->ninv; i++)
        if (!strcmp(d->inv[i].id, id)) return &d->inv[i];
    return NULL;
}
