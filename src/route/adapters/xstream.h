/* Stream translation between the OpenAI and Anthropic dialects.
 *
 * A tg_xstream turns one upstream stream, one event at a time, into the
 * client's dialect: an Anthropic Messages stream into OpenAI
 * chat.completion.chunk events for an OpenAI client, or an OpenAI chat
 * completions stream into Anthropic events (each with its `event:` line,
 * which the Anthropic SDKs dispatch on) for an Anthropic client. It is a
 * pure state machine: no I/O, no clock; the caller feeds the data payload
 * of each upstream SSE event (http/sse.h) and sends what was appended to
 * its buffer.
 *
 * Invariants it keeps:
 * - every call appends whole client events or nothing: on an error, the
 *   caller's buffer is as it was before the call;
 * - every data line it writes is valid JSON (strings from upstream are
 *   copied as validated JSON or re-escaped with tg_jsonw_str);
 * - the upstream's order is checked (a delta for a block that is not open,
 *   a second message_start, content after the finish, ...): a stream it
 *   cannot follow is refused with TG_EINVAL and a reason (tg_xstream_why),
 *   never passed on half-understood;
 * - content it cannot translate (thinking blocks, server tool blocks,
 *   citations, pause_turn; OpenAI's function_call, reasoning and audio
 *   deltas, custom tool calls) is refused the same way, never dropped;
 * - what it holds grows only to the caps below.
 *
 * Anthropic upstream -> OpenAI client. Every chunk carries the caller's id,
 * created and the client's model name, and "usage":null when the client
 * asked for usage. message_start gives the first chunk (delta role
 * "assistant", content ""); text deltas give delta.content; a tool_use
 * block gives delta.tool_calls [{index k, id, type "function", function
 * {name, arguments ""}}] (k counts tool calls, not blocks) and its
 * input_json_delta pieces give function.arguments (a tool block that sent
 * no argument bytes gets "{}", so the arguments always parse); message_delta
 * gives a chunk with finish_reason (end_turn, stop_sequence -> stop;
 * max_tokens, model_context_window_exceeded -> length; tool_use ->
 * tool_calls; refusal -> content_filter); message_stop gives, when the
 * client asked for usage, the usage chunk (choices [], OpenAI's counts:
 * prompt_tokens = input + cache reads + cache writes,
 * prompt_tokens_details.cached_tokens = the reads), and ends the stream
 * (see the phases). ping and event types it does not know are skipped, as
 * Anthropic's versioning policy asks (an event without a type is refused);
 * an `error` event becomes
 * `data: {"error":{"message","type","param":null,"code":null}}`, which the
 * OpenAI SDKs raise.
 *
 * OpenAI upstream -> Anthropic client. The first chunk gives message_start
 * (the caller's id, the client's model, usage {input_tokens: the caller's
 * estimate, output_tokens 0, cache counts 0}); non-empty delta.content (and
 * delta.refusal) open a text block and give text_delta events; tool call
 * deltas close an open text block and give a tool_use block {id, name,
 * input {}} with input_json_delta events. Blocks come out whole and in
 * order whatever the upstream interleaves: the first tool call streams
 * live, the others are held until the finish and then written as whole
 * blocks in the order they first appeared; text arriving while a tool
 * call streams closes that call (a later argument piece for it is
 * TG_EINVAL). finish_reason closes the blocks (stop -> end_turn, but
 * tool_use when tool calls were made; length -> max_tokens; tool_calls ->
 * tool_use; content_filter -> refusal); the usage chunk that follows it is
 * read; [DONE] gives message_delta {stop_reason, stop_sequence null,
 * usage {input_tokens (prompt minus cached), output_tokens,
 * cache_read_input_tokens, cache_creation_input_tokens}} (the Anthropic
 * SDK's MessageStream, 0.137, takes the input and cache counts from
 * message_delta when present) and ends the stream. A chunk with a
 * choice index other than 0 is TG_EINVAL (n > 1 is refused before the
 * call). An `{"error":...}` event becomes `event: error` with
 * {"type":"error","error":{"type","message"}}.
 *
 * Phases. OPEN while events flow. When the upstream's end arrives
 * (message_stop, [DONE]) or the caller cuts the stream (tg_xstream_cut), the
 * translator writes the closing events except the very last one and moves
 * to ENDED: the caller may append its own lines there (the gateway's charge
 * comment, `: tollgate charge=...`) and then calls tg_xstream_finish, which
 * writes `data: [DONE]` (OpenAI) or message_stop (Anthropic): FINISHED. An
 * error event, from upstream or tg_xstream_error, moves to FAILED: the
 * client's stream is over and nothing more may be written to it. */
#ifndef TG_ROUTE_ADAPTERS_XSTREAM_H
#define TG_ROUTE_ADAPTERS_XSTREAM_H

#include "route/adapters/openai.h"

/* Bytes of tool call arguments held back at once (OpenAI -> Anthropic,
 * the calls waiting for their turn to be written), over all calls. */
#define TG_XS_MAX_HELD (4u << 20)
/* Tool calls in one answer (OpenAI -> Anthropic). */
#define TG_XS_MAX_CALLS 128
/* Bytes of one tool call's id or name (OpenAI -> Anthropic). */
#define TG_XS_MAX_NAME 1024

typedef enum { TG_XS_ANTHROPIC_TO_OPENAI, TG_XS_OPENAI_TO_ANTHROPIC } tg_xs_dir;
typedef enum { TG_XS_OPEN, TG_XS_ENDED, TG_XS_FINISHED, TG_XS_FAILED } tg_xs_phase;
/* What the client's stream has open (OpenAI -> Anthropic). */
typedef enum { TG_XS_NONE, TG_XS_TEXT, TG_XS_TOOL } tg_xs_block;

/* One tool call of an OpenAI stream (OpenAI -> Anthropic). */
typedef struct {
    int64_t index;   /* the upstream's tool call index */
    int state;       /* held, live (its block is open), closed */
    tg_buf id, name; /* decoded, TG_XS_MAX_NAME each */
    tg_buf args;     /* decoded arguments held while not live */
} tg_xs_call;

typedef struct {
    tg_xs_dir dir;
    tg_xs_phase phase;
    bool include_usage; /* the OpenAI client asked for the usage chunk */
    bool started;       /* the client's first event was written */
    bool finish_seen;   /* message_delta / finish_reason */
    bool refused;       /* a call failed: only tg_xstream_error may follow */
    tg_buf head;        /* pre-rendered: a chunk's start, or message_start's message */
    tg_buf scratch;     /* a decoded id or name, TG_XS_MAX_NAME */
    tg_usage usage;
    int64_t estimate; /* the caller's input token estimate */
    const char *why;  /* the reason of the last TG_EINVAL / TG_ETOOBIG */
    tg_xs_block open; /* the client's open block */
    int64_t blocks;   /* blocks started (Anthropic's indexes) */
    int64_t tools;    /* tool calls started (toward OpenAI: k of the next) */
    /* Anthropic -> OpenAI */
    bool args_sent; /* the open tool block sent argument bytes */
    /* OpenAI -> Anthropic */
    const char *stop; /* the stop_reason the finish_reason maps to */
    tg_xs_call *calls;
    size_t ncalls;
    size_t live; /* the call whose block is open, when open is TOOL */
    size_t held; /* bytes in the calls' args */
} tg_xstream;

/* Starts a translator. client_model is the model name the client asked for
 * (decoded); id the response id the client sees ("chatcmpl-..." or
 * "msg_..."); both are copied. include_usage: the OpenAI client asked for
 * the usage chunk (ignored toward Anthropic clients, who always get
 * usage). created: the chunks' Unix time (OpenAI clients). input_estimate:
 * message_start's input_tokens (Anthropic clients; OpenAI streams report
 * usage only at the end, where message_delta corrects it). TG_ENOMEM, or
 * TG_ETOOBIG when id or model exceed TG_XS_MAX_NAME. Release with
 * tg_xstream_release whatever it returned. */
int tg_xstream_init(tg_xstream *s, tg_xs_dir dir, tg_str client_model, tg_str id,
                    bool include_usage, int64_t created, int64_t input_estimate);
void tg_xstream_release(tg_xstream *s);

/* One upstream event's data payload (JSON, or [DONE] from OpenAI); the
 * payload is validated here. An empty payload (a comment, a keep-alive)
 * gives nothing: the caller may forward such events as they came. Appends
 * zero or more whole client events to out. Returns TG_OK; TG_EINVAL for a
 * malformed, out-of-order or untranslatable event, or any event once the
 * phase is not OPEN (tg_xstream_why says which; the caller ends the stream
 * with tg_xstream_error); TG_ETOOBIG past a cap (out's own included);
 * TG_ENOMEM. After an error (here, in tg_xstream_cut or tg_xstream_finish)
 * every call but tg_xstream_error and tg_xstream_release is refused: the
 * state may be ahead of what was written. An upstream error event returns TG_OK with the phase
 * FAILED. */
int tg_xstream_event(tg_xstream *s, tg_str data, tg_buf *out);

/* Ends the stream early and cleanly (the gateway stopping it at a plan's
 * limit): closes what is open (held tool calls are written whole, a call
 * still without an id or name is left out), then a finish that says why,
 * carrying `"tollgate":{"stopped":"plan_limit","message":why}`: a chunk
 * with finish_reason "length" (OpenAI; no usage chunk, as a relayed
 * OpenAI stream cut at its limit has none), or message_delta with
 * stop_reason "max_tokens" and the usage seen so far (Anthropic). Needs
 * the phase OPEN (else TG_EINVAL); moves to ENDED when it succeeds (when
 * it fails, end the stream with tg_xstream_error). */
int tg_xstream_cut(tg_xstream *s, tg_str why, tg_buf *out);

/* Writes the client's last event ([DONE] or message_stop). Needs ENDED
 * (else TG_EINVAL); moves to FINISHED. */
int tg_xstream_finish(tg_xstream *s, tg_buf *out);

/* An error event in the client's dialect, for a stream already started
 * (the caller's own failures: a broken upstream, a refused event). type
 * and code are OpenAI's (e.g. "upstream_error", "upstream_malformed"; code
 * may be NULL): an OpenAI client gets them as they are, an Anthropic client
 * gets type when Anthropic has it (invalid_request_error,
 * authentication_error, permission_error, not_found_error,
 * rate_limit_error, overloaded_error), else "api_error". Any phase but
 * FINISHED and FAILED (TG_EINVAL); moves to FAILED. */
int tg_xstream_error(tg_xstream *s, const char *type, const char *code, tg_str msg, tg_buf *out);

static inline tg_xs_phase tg_xstream_phase(const tg_xstream *s)
{
    return s->phase;
}
/* The usage the upstream reported so far, in OpenAI's convention
 * (openai.h); present is false until a count arrived. */
static inline const tg_usage *tg_xstream_usage(const tg_xstream *s)
{
    return &s->usage;
}
/* Why the last call failed, for the client's error message ("" if none):
 * a phrase naming what the upstream sent ("a second message_start", "the
 * provider sent a thinking block, which ..."), to follow "provider P sent
 * a stream the gateway cannot translate: ". */
static inline const char *tg_xstream_why(const tg_xstream *s)
{
    return s->why ? s->why : "";
}

#endif
