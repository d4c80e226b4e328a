/* libFuzzer target: tg_config_parse on arbitrary bytes, then free the
 * result. Finds crashes, leaks on the failure paths, and messages that
 * overrun their buffer. Setting a key variable makes the paths that read
 * the environment (a provider's api_key_env, a webhook's secret_env:
 * getenv, copy, scrub on free) reachable. */
#include "conf/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    if (!once) {
        setenv("TG_FUZZ_KEY", "sk-fuzz", 1);
        once = 1;
    }
    tg_config *c = NULL;
    tg_errmsg err;
    int rc = tg_config_parse("fuzz.yaml", tg_str_make((const char *)data, size), &c, &err);
    if (rc == TG_OK) {
        /* touch what the rest of the program reads */
        for (size_t i = 0; i < c->nmodels; i++) {
            const tg_model *m = tg_config_model(c, tg_str_c(c->models[i].name));
            if (m != &c->models[i] || m->noffering == 0 || !m->offerings[0]->provider) abort();
            for (size_t k = 0; k < c->nkeys; k++) (void)tg_key_allows(&c->keys[k], m);
        }
        for (size_t i = 0; i < c->nplans; i++) {
            const tg_plan *p = &c->plans[i];
            if (p->credit <= 0 || p->nthresholds > TG_MAX_THRESHOLDS) abort();
            for (size_t u = 0; u < p->nunit_credits; u++)
                if (tg_plan_unit(p, tg_str_c(p->unit_credits[u].name)) != &p->unit_credits[u])
                    abort();
        }
        tg_config_unref(c);
    } else if (strlen(err.msg) == 0 || strncmp(err.msg, "fuzz.yaml", 9) != 0) {
        abort(); /* every error names the file */
    }
    return 0;
}
