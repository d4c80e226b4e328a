/* Unit tests for the exports of a closed period: the invoice page
 * (src/report/invoice_html.c) and the Stripe meter events
 * (src/report/stripe.c), on invoices made by hand with tg_invoice_add
 * (which rounds each line's exact amount half-up to cents) and holding
 * every line kind, negative amounts and strings that need escaping.
 * The page: escaped data, the DRAFT mark only on a draft, money with
 * thousands separators to the cent, no external resource. The events:
 * which lines become events, their names, values, cents, identifiers
 * and timestamps, parsed back from the NDJSON, and the CSV byte for
 * byte. Both leave the buffer as it was when it is too small. */
#include "base/json.h"
#include "bill/close.h"
#include "bill/period.h"
#include "report/invoice_html.h"
#include "report/stripe.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#define USD TG_NANOS_PER_USD
#define CR TG_NCREDITS_PER_CREDIT
#define BUF_MAX (1u << 20)

static int64_t utc(const char *s)
{
    int64_t ms;
    assert_int_equal(tg_utc_parse(tg_str_c(s), &ms), TG_OK);
    return ms;
}

static void add(tg_invoice *inv, tg_line_kind k, const char *ref, const char *desc, const char *qty,
                tg_nanos unit_price, tg_nanos exact, tg_ncredits credits, int64_t records)
{
    tg_invoice_line l = {.kind = k, .unit_price = unit_price, .exact = exact, .credits = credits,
                         .records = records};
    snprintf(l.ref, sizeof l.ref, "%s", ref);
    snprintf(l.desc, sizeof l.desc, "%s", desc);
    snprintf(l.qty, sizeof l.qty, "%s", qty);
    assert_int_equal(tg_invoice_add(inv, &l), TG_OK);
}

static void head(tg_invoice *inv, const char *id, const char *app, const char *customer,
                 const char *plan)
{
    memset(inv, 0, sizeof *inv);
    snprintf(inv->id, sizeof inv->id, "%s", id);
    snprintf(inv->period, sizeof inv->period, "2026-11");
    snprintf(inv->app, sizeof inv->app, "%s", app);
    snprintf(inv->customer, sizeof inv->customer, "%s", customer);
    snprintf(inv->plan, sizeof inv->plan, "%s", plan);
    inv->start_ms = utc("2026-11-01");
    inv->end_ms = utc("2026-12-01");
}

/* subtotal = sum of the rounded amounts, as tg_invoice_make keeps it */
static void totals(tg_invoice *inv, tg_nanos tax)
{
    inv->subtotal = inv->exact = 0;
    for (size_t i = 0; i < inv->nlines; i++) {
        inv->subtotal += inv->lines[i].amount;
        inv->exact += inv->lines[i].exact;
    }
    inv->tax = tax;
    inv->total = inv->subtotal + tax;
}

/* Every line kind; its lines' cents add up to $1,234.56. */
static void acme(tg_invoice *inv)
{
    head(inv, "INV-2026-11-00001", "chat", "<acme & \"co\">", "pro");
    /* 1 */ add(inv, TG_LINE_FEE, "pro", "Plan pro, 2026-11-01 to 2026-11-30", "30/30 days",
                49 * USD, 49 * USD, 0, 0);
    /* 2: 1163.385 rounds half-up to 1163.39 */
    add(inv, TG_LINE_USAGE, "", "AI usage <script>alert(1)</script>", "1200", -1,
        1163385000000LL, 0, 1200);
    /* 3 */ add(inv, TG_LINE_UNIT, "Report-X", "Report-X: 7 x $0.25", "7", 250000000, 1750000000,
                0, 5);
    /* 4 */ add(inv, TG_LINE_INCLUDED, "", "Included credits: 100 of 100 used", "100", -1, 0,
                100 * CR, 0);
    /* 5 */ add(inv, TG_LINE_GRANT, "g_abc", "Credits from promo grant g_abc", "10", -1, 0,
                10 * CR, 0);
    /* 6: 12.5 credits x $0.0375 = $0.46875 -> $0.47; 12.5 credits -> 13 */
    add(inv, TG_LINE_OVERAGE, "pro", "Overage: 12.5 credits x $0.0375", "12.5", 37500000,
        468750000, 12 * CR + CR / 2, 0);
    /* 7 */ add(inv, TG_LINE_TOPUP, "g_top", "Top-up g_top: 50 credits", "50", -1, 20 * USD,
                50 * CR, 0);
    /* 8: -$0.045 rounds away from zero to -$0.05 */
    add(inv, TG_LINE_LATE, "2026-10", "Usage of 2026-10 recorded late & 'corrected'", "3", -1,
        -45000000, 0, 3);
    /* 9, 10: nothing to meter and nothing billed */
    add(inv, TG_LINE_UNIT, "page", "page: 0 units", "0", -1, 0, 0, 0);
    add(inv, TG_LINE_OVERAGE, "", "Overage: 0.4 credits, not billed", "0.4", -1, 0, 4 * CR / 10, 0);
    totals(inv, 0);
    assert_int_equal(inv->subtotal, 123456 * TG_NANOS_PER_CENT);
}

/* A customer that needs CSV quoting; an overage too small for a whole
 * credit but billed; a qty that is not a number; a unit name past
 * Stripe's event name length. */
static void beta(tg_invoice *inv)
{
    head(inv, "INV-2026-11-00002", "chat's app", "beta, \"inc\"", "");
    add(inv, TG_LINE_OVERAGE, "pro", "Overage: 0.4 credits x $0.05", "0.4", 50000000, 20000000,
        4 * CR / 10, 0);
    add(inv, TG_LINE_USAGE, "", "AI usage", "1.5k", -1, 3 * USD, 0, 1500);
    char ref[TG_TAG_MAX + 1];
    memset(ref, 'A', TG_TAG_MAX);
    ref[TG_TAG_MAX] = '\0';
    add(inv, TG_LINE_UNIT, ref, "a long unit", "2", -1, 0, 0, 2);
    totals(inv, 0);
}

/* No customer: billed to nobody, exported to nobody. */
static void nobody(tg_invoice *inv)
{
    head(inv, "INV-2026-11-00003", "chat", "", "");
    add(inv, TG_LINE_USAGE, "", "AI usage", "5", -1, 1 * USD, 0, 5);
    totals(inv, 0);
}

static size_t count(const char *hay, const char *needle)
{
    size_t c = 0, n = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + n, needle)) c++;
    return c;
}

static void has(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("missing: %s", needle);
}

static void hasnt(const char *hay, const char *needle)
{
    if (strstr(hay, needle)) fail_msg("unexpected: %s", needle);
}

static const tg_close_state draft = {.period = "2026-11", .closed_ms = 1796169600000LL};
static const tg_close_state final = {.period = "2026-11", .finalized = true,
                                     .closed_ms = 1796169600000LL,
                                     .finalized_ms = 1796212800000LL}; /* 2026-12-02T12:00Z */

/* ---- the page ---- */

static void test_html_draft(void **state)
{
    (void)state;
    tg_invoice inv;
    acme(&inv);
    tg_buf b;
    tg_buf_init(&b, BUF_MAX);
    assert_int_equal(tg_invoice_html(&inv, &draft, &b), TG_OK);
    const char *h = b.p;
    assert_int_equal(strlen(h), b.n);
    assert_true(!strncmp(h, "<!DOCTYPE html>\n", 16));
    assert_true(b.n > 8 && !strcmp(h + b.n - 8, "</html>\n"));
    has(h, "<h1>Invoice INV-2026-11-00001</h1>");
    has(h, "DRAFT");
    hasnt(h, "Finalized");
    /* data escaped, never raw */
    has(h, "Customer <strong>&lt;acme &amp; &quot;co&quot;&gt;</strong>");
    hasnt(h, "<acme");
    hasnt(h, "\"co\"");
    has(h, "AI usage &lt;script&gt;alert(1)&lt;/script&gt;");
    hasnt(h, "<script");
    has(h, "recorded late &amp; &#39;corrected&#39;");
    /* the period's first and last day; the plan */
    has(h, "<dt>Period</dt><dd>2026-11-01 to 2026-11-30</dd>");
    has(h, "<p>Plan pro</p>");
    /* the lines: number, description, quantity, unit price, amount */
    has(h, "<td class=\"n\">1</td><td>Plan pro, 2026-11-01 to 2026-11-30</td>"
           "<td class=\"num\">30/30 days</td><td class=\"num\">$49.00</td>"
           "<td class=\"num\">$49.00</td></tr>");
    has(h, "<td class=\"num\">1200</td><td class=\"num\"></td>"
           "<td class=\"num\">$1,163.39</td></tr>");
    has(h, "<td class=\"num\">7</td><td class=\"num\">$0.25</td><td class=\"num\">$1.75</td></tr>");
    has(h, "<td class=\"num\">12.5</td><td class=\"num\">$0.0375</td>"
           "<td class=\"num\">$0.47</td></tr>");
    has(h, "<td class=\"num\">100</td><td class=\"num\"></td><td class=\"num\">$0.00</td></tr>");
    has(h, "<td class=\"num\">$20.00</td></tr>");
    has(h, "<td class=\"n\">8</td>");
    has(h, "<td class=\"num\">3</td><td class=\"num\"></td><td class=\"num\">-$0.05</td></tr>");
    assert_int_equal(count(h, "<td class=\"n\">"), inv.nlines);
    assert_int_equal(count(h, "<tr class=\"info k-"), 2); /* included, grant */
    /* totals */
    has(h, "<tr><th>Subtotal</th><td class=\"num\">$1,234.56</td></tr>");
    has(h, "<tr><th>Tax</th><td class=\"num nc\">not computed</td></tr>");
    has(h, "<th>Total (USD)</th><td class=\"num\">$1,234.56</td>");
    /* standalone and printable */
    has(h, "@media print");
    has(h, "@page");
    hasnt(h, "src=");
    hasnt(h, "href=");
    hasnt(h, "url(");
    hasnt(h, "@import");
    tg_buf_release(&b);
    tg_invoice_release(&inv);
}

static void test_html_final(void **state)
{
    (void)state;
    tg_invoice inv;
    acme(&inv);
    tg_buf b;
    tg_buf_init(&b, BUF_MAX);
    assert_int_equal(tg_invoice_html(&inv, &final, &b), TG_OK);
    hasnt(b.p, "DRAFT");
    has(b.p, "<p class=\"status\">Finalized 2026-12-02</p>");
    has(b.p, "$1,234.56");
    /* a tax, when there is one, is an amount and counts in the total */
    totals(&inv, 10 * USD);
    tg_buf_clear(&b);
    assert_int_equal(tg_invoice_html(&inv, &final, &b), TG_OK);
    hasnt(b.p, "not computed");
    has(b.p, "<tr><th>Tax</th><td class=\"num\">$10.00</td></tr>");
    has(b.p, "<th>Total (USD)</th><td class=\"num\">$1,244.56</td>");
    tg_buf_release(&b);
    tg_invoice_release(&inv);

    beta(&inv);
    tg_buf_init(&b, BUF_MAX);
    assert_int_equal(tg_invoice_html(&inv, &final, &b), TG_OK);
    has(b.p, "<h2>From</h2>\n<p><strong>chat&#39;s app</strong></p>");
    has(b.p, "beta, &quot;inc&quot;");
    hasnt(b.p, "<p>Plan"); /* no plan */
    tg_buf_release(&b);
    tg_invoice_release(&inv);
}

static void test_html_money(void **state)
{
    (void)state;
    static const struct {
        tg_nanos exact;
        const char *shown;
    } m[] = {
        {0, "$0.00"},
        {TG_NANOS_PER_CENT, "$0.01"},
        {-TG_NANOS_PER_CENT / 2, "-$0.01"}, /* half a cent, away from zero */
        {TG_NANOS_PER_CENT / 2 - 1, "$0.00"},
        {99999 * TG_NANOS_PER_CENT, "$999.99"},
        {1000 * USD, "$1,000.00"},
        {100000 * USD, "$100,000.00"},
        {-1000000 * USD, "-$1,000,000.00"},
        {1234567890LL * USD + 120000000, "$1,234,567,890.12"},
    };
    tg_invoice inv;
    head(&inv, "INV-1", "a", "c", "");
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        add(&inv, TG_LINE_USAGE, "", "x", "1", -1, m[i].exact, 0, 1);
    add(&inv, TG_LINE_UNIT, "u", "&<>\"'", "1", 1, 0, 0, 1); /* a one-nano price */
    totals(&inv, 0);
    tg_buf b;
    tg_buf_init(&b, BUF_MAX);
    assert_int_equal(tg_invoice_html(&inv, &draft, &b), TG_OK);
    for (size_t i = 0; i < sizeof m / sizeof *m; i++) {
        char want[256];
        snprintf(want, sizeof want, "<td class=\"n\">%zu</td><td>x</td><td class=\"num\">1</td>"
                 "<td class=\"num\"></td><td class=\"num\">%s</td></tr>", i + 1, m[i].shown);
        has(b.p, want);
    }
    has(b.p, "<td>&amp;&lt;&gt;&quot;&#39;</td><td class=\"num\">1</td>"
             "<td class=\"num\">$0.000000001</td>");
    /* 0 + 0.01 - 0.01 + 0 + 999.99 + 1000 + 100000 - 1000000 + 1234567890.12 */
    has(b.p, "<tr><th>Subtotal</th><td class=\"num\">$1,233,669,890.11</td></tr>");
    tg_buf_release(&b);
    tg_invoice_release(&inv);

    /* an empty invoice still is a page */
    head(&inv, "INV-2", "a", "c", "");
    totals(&inv, 0);
    tg_buf_init(&b, BUF_MAX);
    assert_int_equal(tg_invoice_html(&inv, &draft, &b), TG_OK);
    has(b.p, "No charges in this period");
    has(b.p, "<th>Total (USD)</th><td class=\"num\">$0.00</td>");
    tg_buf_release(&b);
}

static void test_html_too_big(void **state)
{
    (void)state;
    tg_invoice inv;
    acme(&inv);
    tg_buf b;
    tg_buf_init(&b, 4000); /* the page is larger than that */
    assert_int_equal(tg_buf_add_lit(&b, "before"), TG_OK);
    assert_int_equal(tg_invoice_html(&inv, &draft, &b), TG_ETOOBIG);
    assert_int_equal(b.n, 6);
    assert_string_equal(b.p, "before");
    tg_buf_release(&b);
    tg_invoice_release(&inv);
}

/* ---- meter events ---- */

typedef struct {
    const char *identifier, *name, *customer;
    int64_t value, cents;
} want_ev;

static const want_ev want[] = {
    {"INV-2026-11-00001-2", "tollgate_usage", "<acme & \"co\">", 1200, 116339},
    {"INV-2026-11-00001-3", "tollgate_unit_report_x", "<acme & \"co\">", 7, 175},
    {"INV-2026-11-00001-6", "tollgate_overage_credits", "<acme & \"co\">", 13, 47},
    {"INV-2026-11-00001-8", "tollgate_late_2026_10", "<acme & \"co\">", 3, -5},
    {"INV-2026-11-00002-1", "tollgate_overage_credits", "beta, \"inc\"", 0, 2},
    {"INV-2026-11-00002-2", "tollgate_usage", "beta, \"inc\"", 1500, 300},
    {"INV-2026-11-00002-3", NULL /* long_name() */, "beta, \"inc\"", 2, 0},
};
#define NWANT (sizeof want / sizeof *want)

/* The event name of beta's unit of 128 'A's: cut at Stripe's 100. */
static const char *long_name(void)
{
    static char s[101];
    memcpy(s, "tollgate_unit_", 14);
    memset(s + 14, 'a', 86);
    s[100] = '\0';
    return s;
}
#define PERIOD_END_S 1796083199 /* 2026-11-30T23:59:59Z */

static void docs(tg_close_docs *d, tg_invoice inv[3])
{
    acme(&inv[0]);
    beta(&inv[1]);
    nobody(&inv[2]);
    memset(d, 0, sizeof *d);
    d->st = final;
    d->inv = inv;
    d->ninv = 3;
}

static void release(tg_invoice inv[3])
{
    for (int i = 0; i < 3; i++) tg_invoice_release(&inv[i]);
}

static void str_of(tg_json_val obj, const char *key, char *out, size_t cap)
{
    tg_json_val v = tg_json_get(obj, tg_str_c(key));
    if (v.type != TG_JSON_STRING) fail_msg("%s: not a string", key);
    tg_buf s;
    tg_buf_init(&s, cap - 1);
    assert_int_equal(tg_json_str_decode(v, &s), TG_OK);
    memcpy(out, s.p ? s.p : "", s.n);
    out[s.n] = '\0';
    tg_buf_release(&s);
}

static int64_t int_of(tg_json_val obj, const char *key)
{
    char s[32];
    str_of(obj, key, s, sizeof s);
    long long v;
    int used = -1;
    if (sscanf(s, "%lld%n", &v, &used) != 1 || used != (int)strlen(s))
        fail_msg("%s: \"%s\" is not a whole number", key, s);
    return v;
}

static void valid_name(const char *s)
{
    size_t n = strlen(s);
    assert_true(n > 0 && n <= 100);
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            fail_msg("event name %s: byte %zu", s, i);
}

static void test_meter_events(void **state)
{
    (void)state;
    tg_invoice inv[3];
    tg_close_docs d;
    docs(&d, inv);
    tg_buf b;
    tg_buf_init(&b, BUF_MAX);
    assert_int_equal(tg_stripe_meter_events(&d, &b), TG_OK);
    assert_true(b.n > 0 && b.p[b.n - 1] == '\n');
    assert_int_equal(count(b.p, "\n"), NWANT);

    char ids[NWANT][64];
    const char *line = b.p;
    for (size_t i = 0; i < NWANT; i++) {
        const char *nl = strchr(line, '\n');
        size_t n = (size_t)(nl - line);
        assert_int_equal(tg_json_validate(line, n, TG_JSON_NO_DUP_TOPLEVEL, NULL, NULL), TG_OK);
        tg_json_val ev = tg_json_root(line, n), pl = tg_json_get(ev, TG_STR("payload"));
        assert_int_equal(pl.type, TG_JSON_OBJECT);
        char name[128], cust[160];
        str_of(ev, "event_name", name, sizeof name);
        str_of(ev, "identifier", ids[i], sizeof ids[i]);
        str_of(pl, "stripe_customer_id", cust, sizeof cust);
        valid_name(name);
        assert_string_equal(name, want[i].name ? want[i].name : long_name());
        assert_string_equal(ids[i], want[i].identifier);
        assert_string_equal(cust, want[i].customer);
        assert_int_equal(int_of(pl, "value"), want[i].value);
        assert_int_equal(int_of(pl, "tollgate_amount_cents"), want[i].cents);
        int64_t ts;
        assert_int_equal(tg_json_int(tg_json_get(ev, TG_STR("timestamp")), &ts), TG_OK);
        assert_int_equal(ts, PERIOD_END_S);
        assert_int_equal(ts, inv[0].end_ms / 1000 - 1);
        /* exactly these members, values as strings (Stripe's payload is
           a map of strings) */
        size_t members = 0, pmembers = 0;
        tg_json_iter it = tg_json_iter_init(ev);
        tg_json_val k, v;
        while (tg_json_iter_next(&it, &k, &v)) members++;
        it = tg_json_iter_init(pl);
        while (tg_json_iter_next(&it, &k, &v)) {
            assert_int_equal(v.type, TG_JSON_STRING);
            pmembers++;
        }
        assert_int_equal(members, 4);
        assert_int_equal(pmembers, 3);
        line = nl + 1;
    }
    for (size_t i = 0; i < NWANT; i++)
        for (size_t j = i + 1; j < NWANT; j++) assert_string_not_equal(ids[i], ids[j]);
    /* not usage: the fee (1), included (4), grant (5), top-up (7); nothing
       metered nor billed (9, 10); no customer (invoice 3) */
    static const char *const skipped[] = {"-00001-1\"", "-00001-4\"", "-00001-5\"", "-00001-7\"",
                                          "-00001-9\"", "-00001-10\"", "INV-2026-11-00003"};
    for (size_t i = 0; i < sizeof skipped / sizeof *skipped; i++) hasnt(b.p, skipped[i]);
    /* the raw JSON escapes the customer */
    has(b.p, "\"payload\":{\"stripe_customer_id\":\"<acme & \\\"co\\\">\",\"value\":\"1200\","
             "\"tollgate_amount_cents\":\"116339\"}");
    /* the same twice: deterministic */
    tg_buf again;
    tg_buf_init(&again, BUF_MAX);
    assert_int_equal(tg_stripe_meter_events(&d, &again), TG_OK);
    assert_int_equal(again.n, b.n);
    assert_memory_equal(again.p, b.p, b.n);
    tg_buf_release(&again);
    tg_buf_release(&b);
    release(inv);
}

static void test_meter_events_csv(void **state)
{
    (void)state;
    tg_invoice inv[3];
    tg_close_docs d;
    docs(&d, inv);
    tg_buf b;
    tg_buf_init(&b, BUF_MAX);
    assert_int_equal(tg_stripe_meter_events_csv(&d, &b), TG_OK);
    const char *expect =
        "identifier,timestamp,event_name,stripe_customer_id,value,tollgate_amount_cents\r\n"
        "INV-2026-11-00001-2,1796083199,tollgate_usage,\"<acme & \"\"co\"\">\",1200,116339\r\n"
        "INV-2026-11-00001-3,1796083199,tollgate_unit_report_x,\"<acme & \"\"co\"\">\",7,175\r\n"
        "INV-2026-11-00001-6,1796083199,tollgate_overage_credits,\"<acme & \"\"co\"\">\",13,47\r\n"
        "INV-2026-11-00001-8,1796083199,tollgate_late_2026_10,\"<acme & \"\"co\"\">\",3,-5\r\n"
        "INV-2026-11-00002-1,1796083199,tollgate_overage_credits,\"beta, \"\"inc\"\"\",0,2\r\n"
        "INV-2026-11-00002-2,1796083199,tollgate_usage,\"beta, \"\"inc\"\"\",1500,300\r\n"
        "INV-2026-11-00002-3,1796083199,%s,\"beta, \"\"inc\"\"\",2,0\r\n";
    char full[2048];
    snprintf(full, sizeof full, expect, long_name());
    assert_string_equal(b.p, full);
    tg_buf_release(&b);

    /* no invoices: the header alone */
    tg_close_docs empty = {.st = draft};
    tg_buf_init(&b, BUF_MAX);
    assert_int_equal(tg_stripe_meter_events_csv(&empty, &b), TG_OK);
    assert_string_equal(b.p,
                        "identifier,timestamp,event_name,stripe_customer_id,value,"
                        "tollgate_amount_cents\r\n");
    tg_buf_clear(&b);
    assert_int_equal(tg_stripe_meter_events(&empty, &b), TG_OK);
    assert_int_equal(b.n, 0);
    tg_buf_release(&b);
    release(inv);
}

static void test_meter_events_too_big(void **state)
{
    (void)state;
    tg_invoice inv[3];
    tg_close_docs d;
    docs(&d, inv);
    tg_buf b;
    tg_buf_init(&b, 300); /* room for the CSV header and a line or two */
    assert_int_equal(tg_buf_add_lit(&b, "x"), TG_OK);
    assert_int_equal(tg_stripe_meter_events(&d, &b), TG_ETOOBIG);
    assert_int_equal(b.n, 1);
    assert_string_equal(b.p, "x");
    assert_int_equal(tg_stripe_meter_events_csv(&d, &b), TG_ETOOBIG);
    assert_int_equal(b.n, 1);
    assert_string_equal(b.p, "x");
    tg_buf_release(&b);
    release(inv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_html_draft),        cmocka_unit_test(test_html_final),
        cmocka_unit_test(test_html_money),        cmocka_unit_test(test_html_too_big),
        cmocka_unit_test(test_meter_events),      cmocka_unit_test(test_meter_events_csv),
        cmocka_unit_test(test_meter_events_too_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
