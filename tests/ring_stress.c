/* SPDX-License-Identifier: MIT */
/*
 * ring_stress - many processes x many threads write while one consumer
 * drains. Every record a writer call reported taken must arrive exactly
 * once, in the order its thread wrote it, with every field intact; every
 * record not taken must be counted in the consumer's loss records, exactly.
 *
 *   ring_stress [--procs P] [--threads T] [--records N] [--inproc]
 *
 * Defaults: 8 processes x 4 threads x 100000 records. --inproc runs the
 * writer threads inside the consumer's process (for ThreadSanitizer, which
 * cannot see into other processes).
 */
#include <getopt.h>
#include <pthread.h>
#include <sys/mman.h>

#include "helpers.h"
#include "ringtail.h"

static int procs = 8, threads = 4, inproc;
static uint32_t records = 100000;
static const char *ring;

/* Shared with the writer processes. */
struct shared {
	uint32_t pid[64][64];
	uint32_t tid[64][64];
	uint32_t ready;
	uint32_t go;
	uint64_t notaken[64][64];
	uint8_t taken[]; /* [procs][threads][records] */
};
static struct shared *sh;
/* The consumer's own view. */
static uint8_t *seen;
static int64_t last[64][64];
static uint64_t received, loss_reported[64][64];

static uint8_t *taken_at(int p, int t, uint32_t i)
{
	return &sh->taken[((size_t)p * threads + t) * records + i];
}

/* Everything about record i of writer (p, t) is a function of (p, t, i). */
static int sev_of(int p, int t, uint32_t i)
{
	return 1 + (int)((i + (uint32_t)p + (uint32_t)t) % 24);
}

static size_t fill_of(uint32_t i)
{
	return (i * 7u) % 211u;
}

static void trace_of(int p, int t, uint32_t i, uint8_t out[16])
{
	for (int k = 0; k < 16; k++)
		out[k] = (uint8_t)(p * 31 + t * 17 + (int)i * 13 + k);
}

static int msg_of(int p, int t, uint32_t i, char *buf)
{
	int n = sprintf(buf, "p=%d t=%d i=%u ", p, t, i);
	size_t f = fill_of(i);
	for (size_t k = 0; k < f; k++)
		buf[n + (int)k] = (char)('a' + (i + k) % 26);
	return n + (int)f;
}

struct wargs {
	int p, t;
};

static void *writer(void *arg)
{
	struct wargs *w = arg;
	char buf[512], alt[16], ival[16];
	uint8_t trace[16];
	struct rt_attr attr = {"i", ival};
	struct rt_opts o;
	uint32_t i;

	sh->tid[w->p][w->t] = rt__gettid_v1();
	snprintf(alt, sizeof(alt), "alt-%d", w->t);
	__atomic_fetch_add(&sh->ready, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&sh->go, __ATOMIC_ACQUIRE))
		sched_yield();
	for (i = 0; i < records; i++) {
		int n = msg_of(w->p, w->t, i, buf), r;
		memset(&o, 0, sizeof(o));
		if (i % 3 == 0) {
			trace_of(w->p, w->t, i, trace);
			o.trace_id = trace;
		}
		if (i % 5 == 0) {
			snprintf(ival, sizeof(ival), "%u", i);
			o.attrs = &attr;
			o.nattrs = 1;
		}
		if (i % 7 == 0)
			o.service = alt;
		if (i % 11 == 0)
			r = rt_printfx(sev_of(w->p, w->t, i), &o, "%.*s", n, buf);
		else if (o.trace_id || o.attrs || o.service)
			r = rt_writex(sev_of(w->p, w->t, i), &o, buf, (size_t)n);
		else
			r = rt_write(sev_of(w->p, w->t, i), buf, (size_t)n);
		if (r == 0)
			*taken_at(w->p, w->t, i) = 1;
		else
			sh->notaken[w->p][w->t]++;
		CHECK(r == 0 || r == -ENOBUFS, "write error %d", r);
	}
	return NULL;
}

static void run_process(int p)
{
	pthread_t th[64];
	struct wargs wa[64];
	char svc[16];

	snprintf(svc, sizeof(svc), "svc-%d", p);
	CHECK_EQ(rt_set_service(svc), 0);
	for (int t = 0; t < threads; t++) {
		sh->pid[p][t] = (uint32_t)getpid();
		wa[t].p = p;
		wa[t].t = t;
		pthread_create(&th[t], NULL, writer, &wa[t]);
	}
	for (int t = 0; t < threads; t++)
		pthread_join(th[t], NULL);
}

static int find_writer(uint32_t pid, uint32_t tid, int *p, int *t)
{
	for (*p = 0; *p < procs; (*p)++)
		for (*t = 0; *t < threads; (*t)++)
			if (sh->pid[*p][*t] == pid && sh->tid[*p][*t] == tid)
				return 1;
	return 0;
}

static int check(void *arg, const struct rt_rec *r, const struct rt_origin *o)
{
	int p, t, n;
	unsigned ui;
	uint32_t i;
	char want[512], svc[16];

	(void)arg;
	(void)o;
	if (r->flags & RT_REC_LOSS) {
		unsigned long long cnt;
		unsigned pid, tid;
		CHECK(sscanf(r->msg, "%llu calls refused from pid %u tid %u", &cnt, &pid, &tid) == 3,
		      "unexpected loss record '%.*s'", (int)r->msg_len, r->msg);
		CHECK(find_writer(pid, tid, &p, &t), "loss record for unknown writer %u/%u", pid, tid);
		loss_reported[p][t] += cnt;
		return 0;
	}
	CHECK(sscanf(r->msg, "p=%d t=%d i=%u ", &p, &t, &ui) == 3, "bad message");
	i = ui;
	CHECK(p >= 0 && p < procs && t >= 0 && t < threads && i < records, "out of range");
	CHECK(r->pid == sh->pid[p][t] && r->tid == sh->tid[p][t], "pid/tid of p=%d t=%d", p, t);
	CHECK((int64_t)i > last[p][t], "order: p=%d t=%d got %u after %lld", p, t, i,
	      (long long)last[p][t]);
	last[p][t] = i;
	CHECK(!seen[((size_t)p * threads + t) * records + i], "duplicate p=%d t=%d i=%u", p, t, i);
	seen[((size_t)p * threads + t) * records + i] = 1;
	CHECK(r->severity == sev_of(p, t, i), "severity");
	n = msg_of(p, t, i, want);
	CHECK(r->msg_len == (size_t)n && !memcmp(r->msg, want, (size_t)n), "message of p=%d t=%d i=%u",
	      p, t, i);
	if (i % 7 == 0)
		snprintf(svc, sizeof(svc), "alt-%d", t);
	else
		snprintf(svc, sizeof(svc), "svc-%d", p);
	CHECK(r->service_len == strlen(svc) && !memcmp(r->service, svc, r->service_len),
	      "service of p=%d t=%d i=%u", p, t, i);
	if (i % 3 == 0) {
		uint8_t tr[16];
		trace_of(p, t, i, tr);
		CHECK(r->trace_id && !memcmp(r->trace_id, tr, 16), "trace id");
	} else {
		CHECK(!r->trace_id, "unexpected trace id");
	}
	if (i % 5 == 0) {
		struct rt_attr_view a;
		size_t pos = 0;
		char v[16];
		snprintf(v, sizeof(v), "%u", i);
		CHECK(rt_attr_next(r->attrs, r->attrs_len, &pos, &a) == 1 && a.key_len == 1 &&
			      a.key[0] == 'i' && a.value_len == strlen(v) &&
			      !memcmp(a.value, v, a.value_len),
		      "attribute");
		CHECK(rt_attr_next(r->attrs, r->attrs_len, &pos, &a) == 0, "one attribute");
	} else {
		CHECK(r->attrs_len == 0, "unexpected attributes");
	}
	received++;
	return 0;
}

static void *inproc_main(void *arg)
{
	(void)arg;
	run_process(0);
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"procs", required_argument, NULL, 'p'},   {"threads", required_argument, NULL, 't'},
		{"records", required_argument, NULL, 'n'}, {"inproc", no_argument, NULL, 'i'},
		{NULL, 0, NULL, 0},
	};
	struct rt_ring_params rp;
	struct rt_consumer *c;
	pid_t pids[64];
	pthread_t inproc_th;
	size_t bytes;
	uint64_t taken = 0, notaken = 0;
	int opt, alive;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			procs = atoi(optarg);
			break;
		case 't':
			threads = atoi(optarg);
			break;
		case 'n':
			records = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'i':
			inproc = 1;
			break;
		default:
			return 2;
		}
	}
	if (inproc)
		procs = 1;
	CHECK(procs > 0 && procs <= 64 && threads > 0 && threads <= 64 && records > 0, "arguments");

	ring = strdup(t_ring_path("stress"));
	setenv(RT_RING_ENV, ring, 1);
	unlink(ring);
	rt_ring_params_default(&rp);
	rp.size = 128u << 20;
	CHECK_EQ(rt_ring_create(ring, &rp), 0);
	CHECK_EQ(rt_consumer_open(ring, &c), 0);

	bytes = sizeof(*sh) + (size_t)procs * threads * records;
	sh = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap");
	seen = calloc((size_t)procs * threads * records, 1);
	for (int p = 0; p < 64; p++)
		for (int t = 0; t < 64; t++)
			last[p][t] = -1;

	if (inproc) {
		/* ThreadSanitizer keys memory by address: the writers must see
		 * the ring through the consumer's own mapping, or it cannot
		 * pair their release stores with the consumer's acquires. */
		struct rt__ring_hdr *h = rt_ring_header(rt_consumer_ring(c));
		static struct rt__map m;
		m.base = (char *)h;
		m.size = h->size;
		m.owners_off = h->owners_off;
		m.chunks_off = h->chunks_off;
		m.chunk_size = h->chunk_size;
		m.nchunks = h->nchunks;
		m.nslots = h->nslots;
		m.reserve_chunks = h->reserve_chunks;
		m.writer_max_chunks = h->writer_max_chunks;
		m.use_tsc = (h->flags_incompat & RT__RING_F_TSC) != 0;
		__atomic_store_n(&rt__proc_v1.pid, (uint32_t)getpid(), __ATOMIC_RELAXED);
		pthread_once(&rt__once_v1, rt__key_init_v1);
		__atomic_store_n(&rt__proc_v1.map, &m, __ATOMIC_RELEASE);
		pthread_create(&inproc_th, NULL, inproc_main, NULL);
	} else {
		for (int p = 0; p < procs; p++) {
			fflush(stdout);
			pids[p] = fork();
			CHECK(pids[p] >= 0, "fork");
			if (pids[p] == 0) {
				run_process(p);
				_exit(0);
			}
		}
	}
	while (__atomic_load_n(&sh->ready, __ATOMIC_ACQUIRE) < (uint32_t)(procs * threads))
		sched_yield();
	__atomic_store_n(&sh->go, 1, __ATOMIC_RELEASE);

	/* Drain while they write; then once more after all have exited, until
	 * every writer's slot has been reported on and freed. */
	alive = procs;
	while (alive > 0) {
		int got = rt_consumer_poll(c, check, NULL, 4096);
		int64_t m = rt_consumer_mark(c, NULL, NULL);
		CHECK(m > 0, "mark");
		rt_consumer_release(c, m);
		if (got == 0) {
			if (inproc) {
				if (pthread_tryjoin_np(inproc_th, NULL) == 0)
					alive = 0;
			} else {
				for (int p = 0; p < procs; p++) {
					int ws;
					if (pids[p] > 0 && waitpid(pids[p], &ws, WNOHANG) == pids[p]) {
						CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
						      "writer process %d failed", p);
						pids[p] = 0;
						alive--;
					}
				}
			}
		}
	}
	for (uint64_t deadline = t_now_ns() + 10ull * 1000000000ull;;) {
		struct rt_ring_stat st;
		t_drain(c, check, NULL);
		rt_ring_stat(rt_consumer_ring(c), &st);
		if (st.writers == 0)
			break;
		CHECK(t_now_ns() < deadline, "%u writer slots never freed", st.writers);
		t_pause();
	}

	for (int p = 0; p < procs; p++)
		for (int t = 0; t < threads; t++) {
			uint64_t nt = 0;
			for (uint32_t i = 0; i < records; i++) {
				size_t k = ((size_t)p * threads + t) * records + i;
				CHECK(sh->taken[k] == seen[k], "p=%d t=%d i=%u taken=%d arrived=%d", p, t,
				      i, sh->taken[k], seen[k]);
				taken += sh->taken[k];
				nt += !sh->taken[k];
			}
			CHECK(nt == sh->notaken[p][t], "not-taken count");
			CHECK(loss_reported[p][t] == nt,
			      "p=%d t=%d: %llu records not taken, %llu reported dropped", p, t,
			      (unsigned long long)nt, (unsigned long long)loss_reported[p][t]);
			notaken += nt;
		}
	CHECK_EQ(received, taken);
	printf("ok - %d x %d x %u records: %llu arrived exactly once in order, %llu not taken and "
	       "all reported\n",
	       procs, threads, records, (unsigned long long)taken, (unsigned long long)notaken);
	rt_consumer_close(c);
	unlink(ring);
	return 0;
}
