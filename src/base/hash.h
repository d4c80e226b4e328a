/* Hashing: SHA-256 for API keys, HMAC-SHA256 for webhook signatures, and
 * a fast non-cryptographic hash for tables and deterministic simulation. */
#ifndef TG_BASE_HASH_H
#define TG_BASE_HASH_H

#include "base/str.h"

#include <stdbool.h>
#include <stdint.h>

#define TG_SHA256_LEN 32
#define TG_SHA256_HEX_LEN 64

void tg_sha256(tg_str data, uint8_t out[TG_SHA256_LEN]);
/* Lower-case hex, NUL-terminated (out has 65 bytes). */
void tg_sha256_hex(tg_str data, char out[TG_SHA256_HEX_LEN + 1]);
/* HMAC-SHA256 of data with key, as lower-case hex (out has 65 bytes). */
void tg_hmac_sha256_hex(tg_str key, tg_str data, char out[TG_SHA256_HEX_LEN + 1]);
/* Parses 64 hex digits (either case); TG_EINVAL otherwise. */
int tg_hex_decode32(tg_str hex, uint8_t out[TG_SHA256_LEN]);
/* Compares n bytes in time independent of where they differ. */
bool tg_ct_equal(const uint8_t *a, const uint8_t *b, size_t n);
/* FNV-1a 64: tables and seeds, never security. */
uint64_t tg_hash64(const void *p, size_t n, uint64_t seed);

#endif
