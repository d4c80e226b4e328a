/* The policy stage of a request whose customer is on a plan (DESIGN.md's
 * gate: policy; docs/plans.md): the plan's models and its degrade rule,
 * then, once the route has chosen an offering and so its prices, the
 * reservation of the request's worst case in the customer's account, and
 * at the end the settlement to what it actually cost.
 *
 * The worst case is what the request could cost at most: every byte of
 * its messages / prompt / input as an input token at the dearest input
 * price (a token is at least a byte, and the JSON around the text more
 * than covers the few tokens a chat format adds per message), and its
 * max_tokens (or the plan's default_max_tokens) times n as output at the
 * dearest output price. Images are the exception: a few bytes of URL can
 * be hundreds of tokens. When a request's actual charge passes what the
 * plan's cap leaves it, the charge is lowered to that (the record's rule
 * says "+cap", and the margin takes the rest), so the cap holds anyway.
 *
 * A stream whose output outgrows its reservation asks for more as it goes
 * (tg_policy_stream_event), counting its output as metering estimates a
 * stream it bills without usage: a token per event. When the account
 * cannot give more, the stream is ended cleanly before the event that
 * would pass the cap: a last chunk with finish_reason "length" that says
 * why, the charge comment, and [DONE]. It is billed for what was sent, by
 * that count; the provider may have made more (a chunk can carry several
 * tokens, and generation runs ahead of the relay), which the margin then
 * shows. A stream that runs to its end is billed by its usage, lowered to
 * what the cap leaves when it is more. */
#include "api/api.h"

#include "base/clock.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "bill/credits.h"
#include "route/route.h"

#include <stdio.h>

#define STREAM_STEP 256 /* output tokens a stream's hold grows by, at least */

/* v (nano-units) as a decimal without trailing zeros: "12.5", "0.000741". */
static const char *dec(char out[TG_MONEY_STRLEN], int64_t v)
{
    size_t n = tg_money_fmt(out, v);
    while (n > 0 && out[n - 1] == '0') out[--n] = '\0';
    if (n > 0 && out[n - 1] == '.') out[--n] = '\0';
    return out;
}

static const tg_plan *plan_of(const tg_exchange *x)
{
    return x->rec && x->ww->gw->accounts ? x->attr.plan : NULL;
}

static bool plan_allows(const tg_plan *p, const tg_model *m)
{
    if (!p->nmodels) return true;
    for (size_t i = 0; i < p->nmodels; i++)
        if (p->models[i] == m) return true;
    return false;
}

static bool degrades(const tg_plan *p, const tg_model *m)
{
    for (size_t i = 0; p->degrade_to && i < p->ndegrade_from; i++)
        if (p->degrade_from[i] == m) return true;
    return false;
}

static tg_account *account_of(tg_exchange *x)
{
    return tg_accounts_get(x->ww->gw->accounts, tg_str_c(x->attr.tags.app),
                           tg_str_c(x->attr.tags.customer));
}

static void model_list(char *out, size_t n, const tg_plan *p)
{
    size_t at = 0;
    out[0] = '\0';
    for (size_t i = 0; i < p->nmodels && at + 1 < n; i++)
        at += (size_t)snprintf(out + at, n - at, "%s%s", i ? ", " : "", p->models[i]->name);
}

bool tg_policy_model(tg_exchange *x)
{
    const tg_plan *p = plan_of(x);
    if (!p || !x->model) return true;
    if (degrades(p, x->model)) {
        tg_account *acc = account_of(x);
        tg_account_state st;
        if (!acc) {
            tg_exchange_error(x, 500, "server_error", NULL, NULL, "out of memory");
            return false;
        }
        tg_account_state_of(acc, p, x->attr.app->period_anchor_day, (int64_t)tg_clock_wall_ms(), &st);
        /* past degrade.at percent of the period's included credits */
        if (st.included > 0 && (__int128)st.used * 100 >= (__int128)st.included * p->degrade_at) {
            /* when the key may not use it or no provider serves it, the request keeps its model */
            if (tg_routing_degrade(x, p->degrade_to) && x->rec) x->rec->r.route = TG_RT_DEGRADED;
        }
    }
    if (plan_allows(p, x->model)) return true;
    char msg[1024], list[256];
    model_list(list, sizeof list, p);
    snprintf(msg, sizeof msg,
             "Plan '%s' of customer '%s' does not include model `%s`; it includes: %s. Ask for one "
             "of those, or move the customer to a plan that includes it.",
             p->id, x->attr.tags.customer, x->model->name, list);
    tg_exchange_error(x, 403, "invalid_request_error", "model_not_in_plan", "model", msg);
    return false;
}

/* ---- rate limits ---- */

static bool any_limit(const tg_limits *l) { return l->rpm || l->tpm || l->concurrent; }

static const char *limit_name(tg_limit_which w)
{
    return w == TG_LIMIT_RPM ? "requests per minute" : w == TG_LIMIT_TPM ? "tokens per minute"
                                                                         : "requests at once";
}

bool tg_policy_limits(tg_exchange *x)
{
    tg_limiters *reg = x->ww->gw->limiters;
    const tg_plan *p = x->attr.plan;
    static const tg_limits none;
    const tg_limits *key = x->key->has_limits ? &x->key->limits : p ? &p->key_limits : &none;
    const tg_limits *cust = p && x->attr.tags.customer[0] ? &p->limits : &none;
    if (!any_limit(key) && !any_limit(cust)) return true;
    tg_limiter *ls[2];
    const tg_limits *lims[2];
    const char *who[2];
    size_t n = 0;
    int rc = TG_OK;
    if (any_limit(key) && !(rc = tg_limiters_get(reg, TG_LIMITER_KEY, tg_str_c(x->key->id), &ls[n]))) {
        lims[n] = key;
        who[n++] = "key";
    }
    if (!rc && any_limit(cust) &&
        !(rc = tg_limiters_get(reg, TG_LIMITER_CUSTOMER, tg_str_c(x->attr.tags.customer), &ls[n]))) {
        lims[n] = cust;
        who[n++] = "customer";
    }
    if (rc) {
        tg_exchange_error(x, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    /* the estimate tpm counts until the request ends: its input, and all the
       output it may ask for */
    int64_t out = x->ep == TG_EP_EMBEDDINGS ? 0
                  : x->oreq.max_tokens >= 0 ? x->oreq.max_tokens * x->oreq.n
                  : p                       ? (int64_t)p->default_max_tokens * x->oreq.n
                                            : 0;
    uint64_t tokens = (uint64_t)((int64_t)(x->oreq.input.n + 3) / 4 + out);
    tg_limit_verdict v;
    if (tg_limiter_admit_all(ls, lims, n, tokens, (int64_t)tg_clock_wall_ms(), x->limit_tickets, &v)) {
        x->nlimit = n;
        return true;
    }
    char msg[512];
    const char *name = who[v.index][0] == 'k' ? x->key->id : x->attr.tags.customer;
    if (v.never) {
        snprintf(msg, sizeof msg,
                 "This request may use %llu tokens, more than the %s limit of %s '%s' (%llu): it "
                 "could never pass. Lower max_tokens or shorten the input.",
                 (unsigned long long)tokens, limit_name(v.limit), who[v.index], name,
                 (unsigned long long)v.value);
        tg_exchange_error(x, 400, "invalid_request_error", "request_over_rate_limit", "max_tokens", msg);
        return false;
    }
    snprintf(msg, sizeof msg,
             "Rate limit of %s '%s' reached: %llu %s. Try again in %u s.", who[v.index], name,
             (unsigned long long)v.value, limit_name(v.limit), v.retry_after_s);
    char *ra = tg_arena_alloc(&x->req->arena, 12);
    if (ra) x->retry_after = tg_str_make(ra, (size_t)snprintf(ra, 12, "%u", v.retry_after_s));
    tg_exchange_error(x, 429, v.limit == TG_LIMIT_TPM ? "tokens" : "requests", "rate_limit_exceeded",
                    NULL, msg);
    return false;
}

void tg_policy_end(tg_exchange *x)
{
    if (!x->nlimit) return;
    const tg_tokens *t = x->rec && x->priced ? &x->rec->r.tokens : NULL;
    uint64_t actual = t ? (uint64_t)(t->prompt + t->completion)
                        : (uint64_t)(x->usage.prompt + x->usage.completion);
    for (size_t i = 0; i < x->nlimit; i++) tg_limiter_settle(&x->limit_tickets[i], actual);
    x->nlimit = 0;
}

/* The worst case's output tokens. */
static int64_t out_bound(const tg_exchange *x, const tg_plan *p)
{
    if (x->ep == TG_EP_EMBEDDINGS) return 0;
    int64_t per = x->oreq.max_tokens >= 0 ? x->oreq.max_tokens : p->default_max_tokens;
    return per * x->oreq.n;
}

static tg_account_ask ask_of(const tg_exchange *x, const tg_plan *p, tg_ncredits credits,
                             tg_nanos charge)
{
    return (tg_account_ask){.plan = p, .anchor_day = x->attr.app->period_anchor_day,
                            .now_ms = (int64_t)tg_clock_wall_ms(), .credits = credits, .charge = charge};
}

static void refuse(tg_exchange *x, const tg_plan *p, tg_account_verdict v, const tg_account_state *st,
                   tg_ncredits credits, tg_nanos charge)
{
    char msg[1024], a[TG_MONEY_STRLEN], b[TG_MONEY_STRLEN], c[TG_MONEY_STRLEN], d[TG_MONEY_STRLEN],
        e[TG_MONEY_STRLEN];
    const char *cust = x->attr.tags.customer, *code = "hard_cap_reached";
    tg_period next;
    tg_period_at(x->attr.app->period_anchor_day, st->period.end_ms, &next);
    if (v == TG_ACCOUNT_NO_CREDITS) {
        code = "credits_exhausted";
        snprintf(msg, sizeof msg,
                 "Customer '%s' has no credits left for this request: plan '%s' includes %s credits in "
                 "period %s (%s left), its grants hold %s, requests in flight hold %s, and this "
                 "request may need up to %s; the plan has no overage. Top up with POST "
                 "/admin/v1/customers/%s/topups or `tollgate topup --customer %s --credits N`, or "
                 "wait for period %s.",
                 cust, p->id, dec(a, st->included), st->period.name, dec(b, st->included_left),
                 dec(c, st->grants_left), dec(d, st->reserved), dec(e, credits), cust, cust, next.name);
    } else if (v == TG_ACCOUNT_CAP_USD) {
        snprintf(msg, sizeof msg,
                 "Customer '%s' has reached the hard cap of plan '%s', %s USD per period: %s USD "
                 "charged in period %s and %s USD held by requests in flight, and this request may "
                 "cost up to %s USD. The cap resets when period %s begins, or raise it in the plan.",
                 cust, p->id, dec(a, p->cap_usd), dec(b, st->charge), st->period.name,
                 dec(c, st->reserved_charge), dec(d, charge), next.name);
    } else {
        snprintf(msg, sizeof msg,
                 "Customer '%s' has reached the hard cap of plan '%s', %s credits per period: %s "
                 "used in period %s and %s held by requests in flight, and this request may need up "
                 "to %s. The cap resets when period %s begins, or raise it in the plan.",
                 cust, p->id, dec(a, p->cap_credits), dec(b, st->used), st->period.name,
                 dec(c, st->reserved), dec(d, credits), next.name);
    }
    tg_exchange_error(x, 402, "insufficient_quota", code, NULL, msg);
}

/* The worst case of whichever offering may serve the answer: this
 * phase's candidates and, for a cheap-first request, those of the model
 * it may escalate to. (Earlier attempts are not charged: routing.c.) */
static int worst_of_all(tg_exchange *x, tg_nanos *charge, tg_ncredits *credits)
{
    *charge = 0, *credits = 0;
    const tg_model *esc = x->first_phase ? x->choice.model : NULL;
    size_t n = x->ncand + (esc ? esc->noffering : 0);
    for (size_t i = 0; i < n; i++) {
        const tg_offering *o = i < x->ncand ? x->cands[i] : esc->offerings[i - x->ncand];
        tg_nanos c;
        tg_ncredits k;
        if (!o->provider->available) continue;
        if (tg_metering_worst(x, o, x->prompt_bound, x->out_bound, &c, &k)) return TG_EINVAL;
        if (c > *charge) *charge = c;
        if (k > *credits) *credits = k;
    }
    return TG_OK;
}

bool tg_policy_reserve(tg_exchange *x)
{
    const tg_plan *p = plan_of(x);
    if (!p || !x->off) return true;
    tg_account *acc = account_of(x);
    if (!acc) {
        tg_exchange_error(x, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    x->prompt_bound = (int64_t)x->oreq.input.n;
    x->out_bound = out_bound(x, p);
    tg_nanos charge;
    tg_ncredits credits;
    if (worst_of_all(x, &charge, &credits)) {
        tg_exchange_error(x, 400, "invalid_request_error", NULL, NULL,
                        "this request's worst-case cost cannot be counted: lower max_tokens");
        return false;
    }
    tg_account_ask q = ask_of(x, p, credits, charge);
    tg_account_state st;
    tg_account_verdict v = tg_account_reserve(acc, &q, &x->hold, &st);
    if (v == TG_ACCOUNT_OK) return true;
    /* refused: the rate limits take back what they counted for it */
    for (size_t i = 0; i < x->nlimit; i++) tg_limiter_cancel(&x->limit_tickets[i]);
    x->nlimit = 0;
    refuse(x, p, v, &st, credits, charge);
    return false;
}

bool tg_policy_charge_cap(tg_exchange *x, tg_nanos *cap)
{
    const tg_plan *p = plan_of(x);
    if (!p || !x->hold.acc) return false;
    tg_account_ask q = ask_of(x, p, 0, 0);
    tg_ncredits room_c;
    tg_nanos room_m;
    tg_account_room(&x->hold, &q, &room_c, &room_m);
    const tg_tags *t = &x->attr.tags;
    if (room_c != INT64_MAX && !(t->unit[0] && tg_plan_unit(p, tg_str_c(t->unit)))) {
        /* the charge whose credits fit: rounded down, so they never round past the room */
        __int128 v = (__int128)room_c * p->credit / TG_NCREDITS_PER_CREDIT;
        if (v < room_m) room_m = (tg_nanos)v;
    }
    *cap = room_m;
    return room_m != INT64_MAX;
}

bool tg_policy_stream_event(tg_exchange *x, int64_t out_tokens)
{
    const tg_plan *p = plan_of(x);
    x->out_seen += out_tokens;
    if (!p || !x->hold.acc || x->out_seen <= x->out_bound) return true;
    /* grow by a step, or near the limit by what is left: halving until
       the account takes it or it would not cover this event */
    int64_t need = x->out_seen - x->out_bound;
    int64_t grow = x->out_bound / 2 > STREAM_STEP ? x->out_bound / 2 : STREAM_STEP;
    while (grow < need) grow *= 2;
    for (; grow >= need; grow /= 2) {
        tg_nanos charge;
        tg_ncredits credits;
        if (tg_metering_worst(x, x->off, x->prompt_bound, x->out_bound + grow, &charge, &credits))
            return false;
        tg_account_ask more = ask_of(x, p, credits > x->hold.credits ? credits - x->hold.credits : 0,
                                     charge > x->hold.charge ? charge - x->hold.charge : 0);
        if (tg_account_extend(&x->hold, &more) == TG_ACCOUNT_OK) {
            x->out_bound += grow;
            return true;
        }
    }
    return false;
}

void tg_policy_cut_message(const tg_exchange *x, char *msg, size_t n)
{
    const tg_plan *p = x->attr.plan;
    snprintf(msg, n,
             "Stopped by tollgate: customer '%s' reached what plan '%s' allows this period (its "
             "hard cap, or its credits without overage). The answer so far is billed.",
             x->attr.tags.customer, p ? p->id : "");
}

int tg_policy_cut_event(tg_exchange *x, tg_buf *out)
{
    char msg[512];
    tg_policy_cut_message(x, msg, sizeof msg);
    bool chat = x->ep == TG_EP_CHAT;
    int rc = tg_buf_add_lit(out, "data: {\"id\":");
    if (!rc) rc = tg_jsonw_str(out, x->rid);
    if (!rc)
        rc = tg_buf_printf(out, ",\"object\":\"%s\",\"created\":%lld,\"model\":",
                           chat ? "chat.completion.chunk" : "text_completion",
                           (long long)(tg_clock_wall_ms() / 1000));
    if (!rc) rc = tg_jsonw_str(out, x->oreq.model_name);
    if (!rc)
        rc = tg_buf_add_str(out, chat ? TG_STR(",\"choices\":[{\"index\":0,\"delta\":{},"
                                               "\"finish_reason\":\"length\"}]")
                                      : TG_STR(",\"choices\":[{\"index\":0,\"text\":\"\","
                                               "\"finish_reason\":\"length\"}]"));
    if (!rc) rc = tg_buf_add_lit(out, ",\"tollgate\":{\"stopped\":\"plan_limit\",\"message\":");
    if (!rc) rc = tg_jsonw_str(out, tg_str_c(msg));
    return rc ? rc : tg_buf_add_lit(out, "}}\n\n");
}

void tg_policy_settle(tg_exchange *x)
{
    const tg_plan *p = plan_of(x);
    if (!x->hold.acc) return;
    tg_account *acc = x->hold.acc;
    const tg_usage_rec *r = &x->rec->r;
    uint32_t crossed = tg_account_settle(&x->hold, p, r->t_start_ms, r->credits, r->charge);
    for (size_t i = 0; crossed && i < p->nthresholds; i++)
        if (crossed & (1u << i))
            tg_log(TG_LOG_INFO, "billing: customer %s of app %s crossed %u%% of its included credits",
                   x->attr.tags.customer, x->attr.tags.app, p->thresholds[i]);
    if (crossed) tg_webhooks_settled(x, acc, crossed);
}
