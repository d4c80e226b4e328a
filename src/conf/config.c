/* The configuration loader: a YAML tree (conf/yaml.h) walked into a
 * tg_config snapshot; see config.h for the contract.
 *
 * The readers of conf/yaml.h keep the dotted path of the field being read
 * ("providers[0].base_url") so that every message reads
 * "FILE:LINE: path: problem"; this file, catalog.c and plans.c hold the
 * schema (walk.h is what they share). Every mapping is checked against the
 * fields it may hold before any is read, so a typo is an error, never a
 * silently dropped setting.
 * Sections are read in dependency order whatever their order in the file:
 * sim before providers (builtin:sim needs it), providers before offerings,
 * offerings before models, models before the catalog (catalog.c: plans,
 * which name models, apps, customers, then keys, which name them). A
 * snapshot under construction is always freeable: arrays are calloc'd to
 * their final size up front (so pointers into them stay valid) and counts
 * grow as items are filled.
 *
 * Secrets: provider keys come from getenv at load time and are never put in
 * a message (nor are key hashes or webhook secrets: catalog.c). */
#include "conf/config.h"
#include "base/jsonw.h"
#include "conf/walk.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE_BYTES (4u << 20)
#define DAY_MS 86400000u

/* ---- addresses and fault names ---------------------------------------- */

int tg_addr_parse(tg_str s, tg_addr *out)
{
    tg_str host, port;
    int af = AF_INET;
    if (s.n && s.p[0] == '[') {
        const char *close = memchr(s.p, ']', s.n);
        if (!close) return TG_EINVAL;
        host = tg_str_make(s.p + 1, (size_t)(close - s.p) - 1);
        tg_str rest = tg_str_make(close + 1, s.n - (size_t)(close + 1 - s.p));
        if (rest.n < 1 || rest.p[0] != ':') return TG_EINVAL;
        port = tg_str_make(rest.p + 1, rest.n - 1);
        af = AF_INET6;
    } else {
        size_t i = s.n;
        while (i > 0 && s.p[i - 1] != ':')
            i--;
        if (i == 0) return TG_EINVAL;
        host = tg_str_make(s.p, i - 1);
        port = tg_str_make(s.p + i, s.n - i);
    }
    char buf[sizeof out->host];
    if (host.n == 0 || host.n >= sizeof buf || memchr(host.p, '\0', host.n)) return TG_EINVAL;
    memcpy(buf, host.p, host.n);
    buf[host.n] = '\0';
    unsigned char bin[16];
    if (inet_pton(af, buf, bin) != 1) return TG_EINVAL;
    uint64_t p;
    if (tg_str_to_u64(port, &p) || p > 65535) return TG_EINVAL;
    memcpy(out->host, buf, host.n + 1);
    out->port = (uint16_t)p;
    return TG_OK;
}

static const char *const fault_names[] = {"none",    "429",   "500", "503",
                                          "timeout", "reset", "cut", "malformed"};

int tg_sim_fault_parse(tg_str s, tg_sim_fault *out)
{
    for (int i = TG_SIM_FAULT_429; i <= TG_SIM_FAULT_MALFORMED; i++)
        if (tg_str_eq(s, tg_str_c(fault_names[i]))) {
            *out = (tg_sim_fault)i;
            return TG_OK;
        }
    return TG_EINVAL;
}

const char *tg_sim_fault_name(tg_sim_fault f)
{
    return (unsigned)f <= TG_SIM_FAULT_MALFORMED ? fault_names[f] : "unknown";
}

void tg_sim_conf_defaults(tg_sim_conf *s)
{
    memset(s, 0, sizeof *s);
    s->enabled = false;
    tg_addr_parse(TG_STR("127.0.0.1:0"), &s->listen);
    s->seed = 1;
    s->completion_min = 16;
    s->completion_max = 64;
    s->embedding_dims = 16;
    s->retry_after_s = 1;
}

static int config_defaults(tg_config *c)
{
    tg_server_conf *s = &c->server;
    tg_addr_parse(TG_STR("127.0.0.1:8080"), &s->listen);
    s->workers = 0;
    s->max_connections = 4096;
    s->max_header_bytes = 32u << 10;
    s->max_body_bytes = 8u << 20;
    s->max_response_bytes = 64u << 20;
    s->header_timeout_ms = 10000;
    s->request_timeout_ms = 60000;
    s->idle_timeout_ms = 60000;
    s->shutdown_timeout_ms = 10000;
    c->log_level = TG_LOG_INFO;
    tg_sim_conf_defaults(&c->sim);
    tg_metering_conf *mt = &c->metering;
    mt->enabled = true;
    mt->fsync = TG_FSYNC_INTERVAL;
    mt->fsync_interval_ms = 1000;
    mt->segment_bytes = 64u << 20;
    mt->batch_records = 8192;
    mt->flush_ms = 200;
    atomic_init(&c->refs, 1);
    return (mt->data_dir = strdup("tollgate-data")) ? TG_OK : TG_ENOMEM;
}

/* ---- values particular to this schema -------------------------------- */

static int addr_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    int rc = tg_yaml_need_scalar(w, v);
    if (rc) return rc;
    if (tg_addr_parse(v->str, dst))
        return tg_yaml_fail(w, v->line,
                            "must be IPV4:PORT or [IPV6]:PORT with a numeric "
                            "address, e.g. 127.0.0.1:8080 or [::1]:8080");
    return TG_OK;
}

/* ---- server, log, sim -------------------------------------------------- */

static const tg_yaml_u32 server_u32[] = {
    TG_CONF_U32(tg_server_conf, "workers", workers, 0, 1024),
    TG_CONF_U32(tg_server_conf, "max_connections", max_connections, 1, 1000000),
    TG_CONF_U32(tg_server_conf, "max_header_bytes", max_header_bytes, 1024, 16u << 20),
    TG_CONF_U32(tg_server_conf, "max_body_bytes", max_body_bytes, 1, 1u << 30),
    TG_CONF_U32(tg_server_conf, "max_response_bytes", max_response_bytes, 1024, 1u << 30),
    TG_CONF_U32(tg_server_conf, "header_timeout_ms", header_timeout_ms, 1, DAY_MS),
    TG_CONF_U32(tg_server_conf, "request_timeout_ms", request_timeout_ms, 1, DAY_MS),
    TG_CONF_U32(tg_server_conf, "idle_timeout_ms", idle_timeout_ms, 1, DAY_MS),
    TG_CONF_U32(tg_server_conf, "shutdown_timeout_ms", shutdown_timeout_ms, 0, DAY_MS),
};

static int walk_server(tg_yaml_walk *w, const tg_yaml_node *m)
{
    // clang-format off
    static const char *const fields[] = {
        "listen", "workers", "max_connections", "max_header_bytes", "max_body_bytes",
        "max_response_bytes", "header_timeout_ms", "request_timeout_ms", "idle_timeout_ms",
        "shutdown_timeout_ms", NULL};
    // clang-format on
    int rc = tg_yaml_check_fields(w, m, fields);
    if (!rc) rc = tg_yaml_field(w, m, "listen", addr_value, &tg_conf__config(w)->server.listen);
    if (!rc)
        rc = tg_yaml_u32_fields(w, m, &tg_conf__config(w)->server, server_u32,
                                sizeof server_u32 / sizeof *server_u32);
    return rc;
}

static int level_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    int rc = tg_yaml_need_scalar(w, v);
    if (rc) return rc;
    if (tg_log_parse_level(v->str, dst))
        return tg_yaml_fail(w, v->line, "must be one of debug, info, warn, error, off");
    return TG_OK;
}

static int walk_log(tg_yaml_walk *w, const tg_yaml_node *m)
{
    static const char *const fields[] = {"level", NULL};
    int rc = tg_yaml_check_fields(w, m, fields);
    if (!rc) rc = tg_yaml_field(w, m, "level", level_value, &tg_conf__config(w)->log_level);
    return rc;
}

static int completion_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    static const char *const fields[] = {"min", "max", NULL};
    static const tg_yaml_u32 f[] = {
        TG_CONF_U32(tg_sim_conf, "min", completion_min, 0, 1000000),
        TG_CONF_U32(tg_sim_conf, "max", completion_max, 0, 1000000),
    };
    tg_sim_conf *s = dst;
    int rc = tg_yaml_need_map(w, v);
    if (!rc) rc = tg_yaml_check_fields(w, v, fields);
    if (!rc) rc = tg_yaml_u32_fields(w, v, s, f, 2);
    if (!rc && s->completion_min > s->completion_max)
        rc = tg_yaml_fail(w, v->line, "min (%u) is more than max (%u)", s->completion_min,
                          s->completion_max);
    return rc;
}

static int fault_rule(tg_yaml_walk *w, const tg_yaml_node *m, tg_sim_fault_rule *r)
{
    static const char *const fields[] = {"kind", "percent", NULL};
    static const tg_yaml_u32 f[] = {TG_CONF_U32(tg_sim_fault_rule, "percent", percent, 1, 100)};
    const tg_yaml_node *kind, *pct;
    int rc = tg_yaml_need_map(w, m);
    if (!rc) rc = tg_yaml_check_fields(w, m, fields);
    if (!rc) rc = tg_yaml_require(w, m, "kind", &kind);
    if (!rc) rc = tg_yaml_require(w, m, "percent", &pct);
    if (!rc) rc = tg_yaml_u32_fields(w, m, r, f, 1);
    if (rc) return rc;
    size_t mark = tg_yaml_push_field(w, "kind");
    rc = tg_yaml_need_scalar(w, kind);
    if (!rc && tg_sim_fault_parse(kind->str, &r->kind))
        rc = tg_yaml_fail(w, kind->line,
                          "must be one of 429, 500, 503, timeout, reset, cut, malformed");
    tg_yaml_pop(w, mark);
    return rc;
}

static int faults_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_sim_conf *s = dst;
    int rc = tg_yaml_need_seq(w, v);
    if (rc) return rc;
    if (v->n > TG_SIM_MAX_FAULTS)
        return tg_yaml_fail(w, v->line, "at most %d fault rules", TG_SIM_MAX_FAULTS);
    uint32_t total = 0;
    for (const tg_yaml_node *it = v->child; it; it = it->next) {
        size_t i = s->nfaults, mark = tg_yaml_push_index(w, i);
        rc = fault_rule(w, it, &s->faults[i]);
        for (size_t j = 0; !rc && j < i; j++)
            if (s->faults[j].kind == s->faults[i].kind)
                rc = tg_yaml_fail(w, it->line, "fault kind %s is listed twice",
                                  tg_sim_fault_name(s->faults[i].kind));
        tg_yaml_pop(w, mark);
        if (rc) return rc;
        total += s->faults[i].percent;
        s->nfaults++;
    }
    if (total > 100)
        return tg_yaml_fail(w, v->line, "percentages add up to %u, more than 100", total);
    return TG_OK;
}

static const tg_yaml_u32 sim_u32[] = {
    TG_CONF_U32(tg_sim_conf, "ttft_ms", ttft_ms, 0, 600000),
    TG_CONF_U32(tg_sim_conf, "tokens_per_second", tokens_per_sec, 0, 1000000),
    TG_CONF_U32(tg_sim_conf, "embedding_dims", embedding_dims, 1, 65536),
    TG_CONF_U32(tg_sim_conf, "retry_after_s", retry_after_s, 0, 86400),
};

static int walk_sim(tg_yaml_walk *w, const tg_yaml_node *m)
{
    static const char *const fields[] = {
        "enabled",           "listen",         "seed",          "ttft_ms", "tokens_per_second",
        "completion_tokens", "embedding_dims", "retry_after_s", "faults",  NULL};
    tg_sim_conf *s = &tg_conf__config(w)->sim;
    int rc = tg_yaml_check_fields(w, m, fields);
    if (!rc) rc = tg_yaml_field(w, m, "enabled", tg_conf__bool_value, &s->enabled);
    if (!rc) rc = tg_yaml_field(w, m, "listen", addr_value, &s->listen);
    if (!rc) rc = tg_yaml_u32_fields(w, m, s, sim_u32, sizeof sim_u32 / sizeof *sim_u32);
    const tg_yaml_node *seed = tg_yaml_get(m, "seed");
    if (!rc && seed) {
        size_t mark = tg_yaml_push_field(w, "seed");
        rc = tg_yaml_u64(w, seed, 0, UINT64_MAX, &s->seed);
        tg_yaml_pop(w, mark);
    }
    if (!rc) rc = tg_yaml_field(w, m, "completion_tokens", completion_value, s);
    if (!rc) rc = tg_yaml_field(w, m, "faults", faults_value, s);
    return rc;
}

/* ---- providers --------------------------------------------------------- */

static int base_url_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_provider *p = dst;
    tg_str s;
    int rc = tg_yaml_text(w, v, TG_CONF_MAX_URL, &s);
    if (rc) return rc;
    if (tg_str_eq(s, TG_STR("builtin:sim"))) {
        if (!tg_conf__config(w)->sim.enabled)
            return tg_yaml_fail(w, v->line,
                                "builtin:sim needs the simulated provider: set sim.enabled: true");
        p->builtin_sim = true;
        return TG_OK; /* base_url stays NULL until `serve` starts the sim */
    }
    if ((rc = tg_conf__url(w, v, &s))) return rc;
    /* API paths are appended to it */
    if (memchr(s.p, '?', s.n) || memchr(s.p, '#', s.n))
        return tg_yaml_fail(w, v->line, "must not contain '?' or '#'");
    while (s.p[s.n - 1] == '/') /* stops at the host, which tg_conf__url requires */
        s.n--;
    return tg_conf__dup(w, s, &p->base_url);
}

/* Reads the key now, so a reload sees the environment of the process. */
static int api_key_env_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_provider *p = dst;
    tg_str s;
    int rc = tg_conf__env_name(w, v, &s);
    if (!rc) rc = tg_conf__dup(w, s, &p->api_key_env);
    if (rc) return rc;
    const char *key = getenv(p->api_key_env);
    p->available = key && *key;
    if (!p->available) return TG_OK;
    for (const char *k = key; *k; k++)
        if ((unsigned char)*k <= 0x20 || *k == 0x7f) /* it goes into a header */
            return tg_yaml_fail(w, v->line,
                                "the value of $%s contains spaces or control characters",
                                p->api_key_env);
    return tg_conf__dup(w, tg_str_c(key), &p->api_key);
}

static bool is_tchar(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Headers that carry the client's tollgate key or belong to one hop. */
// clang-format off
static const char *const never_forwarded[] = {
    "authorization", "proxy-authorization", "x-api-key", "cookie", "host", "content-length",
    "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer", "expect", NULL};
// clang-format on

static int header_name(tg_yaml_walk *w, const tg_yaml_node *v, tg_provider *p)
{
    tg_str s;
    int rc = tg_yaml_text(w, v, TG_CONF_MAX_NAME, &s);
    if (rc) return rc;
    for (size_t i = 0; i < s.n; i++)
        if (!is_tchar(s.p[i])) return tg_yaml_fail(w, v->line, "is not a valid header name");
    char q[48];
    for (size_t i = 0; never_forwarded[i]; i++)
        if (tg_str_ieq(s, tg_str_c(never_forwarded[i])))
            return tg_yaml_fail(w, v->line,
                                "%s is never forwarded (it carries credentials or belongs "
                                "to one connection)",
                                tg_yaml_quote(q, s));
    for (size_t i = 0; i < p->nforward_headers; i++)
        if (tg_str_ieq(s, tg_str_c(p->forward_headers[i])))
            return tg_yaml_fail(w, v->line, "header '%s' is listed twice", tg_yaml_quote(q, s));
    return tg_conf__dup(w, s, &p->forward_headers[p->nforward_headers++]);
}

static int forward_headers_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_provider *p = dst;
    int rc = tg_yaml_need_seq(w, v);
    if (rc) return rc;
    if (v->n > TG_MAX_FORWARD_HEADERS)
        return tg_yaml_fail(w, v->line, "at most %d headers", TG_MAX_FORWARD_HEADERS);
    size_t i = 0;
    for (const tg_yaml_node *it = v->child; it && !rc; it = it->next, i++) {
        size_t mark = tg_yaml_push_index(w, i);
        rc = header_name(w, it, p);
        tg_yaml_pop(w, mark);
    }
    return rc;
}

static int dialect_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    int rc = tg_yaml_need_scalar(w, v);
    if (rc) return rc;
    if (tg_str_eq(v->str, TG_STR("openai"))) *(tg_dialect *)dst = TG_DIALECT_OPENAI;
    else if (tg_str_eq(v->str, TG_STR("anthropic"))) *(tg_dialect *)dst = TG_DIALECT_ANTHROPIC;
    else return tg_yaml_fail(w, v->line, "must be openai or anthropic");
    return TG_OK;
}

/* A header value: printable ASCII without spaces. */
static int version_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_str s;
    int rc = tg_yaml_text(w, v, TG_CONF_MAX_NAME, &s);
    if (rc) return rc;
    for (size_t i = 0; i < s.n; i++)
        if ((unsigned char)s.p[i] <= 0x20 || (unsigned char)s.p[i] >= 0x7f)
            return tg_yaml_fail(w, v->line, "must be printable ASCII without spaces");
    free(*(char **)dst); /* the default */
    *(char **)dst = NULL;
    return tg_conf__dup(w, s, dst);
}

static const tg_yaml_u32 provider_u32[] = {
    TG_CONF_U32(tg_provider, "connect_timeout_ms", connect_timeout_ms, 1, DAY_MS),
    TG_CONF_U32(tg_provider, "first_byte_timeout_ms", first_byte_timeout_ms, 1, DAY_MS),
    TG_CONF_U32(tg_provider, "total_timeout_ms", total_timeout_ms, 1, DAY_MS),
    TG_CONF_U32(tg_provider, "default_max_tokens", default_max_tokens, 1, 100000000),
};

static int provider_item(tg_yaml_walk *w, const tg_yaml_node *m, void *item, tg_yaml_dupent *d)
{
    tg_provider *p = item;
    // clang-format off
    static const char *const fields[] = {
        "name", "dialect", "base_url", "api_key_env", "connect_timeout_ms",
        "first_byte_timeout_ms", "total_timeout_ms", "forward_headers", "anthropic_version",
        "default_max_tokens", NULL};
    // clang-format on
    const tg_yaml_node *v;
    p->line = m->line;
    p->dialect = TG_DIALECT_OPENAI;
    p->available = true;
    p->connect_timeout_ms = 5000;
    p->first_byte_timeout_ms = 120000;
    p->total_timeout_ms = 600000;
    p->default_max_tokens = 4096;
    int rc = tg_conf__dup(w, TG_STR("2023-06-01"), &p->anthropic_version);
    if (!rc) rc = tg_yaml_need_map(w, m);
    if (!rc) rc = tg_yaml_check_fields(w, m, fields);
    if (!rc) rc = tg_yaml_require(w, m, "name", &v);
    if (!rc) rc = tg_yaml_require(w, m, "base_url", &v);
    if (!rc) rc = tg_yaml_field(w, m, "name", tg_conf__name_value, &p->name);
    if (!rc) rc = tg_yaml_field(w, m, "dialect", dialect_value, &p->dialect);
    if (!rc) rc = tg_yaml_field(w, m, "base_url", base_url_value, p);
    if (!rc) rc = tg_yaml_field(w, m, "api_key_env", api_key_env_value, p);
    if (!rc) rc = tg_yaml_u32_fields(w, m, p, provider_u32, sizeof provider_u32 / sizeof *provider_u32);
    if (!rc) rc = tg_yaml_field(w, m, "forward_headers", forward_headers_value, p);
    if (!rc) rc = tg_yaml_field(w, m, "anthropic_version", version_value, &p->anthropic_version);
    if (!rc) *d = (tg_yaml_dupent){tg_str_c(p->name), 0, tg_yaml_get(m, "name")->line};
    return rc;
}

/* ---- offerings, models, keys ------------------------------------------ */

static int offering_item(tg_yaml_walk *w, const tg_yaml_node *m, void *item, tg_yaml_dupent *d)
{
    static const char *const fields[] = {"id", "provider", "model", "price", NULL};
    tg_offering *o = item;
    const tg_yaml_node *id, *prov, *model;
    o->line = m->line;
    int rc = tg_yaml_need_map(w, m);
    if (!rc) rc = tg_yaml_check_fields(w, m, fields);
    if (!rc) rc = tg_yaml_require(w, m, "id", &id);
    if (!rc) rc = tg_yaml_require(w, m, "provider", &prov);
    if (!rc) rc = tg_yaml_require(w, m, "model", &model);
    if (!rc) rc = tg_yaml_field(w, m, "id", tg_conf__id_value, &o->id);
    if (!rc) rc = tg_yaml_field(w, m, "model", tg_conf__id_value, &o->upstream_model);
    if (!rc) rc = tg_yaml_field(w, m, "price", tg_conf__price_value, &o->price);
    if (!rc) {
        tg_buf q;
        tg_buf_init(&q, 4096);
        rc = tg_jsonw_str(&q, tg_str_c(o->upstream_model));
        if (rc)
            tg_buf_release(&q);
        else
            o->upstream_json = q.p; /* NUL-terminated; owned by the snapshot */
    }
    if (rc) return rc;
    size_t mark = tg_yaml_push_field(w, "provider");
    rc = tg_yaml_need_scalar(w, prov);
    if (!rc) o->provider = (tg_provider *)tg_config_provider(tg_conf__config(w), prov->str);
    if (!rc && !o->provider) {
        tg_config *c = tg_conf__config(w);
        char q[48], list[120];
        rc = tg_yaml_fail(w, prov->line, "unknown provider '%s' (defined: %s)",
                          tg_yaml_quote(q, prov->str),
                          TG_CONF_NAMES(list, tg_provider, c->providers, c->nproviders, name));
    }
    tg_yaml_pop(w, mark);
    *d = (tg_yaml_dupent){tg_str_c(o->id), 0, id->line};
    return rc;
}

static const tg_offering *find_offering(const tg_config *c, tg_str id)
{
    for (size_t i = 0; i < c->nofferings; i++)
        if (tg_str_eq(tg_str_c(c->offerings[i].id), id)) return &c->offerings[i];
    return NULL;
}

/* An item of model.offerings: an offering id, or {offering: ID, weight: N}. */
static int model_offering(tg_yaml_walk *w, const tg_yaml_node *v, tg_model *md)
{
    static const char *const fields[] = {"offering", "weight", NULL};
    const tg_yaml_node *id = v;
    uint32_t weight = 1;
    int rc = TG_OK;
    if (v->kind == TG_YAML_MAP) {
        static const tg_yaml_u32 wf[] = {{"weight", 0, 1, 1000000}};
        rc = tg_yaml_check_fields(w, v, fields);
        if (!rc) rc = tg_yaml_require(w, v, "offering", &id);
        if (!rc) rc = tg_yaml_u32_fields(w, v, &weight, wf, 1);
        if (rc) return rc;
    }
    if ((rc = tg_yaml_need_scalar(w, id))) return rc;
    tg_config *c = tg_conf__config(w);
    char q[48], list[120];
    const tg_offering *o = find_offering(c, id->str);
    if (!o)
        return tg_yaml_fail(w, id->line, "unknown offering '%s' (defined: %s)",
                            tg_yaml_quote(q, id->str),
                            TG_CONF_NAMES(list, tg_offering, c->offerings, c->nofferings, id));
    for (size_t i = 0; i < md->noffering; i++)
        if (md->offerings[i] == o)
            return tg_yaml_fail(w, id->line, "offering '%s' is listed twice",
                                tg_yaml_quote(q, id->str));
    md->weights[md->noffering] = weight;
    md->offerings[md->noffering++] = (tg_offering *)o;
    return TG_OK;
}

static int model_offerings_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_model *md = dst;
    int rc = tg_yaml_need_seq(w, v);
    if (rc) return rc;
    if (v->n == 0) return tg_yaml_fail(w, v->line, "must list at least one offering");
    if (!(md->offerings = calloc(v->n, sizeof *md->offerings)) ||
        !(md->weights = calloc(v->n, sizeof *md->weights)))
        return tg_yaml_nomem(w);
    size_t i = 0;
    for (const tg_yaml_node *it = v->child; it && !rc; it = it->next, i++) {
        size_t mark = tg_yaml_push_index(w, i);
        rc = model_offering(w, it, md);
        tg_yaml_pop(w, mark);
    }
    return rc;
}

int tg_conf__strategy_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    int rc = tg_yaml_need_scalar(w, v);
    for (tg_strategy s = TG_STRATEGY_PRIORITY; !rc && s <= TG_STRATEGY_WEIGHTED; s++)
        if (tg_str_eq(v->str, tg_str_c(tg_strategy_name(s)))) {
            *(tg_strategy *)dst = s;
            return TG_OK;
        }
    return rc ? rc : tg_yaml_fail(w, v->line, "must be one of priority, cheapest, fastest, weighted");
}

static int model_item(tg_yaml_walk *w, const tg_yaml_node *m, void *item, tg_yaml_dupent *d)
{
    static const char *const fields[] = {"name", "offerings", "strategy", NULL};
    tg_model *md = item;
    const tg_yaml_node *name, *offs;
    md->line = m->line;
    int rc = tg_yaml_need_map(w, m);
    if (!rc) rc = tg_yaml_check_fields(w, m, fields);
    if (!rc) rc = tg_yaml_require(w, m, "name", &name);
    if (!rc) rc = tg_yaml_require(w, m, "offerings", &offs);
    if (!rc) rc = tg_yaml_field(w, m, "name", tg_conf__id_value, &md->name);
    if (!rc) rc = tg_yaml_field(w, m, "offerings", model_offerings_value, md);
    if (!rc) rc = tg_yaml_field(w, m, "strategy", tg_conf__strategy_value, &md->strategy);
    if (!rc) *d = (tg_yaml_dupent){tg_str_c(md->name), 0, name->line};
    return rc;
}

/* ---- metering ---------------------------------------------------------- */

static int fsync_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    static const struct {
        const char *name;
        tg_fsync_policy policy;
    } names[] = {
        {"always", TG_FSYNC_ALWAYS}, {"interval", TG_FSYNC_INTERVAL}, {"never", TG_FSYNC_NEVER}};
    int rc = tg_yaml_need_scalar(w, v);
    if (rc) return rc;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (tg_str_eq(v->str, tg_str_c(names[i].name))) {
            *(tg_fsync_policy *)dst = names[i].policy;
            return TG_OK;
        }
    return tg_yaml_fail(w, v->line, "must be one of always, interval, never");
}

static int data_dir_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_str s;
    char *dir;
    int rc = tg_yaml_text(w, v, 4096, &s); /* PATH_MAX on Linux */
    if (!rc) rc = tg_conf__dup(w, s, &dir);
    if (rc) return rc;
    free(*(char **)dst); /* the default */
    *(char **)dst = dir;
    return TG_OK;
}

static const tg_yaml_u32 metering_u32[] = {
    TG_CONF_U32(tg_metering_conf, "fsync_interval_ms", fsync_interval_ms, 1, 60000),
    TG_CONF_U32(tg_metering_conf, "batch_records", batch_records, 1, 1000000),
    TG_CONF_U32(tg_metering_conf, "flush_ms", flush_ms, 1, 60000),
};

static int walk_metering(tg_yaml_walk *w, const tg_yaml_node *m)
{
    static const char *const fields[] = {
        "enabled",       "data_dir",      "fsync",    "fsync_interval_ms",
        "segment_bytes", "batch_records", "flush_ms", NULL};
    tg_metering_conf *mt = &tg_conf__config(w)->metering;
    int rc = tg_yaml_check_fields(w, m, fields);
    if (!rc) rc = tg_yaml_field(w, m, "enabled", tg_conf__bool_value, &mt->enabled);
    if (!rc) rc = tg_yaml_field(w, m, "data_dir", data_dir_value, &mt->data_dir);
    if (!rc) rc = tg_yaml_field(w, m, "fsync", fsync_value, &mt->fsync);
    if (!rc)
        rc = tg_yaml_u32_fields(w, m, mt, metering_u32, sizeof metering_u32 / sizeof *metering_u32);
    const tg_yaml_node *seg = tg_yaml_get(m, "segment_bytes");
    if (!rc && seg) {
        size_t mark = tg_yaml_push_field(w, "segment_bytes");
        /* past 1 GiB a segment only makes recovery scans and deletion coarser */
        rc = tg_yaml_u64(w, seg, 64u << 10, 1u << 30, &mt->segment_bytes);
        tg_yaml_pop(w, mark);
    }
    return rc;
}

bool tg_metering_conf_eq(const tg_metering_conf *a, const tg_metering_conf *b)
{
    bool dirs = (a->data_dir && b->data_dir) ? strcmp(a->data_dir, b->data_dir) == 0
                                             : a->data_dir == b->data_dir;
    return a->enabled == b->enabled && dirs && a->fsync == b->fsync &&
           a->fsync_interval_ms == b->fsync_interval_ms && a->segment_bytes == b->segment_bytes &&
           a->batch_records == b->batch_records && a->flush_ms == b->flush_ms;
}

/* ---- the whole file ---------------------------------------------------- */

typedef int (*section_fn)(tg_yaml_walk *w, const tg_yaml_node *m);

static int section_map(tg_yaml_walk *w, const tg_yaml_node *root, const char *name, section_fn fn)
{
    const tg_yaml_node *v = tg_yaml_get(root, name);
    if (!v || tg_yaml_is_null(v)) return TG_OK;
    size_t mark = tg_yaml_push_field(w, name);
    int rc = tg_yaml_need_map(w, v);
    if (!rc) rc = fn(w, v);
    tg_yaml_pop(w, mark);
    return rc;
}

static int walk_root(tg_yaml_walk *w, const tg_yaml_node *root)
{
    static const char *const fields[] = {"server",    "log",    "sim",      "providers",
                                         "offerings", "models", "plans",    "apps",
                                         "customers", "keys",   "metering", "routing",
                                         NULL};
    tg_config *c = tg_conf__config(w);
    if (!root || tg_yaml_is_null(root)) return TG_OK;
    if (root->kind != TG_YAML_MAP)
        return tg_yaml_fail(w, root->line,
                            "the top level must be a mapping of sections (server:, "
                            "providers:, ...)");
    int rc = tg_yaml_check_fields(w, root, fields);
    if (!rc) rc = section_map(w, root, "server", walk_server);
    if (!rc) rc = section_map(w, root, "log", walk_log);
    if (!rc) rc = section_map(w, root, "sim", walk_sim);
    if (!rc)
        rc =
            tg_conf__section_list(w, root, "providers", sizeof(tg_provider), (void **)&c->providers,
                                  &c->nproviders, provider_item, "name", "provider name");
    if (!rc)
        rc =
            tg_conf__section_list(w, root, "offerings", sizeof(tg_offering), (void **)&c->offerings,
                                  &c->nofferings, offering_item, "id", "offering id");
    if (!rc)
        rc = tg_conf__section_list(w, root, "models", sizeof(tg_model), (void **)&c->models,
                                   &c->nmodels, model_item, "name", "model name");
    if (!rc) rc = tg_conf__catalog(w, root);
    if (!rc) rc = tg_conf__keys(w, root);
    if (!rc) rc = section_map(w, root, "metering", walk_metering);
    if (!rc) rc = tg_conf__routing(w, tg_yaml_get(root, "routing"));
    return rc;
}

static void config_free(tg_config *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->nproviders; i++) {
        tg_provider *p = &c->providers[i];
        free(p->name);
        free(p->base_url);
        free(p->api_key_env);
        if (p->api_key) explicit_bzero(p->api_key, strlen(p->api_key));
        free(p->api_key);
        free(p->anthropic_version);
        for (size_t j = 0; j < p->nforward_headers; j++)
            free(p->forward_headers[j]);
    }
    for (size_t i = 0; i < c->nofferings; i++) {
        free(c->offerings[i].id);
        free(c->offerings[i].upstream_model);
        free(c->offerings[i].upstream_json);
    }
    for (size_t i = 0; i < c->nmodels; i++) {
        free(c->models[i].name);
        free(c->models[i].offerings);
        free(c->models[i].weights);
    }
    for (size_t i = 0; i < c->nkeys; i++) {
        free(c->keys[i].id);
        for (size_t j = 0; j < c->keys[i].nmodels; j++)
            free(c->keys[i].models[j]);
        free(c->keys[i].models);
    }
    free(c->providers);
    free(c->offerings);
    free(c->models);
    free(c->keys);
    tg_conf__catalog_free(c);
    tg_conf__routing_free(&c->routing);
    free(c->metering.data_dir);
    free(c->path);
    free(c->text);
    free(c);
}

int tg_config_parse(const char *name, tg_str text, tg_config **out, tg_errmsg *err)
{
    tg_yaml_doc doc;
    if (!name) name = "config";
    int rc = tg_yaml_parse(&doc, name, text, err);
    if (rc) return rc;
    tg_config *c = calloc(1, sizeof *c);
    tg_yaml_walk w = {.file = name, .err = err, .data = c};
    if (!c || !(c->path = strdup(name)) || !(c->text = malloc(text.n + 1)) || config_defaults(c)) {
        rc = tg_yaml_nomem(&w);
        goto out;
    }
    if (text.n) memcpy(c->text, text.p, text.n);
    c->text[text.n] = '\0';
    c->ntext = text.n;
    rc = walk_root(&w, doc.root);
out:
    tg_yaml_release(&doc);
    if (rc) {
        config_free(c);
        return rc;
    }
    *out = c;
    return TG_OK;
}

int tg_config_reparse(const tg_config *base, tg_config **out, tg_errmsg *err)
{
    return tg_config_parse(base->path, tg_str_make(base->text, base->ntext), out, err);
}

int tg_config_load(const char *path, tg_config **out, tg_errmsg *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        tg_errmsg_set(err, "%s: cannot open: %s", path, strerror(errno));
        return TG_EIO;
    }
    char *text = malloc(MAX_FILE_BYTES + 1);
    if (!text) {
        fclose(f);
        tg_errmsg_set(err, "%s: out of memory", path);
        return TG_ENOMEM;
    }
    size_t n = fread(text, 1, MAX_FILE_BYTES + 1, f);
    int rc = TG_OK;
    if (ferror(f)) {
        tg_errmsg_set(err, "%s: cannot read: %s", path, strerror(errno));
        rc = TG_EIO;
    } else if (n > MAX_FILE_BYTES) {
        rc = tg_errmsg_set(err, "%s: larger than %u MiB", path, MAX_FILE_BYTES >> 20);
    }
    fclose(f);
    if (!rc) rc = tg_config_parse(path, tg_str_make(text, n), out, err);
    free(text);
    return rc;
}

void tg_config_unref(tg_config *c)
{
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) config_free(c);
}

const tg_model *tg_config_model(const tg_config *c, tg_str name)
{
    for (size_t i = 0; i < c->nmodels; i++)
        if (c->models[i].name && tg_str_eq(tg_str_c(c->models[i].name), name)) return &c->models[i];
    return NULL;
}

const tg_provider *tg_config_provider(const tg_config *c, tg_str name)
{
    for (size_t i = 0; i < c->nproviders; i++)
        if (c->providers[i].name && tg_str_eq(tg_str_c(c->providers[i].name), name))
            return &c->providers[i];
    return NULL;
}

bool tg_key_allows(const tg_key *k, const tg_model *m)
{
    if (!k || !m) return false;
    if (!k->models) return true;
    for (size_t i = 0; i < k->nmodels; i++)
        if (strcmp(k->models[i], m->name) == 0) return true;
    return false;
}
