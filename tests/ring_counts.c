/* SPDX-License-Identifier: MIT */
/*
 * ring_counts - counts that tell the truth, names no writer may use.
 *
 *   ring_counts CASE RINGTAILD RINGTAIL
 *
 *   refused_not_lost   a writer that retries on -ENOBUFS delivers every
 *                      record; the loss record says refused=N, never lost;
 *                      stat: refused N, lost 0
 *   service_names      rt_service_name_ok(): strict UTF-8, controls, '/',
 *                      ".", "..", length, the reserved names; the writer
 *                      refuses the same with -EINVAL; `ringtail log -t
 *                      ringtail` exits 2
 *   log_long_lines     `ringtail log` with a 100 KB line: exit 0, pieces of
 *                      32 KiB with piece=K/N that join to the line, nothing
 *                      refused; a 10 MB line into a ring nobody drains:
 *                      exit 1, and the count on stderr is exactly what is
 *                      missing from the ring
 *   sighup             SIGHUP does not stop ringtaild; it is in the log
 *   stat_after_kills   ringtaild SIGKILLed 20 times while writers write, then
 *                      drained: stat's written = consumed, queued 0
 */
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "helpers.h"
#include "spool_check.h"

static char ring[256], spool[256];
static const char *ringtaild, *tool;

static void make_ring(uint64_t size)
{
	struct rt_ring_params p;

	rt_ring_params_default(&p);
	p.size = size;
	p.chunk_size = 64 << 10;
	p.nslots = 64;
	unlink(ring);
	CHECK_EQ(rt_ring_create(ring, &p), 0);
	setenv(RT_RING_ENV, ring, 1);
}

/* Attribute @key of @r into @out (NUL-terminated); 1 if present. */
static int attr_get(const struct t_rec *r, const char *key, char *out, size_t cap)
{
	struct rt_attr_view a;
	size_t pos = 0;

	while (r->attrs_len && rt_attr_next(r->attrs, r->attrs_len, &pos, &a) == 1)
		if (a.key_len == strlen(key) && !memcmp(a.key, key, a.key_len)) {
			size_t n = a.value_len < cap - 1 ? a.value_len : cap - 1;
			memcpy(out, a.value, n);
			out[n] = '\0';
			return 1;
		}
	return 0;
}

static uint64_t attr_of(const struct t_rec *r, const char *key)
{
	char v[32];
	return attr_get(r, key, v, sizeof(v)) ? strtoull(v, NULL, 10) : 0;
}

static int has_attr(const struct t_rec *r, const char *key)
{
	char v[32];
	return attr_get(r, key, v, sizeof(v));
}

static struct t_recs drain(void)
{
	struct rt_consumer *c;
	struct t_recs rs = {0};

	CHECK_EQ(rt_consumer_open(ring, &c), 0);
	t_drain(c, t_collect, &rs);
	rt_consumer_close(c);
	return rs;
}

static void refused_not_lost(void)
{
	pid_t p;

	make_ring(1 << 20);
	fflush(stdout);
	p = fork();
	CHECK(p >= 0, "fork");
	if (p == 0) {
		/* Fill the ring, count the refusals, then the parent drains
		 * and we retry: every record goes in in the end. */
		char msg[200];
		int i = 0, refused = 0, err;
		memset(msg, 'x', sizeof(msg));
		rt_set_service("counts");
		for (;;) {
			err = rt_write(RT_INFO, msg, sizeof(msg));
			if (err == -ENOBUFS) {
				refused++;
				break;
			}
			CHECK_EQ(err, 0);
			i++;
		}
		_exit(refused == 1 && i > 0 ? 0 : 1);
	}
	CHECK_EQ(t_wait(p), 0);
	{
		struct t_recs rs = drain();
		uint64_t refused = 0, lost = 0, n = 0;
		for (size_t k = 0; k < rs.n; k++) {
			if (rs.v[k].flags & RT_REC_LOSS) {
				refused += attr_of(&rs.v[k], "refused");
				lost += attr_of(&rs.v[k], "lost");
				CHECK(!has_attr(&rs.v[k], "lost"), "a refusal called a loss: %s",
				      rs.v[k].msg);
				CHECK(strstr(rs.v[k].msg, "calls refused"), "message: %s", rs.v[k].msg);
			} else {
				n++;
			}
		}
		CHECK(refused == 1 && lost == 0 && n > 0, "refused %llu lost %llu records %llu",
		      (unsigned long long)refused, (unsigned long long)lost, (unsigned long long)n);
		t_recs_free(&rs);
	}
	{
		struct rt_ring *r;
		struct rt_ring_stat st;
		CHECK_EQ(rt_ring_open(ring, RT_RING_RDONLY, &r), 0);
		rt_ring_stat(r, &st);
		rt_ring_close(r);
		CHECK(st.lost == 0, "stat lost %llu", (unsigned long long)st.lost);
	}
	printf("ok - a refused call is counted refused=1, never as a lost record\n");
}

static void service_names(void)
{
	static const struct {
		const char *s;
		int ok;
	} cases[] = {
		{"api", 1}, {"caf\xc3\xa9", 1}, {"\xe2\x82\xac", 1}, {"\xf0\x9f\x98\x80", 1},
		{"", 0}, {".", 0}, {"..", 0}, {"a/b", 0}, {"a\tb", 0}, {"a\x7f", 0},
		{"\xc0\xaf", 0},             /* overlong '/' */
		{"\xe0\x80\xaf", 0},         /* overlong */
		{"\xed\xa0\x80", 0},         /* surrogate */
		{"\xf4\x90\x80\x80", 0},     /* past U+10FFFF */
		{"\xc3", 0},                 /* cut short */
		{"\x80", 0},                 /* a continuation first */
		{"ringtail", 0}, {"ringtaild", 0}, {"ringtail2", 1},
	};
	char long_name[70];
	char cmd[600];
	int rc;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_EQ(rt_service_name_ok(cases[i].s, strlen(cases[i].s)), cases[i].ok);
		CHECK_EQ(rt_set_service(cases[i].s) == 0, cases[i].ok || !cases[i].s[0] ? cases[i].ok
											   : 0);
	}
	memset(long_name, 'a', sizeof(long_name));
	CHECK_EQ(rt_service_name_ok(long_name, 64), 1);
	CHECK_EQ(rt_service_name_ok(long_name, 65), 0);
	make_ring(1 << 20);
	{
		struct rt_opts o;
		memset(&o, 0, sizeof(o));
		o.service = "ringtaild";
		CHECK_EQ(rt_writex(RT_INFO, &o, "x", 1), -EINVAL);
		o.service = "ringtail";
		CHECK_EQ(rt_writex(RT_INFO, &o, "x", 1), -EINVAL);
		o.service = "\xed\xa0\x80";
		CHECK_EQ(rt_writex(RT_INFO, &o, "x", 1), -EINVAL);
	}
	snprintf(cmd, sizeof(cmd), "'%s' log -t ringtail hello 2>/dev/null", tool);
	rc = system(cmd);
	CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "ringtail log -t ringtail: %d", rc);
	snprintf(cmd, sizeof(cmd), "'%s' log -t ringtaild hello 2>/dev/null", tool);
	rc = system(cmd);
	CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "ringtail log -t ringtaild: %d", rc);
	printf("ok - one service-name rule: strict UTF-8, no controls, '/', '.', '..', 1..64 bytes; "
	       "ringtail and ringtaild refused (-EINVAL, exit 2)\n");
}

/* Run `ringtail log` with @len bytes of one line on stdin; its stderr in
 * @err. @return its exit status. */
static int log_line(size_t len, char *err, size_t errcap)
{
	char path[300], cmd[900];
	FILE *f;
	int rc;
	size_t n;

	snprintf(path, sizeof(path), "/tmp/rt-counts-%d.in", (int)getpid());
	f = fopen(path, "w");
	CHECK(f != NULL, "fopen");
	for (size_t i = 0; i < len; i++)
		fputc('a' + (int)(i % 26), f);
	fputc('\n', f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "'%s' log -t longline < '%s' 2>'%s.err'", tool, path, path);
	rc = system(cmd);
	snprintf(cmd, sizeof(cmd), "%s.err", path);
	f = fopen(cmd, "r");
	n = f ? fread(err, 1, errcap - 1, f) : 0;
	err[n] = '\0';
	if (f)
		fclose(f);
	unlink(cmd);
	unlink(path);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static void log_long_lines(void)
{
	char err[1024];
	int rc;

	make_ring(4 << 20);
	rc = log_line(100 * 1000, err, sizeof(err));
	CHECK(rc == 0, "100 KB line: exit %d, '%s'", rc, err);
	{
		struct t_recs rs = drain();
		size_t got = 0, pieces = 0;
		for (size_t k = 0; k < rs.n; k++) {
			CHECK(!(rs.v[k].flags & RT_REC_LOSS), "a loss record for a 100 KB line: %s",
			      rs.v[k].msg);
			for (size_t j = 0; j < rs.v[k].msg_len; j++)
				CHECK(rs.v[k].msg[j] == 'a' + (int)((got + j) % 26), "piece content");
			got += rs.v[k].msg_len;
			pieces++;
			{
				char want[32], v[32];
				snprintf(want, sizeof(want), "%zu/4", pieces);
				CHECK(attr_get(&rs.v[k], "piece", v, sizeof(v)) && !strcmp(v, want),
				      "piece attribute of piece %zu", pieces);
			}
		}
		CHECK(got == 100 * 1000 && pieces == 4, "%zu bytes in %zu pieces", got, pieces);
		t_recs_free(&rs);
	}
	printf("ok - a 100 KB line: 4 pieces of at most 32 KiB with piece=K/4, exit 0, nothing "
	       "refused or lost\n");

	/* 10 MB into a 4 MB ring that nobody drains: some pieces cannot go
	 * in; the count said is exactly what is missing. */
	make_ring(4 << 20);
	rc = log_line(10 * 1000 * 1000, err, sizeof(err));
	{
		struct t_recs rs = drain();
		unsigned long long failed = 0, tried = 0;
		size_t pieces = 0;
		for (size_t k = 0; k < rs.n; k++)
			if (!(rs.v[k].flags & RT_REC_LOSS))
				pieces++;
		CHECK(rc == 1, "10 MB line into a full ring: exit %d", rc);
		CHECK(sscanf(strstr(err, ": ") ? strstr(err, ": ") + 2 : err,
			     "%llu of %llu records not written", &failed, &tried) == 2,
		      "stderr: '%s'", err);
		CHECK(tried == (10 * 1000 * 1000 + 32767) / 32768, "tried %llu", tried);
		CHECK(tried - failed == pieces, "said %llu of %llu not written, %zu pieces in the ring",
		      failed, tried, pieces);
		t_recs_free(&rs);
		printf("ok - a 10 MB line into a full ring: exit 1, '%llu of %llu records not "
		       "written', and %zu pieces are in the ring\n",
		       failed, tried, pieces);
	}
}

static void sighup(void)
{
	pid_t d;
	int found = 0;

	snprintf(spool, sizeof(spool), "/tmp/rt-counts-%d", (int)getpid());
	d = sc_ringtaild(ringtaild, "--ring", ring, "--spool", spool, "--fsync", "none",
			 (char *)NULL);
	/* Wait until it serves the ring, then send SIGHUP twice. */
	for (uint64_t t0 = t_now_ns();;) {
		struct rt_ring *r;
		struct rt_ring_stat st;
		if (rt_ring_open(ring, RT_RING_RDONLY, &r) == 0) {
			rt_ring_stat(r, &st);
			rt_ring_close(r);
			if (st.consumer_alive)
				break;
		}
		CHECK(t_now_ns() - t0 < 20000000000ull, "ringtaild never started");
		t_pause();
	}
	kill(d, SIGHUP);
	kill(d, SIGHUP);
	/* Still there after its next polls: it keeps publishing. */
	for (uint64_t t0 = t_now_ns(); t_now_ns() - t0 < 300000000ull;) {
		CHECK(waitpid(d, NULL, WNOHANG) == 0, "ringtaild died of SIGHUP");
		t_pause();
	}
	kill(d, SIGTERM);
	CHECK_EQ(t_wait(d), 0);
	{
		char cmd[600], line[1024];
		FILE *f;
		snprintf(cmd, sizeof(cmd), "'%s' dump '%s' 2>/dev/null", tool, spool);
		f = popen(cmd, "r");
		CHECK(f != NULL, "popen");
		while (fgets(line, sizeof(line), f))
			if (strstr(line, " ringtaild[") && strstr(line, "SIGHUP"))
				found++;
		pclose(f);
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", spool);
		(void)!system(cmd);
	}
	CHECK(found >= 1, "SIGHUP is not in ringtaild's log");
	printf("ok - SIGHUP: ringtaild goes on, says so in its log (%d), exits 0 on SIGTERM\n", found);
}

static void stat_after_kills(void)
{
	struct rt_ring *r;
	struct rt_ring_stat st;
	pid_t d;

	snprintf(spool, sizeof(spool), "/tmp/rt-counts-%d", (int)getpid());
	d = sc_ringtaild(ringtaild, "--ring", ring, "--spool", spool, "--fsync", "none",
			 (char *)NULL);
	for (uint64_t t0 = t_now_ns(); rt_ring_open(ring, RT_RING_RDONLY, &r) != 0;) {
		CHECK(t_now_ns() - t0 < 20000000000ull, "no ring");
		t_pause();
	}
	rt_ring_close(r);
	sc_start_writers(1000);
	for (int k = 0; k < 20; k++) {
		/* Kill it once it has made something durable since it started. */
		uint64_t t0 = t_now_ns(), before;
		CHECK_EQ(rt_ring_open(ring, RT_RING_RDONLY, &r), 0);
		rt_ring_stat(r, &st);
		before = st.durable_seq;
		for (;;) {
			rt_ring_stat(r, &st);
			if (st.durable_seq > before && st.consumer_alive)
				break;
			CHECK(t_now_ns() - t0 < 20000000000ull, "no progress");
			t_pause();
		}
		rt_ring_close(r);
		kill(d, SIGKILL);
		t_wait(d);
		d = sc_ringtaild(ringtaild, "--ring", ring, "--spool", spool, "--fsync", "none",
				 (char *)NULL);
	}
	sc_stop_writers();
	sc_wait_drained(ring, 30000000000ull);
	CHECK_EQ(rt_ring_open(ring, RT_RING_RDONLY, &r), 0);
	rt_ring_stat(r, &st);
	rt_ring_close(r);
	kill(d, SIGTERM);
	CHECK_EQ(t_wait(d), 0);
	CHECK(st.records_queued == 0 && st.written == st.consumed,
	      "after 20 kills: written %llu, consumed %llu, queued %llu",
	      (unsigned long long)st.written, (unsigned long long)st.consumed,
	      (unsigned long long)st.records_queued);
	{
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", spool);
		(void)!system(cmd);
	}
	printf("ok - after 20 kills of ringtaild: written %llu = consumed %llu, queued 0\n",
	       (unsigned long long)st.written, (unsigned long long)st.consumed);
}

int main(int argc, char **argv)
{
	CHECK(argc == 4, "usage: ring_counts CASE RINGTAILD RINGTAIL");
	ringtaild = argv[2];
	tool = argv[3];
	snprintf(ring, sizeof(ring), "%s", t_ring_path("counts"));
	setenv(RT_RING_ENV, ring, 1);
	if (!strcmp(argv[1], "refused_not_lost"))
		refused_not_lost();
	else if (!strcmp(argv[1], "service_names"))
		service_names();
	else if (!strcmp(argv[1], "log_long_lines"))
		log_long_lines();
	else if (!strcmp(argv[1], "sighup"))
		sighup();
	else if (!strcmp(argv[1], "stat_after_kills"))
		stat_after_kills();
	else
		CHECK(0, "unknown case %s", argv[1]);
	unlink(ring);
	return 0;
}
