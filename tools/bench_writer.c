/* SPDX-License-Identifier: MIT */
/*
 * bench_writer.c - `ringtail bench writer`: the cost of one writer call.
 *
 * Per thread, each round measures, call by call with the TSC:
 *   writer  rt_write() of a preformatted record of --size bytes;
 *   floor   the same record bytes copied into private memory, the same clock
 *           read the writer makes, and a release store;
 *   printf  rt_printf() with two arguments;
 * and, untimed per call, the throughput of rt_write(). The back-to-back cost
 * of the two TSC reads around each call is measured too and subtracted from
 * every figure. The ring is private to the benchmark and big enough for one
 * phase; between phases the main thread drains it with a real consumer.
 * Figures are medians over --rounds rounds.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "rtshm.h"

#define SERVICE "bench"

struct bench {
	int threads;
	uint64_t size;
	uint64_t records;
	int rounds;
	int json;
	int use_tsc;
	double ns_per_tick;
	pthread_barrier_t bar;
	char *msg;
	/* Results of the current round, all threads' samples together. */
	uint32_t *w_samples;
	uint32_t *f_samples;
	uint32_t *p_samples;
	double *tput_ns; /* per thread: ns for the untimed run */
	int failed;
};

struct worker {
	struct bench *b;
	int idx;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
	uint64_t t;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	t = __builtin_ia32_rdtsc();
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	return t;
#else
	return now_ns();
#endif
}

static double calibrate(void)
{
#if defined(__x86_64__) || defined(__i386__)
	struct timespec d = {0, 50 * 1000 * 1000};
	uint64_t n0 = now_ns(), t0 = ticks(), n1, t1;
	nanosleep(&d, NULL);
	n1 = now_ns();
	t1 = ticks();
	return (double)(n1 - n0) / (double)(t1 - t0);
#else
	return 1.0;
#endif
}

static void pin(int idx)
{
	cpu_set_t set;
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	CPU_ZERO(&set);
	CPU_SET((int)(idx % (n > 0 ? n : 1)), &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct bench *b = w->b;
	uint64_t n = b->records, i, off = 0;
	uint32_t *ws = b->w_samples + (uint64_t)w->idx * n;
	uint32_t *fs = b->f_samples + (uint64_t)w->idx * n;
	uint32_t *ps = b->p_samples + (uint64_t)w->idx * n;
	size_t stride = RT__ALIGN8(RT__REC_HDR + strlen(SERVICE) + b->size);
	size_t priv_size = stride * (n + 1);
	char *priv, rec[RT__REC_HDR + 64 + 65536];
	uint64_t commit = 0, t0, t1;
	int bad = 0;

	pin(w->idx);
	/* The floor's private memory, touched beforehand like the ring is. */
	priv = malloc(priv_size);
	if (!priv) {
		b->failed = 1;
		return NULL;
	}
	memset(priv, 1, priv_size); /* not 0: malloc+memset(0) may become calloc */
	memset(rec, 'r', sizeof(rec));
	if (rt_write(RT_INFO, b->msg, b->size) != 0) /* attach, claim a slot and a chunk */
		bad = 1;

	/* Phase 1: the writer, call by call. */
	pthread_barrier_wait(&b->bar);
	for (i = 0; i < n; i++) {
		t0 = ticks();
		int r = rt_write(RT_INFO, b->msg, b->size);
		t1 = ticks();
		ws[i] = (uint32_t)(t1 - t0);
		bad |= r != 0;
	}
	pthread_barrier_wait(&b->bar);
	pthread_barrier_wait(&b->bar); /* main drains */

	/* Phase 2: the floor. */
	for (i = 0; i < n; i++) {
		t0 = ticks();
		memcpy(priv + off, rec, stride);
		uint64_t ts = b->use_tsc ? __builtin_ia32_rdtsc() : (uint64_t)now_ns();
		memcpy(priv + off + 8, &ts, 8);
		off += stride;
		__atomic_store_n(&commit, off, __ATOMIC_RELEASE);
		t1 = ticks();
		fs[i] = (uint32_t)(t1 - t0);
	}
	pthread_barrier_wait(&b->bar);

	/* Phase 3: printf-style with two arguments. */
	for (i = 0; i < n; i++) {
		t0 = ticks();
		int r = rt_printf(RT_INFO, "request %llu served in %d us",
				  (unsigned long long)i, (int)(i & 1023));
		t1 = ticks();
		ps[i] = (uint32_t)(t1 - t0);
		bad |= r != 0;
	}
	pthread_barrier_wait(&b->bar);
	pthread_barrier_wait(&b->bar); /* main drains */

	/* Phase 4: throughput, untimed per call. */
	t0 = now_ns();
	for (i = 0; i < n; i++)
		bad |= rt_write(RT_INFO, b->msg, b->size) != 0;
	b->tput_ns[w->idx] = (double)(now_ns() - t0);
	pthread_barrier_wait(&b->bar);
	pthread_barrier_wait(&b->bar); /* main drains */

	if (bad)
		b->failed = 1;
	if (commit == 0)
		b->failed = 1;
	free(priv);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(uint32_t *s, uint64_t n, double p)
{
	uint64_t k = (uint64_t)(p * (double)(n - 1));
	return (double)s[k];
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_dbl);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int count_fn(void *arg, const struct rt_rec *rec, const struct rt_origin *o)
{
	(void)rec;
	(void)o;
	(*(uint64_t *)arg)++;
	return 0;
}

/* Drain everything written so far and give the chunks back. */
static uint64_t drain_all(struct rt_consumer *c)
{
	uint64_t n = 0;
	int got;

	do {
		got = rt_consumer_poll(c, count_fn, &n, 1u << 20);
		int64_t m = rt_consumer_mark(c, NULL, NULL);
		if (m > 0)
			rt_consumer_release(c, m);
	} while (got > 0);
	return n;
}

/* Timer overhead: back-to-back reads, median, in ticks. */
static double timer_overhead(void)
{
	enum { N = 100001 };
	uint32_t *s = malloc(N * sizeof(*s));
	double v;
	int i;

	if (!s)
		return 0;
	for (i = 0; i < N; i++) {
		uint64_t a = ticks(), b = ticks();
		s[i] = (uint32_t)(b - a);
	}
	qsort(s, N, sizeof(*s), cmp_u32);
	v = s[N / 2];
	free(s);
	return v;
}

static const char usage[] =
	"usage: ringtail bench writer [--threads N] [--size BYTES] [--records N]\n"
	"                             [--rounds N] [--json]\n"
	"Defaults: 1 thread, 100-byte messages, 500000 records per thread and phase,\n"
	"5 rounds. Uses a private ring in /dev/shm, removed at the end.\n";

int bench_writer(int argc, char **argv)
{
	static const struct option opts[] = {
		{"threads", required_argument, NULL, 't'}, {"size", required_argument, NULL, 's'},
		{"records", required_argument, NULL, 'n'}, {"rounds", required_argument, NULL, 'R'},
		{"json", no_argument, NULL, 'j'},          {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct bench b;
	struct rt_ring_params p;
	struct rt_consumer *cons = NULL;
	struct worker *wk;
	pthread_t *th;
	char path[128];
	double r_p50[64], r_p99[64], r_p999[64], r_f50[64], r_f99[64], r_f999[64], r_pf50[64],
		r_pf99[64], r_rate[64], r_ratio[64], ovh;
	uint64_t v, total, stride, drained_total = 0;
	int c, i, r, err, ret = 1;

	memset(&b, 0, sizeof(b));
	b.threads = 1;
	b.size = 100;
	b.records = 500000;
	b.rounds = 5;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (rt_parse_u64(optarg, &v) || v == 0 || v > 64)
				goto bad;
			b.threads = (int)v;
			break;
		case 's':
			if (rt_parse_size(optarg, &v) || v > 60000)
				goto bad;
			b.size = v;
			break;
		case 'n':
			if (rt_parse_u64(optarg, &v) || v < 1000 || v > 50000000)
				goto bad;
			b.records = v;
			break;
		case 'R':
			if (rt_parse_u64(optarg, &v) || v == 0 || v > 64)
				goto bad;
			b.rounds = (int)v;
			break;
		case 'j':
			b.json = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			goto bad;
		}
	}

	stride = RT__ALIGN8(RT__REC_HDR + strlen(SERVICE) + b.size);
	snprintf(path, sizeof(path), "/dev/shm/ringtail-bench-%d", (int)getpid());
	rt_ring_params_default(&p);
	/* One phase's records of every thread, with room to spare. */
	p.size = (uint64_t)b.threads * (b.records + 1000) * stride * 5 / 4 + (16u << 20);
	p.reserve_pct = 0;
	p.writer_pct = 100;
	p.mode = 0600;
	err = rt_ring_create(path, &p);
	if (err) {
		cli_err("cannot create %s: %s", path, rt_strerror(err));
		return 1;
	}
	setenv(RT_RING_ENV, path, 1);
	err = rt_consumer_open(path, &cons);
	if (err) {
		cli_err("cannot consume %s: %s", path, rt_strerror(err));
		goto out;
	}
	b.use_tsc = (rt_ring_header(rt_consumer_ring(cons))->flags_incompat & RT__RING_F_TSC) != 0;
	b.ns_per_tick = calibrate();
	ovh = timer_overhead();
	total = (uint64_t)b.threads * b.records;
	b.msg = malloc(b.size + 1);
	b.w_samples = malloc(total * sizeof(uint32_t));
	b.f_samples = malloc(total * sizeof(uint32_t));
	b.p_samples = malloc(total * sizeof(uint32_t));
	b.tput_ns = calloc((size_t)b.threads, sizeof(double));
	wk = calloc((size_t)b.threads, sizeof(*wk));
	th = calloc((size_t)b.threads, sizeof(*th));
	if (!b.msg || !b.w_samples || !b.f_samples || !b.p_samples || !b.tput_ns || !wk || !th) {
		cli_err("out of memory");
		goto out;
	}
	for (v = 0; v < b.size; v++)
		b.msg[v] = (char)('a' + v % 26);

	if (!b.json)
		printf("bench writer: %d thread(s), %llu-byte messages (%llu-byte records), "
		       "%llu records per phase per thread, %d rounds, clock %s\n",
		       b.threads, (unsigned long long)b.size, (unsigned long long)stride,
		       (unsigned long long)b.records, b.rounds, b.use_tsc ? "tsc" : "clock_gettime");

	for (r = 0; r < b.rounds; r++) {
		double tmax = 0, o = ovh;
		pthread_barrier_init(&b.bar, NULL, (unsigned)b.threads + 1);
		for (i = 0; i < b.threads; i++) {
			wk[i].b = &b;
			wk[i].idx = i;
			pthread_create(&th[i], NULL, worker_main, &wk[i]);
		}
		pthread_barrier_wait(&b.bar); /* start phase 1 */
		pthread_barrier_wait(&b.bar); /* end phase 1 */
		drained_total += drain_all(cons);
		pthread_barrier_wait(&b.bar); /* start phase 2 */
		pthread_barrier_wait(&b.bar); /* end phase 2, start 3 */
		pthread_barrier_wait(&b.bar); /* end phase 3 */
		drained_total += drain_all(cons);
		pthread_barrier_wait(&b.bar); /* start phase 4 */
		pthread_barrier_wait(&b.bar); /* end phase 4 */
		drained_total += drain_all(cons);
		pthread_barrier_wait(&b.bar);
		for (i = 0; i < b.threads; i++)
			pthread_join(th[i], NULL);
		drained_total += drain_all(cons); /* slots of exited threads */
		pthread_barrier_destroy(&b.bar);
		if (b.failed) {
			cli_err("a write failed during the benchmark (ring too small?)");
			goto out;
		}
		qsort(b.w_samples, total, sizeof(uint32_t), cmp_u32);
		qsort(b.f_samples, total, sizeof(uint32_t), cmp_u32);
		qsort(b.p_samples, total, sizeof(uint32_t), cmp_u32);
#define NET(x) (((x) > o ? (x) - o : 0) * b.ns_per_tick)
		r_p50[r] = NET(pct(b.w_samples, total, 0.50));
		r_p99[r] = NET(pct(b.w_samples, total, 0.99));
		r_p999[r] = NET(pct(b.w_samples, total, 0.999));
		r_f50[r] = NET(pct(b.f_samples, total, 0.50));
		r_f99[r] = NET(pct(b.f_samples, total, 0.99));
		r_f999[r] = NET(pct(b.f_samples, total, 0.999));
		r_pf50[r] = NET(pct(b.p_samples, total, 0.50));
		r_pf99[r] = NET(pct(b.p_samples, total, 0.99));
#undef NET
		for (i = 0; i < b.threads; i++)
			if (b.tput_ns[i] > tmax)
				tmax = b.tput_ns[i];
		r_rate[r] = (double)total / (tmax / 1e9);
		r_ratio[r] = r_f50[r] > 0 ? r_p50[r] / r_f50[r] : 0;
		if (!b.json)
			printf("  round %d: writer p50 %.1f p99 %.1f p99.9 %.1f ns | floor p50 %.1f "
			       "p99 %.1f p99.9 %.1f ns | ratio %.2f | printf p50 %.1f ns | %.1f M "
			       "records/s\n",
			       r + 1, r_p50[r], r_p99[r], r_p999[r], r_f50[r], r_f99[r], r_f999[r],
			       r_ratio[r], r_pf50[r], r_rate[r] / 1e6);
	}
	{
		double p50 = median(r_p50, b.rounds), p99 = median(r_p99, b.rounds),
		       p999 = median(r_p999, b.rounds), f50 = median(r_f50, b.rounds),
		       f99 = median(r_f99, b.rounds), f999 = median(r_f999, b.rounds),
		       pf50 = median(r_pf50, b.rounds), pf99 = median(r_pf99, b.rounds),
		       rate = median(r_rate, b.rounds), ratio = median(r_ratio, b.rounds);
		uint64_t expect = (uint64_t)b.rounds * (3 * total + (uint64_t)b.threads);
		if (drained_total != expect) {
			cli_err("consumer saw %llu records, expected %llu",
				(unsigned long long)drained_total, (unsigned long long)expect);
			goto out;
		}
		if (!b.json) {
			printf("median of %d rounds (timer overhead %.1f ns subtracted):\n", b.rounds,
			       ovh * b.ns_per_tick);
			printf("  writer   p50 %7.1f ns  p99 %7.1f ns  p99.9 %7.1f ns  %.2f M records/s\n",
			       p50, p99, p999, rate / 1e6);
			printf("  floor    p50 %7.1f ns  p99 %7.1f ns  p99.9 %7.1f ns  (memcpy %llu B + "
			       "%s + release store)\n",
			       f50, f99, f999, (unsigned long long)stride,
			       b.use_tsc ? "rdtsc" : "clock_gettime");
			printf("  ratio    %.2f (writer p50 / floor p50)\n", ratio);
			printf("  printf   p50 %7.1f ns  p99 %7.1f ns  (two arguments)\n", pf50, pf99);
		}
		printf("{\"bench\":\"writer\",\"threads\":%d,\"size\":%llu,\"record_bytes\":%llu,"
		       "\"records\":%llu,\"rounds\":%d,\"p50_ns\":%.1f,\"p99_ns\":%.1f,"
		       "\"p999_ns\":%.1f,\"records_per_s\":%.0f,\"floor_p50_ns\":%.1f,"
		       "\"floor_p99_ns\":%.1f,\"floor_p999_ns\":%.1f,\"ratio\":%.3f,"
		       "\"printf_p50_ns\":%.1f,\"printf_p99_ns\":%.1f,\"timer_ns\":%.1f,"
		       "\"clock\":\"%s\"}\n",
		       b.threads, (unsigned long long)b.size, (unsigned long long)stride,
		       (unsigned long long)b.records, b.rounds, p50, p99, p999, rate, f50, f99, f999,
		       ratio, pf50, pf99, ovh * b.ns_per_tick, b.use_tsc ? "tsc" : "realtime");
	}
	ret = 0;
out:
	rt_consumer_close(cons);
	rt_ring_remove(path);
	unlink(path);
	free(b.msg);
	free(b.w_samples);
	free(b.f_samples);
	free(b.p_samples);
	free(b.tput_ns);
	return ret;
bad:
	fputs(usage, stderr);
	return 2;
}

int cmd_bench(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "writer"))
		return bench_writer(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "spool"))
		return bench_spool(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "fs"))
		return bench_fs(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "forward"))
		return bench_forward(argc - 1, argv + 1);
	cli_err("usage: ringtail bench writer|spool|fs|forward ... (see ringtail --help)");
	return 2;
}
