/* SPDX-License-Identifier: MIT */
/*
 * fs_central - a central server's directory (CENTRAL/central.meta,
 * hosts/HOST/EPOCH/ spools made by real ringtaild runs): /by-host/HOST/...
 * holds each host's files exactly as `ringtail dump` of its spool says; the
 * top-level files merge every host (each host's lines in its order); /since
 * is per host; /stats adds up per host; a host that arrives while mounted
 * shows up, its lines appended after what was there.
 *
 *   fs_central RINGTAILD RINGTAILFS RINGTAIL
 */
#include "fs_helpers.h"
#include "rtspool.h"

static char central[256];

/* A spool for @host, written by a real ringtaild and `ringtail log`, then
 * moved to CENTRAL/hosts/HOST/EPOCH. Returns that path (static). */
static const char *make_host(const char *host, int n)
{
	static char dst[8][512];
	static int slot;
	char spool[400], ring[200], cmd[1024], hostdir[450], *argv[12];
	struct rt_spool *sp;
	char epoch[33];
	uint64_t deadline = t_now_ns() + 10ull * 1000000000;
	pid_t d;
	FILE *f;
	int i = 0;

	snprintf(spool, sizeof(spool), "%s/spool-%s", T.dir, host);
	snprintf(ring, sizeof(ring), "%s-%s", T.ring, host);
	argv[i++] = (char *)T.ringtaild;
	argv[i++] = "--ring";
	argv[i++] = ring;
	argv[i++] = "--spool";
	argv[i++] = spool;
	argv[i++] = "--host";
	argv[i++] = (char *)host;
	argv[i++] = "-q";
	argv[i] = NULL;
	d = t_spawn_v(argv, NULL);
	while (access(ring, F_OK) != 0) {
		CHECK(t_now_ns() < deadline, "ringtaild for %s did not start", host);
		t_pause();
	}
	/* One record per line of standard input. */
	snprintf(cmd, sizeof(cmd), "'%s' log --ring '%s' -t api -p info", T.ringtail, ring);
	f = popen(cmd, "w");
	CHECK(f != NULL, "popen");
	for (int k = 0; k < n; k++)
		fprintf(f, "%s request %d\n", host, k);
	i = pclose(f);
	CHECK(i == 0, "ringtail log for %s: %d", host, i);
	snprintf(cmd, sizeof(cmd), "'%s' log --ring '%s' -t db -p error '%s' disk slow", T.ringtail,
		 ring, host);
	CHECK_EQ(system(cmd), 0);
	/* Stopping drains the ring into the spool. */
	kill(d, SIGTERM);
	CHECK_EQ(t_wait(d), 0);
	unlink(ring);
	CHECK_EQ(rt_spool_open(spool, NULL, 0, &sp), 0);
	rt_epoch_hex(sp->epoch, epoch);
	rt_spool_close(sp);
	snprintf(hostdir, sizeof(hostdir), "%s/hosts/%s", central, host);
	mkdir(hostdir, 0750);
	slot = (slot + 1) % 8;
	snprintf(dst[slot], sizeof(dst[slot]), "%s/%s", hostdir, epoch);
	CHECK(rename(spool, dst[slot]) == 0, "rename %s: %s", spool, strerror(errno));
	return dst[slot];
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of @t, sorted (to compare merged files as multisets). */
static struct t_text sorted(const struct t_text *t)
{
	return t_sort_lines(t, cmp_str);
}

/* Is @sub's sequence of lines, in order, a subsequence of @all's? */
static int in_order(const struct t_text *all, const struct t_text *sub)
{
	const char *p = all->p, *q = sub->p, *pend = all->p + all->len;

	while (*q) {
		const char *qn = strchr(q, '\n');
		size_t len = (size_t)(qn - q) + 1;
		while (p < pend && strncmp(p, q, len))
			p = strchr(p, '\n') + 1;
		if (p >= pend)
			return 0;
		p += len;
		q += len;
	}
	return 1;
}

static void cat_text(struct t_text *a, const struct t_text *b)
{
	t_text_add(a, b->p, b->len);
}

int main(int argc, char **argv)
{
	const char *alpha, *beta, *gamma;
	struct t_text da, db, dg, got, want, all, s1, s2;
	char rel[256], meta[300];
	FILE *f;
	int status;

	t_setup("central", argc, argv);
	snprintf(central, sizeof(central), "%s/central", T.dir);
	CHECK(mkdir(central, 0750) == 0, "mkdir");
	snprintf(meta, sizeof(meta), "%s/hosts", central);
	CHECK(mkdir(meta, 0750) == 0, "mkdir");
	snprintf(meta, sizeof(meta), "%s/central.meta", central);
	f = fopen(meta, "w");
	CHECK(f != NULL, "central.meta");
	fputs("ringtail-central 1\n", f);
	fclose(f);
	alpha = make_host("alpha", 300);
	beta = make_host("beta", 200);
	da = t_dump(alpha);
	db = t_dump(beta);

	t_mount_src(central, NULL);
	{
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "ls '%s/by-host'", T.mnt);
		got = t_sh(cmd, &status);
		CHECK(status == 0 && !strcmp(got.p, "alpha\nbeta\n"), "ls by-host: %s", got.p);
		t_text_free(&got);
	}
	/* Per host: exactly its dump. */
	got = t_read_file(t_path("by-host/alpha/all"));
	t_same(&got, &da, "by-host/alpha/all");
	t_text_free(&got);
	got = t_read_file(t_path("by-host/beta/by-service/api"));
	want = t_filter(&db, t_keep_service, "api");
	t_same(&got, &want, "by-host/beta/by-service/api");
	CHECK_EQ(t_count_lines(&want), 200);
	t_text_free(&got);
	t_text_free(&want);
	{
		/* Resume after "alpha request 150": from its sequence number + 1. */
		const char *l = strstr(da.p, " alpha request 150\n"), *bol = l;
		char since[64];
		while (bol > da.p && bol[-1] != '\n')
			bol--;
		snprintf(since, sizeof(since), "by-host/alpha/since/%llu/by-service/api",
			 (unsigned long long)t_line_seq(bol) + 1);
		got = t_read_file(t_path(since));
		CHECK(!strncmp(strstr(got.p, " INFO ") + 6, "alpha request 151\n", 18) &&
			      t_count_lines(&got) == 149,
		      "%s: %s", since, got.p);
		t_text_free(&got);
	}
	CHECK(access(t_path("since"), F_OK) < 0 && errno == ENOENT,
	      "/since at the top of a central mount");
	printf("ok - /by-host/HOST/...: each host's own files; /since per host only\n");

	/* Merged: every host's lines, each host's in its order. */
	all = t_read_file(t_path("all"));
	memset(&want, 0, sizeof(want));
	t_text_add(&want, "", 0);
	cat_text(&want, &da);
	cat_text(&want, &db);
	s1 = sorted(&all);
	s2 = sorted(&want);
	t_same(&s1, &s2, "/all as a set of lines");
	CHECK(in_order(&all, &da) && in_order(&all, &db), "a host's lines out of order in /all");
	t_text_free(&s1);
	t_text_free(&s2);
	t_text_free(&want);
	got = t_read_file(t_path("errors/by-service/db"));
	CHECK(strstr(got.p, " alpha db[") && strstr(got.p, " beta db[") &&
		      t_count_lines(&got) == 2,
	      "errors/by-service/db: %s", got.p);
	t_text_free(&got);
	got = t_read_file(t_path("stats"));
	CHECK(strstr(got.p, "\nhosts 2\n") && strstr(got.p, "\nhost alpha records 30") &&
		      strstr(got.p, "\nhost beta records 20"),
	      "stats:\n%s", got.p);
	/* Each host's line ends with its high-water mark's last update. */
	for (const char *h = got.p; (h = strstr(h, "\nhost ")) != NULL; h++) {
		const char *eol = strchr(h + 1, '\n');
		const char *lc = strstr(h, " last_contact 20");
		CHECK(lc && eol && lc < eol, "a host line without its last contact:\n%s", got.p);
	}
	t_text_free(&got);
	printf("ok - top-level files merge the hosts; /stats per host, with its last contact\n");

	/* A host that arrives while mounted: appended, nothing before moves. */
	gamma = make_host("gamma", 50);
	dg = t_dump(gamma);
	{
		uint64_t deadline = t_now_ns() + 20ull * 1000000000;
		for (;;) {
			got = t_read_file(t_path("all"));
			if (got.len >= all.len + dg.len)
				break;
			t_text_free(&got);
			CHECK(t_now_ns() < deadline, "gamma did not show up");
			t_pause();
		}
		CHECK(!memcmp(got.p, all.p, all.len), "bytes before gamma changed");
		CHECK(got.len == all.len + dg.len && !memcmp(got.p + all.len, dg.p, dg.len),
		      "gamma's lines are not appended as they are");
		t_text_free(&got);
	}
	snprintf(rel, sizeof(rel), "by-host/gamma/by-service/db");
	got = t_read_file(t_path(rel));
	CHECK(t_count_lines(&got) == 1, "%s: %s", rel, got.p);
	t_text_free(&got);
	printf("ok - a new host shows up; its lines appended in arrival order\n");

	t_text_free(&all);
	t_text_free(&da);
	t_text_free(&db);
	t_text_free(&dg);
	CHECK_EQ(t_unmount(), 0);
	return 0;
}
