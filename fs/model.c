/* SPDX-License-Identifier: MIT */
/*
 * model.c - the index of a spool or a central server: find segments, read
 * their INDEX frames (rt_seg_open_fd, rt_seg_refresh), publish their blocks
 * in discovery order, and decode a block's body when asked.
 *
 * Only durable bytes are read: the open segment up to the length SPOOL/state
 * says is durable, a segment newer than the one the state names not at all.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "model.h"

static uint64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------
 * Decode scratch
 *
 * Decoding a block needs its decompressed body and its decoded columns,
 * each up to the block size. Renderers (every FUSE thread and worker) take
 * one of RTFS_SCRATCH_SLOTS shared slots for the length of one render
 * (rtfs_scratch_acquire/release), waiting when all are in use, so the
 * space is bounded by the slots and not by the threads. Refreshing (one
 * thread at a time, under m->mu) has a slot of its own. Other decoders
 * (/by-trace views) use a scratch of the thread's, kept until it ends.
 * ------------------------------------------------------------------------ */

struct scratch {
	struct rt_buf body;
	struct rt_block blk;
};

static struct scratch slots[RTFS_SCRATCH_SLOTS + 1]; /* the last: refreshing */
static int slot_used[RTFS_SCRATCH_SLOTS];
static pthread_mutex_t slot_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slot_cv = PTHREAD_COND_INITIALIZER;
static _Thread_local struct scratch *held;
static _Thread_local int held_slot = -1, held_depth;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
	struct scratch *sc = p;

	if (!sc)
		return;
	rt_buf_free(&sc->body);
	rt_block_free(&sc->blk);
	free(sc);
}

static void scratch_init(void)
{
	pthread_key_create(&scratch_key, scratch_free);
}

static struct scratch *scratch(void)
{
	struct scratch *sc;

	if (held)
		return held;
	pthread_once(&scratch_once, scratch_init);
	sc = pthread_getspecific(scratch_key);
	if (!sc) {
		sc = calloc(1, sizeof(*sc));
		if (sc && pthread_setspecific(scratch_key, sc)) {
			free(sc);
			sc = NULL;
		}
	}
	return sc;
}

void rtfs_scratch_acquire(void)
{
	if (held_slot >= 0) {
		held_depth++;
		return;
	}
	pthread_mutex_lock(&slot_mu);
	for (;;) {
		for (int i = 0; i < RTFS_SCRATCH_SLOTS; i++)
			if (!slot_used[i]) {
				slot_used[i] = 1;
				held = &slots[i];
				held_slot = i;
				held_depth = 1;
				pthread_mutex_unlock(&slot_mu);
				return;
			}
		pthread_cond_wait(&slot_cv, &slot_mu);
	}
}

void rtfs_scratch_release(void)
{
	if (held_slot < 0 || --held_depth > 0)
		return;
	pthread_mutex_lock(&slot_mu);
	slot_used[held_slot] = 0;
	pthread_cond_signal(&slot_cv);
	pthread_mutex_unlock(&slot_mu);
	held = NULL;
	held_slot = -1;
}

void rtfs_model_thread_done(void)
{
	struct scratch *sc;

	held_depth = 1;
	rtfs_scratch_release();
	pthread_once(&scratch_once, scratch_init);
	sc = pthread_getspecific(scratch_key);
	if (sc) {
		pthread_setspecific(scratch_key, NULL);
		scratch_free(sc);
	}
}

/* ------------------------------------------------------------------------
 * Damage
 * ------------------------------------------------------------------------ */

static void damage_add(struct rtfs_model *m, uint16_t hid, uint64_t seg, int64_t block,
		       const char *what)
{
	pthread_mutex_lock(&m->dmu);
	for (size_t i = 0; i < m->ndamage; i++) {
		struct rtfs_damage *d = &m->damage[i];
		if (d->hid == hid && d->seg == seg && d->block == block) {
			snprintf(d->what, sizeof(d->what), "%s", what);
			pthread_mutex_unlock(&m->dmu);
			return;
		}
	}
	if (m->ndamage == m->damage_cap) {
		size_t cap = m->damage_cap ? m->damage_cap * 2 : 16;
		struct rtfs_damage *nd = realloc(m->damage, cap * sizeof(*nd));
		if (!nd) {
			pthread_mutex_unlock(&m->dmu);
			return;
		}
		m->damage = nd;
		m->damage_cap = cap;
	}
	m->damage[m->ndamage].hid = hid;
	m->damage[m->ndamage].seg = seg;
	m->damage[m->ndamage].block = block;
	snprintf(m->damage[m->ndamage].what, sizeof(m->damage[0].what), "%s", what);
	m->ndamage++;
	pthread_mutex_unlock(&m->dmu);
}

void rtfs_model_damaged(struct rtfs_model *m, struct rtfs_block *b, const char *why)
{
	char what[1024], name[32];

	__atomic_store_n(&b->health, -EIO, __ATOMIC_RELAXED);
	rt_seg_name(name, b->seg->name);
	snprintf(what, sizeof(what),
		 "%s/%s block %u (records #%" PRIu64 "..#%" PRIu64 "): %s", b->seg->spool->rel,
		 name, b->idx, b->first_seq, b->first_seq + b->nrec - 1, why);
	damage_add(m, b->hid, b->seg->name, b->idx, what);
}

/* ------------------------------------------------------------------------
 * Services and hosts
 * ------------------------------------------------------------------------ */

int rtfs_model_find_service(const struct rtfs_model *m, const char *name, size_t len)
{
	/* Acquire: pairs with the release store of a new table. */
	const struct rtfs_svc_hash *t = __atomic_load_n(&m->svc_hash, __ATOMIC_ACQUIRE);
	uint32_t h;

	if (!t)
		return -1;
	h = (uint32_t)XXH3_64bits(name, len) & t->mask;
	for (;;) {
		/* Acquire: pairs with the release store of the slot in
		 * intern_service(), after the name was written. */
		uint32_t v = __atomic_load_n(&t->slots[h], __ATOMIC_ACQUIRE);
		const struct rtfs_service *s;
		if (!v)
			return -1;
		s = rtfs_model_service(m, v - 1);
		if (s->len == len && !memcmp(s->name, name, len))
			return (int)(v - 1);
		h = (h + 1) & t->mask;
	}
}

static void hash_put(struct rtfs_svc_hash *t, const char *name, size_t len, uint32_t sid)
{
	uint32_t h = (uint32_t)XXH3_64bits(name, len) & t->mask;

	while (t->slots[h])
		h = (h + 1) & t->mask;
	/* Release: the name is visible before the slot points at it. */
	__atomic_store_n(&t->slots[h], sid + 1, __ATOMIC_RELEASE);
}

/* A table for at least 2 * @n services, holding the first @n. Under m->mu. */
static int hash_grow(struct rtfs_model *m, uint32_t n)
{
	uint64_t size = 1024;
	struct rtfs_svc_hash *t;

	while (size < 2ull * n + 2)
		size *= 2;
	t = calloc(1, sizeof(*t) + size * sizeof(t->slots[0]));
	if (!t)
		return -ENOMEM;
	t->mask = (uint32_t)(size - 1);
	for (uint32_t sid = 0; sid < n; sid++) {
		const struct rtfs_service *s = rtfs_model_service(m, sid);
		hash_put(t, s->name, s->len, sid);
	}
	t->older = m->svc_hash;
	__atomic_store_n(&m->svc_hash, t, __ATOMIC_RELEASE);
	return 0;
}

/* The id of @name, adding it. Called under m->mu only. -1 when full. */
static int intern_service(struct rtfs_model *m, const char *name, size_t len)
{
	uint32_t sid;
	struct rtfs_service *s;
	int found = rtfs_model_find_service(m, name, len);

	if (found >= 0)
		return found;
	sid = m->nsvc;
	if (sid >= RTFS_MAX_SERVICES || len > RT_SERVICE_MAX)
		return -1;
	if (!m->svc_hash || 2ull * (sid + 1) > (uint64_t)m->svc_hash->mask + 1) {
		if (hash_grow(m, sid) < 0)
			return -1;
	}
	if (!m->svc_chunks[sid >> 10]) {
		m->svc_chunks[sid >> 10] = calloc(1024, sizeof(struct rtfs_service));
		if (!m->svc_chunks[sid >> 10])
			return -1;
	}
	s = &m->svc_chunks[sid >> 10][sid & 1023];
	memcpy(s->name, name, len);
	s->name[len] = '\0';
	s->len = (uint8_t)len;
	__atomic_store_n(&m->nsvc, sid + 1, __ATOMIC_RELEASE);
	hash_put(m->svc_hash, name, len, sid);
	return (int)sid;
}

int rtfs_model_intern_service(struct rtfs_model *m, const char *name, size_t len)
{
	int sid;

	pthread_mutex_lock(&m->mu);
	sid = intern_service(m, name, len);
	pthread_mutex_unlock(&m->mu);
	return sid < 0 ? -ENOSPC : sid;
}

int rtfs_model_find_host(const struct rtfs_model *m, const char *name)
{
	uint32_t n = rtfs_model_nhosts(m);

	for (uint32_t i = 0; i < n; i++)
		if (!strcmp(m->hosts[i]->name, name))
			return (int)i;
	return -1;
}

static int intern_host(struct rtfs_model *m, const char *name)
{
	int found = rtfs_model_find_host(m, name);
	struct rtfs_host *h;

	if (found >= 0)
		return found;
	if (m->nhosts >= RTFS_MAX_HOSTS)
		return -1;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -1;
	snprintf(h->name, sizeof(h->name), "%s", name);
	h->hid = (uint16_t)m->nhosts;
	m->hosts[m->nhosts] = h;
	/* Release: the host is complete before it is counted. */
	__atomic_store_n(&m->nhosts, m->nhosts + 1, __ATOMIC_RELEASE);
	return h->hid;
}

/* ------------------------------------------------------------------------
 * Decoding blocks
 * ------------------------------------------------------------------------ */

int rtfs_block_decode(struct rtfs_model *m, struct rtfs_block *b, const struct rt_block **out,
		      const char **host, size_t *host_len)
{
	struct scratch *sc = scratch();
	struct rtfs_seg *sg = b->seg;
	int err;

	if (!sc)
		return -ENOMEM;
	pthread_rwlock_rdlock(&sg->lock);
	/* Removed by retention: its file is closed; not damage. */
	err = sg->removed ? -ENODATA : rt_seg_read_body(sg->s, b->idx, &sc->body);
	pthread_rwlock_unlock(&sg->lock);
	if (err == -ENOMEM || err == -ENODATA)
		return err;
	if (err) {
		rtfs_model_damaged(m, b,
				   err == -EBADMSG ? "data does not decompress or fails its checksum"
						   : "cannot be read");
		return -EIO;
	}
	err = rt_block_decode(sc->body.p, sc->body.len, b->first_seq, b->nrec, &sc->blk);
	if (err == -ENOMEM)
		return err;
	if (err) {
		rtfs_model_damaged(m, b, "its records are malformed");
		return -EIO;
	}
	if (__atomic_load_n(&b->health, __ATOMIC_RELAXED) == 0)
		__atomic_store_n(&b->health, 1, __ATOMIC_RELAXED);
	*out = &sc->blk;
	/* The header never changes after the segment was opened. */
	*host = sg->s->hdr.host;
	*host_len = strlen(sg->s->hdr.host);
	return 0;
}

void rtfs_block_local_sids(const struct rtfs_model *m, const struct rt_block *blk, int32_t *map)
{
	for (uint32_t i = 0; i < blk->nsvc; i++) {
		const uint8_t *s = blk->svc_names + blk->svc_off[i];
		map[i] = rtfs_model_find_service(m, (const char *)s + 1, s[0]);
	}
}

int rtfs_block_maybe_trace(struct rtfs_block *b, const uint8_t trace[16])
{
	int r;

	pthread_rwlock_rdlock(&b->seg->lock);
	r = rt_bloom_maybe(&b->seg->s->blocks[b->idx], trace);
	pthread_rwlock_unlock(&b->seg->lock);
	return r;
}

void rtfs_block_willneed(struct rtfs_block *b)
{
	uint64_t off;
	uint32_t len;

	pthread_rwlock_rdlock(&b->seg->lock);
	off = b->seg->s->blocks[b->idx].data_off;
	len = b->seg->s->blocks[b->idx].data_len;
	/* Only a hint: the read that follows checks everything. */
	if (!b->seg->removed)
		(void)posix_fadvise(b->seg->fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED);
	pthread_rwlock_unlock(&b->seg->lock);
}

int rtfs_block_check(struct rtfs_model *m, struct rtfs_block *b)
{
	uint64_t off, sum;
	uint32_t len;
	uint8_t *buf;
	size_t done = 0;
	int bad = 0;

	pthread_rwlock_rdlock(&b->seg->lock);
	off = b->seg->s->blocks[b->idx].data_off;
	len = b->seg->s->blocks[b->idx].data_len;
	sum = b->seg->s->blocks[b->idx].data_sum;
	pthread_rwlock_unlock(&b->seg->lock);
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	pthread_rwlock_rdlock(&b->seg->lock);
	if (b->seg->removed) {
		pthread_rwlock_unlock(&b->seg->lock);
		free(buf);
		return -ENODATA;
	}
	while (done < len) {
		ssize_t r = pread(b->seg->fd, buf + done, len - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			bad = 1;
			break;
		}
		done += (size_t)r;
	}
	pthread_rwlock_unlock(&b->seg->lock);
	if (!bad && XXH3_64bits(buf, len) != sum)
		bad = 1;
	free(buf);
	if (bad) {
		rtfs_model_damaged(m, b, "data fails its checksum");
		return -EIO;
	}
	__atomic_store_n(&b->health, 1, __ATOMIC_RELAXED);
	return 0;
}

/* ------------------------------------------------------------------------
 * Building a block from its INDEX frame
 * ------------------------------------------------------------------------ */

struct tuple {
	uint32_t hour, sid, cls, len;
};

static int cmp_tuple(const void *a, const void *b)
{
	const struct tuple *x = a, *y = b;

	if (x->hour != y->hour)
		return x->hour < y->hour ? -1 : 1;
	if (x->sid != y->sid)
		return x->sid < y->sid ? -1 : 1;
	if (x->cls != y->cls)
		return x->cls < y->cls ? -1 : 1;
	return 0;
}

/* A leading decimal of @msg followed by @word, else 0. */
static uint64_t count_before(const char *msg, size_t len, const char *word)
{
	size_t i = 0, wl = strlen(word);
	uint64_t v = 0;

	while (i < len && msg[i] >= '0' && msg[i] <= '9' && i < 19)
		v = v * 10 + (uint64_t)(msg[i++] - '0');
	if (i == 0 || len - i < wl || memcmp(msg + i, word, wl) != 0)
		return 0;
	return v;
}

/*
 * What a loss record counts (docs/ring.md, "Losses become records"): its
 * attributes refused=N, lost=N, malformed_bytes=N; records made before they
 * existed say it in the message ("N records dropped" were refused calls,
 * "1 record lost", "N bytes of malformed records").
 */
static void loss_counts(const struct rt_rec *r, uint64_t *refused, uint64_t *lost,
			uint64_t *malformed)
{
	struct rt_attr_view a;
	size_t pos = 0;
	int attrs = 0;

	while (r->attrs_len && rt_attr_next(r->attrs, r->attrs_len, &pos, &a) == 1) {
		uint64_t v = 0, *to = NULL;
		if (a.key_len == 7 && !memcmp(a.key, "refused", 7))
			to = refused;
		else if (a.key_len == 4 && !memcmp(a.key, "lost", 4))
			to = lost;
		else if (a.key_len == 15 && !memcmp(a.key, "malformed_bytes", 15))
			to = malformed;
		if (!to)
			continue;
		for (size_t k = 0; k < a.value_len && k < 19 && a.value[k] >= '0' && a.value[k] <= '9';
		     k++)
			v = v * 10 + (uint64_t)(a.value[k] - '0');
		*to += v;
		attrs = 1;
	}
	if (attrs)
		return;
	*refused += count_before(r->msg, r->msg_len, " records dropped");
	*lost += count_before(r->msg, r->msg_len, " record lost");
	*lost += count_before(r->msg, r->msg_len, " records lost");
	*malformed += count_before(r->msg, r->msg_len, " bytes of malformed");
}

/* What only the body can tell: exact sizes when the index was made for
 * another line format, the hours of a block that spans several, and the
 * loss reports. */
static int index_decode(struct rtfs_model *m, struct rtfs_block *b, int exact, int straddle,
			int lossy)
{
	const struct rt_block *blk;
	const char *host;
	size_t host_len;
	struct tuple *t = NULL;
	struct scratch *prev;
	int32_t *map = NULL;
	int err;

	/* m->mu held: one refresher at a time uses the refreshing slot. */
	prev = held;
	held = &slots[RTFS_SCRATCH_SLOTS];
	err = rtfs_block_decode(m, b, &blk, &host, &host_len);
	held = prev;
	if (err)
		return err;
	map = malloc(sizeof(*map) * (blk->nsvc ? blk->nsvc : 1));
	if (straddle)
		t = malloc(sizeof(*t) * blk->nrec);
	if (!map || (straddle && !t)) {
		err = -ENOMEM;
		goto out;
	}
	rtfs_block_local_sids(m, blk, map);
	if (exact)
		for (uint32_t j = 0; j < b->nsvc; j++)
			memset(b->svc[j].bytes, 0, sizeof(b->svc[j].bytes));
	for (uint32_t k = 0; k < blk->nrec; k++) {
		struct rt_rec r;
		uint32_t len = 0;
		int32_t sid = map[blk->svc[k]];
		int cls;

		rt_block_rec(blk, k, &r);
		cls = rt_sev_class(r.severity);
		if (exact || straddle)
			len = (uint32_t)rt_render_len(&r, b->first_seq + k, host_len);
		if (exact && sid >= 0) {
			struct rtfs_svcrec *e =
				(struct rtfs_svcrec *)rtfs_block_svc(b, (uint32_t)sid);
			if (e)
				e->bytes[cls] += len;
		}
		if (straddle) {
			t[k].hour = (uint32_t)(r.time_ns / RTFS_HOUR_NS);
			t[k].sid = (uint32_t)sid;
			t[k].cls = (uint32_t)cls;
			t[k].len = len;
		}
		if (lossy && (r.flags & RT_REC_LOSS)) {
			b->loss_records++;
			loss_counts(&r, &b->refused, &b->lost, &b->malformed);
		}
	}
	if (straddle) {
		uint32_t n = 0;
		qsort(t, blk->nrec, sizeof(*t), cmp_tuple);
		b->parts = calloc(blk->nrec, sizeof(*b->parts));
		if (!b->parts) {
			err = -ENOMEM;
			goto out;
		}
		for (uint32_t k = 0; k < blk->nrec; k++) {
			if (n && !cmp_tuple(&t[k], &t[k - 1])) {
				b->parts[n - 1].count++;
				b->parts[n - 1].bytes += t[k].len;
				continue;
			}
			b->parts[n].hour = t[k].hour;
			b->parts[n].sid = t[k].sid;
			b->parts[n].cls = t[k].cls;
			b->parts[n].count = 1;
			b->parts[n].bytes = t[k].len;
			n++;
		}
		b->nparts = n;
	}
out:
	free(t);
	free(map);
	return err;
}

static int svcrec_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct rtfs_svcrec *)a)->sid, y = ((const struct rtfs_svcrec *)b)->sid;

	return x < y ? -1 : x > y;
}

static int build_block(struct rtfs_model *m, struct rtfs_seg *sg, uint32_t i, struct rtfs_block *b)
{
	const struct rt_seg_block *sb = &sg->s->blocks[i];
	int exact, straddle, lossy = 0, err;

	memset(b, 0, sizeof(*b));
	b->idx = i;
	b->seg = sg;
	b->first_seq = sb->first_seq;
	b->nrec = sb->nrec;
	b->hid = sg->spool->hid;
	b->tmin = sb->tmin;
	b->tmax = sb->tmax;
	b->found_ns = wall_ns();
	b->svc = calloc(sb->nsvc, sizeof(*b->svc));
	if (!b->svc)
		return -ENOMEM;
	for (uint32_t j = 0; j < sb->nsvc; j++) {
		int sid = intern_service(m, sb->svc[j].name, sb->svc[j].name_len);
		if (sid < 0) {
			m->overflow++;
			continue;
		}
		b->svc[b->nsvc].sid = (uint32_t)sid;
		memcpy(b->svc[b->nsvc].count, sb->svc[j].count, sizeof(b->svc[0].count));
		memcpy(b->svc[b->nsvc].bytes, sb->svc[j].bytes, sizeof(b->svc[0].bytes));
		if (sb->svc[j].name_len == 8 && !memcmp(sb->svc[j].name, "ringtail", 8) &&
		    sb->svc[j].count[rt_sev_class(RT_WARN)])
			lossy = 1;
		b->nsvc++;
	}
	/* By sid: a file of one service finds its entry by bisection (a
	 * block can hold 65,535 services). */
	qsort(b->svc, b->nsvc, sizeof(*b->svc), svcrec_cmp);
	exact = sb->render_version != RT_RENDER_VERSION;
	straddle = b->tmin / RTFS_HOUR_NS != b->tmax / RTFS_HOUR_NS;
	if (exact || straddle || lossy) {
		err = index_decode(m, b, exact, straddle, lossy);
		/* A damaged body is reported and reads of it fail; its records
		 * count in hour(tmin) and with the sizes the index gives. */
		if (err == -ENOMEM)
			return err;
	}
	return 0;
}

/* Append @b to the block list. Called under m->mu. */
static int publish(struct rtfs_model *m, struct rtfs_block *b)
{
	uint32_t gid = m->nblocks, c = gid >> RTFS_BCHUNK_SHIFT;

	if (c >= RTFS_MAX_BCHUNKS) {
		m->overflow++;
		return -ENOSPC;
	}
	if (!m->bchunks[c]) {
		m->bchunks[c] = calloc(RTFS_BCHUNK, sizeof(struct rtfs_block));
		if (!m->bchunks[c])
			return -ENOMEM;
	}
	b->gid = gid;
	m->bchunks[c][gid & (RTFS_BCHUNK - 1)] = *b;
	/* Release: the block (and the chunk pointer) are written before the
	 * count that lets readers see them (their acquire loads pair). */
	__atomic_store_n(&m->nblocks, gid + 1, __ATOMIC_RELEASE);
	return 0;
}

static void block_free(struct rtfs_block *b)
{
	free(b->svc);
	free(b->parts);
}

/* ------------------------------------------------------------------------
 * Segments
 * ------------------------------------------------------------------------ */

static void seg_damage(struct rtfs_model *m, struct rtfs_seg *sg, const char *what)
{
	char name[32], buf[1024];

	rt_seg_name(name, sg->name);
	sg->damaged = 1;
	snprintf(sg->damage, sizeof(sg->damage), "%s", what);
	snprintf(buf, sizeof(buf), "%s/%s: %s", sg->spool->rel, name, what);
	damage_add(m, sg->spool->hid, sg->name, -1, buf);
}

static void seg_free(struct rtfs_seg *sg)
{
	if (!sg)
		return;
	rt_seg_close(sg->s);
	if (sg->fd >= 0)
		close(sg->fd);
	pthread_rwlock_destroy(&sg->lock);
	free(sg);
}

/*
 * @sg left the spool (retention, quarantine): close its file at once, so
 * its disk space is freed while mounted. Its index stays (file sizes and
 * offsets never change); a read of its blocks is -ENODATA from now on.
 * Called under m->mu; the write lock waits for readers of its file.
 */
static void seg_release(struct rtfs_seg *sg)
{
	pthread_rwlock_wrlock(&sg->lock);
	/* Release: /stats and the cache read it without the lock. */
	__atomic_store_n(&sg->removed, 1, __ATOMIC_RELEASE);
	sg->done = 1;
	if (sg->fd >= 0) {
		close(sg->fd);
		sg->fd = -1;
	}
	if (sg->s)
		sg->s->fd = -1;
	pthread_rwlock_unlock(&sg->lock);
}

static int seg_new(struct rtfs_spool *sp, uint64_t name, struct rtfs_seg **out)
{
	pthread_rwlockattr_t a;
	struct rtfs_seg *sg = calloc(1, sizeof(*sg));

	if (!sg)
		return -ENOMEM;
	sg->spool = sp;
	sg->name = name;
	sg->fd = -1;
	/* Writers first: a refresh of the open segment must not wait behind
	 * a stream of readers (it is what /tail waits for). */
	pthread_rwlockattr_init(&a);
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&sg->lock, &a);
	pthread_rwlockattr_destroy(&a);
	*out = sg;
	return 0;
}

/* Read (more of) segment @sg up to @limit (0: the whole file). */
static int seg_scan(struct rtfs_model *m, struct rtfs_seg *sg, uint64_t limit, int is_open)
{
	struct stat st;
	int err;

	if (sg->fd < 0) {
		char name[32];
		rt_seg_name(name, sg->name);
		if (sg->spool->dir_transient) {
			/* No directory descriptor is held (see spool_dir_open):
			 * the whole path beneath the root, no link followed. */
			char path[sizeof(sg->spool->rel) + 40];
			snprintf(path, sizeof(path), "%s/%s", sg->spool->rel, name);
			sg->fd = rt_openat_beneath(sg->spool->rootfd, path, O_RDONLY, 0);
			if (sg->fd < 0)
				errno = -sg->fd;
		} else {
			sg->fd = openat(sg->spool->sp->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		}
		if (sg->fd < 0) {
			err = -errno;
			if (err == -ENOENT)
				__atomic_store_n(&sg->removed, 1, __ATOMIC_RELEASE);
			return err;
		}
	}
	if (fstat(sg->fd, &st) == 0)
		sg->file_size = (uint64_t)st.st_size;
	if (!sg->s) {
		err = rt_seg_open_fd(sg->fd, 0, limit, &sg->s);
		if (err == -EBADMSG) {
			/* A header the state vouches for, or one followed by
			 * newer segments, is damage; else it may be being
			 * written (no state to tell): try again later. */
			if (!is_open || limit) {
				seg_damage(m, sg, "the header is damaged; nothing in it can be read");
				sg->done = 1;
			}
			return 0;
		}
		if (err)
			return err;
		if (sg->s->hdr.first_seq != sg->name ||
		    memcmp(sg->s->hdr.epoch, sg->spool->sp->epoch, 16)) {
			seg_damage(m, sg, "belongs to another spool or has the wrong name; not shown");
			sg->done = 1;
			return 0;
		}
	} else if (!sg->s->closed) {
		pthread_rwlock_wrlock(&sg->lock);
		err = rt_seg_refresh(sg->s, limit, 0);
		pthread_rwlock_unlock(&sg->lock);
		if (err < 0)
			return err;
	}
	if (sg->s->closed) {
		sg->done = 1;
	} else if (sg->s->damaged && !strstr(sg->s->damage, "cut short")) {
		seg_damage(m, sg, sg->s->damage);
		if (!is_open)
			sg->done = 1;
	} else if (!is_open && sg->s->damaged) {
		/* Not the open segment, and still no footer. */
		seg_damage(m, sg, sg->s->damage);
		sg->done = 1;
	} else if (!is_open && !sg->s->closed && limit == 0) {
		seg_damage(m, sg, "not closed (no footer) although newer segments exist");
		sg->done = 1;
	}
	return 0;
}

/* Publish the blocks of @sg not yet published. */
static int seg_publish(struct rtfs_model *m, struct rtfs_seg *sg)
{
	int n = 0;

	if (!sg->s)
		return 0;
	/* Only this thread (under m->mu) changes sg->s, so no lock is needed
	 * to read it here. */
	while (sg->published < sg->s->nblocks) {
		struct rtfs_block b;
		int err = build_block(m, sg, sg->published, &b);
		if (!err)
			err = publish(m, &b);
		if (err) {
			block_free(&b);
			return err;
		}
		sg->published++;
		if (b.first_seq + b.nrec - 1 > sg->spool->head_seq)
			sg->spool->head_seq = b.first_seq + b.nrec - 1;
		n++;
	}
	return n;
}

/* ------------------------------------------------------------------------
 * Spools
 * ------------------------------------------------------------------------ */

static int spool_add_seg(struct rtfs_spool *sp, uint64_t name)
{
	struct rtfs_seg *sg;
	int err;

	if (sp->nsegs == sp->segs_cap) {
		size_t cap = sp->segs_cap ? sp->segs_cap * 2 : 16;
		struct rtfs_seg **n = realloc(sp->segs, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		sp->segs = n;
		sp->segs_cap = cap;
	}
	err = seg_new(sp, name, &sg);
	if (err)
		return err;
	sp->segs[sp->nsegs++] = sg;
	return 0;
}

/* List the spool: new segments (up to @upto when the state names the open
 * one), and segments that went away (retention, quarantine). */
static int spool_list(struct rtfs_spool *sp, int have, uint64_t upto)
{
	uint64_t *names = NULL, last = sp->nsegs ? sp->segs[sp->nsegs - 1]->name : 0;
	size_t j = 0;
	int n, err = 0;

	n = rt_spool_list(sp->sp, &names);
	if (n < 0)
		return n;
	/* Mark what is gone (both lists are ascending). */
	for (size_t i = 0; i < sp->nsegs; i++) {
		while (j < (size_t)n && names[j] < sp->segs[i]->name)
			j++;
		if ((j >= (size_t)n || names[j] != sp->segs[i]->name) && !sp->segs[i]->removed)
			seg_release(sp->segs[i]);
	}
	for (int i = 0; i < n; i++) {
		if (sp->nsegs && names[i] <= last)
			continue;
		if (have && names[i] > upto)
			break;
		err = spool_add_seg(sp, names[i]);
		if (err)
			break;
	}
	free(names);
	return err;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * A central server's host spools do not keep their directory open: 10,000
 * hosts would hold 10,000 descriptors besides one per segment, past a
 * common hard limit of 20,000. The directory is opened (HOST/EPOCH beneath
 * the central's root, no link followed) around the calls that need it,
 * under m->mu.
 */
static int spool_dir_open(struct rtfs_spool *sp)
{
	int fd;

	if (sp->sp->dirfd >= 0)
		return 0;
	fd = rt_openat_beneath(sp->rootfd, sp->rel, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	sp->sp->dirfd = fd;
	return 0;
}

static void spool_dir_close(struct rtfs_spool *sp)
{
	if (sp->dir_transient && sp->sp->dirfd >= 0) {
		close(sp->sp->dirfd);
		sp->sp->dirfd = -1;
	}
}

static int spool_refresh_locked(struct rtfs_model *m, struct rtfs_spool *sp, int full);

static int spool_refresh(struct rtfs_model *m, struct rtfs_spool *sp, int full)
{
	int n = spool_refresh_locked(m, sp, full);

	spool_dir_close(sp);
	return n;
}

static int spool_refresh_locked(struct rtfs_model *m, struct rtfs_spool *sp, int full)
{
	struct rt_spool_state st;
	uint64_t now = mono_ns();
	int have = 0, n = 0, err;

	memset(&st, 0, sizeof(st));
	/* Mounted before the spooler (or the central) made SPOOL/state. */
	if (!sp->sp->state && (full || now - sp->last_list_ns >= 50ull * 1000000) &&
	    spool_dir_open(sp) == 0)
		rt_spool_map_state(sp->sp);
	if (sp->sp->state && rt_state_read(sp->sp->state, &st) == 0 &&
	    !memcmp(st.epoch, sp->sp->epoch, 16) && st.segment)
		have = 1;
	if (!have && !full && now - sp->last_list_ns < 50ull * 1000000)
		return 0; /* no state to watch: look at most every 50 ms */
	if (have && !full && sp->have_state && st.gen == sp->last_gen)
		return 0;
	if (full || !have || !sp->have_state || st.segment != sp->open_seg || sp->nsegs == 0) {
		err = spool_dir_open(sp);
		if (!err)
			err = spool_list(sp, have, st.segment);
		if (err)
			return err;
		sp->last_list_ns = now;
	}
	for (size_t i = 0; i < sp->nsegs; i++) {
		struct rtfs_seg *sg = sp->segs[i];
		uint64_t limit = 0;
		int is_open;

		if (sg->done)
			continue;
		if (have) {
			if (sg->name > st.segment)
				break; /* not published yet */
			is_open = sg->name == st.segment;
			if (is_open)
				limit = st.segment_bytes;
		} else {
			is_open = i == sp->nsegs - 1;
		}
		err = seg_scan(m, sg, limit, is_open);
		if (err == -ENOENT) {
			sg->done = 1;
			continue;
		}
		if (err)
			return err;
		err = seg_publish(m, sg);
		if (err < 0)
			return err;
		n += err;
	}
	sp->have_state = have;
	if (have) {
		sp->last_gen = st.gen;
		sp->open_seg = st.segment;
		sp->durable_seq = st.durable_seq;
		sp->records_total = st.records_total;
		sp->spooler_pid = st.pid;
		sp->updated_ns = st.updated_ns;
	}
	return n;
}

/* FNV-1a of a spool's rel path. */
static uint64_t rel_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 1099511628211ull;
	return h;
}

static void rel_put(uint32_t *tab, size_t cap, struct rtfs_spool **spools, uint32_t i)
{
	size_t k = (size_t)rel_hash(spools[i]->rel) & (cap - 1);

	while (tab[k])
		k = (k + 1) & (cap - 1);
	tab[k] = i + 1;
}

/* Is a spool of @rel known? (scan_hosts asks for each HOST/EPOCH every
 * second: a linear search was quadratic in the hosts.) */
static int rel_known(const struct rtfs_model *m, const char *rel)
{
	size_t k;

	if (!m->rel_cap)
		return 0;
	for (k = (size_t)rel_hash(rel) & (m->rel_cap - 1); m->rel_tab[k];
	     k = (k + 1) & (m->rel_cap - 1))
		if (!strcmp(m->spools[m->rel_tab[k] - 1]->rel, rel))
			return 1;
	return 0;
}

/* Index m->spools[m->nspools - 1], growing the table to stay half empty. */
static int rel_index_last(struct rtfs_model *m)
{
	if (2 * m->nspools >= m->rel_cap) {
		size_t cap = m->rel_cap ? m->rel_cap * 2 : 64;
		uint32_t *t;
		while (2 * m->nspools >= cap)
			cap *= 2;
		t = calloc(cap, sizeof(*t));
		if (!t)
			return -ENOMEM;
		for (size_t i = 0; i + 1 < m->nspools; i++)
			rel_put(t, cap, m->spools, (uint32_t)i);
		free(m->rel_tab);
		m->rel_tab = t;
		m->rel_cap = cap;
	}
	rel_put(m->rel_tab, m->rel_cap, m->spools, (uint32_t)(m->nspools - 1));
	return 0;
}

static void spool_free(struct rtfs_spool *sp);

static int add_spool(struct rtfs_model *m, const char *path, const char *rel, const char *host)
{
	struct rtfs_spool *sp;
	int err, hid;

	if (m->nspools == m->spools_cap) {
		size_t cap = m->spools_cap ? m->spools_cap * 2 : 8;
		struct rtfs_spool **n = realloc(m->spools, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		m->spools = n;
		m->spools_cap = cap;
	}
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	err = rt_spool_open(path, NULL, 0, &sp->sp);
	if (err) {
		free(sp);
		return err;
	}
	hid = intern_host(m, host ? host : sp->sp->host);
	if (hid < 0) {
		rt_spool_close(sp->sp);
		free(sp);
		m->overflow++;
		return -ENOSPC;
	}
	sp->hid = (uint16_t)hid;
	snprintf(sp->rel, sizeof(sp->rel), "%s", rel);
	if (host) {
		sp->rootfd = m->rootfd;
		sp->dir_transient = 1;
		spool_dir_close(sp);
	}
	m->spools[m->nspools++] = sp;
	if (rel_index_last(m)) {
		m->spools[--m->nspools] = NULL;
		spool_free(sp);
		return -ENOMEM;
	}
	return 0;
}

static void spool_free(struct rtfs_spool *sp)
{
	if (!sp)
		return;
	for (size_t i = 0; i < sp->nsegs; i++)
		seg_free(sp->segs[i]);
	free(sp->segs);
	rt_spool_close(sp->sp);
	free(sp);
}

static int is_epoch_name(const char *s)
{
	size_t i;

	for (i = 0; i < 32; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[32] == '\0';
}

struct epoch_ent {
	char name[33];
	uint64_t created;
};

static int cmp_epoch(const void *a, const void *b)
{
	const struct epoch_ent *x = a, *y = b;

	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Find HOST/EPOCH spools of a central server not yet known. */
static int scan_hosts(struct rtfs_model *m)
{
	int hfd = openat(m->rootfd, RT_CENTRAL_HOSTS, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	if (hfd < 0)
		return errno == ENOENT ? 0 : -errno;
	d = fdopendir(hfd);
	if (!d) {
		close(hfd);
		return -errno;
	}
	while ((de = readdir(d))) {
		struct epoch_ent *ep = NULL;
		size_t nep = 0, cap = 0;
		struct dirent *e2;
		DIR *d2;
		int efd;

		if (de->d_name[0] == '.' || strlen(de->d_name) > 255)
			continue;
		efd = openat(hfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (efd < 0)
			continue;
		d2 = fdopendir(efd);
		if (!d2) {
			close(efd);
			continue;
		}
		while ((e2 = readdir(d2))) {
			char rel[600];
			int known = 0;
			struct stat st;
			if (!is_epoch_name(e2->d_name))
				continue;
			snprintf(rel, sizeof(rel), "hosts/%s/%s", de->d_name, e2->d_name);
			known = rel_known(m, rel);
			if (known)
				continue;
			if (nep == cap) {
				struct epoch_ent *n;
				cap = cap ? cap * 2 : 4;
				n = realloc(ep, cap * sizeof(*n));
				if (!n)
					break;
				ep = n;
			}
			memcpy(ep[nep].name, e2->d_name, 33); /* 32 hex digits and a NUL */
			ep[nep].created = 0;
			if (fstatat(efd, e2->d_name, &st, 0) == 0)
				ep[nep].created = (uint64_t)st.st_mtim.tv_sec;
			nep++;
		}
		closedir(d2);
		/* Older epochs first (their spool.meta's creation time). */
		for (size_t i = 0; i < nep; i++) {
			char path[8192];
			struct rt_spool *tmp;
			snprintf(path, sizeof(path), "%s/%s/%s/%s", m->root, RT_CENTRAL_HOSTS, de->d_name,
				 ep[i].name);
			if (rt_spool_open(path, NULL, 0, &tmp) == 0) {
				ep[i].created = tmp->created_ns;
				rt_spool_close(tmp);
			} else {
				ep[i].created = UINT64_MAX; /* not ready: skipped below */
			}
		}
		if (nep > 1)
			qsort(ep, nep, sizeof(*ep), cmp_epoch);
		for (size_t i = 0; i < nep; i++) {
			char path[8192], rel[600];
			if (ep[i].created == UINT64_MAX)
				continue;
			snprintf(path, sizeof(path), "%s/%s/%s/%s", m->root, RT_CENTRAL_HOSTS, de->d_name,
				 ep[i].name);
			snprintf(rel, sizeof(rel), "hosts/%s/%s", de->d_name, ep[i].name);
			add_spool(m, path, rel, de->d_name);
		}
		free(ep);
	}
	closedir(d);
	return 0;
}

/* Up to this many spools, every request refreshes them all. */
#define RTFS_REFRESH_EACH_MAX 64

int rtfs_model_refresh(struct rtfs_model *m, int full)
{
	uint64_t now = mono_ns();
	int n = 0, err = 0;

	pthread_mutex_lock(&m->mu);
	/* Many hosts: every FUSE request looking at every host's state made
	 * each request cost O(hosts) (10,000 hosts: 0.5 ms each). Look at
	 * most once a millisecond after the last look, the /tail poll
	 * interval. */
	if (!full && m->nspools > RTFS_REFRESH_EACH_MAX && now - m->last_refresh_ns < 1000000) {
		pthread_mutex_unlock(&m->mu);
		return 0;
	}
	m->last_refresh_ns = now;
	if (m->central && (full || now - m->last_hostscan_ns > 1000ull * 1000000)) {
		m->last_hostscan_ns = now;
		err = scan_hosts(m);
	}
	for (size_t i = 0; i < m->nspools; i++) {
		int r = spool_refresh(m, m->spools[i], full);
		if (r < 0 && !err)
			err = r;
		if (r > 0)
			n += r;
	}
	m->last_refresh_ns = mono_ns(); /* from its end: a slow one is not rerun at once */
	pthread_mutex_unlock(&m->mu);
	return n ? n : err;
}

int rtfs_model_stale(struct rtfs_model *m)
{
	int stale = 0;

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nspools && !stale; i++) {
		struct rtfs_spool *sp = m->spools[i];
		struct rt_spool_state st;
		if (!sp->sp->state || !sp->have_state)
			stale = 1;
		else if (rt_state_read(sp->sp->state, &st) == 0 && st.gen != sp->last_gen)
			stale = 1;
	}
	pthread_mutex_unlock(&m->mu);
	return stale;
}

int rtfs_model_open(const char *path, struct rtfs_model **out)
{
	struct rtfs_model *m;
	int err;

	if (strlen(path) >= sizeof(m->root))
		return -ENAMETOOLONG;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	snprintf(m->root, sizeof(m->root), "%s", path);
	m->rootfd = -1;
	m->mount_ns = wall_ns();
	pthread_mutex_init(&m->mu, NULL);
	pthread_mutex_init(&m->dmu, NULL);
	m->rootfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m->rootfd < 0) {
		err = -errno;
		goto fail;
	}
	if (faccessat(m->rootfd, RT_CENTRAL_META, F_OK, 0) == 0) {
		char buf[64] = {0};
		int fd = openat(m->rootfd, RT_CENTRAL_META, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		ssize_t r;
		if (fd < 0) {
			err = -errno;
			goto fail;
		}
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r < 0) {
			err = -errno;
			goto fail;
		}
		if (strncmp(buf, "ringtail-central 1", 18) != 0) {
			err = -EBADMSG;
			goto fail;
		}
		m->central = 1;
	} else {
		err = add_spool(m, path, ".", NULL);
		if (err == -ENOENT)
			err = -EBADMSG; /* a directory, but no spool.meta */
		if (err)
			goto fail;
	}
	err = rtfs_model_refresh(m, 1);
	if (err < 0)
		goto fail;
	*out = m;
	return 0;
fail:
	rtfs_model_close(m);
	return err;
}

void rtfs_model_close(struct rtfs_model *m)
{
	uint32_t n;

	if (!m)
		return;
	n = m->nblocks;
	for (uint32_t i = 0; i < n; i++)
		block_free(rtfs_model_block(m, i));
	for (uint32_t c = 0; c < RTFS_MAX_BCHUNKS && m->bchunks[c]; c++)
		free(m->bchunks[c]);
	for (size_t i = 0; i < m->nspools; i++)
		spool_free(m->spools[i]);
	free(m->spools);
	free(m->rel_tab);
	for (uint32_t i = 0; i < m->nhosts; i++)
		free(m->hosts[i]);
	for (size_t i = 0; i < RTFS_MAX_SERVICES / 1024; i++)
		free(m->svc_chunks[i]);
	while (m->svc_hash) {
		struct rtfs_svc_hash *t = m->svc_hash;
		m->svc_hash = t->older;
		free(t);
	}
	free(m->damage);
	if (m->rootfd >= 0)
		close(m->rootfd);
	pthread_mutex_destroy(&m->mu);
	pthread_mutex_destroy(&m->dmu);
	free(m);
}
