/* A customer's wallet and period. See wallet.h. */
#include "report/wallet.h"

#include "base/jsonw.h"

#include <stdlib.h>
#include <string.h>

int tg_wallet_view_load(tg_store *s, tg_str app, tg_str customer, const tg_plan *plan,
                        uint32_t anchor_day, const char *period, int64_t now_ms,
                        tg_wallet_view *v, tg_errmsg *err)
{
    memset(v, 0, sizeof *v);
    if (app.n > TG_TAG_MAX || customer.n > TG_TAG_MAX)
        return tg_errmsg_set(err, "the app or customer id is longer than %d bytes", TG_TAG_MAX);
    memcpy(v->app, app.p, app.n);
    memcpy(v->customer, customer.p, customer.n);
    v->plan = plan;
    if (period && *period) {
        if (tg_period_named(anchor_day, tg_str_c(period), &v->period))
            return tg_errmsg_set(err, "period '%s' is not a month (YYYY-MM)", period);
    } else {
        tg_period_at(anchor_day, now_ms, &v->period);
    }
    int rc = tg_store_grants(s, app, customer, &v->grants, &v->ngrants, err);
    if (!rc) rc = tg_store_period_use(s, app, customer, v->period.name, &v->use, err);
    if (!rc && plan && plan->has_overage &&
        tg_money_muldiv(v->use.overage, plan->overage, TG_NCREDITS_PER_CREDIT, &v->overage_charge))
        rc = tg_errmsg_set(err, "the overage charge is too large to count");
    return rc;
}

void tg_wallet_view_release(tg_wallet_view *v)
{
    free(v->grants);
    v->grants = NULL;
    v->ngrants = 0;
}

/* ---- JSON ---- */

static int jamount(tg_buf *b, const char *name, int64_t v)
{
    char s[TG_MONEY_STRLEN];
    tg_money_fmt(s, v);
    return tg_buf_printf(b, ",\"%s\":\"%s\"", name, s);
}

static int jtime(tg_buf *b, const char *name, int64_t ms)
{
    char t[TG_UTC_STRLEN];
    if (!ms) return tg_buf_printf(b, ",\"%s\":null", name);
    tg_utc_format(ms, t);
    return tg_buf_printf(b, ",\"%s\":\"%s\"", name, t);
}

static int json_grant(tg_buf *b, const tg_store_grant *g, bool first)
{
    int rc = tg_buf_printf(b, "%s{\"id\":\"%s\",\"kind\":\"%s\"", first ? "" : ",", g->g.id,
                           tg_grant_kind_name(g->g.kind));
    if (!rc) rc = jamount(b, "credits", g->g.granted);
    if (!rc) rc = jamount(b, "left", g->g.left);
    if (!rc) rc = jamount(b, "paid", g->paid);
    if (!rc) rc = tg_buf_printf(b, ",\"priority\":%lld", (long long)g->g.priority);
    if (!rc) rc = jtime(b, "created", g->g.created_ms);
    if (!rc) rc = jtime(b, "expires", g->g.expires_ms);
    if (!rc) rc = tg_buf_printf(b, ",\"expired\":%s,\"memo\":", g->closed_ms ? "true" : "false");
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(g->memo));
    return rc ? rc : tg_buf_add_char(b, '}');
}

static int render_json(const tg_wallet_view *v, tg_buf *b)
{
    const tg_period *p = &v->period;
    int rc = tg_buf_add_lit(b, "{\"app\":");
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(v->app));
    if (!rc) rc = tg_buf_add_lit(b, ",\"customer\":");
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(v->customer));
    if (!rc) rc = tg_buf_add_lit(b, ",\"plan\":");
    if (!rc) rc = v->plan ? tg_jsonw_str(b, tg_str_c(v->plan->id)) : tg_buf_add_lit(b, "null");
    if (!rc) rc = tg_buf_printf(b, ",\"period\":{\"name\":\"%s\"", p->name);
    if (!rc) rc = jtime(b, "start", p->start_ms);
    if (!rc) rc = jtime(b, "end", p->end_ms);
    if (!rc) rc = tg_buf_add_char(b, '}');
    if (!rc && v->plan) rc = jamount(b, "fee", v->plan->fee);
    if (!rc) rc = jamount(b, "included_credits", v->use.included);
    if (!rc) rc = jamount(b, "included_used", v->use.included_used);
    if (!rc) rc = jamount(b, "grants_used", v->use.grants_used);
    if (!rc) rc = jamount(b, "overage_credits", v->use.overage);
    if (!rc)
        rc = v->plan && v->plan->has_overage ? jamount(b, "overage_price", v->plan->overage)
                                             : tg_buf_add_lit(b, ",\"overage_price\":null");
    if (!rc) rc = jamount(b, "overage_charge", v->overage_charge);
    if (!rc) rc = tg_buf_printf(b, ",\"records\":%lld", (long long)v->use.records);
    if (!rc) rc = jamount(b, "charge", v->use.charge);
    if (!rc) rc = tg_buf_add_lit(b, ",\"grants\":[");
    for (size_t i = 0; !rc && i < v->ngrants; i++) rc = json_grant(b, &v->grants[i], i == 0);
    if (!rc) rc = tg_buf_add_char(b, ']');
    if (!rc && v->live) {
        const tg_account_state *s = &v->state;
        rc = tg_buf_printf(b, ",\"live\":{\"period\":\"%s\"", s->period.name);
        if (!rc) rc = jamount(b, "used", s->used);
        if (!rc) rc = jamount(b, "charge", s->charge);
        if (!rc) rc = jamount(b, "included_left", s->included_left);
        if (!rc) rc = jamount(b, "grants_left", s->grants_left);
        if (!rc) rc = jamount(b, "reserved", s->reserved);
        if (!rc) rc = jamount(b, "reserved_charge", s->reserved_charge);
        if (!rc) rc = tg_buf_add_char(b, '}');
    }
    return rc ? rc : tg_buf_add_lit(b, "}\n");
}

/* ---- table ---- */

static const char *amount(char out[TG_MONEY_STRLEN], int64_t v)
{
    size_t n = tg_money_fmt(out, v);
    while (n > 0 && out[n - 1] == '0') out[--n] = '\0';
    if (n > 0 && out[n - 1] == '.') out[--n] = '\0';
    return out;
}

static int render_table(const tg_wallet_view *v, tg_buf *b)
{
    char a[TG_MONEY_STRLEN], c[TG_MONEY_STRLEN], d[TG_MONEY_STRLEN], e[TG_MONEY_STRLEN],
        st[TG_UTC_STRLEN], en[TG_UTC_STRLEN];
    const tg_store_period_sums *u = &v->use;
    tg_utc_format(v->period.start_ms, st);
    tg_utc_format(v->period.end_ms, en);
    int rc = tg_buf_printf(b, "customer %s of app %s, plan %s; period %s (%.10s to %.10s, UTC)\n",
                           v->customer, v->app, v->plan ? v->plan->id : "(none)", v->period.name, st, en);
    if (!rc)
        rc = tg_buf_printf(b, "credits     included %s, used %s of them; from grants %s; overage %s",
                           amount(a, u->included), amount(c, u->included_used),
                           amount(d, u->grants_used), amount(e, u->overage));
    if (!rc && v->plan && v->plan->has_overage)
        rc = tg_buf_printf(b, " at %s USD = %s USD", amount(a, v->plan->overage),
                           amount(c, v->overage_charge));
    if (!rc)
        rc = tg_buf_printf(b, "\nusage       %lld records, charge %s USD\n", (long long)u->records,
                           amount(a, u->charge));
    if (!rc && v->ngrants)
        rc = tg_buf_printf(b, "\n%-36s  %-8s  %14s  %14s  %12s  %8s  %-20s  %s\n", "grant (burn order)",
                           "kind", "credits", "left", "paid USD", "priority", "expires", "memo");
    for (size_t i = 0; !rc && i < v->ngrants; i++) {
        const tg_store_grant *g = &v->grants[i];
        char x[TG_UTC_STRLEN] = "never";
        if (g->g.expires_ms) tg_utc_format(g->g.expires_ms, x);
        rc = tg_buf_printf(b, "%-36s  %-8s  %14s  %14s  %12s  %8lld  %-20s  %s%s\n", g->g.id,
                           tg_grant_kind_name(g->g.kind), amount(a, g->g.granted), amount(c, g->g.left),
                           amount(d, g->paid), (long long)g->g.priority, x, g->memo,
                           g->closed_ms ? " (expired)" : "");
    }
    return rc;
}

int tg_wallet_render(const tg_wallet_view *v, tg_report_format f, tg_buf *out)
{
    return f == TG_REPORT_JSON ? render_json(v, out) : render_table(v, out);
}
