/* Translation between the OpenAI chat dialect and the Anthropic Messages
 * dialect, non-stream bodies, both ways: requests (a client's body into
 * the provider's dialect), answers (the provider's body back into the
 * client's dialect) and error bodies. Pure functions: no I/O, no clock.
 * docs/anthropic.md has the mapping tables.
 *
 * The rule: what a request asks for reaches the provider with the same
 * meaning, or the request is refused with TG_EINVAL, a message for the
 * client in err that names the field and says why, and the field's path
 * in param ("messages[2].content[0].type"). Nothing is dropped silently.
 * One thing is dropped on purpose: Anthropic's cache_control marks, which
 * change what a call costs, not what it answers (an OpenAI-compatible
 * provider caches prompt prefixes by itself). Members whose value is null
 * are read as absent, as both dialects do. A few fields are the gateway's
 * own business and are accepted without being forwarded: OpenAI's
 * stream_options (an Anthropic stream always carries usage) and metadata,
 * and the attribution keys of Anthropic's metadata (gate/tags.h).
 *
 * Output is appended to the caller's tg_buf and is always one valid JSON
 * value. It grows by at most about twice the input plus a few dozen bytes
 * per message, block or tool, and never past the buffer's cap (TG_ETOOBIG
 * then). Scratch memory is bounded by the input's size and freed before
 * return. On any failure out is left as it was on entry.
 *
 * Results: TG_OK; TG_EINVAL (err says why; for requests, param names the
 * field); TG_ETOOBIG (out's cap); TG_ENOMEM. */
#ifndef TG_ROUTE_ADAPTERS_TRANSLATE_H
#define TG_ROUTE_ADAPTERS_TRANSLATE_H

#include "route/adapters/anthropic.h"

#define TG_TRANSLATE_PARAM_MAX 128

/* The path of the field a refusal is about, in the client's request
 * ("tools[1].function.strict"), "" when it names none. Long paths are
 * truncated. */
typedef struct {
    char name[TG_TRANSLATE_PARAM_MAX];
} tg_translate_param;

/* ---- requests ---- */

/* An OpenAI client's chat request (read by tg_openai_read_request, so
 * req's root is validated) into a Messages request for offering off, an
 * Anthropic provider: leading system and developer messages become
 * `system`; user, assistant and tool messages become content blocks
 * (text, image, tool_use, tool_result), adjacent messages of one
 * Anthropic role merged into one message; the model becomes
 * off->upstream_json; max_tokens is max_completion_tokens, else
 * max_tokens, else default_max_tokens (>= 1: Anthropic requires it).
 * Refused: what Claude cannot honour (n > 1, logprobs, logit_bias,
 * penalties, seed, response_format other than text, audio, prediction,
 * reasoning_effort, temperature above 1, ...) and every field it does not
 * know. */
int tg_translate_req_to_anthropic(const tg_openai_req *req, const tg_offering *off,
                                  int64_t default_max_tokens, tg_buf *out, tg_errmsg *err,
                                  tg_translate_param *param);

/* An Anthropic client's Messages request (read by
 * tg_anthropic_read_request) into an OpenAI chat request for offering
 * off, an OpenAI-compatible provider: system becomes a leading system
 * message, blocks become content parts, tool_calls and role "tool"
 * messages; a stream asks for stream_options.include_usage. Refused:
 * top_k, thinking, document blocks, server tools, more than 4 stop
 * sequences, images inside tool results, and every field it does not
 * know. */
int tg_translate_req_to_openai(const tg_anthropic_req *req, const tg_offering *off, tg_buf *out,
                               tg_errmsg *err, tg_translate_param *param);

/* ---- answers (non-stream) ---- */

/* An OpenAI-compatible provider's chat completion (body, any bytes) into
 * the Anthropic message the client expects, its model being model (the
 * name the client asked for): the provider's id, content text (left out
 * when empty) and refusal as text blocks, tool calls as tool_use blocks,
 * finish_reason as stop_reason (stop -> end_turn, or tool_use when there
 * are tool calls; length -> max_tokens; tool_calls -> tool_use;
 * content_filter -> refusal), usage with input_tokens = prompt - cached.
 * Fills *u (zeroed first) from the answer's usage (tg_openai_usage).
 * TG_EINVAL means the answer is malformed or cannot be carried (not JSON,
 * no choices, tool call arguments that are not a JSON object, a
 * function_call, an unknown finish_reason): the caller reports a bad
 * upstream answer, err says what was wrong. */
int tg_translate_resp_to_anthropic(tg_str body, tg_str model, tg_buf *out, tg_usage *u,
                                   tg_errmsg *err);

/* An Anthropic provider's message (body, any bytes) into the OpenAI chat
 * completion the client expects, with model as asked and created (Unix
 * seconds) from the caller's clock: one choice whose content is the text
 * blocks joined (null without any) and whose tool_calls are the tool_use
 * blocks (arguments: the input as a JSON string); stop_reason as
 * finish_reason (end_turn, stop_sequence -> stop; max_tokens,
 * model_context_window_exceeded -> length; tool_use -> tool_calls;
 * refusal -> content_filter); usage in OpenAI's convention. Fills *u
 * (zeroed first) with tg_anthropic_usage. TG_EINVAL as above, also for
 * blocks and stop reasons the chat dialect cannot carry (thinking,
 * server tools, pause_turn). */
int tg_translate_resp_to_openai(tg_str body, tg_str model, int64_t created, tg_buf *out,
                                tg_usage *u, tg_errmsg *err);

/* ---- errors ---- */

/* A provider's OpenAI error body ({"error":{"message","type","param",
 * "code"}}, or any bytes) with HTTP status into Anthropic's shape
 * (anthropic.h). The type comes from the status when it is an error
 * status (tg_anthropic_error_type), else from the OpenAI type; the
 * message is OpenAI's, after "<param>: " when param is set; a body
 * without a message gets one that names the status. Only TG_ETOOBIG and
 * TG_ENOMEM fail. */
int tg_translate_error_to_anthropic(tg_str body, int status, tg_buf *out);

/* A provider's Anthropic error body ({"type":"error","error":{"type",
 * "message"}}, or any bytes) with HTTP status into OpenAI's shape
 * {"error":{"message","type","param":null,"code"}}: type from the status
 * when it is an error status, else from Anthropic's type (see
 * docs/anthropic.md), code = Anthropic's type (null when absent). */
int tg_translate_error_to_openai(tg_str body, int status, tg_buf *out);

#endif
