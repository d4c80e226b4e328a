/* Anthropic dialect; see anthropic.h.
 *
 * The request reader checks the shape of the top level only, in one pass
 * over the root's members (the body was validated without duplicate
 * top-level keys, so each field is seen once); what is inside messages is
 * the provider's to judge, or translate.h's when the request crosses
 * dialects. */
#include "route/adapters/anthropic.h"
#include "base/jsonw.h"

/* The top-level fields the reader knows, in the order of vals[] below. */
enum {
    F_MODEL,
    F_MAX_TOKENS,
    F_MESSAGES,
    F_STREAM,
    F_SYSTEM,
    F_TEMPERATURE,
    F_TOP_P,
    F_TOP_K,
    F_STOP,
    F_METADATA,
    F_TOOLS,
    F_TOOL_CHOICE,
    F_THINKING,
    F_COUNT
};
static const char *const field_names[F_COUNT] = {
    "model", "max_tokens",     "messages", "stream", "system",      "temperature", "top_p",
    "top_k", "stop_sequences", "metadata", "tools",  "tool_choice", "thinking"};

/* The index of the known field named by key k, or F_COUNT. Keys with
 * escapes are decoded; none of the known names is longer than 16 bytes,
 * so a longer key fails to decode into the 16-byte buffer and matches
 * nothing. */
static int field_of(tg_json_val k)
{
    tg_str name;
    tg_buf b;
    tg_buf_init(&b, 16);
    if (!tg_json_str_view(k, &name)) name = tg_json_str_decode(k, &b) ? TG_STR("") : tg_buf_str(&b);
    int i = 0;
    while (i < F_COUNT && !tg_str_eq(name, tg_str_c(field_names[i])))
        i++;
    tg_buf_release(&b);
    return i;
}

static bool absent(tg_json_val v)
{
    return v.type == TG_JSON_NONE || v.type == TG_JSON_NULL;
}

/* The system prompt: a string, or an array of text blocks. */
static bool system_ok(tg_json_val v)
{
    if (v.type == TG_JSON_STRING) return true;
    if (v.type != TG_JSON_ARRAY) return false;
    tg_json_iter it = tg_json_iter_init(v);
    tg_json_val b;
    while (tg_json_iter_next(&it, NULL, &b)) {
        tg_json_val type = tg_json_get(b, TG_STR("type"));
        tg_str t;
        if (tg_json_get(b, TG_STR("text")).type != TG_JSON_STRING) return false;
        if (!tg_json_str_view(type, &t) || !tg_str_eq(t, TG_STR("text"))) return false;
    }
    return true;
}

/* Checks the optional fields' types; names the first wrong one. */
static int check_types(const tg_json_val *v, tg_errmsg *err, const char **param)
{
    static const struct {
        int f;
        tg_json_type type, alt;
        const char *what;
    } rules[] = {
        {F_STREAM, TG_JSON_TRUE, TG_JSON_FALSE, "a boolean"},
        {F_TEMPERATURE, TG_JSON_NUMBER, TG_JSON_NUMBER, "a number"},
        {F_TOP_P, TG_JSON_NUMBER, TG_JSON_NUMBER, "a number"},
        {F_STOP, TG_JSON_ARRAY, TG_JSON_ARRAY, "an array of strings"},
        {F_METADATA, TG_JSON_OBJECT, TG_JSON_OBJECT, "an object"},
        {F_TOOLS, TG_JSON_ARRAY, TG_JSON_ARRAY, "an array"},
        {F_TOOL_CHOICE, TG_JSON_OBJECT, TG_JSON_OBJECT, "an object"},
        {F_THINKING, TG_JSON_OBJECT, TG_JSON_OBJECT, "an object"},
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        tg_json_val x = v[rules[i].f];
        if (absent(x) || x.type == rules[i].type || x.type == rules[i].alt) continue;
        *param = field_names[rules[i].f];
        return tg_errmsg_set(err, "%s must be %s", *param, rules[i].what);
    }
    int64_t k;
    if (!absent(v[F_TOP_K]) && (tg_json_int(v[F_TOP_K], &k) || k < 0)) {
        *param = "top_k";
        return tg_errmsg_set(err, "top_k must be a whole number of at least 0");
    }
    tg_json_iter it = tg_json_iter_init(v[F_STOP]);
    tg_json_val s;
    while (tg_json_iter_next(&it, NULL, &s)) {
        if (s.type == TG_JSON_STRING) continue;
        *param = "stop_sequences";
        return tg_errmsg_set(err, "stop_sequences must be an array of strings");
    }
    if (!absent(v[F_SYSTEM]) && !system_ok(v[F_SYSTEM])) {
        *param = "system";
        return tg_errmsg_set(err, "system must be a string or an array of text blocks "
                                  "({\"type\":\"text\",\"text\":\"...\"})");
    }
    return TG_OK;
}

/* model, max_tokens and messages: required. */
static int check_required(const tg_json_val *v, tg_buf *scratch, tg_anthropic_req *out,
                          tg_errmsg *err, const char **param)
{
    *param = "model";
    if (v[F_MODEL].type == TG_JSON_NONE) return tg_errmsg_set(err, "model: field required");
    if (v[F_MODEL].type != TG_JSON_STRING) return tg_errmsg_set(err, "model must be a string");
    out->model = v[F_MODEL];
    if (!tg_json_str_view(out->model, &out->model_name)) {
        if (tg_json_str_decode(out->model, scratch)) return tg_errmsg_set(err, "model is too long");
        out->model_name = tg_buf_str(scratch);
    }
    *param = "max_tokens";
    if (v[F_MAX_TOKENS].type == TG_JSON_NONE)
        return tg_errmsg_set(err,
                             "max_tokens: field required (the most tokens the answer may take)");
    if (tg_json_int(v[F_MAX_TOKENS], &out->max_tokens) || out->max_tokens < 1 ||
        out->max_tokens > 100000000)
        return tg_errmsg_set(err, "max_tokens must be a whole number from 1 to 100000000");
    *param = "messages";
    if (v[F_MESSAGES].type == TG_JSON_NONE) return tg_errmsg_set(err, "messages: field required");
    if (v[F_MESSAGES].type != TG_JSON_ARRAY)
        return tg_errmsg_set(err, "messages must be an array of messages");
    tg_json_iter it = tg_json_iter_init(v[F_MESSAGES]);
    if (!tg_json_iter_next(&it, NULL, NULL))
        return tg_errmsg_set(err, "messages must hold at least one message");
    out->messages = v[F_MESSAGES];
    *param = NULL;
    return TG_OK;
}

int tg_anthropic_read_request(tg_str body, tg_buf *scratch, tg_anthropic_req *out, tg_errmsg *err,
                              const char **param)
{
    size_t off = 0;
    const char *why = NULL;
    *param = NULL;
    memset(out, 0, sizeof *out);
    tg_buf_clear(scratch);
    if (body.n == 0) return tg_errmsg_set(err, "the request body is empty; send a JSON object");
    int rc = tg_json_validate(body.p, body.n, TG_JSON_NO_DUP_TOPLEVEL, &off, &why);
    if (rc == TG_ENOMEM) return rc;
    if (rc)
        return tg_errmsg_set(err, "the request body is not valid JSON: %s at byte %zu", why, off);
    out->root = tg_json_root(body.p, body.n);
    if (out->root.type != TG_JSON_OBJECT)
        return tg_errmsg_set(err, "the request body must be a JSON object");
    tg_json_val vals[F_COUNT] = {{0}}, k, v;
    tg_json_iter it = tg_json_iter_init(out->root);
    while (tg_json_iter_next(&it, &k, &v)) {
        int f = field_of(k);
        if (f < F_COUNT) vals[f] = v;
    }
    if ((rc = check_required(vals, scratch, out, err, param))) return rc;
    if ((rc = check_types(vals, err, param))) return rc;
    out->stream = vals[F_STREAM].type == TG_JSON_TRUE;
    if (vals[F_SYSTEM].type != TG_JSON_NULL) out->system = vals[F_SYSTEM];
    out->input_bytes = out->messages.n + out->system.n;
    return TG_OK;
}

int tg_anthropic_upstream_body(tg_str body, const tg_anthropic_req *req, const tg_offering *off,
                               tg_buf *out)
{
    tg_json_splice s = {(size_t)(req->model.p - body.p), req->model.n,
                        tg_str_c(off->upstream_json)};
    return tg_json_apply(body, &s, 1, out);
}

const char *tg_anthropic_error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 402:
        return "billing_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 503:
    case 529:
        return "overloaded_error";
    case 504:
        return "timeout_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

int tg_anthropic_error_body(tg_buf *out, const char *type, tg_str message)
{
    int rc = tg_buf_add_lit(out, "{\"type\":\"error\",\"error\":{\"type\":");
    if (!rc) rc = tg_jsonw_str(out, tg_str_c(type));
    if (!rc) rc = tg_buf_add_lit(out, ",\"message\":");
    if (!rc) rc = tg_jsonw_str(out, message);
    if (!rc) rc = tg_buf_add_lit(out, "}}");
    return rc;
}

/* Sets *dst from member key of obj when it is a whole number >= 0. */
static bool take(tg_json_val obj, const char *key, int64_t *dst)
{
    int64_t v;
    tg_json_val m = tg_json_get(obj, tg_str_c(key));
    if (m.type == TG_JSON_NONE || m.type == TG_JSON_NULL || tg_json_int(m, &v) || v < 0)
        return false;
    *dst = v;
    return true;
}

void tg_anthropic_usage(tg_json_val usage, tg_usage *u)
{
    if (usage.type != TG_JSON_OBJECT) return;
    /* the three input counts, apart: what u holds is their sum */
    int64_t read = u->cached, write = u->cache_write, input = u->prompt - read - write;
    bool any = take(usage, "input_tokens", &input);
    any |= take(usage, "cache_read_input_tokens", &read);
    any |= take(usage, "cache_creation_input_tokens", &write);
    any |= take(usage, "output_tokens", &u->completion);
    if (!any && !u->present) return;
    u->present = true;
    if (input < 0) input = 0;
    /* each count is at most 2^63 - 1; cap the sum rather than wrap */
    u->cached = read;
    u->cache_write = write < INT64_MAX - read ? write : INT64_MAX - read;
    u->prompt =
        input < INT64_MAX - read - u->cache_write ? input + read + u->cache_write : INT64_MAX;
    u->total = u->completion < INT64_MAX - u->prompt ? u->prompt + u->completion : INT64_MAX;
}
