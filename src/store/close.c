/* Closing periods in the store. See store/close.h.
 *
 * A close is rare and reads or writes a lot at once, so statements are
 * prepared for the call and finalized after it; no handle keeps one. */
#include "store/close.h"

#include "store/sqlite_int.h"

#include <stdlib.h>
#include <string.h>

static void bind_str(sqlite3_stmt *st, int i, tg_str v)
{
    sqlite3_bind_text(st, i, v.p ? v.p : "", (int)v.n, SQLITE_STATIC);
}

static void bind_c(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v, (int)strlen(v), SQLITE_STATIC);
}

static const char *col(sqlite3_stmt *st, int i)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    return v ? v : "";
}

static void col_copy(sqlite3_stmt *st, int i, char *dst, size_t n)
{
    const char *v = col(st, i);
    size_t l = strlen(v);
    if (l >= n) l = n - 1;
    memcpy(dst, v, l);
    dst[l] = '\0';
}

static int prep(tg_store *s, sqlite3_stmt **st, const char *sql, const char *what, tg_errmsg *err)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) return tg_sq_fail(s, err, what);
    return TG_OK;
}

/* Steps st to its end; TG_EIO naming what. */
static int done(tg_store *s, sqlite3_stmt *st, const char *what, tg_errmsg *err)
{
    int step = sqlite3_step(st);
    int rc = step == SQLITE_DONE ? TG_OK : tg_sq_fail(s, err, what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* ---- plan history ---- */

int tg_store_plan_change(tg_store *s, tg_str app, tg_str customer, tg_str plan, int64_t t_ms,
                         tg_errmsg *err)
{
    sqlite3_stmt *st;
    int rc = prep(s, &st,
                  "INSERT OR REPLACE INTO plan_changes (app, customer, t_ms, plan)"
                  " VALUES (?1, ?2, ?3, ?4)",
                  "recording a plan change", err);
    if (rc) return rc;
    bind_str(st, 1, app);
    bind_str(st, 2, customer);
    sqlite3_bind_int64(st, 3, t_ms);
    bind_str(st, 4, plan);
    rc = done(s, st, "recording a plan change", err);
    sqlite3_finalize(st);
    return rc;
}

int tg_store_plan_sync(tg_store *s, const tg_config *cfg, int64_t now_ms, tg_errmsg *err)
{
    const char *what = "recording the file's plans";
    sqlite3_stmt *last = NULL, *add = NULL;
    int rc = tg_sq_exec(s, "BEGIN IMMEDIATE", err);
    if (rc) return rc;
    rc = prep(s, &last,
              "SELECT plan FROM plan_changes WHERE app = ?1 AND customer = ?2 ORDER BY t_ms DESC"
              " LIMIT 1",
              what, err);
    if (!rc)
        rc = prep(s, &add,
                  "INSERT OR REPLACE INTO plan_changes (app, customer, t_ms, plan) VALUES (?1, ?2, ?3, ?4)",
                  what, err);
    for (size_t i = 0; !rc && i < cfg->ncustomers; i++) {
        const tg_customer *c = &cfg->customers[i];
        const char *plan = c->plan ? c->plan->id : "";
        bind_c(last, 1, c->app->id);
        bind_c(last, 2, c->id);
        int step = sqlite3_step(last);
        bool known = step == SQLITE_ROW, same = known && !strcmp(col(last, 0), plan);
        if (step != SQLITE_ROW && step != SQLITE_DONE) rc = tg_sq_fail(s, err, what);
        sqlite3_reset(last);
        if (rc || same) continue;
        bind_c(add, 1, c->app->id);
        bind_c(add, 2, c->id);
        sqlite3_bind_int64(add, 3, known ? now_ms : 0);
        bind_c(add, 4, plan);
        rc = done(s, add, what, err);
    }
    sqlite3_finalize(last);
    sqlite3_finalize(add);
    if (!rc) rc = tg_sq_exec(s, "COMMIT", err);
    if (rc) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int tg_store_each_plan_change(tg_store *s,
                              int (*fn)(void *ud, const char *app, const char *customer,
                                        int64_t t_ms, const char *plan),
                              void *ud, tg_errmsg *err)
{
    sqlite3_stmt *st;
    int rc = prep(s, &st,
                  "SELECT app, customer, t_ms, plan FROM plan_changes ORDER BY app, customer, t_ms",
                  "reading plan changes", err);
    if (rc) return rc;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW)
        if ((rc = fn(ud, col(st, 0), col(st, 1), sqlite3_column_int64(st, 2), col(st, 3)))) break;
    if (!rc && step != SQLITE_DONE) rc = tg_sq_fail(s, err, "reading plan changes");
    sqlite3_finalize(st);
    return rc;
}

/* ---- reading ---- */

int tg_store_read_begin(tg_store *s, tg_errmsg *err) { return tg_sq_exec(s, "BEGIN", err); }

void tg_store_read_end(tg_store *s) { sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL); }

#define CLOSE_COLS                                                                                \
    "period, status, through_seq, through_tx, late_seq, late_tx, closed_ms, finalized_ms"

static void read_state(sqlite3_stmt *st, tg_close_state *c)
{
    memset(c, 0, sizeof *c);
    col_copy(st, 0, c->period, sizeof c->period);
    c->finalized = !strcmp(col(st, 1), "finalized");
    c->through_seq = sqlite3_column_int64(st, 2);
    c->through_tx = sqlite3_column_int64(st, 3);
    c->late_seq = sqlite3_column_int64(st, 4);
    c->late_tx = sqlite3_column_int64(st, 5);
    c->closed_ms = sqlite3_column_int64(st, 6);
    c->finalized_ms = sqlite3_column_int64(st, 7);
}

int tg_store_closes(tg_store *s, tg_close_state **out, size_t *n, tg_errmsg *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = prep(s, &st, "SELECT " CLOSE_COLS " FROM closes ORDER BY period", "reading closes", err);
    if (rc) return rc;
    size_t cap = 0;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (tg_array_grow(out, &cap, *n, sizeof **out)) {
            rc = TG_ENOMEM;
            tg_errmsg_set(err, "out of memory");
            break;
        }
        read_state(st, &(*out)[(*n)++]);
    }
    if (!rc && step != SQLITE_DONE) rc = tg_sq_fail(s, err, "reading closes");
    sqlite3_finalize(st);
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int tg_store_marks(tg_store *s, int64_t *seq, int64_t *tx, tg_errmsg *err)
{
    sqlite3_stmt *st;
    int rc = prep(s, &st,
                  "SELECT (SELECT coalesce(max(seq), 0) FROM usage),"
                  " (SELECT coalesce(max(tx), 0) FROM wallet_tx)",
                  "reading the store's marks", err);
    if (rc) return rc;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *seq = sqlite3_column_int64(st, 0);
        *tx = sqlite3_column_int64(st, 1);
    } else {
        rc = tg_sq_fail(s, err, "reading the store's marks");
    }
    sqlite3_finalize(st);
    return rc;
}

int tg_store_each_record_seq(tg_store *s, int64_t seq_lo, int64_t seq_hi, int64_t from_ms,
                             int64_t to_ms, int (*fn)(void *ud, const tg_usage_rec *r), void *ud,
                             tg_errmsg *err)
{
    sqlite3_stmt *st;
    int rc = prep(s, &st,
                  "SELECT seq, recs FROM usage WHERE seq > ?1 AND seq <= ?2 AND hi_ms >= ?3"
                  " AND lo_ms < ?4",
                  "reading usage", err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, seq_lo);
    sqlite3_bind_int64(st, 2, seq_hi);
    sqlite3_bind_int64(st, 3, from_ms);
    sqlite3_bind_int64(st, 4, to_ms);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW)
        if ((rc = tg_sq_chunk_records(s, st, 1, from_ms, to_ms, fn, ud, err))) break;
    if (!rc && step != SQLITE_DONE) rc = tg_sq_fail(s, err, "reading usage");
    sqlite3_finalize(st);
    return rc;
}

int tg_store_each_burn_sum(tg_store *s, const char *period, int64_t tx_lo, int64_t tx_hi,
                           int (*fn)(void *ud, const char *app, const char *customer,
                                     const char *account, int64_t day_ms, tg_ncredits credits),
                           void *ud, tg_errmsg *err)
{
    sqlite3_stmt *st;
    int rc = prep(s, &st,
                  "SELECT t.app, t.customer, e.account, t.t_ms / 86400000 AS day, sum(e.credits)"
                  " FROM wallet_tx t JOIN wallet_entries e ON e.tx = t.tx WHERE t.kind = 'burn'"
                  " AND t.ref = ?1 AND t.tx > ?2 AND t.tx <= ?3"
                  " GROUP BY t.app, t.customer, e.account, day",
                  "reading the wallet's burns", err);
    if (rc) return rc;
    bind_c(st, 1, period);
    sqlite3_bind_int64(st, 2, tx_lo);
    sqlite3_bind_int64(st, 3, tx_hi);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW)
        if ((rc = fn(ud, col(st, 0), col(st, 1), col(st, 2), sqlite3_column_int64(st, 3) * 86400000,
                     sqlite3_column_int64(st, 4))))
            break;
    if (!rc && step != SQLITE_DONE) rc = tg_sq_fail(s, err, "reading the wallet's burns");
    sqlite3_finalize(st);
    return rc;
}

int tg_store_each_burn_entry(tg_store *s, const char *app, const char *customer, const char *period,
                             int64_t tx_lo, int64_t tx_hi,
                             int (*fn)(void *ud, int64_t tx, int64_t t_ms, int64_t records,
                                       tg_nanos charge, const char *account, tg_ncredits credits),
                             void *ud, tg_errmsg *err)
{
    sqlite3_stmt *st;
    int rc = prep(s, &st,
                  "SELECT t.tx, t.t_ms, t.records, t.charge, e.account, e.credits FROM wallet_tx t"
                  " JOIN wallet_entries e ON e.tx = t.tx WHERE t.app = ?1 AND t.customer = ?2"
                  " AND t.kind = 'burn' AND t.ref = ?3 AND t.tx > ?4 AND t.tx <= ?5"
                  " ORDER BY t.tx, e.account",
                  "reading the wallet's burns", err);
    if (rc) return rc;
    bind_c(st, 1, app);
    bind_c(st, 2, customer);
    bind_c(st, 3, period);
    sqlite3_bind_int64(st, 4, tx_lo);
    sqlite3_bind_int64(st, 5, tx_hi);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW)
        if ((rc = fn(ud, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                     sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3), col(st, 4),
                     sqlite3_column_int64(st, 5))))
            break;
    if (!rc && step != SQLITE_DONE) rc = tg_sq_fail(s, err, "reading the wallet's burns");
    sqlite3_finalize(st);
    return rc;
}

int tg_store_each_grant_made(tg_store *s, int64_t tx_lo, int64_t tx_hi,
                             int (*fn)(void *ud, const char *app, const char *customer,
                                       const tg_grant *g, tg_nanos paid),
                             void *ud, tg_errmsg *err)
{
    sqlite3_stmt *st;
    int rc = prep(s, &st,
                  "SELECT g.app, g.customer, g.id, g.kind, g.credits, g.paid, g.priority,"
                  " g.created_ms, g.expires_ms FROM wallet_tx t JOIN grants g ON g.app = t.app"
                  " AND g.customer = t.customer AND g.id = t.ref WHERE t.kind = 'grant'"
                  " AND g.kind != 'included' AND t.tx > ?1 AND t.tx <= ?2 ORDER BY t.tx",
                  "reading grants", err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, tx_lo);
    sqlite3_bind_int64(st, 2, tx_hi);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        tg_grant g = {0};
        col_copy(st, 2, g.id, sizeof g.id);
        if (tg_grant_kind_parse(tg_str_c(col(st, 3)), &g.kind)) g.kind = TG_GRANT_PAID;
        g.granted = g.left = sqlite3_column_int64(st, 4);
        g.priority = sqlite3_column_int64(st, 6);
        g.created_ms = sqlite3_column_int64(st, 7);
        g.expires_ms = sqlite3_column_int64(st, 8);
        if ((rc = fn(ud, col(st, 0), col(st, 1), &g, sqlite3_column_int64(st, 5)))) break;
    }
    if (!rc && step != SQLITE_DONE) rc = tg_sq_fail(s, err, "reading grants");
    sqlite3_finalize(st);
    return rc;
}

/* ---- writing ---- */

static bool same_state(const tg_close_state *a, const tg_close_state *b)
{
    return !strcmp(a->period, b->period) && a->finalized == b->finalized &&
           a->through_seq == b->through_seq && a->through_tx == b->through_tx &&
           a->closed_ms == b->closed_ms;
}

/* Whether the store's closes are still seen[0..n). */
static int unchanged(tg_store *s, const tg_close_state *seen, size_t n, tg_errmsg *err)
{
    tg_close_state *now;
    size_t nnow;
    int rc = tg_store_closes(s, &now, &nnow, err);
    if (rc) return rc;
    bool same = nnow == n;
    for (size_t i = 0; same && i < n; i++) same = same_state(&now[i], &seen[i]);
    free(now);
    if (!same)
        return tg_errmsg_set(err, "another close of this store landed while this one ran; run it "
                                  "again");
    return TG_OK;
}

static int drop_drafts(tg_store *s, tg_errmsg *err)
{
    static const char sql[] =
        "DELETE FROM invoice_lines WHERE invoice IN (SELECT id FROM invoices WHERE period IN"
        " (SELECT period FROM closes WHERE status = 'draft'));\n"
        "DELETE FROM invoices WHERE period IN (SELECT period FROM closes WHERE status = 'draft');\n"
        "DELETE FROM statement_rows WHERE period IN"
        " (SELECT period FROM closes WHERE status = 'draft');\n"
        "DELETE FROM settlement_rows WHERE period IN"
        " (SELECT period FROM closes WHERE status = 'draft');\n"
        "DELETE FROM closes WHERE status = 'draft';\n";
    return tg_sq_exec(s, sql, err);
}

typedef struct {
    sqlite3_stmt *close, *inv, *line, *stmt, *settle;
} writers;

static void writers_free(writers *w)
{
    sqlite3_finalize(w->close);
    sqlite3_finalize(w->inv);
    sqlite3_finalize(w->line);
    sqlite3_finalize(w->stmt);
    sqlite3_finalize(w->settle);
}

static int writers_prep(tg_store *s, writers *w, tg_errmsg *err)
{
    const char *what = "writing a close";
    int rc = prep(s, &w->close, "INSERT INTO closes (" CLOSE_COLS ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
                  what, err);
    if (!rc)
        rc = prep(s, &w->inv,
                  "INSERT INTO invoices (id, period, app, customer, plan, start_ms, end_ms, exact,"
                  " subtotal, tax, total, records, charge, cost, fee, credits, allowance) VALUES"
                  " (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17)",
                  what, err);
    if (!rc)
        rc = prep(s, &w->line,
                  "INSERT INTO invoice_lines (invoice, n, kind, ref, description, quantity,"
                  " unit_price, exact, amount, credits, records) VALUES"
                  " (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
                  what, err);
    if (!rc)
        rc = prep(s, &w->stmt,
                  "INSERT INTO statement_rows (period, app, customer, invoice, records, charge,"
                  " margin, billed_exact, cost_exact, fee_exact, earnings_exact, billed, cost, fee,"
                  " earnings) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)",
                  what, err);
    if (!rc)
        rc = prep(s, &w->settle,
                  "INSERT INTO settlement_rows (period, provider, offering, records, prompt, cached,"
                  " cache_write, completion, reasoning, cost_exact, cost) VALUES"
                  " (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
                  what, err);
    return rc;
}

static void bind_i64s(sqlite3_stmt *st, int from, const int64_t *v, int n)
{
    for (int i = 0; i < n; i++) sqlite3_bind_int64(st, from + i, v[i]);
}

static int write_invoice(tg_store *s, writers *w, const tg_invoice *inv, tg_errmsg *err)
{
    const char *what = "writing an invoice";
    bind_c(w->inv, 1, inv->id);
    bind_c(w->inv, 2, inv->period);
    bind_c(w->inv, 3, inv->app);
    bind_c(w->inv, 4, inv->customer);
    bind_c(w->inv, 5, inv->plan);
    int64_t v[] = {inv->start_ms, inv->end_ms, inv->exact, inv->subtotal, inv->tax, inv->total,
                   inv->records,  inv->charge, inv->cost,  inv->fee,      inv->credits,
                   inv->allowance};
    bind_i64s(w->inv, 6, v, 12);
    int rc = done(s, w->inv, what, err);
    for (size_t i = 0; !rc && i < inv->nlines; i++) {
        const tg_invoice_line *l = &inv->lines[i];
        bind_c(w->line, 1, inv->id);
        sqlite3_bind_int64(w->line, 2, (int64_t)i + 1);
        bind_c(w->line, 3, tg_line_kind_name(l->kind));
        bind_c(w->line, 4, l->ref);
        bind_c(w->line, 5, l->desc);
        bind_c(w->line, 6, l->qty);
        int64_t lv[] = {l->unit_price, l->exact, l->amount, l->credits, l->records};
        bind_i64s(w->line, 7, lv, 5);
        rc = done(s, w->line, what, err);
    }
    return rc;
}

static int write_docs(tg_store *s, writers *w, const tg_close_docs *d, tg_errmsg *err)
{
    const tg_close_state *c = &d->st;
    bind_c(w->close, 1, c->period);
    bind_c(w->close, 2, c->finalized ? "finalized" : "draft");
    int64_t cv[] = {c->through_seq, c->through_tx, c->late_seq, c->late_tx, c->closed_ms,
                    c->finalized_ms};
    bind_i64s(w->close, 3, cv, 6);
    int rc = done(s, w->close, "writing a close", err);
    for (size_t i = 0; !rc && i < d->ninv; i++) rc = write_invoice(s, w, &d->inv[i], err);
    for (size_t i = 0; !rc && i < d->nstmt; i++) {
        const tg_stmt_row *r = &d->stmt[i];
        bind_c(w->stmt, 1, c->period);
        bind_c(w->stmt, 2, r->app);
        bind_c(w->stmt, 3, r->customer);
        bind_c(w->stmt, 4, r->invoice);
        int64_t v[] = {r->records,    r->charge,         r->margin, r->billed_exact,
                       r->cost_exact, r->fee_exact,      r->earnings_exact,
                       r->billed,     r->cost,           r->fee,    r->earnings};
        bind_i64s(w->stmt, 5, v, 11);
        rc = done(s, w->stmt, "writing a statement", err);
    }
    for (size_t i = 0; !rc && i < d->nsettle; i++) {
        const tg_settle_row *r = &d->settle[i];
        bind_c(w->settle, 1, c->period);
        bind_c(w->settle, 2, r->provider);
        bind_c(w->settle, 3, r->offering);
        int64_t v[] = {r->records,           r->tokens.prompt,    r->tokens.cached,
                       r->tokens.cache_write, r->tokens.completion, r->tokens.reasoning,
                       r->cost_exact,        r->cost};
        bind_i64s(w->settle, 4, v, 8);
        rc = done(s, w->settle, "writing a settlement", err);
    }
    return rc;
}

int tg_store_close_write(tg_store *s, const tg_close_state *seen, size_t nseen,
                         const tg_close_docs *d, tg_errmsg *err)
{
    int rc = tg_sq_exec(s, "BEGIN IMMEDIATE", err);
    if (rc) return rc;
    writers w = {0};
    rc = unchanged(s, seen, nseen, err);
    if (!rc) rc = drop_drafts(s, err);
    if (!rc) rc = writers_prep(s, &w, err);
    if (!rc) rc = write_docs(s, &w, d, err);
    writers_free(&w);
    if (!rc) rc = tg_sq_exec(s, "COMMIT", err);
    if (rc) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ---- reading documents back ---- */

void tg_close_docs_release(tg_close_docs *d)
{
    for (size_t i = 0; i < d->ninv; i++) tg_invoice_release(&d->inv[i]);
    free(d->inv);
    free(d->stmt);
    free(d->settle);
    memset(d, 0, sizeof *d);
}

static int read_invoices(tg_store *s, const char *period, tg_close_docs *d, tg_errmsg *err)
{
    sqlite3_stmt *st, *ls = NULL;
    int rc = prep(s, &st,
                  "SELECT id, app, customer, plan, start_ms, end_ms, exact, subtotal, tax, total,"
                  " records, charge, cost, fee, credits, allowance FROM invoices WHERE period = ?1"
                  " ORDER BY app, customer",
                  "reading invoices", err);
    if (!rc)
        rc = prep(s, &ls,
                  "SELECT kind, ref, description, quantity, unit_price, exact, amount, credits,"
                  " records FROM invoice_lines WHERE invoice = ?1 ORDER BY n",
                  "reading invoice lines", err);
    if (rc) {
        sqlite3_finalize(st);
        return rc;
    }
    bind_c(st, 1, period);
    size_t cap = 0;
    int step;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = tg_array_grow(&d->inv, &cap, d->ninv, sizeof *d->inv))) break;
        tg_invoice *inv = &d->inv[d->ninv++];
        memset(inv, 0, sizeof *inv);
        col_copy(st, 0, inv->id, sizeof inv->id);
        memcpy(inv->period, period, strlen(period) + 1);
        col_copy(st, 1, inv->app, sizeof inv->app);
        col_copy(st, 2, inv->customer, sizeof inv->customer);
        col_copy(st, 3, inv->plan, sizeof inv->plan);
        int64_t *v[] = {&inv->start_ms, &inv->end_ms,  &inv->exact, &inv->subtotal,
                        &inv->tax,      &inv->total,   &inv->records, &inv->charge,
                        &inv->cost,     &inv->fee,     &inv->credits, &inv->allowance};
        for (int i = 0; i < 12; i++) *v[i] = sqlite3_column_int64(st, 4 + i);
        bind_c(ls, 1, inv->id);
        int lstep;
        while (!rc && (lstep = sqlite3_step(ls)) == SQLITE_ROW) {
            if ((rc = tg_array_grow(&inv->lines, &inv->cap, inv->nlines, sizeof *inv->lines))) break;
            tg_invoice_line *l = &inv->lines[inv->nlines++];
            memset(l, 0, sizeof *l);
            if (tg_line_kind_parse(col(ls, 0), &l->kind)) l->kind = TG_LINE_USAGE;
            col_copy(ls, 1, l->ref, sizeof l->ref);
            col_copy(ls, 2, l->desc, sizeof l->desc);
            col_copy(ls, 3, l->qty, sizeof l->qty);
            int64_t *lv[] = {&l->unit_price, &l->exact, &l->amount, &l->credits, &l->records};
            for (int i = 0; i < 5; i++) *lv[i] = sqlite3_column_int64(ls, 4 + i);
        }
        if (!rc && lstep != SQLITE_DONE) rc = tg_sq_fail(s, err, "reading invoice lines");
        sqlite3_reset(ls);
    }
    if (!rc && step != SQLITE_DONE) rc = tg_sq_fail(s, err, "reading invoices");
    sqlite3_finalize(st);
    sqlite3_finalize(ls);
    return rc;
}

static int read_rows(tg_store *s, const char *period, tg_close_docs *d, tg_errmsg *err)
{
    sqlite3_stmt *st;
    int rc = prep(s, &st,
                  "SELECT app, customer, invoice, records, charge, margin, billed_exact, cost_exact,"
                  " fee_exact, earnings_exact, billed, cost, fee, earnings FROM statement_rows"
                  " WHERE period = ?1 ORDER BY app, customer",
                  "reading statements", err);
    if (rc) return rc;
    bind_c(st, 1, period);
    size_t cap = 0;
    int step;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = tg_array_grow(&d->stmt, &cap, d->nstmt, sizeof *d->stmt))) break;
        tg_stmt_row *r = &d->stmt[d->nstmt++];
        memset(r, 0, sizeof *r);
        col_copy(st, 0, r->app, sizeof r->app);
        col_copy(st, 1, r->customer, sizeof r->customer);
        col_copy(st, 2, r->invoice, sizeof r->invoice);
        int64_t *v[] = {&r->records,    &r->charge,   &r->margin,         &r->billed_exact,
                        &r->cost_exact, &r->fee_exact, &r->earnings_exact, &r->billed,
                        &r->cost,       &r->fee,      &r->earnings};
        for (int i = 0; i < 11; i++) *v[i] = sqlite3_column_int64(st, 3 + i);
    }
    if (!rc && step != SQLITE_DONE) rc = tg_sq_fail(s, err, "reading statements");
    sqlite3_finalize(st);
    if (rc) return rc;
    rc = prep(s, &st,
              "SELECT provider, offering, records, prompt, cached, cache_write, completion,"
              " reasoning, cost_exact, cost FROM settlement_rows WHERE period = ?1"
              " ORDER BY provider, offering",
              "reading settlements", err);
    if (rc) return rc;
    bind_c(st, 1, period);
    cap = 0;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = tg_array_grow(&d->settle, &cap, d->nsettle, sizeof *d->settle))) break;
        tg_settle_row *r = &d->settle[d->nsettle++];
        memset(r, 0, sizeof *r);
        col_copy(st, 0, r->provider, sizeof r->provider);
        col_copy(st, 1, r->offering, sizeof r->offering);
        int64_t *v[] = {&r->records,           &r->tokens.prompt,    &r->tokens.cached,
                        &r->tokens.cache_write, &r->tokens.completion, &r->tokens.reasoning,
                        &r->cost_exact,        &r->cost};
        for (int i = 0; i < 8; i++) *v[i] = sqlite3_column_int64(st, 2 + i);
    }
    if (!rc && step != SQLITE_DONE) rc = tg_sq_fail(s, err, "reading settlements");
    sqlite3_finalize(st);
    return rc;
}

int tg_store_close_read(tg_store *s, const char *period, tg_close_docs *d, tg_errmsg *err)
{
    memset(d, 0, sizeof *d);
    sqlite3_stmt *st;
    int rc = tg_sq_exec(s, "BEGIN", err);
    if (rc) return rc;
    rc = prep(s, &st, "SELECT " CLOSE_COLS " FROM closes WHERE period = ?1", "reading closes", err);
    if (!rc) {
        bind_c(st, 1, period);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) read_state(st, &d->st);
        else if (step == SQLITE_DONE) rc = TG_ENOTFOUND;
        else rc = tg_sq_fail(s, err, "reading closes");
        sqlite3_finalize(st);
    }
    if (rc == TG_ENOTFOUND) tg_errmsg_set(err, "period %s has not been closed", period);
    if (!rc) rc = read_invoices(s, period, d, err);
    if (!rc) rc = read_rows(s, period, d, err);
    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc == TG_ENOMEM) tg_errmsg_set(err, "out of memory");
    if (rc) tg_close_docs_release(d);
    return rc;
}

int tg_store_invoice_period(tg_store *s, const char *id, char period[8], tg_errmsg *err)
{
    sqlite3_stmt *st;
    int rc = prep(s, &st, "SELECT period FROM invoices WHERE id = ?1", "reading invoices", err);
    if (rc) return rc;
    bind_c(st, 1, id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) col_copy(st, 0, period, 8);
    else if (step == SQLITE_DONE) rc = TG_ENOTFOUND;
    else rc = tg_sq_fail(s, err, "reading invoices");
    sqlite3_finalize(st);
    if (rc == TG_ENOTFOUND) tg_errmsg_set(err, "no invoice '%s' (`tollgate invoices` lists them)", id);
    return rc;
}
