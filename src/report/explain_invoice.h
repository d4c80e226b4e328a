/* `tollgate explain-invoice ID` (docs/invoices.md, "Audit"): each amount
 * of an invoice with the usage records, wallet burns, grants and plan
 * history it was made from, recomputed from them as the close saw them
 * (its usage chunks and wallet transactions) and checked. */
#ifndef TG_REPORT_EXPLAIN_INVOICE_H
#define TG_REPORT_EXPLAIN_INVOICE_H

#include "base/buf.h"
#include "store/store.h"

/* Appends the explanation of invoice id to out. TG_ENOTFOUND (no such
 * invoice), TG_EIO, TG_ENOMEM; TG_EINVAL when an amount does not match
 * what is behind it (out still has the whole explanation, which says
 * which). err says why. */
int tg_explain_invoice(tg_store *s, const char *id, tg_buf *out, tg_errmsg *err);

#endif
