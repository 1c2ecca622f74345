/* SPDX-License-Identifier: MIT */
/*
 * spool_diskfull - the spool's filesystem fills up under ringtaild: it does
 * not crash and corrupts nothing; it stops draining (the ring fills, the
 * writers are refused and count it), keeps retrying, says why in its own
 * log, and once there is room again drains on. Every record taken is in the
 * spool once, every one refused is reported, verify and lz4 -t are clean.
 * Needs root to mount a small tmpfs; skipped otherwise.
 *
 *   spool_diskfull RINGTAILD RINGTAIL
 */
#include <sys/mount.h>
#include <sys/statvfs.h>

#include "spool_check.h"

static char mnt[128];

/* Whatever happens, leave no mount behind (children die with us). */
static void cleanup(void)
{
	if (mnt[0] && umount2(mnt, MNT_DETACH) == 0)
		rmdir(mnt);
}

static uint64_t durable(const char *ring)
{
	struct rt_ring *rg;
	struct rt_ring_stat st;
	CHECK_EQ(rt_ring_open(ring, RT_RING_RDONLY, &rg), 0);
	rt_ring_stat(rg, &st);
	rt_ring_close(rg);
	return st.durable_seq;
}

static uint64_t refused(void)
{
	uint64_t n = 0;
	for (int p = 0; p < SC_PROCS; p++)
		for (int t = 0; t < SC_THREADS; t++)
			n += __atomic_load_n(&sc->notaken[p][t], __ATOMIC_RELAXED);
	return n;
}

int main(int argc, char **argv)
{
	struct rt_ring_params rp;
	struct sc_result res;
	struct statvfs vfs;
	char spool[160], ring[128];
	uint64_t d0, stuck, t0;
	pid_t d;

	CHECK(argc == 3, "usage: spool_diskfull RINGTAILD RINGTAIL");
	snprintf(mnt, sizeof(mnt), "/tmp/rt-test-diskfull-%d", (int)getpid());
	snprintf(spool, sizeof(spool), "%s/spool", mnt);
	snprintf(ring, sizeof(ring), "/dev/shm/rt-test-diskfull-%d", (int)getpid());
	if (geteuid() != 0 || mkdir(mnt, 0700) < 0 ||
	    mount("tmpfs", mnt, "tmpfs", 0, "size=600k,mode=0700") < 0) {
		printf("SKIP: cannot mount a small tmpfs (needs root)\n");
		rmdir(mnt);
		return T_SKIP;
	}
	atexit(cleanup);
	setenv(RT_RING_ENV, ring, 1);
	rt_ring_params_default(&rp);
	rp.size = 4u << 20;
	unlink(ring);
	CHECK_EQ(rt_ring_create(ring, &rp), 0);

	d = sc_ringtaild(argv[1], "--ring", ring, "--spool", spool, "--segment-size", "64K",
			 "--retain-bytes", "1G", (char *)NULL);
	sc_start_writers(50);

	/* Until the filesystem is full and the ring with it: writers are
	 * refused and the durable sequence stands still. */
	for (t0 = t_now_ns();;) {
		CHECK(t_now_ns() - t0 < 60ull * 1000000000, "the disk never filled");
		if (statvfs(mnt, &vfs) == 0 && vfs.f_bavail == 0 && refused() > 1000)
			break;
		t_pause();
	}
	stuck = durable(ring);
	d0 = refused();
	for (t0 = t_now_ns(); refused() < d0 + 10000;) {
		CHECK(t_now_ns() - t0 < 30ull * 1000000000, "writers are not being refused");
		t_pause();
	}
	CHECK(kill(d, 0) == 0, "ringtaild died on a full disk");
	/* A few small blocks may still fit in the last, partly used page of
	 * the file; nothing more while 10000 more records were refused. */
	CHECK(durable(ring) < stuck + 2000, "draining went on without room (%llu -> %llu)",
	      (unsigned long long)stuck, (unsigned long long)durable(ring));
	printf("ok - disk full: ringtaild alive, durable sequence held at #%llu, writers refused "
	       "(%llu so far)\n",
	       (unsigned long long)stuck, (unsigned long long)refused());

	/* Room again: draining resumes by itself. */
	CHECK(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=256m,mode=0700") == 0, "remount");
	for (t0 = t_now_ns(); durable(ring) < stuck + 100000;) {
		CHECK(t_now_ns() - t0 < 60ull * 1000000000, "draining never resumed");
		t_pause();
	}
	printf("ok - room again: draining resumed (durable #%llu)\n",
	       (unsigned long long)durable(ring));

	sc_stop_writers();
	sc_wait_drained(ring, 60ull * 1000000000);
	kill(d, SIGTERM);
	CHECK_EQ(t_wait(d), 0);

	memset(&res, 0, sizeof(res));
	res.want_msg = "No space left on device";
	sc_check_spool(spool, argv[2], &res);
	CHECK(res.found_msg, "ringtaild did not log the full disk into the ring");
	printf("ok - %llu records taken, each in the spool once; %llu refused, all reported; "
	       "sequence #%llu..#%llu without gaps; the full disk is in the log; verify and lz4 "
	       "-t clean\n",
	       (unsigned long long)res.taken, (unsigned long long)res.notaken,
	       (unsigned long long)res.first_seq, (unsigned long long)(res.next_seq - 1));
	unlink(ring);
	return 0;
}
