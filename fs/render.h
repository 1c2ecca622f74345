/* SPDX-License-Identifier: MIT */
/*
 * render.h - the lines of a block, as a file shows them: decode (read the
 * DATA frame, check it, decompress, decode the columns) and rt_render() the
 * records a filter selects, into a buffer of exactly the size the index
 * promised. Rendered pieces live in a bounded cache (LRU by bytes), keyed by
 * block and the block's simplest filter, so that a read of 128 KiB does not
 * render a 4 MiB block again, and files sharing a block share its text.
 * Worker threads render ahead of sequential readers (prefetch), which is what
 * lets a single `cat` use more than one core.
 */
#ifndef RTFS_RENDER_H
#define RTFS_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "view.h"

/*
 * rtfs_render_block - write the lines of the records of @b that pass @f at
 * @out, which holds exactly @len bytes (what rtfs_filter_bytes() said).
 * @return 0; -EIO if the block is damaged or its lines do not come to @len
 * bytes (recorded as damage); -ENOMEM.
 */
int rtfs_render_block(struct rtfs_model *m, struct rtfs_block *b, const struct rtfs_filter *f,
		      char *out, uint32_t len);

/* A rendered piece, shared; hold it while its bytes are used. */
struct rtfs_rbuf {
	const char *data;
	uint32_t len;
};

struct rtfs_cache;

/*
 * rtfs_cache_new - a cache of at most @budget bytes of rendered text and
 * @workers prefetch threads. @return 0, -ENOMEM, or a pthread error.
 */
int rtfs_cache_new(struct rtfs_model *m, size_t budget, int workers, struct rtfs_cache **out);

/* rtfs_cache_free - stop the workers and free everything (NULL is fine). */
void rtfs_cache_free(struct rtfs_cache *c);

/*
 * rtfs_cache_get - the lines of block @gid under @f (@len bytes): from the
 * cache, or waiting for the worker rendering them, or rendered now.
 * @return 0 with *@out held (rtfs_cache_put() it); -EIO; -ENOMEM.
 */
int rtfs_cache_get(struct rtfs_cache *c, uint32_t gid, const struct rtfs_filter *f, uint32_t len,
		   const struct rtfs_rbuf **out);

/* rtfs_cache_put - release @rb; @to_end: the bytes up to its end were
 * just sent (a reader went through it). */
void rtfs_cache_put(struct rtfs_cache *c, const struct rtfs_rbuf *rb, int to_end);

/*
 * rtfs_cache_prefetch - render block @gid under @f in the background if it
 * is not cached or being rendered. Never blocks; dropped when the queue is
 * full.
 */
void rtfs_cache_prefetch(struct rtfs_cache *c, uint32_t gid, const struct rtfs_filter *f,
			 uint32_t len);

/* Counters for /stats. */
struct rtfs_cache_stats {
	uint64_t hits, misses, waits, prefetched, evicted, bytes, entries;
};
void rtfs_cache_stats(struct rtfs_cache *c, struct rtfs_cache_stats *st);

#endif /* RTFS_RENDER_H */
