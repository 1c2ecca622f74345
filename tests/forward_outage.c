/* SPDX-License-Identifier: MIT */
/*
 * forward_outage - the central is away while a sender goes on writing.
 *
 * First, with --retain-bytes 128K and a hard limit far off: the sender
 * writes several segments (well past 128K) while nobody listens upstream;
 * `ringtail stat` says it is not connected, why, and how far behind it is;
 * retention removes none of the unforwarded segments. The central starts:
 * the backlog drains, retention then removes what has been forwarded, and
 * the central holds every record the writers were told was taken, exactly
 * once (even those the sender no longer has).
 *
 * Then, the central away again, with --retain-hard-bytes 256K: past the
 * hard limit the sender gives up its oldest unforwarded segments, saying
 * exactly which records in its own log. When the central returns, a GAP
 * tells it; the records it will not get are the ones the sender gave up,
 * `ringtail verify` on the central's copy reports exactly that gap, and
 * every block after it is on the central as it is at home.
 *
 *   forward_outage RINGTAILD RINGTAIL
 */
#define SC_PROCS 1
#define SC_MAXREC 3000000u
#include "forward_check.h"

static int local_segments(const struct fc *f, uint64_t *first, uint64_t *bytes)
{
	struct rt_spool *sp;
	uint64_t *seqs;
	int n;

	*first = 0;
	if (bytes)
		*bytes = 0;
	n = rt_spool_open(f->host[0].spool, NULL, 0, &sp);
	if (n == -ENOENT) /* not made yet */
		return 0;
	CHECK_EQ(n, 0);
	n = rt_spool_list(sp, &seqs);
	CHECK(n >= 0, "list");
	*first = n > 0 ? seqs[0] : 0;
	if (bytes) {
		for (int i = 0; i < n; i++) {
			struct stat st;
			char name[32];
			rt_seg_name(name, seqs[i]);
			if (fstatat(sp->dirfd, name, &st, 0) == 0)
				*bytes += (uint64_t)st.st_size;
		}
	}
	if (n > 0)
		free(seqs);
	rt_spool_close(sp);
	return n;
}

/* Ranges of records, merged: "#A to #B" from every line of @cmd's output. */
struct ranges {
	uint64_t a[64], b[64];
	int n;
};

static void ranges_read(const char *cmd, const char *fmt, struct ranges *r)
{
	char line[1024];
	FILE *p = popen(cmd, "r");

	CHECK(p, "%s", cmd);
	r->n = 0;
	while (fgets(line, sizeof(line), p)) {
		unsigned long long a, b;
		const char *s = strstr(line, fmt);
		if (!s || sscanf(s + strlen(fmt), "%llu to #%llu", &a, &b) != 2)
			continue;
		if (r->n && r->b[r->n - 1] + 1 == a) {
			r->b[r->n - 1] = b; /* one segment after another */
			continue;
		}
		CHECK(r->n < 64, "too many ranges");
		r->a[r->n] = a;
		r->b[r->n++] = b;
	}
	pclose(p);
}

static void wait_segments(const struct fc *f, int n, uint64_t timeout_ns)
{
	uint64_t first, deadline = t_now_ns() + timeout_ns;
	while (local_segments(f, &first, NULL) < n) {
		CHECK(t_now_ns() < deadline, "the sender never wrote %d segments", n);
		t_pause();
	}
}

int main(int argc, char **argv)
{
	static const char *phase1[] = {"--retain-bytes", "128K", "--retain-hard-bytes", "1G", NULL};
	static const char *phase2[] = {"--retain-bytes", "128K", "--retain-hard-bytes", "256K",
				       NULL};
	struct fc f;
	struct sc_result loc, cen;
	struct ranges gave, wont, missing;
	const char *rings[1];
	char cmd[1200], out[4096], path[400];
	uint64_t first, bytes, backlog, held, deadline;
	int nseg;
	FILE *p;

	CHECK(argc == 3, "usage: forward_outage RINGTAILD RINGTAIL");
	if (system("command -v lz4 >/dev/null") != 0) {
		printf("SKIP: lz4 is not installed\n");
		return T_SKIP;
	}
	fc_init(&f, "fwoutage", argv[1], argv[2], 0);
	rings[0] = f.host[0].ring;
	/* The sender's upstream is a port the proxy holds, not listening yet:
	 * refused, as a central that is not there. */
	fc_px_start(0, 0, 1);
	f.upstream_port = fc_px->port;

	/* 1. Nobody listening upstream. */
	memcpy(f.sender_args, phase1, sizeof(phase1));
	fc_start_sender(&f, 0);
	sc_start_writers_into(3000, rings);
	wait_segments(&f, 10, 120ull * 1000000000);
	nseg = local_segments(&f, &first, &bytes);
	CHECK(first == 1 && bytes > 4 * 128 * 1024,
	      "retention removed unforwarded segments (first now #%llu, %llu bytes kept)",
	      (unsigned long long)first, (unsigned long long)bytes);
	snprintf(cmd, sizeof(cmd), "'%s' stat --json --ring '%s'", f.tool, f.host[0].ring);
	p = popen(cmd, "r");
	CHECK(p && fgets(out, sizeof(out), p), "%s", cmd);
	pclose(p);
	CHECK(strstr(out, "\"connected\":false") &&
	      strstr(out, "\"last_error\":\"cannot connect to upstream") &&
	      !strstr(out, "\"lag_records\":0,"),
	      "ringtail stat does not show the outage: %s", out);

	/* The central returns: the backlog drains while the writers go on. */
	backlog = fc_durable(f.host[0].spool);
	fc_start_central(&f);
	fc_px_target(f.port);
	fc_px_listen();
	deadline = t_now_ns() + 120ull * 1000000000;
	while (fc_central_durable(&f, 0) < backlog) {
		CHECK(t_now_ns() < deadline, "the backlog never drained");
		t_pause();
	}
	/* Forwarded, the old segments may go now (at the next rotation). */
	while (local_segments(&f, &first, NULL) && first == 1) {
		CHECK(t_now_ns() < deadline, "forwarded segments were never removed");
		t_pause();
	}
	sc_stop_writers();
	fc_wait_forwarded(&f, 0, 120ull * 1000000000);
	fc_stop(f.host[0].pid);
	fc_px_target(0);
	fc_stop(f.central_pid);
	fc_check_host(&f, 0, 0, &loc, &cen);
	printf("ok - central away: %d segments (%llu KiB) kept past --retain-bytes 128K, "
	       "ringtail stat showed the outage; back, the backlog of %llu records drained and "
	       "the central holds all %llu records taken, once each, though the sender has "
	       "since removed records up to #%llu\n",
	       nseg, (unsigned long long)(bytes >> 10), (unsigned long long)backlog,
	       (unsigned long long)cen.taken, (unsigned long long)(first - 1));

	/* 2. Away again, with a hard limit: the sender gives records up. */
	held = fc_central_durable(&f, 0);
	memcpy(f.sender_args, phase2, sizeof(phase2));
	fc_start_sender(&f, 0);
	sc_start_writers_into(3000, rings);
	deadline = t_now_ns() + 120ull * 1000000000;
	while (local_segments(&f, &first, NULL) && first <= held + 1) {
		CHECK(t_now_ns() < deadline, "the sender never passed its hard limit");
		t_pause();
	}
	fc_start_central(&f);
	fc_px_target(f.port);
	sc_stop_writers();
	fc_wait_forwarded(&f, 0, 120ull * 1000000000);
	fc_stop(f.host[0].pid);
	fc_stop(f.central_pid);
	fc_px_stop();

	/* What the sender says it gave up, what the central was told it will
	 * not get, and the gap verify finds on the central are the same. */
	snprintf(cmd, sizeof(cmd), "'%s' dump '%s' | grep ' ringtaild\\[' | grep 'gave up'", f.tool,
		 f.host[0].spool);
	ranges_read(cmd, "gave up records #", &gave);
	snprintf(cmd, sizeof(cmd), "grep 'will not arrive' '%s'", f.log);
	ranges_read(cmd, "records #", &wont);
	CHECK(fc_central_spool(&f, f.host[0].name, path, sizeof(path)) == 1, "no copy");
	snprintf(cmd, sizeof(cmd), "'%s' verify '%s' 2>&1", f.tool, path);
	ranges_read(cmd, "sequence gap: records #", &missing);
	CHECK(gave.n == 1 && wont.n == 1 && missing.n == 1,
	      "%d ranges given up, %d announced, %d missing", gave.n, wont.n, missing.n);
	CHECK(gave.a[0] == held + 1 && wont.a[0] == gave.a[0] && wont.b[0] == gave.b[0] &&
	      missing.a[0] == gave.a[0] && missing.b[0] == gave.b[0],
	      "given up #%llu..#%llu, announced #%llu..#%llu, missing #%llu..#%llu (held #%llu)",
	      (unsigned long long)gave.a[0], (unsigned long long)gave.b[0],
	      (unsigned long long)wont.a[0], (unsigned long long)wont.b[0],
	      (unsigned long long)missing.a[0], (unsigned long long)missing.b[0],
	      (unsigned long long)held);
	snprintf(cmd, sizeof(cmd), "'%s' verify '%s' >/dev/null 2>&1", f.tool, path);
	CHECK(system(cmd) != 0, "verify did not report the gap");
	snprintf(cmd, sizeof(cmd), "'%s' verify '%s' >/dev/null", f.tool, f.host[0].spool);
	CHECK(system(cmd) == 0, "verify found damage in the sender's spool");
	printf("ok - past --retain-hard-bytes the sender gave up records #%llu to #%llu and said "
	       "so; the central was told the same, verify reports exactly that gap, and the %zu "
	       "blocks after it are on the central as at home\n",
	       (unsigned long long)gave.a[0], (unsigned long long)gave.b[0], fc_same_blocks(&f, 0));
	fc_cleanup(&f);
	return 0;
}
