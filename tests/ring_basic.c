/* SPDX-License-Identifier: MIT */
/*
 * ring_basic - every writer call puts exactly the fields it was given into
 * the ring, bad arguments are refused with the documented error and
 * counted, and a writer started before any ring attaches when one appears.
 * Each case runs in its own process: the writer's state is per process.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

#include "helpers.h"
#include "ringtail.h"

static const char *ring;

static struct rt_ring_params small_params(void)
{
	struct rt_ring_params p;
	rt_ring_params_default(&p);
	p.size = 4u << 20;
	p.chunk_size = 16u << 10;
	p.nslots = 64;
	return p;
}

static void fresh_ring(void)
{
	struct rt_ring_params p = small_params();
	unlink(ring);
	CHECK_EQ(rt_ring_create(ring, &p), 0);
}

/* Run @fn in a child process (fresh writer state) and check it passed. */
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

static struct t_recs consume_all(void)
{
	struct rt_consumer *c;
	struct t_recs rs = {0};

	CHECK_EQ(rt_consumer_open(ring, &c), 0);
	t_drain(c, t_collect, &rs);
	rt_consumer_close(c);
	return rs;
}

/* ------------------------------------------------------------------------ */

static void case_fields(void)
{
	static const uint8_t trace[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
					  0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
	static const uint8_t span[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
	struct rt_attr attrs[2] = {{"user", "alice"}, {"empty", ""}};
	struct rt_opts o;
	char big[3000];

	memset(&o, 0, sizeof(o));
	memset(big, 'x', sizeof(big));
	CHECK_EQ(rt_set_service("api"), 0);
	CHECK_EQ(rt_write(RT_INFO, "plain", 5), 0);
	o.service = "billing";
	o.trace_id = trace;
	o.span_id = span;
	o.attrs = attrs;
	o.nattrs = 2;
	CHECK_EQ(rt_writex(RT_ERROR, &o, "with options", 12), 0);
	CHECK_EQ(rt_printf(RT_WARN, "n=%d s=%s x=%04x %5.2s|%-4d|%+d|%llu", 42, "str", 0xbeef,
			   "abc", 7, 3, 18446744073709551615ull),
		 0);
	CHECK_EQ(rt_printf(RT_DEBUG, "float %.3f and %%", 2.5), 0); /* vsnprintf fallback */
	CHECK_EQ(rt_write(RT_FATAL, "line1\nline2\0bin\xff", 17), 0);
	CHECK_EQ(rt_write(RT_TRACE, "", 0), 0);
	CHECK_EQ(rt_write(RT_INFO, big, sizeof(big)), 0);
	CHECK_EQ(rt_printfx(RT_INFO, &o, "%s", "printfx"), 0);
	CHECK_EQ(rt_dropped(), 0);

	struct t_recs rs = consume_all();
	CHECK_EQ(rs.n, 8);
	uint32_t me = (uint32_t)getpid();
	for (size_t i = 0; i < rs.n; i++) {
		CHECK_EQ(rs.v[i].pid, me);
		CHECK(rs.v[i].tid != 0, "tid");
		CHECK(rs.v[i].time_ns > 1600000000ull * 1000000000ull, "time %llu",
		      (unsigned long long)rs.v[i].time_ns);
	}
	CHECK(!strcmp(rs.v[0].service, "api") && !strcmp(rs.v[0].msg, "plain") &&
		      rs.v[0].severity == RT_INFO && !rs.v[0].has_trace,
	      "record 0");
	CHECK(!strcmp(rs.v[1].service, "billing") && rs.v[1].severity == RT_ERROR &&
		      rs.v[1].has_trace && !memcmp(rs.v[1].trace, trace, 16) && rs.v[1].has_span &&
		      !memcmp(rs.v[1].span, span, 8) && !strcmp(rs.v[1].msg, "with options"),
	      "record 1");
	{
		struct rt_attr_view a;
		size_t pos = 0;
		CHECK_EQ(rt_attr_next(rs.v[1].attrs, rs.v[1].attrs_len, &pos, &a), 1);
		CHECK(a.key_len == 4 && !memcmp(a.key, "user", 4) && a.value_len == 5 &&
			      !memcmp(a.value, "alice", 5),
		      "attr 0");
		CHECK_EQ(rt_attr_next(rs.v[1].attrs, rs.v[1].attrs_len, &pos, &a), 1);
		CHECK(a.key_len == 5 && a.value_len == 0, "attr 1");
		CHECK_EQ(rt_attr_next(rs.v[1].attrs, rs.v[1].attrs_len, &pos, &a), 0);
	}
	{
		char want[256];
		snprintf(want, sizeof(want), "n=%d s=%s x=%04x %5.2s|%-4d|%+d|%llu", 42, "str",
			 0xbeef, "abc", 7, 3, 18446744073709551615ull);
		CHECK(!strcmp(rs.v[2].msg, want), "printf gave '%s', want '%s'", rs.v[2].msg, want);
		CHECK_EQ(rs.v[2].severity, RT_WARN);
	}
	CHECK(!strcmp(rs.v[3].msg, "float 2.500 and %"), "fallback gave '%s'", rs.v[3].msg);
	CHECK(rs.v[4].msg_len == 17 && !memcmp(rs.v[4].msg, "line1\nline2\0bin\xff", 17),
	      "binary message");
	CHECK(rs.v[5].msg_len == 0 && rs.v[5].severity == RT_TRACE, "empty message");
	CHECK(rs.v[6].msg_len == sizeof(big) && !memcmp(rs.v[6].msg, big, sizeof(big)), "big");
	CHECK(!strcmp(rs.v[7].msg, "printfx") && !strcmp(rs.v[7].service, "billing") &&
		      rs.v[7].has_trace,
	      "printfx");
	t_recs_free(&rs);
}

static void case_default_service(void)
{
	CHECK_EQ(rt_write(RT_INFO, "x", 1), 0);
	struct t_recs rs = consume_all();
	CHECK_EQ(rs.n, 1);
	/* The program's name. */
	CHECK(!strcmp(rs.v[0].service, "ring_basic"), "default service '%s'", rs.v[0].service);
	t_recs_free(&rs);
}

static void case_bad_arguments(void)
{
	struct rt_opts o;
	struct rt_attr bad_attr = {"", "v"};
	char huge[20000];
	uint64_t want = 0;
	struct rt_ring *r;
	struct rt_ring_stat st;

	memset(&o, 0, sizeof(o));
	memset(huge, 'h', sizeof(huge));
	huge[sizeof(huge) - 1] = '\0';
	CHECK_EQ(rt_write(0, "x", 1), -EINVAL);
	want++;
	CHECK_EQ(rt_write(25, "x", 1), -EINVAL);
	want++;
	CHECK_EQ(rt_write(RT_INFO, NULL, 3), -EINVAL);
	want++;
	o.service = "a/b";
	CHECK_EQ(rt_writex(RT_INFO, &o, "x", 1), -EINVAL);
	want++;
	o.service = "..";
	CHECK_EQ(rt_writex(RT_INFO, &o, "x", 1), -EINVAL);
	want++;
	o.service = "bad\nname";
	CHECK_EQ(rt_writex(RT_INFO, &o, "x", 1), -EINVAL);
	want++;
	o.service = NULL;
	o.attrs = &bad_attr;
	o.nattrs = 1;
	CHECK_EQ(rt_writex(RT_INFO, &o, "x", 1), -EINVAL);
	want++;
	CHECK_EQ(rt_write(RT_INFO, huge, sizeof(huge)), -EMSGSIZE);
	want++;
	CHECK_EQ(rt_printf(RT_INFO, "%s", huge + sizeof(huge) - 19000), -EMSGSIZE);
	want++;
	CHECK_EQ(rt_printf(0, "x"), -EINVAL);
	want++;
	CHECK_EQ(rt_set_service(""), -EINVAL);
	CHECK_EQ(rt_set_service("this-name-is-far-too-long-for-a-service-name-0123456789abcdefghij"),
		 -EINVAL);
	CHECK_EQ(rt_set_service("x/y"), -EINVAL);
	CHECK_EQ(rt_dropped(), want);

	/* The counts are in the writer's slot, where `ringtail stat` reads. */
	CHECK_EQ(rt_ring_open(ring, RT_RING_RDONLY, &r), 0);
	rt_ring_stat(r, &st);
	CHECK_EQ(st.dropped, want);
	rt_ring_close(r);

	/* ... and the consumer turns them into one record saying so. */
	struct t_recs rs = consume_all();
	CHECK_EQ(rs.n, 1);
	CHECK(rs.v[0].flags & RT_REC_LOSS, "loss flag");
	char head[64];
	snprintf(head, sizeof(head), "%llu calls refused from pid %d", (unsigned long long)want,
		 (int)getpid());
	CHECK(!strncmp(rs.v[0].msg, head, strlen(head)), "loss record '%s'", rs.v[0].msg);
	CHECK(strstr(rs.v[0].msg, "2 too large, 8 invalid"), "reasons in '%s'", rs.v[0].msg);
	t_recs_free(&rs);
}

static void case_service_change(void)
{
	CHECK_EQ(rt_set_service("first"), 0);
	CHECK_EQ(rt_write(RT_INFO, "a", 1), 0);
	CHECK_EQ(rt_set_service("second"), 0);
	CHECK_EQ(rt_write(RT_INFO, "b", 1), 0);
	CHECK_EQ(rt_printf(RT_INFO, "c"), 0);
	struct t_recs rs = consume_all();
	CHECK_EQ(rs.n, 3);
	CHECK(!strcmp(rs.v[0].service, "first"), "%s", rs.v[0].service);
	CHECK(!strcmp(rs.v[1].service, "second"), "%s", rs.v[1].service);
	CHECK(!strcmp(rs.v[2].service, "second"), "%s", rs.v[2].service);
	t_recs_free(&rs);
}

/* No ring yet: calls fail at once and are counted; once a ring exists the
 * writer attaches by itself and the earlier failures are reported. */
static void case_ring_appears(void)
{
	struct rt_ring_params p = small_params();
	uint64_t t0;
	int err, failed = 0;

	unlink(ring);
	for (int i = 0; i < 5; i++) {
		t0 = t_now_ns();
		CHECK_EQ(rt_write(RT_INFO, "early", 5), -ENOENT);
		CHECK(t_now_ns() - t0 < 50ull * 1000 * 1000, "a call without a ring took long");
		failed++;
	}
	CHECK_EQ(rt_ring_create(ring, &p), 0);
	t0 = t_now_ns();
	while ((err = rt_write(RT_INFO, "late", 4)) == -ENOENT) {
		failed++;
		CHECK(t_now_ns() - t0 < 2000ull * 1000 * 1000, "never attached");
		t_pause();
	}
	CHECK_EQ(err, 0);
	CHECK_EQ(rt_dropped(), (uint64_t)failed);
	struct t_recs rs = consume_all();
	CHECK_EQ(rs.n, 2);
	CHECK(!strcmp(rs.v[0].msg, "late") || !strcmp(rs.v[1].msg, "late"), "late record");
	char want[96];
	snprintf(want, sizeof(want), "%d calls refused from pid %d", failed, (int)getpid());
	CHECK(!strncmp(rs.v[0].msg, want, strlen(want)) || !strncmp(rs.v[1].msg, want, strlen(want)),
	      "no-ring drops reported: '%s' / '%s'", rs.v[0].msg, rs.v[1].msg);
	t_recs_free(&rs);
}

/* After fork() the child writes through a slot of its own. */
static void case_fork(void)
{
	pid_t pid;

	CHECK_EQ(rt_write(RT_INFO, "parent-1", 8), 0);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		for (int i = 0; i < 1000; i++)
			if (rt_printf(RT_INFO, "child-%d", i))
				_exit(1);
		_exit(0);
	}
	for (int i = 0; i < 1000; i++)
		CHECK_EQ(rt_printf(RT_INFO, "parent-%d", i + 2), 0);
	CHECK_EQ(t_wait(pid), 0);
	struct t_recs rs = consume_all();
	CHECK_EQ(rs.n, 2001);
	int next_parent = 1, next_child = 0;
	uint32_t pslot = UINT32_MAX, cslot = UINT32_MAX;
	for (size_t i = 0; i < rs.n; i++) {
		char want[32];
		if (rs.v[i].pid == (uint32_t)getpid()) {
			snprintf(want, sizeof(want), "parent-%d", next_parent++);
			pslot = rs.v[i].slot;
		} else {
			CHECK_EQ(rs.v[i].pid, pid);
			snprintf(want, sizeof(want), "child-%d", next_child++);
			cslot = rs.v[i].slot;
		}
		CHECK(!strcmp(rs.v[i].msg, want), "got '%s' want '%s'", rs.v[i].msg, want);
	}
	CHECK(pslot != cslot, "parent and child share a slot");
	t_recs_free(&rs);
}

/* Threads that make their first call at the same moment all succeed. */
static void *first_call(void *arg)
{
	pthread_barrier_t *b = arg;
	pthread_barrier_wait(b);
	return (void *)(intptr_t)rt_write(RT_INFO, "first", 5);
}

static void case_concurrent_attach(void)
{
	pthread_t th[8];
	pthread_barrier_t b;
	void *ret;

	pthread_barrier_init(&b, NULL, 8);
	for (int i = 0; i < 8; i++)
		pthread_create(&th[i], NULL, first_call, &b);
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], &ret);
		CHECK_EQ((intptr_t)ret, 0);
	}
	struct t_recs rs = consume_all();
	CHECK_EQ(rs.n, 8);
	t_recs_free(&rs);
}

/* A removed ring is left for the one that replaces it. */
static void case_ring_replaced(void)
{
	struct rt_ring_params p = small_params();
	char buf[32];
	int i, err;

	CHECK_EQ(rt_write(RT_INFO, "old", 3), 0);
	CHECK_EQ(rt_ring_remove(ring), 0);
	CHECK_EQ(rt_ring_create(ring, &p), 0);
	/* The writer notices when it next needs a chunk. */
	for (i = 0; i < 5000; i++) {
		snprintf(buf, sizeof(buf), "new-%d", i);
		err = rt_write(RT_INFO, buf, strlen(buf));
		CHECK(err == 0 || err == -ENOENT, "err %d", err);
	}
	struct t_recs rs = consume_all();
	CHECK(rs.n > 1000, "the new ring got %zu records", rs.n);
	t_recs_free(&rs);
}

int main(void)
{
	struct stat st;

	ring = strdup(t_ring_path("basic"));

	/* The file: made whole under a temporary name, then linked; 0660. */
	fresh_ring();
	CHECK_EQ(stat(ring, &st), 0);
	CHECK_EQ(st.st_mode & 0777, 0660);
	{
		struct rt_ring_params p = small_params();
		CHECK_EQ(rt_ring_create(ring, &p), -EEXIST);
		p.chunk_size = 1000;
		CHECK_EQ(rt_ring_create("/dev/shm/rt-test-never", &p), -EINVAL);
	}
	printf("ok - create\n");

	in_child("fields", case_fields);
	fresh_ring();
	in_child("default service", case_default_service);
	fresh_ring();
	in_child("bad arguments", case_bad_arguments);
	fresh_ring();
	in_child("service change", case_service_change);
	in_child("ring appears", case_ring_appears);
	fresh_ring();
	in_child("fork", case_fork);
	fresh_ring();
	in_child("concurrent attach", case_concurrent_attach);
	fresh_ring();
	in_child("ring replaced", case_ring_replaced);
	unlink(ring);
	return 0;
}
