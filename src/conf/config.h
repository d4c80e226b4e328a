/* Configuration: one YAML file, loaded into an immutable snapshot.
 *
 * A snapshot is built whole by tg_config_load and never changed after; a
 * reload builds a new one and swaps it in atomically (http/server.c), and a
 * request keeps the snapshot it started with through tg_config_ref /
 * tg_config_unref. Secrets never live in the file: provider keys are read
 * from the environment variable the file names, and client keys are stored
 * as SHA-256 hashes. Every error names the file, the line and the field:
 *   "tollgate.yaml:14: providers[0].base_url: must start with http:// or https://"
 * Unknown fields are errors (a typo must not silently drop a setting). */
#ifndef TG_CONF_CONFIG_H
#define TG_CONF_CONFIG_H

#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/str.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "HOST:PORT", "[v6]:PORT"; port 0 means any free port. host is always a
 * numeric address, IPv6 without its brackets ("::1"). */
typedef struct {
    char host[64];
    uint16_t port;
} tg_addr;
int tg_addr_parse(tg_str s, tg_addr *out);

typedef struct {
    tg_addr listen;                /* server.listen, default 127.0.0.1:8080 */
    uint32_t workers;              /* 0: one per core */
    uint32_t max_connections;      /* per process, default 4096 */
    uint32_t max_header_bytes;     /* default 32 KiB */
    uint32_t max_body_bytes;       /* default 8 MiB */
    uint32_t max_response_bytes;   /* buffered upstream body cap, default 64 MiB */
    uint32_t header_timeout_ms;    /* whole request head, default 10 s */
    uint32_t request_timeout_ms;   /* whole request body, default 60 s */
    uint32_t idle_timeout_ms;      /* keep-alive idle, default 60 s */
    uint32_t shutdown_timeout_ms;  /* SIGTERM drain deadline, default 10 s */
} tg_server_conf;

/* Fault kinds of the simulated provider. */
typedef enum {
    TG_SIM_FAULT_NONE = 0,
    TG_SIM_FAULT_429,       /* 429 with Retry-After */
    TG_SIM_FAULT_500,
    TG_SIM_FAULT_503,
    TG_SIM_FAULT_TIMEOUT,   /* reads the request, never answers */
    TG_SIM_FAULT_RESET,     /* reads the request, closes with RST */
    TG_SIM_FAULT_CUT,       /* sends part of the answer, then closes */
    TG_SIM_FAULT_MALFORMED, /* 200 with a body that is not valid JSON */
} tg_sim_fault;
/* "429", "500", "503", "timeout", "reset", "cut", "malformed". */
int tg_sim_fault_parse(tg_str s, tg_sim_fault *out);
const char *tg_sim_fault_name(tg_sim_fault f);

typedef struct {
    tg_sim_fault kind;
    uint32_t percent; /* 1..100: share of requests that get it */
} tg_sim_fault_rule;

#define TG_SIM_MAX_FAULTS 8

/* The simulated provider, standalone (`tollgate sim`) or embedded. */
typedef struct {
    bool enabled;             /* embedded: start it with `serve`; default false */
    tg_addr listen;           /* default 127.0.0.1:0 */
    uint64_t seed;            /* default 1 */
    uint32_t ttft_ms;         /* time to first token, default 0 */
    uint32_t tokens_per_sec;  /* 0: all at once */
    uint32_t completion_min;  /* completion tokens when max_tokens is absent: */
    uint32_t completion_max;  /*   uniform in [min, max], default 16..64 */
    uint32_t embedding_dims;  /* default 16 (a request's `dimensions` wins) */
    uint32_t retry_after_s;   /* Retry-After of the 429 fault, default 1 */
    tg_sim_fault_rule faults[TG_SIM_MAX_FAULTS];
    size_t nfaults;
} tg_sim_conf;

typedef enum { TG_DIALECT_OPENAI = 0 } tg_dialect;

#define TG_MAX_FORWARD_HEADERS 16

typedef struct {
    char *name;
    int line;
    tg_dialect dialect;
    char *base_url;         /* without trailing '/', e.g. https://api.openai.com/v1;
                               NULL for builtin:sim until `serve` fills it in
                               (malloc'd: tg_config_unref frees it) */
    bool builtin_sim;       /* base_url was "builtin:sim" */
    char *api_key_env;      /* NULL: no key sent */
    char *api_key;          /* from the environment; never logged or returned */
    bool available;         /* false when api_key_env names an unset variable */
    uint32_t connect_timeout_ms;    /* default 5 s */
    uint32_t first_byte_timeout_ms; /* default 120 s */
    uint32_t total_timeout_ms;      /* default 600 s */
    /* client headers (case-insensitive names) passed on to this provider */
    char *forward_headers[TG_MAX_FORWARD_HEADERS];
    size_t nforward_headers;
} tg_provider;

/* One model at one provider. Prices arrive with metering (issue 3). */
typedef struct {
    char *id;               /* "openai/gpt-4o-mini" */
    int line;
    tg_provider *provider;
    char *upstream_model;   /* the name the provider knows */
    char *upstream_json;    /* the same as a quoted JSON string, for the body
                               rewrite: escaped once here, not per request */
} tg_offering;

/* A public model name; its offerings in order of preference. The route
 * stage takes the first whose provider is available. */
typedef struct {
    char *name;
    int line;
    tg_offering **offerings;
    size_t noffering;
} tg_model;

typedef struct {
    char *id;               /* what logs and metrics show; never the key */
    int line;
    uint8_t hash[TG_SHA256_LEN];
    bool admin;
    char **models;          /* allowed public models; NULL with nmodels 0: all */
    size_t nmodels;
} tg_key;

typedef struct tg_config {
    char *path;
    tg_server_conf server;
    tg_log_level log_level;
    tg_sim_conf sim;
    tg_provider *providers;
    size_t nproviders;
    tg_offering *offerings;
    size_t nofferings;
    tg_model *models;
    size_t nmodels;
    tg_key *keys;
    size_t nkeys;
    atomic_long refs;       /* tg_config_ref/unref; starts at 1 */
} tg_config;

/* Loads and validates path. On error returns TG_EINVAL (or TG_ENOMEM /
 * TG_EIO) with err->msg naming file, line and field, and *out untouched. */
int tg_config_load(const char *path, tg_config **out, tg_errmsg *err);
/* Same, from text in memory; `name` stands for the file in messages. */
int tg_config_parse(const char *name, tg_str text, tg_config **out, tg_errmsg *err);
/* Defaults alone (used by `tollgate sim` for its tg_sim_conf). */
void tg_sim_conf_defaults(tg_sim_conf *s);

static inline tg_config *tg_config_ref(tg_config *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}
/* Frees the snapshot when the last reference goes. */
void tg_config_unref(tg_config *c);

const tg_model *tg_config_model(const tg_config *c, tg_str name);
const tg_provider *tg_config_provider(const tg_config *c, tg_str name);
/* Whether key k may use model m. */
bool tg_key_allows(const tg_key *k, const tg_model *m);

#endif
