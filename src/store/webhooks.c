/* Threshold webhook events in the store. See store/webhooks.h.
 *
 * Creation at most once rests on the table's UNIQUE (app, customer,
 * period, threshold) alone: an INSERT ... ON CONFLICT DO NOTHING under
 * SQLite's write lock, so two handles (or two processes) adding the same
 * event race safely, and sqlite3_changes says which one made it. Every
 * statement is prepared once per handle; the columns are read in one
 * order (COLS) by one function. */
#include "store/webhooks.h"

#include "store/sqlite_int.h"

#include <string.h>

static const char *const status_names[] = {"pending", "delivered", "failed"};

const char *tg_webhook_status_name(tg_webhook_status s)
{
    return (unsigned)s < 3 ? status_names[s] : "unknown";
}

int tg_webhook_status_parse(tg_str s, tg_webhook_status *out)
{
    for (int i = 0; i < 3; i++)
        if (tg_str_eq(s, tg_str_c(status_names[i]))) {
            *out = (tg_webhook_status)i;
            return TG_OK;
        }
    return TG_EINVAL;
}

#define COLS                                                                                      \
    "id, app, customer, period, threshold, payload, status, attempts, created_ms, next_ms,"       \
    " delivered_ms, last_error"

static const char *col_text(sqlite3_stmt *st, int i)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    return v ? v : "";
}

/* The event in st's row, read in COLS order. */
static void read_row(sqlite3_stmt *st, tg_store_webhook *e)
{
    tg_webhook_status status = TG_WEBHOOK_PENDING;
    tg_webhook_status_parse(tg_str_c(col_text(st, 6)), &status); /* the table's CHECK holds it */
    *e = (tg_store_webhook){
        .id = col_text(st, 0),
        .app = col_text(st, 1),
        .customer = col_text(st, 2),
        .period = col_text(st, 3),
        .threshold = (uint32_t)sqlite3_column_int64(st, 4),
        .status = status,
        .attempts = (uint32_t)sqlite3_column_int64(st, 7),
        .created_ms = sqlite3_column_int64(st, 8),
        .next_ms = sqlite3_column_int64(st, 9),
        .delivered_ms = sqlite3_column_int64(st, 10),
        .last_error = col_text(st, 11),
    };
    const void *p = sqlite3_column_text(st, 5);
    e->payload = tg_str_make(p ? p : "", (size_t)sqlite3_column_bytes(st, 5));
}

/* Steps st (bound) through its rows, handing each to fn; resets st. */
static int each_row(tg_store *s, sqlite3_stmt *st, int (*fn)(void *ud, const tg_store_webhook *e),
                    void *ud, const char *what, tg_errmsg *err)
{
    int rc = TG_OK, step;
    tg_store_webhook e;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        read_row(st, &e);
        rc = fn(ud, &e);
    }
    if (!rc && step != SQLITE_DONE) rc = tg_sq_fail(s, err, what);
    sqlite3_reset(st);
    return rc;
}

int tg_store_webhook_add(tg_store *s, const tg_store_webhook *e, bool *added, tg_errmsg *err)
{
    *added = false;
    int rc = tg_sq_prepare(s, &s->h_add,
                           "INSERT INTO webhook_events (" COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
                           " 'pending', 0, ?7, ?7, 0, '') ON CONFLICT DO NOTHING",
                           err);
    if (rc) return rc;
    sqlite3_stmt *st = s->h_add;
    sqlite3_bind_text(st, 1, e->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, e->app, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, e->customer, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, e->period, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, e->threshold);
    sqlite3_bind_text(st, 6, e->payload.p, (int)e->payload.n, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, e->created_ms);
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (step != SQLITE_DONE) return tg_sq_fail(s, err, "adding a webhook event");
    *added = sqlite3_changes(s->db) > 0;
    return TG_OK;
}

int tg_store_webhooks_due(tg_store *s, int64_t now_ms, size_t limit,
                          int (*fn)(void *ud, const tg_store_webhook *e), void *ud, tg_errmsg *err)
{
    int rc = tg_sq_prepare(s, &s->h_due,
                           "SELECT " COLS " FROM webhook_events WHERE status = 'pending' AND"
                           " next_ms <= ?1 ORDER BY seq LIMIT ?2",
                           err);
    if (rc) return rc;
    sqlite3_bind_int64(s->h_due, 1, now_ms);
    sqlite3_bind_int64(s->h_due, 2, (int64_t)limit);
    return each_row(s, s->h_due, fn, ud, "reading due webhook events", err);
}

int tg_store_webhook_next(tg_store *s, int64_t *next_ms, tg_errmsg *err)
{
    int rc = tg_sq_prepare(s, &s->h_next,
                           "SELECT coalesce(min(next_ms), 0) FROM webhook_events WHERE"
                           " status = 'pending'",
                           err);
    if (rc) return rc;
    int step = sqlite3_step(s->h_next);
    *next_ms = step == SQLITE_ROW ? sqlite3_column_int64(s->h_next, 0) : 0;
    sqlite3_reset(s->h_next);
    return step == SQLITE_ROW ? TG_OK : tg_sq_fail(s, err, "reading the next webhook attempt");
}

int tg_store_webhook_attempt(tg_store *s, tg_str id, const tg_store_webhook_try *t, tg_errmsg *err)
{
    int rc = tg_sq_prepare(s, &s->h_try,
                           "UPDATE webhook_events SET attempts = attempts + 1, status = ?2,"
                           " next_ms = CASE WHEN ?2 = 'pending' THEN ?3 ELSE next_ms END,"
                           " last_error = CASE WHEN ?2 = 'delivered' THEN last_error ELSE ?4 END,"
                           " delivered_ms = CASE WHEN ?2 = 'delivered' THEN ?5 ELSE 0 END"
                           " WHERE id = ?1 AND status = 'pending'",
                           err);
    if (rc) return rc;
    sqlite3_stmt *st = s->h_try;
    sqlite3_bind_text(st, 1, id.p ? id.p : "", (int)id.n, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, tg_webhook_status_name(t->status), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, t->next_ms);
    sqlite3_bind_text(st, 4, t->error ? t->error : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, t->at_ms);
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (step != SQLITE_DONE) return tg_sq_fail(s, err, "recording a webhook attempt");
    if (sqlite3_changes(s->db) > 0) return TG_OK;
    tg_errmsg_set(err, "%s: no pending webhook event %.*s", s->path, TG_STR_FMT(id));
    return TG_ENOTFOUND;
}

int tg_store_webhooks_list(tg_store *s, const tg_webhook_filter *f, size_t limit,
                           int (*fn)(void *ud, const tg_store_webhook *e), void *ud, tg_errmsg *err)
{
    int rc = tg_sq_prepare(s, &s->h_list,
                           "SELECT " COLS " FROM webhook_events WHERE (?1 = '' OR app = ?1) AND"
                           " (?2 = '' OR customer = ?2) AND (?3 = '' OR status = ?3)"
                           " ORDER BY seq DESC LIMIT ?4",
                           err);
    if (rc) return rc;
    sqlite3_stmt *st = s->h_list;
    sqlite3_bind_text(st, 1, f->app ? f->app : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, f->customer ? f->customer : "", -1, SQLITE_STATIC);
    const char *status = f->status < 0 ? "" : tg_webhook_status_name((tg_webhook_status)f->status);
    sqlite3_bind_text(st, 3, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (int64_t)limit);
    return each_row(s, st, fn, ud, "listing webhook events", err);
}
