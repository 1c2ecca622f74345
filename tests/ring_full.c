/* SPDX-License-Identifier: MIT */
/*
 * ring_full - a full ring refuses records at once, counts every one it
 * refused (as `ringtail stat` shows and the loss record says), keeps a share
 * for WARN and above when INFO floods it, and keeps one flooding writer from
 * starving the others.
 *
 *   ring_full PATH-OF-ringtail
 */
#include <pthread.h>

#include "helpers.h"
#include "ringtail.h"

static const char *ring, *tool;

static void make_ring(void)
{
	struct rt_ring_params p;

	rt_ring_params_default(&p);
	p.size = 2u << 20;
	p.chunk_size = 4096;
	p.nslots = 64;
	p.reserve_pct = 12;
	p.writer_pct = 25;
	unlink(ring);
	CHECK_EQ(rt_ring_create(ring, &p), 0);
}

/* `ringtail stat --json` for the ring: the "dropped" total. */
static long long stat_dropped(void)
{
	char cmd[512], out[65536];
	FILE *f;
	size_t n;
	char *p;

	snprintf(cmd, sizeof(cmd), "'%s' stat --json --ring '%s'", tool, ring);
	f = popen(cmd, "r");
	CHECK(f != NULL, "popen");
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	CHECK(pclose(f) == 0, "ringtail stat failed: %s", out);
	p = strstr(out, "\"dropped\":");
	CHECK(p != NULL, "no dropped in %s", out);
	return atoll(p + 10);
}

static struct t_recs drain_ring(void)
{
	struct rt_consumer *c;
	struct t_recs rs = {0};

	CHECK_EQ(rt_consumer_open(ring, &c), 0);
	for (uint64_t deadline = t_now_ns() + 5000000000ull;;) {
		struct rt_ring_stat st;
		t_drain(c, t_collect, &rs);
		rt_ring_stat(rt_consumer_ring(c), &st);
		if (st.writers == 0)
			break;
		CHECK(t_now_ns() < deadline, "writer slots not freed");
		t_pause();
	}
	rt_consumer_close(c);
	return rs;
}

static void in_child(const char *name, void (*fn)(void))
{
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		setenv(RT_RING_ENV, ring, 1);
		fn();
		fflush(stdout);
		_exit(0);
	}
	st = t_wait(pid);
	CHECK(st == 0, "case '%s' failed (status %d)", name, st);
	printf("ok - %s\n", name);
}

/* Refused records: the count returned, the count in stat and the count in
 * the log all agree. Refusal is immediate. */
static void case_counts(void)
{
	char msg[100];
	uint64_t refused = 0, taken = 0, slowest = 0;

	memset(msg, 'm', sizeof(msg));
	for (int i = 0; i < 100000; i++) {
		uint64_t t0 = t_now_ns(), d;
		int r = rt_write(RT_INFO, msg, sizeof(msg));
		d = t_now_ns() - t0;
		if (r == 0) {
			taken++;
		} else {
			CHECK_EQ(r, -ENOBUFS);
			refused++;
			if (d > slowest)
				slowest = d;
		}
	}
	CHECK(refused > 0 && taken > 0, "taken %llu refused %llu", (unsigned long long)taken,
	      (unsigned long long)refused);
	CHECK_EQ(rt_dropped(), refused);
	CHECK_EQ(stat_dropped(), (long long)refused);
	printf("  %llu taken, %llu refused (slowest refusal %llu us), stat agrees\n",
	       (unsigned long long)taken, (unsigned long long)refused,
	       (unsigned long long)(slowest / 1000));
}

/* Several INFO flooders fill everything they may; WARN and ERROR records of
 * another writer still go in. */
static int flood_stop;
static void *flooder(void *arg)
{
	char msg[200];
	uint64_t *refused = arg;

	memset(msg, 'f', sizeof(msg));
	while (!__atomic_load_n(&flood_stop, __ATOMIC_RELAXED))
		if (rt_write(RT_INFO, msg, sizeof(msg)) != 0)
			__atomic_fetch_add(refused, 1, __ATOMIC_RELAXED);
	return NULL;
}

static void case_warn_survives_flood(void)
{
	pthread_t th[6];
	uint64_t refused[6] = {0};
	int warn_ok = 0, info_refused = 0;

	for (int i = 0; i < 6; i++)
		pthread_create(&th[i], NULL, flooder, &refused[i]);
	/* Wait until every flooder is being refused: the ring is as full as
	 * INFO may make it. */
	for (uint64_t deadline = t_now_ns() + 10000000000ull;;) {
		int all = 1;
		for (int i = 0; i < 6; i++)
			all &= __atomic_load_n(&refused[i], __ATOMIC_RELAXED) > 1000;
		if (all)
			break;
		CHECK(t_now_ns() < deadline, "the flood never filled the ring");
		sched_yield();
	}
	for (int i = 0; i < 200; i++) {
		char msg[128];
		int n = snprintf(msg, sizeof(msg), "important %d", i);
		if (rt_write(i % 2 ? RT_ERROR : RT_WARN, msg, (size_t)n) == 0)
			warn_ok++;
		if (rt_write(RT_INFO, msg, (size_t)n) != 0)
			info_refused++;
	}
	__atomic_store_n(&flood_stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
	CHECK(warn_ok == 200, "only %d of 200 WARN/ERROR records taken during the flood",
	      warn_ok);
	CHECK(info_refused > 0, "INFO was never refused: no pressure?");
	printf("  200 of 200 WARN/ERROR records taken while INFO was refused (%d of 200 here)\n",
	       info_refused);
}

/* One writer floods; another, writing a little, is not refused. */
static void *modest(void *arg)
{
	int *ok = arg;
	char msg[100];

	memset(msg, 'q', sizeof(msg));
	for (int i = 0; i < 2000; i++)
		if (rt_write(RT_INFO, msg, sizeof(msg)) == 0)
			(*ok)++;
	return NULL;
}

static void case_flooder_cannot_starve(void)
{
	pthread_t fl, md;
	uint64_t refused = 0;
	int ok = 0;

	__atomic_store_n(&flood_stop, 0, __ATOMIC_RELAXED);
	pthread_create(&fl, NULL, flooder, &refused);
	while (__atomic_load_n(&refused, __ATOMIC_RELAXED) < 10000)
		sched_yield();
	/* The flooder holds its whole share and is being refused. */
	pthread_create(&md, NULL, modest, &ok);
	pthread_join(md, NULL);
	__atomic_store_n(&flood_stop, 1, __ATOMIC_RELAXED);
	pthread_join(fl, NULL);
	CHECK(ok == 2000, "the modest writer got %d of 2000 records in", ok);
	printf("  the flooder was refused %llu times; the other writer got 2000 of 2000 in\n",
	       (unsigned long long)refused);
}

int main(int argc, char **argv)
{
	CHECK(argc == 2, "usage: ring_full PATH-OF-ringtail");
	tool = argv[1];
	ring = strdup(t_ring_path("full"));

	make_ring();
	in_child("refusals are counted", case_counts);
	{
		long long n = stat_dropped();
		/* The writer has exited; the consumer reports it in the log. */
		struct t_recs rs = drain_ring();
		uint64_t logged = 0;
		for (size_t i = 0; i < rs.n; i++) {
			unsigned long long k;
			unsigned p;
			if ((rs.v[i].flags & RT_REC_LOSS) &&
			    sscanf(rs.v[i].msg, "%llu calls refused from pid %u", &k, &p) == 2)
				logged += k;
		}
		CHECK(logged == (unsigned long long)n, "log says %llu dropped, stat said %lld",
		      (unsigned long long)logged, n);
		t_recs_free(&rs);
		printf("ok - the log records %llu dropped\n", (unsigned long long)logged);
	}
	make_ring();
	in_child("WARN+ survive an INFO flood", case_warn_survives_flood);
	make_ring();
	in_child("one flooder cannot starve the others", case_flooder_cannot_starve);
	unlink(ring);
	return 0;
}
