/* A small deterministic PRNG (splitmix64): the simulated provider derives
 * every answer from its seed and the request, so runs are reproducible. */
#ifndef TG_BASE_RNG_H
#define TG_BASE_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s;
} tg_rng;

static inline uint64_t tg_rng_next(tg_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) for n > 0 (the bias is negligible for small n). */
static inline uint64_t tg_rng_below(tg_rng *r, uint64_t n) { return tg_rng_next(r) % n; }

#endif
