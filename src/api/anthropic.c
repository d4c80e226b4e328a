/* The Anthropic-compatible endpoint: POST /v1/messages (docs/anthropic.md).
 *
 * An Anthropic client (the official @anthropic-ai/sdk, or anything that
 * speaks the Messages API) sends its key as x-api-key; its request passes
 * the same gates as a chat completion, and every refusal, the gateway's
 * own and a provider's, comes back in Anthropic's error shape. The
 * offering that serves it may be an Anthropic provider (the body passes
 * with its model rewritten) or an OpenAI-compatible one (translated both
 * ways, streams included: adapter.c). The gates read the request through
 * x->oreq, whose fields are filled from the Messages request here. */
#include "api/api.h"

void tg_anthropic_proxy(tg_exchange *x)
{
    x->anthropic = true;
    x->ep = TG_EP_MESSAGES;
    if (!tg_authenticate(x)) return;
    tg_errmsg err;
    const char *param;
    int rc = tg_anthropic_read_request(x->req->body, &x->scratch, &x->areq, &err, &param);
    if (rc) {
        tg_exchange_error(x, rc == TG_ENOMEM ? 500 : 400,
                          rc == TG_ENOMEM ? "server_error" : "invalid_request_error", NULL, param,
                          rc == TG_ENOMEM ? "out of memory" : err.msg);
        return;
    }
    const tg_anthropic_req *a = &x->areq;
    x->oreq = (tg_openai_req){.root = a->root, .model = a->model, .model_name = a->model_name,
                              .stream = a->stream, .input = a->messages, .max_tokens = a->max_tokens,
                              .n = 1};
    x->oreq.input.n = a->input_bytes; /* the size the estimates read: messages and system */
    tg_proxy_gates(x);
}
