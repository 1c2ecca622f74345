/* SPDX-License-Identifier: MIT */
/*
 * ring_restart - the consumer's position survives the consumer: records
 * released before it stopped are never delivered again, records delivered
 * but not released are, records written while it was away wait for it, and
 * positions handed back with rt_consumer_restore() are honoured. A second
 * consumer is refused while the first holds the ring.
 */
#include <signal.h>
#include <sys/mman.h>

#include "helpers.h"
#include "ringtail.h"

static const char *ring;

static void make_ring(void)
{
	struct rt_ring_params p;

	rt_ring_params_default(&p);
	p.size = 8u << 20;
	p.chunk_size = 4096;
	p.nslots = 64;
	unlink(ring);
	CHECK_EQ(rt_ring_create(ring, &p), 0);
}

/* Write records "n" for n in [from, to) in a child process that stays
 * alive until told to exit (its slot must not be freed meanwhile). */
struct writer {
	pid_t pid;
	int cmd[2];
	int ack[2];
};

static void writer_start(struct writer *w)
{
	CHECK(pipe(w->cmd) == 0 && pipe(w->ack) == 0, "pipe");
	fflush(stdout);
	w->pid = fork();
	CHECK(w->pid >= 0, "fork");
	if (w->pid == 0) {
		unsigned from, to;
		char buf[32];
		FILE *in;
		close(w->cmd[1]);
		close(w->ack[0]);
		in = fdopen(w->cmd[0], "r");
		while (fscanf(in, "%u %u", &from, &to) == 2) {
			for (unsigned n = from; n < to; n++) {
				int len = snprintf(buf, sizeof(buf), "%u", n);
				CHECK(rt_write(RT_INFO, buf, (size_t)len) == 0, "write %u", n);
			}
			CHECK(write(w->ack[1], "k", 1) == 1, "ack");
		}
		_exit(0);
	}
}

static void writer_write(struct writer *w, unsigned from, unsigned to)
{
	char buf[64], k;
	int n = snprintf(buf, sizeof(buf), "%u %u\n", from, to);
	CHECK(write(w->cmd[1], buf, (size_t)n) == n, "cmd");
	CHECK(read(w->ack[0], &k, 1) == 1, "ack");
}

static void writer_stop(struct writer *w)
{
	close(w->cmd[1]);
	CHECK_EQ(t_wait(w->pid), 0);
	close(w->cmd[0]);
	close(w->ack[0]);
	close(w->ack[1]);
}

/* Collect the numbers of plain records; count loss records. */
struct seen {
	unsigned v[100000];
	size_t n;
	size_t losses;
};

static int collect(void *arg, const struct rt_rec *r, const struct rt_origin *o)
{
	struct seen *s = arg;
	(void)o;
	if (r->flags & RT_REC_LOSS) {
		s->losses++;
		return 0;
	}
	char buf[32];
	CHECK(s->n < 100000 && r->msg_len < sizeof(buf), "too many");
	memcpy(buf, r->msg, r->msg_len);
	buf[r->msg_len] = '\0';
	s->v[s->n++] = (unsigned)strtoul(buf, NULL, 10);
	return 0;
}

static void expect_range(const struct seen *s, unsigned from, unsigned to)
{
	CHECK(s->n == to - from, "got %zu records, want %u (%u..%u)", s->n, to - from, from, to);
	for (size_t i = 0; i < s->n; i++)
		CHECK(s->v[i] == from + i, "record %zu is %u, want %zu", i, s->v[i], from + i);
}

static void case_resume(void)
{
	struct writer w;
	struct rt_consumer *c, *c2;
	static struct seen s;
	int64_t m;

	make_ring();
	writer_start(&w);
	writer_write(&w, 0, 1000);

	CHECK_EQ(rt_consumer_open(ring, &c), 0);
	CHECK_EQ(rt_consumer_open(ring, &c2), -EBUSY);
	s.n = 0;
	CHECK_EQ(rt_consumer_poll(c, collect, &s, 300), 300);
	m = rt_consumer_mark(c, NULL, NULL);
	CHECK_EQ(rt_consumer_release(c, m), 0);
	CHECK_EQ(rt_consumer_poll(c, collect, &s, 200), 200);
	rt_consumer_mark(c, NULL, NULL); /* delivered, never released */
	expect_range(&s, 0, 500);
	rt_consumer_close(c);

	writer_write(&w, 1000, 2000); /* while no consumer runs */
	CHECK_EQ(rt_consumer_open(ring, &c), 0);
	s.n = 0;
	t_drain(c, collect, &s);
	expect_range(&s, 300, 2000);
	rt_consumer_close(c);
	writer_stop(&w);
	printf("ok - released records are not repeated, unreleased ones are\n");
}

/* Positions the caller made durable but never released come back through
 * rt_consumer_restore(), including reported drops and finished writers. */
static void case_restore(void)
{
	struct writer w;
	struct rt_consumer *c;
	static struct seen s;
	struct rt_cursor saved[64];
	const struct rt_cursor *e;
	size_t n, nsaved = 0;
	int64_t m;
	pid_t dropper;

	make_ring();
	writer_start(&w);
	writer_write(&w, 0, 1000);
	/* A writer that fails a call (counted drop) and exits. */
	fflush(stdout);
	dropper = fork();
	if (dropper == 0) {
		CHECK(rt_write(RT_INFO, "ok", 2) == 0, "write");
		CHECK(rt_write(0, "bad", 3) == -EINVAL, "bad");
		_exit(0);
	}
	CHECK_EQ(t_wait(dropper), 0);

	CHECK_EQ(rt_consumer_open(ring, &c), 0);
	s.n = s.losses = 0;
	/* Drain until the exited writer is finished (reported, FINAL). */
	for (uint64_t deadline = t_now_ns() + 5000000000ull;;) {
		rt_consumer_poll(c, collect, &s, 100000);
		m = rt_consumer_mark(c, &e, &n);
		CHECK(m > 0 && n < 64, "mark");
		for (size_t k = 0; k < n; k++) {
			/* Keep the newest entry per slot, like a segment would. */
			size_t j;
			for (j = 0; j < nsaved && saved[j].slot != e[k].slot; j++)
				;
			CHECK(j < 64, "too many slots");
			saved[j] = e[k];
			if (j == nsaved)
				nsaved++;
		}
		if (s.losses == 1 && s.n == 1001) {
			int final = 0;
			for (size_t j = 0; j < nsaved; j++)
				final |= (saved[j].flags & RT_CURSOR_FINAL) != 0;
			if (final)
				break;
		}
		CHECK(t_now_ns() < deadline, "never finished the exited writer");
		t_pause();
	}
	/* "Crash": nothing was released. */
	rt_consumer_close(c);

	CHECK_EQ(rt_consumer_open(ring, &c), 0);
	CHECK_EQ(rt_consumer_restore(c, saved, nsaved), 0);
	writer_write(&w, 1000, 1100);
	s.n = s.losses = 0;
	t_drain(c, collect, &s);
	expect_range(&s, 1000, 1100);
	CHECK_EQ(s.losses, 0);
	{
		struct rt_ring_stat st;
		rt_ring_stat(rt_consumer_ring(c), &st);
		CHECK_EQ(st.writers, 1); /* the finished writer's slot was freed */
	}
	rt_consumer_close(c);
	writer_stop(&w);
	printf("ok - restored positions are honoured (records, drop reports, finished writers)\n");
}

/* A consumer SIGKILLed at random moments: the next one starts exactly
 * after what the previous one released. */
struct progress {
	volatile unsigned releasing; /* a release up to this has begun */
	volatile unsigned released;  /* every record < this is released */
	volatile unsigned delivered;
};

static void case_killed_consumer(void)
{
	struct writer w;
	struct progress *pg;
	static struct seen s;
	unsigned total = 0;

	make_ring();
	writer_start(&w);
	pg = mmap(NULL, sizeof(*pg), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(pg != MAP_FAILED, "mmap");
	srandom((unsigned)t_now_ns());
	for (int round = 0; round < 50; round++) {
		pid_t cpid;
		struct rt_consumer *c;

		writer_write(&w, total, total + 500);
		total += 500;
		pg->delivered = pg->releasing = pg->released;
		fflush(stdout);
		cpid = fork();
		CHECK(cpid >= 0, "fork");
		if (cpid == 0) {
			/* Consume one record at a time, releasing every few. */
			CHECK(rt_consumer_open(ring, &c) == 0, "consumer");
			for (;;) {
				static struct seen mine;
				mine.n = 0;
				if (rt_consumer_poll(c, collect, &mine, 1) == 1) {
					CHECK(mine.v[0] == pg->delivered, "child got %u want %u",
					      mine.v[0], pg->delivered);
					pg->delivered = mine.v[0] + 1;
				}
				if (pg->delivered % 7 == 0 || random() % 3 == 0) {
					unsigned upto = pg->delivered;
					int64_t m = rt_consumer_mark(c, NULL, NULL);
					pg->releasing = upto;
					rt_consumer_release(c, m);
					pg->released = upto;
				}
			}
		}
		/* Kill it after a random amount of its work. */
		while (pg->delivered < pg->released + (unsigned)(random() % 200) &&
		       pg->delivered < total)
			sched_yield();
		kill(cpid, SIGKILL);
		CHECK_EQ(t_wait(cpid), 128 + SIGKILL);

		/* The next consumer starts exactly at the first record not
		 * released (the kill may have landed inside a release). */
		CHECK_EQ(rt_consumer_open(ring, &c), 0);
		s.n = 0;
		CHECK(rt_consumer_poll(c, collect, &s, 1) <= 1, "poll");
		if (s.n == 1) {
			CHECK(s.v[0] == pg->released || s.v[0] == pg->releasing,
			      "round %d: after the kill, first record %u, released up to %u (or %u)",
			      round, s.v[0], pg->released, pg->releasing);
			pg->released = s.v[0];
		} else {
			CHECK(pg->releasing == total, "round %d: nothing delivered after the kill", round);
			pg->released = total;
		}
		rt_consumer_close(c);
	}
	writer_stop(&w);
	munmap(pg, sizeof(*pg));
	printf("ok - 50 consumers SIGKILLed: each successor began at the first unreleased record\n");
}

int main(void)
{
	ring = strdup(t_ring_path("restart"));
	setenv(RT_RING_ENV, ring, 1);
	case_resume();
	case_restore();
	case_killed_consumer();
	unlink(ring);
	return 0;
}
