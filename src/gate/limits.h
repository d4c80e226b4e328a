/* Rate limits: requests per minute (rpm), tokens per minute (tpm) and
 * requests in flight, per API key and per customer (tg_limits in
 * conf/config.h; 0 means no limit). A refused request gets a verdict: the
 * limit that refused it and an honest Retry-After, or `never` when it
 * could not pass even alone.
 *
 * A limiter counts the last minute in one-second buckets, a ring indexed
 * by the unix second. At second s the window is the 61 buckets s-60..s:
 * the 60 whole seconds before this one and this one so far. A request
 * admitted at any instant of second s counts in bucket s until the window
 * passes it, at second s+61, so it counts for 60 to 61 s, never less than
 * 60: over any 60-second span of real time, at most rpm requests are
 * admitted, and at most tpm tokens as counted at admission. That is the
 * "hold" guarantee; its price is being conservative by up to one second.
 * 60 buckets would count a request admitted at s + 0.9 s for only 59.1 s,
 * so two requests 59.5 s apart could both pass a full window. An exact log
 * of admission times would not need the extra second, but it costs memory
 * per request; the ring costs 732 bytes per limiter whatever the rates.
 * Tokens count as estimated until settled: requests that use more than
 * their estimates can exceed tpm by the difference, which then counts
 * against the requests after them.
 *
 * Admission checks all three limits at once; a request that passes them
 * all is recorded (one request and its token estimate in this second's
 * bucket, one more in flight) and gets a ticket; one that fails any of
 * them records nothing. When the request ends, tg_limiter_settle releases
 * its place in flight and replaces its estimate with its actual tokens in
 * the bucket it was counted in, if that bucket is still in the window.
 * tg_limiter_cancel takes back everything the admission recorded, for a
 * request refused after it by a later gate (budget, run guardrails).
 *
 * A limiter records every request it admits even when its limits are 0,
 * so that limits a reload turns on see the last minute. Limits are not
 * stored in the limiter: each call passes the ones of the request's
 * configuration snapshot.
 *
 * Time is passed in (unix milliseconds, >= 0) and never read here. Workers
 * read their clocks at slightly different instants, so a call may come
 * with a time a little before one the limiter has already seen: it then
 * counts at the limiter's latest second, which only makes it count longer.
 *
 * A request passes two limiters, its key's and its customer's, all or
 * nothing. tg_limiter_admit_all judges them while holding both, rather
 * than admitting into one and taking it back when the other refuses: in
 * between, another request would see a count about to vanish and could
 * be refused for it.
 *
 * Threading: every function is thread-safe. A limiter has its own mutex,
 * held for a few dozen instructions (and, on a refusal, for a scan of at
 * most 61 buckets); admission allocates nothing. tg_limiter_admit_all
 * takes the mutexes of its limiters in increasing address order, and no
 * other function holds two: every thread that holds two took them in that
 * one order, so no cycle of waits, hence no deadlock, can form. The
 * registry is read without a lock (a hash probe with acquire loads); only
 * creating a limiter takes the registry's mutex. Limiters are never
 * removed: the registry holds one (under 1 KB) per key and customer seen
 * since it was made. */
#ifndef TG_GATE_LIMITS_H
#define TG_GATE_LIMITS_H

#include "base/err.h"
#include "base/str.h"
#include "conf/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most limiters one admission passes through (a key and a customer
 * today). */
#define TG_LIMITER_SET_MAX 4
/* Tokens a single request counts for at most (2^40, far past any context
 * window): the window's sums then cannot wrap unless millions of such
 * requests come within a minute with no tpm set. A request is still judged
 * on its whole estimate: one over tpm is `never`. */
#define TG_LIMITER_TOKENS_MAX ((uint64_t)1 << 40)

typedef struct tg_limiter tg_limiter;
typedef struct tg_limiters tg_limiters;

/* Whose limits a limiter counts. */
typedef enum { TG_LIMITER_KEY, TG_LIMITER_CUSTOMER } tg_limiter_kind;

typedef enum { TG_LIMIT_RPM = 1, TG_LIMIT_TPM, TG_LIMIT_CONCURRENT } tg_limit_which;

/* Why a request was refused. */
typedef struct {
    tg_limit_which limit; /* the limit that refused it */
    uint64_t value;       /* that limit's configured value */
    /* Whole seconds after which this same request passes every limiter of
     * the admission, if nothing else is admitted meanwhile (and nothing
     * settles to more tokens than it estimated): one second earlier it
     * would still be refused. Concurrency has no time answer: 1 when it is
     * the only limit refusing. 0 when never. For Retry-After. */
    uint32_t retry_after_s;
    /* The request's token estimate alone exceeds tpm: it can never pass,
     * however long it waits (a 400, not a 429). limit is TG_LIMIT_TPM. */
    bool never;
    size_t index; /* which limiter of the admission refused */
} tg_limit_verdict;

/* What an admitted request keeps until it ends. Owned by the caller (one
 * request; not shared between threads). A zeroed ticket, or one already
 * settled or cancelled, has limiter NULL and settles to nothing. */
typedef struct {
    tg_limiter *limiter;
    int64_t second;  /* the bucket it was counted in */
    uint64_t tokens; /* the tokens it counts there */
} tg_limiter_ticket;

/* A limiter's window at some time, for x-ratelimit-remaining-* headers
 * and metrics. */
typedef struct {
    uint64_t requests;  /* admitted within the window */
    uint64_t tokens;    /* their tokens (estimates, or actual once settled) */
    uint32_t in_flight; /* admitted and not yet settled or cancelled */
} tg_limiter_usage;

/* The registry: one limiter per (kind, id), created on first use. NULL
 * when out of memory. */
tg_limiters *tg_limiters_new(void);
/* Frees the registry and every limiter in it. No other call on it, or on
 * its limiters, may run at the same time or after. */
void tg_limiters_free(tg_limiters *r);
/* The limiter of (kind, id), created when unknown; id need not be
 * NUL-terminated and is copied. *out stays valid until tg_limiters_free.
 * Threads asking for the same new id at once all get the one limiter.
 * TG_ENOMEM (nothing created, *out untouched). */
int tg_limiters_get(tg_limiters *r, tg_limiter_kind kind, tg_str id, tg_limiter **out);

/* Admits a request estimated at tokens at now_ms, under limits. True:
 * recorded, *ticket filled. False: nothing recorded, *v says why (its
 * index is 0). */
bool tg_limiter_admit(tg_limiter *l, const tg_limits *limits, uint64_t tokens, int64_t now_ms,
                      tg_limiter_ticket *ticket, tg_limit_verdict *v);
/* Admits a request into n distinct limiters (1..TG_LIMITER_SET_MAX), each
 * under its limits[i], all or none: every limiter is judged while all n
 * are held, so no other request sees a partial admission. True: recorded
 * in each, tickets[i] filled for ls[i]. False: nothing recorded anywhere;
 * *v is the refusal that waits longest (`never` first; on a tie, the
 * lowest index), and its retry_after_s holds for the whole set. */
bool tg_limiter_admit_all(tg_limiter *const *ls, const tg_limits *const *limits, size_t n,
                          uint64_t tokens, int64_t now_ms, tg_limiter_ticket *tickets,
                          tg_limit_verdict *v);
/* The request of t ended having used actual tokens: releases its place in
 * flight and, while its bucket is in the window, counts actual instead of
 * its estimate. Clears t->limiter, so a second call does nothing. */
void tg_limiter_settle(tg_limiter_ticket *t, uint64_t actual);
/* Takes back all that the admission of t recorded (its request and its
 * tokens, while its bucket is in the window, and its place in flight), as
 * if it had not been admitted. Clears t->limiter. */
void tg_limiter_cancel(tg_limiter_ticket *t);
/* Fills *out with l's window at now_ms. */
void tg_limiter_read(tg_limiter *l, int64_t now_ms, tg_limiter_usage *out);

#endif
