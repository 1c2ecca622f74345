/* SPDX-License-Identifier: MIT */
/*
 * fs_helpers.h - what the ringtailfs tests share: a private ring, spool and
 * mount point; the real ringtaild and ringtailfs started and stopped; the
 * real tools run through the shell; waits on conditions with deadlines.
 *
 * Every test is run as  TEST RINGTAILD RINGTAILFS RINGTAIL  (meson passes the
 * paths). It exits 0 on success, 1 on failure, 77 when /dev/fuse or
 * fusermount3 cannot be used here. Whatever happens, the mount is unmounted
 * and the daemons stopped (atexit, and on SIGTERM/SIGINT/SIGALRM).
 */
#ifndef RT_FS_HELPERS_H
#define RT_FS_HELPERS_H

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>

#include "../helpers.h"
#include "ringtail.h"

#define T_FUSE_MAGIC 0x65735546

struct t_env {
	char ring[128];
	char dir[128];
	char spool[192];
	char mnt[192];
	const char *ringtaild, *ringtailfs, *ringtail;
	pid_t daemon;
	pid_t fs;
};

static struct t_env T;

static inline int t_spawn_v(char *const argv[], const char *out_path)
{
	pid_t pid = fork();

	if (pid == 0) {
		/* Stopped if the test dies (the reaper then reaps it). */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (out_path) {
			int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
				_exit(126);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static inline int t_is_mounted(const char *mnt)
{
	struct statfs sf;

	return statfs(mnt, &sf) == 0 && (unsigned long)sf.f_type == T_FUSE_MAGIC;
}

/* Mounted, or a mount whose server is gone (ENOTCONN)? */
static inline int t_maybe_mounted(const char *mnt)
{
	struct statfs sf;

	if (statfs(mnt, &sf) != 0)
		return errno == ENOTCONN;
	return (unsigned long)sf.f_type == T_FUSE_MAGIC;
}

/* Unmount (lazily if busy) and reap ringtailfs; its exit status. */
static inline int t_unmount(void)
{
	char *argv[] = {"fusermount3", "-u", T.mnt, NULL};
	int st = -1;

	if (T.fs <= 0)
		return -1;
	if (t_wait(t_spawn_v(argv, "/dev/null")) != 0) {
		/* Busy (perhaps by a file this test still holds): detach it
		 * and tell ringtailfs to end, which it does with exit 0. */
		char *lazy[] = {"fusermount3", "-u", "-z", T.mnt, NULL};
		t_wait(t_spawn_v(lazy, "/dev/null"));
		kill(T.fs, SIGTERM);
	}
	st = t_wait(T.fs);
	T.fs = 0;
	return st;
}

/* Stop ringtaild (SIGTERM) and reap it; its exit status (0 expected: a
 * sanitizer report makes it non-zero). */
static inline int t_stop_daemon(void)
{
	int st;

	if (T.daemon <= 0)
		return 0;
	kill(T.daemon, SIGTERM);
	st = t_wait(T.daemon);
	T.daemon = 0;
	return st;
}

/*
 * At exit (after main returns or a CHECK fails): unmount and stop the
 * daemon, and check how they ended, as the forward tests do: ringtailfs
 * and ringtaild must both exit 0, or a sanitizer report in either would be
 * lost. A bad status turns the test's own success into a failure.
 */
static void t_cleanup(void)
{
	static int done;
	int bad = 0, st;

	if (done++)
		return;
	if (T.fs > 0) {
		st = t_unmount();
		if (st != 0) {
			fprintf(stderr, "ringtailfs exited with status %d\n", st);
			bad = 1;
		}
	} else if (T.mnt[0] && t_is_mounted(T.mnt)) {
		char *lazy[] = {"fusermount3", "-u", "-z", T.mnt, NULL};
		t_wait(t_spawn_v(lazy, "/dev/null"));
	}
	st = t_stop_daemon();
	if (st != 0) {
		fprintf(stderr, "ringtaild exited with status %d\n", st);
		bad = 1;
	}
	if (bad) {
		fflush(NULL);
		_exit(1);
	}
}

/*
 * A signal (SIGALRM: the test hung; SIGTERM, SIGINT) ends the test with
 * async-signal-safe calls only: stop the children and _exit. Unmounting and
 * removing the directory are the reaper's (t_reaper), outside any handler.
 */
static void t_on_signal(int sig)
{
	static const char msg[] = "test ended by a signal (SIGALRM: it hung)\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing to do */
	}
	if (T.fs > 0)
		kill(T.fs, SIGTERM);
	if (T.daemon > 0)
		kill(T.daemon, SIGTERM);
	_exit(1);
}

/* Remove @path and what is under it (no shell, no links followed). */
static int t_rm_tree(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	int err = 0;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) == 0 ? 0 : -errno;
	d = opendir(path);
	if (!d)
		return -errno;
	while ((e = readdir(d)) != NULL) {
		char sub[4096];
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		if (t_rm_tree(sub) < 0)
			err = -1;
	}
	closedir(d);
	if (rmdir(path) != 0)
		err = -errno;
	return err;
}

/* SIGKILL to every child of this process (its subreaper's orphans too). */
static void t_kill_children(void)
{
	char path[64];
	FILE *f;
	int pid;

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	f = fopen(path, "re");
	if (!f)
		return;
	while (fscanf(f, "%d", &pid) == 1)
		kill(pid, SIGKILL);
	fclose(f);
}

/*
 * The reaper: t_setup forks; the child runs the test, this process waits
 * for it, then (whatever killed it: an exit, a CHECK, a signal, SIGKILL)
 * makes sure nothing is left: it is a child subreaper, so the test's
 * daemons become its children when the test dies, and they are stopped
 * (PR_SET_PDEATHSIG sends them SIGTERM), reaped, the mount point lazily
 * unmounted, the ring and the directory removed. It exits with the test's
 * status.
 */
static void t_reaper(pid_t test)
{
	int st = 0, code;
	pid_t p;
	sigset_t all;

	/* Signals are for the test (same process group): the reaper only
	 * waits for it to end. */
	sigfillset(&all);
	sigdelset(&all, SIGKILL);
	sigdelset(&all, SIGSTOP);
	sigprocmask(SIG_BLOCK, &all, NULL);
	while (waitpid(test, &st, 0) < 0)
		if (errno != EINTR) {
			st = 1 << 8;
			break;
		}
	code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (WIFSIGNALED(st))
		fprintf(stderr, "test killed by signal %d\n", WTERMSIG(st));
	/* Orphaned daemons got SIGTERM from PDEATHSIG: reap them all; what
	 * is still there after 20 s gets SIGKILL (the reaper never hangs). */
	{
		uint64_t deadline = t_now_ns() + 20ull * 1000000000;
		int killed = 0;
		for (;;) {
			p = waitpid(-1, NULL, WNOHANG);
			if (p < 0 && errno == ECHILD)
				break;
			if (p > 0)
				continue;
			if (!killed && t_now_ns() > deadline) {
				t_kill_children();
				killed = 1;
			}
			t_pause();
		}
	}
	if (T.mnt[0] && t_maybe_mounted(T.mnt)) {
		char *lazy[] = {"fusermount3", "-u", "-z", T.mnt, NULL};
		t_wait(t_spawn_v(lazy, "/dev/null"));
	}
	if (T.ring[0])
		unlink(T.ring);
	if (T.dir[0] && !getenv("RT_TEST_KEEP") && t_rm_tree(T.dir) < 0)
		fprintf(stderr, "could not remove %s\n", T.dir);
	exit(code);
}

/*
 * t_setup - check FUSE can be used (else exit 77), make a private ring path,
 * spool and mount point, and arrange for cleanup.
 */
static inline void t_setup(const char *name, int argc, char **argv)
{
	struct sigaction sa;
	int fd;

	CHECK(argc >= 4, "usage: %s RINGTAILD RINGTAILFS RINGTAIL", argv[0]);
	T.ringtaild = argv[1];
	T.ringtailfs = argv[2];
	T.ringtail = argv[3];
	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		printf("SKIP: /dev/fuse: %s\n", strerror(errno));
		exit(T_SKIP);
	}
	close(fd);
	if (system("command -v fusermount3 >/dev/null 2>&1") != 0) {
		printf("SKIP: no fusermount3\n");
		exit(T_SKIP);
	}
	snprintf(T.ring, sizeof(T.ring), "/dev/shm/rt-test-fs-%s-%d", name, (int)getpid());
	snprintf(T.dir, sizeof(T.dir), "/tmp/rt-test-fs-%s-%d", name, (int)getpid());
	snprintf(T.spool, sizeof(T.spool), "%s/spool", T.dir);
	snprintf(T.mnt, sizeof(T.mnt), "%s/mnt", T.dir);
	CHECK(mkdir(T.dir, 0700) == 0, "mkdir %s: %s", T.dir, strerror(errno));
	CHECK(mkdir(T.mnt, 0700) == 0, "mkdir %s: %s", T.mnt, strerror(errno));
	unlink(T.ring);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	fflush(NULL);
	{
		pid_t test = fork();
		CHECK(test >= 0, "fork: %s", strerror(errno));
		if (test > 0)
			t_reaper(test);
	}
	atexit(t_cleanup);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = t_on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	setenv(RT_RING_ENV, T.ring, 1);
	/* A hung test still cleans up (RT_TEST_ALARM=SECONDS for big runs). */
	alarm(getenv("RT_TEST_ALARM") ? (unsigned)atoi(getenv("RT_TEST_ALARM")) : 240);
}

/*
 * t_start_daemon - ringtaild on the private ring and spool, with @extra
 * arguments (NULL-terminated list). Returns once the ring and the spool's
 * state exist.
 */
static inline void t_start_daemon(const char *const *extra)
{
	char *argv[32], path[256];
	uint64_t deadline = t_now_ns() + 10ull * 1000000000;
	int n = 0;

	argv[n++] = (char *)T.ringtaild;
	argv[n++] = "--ring";
	argv[n++] = T.ring;
	argv[n++] = "--spool";
	argv[n++] = T.spool;
	argv[n++] = "-q";
	for (int i = 0; extra && extra[i] && n < 31; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	snprintf(path, sizeof(path), "%s/state", T.spool);
	T.daemon = t_spawn_v(argv, NULL);
	CHECK(T.daemon > 0, "fork");
	while (access(T.ring, F_OK) != 0 || access(path, F_OK) != 0) {
		CHECK(t_now_ns() < deadline, "ringtaild did not start within 10 s");
		CHECK(waitpid(T.daemon, NULL, WNOHANG) == 0, "ringtaild exited at start");
		t_pause();
	}
}

/* t_mount - ringtailfs on the spool (or @src) at the mount point, with
 * @opts (NULL or a -o string); returns once mounted. */
static inline void t_mount_src(const char *src, const char *opts)
{
	char *argv[8];
	uint64_t deadline = t_now_ns() + 20ull * 1000000000;
	int n = 0, st;

	argv[n++] = (char *)T.ringtailfs;
	argv[n++] = (char *)src;
	argv[n++] = T.mnt;
	argv[n++] = "-f";
	if (opts) {
		argv[n++] = "-o";
		argv[n++] = (char *)opts;
	}
	argv[n] = NULL;
	T.fs = t_spawn_v(argv, NULL);
	CHECK(T.fs > 0, "fork");
	while (!t_is_mounted(T.mnt)) {
		CHECK(t_now_ns() < deadline, "ringtailfs did not mount within 20 s");
		if (waitpid(T.fs, &st, WNOHANG) == T.fs) {
			T.fs = 0;
			CHECK(0, "ringtailfs exited before mounting (status %d)", st);
		}
		t_pause();
	}
}

static inline void t_mount(const char *opts)
{
	t_mount_src(T.spool, opts);
}

/* t_path - a path under the mount point (a rotating buffer of 8 per
 * thread: one thread's calls never overwrite another thread's paths, which
 * made fs_live's readers read files they were not named for). */
static inline const char *t_path(const char *rel)
{
	static _Thread_local char buf[8][1024];
	static _Thread_local int i;
	int n;

	i = (i + 1) % 8;
	n = snprintf(buf[i], sizeof(buf[i]), "%s/%s", T.mnt, rel);
	CHECK(n > 0 && (size_t)n < sizeof(buf[i]), "path too long");
	return buf[i];
}

/* A growable buffer of bytes. */
struct t_text {
	char *p;
	size_t len, cap;
};

static inline void t_text_add(struct t_text *t, const char *p, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		t->cap = (t->len + n + 1) * 2;
		t->p = realloc(t->p, t->cap);
		CHECK(t->p != NULL, "out of memory");
	}
	memcpy(t->p + t->len, p, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static inline void t_text_free(struct t_text *t)
{
	free(t->p);
	memset(t, 0, sizeof(*t));
}

/* t_read_file - the whole file (-errno in *err instead of failing). */
static inline struct t_text t_read_file_err(const char *path, int *err)
{
	struct t_text t = {0};
	char buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r;

	*err = 0;
	t_text_add(&t, "", 0);
	if (fd < 0) {
		*err = -errno;
		return t;
	}
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		t_text_add(&t, buf, (size_t)r);
	if (r < 0)
		*err = -errno;
	close(fd);
	return t;
}

static inline struct t_text t_read_file(const char *path)
{
	int err;
	struct t_text t = t_read_file_err(path, &err);

	CHECK(err == 0, "read %s: %s", path, strerror(-err));
	return t;
}

/* t_sh - run @cmd with sh -c; its stdout in the result; *@status. */
static inline struct t_text t_sh(const char *cmd, int *status)
{
	struct t_text t = {0};
	char buf[65536];
	FILE *f = popen(cmd, "r");
	size_t n;
	int st;

	CHECK(f != NULL, "popen %s", cmd);
	t_text_add(&t, "", 0);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		t_text_add(&t, buf, n);
	st = pclose(f);
	if (status)
		*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return t;
}

/* t_dump - `ringtail dump SPOOL`: the oracle for a local spool. */
static inline struct t_text t_dump(const char *spool)
{
	char cmd[600];
	int st;
	struct t_text t;

	snprintf(cmd, sizeof(cmd), "'%s' dump '%s'", T.ringtail, spool);
	t = t_sh(cmd, &st);
	CHECK(st == 0, "ringtail dump failed (%d)", st);
	return t;
}

/* The service field of a line ("TIME HOST SERVICE[...").*/
static inline int t_line_service(const char *line, const char *svc)
{
	const char *p = strchr(line, ' ');
	size_t n = strlen(svc);

	if (!p)
		return 0;
	p = strchr(p + 1, ' ');
	return p && !strncmp(p + 1, svc, n) && p[1 + n] == '[';
}

/* Lines of @all for which @keep(line, arg) says so, in order. */
static inline struct t_text t_filter(const struct t_text *all, int (*keep)(const char *, void *),
				     void *arg)
{
	struct t_text out = {0};
	const char *p = all->p, *end = all->p + all->len;

	t_text_add(&out, "", 0);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		char *line = strndup(p, n);
		if (keep(line, arg))
			t_text_add(&out, p, n);
		free(line);
		p += n;
	}
	return out;
}

static inline int t_keep_service(const char *line, void *arg)
{
	return t_line_service(line, arg);
}

static inline size_t t_count_lines(const struct t_text *t)
{
	size_t n = 0;

	for (size_t i = 0; i < t->len; i++)
		n += t->p[i] == '\n';
	return n;
}

/* Wait until @path has at least @lines lines (the filesystem shows them). */
static inline void t_wait_lines(const char *path, size_t lines, unsigned secs)
{
	uint64_t deadline = t_now_ns() + (uint64_t)secs * 1000000000;

	for (;;) {
		int err;
		struct t_text t = t_read_file_err(path, &err);
		size_t n = t_count_lines(&t);
		t_text_free(&t);
		if (!err && n >= lines)
			return;
		CHECK(t_now_ns() < deadline, "%s: %zu lines after %u s, want %zu", path, n, secs,
		      lines);
		t_pause();
	}
}

/* Compare two texts; on a difference say where. */
static inline void t_same(const struct t_text *got, const struct t_text *want, const char *what)
{
	size_t i = 0;

	while (i < got->len && i < want->len && got->p[i] == want->p[i])
		i++;
	if (i == got->len && i == want->len)
		return;
	fprintf(stderr, "%s: differs at byte %zu (got %zu bytes, want %zu)\n", what, i, got->len,
		want->len);
	fprintf(stderr, "  got:  %.120s\n", got->p + (i > 40 ? i - 40 : 0));
	fprintf(stderr, "  want: %.120s\n", want->p + (i > 40 ? i - 40 : 0));
	exit(1);
}

/* The lines of @in ordered by @cmp (which compares two char *const *). */
static inline struct t_text t_sort_lines(const struct t_text *in,
					 int (*cmp)(const void *, const void *))
{
	struct t_text out = {0};
	char **v = NULL, *copy = strdup(in->p), *save = NULL, *l;
	size_t n = 0;

	CHECK(copy != NULL, "strdup");
	for (l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		v = realloc(v, (n + 1) * sizeof(*v));
		CHECK(v != NULL, "realloc");
		v[n++] = l;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp);
	t_text_add(&out, "", 0);
	for (size_t i = 0; i < n; i++) {
		t_text_add(&out, v[i], strlen(v[i]));
		t_text_add(&out, "\n", 1);
	}
	free(v);
	free(copy);
	return out;
}

/* The sequence number of a line ("... #123 ..."). */
static inline uint64_t t_line_seq(const char *line)
{
	const char *p = strstr(line, " #");

	return p ? strtoull(p + 2, NULL, 10) : 0;
}

#endif /* RT_FS_HELPERS_H */
