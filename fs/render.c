/* SPDX-License-Identifier: MIT */
/*
 * render.c - decode + render a block's lines, the render cache, and the
 * prefetch workers.
 *
 * Cache entries are found by (gid, simplest filter). An entry is LOADING
 * while one thread renders it (others wait on c->cond), then READY or
 * failed. Entries in use (refs > 0) are never evicted; the others go in LRU
 * order once the cache holds more than its budget.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <xxhash.h>

#include "line.h"
#include "render.h"

/* ------------------------------------------------------------------------
 * Rendering
 * ------------------------------------------------------------------------ */

int rtfs_render_block(struct rtfs_model *m, struct rtfs_block *b, const struct rtfs_filter *f,
		      char *out, uint32_t len)
{
	const struct rt_block *blk;
	const char *host;
	size_t host_len;
	int32_t map[256], *mp = map;
	int err;

	rtfs_scratch_acquire(); /* bounded: not one block's scratch per thread */
	err = rtfs_block_decode(m, b, &blk, &host, &host_len);
	if (err) {
		rtfs_scratch_release();
		return err;
	}
	if (blk->nsvc > 256) {
		mp = malloc(sizeof(*mp) * blk->nsvc);
		if (!mp) {
			rtfs_scratch_release();
			return -ENOMEM;
		}
	}
	rtfs_block_local_sids(m, blk, mp);
	err = rtfs_lines(blk, b->first_seq, host, host_len, mp, f, out, len);
	rtfs_scratch_release();
	if (mp != map)
		free(mp);
	if (err == -EIO)
		rtfs_model_damaged(m, b, "its lines do not come to the size its index gives");
	return err;
}

/* ------------------------------------------------------------------------
 * The cache
 * ------------------------------------------------------------------------ */

enum { LOADING = 0, READY = 1 };

struct entry {
	struct rtfs_rbuf rb;      /* first: rtfs_cache_put() casts back */
	uint32_t gid;
	struct rtfs_filter f;
	uint64_t hash;
	int state;                /* LOADING, READY or -errno */
	int refs;
	int done;                 /* read to its end once: the page cache has it */
	size_t cap;
	char *buf;
	struct entry *hnext;
	struct entry *prev, *next; /* LRU: head = most recent */
};

struct job {
	uint32_t gid;
	uint32_t len;
	struct rtfs_filter f;
};

#define BUCKETS 4096u
#define QCAP 64u
#define POOL_MAX (64u << 20)

struct rtfs_cache {
	struct rtfs_model *m;
	size_t budget;
	pthread_mutex_t mu;
	pthread_cond_t done;      /* an entry left LOADING */
	pthread_cond_t work;      /* a job was queued, or stop */
	struct entry *bucket[BUCKETS];
	struct entry *head, *tail;
	size_t bytes;             /* buffers of entries in the cache */
	size_t done_bytes;        /* ... of entries read to their end */
	/* Prefetch queue (a ring). */
	struct job q[QCAP];
	uint32_t qh, qn;
	int stop;
	int nworkers;
	pthread_t *workers;
	/* Freed buffers kept for reuse: fresh memory costs page faults. */
	struct pooled {
		char *p;
		size_t cap;
	} pool[64];
	int npool;
	size_t pool_bytes;
	struct rtfs_cache_stats st;
};

static uint64_t key_hash(uint32_t gid, const struct rtfs_filter *f)
{
	return XXH3_64bits_withSeed(f, sizeof(*f), gid);
}

static void lru_unlink(struct rtfs_cache *c, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_front(struct rtfs_cache *c, struct entry *e)
{
	e->next = c->head;
	e->prev = NULL;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

static struct entry *find(struct rtfs_cache *c, uint32_t gid, const struct rtfs_filter *f,
			  uint64_t h)
{
	struct entry *e;

	for (e = c->bucket[h % BUCKETS]; e; e = e->hnext)
		if (e->hash == h && e->gid == gid && !memcmp(&e->f, f, sizeof(*f)))
			return e;
	return NULL;
}

static void unhash(struct rtfs_cache *c, struct entry *e)
{
	struct entry **pp;

	for (pp = &c->bucket[e->hash % BUCKETS]; *pp; pp = &(*pp)->hnext)
		if (*pp == e) {
			*pp = e->hnext;
			return;
		}
}

/* A buffer of at least @len bytes, from the pool if one fits. c->mu held. */
static char *buf_get(struct rtfs_cache *c, size_t len, size_t *cap)
{
	int best = -1;
	char *p;

	for (int i = 0; i < c->npool; i++)
		if (c->pool[i].cap >= len && c->pool[i].cap <= 2 * len + 65536 &&
		    (best < 0 || c->pool[i].cap < c->pool[best].cap))
			best = i;
	if (best >= 0) {
		p = c->pool[best].p;
		*cap = c->pool[best].cap;
		c->pool_bytes -= *cap;
		c->pool[best] = c->pool[--c->npool];
		return p;
	}
	*cap = len ? len : 1;
	return malloc(*cap);
}

static void buf_put(struct rtfs_cache *c, char *p, size_t cap)
{
	if (!p)
		return;
	/* Kept buffers count against the budget with the cache's own. */
	if (c->npool < 64 && c->pool_bytes + cap <= POOL_MAX &&
	    c->bytes + c->pool_bytes + cap <= c->budget) {
		c->pool[c->npool].p = p;
		c->pool[c->npool].cap = cap;
		c->npool++;
		c->pool_bytes += cap;
		return;
	}
	free(p);
}

static void drop(struct rtfs_cache *c, struct entry *e)
{
	lru_unlink(c, e);
	unhash(c, e);
	c->bytes -= e->cap;
	if (e->done)
		c->done_bytes -= e->cap;
	buf_put(c, e->buf, e->cap);
	free(e);
	c->st.evicted++;
}

/* Drop entries nobody uses until the cache fits its budget: first those
 * read to their end (the kernel's page cache holds their bytes now), then
 * the least recently used. c->mu held. */
static void evict(struct rtfs_cache *c)
{
	for (int pass = 0; pass < 2 && c->bytes > c->budget; pass++) {
		struct entry *e = c->tail;
		while (c->bytes > c->budget && e) {
			struct entry *prev = e->prev;
			if (e->refs == 0 && e->state != LOADING && (pass || e->done))
				drop(c, e);
			e = prev;
		}
	}
}

/* Render entry @e (LOADING, ours) outside the lock, then publish it. */
static void fill(struct rtfs_cache *c, struct entry *e)
{
	struct rtfs_block *b = rtfs_model_block(c->m, e->gid);
	int err = rtfs_render_block(c->m, b, &e->f, e->buf, e->rb.len);

	pthread_mutex_lock(&c->mu);
	e->state = err ? err : READY;
	pthread_cond_broadcast(&c->done);
	pthread_mutex_unlock(&c->mu);
}

/* Find or start the entry for (@gid, @f). c->mu held. *@mine says whether
 * the caller must fill() it. NULL on ENOMEM. */
static struct entry *lookup(struct rtfs_cache *c, uint32_t gid, const struct rtfs_filter *f,
			    uint32_t len, int *mine)
{
	uint64_t h = key_hash(gid, f);
	struct entry *e = find(c, gid, f, h);

	*mine = 0;
	if (e) {
		/* A failed render is retried by the next reader. */
		if (e->state < 0 && e->refs == 0) {
			e->state = LOADING;
			*mine = 1;
		}
		lru_unlink(c, e);
		lru_front(c, e);
		return e;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->buf = buf_get(c, len, &e->cap);
	if (!e->buf) {
		free(e);
		return NULL;
	}
	e->gid = gid;
	e->f = *f;
	e->hash = h;
	e->state = LOADING;
	e->rb.data = e->buf;
	e->rb.len = len;
	e->hnext = c->bucket[h % BUCKETS];
	c->bucket[h % BUCKETS] = e;
	lru_front(c, e);
	c->bytes += e->cap;
	*mine = 1;
	evict(c);
	return e;
}

int rtfs_cache_get(struct rtfs_cache *c, uint32_t gid, const struct rtfs_filter *f, uint32_t len,
		   const struct rtfs_rbuf **out)
{
	struct rtfs_filter nf;
	struct entry *e;
	int mine, err;

	/* A block whose segment retention removed is gone, even if its
	 * lines are still in the cache. */
	if (__atomic_load_n(&rtfs_model_block(c->m, gid)->seg->removed, __ATOMIC_ACQUIRE))
		return -ENODATA;
	rtfs_filter_for_block(rtfs_model_block(c->m, gid), f, &nf);
	pthread_mutex_lock(&c->mu);
	e = lookup(c, gid, &nf, len, &mine);
	if (!e) {
		pthread_mutex_unlock(&c->mu);
		return -ENOMEM;
	}
	e->refs++;
	if (mine) {
		c->st.misses++;
		pthread_mutex_unlock(&c->mu);
		fill(c, e);
		pthread_mutex_lock(&c->mu);
	} else if (e->state == LOADING) {
		c->st.waits++;
		while (e->state == LOADING)
			pthread_cond_wait(&c->done, &c->mu);
	} else {
		c->st.hits++;
	}
	err = e->state < 0 ? e->state : 0;
	if (err) {
		e->refs--;
		pthread_mutex_unlock(&c->mu);
		return err;
	}
	pthread_mutex_unlock(&c->mu);
	*out = &e->rb;
	return 0;
}

void rtfs_cache_put(struct rtfs_cache *c, const struct rtfs_rbuf *rb, int to_end)
{
	struct entry *e = (struct entry *)(uintptr_t)rb;

	if (!rb)
		return;
	pthread_mutex_lock(&c->mu);
	e->refs--;
	if (to_end && !e->done) {
		e->done = 1;
		c->done_bytes += e->cap;
		/* First in line for eviction. */
		lru_unlink(c, e);
		e->prev = c->tail;
		e->next = NULL;
		if (c->tail)
			c->tail->next = e;
		c->tail = e;
		if (!c->head)
			c->head = e;
	}
	if (c->bytes > c->budget)
		evict(c);
	pthread_mutex_unlock(&c->mu);
}

void rtfs_cache_prefetch(struct rtfs_cache *c, uint32_t gid, const struct rtfs_filter *f,
			 uint32_t len)
{
	struct rtfs_filter nf;
	struct job *j;

	if (!c->nworkers)
		return;
	rtfs_filter_for_block(rtfs_model_block(c->m, gid), f, &nf);
	pthread_mutex_lock(&c->mu);
	if (c->qn == QCAP || find(c, gid, &nf, key_hash(gid, &nf))) {
		pthread_mutex_unlock(&c->mu);
		return;
	}
	for (uint32_t i = 0; i < c->qn; i++) {
		j = &c->q[(c->qh + i) % QCAP];
		if (j->gid == gid && !memcmp(&j->f, &nf, sizeof(nf))) {
			pthread_mutex_unlock(&c->mu);
			return;
		}
	}
	j = &c->q[(c->qh + c->qn) % QCAP];
	j->gid = gid;
	j->len = len;
	j->f = nf;
	c->qn++;
	pthread_cond_signal(&c->work);
	pthread_mutex_unlock(&c->mu);
	/* The disk starts on it now, not when a worker gets to it. */
	rtfs_block_willneed(rtfs_model_block(c->m, gid));
}

static void *worker(void *arg)
{
	struct rtfs_cache *c = arg;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		struct entry *e;
		struct job j;
		int mine;

		while (!c->stop && c->qn == 0)
			pthread_cond_wait(&c->work, &c->mu);
		if (c->stop)
			break;
		j = c->q[c->qh];
		c->qh = (c->qh + 1) % QCAP;
		c->qn--;
		/* Prefetching must not push out what readers still need:
		 * only entries already read may make room for it. */
		if (c->bytes - c->done_bytes + j.len > c->budget)
			continue;
		e = lookup(c, j.gid, &j.f, j.len, &mine);
		if (!e || !mine)
			continue;
		c->st.prefetched++;
		e->refs++;
		pthread_mutex_unlock(&c->mu);
		fill(c, e);
		pthread_mutex_lock(&c->mu);
		e->refs--;
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int rtfs_cache_new(struct rtfs_model *m, size_t budget, int workers, struct rtfs_cache **out)
{
	struct rtfs_cache *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	c->m = m;
	c->budget = budget;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->done, NULL);
	pthread_cond_init(&c->work, NULL);
	if (workers > 0) {
		c->workers = calloc((size_t)workers, sizeof(*c->workers));
		if (!c->workers) {
			rtfs_cache_free(c);
			return -ENOMEM;
		}
	}
	for (int i = 0; i < workers; i++) {
		err = pthread_create(&c->workers[i], NULL, worker, c);
		if (err) {
			rtfs_cache_free(c);
			return -err;
		}
		c->nworkers++;
	}
	*out = c;
	return 0;
}

void rtfs_cache_free(struct rtfs_cache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = 1;
	pthread_cond_broadcast(&c->work);
	pthread_mutex_unlock(&c->mu);
	for (int i = 0; i < c->nworkers; i++)
		pthread_join(c->workers[i], NULL);
	free(c->workers);
	while (c->head) {
		struct entry *e = c->head;
		c->head = e->next;
		free(e->buf);
		free(e);
	}
	for (int i = 0; i < c->npool; i++)
		free(c->pool[i].p);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->done);
	pthread_cond_destroy(&c->work);
	free(c);
}

void rtfs_cache_stats(struct rtfs_cache *c, struct rtfs_cache_stats *st)
{
	pthread_mutex_lock(&c->mu);
	*st = c->st;
	st->bytes = c->bytes;
	st->entries = 0;
	for (struct entry *e = c->head; e; e = e->next)
		st->entries++;
	pthread_mutex_unlock(&c->mu);
}
