/* SPDX-License-Identifier: MIT */
/*
 * fs_harness - the fs tests' harness (fs_helpers.h) is honest:
 *
 *  - a daemon that exits with a bad status (as one with a sanitizer report
 *    does) fails the test, although the test itself passed;
 *  - a test that hangs and gets its SIGALRM (or a SIGTERM) ends with only
 *    async-signal-safe calls in the handler, and still leaves nothing
 *    behind: no mount, no ringtaild, no ringtailfs, no directory, no ring.
 *
 * Each case runs this program again as the test under check (a real
 * ringtaild, a real FUSE mount) and looks at what it left.
 *
 *   fs_harness RINGTAILD RINGTAILFS RINGTAIL
 */
#include "fs_helpers.h"

/* The test under check, mode "bad-daemon": a "daemon" that exits 66 on
 * SIGTERM; main returns 0. */
static void exit66(int sig)
{
	(void)sig;
	_exit(66);
}

/* Mode "fake-daemon": exits 66 on SIGTERM (a sanitizer's exit code). */
_Noreturn static void fake_daemon(void)
{
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = exit66;
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (;;)
		pause();
}

static int inner_bad_daemon(int argc, char **argv)
{
	char *fake[] = {argv[0], argv[1], argv[2], argv[3], "fake-daemon", NULL};
	sigset_t term, old;

	t_setup("harness-a", argc, argv);
	/* SIGTERM waits until the fake daemon has its handler. */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, &old);
	T.daemon = t_spawn_v(fake, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	CHECK(T.daemon > 0, "fork");
	printf("dir %s\n", T.dir);
	fflush(stdout);
	return 0;
}

/* Mode "signal": a real daemon and mount; then the test "hangs" and its
 * alarm goes off. */
static int inner_signal(int argc, char **argv, int sig)
{
	t_setup("harness-b", argc, argv);
	t_start_daemon(NULL);
	CHECK_EQ(rt_write(RT_INFO, "before the signal", 17), 0);
	t_mount(NULL);
	t_wait_lines(t_path("all"), 1, 20);
	printf("dir %s\nmnt %s\nring %s\ndaemon %d\nfs %d\n", T.dir, T.mnt, T.ring, (int)T.daemon,
	       (int)T.fs);
	fflush(stdout);
	raise(sig);
	CHECK(0, "still running after signal %d", sig);
	return 1;
}

/* Run this program in @mode; its stdout, and its status in *@st. */
static struct t_text run_inner(const char *self, const char *mode, int *st)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd), "'%s' '%s' '%s' '%s' '%s' 2>/dev/null", self, T.ringtaild,
		 T.ringtailfs, T.ringtail, mode);
	return t_sh(cmd, st);
}

static const char *field(const struct t_text *out, const char *key)
{
	static char val[8][512];
	static int k;
	char pat[64];
	const char *p;
	size_t n;

	snprintf(pat, sizeof(pat), "%s ", key);
	for (p = out->p; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, pat, strlen(pat)))
			break;
	CHECK(p && *p, "the inner test did not say its %s: %s", key, out->p);
	p += strlen(pat);
	n = strcspn(p, "\n");
	k = (k + 1) % 8;
	snprintf(val[k], sizeof(val[k]), "%.*s", (int)n, p);
	return val[k];
}

/* Is @path a mount point in /proc/self/mountinfo? */
static int in_mountinfo(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192];
	int found = 0;

	CHECK(f != NULL, "mountinfo");
	while (fgets(line, sizeof(line), f))
		if (strstr(line, path))
			found = 1;
	fclose(f);
	return found;
}

/* Is process @pid still there (a zombie counts as gone)? */
static int alive(int pid)
{
	char path[64], buf[512];
	FILE *f;
	char state = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f)) {
		const char *p = strrchr(buf, ')');
		if (p && p[1] == ' ')
			state = p[2];
	}
	fclose(f);
	return state && state != 'Z' && state != 'X';
}

int main(int argc, char **argv)
{
	static const int sigs[] = {SIGALRM, SIGTERM};
	struct t_text out;
	int st;

	if (argc >= 5 && !strcmp(argv[4], "fake-daemon"))
		fake_daemon();
	if (argc >= 5 && !strcmp(argv[4], "bad-daemon"))
		return inner_bad_daemon(argc, argv);
	if (argc >= 5 && !strcmp(argv[4], "alarm"))
		return inner_signal(argc, argv, SIGALRM);
	if (argc >= 5 && !strcmp(argv[4], "term"))
		return inner_signal(argc, argv, SIGTERM);

	t_setup("harness", argc, argv);

	out = run_inner(argv[0], "bad-daemon", &st);
	CHECK_EQ(st, 1);
	CHECK(access(field(&out, "dir"), F_OK) != 0, "%s left behind", field(&out, "dir"));
	t_text_free(&out);
	printf("ok - a daemon exiting 66 at the end fails a test whose main returned 0\n");

	for (int i = 0; i < 2; i++) {
		const char *what = sigs[i] == SIGALRM ? "alarm" : "term";
		out = run_inner(argv[0], what, &st);
		CHECK_EQ(st, 1);
		CHECK(!alive(atoi(field(&out, "daemon"))), "%s: ringtaild %s still runs", what,
		      field(&out, "daemon"));
		CHECK(!alive(atoi(field(&out, "fs"))), "%s: ringtailfs %s still runs", what,
		      field(&out, "fs"));
		CHECK(!in_mountinfo(field(&out, "mnt")), "%s: %s still mounted", what,
		      field(&out, "mnt"));
		CHECK(access(field(&out, "dir"), F_OK) != 0, "%s: %s left behind", what,
		      field(&out, "dir"));
		CHECK(access(field(&out, "ring"), F_OK) != 0, "%s: %s left behind", what,
		      field(&out, "ring"));
		t_text_free(&out);
		printf("ok - SIG%s in a mounted test: exit 1, no mount, daemons, ring or "
		       "directory left\n", sigs[i] == SIGALRM ? "ALRM" : "TERM");
	}
	return 0;
}
