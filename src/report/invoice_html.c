/* An invoice as a standalone, printable HTML page (see invoice_html.h).
 *
 * Writing goes through a small sticky-error writer: the first failed
 * append is kept and every later one is skipped, so the page reads top to
 * bottom as markup rather than as error checks, and on failure the
 * buffer is cut back to where it was. Strings from data pass through
 * esc(); literals are trusted markup. Money is formatted by usd() from
 * integers; no float is involved. */
#include "report/invoice_html.h"

#include "base/money.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#define DAY_MS 86400000LL

typedef struct {
    tg_buf *b;
    int rc;
} wr;

static void lit_(wr *w, const char *s, size_t n)
{
    if (!w->rc) w->rc = tg_buf_append(w->b, s, n);
}
#define lit(w, s) lit_((w), (s), sizeof(s) - 1)

/* Appends s (at most max bytes: a struct's char array, NUL-terminated
 * within it when well-formed) HTML-escaped. */
static void esc_(wr *w, const char *s, size_t max)
{
    size_t n = strnlen(s, max), from = 0;
    for (size_t i = 0; i < n && !w->rc; i++) {
        const char *r;
        switch (s[i]) {
        case '&': r = "&amp;"; break;
        case '<': r = "&lt;"; break;
        case '>': r = "&gt;"; break;
        case '"': r = "&quot;"; break;
        case '\'': r = "&#39;"; break;
        default: continue;
        }
        lit_(w, s + from, i - from);
        lit_(w, r, strlen(r));
        from = i + 1;
    }
    lit_(w, s + from, n - from);
}
/* A char array field, escaped; the array's size bounds the read. */
#define esc(w, field) esc_((w), (field), sizeof(field))

/* v as a person reads dollars: "$1,234.56", "-$0.05", "$0.0375". At
 * least two decimals and as many more as v has, so the result is exact;
 * an amount in whole cents has exactly two. */
static void usd(wr *w, tg_nanos v)
{
    char g[TG_MONEY_GROUPED_STRLEN];
    size_t n = tg_money_fmt_grouped(g, v, 2), neg = g[0] == '-';
    if (neg) lit(w, "-");
    lit(w, "$");
    lit_(w, g + neg, n - neg);
}

/* An amount: whole cents by bill/close.h's invariant. */
static void amount(wr *w, tg_nanos v)
{
    assert(v % TG_NANOS_PER_CENT == 0);
    usd(w, v);
}

static void day(wr *w, int64_t ms)
{
    char t[TG_UTC_STRLEN];
    tg_utc_format(ms < 0 ? 0 : ms, t);
    lit_(w, t, 10); /* "YYYY-MM-DD" */
}

static void u64(wr *w, uint64_t v)
{
    if (!w->rc) w->rc = tg_buf_add_u64(w->b, v);
}

/* The style sheet. Screen: a sheet on a grey desk. Print: the sheet is
 * the paper; no size is set so A4 and Letter both fit, and colours of the
 * status marks are kept (print-color-adjust). */
static const char css[] =
    "*{box-sizing:border-box}"
    "html{-webkit-print-color-adjust:exact;print-color-adjust:exact}"
    "body{margin:0;background:#eef0f3;color:#1d2330;"
    "font:10.5pt/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif}"
    ".sheet{position:relative;max-width:210mm;margin:24px auto;padding:18mm 16mm;"
    "background:#fff;box-shadow:0 1px 4px rgba(0,0,0,.15)}"
    "header{display:flex;justify-content:space-between;align-items:flex-start;gap:24px;"
    "border-bottom:2px solid #1d2330;padding-bottom:10px;margin-bottom:18px}"
    "h1{font-size:20pt;margin:0 0 4px;letter-spacing:.01em}"
    "h2{font-size:9pt;text-transform:uppercase;letter-spacing:.08em;color:#5a6272;margin:0 0 4px}"
    ".status{display:inline-block;font-weight:600;font-size:9.5pt;padding:2px 8px;"
    "border-radius:3px;"
    "background:#e6f4ea;color:#1e6b34;border:1px solid #a8d5b5}"
    ".status.draft{background:#fdecea;color:#a4161a;border-color:#f1a9a0;letter-spacing:.08em}"
    "dl.meta{display:grid;grid-template-columns:auto auto;gap:2px 12px;margin:0;font-size:9.5pt}"
    "dl.meta dt{color:#5a6272;text-align:right}"
    "dl.meta dd{margin:0;font-variant-numeric:tabular-nums}"
    ".parties{display:flex;gap:48px;margin-bottom:18px}.parties p{margin:0}"
    "table{width:100%;border-collapse:collapse}"
    "table.lines th{font-size:8.5pt;text-transform:uppercase;letter-spacing:.06em;color:#5a6272;"
    "text-align:left;border-bottom:1px solid #1d2330;padding:6px 6px}"
    "table.lines td{padding:6px 6px;border-bottom:1px solid #dde1e7;vertical-align:top}"
    ".num{text-align:right!important;white-space:nowrap;font-variant-numeric:tabular-nums}"
    ".n{width:2.5em;color:#5a6272}"
    "tr.info td{color:#5a6272}"
    "td.empty{text-align:center;color:#5a6272;padding:14px}"
    "table.totals{width:auto;margin:14px 0 0 auto;min-width:45%}"
    "table.totals th{text-align:left;font-weight:400;padding:4px 6px;color:#5a6272}"
    "table.totals td{padding:4px 6px}"
    "table.totals tr.total th,table.totals tr.total td{font-weight:700;color:#1d2330;"
    "border-top:2px solid #1d2330;font-size:12pt;padding-top:8px}"
    ".nc{color:#5a6272;font-style:italic}"
    "footer{margin-top:28px;font-size:8.5pt;color:#5a6272;border-top:1px solid #dde1e7;"
    "padding-top:8px}"
    "footer p{margin:2px 0}"
    ".watermark{position:absolute;top:38%;left:0;right:0;text-align:center;font-size:96pt;"
    "font-weight:800;color:rgba(164,22,26,.08);transform:rotate(-28deg);pointer-events:none;"
    "user-select:none;z-index:0}"
    ".sheet>*:not(.watermark){position:relative;z-index:1}"
    "@page{margin:14mm 12mm}"
    "@media print{body{background:#fff;font-size:10pt}"
    ".sheet{max-width:none;margin:0;padding:0;box-shadow:none}"
    ".watermark{position:fixed;top:40%}"
    "thead{display:table-header-group}tr,table.totals{break-inside:avoid;page-break-inside:avoid}}"
    "@media (max-width:640px){.sheet{margin:0;padding:16px}header{flex-direction:column}}";

static void head(wr *w, const tg_invoice *inv, const tg_close_state *st)
{
    lit(w, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>");
    lit(w, "Invoice ");
    esc(w, inv->id);
    if (inv->customer[0]) {
        lit(w, " \xe2\x80\x93 "); /* en dash */
        esc(w, inv->customer);
    }
    if (!st->finalized) lit(w, " (DRAFT)");
    lit(w, "</title>\n<style>");
    lit_(w, css, sizeof css - 1);
    lit(w, "</style>\n</head>\n<body>\n<main class=\"sheet\">\n");
    if (!st->finalized) lit(w, "<div class=\"watermark\" aria-hidden=\"true\">DRAFT</div>\n");
}

static void masthead(wr *w, const tg_invoice *inv, const tg_close_state *st)
{
    lit(w, "<header>\n<div>\n<h1>Invoice ");
    esc(w, inv->id);
    lit(w, "</h1>\n");
    if (!st->finalized) {
        lit(w, "<p class=\"status draft\">DRAFT \xe2\x80\x93 not final, amounts may change</p>\n");
    } else {
        lit(w, "<p class=\"status\">Finalized");
        if (st->finalized_ms > 0) {
            lit(w, " ");
            day(w, st->finalized_ms);
        }
        lit(w, "</p>\n");
    }
    lit(w, "</div>\n<dl class=\"meta\">\n<dt>Period</dt><dd>");
    day(w, inv->start_ms);
    lit(w, " to ");
    /* end_ms is the next period's first midnight: the last day billed is
       the one before it */
    day(w, inv->end_ms - DAY_MS);
    lit(w, "</dd>\n");
    if (st->closed_ms > 0) {
        lit(w, "<dt>Closed</dt><dd>");
        day(w, st->closed_ms);
        lit(w, "</dd>\n");
    }
    lit(w, "<dt>Currency</dt><dd>USD</dd>\n</dl>\n</header>\n");
}

/* Who bills (the app, the builder's product) and who is billed. */
static void parties(wr *w, const tg_invoice *inv)
{
    lit(w, "<section class=\"parties\">\n<div>\n<h2>From</h2>\n<p><strong>");
    esc(w, inv->app);
    lit(w, "</strong></p>\n</div>\n<div>\n<h2>Bill to</h2>\n<p>Customer <strong>");
    esc(w, inv->customer);
    lit(w, "</strong></p>\n");
    if (inv->plan[0]) {
        lit(w, "<p>Plan ");
        esc(w, inv->plan);
        lit(w, "</p>\n");
    }
    lit(w, "</div>\n</section>\n");
}

static void line_row(wr *w, size_t i, const tg_invoice_line *l)
{
    /* included credits and grants are 0 USD by nature: shown, but muted */
    bool info = l->kind == TG_LINE_INCLUDED || l->kind == TG_LINE_GRANT;
    lit(w, "<tr class=\"");
    if (info) lit(w, "info ");
    lit(w, "k-");
    lit_(w, tg_line_kind_name(l->kind), strlen(tg_line_kind_name(l->kind)));
    lit(w, "\"><td class=\"n\">");
    u64(w, (uint64_t)i + 1);
    lit(w, "</td><td>");
    esc(w, l->desc);
    lit(w, "</td><td class=\"num\">");
    esc(w, l->qty);
    lit(w, "</td><td class=\"num\">");
    if (l->unit_price >= 0) usd(w, l->unit_price);
    lit(w, "</td><td class=\"num\">");
    amount(w, l->amount);
    lit(w, "</td></tr>\n");
}

static void lines(wr *w, const tg_invoice *inv)
{
    lit(w, "<table class=\"lines\">\n<thead><tr><th class=\"n\">#</th><th>Description</th>"
           "<th class=\"num\">Quantity</th><th class=\"num\">Unit price</th>"
           "<th class=\"num\">Amount</th></tr></thead>\n<tbody>\n");
    for (size_t i = 0; i < inv->nlines; i++) line_row(w, i, &inv->lines[i]);
    if (!inv->nlines)
        lit(w, "<tr><td class=\"empty\" colspan=\"5\">No charges in this period</td></tr>\n");
    lit(w, "</tbody>\n</table>\n");
}

static void totals(wr *w, const tg_invoice *inv)
{
    lit(w, "<table class=\"totals\">\n<tr><th>Subtotal</th><td class=\"num\">");
    amount(w, inv->subtotal);
    lit(w, "</td></tr>\n<tr><th>Tax</th>");
    if (inv->tax == 0) {
        lit(w, "<td class=\"num nc\">not computed</td>");
    } else {
        lit(w, "<td class=\"num\">");
        amount(w, inv->tax);
        lit(w, "</td>");
    }
    lit(w, "</tr>\n<tr class=\"total\"><th>Total (USD)</th><td class=\"num\">");
    amount(w, inv->total);
    lit(w, "</td></tr>\n</table>\n");
}

static void foot(wr *w, const tg_invoice *inv)
{
    lit(w, "<footer>\n<p>Amounts in US dollars. Each line is rounded once to the cent, "
           "half up; the subtotal is the sum of the lines.");
    if (inv->tax == 0) lit(w, " Taxes are not computed on this invoice.");
    lit(w, "</p>\n<p>Invoice ");
    esc(w, inv->id);
    lit(w, ", period ");
    esc(w, inv->period);
    lit(w, ".</p>\n</footer>\n</main>\n</body>\n</html>\n");
}

int tg_invoice_html(const tg_invoice *inv, const tg_close_state *st, tg_buf *out)
{
#ifndef NDEBUG
    __int128 sum = 0; /* 128 bits: a hand-made invoice may hold anything */
    for (size_t i = 0; i < inv->nlines; i++) sum += inv->lines[i].amount;
    assert(sum == inv->subtotal);
    assert((__int128)inv->total == (__int128)inv->subtotal + inv->tax);
#endif
    size_t start = out->n;
    wr w = {out, TG_OK};
    head(&w, inv, st);
    masthead(&w, inv, st);
    parties(&w, inv);
    lines(&w, inv);
    totals(&w, inv);
    foot(&w, inv);
    if (w.rc) {
        out->n = start;
        if (out->p) out->p[start] = '\0';
    }
    return w.rc;
}
