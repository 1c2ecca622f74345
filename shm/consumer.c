/* SPDX-License-Identifier: MIT */
/*
 * consumer.c - the single consumer of a ring.
 *
 * Each writer slot is a chain of chunks; the consumer keeps, per slot, a read
 * position (what it has delivered) ahead of the durable position (what the
 * caller has made durable and released, kept in the slot's line 2 in shared
 * memory). Chunks are freed only when the durable position moves past them.
 *
 * Losses become records: drops counted by writers, the record a writer was
 * writing when it died, malformed data, and failures with no slot at all.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "rtshm.h"
#include "shm_int.h"

#define MAX_MARKS 256
#define LIVENESS_NS (20ull * 1000 * 1000)  /* how often owners are checked */
#define RESYNC_NS (1000ull * 1000 * 1000)  /* how often free_chunks is recounted */

enum phase {
	PH_LIVE,  /* owner alive: drain as records come */
	PH_GONE,  /* owner exited or died: drain to the end, report, finish */
	PH_FINAL, /* drained and reported; freed when its mark is released */
};

struct cslot {
	uint32_t gen;
	uint8_t tracked;
	uint8_t phase;
	uint8_t dirty;     /* read position moved since the last mark */
	uint8_t verified;  /* owner's start time checked against /proc */
	uint8_t broken;    /* malformed chain: stop reading until it is gone */
	uint8_t said_broken; /* its damaged chain was reported */
	uint8_t resynced;
	uint64_t bad_bytes; /* malformed bytes skipped, not yet reported */
	uint64_t bad_recs;
	uint32_t pid;
	uint32_t tid;
	uint64_t starttime;
	char service[33];
	/* Read position. */
	uint32_t d_chunk; /* the durable position's chunk (ours, not the slot's) */
	uint64_t skip_upto; /* the spool holds this writer's stream up to here */
	uint32_t r_chunk; /* index + 1, 0 = before the first chunk */
	uint32_t r_off;
	uint64_t r_pos;
	uint64_t r_records;
	uint64_t r_dropped;
	uint32_t r_flags;
};

struct ment {
	struct rt_cursor cur;
	uint32_t chunk;
	uint32_t off;
};

struct mark {
	int64_t id;
	struct ment *e;
	struct rt_cursor *pub;
	size_t n;
	size_t cap;
	uint64_t records;
};

struct rt_consumer {
	struct rt_ring *ring;
	struct cslot *cs;
	uint32_t nslots;
	uint32_t rr;              /* round-robin start */
	struct mark marks[MAX_MARKS];
	size_t mhead, mcount;
	int64_t next_mark;
	uint64_t delivered_unmarked;
	uint64_t noslot_r;        /* no-slot drops reported (read side) */
	uint64_t noslot_marked;
	uint64_t last_liveness;
	uint64_t last_resync;
	/* TSC to wall clock. */
	int tsc;
	uint64_t tsc_hz;
	uint64_t tsc_now;
	uint64_t rt_now;
	uint64_t tsc_ref;         /* our copies of the header's clock references */
	uint64_t mono_ref;
	uint64_t last_check;      /* monotonic ns of the last rt__ring_check() */
	char synth[640];
	uint8_t attrs[128];       /* attributes of the loss record being made */
	size_t attrs_len;
	char *rbuf;               /* a private copy of the record being read */
	uint8_t *readmap;         /* a bit per chunk this consumer read from and has not
				   * freed yet: resync() never goes back to one */
};

static uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rdtsc(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __builtin_ia32_rdtsc();
#else
	return 0;
#endif
}

/* Sample the clocks once per poll, and refine the TSC rate against
 * CLOCK_MONOTONIC_RAW over the ring's whole life. */
static void clock_sample(struct rt_consumer *c)
{
	c->rt_now = clock_ns(CLOCK_REALTIME);
	if (!c->tsc)
		return;
	c->tsc_now = rdtsc();
	uint64_t mono = clock_ns(CLOCK_MONOTONIC_RAW);
	if (mono > c->mono_ref + 1000000000ull && c->tsc_now > c->tsc_ref)
		c->tsc_hz = (uint64_t)((rt__u128)(c->tsc_now - c->tsc_ref) * 1000000000u /
				       (mono - c->mono_ref));
}

static uint64_t tsc_to_ns(const struct rt_consumer *c, uint64_t tsc)
{
	if (c->tsc_hz == 0)
		return c->rt_now;
	if (tsc <= c->tsc_now) {
		rt__u128 d = (rt__u128)(c->tsc_now - tsc) * 1000000000u / c->tsc_hz;
		return d > c->rt_now ? 0 : c->rt_now - (uint64_t)d;
	}
	return c->rt_now + (uint64_t)((rt__u128)(tsc - c->tsc_now) * 1000000000u /
				      c->tsc_hz);
}

/* A pid read from shared memory: 0 or past the kernel's limit names no
 * process (and kill(0 or -1, ...) would name many). */
static int pid_bad(uint32_t pid)
{
	return pid == 0 || pid > (1u << 22);
}

static int pid_gone(uint32_t pid)
{
	return pid_bad(pid) || (kill((pid_t)pid, 0) < 0 && errno == ESRCH);
}

static int tid_gone(uint32_t pid, uint32_t tid)
{
	return pid_bad(tid) ||
	       (syscall(SYS_tgkill, (pid_t)pid, (pid_t)tid, 0) < 0 && errno == ESRCH);
}

/* Start time of @pid from /proc, 0 if unknown. */
static uint64_t proc_starttime(uint32_t pid)
{
	char path[64], buf[1024];
	ssize_t n;
	char *p;
	int fd, field;
	uint64_t v = 0;

	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	for (field = 2; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	while (*p >= '0' && *p <= '9')
		v = v * 10 + (uint64_t)(*p++ - '0');
	return v;
}

/* The read bitmap: chunk is an index + 1, validated by the caller. */
static void moved_to(struct rt_consumer *c, uint32_t chunk)
{
	c->readmap[(chunk - 1) / 8] |= (uint8_t)(1u << ((chunk - 1) % 8));
}

static int was_read(const struct rt_consumer *c, uint32_t chunk)
{
	return (c->readmap[(chunk - 1) / 8] >> ((chunk - 1) % 8)) & 1;
}

static void track(struct rt_consumer *c, uint32_t i)
{
	struct rt__slot *s = &c->ring->slots[i];
	struct cslot *cs = &c->cs[i];
	uint64_t where;
	size_t n;

	memset(cs, 0, sizeof(*cs));
	cs->tracked = 1;
	cs->gen = __atomic_load_n(&s->gen, __ATOMIC_RELAXED);
	cs->pid = __atomic_load_n(&s->owner, __ATOMIC_RELAXED);
	cs->tid = s->tid;
	cs->starttime = s->starttime;
	n = s->svc_len < 32 ? s->svc_len : 32;
	memcpy(cs->service, s->service, n);
	cs->service[n] = '\0';
	/* Only for our messages; a name cut at 32 bytes may end inside a
	 * character, so the old rule. */
	if (!rt_service_valid(cs->service, n))
		strcpy(cs->service, "?");
	where = __atomic_load_n(&s->c_where, __ATOMIC_RELAXED);
	cs->r_chunk = RT__WHERE_CHUNK(where);
	cs->r_off = RT__WHERE_OFF(where);
	cs->r_records = __atomic_load_n(&s->c_records, __ATOMIC_RELAXED);
	cs->r_dropped = __atomic_load_n(&s->c_dropped, __ATOMIC_RELAXED);
	cs->r_flags = __atomic_load_n(&s->c_flags, __ATOMIC_RELAXED) & RT_CURSOR_LOST;
	cs->phase = PH_LIVE;
	cs->d_chunk = cs->r_chunk <= c->ring->nchunks ? cs->r_chunk : 0;
	if (cs->r_chunk) {
		/* The stream position follows from the chunk's own base. */
		if (cs->r_chunk > c->ring->nchunks || cs->r_off < RT__CHUNK_HDR ||
		    cs->r_off > c->ring->chunk_size || (cs->r_off & 7) ||
		    __atomic_load_n(&c->ring->owners[cs->r_chunk - 1], __ATOMIC_RELAXED) != i + 1) {
			/* A durable position that does not fit the ring: the
			 * position the spool stored (rt_consumer_restore()) or
			 * resync() decides where reading goes on. */
			cs->r_chunk = (uint32_t)-1;
			cs->r_off = 0;
			cs->r_pos = 0;
		} else {
			cs->r_pos = rt__chunk_at(c->ring, cs->r_chunk - 1)->base +
				    (cs->r_off - RT__CHUNK_HDR);
			moved_to(c, cs->r_chunk);
		}
	}
}

/* ------------------------------------------------------------------------
 * Freeing
 * ------------------------------------------------------------------------ */

static void free_chunk(struct rt_consumer *c, struct rt__slot *s, uint32_t idx)
{
	struct rt_ring *r = c->ring;
	struct rt__chunk *ch = rt__chunk_at(r, idx);

	c->readmap[idx / 8] &= (uint8_t)~(1u << (idx % 8));
	__atomic_store_n(&ch->committed, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&ch->pending, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&ch->next, 0u, __ATOMIC_RELAXED);
	__atomic_store_n(&ch->base, UINT64_MAX, __ATOMIC_RELAXED);
	/* Release pairs with the claiming writer's acquire CAS. */
	__atomic_store_n(&r->owners[idx], 0u, __ATOMIC_RELEASE);
	__atomic_fetch_add(&r->hdr->free_chunks, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&s->chunks_freed, __atomic_load_n(&s->chunks_freed, __ATOMIC_RELAXED) + 1,
			 __ATOMIC_RELEASE);
	__atomic_store_n(&r->hdr->alloc_hint, (uint64_t)idx, __ATOMIC_RELAXED);
}

/* Free every chunk from @from (index + 1; 0 = the writer's first) up to,
 * not including, @upto. */
static int free_upto(struct rt_consumer *c, uint32_t i, uint32_t from, uint32_t upto)
{
	struct rt_ring *r = c->ring;
	struct rt__slot *s = &r->slots[i];
	uint32_t idx = from, steps = 0;

	if (idx == 0)
		idx = __atomic_load_n(&s->first, __ATOMIC_ACQUIRE);
	while (idx && idx != upto && idx <= r->nchunks && steps++ < r->nchunks) {
		struct rt__chunk *ch = rt__chunk_at(r, idx - 1);
		uint32_t nx = __atomic_load_n(&ch->next, __ATOMIC_ACQUIRE);
		if (__atomic_load_n(&r->owners[idx - 1], __ATOMIC_RELAXED) != i + 1)
			break;
		free_chunk(c, s, idx - 1);
		idx = nx;
	}
	return idx == upto;
}

/* The chain to the durable chunk @upto was cut (a member wrote over it):
 * free every other chunk of writer @i whose stream lies before @base, the
 * durable chunk's. */
static void free_before(struct rt_consumer *c, uint32_t i, uint32_t upto, uint64_t base)
{
	struct rt_ring *r = c->ring;
	uint32_t k;

	for (k = 0; k < r->nchunks; k++)
		if (k + 1 != upto && __atomic_load_n(&r->owners[k], __ATOMIC_RELAXED) == i + 1 &&
		    __atomic_load_n(&rt__chunk_at(r, k)->base, __ATOMIC_RELAXED) < base)
			free_chunk(c, &r->slots[i], k);
}

/* The writer is gone and everything it wrote is durable: free its chunks
 * (including any it claimed but died before linking) and the slot. */
/* Give a slot back: clear the consumer's line, then the owner. Release
 * pairs with the next owner's acquire CAS on owner. */
static void reset_slot(struct rt__slot *s, uint32_t owner)
{
	__atomic_store_n(&s->c_where, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->c_records, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->c_dropped, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->chunks_freed, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->c_flags, 0u, __ATOMIC_RELAXED);
	__atomic_compare_exchange_n(&s->owner, &owner, 0u, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

/*
 * The writer is gone and everything it wrote is durable: free its chunks
 * (including any it claimed but died before linking) and the slot. Marked
 * FINAL first, so that a consumer killed half way finishes the job.
 */
static void free_slot(struct rt_consumer *c, uint32_t i)
{
	struct rt_ring *r = c->ring;
	struct rt__slot *s = &r->slots[i];
	struct rt__ring_hdr *h = r->hdr;
	uint32_t k, owner = __atomic_load_n(&s->owner, __ATOMIC_ACQUIRE);

	__atomic_store_n(&s->c_flags, __atomic_load_n(&s->c_flags, __ATOMIC_RELAXED) | RT__CF_FINAL,
			 __ATOMIC_RELEASE);
	for (k = 0; k < r->nchunks; k++)
		if (__atomic_load_n(&r->owners[k], __ATOMIC_RELAXED) == i + 1)
			free_chunk(c, s, k);
	__atomic_fetch_add(&h->written_retired, __atomic_load_n(&s->c_records, __ATOMIC_RELAXED),
			   __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->dropped_retired, rt__slot_drops(s), __ATOMIC_RELAXED);
	__atomic_store_n(&s->state, RT__SLOT_FREE, __ATOMIC_RELEASE);
	reset_slot(s, owner);
	c->cs[i].tracked = 0;
}

/* ------------------------------------------------------------------------
 * Liveness
 * ------------------------------------------------------------------------ */

static void liveness_scan(struct rt_consumer *c)
{
	struct rt_ring *r = c->ring;
	uint32_t i, hwm = __atomic_load_n(&r->hdr->slot_hwm, __ATOMIC_ACQUIRE);

	if (hwm > c->nslots)
		hwm = c->nslots;
	for (i = 0; i < hwm; i++) {
		struct rt__slot *s = &r->slots[i];
		struct cslot *cs = &c->cs[i];
		uint32_t owner = __atomic_load_n(&s->owner, __ATOMIC_ACQUIRE), state;

		if (owner == 0)
			continue;
		state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		if (state == RT__SLOT_CLAIMED || state == RT__SLOT_FREE) {
			/* Died between claiming the slot and filling it in. */
			if (pid_gone(owner))
				reset_slot(s, owner);
			continue;
		}
		if (!cs->tracked || cs->phase != PH_LIVE)
			continue;
		if (pid_gone(cs->pid)) {
			cs->phase = PH_GONE;
			continue;
		}
		if (!cs->verified) {
			uint64_t st = proc_starttime(cs->pid);
			cs->verified = 1;
			if (st && cs->starttime && st != cs->starttime) {
				cs->phase = PH_GONE; /* the pid now names another process */
				continue;
			}
		}
		if (cs->tid && tid_gone(cs->pid, cs->tid))
			cs->phase = PH_GONE;
	}
}

static void resync_free(struct rt_consumer *c)
{
	struct rt_ring *r = c->ring;
	uint32_t i, n = 0;

	for (i = 0; i < r->nchunks; i++)
		if (__atomic_load_n(&r->owners[i], __ATOMIC_RELAXED) == 0)
			n++;
	__atomic_store_n(&r->hdr->free_chunks, (uint64_t)n, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------
 * Delivery
 * ------------------------------------------------------------------------ */

/* Deliver a record ringtail made itself (a loss report). */
static int synth(struct rt_consumer *c, rt_consume_fn fn, void *arg, uint32_t slot,
		 const struct cslot *cs, const char *msg, size_t len)
{
	struct rt_rec rec;
	struct rt_origin o;

	memset(&rec, 0, sizeof(rec));
	rec.time_ns = c->rt_now;
	rec.pid = cs ? cs->pid : 0;
	rec.tid = cs ? cs->tid : 0;
	rec.severity = RT_WARN;
	rec.flags = RT_REC_LOSS;
	rec.service = "ringtail";
	rec.service_len = 8;
	rec.msg = msg;
	rec.msg_len = len;
	rec.attrs = c->attrs_len ? c->attrs : NULL;
	rec.attrs_len = c->attrs_len;
	c->attrs_len = 0;
	o.slot = slot;
	o.gen = cs ? cs->gen : 0;
	o.pos = cs ? cs->r_pos : 0;
	return fn(arg, &rec, &o);
}

/* Add key=N to the attributes of the next loss record (interface 3 of
 * issue 8: refused=, lost=, malformed_bytes=). */
static void attr_u64(struct rt_consumer *c, const char *key, uint64_t v)
{
	char val[24];
	size_t kl = strlen(key), vl = (size_t)snprintf(val, sizeof(val), "%llu",
							 (unsigned long long)v);

	if (c->attrs_len + 3 + kl + vl > sizeof(c->attrs))
		return;
	c->attrs[c->attrs_len++] = (uint8_t)kl;
	memcpy(c->attrs + c->attrs_len, key, kl);
	c->attrs_len += kl;
	c->attrs[c->attrs_len++] = (uint8_t)vl;
	c->attrs[c->attrs_len++] = 0;
	memcpy(c->attrs + c->attrs_len, val, vl);
	c->attrs_len += vl;
}

enum { GO_ON = 0, STOP = 1 };

/* Report what was skipped as malformed since the last report; with
 * @broken, that the writer's chain of chunks cannot be followed further. */
static int report_corrupt(struct rt_consumer *c, uint32_t i, struct cslot *cs, int broken,
			  rt_consume_fn fn, void *arg)
{
	int n;

	if (!cs->bad_bytes && !broken)
		return GO_ON;
	if (broken)
		n = snprintf(c->synth, sizeof(c->synth),
			     "%llu bytes of malformed records skipped from pid %u tid %u (%s), and "
			     "its chain of ring chunks is damaged: reading goes on at its next "
			     "intact chunk",
			     (unsigned long long)cs->bad_bytes, cs->pid, cs->tid, cs->service);
	else
		n = snprintf(c->synth, sizeof(c->synth),
			     "%llu bytes of malformed records skipped from pid %u tid %u (%s) "
			     "(%llu with a bad service name or header)",
			     (unsigned long long)cs->bad_bytes, cs->pid, cs->tid, cs->service,
			     (unsigned long long)cs->bad_recs);
	attr_u64(c, "malformed_bytes", cs->bad_bytes);
	if (synth(c, fn, arg, i, cs, c->synth, (size_t)n) < 0)
		return STOP;
	__atomic_fetch_add(&c->ring->hdr->corrupt_total, cs->bad_bytes, __ATOMIC_RELAXED);
	cs->bad_bytes = cs->bad_recs = 0;
	return GO_ON;
}

/*
 * Copy the record at @src (at most @avail bytes, shared memory) into the
 * private buffer and decode the copy, so that nothing checked can change
 * before it is used. Records under a name no writer may use are malformed.
 */
static int take_record(struct rt_consumer *c, const char *src, uint32_t avail, struct rt_rec *rec,
		       size_t *stride)
{
	uint32_t len = __atomic_load_n((const uint32_t *)(const void *)src, __ATOMIC_RELAXED);
	size_t n;

	if (len < RT__REC_HDR || len > avail)
		return -EBADMSG;
	n = RT__ALIGN8((size_t)len);
	if (n > avail)
		return -EBADMSG;
	memcpy(c->rbuf, src, n);
	if (rt_rec_decode(c->rbuf, n, RT__RF_KNOWN & ~RT__RF_LOSS, rec, stride) != 0 ||
	    *stride != n)
		return -EBADMSG;
	if (!rt_service_name_ok(rec->service, rec->service_len))
		return -EBADMSG;
	return 0;
}

/*
 * The chain of writer @i cannot be followed from the read position (a
 * member wrote over a link, a commit word or an owner entry): go on at the
 * writer's intact chunk that comes next in its stream, if there is one
 * already, counting what lies between as malformed. @return 1 if moved.
 */

static int resync(struct rt_consumer *c, uint32_t i, struct cslot *cs)
{
	struct rt_ring *r = c->ring;
	uint64_t best = UINT64_MAX;
	uint32_t k, at = 0;

	/* A chunk we read already whose base was written over would look
	 * ahead: never go back to one we read and have not freed. */
	for (k = 0; k < r->nchunks; k++) {
		struct rt__chunk *ch = rt__chunk_at(r, k);
		uint64_t base;
		if (k + 1 == cs->r_chunk || was_read(c, k + 1) ||
		    __atomic_load_n(&r->owners[k], __ATOMIC_RELAXED) != i + 1 ||
		    __atomic_load_n(&ch->slot, __ATOMIC_RELAXED) != i ||
		    __atomic_load_n(&ch->gen, __ATOMIC_RELAXED) != cs->gen)
			continue;
		base = __atomic_load_n(&ch->base, __ATOMIC_RELAXED);
		if (base >= cs->r_pos && base < best) {
			best = base;
			at = k + 1;
		}
	}
	if (!at || best == UINT64_MAX)
		return 0;
	cs->bad_bytes += best - cs->r_pos;
	moved_to(c, at);
	cs->r_chunk = at;
	cs->r_off = RT__CHUNK_HDR;
	cs->r_pos = best;
	cs->dirty = 1;
	return 1;
}

/* A damaged chain: move on to the next intact chunk (the next turn of the
 * enclosing loop), or stop for now. Braces, not do-while: its continue must
 * reach drain()'s loop. */
#define BROKEN()                          \
	{                                 \
		if (resync(c, i, cs)) {   \
			cs->resynced = 1; \
			continue;         \
		}                         \
		goto broken;              \
	}

/* Follow the writer's chain from the read position, delivering records. */
static int drain(struct rt_consumer *c, uint32_t i, rt_consume_fn fn, void *arg, size_t max,
		 size_t *delivered, int *at_end)
{
	struct rt_ring *r = c->ring;
	struct rt__slot *s = &r->slots[i];
	struct cslot *cs = &c->cs[i];
	uint32_t csize = r->chunk_size, nchunks = r->nchunks, hops = 0;

	*at_end = 0;
	for (;;) {
		struct rt__chunk *ch;
		uint64_t cm;
		uint32_t end, nx;

		/* Shared values never drive a loop unbounded: a chain can visit
		 * every chunk once per poll, no more (a cycle made by a member
		 * ends here, and the next poll goes on where this one stopped). */
		if (hops++ > nchunks + 1)
			return GO_ON;

		if (cs->r_chunk == 0) {
			uint32_t f = __atomic_load_n(&s->first, __ATOMIC_ACQUIRE);
			if (f == 0) {
				*at_end = 1;
				return GO_ON;
			}
			if (f > nchunks || __atomic_load_n(&r->owners[f - 1], __ATOMIC_RELAXED) != i + 1)
				BROKEN();
			cs->r_chunk = f;
			moved_to(c, f);
			cs->r_off = RT__CHUNK_HDR;
			cs->dirty = 1;
		}
		if (cs->r_chunk > nchunks || cs->r_off < RT__CHUNK_HDR || cs->r_off > csize)
			BROKEN();
		ch = rt__chunk_at(r, cs->r_chunk - 1);
		/* Acquire pairs with the writer's release in rt__publish(). */
		cm = __atomic_load_n(&ch->committed, __ATOMIC_ACQUIRE);
		end = RT__COMMIT_END(cm);
		if (end > csize || end < RT__CHUNK_HDR || (end & 7) || cs->r_off > end)
			BROKEN();
		while (cs->r_off < end) {
			struct rt_rec rec;
			struct rt_origin o;
			size_t stride;

			if (*delivered >= max)
				return STOP;
			if (take_record(c, (char *)ch + cs->r_off, end - cs->r_off, &rec, &stride)) {
				/* Lengths cannot be trusted past this point:
				 * skip what the writer committed in this chunk. */
				cs->bad_bytes += end - cs->r_off;
				cs->bad_recs++;
				cs->r_pos += end - cs->r_off;
				cs->r_off = end;
				cs->dirty = 1;
				break;
			}
			if (rec.flags & RT__RF_TSC) {
				rec.time_ns = tsc_to_ns(c, rec.time_ns);
				rec.flags &= (uint8_t)~RT__RF_TSC;
			}
			o.slot = i;
			o.gen = cs->gen;
			o.pos = cs->r_pos + stride;
			/* Durable already (the spool said so at the restart, where
			 * the ring's own position was damaged): never twice. */
			if (o.pos <= cs->skip_upto) {
				cs->r_off += (uint32_t)stride;
				cs->r_pos += stride;
				cs->dirty = 1;
				continue;
			}
			if (fn(arg, &rec, &o) < 0)
				return STOP;
			cs->r_off += (uint32_t)stride;
			cs->r_pos += stride;
			cs->r_records++;
			cs->dirty = 1;
			(*delivered)++;
			c->delivered_unmarked++;
		}
		/* Acquire pairs with the writer's release of next, which it
		 * makes after its last commit into this chunk. */
		nx = __atomic_load_n(&ch->next, __ATOMIC_ACQUIRE);
		if (nx == 0) {
			*at_end = 1;
			return GO_ON;
		}
		if (RT__COMMIT_END(__atomic_load_n(&ch->committed, __ATOMIC_ACQUIRE)) != end)
			continue; /* committed more before sealing */
		if (nx > nchunks || __atomic_load_n(&r->owners[nx - 1], __ATOMIC_RELAXED) != i + 1)
			BROKEN();
		{
			struct rt__chunk *nc = rt__chunk_at(r, nx - 1);
			if (nc->slot != i || nc->gen != cs->gen || nc->base != cs->r_pos)
				BROKEN();
		}
		cs->r_chunk = nx;
		moved_to(c, nx);
		cs->r_off = RT__CHUNK_HDR;
		cs->dirty = 1;
	}
broken:
	*at_end = 1;
	if (!cs->said_broken) {
		if (report_corrupt(c, i, cs, 1, fn, arg) == STOP)
			return STOP;
		cs->said_broken = 1;
	}
	cs->broken = 1;
	return GO_ON;
}

static int drain_slot(struct rt_consumer *c, uint32_t i, rt_consume_fn fn, void *arg, size_t max,
		      size_t *delivered)
{
	struct rt_ring *r = c->ring;
	struct rt__slot *s = &r->slots[i];
	struct cslot *cs = &c->cs[i];
	uint32_t owner = __atomic_load_n(&s->owner, __ATOMIC_ACQUIRE), state;
	uint64_t drops;
	int at_end = 0, n;

	if (owner == 0)
		return GO_ON;
	/* Acquire pairs with the writer's release of ACTIVE/RETIRED: the
	 * identity and the first link are visible after it. */
	state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
	if (state != RT__SLOT_ACTIVE && state != RT__SLOT_RETIRED)
		return GO_ON;
	/* Once tracked, a slot's generation is ours: only our free_slot()
	 * ends it (a gen changed in shared memory would make us read again
	 * what we delivered). */
	if (!cs->tracked)
		track(c, i);
	if (cs->phase == PH_FINAL)
		return GO_ON;
	if (state == RT__SLOT_RETIRED)
		cs->phase = PH_GONE;

	/* A damaged chain is tried again at every poll: the writer mends a
	 * commit word at its next record, and resync() finds its next chunk. */
	cs->broken = 0;
	if (drain(c, i, fn, arg, max, delivered, &at_end) == STOP)
		return STOP;
	if (cs->broken)
		at_end = 1;
	else
		cs->said_broken = 0;
	if (report_corrupt(c, i, cs, 0, fn, arg) == STOP)
		return STOP;

	drops = rt__slot_drops(s);
	if (drops > cs->r_dropped) {
		/* Calls the writer refused and told its caller so (who may
		 * have retried them): refused, not lost. */
		n = snprintf(c->synth, sizeof(c->synth),
			     "%llu calls refused from pid %u tid %u (%s), each told to its caller; "
			     "totals: %llu ring full (%llu of them WARN or above), %llu too large, "
			     "%llu invalid, %llu before the ring was reachable",
			     (unsigned long long)(drops - cs->r_dropped), cs->pid, cs->tid, cs->service,
			     (unsigned long long)__atomic_load_n(&s->drop_full, __ATOMIC_RELAXED),
			     (unsigned long long)__atomic_load_n(&s->drop_full_warn, __ATOMIC_RELAXED),
			     (unsigned long long)__atomic_load_n(&s->drop_large, __ATOMIC_RELAXED),
			     (unsigned long long)__atomic_load_n(&s->drop_inval, __ATOMIC_RELAXED),
			     (unsigned long long)__atomic_load_n(&s->drop_noring, __ATOMIC_RELAXED));
		attr_u64(c, "refused", drops - cs->r_dropped);
		if (synth(c, fn, arg, i, cs, c->synth, (size_t)n) < 0)
			return STOP;
		cs->r_dropped = drops;
		cs->dirty = 1;
	}

	if (cs->phase == PH_GONE && at_end) {
		if (!(cs->r_flags & RT_CURSOR_LOST) && cs->r_chunk && cs->r_chunk <= r->nchunks &&
		    !cs->broken) {
			struct rt__chunk *ch = rt__chunk_at(r, cs->r_chunk - 1);
			uint64_t cm = __atomic_load_n(&ch->committed, __ATOMIC_ACQUIRE);
			uint64_t pend = __atomic_load_n(&ch->pending, __ATOMIC_RELAXED);
			if (pend != cm) {
				n = snprintf(c->synth, sizeof(c->synth),
					     "1 record lost from pid %u tid %u (%s): the writer died "
					     "in the middle of writing it",
					     cs->pid, cs->tid, cs->service);
				attr_u64(c, "lost", 1);
				if (synth(c, fn, arg, i, cs, c->synth, (size_t)n) < 0)
					return STOP;
				cs->r_flags |= RT_CURSOR_LOST;
				__atomic_fetch_add(&r->hdr->lost_total, 1, __ATOMIC_RELAXED);
			}
		}
		cs->phase = PH_FINAL;
		cs->dirty = 1;
	}
	return GO_ON;
}

int rt_consumer_poll(struct rt_consumer *c, rt_consume_fn fn, void *arg, size_t max)
{
	struct rt_ring *r = c->ring;
	struct rt__ring_hdr *h = r->hdr;
	uint64_t mono = clock_ns(CLOCK_MONOTONIC), noslot;
	uint32_t k, hwm;
	size_t delivered = 0;

	if (rt_ring_lost(r))
		return 0;
	clock_sample(c);
	if (mono - c->last_check >= LIVENESS_NS) {
		int chk = rt__ring_check(r);
		c->last_check = mono;
		if (chk < 0)
			return 0;
		if (chk > 0 && max > 0) {
			int n = snprintf(c->synth, sizeof(c->synth),
					 "the ring header's fixed fields (geometry, identity) were "
					 "changed by a member of the ring's group: put back as they "
					 "were made; ringtaild never used the changed values");
			if (synth(c, fn, arg, RT_CURSOR_GLOBAL, NULL, c->synth, (size_t)n) < 0)
				return 0;
		}
	}
	__atomic_store_n(&h->consumer_heartbeat_ns, c->rt_now, __ATOMIC_RELAXED);
	if (mono - c->last_liveness >= LIVENESS_NS) {
		c->last_liveness = mono;
		liveness_scan(c);
	}
	if (mono - c->last_resync >= RESYNC_NS) {
		c->last_resync = mono;
		resync_free(c);
	}

	noslot = __atomic_load_n(&h->dropped_noslot, __ATOMIC_RELAXED);
	if (noslot > c->noslot_r && max > 0) {
		int n = snprintf(c->synth, sizeof(c->synth),
				 "%llu calls refused (-EUSERS, told to their callers): every writer "
				 "slot of the ring was taken (last from pid %llu)",
				 (unsigned long long)(noslot - c->noslot_r),
				 (unsigned long long)__atomic_load_n(&h->last_noslot_pid,
								     __ATOMIC_RELAXED));
		attr_u64(c, "refused", noslot - c->noslot_r);
		if (synth(c, fn, arg, RT_CURSOR_GLOBAL, NULL, c->synth, (size_t)n) < 0)
			return 0;
		c->noslot_r = noslot;
	}

	hwm = __atomic_load_n(&h->slot_hwm, __ATOMIC_ACQUIRE);
	if (hwm > c->nslots)
		hwm = c->nslots;
	if (hwm == 0)
		return 0;
	/* Start where the last poll stopped, so a busy writer cannot keep
	 * the others waiting when @max cuts a poll short. */
	for (k = 0; k < hwm; k++) {
		uint32_t i = (c->rr + k) % hwm;
		if (drain_slot(c, i, fn, arg, max, &delivered) == STOP) {
			c->rr = (i + 1) % hwm;
			return (int)delivered;
		}
	}
	c->rr = (c->rr + 1) % hwm;
	return (int)delivered;
}

/* ------------------------------------------------------------------------
 * Marks and release
 * ------------------------------------------------------------------------ */

static int ment_push(struct mark *m, const struct ment *e)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct ment *ne = realloc(m->e, cap * sizeof(*ne));
		struct rt_cursor *np;
		if (!ne)
			return -ENOMEM;
		m->e = ne;
		np = realloc(m->pub, cap * sizeof(*np));
		if (!np)
			return -ENOMEM;
		m->pub = np;
		m->cap = cap;
	}
	m->e[m->n] = *e;
	m->pub[m->n] = e->cur;
	m->n++;
	return 0;
}

static void ment_of(const struct cslot *cs, uint32_t i, struct ment *e)
{
	memset(e, 0, sizeof(*e));
	e->cur.slot = i;
	e->cur.gen = cs->gen;
	e->cur.pos = cs->r_pos;
	e->cur.records = cs->r_records;
	e->cur.dropped = cs->r_dropped;
	e->cur.flags = cs->r_flags | (cs->phase == PH_FINAL ? RT_CURSOR_FINAL : 0);
	e->chunk = cs->r_chunk;
	e->off = cs->r_off;
}

int64_t rt_consumer_mark(struct rt_consumer *c, const struct rt_cursor **entries, size_t *n)
{
	struct mark *m;
	struct ment e;
	uint32_t i;

	if (c->mcount == MAX_MARKS)
		return -ENOSPC;
	m = &c->marks[(c->mhead + c->mcount) % MAX_MARKS];
	m->n = 0;
	m->records = c->delivered_unmarked;
	m->id = ++c->next_mark;
	for (i = 0; i < c->nslots; i++) {
		struct cslot *cs = &c->cs[i];
		if (!cs->tracked || !cs->dirty)
			continue;
		ment_of(cs, i, &e);
		if (ment_push(m, &e) < 0)
			return -ENOMEM;
		cs->dirty = 0;
	}
	if (c->noslot_r != c->noslot_marked) {
		memset(&e, 0, sizeof(e));
		e.cur.slot = RT_CURSOR_GLOBAL;
		e.cur.dropped = c->noslot_r;
		if (ment_push(m, &e) < 0)
			return -ENOMEM;
		c->noslot_marked = c->noslot_r;
	}
	c->delivered_unmarked = 0;
	c->mcount++;
	if (entries)
		*entries = m->pub;
	if (n)
		*n = m->n;
	return m->id;
}

static void apply(struct rt_consumer *c, const struct ment *e)
{
	struct rt_ring *r = c->ring;
	struct rt__slot *s;
	uint32_t old;

	if (e->cur.slot == RT_CURSOR_GLOBAL) {
		if (e->cur.dropped > r->hdr->noslot_reported)
			__atomic_store_n(&r->hdr->noslot_reported, e->cur.dropped, __ATOMIC_RELAXED);
		return;
	}
	if (e->cur.slot >= c->nslots)
		return;
	s = &r->slots[e->cur.slot];
	if (!c->cs[e->cur.slot].tracked || c->cs[e->cur.slot].gen != e->cur.gen)
		return; /* already freed */
	/* Counters, then the position in one store, then the chunks behind
	 * it: a consumer killed in between leaves orphans (swept at the next
	 * open), never a position inside a freed chunk. */
	old = c->cs[e->cur.slot].d_chunk;
	if (e->chunk <= r->nchunks)
		c->cs[e->cur.slot].d_chunk = e->chunk;
	__atomic_store_n(&s->c_records, e->cur.records, __ATOMIC_RELAXED);
	__atomic_store_n(&s->c_dropped, e->cur.dropped, __ATOMIC_RELAXED);
	__atomic_store_n(&s->c_flags, e->cur.flags & RT_CURSOR_LOST, __ATOMIC_RELAXED);
	__atomic_store_n(&s->c_where, RT__WHERE(e->chunk, e->off), __ATOMIC_RELEASE);
	if (e->chunk && e->chunk <= r->nchunks && e->off >= RT__CHUNK_HDR && e->chunk != old &&
	    !free_upto(c, e->cur.slot, old, e->chunk))
		free_before(c, e->cur.slot, e->chunk, e->cur.pos - (e->off - RT__CHUNK_HDR));
	if (e->cur.flags & RT_CURSOR_FINAL)
		free_slot(c, e->cur.slot);
}

int rt_consumer_release(struct rt_consumer *c, int64_t mark)
{
	if (c->mcount == 0 || mark < c->marks[c->mhead].id ||
	    mark > c->marks[(c->mhead + c->mcount - 1) % MAX_MARKS].id)
		return -EINVAL;
	while (c->mcount && c->marks[c->mhead].id <= mark) {
		struct mark *m = &c->marks[c->mhead];
		size_t k;
		for (k = 0; k < m->n; k++)
			apply(c, &m->e[k]);
		__atomic_fetch_add(&c->ring->hdr->consumed_total, m->records, __ATOMIC_RELAXED);
		c->mhead = (c->mhead + 1) % MAX_MARKS;
		c->mcount--;
	}
	return 0;
}

size_t rt_consumer_pending(struct rt_consumer *c)
{
	return c->mcount;
}

int rt_consumer_cursor_all(struct rt_consumer *c, struct rt_cursor *out, size_t max)
{
	struct ment e;
	size_t n = 0;
	uint32_t i;

	for (i = 0; i < c->nslots; i++) {
		if (!c->cs[i].tracked)
			continue;
		if (n == max)
			return -ENOSPC;
		ment_of(&c->cs[i], i, &e);
		out[n++] = e.cur;
	}
	if (n == max)
		return -ENOSPC;
	memset(&out[n], 0, sizeof(out[n]));
	out[n].slot = RT_CURSOR_GLOBAL;
	out[n].dropped = c->noslot_r;
	return (int)(n + 1);
}

/* Move a read position forward to stream position @pos. */
static int seek_pos(struct rt_consumer *c, uint32_t i, uint64_t pos)
{
	struct rt_ring *r = c->ring;
	struct rt__slot *s = &r->slots[i];
	struct cslot *cs = &c->cs[i];
	uint32_t idx = cs->r_chunk, steps = 0;

	if (idx == 0 || idx > r->nchunks)
		idx = __atomic_load_n(&s->first, __ATOMIC_ACQUIRE);
	while (idx && idx <= r->nchunks && steps++ < r->nchunks) {
		struct rt__chunk *ch = rt__chunk_at(r, idx - 1);
		uint32_t end = RT__COMMIT_END(__atomic_load_n(&ch->committed, __ATOMIC_ACQUIRE));
		if (end < RT__CHUNK_HDR || end > r->chunk_size)
			return -EINVAL;
		if (pos >= ch->base && pos <= ch->base + (end - RT__CHUNK_HDR)) {
			cs->r_chunk = idx;
			cs->r_off = (uint32_t)(RT__CHUNK_HDR + (pos - ch->base));
			cs->r_pos = pos;
			cs->dirty = 1;
			return 0;
		}
		idx = __atomic_load_n(&ch->next, __ATOMIC_ACQUIRE);
	}
	return -EINVAL;
}

int rt_consumer_restore(struct rt_consumer *c, const struct rt_cursor *e, size_t n)
{
	struct rt_ring *r = c->ring;
	uint64_t consumed = 0;
	int64_t m;
	size_t k;
	int err = 0;

	for (k = 0; k < n; k++) {
		struct rt__slot *s;
		struct cslot *cs;
		uint32_t state;

		if (e[k].slot == RT_CURSOR_GLOBAL) {
			if (e[k].dropped > c->noslot_r)
				c->noslot_r = e[k].dropped;
			continue;
		}
		if (e[k].slot >= c->nslots) {
			err = -EINVAL;
			continue;
		}
		s = &r->slots[e[k].slot];
		cs = &c->cs[e[k].slot];
		if (__atomic_load_n(&s->owner, __ATOMIC_ACQUIRE) == 0)
			continue;
		state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		if ((state != RT__SLOT_ACTIVE && state != RT__SLOT_RETIRED) ||
		    __atomic_load_n(&s->gen, __ATOMIC_RELAXED) != e[k].gen)
			continue; /* that writer's slot was freed since */
		if (!cs->tracked || cs->gen != __atomic_load_n(&s->gen, __ATOMIC_RELAXED))
			track(c, e[k].slot);
		if (e[k].pos > cs->skip_upto)
			cs->skip_upto = e[k].pos;
		if (e[k].pos > cs->r_pos && seek_pos(c, e[k].slot, e[k].pos) < 0) {
			/* Cannot get there by the chain: reading skips what is
			 * before it instead. */
			err = -EINVAL;
			continue;
		}
		if (e[k].records > cs->r_records) {
			/* Durable in the spool, not yet released in the ring:
			 * consumed now (else `written` would stay ahead). */
			consumed += e[k].records - cs->r_records;
			cs->r_records = e[k].records;
		}
		if (e[k].dropped > cs->r_dropped)
			cs->r_dropped = e[k].dropped;
		cs->r_flags |= e[k].flags & RT_CURSOR_LOST;
		if (e[k].flags & RT_CURSOR_FINAL)
			cs->phase = PH_FINAL;
		cs->dirty = 1;
	}
	/* Those positions are durable already: make the ring know them. */
	m = rt_consumer_mark(c, NULL, NULL);
	if (m > 0) {
		c->marks[(c->mhead + c->mcount - 1) % MAX_MARKS].records = consumed;
		rt_consumer_release(c, m);
	}
	return err;
}

/* ------------------------------------------------------------------------
 * Open and close
 * ------------------------------------------------------------------------ */

/*
 * Chunks a writer owns that lie before its durable position were released
 * but not yet freed when the last consumer died: free them. A chunk's base is
 * its stream position; a chunk the writer has claimed but not yet filled in
 * still has the base of a free chunk, UINT64_MAX, so it is never taken.
 */
static void sweep_orphans(struct rt_consumer *c)
{
	struct rt_ring *r = c->ring;
	uint32_t k;

	for (k = 0; k < r->nchunks; k++) {
		uint32_t o = __atomic_load_n(&r->owners[k], __ATOMIC_ACQUIRE);
		struct cslot *cs;
		uint64_t base, durable;

		if (o == 0 || o > c->nslots)
			continue;
		cs = &c->cs[o - 1];
		if (!cs->tracked || cs->broken || cs->r_chunk == 0 || cs->r_chunk > r->nchunks ||
		    cs->r_chunk == k + 1)
			continue;
		base = __atomic_load_n(&rt__chunk_at(r, k)->base, __ATOMIC_RELAXED);
		durable = __atomic_load_n(&rt__chunk_at(r, cs->r_chunk - 1)->base, __ATOMIC_RELAXED);
		if (base < durable)
			free_chunk(c, &r->slots[o - 1], k);
	}
}

int rt_consumer_open(const char *path, struct rt_consumer **out)
{
	struct rt_consumer *c;
	struct rt_ring *r;
	uint32_t i, hwm;
	int err;

	err = rt_ring_open(path, RT_RING_RDWR, &r);
	if (err)
		return err;
	if (flock(r->fd, LOCK_EX | LOCK_NB) < 0) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		rt_ring_close(r);
		return err;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		rt_ring_close(r);
		return -ENOMEM;
	}
	c->ring = r;
	c->nslots = r->nslots;
	c->cs = calloc(c->nslots, sizeof(*c->cs));
	c->rbuf = malloc(r->chunk_size);
	c->readmap = calloc((r->nchunks + 7) / 8, 1);
	if (!c->cs || !c->rbuf || !c->readmap) {
		rt_consumer_close(c);
		return -ENOMEM;
	}
	{
		const struct rt__ring_hdr *h0 = (const struct rt__ring_hdr *)(const void *)r->hdr0;
		c->tsc = (h0->flags_incompat & RT__RING_F_TSC) != 0;
		c->tsc_hz = h0->tsc_hz;
		c->tsc_ref = h0->tsc_ref;
		c->mono_ref = h0->mono_ref;
	}
	c->noslot_r = c->noslot_marked = r->hdr->noslot_reported;
	/* Pick up where the last consumer's durable positions left off, and
	 * finish what it may have left half done. */
	hwm = __atomic_load_n(&r->hdr->slot_hwm, __ATOMIC_ACQUIRE);
	for (i = 0; i < hwm && i < c->nslots; i++) {
		struct rt__slot *s = &r->slots[i];
		uint32_t state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		if (!__atomic_load_n(&s->owner, __ATOMIC_ACQUIRE) ||
		    (state != RT__SLOT_ACTIVE && state != RT__SLOT_RETIRED))
			continue;
		if (__atomic_load_n(&s->c_flags, __ATOMIC_RELAXED) & RT__CF_FINAL)
			free_slot(c, i);
		else
			track(c, i);
	}
	sweep_orphans(c);
	__atomic_store_n(&r->hdr->consumer_pid, (uint64_t)getpid(), __ATOMIC_RELEASE);
	clock_sample(c);
	*out = c;
	return 0;
}

void rt_consumer_close(struct rt_consumer *c)
{
	size_t k;

	if (!c)
		return;
	if (c->ring) {
		uint64_t me = (uint64_t)getpid();
		__atomic_compare_exchange_n(&c->ring->hdr->consumer_pid, &me, 0, 0, __ATOMIC_RELEASE,
					    __ATOMIC_RELAXED);
		rt_ring_close(c->ring); /* closing the fd drops the flock */
	}
	for (k = 0; k < MAX_MARKS; k++) {
		free(c->marks[k].e);
		free(c->marks[k].pub);
	}
	free(c->cs);
	free(c->rbuf);
	free(c->readmap);
	free(c);
}

int rt_consumer_lost(struct rt_consumer *c)
{
	return rt_ring_lost(c->ring);
}

struct rt_ring *rt_consumer_ring(struct rt_consumer *c)
{
	return c->ring;
}

uint64_t rt_consumer_ring_id(struct rt_consumer *c)
{
	return ((const struct rt__ring_hdr *)(const void *)c->ring->hdr0)->ring_id;
}
