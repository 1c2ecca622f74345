/* SPDX-License-Identifier: MIT */
/*
 * forward_client.h - a client of the forwarding protocol written by hand for
 * the tests that play a hostile or a lying peer: it connects from any
 * loopback address, says what it likes, holds the key or not, and tags its
 * frames itself (with the library's session, so that what it sends is what
 * a real sender would, until the test changes it). Also: blocks made
 * in-process with the spooler's own block builder, as a sender's segment
 * holds them.
 */
#ifndef RT_FORWARD_CLIENT_H
#define RT_FORWARD_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "helpers.h"
#include "rtwire.h"

struct cl {
	int fd;
	struct rt_wire_session sess;
	struct rt_wire_hdr h;         /* the last frame read */
	uint8_t raw[RT_WIRE_HDR];
	struct rt_buf in;             /* its payload (and tag) */
	const uint8_t *tag;
	struct rt_buf hello;          /* the HELLO payload sent */
	uint8_t nonce[RT_WIRE_NONCE];
};

/* Connect to @to:@port from address @from (NULL: any). @return the fd, or
 * -errno when @soft and the connection fails. */
static inline int cl_connect_fd(const char *from, const char *to, int port, int soft)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	CHECK(fd >= 0, "socket: %s", strerror(errno));
	if (from) {
		struct sockaddr_in b = {.sin_family = AF_INET};
		inet_pton(AF_INET, from, &b.sin_addr);
		CHECK_EQ(bind(fd, (struct sockaddr *)&b, sizeof(b)), 0);
	}
	inet_pton(AF_INET, to, &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int err = -errno;
		CHECK(soft, "connect %s:%d: %s", to, port, strerror(errno));
		close(fd);
		return err;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static inline void cl_open(struct cl *c, const char *from, const char *to, int port)
{
	memset(c, 0, sizeof(*c));
	c->fd = cl_connect_fd(from, to, port, 0);
}

static inline void cl_close(struct cl *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	rt_wire_session_free(&c->sess);
	rt_buf_free(&c->in);
	rt_buf_free(&c->hello);
}

static inline void cl_send(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		CHECK(w > 0, "send: %s", strerror(errno));
		b += w;
		n -= (size_t)w;
	}
}

/* Read @n bytes within 30 s. @return 0, -1 at the end of the connection. */
static inline int cl_recv_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	uint64_t deadline = t_now_ns() + 30ull * 1000000000;

	while (n) {
		struct pollfd pf = {fd, POLLIN, 0};
		ssize_t r;
		CHECK(t_now_ns() < deadline, "the server said nothing for 30 s");
		if (poll(&pf, 1, 100) <= 0)
			continue;
		r = recv(fd, b, n, 0);
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* The next frame, whole, as it came (any version: h.version says). @return
 * 0, or -1 at the end of the connection. */
static inline int cl_read_raw(struct cl *c)
{
	size_t n;
	int err;

	c->tag = NULL;
	if (cl_recv_all(c->fd, c->raw, sizeof(c->raw)))
		return -1;
	err = rt_wire_hdr_get(c->raw, RT_WIRE_MAX_PAYLOAD, &c->h);
	CHECK(err == 0 || err == -EPROTONOSUPPORT, "the server sent a bad header (%d)", err);
	n = c->h.len + (c->h.flags & RT_WF_TAG ? RT_WIRE_TAG : 0);
	c->in.len = 0;
	CHECK_EQ(rt_buf_reserve(&c->in, n), 0);
	CHECK_EQ(cl_recv_all(c->fd, c->in.p, n), 0);
	c->in.len = c->h.len;
	if (c->h.flags & RT_WF_TAG)
		c->tag = c->in.p + c->h.len;
	return 0;
}

/* The next frame, its tag checked in a keyed session (an ERROR before the
 * session is up may come untagged). @return 0, -1 at the end. */
static inline int cl_read(struct cl *c)
{
	const char *why;

	if (cl_read_raw(c))
		return -1;
	if (c->h.type == RT_W_ERROR && !c->tag) {
		CHECK(rt_wire_sum(c->in.p, c->in.len) == c->h.sum, "the server's checksum");
		return 0;
	}
	CHECK(rt_wire_verify(&c->sess, c->raw, &c->h, c->in.p, c->tag, &why) == 0,
	      "the server's frame (type %u): %s", c->h.type, why);
	return 0;
}

/* Send the message at @start of @m, tagged in a keyed session. */
static inline void cl_send_msg(struct cl *c, struct rt_buf *m, size_t start)
{
	CHECK_EQ(rt_wire_tag(&c->sess, m, start), 0);
	cl_send(c->fd, m->p + start, m->len - start);
}

/* HELLO as host @host of @epoch. */
static inline void cl_hello(struct cl *c, const char *host, const uint8_t epoch[16])
{
	struct rt_hello hello;
	struct rt_buf m = {0};

	memset(&hello, 0, sizeof(hello));
	hello.version = RT_WIRE_VERSION;
	memcpy(hello.epoch, epoch, 16);
	CHECK(getrandom(hello.nonce, 32, 0) == 32, "getrandom");
	memcpy(c->nonce, hello.nonce, 32);
	snprintf(hello.host, sizeof(hello.host), "%s", host);
	CHECK_EQ(rt_wire_hello(&m, &hello), 0);
	c->hello.len = 0;
	rt_buf_put(&c->hello, m.p + RT_WIRE_HDR, m.len - RT_WIRE_HDR);
	cl_send(c->fd, m.p, m.len);
	rt_buf_free(&m);
}

/* The CHALLENGE, and the session keyed with @k (NULL: none). @return its flags. */
static inline uint32_t cl_challenge(struct cl *c, const uint8_t *k, size_t klen)
{
	struct rt_challenge ch;

	CHECK(cl_read(c) == 0 && c->h.type == RT_W_CHALLENGE, "no CHALLENGE (type %u)", c->h.type);
	CHECK_EQ(rt_wire_get_challenge(c->in.p, c->in.len, &ch), 0);
	CHECK_EQ(rt_wire_session_init(&c->sess, k, klen, 0, c->hello.p, c->hello.len, c->in.p,
				      c->in.len),
		 0);
	return ch.flags;
}

/* AUTH, tagged if the session is keyed. */
static inline void cl_auth(struct cl *c)
{
	struct rt_buf m = {0};

	CHECK_EQ(rt_wire_auth(&m), 0);
	cl_send_msg(c, &m, 0);
	rt_buf_free(&m);
}

/* A whole handshake as @host of @epoch with key @k (NULL: none). @return
 * what the server holds (the WELCOME's tag checked). */
static inline uint64_t cl_welcome(struct cl *c, const char *host, const uint8_t epoch[16],
				  const uint8_t *k, size_t klen)
{
	struct rt_welcome wl;

	cl_hello(c, host, epoch);
	cl_challenge(c, k, klen);
	cl_auth(c);
	CHECK(cl_read(c) == 0 && c->h.type == RT_W_WELCOME, "no WELCOME (type %u)", c->h.type);
	CHECK(!k || c->tag, "the WELCOME has no tag: the server did not prove it holds the key");
	CHECK_EQ(rt_wire_get_welcome(c->in.p, c->in.len, &wl), 0);
	return wl.durable_seq;
}

/* ------------------------------------------------------------------------
 * Blocks made in-process
 * ------------------------------------------------------------------------ */

struct blk {
	struct rt_seg_block b; /* the INDEX frame, parsed */
	uint8_t *index, *data;
	uint32_t index_len, data_len;
};

/* @n blocks of @per records each for host @host, the first record
 * @first_seq, services taken in turn from @svcs (@nsvc of them), some with
 * trace ids and attributes, messages "request N served". */
static inline void make_blocks(struct blk *out, int n, const char *host, uint64_t first_seq,
			       int per, const char *const *svcs, int nsvc)
{
	struct rt_cursor cur = {1, 2, 3, 4, 5, 0, 0};
	struct rt_bb *bb;
	uint64_t seq = first_seq, t = 1700000000000000000ull;

	CHECK_EQ(rt_bb_new(host, &bb), 0);
	for (int b = 0; b < n; b++) {
		struct rt_buf buf = {0};
		uint32_t size;
		rt_bb_reset(bb, seq);
		for (int i = 0; i < per; i++, seq++) {
			static const uint8_t attrs[] = {4, 'u', 's', 'e', 'r', 5, 0, 'a', 'l', 'i', 'c', 'e'};
			uint8_t trace[16] = {0xab, 0xcd, (uint8_t)i};
			char msg[64];
			struct rt_rec r = {0};
			r.time_ns = t += 1000;
			r.pid = 100;
			r.tid = 101;
			r.severity = i % 7 ? 9 : 17;
			r.service = svcs[i % nsvc];
			r.service_len = strlen(r.service);
			if (i % 5 == 0)
				r.trace_id = trace;
			if (i % 3 == 0) {
				r.attrs = attrs;
				r.attrs_len = sizeof(attrs);
			}
			r.msg = msg;
			r.msg_len = (size_t)snprintf(msg, sizeof(msg), "request %llu served",
						     (unsigned long long)seq);
			CHECK_EQ(rt_bb_add(bb, &r), 0);
		}
		CHECK_EQ(rt_bb_seal(bb, &buf, 0, (uint32_t)b, 9, &cur, 1), 0);
		memcpy(&size, buf.p + 4, 4);
		out[b].index_len = 8 + size;
		out[b].data_len = (uint32_t)(buf.len - out[b].index_len);
		out[b].index = malloc(out[b].index_len);
		out[b].data = malloc(out[b].data_len);
		CHECK(out[b].index && out[b].data, "malloc");
		memcpy(out[b].index, buf.p, out[b].index_len);
		memcpy(out[b].data, buf.p + out[b].index_len, out[b].data_len);
		/* (A service name every reader refuses does not parse.) */
		if (rt_seg_parse_index(out[b].index, out[b].index_len, &out[b].b))
			memset(&out[b].b, 0, sizeof(out[b].b));
		rt_buf_free(&buf);
	}
	rt_bb_free(bb);
}

static inline void free_blocks(struct blk *b, int n)
{
	for (int i = 0; i < n; i++) {
		rt_seg_block_free(&b[i].b);
		free(b[i].index);
		free(b[i].data);
	}
}

/* A BATCH of the blocks @which (@n of them) appended to @m (untagged). */
static inline void batch_of(struct rt_buf *m, const struct blk *blocks, const int *which, int n)
{
	size_t start = m->len;
	CHECK_EQ(rt_wire_begin(m), 0);
	CHECK_EQ(rt_wire_batch_start(m), 0);
	for (int i = 0; i < n; i++) {
		const struct blk *b = &blocks[which[i]];
		CHECK_EQ(rt_wire_batch_add(m, start, b->index, b->index_len, b->data, b->data_len), 0);
	}
	rt_wire_end(m, start, RT_W_BATCH);
}

static inline uint64_t blk_last(const struct blk *b)
{
	return b->b.first_seq + b->b.nrec - 1;
}

/* Send a BATCH of @which and expect its ACK. @return the ACK. */
static inline uint64_t cl_batch(struct cl *c, const struct blk *blocks, const int *which, int n)
{
	struct rt_buf m = {0};
	uint64_t ack;

	batch_of(&m, blocks, which, n);
	cl_send_msg(c, &m, 0);
	rt_buf_free(&m);
	CHECK(cl_read(c) == 0 && c->h.type == RT_W_ACK, "no ACK (type %u)", c->h.type);
	CHECK_EQ(rt_wire_get_u64(c->in.p, c->in.len, &ack), 0);
	return ack;
}

/* The server must answer with ERROR @code saying @why, then close. @return
 * the reason (static). */
static inline const char *cl_expect_error(struct cl *c, uint32_t code, const char *why,
					  const char *what)
{
	static char reason[512];
	uint32_t got;

	CHECK(cl_read(c) == 0, "%s: closed without an ERROR", what);
	CHECK(c->h.type == RT_W_ERROR, "%s: answered with message type %u", what, c->h.type);
	CHECK_EQ(rt_wire_get_error(c->in.p, c->in.len, &got, reason, sizeof(reason)), 0);
	CHECK(got == code && strstr(reason, why), "%s: ERROR %u '%s', expected %u '%s'", what, got,
	      reason, code, why);
	CHECK(cl_read_raw(c) < 0, "%s: the connection stayed open", what);
	return reason;
}

#endif
