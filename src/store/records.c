/* Reading usage records back. See records.h. */
#include "store/records.h"
#include "store/sqlite_int.h"

#include <string.h>

/* "" or NULL matches everything. */
static bool match(const char *want, const char *have)
{
    return !want || !want[0] || !strcmp(want, have);
}

int tg_store_each_record(tg_store *s, int64_t from_ms, int64_t to_ms, const tg_record_filter *f,
                         size_t limit, int (*fn)(void *ud, const tg_usage_rec *r), void *ud,
                         tg_errmsg *err)
{
    static const char sql[] = "SELECT id, rec FROM usage WHERE id >= ?1 AND id < ?2";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return tg_sq_fail(s, err, "reading usage records");
    uint8_t lo[TG_RECORD_ID_LEN], hi[TG_RECORD_ID_LEN];
    tg_sq_id_at(from_ms, lo);
    tg_sq_id_at(to_ms, hi);
    sqlite3_bind_blob(st, 1, lo, TG_RECORD_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, hi, TG_RECORD_ID_LEN, SQLITE_STATIC);
    int rc, out = TG_OK;
    size_t seen = 0;
    tg_usage_rec r;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && (!limit || seen < limit)) {
        if ((out = tg_sq_read_rec(s, st, &r, err))) break;
        if (f && !(match(f->app, r.tags.app) && match(f->customer, r.tags.customer) &&
                   match(f->rid, r.rid)))
            continue;
        seen++;
        if ((out = fn(ud, &r))) break;
    }
    if (!out && rc != SQLITE_DONE && rc != SQLITE_ROW)
        out = tg_sq_fail(s, err, "reading usage records");
    sqlite3_finalize(st);
    return out;
}
