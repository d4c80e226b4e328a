/* Key extraction and constant-time lookup; see auth.h.
 *
 * Every configured hash is compared, whether or not an earlier one
 * matched, so the time taken does not depend on which key (if any)
 * matched. Configurations hold tens of keys; when they hold thousands
 * (customer keys from the store, issue 3) this becomes a lookup by hash,
 * which leaks nothing either since the hash is not secret-dependent in a
 * usable way. */
#include "gate/auth.h"
#include "base/hash.h"

/* The key presented, or a NULL p when there is none; never logged. */
static tg_str presented_key(const tg_req *r)
{
    tg_str v = tg_req_header(r, TG_STR("authorization"));
    if (v.p) {
        v = tg_str_trim(v);
        if (v.n > 7 && tg_str_ieq(tg_str_make(v.p, 7), TG_STR("bearer "))) {
            tg_str k = tg_str_trim(tg_str_make(v.p + 7, v.n - 7));
            return k.n ? k : TG_STR_NULL;
        }
        return TG_STR_NULL;
    }
    v = tg_req_header(r, TG_STR("x-api-key")); /* Anthropic's SDKs */
    if (!v.p) v = tg_req_header(r, TG_STR("api-key"));
    if (v.p) v = tg_str_trim(v);
    return v.p && v.n ? v : TG_STR_NULL;
}

tg_auth_result tg_auth_check(const tg_config *cfg, const tg_req *r, const tg_key **key)
{
    tg_str presented = presented_key(r);
    if (!presented.p) return TG_AUTH_MISSING;
    uint8_t h[TG_SHA256_LEN];
    tg_sha256(presented, h);
    const tg_key *found = NULL;
    for (size_t i = 0; i < cfg->nkeys; i++)
        if (tg_ct_equal(h, cfg->keys[i].hash, TG_SHA256_LEN)) found = &cfg->keys[i];
    if (!found) return TG_AUTH_INVALID;
    *key = found;
    return TG_AUTH_OK;
}
