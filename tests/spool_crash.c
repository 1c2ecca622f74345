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
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>

#include "helpers.h"
#include "ringtail.h"
#include "rtspool.h"

#define PROCS 2
#define THREADS 2
#define MAXREC 4000000u

struct shared {
	volatile int stop;
	uint32_t pid[PROCS][THREADS], tid[PROCS][THREADS];
	uint64_t n[PROCS][THREADS];        /* records attempted */
	uint64_t notaken[PROCS][THREADS];
	uint8_t taken[PROCS][THREADS][MAXREC / 8];
};

static struct shared *sh;
static const char *ringtaild, *tool;
static char ring[128], spool[128];

struct warg {
	int p, t;
};

static void *writer(void *arg)
{
	struct warg *w = arg;
	char buf[128];
	uint64_t i;

	sh->tid[w->p][w->t] = rt__gettid_v1();
	for (i = 0; i < MAXREC && !sh->stop; i++) {
		int n = snprintf(buf, sizeof(buf), "w=%d.%d i=%llu payload-%llu", w->p, w->t,
				 (unsigned long long)i, (unsigned long long)(i * 7919));
		int r = rt_write(RT_INFO, buf, (size_t)n);
		if (r == 0)
			sh->taken[w->p][w->t][i / 8] |= (uint8_t)(1u << (i % 8));
		else
			sh->notaken[w->p][w->t]++;
		sh->n[w->p][w->t] = i + 1;
		/* A steady pace (not a synchronisation): a burst, then a
		 * breath, so that a dead spooler does not mean millions of
		 * drops per second. */
		if (i % 64 == 63) {
			struct timespec d = {0, 200 * 1000};
			nanosleep(&d, NULL);
		}
	}
	return NULL;
}

static void writer_process(int p)
{
	pthread_t th[THREADS];
	struct warg wa[THREADS];

	rt_set_service("crash-writer");
	for (int t = 0; t < THREADS; t++) {
		sh->pid[p][t] = (uint32_t)getpid();
		wa[t].p = p;
		wa[t].t = t;
		pthread_create(&th[t], NULL, writer, &wa[t]);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	_exit(0);
}

static pid_t start_ringtaild(void)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, STDERR_FILENO);
		execl(ringtaild, "ringtaild", "--ring", ring, "--spool", spool, "--segment-size", "48K",
		      "--commit-window", "1ms", "-q", (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* What the spool holds. */
static uint8_t *seen[PROCS][THREADS];
static int64_t last[PROCS][THREADS];
static uint64_t dropped[PROCS][THREADS], nrecords, first_seq, next_seq;

static int find(uint32_t pid, uint32_t tid, int *p, int *t)
{
	for (*p = 0; *p < PROCS; (*p)++)
		for (*t = 0; *t < THREADS; (*t)++)
			if (sh->pid[*p][*t] == pid && sh->tid[*p][*t] == tid)
				return 1;
	return 0;
}

static void check_record(const struct rt_rec *r, uint64_t seq)
{
	char buf[160];
	unsigned long long i;
	int p, t;

	(void)seq;
	nrecords++;
	if (r->flags & RT_REC_LOSS) {
		unsigned long long n;
		unsigned pid, tid;
		size_t l = r->msg_len < sizeof(buf) - 1 ? r->msg_len : sizeof(buf) - 1;
		memcpy(buf, r->msg, l);
		buf[l] = '\0';
		if (sscanf(buf, "%llu records dropped from pid %u tid %u", &n, &pid, &tid) == 3) {
			if (find(pid, tid, &p, &t))
				dropped[p][t] += n;
			else /* a spooler's own message into a ring the writers filled */
				CHECK(strstr(buf, "(ringtaild)"), "drops of an unknown writer: %s", buf);
			return;
		}
		CHECK(0, "unexpected loss record: %s", buf);
	}
	if (r->service_len == 9 && !memcmp(r->service, "ringtaild", 9))
		return; /* the spooler's own messages */
	CHECK(r->service_len == 12 && !memcmp(r->service, "crash-writer", 12), "service");
	CHECK(r->msg_len < sizeof(buf), "message length");
	memcpy(buf, r->msg, r->msg_len);
	buf[r->msg_len] = '\0';
	CHECK(sscanf(buf, "w=%d.%d i=%llu", &p, &t, &i) == 3, "message '%s'", buf);
	CHECK(p >= 0 && p < PROCS && t >= 0 && t < THREADS && i < MAXREC, "range");
	CHECK(!(seen[p][t][i / 8] & (1u << (i % 8))), "record w=%d.%d i=%llu is in the spool twice",
	      p, t, i);
	CHECK((int64_t)i > last[p][t], "order: w=%d.%d i=%llu after %lld", p, t, i,
	      (long long)last[p][t]);
	seen[p][t][i / 8] |= (uint8_t)(1u << (i % 8));
	last[p][t] = (int64_t)i;
}

static void read_spool(void)
{
	struct rt_spool *sp;
	struct rt_buf body = {0};
	struct rt_block blk;
	uint64_t *seqs;
	int n;

	memset(&blk, 0, sizeof(blk));
	CHECK_EQ(rt_spool_open(spool, NULL, 0, &sp), 0);
	n = rt_spool_list(sp, &seqs);
	CHECK(n > 0, "no segments");
	for (int k = 0; k < n; k++) {
		struct rt_seg *s;
		char name[32];
		rt_seg_name(name, seqs[k]);
		CHECK_EQ(rt_seg_open(sp->dirfd, name, RT_SEG_NOFOOTER | RT_SEG_VERIFY, &s), 0);
		CHECK(!s->damaged, "%s: %s", name, s->damage);
		if (k == 0)
			first_seq = next_seq = s->hdr.first_seq;
		CHECK(s->hdr.first_seq == next_seq, "sequence gap before %s (expected #%llu)", name,
		      (unsigned long long)next_seq);
		for (uint32_t b = 0; b < s->nblocks; b++) {
			CHECK_EQ(rt_seg_read_body(s, b, &body), 0);
			CHECK_EQ(rt_block_decode(body.p, body.len, s->blocks[b].first_seq,
						 s->blocks[b].nrec, &blk),
				 0);
			for (uint32_t i = 0; i < blk.nrec; i++) {
				struct rt_rec r;
				rt_block_rec(&blk, i, &r);
				check_record(&r, blk.first_seq + i);
			}
		}
		next_seq = s->next_seq;
		rt_seg_close(s);
		{
			char cmd[512];
			snprintf(cmd, sizeof(cmd), "lz4 -t -q '%s/%s'", spool, name);
			CHECK(system(cmd) == 0, "lz4 -t refused %s", name);
		}
	}
	free(seqs);
	rt_block_free(&blk);
	rt_buf_free(&body);
	rt_spool_close(sp);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"rounds", required_argument, NULL, 'r'},
					     {NULL, 0, NULL, 0}};
	struct rt_ring_params rp;
	pid_t writers[PROCS], d;
	uint64_t seed = t_now_ns();
	int rounds = 200, opt, early = 0;

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
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap");

	for (int p = 0; p < PROCS; p++) {
		fflush(stdout);
		writers[p] = fork();
		CHECK(writers[p] >= 0, "fork");
		if (writers[p] == 0)
			writer_process(p);
	}

	for (int r = 0; r < rounds; r++) {
		/* Mostly a few to tens of milliseconds in; sometimes at once,
		 * while it is still starting or recovering. */
		long us = random() % 10 == 0 ? random() % 3000 : 2000 + random() % 40000;
		struct timespec dl = {us / 1000000, (us % 1000000) * 1000};
		d = start_ringtaild();
		nanosleep(&dl, NULL);
		kill(d, SIGKILL);
		CHECK_EQ(t_wait(d), 128 + SIGKILL);
		early += us < 3000;
	}

	/* A last spooler takes everything; the writers stop; it drains. */
	d = start_ringtaild();
	sh->stop = 1;
	for (int p = 0; p < PROCS; p++)
		CHECK_EQ(t_wait(writers[p]), 0);
	/* Wait until every writer's records are durable: the ring says how
	 * many are queued. */
	for (uint64_t deadline = t_now_ns() + 60ull * 1000000000;;) {
		struct rt_ring *rg;
		struct rt_ring_stat st;
		CHECK_EQ(rt_ring_open(ring, RT_RING_RDONLY, &rg), 0);
		rt_ring_stat(rg, &st);
		rt_ring_close(rg);
		if (st.writers <= 1 && st.records_queued == 0) /* ringtaild's own slot */
			break;
		CHECK(t_now_ns() < deadline, "the last spooler never drained (%u writers, %llu queued)",
		      st.writers, (unsigned long long)st.records_queued);
		t_pause();
	}
	kill(d, SIGTERM);
	CHECK_EQ(t_wait(d), 0);

	for (int p = 0; p < PROCS; p++)
		for (int t = 0; t < THREADS; t++) {
			seen[p][t] = calloc(MAXREC / 8, 1);
			last[p][t] = -1;
		}
	read_spool();
	{
		uint64_t taken = 0, notaken = 0;
		for (int p = 0; p < PROCS; p++)
			for (int t = 0; t < THREADS; t++) {
				uint64_t nt = 0;
				for (uint64_t i = 0; i < sh->n[p][t]; i++) {
					int tk = (sh->taken[p][t][i / 8] >> (i % 8)) & 1;
					int sn = (seen[p][t][i / 8] >> (i % 8)) & 1;
					CHECK(tk == sn, "w=%d.%d i=%llu: taken %d, in the spool %d", p, t,
					      (unsigned long long)i, tk, sn);
					taken += tk;
					nt += !tk;
				}
				CHECK(nt == sh->notaken[p][t] && dropped[p][t] == nt,
				      "w=%d.%d: %llu not taken, %llu reported dropped", p, t,
				      (unsigned long long)nt, (unsigned long long)dropped[p][t]);
				notaken += nt;
			}
		{
			char cmd[512];
			snprintf(cmd, sizeof(cmd), "'%s' verify '%s' >/dev/null", tool, spool);
			CHECK(system(cmd) == 0, "ringtail verify found damage in %s", spool);
		}
		printf("ok - %d SIGKILLs of ringtaild (%d while starting): %llu records taken, each in "
		       "the spool once and in order; %llu not taken, all reported; sequence "
		       "#%llu..#%llu without gaps; verify and lz4 -t clean\n",
		       rounds, early, (unsigned long long)taken, (unsigned long long)notaken,
		       (unsigned long long)first_seq, (unsigned long long)(next_seq - 1));
	}
	{
		char cmd[512];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", spool);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", spool);
	}
	unlink(ring);
	return 0;
}
