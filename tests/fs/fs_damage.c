/* SPDX-License-Identifier: MIT */
/*
 * fs_damage - bytes flipped in the DATA frame of a closed segment: reads of
 * the damaged block's range of /all fail with EIO, reads of every other page
 * return exactly the dump's bytes; `cat` fails but the filesystem keeps
 * serving; /stats reports the damaged block (after the read, and at once
 * with -o scrub); nothing crashes and it unmounts cleanly.
 *
 *   fs_damage RINGTAILD RINGTAILFS RINGTAIL
 */
#include "fs_helpers.h"
#include "rtspool.h"

#define PAGE 4096

struct victim {
	char seg[32];
	uint64_t first, last; /* its records */
};

/* Flip bytes in the middle of the DATA frame of the largest block of a
 * closed segment that is neither the first nor the last. */
static struct victim corrupt(void)
{
	struct rt_spool *sp;
	struct rt_seg *s = NULL;
	struct victim v;
	uint64_t *seqs;
	uint32_t best = 0;
	int n, fd;

	CHECK_EQ(rt_spool_open(T.spool, NULL, 0, &sp), 0);
	n = rt_spool_list(sp, &seqs);
	CHECK(n >= 3, "only %d segments", n);
	for (int i = 1; i < n - 1; i++) {
		struct rt_seg *c;
		char name[32];
		uint32_t big = 0;
		rt_seg_name(name, seqs[i]);
		CHECK_EQ(rt_seg_open(sp->dirfd, name, 0, &c), 0);
		CHECK(c->closed && c->nblocks >= 1, "segment %s: closed %d, %u blocks", name,
		      c->closed, c->nblocks);
		for (uint32_t k = 0; k < c->nblocks; k++)
			if (c->blocks[k].nrec > c->blocks[big].nrec)
				big = k;
		if (!s || c->blocks[big].nrec > s->blocks[best].nrec) {
			rt_seg_close(s);
			s = c;
			best = big;
			memcpy(v.seg, name, sizeof(name));
		} else {
			rt_seg_close(c);
		}
	}
	{
		const struct rt_seg_block *b = &s->blocks[best];
		uint8_t junk[16];
		v.first = b->first_seq;
		v.last = b->first_seq + b->nrec - 1;
		fd = openat(sp->dirfd, v.seg, O_RDWR);
		CHECK(fd >= 0, "open %s", v.seg);
		CHECK_EQ(pread(fd, junk, sizeof(junk), (off_t)(b->data_off + b->data_len / 2)), 16);
		for (int i = 0; i < 16; i++)
			junk[i] ^= 0x5a;
		CHECK_EQ(pwrite(fd, junk, sizeof(junk), (off_t)(b->data_off + b->data_len / 2)), 16);
		close(fd);
	}
	rt_seg_close(s);
	free(seqs);
	rt_spool_close(sp);
	return v;
}

int main(int argc, char **argv)
{
	struct t_text dump, st;
	struct victim v;
	uint64_t a = 0, b = 0, off = 0;
	char cmd[600], buf[PAGE];
	int fd, status, eio = 0, good = 0;

	t_setup("damage", argc, argv);
	{
		static const char *const extra[] = {"--segment-size", "32K", "--block-size", "8K",
						    NULL};
		t_start_daemon(extra);
	}
	/* Text that does not compress away, in many small blocks. */
	{
		uint64_t x = 88172645463325252ull;
		char msg[200];
		for (int i = 0; i < 3000; i++) {
			for (int k = 0; k < 120; k++) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				msg[k] = (char)('a' + x % 26);
			}
			CHECK_EQ(rt_write(RT_INFO, msg, 120), 0);
		}
	}
	/* Everything durable: the filesystem of a scratch mount shows it. */
	t_mount(NULL);
	{
		struct t_text all;
		uint64_t deadline = t_now_ns() + 20ull * 1000000000;
		for (;;) {
			all = t_read_file(t_path("all"));
			if (t_count_lines(&all) >= 3000)
				break;
			t_text_free(&all);
			CHECK(t_now_ns() < deadline, "records not durable");
			t_pause();
		}
		t_text_free(&all);
	}
	CHECK_EQ(t_unmount(), 0);
	CHECK_EQ(t_stop_daemon(), 0);
	dump = t_dump(T.spool);
	v = corrupt();

	/* The damaged block's records are bytes [a, b) of /all. */
	{
		const char *p = dump.p, *end = dump.p + dump.len;
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			uint64_t seq = t_line_seq(p);
			if (seq == v.first)
				a = (uint64_t)(p - dump.p);
			if (seq == v.last)
				b = (uint64_t)(nl + 1 - dump.p);
			p = nl + 1;
		}
	}
	CHECK(b > a && b - a > 2 * PAGE, "damaged range [%llu, %llu)", (unsigned long long)a,
	      (unsigned long long)b);
	snprintf(cmd, sizeof(cmd), "'%s' verify '%s' >/dev/null 2>&1", T.ringtail, T.spool);
	CHECK(system(cmd) != 0, "ringtail verify did not notice the damage");

	t_mount(NULL);
	{
		struct stat sb;
		CHECK(stat(t_path("all"), &sb) == 0 && (size_t)sb.st_size == dump.len,
		      "size %lld, dump %zu", (long long)sb.st_size, dump.len);
	}
	/* Page by page: EIO inside the damaged range, the dump's bytes
	 * outside it (pages straddling its ends may go either way). */
	fd = open(t_path("all"), O_RDONLY);
	CHECK(fd >= 0, "open");
	for (off = 0; off < dump.len; off += PAGE) {
		size_t want = dump.len - off < PAGE ? dump.len - off : PAGE;
		ssize_t r = pread(fd, buf, PAGE, (off_t)off);
		int inside = off >= a && off + PAGE <= b;
		int outside = off + PAGE <= a || off >= b;
		if (inside) {
			CHECK(r < 0 && errno == EIO, "page at %llu (inside): %zd %s",
			      (unsigned long long)off, r, strerror(errno));
			eio++;
		} else if (outside) {
			CHECK(r == (ssize_t)want && !memcmp(buf, dump.p + off, want),
			      "page at %llu (outside [%llu,%llu)): %zd %s", (unsigned long long)off,
			      (unsigned long long)a, (unsigned long long)b, r,
			      r < 0 ? strerror(errno) : "");
			good++;
		}
	}
	close(fd);
	CHECK(eio > 0 && good > 0, "eio %d good %d", eio, good);
	printf("ok - %d pages in the damaged block's range: EIO; %d other pages: exact\n", eio,
	       good);

	snprintf(cmd, sizeof(cmd), "cat '%s' >/dev/null 2>&1", t_path("all"));
	status = system(cmd);
	CHECK(status != 0, "cat of the whole file succeeded");
	st = t_read_file(t_path("stats"));
	CHECK(strstr(st.p, "\ndamaged_blocks 1\n") && strstr(st.p, v.seg),
	      "stats after the read:\n%s", st.p);
	t_text_free(&st);
	/* Still serving. */
	{
		fd = open(t_path("all"), O_RDONLY);
		CHECK(fd >= 0 && pread(fd, buf, 100, 0) == 100 && !memcmp(buf, dump.p, 100),
		      "first bytes after the damage");
		close(fd);
	}
	CHECK_EQ(t_unmount(), 0);
	printf("ok - cat fails, /stats names %s, the filesystem keeps serving\n", v.seg);

	/* -o scrub: found without reading. */
	t_mount("scrub");
	{
		uint64_t deadline = t_now_ns() + 20ull * 1000000000;
		for (;;) {
			st = t_read_file(t_path("stats"));
			if (strstr(st.p, "\ndamaged_blocks 1\n"))
				break;
			t_text_free(&st);
			CHECK(t_now_ns() < deadline, "scrub did not find the damage");
			t_pause();
		}
		CHECK(strstr(st.p, v.seg), "stats:\n%s", st.p);
		t_text_free(&st);
	}
	CHECK_EQ(t_unmount(), 0);
	printf("ok - with -o scrub /stats reports it before any read\n");
	t_text_free(&dump);
	return 0;
}
