/* The command line's flags and store, shared by its subcommands (cli.c,
 * wallet_cli.c): "--name value" pairs and "--switch"es, messages for bad
 * ones (exit status 2), and the store that --config FILE (its
 * metering.data_dir) or --data-dir DIR (default ./tollgate-data) names. */
#ifndef TG_REPORT_FLAGS_H
#define TG_REPORT_FLAGS_H

#include "base/buf.h"
#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>

#define F(name) {name, NULL, false}
#define SW(name) {name, NULL, true}

typedef struct {
    const char *name;   /* "--period" */
    const char *value;  /* NULL: not given; "" for a switch that was given */
    bool is_switch;
} flag;

/* Prints "tollgate CMD: <fmt with arg>" and the usage hint; returns 2. */
int tg_flag_bad(const char *cmd, const char *fmt, const char *arg);
/* Fills the values of fs from argv; 0, or 2 after printing why. */
int tg_flags_parse(const char *cmd, int argc, char **argv, flag *fs, size_t n);
const char *tg_flag_get(const flag *fs, size_t n, const char *name);
/* The store's path from --config or --data-dir; NULL (after printing why)
 * on a bad config. The caller frees it. */
char *tg_flags_store_path(const char *cmd, const char *config, const char *data_dir);
/* Opens the store that --config or --data-dir names (flags TG_STORE_RO or
 * TG_STORE_RW); 1 after printing why not. */
int tg_flags_open(const char *cmd, const flag *fs, size_t nf, unsigned flags, tg_store **s);
#define tg_flags_open_ro(cmd, fs, nf, s) tg_flags_open(cmd, fs, nf, TG_STORE_RO, s)
/* Writes b to stdout; 1 when that failed. */
int tg_flag_write_out(const tg_buf *b);

#endif
