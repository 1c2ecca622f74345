/* SPDX-License-Identifier: MIT */
/*
 * forward_faults - three sending hosts forward through a proxy this test
 * controls to one central, while their writers write all along. At random,
 * --faults times (default 120): the central is SIGKILLed and started again
 * (on another port: the proxy follows it);
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

#define SC_PROCS 3
#define SC_MAXREC 3000000u
#include "forward_check.h"

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
	fc_px_start(0, 1, (unsigned)seed);
	f.upstream_port = fc_px->port;
	fc_start_central(&f);
	fc_px_target(f.port);
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
			fc_px_target(0);
			fc_start_central(&f); /* on another port: the proxy follows */
			fc_px_target(f.port);
		} else if (kind == 1) {
			kill(f.host[h].pid, SIGKILL);
			CHECK_EQ(t_wait(f.host[h].pid), 128 + SIGKILL);
			fc_start_sender(&f, h);
		} else {
			int cuts = __atomic_load_n(&fc_px->cuts, __ATOMIC_ACQUIRE);
			__atomic_add_fetch(&fc_px->want, 1, __ATOMIC_RELEASE);
			deadline = t_now_ns() + 30ull * 1000000000;
			while (__atomic_load_n(&fc_px->cuts, __ATOMIC_ACQUIRE) == cuts) {
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
	fc_px_stop();

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
	       faults, kinds[0], kinds[1], kinds[2], fc_px->cuts, fc_px->in_batch, fc_px->conns,
	       (unsigned long long)total, FC_HOSTS, 2 * FC_HOSTS);
	fc_cleanup(&f);
	return 0;
}
