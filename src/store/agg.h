/* A batch's rollup deltas, summed in memory (internal to src/store).
 *
 * tg_store_put adds each newly inserted record to one tg_agg per rollup
 * and then upserts each distinct key once, so a batch of 8192 records
 * touching the same day of the same customer costs one row update, not
 * 8192. Keys are not copied: an entry points at the first record that
 * produced it, and the records must outlive the tg_agg's current batch. */
#ifndef TG_STORE_AGG_H
#define TG_STORE_AGG_H

#include "store/store.h"

#include <stdbool.h>

/* What an aggregate is keyed by (besides the bucket). */
typedef enum {
    TG_AGG_DIMS = 0, /* app, customer, workspace, feature, workflow, model, offering,
                        provider, route */
    TG_AGG_USER,     /* app, customer, user */
} tg_agg_kind;

typedef struct {
    const tg_usage_rec *r; /* holds the key's strings */
    int64_t bucket;
    uint64_t hash;
    tg_measures m;
} tg_agg_ent;

typedef struct {
    tg_agg_kind kind;
    tg_agg_ent *ents;   /* in order of first appearance */
    size_t n, cap;
    uint32_t *slots;    /* open addressing: index + 1 into ents, 0 empty */
    size_t nslots;      /* a power of two, at least 2 * cap */
} tg_agg;

void tg_agg_init(tg_agg *a, tg_agg_kind kind);
void tg_agg_release(tg_agg *a);
/* Empties a and makes room for n entries. TG_ENOMEM. */
int tg_agg_reset(tg_agg *a, size_t n);
/* Adds r's measures under (bucket, r's key). key_hash is tg_agg_key_hash
 * for a's kind. Never grows past the n given to reset (one entry per
 * record at most). TG_EINVAL when a sum overflows. */
int tg_agg_add(tg_agg *a, const tg_usage_rec *r, int64_t bucket, uint64_t key_hash);
/* The hash of r's key without the bucket, for a's kind. */
uint64_t tg_agg_key_hash(const tg_usage_rec *r, tg_agg_kind kind);

/* One record's own measures (an attempt record's count no request: see
 * tg_measures in store.h). */
void tg_measures_of(const tg_usage_rec *r, tg_measures *m);

/* UTC bucket starts of t (unix ms, may be negative). */
int64_t tg_bucket_day(int64_t t_ms);
int64_t tg_bucket_month(int64_t t_ms);

#endif
