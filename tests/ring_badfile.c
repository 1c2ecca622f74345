/* SPDX-License-Identifier: MIT */
/*
 * ring_badfile - attaching to a file that is not a usable ring fails with
 * its own error, in the writer (which keeps running) and in rt_ring_open(),
 * and never crashes: wrong magic, wrong version, unknown flags, truncated,
 * inconsistent sizes, a symlink, a directory, a FIFO, another user's file
 * open to everyone, and random garbage.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "helpers.h"
#include "ringtail.h"

static const char *good, *bad;

/* Write a copy of the good ring with @fn applied to its header. */
static void make_bad(void (*fn)(struct rt__ring_hdr *h, int fd))
{
	static char buf[4 << 20];
	int in = open(good, O_RDONLY), out;
	ssize_t n = read(in, buf, sizeof(buf));

	CHECK(n > 0, "read good ring");
	close(in);
	unlink(bad);
	out = open(bad, O_RDWR | O_CREAT | O_EXCL, 0660);
	CHECK(out >= 0, "create bad file");
	CHECK(write(out, buf, (size_t)n) == n, "write");
	if (fn)
		fn((struct rt__ring_hdr *)buf, out);
	close(out);
}

static void rewrite_header(int fd, const struct rt__ring_hdr *h)
{
	CHECK(pwrite(fd, h, sizeof(*h), 0) == (ssize_t)sizeof(*h), "pwrite");
}

static void bad_magic(struct rt__ring_hdr *h, int fd)
{
	struct rt__ring_hdr c = *h;
	memcpy(c.magic, "NOTARING", 8);
	rewrite_header(fd, &c);
}

static void bad_version(struct rt__ring_hdr *h, int fd)
{
	struct rt__ring_hdr c = *h;
	c.version = 99;
	rewrite_header(fd, &c);
}

static void bad_flags(struct rt__ring_hdr *h, int fd)
{
	struct rt__ring_hdr c = *h;
	c.flags_incompat |= 1ull << 40;
	rewrite_header(fd, &c);
}

static void bad_chunk(struct rt__ring_hdr *h, int fd)
{
	struct rt__ring_hdr c = *h;
	c.chunk_size += 8;
	rewrite_header(fd, &c);
}

static void bad_offsets(struct rt__ring_hdr *h, int fd)
{
	struct rt__ring_hdr c = *h;
	c.chunks_off = c.owners_off; /* chunks over the owner table */
	rewrite_header(fd, &c);
}

static void bad_count(struct rt__ring_hdr *h, int fd)
{
	struct rt__ring_hdr c = *h;
	c.nchunks *= 2; /* more chunks than the file holds */
	rewrite_header(fd, &c);
}

static void truncated(struct rt__ring_hdr *h, int fd)
{
	(void)h;
	CHECK(ftruncate(fd, 8192) == 0, "ftruncate");
}

static void tiny(struct rt__ring_hdr *h, int fd)
{
	(void)h;
	CHECK(ftruncate(fd, 100) == 0, "ftruncate");
}

static void empty(struct rt__ring_hdr *h, int fd)
{
	(void)h;
	CHECK(ftruncate(fd, 0) == 0, "ftruncate");
}

/* The writer, in a fresh process, gets @want from every call and goes on. */
static void expect_writer(const char *what, int want)
{
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		setenv(RT_RING_ENV, bad, 1);
		CHECK(rt_attach() == want, "%s: rt_attach gave %d, want %d", what, rt_attach(), want);
		for (int i = 0; i < 3; i++) {
			int r = rt_write(RT_ERROR, "x", 1);
			CHECK(r == want, "%s: rt_write gave %d (%s), want %d", what, r, rt_strerror(r),
			      want);
		}
		CHECK(rt_printf(RT_INFO, "%d", 1) == want, "%s: printf", what);
		CHECK_EQ(rt_dropped(), want ? 4 : 0);
		_exit(0);
	}
	st = t_wait(pid);
	CHECK(st == 0, "%s: writer process ended with status %d", what, st);
}

static void expect(const char *what, int want)
{
	struct rt_ring *r = NULL;
	int got = rt_ring_open(bad, RT_RING_RDONLY, &r);

	CHECK(got == want, "%s: rt_ring_open gave %d, want %d", what, got, want);
	rt_ring_close(r);
	expect_writer(what, want);
	printf("ok - %s: %s\n", what, rt_strerror(want));
}

static void check_case(const char *what, void (*fn)(struct rt__ring_hdr *, int), int want)
{
	make_bad(fn);
	expect(what, want);
}

int main(void)
{
	struct rt_ring_params p;
	char path[256];

	good = strdup(t_ring_path("good"));
	bad = strdup(t_ring_path("bad"));
	unlink(good);
	rt_ring_params_default(&p);
	p.size = 1u << 20;
	p.chunk_size = 4096;
	p.nslots = 16;
	CHECK_EQ(rt_ring_create(good, &p), 0);

	check_case("a good ring", NULL, 0);
	check_case("wrong magic", bad_magic, -EPROTO);
	check_case("wrong version", bad_version, -EPROTONOSUPPORT);
	check_case("unknown incompatible flag", bad_flags, -EPROTONOSUPPORT);
	check_case("chunk size not a multiple of 64", bad_chunk, -EBADMSG);
	check_case("overlapping areas", bad_offsets, -EBADMSG);
	check_case("more chunks than the file holds", bad_count, -EBADMSG);
	check_case("truncated file", truncated, -EBADMSG);
	check_case("shorter than a header", tiny, -EBADMSG);
	check_case("empty file", empty, -EBADMSG);

	/* A symlink to a good ring. */
	unlink(bad);
	CHECK(symlink(good, bad) == 0, "symlink");
	expect("symlink", -ELOOP);
	unlink(bad);

	/* A directory and a FIFO. */
	CHECK(mkdir(bad, 0700) == 0, "mkdir");
	expect("directory", -ENODEV);
	rmdir(bad);
	CHECK(mkfifo(bad, 0600) == 0, "mkfifo");
	expect("fifo", -ENODEV);
	unlink(bad);

	/* Another user's file that everybody may write: refused. */
	make_bad(NULL);
	if (geteuid() == 0) {
		CHECK(chown(bad, 65534, 65534) == 0, "chown");
		CHECK(chmod(bad, 0666) == 0, "chmod");
		expect("another user's world-writable file", -EPERM);
		CHECK(chmod(bad, 0660) == 0, "chmod");
		expect("another user's file, group only", 0);
	} else {
		printf("ok - another user's file # SKIP (needs root to chown)\n");
	}

	/* Garbage of every kind: an error, never a crash. */
	srandom(1);
	for (int i = 0; i < 200; i++) {
		struct rt__ring_hdr h;
		struct rt_ring *r = NULL;
		int fd, got;
		make_bad(NULL);
		fd = open(bad, O_RDWR);
		CHECK(pread(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h), "pread");
		/* Keep the magic and version half the time so the deeper checks
		 * get exercised. */
		for (size_t k = (i % 2) ? 12 : 0; k < 256; k++)
			if (random() % 8 == 0)
				((uint8_t *)&h)[k] = (uint8_t)random();
		rewrite_header(fd, &h);
		close(fd);
		got = rt_ring_open(bad, RT_RING_RDONLY, &r);
		if (got == 0) {
			struct rt_ring_stat st;
			rt_ring_stat(r, &st);
			rt_ring_close(r);
		}
		CHECK(got <= 0, "open");
	}
	printf("ok - 200 random headers: no crash\n");

	snprintf(path, sizeof(path), "%s", bad);
	unlink(path);
	unlink(good);
	return 0;
}
