/* `tollgate topup` and `tollgate wallet`: a customer's prepaid credits
 * from the command line. See cli.h.
 *
 * topup writes the grant straight into the store (beside a running
 * gateway: SQLite serialises the writers, and the gateway's ledger picks
 * the grant up within a second, docs/plans.md); wallet reads it. */
#include "base/clock.h"
#include "conf/config.h"
#include "report/cli.h"
#include "report/flags.h"
#include "report/wallet.h"
#include "store/plans.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *id;
    char app[TG_TAG_MAX + 1], plan[TG_TAG_MAX + 1];
    bool found;
} seen_customer;

static int look(void *ud, const char *app, const char *id, const char *plan, int64_t first_ms)
{
    seen_customer *c = ud;
    (void)first_ms;
    if (strcmp(id, c->id)) return TG_OK;
    snprintf(c->app, sizeof c->app, "%s", app);
    snprintf(c->plan, sizeof c->plan, "%s", plan);
    c->found = true;
    return 1; /* stop */
}

/* The app and plan of customer: configured, else seen in the store's
 * usage (a customer an app created), else new to an app that creates
 * customers (--app). 1 after printing why not. */
static int find_customer(const char *cmd, const tg_config *cfg, tg_store *s, const char *customer,
                         const char *app_id, const tg_app **app, const tg_plan **plan)
{
    const tg_customer *c = tg_config_customer(cfg, tg_str_c(customer));
    if (c) {
        *app = c->app;
        *plan = c->plan;
    } else {
        seen_customer sc = {.id = customer};
        tg_errmsg err;
        if (tg_store_each_customer(s, look, &sc, &err) < 0) {
            fprintf(stderr, "tollgate %s: %s\n", cmd, err.msg);
            return 1;
        }
        if (sc.found) {
            *app = tg_config_app(cfg, tg_str_c(sc.app));
            *plan = sc.plan[0] ? tg_config_plan(cfg, tg_str_c(sc.plan)) : NULL;
            if (!*app) {
                fprintf(stderr, "tollgate %s: customer '%s' belongs to app '%s', which %s does not define\n",
                        cmd, customer, sc.app, cfg->path);
                return 1;
            }
        } else if (app_id && (*app = tg_config_app(cfg, tg_str_c(app_id))) && (*app)->create_customers) {
            *plan = (*app)->default_plan;
        } else {
            fprintf(stderr,
                    "tollgate %s: no customer '%s' in %s or in the store; to add credits for a "
                    "customer an app will create, name the app (--app) and give it create_customers\n",
                    cmd, customer, cfg->path);
            return 1;
        }
    }
    if (app_id && strcmp(app_id, (*app)->id)) {
        fprintf(stderr, "tollgate %s: customer '%s' belongs to app '%s', not '%s'\n", cmd, customer,
                (*app)->id, app_id);
        return 1;
    }
    return 0;
}

/* Loads --config, opens its store, finds --customer; 0 or the exit status. */
static int open_customer(const char *cmd, const flag *fs, size_t nf, unsigned mode, tg_config **cfg,
                         tg_store **s, const tg_app **app, const tg_plan **plan)
{
    const char *config = tg_flag_get(fs, nf, "--config"), *customer = tg_flag_get(fs, nf, "--customer");
    if (!config || !customer) return tg_flag_bad(cmd, "%s", "--config FILE and --customer ID are required");
    tg_errmsg err;
    if (tg_config_load(config, cfg, &err)) {
        fprintf(stderr, "tollgate %s: %s\n", cmd, err.msg);
        return 1;
    }
    char *path = tg_store_path((*cfg)->metering.data_dir);
    int rc = path ? tg_store_open(path, mode, s, &err) : TG_ENOMEM;
    if (rc) fprintf(stderr, "tollgate %s: %s\n", cmd, path ? err.msg : "out of memory");
    free(path);
    /* the plans made through the admin API, which customers may be on */
    if (!rc && (rc = tg_store_config_plans(*s, *cfg, &err))) {
        fprintf(stderr, "tollgate %s: %s\n", cmd, err.msg);
        tg_store_close(*s);
    }
    if (!rc && find_customer(cmd, *cfg, *s, customer, tg_flag_get(fs, nf, "--app"), app, plan)) {
        tg_store_close(*s);
        rc = 1;
    }
    if (rc) tg_config_unref(*cfg);
    return rc ? 1 : 0;
}

int tg_cli_topup(int argc, char **argv)
{
    flag fs[] = {F("--config"),   F("--customer"), F("--app"),  F("--credits"), F("--paid"),
                 SW("--promo"),   F("--priority"), F("--expires"), F("--memo")};
    size_t nf = sizeof fs / sizeof fs[0];
    if (tg_flags_parse("topup", argc, argv, fs, nf)) return 2;
    const char *prio = tg_flag_get(fs, nf, "--priority"), *memo = tg_flag_get(fs, nf, "--memo");
    tg_topup t = {.credits = tg_str_c(tg_flag_get(fs, nf, "--credits")),
                  .paid = tg_str_c(tg_flag_get(fs, nf, "--paid")),
                  .expires = tg_str_c(tg_flag_get(fs, nf, "--expires")),
                  .promo = tg_flag_get(fs, nf, "--promo") != NULL};
    if (prio) {
        bool neg = prio[0] == '-';
        uint64_t v;
        if (tg_str_to_u64(tg_str_c(prio + neg), &v) || v > 1000000)
            return tg_flag_bad("topup", "--priority %s: expected a whole number from -1000000 to 1000000", prio);
        t.priority = neg ? -(int64_t)v : (int64_t)v;
    }
    if (memo && strlen(memo) > TG_TAG_MAX) return tg_flag_bad("topup", "%s", "--memo: at most 128 bytes");
    int64_t now = (int64_t)tg_clock_wall_ms();
    tg_grant g;
    tg_nanos paid;
    tg_errmsg err;
    if (tg_grant_from_topup(&t, now, &g, &paid, &err)) return tg_flag_bad("topup", "--%s", err.msg);
    tg_config *cfg;
    tg_store *s;
    const tg_app *app;
    const tg_plan *plan;
    int rc = open_customer("topup", fs, nf, TG_STORE_RW, &cfg, &s, &app, &plan);
    if (rc) return rc;
    const char *customer = tg_flag_get(fs, nf, "--customer");
    rc = tg_store_add_grant(s, tg_str_c(app->id), tg_str_c(customer), &g, paid,
                            tg_str_c(memo ? memo : ""), now, &err);
    if (rc) {
        fprintf(stderr, "tollgate topup: %s\n", err.msg);
    } else {
        char c[TG_MONEY_STRLEN];
        tg_money_fmt(c, g.granted);
        printf("%s: %s credits (%s) for customer %s of app %s\n", g.id, c, tg_grant_kind_name(g.kind),
               customer, app->id);
    }
    tg_store_close(s);
    tg_config_unref(cfg);
    return rc ? 1 : 0;
}

/* --check: the whole wallet ledger against its invariants. */
static int check_all(const flag *fs, size_t nf)
{
    tg_store *s;
    if (tg_flags_open_ro("wallet", fs, nf, &s)) return 1;
    tg_errmsg err;
    int64_t tx = 0, grants = 0;
    int rc = tg_store_wallet_check(s, &tx, &grants, &err);
    if (rc) fprintf(stderr, "tollgate wallet: %s\n", err.msg);
    else
        printf("wallet ledger: %lld transactions, every one sums to zero; %lld grants, none below "
               "zero or above what it granted\n", (long long)tx, (long long)grants);
    tg_store_close(s);
    return rc ? 1 : 0;
}

int tg_cli_wallet(int argc, char **argv)
{
    flag fs[] = {F("--config"), F("--customer"), F("--app"), F("--period"), F("--format"),
                 SW("--check")};
    size_t nf = sizeof fs / sizeof fs[0];
    if (tg_flags_parse("wallet", argc, argv, fs, nf)) return 2;
    if (tg_flag_get(fs, nf, "--check")) return check_all(fs, nf);
    tg_report_format f = TG_REPORT_TABLE;
    tg_errmsg err;
    const char *format = tg_flag_get(fs, nf, "--format");
    if (format && (tg_report_format_parse(format, &f, &err) || f == TG_REPORT_CSV))
        return tg_flag_bad("wallet", "--format %s: expected table or json", format);
    tg_config *cfg;
    tg_store *s;
    const tg_app *app;
    const tg_plan *plan;
    int rc = open_customer("wallet", fs, nf, TG_STORE_RO, &cfg, &s, &app, &plan);
    if (rc) return rc;
    tg_wallet_view v;
    tg_buf out;
    tg_buf_init(&out, 16 << 20);
    rc = tg_wallet_view_load(s, tg_str_c(app->id), tg_str_c(tg_flag_get(fs, nf, "--customer")), plan,
                             app->period_anchor_day, tg_flag_get(fs, nf, "--period"),
                             (int64_t)tg_clock_wall_ms(), &v, &err);
    if (!rc) rc = tg_wallet_render(&v, f, &out);
    if (rc) fprintf(stderr, "tollgate wallet: %s\n", rc == TG_ENOMEM ? "out of memory" : err.msg);
    else rc = tg_flag_write_out(&out);
    tg_wallet_view_release(&v);
    tg_buf_release(&out);
    tg_store_close(s);
    tg_config_unref(cfg);
    return rc ? 1 : 0;
}
