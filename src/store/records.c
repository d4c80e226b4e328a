/* Reading usage records back. See records.h. */
#include "store/records.h"
#include "store/sqlite_int.h"

#include <string.h>

/* "" or NULL matches everything. */
static bool match(const char *want, const char *have)
{
    return !want || !want[0] || !strcmp(want, have);
}

typedef struct {
    const tg_record_filter *f;
    size_t limit, seen;
    int (*fn)(void *ud, const tg_usage_rec *r);
    void *ud;
} each_ctx;

/* Ends the walk at the limit: positive, so never one of our error codes,
 * and unlike any code a caller's fn is likely to stop with. */
#define AT_LIMIT 0x4c494d

static int each_one(void *ud, const tg_usage_rec *r)
{
    each_ctx *c = ud;
    const tg_record_filter *f = c->f;
    if (f && !(match(f->app, r->tags.app) && match(f->customer, r->tags.customer) &&
               match(f->rid, r->rid)))
        return TG_OK;
    int rc = c->fn(c->ud, r);
    if (!rc && c->limit && ++c->seen == c->limit) return AT_LIMIT;
    return rc;
}

int tg_store_each_record(tg_store *s, int64_t from_ms, int64_t to_ms, const tg_record_filter *f,
                         size_t limit, int (*fn)(void *ud, const tg_usage_rec *r), void *ud,
                         tg_errmsg *err)
{
    each_ctx c = {f, limit, 0, fn, ud};
    int rc = tg_sq_each_usage(s, from_ms, to_ms, each_one, &c, err);
    return rc == AT_LIMIT ? TG_OK : rc;
}
