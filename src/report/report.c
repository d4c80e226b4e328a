/* Report queries: parsing a query, summing rollup rows by the requested
 * key, sorting, and the totals. See report.h; rendering is in render.c.
 *
 * Rows are summed in C, in a hash table keyed by the grouping's key
 * strings, rather than with SQL GROUP BY: a period may take rows from two
 * rollups (whole months, then loose days) that must land in the same
 * groups, and a hash beats SQLite's sorter for the groupings that do not
 * follow the rollup's key order (feature, model, ...). */
#include "report/report.h"

#include "base/arena.h"
#include "base/hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MS_DAY 86400000LL

typedef struct {
    tg_report pub; /* first: tg_report_free casts back */
    tg_arena arena;
} report_impl;

/* ---- the query ---- */

static const char *const by_names[TG_BY_COUNT_] = {
    "customer", "workspace", "user", "feature", "workflow", "model",
    "offering", "provider",  "route", "app",    "day"};

static const char *const key_names[TG_BY_COUNT_][TG_REPORT_KEYS] = {
    {"app", "customer"}, {"app", "customer", "workspace"}, {"app", "customer", "user"},
    {"app", "feature"},  {"app", "workflow"},              {"model"},
    {"offering"},        {"provider"},                     {"route"},
    {"app"},             {"day"}};

const char *tg_report_by_name(tg_report_by by)
{
    return (unsigned)by < TG_BY_COUNT_ ? by_names[by] : "?";
}

size_t tg_report_key_names(tg_report_by by, const char *names[TG_REPORT_KEYS])
{
    size_t n = 0;
    for (; n < TG_REPORT_KEYS && (unsigned)by < TG_BY_COUNT_ && key_names[by][n]; n++)
        names[n] = key_names[by][n];
    for (size_t i = n; i < TG_REPORT_KEYS; i++) names[i] = NULL;
    return n;
}

#define PERIOD_FORMS                                                                              \
    "use YYYY-MM (a month), YYYY-MM-DD (a day) or YYYY-MM-DD..YYYY-MM-DD (days, inclusive)"

static bool digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9') return false;
    return true;
}

static int num(const char *p, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) v = v * 10 + (p[i] - '0');
    return v;
}

static int days_in(int y, int m)
{
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : d[m - 1];
}

static int64_t utc_ms(int y, int m, int d)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
    return (int64_t)timegm(&tm) * 1000;
}

/* "YYYY-MM" (with_day false) or "YYYY-MM-DD" at p[0..n): the UTC start
 * of that month or day; TG_EINVAL with err set. */
static int parse_date(const char *p, size_t n, bool with_day, int64_t *ms, int *y, int *m,
                      tg_errmsg *err)
{
    size_t want = with_day ? 10 : 7;
    if (n != want || !digits(p, 4) || p[4] != '-' || !digits(p + 5, 2) ||
        (with_day && (p[7] != '-' || !digits(p + 8, 2))))
        return tg_errmsg_set(err, "period: \"%.*s\" is not a %s; " PERIOD_FORMS, (int)n, p,
                             with_day ? "day" : "month or day");
    *y = num(p, 4);
    *m = num(p + 5, 2);
    int d = with_day ? num(p + 8, 2) : 1;
    if (*y < 1970 || *m < 1 || *m > 12 || d < 1 || d > days_in(*y, *m))
        return tg_errmsg_set(err, "period: %.*s is not a date (years from 1970)", (int)n, p);
    *ms = utc_ms(*y, *m, d);
    return TG_OK;
}

static int parse_period(tg_report_query *q, const char *s, tg_errmsg *err)
{
    size_t n = strlen(s);
    const char *dots = strstr(s, "..");
    int y, m, rc;
    if (n >= sizeof q->period)
        return tg_errmsg_set(err, "period: \"%.40s...\" is too long; " PERIOD_FORMS, s);
    memcpy(q->period, s, n + 1);
    if (n == 7) { /* a month */
        if ((rc = parse_date(s, n, false, &q->from_ms, &y, &m, err))) return rc;
        q->to_ms = q->from_ms + (int64_t)days_in(y, m) * MS_DAY;
        return TG_OK;
    }
    int64_t last;
    if (!dots) {
        if ((rc = parse_date(s, n, true, &q->from_ms, &y, &m, err))) return rc;
        q->to_ms = q->from_ms + MS_DAY;
        return TG_OK;
    }
    if ((rc = parse_date(s, (size_t)(dots - s), true, &q->from_ms, &y, &m, err)) ||
        (rc = parse_date(dots + 2, strlen(dots + 2), true, &last, &y, &m, err)))
        return rc;
    if (last < q->from_ms)
        return tg_errmsg_set(err, "period: %s ends before it starts", s);
    q->to_ms = last + MS_DAY;
    return TG_OK;
}

static int copy_filter(char dst[TG_TAG_MAX + 1], const char *v, const char *what, tg_errmsg *err)
{
    size_t n = v ? strlen(v) : 0;
    if (n > TG_TAG_MAX) return tg_errmsg_set(err, "%s: longer than %d bytes", what, TG_TAG_MAX);
    if (n) memcpy(dst, v, n);
    dst[n] = '\0';
    return TG_OK;
}

int tg_report_query_parse(tg_report_query *q, const char *period, const char *by,
                          const char *app, const char *customer, size_t limit, tg_errmsg *err)
{
    int rc;
    memset(q, 0, sizeof *q);
    if (!period || !*period) return tg_errmsg_set(err, "period is missing; " PERIOD_FORMS);
    if ((rc = parse_period(q, period, err))) return rc;
    q->by = TG_BY_COUNT_;
    for (int i = 0; by && i < TG_BY_COUNT_; i++)
        if (!strcmp(by, by_names[i])) q->by = (tg_report_by)i;
    if (q->by == TG_BY_COUNT_)
        return tg_errmsg_set(err,
                             "by: \"%.64s\" is not a grouping; use customer, workspace, user, "
                             "feature, workflow, model, offering, provider, route, app or day",
                             by ? by : "");
    if ((rc = copy_filter(q->app, app, "app", err)) ||
        (rc = copy_filter(q->customer, customer, "customer", err)))
        return rc;
    q->limit = limit;
    return TG_OK;
}

int tg_report_format_parse(const char *s, tg_report_format *out, tg_errmsg *err)
{
    static const char *const names[] = {"table", "csv", "json"};
    for (int i = 0; i < 3; i++)
        if (s && !strcmp(s, names[i])) {
            *out = (tg_report_format)i;
            return TG_OK;
        }
    return tg_errmsg_set(err, "format: \"%.64s\" is not a format; use table, csv or json",
                         s ? s : "");
}

/* ---- summing rollup rows into groups ---- */

typedef struct {
    report_impl *r;
    size_t cap;
    uint64_t *hashes; /* parallel to rows */
    uint32_t *slots;  /* index + 1 into rows, 0 empty */
    size_t nslots;
    size_t last;      /* index + 1 of the row matched last: rollups come in key order */
    int err;
} group_ctx;

void tg_report_day_text(int64_t ms, char out[TG_DAY_STRLEN])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, TG_DAY_STRLEN, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

static size_t keys_of(tg_report_by by, const tg_rollup_row *x, const char *k[TG_REPORT_KEYS],
                      char day[TG_DAY_STRLEN])
{
    switch (by) {
    case TG_BY_CUSTOMER: k[0] = x->app, k[1] = x->customer; return 2;
    case TG_BY_WORKSPACE: k[0] = x->app, k[1] = x->customer, k[2] = x->workspace; return 3;
    case TG_BY_USER: k[0] = x->app, k[1] = x->customer, k[2] = x->user; return 3;
    case TG_BY_FEATURE: k[0] = x->app, k[1] = x->feature; return 2;
    case TG_BY_WORKFLOW: k[0] = x->app, k[1] = x->workflow; return 2;
    case TG_BY_MODEL: k[0] = x->model; return 1;
    case TG_BY_OFFERING: k[0] = x->offering; return 1;
    case TG_BY_PROVIDER: k[0] = x->provider; return 1;
    case TG_BY_ROUTE: k[0] = tg_route_kind_name((tg_route_kind)x->route); return 1;
    case TG_BY_APP: k[0] = x->app; return 1;
    default: tg_report_day_text(x->bucket_ms, day); k[0] = day; return 1;
    }
}

static bool same_keys(const tg_report_row *row, const char *const *k, size_t nk)
{
    for (size_t i = 0; i < nk; i++)
        if (strcmp(row->key[i], k[i])) return false;
    return true;
}

static int grow(group_ctx *g)
{
    size_t cap = g->cap ? g->cap * 2 : 256, ns = cap * 2;
    tg_report_row *rows = realloc(g->r->pub.rows, cap * sizeof *rows);
    if (rows) g->r->pub.rows = rows;
    uint64_t *h = realloc(g->hashes, cap * sizeof *h);
    if (h) g->hashes = h;
    uint32_t *slots = calloc(ns, sizeof *slots);
    if (!rows || !h || !slots || cap >= UINT32_MAX) {
        free(slots);
        return TG_ENOMEM;
    }
    for (size_t i = 0; i < g->r->pub.nrows; i++) {
        size_t j = g->hashes[i] & (ns - 1);
        while (slots[j]) j = (j + 1) & (ns - 1);
        slots[j] = (uint32_t)(i + 1);
    }
    free(g->slots);
    g->slots = slots;
    g->nslots = ns;
    g->cap = cap;
    return TG_OK;
}

/* The row for keys k, created (keys copied into the arena) if new. */
static tg_report_row *find_row(group_ctx *g, const char *const *k, size_t nk)
{
    tg_report *r = &g->r->pub;
    if (g->last && same_keys(&r->rows[g->last - 1], k, nk)) return &r->rows[g->last - 1];
    uint64_t h = 0x243f6a8885a308d3ull;
    for (size_t i = 0; i < nk; i++) h = tg_hash64(k[i], strlen(k[i]) + 1, h);
    if (r->nrows == g->cap && grow(g)) return NULL;
    size_t j = h & (g->nslots - 1);
    for (; g->slots[j]; j = (j + 1) & (g->nslots - 1)) {
        size_t i = g->slots[j] - 1;
        if (g->hashes[i] == h && same_keys(&r->rows[i], k, nk)) {
            g->last = i + 1;
            return &r->rows[i];
        }
    }
    tg_report_row *row = &r->rows[r->nrows];
    memset(row, 0, sizeof *row);
    for (size_t i = 0; i < nk; i++) {
        tg_str c = tg_arena_dup(&g->r->arena, tg_str_c(k[i]));
        if (!c.p) return NULL;
        row->key[i] = c.p;
    }
    g->hashes[r->nrows] = h;
    g->slots[j] = (uint32_t)++r->nrows;
    g->last = r->nrows;
    return row;
}

static int add_row(void *ud, const tg_rollup_row *x)
{
    group_ctx *g = ud;
    const char *k[TG_REPORT_KEYS] = {0};
    char day[TG_DAY_STRLEN];
    size_t nk = keys_of(g->r->pub.q.by, x, k, day);
    tg_report_row *row = find_row(g, k, nk);
    if (!row) return g->err = TG_ENOMEM;
    if (tg_measures_add(&row->m, &x->m)) return g->err = TG_EINVAL;
    return TG_OK;
}

/* ---- which rollups a period reads ---- */

static int64_t next_month(int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    return utc_ms(tm.tm_year + 1900 + (tm.tm_mon == 11), tm.tm_mon == 11 ? 1 : tm.tm_mon + 2, 1);
}

static bool month_start(int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    return tm.tm_mday == 1 && ms % MS_DAY == 0;
}

/* Whole months from the month rollup, the other days from the day
 * rollup; --by day needs days throughout. */
static int scan_period(tg_store *s, group_ctx *g, tg_errmsg *err)
{
    const tg_report_query *q = &g->r->pub.q;
    bool user = q->by == TG_BY_USER;
    tg_rollup_kind day = user ? TG_ROLL_USER_DAY : TG_ROLL_DAY;
    tg_rollup_kind month = user ? TG_ROLL_USER_MONTH : TG_ROLL_MONTH;
    tg_scan_filter f = {q->app, q->customer};
    int rc = TG_OK;
    for (int64_t at = q->from_ms; at < q->to_ms && !rc;) {
        int64_t nm = next_month(at), to = nm < q->to_ms ? nm : q->to_ms;
        bool whole = q->by != TG_BY_DAY && month_start(at) && nm <= q->to_ms;
        rc = tg_store_scan(s, whole ? month : day, at, to, &f, add_row, g, err);
        at = to;
    }
    if (rc && g->err == TG_ENOMEM) tg_errmsg_set(err, "report: out of memory");
    if (rc && g->err == TG_EINVAL) tg_errmsg_set(err, "report: a sum overflows 64 bits");
    return rc;
}

/* ---- ordering, limit, totals ---- */

static int cmp_keys(const tg_report_row *a, const tg_report_row *b)
{
    for (int i = 0; i < TG_REPORT_KEYS && a->key[i]; i++) {
        int c = strcmp(a->key[i], b->key[i]);
        if (c) return c;
    }
    return 0;
}

static int cmp_charge(const void *pa, const void *pb)
{
    const tg_report_row *a = pa, *b = pb;
    if (a->m.charge != b->m.charge) return a->m.charge > b->m.charge ? -1 : 1;
    return cmp_keys(a, b);
}

static int cmp_day(const void *pa, const void *pb) { return cmp_keys(pa, pb); }

static bool balanced(const tg_measures *m)
{
    return (__int128)m->cost + m->margin + m->fee == m->charge;
}

/* Whether m's savings fits in 64 bits (rendering computes it as is). */
static bool savings_fits(const tg_measures *m)
{
    tg_nanos s;
    return !__builtin_sub_overflow(m->asked_cost, m->cost, &s);
}

tg_nanos tg_report_savings(const tg_measures *m) { return m->asked_cost - m->cost; }

/* Total of every row, then the tail past the limit folded into `rest`. */
static int finish(tg_report *r, tg_errmsg *err)
{
    qsort(r->rows, r->nrows, sizeof *r->rows, r->q.by == TG_BY_DAY ? cmp_day : cmp_charge);
    for (size_t i = 0; i < r->nrows; i++) {
        if (!balanced(&r->rows[i].m))
            return tg_errmsg_set(err, "report: the store's rollups break charge = cost + "
                                      "margin + fee (row %zu); the database was altered", i);
        bool in_rest = r->q.limit && i >= r->q.limit;
        if (tg_measures_add(&r->total, &r->rows[i].m) ||
            (in_rest && tg_measures_add(&r->rest, &r->rows[i].m)))
            return tg_errmsg_set(err, "report: a total overflows 64 bits");
        if (!savings_fits(&r->rows[i].m))
            return tg_errmsg_set(err, "report: savings (asked_cost - cost) overflows 64 bits "
                                      "(row %zu)", i);
    }
    if (!savings_fits(&r->total) || !savings_fits(&r->rest))
        return tg_errmsg_set(err, "report: total savings (asked_cost - cost) overflows 64 bits");
    if (r->q.limit && r->nrows > r->q.limit) {
        r->nrest = r->nrows - r->q.limit;
        r->nrows = r->q.limit;
    }
    return TG_OK;
}

int tg_report_exec(tg_store *s, const tg_report_query *q, tg_report **out, tg_errmsg *err)
{
    report_impl *r = calloc(1, sizeof *r);
    if (!r) return tg_errmsg_set(err, "report: out of memory"), TG_ENOMEM;
    tg_arena_init(&r->arena);
    r->pub.q = *q;
    group_ctx g = {.r = r};
    int rc = grow(&g);
    if (rc) tg_errmsg_set(err, "report: out of memory");
    if (!rc) rc = scan_period(s, &g, err);
    if (!rc) rc = finish(&r->pub, err);
    free(g.hashes);
    free(g.slots);
    if (rc) {
        tg_report_free(&r->pub);
        return rc;
    }
    *out = &r->pub;
    return TG_OK;
}

void tg_report_free(tg_report *pub)
{
    if (!pub) return;
    report_impl *r = (report_impl *)pub;
    free(r->pub.rows);
    tg_arena_release(&r->arena);
    free(r);
}

int tg_report_run(tg_store *s, const tg_report_query *q, tg_report_format f, tg_buf *out,
                  tg_errmsg *err)
{
    tg_report *r;
    int rc = tg_report_exec(s, q, &r, err);
    if (rc) return rc;
    rc = tg_report_render(r, f, out);
    if (rc) tg_errmsg_set(err, "report: the output does not fit (%s)",
                          rc == TG_ETOOBIG ? "too big" : "out of memory");
    tg_report_free(r);
    return rc;
}
