/* What the sim's files share; not a public contract (see sim.h).
 *
 * sim.c          the server side: routing, keys, faults, errors in both
 *                dialects
 * sim_stats.c    what the sim billed: /sim/stats and /sim/requests
 * sim_req.c      reading OpenAI requests: validation, and the prompt token
 *                count and hash both dialects share
 * sim_msg_req.c  reading Anthropic requests (/v1/messages)
 * sim_tool.c     tool definitions and choices of both dialects, and the
 *                arguments of a forced call
 * sim_gen.c      generating answers: the plan, OpenAI bodies and chunks,
 *                embeddings; dispatches Anthropic answers to sim_msg_gen.c
 * sim_msg_gen.c  Anthropic bodies and stream events
 * sim_job.c      delivering answers over time: pacing, backpressure, aborts,
 *                the cut and malformed faults
 *
 * Both dialects read a conversation into the same canonical prompt (roles
 * and text, in order), so the same conversation gets the same words, the
 * same tool-call arguments and the same token counts whichever dialect
 * asks.
 *
 * Every request is recorded in the stats exactly once, just before its last
 * byte is queued (or when it is aborted, or when a fault answers it), so a
 * client that has read a whole answer always finds it in /sim/stats. */
#ifndef TG_SIM_SIM_INT_H
#define TG_SIM_SIM_INT_H

#include "base/buf.h"
#include "base/json.h"
#include "base/rng.h"
#include "sim/sim.h"

#include <pthread.h>
#include <stdatomic.h>

typedef enum { TG_SIM__CHAT, TG_SIM__COMPLETION, TG_SIM__EMBEDDING, TG_SIM__MESSAGES } tg_sim__kind;

/* The wire dialect of a request: the shapes of its answers and errors. */
typedef enum { TG_SIM__OPENAI, TG_SIM__ANTHROPIC } tg_sim__dialect;

static inline tg_sim__dialect tg_sim__dialect_of(tg_sim__kind k)
{
    return k == TG_SIM__MESSAGES ? TG_SIM__ANTHROPIC : TG_SIM__OPENAI;
}

/* Longest model name the sim accepts (stats keep a copy of each). */
#define TG_SIM__MAX_MODEL 256
/* Distinct models the stats track; later ones are summed under "(other)". */
#define TG_SIM__MAX_STAT_MODELS 1024
/* Embedding limits: dimensions, inputs, and their product. */
#define TG_SIM__MAX_DIMS 65536
#define TG_SIM__MAX_INPUTS 2048
#define TG_SIM__MAX_FLOATS (4u << 20)
/* Cap of any response body or batch of events the sim builds. */
#define TG_SIM__MAX_BODY (256u << 20)
/* Tools a request may define (OpenAI's limit; Anthropic's is looser). */
#define TG_SIM__MAX_TOOLS 128
#define TG_SIM__FAULT_KINDS (TG_SIM_FAULT_MALFORMED + 1)

typedef struct {
    char *name;
    uint64_t requests, streams, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens;
} tg_sim__model_stat;

/* One served request in /sim/requests: what the sim billed it. */
typedef struct {
    char rid[129];  /* X-Request-Id as sent, truncated; "" without one */
    char model[64]; /* truncated */
    bool stream;
    uint8_t fault;   /* tg_sim_fault */
    uint8_t dialect; /* tg_sim__dialect */
    uint32_t prompt, completion, cached, cache_write;
} tg_sim__served;

/* Entries /sim/requests keeps (later requests count only in the stats). */
#define TG_SIM__MAX_SERVED 200000

typedef struct {
    tg_sim_conf conf;
    char *key; /* required key, or NULL */
    size_t key_n;
    uint64_t nonce;             /* makes ids differ between runs */
    atomic_uint_fast64_t seq;   /* ids */
    atomic_uint_fast64_t draws; /* fault-rule draws: the n-th eligible request */
    pthread_mutex_t mu;         /* guards the stats below, nothing else */
    uint64_t requests, rejected, faults[TG_SIM__FAULT_KINDS];
    tg_sim__model_stat *models;
    size_t nmodels;
    tg_sim__model_stat other; /* beyond TG_SIM__MAX_STAT_MODELS */
    tg_sim__served *served;   /* grows to TG_SIM__MAX_SERVED */
    size_t nserved, capserved;
    bool served_truncated;
} tg_sim__ctx;

/* A number no other request of this sim gets: the tail of every id. */
uint64_t tg_sim__unique(tg_sim__ctx *sim);

/* An error for the client. OpenAI's shape shows type, param and code;
 * Anthropic's shows a type of its own chosen by the status (see sim.c). */
typedef struct {
    int status;
    const char *type;  /* OpenAI's: "invalid_request_error", ... */
    const char *param; /* NULL: null */
    const char *code;  /* NULL: null */
    char msg[320];
} tg_sim__err;

int tg_sim__err_set(tg_sim__err *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Appends {"error":{...}} to b (OpenAI's shape). */
int tg_sim__err_json(tg_buf *b, const char *type, const char *msg, const char *param,
                     const char *code);
/* Sends e in the dialect's shape with the extra headers h[0..nh);
 * Anthropic's answers also carry a request-id header. */
void tg_sim__send_err(tg_sim__ctx *sim, tg_req *r, tg_sim__dialect d, const tg_sim__err *e,
                      const tg_header *h, size_t nh);

/* One inference request, as read from its body. Views point into the
 * request body and live as long as the request. */
typedef struct {
    tg_sim__kind kind;
    tg_str model;
    tg_str rid; /* the X-Request-Id header, or empty */
    bool stream, include_usage;
    bool has_max;
    uint32_t max_tokens;
    uint32_t prompt_tokens;    /* all of them, cached and written included */
    uint32_t cached_want;      /* X-Sim-Cached-Tokens (chat and messages) */
    uint32_t cache_write_want; /* X-Sim-Cache-Write-Tokens (messages only) */
    uint64_t text_hash;        /* of the canonical prompt (see tg_sim__prompt) */
    /* a forced tool call: the tool's name (decoded) and its JSON schema's
     * "properties" (an object, or NONE) */
    bool tool_forced;
    tg_str tool_name;
    tg_json_val tool_props;
    /* embeddings */
    tg_json_val input;
    uint32_t dims;
    bool base64;
} tg_sim__call;

/* Reads and validates body for kind; on failure returns non-zero with e
 * filled (a 400, or a 500 when memory ran out). Strings that needed
 * decoding are copied into the arena a. */
int tg_sim__parse(const tg_sim_conf *conf, tg_sim__kind kind, tg_str body, tg_arena *a,
                  tg_sim__call *c, tg_sim__err *e);
/* /v1/messages (sim_msg_req.c), called by tg_sim__parse with the
 * validated root object. */
int tg_sim__parse_messages(const tg_sim_conf *conf, tg_json_val root, tg_arena *a, tg_sim__call *c,
                           tg_sim__err *e);
/* Calls fn for each item of an embeddings input or a completions prompt
 * (a string, an array of strings, an array of token ids or an array of
 * such arrays) with a hash of the item (of the decoded text, or of the
 * token ids) and its token count. A non-zero return of fn stops the walk
 * and is returned. Used by the parser and the embedder alike. */
typedef int (*tg_sim__item_fn)(void *ud, uint64_t item_hash, uint32_t tokens, tg_sim__err *e);
int tg_sim__each_item(tg_json_val input, const char *param, bool allow_empty, tg_sim__item_fn fn,
                      void *ud, tg_sim__err *e);

/* ---- reading helpers both dialects use (sim_req.c) ---- */

/* "an object", "a string", ... for messages. */
const char *tg_sim__type_name(tg_json_type t);
/* Fills e with the 500 of an allocation failure; returns TG_ENOMEM. */
int tg_sim__oom(tg_sim__err *e);
/* A string value's decoded text: a view when it has no escapes, else
 * decoded into scratch (appended; the caller clears it between uses). */
int tg_sim__str_text(tg_json_val v, tg_buf *scratch, tg_str *out, tg_sim__err *e);
/* A string value's decoded text that lives as long as the arena. */
int tg_sim__str_keep(tg_json_val v, tg_arena *a, tg_str *out, tg_sim__err *e);

/* The canonical prompt of a conversation, which both dialects build the
 * same way: for each message (Anthropic's system prompt is a leading
 * message of role "system") its role, then its text parts in order.
 * Tokens: 3 + tokens(role) + tokens(each text part) per message, plus 3
 * for the reply; the hash covers the seed, the model and every role and
 * part with separators, so ("ab", "c") and ("a", "bc") differ. */
typedef struct {
    uint64_t tokens;
    uint64_t h;
    tg_buf scratch; /* decoded strings; cleared before each use */
} tg_sim__prompt;

void tg_sim__prompt_init(tg_sim__prompt *p, uint64_t seed, tg_str model);
void tg_sim__prompt_release(tg_sim__prompt *p);
/* Starts a message of this role (decoded text). */
void tg_sim__prompt_role(tg_sim__prompt *p, tg_str role);
/* One text part of the current message: a JSON string value. */
int tg_sim__prompt_text(tg_sim__prompt *p, tg_json_val s, tg_sim__err *e);
/* Ends the current message. */
void tg_sim__prompt_end_message(tg_sim__prompt *p);
/* Adds the reply's 3 and stores the count and the hash in c. */
void tg_sim__prompt_done(tg_sim__prompt *p, tg_sim__call *c);

/* ---- tools (sim_tool.c) ---- */

/* Reads "tools" and "tool_choice" of a request in the dialect's rules and
 * sets c->tool_forced, tool_name and tool_props when the choice forces a
 * call: OpenAI's "required" or {"type":"function","function":{"name"}},
 * Anthropic's {"type":"any"} or {"type":"tool","name"} ("required" and
 * "any" call the first tool). */
int tg_sim__tools_openai(tg_json_val root, tg_arena *a, tg_sim__call *c, tg_sim__err *e);
int tg_sim__tools_anthropic(tg_json_val root, tg_arena *a, tg_sim__call *c, tg_sim__err *e);
/* Appends the forced call's arguments to out: a JSON object with one
 * string property per name of c->tool_props, each 1 to 3 words drawn from
 * rng. Only the properties that end within `within` bytes of the object's
 * text are written (SIZE_MAX: all), and the object is always closed. */
int tg_sim__tool_args(tg_buf *out, const tg_sim__call *c, tg_rng rng, size_t within);
/* The piece of text from *at that holds its next token by
 * tg_sim_count_tokens: the bytes that count 0 before it, then the token.
 * Advances *at; empty at the end. A stream sends one piece per token. */
tg_str tg_sim__token_piece(tg_str text, size_t *at);

/* ---- answers ---- */

/* The answer of a chat, completion or message call: its length and what
 * it says. Text answers draw words from rng, positioned at the first one;
 * a forced tool call hands out the pieces of its arguments text. */
typedef struct {
    uint32_t tokens; /* completion tokens C */
    bool length;     /* cut by the limit: "length" / "max_tokens" */
    bool tool;       /* a forced tool call */
    tg_rng rng;
    tg_buf args;  /* tool: the arguments text as sent, cut to C tokens */
    tg_buf input; /* tool: when cut, its complete properties as an object */
    size_t at;    /* tool: bytes of args handed out */
} tg_sim__plan;

int tg_sim__plan_make(const tg_sim_conf *conf, const tg_sim__call *c, tg_sim__plan *p);
void tg_sim__plan_release(tg_sim__plan *p);
/* The next token of the answer: " word" ("word" when first), or the next
 * piece of the tool call's arguments. */
tg_str tg_sim__piece(tg_sim__plan *p, bool first);
/* A tool call's arguments as a JSON object (Anthropic's "input"). */
tg_str tg_sim__plan_input(const tg_sim__plan *p);
/* The next word: " word", or "word" when first. */
tg_str tg_sim__word(tg_rng *rng, bool first);

/* Per-answer constants of a response: ids, created, escaped model and
 * tool name, what the usage reports as cached. */
typedef struct {
    tg_sim__kind kind;
    char id[48];
    char call_id[48]; /* the tool call's: "call_sim_..." or "toolu_sim_..." */
    char req_id[48];  /* Anthropic's request-id header; "" for OpenAI */
    int64_t created;
    tg_buf model_json; /* the model as a quoted JSON string */
    tg_buf tool_json;  /* the forced tool's name, quoted; empty without one */
    bool include_usage;
    uint32_t cached_want; /* the call's; see tg_sim__cache */
    uint32_t cache_write_want;
} tg_sim__head;

int tg_sim__head_init(tg_sim__ctx *sim, tg_sim__head *h, const tg_sim__call *c);
void tg_sim__head_release(tg_sim__head *h);
/* The extra response headers of an answer (Anthropic's request-id) into
 * out[0..2); returns how many. */
size_t tg_sim__head_headers(const tg_sim__head *h, tg_header *out);

/* The prompt tokens an answer reports as read from a cache (what the call
 * asked for, at most the prompt) and as written to one (what it asked for,
 * at most what is left). */
typedef struct {
    uint32_t read, write;
} tg_sim__cache;
tg_sim__cache tg_sim__cache_of(const tg_sim__head *h, uint32_t prompt);

/* Whole bodies. Chat, completion and message bodies draw plan->tokens
 * pieces from the plan. */
int tg_sim__body(tg_buf *b, const tg_sim__head *h, tg_sim__plan *plan, uint32_t prompt);
int tg_sim__body_embeddings(tg_buf *b, const tg_sim_conf *conf, const tg_sim__call *c);

/* Stream events, in the dialect of h: the opening events (OpenAI's role
 * chunk; Anthropic's message_start, content_block_start and ping), one
 * event per piece, the closing events (finish, usage, [DONE]; or
 * content_block_stop, message_delta, message_stop), and the very last
 * event alone ([DONE] or message_stop) for the malformed fault. */
int tg_sim__ev_begin(tg_buf *b, const tg_sim__head *h, const tg_sim__plan *plan, uint32_t prompt);
int tg_sim__ev_piece(tg_buf *b, const tg_sim__head *h, const tg_sim__plan *plan, tg_str piece);
int tg_sim__ev_end(tg_buf *b, const tg_sim__head *h, const tg_sim__plan *plan, uint32_t prompt,
                   uint32_t completion);
int tg_sim__ev_last(tg_buf *b, const tg_sim__head *h);

/* The Anthropic dialect of the above (sim_msg_gen.c). */
int tg_sim__msg_body(tg_buf *b, const tg_sim__head *h, tg_sim__plan *plan, uint32_t prompt);
int tg_sim__msg_ev_begin(tg_buf *b, const tg_sim__head *h, const tg_sim__plan *plan,
                         uint32_t prompt);
int tg_sim__msg_ev_piece(tg_buf *b, const tg_sim__plan *plan, tg_str piece);
int tg_sim__msg_ev_end(tg_buf *b, const tg_sim__plan *plan, uint32_t completion);
int tg_sim__msg_ev_last(tg_buf *b);

/* One request for the stats: its model (empty: rejected before it named
 * one), whether the sim refused it with a 4xx of its own, and what it
 * billed. Faults other than cut bill nothing, whatever the counts say. */
typedef struct {
    tg_str rid, model;
    tg_sim__dialect dialect;
    bool stream, rejected;
    tg_sim_fault fault;
    uint32_t prompt, completion, cached, cache_write;
} tg_sim__rec;

/* Records one request in the stats, and, when it named a model, in
 * /sim/requests under its request id. */
void tg_sim__record(tg_sim__ctx *sim, const tg_sim__rec *rec);
/* A request the sim refused before reading a model. */
void tg_sim__record_refused(tg_sim__ctx *sim, bool rejected);
/* /sim/stats, /sim/requests (sim_stats.c); reset zeroes both. */
int tg_sim__stats_json(tg_sim__ctx *sim, tg_buf *b);
int tg_sim__served_json(tg_sim__ctx *sim, tg_buf *b);
void tg_sim__stats_reset(tg_sim__ctx *sim);
void tg_sim__stats_free(tg_sim__ctx *sim);

/* Answers call c on r: now, or after the simulated latency, with fault
 * NONE, CUT or MALFORMED. Takes over r (and records it). */
void tg_sim__answer(tg_sim__ctx *sim, tg_req *r, const tg_sim__call *c, tg_sim_fault fault);

#endif
