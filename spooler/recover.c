/* SPDX-License-Identifier: MIT */
/*
 * recover.c - make a spool safe to write to after whatever stopped the last
 * ringtaild, and work out the next sequence number and the durable ring
 * positions.
 *
 * Every segment recovery looks at is left in a state the next recovery
 * accepts as it is: closed with a footer that lists every block, except the
 * newest when the numbering goes on in it. So any number of restarts after
 * any damage do the same as one.
 *
 *  - A segment whose footer and INDEX frames check is taken as it is (its
 *    DATA frames are checked by every read).
 *  - Any other is read whole (rt_seg_salvage()): every intact block is
 *    kept, wherever the damage is. Damaged bytes are copied into
 *    quarantine/NAME.damaged-OFFSET; a torn tail of the newest segment (a
 *    write the last run did not finish, holding nothing durable) is dropped.
 *    A segment with damage only at its end is cut back and closed where it
 *    is. Otherwise it is rewritten: its first run of consecutive blocks stays
 *    under its name, and each later run of intact blocks (after a gap the
 *    damage made) becomes a closed segment named by its first sequence
 *    number, since a segment's blocks must be consecutive. A damaged header
 *    is written anew from spool.meta and the file's name.
 *  - A rewrite is crash-safe without a journal: the new files are written as
 *    NAME.repair and made durable first; renaming the new first part over
 *    the damaged segment is the commit; the later parts are renamed into
 *    place after it. At start, a NAME.repair that is whole is renamed into
 *    place if the segment before it no longer holds its records (the commit
 *    happened), else removed (the repair is done again).
 *  - Only a file with nothing readable in it, or one of another spool, is
 *    moved to quarantine/ whole.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rtspool.h"

#define REPAIR_SUFFIX ".repair"

static void say(rt_log_fn log, void *arg, int sev, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void say(rt_log_fn log, void *arg, int sev, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (!log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log(arg, sev, buf);
}

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* The latest cursor entry per slot (the last one is the global entry). */
struct table {
	struct rt_cursor *e;
	uint8_t *present;
	uint32_t n;
};

static void apply(struct table *t, const struct rt_cursor *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t k = e[i].slot == RT_CURSOR_GLOBAL ? t->n - 1 : e[i].slot;
		if (k >= t->n)
			continue;
		t->e[k] = e[i];
		t->present[k] = 1;
	}
}

/* A list of cursor entries, one per slot (for a header written anew). */
struct curs {
	struct rt_cursor *v;
	size_t n, cap;
};

static int curs_merge(struct curs *c, const struct rt_cursor *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t k;
		for (k = 0; k < c->n && c->v[k].slot != e[i].slot; k++)
			;
		if (k == c->n) {
			if (c->n == c->cap) {
				size_t cap = c->cap ? c->cap * 2 : 16;
				struct rt_cursor *nv = realloc(c->v, cap * sizeof(*nv));
				if (!nv)
					return -ENOMEM;
				c->v = nv;
				c->cap = cap;
			}
			c->n++;
		}
		c->v[k] = e[i];
	}
	return 0;
}

struct ctx {
	struct rt_spool *sp;
	rt_log_fn log;
	void *arg;
	uint64_t ring_id;
	struct table t;      /* durable ring positions for ring_id, so far */
	uint64_t ceiling;    /* no number below this is handed out again */
	uint64_t durable;    /* what the last run published as durable (0: none) */
	uint64_t prev_next;  /* after the last segment taken */
	struct rt_recovered *out;
};

void rt_recovered_free(struct rt_recovered *r)
{
	free(r->index_off);
	free(r->cur);
	memset(r, 0, sizeof(*r));
}

/* ------------------------------------------------------------------------
 * Taking a segment as it is
 * ------------------------------------------------------------------------ */

static int take(struct ctx *x, struct rt_seg *s, int last)
{
	char name[32];

	rt_seg_name(name, s->hdr.first_seq);
	if (x->prev_next && s->hdr.first_seq > x->prev_next)
		say(x->log, x->arg, RT_WARN,
		    "sequence gap before segment %s: records #%" PRIu64 " to #%" PRIu64
		    " are not in the spool",
		    name, x->prev_next, s->hdr.first_seq - 1);
	else if (x->prev_next && s->hdr.first_seq < x->prev_next)
		say(x->log, x->arg, RT_ERROR,
		    "segment %s starts at #%" PRIu64 ", before the end of the segment before it "
		    "(#%" PRIu64 "): the spool holds some numbers twice",
		    name, s->hdr.first_seq, x->prev_next - 1);
	/* The ring positions durable in the spool: each segment's header
	 * snapshot and its blocks' changes, in order. */
	if (x->ring_id && s->hdr.ring_id == x->ring_id)
		apply(&x->t, s->hdr_cursor, s->hdr_ncursor);
	for (uint32_t b = 0; b < s->nblocks; b++)
		if (x->ring_id && s->blocks[b].ring_id == x->ring_id)
			apply(&x->t, s->blocks[b].cursor, s->blocks[b].ncursor);
	x->prev_next = s->next_seq;
	x->ceiling = max64(x->ceiling, max64(s->next_seq, s->seq_ceiling));
	x->out->segments++;
	if (!last)
		return 0;
	free(x->out->index_off);
	x->out->index_off = NULL;
	x->out->last_seg = s->hdr.first_seq;
	x->out->last_open = !s->closed;
	x->out->last_end = s->valid_end;
	x->out->last_created_ns = s->hdr.created_ns;
	x->out->last_next_seq = s->next_seq;
	x->out->tmin = s->tmin;
	x->out->tmax = s->tmax;
	x->out->nblocks = s->nblocks;
	if (s->nblocks) {
		x->out->index_off = malloc(s->nblocks * sizeof(uint64_t));
		if (!x->out->index_off)
			return -ENOMEM;
		for (uint32_t b = 0; b < s->nblocks; b++)
			x->out->index_off[b] = s->blocks[b].index_off;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------ */

static int pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
	const uint8_t *p = buf;

	while (n) {
		ssize_t r = pwrite(fd, p, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int pread_all(int fd, void *buf, size_t n, uint64_t off)
{
	uint8_t *p = buf;

	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -EIO;
		}
		if (r == 0)
			return -EIO;
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Append to @fd at @off the footer of blocks @b[0..@n) (their INDEX frames
 * at @index_off), and make it durable. */
static int write_footer(int fd, uint64_t off, uint64_t first, const struct rt_seg_block *b,
			const uint64_t *index_off, uint32_t n)
{
	struct rt_buf f = {0};
	uint64_t tmin = 0, tmax = 0, next = first;
	int err;

	for (uint32_t i = 0; i < n; i++) {
		if (i == 0 || b[i].tmin < tmin)
			tmin = b[i].tmin;
		if (b[i].tmax > tmax)
			tmax = b[i].tmax;
		next = b[i].first_seq + b[i].nrec;
	}
	err = rt_seg_footer_frame(&f, off, first, next, tmin, tmax, index_off, n);
	if (!err)
		err = pwrite_all(fd, f.p, f.len, off);
	if (!err && fdatasync(fd) < 0)
		err = -errno;
	rt_buf_free(&f);
	return err;
}

/*
 * Write a closed segment as SPOOL/NAME.repair: header @h with ring positions
 * @cur, then blocks @b[0..@n) of the segment open as @src (INDEX frames
 * renumbered and pointing at their new DATA frames, DATA frames as they
 * are), then the footer. Durable when this returns 0.
 */
static int write_repair(struct ctx *x, int src, const struct rt_seg_hdrinfo *h,
			const struct curs *cur, const struct rt_seg_block *b, uint32_t n)
{
	char name[64];
	struct rt_buf buf = {0};
	uint64_t off, *index_off = NULL;
	int fd, err;

	rt_seg_name(name, h->first_seq);
	strcat(name, REPAIR_SUFFIX);
	unlinkat(x->sp->dirfd, name, 0);
	fd = rt_openat_beneath(x->sp->dirfd, name, O_RDWR | O_CREAT | O_EXCL, 0640);
	if (fd < 0)
		return fd;
	if (n && !(index_off = malloc(n * sizeof(*index_off)))) {
		err = -ENOMEM;
		goto out;
	}
	err = rt_seg_header_frame(&buf, h, cur->v, cur->n);
	if (!err)
		err = pwrite_all(fd, buf.p, buf.len, 0);
	off = buf.len;
	for (uint32_t i = 0; !err && i < n; i++) {
		size_t len = (size_t)b[i].index_len + b[i].data_len;
		buf.len = 0;
		if (rt_buf_reserve(&buf, len)) {
			err = -ENOMEM;
			break;
		}
		/* The INDEX frame and its DATA frame follow each other. */
		err = pread_all(src, buf.p, len, b[i].index_off);
		if (!err)
			err = rt_seg_reindex(buf.p, b[i].index_len, i, off + b[i].index_len);
		if (!err)
			err = pwrite_all(fd, buf.p, len, off);
		index_off[i] = off;
		off += len;
	}
	if (!err)
		err = write_footer(fd, off, h->first_seq, b, index_off, n);
	if (!err && fsync(fd) < 0)
		err = -errno;
out:
	close(fd);
	if (err)
		unlinkat(x->sp->dirfd, name, 0);
	free(index_off);
	rt_buf_free(&buf);
	return err;
}

/* Rename SPOOL/NAME.repair to NAME, never over an existing file. */
static int commit_repair(struct ctx *x, uint64_t seq, int replace)
{
	char name[32], tmp[64];

	rt_seg_name(name, seq);
	snprintf(tmp, sizeof(tmp), "%s%s", name, REPAIR_SUFFIX);
	if (renameat2(x->sp->dirfd, tmp, x->sp->dirfd, name, replace ? 0 : RENAME_NOREPLACE) < 0)
		return -errno;
	return 0;
}

/* ------------------------------------------------------------------------
 * Repairs a crash interrupted
 * ------------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t p = *(const uint64_t *)a, q = *(const uint64_t *)b;
	return p < q ? -1 : p > q;
}

/* Is @name a segment of this spool that a footer closes, and does it end
 * at or before @seq? -1 if there is no such file. */
static int closed_before(struct rt_spool *sp, const char *name, uint64_t seq)
{
	struct rt_seg *s;
	int r, fd = rt_openat_beneath(sp->dirfd, name, O_RDONLY | O_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	r = rt_seg_open_fd(fd, 0, 0, &s);
	if (r == 0) {
		r = s->closed && !s->damaged && s->next_seq <= seq && !memcmp(s->hdr.epoch, sp->epoch, 16);
		rt_seg_close(s);
	} else {
		r = 0;
	}
	close(fd);
	return r;
}

static int finish_repairs(struct ctx *x)
{
	uint64_t *v = NULL, *segs = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int fd = dup(x->sp->dirfd), nseg, err = 0;
	DIR *d;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		char base[32];
		uint64_t seq;
		size_t l = strlen(de->d_name);
		if (l != 24 + strlen(REPAIR_SUFFIX) || strcmp(de->d_name + 24, REPAIR_SUFFIX))
			continue;
		memcpy(base, de->d_name, 24);
		base[24] = '\0';
		if (rt_seg_parse_name(base, &seq))
			continue;
		if (n == cap) {
			uint64_t *nv;
			cap = cap ? cap * 2 : 8;
			nv = realloc(v, cap * sizeof(*nv));
			if (!nv) {
				err = -ENOMEM;
				goto out;
			}
			v = nv;
		}
		v[n++] = seq;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_u64);
	for (size_t i = 0; i < n; i++) {
		char name[32], tmp[64];
		struct rt_seg *s;
		struct stat st;
		int ok = 0, tfd, k, committed;

		rt_seg_name(name, v[i]);
		snprintf(tmp, sizeof(tmp), "%s%s", name, REPAIR_SUFFIX);
		tfd = rt_openat_beneath(x->sp->dirfd, tmp, O_RDONLY | O_NONBLOCK, 0);
		if (tfd >= 0 && fstat(tfd, &st) == 0 && S_ISREG(st.st_mode) &&
		    rt_seg_open_fd(tfd, 0, 0, &s) == 0) {
			ok = s->closed && !s->damaged && s->hdr.first_seq == v[i] &&
			     !memcmp(s->hdr.epoch, x->sp->epoch, 16);
			rt_seg_close(s);
		}
		if (tfd >= 0)
			close(tfd);
		/* The segment before it (by name) decides: while it still
		 * holds these records the repair did not reach its commit. */
		free(segs);
		segs = NULL;
		nseg = rt_spool_list(x->sp, &segs);
		if (nseg < 0) {
			err = nseg;
			goto out;
		}
		committed = 0;
		if (ok && fstatat(x->sp->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 &&
		    errno == ENOENT) {
			for (k = nseg - 1; k >= 0 && segs[k] >= v[i]; k--)
				;
			if (k < 0) {
				committed = 1;
			} else {
				char prev[32];
				rt_seg_name(prev, segs[k]);
				committed = closed_before(x->sp, prev, v[i]) == 1;
			}
		}
		if (committed && commit_repair(x, v[i], 0) == 0) {
			fsync(x->sp->dirfd);
			say(x->log, x->arg, RT_WARN,
			    "segment %s: finished a repair that a stop interrupted", name);
		} else {
			unlinkat(x->sp->dirfd, tmp, 0);
		}
	}
out:
	closedir(d);
	free(v);
	free(segs);
	return err;
}

/* ------------------------------------------------------------------------
 * Repairing one segment
 * ------------------------------------------------------------------------ */

/* A run of blocks with consecutive numbers: blocks [b0, b1) of the salvage. */
struct run {
	uint32_t b0, b1;
	uint64_t first, next;
};

/* Runs of consecutive blocks; *@clean says whether the first run starts
 * the file (right after its header) with nothing damaged before its end. */
static int find_runs(const struct rt_seg *sv, const struct rt_seg_piece *p, uint32_t np,
		     struct run **out, uint32_t *nout, int *clean)
{
	struct run *r = NULL;
	uint32_t n = 0;
	int bad_before = 0;

	*clean = !sv->hdr_bad;
	for (uint32_t i = 0; i < np; i++) {
		const struct rt_seg_block *b;
		if (p[i].kind != RT_PIECE_BLOCK) {
			if (p[i].kind != RT_PIECE_HEADER)
				bad_before = 1;
			continue;
		}
		b = &sv->blocks[p[i].block];
		if (n && r[n - 1].next == b->first_seq) {
			r[n - 1].b1 = p[i].block + 1;
			r[n - 1].next = b->first_seq + b->nrec;
			if (bad_before && n == 1)
				*clean = 0;
		} else {
			struct run *nr = realloc(r, (n + 1) * sizeof(*r));
			if (!nr) {
				free(r);
				return -ENOMEM;
			}
			r = nr;
			r[n].b0 = p[i].block;
			r[n].b1 = p[i].block + 1;
			r[n].first = b->first_seq;
			r[n].next = b->first_seq + b->nrec;
			if (n == 0 && (bad_before || b->first_seq != sv->hdr.first_seq))
				*clean = 0;
			n++;
		}
	}
	if (n > 1)
		*clean = 0;
	*out = r;
	*nout = n;
	return 0;
}

/*
 * Segment @name (first record @seq by its name, open as @fd) is not closed
 * by a valid footer: read it whole and repair it. @last: it is the newest;
 * @next_name: the name of the next segment (UINT64_MAX: none).
 * @return 0 when it was taken as it is (the open newest segment), 1 when the
 * spool changed (look at it again), or -errno.
 */
static int repair(struct ctx *x, int fd, uint64_t seq, int last, uint64_t next_name)
{
	struct rt_seg *sv = NULL;
	struct rt_seg_piece *p = NULL;
	struct run *runs = NULL;
	struct curs base = {0}, cur = {0};
	struct rt_seg_hdrinfo h;
	uint32_t np = 0, nruns = 0;
	uint64_t tail_next, kept_end, base_ring;
	char name[32], what[160], where[300];
	int err, clean, changed = 0;

	rt_seg_name(name, seq);
	err = rt_seg_salvage(fd, seq, 0, &sv, &p, &np);
	if (err)
		return err;
	x->ceiling = max64(x->ceiling, sv->seq_ceiling);
	if (!sv->hdr_bad && (memcmp(sv->hdr.epoch, x->sp->epoch, 16) || sv->hdr.first_seq != seq)) {
		err = rt_spool_quarantine(x->sp, name, NULL, where, sizeof(where));
		if (!err)
			say(x->log, x->arg, RT_ERROR,
			    "segment %s belongs to another spool or has the wrong name; moved to %s",
			    name, where);
		x->ceiling = max64(x->ceiling, seq);
		x->out->quarantined++;
		goto out_changed;
	}
	if (sv->hdr_bad && sv->nblocks == 0) {
		char as[64];
		snprintf(as, sizeof(as), "%s.damaged-0", name);
		err = rt_spool_quarantine(x->sp, name, as, where, sizeof(where));
		if (!err)
			say(x->log, x->arg, RT_ERROR,
			    "segment %s: nothing in it can be read (%s at offset 0, and no block "
			    "checks): the whole file (%" PRIu64 " bytes) moved to %s",
			    name, p && np ? p[0].why : "empty", sv->size, where);
		x->ceiling = max64(x->ceiling, seq);
		x->out->quarantined++;
		goto out_changed;
	}
	err = find_runs(sv, p, np, &runs, &nruns, &clean);
	if (err)
		goto out;
	/* Where the records of a damaged tail end: what any frame claimed,
	 * what was published as durable (the newest), or the next segment. */
	tail_next = last ? max64(x->ceiling, x->durable + 1) : next_name;

	/* Set the damage aside (or drop a torn tail), saying exactly what. */
	kept_end = nruns ? sv->blocks[runs[nruns - 1].b1 - 1].data_off +
				   sv->blocks[runs[nruns - 1].b1 - 1].data_len
			 : (sv->hdr_bad ? 0 : p[0].end);
	for (uint32_t i = 0; i < np; i++) {
		uint64_t before = nruns ? runs[nruns - 1].next : seq;
		int drop;
		if (p[i].kind == RT_PIECE_STALE)
			say(x->log, x->arg, RT_WARN,
			    "segment %s: its footer (bytes %" PRIu64 " to %" PRIu64
			    ") does not list its blocks; a new one is written",
			    name, p[i].off, p[i].end - 1);
		if (p[i].kind != RT_PIECE_DAMAGE)
			continue;
		rt_seg_piece_what(sv, p, np, i, tail_next, what, sizeof(what));
		/* A frame the end of the newest segment cuts short, holding
		 * no record that was durable, is a write the crash stopped. */
		drop = last && p[i].torn && p[i].off >= kept_end && x->durable < before;
		if (drop) {
			say(x->log, x->arg, RT_WARN,
			    "segment %s: torn tail of %" PRIu64 " bytes cut at offset %" PRIu64
			    " (a write the last run did not finish; nothing in it was durable)",
			    name, p[i].end - p[i].off, p[i].off);
			continue;
		}
		err = rt_spool_quarantine_copy(x->sp, fd, name, p[i].off, p[i].end, where,
					       sizeof(where));
		if (err)
			goto out;
		/* Kept: the numbers its frames claim were used. */
		x->ceiling = max64(x->ceiling, p[i].claim);
		say(x->log, x->arg, RT_ERROR,
		    "segment %s: bytes %" PRIu64 " to %" PRIu64 " are damaged (%s at offset %" PRIu64
		    "): %s; moved to %s",
		    name, p[i].off, p[i].end - 1, p[i].why, p[i].off, what, where);
		x->out->quarantined++;
	}

	if (clean) {
		/* Intact from the start, damage (if any) only at the end: cut it
		 * back where it is; close it unless the numbering goes on in it. */
		uint64_t next = nruns ? runs[0].next : seq, end = kept_end;
		uint64_t *io = NULL;
		if (sv->size > end && (ftruncate(fd, (off_t)end) < 0 || fsync(fd) < 0)) {
			err = -errno;
			goto out;
		}
		if (last && max64(next, max64(x->ceiling, x->durable + 1)) == next) {
			/* The open newest segment: go on appending to it. */
			sv->valid_end = end;
			sv->next_seq = next;
			sv->damaged = 0;
			sv->closed = 0;
			err = take(x, sv, 1);
			goto out;
		}
		if (sv->nblocks && !(io = malloc(sv->nblocks * sizeof(*io)))) {
			err = -ENOMEM;
			goto out;
		}
		for (uint32_t b = 0; b < sv->nblocks; b++)
			io[b] = sv->blocks[b].index_off;
		err = write_footer(fd, end, seq, sv->blocks, io, sv->nblocks);
		free(io);
		if (err)
			goto out;
		if (!sv->damaged)
			say(x->log, x->arg, last ? RT_WARN : RT_ERROR,
			    last ? "segment %s: closed (records #%" PRIu64 " to #%" PRIu64
				   " are kept); numbering cannot go on in it"
				 : "segment %s had no footer although it is not the newest; closed it "
				   "(records #%" PRIu64 " to #%" PRIu64 " are kept)",
			    name, seq, next - 1);
		goto out_changed;
	}

	/* A rewrite. The header: the segment's own, or one made anew. */
	memset(&h, 0, sizeof(h));
	if (!sv->hdr_bad) {
		h = sv->hdr;
		base_ring = sv->hdr.ring_id;
		err = curs_merge(&base, sv->hdr_cursor, sv->hdr_ncursor);
	} else {
		memcpy(h.epoch, x->sp->epoch, 16);
		snprintf(h.host, sizeof(h.host), "%s", x->sp->host);
		h.first_seq = seq;
		h.created_ns = sv->nblocks ? sv->blocks[0].tmin : 0;
		h.render_version = sv->nblocks ? sv->blocks[0].render_version : RT_RENDER_VERSION;
		/* The positions durable before this segment: what the segments
		 * before it say. */
		base_ring = x->ring_id;
		for (uint32_t k = 0; !err && k < x->t.n; k++)
			if (x->t.present[k])
				err = curs_merge(&base, &x->t.e[k], 1);
	}
	h.ring_id = base.n ? base_ring : 0;
	if (err)
		goto out;
	/* Parts whose numbers another segment holds already stay out. */
	for (uint32_t r = 0; r < nruns; r++) {
		struct stat st;
		char rn[32];
		if (runs[r].first == seq)
			continue;
		rt_seg_name(rn, runs[r].first);
		if (runs[r].next > next_name ||
		    fstatat(x->sp->dirfd, rn, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			uint64_t a = sv->blocks[runs[r].b0].index_off,
				 b = sv->blocks[runs[r].b1 - 1].data_off +
				     sv->blocks[runs[r].b1 - 1].data_len;
			err = rt_spool_quarantine_copy(x->sp, fd, name, a, b, where, sizeof(where));
			if (err)
				goto out;
			say(x->log, x->arg, RT_ERROR,
			    "segment %s: records #%" PRIu64 " to #%" PRIu64
			    " (bytes %" PRIu64 " to %" PRIu64 ") are intact but another segment "
			    "holds those numbers; moved to %s",
			    name, runs[r].first, runs[r].next - 1, a, b - 1, where);
			runs[r].b1 = runs[r].b0; /* nothing to write */
			x->out->quarantined++;
		}
	}
	/* Write every part, durably, before anything is renamed. */
	{
		uint32_t bi = 0, r0 = nruns && runs[0].first == seq ? 1 : 0;
		char parts[400];
		size_t pl = 0;

		parts[0] = '\0';
		/* The first part keeps the name (possibly with no block). */
		h.first_seq = seq;
		err = curs_merge(&cur, base.v, base.n);
		if (!err)
			err = write_repair(x, fd, &h, &cur,
					   r0 ? &sv->blocks[runs[0].b0] : NULL,
					   r0 ? runs[0].b1 - runs[0].b0 : 0);
		if (err)
			goto out;
		if (r0)
			pl += (size_t)snprintf(parts + pl, sizeof(parts) - pl,
					       "#%" PRIu64 " to #%" PRIu64 " in %s", runs[0].first,
					       runs[0].next - 1, name);
		for (uint32_t r = r0; r < nruns; r++) {
			char rn[32];
			if (runs[r].b1 == runs[r].b0)
				continue;
			/* Its ring positions: the header's, changed by every
			 * intact block before it (cur holds those up to bi). */
			for (; !err && bi < runs[r].b0; bi++)
				if (sv->blocks[bi].ring_id == base_ring && base_ring)
					err = curs_merge(&cur, sv->blocks[bi].cursor,
							 sv->blocks[bi].ncursor);
			if (!err) {
				h.first_seq = runs[r].first;
				h.ring_id = cur.n ? base_ring : 0;
				err = write_repair(x, fd, &h, &cur, &sv->blocks[runs[r].b0],
						   runs[r].b1 - runs[r].b0);
			}
			if (err)
				break;
			rt_seg_name(rn, runs[r].first);
			if (pl < sizeof(parts))
				pl += (size_t)snprintf(parts + pl, sizeof(parts) - pl,
						       "%s#%" PRIu64 " to #%" PRIu64 " in %s",
						       pl ? ", " : "", runs[r].first, runs[r].next - 1,
						       rn);
		}
		if (err || fsync(x->sp->dirfd) < 0) {
			err = err ? err : -errno;
			/* Nothing renamed yet: take every part back. */
			for (uint32_t r = 0; r <= nruns; r++) {
				char rn[64];
				rt_seg_name(rn, r == nruns ? seq : runs[r].first);
				strcat(rn, REPAIR_SUFFIX);
				unlinkat(x->sp->dirfd, rn, 0);
			}
			goto out;
		}
		/* The commit: the new first part replaces the damaged file. */
		err = commit_repair(x, seq, 1);
		if (!err && fsync(x->sp->dirfd) < 0)
			err = -errno;
		for (uint32_t r = r0; !err && r < nruns; r++)
			if (runs[r].b1 > runs[r].b0)
				err = commit_repair(x, runs[r].first, 0);
		if (!err && fsync(x->sp->dirfd) < 0)
			err = -errno;
		if (err)
			goto out;
		say(x->log, x->arg, RT_ERROR, "segment %s repaired%s: its intact records are kept%s%s",
		    name, sv->hdr_bad ? " (with a new header)" : "", pl ? ": " : " (none)", parts);
	}
out_changed:
	if (!err)
		changed = 1;
out:
	free(runs);
	free(base.v);
	free(cur.v);
	free(p);
	rt_seg_close(sv);
	return err ? err : changed;
}

/*
 * Look at segment @seq. @return 0 when it is taken or set aside, 1 when the
 * spool changed and the listing is to be read again, or -errno.
 */
static int examine(struct ctx *x, uint64_t seq, int last, uint64_t next_name)
{
	struct rt_seg *s = NULL;
	struct stat st;
	char name[32], where[300];
	int fd, r;

	rt_seg_name(name, seq);
	if (fstatat(x->sp->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISREG(st.st_mode)) {
		/* A link (never followed), a directory, a fifo...: not ours. */
		r = rt_spool_quarantine(x->sp, name, NULL, where, sizeof(where));
		if (r)
			return r;
		say(x->log, x->arg, RT_ERROR,
		    "%s in the spool is not a regular file (%s); moved to %s without following it",
		    name, S_ISLNK(st.st_mode) ? "a symbolic link" : "not a file", where);
		x->ceiling = max64(x->ceiling, seq);
		x->out->quarantined++;
		return 0;
	}
	fd = rt_openat_beneath(x->sp->dirfd, name, O_RDWR | O_NONBLOCK, 0);
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	r = rt_seg_open_fd(fd, 0, 0, &s);
	if (r == -ENOMEM || r == -EIO) {
		close(fd);
		return r;
	}
	if (r == 0 && (memcmp(s->hdr.epoch, x->sp->epoch, 16) || s->hdr.first_seq != seq)) {
		rt_seg_close(s);
		close(fd);
		r = rt_spool_quarantine(x->sp, name, NULL, where, sizeof(where));
		if (r)
			return r;
		say(x->log, x->arg, RT_ERROR,
		    "segment %s belongs to another spool or has the wrong name; moved to %s", name,
		    where);
		x->ceiling = max64(x->ceiling, seq);
		x->out->quarantined++;
		return 0;
	}
	if (r == 0 && s->closed && !s->damaged) {
		/* Its footer and every INDEX frame check: as it is. */
		r = take(x, s, last);
		rt_seg_close(s);
		close(fd);
		return r;
	}
	rt_seg_close(s);
	r = repair(x, fd, seq, last, next_name);
	close(fd);
	return r;
}

int rt_spool_recover(struct rt_spool *sp, uint64_t ring_id, uint32_t nslots, rt_log_fn log,
		     void *arg, struct rt_recovered *out)
{
	struct rt_spool_state st;
	struct ctx x;
	uint64_t *seqs = NULL, repaired = UINT64_MAX;
	int n, i = 0, err = 0;

	memset(out, 0, sizeof(*out));
	memset(&x, 0, sizeof(x));
	x.sp = sp;
	x.log = log;
	x.arg = arg;
	x.ring_id = ring_id;
	x.out = out;
	x.t.n = nslots + 1;
	x.t.e = calloc(x.t.n, sizeof(*x.t.e));
	x.t.present = calloc(x.t.n, 1);
	if (!x.t.e || !x.t.present) {
		err = -ENOMEM;
		goto done;
	}
	/* What the last run published as durable (its own spool only). */
	if (sp->state && rt_state_read(sp->state, &st) == 0 && !memcmp(st.epoch, sp->epoch, 16))
		x.durable = st.durable_seq;
	x.ceiling = 1;

	err = finish_repairs(&x);
	if (err)
		goto done;
	n = rt_spool_list(sp, &seqs);
	if (n < 0) {
		err = n;
		goto done;
	}
	while (i < n) {
		uint64_t seq = seqs[i];
		int r = examine(&x, seq, i == n - 1, i + 1 < n ? seqs[i + 1] : UINT64_MAX);
		if (r < 0) {
			err = r;
			goto done;
		}
		if (r == 0) {
			i++;
			continue;
		}
		/* The spool changed: read the listing again and go on from
		 * this segment (now repaired) or the one after it. A segment
		 * is repaired once; one that still is not right is an error. */
		if (seq == repaired) {
			char name[32];
			rt_seg_name(name, seq);
			say(log, arg, RT_ERROR, "segment %s: its repair did not take; stopping", name);
			err = -EIO;
			goto done;
		}
		repaired = seq;
		free(seqs);
		seqs = NULL;
		n = rt_spool_list(sp, &seqs);
		if (n < 0) {
			err = n;
			goto done;
		}
		for (i = 0; i < n && seqs[i] < seq; i++)
			;
	}

	/* Never hand out a number that was used: not one a readable frame
	 * anywhere claims, nor one the last run published as durable. */
	out->next_seq = max64(max64(x.prev_next, 1), max64(x.ceiling, x.durable + 1));
	if (out->next_seq > max64(x.prev_next, 1))
		say(log, arg, RT_ERROR,
		    "records #%" PRIu64 " to #%" PRIu64
		    " were lost to damage; numbering continues at #%" PRIu64,
		    max64(x.prev_next, 1), out->next_seq - 1, out->next_seq);
	if (out->last_open && out->next_seq != out->last_next_seq) {
		/* Cannot happen (repair() closes such a segment); never append
		 * numbers that do not follow on. */
		out->last_open = 0;
	}
	out->cur = malloc(x.t.n * sizeof(*out->cur));
	if (!out->cur) {
		err = -ENOMEM;
		goto done;
	}
	for (uint32_t k = 0; k < x.t.n; k++)
		if (x.t.present[k])
			out->cur[out->ncur++] = x.t.e[k];
done:
	free(seqs);
	free(x.t.e);
	free(x.t.present);
	if (err)
		rt_recovered_free(out);
	return err;
}
