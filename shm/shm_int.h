/* SPDX-License-Identifier: MIT */
/* shm_int.h - internals shared by ring.c and consumer.c. */
#ifndef RT_SHM_INT_H
#define RT_SHM_INT_H

#include <stdint.h>

#include "rtshm.h"

__extension__ typedef unsigned __int128 rt__u128;

/* Bytes of the header that never change after creation (magic .. mono_ref). */
#define RT__HDR_IMMUTABLE 128u

/* An open ring. The geometry is this process's copy, taken once at open
 * and checked there: nothing read from the shared file later can change
 * where we read or how far. */
struct rt_ring {
	int fd;
	char *base;
	uint64_t size;
	struct rt__ring_hdr *hdr;
	struct rt__slot *slots;
	uint32_t *owners;
	char *chunks;
	uint32_t chunk_size;
	uint32_t nchunks;
	uint32_t nslots;
	uint32_t lost;         /* set by the SIGBUS guard: the file was cut short */
	/* The immutable part of the header as it was at open. */
	unsigned char hdr0[RT__HDR_IMMUTABLE];
};

struct rt__layout {
	uint64_t size;
	uint64_t slots_off;
	uint64_t owners_off;
	uint64_t chunks_off;
	uint32_t nchunks;
};

/* Compute the layout of a ring of at most @size bytes. 0 or -EINVAL. */
int rt__ring_layout(uint64_t size, uint32_t chunk_size, uint32_t nslots, struct rt__layout *l);

/* Check the ring against our copy: -EFAULT if the file was cut short (the
 * mapping is zero pages now, or will fault), 1 if the immutable header had
 * been changed (it is put back), else 0. */
int rt__ring_check(struct rt_ring *r);

/* 1 if a consumer holds the ring (its flock is taken), else 0. */
int rt__consumer_alive(struct rt__ring_hdr *h, int fd);

/* The sum of a slot's drop counters. */
uint64_t rt__slot_drops(const struct rt__slot *s);

/* Chunk @idx (< r->nchunks: callers check) by our own geometry. */
static inline struct rt__chunk *rt__chunk_at(struct rt_ring *r, uint32_t idx)
{
	return (struct rt__chunk *)(r->chunks + (uint64_t)idx * r->chunk_size);
}

#endif /* RT_SHM_INT_H */
