/* OpenAI dialect; see openai.h. */
#include "route/adapters/openai.h"

tg_str tg_openai_path(tg_endpoint ep)
{
    switch (ep) {
    case TG_EP_CHAT: return TG_STR("/chat/completions");
    case TG_EP_COMPLETIONS: return TG_STR("/completions");
    default: return TG_STR("/embeddings");
    }
}

/* A whole number member in lo..hi into *out (left as is when v is absent
 * or null); TG_EINVAL naming it otherwise. Members under escaped keys are
 * not seen (the one pass skips them), as OpenAI would not read them. */
static int whole(tg_json_val v, const char *name, int64_t lo, int64_t hi, int64_t *out,
                 tg_errmsg *err, const char **param)
{
    int64_t x;
    if (v.type == TG_JSON_NONE || v.type == TG_JSON_NULL) return TG_OK;
    if (tg_json_int(v, &x) || x < lo || x > hi) {
        *param = name;
        return tg_errmsg_set(err, "%s must be a whole number from %lld to %lld", name, (long long)lo,
                             (long long)hi);
    }
    *out = x;
    return TG_OK;
}

int tg_openai_read_request(tg_str body, tg_endpoint ep, tg_buf *scratch, tg_openai_req *out,
                           tg_errmsg *err, const char **param)
{
    size_t off = 0;
    const char *why = NULL;
    *param = NULL;
    memset(out, 0, sizeof *out);
    if (body.n == 0)
        return tg_errmsg_set(err, "the request body is empty; send a JSON object");
    if (tg_json_validate(body.p, body.n, TG_JSON_NO_DUP_TOPLEVEL, &off, &why))
        return tg_errmsg_set(err, "the request body is not valid JSON: %s at byte %zu", why, off);
    out->root = tg_json_root(body.p, body.n);
    if (out->root.type != TG_JSON_OBJECT)
        return tg_errmsg_set(err, "the request body must be a JSON object");
    /* One pass over the members (the body was validated without duplicate
     * top-level keys, so each is seen once). */
    tg_json_val stream = {0}, max_tokens = {0}, max_completion = {0}, nv = {0}, k, v;
    tg_json_iter it = tg_json_iter_init(out->root);
    int input_rank = 0; /* 3 messages, 2 prompt, 1 input */
    while (tg_json_iter_next(&it, &k, &v)) {
        tg_str name;
        if (!tg_json_str_view(k, &name)) continue; /* escaped keys: looked up below */
        int rank = 0;
        if (tg_str_eq(name, TG_STR("model"))) out->model = v;
        else if (tg_str_eq(name, TG_STR("stream"))) stream = v;
        else if (tg_str_eq(name, TG_STR("stream_options"))) out->stream_options = v;
        else if (tg_str_eq(name, TG_STR("max_tokens"))) max_tokens = v;
        else if (tg_str_eq(name, TG_STR("max_completion_tokens"))) max_completion = v;
        else if (tg_str_eq(name, TG_STR("n"))) nv = v;
        else if (tg_str_eq(name, TG_STR("messages"))) rank = 3;
        else if (tg_str_eq(name, TG_STR("prompt"))) rank = 2;
        else if (tg_str_eq(name, TG_STR("input"))) rank = 1;
        if (rank > input_rank) {
            input_rank = rank;
            out->input = v;
        }
    }
    if (!out->model.type) out->model = tg_json_get(out->root, TG_STR("model"));
    *param = "model";
    if (out->model.type == TG_JSON_NONE)
        return tg_errmsg_set(err, "you must provide a model parameter");
    if (out->model.type != TG_JSON_STRING)
        return tg_errmsg_set(err, "model must be a string");
    if (!tg_json_str_view(out->model, &out->model_name)) {
        tg_buf_clear(scratch);
        if (tg_json_str_decode(out->model, scratch)) return tg_errmsg_set(err, "model is too long");
        out->model_name = tg_buf_str(scratch);
    }
    out->max_tokens = -1;
    out->n = 1;
    if (ep == TG_EP_EMBEDDINGS) {
        *param = NULL;
        return TG_OK;
    }
    if (whole(max_completion, "max_completion_tokens", 0, 100000000, &out->max_tokens, err, param) ||
        (out->max_tokens < 0 &&
         whole(max_tokens, "max_tokens", 0, 100000000, &out->max_tokens, err, param)) ||
        whole(nv, "n", 1, 128, &out->n, err, param))
        return TG_EINVAL;
    if (!stream.type) stream = tg_json_get(out->root, TG_STR("stream"));
    if (!out->stream_options.type) out->stream_options = tg_json_get(out->root, TG_STR("stream_options"));
    *param = "stream";
    if (stream.type == TG_JSON_TRUE) out->stream = true;
    else if (stream.type != TG_JSON_NONE && stream.type != TG_JSON_FALSE && stream.type != TG_JSON_NULL)
        return tg_errmsg_set(err, "stream must be a boolean");
    *param = "stream_options";
    if (out->stream_options.type == TG_JSON_OBJECT) {
        tg_json_val iu = tg_json_get(out->stream_options, TG_STR("include_usage"));
        out->include_usage = iu.type == TG_JSON_TRUE;
    } else if (out->stream_options.type != TG_JSON_NONE && out->stream_options.type != TG_JSON_NULL) {
        return tg_errmsg_set(err, "stream_options must be an object");
    }
    *param = NULL;
    return TG_OK;
}

/* The splice that makes a stream report usage. */
static tg_json_splice usage_splice(const tg_openai_req *req)
{
    tg_json_val so = req->stream_options;
    if (so.type == TG_JSON_OBJECT) {
        tg_json_val iu = tg_json_get(so, TG_STR("include_usage"));
        if (iu.type != TG_JSON_NONE)
            return (tg_json_splice){(size_t)(iu.p - req->root.p), iu.n, TG_STR("true")};
        tg_json_iter it = tg_json_iter_init(so);
        tg_json_val k, v;
        bool empty = !tg_json_iter_next(&it, &k, &v);
        return (tg_json_splice){(size_t)(so.p - req->root.p) + 1, 0,
                                empty ? TG_STR("\"include_usage\":true") : TG_STR("\"include_usage\":true,")};
    }
    if (so.type == TG_JSON_NULL)
        return (tg_json_splice){(size_t)(so.p - req->root.p), so.n, TG_STR("{\"include_usage\":true}")};
    /* Absent: the root has a model member, so it is not empty. */
    return (tg_json_splice){req->root.n - 1, 0, TG_STR(",\"stream_options\":{\"include_usage\":true}")};
}

int tg_openai_upstream_body(tg_str body, const tg_openai_req *req, const tg_offering *off,
                            tg_buf *out)
{
    size_t root_off = (size_t)(req->root.p - body.p);
    tg_json_splice s[2];
    size_t ns = 0;
    s[ns++] = (tg_json_splice){(size_t)(req->model.p - body.p), req->model.n,
                               tg_str_c(off->upstream_json)};
    if (req->stream && !req->include_usage) {
        tg_json_splice u = usage_splice(req);
        u.off += root_off;
        s[ns++] = u;
        if (s[1].off < s[0].off) {
            tg_json_splice t = s[0];
            s[0] = s[1];
            s[1] = t;
        }
    }
    return tg_json_apply(body, s, ns, out);
}

static int64_t int_of(tg_json_val obj, const char *key)
{
    int64_t v = 0;
    if (tg_json_int(tg_json_get(obj, tg_str_c(key)), &v) || v < 0) return 0;
    return v;
}

void tg_openai_usage(tg_json_val obj, tg_usage *u)
{
    tg_json_val usage = tg_json_get(obj, TG_STR("usage"));
    if (usage.type != TG_JSON_OBJECT) return;
    u->present = true;
    u->prompt = int_of(usage, "prompt_tokens");
    u->completion = int_of(usage, "completion_tokens");
    u->total = int_of(usage, "total_tokens");
    u->cached = int_of(tg_json_get(usage, TG_STR("prompt_tokens_details")), "cached_tokens");
    u->reasoning = int_of(tg_json_get(usage, TG_STR("completion_tokens_details")), "reasoning_tokens");
}
