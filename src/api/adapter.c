/* The adapter stage: a call written in its provider's dialect, and its
 * answer read back and written in the client's (docs/anthropic.md).
 *
 * Four ways through, by the client's endpoint and the offering's provider:
 *
 *   OpenAI client -> OpenAI provider       the body passes with the model
 *                                          rewritten (openai.h); answers as
 *                                          they came
 *   Anthropic client -> Anthropic provider the same, in Anthropic's dialect
 *                                          (anthropic.h)
 *   OpenAI client -> Anthropic provider    chat only: the request, the answer,
 *   Anthropic client -> OpenAI provider    error bodies and streams translated
 *                                          (translate.h, xstream.h)
 *
 * A request the other dialect cannot carry is refused with a 400 that
 * names the field, before anything goes upstream. Streams relayed as they
 * came keep their bytes; a translated stream is rewritten event by event,
 * never buffered whole. The gateway's own last lines of a stream (the
 * charge comment, the stop at a plan's limit, an error) are written in the
 * client's dialect. */
#include "api/api.h"
#include "base/clock.h"
#include "base/jsonw.h"
#include "route/adapters/translate.h"

#include <stdio.h>

/* ---- the call ---- */

static void add_header(tg_exchange *x, tg_str name, tg_str value)
{
    if (x->nuphdr < TG_MAX_UP_HEADERS) x->uphdr[x->nuphdr++] = (tg_header){name, value};
}

/* "PREFIX" + the provider's key, in the arena; empty on out-of-memory. */
static tg_str prefixed(tg_exchange *x, const char *prefix, const char *key)
{
    size_t a = strlen(prefix), n = strlen(key);
    char *v = tg_arena_alloc(&x->req->arena, a + n + 1);
    if (!v) return TG_STR("");
    memcpy(v, prefix, a);
    memcpy(v + a, key, n + 1);
    return tg_str_make(v, a + n);
}

/* The headers of the upstream call: the provider's key (as its dialect
 * wants it), content type, request id, and the client headers the
 * provider is configured to get. */
static void upstream_headers(tg_exchange *x)
{
    const tg_provider *p = x->off->provider;
    x->nuphdr = 0;
    add_header(x, TG_STR("Content-Type"), TG_STR("application/json"));
    add_header(x, TG_STR("Accept"), x->oreq.stream ? TG_STR("text/event-stream") : TG_STR("application/json"));
    add_header(x, TG_STR("X-Request-Id"), x->rid);
    if (x->up_anthropic) {
        add_header(x, TG_STR("anthropic-version"), tg_str_c(p->anthropic_version));
        if (p->api_key) add_header(x, TG_STR("x-api-key"), tg_str_c(p->api_key));
    } else if (p->api_key) {
        add_header(x, TG_STR("Authorization"), prefixed(x, "Bearer ", p->api_key));
    }
    for (size_t i = 0; i < p->nforward_headers; i++) {
        tg_str name = tg_str_c(p->forward_headers[i]);
        tg_str v = tg_req_header(x->req, name);
        if (v.p) add_header(x, name, v);
    }
}

/* Anthropic's metadata takes user_id alone, and refuses other keys: the
 * attribution tags a client put there (gate/tags.h: metadata.customer,
 * .feature, ...) are tollgate's, read already, and are taken out of the
 * upstream body (user_id stays). Only a body that has such keys is
 * rewritten. */
static int strip_metadata(tg_exchange *x)
{
    tg_str body = tg_buf_str(&x->upbody);
    tg_json_val md = tg_json_get(tg_json_root(body.p, body.n), TG_STR("metadata"));
    if (md.type != TG_JSON_OBJECT) return TG_OK;
    tg_json_iter it = tg_json_iter_init(md);
    tg_json_val k, v, uid = {0};
    bool other = false;
    while (tg_json_iter_next(&it, &k, &v)) {
        tg_str name;
        if (tg_json_str_view(k, &name) && tg_str_eq(name, TG_STR("user_id"))) uid = v;
        else other = true;
    }
    if (!other) return TG_OK;
    tg_buf repl, out;
    tg_buf_init(&repl, md.n + 16);
    tg_buf_init(&out, x->upbody.max);
    int rc = uid.type ? tg_buf_add_lit(&repl, "{\"user_id\":") : tg_buf_add_lit(&repl, "{");
    if (!rc && uid.type) rc = tg_buf_append(&repl, uid.p, uid.n);
    if (!rc) rc = tg_buf_add_lit(&repl, "}");
    tg_json_splice sp = {(size_t)(md.p - body.p), md.n, tg_buf_str(&repl)};
    if (!rc) rc = tg_json_apply(body, &sp, 1, &out);
    tg_buf_release(&repl);
    if (rc) {
        tg_buf_release(&out);
        return rc;
    }
    tg_buf_release(&x->upbody);
    x->upbody = out;
    return TG_OK;
}

/* The body for x->off in its dialect into x->upbody, and the path. */
static int upstream_body(tg_exchange *x, tg_str *path, tg_errmsg *err, tg_translate_param *param)
{
    const tg_offering *off = x->off;
    tg_str body = x->req->body;
    if (x->up_anthropic) {
        *path = TG_STR("/messages");
        if (x->anthropic) {
            int rc = tg_anthropic_upstream_body(body, &x->areq, off, &x->upbody);
            return rc ? rc : strip_metadata(x);
        }
        if (x->ep != TG_EP_CHAT) {
            tg_str ep = tg_openai_path(x->ep);
            tg_errmsg_set(err, "model `%s` is served by offering %s at an Anthropic provider, which "
                               "has no /v1%.*s endpoint; send the request to /v1/chat/completions or "
                               "/v1/messages", x->model->name, off->id, (int)ep.n, ep.p);
            return TG_EINVAL;
        }
        return tg_translate_req_to_anthropic(&x->oreq, off, off->provider->default_max_tokens,
                                             &x->upbody, err, param);
    }
    if (x->anthropic) {
        *path = TG_STR("/chat/completions");
        return tg_translate_req_to_openai(&x->areq, off, &x->upbody, err, param);
    }
    *path = tg_openai_path(x->ep);
    return tg_openai_upstream_body(body, &x->oreq, off, &x->upbody);
}

int tg_adapter_prepare(tg_exchange *x)
{
    const tg_provider *p = x->off->provider;
    x->up_anthropic = p->dialect == TG_DIALECT_ANTHROPIC;
    tg_buf_clear(&x->upbody);
    tg_errmsg err = {{0}};
    tg_translate_param param = {{0}};
    tg_str path = TG_STR("");
    int rc = upstream_body(x, &path, &err, &param);
    if (rc == TG_EINVAL && err.msg[0]) {
        tg_exchange_error(x, 400, "invalid_request_error", "untranslatable_request",
                          param.name[0] ? param.name : NULL, err.msg);
        return rc;
    }
    if (rc == TG_ENOMEM) {
        tg_exchange_error(x, 500, "server_error", NULL, NULL, "out of memory");
        return rc;
    }
    if (rc) {
        tg_exchange_error(x, 413, "invalid_request_error", "request_too_large", NULL,
                          "the request body is too large to forward");
        return rc;
    }
    upstream_headers(x);
    size_t n = strlen(p->base_url);
    char *url = tg_arena_alloc(&x->req->arena, n + path.n + 1);
    if (!url) {
        tg_exchange_error(x, 500, "server_error", NULL, NULL, "out of memory");
        return TG_ENOMEM;
    }
    memcpy(url, p->base_url, n);
    memcpy(url + n, path.p, path.n);
    url[n + path.n] = '\0';
    x->up_url = tg_str_make(url, n + path.n);
    return TG_OK;
}

/* ---- streams ---- */

void tg_adapter_stream_begin(tg_exchange *x)
{
    x->open_block = -1;
    if (x->anthropic == x->up_anthropic) return;
    char id[160];
    snprintf(id, sizeof id, "%s%.*s", x->anthropic ? "msg_" : "chatcmpl-", TG_STR_FMT(x->rid));
    x->xlate = true;
    /* the client's events of each upstream one, written here: one buffer
     * for the stream, not one per event */
    tg_buf_release(&x->xbody);
    tg_buf_init(&x->xbody, (size_t)x->cfg->server.max_response_bytes + (64u << 10));
    x->xs_rc = tg_xstream_init(&x->xs, x->anthropic ? TG_XS_OPENAI_TO_ANTHROPIC : TG_XS_ANTHROPIC_TO_OPENAI,
                               x->oreq.model_name, tg_str_c(id), x->oreq.include_usage,
                               (int64_t)(tg_clock_wall_ms() / 1000), x->est_prompt);
}

void tg_adapter_release(tg_exchange *x)
{
    if (x->xlate) tg_xstream_release(&x->xs);
    x->xlate = false;
    x->xs_rc = TG_OK;
}

/* The charge comment and the client's last event, appended to b. */
static int closing(tg_exchange *x, tg_buf *b)
{
    x->done_seen = true;
    int rc = tg_metering_sse_summary(x, b);
    if (rc) return rc;
    if (x->xlate) return tg_xstream_finish(&x->xs, b);
    if (x->anthropic) return tg_buf_add_lit(b, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    return tg_buf_add_lit(b, "data: [DONE]\n\n");
}

/* One event of a translated stream. */
static int xlate_event(tg_exchange *x, tg_str raw, tg_str data)
{
    if (x->xs_rc) {
        x->error = "out_of_memory";
        return 1;
    }
    if (!data.n) return tg_relay_forward(x, raw); /* comments, keep-alives */
    bool done = tg_str_eq(data, TG_STR("[DONE]"));
    if (!done && x->hold.acc && !tg_policy_stream_event(x, 1)) {
        x->cut = true;
        return 1;
    }
    tg_buf *b = &x->xbody;
    tg_buf_clear(b);
    int rc = tg_xstream_event(&x->xs, data, b);
    x->usage = *tg_xstream_usage(&x->xs);
    if (!done) x->stream_events++;
    if (!rc && tg_xstream_phase(&x->xs) == TG_XS_ENDED) rc = closing(x, b);
    if (rc) {
        x->error = rc == TG_ENOMEM ? "out_of_memory" : "upstream_untranslatable";
        x->xs_why = tg_xstream_why(&x->xs);
        return 1;
    }
    rc = b->n ? tg_relay_forward(x, tg_buf_str(b)) : 0;
    if (tg_xstream_phase(&x->xs) == TG_XS_FAILED) {
        x->stream_failed = true; /* the upstream's error event went out */
        if (!x->error) x->error = "upstream_error";
        return 1;
    }
    return rc;
}

/* One event of an Anthropic stream relayed as it came: its usage read, its
 * open block followed (for a clean stop at a plan's limit). */
static int anthropic_event(tg_exchange *x, tg_str raw, tg_str data)
{
    if (!data.n) return tg_relay_forward(x, raw);
    if (tg_json_validate(data.p, data.n, 0, NULL, NULL)) return 1;
    tg_json_val ev = tg_json_root(data.p, data.n);
    tg_str type = TG_STR("");
    tg_json_str_view(tg_json_get(ev, TG_STR("type")), &type);
    int64_t index = -1;
    if (tg_str_eq(type, TG_STR("content_block_delta"))) {
        if (x->hold.acc && !tg_policy_stream_event(x, 1)) {
            x->cut = true;
            return 1;
        }
        x->stream_events++;
    } else if (tg_str_eq(type, TG_STR("content_block_start"))) {
        tg_json_int(tg_json_get(ev, TG_STR("index")), &index);
        x->open_block = index;
    } else if (tg_str_eq(type, TG_STR("content_block_stop"))) {
        x->open_block = -1;
    } else if (tg_str_eq(type, TG_STR("message_start"))) {
        tg_anthropic_usage(tg_json_get(tg_json_get(ev, TG_STR("message")), TG_STR("usage")), &x->usage);
    } else if (tg_str_eq(type, TG_STR("message_delta"))) {
        tg_anthropic_usage(tg_json_get(ev, TG_STR("usage")), &x->usage);
    } else if (tg_str_eq(type, TG_STR("message_stop"))) {
        tg_buf b;
        tg_buf_init(&b, 4096);
        x->done_seen = true;
        int rc = tg_metering_sse_summary(x, &b);
        if (!rc && b.n) rc = tg_relay_forward(x, tg_buf_str(&b));
        tg_buf_release(&b);
        return rc ? rc : tg_relay_forward(x, raw);
    } else if (tg_str_eq(type, TG_STR("error"))) {
        int rc = tg_relay_forward(x, raw);
        x->stream_failed = true;
        if (!x->error) x->error = "upstream_error";
        return rc ? rc : 1;
    }
    return tg_relay_forward(x, raw);
}

/* One event of an OpenAI stream relayed as it came. */
static int openai_event(tg_exchange *x, tg_str raw, tg_str data)
{
    if (tg_str_eq(data, TG_STR("[DONE]"))) {
        tg_buf b;
        tg_buf_init(&b, 256);
        x->done_seen = true;
        int rc = tg_metering_sse_summary(x, &b) == TG_OK && b.n ? tg_relay_forward(x, tg_buf_str(&b)) : 0;
        tg_buf_release(&b);
        return rc ? -1 : tg_relay_forward(x, raw);
    }
    if (data.n == 0) return tg_relay_forward(x, raw); /* comments and keep-alives */
    if (tg_json_validate(data.p, data.n, 0, NULL, NULL)) return 1;
    tg_json_val chunk = tg_json_root(data.p, data.n);
    if (x->hold.acc && !tg_policy_stream_event(x, 1)) {
        x->cut = true;
        return 1;
    }
    tg_openai_usage(chunk, &x->usage);
    x->stream_events++;
    /* the usage-only chunk the gateway asked for on the client's behalf */
    if (!x->oreq.include_usage && tg_json_get(chunk, TG_STR("usage")).type == TG_JSON_OBJECT) {
        tg_json_val choices = tg_json_get(chunk, TG_STR("choices"));
        tg_json_iter it = tg_json_iter_init(choices);
        tg_json_val k, v;
        if (choices.type == TG_JSON_ARRAY && !tg_json_iter_next(&it, &k, &v)) return 0;
    }
    return tg_relay_forward(x, raw);
}

int tg_adapter_event(tg_exchange *x, tg_str raw, tg_str data)
{
    if (x->xlate) return xlate_event(x, raw, data);
    if (x->up_anthropic) return anthropic_event(x, raw, data);
    return openai_event(x, raw, data);
}

/* Anthropic's stop at a plan's limit: the open block closed, a
 * message_delta that says why. */
static int anthropic_cut(tg_exchange *x, const char *msg, tg_buf *b)
{
    int rc = TG_OK;
    if (x->open_block >= 0)
        rc = tg_buf_printf(b, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
                              "\"index\":%lld}\n\n", (long long)x->open_block);
    if (!rc)
        rc = tg_buf_printf(b, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":"
                              "{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},\"usage\":"
                              "{\"output_tokens\":%lld},\"tollgate\":{\"stopped\":\"plan_limit\","
                              "\"message\":", (long long)x->usage.completion);
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(msg));
    return rc ? rc : tg_buf_add_lit(b, "}}\n\n");
}

void tg_adapter_cut(tg_exchange *x)
{
    tg_buf b;
    char msg[512];
    tg_buf_init(&b, 1 << 16);
    x->error = "plan_limit";
    tg_policy_cut_message(x, msg, sizeof msg);
    int rc;
    if (x->xlate) rc = x->xs_rc ? x->xs_rc : tg_xstream_cut(&x->xs, tg_str_c(msg), &b);
    else if (x->anthropic) rc = anthropic_cut(x, msg, &b);
    else rc = tg_policy_cut_event(x, &b);
    if (!rc) rc = closing(x, &b);
    if (!rc) {
        tg_relay_forward(x, tg_buf_str(&b));
        tg_buf_release(&b);
        tg_resp_stream_end(x->req);
        return;
    }
    tg_buf_release(&b);
    tg_adapter_stream_error(x, "plan_limit", msg); /* the stream must still end in the client's dialect */
}

void tg_adapter_stream_error(tg_exchange *x, const char *code, const char *msg)
{
    tg_buf b;
    tg_buf_init(&b, 1 << 16);
    if (!x->error) x->error = code;
    int rc = TG_OK;
    if (x->stream_failed || (x->xlate && tg_xstream_phase(&x->xs) == TG_XS_FINISHED)) {
        /* the client already has the stream's end */
    } else if (x->xlate && !x->xs_rc) {
        rc = tg_xstream_error(&x->xs, "upstream_error", code, tg_str_c(msg), &b);
    } else if (x->anthropic) {
        rc = tg_buf_add_lit(&b, "event: error\ndata: ");
        if (!rc) rc = tg_anthropic_error_body(&b, "api_error", tg_str_c(msg));
        if (!rc) rc = tg_buf_add_lit(&b, "\n\n");
    } else {
        rc = tg_buf_add_lit(&b, "data: {\"error\":{\"message\":");
        if (!rc) rc = tg_jsonw_str(&b, tg_str_c(msg));
        if (!rc)
            rc = tg_buf_printf(&b, ",\"type\":\"upstream_error\",\"param\":null,\"code\":\"%s\"}}\n\n", code);
    }
    if (!rc && b.n) tg_resp_stream_write(x->req, tg_buf_str(&b));
    tg_buf_release(&b);
    tg_resp_stream_end(x->req);
}

/* ---- buffered answers ---- */

void tg_adapter_usage(tg_exchange *x, tg_str body)
{
    tg_json_val root = tg_json_root(body.p, body.n);
    if (x->up_anthropic) tg_anthropic_usage(tg_json_get(root, TG_STR("usage")), &x->usage);
    else tg_openai_usage(root, &x->usage);
}

int tg_adapter_answer(tg_exchange *x, tg_str *body)
{
    if (x->anthropic == x->up_anthropic) return TG_OK;
    tg_errmsg err = {{0}};
    tg_buf_release(&x->xbody);
    tg_buf_init(&x->xbody, 2 * (size_t)x->cfg->server.max_response_bytes + (64u << 10));
    int rc = x->up_anthropic
                 ? tg_translate_resp_to_openai(*body, x->oreq.model_name,
                                               (int64_t)(tg_clock_wall_ms() / 1000), &x->xbody,
                                               &x->usage, &err)
                 : tg_translate_resp_to_anthropic(*body, x->oreq.model_name, &x->xbody, &x->usage, &err);
    if (rc) {
        char msg[512];
        snprintf(msg, sizeof msg, "provider %s returned an answer the gateway cannot translate: %s",
                 x->off->provider->name, rc == TG_EINVAL ? err.msg : "it is too large");
        tg_exchange_error(x, 502, "upstream_error", "upstream_malformed", NULL, msg);
        return rc;
    }
    *body = tg_buf_str(&x->xbody);
    return TG_OK;
}

tg_str tg_adapter_error_body(tg_exchange *x, tg_str body)
{
    if (x->anthropic == x->up_anthropic) return body;
    tg_buf_release(&x->xbody);
    tg_buf_init(&x->xbody, 2 * body.n + 4096);
    int rc = x->anthropic ? tg_translate_error_to_anthropic(body, x->up_status, &x->xbody)
                          : tg_translate_error_to_openai(body, x->up_status, &x->xbody);
    return rc ? TG_STR("{\"error\":{\"message\":\"the provider's error could not be translated\"}}")
              : tg_buf_str(&x->xbody);
}
