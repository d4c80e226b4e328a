/* Relay: the upstream call and the way its answer reaches the client.
 *
 * A 2xx stream is relayed event by event as it arrives, never buffered
 * whole: each SSE event is checked (valid JSON), its usage read, and
 * forwarded byte for byte, except the usage-only chunk that the gateway
 * asked for on the client's behalf. The client's response head goes out
 * with the first event, so a provider that fails before sending anything
 * still gets a proper 502/504. Everything else (non-stream answers and
 * provider errors) is buffered up to server.max_response_bytes, checked
 * and then sent whole with its Content-Length.
 *
 * Provider failures map to errors that name the provider and say how it
 * failed: HTTP errors that describe the client's request (400, 404, 422)
 * pass through as the provider wrote them; a refused provider key, a 5xx,
 * a broken connection or malformed JSON become 502; timeouts 504; the
 * provider's 429 stays 429 with its Retry-After. A stream that fails after
 * its first event ends with an SSE error event (which the OpenAI SDKs
 * raise as an error) and no [DONE]. A client that goes away cancels the
 * upstream transfer. */
#include "api/api.h"
#include "base/jsonw.h"
#include "base/log.h"

#include <stdio.h>

#define STREAM_HIGH_WATER (1 << 20)
#define MAX_SSE_EVENT (4 << 20)

static void upstream_failed(tg_exchange *x, tg_up_result res, const char *detail);

static const char *provider_name(const tg_exchange *x) { return x->off->provider->name; }

static void count_error(tg_exchange *x, const char *kind)
{
    tg_metrics_upstream_error(x->ww->metrics, tg_str_c(provider_name(x)), kind);
}

/* The upstream call, if it started, is cancelled by the end callback
 * that follows. */
void tg_relay_client_gone(tg_req *r, void *data)
{
    tg_exchange *x = data;
    if (r->cut_by_server) {
        if (!r->status) r->status = 503;
        x->error = "shutdown_deadline";
        return;
    }
    r->status = 499; /* nginx's word for "client closed the request" */
    x->error = "client_closed";
}

static void on_head(void *ud, int status, const tg_header *h, size_t nh)
{
    tg_exchange *x = ud;
    x->up_status = status;
    x->relay_stream = x->oreq.stream && status >= 200 && status < 300;
    if (x->relay_stream) {
        tg_sse_init(&x->sse, MAX_SSE_EVENT);
        tg_adapter_stream_begin(x);
    }
    for (size_t i = 0; i < nh; i++) {
        if (!tg_str_ieq(h[i].name, TG_STR("retry-after"))) continue;
        x->retry_after = tg_arena_dup(&x->req->arena, tg_str_trim(h[i].value));
        if (x->retry_after.n > 32) x->retry_after = TG_STR_NULL; /* not a sane value */
    }
}

int tg_relay_forward(tg_exchange *x, tg_str raw)
{
    if (!x->stream_started) {
        tg_header h[2] = {{TG_STR("X-Request-Id"), x->rid}, {TG_STR("Cache-Control"), TG_STR("no-cache")}};
        if (tg_resp_stream_begin(x->req, 200, TG_STR("text/event-stream; charset=utf-8"), h, 2))
            return -1;
        x->stream_started = true;
    }
    return tg_resp_stream_write(x->req, raw) ? -1 : 0;
}

static int on_event(void *ud, tg_str raw, tg_str data)
{
    return tg_adapter_event(ud, raw, data);
}

static void on_drained(tg_req *r, void *data)
{
    (void)r;
    tg_exchange *x = data;
    if (x->call) tg_upcall_resume(x->call);
}

static int on_body(void *ud, const char *p, size_t n)
{
    tg_exchange *x = ud;
    if (!x->up_first_byte_ns) x->up_first_byte_ns = uv_hrtime();
    if (!x->relay_stream) return tg_buf_append(&x->resp, p, n) ? -1 : 0;
    int rc = tg_sse_feed(&x->sse, p, n, on_event, x);
    if (x->cut || x->stream_failed) return -1; /* on_done ends the stream */
    if (rc) {
        /* malformed event, an event over the cap, or the client is gone */
        if (!x->error) x->error = rc == TG_ETOOBIG ? "upstream_event_too_large" : "upstream_malformed";
        return -1;
    }
    if (tg_resp_queued(x->req) > STREAM_HIGH_WATER) {
        tg_req_on_drain(x->req, on_drained, x);
        return 1;
    }
    return 0;
}

/* The message of an OpenAI-shaped error body, for our own message; sets
 * *shaped when the body is a JSON object with an "error" member. */
static tg_str upstream_message(tg_exchange *x, bool *shaped)
{
    tg_str body = tg_buf_str(&x->resp), m;
    *shaped = false;
    if (tg_json_validate(body.p, body.n, 0, NULL, NULL)) return TG_STR("");
    tg_json_val e = tg_json_get(tg_json_root(body.p, body.n), TG_STR("error"));
    *shaped = e.type != TG_JSON_NONE;
    tg_json_val msg = e.type == TG_JSON_OBJECT ? tg_json_get(e, TG_STR("message")) : e;
    if (tg_json_str_view(msg, &m)) return m.n > 300 ? tg_str_make(m.p, 300) : m;
    return TG_STR("");
}

static void upstream_http_error(tg_exchange *x)
{
    int s = x->up_status;
    char msg[512];
    bool shaped;
    tg_str um = upstream_message(x, &shaped);
    if ((s == 400 || s == 404 || s == 409 || s == 413 || s == 415 || s == 422) && shaped) {
        count_error(x, "http_4xx");
        x->error = "upstream_rejected_request";
        tg_exchange_json(x, s, tg_adapter_error_body(x, tg_buf_str(&x->resp)));
        return;
    }
    if (s == 401 || s == 403) {
        count_error(x, "http_auth");
        snprintf(msg, sizeof msg, "provider %s refused the gateway's credentials (HTTP %d); check "
                 "the API key configured for it", provider_name(x), s);
        tg_exchange_error(x, 502, "upstream_error", "upstream_auth_failed", NULL, msg);
        return;
    }
    if (s == 429) {
        count_error(x, "http_429");
        snprintf(msg, sizeof msg, "provider %s is rate limiting requests (HTTP 429)%s%.*s",
                 provider_name(x), um.n ? ": " : "", (int)um.n, um.p);
        tg_exchange_error(x, 429, "rate_limit_error", "upstream_rate_limited", NULL, msg);
        return;
    }
    count_error(x, s >= 500 ? "http_5xx" : "http_other");
    snprintf(msg, sizeof msg, "provider %s failed with HTTP %d%s%.*s", provider_name(x), s,
             um.n ? ": " : "", (int)um.n, um.p);
    tg_exchange_error(x, 502, "upstream_error", "upstream_http_error", NULL, msg);
}

static void upstream_failed(tg_exchange *x, tg_up_result res, const char *detail)
{
    const tg_provider *p = x->off->provider;
    char msg[512];
    int status = 502;
    const char *code = "upstream_unreachable", *kind = tg_up_result_str(res);
    switch (res) {
    case TG_UP_CONNECT:
        snprintf(msg, sizeof msg, "could not connect to provider %s: %s", p->name, detail);
        break;
    case TG_UP_TIMEOUT_CONNECT:
        status = 504, code = "upstream_timeout";
        snprintf(msg, sizeof msg, "provider %s did not accept a connection within %u ms", p->name,
                 p->connect_timeout_ms);
        break;
    case TG_UP_TIMEOUT_FIRST_BYTE:
        status = 504, code = "upstream_timeout";
        snprintf(msg, sizeof msg, "provider %s sent no response within %u ms", p->name,
                 p->first_byte_timeout_ms);
        break;
    case TG_UP_TIMEOUT_TOTAL:
        status = 504, code = "upstream_timeout";
        snprintf(msg, sizeof msg, "provider %s did not finish its response within %u ms", p->name,
                 p->total_timeout_ms);
        break;
    case TG_UP_RESET:
        code = "upstream_connection_broken";
        snprintf(msg, sizeof msg, "provider %s closed the connection before its response was "
                 "complete", p->name);
        break;
    case TG_UP_TOO_BIG:
        if (x->error && !strcmp(x->error, "upstream_malformed")) {
            code = kind = "upstream_malformed";
            snprintf(msg, sizeof msg, "provider %s sent a stream event that is not valid JSON", p->name);
        } else if (x->error && !strcmp(x->error, "upstream_untranslatable")) {
            code = kind = "upstream_untranslatable";
            snprintf(msg, sizeof msg, "provider %s sent a stream event the gateway cannot carry into "
                     "the client's dialect: %s", p->name, x->xs_why ? x->xs_why : "unknown");
        } else {
            code = "upstream_too_large";
            snprintf(msg, sizeof msg, "provider %s sent a response larger than the gateway accepts "
                     "(server.max_response_bytes)", p->name);
        }
        break;
    default:
        code = "upstream_error";
        snprintf(msg, sizeof msg, "the call to provider %s failed: %s", p->name, detail);
        break;
    }
    count_error(x, kind);
    x->error = code;
    if (x->stream_started) tg_adapter_stream_error(x, code, msg);
    else tg_exchange_error(x, status, "upstream_error", code, NULL, msg);
}

/* Failures that another attempt may mend, when nothing reached the
 * client yet: the provider could not be reached or did not answer in
 * time, broke the connection, is rate limiting, or failed (5xx). */
static bool retryable(const tg_exchange *x, tg_up_result res)
{
    if (x->stream_started || x->cut) return false;
    switch (res) {
    case TG_UP_OK: return x->up_status == 429 || x->up_status >= 500;
    case TG_UP_CONNECT:
    case TG_UP_TIMEOUT_CONNECT:
    case TG_UP_TIMEOUT_FIRST_BYTE:
    case TG_UP_TIMEOUT_TOTAL:
    case TG_UP_RESET: return true;
    default: return false;
    }
}

static void on_done(void *ud, tg_up_result res, const char *detail)
{
    tg_exchange *x = ud;
    x->call = NULL;
    tg_req_on_drain(x->req, NULL, NULL);
    if (x->cut) {
        tg_routing_answered(x);
        tg_adapter_cut(x);
        return;
    }
    if (x->stream_failed) { /* the upstream's error event ended the client's stream */
        tg_routing_answered(x);
        tg_resp_stream_end(x->req);
        return;
    }
    if (retryable(x, res)) {
        char why[16];
        snprintf(why, sizeof why, "http_%d", x->up_status);
        x->attempt_unreached = res == TG_UP_CONNECT || res == TG_UP_TIMEOUT_CONNECT;
        if (tg_routing_retry(x, res ? tg_up_result_str(res) : why)) return;
    }
    if (res != TG_UP_OK) {
        upstream_failed(x, res, detail);
        return;
    }
    tg_routing_answered(x);
    if (x->up_status < 200 || x->up_status >= 300) {
        upstream_http_error(x);
        return;
    }
    if (x->relay_stream) {
        if (tg_sse_pending(&x->sse) || !x->done_seen) {
            upstream_failed(x, TG_UP_RESET, "the stream ended before [DONE]");
            return;
        }
        if (!x->stream_started) tg_relay_forward(x, TG_STR(""));
        tg_resp_stream_end(x->req);
        return;
    }
    tg_str body = tg_buf_str(&x->resp);
    if (tg_json_validate(body.p, body.n, 0, NULL, NULL)) {
        char msg[256];
        snprintf(msg, sizeof msg, "provider %s returned a response that is not valid JSON",
                 provider_name(x));
        count_error(x, "upstream_malformed");
        tg_exchange_error(x, 502, "upstream_error", "upstream_malformed", NULL, msg);
        return;
    }
    tg_adapter_usage(x, body);
    if (tg_routing_escalate(x)) return;
    if (tg_adapter_answer(x, &body)) return;
    tg_metering_price(x);
    tg_exchange_json(x, x->up_status, body);
}

static const tg_upcall_cbs cbs = {on_head, on_body, on_done};

void tg_relay_start(tg_exchange *x)
{
    tg_upcall_opts o = {
        .method = TG_STR("POST"),
        .url = x->up_url,
        .headers = x->uphdr,
        .nheaders = x->nuphdr,
        .body = tg_buf_str(&x->upbody),
        .connect_timeout_ms = x->up_connect_ms,
        .first_byte_timeout_ms = x->up_first_byte_ms,
        .total_timeout_ms = x->up_total_ms,
    };
    x->call = tg_upcall_start(x->ww->up, &o, &cbs, x);
    if (!x->call) {
        char msg[256];
        snprintf(msg, sizeof msg, "the call to provider %s could not be started: its URL or a "
                 "header is not sendable, or memory ran out", provider_name(x));
        tg_exchange_error(x, 500, "server_error", NULL, NULL, msg);
        return;
    }
    x->upstream_called = true;
    tg_req_on_abort(x->req, tg_relay_client_gone, x);
}
