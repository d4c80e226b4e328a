/* `tollgate close-period`, `invoices`, `invoice`, `statement`,
 * `settlement` and `export`: closing a month and reading what it made
 * (docs/invoices.md). See cli.h. */
#include "base/clock.h"
#include "bill/close.h"
#include "conf/config.h"
#include "report/cli.h"
#include "report/docs.h"
#include "report/explain_invoice.h"
#include "report/flags.h"
#include "report/invoice_html.h"
#include "report/stripe.h"
#include "store/close.h"
#include "store/plans.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* 2 after saying why when period is not a month. */
static int bad_period(const char *cmd, const char *period)
{
    tg_period p;
    if (!tg_period_named(1, tg_str_c(period), &p)) return 0;
    return tg_flag_bad(cmd, "%s is not a period: expected a month, YYYY-MM (such as 2026-11)", period);
}

/* The first word when it is not a flag: the period or invoice id. */
static const char *positional(int *argc, char ***argv)
{
    if (*argc < 1 || !strncmp((*argv)[0], "--", 2)) return NULL;
    const char *p = (*argv)[0];
    --*argc;
    ++*argv;
    return p;
}

static int format_of(const char *cmd, const flag *fs, size_t nf, bool html, tg_report_format *f,
                     bool *is_html)
{
    const char *v = tg_flag_get(fs, nf, "--format");
    tg_errmsg err;
    *f = TG_REPORT_TABLE;
    if (is_html) *is_html = false;
    if (!v) return 0;
    if (html && !strcmp(v, "html")) return *is_html = true, 0;
    if (tg_report_format_parse(v, f, &err))
        return tg_flag_bad(cmd, html ? "--format %s: expected table, csv, json or html"
                                     : "--format %s: expected table, csv or json",
                           v);
    return 0;
}

static int print(const char *cmd, int rc, tg_buf *out)
{
    if (rc) {
        fprintf(stderr, "tollgate %s: %s\n", cmd, rc == TG_ENOMEM ? "out of memory" : "output too large");
        return 1;
    }
    return tg_flag_write_out(out);
}

int tg_cli_close_period(int argc, char **argv)
{
    const char *period = positional(&argc, &argv);
    flag fs[] = {F("--config"), SW("--finalize"), F("--format")};
    size_t nf = sizeof fs / sizeof fs[0];
    if (tg_flags_parse("close-period", argc, argv, fs, nf)) return 2;
    if (!period) return tg_flag_bad("close-period", "%s", "expected the period: tollgate close-period YYYY-MM --config FILE");
    if (bad_period("close-period", period)) return 2;
    const char *config = tg_flag_get(fs, nf, "--config");
    if (!config) return tg_flag_bad("close-period", "%s", "--config FILE is required (the plans and apps to bill by)");
    tg_report_format f;
    if (format_of("close-period", fs, nf, false, &f, NULL)) return 2;
    tg_config *cfg;
    tg_errmsg err;
    if (tg_config_load(config, &cfg, &err)) {
        fprintf(stderr, "tollgate close-period: %s\n", err.msg);
        return 1;
    }
    char *path = tg_store_path(cfg->metering.data_dir);
    tg_store *s = NULL;
    int rc = path ? tg_store_open(path, TG_STORE_RW, &s, &err) : TG_ENOMEM;
    free(path);
    if (!rc) rc = tg_store_config_plans(s, cfg, &err);
    /* the file's plans as they are now, for a change no gateway loaded */
    if (!rc) rc = tg_store_plan_sync(s, cfg, (int64_t)tg_clock_wall_ms(), &err);
    tg_close_docs d;
    bool unchanged = false;
    tg_close_opts o = {.period = period, .finalize = tg_flag_get(fs, nf, "--finalize") != NULL,
                       .now_ms = (int64_t)tg_clock_wall_ms()};
    if (!rc) rc = tg_close_period(s, cfg, &o, &d, &unchanged, &err);
    if (rc) {
        fprintf(stderr, "tollgate close-period: %s\n", rc == TG_ENOMEM ? "out of memory" : err.msg);
    } else {
        tg_buf out;
        tg_buf_init(&out, 1u << 30);
        rc = print("close-period", tg_docs_close(&d, unchanged, f, &out), &out);
        tg_buf_release(&out);
        tg_close_docs_release(&d);
    }
    if (s) tg_store_close(s);
    tg_config_unref(cfg);
    return rc ? 1 : 0;
}

/* Opens the store read-only and reads period's documents; 0 or the exit
 * status. */
static int load(const char *cmd, const flag *fs, size_t nf, const char *period, tg_store **s,
                tg_close_docs *d)
{
    if (tg_flags_open_ro(cmd, fs, nf, s)) return 1;
    tg_errmsg err;
    int rc = tg_store_close_read(*s, period, d, &err);
    if (rc) {
        fprintf(stderr, "tollgate %s: %s\n", cmd, err.msg);
        tg_store_close(*s);
        return 1;
    }
    return 0;
}

/* The documents commands that take a period: invoices, statement, settlement. */
static int docs_cmd(const char *cmd, int argc, char **argv, const char *filter,
                    int (*render)(const tg_close_docs *, const char *, tg_report_format, tg_buf *))
{
    const char *period = positional(&argc, &argv);
    flag fs[] = {F("--config"), F("--data-dir"), F("--format"), F(filter)};
    size_t nf = sizeof fs / sizeof fs[0];
    if (tg_flags_parse(cmd, argc, argv, fs, nf)) return 2;
    if (!period) return tg_flag_bad(cmd, "%s", "expected the period (YYYY-MM) first");
    if (bad_period(cmd, period)) return 2;
    tg_report_format f;
    if (format_of(cmd, fs, nf, false, &f, NULL)) return 2;
    tg_store *s;
    tg_close_docs d;
    if (load(cmd, fs, nf, period, &s, &d)) return 1;
    tg_buf out;
    tg_buf_init(&out, 1u << 30);
    int rc = print(cmd, render(&d, tg_flag_get(fs, nf, filter), f, &out), &out);
    tg_buf_release(&out);
    tg_close_docs_release(&d);
    tg_store_close(s);
    return rc;
}

int tg_cli_invoices(int argc, char **argv)
{
    return docs_cmd("invoices", argc, argv, "--customer", tg_docs_invoices);
}

int tg_cli_statement(int argc, char **argv)
{
    return docs_cmd("statement", argc, argv, "--app", tg_docs_statements);
}

int tg_cli_settlement(int argc, char **argv)
{
    return docs_cmd("settlement", argc, argv, "--provider", tg_docs_settlements);
}

int tg_cli_invoice(int argc, char **argv)
{
    const char *id = positional(&argc, &argv);
    flag fs[] = {F("--config"), F("--data-dir"), F("--format")};
    size_t nf = sizeof fs / sizeof fs[0];
    if (tg_flags_parse("invoice", argc, argv, fs, nf)) return 2;
    if (!id) return tg_flag_bad("invoice", "%s", "expected the invoice id: tollgate invoice INV-2026-11-00001");
    tg_report_format f;
    bool html;
    if (format_of("invoice", fs, nf, true, &f, &html)) return 2;
    tg_store *s;
    if (tg_flags_open_ro("invoice", fs, nf, &s)) return 1;
    char period[8];
    tg_errmsg err;
    tg_close_docs d;
    int rc = tg_store_invoice_period(s, id, period, &err);
    if (!rc) rc = tg_store_close_read(s, period, &d, &err);
    tg_store_close(s);
    if (rc) {
        fprintf(stderr, "tollgate invoice: %s\n", err.msg);
        return 1;
    }
    tg_buf out;
    tg_buf_init(&out, 1u << 28);
    const tg_invoice *inv = tg_docs_find(&d, id);
    rc = print("invoice", html ? tg_invoice_html(inv, &d.st, &out) : tg_docs_invoice(&d, inv, f, &out), &out);
    tg_buf_release(&out);
    tg_close_docs_release(&d);
    return rc;
}

/* Writes b to dir/name; 1 after printing why not. */
static int write_file(const char *dir, const char *name, const tg_buf *b)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    bool ok = fp && fwrite(b->p, 1, b->n, fp) == b->n;
    if (fp && fclose(fp)) ok = false;
    if (!ok) fprintf(stderr, "tollgate export: cannot write %s: %s\n", path, strerror(errno));
    return ok ? 0 : 1;
}

int tg_cli_export(int argc, char **argv)
{
    const char *period = positional(&argc, &argv);
    flag fs[] = {F("--config"), F("--data-dir"), F("--dir")};
    size_t nf = sizeof fs / sizeof fs[0];
    if (tg_flags_parse("export", argc, argv, fs, nf)) return 2;
    const char *dir = tg_flag_get(fs, nf, "--dir");
    if (!period || !dir) return tg_flag_bad("export", "%s", "expected: tollgate export YYYY-MM --dir DIR");
    if (bad_period("export", period)) return 2;
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/invoices", dir);
    if ((mkdir(dir, 0755) && errno != EEXIST) || (mkdir(sub, 0755) && errno != EEXIST)) {
        fprintf(stderr, "tollgate export: cannot create %s: %s\n", sub, strerror(errno));
        return 1;
    }
    tg_store *s;
    tg_close_docs d;
    if (load("export", fs, nf, period, &s, &d)) return 1;
    tg_store_close(s);
    tg_buf b;
    tg_buf_init(&b, 1u << 30);
    static const struct {
        const char *name;
        int (*render)(const tg_close_docs *, const char *, tg_report_format, tg_buf *);
        tg_report_format f;
    } files[] = {
        {"invoices.csv", tg_docs_invoices, TG_REPORT_CSV},
        {"invoices.json", tg_docs_invoices, TG_REPORT_JSON},
        {"statements.csv", tg_docs_statements, TG_REPORT_CSV},
        {"statements.json", tg_docs_statements, TG_REPORT_JSON},
        {"settlements.csv", tg_docs_settlements, TG_REPORT_CSV},
        {"settlements.json", tg_docs_settlements, TG_REPORT_JSON},
    };
    int rc = 0;
    for (size_t i = 0; !rc && i < sizeof files / sizeof *files; i++) {
        tg_buf_clear(&b);
        rc = files[i].render(&d, NULL, files[i].f, &b) ? 1 : write_file(dir, files[i].name, &b);
    }
    if (!rc) {
        tg_buf_clear(&b);
        rc = tg_stripe_meter_events(&d, &b) ? 1 : write_file(dir, "stripe-meter-events.jsonl", &b);
    }
    if (!rc) {
        tg_buf_clear(&b);
        rc = tg_stripe_meter_events_csv(&d, &b) ? 1 : write_file(dir, "stripe-meter-events.csv", &b);
    }
    for (size_t i = 0; !rc && i < d.ninv; i++) {
        char name[64];
        tg_buf_clear(&b);
        snprintf(name, sizeof name, "invoices/%s.html", d.inv[i].id);
        rc = tg_invoice_html(&d.inv[i], &d.st, &b) ? 1 : write_file(dir, name, &b);
    }
    if (!rc)
        printf("wrote %zu invoices (HTML), invoices, statements and settlements (CSV and JSON) and "
               "Stripe meter events of %s (%s) to %s\n",
               d.ninv, d.st.period, d.st.finalized ? "finalized" : "draft", dir);
    tg_buf_release(&b);
    tg_close_docs_release(&d);
    return rc;
}

int tg_cli_explain_invoice(int argc, char **argv)
{
    const char *id = positional(&argc, &argv);
    flag fs[] = {F("--config"), F("--data-dir")};
    size_t nf = sizeof fs / sizeof fs[0];
    if (tg_flags_parse("explain-invoice", argc, argv, fs, nf)) return 2;
    if (!id) return tg_flag_bad("explain-invoice", "%s", "expected the invoice id: tollgate explain-invoice INV-2026-11-00001");
    tg_store *s;
    if (tg_flags_open_ro("explain-invoice", fs, nf, &s)) return 1;
    tg_buf out;
    tg_buf_init(&out, 1u << 26);
    tg_errmsg err;
    int rc = tg_explain_invoice(s, id, &out, &err);
    tg_store_close(s);
    int wrote = out.n ? tg_flag_write_out(&out) : 0;
    tg_buf_release(&out);
    if (rc) fprintf(stderr, "tollgate explain-invoice: %s\n", rc == TG_ENOMEM ? "out of memory" : err.msg);
    return rc || wrote ? 1 : 0;
}
