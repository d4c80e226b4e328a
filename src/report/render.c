/* Rendering a report as a table (people), CSV or JSON (programs). See
 * report.h for the shapes and docs/reports.md for examples.
 *
 * Every number is formatted from integers: money exactly with 9 decimals
 * (CSV, JSON) or rounded half away from zero to 6 (the table), margin %
 * as a 128-bit quotient, savings as asked_cost - cost (tg_report_exec
 * checked that it fits in every line). Tag values are client-supplied bytes, so CSV
 * quotes per RFC 4180 and JSON escapes through tg_jsonw_str. */
#include "report/report.h"

#include "base/jsonw.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef enum { C_COUNT, C_MONEY, C_PCT, C_SAVINGS } col_type;

typedef struct {
    const char *name;  /* CSV and JSON */
    const char *title; /* table; NULL: not in the table (it stays narrow enough to read) */
    col_type type;
    size_t off; /* into tg_measures; unused for C_PCT and C_SAVINGS */
} column;

#define M_(f) offsetof(tg_measures, f)
static const column cols[] = {
    {"requests", "requests", C_COUNT, M_(requests)},
    {"errors", "errors", C_COUNT, M_(errors)},
    {"interrupted", NULL, C_COUNT, M_(interrupted)},
    {"estimated", NULL, C_COUNT, M_(estimated)},
    {"prompt_tokens", "prompt", C_COUNT, M_(tokens.prompt)},
    {"cached_tokens", "cached", C_COUNT, M_(tokens.cached)},
    {"cache_write_tokens", "cache_wr", C_COUNT, M_(tokens.cache_write)},
    {"completion_tokens", "completion", C_COUNT, M_(tokens.completion)},
    {"reasoning_tokens", "reasoning", C_COUNT, M_(tokens.reasoning)},
    {"cost", "cost", C_MONEY, M_(cost)},
    {"charge", "charge", C_MONEY, M_(charge)},
    {"margin", "margin", C_MONEY, M_(margin)},
    {"fee", "fee", C_MONEY, M_(fee)},
    {"margin_pct", "margin %", C_PCT, 0},
    /* routing (issue 5), after the older columns so that CSV readers that
     * count columns still find those where they were */
    {"attempts", "attempts", C_COUNT, M_(attempts)},
    {"asked_cost", "asked", C_MONEY, M_(asked_cost)},
    {"savings", "savings", C_SAVINGS, 0},
};
#define NCOLS (sizeof cols / sizeof *cols)

#define CELL 48 /* room for any number cell */

static int64_t field(const tg_measures *m, const column *c)
{
    if (c->type == C_SAVINGS) return tg_report_savings(m);
    return *(const int64_t *)(const void *)((const char *)m + c->off);
}

/* ---- numbers ---- */

/* |v| as unsigned, INT64_MIN included. */
static uint64_t mag(int64_t v) { return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v; }

/* v nanos as USD with `places` decimals (9: exact; fewer: rounded half
 * away from zero). */
static size_t fmt_usd(char out[CELL], tg_nanos v, int places)
{
    uint64_t a = mag(v), unit = 1;
    for (int i = places; i < 9; i++) unit *= 10;
    a = a / unit + (a % unit >= (unit + 1) / 2 && unit > 1);
    uint64_t scale = 1;
    for (int i = 0; i < places; i++) scale *= 10;
    int n = snprintf(out, CELL, "%s%llu.%0*llu", v < 0 && a ? "-" : "",
                     (unsigned long long)(a / scale), places, (unsigned long long)(a % scale));
    return (size_t)n;
}

size_t tg_report_margin_pct(tg_nanos margin, tg_nanos charge, char out[TG_PCT_STRLEN])
{
    if (!charge) return (size_t)snprintf(out, TG_PCT_STRLEN, "-");
    /* hundredths of a percent: margin * 10,000 / charge, rounded half away
     * from zero */
    __int128 num = (__int128)margin * 10000, den = charge;
    bool neg = (num < 0) != (den < 0);
    if (num < 0) num = -num;
    if (den < 0) den = -den;
    __int128 q = num / den, rem = num % den;
    if (2 * rem >= den) q++;
    unsigned long long whole = (unsigned long long)(q / 100), frac = (unsigned long long)(q % 100);
    return (size_t)snprintf(out, TG_PCT_STRLEN, "%s%llu.%02llu", neg && q ? "-" : "", whole, frac);
}

/* Column c of m as text for people (places 6) or programs (9). */
static const char *cell(const tg_measures *m, const column *c, int places, char out[CELL + 8])
{
    if (c->type == C_PCT) tg_report_margin_pct(m->margin, m->charge, out);
    else if (c->type == C_MONEY || c->type == C_SAVINGS) fmt_usd(out, field(m, c), places);
    else snprintf(out, CELL, "%lld", (long long)field(m, c));
    return out;
}

/* ---- table ---- */

typedef struct {
    const char *label; /* NULL: a data row, else "TOTAL" or "(N more)" in the first key */
    const char *const *key;
    const tg_measures *m;
} line;

static size_t line_at(const tg_report *r, size_t i, line *l, char more[48])
{
    static const char *const none[TG_REPORT_KEYS] = {0};
    if (i < r->nrows) {
        *l = (line){NULL, r->rows[i].key, &r->rows[i].m};
    } else if (r->nrest && i == r->nrows) {
        snprintf(more, 48, "(%zu more)", r->nrest);
        *l = (line){more, none, &r->rest};
    } else {
        *l = (line){"TOTAL", none, &r->total};
    }
    return r->nrows + (r->nrest ? 1 : 0) + 1; /* lines in all */
}

static const char *key_cell(const line *l, size_t k)
{
    if (l->label) return k == 0 ? l->label : "";
    return l->key[k][0] ? l->key[k] : "(none)";
}

static int pad(tg_buf *b, size_t n)
{
    int rc = TG_OK;
    while (n-- && !rc) rc = tg_buf_add_char(b, ' ');
    return rc;
}

/* One table line: keys left-aligned, numbers right-aligned. */
static int table_line(tg_buf *b, const char *const *txt, const size_t *w, size_t nk, size_t nc)
{
    int rc = TG_OK;
    for (size_t i = 0; i < nc && !rc; i++) {
        size_t n = strlen(txt[i]);
        if (i) rc = tg_buf_add_lit(b, "  ");
        if (!rc && i >= nk) rc = pad(b, w[i] - n);
        if (!rc) rc = tg_buf_append(b, txt[i], n);
        if (!rc && i < nk && i + 1 < nc) rc = pad(b, w[i] - n);
    }
    return rc ? rc : tg_buf_add_char(b, '\n');
}

/* The table's cells of one line into txt (number cells in cellbuf). */
static size_t table_cells(const line *l, size_t nk, const char **txt, char (*cellbuf)[CELL + 8])
{
    size_t c = 0;
    for (size_t k = 0; k < nk; k++) txt[c++] = key_cell(l, k);
    for (size_t j = 0; j < NCOLS; j++)
        if (cols[j].title) txt[c] = cell(l->m, &cols[j], 6, cellbuf[c]), c++;
    return c;
}

static int table_head(const tg_report *r, tg_buf *b)
{
    char from[TG_DAY_STRLEN], to[TG_DAY_STRLEN];
    tg_report_day_text(r->q.from_ms, from);
    tg_report_day_text(r->q.to_ms - 1, to);
    int rc = tg_buf_printf(b, "usage %s (%s to %s, UTC) by %s", r->q.period, from, to,
                           tg_report_by_name(r->q.by));
    if (!rc && r->q.app[0]) rc = tg_buf_printf(b, ", app %s", r->q.app);
    if (!rc && r->q.customer[0]) rc = tg_buf_printf(b, ", customer %s", r->q.customer);
    if (!rc)
        rc = tg_buf_add_lit(b, "\nmoney in USD, rounded to 6 decimals (csv and json are "
                               "exact); tokens: prompt includes cached and cache_wr\n\n");
    return rc;
}

static int render_table(const tg_report *r, tg_buf *b)
{
    const char *names[TG_REPORT_KEYS], *txt[TG_REPORT_KEYS + NCOLS];
    char cellbuf[TG_REPORT_KEYS + NCOLS][CELL + 8], more[48];
    size_t nk = tg_report_key_names(r->q.by, names), w[TG_REPORT_KEYS + NCOLS] = {0}, nc = nk;
    for (size_t k = 0; k < nk; k++) w[k] = strlen(names[k]), txt[k] = names[k];
    for (size_t j = 0; j < NCOLS; j++)
        if (cols[j].title) txt[nc] = cols[j].title, w[nc++] = strlen(cols[j].title);
    line l;
    size_t nl = line_at(r, 0, &l, more);
    for (size_t i = 0; i < nl; i++) { /* widths */
        line_at(r, i, &l, more);
        const char *t[TG_REPORT_KEYS + NCOLS];
        table_cells(&l, nk, t, cellbuf);
        for (size_t c = 0; c < nc; c++)
            if (strlen(t[c]) > w[c]) w[c] = strlen(t[c]);
    }
    int rc = table_head(r, b);
    if (!rc) rc = table_line(b, txt, w, nk, nc);
    for (size_t i = 0; i < nl && !rc; i++) {
        line_at(r, i, &l, more);
        if (l.m == &r->total) { /* a rule above the total */
            size_t all = 0;
            for (size_t c = 0; c < nc; c++) all += w[c] + (c ? 2 : 0);
            for (size_t k = 0; k < all && !rc; k++) rc = tg_buf_add_char(b, '-');
            if (!rc) rc = tg_buf_add_char(b, '\n');
        }
        table_cells(&l, nk, txt, cellbuf);
        if (!rc) rc = table_line(b, txt, w, nk, nc);
    }
    return rc;
}

/* ---- csv ---- */

int tg_report_csv_field(tg_buf *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) return tg_buf_append(b, s, strlen(s));
    int rc = tg_buf_add_char(b, '"');
    for (const char *p = s; *p && !rc; p++)
        rc = *p == '"' ? tg_buf_add_lit(b, "\"\"") : tg_buf_add_char(b, *p);
    return rc ? rc : tg_buf_add_char(b, '"');
}

static int csv_line(tg_buf *b, const char *kind, const char *const *key, size_t nk,
                    const tg_measures *m)
{
    char c[CELL + 8];
    int rc = tg_buf_append(b, kind, strlen(kind));
    for (size_t k = 0; k < nk && !rc; k++) {
        rc = tg_buf_add_char(b, ',');
        if (!rc && key) rc = tg_report_csv_field(b, key[k]);
    }
    for (size_t j = 0; j < NCOLS && !rc; j++) {
        rc = tg_buf_add_char(b, ',');
        if (!rc) rc = tg_report_csv_field(b, cell(m, &cols[j], 9, c));
    }
    return rc ? rc : tg_buf_add_lit(b, "\r\n");
}

static int render_csv(const tg_report *r, tg_buf *b)
{
    const char *names[TG_REPORT_KEYS];
    size_t nk = tg_report_key_names(r->q.by, names);
    int rc = tg_buf_add_lit(b, "kind");
    for (size_t k = 0; k < nk && !rc; k++) rc = tg_buf_printf(b, ",%s", names[k]);
    for (size_t j = 0; j < NCOLS && !rc; j++) rc = tg_buf_printf(b, ",%s", cols[j].name);
    if (!rc) rc = tg_buf_add_lit(b, "\r\n");
    for (size_t i = 0; i < r->nrows && !rc; i++)
        rc = csv_line(b, "row", r->rows[i].key, nk, &r->rows[i].m);
    if (!rc && r->nrest) rc = csv_line(b, "rest", NULL, nk, &r->rest);
    if (!rc) rc = csv_line(b, "total", NULL, nk, &r->total);
    return rc;
}

/* ---- json ---- */

static int json_measures(tg_buf *b, const tg_measures *m)
{
    char c[CELL + 8];
    int rc = TG_OK;
    for (size_t j = 0; j < NCOLS && !rc; j++) {
        const column *col = &cols[j];
        rc = tg_buf_printf(b, ",\"%s\":", col->name);
        if (rc) break;
        if (col->type == C_COUNT) {
            rc = tg_buf_add_i64(b, field(m, col));
        } else if (col->type == C_MONEY || col->type == C_SAVINGS) {
            rc = tg_buf_printf(b, "\"%s\",\"%s_nanos\":%lld", cell(m, col, 9, c), col->name,
                               (long long)field(m, col));
        } else if (!m->charge) {
            rc = tg_buf_add_lit(b, "null");
        } else {
            rc = tg_buf_printf(b, "\"%s\"", cell(m, col, 9, c));
        }
    }
    return rc;
}

static int json_str_or_null(tg_buf *b, const char *s)
{
    return s[0] ? tg_jsonw_str(b, tg_str_c(s)) : tg_buf_add_lit(b, "null");
}

static int json_head(const tg_report *r, tg_buf *b, const char *const *names, size_t nk)
{
    char from[TG_DAY_STRLEN], to[TG_DAY_STRLEN];
    tg_report_day_text(r->q.from_ms, from);
    tg_report_day_text(r->q.to_ms - 1, to);
    int rc = tg_buf_add_lit(b, "{\"period\":");
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(r->q.period));
    if (!rc) rc = tg_buf_printf(b, ",\"from\":\"%s\",\"to\":\"%s\",\"by\":\"%s\",\"app\":", from,
                                to, tg_report_by_name(r->q.by));
    if (!rc) rc = json_str_or_null(b, r->q.app);
    if (!rc) rc = tg_buf_add_lit(b, ",\"customer\":");
    if (!rc) rc = json_str_or_null(b, r->q.customer);
    if (!rc) rc = tg_buf_add_lit(b, ",\"keys\":[");
    for (size_t k = 0; k < nk && !rc; k++) rc = tg_buf_printf(b, "%s\"%s\"", k ? "," : "", names[k]);
    return rc ? rc : tg_buf_add_lit(b, "],\"rows\":[");
}

static int render_json(const tg_report *r, tg_buf *b)
{
    const char *names[TG_REPORT_KEYS];
    size_t nk = tg_report_key_names(r->q.by, names);
    int rc = json_head(r, b, names, nk);
    for (size_t i = 0; i < r->nrows && !rc; i++) {
        rc = i ? tg_buf_add_lit(b, ",{") : tg_buf_add_char(b, '{');
        for (size_t k = 0; k < nk && !rc; k++) {
            rc = tg_buf_printf(b, "%s\"%s\":", k ? "," : "", names[k]);
            if (!rc) rc = tg_jsonw_str(b, tg_str_c(r->rows[i].key[k]));
        }
        if (!rc) rc = json_measures(b, &r->rows[i].m);
        if (!rc) rc = tg_buf_add_char(b, '}');
    }
    if (!rc) rc = tg_buf_add_char(b, ']');
    if (!rc && r->nrest) {
        rc = tg_buf_printf(b, ",\"rest\":{\"rows\":%zu", r->nrest);
        if (!rc) rc = json_measures(b, &r->rest);
        if (!rc) rc = tg_buf_add_char(b, '}');
    }
    if (!rc) rc = tg_buf_add_lit(b, ",\"total\":{\"rows\":");
    if (!rc) rc = tg_buf_add_u64(b, r->nrows + r->nrest);
    if (!rc) rc = json_measures(b, &r->total);
    return rc ? rc : tg_buf_add_lit(b, "}}\n");
}

int tg_report_render(const tg_report *r, tg_report_format f, tg_buf *out)
{
    switch (f) {
    case TG_REPORT_CSV: return render_csv(r, out);
    case TG_REPORT_JSON: return render_json(r, out);
    default: return render_table(r, out);
    }
}
