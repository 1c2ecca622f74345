/* SPDX-License-Identifier: MIT */
/*
 * fs_errors - a clear error, at once, when the spool is missing, is not a
 * spool, or is a file, or the mount point is missing; the mount options are
 * ro and default_permissions and never allow_other unless asked; SIGTERM
 * and fusermount3 -u both unmount cleanly (exit 0); a busy mount refuses to
 * unmount until its reader goes.
 *
 *   fs_errors RINGTAILD RINGTAILFS RINGTAIL
 */
#include "fs_helpers.h"

/* Run ringtailfs @src @mnt -f; it must fail within 5 s saying @why. */
static void must_fail(const char *src, const char *mnt, const char *why)
{
	char cmd[1024];
	struct t_text out;
	uint64_t t0 = t_now_ns();
	int st;

	snprintf(cmd, sizeof(cmd), "timeout 10 '%s' '%s' '%s' -f 2>&1", T.ringtailfs, src, mnt);
	out = t_sh(cmd, &st);
	CHECK(st != 0 && st != 124, "ringtailfs %s: status %d", src, st);
	CHECK(t_now_ns() - t0 < 5000000000ull, "ringtailfs %s took %.1f s to fail", src,
	      (double)(t_now_ns() - t0) / 1e9);
	CHECK(strstr(out.p, why), "ringtailfs %s said: %s (want '%s')", src, out.p, why);
	CHECK(!t_is_mounted(mnt), "mounted anyway");
	t_text_free(&out);
}

static const char *mount_opts(void)
{
	static char line[1024];
	FILE *f = fopen("/proc/mounts", "r");

	line[0] = '\0';
	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, T.mnt))
			break;
	if (f)
		fclose(f);
	return line;
}

int main(int argc, char **argv)
{
	char path[300];
	const char *opts;
	int fd;

	t_setup("errors", argc, argv);

	snprintf(path, sizeof(path), "%s/nope", T.dir);
	must_fail(path, T.mnt, "no such directory");
	snprintf(path, sizeof(path), "%s/empty", T.dir);
	CHECK(mkdir(path, 0700) == 0, "mkdir");
	must_fail(path, T.mnt, "not a ringtail spool");
	snprintf(path, sizeof(path), "%s/file", T.dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0, "create");
	close(fd);
	must_fail(path, T.mnt, "not a directory");
	snprintf(path, sizeof(path), "%s/bad-meta", T.dir);
	CHECK(mkdir(path, 0700) == 0, "mkdir");
	{
		char meta[400];
		FILE *f;
		snprintf(meta, sizeof(meta), "%s/spool.meta", path);
		f = fopen(meta, "w");
		CHECK(f != NULL, "spool.meta");
		fputs("not a spool\n", f);
		fclose(f);
	}
	must_fail(path, T.mnt, "not a ringtail spool");
	printf("ok - missing, empty, plain file, bad spool.meta: clear errors at once\n");

	/* A real spool, and a missing mount point. */
	t_start_daemon(NULL);
	CHECK_EQ(rt_write(RT_INFO, "hello", 5), 0);
	snprintf(path, sizeof(path), "%s/no-mountpoint", T.dir);
	{
		char cmd[1024];
		struct t_text out;
		int st;
		snprintf(cmd, sizeof(cmd), "timeout 10 '%s' '%s' '%s' -f 2>&1", T.ringtailfs, T.spool,
			 path);
		out = t_sh(cmd, &st);
		CHECK(st != 0 && st != 124 && out.len > 0, "missing mount point: %d %s", st, out.p);
		t_text_free(&out);
	}
	printf("ok - a missing mount point: an error, no hang\n");

	/* Options. */
	t_mount(NULL);
	opts = mount_opts();
	CHECK(strstr(opts, " ro,") || strstr(opts, " ro "), "not ro: %s", opts);
	CHECK(strstr(opts, "default_permissions"), "no default_permissions: %s", opts);
	CHECK(!strstr(opts, "allow_other"), "allow_other without asking: %s", opts);
	printf("ok - mounted ro,default_permissions, no allow_other\n");

	/* Busy: a reader waiting in /tail keeps it mounted. */
	{
		char *catv[] = {"cat", (char *)t_path("tail/all"), NULL};
		char *um[] = {"fusermount3", "-u", T.mnt, NULL};
		pid_t pid = t_spawn_v(catv, "/dev/null");
		uint64_t deadline = t_now_ns() + 5ull * 1000000000;
		char fdlink[64], target[600];
		int open_seen = 0;
		while (!open_seen) {
			DIR *d;
			struct dirent *de;
			snprintf(fdlink, sizeof(fdlink), "/proc/%d/fd", (int)pid);
			d = opendir(fdlink);
			while (d && (de = readdir(d))) {
				char l[600];
				ssize_t n;
				snprintf(l, sizeof(l), "%s/%s", fdlink, de->d_name);
				n = readlink(l, target, sizeof(target) - 1);
				if (n > 0) {
					target[n] = '\0';
					open_seen |= strstr(target, "tail/all") != NULL;
				}
			}
			if (d)
				closedir(d);
			CHECK(open_seen || t_now_ns() < deadline, "cat did not open tail/all");
			if (!open_seen)
				t_pause();
		}
		CHECK(t_wait(t_spawn_v(um, "/dev/null")) != 0, "unmounted while busy");
		CHECK(t_is_mounted(T.mnt), "not mounted");
		kill(pid, SIGTERM);
		t_wait(pid);
	}
	CHECK_EQ(t_unmount(), 0);
	CHECK(!t_is_mounted(T.mnt), "still mounted");
	printf("ok - busy while a reader waits; fusermount3 -u afterwards: exit 0\n");

	/* SIGTERM to ringtailfs unmounts too. */
	t_mount(NULL);
	kill(T.fs, SIGTERM);
	CHECK_EQ(t_wait(T.fs), 0);
	T.fs = 0;
	CHECK(!t_is_mounted(T.mnt), "still mounted after SIGTERM");
	printf("ok - SIGTERM: unmounted, exit 0\n");

	/* Mounted before the spooler made SPOOL/state: once it does, the
	 * filesystem follows it (durable position, new records). */
	CHECK_EQ(t_stop_daemon(), 0);
	snprintf(path, sizeof(path), "%s/state", T.spool);
	CHECK_EQ(unlink(path), 0);
	t_mount(NULL);
	t_start_daemon(NULL);
	CHECK_EQ(rt_write(RT_INFO, "after the state came", 20), 0);
	{
		uint64_t deadline = t_now_ns() + 10ull * 1000000000, seq = 0, durable = 0;
		for (;;) {
			struct t_text all = t_read_file(t_path("all"));
			struct t_text st = t_read_file(t_path("stats"));
			const char *l = strstr(all.p, "after the state came");
			const char *d = strstr(st.p, "\ndurable_seq ");
			while (l && l > all.p && l[-1] != '\n')
				l--;
			seq = l ? t_line_seq(l) : 0;
			durable = d ? strtoull(d + 13, NULL, 10) : 0;
			t_text_free(&all);
			t_text_free(&st);
			if (seq && durable >= seq)
				break;
			CHECK(t_now_ns() < deadline, "record #%llu, /stats durable_seq %llu",
			      (unsigned long long)seq, (unsigned long long)durable);
			t_pause();
		}
	}
	printf("ok - mounted before SPOOL/state existed: follows the spooler once it does\n");

	/* A second ringtailfs on the mount point is refused, and does not
	 * stack: one mount there still, and it works. */
	{
		char cmd[1024], line[4096];
		struct t_text out;
		int st, mounts = 0;
		FILE *f;
		snprintf(cmd, sizeof(cmd), "timeout 10 '%s' '%s' '%s' -f 2>&1", T.ringtailfs,
			 T.spool, T.mnt);
		out = t_sh(cmd, &st);
		CHECK_EQ(st, 1);
		CHECK(strstr(out.p, "already a ringtail mount"), "second mount said: %s", out.p);
		t_text_free(&out);
		f = fopen("/proc/self/mountinfo", "re");
		CHECK(f != NULL, "mountinfo");
		while (fgets(line, sizeof(line), f))
			if (strstr(line, T.mnt))
				mounts++;
		fclose(f);
		CHECK_EQ(mounts, 1);
		out = t_read_file(t_path("all"));
		CHECK(strstr(out.p, "after the state came"), "the first mount broke");
		t_text_free(&out);
	}
	printf("ok - a second ringtailfs on a ringtail mount: exit 1, 'already a ringtail mount', "
	       "nothing stacked\n");

	/* /stats names only a spooler that runs. */
	{
		pid_t was = T.daemon;
		struct t_text st = t_read_file(t_path("stats"));
		char want[64];
		snprintf(want, sizeof(want), "\nspooler_pid %d\n", (int)was);
		CHECK(strstr(st.p, want), "/stats while ringtaild %d runs:\n%s", (int)was, st.p);
		CHECK(!strstr(st.p, "\nspooler_gone "), "gone while it runs");
		t_text_free(&st);
		CHECK_EQ(t_stop_daemon(), 0);
		st = t_read_file(t_path("stats"));
		snprintf(want, sizeof(want), "\nspooler_gone %d\n", (int)was);
		CHECK(strstr(st.p, "\nspooler_pid 0\n") && strstr(st.p, want),
		      "/stats after ringtaild %d exited:\n%s", (int)was, st.p);
		t_text_free(&st);
	}
	printf("ok - /stats: spooler_pid of the running ringtaild; once it exits, spooler_pid 0 "
	       "and spooler_gone PID\n");
	CHECK_EQ(t_unmount(), 0);
	return 0;
}
