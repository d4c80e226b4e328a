/* `tollgate report`, `usage`, `migrate` and `explain-price`. See cli.h.
 *
 * The store is found through --config FILE (its metering.data_dir) or
 * --data-dir DIR, default ./tollgate-data, as `serve` would use it. The
 * readers open it read-only, so they run beside a serving gateway. */
#include "report/cli.h"
#include "report/flags.h"

#include "base/clock.h"
#include "conf/config.h"
#include "meter/price.h"
#include "report/records.h"
#include "report/report.h"
#include "route/route.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void this_month(char out[16])
{
    time_t now = (time_t)(tg_clock_wall_ms() / 1000);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(out, 16, "%04d-%02d", (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100);
}

int tg_cli_report(int argc, char **argv)
{
    flag fs[] = {F("--config"), F("--data-dir"), F("--period"), F("--by"),    F("--app"),
                 F("--customer"), F("--limit"),  F("--format")};
    size_t nf = sizeof fs / sizeof fs[0];
    if (tg_flags_parse("report", argc, argv, fs, nf)) return 2;
    char month[16];
    this_month(month);
    const char *period = tg_flag_get(fs, nf, "--period"), *limit = tg_flag_get(fs, nf, "--limit");
    uint64_t lim = 0;
    if (limit && (tg_str_to_u64(tg_str_c(limit), &lim) || lim > 1000000))
        return tg_flag_bad("report", "--limit %s: expected a number from 0 (all rows) to 1000000", limit);
    tg_report_query q;
    tg_report_format f = TG_REPORT_TABLE;
    tg_errmsg err;
    const char *format = tg_flag_get(fs, nf, "--format");
    if ((format && tg_report_format_parse(format, &f, &err)) ||
        tg_report_query_parse(&q, period ? period : month, tg_flag_get(fs, nf, "--by") ? tg_flag_get(fs, nf, "--by") : "customer",
                              tg_flag_get(fs, nf, "--app"), tg_flag_get(fs, nf, "--customer"), (size_t)lim, &err)) {
        fprintf(stderr, "tollgate report: %s\n", err.msg);
        return 2;
    }
    tg_store *s;
    int rc = tg_flags_open_ro("report", fs, nf, &s);
    if (rc) return rc;
    tg_buf out;
    tg_buf_init(&out, (size_t)1 << 30);
    rc = tg_report_run(s, &q, f, &out, &err);
    tg_store_close(s);
    if (rc) fprintf(stderr, "tollgate report: %s\n", err.msg);
    else rc = tg_flag_write_out(&out);
    tg_buf_release(&out);
    return rc ? 1 : 0;
}

int tg_cli_usage(int argc, char **argv)
{
    flag fs[] = {F("--config"), F("--data-dir"), F("--period"), F("--app"),
                 F("--customer"), F("--rid"),     F("--run"),    F("--limit"),  F("--format")};
    size_t nf = sizeof fs / sizeof fs[0];
    if (tg_flags_parse("usage", argc, argv, fs, nf)) return 2;
    tg_records_query q;
    tg_report_format f = TG_REPORT_TABLE;
    tg_errmsg err;
    const char *format = tg_flag_get(fs, nf, "--format"), *limit = tg_flag_get(fs, nf, "--limit");
    uint64_t lim = 0;
    if (limit && (tg_str_to_u64(tg_str_c(limit), &lim) || lim > 100000000))
        return tg_flag_bad("usage", "--limit %s: expected a number from 0 (all) to 100000000", limit);
    if ((format && tg_report_format_parse(format, &f, &err)) ||
        tg_records_query_parse(&q, tg_flag_get(fs, nf, "--period"), tg_flag_get(fs, nf, "--app"),
                               tg_flag_get(fs, nf, "--customer"), tg_flag_get(fs, nf, "--rid"),
                               tg_flag_get(fs, nf, "--run"), (size_t)lim, &err)) {
        fprintf(stderr, "tollgate usage: %s\n", err.msg);
        return 2;
    }
    tg_store *s;
    int rc = tg_flags_open_ro("usage", fs, nf, &s);
    if (rc) return rc;
    rc = tg_records_print(s, &q, f, stdout, &err);
    tg_store_close(s);
    if (rc) fprintf(stderr, "tollgate usage: %s\n", err.msg);
    return rc ? 1 : 0;
}

int tg_cli_migrate(int argc, char **argv)
{
    flag fs[] = {F("--config"), F("--data-dir")};
    if (tg_flags_parse("migrate", argc, argv, fs, 2)) return 2;
    char *path = tg_flags_store_path("migrate", tg_flag_get(fs, 2, "--config"), tg_flag_get(fs, 2, "--data-dir"));
    if (!path) return 1;
    int applied = 0, version = 0;
    tg_errmsg err;
    int rc = tg_store_migrate(path, &applied, &version, &err);
    if (rc) fprintf(stderr, "tollgate migrate: %s\n", err.msg);
    else printf("%s: schema version %d (%d migration%s applied now)\n", path, version, applied,
                applied == 1 ? "" : "s");
    free(path);
    return rc ? 1 : 0;
}

static int count_flag(const char *v, const char *name, int64_t *out)
{
    uint64_t n;
    if (!v) return 0;
    if (tg_str_to_u64(tg_str_c(v), &n) || n > ((uint64_t)1 << 40))
        return tg_flag_bad("explain-price", "%s: expected a whole number of tokens", name);
    *out = (int64_t)n;
    return 0;
}

/* ---- explain-price --rid: a request the store has ---- */

#define RID_MAX_RECORDS 10

typedef struct {
    tg_usage_rec *recs;
    size_t n;
} rid_matches;

static int keep_record(void *ud, const tg_usage_rec *r)
{
    rid_matches *m = ud;
    m->recs[m->n++] = *r;
    return 0;
}

static int put_recorded(tg_buf *b, const tg_usage_rec *r)
{
    char id[2 * TG_RECORD_ID_LEN + 1], cost[TG_MONEY_STRLEN], charge[TG_MONEY_STRLEN],
        margin[TG_MONEY_STRLEN], fee[TG_MONEY_STRLEN], asked[TG_MONEY_STRLEN];
    tg_record_id_hex(r->id, id);
    tg_money_fmt(asked, r->asked_cost);
    tg_money_fmt(cost, r->cost);
    tg_money_fmt(charge, r->charge);
    tg_money_fmt(margin, r->margin);
    tg_money_fmt(fee, r->fee);
    const tg_tags *t = &r->tags;
    int rc = tg_buf_printf(b,
                           "record       %s (request %s, %s, %s%s)\n"
                           "             app \"%s\" customer \"%s\" plan \"%s\" feature \"%s\"",
                           id, r->rid, tg_outcome_name(r->outcome),
                           r->stream ? "stream" : "not a stream",
                           r->estimated ? ", tokens estimated" : "", t->app, t->customer, t->plan,
                           t->feature);
    if (!rc && t->unit[0])
        rc = tg_buf_printf(b, " unit \"%s\" x %lld", t->unit, (long long)t->unit_count);
    if (!rc)
        rc = tg_buf_printf(b, "\n             model %s, offering \"%s\", route %s, ", r->model,
                           r->offering, tg_route_kind_name(r->route));
    if (!rc)
        rc = r->attempt ? tg_buf_printf(b, "billed attempt %d of the request", (int)r->attempts)
                        : tg_buf_printf(b, "%d upstream attempt%s, cost at the model asked %s",
                                        (int)r->attempts, r->attempts == 1 ? "" : "s", asked);
    return rc ? rc
              : tg_buf_printf(b, "\nrecorded     rule %s: cost %s, charge %s, margin %s, fee %s\n",
                              r->rule, cost, charge, margin, fee);
}

static const tg_offering *config_offering(const tg_config *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->nofferings; i++)
        if (!strcmp(cfg->offerings[i].id, id)) return &cfg->offerings[i];
    return NULL;
}

/* The record as recorded, then how the configuration prices it now: the
 * same offering, tags and tokens through tg_price_request, so the rule and
 * amounts it shows are the record's unless the configuration changed. */
static int explain_record(const tg_config *cfg, const tg_usage_rec *r, tg_buf *out, tg_errmsg *err)
{
    int rc = put_recorded(out, r);
    if (rc) return rc;
    if (!r->offering[0])
        return tg_buf_printf(out, "             no offering served it (refused before routing): "
                                  "nothing to price\n");
    const tg_offering *off = config_offering(cfg, r->offering);
    const tg_app *app = r->tags.app[0] ? tg_config_app(cfg, tg_str_c(r->tags.app)) : NULL;
    if (!off)
        return tg_buf_printf(out, "             offering %s is no longer in %s: cannot price it again\n",
                             r->offering, cfg->path);
    if (r->tags.app[0] && !app)
        return tg_buf_printf(out, "             app %s is no longer in %s: cannot price it again\n",
                             r->tags.app, cfg->path);
    tg_price_ctx ctx = {.app = app, .customer = tg_str_c(r->tags.customer),
                        .plan = tg_str_c(r->tags.plan), .feature = tg_str_c(r->tags.feature),
                        .model = tg_str_c(r->model), .unit = tg_str_c(r->tags.unit),
                        .unit_count = r->tags.unit_count, .batch = r->route == TG_RT_BATCH};
    size_t rule_n = strlen(r->rule);
    if (rule_n > 4 && !strcmp(r->rule + rule_n - 4, "+cap")) {
        /* the plan's hard cap lowered it: what it left is the record's charge */
        ctx.has_cap = true;
        ctx.charge_cap = r->charge;
    }
    tg_priced p;
    rc = tg_price_request(off, &ctx, &r->tokens, &p, err);
    rc = rc ? rc : tg_buf_printf(out, "priced now by %s:\n", cfg->path);
    rc = rc ? rc : tg_price_explain(off, &ctx, &r->tokens, &p, out);
    if (rc) return rc;
    bool same = p.cost == r->cost && p.charge == r->charge && p.margin == r->margin && p.fee == r->fee;
    return tg_buf_printf(out, "%s\n", same ? "same amounts as recorded"
                                           : "DIFFERENT from the record: the configuration "
                                             "changed since the request was priced");
}

static int explain_rid(const tg_config *cfg, const char *rid)
{
    tg_records_query q;
    tg_errmsg err;
    if (tg_records_query_parse(&q, NULL, NULL, NULL, rid, NULL, RID_MAX_RECORDS, &err)) {
        fprintf(stderr, "tollgate explain-price: %s\n", err.msg);
        return 2;
    }
    char *path = tg_store_path(cfg->metering.data_dir);
    tg_store *s = NULL;
    rid_matches m = {calloc(RID_MAX_RECORDS, sizeof *m.recs), 0};
    int rc = path && m.recs ? 0 : TG_ENOMEM;
    if (rc) snprintf(err.msg, sizeof err.msg, "out of memory");
    rc = rc ? rc : tg_store_open(path, TG_STORE_RO, &s, &err);
    rc = rc ? rc : tg_store_each_record(s, q.from_ms, q.to_ms, &q.f, q.limit, keep_record, &m, &err);
    if (!rc && !m.n)
        fprintf(stderr, "tollgate explain-price: no usage record has request id %s in %s\n", rid,
                path);
    tg_buf out;
    tg_buf_init(&out, 1 << 20);
    for (size_t i = 0; !rc && i < m.n; i++) {
        rc = i ? tg_buf_add_char(&out, '\n') : 0;
        rc = rc ? rc : explain_record(cfg, &m.recs[i], &out, &err);
    }
    if (rc) fprintf(stderr, "tollgate explain-price: %s\n", err.msg);
    else if (m.n) rc = tg_flag_write_out(&out);
    tg_buf_release(&out);
    if (s) tg_store_close(s);
    free(m.recs);
    free(path);
    return rc || !m.n ? 1 : 0;
}

int tg_cli_explain_price(int argc, char **argv)
{
    flag fs[] = {F("--config"),        F("--model"),           F("--offering"),        F("--customer"),
                 F("--app"),           F("--plan"),            F("--feature"),         F("--unit"),
                 F("--unit-count"),    F("--prompt-tokens"),   F("--cached-tokens"),   F("--cache-write-tokens"),
                 F("--completion-tokens"), F("--reasoning-tokens"), SW("--batch"), F("--rid")};
    size_t nf = sizeof fs / sizeof fs[0];
    if (tg_flags_parse("explain-price", argc, argv, fs, nf)) return 2;
    const char *config = tg_flag_get(fs, nf, "--config"), *model = tg_flag_get(fs, nf, "--model");
    const char *rid = tg_flag_get(fs, nf, "--rid");
    if (rid) {
        /* the record says everything the other flags would */
        for (size_t k = 1; k < nf - 1; k++)
            if (fs[k].value)
                return tg_flag_bad("explain-price", "%s: the record gives it; with --rid give only --config",
                                fs[k].name);
        if (!config) return tg_flag_bad("explain-price", "%s", "--rid needs --config FILE");
        tg_config *cfg;
        tg_errmsg err;
        if (tg_config_load(config, &cfg, &err)) {
            fprintf(stderr, "tollgate explain-price: %s\n", err.msg);
            return 1;
        }
        int rc = explain_rid(cfg, rid);
        tg_config_unref(cfg);
        return rc;
    }
    if (!config || !model) return tg_flag_bad("explain-price", "%s", "--config FILE and --model NAME are required");
    tg_tokens t = {0};
    int64_t units = -1;
    if (count_flag(tg_flag_get(fs, nf, "--prompt-tokens"), "--prompt-tokens", &t.prompt) ||
        count_flag(tg_flag_get(fs, nf, "--cached-tokens"), "--cached-tokens", &t.cached) ||
        count_flag(tg_flag_get(fs, nf, "--cache-write-tokens"), "--cache-write-tokens", &t.cache_write) ||
        count_flag(tg_flag_get(fs, nf, "--completion-tokens"), "--completion-tokens", &t.completion) ||
        count_flag(tg_flag_get(fs, nf, "--reasoning-tokens"), "--reasoning-tokens", &t.reasoning) ||
        count_flag(tg_flag_get(fs, nf, "--unit-count"), "--unit-count", &units))
        return 2;
    if (t.cached + t.cache_write > t.prompt || t.reasoning > t.completion)
        return tg_flag_bad("explain-price", "%s", "cached and cache-write tokens are part of the prompt "
                        "tokens, reasoning tokens part of the completion tokens: they cannot exceed them");
    tg_config *cfg;
    tg_errmsg err;
    if (tg_config_load(config, &cfg, &err)) {
        fprintf(stderr, "tollgate explain-price: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    const tg_model *m = tg_config_model(cfg, tg_str_c(model));
    const tg_offering *off = NULL;
    const char *oid = tg_flag_get(fs, nf, "--offering");
    for (size_t i = 0; m && i < m->noffering && !off; i++)
        if (oid ? !strcmp(m->offerings[i]->id, oid) : m->offerings[i]->provider->available)
            off = m->offerings[i];
    const char *cname = tg_flag_get(fs, nf, "--customer"), *aname = tg_flag_get(fs, nf, "--app");
    const tg_customer *c = cname ? tg_config_customer(cfg, tg_str_c(cname)) : NULL;
    const tg_app *app = c ? c->app : aname ? tg_config_app(cfg, tg_str_c(aname)) : NULL;
    const char *plan = tg_flag_get(fs, nf, "--plan");
    if (!plan) plan = c && c->plan ? c->plan->id : "";
    if (!m) fprintf(stderr, "tollgate explain-price: no model '%s' in %s\n", model, config);
    else if (!off) fprintf(stderr, "tollgate explain-price: model '%s' has %s\n", model,
                           oid ? "no such offering" : "no offering whose provider is available");
    else if (cname && !c) fprintf(stderr, "tollgate explain-price: no customer '%s' in %s\n", cname, config);
    else if (aname && !app) fprintf(stderr, "tollgate explain-price: no app '%s' in %s\n", aname, config);
    else if (aname && c && strcmp(c->app->id, aname))
        fprintf(stderr, "tollgate explain-price: customer '%s' belongs to app '%s'\n", cname, c->app->id);
    else rc = 0;
    if (!rc) {
        const char *unit = tg_flag_get(fs, nf, "--unit");
        tg_price_ctx ctx = {.app = app, .customer = tg_str_c(cname ? cname : ""), .plan = tg_str_c(plan),
                            .feature = tg_str_c(tg_flag_get(fs, nf, "--feature") ? tg_flag_get(fs, nf, "--feature") : ""),
                            .model = tg_str_c(m->name), .unit = tg_str_c(unit ? unit : ""),
                            .unit_count = units >= 0 ? units : unit ? 1 : 0,
                            .batch = tg_flag_get(fs, nf, "--batch") != NULL};
        tg_priced p;
        tg_buf out;
        tg_buf_init(&out, 1 << 20);
        rc = tg_price_request(off, &ctx, &t, &p, &err);
        if (rc) fprintf(stderr, "tollgate explain-price: %s\n", err.msg);
        else rc = tg_price_explain(off, &ctx, &t, &p, &out) || tg_flag_write_out(&out);
        tg_buf_release(&out);
        rc = rc ? 1 : 0;
    }
    tg_config_unref(cfg);
    return rc;
}
