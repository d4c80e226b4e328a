/* A provider's error body rewritten into the client's dialect; see
 * translate.h and the type table in docs/anthropic.md.
 *
 * Provider error bodies come in more shapes than the dialects document:
 * {"error":{...}} (OpenAI, Anthropic), {"error":"text"} and a top-level
 * {"message":...} (some OpenAI-compatible servers), or not JSON at all (a
 * proxy's HTML page). The message is taken from whichever is there; a
 * body without one gets a message naming the HTTP status (its bytes are
 * not echoed: an HTML page says nothing the client can act on). The
 * type follows the HTTP status, which is what the SDKs dispatch on; the
 * provider's own type decides only when the status is not an error (an
 * error event inside a stream). */
#include "route/adapters/translate_ctx.h"

#include <stdio.h>

/* What the error body holds: its error object (or root), message, type. */
typedef struct {
    tg_json_val message, type, param;
} err_parts;

static err_parts parts_of(tg_str body)
{
    err_parts p = {{0}, {0}, {0}};
    if (tg_json_validate(body.p, body.n, 0, NULL, NULL)) return p;
    tg_json_val root = tg_json_root(body.p, body.n), e = tg_json_get(root, TG_STR("error"));
    if (e.type == TG_JSON_STRING) {
        p.message = e;
        return p;
    }
    if (e.type != TG_JSON_OBJECT) e = root;
    p.message = tg_json_get(e, TG_STR("message"));
    p.type = tg_json_get(e, TG_STR("type"));
    p.param = tg_json_get(e, TG_STR("param"));
    if (p.message.type != TG_JSON_STRING) p.message.type = TG_JSON_NONE;
    if (p.type.type != TG_JSON_STRING) p.type.type = TG_JSON_NONE;
    if (p.param.type != TG_JSON_STRING || p.param.n <= 2) p.param.type = TG_JSON_NONE;
    return p;
}

static bool error_status(int status)
{
    return status >= 400 && status <= 599;
}

/* The message as JSON string contents: "<param>: <message>", or one that
 * names the status. */
static int message(tg_xl *x, const err_parts *p, int status)
{
    char fallback[96];
    tg_xl_lit(x, "\"");
    if (p->param.type) tg_xl_inner(x, p->param), tg_xl_lit(x, ": ");
    if (p->message.type) return tg_xl_inner(x, p->message), tg_xl_lit(x, "\"");
    snprintf(fallback, sizeof fallback,
             "the provider failed (HTTP status %d) without an error message", status);
    tg_xl_lit(x, fallback);
    return tg_xl_lit(x, "\"");
}

/* OpenAI's error types (and those of servers that copy them) as
 * Anthropic's. */
static const char *anthropic_type(tg_json_val type)
{
    static const char *const map[][2] = {{"invalid_request_error", "invalid_request_error"},
                                         {"authentication_error", "authentication_error"},
                                         {"permission_error", "permission_error"},
                                         {"not_found_error", "not_found_error"},
                                         {"rate_limit_error", "rate_limit_error"},
                                         {"rate_limit_exceeded", "rate_limit_error"},
                                         {"insufficient_quota", "billing_error"},
                                         {"server_error", "api_error"},
                                         {"overloaded_error", "overloaded_error"},
                                         {"timeout_error", "timeout_error"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (tg_xl_is(type, map[i][0])) return map[i][1];
    return "api_error";
}

int tg_translate_error_to_anthropic(tg_str body, int status, tg_buf *out)
{
    tg_xl x;
    tg_errmsg err;
    tg_translate_param unused;
    err_parts p = parts_of(body);
    tg_xl_init(&x, out, 0, &err, &unused, "");
    tg_xl_lit(&x, "{\"type\":\"error\",\"error\":{\"type\":\"");
    tg_xl_lit(&x, error_status(status) ? tg_anthropic_error_type(status) : anthropic_type(p.type));
    tg_xl_lit(&x, "\",\"message\":");
    message(&x, &p, status);
    return tg_xl_done(&x, tg_xl_lit(&x, "}}"));
}

/* Anthropic's error types as OpenAI's; the others (api_error,
 * overloaded_error, timeout_error, unknown ones) are server_error. */
static const char *const openai_map[][2] = {{"invalid_request_error", "invalid_request_error"},
                                            {"request_too_large", "invalid_request_error"},
                                            {"authentication_error", "authentication_error"},
                                            {"permission_error", "permission_error"},
                                            {"not_found_error", "not_found_error"},
                                            {"rate_limit_error", "rate_limit_error"},
                                            {"billing_error", "insufficient_quota"}};

static const char *openai_type(const char *anthropic)
{
    for (size_t i = 0; i < sizeof openai_map / sizeof openai_map[0]; i++)
        if (!strcmp(anthropic, openai_map[i][0])) return openai_map[i][1];
    return "server_error";
}

static const char *openai_type_of(tg_json_val type)
{
    for (size_t i = 0; i < sizeof openai_map / sizeof openai_map[0]; i++)
        if (tg_xl_is(type, openai_map[i][0])) return openai_map[i][1];
    return "server_error";
}

int tg_translate_error_to_openai(tg_str body, int status, tg_buf *out)
{
    tg_xl x;
    tg_errmsg err;
    tg_translate_param unused;
    err_parts p = parts_of(body);
    p.param.type = TG_JSON_NONE; /* Anthropic names the field inside the message */
    tg_xl_init(&x, out, 0, &err, &unused, "");
    tg_xl_lit(&x, "{\"error\":{\"message\":");
    message(&x, &p, status);
    tg_xl_lit(&x, ",\"type\":\"");
    tg_xl_lit(&x, error_status(status) ? openai_type(tg_anthropic_error_type(status))
                                       : openai_type_of(p.type));
    tg_xl_lit(&x, "\",\"param\":null,\"code\":");
    if (p.type.type)
        tg_xl_raw(&x, p.type);
    else
        tg_xl_lit(&x, "null");
    return tg_xl_done(&x, tg_xl_lit(&x, "}}"));
}
