/* A provider's non-stream answer into the client's dialect; see
 * translate.h and docs/anthropic.md.
 *
 * The answer is untrusted bytes: it is validated first, and anything the
 * client's dialect cannot carry (a thinking block, a deprecated
 * function_call, audio, a stop reason the gateway does not know) makes the
 * answer an error for the caller to report, as the stream translation
 * (xstream.h) does. Members that are not part of the answer itself
 * (system_fingerprint, logprobs, annotations, vendor extras) are not
 * carried: the client's dialect has no place for them and they change
 * nothing the client asked for. Texts and ids are copied as their raw
 * JSON text, so escapes pass untouched. */
#include "route/adapters/translate_ctx.h"

static int bad(tg_xl *x, const char *what)
{
    return tg_errmsg_set(x->err, "the provider's answer %s", what);
}

/* Validates body; *root is its object. */
static int answer_root(tg_xl *x, tg_str body, tg_json_val *root)
{
    int rc = tg_json_validate(body.p, body.n, 0, NULL, NULL);
    if (rc == TG_ENOMEM) return rc;
    if (rc) return bad(x, "is not valid JSON");
    *root = tg_json_root(body.p, body.n);
    return root->type == TG_JSON_OBJECT ? TG_OK : bad(x, "is not a JSON object");
}

/* The id as it came, when it is a string. */
static int write_id(tg_xl *x, tg_json_val root, const char *fallback)
{
    tg_json_val id = tg_json_get(root, TG_STR("id"));
    tg_xl_lit(x, "{\"id\":");
    return id.type == TG_JSON_STRING ? tg_xl_raw(x, id) : tg_xl_lit(x, fallback);
}

/* ---- OpenAI chat completion -> Anthropic message ---- */

/* finish_reason as stop_reason; NULL when the gateway does not know it.
 * A server that says "stop" after tool calls meant tool_use. */
static const char *stop_reason(tg_json_val finish, bool tools)
{
    static const char *const map[][2] = {{"stop", "end_turn"},
                                         {"length", "max_tokens"},
                                         {"tool_calls", "tool_use"},
                                         {"content_filter", "refusal"}};
    if (finish.type == TG_JSON_NONE || finish.type == TG_JSON_NULL)
        return tools ? "tool_use" : "end_turn";
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (!tg_xl_is(finish, map[i][0])) continue;
        return i == 0 && tools ? "tool_use" : map[i][1];
    }
    return NULL;
}

/* A tool call as a tool_use block: its arguments, parsed, are the input
 * (empty arguments, which some servers send for a tool without
 * parameters, are {}). */
static int tool_use(tg_xl *x, tg_json_val call, size_t *n)
{
    tg_json_val fn = tg_json_get(call, TG_STR("function")), id = tg_json_get(call, TG_STR("id"));
    tg_json_val name = tg_json_get(fn, TG_STR("name")), args = tg_json_get(fn, TG_STR("arguments"));
    tg_str a;
    if (id.type != TG_JSON_STRING || name.type != TG_JSON_STRING || args.type != TG_JSON_STRING)
        return bad(x, "has a tool call without a string id, function.name and function.arguments");
    int rc = tg_xl_decode(x, args, &a);
    if (rc) return rc;
    if (a.n == 0) a = TG_STR("{}");
    if (tg_json_validate(a.p, a.n, 0, NULL, NULL) || tg_json_root(a.p, a.n).type != TG_JSON_OBJECT)
        return bad(x, "has tool call arguments that are not a JSON object");
    tg_xl_sep(x, n);
    tg_xl_lit(x, "{\"type\":\"tool_use\",\"id\":");
    tg_xl_raw(x, id);
    tg_xl_lit(x, ",\"name\":");
    tg_xl_raw(x, name);
    tg_xl_lit(x, ",\"input\":");
    tg_xl_add(x, a);
    return tg_xl_lit(x, "}");
}

/* The message's text, refusal and tool calls as blocks. */
static int blocks_of(tg_xl *x, tg_json_val msg, tg_json_val calls)
{
    tg_json_val text = tg_xl_get(msg, "content"), refusal = tg_xl_get(msg, "refusal"), c;
    size_t n = 0;
    int rc = TG_OK;
    tg_xl_lit(x, ",\"content\":[");
    for (int i = 0; i < 2; i++) {
        tg_json_val t = i ? refusal : text;
        if (t.type && t.type != TG_JSON_STRING)
            return bad(x, "has a message content that is not a string");
        if (t.n <= 2) continue; /* absent or empty: no block */
        tg_xl_sep(x, &n);
        tg_xl_lit(x, "{\"type\":\"text\",\"text\":");
        tg_xl_raw(x, t);
        tg_xl_lit(x, "}");
    }
    tg_json_iter it = tg_json_iter_init(calls);
    while (!rc && tg_json_iter_next(&it, NULL, &c))
        rc = tool_use(x, c, &n);
    return rc ? rc : tg_xl_lit(x, "]");
}

static int anthropic_usage(tg_xl *x, const tg_usage *u)
{
    int64_t input = u->prompt - u->cached - u->cache_write;
    tg_xl_lit(x, ",\"usage\":{\"input_tokens\":");
    tg_xl_i64(x, input > 0 ? input : 0);
    tg_xl_lit(x, ",\"cache_creation_input_tokens\":");
    tg_xl_i64(x, u->cache_write);
    tg_xl_lit(x, ",\"cache_read_input_tokens\":");
    tg_xl_i64(x, u->cached);
    tg_xl_lit(x, ",\"output_tokens\":");
    tg_xl_i64(x, u->completion);
    return tg_xl_lit(x, "}}");
}

static int to_anthropic(tg_xl *x, tg_str body, tg_str model, tg_usage *u)
{
    tg_json_val root, c0, msg, calls;
    int rc = answer_root(x, body, &root);
    if (rc) return rc;
    tg_json_iter it = tg_json_iter_init(tg_json_get(root, TG_STR("choices")));
    if (!tg_json_iter_next(&it, NULL, &c0) ||
        (msg = tg_json_get(c0, TG_STR("message"))).type != TG_JSON_OBJECT)
        return bad(x, "has no choices[0].message");
    calls = tg_xl_get(msg, "tool_calls");
    if (calls.type && calls.type != TG_JSON_ARRAY)
        return bad(x, "has tool_calls that are not an array");
    if (tg_xl_get(msg, "function_call").type || tg_xl_get(msg, "audio").type)
        return bad(x, "holds a function_call or audio, which an Anthropic message cannot carry");
    tg_json_iter ct = tg_json_iter_init(calls);
    const char *stop =
        stop_reason(tg_json_get(c0, TG_STR("finish_reason")), tg_json_iter_next(&ct, NULL, NULL));
    if (!stop) return bad(x, "has a finish_reason the gateway does not know");
    tg_openai_usage(root, u);
    write_id(x, root, "\"msg_tollgate\"");
    tg_xl_lit(x, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    tg_xl_str(x, model);
    if ((rc = blocks_of(x, msg, calls))) return rc;
    tg_xl_lit(x, ",\"stop_reason\":\"");
    tg_xl_lit(x, stop);
    tg_xl_lit(x, "\",\"stop_sequence\":null");
    return anthropic_usage(x, u);
}

int tg_translate_resp_to_anthropic(tg_str body, tg_str model, tg_buf *out, tg_usage *u,
                                   tg_errmsg *err)
{
    tg_xl x;
    tg_translate_param unused;
    memset(u, 0, sizeof *u);
    tg_xl_init(&x, out, body.n, err, &unused, "");
    return tg_xl_done(&x, to_anthropic(&x, body, model, u));
}

/* ---- Anthropic message -> OpenAI chat completion ---- */

/* stop_reason as finish_reason; NULL when the chat dialect has none for
 * it (pause_turn: a server tool's turn, never asked for) or it is not
 * known. */
static const char *finish_reason(tg_json_val stop)
{
    static const char *const map[][2] = {
        {"end_turn", "stop"},          {"stop_sequence", "stop"},
        {"max_tokens", "length"},      {"tool_use", "tool_calls"},
        {"refusal", "content_filter"}, {"model_context_window_exceeded", "length"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (tg_xl_is(stop, map[i][0])) return map[i][1];
    return NULL;
}

/* Checks the blocks: texts and tool uses only. */
static int check_blocks(tg_xl *x, tg_json_val content, size_t *ntext, size_t *ntool)
{
    tg_json_iter it = tg_json_iter_init(content);
    tg_json_val b;
    while (tg_json_iter_next(&it, NULL, &b)) {
        tg_json_val type = tg_json_get(b, TG_STR("type"));
        if (tg_xl_is(type, "text")) {
            if (tg_json_get(b, TG_STR("text")).type != TG_JSON_STRING)
                return bad(x, "has a text block without a string text");
            (*ntext)++;
        } else if (tg_xl_is(type, "tool_use")) {
            if (tg_json_get(b, TG_STR("id")).type != TG_JSON_STRING ||
                tg_json_get(b, TG_STR("name")).type != TG_JSON_STRING ||
                tg_json_get(b, TG_STR("input")).type != TG_JSON_OBJECT)
                return bad(x,
                           "has a tool_use block without a string id and name and an object input");
            (*ntool)++;
        } else {
            return tg_errmsg_set(x->err,
                                 "the provider's answer has a %.*s block, which an OpenAI chat "
                                 "completion cannot carry",
                                 type.type == TG_JSON_STRING ? (int)type.n - 2 : 7,
                                 type.type == TG_JSON_STRING ? type.p + 1 : "untyped");
        }
    }
    return TG_OK;
}

/* The message: its texts joined (their raw contents side by side make one
 * JSON string), its tool uses as tool_calls. */
static int chat_message(tg_xl *x, tg_json_val content, size_t ntext, size_t ntool)
{
    tg_json_iter it = tg_json_iter_init(content);
    tg_json_val b;
    size_t n = 0;
    tg_xl_lit(x, "{\"role\":\"assistant\",\"content\":");
    tg_xl_lit(x, ntext ? "\"" : "null");
    while (tg_json_iter_next(&it, NULL, &b))
        if (tg_xl_is(tg_json_get(b, TG_STR("type")), "text"))
            tg_xl_inner(x, tg_json_get(b, TG_STR("text")));
    if (ntext) tg_xl_lit(x, "\"");
    if (ntool) tg_xl_lit(x, ",\"tool_calls\":[");
    it = tg_json_iter_init(content);
    while (ntool && tg_json_iter_next(&it, NULL, &b)) {
        if (!tg_xl_is(tg_json_get(b, TG_STR("type")), "tool_use")) continue;
        tg_json_val input = tg_json_get(b, TG_STR("input"));
        tg_xl_sep(x, &n);
        tg_xl_lit(x, "{\"id\":");
        tg_xl_raw(x, tg_json_get(b, TG_STR("id")));
        tg_xl_lit(x, ",\"type\":\"function\",\"function\":{\"name\":");
        tg_xl_raw(x, tg_json_get(b, TG_STR("name")));
        tg_xl_lit(x, ",\"arguments\":");
        tg_xl_str(x, tg_str_make(input.p, input.n));
        tg_xl_lit(x, "}}");
    }
    if (ntool) tg_xl_lit(x, "]");
    return tg_xl_lit(x, ",\"refusal\":null}");
}

static int openai_usage(tg_xl *x, const tg_usage *u)
{
    tg_xl_lit(x, ",\"usage\":{\"prompt_tokens\":");
    tg_xl_i64(x, u->prompt);
    tg_xl_lit(x, ",\"completion_tokens\":");
    tg_xl_i64(x, u->completion);
    tg_xl_lit(x, ",\"total_tokens\":");
    tg_xl_i64(x, u->total);
    tg_xl_lit(x, ",\"prompt_tokens_details\":{\"cached_tokens\":");
    tg_xl_i64(x, u->cached);
    return tg_xl_lit(x, "}}}");
}

static int to_openai(tg_xl *x, tg_str body, tg_str model, int64_t created, tg_usage *u)
{
    tg_json_val root, content, type;
    size_t ntext = 0, ntool = 0;
    int rc = answer_root(x, body, &root);
    if (rc) return rc;
    content = tg_json_get(root, TG_STR("content"));
    type = tg_json_get(root, TG_STR("type"));
    if (type.type && !tg_xl_is(type, "message")) return bad(x, "is not a message");
    if (content.type != TG_JSON_ARRAY) return bad(x, "has no content array");
    if ((rc = check_blocks(x, content, &ntext, &ntool))) return rc;
    const char *finish = finish_reason(tg_json_get(root, TG_STR("stop_reason")));
    if (!finish) return bad(x, "has a stop_reason an OpenAI chat completion cannot carry");
    tg_anthropic_usage(tg_json_get(root, TG_STR("usage")), u);
    write_id(x, root, "\"chatcmpl-tollgate\"");
    tg_xl_lit(x, ",\"object\":\"chat.completion\",\"created\":");
    tg_xl_i64(x, created);
    tg_xl_lit(x, ",\"model\":");
    tg_xl_str(x, model);
    tg_xl_lit(x, ",\"choices\":[{\"index\":0,\"message\":");
    chat_message(x, content, ntext, ntool);
    tg_xl_lit(x, ",\"logprobs\":null,\"finish_reason\":\"");
    tg_xl_lit(x, finish);
    tg_xl_lit(x, "\"}]");
    return openai_usage(x, u);
}

int tg_translate_resp_to_openai(tg_str body, tg_str model, int64_t created, tg_buf *out,
                                tg_usage *u, tg_errmsg *err)
{
    tg_xl x;
    tg_translate_param unused;
    memset(u, 0, sizeof *u);
    tg_xl_init(&x, out, body.n, err, &unused, "");
    return tg_xl_done(&x, to_openai(&x, body, model, created, u));
}
