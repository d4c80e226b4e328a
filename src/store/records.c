/* Reading usage records back. See records.h. */
#include "store/records.h"
#include "store/sqlite_int.h"

#include <string.h>

static void text(char dst[TG_TAG_MAX + 1], sqlite3_stmt *st, int i)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    tg_record_set(dst, v ? v : "", v ? (size_t)sqlite3_column_bytes(st, i) : 0);
}

/* Column order of the SELECT below. */
static void read_record(sqlite3_stmt *st, tg_usage_rec *r)
{
    memset(r, 0, sizeof *r);
    if (sqlite3_column_bytes(st, 0) == TG_RECORD_ID_LEN)
        memcpy(r->id, sqlite3_column_blob(st, 0), TG_RECORD_ID_LEN);
    char *strs[] = {r->rid, r->key_id, r->tags.app, r->tags.customer, r->tags.plan,
                    r->tags.workspace, r->tags.user, r->tags.feature, r->tags.workflow,
                    r->tags.run, r->tags.unit, r->model, r->offering, r->provider, r->rule};
    int i = 1;
    for (size_t k = 0; k < sizeof strs / sizeof *strs; k++) text(strs[k], st, i++);
    int64_t *ints[] = {&r->tags.unit_count, &r->t_start_ms, &r->latency_us, &r->ttft_us,
                       &r->tokens.prompt,   &r->tokens.cached, &r->tokens.cache_write,
                       &r->tokens.completion, &r->tokens.reasoning, &r->cost, &r->charge,
                       &r->margin, &r->fee};
    for (size_t k = 0; k < sizeof ints / sizeof *ints; k++) *ints[k] = sqlite3_column_int64(st, i++);
    r->status = sqlite3_column_int(st, i++);
    r->endpoint = (uint8_t)sqlite3_column_int(st, i++);
    r->route = (uint8_t)sqlite3_column_int(st, i++);
    r->outcome = (uint8_t)sqlite3_column_int(st, i++);
    r->stream = sqlite3_column_int(st, i++) != 0;
    r->estimated = sqlite3_column_int(st, i++) != 0;
}

static const char *or_empty(const char *s) { return s ? s : ""; }

int tg_store_each_record(tg_store *s, int64_t from_ms, int64_t to_ms, const tg_record_filter *f,
                         size_t limit, int (*fn)(void *ud, const tg_usage_rec *r), void *ud,
                         tg_errmsg *err)
{
    static const char sql[] =
        "SELECT id, rid, key_id, app, customer, plan, workspace, user_id, feature, workflow, run,"
        " unit, model, offering, provider, rule, unit_count, t_start_ms, latency_us, ttft_us,"
        " prompt, cached, cache_write, completion, reasoning, cost, charge, margin, fee,"
        " status, endpoint, route, outcome, stream, estimated"
        " FROM usage WHERE id >= ?1 AND id < ?2 AND (?3 = '' OR app = ?3)"
        " AND (?4 = '' OR customer = ?4) AND (?5 = '' OR rid = ?5) ORDER BY id LIMIT ?6";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return tg_sq_fail(s, err, "reading usage records");
    uint8_t lo[TG_RECORD_ID_LEN], hi[TG_RECORD_ID_LEN];
    tg_sq_id_at(from_ms, lo);
    tg_sq_id_at(to_ms, hi);
    sqlite3_bind_blob(st, 1, lo, TG_RECORD_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, hi, TG_RECORD_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, or_empty(f ? f->app : NULL), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, or_empty(f ? f->customer : NULL), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, or_empty(f ? f->rid : NULL), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, limit ? (int64_t)limit : -1);
    int rc, out = TG_OK;
    tg_usage_rec r;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_record(st, &r);
        if ((out = fn(ud, &r))) break;
    }
    if (!out && rc != SQLITE_DONE) out = tg_sq_fail(s, err, "reading usage records");
    sqlite3_finalize(st);
    return out;
}
