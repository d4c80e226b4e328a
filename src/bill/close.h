/* Closing a period (issue 6; docs/invoices.md has the rules a user
 * reads): from the usage records and the wallet ledger, one invoice per
 * customer, one payout statement per app (a row per customer) and one
 * settlement per provider (a row per offering), which agree exactly:
 *
 *   sum of invoices == provider cost + builder earnings + platform fee
 *
 * to the nano before rounding (earnings are what is left of a customer's
 * invoice after its cost and fee, so a customer that costs more than it
 * pays shows a negative row), and to the cent after (each invoice line is
 * rounded once, half-up; the period's cost and fee are rounded once and
 * cut across the statement rows by largest remainder, and the earnings of
 * a row are what its invoice's cents leave; the period's cost cents are
 * cut across providers, then offerings, the same way).
 *
 * bill/invoice.c makes an invoice from an account's sums; bill/payout.c
 * the statement rows and settlements; bill/close.c reads the store and
 * runs a close; store/close.h keeps the documents. */
#ifndef TG_BILL_CLOSE_H
#define TG_BILL_CLOSE_H

#include "bill/period.h"
#include "bill/wallet.h"
#include "conf/config.h"
#include "meter/record.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TG_LINE_FEE = 0, /* a plan's fee for the days it was the customer's plan */
    TG_LINE_USAGE,   /* requests without a unit: made without a plan, charged as
                        metered; or on a plan, in credits (0 USD: the credits are on
                        the credit lines) */
    TG_LINE_UNIT,    /* requests of one action unit, the same two ways */
    TG_LINE_INCLUDED,/* credits the plans' allowance covered (0 USD) */
    TG_LINE_GRANT,   /* credits a grant covered (0 USD: paid when bought) */
    TG_LINE_OVERAGE, /* credits past allowance and grants, at the overage price */
    TG_LINE_TOPUP,   /* a top-up bought */
    TG_LINE_LATE,    /* usage of a finalized period recorded after it was closed */
    TG_LINE_KIND_COUNT_
} tg_line_kind;
const char *tg_line_kind_name(tg_line_kind k); /* "fee", "usage", ... */
int tg_line_kind_parse(const char *s, tg_line_kind *out);

#define TG_LINE_DESC_MAX 383
#define TG_PERIOD_DAYS_MAX 31
#define TG_LINE_QTY_MAX 63
#define TG_INVOICE_ID_MAX 31

typedef struct {
    tg_line_kind kind;
    char ref[TG_TAG_MAX + 1];          /* plan, unit, grant id or late period; "" */
    char desc[TG_LINE_DESC_MAX + 1];
    char qty[TG_LINE_QTY_MAX + 1];     /* as a person reads it: "14/30 days", "120" */
    tg_nanos unit_price;               /* USD per quantity unit; -1: none */
    tg_nanos exact;                    /* nano-USD, before rounding */
    tg_nanos amount;                   /* exact rounded half-up to cents (in nanos) */
    tg_ncredits credits;               /* the credits the line is about; 0 */
    int64_t records;                   /* the usage records behind it; 0 */
} tg_invoice_line;

typedef struct {
    char id[TG_INVOICE_ID_MAX + 1];    /* "INV-2026-11-00001" */
    char period[8];
    char app[TG_TAG_MAX + 1], customer[TG_TAG_MAX + 1];
    char plan[TG_TAG_MAX + 1];         /* at the period's end; "" none */
    int64_t start_ms, end_ms;          /* the app's period */
    tg_invoice_line *lines;
    size_t nlines, cap;
    tg_nanos exact;                    /* sum of the lines' exact amounts */
    tg_nanos subtotal;                 /* sum of their amounts */
    tg_nanos tax;                      /* not computed: always 0, a place for it */
    tg_nanos total;                    /* subtotal + tax */
    /* the usage behind it (the period's and late records) */
    int64_t records;
    tg_nanos charge, cost, fee;
    tg_ncredits credits;               /* consumed */
    tg_ncredits allowance;             /* the plans' included credits, prorated */
} tg_invoice;

/* A builder's statement row: one customer of an app ("" for usage that
 * no customer is billed for). The exact amounts add up
 * (billed == cost + fee + earnings) and so do the cents. */
typedef struct {
    char app[TG_TAG_MAX + 1], customer[TG_TAG_MAX + 1];
    char invoice[TG_INVOICE_ID_MAX + 1]; /* "" when none */
    int64_t records;
    tg_nanos charge, margin;             /* as the records have them */
    tg_nanos billed_exact, cost_exact, fee_exact, earnings_exact;
    tg_nanos billed, cost, fee, earnings; /* cents */
} tg_stmt_row;

/* A provider's settlement row: one offering. */
typedef struct {
    char provider[TG_TAG_MAX + 1], offering[TG_TAG_MAX + 1];
    int64_t records;                     /* records that cost something or named it */
    tg_tokens tokens;
    tg_nanos cost_exact, cost;           /* cost: cents */
} tg_settle_row;

/* A close as the store keeps it. */
typedef struct {
    char period[8];
    bool finalized;
    int64_t through_seq, through_tx;     /* the last usage chunk and wallet tx read */
    int64_t late_seq, late_tx;           /* late usage: read after these */
    int64_t closed_ms, finalized_ms;     /* finalized_ms 0: a draft */
} tg_close_state;

typedef struct {
    tg_close_state st;
    tg_invoice *inv;          /* by (app, customer) */
    size_t ninv;
    tg_stmt_row *stmt;        /* by (app, customer) */
    size_t nstmt;
    tg_settle_row *settle;    /* by (provider, offering) */
    size_t nsettle;
    char replaced[8];         /* a close that replaced another period's draft
                                 (there is one draft at most): its period; "" */
} tg_close_docs;

void tg_close_docs_release(tg_close_docs *d);

/* ---- an invoice from an account's sums (bill/invoice.c) ---- */

/* A plan a customer had for part of a period, [from_ms, to_ms) on whole
 * UTC days. plan NULL: no plan. */
typedef struct {
    const tg_plan *plan;
    int64_t from_ms, to_ms;
} tg_plan_span;

typedef struct {
    char unit[TG_TAG_MAX + 1];
    int64_t records, count;   /* count: the units (unit_count summed) */
    tg_nanos charge;
    tg_ncredits credits;
} tg_unit_sum;

/* Records of one kind: those without a unit, and by unit name. */
typedef struct {
    int64_t plain_records;
    tg_nanos plain_charge;
    tg_ncredits plain_credits;
    tg_unit_sum *units;
    size_t nunits, cap_units;
} tg_usage_sums;

typedef struct {
    char period[8];
    const tg_plan *plan;      /* the customer's at that period's end; NULL none */
    int64_t records;
    tg_nanos charge, cost, fee;
    tg_ncredits credits, from_grants; /* from_grants: what grants covered of them */
} tg_late_sum;

typedef struct {
    char id[TG_GRANT_ID_MAX + 1];
    tg_grant_kind kind;
    tg_ncredits credits;      /* applied (burned) in the period, or bought */
    tg_nanos paid;            /* a top-up: what was paid */
    bool late;                /* a top-up of a finalized period, made after its close */
} tg_grant_sum;

/* Everything an invoice is made from, for one customer of one app. */
typedef struct {
    char app[TG_TAG_MAX + 1], customer[TG_TAG_MAX + 1];
    tg_period period;
    tg_plan_span *spans;      /* chronological, covering the period; none: no plan */
    size_t nspans;
    int64_t records;          /* the period's records */
    tg_nanos charge, cost, margin, fee;
    tg_ncredits credits;
    /* the period's records by the plan they were made on: metered (no
     * plan: billed at their charge) and on a plan (billed in credits) */
    tg_usage_sums metered, on_plan;
    /* by day of the period (UTC): the credits its records consumed, and
     * what grants (not the included one) covered of them, as the
     * wallet's burns of that day say: whose overage is whose when the
     * plan changes during the period */
    tg_ncredits day_credits[TG_PERIOD_DAYS_MAX], day_grants[TG_PERIOD_DAYS_MAX];
    tg_grant_sum *applied;    /* grants burned in the period (not the included one) */
    size_t napplied;
    tg_grant_sum *bought;     /* top-ups made in the period (and late ones) */
    size_t nbought;
    tg_late_sum *late;        /* by period */
    size_t nlate;
} tg_close_acct;

/* Makes acct's invoice (id given) into *inv, lines and totals (docs/
 * invoices.md, "Lines"). TG_ENOMEM; TG_EINVAL when an amount would not
 * fit 64 bits (err says which). Release with tg_invoice_release. */
int tg_invoice_make(const tg_close_acct *acct, const char *id, tg_invoice *inv, tg_errmsg *err);
void tg_invoice_release(tg_invoice *inv);
/* Adds a line (copied) to inv; amount is computed from exact. TG_ENOMEM. */
int tg_invoice_add(tg_invoice *inv, const tg_invoice_line *l);

/* ---- statements and settlements (bill/payout.c) ---- */

/* The statement row of an invoice (NULL: usage no customer is billed
 * for, with its sums in acct): its exact amounts and billed cents. */
void tg_stmt_row_make(const tg_close_acct *acct, const tg_invoice *inv, tg_stmt_row *row);
/* The cents of a period's statement rows: the period's cost, rounded
 * half-up once, cut into the rows' cost by largest remainder over their
 * exact cost (so no row is a cent off an exact whole-cent cost, and the
 * rows sum to the rounded total); the fee likewise; each row's earnings
 * are what is left of its billed cents. *cost_total: the period's cost
 * in cents, what the settlements cut up. */
int tg_stmt_cents(tg_stmt_row *rows, size_t n, tg_nanos *cost_total, tg_errmsg *err);
/* Cuts the period's cost cents (tg_stmt_cents' total) across the
 * settlement rows by largest remainder: per provider, then per offering.
 * rows are sorted by (provider, offering). */
int tg_settle_cents(tg_settle_row *rows, size_t n, tg_nanos cost_cents, tg_errmsg *err);

/* ---- running a close (bill/close.c) ---- */

typedef struct tg_store tg_store;

typedef struct {
    const char *period;       /* "YYYY-MM" */
    bool finalize;
    int64_t now_ms;
} tg_close_opts;

/* Closes o->period (docs/invoices.md, "Closing"): reads the store in one
 * snapshot, makes the documents and writes them in one transaction, and
 * leaves them in *d. *unchanged is true when the period was already
 * finalized: nothing is written and *d is what the store has. TG_EINVAL
 * (err says why: a period out of order, finalizing before the period
 * ended, ledger and records that disagree), TG_EIO, TG_ENOMEM. */
int tg_close_period(tg_store *s, const tg_config *cfg, const tg_close_opts *o, tg_close_docs *d,
                    bool *unchanged, tg_errmsg *err);

#endif
