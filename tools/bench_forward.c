/* SPDX-License-Identifier: MIT */
/*
 * bench_forward.c - `ringtail bench forward`: how fast a sender's spool
 * reaches a central server over loopback, beside plain loopback TCP moving
 * the same bytes in the same run.
 *
 *   1. Each sender (host0, host1, ...) gets a spool filled offline: the real
 *      ringtaild on a private ring and spool, no --upstream; a child process
 *      writes --records records through ringtail.h (synthetic messages of
 *      --size bytes, or the lines of --corpus DIR/ *.log); then SIGTERM,
 *      which drains the ring into the spool before ringtaild exits. The
 *      spool's last durable record is what the central has to reach.
 *   2. Per run and per case (1 sender and 3 senders unless --senders says):
 *      a fresh central `ringtaild --listen 127.0.0.1:0 --port-file`, the senders
 *      started again with --upstream, and the time from their start until
 *      the central's state of every host (CENTRAL/hosts/HOST/EPOCH/state)
 *      says it holds that record durably.
 *   3. In the same run, as many plain TCP connections over 127.0.0.1 (a
 *      thread at each end, 1 MiB write()s and read()s) move the same
 *      segment bytes: the baseline.
 *
 * Two MB/s: of log text (the records' message bytes, what `ringtail bench
 * spool` counts, so the two compare), and on the wire (the segment bytes,
 * LZ4-compressed as on disk, which is what forwarding sends). Medians of
 * --runs runs. With --json the last line is one JSON object.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"
#include "cli.h"
#include "ringtail.h"
#include "rtspool.h"

#define MAX_SENDERS 16
#define MAX_RUNS 16
#define SERVICE "bench"
#define RING_SIZE "256M"
#define LOOPBACK "127.0.0.1"
#define LOGHUB "https://github.com/logpai/loghub"

struct sender {
	char name[16];
	char ring[128];
	char spool[300];
	char fwd_file[320];  /* SPOOL/forward */
	char log[300];       /* its stderr */
	uint64_t last_seq;   /* the last durable record after filling */
	uint64_t text_bytes; /* message bytes of the records written */
	uint64_t seg_bytes;  /* segment bytes of its spool */
	double fill_s;
	pid_t pid;
};

/* One case (a number of senders) in one run. */
struct sample {
	double secs;          /* start of the senders to the last record held */
	double startup_ms;    /* to the central's first word of every host */
	double rps, text_mbps, wire_mbps, tcp_mbps;
	double slowest_text_mbps; /* the slowest sender's own rate */
	double central_cores, sender_cores; /* CPU time used over the time taken */
};

struct bench {
	char ringtaild[PATH_MAX];
	char dir[256];        /* everything on disk */
	char central[300];
	char central_log[300];
	char noring[128];     /* the central's ring: never made */
	const char *corpus;
	uint64_t size, records;
	int json;
	int nsenders;         /* spools filled */
	struct sender s[MAX_SENDERS];
	pid_t central_pid;
	struct bench_input in;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* The tail of a daemon's stderr, to say why something failed. */
static void show_log(const char *path)
{
	char buf[2048];
	FILE *f = fopen(path, "r");
	long end;
	size_t n;

	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	end = ftell(f);
	fseek(f, end > (long)sizeof(buf) - 1 ? end - (long)sizeof(buf) + 1 : 0, SEEK_SET);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (n)
		fprintf(stderr, "--- %s:\n%s%s", path, buf, buf[n - 1] == '\n' ? "" : "\n");
}

/* Has @pid exited (reaped then)? */
static int gone(pid_t pid)
{
	int st;

	return pid > 0 && waitpid(pid, &st, WNOHANG) == pid;
}

/* CPU seconds @pid has used so far, all its threads (0: unknown). */
static double cpu_seconds(pid_t pid)
{
	unsigned long long user = 0, sys = 0;
	char path[64], buf[1024], *p;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* After "pid (comm) ": state and ten more fields, then utime, stime. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &user,
			 &sys) != 2)
		return 0;
	return (double)(user + sys) / (double)sysconf(_SC_CLK_TCK);
}

/* ------------------------------------------------------------------------
 * Filling a sender's spool
 * ------------------------------------------------------------------------ */

/* The child that writes the records: exits 0 when all were taken. */
static _Noreturn void write_records(const struct bench *b, const struct sender *x, size_t start)
{
	const struct bench_input *in = &b->in;
	size_t i = start % in->nlines;
	uint64_t last_progress = bench_now_ns(), spins = 0;

	setenv(RT_RING_ENV, x->ring, 1);
	if (rt_set_service(SERVICE))
		_exit(1);
	for (uint64_t n = 0; n < b->records && !interrupted;) {
		int r = rt_write(RT_INFO, in->text + in->off[i], in->llen[i]);
		if (r == 0) {
			n++;
			if (++i == in->nlines)
				i = 0;
			continue;
		}
		if (r != -ENOBUFS && r != -ENOENT)
			_exit(2);
		/* The ring is full: ringtaild is behind. Give it the core. */
		sched_yield();
		if ((++spins & 1023) == 0) {
			uint64_t now = bench_now_ns();
			if (now - last_progress > 60ull * 1000000000ull)
				_exit(3);
			last_progress = now;
		}
	}
	_exit(interrupted ? 4 : 0);
}

/* The last durable record of spool @path (0: none or unreadable). */
static uint64_t durable_of(struct rt_spool *sp)
{
	struct rt_spool_state st;

	if (!sp->state && rt_spool_map_state(sp) != 0)
		return 0;
	if (memcmp(sp->state->magic, RT_STATE_MAGIC, 8) != 0)
		return 0;
	for (int tries = 0; tries < 100; tries++)
		if (rt_state_read(sp->state, &st) == 0)
			return st.durable_seq;
	return 0;
}

static pid_t start_sender(const struct bench *b, const struct sender *x, const char *upstream)
{
	char *argv[16];
	int n = 0;

	argv[n++] = (char *)b->ringtaild;
	argv[n++] = "--ring";
	argv[n++] = (char *)x->ring;
	argv[n++] = "--ring-size";
	argv[n++] = RING_SIZE;
	argv[n++] = "--spool";
	argv[n++] = (char *)x->spool;
	argv[n++] = "--host";
	argv[n++] = (char *)x->name;
	if (upstream) {
		argv[n++] = "--upstream";
		argv[n++] = (char *)upstream;
	}
	argv[n++] = "-q";
	argv[n] = NULL;
	return bench_spawn(argv, x->log);
}

static int fill(struct bench *b, int k)
{
	struct sender *x = &b->s[k];
	size_t start = (size_t)k * (b->in.nlines / 3 + 1);
	struct rt_spool *sp;
	uint64_t t0, deadline;
	pid_t writer;
	int st = -1;

	/* What the writer will write: the same lines, from @start on. */
	x->text_bytes = 0;
	for (uint64_t n = 0, i = start % b->in.nlines; n < b->records; n++) {
		x->text_bytes += b->in.llen[i];
		if (++i == b->in.nlines)
			i = 0;
	}
	x->pid = start_sender(b, x, NULL);
	if (x->pid < 0) {
		cli_err("cannot start %s", b->ringtaild);
		return -1;
	}
	for (deadline = bench_now_ns() + 10ull * 1000000000;;) {
		char state[340];
		snprintf(state, sizeof(state), "%s/state", x->spool);
		if (access(x->ring, F_OK) == 0 && access(state, F_OK) == 0)
			break;
		if (interrupted)
			return -1;
		if (gone(x->pid) || bench_now_ns() > deadline) {
			cli_err("ringtaild did not start on %s", x->ring);
			x->pid = -1;
			show_log(x->log);
			return -1;
		}
		bench_sleep_ms(2);
	}
	t0 = bench_now_ns();
	fflush(stdout);
	fflush(stderr);
	writer = fork();
	if (writer == 0)
		write_records(b, x, start);
	if (writer < 0) {
		cli_err("fork: %s", strerror(errno));
		return -1;
	}
	/* An interrupt reaches only us: pass it on. */
	while (waitpid(writer, &st, 0) < 0)
		if (errno != EINTR || (interrupted && kill(writer, SIGKILL) < 0))
			break;
	if (interrupted)
		return -1;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		cli_err("writing the records into %s failed (%d)", x->ring,
			WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		show_log(x->log);
		return -1;
	}
	/* SIGTERM: ringtaild drains what the ring holds, makes it durable,
	 * and exits 0 only then. */
	st = bench_stop(x->pid, 120000);
	x->pid = -1;
	x->fill_s = (double)(bench_now_ns() - t0) / 1e9;
	if (st != 0) {
		cli_err("ringtaild on %s ended with %d", x->spool, st);
		show_log(x->log);
		return -1;
	}
	if (rt_spool_open(x->spool, NULL, 0, &sp) != 0) {
		cli_err("%s: not a spool", x->spool);
		return -1;
	}
	x->last_seq = durable_of(sp);
	rt_spool_close(sp);
	x->seg_bytes = bench_segment_bytes(x->spool);
	if (x->last_seq < b->records || x->seg_bytes == 0) {
		cli_err("%s holds %" PRIu64 " records of %" PRIu64, x->spool, x->last_seq,
			b->records);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * The central server
 * ------------------------------------------------------------------------ */

static int connect_loopback(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A central on a loopback port of its own choosing (port 0): @return the
 * port, read back from its --port-file once it listens, or -1. */
static int start_central(struct bench *b)
{
	char port_file[320], *argv[12];
	uint64_t deadline = bench_now_ns() + 10ull * 1000000000;
	int n = 0;

	bench_rm_rf(b->central);
	snprintf(port_file, sizeof(port_file), "%s/central.port", b->dir);
	unlink(port_file);
	argv[n++] = b->ringtaild;
	argv[n++] = "--listen";
	argv[n++] = LOOPBACK ":0";
	argv[n++] = "--port-file";
	argv[n++] = port_file;
	argv[n++] = "--spool";
	argv[n++] = b->central;
	argv[n++] = "--ring";
	argv[n++] = b->noring;
	argv[n] = NULL;
	b->central_pid = bench_spawn(argv, b->central_log);
	if (b->central_pid < 0)
		return -1;
	for (;;) {
		FILE *fp = fopen(port_file, "r");
		int port = 0;
		if (fp) {
			if (fscanf(fp, "%d", &port) != 1)
				port = 0;
			fclose(fp);
		}
		if (port > 0)
			return port;
		if (interrupted)
			return -1; /* the caller stops it */
		if (gone(b->central_pid) || bench_now_ns() > deadline) {
			cli_err("the central ringtaild did not start listening");
			if (!gone(b->central_pid))
				bench_stop(b->central_pid, 5000);
			b->central_pid = -1;
			show_log(b->central_log);
			return -1;
		}
		bench_sleep_ms(2);
	}
}

/* The central's copy of host @name, opened read-only once it exists. */
static struct rt_spool *central_spool(const struct bench *b, const char *name)
{
	char dir[400], path[700];
	struct rt_spool *sp = NULL;
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/%s/%s", b->central, RT_CENTRAL_HOSTS, name);
	d = opendir(dir);
	if (!d)
		return NULL;
	while (!sp && (de = readdir(d)) != NULL) {
		if (strlen(de->d_name) != 32)
			continue; /* not an epoch */
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (rt_spool_open(path, NULL, 0, &sp) != 0)
			sp = NULL; /* being made: later */
	}
	closedir(d);
	return sp;
}

/* ------------------------------------------------------------------------
 * Plain TCP over loopback: the baseline
 * ------------------------------------------------------------------------ */

#define TCP_CHUNK (1u << 20)

struct tcp_end {
	int fd;
	int sending;      /* 1: this end writes, 0: it reads */
	uint64_t bytes;
	uint64_t done_ns; /* when the last byte went or came */
	int err;
};

static void *tcp_end_main(void *arg)
{
	struct tcp_end *e = arg;
	char *buf = malloc(TCP_CHUNK);
	uint64_t left = e->bytes;

	if (!buf) {
		e->err = ENOMEM;
		shutdown(e->fd, SHUT_RDWR); /* so that the other end stops too */
		return NULL;
	}
	memset(buf, 'x', TCP_CHUNK);
	while (left) {
		size_t n = left < TCP_CHUNK ? (size_t)left : TCP_CHUNK;
		ssize_t r = e->sending ? write(e->fd, buf, n) : read(e->fd, buf, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			e->err = r == 0 ? ECONNRESET : errno;
			break;
		}
		left -= (uint64_t)r;
	}
	e->done_ns = bench_now_ns();
	free(buf);
	return NULL;
}

/* @n connections at once, connection i moving @bytes[i]: MB/s of them all
 * (the bytes over the time until the last has arrived), or -1. */
static double tcp_baseline(const uint64_t *bytes, int n)
{
	struct tcp_end snd[MAX_SENDERS], rcv[MAX_SENDERS];
	pthread_t ts[MAX_SENDERS], tr[MAX_SENDERS];
	uint64_t t0, end = 0, total = 0;
	int ok = 1, started = 0;

	memset(snd, 0, sizeof(snd));
	memset(rcv, 0, sizeof(rcv));
	for (int i = 0; i < n; i++)
		snd[i].fd = rcv[i].fd = -1;
	for (int i = 0; i < n && ok; i++) {
		struct sockaddr_in a;
		socklen_t l = sizeof(a);
		int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ok = lfd >= 0 && bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		     listen(lfd, 1) == 0 && getsockname(lfd, (struct sockaddr *)&a, &l) == 0 &&
		     (snd[i].fd = connect_loopback(ntohs(a.sin_port))) >= 0 &&
		     (rcv[i].fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0;
		if (lfd >= 0)
			close(lfd);
		snd[i].bytes = rcv[i].bytes = bytes[i];
		snd[i].sending = 1;
		total += bytes[i];
	}
	t0 = bench_now_ns();
	for (; ok && started < n; started++) {
		if (pthread_create(&tr[started], NULL, tcp_end_main, &rcv[started]) != 0) {
			ok = 0;
			break;
		}
		if (pthread_create(&ts[started], NULL, tcp_end_main, &snd[started]) != 0) {
			shutdown(rcv[started].fd, SHUT_RDWR);
			pthread_join(tr[started], NULL);
			ok = 0;
			break;
		}
	}
	for (int i = 0; i < started; i++) {
		pthread_join(ts[i], NULL);
		pthread_join(tr[i], NULL);
		if (snd[i].err || rcv[i].err)
			ok = 0;
		if (rcv[i].done_ns > end)
			end = rcv[i].done_ns;
	}
	for (int i = 0; i < n; i++) {
		if (snd[i].fd >= 0)
			close(snd[i].fd);
		if (rcv[i].fd >= 0)
			close(rcv[i].fd);
	}
	if (!ok || end <= t0) {
		cli_err("the loopback TCP baseline failed");
		return -1;
	}
	return (double)total / 1e6 / ((double)(end - t0) / 1e9);
}

/* ------------------------------------------------------------------------
 * One run of one case
 * ------------------------------------------------------------------------ */

static int forward_once(struct bench *b, int n, struct sample *out)
{
	struct rt_spool *sp[MAX_SENDERS];
	uint64_t done[MAX_SENDERS], seen[MAX_SENDERS], seg[MAX_SENDERS];
	uint64_t t0, deadline, records = 0, text = 0, wire = 0, end = 0, first = 0;
	char upstream[64];
	int port, left = n, rc = -1;

	memset(sp, 0, sizeof(sp));
	memset(done, 0, sizeof(done));
	memset(seen, 0, sizeof(seen));
	port = start_central(b);
	if (port < 0)
		return -1;
	snprintf(upstream, sizeof(upstream), LOOPBACK ":%d", port);
	/* Fresh: what an earlier run was acknowledged is of no account. */
	for (int i = 0; i < n; i++)
		unlink(b->s[i].fwd_file);
	t0 = bench_now_ns();
	for (int i = 0; i < n; i++) {
		b->s[i].pid = start_sender(b, &b->s[i], upstream);
		if (b->s[i].pid < 0) {
			cli_err("cannot start %s", b->ringtaild);
			goto out;
		}
	}
	/* Long enough for a slow machine: 10 s plus 1 us a record. */
	deadline = t0 + 10ull * 1000000000 + 1000 * b->records * (uint64_t)n;
	while (left > 0) {
		uint64_t now = bench_now_ns();
		for (int i = 0; i < n; i++) {
			if (done[i])
				continue;
			if (!sp[i]) {
				sp[i] = central_spool(b, b->s[i].name);
				if (!sp[i])
					continue;
				seen[i] = now;
			}
			if (durable_of(sp[i]) >= b->s[i].last_seq) {
				done[i] = now;
				left--;
			}
		}
		if (left == 0)
			break;
		for (int i = 0; i < n; i++)
			if (gone(b->s[i].pid)) {
				cli_err("the sender %s ended before its spool was forwarded",
					b->s[i].name);
				b->s[i].pid = -1;
				show_log(b->s[i].log);
				goto out;
			}
		if (gone(b->central_pid)) {
			cli_err("the central ringtaild ended during the run");
			b->central_pid = -1;
			show_log(b->central_log);
			goto out;
		}
		if (interrupted)
			goto out;
		if (now > deadline) {
			cli_err("the central did not get every record within %.0f s",
				(double)(deadline - t0) / 1e9);
			for (int i = 0; i < n; i++)
				if (!done[i] && sp[i])
					cli_err("  %s: up to #%" PRIu64 " of #%" PRIu64, b->s[i].name,
						durable_of(sp[i]), b->s[i].last_seq);
			show_log(b->central_log);
			goto out;
		}
		bench_sleep_ms(1);
	}
	memset(out, 0, sizeof(*out));
	out->central_cores = cpu_seconds(b->central_pid);
	for (int i = 0; i < n; i++)
		out->sender_cores += cpu_seconds(b->s[i].pid);
	out->slowest_text_mbps = -1;
	for (int i = 0; i < n; i++) {
		double own = (double)b->s[i].text_bytes / 1e6 / ((double)(done[i] - t0) / 1e9);
		if (out->slowest_text_mbps < 0 || own < out->slowest_text_mbps)
			out->slowest_text_mbps = own;
		if (done[i] > end)
			end = done[i];
		if (seen[i] > first)
			first = seen[i];
		records += b->s[i].last_seq;
		text += b->s[i].text_bytes;
		wire += b->s[i].seg_bytes;
		seg[i] = b->s[i].seg_bytes;
	}
	out->secs = (double)(end - t0) / 1e9;
	out->startup_ms = (double)(first - t0) / 1e6;
	out->rps = (double)records / out->secs;
	out->text_mbps = (double)text / 1e6 / out->secs;
	out->wire_mbps = (double)wire / 1e6 / out->secs;
	out->central_cores /= out->secs;
	out->sender_cores /= out->secs;
	rc = 0;
out:
	for (int i = 0; i < n; i++) {
		rt_spool_close(sp[i]);
		if (b->s[i].pid > 0 && bench_stop(b->s[i].pid, 30000) != 0 && rc == 0) {
			cli_err("the sender %s did not stop cleanly", b->s[i].name);
			show_log(b->s[i].log);
			rc = -1;
		}
		b->s[i].pid = -1;
	}
	if (b->central_pid > 0 && bench_stop(b->central_pid, 30000) != 0 && rc == 0) {
		cli_err("the central ringtaild did not stop cleanly");
		show_log(b->central_log);
		rc = -1;
	}
	b->central_pid = -1;
	bench_rm_rf(b->central);
	/* The baseline, in the same run, with nothing else going on. */
	if (rc == 0 && (out->tcp_mbps = tcp_baseline(seg, n)) < 0)
		rc = -1;
	return rc;
}

/* ------------------------------------------------------------------------
 * The command
 * ------------------------------------------------------------------------ */

struct summary {
	int senders;
	uint64_t records, text, wire;
	double secs, startup_ms, rps, text_mbps, wire_mbps, tcp_mbps, slowest;
	double central_cores, sender_cores;
};

static void summarize(const struct bench *b, int n, const struct sample *v, int runs,
		      struct summary *s)
{
	double x[MAX_RUNS];

	memset(s, 0, sizeof(*s));
	s->senders = n;
	for (int i = 0; i < n; i++) {
		s->records += b->s[i].last_seq;
		s->text += b->s[i].text_bytes;
		s->wire += b->s[i].seg_bytes;
	}
#define MEDIAN_OF(field)                           \
	do {                                       \
		for (int r = 0; r < runs; r++)     \
			x[r] = v[r].field;         \
		s->field = bench_median(x, runs);  \
	} while (0)
	MEDIAN_OF(secs);
	MEDIAN_OF(startup_ms);
	MEDIAN_OF(rps);
	MEDIAN_OF(text_mbps);
	MEDIAN_OF(wire_mbps);
	MEDIAN_OF(tcp_mbps);
	MEDIAN_OF(central_cores);
	MEDIAN_OF(sender_cores);
	for (int r = 0; r < runs; r++)
		x[r] = v[r].slowest_text_mbps;
	s->slowest = bench_median(x, runs);
#undef MEDIAN_OF
}

static void json_case(const struct summary *s)
{
	printf("\"senders\":%d,\"records\":%" PRIu64 ",\"bytes\":%" PRIu64
	       ",\"wire_bytes\":%" PRIu64 ",\"seconds\":%.3f,\"records_per_s\":%.0f,"
	       "\"mb_per_s\":%.1f,\"wire_mb_per_s\":%.1f,\"tcp_mb_per_s\":%.1f,\"ratio\":%.3f,"
	       "\"wire_ratio\":%.3f,\"per_sender_mb_per_s\":%.1f,\"central_cpu_cores\":%.2f,"
	       "\"sender_cpu_cores\":%.2f",
	       s->senders, s->records, s->text, s->wire, s->secs, s->rps, s->text_mbps,
	       s->wire_mbps, s->tcp_mbps, s->text_mbps / s->tcp_mbps, s->wire_mbps / s->tcp_mbps,
	       s->slowest, s->central_cores, s->sender_cores);
}

static const char usage[] =
	"usage: ringtail bench forward [--size BYTES | --corpus DIR] [--records N] [--senders N]\n"
	"                              [--runs N] [--dir DIR] [--json]\n"
	"Records/s and MB/s from a sender's spool to a central ringtaild, durable there,\n"
	"over 127.0.0.1, beside plain loopback TCP moving the same bytes in the same run.\n"
	"The real ringtaild fills each sender's spool first (--records records of\n"
	"--size bytes, or the lines of DIR/*.log, e.g. ../shared/corpus/loghub from the\n"
	"loghub repository); then a central ringtaild --listen and the senders with\n"
	"--upstream are started, timed until the central holds every record.\n"
	"Default: 100-byte synthetic records, 5000000 per sender, 1 sender and then 3\n"
	"senders at once, median of 3 runs, spools in /var/tmp.\n";

int bench_forward(int argc, char **argv)
{
	static const struct option opts[] = {
		{"size", required_argument, NULL, 's'},    {"corpus", required_argument, NULL, 'c'},
		{"records", required_argument, NULL, 'n'}, {"senders", required_argument, NULL, 'S'},
		{"runs", required_argument, NULL, 'r'},    {"dir", required_argument, NULL, 'd'},
		{"json", no_argument, NULL, 'j'},          {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct bench b; /* big: not on the stack */
	static struct sample samples[2][MAX_RUNS];
	struct summary sum[2];
	struct sigaction sa, old_int, old_term;
	double fill_mbps[MAX_SENDERS];
	const char *base = "/var/tmp";
	uint64_t v;
	int cases[2] = {1, 3}, ncases = 2, runs = 3, c, ret = 1;

	memset(&b, 0, sizeof(b));
	b.size = 100;
	b.records = 5000000;
	b.central_pid = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (rt_parse_size(optarg, &b.size) || b.size == 0 || b.size > 60000)
				goto bad;
			break;
		case 'c':
			b.corpus = optarg;
			break;
		case 'n':
			if (rt_parse_u64(optarg, &b.records) || b.records == 0 ||
			    b.records > 1000000000)
				goto bad;
			break;
		case 'S':
			if (rt_parse_u64(optarg, &v) || v == 0 || v > MAX_SENDERS)
				goto bad;
			cases[0] = (int)v;
			ncases = 1;
			break;
		case 'r':
			if (rt_parse_u64(optarg, &v) || v == 0 || v > MAX_RUNS)
				goto bad;
			runs = (int)v;
			break;
		case 'd':
			base = optarg;
			break;
		case 'j':
			b.json = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (optind < argc)
		goto bad;
	if (bench_find_bin("ringtaild", "../spooler", b.ringtaild))
		return 1;
	if (b.corpus) {
		int err = bench_input_corpus(&b.in, b.corpus);
		if (err) {
			cli_err("%s: cannot read log files (%s)", b.corpus, strerror(-err));
			bench_input_free(&b.in);
			return 1;
		}
	} else if (bench_input_synthetic(&b.in, b.size)) {
		cli_err("out of memory");
		bench_input_free(&b.in);
		return 1;
	}
	b.nsenders = ncases == 2 ? cases[1] : cases[0];

	snprintf(b.dir, sizeof(b.dir), "%s/rt-bench-fwd-%d", base, (int)getpid());
	snprintf(b.central, sizeof(b.central), "%s/central", b.dir);
	snprintf(b.central_log, sizeof(b.central_log), "%s/central.log", b.dir);
	snprintf(b.noring, sizeof(b.noring), "/dev/shm/rt-bench-fwd-%d-none", (int)getpid());
	for (int i = 0; i < b.nsenders; i++) {
		struct sender *x = &b.s[i];
		snprintf(x->name, sizeof(x->name), "host%d", i);
		snprintf(x->ring, sizeof(x->ring), "/dev/shm/rt-bench-fwd-%d-%d", (int)getpid(), i);
		snprintf(x->spool, sizeof(x->spool), "%s/%s", b.dir, x->name);
		snprintf(x->fwd_file, sizeof(x->fwd_file), "%s/forward", x->spool);
		snprintf(x->log, sizeof(x->log), "%s/%s.log", b.dir, x->name);
		x->pid = -1;
	}
	if (mkdir(b.dir, 0700) < 0) {
		cli_err("%s: %s", b.dir, strerror(errno));
		bench_input_free(&b.in);
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);

	if (!b.json) {
		if (b.corpus)
			printf("bench forward: the lines of %s/*.log (%zu distinct, from the loghub "
			       "repository, " LOGHUB "),\n",
			       b.corpus, b.in.nlines);
		else
			printf("bench forward: synthetic %" PRIu64 "-byte records,\n", b.size);
		printf("  %" PRIu64 " records per sender, median of %d runs, over " LOOPBACK
		       ", spools in %s, %ld CPUs\n",
		       b.records, runs, base, sysconf(_SC_NPROCESSORS_ONLN));
	}
	for (int i = 0; i < b.nsenders; i++) {
		struct sender *x = &b.s[i];
		if (fill(&b, i))
			goto out;
		if (!b.json)
			printf("  filled %s: %" PRIu64 " records, %.1f MB of log text, %.1f MB of "
			       "segments (compression %.2f), in %.2f s by ringtaild: %.2f M records/s, "
			       "%.0f MB/s\n",
			       x->name, x->last_seq, (double)x->text_bytes / 1e6,
			       (double)x->seg_bytes / 1e6, (double)x->text_bytes / (double)x->seg_bytes,
			       x->fill_s, (double)x->last_seq / x->fill_s / 1e6,
			       (double)x->text_bytes / 1e6 / x->fill_s);
	}
	for (int r = 0; r < runs; r++)
		for (int k = 0; k < ncases; k++) {
			struct sample *s = &samples[k][r];
			if (forward_once(&b, cases[k], s))
				goto out;
			if (!b.json)
				printf("  run %d, %d sender%s: %.2f s (connected after %.0f ms), "
				       "%.2f M records/s, %.0f MB/s of log text, %.0f MB/s on the wire, "
				       "CPU: central %.2f, sender%s %.2f cores; TCP %.0f MB/s\n",
				       r + 1, cases[k], cases[k] > 1 ? "s" : "", s->secs, s->startup_ms,
				       s->rps / 1e6, s->text_mbps, s->wire_mbps, s->central_cores,
				       cases[k] > 1 ? "s" : "", s->sender_cores, s->tcp_mbps);
		}
	for (int k = 0; k < ncases; k++)
		summarize(&b, cases[k], samples[k], runs, &sum[k]);
	for (int i = 0; i < b.nsenders; i++)
		fill_mbps[i] = (double)b.s[i].text_bytes / 1e6 / b.s[i].fill_s;
	if (!b.json) {
		printf("median of %d runs:   records/s  log text MB/s  wire MB/s  TCP MB/s  text/TCP"
		       "  wire/TCP  central CPU\n",
		       runs);
		for (int k = 0; k < ncases; k++) {
			const struct summary *s = &sum[k];
			char label[32];
			snprintf(label, sizeof(label), "%d sender%s%s", s->senders,
				 s->senders > 1 ? "s" : "", s->senders > 1 ? ", total" : "");
			printf("  %-17s %8.2f M  %13.0f  %9.0f  %8.0f  %8.2f  %8.3f  %5.2f cores\n",
			       label, s->rps / 1e6, s->text_mbps, s->wire_mbps, s->tcp_mbps,
			       s->text_mbps / s->tcp_mbps, s->wire_mbps / s->tcp_mbps,
			       s->central_cores);
			if (s->senders > 1)
				printf("  %-17s %10s  %13.0f\n", "  slowest sender", "", s->slowest);
		}
		printf("MB/s of log text: the records' message bytes (as `ringtail bench spool` "
		       "counts them);\n"
		       "wire: the segment bytes forwarded (LZ4-compressed, as on disk); TCP: plain "
		       "loopback\n"
		       "connections, as many as senders, moving the same segment bytes. ringtaild "
		       "filled\n"
		       "the spools at %.0f MB/s of log text (median; `ringtail bench spool` "
		       "measures the\n"
		       "spooler's own rate).%s\n",
		       bench_median(fill_mbps, b.nsenders),
		       b.corpus ? " Records: loghub (" LOGHUB ")." : "");
	}
	printf("{\"bench\":\"forward\",\"input\":\"%s\",", b.corpus ? "corpus" : "synthetic");
	if (b.corpus)
		printf("\"source\":\"" LOGHUB "\",");
	printf("\"record_bytes\":%.1f,\"records_per_sender\":%" PRIu64 ",\"runs\":%d,"
	       "\"cpus\":%ld,\"fill_mb_per_s\":%.1f,",
	       (double)b.s[0].text_bytes / (double)b.records, b.records, runs,
	       sysconf(_SC_NPROCESSORS_ONLN), bench_median(fill_mbps, b.nsenders));
	json_case(&sum[0]);
	if (ncases == 2) {
		printf(",\"multi\":{");
		json_case(&sum[1]);
		printf("}");
	}
	printf("}\n");
	ret = 0;
out:
	if (interrupted)
		cli_err("interrupted");
	for (int i = 0; i < b.nsenders; i++) {
		if (b.s[i].pid > 0)
			bench_stop(b.s[i].pid, 5000);
		unlink(b.s[i].ring);
	}
	if (b.central_pid > 0)
		bench_stop(b.central_pid, 5000);
	bench_rm_rf(b.dir);
	bench_input_free(&b.in);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	return ret;
bad:
	fputs(usage, stderr);
	return 2;
}
