/* SPDX-License-Identifier: MIT */
/*
 * ring_kill - writers are SIGKILLed in the middle of writing, again and
 * again, while a steady writer keeps writing and one consumer drains.
 *
 * Half the rounds kill a writer from outside at a random moment; the other
 * half kill it from inside a write, after the record was announced and
 * before it was published (the RT__TEST_MIDWRITE hook), so the expected loss
 * is known exactly. Checked every round: every record the victim completed
 * arrives exactly once and in order, the record it was writing arrives or is
 * reported lost (never both), a kill inside a write is reported as exactly
 * one lost record, and no poll of the consumer spends 100 ms of CPU or more
 * (its own thread's CPU time: a busy or loaded machine preempting the test
 * does not count, a consumer spinning on a dead writer does). At the
 * end: every record of the steady writer arrived, and the ring's lost count
 * equals the loss records seen.
 *
 *   ring_kill [--rounds N]    (default 200)
 */
#include <getopt.h>
#include <stdint.h>
#include <time.h>
#include <signal.h>
#include <sys/mman.h>

/* This thread's CPU time: what a poll costs, whatever else the machine runs. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static volatile long midwrite_left = -1;
static void midwrite(void)
{
	if (midwrite_left >= 0 && midwrite_left-- == 0)
		raise(SIGKILL);
}
#define RT__TEST_MIDWRITE() midwrite()

#include "helpers.h"
#include "ringtail.h"

#define MAX_VICTIM_RECORDS 200000
#define STEADY_MAX 2000000

struct victim {
	uint32_t pid;
	int32_t mode;            /* 0: killed from outside, 1: from inside a write */
	uint32_t die_at;         /* mode 1: the hook call that kills it */
	volatile uint32_t inflight; /* record being written (set before the call) */
	volatile uint32_t done;     /* records completed */
	uint32_t notaken;
};

struct shared {
	volatile uint32_t stop;
	volatile uint32_t steady_pid;
	volatile uint64_t steady_n;
	uint8_t steady_taken[STEADY_MAX];
};

static struct shared *sh;
static struct victim *vic; /* one per round */
static int rounds = 200;

/* What the consumer saw. */
static uint8_t (*got)[MAX_VICTIM_RECORDS];
static int64_t *last;
static uint32_t *losses;
static uint8_t *steady_seen;
static int64_t steady_last = -1;
static uint64_t loss_records, steady_dropped;

static int round_of_pid(uint32_t pid)
{
	for (int r = 0; r < rounds; r++)
		if (vic[r].pid == pid)
			return r;
	return -1;
}

static int on_record(void *arg, const struct rt_rec *rec, const struct rt_origin *o)
{
	unsigned r, i;

	(void)arg;
	(void)o;
	if (rec->flags & RT_REC_LOSS) {
		unsigned long long n;
		unsigned pid;
		if (sscanf(rec->msg, "%llu calls refused from pid %u", &n, &pid) == 2) {
			CHECK(pid == sh->steady_pid, "drops from a victim: '%.*s'", (int)rec->msg_len,
			      rec->msg);
			steady_dropped += n;
			return 0;
		}
		loss_records++;
		CHECK(sscanf(rec->msg, "1 record lost from pid %u", &pid) == 1,
		      "unexpected loss record '%.*s'", (int)rec->msg_len, rec->msg);
		int rd = round_of_pid(pid);
		CHECK(rd >= 0, "loss for unknown pid %u", pid);
		losses[rd]++;
		return 0;
	}
	if (sscanf(rec->msg, "steady %u", &i) == 1) {
		CHECK(rec->pid == sh->steady_pid && i < STEADY_MAX, "steady record");
		CHECK((int64_t)i > steady_last && !steady_seen[i], "steady order/duplicate at %u", i);
		steady_seen[i] = 1;
		steady_last = i;
		return 0;
	}
	CHECK(sscanf(rec->msg, "v=%u i=%u", &r, &i) == 2, "bad record '%.*s'", (int)rec->msg_len,
	      rec->msg);
	CHECK(r < (unsigned)rounds && i < MAX_VICTIM_RECORDS, "out of range");
	CHECK(rec->pid == vic[r].pid, "pid of round %u", r);
	CHECK((int64_t)i > last[r] && !got[r][i], "round %u: order/duplicate at %u", r, i);
	last[r] = i;
	got[r][i] = 1;
	return 0;
}

static void steady_writer(void)
{
	char buf[64];
	uint64_t i;

	sh->steady_pid = (uint32_t)getpid();
	for (i = 0; i < STEADY_MAX && !sh->stop; i++) {
		int n = snprintf(buf, sizeof(buf), "steady %llu", (unsigned long long)i);
		if (rt_write(RT_INFO, buf, (size_t)n) == 0)
			sh->steady_taken[i] = 1;
		sh->steady_n = i + 1;
		if (i % 64 == 63)
			sched_yield();
	}
	while (!sh->stop)
		sched_yield();
	_exit(0);
}

static void victim_writer(int r)
{
	struct victim *v = &vic[r];
	char buf[300];
	uint32_t i;

	if (v->mode == 1)
		midwrite_left = v->die_at;
	for (i = 0; i < MAX_VICTIM_RECORDS; i++) {
		int n = snprintf(buf, sizeof(buf), "v=%d i=%u ", r, i), err;
		memset(buf + n, 'k', i % 200);
		n += (int)(i % 200);
		v->inflight = i;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		if (i % 3 == 0)
			err = rt_printf(RT_INFO, "%.*s", n, buf);
		else
			err = rt_write(RT_INFO, buf, (size_t)n);
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		if (err)
			v->notaken++;
		CHECK(err == 0, "victim write failed: %d", err);
		v->done = i + 1;
	}
	/* Never reached in practice: the parent kills us long before. */
	for (;;)
		pause();
}

static int victim_alive(struct rt_consumer *c, uint32_t pid)
{
	struct rt_ring *rg = rt_consumer_ring(c);
	struct rt_ring_stat st;
	(void)pid;
	rt_ring_stat(rg, &st);
	return st.writers > 1; /* the steady writer and the victim */
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"rounds", required_argument, NULL, 'r'},
					     {NULL, 0, NULL, 0}};
	struct rt_ring_params rp;
	struct rt_consumer *c;
	uint64_t max_poll = 0, seed = (uint64_t)t_now_ns();
	pid_t steady;
	const char *ring;
	int opt, inside = 0, outside_lost = 0, outside_arrived = 0;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1)
		if (opt == 'r')
			rounds = atoi(optarg);
	CHECK(rounds > 0 && rounds <= 100000, "rounds");
	printf("seed %llu\n", (unsigned long long)seed);
	srandom((unsigned)seed);

	ring = strdup(t_ring_path("kill"));
	setenv(RT_RING_ENV, ring, 1);
	unlink(ring);
	rt_ring_params_default(&rp);
	rp.size = 64u << 20;
	rp.writer_pct = 50;
	CHECK_EQ(rt_ring_create(ring, &rp), 0);
	CHECK_EQ(rt_consumer_open(ring, &c), 0);

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	vic = mmap(NULL, sizeof(*vic) * (size_t)rounds, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED && vic != MAP_FAILED, "mmap");
	got = calloc((size_t)rounds, sizeof(*got));
	last = malloc(sizeof(*last) * (size_t)rounds);
	losses = calloc((size_t)rounds, sizeof(*losses));
	steady_seen = calloc(STEADY_MAX, 1);
	CHECK(got && last && losses && steady_seen, "memory");
	for (int r = 0; r < rounds; r++)
		last[r] = -1;

	fflush(stdout);
	steady = fork();
	CHECK(steady >= 0, "fork");
	if (steady == 0)
		steady_writer();

	for (int r = 0; r < rounds; r++) {
		struct victim *v = &vic[r];
		uint32_t threshold = (uint32_t)(random() % 300);
		long spin = random() % 20000;
		pid_t pid;
		int st;

		v->mode = r % 2;
		v->die_at = (uint32_t)(random() % 300);
		fflush(stdout);
		pid = fork();
		CHECK(pid >= 0, "fork");
		if (pid == 0)
			victim_writer(r);
		v->pid = (uint32_t)pid;

		/* Let it write a while, then (outside mode) kill it at a
		 * random moment; keep draining all along. */
		for (;;) {
			uint64_t t0 = cpu_ns(), d;
			int64_t m;
			rt_consumer_poll(c, on_record, NULL, 4096);
			d = cpu_ns() - t0;
			if (d > max_poll)
				max_poll = d;
			m = rt_consumer_mark(c, NULL, NULL);
			rt_consumer_release(c, m);
			if (v->mode == 1) {
				if (waitpid(pid, &st, WNOHANG) == pid)
					break;
			} else if (v->done >= threshold) {
				for (volatile long k = 0; k < spin; k++)
					;
				kill(pid, SIGKILL);
				waitpid(pid, &st, 0);
				break;
			}
		}
		CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "round %d: victim not killed", r);

		/* Drain until the consumer has noticed the death and freed
		 * the victim's slot (its loss, if any, is reported by then). */
		for (uint64_t deadline = t_now_ns() + 5000000000ull;;) {
			uint64_t t0 = cpu_ns(), d;
			int64_t m;
			rt_consumer_poll(c, on_record, NULL, 4096);
			d = cpu_ns() - t0;
			if (d > max_poll)
				max_poll = d;
			m = rt_consumer_mark(c, NULL, NULL);
			rt_consumer_release(c, m);
			if (!victim_alive(c, v->pid))
				break;
			CHECK(t_now_ns() < deadline, "round %d: the dead writer's slot was never freed",
			      r);
			t_pause();
		}

		/* What arrived of this victim. */
		CHECK_EQ(v->notaken, 0);
		for (uint32_t i = 0; i < v->done; i++)
			CHECK(got[r][i], "round %d: completed record %u never arrived", r, i);
		for (uint32_t i = v->done + 1; i < MAX_VICTIM_RECORDS && i <= v->done + 2; i++)
			CHECK(!got[r][i], "round %d: record %u was never written", r, i);
		CHECK(losses[r] <= 1, "round %d: %u losses reported", r, losses[r]);
		if (v->mode == 1) {
			/* Killed inside the write of record `inflight`. */
			CHECK_EQ(v->done, v->inflight);
			CHECK(losses[r] == 1, "round %d: the record killed mid-write was not "
			      "reported lost", r);
			CHECK(!got[r][v->inflight], "round %d: the half-written record arrived", r);
			inside++;
		} else {
			int inflight = v->inflight == v->done; /* a call was under way */
			CHECK(!(got[r][v->done] && losses[r]), "round %d: arrived and lost", r);
			if (!inflight)
				CHECK(losses[r] == 0, "round %d: loss reported between calls", r);
			outside_lost += (int)losses[r];
			outside_arrived += got[r][v->done];
		}
	}

	sh->stop = 1;
	CHECK_EQ(t_wait(steady), 0);
	for (uint64_t deadline = t_now_ns() + 5000000000ull;;) {
		struct rt_ring_stat st;
		t_drain(c, on_record, NULL);
		rt_ring_stat(rt_consumer_ring(c), &st);
		if (st.writers == 0)
			break;
		CHECK(t_now_ns() < deadline, "steady writer's slot never freed");
		t_pause();
	}
	{
		uint64_t notaken = 0;
		for (uint64_t i = 0; i < sh->steady_n; i++) {
			CHECK(sh->steady_taken[i] == steady_seen[i],
			      "steady record %llu taken=%d arrived=%d", (unsigned long long)i,
			      sh->steady_taken[i], steady_seen[i]);
			notaken += !sh->steady_taken[i];
		}
		CHECK(notaken == steady_dropped, "steady writer: %llu not taken, %llu reported",
		      (unsigned long long)notaken, (unsigned long long)steady_dropped);
	}
	{
		struct rt_ring_stat st;
		rt_ring_stat(rt_consumer_ring(c), &st);
		CHECK_EQ(st.lost, loss_records);
	}
	CHECK(max_poll < 100000000ull, "a consumer poll took %llu ms of CPU",
	      (unsigned long long)(max_poll / 1000000));
	printf("ok - %d writers killed (%d inside a write: each reported as 1 lost record; %d at "
	       "random: %d lost, %d in-flight records arrived); steady writer: %llu records, every "
	       "taken one arrived, %llu drops all reported; longest poll %.2f ms of CPU\n",
	       rounds, inside, rounds - inside, outside_lost, outside_arrived,
	       (unsigned long long)sh->steady_n, (unsigned long long)steady_dropped,
	       (double)max_poll / 1e6);
	rt_consumer_close(c);
	unlink(ring);
	free((void *)ring);
	free(got);
	free(last);
	free(losses);
	free(steady_seen);
	return 0;
}
