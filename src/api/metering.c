/* Metering on the request path: every exchange that passed attribution
 * becomes one usage record (meter/record.h).
 *
 *   tg_metering_start   after attribution: the record's who, what and when
 *   tg_metering_intent  after routing, before the upstream call: the
 *                       offering and the estimated input; the call then
 *                       waits on the worker's held list (tg_exchange_call)
 *   tg_metering_journal_intent
 *                       at the loop turn's flush, for each held call: the
 *                       record priced for its estimated input and appended
 *                       to the journal as an intent; the call waits for
 *                       the journal's write, and a failed append or write
 *                       refuses the request (tg_metering_refuse): nothing
 *                       unrecorded goes out
 *   tg_metering_price   when the answer is known: final tokens (the
 *                       provider's usage, or a local estimate, flagged),
 *                       cost, charge, margin, fee; the response headers;
 *                       and the customer's account settled, before the
 *                       answer's last bytes leave, so a client that has
 *                       its answer sends its next request to an account
 *                       that has counted it (another worker may serve it)
 *   tg_metering_end     from the exchange's end callback, exactly once:
 *                       status, outcome and timings; the record goes to
 *                       the worker's ended list (x->rec stays readable
 *                       until the callback returns: the log line)
 *   tg_metering_journal_outcomes
 *                       at the loop turn's flush, before the intents: each
 *                       ended record appended to the journal as an
 *                       outcome and handed to the ledger.
 *
 * The journal work of a turn's requests is done together at its flush
 * rather than one request at a time between their other work: the
 * pricing, encoding and queueing code then comes into the core's
 * instruction cache once a turn rather than once a request (cachegrind
 * under wrk -c32: about 180 fewer L1 instruction misses per request).
 *
 * Token estimates (used only when a provider reports no usage): a token per
 * 4 bytes of the request's messages/prompt/input text as sent, and one
 * token per streamed content event. They are crude on purpose: cheap, and
 * the record says they are estimates. */
#include "api/api.h"
#include "base/clock.h"
#include "bill/credits.h"
#include "meter/price.h"

#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

static tg_ep_kind ep_kind(tg_endpoint ep)
{
    switch (ep) {
    case TG_EP_CHAT: return TG_EPK_CHAT;
    case TG_EP_COMPLETIONS: return TG_EPK_COMPLETIONS;
    case TG_EP_MESSAGES: return TG_EPK_MESSAGES;
    default: return TG_EPK_EMBEDDINGS;
    }
}

/* 48 bits of unix ms, then 80 random bits: unique, and in time order so
 * the store appends. */
static void new_id(tg_gw_worker *ww, int64_t ms, uint8_t id[TG_RECORD_ID_LEN])
{
    for (int i = 0; i < 6; i++)
        id[i] = (uint8_t)((uint64_t)ms >> (40 - 8 * i));
    uint64_t a = tg_rng_next(&ww->rng), b = tg_rng_next(&ww->rng);
    memcpy(id + 6, &a, 8);
    memcpy(id + 14, &b, 2);
}

int64_t tg_metering_estimate_prompt(const tg_exchange *x)
{
    return (int64_t)(x->oreq.input.n + 3) / 4;
}

/* A record comes from the worker's spares, the one given back last
 * first: it is still in the core's cache, where a fresh ~4 KB allocation
 * from the request's arena was not (and took the arena past its embedded
 * block, a malloc and a free per request). Only the numbers are cleared:
 * the strings of r stay empty (calloc), those of s are added anew. */
static tg_meter_rec *take_record(tg_gw_worker *ww)
{
    tg_meter_rec *m = ww->nspare ? ww->spare[--ww->nspare] : calloc(1, sizeof *m);
    if (!m) return NULL;
    memset(&m->r.t_start_ms, 0, sizeof m->r - offsetof(tg_usage_rec, t_start_ms));
    tg_record_strs_clear(&m->s);
    return m;
}

/* The tags, in the codec's order after rid and key_id, each copied up to
 * the word that holds its NUL: they are nine fields of 129 bytes, mostly
 * short or empty. Each always holds its NUL (tg_record_set wrote it), so
 * each is added. */
static void add_tags(tg_record_strs *s, const tg_tags *t)
{
    static const size_t field[] = {
        offsetof(tg_tags, app),      offsetof(tg_tags, customer), offsetof(tg_tags, plan),
        offsetof(tg_tags, workspace), offsetof(tg_tags, user),   offsetof(tg_tags, feature),
        offsetof(tg_tags, workflow), offsetof(tg_tags, run),      offsetof(tg_tags, unit)};
    _Static_assert(sizeof(tg_tags) == sizeof field / sizeof *field * (TG_TAG_MAX + 1) + 7 + 8,
                   "add_tags adds nine strings");
    for (size_t i = 0; i < sizeof field / sizeof *field; i++)
        tg_record_strs_add_field(s, (const char *)t + field[i]);
}

/* The offering and provider fields: x's offering's, or none (a request
 * that ended before its intent). */
static void add_route(tg_record_strs *s, const tg_offering *off)
{
    if (!off) {
        tg_record_strs_add(s, "", 0);
        tg_record_strs_add(s, "", 0);
        return;
    }
    tg_record_strs_add(s, off->id, strlen(off->id));
    tg_record_strs_add(s, off->provider->name, strlen(off->provider->name));
}

static void give_back(tg_gw_worker *ww, tg_meter_rec *m)
{
    if (ww->nspare < TG_SPARE_RECORDS) ww->spare[ww->nspare++] = m;
    else free(m);
}

void tg_metering_worker_free(tg_gw_worker *ww)
{
    assert(!ww->nended); /* the last flush took them */
    while (ww->nspare) free(ww->spare[--ww->nspare]);
}

void tg_metering_start(tg_exchange *x)
{
    if (!x->ww->jw) return;
    tg_meter_rec *m = take_record(x->ww);
    if (!m) return; /* refused later: the intent cannot be written without a record */
    tg_usage_rec *r = &m->r;
    tg_record_strs *s = &m->s;
    r->t_start_ms = (int64_t)tg_clock_wall_ms();
    new_id(x->ww, r->t_start_ms, r->id);
    tg_record_strs_add(s, x->rid.p, x->rid.n);
    tg_record_strs_add(s, x->key->id, strlen(x->key->id));
    add_tags(s, &x->attr.tags);
    r->tags.unit_count = x->attr.tags.unit_count;
    uint16_t at = s->n;
    tg_record_strs_add(s, x->oreq.model_name.p, x->oreq.model_name.n);
    m->model = tg_str_make((const char *)s->b + at + 1, s->b[at]);
    r->endpoint = ep_kind(x->ep);
    r->stream = x->oreq.stream;
    r->route = TG_RT_PRIMARY;
    x->rec = m;
}

static void price_ctx(tg_exchange *x, tg_price_ctx *c)
{
    const tg_tags *t = &x->attr.tags;
    *c = (tg_price_ctx){
        .app = x->attr.app,
        .customer = tg_str_c(t->customer),
        .plan = tg_str_c(t->plan),
        .feature = tg_str_c(t->feature),
        .model = x->rec->model,
        .unit = tg_str_c(t->unit),
        .unit_count = t->unit_count,
    };
}

/* The request id, for messages: the first of the record's strings. */
#define REC_RID(m) (int)(m)->s.b[0], (const char *)(m)->s.b + 1

/* What r's tokens would have cost at the first offering of the model the
 * client asked for: the baseline routing's savings are counted against.
 * The same offering (most requests) costs what r costs, priced once. */
static tg_nanos asked_cost(tg_exchange *x, const tg_price_ctx *c, const tg_usage_rec *r)
{
    const tg_model *asked = x->choice.asked;
    if (!asked || !x->off || asked->offerings[0] == x->off) return r->cost;
    tg_priced p;
    tg_errmsg err;
    return tg_price_request(asked->offerings[0], c, &r->tokens, &p, &err) ? 0 : p.cost;
}

/* Prices the record's tokens at x's offering and sets the rule that did;
 * an overflow (absurd token counts from a provider) prices the record at
 * zero and logs, rather than lose it. */
static void price(tg_exchange *x, tg_meter_rec *m)
{
    tg_price_ctx c;
    tg_priced p;
    tg_errmsg err;
    price_ctx(x, &c);
    c.has_cap = tg_policy_charge_cap(x, &c.charge_cap);
    if (!x->off || tg_price_request(x->off, &c, &m->r.tokens, &p, &err)) {
        if (x->off) tg_log(TG_LOG_WARN, "metering: request %.*s not priced: %s", REC_RID(m), err.msg);
        memset(&p, 0, sizeof p);
    }
    tg_price_to_record(&p, &m->r);
    m->r.asked_cost = asked_cost(x, &c, &m->r);
    m->r.attempts = (int32_t)x->attempts;
    const tg_tags *t = &x->attr.tags;
    if (tg_credits_of(x->attr.plan, tg_str_c(t->unit), t->unit_count, m->r.charge, &m->r.credits)) {
        tg_log(TG_LOG_WARN, "metering: request %.*s consumes more credits than can be counted",
               REC_RID(m));
        m->r.credits = INT64_MAX;
    }
    if (m->s.nstr < TG_RECORD_NSTR - 1) add_route(&m->s, NULL); /* ended before its intent */
    char rule[TG_PRICE_RULE_LEN];
    tg_record_strs_rule(&m->s, rule, tg_price_rule_name(&p, rule));
}

int tg_metering_worst(tg_exchange *x, const tg_offering *off, int64_t prompt, int64_t completion,
                      tg_nanos *charge, tg_ncredits *credits)
{
    const tg_price *pr = &off->price;
    tg_tokens t = {.prompt = prompt, .completion = completion};
    if (pr->cache_write > pr->input && pr->cache_write >= pr->cached_input) t.cache_write = prompt;
    else if (pr->cached_input > pr->input) t.cached = prompt;
    if (pr->reasoning > pr->output) t.reasoning = completion;
    tg_price_ctx c;
    tg_priced p;
    tg_errmsg err;
    price_ctx(x, &c);
    const tg_tags *tags = &x->attr.tags;
    if (tg_price_request(off, &c, &t, &p, &err) ||
        tg_credits_of(x->attr.plan, tg_str_c(tags->unit), tags->unit_count, p.charge, credits))
        return TG_EINVAL;
    *charge = p.charge;
    return TG_OK;
}

int tg_metering_intent(tg_exchange *x)
{
    tg_meter_rec *m = x->rec;
    if (!x->ww->jw) return TG_OK;
    if (!m) return TG_ENOMEM;
    add_route(&m->s, x->off);
    x->est_prompt = tg_metering_estimate_prompt(x);
    m->r.tokens = (tg_tokens){.prompt = x->est_prompt};
    m->r.estimated = true;
    return TG_OK;
}

void tg_metering_reroute(tg_exchange *x)
{
    tg_meter_rec *m = x->rec;
    if (!m || m->s.nstr < TG_RECORD_NSTR - 3) return; /* no route in it yet */
    /* back to where the offering starts (after rid .. model), then anew */
    size_t at = 0;
    for (int i = 0; i < TG_RECORD_NSTR - 3; i++) at += 1 + m->s.b[at];
    m->s.n = (uint16_t)at;
    m->s.nstr = TG_RECORD_NSTR - 3;
    add_route(&m->s, x->off);
}

void tg_metering_escalate(tg_exchange *x)
{
    if (x->rec) x->rec->r.route = TG_RT_ESCALATED;
    tg_metering_attempt(x);
}

/* The tokens an attempt that went wrong is billed for: none when the
 * provider cannot have worked (no connection, or it answered with an
 * error status), else the estimated input (it took the request, and the
 * answer never came: cut off, or too slow). */
static tg_tokens attempt_tokens(const tg_exchange *x, bool *estimated)
{
    const tg_usage *u = &x->usage;
    *estimated = false;
    if (u->present) {
        tg_tokens t = tg_tokens_openai(u->prompt, u->completion, u->cached, u->reasoning);
        int64_t room = t.prompt - t.cached;
        t.cache_write = u->cache_write < 0 ? 0 : u->cache_write < room ? u->cache_write : room;
        return t;
    }
    if (x->up_status || !x->upstream_called || x->attempt_unreached) return (tg_tokens){0};
    *estimated = true;
    return (tg_tokens){.prompt = x->est_prompt};
}

void tg_metering_attempt(tg_exchange *x)
{
    tg_meter_rec *req = x->rec;
    tg_gw_worker *ww = x->ww;
    if (!req || !ww->jw || req->s.nstr < TG_RECORD_NSTR - 1) return;
    bool estimated;
    tg_tokens t = attempt_tokens(x, &estimated);
    if (!t.prompt && !t.completion) return; /* nothing billed: the request's record counts it */
    tg_meter_rec *m = take_record(ww);
    if (!m) {
        tg_log(TG_LOG_ERROR, "metering: an attempt of request %.*s could not be recorded (out of "
                             "memory)", REC_RID(req));
        return;
    }
    tg_usage_rec *r = &m->r;
    /* the request's strings up to its model, then this attempt's offering */
    size_t at = 0;
    for (int i = 0; i < TG_RECORD_NSTR - 3; i++) at += 1 + req->s.b[at];
    memcpy(m->s.b, req->s.b, at);
    m->s.n = (uint16_t)at;
    m->s.nstr = TG_RECORD_NSTR - 3;
    add_route(&m->s, x->off);
    r->tags.unit_count = req->r.tags.unit_count;
    r->t_start_ms = (int64_t)tg_clock_wall_ms();
    new_id(ww, r->t_start_ms, r->id);
    r->endpoint = req->r.endpoint;
    r->stream = req->r.stream;
    r->route = req->r.route;
    r->attempt = true;
    r->attempts = (int32_t)x->attempts;
    r->status = x->up_status;
    r->outcome = x->up_status >= 200 && x->up_status < 300 ? TG_OUT_COMPLETED : TG_OUT_FAILED;
    r->latency_us = (int64_t)(uv_hrtime() - x->call_start_ns) / 1000;
    r->ttft_us = x->up_first_byte_ns ? (int64_t)(x->up_first_byte_ns - x->call_start_ns) / 1000 : 0;
    r->tokens = t;
    r->estimated = estimated;
    /* the provider's cost, borne by the builder: the customer is charged for
     * the answer it got (the request's own record), not for the way to it */
    tg_priced p;
    tg_errmsg err;
    tg_price_ctx c;
    price_ctx(x, &c);
    if (tg_price_request(x->off, &c, &t, &p, &err)) memset(&p, 0, sizeof p);
    r->cost = p.cost;
    r->margin = -p.cost;
    tg_record_strs_rule(&m->s, "attempt", 7);
    tg_record_check(r);
    if (x->run_counted) { /* the run's cost is its provider cost, attempts included */
        const tg_tags *g = &x->attr.tags;
        tg_runs_cost(ww->gw->runs, tg_str_c(g->app), tg_str_c(g->customer), tg_str_c(g->run), r->cost);
    }
    if (ww->nended == TG_SPARE_RECORDS) tg_metering_journal_outcomes(ww);
    ww->ended[ww->nended].rec = m;
    ww->ended[ww->nended++].ticket = (tg_jticket){0};
}

int tg_metering_journal_intent(tg_exchange *x)
{
    tg_meter_rec *m = x->rec;
    price(x, m);
    return tg_journal_intent(x->ww->jw, &m->r, &m->s, &x->ticket);
}

void tg_metering_refuse(tg_exchange *x)
{
    tg_exchange_error(x, 503, "server_error", "metering_unavailable", NULL,
                    "the gateway could not record this request's usage (its journal is not "
                    "writable), so it was not sent; try again, and tell the gateway's operator");
}

/* The tokens the record bills: the provider's, else an estimate when the
 * provider may have done work, else none. */
static void final_tokens(tg_exchange *x, tg_usage_rec *r)
{
    const tg_usage *u = &x->usage;
    if (u->present) {
        r->tokens = tg_tokens_openai(u->prompt, u->completion, u->cached, u->reasoning);
        int64_t room = r->tokens.prompt - r->tokens.cached;
        r->tokens.cache_write = u->cache_write < 0 ? 0 : u->cache_write < room ? u->cache_write : room;
        r->estimated = false;
        return;
    }
    bool answered = x->up_status >= 200 && x->up_status < 300;
    bool abandoned = x->upstream_called && !x->up_status; /* no answer yet: client or gateway gone */
    if (answered || abandoned) {
        int64_t completion = x->relay_stream ? x->stream_events : (int64_t)(x->resp.n + 3) / 4;
        r->tokens = (tg_tokens){.prompt = x->est_prompt, .completion = answered ? completion : 0};
        r->estimated = true;
    } else {
        r->tokens = (tg_tokens){0};
        r->estimated = false;
    }
}

static void add_money_header(tg_exchange *x, tg_str name, tg_nanos v)
{
    char *s = tg_arena_alloc(&x->req->arena, TG_MONEY_STRLEN);
    if (!s || x->nresp_hdr >= sizeof x->resp_hdr / sizeof x->resp_hdr[0]) return;
    size_t n = tg_money_fmt(s, v);
    x->resp_hdr[x->nresp_hdr++] = (tg_header){name, tg_str_make(s, n)};
}

void tg_metering_price(tg_exchange *x)
{
    if (!x->rec || x->priced) return;
    tg_usage_rec *r = &x->rec->r;
    x->priced = true;
    final_tokens(x, r);
    price(x, x->rec);
    const tg_app *app = x->attr.app;
    if (!app || app->show_charge) add_money_header(x, TG_STR("X-Tollgate-Charge"), r->charge);
    if (app && app->show_cost) add_money_header(x, TG_STR("X-Tollgate-Cost"), r->cost);
    if (x->attr.plan && (!app || app->show_charge))
        add_money_header(x, TG_STR("X-Tollgate-Credits"), r->credits);
    tg_policy_settle(x);
}

/* An SSE comment before [DONE] with what the response headers would have
 * said (a stream's headers leave before its usage is known). SDKs skip
 * comments; a client that wants the figures reads the line. */
int tg_metering_sse_summary(tg_exchange *x, tg_buf *out)
{
    tg_metering_price(x);
    if (!x->nresp_hdr) return TG_OK;
    int rc = tg_buf_add_lit(out, ": tollgate");
    for (size_t i = 0; !rc && i < x->nresp_hdr; i++) {
        tg_str n = x->resp_hdr[i].name; /* "X-Tollgate-Charge" -> "charge" */
        rc = tg_buf_printf(out, " %c%.*s=%.*s", n.p[11] | 0x20, (int)n.n - 12, n.p + 12,
                           TG_STR_FMT(x->resp_hdr[i].value));
    }
    if (!rc) rc = tg_buf_add_lit(out, "\n\n");
    return rc;
}

static tg_outcome outcome_of(const tg_exchange *x, int status)
{
    if (status >= 200 && status < 300) {
        if (x->relay_stream && !x->done_seen) return TG_OUT_PARTIAL;
        return x->error ? TG_OUT_PARTIAL : TG_OUT_COMPLETED;
    }
    if (status == 499 && (x->stream_started || x->upstream_called)) return TG_OUT_PARTIAL;
    return TG_OUT_FAILED;
}

void tg_metering_end(tg_exchange *x, uint64_t now)
{
    if (!x->rec) return;
    tg_usage_rec *r = &x->rec->r;
    tg_req *q = x->req;
    tg_metering_price(x);
    r->status = q->status;
    r->outcome = (uint8_t)outcome_of(x, q->status);
    r->latency_us = (int64_t)(now - q->t_start_ns) / 1000;
    r->ttft_us = q->t_first_byte_ns ? (int64_t)(q->t_first_byte_ns - q->t_start_ns) / 1000 : 0;
    tg_record_check(r);
    tg_runs_end(x);
    tg_gw_worker *ww = x->ww;
    if (ww->nended == TG_SPARE_RECORDS) tg_metering_journal_outcomes(ww);
    ww->ended[ww->nended].rec = x->rec;
    ww->ended[ww->nended++].ticket = x->ticket;
}

void tg_metering_journal_outcomes(tg_gw_worker *ww)
{
    for (unsigned i = 0; i < ww->nended; i++) {
        tg_meter_rec *m = ww->ended[i].rec;
        tg_jticket *t = &ww->ended[i].ticket;
        if (tg_journal_outcome(ww->jw, &m->r, &m->s, t)) {
            /* the intent stays unsettled in the journal: the next start
             * settles it as interrupted, so the request is still billed */
            tg_log(TG_LOG_ERROR, "metering: the outcome of request %.*s could not be journaled",
                   REC_RID(m));
        } else {
            /* the ledger stores the bytes the journal just encoded */
            size_t n;
            tg_record_marks mk;
            const uint8_t *enc = tg_journal_last_payload(ww->jw, &n, &mk);
            tg_ledger_submit(ww->gw->ledger, enc, n, &mk, t);
        }
        give_back(ww, m);
    }
    ww->nended = 0;
}
