/* An Anthropic Messages request into an OpenAI chat request; see
 * translate.h and the table in docs/anthropic.md.
 *
 * Anthropic keeps a turn's pieces as blocks of one message; OpenAI splits
 * them over messages: an assistant's tool_use blocks become its
 * tool_calls, and each tool_result block of a user message becomes a
 * message of its own (role "tool"). A user message is written as runs in
 * the order of its blocks: each tool_result a tool message, each run of
 * other blocks one user message, so nothing changes order.
 *
 * cache_control marks are dropped: they ask Anthropic to cache a prompt
 * prefix, which changes the price of the call, not its answer, and an
 * OpenAI-compatible provider caches prefixes by itself. That is the one
 * thing this translation leaves out on purpose. */
#include "route/adapters/translate_ctx.h"

#define PEER "this model's OpenAI-compatible provider"
#define MAX_STOP 4 /* OpenAI's limit on stop sequences */

/* The top-level fields the writing needs. */
typedef struct {
    tg_json_val stop, temperature, top_p, tools, tool_choice, metadata;
} top;

/* metadata: user_id is forwarded as `user`; the others are the gateway's
 * attribution keys (gate/tags.h), read there and not forwarded. */
static int read_metadata(tg_xl *x, tg_json_val meta)
{
    static const char *const keys[] = {"user_id", "workspace", "user",       "feature", "workflow",
                                       "run",     "unit",      "unit_count", NULL};
    tg_json_val uid = tg_xl_get(meta, "user_id");
    size_t at = tg_xl_push(x, "metadata");
    int rc = tg_xl_only(x, meta, keys);
    if (!rc && uid.type && uid.type != TG_JSON_STRING)
        rc = tg_xl_fail(x, "user_id", "must be a string");
    tg_xl_pop(x, at);
    return rc;
}

static int top_field(tg_xl *x, tg_str name, tg_json_val v, top *t)
{
    static const struct {
        const char *name;
        size_t off;
    } kept[] = {
        {"stop_sequences", offsetof(top, stop)},
        {"temperature", offsetof(top, temperature)},
        {"top_p", offsetof(top, top_p)},
        {"tools", offsetof(top, tools)},
        {"tool_choice", offsetof(top, tool_choice)},
        {"metadata", offsetof(top, metadata)},
    };
    /* read by tg_anthropic_read_request */
    static const char *const accepted[] = {"model", "max_tokens", "messages", "system", "stream"};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        if (!tg_str_eq(name, tg_str_c(kept[i].name))) continue;
        *(tg_json_val *)((char *)t + kept[i].off) = v;
        return TG_OK;
    }
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++)
        if (tg_str_eq(name, tg_str_c(accepted[i]))) return TG_OK;
    if (tg_str_eq(name, TG_STR("top_k"))) return tg_xl_unsupported(x, "top_k");
    if (tg_str_eq(name, TG_STR("thinking"))) {
        if (tg_xl_is(tg_json_get(v, TG_STR("type")), "disabled")) return TG_OK;
        return tg_xl_fail(x, "thinking", "%s has no extended thinking to turn on; remove it", PEER);
    }
    return tg_xl_unknown(x, name);
}

static int read_top(tg_xl *x, const tg_anthropic_req *req, top *t)
{
    tg_json_iter it = tg_json_iter_init(req->root);
    tg_json_val k, v;
    size_t n = 0;
    int rc;
    memset(t, 0, sizeof *t);
    while (tg_json_iter_next(&it, &k, &v))
        if (v.type != TG_JSON_NULL && (rc = top_field(x, tg_xl_name(x, k), v, t))) return rc;
    if (t->metadata.type && (rc = read_metadata(x, t->metadata))) return rc;
    it = tg_json_iter_init(t->stop);
    while (tg_json_iter_next(&it, NULL, NULL))
        n++;
    if (n > MAX_STOP)
        return tg_xl_fail(x, "stop_sequences", "%s takes at most %d stop sequences", PEER,
                          MAX_STOP);
    return TG_OK;
}

/* ---- blocks ---- */

static int text_part(tg_xl *x, tg_json_val text, size_t *n)
{
    tg_xl_sep(x, n);
    tg_xl_lit(x, "{\"type\":\"text\",\"text\":");
    tg_xl_raw(x, text);
    return tg_xl_lit(x, "}");
}

/* A text block's text, checked. */
static int text_of(tg_xl *x, tg_json_val b, tg_json_val *text)
{
    static const char *const keys[] = {"type", "text", "cache_control", NULL};
    int rc = tg_xl_only(x, b, keys);
    *text = tg_json_get(b, TG_STR("text"));
    if (!rc && text->type != TG_JSON_STRING) rc = tg_xl_fail(x, "text", "must be a string");
    return rc;
}

/* An image block's source as an image URL: base64 data as a data: URL
 * (the raw contents of media_type and data joined: both are JSON string
 * contents, so the join is one), a url source as it is. */
static int image_part(tg_xl *x, tg_json_val b, size_t *n)
{
    static const char *const keys[] = {"type", "source", "cache_control", NULL},
                             *const b64[] = {"type", "media_type", "data", NULL},
                             *const url[] = {"type", "url", NULL};
    tg_json_val src = tg_json_get(b, TG_STR("source")), type = tg_json_get(src, TG_STR("type"));
    tg_json_val media = tg_json_get(src, TG_STR("media_type")),
                data = tg_json_get(src, TG_STR("data"));
    tg_json_val u = tg_json_get(src, TG_STR("url"));
    int rc = tg_xl_only(x, b, keys);
    if (rc) return rc;
    if (src.type != TG_JSON_OBJECT) return tg_xl_fail(x, "source", "must be an object");
    size_t at = tg_xl_push(x, ".source");
    bool is_b64 = tg_xl_is(type, "base64");
    if (!is_b64 && !tg_xl_is(type, "url"))
        rc =
            tg_xl_fail(x, "type", "%s takes images as base64 data or URLs, not %s", PEER,
                       tg_xl_is(type, "file") ? "files uploaded to Anthropic" : "this source type");
    else if (!(rc = tg_xl_only(x, src, is_b64 ? b64 : url))) {
        if (is_b64 && (media.type != TG_JSON_STRING || data.type != TG_JSON_STRING))
            rc = tg_xl_fail(x, NULL, "media_type and data must be strings");
        else if (!is_b64 && u.type != TG_JSON_STRING)
            rc = tg_xl_fail(x, "url", "must be a string");
    }
    tg_xl_pop(x, at);
    if (rc) return rc;
    tg_xl_sep(x, n);
    tg_xl_lit(x, "{\"type\":\"image_url\",\"image_url\":{\"url\":");
    if (!is_b64)
        tg_xl_raw(x, u);
    else {
        tg_xl_lit(x, "\"data:");
        tg_xl_inner(x, media);
        tg_xl_lit(x, ";base64,");
        tg_xl_inner(x, data);
        tg_xl_lit(x, "\"");
    }
    return tg_xl_lit(x, "}}");
}

/* Refuses a block type this side has no place for. */
static int foreign_block(tg_xl *x, tg_json_val type)
{
    if (tg_xl_is(type, "document"))
        return tg_xl_fail(x, "type",
                          "%s cannot take document blocks (PDFs, text documents); send "
                          "the text as text blocks",
                          PEER);
    if (tg_xl_is(type, "thinking") || tg_xl_is(type, "redacted_thinking"))
        return tg_xl_fail(x, "type", "%s cannot take thinking blocks back; remove them", PEER);
    if (tg_xl_is(type, "tool_use") || tg_xl_is(type, "tool_result"))
        return tg_xl_fail(x, "type",
                          "misplaced: tool_use blocks belong in assistant messages, "
                          "tool_result blocks at the top of user messages");
    if (type.type == TG_JSON_STRING)
        return tg_xl_fail(x, "type", "%s cannot take %.*s blocks", PEER, (int)type.n - 2,
                          type.p + 1);
    return tg_xl_fail(x, "type", "field required, a string");
}

/* ---- user messages ---- */

/* A tool_result's content: a string, or text blocks as text parts. */
static int tool_content(tg_xl *x, tg_json_val c, bool error)
{
    if (!c.type) return tg_xl_lit(x, error ? "\"Error\"" : "\"\"");
    if (c.type == TG_JSON_STRING) {
        tg_xl_lit(x, error ? "\"Error: " : "\"");
        tg_xl_inner(x, c);
        return tg_xl_lit(x, "\"");
    }
    if (c.type != TG_JSON_ARRAY)
        return tg_xl_fail(x, "content", "must be a string or an array of blocks");
    tg_json_iter it = tg_json_iter_init(c);
    tg_json_val b, text;
    size_t n = 0;
    int rc = tg_xl_lit(x, "[");
    if (error) n = 1, rc = tg_xl_lit(x, "{\"type\":\"text\",\"text\":\"Error:\"}");
    for (size_t j = 0; !rc && tg_json_iter_next(&it, NULL, &b); j++) {
        size_t at = tg_xl_push(x, ".content[%zu]", j);
        tg_json_val type = tg_json_get(b, TG_STR("type"));
        if (tg_xl_is(type, "text")) {
            if (!(rc = text_of(x, b, &text))) rc = text_part(x, text, &n);
        } else if (tg_xl_is(type, "image")) {
            rc = tg_xl_fail(x, "type",
                            "%s takes text only in tool results; an image cannot be sent there",
                            PEER);
        } else {
            rc = foreign_block(x, type);
        }
        tg_xl_pop(x, at);
    }
    return rc ? rc : tg_xl_lit(x, "]");
}

/* A tool_result block as a role "tool" message. is_error has no place in
 * OpenAI's dialect: the content says it instead, after "Error:". */
static int tool_message(tg_xl *x, tg_json_val b, size_t *nmsg)
{
    static const char *const keys[] = {"type",     "tool_use_id",   "content",
                                       "is_error", "cache_control", NULL};
    tg_json_val id = tg_json_get(b, TG_STR("tool_use_id")), err = tg_xl_get(b, "is_error");
    int rc = tg_xl_only(x, b, keys);
    if (rc) return rc;
    if (id.type != TG_JSON_STRING) return tg_xl_fail(x, "tool_use_id", "must be a string");
    if (err.type && err.type != TG_JSON_TRUE && err.type != TG_JSON_FALSE)
        return tg_xl_fail(x, "is_error", "must be a boolean");
    tg_xl_sep(x, nmsg);
    tg_xl_lit(x, "{\"role\":\"tool\",\"tool_call_id\":");
    tg_xl_raw(x, id);
    tg_xl_lit(x, ",\"content\":");
    rc = tool_content(x, tg_xl_get(b, "content"), err.type == TG_JSON_TRUE);
    return rc ? rc : tg_xl_lit(x, "}");
}

/* A text or image block of a user message as a part. */
static int user_part(tg_xl *x, tg_json_val b, size_t *n)
{
    tg_json_val type = tg_json_get(b, TG_STR("type")), text;
    int rc;
    if (tg_xl_is(type, "image")) return image_part(x, b, n);
    if (!tg_xl_is(type, "text")) return foreign_block(x, type);
    if ((rc = text_of(x, b, &text))) return rc;
    return text_part(x, text, n);
}

/* Whether block b is a text block that stands alone: the next block is
 * a tool_result or there is none. Such a run is written as a string. */
static bool lone_text(tg_json_val b, tg_json_iter it)
{
    tg_json_val next;
    if (!tg_xl_is(tg_json_get(b, TG_STR("type")), "text")) return false;
    if (tg_json_get(b, TG_STR("text")).type != TG_JSON_STRING) return false;
    return !tg_json_iter_next(&it, NULL, &next) ||
           tg_xl_is(tg_json_get(next, TG_STR("type")), "tool_result");
}

/* A user message's blocks, in order: tool messages and user messages. */
static int user_blocks(tg_xl *x, tg_json_val content, size_t *nmsg)
{
    tg_json_iter it = tg_json_iter_init(content);
    tg_json_val b;
    size_t nparts = 0;
    bool open = false;
    int rc = TG_OK;
    for (size_t j = 0; !rc && tg_json_iter_next(&it, NULL, &b); j++) {
        size_t at = tg_xl_push(x, ".content[%zu]", j);
        if (b.type != TG_JSON_OBJECT) {
            rc = tg_xl_fail(x, NULL, "must be an object (a content block)");
        } else if (tg_xl_is(tg_json_get(b, TG_STR("type")), "tool_result")) {
            if (open) tg_xl_lit(x, "]}"), open = false;
            rc = tool_message(x, b, nmsg);
        } else if (!open && lone_text(b, it)) {
            tg_json_val text;
            tg_xl_sep(x, nmsg);
            tg_xl_lit(x, "{\"role\":\"user\",\"content\":");
            if (!(rc = text_of(x, b, &text))) tg_xl_raw(x, text), rc = tg_xl_lit(x, "}");
        } else {
            if (!open)
                tg_xl_sep(x, nmsg), tg_xl_lit(x, "{\"role\":\"user\",\"content\":["), nparts = 0;
            open = true;
            rc = user_part(x, b, &nparts);
        }
        tg_xl_pop(x, at);
    }
    return rc ? rc : open ? tg_xl_lit(x, "]}") : x->rc;
}

/* ---- assistant messages ---- */

/* A tool_use block as a tool call; its input, a JSON object, becomes the
 * arguments string. */
static int tool_call(tg_xl *x, tg_json_val b, size_t *n)
{
    static const char *const keys[] = {"type", "id", "name", "input", "cache_control", NULL};
    tg_json_val id = tg_json_get(b, TG_STR("id")), name = tg_json_get(b, TG_STR("name"));
    tg_json_val input = tg_json_get(b, TG_STR("input"));
    int rc = tg_xl_only(x, b, keys);
    if (rc) return rc;
    if (id.type != TG_JSON_STRING) return tg_xl_fail(x, "id", "must be a string");
    if (name.type != TG_JSON_STRING) return tg_xl_fail(x, "name", "must be a string");
    if (input.type != TG_JSON_OBJECT) return tg_xl_fail(x, "input", "must be an object");
    tg_xl_sep(x, n);
    tg_xl_lit(x, "{\"id\":");
    tg_xl_raw(x, id);
    tg_xl_lit(x, ",\"type\":\"function\",\"function\":{\"name\":");
    tg_xl_raw(x, name);
    tg_xl_lit(x, ",\"arguments\":");
    tg_xl_str(x, tg_str_make(input.p, input.n));
    return tg_xl_lit(x, "}}");
}

/* Checks an assistant message's blocks; counts the texts and tool uses. */
static int assistant_check(tg_xl *x, tg_json_val content, size_t *ntext, size_t *ntool)
{
    tg_json_iter it = tg_json_iter_init(content);
    tg_json_val b, text;
    int rc = TG_OK;
    for (size_t j = 0; !rc && tg_json_iter_next(&it, NULL, &b); j++) {
        size_t at = tg_xl_push(x, ".content[%zu]", j);
        tg_json_val type = tg_json_get(b, TG_STR("type"));
        if (b.type != TG_JSON_OBJECT)
            rc = tg_xl_fail(x, NULL, "must be an object (a content block)");
        else if (tg_xl_is(type, "text"))
            rc = text_of(x, b, &text), (*ntext)++;
        else if (tg_xl_is(type, "tool_use"))
            (*ntool)++;
        else
            rc = foreign_block(x, type);
        tg_xl_pop(x, at);
    }
    return rc;
}

/* An assistant message: its texts as content (one: a string; several:
 * text parts; none: null), its tool_use blocks as tool_calls. Where the
 * texts stood between tool uses is not kept: OpenAI has no place for it. */
static int assistant_blocks(tg_xl *x, tg_json_val content, size_t *nmsg)
{
    size_t ntext = 0, ntool = 0, n = 0, j = 0;
    tg_json_iter it = tg_json_iter_init(content);
    tg_json_val b;
    int rc = assistant_check(x, content, &ntext, &ntool);
    if (rc) return rc;
    tg_xl_sep(x, nmsg);
    tg_xl_lit(x, "{\"role\":\"assistant\",\"content\":");
    tg_xl_lit(x, ntext == 0 ? "null" : ntext > 1 ? "[" : "");
    while (tg_json_iter_next(&it, NULL, &b)) {
        if (!tg_xl_is(tg_json_get(b, TG_STR("type")), "text")) continue;
        if (ntext == 1)
            tg_xl_raw(x, tg_json_get(b, TG_STR("text")));
        else
            text_part(x, tg_json_get(b, TG_STR("text")), &n);
    }
    if (ntext > 1) tg_xl_lit(x, "]");
    if (ntool) tg_xl_lit(x, ",\"tool_calls\":[");
    it = tg_json_iter_init(content);
    for (n = 0; !rc && tg_json_iter_next(&it, NULL, &b); j++) {
        if (!tg_xl_is(tg_json_get(b, TG_STR("type")), "tool_use")) continue;
        size_t at = tg_xl_push(x, ".content[%zu]", j);
        rc = tool_call(x, b, &n);
        tg_xl_pop(x, at);
    }
    if (!rc && ntool) rc = tg_xl_lit(x, "]");
    return rc ? rc : tg_xl_lit(x, "}");
}

/* ---- the request ---- */

static int message(tg_xl *x, tg_json_val m, size_t *nmsg)
{
    static const char *const keys[] = {"role", "content", NULL};
    tg_json_val role = tg_json_get(m, TG_STR("role")), c = tg_json_get(m, TG_STR("content"));
    bool user = tg_xl_is(role, "user");
    int rc = m.type == TG_JSON_OBJECT ? tg_xl_only(x, m, keys)
                                      : tg_xl_fail(x, NULL, "must be an object (a message)");
    if (rc) return rc;
    if (!user && !tg_xl_is(role, "assistant"))
        return tg_xl_fail(x, "role",
                          role.type ? "must be \"user\" or \"assistant\" (the system prompt "
                                      "goes in system)"
                                    : "field required");
    if (c.type == TG_JSON_STRING) {
        tg_xl_sep(x, nmsg);
        tg_xl_lit(x, user ? "{\"role\":\"user\",\"content\":"
                          : "{\"role\":\"assistant\",\"content\":");
        tg_xl_raw(x, c);
        return tg_xl_lit(x, "}");
    }
    tg_json_iter it = tg_json_iter_init(c);
    if (c.type != TG_JSON_ARRAY)
        return tg_xl_fail(x, "content",
                          c.type ? "must be a string or an array of blocks" : "field required");
    if (!tg_json_iter_next(&it, NULL, NULL))
        return tg_xl_fail(x, "content", "must hold at least one block");
    return user ? user_blocks(x, c, nmsg) : assistant_blocks(x, c, nmsg);
}

/* system as a leading system message: a string, or its text blocks (one:
 * a string; several: text parts). An empty system prompt says nothing. */
static int write_system(tg_xl *x, tg_json_val sys, size_t *nmsg)
{
    tg_json_iter it = tg_json_iter_init(sys);
    tg_json_val b, text;
    size_t n = 0, count = 0;
    int rc = TG_OK;
    if (sys.type == TG_JSON_STRING) {
        if (sys.n <= 2) return TG_OK;
        tg_xl_sep(x, nmsg);
        tg_xl_lit(x, "{\"role\":\"system\",\"content\":");
        tg_xl_raw(x, sys);
        return tg_xl_lit(x, "}");
    }
    while (tg_json_iter_next(&it, NULL, NULL))
        count++;
    if (!count) return TG_OK;
    tg_xl_sep(x, nmsg);
    tg_xl_lit(x, count > 1 ? "{\"role\":\"system\",\"content\":["
                           : "{\"role\":\"system\",\"content\":");
    it = tg_json_iter_init(sys);
    for (size_t j = 0; !rc && tg_json_iter_next(&it, NULL, &b); j++) {
        size_t at = tg_xl_push(x, "system[%zu]", j);
        if (!(rc = text_of(x, b, &text)))
            rc = count > 1 ? text_part(x, text, &n) : tg_xl_raw(x, text);
        tg_xl_pop(x, at);
    }
    return rc ? rc : tg_xl_lit(x, count > 1 ? "]}" : "}");
}

static int write_messages(tg_xl *x, const tg_anthropic_req *req)
{
    tg_json_iter it = tg_json_iter_init(req->messages);
    tg_json_val m;
    size_t nmsg = 0;
    int rc = tg_xl_lit(x, ",\"messages\":[");
    if (!rc && req->system.type) rc = write_system(x, req->system, &nmsg);
    for (size_t i = 0; !rc && tg_json_iter_next(&it, NULL, &m); i++) {
        size_t at = tg_xl_push(x, "messages[%zu]", i);
        rc = message(x, m, &nmsg);
        tg_xl_pop(x, at);
    }
    return rc ? rc : tg_xl_lit(x, "]");
}

/* A custom tool as a function tool. Server tools (web search, code
 * execution, ...) run at Anthropic: refused. */
static int tool(tg_xl *x, tg_json_val t, size_t *n)
{
    static const char *const keys[] = {"type",         "name",          "description",
                                       "input_schema", "cache_control", NULL};
    tg_json_val type = tg_xl_get(t, "type"), name = tg_json_get(t, TG_STR("name"));
    tg_json_val desc = tg_xl_get(t, "description"), schema = tg_xl_get(t, "input_schema");
    if (t.type != TG_JSON_OBJECT) return tg_xl_fail(x, NULL, "must be an object");
    if (type.type && !tg_xl_is(type, "custom"))
        return tg_xl_fail(x, "type",
                          "server tools run at Anthropic; %s cannot offer them (only "
                          "tools with a name and an input_schema)",
                          PEER);
    int rc = tg_xl_only(x, t, keys);
    if (rc) return rc;
    if (name.type != TG_JSON_STRING) return tg_xl_fail(x, "name", "must be a string");
    if (desc.type && desc.type != TG_JSON_STRING)
        return tg_xl_fail(x, "description", "must be a string");
    if (schema.type && schema.type != TG_JSON_OBJECT)
        return tg_xl_fail(x, "input_schema", "must be a JSON Schema object");
    tg_xl_sep(x, n);
    tg_xl_lit(x, "{\"type\":\"function\",\"function\":{\"name\":");
    tg_xl_raw(x, name);
    if (desc.type) tg_xl_lit(x, ",\"description\":"), tg_xl_raw(x, desc);
    if (schema.type) tg_xl_lit(x, ",\"parameters\":"), tg_xl_raw(x, schema);
    return tg_xl_lit(x, "}}");
}

static int write_tools(tg_xl *x, tg_json_val tools, size_t *n)
{
    size_t mark = x->out->n;
    tg_json_iter it = tg_json_iter_init(tools);
    tg_json_val t;
    int rc = TG_OK;
    if (!tools.type) return TG_OK;
    tg_xl_lit(x, ",\"tools\":[");
    for (size_t j = 0; !rc && tg_json_iter_next(&it, NULL, &t); j++) {
        size_t at = tg_xl_push(x, "tools[%zu]", j);
        rc = tool(x, t, n);
        tg_xl_pop(x, at);
    }
    if (!rc && !*n) x->out->n = mark; /* an empty list offers nothing */
    return rc ? rc : *n ? tg_xl_lit(x, "]") : x->rc;
}

/* tool_choice {type auto|any|none|tool} as "auto", "required", "none" or
 * a named function; disable_parallel_tool_use as parallel_tool_calls
 * false. Without tools: as in translate_to_anthropic.c. */
static int write_tool_choice(tg_xl *x, tg_json_val c, bool have_tools)
{
    static const char *const keys[] = {"type", "name", "disable_parallel_tool_use", NULL};
    tg_json_val type = tg_json_get(c, TG_STR("type")), name = tg_json_get(c, TG_STR("name"));
    tg_json_val serial = tg_xl_get(c, "disable_parallel_tool_use");
    const char *choice = NULL; /* NULL: a named tool */
    bool forces = true;        /* asks for a tool call: any or a named tool */
    size_t at = tg_xl_push(x, "tool_choice");
    int rc = c.type ? tg_xl_only(x, c, keys) : TG_OK;
    if (rc || !c.type) goto out;
    if (tg_xl_is(type, "auto"))
        choice = "\"auto\"", forces = false;
    else if (tg_xl_is(type, "any"))
        choice = "\"required\"";
    else if (tg_xl_is(type, "none"))
        choice = "\"none\"", forces = false;
    else if (!tg_xl_is(type, "tool"))
        rc = tg_xl_fail(x, "type", "must be auto, any, none or tool");
    else if (name.type != TG_JSON_STRING)
        rc = tg_xl_fail(x, "name", "must be a string");
    if (!rc && serial.type && serial.type != TG_JSON_TRUE && serial.type != TG_JSON_FALSE)
        rc = tg_xl_fail(x, "disable_parallel_tool_use", "must be a boolean");
    if (!rc && !have_tools && forces)
        rc = tg_xl_fail(x, NULL, "asks for a tool call but the request offers no tools");
    if (rc || !have_tools) goto out;
    tg_xl_lit(x, ",\"tool_choice\":");
    if (choice)
        tg_xl_lit(x, choice);
    else
        tg_xl_lit(x, "{\"type\":\"function\",\"function\":{\"name\":"), tg_xl_raw(x, name),
            tg_xl_lit(x, "}}");
    if (serial.type == TG_JSON_TRUE) tg_xl_lit(x, ",\"parallel_tool_calls\":false");
    rc = x->rc;
out:
    tg_xl_pop(x, at);
    return rc;
}

static int write_rest(tg_xl *x, const tg_anthropic_req *req, const top *t)
{
    size_t ntools = 0;
    tg_json_iter it = tg_json_iter_init(t->stop);
    tg_json_val uid = tg_xl_get(t->metadata, "user_id");
    int rc;
    if (tg_json_iter_next(&it, NULL, NULL)) tg_xl_lit(x, ",\"stop\":"), tg_xl_raw(x, t->stop);
    if (t->temperature.type) tg_xl_lit(x, ",\"temperature\":"), tg_xl_raw(x, t->temperature);
    if (t->top_p.type) tg_xl_lit(x, ",\"top_p\":"), tg_xl_raw(x, t->top_p);
    if (req->stream) tg_xl_lit(x, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    if (!(rc = write_tools(x, t->tools, &ntools)) &&
        !(rc = write_tool_choice(x, t->tool_choice, ntools > 0)) && uid.type)
        tg_xl_lit(x, ",\"user\":"), rc = tg_xl_raw(x, uid);
    return rc ? rc : x->rc;
}

int tg_translate_req_to_openai(const tg_anthropic_req *req, const tg_offering *off, tg_buf *out,
                               tg_errmsg *err, tg_translate_param *param)
{
    tg_xl x;
    top t;
    tg_xl_init(&x, out, req->root.n, err, param, PEER);
    int rc = read_top(&x, req, &t);
    if (rc) return tg_xl_done(&x, rc);
    tg_xl_lit(&x, "{\"model\":");
    tg_xl_lit(&x, off->upstream_json);
    if (!(rc = write_messages(&x, req))) {
        tg_xl_lit(&x, ",\"max_tokens\":");
        tg_xl_i64(&x, req->max_tokens);
        if (!(rc = write_rest(&x, req, &t))) rc = tg_xl_lit(&x, "}");
    }
    return tg_xl_done(&x, rc);
}
