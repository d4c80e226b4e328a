/* Delivering the sim's answers over time.
 *
 * A job is one answer in flight, in either dialect: the events and bodies
 * come from sim_gen.c, which speaks the dialect of the call. A buffered
 * answer (chat, completion or message without stream, embeddings) is built whole at once and sent
 * after the simulated latency: ttft_ms plus its tokens at tokens_per_sec (embeddings are sent at
 * once). A stream starts after ttft_ms with the role chunk and the first token, then a repeating
 * uv_timer sends the tokens that are due at tokens_per_sec, several per tick when the rate is high
 * (ticks are at least TICK_MIN_MS apart); a token is a word, or a piece of a tool call's arguments.
 * With tokens_per_sec 0 everything is written at once, in batches that wait for the client to drain
 * when more than HIGH_WATER bytes are queued; a paced stream skips ticks instead.
 *
 * Ownership: the job is malloc'd (its timer outlives the request: a handle
 * is freed only in its close callback). job->r is the request until the
 * response ended or the client went away, NULL after; the job then records
 * itself in the stats, closes its timer and frees itself. `busy` guards the
 * case of an abort callback that fires from inside one of our own calls
 * into the server: the free then waits until we are back out. */
#include "sim/sim_int.h"

#include "base/clock.h"

#include <stdlib.h>

#define HIGH_WATER (256u << 10)
#define TICK_MIN_MS 5
#define BATCH_MAX 64 /* tokens per write */

typedef struct {
    tg_sim__ctx *sim;
    tg_req *r;
    uv_timer_t timer;
    bool timer_init;
    bool stream;
    bool recorded;
    bool ended; /* the request is over: free once no call of ours is running */
    int busy;   /* our entry points on the stack */
    tg_sim_fault fault;
    tg_sim__dialect dialect;
    tg_sim__head head;
    tg_sim__plan plan;
    char model[TG_SIM__MAX_MODEL];
    size_t model_n;
    char rid[129]; /* X-Request-Id, truncated: the request may be gone when we record */
    size_t rid_n;
    uint32_t prompt;
    uint32_t limit; /* tokens to send: all, or half for a cut */
    uint32_t sent;
    uint32_t tps;
    uint64_t t0_ms; /* when the first token went out */
    tg_buf out;     /* the whole body, or the events of one write */
} job;

static void job_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Every entry point (the start, timer, drain and abort callbacks) brackets
 * its work with enter/leave; the job is freed by the last leave after the
 * request ended. */
static void enter(job *j)
{
    j->busy++;
}

static void leave(job *j)
{
    if (--j->busy || !j->ended) return;
    tg_sim__head_release(&j->head);
    tg_sim__plan_release(&j->plan);
    tg_buf_release(&j->out);
    if (j->timer_init) {
        j->timer.data = j;
        uv_close((uv_handle_t *)&j->timer, job_closed);
    } else {
        free(j);
    }
}

/* The request is over (we ended it, or the client left): never touch it
 * again. */
static void job_end(job *j)
{
    j->r = NULL;
    j->ended = true;
    if (j->timer_init) uv_timer_stop(&j->timer);
}

/* Once per request, before its last byte is queued, so a client that has
 * read the answer finds it in /sim/stats. */
static void job_record(job *j, uint32_t completion)
{
    if (j->recorded) return;
    j->recorded = true;
    tg_sim__cache k = tg_sim__cache_of(&j->head, j->prompt);
    tg_sim__record(j->sim, &(tg_sim__rec){.rid = tg_str_make(j->rid, j->rid_n),
                                          .model = tg_str_make(j->model, j->model_n),
                                          .dialect = j->dialect,
                                          .stream = j->stream,
                                          .fault = j->fault,
                                          .prompt = j->prompt,
                                          .completion = completion,
                                          .cached = k.read,
                                          .cache_write = k.write});
}

static void on_abort(tg_req *r, void *data)
{
    job *j = data;
    (void)r;
    enter(j);
    /* billed: the prompt and what was sent (none of a buffered answer) */
    job_record(j, j->sent);
    job_end(j);
    leave(j);
}

/* A write failed: the client is gone or memory ran out. End the request
 * ourselves (no abort callback follows tg_resp_close), billing what went. */
static void job_fail(job *j)
{
    tg_req *r = j->r;
    if (!r) return; /* the abort callback came first */
    job_record(j, j->sent);
    job_end(j);
    tg_resp_close(r, true);
}

/* Writes and empties out. Non-zero when the request can take no more (the
 * job has then ended). */
static int flush(job *j)
{
    int rc = TG_OK;
    if (j->out.n) rc = tg_resp_stream_write(j->r, tg_buf_str(&j->out));
    tg_buf_clear(&j->out);
    if (rc) job_fail(j);
    return rc || !j->r;
}

/* Ends a response we have fully queued. */
static void stream_end(job *j)
{
    tg_req *r = j->r;
    job_end(j);
    tg_resp_stream_end(r);
}

/* ---- buffered answers ---- */

static void send_buffered(job *j)
{
    tg_req *r = j->r;
    tg_str body = tg_buf_str(&j->out);
    tg_str half = tg_str_make(body.p, body.n / 2);
    tg_str json = TG_STR("application/json");
    tg_header h[2];
    size_t nh = tg_sim__head_headers(&j->head, h);
    /* a cut buffered answer bills whole: the provider produced it, the
     * wire lost it; a malformed one bills nothing */
    j->sent = j->plan.tokens;
    job_record(j, j->fault == TG_SIM_FAULT_MALFORMED ? 0 : j->sent);
    job_end(j);
    switch (j->fault) {
    case TG_SIM_FAULT_MALFORMED:
        /* a prefix of a JSON object is never JSON */
        tg_resp_send(r, 200, json, h, nh, half);
        break;
    case TG_SIM_FAULT_CUT:
        /* the server frames a body it does not send whole as chunked, so
         * "Content-Length but half the bytes" cannot be said: a chunked
         * body whose last chunk never comes is the same failure to a
         * client */
        if (!tg_resp_stream_begin(r, 200, json, h, nh) && !tg_resp_stream_write(r, half))
            tg_resp_close(r, false);
        else
            tg_resp_close(r, true);
        break;
    default:
        tg_resp_send(r, 200, json, h, nh, body);
        break;
    }
}

/* ---- streams ---- */

static void stream_finish(job *j)
{
    if (j->fault == TG_SIM_FAULT_CUT) {
        tg_req *r = j->r;
        job_record(j, j->sent);
        job_end(j);
        tg_resp_close(r, false); /* after what is queued, without the end events */
        return;
    }
    int rc = tg_sim__ev_end(&j->out, &j->head, &j->plan, j->prompt, j->plan.tokens);
    if (rc) {
        job_fail(j);
        return;
    }
    job_record(j, j->sent);
    if (!flush(j)) stream_end(j);
}

static void on_drain(tg_req *r, void *data);

/* Sends the tokens that are due, then the end when all are. */
static void pump(job *j)
{
    uint32_t due = j->limit;
    if (j->tps) {
        uint64_t due64 = 1 + (tg_clock_mono_ns() / 1000000 - j->t0_ms) * j->tps / 1000;
        if (due64 < due) due = (uint32_t)due64;
    }
    while (j->r && j->sent < due) {
        if (tg_resp_queued(j->r) > HIGH_WATER) {
            /* a paced stream catches up at a later tick */
            if (!j->tps) tg_req_on_drain(j->r, on_drain, j);
            return;
        }
        uint32_t n = due - j->sent < BATCH_MAX ? due - j->sent : BATCH_MAX;
        int rc = TG_OK;
        for (uint32_t i = 0; !rc && i < n; i++)
            rc = tg_sim__ev_piece(&j->out, &j->head, &j->plan,
                                  tg_sim__piece(&j->plan, j->sent + i == 0));
        if (rc) {
            job_fail(j);
            return;
        }
        j->sent += n; /* counted when queued: the client may still not read it */
        if (flush(j)) return;
    }
    if (j->r && j->sent == j->limit) stream_finish(j);
}

static void on_drain(tg_req *r, void *data)
{
    job *j = data;
    (void)r;
    enter(j);
    if (j->r) pump(j);
    leave(j);
}

static void on_tick(uv_timer_t *t)
{
    job *j = t->data;
    enter(j);
    if (j->r) pump(j);
    leave(j);
}

/* One data event that is not JSON (a token's event cut in half), then the
 * stream ends with its last event alone ([DONE] or message_stop). */
static int malformed_event(job *j)
{
    tg_buf tmp;
    tg_buf_init(&tmp, TG_SIM__MAX_BODY);
    int rc = tg_sim__ev_piece(&tmp, &j->head, &j->plan, tg_sim__piece(&j->plan, true));
    if (!rc) rc = tg_buf_append(&j->out, tmp.p, tmp.n / 2);
    if (!rc) rc = tg_buf_add_lit(&j->out, "\n\n");
    if (!rc) rc = tg_sim__ev_last(&j->out, &j->head);
    tg_buf_release(&tmp);
    return rc;
}

static void stream_start(job *j)
{
    tg_header h[3] = {{TG_STR("Cache-Control"), TG_STR("no-cache")}};
    size_t nh = 1 + tg_sim__head_headers(&j->head, h + 1);
    int rc = tg_resp_stream_begin(j->r, 200, TG_STR("text/event-stream"), h, nh);
    if (!rc) rc = tg_sim__ev_begin(&j->out, &j->head, &j->plan, j->prompt);
    if (!rc && j->fault == TG_SIM_FAULT_MALFORMED) rc = malformed_event(j);
    if (rc) {
        job_fail(j);
        return;
    }
    if (j->fault == TG_SIM_FAULT_MALFORMED) {
        job_record(j, 0);
        if (!flush(j)) stream_end(j);
        return;
    }
    j->t0_ms = tg_clock_mono_ns() / 1000000;
    if (j->tps && j->limit > 1) {
        uint64_t tick = 1000 / j->tps;
        if (tick < TICK_MIN_MS) tick = TICK_MIN_MS;
        if (!j->timer_init) {
            uv_timer_init(j->r->loop, &j->timer);
            j->timer_init = true;
        }
        j->timer.data = j;
        uv_timer_start(&j->timer, on_tick, tick, tick);
    }
    pump(j); /* the opening events and the first token go out together */
}

static void start(job *j)
{
    enter(j);
    if (j->r) {
        if (j->stream)
            stream_start(j);
        else
            send_buffered(j);
    }
    leave(j);
}

static void on_start(uv_timer_t *t)
{
    start(t->data);
}

/* Milliseconds before the answer starts. */
static uint64_t delay_ms(const tg_sim_conf *conf, const tg_sim__call *c, const tg_sim__plan *p)
{
    if (c->kind == TG_SIM__EMBEDDING) return 0;
    uint64_t ms = conf->ttft_ms;
    if (!c->stream && conf->tokens_per_sec) ms += (uint64_t)p->tokens * 1000 / conf->tokens_per_sec;
    return ms;
}

/* The answer could not be built: a 500 in the call's dialect. */
static void answer_failed(tg_sim__ctx *sim, tg_req *r, const tg_sim__call *c, int rc)
{
    tg_sim__err e;
    tg_sim__record(sim, &(tg_sim__rec){.rid = c->rid,
                                       .model = c->model,
                                       .dialect = tg_sim__dialect_of(c->kind),
                                       .stream = c->stream});
    tg_sim__err_set(&e, 500, NULL, "%s",
                    rc == TG_ETOOBIG ? "The answer would be too large for the simulated provider."
                                     : "The simulated provider ran out of memory.");
    tg_sim__send_err(sim, r, tg_sim__dialect_of(c->kind), &e, NULL, 0);
}

void tg_sim__answer(tg_sim__ctx *sim, tg_req *r, const tg_sim__call *c, tg_sim_fault fault)
{
    job *j = calloc(1, sizeof *j);
    int rc = TG_ENOMEM;
    if (!j) goto fail;
    j->sim = sim;
    j->r = r;
    j->stream = c->stream;
    j->fault = fault;
    j->dialect = tg_sim__dialect_of(c->kind);
    j->prompt = c->prompt_tokens;
    j->tps = sim->conf.tokens_per_sec;
    j->model_n = c->model.n; /* at most TG_SIM__MAX_MODEL: the parser checked */
    memcpy(j->model, c->model.p, c->model.n);
    j->rid_n = c->rid.n < sizeof j->rid ? c->rid.n : sizeof j->rid;
    if (j->rid_n) memcpy(j->rid, c->rid.p, j->rid_n);
    tg_buf_init(&j->out, TG_SIM__MAX_BODY);
    if ((rc = tg_sim__head_init(sim, &j->head, c))) goto fail;
    /* embeddings have no plan: their zeroed one bills 0 completion tokens */
    if (c->kind != TG_SIM__EMBEDDING && (rc = tg_sim__plan_make(&sim->conf, c, &j->plan)))
        goto fail;
    j->limit = fault == TG_SIM_FAULT_CUT ? j->plan.tokens / 2 : j->plan.tokens;
    if (!c->stream) {
        if (c->kind == TG_SIM__EMBEDDING)
            rc = tg_sim__body_embeddings(&j->out, &sim->conf, c);
        else
            rc = tg_sim__body(&j->out, &j->head, &j->plan, c->prompt_tokens);
        if (rc) goto fail;
    }
    uint64_t ms = delay_ms(&sim->conf, c, &j->plan);
    tg_req_on_abort(r, on_abort, j);
    if (!ms) {
        start(j);
        return;
    }
    uv_timer_init(r->loop, &j->timer);
    j->timer_init = true;
    j->timer.data = j;
    uv_timer_start(&j->timer, on_start, ms, 0);
    return;
fail:
    if (j) {
        tg_sim__head_release(&j->head);
        tg_sim__plan_release(&j->plan);
        tg_buf_release(&j->out);
        free(j);
    }
    answer_failed(sim, r, c, rc);
}
