/* A closed period's documents for people and programs (docs/invoices.md):
 * tables, CSV and JSON of invoices, statements and settlements. Money in
 * CSV and JSON is a USD decimal with all nine places ("12.340000000"),
 * exact; tables show cents. invoice_html.h renders an invoice as a page,
 * stripe.h as meter events. */
#ifndef TG_REPORT_DOCS_H
#define TG_REPORT_DOCS_H

#include "base/buf.h"
#include "bill/close.h"
#include "report/report.h"

/* What `tollgate close-period` prints: the close, its invoices' count and
 * total, each app's statement totals and each provider's settlement.
 * JSON: the close with every document in full. CSV: one line per app
 * statement and provider settlement. */
int tg_docs_close(const tg_close_docs *d, bool unchanged, tg_report_format f, tg_buf *out);
/* The invoices (customer: one customer's; NULL or "" every one). Table:
 * one line per invoice; CSV: one line per invoice line; JSON: every
 * invoice in full. */
int tg_docs_invoices(const tg_close_docs *d, const char *customer, tg_report_format f, tg_buf *out);
/* One invoice with its lines. */
int tg_docs_invoice(const tg_close_docs *d, const tg_invoice *inv, tg_report_format f, tg_buf *out);
/* The builders' statements (app: one app's; NULL or "" every one): a row
 * per customer and the app's totals. */
int tg_docs_statements(const tg_close_docs *d, const char *app, tg_report_format f, tg_buf *out);
/* The providers' settlements (provider: one; NULL or "" every one): a row
 * per offering and the provider's totals. */
int tg_docs_settlements(const tg_close_docs *d, const char *provider, tg_report_format f,
                        tg_buf *out);

/* The invoice of d with id; NULL when none. */
const tg_invoice *tg_docs_find(const tg_close_docs *d, const char *id);

#endif
