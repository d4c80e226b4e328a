/* Authentication: the first gate of the pipeline.
 *
 * A client presents its key as "Authorization: Bearer <key>", as
 * "x-api-key: <key>" (Anthropic's SDKs) or as "api-key: <key>"
 * (Azure-style clients); the key is hashed with SHA-256 and looked up
 * among the configured hashes with a constant-time compare, so neither
 * timing nor logs reveal a key. Later gates (tags, policy) take
 * the tg_key this returns. */
#ifndef TG_GATE_AUTH_H
#define TG_GATE_AUTH_H

#include "conf/config.h"
#include "http/server.h"

typedef enum {
    TG_AUTH_OK = 0,
    TG_AUTH_MISSING, /* no key presented */
    TG_AUTH_INVALID, /* a key no configuration knows */
} tg_auth_result;

/* Sets *key on TG_AUTH_OK. */
tg_auth_result tg_auth_check(const tg_config *cfg, const tg_req *r, const tg_key **key);

#endif
