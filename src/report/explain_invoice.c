/* `tollgate explain-invoice ID`: every amount of an invoice traced to the
 * usage records, wallet entries and plan history behind it, each one
 * recomputed from them and checked (docs/invoices.md, "Audit").
 *
 * The close that made the invoice read usage chunks up to its
 * through_seq and wallet transactions up to its through_tx; the
 * explanation reads exactly those again, so what it recomputes is what
 * the close saw, whatever was stored since. */
#include "report/explain_invoice.h"

#include "base/money.h"
#include "store/close.h"
#include "store/wallet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS 86400000LL

/* Records of one kind (made without a plan, or on one). */
typedef struct {
    int64_t plain_records;
    tg_nanos plain_charge;
    tg_ncredits plain_credits;
    struct unit {
        char name[TG_TAG_MAX + 1];
        int64_t records, count;
        tg_nanos charge;
        tg_ncredits credits;
        bool seen;            /* its line was explained */
    } units[32];
    size_t nunits;
    bool seen;                /* the usage line was explained */
} kind_sums;

typedef struct {
    const tg_invoice *inv;
    uint32_t anchor;
    /* the period's records */
    int64_t records;
    tg_nanos charge, cost, fee;
    tg_ncredits credits;
    kind_sums metered, on_plan;
    /* late records, by period */
    struct late {
        char period[8];
        int64_t records;
        tg_nanos charge;
        tg_ncredits credits;
    } late[16];
    size_t nlate;
    /* the wallet's burns of the period */
    struct acct {
        char name[64];
        tg_ncredits credits;
        int64_t ntx, first_tx, last_tx;
    } accts[64];
    size_t naccts;
    /* the plan history */
    char history[2048];
    size_t nhistory;
    /* the customer's grants */
    tg_store_grant *grants;
    size_t ngrants;
} expl;

static bool mine(const expl *e, const tg_usage_rec *r)
{
    return !strcmp(r->tags.app, e->inv->app) && !strcmp(r->tags.customer, e->inv->customer);
}

static int on_record(void *ud, const tg_usage_rec *r)
{
    expl *e = ud;
    if (!mine(e, r) || r->t_start_ms < e->inv->start_ms || r->t_start_ms >= e->inv->end_ms) return TG_OK;
    e->records++;
    e->charge += r->charge;
    e->cost += r->cost;
    e->fee += r->fee;
    e->credits += r->credits;
    kind_sums *k = r->tags.plan[0] ? &e->on_plan : &e->metered;
    if (!r->tags.unit[0]) {
        k->plain_records++;
        k->plain_charge += r->charge;
        k->plain_credits += r->credits;
        return TG_OK;
    }
    struct unit *u = NULL;
    for (size_t i = 0; i < k->nunits && !u; i++)
        if (!strcmp(k->units[i].name, r->tags.unit)) u = &k->units[i];
    if (!u && k->nunits < sizeof k->units / sizeof *k->units) {
        u = &k->units[k->nunits++];
        snprintf(u->name, sizeof u->name, "%s", r->tags.unit);
    }
    if (u) {
        u->records++;
        u->count += r->tags.unit_count;
        u->charge += r->charge;
        u->credits += r->credits;
    }
    return TG_OK;
}

/* The unit of k named name whose line is not explained yet; NULL. */
static struct unit *unit_of(kind_sums *k, const char *name)
{
    for (size_t i = 0; i < k->nunits; i++)
        if (!k->units[i].seen && !strcmp(k->units[i].name, name)) return &k->units[i];
    return NULL;
}

static int on_late(void *ud, const tg_usage_rec *r)
{
    expl *e = ud;
    if (!mine(e, r) || r->t_start_ms >= e->inv->start_ms) return TG_OK;
    tg_period p;
    tg_period_at(e->anchor, r->t_start_ms, &p);
    struct late *l = NULL;
    for (size_t i = 0; i < e->nlate && !l; i++)
        if (!strcmp(e->late[i].period, p.name)) l = &e->late[i];
    if (!l && e->nlate < sizeof e->late / sizeof *e->late) {
        l = &e->late[e->nlate++];
        memcpy(l->period, p.name, sizeof l->period);
    }
    if (l) {
        l->records++;
        l->charge += r->charge;
        l->credits += r->credits;
    }
    return TG_OK;
}

static int on_burn(void *ud, int64_t tx, int64_t t_ms, int64_t records, tg_nanos charge,
                   const char *account, tg_ncredits credits)
{
    expl *e = ud;
    (void)t_ms, (void)records, (void)charge;
    struct acct *a = NULL;
    for (size_t i = 0; i < e->naccts && !a; i++)
        if (!strcmp(e->accts[i].name, account)) a = &e->accts[i];
    if (!a && e->naccts < sizeof e->accts / sizeof *e->accts) {
        a = &e->accts[e->naccts++];
        snprintf(a->name, sizeof a->name, "%s", account);
        a->first_tx = tx;
    }
    if (a) {
        a->credits += credits;
        a->ntx++;
        a->last_tx = tx;
    }
    return TG_OK;
}

static int on_change(void *ud, const char *app, const char *customer, int64_t t_ms, const char *plan)
{
    expl *e = ud;
    if (strcmp(app, e->inv->app) || strcmp(customer, e->inv->customer)) return TG_OK;
    char t[TG_UTC_STRLEN];
    if (t_ms) tg_utc_format(t_ms, t);
    else strcpy(t, "the start");
    int n = snprintf(e->history + e->nhistory, sizeof e->history - e->nhistory, "      from %s: %s\n",
                     t, plan[0] ? plan : "(no plan)");
    if (n > 0 && (size_t)n < sizeof e->history - e->nhistory) e->nhistory += (size_t)n;
    return TG_OK;
}

static tg_ncredits burned(const expl *e, const char *account)
{
    for (size_t i = 0; i < e->naccts; i++)
        if (!strcmp(e->accts[i].name, account)) return -e->accts[i].credits;
    return 0;
}

static const char *m(char out[TG_MONEY_STRLEN], int64_t v)
{
    tg_money_fmt(out, v);
    return out;
}

static int check(tg_buf *b, bool ok, int *bad)
{
    if (!ok) ++*bad;
    return tg_buf_printf(b, "    check: %s\n", ok ? "matches" : "DIFFERS from the line");
}

static int explain_line(tg_buf *b, expl *e, const tg_close_state *st, const tg_invoice_line *l,
                        size_t n, int *bad)
{
    const tg_invoice *inv = e->inv;
    char x[4][TG_MONEY_STRLEN];
    int rc = tg_buf_printf(b, "\n%zu. %s\n   %s USD exact, %s USD on the invoice (half-up to cents)\n", n,
                           l->desc, m(x[0], l->exact), m(x[1], l->amount));
    if (rc) return rc;
    switch (l->kind) {
    case TG_LINE_FEE: {
        long long days = 0, total = 0;
        tg_nanos want = 0;
        sscanf(l->qty, "%lld/%lld", &days, &total);
        bool ok = total > 0 && !tg_money_muldiv(l->unit_price, days, total, &want) && want == l->exact;
        rc = tg_buf_printf(b, "    from: plan %s's fee %s x %lld / %lld days, the days the plan "
                              "history gives it:\n%s",
                           l->ref, m(x[0], l->unit_price), days, total,
                           e->nhistory ? e->history : "      (no history: the plan of the file or of "
                                                      "the customer's first record)\n");
        return rc ? rc : check(b, ok, bad);
    }
    case TG_LINE_USAGE: {
        /* the metered line comes first, then the one on a plan */
        bool metered = !e->metered.seen && e->metered.plain_records;
        kind_sums *k = metered ? &e->metered : &e->on_plan;
        k->seen = true;
        rc = tg_buf_printf(b, "    from: %lld usage records without a unit made %s: charge %s, credits %s\n",
                           (long long)k->plain_records, metered ? "without a plan" : "on a plan",
                           m(x[0], k->plain_charge), m(x[1], k->plain_credits));
        bool ok = k->plain_records == l->records &&
                  (metered ? k->plain_charge == l->exact : !l->exact && k->plain_credits == l->credits);
        return rc ? rc : check(b, ok, bad);
    }
    case TG_LINE_UNIT: {
        struct unit *u = unit_of(&e->metered, l->ref);
        bool metered = u != NULL;
        if (!u) u = unit_of(&e->on_plan, l->ref);
        if (!u) return check(b, false, bad);
        u->seen = true;
        rc = tg_buf_printf(b, "    from: %lld usage records tagged %s made %s, %lld units; charge %s, "
                              "credits %s\n",
                           (long long)u->records, u->name, metered ? "without a plan" : "on a plan",
                           (long long)u->count, m(x[0], u->charge), m(x[1], u->credits));
        bool ok = u->records == l->records &&
                  (metered ? u->charge == l->exact : !l->exact && u->credits == l->credits);
        return rc ? rc : check(b, ok, bad);
    }
    case TG_LINE_INCLUDED:
    case TG_LINE_OVERAGE: {
        tg_ncredits grants = 0;
        for (size_t i = 0; i < e->naccts; i++)
            if (!strncmp(e->accts[i].name, "grant:", 6) && strncmp(e->accts[i].name, "grant:inc:", 10))
                grants -= e->accts[i].credits;
        tg_ncredits rest = e->credits - grants, inc = rest < inv->allowance ? rest : inv->allowance;
        rc = tg_buf_printf(b,
                           "    from: credits consumed by the period's records %s, less what grants "
                           "covered in the wallet's burns %s, leaves %s; the allowance (the plans' "
                           "included credits by day) %s covers up to that, the rest is overage\n",
                           m(x[0], e->credits), m(x[1], grants), m(x[2], rest), m(x[3], inv->allowance));
        if (rc || l->kind == TG_LINE_INCLUDED) return rc ? rc : check(b, inc == l->credits, bad);
        /* the overage, on one line per plan when the plan changed: the
         * lines' credits add up to it, each at its plan's price */
        tg_ncredits lines = 0;
        for (size_t i = 0; i < inv->nlines; i++)
            if (inv->lines[i].kind == TG_LINE_OVERAGE) lines += inv->lines[i].credits;
        tg_nanos want = 0;
        char w[TG_MONEY_STRLEN];
        if (l->unit_price >= 0) tg_money_muldiv(l->credits, l->unit_price, TG_NCREDITS_PER_CREDIT, &want);
        rc = tg_buf_printf(b, "    overage %s credits in all (the overage lines: %s); this line: %s x %s USD = %s USD\n",
                           m(x[0], rest - inc), m(x[1], lines), m(x[2], l->credits),
                           m(x[3], l->unit_price >= 0 ? l->unit_price : 0), m(w, want));
        return rc ? rc : check(b, lines == rest - inc && want == l->exact, bad);
    }
    case TG_LINE_GRANT: {
        char acc[64];
        snprintf(acc, sizeof acc, "grant:%.*s", TG_GRANT_ID_MAX, l->ref);
        for (size_t i = 0; i < e->naccts; i++)
            if (!strcmp(e->accts[i].name, acc))
                rc = tg_buf_printf(b, "    from: %lld wallet burn transactions (%lld..%lld) took %s "
                                      "credits from %s\n",
                                   (long long)e->accts[i].ntx, (long long)e->accts[i].first_tx,
                                   (long long)e->accts[i].last_tx, m(x[0], burned(e, acc)), acc);
        return rc ? rc : check(b, burned(e, acc) == l->credits, bad);
    }
    case TG_LINE_TOPUP:
        for (size_t i = 0; i < e->ngrants; i++) {
            const tg_store_grant *g = &e->grants[i];
            char t[TG_UTC_STRLEN];
            if (strcmp(g->g.id, l->ref)) continue;
            tg_utc_format(g->g.created_ms, t);
            rc = tg_buf_printf(b, "    from: grant %s of the wallet, made %s: %s credits, %s USD paid "
                                  "(tollgate wallet --customer %s)\n",
                               g->g.id, t, m(x[0], g->g.granted), m(x[1], g->paid), inv->customer);
            return rc ? rc : check(b, g->paid == l->exact && g->g.granted == l->credits, bad);
        }
        return check(b, false, bad);
    case TG_LINE_LATE:
        for (size_t i = 0; i < e->nlate; i++) {
            const struct late *t = &e->late[i];
            if (strcmp(t->period, l->ref)) continue;
            rc = tg_buf_printf(b,
                               "    from: %lld records of %s stored after its close (usage chunks "
                               "%lld..%lld): charge %s, credits %s\n",
                               (long long)t->records, t->period, (long long)st->late_seq + 1,
                               (long long)st->through_seq, m(x[0], t->charge), m(x[1], t->credits));
            return rc ? rc : check(b, t->records == l->records, bad);
        }
        return check(b, false, bad);
    default: return check(b, false, bad);
    }
}

int tg_explain_invoice(tg_store *s, const char *id, tg_buf *out, tg_errmsg *err)
{
    char period[8];
    tg_close_docs d;
    int rc = tg_store_invoice_period(s, id, period, err);
    if (!rc) rc = tg_store_close_read(s, period, &d, err);
    if (rc) return rc;
    const tg_invoice *inv = NULL;
    for (size_t i = 0; i < d.ninv && !inv; i++)
        if (!strcmp(d.inv[i].id, id)) inv = &d.inv[i];
    expl *e = calloc(1, sizeof *e);
    if (!e) {
        tg_close_docs_release(&d);
        return tg_errmsg_set(err, "out of memory"), TG_ENOMEM;
    }
    e->inv = inv;
    char t[TG_UTC_STRLEN];
    tg_utc_format(inv->start_ms, t);
    e->anchor = (uint32_t)atoi(t + 8); /* the app's anchor day is its periods' first day */
    const tg_close_state *st = &d.st;
    rc = tg_store_read_begin(s, err);
    if (!rc) {
        rc = tg_store_each_record_seq(s, 0, st->through_seq, inv->start_ms, inv->end_ms, on_record, e, err);
        if (!rc && st->late_seq < st->through_seq)
            rc = tg_store_each_record_seq(s, st->late_seq, st->through_seq, 0, inv->start_ms, on_late, e, err);
        if (!rc)
            rc = tg_store_each_burn_entry(s, inv->app, inv->customer, period, 0, st->through_tx, on_burn, e, err);
        if (!rc) rc = tg_store_each_plan_change(s, on_change, e, err);
        if (!rc)
            rc = tg_store_grants(s, tg_str_c(inv->app), tg_str_c(inv->customer), &e->grants, &e->ngrants,
                                 err);
        tg_store_read_end(s);
    }
    int bad = 0;
    char x[4][TG_MONEY_STRLEN], from[TG_UTC_STRLEN], to[TG_UTC_STRLEN];
    tg_utc_format(inv->start_ms, from);
    tg_utc_format(inv->end_ms - DAY_MS, to);
    if (!rc)
        rc = tg_buf_printf(out,
                           "invoice %s (%s) of customer %s, app %s, period %s (%.10s to %.10s)\n"
                           "made from the usage records in chunks 1..%lld and the wallet transactions "
                           "1..%lld the close read; list the records with\n"
                           "    tollgate usage --app %s --customer %s --period %s --format csv\n"
                           "usage behind it: %lld records, charge %s, cost %s, fee %s USD, credits %s\n",
                           inv->id, st->finalized ? "finalized" : "draft", inv->customer, inv->app,
                           inv->period, from, to, (long long)st->through_seq, (long long)st->through_tx,
                           inv->app, inv->customer, inv->period, (long long)e->records,
                           m(x[0], e->charge), m(x[1], e->cost), m(x[2], e->fee), m(x[3], e->credits));
    for (size_t i = 0; !rc && i < inv->nlines; i++) rc = explain_line(out, e, st, &inv->lines[i], i + 1, &bad);
    tg_nanos sum = 0;
    for (size_t i = 0; i < inv->nlines; i++) sum += inv->lines[i].amount;
    if (!rc)
        rc = tg_buf_printf(out, "\nsubtotal %s = the lines' amounts summed (%s); tax %s (not computed); "
                                "total %s USD\n%s\n",
                           m(x[0], inv->subtotal), m(x[1], sum), m(x[2], inv->tax), m(x[3], inv->total),
                           bad || sum != inv->subtotal ? "SOME AMOUNTS DO NOT MATCH WHAT IS BEHIND THEM"
                                                       : "every amount matches what is behind it");
    if (!rc && (bad || sum != inv->subtotal))
        rc = tg_errmsg_set(err, "invoice %s: %d amounts do not match the records and ledger behind them",
                           id, bad);
    free(e->grants);
    free(e);
    tg_close_docs_release(&d);
    return rc;
}
