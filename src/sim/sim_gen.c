/* Generating the sim's answers: the plan of an answer (its length and
 * what it says), whole bodies and stream events in OpenAI's shapes (text
 * and tool calls), embedding vectors; Anthropic's bodies and events are in
 * sim_msg_gen.c, reached through the same entry points.
 *
 * Every word of the vocabulary is plain lowercase ASCII letters, so it is
 * one token by tg_sim_count_tokens, and " word" is one token too: an answer
 * of C words is exactly C completion tokens by the sim's own counting.
 * Streams and whole bodies draw the same words from the same PRNG, so the
 * concatenated deltas of a stream equal the whole body's content; a tool
 * call's stream sends the pieces of the same arguments text. */
#include "sim/sim_int.h"

#include "base/hash.h"
#include "base/jsonw.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Each entry is " word"; the first word of an answer drops the space. */
static const char *const vocab[64] = {
    " the",    " model",  " gateway", " token",  " answer", " simple", " quiet",  " river",
    " stone",  " light",  " cloud",   " paper",  " green",  " small",  " large",  " early",
    " later",  " north",  " south",   " water",  " field",  " house",  " music",  " table",
    " chair",  " window", " garden",  " market", " signal", " number", " letter", " bridge",
    " forest", " planet", " orbit",   " silver", " copper", " engine", " margin", " ledger",
    " credit", " budget", " report",  " stream", " packet", " socket", " buffer", " kernel",
    " thread", " cache",  " route",   " meter",  " price",  " value",  " order",  " ready",
    " steady", " bright", " gentle",  " rapid",  " clear",  " fresh",  " sharp",  " calm",
};

tg_str tg_sim__word(tg_rng *rng, bool first)
{
    const char *w = vocab[tg_rng_below(rng, 64)];
    return first ? tg_str_c(w + 1) : tg_str_c(w);
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((rc = (x))) return rc;                                                                 \
    } while (0)

/* ---- the plan ---- */

/* A forced call: its arguments, cut like a text answer by the limit, and
 * when cut, the complete properties as an object for Anthropic's "input"
 * (the stream's partial JSON is what a client parses as it goes). */
static int plan_tool(const tg_sim__call *c, tg_sim__plan *p)
{
    int rc;
    p->tool = true;
    TRY(tg_sim__tool_args(&p->args, c, p->rng, SIZE_MAX));
    p->tokens = tg_sim_count_tokens(tg_buf_str(&p->args));
    if (!c->has_max || c->max_tokens >= p->tokens) return TG_OK;
    size_t at = 0;
    for (uint32_t i = 0; i < c->max_tokens; i++)
        tg_sim__token_piece(tg_buf_str(&p->args), &at);
    p->args.n = at;
    p->tokens = c->max_tokens;
    p->length = true;
    return tg_sim__tool_args(&p->input, c, p->rng, at);
}

int tg_sim__plan_make(const tg_sim_conf *conf, const tg_sim__call *c, tg_sim__plan *p)
{
    uint32_t lo = conf->completion_min, hi = conf->completion_max;
    if (hi < lo) hi = lo;
    *p = (tg_sim__plan){.rng = {c->text_hash}};
    tg_buf_init(&p->args, TG_SIM__MAX_BODY);
    tg_buf_init(&p->input, TG_SIM__MAX_BODY);
    /* the natural length comes first, so max_tokens cuts a prefix of the
     * same words */
    uint32_t natural = lo + (uint32_t)tg_rng_below(&p->rng, (uint64_t)hi - lo + 1);
    if (c->tool_forced) return plan_tool(c, p);
    p->tokens = natural;
    if (c->has_max && c->max_tokens < natural) {
        p->tokens = c->max_tokens;
        p->length = true;
    }
    return TG_OK;
}

void tg_sim__plan_release(tg_sim__plan *p)
{
    tg_buf_release(&p->args);
    tg_buf_release(&p->input);
}

tg_str tg_sim__piece(tg_sim__plan *p, bool first)
{
    return p->tool ? tg_sim__token_piece(tg_buf_str(&p->args), &p->at)
                   : tg_sim__word(&p->rng, first);
}

tg_str tg_sim__plan_input(const tg_sim__plan *p)
{
    return p->length ? tg_buf_str(&p->input) : tg_buf_str(&p->args);
}

/* ---- the head ---- */

int tg_sim__head_init(tg_sim__ctx *sim, tg_sim__head *h, const tg_sim__call *c)
{
    uint64_t x = tg_sim__unique(sim);
    uint64_t y = tg_hash64("call", 4, x);
    bool anth = c->kind == TG_SIM__MESSAGES;
    const char *prefix = anth                      ? "msg_sim_"
                         : c->kind == TG_SIM__CHAT ? "chatcmpl-sim-"
                                                   : "cmpl-sim-";
    int rc;
    h->kind = c->kind;
    snprintf(h->id, sizeof h->id, "%s%016llx", prefix, (unsigned long long)x);
    snprintf(h->call_id, sizeof h->call_id, "%s%016llx", anth ? "toolu_sim_" : "call_sim_",
             (unsigned long long)y);
    h->req_id[0] = '\0';
    if (anth) snprintf(h->req_id, sizeof h->req_id, "req_sim_%016llx", (unsigned long long)x);
    h->created = (int64_t)time(NULL);
    h->include_usage = c->include_usage;
    h->cached_want = c->cached_want;
    h->cache_write_want = c->cache_write_want;
    tg_buf_init(&h->model_json, 8 * TG_SIM__MAX_MODEL);
    tg_buf_init(&h->tool_json, 8 * 128);
    TRY(tg_jsonw_str(&h->model_json, c->model));
    return c->tool_forced ? tg_jsonw_str(&h->tool_json, c->tool_name) : TG_OK;
}

void tg_sim__head_release(tg_sim__head *h)
{
    tg_buf_release(&h->model_json);
    tg_buf_release(&h->tool_json);
}

size_t tg_sim__head_headers(const tg_sim__head *h, tg_header *out)
{
    if (!h->req_id[0]) return 0;
    out[0] = (tg_header){TG_STR("request-id"), tg_str_c(h->req_id)};
    return 1;
}

tg_sim__cache tg_sim__cache_of(const tg_sim__head *h, uint32_t prompt)
{
    tg_sim__cache k;
    k.read = h->cached_want < prompt ? h->cached_want : prompt;
    k.write = h->cache_write_want < prompt - k.read ? h->cache_write_want : prompt - k.read;
    return k;
}

/* ---- OpenAI bodies ---- */

static int usage(tg_buf *b, const tg_sim__head *h, uint32_t prompt, uint32_t completion)
{
    int rc =
        tg_buf_printf(b, "{\"prompt_tokens\":%u,\"completion_tokens\":%u,\"total_tokens\":%llu",
                      prompt, completion, (unsigned long long)prompt + completion);
    if (rc) return rc;
    if (h->kind == TG_SIM__CHAT)
        TRY(tg_buf_printf(b,
                          ",\"prompt_tokens_details\":{\"cached_tokens\":%u},"
                          "\"completion_tokens_details\":{\"reasoning_tokens\":0}",
                          tg_sim__cache_of(h, prompt).read));
    return tg_buf_add_char(b, '}');
}

/* {"id":...,"object":...,"created":...,"model":...,"system_fingerprint":"fp_sim","choices":[ */
static int obj_head(tg_buf *b, const tg_sim__head *h, const char *object)
{
    int rc;
    TRY(tg_buf_printf(b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", h->id,
                      object, (long long)h->created));
    TRY(tg_buf_add_str(b, tg_buf_str(&h->model_json)));
    return tg_buf_add_lit(b, ",\"system_fingerprint\":\"fp_sim\",\"choices\":[");
}

static const char *finish_reason(const tg_sim__plan *plan)
{
    return plan->length ? "length" : plan->tool ? "tool_calls" : "stop";
}

/* "tool_calls":[{...,"function":{"name":N,"arguments":A}}] with A the
 * whole arguments (buffered) or "" (the stream's first chunk). */
static int tool_calls(tg_buf *b, const tg_sim__head *h, bool indexed, tg_str args)
{
    int rc;
    TRY(tg_buf_printf(b,
                      "\"tool_calls\":[{%s\"id\":\"%s\",\"type\":\"function\",\"function\":"
                      "{\"name\":",
                      indexed ? "\"index\":0," : "", h->call_id));
    TRY(tg_buf_add_str(b, tg_buf_str(&h->tool_json)));
    TRY(tg_buf_add_lit(b, ",\"arguments\":"));
    TRY(tg_jsonw_str(b, args));
    return tg_buf_add_lit(b, "}}]");
}

static int chat_message(tg_buf *b, const tg_sim__head *h, tg_sim__plan *plan)
{
    int rc;
    if (plan->tool) {
        TRY(tg_buf_add_lit(b,
                           "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,"));
        TRY(tool_calls(b, h, false, tg_buf_str(&plan->args)));
        return tg_buf_add_lit(b, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"");
    }
    TRY(tg_buf_add_lit(b, "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\""));
    /* words need no escaping: they are lowercase letters and spaces */
    for (uint32_t i = 0; i < plan->tokens; i++)
        TRY(tg_buf_add_str(b, tg_sim__piece(plan, !i)));
    return tg_buf_add_lit(b, "\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"");
}

int tg_sim__body(tg_buf *b, const tg_sim__head *h, tg_sim__plan *plan, uint32_t prompt)
{
    int rc;
    if (h->kind == TG_SIM__MESSAGES) return tg_sim__msg_body(b, h, plan, prompt);
    if (h->kind == TG_SIM__CHAT) {
        TRY(obj_head(b, h, "chat.completion"));
        TRY(chat_message(b, h, plan));
    } else {
        TRY(obj_head(b, h, "text_completion"));
        TRY(tg_buf_add_lit(b, "{\"text\":\""));
        for (uint32_t i = 0; i < plan->tokens; i++)
            TRY(tg_buf_add_str(b, tg_sim__piece(plan, !i)));
        TRY(tg_buf_add_lit(b, "\",\"index\":0,\"logprobs\":null,\"finish_reason\":\""));
    }
    TRY(tg_buf_printf(b, "%s\"}],\"usage\":", finish_reason(plan)));
    TRY(usage(b, h, prompt, plan->tokens));
    return tg_buf_add_char(b, '}');
}

/* ---- OpenAI stream events ---- */

static int ev_open(tg_buf *b, const tg_sim__head *h)
{
    int rc;
    TRY(tg_buf_add_lit(b, "data: "));
    return obj_head(b, h, h->kind == TG_SIM__CHAT ? "chat.completion.chunk" : "text_completion");
}

/* OpenAI puts "usage":null in every chunk but the last when include_usage
 * is on. */
static int ev_close(tg_buf *b, const tg_sim__head *h)
{
    return h->include_usage ? tg_buf_add_lit(b, "],\"usage\":null}\n\n")
                            : tg_buf_add_lit(b, "]}\n\n");
}

int tg_sim__ev_begin(tg_buf *b, const tg_sim__head *h, const tg_sim__plan *plan, uint32_t prompt)
{
    int rc;
    if (h->kind == TG_SIM__MESSAGES) return tg_sim__msg_ev_begin(b, h, plan, prompt);
    if (h->kind != TG_SIM__CHAT) return TG_OK; /* legacy completions have no role chunk */
    TRY(ev_open(b, h));
    if (plan->tool) { /* the call's index, id and name come first */
        TRY(tg_buf_add_lit(b, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,"));
        TRY(tool_calls(b, h, true, TG_STR("")));
        TRY(tg_buf_add_lit(b, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}"));
    } else {
        TRY(tg_buf_add_lit(b, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
                              "\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}"));
    }
    return ev_close(b, h);
}

int tg_sim__ev_piece(tg_buf *b, const tg_sim__head *h, const tg_sim__plan *plan, tg_str piece)
{
    int rc;
    if (h->kind == TG_SIM__MESSAGES) return tg_sim__msg_ev_piece(b, plan, piece);
    TRY(ev_open(b, h));
    if (plan->tool) {
        TRY(tg_buf_add_lit(b, "{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
                              "{\"arguments\":"));
        TRY(tg_jsonw_str(b, piece));
        TRY(tg_buf_add_lit(b, "}}]},\"logprobs\":null,\"finish_reason\":null}"));
        return ev_close(b, h);
    }
    TRY(h->kind == TG_SIM__CHAT ? tg_buf_add_lit(b, "{\"index\":0,\"delta\":{\"content\":\"")
                                : tg_buf_add_lit(b, "{\"text\":\""));
    TRY(tg_buf_add_str(b, piece));
    TRY(h->kind == TG_SIM__CHAT
            ? tg_buf_add_lit(b, "\"},\"logprobs\":null,\"finish_reason\":null}")
            : tg_buf_add_lit(b, "\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}"));
    return ev_close(b, h);
}

int tg_sim__ev_end(tg_buf *b, const tg_sim__head *h, const tg_sim__plan *plan, uint32_t prompt,
                   uint32_t completion)
{
    const char *why = finish_reason(plan);
    int rc;
    if (h->kind == TG_SIM__MESSAGES) return tg_sim__msg_ev_end(b, plan, completion);
    TRY(ev_open(b, h));
    TRY(h->kind == TG_SIM__CHAT
            ? tg_buf_printf(
                  b, "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"%s\"}", why)
            : tg_buf_printf(
                  b, "{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"%s\"}",
                  why));
    TRY(ev_close(b, h));
    if (h->include_usage) {
        TRY(ev_open(b, h));
        TRY(tg_buf_add_lit(b, "],\"usage\":"));
        TRY(usage(b, h, prompt, completion));
        TRY(tg_buf_add_lit(b, "}\n\n"));
    }
    return tg_sim__ev_last(b, h);
}

int tg_sim__ev_last(tg_buf *b, const tg_sim__head *h)
{
    if (h->kind == TG_SIM__MESSAGES) return tg_sim__msg_ev_last(b);
    return tg_buf_add_lit(b, "data: [DONE]\n\n");
}

/* ---- embeddings ---- */

/* Newton's method: the build links no libm, and this is not a hot path. */
static double root2(double s)
{
    if (s <= 0) return 0;
    double x = s > 1 ? s : 1;
    for (int i = 0; i < 200; i++) {
        double y = 0.5 * (x + s / x);
        if (y >= x) break; /* converged: Newton from above decreases strictly */
        x = y;
    }
    return x;
}

static int b64(tg_buf *b, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int rc;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        char out[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63], i + 1 < n ? tab[v >> 6 & 63] : '=',
                       i + 2 < n ? tab[v & 63] : '='};
        TRY(tg_buf_append(b, out, 4));
    }
    return TG_OK;
}

typedef struct {
    tg_buf *b;
    const tg_sim__call *c;
    uint64_t base;
    uint32_t index;
    float *vec;         /* c->dims floats */
    unsigned char *raw; /* 4 * c->dims bytes, for base64 */
} embed_ctx;

static int embed_item(void *ud, uint64_t item_hash, uint32_t tokens, tg_sim__err *e)
{
    embed_ctx *x = ud;
    uint32_t dims = x->c->dims;
    tg_rng rng = {tg_hash64(&item_hash, sizeof item_hash, x->base)};
    double sum = 0;
    int rc;
    (void)tokens, (void)e;
    for (uint32_t i = 0; i < dims; i++) {
        double v = (double)(tg_rng_next(&rng) >> 11) / 9007199254740992.0 * 2 - 1;
        x->vec[i] = (float)v;
        sum += v * v;
    }
    double norm = root2(sum);
    if (norm > 0)
        for (uint32_t i = 0; i < dims; i++)
            x->vec[i] = (float)(x->vec[i] / norm);
    TRY(tg_buf_printf(x->b, "%s{\"object\":\"embedding\",\"index\":%u,\"embedding\":",
                      x->index ? "," : "", x->index));
    x->index++;
    if (x->c->base64) {
        for (uint32_t i = 0; i < dims; i++) {
            uint32_t u;
            memcpy(&u, &x->vec[i], 4);
            x->raw[4 * i] = (unsigned char)u, x->raw[4 * i + 1] = (unsigned char)(u >> 8);
            x->raw[4 * i + 2] = (unsigned char)(u >> 16),
                           x->raw[4 * i + 3] = (unsigned char)(u >> 24);
        }
        TRY(tg_buf_add_char(x->b, '"'));
        TRY(b64(x->b, x->raw, 4 * (size_t)dims));
        TRY(tg_buf_add_char(x->b, '"'));
    } else {
        TRY(tg_buf_add_char(x->b, '['));
        for (uint32_t i = 0; i < dims; i++)
            TRY(tg_buf_printf(x->b, "%s%.9g", i ? "," : "", (double)x->vec[i]));
        TRY(tg_buf_add_char(x->b, ']'));
    }
    return tg_buf_add_char(x->b, '}');
}

int tg_sim__body_embeddings(tg_buf *b, const tg_sim_conf *conf, const tg_sim__call *c)
{
    embed_ctx x = {.b = b, .c = c, .base = tg_hash64(c->model.p, c->model.n, conf->seed)};
    tg_sim__err e;
    int rc = TG_ENOMEM;
    x.vec = malloc(sizeof(float) * c->dims);
    x.raw = malloc(4 * (size_t)c->dims);
    if (!x.vec || !x.raw) goto out;
    if ((rc = tg_buf_add_lit(b, "{\"object\":\"list\",\"data\":["))) goto out;
    /* parsed before, so the walk cannot fail on the input itself */
    if ((rc = tg_sim__each_item(c->input, "input", false, embed_item, &x, &e))) goto out;
    if ((rc = tg_buf_add_lit(b, "],\"model\":"))) goto out;
    if ((rc = tg_jsonw_str(b, c->model))) goto out;
    rc = tg_buf_printf(b, ",\"usage\":{\"prompt_tokens\":%u,\"total_tokens\":%u}}",
                       c->prompt_tokens, c->prompt_tokens);
out:
    free(x.vec);
    free(x.raw);
    return rc;
}
