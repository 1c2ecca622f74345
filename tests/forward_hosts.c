/* SPDX-License-Identifier: MIT */
/*
 * forward_hosts - three sending hosts (a ring, a spool, a writer process and
 * a ringtaild --upstream each) and one central ringtaild --listen on
 * loopback. Checked: every record each host's writers were told was taken
 * is on the central exactly once, under the right host and no other, in the
 * same blocks as at home, gapless; `ringtail verify`, `lz4 -t` and
 * `ringtail dump` work on the central's copies; `ringtail stat` on a sender
 * shows the forwarding; a second start of the senders sends nothing twice.
 * With --auth-key both ends prove they hold the key.
 *
 *   forward_hosts RINGTAILD RINGTAIL [--auth-key]
 */
#define SC_PROCS 3
#define SC_MAXREC 1000000u
#include "forward_check.h"

int main(int argc, char **argv)
{
	struct fc f;
	struct sc_result loc[FC_HOSTS], cen[FC_HOSTS];
	uint64_t held[FC_HOSTS], total = 0, t0;
	const char *rings[FC_HOSTS];
	int use_key = argc > 3 && !strcmp(argv[3], "--auth-key");
	char cmd[600];

	CHECK(argc >= 3, "usage: forward_hosts RINGTAILD RINGTAIL [--auth-key]");
	if (system("command -v lz4 >/dev/null") != 0) {
		printf("SKIP: lz4 is not installed\n");
		return T_SKIP;
	}
	fc_init(&f, use_key ? "fwkey" : "fwhosts", argv[1], argv[2], use_key);
	fc_start_central(&f);
	for (int h = 0; h < FC_HOSTS; h++) {
		fc_start_sender(&f, h);
		rings[h] = f.host[h].ring;
	}
	sc_start_writers_into(500, rings);

	/* Until each host has something on the central and its writers have
	 * written a good deal (a tenth of it under TSan). */
	for (uint64_t deadline = t_now_ns() + 120ull * 1000000000;;) {
		int ready = 1;
		for (int h = 0; h < FC_HOSTS; h++)
			ready &= fc_central_durable(&f, h) > 300000 / T_SLOW;
		if (ready)
			break;
		CHECK(t_now_ns() < deadline, "the central did not fill up");
		t_pause();
	}
	/* The sender's status shows the forwarding. */
	snprintf(cmd, sizeof(cmd),
		 "'%s' stat --ring '%s' | grep -q 'forwarding to 127.0.0.1:%d: connected'", f.tool,
		 f.host[0].ring, f.port);
	CHECK(system(cmd) == 0, "ringtail stat does not show a connected forwarding");

	sc_stop_writers();
	for (int h = 0; h < FC_HOSTS; h++)
		fc_wait_forwarded(&f, h, 60ull * 1000000000);
	for (int h = 0; h < FC_HOSTS; h++)
		fc_stop(f.host[h].pid);

	/* Started again, the senders send nothing twice: the central says what
	 * it holds, the senders go on from there. */
	t0 = t_wall_ns();
	for (int h = 0; h < FC_HOSTS; h++) {
		held[h] = fc_central_durable(&f, h);
		fc_start_sender(&f, h);
	}
	for (int h = 0; h < FC_HOSTS; h++) {
		fc_wait_contact(&f, h, t0, 60ull * 1000000000);
		fc_wait_forwarded(&f, h, 60ull * 1000000000);
	}
	for (int h = 0; h < FC_HOSTS; h++)
		fc_stop(f.host[h].pid);
	fc_stop(f.central_pid);

	for (int h = 0; h < FC_HOSTS; h++) {
		fc_check_host(&f, h, 1, &loc[h], &cen[h]);
		CHECK(cen[h].taken == loc[h].taken, "%s: %llu records at home, %llu on the central",
		      f.host[h].name, (unsigned long long)loc[h].taken,
		      (unsigned long long)cen[h].taken);
		total += cen[h].taken;
	}
	CHECK(fc_file_has(f.log, use_key ? "listening on" : "no --auth-key: taking connections "
							     "from this host only"),
	      "the central did not say how it takes connections");
	printf("ok - %d hosts%s: %llu records (%llu, %llu, %llu), each on the central once "
	       "under its own host, in the same blocks as at home; restarted senders went on from what the central held "
	       "(central held #%llu, #%llu, #%llu); verify, lz4 -t and dump clean\n",
	       FC_HOSTS, use_key ? " with --auth-key" : " on loopback without a key",
	       (unsigned long long)total, (unsigned long long)cen[0].taken,
	       (unsigned long long)cen[1].taken, (unsigned long long)cen[2].taken,
	       (unsigned long long)held[0], (unsigned long long)held[1],
	       (unsigned long long)held[2]);
	fc_cleanup(&f);
	return 0;
}
