/* SPDX-License-Identifier: MIT */
/*
 * spool_crash - writers write all along while ringtaild is SIGKILLed at
 * random moments and started again, --rounds times (default 200). Then a
 * last ringtaild drains everything and stops on SIGTERM. Checked: every
 * record a writer call reported taken is in the spool exactly once and in
 * its thread's order; every record not taken is counted in the loss records;
 * sequence numbers run from the first to the last without a gap;
 * `ringtail verify` finds nothing wrong; `lz4 -t` accepts every segment.
 *
 *   spool_crash RINGTAILD RINGTAIL [--rounds N]
 */
#include <getopt.h>

#include "spool_check.h"

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"rounds", required_argument, NULL, 'r'},
					     {NULL, 0, NULL, 0}};
	struct rt_ring_params rp;
	struct sc_result res;
	const char *ringtaild, *tool;
	char ring[128], spool[128];
	uint64_t seed = t_now_ns();
	int rounds = 200, opt, early = 0;
	pid_t d;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1)
		if (opt == 'r')
			rounds = atoi(optarg);
	CHECK(optind + 2 == argc, "usage: spool_crash RINGTAILD RINGTAIL [--rounds N]");
	ringtaild = argv[optind];
	tool = argv[optind + 1];
	if (system("command -v lz4 >/dev/null") != 0) {
		printf("SKIP: lz4 is not installed\n");
		return T_SKIP;
	}
	printf("seed %llu\n", (unsigned long long)seed);
	srandom((unsigned)seed);
	snprintf(ring, sizeof(ring), "/dev/shm/rt-test-crash-%d", (int)getpid());
	snprintf(spool, sizeof(spool), "/var/tmp/rt-test-crash-%d", (int)getpid());
	setenv(RT_RING_ENV, ring, 1);
	rt_ring_params_default(&rp);
	rp.size = 32u << 20;
	unlink(ring);
	CHECK_EQ(rt_ring_create(ring, &rp), 0);
	sc_start_writers(200);

	for (int r = 0; r < rounds; r++) {
		/* Mostly a few to tens of milliseconds in; sometimes at once,
		 * while it is still starting or recovering. */
		long us = random() % 10 == 0 ? random() % 3000 : 2000 + random() % 40000;
		struct timespec dl = {us / 1000000, (us % 1000000) * 1000};
		d = sc_ringtaild(ringtaild, "--ring", ring, "--spool", spool, "--segment-size", "48K",
				 "--commit-window", "1ms", "-q", (char *)NULL);
		nanosleep(&dl, NULL);
		kill(d, SIGKILL);
		CHECK_EQ(t_wait(d), 128 + SIGKILL);
		early += us < 3000;
	}

	/* A last spooler takes everything; the writers stop; it drains. */
	d = sc_ringtaild(ringtaild, "--ring", ring, "--spool", spool, "--segment-size", "48K", "-q",
			 (char *)NULL);
	sc_stop_writers();
	sc_wait_drained(ring, 60ull * 1000000000);
	kill(d, SIGTERM);
	CHECK_EQ(t_wait(d), 0);

	memset(&res, 0, sizeof(res));
	sc_check_spool(spool, tool, &res);
	printf("ok - %d SIGKILLs of ringtaild (%d while starting): %llu records taken, each in the "
	       "spool once and in order; %llu not taken, all reported; sequence #%llu..#%llu "
	       "without gaps; verify and lz4 -t clean\n",
	       rounds, early, (unsigned long long)res.taken, (unsigned long long)res.notaken,
	       (unsigned long long)res.first_seq, (unsigned long long)(res.next_seq - 1));
	sc_rm_rf(spool);
	unlink(ring);
	return 0;
}
