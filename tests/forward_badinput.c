/* SPDX-License-Identifier: MIT */
/*
 * forward_badinput - a central ringtaild --listen with --auth-key faces a
 * client that lies, one lie per run (CASE names it; tests/meson.build runs
 * every case as a test of its own): the wrong secret, no proof, wrong
 * protocol versions (a version 1 sender is told why, in its own framing),
 * bytes that are not ringtail at all, oversized, truncated, pipelined and
 * mis-tagged frames, a bad message checksum, invalid host names, malformed
 * batches, a DATA frame whose checksum lies, INDEX frames whose claims are
 * false, invalid service names, sequence numbers going backwards or skipping
 * ahead, messages out of place, a frame too slow and a handshake too long.
 * Each is refused with an ERROR whose code and reason say why, the same
 * reason is in the server's log, nothing already stored is touched, and a
 * real client is served afterwards. Some cases check what must be taken: a
 * repeated batch is acknowledged and not stored again; blocks holding the
 * spooler's own reserved services are taken. Real ringtailds with the wrong
 * key, or none, are refused (and refuse) with a clear message; a server
 * without a key refuses a connection from another address than loopback.
 *
 *   forward_badinput RINGTAILD RINGTAIL CASE
 *   forward_badinput RINGTAILD RINGTAIL --registered CASE...
 * The second form checks that every case is among those given (the ones
 * tests/meson.build registers), so that none is left out unseen.
 */
#include <ifaddrs.h>
#include <xxhash.h>

#define SC_PROCS 1
#include "forward_check.h"
#include "forward_client.h"

static struct fc f;
static const uint8_t key[] = "a-shared-secret-for-the-fleet"; /* as fc_init writes it */
#define KEY key, sizeof(key) - 1
static const uint8_t epoch_good[16] = {0x9a, 0x11, 0x0d};
static const uint8_t other_epoch[16] = {1, 2, 3};
static struct blk blocks[12];
static uint64_t held, before;

static void wait_log(const char *file, const char *s, const char *what)
{
	for (uint64_t deadline = t_now_ns() + 20ull * 1000000000; !fc_file_has(file, s);) {
		CHECK(t_now_ns() < deadline, "%s: %s does not say '%s'", what, file, s);
		t_pause();
	}
}

/* ERROR @code saying @why, the connection closed, and the log says it. */
static void expect_error(struct cl *c, uint32_t code, const char *why, const char *what)
{
	const char *reason = cl_expect_error(c, code, why, what);

	wait_log(f.log, reason, what);
	printf("refused: %s: ERROR %u \"%s\"\n", what, code, reason);
	cl_close(c);
}

static void conn(struct cl *c)
{
	cl_open(c, NULL, "127.0.0.1", f.port);
}

/* Authenticated as host "good". */
static void good(struct cl *c)
{
	conn(c);
	cl_welcome(c, "good", epoch_good, KEY);
}

/* Send @m (tagged) on a fresh authenticated connection; expect a refusal. */
static void bad_batch(struct rt_buf *m, uint32_t code, const char *why, const char *what)
{
	struct cl c;
	good(&c);
	cl_send_msg(&c, m, 0);
	expect_error(&c, code, why, what);
	m->len = 0;
}

/* A digest of every segment of the central's copy of "good". */
static uint64_t stored_digest(void)
{
	char path[400], cmd[600], line[4096];
	FILE *p;

	CHECK(fc_central_spool(&f, "good", path, sizeof(path)) == 1, "no copy of good");
	snprintf(cmd, sizeof(cmd), "cd '%s' && cat *.lz4 | cksum", path);
	p = popen(cmd, "r");
	CHECK(p && fgets(line, sizeof(line), p), "cksum");
	pclose(p);
	return XXH3_64bits(line, strlen(line));
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

static void hello_msg(struct rt_buf *m, uint32_t version, const char *host)
{
	struct rt_hello hello = {.version = version};

	m->len = 0;
	snprintf(hello.host, sizeof(hello.host), "%s", host);
	CHECK_EQ(rt_wire_hello(m, &hello), 0);
}

/* The INDEX frame of block 3, with @lie applied, over block @data's DATA. */
static void lying_index(struct rt_buf *m, void (*lie)(struct rt_seg_block *), int data)
{
	struct rt_seg_block b = blocks[3].b;
	struct rt_buf idx = {0};

	b.svc = malloc(b.nsvc * sizeof(*b.svc));
	memcpy(b.svc, blocks[3].b.svc, b.nsvc * sizeof(*b.svc));
	b.cursor = NULL;
	b.ncursor = 0;
	lie(&b);
	CHECK_EQ(rt_seg_index_frame(&idx, &b, 3, 0), 0);
	m->len = 0;
	CHECK_EQ(rt_wire_begin(m), 0);
	CHECK_EQ(rt_wire_batch_start(m), 0);
	CHECK_EQ(rt_wire_batch_add(m, 0, idx.p, (uint32_t)idx.len, blocks[data].data,
				   blocks[data].data_len),
		 0);
	rt_wire_end(m, 0, RT_W_BATCH);
	free(b.svc);
	rt_buf_free(&idx);
}

static void lie_count(struct rt_seg_block *b)
{
	b->svc[0].count[2] += 1;
}

static void lie_time(struct rt_seg_block *b)
{
	b->tmin -= 1;
}

static void lie_other(struct rt_seg_block *b)
{
	/* Block 4's claims, block 3's data. */
	const struct rt_seg_block *o = &blocks[4].b;
	memcpy(b->svc, o->svc, b->nsvc * sizeof(*b->svc));
	b->tmin = o->tmin;
	b->tmax = o->tmax;
}

/* ------------------------------------------------------------------------
 * The cases
 * ------------------------------------------------------------------------ */

static void case_wrong_secret(void)
{
	struct cl c;
	char path[400];
	const uint8_t wrong[] = "not-the-right-secret-at-all";

	conn(&c);
	cl_hello(&c, "intruder", other_epoch);
	CHECK(cl_challenge(&c, wrong, sizeof(wrong) - 1) & RT_CH_AUTH, "no proof asked for");
	cl_auth(&c);
	expect_error(&c, RT_WE_AUTH, "wrong proof", "the wrong secret");
	CHECK(!fc_central_spool(&f, "intruder", path, sizeof(path)),
	      "a spool was made for a client that failed to authenticate");
}

static void case_no_proof(void)
{
	struct cl c;

	conn(&c);
	cl_hello(&c, "intruder", other_epoch);
	cl_challenge(&c, NULL, 0);
	cl_auth(&c); /* untagged */
	expect_error(&c, RT_WE_AUTH, "no proof", "no proof at all");
}

static void case_wrong_secret_as_host(void)
{
	struct cl c;
	const uint8_t wrong[] = "not-the-right-secret-at-all";

	conn(&c);
	cl_hello(&c, "good", epoch_good);
	cl_challenge(&c, wrong, sizeof(wrong) - 1);
	cl_auth(&c);
	expect_error(&c, RT_WE_AUTH, "wrong proof", "host good's identity, the wrong secret");
}

static void case_hello_for_auth(void)
{
	struct cl c;

	conn(&c);
	cl_hello(&c, "good", epoch_good);
	cl_challenge(&c, KEY);
	cl_hello(&c, "good", epoch_good);
	expect_error(&c, RT_WE_PROTOCOL, "expected a valid AUTH", "HELLO where AUTH is due");
}

static void case_hello_version(void)
{
	struct cl c;
	struct rt_buf m = {0};

	conn(&c);
	hello_msg(&m, 3, "good");
	cl_send(c.fd, m.p, m.len);
	expect_error(&c, RT_WE_VERSION, "protocol version 3 not supported", "a HELLO saying version 3");
	rt_buf_free(&m);
}

/* A sender of protocol version 1 (its HELLO is ours, with 1 in the header's
 * and the payload's version): it must be able to read why it is refused. */
static void case_v1_sender(void)
{
	struct cl c;
	struct rt_buf m = {0};
	char reason[512];
	uint32_t code;

	conn(&c);
	hello_msg(&m, 1, "old-host");
	m.p[5] = 1;
	cl_send(c.fd, m.p, m.len);
	CHECK(cl_read_raw(&c) == 0, "closed without an ERROR");
	CHECK(c.h.version == 1 && c.h.type == RT_W_ERROR && !(c.h.flags & RT_WF_TAG),
	      "the answer to a version 1 sender is not a version 1 ERROR (version %u type %u)",
	      c.h.version, c.h.type);
	CHECK(rt_wire_sum(c.in.p, c.in.len) == c.h.sum, "its checksum");
	CHECK_EQ(rt_wire_get_error(c.in.p, c.in.len, &code, reason, sizeof(reason)), 0);
	CHECK(code == RT_WE_VERSION && strstr(reason, "version 2") && strstr(reason, "upgrade"),
	      "ERROR %u '%s'", code, reason);
	wait_log(f.log, "(host old-host) closed: this server speaks forwarding protocol version 2",
		 "a version 1 sender");
	printf("refused: a version 1 sender, in version 1 framing: ERROR %u \"%s\"\n", code, reason);
	cl_close(&c);
	rt_buf_free(&m);
}

static void case_header_version(void)
{
	struct cl c;
	struct rt_buf m = {0};

	conn(&c);
	hello_msg(&m, 2, "good");
	m.p[5] = 3;
	cl_send(c.fd, m.p, m.len);
	expect_error(&c, RT_WE_VERSION, "protocol version 3 not supported", "a header of version 3");
	rt_buf_free(&m);
}

static void case_http(void)
{
	struct cl c;

	conn(&c);
	cl_send(c.fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
	expect_error(&c, RT_WE_PROTOCOL, "not a ringtail message", "HTTP");
}

static void case_huge_hello(void)
{
	struct cl c;
	uint8_t hdr[RT_WIRE_HDR];

	conn(&c);
	rt_wire_hdr_put(hdr, RT_W_HELLO, 1u << 30, 0);
	cl_send(c.fd, hdr, sizeof(hdr));
	expect_error(&c, RT_WE_PROTOCOL, "message too large", "a 1 GiB HELLO");
}

static void case_bad_checksum(void)
{
	struct cl c;
	struct rt_buf m = {0};

	conn(&c);
	hello_msg(&m, 2, "good");
	m.p[12] ^= 1;
	cl_send(c.fd, m.p, m.len);
	expect_error(&c, RT_WE_PROTOCOL, "message checksum mismatch", "a HELLO with a bad checksum");
	rt_buf_free(&m);
}

static void case_bad_host_names(void)
{
	static const char *const names[] = {"../etc", ".hidden", "-rf", "a b", "web~01", "a/b",
					    "t\xc3\xa9st", "x;rm", ".", ".."};
	struct rt_buf m = {0};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct cl c;
		char what[64];
		conn(&c);
		hello_msg(&m, 2, names[i]);
		cl_send(c.fd, m.p, m.len);
		snprintf(what, sizeof(what), "host name \"%s\"", names[i]);
		expect_error(&c, RT_WE_PROTOCOL, "its host name is not one", what);
	}
	rt_buf_free(&m);
}

static void case_truncated_hello(void)
{
	struct cl c;
	struct rt_buf m = {0};

	conn(&c);
	hello_msg(&m, 2, "good");
	cl_send(c.fd, m.p, m.len - 10);
	shutdown(c.fd, SHUT_WR);
	expect_error(&c, RT_WE_PROTOCOL, "truncated message", "a truncated HELLO");
	rt_buf_free(&m);
}

static void case_tagged_hello(void)
{
	struct cl c;
	struct rt_buf m = {0};
	uint16_t flags = RT_WF_TAG;
	uint8_t tag[RT_WIRE_TAG] = {0};

	conn(&c);
	hello_msg(&m, 2, "good");
	memcpy(m.p + 6, &flags, 2);
	rt_buf_put(&m, tag, sizeof(tag));
	cl_send(c.fd, m.p, m.len);
	expect_error(&c, RT_WE_PROTOCOL, "tag in a session without a key", "a HELLO with a tag");
	rt_buf_free(&m);
}

static void case_pipelined(void)
{
	struct cl c;
	struct rt_buf m = {0};

	conn(&c);
	hello_msg(&m, 2, "good");
	rt_wire_auth(&m);
	cl_send(c.fd, m.p, m.len);
	expect_error(&c, RT_WE_PROTOCOL, "a message before the server's answer",
		     "HELLO and AUTH at once, before the CHALLENGE");
	rt_buf_free(&m);
}

static void case_truncated_batch(void)
{
	struct cl c;
	struct rt_buf m = {0};

	batch_of(&m, blocks, (int[]){3, 4}, 2);
	good(&c);
	CHECK_EQ(rt_wire_tag(&c.sess, &m, 0), 0);
	cl_send(c.fd, m.p, m.len - 100);
	shutdown(c.fd, SHUT_WR);
	expect_error(&c, RT_WE_PROTOCOL, "truncated message", "a truncated BATCH");
	rt_buf_free(&m);
}

static void case_batch_too_large(void)
{
	struct rt_buf m = {0};
	uint8_t hdr[RT_WIRE_HDR];

	rt_wire_hdr_put(hdr, RT_W_BATCH, (64u << 20), 0);
	rt_buf_put(&m, hdr, sizeof(hdr));
	{
		struct cl c;
		good(&c);
		cl_send(c.fd, m.p, m.len);
		expect_error(&c, RT_WE_PROTOCOL, "message too large", "a BATCH past max_batch");
	}
	rt_buf_free(&m);
}

static void case_batch_fewer_blocks(void)
{
	struct rt_buf m = {0};

	batch_of(&m, blocks, (int[]){3, 4}, 2);
	m.p[RT_WIRE_HDR] = 3; /* claims 3 blocks, holds 2 */
	rt_wire_end(&m, 0, RT_W_BATCH);
	bad_batch(&m, RT_WE_PROTOCOL, "malformed BATCH", "a BATCH with fewer blocks than it says");
	rt_buf_free(&m);
}

static void case_data_checksum(void)
{
	struct rt_buf m = {0};

	batch_of(&m, blocks, (int[]){3}, 1);
	m.p[m.len - 5] ^= 0x40; /* a byte of the DATA frame */
	rt_wire_end(&m, 0, RT_W_BATCH);
	bad_batch(&m, RT_WE_DATA, "data checksum mismatch", "a DATA frame whose checksum lies");
	rt_buf_free(&m);
}

static void case_index_checksum(void)
{
	struct rt_buf m = {0};

	batch_of(&m, blocks, (int[]){3}, 1);
	m.p[RT_WIRE_HDR + 4 + 30] ^= 1; /* a byte of the INDEX frame */
	rt_wire_end(&m, 0, RT_W_BATCH);
	bad_batch(&m, RT_WE_DATA, "malformed INDEX frame", "an INDEX frame with a bad checksum");
	rt_buf_free(&m);
}

static void case_index_lies_counts(void)
{
	struct rt_buf m = {0};

	lying_index(&m, lie_count, 3);
	bad_batch(&m, RT_WE_DATA, "per-service counts or sizes are not what its records give",
		  "an INDEX frame that lies about its records");
	rt_buf_free(&m);
}

static void case_index_lies_times(void)
{
	struct rt_buf m = {0};

	lying_index(&m, lie_time, 3);
	bad_batch(&m, RT_WE_DATA, "time range is not what its records give",
		  "an INDEX frame that lies about its times");
	rt_buf_free(&m);
}

static void case_index_of_another(void)
{
	struct rt_buf m = {0};

	lying_index(&m, lie_other, 3);
	bad_batch(&m, RT_WE_DATA, "block #", "another block's claims over this block's DATA");
	rt_buf_free(&m);
}

/* Blocks as a sender would send them, but with @svc among their services. */
static void service_blocks(struct blk *out, const char *svc)
{
	const char *svcs[] = {"api", svc};
	make_blocks(out, 1, "good", held + 1, 50, svcs, 2);
}

static void case_bad_service_names(void)
{
	static const char *const names[] = {"caf\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
					    "a/b", "tab\there"};
	static const char *const what[] = {"a cut UTF-8 sequence", "an overlong '/'",
					   "a UTF-16 surrogate", "past U+10FFFF", "a '/'",
					   "a control byte"};
	/* '/' and control bytes every reader refuses already (the INDEX
	 * frame does not parse); the rest is the batch check's. */
	static const char *const why[] = {"is not a valid name", "is not a valid name",
					  "is not a valid name", "is not a valid name",
					  "malformed INDEX frame", "malformed INDEX frame"};
	struct rt_buf m = {0};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct blk b[1];
		char w[96];
		service_blocks(b, names[i]);
		batch_of(&m, b, (int[]){0}, 1);
		snprintf(w, sizeof(w), "a service name with %s", what[i]);
		bad_batch(&m, RT_WE_DATA, why[i], w);
		free_blocks(b, 1);
	}
	rt_buf_free(&m);
}

static void case_reserved_services(void)
{
	/* A sender's own messages and loss records: names no writer may
	 * use, which its spooler gives its own records. */
	struct blk b[1];
	struct cl c;
	const char *svcs[] = {"ringtaild", "ringtail", "api"};

	make_blocks(b, 1, "good", held + 1, 30, svcs, 3);
	good(&c);
	CHECK_EQ(cl_batch(&c, b, (int[]){0}, 1), blk_last(&b[0]));
	cl_close(&c);
	held = blk_last(&b[0]);
	free_blocks(b, 1);
	printf("taken: a block holding the spooler's own services \"ringtaild\" and \"ringtail\"\n");
	before = stored_digest();
}

static void case_backwards(void)
{
	struct rt_buf m = {0};

	batch_of(&m, blocks, (int[]){3, 1}, 2);
	bad_batch(&m, RT_WE_SEQUENCE, "sequence numbers go backwards", "sequence going backwards");
	rt_buf_free(&m);
}

static void case_skipping(void)
{
	struct rt_buf m = {0};

	batch_of(&m, blocks, (int[]){4}, 1);
	bad_batch(&m, RT_WE_SEQUENCE, "was expected", "a batch skipping a block");
	rt_buf_free(&m);
}

static void case_gap_over_held(void)
{
	struct rt_buf m = {0};

	rt_wire_gap(&m, 1, 5);
	bad_batch(&m, RT_WE_SEQUENCE, "a gap from #1", "a GAP over records held");
	rt_buf_free(&m);
}

static void case_ack_from_sender(void)
{
	struct rt_buf m = {0};

	rt_wire_u64(&m, RT_W_ACK, 7);
	bad_batch(&m, RT_WE_PROTOCOL, "unexpected message", "an ACK from a sender");
	rt_buf_free(&m);
}

static void case_untagged_batch(void)
{
	struct rt_buf m = {0};
	struct cl c;

	batch_of(&m, blocks, (int[]){3}, 1);
	good(&c);
	cl_send(c.fd, m.p, m.len); /* no tag, in a keyed session */
	expect_error(&c, RT_WE_AUTH, "without its authentication tag",
		     "an untagged BATCH after the handshake");
	rt_buf_free(&m);
}

static void case_repeat(void)
{
	struct cl c;

	good(&c);
	CHECK_EQ(cl_batch(&c, blocks, (int[]){1, 2}, 2), held);
	CHECK(stored_digest() == before, "a repeated batch was stored again");
	CHECK_EQ(cl_batch(&c, blocks, (int[]){2, 3, 4}, 3), blk_last(&blocks[4]));
	cl_close(&c);
	printf("taken: a repeated batch acknowledged, not stored again; then new blocks after it\n");
	held = blk_last(&blocks[4]);
	before = stored_digest();
}

/* A BATCH begun and then sent a byte at a time: closed once it is slower
 * than --min-rate allows after --handshake-timeout (1 s, 64K here). */
static void case_slow_frame(void)
{
	struct rt_buf m = {0};
	struct cl c;
	uint64_t t0;
	double secs;

	batch_of(&m, blocks, (int[]){3, 4, 5, 6, 7, 8}, 6);
	good(&c);
	CHECK_EQ(rt_wire_tag(&c.sess, &m, 0), 0);
	t0 = t_now_ns();
	for (size_t i = 0; i < m.len; i++) {
		struct timespec d = {0, 20 * 1000000};
		if (send(c.fd, m.p + i, 1, MSG_NOSIGNAL) != 1)
			break; /* closed: the ERROR is waiting */
		nanosleep(&d, NULL);
		if (t_now_ns() - t0 > 20ull * 1000000000)
			break;
		struct pollfd pf = {c.fd, POLLIN, 0};
		if (poll(&pf, 1, 0) == 1)
			break;
	}
	expect_error(&c, RT_WE_TIMEOUT, "too slow", "a BATCH sent a byte every 20 ms");
	secs = (double)(t_now_ns() - t0) / 1e9;
	/* 1 s of grace and the frame's length at 64 KiB/s. */
	CHECK(secs < 1.0 + (double)m.len / 65536 + 2.0, "closed only after %.1f s", secs);
	printf("  (closed after %.2f s; the frame of %zu bytes was allowed %.2f s)\n", secs, m.len,
	       1.0 + (double)m.len / 65536);
	rt_buf_free(&m);
}

static void case_handshake_deadline(void)
{
	struct rt_buf m = {0};
	struct cl c;
	uint64_t t0 = t_now_ns();
	double secs;

	conn(&c);
	hello_msg(&m, 2, "good");
	cl_send(c.fd, m.p, 20); /* and nothing more */
	expect_error(&c, RT_WE_TIMEOUT, "handshake was not done within 1000 ms",
		     "a handshake not done in time");
	secs = (double)(t_now_ns() - t0) / 1e9;
	CHECK(secs > 0.9 && secs < 5, "closed after %.1f s, with a deadline of 1 s", secs);
	rt_buf_free(&m);
}

/* Real ringtailds. */
static pid_t sender(const char *key_file)
{
	static char up[64];
	const struct fc_host *x = &f.host[0];
	const char *a[] = {"ringtaild", "--ring", x->ring, "--spool", x->spool, "--host", "good",
			   "--upstream", up, key_file ? "--auth-key" : NULL, key_file, NULL};

	snprintf(up, sizeof(up), "127.0.0.1:%d", f.port);
	return fc_spawn(f.ringtaild, a, x->log);
}

static void case_sender_no_key(void)
{
	pid_t d = sender(NULL);
	wait_log(f.host[0].log, "wants a key: start ringtaild with --auth-key", "a sender with no key");
	fc_stop(d);
	printf("refused: a sender with no key\n");
}

static void case_sender_other_key(void)
{
	char path[300];
	pid_t d;

	snprintf(path, sizeof(path), "%s/wrongkey", f.dir);
	fc_write_key(path, "another-secret-entirely\n");
	d = sender(path);
	wait_log(f.host[0].log, "refused: wrong proof of the key", "a sender with another key");
	wait_log(f.log, "wrong proof of the key", "a sender with another key");
	fc_stop(d);
	printf("refused: a sender with another key\n");
}

static void case_server_without_key(void)
{
	pid_t d;

	fc_stop(f.central_pid);
	f.use_key = 0;
	fc_start_central(&f);
	wait_log(f.log, "no --auth-key: taking connections from this host only",
		 "a server started without a key");
	d = sender(f.key);
	wait_log(f.host[0].log, "could not prove it holds our key", "a sender facing a keyless server");
	fc_stop(d);
	printf("refused (by the sender): a server that cannot prove it holds the key\n");
}

/* A server of version 1 (this test, playing it): it reads the HELLO and
 * refuses the version, in version 1 framing. The sender must say so. */
static void case_v1_server(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	struct rt_buf m = {0};
	struct cl c;
	char up[64];
	const struct fc_host *x = &f.host[0];
	const char *argv[] = {"ringtaild", "--ring", x->ring, "--spool", x->spool, "--host", "good",
			      "--upstream", up, "--auth-key", f.key, NULL};
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	pid_t d;

	CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(lfd, 4) == 0 &&
		      getsockname(lfd, (struct sockaddr *)&a, &l) == 0,
	      "listen");
	snprintf(up, sizeof(up), "127.0.0.1:%d", ntohs(a.sin_port));
	d = fc_spawn(f.ringtaild, argv, x->log);
	memset(&c, 0, sizeof(c));
	c.fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(c.fd >= 0, "accept");
	CHECK(cl_read_raw(&c) == 0 && c.h.type == RT_W_HELLO && c.h.version == 2, "no HELLO");
	CHECK_EQ(rt_wire_error_v1(&m, RT_WE_VERSION, "protocol version not supported"), 0);
	cl_send(c.fd, m.p, m.len);
	wait_log(x->log, "speaks forwarding protocol version 1 (this ringtaild speaks 2): upgrade "
			 "ringtaild there",
		 "a version 1 server");
	printf("refused (by the sender): a version 1 server, told apart and named in its log\n");
	fc_stop(d);
	cl_close(&c);
	close(lfd);
	rt_buf_free(&m);
}

static int case_not_loopback(void)
{
	char addr[64], portfile[300];
	const char *a[] = {"ringtaild", "--listen", "0.0.0.0:0", "--port-file", portfile, "--spool",
			   f.central, "--ring", "/dev/shm/rt-test-no-ring", NULL};
	struct cl c;
	int port;

	if (!other_address(addr, sizeof(addr))) {
		printf("SKIP: no address but loopback here\n");
		return T_SKIP;
	}
	fc_stop(f.central_pid);
	snprintf(portfile, sizeof(portfile), "%s/any.port", f.dir);
	f.central_pid = fc_spawn(f.ringtaild, a, f.log);
	port = fc_wait_port(portfile, f.central_pid);
	cl_open(&c, addr, addr, port);
	cl_hello(&c, "remote", other_epoch);
	expect_error(&c, RT_WE_FORBIDDEN, "takes connections from its own host only",
		     "not loopback, and the server has no key");
	return 0;
}

struct tcase {
	const char *name;
	void (*fn)(void);
	int (*fn77)(void); /* a case that may be skipped */
	const char *central_args[6];
};

static const struct tcase cases[] = {
	{"wrong_secret", case_wrong_secret, NULL, {NULL}},
	{"no_proof", case_no_proof, NULL, {NULL}},
	{"wrong_secret_as_host", case_wrong_secret_as_host, NULL, {NULL}},
	{"hello_for_auth", case_hello_for_auth, NULL, {NULL}},
	{"hello_version", case_hello_version, NULL, {NULL}},
	{"v1_sender", case_v1_sender, NULL, {NULL}},
	{"header_version", case_header_version, NULL, {NULL}},
	{"http", case_http, NULL, {NULL}},
	{"huge_hello", case_huge_hello, NULL, {NULL}},
	{"bad_checksum", case_bad_checksum, NULL, {NULL}},
	{"bad_host_names", case_bad_host_names, NULL, {NULL}},
	{"truncated_hello", case_truncated_hello, NULL, {NULL}},
	{"tagged_hello", case_tagged_hello, NULL, {NULL}},
	{"pipelined", case_pipelined, NULL, {NULL}},
	{"truncated_batch", case_truncated_batch, NULL, {NULL}},
	{"batch_too_large", case_batch_too_large, NULL, {NULL}},
	{"batch_fewer_blocks", case_batch_fewer_blocks, NULL, {NULL}},
	{"data_checksum", case_data_checksum, NULL, {NULL}},
	{"index_checksum", case_index_checksum, NULL, {NULL}},
	{"index_lies_counts", case_index_lies_counts, NULL, {NULL}},
	{"index_lies_times", case_index_lies_times, NULL, {NULL}},
	{"index_of_another", case_index_of_another, NULL, {NULL}},
	{"bad_service_names", case_bad_service_names, NULL, {NULL}},
	{"reserved_services", case_reserved_services, NULL, {NULL}},
	{"backwards", case_backwards, NULL, {NULL}},
	{"skipping", case_skipping, NULL, {NULL}},
	{"gap_over_held", case_gap_over_held, NULL, {NULL}},
	{"ack_from_sender", case_ack_from_sender, NULL, {NULL}},
	{"untagged_batch", case_untagged_batch, NULL, {NULL}},
	{"repeat", case_repeat, NULL, {NULL}},
	{"slow_frame", case_slow_frame, NULL, {"--handshake-timeout", "1s", "--min-rate", "64K"}},
	{"handshake_deadline", case_handshake_deadline, NULL, {"--handshake-timeout", "1s"}},
	{"sender_no_key", case_sender_no_key, NULL, {NULL}},
	{"sender_other_key", case_sender_other_key, NULL, {NULL}},
	{"server_without_key", case_server_without_key, NULL, {NULL}},
	{"v1_server", case_v1_server, NULL, {NULL}},
	{"not_loopback", NULL, case_not_loopback, {NULL}},
};

int main(int argc, char **argv)
{
	static const char *const svcs[] = {"api", "db"};
	const struct tcase *t = NULL;
	struct cl c;
	int rc = 0;

	CHECK(argc >= 4, "usage: forward_badinput RINGTAILD RINGTAIL CASE|--registered CASE...");
	if (!strcmp(argv[3], "--registered")) {
		size_t i;
		int j;
		for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			for (j = 4; j < argc && strcmp(argv[j], cases[i].name); j++)
				;
			CHECK(j < argc, "case %s is not registered in tests/meson.build", cases[i].name);
		}
		CHECK_EQ(argc - 4, (int)i);
		printf("ok - all %zu cases are registered, each a test of its own\n", i);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!strcmp(argv[3], cases[i].name))
			t = &cases[i];
	CHECK(t, "no case '%s'", argv[3]);
	fc_init(&f, "fwbad", argv[1], argv[2], 1);
	for (int i = 0; t->central_args[i]; i++)
		f.central_args[i] = t->central_args[i];
	make_blocks(blocks, 12, "good", 1, 300, svcs, 2);
	fc_start_central(&f);

	/* A real client stores blocks 0..2. */
	good(&c);
	CHECK_EQ(cl_batch(&c, blocks, (int[]){0, 1, 2}, 3), blk_last(&blocks[2]));
	cl_close(&c);
	held = blk_last(&blocks[2]);
	before = stored_digest();

	if (t->fn)
		t->fn();
	else
		rc = t->fn77();
	if (rc == 0 && f.use_key && strcmp(t->name, "not_loopback")) {
		/* Nothing stored was touched (but by what the case added), and
		 * the server still serves. */
		CHECK(stored_digest() == before, "%s: a refused client changed what was stored",
		      t->name);
		conn(&c);
		CHECK(cl_welcome(&c, "good", epoch_good, KEY) == held,
		      "%s: the server did not serve a real client afterwards", t->name);
		cl_close(&c);
		printf("served: a real client afterwards; what was stored before was not touched\n");
	}
	fc_stop(f.central_pid);
	free_blocks(blocks, 12);
	fc_cleanup(&f);
	return rc;
}
