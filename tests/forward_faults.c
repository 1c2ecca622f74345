/* SPDX-License-Identifier: MIT */
/*
 * forward_faults - three sending hosts forward through a proxy this test
 * controls to one central, while their writers write all along. At random,
 * --faults times (default 120): the central is SIGKILLed and started again;
 * a sender is SIGKILLed and started again; or the proxy cuts every
 * connection after a random number of bytes more (mostly inside a BATCH).
 * After each fault the test waits until the central has stored something
 * new, so that every fault hits forwarding that is going on. Then the
 * writers stop and everything drains. Checked, for every host: the central
 * holds every record the writers were told was taken, exactly once, in the
 * same blocks as at home, sequence numbers gapless; `ringtail verify` and
 * `lz4 -t` clean on every spool, the senders' and the central's.
 *
 *   forward_faults RINGTAILD RINGTAIL [--faults N]
 */
#include <getopt.h>
#include <netinet/tcp.h>

#define SC_PROCS 3
#define SC_MAXREC 3000000u
#include "forward_check.h"
#include "rtwire.h"

/* ------------------------------------------------------------------------
 * The proxy: relays sender <-> central; on request, cuts each connection
 * after a random number of further bytes from the sender.
 * ------------------------------------------------------------------------ */

#define PX_MAX 16

struct px_pair {
	int a, b;      /* the sender's side, the central's side */
	long budget;   /* bytes sender -> central until the cut; -1: none */
	/* Where the sender's stream is: a header being read, or a payload. */
	uint8_t hdr[RT_WIRE_HDR];
	uint32_t hdr_have;
	uint64_t left;
	int type;
};

static struct {
	int lfd, port, target;
	pthread_t th;
	int stop;          /* atomics: set by the test */
	int want;          /* cut requests made */
	int cuts;          /* connections cut (set by the proxy) */
	int in_batch;      /* ... of which in the middle of a BATCH */
	int conns;         /* connections relayed */
	struct px_pair p[PX_MAX];
	int np;
	unsigned seed;
} px;

static void px_close(int i, int cut)
{
	struct px_pair *q = &px.p[i];

	if (cut) {
		__atomic_add_fetch(&px.cuts, 1, __ATOMIC_RELEASE);
		if ((q->left > 0 && q->type == RT_W_BATCH) ||
		    (q->hdr_have > 4 && q->hdr[4] == RT_W_BATCH))
			__atomic_add_fetch(&px.in_batch, 1, __ATOMIC_RELEASE);
	}
	close(q->a);
	close(q->b);
	px.p[i] = px.p[--px.np];
}

/* Follow the message framing of bytes going to the central. */
static void px_track(struct px_pair *q, const uint8_t *p, size_t n)
{
	while (n) {
		if (q->left) {
			size_t k = n < q->left ? n : (size_t)q->left;
			q->left -= k;
			p += k;
			n -= k;
			continue;
		}
		q->hdr[q->hdr_have++] = *p++;
		n--;
		if (q->hdr_have == RT_WIRE_HDR) {
			uint32_t len;
			memcpy(&len, q->hdr + 8, 4);
			q->type = q->hdr[4];
			q->left = len;
			q->hdr_have = 0;
		}
	}
}

static int px_send(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void *px_main(void *arg)
{
	static uint8_t buf[1 << 16];
	int done = 0;

	(void)arg;
	while (!__atomic_load_n(&px.stop, __ATOMIC_ACQUIRE)) {
		struct pollfd pf[1 + 2 * PX_MAX];
		int want = __atomic_load_n(&px.want, __ATOMIC_ACQUIRE), n = 1;

		if (want != done && px.np > 0) {
			/* A cut: each connection goes after 0 to 256 KiB more
			 * (while there is none, the request waits for one). */
			for (int i = 0; i < px.np; i++)
				if (px.p[i].budget < 0)
					px.p[i].budget = rand_r(&px.seed) % (256 << 10);
			done = want;
		}
		pf[0] = (struct pollfd){px.lfd, POLLIN, 0};
		for (int i = 0; i < px.np; i++) {
			pf[n++] = (struct pollfd){px.p[i].a, POLLIN, 0};
			pf[n++] = (struct pollfd){px.p[i].b, POLLIN, 0};
		}
		if (poll(pf, (nfds_t)n, 10) <= 0)
			continue;
		/* Relay; walk down so that closing (which moves the last pair
		 * into slot i) does not skip a pair that was polled. */
		for (int i = px.np - 1; i >= 0; i--) {
			struct px_pair *q = &px.p[i];
			short ra = pf[1 + 2 * i].revents, rb = pf[2 + 2 * i].revents;
			ssize_t r;
			if (ra) {
				size_t cap = sizeof(buf);
				if (q->budget >= 0 && (size_t)q->budget < cap)
					cap = (size_t)q->budget;
				r = cap ? recv(q->a, buf, cap, 0) : 0;
				if (cap && r <= 0) {
					px_close(i, 0);
					continue;
				}
				if (r > 0) {
					px_track(q, buf, (size_t)r);
					if (px_send(q->b, buf, (size_t)r)) {
						px_close(i, 0);
						continue;
					}
					if (q->budget >= 0)
						q->budget -= r;
				}
				if (q->budget == 0) {
					px_close(i, 1);
					continue;
				}
			}
			if (rb) {
				r = recv(q->b, buf, sizeof(buf), 0);
				if (r <= 0 || px_send(q->a, buf, (size_t)r)) {
					px_close(i, 0);
					continue;
				}
			}
		}
		if (pf[0].revents & POLLIN) {
			struct sockaddr_in to = {.sin_family = AF_INET,
						 .sin_port = htons((uint16_t)px.target),
						 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
			int a = accept4(px.lfd, NULL, NULL, SOCK_CLOEXEC), b, one = 1;
			if (a < 0)
				continue;
			b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (px.np == PX_MAX || b < 0 ||
			    connect(b, (struct sockaddr *)&to, sizeof(to)) < 0) {
				close(a);
				if (b >= 0)
					close(b);
				continue;
			}
			setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			px.p[px.np++] = (struct px_pair){a, b, -1, {0}, 0, 0, 0};
			__atomic_add_fetch(&px.conns, 1, __ATOMIC_RELEASE);
		}
	}
	while (px.np)
		px_close(px.np - 1, 0);
	return NULL;
}

static void px_start(int target, unsigned seed)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	int one = 1;

	px.target = target;
	px.seed = seed;
	px.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(px.lfd >= 0, "socket");
	setsockopt(px.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	CHECK_EQ(bind(px.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	CHECK_EQ(listen(px.lfd, 16), 0);
	CHECK_EQ(getsockname(px.lfd, (struct sockaddr *)&a, &l), 0);
	px.port = ntohs(a.sin_port);
	CHECK_EQ(pthread_create(&px.th, NULL, px_main, NULL), 0);
}

static void px_stop(void)
{
	__atomic_store_n(&px.stop, 1, __ATOMIC_RELEASE);
	pthread_join(px.th, NULL);
	close(px.lfd);
}

/* ------------------------------------------------------------------------ */

static uint64_t central_total(const struct fc *f)
{
	uint64_t t = 0;
	for (int h = 0; h < FC_HOSTS; h++)
		t += fc_central_durable(f, h);
	return t;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"faults", required_argument, NULL, 'n'},
					     {NULL, 0, NULL, 0}};
	struct fc f;
	struct sc_result loc[FC_HOSTS], cen[FC_HOSTS];
	const char *rings[FC_HOSTS];
	uint64_t seed = t_now_ns(), total = 0;
	int faults = 120, opt, kinds[3] = {0, 0, 0};

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1)
		if (opt == 'n')
			faults = atoi(optarg);
	CHECK(optind + 2 == argc, "usage: forward_faults RINGTAILD RINGTAIL [--faults N]");
	if (system("command -v lz4 >/dev/null") != 0) {
		printf("SKIP: lz4 is not installed\n");
		return T_SKIP;
	}
	printf("seed %llu\n", (unsigned long long)seed);
	srandom((unsigned)seed);
	fc_init(&f, "fwfaults", argv[optind], argv[optind + 1], 0);
	px_start(f.port, (unsigned)seed);
	f.upstream_port = px.port;
	fc_start_central(&f);
	for (int h = 0; h < FC_HOSTS; h++) {
		fc_start_sender(&f, h);
		rings[h] = f.host[h].ring;
	}
	sc_start_writers_into(3000, rings);

	for (int i = 0; i < faults; i++) {
		uint64_t before = central_total(&f), deadline;
		int kind = (int)(random() % 3), h = (int)(random() % FC_HOSTS);
		/* A random moment while batches flow. */
		struct timespec d = {0, (random() % 20000) * 1000L};
		nanosleep(&d, NULL);
		if (kind == 0) {
			kill(f.central_pid, SIGKILL);
			CHECK_EQ(t_wait(f.central_pid), 128 + SIGKILL);
			fc_start_central(&f);
		} else if (kind == 1) {
			kill(f.host[h].pid, SIGKILL);
			CHECK_EQ(t_wait(f.host[h].pid), 128 + SIGKILL);
			fc_start_sender(&f, h);
		} else {
			int cuts = __atomic_load_n(&px.cuts, __ATOMIC_ACQUIRE);
			__atomic_add_fetch(&px.want, 1, __ATOMIC_RELEASE);
			deadline = t_now_ns() + 30ull * 1000000000;
			while (__atomic_load_n(&px.cuts, __ATOMIC_ACQUIRE) == cuts) {
				CHECK(t_now_ns() < deadline, "fault %d: the proxy never cut", i);
				t_pause();
			}
		}
		kinds[kind]++;
		/* Forwarding goes on after it. */
		deadline = t_now_ns() + 60ull * 1000000000;
		while (central_total(&f) <= before) {
			CHECK(t_now_ns() < deadline, "fault %d (kind %d): the central stored nothing "
						     "new for 60 s",
			      i, kind);
			t_pause();
		}
	}

	sc_stop_writers();
	for (int h = 0; h < FC_HOSTS; h++)
		fc_wait_forwarded(&f, h, 120ull * 1000000000);
	for (int h = 0; h < FC_HOSTS; h++)
		fc_stop(f.host[h].pid);
	fc_stop(f.central_pid);
	px_stop();

	for (int h = 0; h < FC_HOSTS; h++) {
		fc_check_host(&f, h, 1, &loc[h], &cen[h]);
		CHECK(cen[h].taken == loc[h].taken, "%s: %llu records at home, %llu on the central",
		      f.host[h].name, (unsigned long long)loc[h].taken,
		      (unsigned long long)cen[h].taken);
		total += cen[h].taken;
	}
	printf("ok - %d faults: %d central SIGKILLs, %d sender SIGKILLs, %d cuts by the proxy "
	       "(%d connections cut, %d inside a BATCH; %d connections in all); %llu records of %d "
	       "hosts each on the central exactly once, gapless, in the same blocks as at home; "
	       "verify and lz4 -t clean on all %d spools\n",
	       faults, kinds[0], kinds[1], kinds[2], px.cuts, px.in_batch, px.conns,
	       (unsigned long long)total, FC_HOSTS, 2 * FC_HOSTS);
	fc_cleanup(&f);
	return 0;
}
