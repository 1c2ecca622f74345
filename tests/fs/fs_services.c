/* SPDX-License-Identifier: MIT */
/*
 * fs_services - no fixed cap on services hides data: 40,000 services, all
 * in one block (a 2 s commit window gathers them), are all listed in
 * /by-service and each readable there; /all and /by-day/DAY/all hold every
 * record (no EIO); /stats counts them all and calls nothing damaged. (The
 * table held 32,768: the rest were missing from the listing, the block's
 * files were EIO and /stats called the block damaged.)
 *
 *   fs_services RINGTAILD RINGTAILFS RINGTAIL
 *
 * RT_TEST_SERVICES=N changes the count (the figures: 100000); with
 * RT_TEST_READ_ALL=1 every /by-service file is read, else every 97th.
 */
#include "fs_helpers.h"

static uint64_t stats_value(const struct t_text *st, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\n%s ", key);
	p = strstr(st->p, pat);
	return p ? strtoull(p + strlen(pat), NULL, 10) : UINT64_MAX;
}

/* Lines of our services ("... svc-NNNNNN[..."). */
static uint64_t count_ours(const struct t_text *t)
{
	uint64_t k = 0;

	for (const char *p = t->p; (p = strstr(p, " svc-")) != NULL; p++)
		k++;
	return k;
}

static void name_of(unsigned i, char *out, size_t cap)
{
	snprintf(out, cap, "svc-%06u", i);
}

int main(int argc, char **argv)
{
	static const char *const extra[] = {"--commit-window", "2s", NULL};
	const char *env = getenv("RT_TEST_SERVICES");
	unsigned n = env ? (unsigned)strtoul(env, NULL, 10) : 40000;
	int read_all = getenv("RT_TEST_READ_ALL") != NULL;
	uint8_t *seen = calloc(n, 1);
	uint64_t t0, deadline, listed = 0, lines = 0, blocks, read_files = 0;
	struct t_text st, all;
	DIR *d;
	struct dirent *e;

	CHECK(seen != NULL && n > 0, "services");
	t_setup("services", argc, argv);
	t_start_daemon(extra);
	t0 = t_now_ns();
	for (unsigned i = 0; i < n; i++) {
		struct rt_opts o;
		char name[32];
		int err;
		name_of(i, name, sizeof(name));
		memset(&o, 0, sizeof(o));
		o.service = name;
		while ((err = rt_printfx(RT_INFO, &o, "record %u", i)) == -ENOBUFS)
			t_pause();
		CHECK_EQ(err, 0);
	}
	t_mount(NULL);
	/* Every record counted by /stats. */
	deadline = t_now_ns() + 120ull * 1000000000;
	for (;;) {
		st = t_read_file(t_path("stats"));
		if (stats_value(&st, "records") != UINT64_MAX && stats_value(&st, "records") >= n)
			break;
		CHECK(t_now_ns() < deadline, "/stats records %llu, want %u",
		      (unsigned long long)stats_value(&st, "records"), n);
		t_text_free(&st);
		/* /stats of 40,000 services is not cheap: look every 20 ms. */
		nanosleep(&(struct timespec){0, 20 * 1000000}, NULL);
	}
	fprintf(stderr, "%.1f s: /stats counts them\n", (double)(t_now_ns() - t0) / 1e9);
	blocks = stats_value(&st, "blocks");
	CHECK_EQ(stats_value(&st, "damaged_blocks"), 0);
	CHECK_EQ(stats_value(&st, "damaged_segments"), 0);
	CHECK(!strstr(st.p, "\ndamage "), "/stats reports damage:\n%s", st.p);
	/* Ours, and ringtail's own (a loss record for refused calls). */
	CHECK(stats_value(&st, "services") >= n && stats_value(&st, "services") <= n + 2,
	      "/stats services %llu", (unsigned long long)stats_value(&st, "services"));
	t_text_free(&st);

	/* Every service listed, once. */
	d = opendir(t_path("by-service"));
	CHECK(d != NULL, "opendir by-service");
	while ((e = readdir(d)) != NULL) {
		unsigned i;
		char name[32];
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    !strcmp(e->d_name, "ringtail") || !strcmp(e->d_name, "ringtaild"))
			continue;
		CHECK(sscanf(e->d_name, "svc-%6u", &i) == 1 && i < n, "stray entry %s", e->d_name);
		name_of(i, name, sizeof(name));
		CHECK(!strcmp(name, e->d_name), "stray entry %s", e->d_name);
		CHECK(!seen[i], "%s listed twice", e->d_name);
		seen[i] = 1;
		listed++;
	}
	closedir(d);
	CHECK_EQ(listed, n);
	fprintf(stderr, "%.1f s: listed\n", (double)(t_now_ns() - t0) / 1e9);

	/* Each readable (a sample, or all). */
	for (unsigned i = 0; i < n; i++) {
		char rel[64], name[32];
		struct t_text f;
		if (!read_all && i % 97 && i != n - 1)
			continue;
		name_of(i, name, sizeof(name));
		snprintf(rel, sizeof(rel), "by-service/%s", name);
		f = t_read_file(t_path(rel));
		CHECK_EQ(t_count_lines(&f), 1);
		CHECK(strstr(f.p, name) != NULL, "%s: %s", rel, f.p);
		t_text_free(&f);
		read_files++;
	}

	fprintf(stderr, "%.1f s: files read\n", (double)(t_now_ns() - t0) / 1e9);
	/* /all and every /by-day/DAY/all: every record, no EIO. */
	all = t_read_file(t_path("all"));
	CHECK_EQ(count_ours(&all), n);
	t_text_free(&all);
	d = opendir(t_path("by-day"));
	CHECK(d != NULL, "opendir by-day");
	while ((e = readdir(d)) != NULL) {
		char rel[300];
		if (e->d_name[0] == '.')
			continue;
		snprintf(rel, sizeof(rel), "by-day/%s/all", e->d_name);
		all = t_read_file(t_path(rel));
		lines += count_ours(&all);
		t_text_free(&all);
	}
	closedir(d);
	CHECK_EQ(lines, n);
	printf("ok - %u services in %llu block(s): all %llu listed in /by-service, %llu of their "
	       "files read, /all and /by-day/*/all hold all %u records, /stats says no damage "
	       "(%.1f s)\n",
	       n, (unsigned long long)blocks, (unsigned long long)listed,
	       (unsigned long long)read_files, n, (double)(t_now_ns() - t0) / 1e9);
	free(seen);
	CHECK_EQ(t_unmount(), 0);
	return 0;
}
