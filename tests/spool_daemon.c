/* SPDX-License-Identifier: MIT */
/*
 * spool_daemon - ringtaild as a user meets it: it makes a missing ring (mode
 * 0660) and spool; a second ringtaild on the same spool or the same ring is
 * refused with a clear message; SIGTERM drains what the ring holds and exits
 * 0; a restart continues the open segment and the numbering; segments rotate
 * by size, closed ones carry footers; retention removes the oldest and says
 * so in the log; its own messages are records of service "ringtaild";
 * `ringtail stat` shows the durable sequence; bad flags exit 2.
 *
 *   spool_daemon RINGTAILD RINGTAIL
 */
#include <sys/stat.h>

#include "spool_check.h"

static const char *ringtaild, *tool;
static char ring[128], spool[128], spool2[128];

/* Run a command, return its exit status and put its stderr+stdout in @out. */
static int run(const char *cmd, char *out, size_t n)
{
	FILE *f = popen(cmd, "r");
	size_t got;
	int st;

	CHECK(f != NULL, "popen");
	got = fread(out, 1, n - 1, f);
	out[got] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void write_records(int from, int to)
{
	char buf[64];
	pid_t p;

	fflush(stdout);
	p = fork();
	if (p == 0) {
		rt_set_service("daemon-test");
		for (int i = from; i < to; i++) {
			int n = snprintf(buf, sizeof(buf), "record %d", i);
			CHECK(rt_write(RT_INFO, buf, (size_t)n) == 0, "write %d", i);
		}
		_exit(0);
	}
	CHECK_EQ(t_wait(p), 0);
}

/* Records of service daemon-test in the spool, in order; count "ringtaild"
 * ones containing @want. */
static int read_back(int *nums, int max, const char *want, int *found)
{
	struct rt_spool *sp;
	struct rt_buf body = {0};
	struct rt_block blk;
	uint64_t *seqs, next = 0;
	int n = 0, k, segs;

	memset(&blk, 0, sizeof(blk));
	*found = 0;
	CHECK_EQ(rt_spool_open(spool, NULL, 0, &sp), 0);
	segs = rt_spool_list(sp, &seqs);
	for (k = 0; k < segs; k++) {
		struct rt_seg *s;
		char name[32];
		rt_seg_name(name, seqs[k]);
		CHECK_EQ(rt_seg_open(sp->dirfd, name, RT_SEG_NOFOOTER | RT_SEG_VERIFY, &s), 0);
		CHECK(!s->damaged, "%s: %s", name, s->damage);
		CHECK(!next || s->hdr.first_seq == next, "gap before %s", name);
		CHECK(k == segs - 1 || s->closed, "%s is not the last and has no footer", name);
		for (uint32_t b = 0; b < s->nblocks; b++) {
			CHECK_EQ(rt_seg_read_body(s, b, &body), 0);
			CHECK_EQ(rt_block_decode(body.p, body.len, s->blocks[b].first_seq,
						 s->blocks[b].nrec, &blk),
				 0);
			for (uint32_t i = 0; i < blk.nrec; i++) {
				struct rt_rec r;
				char m[256];
				rt_block_rec(&blk, i, &r);
				snprintf(m, sizeof(m), "%.*s", (int)r.msg_len, r.msg);
				if (r.service_len == 11 && !memcmp(r.service, "daemon-test", 11)) {
					CHECK(n < max, "too many");
					nums[n++] = atoi(m + 7);
				} else if (want && strstr(m, want)) {
					(*found)++;
				}
			}
		}
		next = s->next_seq;
		rt_seg_close(s);
	}
	free(seqs);
	rt_block_free(&blk);
	rt_buf_free(&body);
	rt_spool_close(sp);
	return n;
}

static int segments(void)
{
	struct rt_spool *sp;
	uint64_t *seqs;
	int n;

	CHECK_EQ(rt_spool_open(spool, NULL, 0, &sp), 0);
	n = rt_spool_list(sp, &seqs);
	free(seqs);
	rt_spool_close(sp);
	return n;
}

/* The largest segment file but the last (the one being written). */
static off_t largest_closed(void)
{
	struct rt_spool *sp;
	uint64_t *seqs;
	off_t big = 0;
	int n;

	CHECK_EQ(rt_spool_open(spool, NULL, 0, &sp), 0);
	n = rt_spool_list(sp, &seqs);
	for (int i = 0; i < n - 1; i++) {
		char name[32];
		struct stat st;
		rt_seg_name(name, seqs[i]);
		CHECK(fstatat(sp->dirfd, name, &st, 0) == 0, "stat %s", name);
		if (st.st_size > big)
			big = st.st_size;
	}
	free(seqs);
	rt_spool_close(sp);
	return big;
}

int main(int argc, char **argv)
{
	static int nums[200000];
	char cmd[1024], out[8192];
	struct stat st;
	int n, found, rc;
	pid_t d;

	CHECK(argc == 3, "usage: spool_daemon RINGTAILD RINGTAIL");
	ringtaild = argv[1];
	tool = argv[2];
	snprintf(ring, sizeof(ring), "/dev/shm/rt-test-daemon-%d", (int)getpid());
	snprintf(spool, sizeof(spool), "/var/tmp/rt-test-daemon-%d", (int)getpid());
	snprintf(spool2, sizeof(spool2), "/var/tmp/rt-test-daemon2-%d", (int)getpid());
	setenv(RT_RING_ENV, ring, 1);
	unlink(ring);

	/* Bad flags. */
	snprintf(cmd, sizeof(cmd), "'%s' --segment-size 12Q 2>&1", ringtaild);
	rc = run(cmd, out, sizeof(out));
	CHECK(rc == 2 && strstr(out, "bad value '12Q' for --segment-size"), "bad flag: %d %s", rc,
	      out);
	printf("ok - bad flags: exit 2 and a clear message\n");

	/* It makes what is missing. */
	d = sc_ringtaild(ringtaild, "--ring", ring, "--spool", spool, "--segment-size", "32K",
			 "--commit-window", "1ms", (char *)NULL);
	for (uint64_t t0 = t_now_ns(); stat(ring, &st) < 0 || access(spool, F_OK) < 0;) {
		CHECK(t_now_ns() - t0 < 10000000000ull, "ring or spool never made");
		t_pause();
	}
	CHECK((st.st_mode & 0777) == 0660, "ring mode %o", st.st_mode & 0777);
	printf("ok - a missing ring (mode 0660) and spool are made\n");

	/* A second one is refused, clearly. */
	snprintf(cmd, sizeof(cmd), "'%s' --ring '%s' --spool '%s' 2>&1", ringtaild, ring, spool);
	rc = run(cmd, out, sizeof(out));
	CHECK(rc == 1 && strstr(out, "another ringtaild is using it"), "same spool: %d %s", rc, out);
	snprintf(cmd, sizeof(cmd), "'%s' --ring '%s' --spool '%s' 2>&1", ringtaild, ring, spool2);
	rc = run(cmd, out, sizeof(out));
	CHECK(rc == 1 && strstr(out, "another ringtaild is consuming it"), "same ring: %d %s", rc,
	      out);
	printf("ok - a second ringtaild on the same spool or ring is refused\n");

	/* SIGTERM drains everything written before it. */
	write_records(0, 30000);
	kill(d, SIGTERM);
	CHECK_EQ(t_wait(d), 0);
	n = read_back(nums, 200000, "ringtaild started", &found);
	CHECK(n == 30000, "after SIGTERM the spool holds %d of 30000", n);
	for (int i = 0; i < n; i++)
		CHECK(nums[i] == i, "order");
	CHECK(found == 1, "its start message is in the log (%d)", found);
	CHECK(segments() > 1, "no rotation at 32K (%d segments)", segments());
	/* A segment past its size takes no more blocks, and a block is at most
	 * a quarter of a segment: 32K + 8K, and the frames around them. */
	CHECK(largest_closed() <= 44 * 1024, "a 32K segment grew to %lld bytes",
	      (long long)largest_closed());
	printf("ok - SIGTERM drains; own messages logged as ringtaild; %d segments rotated by size "
	       "(largest %lld bytes)\n",
	       segments(), (long long)largest_closed());

	/* Written while no spooler runs; a restart takes them and numbers on. */
	write_records(30000, 40000);
	{
		int before = segments();
		d = sc_ringtaild(ringtaild, "--ring", ring, "--spool", spool, "--segment-size", "1G",
				 (char *)NULL);
		sc_wait_drained(ring, 30000000000ull);
		CHECK(segments() == before, "a restart started a new segment (%d -> %d)", before,
		      segments());
	}
	snprintf(cmd, sizeof(cmd), "'%s' stat --json --ring '%s'", tool, ring);
	CHECK(run(cmd, out, sizeof(out)) == 0, "stat");
	{
		char *p = strstr(out, "\"durable_seq\":");
		CHECK(p && atoll(p + 14) >= 40000, "stat's durable sequence: %s", out);
	}
	kill(d, SIGTERM);
	CHECK_EQ(t_wait(d), 0);
	n = read_back(nums, 200000, NULL, &found);
	CHECK(n == 40000, "after the restart %d of 40000", n);
	for (int i = 0; i < n; i++)
		CHECK(nums[i] == i, "order after restart");
	printf("ok - a restart continues the open segment, the numbering, and shows in stat\n");

	/* Retention: a small limit removes the oldest segments and says so. */
	{
		int before = segments();
		d = sc_ringtaild(ringtaild, "--ring", ring, "--spool", spool, "--segment-size", "16K",
				 "--retain-bytes", "64K", (char *)NULL);
		write_records(40000, 60000);
		sc_wait_drained(ring, 30000000000ull);
		/* Retention runs every 10 s and at start; wait for it. */
		for (uint64_t t0 = t_now_ns(); segments() > 8;) {
			CHECK(t_now_ns() - t0 < 30000000000ull, "retention never ran (%d segments)",
			      segments());
			t_pause();
		}
		kill(d, SIGTERM);
		CHECK_EQ(t_wait(d), 0);
		n = read_back(nums, 200000, "to keep the spool within its size limit", &found);
		CHECK(found > 0, "retention did not log what it removed");
		CHECK(n < 60000 && nums[n - 1] == 59999, "retention: %d records, last %d", n,
		      nums[n - 1]);
		printf("ok - retention removed old segments (%d -> %d) and logged it\n", before,
		       segments());
	}
	snprintf(cmd, sizeof(cmd), "'%s' verify '%s' > /dev/null", tool, spool);
	CHECK(system(cmd) == 0, "verify");
	sc_rm_rf(spool);
	sc_rm_rf(spool2);
	unlink(ring);
	return 0;
}
