/* SPDX-License-Identifier: MIT */
/*
 * fs_names - the tree is unambiguous whatever the services are called:
 * services named like the tree's own files (all, errors, by-service, stats,
 * by-day, tail) never shadow them. Every directory lists each name once;
 * /errors/all, /tail/all and /since/1/all are the tree's files (every
 * service's records), a service's own file is under by-service/; GNU du
 * walks the whole mount (it aborted on the names listed twice).
 *
 *   fs_names RINGTAILD RINGTAILFS RINGTAIL
 */
#include "fs_helpers.h"

static const char *const svcs[] = {"all", "errors", "by-service", "stats", "by-day", "tail", NULL};
#define NSVC (sizeof(svcs) / sizeof(svcs[0]) - 1)

/* Every entry of @rel listed once; @want (NULL-terminated) all there. */
static void listed_once(const char *rel, const char *const *want)
{
	char names[256][256];
	int n = 0;
	DIR *d = opendir(t_path(rel));
	struct dirent *e;

	CHECK(d != NULL, "opendir %s: %s", rel, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		for (int i = 0; i < n; i++)
			CHECK(strcmp(names[i], e->d_name), "%s: '%s' listed twice", rel, e->d_name);
		CHECK(n < 256, "%s: too many entries", rel);
		snprintf(names[n++], sizeof(names[0]), "%s", e->d_name);
	}
	closedir(d);
	for (int k = 0; want && want[k]; k++) {
		int found = 0;
		for (int i = 0; i < n; i++)
			found |= !strcmp(names[i], want[k]);
		CHECK(found, "%s: no '%s'", rel, want[k]);
	}
}

static size_t count_sub(const char *p, const char *sub)
{
	size_t k = 0;

	for (; (p = strstr(p, sub)) != NULL; p++)
		k++;
	return k;
}

int main(int argc, char **argv)
{
	static const char *const seldir[] = {"all", "errors", "by-service", NULL};
	static const char *const taildir[] = {"all", "by-service", NULL};
	char day[256] = "", rel[600], cmd[600];
	struct t_text t;
	DIR *d;
	struct dirent *e;
	int st;

	t_setup("names", argc, argv);
	t_start_daemon(NULL);
	for (size_t i = 0; i < NSVC; i++) {
		struct rt_opts o;
		memset(&o, 0, sizeof(o));
		o.service = svcs[i];
		CHECK_EQ(rt_printfx(RT_ERROR, &o, "an error of service %s", svcs[i]), 0);
		CHECK_EQ(rt_printfx(RT_INFO, &o, "info of service %s", svcs[i]), 0);
	}
	t_mount(NULL);
	t_wait_lines(t_path("all"), 2 * NSVC, 20);

	d = opendir(t_path("by-day"));
	CHECK(d != NULL, "by-day");
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			snprintf(day, sizeof(day), "%s", e->d_name);
	closedir(d);
	CHECK(day[0], "no day");

	listed_once("", NULL);
	listed_once("by-service", svcs);
	listed_once("errors", taildir); /* all, by-service */
	listed_once("errors/by-service", svcs);
	listed_once("by-severity/ERROR", taildir); /* all, by-service */
	snprintf(rel, sizeof(rel), "by-day/%s", day);
	listed_once(rel, seldir);
	snprintf(rel, sizeof(rel), "by-day/%s/by-service", day);
	listed_once(rel, svcs);
	listed_once("since/1", seldir);
	listed_once("tail", taildir);
	listed_once("tail/by-service", svcs);
	printf("ok - services named all, errors, by-service, stats, by-day, tail: every directory "
	       "lists each name once\n");

	/* The tree's files are the tree's; a service's are under by-service/. */
	t = t_read_file(t_path("errors/all"));
	CHECK_EQ(t_count_lines(&t), NSVC);
	t_text_free(&t);
	t = t_read_file(t_path("errors/by-service/all"));
	CHECK_EQ(t_count_lines(&t), 1);
	CHECK(strstr(t.p, " all[") && strstr(t.p, "an error of service all"), "%s", t.p);
	t_text_free(&t);
	{
		struct t_text all = t_read_file(t_path("all"));
		t = t_read_file(t_path("since/1/all"));
		t_same(&t, &all, "/since/1/all against /all");
		CHECK(t_count_lines(&t) >= 2 * NSVC, "/since/1/all: %zu lines", t_count_lines(&t));
		t_text_free(&t);
		t_text_free(&all);
	}
	t = t_read_file(t_path("by-service/stats"));
	CHECK_EQ(t_count_lines(&t), 2);
	t_text_free(&t);
	t = t_read_file(t_path("stats"));
	CHECK(!strncmp(t.p, "ringtailfs ", 11), "/stats is not the tree's: %.80s", t.p);
	t_text_free(&t);
	snprintf(rel, sizeof(rel), "by-day/%s/errors/by-service/errors", day);
	t = t_read_file(t_path(rel));
	CHECK_EQ(t_count_lines(&t), 1);
	CHECK_EQ(count_sub(t.p, "an error of service errors"), 1);
	t_text_free(&t);
	printf("ok - /errors/all, /since/1/all, /stats are the tree's; by-service/NAME the "
	       "service's\n");

	/* GNU du over the whole mount (/tail streams have no size). */
	snprintf(cmd, sizeof(cmd), "du -sh '%s' >/dev/null 2>&1", T.mnt);
	t = t_sh(cmd, &st);
	CHECK_EQ(st, 0);
	t_text_free(&t);
	printf("ok - du -sh MOUNT exits 0\n");
	CHECK_EQ(t_unmount(), 0);
	return 0;
}
