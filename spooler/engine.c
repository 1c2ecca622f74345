/* SPDX-License-Identifier: MIT */
/*
 * engine.c - ringtaild's work: drain the ring into blocks, write them with
 * io_uring (each write linked to an fdatasync: group commit), and only when
 * a block is durable release its records in the ring and publish its
 * sequence numbers.
 *
 *   ring --poll--> block builder --seal--> commit queue (at most 2)
 *        --io_uring write+fdatasync--> durable --release/publish-->
 *
 * While one commit is being written the next block fills and is compressed,
 * so the disk and the CPU work at the same time; when the disk is slower
 * than the writers, blocks simply grow (up to block_bytes), which is the
 * group commit.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rtspool.h"

#define TAG_WRITE 1u
#define TAG_SYNC 2u
#define QDEPTH 64
#define POLL_BUDGET 65536 /* records per poll */

enum cstate { C_READY, C_SUBMITTED };

struct commit {
	struct rt_buf buf;
	uint64_t off;       /* where in the segment it goes */
	uint64_t first_seq;
	uint64_t next_seq;
	uint64_t tmin, tmax;
	uint32_t nrec;
	uint32_t block_no;
	int64_t mark;
	struct rt_cursor *cur;
	size_t ncur, cur_cap;
	size_t written;
	int state;
	int pending;        /* completions outstanding */
	int err;
};

#define OWN_MAX 32

struct rt_spoold {
	struct rt_spoold_config cfg;
	struct rt_consumer *cons;
	struct rt__ring_hdr *rh;
	uint64_t ring_id;
	uint32_t nslots;
	struct rt_spool *sp;
	struct io_uring uring;
	int uring_ok;
	struct rt_bb *bb;
	uint64_t block_start;     /* monotonic ns of the first record in bb */
	uint64_t block_limit;     /* body bytes at which a block is sealed */
	int bb_full;
	struct rt_segw w;         /* the segment being written */
	/* Records up to this one are forwarded upstream (UINT64_MAX: not
	 * forwarding); set by the forwarder thread, read by retention. */
	uint64_t acked_seq;
	/* Commits: q[qh] is the oldest. */
	struct commit q[2];
	int qh, qn;
	uint64_t retry_at;
	uint64_t backoff;
	uint64_t last_err_log;
	int last_err;
	/* The ring positions that are durable, per slot (+ the global one). */
	struct rt_cursor *dur;
	uint8_t *dur_present;
	uint64_t durable_seq;
	uint64_t idle_wait;       /* ns */
	uint64_t next_retention;
	struct rt_spoold_stats stats;
	/* Why the ring at the path was replaced at start ("" if it was not):
	 * becomes a loss record in the spool. */
	char replaced[256];
	/* ringtaild's own messages, on their way into the spool as service
	 * "ringtaild" (no writer may use that name; the ring would refuse it). */
	pthread_mutex_t own_lock;
	struct own_msg {
		uint64_t time_ns;
		int sev;
		char text[500];
	} own[OWN_MAX];
	unsigned own_n;
	uint64_t own_dropped;     /* messages that found the queue full */
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void say(struct rt_spoold *d, int sev, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(struct rt_spoold *d, int sev, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	rt_spoold_own(d, sev, buf);
	if (d->cfg.log)
		d->cfg.log(d->cfg.log_arg, sev, buf);
}

/* The log callback handed to the spool's functions: the same two ways. */
static void eng_log(void *arg, int sev, const char *msg)
{
	say(arg, sev, "%s", msg);
}

void rt_spoold_own(struct rt_spoold *d, int sev, const char *msg)
{
	struct own_msg *m;
	struct timespec ts;

	if (!d)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	pthread_mutex_lock(&d->own_lock);
	if (d->own_n == OWN_MAX) {
		d->own_dropped++;
	} else {
		m = &d->own[d->own_n++];
		m->time_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		m->sev = sev < RT_SEVERITY_MIN || sev > RT_SEVERITY_MAX ? RT_INFO : sev;
		snprintf(m->text, sizeof(m->text), "%s", msg);
	}
	pthread_mutex_unlock(&d->own_lock);
}

/* Put our own messages into the block being filled, as records of service
 * "ringtaild" (and how many did not fit the queue, as a loss record). */
static void own_flush(struct rt_spoold *d)
{
	unsigned k = 0;

	if (!d->bb || d->bb_full)
		return;
	pthread_mutex_lock(&d->own_lock);
	for (; k < d->own_n; k++) {
		struct rt_rec r;
		memset(&r, 0, sizeof(r));
		r.time_ns = d->own[k].time_ns;
		r.pid = (uint32_t)getpid();
		r.severity = (uint8_t)d->own[k].sev;
		r.service = "ringtaild";
		r.service_len = 9;
		r.msg = d->own[k].text;
		r.msg_len = strlen(d->own[k].text);
		if (rt_bb_add(d->bb, &r) != 0)
			break;
		if (rt_bb_count(d->bb) == 1)
			d->block_start = mono_ns();
	}
	memmove(d->own, d->own + k, (d->own_n - k) * sizeof(d->own[0]));
	d->own_n -= k;
	pthread_mutex_unlock(&d->own_lock);
}

void rt_spoold_defaults(struct rt_spoold_config *c)
{
	memset(c, 0, sizeof(*c));
	c->ring_path = rt_ring_path_default();
	c->ring_size = RT_RING_DEFAULT_SIZE;
	c->ring_gid = -1;
	c->segment_bytes = 64ull << 20;
	c->segment_age_ns = 3600ull * 1000000000ull;
	c->retain_bytes = 4ull << 30;
	c->retain_age_ns = 0;
	c->block_bytes = 4ull << 20;
	c->commit_ns = 2ull * 1000000;
	c->fsync = RT_FSYNC_BLOCK;
}

/* ------------------------------------------------------------------------
 * Publishing
 * ------------------------------------------------------------------------ */

static void publish(struct rt_spoold *d)
{
	struct rt_spool_state *st = d->sp->state;
	uint64_t g = st->gen;

	/* A sequence lock for readers of the state file. */
	__atomic_store_n(&st->gen, g + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&st->durable_seq, d->durable_seq, __ATOMIC_RELAXED);
	__atomic_store_n(&st->segment, d->w.first, __ATOMIC_RELAXED);
	__atomic_store_n(&st->segment_bytes, d->w.durable, __ATOMIC_RELAXED);
	__atomic_store_n(&st->updated_ns, wall_ns(), __ATOMIC_RELAXED);
	__atomic_store_n(&st->records_total, d->stats.records, __ATOMIC_RELAXED);
	__atomic_store_n(&st->pid, (uint64_t)getpid(), __ATOMIC_RELAXED);
	__atomic_store_n(&st->gen, g + 2, __ATOMIC_RELEASE);
	/* And in the ring header, for `ringtail stat`. */
	__atomic_store_n(&d->rh->durable_seq, d->durable_seq, __ATOMIC_RELAXED);
	__atomic_store_n(&d->rh->spool_records, d->stats.records, __ATOMIC_RELAXED);
	memcpy(d->rh->spool_epoch, d->sp->epoch, 16);
}

static void dur_apply(struct rt_spoold *d, const struct rt_cursor *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t k = e[i].slot == RT_CURSOR_GLOBAL ? d->nslots : e[i].slot;
		if (k > d->nslots)
			continue;
		d->dur[k] = e[i];
		d->dur_present[k] = 1;
	}
}

/* ------------------------------------------------------------------------
 * Segments
 * ------------------------------------------------------------------------ */

/* Start a new segment named after @first_seq, its header carrying the
 * durable ring positions. */
static int segment_new(struct rt_spoold *d, uint64_t first_seq)
{
	struct rt_cursor *snap;
	size_t n = 0;
	int err;

	snap = malloc((d->nslots + 1) * sizeof(*snap));
	if (!snap)
		return -ENOMEM;
	for (uint32_t k = 0; k <= d->nslots; k++)
		if (d->dur_present[k])
			snap[n++] = d->dur[k];
	err = rt_segw_new(&d->w, first_seq, d->ring_id, snap, n);
	free(snap);
	if (!err)
		d->stats.segments_made++;
	return err;
}

static void retention(struct rt_spoold *d)
{
	struct rt_retain lim;
	int n;

	lim.bytes = d->cfg.retain_bytes;
	lim.age_ns = d->cfg.retain_age_ns;
	lim.hard_bytes = d->cfg.retain_hard_bytes ? d->cfg.retain_hard_bytes : UINT64_MAX;
	lim.acked_seq = __atomic_load_n(&d->acked_seq, __ATOMIC_ACQUIRE);
	n = rt_spool_retain(d->sp, d->w.first, &lim, eng_log, d);
	if (n > 0)
		d->stats.segments_removed += (uint64_t)n;
}

/* ------------------------------------------------------------------------
 * Draining, sealing, writing
 * ------------------------------------------------------------------------ */

static int add_record(void *arg, const struct rt_rec *r, const struct rt_origin *o)
{
	struct rt_spoold *d = arg;
	int err;

	(void)o;
	if (d->bb_full)
		return -1;
	err = rt_bb_add(d->bb, r);
	if (err) {
		/* Too many distinct services or writers, or no memory: this
		 * block is done; the record stays in the ring for the next. */
		d->bb_full = 1;
		return -1;
	}
	if (rt_bb_count(d->bb) == 1)
		d->block_start = mono_ns();
	if (rt_bb_body_len(d->bb) >= d->block_limit)
		d->bb_full = 1;
	return 0;
}

static struct commit *qtail(struct rt_spoold *d)
{
	return &d->q[(d->qh + d->qn) % 2];
}

/* Is the segment being written past its size or age? */
static int segment_due(const struct rt_spoold *d)
{
	return rt_segw_due(&d->w, d->cfg.segment_bytes, d->cfg.segment_age_ns);
}

/* Close the block being built into a commit. */
static int seal(struct rt_spoold *d)
{
	struct commit *c = qtail(d);
	const struct rt_cursor *e;
	size_t n;
	int64_t m;
	int err;

	m = rt_consumer_mark(d->cons, &e, &n);
	if (m < 0)
		return (int)m;
	c->buf.len = 0;
	c->off = d->w.end;
	c->first_seq = rt_bb_next_seq(d->bb) - rt_bb_count(d->bb);
	c->next_seq = rt_bb_next_seq(d->bb);
	c->nrec = rt_bb_count(d->bb);
	c->block_no = d->w.nblocks;
	c->mark = m;
	c->written = 0;
	c->err = 0;
	c->pending = 0;
	c->state = C_READY;
	if (n > c->cur_cap) {
		struct rt_cursor *nc = realloc(c->cur, n * sizeof(*nc));
		if (!nc)
			return -ENOMEM;
		c->cur = nc;
		c->cur_cap = n;
	}
	if (n) /* a block of ringtaild's own messages has no cursors */
		memcpy(c->cur, e, n * sizeof(*e));
	c->ncur = n;
	d->stats.bytes_in += rt_bb_body_len(d->bb);
	rt_bb_times(d->bb, &c->tmin, &c->tmax);
	err = rt_bb_seal(d->bb, &c->buf, c->off, c->block_no, d->ring_id, e, n);
	if (err)
		return err;
	err = rt_segw_assign(&d->w, c->off);
	if (err)
		return err;
	d->w.end += c->buf.len;
	d->qn++;
	rt_bb_reset(d->bb, c->next_seq);
	d->bb_full = 0;
	d->stats.blocks++;
	return 0;
}

static void submit(struct rt_spoold *d)
{
	struct commit *c = &d->q[d->qh];
	struct io_uring_sqe *sqe;

	sqe = io_uring_get_sqe(&d->uring);
	io_uring_prep_write(sqe, d->w.fd, c->buf.p + c->written, (unsigned)(c->buf.len - c->written),
			    c->off + c->written);
	io_uring_sqe_set_data64(sqe, TAG_WRITE);
	c->err = 0; /* each attempt stands on its own */
	c->pending = 1;
	if (d->cfg.fsync == RT_FSYNC_BLOCK) {
		/* The fdatasync runs only if the write fully succeeded. */
		sqe->flags |= IOSQE_IO_LINK;
		sqe = io_uring_get_sqe(&d->uring);
		io_uring_prep_fsync(sqe, d->w.fd, IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_data64(sqe, TAG_SYNC);
		c->pending = 2;
	}
	c->state = C_SUBMITTED;
	io_uring_submit(&d->uring);
}

/* The oldest commit is durable. */
static void complete(struct rt_spoold *d)
{
	struct commit *c = &d->q[d->qh];

	rt_consumer_release(d->cons, c->mark);
	dur_apply(d, c->cur, c->ncur);
	d->durable_seq = c->next_seq - 1;
	rt_segw_durable(&d->w, c->off + c->buf.len, c->next_seq, c->tmin, c->tmax);
	d->stats.records += c->nrec;
	d->stats.bytes_out += c->buf.len;
	d->stats.syncs += d->cfg.fsync == RT_FSYNC_BLOCK;
	d->stats.durable_seq = d->durable_seq;
	d->qh = (d->qh + 1) % 2;
	d->qn--;
	d->backoff = 0;
	if (d->last_err) {
		say(d, RT_INFO, "segment writes work again; records flow to the spool");
		d->last_err = 0;
	}
	publish(d);
}

/* The oldest commit failed: drop what reached the file, retry later. The
 * records stay in the ring meanwhile (it fills, and writers drop). */
static void failed(struct rt_spoold *d, int err)
{
	struct commit *c = &d->q[d->qh];
	uint64_t now = mono_ns();

	d->stats.write_errors++;
	if (ftruncate(d->w.fd, (off_t)c->off) < 0 && !err)
		err = -errno;
	c->written = 0;
	c->state = C_READY;
	d->backoff = d->backoff ? d->backoff * 2 : 50ull * 1000000;
	if (d->backoff > 2000ull * 1000000)
		d->backoff = 2000ull * 1000000;
	d->retry_at = now + d->backoff;
	if (err != d->last_err || now - d->last_err_log > 30ull * 1000000000) {
		char name[32];
		rt_seg_name(name, d->w.first);
		say(d, RT_ERROR,
		    "cannot write segment %s: %s; records wait in the ring (writers drop "
		    "when it is full) and the write is retried",
		    name, strerror(-err));
		d->last_err_log = now;
		d->last_err = err;
	}
}

static int reap(struct rt_spoold *d)
{
	struct io_uring_cqe *cqe;
	int seen = 0;

	while (io_uring_peek_cqe(&d->uring, &cqe) == 0) {
		struct commit *c = &d->q[d->qh];
		uint64_t tag = io_uring_cqe_get_data64(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&d->uring, cqe);
		seen++;
		if (d->qn == 0 || c->state != C_SUBMITTED)
			continue;
		if (tag == TAG_WRITE) {
			if (res < 0)
				c->err = res;
			else
				c->written += (size_t)res;
		} else if (tag == TAG_SYNC) {
			/* -ECANCELED: the write was short or failed. */
			if (res < 0 && res != -ECANCELED && !c->err)
				c->err = res;
		}
		if (--c->pending > 0)
			continue;
		if (c->err)
			failed(d, c->err);
		else if (c->written < c->buf.len)
			submit(d); /* a short write: the rest, then the sync */
		else
			complete(d);
	}
	return seen;
}

static int rotate(struct rt_spoold *d, uint64_t next_seq)
{
	int err = rt_segw_close(&d->w);

	if (!err)
		err = segment_new(d, next_seq);
	if (!err)
		retention(d); /* a segment was just closed: the limits may be passed */
	if (err) {
		char name[32];
		rt_seg_name(name, d->w.first);
		say(d, RT_ERROR, "cannot start a new segment after %s: %s; retrying", name,
		    strerror(-err));
		d->retry_at = mono_ns() + 1000ull * 1000000;
	}
	return err;
}

int rt_spoold_step(struct rt_spoold *d, int wait_ms)
{
	uint64_t now, before = d->stats.records;
	int progress = 0, got;

	progress += reap(d);
	now = mono_ns();
	/* The ring file was cut short under us: what was taken is copied and
	 * gets written; the caller restarts on the path (rt_spoold_finish(),
	 * rt_spoold_free(), rt_spoold_start()), which replaces the ring. */
	if (rt_consumer_lost(d->cons))
		return -ESTALE;
	own_flush(d);

	/* A segment that failed to be started or closed. */
	if (d->w.fd < 0 && d->qn == 0 && now >= d->retry_at) {
		if (segment_new(d, rt_bb_next_seq(d->bb) - rt_bb_count(d->bb)) != 0)
			d->retry_at = now + 1000ull * 1000000;
	}
	if (d->qn == 0 && segment_due(d) &&
	    now >= d->retry_at)
		rotate(d, rt_bb_next_seq(d->bb) - rt_bb_count(d->bb));

	if (!d->bb_full) {
		got = rt_consumer_poll(d->cons, add_record, d, POLL_BUDGET);
		if (got > 0)
			progress++;
	}
	now = mono_ns();
	/* Seal when the block is full or old enough; and at once when the disk
	 * is idle, so that light traffic is not held back. A segment past its
	 * size or age takes no more blocks: the next one goes into the new
	 * segment, once what is in flight has landed. */
	if (d->w.fd >= 0 && d->qn < 2 && rt_bb_count(d->bb) && !segment_due(d) &&
	    (d->bb_full || now - d->block_start >= d->cfg.commit_ns || d->qn == 0)) {
		int err = seal(d);
		if (err)
			return err;
		progress++;
	}
	if (d->qn && d->q[d->qh].state == C_READY && now >= d->retry_at) {
		submit(d);
		progress++;
	} else if (d->qn == 0 && rt_bb_count(d->bb) == 0) {
		/* Writers that finished change the consumer's state without any
		 * record (their slots can be freed): with nothing delivered and
		 * everything before it durable, such a mark can be released at
		 * once. */
		const struct rt_cursor *e;
		size_t n;
		int64_t m = rt_consumer_mark(d->cons, &e, &n);
		if (m > 0) {
			dur_apply(d, e, n);
			rt_consumer_release(d->cons, m);
		}
	}
	if (now >= d->next_retention) {
		d->next_retention = now + 10ull * 1000000000;
		retention(d);
	}
	if (!progress && wait_ms > 0) {
		struct __kernel_timespec ts;
		struct io_uring_cqe *cqe;
		uint64_t w = d->idle_wait ? d->idle_wait * 2 : 100000;
		if (w > (uint64_t)wait_ms * 1000000)
			w = (uint64_t)wait_ms * 1000000;
		if (rt_bb_count(d->bb) && d->block_start + d->cfg.commit_ns > now &&
		    d->block_start + d->cfg.commit_ns - now < w)
			w = d->block_start + d->cfg.commit_ns - now;
		d->idle_wait = w;
		ts.tv_sec = (long long)(w / 1000000000);
		ts.tv_nsec = (long long)(w % 1000000000);
		io_uring_wait_cqe_timeout(&d->uring, &cqe, &ts);
	} else if (progress) {
		d->idle_wait = 0;
	}
	return (int)(d->stats.records - before);
}

int rt_spoold_finish(struct rt_spoold *d)
{
	uint64_t deadline = mono_ns() + 10ull * 1000000000;
	int drained = 0;

	/* Take what the ring holds now (one empty poll), write it all. */
	while (mono_ns() < deadline) {
		int got = 0;
		reap(d);
		own_flush(d);
		if (d->qn == 0 && segment_due(d) &&
		    mono_ns() >= d->retry_at)
			rotate(d, rt_bb_next_seq(d->bb) - rt_bb_count(d->bb));
		if (!drained && !d->bb_full) {
			got = rt_consumer_poll(d->cons, add_record, d, POLL_BUDGET);
			if (got == 0)
				drained = 1;
		}
		if (d->w.fd >= 0 && d->qn < 2 && rt_bb_count(d->bb) && !segment_due(d) &&
		    (drained || d->bb_full)) {
			int err = seal(d);
			if (err)
				return err;
		}
		if (d->qn && d->q[d->qh].state == C_READY) {
			if (mono_ns() < d->retry_at) {
				struct timespec w = {0, 10 * 1000000};
				nanosleep(&w, NULL);
				continue;
			}
			submit(d);
		}
		if (drained && d->qn == 0 && rt_bb_count(d->bb) == 0)
			return 0;
		if (d->qn) {
			struct io_uring_cqe *cqe;
			io_uring_wait_cqe(&d->uring, &cqe);
		}
	}
	return d->last_err ? d->last_err : -ETIMEDOUT;
}

/* ------------------------------------------------------------------------
 * Start and stop
 * ------------------------------------------------------------------------ */

static int open_ring(struct rt_spoold *d)
{
	struct rt_ring_params p;
	int err = rt_consumer_open(d->cfg.ring_path, &d->cons);

	if (err == -EPROTO || err == -EBADMSG || err == -EPROTONOSUPPORT) {
		/* A member of the ring's group can write anything into the
		 * file, or cut it short: a ring beyond use is replaced, and the
		 * spool says so. Anything but a regular file is left alone. */
		int why = err;
		rt_ring_params_default(&p);
		p.size = d->cfg.ring_size;
		p.gid = d->cfg.ring_gid;
		err = rt_ring_replace(d->cfg.ring_path, &p);
		if (err) {
			say(d, RT_ERROR, "the ring %s is unusable (%s) and cannot be replaced: %s",
			    d->cfg.ring_path, rt_strerror(why), rt_strerror(err));
			return err;
		}
		snprintf(d->replaced, sizeof(d->replaced),
			 "the ring %s was unusable (%s): replaced by a new ring; records still "
			 "in the old one are lost, how many is unknown",
			 d->cfg.ring_path, rt_strerror(why));
		say(d, RT_WARN, "%s", d->replaced);
		err = rt_consumer_open(d->cfg.ring_path, &d->cons);
	}
	if (err == -ENOENT) {
		rt_ring_params_default(&p);
		p.size = d->cfg.ring_size;
		p.gid = d->cfg.ring_gid;
		err = rt_ring_create(d->cfg.ring_path, &p);
		if (err && err != -EEXIST) {
			say(d, RT_ERROR, "cannot create the ring %s: %s", d->cfg.ring_path,
			    err == -EINVAL ? "bad ring size" : strerror(-err));
			return err;
		}
		if (!err)
			say(d, RT_INFO, "created the ring %s", d->cfg.ring_path);
		err = rt_consumer_open(d->cfg.ring_path, &d->cons);
	}
	if (err) {
		say(d, RT_ERROR, "cannot consume the ring %s: %s", d->cfg.ring_path,
		    err == -EBUSY ? "another ringtaild is consuming it" : rt_strerror(err));
		return err;
	}
	d->rh = rt_ring_header(rt_consumer_ring(d->cons));
	d->ring_id = rt_consumer_ring_id(d->cons);
	d->nslots = d->rh->nslots;
	return 0;
}

int rt_spoold_start(const struct rt_spoold_config *c, struct rt_spoold **out)
{
	struct rt_recovered rec;
	struct rt_spoold *d;
	char name[32];
	int err;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->cfg = *c;
	pthread_mutex_init(&d->own_lock, NULL);
	d->w.fd = -1;
	d->acked_seq = UINT64_MAX;
	/* Blocks are also kept to a quarter of a segment (before compression),
	 * so that segments come out near their configured size: rotation only
	 * happens between blocks. */
	d->block_limit = c->block_bytes;
	if (c->segment_bytes / 4 < d->block_limit)
		d->block_limit = c->segment_bytes / 4 < 4096 ? 4096 : c->segment_bytes / 4;
	err = rt_spool_open(c->spool_dir, c->host, RT_SPOOL_CREATE | RT_SPOOL_LOCK, &d->sp);
	if (err) {
		say(d, RT_ERROR, "cannot use the spool %s: %s", c->spool_dir,
		    err == -EBUSY ? "another ringtaild is using it" : rt_spool_why(err));
		goto fail;
	}
	err = open_ring(d);
	if (err)
		goto fail;
	err = io_uring_queue_init(QDEPTH, &d->uring, 0);
	if (err) {
		say(d, RT_ERROR, "cannot set up io_uring: %s", strerror(-err));
		goto fail;
	}
	d->uring_ok = 1;
	d->w.sp = d->sp;
	d->w.uring = &d->uring;
	d->w.fsync = c->fsync;
	d->dur = calloc(d->nslots + 1, sizeof(*d->dur));
	d->dur_present = calloc(d->nslots + 1, 1);
	if (!d->dur || !d->dur_present) {
		err = -ENOMEM;
		goto fail;
	}

	err = rt_spool_recover(d->sp, d->ring_id, d->nslots, eng_log, d, &rec);
	if (err) {
		say(d, RT_ERROR, "cannot recover the spool %s: %s", c->spool_dir, rt_spool_why(err));
		goto fail;
	}
	/* Records the spool already holds are not taken from the ring again. */
	err = rt_consumer_restore(d->cons, rec.cur, rec.ncur);
	if (err)
		say(d, RT_WARN, "some ring positions in the spool did not fit the ring; "
				"they were ignored");
	dur_apply(d, rec.cur, rec.ncur);
	d->durable_seq = rec.next_seq - 1;
	if (rec.last_open) {
		err = rt_segw_resume(&d->w, &rec);
		if (err) {
			rt_recovered_free(&rec);
			goto fail;
		}
	} else {
		err = segment_new(d, rec.next_seq);
		if (err) {
			say(d, RT_ERROR, "cannot start a segment in %s: %s", c->spool_dir,
			    strerror(-err));
			rt_recovered_free(&rec);
			goto fail;
		}
	}
	err = rt_bb_new(d->sp->host, &d->bb);
	if (err) {
		rt_recovered_free(&rec);
		goto fail;
	}
	rt_bb_reset(d->bb, rec.next_seq);
	if (d->replaced[0]) {
		struct rt_rec lr;
		memset(&lr, 0, sizeof(lr));
		lr.time_ns = wall_ns();
		lr.pid = (uint32_t)getpid();
		lr.severity = RT_WARN;
		lr.flags = RT_REC_LOSS;
		lr.service = "ringtail";
		lr.service_len = 8;
		lr.msg = d->replaced;
		lr.msg_len = strlen(d->replaced);
		if (rt_bb_add(d->bb, &lr) == 0)
			d->block_start = mono_ns();
	}
	/* Where tools find what this spooler publishes (SPOOL/forward...). */
	{
		char *abs = realpath(c->spool_dir, NULL);
		snprintf(d->rh->spool_dir, sizeof(d->rh->spool_dir), "%s", abs ? abs : c->spool_dir);
		free(abs);
	}
	publish(d);
	rt_seg_name(name, d->w.first);
	say(d, RT_INFO,
	    "ringtaild started: ring %s, spool %s (host %s), %" PRIu64 " segments, writing %s, "
	    "next record #%" PRIu64,
	    c->ring_path, c->spool_dir, d->sp->host, rec.segments, name, rec.next_seq);
	rt_recovered_free(&rec);
	*out = d;
	return 0;
fail:
	rt_spoold_free(d);
	return err;
}

void rt_spoold_free(struct rt_spoold *d)
{
	if (!d)
		return;
	rt_segw_free(&d->w);
	if (d->uring_ok)
		io_uring_queue_exit(&d->uring);
	for (int i = 0; i < 2; i++) {
		rt_buf_free(&d->q[i].buf);
		free(d->q[i].cur);
	}
	rt_bb_free(d->bb);
	rt_consumer_close(d->cons);
	rt_spool_close(d->sp);
	free(d->dur);
	free(d->dur_present);
	free(d);
}

void rt_spoold_get_stats(const struct rt_spoold *d, struct rt_spoold_stats *st)
{
	*st = d->stats;
}

struct rt_spool *rt_spoold_spool(struct rt_spoold *d)
{
	return d->sp;
}

uint64_t *rt_spoold_acked(struct rt_spoold *d)
{
	return &d->acked_seq;
}

struct rt_consumer *rt_spoold_consumer(struct rt_spoold *d)
{
	return d->cons;
}
