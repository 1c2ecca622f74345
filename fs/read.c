/* SPDX-License-Identifier: MIT */
/*
 * read.c - the read path of view files (see read.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "read.h"

#define FAST 64 /* pieces sent by reference; more are copied */

/* Ask the workers for the entries after @end (a sequential reader's next). */
static void prefetch(struct rtfs *fs, struct rtfs_view *v, uint64_t end)
{
	struct rtfs_piece next[16];
	int n;

	if (!fs->o.workers || !fs->o.prefetch_bytes)
		return;
	n = rtfs_view_pieces(v, end, fs->o.prefetch_bytes, next, 16);
	for (int i = 0; i < n; i++)
		rtfs_cache_prefetch(fs->cache, next[i].gid, &v->f, next[i].entry_len);
}

/* Many small pieces: copy them into one buffer. */
static long read_copy(struct rtfs *fs, fuse_req_t req, struct rtfs_view *v, uint64_t off,
		      size_t size)
{
	struct rtfs_piece p[FAST];
	size_t done = 0;
	char *buf = malloc(size ? size : 1);
	int err = 0;

	if (!buf)
		return -ENOMEM;
	while (done < size && !err) {
		int n = rtfs_view_pieces(v, off + done, size - done, p, FAST);
		if (n == 0)
			break;
		for (int i = 0; i < n && !err; i++) {
			const struct rtfs_rbuf *rb;
			err = rtfs_cache_get(fs->cache, p[i].gid, &v->f, p[i].entry_len, &rb);
			if (err)
				break;
			memcpy(buf + done, rb->data + p[i].from, p[i].len);
			done += p[i].len;
			rtfs_cache_put(fs->cache, rb, p[i].from + p[i].len == p[i].entry_len);
		}
	}
	if (err) {
		free(buf);
		return err;
	}
	fuse_reply_buf(req, buf, done);
	free(buf);
	return (long)done;
}

long rtfs_read_view(struct rtfs *fs, fuse_req_t req, struct rtfs_view *v, uint64_t off,
		    size_t size, struct rtfs_rstate *rs)
{
	struct rtfs_piece p[FAST];
	const struct rtfs_rbuf *rb[FAST];
	struct iovec iov[FAST];
	uint64_t end, total = 0;
	int n, i, err = 0;

	n = rtfs_view_pieces(v, off, size, p, FAST);
	if (n == 0) {
		fuse_reply_buf(req, NULL, 0);
		return 0;
	}
	for (i = 0; i < n; i++)
		total += p[i].len;
	end = off + total;
	/* A sequential reader (or the kernel's readahead for one): start the
	 * next blocks on the workers before rendering this one here. */
	if (rs) {
		/* Relaxed: a hint; concurrent readahead requests race on it. */
		uint64_t last = __atomic_load_n(&rs->last_end, __ATOMIC_RELAXED);
		if (off + 2 * (uint64_t)fs->o.max_read >= last &&
		    off <= last + 2 * (uint64_t)fs->o.max_read)
			prefetch(fs, v, end);
	}
	if (total < size && n == FAST && end < rtfs_view_size(v))
		return read_copy(fs, req, v, off, size);
	for (i = 0; i < n; i++) {
		err = rtfs_cache_get(fs->cache, p[i].gid, &v->f, p[i].entry_len, &rb[i]);
		if (err)
			break;
		iov[i].iov_base = (void *)(uintptr_t)(rb[i]->data + p[i].from);
		iov[i].iov_len = p[i].len;
	}
	/* Before the reply: once it is sent, the file may be closed and its
	 * state (@rs) freed by a release on another thread. */
	if (!err && rs)
		__atomic_store_n(&rs->last_end, end, __ATOMIC_RELAXED);
	if (!err)
		fuse_reply_iov(req, iov, n);
	while (i-- > 0)
		rtfs_cache_put(fs->cache, rb[i], !err && p[i].from + p[i].len == p[i].entry_len);
	if (err)
		return err;
	return (long)total;
}
