/* The live health of offerings: a circuit breaker and moving averages of
 * latency per offering, shared by every worker and by every configuration
 * snapshot (an offering keeps its entry by id across reloads).
 *
 * Breaker: closed, an offering takes calls; `failures` consecutive
 * failures open it; open, it takes none until `cooldown_ms` have passed;
 * then it is half-open and takes one call, the probe: a probe that
 * succeeds closes it, one that fails opens it again for another cooldown.
 * Every admitted call reports exactly once: success, failure, or release
 * (it ended without a verdict, e.g. its client left), so a probe is never
 * lost and the offering never stays half-open with no probe out.
 *
 * Latency: exponentially weighted averages (weight 1/5 to each new sample)
 * of the time to the first byte of an answer and of the time per output
 * token after it, from successful calls. The fastest strategy reads them.
 *
 * Reading the state to admit a call takes no lock while the breaker is
 * closed; reports take the entry's mutex for a few stores. */
#ifndef TG_ROUTE_HEALTH_H
#define TG_ROUTE_HEALTH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { TG_BREAKER_CLOSED = 0, TG_BREAKER_OPEN, TG_BREAKER_HALF_OPEN } tg_breaker_state;
const char *tg_breaker_name(tg_breaker_state s); /* "closed", "open", "half_open" */

typedef struct tg_health tg_health;
typedef struct tg_health_table tg_health_table;

/* What a caller may do with an offering now. */
typedef enum {
    TG_ADMIT_NO = 0,  /* open (or half-open with its probe out): skip it */
    TG_ADMIT_YES,
    TG_ADMIT_PROBE,   /* yes, as the half-open probe */
} tg_admit;

/* A copy of an entry, for the admin API, /metrics and the fastest strategy. */
typedef struct {
    const char *id;           /* the offering's id; lives as long as the table */
    tg_breaker_state state;
    uint32_t failures;        /* consecutive */
    uint64_t opens;           /* times the breaker opened */
    int64_t open_until_ms;    /* open: when it turns half-open; else 0 */
    uint64_t successes, errors; /* calls reported */
    uint64_t samples;         /* latency samples */
    int64_t ttft_us;          /* average time to first byte; 0 without samples */
    int64_t us_per_token;     /* average time per output token after it */
    char last_error[64];      /* "" when none */
} tg_health_view;

tg_health_table *tg_health_table_new(void);
void tg_health_table_free(tg_health_table *t);
/* The entry of offering id, made on first use; NULL when memory ran out.
 * Entries live as long as the table. Not for the hot path (a lock and a
 * scan): a gateway calls it when it adopts a snapshot. */
tg_health *tg_health_get(tg_health_table *t, const char *id);
/* Calls fn with a view of each entry, in the order they were made. */
void tg_health_each(tg_health_table *t, int64_t now_ms, void (*fn)(void *ud, const tg_health_view *v),
                    void *ud);

tg_admit tg_health_admit(tg_health *h, int64_t now_ms);
/* A successful call: closes a probe's breaker, clears the failure count,
 * and adds a latency sample when ttft_us > 0 (gen_us over tokens output
 * tokens, when tokens > 0). */
void tg_health_success(tg_health *h, bool probe, int64_t ttft_us, int64_t gen_us, int64_t tokens);
/* A failed call (why: a short word for the admin API): opens the breaker
 * after `threshold` consecutive failures, or at once when it was the
 * probe. */
void tg_health_failure(tg_health *h, bool probe, int64_t now_ms, uint32_t threshold,
                       uint32_t cooldown_ms, const char *why);
/* A call that ended without a verdict: a probe's slot is freed for the
 * next call. */
void tg_health_release(tg_health *h, bool probe);
void tg_health_view_of(tg_health *h, int64_t now_ms, tg_health_view *out);

#endif
