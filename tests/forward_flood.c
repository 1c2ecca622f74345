/* SPDX-License-Identifier: MIT */
/*
 * forward_flood - a real sender gets through while a hostile process holds
 * --conns (500) connections to the central from 127.0.0.2..127.0.0.254, each
 * sending one byte of a HELLO a second and connecting again as soon as it
 * is closed (at most ten times a second per connection). The central runs
 * with --handshake-timeout 2s and its default 256 slots.
 *
 * Measured, with a spool of records ready to go: the time from the start of
 * the real ringtaild --upstream to its first acknowledged batch, and to all
 * its records acknowledged; once without the flood (the baseline), once
 * during it. Checked: the flood was real (the attacker held hundreds of
 * connections open at once and the central had to end thousands of
 * handshakes, said in its log as counts, not line by line); the real sender
 * was never told "too many connections" and got its first batch
 * acknowledged within the handshake timeout; everything arrived; and
 * connections from one address never held more than 8 handshake places (a
 * second hostile process opens 50 from 127.0.0.9).
 *
 *   forward_flood RINGTAILD RINGTAIL [--conns N] [--seconds S]
 */
#include <getopt.h>
#include <sys/resource.h>

#define SC_PROCS 2
#define SC_MAXREC 2000000u
#include "forward_check.h"
#include "forward_client.h"

static struct fc f;

struct flood_stats {
	uint64_t connects, closed_by_server, bytes, refused_connects;
	int max_open;
	int ready;   /* the first round of connections is made */
	int stop;
};

/* The hostile process: @n connections from @addrs addresses (127.0.0.2 on,
 * or only @only), dribbling a HELLO a byte a second. */
static _Noreturn void flood(int n, int addrs, const char *only, struct flood_stats *st)
{
	struct slot {
		int fd;
		size_t sent;
		uint64_t next, again;
	} *s = calloc((size_t)n, sizeof(*s));
	struct pollfd *pf = calloc((size_t)n, sizeof(*pf));
	struct rt_hello hello;
	struct rt_buf m = {0};
	struct rlimit rl;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	memset(&hello, 0, sizeof(hello));
	hello.version = RT_WIRE_VERSION;
	snprintf(hello.host, sizeof(hello.host), "slow-loris");
	rt_wire_hello(&m, &hello);
	for (int i = 0; i < n; i++)
		s[i].fd = -1;
	while (!__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE)) {
		uint64_t now = t_now_ns();
		int open = 0, made = 0;
		for (int i = 0; i < n; i++) {
			if (s[i].fd < 0 && now >= s[i].again) {
				char from[32];
				struct sockaddr_in a = {.sin_family = AF_INET,
							.sin_port = htons((uint16_t)f.port)};
				struct sockaddr_in b = {.sin_family = AF_INET};
				int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
				if (fd < 0)
					continue;
				if (only)
					snprintf(from, sizeof(from), "%s", only);
				else
					snprintf(from, sizeof(from), "127.0.0.%d", 2 + i % addrs);
				inet_pton(AF_INET, from, &b.sin_addr);
				inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
				if (bind(fd, (struct sockaddr *)&b, sizeof(b)) < 0 ||
				    (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 &&
				     errno != EINPROGRESS)) {
					close(fd);
					__atomic_add_fetch(&st->refused_connects, 1, __ATOMIC_RELAXED);
					s[i].again = now + 100000000ull;
					continue;
				}
				s[i].fd = fd;
				s[i].sent = 0;
				/* Spread over the second, so that bytes come all
				 * the time, as in the attack measured. */
				s[i].next = now + (uint64_t)(i * 1000000000ull / (unsigned)n);
				s[i].again = now + 100000000ull;
				__atomic_add_fetch(&st->connects, 1, __ATOMIC_RELAXED);
				made++;
			}
			if (s[i].fd >= 0 && now >= s[i].next && s[i].sent < m.len) {
				if (send(s[i].fd, m.p + s[i].sent, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) {
					s[i].sent++;
					__atomic_add_fetch(&st->bytes, 1, __ATOMIC_RELAXED);
				}
				s[i].next = now + 1000000000ull;
			}
			pf[i] = (struct pollfd){s[i].fd, POLLIN, 0};
			open += s[i].fd >= 0;
		}
		if (open > st->max_open)
			st->max_open = open;
		if (!made && !st->ready)
			__atomic_store_n(&st->ready, 1, __ATOMIC_RELEASE);
		if (poll(pf, (nfds_t)n, 5) > 0)
			for (int i = 0; i < n; i++)
				if (s[i].fd >= 0 && pf[i].revents) {
					/* An ERROR, or the end: the server let go. */
					close(s[i].fd);
					s[i].fd = -1;
					__atomic_add_fetch(&st->closed_by_server, 1, __ATOMIC_RELAXED);
				}
	}
	_exit(0);
}

static pid_t start_flood(int n, int addrs, const char *only, struct flood_stats **st)
{
	pid_t pid;

	*st = mmap(NULL, sizeof(**st), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(*st != MAP_FAILED, "mmap");
	memset(*st, 0, sizeof(**st));
	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0)
		flood(n, addrs, only, *st);
	for (uint64_t deadline = t_now_ns() + 30ull * 1000000000;
	     !__atomic_load_n(&(*st)->ready, __ATOMIC_ACQUIRE);) {
		CHECK(t_now_ns() < deadline, "the flood never got going");
		t_pause();
	}
	return pid;
}

static void stop_flood(pid_t pid, struct flood_stats *st)
{
	__atomic_store_n(&st->stop, 1, __ATOMIC_RELEASE);
	CHECK_EQ(t_wait(pid), 0);
}

/* A spool of host @h with records ready to forward. */
static void fill(int h, int records)
{
	const char *argv[] = {"ringtaild", "--ring", f.host[h].ring, "--spool", f.host[h].spool,
			      "--host", f.host[h].name, "--segment-size", "64K", "-q", NULL};
	const char *rings[SC_PROCS];
	pid_t d = fc_spawn(f.ringtaild, argv, f.host[h].log);

	for (int i = 0; i < SC_PROCS; i++)
		rings[i] = f.host[h].ring;
	sc_start_writers_into(500, rings);
	for (uint64_t deadline = t_now_ns() + 60ull * 1000000000;
	     fc_durable(f.host[h].spool) < (uint64_t)records;) {
		CHECK(t_now_ns() < deadline, "the spool of host %d never filled", h);
		t_pause();
	}
	sc_stop_writers();
	fc_stop(d);
}

/* Start host @h's forwarding: seconds to its first acknowledged batch and
 * to all of what its spool held at the start (its ringtaild adds messages
 * of its own after). */
static void forward_timed(int h, double *first, double *all)
{
	uint64_t want = fc_durable(f.host[h].spool), t0 = t_now_ns(), deadline = t0 + 60ull * 1000000000;

	fc_start_sender(&f, h);
	while (fc_central_durable(&f, h) == 0) {
		CHECK(t_now_ns() < deadline, "%s: no batch acknowledged in 60 s", f.host[h].name);
		t_pause();
	}
	*first = (double)(t_now_ns() - t0) / 1e9;
	while (fc_central_durable(&f, h) < want) {
		CHECK(t_now_ns() < deadline, "%s: not all acknowledged in 60 s", f.host[h].name);
		t_pause();
	}
	*all = (double)(t_now_ns() - t0) / 1e9;
	fc_stop(f.host[h].pid);
}

/* Lines of the central's log holding @s. */
static int count_lines(const char *s)
{
	char line[2048];
	int n = 0;
	FILE *fp = fopen(f.log, "r");

	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp))
		n += strstr(line, s) != NULL;
	fclose(fp);
	return n;
}

/* The central's counts of ended handshakes, from its log: the sum of the
 * numbers before @what in its summary lines. */
static uint64_t logged_count(const char *what)
{
	char line[2048];
	uint64_t total = 0;
	FILE *fp = fopen(f.log, "r");

	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp)) {
		char *at = strstr(line, what);
		if (!strstr(line, "connections ended before they authenticated") || !at)
			continue;
		while (at > line && at[-1] == ' ')
			at--;
		while (at > line && at[-1] >= '0' && at[-1] <= '9')
			at--;
		total += strtoull(at, NULL, 10);
	}
	fclose(fp);
	return total;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"conns", required_argument, NULL, 'c'},
					     {"seconds", required_argument, NULL, 's'},
					     {NULL, 0, NULL, 0}};
	static const char *cargs[] = {"--handshake-timeout", "2s", NULL};
	struct flood_stats *st, *st2;
	double base_first, base_all, first, all, secs = 4;
	int conns = 500, opt, per_addr_evicted;
	uint64_t ended;
	pid_t fl, fl2;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1)
		if (opt == 'c')
			conns = atoi(optarg);
		else if (opt == 's')
			secs = atof(optarg);
	CHECK(optind + 2 == argc, "usage: forward_flood RINGTAILD RINGTAIL [--conns N] [--seconds S]");
	fc_init(&f, "fwflood", argv[optind], argv[optind + 1], 1);
	memcpy(f.central_args, cargs, sizeof(cargs));
	fill(0, 20000);
	fill(1, 20000);
	fc_start_central(&f);

	/* Without a flood. */
	forward_timed(0, &base_first, &base_all);
	printf("no flood: first batch acknowledged after %.3f s, all %llu records after %.3f s\n",
	       base_first, (unsigned long long)fc_durable(f.host[0].spool), base_all);

	/* With one. */
	fl = start_flood(conns, 253, NULL, &st);
	{
		/* Until the pool is full and eviction goes on. */
		struct timespec d = {1, 0};
		nanosleep(&d, NULL);
	}
	forward_timed(1, &first, &all);
	printf("%d slow connections: first batch acknowledged after %.3f s, all %llu records after "
	       "%.3f s\n",
	       conns, first, (unsigned long long)fc_durable(f.host[1].spool), all);
	/* Let the flood go on a little, so that the numbers below are of it. */
	for (uint64_t until = t_now_ns() + (uint64_t)(secs * 1e9); t_now_ns() < until;)
		t_pause();
	stop_flood(fl, st);
	/* Then one address alone, holding on to 50, once the others' places
	 * have run out of time. */
	{
		struct timespec d = {2, 200 * 1000000};
		nanosleep(&d, NULL);
	}
	fl2 = start_flood(50, 1, "127.0.0.9", &st2);
	{
		struct timespec d = {0, 500 * 1000000};
		nanosleep(&d, NULL);
	}
	stop_flood(fl2, st2);
	fc_stop(f.central_pid);

	ended = logged_count("ran out of time") + logged_count("were evicted (pool full)") +
		logged_count("were evicted (too many from one address)");
	per_addr_evicted = (int)logged_count("were evicted (too many from one address)") +
			   count_lines("evicted: more than 8 connections from 127.0.0.9");
	printf("the flood: %llu connections made (at most %d open at once), %llu closed by the "
	       "central, %llu bytes sent; the central's log counts %llu more handshakes ended by "
	       "deadline or eviction than it logged one by one; one address opening 50: %d evicted "
	       "for holding 8 places already\n",
	       (unsigned long long)st->connects, st->max_open,
	       (unsigned long long)st->closed_by_server, (unsigned long long)st->bytes,
	       (unsigned long long)ended, per_addr_evicted);
	CHECK(st->connects >= (uint64_t)conns && st->max_open >= conns * 9 / 10,
	      "the flood was not one: %llu connections, %d open at once",
	      (unsigned long long)st->connects, st->max_open);
	CHECK(st->closed_by_server >= (uint64_t)conns / 2, "the central let go of only %llu",
	      (unsigned long long)st->closed_by_server);
	CHECK(ended >= (uint64_t)conns / 2, "the central's log counts only %llu ended handshakes",
	      (unsigned long long)ended);
	CHECK(per_addr_evicted >= 50 - 8, "one address kept %d of its 50 places",
	      50 - per_addr_evicted);
	CHECK(!fc_file_has(f.host[1].log, "too many connections"),
	      "the real sender was told the central had too many connections");
	CHECK(first < 2.0, "the real sender waited %.2f s for its first batch (handshake timeout 2 s)",
	      first);
	{
		char path[400];
		CHECK(!fc_central_spool(&f, "slow-loris", path, sizeof(path)),
		      "the flood left a spool on the central");
	}
	printf("ok - during %d slow connections the real sender's first batch was acknowledged "
	       "after %.3f s (%.3f s without), all its records after %.3f s (%.3f s without)\n",
	       conns, first, base_first, all, base_all);
	fc_cleanup(&f);
	return 0;
}
