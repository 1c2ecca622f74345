/* SPDX-License-Identifier: MIT */
/* seg_int.h - what block.c and segment.c share about frames. */
#ifndef RT_SEG_INT_H
#define RT_SEG_INT_H

#include <stdint.h>
#include <string.h>

#include "rtseg.h"

#define SEG_HEADER_FIXED 64u
#define SEG_INDEX_FIXED 88u
#define SEG_FOOTER_FIXED 48u
#define SEG_CURSOR_BYTES 40u
#define SEG_TRAILER 12u /* u64 footer offset, u32 RT_SEG_TRAILER_MAGIC */

/*
 * Start a skippable frame of @total bytes (header included) at @w; returns
 * where the kind's fixed part goes. The checksum is filled in by
 * seg_frame_end() once the frame is complete.
 */
static inline uint8_t *seg_frame_begin(uint8_t *w, size_t total, int kind, uint16_t fixlen)
{
	uint32_t u32 = RT_SEG_SKIP_MAGIC;

	memcpy(w, &u32, 4);
	u32 = (uint32_t)(total - 8);
	memcpy(w + 4, &u32, 4);
	u32 = RT_SEG_MAGIC;
	memcpy(w + 8, &u32, 4);
	w[12] = (uint8_t)kind;
	w[13] = RT_SEG_VERSION;
	memcpy(w + 14, &fixlen, 2);
	memset(w + 16, 0, 8);
	return w + RT_SEG_FRAME_HDR;
}

/* The checksum of a frame: XXH3-64 of bytes 24..end, seeded with bytes
 * 8..15 (magic, kind, version, fixlen). */
uint64_t seg_frame_sum(const uint8_t *frame, size_t total);

static inline void seg_frame_end(uint8_t *frame, size_t total)
{
	uint64_t sum = seg_frame_sum(frame, total);
	memcpy(frame + 16, &sum, 8);
}

static inline uint8_t *seg_put_cursor(uint8_t *w, const struct rt_cursor *c)
{
	memcpy(w, &c->slot, 4);
	memcpy(w + 4, &c->gen, 4);
	memcpy(w + 8, &c->pos, 8);
	memcpy(w + 16, &c->records, 8);
	memcpy(w + 24, &c->dropped, 8);
	memcpy(w + 32, &c->flags, 4);
	memset(w + 36, 0, 4);
	return w + SEG_CURSOR_BYTES;
}

static inline const uint8_t *seg_get_cursor(const uint8_t *p, struct rt_cursor *c)
{
	memcpy(&c->slot, p, 4);
	memcpy(&c->gen, p + 4, 4);
	memcpy(&c->pos, p + 8, 8);
	memcpy(&c->records, p + 16, 8);
	memcpy(&c->dropped, p + 24, 8);
	memcpy(&c->flags, p + 32, 4);
	c->pad = 0;
	return p + SEG_CURSOR_BYTES;
}

#endif
