/* SPDX-License-Identifier: MIT */
/* ring.c - create, open, inspect and remove a ringtail ring. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rtshm.h"
#include "shm_int.h"

void rt_ring_params_default(struct rt_ring_params *p)
{
	memset(p, 0, sizeof(*p));
	p->size = RT_RING_DEFAULT_SIZE;
	p->chunk_size = RT_RING_DEFAULT_CHUNK;
	p->nslots = RT_RING_DEFAULT_SLOTS;
	p->reserve_pct = 12;
	p->writer_pct = 25;
	p->gid = -1;
	p->mode = 0660;
	p->tsc = -1;
}

const char *rt_ring_path_default(void)
{
	const char *p = getenv(RT_RING_ENV);
	return (p && *p) ? p : RT_RING_DEFAULT_PATH;
}

static uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The kernel only keeps "tsc" as its clocksource when the TSC is invariant
 * and synchronised across CPUs; that is our test too. */
static int tsc_usable(void)
{
#if defined(__x86_64__) || defined(__i386__)
	char buf[32] = {0};
	int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource",
		      O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n >= 3 && strncmp(buf, "tsc", 3) == 0 && (n == 3 || buf[3] == '\n');
#else
	return 0;
#endif
}

/* Measure the TSC rate against CLOCK_MONOTONIC_RAW over about 20 ms. */
static uint64_t tsc_measure(uint64_t *tsc_ref, uint64_t *mono_ref)
{
#if defined(__x86_64__) || defined(__i386__)
	struct timespec d = {0, 20 * 1000 * 1000};
	uint64_t t0, m0, t1, m1;

	m0 = clock_ns(CLOCK_MONOTONIC_RAW);
	t0 = __builtin_ia32_rdtsc();
	nanosleep(&d, NULL);
	m1 = clock_ns(CLOCK_MONOTONIC_RAW);
	t1 = __builtin_ia32_rdtsc();
	*tsc_ref = t0;
	*mono_ref = m0;
	if (m1 <= m0)
		return 0;
	return (uint64_t)((rt__u128)(t1 - t0) * 1000000000u / (m1 - m0));
#else
	*tsc_ref = *mono_ref = 0;
	return 0;
#endif
}

int rt__ring_layout(uint64_t size, uint32_t chunk_size, uint32_t nslots, struct rt__layout *l)
{
	uint64_t fixed, n;

	if (chunk_size < 4096 || chunk_size > (64u << 20) || (chunk_size & 63) || nslots == 0 ||
	    nslots > (1u << 20))
		return -EINVAL;
	fixed = RT__HDR_SIZE + (uint64_t)nslots * RT__SLOT_SIZE + 64 + 4096;
	if (size <= fixed)
		return -EINVAL;
	n = (size - fixed) / ((uint64_t)chunk_size + 4);
	if (n < 4 || n > UINT32_MAX)
		return -EINVAL;
	l->nchunks = (uint32_t)n;
	l->slots_off = RT__HDR_SIZE;
	l->owners_off = (l->slots_off + (uint64_t)nslots * RT__SLOT_SIZE + 63) & ~63ull;
	l->chunks_off = (l->owners_off + n * 4 + 4095) & ~4095ull;
	l->size = l->chunks_off + n * chunk_size;
	return 0;
}

int rt_ring_create(const char *path, const struct rt_ring_params *p)
{
	struct rt_ring_params def;
	struct rt__layout l;
	struct rt__ring_hdr *h;
	char tmp[4096];
	uint64_t rnd = 0;
	void *m;
	int fd, err;

	if (!p) {
		rt_ring_params_default(&def);
		p = &def;
	}
	if (!path || p->reserve_pct > 50 || p->writer_pct == 0 || p->writer_pct > 100 ||
	    (p->mode & ~0777u))
		return -EINVAL;
	err = rt__ring_layout(p->size, p->chunk_size, p->nslots, &l);
	if (err)
		return err;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = clock_ns(CLOCK_REALTIME) ^ ((uint64_t)getpid() << 32);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%016llx", path, (int)getpid(),
			     (unsigned long long)rnd) >= sizeof(tmp))
		return -ENAMETOOLONG;

	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, p->mode ? p->mode : 0660);
	if (fd < 0)
		return -errno;
	/* umask may have stripped bits; the group may be configured. */
	if (fchmod(fd, p->mode ? p->mode : 0660) < 0 ||
	    (p->gid >= 0 && fchown(fd, (uid_t)-1, (gid_t)p->gid) < 0)) {
		err = -errno;
		goto fail;
	}
	if (ftruncate(fd, (off_t)l.size) < 0) {
		err = -errno;
		goto fail;
	}
	/* Reserve every page now: a writer must never take SIGBUS because
	 * /dev/shm filled up after the ring was made. */
	err = posix_fallocate(fd, 0, (off_t)l.size);
	if (err) {
		err = -err;
		goto fail;
	}
	m = mmap(NULL, l.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		err = -errno;
		goto fail;
	}
	h = m;
	memcpy(h->magic, RT__RING_MAGIC, 8);
	h->version = RT__RING_VERSION;
	h->header_size = RT__HDR_SIZE;
	h->size = l.size;
	h->chunk_size = p->chunk_size;
	h->nchunks = l.nchunks;
	h->nslots = p->nslots;
	h->slot_size = RT__SLOT_SIZE;
	h->slots_off = l.slots_off;
	h->owners_off = l.owners_off;
	h->chunks_off = l.chunks_off;
	h->ring_id = rnd;
	h->created_ns = clock_ns(CLOCK_REALTIME);
	h->reserve_chunks = (uint32_t)((uint64_t)l.nchunks * p->reserve_pct / 100);
	h->writer_max_chunks = (uint32_t)((uint64_t)l.nchunks * p->writer_pct / 100);
	if (h->writer_max_chunks < 2)
		h->writer_max_chunks = 2;
	if (p->tsc == 1 || (p->tsc < 0 && tsc_usable())) {
		h->tsc_hz = tsc_measure(&h->tsc_ref, &h->mono_ref);
		if (h->tsc_hz)
			h->flags_incompat |= RT__RING_F_TSC;
	}
	h->free_chunks = l.nchunks;
	h->state = RT__RING_LIVE;
	/* A free chunk's base is "infinitely far": see the orphan sweep in
	 * rt_consumer_open(). */
	for (uint32_t k = 0; k < l.nchunks; k++)
		((struct rt__chunk *)((char *)m + l.chunks_off + (uint64_t)k * p->chunk_size))->base =
			UINT64_MAX;
	if (msync(m, RT__HDR_SIZE, MS_SYNC) < 0) {
		err = -errno;
		munmap(m, l.size);
		goto fail;
	}
	munmap(m, l.size);
	/* link() never replaces: this is the atomic "create if absent". */
	if (link(tmp, path) < 0) {
		err = -errno;
		goto fail;
	}
	unlink(tmp);
	close(fd);
	return 0;
fail:
	unlink(tmp);
	close(fd);
	return err;
}

int rt_ring_open(const char *path, int mode, struct rt_ring **out)
{
	struct rt__ring_hdr *h;
	struct rt_ring *r;
	uint64_t size;
	void *m;
	int fd, err;

	fd = rt__open_checked_v1(path, mode == RT_RING_RDWR ? O_RDWR : O_RDONLY, &size);
	if (fd < 0)
		return fd;
	if (size < RT__HDR_SIZE || size > SIZE_MAX) {
		close(fd);
		return -EBADMSG;
	}
	r = calloc(1, sizeof(*r));
	h = malloc(sizeof(*h));
	if (!r || !h) {
		free(r);
		free(h);
		close(fd);
		return -ENOMEM;
	}
	m = mmap(NULL, size, mode == RT_RING_RDWR ? PROT_READ | PROT_WRITE : PROT_READ,
		 MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		err = -errno;
		goto fail;
	}
	/* Any member can cut the file short: a fault past its end puts zero
	 * pages in place and sets r->lost, it never kills (ringtail.h). */
	(void)rt__guard_add_v1(m, size, &r->lost);
	/* Validate one private copy and take the geometry from it. */
	memcpy(h, m, sizeof(*h));
	err = rt__validate_v1(h, size);
	if (!err && __atomic_load_n(&r->lost, __ATOMIC_ACQUIRE))
		err = -EBADMSG;
	if (err) {
		rt__guard_del_v1(m);
		munmap(m, size);
		goto fail;
	}
	r->fd = fd;
	r->base = m;
	r->size = size;
	r->hdr = m;
	r->chunk_size = h->chunk_size;
	r->nchunks = h->nchunks;
	r->nslots = h->nslots;
	r->slots = (struct rt__slot *)(r->base + h->slots_off);
	r->owners = (uint32_t *)(r->base + h->owners_off);
	r->chunks = r->base + h->chunks_off;
	memcpy(r->hdr0, h, RT__HDR_IMMUTABLE);
	free(h);
	*out = r;
	return 0;
fail:
	free(h);
	free(r);
	close(fd);
	return err;
}

int rt__ring_check(struct rt_ring *r)
{
	struct stat st;
	int ret = 0;

	if (__atomic_load_n(&r->lost, __ATOMIC_ACQUIRE))
		return -EFAULT;
	if (fstat(r->fd, &st) == 0 && (uint64_t)st.st_size < r->size) {
		/* Cut short, and not yet touched there: the same loss. */
		__atomic_store_n(&r->lost, 1u, __ATOMIC_RELEASE);
		return -EFAULT;
	}
	if (memcmp(r->hdr, r->hdr0, RT__HDR_IMMUTABLE) != 0) {
		/* Put it back, so that writers that attach from now on see
		 * the ring as it is. */
		memcpy(r->hdr, r->hdr0, RT__HDR_IMMUTABLE);
		ret = 1;
	}
	/* Only rt_ring_remove() and rt_ring_replace() end a ring, and both
	 * unlink it: a ring still linked that says otherwise was written on. */
	if (__atomic_load_n(&r->hdr->state, __ATOMIC_RELAXED) != RT__RING_LIVE &&
	    fstat(r->fd, &st) == 0 && st.st_nlink > 0) {
		__atomic_store_n(&r->hdr->state, RT__RING_LIVE, __ATOMIC_RELEASE);
		ret = 1;
	}
	if (__atomic_load_n(&r->lost, __ATOMIC_ACQUIRE))
		return -EFAULT;
	return ret;
}

int rt_ring_lost(struct rt_ring *r)
{
	return __atomic_load_n(&r->lost, __ATOMIC_ACQUIRE) != 0;
}

void rt_ring_close(struct rt_ring *r)
{
	if (!r)
		return;
	rt__guard_del_v1(r->base);
	munmap(r->base, r->size);
	close(r->fd);
	free(r);
}

struct rt__ring_hdr *rt_ring_header(struct rt_ring *r)
{
	return r->hdr;
}

int rt_ring_remove(const char *path)
{
	struct rt_ring *r;
	int err = rt_ring_open(path, RT_RING_RDWR, &r);

	if (err)
		return err;
	/* Unlinked first: a consumer puts back the state of a ring that is
	 * still linked (rt__ring_check()). */
	if (unlink(path) < 0) {
		err = -errno;
		rt_ring_close(r);
		return err;
	}
	/* Writers see this on their next chunk claim and re-attach. */
	__atomic_store_n(&r->hdr->state, RT__RING_DEAD, __ATOMIC_RELEASE);
	rt_ring_close(r);
	return 0;
}

int rt__consumer_alive(struct rt__ring_hdr *h, int fd)
{
	uint64_t pid = __atomic_load_n(&h->consumer_pid, __ATOMIC_ACQUIRE);

	if (pid == 0)
		return 0;
	/* The consumer holds flock(LOCK_EX); a shared try-lock tells. */
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		flock(fd, LOCK_UN);
		return 0;
	}
	return 1;
}

/* Walk a slot's chain from the consumer's durable position and count what is
 * committed but not released. Bounded by nchunks against a corrupt chain. */
static void slot_queued(struct rt_ring *r, struct rt__slot *s, uint64_t *bytes, uint64_t *recs,
			uint64_t *held, uint64_t *written)
{
	uint64_t where = __atomic_load_n(&s->c_where, __ATOMIC_ACQUIRE);
	uint32_t idx = RT__WHERE_CHUNK(where), off = RT__WHERE_OFF(where);
	uint32_t steps = 0, last_count = 0;
	uint64_t b = 0, n = 0;

	if (idx == 0) {
		idx = __atomic_load_n(&s->first, __ATOMIC_ACQUIRE);
		off = RT__CHUNK_HDR;
	}
	while (idx && idx <= r->nchunks && steps++ <= r->nchunks) {
		struct rt__chunk *c = rt__chunk_at(r, idx - 1);
		uint64_t cm = __atomic_load_n(&c->committed, __ATOMIC_ACQUIRE);
		uint32_t end = RT__COMMIT_END(cm);
		if (end > off && end <= r->chunk_size)
			b += end - off;
		n += RT__COMMIT_COUNT(cm);
		last_count = RT__COMMIT_COUNT(cm);
		idx = __atomic_load_n(&c->next, __ATOMIC_ACQUIRE);
		off = RT__CHUNK_HDR;
	}
	*bytes += b;
	*written = __atomic_load_n(&s->written_sealed, __ATOMIC_RELAXED) + last_count;
	*recs = *written > __atomic_load_n(&s->c_records, __ATOMIC_RELAXED)
			? *written - __atomic_load_n(&s->c_records, __ATOMIC_RELAXED)
			: 0;
	*held = __atomic_load_n(&s->chunks_claimed, __ATOMIC_RELAXED) -
		__atomic_load_n(&s->chunks_freed, __ATOMIC_RELAXED);
	(void)n;
}

static void writer_stat(struct rt_ring *r, uint32_t i, struct rt_writer_stat *w)
{
	struct rt__slot *s = &r->slots[i];
	uint64_t bytes = 0;
	size_t n;

	memset(w, 0, sizeof(*w));
	w->slot = i;
	w->pid = __atomic_load_n(&s->owner, __ATOMIC_ACQUIRE);
	w->state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
	w->tid = s->tid;
	n = s->svc_len < 32 ? s->svc_len : 32;
	memcpy(w->service, s->service, n);
	w->service[n] = '\0';
	w->drop_full = __atomic_load_n(&s->drop_full, __ATOMIC_RELAXED);
	w->drop_full_warn = __atomic_load_n(&s->drop_full_warn, __ATOMIC_RELAXED);
	w->drop_large = __atomic_load_n(&s->drop_large, __ATOMIC_RELAXED);
	w->drop_inval = __atomic_load_n(&s->drop_inval, __ATOMIC_RELAXED);
	w->drop_noring = __atomic_load_n(&s->drop_noring, __ATOMIC_RELAXED);
	if (w->state == RT__SLOT_ACTIVE || w->state == RT__SLOT_RETIRED)
		slot_queued(r, s, &bytes, &w->records_queued, &w->chunks_held, &w->written);
}

uint64_t rt__slot_drops(const struct rt__slot *s)
{
	return __atomic_load_n(&s->drop_full, __ATOMIC_RELAXED) +
	       __atomic_load_n(&s->drop_large, __ATOMIC_RELAXED) +
	       __atomic_load_n(&s->drop_inval, __ATOMIC_RELAXED) +
	       __atomic_load_n(&s->drop_noring, __ATOMIC_RELAXED);
}

int rt_ring_stat(struct rt_ring *r, struct rt_ring_stat *st)
{
	struct rt__ring_hdr *h = r->hdr;
	uint32_t i, hwm;

	const struct rt__ring_hdr *h0 = (const struct rt__ring_hdr *)(const void *)r->hdr0;

	memset(st, 0, sizeof(*st));
	st->size = r->size;
	st->chunk_size = r->chunk_size;
	st->nchunks = r->nchunks;
	st->nslots = r->nslots;
	st->tsc = (h0->flags_incompat & RT__RING_F_TSC) ? 1 : 0;
	st->ring_id = h0->ring_id;
	st->created_ns = h0->created_ns;
	for (i = 0; i < r->nchunks; i++)
		if (__atomic_load_n(&r->owners[i], __ATOMIC_RELAXED) == 0)
			st->free_chunks++;
	hwm = __atomic_load_n(&h->slot_hwm, __ATOMIC_ACQUIRE);
	if (hwm > r->nslots)
		hwm = r->nslots;
	st->written = __atomic_load_n(&h->written_retired, __ATOMIC_RELAXED);
	st->dropped = __atomic_load_n(&h->dropped_retired, __ATOMIC_RELAXED);
	for (i = 0; i < hwm; i++) {
		struct rt__slot *s = &r->slots[i];
		uint32_t state;
		uint64_t bytes = 0, recs = 0, held = 0, written = 0;

		if (__atomic_load_n(&s->owner, __ATOMIC_ACQUIRE) == 0)
			continue;
		state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		if (state != RT__SLOT_ACTIVE && state != RT__SLOT_RETIRED)
			continue;
		st->writers++;
		slot_queued(r, s, &bytes, &recs, &held, &written);
		st->bytes_queued += bytes;
		st->records_queued += recs;
		st->written += written;
		st->dropped += rt__slot_drops(s);
	}
	st->dropped_noslot = __atomic_load_n(&h->dropped_noslot, __ATOMIC_RELAXED);
	st->dropped += st->dropped_noslot;
	st->lost = __atomic_load_n(&h->lost_total, __ATOMIC_RELAXED);
	st->corrupt = __atomic_load_n(&h->corrupt_total, __ATOMIC_RELAXED);
	st->consumed = __atomic_load_n(&h->consumed_total, __ATOMIC_RELAXED);
	st->consumer_pid = __atomic_load_n(&h->consumer_pid, __ATOMIC_RELAXED);
	st->consumer_alive = rt__consumer_alive(h, r->fd);
	st->heartbeat_ns = __atomic_load_n(&h->consumer_heartbeat_ns, __ATOMIC_RELAXED);
	st->durable_seq = __atomic_load_n(&h->durable_seq, __ATOMIC_RELAXED);
	st->spool_records = __atomic_load_n(&h->spool_records, __ATOMIC_RELAXED);
	return 0;
}

int rt_ring_writers(struct rt_ring *r, int (*fn)(const struct rt_writer_stat *w, void *arg),
		    void *arg)
{
	uint32_t i, hwm = __atomic_load_n(&r->hdr->slot_hwm, __ATOMIC_ACQUIRE);
	struct rt_writer_stat w;
	int ret;

	if (hwm > r->nslots)
		hwm = r->nslots;
	for (i = 0; i < hwm; i++) {
		if (__atomic_load_n(&r->slots[i].owner, __ATOMIC_ACQUIRE) == 0)
			continue;
		writer_stat(r, i, &w);
		ret = fn(&w, arg);
		if (ret)
			return ret;
	}
	return 0;
}

int rt_ring_replace(const char *path, const struct rt_ring_params *p)
{
	struct stat st;
	uint32_t dead = RT__RING_DEAD;
	int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK), err;

	if (fd < 0)
		return errno == ENOENT ? rt_ring_create(path, p) : -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return -ENODEV;
	}
	/* A consumer that holds it decides, not us. */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(fd);
		return err;
	}
	/* Writers that still map it look at the state at their next chunk
	 * claim and move to the new ring. */
	err = unlink(path) < 0 ? -errno : 0;
	if (!err && st.st_size >= (off_t)RT__HDR_SIZE)
		(void)!pwrite(fd, &dead, sizeof(dead), offsetof(struct rt__ring_hdr, state));
	close(fd);
	if (err)
		return err;
	return rt_ring_create(path, p);
}
