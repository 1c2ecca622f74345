/* SPDX-License-Identifier: MIT */
/*
 * receive.c - ringtaild --listen: the central server. One thread per
 * connection; each sending host and spool epoch has a spool of its own under
 * CENTRAL/hosts/HOST/EPOCH/ in the same segment format.
 *
 * A batch is checked whole before anything of it is written (batch.c:
 * framing, checksums, sequence, and that what each INDEX frame says about
 * its block is true). Only then is it written, synced, and acknowledged; a
 * failed write is cut off again. A bad message closes that connection with a
 * logged reason and touches nothing stored.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rtcentral.h"
#include "rtwire.h"

#define IDLE_TIMEOUT_S 60 /* a sender pings every 15 s when it has nothing */

struct rt_central {
	struct rt_central_config cfg;
	uint8_t key[1024];
	size_t key_len;
	int lfd;
	int dirfd;
	int lockfd;
	int hostsfd;
	int port;
	pthread_mutex_t mu;
	pthread_cond_t gone; /* a connection ended */
	int nconns;
	int *conn_fds;  /* open connections, for shutdown */
	int stopping;
};

struct conn {
	struct rt_central *c;
	int fd;
	char peer[80];
	int loopback;
	struct rt_hello hello;
	struct rt_spool *sp;
	struct rt_segw w;
	struct io_uring uring;
	int uring_ok;
	uint64_t durable;   /* last record held (0: none) */
	uint64_t expect;    /* the next record a batch must start with (0: any) */
	struct rt_buf in, out, frames;
	struct rt_batch batch;
};

static uint64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void say(struct rt_central *c, int sev, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(struct rt_central *c, int sev, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (!c->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	c->cfg.log(c->cfg.log_arg, sev, buf);
}

void rt_central_defaults(struct rt_central_config *c)
{
	memset(c, 0, sizeof(*c));
	c->segment_bytes = 64ull << 20;
	c->segment_age_ns = 3600ull * 1000000000ull;
	c->retain_bytes = 4ull << 30;
	c->fsync = RT_FSYNC_BLOCK;
	c->max_batch = 16u << 20;
	c->max_conns = 256;
}

/* ------------------------------------------------------------------------
 * Socket I/O
 * ------------------------------------------------------------------------ */

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t r = send(fd, b, n, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* @return 0, -ECONNRESET (closed before any byte), -ENODATA (closed after
 * some), -ETIMEDOUT, -errno. */
static int read_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;

	while (n) {
		ssize_t r = recv(fd, b, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		if (r == 0)
			return b == p ? -ECONNRESET : -ENODATA;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Read one message of at most @max payload bytes into @buf. */
static int read_msg(int fd, uint32_t max, struct rt_wire_hdr *h, struct rt_buf *buf,
		    const char **why)
{
	uint8_t hdr[RT_WIRE_HDR];
	int err = read_all(fd, hdr, sizeof(hdr));

	*why = NULL;
	if (err == -ENODATA)
		*why = "truncated message (the connection closed in the middle of it)";
	if (err)
		return err;
	err = rt_wire_hdr_get(hdr, max, h);
	if (err) {
		*why = err == -EPROTONOSUPPORT ? "protocol version not supported"
		       : err == -EMSGSIZE      ? "message too large"
					       : "not a ringtail message";
		return err;
	}
	buf->len = 0;
	if (rt_buf_reserve(buf, h->len))
		return -ENOMEM;
	err = read_all(fd, buf->p, h->len);
	if (err == -ENODATA || err == -ECONNRESET)
		*why = "truncated message (the connection closed in the middle of it)";
	if (err)
		return err;
	buf->len = h->len;
	if (rt_wire_sum(buf->p, h->len) != h->sum) {
		*why = "message checksum mismatch";
		return -EBADMSG;
	}
	return 0;
}

/* Send an ERROR, log it, and let the caller close. */
static int refuse(struct conn *k, uint32_t code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int refuse(struct conn *k, uint32_t code, const char *fmt, ...)
{
	char reason[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	k->out.len = 0;
	if (rt_wire_error(&k->out, code, reason) == 0)
		write_all(k->fd, k->out.p, k->out.len);
	if (k->hello.host[0])
		say(k->c, RT_WARN, "connection from %s (host %s) closed: %s", k->peer, k->hello.host,
		    reason);
	else
		say(k->c, RT_WARN, "connection from %s closed: %s", k->peer, reason);
	return -EPROTO;
}

/* ------------------------------------------------------------------------
 * The handshake
 * ------------------------------------------------------------------------ */

static int handshake(struct conn *k)
{
	struct rt_central *c = k->c;
	struct rt_challenge ch;
	struct rt_welcome wl;
	struct rt_wire_hdr h;
	uint8_t mac[RT_WIRE_MAC];
	uint32_t mac_len;
	const char *why;
	int err;

	err = read_msg(k->fd, RT_WIRE_MAX_HANDSHAKE, &h, &k->in, &why);
	if (err)
		return why ? refuse(k, err == -EPROTONOSUPPORT ? RT_WE_VERSION : RT_WE_PROTOCOL,
				    "%s", why)
			   : err;
	if (h.type != RT_W_HELLO || rt_wire_get_hello(k->in.p, k->in.len, &k->hello))
		return refuse(k, RT_WE_PROTOCOL, "expected a valid HELLO");
	if (k->hello.version != RT_WIRE_VERSION)
		return refuse(k, RT_WE_VERSION, "protocol version %u not supported (this server: %u)",
			      k->hello.version, RT_WIRE_VERSION);
	if (!c->key_len && !k->loopback)
		return refuse(k, RT_WE_FORBIDDEN,
			      "this server has no --auth-key and takes connections from its own "
			      "host only");

	memset(&ch, 0, sizeof(ch));
	ch.version = RT_WIRE_VERSION;
	ch.flags = c->key_len ? RT_CH_AUTH : 0;
	if (getrandom(ch.nonce, sizeof(ch.nonce), 0) != sizeof(ch.nonce))
		return -EIO;
	k->out.len = 0;
	if (rt_wire_challenge(&k->out, &ch) || write_all(k->fd, k->out.p, k->out.len))
		return -EIO;

	err = read_msg(k->fd, RT_WIRE_MAX_HANDSHAKE, &h, &k->in, &why);
	if (err)
		return why ? refuse(k, RT_WE_PROTOCOL, "%s", why) : err;
	if (h.type != RT_W_AUTH || rt_wire_get_auth(k->in.p, k->in.len, mac, &mac_len))
		return refuse(k, RT_WE_PROTOCOL, "expected a valid AUTH");
	if (c->key_len) {
		uint8_t want[RT_WIRE_MAC];
		if (mac_len != RT_WIRE_MAC)
			return refuse(k, RT_WE_AUTH, "no proof of the key (this server has --auth-key)");
		if (rt_wire_mac(c->key, c->key_len, 0, ch.nonce, k->hello.nonce, k->hello.epoch,
				k->hello.host, want))
			return -EIO;
		if (!rt_wire_mac_equal(mac, want))
			return refuse(k, RT_WE_AUTH, "wrong proof of the key (a different --auth-key?)");
	}

	/* Authenticated: only now is anything opened on disk. */
	{
		char path[512], hex[33];
		int err2;
		rt_epoch_hex(k->hello.epoch, hex);
		/* hosts/HOST/EPOCH, made and resolved beneath hosts/, never
		 * through a link. */
		snprintf(path, sizeof(path), "%s/%s", k->hello.host, hex);
		err2 = rt_spool_openat(c->hostsfd, path, k->hello.host, k->hello.epoch,
				       RT_SPOOL_CREATE | RT_SPOOL_LOCK, &k->sp);
		if (err2 == -EBUSY)
			return refuse(k, RT_WE_BUSY, "that host and epoch are connected already");
		if (err2)
			return refuse(k, RT_WE_STORAGE, "cannot open its spool: %s",
				      rt_spool_why(err2));
		k->w.sp = k->sp;
		k->w.uring = &k->uring;
		k->w.fsync = c->cfg.fsync;
	}
	{
		struct rt_recovered rec;
		uint64_t *seqs;
		int nseg = rt_spool_list(k->sp, &seqs);
		if (nseg >= 0)
			free(seqs);
		err = rt_spool_recover(k->sp, 0, 0, c->cfg.log, c->cfg.log_arg, &rec);
		if (err)
			return refuse(k, RT_WE_STORAGE, "cannot recover its spool: %s", strerror(-err));
		k->durable = nseg > 0 ? rec.next_seq - 1 : 0;
		k->expect = nseg > 0 ? rec.next_seq : 0;
		if (rec.last_open && nseg > 0)
			err = rt_segw_resume(&k->w, &rec);
		rt_recovered_free(&rec);
		if (err)
			return refuse(k, RT_WE_STORAGE, "cannot reopen its segment: %s", strerror(-err));
	}

	memset(&wl, 0, sizeof(wl));
	wl.durable_seq = k->durable;
	wl.max_batch = c->cfg.max_batch;
	if (c->key_len) {
		wl.mac_len = RT_WIRE_MAC;
		if (rt_wire_mac(c->key, c->key_len, 1, k->hello.nonce, ch.nonce, k->hello.epoch,
				k->hello.host, wl.mac))
			return -EIO;
	}
	k->out.len = 0;
	if (rt_wire_welcome(&k->out, &wl) || write_all(k->fd, k->out.p, k->out.len))
		return -EIO;
	return 0;
}

/* ------------------------------------------------------------------------
 * Batches
 * ------------------------------------------------------------------------ */

static void publish(struct conn *k)
{
	struct rt_spool_state *st = k->sp->state;
	uint64_t g = st->gen;

	__atomic_store_n(&st->gen, g + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&st->durable_seq, k->durable, __ATOMIC_RELAXED);
	__atomic_store_n(&st->segment, k->w.fd >= 0 ? k->w.first : 0, __ATOMIC_RELAXED);
	__atomic_store_n(&st->segment_bytes, k->w.fd >= 0 ? k->w.durable : 0, __ATOMIC_RELAXED);
	/* For the central, "updated" is the last contact with the sender. */
	__atomic_store_n(&st->updated_ns, wall_ns(), __ATOMIC_RELAXED);
	__atomic_store_n(&st->pid, (uint64_t)getpid(), __ATOMIC_RELAXED);
	__atomic_store_n(&st->gen, g + 2, __ATOMIC_RELEASE);
}

static int batch(struct conn *k)
{
	struct rt_central *c = k->c;
	struct rt_batch *b = &k->batch;
	struct rt_wire_block wb;
	size_t pos;
	uint64_t off;
	uint32_t nblocks;
	int err;

	/* Check everything before writing anything. */
	err = rt_batch_check(b, k->in.p, k->in.len, k->hello.host, k->durable, k->expect);
	if (err == -EBADMSG)
		return refuse(k, b->code, "%s", b->why);
	if (err)
		return err;

	if (b->n > b->skip) {
		/* Store the new blocks: INDEX frames of our own, DATA frames as
		 * they came; one write, one sync. */
		if (k->w.fd < 0) {
			err = rt_segw_new(&k->w, b->blocks[b->skip].first_seq, 0, NULL, 0);
			if (err)
				return refuse(k, RT_WE_STORAGE, "cannot start a segment: %s",
					      strerror(-err));
		}
		k->frames.len = 0;
		off = k->w.end;
		nblocks = k->w.nblocks;
		pos = 4;
		for (uint32_t i = 0; i < b->n; i++) {
			rt_wire_batch_next(k->in.p, k->in.len, &pos, &wb);
			if (i < b->skip)
				continue;
			if (rt_segw_assign(&k->w, off + k->frames.len) ||
			    rt_seg_index_frame(&k->frames, &b->blocks[i], k->w.nblocks - 1,
					       off + k->frames.len + rt_seg_index_len(&b->blocks[i])) ||
			    rt_buf_put(&k->frames, wb.data, wb.data_len)) {
				k->w.nblocks = nblocks;
				return -ENOMEM;
			}
		}
		err = rt_write_sync(&k->uring, k->w.fd, k->frames.p, k->frames.len, off,
				    c->cfg.fsync == RT_FSYNC_BLOCK, -1);
		if (err) {
			/* Nothing of this batch stays. */
			if (ftruncate(k->w.fd, (off_t)off) < 0) {
				/* The next recovery cuts it back. */
			}
			k->w.nblocks = nblocks;
			return refuse(k, RT_WE_STORAGE, "cannot store the batch: %s", strerror(-err));
		}
		k->w.end = off + k->frames.len;
		for (uint32_t i = b->skip; i < b->n; i++)
			rt_segw_durable(&k->w, k->w.end, b->blocks[i].first_seq + b->blocks[i].nrec,
					b->blocks[i].tmin, b->blocks[i].tmax);
		k->durable = b->next - 1;
		k->expect = b->next;
		publish(k);
		if (rt_segw_due(&k->w, c->cfg.segment_bytes, c->cfg.segment_age_ns) &&
		    rt_segw_close(&k->w) == 0) {
			struct rt_retain lim = {c->cfg.retain_bytes, c->cfg.retain_age_ns, UINT64_MAX,
						UINT64_MAX};
			rt_spool_retain(k->sp, UINT64_MAX, &lim, c->cfg.log, c->cfg.log_arg);
		}
	}
	k->out.len = 0;
	if (rt_wire_u64(&k->out, RT_W_ACK, k->durable) || write_all(k->fd, k->out.p, k->out.len))
		return -EIO;
	return 0;
}

static int gap(struct conn *k)
{
	uint64_t from, to;

	if (rt_wire_get_gap(k->in.p, k->in.len, &from, &to))
		return refuse(k, RT_WE_PROTOCOL, "malformed GAP");
	if (k->expect && from != k->expect)
		return refuse(k, RT_WE_SEQUENCE, "a gap from #%" PRIu64 " where #%" PRIu64
				  " was expected", from, k->expect);
	/* The records after the gap go into a segment of their own, so the
	 * gap shows between segments (ringtail verify reports it). */
	if (k->w.fd >= 0 && rt_segw_close(&k->w) != 0)
		return refuse(k, RT_WE_STORAGE, "cannot close a segment before a gap");
	say(k->c, RT_WARN, "host %s: records #%" PRIu64 " to #%" PRIu64
			   " will not arrive (no longer in its spool)",
	    k->hello.host, from, to);
	k->expect = to + 1;
	return 0;
}

static void *conn_main(void *arg)
{
	struct conn *k = arg;
	struct rt_central *c = k->c;
	struct rt_wire_hdr h;
	const char *why;
	int err;

	memset(&k->w, 0, sizeof(k->w));
	k->w.fd = -1;
	if (io_uring_queue_init(8, &k->uring, 0) == 0)
		k->uring_ok = 1;
	else
		goto out;
	err = handshake(k);
	if (err)
		goto out;
	publish(k);
	say(c, RT_INFO, "host %s connected from %s (holding records up to #%" PRIu64 ")",
	    k->hello.host, k->peer, k->durable);
	for (;;) {
		err = read_msg(k->fd, c->cfg.max_batch, &h, &k->in, &why);
		if (err) {
			if (why)
				refuse(k, RT_WE_PROTOCOL, "%s", why);
			else if (err == -ETIMEDOUT)
				say(c, RT_WARN, "host %s: nothing heard for %d s; connection closed",
				    k->hello.host, IDLE_TIMEOUT_S);
			break;
		}
		switch (h.type) {
		case RT_W_BATCH:
			err = batch(k);
			break;
		case RT_W_GAP:
			err = gap(k);
			break;
		case RT_W_PING:
			publish(k);
			k->out.len = 0;
			err = rt_wire_empty(&k->out, RT_W_PONG) || write_all(k->fd, k->out.p, k->out.len)
				      ? -EIO
				      : 0;
			break;
		default:
			err = refuse(k, RT_WE_PROTOCOL, "unexpected message of type %u", h.type);
			break;
		}
		if (err)
			break;
	}
	say(c, RT_INFO, "host %s disconnected (holding records up to #%" PRIu64 ")", k->hello.host,
	    k->durable);
out:
	rt_segw_free(&k->w);
	rt_spool_close(k->sp);
	if (k->uring_ok)
		io_uring_queue_exit(&k->uring);
	rt_buf_free(&k->in);
	rt_buf_free(&k->out);
	rt_buf_free(&k->frames);
	rt_batch_free(&k->batch);
	pthread_mutex_lock(&c->mu);
	for (unsigned i = 0; i < c->cfg.max_conns; i++)
		if (c->conn_fds[i] == k->fd)
			c->conn_fds[i] = -1;
	c->nconns--;
	pthread_cond_broadcast(&c->gone);
	pthread_mutex_unlock(&c->mu);
	close(k->fd);
	free(k);
	return NULL;
}

/* ------------------------------------------------------------------------
 * Listening
 * ------------------------------------------------------------------------ */

static int is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		if (IN6_IS_ADDR_LOOPBACK(a))
			return 1;
		if (IN6_IS_ADDR_V4MAPPED(a))
			return a->s6_addr[12] == 127;
	}
	return 0;
}

static int open_root(struct rt_central *c)
{
	const char *dir = c->cfg.dir;
	char buf[64];
	int fd;
	ssize_t n;

	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return -errno;
	c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd < 0)
		return -errno;
	/* Ours alone, as ssh wants a key file (rt_spool_why() says why not). */
	if (rt_dir_check(c->dirfd, dir))
		return -EPERM;
	/* A local spool is not a central one, and the other way round. */
	if (faccessat(c->dirfd, "spool.meta", F_OK, 0) == 0)
		return -ENOTDIR;
	c->lockfd = openat(c->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (c->lockfd < 0)
		return -errno;
	if (flock(c->lockfd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	fd = openat(c->dirfd, RT_CENTRAL_META, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0 || strncmp(buf, "ringtail-central 1\n", 19))
			return -EBADMSG;
	} else {
		fd = openat(c->dirfd, RT_CENTRAL_META, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
		if (fd < 0 || write(fd, "ringtail-central 1\n", 19) != 19 || fsync(fd) < 0) {
			if (fd >= 0)
				close(fd);
			return -EIO;
		}
		close(fd);
		fsync(c->dirfd);
	}
	if (mkdirat(c->dirfd, RT_CENTRAL_HOSTS, 0750) < 0 && errno != EEXIST)
		return -errno;
	c->hostsfd = rt_openat_beneath(c->dirfd, RT_CENTRAL_HOSTS, O_RDONLY | O_DIRECTORY, 0);
	if (c->hostsfd < 0)
		return c->hostsfd;
	return rt_dir_check(c->hostsfd, RT_CENTRAL_HOSTS) ? -EPERM : 0;
}

int rt_central_start(const struct rt_central_config *cfg, struct rt_central **out)
{
	struct addrinfo hints, *ai = NULL;
	struct rt_central *c;
	char host[256], port[16];
	int err, one = 1;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	c->lfd = c->dirfd = c->lockfd = c->hostsfd = -1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->gone, NULL);
	c->conn_fds = malloc(cfg->max_conns * sizeof(int));
	if (!c->conn_fds) {
		free(c);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < cfg->max_conns; i++)
		c->conn_fds[i] = -1;
	if (cfg->key_file) {
		err = rt_wire_load_key(cfg->key_file, c->key, sizeof(c->key));
		if (err < 0) {
			say(c, RT_ERROR, "cannot use the key %s: %s", cfg->key_file,
			    err == -EPERM    ? "others may read it (chmod 600)"
			    : err == -EINVAL ? "it must hold 16 to 1023 bytes"
					     : strerror(-err));
			goto fail;
		}
		c->key_len = (size_t)err;
	}
	err = open_root(c);
	if (err) {
		say(c, RT_ERROR, "cannot use %s as the central spool: %s", cfg->dir,
		    err == -EBUSY     ? "another ringtaild --listen is using it"
		    : err == -ENOTDIR ? "it is a local spool (spool.meta), not a central one"
		    : err == -EBADMSG ? "central.meta is not one ringtail understands"
				      : rt_spool_why(err));
		goto fail;
	}
	err = rt_wire_parse_addr(cfg->listen, host, sizeof(host), port, sizeof(port));
	if (err) {
		say(c, RT_ERROR, "cannot listen on '%s': expected ADDR:PORT", cfg->listen);
		goto fail;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	err = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	if (err) {
		say(c, RT_ERROR, "cannot listen on '%s': %s", cfg->listen, gai_strerror(err));
		err = -EINVAL;
		goto fail;
	}
	c->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->lfd < 0 || setsockopt(c->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(c->lfd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(c->lfd, 64) < 0) {
		err = -errno;
		say(c, RT_ERROR, "cannot listen on '%s': %s", cfg->listen, strerror(errno));
		freeaddrinfo(ai);
		goto fail;
	}
	freeaddrinfo(ai);
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		getsockname(c->lfd, (struct sockaddr *)&ss, &sl);
		c->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
							: ((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	say(c, RT_INFO, "listening on %s (port %d) for forwarding hosts, spool %s", cfg->listen,
	    c->port, cfg->dir);
	if (!c->key_len)
		say(c, RT_WARN, "no --auth-key: taking connections from this host only");
	*out = c;
	return 0;
fail:
	rt_central_free(c);
	return err < 0 ? err : -EINVAL;
}

int rt_central_port(const struct rt_central *c)
{
	return c->port;
}

int rt_central_run(struct rt_central *c, volatile sig_atomic_t *stop)
{
	while (!*stop) {
		struct pollfd p = {c->lfd, POLLIN, 0};
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		struct timeval tv = {IDLE_TIMEOUT_S, 0}, stv = {30, 0};
		pthread_attr_t attr;
		pthread_t th;
		struct conn *k;
		int fd, one = 1, slot = -1;

		if (poll(&p, 1, 100) <= 0)
			continue;
		fd = accept4(c->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &stv, sizeof(stv));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		k = calloc(1, sizeof(*k));
		if (!k) {
			close(fd);
			continue;
		}
		k->c = c;
		k->fd = fd;
		k->loopback = is_loopback(&ss);
		getnameinfo((struct sockaddr *)&ss, sl, k->peer, sizeof(k->peer), NULL, 0,
			    NI_NUMERICHOST);
		pthread_mutex_lock(&c->mu);
		if ((unsigned)c->nconns < c->cfg.max_conns)
			for (unsigned i = 0; i < c->cfg.max_conns; i++)
				if (c->conn_fds[i] < 0) {
					c->conn_fds[i] = fd;
					slot = (int)i;
					c->nconns++;
					break;
				}
		pthread_mutex_unlock(&c->mu);
		if (slot < 0) {
			refuse(k, RT_WE_BUSY, "too many connections");
			close(fd);
			free(k);
			continue;
		}
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &attr, conn_main, k) != 0) {
			pthread_mutex_lock(&c->mu);
			c->conn_fds[slot] = -1;
			c->nconns--;
			pthread_mutex_unlock(&c->mu);
			close(fd);
			free(k);
		}
		pthread_attr_destroy(&attr);
	}
	return 0;
}

void rt_central_free(struct rt_central *c)
{
	if (!c)
		return;
	/* Wake every connection (its next read fails) and wait for them:
	 * each finishes the batch it is storing first. */
	pthread_mutex_lock(&c->mu);
	for (unsigned i = 0; i < c->cfg.max_conns && c->conn_fds; i++)
		if (c->conn_fds[i] >= 0)
			shutdown(c->conn_fds[i], SHUT_RDWR);
	while (c->nconns > 0)
		pthread_cond_wait(&c->gone, &c->mu);
	pthread_mutex_unlock(&c->mu);
	if (c->lfd >= 0)
		close(c->lfd);
	if (c->hostsfd >= 0)
		close(c->hostsfd);
	if (c->lockfd >= 0)
		close(c->lockfd);
	if (c->dirfd >= 0)
		close(c->dirfd);
	free(c->conn_fds);
	free(c);
}
