/* SPDX-License-Identifier: MIT */
/*
 * recover.c - make a spool safe to write to after whatever stopped the last
 * ringtaild: check the segments, cut the last one back to its valid prefix,
 * and work out the next sequence number and the durable ring positions.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rtspool.h"

static void say(rt_log_fn log, void *arg, int sev, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void say(rt_log_fn log, void *arg, int sev, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (!log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log(arg, sev, buf);
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

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

void rt_recovered_free(struct rt_recovered *r)
{
	free(r->index_off);
	free(r->cur);
	memset(r, 0, sizeof(*r));
}

int rt_spool_recover(struct rt_spool *sp, uint64_t ring_id, uint32_t nslots, rt_log_fn log,
		     void *arg, struct rt_recovered *out)
{
	struct rt_spool_state st;
	struct table t;
	uint64_t *seqs = NULL, durable = 0, ceiling = 0, prev_next = 0, valid_next = 1;
	char name[32];
	int n, i, err = 0;

	memset(out, 0, sizeof(*out));
	t.n = nslots + 1;
	t.e = calloc(t.n, sizeof(*t.e));
	t.present = calloc(t.n, 1);
	if (!t.e || !t.present) {
		err = -ENOMEM;
		goto done;
	}
	/* What the last run published as durable (its own spool only). */
	if (sp->state && rt_state_read(sp->state, &st) == 0 && !memcmp(st.epoch, sp->epoch, 16))
		durable = st.durable_seq;

	n = rt_spool_list(sp, &seqs);
	if (n < 0) {
		err = n;
		goto done;
	}
	for (i = 0; i < n; i++) {
		struct rt_seg *s = NULL;
		int last = i == n - 1, fd, r;

		rt_seg_name(name, seqs[i]);
		fd = rt_openat_beneath(sp->dirfd, name, (last ? O_RDWR : O_RDONLY) | O_NONBLOCK, 0);
		if (fd < 0) {
			err = fd;
			goto done;
		}
		/* The last segment is read whole; the others from their footer. */
		r = rt_seg_open_fd(fd, last ? RT_SEG_NOFOOTER | RT_SEG_VERIFY : 0, 0, &s);
		if (r == -ENOMEM || r == -EIO) {
			close(fd);
			err = r;
			goto done;
		}
		if (r == 0 && (memcmp(s->hdr.epoch, sp->epoch, 16) || s->hdr.first_seq != seqs[i])) {
			say(log, arg, RT_ERROR,
			    "segment %s belongs to another spool or has the wrong name; moved to "
			    "quarantine/",
			    name);
			rt_seg_close(s);
			s = NULL;
			r = -EBADMSG;
		} else if (r != 0) {
			say(log, arg, RT_ERROR,
			    "segment %s has an unreadable header; moved to quarantine/", name);
		}
		if (r == 0 && !last && (s->damaged || !s->closed)) {
			say(log, arg, RT_ERROR, "segment %s is damaged (%s); moved to quarantine/", name,
			    s->damaged ? s->damage : "no footer");
			ceiling = max64(ceiling, s->seq_ceiling);
			rt_seg_close(s);
			s = NULL;
			r = -EBADMSG;
		}
		if (r != 0) {
			close(fd);
			ceiling = max64(ceiling, seqs[i]);
			err = rt_spool_quarantine(sp, name, NULL, NULL, 0);
			if (err)
				goto done;
			out->quarantined++;
			continue;
		}
		if (prev_next && s->hdr.first_seq != prev_next)
			say(log, arg, RT_WARN,
			    "sequence gap before segment %s: records #%" PRIu64 " to #%" PRIu64
			    " are not in the spool",
			    name, prev_next, s->hdr.first_seq - 1);

		if (last && s->damaged) {
			uint64_t cut = s->size - s->valid_end;
			/* A frame that runs past the end of the file, with
			 * nothing valid after it, is a write the crash
			 * interrupted; anything else is damage. */
			int torn = strstr(s->damage, "cut short") != NULL &&
				   rt_seg_probe(s, s->valid_end) == 0;
			if (torn) {
				say(log, arg, RT_WARN,
				    "segment %s: torn tail of %" PRIu64 " bytes cut at offset %" PRIu64
				    " (a write the last run did not finish)",
				    name, cut, s->valid_end);
			} else {
				r = rt_spool_quarantine_copy(sp, fd, name, s->valid_end, s->size, NULL,
							     0);
				if (r) {
					rt_seg_close(s);
					close(fd);
					err = r;
					goto done;
				}
				say(log, arg, RT_ERROR,
				    "segment %s: damaged at %s; its valid prefix is kept and the "
				    "%" PRIu64 " bytes after it moved to quarantine/%s.damaged-%" PRIu64,
				    name, s->damage, cut, name, s->valid_end);
				ceiling = max64(ceiling, s->seq_ceiling);
				out->quarantined++;
			}
			if (ftruncate(fd, (off_t)s->valid_end) < 0 || fsync(fd) < 0) {
				err = -errno;
				rt_seg_close(s);
				close(fd);
				goto done;
			}
		}
		prev_next = s->next_seq;
		valid_next = s->next_seq;
		if (!last)
			ceiling = max64(ceiling, s->next_seq);
		out->segments++;
		if (last) {
			/* The ring positions durable in the spool. */
			if (s->hdr.ring_id == ring_id && ring_id)
				apply(&t, s->hdr_cursor, s->hdr_ncursor);
			for (uint32_t b = 0; b < s->nblocks; b++)
				if (s->blocks[b].ring_id == ring_id && ring_id)
					apply(&t, s->blocks[b].cursor, s->blocks[b].ncursor);
			out->last_seg = s->hdr.first_seq;
			out->last_open = !s->closed;
			out->last_end = s->valid_end;
			out->last_created_ns = s->hdr.created_ns;
			out->last_next_seq = s->next_seq;
			out->tmin = s->tmin;
			out->tmax = s->tmax;
			out->nblocks = s->nblocks;
			if (s->nblocks) {
				out->index_off = malloc(s->nblocks * sizeof(uint64_t));
				if (!out->index_off) {
					rt_seg_close(s);
					close(fd);
					err = -ENOMEM;
					goto done;
				}
				for (uint32_t b = 0; b < s->nblocks; b++)
					out->index_off[b] = s->blocks[b].index_off;
			}
		}
		rt_seg_close(s);
		close(fd);
	}

	/* Never hand out a number that was used: not one a readable frame
	 * anywhere claims, nor one the last run published as durable. */
	out->next_seq = max64(valid_next, max64(ceiling, durable + 1));
	if (out->next_seq > valid_next)
		say(log, arg, RT_ERROR,
		    "records #%" PRIu64 " to #%" PRIu64
		    " were lost to damage; numbering continues at #%" PRIu64,
		    valid_next, out->next_seq - 1, out->next_seq);
	if (out->next_seq != out->last_next_seq && out->last_open) {
		/* The open segment cannot take numbers that do not follow on;
		 * start a new one. */
		out->last_open = 0;
	}
	out->cur = malloc(t.n * sizeof(*out->cur));
	if (!out->cur) {
		err = -ENOMEM;
		goto done;
	}
	for (uint32_t k = 0; k < t.n; k++)
		if (t.present[k])
			out->cur[out->ncur++] = t.e[k];
done:
	free(seqs);
	free(t.e);
	free(t.present);
	if (err)
		rt_recovered_free(out);
	return err;
}
