/* Running a close: read the store in one snapshot, sum what each
 * customer used and bought, make the documents, write them in one
 * transaction. See close.h and docs/invoices.md ("Closing").
 *
 * The usage of the period is read record by record (not from rollups:
 * action units, credits and the chunk a record was stored in are only in
 * the records), once, into hash maps by (app, customer) and by
 * (provider, offering). */
#include "bill/close.h"

#include "base/hash.h"
#include "base/money.h"
#include "store/close.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS 86400000LL

/* One (app, customer): its sums, and what the close learns of it. */
typedef struct {
    tg_close_acct a;
    uint64_t hash;
    size_t cap_applied, cap_bought, cap_late, cap_changes;
    tg_ncredits burned;      /* the wallet's "usage" entries for the period */
    /* the plan history: from the store's plan changes, else the file's or
     * the customers table's plan */
    struct change {
        int64_t t_ms;
        char plan[TG_TAG_MAX + 1];
    } *changes;
    size_t nchanges;
    bool in_file, in_store;
    char plan_now[TG_TAG_MAX + 1];
    int64_t first_seen_ms;
    /* every grant made for it, for the kind of the ones the period burned */
    tg_grant_sum *grants;
    size_t ngrants, cap_grants;
} acct;

/* An app's period (an unknown app's: anchor day 1). */
typedef struct {
    char id[TG_TAG_MAX + 1];
    uint32_t anchor;
    tg_period p;
} app_period;

typedef struct {
    const tg_config *cfg;
    tg_store *s;
    const char *name;         /* the period */
    tg_errmsg *err;
    acct *v;
    size_t n, cap;
    uint32_t *slots;          /* index + 1; 0 empty */
    size_t nslots;
    tg_settle_row *set;
    uint64_t *set_hash;
    size_t nset, capset;
    uint32_t *set_slots;
    size_t nset_slots;
    app_period *apps;
    size_t napps, capapps;
    size_t last_app;          /* records of one app come in runs */
    const tg_close_state *final; /* the last finalized close; NULL */
    const tg_close_state *first; /* the first close; NULL */
} ctx;

static uint64_t pair_hash(const char *a, const char *b)
{
    return tg_hash64(a, strlen(a), 0x5bd1e995) * 31 + tg_hash64(b, strlen(b), 0x27d4eb2f);
}

static int fail_mem(ctx *c)
{
    tg_errmsg_set(c->err, "out of memory");
    return TG_ENOMEM;
}

/* Rebuilds an index of n entries with hashes hash(i) into *slots. */
static int reindex(uint32_t **slots, size_t *nslots, size_t n, uint64_t (*hash)(ctx *, size_t), ctx *c)
{
    size_t ns = *nslots ? *nslots : 64;
    while (ns < 2 * (n + 1)) ns *= 2;
    if (ns == *nslots) return TG_OK;
    uint32_t *sl = calloc(ns, sizeof *sl);
    if (!sl) return TG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t j = hash(c, i) & (ns - 1);
        while (sl[j]) j = (j + 1) & (ns - 1);
        sl[j] = (uint32_t)i + 1;
    }
    free(*slots);
    *slots = sl;
    *nslots = ns;
    return TG_OK;
}

static uint64_t acct_hash(ctx *c, size_t i) { return c->v[i].hash; }
static uint64_t set_hash(ctx *c, size_t i) { return c->set_hash[i]; }

static void copy_tag(char dst[TG_TAG_MAX + 1], const char *src)
{
    size_t l = strnlen(src, TG_TAG_MAX);
    memcpy(dst, src, l);
    dst[l] = '\0';
}

/* The account of (app, customer), made when new; NULL: out of memory. */
static acct *acct_get(ctx *c, const char *app, const char *customer)
{
    uint64_t h = pair_hash(app, customer);
    if (c->nslots) {
        for (size_t j = h & (c->nslots - 1);; j = (j + 1) & (c->nslots - 1)) {
            uint32_t k = c->slots[j];
            if (!k) break;
            acct *a = &c->v[k - 1];
            if (a->hash == h && !strcmp(a->a.app, app) && !strcmp(a->a.customer, customer)) return a;
        }
    }
    if (tg_array_grow(&c->v, &c->cap, c->n, sizeof *c->v) ||
        reindex(&c->slots, &c->nslots, c->n + 1, acct_hash, c))
        return NULL;
    acct *a = &c->v[c->n];
    memset(a, 0, sizeof *a);
    a->hash = h;
    copy_tag(a->a.app, app);
    copy_tag(a->a.customer, customer);
    size_t j = h & (c->nslots - 1);
    while (c->slots[j]) j = (j + 1) & (c->nslots - 1);
    c->slots[j] = (uint32_t)++c->n;
    return a;
}

static tg_settle_row *settle_get(ctx *c, const char *provider, const char *offering)
{
    uint64_t h = pair_hash(provider, offering);
    if (c->nset_slots) {
        for (size_t j = h & (c->nset_slots - 1);; j = (j + 1) & (c->nset_slots - 1)) {
            uint32_t k = c->set_slots[j];
            if (!k) break;
            tg_settle_row *r = &c->set[k - 1];
            if (c->set_hash[k - 1] == h && !strcmp(r->provider, provider) &&
                !strcmp(r->offering, offering))
                return r;
        }
    }
    size_t caph = c->capset;
    if (tg_array_grow(&c->set, &c->capset, c->nset, sizeof *c->set) ||
        tg_array_grow(&c->set_hash, &caph, c->nset, sizeof *c->set_hash))
        return NULL;
    c->set_hash[c->nset] = h;
    if (reindex(&c->set_slots, &c->nset_slots, c->nset + 1, set_hash, c)) return NULL;
    tg_settle_row *r = &c->set[c->nset];
    memset(r, 0, sizeof *r);
    copy_tag(r->provider, provider);
    copy_tag(r->offering, offering);
    size_t j = h & (c->nset_slots - 1);
    while (c->set_slots[j]) j = (j + 1) & (c->nset_slots - 1);
    c->set_slots[j] = (uint32_t)++c->nset;
    return r;
}

/* The period of app (by its anchor day; 1 for an app the configuration
 * does not define); NULL: out of memory. */
static app_period *app_of(ctx *c, const char *app)
{
    if (c->last_app < c->napps && !strcmp(c->apps[c->last_app].id, app)) return &c->apps[c->last_app];
    for (size_t i = 0; i < c->napps; i++)
        if (!strcmp(c->apps[i].id, app)) return &c->apps[c->last_app = i];
    if (tg_array_grow(&c->apps, &c->capapps, c->napps, sizeof *c->apps)) return NULL;
    app_period *ap = &c->apps[c->napps];
    copy_tag(ap->id, app);
    const tg_app *a = tg_config_app(c->cfg, tg_str_c(app));
    ap->anchor = a ? a->period_anchor_day : 1;
    if (tg_period_named(ap->anchor, tg_str_c(c->name), &ap->p)) return NULL;
    c->last_app = c->napps++;
    return ap;
}

/* The day of ap's period that holds t (clamped to the period's days). */
static size_t day_of(const app_period *ap, int64_t t)
{
    int64_t d = (t - ap->p.start_ms) / DAY_MS, last = (ap->p.end_ms - ap->p.start_ms) / DAY_MS - 1;
    return (size_t)(d < 0 ? 0 : d > last ? last : d);
}

static int add_money(ctx *c, tg_nanos *sum, tg_nanos v)
{
    if (tg_money_add(*sum, v, sum)) return tg_errmsg_set(c->err, "a sum of usage is too large to count");
    return TG_OK;
}

static int add_settle(ctx *c, const tg_usage_rec *r)
{
    if (!r->offering[0] && !r->cost) return TG_OK;
    tg_settle_row *s = settle_get(c, r->provider, r->offering);
    if (!s) return fail_mem(c);
    s->records++;
    s->tokens.prompt += r->tokens.prompt;
    s->tokens.cached += r->tokens.cached;
    s->tokens.cache_write += r->tokens.cache_write;
    s->tokens.completion += r->tokens.completion;
    s->tokens.reasoning += r->tokens.reasoning;
    return add_money(c, &s->cost_exact, r->cost);
}

/* A record of the period. */
static int on_record(void *ud, const tg_usage_rec *r)
{
    ctx *c = ud;
    app_period *ap = app_of(c, r->tags.app);
    if (!ap) return fail_mem(c);
    if (r->t_start_ms < ap->p.start_ms || r->t_start_ms >= ap->p.end_ms) return TG_OK;
    acct *a = acct_get(c, r->tags.app, r->tags.customer);
    if (!a) return fail_mem(c);
    tg_close_acct *x = &a->a;
    x->records++;
    int rc = add_money(c, &x->charge, r->charge);
    if (!rc) rc = add_money(c, &x->cost, r->cost);
    if (!rc) rc = add_money(c, &x->margin, r->margin);
    if (!rc) rc = add_money(c, &x->fee, r->fee);
    if (!rc) rc = add_money(c, &x->credits, r->credits);
    if (rc) return rc;
    x->day_credits[day_of(ap, r->t_start_ms)] += r->credits;
    /* the plan the record was made on says how it is billed */
    tg_usage_sums *k = r->tags.plan[0] ? &x->on_plan : &x->metered;
    if (!r->tags.unit[0]) {
        k->plain_records++;
        rc = add_money(c, &k->plain_charge, r->charge);
        if (!rc) rc = add_money(c, &k->plain_credits, r->credits);
    } else {
        tg_unit_sum *u = NULL;
        for (size_t i = 0; i < k->nunits && !u; i++)
            if (!strcmp(k->units[i].unit, r->tags.unit)) u = &k->units[i];
        if (!u) {
            if (tg_array_grow(&k->units, &k->cap_units, k->nunits, sizeof *k->units)) return fail_mem(c);
            u = &k->units[k->nunits++];
            memset(u, 0, sizeof *u);
            copy_tag(u->unit, r->tags.unit);
        }
        u->records++;
        u->count += r->tags.unit_count;
        rc = add_money(c, &u->charge, r->charge);
        if (!rc) rc = add_money(c, &u->credits, r->credits);
    }
    return rc ? rc : add_settle(c, r);
}

/* A record stored after the last finalized close: late when it belongs
 * to a closed period. */
static int on_late(void *ud, const tg_usage_rec *r)
{
    ctx *c = ud;
    app_period *ap = app_of(c, r->tags.app);
    if (!ap) return fail_mem(c);
    if (r->t_start_ms >= ap->p.start_ms) return TG_OK; /* this period's, or a later one's */
    tg_period p;
    tg_period_at(ap->anchor, r->t_start_ms, &p);
    if (strcmp(p.name, c->first->period) < 0) return TG_OK; /* before billing began */
    acct *a = acct_get(c, r->tags.app, r->tags.customer);
    if (!a) return fail_mem(c);
    tg_close_acct *x = &a->a;
    tg_late_sum *l = NULL;
    for (size_t i = 0; i < x->nlate && !l; i++)
        if (!strcmp(x->late[i].period, p.name)) l = &x->late[i];
    if (!l) {
        if (tg_array_grow(&x->late, &a->cap_late, x->nlate, sizeof *x->late)) return fail_mem(c);
        l = &x->late[x->nlate++];
        memset(l, 0, sizeof *l);
        memcpy(l->period, p.name, sizeof l->period);
    }
    l->records++;
    int rc = add_money(c, &l->charge, r->charge);
    if (!rc) rc = add_money(c, &l->cost, r->cost);
    if (!rc) rc = add_money(c, &l->fee, r->fee);
    if (!rc) rc = add_money(c, &l->credits, r->credits);
    return rc ? rc : add_settle(c, r);
}

/* ---- the wallet ---- */

static tg_grant_sum grant_sum(const tg_grant *g, tg_nanos paid, bool late)
{
    tg_grant_sum s = {.kind = g->kind, .credits = g->granted, .paid = paid, .late = late};
    memcpy(s.id, g->id, sizeof s.id);
    return s;
}

static int on_grant(void *ud, const char *app, const char *customer, const tg_grant *g, tg_nanos paid)
{
    ctx *c = ud;
    acct *a = acct_get(c, app, customer);
    if (!a || tg_array_grow(&a->grants, &a->cap_grants, a->ngrants, sizeof *a->grants)) return fail_mem(c);
    tg_grant_sum *s = &a->grants[a->ngrants++];
    *s = grant_sum(g, paid, false);
    app_period *ap = app_of(c, app);
    if (!ap) return fail_mem(c);
    if (g->kind != TG_GRANT_PAID || g->created_ms < ap->p.start_ms || g->created_ms >= ap->p.end_ms)
        return TG_OK;
    tg_close_acct *x = &a->a;
    if (tg_array_grow(&x->bought, &a->cap_bought, x->nbought, sizeof *x->bought)) return fail_mem(c);
    x->bought[x->nbought++] = *s;
    return TG_OK;
}

/* A paid grant made after the last finalized close, for a closed period. */
static int on_late_grant(void *ud, const char *app, const char *customer, const tg_grant *g,
                         tg_nanos paid)
{
    ctx *c = ud;
    app_period *ap = app_of(c, app);
    if (!ap) return fail_mem(c);
    if (g->kind != TG_GRANT_PAID || g->created_ms >= ap->p.start_ms) return TG_OK;
    tg_period p;
    tg_period_at(ap->anchor, g->created_ms, &p);
    if (strcmp(p.name, c->first->period) < 0) return TG_OK;
    acct *a = acct_get(c, app, customer);
    if (!a || tg_array_grow(&a->a.bought, &a->cap_bought, a->a.nbought, sizeof *a->a.bought))
        return fail_mem(c);
    a->a.bought[a->a.nbought++] = grant_sum(g, paid, true);
    return TG_OK;
}

static int on_burn(void *ud, const char *app, const char *customer, const char *account,
                   int64_t day_ms, tg_ncredits credits)
{
    ctx *c = ud;
    acct *a = acct_get(c, app, customer);
    app_period *ap = app_of(c, app);
    if (!a || !ap) return fail_mem(c);
    if (!strcmp(account, "usage")) {
        a->burned += credits;
        return TG_OK;
    }
    if (strncmp(account, "grant:", 6) || !strncmp(account + 6, "inc:", 4)) return TG_OK;
    const char *id = account + 6;
    tg_close_acct *x = &a->a;
    x->day_grants[day_of(ap, day_ms)] -= credits;
    for (size_t i = 0; i < x->napplied; i++)
        if (!strcmp(x->applied[i].id, id)) {
            x->applied[i].credits -= credits;
            return TG_OK;
        }
    tg_grant_sum g = {.kind = TG_GRANT_PAID, .credits = -credits};
    snprintf(g.id, sizeof g.id, "%s", id);
    for (size_t i = 0; i < a->ngrants; i++)
        if (!strcmp(a->grants[i].id, id)) g.kind = a->grants[i].kind;
    if (tg_array_grow(&x->applied, &a->cap_applied, x->napplied, sizeof *x->applied)) return fail_mem(c);
    x->applied[x->napplied++] = g;
    return TG_OK;
}

typedef struct {
    ctx *c;
    const char *period;
} late_burn;

static int on_late_burn(void *ud, const char *app, const char *customer, const char *account,
                        int64_t day_ms, tg_ncredits credits)
{
    late_burn *lb = ud;
    (void)day_ms;
    if (strncmp(account, "grant:", 6)) return TG_OK; /* allowance and grants cover */
    acct *a = acct_get(lb->c, app, customer);
    if (!a) return fail_mem(lb->c);
    for (size_t i = 0; i < a->a.nlate; i++)
        if (!strcmp(a->a.late[i].period, lb->period)) a->a.late[i].from_grants -= credits;
    return TG_OK;
}

/* The late periods the accounts have, each once, into lb (sorted names). */
static int late_burns(ctx *c, const tg_close_state *now)
{
    char done[64][8];
    size_t ndone = 0;
    for (size_t i = 0; i < c->n; i++)
        for (size_t k = 0; k < c->v[i].a.nlate; k++) {
            const char *p = c->v[i].a.late[k].period;
            bool seen = false;
            for (size_t j = 0; j < ndone && !seen; j++) seen = !strcmp(done[j], p);
            if (seen) continue;
            if (ndone == sizeof done / sizeof *done)
                return tg_errmsg_set(c->err, "late usage of more than 64 closed periods at once");
            memcpy(done[ndone++], p, 8);
            late_burn lb = {c, p};
            int rc = tg_store_each_burn_sum(c->s, p, now->late_tx, now->through_tx, on_late_burn,
                                            &lb, c->err);
            if (rc) return rc;
        }
    return TG_OK;
}

/* ---- plans ---- */

static int on_change(void *ud, const char *app, const char *customer, int64_t t_ms, const char *plan)
{
    ctx *c = ud;
    acct *a = acct_get(c, app, customer);
    if (!a || tg_array_grow(&a->changes, &a->cap_changes, a->nchanges, sizeof *a->changes)) return fail_mem(c);
    a->changes[a->nchanges].t_ms = t_ms;
    copy_tag(a->changes[a->nchanges++].plan, plan);
    return TG_OK;
}

static int on_customer(void *ud, const char *app, const char *id, const char *plan, int64_t first_ms)
{
    ctx *c = ud;
    acct *a = acct_get(c, app, id);
    if (!a) return fail_mem(c);
    if (a->in_file) return TG_OK; /* the file's plan wins */
    a->in_store = true;
    copy_tag(a->plan_now, plan);
    a->first_seen_ms = first_ms;
    return TG_OK;
}

static int plan_named(ctx *c, const acct *a, const char *id, const tg_plan **out)
{
    *out = NULL;
    if (!id[0]) return TG_OK;
    if ((*out = tg_config_plan(c->cfg, tg_str_c(id)))) return TG_OK;
    return tg_errmsg_set(c->err,
                         "customer '%s' of app '%s' was on plan '%s' in %s, which the configuration "
                         "no longer defines; restore the plan to close the period",
                         a->a.customer, a->a.app, id, c->name);
}

static int64_t floor_day(int64_t ms) { return ms - ((ms % DAY_MS) + DAY_MS) % DAY_MS; }

static int add_span(acct *a, const tg_plan *p, int64_t from, int64_t to, size_t *cap)
{
    tg_close_acct *x = &a->a;
    if (!p || from >= to) return TG_OK;
    if (x->nspans && x->spans[x->nspans - 1].plan == p && x->spans[x->nspans - 1].to_ms == from) {
        x->spans[x->nspans - 1].to_ms = to;
        return TG_OK;
    }
    if (tg_array_grow(&x->spans, cap, x->nspans, sizeof *x->spans)) return TG_ENOMEM;
    x->spans[x->nspans++] = (tg_plan_span){p, from, to};
    return TG_OK;
}

/* The plan of a at t (its history's, else its current one). */
static int plan_at(ctx *c, const acct *a, int64_t t, const tg_plan **out)
{
    if (!a->nchanges) {
        if (a->in_store && t < floor_day(a->first_seen_ms)) return *out = NULL, TG_OK;
        return plan_named(c, a, a->plan_now, out);
    }
    const char *id = "";
    for (size_t i = 0; i < a->nchanges && floor_day(a->changes[i].t_ms) <= t; i++) id = a->changes[i].plan;
    return plan_named(c, a, id, out);
}

/* a's plans over the period, on whole days: a plan changes on the day
 * of a change in its history (or, without one, on the day the store
 * first saw the customer). */
static int spans_of(ctx *c, acct *a)
{
    const tg_period *p = &a->a.period;
    size_t cap = 0, nb = a->nchanges ? a->nchanges : a->in_store;
    int64_t from = p->start_ms;
    for (size_t i = 0; i <= nb && from < p->end_ms; i++) {
        int64_t at = p->end_ms;
        if (i < nb) at = floor_day(a->nchanges ? a->changes[i].t_ms : a->first_seen_ms);
        if (at <= from) continue;
        if (at > p->end_ms) at = p->end_ms;
        const tg_plan *cur;
        int rc = plan_at(c, a, from, &cur);
        if (rc) return rc;
        if (add_span(a, cur, from, at, &cap)) return fail_mem(c);
        from = at;
    }
    return TG_OK;
}

/* ---- putting it together ---- */

static int cmp_acct(const void *pa, const void *pb)
{
    const acct *a = pa, *b = pb;
    int r = strcmp(a->a.app, b->a.app);
    return r ? r : strcmp(a->a.customer, b->a.customer);
}

static int cmp_settle(const void *pa, const void *pb)
{
    const tg_settle_row *a = pa, *b = pb;
    int r = strcmp(a->provider, b->provider);
    return r ? r : strcmp(a->offering, b->offering);
}

static void ctx_release(ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        acct *a = &c->v[i];
        free(a->a.spans);
        free(a->a.metered.units);
        free(a->a.on_plan.units);
        free(a->a.applied);
        free(a->a.bought);
        free(a->a.late);
        free(a->changes);
        free(a->grants);
    }
    free(c->v);
    free(c->slots);
    free(c->set_hash);
    free(c->set_slots);
    free(c->apps);
}

/* Whether a gets an invoice. */
static bool billed(const acct *a)
{
    const tg_close_acct *x = &a->a;
    return x->customer[0] && (x->records || x->nlate || x->nbought || x->nspans);
}

static int make_docs(ctx *c, tg_close_docs *d)
{
    if (c->n > 1) qsort(c->v, c->n, sizeof *c->v, cmp_acct); /* the index is not used after this */
    size_t ninv = 0, nrows = 0;
    for (size_t i = 0; i < c->n; i++) {
        const tg_close_acct *x = &c->v[i].a;
        ninv += billed(&c->v[i]);
        nrows += billed(&c->v[i]) || x->records || x->nlate;
    }
    d->inv = calloc(ninv ? ninv : 1, sizeof *d->inv);
    d->stmt = calloc(nrows ? nrows : 1, sizeof *d->stmt);
    if (!d->inv || !d->stmt) return fail_mem(c);
    int rc = TG_OK;
    tg_nanos cost_cents = 0;
    for (size_t i = 0; !rc && i < c->n; i++) {
        acct *a = &c->v[i];
        tg_close_acct *x = &a->a;
        if (x->credits != a->burned)
            return tg_errmsg_set(c->err,
                                 "customer '%s' of app '%s': its usage records of %s consume %lld "
                                 "nano-credits but the wallet ledger burned %lld; was the app's "
                                 "period_anchor_day changed during the period?",
                                 x->customer, x->app, c->name, (long long)x->credits,
                                 (long long)a->burned);
        tg_invoice *inv = NULL;
        if (billed(a)) {
            char id[TG_INVOICE_ID_MAX + 1];
            snprintf(id, sizeof id, "INV-%s-%05zu", c->name, d->ninv + 1);
            inv = &d->inv[d->ninv];
            if ((rc = tg_invoice_make(x, id, inv, c->err))) break;
            d->ninv++;
        } else if (!x->records && !x->nlate) {
            continue;
        }
        tg_stmt_row_make(x, inv, &d->stmt[d->nstmt++]);
    }
    if (!rc) rc = tg_stmt_cents(d->stmt, d->nstmt, &cost_cents, c->err);
    if (rc) return rc;
    if (c->nset > 1) qsort(c->set, c->nset, sizeof *c->set, cmp_settle);
    if ((rc = tg_settle_cents(c->set, c->nset, cost_cents, c->err))) return rc;
    d->settle = c->set;
    d->nsettle = c->nset;
    c->set = NULL;
    c->nset = 0;
    return TG_OK;
}

/* The documents add up (the checks DESIGN.md's Money asks of every
 * close; a failure is a bug, reported rather than written). */
static int check_docs(ctx *c, const tg_close_docs *d)
{
    __int128 billed = 0, inv = 0, cost = 0, settled = 0, cost_exact = 0, settled_exact = 0;
    for (size_t i = 0; i < d->ninv; i++) inv += d->inv[i].subtotal;
    for (size_t i = 0; i < d->nstmt; i++) {
        const tg_stmt_row *r = &d->stmt[i];
        if (r->billed != r->cost + r->fee + r->earnings ||
            r->billed_exact != r->cost_exact + r->fee_exact + r->earnings_exact)
            return tg_errmsg_set(c->err, "the statement row of customer '%s' does not add up",
                                 r->customer);
        billed += r->billed;
        cost += r->cost;
        cost_exact += r->cost_exact;
    }
    for (size_t i = 0; i < d->nsettle; i++) {
        settled += d->settle[i].cost;
        settled_exact += d->settle[i].cost_exact;
    }
    if (billed != inv || cost != settled || cost_exact != settled_exact)
        return tg_errmsg_set(c->err, "the documents of %s do not add up", c->name);
    return TG_OK;
}

/* The latest end of the period over every app. */
static int64_t period_end(ctx *c)
{
    int64_t end = 0;
    for (size_t i = 0; i < c->napps; i++)
        if (c->apps[i].p.end_ms > end) end = c->apps[i].p.end_ms;
    return end;
}

static int check_order(ctx *c, const tg_close_state *closes, size_t n, const tg_close_opts *o,
                       const tg_close_state **mine)
{
    *mine = NULL;
    for (size_t i = 0; i < n; i++) {
        if (closes[i].finalized) c->final = &closes[i];
        if (!strcmp(closes[i].period, o->period)) *mine = &closes[i];
    }
    c->first = n ? &closes[0] : NULL;
    if (*mine && (*mine)->finalized) return TG_OK;
    if (c->final) {
        tg_period f, next;
        tg_period_named(1, tg_str_c(c->final->period), &f);
        tg_period_at(1, f.end_ms, &next);
        if (strcmp(o->period, next.name))
            return tg_errmsg_set(c->err,
                                 "periods close in order: %s is the last finalized, so the next "
                                 "to close is %s, not %s",
                                 c->final->period, next.name, o->period);
    }
    return TG_OK;
}

static int gather(ctx *c, const tg_close_opts *o, tg_close_state *st)
{
    int rc = tg_store_marks(c->s, &st->through_seq, &st->through_tx, c->err);
    /* every app's period, and the file's customers with their plans */
    for (size_t i = 0; !rc && i < c->cfg->napps; i++)
        if (!app_of(c, c->cfg->apps[i].id)) rc = fail_mem(c);
    for (size_t i = 0; !rc && i < c->cfg->ncustomers; i++) {
        const tg_customer *cu = &c->cfg->customers[i];
        acct *a = acct_get(c, cu->app->id, cu->id);
        if (!a) return fail_mem(c);
        a->in_file = true;
        copy_tag(a->plan_now, cu->plan ? cu->plan->id : "");
    }
    if (!rc) rc = tg_store_each_customer(c->s, on_customer, c, c->err);
    if (!rc) rc = tg_store_each_plan_change(c->s, on_change, c, c->err);
    int64_t from = INT64_MAX, to = 0;
    for (size_t i = 0; i < c->napps; i++) {
        if (c->apps[i].p.start_ms < from) from = c->apps[i].p.start_ms;
        if (c->apps[i].p.end_ms > to) to = c->apps[i].p.end_ms;
    }
    if (!c->napps) {
        tg_period p;
        tg_period_named(1, tg_str_c(o->period), &p);
        from = p.start_ms;
        to = p.end_ms;
    }
    /* records of an app the configuration does not name find their period
     * as they come; one with anchor 1 may start before `from` only when
     * some app's anchor is later, so read from a month before then */
    int64_t lo = from - 31 * DAY_MS;
    if (!rc) rc = tg_store_each_record_seq(c->s, 0, st->through_seq, lo, to, on_record, c, c->err);
    st->late_seq = c->final ? c->final->through_seq : st->through_seq;
    st->late_tx = c->final ? c->final->through_tx : st->through_tx;
    if (!rc && c->first && c->final) {
        tg_period first;
        tg_period_named(1, tg_str_c(c->first->period), &first);
        rc = tg_store_each_record_seq(c->s, st->late_seq, st->through_seq, first.start_ms - 31 * DAY_MS,
                                      to, on_late, c, c->err);
        if (!rc) rc = tg_store_each_grant_made(c->s, st->late_tx, st->through_tx, on_late_grant, c, c->err);
    }
    if (!rc) rc = tg_store_each_grant_made(c->s, 0, st->through_tx, on_grant, c, c->err);
    if (!rc) rc = tg_store_each_burn_sum(c->s, o->period, 0, st->through_tx, on_burn, c, c->err);
    if (!rc) rc = late_burns(c, st);
    for (size_t i = 0; !rc && i < c->n; i++) {
        acct *a = &c->v[i];
        app_period *ap = app_of(c, a->a.app);
        if (!ap) return fail_mem(c);
        a->a.period = ap->p;
        rc = spans_of(c, a);
        for (size_t k = 0; !rc && k < a->a.nlate; k++) {
            tg_period lp;
            tg_period_named(ap->anchor, tg_str_c(a->a.late[k].period), &lp);
            rc = plan_at(c, a, lp.end_ms - 1, &a->a.late[k].plan);
        }
    }
    return rc;
}

int tg_close_period(tg_store *s, const tg_config *cfg, const tg_close_opts *o, tg_close_docs *d,
                    bool *unchanged, tg_errmsg *err)
{
    memset(d, 0, sizeof *d);
    *unchanged = false;
    tg_period check;
    if (tg_period_named(1, tg_str_c(o->period), &check))
        return tg_errmsg_set(err, "'%s' is not a period: expected a month, YYYY-MM", o->period);
    ctx c = {.cfg = cfg, .s = s, .name = o->period, .err = err};
    tg_close_state *closes = NULL;
    size_t nclose = 0;
    const tg_close_state *mine;
    int rc = tg_store_read_begin(s, err);
    if (rc) return rc;
    rc = tg_store_closes(s, &closes, &nclose, err);
    if (!rc) rc = check_order(&c, closes, nclose, o, &mine);
    if (!rc && mine && mine->finalized) {
        tg_store_read_end(s);
        free(closes);
        *unchanged = true;
        return tg_store_close_read(s, o->period, d, err);
    }
    tg_close_state st = {0};
    if (!rc) rc = gather(&c, o, &st);
    if (!rc && o->finalize && o->now_ms < period_end(&c)) {
        char end[TG_UTC_STRLEN];
        tg_utc_format(period_end(&c), end);
        rc = tg_errmsg_set(err,
                           "period %s runs until %s; it can be finalized from then on (a draft "
                           "can be made now)",
                           o->period, end);
    }
    tg_store_read_end(s);
    if (!rc) rc = make_docs(&c, d);
    if (!rc) rc = check_docs(&c, d);
    if (!rc) {
        memcpy(st.period, o->period, sizeof st.period);
        st.finalized = o->finalize;
        st.closed_ms = o->now_ms;
        st.finalized_ms = o->finalize ? o->now_ms : 0;
        d->st = st;
        for (size_t i = 0; i < nclose; i++)
            if (!closes[i].finalized && strcmp(closes[i].period, o->period))
                memcpy(d->replaced, closes[i].period, sizeof d->replaced);
        rc = tg_store_close_write(s, closes, nclose, d, err);
    }
    ctx_release(&c);
    free(c.set);
    free(closes);
    if (rc) tg_close_docs_release(d);
    return rc;
}
