/* SPDX-License-Identifier: MIT */
/*
 * fs_basic - ringtailfs over a spool the real ringtaild wrote: every file
 * holds exactly what `ringtail dump` says it should (/all, /by-service,
 * /errors, /by-severity, /by-day and /by-hour globs, /since), the real tools
 * (cat, grep -c, head, tail -n, tail -c, wc -l, wc -c, dd at an offset)
 * give the same answers on the mount as on a plain copy, sizes and inode
 * numbers are right and stable, the mount is read-only, /stats adds up, and
 * it unmounts cleanly.
 *
 *   fs_basic RINGTAILD RINGTAILFS RINGTAIL
 */
#include "fs_helpers.h"

static int sev_of(const char *line)
{
	static const char *const names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"};
	const char *p = strstr(line, " #");

	if (!p || !(p = strchr(p + 1, ' ')))
		return -1;
	for (int c = 0; c < 6; c++)
		if (!strncmp(p + 1, names[c], strlen(names[c])) && p[1 + strlen(names[c])] == ' ')
			return c;
	return -1;
}

static int keep_errors(const char *line, void *arg)
{
	const char *svc = arg;
	return sev_of(line) >= 4 && (!svc || t_line_service(line, svc));
}

static int keep_class(const char *line, void *arg)
{
	return sev_of(line) == *(int *)arg;
}

struct since {
	uint64_t seq;
	const char *svc;
};

static int keep_since(const char *line, void *arg)
{
	const struct since *s = arg;
	return t_line_seq(line) >= s->seq && t_line_service(line, s->svc);
}

/* Lines of @all grouped by the first @n characters (the time: an hour or a
 * day), groups in ascending order, lines in their order: what a glob over
 * /by-hour or /by-day reads. */
static struct t_text by_slice(const struct t_text *all, size_t n)
{
	struct t_text out = {0}, seen = {0};

	t_text_add(&out, "", 0);
	t_text_add(&seen, "", 0);
	for (;;) {
		const char *best = NULL, *p = all->p, *end = all->p + all->len;
		/* The smallest slice not yet emitted. */
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			char key[32];
			snprintf(key, sizeof(key), "%.*s|", (int)n, p);
			if (!strstr(seen.p, key) && (!best || strncmp(p, best, n) < 0))
				best = p;
			p = nl + 1;
		}
		if (!best)
			break;
		{
			char key[32];
			snprintf(key, sizeof(key), "%.*s|", (int)n, best);
			t_text_add(&seen, key, strlen(key));
			for (p = all->p; p < end;) {
				const char *nl = memchr(p, '\n', (size_t)(end - p));
				if (!strncmp(p, key, n))
					t_text_add(&out, p, (size_t)(nl - p) + 1);
				p = nl + 1;
			}
		}
	}
	t_text_free(&seen);
	return out;
}

static void write_file(const char *path, const struct t_text *t)
{
	FILE *f = fopen(path, "w");

	CHECK(f && fwrite(t->p, 1, t->len, f) == t->len, "write %s", path);
	fclose(f);
}

/* Run @tool_args on the mounted file and on the plain copy: same output. */
static void same_tool(const char *tool_args, const char *mounted, const char *copy)
{
	char a[1024], b[1024];
	struct t_text x, y;
	int s1, s2;

	snprintf(a, sizeof(a), "%s '%s' 2>&1", tool_args, mounted);
	snprintf(b, sizeof(b), "%s '%s' 2>&1", tool_args, copy);
	x = t_sh(a, &s1);
	y = t_sh(b, &s2);
	/* wc prints the file name: compare only the numbers. */
	if (!strncmp(tool_args, "wc", 2)) {
		char *sp = strrchr(x.p, ' ');
		if (sp)
			*sp = '\0', x.len = strlen(x.p);
		sp = strrchr(y.p, ' ');
		if (sp)
			*sp = '\0', y.len = strlen(y.p);
	}
	CHECK(s1 == s2, "%s: status %d on the mount, %d on a copy", tool_args, s1, s2);
	t_same(&x, &y, tool_args);
	t_text_free(&x);
	t_text_free(&y);
}

int main(int argc, char **argv)
{
	static const char *const svcs[] = {"api", "auth", "billing"};
	struct t_text dump, want, got;
	char copy[300], path[600];
	struct stat st, st2;
	struct rt_opts o;
	struct rt_attr at[2] = {{"user", "alice smith"}, {"path", "/a=b\tc"}};
	uint8_t trace[16];
	size_t per[3] = {0, 0, 0};
	int status, fd;

	t_setup("basic", argc, argv);
	t_start_daemon(NULL);

	/* Known records: three services, every class, ids, attributes, and
	 * messages that need escaping. */
	memset(&o, 0, sizeof(o));
	for (int i = 0; i < 600; i++) {
		int s = i % 3, sev = (int[]){RT_TRACE, RT_DEBUG, RT_INFO, RT_INFO, RT_WARN, RT_ERROR,
					     RT_FATAL, RT_INFO}[i % 8];
		char msg[128];
		int n = snprintf(msg, sizeof(msg), "request %d done in %d ms", i, (i * 37) % 1000);
		for (int k = 0; k < 16; k++)
			trace[k] = (uint8_t)(i / 3 * 7 + k);
		o.service = svcs[s];
		o.trace_id = i % 5 ? trace : NULL;
		o.attrs = i % 7 == 0 ? at : NULL;
		o.nattrs = i % 7 == 0 ? 2 : 0;
		CHECK_EQ(rt_writex(sev, &o, msg, (size_t)n), 0);
		per[s]++;
	}
	{
		static const char *const odd[] = {
			"line one\nline two", "tab\there", "back\\slash", "ctl\x01\x7f",
			"bad utf8 \xff\xfe here", "h\xc3\xa9llo \xe2\x82\xac", "", "trailing space ",
		};
		char big[10000];
		memset(&o, 0, sizeof(o));
		o.service = "api";
		for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
			CHECK_EQ(rt_writex(RT_ERROR, &o, odd[i], strlen(odd[i])), 0);
			per[0]++;
		}
		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (char)('a' + i % 26);
		CHECK_EQ(rt_writex(RT_INFO, &o, big, sizeof(big)), 0);
		per[0]++;
	}

	t_mount(NULL);
	for (int s = 0; s < 3; s++) {
		snprintf(path, sizeof(path), "by-service/%s", svcs[s]);
		t_wait_lines(t_path(path), per[s], 10);
	}
	dump = t_dump(T.spool);
	printf("ok - %zu records durable and visible\n", t_count_lines(&dump));

	/* /all is the dump; /by-service/NAME its lines of NAME. */
	got = t_read_file(t_path("all"));
	t_same(&got, &dump, "/all");
	t_text_free(&got);
	for (int s = 0; s < 3; s++) {
		snprintf(path, sizeof(path), "by-service/%s", svcs[s]);
		want = t_filter(&dump, t_keep_service, (void *)svcs[s]);
		CHECK_EQ(t_count_lines(&want), per[s]);
		got = t_read_file(t_path(path));
		t_same(&got, &want, path);
		CHECK(stat(t_path(path), &st) == 0 && (size_t)st.st_size == want.len,
		      "%s: st_size %lld, want %zu", path, (long long)st.st_size, want.len);
		t_text_free(&got);
		t_text_free(&want);
	}
	CHECK(strstr(dump.p, " ERROR line one\\nline two\n") && strstr(dump.p, " tab\\there\n") &&
		      strstr(dump.p, " back\\\\slash\n") && strstr(dump.p, " ctl\\x01\\x7f\n") &&
		      strstr(dump.p, " bad utf8 \\xff\\xfe here\n") &&
		      strstr(dump.p, " h\xc3\xa9llo \xe2\x82\xac\n") &&
		      strstr(dump.p, " user=alice smith path=/a=b\\tc\n"),
	      "escaping in lines");
	printf("ok - /all and /by-service/NAME are the dump's lines, sizes exact\n");

	/* Errors only, one class, time slices (globs), since. */
	want = t_filter(&dump, keep_errors, NULL);
	got = t_read_file(t_path("errors/all"));
	t_same(&got, &want, "/errors/all");
	t_text_free(&got);
	t_text_free(&want);
	want = t_filter(&dump, keep_errors, "billing");
	got = t_read_file(t_path("errors/by-service/billing"));
	t_same(&got, &want, "/errors/by-service/billing");
	t_text_free(&got);
	t_text_free(&want);
	{
		int warn = 3;
		want = t_filter(&dump, keep_class, &warn);
		got = t_read_file(t_path("by-severity/WARN/all"));
		t_same(&got, &want, "/by-severity/WARN/all");
		t_text_free(&got);
		t_text_free(&want);
	}
	want = by_slice(&dump, 13); /* 2026-11-21T23 */
	snprintf(path, sizeof(path), "cat '%s'/by-hour/*/all", T.mnt);
	got = t_sh(path, &status);
	CHECK_EQ(status, 0);
	t_same(&got, &want, "cat by-hour/*/all");
	t_text_free(&got);
	t_text_free(&want);
	want = by_slice(&dump, 10); /* 2026-11-21 */
	snprintf(path, sizeof(path), "cat '%s'/by-day/2*/all", T.mnt);
	got = t_sh(path, &status);
	CHECK_EQ(status, 0);
	t_same(&got, &want, "cat by-day/2*/all");
	t_text_free(&got);
	t_text_free(&want);
	{
		/* The hour of the first record: its errors of billing. */
		char hour[14], rel[128];
		struct t_text hr;
		memcpy(hour, dump.p, 13);
		hour[13] = '\0';
		snprintf(rel, sizeof(rel), "by-hour/%s/errors/by-service/billing", hour);
		got = t_read_file(t_path(rel));
		want = t_filter(&dump, keep_errors, "billing");
		hr = by_slice(&want, 13);
		/* Only the lines of that hour. */
		{
			struct t_text only = {0};
			const char *p = hr.p, *end = hr.p + hr.len;
			t_text_add(&only, "", 0);
			while (p < end) {
				const char *nl = memchr(p, '\n', (size_t)(end - p));
				if (!strncmp(p, hour, 13))
					t_text_add(&only, p, (size_t)(nl - p) + 1);
				p = nl + 1;
			}
			t_same(&got, &only, rel);
			t_text_free(&only);
		}
		t_text_free(&hr);
		t_text_free(&got);
		t_text_free(&want);
	}
	{
		/* A consumer saw up to the 100th api line; it reads on. */
		struct t_text api = t_filter(&dump, t_keep_service, "api");
		const char *p = api.p;
		struct since arg;
		char rel[128];
		for (int i = 0; i < 99; i++)
			p = strchr(p, '\n') + 1;
		arg.seq = t_line_seq(p) + 1;
		arg.svc = "api";
		snprintf(rel, sizeof(rel), "since/%llu/by-service/api", (unsigned long long)arg.seq);
		got = t_read_file(t_path(rel));
		want = t_filter(&dump, keep_since, &arg);
		CHECK(want.len > 0 && want.len < api.len, "since: %zu of %zu", want.len, api.len);
		t_same(&got, &want, rel);
		t_text_free(&got);
		t_text_free(&want);
		t_text_free(&api);
	}
	printf("ok - errors/, by-severity/, by-hour/*, by-day/*, since/SEQ\n");

	/* The real tools, on the mount and on a copy. */
	snprintf(copy, sizeof(copy), "%s/copy.txt", T.dir);
	want = t_filter(&dump, t_keep_service, "api");
	write_file(copy, &want);
	{
		const char *m = t_path("by-service/api");
		static const char *const tools[] = {
			"cat",          "grep -c ERROR", "grep -c 'request 1'", "head -n 5",
			"tail -n 7",    "tail -n 1",     "tail -c 100",         "wc -l",
			"wc -c",        "sed -n 150p",   "md5sum <",
		};
		for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
			same_tool(tools[i], m, copy);
		/* Reads at offsets: the same bytes as sequentially. */
		for (size_t off = 0; off + 64 < want.len; off += want.len / 13 + 1) {
			char buf[64];
			fd = open(m, O_RDONLY);
			CHECK(fd >= 0, "open");
			CHECK_EQ(pread(fd, buf, sizeof(buf), (off_t)off), sizeof(buf));
			CHECK(!memcmp(buf, want.p + off, sizeof(buf)), "pread at %zu", off);
			close(fd);
		}
	}
	t_text_free(&want);
	printf("ok - cat, grep -c, head, tail -n, tail -c, wc -l, wc -c, sed, pread agree\n");

	/* Inode numbers: the same on every lookup, even after the kernel
	 * forgot the name (as root: drop the dentry cache). */
	CHECK(stat(t_path("by-service/api"), &st) == 0, "stat");
	if (geteuid() == 0) {
		int dc = open("/proc/sys/vm/drop_caches", O_WRONLY);
		if (dc >= 0) {
			CHECK(write(dc, "2", 1) == 1, "drop_caches");
			close(dc);
		}
	}
	CHECK(stat(t_path("by-service/api"), &st2) == 0, "stat");
	CHECK(st.st_ino == st2.st_ino && st.st_ino > 1, "inode %llu then %llu",
	      (unsigned long long)st.st_ino, (unsigned long long)st2.st_ino);
	CHECK(S_ISREG(st.st_mode) && !(st.st_mode & 0222), "mode %o", st.st_mode);
	printf("ok - inode numbers stable, files read-only\n");

	/* Read-only. */
	fd = open(t_path("by-service/api"), O_WRONLY);
	CHECK(fd < 0 && (errno == EROFS || errno == EACCES), "open for writing: %d %s", fd,
	      strerror(errno));
	CHECK(mkdir(t_path("by-service/x"), 0700) < 0 && (errno == EROFS || errno == EACCES),
	      "mkdir: %s", strerror(errno));
	CHECK(open(t_path("nothing-here"), O_RDONLY) < 0 && errno == ENOENT, "ENOENT");
	printf("ok - read-only, ENOENT for unknown names\n");

	/* Listings and /stats. */
	snprintf(path, sizeof(path), "ls '%s/by-service'", T.mnt);
	got = t_sh(path, &status);
	CHECK(status == 0 && strstr(got.p, "api\n") && strstr(got.p, "auth\n") &&
		      strstr(got.p, "billing\n"),
	      "ls by-service: %s", got.p);
	t_text_free(&got);
	got = t_read_file(t_path("stats"));
	{
		char line[128];
		snprintf(line, sizeof(line), "\nrecords %zu\n", t_count_lines(&dump));
		CHECK(strstr(got.p, line), "stats: no '%s' in\n%s", line + 1, got.p);
		snprintf(line, sizeof(line), "\nservice api records %zu ", per[0]);
		CHECK(strstr(got.p, line), "stats: no '%s' in\n%s", line + 1, got.p);
		CHECK(strstr(got.p, "\ndurable_seq ") && strstr(got.p, "\nhead_seq ") &&
			      strstr(got.p, "\nloss_records 0\n") && strstr(got.p, "\ndamaged_segments 0\n"),
		      "stats:\n%s", got.p);
	}
	t_text_free(&got);
	printf("ok - listings and /stats\n");

	t_text_free(&dump);
	CHECK_EQ(t_unmount(), 0);
	printf("ok - clean unmount\n");
	return 0;
}
