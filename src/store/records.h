/* Usage records one by one, straight from the usage table (not rollups):
 * for `tollgate usage`, audits and reconciliation. Part of the store's
 * interface (store.h); kept apart because nothing on the request path
 * reads records back. */
#ifndef TG_STORE_RECORDS_H
#define TG_STORE_RECORDS_H

#include "store/store.h"

/* NULL or "" matches everything. */
typedef struct {
    const char *app;
    const char *customer;
    const char *rid;
    const char *run;      /* X-Tollgate-Run: a run's steps */
} tg_record_filter;

/* Calls fn for every record whose start (its id's time) is in
 * [from_ms, to_ms) and that passes f, at most limit (0: no limit), in
 * the order they were stored: about oldest first, but records of a
 * request that ran long come when it ended. fn returning nonzero stops with that code; TG_EIO on a
 * database error. */
int tg_store_each_record(tg_store *s, int64_t from_ms, int64_t to_ms, const tg_record_filter *f,
                         size_t limit, int (*fn)(void *ud, const tg_usage_rec *r), void *ud,
                         tg_errmsg *err);

#endif
