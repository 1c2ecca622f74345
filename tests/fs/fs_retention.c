/* SPDX-License-Identifier: MIT */
/*
 * fs_retention - retention frees disk while the spool is mounted: once
 * ringtaild removes a segment, ringtailfs closes it within seconds (it kept
 * removed segments open: 6.5 MB held for a 3.1 MB spool); a read of a
 * removed range says ENODATA, the rest of the file stays readable; /stats
 * no longer counts the removed records; /tail/all goes on following.
 *
 *   fs_retention RINGTAILD RINGTAILFS RINGTAIL
 */
#include "fs_helpers.h"

/* Bytes of deleted files ringtailfs holds open; their count in *@n. */
static uint64_t held_deleted(pid_t pid, int *n)
{
	char dir[64], path[320], target[512];
	uint64_t bytes = 0;
	DIR *d;
	struct dirent *e;

	*n = 0;
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	CHECK(d != NULL, "%s", dir);
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		ssize_t k;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		k = readlink(path, target, sizeof(target) - 1);
		if (k <= 0)
			continue;
		target[k] = '\0';
		if (!strstr(target, " (deleted)") || !strstr(target, T.spool))
			continue;
		if (stat(path, &st) == 0)
			bytes += (uint64_t)st.st_size;
		(*n)++;
	}
	closedir(d);
	return bytes;
}

static void write_batch(int from, int count)
{
	char msg[256];

	static uint64_t seed = 88172645463325252ull;

	for (int i = from; i < from + count; i++) {
		int n = snprintf(msg, sizeof(msg), "record %d ", i), err;
		/* Hex noise: LZ4 must not shrink the segments away. */
		for (int k = n; k < 200; k++) {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			msg[k] = "0123456789abcdef"[seed & 15];
		}
		while ((err = rt_write(RT_INFO, msg, 200)) == -ENOBUFS)
			t_pause();
		CHECK_EQ(err, 0);
	}
}

static uint64_t stats_value(const char *key)
{
	struct t_text st = t_read_file(t_path("stats"));
	char pat[64];
	const char *p;
	uint64_t v;

	snprintf(pat, sizeof(pat), "\n%s ", key);
	p = strstr(st.p, pat);
	v = p ? strtoull(p + strlen(pat), NULL, 10) : UINT64_MAX;
	t_text_free(&st);
	return v;
}

/* Is segment 1 (the one with record #1) gone from the spool? */
static int first_segment_gone(void)
{
	DIR *d = opendir(T.spool);
	struct dirent *e;
	int gone = 1;

	CHECK(d != NULL, "spool");
	while ((e = readdir(d)) != NULL)
		if (!strncmp(e->d_name, "00000000000000000001", 20))
			gone = 0;
	closedir(d);
	return gone;
}

int main(int argc, char **argv)
{
	static const char *const extra[] = {"--segment-size", "64K", "--retain-bytes", "256K",
					    NULL};
	uint64_t deadline, held_max = 0, t_removed, dump_lines;
	struct t_text dump, tail_got = {0};
	char buf[4096];
	int nheld = 0, fd, tfd;
	ssize_t r;

	t_setup("retention", argc, argv);
	t_start_daemon(extra);
	rt_set_service("keep");
	t_mount(NULL);
	write_batch(0, 500);
	t_wait_lines(t_path("all"), 500, 20);
	CHECK(!first_segment_gone(), "segment 1 gone already");
	/* A follower from before the removal. */
	tfd = open(t_path("tail/all"), O_RDONLY | O_NONBLOCK);
	CHECK(tfd >= 0, "open tail/all");

	/* Enough to make ringtaild remove the first segments. */
	write_batch(500, 6000);
	deadline = t_now_ns() + 30ull * 1000000000;
	while (!first_segment_gone()) {
		uint64_t h = held_deleted(T.fs, &nheld);
		held_max = h > held_max ? h : held_max;
		CHECK(t_now_ns() < deadline, "retention removed nothing");
		t_pause();
	}
	t_removed = t_now_ns();
	held_max = held_deleted(T.fs, &nheld) > held_max ? held_deleted(T.fs, &nheld) : held_max;
	/* Released within seconds. */
	deadline = t_removed + 5ull * 1000000000;
	for (;;) {
		uint64_t h = held_deleted(T.fs, &nheld);
		held_max = h > held_max ? h : held_max;
		if (nheld == 0)
			break;
		CHECK(t_now_ns() < deadline, "ringtailfs still holds %d removed segments (%llu bytes)",
		      nheld, (unsigned long long)h);
		t_pause();
	}
	printf("ok - removed segments released %.2f s after the removal (held at most %llu bytes "
	       "of deleted files, now 0)\n",
	       (double)(t_now_ns() - t_removed) / 1e9, (unsigned long long)held_max);

	/* /stats counts what the spool holds. */
	deadline = t_now_ns() + 10ull * 1000000000;
	for (;;) {
		/* (The dump again each time: retention may remove more.) */
		char cmd[600];
		int st;
		snprintf(cmd, sizeof(cmd), "'%s' dump '%s' 2>/dev/null", T.ringtail, T.spool);
		dump = t_sh(cmd, &st);
		dump_lines = t_count_lines(&dump);
		t_text_free(&dump);
		/* (A dump fails when a segment goes while it reads: again.) */
		if (st == 0 && stats_value("records") == dump_lines)
			break;
		CHECK(t_now_ns() < deadline, "/stats records %llu, the spool holds %llu",
		      (unsigned long long)stats_value("records"), (unsigned long long)dump_lines);
		t_pause();
	}
	CHECK(stats_value("records_removed") > 0 && stats_value("records_removed") != UINT64_MAX,
	      "records_removed");
	CHECK_EQ(stats_value("damaged_blocks"), 0);
	printf("ok - /stats records %llu = what the spool holds; records_removed %llu; no damage\n",
	       (unsigned long long)dump_lines, (unsigned long long)stats_value("records_removed"));

	/* The removed range says so; the rest reads. */
	fd = open(t_path("all"), O_RDONLY);
	CHECK(fd >= 0, "open all");
	r = pread(fd, buf, sizeof(buf), 0);
	CHECK(r < 0 && errno == ENODATA, "read at 0 of /all: %zd (%s)", r,
	      r < 0 ? strerror(errno) : "data");
	{
		struct stat st;
		CHECK_EQ(fstat(fd, &st), 0);
		r = pread(fd, buf, 1000, st.st_size - 1000);
		CHECK_EQ(r, 1000);
		CHECK(buf[999] == '\n', "the end of /all");
	}
	close(fd);
	printf("ok - /all: ENODATA where the removed records were, the rest reads\n");

	/* The follower goes on. */
	write_batch(100000, 1);
	deadline = t_now_ns() + 10ull * 1000000000;
	t_text_add(&tail_got, "", 0);
	while (!strstr(tail_got.p, "record 100000 ")) {
		r = read(tfd, buf, sizeof(buf));
		if (r > 0)
			t_text_add(&tail_got, buf, (size_t)r);
		else
			CHECK(r < 0 && errno == EAGAIN, "read tail/all: %zd", r);
		CHECK(t_now_ns() < deadline, "/tail/all stopped after the removal");
		t_pause();
	}
	close(tfd);
	t_text_free(&tail_got);
	printf("ok - /tail/all opened before the removal follows after it\n");
	CHECK_EQ(t_unmount(), 0);
	return 0;
}
