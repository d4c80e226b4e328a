/* The usage record: one per client request that passed authentication and
 * attribution, however it ended. It is what the journal writes, the ledger
 * projects and every report sums (DESIGN.md, Money and Durability).
 *
 * An *attempt record* (attempt true) bills an earlier upstream attempt of
 * a request that the provider billed: the first, cheap answer of an
 * escalated request, a fallback attempt that failed after the provider
 * may have worked. It has its own id, the request's rid and tags, the
 * offering, tokens and money of that attempt, and counts no request
 * (store/agg.h, tg_measures_of): the request's own record counts it.
 *
 * Invariants (tg_record_check asserts them):
 *   charge == cost + margin + fee, exactly;
 *   cached + cache_write <= prompt; reasoning <= completion; all tokens >= 0;
 *   credits >= 0; attempts >= 0; asked_cost >= 0.
 * Tokens are counted once each, in OpenAI's convention whatever the
 * provider's dialect: `prompt` is every input token, cached reads and cache
 * writes included; `completion` every output token, reasoning included.
 * Strings are NUL-terminated copies, at most TG_TAG_MAX bytes; "" means
 * absent. The strings come first and the numbers from t_start_ms on: a
 * worker reusing a record clears that tail only (api/metering.c). */
#ifndef TG_METER_RECORD_H
#define TG_METER_RECORD_H

#include "base/money.h"

#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define TG_TAG_MAX 128
#define TG_RECORD_ID_LEN 16

typedef struct {
    int64_t prompt;       /* all input tokens */
    int64_t cached;       /* of prompt: read from the provider's cache */
    int64_t cache_write;  /* of prompt: written to the provider's cache */
    int64_t completion;   /* all output tokens */
    int64_t reasoning;    /* of completion: reasoning tokens */
} tg_tokens;

/* How the request was served (DESIGN.md's route taken). */
typedef enum {
    TG_RT_PRIMARY = 0,
    TG_RT_FALLBACK,
    TG_RT_CACHE,
    TG_RT_BATCH,
    TG_RT_DEGRADED,
    TG_RT_ESCALATED,
    TG_RT_COUNT_
} tg_route_kind;
const char *tg_route_kind_name(tg_route_kind k); /* "primary", ... */

typedef enum {
    TG_OUT_COMPLETED = 0, /* a whole 2xx answer reached the client */
    TG_OUT_PARTIAL,       /* a 2xx stream that ended early (client gone, upstream cut) */
    TG_OUT_FAILED,        /* an error answer: refused, or the provider failed */
    TG_OUT_INTERRUPTED,   /* the gateway stopped (crash) before the outcome; settled
                             at the next start for the estimated input */
    TG_OUT_COUNT_
} tg_outcome;
const char *tg_outcome_name(tg_outcome o); /* "completed", ... */

typedef enum { TG_EPK_CHAT = 0, TG_EPK_COMPLETIONS, TG_EPK_EMBEDDINGS, TG_EPK_MESSAGES, TG_EPK_COUNT_ } tg_ep_kind;
const char *tg_ep_kind_name(tg_ep_kind e); /* "chat", "completions", "embeddings", "messages" */

/* Who caused a request and what for. */
typedef struct {
    char app[TG_TAG_MAX + 1];
    char customer[TG_TAG_MAX + 1];
    char plan[TG_TAG_MAX + 1];
    char workspace[TG_TAG_MAX + 1];
    char user[TG_TAG_MAX + 1];
    char feature[TG_TAG_MAX + 1];
    char workflow[TG_TAG_MAX + 1];
    char run[TG_TAG_MAX + 1];
    char unit[TG_TAG_MAX + 1];
    int64_t unit_count;   /* 1 when a unit is named without a count */
} tg_tags;

typedef struct {
    uint8_t id[TG_RECORD_ID_LEN]; /* unique; time-ordered (48-bit unix ms first) */
    char rid[TG_TAG_MAX + 1];     /* the request id (X-Request-Id) */
    char key_id[TG_TAG_MAX + 1];
    tg_tags tags;
    char model[TG_TAG_MAX + 1];    /* the public model asked for */
    char offering[TG_TAG_MAX + 1]; /* "" when none was chosen */
    char provider[TG_TAG_MAX + 1];
    char rule[TG_TAG_MAX + 1];     /* which rule priced it: "app", "override@LINE", or "cost" (no app) */
    int64_t t_start_ms;            /* unix ms */
    int64_t latency_us;            /* whole request */
    int64_t ttft_us;               /* to the first byte of the answer; 0: none */
    int32_t status;                /* HTTP status sent to the client (0: interrupted) */
    uint8_t endpoint;              /* tg_ep_kind */
    uint8_t route;                 /* tg_route_kind */
    uint8_t outcome;               /* tg_outcome */
    bool stream;
    bool estimated;                /* tokens counted locally: the provider gave no usage */
    tg_tokens tokens;
    tg_nanos cost;                 /* what the provider bills */
    tg_nanos charge;               /* what the customer is charged */
    tg_nanos margin;               /* what the builder earns */
    tg_nanos fee;                  /* the platform's fee */
    int64_t credits;               /* nano-credits consumed (1 credit = 1e9) under the
                                      customer's plan: charge / the plan's credit, or
                                      its unit's credits x unit count; 0 without a plan */
    int32_t attempts;              /* upstream calls made for the request (0: none, e.g.
                                      refused before routing); an attempt record: its
                                      own position, 1 for the first attempt */
    bool attempt;                  /* bills an earlier upstream attempt of the request,
                                      not the request itself (see above) */
    tg_nanos asked_cost;           /* what these tokens would have cost at the model the
                                      client asked for (its first offering), for the
                                      savings of routing; 0 in an attempt record (the
                                      request's own record counts its baseline once) */
} tg_usage_rec;

/* Asserts the invariants above (abort in every build: a broken money
 * invariant must never reach a ledger). */
void tg_record_check(const tg_usage_rec *r);
/* Copies s into a tag field, truncating at TG_TAG_MAX. */
void tg_record_set(char dst[TG_TAG_MAX + 1], const char *p, size_t n);

/* Copies the string of a field (src, NUL-terminated within its
 * TG_TAG_MAX + 1 bytes) to dst eight bytes a step, up to the word that
 * holds its NUL, and returns its length: TG_TAG_MAX + 1 when src has no
 * NUL within TG_TAG_MAX bytes and src[TG_TAG_MAX] is not one either. The
 * strings are short, and a byte loop took 40% of an encode (strnlen then
 * memcpy as much again). dst[0 .. TG_TAG_MAX) must be writable: the words
 * may copy bytes past the string's end, never past dst + TG_TAG_MAX, and
 * the NUL itself is copied only when the string is shorter than
 * TG_TAG_MAX. What follows the NUL in src does not matter: a zero byte's
 * flag below carries only upwards, so the lowest flag is the first NUL. */
_Static_assert(TG_TAG_MAX % 8 == 0, "whole words up to TG_TAG_MAX");
static inline size_t tg_record_copy_str(void *dst, const char src[TG_TAG_MAX + 1])
{
    for (size_t l = 0; l < TG_TAG_MAX; l += 8) {
        uint64_t w;
        memcpy(&w, src + l, 8);
        memcpy((char *)dst + l, &w, 8);
        uint64_t v = le64toh(w), zero = (v - 0x0101010101010101ull) & ~v & 0x8080808080808080ull;
        if (zero) return l + (size_t)__builtin_ctzll(zero) / 8;
    }
    return src[TG_TAG_MAX] ? TG_TAG_MAX + 1 : TG_TAG_MAX;
}
/* A record's strings as the codec writes them (meter/journal.h): each
 * field in the encoding's order (rid, key_id, app, customer, plan,
 * workspace, user, feature, workflow, run, unit, model, offering,
 * provider, rule), as a length byte and its bytes. The gateway builds
 * them once per request, as it learns each field, and both of the
 * request's journal records copy them whole (tg_record_encode_strs). In
 * a tg_usage_rec the same strings sit in 129-byte fields, about 20 cache
 * lines apart, that the request wrote at its start and each encode read
 * again after the loop turn's other requests had pushed them out of the
 * core's cache (cachegrind: some 50 L1 misses per request, plus the
 * copies). The rule comes last because pricing sets it, at the intent and
 * again at the outcome (tg_record_strs_rule). */
#define TG_RECORD_NSTR 15
typedef struct {
    uint16_t n;       /* bytes used */
    uint16_t rule_at; /* where the rule starts, once the fields before it are in */
    uint8_t nstr;     /* fields added */
    uint8_t b[TG_RECORD_NSTR * (1 + TG_TAG_MAX)];
} tg_record_strs;

static inline void tg_record_strs_clear(tg_record_strs *s) { s->n = s->nstr = 0; }

/* The field whose n bytes were just put after s->b[s->n] is in. */
static inline void tg_record_strs_took_(tg_record_strs *s, size_t n)
{
    s->b[s->n] = (uint8_t)n;
    s->n = (uint16_t)(s->n + 1 + n);
    if (++s->nstr == TG_RECORD_NSTR - 1) s->rule_at = s->n;
}

/* Adds the next field, p[0..n) cut at TG_TAG_MAX bytes and at a NUL, as
 * tg_record_set would store it. At most TG_RECORD_NSTR fields. */
static inline void tg_record_strs_add(tg_record_strs *s, const char *p, size_t n)
{
    if (n > TG_TAG_MAX) n = TG_TAG_MAX;
    const char *nul = n ? memchr(p, '\0', n) : NULL;
    if (nul) n = (size_t)(nul - p);
    if (n) memcpy(s->b + s->n + 1, p, n);
    tg_record_strs_took_(s, n);
}

/* Adds the next field from a record's string field f, copied up to the
 * word that holds its NUL (tg_record_copy_str). Every field has room for
 * TG_TAG_MAX bytes after its length byte, and each one before took at
 * most 1 + TG_TAG_MAX, so the copy's last word stays inside s->b. False,
 * and nothing added, when f has no NUL within TG_TAG_MAX bytes and
 * f[TG_TAG_MAX] is not one either. */
static inline bool tg_record_strs_add_field(tg_record_strs *s, const char f[TG_TAG_MAX + 1])
{
    size_t l = tg_record_copy_str(s->b + s->n + 1, f);
    if (l > TG_TAG_MAX) return false;
    tg_record_strs_took_(s, l);
    return true;
}

/* Sets the rule, the last field, over any earlier one: the other fields
 * must all be in. */
static inline void tg_record_strs_rule(tg_record_strs *s, const char *p, size_t n)
{
    s->n = s->rule_at;
    s->nstr = TG_RECORD_NSTR - 1;
    tg_record_strs_add(s, p, n);
}

/* 32 lowercase hex digits of r->id, NUL-terminated. */
void tg_record_id_hex(const uint8_t id[TG_RECORD_ID_LEN], char out[2 * TG_RECORD_ID_LEN + 1]);

#endif
