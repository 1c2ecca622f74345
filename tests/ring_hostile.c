/* SPDX-License-Identifier: MIT */
/*
 * ring_hostile - a member of the ring's group is hostile; ringtaild does
 * not care, and the other writers do not die.
 *
 *   ring_hostile RINGTAILD RINGTAIL CASE [--rounds N] [--seed S]
 *
 * The real ringtaild drains a small ring; two honest writer processes (two
 * threads each) write numbered records into it all the time; a forked
 * scribbler process, with nothing but the file (open, pwrite, ftruncate),
 * attacks it. CASE:
 *
 *   nchunks      the 4 bytes at offset 44 (nchunks) become 0xfffffff0
 *   chunk_size   the 4 bytes at offset 40 (chunk_size) become 0x7fffffc0
 *   header       random bytes over the whole 4096-byte header, 20 times
 *   shrink       ftruncate(ring, 4096) while ringtaild runs and writers are
 *                attached: nobody dies, ringtaild starts again on a new ring
 *                with a loss record saying so, the writers move to it
 *   cuts         N rounds (default 2000) of the cut to 4096 bytes: more rings
 *                than the writers' SIGBUS guard has places
 *   scribble     N rounds (default 1000), each one of: random bytes in the
 *                header, the slots, the owner table or anywhere; the
 *                issue's two pokes; a cut to 4096 bytes; a cut to a random
 *                size and back. After each round, ringtaild must poll again
 *                (its heartbeat moves) or, after a cut, serve a new ring.
 *
 * Every case then stops the writers (each must exit 0: no SIGBUS), sends
 * SIGTERM to ringtaild (it must exit 0: it never crashed, it never
 * restarted by exec), reads the spool and checks: no honest record twice;
 * no record under a name a writer may not use (except ringtaild's own);
 * figures: rounds, crashes (0), honest records written (rt_write() said 0)
 * and lost (not in the spool), and garbled ones (in the spool, altered).
 */
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "helpers.h"
#include "spool_check.h"

static char spool[256], ring[256];
static const char *ringtaild, *tool;

/* The scribbler's view of the file: the geometry the ring was made with. */
static struct geo {
	uint64_t size, slots_off, owners_off, chunks_off;
	uint32_t nslots, nchunks, chunk_size;
} g;

static uint64_t rnd_state;
static uint64_t rnd(void)
{
	/* xorshift64*: reproducible from --seed */
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 2685821657736338717ull;
}

static void read_geo(void)
{
	struct rt__ring_hdr h;
	int fd = open(ring, O_RDONLY);

	CHECK(fd >= 0, "open %s", ring);
	CHECK(pread(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h), "read header");
	close(fd);
	g.size = h.size;
	g.slots_off = h.slots_off;
	g.owners_off = h.owners_off;
	g.chunks_off = h.chunks_off;
	g.nslots = h.nslots;
	g.nchunks = h.nchunks;
	g.chunk_size = h.chunk_size;
}

/* ringtaild's last poll, or 0 when the ring at the path is not one (yet). */
static uint64_t heartbeat(void)
{
	struct rt__ring_hdr h;
	int fd = open(ring, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = pread(fd, &h, sizeof(h), 0);
	close(fd);
	if (n != (ssize_t)sizeof(h) || memcmp(h.magic, RT__RING_MAGIC, 8) != 0)
		return 0;
	return h.consumer_heartbeat_ns;
}

static pid_t daemon_pid;
static int crashes;

/* ringtaild must still be there. */
static void alive(const char *when)
{
	int st;
	pid_t p = waitpid(daemon_pid, &st, WNOHANG);

	if (p == daemon_pid) {
		crashes++;
		CHECK(0, "ringtaild is gone %s: %s %d", when,
		      WIFSIGNALED(st) ? "killed by signal" : "exit status",
		      WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	}
}

/* Wait until ringtaild has polled a ring at the path after @since (its
 * heartbeat is a wall clock time it writes at every poll). */
static void wait_polled(uint64_t since, const char *when)
{
	for (uint64_t t0 = t_now_ns();;) {
		uint64_t hb = heartbeat();
		alive(when);
		if (hb > since)
			return;
		CHECK(t_now_ns() - t0 < 20000000000ull, "ringtaild stalled %s", when);
		t_pause();
	}
}

static uint64_t wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* In the scribbler: write @n random bytes at @off of the file. */
static void poke_random(int fd, uint64_t off, size_t n)
{
	uint8_t b[4096];

	if (n > sizeof(b))
		n = sizeof(b);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rnd();
	(void)!pwrite(fd, b, n, (off_t)off);
}

/* Records the honest writers have had taken so far. */
static uint64_t taken_now(void)
{
	uint64_t n = 0;

	for (int p = 0; p < SC_PROCS; p++)
		for (int t = 0; t < SC_THREADS; t++)
			n += sc->n[p][t] - sc->notaken[p][t];
	return n;
}

/* Wait until the honest writers have had @more records taken (before an
 * attack: they are in the middle of writing; after: they moved on). */
static void wait_taken(uint64_t more, const char *when)
{
	uint64_t base = taken_now();

	for (uint64_t t0 = t_now_ns(); taken_now() < base + more;) {
		alive(when);
		CHECK(t_now_ns() - t0 < 30000000000ull, "the writers got nothing in %s", when);
		t_pause();
	}
}

static void poke32(int fd, uint64_t off, uint32_t v)
{
	CHECK(pwrite(fd, &v, 4, (off_t)off) == 4, "poke");
}

enum { A_HEADER, A_SLOTS, A_OWNERS, A_ANY, A_NCHUNKS, A_CHUNK_SIZE, A_CUT, A_CUT_REGROW,
       A_HEADER_ALL, A_N };
static const char *const act_name[A_N] = {"header", "slots", "owners", "anywhere",
					  "nchunks", "chunk_size", "cut", "cut-regrow",
					  "whole-header"};
static unsigned act_count[A_N];

/* One attack, made by a separate process that has only the file. */
static int attack(int a)
{
	pid_t p;

	fflush(stdout);
	p = fork();
	CHECK(p >= 0, "fork");
	if (p == 0) {
		int fd = open(ring, O_RDWR);
		if (fd < 0)
			_exit(0); /* between rings: nothing to attack */
		switch (a) {
		case A_HEADER:
			poke_random(fd, rnd() % 4096, 1 + rnd() % 8);
			break;
		case A_HEADER_ALL:
			poke_random(fd, 0, 4096);
			break;
		case A_SLOTS:
			poke_random(fd, g.slots_off + rnd() % ((uint64_t)g.nslots * RT__SLOT_SIZE),
				    1 + rnd() % 16);
			break;
		case A_OWNERS:
			poke_random(fd, g.owners_off + rnd() % ((uint64_t)g.nchunks * 4), 1 + rnd() % 8);
			break;
		case A_ANY:
			poke_random(fd, rnd() % g.size, 1 + rnd() % 64);
			break;
		case A_NCHUNKS:
			poke32(fd, 44, 0xfffffff0u);
			break;
		case A_CHUNK_SIZE:
			poke32(fd, 40, 0x7fffffc0u);
			break;
		case A_CUT:
			CHECK(ftruncate(fd, 4096) == 0, "ftruncate");
			break;
		case A_CUT_REGROW:
			CHECK(ftruncate(fd, (off_t)(4096 + rnd() % (g.size - 4096))) == 0, "cut");
			CHECK(ftruncate(fd, (off_t)g.size) == 0, "regrow");
			break;
		}
		_exit(0);
	}
	CHECK_EQ(t_wait(p), 0);
	act_count[a]++;
	return a == A_CUT || a == A_CUT_REGROW;
}

/* What the spool holds of the honest writers. */
static struct {
	uint8_t *seen[SC_PROCS][SC_THREADS];
	uint64_t honest, garbled, loss_records, own_msgs, replaced_msgs, bad_names, twice;
} res;

static void look(const struct rt_rec *r)
{
	char buf[512];
	size_t l = r->msg_len < sizeof(buf) - 1 ? r->msg_len : sizeof(buf) - 1;
	unsigned long long i, pay;
	int p, t, n = 0;

	memcpy(buf, r->msg, l);
	buf[l] = '\0';
	if (r->flags & RT_REC_LOSS) {
		CHECK(r->service_len == 8 && !memcmp(r->service, "ringtail", 8), "loss service");
		res.loss_records++;
		if (strstr(buf, "was unusable") && strstr(buf, "replaced by a new ring"))
			res.replaced_msgs++;
		return;
	}
	if (r->service_len == 9 && !memcmp(r->service, "ringtaild", 9)) {
		res.own_msgs++;
		return;
	}
	/* Interface 1 of issue 8: nothing under a name a writer may not use. */
	if (!rt_service_name_ok(r->service, r->service_len)) {
		res.bad_names++;
		return;
	}
	if (r->service_len != 11 || memcmp(r->service, "test-writer", 11) ||
	    sscanf(buf, "w=%d.%d i=%llu payload-%llu%n", &p, &t, &i, &pay, &n) != 4 ||
	    (size_t)n != l || p < 0 || p >= SC_PROCS || t < 0 || t >= SC_THREADS ||
	    i >= SC_MAXREC || pay != i * 7919 || r->pid != sc->pid[p][t]) {
		res.garbled++; /* a member wrote over it in its chunk */
		return;
	}
	if (res.seen[p][t][i / 8] & (1u << (i % 8))) {
		printf("# record w=%d.%d i=%llu is in the spool twice\n", p, t, i);
		res.twice++;
		return;
	}
	res.seen[p][t][i / 8] |= (uint8_t)(1u << (i % 8));
	res.honest++;
}

static void read_spool(void)
{
	struct rt_spool *sp;
	struct rt_buf body = {0};
	struct rt_block blk;
	uint64_t *seqs;
	int n;

	memset(&blk, 0, sizeof(blk));
	for (int p = 0; p < SC_PROCS; p++)
		for (int t = 0; t < SC_THREADS; t++)
			res.seen[p][t] = calloc(SC_MAXREC / 8, 1);
	CHECK_EQ(rt_spool_open(spool, NULL, 0, &sp), 0);
	n = rt_spool_list(sp, &seqs);
	CHECK(n > 0, "no segments");
	for (int k = 0; k < n; k++) {
		struct rt_seg *s;
		char name[32];
		rt_seg_name(name, seqs[k]);
		CHECK_EQ(rt_seg_open(sp->dirfd, name, RT_SEG_NOFOOTER | RT_SEG_VERIFY, &s), 0);
		CHECK(!s->damaged, "%s: %s", name, s->damage);
		for (uint32_t b = 0; b < s->nblocks; b++) {
			CHECK_EQ(rt_seg_read_body(s, b, &body), 0);
			CHECK_EQ(rt_block_decode(body.p, body.len, s->blocks[b].first_seq,
						 s->blocks[b].nrec, &blk),
				 0);
			for (uint32_t i = 0; i < blk.nrec; i++) {
				struct rt_rec r;
				rt_block_rec(&blk, i, &r);
				look(&r);
			}
		}
		rt_seg_close(s);
	}
	free(seqs);
	rt_block_free(&blk);
	rt_buf_free(&body);
	rt_spool_close(sp);
}

int main(int argc, char **argv)
{
	const char *cas;
	unsigned rounds = 0, r;
	uint64_t seed = 0, taken = 0, lost = 0;
	char cmd[600];

	CHECK(argc >= 4, "usage: ring_hostile RINGTAILD RINGTAIL CASE [--rounds N] [--seed S]");
	ringtaild = argv[1];
	tool = argv[2];
	cas = argv[3];
	for (int i = 4; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--rounds"))
			rounds = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--seed"))
			seed = strtoull(argv[i + 1], NULL, 0);
	}
	if (!seed)
		seed = (uint64_t)t_now_ns() ^ (uint64_t)getpid();
	rnd_state = seed | 1;
	printf("# case %s, seed %llu\n", cas, (unsigned long long)seed);
	snprintf(ring, sizeof(ring), "%s", t_ring_path("hostile"));
	snprintf(spool, sizeof(spool), "/tmp/rt-hostile-%d", (int)getpid());
	setenv(RT_RING_ENV, ring, 1);

	daemon_pid = sc_ringtaild(ringtaild, "--ring", ring, "--ring-size", "1M", "--spool", spool,
				  "--fsync", "none", (char *)NULL);
	wait_polled(0, "at start");
	read_geo();
	sc_start_writers(2000);
	wait_taken(2000, "before the attacks");

	if (!strcmp(cas, "nchunks") || !strcmp(cas, "chunk_size")) {
		uint64_t t = wall();
		attack(!strcmp(cas, "nchunks") ? A_NCHUNKS : A_CHUNK_SIZE);
		wait_polled(t, "after the poke");
		wait_polled(wall(), "after the poke");
		wait_taken(2000, "after the poke");
		rounds = 1;
	} else if (!strcmp(cas, "header")) {
		for (r = 0; r < 20; r++) {
			uint64_t t = wall();
			attack(r % 2 ? A_HEADER : A_HEADER_ALL);
			wait_polled(t, "after random header bytes");
			wait_taken(500, "after random header bytes");
		}
		rounds = 20;
	} else if (!strcmp(cas, "shrink")) {
		uint64_t t = wall();
		attack(A_CUT);
		wait_polled(t, "after the cut");
		wait_taken(2000, "after the cut");
		rounds = 1;
	} else if (!strcmp(cas, "cuts")) {
		/* More rings than the writers' SIGBUS guard has places (128):
		 * the places of abandoned rings are taken back, and a thread
		 * that faulted on a ring another thread already gave up is
		 * still caught. */
		if (!rounds)
			rounds = 2000;
		for (r = 0; r < rounds; r++) {
			uint64_t t = wall();
			attack(A_CUT);
			wait_polled(t, "after a cut");
		}
	} else if (!strcmp(cas, "scribble")) {
		if (!rounds)
			rounds = 1000;
		for (r = 0; r < rounds; r++) {
			uint64_t t = wall();
			uint64_t x = rnd() % 100;
			/* Cuts restart ringtaild's ring: one round in 25. */
			int a = x < 2 ? A_CUT : x < 4 ? A_CUT_REGROW : x < 6 ? A_NCHUNKS
				: x < 8 ? A_CHUNK_SIZE : (int)(rnd() % 4);
			attack(a);
			wait_polled(t, "after an attack");
		}
		/* That the honest writers get room again after the attacks is
		 * not asserted here yet: a damaged chain of an honest writer
		 * keeps its chunks until it exits (see docs/ring.md). */
	} else {
		CHECK(0, "unknown case %s", cas);
	}
	/* Writers must have survived every attack. */
	for (int p = 0; p < SC_PROCS; p++) {
		int st;
		pid_t w = waitpid(sc_writers[p], &st, WNOHANG);
		CHECK(w == 0, "writer %d (pid %d) is gone before the end: waitpid %d (%s), %s %d", p,
		      (int)sc_writers[p], (int)w, w < 0 ? strerror(errno) : "",
		      w > 0 && WIFSIGNALED(st) ? "signal" : "status",
		      w > 0 ? (WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st)) : 0);
	}
	sc_stop_writers();
	alive("after the attacks");
	{
		/* Let it take what is left: a ring with no writers and nothing
		 * queued, or a bounded wait when a chain was damaged. */
		for (uint64_t t0 = t_now_ns(); t_now_ns() - t0 < 10000000000ull;) {
			struct rt_ring *rg;
			struct rt_ring_stat st;
			alive("while draining");
			if (rt_ring_open(ring, RT_RING_RDONLY, &rg) == 0) {
				rt_ring_stat(rg, &st);
				rt_ring_close(rg);
				if (st.writers == 0 && st.records_queued == 0)
					break;
			}
			t_pause();
		}
	}
	kill(daemon_pid, SIGTERM);
	{
		int st;
		CHECK(waitpid(daemon_pid, &st, 0) == daemon_pid, "waitpid");
		if (WIFSIGNALED(st))
			crashes++;
		CHECK(!WIFSIGNALED(st), "ringtaild was killed by signal %d", WTERMSIG(st));
		CHECK(WEXITSTATUS(st) == 0, "ringtaild exited %d", WEXITSTATUS(st));
	}
	read_spool();
	for (int p = 0; p < SC_PROCS; p++)
		for (int t = 0; t < SC_THREADS; t++)
			for (uint64_t i = 0; i < sc->n[p][t]; i++) {
				int tk = (sc->taken[p][t][i / 8] >> (i % 8)) & 1;
				int sn = (res.seen[p][t][i / 8] >> (i % 8)) & 1;
				CHECK(sn <= tk, "w=%d.%d i=%llu in the spool but refused", p, t,
				      (unsigned long long)i);
				taken += tk;
				lost += tk && !sn;
			}
	CHECK_EQ(res.bad_names, 0);
	/* Exactly once: asserted where the attack leaves the chunks alone.
	 * Random bytes over chunk headers can still (rarely) make a record
	 * come twice: counted and shown, see docs/ring.md. */
	if (strcmp(cas, "scribble"))
		CHECK(res.twice == 0, "%llu honest records twice", (unsigned long long)res.twice);
	/* The header is ringtaild's to keep: pokes there cost nobody a record. */
	if (!strcmp(cas, "nchunks") || !strcmp(cas, "chunk_size") || !strcmp(cas, "header"))
		CHECK(lost == 0 && res.garbled == 0, "%llu honest records lost, %llu garbled",
		      (unsigned long long)lost, (unsigned long long)res.garbled);
	if (!strcmp(cas, "shrink"))
		CHECK(res.replaced_msgs >= 1, "no record says the ring was replaced");
	printf("# attacks:");
	for (int a = 0; a < A_N; a++)
		if (act_count[a])
			printf(" %s %u", act_name[a], act_count[a]);
	printf("\n");
	printf("ok - %s: %u rounds survived by ringtaild, %d crashes; honest writers: %llu "
	       "records taken, %llu in the spool, %llu lost, %llu garbled in place, %llu twice; %llu "
	       "loss records, %llu ring replacements recorded\n",
	       cas, rounds, crashes, (unsigned long long)taken, (unsigned long long)res.honest,
	       (unsigned long long)lost, (unsigned long long)res.garbled,
	       (unsigned long long)res.twice,
	       (unsigned long long)res.loss_records, (unsigned long long)res.replaced_msgs);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", spool);
	(void)!system(cmd);
	unlink(ring);
	return 0;
}
