/* Reading the sim's OpenAI requests: validation with OpenAI-like messages
 * that name the offending field, the prompt token count of docs/sim.md, and
 * the prompt hash that seeds each answer; and the canonical prompt both
 * dialects build (tg_sim__prompt, see sim_int.h).
 *
 * The hash covers the decoded text (so "a\u0062" and "ab" are the same
 * prompt), the model and the seed, and nothing else: stream, max_tokens and
 * stream_options never change the words, only how many are sent. */
#include "sim/sim_int.h"

#include "base/hash.h"

#include <stdarg.h>
#include <stdio.h>

/* Scratch for decoding strings that carry escapes; bodies are capped by
 * the server, so a decoded string never exceeds this. */
#define SCRATCH_MAX (64u << 20)

int tg_sim__err_set(tg_sim__err *e, int status, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->status = status;
    e->type = status >= 500 ? "server_error" : "invalid_request_error";
    e->param = param;
    e->code = NULL;
    return TG_EINVAL;
}

const char *tg_sim__type_name(tg_json_type t)
{
    switch (t) {
    case TG_JSON_OBJECT:
        return "an object";
    case TG_JSON_ARRAY:
        return "an array";
    case TG_JSON_STRING:
        return "a string";
    case TG_JSON_NUMBER:
        return "a number";
    case TG_JSON_TRUE:
    case TG_JSON_FALSE:
        return "a boolean";
    case TG_JSON_NULL:
        return "null";
    default:
        return "nothing";
    }
}

static int bad_type(tg_sim__err *e, const char *param, const char *want, tg_json_type got)
{
    return tg_sim__err_set(e, 400, param, "Invalid type for '%s': expected %s, but got %s instead.",
                           param, want, tg_sim__type_name(got));
}

static int missing(tg_sim__err *e, const char *param)
{
    return tg_sim__err_set(e, 400, param, "Missing required parameter: '%s'.", param);
}

int tg_sim__oom(tg_sim__err *e)
{
    tg_sim__err_set(e, 500, NULL, "The simulated provider ran out of memory.");
    return TG_ENOMEM;
}

int tg_sim__str_text(tg_json_val v, tg_buf *scratch, tg_str *out, tg_sim__err *e)
{
    if (tg_json_str_view(v, out)) return TG_OK;
    size_t at = scratch->n;
    if (tg_json_str_decode(v, scratch)) return tg_sim__oom(e);
    *out = tg_str_make(scratch->p + at, scratch->n - at);
    return TG_OK;
}

int tg_sim__str_keep(tg_json_val v, tg_arena *a, tg_str *out, tg_sim__err *e)
{
    if (tg_json_str_view(v, out)) return TG_OK; /* a view into the body */
    tg_buf b;
    tg_buf_init(&b, SCRATCH_MAX);
    int rc = tg_json_str_decode(v, &b);
    if (!rc) *out = tg_arena_dup(a, tg_buf_str(&b));
    tg_buf_release(&b);
    return rc || !out->p ? tg_sim__oom(e) : TG_OK;
}

/* An optional integer in [min, max]; null counts as absent. */
static int opt_uint(tg_json_val obj, const char *key, uint64_t min, uint64_t max, bool *has,
                    uint32_t *out, tg_sim__err *e)
{
    tg_json_val v = tg_json_get(obj, tg_str_c(key));
    int64_t i;
    *has = false;
    if (v.type == TG_JSON_NONE || v.type == TG_JSON_NULL) return TG_OK;
    if (v.type != TG_JSON_NUMBER) return bad_type(e, key, "an integer", v.type);
    if (tg_json_int(v, &i))
        return tg_sim__err_set(e, 400, key, "Invalid '%s': expected an integer, but got %.*s.", key,
                               v.n > 32 ? 32 : (int)v.n, v.p);
    if (i < (int64_t)min)
        return tg_sim__err_set(e, 400, key,
                               "Invalid '%s': integer below minimum value; it must "
                               "be at least %llu, got %lld.",
                               key, (unsigned long long)min, (long long)i);
    if ((uint64_t)i > max)
        return tg_sim__err_set(e, 400, key,
                               "Invalid '%s': integer above maximum value; it must "
                               "be at most %llu, got %lld.",
                               key, (unsigned long long)max, (long long)i);
    *has = true;
    *out = (uint32_t)i;
    return TG_OK;
}

static int opt_bool(tg_json_val obj, const char *key, bool *out, tg_sim__err *e)
{
    tg_json_val v = tg_json_get(obj, tg_str_c(key));
    if (v.type == TG_JSON_NONE || v.type == TG_JSON_NULL) return TG_OK;
    if (v.type != TG_JSON_TRUE && v.type != TG_JSON_FALSE)
        return bad_type(e, key, "a boolean", v.type);
    *out = v.type == TG_JSON_TRUE;
    return TG_OK;
}

static int read_model(tg_json_val root, tg_arena *a, tg_str *out, tg_sim__err *e)
{
    tg_json_val v = tg_json_get(root, TG_STR("model"));
    if (v.type == TG_JSON_NONE || v.type == TG_JSON_NULL)
        return tg_sim__err_set(e, 400, "model", "You must provide a model parameter.");
    if (v.type != TG_JSON_STRING) return bad_type(e, "model", "a string", v.type);
    int rc = tg_sim__str_keep(v, a, out, e);
    if (rc) return rc;
    if (out->n == 0) return tg_sim__err_set(e, 400, "model", "You must provide a model parameter.");
    if (out->n > TG_SIM__MAX_MODEL)
        return tg_sim__err_set(e, 400, "model",
                               "Invalid 'model': the simulated provider accepts names of at "
                               "most %d bytes.",
                               TG_SIM__MAX_MODEL);
    return TG_OK;
}

/* ---- the canonical prompt ---- */

void tg_sim__prompt_init(tg_sim__prompt *p, uint64_t seed, tg_str model)
{
    p->tokens = 0;
    p->h = tg_hash64(model.p, model.n, seed);
    tg_buf_init(&p->scratch, SCRATCH_MAX);
}

void tg_sim__prompt_release(tg_sim__prompt *p)
{
    tg_buf_release(&p->scratch);
}

static void acc_text(tg_sim__prompt *p, tg_str text)
{
    p->tokens += tg_sim_count_tokens(text);
    p->h = tg_hash64(text.p, text.n, p->h);
    p->h = tg_hash64("\x1f", 1, p->h); /* keeps "ab"+"c" apart from "a"+"bc" */
}

void tg_sim__prompt_role(tg_sim__prompt *p, tg_str role)
{
    p->tokens += 3;
    acc_text(p, role);
}

int tg_sim__prompt_text(tg_sim__prompt *p, tg_json_val s, tg_sim__err *e)
{
    tg_str text;
    tg_buf_clear(&p->scratch);
    int rc = tg_sim__str_text(s, &p->scratch, &text, e);
    if (!rc) acc_text(p, text);
    return rc;
}

void tg_sim__prompt_end_message(tg_sim__prompt *p)
{
    p->h = tg_hash64("\x1e", 1, p->h);
}

void tg_sim__prompt_done(tg_sim__prompt *p, tg_sim__call *c)
{
    p->tokens += 3; /* the reply's priming */
    c->prompt_tokens = p->tokens > UINT32_MAX ? UINT32_MAX : (uint32_t)p->tokens;
    c->text_hash = p->h;
}

/* ---- chat ---- */

/* A message's content: a string, null, or an array of parts of which the
 * "text" ones count (images and audio count 0 in the sim). */
static int acc_content(tg_sim__prompt *p, tg_json_val content, size_t i, tg_sim__err *e)
{
    int rc;
    if (content.type == TG_JSON_NONE || content.type == TG_JSON_NULL) return TG_OK;
    if (content.type == TG_JSON_STRING) return tg_sim__prompt_text(p, content, e);
    if (content.type != TG_JSON_ARRAY) {
        return tg_sim__err_set(e, 400, "messages",
                               "Invalid type for 'messages[%zu].content': expected a string or "
                               "an array of content parts, but got %s instead.",
                               i, tg_sim__type_name(content.type));
    }
    tg_json_iter it = tg_json_iter_init(content);
    tg_json_val k, part;
    size_t j = 0;
    for (; tg_json_iter_next(&it, &k, &part); j++) {
        if (part.type != TG_JSON_OBJECT)
            return tg_sim__err_set(e, 400, "messages",
                                   "Invalid type for 'messages[%zu].content[%zu]': expected an "
                                   "object, but got %s instead.",
                                   i, j, tg_sim__type_name(part.type));
        tg_json_val type = tg_json_get(part, TG_STR("type"));
        tg_str t;
        if (type.type != TG_JSON_STRING || !tg_json_str_view(type, &t))
            return tg_sim__err_set(e, 400, "messages",
                                   "Missing required parameter: 'messages[%zu].content[%zu].type'.",
                                   i, j);
        if (!tg_str_eq(t, TG_STR("text"))) continue;
        tg_json_val tv = tg_json_get(part, TG_STR("text"));
        if (tv.type != TG_JSON_STRING)
            return tg_sim__err_set(e, 400, "messages",
                                   "Missing required parameter: 'messages[%zu].content[%zu].text'.",
                                   i, j);
        if ((rc = tg_sim__prompt_text(p, tv, e))) return rc;
    }
    return TG_OK;
}

/* Chat prompt tokens: sum over messages of 3 + tokens(role) +
 * tokens(content), plus 3 for the reply's priming. */
static int acc_messages(tg_sim__prompt *p, tg_json_val root, tg_sim__err *e)
{
    tg_json_val msgs = tg_json_get(root, TG_STR("messages"));
    if (msgs.type == TG_JSON_NONE) return missing(e, "messages");
    if (msgs.type != TG_JSON_ARRAY) return bad_type(e, "messages", "an array", msgs.type);
    tg_json_iter it = tg_json_iter_init(msgs);
    tg_json_val k, m;
    size_t i = 0;
    for (; tg_json_iter_next(&it, &k, &m); i++) {
        if (m.type != TG_JSON_OBJECT)
            return tg_sim__err_set(e, 400, "messages",
                                   "Invalid type for 'messages[%zu]': expected an object, but got "
                                   "%s instead.",
                                   i, tg_sim__type_name(m.type));
        tg_json_val role = tg_json_get(m, TG_STR("role"));
        tg_str rtext;
        int rc;
        if (role.type != TG_JSON_STRING)
            return tg_sim__err_set(e, 400, "messages",
                                   "Missing required parameter: 'messages[%zu].role'.", i);
        tg_buf_clear(&p->scratch);
        if ((rc = tg_sim__str_text(role, &p->scratch, &rtext, e))) return rc;
        tg_sim__prompt_role(p, rtext);
        if ((rc = acc_content(p, tg_json_get(m, TG_STR("content")), i, e))) return rc;
        tg_sim__prompt_end_message(p);
    }
    if (i == 0)
        return tg_sim__err_set(e, 400, "messages",
                               "Invalid 'messages': empty array. Expected an array with minimum "
                               "length 1, but got an empty array instead.");
    return TG_OK;
}

/* ---- embeddings input and completions prompt ---- */

static int item_ints(tg_json_val arr, const char *param, uint64_t *h, uint32_t *n, tg_sim__err *e)
{
    tg_json_iter it = tg_json_iter_init(arr);
    tg_json_val k, v;
    *h = tg_hash64("ids", 3, 0);
    *n = 0;
    while (tg_json_iter_next(&it, &k, &v)) {
        int64_t id;
        if (v.type != TG_JSON_NUMBER || tg_json_int(v, &id) || id < 0)
            return tg_sim__err_set(e, 400, param,
                                   "Invalid '%s': token arrays must hold non-negative integers.",
                                   param);
        *h = tg_hash64(&id, sizeof id, *h);
        (*n)++;
    }
    if (*n == 0)
        return tg_sim__err_set(e, 400, param, "Invalid '%s': a token array must not be empty.",
                               param);
    return TG_OK;
}

static int item_str(tg_json_val v, const char *param, bool allow_empty, tg_buf *scratch,
                    uint64_t *h, uint32_t *n, tg_sim__err *e)
{
    tg_str text;
    int rc;
    tg_buf_clear(scratch);
    if ((rc = tg_sim__str_text(v, scratch, &text, e))) return rc;
    if (!text.n && !allow_empty)
        return tg_sim__err_set(e, 400, param, "Invalid '%s': a string must not be empty.", param);
    *h = tg_hash64(text.p, text.n, 0);
    *n = tg_sim_count_tokens(text);
    return TG_OK;
}

int tg_sim__each_item(tg_json_val input, const char *param, bool allow_empty, tg_sim__item_fn fn,
                      void *ud, tg_sim__err *e)
{
    tg_buf scratch;
    uint64_t h;
    uint32_t n;
    int rc = TG_OK;
    tg_buf_init(&scratch, SCRATCH_MAX);
    if (input.type == TG_JSON_NONE || input.type == TG_JSON_NULL) {
        rc = missing(e, param);
        goto out;
    }
    if (input.type == TG_JSON_STRING) {
        if (!(rc = item_str(input, param, allow_empty, &scratch, &h, &n, e))) rc = fn(ud, h, n, e);
        goto out;
    }
    if (input.type != TG_JSON_ARRAY) {
        rc = bad_type(e, param, "a string or an array", input.type);
        goto out;
    }
    tg_json_iter it = tg_json_iter_init(input);
    tg_json_val k, v, first = {0};
    size_t count = 0;
    if (!tg_json_iter_next(&it, &k, &first)) {
        rc = tg_sim__err_set(e, 400, param, "Invalid '%s': empty array.", param);
        goto out;
    }
    if (first.type == TG_JSON_NUMBER) { /* one token array */
        if (!(rc = item_ints(input, param, &h, &n, e))) rc = fn(ud, h, n, e);
        goto out;
    }
    it = tg_json_iter_init(input);
    while (!rc && tg_json_iter_next(&it, &k, &v)) {
        if (++count > TG_SIM__MAX_INPUTS) {
            rc = tg_sim__err_set(e, 400, param, "Invalid '%s': at most %d items.", param,
                                 TG_SIM__MAX_INPUTS);
        } else if (v.type != first.type || (v.type != TG_JSON_STRING && v.type != TG_JSON_ARRAY)) {
            rc = tg_sim__err_set(e, 400, param,
                                 "Invalid '%s': expected a string, an array of strings, an array "
                                 "of integers or an array of integer arrays.",
                                 param);
        } else if (v.type == TG_JSON_STRING) {
            if (!(rc = item_str(v, param, allow_empty, &scratch, &h, &n, e))) rc = fn(ud, h, n, e);
        } else {
            if (!(rc = item_ints(v, param, &h, &n, e))) rc = fn(ud, h, n, e);
        }
    }
out:
    tg_buf_release(&scratch);
    return rc;
}

static int acc_item(void *ud, uint64_t item_hash, uint32_t tokens, tg_sim__err *e)
{
    tg_sim__prompt *p = ud;
    (void)e;
    p->tokens += tokens;
    p->h = tg_hash64(&item_hash, sizeof item_hash, p->h);
    return TG_OK;
}

/* ---- the three kinds ---- */

static int parse_stream(tg_json_val root, tg_sim__call *c, tg_sim__err *e)
{
    int rc = opt_bool(root, "stream", &c->stream, e);
    if (rc) return rc;
    tg_json_val so = tg_json_get(root, TG_STR("stream_options"));
    if (so.type == TG_JSON_NONE || so.type == TG_JSON_NULL) return TG_OK;
    if (so.type != TG_JSON_OBJECT) return bad_type(e, "stream_options", "an object", so.type);
    if (!c->stream)
        return tg_sim__err_set(e, 400, "stream_options",
                               "The 'stream_options' parameter is only allowed when 'stream' is "
                               "enabled.");
    tg_json_val iu = tg_json_get(so, TG_STR("include_usage"));
    if (iu.type == TG_JSON_TRUE)
        c->include_usage = true;
    else if (iu.type != TG_JSON_NONE && iu.type != TG_JSON_FALSE && iu.type != TG_JSON_NULL)
        return bad_type(e, "stream_options.include_usage", "a boolean", iu.type);
    return TG_OK;
}

/* What chat and completions share: one choice only, and the stream flags. */
static int parse_generation(tg_json_val root, tg_sim__call *c, tg_sim__err *e)
{
    bool has_n;
    uint32_t n;
    int rc = opt_uint(root, "n", 1, 128, &has_n, &n, e);
    if (rc) return rc;
    if (has_n && n > 1)
        return tg_sim__err_set(e, 400, "n",
                               "Invalid 'n': the simulated provider answers with one choice only "
                               "(n must be 1).");
    return parse_stream(root, c, e);
}

static int parse_chat(tg_json_val root, tg_arena *a, tg_sim__prompt *p, tg_sim__call *c,
                      tg_sim__err *e)
{
    bool has_mct;
    uint32_t mct;
    int rc;
    if ((rc = parse_generation(root, c, e))) return rc;
    if ((rc = opt_uint(root, "max_tokens", 1, UINT32_MAX, &c->has_max, &c->max_tokens, e)))
        return rc;
    if ((rc = opt_uint(root, "max_completion_tokens", 1, UINT32_MAX, &has_mct, &mct, e))) return rc;
    if (has_mct) c->has_max = true, c->max_tokens = mct;
    if ((rc = tg_sim__tools_openai(root, a, c, e))) return rc;
    return acc_messages(p, root, e);
}

static int parse_completion(tg_json_val root, tg_sim__prompt *p, tg_sim__call *c, tg_sim__err *e)
{
    int rc;
    if ((rc = parse_generation(root, c, e))) return rc;
    if ((rc = opt_uint(root, "max_tokens", 0, UINT32_MAX, &c->has_max, &c->max_tokens, e)))
        return rc;
    if (!c->has_max) c->has_max = true, c->max_tokens = 16; /* OpenAI's default */
    return tg_sim__each_item(tg_json_get(root, TG_STR("prompt")), "prompt", true, acc_item, p, e);
}

static int parse_embedding(const tg_sim_conf *conf, tg_json_val root, tg_sim__prompt *p,
                           tg_sim__call *c, tg_sim__err *e)
{
    bool has_dims;
    int rc;
    tg_json_val fmt = tg_json_get(root, TG_STR("encoding_format"));
    tg_str f;
    if (fmt.type == TG_JSON_STRING && tg_json_str_view(fmt, &f) && tg_str_eq(f, TG_STR("base64")))
        c->base64 = true;
    else if (!(fmt.type == TG_JSON_NONE || fmt.type == TG_JSON_NULL ||
               (fmt.type == TG_JSON_STRING && tg_json_str_view(fmt, &f) &&
                tg_str_eq(f, TG_STR("float")))))
        return tg_sim__err_set(e, 400, "encoding_format",
                               "Invalid 'encoding_format': must be \"float\" or \"base64\".");
    if ((rc = opt_uint(root, "dimensions", 1, TG_SIM__MAX_DIMS, &has_dims, &c->dims, e))) return rc;
    if (!has_dims) c->dims = conf->embedding_dims ? conf->embedding_dims : 16;
    if (c->dims > TG_SIM__MAX_DIMS) c->dims = TG_SIM__MAX_DIMS;
    c->input = tg_json_get(root, TG_STR("input"));
    return tg_sim__each_item(c->input, "input", false, acc_item, p, e);
}

/* Counts the items of an input, to bound the size of the answer. */
static int count_item(void *ud, uint64_t h, uint32_t tokens, tg_sim__err *e)
{
    (void)h, (void)tokens, (void)e;
    (*(size_t *)ud)++;
    return TG_OK;
}

/* Embeddings: the answer's size is bounded before anything is built. */
static int embed_bound(tg_sim__call *c, tg_sim__err *e)
{
    size_t items = 0;
    tg_sim__each_item(c->input, "input", false, count_item, &items, e);
    if ((uint64_t)items * c->dims > TG_SIM__MAX_FLOATS)
        return tg_sim__err_set(e, 400, "input",
                               "Too much to embed: %zu inputs of %u dimensions exceed the "
                               "simulated provider's %u floats per request.",
                               items, c->dims, TG_SIM__MAX_FLOATS);
    return TG_OK;
}

static int parse_openai(const tg_sim_conf *conf, tg_json_val root, tg_arena *a, tg_sim__call *c,
                        tg_sim__err *e)
{
    int rc;
    if ((rc = read_model(root, a, &c->model, e))) return rc;
    tg_sim__prompt p;
    tg_sim__prompt_init(&p, conf->seed, c->model);
    switch (c->kind) {
    case TG_SIM__CHAT:
        if (!(rc = parse_chat(root, a, &p, c, e))) tg_sim__prompt_done(&p, c);
        break;
    case TG_SIM__COMPLETION:
        rc = parse_completion(root, &p, c, e);
        break;
    default:
        if (!(rc = parse_embedding(conf, root, &p, c, e))) rc = embed_bound(c, e);
        break;
    }
    if (!rc && c->kind != TG_SIM__CHAT) { /* no message framing: the items alone */
        c->prompt_tokens = p.tokens > UINT32_MAX ? UINT32_MAX : (uint32_t)p.tokens;
        c->text_hash = p.h;
    }
    tg_sim__prompt_release(&p);
    return rc;
}

int tg_sim__parse(const tg_sim_conf *conf, tg_sim__kind kind, tg_str body, tg_arena *a,
                  tg_sim__call *c, tg_sim__err *e)
{
    size_t off = 0;
    const char *why = "empty body";
    memset(c, 0, sizeof *c);
    c->kind = kind;
    if (!body.n || tg_json_validate(body.p, body.n, 0, &off, &why))
        return tg_sim__err_set(e, 400, NULL,
                               "We could not parse the JSON body of your request: %s at byte %zu. "
                               "The body must be a JSON object.",
                               why, off);
    tg_json_val root = tg_json_root(body.p, body.n);
    if (root.type != TG_JSON_OBJECT)
        return tg_sim__err_set(e, 400, NULL,
                               "The JSON body of your request must be an object, not %s.",
                               tg_sim__type_name(root.type));
    if (kind == TG_SIM__MESSAGES) return tg_sim__parse_messages(conf, root, a, c, e);
    return parse_openai(conf, root, a, c, e);
}

uint32_t tg_sim_count_tokens(tg_str text)
{
    const unsigned char *s = (const unsigned char *)text.p;
    uint32_t n = 0;
    bool in_run = false;
    for (size_t i = 0; i < text.n; i++) {
        unsigned c = s[i];
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (alnum) {
            n += !in_run;
            in_run = true;
            continue;
        }
        in_run = false;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') continue;
        if ((c & 0xc0) == 0x80) continue; /* UTF-8 continuation: its lead byte counted */
        n++;
    }
    return n;
}
