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
#include "base/money.h"
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

/* The API a provider speaks: OpenAI's (chat completions and the rest) or
 * Anthropic's Messages API. */
typedef enum { TG_DIALECT_OPENAI = 0, TG_DIALECT_ANTHROPIC } tg_dialect;

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
    /* dialect anthropic */
    char *anthropic_version;        /* the anthropic-version header, default "2023-06-01" */
    uint32_t default_max_tokens;    /* max_tokens sent for a request that set none
                                       (the Messages API requires it), default 4096 */
} tg_provider;

/* What a provider bills for one offering, from the offering's `price:`
 * block, each a USD decimal string in the file. Token prices are nanos per
 * 1M tokens. A kind the file leaves out bills like its parent: cached input
 * and cache writes at the input price, reasoning at the output price. An
 * offering without a price block costs nothing (a self-hosted model). */
typedef struct {
    tg_nanos input;           /* price.input */
    tg_nanos cached_input;    /* price.cached_input, default = input */
    tg_nanos cache_write;     /* price.cache_write, default = input */
    tg_nanos output;          /* price.output */
    tg_nanos reasoning;       /* price.reasoning, default = output */
    tg_nanos per_request;     /* price.request: a fee per call, default 0 */
    int64_t batch_discount_bps; /* price.batch_discount_bps, 0..10000: off the
                                   token cost of batch calls, default 0 */
} tg_price;

/* One model at one provider, with what it costs. */
typedef struct {
    char *id;               /* "openai/gpt-4o-mini" */
    int line;
    tg_provider *provider;
    char *upstream_model;   /* the name the provider knows */
    char *upstream_json;    /* the same as a quoted JSON string, for the body
                               rewrite: escaped once here, not per request */
    tg_price price;
    struct tg_health *health; /* its live health (route/health.h), shared by every
                                 snapshot: set when a gateway adopts this one */
} tg_offering;

/* How a model orders its offerings for a request (docs/routing.md). */
typedef enum {
    TG_STRATEGY_PRIORITY = 0, /* as listed */
    TG_STRATEGY_CHEAPEST,     /* by the request's expected cost */
    TG_STRATEGY_FASTEST,      /* by measured time to first token and tokens per second */
    TG_STRATEGY_WEIGHTED,     /* drawn by weight */
} tg_strategy;
const char *tg_strategy_name(tg_strategy s);

/* A public model name; its offerings, the order of preference, and how a
 * request picks among them. */
typedef struct tg_model {
    char *name;
    int line;
    tg_offering **offerings;
    uint32_t *weights;        /* per offering, default 1 (weighted draws by them) */
    size_t noffering;
    tg_strategy strategy;     /* model.strategy, default priority */
} tg_model;

/* What makes a cheap-first answer fail its check (routing.rules[].escalate_on). */
enum {
    TG_ESCALATE_LENGTH = 1,   /* finish_reason length: the answer was cut */
    TG_ESCALATE_JSON = 2,     /* response_format asked for JSON and the content does not parse */
    TG_ESCALATE_REGEX = 4,    /* the content matches the rule's regex */
};

/* A routing rule (routing.rules): a request that matches every field it
 * names (NULL: any) gets its action; the first rule that matches wins. */
typedef struct {
    int line;
    char *feature, *plan, *customer, *key; /* match; plan and customer by id, key by id */
    struct tg_model *model;   /* match: the model asked */
    /* actions: refuse, or any of use / strategy / try_first */
    bool refuse;              /* 403: the model asked is not for these requests */
    struct tg_model *use;     /* serve with this model instead of the one asked */
    bool has_strategy;
    tg_strategy strategy;     /* order the model's offerings this way instead */
    struct tg_model *try_first; /* cheap first: this model, then the other when the
                                   answer fails a check (escalate_on); not streams */
    unsigned escalate_on;     /* TG_ESCALATE_* */
    void *regex;              /* a compiled regex_t when TG_ESCALATE_REGEX */
    char *regex_src;
} tg_route_rule;

/* Fallback, retries and breakers (routing:); docs/routing.md. */
typedef struct {
    uint32_t attempts;        /* upstream calls per request at most, default 3 */
    uint32_t deadline_ms;     /* no attempt starts later than this after the request
                                 arrived, default 30000 */
    uint32_t backoff_ms;      /* the pause before a retry, doubled each time, default 50 */
    uint32_t max_backoff_ms;  /* and capped, default 2000 */
    uint32_t breaker_failures;  /* consecutive failures that open an offering's breaker, default 5 */
    uint32_t breaker_cooldown_ms; /* open that long, then one probe, default 30000 */
    tg_route_rule *rules;
    size_t nrules;
} tg_routing_conf;

/* Credits are counted in nano-credits (1 credit = 1e9), an int64 like
 * money, so "2.5" credits parse exactly with tg_money_parse's rules. */
typedef int64_t tg_ncredits;
#define TG_NCREDITS_PER_CREDIT 1000000000LL

/* Rate limits; 0 means no limit. Tokens are prompt + completion: a request
 * counts its estimate (input bound + max_tokens) when admitted and is
 * corrected to its actual tokens when it ends. */
typedef struct {
    uint32_t rpm;        /* requests per minute (a sliding 60 s window) */
    uint64_t tpm;        /* tokens per minute */
    uint32_t concurrent; /* requests in flight */
} tg_limits;

/* Limits of an agent run (X-Tollgate-Run); 0 means none. */
typedef struct {
    uint32_t max_steps;  /* requests in the run */
    tg_nanos max_cost;   /* provider cost of the run, USD */
} tg_run_limits;

typedef struct {
    char *name;          /* an action unit: "report" */
    tg_ncredits credits; /* what one unit consumes, instead of its charge */
} tg_unit_credits;

typedef enum { TG_CAP_NONE = 0, TG_CAP_USD, TG_CAP_CREDITS } tg_cap_kind;

#define TG_MAX_THRESHOLDS 8

struct tg_model;

/* A plan a customer is on (issue 4): what it pays per period, the credits
 * it gets, what happens past them, and the limits that hold whatever the
 * concurrency (docs/plans.md). A request consumes credits: its charge /
 * `credit`, or, when its unit is listed in unit_credits, that many credits
 * per unit. Consumption burns the period's included credits first, then
 * the customer's grants, then overage (only when the plan has an overage
 * price; without one, a request that cannot be covered is refused). */
typedef struct {
    char *id;
    int line;
    tg_nanos fee;                 /* plan.fee: USD per period, default 0 */
    tg_ncredits included;         /* plan.included_credits, default 0 */
    tg_nanos credit;              /* plan.credit: USD of charge one credit stands for,
                                     default "0.01"; > 0 */
    tg_unit_credits *unit_credits;/* plan.unit_credits: {report: 5} */
    size_t nunit_credits;
    bool has_overage;             /* plan.overage present */
    tg_nanos overage;             /* USD per credit past included and grants */
    tg_cap_kind cap;              /* plan.hard_cap: {usd: "100.00"} or {credits: 5000} */
    tg_nanos cap_usd;             /* on the period's charge */
    tg_ncredits cap_credits;      /* on the period's credits consumed */
    uint32_t thresholds[TG_MAX_THRESHOLDS]; /* plan.thresholds: percent of included,
                                               1..1000, ascending; default 80, 100 */
    size_t nthresholds;           /* [] turns them off */
    struct tg_model **models;     /* plan.models: the public models allowed; NULL
                                     (nmodels 0): all */
    size_t nmodels;
    struct tg_model **degrade_from; /* plan.degrade.from: models that degrade */
    size_t ndegrade_from;
    struct tg_model *degrade_to;  /* plan.degrade.to; NULL: no degrade */
    uint32_t degrade_at;          /* plan.degrade.at: percent of included, default 100 */
    uint32_t default_max_tokens;  /* plan.default_max_tokens: what a request without
                                     max_tokens reserves, default 1024 */
    tg_limits limits;             /* plan.limits: per customer */
    tg_limits key_limits;         /* plan.key_limits: per key, unless the key has its own */
    tg_run_limits runs;           /* plan.runs; fields left out come from the app */
    bool has_run_steps, has_run_cost;
} tg_plan;

/* The credits one unit of name consumes on plan p, or NULL when the plan
 * does not price that unit in credits. */
const tg_unit_credits *tg_plan_unit(const tg_plan *p, tg_str name);

/* A fixed price per action unit: a request tagged with the unit is
 * charged price x its unit count, whatever its tokens cost. */
typedef struct {
    char *name;             /* "report" */
    tg_nanos price;
} tg_unit_price;

/* How cost becomes charge. In an app every field is set (defaults: no
 * markup, no surcharge, no units, no platform fee); in an override only
 * the fields it names are, and the others come from the app. Units have no
 * has_ flag: an override's list is looked up first and the app's after,
 * unit by unit (the loader refuses an override that sets nothing).
 *   charge = unit price x count        when the request's unit is listed
 *          = cost + cost x markup_bps / 10,000 + surcharge   otherwise
 *   fee    = charge x platform_fee_bps / 10,000
 *   margin = charge - cost - fee */
typedef struct {
    bool has_markup, has_surcharge, has_fee;
    int64_t markup_bps;       /* margin.markup_bps, -10000..1000000 */
    tg_nanos surcharge;       /* margin.surcharge: USD per request */
    int64_t platform_fee_bps; /* margin.platform_fee_bps, 0..10000 */
    tg_unit_price *units;     /* margin.units: {report: "0.40"} */
    size_t nunits;
} tg_margin;

/* An override of an app's margin for requests that match every field it
 * names (NULL: any). The most specific match wins: each named field
 * weighs customer 8, plan 4, feature 2, model 1 and the highest total
 * wins; two overrides with the same fields and values are a config error. */
typedef struct {
    int line;
    char *plan, *customer, *feature, *model; /* model: the public name asked */
    tg_margin margin;
} tg_override;

typedef struct {
    char *id;
    int line;
    tg_margin margin;         /* every has_ flag true */
    tg_override *overrides;
    size_t noverrides;
    bool show_charge;         /* X-Tollgate-Charge on responses, default true */
    bool show_cost;           /* X-Tollgate-Cost on responses, default false */
    bool create_customers;    /* an unknown X-Tollgate-Customer is created
                                 (default false: refused) */
    tg_plan *default_plan;    /* created customers get it; may be NULL */
    uint32_t period_anchor_day; /* 1..28, default 1: periods run from this day of a
                                   month (00:00 UTC) to the same day of the next */
    char *webhook_url;        /* webhook.url: threshold events are POSTed here; NULL: none */
    char *webhook_secret_env; /* webhook.secret_env: the variable holding the HMAC secret */
    char *webhook_secret;     /* from the environment; never logged or returned */
    tg_run_limits runs;       /* app.runs: run limits for plans that set none */
} tg_app;

typedef struct {
    char *id;
    int line;
    tg_app *app;
    tg_plan *plan;            /* may be NULL */
} tg_customer;

typedef struct {
    char *id;               /* what logs and metrics show; never the key */
    int line;
    uint8_t hash[TG_SHA256_LEN];
    bool admin;
    char **models;          /* allowed public models; NULL with nmodels 0: all */
    size_t nmodels;
    tg_app *app;            /* key.app, or the customer's app; NULL: unattributed */
    tg_customer *customer;  /* key.customer: a customer key; NULL: an app key
                               (names its customer per request) or none */
    tg_limits limits;       /* key.limits; when absent, the customer's plan's key_limits */
    bool has_limits;
} tg_key;

typedef enum { TG_FSYNC_INTERVAL = 0, TG_FSYNC_ALWAYS, TG_FSYNC_NEVER } tg_fsync_policy;

/* Usage records: the journal and the ledger (DESIGN.md, Durability). Paths
 * are relative to the working directory. Changing this section needs a
 * restart; a reload that changes it is refused. */
typedef struct {
    bool enabled;             /* metering.enabled, default true */
    char *data_dir;           /* default "tollgate-data": journal/ and ledger.db */
    tg_fsync_policy fsync;    /* default interval */
    uint32_t fsync_interval_ms; /* default 1000 */
    uint64_t segment_bytes;   /* journal segment size before rotation, default 64 MiB */
    uint32_t batch_records;   /* ledger commit batch, default 8192 */
    uint32_t flush_ms;        /* the ledger commits at least this often, default 200 */
} tg_metering_conf;

/* Whether two metering sections are the same, field by field (data_dir by
 * its text): the gateway refuses a reload for which this is false. */
bool tg_metering_conf_eq(const tg_metering_conf *a, const tg_metering_conf *b);

typedef struct tg_config {
    char *path;
    char *text;               /* the file's text as it was read: a snapshot with other
                                 API plans is built from it (tg_config_reparse) */
    size_t ntext;
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
    tg_plan *plans;           /* the file's */
    size_t nplans;
    tg_plan *api_plans;       /* made through the admin API (tg_config_add_plans), by id */
    size_t napi_plans;
    tg_app *apps;
    size_t napps;
    tg_customer *customers;
    size_t ncustomers;
    tg_metering_conf metering;
    tg_routing_conf routing;
    atomic_long refs;       /* tg_config_ref/unref; starts at 1 */
} tg_config;

/* Loads and validates path. On error returns TG_EINVAL (or TG_ENOMEM /
 * TG_EIO) with err->msg naming file, line and field, and *out untouched. */
int tg_config_load(const char *path, tg_config **out, tg_errmsg *err);
/* Same, from text in memory; `name` stands for the file in messages. */
int tg_config_parse(const char *name, tg_str text, tg_config **out, tg_errmsg *err);
/* A new snapshot from the text base was read from (same name, no API
 * plans): what a snapshot with other API plans starts from. */
int tg_config_reparse(const tg_config *base, tg_config **out, tg_errmsg *err);

/* Plans made through the admin API (docs/plans.md#plans-through-the-admin-api):
 * each a JSON object with a plan's fields as the file spells them (id,
 * when given, must be the plan's; null means left out; "source" is
 * ignored, so GET /admin/v1/plans output can be sent back). They live in
 * the store, not in the file, and are read after the whole file: the
 * file's customers and apps cannot name them, and a file plan of the same
 * id is an error. */
typedef struct {
    tg_str id;
    tg_str body;
} tg_plan_def;
/* Reads defs (sorted by id, none twice) into c->api_plans. c must have
 * none yet and not be shared (being built). On error (TG_EINVAL, TG_ENOMEM)
 * err reads "API plan 'ID': path: problem" and c has no API plan. */
int tg_config_add_plans(tg_config *c, const tg_plan_def *defs, size_t n, tg_errmsg *err);

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
const tg_app *tg_config_app(const tg_config *c, tg_str id);
const tg_customer *tg_config_customer(const tg_config *c, tg_str id);
/* A plan of the file or of the admin API, by id. */
const tg_plan *tg_config_plan(const tg_config *c, tg_str id);
/* Whether p is one of c's API plans. */
bool tg_config_plan_api(const tg_config *c, const tg_plan *p);
/* Whether s is a valid id: 1..128 bytes, each a letter, a digit or one of
 * . _ : @ / + = # -. App, customer, plan and unit ids in the file follow
 * it, and so does a customer an app creates at runtime, so that an id in
 * a usage record, a report or a CSV is one plain token. The other tags a
 * request brings (feature, workspace, ...) need only be printable ASCII
 * (tg_tag_value_ok, gate/tags.h). */
bool tg_tag_valid(tg_str s);
/* Whether key k may use model m. */
bool tg_key_allows(const tg_key *k, const tg_model *m);

#endif
