/* SPDX-License-Identifier: MIT */
/*
 * fs_lines - fs/line.c renders exactly what rt_render() renders: blocks of
 * random records (control bytes, backslashes, valid and invalid UTF-8, empty
 * and 20 KB messages, attributes, trace and span ids or not, any pid and
 * tid, times over several hours and far away, sequence numbers crossing a
 * power of ten and near 2^64) built by the spooler's block builder, written
 * to a segment, read back and decoded; every filter (service, classes, an
 * hour range, a first sequence number) against the filtered rt_render()
 * lines; and a wrong length is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../helpers.h"
#include "line.h"
#include "rtseg.h"

static uint64_t rng = 0x243f6a8885a308d3ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Random bytes of every kind rendering cares about. */
static size_t random_text(char *out, size_t max)
{
	static const char *const pieces[] = {"\\", "\n", "\t", "\r", "\x01", "\x7f", "\xff",
					     "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
					     "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82",
					     " ", "=", "plain words "};
	size_t n = 0, want = (size_t)(rnd() % 12 == 0 ? rnd() % max : rnd() % 200);

	if (want > max - 8)
		want = max - 8;
	while (n < want) {
		uint64_t r = rnd() % 10;
		if (r < 6) {
			out[n++] = (char)(' ' + rnd() % 95);
		} else {
			const char *p = pieces[rnd() % (sizeof(pieces) / sizeof(pieces[0]))];
			size_t l = strlen(p);
			if (n + l > want)
				break;
			memcpy(out + n, p, l);
			n += l;
		}
	}
	return n;
}

struct built {
	struct rt_buf seg;
	uint32_t nrec;
};

/* One block of @n random records starting at @first_seq, as a segment. */
static void build(uint64_t first_seq, uint32_t n, const char *host, struct built *out)
{
	static const char *const svcs[] = {"api", "auth", "billing-service", "x", "ringtail"};
	struct rt_seg_hdrinfo h;
	struct rt_bb *bb;
	uint64_t base = 1795000000ull * 1000000000ull;

	memset(out, 0, sizeof(*out));
	memset(&h, 0, sizeof(h));
	snprintf(h.host, sizeof(h.host), "%s", host);
	h.first_seq = first_seq;
	h.render_version = RT_RENDER_VERSION;
	CHECK_EQ(rt_seg_header_frame(&out->seg, &h, NULL, 0), 0);
	CHECK_EQ(rt_bb_new(host, &bb), 0);
	rt_bb_reset(bb, first_seq);
	for (uint32_t k = 0; k < n; k++) {
		static char msg[24000], attrs[4096];
		uint8_t trace[16], span[8];
		struct rt_rec r;
		size_t al = 0;

		memset(&r, 0, sizeof(r));
		r.time_ns = rnd() % 50 == 0 ? rnd() % (1ull << 62) : base + rnd() % (5 * 3600ull * 1000000000);
		r.pid = (uint32_t)(rnd() % 4 == 0 ? rnd() : rnd() % 5);
		r.tid = (uint32_t)(rnd() % 4 == 0 ? UINT32_MAX : rnd() % 3);
		r.severity = (uint8_t)(1 + rnd() % 24);
		r.service = svcs[rnd() % 5];
		r.service_len = strlen(r.service);
		for (int i = 0; i < 16; i++)
			trace[i] = (uint8_t)rnd();
		for (int i = 0; i < 8; i++)
			span[i] = (uint8_t)rnd();
		r.trace_id = rnd() % 2 ? trace : NULL;
		r.span_id = rnd() % 3 ? span : NULL;
		r.msg = msg;
		r.msg_len = random_text(msg, sizeof(msg));
		for (int a = (int)(rnd() % 4); a > 0 && al < sizeof(attrs) - 600; a--) {
			char key[255], val[300];
			memset(key, 'k', sizeof(key));
			size_t kl = 1 + random_text(key, sizeof(key) - 1) % 40, vl = random_text(val, 300);
			uint16_t v16 = (uint16_t)vl;
			attrs[al++] = (char)kl;
			memcpy(attrs + al, key, kl);
			al += kl;
			memcpy(attrs + al, &v16, 2);
			al += 2;
			memcpy(attrs + al, val, vl);
			al += vl;
		}
		r.attrs = (const uint8_t *)attrs;
		r.attrs_len = al;
		CHECK_EQ(rt_bb_add(bb, &r), 0);
	}
	CHECK_EQ(rt_bb_seal(bb, &out->seg, out->seg.len, 0, 0, NULL, 0), 0);
	rt_bb_free(bb);
	out->nrec = n;
}

static int check_filter(const struct rt_block *blk, uint64_t first_seq, const char *host,
			const int32_t *map, const struct rtfs_filter *f)
{
	struct rt_buf want = {0};
	size_t hl = strlen(host);
	char *got;
	int err;

	for (uint32_t k = 0; k < blk->nrec; k++) {
		struct rt_rec r;
		size_t n;
		if (!rtfs_filter_rec(f, map[blk->svc[k]], rt_sev_class(blk->sev[k]), blk->time[k],
				     first_seq + k))
			continue;
		rt_block_rec(blk, k, &r);
		n = rt_render_len(&r, first_seq + k, hl);
		CHECK_EQ(rt_buf_reserve(&want, n), 0);
		CHECK_EQ(rt_render(&r, first_seq + k, host, hl, (char *)want.p + want.len), n);
		want.len += n;
	}
	got = malloc(want.len + 1);
	CHECK(got != NULL, "malloc");
	err = rtfs_lines(blk, first_seq, host, hl, map, f, got, want.len);
	CHECK(err == 0, "rtfs_lines: %d", err);
	if (memcmp(got, want.p, want.len)) {
		size_t i = 0;
		while (got[i] == (char)want.p[i])
			i++;
		CHECK(0, "differs at %zu of %zu:\n got  %.100s\n want %.100s", i, want.len,
		      got + (i > 30 ? i - 30 : 0), (char *)want.p + (i > 30 ? i - 30 : 0));
	}
	/* A wrong length is refused, never overrun. */
	if (want.len > 1)
		CHECK_EQ(rtfs_lines(blk, first_seq, host, hl, map, f, got, want.len - 1), -EIO);
	CHECK_EQ(rtfs_lines(blk, first_seq, host, hl, map, f, got, want.len + 1), -EIO);
	free(got);
	rt_buf_free(&want);
	return 0;
}

int main(void)
{
	static const uint64_t firsts[] = {1, 9999990, 99999999999999990ull, 18446744073709500000ull};
	static const char long_host[] = "a-very-long-host-name.with.many.labels.example.internal."
					"datacenter-7.region-north.example.com";
	static const char *const hosts[] = {"web01", "h", long_host};
	char path[] = "/tmp/rt-test-fs-lines-XXXXXX";
	struct rt_buf body = {0};
	struct rt_block blk;
	int fd, tested = 0;

	memset(&blk, 0, sizeof(blk));
	fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp");
	unlink(path);
	for (int round = 0; round < 24; round++) {
		uint64_t first = firsts[round % 4];
		const char *host = hosts[round % 3];
		struct built b;
		struct rt_seg *s;
		int32_t map[64];

		build(first, 200 + (uint32_t)(rnd() % 1500), host, &b);
		CHECK_EQ(ftruncate(fd, 0), 0);
		CHECK_EQ(pwrite(fd, b.seg.p, b.seg.len, 0), (ssize_t)b.seg.len);
		CHECK_EQ(rt_seg_open_fd(fd, 0, 0, &s), 0);
		CHECK_EQ(s->nblocks, 1);
		CHECK_EQ(rt_seg_read_body(s, 0, &body), 0);
		CHECK_EQ(rt_block_decode(body.p, body.len, first, b.nrec, &blk), 0);
		for (uint32_t i = 0; i < blk.nsvc; i++)
			map[i] = (int32_t)i * 3 + 1; /* any ids will do */
		{
			struct rtfs_filter f;
			memset(&f, 0, sizeof(f));
			f.hid = -1;
			f.sid = -1;
			f.sevmask = RTFS_SEV_ALL;
			tested += !check_filter(&blk, first, host, map, &f);
			f.sid = map[blk.svc[0]];
			tested += !check_filter(&blk, first, host, map, &f);
			f.sid = -1;
			f.sevmask = RTFS_SEV_ERRORS;
			tested += !check_filter(&blk, first, host, map, &f);
			f.sevmask = 1u << (rnd() % 6);
			f.sid = map[blk.svc[blk.nrec / 2]];
			tested += !check_filter(&blk, first, host, map, &f);
			f.sevmask = RTFS_SEV_ALL;
			f.sid = -1;
			f.h0 = (uint32_t)(blk.time[0] / RTFS_HOUR_NS);
			f.h1 = f.h0 + 1;
			tested += !check_filter(&blk, first, host, map, &f);
			f.h0 = f.h1 = 0;
			f.since = first + blk.nrec / 3;
			tested += !check_filter(&blk, first, host, map, &f);
		}
		rt_seg_close(s);
		rt_buf_free(&b.seg);
	}
	rt_block_free(&blk);
	rt_buf_free(&body);
	close(fd);
	printf("ok - %d blocks x filters: fs/line.c == rt_render(), wrong lengths refused\n",
	       tested);
	return 0;
}
