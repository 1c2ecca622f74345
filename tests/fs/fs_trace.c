/* SPDX-License-Identifier: MIT */
/*
 * fs_trace - /by-trace: three services (each writing from its own thread,
 * so sequence order and time order differ) log 1500 requests with a trace id
 * each; /by-trace/ID holds exactly the lines carrying that id, in time order;
 * the listing shows recent ids; an id too old to be listed is still found;
 * unknown and malformed ids are ENOENT; a record of a trace that arrives
 * later is appended, and nothing before it changes.
 *
 *   fs_trace RINGTAILD RINGTAILFS RINGTAIL
 */
#include <pthread.h>

#include "fs_helpers.h"

#define REQUESTS 1500

static void trace_of(int i, uint8_t t[16])
{
	for (int k = 0; k < 16; k++)
		t[k] = (uint8_t)((i * 131 + k * 7 + 1) ^ (i >> 8));
}

static void hex(const uint8_t t[16], char out[33])
{
	for (int k = 0; k < 16; k++)
		sprintf(out + 2 * k, "%02x", t[k]);
}

static pthread_barrier_t bar;

static void *service(void *arg)
{
	const char *name = arg;
	struct rt_opts o;
	uint8_t t[16];

	memset(&o, 0, sizeof(o));
	o.service = name;
	o.trace_id = t;
	pthread_barrier_wait(&bar);
	for (int i = 0; i < REQUESTS; i++) {
		trace_of(i, t);
		CHECK_EQ(rt_printfx(name[0] == 'b' && i % 9 == 0 ? RT_ERROR : RT_INFO, &o,
				    "%s handled request %d", name, i),
			 0);
		if (i % 64 == 0)
			sched_yield();
	}
	return NULL;
}

struct tr {
	char id[33];
};

static int keep_trace(const char *line, void *arg)
{
	char pat[48];

	snprintf(pat, sizeof(pat), " trace=%s ", ((struct tr *)arg)->id);
	return strstr(line, pat) != NULL;
}

/* Sort lines by time (the first 30 bytes), then sequence number. */
static int cmp_lines(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	int c = strncmp(x, y, 30);
	uint64_t sx, sy;

	if (c)
		return c;
	sx = t_line_seq(x);
	sy = t_line_seq(y);
	return sx < sy ? -1 : sx > sy;
}

static struct t_text time_order(const struct t_text *in)
{
	return t_sort_lines(in, cmp_lines);
}

int main(int argc, char **argv)
{
	static const char *const svcs[] = {"api", "auth", "billing"};
	struct t_text dump, got, want, listing;
	pthread_t th[3];
	struct tr tr;
	uint8_t t[16];
	char rel[128], cmd[600];
	int status;

	t_setup("trace", argc, argv);
	t_start_daemon(NULL);
	pthread_barrier_init(&bar, NULL, 3);
	for (int s = 0; s < 3; s++)
		CHECK_EQ(pthread_create(&th[s], NULL, service, (void *)svcs[s]), 0);
	for (int s = 0; s < 3; s++)
		pthread_join(th[s], NULL);

	t_mount(NULL);
	for (int s = 0; s < 3; s++) {
		snprintf(rel, sizeof(rel), "by-service/%s", svcs[s]);
		t_wait_lines(t_path(rel), REQUESTS, 10);
	}
	dump = t_dump(T.spool);

	/* Each of a sample of requests, old and new: its three lines in time
	 * order. */
	for (int i = 0; i < REQUESTS; i += 97) {
		struct t_text sel;
		trace_of(i, t);
		hex(t, tr.id);
		snprintf(rel, sizeof(rel), "by-trace/%s", tr.id);
		sel = t_filter(&dump, keep_trace, &tr);
		want = time_order(&sel);
		CHECK_EQ(t_count_lines(&want), 3);
		got = t_read_file(t_path(rel));
		t_same(&got, &want, rel);
		t_text_free(&got);
		t_text_free(&want);
		t_text_free(&sel);
	}
	printf("ok - /by-trace/ID: the three services' lines of a request, in time order\n");

	/* The listing: recent ids (not necessarily all of them). */
	snprintf(cmd, sizeof(cmd), "ls '%s/by-trace'", T.mnt);
	listing = t_sh(cmd, &status);
	CHECK_EQ(status, 0);
	trace_of(REQUESTS - 1, t);
	hex(t, tr.id);
	CHECK(strstr(listing.p, tr.id), "the newest trace %s is not listed", tr.id);
	trace_of(0, t);
	hex(t, tr.id);
	printf("ok - ls by-trace: %zu recent ids, newest among them; oldest %s\n",
	       t_count_lines(&listing), strstr(listing.p, tr.id) ? "listed" : "not listed but found");
	t_text_free(&listing);

	/* Unknown or malformed ids. */
	CHECK(access(t_path("by-trace/0123456789abcdef0123456789abcdef"), F_OK) < 0 &&
		      errno == ENOENT,
	      "unknown id");
	CHECK(access(t_path("by-trace/XYZ"), F_OK) < 0 && errno == ENOENT, "malformed id");
	CHECK(access(t_path("by-trace/0123456789ABCDEF0123456789ABCDEF"), F_OK) < 0 &&
		      errno == ENOENT,
	      "upper case id");
	printf("ok - unknown and malformed ids: ENOENT\n");

	/* A late record of request 5 is appended. */
	{
		struct rt_opts o;
		struct t_text before, after, sel;
		trace_of(5, t);
		hex(t, tr.id);
		snprintf(rel, sizeof(rel), "by-trace/%s", tr.id);
		before = t_read_file(t_path(rel));
		memset(&o, 0, sizeof(o));
		o.service = "audit";
		o.trace_id = t;
		CHECK_EQ(rt_writex(RT_WARN, &o, "late audit of request 5", 23), 0);
		t_wait_lines(t_path(rel), 4, 10);
		after = t_read_file(t_path(rel));
		CHECK(after.len > before.len && !memcmp(after.p, before.p, before.len),
		      "the trace file changed before its end");
		CHECK(strstr(after.p + before.len, " audit[") &&
			      strstr(after.p + before.len, "late audit of request 5\n"),
		      "appended: %s", after.p + before.len);
		t_text_free(&dump);
		dump = t_dump(T.spool);
		sel = t_filter(&dump, keep_trace, &tr);
		CHECK_EQ(t_count_lines(&sel), 4);
		t_text_free(&sel);
		t_text_free(&before);
		t_text_free(&after);
	}
	printf("ok - a later record of a trace is appended; earlier bytes unchanged\n");

	t_text_free(&dump);
	CHECK_EQ(t_unmount(), 0);
	return 0;
}
