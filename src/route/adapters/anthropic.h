/* The Anthropic dialect (the Messages API): reading a client's request to
 * the gateway's /v1/messages, the upstream body for an Anthropic provider,
 * the dialect's error bodies, and reading usage back from a message or a
 * stream event.
 *
 * As in the OpenAI dialect (openai.h), the upstream body for an Anthropic
 * provider is the client's body with as few bytes changed as the gateway
 * needs: only the model value becomes the offering's upstream name.
 * Anthropic streams always carry usage (message_start and message_delta),
 * so nothing has to be asked for on the client's behalf. Translation to
 * and from the OpenAI dialect lives in translate.h. */
#ifndef TG_ROUTE_ADAPTERS_ANTHROPIC_H
#define TG_ROUTE_ADAPTERS_ANTHROPIC_H

#include "route/adapters/openai.h"

/* What the gateway reads of a client's Messages request. Views into the
 * body, which must outlive it. */
typedef struct {
    tg_json_val root;
    tg_json_val model; /* the string value, quotes included */
    tg_str model_name; /* decoded */
    bool stream;
    int64_t max_tokens;   /* required by the dialect: 1..100000000 */
    tg_json_val messages; /* a non-empty array */
    tg_json_val system;   /* a string or an array of text blocks; NONE when absent */
    size_t input_bytes;   /* messages.n + system.n: metering's size-based
                             estimate of the input tokens reads this */
} tg_anthropic_req;

/* Validates body as a Messages request: a JSON object (no duplicate
 * top-level keys) with a string "model", a whole number "max_tokens"
 * from 1 to 100000000 and a non-empty array "messages"; when present and
 * not null, "stream" a boolean, "system" a string or an array of
 * {"type":"text","text":string,...} blocks, "temperature" and "top_p"
 * numbers, "top_k" a whole number >= 0, "stop_sequences" an array of
 * strings, "metadata", "tool_choice" and "thinking" objects, "tools" an
 * array. Blocks inside messages are not looked at: the provider (or
 * translate.h) judges them. On failure returns TG_EINVAL with a message
 * in err meant for the client and *param set to the offending top-level
 * field's name (a static string) or NULL; TG_ENOMEM when the duplicate
 * check runs out of memory. Decoded strings (model_name when the model
 * has escapes) live in scratch, which is cleared first. */
int tg_anthropic_read_request(tg_str body, tg_buf *scratch, tg_anthropic_req *out, tg_errmsg *err,
                              const char **param);

/* Appends to out the upstream body for offering off: body with the model
 * value replaced by off->upstream_json, every other byte as it came.
 * TG_ETOOBIG when out's cap is reached, TG_ENOMEM. */
int tg_anthropic_upstream_body(tg_str body, const tg_anthropic_req *req, const tg_offering *off,
                               tg_buf *out);

/* The error type Anthropic uses for an HTTP status: 400 (and 4xx not
 * listed) invalid_request_error, 401 authentication_error, 402
 * billing_error, 403 permission_error, 404 not_found_error, 413
 * request_too_large, 429 rate_limit_error, 503 and 529 overloaded_error,
 * 504 timeout_error, other 5xx api_error. A static string. */
const char *tg_anthropic_error_type(int status);

/* Appends Anthropic's error body to out:
 *   {"type":"error","error":{"type":<type>,"message":<message>}}
 * type is a program-owned C string (tg_anthropic_error_type's, or a
 * literal); message is escaped, so any bytes are safe. TG_ETOOBIG,
 * TG_ENOMEM. */
int tg_anthropic_error_body(tg_buf *out, const char *type, tg_str message);

/* Reads an Anthropic usage object (a message's "usage", or a stream's
 * message_start message.usage or message_delta usage) into u, in
 * OpenAI's convention (openai.h): prompt = input_tokens +
 * cache_read_input_tokens + cache_creation_input_tokens, cached = the
 * reads, cache_write = the creations, completion = output_tokens. A
 * member that is absent or null leaves what u had (message_delta carries
 * only the counts that changed), so feeding a stream's events in order
 * leaves the final counts. Does nothing when usage is not an object. */
void tg_anthropic_usage(tg_json_val usage, tg_usage *u);

#endif
