/* The OpenAI-compatible endpoints: chat completions, completions and
 * embeddings (proxied), and the model list.
 *
 * A proxied request passes the gates in the order DESIGN.md draws them:
 * auth, then the body is read (the adapter validates it), then the route
 * picks the offering, then the adapter writes the upstream request, the
 * intent goes to the journal, and relay.c takes it from there once the
 * journal has written it (tg_exchange_call). Each refusal answers in
 * OpenAI's error shape with the status OpenAI itself would use. */
#include "api/api.h"
#include "base/jsonw.h"
#include "gate/auth.h"
#include "gate/tags.h"
#include "route/route.h"

#include <stdio.h>

bool tg_authenticate(tg_exchange *x)
{
    tg_auth_result a = tg_auth_check(x->cfg, x->req, &x->key);
    if (a == TG_AUTH_OK) return true;
    tg_openai_error(x, 401, "invalid_request_error", "invalid_api_key", NULL,
                    a == TG_AUTH_MISSING
                        ? "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'."
                        : "Incorrect API key provided. Check the key your application sends "
                          "to this gateway.");
    return false;
}

static void add_header(tg_exchange *x, tg_str name, tg_str value)
{
    if (x->nuphdr < TG_MAX_UP_HEADERS) x->uphdr[x->nuphdr++] = (tg_header){name, value};
}

/* The headers of the upstream call: the provider's key, content type,
 * request id, and the client headers the provider is configured to get. */
static void upstream_headers(tg_exchange *x)
{
    const tg_provider *p = x->off->provider;
    tg_arena *a = &x->req->arena;
    add_header(x, TG_STR("Content-Type"), TG_STR("application/json"));
    add_header(x, TG_STR("Accept"), x->oreq.stream ? TG_STR("text/event-stream") : TG_STR("application/json"));
    add_header(x, TG_STR("X-Request-Id"), x->rid);
    if (p->api_key) {
        size_t n = strlen(p->api_key);
        char *v = tg_arena_alloc(a, n + 8);
        if (v) {
            memcpy(v, "Bearer ", 7);
            memcpy(v + 7, p->api_key, n + 1);
            add_header(x, TG_STR("Authorization"), tg_str_make(v, n + 7));
        }
    }
    for (size_t i = 0; i < p->nforward_headers; i++) {
        tg_str name = tg_str_c(p->forward_headers[i]);
        tg_str v = tg_req_header(x->req, name);
        if (v.p) add_header(x, name, v);
    }
}

void tg_openai_proxy(tg_exchange *x, tg_endpoint ep)
{
    if (!tg_authenticate(x)) return;
    tg_errmsg err;
    const char *param;
    x->ep = ep;
    if (tg_openai_read_request(x->req->body, ep, &x->scratch, &x->oreq, &err, &param)) {
        tg_openai_error(x, 400, "invalid_request_error", NULL, param, err.msg);
        return;
    }
    tg_attr_result ar = tg_attribute(x->cfg, x->ww->gw->customers, x->key, x->req, x->oreq.root,
                                     &x->attr, &err, &param);
    if (ar) {
        static const int status[] = {0, 400, 403, 404, 500};
        static const char *const code[] = {NULL, "invalid_tag", "customer_forbidden",
                                           "customer_not_found", NULL};
        tg_openai_error(x, status[ar], ar == TG_ATTR_NOMEM ? "server_error" : "invalid_request_error",
                        code[ar], param, ar == TG_ATTR_NOMEM ? "out of memory" : err.msg);
        return;
    }
    tg_metering_start(x);
    tg_route_result rr = tg_route_pick(x->cfg, x->key, x->oreq.model_name, &x->model, &x->off, &err);
    if (x->model) x->model_label = tg_str_c(x->model->name);
    else x->model_label = TG_STR("unknown");
    if (rr == TG_ROUTE_UNKNOWN_MODEL) {
        char msg[320];
        tg_str m = x->oreq.model_name;
        snprintf(msg, sizeof msg,
                 "The model `%.*s` does not exist or you do not have access to it.",
                 (int)(m.n > 200 ? 200 : m.n), m.p);
        tg_openai_error(x, 404, "invalid_request_error", "model_not_found", "model", msg);
        return;
    }
    if (rr == TG_ROUTE_UNAVAILABLE) {
        tg_openai_error(x, 503, "server_error", "provider_unavailable", NULL, err.msg);
        return;
    }
    if (!tg_policy_model(x) || !tg_runs_gate(x) || !tg_policy_limits(x) || !tg_policy_reserve(x))
        return;
    if (tg_openai_upstream_body(x->req->body, &x->oreq, x->off, &x->upbody)) {
        tg_openai_error(x, 413, "invalid_request_error", "request_too_large", NULL,
                        "the request body is too large to forward");
        return;
    }
    if (tg_metering_intent(x)) {
        tg_metering_refuse(x);
        return;
    }
    upstream_headers(x);
    const tg_provider *p = x->off->provider;
    tg_str path = tg_openai_path(ep);
    size_t n = strlen(p->base_url);
    char *url = tg_arena_alloc(&x->req->arena, n + path.n + 1);
    if (!url) {
        tg_openai_error(x, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    memcpy(url, p->base_url, n);
    memcpy(url + n, path.p, path.n);
    url[n + path.n] = '\0';
    x->up_url = tg_str_make(url, n + path.n);
    x->up_connect_ms = p->connect_timeout_ms;
    x->up_first_byte_ms = p->first_byte_timeout_ms;
    x->up_total_ms = p->total_timeout_ms;
    tg_exchange_call(x);
}

static int model_object(tg_buf *b, const tg_model *m)
{
    int rc = tg_buf_add_lit(b, "{\"id\":");
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(m->name));
    if (!rc) rc = tg_buf_add_lit(b, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"tollgate\"}");
    return rc;
}

/* GET /v1/models (id empty) or /v1/models/{id}: what the key may use. */
void tg_openai_models(tg_exchange *x, tg_str id)
{
    if (!tg_authenticate(x)) return;
    tg_buf *b = &x->scratch;
    tg_buf_clear(b);
    int rc = TG_OK;
    if (id.n) {
        const tg_model *m = tg_config_model(x->cfg, id);
        if (!m || !tg_key_allows(x->key, m)) {
            char msg[320];
            snprintf(msg, sizeof msg, "The model `%.*s` does not exist or you do not have access to it.",
                     (int)(id.n > 200 ? 200 : id.n), id.p);
            tg_openai_error(x, 404, "invalid_request_error", "model_not_found", "model", msg);
            return;
        }
        x->model_label = tg_str_c(m->name);
        rc = model_object(b, m);
    } else {
        rc = tg_buf_add_lit(b, "{\"object\":\"list\",\"data\":[");
        bool first = true;
        for (size_t i = 0; !rc && i < x->cfg->nmodels; i++) {
            const tg_model *m = &x->cfg->models[i];
            if (!tg_key_allows(x->key, m)) continue;
            if (!first) rc = tg_buf_add_char(b, ',');
            if (!rc) rc = model_object(b, m);
            first = false;
        }
        if (!rc) rc = tg_buf_add_lit(b, "]}");
    }
    if (rc) tg_openai_error(x, 500, "server_error", NULL, NULL, "the model list is too large");
    else tg_exchange_json(x, 200, tg_buf_str(b));
}
