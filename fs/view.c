/* SPDX-License-Identifier: MIT */
/*
 * view.c - views: the blocks (or, for a trace, the records) a file is made
 * of, and their offsets, computed from the sizes the segment index stores.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "view.h"

#define VIEW_BUCKETS 1024u
#define TVIEW_KEEP 4096 /* unreferenced trace views kept (same bytes on re-lookup) */

struct rtfs_views {
	struct rtfs_model *m;
	pthread_mutex_t mu;
	struct rtfs_view *bucket[VIEW_BUCKETS];
	struct rtfs_tview *traces;
	int ntraces;
	uint64_t use_clock;
};

/* ------------------------------------------------------------------------
 * Filters
 * ------------------------------------------------------------------------ */

/* The hour a block without parts is counted in. */
static inline uint64_t block_hour(const struct rtfs_block *b)
{
	return b->tmin / RTFS_HOUR_NS;
}

/* Exact bytes of the records of @b that pass @f, by decoding. */
static int exact_bytes(struct rtfs_model *m, struct rtfs_block *b, const struct rtfs_filter *f,
		       uint64_t *bytes, uint64_t *count)
{
	const struct rt_block *blk;
	const char *host;
	size_t host_len;
	int32_t *map;
	int err;

	err = rtfs_block_decode(m, b, &blk, &host, &host_len);
	if (err)
		return err;
	map = malloc(sizeof(*map) * (blk->nsvc ? blk->nsvc : 1));
	if (!map)
		return -ENOMEM;
	rtfs_block_local_sids(m, blk, map);
	for (uint32_t k = 0; k < blk->nrec; k++) {
		struct rt_rec r;
		int cls = rt_sev_class(blk->sev[k]);
		if (!rtfs_filter_rec(f, map[blk->svc[k]], cls, blk->time[k], b->first_seq + k))
			continue;
		rt_block_rec(blk, k, &r);
		*bytes += rt_render_len(&r, b->first_seq + k, host_len);
		(*count)++;
	}
	free(map);
	return 0;
}

int rtfs_filter_bytes(struct rtfs_model *m, struct rtfs_block *b, const struct rtfs_filter *f,
		      uint64_t *bytes, uint64_t *count)
{
	*bytes = *count = 0;
	if (f->sid == RTFS_SID_NONE)
		return 0;
	if (f->hid >= 0 && b->hid != (uint32_t)f->hid)
		return 0;
	if (f->since && b->first_seq + b->nrec <= f->since)
		return 0;
	if (f->h1) {
		if (b->tmax / RTFS_HOUR_NS < f->h0 || b->tmin / RTFS_HOUR_NS >= f->h1)
			return 0;
		if (!b->nparts && (block_hour(b) < f->h0 || block_hour(b) >= f->h1))
			return 0;
	}
	if (f->since > b->first_seq) {
		int err = exact_bytes(m, b, f, bytes, count);
		if (err == -EIO)
			*bytes = *count = 0;
		return err;
	}
	if (f->h1 && b->nparts) {
		for (uint32_t i = 0; i < b->nparts; i++) {
			const struct rtfs_part *p = &b->parts[i];
			if (p->hour < f->h0 || p->hour >= f->h1 ||
			    (f->sid >= 0 && p->sid != (uint32_t)f->sid) || !(f->sevmask & (1u << p->cls)))
				continue;
			*bytes += p->bytes;
			*count += p->count;
		}
		return 0;
	}
	if (f->sid >= 0) {
		const struct rtfs_svcrec *s = rtfs_block_svc(b, (uint32_t)f->sid);
		for (int c = 0; s && c < RTFS_NCLS; c++)
			if (f->sevmask & (1u << c)) {
				*bytes += s->bytes[c];
				*count += s->count[c];
			}
		return 0;
	}
	for (uint32_t i = 0; i < b->nsvc; i++) {
		const struct rtfs_svcrec *s = &b->svc[i];
		for (int c = 0; c < RTFS_NCLS; c++)
			if (f->sevmask & (1u << c)) {
				*bytes += s->bytes[c];
				*count += s->count[c];
			}
	}
	return 0;
}

void rtfs_filter_for_block(const struct rtfs_block *b, const struct rtfs_filter *f,
			   struct rtfs_filter *out)
{
	uint32_t present = 0;
	int only = 1;

	*out = *f;
	out->hid = -1; /* a block has one host */
	if (out->since && out->since <= b->first_seq)
		out->since = 0;
	if (out->h1 && !b->nparts && block_hour(b) >= out->h0 && block_hour(b) < out->h1)
		out->h0 = out->h1 = 0;
	if (out->h1 && b->nparts) {
		int inside = 1;
		for (uint32_t i = 0; i < b->nparts && inside; i++)
			inside = b->parts[i].hour >= out->h0 && b->parts[i].hour < out->h1;
		if (inside)
			out->h0 = out->h1 = 0;
	}
	if (out->sid >= 0) {
		/* O(log n): the service's own classes; "only" if no other
		 * service of the block has a record. */
		const struct rtfs_svcrec *s = rtfs_block_svc(b, (uint32_t)out->sid);
		for (int c = 0; s && c < RTFS_NCLS; c++)
			if (s->count[c])
				present |= 1u << c;
		/* (Past 8 services, keep the service in the filter: the same
		 * lines, without the sharing.) */
		only = b->nsvc <= 8;
		for (uint32_t j = 0; only && j < b->nsvc; j++)
			for (int c = 0; c < RTFS_NCLS; c++)
				if (&b->svc[j] != s && b->svc[j].count[c])
					only = 0;
	} else {
		for (uint32_t i = 0; i < b->nsvc; i++)
			for (int c = 0; c < RTFS_NCLS; c++)
				present |= b->svc[i].count[c] ? 1u << c : 0;
	}
	if (out->sid >= 0 && only)
		out->sid = -1;
	/* Classes the (remaining) services do not have make no difference. */
	if ((present & out->sevmask) == present)
		out->sevmask = RTFS_SEV_ALL;
}

/* ------------------------------------------------------------------------
 * Views
 * ------------------------------------------------------------------------ */

int rtfs_views_new(struct rtfs_model *m, struct rtfs_views **out)
{
	struct rtfs_views *vs = calloc(1, sizeof(*vs));

	if (!vs)
		return -ENOMEM;
	vs->m = m;
	pthread_mutex_init(&vs->mu, NULL);
	*out = vs;
	return 0;
}

static void view_free(struct rtfs_view *v)
{
	pthread_mutex_destroy(&v->mu);
	free(v->e);
	free(v);
}

static void tview_free(struct rtfs_tview *tv)
{
	pthread_mutex_destroy(&tv->mu);
	free(tv->e);
	free(tv->text);
	free(tv);
}

void rtfs_views_free(struct rtfs_views *vs)
{
	if (!vs)
		return;
	for (uint32_t i = 0; i < VIEW_BUCKETS; i++)
		while (vs->bucket[i]) {
			struct rtfs_view *v = vs->bucket[i];
			vs->bucket[i] = v->next_in_bucket;
			view_free(v);
		}
	while (vs->traces) {
		struct rtfs_tview *tv = vs->traces;
		vs->traces = tv->next_in_list;
		tview_free(tv);
	}
	pthread_mutex_destroy(&vs->mu);
	free(vs);
}

int rtfs_view_get(struct rtfs_views *vs, const struct rtfs_filter *f, struct rtfs_view **out)
{
	uint64_t h = XXH3_64bits(f, sizeof(*f));
	struct rtfs_view *v;
	int err;

	pthread_mutex_lock(&vs->mu);
	for (v = vs->bucket[h % VIEW_BUCKETS]; v; v = v->next_in_bucket)
		if (v->hash == h && !memcmp(&v->f, f, sizeof(*f)))
			break;
	if (v) {
		v->refs++;
		pthread_mutex_unlock(&vs->mu);
	} else {
		v = calloc(1, sizeof(*v));
		if (!v) {
			pthread_mutex_unlock(&vs->mu);
			return -ENOMEM;
		}
		v->f = *f;
		v->hash = h;
		v->refs = 1;
		pthread_mutex_init(&v->mu, NULL);
		v->next_in_bucket = vs->bucket[h % VIEW_BUCKETS];
		vs->bucket[h % VIEW_BUCKETS] = v;
		pthread_mutex_unlock(&vs->mu);
	}
	err = rtfs_view_update(vs->m, v);
	if (err < 0) {
		rtfs_view_put(vs, v);
		return err;
	}
	*out = v;
	return 0;
}

void rtfs_view_put(struct rtfs_views *vs, struct rtfs_view *v)
{
	struct rtfs_view **pp;

	if (!v)
		return;
	pthread_mutex_lock(&vs->mu);
	if (--v->refs > 0) {
		pthread_mutex_unlock(&vs->mu);
		return;
	}
	for (pp = &vs->bucket[v->hash % VIEW_BUCKETS]; *pp; pp = &(*pp)->next_in_bucket)
		if (*pp == v) {
			*pp = v->next_in_bucket;
			break;
		}
	pthread_mutex_unlock(&vs->mu);
	view_free(v);
}

int rtfs_view_update(struct rtfs_model *m, struct rtfs_view *v)
{
	uint32_t n = rtfs_model_nblocks(m);
	int grew = 0;

	if (__atomic_load_n(&v->next, __ATOMIC_ACQUIRE) >= n)
		return 0;
	pthread_mutex_lock(&v->mu);
	while (v->next < n) {
		struct rtfs_block *b = rtfs_model_block(m, v->next);
		uint64_t bytes, count;
		int err = rtfs_filter_bytes(m, b, &v->f, &bytes, &count);

		if (err == -ENOMEM) {
			pthread_mutex_unlock(&v->mu);
			return err;
		}
		if (bytes) {
			if (v->n == v->cap) {
				uint32_t cap = v->cap ? v->cap * 2 : 64;
				struct rtfs_ventry *ne = realloc(v->e, cap * sizeof(*ne));
				if (!ne) {
					pthread_mutex_unlock(&v->mu);
					return -ENOMEM;
				}
				v->e = ne;
				v->cap = cap;
			}
			v->e[v->n].off = v->size;
			v->e[v->n].gid = b->gid;
			v->e[v->n].len = (uint32_t)bytes;
			v->n++;
			v->size += bytes;
			v->records += count;
			if (b->tmax > v->mtime_ns)
				v->mtime_ns = b->tmax;
			grew = 1;
		}
		/* Release: lets the unlocked check above skip the lock. */
		__atomic_store_n(&v->next, v->next + 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&v->mu);
	return grew;
}

uint64_t rtfs_view_size(struct rtfs_view *v)
{
	uint64_t s;

	pthread_mutex_lock(&v->mu);
	s = v->size;
	pthread_mutex_unlock(&v->mu);
	return s;
}

uint32_t rtfs_view_entry_at(const struct rtfs_view *v, uint64_t off)
{
	uint32_t lo = 0, hi = v->n;

	/* The last entry starting at or before @off. */
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (v->e[mid].off <= off)
			lo = mid;
		else
			hi = mid;
	}
	if (v->n == 0 || off >= v->size)
		return v->n;
	return lo;
}

uint64_t rtfs_view_skip_removed(struct rtfs_model *m, struct rtfs_view *v, uint64_t off)
{
	pthread_mutex_lock(&v->mu);
	for (uint32_t i = rtfs_view_entry_at(v, off); i < v->n; i++) {
		const struct rtfs_block *b = rtfs_model_block(m, v->e[i].gid);
		if (!__atomic_load_n(&b->seg->removed, __ATOMIC_ACQUIRE))
			break;
		off = v->e[i].off + v->e[i].len;
	}
	pthread_mutex_unlock(&v->mu);
	return off;
}

int rtfs_view_pieces(struct rtfs_view *v, uint64_t off, uint64_t len, struct rtfs_piece *out,
		     int max)
{
	uint64_t end;
	uint32_t i;
	int n = 0;

	pthread_mutex_lock(&v->mu);
	end = off + len < v->size ? off + len : v->size;
	for (i = rtfs_view_entry_at(v, off); i < v->n && off < end && n < max; i++) {
		const struct rtfs_ventry *e = &v->e[i];
		uint64_t from = off - e->off, take = e->len - from;
		if (take > end - off)
			take = end - off;
		out[n].gid = e->gid;
		out[n].entry_len = e->len;
		out[n].entry_off = e->off;
		out[n].from = (uint32_t)from;
		out[n].len = (uint32_t)take;
		n++;
		off += take;
	}
	pthread_mutex_unlock(&v->mu);
	return n;
}

/* ------------------------------------------------------------------------
 * Trace views
 * ------------------------------------------------------------------------ */

struct tlist {
	struct rtfs_tentry *e;
	uint32_t n, cap;
};

static int tlist_add(struct tlist *l, const struct rtfs_tentry *t)
{
	if (l->n == l->cap) {
		uint32_t cap = l->cap ? l->cap * 2 : 16;
		struct rtfs_tentry *ne = realloc(l->e, cap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		l->e = ne;
		l->cap = cap;
	}
	l->e[l->n++] = *t;
	return 0;
}

static int cmp_tentry(const void *a, const void *b)
{
	const struct rtfs_tentry *x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	if (x->hid != y->hid)
		return x->hid < y->hid ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return 0;
}

/* The records of blocks [@from, @to) carrying @trace, time-sorted. */
static int trace_scan(struct rtfs_model *m, const uint8_t trace[16], int32_t hid, uint32_t from,
		      uint32_t to, struct tlist *l)
{
	for (uint32_t gid = from; gid < to; gid++) {
		struct rtfs_block *b = rtfs_model_block(m, gid);
		const struct rt_block *blk;
		const char *host;
		size_t host_len;
		int err;

		if (hid >= 0 && b->hid != (uint32_t)hid)
			continue;
		if (!rtfs_block_maybe_trace(b, trace))
			continue;
		err = rtfs_block_decode(m, b, &blk, &host, &host_len);
		if (err == -EIO)
			continue; /* reported; its records cannot be shown */
		if (err)
			return err;
		for (uint32_t k = 0; k < blk->nrec; k++) {
			struct rtfs_tentry t;
			struct rt_rec r;
			if (!(blk->flags[k] & RT_REC_TRACE) ||
			    memcmp(blk->ids + blk->ids_off[k], trace, 16))
				continue;
			rt_block_rec(blk, k, &r);
			memset(&t, 0, sizeof(t));
			t.time = r.time_ns;
			t.seq = b->first_seq + k;
			t.gid = gid;
			t.rec = k;
			t.hid = b->hid;
			t.len = (uint32_t)rt_render_len(&r, t.seq, host_len);
			err = tlist_add(l, &t);
			if (err)
				return err;
		}
	}
	if (l->n > 1)
		qsort(l->e, l->n, sizeof(*l->e), cmp_tentry);
	return 0;
}

/* Append @l to @tv (its offsets follow on). Called with tv->mu held. */
static int tview_append(struct rtfs_tview *tv, struct tlist *l)
{
	if (!l->n)
		return 0;
	if (tv->n + l->n > tv->cap) {
		uint32_t cap = tv->cap ? tv->cap : 16;
		struct rtfs_tentry *ne;
		while (cap < tv->n + l->n)
			cap *= 2;
		ne = realloc(tv->e, cap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		tv->e = ne;
		tv->cap = cap;
	}
	for (uint32_t i = 0; i < l->n; i++) {
		l->e[i].off = tv->size;
		tv->size += l->e[i].len;
		if (l->e[i].time > tv->mtime_ns)
			tv->mtime_ns = l->e[i].time;
		tv->e[tv->n++] = l->e[i];
	}
	return 1;
}

int rtfs_tview_update(struct rtfs_model *m, struct rtfs_tview *tv)
{
	uint32_t n = rtfs_model_nblocks(m);
	struct tlist l = {0};
	int err;

	pthread_mutex_lock(&tv->mu);
	if (tv->next >= n) {
		pthread_mutex_unlock(&tv->mu);
		return 0;
	}
	err = trace_scan(m, tv->trace, tv->hid, tv->next, n, &l);
	if (!err) {
		err = tview_append(tv, &l);
		if (err >= 0)
			tv->next = n;
	}
	pthread_mutex_unlock(&tv->mu);
	free(l.e);
	return err;
}

uint64_t rtfs_tview_size(struct rtfs_tview *tv)
{
	uint64_t s;

	pthread_mutex_lock(&tv->mu);
	s = tv->size;
	pthread_mutex_unlock(&tv->mu);
	return s;
}

/* Drop unreferenced trace views past TVIEW_KEEP, least recently used first.
 * Called with vs->mu held. */
static void tview_trim(struct rtfs_views *vs)
{
	while (vs->ntraces > TVIEW_KEEP) {
		struct rtfs_tview **pp, **victim = NULL;
		for (pp = &vs->traces; *pp; pp = &(*pp)->next_in_list)
			if (!(*pp)->refs && (!victim || (*pp)->last_use < (*victim)->last_use))
				victim = pp;
		if (!victim)
			return;
		{
			struct rtfs_tview *tv = *victim;
			*victim = tv->next_in_list;
			vs->ntraces--;
			tview_free(tv);
		}
	}
}

int rtfs_tview_get(struct rtfs_views *vs, const uint8_t trace[16], int32_t hid,
		   struct rtfs_tview **out)
{
	struct rtfs_tview *tv, *nt;
	struct tlist l = {0};
	uint32_t n;
	int err;

	pthread_mutex_lock(&vs->mu);
	for (tv = vs->traces; tv; tv = tv->next_in_list)
		if (tv->hid == hid && !memcmp(tv->trace, trace, 16))
			break;
	if (tv) {
		tv->refs++;
		tv->last_use = ++vs->use_clock;
		pthread_mutex_unlock(&vs->mu);
		err = rtfs_tview_update(vs->m, tv);
		if (err < 0) {
			rtfs_tview_put(vs, tv);
			return err;
		}
		*out = tv;
		return 0;
	}
	pthread_mutex_unlock(&vs->mu);

	/* Not known: look for it (blooms, then the candidate blocks). */
	n = rtfs_model_nblocks(vs->m);
	err = trace_scan(vs->m, trace, hid, 0, n, &l);
	if (err) {
		free(l.e);
		return err;
	}
	if (!l.n) {
		free(l.e);
		return -ENOENT;
	}
	nt = calloc(1, sizeof(*nt));
	if (!nt) {
		free(l.e);
		return -ENOMEM;
	}
	memcpy(nt->trace, trace, 16);
	nt->hid = hid;
	nt->next = n;
	pthread_mutex_init(&nt->mu, NULL);
	err = tview_append(nt, &l);
	free(l.e);
	if (err < 0) {
		tview_free(nt);
		return err;
	}
	pthread_mutex_lock(&vs->mu);
	/* Someone may have made it meanwhile: theirs stands. */
	for (tv = vs->traces; tv; tv = tv->next_in_list)
		if (tv->hid == hid && !memcmp(tv->trace, trace, 16))
			break;
	if (tv) {
		tview_free(nt);
	} else {
		tv = nt;
		tv->next_in_list = vs->traces;
		vs->traces = tv;
		vs->ntraces++;
	}
	tv->refs++;
	tv->last_use = ++vs->use_clock;
	tview_trim(vs);
	pthread_mutex_unlock(&vs->mu);
	err = rtfs_tview_update(vs->m, tv);
	if (err < 0) {
		rtfs_tview_put(vs, tv);
		return err;
	}
	*out = tv;
	return 0;
}

void rtfs_tview_put(struct rtfs_views *vs, struct rtfs_tview *tv)
{
	if (!tv)
		return;
	pthread_mutex_lock(&vs->mu);
	tv->refs--;
	tview_trim(vs);
	pthread_mutex_unlock(&vs->mu);
}

/* Render entries until the text covers @upto bytes. tv->mu held. */
static int tview_render(struct rtfs_model *m, struct rtfs_tview *tv, uint64_t upto)
{
	const struct rt_block *blk = NULL;
	const char *host = NULL;
	size_t host_len = 0;
	uint32_t last = tv->nrendered, cur = UINT32_MAX;
	uint64_t need;
	char *nt;

	while (last < tv->n && tv->e[last].off < upto)
		last++;
	if (last == tv->nrendered)
		return 0;
	need = tv->e[last - 1].off + tv->e[last - 1].len;
	nt = realloc(tv->text, need ? need : 1);
	if (!nt)
		return -ENOMEM;
	tv->text = nt;
	for (uint32_t i = tv->nrendered; i < last; i++) {
		struct rtfs_tentry *t = &tv->e[i];
		struct rt_rec r;
		size_t w;

		if (t->gid != cur) {
			int err = rtfs_block_decode(m, rtfs_model_block(m, t->gid), &blk, &host,
						    &host_len);
			if (err)
				return err;
			cur = t->gid;
		}
		rt_block_rec(blk, t->rec, &r);
		w = rt_render(&r, t->seq, host, host_len, tv->text + t->off);
		if (w != t->len)
			return -EIO;
		tv->text_len = t->off + w;
		tv->nrendered = i + 1;
	}
	return 0;
}

long rtfs_tview_read(struct rtfs_model *m, struct rtfs_tview *tv, uint64_t off, size_t len,
		     char *out)
{
	uint64_t end;
	long n;
	int err;

	pthread_mutex_lock(&tv->mu);
	if (off >= tv->size) {
		pthread_mutex_unlock(&tv->mu);
		return 0;
	}
	end = off + len < tv->size ? off + len : tv->size;
	err = tview_render(m, tv, end);
	if (err) {
		pthread_mutex_unlock(&tv->mu);
		return err;
	}
	n = (long)(end - off);
	memcpy(out, tv->text + off, (size_t)n);
	pthread_mutex_unlock(&tv->mu);
	return n;
}

/* ------------------------------------------------------------------------
 * Recent traces
 * ------------------------------------------------------------------------ */

int rtfs_recent_traces(struct rtfs_model *m, int32_t hid, uint8_t (*out)[16], int max,
		       uint64_t budget)
{
	uint32_t n = rtfs_model_nblocks(m), cap = 1;
	uint64_t spent = 0;
	uint32_t *seen;
	int found = 0;

	while (cap < (uint32_t)max * 2)
		cap *= 2;
	seen = calloc(cap, sizeof(*seen));
	if (!seen)
		return -ENOMEM;
	for (uint32_t gid = n; gid-- > 0 && found < max && spent < budget;) {
		struct rtfs_block *b = rtfs_model_block(m, gid);
		const struct rt_block *blk;
		const char *host;
		size_t host_len;
		uint32_t bits, body;
		int err;

		if (hid >= 0 && b->hid != (uint32_t)hid)
			continue;
		pthread_rwlock_rdlock(&b->seg->lock);
		bits = b->seg->s->blocks[b->idx].bloom_bits;
		body = b->seg->s->blocks[b->idx].body_len;
		pthread_rwlock_unlock(&b->seg->lock);
		if (!bits)
			continue; /* no record of it has a trace id */
		spent += body;
		err = rtfs_block_decode(m, b, &blk, &host, &host_len);
		if (err == -EIO)
			continue;
		if (err) {
			free(seen);
			return err;
		}
		for (uint32_t k = blk->nrec; k-- > 0 && found < max;) {
			const uint8_t *id;
			uint32_t h;
			int dup = 0;
			if (!(blk->flags[k] & RT_REC_TRACE))
				continue;
			id = blk->ids + blk->ids_off[k];
			h = (uint32_t)XXH3_64bits(id, 16) & (cap - 1);
			while (seen[h]) {
				if (!memcmp(out[seen[h] - 1], id, 16)) {
					dup = 1;
					break;
				}
				h = (h + 1) & (cap - 1);
			}
			if (dup)
				continue;
			memcpy(out[found], id, 16);
			seen[h] = (uint32_t)++found;
		}
	}
	free(seen);
	return found;
}
