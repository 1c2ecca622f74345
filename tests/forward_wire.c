/* SPDX-License-Identifier: MIT */
/*
 * forward_wire - the protocol's keys and tags in-process, and the host name
 * rule, without any daemon:
 *
 * - the keys and tags are the ones docs/protocol.md describes: a known
 *   answer computed apart (Python's hmac and hashlib, HKDF written out by
 *   hand) for an AUTH frame and an ACK frame;
 * - a sender's session and a server's agree, frame after frame, both ways;
 * - every single-bit change of a tagged frame (header, payload, tag) is
 *   refused, and so is a frame replayed, one dropped (the next then comes
 *   out of order), two swapped, a frame cut short (with its length changed
 *   to match), a frame of the other direction reflected back, a frame of
 *   another connection (other nonces), a frame without its tag, and a frame
 *   tagged with another key; the counter does not move on a refusal;
 * - a keyless session takes no tag, and a keyed one no untagged frame;
 * - rt_wire_host_ok() takes and refuses what COMMON interface 4 says.
 *
 *   forward_wire
 */
#include <stdio.h>
#include <string.h>

#include "helpers.h"
#include "rtwire.h"

static const uint8_t key[] = "a-shared-secret-for-the-fleet";

struct pair {
	struct rt_wire_session snd, srv;
	struct rt_buf hello, ch;
};

static void hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

/* The HELLO and CHALLENGE payloads of the known answer. */
static void transcript(struct rt_buf *hello, struct rt_buf *ch, uint8_t nonce_s, uint8_t nonce_c)
{
	struct rt_hello h;
	struct rt_challenge c;
	struct rt_buf m = {0};

	memset(&h, 0, sizeof(h));
	h.version = 2;
	memset(h.epoch, 1, 16);
	memset(h.nonce, nonce_s, 32);
	strcpy(h.host, "web01");
	CHECK_EQ(rt_wire_hello(&m, &h), 0);
	hello->len = 0;
	rt_buf_put(hello, m.p + RT_WIRE_HDR, m.len - RT_WIRE_HDR);
	m.len = 0;
	c.version = 2;
	c.flags = RT_CH_AUTH;
	memset(c.nonce, nonce_c, 32);
	CHECK_EQ(rt_wire_challenge(&m, &c), 0);
	ch->len = 0;
	rt_buf_put(ch, m.p + RT_WIRE_HDR, m.len - RT_WIRE_HDR);
	rt_buf_free(&m);
}

static void pair_init(struct pair *p, const uint8_t *k_snd, const uint8_t *k_srv, uint8_t ns,
		      uint8_t nc)
{
	memset(p, 0, sizeof(*p));
	transcript(&p->hello, &p->ch, ns, nc);
	CHECK_EQ(rt_wire_session_init(&p->snd, k_snd, k_snd ? sizeof(key) - 1 : 0, 0, p->hello.p,
				      p->hello.len, p->ch.p, p->ch.len),
		 0);
	CHECK_EQ(rt_wire_session_init(&p->srv, k_srv, k_srv ? sizeof(key) - 1 : 0, 1, p->hello.p,
				      p->hello.len, p->ch.p, p->ch.len),
		 0);
}

static void pair_free(struct pair *p)
{
	rt_wire_session_free(&p->snd);
	rt_wire_session_free(&p->srv);
	rt_buf_free(&p->hello);
	rt_buf_free(&p->ch);
}

/* A frame as @s sends it: a GAP of @a..@b (distinct content per frame). */
static void frame(struct rt_wire_session *s, struct rt_buf *m, uint64_t a, uint64_t b)
{
	m->len = 0;
	CHECK_EQ(rt_wire_gap(m, a, b), 0);
	CHECK_EQ(rt_wire_tag(s, m, 0), 0);
}

/* Does @s take frame @m? */
static int takes(struct rt_wire_session *s, const struct rt_buf *m)
{
	struct rt_wire_hdr h;
	const char *why;
	long whole = rt_wire_frame(m->p, m->len, RT_WIRE_MAX_PAYLOAD, &h);

	if (whole <= 0 || (size_t)whole != m->len)
		return 0;
	return rt_wire_verify(s, m->p, &h, m->p + RT_WIRE_HDR,
			      h.flags & RT_WF_TAG ? m->p + RT_WIRE_HDR + h.len : NULL, &why) == 0;
}

static void known_answer(void)
{
	struct pair p;
	struct rt_buf m = {0};
	char got[65];

	pair_init(&p, key, key, 2, 3);
	CHECK_EQ(rt_wire_auth(&m), 0);
	CHECK_EQ(rt_wire_tag(&p.snd, &m, 0), 0);
	CHECK_EQ(m.len, RT_WIRE_HDR + RT_WIRE_TAG);
	hex(m.p + RT_WIRE_HDR, RT_WIRE_TAG, got);
	CHECK(!strcmp(got, "e13e4a830a6f11fdf0d1057782e4cdb77a62731fdae6f7bd4306e6d8e7898cca"),
	      "the AUTH tag is %s", got);
	CHECK(takes(&p.srv, &m), "the server does not take the sender's AUTH");
	m.len = 0;
	CHECK_EQ(rt_wire_u64(&m, RT_W_ACK, 1234), 0);
	CHECK_EQ(rt_wire_tag(&p.srv, &m, 0), 0);
	hex(m.p + m.len - RT_WIRE_TAG, RT_WIRE_TAG, got);
	CHECK(!strcmp(got, "43b5a2f0c9e178b37b8f5b1d17ae3a2b9d2192ffbe83c625b1fb431299213803"),
	      "the ACK tag is %s", got);
	CHECK(takes(&p.snd, &m), "the sender does not take the server's ACK");
	pair_free(&p);
	rt_buf_free(&m);
	printf("ok - tags are the documented HKDF/HMAC-SHA256 construction (known answers)\n");
}

static void both_ways(void)
{
	struct pair p;
	struct rt_buf m = {0};

	pair_init(&p, key, key, 7, 8);
	for (int i = 0; i < 1000; i++) {
		frame(i % 3 ? &p.snd : &p.srv, &m, (uint64_t)i + 1, (uint64_t)i + 5);
		CHECK(takes(i % 3 ? &p.srv : &p.snd, &m), "frame %d not taken", i);
	}
	CHECK(p.snd.sent + p.snd.received == 1000 && p.srv.sent == p.snd.received, "counters");
	pair_free(&p);
	rt_buf_free(&m);
	printf("ok - 1000 frames both ways, each taken once in order\n");
}

static void bit_flips(void)
{
	struct pair p;
	struct rt_buf m = {0}, x = {0};
	size_t flips = 0;

	pair_init(&p, key, key, 4, 5);
	frame(&p.snd, &m, 10, 20);
	for (size_t i = 0; i < m.len * 8; i++) {
		x.len = 0;
		rt_buf_put(&x, m.p, m.len);
		x.p[i / 8] ^= (uint8_t)(1u << (i % 8));
		CHECK(!takes(&p.srv, &x), "a flip of bit %zu (byte %zu) was taken", i % 8, i / 8);
		flips++;
	}
	CHECK_EQ(p.srv.received, 0);
	CHECK(takes(&p.srv, &m), "the frame itself, after all that");
	pair_free(&p);
	rt_buf_free(&m);
	rt_buf_free(&x);
	printf("ok - each of %zu single-bit changes (header, payload, tag) refused; the counter "
	       "did not move\n",
	       flips);
}

static void order(void)
{
	struct pair p, other;
	struct rt_buf f[4] = {{0}}, m = {0};
	const uint8_t wrong[] = "another-secret-of-the-same-len";

	pair_init(&p, key, key, 1, 9);
	for (int i = 0; i < 4; i++)
		frame(&p.snd, &f[i], (uint64_t)i + 1, (uint64_t)i + 1);
	CHECK(takes(&p.srv, &f[0]), "frame 0");
	CHECK(!takes(&p.srv, &f[0]), "frame 0 replayed was taken");
	CHECK(!takes(&p.srv, &f[2]), "frame 2 in the place of frame 1 (1 dropped) was taken");
	CHECK(takes(&p.srv, &f[1]), "frame 1, in its place");
	CHECK(!takes(&p.srv, &f[3]), "frames 2 and 3 swapped were taken");
	CHECK(takes(&p.srv, &f[2]) && takes(&p.srv, &f[3]), "in order, after the refusals");
	/* Cut short, its length changed to match (the sum made good). */
	frame(&p.snd, &m, 100, 200);
	{
		uint32_t len = 8;
		struct rt_buf cut = {0};
		rt_buf_put(&cut, m.p, RT_WIRE_HDR + 8);
		memcpy(cut.p + 8, &len, 4);
		{
			uint32_t sum = rt_wire_sum(cut.p + RT_WIRE_HDR, 8);
			memcpy(cut.p + 12, &sum, 4);
		}
		rt_buf_put(&cut, m.p + m.len - RT_WIRE_TAG, RT_WIRE_TAG);
		CHECK(!takes(&p.srv, &cut), "a frame cut short was taken");
		rt_buf_free(&cut);
	}
	/* Reflected: the sender's own frame sent back to it. */
	CHECK(!takes(&p.snd, &m), "a frame reflected to its sender was taken");
	/* Without its tag (flag cleared, tag dropped). */
	{
		struct rt_buf bare = {0};
		rt_buf_put(&bare, m.p, m.len - RT_WIRE_TAG);
		bare.p[6] &= (uint8_t)~RT_WF_TAG;
		CHECK(!takes(&p.srv, &bare), "an untagged frame was taken by a keyed session");
		rt_buf_free(&bare);
	}
	CHECK(takes(&p.srv, &m), "the frame itself");
	/* Another connection: other nonces, other keys. */
	pair_init(&other, key, key, 1, 10);
	frame(&other.snd, &m, 5, 5);
	CHECK(!takes(&p.srv, &m), "a frame of another connection was taken");
	pair_free(&other);
	/* Another key. */
	pair_init(&other, wrong, key, 1, 9);
	frame(&other.snd, &m, 1, 1);
	CHECK(!takes(&other.srv, &m), "a frame tagged with another key was taken");
	pair_free(&other);
	/* Keyless: no tag goes. */
	pair_init(&other, NULL, NULL, 1, 9);
	frame(&other.snd, &m, 1, 1);
	CHECK(m.len == RT_WIRE_HDR + 16 && takes(&other.srv, &m), "keyless frame");
	frame(&p.snd, &m, 1, 1);
	CHECK(!takes(&other.srv, &m), "a keyless session took a tagged frame");
	pair_free(&other);
	for (int i = 0; i < 4; i++)
		rt_buf_free(&f[i]);
	rt_buf_free(&m);
	pair_free(&p);
	printf("ok - replayed, dropped, swapped, cut, reflected, untagged, foreign and other-key "
	       "frames refused\n");
}

static void host_names(void)
{
	static const char *const good[] = {"web01", "a", "db-2.eu-west.example", "Host_9", "0", "a.",
					   "x-"};
	static const char *const bad[] = {"", ".", "..", ".hidden", "-rf", "a b", "web~01", "a/b",
					  "t\xc3\xa9st", "tab\t", "x;y", "a:b", "a\\b"};
	char long_ok[256], long_bad[257];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK(rt_wire_host_ok(good[i]), "'%s' refused", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(!rt_wire_host_ok(bad[i]), "'%s' taken", bad[i]);
	memset(long_ok, 'a', 255);
	long_ok[255] = '\0';
	memset(long_bad, 'a', 256);
	long_bad[256] = '\0';
	CHECK(rt_wire_host_ok(long_ok) && !rt_wire_host_ok(long_bad), "255 / 256 bytes");
	printf("ok - host names: %zu taken, %zu refused, 255 bytes taken, 256 refused\n",
	       sizeof(good) / sizeof(good[0]), sizeof(bad) / sizeof(bad[0]));
}

int main(void)
{
	known_answer();
	both_ways();
	bit_flips();
	order();
	host_names();
	return 0;
}
