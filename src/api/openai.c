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

#include <stdio.h>

bool tg_authenticate(tg_exchange *x)
{
    tg_auth_result a = tg_auth_check(x->cfg, x->req, &x->key);
    if (a == TG_AUTH_OK) return true;
    tg_exchange_error(x, 401, "invalid_request_error", "invalid_api_key", NULL,
                      a == TG_AUTH_INVALID ? "Incorrect API key provided. Check the key your "
                                             "application sends to this gateway."
                      : x->anthropic       ? "You didn't provide an API key. Send it as "
                                             "'x-api-key: KEY'."
                                           : "You didn't provide an API key. Send it as "
                                             "'Authorization: Bearer KEY'.");
    return false;
}

void tg_openai_proxy(tg_exchange *x, tg_endpoint ep)
{
    if (!tg_authenticate(x)) return;
    tg_errmsg err;
    const char *param;
    x->ep = ep;
    if (tg_openai_read_request(x->req->body, ep, &x->scratch, &x->oreq, &err, &param)) {
        tg_exchange_error(x, 400, "invalid_request_error", NULL, param, err.msg);
        return;
    }
    tg_proxy_gates(x);
}

void tg_proxy_gates(tg_exchange *x)
{
    tg_errmsg err;
    const char *param;
    tg_attr_result ar = tg_attribute(x->cfg, x->ww->gw->customers, x->key, x->req, x->oreq.root,
                                     &x->attr, &err, &param);
    if (ar) {
        static const int status[] = {0, 400, 403, 404, 500};
        static const char *const code[] = {NULL, "invalid_tag", "customer_forbidden",
                                           "customer_not_found", NULL};
        tg_exchange_error(x, status[ar], ar == TG_ATTR_NOMEM ? "server_error" : "invalid_request_error",
                          code[ar], param, ar == TG_ATTR_NOMEM ? "out of memory" : err.msg);
        return;
    }
    tg_metering_start(x);
    if (!tg_routing_route(x)) return;
    if (!tg_policy_model(x) || !tg_runs_gate(x) || !tg_policy_limits(x) || !tg_policy_reserve(x))
        return;
    tg_routing_start(x);
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
            tg_exchange_error(x, 404, "invalid_request_error", "model_not_found", "model", msg);
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
    if (rc) tg_exchange_error(x, 500, "server_error", NULL, NULL, "the model list is too large");
    else tg_exchange_json(x, 200, tg_buf_str(b));
}
