/* SPDX-License-Identifier: MIT */
/*
 * forward_badinput - a central ringtaild --listen with --auth-key faces
 * clients that lie: the wrong secret, no proof, a host claiming another
 * host's identity without the key, wrong protocol versions, bytes that are
 * not ringtail at all, oversized and truncated frames, a bad message
 * checksum, malformed batches, a DATA frame whose checksum lies, an INDEX
 * frame whose claims are false, sequence numbers going backwards or
 * skipping ahead, and messages out of place. Each is refused with an ERROR
 * whose code and reason say why, the same reason is in the server's log,
 * nothing already stored is touched, and a real client is served
 * afterwards. A batch repeating what is held is acknowledged and not stored
 * again. Real ringtailds with the wrong key, or none, are refused (and
 * refuse) with a clear message; a server without a key refuses a connection
 * from another address than loopback.
 *
 *   forward_badinput RINGTAILD RINGTAIL
 */
#include <ifaddrs.h>
#include <netinet/tcp.h>
#include <sys/random.h>
#include <xxhash.h>

#define SC_PROCS 1
#include "forward_check.h"
#include "rtwire.h"

static struct fc f;
static uint8_t key[] = "a-shared-secret-for-the-fleet"; /* as fc_init writes it */
static uint8_t epoch_good[16];
static int cases;

/* The blocks of a real segment: INDEX and DATA frames as on disk. */
struct blk {
	struct rt_seg_block b; /* parsed */
	uint8_t *index, *data;
	uint32_t index_len, data_len;
};
static struct blk blocks[64];
static int nblocks;

/* ------------------------------------------------------------------------
 * A client speaking the protocol by hand
 * ------------------------------------------------------------------------ */

static int cl_connect_from(const char *from, const char *to, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {30, 0};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	CHECK(fd >= 0, "socket");
	if (from) {
		struct sockaddr_in b = {.sin_family = AF_INET};
		inet_pton(AF_INET, from, &b.sin_addr);
		CHECK_EQ(bind(fd, (struct sockaddr *)&b, sizeof(b)), 0);
	}
	inet_pton(AF_INET, to, &a.sin_addr);
	CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect %s:%d: %s", to, port,
	      strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int cl_connect(void)
{
	return cl_connect_from(NULL, "127.0.0.1", f.port);
}

static void cl_send(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		CHECK(w > 0, "send: %s", strerror(errno));
		b += w;
		n -= (size_t)w;
	}
}

static int cl_recv_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	while (n) {
		ssize_t r = recv(fd, b, n, 0);
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* The next message; -1 at the end of the connection. */
static int cl_read(int fd, struct rt_wire_hdr *h, struct rt_buf *in)
{
	uint8_t hdr[RT_WIRE_HDR];

	if (cl_recv_all(fd, hdr, sizeof(hdr)))
		return -1;
	CHECK_EQ(rt_wire_hdr_get(hdr, RT_WIRE_MAX_PAYLOAD, h), 0);
	in->len = 0;
	CHECK_EQ(rt_buf_reserve(in, h->len), 0);
	CHECK_EQ(cl_recv_all(fd, in->p, h->len), 0);
	in->len = h->len;
	CHECK(rt_wire_sum(in->p, in->len) == h->sum, "the server's checksum");
	return 0;
}

/* The server must answer with ERROR @code saying @why, then close; its log
 * must say the same. */
static void expect_error(int fd, uint32_t code, const char *why, const char *what)
{
	struct rt_wire_hdr h;
	struct rt_buf in = {0};
	char reason[512];
	uint32_t got;

	CHECK(cl_read(fd, &h, &in) == 0, "%s: closed without an ERROR", what);
	CHECK(h.type == RT_W_ERROR, "%s: answered with message type %u", what, h.type);
	CHECK_EQ(rt_wire_get_error(in.p, in.len, &got, reason, sizeof(reason)), 0);
	CHECK(got == code && strstr(reason, why), "%s: ERROR %u '%s', expected %u '%s'", what, got,
	      reason, code, why);
	CHECK(cl_read(fd, &h, &in) < 0, "%s: the connection stayed open", what);
	close(fd);
	rt_buf_free(&in);
	/* The server says why in its log (written before the ERROR was sent). */
	for (uint64_t deadline = t_now_ns() + 10ull * 1000000000; !fc_file_has(f.log, reason);) {
		CHECK(t_now_ns() < deadline, "%s: the log does not say '%s'", what, reason);
		t_pause();
	}
	cases++;
	printf("  refused: %-46s ERROR %u \"%s\"\n", what, got, reason);
}

static void send_hello(int fd, const char *host, const uint8_t epoch[16], uint8_t nonce[32])
{
	struct rt_hello hello;
	struct rt_buf m = {0};

	memset(&hello, 0, sizeof(hello));
	hello.version = RT_WIRE_VERSION;
	memcpy(hello.epoch, epoch, 16);
	CHECK(getrandom(hello.nonce, 32, 0) == 32, "getrandom");
	memcpy(nonce, hello.nonce, 32);
	snprintf(hello.host, sizeof(hello.host), "%s", host);
	CHECK_EQ(rt_wire_hello(&m, &hello), 0);
	cl_send(fd, m.p, m.len);
	rt_buf_free(&m);
}

/* A bare HELLO of @version from @host into @m (emptied first). */
static void hello_msg(struct rt_buf *m, uint32_t version, const char *host)
{
	struct rt_hello hello = {.version = version};

	m->len = 0;
	snprintf(hello.host, sizeof(hello.host), "%s", host);
	CHECK_EQ(rt_wire_hello(m, &hello), 0);
}

/* HELLO and CHALLENGE; then AUTH with a MAC made with @k (NULL: none). */
static void cl_auth(int fd, const char *host, const uint8_t epoch[16], const uint8_t *k,
		    size_t klen)
{
	struct rt_challenge ch;
	struct rt_wire_hdr h;
	struct rt_buf in = {0}, m = {0};
	uint8_t nonce[32], mac[RT_WIRE_MAC];

	send_hello(fd, host, epoch, nonce);
	CHECK(cl_read(fd, &h, &in) == 0 && h.type == RT_W_CHALLENGE, "no CHALLENGE");
	CHECK_EQ(rt_wire_get_challenge(in.p, in.len, &ch), 0);
	CHECK(ch.flags & RT_CH_AUTH, "the server does not ask for a proof");
	if (k)
		CHECK_EQ(rt_wire_mac(k, klen, 0, ch.nonce, nonce, epoch, host, mac), 0);
	CHECK_EQ(rt_wire_auth(&m, mac, k ? RT_WIRE_MAC : 0), 0);
	cl_send(fd, m.p, m.len);
	rt_buf_free(&m);
	rt_buf_free(&in);
}

/* A full handshake as host "good"; @return what the server holds. */
static uint64_t cl_welcome(int fd)
{
	struct rt_welcome wl;
	struct rt_wire_hdr h;
	struct rt_buf in = {0};

	cl_auth(fd, "good", epoch_good, key, sizeof(key) - 1);
	CHECK(cl_read(fd, &h, &in) == 0 && h.type == RT_W_WELCOME, "no WELCOME (type %u)", h.type);
	CHECK_EQ(rt_wire_get_welcome(in.p, in.len, &wl), 0);
	CHECK(wl.mac_len == RT_WIRE_MAC, "the server did not prove it holds the key");
	rt_buf_free(&in);
	return wl.durable_seq;
}

/* A BATCH of blocks[from..to) (with @mutate applied to a copy of the
 * message's block @which, if any). */
static void batch_of(struct rt_buf *m, const int *which, int n)
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

static uint64_t cl_batch(int fd, const int *which, int n)
{
	struct rt_buf m = {0}, in = {0};
	struct rt_wire_hdr h;
	uint64_t ack;

	batch_of(&m, which, n);
	cl_send(fd, m.p, m.len);
	CHECK(cl_read(fd, &h, &in) == 0 && h.type == RT_W_ACK, "no ACK (type %u)", h.type);
	CHECK_EQ(rt_wire_get_u64(in.p, in.len, &ack), 0);
	rt_buf_free(&m);
	rt_buf_free(&in);
	return ack;
}

/* Send @m on a fresh authenticated connection; expect a refusal. */
static void bad_batch(struct rt_buf *m, uint32_t code, const char *why, const char *what)
{
	int fd = cl_connect();
	cl_welcome(fd);
	cl_send(fd, m->p, m->len);
	expect_error(fd, code, why, what);
	m->len = 0;
}

static uint64_t last_of(int i)
{
	return blocks[i].b.first_seq + blocks[i].b.nrec - 1;
}

/* ------------------------------------------------------------------------
 * Material
 * ------------------------------------------------------------------------ */

/* A real spool: records written through a real ring and ringtaild, with
 * some services and trace ids, in several commits (so, several blocks). */
static void make_blocks(void)
{
	const struct fc_host *x = &f.host[0];
	const char *argv[] = {"ringtaild", "--ring", x->ring, "--spool", x->spool, "--host", "good",
			      "-q", NULL};
	struct rt_spool *sp;
	struct rt_seg *s;
	uint64_t *seqs;
	pid_t d = fc_spawn(f.ringtaild, argv, NULL), w;
	int fd;

	fflush(stdout);
	w = fork();
	CHECK(w >= 0, "fork");
	if (w == 0) {
		uint8_t trace[16] = {0xab, 0xcd};
		setenv(RT_RING_ENV, x->ring, 1);
		for (int burst = 0; burst < 12; burst++) {
			uint64_t want = fc_durable(x->spool) + 1;
			for (int i = 0; i < 300; i++) {
				struct rt_attr a[] = {{"user", "alice"}, {"n", "42"}};
				struct rt_opts o = {.service = i % 3 ? "api" : "db",
						    .trace_id = i % 5 ? NULL : trace,
						    .attrs = a,
						    .nattrs = 2};
				trace[15] = (uint8_t)i;
				while (rt_writex(i % 7 ? RT_INFO : RT_ERROR, &o, "request served", 14))
					t_pause(); /* not attached yet */
			}
			/* The next burst goes into another block. */
			while (fc_durable(x->spool) < want + 299)
				t_pause();
		}
		_exit(0);
	}
	CHECK_EQ(t_wait(w), 0);
	fc_stop(d);

	CHECK_EQ(rt_spool_open(x->spool, NULL, 0, &sp), 0);
	memcpy(epoch_good, sp->epoch, 16);
	CHECK(rt_spool_list(sp, &seqs) == 1, "one segment");
	CHECK_EQ(rt_seg_open(sp->dirfd, "00000000000000000001.lz4", 0, &s), 0);
	fd = openat(sp->dirfd, "00000000000000000001.lz4", O_RDONLY);
	CHECK(fd >= 0, "open");
	for (uint32_t i = 0; i < s->nblocks && i < 64; i++) {
		struct blk *b = &blocks[nblocks++];
		const struct rt_seg_block *sb = &s->blocks[i];
		b->index_len = sb->index_len;
		b->data_len = sb->data_len;
		b->index = malloc(b->index_len);
		b->data = malloc(b->data_len);
		CHECK(pread(fd, b->index, b->index_len, (off_t)sb->index_off) == b->index_len &&
			      pread(fd, b->data, b->data_len, (off_t)sb->data_off) == b->data_len,
		      "pread");
		CHECK_EQ(rt_seg_parse_index(b->index, b->index_len, &b->b), 0);
	}
	CHECK(nblocks >= 8, "only %d blocks", nblocks);
	close(fd);
	rt_seg_close(s);
	free(seqs);
	rt_spool_close(sp);
}

/* A digest of every file of the central's copy of "good". */
static uint64_t stored_digest(void)
{
	char path[400], cmd[600], line[4096];
	uint64_t h = 0;
	FILE *p;

	CHECK(fc_central_spool(&f, "good", path, sizeof(path)) == 1, "no copy of good");
	snprintf(cmd, sizeof(cmd), "cd '%s' && cat *.lz4 | cksum", path);
	p = popen(cmd, "r");
	CHECK(p && fgets(line, sizeof(line), p), "cksum");
	pclose(p);
	h = XXH3_64bits(line, strlen(line));
	return h;
}

/* The first non-loopback IPv4 address of this machine, if any. */
static int other_address(char *out, size_t cap)
{
	struct ifaddrs *ifa, *i;
	int found = 0;

	if (getifaddrs(&ifa))
		return 0;
	for (i = ifa; i && !found; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)i->ifa_addr;
			if ((ntohl(a->sin_addr.s_addr) >> 24) != 127) {
				inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)cap);
				found = 1;
			}
		}
	freeifaddrs(ifa);
	return found;
}

/* Wait until @file says @s. */
static void wait_log(const char *file, const char *s, const char *what, int refusal)
{
	for (uint64_t deadline = t_now_ns() + 20ull * 1000000000; !fc_file_has(file, s);) {
		CHECK(t_now_ns() < deadline, "%s: %s does not say '%s'", what, file, s);
		t_pause();
	}
	cases += refusal;
	printf("  %-8s %-46s \"%s\"\n", refusal ? "refused:" : "said:", what, s);
}

int main(int argc, char **argv)
{
	struct rt_buf m = {0};
	uint8_t nonce[32], other_epoch[16] = {1, 2, 3};
	uint64_t held, before;
	char addr[64];
	int fd;

	CHECK(argc == 3, "usage: forward_badinput RINGTAILD RINGTAIL");
	fc_init(&f, "fwbad", argv[1], argv[2], 1);
	make_blocks();
	fc_start_central(&f);
	for (uint64_t deadline = t_now_ns() + 20ull * 1000000000; !fc_file_has(f.log, "listening");) {
		CHECK(t_now_ns() < deadline, "the central did not start");
		t_pause();
	}

	/* A real client stores blocks 0..2. */
	fd = cl_connect();
	CHECK_EQ(cl_welcome(fd), 0);
	CHECK_EQ(cl_batch(fd, (int[]){0, 1, 2}, 3), last_of(2));
	close(fd);
	held = last_of(2);
	before = stored_digest();

	/* Authentication. */
	fd = cl_connect();
	cl_auth(fd, "intruder", other_epoch, (const uint8_t *)"not-the-right-secret-at-all", 27);
	expect_error(fd, RT_WE_AUTH, "wrong proof", "the wrong secret");
	CHECK(!fc_central_spool(&f, "intruder", addr, sizeof(addr)),
	      "a spool was made for a client that failed to authenticate");
	fd = cl_connect();
	cl_auth(fd, "intruder", other_epoch, NULL, 0);
	expect_error(fd, RT_WE_AUTH, "no proof", "no proof at all");
	fd = cl_connect();
	cl_auth(fd, "good", epoch_good, (const uint8_t *)"not-the-right-secret-at-all", 27);
	expect_error(fd, RT_WE_AUTH, "wrong proof", "host good's identity, the wrong secret");

	/* Framing and versions. */
	fd = cl_connect();
	send_hello(fd, "good", epoch_good, nonce);
	{
		struct rt_wire_hdr h;
		struct rt_buf in = {0};
		CHECK(cl_read(fd, &h, &in) == 0 && h.type == RT_W_CHALLENGE, "no CHALLENGE");
		rt_buf_free(&in);
	}
	send_hello(fd, "good", epoch_good, nonce);
	expect_error(fd, RT_WE_PROTOCOL, "expected a valid AUTH", "HELLO where AUTH is due");
	fd = cl_connect();
	hello_msg(&m, 2, "good");
	cl_send(fd, m.p, m.len);
	expect_error(fd, RT_WE_VERSION, "protocol version 2 not supported", "HELLO of version 2");
	fd = cl_connect();
	hello_msg(&m, 1, "good");
	m.p[5] = 3; /* the header's version */
	cl_send(fd, m.p, m.len);
	expect_error(fd, RT_WE_VERSION, "protocol version not supported", "a header of version 3");
	fd = cl_connect();
	cl_send(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
	expect_error(fd, RT_WE_PROTOCOL, "not a ringtail message", "HTTP");
	fd = cl_connect();
	{
		uint8_t hdr[RT_WIRE_HDR];
		rt_wire_hdr_put(hdr, RT_W_HELLO, 1u << 30, 0);
		cl_send(fd, hdr, sizeof(hdr));
	}
	expect_error(fd, RT_WE_PROTOCOL, "message too large", "a 1 GiB HELLO");
	fd = cl_connect();
	hello_msg(&m, 1, "good");
	m.p[12] ^= 1; /* the checksum */
	cl_send(fd, m.p, m.len);
	expect_error(fd, RT_WE_PROTOCOL, "message checksum mismatch", "a HELLO with a bad checksum");
	fd = cl_connect();
	hello_msg(&m, 1, "../etc");
	cl_send(fd, m.p, m.len);
	expect_error(fd, RT_WE_PROTOCOL, "expected a valid HELLO", "host name \"../etc\"");
	fd = cl_connect();
	hello_msg(&m, 1, "good");
	cl_send(fd, m.p, m.len - 10);
	shutdown(fd, SHUT_WR);
	expect_error(fd, RT_WE_PROTOCOL, "truncated message", "a truncated HELLO");

	/* Batches. */
	m.len = 0;
	batch_of(&m, (int[]){3, 4}, 2);
	{
		int fd2 = cl_connect();
		cl_welcome(fd2);
		cl_send(fd2, m.p, m.len - 100);
		shutdown(fd2, SHUT_WR);
		expect_error(fd2, RT_WE_PROTOCOL, "truncated message", "a truncated BATCH");
	}
	m.len = 0;
	{
		uint8_t hdr[RT_WIRE_HDR];
		rt_wire_hdr_put(hdr, RT_W_BATCH, (64u << 20), 0);
		rt_buf_put(&m, hdr, sizeof(hdr));
	}
	bad_batch(&m, RT_WE_PROTOCOL, "message too large", "a BATCH past max_batch");
	batch_of(&m, (int[]){3, 4}, 2);
	m.p[RT_WIRE_HDR] = 3; /* claims 3 blocks, holds 2 */
	rt_wire_end(&m, 0, RT_W_BATCH);
	bad_batch(&m, RT_WE_PROTOCOL, "malformed BATCH", "a BATCH with fewer blocks than it says");
	batch_of(&m, (int[]){3}, 1);
	m.p[m.len - 5] ^= 0x40; /* a byte of the DATA frame */
	rt_wire_end(&m, 0, RT_W_BATCH);
	bad_batch(&m, RT_WE_DATA, "data checksum mismatch", "a DATA frame whose checksum lies");
	batch_of(&m, (int[]){3}, 1);
	m.p[RT_WIRE_HDR + 4 + 30] ^= 1; /* a byte of the INDEX frame */
	rt_wire_end(&m, 0, RT_W_BATCH);
	bad_batch(&m, RT_WE_DATA, "malformed INDEX frame", "an INDEX frame with a bad checksum");
	{
		/* An INDEX frame that is well-formed and checksummed, but lies
		 * about its records. */
		struct rt_seg_block lie = blocks[3].b;
		struct rt_buf idx = {0};
		size_t start;
		lie.svc = malloc(lie.nsvc * sizeof(*lie.svc));
		memcpy(lie.svc, blocks[3].b.svc, lie.nsvc * sizeof(*lie.svc));
		lie.bloom = blocks[3].b.bloom;
		lie.cursor = NULL;
		lie.ncursor = 0;
		lie.svc[0].count[0] += 1;
		CHECK_EQ(rt_seg_index_frame(&idx, &lie, 3, 0), 0);
		start = m.len;
		rt_wire_begin(&m);
		rt_wire_batch_start(&m);
		rt_wire_batch_add(&m, start, idx.p, (uint32_t)idx.len, blocks[3].data,
				  blocks[3].data_len);
		rt_wire_end(&m, start, RT_W_BATCH);
		bad_batch(&m, RT_WE_DATA, "per-service counts or sizes are not what its records give",
			  "an INDEX frame that lies about its records");
		/* ... or about its time range. */
		lie.svc[0].count[0] -= 1;
		lie.tmin -= 1;
		idx.len = 0;
		CHECK_EQ(rt_seg_index_frame(&idx, &lie, 3, 0), 0);
		rt_wire_begin(&m);
		rt_wire_batch_start(&m);
		rt_wire_batch_add(&m, 0, idx.p, (uint32_t)idx.len, blocks[3].data,
				  blocks[3].data_len);
		rt_wire_end(&m, 0, RT_W_BATCH);
		bad_batch(&m, RT_WE_DATA, "time range is not what its records give",
			  "an INDEX frame that lies about its times");
		free(lie.svc);
		/* ... or is another block's, with this block's data. */
		lie = blocks[4].b;
		lie.cursor = NULL;
		lie.ncursor = 0;
		lie.first_seq = blocks[3].b.first_seq;
		lie.data_len = blocks[3].data_len;
		lie.data_sum = blocks[3].b.data_sum;
		idx.len = 0;
		CHECK_EQ(rt_seg_index_frame(&idx, &lie, 3, 0), 0);
		rt_wire_begin(&m);
		rt_wire_batch_start(&m);
		rt_wire_batch_add(&m, 0, idx.p, (uint32_t)idx.len, blocks[3].data,
				  blocks[3].data_len);
		rt_wire_end(&m, 0, RT_W_BATCH);
		bad_batch(&m, RT_WE_DATA, "block #", "another block's INDEX frame over this DATA");
		rt_buf_free(&idx);
	}
	batch_of(&m, (int[]){3, 1}, 2);
	bad_batch(&m, RT_WE_SEQUENCE, "sequence numbers go backwards", "sequence going backwards");
	batch_of(&m, (int[]){4}, 1);
	bad_batch(&m, RT_WE_SEQUENCE, "was expected", "a batch skipping a block");
	{
		struct rt_buf g = {0};
		rt_wire_gap(&g, 1, 5);
		bad_batch(&g, RT_WE_SEQUENCE, "a gap from #1", "a GAP over records held");
		rt_buf_free(&g);
	}
	rt_wire_u64(&m, RT_W_ACK, 7);
	bad_batch(&m, RT_WE_PROTOCOL, "unexpected message", "an ACK from a sender");

	/* Nothing stored was touched, the server still serves, and a batch
	 * repeating what it holds is acknowledged, not stored again. */
	CHECK(stored_digest() == before, "a refused client changed what was stored");
	fd = cl_connect();
	CHECK_EQ(cl_welcome(fd), held);
	CHECK_EQ(cl_batch(fd, (int[]){1, 2}, 2), held);
	CHECK(stored_digest() == before, "a repeated batch was stored again");
	CHECK_EQ(cl_batch(fd, (int[]){2, 3, 4}, 3), last_of(4));
	close(fd);
	printf("  served:  a real client afterwards; a repeated batch acknowledged, not stored "
	       "again\n");

	/* Real ringtailds: no key against a server with one; the wrong key. */
	{
		char up[64];
		const struct fc_host *x = &f.host[0];
		char log2[300];
		const char *a1[] = {"ringtaild", "--ring", x->ring, "--spool", x->spool,
				    "--upstream", up, NULL};
		pid_t d;
		snprintf(up, sizeof(up), "127.0.0.1:%d", f.port);
		d = fc_spawn(f.ringtaild, a1, x->log);
		wait_log(x->log, "wants a key: start ringtaild with --auth-key", "a sender with no key", 1);
		fc_stop(d);
		snprintf(log2, sizeof(log2), "%s/wrongkey", f.dir);
		fd = open(log2, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		CHECK(fd >= 0 && write(fd, "another-secret-entirely\n", 24) == 24, "key");
		close(fd);
		{
			const char *a2[] = {"ringtaild", "--ring", x->ring, "--spool", x->spool,
					    "--upstream", up, "--auth-key", log2, NULL};
			d = fc_spawn(f.ringtaild, a2, x->log);
			wait_log(x->log, "refused: wrong proof of the key",
				 "a sender with another key", 1);
			fc_stop(d);
		}
		/* A server without a key refuses anyone not on loopback, and a
		 * sender with a key refuses a server that cannot prove it. */
		fc_stop(f.central_pid);
		f.use_key = 0;
		fc_start_central(&f);
		wait_log(f.log, "no --auth-key: taking connections from this host only",
			 "a server started without a key", 0);
		{
			const char *a3[] = {"ringtaild", "--ring", x->ring, "--spool", x->spool,
					    "--upstream", up, "--auth-key", f.key, NULL};
			d = fc_spawn(f.ringtaild, a3, x->log);
			wait_log(x->log, "could not prove it holds our key",
				 "a server without the key, by a sender", 1);
			fc_stop(d);
		}
		fc_stop(f.central_pid);
	}
	if (other_address(addr, sizeof(addr))) {
		char listen[64];
		const char *a4[] = {"ringtaild", "--listen", listen, "--spool", f.central, "--ring",
				    "/dev/shm/rt-test-no-ring", NULL};
		snprintf(listen, sizeof(listen), "0.0.0.0:%d", f.port);
		f.central_pid = fc_spawn(f.ringtaild, a4, f.log);
		for (uint64_t deadline = t_now_ns() + 20ull * 1000000000;;) {
			struct sockaddr_in a = {.sin_family = AF_INET,
						.sin_port = htons((uint16_t)f.port)};
			int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;
			inet_pton(AF_INET, addr, &a.sin_addr);
			ok = connect(probe, (struct sockaddr *)&a, sizeof(a)) == 0;
			close(probe);
			if (ok)
				break;
			CHECK(t_now_ns() < deadline, "the central did not listen on %s", addr);
			t_pause();
		}
		fd = cl_connect_from(addr, addr, f.port);
		send_hello(fd, "remote", other_epoch, nonce);
		expect_error(fd, RT_WE_FORBIDDEN, "takes connections from its own host only",
			     "not loopback, and the server has no key");
		fc_stop(f.central_pid);
	} else {
		printf("  (no address but loopback here: the non-loopback case is not tried)\n");
	}
	rt_buf_free(&m);
	printf("ok - %d kinds of bad input refused with a clear reason, in the ERROR and the log; "
	       "nothing stored was touched; the server went on serving\n",
	       cases);
	fc_cleanup(&f);
	return 0;
}
