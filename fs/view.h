/* SPDX-License-Identifier: MIT */
/*
 * view.h - what a file holds and where: a view is a filter over the mount's
 * block list (host, service, severity classes, an hour range, a first
 * sequence number) and the table of the blocks that contribute to it, each
 * with the exact bytes its matching lines take and its offset in the file:
 *
 *   file offset  0          e[1].off        e[2].off              size
 *                +----------+---------------+---------------------+
 *                | block g0 |   block g3    |      block g7       |  ...
 *                +----------+---------------+---------------------+
 *
 * The sizes come from the segment index (rt_render_len() of every record,
 * summed per service and class by the spooler), so a file's size is known
 * without decoding anything. Entries are only ever appended, in the order
 * of the block list: the bytes at an offset never change.
 *
 * A trace view (/by-trace/ID) lists records instead of blocks: those with
 * the trace id, in time order when the view is made, later arrivals after.
 */
#ifndef RTFS_VIEW_H
#define RTFS_VIEW_H

#include <pthread.h>
#include <stdint.h>

#include "model.h"

/* Which records. Always memset() to 0 before filling: it is hashed and
 * compared as bytes. */
struct rtfs_filter {
	uint64_t since;   /* records numbered >= since; 0: no bound */
	int32_t hid;      /* -1: every host */
	int32_t sid;      /* -1: every service; RTFS_SID_NONE: none (yet) */
	uint32_t sevmask; /* bit c: severity class c (RTFS_SEV_ALL ...) */
	uint32_t h0, h1;  /* hours [h0, h1); h1 == 0: no time bound */
	uint32_t pad;
};

/* A /tail/NAME of a service no block names yet: matches nothing (the tail
 * switches to the service's own filter when it appears). */
#define RTFS_SID_NONE (-2)

/* Does a record (service @sid, class @cls, time, sequence) pass @f? */
static inline int rtfs_filter_rec(const struct rtfs_filter *f, int32_t sid, int cls, uint64_t time,
				  uint64_t seq)
{
	uint64_t h;

	if (f->sid >= 0 ? sid != f->sid : f->sid == RTFS_SID_NONE)
		return 0;
	if (!(f->sevmask & (1u << cls)))
		return 0;
	if (f->since && seq < f->since)
		return 0;
	if (f->h1) {
		h = time / RTFS_HOUR_NS;
		if (h < f->h0 || h >= f->h1)
			return 0;
	}
	return 1;
}

/*
 * rtfs_filter_bytes - bytes and records of block @b that pass @f: from the
 * index, except for a block straddling f->since (decoded).
 * @return 0; -EIO (damaged; *bytes = 0); -ENOMEM.
 */
int rtfs_filter_bytes(struct rtfs_model *m, struct rtfs_block *b, const struct rtfs_filter *f,
		      uint64_t *bytes, uint64_t *count);

/*
 * rtfs_filter_for_block - the simplest filter that selects the same records
 * of @b as @f (e.g. no time bound when the whole block is inside it), so that
 * views sharing a block share its rendering.
 */
void rtfs_filter_for_block(const struct rtfs_block *b, const struct rtfs_filter *f,
			   struct rtfs_filter *out);

struct rtfs_ventry {
	uint64_t off;
	uint32_t gid;
	uint32_t len;
};

struct rtfs_view {
	struct rtfs_filter f;
	pthread_mutex_t mu;
	uint32_t next;          /* blocks looked at so far */
	uint32_t n, cap;
	struct rtfs_ventry *e;
	uint64_t size;
	uint64_t records;
	uint64_t mtime_ns;      /* newest record time in it (0: empty) */
	/* registry */
	uint64_t hash;
	int refs;
	struct rtfs_view *next_in_bucket;
};

/* A piece of one entry that a read covers. */
struct rtfs_piece {
	uint32_t gid;
	uint32_t entry_len;     /* bytes of the whole entry */
	uint64_t entry_off;     /* file offset of the entry */
	uint32_t from;          /* first byte of the entry wanted */
	uint32_t len;           /* bytes wanted */
};

struct rtfs_views;

int rtfs_views_new(struct rtfs_model *m, struct rtfs_views **out);
void rtfs_views_free(struct rtfs_views *vs);

/*
 * rtfs_view_get - the view of @f (shared; made and brought up to date when
 * new). Release with rtfs_view_put(). @return 0, -ENOMEM.
 */
int rtfs_view_get(struct rtfs_views *vs, const struct rtfs_filter *f, struct rtfs_view **out);
void rtfs_view_put(struct rtfs_views *vs, struct rtfs_view *v);

/*
 * rtfs_view_update - take in blocks published since the last call.
 * @return 1 if the view grew, 0 if not, -ENOMEM.
 */
int rtfs_view_update(struct rtfs_model *m, struct rtfs_view *v);

/* rtfs_view_size - the view's size now (no update). */
uint64_t rtfs_view_size(struct rtfs_view *v);

/*
 * rtfs_view_pieces - the entries covering [@off, @off + @len) clipped to the
 * view's size, at most @max of them.
 * @return pieces filled (0 at or past the end).
 */
int rtfs_view_pieces(struct rtfs_view *v, uint64_t off, uint64_t len, struct rtfs_piece *out,
		     int max);

/* rtfs_view_skip_removed - @off, or past the entries from @off on whose
 * blocks retention removed (a follower that fell behind goes on from the
 * first block still there). */
uint64_t rtfs_view_skip_removed(struct rtfs_model *m, struct rtfs_view *v, uint64_t off);

/* rtfs_view_entry_at - the entry index holding offset @off (callers hold
 * v->mu), or v->n. */
uint32_t rtfs_view_entry_at(const struct rtfs_view *v, uint64_t off);

/* ------------------------------------------------------------------------
 * Trace views
 * ------------------------------------------------------------------------ */

struct rtfs_tentry {
	uint64_t off;
	uint64_t time;
	uint64_t seq;
	uint32_t gid;
	uint32_t rec;
	uint32_t len;
	uint16_t hid;
};

struct rtfs_tview {
	uint8_t trace[16];
	int32_t hid;
	pthread_mutex_t mu;
	uint32_t next;          /* blocks looked at */
	uint32_t n, cap;
	struct rtfs_tentry *e;
	uint64_t size;
	uint64_t mtime_ns;
	char *text;             /* rendered lines of e[0 .. nrendered) */
	uint32_t nrendered;
	uint64_t text_len;
	int refs;
	uint64_t last_use;
	struct rtfs_tview *next_in_list;
};

/*
 * rtfs_tview_get - the view of trace @trace in host @hid (-1: all).
 * @return 0; -ENOENT if no record carries the id; -ENOMEM.
 */
int rtfs_tview_get(struct rtfs_views *vs, const uint8_t trace[16], int32_t hid,
		   struct rtfs_tview **out);
void rtfs_tview_put(struct rtfs_views *vs, struct rtfs_tview *tv);

/* rtfs_tview_update - take in new blocks. @return 1 if it grew, 0, -errno. */
int rtfs_tview_update(struct rtfs_model *m, struct rtfs_tview *tv);

uint64_t rtfs_tview_size(struct rtfs_tview *tv);

/*
 * rtfs_tview_read - copy up to @len bytes at @off into @out.
 * @return bytes copied, -EIO if a block holding one of the records is
 * damaged, -ENOMEM.
 */
long rtfs_tview_read(struct rtfs_model *m, struct rtfs_tview *tv, uint64_t off, size_t len,
		     char *out);

/*
 * rtfs_recent_traces - up to @max distinct trace ids (16 bytes each into
 * @out) from the newest blocks of host @hid (-1: all), newest first, decoding
 * at most @budget bytes of block bodies. @return ids found, or -ENOMEM.
 */
int rtfs_recent_traces(struct rtfs_model *m, int32_t hid, uint8_t (*out)[16], int max,
		       uint64_t budget);

#endif /* RTFS_VIEW_H */
