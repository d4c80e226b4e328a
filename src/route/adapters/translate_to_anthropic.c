/* An OpenAI chat request into an Anthropic Messages request; see
 * translate.h and the table in docs/anthropic.md.
 *
 * One pass over the top level sorts every field into: translated,
 * accepted as the gateway's business, accepted because its value asks for
 * nothing (n 1, logprobs false, a zero penalty, response_format text), or
 * refused. Then the body is written in a fixed order. Messages take two
 * passes: the leading system and developer messages become `system`, the
 * rest become Anthropic messages, where a run of OpenAI messages that map
 * to one Anthropic role (user and tool both map to user) is merged into
 * one message, since Anthropic wants the roles to alternate.
 *
 * Strings are copied as their raw JSON text wherever the meaning is the
 * same in both dialects (a text, a tool id), so escapes pass untouched;
 * only what has to be parsed (an image URL, tool call arguments) is
 * decoded. Empty texts are left out: Anthropic refuses empty text blocks,
 * and an empty text says nothing. */
#include "route/adapters/translate_ctx.h"

#include <math.h>
#include <stdlib.h>

#define PEER "this model's Claude (Anthropic) provider"

/* The top-level fields the writing needs. */
typedef struct {
    tg_json_val messages, temperature, top_p, stop, tools, tool_choice, parallel, user;
} top;

/* The number v as a double (range checks; not money); NaN, which every
 * check refuses, when it cannot be read. */
static double number(tg_xl *x, tg_json_val v)
{
    tg_buf_clear(&x->tmp);
    if (tg_buf_append(&x->tmp, v.p, v.n)) return NAN;
    return strtod(x->tmp.p, NULL);
}

static bool is_zero(tg_xl *x, tg_json_val v)
{
    return v.type == TG_JSON_NUMBER && number(x, v) == 0;
}

static bool is_empty(tg_json_val v)
{
    tg_json_iter it = tg_json_iter_init(v);
    return (v.type == TG_JSON_OBJECT || v.type == TG_JSON_ARRAY) &&
           !tg_json_iter_next(&it, NULL, NULL);
}

/* ["text"]: the only modality Claude answers in. */
static bool text_only(tg_json_val v)
{
    tg_json_iter it = tg_json_iter_init(v);
    tg_json_val m;
    bool any = false;
    while (tg_json_iter_next(&it, NULL, &m)) {
        if (!tg_xl_is(m, "text")) return false;
        any = true;
    }
    return any;
}

/* Fields refused only when their value asks for something. */
static int asks_nothing(tg_xl *x, tg_str name, tg_json_val v, bool *known)
{
    bool ok;
    *known = true;
    if (tg_str_eq(name, TG_STR("logprobs")) || tg_str_eq(name, TG_STR("store")))
        ok = v.type == TG_JSON_FALSE;
    else if (tg_str_eq(name, TG_STR("top_logprobs")) ||
             tg_str_eq(name, TG_STR("presence_penalty")) ||
             tg_str_eq(name, TG_STR("frequency_penalty")))
        ok = is_zero(x, v);
    else if (tg_str_eq(name, TG_STR("logit_bias")))
        ok = is_empty(v);
    else if (tg_str_eq(name, TG_STR("response_format")))
        ok = tg_xl_is(tg_json_get(v, TG_STR("type")), "text");
    else if (tg_str_eq(name, TG_STR("modalities")))
        ok = text_only(v);
    else if (tg_str_eq(name, TG_STR("seed")) || tg_str_eq(name, TG_STR("audio")) ||
             tg_str_eq(name, TG_STR("prediction")) || tg_str_eq(name, TG_STR("reasoning_effort")))
        ok = false;
    else
        return *known = false, TG_OK;
    return ok ? TG_OK : tg_xl_unsupported(x, NULL);
}

/* One top-level member: kept for writing, accepted, or refused. */
static int top_field(tg_xl *x, tg_str name, tg_json_val v, top *t)
{
    static const struct {
        const char *name;
        size_t off;
    } kept[] = {
        {"messages", offsetof(top, messages)},
        {"temperature", offsetof(top, temperature)},
        {"top_p", offsetof(top, top_p)},
        {"stop", offsetof(top, stop)},
        {"tools", offsetof(top, tools)},
        {"tool_choice", offsetof(top, tool_choice)},
        {"parallel_tool_calls", offsetof(top, parallel)},
        {"user", offsetof(top, user)},
    };
    /* read by tg_openai_read_request, or the gateway's own (stream_options:
     * an Anthropic stream always carries usage; metadata: attribution) */
    static const char *const accepted[] = {"model",   "max_tokens", "max_completion_tokens",
                                           "n",       "stream",     "stream_options",
                                           "metadata"};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        if (!tg_str_eq(name, tg_str_c(kept[i].name))) continue;
        *(tg_json_val *)((char *)t + kept[i].off) = v;
        return TG_OK;
    }
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++)
        if (tg_str_eq(name, tg_str_c(accepted[i]))) return TG_OK;
    size_t at = tg_xl_push(x, "%.*s", (int)name.n, name.p);
    bool known;
    int rc = asks_nothing(x, name, v, &known);
    tg_xl_pop(x, at);
    return rc ? rc : known ? TG_OK : tg_xl_unknown(x, name);
}

static int read_top(tg_xl *x, const tg_openai_req *req, top *t)
{
    tg_json_iter it = tg_json_iter_init(req->root);
    tg_json_val k, v;
    int rc;
    memset(t, 0, sizeof *t);
    while (tg_json_iter_next(&it, &k, &v))
        if (v.type != TG_JSON_NULL && (rc = top_field(x, tg_xl_name(x, k), v, t))) return rc;
    if (req->n > 1)
        return tg_xl_fail(x, "n",
                          "%s answers with one choice per request; send n = 1 (or none) and "
                          "repeat the request for more",
                          PEER);
    if (req->max_tokens == 0)
        return tg_xl_fail(x,
                          tg_xl_get(req->root, "max_completion_tokens").type
                              ? "max_completion_tokens"
                              : "max_tokens",
                          "%s needs room for at least 1 token", PEER);
    if (t->messages.type == TG_JSON_NONE) return tg_xl_fail(x, "messages", "field required");
    if (t->messages.type != TG_JSON_ARRAY) return tg_xl_fail(x, "messages", "must be an array");
    if (t->temperature.type && t->temperature.type != TG_JSON_NUMBER)
        return tg_xl_fail(x, "temperature", "must be a number");
    if (t->temperature.type) {
        double d = number(x, t->temperature);
        if (!(d >= 0 && d <= 1))
            return tg_xl_fail(x, "temperature",
                              "Claude takes a temperature from 0 to 1 (OpenAI's "
                              "range is 0 to 2); send one in that range");
    }
    if (t->top_p.type && t->top_p.type != TG_JSON_NUMBER)
        return tg_xl_fail(x, "top_p", "must be a number");
    if (t->user.type && t->user.type != TG_JSON_STRING)
        return tg_xl_fail(x, "user", "must be a string");
    if (t->parallel.type && t->parallel.type != TG_JSON_TRUE && t->parallel.type != TG_JSON_FALSE)
        return tg_xl_fail(x, "parallel_tool_calls", "must be a boolean");
    return TG_OK;
}

/* ---- content ---- */

static bool is_role(tg_json_val m, const char *a, const char *b)
{
    tg_json_val r = tg_json_get(m, TG_STR("role"));
    return tg_xl_is(r, a) || (b && tg_xl_is(r, b));
}

/* Refuses each listed member that is present: fields of a message that
 * Claude has no place for. */
static int refuse_present(tg_xl *x, tg_json_val obj, const char *const *names)
{
    for (; *names; names++)
        if (tg_xl_get(obj, *names).type) return tg_xl_unsupported(x, *names);
    return TG_OK;
}

/* A text block, unless the text is empty. */
static int text_block(tg_xl *x, tg_json_val text, size_t *nblk)
{
    if (text.n <= 2) return TG_OK;
    tg_xl_sep(x, nblk);
    tg_xl_lit(x, "{\"type\":\"text\",\"text\":");
    tg_xl_raw(x, text);
    return tg_xl_lit(x, "}");
}

/* A text part ({"type":"text","text":...}) as a text block. */
static int text_part(tg_xl *x, tg_json_val p, size_t *nblk)
{
    static const char *const keys[] = {"type", "text", NULL};
    int rc = tg_xl_only(x, p, keys);
    if (rc) return rc;
    tg_json_val text = tg_json_get(p, TG_STR("text"));
    if (text.type != TG_JSON_STRING) return tg_xl_fail(x, "text", "must be a string");
    return text_block(x, text, nblk);
}

static bool id_ok(tg_str s)
{
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return s.n > 0;
}

/* A tool call id (tool_calls[].id, tool_call_id): Claude takes letters,
 * digits, '_' and '-' only, and refuses the request otherwise. */
static int tool_id(tg_xl *x, tg_json_val v, const char *field)
{
    tg_str s;
    if (v.type != TG_JSON_STRING) return tg_xl_fail(x, field, "must be a string");
    int rc = tg_xl_decode(x, v, &s);
    if (rc) return rc;
    if (!id_ok(s))
        return tg_xl_fail(x, field,
                          "%s takes tool call ids made of letters, digits, '_' and '-' only", PEER);
    return TG_OK;
}

/* An image URL's source: a data: URL with base64 data, or http(s). */
static int image_source(tg_xl *x, tg_json_val url)
{
    static const char *const media[] = {"image/jpeg", "image/png", "image/gif", "image/webp"};
    tg_str u;
    if (url.type != TG_JSON_STRING) return tg_xl_fail(x, "url", "must be a string");
    int rc = tg_xl_decode(x, url, &u);
    if (rc) return rc;
    if (tg_str_has_prefix(u, TG_STR("https://")) || tg_str_has_prefix(u, TG_STR("http://"))) {
        tg_xl_lit(x, "{\"type\":\"url\",\"url\":");
        tg_xl_str(x, u);
        return tg_xl_lit(x, "}");
    }
    if (!tg_str_has_prefix(u, TG_STR("data:")))
        return tg_xl_fail(x, "url", "%s takes images as http(s) URLs or base64 data: URLs", PEER);
    tg_str rest = tg_str_make(u.p + 5, u.n - 5);
    const char *b64 = memmem(rest.p, rest.n, ";base64,", 8);
    if (!b64)
        return tg_xl_fail(x, "url",
                          "a data: URL must hold base64 data (data:image/png;base64,...)");
    tg_str type = tg_str_make(rest.p, (size_t)(b64 - rest.p));
    tg_str data = tg_str_make(b64 + 8, rest.n - type.n - 8);
    size_t i = 0;
    while (i < sizeof media / sizeof media[0] && !tg_str_eq(type, tg_str_c(media[i])))
        i++;
    if (i == sizeof media / sizeof media[0])
        return tg_xl_fail(x, "url",
                          "%s takes image/jpeg, image/png, image/gif or image/webp images", PEER);
    tg_xl_lit(x, "{\"type\":\"base64\",\"media_type\":\"");
    tg_xl_lit(x, media[i]);
    tg_xl_lit(x, "\",\"data\":");
    tg_xl_str(x, data);
    return tg_xl_lit(x, "}");
}

/* {"type":"image_url","image_url":{"url":...,"detail":...}} as an image
 * block. detail "low" or "high" asks for a resolution Claude does not let
 * a request choose: refused; "auto" is Claude's own behaviour. */
static int image_part(tg_xl *x, tg_json_val p, size_t *nblk)
{
    static const char *const keys[] = {"type", "image_url", NULL}, *const inner[] = {
                                                                       "url", "detail", NULL};
    tg_json_val iu = tg_json_get(p, TG_STR("image_url"));
    int rc = tg_xl_only(x, p, keys);
    if (rc) return rc;
    if (iu.type != TG_JSON_OBJECT)
        return tg_xl_fail(x, "image_url", "must be an object with a url");
    size_t at = tg_xl_push(x, ".image_url");
    tg_json_val detail = tg_xl_get(iu, "detail");
    if (!(rc = tg_xl_only(x, iu, inner)) && detail.type && !tg_xl_is(detail, "auto"))
        rc = tg_xl_fail(x, "detail",
                        "%s picks the image resolution itself; send detail \"auto\" or "
                        "none",
                        PEER);
    if (!rc) {
        tg_xl_sep(x, nblk);
        tg_xl_lit(x, "{\"type\":\"image\",\"source\":");
        if (!(rc = image_source(x, tg_json_get(iu, TG_STR("url"))))) rc = tg_xl_lit(x, "}");
    }
    tg_xl_pop(x, at);
    return rc;
}

/* One part of a user (images allowed) or assistant message's content. */
static int part(tg_xl *x, tg_json_val p, bool user, size_t *nblk)
{
    tg_json_val type = tg_json_get(p, TG_STR("type"));
    if (p.type != TG_JSON_OBJECT) return tg_xl_fail(x, NULL, "must be an object (a content part)");
    if (tg_xl_is(type, "text")) return text_part(x, p, nblk);
    if (user && tg_xl_is(type, "image_url")) return image_part(x, p, nblk);
    if (tg_xl_is(type, "input_audio") || tg_xl_is(type, "file") || tg_xl_is(type, "refusal"))
        return tg_xl_fail(x, "type", "%s cannot take %.*s parts; send text%s", PEER,
                          (int)type.n - 2, type.p + 1, user ? " or images" : "");
    return tg_xl_fail(x, "type", "unknown content part type; expected text%s",
                      user ? " or image_url" : "");
}

/* A message's content: a string, an array of parts, or (assistant) none. */
static int content(tg_xl *x, tg_json_val m, bool user, size_t *nblk)
{
    tg_json_val c = tg_xl_get(m, "content");
    if (c.type == TG_JSON_STRING) return text_block(x, c, nblk);
    if (c.type == TG_JSON_NONE && !user) return TG_OK;
    if (c.type != TG_JSON_ARRAY)
        return tg_xl_fail(x, "content",
                          c.type ? "must be a string or an array of content parts"
                                 : "field required");
    tg_json_iter it = tg_json_iter_init(c);
    tg_json_val p;
    int rc = TG_OK;
    for (size_t j = 0; !rc && tg_json_iter_next(&it, NULL, &p); j++) {
        size_t at = tg_xl_push(x, ".content[%zu]", j);
        rc = part(x, p, user, nblk);
        tg_xl_pop(x, at);
    }
    return rc;
}

/* A tool call as a tool_use block; its arguments must be a JSON object
 * (or empty: {}). */
static int tool_call(tg_xl *x, tg_json_val c, size_t *nblk)
{
    static const char *const keys[] = {"id", "type", "function", NULL}, *const fkeys[] = {
                                                                            "name", "arguments",
                                                                            NULL};
    tg_json_val fn = tg_json_get(c, TG_STR("function")), type = tg_xl_get(c, "type");
    tg_json_val name = tg_json_get(fn, TG_STR("name")), args = tg_json_get(fn, TG_STR("arguments"));
    int rc = c.type == TG_JSON_OBJECT ? tg_xl_only(x, c, keys)
                                      : tg_xl_fail(x, NULL, "must be an object");
    if (rc || (rc = tool_id(x, tg_json_get(c, TG_STR("id")), "id"))) return rc;
    if (type.type && !tg_xl_is(type, "function"))
        return tg_xl_fail(x, "type", "must be \"function\"");
    if (fn.type != TG_JSON_OBJECT) return tg_xl_fail(x, "function", "must be an object");
    size_t at = tg_xl_push(x, ".function");
    tg_str a;
    if ((rc = tg_xl_only(x, fn, fkeys))) goto out;
    if (name.type != TG_JSON_STRING)
        rc = tg_xl_fail(x, "name", "must be a string");
    else if (args.type != TG_JSON_STRING)
        rc = tg_xl_fail(x, "arguments", "must be a string of JSON");
    else
        rc = tg_xl_decode(x, args, &a);
    if (rc) goto out;
    if (a.n == 0) a = TG_STR("{}"); /* some servers send "" for a tool without parameters */
    if (tg_json_validate(a.p, a.n, 0, NULL, NULL) ||
        tg_json_root(a.p, a.n).type != TG_JSON_OBJECT) {
        rc = tg_xl_fail(x, "arguments",
                        "must be a JSON object (Claude takes tool input as an object)");
        goto out;
    }
    tg_xl_sep(x, nblk);
    tg_xl_lit(x, "{\"type\":\"tool_use\",\"id\":");
    tg_xl_raw(x, tg_json_get(c, TG_STR("id")));
    tg_xl_lit(x, ",\"name\":");
    tg_xl_raw(x, name);
    tg_xl_lit(x, ",\"input\":");
    tg_xl_add(x, a); /* validated above: the decoded text is the object */
    rc = tg_xl_lit(x, "}");
out:
    tg_xl_pop(x, at);
    return rc;
}

/* ---- messages ---- */

static const char *const unsupported_msg_fields[] = {"name", "refusal", "audio", "function_call",
                                                     NULL};

/* An assistant message: its text, then a tool_use block per tool call. */
static int assistant(tg_xl *x, tg_json_val m, size_t *nblk)
{
    static const char *const keys[] = {"role",    "content", "tool_calls",    "name",
                                       "refusal", "audio",   "function_call", NULL};
    tg_json_val calls = tg_xl_get(m, "tool_calls"), c;
    int rc = tg_xl_only(x, m, keys);
    if (rc || (rc = refuse_present(x, m, unsupported_msg_fields)) ||
        (rc = content(x, m, false, nblk)))
        return rc;
    if (calls.type && calls.type != TG_JSON_ARRAY)
        return tg_xl_fail(x, "tool_calls", "must be an array");
    tg_json_iter it = tg_json_iter_init(calls);
    for (size_t j = 0; !rc && tg_json_iter_next(&it, NULL, &c); j++) {
        size_t at = tg_xl_push(x, ".tool_calls[%zu]", j);
        rc = tool_call(x, c, nblk);
        tg_xl_pop(x, at);
    }
    return rc;
}

/* A role "tool" message as a tool_result block. */
static int tool_result(tg_xl *x, tg_json_val m, size_t *nblk)
{
    static const char *const keys[] = {"role", "content", "tool_call_id", "name", NULL};
    tg_json_val id = tg_json_get(m, TG_STR("tool_call_id")), c = tg_xl_get(m, "content");
    int rc = tg_xl_only(x, m, keys);
    if (rc || (rc = refuse_present(x, m, unsupported_msg_fields)) ||
        (rc = tool_id(x, id, "tool_call_id")))
        return rc;
    if (c.type != TG_JSON_STRING && c.type != TG_JSON_ARRAY)
        return tg_xl_fail(x, "content", "must be a string or an array of text parts");
    tg_xl_sep(x, nblk);
    tg_xl_lit(x, "{\"type\":\"tool_result\",\"tool_use_id\":");
    tg_xl_raw(x, id);
    tg_xl_lit(x, ",\"content\":");
    if (c.type == TG_JSON_STRING) {
        tg_xl_raw(x, c);
        return tg_xl_lit(x, "}");
    }
    tg_json_iter it = tg_json_iter_init(c);
    tg_json_val p;
    size_t n = 0;
    tg_xl_lit(x, "[");
    for (size_t j = 0; !rc && tg_json_iter_next(&it, NULL, &p); j++) {
        size_t at = tg_xl_push(x, ".content[%zu]", j);
        if (p.type != TG_JSON_OBJECT || !tg_xl_is(tg_json_get(p, TG_STR("type")), "text"))
            rc = tg_xl_fail(x, NULL, "a tool message's content parts must be text parts");
        else
            rc = text_part(x, p, &n);
        tg_xl_pop(x, at);
    }
    return rc ? rc : tg_xl_lit(x, "]}");
}

/* The content parts of a system message as text blocks. */
static int system_blocks(tg_xl *x, tg_json_val m, size_t *nblk)
{
    static const char *const keys[] = {"role", "content", "name", NULL};
    int rc = tg_xl_only(x, m, keys);
    if (rc || (rc = refuse_present(x, m, unsupported_msg_fields))) return rc;
    tg_json_val c = tg_xl_get(m, "content");
    if (c.type == TG_JSON_ARRAY) {
        tg_json_iter it = tg_json_iter_init(c);
        tg_json_val p;
        for (size_t j = 0; !rc && tg_json_iter_next(&it, NULL, &p); j++) {
            size_t at = tg_xl_push(x, ".content[%zu]", j);
            rc = p.type == TG_JSON_OBJECT && tg_xl_is(tg_json_get(p, TG_STR("type")), "text")
                     ? text_part(x, p, nblk)
                     : tg_xl_fail(x, NULL, "a system message's content parts must be text parts");
            tg_xl_pop(x, at);
        }
        return rc;
    }
    if (c.type != TG_JSON_STRING)
        return tg_xl_fail(x, "content", "must be a string or an array of text parts");
    return text_block(x, c, nblk);
}

/* The leading system and developer messages as `system` (a string when
 * there is one with string content, else text blocks; left out when
 * there is none or all are empty). *first: the first other message. */
static int write_system(tg_xl *x, tg_json_val msgs, size_t *first)
{
    tg_json_iter it = tg_json_iter_init(msgs);
    tg_json_val m, only = {0};
    size_t n = 0, nblk = 0, mark = x->out->n;
    int rc = TG_OK;
    while (tg_json_iter_next(&it, NULL, &m) && is_role(m, "system", "developer"))
        if (n++ == 0) only = m;
    *first = n;
    if (n == 1 && tg_xl_get(only, "content").type == TG_JSON_STRING) {
        tg_json_val c = tg_json_get(only, TG_STR("content"));
        size_t at = tg_xl_push(x, "messages[0]");
        static const char *const keys[] = {"role", "content", "name", NULL};
        if (!(rc = tg_xl_only(x, only, keys)) &&
            !(rc = refuse_present(x, only, unsupported_msg_fields)) && c.n > 2) {
            tg_xl_lit(x, ",\"system\":");
            rc = tg_xl_raw(x, c);
        }
        tg_xl_pop(x, at);
        return rc;
    }
    tg_xl_lit(x, ",\"system\":[");
    it = tg_json_iter_init(msgs);
    for (size_t i = 0; !rc && i < n && tg_json_iter_next(&it, NULL, &m); i++) {
        size_t at = tg_xl_push(x, "messages[%zu]", i);
        rc = system_blocks(x, m, &nblk);
        tg_xl_pop(x, at);
    }
    if (!rc && !nblk) x->out->n = mark; /* nothing said: no system */
    return rc ? rc : nblk ? tg_xl_lit(x, "]") : x->rc;
}

/* The Anthropic role of a conversation message, or a refusal. */
static int role_of(tg_xl *x, tg_json_val m, bool *user)
{
    tg_json_val r = tg_json_get(m, TG_STR("role"));
    if (m.type != TG_JSON_OBJECT) return tg_xl_fail(x, NULL, "must be an object (a message)");
    *user = tg_xl_is(r, "user") || tg_xl_is(r, "tool");
    if (*user || tg_xl_is(r, "assistant")) return TG_OK;
    if (tg_xl_is(r, "system") || tg_xl_is(r, "developer"))
        return tg_xl_fail(x, "role",
                          "a system message after the conversation started; %s takes "
                          "system prompts only before the first user or assistant message: move it "
                          "there",
                          PEER);
    if (tg_xl_is(r, "function"))
        return tg_xl_fail(x, "role",
                          "the deprecated function role cannot be translated; send tool "
                          "messages");
    return tg_xl_fail(x, "role",
                      r.type ? "unknown role; expected system, developer, user, assistant or tool"
                             : "field required");
}

/* Closes the Anthropic message that began at OpenAI message start. */
static int close_message(tg_xl *x, size_t start, size_t nblk)
{
    if (nblk) return tg_xl_lit(x, "]}");
    size_t at = tg_xl_push(x, "messages[%zu]", start);
    int rc = tg_xl_fail(x, "content",
                        "the message has no content (empty texts are left out); %s "
                        "needs non-empty content",
                        PEER);
    tg_xl_pop(x, at);
    return rc;
}

/* The conversation from message first on, same-role runs merged. */
static int write_messages(tg_xl *x, tg_json_val msgs, size_t first)
{
    tg_json_iter it = tg_json_iter_init(msgs);
    tg_json_val m;
    size_t i = 0, nmsg = 0, nblk = 0, start = 0;
    int cur = -1, rc = TG_OK; /* cur: the open message's role, 1 user, 0 assistant */
    tg_xl_lit(x, ",\"messages\":[");
    for (; !rc && tg_json_iter_next(&it, NULL, &m); i++) {
        if (i < first) continue;
        size_t at = tg_xl_push(x, "messages[%zu]", i);
        bool user;
        if (!(rc = role_of(x, m, &user)) && (int)user != cur) {
            if (cur >= 0) rc = close_message(x, start, nblk);
            tg_xl_sep(x, &nmsg);
            tg_xl_lit(x, user ? "{\"role\":\"user\",\"content\":["
                              : "{\"role\":\"assistant\",\"content\":[");
            cur = user, start = i, nblk = 0;
        }
        if (!rc && !user)
            rc = assistant(x, m, &nblk);
        else if (!rc && is_role(m, "tool", NULL))
            rc = tool_result(x, m, &nblk);
        else if (!rc) {
            static const char *const keys[] = {"role", "content", "name", NULL};
            if (!(rc = tg_xl_only(x, m, keys)) &&
                !(rc = refuse_present(x, m, unsupported_msg_fields)))
                rc = content(x, m, true, &nblk);
        }
        tg_xl_pop(x, at);
    }
    if (rc) return rc;
    if (cur < 0)
        return tg_xl_fail(x, "messages",
                          "%s needs at least one user or assistant message after the "
                          "system messages",
                          PEER);
    rc = close_message(x, start, nblk);
    return rc ? rc : tg_xl_lit(x, "]");
}

/* ---- tools and the rest ---- */

/* A function tool as {name, description, input_schema}. */
static int tool(tg_xl *x, tg_json_val t, size_t *n)
{
    static const char *const keys[] = {"type", "function", NULL}, *const fkeys[] = {
                                                                      "name", "description",
                                                                      "parameters", "strict", NULL};
    tg_json_val fn = tg_json_get(t, TG_STR("function")), type = tg_json_get(t, TG_STR("type"));
    if (t.type != TG_JSON_OBJECT) return tg_xl_fail(x, NULL, "must be an object");
    if (!tg_xl_is(type, "function"))
        return tg_xl_fail(x, "type", "%s can be offered function tools only", PEER);
    int rc = tg_xl_only(x, t, keys);
    if (rc) return rc;
    if (fn.type != TG_JSON_OBJECT) return tg_xl_fail(x, "function", "must be an object");
    size_t at = tg_xl_push(x, ".function");
    tg_json_val name = tg_json_get(fn, TG_STR("name")), desc = tg_xl_get(fn, "description");
    tg_json_val params = tg_xl_get(fn, "parameters"), strict = tg_xl_get(fn, "strict");
    if ((rc = tg_xl_only(x, fn, fkeys))) goto out;
    if (name.type != TG_JSON_STRING)
        rc = tg_xl_fail(x, "name", "must be a string");
    else if (desc.type && desc.type != TG_JSON_STRING)
        rc = tg_xl_fail(x, "description", "must be a string");
    else if (params.type && params.type != TG_JSON_OBJECT)
        rc = tg_xl_fail(x, "parameters", "must be a JSON Schema object");
    else if (strict.type == TG_JSON_TRUE)
        rc = tg_xl_unsupported(x, "strict");
    if (rc) goto out;
    tg_xl_sep(x, n);
    tg_xl_lit(x, "{\"name\":");
    tg_xl_raw(x, name);
    if (desc.type) tg_xl_lit(x, ",\"description\":"), tg_xl_raw(x, desc);
    tg_xl_lit(x, ",\"input_schema\":");
    if (params.type)
        tg_xl_raw(x, params);
    else
        tg_xl_lit(x, "{\"type\":\"object\",\"properties\":{}}"); /* Anthropic requires one */
    rc = tg_xl_lit(x, "}");
out:
    tg_xl_pop(x, at);
    return rc;
}

static int write_tools(tg_xl *x, tg_json_val tools, size_t *n)
{
    if (!tools.type) return TG_OK;
    if (tools.type != TG_JSON_ARRAY) return tg_xl_fail(x, "tools", "must be an array");
    size_t mark = x->out->n;
    tg_json_iter it = tg_json_iter_init(tools);
    tg_json_val t;
    int rc = tg_xl_lit(x, ",\"tools\":[");
    for (size_t j = 0; !rc && tg_json_iter_next(&it, NULL, &t); j++) {
        size_t at = tg_xl_push(x, "tools[%zu]", j);
        rc = tool(x, t, n);
        tg_xl_pop(x, at);
    }
    if (!rc && !*n) x->out->n = mark; /* an empty list offers nothing */
    return rc ? rc : *n ? tg_xl_lit(x, "]") : x->rc;
}

/* tool_choice and parallel_tool_calls as Anthropic's tool_choice. Without
 * tools, "auto" and "none" mean what no tool_choice means, and Anthropic
 * refuses a tool_choice without tools: left out. */
static int write_tool_choice(tg_xl *x, const top *t, bool have_tools)
{
    enum { AUTO, ANY, NONE, TOOL };
    static const char *const types[] = {"auto", "any", "none", "tool"};
    tg_json_val c = t->tool_choice, name = {0};
    int kind = AUTO, rc = TG_OK;
    if (tg_xl_is(c, "required"))
        kind = ANY;
    else if (tg_xl_is(c, "none"))
        kind = NONE;
    else if (c.type == TG_JSON_OBJECT) {
        static const char *const keys[] = {"type", "function", NULL};
        size_t at = tg_xl_push(x, "tool_choice");
        name = tg_json_get(tg_json_get(c, TG_STR("function")), TG_STR("name"));
        if (!(rc = tg_xl_only(x, c, keys)) && !tg_xl_is(tg_json_get(c, TG_STR("type")), "function"))
            rc = tg_xl_fail(x, "type", "%s takes a named choice of a function tool only", PEER);
        else if (!rc && name.type != TG_JSON_STRING)
            rc = tg_xl_fail(x, "function.name", "must be a string");
        tg_xl_pop(x, at);
        kind = TOOL;
    } else if (c.type && !tg_xl_is(c, "auto")) {
        rc = tg_xl_fail(x, "tool_choice",
                        "must be \"auto\", \"required\", \"none\" or a named function");
    }
    if (rc) return rc;
    if (!have_tools)
        return kind == ANY || kind == TOOL
                   ? tg_xl_fail(x, "tool_choice",
                                "asks for a tool call but the request offers no tools")
                   : TG_OK;
    bool serial = t->parallel.type == TG_JSON_FALSE && kind != NONE;
    if (!c.type && !serial) return TG_OK;
    tg_xl_lit(x, ",\"tool_choice\":{\"type\":\"");
    tg_xl_lit(x, types[kind]);
    tg_xl_lit(x, "\"");
    if (kind == TOOL) tg_xl_lit(x, ",\"name\":"), tg_xl_raw(x, name);
    if (serial) tg_xl_lit(x, ",\"disable_parallel_tool_use\":true");
    return tg_xl_lit(x, "}");
}

/* stop (a string or an array of strings) as stop_sequences. */
static int write_stop(tg_xl *x, tg_json_val stop)
{
    if (stop.type == TG_JSON_STRING) {
        tg_xl_lit(x, ",\"stop_sequences\":[");
        tg_xl_raw(x, stop);
        return tg_xl_lit(x, "]");
    }
    if (!stop.type) return TG_OK;
    tg_json_iter it = tg_json_iter_init(stop);
    tg_json_val s;
    bool any = false;
    if (stop.type != TG_JSON_ARRAY)
        return tg_xl_fail(x, "stop", "must be a string or an array of strings");
    while (tg_json_iter_next(&it, NULL, &s)) {
        if (s.type != TG_JSON_STRING)
            return tg_xl_fail(x, "stop", "must be a string or an array of strings");
        any = true;
    }
    if (!any) return TG_OK;
    tg_xl_lit(x, ",\"stop_sequences\":");
    return tg_xl_raw(x, stop);
}

static int write_rest(tg_xl *x, const tg_openai_req *req, const top *t)
{
    size_t ntools = 0;
    int rc = write_stop(x, t->stop);
    if (!rc && t->temperature.type)
        tg_xl_lit(x, ",\"temperature\":"), rc = tg_xl_raw(x, t->temperature);
    if (!rc && t->top_p.type) tg_xl_lit(x, ",\"top_p\":"), rc = tg_xl_raw(x, t->top_p);
    if (!rc && req->stream) rc = tg_xl_lit(x, ",\"stream\":true");
    if (!rc) rc = write_tools(x, t->tools, &ntools);
    if (!rc) rc = write_tool_choice(x, t, ntools > 0);
    if (!rc && t->user.type) {
        tg_xl_lit(x, ",\"metadata\":{\"user_id\":");
        tg_xl_raw(x, t->user);
        rc = tg_xl_lit(x, "}");
    }
    return rc;
}

int tg_translate_req_to_anthropic(const tg_openai_req *req, const tg_offering *off,
                                  int64_t default_max_tokens, tg_buf *out, tg_errmsg *err,
                                  tg_translate_param *param)
{
    tg_xl x;
    top t;
    size_t first;
    tg_xl_init(&x, out, req->root.n, err, param, PEER);
    int rc = read_top(&x, req, &t);
    if (rc) return tg_xl_done(&x, rc);
    tg_xl_lit(&x, "{\"model\":");
    tg_xl_lit(&x, off->upstream_json);
    tg_xl_lit(&x, ",\"max_tokens\":");
    tg_xl_i64(&x, req->max_tokens > 0      ? req->max_tokens
                  : default_max_tokens > 0 ? default_max_tokens
                                           : 1);
    if (!(rc = write_system(&x, t.messages, &first)) &&
        !(rc = write_messages(&x, t.messages, first)) && !(rc = write_rest(&x, req, &t)))
        rc = tg_xl_lit(&x, "}");
    return tg_xl_done(&x, rc);
}
