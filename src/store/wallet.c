/* Wallets in the store: grants, burns as usage is stored, expiry, and the
 * reads the gateway and the CLI make. See store/wallet.h.
 *
 * The writer keeps each customer's grants it has burned from (with what
 * they have left) in memory, loaded from the entries on first use and
 * forgotten on a rollback or when another handle adds a grant. A put
 * gathers its burns per customer and period and writes them at its end
 * into that day's burn transaction of the customer and period (one
 * transaction per customer, period and UTC day, its entries added to by
 * every put that day: each put adds a delta that sums to zero, so the
 * transaction always does). A transaction per put would be ~400,000 a day
 * for a customer with steady traffic. */
#include "store/wallet.h"

#include "base/hash.h"
#include "store/sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_DAY 86400000LL
#define ACCOUNT_MAX (6 + TG_GRANT_ID_MAX + 1) /* "grant:" and an id */

void tg_store_set_terms(tg_store *s, tg_store_terms_fn fn, void *ud)
{
    s->terms = fn;
    s->terms_ud = ud;
}

static void account_of(const char *grant_id, char out[ACCOUNT_MAX])
{
    snprintf(out, ACCOUNT_MAX, "grant:%s", grant_id);
}

static void bind_str(sqlite3_stmt *st, int i, tg_str v)
{
    sqlite3_bind_text(st, i, v.p ? v.p : "", (int)v.n, SQLITE_STATIC);
}

/* Runs st (bound) to completion; TG_EIO naming what. */
static int step_done(tg_store *s, sqlite3_stmt *st, const char *what, tg_errmsg *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? TG_OK : tg_sq_fail(s, err, what);
}

/* ---- entries ---- */

static int add_entry(tg_store *s, int64_t tx, const char *account, tg_ncredits credits,
                     tg_errmsg *err)
{
    int rc = tg_sq_prepare(s, &s->w_entry,
                           "INSERT INTO wallet_entries VALUES (?1, ?2, ?3) ON CONFLICT (tx, account)"
                           " DO UPDATE SET credits = credits + excluded.credits",
                           err);
    if (rc) return rc;
    sqlite3_bind_int64(s->w_entry, 1, tx);
    sqlite3_bind_text(s->w_entry, 2, account, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->w_entry, 3, credits);
    return step_done(s, s->w_entry, "writing a wallet entry", err);
}

static int new_tx(tg_store *s, tg_str app, tg_str customer, int64_t t_ms, const char *kind,
                  tg_str ref, int64_t *tx, tg_errmsg *err)
{
    int rc = tg_sq_prepare(s, &s->w_tx,
                           "INSERT INTO wallet_tx (app, customer, t_ms, kind, ref, records, charge)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, 0, 0)",
                           err);
    if (rc) return rc;
    bind_str(s->w_tx, 1, app);
    bind_str(s->w_tx, 2, customer);
    sqlite3_bind_int64(s->w_tx, 3, t_ms);
    sqlite3_bind_text(s->w_tx, 4, kind, -1, SQLITE_STATIC);
    bind_str(s->w_tx, 5, ref);
    if ((rc = step_done(s, s->w_tx, "writing a wallet transaction", err))) return rc;
    *tx = sqlite3_last_insert_rowid(s->db);
    return TG_OK;
}

/* ---- grants ---- */

static int insert_grant(tg_store *s, tg_str app, tg_str customer, const tg_grant *g,
                        tg_nanos paid, tg_str memo, int64_t t_ms, tg_errmsg *err)
{
    int rc = tg_sq_prepare(s, &s->w_grant,
                           "INSERT INTO grants (app, customer, id, kind, credits, paid, priority,"
                           " created_ms, expires_ms, memo) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
                           " ?9, ?10) ON CONFLICT DO NOTHING",
                           err);
    if (rc) return rc;
    sqlite3_stmt *st = s->w_grant;
    bind_str(st, 1, app);
    bind_str(st, 2, customer);
    sqlite3_bind_text(st, 3, g->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, tg_grant_kind_name(g->kind), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, g->granted);
    sqlite3_bind_int64(st, 6, paid);
    sqlite3_bind_int64(st, 7, g->priority);
    sqlite3_bind_int64(st, 8, g->created_ms);
    sqlite3_bind_int64(st, 9, g->expires_ms);
    bind_str(st, 10, memo);
    if ((rc = step_done(s, st, "adding a grant", err))) return rc;
    if (!sqlite3_changes(s->db))
        return tg_errmsg_set(err, "customer %.*s already has a grant %s", TG_STR_FMT(customer),
                             g->id);
    int64_t tx;
    char source[32], account[ACCOUNT_MAX];
    snprintf(source, sizeof source, "source:%s", tg_grant_kind_name(g->kind));
    account_of(g->id, account);
    rc = new_tx(s, app, customer, t_ms, "grant", tg_str_c(g->id), &tx, err);
    if (!rc) rc = add_entry(s, tx, source, -g->granted, err);
    if (!rc) rc = add_entry(s, tx, account, g->granted, err);
    return rc;
}

static int grant_row(sqlite3_stmt *st, tg_store_grant *out)
{
    memset(out, 0, sizeof *out);
    const char *id = (const char *)sqlite3_column_text(st, 0);
    tg_str kind = tg_str_c((const char *)sqlite3_column_text(st, 1));
    snprintf(out->g.id, sizeof out->g.id, "%s", id ? id : "");
    if (tg_grant_kind_parse(kind, &out->g.kind)) return TG_EINVAL;
    out->g.granted = sqlite3_column_int64(st, 2);
    out->paid = sqlite3_column_int64(st, 3);
    out->g.priority = sqlite3_column_int64(st, 4);
    out->g.created_ms = sqlite3_column_int64(st, 5);
    out->g.expires_ms = sqlite3_column_int64(st, 6);
    out->closed_ms = sqlite3_column_int64(st, 7);
    const char *memo = (const char *)sqlite3_column_text(st, 8);
    snprintf(out->memo, sizeof out->memo, "%s", memo ? memo : "");
    out->g.left = sqlite3_column_int64(st, 9);
    return TG_OK;
}

/* Each grant of (app, customer) with its balance, in no order. */
static int each_grant(tg_store *s, tg_str app, tg_str customer,
                      int (*fn)(void *ud, const tg_store_grant *g), void *ud, tg_errmsg *err)
{
    int rc = tg_sq_prepare(
        s, &s->w_grants,
        "SELECT g.id, g.kind, g.credits, g.paid, g.priority, g.created_ms, g.expires_ms,"
        " g.closed_ms, g.memo, coalesce((SELECT sum(e.credits) FROM wallet_tx t JOIN"
        " wallet_entries e ON e.tx = t.tx AND e.account = 'grant:' || g.id WHERE t.app = g.app"
        " AND t.customer = g.customer), 0) FROM grants g WHERE g.app = ?1 AND g.customer = ?2",
        err);
    if (rc) return rc;
    sqlite3_stmt *st = s->w_grants;
    bind_str(st, 1, app);
    bind_str(st, 2, customer);
    int step;
    tg_store_grant g;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if (grant_row(st, &g)) {
            rc = tg_errmsg_set(err, "%s: grant %s has an unknown kind", s->path, g.g.id);
        } else {
            rc = fn(ud, &g);
        }
    }
    if (!rc && step != SQLITE_DONE) rc = tg_sq_fail(s, err, "reading grants");
    sqlite3_reset(st);
    return rc;
}

/* ---- the writer's wallets ---- */

static uint64_t wallet_hash(tg_str app, tg_str customer)
{
    return tg_hash64(customer.p, customer.n, tg_hash64(app.p, app.n, 0x3a11e7) ^ app.n);
}

void tg_sq_wallets_drop(tg_store *s)
{
    tg_sq_wallets *w = &s->wallets;
    for (size_t i = 0; i < w->cap; i++)
        if (w->e[i]) free(w->e[i]->g);
    free(w->e);
    tg_arena_release(&w->arena);
    *w = (tg_sq_wallets){0}; /* seen_tx too: nothing is cached to forget */
}

static int wallets_grow(tg_sq_wallets *w)
{
    size_t cap = w->cap ? w->cap * 2 : 256;
    tg_sq_wallet **e = calloc(cap, sizeof *e);
    if (!e) return TG_ENOMEM;
    for (size_t i = 0; i < w->cap; i++) {
        if (!w->e[i]) continue;
        size_t j = w->e[i]->hash & (cap - 1);
        while (e[j]) j = (j + 1) & (cap - 1);
        e[j] = w->e[i];
    }
    free(w->e);
    w->e = e;
    w->cap = cap;
    return TG_OK;
}

static tg_sq_wallet *wallet_find(tg_sq_wallets *w, tg_str app, tg_str customer, uint64_t h)
{
    if (!w->cap) return NULL;
    for (size_t j = h & (w->cap - 1); w->e[j]; j = (j + 1) & (w->cap - 1))
        if (w->e[j]->hash == h && tg_str_eq(w->e[j]->app, app) && tg_str_eq(w->e[j]->customer, customer))
            return w->e[j];
    return NULL;
}

static int wallet_push(tg_sq_wallet *wl, const tg_grant *g)
{
    if (wl->n == wl->cap) {
        size_t cap = wl->cap ? wl->cap * 2 : 4;
        tg_grant *n = realloc(wl->g, cap * sizeof *n);
        if (!n) return TG_ENOMEM;
        wl->g = n;
        wl->cap = cap;
    }
    wl->g[wl->n++] = *g;
    return TG_OK;
}

static int load_one(void *ud, const tg_store_grant *g)
{
    return wallet_push(ud, &g->g);
}

/* The writer's wallet of (app, customer), loaded on first use and again
 * after it was forgotten. */
static int wallet_get(tg_store *s, tg_str app, tg_str customer, tg_sq_wallet **out, tg_errmsg *err)
{
    tg_sq_wallets *w = &s->wallets;
    uint64_t h = wallet_hash(app, customer);
    tg_sq_wallet *wl = wallet_find(w, app, customer, h);
    if (wl && !wl->stale) {
        *out = wl;
        return TG_OK;
    }
    if (!wl) {
        if (!w->arena_ready) {
            tg_arena_init(&w->arena);
            w->arena_ready = true;
        }
        if (2 * (w->n + 1) > w->cap && wallets_grow(w)) goto nomem;
        wl = tg_arena_alloc(&w->arena, sizeof *wl);
        tg_str a = tg_arena_dup(&w->arena, app), c = tg_arena_dup(&w->arena, customer);
        if (!wl || !a.p || !c.p) goto nomem;
        *wl = (tg_sq_wallet){.hash = h, .app = a, .customer = c};
        size_t j = h & (w->cap - 1);
        while (w->e[j]) j = (j + 1) & (w->cap - 1);
        w->e[j] = wl;
        w->n++;
    }
    wl->n = 0;
    wl->stale = false;
    int rc = each_grant(s, app, customer, load_one, wl, err);
    if (rc == TG_ENOMEM) goto nomem;
    if (rc) return rc;
    tg_wallet_order(wl->g, wl->n);
    *out = wl;
    return TG_OK;
nomem:
    return tg_errmsg_set(err, "%s: out of memory", s->path), TG_ENOMEM;
}

/* Forgets what the writer knew of (app, customer)'s grants: the next burn
 * loads them again. */
static void wallet_forget(tg_store *s, tg_str app, tg_str customer)
{
    tg_sq_wallet *wl = wallet_find(&s->wallets, app, customer, wallet_hash(app, customer));
    if (wl) wl->stale = true;
}

/* ---- burns ---- */

static int included_grant(tg_store *s, tg_sq_wallet *wl, const tg_period *p, tg_ncredits included,
                          int64_t t_ms, tg_errmsg *err)
{
    char id[TG_GRANT_ID_MAX + 1];
    tg_grant_included_id(p->name, id);
    for (size_t i = 0; i < wl->n; i++)
        if (!strcmp(wl->g[i].id, id)) return TG_OK;
    tg_grant g = {.kind = TG_GRANT_INCLUDED, .created_ms = p->start_ms, .expires_ms = p->end_ms,
                  .granted = included, .left = included};
    memcpy(g.id, id, sizeof id);
    int rc = insert_grant(s, wl->app, wl->customer, &g, 0, TG_STR("included credits of the plan"),
                          t_ms, err);
    if (!rc && wallet_push(wl, &g)) {
        tg_errmsg_set(err, "%s: out of memory", s->path);
        rc = TG_ENOMEM;
    }
    if (!rc) tg_wallet_order(wl->g, wl->n);
    return rc;
}

/* The put's pending burn of (wl, period), added when new. */
static tg_sq_burn *burn_of(tg_store *s, tg_sq_wallet *wl, const tg_period *p)
{
    tg_sq_burns *b = &s->burns;
    for (size_t i = 0; i < b->n; i++)
        if (b->v[i].wallet == wl && !strcmp(b->v[i].period, p->name)) return &b->v[i];
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        tg_sq_burn *v = realloc(b->v, cap * sizeof *v);
        if (!v) return NULL;
        b->v = v;
        b->cap = cap;
    }
    tg_sq_burn *n = &b->v[b->n++];
    memset(n, 0, sizeof *n);
    n->wallet = wl;
    memcpy(n->period, p->name, sizeof n->period);
    return n;
}

static int burn_take(tg_sq_burn *b, const char *grant_id, tg_ncredits credits)
{
    for (size_t i = 0; i < b->ntakes; i++)
        if (!strcmp(b->takes[i].id, grant_id)) {
            b->takes[i].credits += credits;
            return TG_OK;
        }
    if (b->ntakes == b->captakes) {
        size_t cap = b->captakes ? b->captakes * 2 : 4;
        void *v = realloc(b->takes, cap * sizeof *b->takes);
        if (!v) return TG_ENOMEM;
        b->takes = v;
        b->captakes = cap;
    }
    memcpy(b->takes[b->ntakes].id, grant_id, sizeof b->takes[b->ntakes].id);
    b->takes[b->ntakes++].credits = credits;
    return TG_OK;
}

static bool same(tg_str a, const char *b) { return tg_str_eq(a, tg_str_c(b)); }

/* The terms of v's app and plan (the terms function's, or calendar months
 * and nothing included). */
static const tg_store_terms *terms_of(tg_store *s, const tg_record_view *v)
{
    tg_sq_burns *b = &s->burns;
    if (b->have_terms && same(v->app, b->app) && same(v->plan, b->plan)) return &b->terms;
    b->terms = (tg_store_terms){.anchor_day = 1};
    if (s->terms) s->terms(s->terms_ud, v->app, v->plan, &b->terms);
    snprintf(b->app, sizeof b->app, "%.*s", TG_STR_FMT(v->app));
    snprintf(b->plan, sizeof b->plan, "%.*s", TG_STR_FMT(v->plan));
    b->have_terms = true;
    return &b->terms;
}

int tg_sq_burn_record(tg_store *s, const tg_record_view *v, tg_errmsg *err)
{
    tg_store_terms terms = *terms_of(s, v);
    tg_period p;
    tg_period_at(terms.anchor_day, v->t_start_ms, &p);
    tg_sq_wallet *wl;
    int rc = wallet_get(s, v->app, v->customer, &wl, err);
    if (!rc && terms.included > 0) rc = included_grant(s, wl, &p, terms.included, v->t_start_ms, err);
    if (rc) return rc;
    tg_sq_burn *b = burn_of(s, wl, &p);
    if (!b) return tg_errmsg_set(err, "%s: out of memory", s->path), TG_ENOMEM;
    tg_ncredits left = v->credits;
    for (size_t i = 0; i < wl->n && left > 0; i++) {
        tg_ncredits t = 0;
        left = tg_wallet_burn(&wl->g[i], 1, left, v->t_start_ms, &t);
        if (t && burn_take(b, wl->g[i].id, t)) return tg_errmsg_set(err, "%s: out of memory", s->path), TG_ENOMEM;
    }
    b->overage += left;
    b->total += v->credits;
    b->records++;
    b->charge += v->charge;
    if (v->t_start_ms > b->t_ms) b->t_ms = v->t_start_ms;
    return TG_OK;
}

/* The burn transaction of (wallet, period) for the UTC day of t_ms, made
 * when the day has none. */
static int day_tx(tg_store *s, const tg_sq_burn *b, int64_t *tx, tg_errmsg *err)
{
    int64_t day = b->t_ms - ((b->t_ms % MS_DAY) + MS_DAY) % MS_DAY;
    tg_sq_wallet *wl = b->wallet;
    int rc = tg_sq_prepare(s, &s->w_day,
                           "SELECT tx FROM wallet_tx WHERE app = ?1 AND customer = ?2 AND"
                           " kind = 'burn' AND ref = ?3 AND t_ms = ?4",
                           err);
    if (rc) return rc;
    bind_str(s->w_day, 1, wl->app);
    bind_str(s->w_day, 2, wl->customer);
    sqlite3_bind_text(s->w_day, 3, b->period, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->w_day, 4, day);
    int step = sqlite3_step(s->w_day);
    if (step == SQLITE_ROW) *tx = sqlite3_column_int64(s->w_day, 0);
    sqlite3_reset(s->w_day);
    if (step == SQLITE_ROW) return TG_OK;
    if (step != SQLITE_DONE) return tg_sq_fail(s, err, "finding a burn");
    return new_tx(s, wl->app, wl->customer, day, "burn", tg_str_c(b->period), tx, err);
}

int tg_sq_burns_write(tg_store *s, tg_errmsg *err)
{
    tg_sq_burns *bs = &s->burns;
    int rc = TG_OK;
    for (size_t i = 0; i < bs->n && !rc; i++) {
        tg_sq_burn *b = &bs->v[i];
        int64_t tx;
        tg_ncredits sum = b->overage;
        char account[ACCOUNT_MAX];
        if ((rc = day_tx(s, b, &tx, err))) break;
        for (size_t k = 0; k < b->ntakes && !rc; k++) {
            account_of(b->takes[k].id, account);
            rc = add_entry(s, tx, account, -b->takes[k].credits, err);
            sum += b->takes[k].credits;
        }
        if (!rc && b->overage) rc = add_entry(s, tx, "overage", -b->overage, err);
        if (!rc) rc = add_entry(s, tx, "usage", b->total, err);
        if (rc) break;
        if (sum != b->total) /* burn takes and overage make the total, or the ledger lies */
            return tg_errmsg_set(err, "%s: a burn does not add up", s->path), TG_EINVAL;
        rc = tg_sq_prepare(s, &s->w_burn_add,
                           "UPDATE wallet_tx SET records = records + ?2, charge = charge + ?3"
                           " WHERE tx = ?1",
                           err);
        if (rc) break;
        sqlite3_bind_int64(s->w_burn_add, 1, tx);
        sqlite3_bind_int64(s->w_burn_add, 2, b->records);
        sqlite3_bind_int64(s->w_burn_add, 3, b->charge);
        rc = step_done(s, s->w_burn_add, "adding to a burn", err);
    }
    tg_sq_burns_reset(s);
    return rc;
}

void tg_sq_burns_reset(tg_store *s)
{
    tg_sq_burns *b = &s->burns;
    for (size_t i = 0; i < b->n; i++) free(b->v[i].takes);
    b->n = 0;
    b->have_terms = false;
}

void tg_sq_burns_release(tg_store *s)
{
    tg_sq_burns_reset(s);
    free(s->burns.v);
    s->burns.v = NULL;
    s->burns.cap = 0;
}

/* ---- transactions of their own ---- */

static int begin(tg_store *s, tg_errmsg *err)
{
    if (s->ro) return tg_errmsg_set(err, "%s: opened read-only", s->path);
    return tg_sq_exec(s, "BEGIN IMMEDIATE", err);
}

/* Commits when rc is TG_OK, else rolls back (and forgets the wallets,
 * which may hold what the rollback took back). */
static int end(tg_store *s, int rc, tg_errmsg *err)
{
    if (!rc) rc = tg_sq_exec(s, "COMMIT", err);
    if (rc) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        tg_sq_wallets_drop(s);
    }
    return rc;
}

int tg_store_add_grant(tg_store *s, tg_str app, tg_str customer, const tg_grant *g,
                       tg_nanos paid, tg_str memo, int64_t t_ms, tg_errmsg *err)
{
    int rc = begin(s, err);
    if (rc) return rc;
    rc = insert_grant(s, app, customer, g, paid, memo, t_ms, err);
    if (!rc) {
        tg_sq_wallet *wl = wallet_find(&s->wallets, app, customer, wallet_hash(app, customer));
        tg_grant fresh = *g;
        fresh.left = g->granted;
        if (wl && !wl->stale && wallet_push(wl, &fresh) == TG_OK) tg_wallet_order(wl->g, wl->n);
        else if (wl) wallet_forget(s, app, customer);
    }
    return end(s, rc, err);
}

typedef struct {
    tg_store_grant *v;
    size_t n, cap;
} grant_list;

static int collect(void *ud, const tg_store_grant *g)
{
    grant_list *l = ud;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        tg_store_grant *v = realloc(l->v, cap * sizeof *v);
        if (!v) return TG_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *g;
    return TG_OK;
}

static int cmp_grants(const void *x, const void *y)
{
    return tg_grant_burn_cmp(&((const tg_store_grant *)x)->g, &((const tg_store_grant *)y)->g);
}

int tg_store_grants(tg_store *s, tg_str app, tg_str customer, tg_store_grant **out, size_t *n,
                    tg_errmsg *err)
{
    grant_list l = {0};
    int rc = each_grant(s, app, customer, collect, &l, err);
    if (rc == TG_ENOMEM) tg_errmsg_set(err, "%s: out of memory", s->path);
    if (!rc && l.n > 1) qsort(l.v, l.n, sizeof *l.v, cmp_grants);
    if (rc) {
        free(l.v);
        l = (grant_list){0};
    }
    *out = l.v;
    *n = l.n;
    return rc;
}

static int grant_balance(tg_store *s, tg_str app, tg_str customer, const char *id,
                         tg_ncredits *out, tg_errmsg *err)
{
    char account[ACCOUNT_MAX];
    account_of(id, account);
    int rc = tg_sq_prepare(s, &s->w_balance,
                           "SELECT coalesce(sum(e.credits), 0) FROM wallet_tx t JOIN wallet_entries e"
                           " ON e.tx = t.tx AND e.account = ?3 WHERE t.app = ?1 AND t.customer = ?2",
                           err);
    if (rc) return rc;
    bind_str(s->w_balance, 1, app);
    bind_str(s->w_balance, 2, customer);
    sqlite3_bind_text(s->w_balance, 3, account, -1, SQLITE_STATIC);
    int step = sqlite3_step(s->w_balance);
    if (step == SQLITE_ROW) *out = sqlite3_column_int64(s->w_balance, 0);
    sqlite3_reset(s->w_balance);
    return step == SQLITE_ROW ? TG_OK : tg_sq_fail(s, err, "reading a balance");
}

int tg_store_expire_grants(tg_store *s, int64_t now_ms, int64_t grace_ms, size_t *n, tg_errmsg *err)
{
    *n = 0;
    int rc = begin(s, err);
    if (rc) return rc;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT app, customer, id, expires_ms FROM grants WHERE expires_ms > 0"
                           " AND closed_ms = 0 AND expires_ms <= ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return end(s, tg_sq_fail(s, err, "finding expired grants"), err);
    sqlite3_bind_int64(st, 1, now_ms - grace_ms);
    int step;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        tg_str app = tg_str_c((const char *)sqlite3_column_text(st, 0));
        tg_str cust = tg_str_c((const char *)sqlite3_column_text(st, 1));
        const char *id = (const char *)sqlite3_column_text(st, 2);
        int64_t at = sqlite3_column_int64(st, 3), tx;
        tg_ncredits left = 0;
        char account[ACCOUNT_MAX];
        account_of(id, account);
        rc = grant_balance(s, app, cust, id, &left, err);
        if (!rc && left > 0) {
            rc = new_tx(s, app, cust, at, "expire", tg_str_c(id), &tx, err);
            if (!rc) rc = add_entry(s, tx, account, -left, err);
            if (!rc) rc = add_entry(s, tx, "expired", left, err);
        }
        if (!rc) {
            rc = tg_sq_prepare(s, &s->w_close,
                               "UPDATE grants SET closed_ms = ?4 WHERE app = ?1 AND customer = ?2"
                               " AND id = ?3",
                               err);
            if (!rc) {
                bind_str(s->w_close, 1, app);
                bind_str(s->w_close, 2, cust);
                sqlite3_bind_text(s->w_close, 3, id, -1, SQLITE_STATIC);
                sqlite3_bind_int64(s->w_close, 4, now_ms);
                rc = step_done(s, s->w_close, "closing a grant", err);
            }
        }
        if (!rc) {
            wallet_forget(s, app, cust);
            ++*n;
        }
    }
    if (!rc && step != SQLITE_DONE) rc = tg_sq_fail(s, err, "finding expired grants");
    sqlite3_finalize(st);
    return end(s, rc, err);
}

int tg_sq_wallets_refresh(tg_store *s, tg_errmsg *err)
{
    return tg_store_wallet_poll(s, &s->wallets.seen_tx, NULL, NULL, err);
}

int tg_store_wallet_poll(tg_store *s, int64_t *seen,
                         int (*fn)(void *ud, tg_str app, tg_str customer, tg_str grant_id),
                         void *ud, tg_errmsg *err)
{
    int rc = tg_sq_prepare(s, &s->w_poll,
                           "SELECT tx, app, customer, ref FROM wallet_tx WHERE tx > ?1 AND"
                           " kind = 'grant' AND ref NOT LIKE 'inc:%' ORDER BY tx",
                           err);
    if (rc) return rc;
    sqlite3_stmt *st = s->w_poll;
    sqlite3_bind_int64(st, 1, *seen);
    int step;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        tg_str app = tg_str_c((const char *)sqlite3_column_text(st, 1));
        tg_str cust = tg_str_c((const char *)sqlite3_column_text(st, 2));
        wallet_forget(s, app, cust);
        *seen = sqlite3_column_int64(st, 0);
        if (fn) rc = fn(ud, app, cust, tg_str_c((const char *)sqlite3_column_text(st, 3)));
    }
    if (!rc && step != SQLITE_DONE) rc = tg_sq_fail(s, err, "reading new grants");
    sqlite3_reset(st);
    return rc;
}

int tg_store_period_use(tg_store *s, tg_str app, tg_str customer, const char *period,
                        tg_store_period_sums *out, tg_errmsg *err)
{
    memset(out, 0, sizeof *out);
    char inc[TG_GRANT_ID_MAX + 1], inc_account[ACCOUNT_MAX];
    tg_grant_included_id(period, inc);
    account_of(inc, inc_account);
    sqlite3_stmt *st = NULL;
    int rc = TG_OK, step;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT e.account, sum(e.credits) FROM wallet_tx t JOIN wallet_entries e"
                           " ON e.tx = t.tx WHERE t.app = ?1 AND t.customer = ?2 AND t.kind = 'burn'"
                           " AND t.ref = ?3 GROUP BY e.account",
                           -1, &st, NULL) != SQLITE_OK)
        return tg_sq_fail(s, err, "reading a period's use");
    bind_str(st, 1, app);
    bind_str(st, 2, customer);
    sqlite3_bind_text(st, 3, period, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *account = (const char *)sqlite3_column_text(st, 0);
        tg_ncredits v = -sqlite3_column_int64(st, 1);
        if (!strcmp(account, inc_account)) out->included_used += v;
        else if (!strncmp(account, "grant:", 6)) out->grants_used += v;
        else if (!strcmp(account, "overage")) out->overage += v;
    }
    if (step != SQLITE_DONE) rc = tg_sq_fail(s, err, "reading a period's use");
    sqlite3_finalize(st);
    st = NULL;
    if (!rc &&
        sqlite3_prepare_v2(s->db,
                           "SELECT coalesce(sum(records), 0), coalesce(sum(charge), 0),"
                           " (SELECT credits FROM grants WHERE app = ?1 AND customer = ?2 AND id = ?4)"
                           " FROM wallet_tx WHERE app = ?1 AND customer = ?2 AND kind = 'burn'"
                           " AND ref = ?3",
                           -1, &st, NULL) != SQLITE_OK)
        rc = tg_sq_fail(s, err, "reading a period's use");
    if (!rc) {
        bind_str(st, 1, app);
        bind_str(st, 2, customer);
        sqlite3_bind_text(st, 3, period, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, inc, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            out->records = sqlite3_column_int64(st, 0);
            out->charge = sqlite3_column_int64(st, 1);
            out->included = sqlite3_column_int64(st, 2);
        } else {
            rc = tg_sq_fail(s, err, "reading a period's use");
        }
    }
    sqlite3_finalize(st);
    return rc;
}

int tg_store_wallet_check(tg_store *s, int64_t *ntx, int64_t *ngrants, tg_errmsg *err)
{
    sqlite3_stmt *st = NULL;
    int rc = TG_OK;
    if (sqlite3_prepare_v2(s->db, "SELECT (SELECT count(*) FROM wallet_tx), (SELECT count(*) FROM grants)",
                           -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return tg_sq_fail(s, err, "checking the wallet ledger");
    }
    *ntx = sqlite3_column_int64(st, 0);
    *ngrants = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT tx, sum(credits) FROM wallet_entries GROUP BY tx"
                           " HAVING sum(credits) != 0 LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK)
        return tg_sq_fail(s, err, "checking the wallet ledger");
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = tg_errmsg_set(err, "%s: wallet transaction %lld does not sum to zero (%lld)", s->path,
                           (long long)sqlite3_column_int64(st, 0),
                           (long long)sqlite3_column_int64(st, 1));
    else if (step != SQLITE_DONE)
        rc = tg_sq_fail(s, err, "checking the wallet ledger");
    sqlite3_finalize(st);
    if (rc) return rc;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT g.app, g.customer, g.id, g.credits, coalesce((SELECT sum(e.credits)"
                           " FROM wallet_tx t JOIN wallet_entries e ON e.tx = t.tx AND e.account ="
                           " 'grant:' || g.id WHERE t.app = g.app AND t.customer = g.customer), 0) AS b"
                           " FROM grants g WHERE b < 0 OR b > g.credits LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK)
        return tg_sq_fail(s, err, "checking the wallet ledger");
    step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = tg_errmsg_set(err, "%s: grant %s of %s/%s has a balance of %lld of %lld", s->path,
                           (const char *)sqlite3_column_text(st, 2),
                           (const char *)sqlite3_column_text(st, 0),
                           (const char *)sqlite3_column_text(st, 1),
                           (long long)sqlite3_column_int64(st, 4),
                           (long long)sqlite3_column_int64(st, 3));
    else if (step != SQLITE_DONE)
        rc = tg_sq_fail(s, err, "checking the wallet ledger");
    sqlite3_finalize(st);
    return rc;
}

int tg_store_each_account(tg_store *s, int (*fn)(void *ud, tg_str app, tg_str customer), void *ud,
                          tg_errmsg *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT app, id FROM customers UNION SELECT app, customer FROM grants",
                           -1, &st, NULL) != SQLITE_OK)
        return tg_sq_fail(s, err, "listing accounts");
    int rc = TG_OK, step;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = fn(ud, tg_str_c((const char *)sqlite3_column_text(st, 0)),
                tg_str_c((const char *)sqlite3_column_text(st, 1)));
    if (!rc && step != SQLITE_DONE) rc = tg_sq_fail(s, err, "listing accounts");
    sqlite3_finalize(st);
    return rc;
}
