/* A closed period's usage as Stripe Billing meter events, written to a
 * file (no network): newline-delimited JSON, one event per line, each in
 * the shape of the body of Stripe's POST /v1/billing/meter_events, or the
 * same events as CSV. Someone who bills through Stripe sends or uploads
 * them and configures one meter (aggregation "sum") per event name.
 *
 *   {"event_name":"tollgate_usage",
 *    "payload":{"stripe_customer_id":"acme","value":"1200",
 *               "tollgate_amount_cents":"116339"},
 *    "identifier":"INV-2026-11-00001-2","timestamp":1764547199}
 *
 * One event per invoice line that carries usage; the mapping:
 *
 *   line kind  event_name                    value (a whole number)
 *   usage      tollgate_usage                the requests (the line's qty)
 *   unit       tollgate_unit_<unit>          the units counted (the qty)
 *   overage    tollgate_overage_credits      the credits, rounded half-up
 *                                            to whole credits
 *   late       tollgate_late_<period>        the late requests (the qty)
 *   fee, included, grant, topup: no event (a plan's fee is not usage;
 *   included credits and grants are 0 USD; a top-up is a payment).
 *
 * The qty is read as an integer; when it is not one, the line's records
 * are the value. <unit> and <period> come from the line's ref made into
 * an event name: ASCII letters lowercased, digits and '_' kept, any other
 * byte '_' ("Report-X" -> "report_x", "2026-10" -> "2026_10"); a name is
 * cut at Stripe's 100 characters. Two refs that differ only in the bytes
 * replaced land on the same meter.
 *
 * Fields:
 *   identifier   the invoice id, '-', the line's 1-based number on the
 *                invoice (the "#" of invoice_html.h): unique across a
 *                close and the same every time it is exported, so a
 *                re-upload is refused by Stripe as a duplicate (Stripe
 *                checks uniqueness over at least 24 hours).
 *   timestamp    unix seconds of the period's end minus one second: the
 *                usage falls in the period. Stripe takes events at most 35
 *                days old, so export within 35 days of the period's end.
 *   stripe_customer_id  the tollgate customer id, as it is: Stripe
 *                resolves it as a Stripe customer id, so tollgate
 *                customers must be named by their Stripe ids ("cus_...")
 *                or the file mapped before it is sent. Invoices without a
 *                customer are not exported.
 *   value        Stripe's meters take whole numbers only, as a string.
 *   tollgate_amount_cents  the line's amount in cents, exact, as a string
 *                ("-5" for -$0.05): what tollgate billed for the line,
 *                which a meter's value times a Stripe price need not
 *                reproduce (an overage's credits are rounded; a unit's
 *                price may be fractional; a unit line on a plan is 0 USD
 *                because its charge is in the overage line). Summed per
 *                invoice (the identifier's prefix), the events' cents are
 *                its subtotal less its fee and top-up lines.
 *
 * A line whose value is 0 is skipped unless its amount is not 0 (an
 * overage of 0.4 credits still bills its cents), so no billed cent is
 * missing from the file.
 *
 * CSV: a header line, then one line per event in the same order, CRLF,
 * fields quoted per RFC 4180 when they hold , " CR or LF:
 *   identifier,timestamp,event_name,stripe_customer_id,value,tollgate_amount_cents
 * (Stripe's own import template names payload columns "payload_<key>";
 * rename the header for it.) */
#ifndef TG_REPORT_STRIPE_H
#define TG_REPORT_STRIPE_H

#include "base/buf.h"
#include "bill/close.h"

#define TG_STRIPE_EVENT_NAME_MAX 100

/* Appends d's meter events as NDJSON to out. TG_OK, or the buffer's
 * TG_ETOOBIG / TG_ENOMEM, with out left as it was. */
int tg_stripe_meter_events(const tg_close_docs *d, tg_buf *out);
/* The same events as CSV, header first. TG_OK, TG_ETOOBIG, TG_ENOMEM. */
int tg_stripe_meter_events_csv(const tg_close_docs *d, tg_buf *out);

#endif
