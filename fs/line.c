/* SPDX-License-Identifier: MIT */
/*
 * line.c - rt_render()'s lines for a whole block at once (see line.h):
 *
 *   TIME SP HOST SP SERVICE [PID/TID] SP #SEQ SP SEV [SP trace=HEX32] [SP span=HEX16]
 *        SP escape(MESSAGE) {SP escape(KEY) = escape(VALUE)}... LF
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "line.h"

#if RT_RENDER_VERSION != 1
#error "fs/line.c renders line format 1: update it with shm/render.c"
#endif

static const char hexd[] = "0123456789abcdef";

/* " " + the severity name, by class. */
static const struct {
	char s[8];
	size_t n;
} sev_sp[RT_SEV_CLASSES] = {
	{" TRACE", 6}, {" DEBUG", 6}, {" INFO", 5}, {" WARN", 5}, {" ERROR", 6}, {" FATAL", 6},
};

struct piece {
	char s[96];  /* padded: copied 16 bytes at a time */
	size_t n;
};

struct hpiece {
	char s[288]; /* " HOST " (a host name has at most 255 bytes), padded */
	size_t n;
};

/* Copy @n bytes 16 at a time: up to 15 bytes more are read from @src (a
 * padded piece) and written at @dst (room the caller has checked). */
static inline char *copy16(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i += 16)
		memcpy(dst + i, src + i, 16);
	return dst + n;
}

static size_t put_dec(char *w, uint64_t v)
{
	char tmp[20];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		w[i] = tmp[n - 1 - i];
	return n;
}

/* A decimal counter: digits in d[END - n, END), then padding so that 24
 * bytes can always be copied from the first digit. */
#define END 24
struct counter {
	char d[END + 24];
	size_t n;
};

static void counter_set(struct counter *c, uint64_t v)
{
	char tmp[24];

	memset(c->d, '0', sizeof(c->d));
	c->n = put_dec(tmp, v);
	memcpy(c->d + END - c->n, tmp, c->n);
}

static inline void counter_inc(struct counter *c)
{
	size_t i = END;

	while (i > END - c->n) {
		if (c->d[--i] != '9') {
			c->d[i]++;
			return;
		}
		c->d[i] = '0';
	}
	c->d[END - ++c->n] = '1';
}

static inline char *put_hex(char *w, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		*w++ = hexd[p[i] >> 4];
		*w++ = hexd[p[i] & 15];
	}
	return w;
}

/* One record the slow way (near the end of the buffer): exact length
 * first, so nothing is written past @end. */
static char *slow_line(const struct rt_block *blk, uint32_t k, uint64_t seq, const char *host,
		       size_t host_len, char *w, const char *end)
{
	struct rt_rec r;
	size_t n;
	char *tmp;

	rt_block_rec(blk, k, &r);
	n = rt_render_len(&r, seq, host_len);
	if ((size_t)(end - w) < n)
		return NULL;
	tmp = malloc(n);
	if (!tmp)
		return NULL;
	rt_render(&r, seq, host, host_len, tmp);
	memcpy(w, tmp, n);
	free(tmp);
	return w + n;
}

int rtfs_lines(const struct rt_block *blk, uint64_t first_seq, const char *host, size_t host_len,
	       const int32_t *sidmap, const struct rtfs_filter *f, char *out, size_t len)
{
	struct hpiece hostp;
	struct piece *svc, *wr;
	struct counter seq;
	char *w = out, *end = out + len;
	int all = f->sid < 0 && f->sevmask == RTFS_SEV_ALL && !f->h1 && !f->since;
	int err = 0;

	if (host_len > 255)
		return -EIO;
	memset(&hostp, 0, sizeof(hostp));
	svc = malloc(sizeof(*svc) * (blk->nsvc ? blk->nsvc : 1));
	wr = malloc(sizeof(*wr) * (blk->nwriters ? blk->nwriters : 1));
	if (!svc || !wr) {
		free(svc);
		free(wr);
		return -ENOMEM;
	}
	/* Per block: " HOST ", each "SERVICE", each "[PID/TID] #". */
	hostp.s[0] = ' ';
	memcpy(hostp.s + 1, host, host_len);
	hostp.s[host_len + 1] = ' ';
	hostp.n = host_len + 2;
	for (uint32_t i = 0; i < blk->nsvc; i++) {
		const uint8_t *s = blk->svc_names + blk->svc_off[i];
		memcpy(svc[i].s, s + 1, s[0]);
		svc[i].n = s[0];
	}
	for (uint32_t i = 0; i < blk->nwriters; i++) {
		uint32_t pid, tid;
		size_t n = 0;
		memcpy(&pid, blk->writers + 8 * (size_t)i, 4);
		memcpy(&tid, blk->writers + 8 * (size_t)i + 4, 4);
		wr[i].s[n++] = '[';
		n += put_dec(wr[i].s + n, pid);
		wr[i].s[n++] = '/';
		n += put_dec(wr[i].s + n, tid);
		wr[i].s[n++] = ']';
		wr[i].s[n++] = ' ';
		wr[i].s[n++] = '#';
		wr[i].n = n;
	}
	counter_set(&seq, first_seq);

	for (uint32_t k = 0; k < blk->nrec; k++, counter_inc(&seq)) {
		uint8_t fl = blk->flags[k];
		int cls = rt_sev_class(blk->sev[k]);
		const struct piece *sp = &svc[blk->svc[k]];
		const char *msg = (const char *)blk->msgs + blk->msg_off[k];
		size_t ml = blk->msg_len[k], al = blk->attr_len[k];

		if (!all && !rtfs_filter_rec(f, sidmap[blk->svc[k]], cls, blk->time[k], first_seq + k))
			continue;
		/* Room for the worst case (escaping quadruples a byte; an
		 * attribute's 3 framing bytes cover its separators), with the
		 * 16-byte copies' overrun, which never reaches past @end); else the
		 * careful way. */
		if ((size_t)(end - w) < 192 + hostp.n + sp->n + 4 * (ml + al)) {
			w = slow_line(blk, k, first_seq + k, host, host_len, w, end);
			if (!w) {
				err = -EIO;
				break;
			}
			continue;
		}
		w = rt_render_time(w, blk->time[k]);
		w = copy16(w, hostp.s, hostp.n);
		w = copy16(w, sp->s, sp->n);
		w = copy16(w, wr[blk->writer[k]].s, wr[blk->writer[k]].n);
		memcpy(w, seq.d + END - seq.n, 24);
		w += seq.n;
		memcpy(w, sev_sp[cls].s, 8);
		w += sev_sp[cls].n;
		if (fl & (RT_REC_TRACE | RT_REC_SPAN)) {
			const uint8_t *ids = blk->ids + blk->ids_off[k];
			if (fl & RT_REC_TRACE) {
				memcpy(w, " trace=", 7);
				w = put_hex(w + 7, ids, 16);
				ids += 16;
			}
			if (fl & RT_REC_SPAN) {
				memcpy(w, " span=", 6);
				w = put_hex(w + 6, ids, 8);
			}
		}
		*w++ = ' ';
		w = rt_escape(w, msg, ml);
		if (al) {
			const uint8_t *a = blk->attrs + blk->attr_off[k];
			struct rt_attr_view av;
			size_t pos = 0;
			while (rt_attr_next(a, al, &pos, &av) == 1) {
				*w++ = ' ';
				w = rt_escape(w, av.key, av.key_len);
				*w++ = '=';
				w = rt_escape(w, av.value, av.value_len);
			}
		}
		*w++ = '\n';
	}
	free(svc);
	free(wr);
	if (!err && w != end)
		err = -EIO;
	return err;
}
