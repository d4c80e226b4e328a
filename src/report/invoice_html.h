/* An invoice as a standalone HTML page, for a person to read and to print
 * (a browser's "Save as PDF" is the PDF export).
 *
 * The page is one self-contained HTML5 document: inline CSS, no script,
 * no image, font or stylesheet fetched from anywhere, so it renders the
 * same offline, in a mail client or from disk years later. Its layout is
 * fluid and sets no paper size, so it prints on A4 and Letter alike
 * (@page margins only; the table head repeats on every printed page and
 * a line is never split across two).
 *
 * What it shows: "Invoice <id>"; the status (a "DRAFT" banner and
 * watermark while the close is not finalized, else "Finalized
 * <YYYY-MM-DD>"); the period as the first and last day it covers
 * (start_ms, end_ms - 1 day); who is billed (customer, app) and the plan
 * at the period's end; a row per line (number, description, quantity,
 * unit price when the line has one, amount); subtotal, tax ("not
 * computed" while it is 0: tax is not computed yet, the model keeps a
 * place for it) and total. Line numbers are 1-based positions in
 * inv->lines, the same numbers stripe.h puts in its identifiers.
 *
 * Money is formatted from integers only: "$1,234.56", "-$0.05", with
 * thousands separators. Amounts are whole cents (the invariant of
 * bill/close.h: each line rounded once, the subtotal their sum, asserted
 * here); unit prices show every decimal they have ("$0.0375"), never
 * rounded. Every string that comes from data (ids, names, descriptions,
 * quantities) is HTML-escaped (& < > " '), so a customer named
 * `<acme & "co">` is text, not markup. */
#ifndef TG_REPORT_INVOICE_HTML_H
#define TG_REPORT_INVOICE_HTML_H

#include "base/buf.h"
#include "bill/close.h"

/* Appends inv as a page to out; st is the close it belongs to (draft or
 * finalized). Returns TG_OK, or the buffer's TG_ETOOBIG / TG_ENOMEM, in
 * which case out is left as it was before the call. */
int tg_invoice_html(const tg_invoice *inv, const tg_close_state *st, tg_buf *out);

#endif
