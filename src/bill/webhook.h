/* Threshold webhooks: when a customer's use of its period's included
 * credits crosses one of its plan's thresholds, its app's webhook is sent
 * one signed event (docs/configuration.md, webhook).
 *
 * The sender is a thread of its own ("tg-webhook") with its own
 * read-write store handle. A worker hands an event over with
 * tg_webhook_queue, which copies it into a queue under a short mutex and
 * returns: no I/O on the request path, and delivery never holds a request
 * up. The thread writes each event into the store (store/webhooks.h),
 * where it exists at most once per (app, customer, period, threshold): an
 * event handed over twice (a settlement, then again at the next start)
 * is dropped there. It then POSTs every due event, one at a time, with
 * libcurl (connect timeout 5 s, 10 s in all, http and https only, no
 * redirects followed), signed with the app's secret as the configuration
 * has it at that moment, and records the outcome: a 2xx delivers it;
 * anything else (another status, a connection error, a timeout, or an app
 * that has no webhook any more) is tried again after a backoff
 * (tg_webhook_retry_at) until it is delivered or given up. Pending events
 * live in the store, so they survive a restart: the thread picks them up
 * when it starts.
 *
 * Receivers may see an event more than once (an attempt whose answer was
 * lost, or cut at stop, is tried again); they deduplicate by its id
 * (X-Tollgate-Event-Id), which is a function of (app, customer, period,
 * threshold). */
#ifndef TG_BILL_WEBHOOK_H
#define TG_BILL_WEBHOOK_H

#include "base/buf.h"
#include "conf/config.h"
#include "meter/record.h"

/* A threshold crossed, as a worker hands it over. */
typedef struct {
    char app[TG_TAG_MAX + 1], customer[TG_TAG_MAX + 1], plan[TG_TAG_MAX + 1];
    char period[8];          /* "2026-11" */
    uint32_t threshold;      /* percent of included credits */
    tg_ncredits included;    /* the period's included credits */
    tg_ncredits used;        /* the period's use when the threshold was crossed */
    int64_t at_ms;           /* when it was crossed (seen), unix ms */
} tg_webhook_event;

/* "evt_" and 24 hex digits of SHA-256 over (app, customer, period,
 * threshold): the same event always has the same id. */
#define TG_WEBHOOK_ID_LEN 28
void tg_webhook_event_id(const tg_webhook_event *e, char out[TG_WEBHOOK_ID_LEN + 1]);

/* The event's JSON body, appended to out:
 *   {"id","type":"credits.threshold","created","app","customer","plan",
 *    "period","threshold","included_credits","used_credits","at"}
 * with times as "YYYY-MM-DDTHH:MM:SSZ" and credits as exact decimals with
 * 9 places. created_ms is when the event was made. TG_ENOMEM, TG_ETOOBIG. */
int tg_webhook_payload(const tg_webhook_event *e, const char *id, int64_t created_ms, tg_buf *out);

/* The X-Tollgate-Signature header's value for body sent at t_s (unix
 * seconds): "t=<t_s>,v1=<hex HMAC-SHA256(secret, "<t_s>.<body>")>", as
 * Stripe signs its webhooks. TG_ENOMEM. */
#define TG_WEBHOOK_SIG_MAX 96
int tg_webhook_sign(tg_str secret, int64_t t_s, tg_str body, char out[TG_WEBHOOK_SIG_MAX]);

/* The backoff. After the attempts-th attempt (1 for the first) at an
 * event made at created_ms failed at now_ms, the next one is due at the
 * returned time: 1 s after the first failure, doubling to 5 minutes. It
 * returns 0 when that would be more than 24 hours after the event was
 * made: the event has failed for good. */
#define TG_WEBHOOK_RETRY_FIRST_MS 1000
#define TG_WEBHOOK_RETRY_MAX_MS (5 * 60 * 1000)
#define TG_WEBHOOK_GIVE_UP_MS (24 * 3600 * 1000LL)
int64_t tg_webhook_retry_at(int64_t created_ms, uint32_t attempts, int64_t now_ms);

typedef struct tg_webhook_sender tg_webhook_sender;

/* A reference to the configuration as it is now, which the sender drops
 * with tg_config_unref: where each app's events go, and its secret. */
typedef tg_config *(*tg_webhook_config_fn)(void *ud);

/* Opens the store at db_path (read-write; it must exist, migrated) and
 * starts the thread. TG_EIO (err says why: the store, or the thread),
 * TG_ENOMEM. */
int tg_webhook_start(const char *db_path, tg_webhook_config_fn config, void *ud,
                     tg_webhook_sender **out, tg_errmsg *err);
/* Hands e over (copied). Never blocks on I/O; from any thread. Out of
 * memory drops the event with an error logged: the next start makes it
 * again from the store's accounts. */
void tg_webhook_queue(tg_webhook_sender *w, const tg_webhook_event *e);
/* Stores what is queued, cuts an attempt in flight (within about a
 * second: it stays pending and is tried again at the next start), stops
 * the thread and closes its store. w may be NULL. */
void tg_webhook_stop(tg_webhook_sender *w);

#endif
