/* SPDX-License-Identifier: MIT */
/*
 * bench_common.c - what the benchmarks share (bench_common.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "cli.h"
#include "rtseg.h"

/* ------------------------------------------------------------------------
 * Records
 * ------------------------------------------------------------------------ */

static int add_line(struct bench_input *in, const char *s, size_t n)
{
	if (in->len + n + 1 > in->cap_text) {
		size_t c = in->cap_text ? in->cap_text * 2 : (1u << 24);
		char *t;
		while (c < in->len + n + 1)
			c *= 2;
		t = realloc(in->text, c);
		if (!t)
			return -ENOMEM;
		in->text = t;
		in->cap_text = c;
	}
	if (in->nlines == in->cap_lines) {
		size_t c = in->cap_lines ? in->cap_lines * 2 : 65536;
		uint32_t *o = realloc(in->off, c * sizeof(*o)), *l;
		if (!o)
			return -ENOMEM;
		in->off = o;
		l = realloc(in->llen, c * sizeof(*l));
		if (!l)
			return -ENOMEM;
		in->llen = l;
		in->cap_lines = c;
	}
	in->off[in->nlines] = (uint32_t)in->len;
	in->llen[in->nlines] = (uint32_t)n;
	memcpy(in->text + in->len, s, n);
	in->text[in->len + n] = '\n';
	in->len += n + 1;
	in->nlines++;
	return 0;
}

/* A fixed shape with varying fields (paths, statuses, sizes, durations,
 * users). */
int bench_input_synthetic(struct bench_input *in, size_t size)
{
	static const char *const users[] = {"alice", "bob", "carol", "dave", "erin", "frank"};
	static const char *const paths[] = {"/api/v1/orders", "/api/v1/users", "/login",
					    "/api/v1/cart", "/healthz", "/api/v2/search"};
	static const char *const verbs[] = {"GET", "POST", "PUT", "DELETE"};
	char line[65536];
	uint64_t x = 88172645463325252ull;

	for (int i = 0; i < 200000; i++) {
		size_t n;
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		n = (size_t)snprintf(line, sizeof(line),
				     "%s %s status=%u bytes=%u took=%ums user=%s worker=%u cache=%s",
				     verbs[x % 4], paths[(x >> 8) % 6], (x >> 12) % 20 ? 200u : 500u,
				     (unsigned)((x >> 16) % 9000), (unsigned)((x >> 24) % 300),
				     users[(x >> 32) % 6], (unsigned)((x >> 40) % 16),
				     (x >> 56) % 3 ? "hit" : "miss");
		/* Longer records go on the way access logs do. */
		while (n < size)
			n += (size_t)snprintf(line + n, sizeof(line) - n,
					      " agent=Mozilla/5.0 (X11; Linux x86_64) upstream=10.0.%u.%u",
					      (unsigned)((x >> 44) % 4), (unsigned)((x >> 48) % 250));
		if (add_line(in, line, size))
			return -ENOMEM;
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int bench_input_corpus(struct bench_input *in, const char *dir)
{
	char *names[256];
	int n = 0, err = 0;
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return -errno;
	while ((de = readdir(d)) && n < 256) {
		size_t l = strlen(de->d_name);
		char *name;
		if (l > 4 && !strcmp(de->d_name + l - 4, ".log") && (name = strdup(de->d_name)))
			names[n++] = name;
	}
	closedir(d);
	qsort(names, (size_t)n, sizeof(names[0]), cmp_str);
	for (int i = 0; i < n; i++) {
		char path[4096], *line = NULL;
		size_t cap = 0;
		ssize_t len;
		FILE *f;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		f = fopen(path, "r");
		free(names[i]);
		if (!f)
			continue;
		while (!err && (len = getline(&line, &cap, f)) > 0) {
			if (line[len - 1] == '\n')
				len--;
			if (len > 0 && line[len - 1] == '\r')
				len--;
			err = add_line(in, line, (size_t)len);
		}
		free(line);
		fclose(f);
	}
	if (!err && in->nlines == 0)
		err = -ENOENT;
	return err;
}

void bench_input_free(struct bench_input *in)
{
	free(in->text);
	free(in->off);
	free(in->llen);
	memset(in, 0, sizeof(*in));
}

/* ------------------------------------------------------------------------
 * Clocks, medians, files
 * ------------------------------------------------------------------------ */

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void bench_sleep_ms(unsigned ms)
{
	struct timespec d;

	d.tv_sec = ms / 1000;
	d.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&d, &d) < 0 && errno == EINTR)
		;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double bench_median(const double *v, int n)
{
	double s[64];

	if (n < 1)
		return 0;
	if (n > 64)
		n = 64;
	memcpy(s, v, sizeof(double) * (size_t)n);
	qsort(s, (size_t)n, sizeof(double), by_value);
	return (n & 1) ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

uint64_t bench_segment_bytes(const char *dir)
{
	uint64_t total = 0;
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		uint64_t seq;
		struct stat st;
		char path[4400];
		if (rt_seg_parse_name(de->d_name, &seq))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) == 0)
			total += (uint64_t)st.st_size;
	}
	closedir(d);
	return total;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0; /* go on whatever happened */
}

void bench_rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------------------
 * The daemons
 * ------------------------------------------------------------------------ */

int bench_find_bin(const char *name, const char *rel, char *out)
{
	char self[PATH_MAX], *slash;
	const char *dirs[4] = {getenv("RINGTAIL_BIN_DIR"), NULL, NULL, NULL};
	char rel_dir[PATH_MAX + 64], sbin[PATH_MAX + 16];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(rel_dir, sizeof(rel_dir), "%s/%s", self, rel);
			snprintf(sbin, sizeof(sbin), "%s/../sbin", self);
			/* the build tree first, then an installed layout */
			dirs[1] = rel_dir;
			dirs[2] = self;
			dirs[3] = sbin;
		}
	}
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		int len;
		if (!dirs[i] || !*dirs[i])
			continue;
		len = snprintf(out, PATH_MAX, "%s/%s", dirs[i], name);
		if (len > 0 && len < PATH_MAX && access(out, X_OK) == 0)
			return 0;
	}
	cli_err("cannot find %s (set RINGTAIL_BIN_DIR to the directory holding it)", name);
	return -ENOENT;
}

pid_t bench_spawn(char *const argv[], const char *log)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid != 0)
		return pid;
	{
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		int err = log ? open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : null;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (null < 0 || err < 0 || dup2(null, STDOUT_FILENO) < 0 ||
		    dup2(err, STDERR_FILENO) < 0)
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
}

int bench_wait(pid_t pid)
{
	int st;

	if (pid <= 0)
		return -1;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

int bench_stop(pid_t pid, unsigned grace_ms)
{
	uint64_t deadline;
	int st;

	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	deadline = bench_now_ns() + (uint64_t)grace_ms * 1000000ull;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
		if (r < 0 && errno != EINTR)
			return -1;
		if (bench_now_ns() > deadline) {
			kill(pid, SIGKILL);
			return bench_wait(pid);
		}
		bench_sleep_ms(2);
	}
}
