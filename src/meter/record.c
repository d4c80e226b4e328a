/* The usage record's names and invariants. See record.h. */
#include "meter/record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const route_names[TG_RT_COUNT_] = {"primary", "fallback", "cache",
                                                      "batch",   "degraded", "escalated"};
static const char *const outcome_names[TG_OUT_COUNT_] = {"completed", "partial", "failed",
                                                         "interrupted"};
static const char *const ep_names[TG_EPK_COUNT_] = {"chat", "completions", "embeddings", "messages"};

const char *tg_route_kind_name(tg_route_kind k) { return (unsigned)k < TG_RT_COUNT_ ? route_names[k] : "?"; }
const char *tg_outcome_name(tg_outcome o) { return (unsigned)o < TG_OUT_COUNT_ ? outcome_names[o] : "?"; }
const char *tg_ep_kind_name(tg_ep_kind e) { return (unsigned)e < TG_EPK_COUNT_ ? ep_names[e] : "?"; }

static void fail(const tg_usage_rec *r, const char *what)
{
    char id[2 * TG_RECORD_ID_LEN + 1];
    tg_record_id_hex(r->id, id);
    fprintf(stderr, "tollgate: usage record %s (request %s) breaks an invariant: %s\n", id, r->rid, what);
    abort();
}

void tg_record_check(const tg_usage_rec *r)
{
    const tg_tokens *t = &r->tokens;
    if (t->prompt < 0 || t->cached < 0 || t->cache_write < 0 || t->completion < 0 || t->reasoning < 0)
        fail(r, "negative token count");
    if (t->cached > t->prompt || t->cache_write > t->prompt - t->cached)
        fail(r, "cached + cache_write > prompt");
    if (t->reasoning > t->completion) fail(r, "reasoning > completion");
    if (r->credits < 0) fail(r, "negative credits");
    if (r->attempts < 0) fail(r, "negative attempts");
    if (r->asked_cost < 0) fail(r, "negative asked_cost");
    /* computed in 128 bits: the invariant must not hold by wrap-around */
    __int128 sum = (__int128)r->cost + r->margin + r->fee;
    if (sum != r->charge) fail(r, "charge != cost + margin + fee");
    if (r->route >= TG_RT_COUNT_ || r->outcome >= TG_OUT_COUNT_ || r->endpoint >= TG_EPK_COUNT_)
        fail(r, "enum out of range");
}

void tg_record_set(char dst[TG_TAG_MAX + 1], const char *p, size_t n)
{
    if (n > TG_TAG_MAX) n = TG_TAG_MAX;
    if (n) memcpy(dst, p, n);
    dst[n] = '\0';
}

void tg_record_id_hex(const uint8_t id[TG_RECORD_ID_LEN], char out[2 * TG_RECORD_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < TG_RECORD_ID_LEN; i++) {
        out[2 * i] = hex[id[i] >> 4];
        out[2 * i + 1] = hex[id[i] & 15];
    }
    out[2 * TG_RECORD_ID_LEN] = '\0';
}
