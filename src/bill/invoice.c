/* An invoice from an account's sums. See close.h and docs/invoices.md
 * ("Lines"). Every line's exact amount is computed once, in nanos, from
 * the sums; its amount is that rounded half-up to cents; the invoice's
 * subtotal is the sum of the amounts, so the lines always add up. */
#include "bill/close.h"

#include "base/money.h"
#include "bill/credits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS 86400000LL

static const char *const kind_names[TG_LINE_KIND_COUNT_] = {
    "fee", "usage", "unit", "included", "grant", "overage", "topup", "late"};

const char *tg_line_kind_name(tg_line_kind k)
{
    return (unsigned)k < TG_LINE_KIND_COUNT_ ? kind_names[k] : "?";
}

int tg_line_kind_parse(const char *s, tg_line_kind *out)
{
    for (int k = 0; k < TG_LINE_KIND_COUNT_; k++)
        if (!strcmp(s, kind_names[k])) return *out = (tg_line_kind)k, TG_OK;
    return TG_EINVAL;
}

void tg_invoice_release(tg_invoice *inv)
{
    free(inv->lines);
    inv->lines = NULL;
    inv->nlines = inv->cap = 0;
}

int tg_invoice_add(tg_invoice *inv, const tg_invoice_line *l)
{
    if (inv->nlines == inv->cap) {
        size_t cap = inv->cap ? inv->cap * 2 : 8;
        tg_invoice_line *v = realloc(inv->lines, cap * sizeof *v);
        if (!v) return TG_ENOMEM;
        inv->lines = v;
        inv->cap = cap;
    }
    tg_invoice_line *d = &inv->lines[inv->nlines++];
    *d = *l;
    d->amount = tg_money_round_cents(l->exact);
    return TG_OK;
}

#define NUM_MAX TG_MONEY_GROUPED_STRLEN

static const char *num(char out[NUM_MAX], int64_t v, size_t places)
{
    tg_money_fmt_grouped(out, v, places);
    return out;
}

static void day(int64_t ms, char out[11])
{
    char t[TG_UTC_STRLEN];
    tg_utc_format(ms, t);
    memcpy(out, t, 10);
    out[10] = '\0';
}

static tg_invoice_line line(tg_line_kind k, const char *ref)
{
    tg_invoice_line l = {.kind = k, .unit_price = -1};
    snprintf(l.ref, sizeof l.ref, "%s", ref);
    return l;
}

static int too_big(tg_errmsg *err, const tg_close_acct *a, const char *what)
{
    tg_errmsg_set(err, "the %s of customer '%s' of app '%s' is too large to count", what,
                  a->customer, a->app);
    return TG_EINVAL;
}

static int fee_lines(const tg_close_acct *a, int64_t days_total, tg_invoice *inv, tg_errmsg *err)
{
    for (size_t i = 0; i < a->nspans; i++) {
        const tg_plan_span *sp = &a->spans[i];
        if (!sp->plan || sp->plan->fee == 0) continue;
        int64_t days = (sp->to_ms - sp->from_ms) / DAY_MS;
        tg_invoice_line l = line(TG_LINE_FEE, sp->plan->id);
        if (tg_money_muldiv(sp->plan->fee, days, days_total, &l.exact))
            return too_big(err, a, "plan fee");
        char from[11], to[11], fee[NUM_MAX];
        day(sp->from_ms, from);
        day(sp->to_ms - DAY_MS, to);
        num(fee, sp->plan->fee, 2);
        l.unit_price = sp->plan->fee;
        snprintf(l.qty, sizeof l.qty, "%lld/%lld days", (long long)days, (long long)days_total);
        snprintf(l.desc, sizeof l.desc, "Plan %.128s, %s to %s (%lld of %lld days of $%s)",
                 sp->plan->id, from, to, (long long)days, (long long)days_total, fee);
        if (tg_invoice_add(inv, &l)) return TG_ENOMEM;
    }
    return TG_OK;
}

/* Usage made without a plan: charged as metered, action units apart. */
static int metered_lines(const tg_usage_sums *k, tg_invoice *inv)
{
    if (k->plain_records) {
        tg_invoice_line l = line(TG_LINE_USAGE, "");
        l.exact = k->plain_charge;
        l.records = k->plain_records;
        snprintf(l.qty, sizeof l.qty, "%lld", (long long)k->plain_records);
        snprintf(l.desc, sizeof l.desc, "AI usage: %lld requests", (long long)k->plain_records);
        if (tg_invoice_add(inv, &l)) return TG_ENOMEM;
    }
    for (size_t i = 0; i < k->nunits; i++) {
        const tg_unit_sum *u = &k->units[i];
        tg_invoice_line l = line(TG_LINE_UNIT, u->unit);
        l.exact = u->charge;
        l.records = u->records;
        if (u->count > 0 && u->charge % u->count == 0) l.unit_price = u->charge / u->count;
        snprintf(l.qty, sizeof l.qty, "%lld", (long long)u->count);
        if (l.unit_price >= 0) {
            char p[NUM_MAX];
            num(p, l.unit_price, 2);
            snprintf(l.desc, sizeof l.desc, "%.128s: %lld x $%s", u->unit, (long long)u->count, p);
        } else {
            snprintf(l.desc, sizeof l.desc, "%.128s: %lld units in %lld requests", u->unit,
                     (long long)u->count, (long long)u->records);
        }
        if (tg_invoice_add(inv, &l)) return TG_ENOMEM;
    }
    return TG_OK;
}

/* Usage made on a plan, in credits: 0 USD lines, the credits are billed
 * by the credit lines. */
static int plan_usage_lines(const tg_usage_sums *k, tg_invoice *inv)
{
    if (k->plain_records) {
        tg_invoice_line l = line(TG_LINE_USAGE, "");
        char c[NUM_MAX];
        num(c, k->plain_credits, 0);
        l.credits = k->plain_credits;
        l.records = k->plain_records;
        snprintf(l.qty, sizeof l.qty, "%lld", (long long)k->plain_records);
        snprintf(l.desc, sizeof l.desc, "AI usage: %lld requests, %s credits (in the credits below)",
                 (long long)k->plain_records, c);
        if (tg_invoice_add(inv, &l)) return TG_ENOMEM;
    }
    for (size_t i = 0; i < k->nunits; i++) {
        const tg_unit_sum *u = &k->units[i];
        tg_invoice_line l = line(TG_LINE_UNIT, u->unit);
        char c[NUM_MAX];
        num(c, u->credits, 0);
        l.credits = u->credits;
        l.records = u->records;
        snprintf(l.qty, sizeof l.qty, "%lld", (long long)u->count);
        snprintf(l.desc, sizeof l.desc, "%.128s: %lld units, %s credits (in the credits below)",
                 u->unit, (long long)u->count, c);
        if (tg_invoice_add(inv, &l)) return TG_ENOMEM;
    }
    return TG_OK;
}

/* One overage line: credits over, priced by plan p (NULL, or a plan
 * without an overage price: not billed). */
static int overage_line(const tg_close_acct *a, const tg_plan *p, tg_ncredits over, const char *when,
                        tg_invoice *inv, tg_errmsg *err)
{
    tg_invoice_line l = line(TG_LINE_OVERAGE, p ? p->id : "");
    char c[NUM_MAX], price[NUM_MAX];
    num(c, over, 0);
    l.credits = over;
    snprintf(l.qty, sizeof l.qty, "%s", c);
    if (p && p->has_overage) {
        if (tg_money_muldiv(over, p->overage, TG_NCREDITS_PER_CREDIT, &l.exact))
            return too_big(err, a, "overage");
        l.unit_price = p->overage;
        num(price, p->overage, 2);
        snprintf(l.desc, sizeof l.desc, "Overage: %s credits x $%s (plan %.128s%s)", c, price, p->id, when);
    } else {
        snprintf(l.desc, sizeof l.desc, "Overage: %s credits, not billed (plan %.128s%s has no overage price)",
                 c, p ? p->id : "none", when);
    }
    return tg_invoice_add(inv, &l) ? TG_ENOMEM : TG_OK;
}

/* The overage (credits past the allowance and grants, `over` of the
 * `rest` that grants did not cover) on its lines: the allowance covers
 * the period's credits in the order they were consumed, so the overage
 * is the last of them, and each plan's days bill their part at that
 * plan's overage price. Days are given to plans by the plan history; a
 * day without a plan counts with the plan after it (or the last one). */
static int overage_lines(const tg_close_acct *a, tg_ncredits allowance, tg_ncredits rest,
                         tg_ncredits over, tg_invoice *inv, tg_errmsg *err)
{
    const tg_period *p = &a->period;
    size_t ndays = (size_t)((p->end_ms - p->start_ms) / DAY_MS);
    if (a->nspans <= 1 || ndays > TG_PERIOD_DAYS_MAX)
        return overage_line(a, a->nspans ? a->spans[0].plan : NULL, over, "", inv, err);
    tg_ncredits own[TG_PERIOD_DAYS_MAX + 1] = {0}, sum = 0;
    for (size_t d = 0, s = 0; d < ndays; d++) {
        int64_t t = p->start_ms + (int64_t)d * DAY_MS;
        while (s + 1 < a->nspans && t >= a->spans[s].to_ms) s++;
        own[s] += a->day_credits[d] - a->day_grants[d];
        sum += a->day_credits[d] - a->day_grants[d];
    }
    /* the days' figures must be the period's: else one line, at the
     * period's last plan */
    if (sum != rest) return overage_line(a, a->spans[a->nspans - 1].plan, over, "", inv, err);
    tg_ncredits cum = 0, billed = 0;
    for (size_t s = 0; s < a->nspans; s++) {
        tg_ncredits before = cum;
        cum += own[s];
        tg_ncredits part = cum <= allowance ? 0 : before >= allowance ? own[s] : cum - allowance;
        /* the lines add up to the overage, to the nano: the last takes
         * what is left (a day's grants may be counted on the next day:
         * a burn is dated by the latest record of its batch) */
        if (part > over - billed) part = over - billed;
        if (s + 1 == a->nspans) part = over - billed;
        if (part <= 0) continue;
        char from[11], to[11], when[48];
        day(a->spans[s].from_ms, from);
        day(a->spans[s].to_ms - DAY_MS, to);
        snprintf(when, sizeof when, ", %s to %s", from, to);
        int rc = overage_line(a, a->spans[s].plan, part, when, inv, err);
        if (rc) return rc;
        billed += part;
    }
    return TG_OK;
}

/* Usage on a plan: in credits, covered by the allowance, then grants (as
 * the ledger burned them), then overage. */
static int credit_lines(const tg_close_acct *a, int64_t days_total, tg_invoice *inv, tg_errmsg *err)
{
    tg_ncredits allowance = 0, from_grants = 0;
    for (size_t i = 0; i < a->nspans; i++) {
        const tg_plan_span *sp = &a->spans[i];
        tg_ncredits part;
        if (!sp->plan) continue;
        if (tg_money_muldiv(sp->plan->included, (sp->to_ms - sp->from_ms) / DAY_MS, days_total,
                            &part) ||
            tg_money_add(allowance, part, &allowance))
            return too_big(err, a, "allowance");
    }
    for (size_t i = 0; i < a->napplied; i++) from_grants += a->applied[i].credits;
    tg_ncredits rest = a->credits - from_grants;
    if (rest < 0) {
        tg_errmsg_set(err,
                      "customer '%s' of app '%s': the wallet ledger burned more credits from "
                      "grants in %s than its usage records consumed; check the ledger with "
                      "`tollgate wallet --check`",
                      a->customer, a->app, a->period.name);
        return TG_EINVAL;
    }
    inv->allowance = allowance;
    if (plan_usage_lines(&a->on_plan, inv)) return TG_ENOMEM;
    tg_ncredits inc = rest < allowance ? rest : allowance, over = rest - inc;
    if (allowance > 0 || inc > 0) {
        tg_invoice_line l = line(TG_LINE_INCLUDED, "");
        char used[NUM_MAX], all[NUM_MAX];
        num(used, inc, 0);
        num(all, allowance, 0);
        l.credits = inc;
        snprintf(l.qty, sizeof l.qty, "%s", used);
        snprintf(l.desc, sizeof l.desc, "Included credits: %s of %s used", used, all);
        if (tg_invoice_add(inv, &l)) return TG_ENOMEM;
    }
    for (size_t i = 0; i < a->napplied; i++) {
        const tg_grant_sum *g = &a->applied[i];
        tg_invoice_line l = line(TG_LINE_GRANT, g->id);
        char c[NUM_MAX];
        num(c, g->credits, 0);
        l.credits = g->credits;
        snprintf(l.qty, sizeof l.qty, "%s", c);
        snprintf(l.desc, sizeof l.desc, "Credits from %s %s", g->kind == TG_GRANT_PAID ? "top-up" : "promotional grant",
                 g->id);
        if (tg_invoice_add(inv, &l)) return TG_ENOMEM;
    }
    if (over > 0) return overage_lines(a, allowance, rest, over, inv, err);
    return TG_OK;
}

static int topup_lines(const tg_close_acct *a, tg_invoice *inv)
{
    for (size_t i = 0; i < a->nbought; i++) {
        const tg_grant_sum *g = &a->bought[i];
        tg_invoice_line l = line(TG_LINE_TOPUP, g->id);
        char c[NUM_MAX];
        num(c, g->credits, 0);
        l.credits = g->credits;
        l.exact = g->paid;
        snprintf(l.qty, sizeof l.qty, "%s", c);
        snprintf(l.desc, sizeof l.desc, "Top-up %s bought: %s credits%s", g->id, c,
                 g->late ? ", bought in a period already closed" : "");
        if (tg_invoice_add(inv, &l)) return TG_ENOMEM;
    }
    return TG_OK;
}

static int late_lines(const tg_close_acct *a, tg_invoice *inv, tg_errmsg *err)
{
    for (size_t i = 0; i < a->nlate; i++) {
        const tg_late_sum *s = &a->late[i];
        tg_invoice_line l = line(TG_LINE_LATE, s->period);
        l.records = s->records;
        snprintf(l.qty, sizeof l.qty, "%lld", (long long)s->records);
        if (!s->plan) {
            l.exact = s->charge;
            snprintf(l.desc, sizeof l.desc,
                     "Usage of %s recorded after its invoice was finalized: %lld requests",
                     s->period, (long long)s->records);
        } else {
            tg_ncredits billable = s->credits - s->from_grants;
            char c[NUM_MAX], price[NUM_MAX];
            if (billable < 0) billable = 0;
            l.credits = billable;
            num(c, billable, 0);
            if (s->plan->has_overage) {
                if (tg_money_muldiv(billable, s->plan->overage, TG_NCREDITS_PER_CREDIT, &l.exact))
                    return too_big(err, a, "late usage");
                l.unit_price = s->plan->overage;
            }
            num(price, l.unit_price > 0 ? l.unit_price : 0, 2);
            snprintf(l.desc, sizeof l.desc,
                     "Usage of %s recorded after its invoice was finalized: %lld requests, %s "
                     "credits past grants x $%s (plan %.128s)",
                     s->period, (long long)s->records, c, price, s->plan->id);
        }
        if (tg_invoice_add(inv, &l)) return TG_ENOMEM;
    }
    return TG_OK;
}

int tg_invoice_make(const tg_close_acct *a, const char *id, tg_invoice *inv, tg_errmsg *err)
{
    memset(inv, 0, sizeof *inv);
    snprintf(inv->id, sizeof inv->id, "%s", id);
    memcpy(inv->period, a->period.name, sizeof inv->period);
    memcpy(inv->app, a->app, sizeof inv->app);
    memcpy(inv->customer, a->customer, sizeof inv->customer);
    const tg_plan *last = a->nspans ? a->spans[a->nspans - 1].plan : NULL;
    snprintf(inv->plan, sizeof inv->plan, "%s", last ? last->id : "");
    inv->start_ms = a->period.start_ms;
    inv->end_ms = a->period.end_ms;
    int64_t days_total = (a->period.end_ms - a->period.start_ms) / DAY_MS;
    bool on_plan = false;
    for (size_t i = 0; i < a->nspans; i++) on_plan |= a->spans[i].plan != NULL;
    int rc = fee_lines(a, days_total, inv, err);
    if (!rc) rc = metered_lines(&a->metered, inv);
    if (!rc && (on_plan || a->credits)) rc = credit_lines(a, days_total, inv, err);
    if (!rc) rc = topup_lines(a, inv);
    if (!rc) rc = late_lines(a, inv, err);
    inv->records = a->records;
    inv->charge = a->charge;
    inv->cost = a->cost;
    inv->fee = a->fee;
    inv->credits = a->credits;
    for (size_t i = 0; !rc && i < a->nlate; i++) {
        const tg_late_sum *s = &a->late[i];
        inv->records += s->records;
        if (tg_money_add(inv->charge, s->charge, &inv->charge) ||
            tg_money_add(inv->cost, s->cost, &inv->cost) || tg_money_add(inv->fee, s->fee, &inv->fee))
            rc = too_big(err, a, "usage");
    }
    for (size_t i = 0; !rc && i < inv->nlines; i++)
        if (tg_money_add(inv->exact, inv->lines[i].exact, &inv->exact) ||
            tg_money_add(inv->subtotal, inv->lines[i].amount, &inv->subtotal))
            rc = too_big(err, a, "invoice total");
    inv->total = inv->subtotal + inv->tax;
    if (rc == TG_ENOMEM) tg_errmsg_set(err, "out of memory");
    if (rc) tg_invoice_release(inv);
    return rc;
}
