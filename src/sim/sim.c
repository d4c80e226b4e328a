/* The sim's server side: start and stop, routing, the required key, fault
 * injection, and errors in the dialect of the endpoint called.
 *
 * Dialects: /v1/messages speaks Anthropic's (errors {"type":"error",...},
 * a request-id header, the key in x-api-key, anthropic-version required);
 * every other endpoint speaks OpenAI's. A path the sim does not know is
 * answered in Anthropic's shape when the request carries anthropic-version
 * (an Anthropic client lost), else in OpenAI's.
 *
 * Faults: the X-Sim-Fault header names one (or "none"); without it one
 * number in [0, 100) is drawn from a PRNG seeded by the seed and the count
 * of inference requests decided so far, and the first rule whose
 * cumulative percentage band holds it wins. So a run that sends the same
 * requests in the same order gets the same faults. Faults apply to the
 * inference endpoints only, after the key and the body were checked (so a
 * faulted request is recorded under its model). */
#include "sim/sim_int.h"

#include "base/clock.h"
#include "base/hash.h"
#include "base/jsonw.h"

#include <stdio.h>
#include <stdlib.h>

uint64_t tg_sim__unique(tg_sim__ctx *sim)
{
    uint64_t seq = atomic_fetch_add_explicit(&sim->seq, 1, memory_order_relaxed);
    return tg_hash64(&seq, sizeof seq, sim->nonce);
}

/* ---- errors ---- */

int tg_sim__err_json(tg_buf *b, const char *type, const char *msg, const char *param,
                     const char *code)
{
    int rc = tg_buf_add_lit(b, "{\"error\":{\"message\":");
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(msg));
    if (!rc) rc = tg_buf_add_lit(b, ",\"type\":");
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(type));
    if (!rc) rc = tg_buf_add_lit(b, ",\"param\":");
    if (!rc) rc = param ? tg_jsonw_str(b, tg_str_c(param)) : tg_buf_add_lit(b, "null");
    if (!rc) rc = tg_buf_add_lit(b, ",\"code\":");
    if (!rc) rc = code ? tg_jsonw_str(b, tg_str_c(code)) : tg_buf_add_lit(b, "null");
    if (!rc) rc = tg_buf_add_lit(b, "}}");
    return rc;
}

/* Anthropic names an error by its status (docs: "HTTP errors"); the
 * statuses it does not list are invalid_request_error below 500. */
static const char *anthropic_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 408:
        return "timeout_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 503:
    case 529:
        return "overloaded_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

static int anthropic_err_json(tg_buf *b, int status, const char *msg, const char *req_id)
{
    int rc = tg_buf_add_lit(b, "{\"type\":\"error\",\"error\":{\"type\":\"");
    if (!rc) rc = tg_buf_add_str(b, tg_str_c(anthropic_type(status)));
    if (!rc) rc = tg_buf_add_lit(b, "\",\"message\":");
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(msg));
    if (!rc) rc = tg_buf_printf(b, "},\"request_id\":\"%s\"}", req_id);
    return rc;
}

static void send_json(tg_req *r, int status, const tg_header *h, size_t nh, tg_str body)
{
    tg_resp_send(r, status, TG_STR("application/json"), h, nh, body);
}

void tg_sim__send_err(tg_sim__ctx *sim, tg_req *r, tg_sim__dialect d, const tg_sim__err *e,
                      const tg_header *h, size_t nh)
{
    tg_header all[4];
    char req_id[40];
    size_t n = 0;
    int rc;
    tg_buf b;
    tg_buf_init(&b, 4096);
    for (; n < nh && n < 3; n++)
        all[n] = h[n];
    if (d == TG_SIM__ANTHROPIC) {
        snprintf(req_id, sizeof req_id, "req_sim_%016llx", (unsigned long long)tg_sim__unique(sim));
        all[n++] = (tg_header){TG_STR("request-id"), tg_str_c(req_id)};
        rc = anthropic_err_json(&b, e->status, e->msg, req_id);
    } else {
        rc = tg_sim__err_json(&b, e->type, e->msg, e->param, e->code);
    }
    if (rc) tg_buf_clear(&b);
    send_json(r, e->status, all, n, tg_buf_str(&b));
    tg_buf_release(&b);
}

static tg_sim__dialect dialect_of_path(const tg_req *r);

/* The server's own errors (400, 408, 413, 431, 503), in the same shapes. */
static void on_server_error(tg_req *r, int status, const char *type, const char *msg, void *data)
{
    tg_sim__err e = {.status = status, .type = type ? type : "invalid_request_error"};
    snprintf(e.msg, sizeof e.msg, "%s", msg ? msg : tg_http_reason(status));
    tg_sim__send_err(data, r, dialect_of_path(r), &e, NULL, 0);
}

/* ---- faults ---- */

/* The request's fault: from X-Sim-Fault, else from the rules. */
static int pick_fault(tg_sim__ctx *sim, tg_req *r, tg_sim_fault *out, tg_sim__err *e)
{
    tg_str h = tg_req_header(r, TG_STR("X-Sim-Fault"));
    *out = TG_SIM_FAULT_NONE;
    if (h.p) {
        h = tg_str_trim(h);
        if (tg_str_ieq(h, TG_STR("none"))) return TG_OK;
        if (!tg_sim_fault_parse(h, out)) return TG_OK;
        if (h.n > 64) h.n = 64;
        return tg_sim__err_set(e, 400, NULL,
                               "X-Sim-Fault: unknown kind \"%.*s\"; valid kinds are none, 429, "
                               "500, 503, timeout, reset, cut and malformed.",
                               TG_STR_FMT(h));
    }
    if (!sim->conf.nfaults) return TG_OK;
    /* one draw in [0, 100) against the rules' cumulative bands: each rule
     * gets exactly its percent of the requests (the config keeps the sum
     * at most 100; past 100 the later rules get what is left) */
    uint64_t n = atomic_fetch_add_explicit(&sim->draws, 1, memory_order_relaxed);
    tg_rng rng = {tg_hash64(&n, sizeof n, sim->conf.seed)};
    uint64_t x = tg_rng_below(&rng, 100), band = 0;
    for (size_t i = 0; i < sim->conf.nfaults; i++) {
        band += sim->conf.faults[i].percent;
        if (x < band) {
            *out = sim->conf.faults[i].kind;
            break;
        }
    }
    return TG_OK;
}

/* A header holding a token count: absent leaves *out 0. */
static int header_tokens(tg_req *r, const char *name, uint32_t *out, tg_sim__err *e)
{
    tg_str h = tg_req_header(r, tg_str_c(name));
    uint64_t v;
    *out = 0;
    if (!h.p) return TG_OK;
    h = tg_str_trim(h);
    if (tg_str_to_u64(h, &v) || v > UINT32_MAX) {
        if (h.n > 64) h.n = 64;
        return tg_sim__err_set(e, 400, NULL,
                               "%s: \"%.*s\" is not a whole number of tokens from 0 to "
                               "4294967295.",
                               name, TG_STR_FMT(h));
    }
    *out = (uint32_t)v;
    return TG_OK;
}

/* X-Sim-Cached-Tokens: N reports N of the prompt tokens (at most all of
 * them) as read from a prompt cache, on chat completions (OpenAI's
 * prompt_tokens_details.cached_tokens) and messages (Anthropic's
 * cache_read_input_tokens). X-Sim-Cache-Write-Tokens: N reports N more
 * (at most what is left) as written to one, which only Anthropic's usage
 * can say (cache_creation_input_tokens). */
static int cache_wants(tg_req *r, tg_sim__kind kind, tg_sim__call *c, tg_sim__err *e)
{
    int rc = header_tokens(r, "X-Sim-Cached-Tokens", &c->cached_want, e);
    if (!rc) rc = header_tokens(r, "X-Sim-Cache-Write-Tokens", &c->cache_write_want, e);
    if (rc) return rc;
    if (kind != TG_SIM__CHAT && kind != TG_SIM__MESSAGES &&
        tg_req_header(r, TG_STR("X-Sim-Cached-Tokens")).p)
        return tg_sim__err_set(e, 400, NULL,
                               "X-Sim-Cached-Tokens applies to chat completions and messages "
                               "only.");
    if (kind != TG_SIM__MESSAGES && tg_req_header(r, TG_STR("X-Sim-Cache-Write-Tokens")).p)
        return tg_sim__err_set(e, 400, NULL,
                               "X-Sim-Cache-Write-Tokens applies to /v1/messages only: OpenAI's "
                               "usage has no place for cache writes.");
    return TG_OK;
}

static void on_timeout_abort(tg_req *r, void *data)
{
    (void)r, (void)data;
}

/* The error a fault answers with, in the dialect of c. Anthropic says
 * "overloaded" with 529 where OpenAI says 503. */
static void fault_err(tg_sim__ctx *sim, const tg_sim__call *c, tg_sim_fault f, tg_sim__err *e)
{
    bool anth = tg_sim__dialect_of(c->kind) == TG_SIM__ANTHROPIC;
    *e = (tg_sim__err){.type = "server_error"};
    switch (f) {
    case TG_SIM_FAULT_429:
        e->status = 429;
        e->type = "rate_limit_error";
        e->code = "rate_limit_exceeded";
        snprintf(e->msg, sizeof e->msg,
                 "Rate limit reached for %.*s (simulated). Please try again in %us.",
                 TG_STR_FMT(c->model), sim->conf.retry_after_s);
        break;
    case TG_SIM_FAULT_500:
        e->status = 500;
        snprintf(e->msg, sizeof e->msg, "%s",
                 anth ? "Internal server error (simulated)."
                      : "The server had an error while processing your request (simulated).");
        break;
    default:
        e->status = anth ? 529 : 503;
        e->code = "service_unavailable";
        snprintf(e->msg, sizeof e->msg, "%s",
                 anth ? "Overloaded (simulated)."
                      : "The server is overloaded or not ready yet (simulated). Please try again "
                        "later.");
        break;
    }
}

/* Answers the faults that need no answer body; false for the others. */
static bool fault_now(tg_sim__ctx *sim, tg_req *r, const tg_sim__call *c, tg_sim_fault f)
{
    tg_sim__rec rec = {.rid = c->rid,
                       .model = c->model,
                       .stream = c->stream,
                       .fault = f,
                       .dialect = tg_sim__dialect_of(c->kind)};
    tg_sim__err e;
    char retry[24];
    tg_header h[1];
    size_t nh = 0;
    switch (f) {
    case TG_SIM_FAULT_429:
        snprintf(retry, sizeof retry, "%u", sim->conf.retry_after_s);
        h[nh++] = (tg_header){TG_STR("Retry-After"), tg_str_c(retry)};
        /* fall through */
    case TG_SIM_FAULT_500:
    case TG_SIM_FAULT_503:
        fault_err(sim, c, f, &e);
        tg_sim__record(sim, &rec);
        tg_sim__send_err(sim, r, rec.dialect, &e, h, nh);
        return true;
    case TG_SIM_FAULT_TIMEOUT:
        /* never answered; the server frees the request when the client
         * closes (or when a drain gives up) and tells us here */
        tg_sim__record(sim, &rec);
        tg_req_on_abort(r, on_timeout_abort, NULL);
        return true;
    case TG_SIM_FAULT_RESET:
        tg_sim__record(sim, &rec);
        tg_resp_close(r, true);
        return true;
    default:
        return false;
    }
}

/* ---- routing ---- */

typedef enum {
    EP_NONE,
    EP_CHAT,
    EP_COMPLETION,
    EP_EMBEDDING,
    EP_MESSAGES,
    EP_MODELS,
    EP_STATS,
    EP_RESET,
    EP_SERVED
} endpoint;

static endpoint route(tg_str path, tg_method *want)
{
    static const struct {
        const char *path;
        endpoint ep;
        tg_method method;
    } table[] = {
        {"/v1/chat/completions", EP_CHAT, TG_POST}, {"/v1/completions", EP_COMPLETION, TG_POST},
        {"/v1/embeddings", EP_EMBEDDING, TG_POST},  {"/v1/messages", EP_MESSAGES, TG_POST},
        {"/v1/models", EP_MODELS, TG_GET},          {"/sim/stats", EP_STATS, TG_GET},
        {"/sim/stats/reset", EP_RESET, TG_POST},    {"/sim/requests", EP_SERVED, TG_GET},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (tg_str_eq(path, tg_str_c(table[i].path))) {
            *want = table[i].method;
            return table[i].ep;
        }
    }
    return EP_NONE;
}

/* The dialect a request is answered in: its endpoint's, or for a path the
 * sim does not know, Anthropic's when the request carries
 * anthropic-version (an Anthropic client that lost its way). */
static tg_sim__dialect dialect_of_path(const tg_req *r)
{
    tg_method want;
    endpoint ep = route(r->path, &want);
    if (ep == EP_MESSAGES) return TG_SIM__ANTHROPIC;
    if (ep != EP_NONE) return TG_SIM__OPENAI;
    return tg_req_header(r, TG_STR("anthropic-version")).p ? TG_SIM__ANTHROPIC : TG_SIM__OPENAI;
}

static const char *method_name(tg_method m)
{
    switch (m) {
    case TG_GET:
        return "GET";
    case TG_POST:
        return "POST";
    case TG_HEAD:
        return "HEAD";
    case TG_PUT:
        return "PUT";
    case TG_DELETE:
        return "DELETE";
    default:
        return "OTHER";
    }
}

static bool key_eq(const tg_sim__ctx *sim, tg_str k)
{
    return k.n == sim->key_n &&
           tg_ct_equal((const uint8_t *)k.p, (const uint8_t *)sim->key, sim->key_n);
}

/* The required key, compared in constant time: OpenAI's requests carry
 * "Authorization: Bearer <key>", Anthropic's "x-api-key: <key>". On a
 * refusal e says which header was expected. */
static bool key_ok(const tg_sim__ctx *sim, const tg_req *r, tg_sim__dialect d, tg_sim__err *e)
{
    if (!sim->key) return true;
    if (d == TG_SIM__ANTHROPIC) {
        tg_str k = tg_req_header(r, TG_STR("x-api-key"));
        if (k.p && key_eq(sim, tg_str_trim(k))) return true;
        tg_sim__err_set(e, 401, NULL, "%s",
                        k.p ? "invalid x-api-key"
                            : "x-api-key header is required: the simulated provider expects the "
                              "key it was started with.");
        return false;
    }
    tg_str h = tg_str_trim(tg_req_header(r, TG_STR("Authorization")));
    tg_str scheme = TG_STR("Bearer ");
    if (h.p && h.n >= scheme.n && tg_str_ieq(tg_str_make(h.p, scheme.n), scheme) &&
        key_eq(sim, tg_str_trim(tg_str_make(h.p + scheme.n, h.n - scheme.n))))
        return true;
    tg_sim__err_set(e, 401, NULL,
                    "Incorrect API key provided. The simulated provider expects "
                    "\"Authorization: Bearer <key>\" with the key it was started with.");
    e->code = "invalid_api_key";
    return false;
}

/* Anthropic refuses a request without a known API version. */
static int version_ok(const tg_req *r, tg_sim__err *e)
{
    tg_str v = tg_req_header(r, TG_STR("anthropic-version"));
    if (!v.p) return tg_sim__err_set(e, 400, NULL, "anthropic-version: header is required");
    v = tg_str_trim(v);
    if (tg_str_eq(v, TG_STR("2023-06-01")) || tg_str_eq(v, TG_STR("2023-01-01"))) return TG_OK;
    if (v.n > 64) v.n = 64;
    return tg_sim__err_set(e, 400, NULL,
                           "anthropic-version: \"%.*s\" is not a valid version (2023-06-01 or "
                           "2023-01-01).",
                           TG_STR_FMT(v));
}

static void send_models(tg_req *r)
{
    static const char body[] =
        "{\"object\":\"list\",\"data\":["
        "{\"id\":\"sim-fast\",\"object\":\"model\",\"created\":0,\"owned_by\":\"tollgate-sim\"},"
        "{\"id\":\"sim-premium\",\"object\":\"model\",\"created\":0,\"owned_by\":\"tollgate-sim\"},"
        "{\"id\":\"gpt-4o-mini\",\"object\":\"model\",\"created\":0,\"owned_by\":\"tollgate-sim\"},"
        "{\"id\":\"gpt-4o\",\"object\":\"model\",\"created\":0,\"owned_by\":\"tollgate-sim\"},"
        "{\"id\":\"text-embedding-3-small\",\"object\":\"model\",\"created\":0,"
        "\"owned_by\":\"tollgate-sim\"}]}";
    send_json(r, 200, NULL, 0, TG_STR(body));
}

/* Answers with what render writes (the stats or the request list). */
static void send_rendered(tg_sim__ctx *sim, tg_req *r, int (*render)(tg_sim__ctx *, tg_buf *),
                          size_t cap)
{
    tg_buf b;
    tg_buf_init(&b, cap);
    if (render(sim, &b)) {
        tg_sim__err e;
        tg_sim__err_set(&e, 500, NULL, "The answer does not fit in memory.");
        tg_sim__send_err(sim, r, TG_SIM__OPENAI, &e, NULL, 0);
    } else {
        send_json(r, 200, NULL, 0, tg_buf_str(&b));
    }
    tg_buf_release(&b);
}

static void inference(tg_sim__ctx *sim, tg_req *r, tg_sim__kind kind)
{
    tg_sim__dialect d = tg_sim__dialect_of(kind);
    tg_sim__call c;
    tg_sim__err e;
    tg_sim_fault f;
    /* the body first: rule draws count only requests that could be served */
    if ((d == TG_SIM__ANTHROPIC && version_ok(r, &e)) ||
        tg_sim__parse(&sim->conf, kind, r->body, &r->arena, &c, &e) ||
        cache_wants(r, kind, &c, &e) || pick_fault(sim, r, &f, &e)) {
        tg_sim__record_refused(sim, e.status < 500);
        tg_sim__send_err(sim, r, d, &e, NULL, 0);
        return;
    }
    if (kind == TG_SIM__EMBEDDING) c.stream = false;
    c.rid = tg_req_header(r, TG_STR("X-Request-Id"));
    if (!fault_now(sim, r, &c, f)) tg_sim__answer(sim, r, &c, f);
}

/* Refuses r before any endpoint runs: a wrong key, path or method. */
static bool refused(tg_sim__ctx *sim, tg_req *r, endpoint ep, tg_method want)
{
    tg_sim__dialect d = dialect_of_path(r);
    bool api = tg_str_has_prefix(r->path, TG_STR("/v1/"));
    tg_sim__err e;
    if (api && !key_ok(sim, r, d, &e)) {
        tg_sim__record_refused(sim, true);
        tg_sim__send_err(sim, r, d, &e, NULL, 0);
        return true;
    }
    if (ep != EP_NONE && r->method == want) return false;
    tg_header allow = {TG_STR("Allow"), tg_str_c(method_name(want))};
    tg_sim__err_set(&e, ep == EP_NONE ? 404 : 405, NULL, "%s (%s %.*s)",
                    ep == EP_NONE ? "Invalid URL" : "Invalid method for URL",
                    method_name(r->method), r->path.n > 200 ? 200 : (int)r->path.n, r->path.p);
    if (api) tg_sim__record_refused(sim, true);
    tg_sim__send_err(sim, r, d, &e, &allow, ep == EP_NONE ? 0 : 1);
    return true;
}

static void handle(tg_req *r, void *data)
{
    tg_sim__ctx *sim = data;
    tg_method want = TG_GET;
    endpoint ep = route(r->path, &want);
    if (refused(sim, r, ep, want)) return;
    switch (ep) {
    case EP_CHAT:
        inference(sim, r, TG_SIM__CHAT);
        break;
    case EP_COMPLETION:
        inference(sim, r, TG_SIM__COMPLETION);
        break;
    case EP_EMBEDDING:
        inference(sim, r, TG_SIM__EMBEDDING);
        break;
    case EP_MESSAGES:
        inference(sim, r, TG_SIM__MESSAGES);
        break;
    case EP_MODELS:
        tg_sim__record_refused(sim, false);
        send_models(r);
        break;
    case EP_STATS:
        send_rendered(sim, r, tg_sim__stats_json, 16u << 20);
        break;
    case EP_RESET:
        tg_sim__stats_reset(sim);
        send_rendered(sim, r, tg_sim__stats_json, 16u << 20);
        break;
    case EP_SERVED:
        send_rendered(sim, r, tg_sim__served_json, 256u << 20);
        break;
    case EP_NONE:
        break;
    }
}

/* ---- lifecycle ---- */

static void sim_free(tg_sim__ctx *sim)
{
    tg_sim__stats_free(sim);
    free(sim->key);
    pthread_mutex_destroy(&sim->mu);
    free(sim);
}

/* One worker: when it stops, nothing can call into the sim any more. */
static void on_worker_stop(tg_worker *w, void *data)
{
    (void)w;
    sim_free(data);
}

int tg_sim_start(const tg_sim_conf *conf, const char *required_key, tg_server **out, tg_errmsg *err)
{
    tg_sim__ctx *sim = calloc(1, sizeof *sim);
    if (!sim) {
        tg_errmsg_set(err, "sim: out of memory");
        return TG_ENOMEM;
    }
    sim->conf = *conf;
    if (required_key) {
        sim->key_n = strlen(required_key);
        sim->key = tg_str_dup(tg_str_make(required_key, sim->key_n));
        if (!sim->key) {
            free(sim);
            tg_errmsg_set(err, "sim: out of memory");
            return TG_ENOMEM;
        }
    }
    sim->nonce = tg_clock_mono_ns() ^ (uint64_t)tg_clock_wall_ms() << 20;
    pthread_mutex_init(&sim->mu, NULL);
    tg_server_opts opts = {
        .name = "sim",
        .conf = {.listen = conf->listen,
                 .workers = 1,
                 .max_connections = 4096,
                 .max_header_bytes = 32u << 10,
                 .max_body_bytes = 8u << 20,
                 .max_response_bytes = 64u << 20,
                 .header_timeout_ms = 10000,
                 .request_timeout_ms = 60000,
                 .idle_timeout_ms = 60000,
                 .shutdown_timeout_ms = 10000},
        .handler = handle,
        .error = on_server_error,
        .worker_stop = on_worker_stop,
        .data = sim,
    };
    int rc = tg_server_start(out, &opts, err);
    if (rc) sim_free(sim); /* no callback fires after an error return */
    return rc;
}
