/* Closing a period (src/bill/close.c, invoice.c, payout.c, store/close.c)
 * on a real SQLite store, against a model the test keeps of what it put
 * there: a randomized month of 10,000 customers over two apps (one with
 * periods from the 15th), five plans (fee, allowance, overage or none),
 * plan changes mid-period, paid and promotional grants, action units,
 * attempt and interrupted records and usage no customer is billed for.
 *
 * Invariants checked: every record's charge == cost + margin + fee, so
 * every statement row's; invoice lines are rounded once each and sum to
 * the total; statement rows add up in nanos and in cents; the providers'
 * settlements sum to the statements' cost, in nanos and in cents; every
 * invoice's usage equals the model's; plan customers' credit lines account
 * for every credit consumed; fees are prorated by day; closing twice
 * changes nothing; a finalized period is not closed again; periods close
 * in order; usage recorded after a finalized close lands in the next
 * period with a line that says so, and the finalized documents stay as
 * they were. */
#include "base/money.h"
#include "base/rng.h"
#include "bill/close.h"
#include "bill/credits.h"
#include "report/docs.h"
#include "report/explain_invoice.h"
#include "store/close.h"
#include "store/plans.h"
#include "store/store.h"
#include "store/wallet.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CR TG_NCREDITS_PER_CREDIT
#define DAY 86400000LL
#define NCUST 10000
#define NRECS 120000

static const char conf_text[] =
    "providers:\n"
    "  - {name: p1, base_url: \"http://x\"}\n"
    "  - {name: p2, base_url: \"http://y\"}\n"
    "offerings:\n"
    "  - {id: o1, provider: p1, model: m1, price: {input: \"1\", output: \"2\"}}\n"
    "  - {id: o2, provider: p2, model: m2, price: {input: \"3\", output: \"4\"}}\n"
    "  - {id: o3, provider: p2, model: m3, price: {input: \"5\", output: \"6\"}}\n"
    "models:\n"
    "  - {name: fast, offerings: [o1]}\n"
    "  - {name: premium, offerings: [o2, o3]}\n"
    "plans:\n"
    "  - {id: starter, fee: \"29\", included_credits: 500, credit: \"0.01\", overage: \"0.08\"}\n"
    "  - {id: pro, fee: \"99\", included_credits: 2500, credit: \"0.04\", overage: \"0.06\",\n"
    "     unit_credits: {report: 5}}\n"
    "  - {id: capped, fee: \"10.50\", included_credits: 100, credit: \"0.01\"}\n"
    "  - {id: metered, credit: \"0.001\", overage: \"0.0011\"}\n"
    "apps:\n"
    "  - {id: a1, create_customers: true}\n"
    "  - {id: a2, create_customers: true, period_anchor_day: 15}\n"
    "customers:\n"
    "  - {id: file-pro, app: a1, plan: pro}\n";

static const char *const plan_ids[] = {"", "starter", "pro", "capped", "metered"};

static char dir[64];
static int64_t nov1, dec1, nov15, dec15, oct1;
static tg_config *cfg;

static void terms(void *ud, tg_str app, tg_str plan, tg_store_terms *out)
{
    (void)ud;
    const tg_app *a = tg_config_app(cfg, app);
    const tg_plan *p = plan.n ? tg_config_plan(cfg, plan) : NULL;
    out->anchor_day = a ? a->period_anchor_day : 1;
    out->included = p ? p->included : 0;
}

static int64_t utc(int y, int m, int d)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
    return (int64_t)timegm(&tm) * 1000;
}

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/tg-test-close-XXXXXX");
    assert_non_null(mkdtemp(dir));
    oct1 = utc(2026, 10, 1);
    nov1 = utc(2026, 11, 1);
    nov15 = utc(2026, 11, 15);
    dec1 = utc(2026, 12, 1);
    dec15 = utc(2026, 12, 15);
    tg_errmsg err;
    if (tg_config_parse("close.yaml", tg_str_c(conf_text), &cfg, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tg_config_unref(cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- the model ---- */

typedef struct {
    char app[8], id[16];
    int plan0, plan1;        /* plan before and from change_ms (indexes of plan_ids) */
    int64_t change_ms;       /* 0: no change */
    int64_t records, late_records;
    tg_nanos charge, cost, margin, fee, late_charge, late_cost;
    tg_ncredits credits, late_credits;
    tg_nanos paid;           /* paid top-ups made in the period */
    int bought;              /* and how many */
    bool has_history;        /* put on its plan through the API before the period */
} cust;

static cust *cs;
static tg_nanos all_cost; /* every record of the period, billed to a customer or not */

static int64_t period_start(const cust *c) { return strcmp(c->app, "a2") ? nov1 : nov15; }
static int64_t period_end(const cust *c) { return strcmp(c->app, "a2") ? dec1 : dec15; }

static int plan_at(const cust *c, int64_t t) { return c->change_ms && t >= c->change_ms ? c->plan1 : c->plan0; }

static uint64_t seq;

static void make_rec(tg_rng *g, const cust *c, int64_t t, tg_usage_rec *r)
{
    memset(r, 0, sizeof *r);
    uint64_t i = ++seq;
    for (int b = 0; b < 6; b++) r->id[b] = (uint8_t)((uint64_t)t >> (40 - 8 * b));
    for (int b = 0; b < 8; b++) r->id[8 + b] = (uint8_t)(i >> (56 - 8 * b));
    snprintf(r->rid, sizeof r->rid, "r%llu", (unsigned long long)i);
    snprintf(r->tags.app, sizeof r->tags.app, "%s", c ? c->app : "a1");
    snprintf(r->tags.customer, sizeof r->tags.customer, "%s", c ? c->id : "");
    int p = c ? plan_at(c, t) : 0;
    snprintf(r->tags.plan, sizeof r->tags.plan, "%s", plan_ids[p]);
    unsigned m = (unsigned)tg_rng_below(g, 3);
    snprintf(r->model, sizeof r->model, "%s", m ? "premium" : "fast");
    snprintf(r->offering, sizeof r->offering, "o%u", m + 1);
    snprintf(r->provider, sizeof r->provider, "p%u", m ? 2 : 1);
    r->status = 200;
    r->t_start_ms = t;
    r->tokens.prompt = (int64_t)tg_rng_below(g, 4000);
    r->tokens.cached = (int64_t)tg_rng_below(g, (uint64_t)r->tokens.prompt / 2 + 1);
    r->tokens.completion = (int64_t)tg_rng_below(g, 1500);
    r->outcome = tg_rng_below(g, 20) == 0 ? TG_OUT_INTERRUPTED : TG_OUT_COMPLETED;
    r->cost = (int64_t)tg_rng_below(g, 20000000);
    r->attempt = tg_rng_below(g, 15) == 0;
    if (r->attempt) {
        r->attempts = 1;
        r->margin = -r->cost; /* an attempt record charges nothing */
    } else {
        r->attempts = 1;
        r->fee = (int64_t)tg_rng_below(g, 200000);
        /* sometimes a loss: margin down to -(cost + fee), so charge >= 0 */
        r->margin = (int64_t)tg_rng_below(g, 30000000) - (int64_t)tg_rng_below(g, (uint64_t)(r->cost + r->fee) + 1);
        if (tg_rng_below(g, 6) == 0) {
            strcpy(r->tags.unit, "report");
            r->tags.unit_count = 1 + (int64_t)tg_rng_below(g, 3);
        }
    }
    r->charge = r->cost + r->margin + r->fee;
    r->asked_cost = r->attempt ? 0 : r->cost;
    const tg_plan *pl = p ? tg_config_plan(cfg, tg_str_c(plan_ids[p])) : NULL;
    assert_int_equal(tg_credits_of(pl, tg_str_c(r->tags.unit), r->tags.unit_count, r->charge, &r->credits),
                     TG_OK);
}

static void count(cust *c, const tg_usage_rec *r, bool late)
{
    if (late) {
        c->late_records++;
        c->late_charge += r->charge;
        c->late_cost += r->cost;
        c->late_credits += r->credits;
        return;
    }
    c->records++;
    c->charge += r->charge;
    c->cost += r->cost;
    c->margin += r->margin;
    c->fee += r->fee;
    c->credits += r->credits;
}

static tg_store *open_store_named(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    tg_store *s;
    tg_errmsg err;
    assert_int_equal(tg_store_open(path, TG_STORE_RW, &s, &err), TG_OK);
    tg_store_set_terms(s, terms, NULL);
    return s;
}

static tg_store *open_store(void) { return open_store_named("ledger.db"); }

static int cmp_rec_t(const void *a, const void *b)
{
    const tg_usage_rec *x = a, *y = b;
    return memcmp(x->id, y->id, TG_RECORD_ID_LEN);
}

static void put_all(tg_store *s, tg_usage_rec *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_rec_t);
    tg_errmsg err;
    for (size_t i = 0; i < n; i += 4096) {
        size_t k = n - i < 4096 ? n - i : 4096;
        if (tg_store_put(s, v + i, k, &err)) fail_msg("%s", err.msg);
    }
}

static void add_grant(tg_store *s, cust *c, const char *id, tg_grant_kind kind, int64_t created,
                      tg_ncredits credits, tg_nanos paid)
{
    tg_grant g = {.kind = kind, .created_ms = created, .granted = credits, .left = credits};
    snprintf(g.id, sizeof g.id, "%s", id);
    tg_errmsg err;
    assert_int_equal(tg_store_add_grant(s, tg_str_c(c->app), tg_str_c(c->id), &g, paid,
                                        TG_STR("test"), created, &err),
                     TG_OK);
    if (kind == TG_GRANT_PAID && created >= period_start(c) && created < period_end(c)) {
        c->paid += paid;
        c->bought++;
    }
}

/* The month: customers, their plans and grants, and their records. */
static void build(tg_store *s, tg_rng *g)
{
    cs = calloc(NCUST + 1, sizeof *cs);
    assert_non_null(cs);
    tg_errmsg err;
    for (int i = 0; i < NCUST; i++) {
        cust *c = &cs[i];
        snprintf(c->app, sizeof c->app, "%s", i % 4 == 3 ? "a2" : "a1");
        snprintf(c->id, sizeof c->id, "c%05d", i);
        c->plan0 = c->plan1 = (int)tg_rng_below(g, 5);
        if (tg_rng_below(g, 10) == 0) {
            c->plan1 = (int)tg_rng_below(g, 5);
            c->change_ms = period_start(c) + (int64_t)(1 + tg_rng_below(g, 27)) * DAY +
                           (int64_t)tg_rng_below(g, DAY);
        }
        /* most go on their plan before the period (history from then);
         * the others are created by their first record, on its plan */
        c->has_history = c->change_ms || tg_rng_below(g, 3) != 0;
        if (c->has_history)
            assert_int_equal(tg_store_customer_plan(s, tg_str_c(c->app), tg_str_c(c->id),
                                                    tg_str_c(plan_ids[c->plan0]), oct1 - 5 * DAY, &err),
                             TG_OK);
        if (c->change_ms)
            assert_int_equal(tg_store_customer_plan(s, tg_str_c(c->app), tg_str_c(c->id),
                                                    tg_str_c(plan_ids[c->plan1]), c->change_ms, &err),
                             TG_OK);
        if (tg_rng_below(g, 8) == 0) {
            char id[32];
            snprintf(id, sizeof id, "g_paid_%d", i);
            add_grant(s, c, id, TG_GRANT_PAID, period_start(c) + (int64_t)tg_rng_below(g, 20 * DAY),
                      (1 + (tg_ncredits)tg_rng_below(g, 300)) * CR, (tg_nanos)tg_rng_below(g, 90000000000));
        }
        if (tg_rng_below(g, 12) == 0) {
            char id[32];
            snprintf(id, sizeof id, "g_promo_%d", i);
            add_grant(s, c, id, TG_GRANT_PROMO, oct1, (1 + (tg_ncredits)tg_rng_below(g, 100)) * CR, 0);
        }
    }
    /* a customer only its records know, and records of the month before */
    tg_usage_rec *v = calloc(NRECS, sizeof *v);
    assert_non_null(v);
    for (size_t k = 0; k < NRECS; k++) {
        bool unbilled = tg_rng_below(g, 100) == 0;
        cust *c = unbilled ? NULL : &cs[tg_rng_below(g, NCUST)];
        int64_t start = c ? period_start(c) : nov1, end = c ? period_end(c) : dec1;
        bool before = tg_rng_below(g, 50) == 0;
        /* a customer created by its first record has no history: its
         * records start in the period */
        int64_t t = before && c && c->has_history ? start - 1 - (int64_t)tg_rng_below(g, 10 * DAY)
                                                  : start + (int64_t)tg_rng_below(g, (uint64_t)(end - start));
        make_rec(g, c, t, &v[k]);
        if (t >= start) {
            if (c) count(c, &v[k], false);
            all_cost += v[k].cost;
        }
    }
    put_all(s, v, NRECS);
    free(v);
}

/* ---- checks ---- */

static cust *find_cust(const char *app, const char *id)
{
    for (int i = 0; i < NCUST; i++)
        if (!strcmp(cs[i].app, app) && !strcmp(cs[i].id, id)) return &cs[i];
    return NULL;
}

/* The plan a customer is billed by from day t (the model: history, or the
 * plan of its first record from the day of that record). */
static const tg_plan *plan_of(int p) { return p ? tg_config_plan(cfg, tg_str_c(plan_ids[p])) : NULL; }

static void check_invoice(const tg_invoice *inv, const cust *c, bool with_late)
{
    tg_nanos subtotal = 0, exact = 0, fee_exact = 0;
    tg_ncredits credit_lines = 0;
    for (size_t i = 0; i < inv->nlines; i++) {
        const tg_invoice_line *l = &inv->lines[i];
        assert_int_equal(l->amount, tg_money_round_cents(l->exact));
        subtotal += l->amount;
        exact += l->exact;
        if (l->kind == TG_LINE_FEE) fee_exact += l->exact;
        if (l->kind == TG_LINE_INCLUDED || l->kind == TG_LINE_GRANT || l->kind == TG_LINE_OVERAGE)
            credit_lines += l->credits;
    }
    assert_int_equal(subtotal, inv->subtotal);
    assert_int_equal(exact, inv->exact);
    assert_int_equal(inv->total, inv->subtotal + inv->tax);
    assert_int_equal(inv->records, c->records + (with_late ? c->late_records : 0));
    assert_int_equal(inv->charge, c->charge + (with_late ? c->late_charge : 0));
    assert_int_equal(inv->cost, c->cost + (with_late ? c->late_cost : 0));
    assert_int_equal(inv->credits, c->credits);
    /* fees by day */
    int64_t days = (period_end(c) - period_start(c)) / DAY;
    tg_nanos want_fee = 0, part;
    if (c->has_history) {
        int64_t cut = c->change_ms ? c->change_ms - c->change_ms % DAY : period_end(c);
        const tg_plan *p0 = plan_of(c->plan0), *p1 = plan_of(c->plan1);
        if (p0 && p0->fee) {
            if (p1 == p0) cut = period_end(c);
            assert_int_equal(tg_money_muldiv(p0->fee, (cut - period_start(c)) / DAY, days, &part), TG_OK);
            want_fee += part;
        }
        if (p1 && p1->fee && p1 != p0) {
            assert_int_equal(tg_money_muldiv(p1->fee, (period_end(c) - cut) / DAY, days, &part), TG_OK);
            want_fee += part;
        }
        assert_int_equal(fee_exact, want_fee);
    }
    bool on_plan = false;
    for (size_t i = 0; i < inv->nlines; i++) on_plan |= inv->lines[i].kind == TG_LINE_FEE ||
                                                        inv->lines[i].kind == TG_LINE_INCLUDED;
    if (c->has_history && !c->change_ms && !c->plan0) {
        /* metered: the records' charge, and what was bought */
        assert_false(on_plan);
        tg_nanos want = c->charge + c->paid;
        if (with_late) want += c->late_charge;
        assert_int_equal(inv->exact, want);
    }
    if (c->has_history && !c->change_ms && c->plan0) {
        /* every credit consumed is on a credit line */
        assert_int_equal(credit_lines, c->credits);
    }
}

static void check_docs(const tg_close_docs *d, bool with_late)
{
    size_t matched = 0, kinds[TG_LINE_KIND_COUNT_] = {0};
    for (size_t i = 0; i < d->ninv; i++)
        for (size_t k = 0; k < d->inv[i].nlines; k++) kinds[d->inv[i].lines[k].kind]++;
    /* the month is random enough to make every kind of line but late ones */
    for (int k = 0; k < TG_LINE_KIND_COUNT_; k++)
        if (k != TG_LINE_LATE && !kinds[k]) fail_msg("no %s line", tg_line_kind_name((tg_line_kind)k));
    size_t negative = 0;
    for (size_t i = 0; i < d->nstmt; i++) negative += d->stmt[i].earnings_exact < 0;
    assert_true(negative > 0); /* losses show as such */
    for (size_t i = 0; i < d->ninv; i++) {
        const tg_invoice *inv = &d->inv[i];
        if (!strcmp(inv->customer, "file-pro")) continue;
        cust *c = find_cust(inv->app, inv->customer);
        assert_non_null(c);
        check_invoice(inv, c, with_late);
        matched++;
    }
    /* every customer with usage, a plan or a purchase has an invoice */
    size_t want = 0;
    for (int i = 0; i < NCUST; i++) {
        const cust *c = &cs[i];
        bool plan = c->plan0 || c->plan1;
        want += c->records || c->bought || (with_late && c->late_records) || (plan && c->has_history) ||
                (plan && !c->has_history && c->records);
    }
    assert_int_equal(matched, want);
    __int128 billed = 0, inv = 0, cost = 0, cost_exact = 0, set = 0, set_exact = 0;
    for (size_t i = 0; i < d->ninv; i++) inv += d->inv[i].subtotal;
    for (size_t i = 0; i < d->nstmt; i++) {
        const tg_stmt_row *r = &d->stmt[i];
        assert_int_equal(r->billed, r->cost + r->fee + r->earnings);
        assert_int_equal(r->billed_exact, r->cost_exact + r->fee_exact + r->earnings_exact);
        assert_int_equal(r->charge, r->cost_exact + r->margin + r->fee_exact);
        assert_int_equal(r->billed % TG_NANOS_PER_CENT, 0);
        assert_int_equal(r->cost % TG_NANOS_PER_CENT, 0);
        assert_int_equal(r->earnings % TG_NANOS_PER_CENT, 0);
        assert_true(r->cost - r->cost_exact < TG_NANOS_PER_CENT && r->cost_exact - r->cost < TG_NANOS_PER_CENT);
        billed += r->billed;
        cost += r->cost;
        cost_exact += r->cost_exact;
    }
    for (size_t i = 0; i < d->nsettle; i++) {
        set += d->settle[i].cost;
        set_exact += d->settle[i].cost_exact;
    }
    assert_true(billed == inv);
    /* the period's cost is rounded once: the rows' cents sum to it */
    assert_true(cost == tg_money_round_cents((tg_nanos)cost_exact));
    for (size_t i = 0; i < d->nsettle; i++) {
        const tg_settle_row *r = &d->settle[i];
        assert_true(r->cost - r->cost_exact < TG_NANOS_PER_CENT && r->cost_exact - r->cost < TG_NANOS_PER_CENT);
    }
    assert_true(cost == set);
    assert_true(cost_exact == set_exact);
    if (!with_late) assert_true(cost_exact == all_cost);
}

/* explain-invoice recomputes every amount of a sample of the invoices
 * (every 400th, and the first 10 with a late line) from the records and
 * ledger, and agrees. Each explanation reads the period's records again,
 * so the sample is small. */
static void explain_all(tg_store *s, const tg_close_docs *d)
{
    size_t n = 0, nlate = 0;
    for (size_t i = 0; i < d->ninv; i++) {
        bool late = false;
        for (size_t k = 0; k < d->inv[i].nlines; k++) late |= d->inv[i].lines[k].kind == TG_LINE_LATE;
        if (late && nlate++ >= 10) late = false;
        if (i % 400 && !late) continue;
        tg_buf b;
        tg_buf_init(&b, 1u << 24);
        tg_errmsg err;
        int rc = tg_explain_invoice(s, d->inv[i].id, &b, &err);
        if (rc) fail_msg("%s\n%.*s", err.msg, (int)b.n, b.p);
        assert_non_null(memmem(b.p, b.n, "every amount matches", 20));
        tg_buf_release(&b);
        n++;
    }
    assert_true(n >= 10);
}

static void render(const tg_close_docs *d, tg_buf *b)
{
    tg_buf_init(b, 1u << 30);
    assert_int_equal(tg_docs_close(d, false, TG_REPORT_JSON, b), TG_OK);
}

static void test_random_month(void **state)
{
    (void)state;
    tg_rng g = {2026};
    tg_store *s = open_store();
    build(s, &g);
    tg_errmsg err;
    tg_close_docs d, d2;
    bool unchanged;
    /* a draft, twice: the same documents */
    tg_close_opts o = {.period = "2026-11", .now_ms = dec1 + 3 * DAY};
    if (tg_close_period(s, cfg, &o, &d, &unchanged, &err)) fail_msg("%s", err.msg);
    assert_false(unchanged);
    check_docs(&d, false);
    explain_all(s, &d);
    if (tg_close_period(s, cfg, &o, &d2, &unchanged, &err)) fail_msg("%s", err.msg);
    tg_buf j1, j2;
    render(&d, &j1);
    render(&d2, &j2);
    assert_true(j1.n == j2.n && !memcmp(j1.p, j2.p, j1.n));
    tg_buf_release(&j2);
    tg_close_docs_release(&d2);
    /* what the store has is what the close made */
    assert_int_equal(tg_store_close_read(s, "2026-11", &d2, &err), TG_OK);
    render(&d2, &j2);
    assert_true(j1.n == j2.n && !memcmp(j1.p, j2.p, j1.n));
    tg_buf_release(&j2);
    tg_close_docs_release(&d2);
    /* not finalized before every app's period has ended (a2's: Dec 15) */
    o.finalize = true;
    assert_int_equal(tg_close_period(s, cfg, &o, &d2, &unchanged, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "runs until 2026-12-15T00:00:00Z"));
    o.now_ms = dec15 + DAY;
    if (tg_close_period(s, cfg, &o, &d2, &unchanged, &err)) fail_msg("%s", err.msg);
    assert_true(d2.st.finalized);
    check_docs(&d2, false);
    tg_buf_release(&j1);
    render(&d2, &j1);
    tg_close_docs_release(&d);
    tg_close_docs_release(&d2);
    /* closing it again makes nothing new */
    o.finalize = false;
    if (tg_close_period(s, cfg, &o, &d, &unchanged, &err)) fail_msg("%s", err.msg);
    assert_true(unchanged);
    render(&d, &j2);
    assert_true(j1.n == j2.n && !memcmp(j1.p, j2.p, j1.n));
    tg_buf_release(&j2);
    tg_close_docs_release(&d);
    /* periods close in order */
    o.period = "2026-10";
    assert_int_equal(tg_close_period(s, cfg, &o, &d, &unchanged, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "the next to close is 2026-12"));
    o.period = "2027-01";
    assert_int_equal(tg_close_period(s, cfg, &o, &d, &unchanged, &err), TG_EINVAL);
    o.period = "2026-13";
    assert_int_equal(tg_close_period(s, cfg, &o, &d, &unchanged, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "not a period"));
    /* late usage of November (a journal replayed after a crash) */
    tg_usage_rec late[40];
    for (int k = 0; k < 40; k++) {
        cust *c = &cs[(k * 97) % NCUST];
        make_rec(&g, c, period_start(c) + (int64_t)tg_rng_below(&g, 10 * DAY), &late[k]);
        count(c, &late[k], true);
    }
    put_all(s, late, 40);
    o.period = "2026-12";
    o.now_ms = dec15 + 2 * DAY;
    if (tg_close_period(s, cfg, &o, &d, &unchanged, &err)) fail_msg("%s", err.msg);
    size_t nlate = 0;
    for (size_t i = 0; i < d.ninv; i++) {
        const tg_invoice *inv = &d.inv[i];
        cust *c = find_cust(inv->app, inv->customer);
        for (size_t k = 0; k < inv->nlines; k++) {
            const tg_invoice_line *l = &inv->lines[k];
            if (l->kind != TG_LINE_LATE) continue;
            nlate++;
            assert_non_null(c);
            assert_string_equal(l->ref, "2026-11");
            assert_int_equal(l->records, c->late_records);
            assert_non_null(strstr(l->desc, "recorded after its invoice was finalized"));
            if (!c->plan1) assert_int_equal(l->exact, c->late_charge);
        }
    }
    size_t want_late = 0;
    for (int i = 0; i < NCUST; i++) want_late += cs[i].late_records > 0;
    assert_true(want_late > 30);
    assert_int_equal(nlate, want_late);
    explain_all(s, &d);
    tg_close_docs_release(&d);
    /* and November's documents did not change */
    assert_int_equal(tg_store_close_read(s, "2026-11", &d, &err), TG_OK);
    render(&d, &j2);
    assert_true(j1.n == j2.n && !memcmp(j1.p, j2.p, j1.n));
    tg_close_docs_release(&d);
    tg_buf_release(&j1);
    tg_buf_release(&j2);
    tg_store_close(s);
    free(cs);
}

/* A plan changed in the file is recorded when it is loaded (at a start,
 * a reload or a close) and billed by day from then: file-pro is on pro
 * until Nov 11 and on starter after. */
static void test_file_plan_change(void **state)
{
    (void)state;
    tg_store *s = open_store_named("file.db");
    tg_errmsg err;
    assert_int_equal(tg_store_plan_sync(s, cfg, oct1 + 3 * DAY, &err), TG_OK);
    assert_int_equal(tg_store_plan_sync(s, cfg, oct1 + 9 * DAY, &err), TG_OK); /* no change: no row */
    tg_config *cfg2;
    const char *at = strstr(conf_text, "app: a1, plan: pro}");
    assert_non_null(at);
    char text[sizeof conf_text + 16];
    snprintf(text, sizeof text, "%.*sapp: a1, plan: starter}\n", (int)(at - conf_text), conf_text);
    if (tg_config_parse("close2.yaml", tg_str_c(text), &cfg2, &err)) fail_msg("%s", err.msg);
    assert_int_equal(tg_store_plan_sync(s, cfg2, nov1 + 10 * DAY + 3600000, &err), TG_OK);
    tg_close_docs d;
    bool unchanged;
    tg_close_opts o = {.period = "2026-11", .now_ms = dec1 + DAY};
    if (tg_close_period(s, cfg2, &o, &d, &unchanged, &err)) fail_msg("%s", err.msg);
    const tg_invoice *inv = NULL;
    for (size_t i = 0; i < d.ninv; i++)
        if (!strcmp(d.inv[i].customer, "file-pro")) inv = &d.inv[i];
    assert_non_null(inv);
    assert_string_equal(inv->plan, "starter");
    assert_true(inv->nlines >= 3);
    assert_int_equal(inv->lines[0].kind, TG_LINE_FEE);
    assert_string_equal(inv->lines[0].ref, "pro");
    assert_string_equal(inv->lines[0].qty, "10/30 days");
    assert_int_equal(inv->lines[0].exact, 33 * TG_NANOS_PER_USD);     /* 99 x 10 / 30 */
    assert_string_equal(inv->lines[1].ref, "starter");
    assert_string_equal(inv->lines[1].qty, "20/30 days");
    assert_int_equal(inv->lines[1].exact, 19333333333);               /* 29 x 20 / 30, half-up */
    assert_int_equal(inv->lines[1].amount, 1933 * TG_NANOS_PER_CENT);
    /* the allowance is prorated the same way: 2500 x 10/30 + 500 x 20/30 */
    assert_int_equal(inv->allowance, 833333333333 + 333333333333);
    assert_int_equal(inv->lines[2].kind, TG_LINE_INCLUDED);
    assert_non_null(strstr(inv->lines[2].desc, "0 of 1,166.666666666 used"));
    assert_int_equal(inv->total, 3300 * TG_NANOS_PER_CENT + 1933 * TG_NANOS_PER_CENT);
    assert_string_equal(d.replaced, "");
    tg_close_docs_release(&d);
    /* one draft at a time: December's replaces November's, and says so */
    o.period = "2026-12";
    if (tg_close_period(s, cfg2, &o, &d, &unchanged, &err)) fail_msg("%s", err.msg);
    assert_string_equal(d.replaced, "2026-11");
    tg_close_docs_release(&d);
    assert_int_equal(tg_store_close_read(s, "2026-11", &d, &err), TG_ENOTFOUND);
    tg_config_unref(cfg2);
    tg_store_close(s);
}

/* A request of `charge` USD nanos on plan (whose credits it consumes),
 * at t, costing a tenth of its charge. */
static void fixed_rec(tg_usage_rec *r, const char *customer, const char *plan, int64_t t, tg_nanos charge)
{
    memset(r, 0, sizeof *r);
    uint64_t i = ++seq;
    for (int b = 0; b < 6; b++) r->id[b] = (uint8_t)((uint64_t)t >> (40 - 8 * b));
    for (int b = 0; b < 8; b++) r->id[8 + b] = (uint8_t)(i >> (56 - 8 * b));
    snprintf(r->rid, sizeof r->rid, "f%llu", (unsigned long long)i);
    strcpy(r->tags.app, "a1");
    snprintf(r->tags.customer, sizeof r->tags.customer, "%s", customer);
    snprintf(r->tags.plan, sizeof r->tags.plan, "%s", plan);
    strcpy(r->model, "fast");
    strcpy(r->offering, "o1");
    strcpy(r->provider, "p1");
    r->status = 200;
    r->attempts = 1;
    r->t_start_ms = t;
    r->charge = charge;
    r->cost = charge / 10;
    r->margin = charge - r->cost;
    r->asked_cost = r->cost;
    assert_int_equal(tg_credits_of(tg_config_plan(cfg, tg_str_c(plan)), TG_STR(""), 0, charge, &r->credits),
                     TG_OK);
}

/* Overage after a mid-period plan change is billed at the price of the
 * plan in force when it was consumed: the allowance covers the period's
 * credits in the order they came. "down" is on pro (2,500 credits, $0.06
 * overage) until Nov 15, then on starter (500, $0.08): the allowance is
 * 2,500 x 14/30 + 500 x 16/30 = 1,433.333333334 credits (each part
 * rounded half-up); 2,000 credits on Nov 5 pass it by 566.666666666,
 * pro's overage, $34.00; the 1,000 of Nov 20 are all starter's, $80. */
static void test_overage_by_plan(void **state)
{
    (void)state;
    tg_store *s = open_store_named("down.db");
    tg_errmsg err;
    assert_int_equal(tg_store_customer_plan(s, TG_STR("a1"), TG_STR("down"), TG_STR("pro"), oct1, &err), TG_OK);
    assert_int_equal(tg_store_customer_plan(s, TG_STR("a1"), TG_STR("down"), TG_STR("starter"),
                                            nov15 + 10 * 3600000LL, &err),
                     TG_OK);
    tg_usage_rec r[2];
    fixed_rec(&r[0], "down", "pro", nov1 + 4 * DAY + 3600000, 80 * TG_NANOS_PER_USD);
    fixed_rec(&r[1], "down", "starter", nov1 + 19 * DAY, 10 * TG_NANOS_PER_USD);
    assert_int_equal(r[0].credits, 2000 * CR);
    assert_int_equal(r[1].credits, 1000 * CR);
    put_all(s, r, 2);
    tg_close_docs d;
    bool unchanged;
    tg_close_opts o = {.period = "2026-11", .now_ms = dec1 + DAY};
    if (tg_close_period(s, cfg, &o, &d, &unchanged, &err)) fail_msg("%s", err.msg);
    const tg_invoice *inv = NULL; /* file-pro, the file's customer, has one too */
    for (size_t i = 0; i < d.ninv; i++)
        if (!strcmp(d.inv[i].customer, "down")) inv = &d.inv[i];
    assert_non_null(inv);
    assert_int_equal(inv->allowance, 1433333333334);
    const tg_invoice_line *over[2];
    size_t n = 0;
    for (size_t i = 0; i < inv->nlines; i++)
        if (inv->lines[i].kind == TG_LINE_OVERAGE) {
            assert_true(n < 2);
            over[n++] = &inv->lines[i];
        }
    assert_int_equal(n, 2);
    assert_string_equal(over[0]->ref, "pro");
    assert_int_equal(over[0]->credits, 566666666666);
    assert_int_equal(over[0]->exact, 34 * TG_NANOS_PER_USD);
    assert_non_null(strstr(over[0]->desc, "(plan pro, 2026-11-01 to 2026-11-14)"));
    assert_string_equal(over[1]->ref, "starter");
    assert_int_equal(over[1]->credits, 1000 * CR);
    assert_int_equal(over[1]->exact, 80 * TG_NANOS_PER_USD);
    /* fees: 99 x 14/30 = 46.20, 29 x 16/30 = 15.466666667 -> 15.47 */
    assert_int_equal(inv->total, (4620 + 1547 + 3400 + 8000) * TG_NANOS_PER_CENT);
    tg_buf b;
    tg_buf_init(&b, 1u << 20);
    if (tg_explain_invoice(s, inv->id, &b, &err)) fail_msg("%s\n%.*s", err.msg, (int)b.n, b.p);
    tg_buf_release(&b);
    tg_close_docs_release(&d);
    tg_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overage_by_plan),
        cmocka_unit_test(test_file_plan_change),
        cmocka_unit_test(test_random_month),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
