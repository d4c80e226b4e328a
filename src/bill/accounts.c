/* Accounts: live balances for admission. See accounts.h.
 *
 * Invariants, under an account's mutex: reserved >= 0 and reserved_charge
 * >= 0 (asserted); every grant's left is in 0..granted; the grants are in
 * burn order. Reservations are not tied to a period: a request admitted
 * just before a period ends holds until it settles, and its credits count
 * in the period it started in (the store files records by start time),
 * burned from that period's included grant, which the account keeps until
 * it has expired for a day. The registry's lookups take no lock (a
 * base/pmap.h map). */
#include "bill/accounts.h"

#include "base/hash.h"
#include "base/pmap.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MS_DAY 86400000LL

struct tg_account {
    pthread_mutex_t mu;
    char *app, *customer;
    bool have_period;
    tg_period period;            /* the period used and charge count in */
    tg_ncredits used;
    tg_nanos charge;
    tg_ncredits reserved;        /* every hold in flight, of any period */
    tg_nanos reserved_charge;
    uint32_t fired;              /* thresholds crossed in the period (bits of plan->thresholds) */
    tg_grant *g;                 /* burn order */
    size_t n, cap;
};

/* A base/pmap.h map keyed by (app, customer): looked up on every request
 * of a customer on a plan, without a lock. */
struct tg_accounts {
    tg_pmap *map;
};

static void account_free(void *obj)
{
    tg_account *acc = obj;
    pthread_mutex_destroy(&acc->mu);
    free(acc->g);
    free(acc->app);
    free(acc->customer);
    free(acc);
}

tg_accounts *tg_accounts_new(void)
{
    tg_accounts *a = calloc(1, sizeof *a);
    if (a && !(a->map = tg_pmap_new())) {
        free(a);
        a = NULL;
    }
    return a;
}

void tg_accounts_free(tg_accounts *a)
{
    if (!a) return;
    tg_pmap_free(a->map, account_free);
    free(a);
}

typedef struct {
    tg_str app, customer;
} account_key;

static bool is(const void *obj, const void *key)
{
    const tg_account *acc = obj;
    const account_key *k = key;
    return tg_str_eq(tg_str_c(acc->app), k->app) && tg_str_eq(tg_str_c(acc->customer), k->customer);
}

static char *dup_str(tg_str s)
{
    char *p = malloc(s.n + 1);
    if (p) {
        memcpy(p, s.p, s.n);
        p[s.n] = '\0';
    }
    return p;
}

static void *account_new(void *ud)
{
    const account_key *k = ud;
    tg_account *acc = calloc(1, sizeof *acc);
    if (acc && (!(acc->app = dup_str(k->app)) || !(acc->customer = dup_str(k->customer)))) {
        free(acc->app);
        free(acc);
        return NULL;
    }
    if (acc) pthread_mutex_init(&acc->mu, NULL);
    return acc;
}

tg_account *tg_accounts_get(tg_accounts *a, tg_str app, tg_str customer)
{
    account_key k = {app, customer};
    uint64_t h = tg_hash64(customer.p, customer.n, tg_hash64(app.p, app.n, 0xacc0) ^ app.n);
    return tg_pmap_get_or_add(a->map, h, &k, is, account_new, &k);
}

/* ---- grants ---- */

static int push_grant(tg_account *acc, const tg_grant *g)
{
    for (size_t i = 0; i < acc->n; i++)
        if (!strcmp(acc->g[i].id, g->id)) return TG_OK;
    if (acc->n == acc->cap) {
        size_t cap = acc->cap ? acc->cap * 2 : 4;
        tg_grant *n = realloc(acc->g, cap * sizeof *n);
        if (!n) return TG_ENOMEM;
        acc->g = n;
        acc->cap = cap;
    }
    acc->g[acc->n++] = *g;
    tg_wallet_order(acc->g, acc->n);
    return TG_OK;
}

int tg_account_add_grant(tg_account *acc, const tg_grant *g)
{
    pthread_mutex_lock(&acc->mu);
    int rc = push_grant(acc, g);
    pthread_mutex_unlock(&acc->mu);
    return rc;
}

/* The period's included grant, made from the plan unless the account has
 * it (from the store, or made before). Under acc->mu. */
static void ensure_included(tg_account *acc, const tg_plan *plan)
{
    if (!plan || plan->included <= 0) return;
    const tg_period *p = &acc->period;
    tg_grant inc = {.kind = TG_GRANT_INCLUDED, .created_ms = p->start_ms, .expires_ms = p->end_ms,
                    .granted = plan->included, .left = plan->included};
    tg_grant_included_id(p->name, inc.id);
    push_grant(acc, &inc); /* a no-op when it is there; on out of memory the period has no
                              included credits, which refuses rather than overspends */
}

void tg_account_set_use(tg_account *acc, const tg_plan *plan, const tg_period *p,
                        tg_ncredits credits, tg_nanos charge)
{
    pthread_mutex_lock(&acc->mu);
    acc->period = *p;
    acc->have_period = true;
    acc->used = credits;
    acc->charge = charge;
    acc->fired = 0;
    ensure_included(acc, plan);
    pthread_mutex_unlock(&acc->mu);
}

/* Drops grants that are empty, or expired a day ago (a hold of the period
 * before may still settle against an included grant for a while). */
static void prune(tg_account *acc, int64_t now_ms)
{
    size_t k = 0;
    for (size_t i = 0; i < acc->n; i++) {
        const tg_grant *g = &acc->g[i];
        if (g->left <= 0 || (g->expires_ms && g->expires_ms + MS_DAY <= now_ms)) continue;
        acc->g[k++] = *g;
    }
    acc->n = k;
}

/* Moves the account to now's period: a new one starts with nothing used
 * and its plan's included credits. Under acc->mu. */
static void roll(tg_account *acc, const tg_plan *plan, uint32_t anchor_day, int64_t now_ms)
{
    if (acc->have_period && now_ms >= acc->period.start_ms && now_ms < acc->period.end_ms) return;
    tg_period p;
    tg_period_at(anchor_day, now_ms, &p);
    bool same = acc->have_period && !strcmp(p.name, acc->period.name);
    acc->period = p;
    acc->have_period = true;
    if (!same) { /* (same: the anchor day changed on a reload) */
        prune(acc, now_ms);
        acc->used = 0;
        acc->charge = 0;
        acc->fired = 0;
    }
    ensure_included(acc, plan);
}

static void state(const tg_account *acc, int64_t now_ms, tg_account_state *st)
{
    memset(st, 0, sizeof *st);
    st->period = acc->period;
    char inc[TG_GRANT_ID_MAX + 1];
    tg_grant_included_id(acc->period.name, inc);
    for (size_t i = 0; i < acc->n; i++) {
        const tg_grant *g = &acc->g[i];
        if (!strcmp(g->id, inc)) {
            st->included = g->granted;
            st->included_left = g->left;
        } else if (tg_grant_usable(g, now_ms)) {
            st->grants_left += g->left;
        }
    }
    st->used = acc->used;
    st->charge = acc->charge;
    st->reserved = acc->reserved;
    st->reserved_charge = acc->reserved_charge;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? (b > 0 ? INT64_MAX : INT64_MIN) : r;
}

/* Whether the account can hold (credits, charge) more. Under acc->mu. */
static tg_account_verdict fits(const tg_account *acc, const tg_plan *plan, int64_t now_ms,
                               tg_ncredits credits, tg_nanos charge)
{
    if (!plan->has_overage) {
        tg_ncredits avail = tg_wallet_available(acc->g, acc->n, now_ms);
        if (sat_add(acc->reserved, credits) > avail) return TG_ACCOUNT_NO_CREDITS;
    }
    if (plan->cap == TG_CAP_CREDITS &&
        sat_add(sat_add(acc->used, acc->reserved), credits) > plan->cap_credits)
        return TG_ACCOUNT_CAP_CREDITS;
    if (plan->cap == TG_CAP_USD &&
        sat_add(sat_add(acc->charge, acc->reserved_charge), charge) > plan->cap_usd)
        return TG_ACCOUNT_CAP_USD;
    return TG_ACCOUNT_OK;
}

tg_account_verdict tg_account_reserve(tg_account *acc, const tg_account_ask *ask,
                                      tg_account_hold *hold, tg_account_state *st)
{
    assert(ask->credits >= 0 && ask->charge >= 0);
    pthread_mutex_lock(&acc->mu);
    roll(acc, ask->plan, ask->anchor_day, ask->now_ms);
    tg_account_verdict v = fits(acc, ask->plan, ask->now_ms, ask->credits, ask->charge);
    if (v == TG_ACCOUNT_OK) {
        acc->reserved += ask->credits;
        acc->reserved_charge += ask->charge;
        *hold = (tg_account_hold){.acc = acc, .credits = ask->credits, .charge = ask->charge};
        memcpy(hold->period, acc->period.name, sizeof hold->period);
    }
    if (st) state(acc, ask->now_ms, st);
    pthread_mutex_unlock(&acc->mu);
    return v;
}

tg_account_verdict tg_account_extend(tg_account_hold *hold, const tg_account_ask *more)
{
    tg_account *acc = hold->acc;
    pthread_mutex_lock(&acc->mu);
    roll(acc, more->plan, more->anchor_day, more->now_ms);
    tg_account_verdict v = fits(acc, more->plan, more->now_ms, more->credits, more->charge);
    if (v == TG_ACCOUNT_OK) {
        acc->reserved += more->credits;
        acc->reserved_charge += more->charge;
        hold->credits += more->credits;
        hold->charge += more->charge;
    }
    pthread_mutex_unlock(&acc->mu);
    return v;
}

void tg_account_room(const tg_account_hold *hold, const tg_account_ask *ask, tg_ncredits *credits,
                     tg_nanos *charge)
{
    tg_account *acc = hold->acc;
    const tg_plan *plan = ask->plan;
    pthread_mutex_lock(&acc->mu);
    roll(acc, plan, ask->anchor_day, ask->now_ms);
    tg_ncredits c = INT64_MAX;
    tg_nanos m = INT64_MAX;
    tg_ncredits others = acc->reserved - hold->credits;
    if (!plan->has_overage) {
        tg_ncredits free = tg_wallet_available(acc->g, acc->n, ask->now_ms) - others;
        c = free > 0 ? free : 0;
    }
    if (plan->cap == TG_CAP_CREDITS) {
        tg_ncredits free = plan->cap_credits - acc->used - others;
        if (free < c) c = free > 0 ? free : 0;
    }
    if (plan->cap == TG_CAP_USD) {
        tg_nanos free = plan->cap_usd - acc->charge - (acc->reserved_charge - hold->charge);
        m = free > 0 ? free : 0;
    }
    pthread_mutex_unlock(&acc->mu);
    *credits = c;
    *charge = m;
}

/* The thresholds (bits) that used crossing from `before` to `after` of
 * included passes. */
static uint32_t crossed(const tg_plan *plan, tg_ncredits included, tg_ncredits before,
                        tg_ncredits after)
{
    uint32_t bits = 0;
    if (included <= 0) return 0;
    for (size_t i = 0; i < plan->nthresholds; i++) {
        __int128 at = (__int128)included * plan->thresholds[i];
        if ((__int128)before * 100 < at && (__int128)after * 100 >= at) bits |= 1u << i;
    }
    return bits;
}

uint32_t tg_account_settle(tg_account_hold *hold, const tg_plan *plan, int64_t t_ms,
                           tg_ncredits credits, tg_nanos charge)
{
    tg_account *acc = hold->acc;
    uint32_t bits = 0;
    /* reserve rolled the account: a hold is of its period or an earlier one */
    pthread_mutex_lock(&acc->mu);
    acc->reserved -= hold->credits;
    acc->reserved_charge -= hold->charge;
    assert(acc->reserved >= 0 && acc->reserved_charge >= 0);
    tg_wallet_burn(acc->g, acc->n, credits, t_ms, NULL);
    if (!strcmp(hold->period, acc->period.name)) {
        tg_account_state st;
        state(acc, t_ms, &st);
        bits = crossed(plan, st.included, acc->used, acc->used + credits) & ~acc->fired;
        acc->fired |= bits;
        acc->used += credits;
        acc->charge += charge;
    }
    pthread_mutex_unlock(&acc->mu);
    hold->acc = NULL;
    return bits;
}

void tg_account_state_of(tg_account *acc, const tg_plan *plan, uint32_t anchor_day, int64_t now_ms,
                         tg_account_state *st)
{
    pthread_mutex_lock(&acc->mu);
    roll(acc, plan, anchor_day, now_ms);
    state(acc, now_ms, st);
    pthread_mutex_unlock(&acc->mu);
}
