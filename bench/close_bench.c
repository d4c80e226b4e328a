/* Closing a period benchmark (issue 6).
 *
 *   build/bench/close_bench [N] [CUSTOMERS] [DIR]
 *
 * Generates one month (2026-11) of N usage records (default 10,000,000)
 * over CUSTOMERS customers (default 10,000) of three apps, two billed by
 * calendar month and one (globex) from the 15th, so the close reads Nov 1
 * to Dec 15. Customers are skewed (a few large, most small) and on a mix
 * of plans: none (metered at the records' charge), `metered` (credits,
 * all overage), `starter` (fee, allowance, overage), `pro` (fee,
 * allowance, overage, reports priced in credits) and `capped` (fee and
 * allowance, no overage: its customers' usage stops at the allowance, as
 * the gateway would refuse past it). Two thirds of the customers are put
 * on their plan through the store before the month (a tenth of those
 * change plan mid-period), the others are created by their first record.
 * One in eight buys a top-up during its period, one in twelve has a promo
 * grant; one record in eight names an action unit, one in thirty is an
 * attempt record, one in a hundred bills no customer.
 *
 * The records are generated in time order, in batches of 8,192, and put
 * with tg_store_put as the ledger puts them (each burning its credits from
 * the wallet), into a fresh store in DIR (default: a temporary directory,
 * removed at exit). Then it times, on that store: the first close of
 * 2026-11 (a draft), a second one (replacing the draft), the finalize,
 * and reading the documents back (tg_store_close_read). It checks that the
 * documents add up (invoices' subtotals == statements' billed;
 * settlements' cost == statements' cost; the statements' records, charge
 * and cost == what was generated) and exits 1 if not. The PASS/FAIL
 * line against issue 6's bar (the first close under 30 s) is
 * informational, as bench/run.sh's are. */
#include "base/money.h"
#include "base/rng.h"
#include "bill/close.h"
#include "bill/credits.h"
#include "store/close.h"
#include "store/plans.h"
#include "store/store.h"
#include "store/wallet.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define BATCH 8192
#define DAY 86400000LL
#define CR TG_NCREDITS_PER_CREDIT
#define BAR_S 30.0

static const char conf_text[] =
    "providers:\n"
    "  - {name: openai, base_url: \"http://o\"}\n"
    "  - {name: anthropic, base_url: \"http://a\"}\n"
    "  - {name: together, base_url: \"http://t\"}\n"
    "offerings:\n"
    "  - {id: gpt-4o-mini, provider: openai, model: gpt-4o-mini,"
    " price: {input: \"0.15\", output: \"0.60\"}}\n"
    "  - {id: claude-haiku, provider: anthropic, model: claude-haiku,"
    " price: {input: \"0.80\", output: \"4\"}}\n"
    "  - {id: claude-sonnet, provider: anthropic, model: claude-sonnet,"
    " price: {input: \"3\", output: \"15\"}}\n"
    "  - {id: gpt-4o, provider: openai, model: gpt-4o, price: {input: \"2.50\", output: \"10\"}}\n"
    "  - {id: llama-70b, provider: together, model: llama-70b,"
    " price: {input: \"0.88\", output: \"0.88\"}}\n"
    "models:\n"
    "  - {name: fast, offerings: [gpt-4o-mini]}\n"
    "  - {name: haiku, offerings: [claude-haiku]}\n"
    "  - {name: premium, offerings: [claude-sonnet, gpt-4o]}\n"
    "  - {name: open, offerings: [llama-70b]}\n"
    "plans:\n"
    "  - {id: metered, credit: \"0.001\", overage: \"0.0011\"}\n"
    "  - {id: starter, fee: \"29\", included_credits: 500, credit: \"0.01\", overage: \"0.012\"}\n"
    "  - {id: pro, fee: \"99\", included_credits: 2500, credit: \"0.04\", overage: \"0.05\",\n"
    "     unit_credits: {report: 5}}\n"
    "  - {id: capped, fee: \"10.50\", included_credits: 100, credit: \"0.01\"}\n"
    "apps:\n"
    "  - {id: acme, create_customers: true}\n"
    "  - {id: initech, create_customers: true}\n"
    "  - {id: globex, create_customers: true, period_anchor_day: 15}\n";

enum { P_NONE, P_METERED, P_STARTER, P_PRO, P_CAPPED, P_COUNT };
static const char *const plan_ids[P_COUNT] = {"", "metered", "starter", "pro", "capped"};
static const char *const apps[3] = {"acme", "initech", "globex"};

/* offerings: cost in nanos per input and output token; the model that
 * serves each, its provider */
static const struct {
    const char *id, *provider, *model;
    int64_t in, out;
} offs[] = {
    {"gpt-4o-mini", "openai", "fast", 150, 600},
    {"claude-haiku", "anthropic", "haiku", 800, 4000},
    {"claude-sonnet", "anthropic", "premium", 3000, 15000},
    {"gpt-4o", "openai", "premium", 2500, 10000}, /* premium's fallback */
    {"llama-70b", "together", "open", 880, 880},
};
static const char *const features[] = {"summarize", "chat", "search", "extract", "classify",
                                       "translate"};
static const char *const workflows[] = {"", "report", "triage", "onboarding"};

typedef struct {
    unsigned app;            /* index of apps */
    int plan0, plan1;        /* before and from change_ms */
    int64_t change_ms;       /* 0: none */
    bool history;            /* put on its plan through the store before the month */
    tg_ncredits capped_used; /* credits consumed on `capped` this period */
} cust;

typedef struct {
    tg_config *cfg;
    const tg_plan *plans[P_COUNT];
    cust *cs;
    unsigned ncust;
    int64_t nov1, nov15, dec1, dec15;
    /* what was generated, to check the documents against */
    int64_t records, refused;
    __int128 charge, cost;
} gen_ctx;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int64_t utc(int y, int m, int d)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
    return (int64_t)timegm(&tm) * 1000;
}

/* The writer's terms: the app's anchor day and the plan's allowance. */
static void terms(void *ud, tg_str app, tg_str plan, tg_store_terms *out)
{
    const tg_config *cfg = ud;
    const tg_app *a = tg_config_app(cfg, app);
    const tg_plan *p = plan.n ? tg_config_plan(cfg, plan) : NULL;
    out->anchor_day = a ? a->period_anchor_day : 1;
    out->included = p ? p->included : 0;
}

static int64_t period_start(const gen_ctx *g, const cust *c) { return c->app == 2 ? g->nov15 : g->nov1; }
static int plan_at(const cust *c, int64_t t) { return c->change_ms && t >= c->change_ms ? c->plan1 : c->plan0; }

/* A customer whose app's period holds t, skewed to low numbers (the
 * square of a uniform draw): acme and initech run Nov 1 to Dec 1, globex
 * (every fourth customer) Nov 15 to Dec 15. */
static unsigned pick(gen_ctx *g, tg_rng *r, int64_t t)
{
    uint64_t u = tg_rng_below(r, g->ncust);
    unsigned c = (unsigned)(u * u / g->ncust);
    if (t < g->nov15 && g->cs[c].app == 2) c--; /* c % 4 == 3: c - 1 is not globex */
    if (t >= g->dec1 && g->cs[c].app != 2) {
        c = c - c % 4 + 3;
        if (c >= g->ncust) c -= 4;
    }
    return c;
}

static void make_customers(gen_ctx *g, tg_rng *r)
{
    for (unsigned i = 0; i < g->ncust; i++) {
        cust *c = &g->cs[i];
        c->app = i % 4 == 3 ? 2 : i % 4 == 2 ? 1 : 0;
        unsigned d = (unsigned)tg_rng_below(r, 100);
        c->plan0 = d < 30 ? P_NONE : d < 45 ? P_METERED : d < 75 ? P_STARTER : d < 90 ? P_PRO : P_CAPPED;
        c->plan1 = c->plan0;
        c->history = tg_rng_below(r, 3) != 0;
        if (c->history && tg_rng_below(r, 10) == 0) {
            /* an upgrade mostly, sometimes a downgrade or leaving a plan */
            int to[] = {P_STARTER, P_PRO, P_PRO, P_METERED, P_NONE, P_CAPPED};
            c->plan1 = to[tg_rng_below(r, 6)];
            if (c->plan1 == c->plan0) c->plan1 = c->plan0 == P_PRO ? P_STARTER : P_PRO;
            c->change_ms = period_start(g, c) + (int64_t)(1 + tg_rng_below(r, 27)) * DAY +
                           (int64_t)tg_rng_below(r, DAY);
        }
    }
}

/* Plans, plan changes and grants, through the store's API (each its own
 * transaction, as the admin API makes them). */
static int setup_store(gen_ctx *g, tg_store *s, tg_rng *r, size_t *ngrants, tg_errmsg *err)
{
    int64_t before = utc(2026, 10, 1) - 5 * DAY;
    for (unsigned i = 0; i < g->ncust; i++) {
        cust *c = &g->cs[i];
        char id[32];
        snprintf(id, sizeof id, "cus_%05u", i);
        tg_str app = tg_str_c(apps[c->app]), cid = tg_str_c(id);
        int rc = TG_OK;
        if (c->history)
            rc = tg_store_customer_plan(s, app, cid, tg_str_c(plan_ids[c->plan0]), before, err);
        if (!rc && c->change_ms)
            rc = tg_store_customer_plan(s, app, cid, tg_str_c(plan_ids[c->plan1]), c->change_ms, err);
        if (rc) return rc;
        if (tg_rng_below(r, 8) == 0) { /* a top-up bought in the period */
            tg_ncredits credits = (tg_ncredits)(10 + tg_rng_below(r, 500));
            tg_grant gr = {.kind = TG_GRANT_PAID,
                           .created_ms = period_start(g, c) + (int64_t)tg_rng_below(r, 20 * DAY),
                           .granted = credits * CR, .left = credits * CR, .priority = 0};
            snprintf(gr.id, sizeof gr.id, "g_paid_%u", i);
            rc = tg_store_add_grant(s, app, cid, &gr, credits * TG_NANOS_PER_CENT, TG_STR("bench"),
                                    gr.created_ms, err);
            if (rc) return rc;
            ++*ngrants;
        }
        if (tg_rng_below(r, 12) == 0) { /* a promotion from before the month */
            tg_ncredits credits = (tg_ncredits)(5 + tg_rng_below(r, 100));
            tg_grant gr = {.kind = TG_GRANT_PROMO, .created_ms = utc(2026, 10, 1),
                           .expires_ms = utc(2027, 1, 1), .granted = credits * CR,
                           .left = credits * CR, .priority = 10};
            snprintf(gr.id, sizeof gr.id, "g_promo_%u", i);
            rc = tg_store_add_grant(s, app, cid, &gr, 0, TG_STR("bench"), gr.created_ms, err);
            if (rc) return rc;
            ++*ngrants;
        }
    }
    return TG_OK;
}

/* Record i of n, at t, for customer c (UINT32_MAX: none); false when the
 * customer's capped plan could not cover it (the gateway refuses it). */
static bool gen(gen_ctx *g, tg_rng *r, uint64_t i, int64_t t, unsigned c, tg_usage_rec *rec)
{
    memset(rec, 0, sizeof *rec);
    for (int b = 0; b < 6; b++) rec->id[b] = (uint8_t)((uint64_t)t >> (40 - 8 * b));
    for (int b = 0; b < 8; b++) rec->id[8 + b] = (uint8_t)(i >> (56 - 8 * b));
    cust *cu = c == UINT32_MAX ? NULL : &g->cs[c];
    int p = cu ? plan_at(cu, t) : P_NONE;
    snprintf(rec->rid, sizeof rec->rid, "req-%" PRIu64, i);
    /* usage no customer is billed for: in acme's period, or globex's after it */
    snprintf(rec->tags.app, sizeof rec->tags.app, "%s", apps[cu ? cu->app : t >= g->dec1 ? 2 : 0]);
    if (cu) {
        snprintf(rec->key_id, sizeof rec->key_id, "key-%u", c);
        snprintf(rec->tags.customer, sizeof rec->tags.customer, "cus_%05u", c);
    }
    memcpy(rec->tags.plan, plan_ids[p], strlen(plan_ids[p]) + 1);
    snprintf(rec->tags.workspace, sizeof rec->tags.workspace, "ws-%u", (unsigned)tg_rng_below(r, 3));
    snprintf(rec->tags.user, sizeof rec->tags.user, "u%02u", (unsigned)tg_rng_below(r, 20));
    unsigned f = (unsigned)tg_rng_below(r, 6);
    snprintf(rec->tags.feature, sizeof rec->tags.feature, "%s", features[f]);
    snprintf(rec->tags.workflow, sizeof rec->tags.workflow, "%s", workflows[f % 4]);
    /* fast 60%, haiku 20%, premium 10% (a tenth of it by the fallback), open 10% */
    unsigned md = (unsigned)tg_rng_below(r, 100);
    unsigned o = md < 60 ? 0 : md < 80 ? 1 : md < 90 ? (md == 89 ? 3 : 2) : 4;
    snprintf(rec->model, sizeof rec->model, "%s", offs[o].model);
    snprintf(rec->offering, sizeof rec->offering, "%s", offs[o].id);
    snprintf(rec->provider, sizeof rec->provider, "%s", offs[o].provider);
    memcpy(rec->rule, "app", 4);
    rec->t_start_ms = t;
    rec->latency_us = 200000 + (int64_t)tg_rng_below(r, 3000000);
    rec->ttft_us = rec->latency_us / 4;
    rec->status = 200;
    rec->stream = tg_rng_below(r, 2);
    rec->route = o == 3 ? TG_RT_FALLBACK : TG_RT_PRIMARY;
    rec->tokens.prompt = 50 + (int64_t)tg_rng_below(r, 4000);
    rec->tokens.cached = (int64_t)tg_rng_below(r, (uint64_t)rec->tokens.prompt / 2 + 1);
    rec->tokens.completion = 10 + (int64_t)tg_rng_below(r, 1000);
    rec->cost = (rec->tokens.prompt - rec->tokens.cached) * offs[o].in +
                rec->tokens.cached * offs[o].in / 2 + rec->tokens.completion * offs[o].out;
    rec->attempts = o == 3 ? 2 : 1;
    rec->attempt = tg_rng_below(r, 30) == 0;
    if (rec->attempt) { /* an earlier attempt the provider billed: charges nothing */
        rec->route = TG_RT_FALLBACK;
        rec->margin = -rec->cost;
    } else {
        unsigned ud = (unsigned)tg_rng_below(r, 16);
        if (ud < 3) { /* one in eight: a report, rarely a ticket */
            memcpy(rec->tags.unit, ud ? "report" : "ticket", 7);
            rec->tags.unit_count = 1 + (int64_t)tg_rng_below(r, 3);
        }
        rec->fee = (rec->cost + 1000) / 50;
        rec->margin = rec->cost * 3 / 10 + 1000;
        rec->asked_cost = rec->cost;
    }
    rec->charge = rec->cost + rec->margin + rec->fee;
    rec->outcome = tg_rng_below(r, 200) == 0 ? TG_OUT_INTERRUPTED : TG_OUT_COMPLETED;
    rec->estimated = rec->outcome == TG_OUT_INTERRUPTED;
    if (tg_credits_of(g->plans[p], tg_str_c(rec->tags.unit), rec->tags.unit_count, rec->charge,
                      &rec->credits)) {
        fprintf(stderr, "close_bench: credits of a record\n");
        exit(2);
    }
    if (p == P_CAPPED) {
        if (cu->capped_used + rec->credits > g->plans[P_CAPPED]->included) return false;
        cu->capped_used += rec->credits;
    }
    return true;
}

static long long du_kib(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "du -sk '%s'", dir);
    FILE *p = popen(cmd, "r");
    long long k = -1;
    if (p && fscanf(p, "%lld", &k) != 1) k = -1;
    if (p) pclose(p);
    return k;
}

/* Generates and puts the month; *t_put: the time in tg_store_put. */
static int fill(gen_ctx *g, tg_store *s, uint64_t n, double *t_gen, double *t_put, tg_errmsg *err)
{
    tg_usage_rec *recs = malloc(BATCH * sizeof *recs);
    if (!recs) return tg_errmsg_set(err, "out of memory"), TG_ENOMEM;
    tg_rng r = {.s = 2026};
    int64_t t0 = g->nov1, span = g->dec15 - g->nov1;
    int rc = TG_OK;
    for (uint64_t i = 0; i < n && !rc; i += BATCH) {
        size_t k = n - i < BATCH ? (size_t)(n - i) : BATCH;
        double a = now_s();
        for (size_t j = 0; j < k; j++) {
            uint64_t x = i + j;
            int64_t t = t0 + (int64_t)((__int128)x * span / (int64_t)n);
            unsigned c = tg_rng_below(&r, 100) == 0 ? UINT32_MAX : pick(g, &r, t);
            /* a capped customer past its allowance is refused: the
             * request goes to someone else */
            while (!gen(g, &r, x, t, c, &recs[j])) {
                g->refused++;
                c = pick(g, &r, t);
            }
            g->records++;
            g->charge += recs[j].charge;
            g->cost += recs[j].cost;
        }
        double b = now_s();
        *t_gen += b - a;
        rc = tg_store_put(s, recs, k, err);
        *t_put += now_s() - b;
    }
    free(recs);
    return rc;
}

/* The checks every close's documents pass (a cheap subset of the
 * engine's own and the unit test's). */
static int check(const gen_ctx *g, const tg_close_docs *d, const char *what)
{
    __int128 inv = 0, billed = 0, cost = 0, cost_exact = 0, set = 0, set_exact = 0, charge = 0;
    int64_t records = 0;
    for (size_t i = 0; i < d->ninv; i++) {
        inv += d->inv[i].subtotal;
        tg_nanos sum = 0;
        for (size_t k = 0; k < d->inv[i].nlines; k++) sum += d->inv[i].lines[k].amount;
        if (sum != d->inv[i].subtotal) {
            fprintf(stderr, "close_bench: %s: invoice %s's lines do not add up\n", what, d->inv[i].id);
            return 1;
        }
    }
    for (size_t i = 0; i < d->nstmt; i++) {
        const tg_stmt_row *r = &d->stmt[i];
        billed += r->billed;
        cost += r->cost;
        cost_exact += r->cost_exact;
        charge += r->charge;
        records += r->records;
    }
    for (size_t i = 0; i < d->nsettle; i++) {
        set += d->settle[i].cost;
        set_exact += d->settle[i].cost_exact;
    }
    const char *bad = inv != billed            ? "invoices' subtotals != statements' billed"
                      : cost != set            ? "settlements' cost != statements' cost (cents)"
                      : cost_exact != set_exact ? "settlements' cost != statements' cost (nanos)"
                      : records != g->records  ? "statements' records != records generated"
                      : charge != g->charge    ? "statements' charge != charge generated"
                      : cost_exact != g->cost  ? "statements' cost != cost generated"
                                               : NULL;
    if (bad) fprintf(stderr, "close_bench: %s: the documents do not add up: %s\n", what, bad);
    return bad != NULL;
}

static int close_once(gen_ctx *g, tg_store *s, const char *what, bool finalize, double *t,
                      tg_close_docs *d, tg_errmsg *err)
{
    tg_close_opts o = {.period = "2026-11", .finalize = finalize, .now_ms = g->dec15 + DAY};
    bool unchanged;
    double a = now_s();
    int rc = tg_close_period(s, g->cfg, &o, d, &unchanged, err);
    *t = now_s() - a;
    if (rc) return fprintf(stderr, "close_bench: %s: %s\n", what, err->msg), 1;
    if (unchanged) return fprintf(stderr, "close_bench: %s: unchanged\n", what), 1;
    return check(g, d, what);
}

static void fmt_thousands(char *out, size_t n, double v)
{
    char t[32];
    snprintf(t, sizeof t, "%.0f", v);
    size_t l = strlen(t), o = 0;
    for (size_t i = 0; i < l && o + 2 < n; i++) {
        if (i && (l - i) % 3 == 0) out[o++] = ',';
        out[o++] = t[i];
    }
    out[o] = '\0';
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
    unsigned ncust = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 10000;
    char tmpl[] = "/tmp/tg-close-bench-XXXXXX", path[4096];
    const char *dir = argc > 3 ? argv[3] : mkdtemp(tmpl);
    if (!dir || !n || ncust < 8 || ncust > 99999)
        return fprintf(stderr, "usage: close_bench [N] [CUSTOMERS 8..99999] [DIR]\n"), 2;
    snprintf(path, sizeof path, "%s/" TG_STORE_FILE, dir);
    tg_errmsg err = {{0}};
    gen_ctx g = {.ncust = ncust,
                 .nov1 = utc(2026, 11, 1),
                 .nov15 = utc(2026, 11, 15),
                 .dec1 = utc(2026, 12, 1),
                 .dec15 = utc(2026, 12, 15)};
    if (tg_config_parse("close_bench.yaml", tg_str_c(conf_text), &g.cfg, &err))
        return fprintf(stderr, "close_bench: %s\n", err.msg), 2;
    for (int p = 1; p < P_COUNT; p++) g.plans[p] = tg_config_plan(g.cfg, tg_str_c(plan_ids[p]));
    g.cs = calloc(ncust, sizeof *g.cs);
    if (!g.cs) return 2;
    tg_rng r = {.s = 11};
    make_customers(&g, &r);

    int rc = 1;
    tg_store *s = NULL;
    tg_close_docs d1 = {0}, d2 = {0}, d3 = {0}, d4 = {0};
    double t_setup = 0, t_gen = 0, t_put = 0, t_close = 0, t_again = 0, t_final = 0, t_read = 0;
    size_t ngrants = 0;
    if (tg_store_open(path, TG_STORE_RW, &s, &err)) {
        fprintf(stderr, "close_bench: %s\n", err.msg);
        goto out;
    }
    tg_store_set_terms(s, terms, g.cfg);
    double a = now_s();
    if (setup_store(&g, s, &r, &ngrants, &err)) {
        fprintf(stderr, "close_bench: setup: %s\n", err.msg);
        goto out;
    }
    t_setup = now_s() - a;
    fprintf(stderr, "close_bench: %u customers, %zu grants set up in %.1f s; putting %" PRIu64
                    " records...\n",
            ncust, ngrants, t_setup, n);
    if (fill(&g, s, n, &t_gen, &t_put, &err)) {
        fprintf(stderr, "close_bench: put: %s\n", err.msg);
        goto out;
    }
    fprintf(stderr, "close_bench: put %.1f s (generating %.1f s); closing...\n", t_put, t_gen);
    if (close_once(&g, s, "close (draft)", false, &t_close, &d1, &err)) goto out;
    if (close_once(&g, s, "close again (draft)", false, &t_again, &d2, &err)) goto out;
    if (close_once(&g, s, "finalize", true, &t_final, &d3, &err)) goto out;
    a = now_s();
    if (tg_store_close_read(s, "2026-11", &d4, &err)) {
        fprintf(stderr, "close_bench: read back: %s\n", err.msg);
        goto out;
    }
    t_read = now_s() - a;
    if (check(&g, &d4, "read back")) goto out;
    if (d4.ninv != d1.ninv || d2.ninv != d1.ninv || d3.ninv != d1.ninv || !d4.st.finalized) {
        fprintf(stderr, "close_bench: the closes made %zu, %zu, %zu invoices; %zu read back%s\n",
                d1.ninv, d2.ninv, d3.ninv, d4.ninv, d4.st.finalized ? "" : ", not finalized");
        goto out;
    }
    rc = 0;
out:
    if (s) tg_store_close(s);
    if (!rc) {
        size_t lines = 0, kinds[TG_LINE_KIND_COUNT_] = {0};
        for (size_t i = 0; i < d1.ninv; i++) {
            lines += d1.inv[i].nlines;
            for (size_t k = 0; k < d1.inv[i].nlines; k++) kinds[d1.inv[i].lines[k].kind]++;
        }
        long long kib = du_kib(dir);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        char rate[32];
        fmt_thousands(rate, sizeof rate, (double)g.records / t_close);
        printf("close_bench: %" PRIu64 " records, %u customers: put %.1f s; close (draft) %.1f s "
               "(%s records/s), again %.1f s, finalize %.1f s, read back %.2f s; invoices %zu, "
               "store %.2f GB\n",
               g.records, ncust, t_put, t_close, rate, t_again, t_final, t_read, d1.ninv,
               (double)kib * 1024.0 / 1e9);
        printf("close_bench: %zu invoice lines (", lines);
        for (int k = 0; k < TG_LINE_KIND_COUNT_; k++)
            printf("%s%s %zu", k ? ", " : "", tg_line_kind_name((tg_line_kind)k), kinds[k]);
        printf("), %zu statement rows, %zu settlement rows; %zu grants; %" PRId64
               " requests of exhausted capped customers given to others; generating %.1f s, "
               "setup %.1f s; peak RSS %ld MiB\n",
               d1.nstmt, d1.nsettle, ngrants, g.refused, t_gen, t_setup, ru.ru_maxrss / 1024);
        printf("%s  close (draft) of %" PRIu64 " records, %u customers: %.1f s (bar: < %.0f s)\n",
               t_close < BAR_S ? "PASS" : "FAIL", g.records, ncust, t_close, BAR_S);
    }
    tg_close_docs_release(&d1);
    tg_close_docs_release(&d2);
    tg_close_docs_release(&d3);
    tg_close_docs_release(&d4);
    free(g.cs);
    tg_config_unref(g.cfg);
    if (argc <= 3) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd)) fprintf(stderr, "close_bench: could not remove %s\n", dir);
    }
    return rc;
}
