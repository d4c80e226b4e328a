/* Wallets: burn order and burns. See wallet.h. */
#include "bill/wallet.h"

#include "bill/period.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const char *const kind_names[TG_GRANT_KIND_COUNT_] = {"included", "paid", "promo"};

const char *tg_grant_kind_name(tg_grant_kind k)
{
    return k < TG_GRANT_KIND_COUNT_ ? kind_names[k] : "?";
}

int tg_grant_kind_parse(tg_str s, tg_grant_kind *out)
{
    for (int k = 0; k < TG_GRANT_KIND_COUNT_; k++)
        if (tg_str_eq(s, tg_str_c(kind_names[k]))) {
            *out = (tg_grant_kind)k;
            return TG_OK;
        }
    return TG_EINVAL;
}

static int cmp_i64(int64_t a, int64_t b) { return (a > b) - (a < b); }

int tg_grant_burn_cmp(const tg_grant *a, const tg_grant *b)
{
    int c = (b->kind == TG_GRANT_INCLUDED) - (a->kind == TG_GRANT_INCLUDED);
    if (!c) c = cmp_i64(b->priority, a->priority);
    /* soonest expiry first; never (0) after every date */
    if (!c) c = cmp_i64(a->expires_ms ? a->expires_ms : INT64_MAX, b->expires_ms ? b->expires_ms : INT64_MAX);
    if (!c) c = cmp_i64(a->created_ms, b->created_ms);
    return c ? c : strcmp(a->id, b->id);
}

static int burn_cmp(const void *x, const void *y) { return tg_grant_burn_cmp(x, y); }

void tg_wallet_order(tg_grant *g, size_t n)
{
    if (n > 1) qsort(g, n, sizeof *g, burn_cmp);
}

tg_ncredits tg_wallet_burn(tg_grant *g, size_t n, tg_ncredits amount, int64_t t_ms,
                           tg_ncredits *take)
{
    for (size_t i = 0; i < n && amount > 0; i++) {
        if (!tg_grant_usable(&g[i], t_ms)) continue;
        tg_ncredits t = g[i].left < amount ? g[i].left : amount;
        g[i].left -= t;
        amount -= t;
        if (take) take[i] += t;
    }
    return amount;
}

tg_ncredits tg_wallet_available(const tg_grant *g, size_t n, int64_t t_ms)
{
    tg_ncredits sum = 0;
    for (size_t i = 0; i < n; i++)
        if (tg_grant_usable(&g[i], t_ms) && __builtin_add_overflow(sum, g[i].left, &sum))
            return INT64_MAX;
    return sum;
}

void tg_grant_included_id(const char *period, char out[TG_GRANT_ID_MAX + 1])
{
    snprintf(out, TG_GRANT_ID_MAX + 1, "inc:%.16s", period);
}

int tg_grant_from_topup(const tg_topup *t, int64_t now_ms, tg_grant *g, tg_nanos *paid,
                        tg_errmsg *err)
{
    tg_errmsg e;
    memset(g, 0, sizeof *g);
    *paid = 0;
    if (!t->credits.p) return tg_errmsg_set(err, "credits: required (how many credits to add)");
    if (tg_money_parse(t->credits, &g->granted, &e))
        return tg_errmsg_set(err, "credits: \"%.*s\" %s", (int)(t->credits.n > 40 ? 40 : t->credits.n),
                             t->credits.p, e.msg);
    if (g->granted <= 0) return tg_errmsg_set(err, "credits: must be more than 0");
    if (t->paid.p && tg_money_parse(t->paid, paid, &e))
        return tg_errmsg_set(err, "paid: \"%.*s\" %s", (int)(t->paid.n > 40 ? 40 : t->paid.n),
                             t->paid.p, e.msg);
    if (t->promo && *paid)
        return tg_errmsg_set(err, "paid: a promotional grant is not paid for (leave paid out)");
    if (t->priority < -1000000 || t->priority > 1000000)
        return tg_errmsg_set(err, "priority: must be from -1000000 to 1000000");
    if (t->expires.p) {
        if (tg_utc_parse(t->expires, &g->expires_ms))
            return tg_errmsg_set(err, "expires: must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)");
        if (g->expires_ms <= now_ms) return tg_errmsg_set(err, "expires: must be in the future");
    }
    uint8_t r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return tg_errmsg_set(err, "no random bytes for a grant id");
    static const char hex[] = "0123456789abcdef";
    memcpy(g->id, "g_", 2);
    for (int i = 0; i < 16; i++) {
        g->id[2 + 2 * i] = hex[r[i] >> 4];
        g->id[3 + 2 * i] = hex[r[i] & 15];
    }
    g->kind = t->promo ? TG_GRANT_PROMO : TG_GRANT_PAID;
    g->priority = t->priority;
    g->created_ms = now_ms;
    g->left = g->granted;
    return TG_OK;
}
