/* Golden files of a closed month (issue 6): the example configuration's
 * plans (examples/tollgate.yaml: starter, pro, team, enterprise) and app
 * (demo-app: cost + 30%, pro customers + 20%, $0.001 more per classify
 * call, a report $0.40, a platform fee of 5%), and a fixed November 2026
 * of usage for five customers of demo-app:
 *
 *   acme      pro (the file's), the whole month, inside its allowance
 *   globex    starter (the file's), the whole month, past its allowance:
 *             overage
 *   initech   team (set through the store), a promotional grant made in
 *             October and a paid top-up bought on Nov 20, both applied
 *   hooli     pro, then enterprise from Nov 15 (set at 10:30): fees and
 *             allowance prorated by day, 14/30 and 16/30
 *   umbrella  no plan: metered usage and reports at their unit price
 *
 * Every record is priced by meter/price.c with the file's offerings, as
 * the gateway prices it, and consumes credits by bill/credits.c. The month
 * is closed and finalized at a fixed instant, and each invoice is
 * rendered as a table, CSV, JSON and HTML, the statements and settlements
 * as CSV and tables; each rendering must equal its file in tests/golden/
 * byte for byte. tests/golden/README.md checks every figure by hand.
 *
 * To make or remake the files (after a deliberate change of a document):
 *   TOLLGATE_UPDATE_GOLDEN=1 ./build/tests/test_golden
 * from the repository root (or with TOLLGATE_ROOT set to it), then read
 * `git diff tests/golden` line by line before committing it. */
#include "base/money.h"
#include "bill/close.h"
#include "bill/credits.h"
#include "meter/price.h"
#include "report/docs.h"
#include "report/invoice_html.h"
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
#define CENT TG_NANOS_PER_CENT
#define MIN 60000LL
#define HOUR 3600000LL
#define DAY 86400000LL

static char dir[64];
static const char *root;
static tg_config *cfg;
static const tg_app *app;

static int64_t utc(int y, int m, int d, int h, int mi)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm) * 1000;
}
#define NOV(d, h, mi) utc(2026, 11, (d), (h), (mi))

static void terms(void *ud, tg_str app_id, tg_str plan, tg_store_terms *out)
{
    (void)ud;
    const tg_app *a = tg_config_app(cfg, app_id);
    const tg_plan *p = plan.n ? tg_config_plan(cfg, plan) : NULL;
    out->anchor_day = a ? a->period_anchor_day : 1;
    out->included = p ? p->included : 0;
}

static int setup(void **state)
{
    (void)state;
    root = getenv("TOLLGATE_ROOT");
    if (!root) root = ".";
    char path[512];
    snprintf(path, sizeof path, "%s/examples/tollgate.yaml", root);
    tg_errmsg err;
    if (tg_config_load(path, &cfg, &err)) {
        fprintf(stderr, "%s (run from the repository root, or set TOLLGATE_ROOT)\n", err.msg);
        return -1;
    }
    app = tg_config_app(cfg, TG_STR("demo-app"));
    strcpy(dir, "/tmp/tg-test-golden-XXXXXX");
    return app && mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tg_config_unref(cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- the month ---- */

/* The kinds of request the month is made of: a public model, the
 * offering that served it, its tokens, and its unit or feature. */
typedef struct {
    const char *model, *offering, *feature;
    int64_t prompt, cached, completion;
    bool report; /* an action unit "report" (X-Tollgate-Unit) */
} kind;

/* gpt-4o chat: 1,500 new + 500 cached input, 400 output tokens */
static const kind CHAT_4O = {"gpt-4o", "openai/gpt-4o", "", 2000, 500, 400, false};
/* gpt-4o-mini chat: 3,000 input, 500 output tokens */
static const kind CHAT_MINI = {"gpt-4o-mini", "openai/gpt-4o-mini", "", 3000, 0, 500, false};
/* the same for feature classify: the app's $0.001 surcharge */
static const kind CLASSIFY = {"gpt-4o-mini", "openai/gpt-4o-mini", "classify", 3000, 0, 500, false};
/* claude-sonnet-4: 2,000 new + 2,000 cache-read input, 800 output tokens */
static const kind CHAT_SONNET = {"claude-sonnet-4", "anthropic/claude-sonnet-4", "", 4000, 2000, 800,
                                 false};
/* a report made with gpt-4o: 6,000 input, 1,500 output tokens */
static const kind REPORT = {"gpt-4o", "openai/gpt-4o", "", 6000, 0, 1500, true};

static const tg_offering *offering(const char *id)
{
    for (size_t i = 0; i < cfg->nofferings; i++)
        if (!strcmp(cfg->offerings[i].id, id)) return &cfg->offerings[i];
    fail_msg("examples/tollgate.yaml has no offering %s", id);
    return NULL;
}

static tg_usage_rec *recs;
static size_t nrecs, caprecs;
static uint64_t seq;

/* A request of kind k by customer on plan ("" none) at t, of units
 * reports when k is one, priced and credited as the gateway does. */
static tg_usage_rec *request(const char *customer, const char *plan, const kind *k, int64_t t,
                             int64_t units)
{
    if (nrecs == caprecs) {
        caprecs = caprecs ? 2 * caprecs : 1024;
        recs = realloc(recs, caprecs * sizeof *recs);
        assert_non_null(recs);
    }
    tg_usage_rec *r = &recs[nrecs++];
    memset(r, 0, sizeof *r);
    uint64_t i = ++seq;
    for (int b = 0; b < 6; b++) r->id[b] = (uint8_t)((uint64_t)t >> (40 - 8 * b));
    for (int b = 0; b < 8; b++) r->id[8 + b] = (uint8_t)(i >> (56 - 8 * b));
    snprintf(r->rid, sizeof r->rid, "req-%06llu", (unsigned long long)i);
    snprintf(r->key_id, sizeof r->key_id, "demo-app");
    snprintf(r->tags.app, sizeof r->tags.app, "demo-app");
    snprintf(r->tags.customer, sizeof r->tags.customer, "%s", customer);
    snprintf(r->tags.plan, sizeof r->tags.plan, "%s", plan);
    snprintf(r->tags.feature, sizeof r->tags.feature, "%s", k->feature);
    if (k->report) {
        snprintf(r->tags.unit, sizeof r->tags.unit, "report");
        r->tags.unit_count = units;
    }
    const tg_offering *off = offering(k->offering);
    snprintf(r->model, sizeof r->model, "%s", k->model);
    snprintf(r->offering, sizeof r->offering, "%s", off->id);
    snprintf(r->provider, sizeof r->provider, "%s", off->provider->name);
    r->t_start_ms = t;
    r->latency_us = 900000;
    r->status = 200;
    r->outcome = TG_OUT_COMPLETED;
    r->endpoint = TG_EPK_CHAT;
    r->attempts = 1;
    r->tokens = tg_tokens_openai(k->prompt, k->completion, k->cached, 0);
    tg_price_ctx ctx = {.app = app,
                        .customer = tg_str_c(customer),
                        .plan = tg_str_c(plan),
                        .feature = tg_str_c(k->feature),
                        .model = tg_str_c(k->model),
                        .unit = tg_str_c(r->tags.unit),
                        .unit_count = r->tags.unit_count};
    tg_priced p;
    tg_errmsg err;
    if (tg_price_request(off, &ctx, &r->tokens, &p, &err)) fail_msg("%s", err.msg);
    tg_price_to_record(&p, r);
    tg_price_rule_name(&p, r->rule);
    r->asked_cost = r->cost;
    const tg_plan *pl = plan[0] ? tg_config_plan(cfg, tg_str_c(plan)) : NULL;
    assert_int_equal(tg_credits_of(pl, tg_str_c(r->tags.unit), r->tags.unit_count, r->charge, &r->credits),
                     TG_OK);
    return r;
}

/* n requests of kind k, one every step from t on (reports: 1 each). */
static void burst(const char *customer, const char *plan, const kind *k, int n, int64_t t, int64_t step)
{
    for (int i = 0; i < n; i++) request(customer, plan, k, t + i * step, 1);
}

/* The money of one request of each kind, worked out by hand (README.md,
 * "Requests"), against what the pricing code makes of it. */
static void check_kind(const kind *k, const char *plan, tg_nanos cost, tg_nanos charge, tg_nanos fee,
                       tg_ncredits credits)
{
    size_t n = nrecs;
    tg_usage_rec *r = request("probe", plan, k, NOV(1, 0, 0), 1);
    assert_int_equal(r->cost, cost);
    assert_int_equal(r->charge, charge);
    assert_int_equal(r->fee, fee);
    assert_int_equal(r->margin, charge - cost - fee);
    assert_int_equal(r->credits, credits);
    nrecs = n; /* a probe, not a request of the month */
    seq--;
}

static void check_kinds(void)
{
    check_kind(&CHAT_4O, "pro", 8375000, 10050000, 502500, 251250000);
    check_kind(&CHAT_4O, "starter", 8375000, 10887500, 544375, 272187500);
    check_kind(&CHAT_4O, "", 8375000, 10887500, 544375, 0);
    check_kind(&CHAT_MINI, "starter", 750000, 975000, 48750, 24375000);
    check_kind(&CLASSIFY, "", 750000, 1975000, 98750, 0);
    check_kind(&CHAT_SONNET, "team", 18600000, 24180000, 1209000, 604500000);
    check_kind(&REPORT, "pro", 30000000, 400000000, 20000000, 10 * CR);
    check_kind(&REPORT, "", 30000000, 400000000, 20000000, 0);
}

static void set_plan(tg_store *s, const char *customer, const char *plan, int64_t t)
{
    tg_errmsg err;
    if (tg_store_customer_plan(s, TG_STR("demo-app"), tg_str_c(customer), tg_str_c(plan), t, &err))
        fail_msg("%s", err.msg);
}

static void grant(tg_store *s, const char *customer, const char *id, tg_grant_kind k, int64_t t,
                  tg_ncredits credits, tg_nanos paid)
{
    tg_grant g = {.kind = k, .created_ms = t, .granted = credits, .left = credits};
    snprintf(g.id, sizeof g.id, "%s", id);
    tg_errmsg err;
    if (tg_store_add_grant(s, TG_STR("demo-app"), tg_str_c(customer), &g, paid, TG_STR("golden"), t, &err))
        fail_msg("%s", err.msg);
}

static int cmp_rec(const void *a, const void *b)
{
    return memcmp(((const tg_usage_rec *)a)->id, ((const tg_usage_rec *)b)->id, TG_RECORD_ID_LEN);
}

static void build(tg_store *s)
{
    int64_t oct20 = utc(2026, 10, 20, 9, 0);
    /* acme and globex are the file's customers, on its plans (pro,
     * starter) for the whole month; the others are set through the store */
    set_plan(s, "initech", "team", oct20);
    set_plan(s, "hooli", "pro", oct20);
    set_plan(s, "hooli", "enterprise", NOV(15, 10, 30));
    grant(s, "initech", "g_promo_launch", TG_GRANT_PROMO, utc(2026, 10, 25, 12, 0), 1000 * CR, 0);
    grant(s, "initech", "g_topup_nov20", TG_GRANT_PAID, NOV(20, 12, 0), 5000 * CR, 175 * TG_NANOS_PER_USD);

    /* acme, pro: 600 chats and 120 reports */
    burst("acme", "pro", &CHAT_4O, 600, NOV(2, 9, 0), HOUR);
    burst("acme", "pro", &REPORT, 120, NOV(2, 10, 30), 5 * HOUR);
    /* globex, starter: 400 mini chats, 80 reports, 40 chats */
    burst("globex", "starter", &CHAT_MINI, 400, NOV(1, 8, 0), 90 * MIN);
    burst("globex", "starter", &REPORT, 80, NOV(3, 0, 0), 7 * HOUR);
    burst("globex", "starter", &CHAT_4O, 40, NOV(5, 0, 0), 12 * HOUR);
    /* initech, team: before the top-up, inside the allowance... */
    burst("initech", "team", &REPORT, 900, NOV(2, 0, 0), 26 * MIN);
    burst("initech", "team", &CHAT_SONNET, 1500, NOV(2, 0, 5), 15 * MIN);
    /* ...after it, past the allowance and the promotion */
    burst("initech", "team", &REPORT, 250, NOV(20, 13, 0), 40 * MIN);
    burst("initech", "team", &CHAT_SONNET, 500, NOV(20, 13, 10), 20 * MIN);
    /* hooli: on pro until Nov 14, on enterprise from Nov 15 */
    burst("hooli", "pro", &CHAT_4O, 300, NOV(3, 0, 0), 55 * MIN);
    burst("hooli", "pro", &REPORT, 50, NOV(3, 1, 0), 5 * HOUR);
    burst("hooli", "enterprise", &CHAT_4O, 1000, NOV(15, 12, 0), 20 * MIN);
    burst("hooli", "enterprise", &REPORT, 300, NOV(15, 12, 10), HOUR);
    /* umbrella, no plan: metered chats, classify calls, reports by ten */
    burst("umbrella", "", &CHAT_MINI, 200, NOV(4, 0, 0), 2 * HOUR);
    burst("umbrella", "", &CLASSIFY, 100, NOV(4, 0, 30), 4 * HOUR);
    burst("umbrella", "", &CHAT_4O, 60, NOV(6, 0, 0), 6 * HOUR);
    request("umbrella", "", &REPORT, NOV(10, 14, 0), 10);
    request("umbrella", "", &REPORT, NOV(18, 9, 15), 10);
    request("umbrella", "", &REPORT, NOV(27, 16, 45), 5);

    qsort(recs, nrecs, sizeof *recs, cmp_rec);
    tg_errmsg err;
    if (tg_store_put(s, recs, nrecs, &err)) fail_msg("%s", err.msg);
}

/* ---- golden files ---- */

static int failures;

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *p = malloc(cap);
    assert_non_null(p);
    for (size_t got; (got = fread(p + len, 1, cap - len, f)) > 0;) {
        len += got;
        if (len == cap) {
            p = realloc(p, cap *= 2);
            assert_non_null(p);
        }
    }
    fclose(f);
    *n = len;
    return p;
}

/* Prints line `line` (from its start at p) of a text, cut to 160 bytes
 * around column col. */
static void show(const char *label, const char *p, size_t n, size_t col)
{
    size_t end = 0;
    while (end < n && p[end] != '\n') end++;
    size_t from = col > 80 ? col - 80 : 0, to = end - from > 160 ? from + 160 : end;
    fprintf(stderr, "  %s%s%.*s%s\n", label, from ? "..." : "", (int)(to - from), p + from,
            to < end ? "..." : "");
}

/* Compares got with tests/golden/name, or writes it there when
 * TOLLGATE_UPDATE_GOLDEN=1. A difference is reported with the file and
 * the first line that differs, and counted. */
static void golden(const char *name, const tg_buf *got)
{
    char path[600];
    snprintf(path, sizeof path, "%s/tests/golden/%s", root, name);
    const char *up = getenv("TOLLGATE_UPDATE_GOLDEN");
    if (up && !strcmp(up, "1")) {
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(got->p, 1, got->n, f) != got->n || fclose(f))
            fail_msg("cannot write %s (does tests/golden/ exist?)", path);
        return;
    }
    size_t n;
    char *want = read_file(path, &n);
    if (!want) {
        fprintf(stderr, "tests/golden/%s: missing; make it with TOLLGATE_UPDATE_GOLDEN=1 "
                        "./build/tests/test_golden and review it\n", name);
        failures++;
        return;
    }
    if (n != got->n || memcmp(want, got->p, n)) {
        size_t i = 0, line = 1, at = 0;
        while (i < n && i < got->n && want[i] == got->p[i]) {
            if (want[i] == '\n') line++, at = i + 1;
            i++;
        }
        fprintf(stderr, "tests/golden/%s differs from the output at line %zu, column %zu:\n", name, line,
                i - at + 1);
        show("golden: ", want + at, n - at, i - at);
        show("output: ", got->p + at, got->n - at, i - at);
        if (i == n || i == got->n)
            fprintf(stderr, "  (the %s ends there)\n", i == n ? "golden file" : "output");
        fprintf(stderr, "  if the change is meant, regenerate with TOLLGATE_UPDATE_GOLDEN=1 "
                        "./build/tests/test_golden (from the repository root) and review "
                        "`git diff tests/golden`\n");
        failures++;
    }
    free(want);
}

typedef int (*render_fn)(const tg_close_docs *d, const tg_invoice *inv, tg_report_format f, tg_buf *b);

static int render_invoice(const tg_close_docs *d, const tg_invoice *inv, tg_report_format f, tg_buf *b)
{
    return tg_docs_invoice(d, inv, f, b);
}

static int render_html(const tg_close_docs *d, const tg_invoice *inv, tg_report_format f, tg_buf *b)
{
    (void)f;
    return tg_invoice_html(inv, &d->st, b);
}

static int render_statements(const tg_close_docs *d, const tg_invoice *inv, tg_report_format f, tg_buf *b)
{
    (void)inv;
    return tg_docs_statements(d, NULL, f, b);
}

static int render_settlements(const tg_close_docs *d, const tg_invoice *inv, tg_report_format f, tg_buf *b)
{
    (void)inv;
    return tg_docs_settlements(d, NULL, f, b);
}

static void check(const char *name, render_fn fn, const tg_close_docs *d, const tg_invoice *inv,
                  tg_report_format f)
{
    tg_buf b;
    tg_buf_init(&b, 1u << 24);
    assert_int_equal(fn(d, inv, f, &b), TG_OK);
    golden(name, &b);
    tg_buf_release(&b);
}

static const tg_invoice *invoice_of(const tg_close_docs *d, const char *customer)
{
    for (size_t i = 0; i < d->ninv; i++)
        if (!strcmp(d->inv[i].customer, customer)) return &d->inv[i];
    fail_msg("no invoice for %s", customer);
    return NULL;
}

/* The totals worked out by hand in README.md ("Invoices"), in cents. */
static const struct {
    const char *customer, *id;
    int64_t total_cents;
} totals[] = {
    {"acme", "INV-2026-11-00001", 9900},      /* 99.00: inside the allowance */
    {"globex", "INV-2026-11-00002", 5465},    /* 29.00 + 25.65 overage */
    {"hooli", "INV-2026-11-00003", 111287},   /* 46.20 + 1,066.67 */
    {"initech", "INV-2026-11-00004", 47400},  /* 299.00 + 175.00 top-up */
    {"umbrella", "INV-2026-11-00005", 1105},  /* 1.05 usage + 10.00 reports */
};

static void test_golden_month(void **state)
{
    (void)state;
    check_kinds();
    char path[128];
    snprintf(path, sizeof path, "%s/ledger.db", dir);
    tg_store *s;
    tg_errmsg err;
    if (tg_store_open(path, TG_STORE_RW, &s, &err)) fail_msg("%s", err.msg);
    tg_store_set_terms(s, terms, NULL);
    build(s);
    tg_close_opts o = {.period = "2026-11", .finalize = true, .now_ms = utc(2026, 12, 2, 9, 30)};
    tg_close_docs d;
    bool unchanged;
    if (tg_close_period(s, cfg, &o, &d, &unchanged, &err)) fail_msg("%s", err.msg);
    assert_true(d.st.finalized);
    assert_int_equal(d.ninv, sizeof totals / sizeof *totals);
    for (size_t i = 0; i < d.ninv; i++) {
        const tg_invoice *inv = invoice_of(&d, totals[i].customer);
        assert_string_equal(inv->id, totals[i].id);
        if (inv->total != totals[i].total_cents * CENT)
            fail_msg("%s: total %lld nanos, README.md works out %lld cents", inv->customer,
                     (long long)inv->total, (long long)totals[i].total_cents);
        char name[TG_TAG_MAX + 32];
        snprintf(name, sizeof name, "invoice-%s.txt", inv->customer);
        check(name, render_invoice, &d, inv, TG_REPORT_TABLE);
        snprintf(name, sizeof name, "invoice-%s.csv", inv->customer);
        check(name, render_invoice, &d, inv, TG_REPORT_CSV);
        snprintf(name, sizeof name, "invoice-%s.json", inv->customer);
        check(name, render_invoice, &d, inv, TG_REPORT_JSON);
        snprintf(name, sizeof name, "invoice-%s.html", inv->customer);
        check(name, render_html, &d, inv, TG_REPORT_TABLE);
    }
    check("statements.csv", render_statements, &d, NULL, TG_REPORT_CSV);
    check("statements.txt", render_statements, &d, NULL, TG_REPORT_TABLE);
    check("settlements.csv", render_settlements, &d, NULL, TG_REPORT_CSV);
    check("settlements.txt", render_settlements, &d, NULL, TG_REPORT_TABLE);
    tg_close_docs_release(&d);
    tg_store_close(s);
    free(recs);
    if (failures) fail_msg("%d golden file(s) differ (see above)", failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_month),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
