/* The command line's flags and store. See flags.h. */
#include "report/flags.h"

#include "conf/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tg_flag_bad(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "tollgate %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nrun 'tollgate help' for usage\n");
    return 2;
}

int tg_flags_parse(const char *cmd, int argc, char **argv, flag *fs, size_t n)
{
    for (int i = 0; i < argc; i++) {
        flag *f = NULL;
        for (size_t k = 0; k < n && !f; k++)
            if (!strcmp(argv[i], fs[k].name)) f = &fs[k];
        if (!f) return tg_flag_bad(cmd, "unknown flag %s", argv[i]);
        if (f->is_switch) {
            f->value = "";
            continue;
        }
        if (i + 1 >= argc) return tg_flag_bad(cmd, "%s needs a value", argv[i]);
        f->value = argv[++i];
    }
    return 0;
}

const char *tg_flag_get(const flag *fs, size_t n, const char *name)
{
    for (size_t k = 0; k < n; k++)
        if (!strcmp(fs[k].name, name)) return fs[k].value;
    return NULL;
}

char *tg_flags_store_path(const char *cmd, const char *config, const char *data_dir)
{
    if (config && data_dir) {
        fprintf(stderr, "tollgate %s: give --config or --data-dir, not both\n", cmd);
        return NULL;
    }
    char *path;
    if (config) {
        tg_config *cfg;
        tg_errmsg err;
        if (tg_config_load(config, &cfg, &err)) {
            fprintf(stderr, "tollgate %s: %s\n", cmd, err.msg);
            return NULL;
        }
        path = tg_store_path(cfg->metering.data_dir);
        tg_config_unref(cfg);
    } else {
        path = tg_store_path(data_dir ? data_dir : "tollgate-data");
    }
    if (!path) fprintf(stderr, "tollgate %s: out of memory\n", cmd);
    return path;
}

int tg_flags_open(const char *cmd, const flag *fs, size_t nf, unsigned flags, tg_store **s)
{
    char *path = tg_flags_store_path(cmd, tg_flag_get(fs, nf, "--config"),
                                     tg_flag_get(fs, nf, "--data-dir"));
    if (!path) return 1;
    tg_errmsg err;
    int rc = tg_store_open(path, flags, s, &err);
    if (rc) fprintf(stderr, "tollgate %s: %s\n", cmd, err.msg);
    free(path);
    return rc ? 1 : 0;
}

int tg_flag_write_out(const tg_buf *b)
{
    return fwrite(b->p, 1, b->n, stdout) == b->n && fflush(stdout) == 0 ? 0 : 1;
}
