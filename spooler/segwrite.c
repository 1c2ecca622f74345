/* SPDX-License-Identifier: MIT */
/*
 * segwrite.c - the segment being written: starting one (HEADER, synced with
 * its directory entry), going on with the one recovery found, assigning
 * blocks, closing it with its FOOTER. Used by the engine (ringtaild) and the
 * central server; every write goes through io_uring.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rtspool.h"

static uint64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int rt_write_sync(struct io_uring *u, int fd, const void *buf, size_t len, uint64_t off, int sync,
		  int dirfd)
{
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int want = 0, err = 0, r;
	size_t done = 0;

	while (done < len) {
		sqe = io_uring_get_sqe(u);
		if (!sqe)
			return -EBUSY;
		io_uring_prep_write(sqe, fd, (const char *)buf + done, (unsigned)(len - done), off + done);
		io_uring_sqe_set_data64(sqe, 100);
		r = io_uring_submit_and_wait(u, 1);
		if (r < 0)
			return r;
		if ((r = io_uring_wait_cqe(u, &cqe)) < 0)
			return r;
		r = cqe->res;
		io_uring_cqe_seen(u, cqe);
		if (r < 0)
			return r;
		if (r == 0)
			return -EIO;
		done += (size_t)r;
	}
	if (sync) {
		sqe = io_uring_get_sqe(u);
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_data64(sqe, 101);
		want++;
	}
	if (dirfd >= 0) {
		sqe = io_uring_get_sqe(u);
		io_uring_prep_fsync(sqe, dirfd, 0);
		io_uring_sqe_set_data64(sqe, 102);
		want++;
	}
	if (!want)
		return 0;
	r = io_uring_submit_and_wait(u, (unsigned)want);
	if (r < 0)
		return r;
	while (want-- > 0) {
		if ((r = io_uring_wait_cqe(u, &cqe)) < 0)
			return r;
		if (cqe->res < 0 && !err)
			err = cqe->res;
		io_uring_cqe_seen(u, cqe);
	}
	return err;
}

int rt_segw_assign(struct rt_segw *w, uint64_t off)
{
	if (w->nblocks == w->index_cap) {
		uint32_t cap = w->index_cap ? w->index_cap * 2 : 256;
		uint64_t *n = realloc(w->index_off, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		w->index_off = n;
		w->index_cap = cap;
	}
	w->index_off[w->nblocks++] = off;
	return 0;
}

int rt_segw_new(struct rt_segw *w, uint64_t first_seq, uint64_t ring_id,
		const struct rt_cursor *snap, size_t n)
{
	struct rt_seg_hdrinfo h;
	struct rt_buf b = {0};
	char name[32];
	int fd, err;

	memset(&h, 0, sizeof(h));
	memcpy(h.epoch, w->sp->epoch, 16);
	snprintf(h.host, sizeof(h.host), "%s", w->sp->host);
	h.first_seq = first_seq;
	h.created_ns = wall_ns();
	h.ring_id = ring_id;
	h.render_version = RT_RENDER_VERSION;
	err = rt_seg_header_frame(&b, &h, snap, n);
	if (err)
		return err;
	rt_seg_name(name, first_seq);
	fd = openat(w->sp->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0) {
		err = -errno;
		rt_buf_free(&b);
		return err;
	}
	/* The header, and the directory entry, durable before any block. */
	err = rt_write_sync(w->uring, fd, b.p, b.len, 0, w->fsync == RT_FSYNC_BLOCK, w->sp->dirfd);
	if (err) {
		/* Leave no half-made segment behind. */
		close(fd);
		unlinkat(w->sp->dirfd, name, 0);
		rt_buf_free(&b);
		return err;
	}
	w->fd = fd;
	w->first = first_seq;
	w->end = w->durable = b.len;
	w->created_ns = h.created_ns;
	w->next_seq = first_seq;
	w->tmin = w->tmax = 0;
	w->nblocks = 0;
	rt_buf_free(&b);
	return 0;
}

int rt_segw_resume(struct rt_segw *w, const struct rt_recovered *rec)
{
	char name[32];
	int err;

	rt_seg_name(name, rec->last_seg);
	w->fd = openat(w->sp->dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (w->fd < 0)
		return -errno;
	w->first = rec->last_seg;
	w->end = w->durable = rec->last_end;
	w->created_ns = rec->last_created_ns;
	w->next_seq = rec->last_next_seq;
	w->tmin = rec->tmin;
	w->tmax = rec->tmax;
	w->nblocks = 0;
	for (uint32_t b = 0; b < rec->nblocks; b++)
		if ((err = rt_segw_assign(w, rec->index_off[b])) != 0)
			return err;
	return 0;
}

int rt_segw_close(struct rt_segw *w)
{
	struct rt_buf b = {0};
	int err;

	err = rt_seg_footer_frame(&b, w->end, w->first, w->next_seq, w->tmin, w->tmax, w->index_off,
				  w->nblocks);
	if (!err)
		err = rt_write_sync(w->uring, w->fd, b.p, b.len, w->end, w->fsync == RT_FSYNC_BLOCK, -1);
	rt_buf_free(&b);
	if (err) {
		/* Whatever was written of the footer goes; retry later. */
		if (ftruncate(w->fd, (off_t)w->end) < 0)
			err = -errno;
		return err;
	}
	close(w->fd);
	w->fd = -1;
	return 0;
}

void rt_segw_durable(struct rt_segw *w, uint64_t end, uint64_t next_seq, uint64_t tmin,
		     uint64_t tmax)
{
	w->durable = end;
	w->next_seq = next_seq;
	if (w->tmin == 0 || tmin < w->tmin)
		w->tmin = tmin;
	if (tmax > w->tmax)
		w->tmax = tmax;
}

int rt_segw_due(const struct rt_segw *w, uint64_t max_bytes, uint64_t max_age_ns)
{
	return w->fd >= 0 && w->nblocks > 0 &&
	       (w->end >= max_bytes || wall_ns() - w->created_ns >= max_age_ns);
}

void rt_segw_free(struct rt_segw *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	free(w->index_off);
	w->index_off = NULL;
	w->index_cap = w->nblocks = 0;
}
