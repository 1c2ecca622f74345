/* SPDX-License-Identifier: MIT */
/*
 * segment.c - segment files: HEADER, INDEX and FOOTER frames, and reading a
 * segment back (from its footer when closed, else frame by frame), finding
 * where its valid prefix ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <lz4frame.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "rtseg.h"
#include "seg_int.h"

uint64_t seg_frame_sum(const uint8_t *frame, size_t total)
{
	return XXH3_64bits_withSeed(frame + RT_SEG_FRAME_HDR, total - RT_SEG_FRAME_HDR,
				    XXH3_64bits(frame + 8, 8));
}

void rt_seg_name(char out[32], uint64_t seq)
{
	snprintf(out, 32, "%020" PRIu64 ".lz4", seq);
}

int rt_seg_parse_name(const char *name, uint64_t *seq)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 20; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	if (strcmp(name + 20, ".lz4") != 0)
		return -EINVAL;
	*seq = v;
	return 0;
}

/* ------------------------------------------------------------------------
 * Writing HEADER and FOOTER frames
 * ------------------------------------------------------------------------ */

int rt_seg_header_frame(struct rt_buf *out, const struct rt_seg_hdrinfo *h,
			const struct rt_cursor *cur, size_t ncur)
{
	size_t host_len = strnlen(h->host, sizeof(h->host));
	size_t total = RT_SEG_FRAME_HDR + SEG_HEADER_FIXED + host_len + ncur * SEG_CURSOR_BYTES;
	uint8_t *f, *w;
	uint32_t u32;
	uint16_t u16;

	if (host_len == 0 || host_len > 255 || total > RT_SEG_MAX_FRAME)
		return -EINVAL;
	if (rt_buf_reserve(out, total))
		return -ENOMEM;
	w = out->p + out->len;
	f = seg_frame_begin(w, total, RT_SEG_HEADER, SEG_HEADER_FIXED);
	memset(f, 0, SEG_HEADER_FIXED);
	u32 = RT_SEG_VERSION;
	memcpy(f, &u32, 4);
	memcpy(f + 4, &h->render_version, 4);
	memcpy(f + 8, h->epoch, 16);
	memcpy(f + 24, &h->first_seq, 8);
	memcpy(f + 32, &h->created_ns, 8);
	memcpy(f + 40, &h->ring_id, 8);
	u32 = (uint32_t)ncur;
	memcpy(f + 48, &u32, 4);
	u16 = (uint16_t)host_len;
	memcpy(f + 52, &u16, 2);
	f += SEG_HEADER_FIXED;
	memcpy(f, h->host, host_len);
	f += host_len;
	for (size_t i = 0; i < ncur; i++)
		f = seg_put_cursor(f, &cur[i]);
	seg_frame_end(w, total);
	out->len += total;
	return 0;
}

int rt_seg_footer_frame(struct rt_buf *out, uint64_t footer_off, uint64_t first_seq,
			uint64_t next_seq, uint64_t tmin, uint64_t tmax, const uint64_t *index_off,
			uint32_t nblocks)
{
	size_t total = RT_SEG_FRAME_HDR + SEG_FOOTER_FIXED + (size_t)nblocks * 8 + SEG_TRAILER;
	uint8_t *f, *w;
	uint32_t u32;

	if (total > RT_SEG_MAX_FRAME)
		return -E2BIG;
	if (rt_buf_reserve(out, total))
		return -ENOMEM;
	w = out->p + out->len;
	f = seg_frame_begin(w, total, RT_SEG_FOOTER, SEG_FOOTER_FIXED);
	memset(f, 0, SEG_FOOTER_FIXED);
	memcpy(f, &nblocks, 4);
	memcpy(f + 8, &first_seq, 8);
	memcpy(f + 16, &next_seq, 8);
	memcpy(f + 24, &tmin, 8);
	memcpy(f + 32, &tmax, 8);
	f += SEG_FOOTER_FIXED;
	if (nblocks)
		memcpy(f, index_off, (size_t)nblocks * 8);
	f += (size_t)nblocks * 8;
	memcpy(f, &footer_off, 8);
	u32 = RT_SEG_TRAILER_MAGIC;
	memcpy(f + 8, &u32, 4);
	seg_frame_end(w, total);
	out->len += total;
	return 0;
}

/* ------------------------------------------------------------------------
 * Reading frames
 * ------------------------------------------------------------------------ */

static int read_at(int fd, void *buf, size_t n, uint64_t off)
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
			return -EBADMSG; /* the file ends early */
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static void set_damage(struct rt_seg *s, uint64_t off, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_damage(struct rt_seg *s, uint64_t off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (s->damaged)
		return;
	s->damaged = 1;
	n = snprintf(s->damage, sizeof(s->damage), "offset %" PRIu64 ": ", off);
	va_start(ap, fmt);
	vsnprintf(s->damage + n, sizeof(s->damage) - (size_t)n, fmt, ap);
	va_end(ap);
}

/* Read the frame at @off (which must end by @limit) into @buf and check
 * it. Sets *total, *kind and *fixed (the kind's fixed part). */
static int read_frame(struct rt_seg *s, uint64_t off, uint64_t limit, struct rt_buf *buf,
		      size_t *total, int *kind, const uint8_t **fixed, const char **why)
{
	uint8_t h[8];
	uint32_t magic, size, rtsg;
	uint16_t fixlen;
	uint64_t sum;
	int err;

	*why = "frame cut short";
	if (off + 8 > limit)
		return -EBADMSG;
	err = read_at(s->fd, h, 8, off);
	if (err)
		return err;
	memcpy(&magic, h, 4);
	memcpy(&size, h + 4, 4);
	*why = "not a ringtail frame";
	if (magic != RT_SEG_SKIP_MAGIC)
		return -EBADMSG;
	*why = "bad frame size";
	if ((size_t)size + 8 < RT_SEG_FRAME_HDR || size > RT_SEG_MAX_FRAME)
		return -EBADMSG;
	*total = (size_t)size + 8;
	*why = "frame cut short";
	if (off + *total > limit)
		return -EBADMSG;
	buf->len = 0;
	if (rt_buf_reserve(buf, *total))
		return -ENOMEM;
	err = read_at(s->fd, buf->p, *total, off);
	if (err)
		return err;
	buf->len = *total;
	memcpy(&rtsg, buf->p + 8, 4);
	memcpy(&fixlen, buf->p + 14, 2);
	memcpy(&sum, buf->p + 16, 8);
	*why = "bad frame header";
	if (rtsg != RT_SEG_MAGIC || buf->p[13] != RT_SEG_VERSION ||
	    RT_SEG_FRAME_HDR + (size_t)fixlen > *total)
		return -EBADMSG;
	*why = "frame checksum mismatch";
	if (seg_frame_sum(buf->p, *total) != sum)
		return -EBADMSG;
	*kind = buf->p[12];
	*fixed = buf->p + RT_SEG_FRAME_HDR;
	*why = "bad fixed part";
	if ((*kind == RT_SEG_HEADER && fixlen != SEG_HEADER_FIXED) ||
	    (*kind == RT_SEG_INDEX && fixlen != SEG_INDEX_FIXED) ||
	    (*kind == RT_SEG_FOOTER && fixlen != SEG_FOOTER_FIXED))
		return -EBADMSG;
	return 0;
}

static int parse_header(struct rt_seg *s, const uint8_t *f, size_t total)
{
	uint32_t ver, ncur;
	uint16_t host_len;
	const uint8_t *p = f + SEG_HEADER_FIXED;

	memcpy(&ver, f, 4);
	memcpy(&s->hdr.render_version, f + 4, 4);
	memcpy(s->hdr.epoch, f + 8, 16);
	memcpy(&s->hdr.first_seq, f + 24, 8);
	memcpy(&s->hdr.created_ns, f + 32, 8);
	memcpy(&s->hdr.ring_id, f + 40, 8);
	memcpy(&ncur, f + 48, 4);
	memcpy(&host_len, f + 52, 2);
	if (ver != RT_SEG_VERSION || host_len == 0 || host_len > 255 ||
	    RT_SEG_FRAME_HDR + SEG_HEADER_FIXED + host_len + (uint64_t)ncur * SEG_CURSOR_BYTES !=
		    total)
		return -EBADMSG;
	memcpy(s->hdr.host, p, host_len);
	s->hdr.host[host_len] = '\0';
	if (memchr(s->hdr.host, '\0', host_len) || memchr(s->hdr.host, '/', host_len))
		return -EBADMSG;
	p += host_len;
	s->hdr_ncursor = ncur;
	if (ncur) {
		s->hdr_cursor = calloc(ncur, sizeof(*s->hdr_cursor));
		if (!s->hdr_cursor)
			return -ENOMEM;
		for (uint32_t i = 0; i < ncur; i++)
			p = seg_get_cursor(p, &s->hdr_cursor[i]);
	}
	return 0;
}

void rt_seg_block_free(struct rt_seg_block *b)
{
	free(b->svc);
	free(b->bloom);
	free(b->cursor);
	memset(b, 0, sizeof(*b));
}

/* Parse an INDEX frame's fixed and variable parts. @off is where the frame
 * is in its file; UINT64_MAX for a frame that is not in one (received). */
static int parse_index(const uint8_t *f, size_t total, uint64_t off, struct rt_seg_block *b)
{
	const uint8_t *p = f + SEG_INDEX_FIXED, *end = f + total - RT_SEG_FRAME_HDR;
	uint32_t i;

	memset(b, 0, sizeof(*b));
	memcpy(&b->block_no, f, 4);
	memcpy(&b->nrec, f + 4, 4);
	memcpy(&b->first_seq, f + 8, 8);
	memcpy(&b->tmin, f + 16, 8);
	memcpy(&b->tmax, f + 24, 8);
	memcpy(&b->data_off, f + 32, 8);
	memcpy(&b->data_len, f + 40, 4);
	memcpy(&b->body_len, f + 44, 4);
	memcpy(&b->data_sum, f + 48, 8);
	memcpy(&b->ring_id, f + 56, 8);
	memcpy(&b->render_version, f + 64, 4);
	memcpy(&b->nsvc, f + 68, 4);
	memcpy(&b->bloom_bits, f + 72, 4);
	memcpy(&b->ncursor, f + 76, 4);
	b->index_off = off;
	b->index_len = (uint32_t)total;
	if (b->nrec == 0 || b->tmin > b->tmax ||
	    (off != UINT64_MAX && b->data_off != off + total) || b->data_len == 0 ||
	    b->nsvc == 0 || b->nsvc > 65535 || (b->bloom_bits & 63) || b->bloom_bits > (1u << 19) ||
	    b->first_seq + b->nrec < b->first_seq)
		return -EBADMSG;
	b->svc = calloc(b->nsvc, sizeof(*b->svc));
	if (!b->svc)
		return -ENOMEM;
	for (i = 0; i < b->nsvc; i++) {
		uint8_t l;
		if (p >= end)
			return -EBADMSG;
		l = *p++;
		if (l == 0 || l > RT_SERVICE_MAX || (size_t)(end - p) < l + 12u * RT_SEV_CLASSES ||
		    !rt_service_valid((const char *)p, l))
			return -EBADMSG;
		memcpy(b->svc[i].name, p, l);
		b->svc[i].name_len = l;
		p += l;
		memcpy(b->svc[i].count, p, 4 * RT_SEV_CLASSES);
		p += 4 * RT_SEV_CLASSES;
		memcpy(b->svc[i].bytes, p, 8 * RT_SEV_CLASSES);
		p += 8 * RT_SEV_CLASSES;
	}
	if ((size_t)(end - p) != b->bloom_bits / 8 + (size_t)b->ncursor * SEG_CURSOR_BYTES)
		return -EBADMSG;
	if (b->bloom_bits) {
		b->bloom = malloc(b->bloom_bits / 8);
		if (!b->bloom)
			return -ENOMEM;
		memcpy(b->bloom, p, b->bloom_bits / 8);
		p += b->bloom_bits / 8;
	}
	if (b->ncursor) {
		b->cursor = calloc(b->ncursor, sizeof(*b->cursor));
		if (!b->cursor)
			return -ENOMEM;
		for (i = 0; i < b->ncursor; i++)
			p = seg_get_cursor(p, &b->cursor[i]);
	}
	return 0;
}

static int push_block(struct rt_seg *s, struct rt_seg_block *b)
{
	if ((s->nblocks & (s->nblocks - 1)) == 0) { /* grow at powers of two */
		size_t cap = s->nblocks ? (size_t)s->nblocks * 2 : 16;
		struct rt_seg_block *nb = realloc(s->blocks, cap * sizeof(*nb));
		if (!nb)
			return -ENOMEM;
		s->blocks = nb;
	}
	s->blocks[s->nblocks++] = *b;
	s->next_seq = b->first_seq + b->nrec;
	if (s->nblocks == 1 || b->tmin < s->tmin)
		s->tmin = b->tmin;
	if (b->tmax > s->tmax)
		s->tmax = b->tmax;
	if (s->next_seq > s->seq_ceiling)
		s->seq_ceiling = s->next_seq;
	return 0;
}

static int check_data(struct rt_seg *s, const struct rt_seg_block *b, struct rt_buf *tmp)
{
	int err;

	tmp->len = 0;
	if (rt_buf_reserve(tmp, b->data_len))
		return -ENOMEM;
	err = read_at(s->fd, tmp->p, b->data_len, b->data_off);
	if (err)
		return err;
	return XXH3_64bits(tmp->p, b->data_len) == b->data_sum ? 0 : -EBADMSG;
}

/* Scan frames from s->valid_end up to @limit, adding valid blocks. */
static int scan(struct rt_seg *s, uint64_t limit, unsigned flags)
{
	struct rt_buf buf = {0}, tmp = {0};
	uint64_t off = s->valid_end;
	int added = 0, err = 0;

	while (off < limit) {
		const uint8_t *fixed;
		const char *why;
		size_t total;
		int kind, r;

		r = read_frame(s, off, limit, &buf, &total, &kind, &fixed, &why);
		if (r == -ENOMEM || r == -EIO) {
			err = r;
			break;
		}
		if (r) {
			set_damage(s, off, "%s", why);
			break;
		}
		if (kind == RT_SEG_INDEX) {
			struct rt_seg_block b;
			r = parse_index(fixed, total, off, &b);
			if (r) {
				rt_seg_block_free(&b);
				if (r == -ENOMEM) {
					err = r;
					break;
				}
				set_damage(s, off, "block %u: malformed index", s->nblocks);
				break;
			}
			if (b.first_seq + b.nrec > s->seq_ceiling)
				s->seq_ceiling = b.first_seq + b.nrec;
			if (b.block_no != s->nblocks || b.first_seq != s->next_seq) {
				set_damage(s, off, "block %u: out of place (number %u, sequence %" PRIu64
					   ", expected %" PRIu64 ")",
					   s->nblocks, b.block_no, b.first_seq, s->next_seq);
				rt_seg_block_free(&b);
				break;
			}
			if (b.data_off + b.data_len > limit) {
				set_damage(s, off, "block %u: data frame cut short", s->nblocks);
				rt_seg_block_free(&b);
				break;
			}
			if (flags & RT_SEG_VERIFY) {
				r = check_data(s, &b, &tmp);
				if (r) {
					rt_seg_block_free(&b);
					if (r == -ENOMEM || r == -EIO) {
						err = r;
						break;
					}
					set_damage(s, b.data_off, "block %u: data checksum mismatch",
						   s->nblocks);
					break;
				}
			}
			r = push_block(s, &b);
			if (r) {
				rt_seg_block_free(&b);
				err = r;
				break;
			}
			off = b.data_off + b.data_len;
			s->valid_end = off;
			added++;
			continue;
		}
		if (kind == RT_SEG_FOOTER) {
			uint32_t nb;
			uint64_t first, next, foff;
			memcpy(&nb, fixed, 4);
			memcpy(&first, fixed + 8, 8);
			memcpy(&next, fixed + 16, 8);
			memcpy(&foff, buf.p + total - SEG_TRAILER, 8);
			r = nb != s->nblocks || first != s->hdr.first_seq || next != s->next_seq ||
			    foff != off ||
			    total != RT_SEG_FRAME_HDR + SEG_FOOTER_FIXED + (size_t)nb * 8 + SEG_TRAILER;
			for (uint32_t i = 0; !r && i < nb; i++) {
				uint64_t io;
				memcpy(&io, fixed + SEG_FOOTER_FIXED + 8 * i, 8);
				r = io != s->blocks[i].index_off;
			}
			if (r) {
				set_damage(s, off, "footer does not match the blocks");
				break;
			}
			s->closed = 1;
			off += total;
			s->valid_end = off;
			if (off != s->size)
				set_damage(s, off, "data after the footer");
			break;
		}
		set_damage(s, off, "unexpected frame (kind %d)", kind);
		break;
	}
	rt_buf_free(&buf);
	rt_buf_free(&tmp);
	return err ? err : added;
}

/* A closed segment: its footer lists every INDEX frame. 0 if the footer is
 * there and agrees with everything, else nonzero (and nothing changed). */
static int from_footer(struct rt_seg *s)
{
	struct rt_buf buf = {0}, ib = {0};
	uint8_t tr[SEG_TRAILER];
	uint64_t foff, off = s->valid_end, next = s->hdr.first_seq;
	const uint8_t *fixed, *ifixed;
	const char *why;
	size_t total, itotal;
	uint32_t magic, nb, i;
	int kind, ikind, bad = 1;

	if (s->size < s->valid_end + RT_SEG_FRAME_HDR + SEG_FOOTER_FIXED + SEG_TRAILER ||
	    read_at(s->fd, tr, SEG_TRAILER, s->size - SEG_TRAILER))
		return 1;
	memcpy(&foff, tr, 8);
	memcpy(&magic, tr + 8, 4);
	if (magic != RT_SEG_TRAILER_MAGIC || foff < s->valid_end || foff >= s->size)
		return 1;
	if (read_frame(s, foff, s->size, &buf, &total, &kind, &fixed, &why) ||
	    kind != RT_SEG_FOOTER || foff + total != s->size)
		goto out;
	memcpy(&nb, fixed, 4);
	if (total != RT_SEG_FRAME_HDR + SEG_FOOTER_FIXED + (size_t)nb * 8 + SEG_TRAILER)
		goto out;
	for (i = 0; i < nb; i++) {
		struct rt_seg_block b;
		uint64_t io;
		memcpy(&io, fixed + SEG_FOOTER_FIXED + 8 * i, 8);
		if (io != off || read_frame(s, io, foff, &ib, &itotal, &ikind, &ifixed, &why) ||
		    ikind != RT_SEG_INDEX)
			goto undo;
		if (parse_index(ifixed, itotal, io, &b) || b.block_no != i || b.first_seq != next ||
		    b.data_off + b.data_len > foff || push_block(s, &b)) {
			rt_seg_block_free(&b);
			goto undo;
		}
		next = b.first_seq + b.nrec;
		off = b.data_off + b.data_len;
	}
	{
		uint64_t first, nxt;
		memcpy(&first, fixed + 8, 8);
		memcpy(&nxt, fixed + 16, 8);
		if (off != foff || first != s->hdr.first_seq || nxt != next)
			goto undo;
	}
	s->closed = 1;
	s->valid_end = s->size;
	bad = 0;
	goto out;
undo:
	for (i = 0; i < s->nblocks; i++)
		rt_seg_block_free(&s->blocks[i]);
	s->nblocks = 0;
	s->next_seq = s->seq_ceiling = s->hdr.first_seq;
out:
	rt_buf_free(&buf);
	rt_buf_free(&ib);
	return bad;
}

int rt_seg_open_fd(int fd, unsigned flags, uint64_t limit, struct rt_seg **out)
{
	struct rt_buf buf = {0};
	struct rt_seg *s;
	struct stat st;
	const uint8_t *fixed;
	const char *why;
	size_t total;
	int kind, err;

	if (fstat(fd, &st) < 0)
		return -errno;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = fd;
	s->size = (uint64_t)st.st_size;
	if (limit && limit < s->size)
		s->size = limit;
	err = read_frame(s, 0, s->size, &buf, &total, &kind, &fixed, &why);
	if (err == 0 && kind != RT_SEG_HEADER) {
		why = "the first frame is not a header";
		err = -EBADMSG;
	}
	if (err == 0) {
		err = parse_header(s, fixed, total);
		why = "malformed header";
	}
	rt_buf_free(&buf);
	if (err) {
		set_damage(s, 0, "%s", why);
		rt_seg_close(s);
		return err == -ENOMEM || err == -EIO ? err : -EBADMSG;
	}
	s->valid_end = total;
	s->next_seq = s->seq_ceiling = s->hdr.first_seq;
	if ((flags & (RT_SEG_VERIFY | RT_SEG_NOFOOTER)) || from_footer(s) != 0) {
		err = scan(s, s->size, flags);
		if (err < 0) {
			rt_seg_close(s);
			return err;
		}
	}
	*out = s;
	return 0;
}

int rt_seg_open(int dirfd, const char *name, unsigned flags, struct rt_seg **out)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), err;

	if (fd < 0)
		return -errno;
	err = rt_seg_open_fd(fd, flags, 0, out);
	if (err) {
		close(fd);
		return err;
	}
	(*out)->own_fd = 1;
	return 0;
}

void rt_seg_close(struct rt_seg *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->nblocks; i++)
		rt_seg_block_free(&s->blocks[i]);
	free(s->blocks);
	free(s->hdr_cursor);
	if (s->own_fd)
		close(s->fd);
	free(s);
}

int rt_seg_refresh(struct rt_seg *s, uint64_t limit, unsigned flags)
{
	struct stat st;

	if (s->closed)
		return 0;
	if (fstat(s->fd, &st) < 0)
		return -errno;
	s->size = (uint64_t)st.st_size;
	if (limit && limit < s->size)
		s->size = limit;
	/* A frame cut short at the end may still be being written: look
	 * again from the same place next time. */
	s->damaged = 0;
	s->damage[0] = '\0';
	return scan(s, s->size, flags);
}

int rt_seg_parse_index(const uint8_t *frame, size_t len, struct rt_seg_block *b)
{
	uint32_t magic, size, rtsg;
	uint16_t fixlen;
	uint64_t sum;
	int err;

	memset(b, 0, sizeof(*b));
	if (len < RT_SEG_FRAME_HDR + SEG_INDEX_FIXED || len > RT_SEG_MAX_FRAME)
		return -EBADMSG;
	memcpy(&magic, frame, 4);
	memcpy(&size, frame + 4, 4);
	memcpy(&rtsg, frame + 8, 4);
	memcpy(&fixlen, frame + 14, 2);
	memcpy(&sum, frame + 16, 8);
	if (magic != RT_SEG_SKIP_MAGIC || (size_t)size + 8 != len || rtsg != RT_SEG_MAGIC ||
	    frame[12] != RT_SEG_INDEX || frame[13] != RT_SEG_VERSION || fixlen != SEG_INDEX_FIXED ||
	    seg_frame_sum(frame, len) != sum)
		return -EBADMSG;
	err = parse_index(frame + RT_SEG_FRAME_HDR, len, UINT64_MAX, b);
	if (err)
		rt_seg_block_free(b);
	return err;
}

size_t rt_seg_index_len(const struct rt_seg_block *b)
{
	size_t total = RT_SEG_FRAME_HDR + SEG_INDEX_FIXED + (size_t)b->bloom_bits / 8;

	for (uint32_t i = 0; i < b->nsvc; i++)
		total += 1 + b->svc[i].name_len + 12 * RT_SEV_CLASSES;
	return total;
}

int rt_seg_index_frame(struct rt_buf *out, const struct rt_seg_block *b, uint32_t block_no,
		       uint64_t data_off)
{
	size_t total = rt_seg_index_len(b);
	uint8_t *w, *f;
	uint64_t u64 = 0;
	uint32_t u32 = 0;

	if (total > RT_SEG_MAX_FRAME)
		return -E2BIG;
	if (rt_buf_reserve(out, total))
		return -ENOMEM;
	w = out->p + out->len;
	f = seg_frame_begin(w, total, RT_SEG_INDEX, SEG_INDEX_FIXED);
	memset(f, 0, SEG_INDEX_FIXED);
	memcpy(f + 0, &block_no, 4);
	memcpy(f + 4, &b->nrec, 4);
	memcpy(f + 8, &b->first_seq, 8);
	memcpy(f + 16, &b->tmin, 8);
	memcpy(f + 24, &b->tmax, 8);
	memcpy(f + 32, &data_off, 8);
	memcpy(f + 40, &b->data_len, 4);
	memcpy(f + 44, &b->body_len, 4);
	memcpy(f + 48, &b->data_sum, 8);
	memcpy(f + 56, &u64, 8); /* ring id: none */
	memcpy(f + 64, &b->render_version, 4);
	memcpy(f + 68, &b->nsvc, 4);
	memcpy(f + 72, &b->bloom_bits, 4);
	memcpy(f + 76, &u32, 4); /* no cursor entries */
	f += SEG_INDEX_FIXED;
	for (uint32_t i = 0; i < b->nsvc; i++) {
		*f++ = b->svc[i].name_len;
		memcpy(f, b->svc[i].name, b->svc[i].name_len);
		f += b->svc[i].name_len;
		memcpy(f, b->svc[i].count, 4 * RT_SEV_CLASSES);
		f += 4 * RT_SEV_CLASSES;
		memcpy(f, b->svc[i].bytes, 8 * RT_SEV_CLASSES);
		f += 8 * RT_SEV_CLASSES;
	}
	if (b->bloom_bits)
		memcpy(f, b->bloom, b->bloom_bits / 8);
	seg_frame_end(w, total);
	out->len += total;
	return 0;
}

/* ------------------------------------------------------------------------
 * Salvage: reading a segment whole, past its damage
 * ------------------------------------------------------------------------ */

enum { AT_NONE, AT_BLOCK, AT_BADDATA, AT_FOOTER, AT_STALE };

struct salvage {
	struct rt_seg *s;
	uint64_t limit;
	struct rt_buf buf, tmp;
	struct rt_seg_piece *p;
	uint32_t np, cap;
	/* Where the next block must come after (number, sequence): the last
	 * block whose INDEX frame checked, whether its DATA did or not. */
	int64_t last_no;
	uint64_t last_next;
	/* Bytes a search after damage may still read (checksums included):
	 * a file full of things that look like frames cannot make recovery
	 * read it over and over. */
	uint64_t budget;
};

static int add_piece(struct salvage *v, int kind, uint64_t off, uint64_t end)
{
	struct rt_seg_piece *q;

	if (v->np == v->cap) {
		uint32_t cap = v->cap ? v->cap * 2 : 16;
		q = realloc(v->p, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		v->p = q;
		v->cap = cap;
	}
	q = &v->p[v->np++];
	memset(q, 0, sizeof(*q));
	q->kind = kind;
	q->off = off;
	q->end = end;
	q->block = UINT32_MAX;
	return 0;
}

/* Does the footer frame in v->buf (at @off, @total bytes) list exactly the
 * blocks found so far and end the file? */
static int footer_fits(struct salvage *v, const uint8_t *fixed, size_t total, uint64_t off)
{
	struct rt_seg *s = v->s;
	uint64_t first, next, foff;
	uint32_t nb;

	memcpy(&nb, fixed, 4);
	memcpy(&first, fixed + 8, 8);
	memcpy(&next, fixed + 16, 8);
	memcpy(&foff, v->buf.p + total - SEG_TRAILER, 8);
	if (s->hdr_bad || nb != s->nblocks || first != s->hdr.first_seq || next != s->next_seq ||
	    foff != off || off + total != v->limit ||
	    total != RT_SEG_FRAME_HDR + SEG_FOOTER_FIXED + (size_t)nb * 8 + SEG_TRAILER)
		return 0;
	for (uint32_t i = 0; i < nb; i++) {
		uint64_t io;
		memcpy(&io, fixed + SEG_FOOTER_FIXED + 8 * i, 8);
		if (io != s->blocks[i].index_off)
			return 0;
	}
	return 1;
}

/*
 * What starts at @off: a valid block that may come after the blocks found so
 * far (AT_BLOCK, *b filled), a block whose INDEX frame checks but whose DATA
 * does not (AT_BADDATA, *b filled), the footer of exactly the blocks found
 * (AT_FOOTER), another footer (AT_STALE), or nothing (AT_NONE, *why, and
 * *cut when a frame runs past the end). *end is where the piece ends.
 */
static int salvage_at(struct salvage *v, uint64_t off, int searching, struct rt_seg_block *b,
		      uint64_t *end, const char **why, int *cut, uint64_t *claim)
{
	struct rt_seg *s = v->s;
	const uint8_t *fixed;
	size_t total;
	int kind, r;

	*cut = 0;
	*claim = 0;
	r = read_frame(s, off, v->limit, &v->buf, &total, &kind, &fixed, why);
	if (r == -ENOMEM || r == -EIO)
		return r;
	if (r) {
		*cut = !strcmp(*why, "frame cut short");
		return AT_NONE;
	}
	*end = off + total;
	if (kind == RT_SEG_FOOTER)
		return footer_fits(v, fixed, total, off) ? AT_FOOTER : AT_STALE;
	if (kind != RT_SEG_INDEX) {
		*why = kind == RT_SEG_HEADER ? "a second header" : "unexpected frame kind";
		return AT_NONE;
	}
	r = parse_index(fixed, total, off, b);
	if (r) {
		rt_seg_block_free(b);
		if (r == -ENOMEM)
			return r;
		*why = "malformed index";
		return AT_NONE;
	}
	/* Numbers a readable INDEX frame claims are never handed out again;
	 * not so for a frame a search found that is not taken (it may be
	 * bytes inside a DATA frame), nor for a block the end of the file
	 * cuts short (a write that may never have completed: the caller
	 * decides, from *claim). */
	*claim = b->first_seq + b->nrec;
	if (b->data_off + b->data_len > v->limit && (int64_t)b->block_no > v->last_no &&
	    b->first_seq >= v->last_next) {
		rt_seg_block_free(b);
		*why = "data frame cut short";
		*cut = 1;
		return AT_NONE;
	}
	if (!searching && b->first_seq + b->nrec > s->seq_ceiling)
		s->seq_ceiling = b->first_seq + b->nrec;
	if ((int64_t)b->block_no <= v->last_no || b->first_seq < v->last_next) {
		rt_seg_block_free(b);
		*why = "block out of place";
		return AT_NONE;
	}
	if (b->data_off + b->data_len > v->limit) {
		rt_seg_block_free(b);
		*why = "data frame cut short";
		*cut = 1;
		return AT_NONE;
	}
	*end = b->data_off + b->data_len;
	r = check_data(s, b, &v->tmp);
	if (r == -ENOMEM || r == -EIO) {
		rt_seg_block_free(b);
		return r;
	}
	return r ? AT_BADDATA : AT_BLOCK;
}

/* The next offset after @from where salvage_at() finds a block, a block
 * with bad data, or the blocks' footer; v->limit if there is none. */
static int resync(struct salvage *v, uint64_t from, uint64_t *at)
{
	static const uint8_t magic[4] = {0x5e, 0x2a, 0x4d, 0x18}; /* RT_SEG_SKIP_MAGIC, LE */
	uint8_t chunk[65536 + 3];
	uint64_t off = from + 1;

	*at = v->limit;
	while (off + RT_SEG_FRAME_HDR <= v->limit && v->budget > 0) {
		size_t want = sizeof(chunk);
		ssize_t n;
		if (want > v->limit - off)
			want = (size_t)(v->limit - off);
		n = pread(v->s->fd, chunk, want, (off_t)off);
		if (n < 0)
			return -EIO;
		if (n < 4)
			break;
		for (ssize_t i = 0; i + 4 <= n; i++) {
			struct rt_seg_block b;
			const char *why;
			uint64_t end, at_i;
			uint8_t h[RT_SEG_FRAME_HDR];
			uint16_t fixlen;
			uint64_t claim;
			int r, cut;
			const uint8_t *q = memchr(chunk + i, magic[0], (size_t)(n - 3 - i));
			if (!q)
				break;
			i = q - chunk;
			if (q[1] != magic[1] || q[2] != magic[2] || q[3] != magic[3])
				continue;
			at_i = off + (uint64_t)i;
			/* Cheap checks first: a ringtail frame of a kind that
			 * can follow damage. */
			if (at_i + RT_SEG_FRAME_HDR > v->limit ||
			    read_at(v->s->fd, h, sizeof(h), at_i) != 0)
				continue;
			memcpy(&fixlen, h + 14, 2);
			{
				uint32_t rtsg;
				memcpy(&rtsg, h + 8, 4);
				if (rtsg != RT_SEG_MAGIC || h[13] != RT_SEG_VERSION ||
				    !((h[12] == RT_SEG_INDEX && fixlen == SEG_INDEX_FIXED) ||
				      (h[12] == RT_SEG_FOOTER && fixlen == SEG_FOOTER_FIXED)))
					continue;
			}
			{
				uint32_t size;
				memcpy(&size, h + 4, 4);
				if ((uint64_t)size + 8 > v->budget) {
					v->budget = 0;
					return 0;
				}
				v->budget -= (uint64_t)size + 8;
			}
			memset(&b, 0, sizeof(b));
			r = salvage_at(v, at_i, 1, &b, &end, &why, &cut, &claim);
			if (r < 0)
				return r;
			if (r == AT_BLOCK || r == AT_BADDATA) {
				/* A block found this way is taken only if what
				 * follows it is a frame too (or the end, or a frame
				 * the end cuts short): a frame-like run of bytes
				 * inside a DATA frame is followed by the rest of
				 * that frame. */
				int64_t no = v->last_no;
				uint64_t nx = v->last_next, end2;
				struct rt_seg_block b2;
				int r2 = AT_BLOCK, cut2 = 0;
				if (v->budget > b.data_len)
					v->budget -= b.data_len;
				else
					v->budget = 0;
				v->last_no = b.block_no;
				v->last_next = b.first_seq + b.nrec;
				rt_seg_block_free(&b);
				if (end < v->limit) {
					memset(&b2, 0, sizeof(b2));
					r2 = salvage_at(v, end, 1, &b2, &end2, &why, &cut2, &claim);
					if (r2 == AT_BLOCK || r2 == AT_BADDATA)
						rt_seg_block_free(&b2);
				}
				v->last_no = no;
				v->last_next = nx;
				if (r2 < 0)
					return r2;
				if (r2 == AT_NONE && !cut2)
					continue;
			}
			if (r == AT_BLOCK || r == AT_BADDATA || r == AT_FOOTER) {
				*at = at_i;
				return 0;
			}
		}
		if ((size_t)n < want)
			break;
		off += (uint64_t)n - 3; /* a magic may straddle two reads */
	}
	return 0;
}

int rt_seg_salvage(int fd, uint64_t name_seq, uint64_t limit, struct rt_seg **out,
		   struct rt_seg_piece **pieces, uint32_t *npieces)
{
	struct salvage v;
	struct rt_seg *s;
	struct stat st;
	const uint8_t *fixed;
	const char *why;
	size_t total;
	uint64_t off = 0;
	int kind, err;

	*out = NULL;
	*pieces = NULL;
	*npieces = 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	memset(&v, 0, sizeof(v));
	v.s = s;
	s->fd = fd;
	s->size = (uint64_t)st.st_size;
	if (limit && limit < s->size)
		s->size = limit;
	v.limit = s->size;
	v.last_no = -1;
	v.budget = 4 * s->size + (64ull << 20);

	err = read_frame(s, 0, v.limit, &v.buf, &total, &kind, &fixed, &why);
	if (err == -ENOMEM || err == -EIO)
		goto fail;
	if (err == 0 && kind == RT_SEG_HEADER) {
		err = parse_header(s, fixed, total);
		if (err == -ENOMEM)
			goto fail;
	} else if (err == 0) {
		err = -EBADMSG;
	}
	if (err) {
		free(s->hdr_cursor);
		s->hdr_cursor = NULL;
		s->hdr_ncursor = 0;
		memset(&s->hdr, 0, sizeof(s->hdr));
		s->hdr_bad = 1;
		s->hdr.first_seq = name_seq;
	} else {
		off = total;
		if ((err = add_piece(&v, RT_PIECE_HEADER, 0, total)) != 0)
			goto fail;
	}
	s->valid_end = off;
	s->next_seq = s->seq_ceiling = s->hdr.first_seq;
	v.last_next = s->hdr.first_seq;

	while (off < v.limit) {
		struct rt_seg_block b;
		uint64_t end = off, at, claim;
		int r, cut;

		memset(&b, 0, sizeof(b));
		r = salvage_at(&v, off, 0, &b, &end, &why, &cut, &claim);
		if (r < 0) {
			err = r;
			goto fail;
		}
		if (r == AT_BLOCK) {
			if ((err = add_piece(&v, RT_PIECE_BLOCK, off, end)) != 0 ||
			    (err = push_block(s, &b)) != 0) {
				rt_seg_block_free(&b);
				goto fail;
			}
			v.p[v.np - 1].block = s->nblocks - 1;
			v.last_no = b.block_no;
			v.last_next = b.first_seq + b.nrec;
			if (!s->damaged)
				s->valid_end = end;
			off = end;
			continue;
		}
		if (r == AT_BADDATA) {
			if ((err = add_piece(&v, RT_PIECE_DAMAGE, off, end)) != 0) {
				rt_seg_block_free(&b);
				goto fail;
			}
			v.p[v.np - 1].block = b.block_no;
			v.p[v.np - 1].first_seq = b.first_seq;
			v.p[v.np - 1].nrec = b.nrec;
			v.p[v.np - 1].claim = claim;
			snprintf(v.p[v.np - 1].why, sizeof(v.p[0].why), "block %u: data checksum mismatch",
				 b.block_no);
			set_damage(s, off, "block %u (records #%" PRIu64 " to #%" PRIu64
				   "): data checksum mismatch",
				   b.block_no, b.first_seq, b.first_seq + b.nrec - 1);
			v.last_no = b.block_no;
			v.last_next = b.first_seq + b.nrec;
			rt_seg_block_free(&b);
			off = end;
			continue;
		}
		if (r == AT_FOOTER || r == AT_STALE) {
			if ((err = add_piece(&v, r == AT_FOOTER ? RT_PIECE_FOOTER : RT_PIECE_STALE, off,
					     end)) != 0)
				goto fail;
			if (r == AT_FOOTER)
				s->closed = 1;
			off = end;
			continue;
		}
		/* Damage: it lasts up to the next frame worth having. */
		{
			char w[80];
			snprintf(w, sizeof(w), "%s", why);
			if ((err = resync(&v, off, &at)) != 0)
				goto fail;
			if ((err = add_piece(&v, RT_PIECE_DAMAGE, off, at)) != 0)
				goto fail;
			v.p[v.np - 1].torn = cut && at == v.limit;
			v.p[v.np - 1].claim = claim;
			if (!v.p[v.np - 1].torn && claim > s->seq_ceiling)
				s->seq_ceiling = claim;
			snprintf(v.p[v.np - 1].why, sizeof(v.p[0].why), "%s", w);
			set_damage(s, off, "%s", w);
			off = at;
		}
	}
	if (s->closed && s->damaged)
		s->closed = 0; /* a footer can only fit a file without damage */
	rt_buf_free(&v.buf);
	rt_buf_free(&v.tmp);
	*out = s;
	*pieces = v.p;
	*npieces = v.np;
	return 0;
fail:
	rt_buf_free(&v.buf);
	rt_buf_free(&v.tmp);
	free(v.p);
	rt_seg_close(s);
	return err;
}

void rt_seg_piece_what(const struct rt_seg *sv, const struct rt_seg_piece *p, uint32_t np,
		     uint32_t i, uint64_t tail_next, char *out, size_t n)
{
	int64_t prev_no = -1, next_no = -1;
	uint64_t from = sv->hdr.first_seq, to = tail_next;
	const char *head = i == 0 && sv->hdr_bad ? "the header and " : "";

	if (p[i].block != UINT32_MAX) {
		snprintf(out, n, "block %u, records #%" PRIu64 " to #%" PRIu64, p[i].block,
			 p[i].first_seq, p[i].first_seq + p[i].nrec - 1);
		return;
	}
	for (uint32_t k = i; k-- > 0;) {
		if (p[k].kind == RT_PIECE_BLOCK) {
			prev_no = sv->blocks[p[k].block].block_no;
			from = sv->blocks[p[k].block].first_seq + sv->blocks[p[k].block].nrec;
			break;
		}
		if (p[k].kind == RT_PIECE_DAMAGE && p[k].block != UINT32_MAX) {
			prev_no = p[k].block;
			from = p[k].first_seq + p[k].nrec;
			break;
		}
	}
	for (uint32_t k = i + 1; k < np; k++) {
		if (p[k].kind == RT_PIECE_BLOCK) {
			next_no = sv->blocks[p[k].block].block_no;
			to = sv->blocks[p[k].block].first_seq;
			break;
		}
		if (p[k].kind == RT_PIECE_DAMAGE && p[k].block != UINT32_MAX) {
			next_no = p[k].block;
			to = p[k].first_seq;
			break;
		}
	}
	if (to <= from) {
		snprintf(out, n, "%sno records", i == 0 && sv->hdr_bad ? "the header, " : "");
	} else if (next_no < 0) {
		snprintf(out, n, "%sblock %" PRId64 " and after, records #%" PRIu64 " to #%" PRIu64,
			 head, prev_no + 1, from, to - 1);
	} else if (next_no - prev_no == 2) {
		snprintf(out, n, "%sblock %" PRId64 ", records #%" PRIu64 " to #%" PRIu64, head,
			 prev_no + 1, from, to - 1);
	} else {
		snprintf(out, n, "%sblocks %" PRId64 " to %" PRId64 ", records #%" PRIu64
			 " to #%" PRIu64,
			 head, prev_no + 1, next_no - 1, from, to - 1);
	}
}

int rt_seg_reindex(uint8_t *frame, size_t len, uint32_t block_no, uint64_t data_off)
{
	uint32_t size;
	uint16_t fixlen;

	if (len < RT_SEG_FRAME_HDR + SEG_INDEX_FIXED)
		return -EBADMSG;
	memcpy(&size, frame + 4, 4);
	memcpy(&fixlen, frame + 14, 2);
	if ((size_t)size + 8 != len || frame[12] != RT_SEG_INDEX || fixlen != SEG_INDEX_FIXED)
		return -EBADMSG;
	memcpy(frame + RT_SEG_FRAME_HDR, &block_no, 4);
	memcpy(frame + RT_SEG_FRAME_HDR + 32, &data_off, 8);
	seg_frame_end(frame, len);
	return 0;
}

int rt_seg_probe(struct rt_seg *s, uint64_t from)
{
	static const uint8_t magic[4] = {0x5e, 0x2a, 0x4d, 0x18}; /* RT_SEG_SKIP_MAGIC, LE */
	struct rt_buf buf = {0};
	uint8_t chunk[65536 + 3];
	struct stat st;
	uint64_t off = from, size;
	int found = 0;

	if (fstat(s->fd, &st) < 0)
		return -errno;
	size = (uint64_t)st.st_size;
	while (!found && off < size) {
		ssize_t n = pread(s->fd, chunk, sizeof(chunk), (off_t)off);
		if (n <= 0)
			break;
		for (ssize_t i = 0; !found && i + 4 <= n; i++) {
			const uint8_t *fixed;
			const char *why;
			size_t total;
			int kind;
			if (memcmp(chunk + i, magic, 4) || (off == from && i == 0))
				continue;
			if (read_frame(s, off + (uint64_t)i, size, &buf, &total, &kind, &fixed, &why) ==
			    0)
				found = 1;
		}
		if (n < (ssize_t)sizeof(chunk))
			break;
		off += (uint64_t)n - 3; /* a magic may straddle two reads */
	}
	rt_buf_free(&buf);
	return found;
}

/*
 * What a thread keeps from one read to the next: a decompression context and
 * the buffer the compressed bytes are read into. Made on a thread's first
 * read, freed when the thread ends (the filesystem's and the central's
 * threads come and go).
 */
struct scratch {
	LZ4F_dctx *dctx;
	struct rt_buf data;
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_err;
static __thread struct scratch *scratch_tls;

static void scratch_free(void *p)
{
	struct scratch *sc = p;

	if (sc->dctx)
		LZ4F_freeDecompressionContext(sc->dctx);
	rt_buf_free(&sc->data);
	free(sc);
}

static void scratch_key_make(void)
{
	scratch_key_err = pthread_key_create(&scratch_key, scratch_free);
}

static struct scratch *scratch(void)
{
	struct scratch *sc = scratch_tls;

	if (sc)
		return sc;
	pthread_once(&scratch_once, scratch_key_make);
	if (scratch_key_err)
		return NULL;
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return NULL;
	if (LZ4F_isError(LZ4F_createDecompressionContext(&sc->dctx, LZ4F_VERSION))) {
		free(sc);
		return NULL;
	}
	if (pthread_setspecific(scratch_key, sc)) {
		scratch_free(sc);
		return NULL;
	}
	scratch_tls = sc;
	return sc;
}

int rt_block_inflate(const uint8_t *data, uint32_t data_len, uint32_t body_len,
		     struct rt_buf *body)
{
	struct scratch *sc = scratch();
	LZ4F_decompressOptions_t opt;
	size_t dst = body_len, src = data_len, r;

	if (!sc)
		return -ENOMEM;
	body->len = 0;
	if (rt_buf_reserve(body, body_len))
		return -ENOMEM;
	LZ4F_resetDecompressionContext(sc->dctx);
	/* The caller compared the XXH3-64 of every compressed byte with the
	 * INDEX frame: LZ4's own XXH32 checks would only repeat it. The output
	 * buffer is stable and whole, so LZ4 can write straight to it. */
	memset(&opt, 0, sizeof(opt));
	opt.stableDst = 1;
	opt.skipChecksums = 1;
	r = LZ4F_decompress(sc->dctx, body->p, &dst, data, &src, &opt);
	if (LZ4F_isError(r) || r != 0 || dst != body_len || src != data_len)
		return -EBADMSG;
	body->len = dst;
	return 0;
}

int rt_seg_read_body(struct rt_seg *s, uint32_t i, struct rt_buf *body)
{
	struct scratch *sc = scratch();
	const struct rt_seg_block *b;
	int err;

	if (i >= s->nblocks)
		return -EINVAL;
	if (!sc)
		return -ENOMEM;
	b = &s->blocks[i];
	err = check_data(s, b, &sc->data);
	if (err)
		return err;
	return rt_block_inflate(sc->data.p, b->data_len, b->body_len, body);
}
