/* Private to api/: the per-worker context and the exchange, which carries
 * one client request through gate, route, adapter, upstream and relay.
 *
 * Every request the gateway answers, refused or proxied, is an exchange:
 * that is what makes "one log line and one metrics sample per request"
 * hold. An exchange lives in its request's arena; the buffers it owns are
 * released when the request ends (its end callback), which also logs it
 * and releases the configuration snapshot. Metering (issue 3) and policy hook in here. */
#ifndef TG_API_API_H
#define TG_API_API_H

#include "api/gateway.h"
#include "api/metrics.h"
#include "base/rng.h"
#include "bill/accounts.h"
#include "bill/webhook.h"
#include "gate/customers.h"
#include "gate/limits.h"
#include "gate/runs.h"
#include "gate/tags.h"
#include "http/server.h"
#include "http/sse.h"
#include "http/upstream.h"
#include "meter/journal.h"
#include "route/adapters/anthropic.h"
#include "route/adapters/openai.h"
#include "route/adapters/xstream.h"
#include "route/health.h"
#include "route/route.h"
#include "store/ledger.h"
#include "store/wallet.h"

#include <pthread.h>

/* A link of a circular, doubly linked list whose head is a link too (a
 * sentinel): a member leaves it without knowing which list it is on. */
typedef struct tg_xlink {
    struct tg_xlink *prev, *next;
} tg_xlink;

struct tg_gateway {
    tg_server *server;
    tg_server *sim;
    char sim_url[64];           /* "http://127.0.0.1:PORT/v1" */
    pthread_mutex_t cfg_mu;
    tg_config *cfg;             /* under cfg_mu */
    pthread_mutex_t plans_mu;   /* orders the builds of new snapshots: reloads, API plans (plans.c) */
    atomic_ulong cfg_gen;
    tg_metrics *metrics;
    uint32_t shutdown_timeout_ms;
    /* metering (NULL when metering.enabled is false) */
    tg_metering_conf metering;  /* as started (data_dir our own copy): a reload may not change it */
    tg_journal *journal;
    tg_ledger *ledger;
    tg_customers *customers;    /* created at runtime (gate/customers.h) */
    tg_accounts *accounts;      /* live balances of customers on plans (billing.c) */
    tg_limiters *limiters;      /* rate limits of keys and customers */
    tg_runs *runs;              /* agent runs, with metering (runs.c) */
    int64_t grants_seen;        /* the ledger thread's: the last grant transaction it read */
    tg_webhook_sender *webhooks; /* threshold events (webhooks.c) */
    tg_health_table *health;    /* offerings' breakers and latencies (route/health.h) */
};

#define TG_SPARE_RECORDS 64

/* A request's usage record on the worker (metering.c): the numbers in r,
 * whose string fields stay empty, and the strings encoded once, in s. */
typedef struct {
    tg_usage_rec r;
    tg_str model; /* the model field, in s: what pricing matches on */
    tg_record_strs s;
} tg_meter_rec;

typedef struct {
    tg_gateway *gw;
    tg_worker *w;
    tg_upstream *up;
    tg_metrics_shard *metrics;
    tg_config *cfg;             /* this worker's reference */
    unsigned long cfg_gen;
    tg_buf log;                 /* access lines, flushed once per loop turn */
    uv_prepare_t flush;         /* before the loop waits: held calls, logs */
    uv_check_t io_done;         /* after the loop's I/O callbacks: held calls */
    int handles_open;           /* of those two, while they close */
    tg_rng rng;                 /* request and record ids */
    tg_journal_writer *jw;      /* NULL without metering */
    tg_xlink held;              /* exchanges whose call waits for the journal's write */
    /* usage records of ended requests, for the next ones (metering.c) */
    tg_meter_rec *spare[TG_SPARE_RECORDS];
    unsigned nspare;
    /* records of requests ended this loop turn, and their tickets, whose
     * outcomes go to the journal and the ledger at the turn's flush */
    struct {
        tg_meter_rec *rec;
        tg_jticket ticket;
    } ended[TG_SPARE_RECORDS];
    unsigned nended;
} tg_gw_worker;

#define TG_MAX_UP_HEADERS (8 + TG_MAX_FORWARD_HEADERS)

typedef struct {
    tg_req *req;
    tg_gw_worker *ww;
    tg_config *cfg;             /* the snapshot this request keeps */
    tg_str rid;
    const char *endpoint;       /* for logs: "chat", "models", ... */
    tg_str model_label;         /* a configured model name or "unknown" */
    const tg_key *key;
    const tg_model *model;
    const tg_offering *off;
    tg_endpoint ep;
    bool anthropic;             /* the client speaks Anthropic's dialect (/v1/messages):
                                   errors and answers go back in it */
    tg_openai_req oreq;         /* for an Anthropic client, what the gateway reads of
                                   areq in the same fields (anthropic.c) */
    tg_anthropic_req areq;
    tg_buf scratch;
    tg_buf upbody;
    tg_header uphdr[TG_MAX_UP_HEADERS];
    size_t nuphdr;
    /* the upstream call, kept while it waits for the journal (tg_exchange_call) */
    tg_str up_url;
    uint32_t up_connect_ms, up_first_byte_ms, up_total_ms;
    tg_xlink held;              /* on ww->held while it waits; next NULL otherwise */
    tg_upcall *call;
    int up_status;
    tg_str retry_after;         /* copied from the upstream's head */
    const char *error;          /* short reason for the log */
    bool relay_stream;          /* a 2xx stream: relayed event by event */
    bool stream_started;
    bool done_seen;             /* [DONE] arrived */
    tg_buf resp;                /* buffered upstream body */
    tg_sse sse;
    tg_usage usage;
    /* the answer's dialect (adapter.c) */
    bool up_anthropic;          /* this call's provider speaks Anthropic's dialect */
    bool xlate;                 /* the stream is translated: xs is live */
    int xs_rc;                  /* how its tg_xstream_init went */
    const char *xs_why;         /* why it refused an upstream event */
    tg_xstream xs;
    bool stream_failed;         /* the upstream's error event ended the client's stream */
    tg_buf xbody;               /* a translated answer or error body */
    int64_t open_block;         /* an Anthropic stream relayed as is: the open content
                                   block's index, -1 when none */
    /* metering (api/metering.c) */
    tg_attribution attr;
    tg_meter_rec *rec;          /* NULL: not metered (refused before attribution); the worker's */
    tg_jticket ticket;
    bool priced;                /* rec holds the final tokens and amounts */
    bool upstream_called;       /* the call started (relay.c) */
    int64_t est_prompt;         /* local estimate of the input tokens */
    int64_t stream_events;      /* content events relayed: the completion estimate */
    tg_header resp_hdr[3];      /* X-Tollgate-Charge / -Cost / -Credits on the response */
    size_t nresp_hdr;
    /* plans (api/policy.c) */
    tg_account_hold hold;       /* the reservation; acc NULL: none */
    int64_t prompt_bound;       /* input tokens the worst case counts */
    int64_t out_bound;          /* output tokens the hold covers */
    int64_t out_seen;           /* a stream's output so far, in tokens as metering counts them */
    bool cut;                   /* a stream stopped at the plan's limit */
    tg_limiter_ticket limit_tickets[2]; /* the key's and the customer's rate limits */
    size_t nlimit;
    bool run_counted;           /* a step of an agent run (runs.c) */
    /* routing (routing.c) */
    tg_route_ctx rctx;
    tg_route_choice choice;
    const tg_offering *cands[TG_ROUTE_MAX]; /* the offerings of this phase, in order */
    size_t ncand, cand_next;
    bool first_phase;           /* serving choice.first, the cheap model */
    bool probe;                 /* this call is its offering's half-open probe */
    bool verdict_due;           /* its health verdict is not reported yet */
    bool attempt_unreached;     /* the call failed before the provider had the request */
    uint32_t attempts;          /* upstream calls started */
    uint64_t call_start_ns, up_first_byte_ns;
    uv_timer_t *retry_timer;    /* a retry waiting for its backoff */
} tg_exchange;

/* Work on the store for an exchange, off the worker's loop: run(j) on
 * libuv's thread pool with a store handle of its own (j->db is the
 * store's path), then done(j, x) back on the loop, x NULL when the client
 * went away meanwhile. done answers x when there is one, and frees j
 * (tg_pool_free after its own fields). A job is a struct that starts with
 * a tg_pool_job. Reports, wallets, runs and webhook listings are such
 * jobs: reading SQLite can take a while. */
typedef struct tg_pool_job {
    uv_work_t work;
    tg_exchange *x;
    char *db;
    void (*run)(struct tg_pool_job *j);
    void (*done)(struct tg_pool_job *j, tg_exchange *x);
} tg_pool_job;
/* A job of size bytes, zeroed, its db set; NULL after answering 500. */
void *tg_pool_new(tg_exchange *x, size_t size);
void tg_pool_free(tg_pool_job *j);
/* Starts j; when the pool will not take it, answers 500 ("<what> could
 * not be started") and calls done(j, NULL). */
void tg_pool_start(tg_exchange *x, tg_pool_job *j, void (*run)(tg_pool_job *),
                   void (*done)(tg_pool_job *, tg_exchange *), const char *what);

/* gateway.c */
/* The configuration as it is now: a reference the caller drops (any thread). */
tg_config *tg_gateway_config(tg_gateway *gw);
/* Makes a new snapshot fit to run here (builtin:sim pointed at the
 * embedded sim), or says why it cannot be. */
int tg_gateway_adopt(tg_gateway *gw, tg_config *cfg, tg_errmsg *err);
/* Makes cfg (adopted) the current snapshot; takes the caller's reference.
 * Under gw->plans_mu. */
void tg_gateway_publish(tg_gateway *gw, tg_config *cfg);
tg_exchange *tg_exchange_new(tg_req *r, tg_gw_worker *ww, const char *endpoint);
/* Sends {"error":{...}} in OpenAI's shape. code and param may be NULL.
 * Like every response, it ends the request, and the request's end
 * callback logs, counts and releases the exchange. */
void tg_exchange_error(tg_exchange *x, int status, const char *type, const char *code,
                     const char *param, const char *msg);
/* Sends a JSON body with the request id header. */
void tg_exchange_json(tg_exchange *x, int status, tg_str body);
/* Makes x's upstream call (x->up_url and the timeouts set) once x's
 * intent is in the journal: at once without metering; else x waits on
 * its worker's held list until the journal's next write, at the end of
 * the loop turn's I/O callbacks or before the loop waits, and is then
 * started, or refused (503 metering_unavailable) if that write failed. A
 * client that leaves meanwhile ends the request, which leaves the list. */
void tg_exchange_call(tg_exchange *x);

/* openai.c */
/* Passes the auth gate (sets x->key) or answers 401; true when it passed. */
bool tg_authenticate(tg_exchange *x);
void tg_openai_proxy(tg_exchange *x, tg_endpoint ep);
/* The gates after a proxied request's body was read into x->oreq:
 * attribution, metering, routing, the plan's policy, then the call. */
void tg_proxy_gates(tg_exchange *x);
void tg_openai_models(tg_exchange *x, tg_str id);

/* anthropic.c: POST /v1/messages, Anthropic's Messages API. */
void tg_anthropic_proxy(tg_exchange *x);

/* metering.c: the usage record of an exchange (see the file). */
void tg_metering_start(tg_exchange *x);
/* The input tokens of x as metering estimates them: a token per 4 bytes
 * of its messages / prompt / input. */
int64_t tg_metering_estimate_prompt(const tg_exchange *x);
int tg_metering_intent(tg_exchange *x);
int tg_metering_journal_intent(tg_exchange *x);
void tg_metering_refuse(tg_exchange *x);
/* The record's offering and provider become x->off's (a fallback or an
 * escalation calls another offering than its intent named). */
void tg_metering_reroute(tg_exchange *x);
/* The cheap-first answer in x failed its check: the record says
 * escalated, and the answer is billed as an attempt. */
void tg_metering_escalate(tg_exchange *x);
/* The attempt x just made, before the next: an attempt record (meter/
 * record.h) of what the provider may bill for it, at its offering, cost
 * borne by the builder (charge 0); none when it cannot have billed (no
 * connection, an error status). */
void tg_metering_attempt(tg_exchange *x);
void tg_metering_price(tg_exchange *x);
int tg_metering_sse_summary(tg_exchange *x, tg_buf *out);
void tg_metering_end(tg_exchange *x, uint64_t now); /* now: uv_hrtime() at the end */
void tg_metering_journal_outcomes(tg_gw_worker *ww);
/* Frees the records a stopping worker keeps. */
void tg_metering_worker_free(tg_gw_worker *ww);
/* What x would cost at most with prompt input and completion output
 * tokens at its offering's dearest prices of each, and its credits on
 * the customer's plan. TG_EINVAL on an overflow. */
int tg_metering_worst(tg_exchange *x, const tg_offering *off, int64_t prompt, int64_t completion, tg_nanos *charge,
                      tg_ncredits *credits);

/* policy.c: plans on the request path (see the file). Each returns false
 * after answering a refusal. */
bool tg_policy_model(tg_exchange *x);   /* after routing: plan models, degrade */
bool tg_policy_limits(tg_exchange *x);  /* then the rate limits of the key and customer */
bool tg_policy_reserve(tg_exchange *x); /* before the intent: the worst case held */
/* The most x may be charged now (what the plan's cap leaves it); false
 * when nothing limits it. */
bool tg_policy_charge_cap(tg_exchange *x, tg_nanos *cap);
/* A stream's event brought out_tokens more output (as metering counts a
 * stream: one per event): grows the hold as needed; false when the account
 * cannot, and the stream must stop before this event. */
bool tg_policy_stream_event(tg_exchange *x, int64_t out_tokens);
/* The last event of a stream stopped at the plan's limit. */
int tg_policy_cut_event(tg_exchange *x, tg_buf *out);
/* What a stream stopped at the plan's limit is told, in any dialect. */
void tg_policy_cut_message(const tg_exchange *x, char *msg, size_t n);
/* Settles x's hold to its record's credits and charge (from metering's end). */
void tg_policy_settle(tg_exchange *x);
/* Settles x's rate limits to its actual tokens (when the request ends). */
void tg_policy_end(tg_exchange *x);

/* billing.c: plans and wallets outside the request path */
/* Gives the store the terms it burns credits by (from the configuration). */
void tg_billing_store(tg_gateway *gw, tg_store *s);
/* Makes gw->accounts and loads every account on a plan from s (after the
 * journal's recovery, before the ledger starts). */
int tg_billing_load(tg_gateway *gw, tg_store *s, tg_errmsg *err);
/* Starts the ledger's tick: new grants into the accounts, grant expiry. */
void tg_billing_start(tg_gateway *gw);

/* usage.c: reports over HTTP */
void tg_admin_reports(tg_exchange *x);
void tg_usage_report(tg_exchange *x);
/* One query parameter's value, percent-decoded into the request's arena;
 * TG_STR_NULL when absent. */
tg_str tg_query_param(tg_exchange *x, const char *name);
/* A segment of the URL's path (an id), percent-decoded into the
 * request's arena. */
tg_str tg_path_segment(tg_exchange *x, tg_str seg);

/* runs.c: agent runs on the request path */
/* Counts x as a step of its run, or refuses it (403) past the run's limits. */
bool tg_runs_gate(tg_exchange *x);
/* When x ends: adds its provider cost to its run, or takes the step back
 * when x never went upstream (a later gate refused it). */
void tg_runs_end(tg_exchange *x);
/* Makes gw->runs and counts the runs of the last day from s (at start). */
int tg_runs_load(tg_gateway *gw, tg_store *s, tg_errmsg *err);

/* admin.c: the admin API's wallets and runs, and a customer's own wallet */
/* Passes the auth gate with an admin key, or answers 401 / 403; true when it passed. */
bool tg_admin_auth(tg_exchange *x);
/* Whether metering runs; else answers 404 metering_disabled, saying that
 * what (such as "wallets") needs it. */
bool tg_admin_metering_on(tg_exchange *x, const char *what);
/* rest: "{id}/topups", "{id}/wallet", "{id}/plan" */
void tg_admin_customers(tg_exchange *x, tg_str rest);
void tg_customer_wallet(tg_exchange *x, tg_str rest);
void tg_admin_runs(tg_exchange *x, tg_str run);

/* closing.c: closing periods and their documents through the admin API */
void tg_admin_periods(tg_exchange *x, tg_str rest);  /* rest: "{YYYY-MM}[/...]" */
void tg_admin_invoices(tg_exchange *x, tg_str rest); /* rest: "{id}" */

/* plans.c: plans through the admin API (see the file) */
void tg_admin_plans(tg_exchange *x, tg_str rest); /* rest: "" or "{id}" */
void tg_admin_customer_plan(tg_exchange *x, tg_str customer);

/* webhooks.c: threshold events, and the admin API's listing of them */
/* Starts gw->webhooks over the store (metering on, before tg_billing_load). */
int tg_webhooks_start(tg_gateway *gw, tg_errmsg *err);
/* The events of the thresholds x's settlement crossed (bits over its
 * plan's thresholds) in acc, the account it held, for an app with a webhook. */
void tg_webhooks_settled(tg_exchange *x, tg_account *acc, uint32_t crossed);
/* At start: the events of every threshold an account loaded from the
 * store has reached in period (the store drops those it has). */
void tg_webhooks_loaded(tg_gateway *gw, const tg_app *a, const tg_plan *p, tg_str customer,
                        const char *period, tg_ncredits included, tg_ncredits used);
void tg_admin_webhooks(tg_exchange *x, tg_str rest);

/* routing.c: the route stage on an exchange (docs/routing.md). */
/* Chooses the model and orders its offerings (x->model, x->off: the first
 * candidate, for the policy's checks), or answers 404 / 403 / 503; true
 * when it did not answer. */
bool tg_routing_route(tg_exchange *x);
/* Serves x with model m instead (a plan's degrade), with its own strategy
 * and no cheap first; false (x unchanged) when x's key may not use m or
 * no provider of m is available. */
bool tg_routing_degrade(tg_exchange *x, const tg_model *m);
/* The first attempt: the first candidate whose breaker admits it gets the
 * upstream request written for it, the intent, and the call
 * (tg_exchange_call); 503 when every breaker is open. */
void tg_routing_start(tg_exchange *x);
/* After a failed call that sent nothing to the client yet: reports the
 * failure to the offering's health and, within the attempt budget and the
 * deadline, schedules the next attempt (after its backoff) and returns
 * true; false when the caller answers the failure. */
bool tg_routing_retry(tg_exchange *x, const char *why);
/* After a 2xx non-stream answer of the cheap-first model: true when it
 * failed a check and the request went on to the model asked. */
bool tg_routing_escalate(tg_exchange *x);
/* The call answered (2xx: with a latency sample, else without one). */
void tg_routing_answered(tg_exchange *x);
/* From the exchange's end: a verdict still due is released, a pending
 * retry's timer closed. */
void tg_routing_end(tg_exchange *x);

/* GET /admin/v1/routing: breakers, latencies, strategies, budgets. */
void tg_admin_routing(tg_exchange *x, tg_str rest);
/* The breakers and latencies in Prometheus's text format, into b. */
int tg_routing_metrics(tg_gateway *gw, tg_buf *b);

/* adapter.c: the call in its provider's dialect, the answer in the
 * client's (see the file). */
/* x->upbody, the headers and x->up_url for x->off; answers the client
 * (400 for what the provider's dialect cannot carry, 413, 500) and
 * returns nonzero when it cannot. */
int tg_adapter_prepare(tg_exchange *x);
/* A 2xx stream begins: a translator when the dialects differ. */
void tg_adapter_stream_begin(tg_exchange *x);
/* One upstream SSE event (http/sse.h's callback): forwarded, rewritten or
 * read; nonzero stops the stream (x->cut: at the plan's limit; x->error
 * says why otherwise). */
int tg_adapter_event(tg_exchange *x, tg_str raw, tg_str data);
/* Ends the stream at the plan's limit, in the client's dialect. */
void tg_adapter_cut(tg_exchange *x);
/* Ends a started stream with an error event in the client's dialect
 * (nothing more when the upstream's own error event already ended it). */
void tg_adapter_stream_error(tg_exchange *x, const char *code, const char *msg);
/* A buffered 2xx answer's usage, read in the provider's dialect. */
void tg_adapter_usage(tg_exchange *x, tg_str body);
/* The answer in the client's dialect (*body replaced when translated);
 * nonzero after answering 502 when it cannot be translated. */
int tg_adapter_answer(tg_exchange *x, tg_str *body);
/* A provider's error body in the client's dialect. */
tg_str tg_adapter_error_body(tg_exchange *x, tg_str body);
/* Frees what a translated stream held. */
void tg_adapter_release(tg_exchange *x);

/* relay.c: calls the offering's provider (x->up_url) and relays the
 * answer; the abort callback that marks a request whose client left. */
void tg_relay_start(tg_exchange *x);
/* Sends raw to the client, beginning the stream's head when it is the
 * first; nonzero when the client is gone. */
int tg_relay_forward(tg_exchange *x, tg_str raw);
void tg_relay_client_gone(tg_req *r, void *data);

#endif
