/* Reading Anthropic requests (POST /v1/messages): validation with
 * Anthropic's messages, which name the offending field by its dotted path
 * ("messages.0.role: Input should be 'user' or 'assistant'"), and the
 * canonical prompt of the conversation (tg_sim__prompt, sim_int.h).
 *
 * The canonical prompt is what makes the two dialects agree: `system` is a
 * leading message of role "system" (a string, or its text blocks as text
 * parts), then each message's role and the text it carries, in order:
 * text blocks, and the text of tool_result blocks (a string, or its text
 * blocks). Images, documents and tool_use blocks count 0, as image parts
 * do in OpenAI's dialect. So a conversation of text written in either
 * dialect has the same token count and the same hash, hence the same
 * answer.
 *
 * Fields the sim does not use (temperature, top_p, top_k, metadata,
 * stop_sequences) are checked for their type and range and then ignored;
 * fields it does not know are ignored, so a newer client's extras pass. */
#include "sim/sim_int.h"

#include <stdio.h>
#include <stdlib.h>

/* "path.field: what" (field may be NULL). */
static int at(tg_sim__err *e, const char *path, const char *field, const char *what)
{
    return tg_sim__err_set(e, 400, NULL, "%s%s%s: %s", path, field ? "." : "", field ? field : "",
                           what);
}

static bool absent(tg_json_val v)
{
    return v.type == TG_JSON_NONE || v.type == TG_JSON_NULL;
}

static bool str_is(tg_json_val v, const char *lit)
{
    tg_str s;
    return v.type == TG_JSON_STRING && tg_json_str_view(v, &s) && tg_str_eq(s, tg_str_c(lit));
}

/* Member field of obj must be there and be a string (an object). */
static int need_str(tg_json_val obj, const char *path, const char *field, tg_sim__err *e)
{
    tg_json_val v = tg_json_get(obj, tg_str_c(field));
    if (absent(v)) return at(e, path, field, "Field required");
    if (v.type != TG_JSON_STRING) return at(e, path, field, "Input should be a valid string");
    return TG_OK;
}

static int need_obj(tg_json_val obj, const char *path, const char *field, tg_sim__err *e)
{
    tg_json_val v = tg_json_get(obj, tg_str_c(field));
    if (absent(v)) return at(e, path, field, "Field required");
    if (v.type != TG_JSON_OBJECT) return at(e, path, field, "Input should be a valid dictionary");
    return TG_OK;
}

/* ---- the scalar fields ---- */

/* A tag the sim does not know, quoted as sent (escapes and all). */
static int bad_tag(tg_sim__err *e, const char *path, tg_json_val type, const char *expected)
{
    tg_str t = tg_str_make(type.p + 1, type.n - 2);
    if (t.n > 64) t.n = 64;
    return tg_sim__err_set(e, 400, NULL,
                           "%s.type: Input tag '%.*s' found using 'type' does not match any of "
                           "the expected tags: %s",
                           path, TG_STR_FMT(t), expected);
}

static int read_model(tg_json_val root, tg_arena *a, tg_sim__call *c, tg_sim__err *e)
{
    tg_json_val v = tg_json_get(root, TG_STR("model"));
    int rc;
    if (absent(v)) return at(e, "model", NULL, "Field required");
    if (v.type != TG_JSON_STRING) return at(e, "model", NULL, "Input should be a valid string");
    if ((rc = tg_sim__str_keep(v, a, &c->model, e))) return rc;
    if (!c->model.n) return at(e, "model", NULL, "String should have at least 1 character");
    if (c->model.n > TG_SIM__MAX_MODEL)
        return tg_sim__err_set(e, 400, NULL,
                               "model: the simulated provider accepts names of at most %d bytes",
                               TG_SIM__MAX_MODEL);
    return TG_OK;
}

static int read_max_tokens(tg_json_val root, tg_sim__call *c, tg_sim__err *e)
{
    tg_json_val v = tg_json_get(root, TG_STR("max_tokens"));
    int64_t n;
    if (absent(v)) return at(e, "max_tokens", NULL, "Field required");
    if (v.type != TG_JSON_NUMBER || tg_json_int(v, &n))
        return at(e, "max_tokens", NULL, "Input should be a valid integer");
    if (n < 1) return at(e, "max_tokens", NULL, "Input should be greater than or equal to 1");
    if (n > UINT32_MAX)
        return at(e, "max_tokens", NULL, "Input should be less than or equal to 4294967295");
    c->has_max = true;
    c->max_tokens = (uint32_t)n;
    return TG_OK;
}

/* An optional number in [lo, hi]. A float is fine here: it is a sampling
 * knob the sim only range-checks, never money. */
static int opt_number(tg_json_val root, const char *key, double lo, double hi, tg_arena *a,
                      tg_sim__err *e)
{
    tg_json_val v = tg_json_get(root, tg_str_c(key));
    if (absent(v)) return TG_OK;
    if (v.type != TG_JSON_NUMBER) return at(e, key, NULL, "Input should be a valid number");
    tg_str text = tg_arena_dup(a, tg_str_make(v.p, v.n)); /* strtod needs a NUL */
    if (!text.p) return tg_sim__oom(e);
    double x = strtod(text.p, NULL);
    if (x < lo)
        return tg_sim__err_set(e, 400, NULL, "%s: Input should be greater than or equal to %g", key,
                               lo);
    if (x > hi)
        return tg_sim__err_set(e, 400, NULL, "%s: Input should be less than or equal to %g", key,
                               hi);
    return TG_OK;
}

static int read_options(tg_json_val root, tg_arena *a, tg_sim__call *c, tg_sim__err *e)
{
    tg_json_val stream = tg_json_get(root, TG_STR("stream"));
    tg_json_val top_k = tg_json_get(root, TG_STR("top_k"));
    int64_t k;
    int rc;
    if (!absent(stream) && stream.type != TG_JSON_TRUE && stream.type != TG_JSON_FALSE)
        return at(e, "stream", NULL, "Input should be a valid boolean");
    c->stream = stream.type == TG_JSON_TRUE;
    if ((rc = opt_number(root, "temperature", 0, 1, a, e))) return rc;
    if ((rc = opt_number(root, "top_p", 0, 1, a, e))) return rc;
    if (!absent(top_k) && (top_k.type != TG_JSON_NUMBER || tg_json_int(top_k, &k)))
        return at(e, "top_k", NULL, "Input should be a valid integer");
    if (!absent(top_k) && k < 0)
        return at(e, "top_k", NULL, "Input should be greater than or equal to 0");
    return TG_OK;
}

static int read_metadata(tg_json_val root, tg_sim__err *e)
{
    tg_json_val m = tg_json_get(root, TG_STR("metadata"));
    if (absent(m)) return TG_OK;
    if (m.type != TG_JSON_OBJECT)
        return at(e, "metadata", NULL, "Input should be a valid dictionary");
    /* user_id is the only key Anthropic takes; others are refused as it does */
    tg_json_iter it = tg_json_iter_init(m);
    tg_json_val k, v;
    while (tg_json_iter_next(&it, &k, &v)) {
        tg_str name;
        if (!tg_json_str_view(k, &name) || !tg_str_eq(name, TG_STR("user_id")))
            return at(e, "metadata", NULL, "Extra inputs are not permitted: only user_id");
    }
    tg_json_val uid = tg_json_get(m, TG_STR("user_id"));
    if (absent(uid)) return TG_OK;
    if (uid.type != TG_JSON_STRING)
        return at(e, "metadata.user_id", NULL, "Input should be a valid string");
    /* the escaped length bounds the decoded one from above */
    if (uid.n - 2 > 256) {
        tg_buf b;
        tg_buf_init(&b, uid.n);
        int rc = tg_json_str_decode(uid, &b);
        size_t n = b.n;
        tg_buf_release(&b);
        if (rc) return tg_sim__oom(e);
        if (n > 256)
            return at(e, "metadata.user_id", NULL, "String should have at most 256 characters");
    }
    return TG_OK;
}

static int read_stop_sequences(tg_json_val root, tg_sim__err *e)
{
    tg_json_val s = tg_json_get(root, TG_STR("stop_sequences"));
    if (absent(s)) return TG_OK;
    if (s.type != TG_JSON_ARRAY)
        return at(e, "stop_sequences", NULL, "Input should be a valid list");
    tg_json_iter it = tg_json_iter_init(s);
    tg_json_val k, v;
    for (size_t i = 0; tg_json_iter_next(&it, &k, &v); i++)
        if (v.type != TG_JSON_STRING)
            return tg_sim__err_set(e, 400, NULL,
                                   "stop_sequences.%zu: Input should be a valid string", i);
    return TG_OK;
}

/* ---- content ---- */

static int text_block(tg_sim__prompt *p, tg_json_val b, const char *path, tg_sim__err *e)
{
    int rc = need_str(b, path, "text", e);
    if (rc) return rc;
    tg_json_val t = tg_json_get(b, TG_STR("text"));
    if (t.n == 2) return at(e, path, "text", "text content blocks must be non-empty");
    return tg_sim__prompt_text(p, t, e);
}

/* The content of a tool_result: a string, or text, image and document
 * blocks. */
static int result_content(tg_sim__prompt *p, tg_json_val content, const char *path, tg_sim__err *e)
{
    char sub[128];
    if (absent(content)) return TG_OK;
    if (content.type == TG_JSON_STRING) return tg_sim__prompt_text(p, content, e);
    if (content.type != TG_JSON_ARRAY)
        return at(e, path, "content", "Input should be a valid string or a list of content blocks");
    tg_json_iter it = tg_json_iter_init(content);
    tg_json_val k, b;
    for (size_t j = 0; tg_json_iter_next(&it, &k, &b); j++) {
        snprintf(sub, sizeof sub, "%s.content.%zu", path, j);
        tg_json_val type = tg_json_get(b, TG_STR("type"));
        int rc;
        if (b.type != TG_JSON_OBJECT) return at(e, sub, NULL, "Input should be a valid dictionary");
        if (str_is(type, "text"))
            rc = text_block(p, b, sub, e);
        else if (str_is(type, "image") || str_is(type, "document"))
            rc = need_obj(b, sub, "source", e);
        else if (type.type == TG_JSON_STRING)
            rc = bad_tag(e, sub, type, "'text', 'image', 'document'");
        else
            rc = at(e, sub, "type", "Field required");
        if (rc) return rc;
    }
    return TG_OK;
}

static int tool_use_block(tg_json_val b, const char *path, tg_sim__err *e)
{
    int rc = need_str(b, path, "id", e);
    if (!rc) rc = need_str(b, path, "name", e);
    if (!rc) rc = need_obj(b, path, "input", e);
    return rc;
}

/* One block of a message's content. */
static int block(tg_sim__prompt *p, tg_json_val b, const char *path, tg_sim__err *e)
{
    if (b.type != TG_JSON_OBJECT) return at(e, path, NULL, "Input should be a valid dictionary");
    tg_json_val type = tg_json_get(b, TG_STR("type"));
    if (type.type != TG_JSON_STRING) return at(e, path, "type", "Field required");
    if (str_is(type, "text")) return text_block(p, b, path, e);
    if (str_is(type, "image") || str_is(type, "document")) return need_obj(b, path, "source", e);
    if (str_is(type, "tool_use")) return tool_use_block(b, path, e);
    if (str_is(type, "tool_result")) {
        int rc = need_str(b, path, "tool_use_id", e);
        return rc ? rc : result_content(p, tg_json_get(b, TG_STR("content")), path, e);
    }
    return bad_tag(e, path, type, "'text', 'image', 'document', 'tool_use', 'tool_result'");
}

static int system_prompt(tg_sim__prompt *p, tg_json_val root, tg_sim__err *e)
{
    tg_json_val s = tg_json_get(root, TG_STR("system"));
    char path[48];
    int rc = TG_OK;
    if (absent(s)) return TG_OK;
    if (s.type != TG_JSON_STRING && s.type != TG_JSON_ARRAY)
        return at(e, "system", NULL, "Input should be a valid string or a list of text blocks");
    tg_sim__prompt_role(p, TG_STR("system"));
    if (s.type == TG_JSON_STRING) {
        rc = tg_sim__prompt_text(p, s, e);
    } else {
        tg_json_iter it = tg_json_iter_init(s);
        tg_json_val k, b;
        for (size_t i = 0; !rc && tg_json_iter_next(&it, &k, &b); i++) {
            snprintf(path, sizeof path, "system.%zu", i);
            if (b.type != TG_JSON_OBJECT)
                rc = at(e, path, NULL, "Input should be a valid dictionary");
            else if (!str_is(tg_json_get(b, TG_STR("type")), "text"))
                rc = at(e, path, "type", "Input should be 'text'");
            else
                rc = text_block(p, b, path, e);
        }
    }
    tg_sim__prompt_end_message(p);
    return rc;
}

/* A message's role, decoded and checked, then started in the prompt. */
static int role(tg_sim__prompt *p, tg_json_val m, const char *path, bool *assistant, tg_sim__err *e)
{
    tg_json_val r = tg_json_get(m, TG_STR("role"));
    tg_str text;
    if (absent(r)) return at(e, path, "role", "Field required");
    tg_buf_clear(&p->scratch);
    if (r.type != TG_JSON_STRING || tg_sim__str_text(r, &p->scratch, &text, e) ||
        !(tg_str_eq(text, TG_STR("user")) || tg_str_eq(text, TG_STR("assistant"))))
        return at(e, path, "role", "Input should be 'user' or 'assistant'");
    *assistant = tg_str_eq(text, TG_STR("assistant"));
    tg_sim__prompt_role(p, text);
    return TG_OK;
}

static int message(tg_sim__prompt *p, tg_json_val m, size_t i, bool last, tg_sim__err *e)
{
    char path[48], sub[96];
    bool assistant = false;
    int rc;
    snprintf(path, sizeof path, "messages.%zu", i);
    if (m.type != TG_JSON_OBJECT) return at(e, path, NULL, "Input should be a valid dictionary");
    if ((rc = role(p, m, path, &assistant, e))) return rc;
    tg_json_val content = tg_json_get(m, TG_STR("content"));
    if (absent(content)) return at(e, path, "content", "Field required");
    bool empty = true;
    if (content.type == TG_JSON_STRING) {
        empty = content.n == 2;
        rc = tg_sim__prompt_text(p, content, e);
    } else if (content.type == TG_JSON_ARRAY) {
        tg_json_iter it = tg_json_iter_init(content);
        tg_json_val k, b;
        for (size_t j = 0; !rc && tg_json_iter_next(&it, &k, &b); j++) {
            empty = false;
            snprintf(sub, sizeof sub, "%s.content.%zu", path, j);
            rc = block(p, b, sub, e);
        }
    } else {
        return at(e, path, "content", "Input should be a valid string or a list of content blocks");
    }
    if (rc) return rc;
    if (empty && !(last && assistant))
        return at(e, path, NULL,
                  "all messages must have non-empty content except for the optional final "
                  "assistant message");
    tg_sim__prompt_end_message(p);
    return TG_OK;
}

static int messages(tg_sim__prompt *p, tg_json_val root, tg_sim__err *e)
{
    tg_json_val msgs = tg_json_get(root, TG_STR("messages"));
    if (absent(msgs)) return at(e, "messages", NULL, "Field required");
    if (msgs.type != TG_JSON_ARRAY) return at(e, "messages", NULL, "Input should be a valid list");
    tg_json_iter it = tg_json_iter_init(msgs), ahead = it;
    tg_json_val k, m, next;
    if (!tg_json_iter_next(&ahead, &k, &next))
        return at(e, "messages", NULL, "at least one message is required");
    for (size_t i = 0; tg_json_iter_next(&it, &k, &m); i++) {
        bool last = !tg_json_iter_next(&ahead, &k, &next);
        int rc = message(p, m, i, last, e);
        if (rc) return rc;
    }
    return TG_OK;
}

int tg_sim__parse_messages(const tg_sim_conf *conf, tg_json_val root, tg_arena *a, tg_sim__call *c,
                           tg_sim__err *e)
{
    int rc;
    if ((rc = read_model(root, a, c, e))) return rc;
    if ((rc = read_max_tokens(root, c, e))) return rc;
    if ((rc = read_options(root, a, c, e))) return rc;
    if ((rc = read_metadata(root, e))) return rc;
    if ((rc = read_stop_sequences(root, e))) return rc;
    if ((rc = tg_sim__tools_anthropic(root, a, c, e))) return rc;
    tg_sim__prompt p;
    tg_sim__prompt_init(&p, conf->seed, c->model);
    rc = system_prompt(&p, root, e);
    if (!rc) rc = messages(&p, root, e);
    if (!rc) tg_sim__prompt_done(&p, c);
    tg_sim__prompt_release(&p);
    return rc;
}
