/* SPDX-License-Identifier: MIT */
/* cmd_log.c - `ringtail log` and `ringtail wrap`: records from a shell. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ringtail.h"
#include "rtrec.h"

#define MAX_ATTRS 64
/* Pieces a too-long message is cut into (well under a default chunk). */
#define PIECE (32u << 10)

/* How long, in all, a run waits for a full ring to take its records. */
#define RETRY_NS (5ull * 1000000000)

struct outcome {
	uint64_t tried;    /* records tried (a piece is a record) */
	uint64_t failed;   /* ... not written */
	uint64_t split;    /* messages cut into pieces */
	int first_err;
	uint64_t waited;   /* ns spent waiting for room */
};

/* One record. A full ring (-ENOBUFS) is waited for, as an application may
 * retry: each refused try is counted by the ring as a refused call (not a
 * lost record), and the run waits RETRY_NS in all, no more. */
static int put1(struct outcome *oc, int sev, const struct rt_opts *o, const char *msg, size_t len)
{
	uint64_t pause = 100000;
	int err;

	oc->tried++;
	while ((err = rt_writex(sev, o, msg, len)) == -ENOBUFS && oc->waited < RETRY_NS) {
		struct timespec d = {0, (long)pause};
		nanosleep(&d, NULL);
		oc->waited += pause;
		if (pause < 50000000)
			pause *= 2;
	}
	if (err) {
		oc->failed++;
		if (!oc->first_err)
			oc->first_err = err;
	}
	return err;
}

/*
 * Write one message. One longer than PIECE (32 KiB) is always written as
 * ceil(len / PIECE) records of PIECE bytes (the last one shorter), in
 * order, each with the attribute piece=K/N, so that nothing is tried whole
 * and refused first. Every piece is tried and counted.
 */
static void put(struct outcome *oc, int sev, const struct rt_opts *o, const char *msg, size_t len)
{
	struct rt_attr attrs[MAX_ATTRS + 1];
	struct rt_opts po;
	char val[48];
	size_t n, k;

	if (len <= PIECE) {
		put1(oc, sev, o, msg, len);
		return;
	}
	po = *o;
	if (o->nattrs)
		memcpy(attrs, o->attrs, o->nattrs * sizeof(attrs[0]));
	attrs[o->nattrs].key = "piece";
	attrs[o->nattrs].value = val;
	po.attrs = attrs;
	po.nattrs = o->nattrs + 1;
	n = (len + PIECE - 1) / PIECE;
	oc->split++;
	for (k = 0; k < n; k++) {
		size_t off = k * PIECE;
		snprintf(val, sizeof(val), "%zu/%zu", k + 1, n);
		put1(oc, sev, &po, msg + off, len - off < PIECE ? len - off : PIECE);
	}
}

static int report(const struct outcome *oc)
{
	if (!oc->failed)
		return 0;
	if (oc->tried == 1)
		cli_err("record not written: %s", rt_strerror(oc->first_err));
	else
		cli_err("%llu of %llu records not written%s (first: %s)",
			(unsigned long long)oc->failed, (unsigned long long)oc->tried,
			oc->split ? " (a piece of a long message is a record)" : "",
			rt_strerror(oc->first_err));
	return 1;
}

/* The default service, as logger(1) takes its tag: the login name (or the
 * user's name); "uid-N" when that cannot be a service name. */
static void default_service(void)
{
	const char *n = getlogin();
	struct passwd *pw;
	char buf[32];

	if (!n || !rt_service_name_ok(n, strlen(n))) {
		pw = getpwuid(geteuid());
		n = pw ? pw->pw_name : NULL;
	}
	if (!n || !rt_service_name_ok(n, strlen(n))) {
		snprintf(buf, sizeof(buf), "uid-%u", (unsigned)geteuid());
		n = buf;
	}
	rt_set_service(n);
}

static const char log_usage[] =
	"usage: ringtail log [-t SERVICE] [-p LEVEL] [--trace HEX32] [--span HEX16]\n"
	"                    [-a KEY=VALUE]... [--ring PATH] [MESSAGE...]\n"
	"Writes MESSAGE (the words joined by spaces) as one record, or each line of\n"
	"standard input as a record when no MESSAGE is given. LEVEL is trace, debug,\n"
	"info, notice, warn, error, crit, fatal (facility.level is accepted) or 1..24.\n"
	"SERVICE defaults to the login name, as logger(1) does; ringtail and\n"
	"ringtaild are ringtail's own and refused. A message longer than 32 KiB is\n"
	"written as pieces of 32 KiB, one record each, with the attribute piece=K/N.\n"
	"A full ring is waited for (5 s in all); the exit status is 1 if any record\n"
	"(a piece is a record) was not written, and stderr says how many.\n";

int cmd_log(int argc, char **argv)
{
	static const struct option opts[] = {
		{"tag", required_argument, NULL, 't'},   {"service", required_argument, NULL, 't'},
		{"priority", required_argument, NULL, 'p'}, {"level", required_argument, NULL, 'p'},
		{"trace", required_argument, NULL, 'T'}, {"span", required_argument, NULL, 'S'},
		{"attr", required_argument, NULL, 'a'},  {"ring", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
	};
	struct rt_attr attrs[MAX_ATTRS];
	struct rt_opts o;
	struct outcome oc;
	uint8_t trace[16], span[8];
	int sev = RT_INFO, c, i;

	memset(&o, 0, sizeof(o));
	o.attrs = attrs;
	optind = 1;
	memset(&oc, 0, sizeof(oc));
	default_service();
	while ((c = getopt_long(argc, argv, "+t:p:a:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (!rt_service_name_ok(optarg, strlen(optarg))) {
				cli_err("bad service name '%s' (1..%d bytes of UTF-8, no '/' or control "
					"bytes, not . or .., not ringtail or ringtaild)",
					optarg, RT_SERVICE_MAX);
				return 2;
			}
			/* The process's service: `ringtail stat` shows it too. */
			rt_set_service(optarg);
			break;
		case 'p':
			sev = cli_parse_severity(optarg);
			if (sev < 0) {
				cli_err("bad level '%s'", optarg);
				return 2;
			}
			break;
		case 'T':
			if (rt_parse_hex(optarg, trace, 16, 0)) {
				cli_err("--trace takes 32 hex digits");
				return 2;
			}
			o.trace_id = trace;
			break;
		case 'S':
			if (rt_parse_hex(optarg, span, 8, 0)) {
				cli_err("--span takes 16 hex digits");
				return 2;
			}
			o.span_id = span;
			break;
		case 'a': {
			char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg || eq - optarg > RT_ATTR_KEY_MAX) {
				cli_err("bad attribute '%s' (KEY=VALUE)", optarg);
				return 2;
			}
			if (o.nattrs == MAX_ATTRS) {
				cli_err("at most %d attributes", MAX_ATTRS);
				return 2;
			}
			*eq = '\0';
			attrs[o.nattrs].key = optarg;
			attrs[o.nattrs].value = eq + 1;
			o.nattrs++;
			break;
		}
		case 'r':
			cli_use_ring(optarg);
			break;
		case 'h':
			fputs(log_usage, stdout);
			return 0;
		default:
			fputs(log_usage, stderr);
			return 2;
		}
	}

	if (optind < argc) {
		size_t len = 0, n;
		char *msg;
		for (i = optind; i < argc; i++)
			len += strlen(argv[i]) + 1;
		msg = malloc(len);
		if (!msg) {
			cli_err("out of memory");
			return 1;
		}
		for (n = 0, i = optind; i < argc; i++) {
			size_t l = strlen(argv[i]);
			memcpy(msg + n, argv[i], l);
			n += l;
			if (i + 1 < argc)
				msg[n++] = ' ';
		}
		put(&oc, sev, &o, msg, n);
		free(msg);
	} else {
		char *line = NULL;
		size_t cap = 0;
		ssize_t n;
		while ((n = getline(&line, &cap, stdin)) >= 0) {
			if (n > 0 && line[n - 1] == '\n')
				n--;
			put(&oc, sev, &o, line, (size_t)n);
		}
		free(line);
	}
	return report(&oc);
}

/* ------------------------------------------------------------------------
 * wrap
 * ------------------------------------------------------------------------ */

struct stream {
	int fd;
	int sev;
	int echo_fd; /* -1 unless --tee */
	char *buf;
	size_t len;
	size_t cap;
};

static pid_t child_pid;

static void forward_signal(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

/* Emit every complete line in the buffer (all of it at EOF). */
static void flush_lines(struct stream *s, const struct rt_opts *o, struct outcome *oc, int eof)
{
	size_t start = 0, i;

	for (i = 0; i < s->len; i++) {
		if (s->buf[i] != '\n')
			continue;
		put(oc, s->sev, o, s->buf + start, i - start);
		start = i + 1;
	}
	/* A line longer than a piece is written as it grows. */
	if (s->len - start >= PIECE || (eof && s->len > start)) {
		put(oc, s->sev, o, s->buf + start, s->len - start);
		start = s->len;
	}
	memmove(s->buf, s->buf + start, s->len - start);
	s->len -= start;
}

static int pump(struct stream *s, const struct rt_opts *o, struct outcome *oc)
{
	ssize_t n;

	if (s->cap - s->len < 4096) {
		size_t cap = s->cap ? s->cap * 2 : 65536;
		char *nb = realloc(s->buf, cap);
		if (!nb)
			return -ENOMEM;
		s->buf = nb;
		s->cap = cap;
	}
	n = read(s->fd, s->buf + s->len, s->cap - s->len);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -errno;
	if (n == 0) {
		flush_lines(s, o, oc, 1);
		return 1;
	}
	if (s->echo_fd >= 0) {
		ssize_t w, off = 0;
		while (off < n && (w = write(s->echo_fd, s->buf + s->len + off, (size_t)(n - off))) > 0)
			off += w;
	}
	s->len += (size_t)n;
	flush_lines(s, o, oc, 0);
	return 0;
}

static const char wrap_usage[] =
	"usage: ringtail wrap -t SERVICE [--tee] [--ring PATH] -- COMMAND [ARGS...]\n"
	"Runs COMMAND and records each line of its standard output as INFO and of its\n"
	"standard error as ERROR. --tee also copies them to this terminal. Exits with\n"
	"COMMAND's status (128+N if it was killed by signal N, 127 if it cannot run).\n";

int cmd_wrap(int argc, char **argv)
{
	static const struct option opts[] = {
		{"tag", required_argument, NULL, 't'}, {"service", required_argument, NULL, 't'},
		{"tee", no_argument, NULL, 'e'},       {"ring", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0},
	};
	struct stream st[2];
	struct rt_opts o;
	struct outcome oc = {0, 0, 0, 0, 0};
	struct sigaction sa;
	int out[2], errp[2], exec_pipe[2], tee = 0, c, status = 0, exec_err = 0, open_n = 2;
	int have_service = 0;

	memset(&o, 0, sizeof(o));
	optind = 1;
	while ((c = getopt_long(argc, argv, "+t:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (!rt_service_name_ok(optarg, strlen(optarg))) {
				cli_err("bad service name '%s' (1..%d bytes of UTF-8, no '/' or control "
					"bytes, not . or .., not ringtail or ringtaild)",
					optarg, RT_SERVICE_MAX);
				return 2;
			}
			rt_set_service(optarg);
			have_service = 1;
			break;
		case 'e':
			tee = 1;
			break;
		case 'r':
			cli_use_ring(optarg);
			break;
		case 'h':
			fputs(wrap_usage, stdout);
			return 0;
		default:
			fputs(wrap_usage, stderr);
			return 2;
		}
	}
	if (!have_service || optind >= argc) {
		fputs(wrap_usage, stderr);
		return 2;
	}
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
	    pipe2(exec_pipe, O_CLOEXEC) < 0) {
		cli_err("pipe: %s", strerror(errno));
		return 1;
	}
	child_pid = fork();
	if (child_pid < 0) {
		cli_err("fork: %s", strerror(errno));
		return 1;
	}
	if (child_pid == 0) {
		int e;
		dup2(out[1], STDOUT_FILENO);
		dup2(errp[1], STDERR_FILENO);
		execvp(argv[optind], argv + optind);
		e = errno;
		if (write(exec_pipe[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	close(out[1]);
	close(errp[1]);
	close(exec_pipe[1]);
	if (read(exec_pipe[0], &exec_err, sizeof(exec_err)) == (ssize_t)sizeof(exec_err)) {
		cli_err("cannot run '%s': %s", argv[optind], strerror(exec_err));
		waitpid(child_pid, NULL, 0);
		return 127;
	}
	close(exec_pipe[0]);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward_signal;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	memset(st, 0, sizeof(st));
	st[0].fd = out[0];
	st[0].sev = RT_INFO;
	st[0].echo_fd = tee ? STDOUT_FILENO : -1;
	st[1].fd = errp[0];
	st[1].sev = RT_ERROR;
	st[1].echo_fd = tee ? STDERR_FILENO : -1;
	while (open_n > 0) {
		struct pollfd pfd[2];
		int k;
		for (k = 0; k < 2; k++) {
			pfd[k].fd = st[k].fd;
			pfd[k].events = POLLIN;
			pfd[k].revents = 0;
		}
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			cli_err("poll: %s", strerror(errno));
			break;
		}
		for (k = 0; k < 2; k++) {
			int r;
			if (st[k].fd < 0 || !(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = pump(&st[k], &o, &oc);
			if (r != 0) {
				close(st[k].fd);
				st[k].fd = -1;
				open_n--;
			}
		}
	}
	free(st[0].buf);
	free(st[1].buf);
	while (waitpid(child_pid, &status, 0) < 0 && errno == EINTR)
		;
	report(&oc);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
