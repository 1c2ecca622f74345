/* SPDX-License-Identifier: MIT */
/*
 * receive.c - ringtaild --listen: the central server. Each sending host and
 * spool epoch has a spool of its own under CENTRAL/hosts/HOST/EPOCH/ in the
 * same segment format.
 *
 * Nothing a peer sends is trusted, before or after it authenticates:
 *
 * - Handshakes run in the listening thread, all of them at once, each with a
 *   deadline for the whole of it; a peer has no thread, no file and nothing
 *   on disk before it has proven it holds a key (or, without keys, that it
 *   is on loopback). Connections still in their handshake have a bounded
 *   pool of their own, so that they can never take the slots of
 *   authenticated senders; when it is full, a new connection takes the place
 *   of one from the address whose handshakes failed most lately (then: that
 *   holds most places; then: that has owed us a message longest). A flood
 *   soon evicts itself; a real sender, new and answering at once, finishes
 *   its handshake in a round trip or two. No address may hold more than
 *   max_pending_addr places.
 * - Once authenticated, a connection has a thread; every frame must carry
 *   its tag (keyed mode), begin within the idle time and, once begun, come
 *   at the minimum rate. A batch is checked whole before anything of it is
 *   written (batch.c: framing, checksums, sequence, that each INDEX frame
 *   tells the truth about its block, valid service names). Only then is it
 *   written, synced, and acknowledged; a failed write is cut off again. Any
 *   bad frame closes that connection with a logged reason and touches
 *   nothing stored.
 * - Who may send for which host: a host with a key file in --host-keys must
 *   use that key; the shared --auth-key covers the others. A host's first
 *   epoch is recorded in CENTRAL/hosts/HOST/primary when its directory is
 *   made; another epoch is taken only from the host's own key.
 * - A host's directory and spool are made when its first batch is stored,
 *   not at the handshake, so a peer that says HELLO (or even authenticates)
 *   and sends nothing leaves nothing behind.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
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
#include "wireio.h"

#define PRIMARY "primary"
#define SUMMARY_NS (10ull * 1000000000)
#define ACCEPTS_PER_ROUND 128
#define LOG_BURST 20      /* refusals logged one by one before the limiter... */
#define LOG_PER_S 2       /* ... then this many a second, the rest counted */
#define REP_SLOTS 4096    /* addresses remembered for their failed handshakes */
#define REP_HALF_NS (5ull * 1000000000) /* ... a failure counts half after this */

/* What a peer authenticated with. */
enum cred {
	CRED_NONE,   /* no key anywhere: a loopback peer */
	CRED_SHARED, /* the shared --auth-key */
	CRED_HOST,   /* its host's own key (--host-keys) */
};

static const char *const cred_name[] = {"without a key (loopback)", "with the shared key",
					"with its own key"};

/* Why a connection ended before it authenticated: counted, and summed up in
 * the log. */
enum drop {
	DROP_DEADLINE, /* the handshake's deadline */
	DROP_EVICTED,  /* the pool was full: a newer connection took its place */
	DROP_ADDR,     /* its address held max_pending_addr places already */
	DROP_REFUSED,  /* it said something wrong */
	DROP_CLOSED,   /* it went away */
	DROP_KINDS
};

/* A connection in its handshake (the listening thread's alone). */
struct pend {
	int fd;
	uint8_t addr[16];  /* the peer's address, for counting per address */
	uint8_t alen;
	int loopback;
	char peer[64];
	uint64_t accepted;
	uint64_t owed;     /* since when the peer owes us its next message */
	int stage;         /* 0: HELLO due, 1: AUTH due */
	size_t have;
	uint8_t buf[RT_WIRE_HDR + RT_WIRE_MAX_HANDSHAKE + RT_WIRE_TAG];
	struct rt_hello hello;
	int cred;
	struct rt_wire_session sess;
};

/* An address whose handshakes ended without authenticating, lately: the
 * first to make room when the pool is full. Not knowing an address means
 * it has a clean record, so the table's size can only spare a flooder,
 * never hide a real sender. */
struct rep {
	uint8_t addr[16];
	uint8_t alen;
	uint32_t failures; /* as of @at, halved every REP_HALF_NS since */
	uint64_t at;
};

struct conn;

struct rt_central {
	struct rt_central_config cfg;
	struct rt_wire_limits lim;
	uint8_t key[1024];       /* the shared key */
	size_t key_len;
	int keysfd;              /* --host-keys, or -1 */
	int keyed;               /* some key: every peer must prove one */
	int lfd;
	int dirfd;
	int lockfd;
	int hostsfd;
	int port;
	/* The handshakes (listening thread only). */
	struct pend **pend;
	unsigned npend;
	uint64_t drops[DROP_KINDS], drops_said[DROP_KINDS];
	struct rep *rep;         /* REP_SLOTS of them */
	uint64_t last_summary, log_tokens_at;
	uint64_t accept_again;   /* out of fds: accept nothing before this */
	double log_tokens;
	/* Authenticated connections, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t gone;     /* a connection ended */
	struct conn *conns;
	unsigned nconns;
	/* Deciding about and making host directories, one connection at a time. */
	pthread_mutex_t hosts_mu;
};

/* An authenticated connection (its own thread). */
struct conn {
	struct rt_central *c;
	struct conn *next;
	int fd;
	char peer[64];
	struct rt_hello hello;
	char epoch_hex[33];
	int cred;
	struct rt_wire_session sess;
	struct rt_spool *sp;   /* NULL until it exists (made with the first batch) */
	struct rt_segw w;
	struct io_uring uring;
	int uring_ok;
	uint64_t durable;   /* last record held (0: none) */
	uint64_t expect;    /* the next record a batch must start with (0: any) */
	struct rt_buf out, frames;
	struct rt_wire_in in;
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
	char buf[600];
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
	c->max_pending_addr = 8;
	c->handshake_ns = 10ull * 1000000000;
	c->idle_ns = 60ull * 1000000000; /* a sender pings every 15 s when it has nothing */
	c->min_rate = 16u << 10;
}

/* ------------------------------------------------------------------------
 * Keys
 * ------------------------------------------------------------------------ */

/*
 * The key host @host must prove: its own in --host-keys if there is a file
 * for it, else the shared one. @return the credential with *@len bytes in
 * @key, CRED_NONE on a keyless server, or -ENOKEY (no key for it) or the
 * rt_wire_load_key() error of its file (it is then refused: a host with a
 * file of its own never falls back to the shared key).
 */
static int key_for(struct rt_central *c, const char *host, uint8_t *key, size_t cap, size_t *len)
{
	if (c->keysfd >= 0) {
		int n = rt_wire_load_key(c->keysfd, host, key, cap);
		if (n >= 0) {
			*len = (size_t)n;
			return CRED_HOST;
		}
		if (n != -ENOENT)
			return n;
	}
	if (c->key_len) {
		memcpy(key, c->key, c->key_len);
		*len = c->key_len;
		return CRED_SHARED;
	}
	return c->keyed ? -ENOKEY : CRED_NONE;
}

/* ------------------------------------------------------------------------
 * Handshakes (the listening thread)
 * ------------------------------------------------------------------------ */

/* May one more refusal be logged on its own? A flood must not flood the
 * log: what is not logged is counted and summed up. */
static int log_allowed(struct rt_central *c)
{
	uint64_t now = rt_mono_ns();

	c->log_tokens += (double)(now - c->log_tokens_at) / 1e9 * LOG_PER_S;
	c->log_tokens_at = now;
	if (c->log_tokens > LOG_BURST)
		c->log_tokens = LOG_BURST;
	if (c->log_tokens < 1)
		return 0; /* counted by the caller, summed up by summary() */
	c->log_tokens -= 1;
	return 1;
}

static struct rep *rep_slot(struct rt_central *c, const uint8_t *addr, uint8_t alen)
{
	uint64_t h = 1469598103934665603ull;

	for (uint8_t i = 0; i < alen; i++)
		h = (h ^ addr[i]) * 1099511628211ull;
	return &c->rep[h % REP_SLOTS];
}

static uint32_t rep_decayed(const struct rep *r, uint64_t now)
{
	uint64_t halvings = (now - r->at) / REP_HALF_NS;
	return halvings >= 32 ? 0 : r->failures >> halvings;
}

/* Failures of @p's address lately (0: none known). */
static uint32_t rep_of(struct rt_central *c, const struct pend *p, uint64_t now)
{
	const struct rep *r = rep_slot(c, p->addr, p->alen);

	if (r->alen != p->alen || memcmp(r->addr, p->addr, p->alen))
		return 0;
	return rep_decayed(r, now);
}

/* One more handshake from @p's address ended without authenticating. A
 * slot another address holds goes to this one if its record is no worse. */
static void rep_fail(struct rt_central *c, const struct pend *p)
{
	uint64_t now = rt_mono_ns();
	struct rep *r = rep_slot(c, p->addr, p->alen);
	uint32_t f;

	if (r->alen == p->alen && !memcmp(r->addr, p->addr, p->alen)) {
		f = rep_decayed(r, now);
	} else {
		if (r->alen && rep_decayed(r, now) > 1)
			return;
		memcpy(r->addr, p->addr, p->alen);
		r->alen = p->alen;
		f = 0;
	}
	r->failures = f < UINT32_MAX ? f + 1 : f;
	r->at = now;
}

static void pend_close(struct rt_central *c, unsigned i)
{
	struct pend *p = c->pend[i];

	if (p->fd >= 0)
		close(p->fd);
	rt_wire_session_free(&p->sess);
	free(p);
	c->pend[i] = c->pend[--c->npend];
}

/* Best effort, never blocking: a peer that does not read gets nothing. */
static void send_now(int fd, const struct rt_buf *b)
{
	if (send(fd, b->p, b->len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* it is closed next anyway */
	}
}

/* End handshake @i: an ERROR (framed as version @version has it) saying
 * why, a log line (rate-limited), and the count. */
static int pend_drop(struct rt_central *c, unsigned i, int kind, int version, uint32_t code,
		      const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int pend_drop(struct rt_central *c, unsigned i, int kind, int version, uint32_t code,
		      const char *fmt, ...)
{
	struct pend *p = c->pend[i];
	struct rt_buf b = {0};
	char reason[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (code && (version == 1 ? rt_wire_error_v1(&b, code, reason)
				  : rt_wire_error(&b, code, reason)) == 0)
		send_now(p->fd, &b);
	rt_buf_free(&b);
	c->drops[kind]++;
	rep_fail(c, p);
	if (kind != DROP_CLOSED && log_allowed(c)) {
		c->drops_said[kind]++;
		if (p->hello.host[0])
			say(c, RT_WARN, "connection from %s (host %s) closed: %s", p->peer,
			    p->hello.host, reason);
		else
			say(c, RT_WARN, "connection from %s closed: %s", p->peer, reason);
	}
	pend_close(c, i);
	return 0;
}

/* Every so often: how many handshakes ended how, when not all were said. */
static void summary(struct rt_central *c, int last)
{
	static const char *const names[DROP_KINDS] = {
		"ran out of time", "were evicted (pool full)", "were evicted (too many from one address)",
		"were refused", "were closed by the peer"};
	uint64_t now = rt_mono_ns(), d[DROP_KINDS], total = 0;
	char buf[512];
	size_t n = 0;

	if (!last && now - c->last_summary < SUMMARY_NS)
		return;
	c->last_summary = now;
	for (int k = 0; k < DROP_KINDS; k++) {
		d[k] = c->drops[k] - c->drops_said[k];
		/* Peers that go away quietly are only worth a word in a flood. */
		if (k != DROP_CLOSED || total)
			total += d[k];
	}
	if (!total)
		return;
	for (int k = 0; k < DROP_KINDS; k++) {
		if (!d[k])
			continue;
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%" PRIu64 " %s", n ? ", " : "", d[k],
				      names[k]);
		c->drops_said[k] = c->drops[k];
		if (n >= sizeof(buf))
			break;
	}
	say(c, RT_WARN,
	    "%s %" PRIu64 " connections ended before they authenticated without a log line of "
	    "their own: %s (handshake deadline %" PRIu64 " ms, pool %u, %u per address)",
	    last ? "in all," : "lately,", total, buf, c->cfg.handshake_ns / 1000000, c->cfg.max_pending,
	    c->cfg.max_pending_addr);
}

static void peer_addr(const struct sockaddr_storage *ss, struct pend *p)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		memcpy(p->addr, &a->sin_addr, 4);
		p->alen = 4;
		p->loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	} else if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			memcpy(p->addr, a->s6_addr + 12, 4);
			p->alen = 4;
			p->loopback = a->s6_addr[12] == 127;
		} else {
			memcpy(p->addr, a->s6_addr, 16);
			p->alen = 16;
			p->loopback = IN6_IS_ADDR_LOOPBACK(a);
		}
	}
}

static int same_addr(const struct pend *a, const struct pend *b)
{
	return a->alen == b->alen && !memcmp(a->addr, b->addr, a->alen);
}

/*
 * Make room for new connection @n. If its address holds its share of the
 * pool already, the oldest of them goes. If the pool is full, the one that
 * goes is, in this order of preference: from the address whose handshakes
 * have failed most lately, from the address holding most places, and the
 * one that has owed us its next message longest. A flood soon has the worst
 * record and evicts itself; a real sender, new and answering at once, is
 * the last one chosen.
 */
static void make_room(struct rt_central *c, const struct pend *n)
{
	unsigned mine = 0, victim = 0, best_cnt = 0;
	uint32_t best_rep = 0;
	uint64_t now = rt_mono_ns();
	int found = 0;

	for (unsigned i = 0; i < c->npend; i++)
		if (same_addr(c->pend[i], n)) {
			if (!mine || c->pend[i]->owed < c->pend[victim]->owed)
				victim = i;
			mine++;
		}
	if (mine >= c->cfg.max_pending_addr) {
		pend_drop(c, victim, DROP_ADDR, RT_WIRE_VERSION, RT_WE_BUSY,
			  "evicted: more than %u connections from %s waiting to authenticate",
			  c->cfg.max_pending_addr, n->peer);
		return;
	}
	if (c->npend < c->cfg.max_pending)
		return;
	for (unsigned i = 0; i < c->npend; i++) {
		uint32_t rep = rep_of(c, c->pend[i], now);
		unsigned cnt = 0;
		for (unsigned j = 0; j < c->npend; j++)
			cnt += same_addr(c->pend[i], c->pend[j]);
		if (!found || rep > best_rep || (rep == best_rep && cnt > best_cnt) ||
		    (rep == best_rep && cnt == best_cnt && c->pend[i]->owed < c->pend[victim]->owed)) {
			best_rep = rep;
			best_cnt = cnt;
			victim = i;
			found = 1;
		}
	}
	pend_drop(c, victim, DROP_EVICTED, RT_WIRE_VERSION, RT_WE_BUSY,
		  "evicted: %u connections were waiting to authenticate", c->cfg.max_pending);
}

static void accept_some(struct rt_central *c)
{
	for (int round = 0; round < ACCEPTS_PER_ROUND; round++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		struct pend *p;
		int fd = accept4(c->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK),
		    one = 1;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* Nothing to accept with: the connections wait in
				 * the backlog a moment (and the loop does not spin). */
				c->accept_again = rt_mono_ns() + 100000000ull;
				if (log_allowed(c))
					say(c, RT_WARN, "cannot accept connections: %s", strerror(errno));
			}
			return;
		}
		p = calloc(1, sizeof(*p));
		if (!p) {
			close(fd);
			continue;
		}
		p->fd = fd;
		p->accepted = p->owed = rt_mono_ns();
		peer_addr(&ss, p);
		getnameinfo((struct sockaddr *)&ss, sl, p->peer, sizeof(p->peer), NULL, 0,
			    NI_NUMERICHOST);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		make_room(c, p);
		c->pend[c->npend++] = p;
	}
}

static int conn_start(struct rt_central *c, unsigned i);

/* A HELLO has come whole: who it says it is, and the CHALLENGE. */
static int on_hello(struct rt_central *c, unsigned i, const struct rt_wire_hdr *h)
{
	struct pend *p = c->pend[i];
	const uint8_t *payload = p->buf + RT_WIRE_HDR;
	struct rt_challenge ch;
	struct rt_buf out = {0};
	uint8_t key[1024];
	size_t key_len = 0;
	const char *why;
	int cred, err;

	if (h->type != RT_W_HELLO)
		return pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION, RT_WE_PROTOCOL,
				 "expected a valid HELLO (got message type %u)", h->type);
	if (rt_wire_verify(NULL, p->buf, h, payload, NULL, &why))
		return pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION, RT_WE_PROTOCOL, "%s", why);
	err = rt_wire_get_hello(payload, h->len, &p->hello);
	if (err == -EINVAL)
		return pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION, RT_WE_PROTOCOL,
				 "expected a valid HELLO: its host name is not one (1 to 255 of "
				 "A-Z a-z 0-9 . _ -, not starting with . or -)");
	if (err)
		return pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION, RT_WE_PROTOCOL,
				 "expected a valid HELLO");
	if (p->hello.version != RT_WIRE_VERSION)
		return pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION, RT_WE_VERSION,
				 "protocol version %u not supported (this server: %d)",
				 p->hello.version, RT_WIRE_VERSION);
	if (!c->keyed && !p->loopback)
		return pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION, RT_WE_FORBIDDEN,
				 "this server has no --auth-key and takes connections from its own "
				 "host only");
	cred = key_for(c, p->hello.host, key, sizeof(key), &key_len);
	if (cred == -ENOKEY)
		return pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION, RT_WE_AUTH,
				 "host %s has no key on this server (--host-keys) and there is no "
				 "shared --auth-key",
				 p->hello.host);
	if (cred < 0) {
		say(c, RT_ERROR, "the key of host %s in %s cannot be used: %s; refusing the host",
		    p->hello.host, c->cfg.host_keys, rt_wire_key_error(cred));
		return pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION, RT_WE_AUTH,
				 "this server cannot use its key for host %s (its log says why)",
				 p->hello.host);
	}
	p->cred = cred;
	memset(&ch, 0, sizeof(ch));
	ch.version = RT_WIRE_VERSION;
	ch.flags = cred != CRED_NONE ? RT_CH_AUTH : 0;
	if (getrandom(ch.nonce, sizeof(ch.nonce), 0) != sizeof(ch.nonce) ||
	    rt_wire_challenge(&out, &ch) ||
	    rt_wire_session_init(&p->sess, cred != CRED_NONE ? key : NULL, key_len, 1, payload,
				 h->len, out.p + RT_WIRE_HDR, out.len - RT_WIRE_HDR)) {
		OPENSSL_cleanse(key, sizeof(key));
		rt_buf_free(&out);
		return pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION, 0, "out of memory");
	}
	OPENSSL_cleanse(key, sizeof(key));
	/* A fresh socket takes these few bytes at once. */
	if (send(p->fd, out.p, out.len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)out.len) {
		rt_buf_free(&out);
		return pend_drop(c, i, DROP_CLOSED, RT_WIRE_VERSION, 0, "could not send CHALLENGE");
	}
	rt_buf_free(&out);
	p->stage = 1;
	p->have = 0;
	p->owed = rt_mono_ns(); /* its AUTH, from now */
	return 0;
}

/* An AUTH has come whole: its tag proves the key, or not. */
static int on_auth(struct rt_central *c, unsigned i, const struct rt_wire_hdr *h)
{
	struct pend *p = c->pend[i];
	const uint8_t *payload = p->buf + RT_WIRE_HDR;
	const uint8_t *tag = h->flags & RT_WF_TAG ? payload + h->len : NULL;
	const char *why;
	int err;

	if (h->type != RT_W_AUTH)
		return pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION, RT_WE_PROTOCOL,
				 "expected a valid AUTH (got message type %u)", h->type);
	err = rt_wire_verify(&p->sess, p->buf, h, payload, tag, &why);
	if (err == -EACCES && !tag)
		return pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION, RT_WE_AUTH,
				 "no proof of the key (this server has --auth-key)");
	if (err == -EACCES)
		return pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION, RT_WE_AUTH, "%s",
				 p->cred == CRED_HOST
					 ? "wrong proof of the key (this host has a key of its own on "
					   "this server: --host-keys)"
					 : "wrong proof of the key (a different --auth-key?)");
	if (err)
		return pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION, RT_WE_PROTOCOL, "%s", why);
	if (rt_wire_get_auth(payload, h->len))
		return pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION, RT_WE_PROTOCOL,
				 "expected a valid AUTH");
	conn_start(c, i);
	return 0;
}

/* What a peer of another version sent: answer it in its own framing, so
 * that a version 1 sender can say why it is refused. */
static int on_other_version(struct rt_central *c, unsigned i, const struct rt_wire_hdr *h)
{
	struct pend *p = c->pend[i];
	struct rt_hello hello;

	if (h->version == 1 && h->type == RT_W_HELLO &&
	    rt_wire_get_hello(p->buf + RT_WIRE_HDR, h->len, &hello) == 0)
		memcpy(&p->hello, &hello, sizeof(hello));
	if (h->version == 1)
		return pend_drop(c, i, DROP_REFUSED, 1, RT_WE_VERSION,
				 "this server speaks forwarding protocol version %d, this sender "
				 "version 1: upgrade ringtaild on the sender",
				 RT_WIRE_VERSION);
	pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION, RT_WE_VERSION,
		  "protocol version %u not supported (this server speaks %d)", h->version,
		  RT_WIRE_VERSION);
	return 0;
}

/* Bytes have come (or the end) on handshake @i. */
static int pend_input(struct rt_central *c, unsigned i)
{
	struct pend *p = c->pend[i];
	struct rt_wire_hdr h;
	ssize_t r = recv(p->fd, p->buf + p->have, sizeof(p->buf) - p->have, MSG_DONTWAIT);
	long whole;

	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (r <= 0) {
		if (p->have)
			return pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION, RT_WE_PROTOCOL,
					 "truncated message (the connection closed in the middle "
					 "of it)");
		return pend_drop(c, i, DROP_CLOSED, RT_WIRE_VERSION, 0, "closed");
	}
	p->have += (size_t)r;
	whole = rt_wire_frame(p->buf, p->have, RT_WIRE_MAX_HANDSHAKE, &h);
	if (whole == -EPROTONOSUPPORT && h.len <= RT_WIRE_MAX_HANDSHAKE) {
		if (p->have < RT_WIRE_HDR + (size_t)h.len)
			return 0; /* the rest of it, to read what it says */
		return on_other_version(c, i, &h);
	}
	if (whole < 0)
		return pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION,
				 whole == -EPROTONOSUPPORT ? RT_WE_VERSION : RT_WE_PROTOCOL, "%s",
				 whole == -EPROTONOSUPPORT ? "protocol version not supported"
				 : whole == -EMSGSIZE	  ? "message too large"
							  : "not a ringtail message");
	if (whole == 0)
		return 0;
	if ((size_t)whole != p->have)
		return pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION, RT_WE_PROTOCOL,
				 "a message before the server's answer to the last one");
	if (p->stage == 0)
		on_hello(c, i, &h);
	else
		on_auth(c, i, &h);
	return 0;
}

/* ------------------------------------------------------------------------
 * Host directories and epochs (under hosts_mu)
 * ------------------------------------------------------------------------ */

static int is_epoch_name(const char *s)
{
	if (strlen(s) != 32)
		return 0;
	for (int i = 0; i < 32; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* The epoch CENTRAL/hosts/HOST/primary names, into @hex. @return 1, 0 (no
 * such file, or not one we wrote), -errno. */
static int read_primary(int hostfd, char hex[33])
{
	char buf[40];
	ssize_t n;
	int fd = openat(hostfd, PRIMARY, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n != 33 || buf[32] != '\n')
		return 0;
	buf[32] = '\0';
	if (!is_epoch_name(buf))
		return 0;
	memcpy(hex, buf, 33);
	return 1;
}

/* Write CENTRAL/hosts/HOST/primary: a new file, synced, renamed into place,
 * the directory synced. */
static int write_primary(int hostfd, const char *hex)
{
	char line[34];
	int fd = openat(hostfd, "." PRIMARY ".new", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
			0640),
	    err = 0;

	if (fd < 0)
		return -errno;
	snprintf(line, sizeof(line), "%s\n", hex);
	if (write(fd, line, 33) != 33 || fsync(fd) < 0)
		err = errno ? -errno : -EIO;
	close(fd);
	if (!err && renameat(hostfd, "." PRIMARY ".new", hostfd, PRIMARY) < 0)
		err = -errno;
	if (!err && fsync(hostfd) < 0)
		err = -errno;
	if (err)
		unlinkat(hostfd, "." PRIMARY ".new", 0);
	return err;
}

/* Has the host directory any epoch but @hex (its primary file, a spool)? */
static int other_epochs(int hostfd, const char *hex)
{
	char primary[33];
	struct dirent *e;
	DIR *d;
	int fd, found = 0;

	if (read_primary(hostfd, primary) == 1 && strcmp(primary, hex))
		return 1;
	fd = dup(hostfd);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return 1; /* cannot tell: as if there were */
	}
	rewinddir(d);
	while (!found && (e = readdir(d)))
		found = is_epoch_name(e->d_name) && strcmp(e->d_name, hex);
	closedir(d);
	return found;
}

/*
 * May connection @k send its host's epoch, and is there a spool of it yet?
 * A host seen for the first time may; a host seen before may send an epoch
 * the server holds already, or its primary one; another epoch only with its
 * own key. With @make, make the host's directory (and primary file) and the
 * spool. Under hosts_mu. @return 1 (the spool is there: opened into k->sp),
 * 0 (allowed, nothing there yet), or the refusal sent (-EPROTO).
 */
static int refuse(struct conn *k, uint32_t code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int epoch_spool(struct conn *k, int make)
{
	struct rt_central *c = k->c;
	const char *host = k->hello.host;
	char path[320], primary[33];
	struct stat st;
	int hostfd, made = 0, err;

	hostfd = openat(c->hostsfd, host, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (hostfd < 0 && errno == ENOENT && make) {
		if (mkdirat(c->hostsfd, host, 0750) < 0 && errno != EEXIST)
			return refuse(k, RT_WE_STORAGE, "cannot make a directory for host %s: %s", host,
				      strerror(errno));
		made = 1;
		hostfd = openat(c->hostsfd, host, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	}
	if (hostfd < 0 && errno == ENOENT)
		return 0; /* a new host: its directory comes with its first batch */
	if (hostfd < 0)
		return refuse(k, RT_WE_STORAGE, "cannot open the directory of host %s: %s", host,
			      strerror(errno));
	if (rt_dir_check(hostfd, host)) {
		close(hostfd);
		return refuse(k, RT_WE_STORAGE, "the directory of host %s: %s", host,
			      rt_spool_why(-EPERM));
	}
	if (fstatat(hostfd, k->epoch_hex, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (other_epochs(hostfd, k->epoch_hex) && k->cred != CRED_HOST) {
			close(hostfd);
			say(c, RT_WARN,
			    "host %s (from %s, %s) has a new spool epoch %s, but this server holds "
			    "another epoch of %s already: refused. If that host's spool was made "
			    "anew, or another machine uses its name, give %s a key of its own: a "
			    "file %s/%s on this server (--host-keys), the same file as its "
			    "--auth-key; a host's own key may send new epochs",
			    host, k->peer, cred_name[k->cred], k->epoch_hex, host, host,
			    c->cfg.host_keys ? c->cfg.host_keys : "DIR", host);
			return refuse(k, RT_WE_FORBIDDEN,
				      "this server holds another spool epoch of host %s; a new one "
				      "(%s) is taken only from the host's own key (--host-keys on "
				      "the server; see its log)",
				      host, k->epoch_hex);
		}
		if (!make) {
			close(hostfd);
			return 0; /* allowed; made with the first batch */
		}
		/* The first epoch of a host is its primary one, said before
		 * the spool exists, so no view ever sees it without. */
		if (made || (read_primary(hostfd, primary) != 1 && !other_epochs(hostfd, ""))) {
			err = write_primary(hostfd, k->epoch_hex);
			if (err) {
				close(hostfd);
				return refuse(k, RT_WE_STORAGE, "cannot record host %s's epoch: %s", host,
					      strerror(-err));
			}
			if (made)
				fsync(c->hostsfd);
		}
	}
	close(hostfd);
	/* hosts/HOST/EPOCH, made and resolved beneath hosts/, never through
	 * a link. */
	snprintf(path, sizeof(path), "%s/%s", host, k->epoch_hex);
	err = rt_spool_openat(c->hostsfd, path, host, k->hello.epoch,
			      (make ? RT_SPOOL_CREATE : 0) | RT_SPOOL_LOCK, &k->sp);
	if (err == -EBUSY)
		return refuse(k, RT_WE_BUSY, "that host and epoch are connected already");
	if (err)
		return refuse(k, RT_WE_STORAGE, "cannot open its spool: %s", rt_spool_why(err));
	return 1;
}

/* The spool of connection @k is open: recover it, and carry on from it. */
static int spool_ready(struct conn *k)
{
	struct rt_central *c = k->c;
	struct rt_recovered rec;
	uint64_t *seqs;
	int nseg, err;

	/* The ring for its writes, made only now: a connection that never
	 * stores anything costs no io_uring. */
	if (!k->uring_ok) {
		err = io_uring_queue_init(8, &k->uring, 0);
		if (err)
			return refuse(k, RT_WE_STORAGE, "cannot set up io_uring: %s", strerror(-err));
		k->uring_ok = 1;
	}
	nseg = rt_spool_list(k->sp, &seqs);
	k->w.sp = k->sp;
	k->w.uring = &k->uring;
	k->w.fsync = c->cfg.fsync;
	if (nseg >= 0)
		free(seqs);
	err = rt_spool_recover(k->sp, 0, 0, c->cfg.log, c->cfg.log_arg, &rec);
	if (err)
		return refuse(k, RT_WE_STORAGE, "cannot recover its spool: %s", strerror(-err));
	if (nseg > 0) {
		k->durable = rec.next_seq - 1;
		k->expect = rec.next_seq;
	}
	if (rec.last_open && nseg > 0)
		err = rt_segw_resume(&k->w, &rec);
	rt_recovered_free(&rec);
	if (err)
		return refuse(k, RT_WE_STORAGE, "cannot reopen its segment: %s", strerror(-err));
	return 0;
}

/* ------------------------------------------------------------------------
 * Authenticated connections
 * ------------------------------------------------------------------------ */

/* Send what k->out holds (one message, tagged here). */
static int send_out(struct conn *k)
{
	if (rt_wire_tag(&k->sess, &k->out, 0))
		return -EIO;
	return rt_wire_send(k->fd, k->out.p, k->out.len, &k->c->lim);
}

/* Send an ERROR, log it, and let the caller close. */
static int refuse(struct conn *k, uint32_t code, const char *fmt, ...)
{
	char reason[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	k->out.len = 0;
	if (rt_wire_error(&k->out, code, reason) == 0)
		send_out(k);
	say(k->c, RT_WARN, "connection from %s (host %s) closed: %s", k->peer, k->hello.host,
	    reason);
	return -EPROTO;
}

static void publish(struct conn *k)
{
	struct rt_spool_state *st;
	uint64_t g;

	if (!k->sp)
		return;
	st = k->sp->state;
	g = st->gen;
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
	err = rt_batch_check(b, k->in.buf.p, k->in.buf.len, k->hello.host, k->durable, k->expect);
	if (err == -EBADMSG)
		return refuse(k, b->code, "%s", b->why);
	if (err)
		return err;

	if (b->n > b->skip) {
		if (!k->sp) {
			/* The host's first records here: now its directory and
			 * spool are made (the policy is asked again: another
			 * connection may have made the host meanwhile). */
			pthread_mutex_lock(&c->hosts_mu);
			err = epoch_spool(k, 1);
			pthread_mutex_unlock(&c->hosts_mu);
			if (err < 0)
				return err;
			if ((err = spool_ready(k)) != 0)
				return err;
			say(c, RT_INFO, "host %s: a spool for epoch %s made", k->hello.host,
			    k->epoch_hex);
		}
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
			rt_wire_batch_next(k->in.buf.p, k->in.buf.len, &pos, &wb);
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
	if (rt_wire_u64(&k->out, RT_W_ACK, k->durable) || send_out(k))
		return -EIO;
	return 0;
}

static int gap(struct conn *k)
{
	uint64_t from, to;

	if (rt_wire_get_gap(k->in.buf.p, k->in.buf.len, &from, &to))
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

/* Read, check and answer frames until the connection ends. */
static void serve(struct conn *k)
{
	struct rt_central *c = k->c;
	const char *why;
	int err;

	for (;;) {
		err = rt_wire_recv(k->fd, -1, c->cfg.max_batch, rt_mono_ns() + c->cfg.idle_ns, &c->lim,
				   &k->in);
		if (err == -ETIMEDOUT) {
			say(c, RT_WARN, "host %s: nothing heard for %" PRIu64 " s; connection closed",
			    k->hello.host, c->cfg.idle_ns / 1000000000);
			return;
		}
		if (err == -ETIME) {
			refuse(k, RT_WE_TIMEOUT, "%s (at least %" PRIu64 " bytes/s after %" PRIu64
						 " ms)",
			       k->in.why, c->cfg.min_rate, c->cfg.handshake_ns / 1000000);
			return;
		}
		if (err) {
			if (k->in.why)
				refuse(k, err == -EPROTONOSUPPORT ? RT_WE_VERSION : RT_WE_PROTOCOL, "%s",
				       k->in.why);
			return;
		}
		err = rt_wire_verify(&k->sess, k->in.raw, &k->in.h, k->in.buf.p, k->in.tag, &why);
		if (err) {
			refuse(k, err == -EACCES ? RT_WE_AUTH : RT_WE_PROTOCOL,
			       "%s; nothing of it is stored", why);
			return;
		}
		switch (k->in.h.type) {
		case RT_W_BATCH:
			err = batch(k);
			break;
		case RT_W_GAP:
			err = gap(k);
			break;
		case RT_W_PING:
			publish(k);
			k->out.len = 0;
			err = rt_wire_empty(&k->out, RT_W_PONG) || send_out(k) ? -EIO : 0;
			break;
		default:
			err = refuse(k, RT_WE_PROTOCOL, "unexpected message of type %u", k->in.h.type);
			break;
		}
		if (err)
			return;
	}
}

static void *conn_main(void *arg)
{
	struct conn *k = arg;
	struct rt_central *c = k->c;
	struct rt_welcome wl;
	int err;

	memset(&k->w, 0, sizeof(k->w));
	k->w.fd = -1;
	pthread_mutex_lock(&c->hosts_mu);
	err = epoch_spool(k, 0);
	pthread_mutex_unlock(&c->hosts_mu);
	if (err < 0 || (err == 1 && spool_ready(k)))
		goto out;
	memset(&wl, 0, sizeof(wl));
	wl.durable_seq = k->durable;
	wl.max_batch = c->cfg.max_batch;
	k->out.len = 0;
	if (rt_wire_welcome(&k->out, &wl) || send_out(k))
		goto out;
	publish(k);
	say(c, RT_INFO, "host %s connected from %s %s (holding records up to #%" PRIu64 ")",
	    k->hello.host, k->peer, cred_name[k->cred], k->durable);
	serve(k);
	say(c, RT_INFO, "host %s disconnected (holding records up to #%" PRIu64 ")", k->hello.host,
	    k->durable);
out:
	rt_segw_free(&k->w);
	rt_spool_close(k->sp);
	if (k->uring_ok)
		io_uring_queue_exit(&k->uring);
	rt_buf_free(&k->out);
	rt_buf_free(&k->frames);
	rt_wire_in_free(&k->in);
	rt_batch_free(&k->batch);
	rt_wire_session_free(&k->sess);
	pthread_mutex_lock(&c->mu);
	for (struct conn **pp = &c->conns; *pp; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	c->nconns--;
	close(k->fd);
	pthread_cond_broadcast(&c->gone);
	pthread_mutex_unlock(&c->mu);
	free(k);
	return NULL;
}

/* Handshake @i authenticated: a thread of its own, if there is room. */
static int conn_start(struct rt_central *c, unsigned i)
{
	struct pend *p = c->pend[i];
	pthread_attr_t attr;
	pthread_t th;
	struct conn *k = calloc(1, sizeof(*k));
	int busy = 0;

	if (!k)
		return pend_drop(c, i, DROP_REFUSED, RT_WIRE_VERSION, 0, "out of memory");
	k->c = c;
	k->fd = p->fd;
	k->cred = p->cred;
	memcpy(k->peer, p->peer, sizeof(k->peer));
	k->hello = p->hello;
	k->sess = p->sess;
	rt_epoch_hex(k->hello.epoch, k->epoch_hex);
	pthread_mutex_lock(&c->mu);
	if (c->nconns >= c->cfg.max_conns)
		busy = 1;
	for (struct conn *o = c->conns; o && !busy; o = o->next)
		if (!strcmp(o->hello.host, k->hello.host) && !memcmp(o->hello.epoch, k->hello.epoch, 16))
			busy = 2;
	if (!busy) {
		k->next = c->conns;
		c->conns = k;
		c->nconns++;
	}
	pthread_mutex_unlock(&c->mu);
	/* The connection is the thread's now (or refused below). */
	memset(&p->sess, 0, sizeof(p->sess));
	p->fd = -1;
	pend_close(c, i);
	if (busy) {
		if (busy == 1)
			refuse(k, RT_WE_BUSY, "too many connections (--max-conns %u)", c->cfg.max_conns);
		else
			refuse(k, RT_WE_BUSY, "that host and epoch are connected already");
		rt_buf_free(&k->out);
		rt_wire_session_free(&k->sess);
		close(k->fd);
		free(k);
		return 0;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, conn_main, k) != 0) {
		pthread_mutex_lock(&c->mu);
		for (struct conn **pp = &c->conns; *pp; pp = &(*pp)->next)
			if (*pp == k) {
				*pp = k->next;
				break;
			}
		c->nconns--;
		pthread_mutex_unlock(&c->mu);
		rt_wire_session_free(&k->sess);
		close(k->fd);
		free(k);
	}
	pthread_attr_destroy(&attr);
	return 0;
}

/* ------------------------------------------------------------------------
 * Listening
 * ------------------------------------------------------------------------ */

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

/* --host-keys DIR: a directory only we (or root) may change; every key in it
 * checked now, so that a bad one is said at start (it is read again at each
 * connection: keys can be added without a restart). */
static int open_host_keys(struct rt_central *c)
{
	struct dirent *e;
	struct stat st;
	DIR *d;
	int fd, good = 0;

	c->keysfd = open(c->cfg.host_keys, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->keysfd < 0) {
		say(c, RT_ERROR, "cannot use --host-keys %s: %s", c->cfg.host_keys, strerror(errno));
		return -errno;
	}
	if (fstat(c->keysfd, &st) < 0 || (st.st_uid != geteuid() && st.st_uid != 0) ||
	    (st.st_mode & 022)) {
		say(c, RT_ERROR, "cannot use --host-keys %s: it must belong to us or root and be "
				 "writable by no one else (chmod 700)",
		    c->cfg.host_keys);
		return -EPERM;
	}
	fd = dup(c->keysfd);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while ((e = readdir(d))) {
		uint8_t key[1024];
		int n;
		if (e->d_name[0] == '.')
			continue;
		if (!rt_wire_host_ok(e->d_name)) {
			say(c, RT_WARN, "--host-keys %s: '%s' is not a host name; ignored",
			    c->cfg.host_keys, e->d_name);
			continue;
		}
		n = rt_wire_load_key(c->keysfd, e->d_name, key, sizeof(key));
		OPENSSL_cleanse(key, sizeof(key));
		if (n < 0)
			say(c, RT_WARN, "--host-keys %s/%s: %s; host %s is refused until it is fixed",
			    c->cfg.host_keys, e->d_name, rt_wire_key_error(n), e->d_name);
		else
			good++;
	}
	closedir(d);
	say(c, RT_INFO, "%d host keys in %s: those hosts must prove their own key", good,
	    c->cfg.host_keys);
	return 0;
}

/* The port, in a file written whole and renamed into place. */
static int write_port_file(struct rt_central *c)
{
	char tmp[4200], line[16];
	int fd, n, err = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp%d", c->cfg.port_file, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	n = snprintf(line, sizeof(line), "%d\n", c->port);
	if (write(fd, line, (size_t)n) != n)
		err = errno ? -errno : -EIO;
	close(fd);
	if (!err && rename(tmp, c->cfg.port_file) < 0)
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
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
	c->lfd = c->dirfd = c->lockfd = c->hostsfd = c->keysfd = -1;
	if (!c->cfg.max_conns)
		c->cfg.max_conns = 1;
	if (!c->cfg.max_pending)
		c->cfg.max_pending = c->cfg.max_conns / 4 > 8 ? c->cfg.max_conns / 4 : 8;
	if (!c->cfg.max_pending_addr)
		c->cfg.max_pending_addr = 1;
	c->lim.grace_ns = c->cfg.handshake_ns;
	c->lim.min_rate = c->cfg.min_rate;
	c->log_tokens = LOG_BURST;
	c->log_tokens_at = c->last_summary = rt_mono_ns();
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->hosts_mu, NULL);
	pthread_cond_init(&c->gone, NULL);
	c->pend = calloc(c->cfg.max_pending + 1, sizeof(*c->pend));
	c->rep = calloc(REP_SLOTS, sizeof(*c->rep));
	if (!c->pend || !c->rep) {
		err = -ENOMEM;
		goto fail;
	}
	if (cfg->key_file) {
		err = rt_wire_load_key(AT_FDCWD, cfg->key_file, c->key, sizeof(c->key));
		if (err < 0) {
			say(c, RT_ERROR, "cannot use the key %s: %s", cfg->key_file, rt_wire_key_error(err));
			goto fail;
		}
		c->key_len = (size_t)err;
	}
	if (cfg->host_keys && (err = open_host_keys(c)) != 0)
		goto fail;
	c->keyed = c->key_len || c->keysfd >= 0;
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
	c->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->lfd < 0 || setsockopt(c->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(c->lfd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(c->lfd, 1024) < 0) {
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
	if (cfg->port_file && (err = write_port_file(c)) != 0) {
		say(c, RT_ERROR, "cannot write --port-file %s: %s", cfg->port_file, strerror(-err));
		goto fail;
	}
	say(c, RT_INFO, "listening on %s (port %d) for forwarding hosts, spool %s", cfg->listen,
	    c->port, cfg->dir);
	if (!c->keyed)
		say(c, RT_WARN, "no --auth-key: taking connections from this host only");
	else if (!c->key_len)
		say(c, RT_INFO, "no shared --auth-key: only hosts with a key in %s", cfg->host_keys);
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
	struct pollfd *pf = calloc(c->cfg.max_pending + 1, sizeof(*pf));

	if (!pf)
		return -ENOMEM;
	while (!*stop) {
		uint64_t now = rt_mono_ns(), next = now + 100000000ull;
		unsigned n = c->npend, i;
		int r;

		pf[0] = (struct pollfd){now >= c->accept_again ? c->lfd : -1, POLLIN, 0};
		for (i = 0; i < n; i++) {
			uint64_t d = c->pend[i]->accepted + c->cfg.handshake_ns;
			pf[1 + i] = (struct pollfd){c->pend[i]->fd, POLLIN, 0};
			if (d < next)
				next = d;
		}
		r = poll(pf, n + 1, next > now ? (int)((next - now + 999999) / 1000000) : 0);
		if (r < 0 && errno != EINTR)
			break;
		/* Input first (it may finish a handshake), from the last, so
		 * that a handshake ending (moving the last one into its place)
		 * leaves the ones still to look at where they were. */
		for (i = n; i-- > 0;)
			if (r > 0 && i < c->npend && pf[1 + i].revents && c->pend[i]->fd == pf[1 + i].fd)
				pend_input(c, i);
		now = rt_mono_ns();
		for (i = c->npend; i-- > 0;)
			if (now >= c->pend[i]->accepted + c->cfg.handshake_ns)
				pend_drop(c, i, DROP_DEADLINE, RT_WIRE_VERSION, RT_WE_TIMEOUT,
					  "the handshake was not done within %" PRIu64 " ms",
					  c->cfg.handshake_ns / 1000000);
		if (r > 0 && (pf[0].revents & POLLIN))
			accept_some(c);
		summary(c, 0);
	}
	free(pf);
	return 0;
}

void rt_central_free(struct rt_central *c)
{
	if (!c)
		return;
	while (c->npend)
		pend_close(c, c->npend - 1);
	if (c->lfd >= 0)
		summary(c, 1);
	/* Wake every connection (its next read fails) and wait for them:
	 * each finishes the batch it is storing first. */
	pthread_mutex_lock(&c->mu);
	for (struct conn *k = c->conns; k; k = k->next)
		shutdown(k->fd, SHUT_RDWR);
	while (c->nconns > 0)
		pthread_cond_wait(&c->gone, &c->mu);
	pthread_mutex_unlock(&c->mu);
	if (c->lfd >= 0)
		close(c->lfd);
	if (c->hostsfd >= 0)
		close(c->hostsfd);
	if (c->keysfd >= 0)
		close(c->keysfd);
	if (c->lockfd >= 0)
		close(c->lockfd);
	if (c->dirfd >= 0)
		close(c->dirfd);
	OPENSSL_cleanse(c->key, sizeof(c->key));
	free(c->pend);
	free(c->rep);
	free(c);
}
