/* SPDX-License-Identifier: MIT */
/* seeds.h - seed inputs for the fuzzers, made with the real encoders. */
#ifndef RT_FUZZ_SEEDS_H
#define RT_FUZZ_SEEDS_H

#include <stddef.h>
#include <stdint.h>

typedef void (*rt_seed_fn)(void *arg, const char *name, const uint8_t *p, size_t n);

/* Call @fn with every seed for the fuzzer @kind ("segment", "block",
 * "record", "wire", "ring"). @return the number of seeds, or -1 for an unknown kind. */
int rt_fuzz_seeds(const char *kind, rt_seed_fn fn, void *arg);

/* The wire harness plays a server with this key, answering the first HELLO
 * with this CHALLENGE: the seeds' frames carry the tags a sender holding
 * the key would give them, so that mutations start from frames that pass. */
#define RT_FUZZ_WIRE_KEY "a-key-for-the-wire-fuzzer"
static inline void rt_fuzz_wire_challenge(uint8_t nonce[32])
{
	for (int i = 0; i < 32; i++)
		nonce[i] = (uint8_t)(0x5a ^ i);
}

/* The ring the ring harness drives (and its seeds are images of): small,
 * so that mutations reach every part of it. */
#define RT_FUZZ_RING_SIZE (40u << 10)
#define RT_FUZZ_RING_CHUNK 4096u
#define RT_FUZZ_RING_SLOTS 4u

#endif
