/* Threshold webhook events in the store (migrations.c has the table;
 * bill/webhook.h sends them). Part of the store's interface, like
 * store/wallet.h.
 *
 * An event is created at most once per (app, customer, period,
 * threshold): adding one that exists is a no-op that says so, whichever
 * process or handle added the first, so a customer crossing a threshold
 * gets one event however often it is reported (a settlement, and again
 * at every start). An event is pending until an attempt delivers it or
 * the sender gives up on it (failed); the store keeps what each attempt
 * left (attempts, the last error, the next attempt's time) and decides
 * nothing itself: the times and the giving up are the sender's. */
#ifndef TG_STORE_WEBHOOKS_H
#define TG_STORE_WEBHOOKS_H

#include "store/store.h"

#include <stdbool.h>

typedef enum {
    TG_WEBHOOK_PENDING = 0, /* waiting for its next attempt */
    TG_WEBHOOK_DELIVERED,   /* the receiver answered 2xx */
    TG_WEBHOOK_FAILED,      /* given up */
} tg_webhook_status;

/* "pending", "delivered", "failed". */
const char *tg_webhook_status_name(tg_webhook_status s);
/* The status named s; TG_EINVAL for another name. */
int tg_webhook_status_parse(tg_str s, tg_webhook_status *out);

/* An event as the store has it. The strings are valid only during the
 * callback that hands it over. */
typedef struct {
    const char *id, *app, *customer, *period;
    uint32_t threshold;      /* percent of included credits */
    tg_str payload;          /* the JSON body sent */
    tg_webhook_status status;
    uint32_t attempts;
    int64_t created_ms;
    int64_t next_ms;         /* pending: when it is tried next */
    int64_t delivered_ms;    /* 0: not delivered */
    const char *last_error;  /* "": no attempt failed */
} tg_store_webhook;

/* Adds e as a pending event due at once (e->created_ms), with no attempt
 * made: only its id, app, customer, period, threshold, payload and
 * created_ms are read. *added is false when the store already has an
 * event of e's (app, customer, period, threshold) or id, which is left
 * as it is. TG_EIO. */
int tg_store_webhook_add(tg_store *s, const tg_store_webhook *e, bool *added, tg_errmsg *err);

/* Calls fn for the pending events whose next attempt is at or before
 * now_ms, oldest first, at most limit of them. fn returning nonzero
 * stops with that code. */
int tg_store_webhooks_due(tg_store *s, int64_t now_ms, size_t limit,
                          int (*fn)(void *ud, const tg_store_webhook *e), void *ud,
                          tg_errmsg *err);

/* The earliest next attempt of a pending event in *next_ms; 0 when no
 * event is pending. TG_EIO. */
int tg_store_webhook_next(tg_store *s, int64_t *next_ms, tg_errmsg *err);

/* What an attempt came to. */
typedef struct {
    int64_t at_ms;              /* when it ended */
    tg_webhook_status status;   /* delivered; pending (tried again at next_ms); failed */
    int64_t next_ms;            /* pending only */
    const char *error;          /* not delivered: why, for people ("HTTP 500", curl's words) */
} tg_store_webhook_try;

/* Records an attempt on event id: attempts goes up by one, and the
 * status, next attempt, last error (kept as it was when delivered) and
 * delivery time follow t. TG_ENOTFOUND when the store has no pending
 * event id (err says so); TG_EIO. */
int tg_store_webhook_attempt(tg_store *s, tg_str id, const tg_store_webhook_try *t,
                             tg_errmsg *err);

/* What a listing shows; NULL or "" matches any app or customer, status
 * -1 any status. */
typedef struct {
    const char *app, *customer;
    int status;
} tg_webhook_filter;

/* Calls fn for the events that pass f, newest first, at most limit. */
int tg_store_webhooks_list(tg_store *s, const tg_webhook_filter *f, size_t limit,
                           int (*fn)(void *ud, const tg_store_webhook *e), void *ud,
                           tg_errmsg *err);

#endif
