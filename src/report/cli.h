/* The command-line subcommands that read and explain usage: `report`,
 * `usage`, `migrate` and `explain-price` (cli.c); wallets: `topup` and
 * `wallet` (wallet_cli.c); and closing periods (close_cli.c). main.c dispatches to them.
 * Each parses its own flags and returns the process's exit status: 0, 1
 * when the work failed (the message names why), 2 for a bad flag. */
#ifndef TG_REPORT_CLI_H
#define TG_REPORT_CLI_H

int tg_cli_report(int argc, char **argv);
int tg_cli_usage(int argc, char **argv);
int tg_cli_migrate(int argc, char **argv);
int tg_cli_explain_price(int argc, char **argv);
int tg_cli_topup(int argc, char **argv);
int tg_cli_wallet(int argc, char **argv);
/* Closing periods (close_cli.c): `close-period`, `invoices`, `invoice`,
 * `statement`, `settlement`, `export`, `explain-invoice`. */
int tg_cli_close_period(int argc, char **argv);
int tg_cli_invoices(int argc, char **argv);
int tg_cli_invoice(int argc, char **argv);
int tg_cli_statement(int argc, char **argv);
int tg_cli_settlement(int argc, char **argv);
int tg_cli_export(int argc, char **argv);
int tg_cli_explain_invoice(int argc, char **argv);

#endif
