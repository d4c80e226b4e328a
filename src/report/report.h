/* Usage reports: requests, tokens, cost, charge, margin and fee over a
 * period, grouped by one dimension (DESIGN.md, Interfaces; docs/reports.md),
 * and the savings of routing: the upstream attempts, what the served
 * tokens would have cost at the models asked for (asked_cost) and
 * savings = asked_cost - cost, negative where routing cost more (an
 * escalation). `--by route` puts them side by side per route.
 *
 * A report reads rollups, never the usage table: whole calendar months of
 * the period from the month rollup, the other days from the day rollup
 * (--by user: the user rollups; --by day: the day rollup), so a month of
 * ten million records reads a few hundred thousand rows at most. Sums are
 * exact int64 nano-USD; a sum that would overflow is an error, not a wrap.
 *
 * Invariants, asserted: the total equals the sum of the rows (and of the
 * rest, when a limit cut the list), every measure and savings, and
 * charge == cost + margin + fee in every row and in the total.
 *
 * Threads: a report runs on the store handle it is given and nothing else
 * is shared, so any number of reports run at once on distinct handles
 * (open one read-only tg_store per thread; a handle is not for two threads
 * at once). Used by `tollgate report` and the admin and customer HTTP
 * endpoints, which pass the caller's customer as the filter. */
#ifndef TG_REPORT_REPORT_H
#define TG_REPORT_REPORT_H

#include "base/buf.h"
#include "base/err.h"
#include "store/store.h"

typedef enum {
    TG_BY_CUSTOMER = 0, /* key: app, customer */
    TG_BY_WORKSPACE,    /* app, customer, workspace */
    TG_BY_USER,         /* app, customer, user */
    TG_BY_FEATURE,      /* app, feature */
    TG_BY_WORKFLOW,     /* app, workflow */
    TG_BY_MODEL,        /* model */
    TG_BY_OFFERING,     /* offering */
    TG_BY_PROVIDER,     /* provider */
    TG_BY_ROUTE,        /* route (primary, fallback, ...) */
    TG_BY_APP,          /* app */
    TG_BY_DAY,          /* day, YYYY-MM-DD (rows in date order) */
    TG_BY_COUNT_
} tg_report_by;

typedef enum { TG_REPORT_TABLE = 0, TG_REPORT_CSV, TG_REPORT_JSON } tg_report_format;

#define TG_REPORT_KEYS 3 /* the most key columns a grouping has */

typedef struct {
    char period[32];        /* as accepted: "2026-11", "2026-11-05", "2026-11-01..2026-11-15" */
    int64_t from_ms, to_ms; /* [from, to): UTC day boundaries */
    tg_report_by by;
    char app[TG_TAG_MAX + 1];      /* "" : every app */
    char customer[TG_TAG_MAX + 1]; /* "" : every customer */
    size_t limit;                  /* 0: every row; else the first `limit`, the rest summed */
} tg_report_query;

/* Fills q from the command line's (or a query string's) words. period:
 * YYYY-MM (a month), YYYY-MM-DD (a day) or YYYY-MM-DD..YYYY-MM-DD (days,
 * inclusive); by: one of the names above; app and customer may be NULL or
 * "". TG_EINVAL with err saying what is wrong and what is accepted (an
 * unknown `by` lists the valid ones). */
int tg_report_query_parse(tg_report_query *q, const char *period, const char *by,
                          const char *app, const char *customer, size_t limit, tg_errmsg *err);
/* "table", "csv" or "json"; TG_EINVAL otherwise, listing them. */
int tg_report_format_parse(const char *s, tg_report_format *out, tg_errmsg *err);
const char *tg_report_by_name(tg_report_by by);
/* The key columns of a grouping ("app", "customer", ...); returns how many. */
size_t tg_report_key_names(tg_report_by by, const char *names[TG_REPORT_KEYS]);

typedef struct {
    const char *key[TG_REPORT_KEYS]; /* tg_report_key_names order; unused ones NULL */
    tg_measures m;
} tg_report_row;

typedef struct tg_report tg_report;
struct tg_report {
    tg_report_query q;
    tg_report_row *rows; /* by charge descending, then keys ascending (--by day: by day) */
    size_t nrows;        /* at most q.limit when a limit is set */
    size_t nrest;        /* rows beyond the limit, summed in `rest` */
    tg_measures rest;
    tg_measures total;   /* == sum of rows + rest, exactly */
};

/* Runs q over s. TG_EIO (the store failed), TG_EINVAL (a sum would
 * overflow, or a savings in a row, the rest or the total), TG_ENOMEM; err
 * says which. The report owns its strings. */
int tg_report_exec(tg_store *s, const tg_report_query *q, tg_report **out, tg_errmsg *err);
void tg_report_free(tg_report *r);

/* Appends r in format f to out (render.c). Table: aligned columns for
 * people, money in USD rounded half-up to 6 decimals (the header says so).
 * CSV (RFC 4180, first column `kind`: row, rest or total) and JSON
 * ({"period", "from", "to", "by", "app", "customer", "rows", "rest" when a
 * limit cut rows, "total"}) carry every amount exactly: a 9-decimal USD
 * string and an integer *_nanos field. TG_ETOOBIG past out's cap, TG_ENOMEM. */
int tg_report_render(const tg_report *r, tg_report_format f, tg_buf *out);

/* Appends s as one CSV field, quoted when RFC 4180 needs it. */
int tg_report_csv_field(tg_buf *b, const char *s);

/* exec + render + free. */
int tg_report_run(tg_store *s, const tg_report_query *q, tg_report_format f, tg_buf *out,
                  tg_errmsg *err);

/* m's asked_cost - cost: what routing saved (negative: what it cost).
 * Exact for the rows, rest and total of a report tg_report_exec made,
 * which checked that it fits in 64 bits. */
tg_nanos tg_report_savings(const tg_measures *m);

/* margin / charge as a percentage with 2 decimals, rounded half away from
 * zero, in integers: "12.34", "-3.50"; "-" when charge is 0. Returns the
 * length written to out (NUL-terminated). */
#define TG_PCT_STRLEN 32
size_t tg_report_margin_pct(tg_nanos margin, tg_nanos charge, char out[TG_PCT_STRLEN]);

/* The UTC day of ms as "YYYY-MM-DD" (NUL-terminated). */
#define TG_DAY_STRLEN 32
void tg_report_day_text(int64_t ms, char out[TG_DAY_STRLEN]);

#endif
