/* SPDX-License-Identifier: MIT */
/*
 * spool_check.h - what the spooler tests share: writer processes that record
 * which of their records were taken, a ringtaild started and stopped like a
 * user would, and the check that the spool holds every taken record exactly
 * once, in order, with every other one reported, gapless and clean.
 */
#ifndef RT_SPOOL_CHECK_H
#define RT_SPOOL_CHECK_H

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "helpers.h"
#include "ringtail.h"
#include "rtspool.h"

/* Writer processes (a forwarding test gives each host one), threads each,
 * and the most records a thread writes. */
#ifndef SC_PROCS
#define SC_PROCS 2
#endif
#define SC_THREADS 2
#ifndef SC_MAXREC
#define SC_MAXREC 4000000u
#endif

struct sc_shared {
	volatile int stop;
	volatile int pause_us;     /* pause after each burst of 64 */
	uint32_t pid[SC_PROCS][SC_THREADS], tid[SC_PROCS][SC_THREADS];
	uint64_t n[SC_PROCS][SC_THREADS]; /* records attempted */
	uint64_t notaken[SC_PROCS][SC_THREADS];
	uint8_t taken[SC_PROCS][SC_THREADS][SC_MAXREC / 8];
};

static struct sc_shared *sc;
static pid_t sc_writers[SC_PROCS];

struct sc_warg {
	int p, t;
};

static inline void *sc_writer(void *arg)
{
	struct sc_warg *w = arg;
	char buf[128];
	uint64_t i;

	sc->tid[w->p][w->t] = rt__gettid_v1();
	for (i = 0; i < SC_MAXREC && !sc->stop; i++) {
		int n = snprintf(buf, sizeof(buf), "w=%d.%d i=%llu payload-%llu", w->p, w->t,
				 (unsigned long long)i, (unsigned long long)(i * 7919));
		int r = rt_write(RT_INFO, buf, (size_t)n);
		if (r == 0)
			sc->taken[w->p][w->t][i / 8] |= (uint8_t)(1u << (i % 8));
		else
			sc->notaken[w->p][w->t]++;
		sc->n[w->p][w->t] = i + 1;
		/* A steady pace (not a synchronisation): a burst, then a
		 * breath, so that a stopped spooler does not mean millions of
		 * drops per second. */
		if (i % 64 == 63 && sc->pause_us) {
			struct timespec d = {0, sc->pause_us * 1000L};
			nanosleep(&d, NULL);
		}
	}
	return NULL;
}

/* Start the writer processes: process p writes into @rings[p], or with
 * @rings NULL all into $RINGTAIL_RING. */
static inline void sc_start_writers_into(int pause_us, const char *const *rings)
{
	sc = mmap(NULL, sizeof(*sc), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sc != MAP_FAILED, "mmap");
	sc->pause_us = pause_us;
	for (int p = 0; p < SC_PROCS; p++) {
		fflush(stdout);
		sc_writers[p] = fork();
		CHECK(sc_writers[p] >= 0, "fork");
		if (sc_writers[p] == 0) {
			pthread_t th[SC_THREADS];
			/* Die with the test, whatever happens to it. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			struct sc_warg wa[SC_THREADS];
			if (rings)
				setenv(RT_RING_ENV, rings[p], 1);
			rt_set_service("test-writer");
			for (int t = 0; t < SC_THREADS; t++) {
				sc->pid[p][t] = (uint32_t)getpid();
				wa[t].p = p;
				wa[t].t = t;
				pthread_create(&th[t], NULL, sc_writer, &wa[t]);
			}
			for (int t = 0; t < SC_THREADS; t++)
				pthread_join(th[t], NULL);
			_exit(0);
		}
	}
}

static inline void sc_start_writers(int pause_us)
{
	sc_start_writers_into(pause_us, NULL);
}

static inline void sc_stop_writers(void)
{
	sc->stop = 1;
	for (int p = 0; p < SC_PROCS; p++)
		CHECK_EQ(t_wait(sc_writers[p]), 0);
}

/* Start ringtaild with @args (NULL-terminated), stderr to /dev/null. */
static inline pid_t sc_ringtaild(const char *bin, ...)
{
	const char *argv[32];
	va_list ap;
	int n = 0;
	pid_t pid;

	argv[n++] = "ringtaild";
	va_start(ap, bin);
	while (n < 31 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* die with the test */
		dup2(devnull, STDERR_FILENO);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* Writer slots ringtaild itself may hold: its main thread's, and with
 * --upstream its forwarding thread's. */
static int sc_spooler_slots = 1;

/* Wait until nothing but the spooler's own slots are left in the ring and
 * nothing is queued: everything the writers wrote is durable. */
static inline void sc_wait_drained(const char *ring, uint64_t timeout_ns)
{
	for (uint64_t deadline = t_now_ns() + timeout_ns;;) {
		struct rt_ring *rg;
		struct rt_ring_stat st;
		CHECK_EQ(rt_ring_open(ring, RT_RING_RDONLY, &rg), 0);
		rt_ring_stat(rg, &st);
		rt_ring_close(rg);
		if (st.writers <= (unsigned)sc_spooler_slots && st.records_queued == 0)
			return;
		CHECK(t_now_ns() < deadline, "the spooler never drained (%u writers, %llu queued)",
		      st.writers, (unsigned long long)st.records_queued);
		t_pause();
	}
}

/* What the spool holds. */
struct sc_result {
	uint64_t records, first_seq, next_seq, taken, notaken, spooler_msgs;
	uint64_t dropped[SC_PROCS][SC_THREADS];
	uint8_t *seen[SC_PROCS][SC_THREADS];
	int64_t last[SC_PROCS][SC_THREADS];
	/* A substring to look for in the spooler's own messages. */
	const char *want_msg;
	int found_msg;
	/* Only the records of writer process @proc belong in this spool (a
	 * forwarding host's, or the central's copy of it); -1: any. Set by
	 * sc_check_spool_of(). */
	int proc;
	/* A copy forwarded to a central: losses are checked on the sender. */
	int copy;
};

static inline int sc_find(uint32_t pid, uint32_t tid, int *p, int *t)
{
	for (*p = 0; *p < SC_PROCS; (*p)++)
		for (*t = 0; *t < SC_THREADS; (*t)++)
			if (sc->pid[*p][*t] == pid && sc->tid[*p][*t] == tid)
				return 1;
	return 0;
}

static inline void sc_record(struct sc_result *res, const struct rt_rec *r)
{
	char buf[512];
	unsigned long long i;
	size_t l = r->msg_len < sizeof(buf) - 1 ? r->msg_len : sizeof(buf) - 1;
	int p, t;

	memcpy(buf, r->msg, l);
	buf[l] = '\0';
	res->records++;
	if (r->flags & RT_REC_LOSS) {
		unsigned long long n = 0;
		unsigned pid, tid;
		int have_refused = 0;
		const char *at;
		size_t pos = 0;
		struct rt_attr_view a;
		if (strstr(buf, "record lost from pid") && strstr(buf, "(ringtaild)"))
			return; /* a spooler killed while writing its own message */
		/* Loss records with attributes (refused=N: calls the writer was
		 * told failed), else the older message "N records dropped". */
		while (r->attrs_len && rt_attr_next(r->attrs, r->attrs_len, &pos, &a) == 1)
			if (a.key_len == 7 && !memcmp(a.key, "refused", 7)) {
				char v[24];
				size_t vl = a.value_len < sizeof(v) - 1 ? a.value_len : sizeof(v) - 1;
				memcpy(v, a.value, vl);
				v[vl] = '\0';
				n = strtoull(v, NULL, 10);
				have_refused = 1;
			}
		if (have_refused) {
			if (n == 0)
				return; /* only lost or malformed: not a refused call */
			at = strstr(buf, "pid ");
			CHECK(at && sscanf(at, "pid %u tid %u", &pid, &tid) == 2,
			      "a loss record that names no writer: %s", buf);
		} else {
			CHECK(sscanf(buf, "%llu records dropped from pid %u tid %u", &n, &pid, &tid) == 3,
			      "unexpected loss record: %s", buf);
		}
		if (sc_find(pid, tid, &p, &t)) {
			CHECK(res->proc < 0 || p == res->proc,
			      "drops of writer %d in the spool of writer %d", p, res->proc);
			res->dropped[p][t] += n;
		}
		else /* a spooler's own message into a ring the writers filled */
			CHECK(strstr(buf, "(ringtaild)"), "drops of an unknown writer: %s", buf);
		return;
	}
	if (r->service_len == 9 && !memcmp(r->service, "ringtaild", 9)) {
		res->spooler_msgs++;
		if (res->want_msg && strstr(buf, res->want_msg))
			res->found_msg = 1;
		return;
	}
	CHECK(r->service_len == 11 && !memcmp(r->service, "test-writer", 11), "service");
	CHECK(sscanf(buf, "w=%d.%d i=%llu", &p, &t, &i) == 3, "message '%s'", buf);
	CHECK(p >= 0 && p < SC_PROCS && t >= 0 && t < SC_THREADS && i < SC_MAXREC, "range");
	CHECK(res->proc < 0 || p == res->proc, "a record of writer %d in the spool of writer %d",
	      p, res->proc);
	CHECK(!(res->seen[p][t][i / 8] & (1u << (i % 8))),
	      "record w=%d.%d i=%llu is in the spool twice", p, t, i);
	CHECK((int64_t)i > res->last[p][t], "order: w=%d.%d i=%llu after %lld", p, t, i,
	      (long long)res->last[p][t]);
	res->seen[p][t][i / 8] |= (uint8_t)(1u << (i % 8));
	res->last[p][t] = (int64_t)i;
}

/* Read every segment of @spool (all checksums), check sequence continuity,
 * run `lz4 -t` on each and `ringtail verify` on the spool, and compare what
 * is there with what the writers (all, or only process res->proc) were told. */
static inline void sc_check_spool_of(const char *spool, const char *tool, int proc, int copy,
				     struct sc_result *res)
{
	struct rt_spool *sp;
	struct rt_buf body = {0};
	struct rt_block blk;
	uint64_t *seqs;
	char cmd[1024];
	int n;

	for (int p = 0; p < SC_PROCS; p++)
		for (int t = 0; t < SC_THREADS; t++) {
			res->seen[p][t] = calloc(SC_MAXREC / 8, 1);
			res->last[p][t] = -1;
		}
	res->proc = proc;
	res->copy = copy;
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
			res->first_seq = res->next_seq = s->hdr.first_seq;
		CHECK(s->hdr.first_seq == res->next_seq, "sequence gap before %s (expected #%llu)",
		      name, (unsigned long long)res->next_seq);
		for (uint32_t b = 0; b < s->nblocks; b++) {
			CHECK_EQ(rt_seg_read_body(s, b, &body), 0);
			CHECK_EQ(rt_block_decode(body.p, body.len, s->blocks[b].first_seq,
						 s->blocks[b].nrec, &blk),
				 0);
			for (uint32_t i = 0; i < blk.nrec; i++) {
				struct rt_rec r;
				rt_block_rec(&blk, i, &r);
				sc_record(res, &r);
			}
		}
		res->next_seq = s->next_seq;
		rt_seg_close(s);
		snprintf(cmd, sizeof(cmd), "lz4 -t -q '%s/%s'", spool, name);
		CHECK(system(cmd) == 0, "lz4 -t refused %s", name);
	}
	free(seqs);
	rt_block_free(&blk);
	rt_buf_free(&body);
	rt_spool_close(sp);
	snprintf(cmd, sizeof(cmd), "'%s' verify '%s' >/dev/null", tool, spool);
	CHECK(system(cmd) == 0, "ringtail verify found damage in %s", spool);

	for (int p = 0; p < SC_PROCS; p++)
		for (int t = 0; t < SC_THREADS; t++) {
			uint64_t nt = 0;
			if (proc >= 0 && p != proc) {
				free(res->seen[p][t]);
				continue;
			}
			for (uint64_t i = 0; i < sc->n[p][t]; i++) {
				int tk = (sc->taken[p][t][i / 8] >> (i % 8)) & 1;
				int sn = (res->seen[p][t][i / 8] >> (i % 8)) & 1;
				CHECK(tk == sn, "w=%d.%d i=%llu: taken %d, in the spool %d", p, t,
				      (unsigned long long)i, tk, sn);
				res->taken += tk;
				nt += !tk;
			}
			CHECK(nt == sc->notaken[p][t] && (copy || res->dropped[p][t] == nt),
			      "w=%d.%d: %llu not taken, %llu reported dropped", p, t,
			      (unsigned long long)nt, (unsigned long long)res->dropped[p][t]);
			res->notaken += nt;
			free(res->seen[p][t]);
		}
}

static inline void sc_check_spool(const char *spool, const char *tool, struct sc_result *res)
{
	sc_check_spool_of(spool, tool, -1, 0, res);
}

/*
 * A spool made by the real engine, in-process, from a real ring: @nrec
 * records ("record I of the sweep " and a varying tail) written into a new
 * ring, then drained into @spool with segments of @segment_bytes and blocks
 * of @block_bytes, and the engine stopped the way SIGTERM stops ringtaild
 * (the newest segment stays open). The ring's id and slots go to @ring_id
 * and @nslots (for rt_spool_recover()).
 */
static inline void sc_engine_spool(const char *spool, int nrec, uint64_t segment_bytes,
				   uint64_t block_bytes, uint64_t *ring_id, uint32_t *nslots)
{
	struct rt_ring_params rp;
	struct rt_spoold_config cfg;
	struct rt_spoold *d;
	struct rt_spoold_stats st;
	uint64_t deadline;
	char ring[256];

	snprintf(ring, sizeof(ring), "/dev/shm/rt-test-engine-ring-%d", (int)getpid());
	rt_ring_params_default(&rp);
	rp.size = 8u << 20;
	unlink(ring);
	CHECK_EQ(rt_ring_create(ring, &rp), 0);
	setenv(RT_RING_ENV, ring, 1);
	rt_set_service("sweep");
	for (int i = 0; i < nrec; i++) {
		char m[200];
		int len = snprintf(m, sizeof(m), "record %d of the sweep ", i);
		for (int k = 0; k < (i * 7919) % 90; k++)
			m[len++] = (char)('a' + (i + k * k) % 26);
		CHECK_EQ(rt_write(RT_INFO, m, (size_t)len), 0);
	}
	rt_spoold_defaults(&cfg);
	cfg.ring_path = ring;
	cfg.spool_dir = spool;
	cfg.host = "sweep-host";
	cfg.segment_bytes = segment_bytes;
	cfg.block_bytes = block_bytes;
	cfg.fsync = RT_FSYNC_NONE;
	cfg.retain_bytes = UINT64_MAX;
	CHECK_EQ(rt_spoold_start(&cfg, &d), 0);
	deadline = t_now_ns() + 30ull * 1000000000;
	do {
		CHECK(rt_spoold_step(d, 1) >= 0, "step");
		rt_spoold_get_stats(d, &st);
		CHECK(t_now_ns() < deadline, "the engine did not take %d records", nrec);
	} while (st.records < (uint64_t)nrec);
	CHECK_EQ(rt_spoold_finish(d), 0);
	*ring_id = rt_consumer_ring_id(rt_spoold_consumer(d));
	*nslots = rt_ring_header(rt_consumer_ring(rt_spoold_consumer(d)))->nslots;
	rt_spoold_free(d);
	unlink(ring);
}

static inline void sc_rm_rf(const char *path)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", path);
}

#endif
