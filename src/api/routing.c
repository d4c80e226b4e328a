/* The route stage on an exchange: which model and offerings serve it, the
 * attempts, fallback with backoff, and cheap-first escalation
 * (docs/routing.md).
 *
 * A request's attempts walk its candidates (route/route.h's order) from
 * the first: each is asked its breaker's leave (route/health.h), a call
 * that fails before anything reached the client reports the failure and,
 * while the attempt budget (routing.attempts) and the deadline
 * (routing.deadline_ms after the request arrived) allow, the next
 * candidate is called after a backoff (routing.backoff_ms, doubled each
 * retry up to max_backoff_ms, drawn in its upper half). Past the last
 * candidate the walk starts again from the first. A provider's
 * Retry-After is respected for the same offering: a retry that would call
 * it again waits that long, and when that is past the deadline the 429
 * goes to the client. The deadline also caps each attempt's wait for its
 * first byte, so a client hears within it.
 *
 * Every attempt's health verdict is reported exactly once: failure here,
 * success from tg_routing_answered, or release when the exchange ends
 * first (its client left). */
#include "api/api.h"
#include "base/clock.h"
#include "base/jsonw.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>

/* The call to x->off written (adapter.c), with its timeouts. */
static int prepare_call(tg_exchange *x)
{
    const tg_provider *p = x->off->provider;
    if (tg_adapter_prepare(x)) return TG_EINVAL;
    x->up_connect_ms = p->connect_timeout_ms;
    x->up_total_ms = p->total_timeout_ms;
    /* the first byte comes within the deadline, or the request moves on */
    uint64_t spent_ms = (uv_hrtime() - x->req->t_start_ns) / 1000000;
    uint32_t deadline = x->cfg->routing.deadline_ms;
    uint32_t left = spent_ms < deadline ? deadline - (uint32_t)spent_ms : 1;
    x->up_first_byte_ms = p->first_byte_timeout_ms < left ? p->first_byte_timeout_ms : left;
    return TG_OK;
}

static void order(tg_exchange *x, const tg_model *m, tg_errmsg *why)
{
    x->ncand = tg_route_order(m, x->choice.strategy, &x->rctx, &x->ww->rng,
                              (int64_t)tg_clock_wall_ms(), x->cands, why);
    x->cand_next = 0;
    x->off = x->ncand ? x->cands[0] : NULL;
}

bool tg_routing_route(tg_exchange *x)
{
    const tg_tags *t = &x->attr.tags;
    x->rctx = (tg_route_ctx){.key = x->key, .feature = tg_str_c(t->feature),
                             .plan = tg_str_c(t->plan), .customer = tg_str_c(t->customer),
                             .stream = x->oreq.stream, .prompt_tokens = tg_metering_estimate_prompt(x),
                             .max_tokens = x->oreq.max_tokens};
    tg_route_result rr = tg_route_choose(x->cfg, &x->rctx, x->oreq.model_name, &x->choice);
    char msg[512];
    tg_str m = x->oreq.model_name;
    int mn = (int)(m.n > 200 ? 200 : m.n);
    x->model = x->choice.model;
    x->model_label = x->model ? tg_str_c(x->choice.asked->name) : TG_STR("unknown");
    if (rr == TG_ROUTE_UNKNOWN_MODEL) {
        snprintf(msg, sizeof msg,
                 "The model `%.*s` does not exist or you do not have access to it.", mn, m.p);
        tg_exchange_error(x, 404, "invalid_request_error", "model_not_found", "model", msg);
        return false;
    }
    if (rr == TG_ROUTE_REFUSED) {
        snprintf(msg, sizeof msg,
                 "Model `%.*s` is not available for this request (routing rule at line %d of the "
                 "gateway's configuration); ask for another model.", mn, m.p, x->choice.rule->line);
        tg_exchange_error(x, 403, "invalid_request_error", "model_not_allowed", "model", msg);
        return false;
    }
    tg_errmsg why;
    x->first_phase = x->choice.first != NULL;
    order(x, x->first_phase ? x->choice.first : x->choice.model, &why);
    if (!x->ncand && x->first_phase) { /* the cheap model has no provider: the model itself */
        x->first_phase = false;
        order(x, x->choice.model, &why);
    }
    if (!x->ncand) {
        tg_exchange_error(x, 503, "server_error", "provider_unavailable", NULL, why.msg);
        return false;
    }
    return true;
}

bool tg_routing_degrade(tg_exchange *x, const tg_model *m)
{
    const tg_offering *cands[TG_ROUTE_MAX];
    tg_errmsg why;
    if (!tg_key_allows(x->key, m)) return false;
    size_t n = tg_route_order(m, m->strategy, &x->rctx, &x->ww->rng, (int64_t)tg_clock_wall_ms(),
                              cands, &why);
    if (!n) return false;
    memcpy(x->cands, cands, n * sizeof *cands);
    x->ncand = n;
    x->cand_next = 0;
    x->off = cands[0];
    x->model = x->choice.model = m;
    x->choice.first = NULL;
    x->first_phase = false;
    return true;
}

/* The next candidate its breaker lets through, from cand_next (wrapping
 * once); false when none does. */
static bool next_admitted(tg_exchange *x)
{
    int64_t now = (int64_t)tg_clock_wall_ms();
    for (size_t tried = 0; tried < x->ncand; tried++) {
        const tg_offering *o = x->cands[x->cand_next];
        x->cand_next = (x->cand_next + 1) % x->ncand;
        tg_admit a = o->health ? tg_health_admit(o->health, now) : TG_ADMIT_YES;
        if (a == TG_ADMIT_NO) continue;
        x->off = o;
        x->probe = a == TG_ADMIT_PROBE;
        return true;
    }
    return false;
}

static void all_open(tg_exchange *x)
{
    char msg[512];
    snprintf(msg, sizeof msg,
             "every offering of model %s is failing and its circuit breakers are open; the "
             "gateway probes them again after routing.breaker.cooldown_ms: retry in a while",
             x->model->name);
    tg_exchange_error(x, 503, "server_error", "providers_failing", NULL, msg);
}

/* Starts the call to x->off (admitted). The verdict is due from here:
 * when the call cannot be made, the answer that says so ends the exchange,
 * whose end releases it (tg_routing_end); x is gone then. */
static void call(tg_exchange *x, bool first)
{
    x->verdict_due = x->off->health != NULL;
    if (prepare_call(x)) return;
    x->attempts++;
    x->call_start_ns = uv_hrtime();
    x->up_first_byte_ns = 0;
    if (first) tg_exchange_call(x);
    else tg_relay_start(x);
}

void tg_routing_start(tg_exchange *x)
{
    if (!next_admitted(x)) {
        all_open(x);
        return;
    }
    if (tg_metering_intent(x)) {
        if (x->probe) tg_health_release(x->off->health, true);
        tg_metering_refuse(x);
        return;
    }
    call(x, true);
}

/* What one attempt left behind, cleared for the next. */
static void reset_attempt(tg_exchange *x)
{
    x->up_status = 0;
    x->error = NULL;
    x->relay_stream = false;
    x->done_seen = false;
    x->stream_events = 0;
    x->usage = (tg_usage){0};
    tg_buf_clear(&x->resp);
    tg_sse_release(&x->sse);
    tg_adapter_release(x);
    x->stream_failed = false;
    x->attempt_unreached = false;
}

static void retry_closed(uv_handle_t *h) { free(h); }

static void on_retry(uv_timer_t *t)
{
    tg_exchange *x = t->data;
    uv_close((uv_handle_t *)t, retry_closed);
    x->retry_timer = NULL;
    tg_metering_reroute(x);
    call(x, false);
}

/* The pause before retry k (k >= 1): backoff_ms * 2^(k-1), capped, drawn
 * in its upper half so that retries of many requests spread out. */
static uint64_t backoff_ms(tg_exchange *x, uint32_t k)
{
    const tg_routing_conf *rt = &x->cfg->routing;
    uint64_t d = rt->backoff_ms;
    for (uint32_t i = 1; i < k && d < rt->max_backoff_ms; i++) d *= 2;
    if (d > rt->max_backoff_ms) d = rt->max_backoff_ms;
    return d ? d / 2 + tg_rng_below(&x->ww->rng, d / 2 + 1) : 0;
}

/* The provider's Retry-After in ms (delta seconds only); 0 when none. */
static uint64_t retry_after_ms(const tg_exchange *x)
{
    uint64_t s;
    if (!x->retry_after.n || tg_str_to_u64(x->retry_after, &s) || s > 86400) return 0;
    return s * 1000;
}

static void report_failure(tg_exchange *x, const char *why)
{
    if (!x->verdict_due) return;
    x->verdict_due = false;
    const tg_routing_conf *rt = &x->cfg->routing;
    tg_health_failure(x->off->health, x->probe, (int64_t)tg_clock_wall_ms(), rt->breaker_failures,
                      rt->breaker_cooldown_ms, why);
}

bool tg_routing_retry(tg_exchange *x, const char *why)
{
    report_failure(x, why);
    const tg_routing_conf *rt = &x->cfg->routing;
    if (x->attempts >= rt->attempts || x->cut) return false;
    const tg_offering *failed = x->off;
    uint64_t wait = retry_after_ms(x);
    if (!next_admitted(x)) return false;
    uint64_t delay = backoff_ms(x, x->attempts);
    if (x->off == failed && wait > delay) delay = wait;
    uint64_t spent_ms = (uv_hrtime() - x->req->t_start_ns) / 1000000;
    if (spent_ms + delay >= rt->deadline_ms) {
        if (x->probe) tg_health_release(x->off->health, true);
        x->off = failed; /* the failure answered is this one's */
        return false;
    }
    uv_timer_t *t = malloc(sizeof *t);
    if (!t) {
        if (x->probe) tg_health_release(x->off->health, true);
        x->off = failed;
        return false;
    }
    /* degraded and escalated requests keep saying so; a primary one fell
     * back; what the failed call may have cost is billed at its offering */
    if (x->rec && x->rec->r.route == TG_RT_PRIMARY) x->rec->r.route = TG_RT_FALLBACK;
    const tg_offering *next = x->off;
    x->off = failed;
    tg_metering_attempt(x);
    x->off = next;
    reset_attempt(x);
    x->retry_after = TG_STR_NULL;
    uv_timer_init(x->req->loop, t);
    t->data = x;
    x->retry_timer = t;
    uv_timer_start(t, on_retry, delay, 0);
    return true;
}

void tg_routing_answered(tg_exchange *x)
{
    if (!x->verdict_due) return;
    x->verdict_due = false;
    bool ok = x->up_status >= 200 && x->up_status < 300;
    uint64_t now = uv_hrtime();
    int64_t ttft = ok && x->up_first_byte_ns ? (int64_t)(x->up_first_byte_ns - x->call_start_ns) / 1000 : 0;
    int64_t gen = ttft ? (int64_t)(now - x->up_first_byte_ns) / 1000 : 0;
    tg_health_success(x->off->health, x->probe, ttft, gen, x->usage.completion);
}

/* ---- escalation ---- */

/* An Anthropic message's first text block, and whether it stopped at
 * max_tokens. */
static void message_of(tg_json_val root, tg_str *content, bool *length)
{
    tg_str sr;
    *length = tg_json_str_view(tg_json_get(root, TG_STR("stop_reason")), &sr) &&
              tg_str_eq(sr, TG_STR("max_tokens"));
    tg_json_iter it = tg_json_iter_init(tg_json_get(root, TG_STR("content")));
    tg_json_val k, b;
    while (tg_json_iter_next(&it, &k, &b)) {
        tg_str t;
        tg_json_val text = tg_json_get(b, TG_STR("text"));
        if (tg_json_str_view(tg_json_get(b, TG_STR("type")), &t) && tg_str_eq(t, TG_STR("text")) &&
            text.type == TG_JSON_STRING) {
            *content = tg_str_make(text.p, text.n);
            return;
        }
    }
}

/* The first choice's content and whether any choice was cut, from an
 * answer in the provider's dialect: chat (message.content), completions
 * (text), or an Anthropic message. content is the JSON string value,
 * quotes included. */
static void answer_of(tg_str body, bool anthropic, tg_str *content, bool *length)
{
    tg_json_val root = tg_json_root(body.p, body.n);
    *content = TG_STR("");
    *length = false;
    if (anthropic) {
        message_of(root, content, length);
        return;
    }
    tg_json_val choices = tg_json_get(root, TG_STR("choices"));
    tg_json_iter it = tg_json_iter_init(choices);
    tg_json_val k, c;
    if (choices.type != TG_JSON_ARRAY) return;
    while (tg_json_iter_next(&it, &k, &c)) {
        tg_str fr;
        if (tg_json_str_view(tg_json_get(c, TG_STR("finish_reason")), &fr) &&
            tg_str_eq(fr, TG_STR("length")))
            *length = true;
        if (content->n) continue;
        tg_json_val msg = tg_json_get(c, TG_STR("message"));
        tg_json_val v = msg.type == TG_JSON_OBJECT ? tg_json_get(msg, TG_STR("content"))
                                                   : tg_json_get(c, TG_STR("text"));
        if (v.type == TG_JSON_STRING) *content = tg_str_make(v.p, v.n);
    }
}

/* Whether the request asked for JSON (response_format json_object or json_schema). */
static bool wants_json(const tg_exchange *x)
{
    tg_json_val rf = tg_json_get(tg_json_get(x->oreq.root, TG_STR("response_format")), TG_STR("type"));
    tg_str t;
    return tg_json_str_view(rf, &t) &&
           (tg_str_eq(t, TG_STR("json_object")) || tg_str_eq(t, TG_STR("json_schema")));
}

/* Which check the answer fails: NULL when it passes. content is the JSON
 * string value, quotes included; it is decoded into scratch. */
static const char *failed_check(tg_exchange *x, const tg_route_rule *r)
{
    tg_str raw;
    bool length;
    answer_of(tg_buf_str(&x->resp), x->up_anthropic, &raw, &length);
    if ((r->escalate_on & TG_ESCALATE_LENGTH) && length) return "length";
    if (!(r->escalate_on & (TG_ESCALATE_JSON | TG_ESCALATE_REGEX))) return NULL;
    tg_buf_clear(&x->scratch);
    tg_json_val v = {.type = TG_JSON_STRING, .p = raw.p, .n = raw.n};
    if (raw.n && tg_json_str_decode(v, &x->scratch)) return NULL; /* too long to check: passes */
    tg_str text = tg_buf_str(&x->scratch);
    if ((r->escalate_on & TG_ESCALATE_JSON) && wants_json(x) &&
        tg_json_validate(text.p, text.n, 0, NULL, NULL))
        return "invalid_json";
    /* regexec reads a C string: the decoded text ends with the buffer's NUL,
     * and one inside it ends the match there */
    if ((r->escalate_on & TG_ESCALATE_REGEX) && tg_buf_add_lit(&x->scratch, "") == TG_OK &&
        regexec(r->regex, x->scratch.p, 0, NULL, 0) == 0)
        return "content_matches";
    return NULL;
}

bool tg_routing_escalate(tg_exchange *x)
{
    if (!x->first_phase) return false;
    x->first_phase = false;
    const char *why = failed_check(x, x->choice.rule);
    if (!why) return false;
    tg_errmsg err;
    const tg_offering *cheap = x->off;
    order(x, x->choice.model, &err);
    if (!x->ncand || !next_admitted(x)) {
        x->off = cheap; /* the cheap answer stands, priced at its offering */
        return false;
    }
    tg_log(TG_LOG_DEBUG, "routing: request %.*s escalates to %s: %s", TG_STR_FMT(x->rid),
           x->choice.model->name, why);
    const tg_offering *next = x->off;
    x->off = cheap; /* the cheap answer is billed at its own offering */
    tg_metering_escalate(x);
    x->off = next;
    reset_attempt(x);
    tg_metering_reroute(x);
    call(x, false);
    return true;
}

void tg_routing_end(tg_exchange *x)
{
    if (x->retry_timer) {
        uv_timer_stop(x->retry_timer);
        uv_close((uv_handle_t *)x->retry_timer, retry_closed);
        x->retry_timer = NULL;
    }
    if (x->verdict_due) tg_health_release(x->off->health, x->probe);
    x->verdict_due = false;
}

/* ---- what the admin API and /metrics show ---- */

typedef struct {
    tg_buf *b;
    int rc;
    bool first;
} view_out;

/* A health view as a JSON object: the breaker, its counters, averages. */
static void view_json(void *ud, const tg_health_view *v)
{
    view_out *o = ud;
    tg_buf *b = o->b;
    if (o->rc) return;
    int rc = tg_buf_add_str(b, o->first ? TG_STR("{\"id\":") : TG_STR(",{\"id\":"));
    o->first = false;
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(v->id));
    if (!rc)
        rc = tg_buf_printf(b, ",\"breaker\":\"%s\",\"consecutive_failures\":%u,\"opens\":%llu,"
                              "\"open_until_ms\":%lld,\"successes\":%llu,\"errors\":%llu,"
                              "\"samples\":%llu,\"ttft_us\":%lld,\"us_per_token\":%lld,\"last_error\":",
                           tg_breaker_name(v->state), v->failures, (unsigned long long)v->opens,
                           (long long)v->open_until_ms, (unsigned long long)v->successes,
                           (unsigned long long)v->errors, (unsigned long long)v->samples,
                           (long long)v->ttft_us, (long long)v->us_per_token);
    if (!rc) rc = v->last_error[0] ? tg_jsonw_str(b, tg_str_c(v->last_error)) : tg_buf_add_lit(b, "null");
    if (!rc) rc = tg_buf_add_lit(b, "}");
    o->rc = rc;
}

static int models_json(const tg_config *c, tg_buf *b)
{
    int rc = tg_buf_add_lit(b, "],\"models\":[");
    for (size_t i = 0; !rc && i < c->nmodels; i++) {
        const tg_model *m = &c->models[i];
        rc = tg_buf_add_str(b, i ? TG_STR(",{\"name\":") : TG_STR("{\"name\":"));
        if (!rc) rc = tg_jsonw_str(b, tg_str_c(m->name));
        if (!rc) rc = tg_buf_printf(b, ",\"strategy\":\"%s\",\"offerings\":[", tg_strategy_name(m->strategy));
        for (size_t j = 0; !rc && j < m->noffering; j++) {
            if (j) rc = tg_buf_add_lit(b, ",");
            if (!rc) rc = tg_buf_add_lit(b, "{\"id\":");
            if (!rc) rc = tg_jsonw_str(b, tg_str_c(m->offerings[j]->id));
            if (!rc)
                rc = tg_buf_printf(b, ",\"weight\":%u,\"available\":%s}", m->weights ? m->weights[j] : 1,
                                   m->offerings[j]->provider->available ? "true" : "false");
        }
        if (!rc) rc = tg_buf_add_lit(b, "]}");
    }
    const tg_routing_conf *rt = &c->routing;
    if (!rc)
        rc = tg_buf_printf(b, "],\"attempts\":%u,\"deadline_ms\":%u,\"backoff_ms\":%u,"
                              "\"max_backoff_ms\":%u,\"breaker\":{\"failures\":%u,\"cooldown_ms\":%u},"
                              "\"rules\":%zu}",
                           rt->attempts, rt->deadline_ms, rt->backoff_ms, rt->max_backoff_ms,
                           rt->breaker_failures, rt->breaker_cooldown_ms, rt->nrules);
    return rc;
}

/* GET /admin/v1/routing: every offering's breaker and latencies, the
 * models' strategies, the budgets. */
void tg_admin_routing(tg_exchange *x, tg_str rest)
{
    (void)rest;
    if (!tg_admin_auth(x)) return;
    tg_buf *b = &x->scratch;
    tg_buf_clear(b);
    view_out o = {b, tg_buf_add_lit(b, "{\"offerings\":["), true};
    tg_health_each(x->ww->gw->health, (int64_t)tg_clock_wall_ms(), view_json, &o);
    int rc = o.rc ? o.rc : models_json(x->cfg, b);
    if (rc) tg_exchange_error(x, 500, "server_error", NULL, NULL, "the routing state could not be written");
    else tg_exchange_json(x, 200, tg_buf_str(b));
}

static void view_metric(void *ud, const tg_health_view *v)
{
    view_out *o = ud;
    if (o->rc) return;
    /* offering ids are configured names: bounded series, but quote-escaped */
    tg_buf *b = o->b;
    int rc = tg_buf_add_lit(b, "tollgate_breaker_state{offering=");
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(v->id));
    if (!rc) rc = tg_buf_printf(b, "} %d\ntollgate_breaker_opens_total{offering=", (int)v->state);
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(v->id));
    if (!rc) rc = tg_buf_printf(b, "} %llu\ntollgate_offering_ttft_seconds{offering=", (unsigned long long)v->opens);
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(v->id));
    if (!rc) rc = tg_buf_printf(b, "} %lld.%06lld\n", (long long)(v->ttft_us / 1000000), (long long)(v->ttft_us % 1000000));
    o->rc = rc;
}

int tg_routing_metrics(tg_gateway *gw, tg_buf *b)
{
    view_out o = {b, tg_buf_add_lit(b, "# HELP tollgate_breaker_state An offering's circuit breaker: 0 closed, 1 open, 2 half-open.\n"
                                       "# TYPE tollgate_breaker_state gauge\n"
                                       "# HELP tollgate_breaker_opens_total Times an offering's breaker opened.\n"
                                       "# TYPE tollgate_breaker_opens_total counter\n"
                                       "# HELP tollgate_offering_ttft_seconds Moving average of an offering's time to first byte.\n"
                                       "# TYPE tollgate_offering_ttft_seconds gauge\n"),
                  true};
    tg_health_each(gw->health, (int64_t)tg_clock_wall_ms(), view_metric, &o);
    return o.rc;
}
