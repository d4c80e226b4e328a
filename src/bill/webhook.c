/* The threshold webhook sender. See webhook.h.
 *
 * The thread's round: take what workers queued, write it into the store
 * (a duplicate is dropped there), then post the due events, a batch at a
 * time, oldest first, and sleep until the next one falls due, an event
 * is queued, or stop. An event the store would not take stays in the
 * thread's list and is tried again a second later; so is the round after
 * a store error, which also keeps a broken store from turning into a
 * stream of repeated deliveries.
 *
 * Attempts run one at a time with curl's easy interface, on one handle
 * (connections to a receiver are reused), so a receiver that times out
 * delays the others' deliveries by up to 10 s an attempt. During an
 * attempt curl's progress callback, which curl calls at least once a
 * second, stores the events queued meanwhile and cuts the attempt at
 * stop; a cut attempt is not recorded, so its event stays pending, due at
 * once at the next start. */
#include "bill/webhook.h"

#include "base/clock.h"
#include "base/hash.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "bill/period.h"
#include "store/webhooks.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DUE_BATCH 16
#define STORE_RETRY_MS 1000 /* after the store failed */
#define IDLE_MS 60000       /* the longest sleep: the wall clock may jump */
#define CONNECT_TIMEOUT_MS 5000
#define TOTAL_TIMEOUT_MS 10000
#define BODY_MAX (64 * 1024) /* an event's body is well under 1 KiB */

/* ---- events ---- */

void tg_webhook_event_id(const tg_webhook_event *e, char out[TG_WEBHOOK_ID_LEN + 1])
{
    /* NUL-separated: no field holds a NUL, so distinct events never meet */
    char key[4 * (TG_TAG_MAX + 1) + 16];
    int n = snprintf(key, sizeof key, "%s%c%s%c%s%c%u", e->app, 0, e->customer, 0, e->period, 0,
                     e->threshold);
    char hex[TG_SHA256_HEX_LEN + 1];
    tg_sha256_hex(tg_str_make(key, (size_t)n), hex);
    memcpy(out, "evt_", 4);
    memcpy(out + 4, hex, TG_WEBHOOK_ID_LEN - 4);
    out[TG_WEBHOOK_ID_LEN] = '\0';
}

static int j_field(tg_buf *b, const char *name, const char *v)
{
    int rc = tg_buf_printf(b, ",\"%s\":", name);
    return rc ? rc : tg_jsonw_str(b, tg_str_c(v));
}

int tg_webhook_payload(const tg_webhook_event *e, const char *id, int64_t created_ms, tg_buf *out)
{
    char created[TG_UTC_STRLEN], at[TG_UTC_STRLEN], inc[TG_MONEY_STRLEN], used[TG_MONEY_STRLEN];
    tg_utc_format(created_ms, created);
    tg_utc_format(e->at_ms, at);
    tg_money_fmt(inc, e->included);
    tg_money_fmt(used, e->used);
    int rc = tg_buf_add_lit(out, "{\"id\":");
    if (!rc) rc = tg_jsonw_str(out, tg_str_c(id));
    if (!rc) rc = tg_buf_printf(out, ",\"type\":\"credits.threshold\",\"created\":\"%s\"", created);
    if (!rc) rc = j_field(out, "app", e->app);
    if (!rc) rc = j_field(out, "customer", e->customer);
    if (!rc) rc = j_field(out, "plan", e->plan);
    if (!rc) rc = j_field(out, "period", e->period);
    if (!rc)
        rc = tg_buf_printf(out,
                           ",\"threshold\":%u,\"included_credits\":\"%s\",\"used_credits\":\"%s\","
                           "\"at\":\"%s\"}",
                           e->threshold, inc, used, at);
    return rc;
}

int tg_webhook_sign(tg_str secret, int64_t t_s, tg_str body, char out[TG_WEBHOOK_SIG_MAX])
{
    tg_buf signed_text;
    tg_buf_init(&signed_text, body.n + 32);
    int rc = tg_buf_printf(&signed_text, "%lld.", (long long)t_s);
    if (!rc) rc = tg_buf_add_str(&signed_text, body);
    if (!rc) {
        char mac[TG_SHA256_HEX_LEN + 1];
        tg_hmac_sha256_hex(secret, tg_buf_str(&signed_text), mac);
        snprintf(out, TG_WEBHOOK_SIG_MAX, "t=%lld,v1=%s", (long long)t_s, mac);
    }
    tg_buf_release(&signed_text);
    return rc ? TG_ENOMEM : TG_OK;
}

int64_t tg_webhook_retry_at(int64_t created_ms, uint32_t attempts, int64_t now_ms)
{
    int64_t wait = TG_WEBHOOK_RETRY_FIRST_MS;
    for (uint32_t i = 1; i < attempts && wait < TG_WEBHOOK_RETRY_MAX_MS; i++) wait *= 2;
    if (wait > TG_WEBHOOK_RETRY_MAX_MS) wait = TG_WEBHOOK_RETRY_MAX_MS;
    int64_t at = now_ms + wait;
    return at - created_ms > TG_WEBHOOK_GIVE_UP_MS ? 0 : at;
}

/* ---- the sender ---- */

/* A due event, copied out of the store's row. */
typedef struct {
    char id[TG_WEBHOOK_ID_LEN + 1];
    char app[TG_TAG_MAX + 1];
    uint32_t attempts;
    int64_t created_ms;
    char *payload; /* malloc'd */
    size_t npayload;
} due_event;

struct tg_webhook_sender {
    tg_webhook_config_fn config;
    void *config_ud;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;           /* the thread: events queued, or stop (CLOCK_MONOTONIC) */
    tg_webhook_event *q;           /* under mu: queued by workers */
    size_t nq, capq;
    atomic_bool stopping;          /* set under mu; read by curl's progress callback too */
    /* the thread's own */
    tg_store *store;
    CURL *curl;
    char curl_err[CURL_ERROR_SIZE];
    tg_webhook_event *work;        /* taken from q, not stored yet */
    size_t nwork, capwork;
    due_event due[DUE_BATCH];
    size_t ndue;
    tg_buf body;
};

static bool stopping(tg_webhook_sender *w)
{
    return atomic_load_explicit(&w->stopping, memory_order_relaxed);
}

static int grow(tg_webhook_event **v, size_t *cap, size_t want)
{
    if (want <= *cap) return TG_OK;
    size_t c = *cap ? *cap * 2 : 16;
    while (c < want) c *= 2;
    tg_webhook_event *n = realloc(*v, c * sizeof *n);
    if (!n) return TG_ENOMEM;
    *v = n;
    *cap = c;
    return TG_OK;
}

void tg_webhook_queue(tg_webhook_sender *w, const tg_webhook_event *e)
{
    pthread_mutex_lock(&w->mu);
    int rc = grow(&w->q, &w->capq, w->nq + 1);
    if (!rc) {
        w->q[w->nq++] = *e;
        if (w->nq == 1) pthread_cond_signal(&w->wake);
    }
    pthread_mutex_unlock(&w->mu);
    if (rc)
        tg_log(TG_LOG_ERROR, "webhook: out of memory queueing the %u%% event of customer %s; the "
               "next start makes it", e->threshold, e->customer);
}

/* Moves what workers queued to the thread's list (mu held). */
static void take(tg_webhook_sender *w)
{
    if (!w->nq) return;
    if (grow(&w->work, &w->capwork, w->nwork + w->nq)) return; /* stays queued for the next round */
    memcpy(w->work + w->nwork, w->q, w->nq * sizeof *w->q);
    w->nwork += w->nq;
    w->nq = 0;
}

/* Writes the thread's list into the store; what it would not take stays
 * for the next round. TG_EIO. */
static int store_new(tg_webhook_sender *w)
{
    size_t done = 0;
    int rc = TG_OK;
    tg_errmsg err;
    for (; done < w->nwork; done++) {
        const tg_webhook_event *e = &w->work[done];
        char id[TG_WEBHOOK_ID_LEN + 1];
        int64_t now = tg_clock_wall_ms();
        tg_webhook_event_id(e, id);
        tg_buf_clear(&w->body);
        if ((rc = tg_webhook_payload(e, id, now, &w->body))) {
            tg_log(TG_LOG_WARN, "webhook: no memory for an event's body; trying again");
            break;
        }
        tg_store_webhook row = {.id = id, .app = e->app, .customer = e->customer,
                                .period = e->period, .threshold = e->threshold,
                                .payload = tg_buf_str(&w->body), .created_ms = now};
        bool added;
        if ((rc = tg_store_webhook_add(w->store, &row, &added, &err))) {
            tg_log(TG_LOG_WARN, "webhook: storing an event: %s; trying again", err.msg);
            break;
        }
        if (added)
            tg_log(TG_LOG_INFO, "webhook: event %s: customer %s of app %s crossed %u%% in %s", id,
                   e->customer, e->app, e->threshold, e->period);
    }
    if (done) memmove(w->work, w->work + done, (w->nwork - done) * sizeof *w->work);
    w->nwork -= done;
    return rc;
}

/* Takes what workers queued and stores it: at every round, between
 * attempts and during them (on_progress). TG_EIO. */
static int intake(tg_webhook_sender *w)
{
    pthread_mutex_lock(&w->mu);
    take(w);
    pthread_mutex_unlock(&w->mu);
    return store_new(w);
}

static int keep_due(void *ud, const tg_store_webhook *e)
{
    tg_webhook_sender *w = ud;
    due_event *d = &w->due[w->ndue];
    if (!(d->payload = malloc(e->payload.n + 1))) return TG_ENOMEM;
    memcpy(d->payload, e->payload.p, e->payload.n);
    d->payload[e->payload.n] = '\0';
    d->npayload = e->payload.n;
    snprintf(d->id, sizeof d->id, "%s", e->id);
    snprintf(d->app, sizeof d->app, "%s", e->app);
    d->attempts = e->attempts;
    d->created_ms = e->created_ms;
    w->ndue++;
    return TG_OK;
}

static void drop_due(tg_webhook_sender *w)
{
    for (size_t i = 0; i < w->ndue; i++) free(w->due[i].payload);
    w->ndue = 0;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p, (void)ud;
    return size * n;
}

/* curl calls this during an attempt, at least once a second: events
 * queued meanwhile are stored at once (a receiver that takes its 10 s
 * holds up no event's creation), and stop cuts the attempt. */
static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    tg_webhook_sender *w = ud;
    intake(w); /* what fails stays in the thread's list for the next round */
    return stopping(w); /* nonzero aborts the transfer */
}

/* Whether curl is set up; the options every attempt shares. */
static bool curl_setup(tg_webhook_sender *w)
{
    CURL *c = w->curl;
    return curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)TOTAL_TIMEOUT_MS) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_ERRORBUFFER, w->curl_err) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_XFERINFODATA, w) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_USERAGENT, "tollgate-webhook") == CURLE_OK;
}

typedef enum { SENT_OK, SENT_FAILED, SENT_CUT } sent;

/* POSTs d to app a's webhook; on failure why says what happened. */
static sent post(tg_webhook_sender *w, const tg_app *a, const due_event *d, char *why, size_t n)
{
    char sig[TG_WEBHOOK_SIG_MAX], h_sig[TG_WEBHOOK_SIG_MAX + 32], h_id[TG_WEBHOOK_ID_LEN + 32];
    tg_str body = tg_str_make(d->payload, d->npayload);
    if (tg_webhook_sign(tg_str_c(a->webhook_secret), tg_clock_wall_ms() / 1000, body, sig)) {
        snprintf(why, n, "out of memory");
        return SENT_FAILED;
    }
    snprintf(h_sig, sizeof h_sig, "X-Tollgate-Signature: %s", sig);
    snprintf(h_id, sizeof h_id, "X-Tollgate-Event-Id: %s", d->id);
    struct curl_slist *h = NULL, *t;
    /* "Expect:" keeps curl from waiting for a 100 Continue */
    const char *lines[] = {"Content-Type: application/json", h_sig, h_id, "Expect:"};
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        if (!(t = curl_slist_append(h, lines[i]))) {
            curl_slist_free_all(h);
            snprintf(why, n, "out of memory");
            return SENT_FAILED;
        }
        h = t;
    }
    w->curl_err[0] = '\0';
    CURLcode rc = curl_easy_setopt(w->curl, CURLOPT_URL, a->webhook_url);
    if (rc == CURLE_OK) rc = curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, h);
    if (rc == CURLE_OK) rc = curl_easy_setopt(w->curl, CURLOPT_POSTFIELDSIZE, (long)d->npayload);
    if (rc == CURLE_OK) rc = curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, d->payload);
    if (rc == CURLE_OK) rc = curl_easy_perform(w->curl);
    long status = 0;
    curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    if (rc == CURLE_ABORTED_BY_CALLBACK && stopping(w)) return SENT_CUT;
    if (rc != CURLE_OK) {
        snprintf(why, n, "%s", w->curl_err[0] ? w->curl_err : curl_easy_strerror(rc));
        return SENT_FAILED;
    }
    if (status >= 200 && status <= 299) return SENT_OK;
    snprintf(why, n, "HTTP %ld", status);
    return SENT_FAILED;
}

/* One attempt at d, recorded in the store (unless stop cut it). TG_EIO
 * when the store would not take the outcome. */
static int attempt(tg_webhook_sender *w, const tg_config *cfg, const due_event *d)
{
    const tg_app *a = tg_config_app(cfg, tg_str_c(d->app));
    char why[CURL_ERROR_SIZE + 32];
    sent r = SENT_FAILED;
    if (a && a->webhook_url) r = post(w, a, d, why, sizeof why);
    else snprintf(why, sizeof why, "app has no webhook");
    if (r == SENT_CUT) return TG_OK;
    int64_t now = tg_clock_wall_ms();
    uint32_t n = d->attempts + 1;
    tg_store_webhook_try t = {.at_ms = now, .status = TG_WEBHOOK_DELIVERED, .error = why};
    if (r == SENT_FAILED) {
        t.next_ms = tg_webhook_retry_at(d->created_ms, n, now);
        t.status = t.next_ms ? TG_WEBHOOK_PENDING : TG_WEBHOOK_FAILED;
    }
    tg_errmsg err;
    int rc = tg_store_webhook_attempt(w->store, tg_str_c(d->id), &t, &err);
    if (rc) tg_log(TG_LOG_WARN, "webhook: recording an attempt at event %s: %s", d->id, err.msg);
    if (r == SENT_OK)
        tg_log(TG_LOG_INFO, "webhook: event %s delivered to app %s (attempt %u)", d->id, d->app, n);
    else if (t.next_ms)
        tg_log(TG_LOG_WARN, "webhook: event %s to app %s failed (attempt %u): %s; trying again in "
               "%lld ms", d->id, d->app, n, why, (long long)(t.next_ms - now));
    else
        tg_log(TG_LOG_ERROR, "webhook: event %s to app %s failed (attempt %u): %s; given up after "
               "24 hours", d->id, d->app, n, why);
    return rc == TG_ENOTFOUND ? TG_OK : rc;
}

/* Posts the due events; the ms to sleep before the next round. */
static int64_t deliver(tg_webhook_sender *w)
{
    tg_errmsg err;
    int64_t next;
    size_t n;
    do {
        int rc = tg_store_webhooks_due(w->store, tg_clock_wall_ms(), DUE_BATCH, keep_due, w, &err);
        if (rc) {
            drop_due(w);
            if (rc == TG_ENOMEM) tg_errmsg_set(&err, "out of memory");
            tg_log(TG_LOG_WARN, "webhook: reading due events: %s", err.msg);
            return STORE_RETRY_MS;
        }
        n = w->ndue;
        tg_config *cfg = n ? w->config(w->config_ud) : NULL;
        for (size_t i = 0; !rc && i < n && !stopping(w); i++)
            if (!(rc = attempt(w, cfg, &w->due[i]))) rc = intake(w);
        if (cfg) tg_config_unref(cfg);
        drop_due(w);
        if (rc) return STORE_RETRY_MS;
        if (stopping(w)) return 0;
    } while (n == DUE_BATCH);
    if (tg_store_webhook_next(w->store, &next, &err)) {
        tg_log(TG_LOG_WARN, "webhook: %s", err.msg);
        return STORE_RETRY_MS;
    }
    int64_t wait = next ? next - tg_clock_wall_ms() : IDLE_MS;
    return wait < 0 ? 0 : wait > IDLE_MS ? IDLE_MS : wait;
}

/* Sleeps ms (mu held), or less when events are queued or stop is asked. */
static void nap(tg_webhook_sender *w, int64_t ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    while (!stopping(w) && !w->nq)
        if (pthread_cond_timedwait(&w->wake, &w->mu, &dl) == ETIMEDOUT) break;
}

static void *sender_main(void *arg)
{
    tg_webhook_sender *w = arg;
    pthread_setname_np(pthread_self(), "tg-webhook");
    for (;;) {
        bool stop = stopping(w); /* read first: what was queued before stop is stored below */
        int64_t wait = intake(w) ? STORE_RETRY_MS : 0;
        if (stop) break;
        if (!wait) wait = deliver(w);
        pthread_mutex_lock(&w->mu);
        if (wait) nap(w, wait);
        pthread_mutex_unlock(&w->mu);
    }
    if (w->nwork)
        tg_log(TG_LOG_WARN, "webhook: %zu events not stored at stop; the next start makes them",
               w->nwork);
    return NULL;
}

/* ---- start, stop ---- */

static void sender_free(tg_webhook_sender *w)
{
    if (w->curl) curl_easy_cleanup(w->curl);
    tg_store_close(w->store);
    tg_buf_release(&w->body);
    free(w->q);
    free(w->work);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->mu);
    free(w);
    curl_global_cleanup();
}

int tg_webhook_start(const char *db_path, tg_webhook_config_fn config, void *ud,
                     tg_webhook_sender **out, tg_errmsg *err)
{
    /* before any worker starts (the gateway starts this first): curl's
       global set-up is not safe to race with */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        tg_errmsg_set(err, "webhook: curl cannot start");
        return TG_EIO;
    }
    tg_webhook_sender *w = calloc(1, sizeof *w);
    pthread_condattr_t ca;
    if (!w || pthread_condattr_init(&ca)) {
        free(w);
        curl_global_cleanup();
        tg_errmsg_set(err, "webhook: out of memory");
        return TG_ENOMEM;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->wake, &ca);
    pthread_condattr_destroy(&ca);
    w->config = config;
    w->config_ud = ud;
    tg_buf_init(&w->body, BODY_MAX);
    int rc = tg_store_open(db_path, TG_STORE_RW, &w->store, err);
    if (!rc && (!(w->curl = curl_easy_init()) || !curl_setup(w))) {
        tg_errmsg_set(err, "webhook: curl cannot start");
        rc = TG_EIO;
    }
    if (!rc && pthread_create(&w->thread, NULL, sender_main, w)) {
        tg_errmsg_set(err, "webhook: cannot start its thread");
        rc = TG_EIO;
    }
    if (rc) {
        sender_free(w);
        return rc;
    }
    *out = w;
    return TG_OK;
}

void tg_webhook_stop(tg_webhook_sender *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    atomic_store_explicit(&w->stopping, true, memory_order_relaxed);
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    sender_free(w);
}
