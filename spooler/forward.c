/* SPDX-License-Identifier: MIT */
/*
 * forward.c - ringtaild --upstream: a thread that sends the spool's durable
 * blocks, in sequence order and as they are on disk, to the central server,
 * one batch at a time, moving on only when a batch is acknowledged. The
 * server says at each connection what it holds already; the thread sends
 * from there. While the server is away it retries with capped exponential
 * backoff; what it has sent and where it stands is in SPOOL/forward.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rtcentral.h"
#include "rtwire.h"
#include "wireio.h"

#define PING_NS (15ull * 1000000000)
#define IDLE_POLL_MS 5
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000
/* The server answers each request (a batch: after checking, writing and
 * syncing it) within this; an answer begun must then be whole within the
 * grace, and a frame either way move at least at the rate: so a peer that
 * dribbles, or a stranger in between, never holds the sender up for long. */
#define RESPONSE_NS (60ull * 1000000000)
#define FRAME_GRACE_NS (10ull * 1000000000)
#define MIN_RATE (16u << 10)
#define STOP_GRACE_NS (2ull * 1000000000)

static const struct rt_wire_limits limits = {FRAME_GRACE_NS, MIN_RATE};

struct rt_forwarder {
	struct rt_forward_config cfg;
	struct rt_spool *sp;
	uint64_t *acked;
	uint8_t key[1024];
	size_t key_len;
	pthread_t th;
	int started;
	int stop_fd;   /* eventfd: written to stop the thread */
	int stop;
	int fwd_fd;
	struct rt_forward_state *st;
	uint64_t persisted;     /* acked_seq last made durable in SPOOL/forward */
	uint64_t persisted_at;
	/* The connection's keys and counters. */
	struct rt_wire_session sess;
	int welcomed;           /* WELCOME received: from now on every frame is tagged */
	/* Reading the spool. */
	struct rt_seg *seg;
	int seg_fd;
	uint64_t next;          /* the next record to send */
	struct rt_buf msg, frame;
	struct rt_wire_in in;
	uint64_t last_ping;
	uint64_t last_lag;
	uint64_t backoff_ms;
	int announced;          /* "forwarding to ..." said since the last trouble */
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

int rt_forward_state_read(const struct rt_forward_state *st, struct rt_forward_state *out)
{
	for (int tries = 0; tries < 1000; tries++) {
		uint64_t g1 = __atomic_load_n(&st->gen, __ATOMIC_ACQUIRE);
		if (g1 & 1)
			continue;
		memcpy(out, st, sizeof(*out));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&st->gen, __ATOMIC_RELAXED) == g1)
			return 0;
	}
	return -EAGAIN;
}

/* Update SPOOL/forward under its sequence lock. */
static void st_begin(struct rt_forwarder *f)
{
	__atomic_store_n(&f->st->gen, f->st->gen + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void st_end(struct rt_forwarder *f)
{
	__atomic_store_n(&f->st->gen, f->st->gen + 1, __ATOMIC_RELEASE);
}

static void fail(struct rt_forwarder *f, int sev, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A message before the thread runs. */
static void say(const struct rt_forward_config *c, int sev, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(const struct rt_forward_config *c, int sev, const char *fmt, ...)
{
	char buf[600];
	va_list ap;

	if (!c->log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	c->log(c->log_arg, sev, buf);
}

/* Record (and log) why forwarding is not going on. */
static void fail(struct rt_forwarder *f, int sev, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int same;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* The same error again and again (a server that is down) is said
	 * once, not every retry. */
	same = !strcmp(buf, f->st->last_error);
	st_begin(f);
	snprintf(f->st->last_error, sizeof(f->st->last_error), "%s", buf);
	f->st->last_error_ns = wall_ns();
	st_end(f);
	if (!same && f->cfg.log)
		f->cfg.log(f->cfg.log_arg, sev, buf);
}

static void set_acked(struct rt_forwarder *f, uint64_t acked, uint64_t sent)
{
	st_begin(f);
	f->st->acked_seq = acked;
	f->st->sent_records += sent;
	f->st->last_contact_ns = wall_ns();
	st_end(f);
	/* Retention reads it (acquire). */
	__atomic_store_n(f->acked, acked, __ATOMIC_RELEASE);
	/* Kept durably, at most once a second: after a crash the position may
	 * be a little behind, which only means resending what the server then
	 * acknowledges without storing again. */
	if (acked != f->persisted && mono_ns() - f->persisted_at > 1000000000ull) {
		msync(f->st, sizeof(*f->st), MS_SYNC);
		f->persisted = acked;
		f->persisted_at = mono_ns();
	}
}

/* Sleep @ms, or less if asked to stop. */
static void nap(struct rt_forwarder *f, uint64_t ms)
{
	struct pollfd p = {f->stop_fd, POLLIN, 0};
	poll(&p, 1, (int)ms);
}

/* ------------------------------------------------------------------------
 * The connection
 * ------------------------------------------------------------------------ */

/* Send what f->msg holds. */
static int send_msg(struct rt_forwarder *f, int fd)
{
	return rt_wire_send(fd, f->msg.p, f->msg.len, &limits);
}

/* Finish the message at @start of f->msg (tagged in a keyed session). */
static int seal(struct rt_forwarder *f, size_t start)
{
	return rt_wire_tag(&f->sess, &f->msg, start);
}

/*
 * Read the server's next message into f->in, checking its tag and sum; an
 * ERROR from the server becomes a logged reason (-EPROTO). Before WELCOME an
 * ERROR may come without a tag (a server that could not check our proof
 * cannot tag its answer): it is believed only as far as closing goes, and
 * logged as unauthenticated. @return 0 or -errno.
 */
static int read_msg(struct rt_forwarder *f, int fd, uint32_t max)
{
	struct rt_wire_in *in = &f->in;
	char reason[400];
	uint32_t code;
	const char *why;
	int err = rt_wire_recv(fd, f->stop_fd, max, rt_mono_ns() + RESPONSE_NS, &limits, in);

	/* Asked to stop while an answer is due: it usually is a moment away
	 * (the ACK of a batch the server has stored), and taking it keeps
	 * SPOOL/forward true; a server that says nothing is not waited for. */
	if (err == -ECANCELED)
		err = rt_wire_recv(fd, -1, max, rt_mono_ns() + STOP_GRACE_NS, &limits, in);
	if (err == -ETIMEDOUT && __atomic_load_n(&f->stop, __ATOMIC_RELAXED))
		return -ECANCELED;

	if (err == -EPROTONOSUPPORT && in->h.version == 1 && in->h.type == RT_W_ERROR &&
	    in->buf.len == in->h.len &&
	    rt_wire_get_error(in->buf.p, in->buf.len, &code, reason, sizeof(reason)) == 0) {
		fail(f, RT_ERROR, "upstream %s speaks forwarding protocol version 1 (this ringtaild "
				  "speaks %d): upgrade ringtaild there; it said: %s",
		     f->cfg.upstream, RT_WIRE_VERSION, reason);
		return -EPROTO;
	}
	if (err == -EPROTONOSUPPORT) {
		fail(f, RT_ERROR, "upstream %s speaks forwarding protocol version %u (this ringtaild "
				  "speaks %d)",
		     f->cfg.upstream, in->h.version, RT_WIRE_VERSION);
		return -EPROTO;
	}
	if (err == -ETIME || err == -ENODATA || err == -EBADMSG || err == -EMSGSIZE) {
		fail(f, RT_WARN, "upstream %s: %s; reconnecting", f->cfg.upstream, in->why);
		return -EPROTO;
	}
	if (err)
		return err;
	if (in->h.type == RT_W_ERROR && !(in->h.flags & RT_WF_TAG) && !f->welcomed &&
	    rt_wire_sum(in->buf.p, in->h.len) == in->h.sum &&
	    rt_wire_get_error(in->buf.p, in->buf.len, &code, reason, sizeof(reason)) == 0) {
		fail(f, RT_ERROR, "upstream %s refused: %s%s", f->cfg.upstream, reason,
		     f->sess.keyed ? " (an answer without a tag: not proven to be the server's)" : "");
		return -EPROTO;
	}
	err = rt_wire_verify(&f->sess, in->raw, &in->h, in->buf.p, in->tag, &why);
	if (err) {
		fail(f, RT_ERROR, "upstream %s: %s; not believed, reconnecting", f->cfg.upstream, why);
		return -EPROTO;
	}
	if (in->h.type == RT_W_ERROR) {
		if (rt_wire_get_error(in->buf.p, in->buf.len, &code, reason, sizeof(reason)) == 0)
			fail(f, RT_ERROR, "upstream %s refused: %s", f->cfg.upstream, reason);
		return -EPROTO;
	}
	return 0;
}

static int connect_upstream(struct rt_forwarder *f)
{
	struct addrinfo hints, *ai = NULL, *a;
	char host[256], port[16];
	int fd = -1, err, one = 1;

	if (rt_wire_parse_addr(f->cfg.upstream, host, sizeof(host), port, sizeof(port)) || !host[0]) {
		fail(f, RT_ERROR, "bad upstream address '%s' (HOST:PORT)", f->cfg.upstream);
		return -EINVAL;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	err = getaddrinfo(host, port, &hints, &ai);
	if (err) {
		fail(f, RT_WARN, "cannot resolve upstream %s: %s", f->cfg.upstream, gai_strerror(err));
		return -EHOSTUNREACH;
	}
	for (a = ai; a; a = a->ai_next) {
		struct pollfd p;
		socklen_t sl = sizeof(err);
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			continue;
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
			err = errno;
			close(fd);
			fd = -1;
			continue;
		}
		p.fd = fd;
		p.events = POLLOUT;
		if (poll(&p, 1, 5000) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0 ||
		    err) {
			if (!err)
				err = ETIMEDOUT;
			close(fd);
			fd = -1;
			continue;
		}
		break;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		fail(f, RT_WARN, "cannot connect to upstream %s: %s; retrying", f->cfg.upstream,
		     strerror(err));
		return -err;
	}
	/* Non-blocking it stays: every read and write has a deadline. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int handshake(struct rt_forwarder *f, int fd, uint64_t *durable, uint32_t *max_batch)
{
	struct rt_hello hello;
	struct rt_challenge ch;
	struct rt_welcome wl;
	struct rt_buf hello_raw = {0};
	int err;

	rt_wire_session_free(&f->sess);
	f->welcomed = 0;
	memset(&hello, 0, sizeof(hello));
	hello.version = RT_WIRE_VERSION;
	memcpy(hello.epoch, f->sp->epoch, 16);
	snprintf(hello.host, sizeof(hello.host), "%s", f->sp->host);
	if (getrandom(hello.nonce, sizeof(hello.nonce), 0) != sizeof(hello.nonce))
		return -EIO;
	f->msg.len = 0;
	if (rt_wire_hello(&f->msg, &hello) || send_msg(f, fd))
		return -EIO;
	/* The payload as sent: the keys are derived from it. */
	if (rt_buf_put(&hello_raw, f->msg.p + RT_WIRE_HDR, f->msg.len - RT_WIRE_HDR))
		return -ENOMEM;
	err = read_msg(f, fd, RT_WIRE_MAX_HANDSHAKE);
	if (!err && (f->in.h.type != RT_W_CHALLENGE ||
		     rt_wire_get_challenge(f->in.buf.p, f->in.buf.len, &ch)))
		err = -EBADMSG;
	if (!err && (ch.flags & RT_CH_AUTH) && !f->key_len) {
		fail(f, RT_ERROR, "upstream %s wants a key: start ringtaild with --auth-key",
		     f->cfg.upstream);
		err = -EACCES;
	}
	if (!err && !(ch.flags & RT_CH_AUTH) && f->key_len) {
		/* It does not ask for a proof, so it could not give one:
		 * our records go to no one who does not hold our key. */
		fail(f, RT_ERROR, "upstream %s could not prove it holds our key; not sending",
		     f->cfg.upstream);
		err = -EACCES;
	}
	if (!err)
		err = rt_wire_session_init(&f->sess, f->key_len ? f->key : NULL, f->key_len, 0,
					   hello_raw.p, hello_raw.len, f->in.buf.p, f->in.buf.len);
	rt_buf_free(&hello_raw);
	if (err)
		return err;
	/* AUTH: with a key, its tag is our proof. */
	f->msg.len = 0;
	if (rt_wire_auth(&f->msg) || seal(f, 0) || send_msg(f, fd))
		return -EIO;
	err = read_msg(f, fd, RT_WIRE_MAX_HANDSHAKE);
	if (err)
		return err;
	if (f->in.h.type != RT_W_WELCOME || rt_wire_get_welcome(f->in.buf.p, f->in.buf.len, &wl))
		return -EBADMSG;
	/* With a key, the WELCOME's tag proved the server holds it too, and
	 * that what it says it holds is what it said. */
	f->welcomed = 1;
	*durable = wl.durable_seq;
	*max_batch = wl.max_batch;
	return 0;
}

/* ------------------------------------------------------------------------
 * Reading the spool
 * ------------------------------------------------------------------------ */

static void drop_seg(struct rt_forwarder *f)
{
	rt_seg_close(f->seg);
	f->seg = NULL;
	if (f->seg_fd >= 0)
		close(f->seg_fd);
	f->seg_fd = -1;
}

/*
 * Make f->seg the segment holding record f->next (up to its durable part).
 * @return 1 when there is something to send, 0 when not yet, or a negative
 * errno. Sets *@gap_to when records from f->next on are gone from the spool
 * (then they are to be declared, not sent).
 */
static int find(struct rt_forwarder *f, const struct rt_spool_state *st, uint64_t *gap_to)
{
	uint64_t *seqs = NULL;
	int n, i, err;

	*gap_to = 0;
	if (f->seg) {
		uint64_t limit = f->seg->hdr.first_seq == st->segment ? st->segment_bytes : 0;
		if (!f->seg->closed && (err = rt_seg_refresh(f->seg, limit, 0)) < 0)
			return err;
		if (f->next < f->seg->next_seq && f->next >= f->seg->hdr.first_seq)
			return 1;
		if (!f->seg->closed)
			return 0; /* the open segment: wait for more */
		drop_seg(f);   /* done with it */
	}
	n = rt_spool_list(f->sp, &seqs);
	if (n <= 0) {
		free(seqs);
		return n;
	}
	/* The segment whose first record is the largest not after next. */
	for (i = n - 1; i >= 0 && seqs[i] > f->next; i--)
		;
	if (i < 0) {
		*gap_to = seqs[0] - 1; /* removed before it was sent */
		free(seqs);
		return 1;
	}
	{
		char name[32];
		uint64_t limit;
		rt_seg_name(name, seqs[i]);
		limit = seqs[i] == st->segment ? st->segment_bytes : 0;
		f->seg_fd = openat(f->sp->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (f->seg_fd < 0) {
			free(seqs);
			return errno == ENOENT ? 0 : -errno; /* removed meanwhile: look again */
		}
		err = rt_seg_open_fd(f->seg_fd, 0, limit, &f->seg);
		if (err) {
			close(f->seg_fd);
			f->seg_fd = -1;
			free(seqs);
			return err;
		}
	}
	if (f->next >= f->seg->next_seq) {
		/* Past its end: either a gap up to the next segment, or nothing yet. */
		if (f->seg->closed && i + 1 < n && seqs[i + 1] > f->next)
			*gap_to = seqs[i + 1] - 1;
		else if (f->seg->closed && i + 1 < n)
			drop_seg(f);
		free(seqs);
		return *gap_to ? 1 : 0;
	}
	free(seqs);
	return 1;
}

/* Append the blocks from f->next on, up to @max bytes, to a BATCH. Returns
 * the records in it (0: none), or a negative errno. */
static int fill(struct rt_forwarder *f, uint32_t max, uint64_t *last)
{
	struct rt_seg *s = f->seg;
	size_t start = f->msg.len;
	uint32_t b;
	int recs = 0;

	for (b = 0; b < s->nblocks && s->blocks[b].first_seq + s->blocks[b].nrec <= f->next; b++)
		;
	if (b == s->nblocks)
		return 0;
	if (s->blocks[b].first_seq != f->next) {
		/* What the server holds did not come from this spool: with
		 * keys only a holder of this host's key could have sent it.
		 * Nothing sent can mend it; an operator must look. */
		fail(f, RT_ERROR, "upstream holds part of a block (up to #%" PRIu64 " of #%" PRIu64
				  "..#%" PRIu64 "): records it holds for this host and epoch did not "
				  "come from this spool; its copy needs a look (retrying)",
		     f->next - 1, s->blocks[b].first_seq,
		     s->blocks[b].first_seq + s->blocks[b].nrec - 1);
		return -EPROTO;
	}
	if (rt_wire_begin(&f->msg) || rt_wire_batch_start(&f->msg))
		return -ENOMEM;
	for (; b < s->nblocks; b++) {
		const struct rt_seg_block *sb = &s->blocks[b];
		size_t need = (size_t)sb->index_len + sb->data_len;
		if (recs && f->msg.len - start + need > max)
			break;
		f->frame.len = 0;
		if (rt_buf_reserve(&f->frame, need))
			return -ENOMEM;
		/* The INDEX frame and the DATA frame follow each other on disk. */
		if (pread(f->seg_fd, f->frame.p, need, (off_t)sb->index_off) != (ssize_t)need)
			return -EIO;
		if (rt_wire_batch_add(&f->msg, start, f->frame.p, sb->index_len,
				      f->frame.p + sb->index_len, sb->data_len))
			return -ENOMEM;
		recs += (int)sb->nrec;
		*last = sb->first_seq + sb->nrec - 1;
	}
	rt_wire_end(&f->msg, start, RT_W_BATCH);
	if (seal(f, start))
		return -EIO;
	return recs;
}

/* Bytes of the spool not yet acknowledged, about: the segments holding
 * records after @acked, whole. */
static uint64_t lag_bytes(struct rt_forwarder *f, uint64_t acked)
{
	struct rt_spool_state ss;
	uint64_t *seqs, total = 0;
	int n;

	if (rt_state_read(f->sp->state, &ss) == 0 && acked >= ss.durable_seq)
		return 0;
	n = rt_spool_list(f->sp, &seqs);
	for (int i = 0; i < n; i++) {
		struct stat st;
		char name[32];
		if (i + 1 < n && seqs[i + 1] <= acked + 1)
			continue; /* wholly acknowledged */
		rt_seg_name(name, seqs[i]);
		if (fstatat(f->sp->dirfd, name, &st, 0) == 0)
			total += (uint64_t)st.st_size;
	}
	if (n > 0)
		free(seqs);
	return total;
}

/* Send batches while the connection lasts. */
static int stream(struct rt_forwarder *f, int fd, uint64_t acked, uint32_t max_batch)
{
	uint32_t max = f->cfg.max_batch < max_batch ? f->cfg.max_batch : max_batch;
	int err;

	/* From the first record the server does not hold; if the spool has
	 * lost some of them already, a GAP says so first. */
	f->next = acked + 1;
	f->last_ping = mono_ns();
	while (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED)) {
		struct rt_spool_state st;
		uint64_t gap_to, last = 0, ack;
		int r;

		if (rt_state_read(f->sp->state, &st))
			continue;
		if (f->next > st.durable_seq) {
			r = 0;
		} else {
			r = find(f, &st, &gap_to);
			if (r < 0)
				return r;
		}
		if (r == 1 && gap_to) {
			f->msg.len = 0;
			if (rt_wire_gap(&f->msg, f->next, gap_to) || seal(f, 0) || send_msg(f, fd))
				return -EIO;
			fail(f, RT_WARN, "records #%" PRIu64 " to #%" PRIu64
					 " left the spool before they were forwarded",
			     f->next, gap_to);
			f->next = gap_to + 1;
			continue;
		}
		if (r == 1) {
			f->msg.len = 0;
			r = fill(f, max, &last);
			if (r < 0)
				return r;
		}
		if (mono_ns() - f->last_lag > 1000000000ull) {
			uint64_t lb = lag_bytes(f, acked);
			st_begin(f);
			f->st->lag_bytes = lb;
			st_end(f);
			f->last_lag = mono_ns();
		}
		if (r == 0) {
			/* Nothing to send: watch the socket (a server closing)
			 * and the stop request; ping now and then. */
			struct pollfd p[2] = {{f->stop_fd, POLLIN, 0}, {fd, POLLIN, 0}};
			uint64_t now = mono_ns();
			if (now - f->last_ping > PING_NS) {
				f->msg.len = 0;
				if (rt_wire_empty(&f->msg, RT_W_PING) || seal(f, 0) || send_msg(f, fd))
					return -EIO;
				err = read_msg(f, fd, 4096);
				if (err)
					return err;
				if (f->in.h.type != RT_W_PONG)
					return -EBADMSG;
				f->last_ping = now;
				set_acked(f, acked, 0);
			}
			if (poll(p, 2, IDLE_POLL_MS) > 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
				err = read_msg(f, fd, 4096);
				return err ? err : -EBADMSG;
			}
			continue;
		}
		if ((err = send_msg(f, fd)) != 0)
			return err;
		err = read_msg(f, fd, 4096);
		if (err)
			return err;
		if (f->in.h.type != RT_W_ACK || rt_wire_get_u64(f->in.buf.p, f->in.buf.len, &ack) ||
		    ack != last) {
			fail(f, RT_ERROR, "upstream %s answered a batch up to #%" PRIu64
					  " with something else",
			     f->cfg.upstream, last);
			return -EBADMSG;
		}
		set_acked(f, ack, ack - (f->next - 1));
		acked = ack;
		f->next = ack + 1;
		f->last_ping = mono_ns();
		if (!f->announced || f->st->last_error[0]) {
			/* Progress: the trouble, if any, is over. */
			f->backoff_ms = BACKOFF_MIN_MS;
			f->announced = 1;
			st_begin(f);
			f->st->last_error[0] = '\0';
			st_end(f);
			if (f->cfg.log) {
				char m[320];
				snprintf(m, sizeof(m), "forwarding to %s (acknowledged up to #%" PRIu64 ")",
					 f->cfg.upstream, ack);
				f->cfg.log(f->cfg.log_arg, RT_INFO, m);
			}
		}
	}
	return 0;
}

static void *forward_main(void *arg)
{
	struct rt_forwarder *f = arg;
	uint64_t jitter = mono_ns() | 1;

	f->backoff_ms = BACKOFF_MIN_MS;
	while (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED)) {
		uint64_t durable = 0;
		uint32_t max_batch = 0;
		int fd = connect_upstream(f), err;

		if (fd >= 0) {
			err = handshake(f, fd, &durable, &max_batch);
			if (err == 0) {
				st_begin(f);
				f->st->connected = 1;
				st_end(f);
				set_acked(f, durable, 0);
				err = stream(f, fd, durable, max_batch);
				if (err && err != -EPROTO && err != -ECANCELED)
					fail(f, RT_WARN, "connection to upstream %s lost: %s; retrying",
					     f->cfg.upstream, strerror(-err));
			} else if (err != -EPROTO && err != -EACCES && err != -ECANCELED) {
				fail(f, RT_WARN, "handshake with upstream %s failed: %s; retrying",
				     f->cfg.upstream, strerror(-err));
			}
			close(fd);
			rt_wire_session_free(&f->sess);
			drop_seg(f);
			st_begin(f);
			f->st->connected = 0;
			st_end(f);
		}
		if (__atomic_load_n(&f->stop, __ATOMIC_RELAXED))
			break;
		/* Capped exponential backoff, with some jitter so that a fleet
		 * does not come back all at the same instant. */
		jitter ^= jitter << 13;
		jitter ^= jitter >> 7;
		jitter ^= jitter << 17;
		nap(f, f->backoff_ms / 2 + jitter % (f->backoff_ms / 2 + 1));
		f->backoff_ms = f->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : f->backoff_ms * 2;
	}
	return NULL;
}

int rt_forward_start(const struct rt_forward_config *c, struct rt_spool *sp, uint64_t *acked_seq,
		     struct rt_forwarder **out)
{
	struct rt_forwarder *f = calloc(1, sizeof(*f));
	int err, said = 0;

	if (!f)
		return -ENOMEM;
	f->cfg = *c;
	if (!f->cfg.max_batch)
		f->cfg.max_batch = 8u << 20;
	f->sp = sp;
	f->acked = acked_seq;
	f->seg_fd = -1;
	f->stop_fd = -1;
	f->fwd_fd = -1;
	if (!rt_wire_host_ok(sp->host)) {
		/* A spool made before host names were checked. */
		say(c, RT_ERROR, "cannot forward to %s: this spool's host name is not one a central "
				 "takes (1 to 255 of A-Z a-z 0-9 . _ -, not starting with . or -)",
		    c->upstream);
		err = -EINVAL;
		said = 1;
		goto fail;
	}
	if (c->key_file) {
		err = rt_wire_load_key(AT_FDCWD, c->key_file, f->key, sizeof(f->key));
		if (err < 0) {
			say(c, RT_ERROR, "cannot forward to %s: cannot use the key %s: %s", c->upstream,
			    c->key_file, rt_wire_key_error(err));
			said = 1;
			goto fail;
		}
		f->key_len = (size_t)err;
	}
	/* SPOOL/forward: where forwarding stands, across restarts. */
	err = rt_map_state_file(sp->dirfd, "forward", sizeof(*f->st), 1, (void **)&f->st);
	if (err)
		goto fail;
	if (memcmp(f->st->magic, RT_FWD_MAGIC, 8) || strcmp(f->st->upstream, c->upstream)) {
		/* New, or another upstream: it has none of our records yet. */
		memset(f->st, 0, sizeof(*f->st));
		memcpy(f->st->magic, RT_FWD_MAGIC, 8);
		f->st->version = 1;
		snprintf(f->st->upstream, sizeof(f->st->upstream), "%s", c->upstream);
	}
	f->st->connected = 0;
	f->st->sent_records = 0;
	f->persisted = f->st->acked_seq;
	/* Until the upstream says otherwise, what it acknowledged last time. */
	__atomic_store_n(acked_seq, f->st->acked_seq, __ATOMIC_RELEASE);
	f->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (f->stop_fd < 0) {
		err = -errno;
		goto fail;
	}
	if (pthread_create(&f->th, NULL, forward_main, f) != 0) {
		err = -EAGAIN;
		goto fail;
	}
	f->started = 1;
	*out = f;
	return 0;
fail:
	if (!said)
		say(c, RT_ERROR, "cannot forward to %s: %s", c->upstream, strerror(-err));
	rt_forward_stop(f);
	return err;
}

void rt_forward_stop(struct rt_forwarder *f)
{
	uint64_t one = 1;

	if (!f)
		return;
	if (f->started) {
		__atomic_store_n(&f->stop, 1, __ATOMIC_RELAXED);
		if (write(f->stop_fd, &one, sizeof(one)) < 0) {
			/* the thread polls stop every few ms anyway */
		}
		pthread_join(f->th, NULL);
	}
	drop_seg(f);
	if (f->st) {
		msync(f->st, sizeof(*f->st), MS_SYNC);
		munmap(f->st, sizeof(*f->st));
	}
	if (f->fwd_fd >= 0)
		close(f->fwd_fd);
	if (f->stop_fd >= 0)
		close(f->stop_fd);
	rt_wire_session_free(&f->sess);
	OPENSSL_cleanse(f->key, sizeof(f->key));
	rt_buf_free(&f->msg);
	rt_wire_in_free(&f->in);
	rt_buf_free(&f->frame);
	free(f);
}
