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
    bool at_limit; /* the walk was stopped here, not by fn or an error */
    int (*fn)(void *ud, const tg_usage_rec *r);
    void *ud;
} each_ctx;

static int each_one(void *ud, const tg_usage_rec *r)
{
    each_ctx *c = ud;
    const tg_record_filter *f = c->f;
    if (f && !(match(f->app, r->tags.app) && match(f->customer, r->tags.customer) &&
               match(f->rid, r->rid) && match(f->run, r->tags.run)))
        return TG_OK;
    int rc = c->fn(c->ud, r);
    if (rc || !c->limit || ++c->seen < c->limit) return rc;
    c->at_limit = true;
    return 1; /* stops tg_sq_each_usage */
}

int tg_store_each_record(tg_store *s, int64_t from_ms, int64_t to_ms, const tg_record_filter *f,
                         size_t limit, int (*fn)(void *ud, const tg_usage_rec *r), void *ud,
                         tg_errmsg *err)
{
    each_ctx c = {.f = f, .limit = limit, .fn = fn, .ud = ud};
    int rc = tg_sq_each_usage(s, from_ms, to_ms, each_one, &c, err);
    return c.at_limit ? TG_OK : rc;
}
