/* tollgate's command line: every subcommand is dispatched here and
 * nowhere else. Each parses its own flags; a bad flag names itself and
 * exits 2, a bad configuration names file, line and field and exits 1. */
#include "api/gateway.h"
#include "base/hash.h"
#include "base/log.h"
#include "conf/config.h"
#include "http/server.h"
#include "report/cli.h"
#include "sim/sim.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define TG_VERSION "0.1.0"

static const char usage[] =
    "tollgate " TG_VERSION " - a self-hosted AI traffic gateway\n"
    "\n"
    "usage:\n"
    "  tollgate serve --config FILE [--listen HOST:PORT] [--workers N]\n"
    "      run the gateway; SIGHUP reloads FILE, SIGTERM drains and stops\n"
    "  tollgate sim [--listen HOST:PORT] [--seed N] [--ttft-ms N] [--tokens-per-second N]\n"
    "               [--fault KIND:PERCENT]... [--require-key-env NAME] [--config FILE]\n"
    "      run the simulated provider, OpenAI's and Anthropic's dialects (faults: 429\n"
    "      500 503 timeout reset cut malformed); --config: a gateway config's sim: section\n"
    "  tollgate report [--config FILE | --data-dir DIR] [--period 2026-11] [--by customer]\n"
    "                  [--app A] [--customer C] [--limit N] [--format table|csv|json]\n"
    "      requests, tokens, cost, charge, margin by customer, workspace, user, feature,\n"
    "      workflow, model, offering, provider, route, app or day\n"
    "  tollgate usage [--config FILE | --data-dir DIR] [--period P] [--app A] [--customer C]\n"
    "                 [--rid ID] [--run RUN] [--limit N] [--format table|csv|json]\n"
    "      the usage records themselves, oldest first\n"
    "  tollgate explain-price --config FILE --model NAME [--customer C | --app A] [--plan P]\n"
    "                 [--feature F] [--unit U [--unit-count N]] [--offering ID] [--batch]\n"
    "                 [--prompt-tokens N] [--cached-tokens N] [--cache-write-tokens N]\n"
    "                 [--completion-tokens N] [--reasoning-tokens N]\n"
    "      how a request would be priced, and which rule priced it\n"
    "  tollgate explain-price --config FILE --rid REQUEST_ID\n"
    "      which rule priced a request the store has, and how the config prices it now\n"
    "  tollgate topup --config FILE --customer C [--app A] --credits N [--paid USD | --promo]\n"
    "                 [--priority P] [--expires YYYY-MM-DD] [--memo TEXT]\n"
    "      add prepaid credits (a grant) to a customer's wallet\n"
    "  tollgate wallet --config FILE --customer C [--app A] [--period YYYY-MM] [--format table|json]\n"
    "      a customer's grants and what a period used: included credits, grants, overage\n"
    "  tollgate wallet --config FILE --check\n"
    "      check that every wallet transaction sums to zero and no grant is overdrawn\n"
    "  tollgate close-period YYYY-MM --config FILE [--finalize] [--format table|csv|json]\n"
    "      close a month: an invoice per customer, a payout statement per app, a settlement\n"
    "      per provider; a draft until --finalize (after the period ends), then never changed\n"
    "  tollgate invoices YYYY-MM [--config FILE | --data-dir DIR] [--customer C] [--format ...]\n"
    "  tollgate invoice INVOICE_ID [--config FILE | --data-dir DIR] [--format table|csv|json|html]\n"
    "  tollgate statement YYYY-MM [--config FILE | --data-dir DIR] [--app A] [--format ...]\n"
    "  tollgate settlement YYYY-MM [--config FILE | --data-dir DIR] [--provider P] [--format ...]\n"
    "      what a close made: invoices, builder statements, provider settlements\n"
    "  tollgate explain-invoice INVOICE_ID [--config FILE | --data-dir DIR]\n"
    "      every amount of an invoice traced to the records, wallet entries and plan\n"
    "      history behind it, recomputed and checked\n"
    "  tollgate export YYYY-MM --dir DIR [--config FILE | --data-dir DIR]\n"
    "      every document of a closed period as files: CSV, JSON, HTML invoices, Stripe\n"
    "      meter events\n"
    "  tollgate migrate [--config FILE | --data-dir DIR]\n"
    "      create the usage store or bring its schema up to date\n"
    "  tollgate keys hash KEY\n"
    "      print the sha256 of KEY, for the keys: section of the config\n"
    "  tollgate --version\n"
    "  tollgate help\n";

static int bad_usage(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "tollgate %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nrun 'tollgate help' for usage\n");
    return 2;
}

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
    uint64_t v;
    if (tg_str_to_u64(tg_str_c(s), &v) || v > max) return TG_EINVAL;
    *out = (uint32_t)v;
    return TG_OK;
}

/* ---- running until a signal ---- */

typedef struct {
    uv_loop_t loop;
    uv_signal_t term, intr, hup;
    tg_gateway *gw;
    const char *config_path;
} tg_runner;

static void on_stop_signal(uv_signal_t *s, int signum)
{
    tg_log(TG_LOG_INFO, "signal %d: draining and stopping", signum);
    uv_stop(s->loop);
}

static void on_hup(uv_signal_t *s, int signum)
{
    (void)signum;
    tg_runner *run = s->data;
    if (!run->gw) return;
    tg_errmsg err;
    if (tg_gateway_reload(run->gw, run->config_path, &err))
        tg_log(TG_LOG_ERROR, "reload refused, the running configuration stays: %s", err.msg);
    else
        tg_log(TG_LOG_INFO, "configuration reloaded from %s", run->config_path);
}

static void on_close(uv_handle_t *h) { (void)h; }

/* Takes over SIGTERM, SIGINT and SIGHUP. Before the gateway says it is
 * listening: a supervisor may signal it as soon as it reads that line. */
static void catch_signals(tg_runner *run)
{
    uv_loop_init(&run->loop);
    uv_signal_init(&run->loop, &run->term);
    uv_signal_init(&run->loop, &run->intr);
    uv_signal_init(&run->loop, &run->hup);
    run->hup.data = run;
    uv_signal_start(&run->term, on_stop_signal, SIGTERM);
    uv_signal_start(&run->intr, on_stop_signal, SIGINT);
    uv_signal_start(&run->hup, on_hup, SIGHUP);
}

static void wait_for_signals(tg_runner *run)
{
    uv_run(&run->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&run->term, on_close);
    uv_close((uv_handle_t *)&run->intr, on_close);
    uv_close((uv_handle_t *)&run->hup, on_close);
    uv_run(&run->loop, UV_RUN_DEFAULT);
    uv_loop_close(&run->loop);
}

/* ---- subcommands ---- */

static int cmd_serve(int argc, char **argv)
{
    const char *config = NULL, *listen = NULL, *workers = NULL;
    for (int i = 0; i < argc; i++) {
        const char **slot = !strcmp(argv[i], "--config")    ? &config
                            : !strcmp(argv[i], "--listen")  ? &listen
                            : !strcmp(argv[i], "--workers") ? &workers
                                                            : NULL;
        if (!slot) return bad_usage("serve", "unknown flag %s", argv[i]);
        if (i + 1 >= argc) return bad_usage("serve", "%s needs a value", argv[i]);
        *slot = argv[++i];
    }
    if (!config) return bad_usage("serve", "%s", "--config FILE is required");
    tg_errmsg err;
    tg_config *cfg;
    if (tg_config_load(config, &cfg, &err)) {
        fprintf(stderr, "tollgate serve: %s\n", err.msg);
        return 1;
    }
    if (listen && tg_addr_parse(tg_str_c(listen), &cfg->server.listen)) {
        tg_config_unref(cfg);
        return bad_usage("serve", "--listen %s: expected HOST:PORT, e.g. 127.0.0.1:8080", listen);
    }
    if (workers && parse_u32(workers, 1024, &cfg->server.workers)) {
        tg_config_unref(cfg);
        return bad_usage("serve", "--workers %s: expected a number from 0 (one per core) to 1024",
                         workers);
    }
    tg_runner run = {.config_path = config};
    if (tg_gateway_start(cfg, &run.gw, &err)) {
        fprintf(stderr, "tollgate serve: %s\n", err.msg);
        tg_config_unref(cfg);
        return 1;
    }
    catch_signals(&run);
    tg_log(TG_LOG_INFO, "tollgate %s listening on %s:%u (config %s)", TG_VERSION,
           cfg->server.listen.host, tg_gateway_port(run.gw), config);
    wait_for_signals(&run);
    tg_gateway_stop(run.gw);
    tg_log(TG_LOG_INFO, "stopped");
    return 0;
}

static int sim_flag(tg_sim_conf *s, const char *flag, const char *v, const char **key_env)
{
    uint32_t n;
    if (!strcmp(flag, "--listen")) return tg_addr_parse(tg_str_c(v), &s->listen);
    if (!strcmp(flag, "--require-key-env")) return *key_env = v, TG_OK;
    if (!strcmp(flag, "--seed")) {
        uint64_t seed;
        if (tg_str_to_u64(tg_str_c(v), &seed)) return TG_EINVAL;
        s->seed = seed;
        return TG_OK;
    }
    if (!strcmp(flag, "--fault")) {
        const char *colon = strchr(v, ':');
        tg_sim_fault_rule *r = &s->faults[s->nfaults];
        if (s->nfaults == TG_SIM_MAX_FAULTS) return TG_EINVAL;
        if (tg_sim_fault_parse(colon ? tg_str_make(v, (size_t)(colon - v)) : tg_str_c(v), &r->kind))
            return TG_EINVAL;
        r->percent = 100;
        if (colon && (parse_u32(colon + 1, 100, &r->percent) || r->percent == 0)) return TG_EINVAL;
        uint32_t sum = r->percent;
        for (size_t i = 0; i < s->nfaults; i++) sum += s->faults[i].percent;
        if (sum > 100) return TG_EINVAL; /* the shares of requests add up past all of them */
        s->nfaults++;
        return TG_OK;
    }
    uint32_t *slot = !strcmp(flag, "--ttft-ms")             ? &s->ttft_ms
                     : !strcmp(flag, "--tokens-per-second") ? &s->tokens_per_sec
                                                            : NULL;
    if (!slot || parse_u32(v, 100000000, &n)) return TG_EINVAL;
    *slot = n;
    return TG_OK;
}

static int cmd_sim(int argc, char **argv)
{
    tg_sim_conf s;
    tg_config *cfg = NULL;
    const char *key_env = NULL;
    tg_errmsg err;
    tg_sim_conf_defaults(&s);
    s.listen = (tg_addr){"127.0.0.1", 9000};
    for (int i = 0; i < argc; i += 2) {
        if (i + 1 >= argc) return bad_usage("sim", "%s needs a value", argv[i]);
        if (!strcmp(argv[i], "--config")) {
            if (tg_config_load(argv[i + 1], &cfg, &err)) {
                fprintf(stderr, "tollgate sim: %s\n", err.msg);
                return 1;
            }
            s = cfg->sim;
            tg_config_unref(cfg);
            continue;
        }
        if (sim_flag(&s, argv[i], argv[i + 1], &key_env)) {
            fprintf(stderr, "tollgate sim: bad value for %s: %s\n", argv[i], argv[i + 1]);
            return bad_usage("sim", "unknown flag or bad value: %s", argv[i]);
        }
    }
    const char *key = NULL;
    if (key_env && !(key = getenv(key_env))) {
        fprintf(stderr, "tollgate sim: --require-key-env %s: the variable is not set\n", key_env);
        return 1;
    }
    tg_server *srv;
    if (tg_sim_start(&s, key, &srv, &err)) {
        fprintf(stderr, "tollgate sim: %s\n", err.msg);
        return 1;
    }
    tg_runner run = {0};
    catch_signals(&run);
    tg_log(TG_LOG_INFO, "tollgate sim listening on %s:%u (seed %llu)", s.listen.host,
           tg_server_port(srv), (unsigned long long)s.seed);
    wait_for_signals(&run);
    tg_server_drain(srv, 1000);
    tg_server_join(srv);
    return 0;
}

static int cmd_keys(int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[0], "hash"))
        return bad_usage("keys", "%s", "expected: tollgate keys hash KEY");
    char hex[TG_SHA256_HEX_LEN + 1];
    tg_sha256_hex(tg_str_c(argv[1]), hex);
    printf("%s\n", hex);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "serve")) return cmd_serve(argc - 2, argv + 2);
    if (!strcmp(cmd, "sim")) return cmd_sim(argc - 2, argv + 2);
    if (!strcmp(cmd, "keys")) return cmd_keys(argc - 2, argv + 2);
    if (!strcmp(cmd, "report")) return tg_cli_report(argc - 2, argv + 2);
    if (!strcmp(cmd, "usage")) return tg_cli_usage(argc - 2, argv + 2);
    if (!strcmp(cmd, "explain-price")) return tg_cli_explain_price(argc - 2, argv + 2);
    if (!strcmp(cmd, "migrate")) return tg_cli_migrate(argc - 2, argv + 2);
    if (!strcmp(cmd, "topup")) return tg_cli_topup(argc - 2, argv + 2);
    if (!strcmp(cmd, "wallet")) return tg_cli_wallet(argc - 2, argv + 2);
    if (!strcmp(cmd, "close-period")) return tg_cli_close_period(argc - 2, argv + 2);
    if (!strcmp(cmd, "invoices")) return tg_cli_invoices(argc - 2, argv + 2);
    if (!strcmp(cmd, "invoice")) return tg_cli_invoice(argc - 2, argv + 2);
    if (!strcmp(cmd, "statement")) return tg_cli_statement(argc - 2, argv + 2);
    if (!strcmp(cmd, "settlement")) return tg_cli_settlement(argc - 2, argv + 2);
    if (!strcmp(cmd, "export")) return tg_cli_export(argc - 2, argv + 2);
    if (!strcmp(cmd, "explain-invoice")) return tg_cli_explain_invoice(argc - 2, argv + 2);
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("tollgate %s\n", TG_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        fputs(usage, stdout);
        return 0;
    }
    fprintf(stderr, "tollgate: unknown command '%s'\n\n%s", cmd, usage);
    return 2;
}
