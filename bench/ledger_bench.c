/* Ledger projection and report benchmark (issue 3).
 *
 *   build/bench/ledger_bench [N] [DIR]
 *
 * Generates N usage records (default 10,000,000) spread evenly over one
 * month (2026-11) with a realistic shape: 3 apps, 2,000 customers (a few
 * large, most small), 3 workspaces and about 20 users each, 6 features, 4
 * workflows (mostly implied by the feature), 5 models over 6 offerings at
 * 3 providers (a feature mostly uses one model, as apps configure it),
 * routes mostly primary (with their attempts and the cost at the model
 * asked). It prints the rollups' row counts, which is what
 * the cost depends on. It projects them into a fresh
 * store in DIR (default: a new temporary directory, removed after) with
 * tg_store_put_encoded in batches of 8192, as the ledger thread does
 * (records arrive encoded, as the journal wrote them; encoding is counted
 * with generating), then times month reports by customer, feature and
 * user, and prints a markdown table. */
#include "base/rng.h"
#include "meter/journal.h"
#include "report/report.h"
#include "store/store.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BATCH 8192
#define NAPPS 3
#define NCUST 2000
#define NUSERS 20

static const char *const apps[NAPPS] = {"acme", "globex", "initech"};
static const char *const plans[] = {"free", "pro", "enterprise"};
static const char *const features[] = {"summarize", "chat",     "search",
                                       "extract",   "classify", "translate"};
static const char *const workflows[] = {"", "report", "triage", "onboarding"};
static const char *const models[] = {"fast", "premium", "gpt-4o-mini", "claude-haiku", "embed"};
static const char *const offerings[] = {"openai/gpt-4o-mini", "anthropic/claude-sonnet",
                                        "openai/gpt-4o",      "anthropic/claude-haiku",
                                        "together/llama-70b", "openai/text-embed-3"};
static const char *const providers[] = {"openai", "anthropic", "openai", "anthropic", "together",
                                        "openai"};
/* each model's primary offering and its fallback */
static const int model_offering[5][2] = {{0, 3}, {1, 2}, {0, 4}, {3, 0}, {5, 5}};

static double secs(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* A customer, skewed: the square of a uniform draw favours low numbers. */
static unsigned pick_customer(tg_rng *g)
{
    uint64_t u = tg_rng_below(g, NCUST);
    return (unsigned)(u * u / NCUST);
}

static void gen(tg_rng *g, uint64_t i, uint64_t n, int64_t t0, int64_t span, tg_usage_rec *r)
{
    memset(r, 0, sizeof *r);
    int64_t t = t0 + (int64_t)((__int128)i * span / (int64_t)n);
    for (int b = 0; b < 6; b++) r->id[b] = (uint8_t)((uint64_t)t >> (40 - 8 * b));
    for (int b = 0; b < 8; b++) r->id[8 + b] = (uint8_t)(i >> (56 - 8 * b));
    unsigned c = pick_customer(g), f = (unsigned)tg_rng_below(g, 6);
    /* each feature has its model; one request in five tries another */
    unsigned m = tg_rng_below(g, 5) ? f % 5 : (unsigned)tg_rng_below(g, 5), route_draw = (unsigned)tg_rng_below(g, 100);
    snprintf(r->rid, sizeof r->rid, "req-%" PRIu64, i);
    snprintf(r->key_id, sizeof r->key_id, "key-%u", c);
    snprintf(r->tags.app, sizeof r->tags.app, "%s", apps[c % NAPPS]);
    snprintf(r->tags.customer, sizeof r->tags.customer, "cus_%04u", c);
    snprintf(r->tags.plan, sizeof r->tags.plan, "%s", plans[c % 3]);
    snprintf(r->tags.workspace, sizeof r->tags.workspace, "ws-%u", (unsigned)tg_rng_below(g, 3));
    snprintf(r->tags.user, sizeof r->tags.user, "u%02u", (unsigned)tg_rng_below(g, NUSERS));
    snprintf(r->tags.feature, sizeof r->tags.feature, "%s", features[f]);
    unsigned w = tg_rng_below(g, 10) < 8 ? f % 4 : (unsigned)tg_rng_below(g, 4);
    snprintf(r->tags.workflow, sizeof r->tags.workflow, "%s", workflows[w]);
    snprintf(r->model, sizeof r->model, "%s", models[m]);
    r->route = route_draw < 90 ? TG_RT_PRIMARY
               : route_draw < 95 ? TG_RT_FALLBACK
               : route_draw < 98 ? TG_RT_CACHE
                                 : TG_RT_DEGRADED;
    int o = model_offering[m][r->route == TG_RT_FALLBACK];
    snprintf(r->offering, sizeof r->offering, "%s", offerings[o]);
    snprintf(r->provider, sizeof r->provider, "%s", providers[o]);
    snprintf(r->rule, sizeof r->rule, "app");
    r->t_start_ms = t;
    r->latency_us = 200000 + (int64_t)tg_rng_below(g, 3000000);
    r->ttft_us = r->latency_us / 4;
    unsigned od = (unsigned)tg_rng_below(g, 1000);
    r->outcome = od < 970 ? TG_OUT_COMPLETED : od < 980 ? TG_OUT_PARTIAL : od < 995 ? TG_OUT_FAILED
                                                                                      : TG_OUT_INTERRUPTED;
    r->status = r->outcome == TG_OUT_FAILED ? 502 : r->outcome == TG_OUT_INTERRUPTED ? 0 : 200;
    r->stream = tg_rng_below(g, 2);
    r->estimated = r->outcome == TG_OUT_INTERRUPTED;
    r->tokens.prompt = 50 + (int64_t)tg_rng_below(g, 4000);
    r->tokens.cached = (int64_t)tg_rng_below(g, (uint64_t)r->tokens.prompt / 2 + 1);
    r->tokens.completion = r->outcome == TG_OUT_FAILED ? 0 : 10 + (int64_t)tg_rng_below(g, 1000);
    r->tokens.reasoning = m == 1 ? r->tokens.completion / 3 : 0;
    if (r->route == TG_RT_CACHE) r->tokens.cached = r->tokens.prompt;
    /* cost at 150 and 600 nanos per token (0.15 and 0.60 USD per 1M) */
    r->cost = (r->tokens.prompt - r->tokens.cached) * 150 + r->tokens.cached * 75 +
              r->tokens.completion * 600;
    r->charge = r->cost + r->cost * 3 / 10 + 1000;
    r->fee = r->charge / 50;
    r->margin = r->charge - r->cost - r->fee;
    /* routing: a fallback took two upstream calls, a cache hit none; a
     * degraded request was asked of a model four times dearer */
    r->attempts = r->route == TG_RT_CACHE ? 0 : r->route == TG_RT_FALLBACK ? 2 : 1;
    r->asked_cost = r->route == TG_RT_DEGRADED ? 4 * r->cost : r->cost;
}

static int report(tg_store *s, const char *by, double *t, size_t *bytes, size_t *rows)
{
    tg_report_query q;
    tg_errmsg err = {{0}};
    tg_buf out;
    tg_buf_init(&out, (size_t)1 << 30);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = tg_report_query_parse(&q, "2026-11", by, NULL, NULL, 0, &err);
    if (!rc) rc = tg_report_run(s, &q, TG_REPORT_TABLE, &out, &err);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (rc) fprintf(stderr, "report --by %s: %s\n", by, err.msg);
    *t = secs(&a, &b);
    *bytes = out.n;
    *rows = 0;
    for (size_t i = 0; i < out.n; i++) *rows += out.p[i] == '\n';
    tg_buf_release(&out);
    return rc;
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

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
    char tmpl[] = "/tmp/tg-ledger-bench-XXXXXX", path[4096];
    const char *dir = argc > 2 ? argv[2] : mkdtemp(tmpl);
    if (!dir || !n) return fprintf(stderr, "usage: ledger_bench [N] [DIR]\n"), 2;
    snprintf(path, sizeof path, "%s/" TG_STORE_FILE, dir);
    tg_errmsg err = {{0}};
    tg_store *s;
    if (tg_store_open(path, TG_STORE_RW, &s, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    tg_usage_rec *recs = malloc(BATCH * sizeof *recs);
    const uint8_t **enc = malloc(BATCH * sizeof *enc);
    size_t *len = malloc(BATCH * sizeof *len), off[BATCH];
    tg_record_marks *marks = malloc(BATCH * sizeof *marks);
    tg_buf encoded;
    tg_buf_init(&encoded, (size_t)BATCH * TG_RECORD_MAX_LEN);
    struct tm tm = {.tm_year = 2026 - 1900, .tm_mon = 10, .tm_mday = 1};
    int64_t t0 = (int64_t)timegm(&tm) * 1000, span = 30LL * 86400000;
    tg_rng g = {.s = 42};
    double t_gen = 0, t_put = 0;
    struct timespec a, b;
    size_t total_ins = 0;
    for (uint64_t i = 0; i < n; i += BATCH) {
        size_t k = n - i < BATCH ? (size_t)(n - i) : BATCH;
        clock_gettime(CLOCK_MONOTONIC, &a);
        tg_buf_clear(&encoded);
        for (size_t j = 0; j < k; j++) {
            gen(&g, i + j, n, t0, span, &recs[j]);
            off[j] = encoded.n;
            if (tg_record_encode(&recs[j], false, &encoded, &marks[j]))
                return fprintf(stderr, "encode\n"), 1;
            len[j] = encoded.n - off[j];
        }
        for (size_t j = 0; j < k; j++) enc[j] = (const uint8_t *)encoded.p + off[j];
        clock_gettime(CLOCK_MONOTONIC, &b);
        t_gen += secs(&a, &b);
        if (tg_store_put_encoded(s, enc, len, marks, k, &err))
            return fprintf(stderr, "%s\n", err.msg), 1;
        clock_gettime(CLOCK_MONOTONIC, &a);
        t_put += secs(&b, &a);
        total_ins += k;
    }
    tg_store_close(s);
    free(recs);
    free(enc);
    free(len);
    free(marks);
    tg_buf_release(&encoded);
    long long kib = du_kib(dir);

    if (tg_store_open(path, TG_STORE_RO, &s, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    printf("| measure | value |\n|---|---|\n");
    printf("| records projected | %zu |\n", total_ins);
    printf("| projection (tg_store_put_encoded, batches of %d) | %.0f records/s (%.1f s) |\n", BATCH,
           (double)total_ins / t_put, t_put);
    printf("| generating and encoding records (not counted) | %.1f s |\n", t_gen);
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        const char *t[] = {"rollup_day", "rollup_month", "rollup_user_day", "rollup_user_month",
                           "customers"};
        printf("| rollup rows |");
        for (int i = 0; i < 5; i++) {
            char q[128];
            sqlite3_stmt *st;
            snprintf(q, sizeof q, "SELECT count(*) FROM %s", t[i]);
            if (sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
                printf(" %s %lld;", t[i] + (i < 4 ? 7 : 0), (long long)sqlite3_column_int64(st, 0));
            sqlite3_finalize(st);
        }
        printf(" |\n");
    }
    sqlite3_close(db);
    printf("| database on disk (with WAL) | %.2f GiB (%.0f bytes/record) |\n",
           (double)kib / 1048576.0, (double)kib * 1024.0 / (double)total_ins);
    const char *bys[] = {"customer", "feature", "user"};
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        double t;
        size_t bytes, rows;
        rc |= report(s, bys[i], &t, &bytes, &rows);
        printf("| report --period 2026-11 --by %s | %.3f s (%zu lines, %zu bytes) |\n", bys[i], t,
               rows, bytes);
    }
    tg_store_close(s);
    if (argc <= 2) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    }
    return rc ? 1 : 0;
}
