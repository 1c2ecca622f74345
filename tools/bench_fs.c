/* SPDX-License-Identifier: MIT */
/*
 * bench_fs.c - `ringtail bench fs`: how fast ringtailfs serves log text,
 * next to the same text in a tmpfs file, measured in the same run.
 *
 *   1. ~1 GiB of log lines (--size): lines of the ../shared/corpus/loghub logs
 *      with --corpus (from the loghub repository, github.com/logpai/loghub;
 *      their digits varied so the text does not simply repeat), or a
 *      built-in generator of web-service lines; all as service "bench".
 *   2. written through ringtail.h into a private ring, drained by the real
 *      ringtaild into a private spool on disk (/tmp);
 *   3. the real ringtailfs mounted on it: write-to-/tail latency (a record
 *      carries its CLOCK_MONOTONIC write time; a reader of /tail/by-service/lat
 *      compares), p50 and p99;
 *   4. per run (--runs, median reported): a fresh mount, caches dropped
 *      (echo 3 > /proc/sys/vm/drop_caches, as root), `cat FILE >/dev/null`
 *      (first read), `cat` again WARM times (warm re-reads: their median;
 *      the first re-read also moves the pages to the kernel's active list,
 *      which tmpfs pages read before already are), a fresh mount and
 *      dropped caches again for `grep -c PATTERN FILE >OUT` (grep prints to
 *      a file: with /dev/null GNU grep stops at the first match), again
 *      warm; and the same commands WARM times on a copy of the text in
 *      /dev/shm (median).
 *
 * With --json the last line is one JSON object.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "cli.h"
#include "ringtail.h"
#include "rtshm.h"

#define FUSE_MAGIC 0x65735546
#define SERVICE "bench"
#define PATTERN "ERROR"

struct opts {
	const char *corpus;
	uint64_t size;
	int runs;
	int json;
	int keep;
	int tail_samples;
};

struct paths {
	char ringtaild[PATH_MAX];
	char ringtailfs[PATH_MAX];
	char ring[256];
	char dir[256];
	char spool[300];
	char mnt[300];
	char copy[256];
	char grep_out[300];
};

/* xorshift64* */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1Dull;
}

/* ------------------------------------------------------------------------
 * Finding the binaries
 * ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------
 * Text
 * ------------------------------------------------------------------------ */

/* A severity from the words a log line uses. */
static int severity_of(const char *s, size_t n)
{
	static const struct {
		const char *w;
		int sev;
	} words[] = {{"FATAL", RT_FATAL}, {"ERROR", RT_ERROR}, {"error", RT_ERROR},
		     {"WARN", RT_WARN},   {"warn", RT_WARN},   {"DEBUG", RT_DEBUG}};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (memmem(s, n, words[i].w, strlen(words[i].w)))
			return words[i].sev;
	return RT_INFO;
}

/* The next line: a corpus line with its digits varied, or a generated one. */
static size_t next_line(const struct bench_input *c, uint64_t *rng, char *out, size_t cap, int *sev)
{
	static const char *const verbs[] = {"GET", "POST", "PUT", "DELETE"};
	static const char *const paths[] = {"/api/v1/orders", "/api/v1/users", "/healthz",
					    "/api/v2/cart/items", "/static/app.js", "/login"};
	static const char *const users[] = {"alice", "bob", "carol", "dave", "erin", "frank"};
	uint64_t r = rnd(rng);
	size_t n;

	if (c->nlines) {
		size_t i = (size_t)(r % c->nlines);
		n = c->llen[i] < cap ? c->llen[i] : cap;
		memcpy(out, c->text + c->off[i], n);
		for (size_t k = 0; k < n; k++)
			if (out[k] >= '0' && out[k] <= '9' && (rnd(rng) & 3) == 0)
				out[k] = (char)('0' + rnd(rng) % 10);
		*sev = severity_of(out, n);
		return n;
	}
	switch (r % 16) {
	case 0:
		*sev = RT_ERROR;
		n = (size_t)snprintf(out, cap,
				     "ERROR upstream %s timed out after %" PRIu64 " ms (attempt %d of 3) "
				     "peer=10.%d.%d.%d:8080",
				     paths[(r >> 8) % 6], 1000 + (r >> 16) % 9000, (int)((r >> 30) % 3) + 1,
				     (int)((r >> 32) % 256), (int)((r >> 40) % 256), (int)((r >> 48) % 256));
		break;
	case 1:
	case 2:
		*sev = RT_WARN;
		n = (size_t)snprintf(out, cap,
				     "slow query on orders_%" PRIu64 " took %" PRIu64 " ms rows=%" PRIu64
				     " plan=index_scan",
				     (r >> 8) % 64, 200 + (r >> 16) % 5000, (r >> 32) % 100000);
		break;
	default:
		*sev = RT_INFO;
		n = (size_t)snprintf(out, cap,
				     "%s %s/%" PRIu64 " %d %" PRIu64 " ms user=%s bytes=%" PRIu64
				     " ua=\"Mozilla/5.0 (X11; Linux x86_64)\"",
				     verbs[(r >> 4) % 4], paths[(r >> 8) % 6], (r >> 12) % 1000000,
				     (r >> 32) % 10 ? 200 : 404, (r >> 36) % 900, users[(r >> 44) % 6],
				     (r >> 48) % 65536);
		break;
	}
	return n < cap ? n : cap - 1;
}

/* ------------------------------------------------------------------------
 * Processes
 * ------------------------------------------------------------------------ */

static pid_t spawn(char *const argv[], const char *out)
{
	pid_t pid = fork();

	if (pid == 0) {
		if (out) {
			int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (fd < 0 || dup2(fd, 1) < 0)
				_exit(126);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Seconds a command takes (its stdout to @out). */
static double timed(char *const argv[], const char *out, int *status)
{
	uint64_t t0 = bench_now_ns();
	pid_t pid = spawn(argv, out);

	*status = pid < 0 ? -1 : bench_wait(pid);
	return (double)(bench_now_ns() - t0) / 1e9;
}

static int drop_caches(void)
{
	int fd, ok;

	sync();
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ok = write(fd, "3", 1) == 1;
	close(fd);
	return ok ? 0 : -1;
}

static int is_mounted(const char *mnt)
{
	struct statfs sf;

	return statfs(mnt, &sf) == 0 && (unsigned long)sf.f_type == FUSE_MAGIC;
}

static pid_t mount_fs(const struct paths *p)
{
	char *argv[] = {(char *)p->ringtailfs, (char *)p->spool, (char *)p->mnt, "-f", NULL};
	uint64_t deadline = bench_now_ns() + 30ull * 1000000000;
	pid_t pid = spawn(argv, NULL);

	while (pid > 0 && bench_now_ns() < deadline) {
		int st;
		if (is_mounted(p->mnt))
			return pid;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			cli_err("ringtailfs exited before mounting");
			return -1;
		}
		bench_sleep_ms(5);
	}
	cli_err("ringtailfs did not mount within 30 s");
	if (pid > 0)
		kill(pid, SIGTERM);
	return -1;
}

static void unmount_fs(const struct paths *p, pid_t pid)
{
	char *argv[] = {"fusermount3", "-u", (char *)p->mnt, NULL};
	int st;

	if (pid <= 0)
		return;
	st = bench_wait(spawn(argv, NULL));
	if (st != 0) {
		char *lazy[] = {"fusermount3", "-u", "-z", (char *)p->mnt, NULL};
		bench_wait(spawn(lazy, NULL));
	}
	bench_wait(pid);
}

/* ------------------------------------------------------------------------
 * Writing the text
 * ------------------------------------------------------------------------ */

/* Wait until every record written to the ring is durable in the spool. */
static int wait_durable(const char *ring)
{
	struct rt_ring_stat st;
	struct rt_ring *r;
	uint64_t deadline = bench_now_ns() + 300ull * 1000000000;
	int err = rt_ring_open(ring, RT_RING_RDONLY, &r);

	if (err)
		return err;
	while (bench_now_ns() < deadline) {
		rt_ring_stat(r, &st);
		if (st.consumed >= st.written && st.records_queued == 0) {
			rt_ring_close(r);
			return 0;
		}
		bench_sleep_ms(10);
	}
	rt_ring_close(r);
	return -ETIMEDOUT;
}

static int write_text(const struct opts *o, const struct bench_input *c, uint64_t *records,
		      uint64_t *approx)
{
	uint64_t rng = 0x9e3779b97f4a7c15ull, bytes = 0, n = 0, spins = 0;
	char line[4096];
	int err;

	err = rt_set_service(SERVICE);
	if (err)
		return err;
	while (bytes < o->size) {
		int sev;
		size_t len = next_line(c, &rng, line, sizeof(line), &sev);
		while ((err = rt_write(sev, line, len)) == -ENOBUFS || err == -ENOENT) {
			/* The ring is full: let ringtaild catch up. */
			struct timespec d = {0, 50000};
			nanosleep(&d, NULL);
			if (++spins > 20000000)
				return -ETIMEDOUT;
		}
		if (err)
			return err;
		/* Line length: time, host, service[pid/tid], #seq, severity. */
		bytes += len + 70;
		n++;
	}
	*records = n;
	*approx = bytes;
	return 0;
}

/* ------------------------------------------------------------------------
 * /tail latency
 * ------------------------------------------------------------------------ */

struct lat {
	const char *path;
	int want;
	int got;
	double *ms;
	int fd;
	volatile int ready;
	volatile int stop;
};

static void *tail_reader(void *arg)
{
	struct lat *l = arg;
	char buf[65536];
	size_t have = 0;

	l->fd = open(l->path, O_RDONLY | O_CLOEXEC);
	l->ready = 1;
	if (l->fd < 0)
		return NULL;
	while (l->got < l->want && !l->stop) {
		struct pollfd pfd = {l->fd, POLLIN, 0};
		char *nl, *start = buf;
		ssize_t r;
		/* poll() first, so that a stop is seen without a record. */
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		r = read(l->fd, buf + have, sizeof(buf) - have);
		if (r <= 0)
			break;
		have += (size_t)r;
		while ((nl = memchr(start, '\n', have - (size_t)(start - buf)))) {
			uint64_t now = bench_now_ns(), t;
			char *sp = nl;
			while (sp > start && sp[-1] != ' ')
				sp--;
			t = strtoull(sp, NULL, 10);
			if (t && l->got < l->want)
				l->ms[l->got++] = (double)(now - t) / 1e6;
			start = nl + 1;
		}
		have -= (size_t)(start - buf);
		memmove(buf, start, have);
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	int i;

	if (n <= 0)
		return -1;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	i = (int)(p * (n - 1) + 0.5);
	return v[i];
}

static int tail_latency(const struct paths *p, int samples, double *p50, double *p99)
{
	struct rt_opts ro;
	struct lat l;
	pthread_t th;
	char path[400];
	uint64_t rng = 42, deadline;
	int err = 0;

	snprintf(path, sizeof(path), "%s/tail/by-service/lat", p->mnt);
	memset(&l, 0, sizeof(l));
	l.path = path;
	l.want = samples;
	l.ms = calloc((size_t)samples, sizeof(double));
	if (!l.ms || pthread_create(&th, NULL, tail_reader, &l)) {
		free(l.ms);
		return -ENOMEM;
	}
	while (!l.ready)
		bench_sleep_ms(1);
	if (l.fd < 0) {
		cli_err("%s: cannot open", path);
		l.stop = 1;
		pthread_join(th, NULL);
		free(l.ms);
		return -EIO;
	}
	memset(&ro, 0, sizeof(ro));
	ro.service = "lat";
	for (int i = 0; i < samples; i++) {
		char msg[64];
		int n;
		/* 1-4 ms apart, like a service logging requests. */
		bench_sleep_ms(1 + (unsigned)(rnd(&rng) % 4));
		n = snprintf(msg, sizeof(msg), "lat %" PRIu64, bench_now_ns());
		if (rt_writex(RT_INFO, &ro, msg, (size_t)n) != 0)
			err = -EIO;
	}
	deadline = bench_now_ns() + 10ull * 1000000000;
	while (l.got < samples && bench_now_ns() < deadline)
		bench_sleep_ms(5);
	l.stop = 1;
	pthread_join(th, NULL);
	close(l.fd);
	*p50 = pct(l.ms, l.got, 0.50);
	*p99 = pct(l.ms, l.got, 0.99);
	if (l.got < samples)
		cli_err("/tail delivered %d of %d records within 10 s", l.got, samples);
	free(l.ms);
	return l.got == samples ? err : -ETIMEDOUT;
}

/* ------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

struct run {
	double cat_tmpfs, grep_tmpfs, cat_cold, cat_warm, grep_cold, grep_warm;
};

#define WARM 3 /* warm reads per run */

/* MB/s of @argv over @mb, the median of WARM runs; *@status the last's. */
static double warm_mbps(char *const argv[], const char *out, double mb, int *status)
{
	double v[WARM];

	for (int i = 0; i < WARM; i++) {
		v[i] = mb / timed(argv, out, status);
		if (*status)
			return 0;
	}
	return bench_median(v, WARM);
}

static long long grep_count(const char *out)
{
	FILE *f = fopen(out, "r");
	long long v = -1;

	if (f) {
		if (fscanf(f, "%lld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int one_run(const struct paths *p, const char *file, uint64_t size, int dropped_ok,
		   struct run *r, long long *count_fs, long long *count_tmpfs)
{
	char *cat_fs[] = {"cat", (char *)file, NULL};
	char *grep_fs[] = {"grep", "-c", PATTERN, (char *)file, NULL};
	char *cat_t[] = {"cat", (char *)p->copy, NULL};
	char *grep_t[] = {"grep", "-c", PATTERN, (char *)p->copy, NULL};
	double mb = (double)size / 1e6;
	pid_t fs;
	int st;

	/* tmpfs first, then the filesystem, in the same run. */
	r->cat_tmpfs = warm_mbps(cat_t, "/dev/null", mb, &st);
	r->grep_tmpfs = warm_mbps(grep_t, p->grep_out, mb, &st);
	*count_tmpfs = grep_count(p->grep_out);

	fs = mount_fs(p);
	if (fs < 0)
		return -1;
	if (dropped_ok)
		drop_caches();
	r->cat_cold = mb / timed(cat_fs, "/dev/null", &st);
	if (st) {
		cli_err("cat %s failed (%d)", file, st);
		unmount_fs(p, fs);
		return -1;
	}
	r->cat_warm = warm_mbps(cat_fs, "/dev/null", mb, &st);
	unmount_fs(p, fs);

	fs = mount_fs(p);
	if (fs < 0)
		return -1;
	if (dropped_ok)
		drop_caches();
	r->grep_cold = mb / timed(grep_fs, p->grep_out, &st);
	*count_fs = grep_count(p->grep_out);
	r->grep_warm = warm_mbps(grep_fs, p->grep_out, mb, &st);
	unmount_fs(p, fs);
	return 0;
}

static int copy_file(const char *from, const char *to)
{
	char *argv[] = {"cp", (char *)from, (char *)to, NULL};

	return bench_wait(spawn(argv, NULL));
}

/* ------------------------------------------------------------------------
 * The command
 * ------------------------------------------------------------------------ */

static const char usage[] =
	"usage: ringtail bench fs [--corpus DIR] [--size BYTES] [--runs N] [--json] [--keep]\n"
	"Writes ~1 GiB of log text through ringtail.h, ringtaild and a spool, mounts\n"
	"ringtailfs, and compares cat and grep -c on /by-service/bench (first read with\n"
	"caches dropped, and warm) with the same text in a tmpfs file; and measures the\n"
	"write-to-/tail latency. --corpus: lines of DIR/*.log (e.g. ../shared/corpus/loghub,\n"
	"from the loghub repository) instead of the built-in generator.\n";

int bench_fs(int argc, char **argv)
{
	static const struct option lopts[] = {
		{"corpus", required_argument, NULL, 'c'}, {"size", required_argument, NULL, 's'},
		{"runs", required_argument, NULL, 'r'},   {"json", no_argument, NULL, 'j'},
		{"keep", no_argument, NULL, 'k'},         {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct opts o = {NULL, 1ull << 30, 3, 0, 0, 1000};
	struct bench_input c = {0};
	struct paths p;
	struct run *runs = NULL;
	double v[6][16], p50 = -1, p99 = -1, tw;
	uint64_t records = 0, approx = 0, t0;
	long long count_fs = -1, count_tmpfs = -1;
	char file[400], *dargv[16];
	pid_t daemon = -1;
	struct stat st;
	int ch, rc = 1, dropped, err;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o.corpus = optarg;
			break;
		case 's':
			if (rt_parse_size(optarg, &o.size) || o.size < (1u << 20)) {
				cli_err("bad size '%s'", optarg);
				return 2;
			}
			break;
		case 'r': {
			uint64_t n;
			if (rt_parse_u64(optarg, &n) || n < 1 || n > 16) {
				cli_err("bad --runs '%s' (1 to 16)", optarg);
				return 2;
			}
			o.runs = (int)n;
			break;
		}
		case 'j':
			o.json = 1;
			break;
		case 'k':
			o.keep = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	memset(&p, 0, sizeof(p));
	if (bench_find_bin("ringtaild", "../spooler", p.ringtaild) ||
	    bench_find_bin("ringtailfs", "../fs", p.ringtailfs))
		return 1;
	if (access("/dev/fuse", R_OK | W_OK) != 0) {
		cli_err("/dev/fuse is not usable here");
		return 1;
	}
	if (o.corpus && (err = bench_input_corpus(&c, o.corpus)) != 0) {
		cli_err("%s: %s", o.corpus, err == -ENOENT ? "no *.log lines" : strerror(-err));
		return 1;
	}
	snprintf(p.ring, sizeof(p.ring), "/dev/shm/rt-bench-fs-%d", (int)getpid());
	snprintf(p.dir, sizeof(p.dir), "/tmp/rt-bench-fs-%d", (int)getpid());
	snprintf(p.spool, sizeof(p.spool), "%s/spool", p.dir);
	snprintf(p.mnt, sizeof(p.mnt), "%s/mnt", p.dir);
	snprintf(p.copy, sizeof(p.copy), "/dev/shm/rt-bench-fs-%d.txt", (int)getpid());
	snprintf(p.grep_out, sizeof(p.grep_out), "%s/grep.out", p.dir);
	snprintf(file, sizeof(file), "%s/by-service/" SERVICE, p.mnt);
	if (mkdir(p.dir, 0700) < 0 || mkdir(p.mnt, 0700) < 0) {
		cli_err("%s: %s", p.dir, strerror(errno));
		return 1;
	}
	runs = calloc((size_t)o.runs, sizeof(*runs));
	if (!runs)
		goto out;

	/* The spooler, on a private ring and spool. */
	dargv[0] = p.ringtaild;
	dargv[1] = "--ring";
	dargv[2] = p.ring;
	dargv[3] = "--ring-size";
	dargv[4] = "512M";
	dargv[5] = "--spool";
	dargv[6] = p.spool;
	dargv[7] = "-q";
	dargv[8] = NULL;
	daemon = spawn(dargv, NULL);
	for (t0 = bench_now_ns(); access(p.ring, F_OK) != 0 || access(p.spool, F_OK) != 0;) {
		if (bench_now_ns() - t0 > 10ull * 1000000000 || waitpid(daemon, NULL, WNOHANG) == daemon) {
			cli_err("ringtaild did not start");
			daemon = -1;
			goto out;
		}
		bench_sleep_ms(5);
	}
	setenv(RT_RING_ENV, p.ring, 1);

	fprintf(stderr, "bench fs: writing %.2f GB of %s log text through ringtaild...\n",
		(double)o.size / 1e9, o.corpus ? "loghub" : "generated");
	t0 = bench_now_ns();
	err = write_text(&o, &c, &records, &approx);
	if (!err)
		err = wait_durable(p.ring);
	if (err) {
		cli_err("writing the text failed: %s", strerror(-err));
		goto out;
	}
	tw = (double)(bench_now_ns() - t0) / 1e9;
	fprintf(stderr, "bench fs: %" PRIu64 " records durable in %.1f s\n", records, tw);

	/* Latency, while the spooler runs. */
	{
		pid_t fs = mount_fs(&p);
		if (fs < 0)
			goto out;
		err = tail_latency(&p, o.tail_samples, &p50, &p99);
		if (err)
			cli_err("/tail latency: %s", strerror(-err));
		unmount_fs(&p, fs);
	}
	kill(daemon, SIGTERM);
	bench_wait(daemon);
	daemon = -1;

	/* The tmpfs copy: the same bytes. */
	{
		pid_t fs = mount_fs(&p);
		if (fs < 0)
			goto out;
		if (stat(file, &st) < 0 || copy_file(file, p.copy) != 0) {
			cli_err("%s: cannot copy to %s", file, p.copy);
			unmount_fs(&p, fs);
			goto out;
		}
		unmount_fs(&p, fs);
	}
	dropped = drop_caches() == 0;
	if (!dropped)
		fprintf(stderr, "bench fs: cannot drop caches (not root?): first reads may be warm\n");
	for (int i = 0; i < o.runs; i++) {
		fprintf(stderr, "bench fs: run %d of %d\n", i + 1, o.runs);
		if (one_run(&p, file, (uint64_t)st.st_size, dropped, &runs[i], &count_fs,
			    &count_tmpfs))
			goto out;
		if (count_fs != count_tmpfs) {
			cli_err("grep -c differs: %lld on ringtailfs, %lld on tmpfs", count_fs,
				count_tmpfs);
			goto out;
		}
		v[0][i] = runs[i].cat_tmpfs;
		v[1][i] = runs[i].grep_tmpfs;
		v[2][i] = runs[i].cat_cold;
		v[3][i] = runs[i].cat_warm;
		v[4][i] = runs[i].grep_cold;
		v[5][i] = runs[i].grep_warm;
	}
	{
		double ct = bench_median(v[0], o.runs), gt = bench_median(v[1], o.runs);
		double cc = bench_median(v[2], o.runs), cw = bench_median(v[3], o.runs);
		double gc = bench_median(v[4], o.runs), gw = bench_median(v[5], o.runs);

		printf("ringtailfs bench: %s/by-service/%s, %.3f GB, %" PRIu64
		       " records (%s), median of %d runs%s\n",
		       "MNT", SERVICE, (double)st.st_size / 1e9, records,
		       o.corpus ? "loghub corpus" : "generated", o.runs,
		       dropped ? "" : " (caches NOT dropped)");
		printf("  %-28s %10s %10s %8s\n", "", "ringtailfs", "tmpfs", "ratio");
		printf("  %-28s %7.0f MB/s %7.0f MB/s %7.0f%%\n", "cat, first read", cc, ct,
		       100 * cc / ct);
		printf("  %-28s %7.0f MB/s %7.0f MB/s %7.0f%%\n", "cat, warm re-read", cw, ct,
		       100 * cw / ct);
		printf("  %-28s %7.0f MB/s %7.0f MB/s %7.0f%%\n", "grep -c " PATTERN ", first read",
		       gc, gt, 100 * gc / gt);
		printf("  %-28s %7.0f MB/s %7.0f MB/s %7.0f%%\n", "grep -c " PATTERN ", warm", gw, gt,
		       100 * gw / gt);
		printf("  write to /tail latency: p50 %.2f ms, p99 %.2f ms (%d records)\n", p50, p99,
		       o.tail_samples);
		printf("  grep -c count: %lld (same on both)\n", count_fs);
		if (o.json)
			printf("{\"bytes\":%lld,\"records\":%" PRIu64 ",\"corpus\":\"%s\",\"runs\":%d,"
			       "\"caches_dropped\":%s,\"cat_tmpfs_mbps\":%.1f,\"grep_tmpfs_mbps\":%.1f,"
			       "\"cat_first_mbps\":%.1f,\"cat_warm_mbps\":%.1f,\"grep_first_mbps\":%.1f,"
			       "\"grep_warm_mbps\":%.1f,\"cat_ratio\":%.3f,\"grep_ratio\":%.3f,"
			       "\"warm_ratio\":%.3f,\"grep_warm_ratio\":%.3f,\"tail_p50_ms\":%.3f,"
			       "\"tail_p99_ms\":%.3f}\n",
			       (long long)st.st_size, records, o.corpus ? "loghub" : "generated", o.runs,
			       dropped ? "true" : "false", ct, gt, cc, cw, gc, gw, cc / ct, gc / gt,
			       cw / ct, gw / gt, p50, p99);
	}
	rc = 0;
out:
	if (daemon > 0) {
		kill(daemon, SIGTERM);
		bench_wait(daemon);
	}
	if (is_mounted(p.mnt)) {
		char *lazy[] = {"fusermount3", "-u", "-z", p.mnt, NULL};
		bench_wait(spawn(lazy, NULL));
	}
	if (!o.keep) {
		unlink(p.copy);
		unlink(p.ring);
		bench_rm_rf(p.dir);
	} else {
		fprintf(stderr, "bench fs: kept %s, %s and %s\n", p.spool, p.ring, p.copy);
	}
	bench_input_free(&c);
	free(runs);
	(void)approx;
	return rc;
}
