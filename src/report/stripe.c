/* Stripe meter events from a close (see stripe.h for the mapping).
 *
 * One function, event_of(), decides for a line whether it is an event and
 * with what fields; the NDJSON and CSV writers only format its result, so
 * the two files always hold the same events. Values and cents are
 * integers from integers: credits are rounded half-up in unsigned 64-bit
 * arithmetic, cents are an exact division of a whole-cent amount. */
#include "report/stripe.h"

#include "base/jsonw.h"
#include "base/money.h"
#include "report/report.h"

#include <assert.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    char identifier[TG_INVOICE_ID_MAX + 1 + 24];
    char name[TG_STRIPE_EVENT_NAME_MAX + 1];
    int64_t timestamp;
    int64_t value;
    int64_t cents;
} event;

/* Appends ref to name (of used bytes *n) as event-name characters,
 * stopping at Stripe's limit. */
static void name_add(char *name, size_t *n, const char *ref, size_t max)
{
    for (size_t i = 0; i < max && ref[i] && *n < TG_STRIPE_EVENT_NAME_MAX; i++) {
        unsigned char c = (unsigned char)ref[i];
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) c = '_';
        name[(*n)++] = (char)c;
    }
    name[*n] = '\0';
}

static void name_of(event *e, const char *prefix, const tg_invoice_line *l)
{
    size_t n = 0;
    name_add(e->name, &n, prefix, strlen(prefix));
    if (l) name_add(e->name, &n, l->ref, sizeof l->ref);
}

/* The line's qty as a whole number ("1200", "-3"); false when it is
 * anything else ("14/30 days", "2.5", ""). */
static bool qty_int(const tg_invoice_line *l, int64_t *out)
{
    size_t n = strnlen(l->qty, sizeof l->qty), i = 0;
    bool neg = n && l->qty[0] == '-';
    uint64_t v = 0;
    if (neg) i++;
    if (i == n) return false;
    for (; i < n; i++) {
        if (l->qty[i] < '0' || l->qty[i] > '9') return false;
        if (v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + (uint64_t)(l->qty[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX) return false;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

static int64_t count_of(const tg_invoice_line *l)
{
    int64_t v;
    return qty_int(l, &v) ? v : l->records;
}

/* nano-credits to whole credits, half-up (away from zero below 0). */
static int64_t whole_credits(tg_ncredits c)
{
    uint64_t m = c < 0 ? 0 - (uint64_t)c : (uint64_t)c;
    uint64_t w = m / (uint64_t)TG_NCREDITS_PER_CREDIT;
    if (m % (uint64_t)TG_NCREDITS_PER_CREDIT >= (uint64_t)TG_NCREDITS_PER_CREDIT / 2) w++;
    return c < 0 ? -(int64_t)w : (int64_t)w;
}

/* The event of line i of inv; false when the line is none. */
static bool event_of(const tg_invoice *inv, size_t i, event *e)
{
    const tg_invoice_line *l = &inv->lines[i];
    switch (l->kind) {
    case TG_LINE_USAGE:
        name_of(e, "tollgate_usage", NULL);
        e->value = count_of(l);
        break;
    case TG_LINE_UNIT:
        name_of(e, "tollgate_unit_", l);
        e->value = count_of(l);
        break;
    case TG_LINE_OVERAGE:
        name_of(e, "tollgate_overage_credits", NULL);
        e->value = whole_credits(l->credits);
        break;
    case TG_LINE_LATE:
        name_of(e, "tollgate_late_", l);
        e->value = count_of(l);
        break;
    default: /* fee, included, grant, topup: not usage */
        return false;
    }
    /* amounts are whole cents (bill/close.h); rounding again is a no-op
       then, and keeps the file honest if a stored one were not */
    assert(l->amount % TG_NANOS_PER_CENT == 0);
    e->cents = tg_money_round_cents(l->amount) / TG_NANOS_PER_CENT;
    if (e->value == 0 && e->cents == 0) return false;
    snprintf(e->identifier, sizeof e->identifier, "%.*s-%zu", TG_INVOICE_ID_MAX, inv->id, i + 1);
    /* the period's last second: end_ms is the next period's first instant */
    e->timestamp = inv->end_ms / 1000 - 1;
    return true;
}

static tg_str customer_of(const tg_invoice *inv)
{
    return tg_str_make(inv->customer, strnlen(inv->customer, sizeof inv->customer));
}

typedef int (*emit_fn)(tg_buf *b, const event *e, tg_str customer);

/* Calls emit for every event of d, in invoice then line order; on error
 * cuts out back to its length at start. */
static int each_event(const tg_close_docs *d, tg_buf *out, size_t start, emit_fn emit)
{
    int rc = TG_OK;
    for (size_t k = 0; k < d->ninv && !rc; k++) {
        const tg_invoice *inv = &d->inv[k];
        tg_str cust = customer_of(inv);
        if (!cust.n) continue; /* nobody to bill in Stripe */
        for (size_t i = 0; i < inv->nlines && !rc; i++) {
            event e;
            if (event_of(inv, i, &e)) rc = emit(out, &e, cust);
        }
    }
    if (rc) {
        out->n = start;
        if (out->p) out->p[start] = '\0';
    }
    return rc;
}

/* A whole number as a JSON string: "1200". */
static int json_num_str(tg_buf *b, int64_t v)
{
    int rc = tg_buf_add_char(b, '"');
    if (!rc) rc = tg_buf_add_i64(b, v);
    return rc ? rc : tg_buf_add_char(b, '"');
}

static int emit_json(tg_buf *b, const event *e, tg_str customer)
{
    int rc = tg_buf_add_lit(b, "{\"event_name\":");
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(e->name));
    if (!rc) rc = tg_buf_add_lit(b, ",\"payload\":{\"stripe_customer_id\":");
    if (!rc) rc = tg_jsonw_str(b, customer);
    if (!rc) rc = tg_buf_add_lit(b, ",\"value\":");
    if (!rc) rc = json_num_str(b, e->value);
    if (!rc) rc = tg_buf_add_lit(b, ",\"tollgate_amount_cents\":");
    if (!rc) rc = json_num_str(b, e->cents);
    if (!rc) rc = tg_buf_add_lit(b, "},\"identifier\":");
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(e->identifier));
    if (!rc) rc = tg_buf_add_lit(b, ",\"timestamp\":");
    if (!rc) rc = tg_buf_add_i64(b, e->timestamp);
    return rc ? rc : tg_buf_add_lit(b, "}\n");
}

int tg_stripe_meter_events(const tg_close_docs *d, tg_buf *out)
{
    return each_event(d, out, out->n, emit_json);
}

static int emit_csv(tg_buf *b, const event *e, tg_str customer)
{
    /* tg_report_csv_field reads a C string; the customer is one within
       its array, which customer_of bounded */
    char cust[TG_TAG_MAX + 1];
    snprintf(cust, sizeof cust, "%.*s", TG_STR_FMT(customer));
    int rc = tg_report_csv_field(b, e->identifier);
    if (!rc) rc = tg_buf_printf(b, ",%" PRId64 ",", e->timestamp);
    if (!rc) rc = tg_report_csv_field(b, e->name); /* [a-z0-9_]: never quoted */
    if (!rc) rc = tg_buf_add_char(b, ',');
    if (!rc) rc = tg_report_csv_field(b, cust);
    if (!rc) rc = tg_buf_printf(b, ",%" PRId64 ",%" PRId64 "\r\n", e->value, e->cents);
    return rc;
}

int tg_stripe_meter_events_csv(const tg_close_docs *d, tg_buf *out)
{
    size_t start = out->n;
    int rc = tg_buf_add_lit(out, "identifier,timestamp,event_name,stripe_customer_id,value,"
                                 "tollgate_amount_cents\r\n");
    if (rc) return rc; /* a failed append left out unchanged */
    return each_event(d, out, start, emit_csv);
}
