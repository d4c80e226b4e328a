/* The OpenAI dialect: reading a client's request, writing the upstream
 * request for an OpenAI-compatible provider, and reading usage back.
 *
 * The upstream body is the client's body with as few bytes changed as the
 * gateway needs: the model value becomes the offering's upstream name, and
 * a stream gets stream_options.include_usage = true so that usage is
 * always captured (the relay hides the usage chunk from a client that did
 * not ask for it). Every other byte, unknown fields included, passes as it
 * came. */
#ifndef TG_ROUTE_ADAPTERS_OPENAI_H
#define TG_ROUTE_ADAPTERS_OPENAI_H

#include "base/buf.h"
#include "base/err.h"
#include "base/json.h"
#include "conf/config.h"

/* The gateway's inference endpoints; MESSAGES is Anthropic's (anthropic.h). */
typedef enum { TG_EP_CHAT, TG_EP_COMPLETIONS, TG_EP_EMBEDDINGS, TG_EP_MESSAGES } tg_endpoint;

/* Token counts as a provider reports them, in OpenAI's convention
 * whatever the dialect, so each is counted once: cached (cache reads) and
 * cache_write are part of prompt, reasoning part of completion. An
 * Anthropic adapter adds its input, cache read and cache creation counts
 * into prompt. */
typedef struct {
    bool present;
    int64_t prompt, completion, cached, cache_write, reasoning, total;
} tg_usage;

/* What the gateway reads of a client's request. Views into the body. */
typedef struct {
    tg_json_val root;
    tg_json_val model;        /* the string value, quotes included */
    tg_str model_name;        /* decoded */
    bool stream;
    bool include_usage;       /* the client asked for the usage chunk */
    tg_json_val stream_options;
    tg_json_val input;        /* messages, else prompt, else input: its size is
                                 metering's estimate of the input tokens */
    int64_t max_tokens;       /* max_completion_tokens, else max_tokens; -1: neither */
    int64_t n;                /* choices asked for (n), default 1 */
} tg_openai_req;

/* Validates body as a JSON object with a string "model" (and, for chat
 * and completions, boolean "stream", object "stream_options", whole
 * numbers "max_tokens" / "max_completion_tokens" (0..100000000) and "n"
 * (1..128) when present). The message in err is meant for the client; `param` is set to
 * the offending field's name or NULL. Decoded strings live in scratch. */
int tg_openai_read_request(tg_str body, tg_endpoint ep, tg_buf *scratch, tg_openai_req *out,
                           tg_errmsg *err, const char **param);
/* The upstream body for offering off. */
int tg_openai_upstream_body(tg_str body, const tg_openai_req *req, const tg_offering *off,
                            tg_buf *out);
/* "/chat/completions", "/completions", "/embeddings". */
tg_str tg_openai_path(tg_endpoint ep);
/* Reads obj.usage (a response or a stream chunk) into u when present. */
void tg_openai_usage(tg_json_val obj, tg_usage *u);

#endif
