/* SHA-256 through OpenSSL's EVP interface, HMAC through its one-shot
 * HMAC(); constant-time compare; FNV-1a. */
#include "base/hash.h"
#include "base/err.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

void tg_sha256(tg_str data, uint8_t out[TG_SHA256_LEN])
{
    unsigned int len = TG_SHA256_LEN;
    EVP_Digest(data.p, data.n, out, &len, EVP_sha256(), NULL);
}

static void hex32(const uint8_t d[TG_SHA256_LEN], char out[TG_SHA256_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < TG_SHA256_LEN; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[TG_SHA256_HEX_LEN] = '\0';
}

void tg_sha256_hex(tg_str data, char out[TG_SHA256_HEX_LEN + 1])
{
    uint8_t d[TG_SHA256_LEN];
    tg_sha256(data, d);
    hex32(d, out);
}

void tg_hmac_sha256_hex(tg_str key, tg_str data, char out[TG_SHA256_HEX_LEN + 1])
{
    uint8_t d[TG_SHA256_LEN];
    unsigned int len = TG_SHA256_LEN;
    HMAC(EVP_sha256(), key.p ? key.p : "", (int)key.n, (const unsigned char *)(data.p ? data.p : ""),
         data.n, d, &len);
    hex32(d, out);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int tg_hex_decode32(tg_str hex, uint8_t out[TG_SHA256_LEN])
{
    if (hex.n != TG_SHA256_HEX_LEN) return TG_EINVAL;
    for (int i = 0; i < TG_SHA256_LEN; i++) {
        int hi = hexval(hex.p[2 * i]), lo = hexval(hex.p[2 * i + 1]);
        if (hi < 0 || lo < 0) return TG_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return TG_OK;
}

bool tg_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    volatile uint8_t diff = 0;
    for (size_t i = 0; i < n; i++) diff |= a[i] ^ b[i];
    return diff == 0;
}

uint64_t tg_hash64(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}
