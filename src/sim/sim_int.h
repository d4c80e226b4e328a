/* What the sim's files share; not a public contract (see sim.h).
 *
 * sim.c       the server side: routing, keys, faults, errors, /sim/stats
 * sim_req.c   reading requests: validation, token counts, the prompt hash
 * sim_gen.c   generating answers: words, bodies, chunks, embeddings
 * sim_job.c   delivering answers over time: pacing, backpressure, aborts,
 *             the cut and malformed faults
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

typedef enum { TG_SIM__CHAT, TG_SIM__COMPLETION, TG_SIM__EMBEDDING } tg_sim__kind;

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
#define TG_SIM__FAULT_KINDS (TG_SIM_FAULT_MALFORMED + 1)

typedef struct {
    char *name;
    uint64_t requests, streams, prompt_tokens, completion_tokens, cached_tokens;
} tg_sim__model_stat;

/* One served request in /sim/requests: what the sim billed it. */
typedef struct {
    char rid[129];              /* X-Request-Id as sent, truncated; "" without one */
    char model[64];             /* truncated */
    bool stream;
    uint8_t fault;              /* tg_sim_fault */
    uint32_t prompt, completion, cached;
} tg_sim__served;

/* Entries /sim/requests keeps (later requests count only in the stats). */
#define TG_SIM__MAX_SERVED 200000

typedef struct {
    tg_sim_conf conf;
    char *key; /* required bearer key, or NULL */
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

/* An error for the client, in OpenAI's shape. */
typedef struct {
    int status;
    const char *type;  /* "invalid_request_error", ... */
    const char *param; /* NULL: null */
    const char *code;  /* NULL: null */
    char msg[320];
} tg_sim__err;

int tg_sim__err_set(tg_sim__err *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Appends {"error":{...}} to b. */
int tg_sim__err_json(tg_buf *b, const char *type, const char *msg, const char *param,
                     const char *code);

/* One inference request, as read from its body. Views point into the
 * request body and live as long as the request. */
typedef struct {
    tg_sim__kind kind;
    tg_str model;
    tg_str rid;               /* the X-Request-Id header, or empty */
    bool stream, include_usage;
    bool has_max;
    uint32_t max_tokens;
    uint32_t prompt_tokens;
    uint32_t cached_want;     /* X-Sim-Cached-Tokens (chat only) */
    uint64_t text_hash; /* of the prompt text (decoded), see sim_req.c */
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
/* Calls fn for each item of an embeddings input or a completions prompt
 * (a string, an array of strings, an array of token ids or an array of
 * such arrays) with a hash of the item (of the decoded text, or of the
 * token ids) and its token count. A non-zero return of fn stops the walk
 * and is returned. Used by the parser and the embedder alike. */
typedef int (*tg_sim__item_fn)(void *ud, uint64_t item_hash, uint32_t tokens, tg_sim__err *e);
int tg_sim__each_item(tg_json_val input, const char *param, bool allow_empty, tg_sim__item_fn fn,
                      void *ud, tg_sim__err *e);

/* The answer of a chat or completion call: its length and the PRNG that
 * draws its words, positioned at the first word. */
typedef struct {
    uint32_t tokens; /* completion tokens C */
    bool length;     /* finish_reason "length" rather than "stop" */
    tg_rng rng;
} tg_sim__plan;

void tg_sim__plan_make(const tg_sim_conf *conf, const tg_sim__call *c, tg_sim__plan *p);
/* The next word: " word", or "word" when first. */
tg_str tg_sim__word(tg_rng *rng, bool first);

/* Per-answer constants of a response: id, created, escaped model. */
typedef struct {
    tg_sim__kind kind;
    char id[48];
    int64_t created;
    tg_buf model_json; /* the model as a quoted JSON string */
    bool include_usage;
    uint32_t cached_want; /* the call's; reported as min(it, prompt tokens) */
} tg_sim__head;

int tg_sim__head_init(tg_sim__ctx *sim, tg_sim__head *h, const tg_sim__call *c);
void tg_sim__head_release(tg_sim__head *h);

/* Whole bodies. Chat and completion bodies draw plan->tokens words from
 * plan->rng. */
int tg_sim__body_text(tg_buf *b, const tg_sim__head *h, tg_sim__plan *plan, uint32_t prompt);
int tg_sim__body_embeddings(tg_buf *b, const tg_sim_conf *conf, const tg_sim__call *c);

/* Stream events ("data: ...\n\n"). */
int tg_sim__ev_role(tg_buf *b, const tg_sim__head *h);
int tg_sim__ev_token(tg_buf *b, const tg_sim__head *h, tg_str word);
int tg_sim__ev_finish(tg_buf *b, const tg_sim__head *h, bool length);
int tg_sim__ev_usage(tg_buf *b, const tg_sim__head *h, uint32_t prompt, uint32_t completion);
int tg_sim__ev_done(tg_buf *b);
/* The cached prompt tokens a chat answer reports: what the call asked
 * for (X-Sim-Cached-Tokens), at most its prompt tokens. */
uint32_t tg_sim__cached(const tg_sim__head *h, uint32_t prompt);

/* Records one request in the stats (model empty: rejected before it named
 * one; rejected: answered with a 4xx of the sim's own), and, when it named
 * a model, in /sim/requests under its request id rid. */
void tg_sim__record(tg_sim__ctx *sim, tg_str rid, tg_str model, bool stream, tg_sim_fault fault,
                    bool rejected, uint32_t prompt, uint32_t completion, uint32_t cached);

/* Answers call c on r: now, or after the simulated latency, with fault
 * NONE, CUT or MALFORMED. Takes over r (and records it). */
void tg_sim__answer(tg_sim__ctx *sim, tg_req *r, const tg_sim__call *c, tg_sim_fault fault);

#endif
