/* The sim's server side: start and stop, routing, the bearer key, fault
 * injection, errors in OpenAI's shape, and /sim/stats.
 *
 * Faults: the X-Sim-Fault header names one (or "none"); without it one
 * number in [0, 100) is drawn from a PRNG seeded by the seed and the count
 * of inference requests decided so far, and the first rule whose
 * cumulative percentage band holds it wins. So a run that sends the same
 * requests in the same order gets the same faults. Faults apply to the three inference endpoints
 * only, after the key and the body were checked (so a faulted request is
 * recorded under its model).
 *
 * Stats are what the sim would have billed, guarded by one mutex held for a
 * few increments; the state lives until the server's worker stops. */
#include "sim/sim_int.h"

#include "base/clock.h"
#include "base/hash.h"
#include "base/jsonw.h"

#include <stdio.h>
#include <stdlib.h>

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

static void send_json(tg_req *r, int status, const tg_header *h, size_t nh, tg_str body)
{
    tg_resp_send(r, status, TG_STR("application/json"), h, nh, body);
}

static void send_err(tg_req *r, const tg_sim__err *e, const tg_header *h, size_t nh)
{
    tg_buf b;
    tg_buf_init(&b, 4096);
    if (tg_sim__err_json(&b, e->type, e->msg, e->param, e->code)) tg_buf_clear(&b);
    send_json(r, e->status, h, nh, tg_buf_str(&b));
    tg_buf_release(&b);
}

/* The server's own errors (400, 408, 413, 431, 503), in the same shape. */
static void on_server_error(tg_req *r, int status, const char *type, const char *msg, void *data)
{
    tg_sim__err e = {.status = status, .type = type ? type : "invalid_request_error"};
    (void)data;
    snprintf(e.msg, sizeof e.msg, "%s", msg ? msg : tg_http_reason(status));
    send_err(r, &e, NULL, 0);
}

/* ---- stats ---- */

static tg_sim__model_stat *model_stat(tg_sim__ctx *sim, tg_str model)
{
    for (size_t i = 0; i < sim->nmodels; i++)
        if (tg_str_eq(tg_str_c(sim->models[i].name), model)) return &sim->models[i];
    if (sim->nmodels == TG_SIM__MAX_STAT_MODELS) return &sim->other;
    if (!sim->models) {
        sim->models = calloc(TG_SIM__MAX_STAT_MODELS, sizeof *sim->models);
        if (!sim->models) return &sim->other;
    }
    char *name = tg_str_dup(model);
    if (!name) return &sim->other;
    tg_sim__model_stat *m = &sim->models[sim->nmodels++];
    *m = (tg_sim__model_stat){.name = name};
    return m;
}

static void served_add(tg_sim__ctx *sim, tg_str rid, tg_str model, bool stream, tg_sim_fault fault,
                       uint32_t prompt, uint32_t completion, uint32_t cached)
{
    if (sim->nserved == sim->capserved) {
        size_t cap = sim->capserved ? sim->capserved * 2 : 1024;
        tg_sim__served *n = cap <= TG_SIM__MAX_SERVED ? realloc(sim->served, cap * sizeof *n) : NULL;
        if (!n) {
            sim->served_truncated = true;
            return;
        }
        sim->served = n;
        sim->capserved = cap;
    }
    tg_sim__served *e = &sim->served[sim->nserved++];
    size_t rn = rid.n < sizeof e->rid ? rid.n : sizeof e->rid - 1;
    size_t mn = model.n < sizeof e->model ? model.n : sizeof e->model - 1;
    memcpy(e->rid, rid.p ? rid.p : "", rn);
    e->rid[rn] = '\0';
    memcpy(e->model, model.p, mn);
    e->model[mn] = '\0';
    e->stream = stream;
    e->fault = (uint8_t)fault;
    e->prompt = prompt;
    e->completion = completion;
    e->cached = cached;
}

void tg_sim__record(tg_sim__ctx *sim, tg_str rid, tg_str model, bool stream, tg_sim_fault fault,
                    bool rejected, uint32_t prompt, uint32_t completion, uint32_t cached)
{
    /* faults other than cut bill nothing, whatever the caller passed */
    if (fault != TG_SIM_FAULT_NONE && fault != TG_SIM_FAULT_CUT) prompt = completion = cached = 0;
    pthread_mutex_lock(&sim->mu);
    sim->requests++;
    sim->rejected += rejected;
    if ((unsigned)fault < TG_SIM__FAULT_KINDS) sim->faults[fault]++;
    if (model.n) {
        tg_sim__model_stat *m = model_stat(sim, model);
        m->requests++;
        m->streams += stream;
        m->prompt_tokens += prompt;
        m->completion_tokens += completion;
        m->cached_tokens += cached;
        served_add(sim, rid, model, stream, fault, prompt, completion, cached);
    }
    pthread_mutex_unlock(&sim->mu);
}

static void stats_reset(tg_sim__ctx *sim)
{
    pthread_mutex_lock(&sim->mu);
    for (size_t i = 0; i < sim->nmodels; i++)
        free(sim->models[i].name);
    sim->nmodels = 0;
    sim->other = (tg_sim__model_stat){0};
    sim->requests = sim->rejected = 0;
    sim->nserved = 0;
    sim->served_truncated = false;
    memset(sim->faults, 0, sizeof sim->faults);
    atomic_store(&sim->draws, 0); /* a reset run draws the same faults again */
    pthread_mutex_unlock(&sim->mu);
}

static int stat_json(tg_buf *b, const char *name, const tg_sim__model_stat *m, bool comma)
{
    int rc = comma ? tg_buf_add_char(b, ',') : TG_OK;
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(name));
    if (!rc)
        rc = tg_buf_printf(b,
                           ":{\"requests\":%llu,\"streams\":%llu,\"prompt_tokens\":%llu,"
                           "\"completion_tokens\":%llu,\"cached_tokens\":%llu}",
                           (unsigned long long)m->requests, (unsigned long long)m->streams,
                           (unsigned long long)m->prompt_tokens,
                           (unsigned long long)m->completion_tokens,
                           (unsigned long long)m->cached_tokens);
    return rc;
}

/* Copied under the lock into b; the lock is held only while formatting
 * counters, which is short next to a test's polling. */
static int stats_json(tg_sim__ctx *sim, tg_buf *b)
{
    pthread_mutex_lock(&sim->mu);
    int rc = tg_buf_printf(b, "{\"requests\":%llu,\"rejected\":%llu,\"faults\":{",
                           (unsigned long long)sim->requests, (unsigned long long)sim->rejected);
    for (int f = TG_SIM_FAULT_429; !rc && f < TG_SIM__FAULT_KINDS; f++)
        rc = tg_buf_printf(b, "%s\"%s\":%llu", f > TG_SIM_FAULT_429 ? "," : "",
                           tg_sim_fault_name((tg_sim_fault)f), (unsigned long long)sim->faults[f]);
    if (!rc) rc = tg_buf_add_lit(b, "},\"models\":{");
    for (size_t i = 0; !rc && i < sim->nmodels; i++)
        rc = stat_json(b, sim->models[i].name, &sim->models[i], i > 0);
    if (!rc && sim->other.requests) rc = stat_json(b, "(other)", &sim->other, sim->nmodels > 0);
    if (!rc) rc = tg_buf_add_lit(b, "}}");
    pthread_mutex_unlock(&sim->mu);
    return rc;
}

/* /sim/requests: every request that named a model, in the order the sim
 * billed it, with what it billed. Tests match it against a ledger. */
static int served_json(tg_sim__ctx *sim, tg_buf *b)
{
    pthread_mutex_lock(&sim->mu);
    int rc = tg_buf_add_lit(b, "{\"requests\":[");
    for (size_t i = 0; !rc && i < sim->nserved; i++) {
        const tg_sim__served *e = &sim->served[i];
        if (i) rc = tg_buf_add_char(b, ',');
        if (!rc) rc = tg_buf_add_lit(b, "{\"id\":");
        if (!rc) rc = tg_jsonw_str(b, tg_str_c(e->rid));
        if (!rc) rc = tg_buf_add_lit(b, ",\"model\":");
        if (!rc) rc = tg_jsonw_str(b, tg_str_c(e->model));
        if (!rc)
            rc = tg_buf_printf(b, ",\"stream\":%s,\"fault\":\"%s\",\"prompt_tokens\":%u,"
                                  "\"completion_tokens\":%u,\"cached_tokens\":%u}",
                               e->stream ? "true" : "false", tg_sim_fault_name((tg_sim_fault)e->fault),
                               e->prompt, e->completion, e->cached);
    }
    if (!rc) rc = tg_buf_printf(b, "],\"truncated\":%s}", sim->served_truncated ? "true" : "false");
    pthread_mutex_unlock(&sim->mu);
    return rc;
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

/* X-Sim-Cached-Tokens: N reports N of a chat call's prompt tokens (at
 * most all of them) as read from a prompt cache, in
 * usage.prompt_tokens_details.cached_tokens, as OpenAI does. */
static int cached_want(tg_req *r, tg_sim__kind kind, tg_sim__call *c, tg_sim__err *e)
{
    tg_str h = tg_req_header(r, TG_STR("X-Sim-Cached-Tokens"));
    uint64_t v;
    c->cached_want = 0;
    if (!h.p) return TG_OK;
    h = tg_str_trim(h);
    if (kind != TG_SIM__CHAT)
        return tg_sim__err_set(e, 400, NULL,
                               "X-Sim-Cached-Tokens applies to chat completions only.");
    if (tg_str_to_u64(h, &v) || v > UINT32_MAX) {
        if (h.n > 64) h.n = 64;
        return tg_sim__err_set(e, 400, NULL,
                               "X-Sim-Cached-Tokens: \"%.*s\" is not a whole number of tokens "
                               "from 0 to 4294967295.",
                               TG_STR_FMT(h));
    }
    c->cached_want = (uint32_t)v;
    return TG_OK;
}

static void on_timeout_abort(tg_req *r, void *data)
{
    (void)r, (void)data;
}

/* Answers the faults that need no answer body; false for the others. */
static bool fault_now(tg_sim__ctx *sim, tg_req *r, const tg_sim__call *c, tg_sim_fault f)
{
    tg_sim__err e = {.type = "server_error"};
    char retry[24];
    tg_header h[1];
    size_t nh = 0;
    switch (f) {
    case TG_SIM_FAULT_429:
        e.status = 429;
        e.type = "rate_limit_error";
        e.code = "rate_limit_exceeded";
        snprintf(e.msg, sizeof e.msg,
                 "Rate limit reached for %.*s (simulated). Please try again in %us.",
                 TG_STR_FMT(c->model), sim->conf.retry_after_s);
        snprintf(retry, sizeof retry, "%u", sim->conf.retry_after_s);
        h[nh++] = (tg_header){TG_STR("Retry-After"), tg_str_c(retry)};
        break;
    case TG_SIM_FAULT_500:
        e.status = 500;
        snprintf(e.msg, sizeof e.msg,
                 "The server had an error while processing your request (simulated).");
        break;
    case TG_SIM_FAULT_503:
        e.status = 503;
        e.code = "service_unavailable";
        snprintf(e.msg, sizeof e.msg,
                 "The server is overloaded or not ready yet (simulated). Please try again later.");
        break;
    case TG_SIM_FAULT_TIMEOUT:
        /* never answered; the server frees the request when the client
         * closes (or when a drain gives up) and tells us here */
        tg_sim__record(sim, c->rid, c->model, c->stream, f, false, 0, 0, 0);
        tg_req_on_abort(r, on_timeout_abort, NULL);
        return true;
    case TG_SIM_FAULT_RESET:
        tg_sim__record(sim, c->rid, c->model, c->stream, f, false, 0, 0, 0);
        tg_resp_close(r, true);
        return true;
    default:
        return false;
    }
    tg_sim__record(sim, c->rid, c->model, c->stream, f, false, 0, 0, 0);
    send_err(r, &e, h, nh);
    return true;
}

/* ---- routing ---- */

typedef enum {
    EP_NONE,
    EP_CHAT,
    EP_COMPLETION,
    EP_EMBEDDING,
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
        {"/v1/embeddings", EP_EMBEDDING, TG_POST},  {"/v1/models", EP_MODELS, TG_GET},
        {"/sim/stats", EP_STATS, TG_GET},           {"/sim/stats/reset", EP_RESET, TG_POST},
        {"/sim/requests", EP_SERVED, TG_GET},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (tg_str_eq(path, tg_str_c(table[i].path))) {
            *want = table[i].method;
            return table[i].ep;
        }
    }
    return EP_NONE;
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

/* "Authorization: Bearer <key>", compared in constant time. */
static bool key_ok(const tg_sim__ctx *sim, const tg_req *r)
{
    if (!sim->key) return true;
    tg_str h = tg_str_trim(tg_req_header(r, TG_STR("Authorization")));
    tg_str scheme = TG_STR("Bearer ");
    if (!h.p || h.n < scheme.n || !tg_str_ieq(tg_str_make(h.p, scheme.n), scheme)) return false;
    tg_str k = tg_str_trim(tg_str_make(h.p + scheme.n, h.n - scheme.n));
    return k.n == sim->key_n &&
           tg_ct_equal((const uint8_t *)k.p, (const uint8_t *)sim->key, sim->key_n);
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
        send_err(r, &e, NULL, 0);
    } else {
        send_json(r, 200, NULL, 0, tg_buf_str(&b));
    }
    tg_buf_release(&b);
}

static void send_stats(tg_sim__ctx *sim, tg_req *r) { send_rendered(sim, r, stats_json, 16u << 20); }

static void inference(tg_sim__ctx *sim, tg_req *r, tg_sim__kind kind)
{
    tg_sim__call c;
    tg_sim__err e;
    tg_sim_fault f;
    /* the body first: rule draws count only requests that could be served */
    if (tg_sim__parse(&sim->conf, kind, r->body, &r->arena, &c, &e) ||
        cached_want(r, kind, &c, &e) || pick_fault(sim, r, &f, &e)) {
        tg_sim__record(sim, TG_STR_NULL, TG_STR_NULL, false, TG_SIM_FAULT_NONE, e.status < 500, 0, 0, 0);
        send_err(r, &e, NULL, 0);
        return;
    }
    if (kind == TG_SIM__EMBEDDING) c.stream = false;
    c.rid = tg_req_header(r, TG_STR("X-Request-Id"));
    if (!fault_now(sim, r, &c, f)) tg_sim__answer(sim, r, &c, f);
}

static void handle(tg_req *r, void *data)
{
    tg_sim__ctx *sim = data;
    tg_method want = TG_GET;
    endpoint ep = route(r->path, &want);
    tg_sim__err e;
    bool api = tg_str_has_prefix(r->path, TG_STR("/v1/"));
    if (api && !key_ok(sim, r)) {
        tg_sim__err_set(&e, 401, NULL,
                        "Incorrect API key provided. The simulated provider expects "
                        "\"Authorization: Bearer <key>\" with the key it was started with.");
        e.code = "invalid_api_key";
        tg_sim__record(sim, TG_STR_NULL, TG_STR_NULL, false, TG_SIM_FAULT_NONE, true, 0, 0, 0);
        send_err(r, &e, NULL, 0);
        return;
    }
    if (ep == EP_NONE || r->method != want) {
        tg_header allow = {TG_STR("Allow"), tg_str_c(method_name(want))};
        tg_sim__err_set(&e, ep == EP_NONE ? 404 : 405, NULL, "%s (%s %.*s)",
                        ep == EP_NONE ? "Invalid URL" : "Invalid method for URL",
                        method_name(r->method), r->path.n > 200 ? 200 : (int)r->path.n, r->path.p);
        if (api) tg_sim__record(sim, TG_STR_NULL, TG_STR_NULL, false, TG_SIM_FAULT_NONE, true, 0, 0, 0);
        send_err(r, &e, &allow, ep == EP_NONE ? 0 : 1);
        return;
    }
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
    case EP_MODELS:
        tg_sim__record(sim, TG_STR_NULL, TG_STR_NULL, false, TG_SIM_FAULT_NONE, false, 0, 0, 0);
        send_models(r);
        break;
    case EP_STATS:
        send_stats(sim, r);
        break;
    case EP_RESET:
        stats_reset(sim);
        send_stats(sim, r);
        break;
    case EP_SERVED:
        send_rendered(sim, r, served_json, 256u << 20);
        break;
    case EP_NONE:
        break;
    }
}

/* ---- lifecycle ---- */

static void sim_free(tg_sim__ctx *sim)
{
    for (size_t i = 0; i < sim->nmodels; i++)
        free(sim->models[i].name);
    free(sim->models);
    free(sim->served);
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
