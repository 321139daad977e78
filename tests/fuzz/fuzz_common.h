/* Shared by the libFuzzer targets: a failed invariant aborts with a message, so
 * libFuzzer records the input as a crash; a tiny PRNG turns a seed taken from the
 * input into split points, so the same input always replays the same way. */
#ifndef RG_FUZZ_COMMON_H
#define RG_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* xorshift64*: deterministic, seeded from the input. */
struct rng {
    uint64_t s;
};

static inline void rng_seed(struct rng *r, uint64_t seed)
{
    r->s = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (!r->s) r->s = 1;
}

static inline uint64_t rng_next(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Dull;
}

/* A chunk length in [1, max]: mostly small (the splits that find bugs), sometimes
 * everything that is left. */
static inline size_t rng_chunk(struct rng *r, size_t max)
{
    if (max <= 1) return max;
    uint64_t x = rng_next(r);
    size_t n;
    switch (x & 3) {
    case 0:
        n = 1;
        break;
    case 1:
        n = 1 + (size_t)((x >> 8) % 8);
        break;
    case 2:
        n = 1 + (size_t)((x >> 8) % 64);
        break;
    default:
        n = max;
        break;
    }
    return n < max ? n : max;
}

#endif
