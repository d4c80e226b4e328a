/* Plans made through the admin API in the store. See store/plans.h.
 *
 * These are rare writes and reads (an admin call, a start, a reload), so
 * each statement is prepared for its call and finalized after it, and
 * no handle keeps one. */
#include "store/plans.h"

#include "store/sqlite_int.h"

#include <stdlib.h>
#include <string.h>

/* Runs sql (prepared here) with text bound to its first parameters and
 * *ms (when given) to the next; *changes (when given) gets what it
 * changed. */
static int run(tg_store *s, const char *sql, const tg_str *text, int ntext, const int64_t *ms,
               int *changes, const char *what, tg_errmsg *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) return tg_sq_fail(s, err, what);
    for (int i = 0; i < ntext; i++)
        sqlite3_bind_text(st, i + 1, text[i].p ? text[i].p : "", (int)text[i].n, SQLITE_STATIC);
    if (ms) sqlite3_bind_int64(st, ntext + 1, *ms);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_DONE) return tg_sq_fail(s, err, what);
    if (changes) *changes = sqlite3_changes(s->db);
    return TG_OK;
}

int tg_store_plan_put(tg_store *s, tg_str id, tg_str body, int64_t now_ms, tg_errmsg *err)
{
    tg_str t[] = {id, body};
    return run(s,
               "INSERT INTO plans (id, body, updated_ms) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO"
               " UPDATE SET body = excluded.body, updated_ms = excluded.updated_ms",
               t, 2, &now_ms, NULL, "storing a plan", err);
}

int tg_store_plan_delete(tg_store *s, tg_str id, bool *deleted, tg_errmsg *err)
{
    int changes = 0;
    int rc =
        run(s, "DELETE FROM plans WHERE id = ?1", &id, 1, NULL, &changes, "deleting a plan", err);
    *deleted = !rc && changes > 0;
    return rc;
}

int tg_store_customer_plan(tg_store *s, tg_str app, tg_str customer, tg_str plan, int64_t now_ms,
                           tg_errmsg *err)
{
    tg_str t[] = {app, customer, plan};
    const char *what = "setting a customer's plan";
    int rc = tg_sq_exec(s, "BEGIN IMMEDIATE", err);
    if (rc) return rc;
    /* the plan history (store/close.h) starts with the plan the customer
     * had since the store first saw it, when this is its first change */
    rc = run(s,
             "INSERT INTO plan_changes (app, customer, t_ms, plan) SELECT app, id, first_seen_ms,"
             " plan FROM customers WHERE app = ?1 AND id = ?2 AND NOT EXISTS (SELECT 1 FROM"
             " plan_changes WHERE app = ?1 AND customer = ?2)",
             t, 2, NULL, NULL, what, err);
    if (!rc)
        rc = run(s,
                 "INSERT INTO customers (app, id, plan, first_seen_ms) VALUES (?1, ?2, ?3, ?4)"
                 " ON CONFLICT (app, id) DO UPDATE SET plan = excluded.plan",
                 t, 3, &now_ms, NULL, what, err);
    if (!rc)
        rc = run(s, "INSERT OR REPLACE INTO plan_changes (app, customer, plan, t_ms) VALUES (?1, ?2, ?3, ?4)",
                 t, 3, &now_ms, NULL, what, err);
    if (!rc) rc = tg_sq_exec(s, "COMMIT", err);
    if (rc) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

void tg_store_plans_free(tg_store_plan *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].id);
        free(p[i].body);
    }
    free(p);
}

/* ORDER BY id is BINARY: memcmp, then length, as tg_str_cmp. */
int tg_store_plans(tg_store *s, tg_store_plan **out, size_t *n, tg_errmsg *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT id, body, updated_ms FROM plans ORDER BY id", -1, &st,
                           NULL) != SQLITE_OK)
        return tg_sq_fail(s, err, "reading plans");
    tg_store_plan *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc = TG_OK, step;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            tg_store_plan *g = realloc(arr, ncap * sizeof *g);
            if (!g) {
                rc = TG_ENOMEM;
                break;
            }
            arr = g;
            cap = ncap;
        }
        tg_store_plan *p = &arr[cnt];
        p->id = tg_str_dup(tg_str_make((const char *)sqlite3_column_text(st, 0),
                                       (size_t)sqlite3_column_bytes(st, 0)));
        p->body = tg_str_dup(tg_str_make((const char *)sqlite3_column_text(st, 1),
                                         (size_t)sqlite3_column_bytes(st, 1)));
        p->updated_ms = sqlite3_column_int64(st, 2);
        cnt++;
        if (!p->id || !p->body) rc = TG_ENOMEM;
    }
    if (!rc && step != SQLITE_DONE) rc = tg_sq_fail(s, err, "reading plans");
    sqlite3_finalize(st);
    if (rc == TG_ENOMEM) tg_errmsg_set(err, "reading plans: out of memory");
    if (rc) {
        tg_store_plans_free(arr, cnt);
        return rc;
    }
    *out = arr;
    *n = cnt;
    return TG_OK;
}

int tg_store_config_plans(tg_store *s, tg_config *cfg, tg_errmsg *err)
{
    tg_store_plan *p;
    size_t n;
    int rc = tg_store_plans(s, &p, &n, err);
    if (rc || !n) return rc;
    tg_plan_def *defs = malloc(n * sizeof *defs);
    if (!defs) {
        tg_store_plans_free(p, n);
        tg_errmsg_set(err, "reading plans: out of memory");
        return TG_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        defs[i] = (tg_plan_def){tg_str_c(p[i].id), tg_str_c(p[i].body)};
    rc = tg_config_add_plans(cfg, defs, n, err);
    free(defs);
    tg_store_plans_free(p, n);
    return rc;
}
