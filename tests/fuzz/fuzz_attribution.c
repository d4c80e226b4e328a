/* libFuzzer target: the attribution gate (gate/tags.c) on hostile
 * headers and bodies. The input is
 *   KEY-SELECTOR-BYTE, then up to 8 header values one per line
 *   (X-Tollgate-Customer, -Workspace, -User, -Feature, -Workflow, -Run,
 *   -Unit, -Unit-Count), then a blank line, then the JSON body.
 * Checks: no crash or leak, and on success every tag is a valid value or
 * empty, app and customer are consistent with the configuration, and the
 * unit count is in range. */
#include "conf/config.h"
#include "gate/tags.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char conf_text[] =
    "providers: [{name: p, base_url: 'http://127.0.0.1:9/v1'}]\n"
    "offerings: [{id: p/m, provider: p, model: m}]\n"
    "models: [{name: m, offerings: [p/m]}]\n"
    "plans: [{id: pro}]\n"
    "apps:\n"
    "  - {id: a1, create_customers: true, default_plan: pro}\n"
    "  - {id: a2}\n"
    "customers: [{id: c1, app: a1, plan: pro}, {id: c2, app: a2}]\n"
    "keys:\n"
    "  - {id: k-cust, sha256: '0000000000000000000000000000000000000000000000000000000000000001', customer: c1}\n"
    "  - {id: k-app, sha256: '0000000000000000000000000000000000000000000000000000000000000002', app: a1}\n"
    "  - {id: k-admin, sha256: '0000000000000000000000000000000000000000000000000000000000000003', admin: true}\n"
    "  - {id: k-bare, sha256: '0000000000000000000000000000000000000000000000000000000000000004'}\n"
    "metering: {enabled: false}\n";

static const char *const names[] = {"X-Tollgate-Customer", "X-Tollgate-Workspace", "X-Tollgate-User",
                                    "X-Tollgate-Feature",  "X-Tollgate-Workflow",  "X-Tollgate-Run",
                                    "X-Tollgate-Unit",     "X-Tollgate-Unit-Count"};

static void check_tag(const char *t)
{
    if (*t && !tg_tag_value_ok(tg_str_c(t))) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tg_config *cfg;
    static tg_customers *reg;
    if (!cfg) {
        tg_errmsg err;
        if (tg_config_parse("fuzz.yaml", tg_str_make(conf_text, sizeof conf_text - 1), &cfg, &err)) abort();
        if (!(reg = tg_customers_new())) abort();
    }
    if (size < 1) return 0;
    const tg_key *key = &cfg->keys[data[0] % cfg->nkeys];
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    tg_req r;
    memset(&r, 0, sizeof r);
    while (p < end && r.nheaders < sizeof names / sizeof *names) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n == 0) { p = nl ? nl + 1 : end; break; }
        if (n != 1 || *p != '-') /* "-": no such header */
            r.headers[r.nheaders] = (tg_header){tg_str_c(names[r.nheaders]), tg_str_make(p, n)};
        else
            r.headers[r.nheaders] = (tg_header){TG_STR("X-Unrelated"), TG_STR("")};
        r.nheaders++;
        p = nl ? nl + 1 : end;
    }
    tg_json_val body = {0};
    if (!tg_json_validate(p, (size_t)(end - p), TG_JSON_NO_DUP_TOPLEVEL, NULL, NULL))
        body = tg_json_root(p, (size_t)(end - p));
    tg_attribution a;
    tg_errmsg err;
    const char *param;
    tg_attr_result rc = tg_attribute(cfg, reg, key, &r, body, &a, &err, &param);
    if (rc != TG_ATTR_OK) {
        if (!memchr(err.msg, '\0', sizeof err.msg) || !err.msg[0]) abort();
        return 0;
    }
    const tg_tags *t = &a.tags;
    const char *all[] = {t->customer, t->workspace, t->user, t->feature, t->workflow, t->run, t->unit};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) check_tag(all[i]);
    if (t->unit_count < 0 || t->unit_count > 1000000 || (!t->unit[0] && t->unit_count)) abort();
    if (t->customer[0] && !t->app[0]) abort();
    if (key->customer && strcmp(t->customer, key->customer->id)) abort();
    if (key->app && (!a.app || a.app != key->app)) abort();
    return 0;
}
