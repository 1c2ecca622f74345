/* SPDX-License-Identifier: MIT */
/*
 * tools_cli - the ringtail command, run as a user would: `log` with words,
 * with standard input, with levels, trace, span and attributes; `wrap`
 * passing exit statuses through and recording stdout as INFO and stderr as
 * ERROR; `stat` telling the truth; `ring create` with its mode and refusals.
 *
 *   tools_cli PATH-OF-ringtail
 */
#include <fcntl.h>
#include <sys/stat.h>

#include <pwd.h>

#include "helpers.h"

static const char *tool, *ring;

/* Run the tool with @args (a shell word list), feeding @input to stdin;
 * return its exit status and put its stdout+stderr in @out. */
static int run(const char *args, const char *input, char *out, size_t outsz)
{
	char cmd[4096], tmp[256];
	FILE *f;
	size_t n;
	int st;

	snprintf(tmp, sizeof(tmp), "/tmp/rt-cli-in-%d", (int)getpid());
	f = fopen(tmp, "w");
	CHECK(f != NULL, "tmp");
	if (input)
		fputs(input, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "RINGTAIL_RING='%s' '%s' %s <'%s' 2>&1", ring, tool, args, tmp);
	f = popen(cmd, "r");
	CHECK(f != NULL, "popen");
	n = fread(out, 1, outsz - 1, f);
	out[n] = '\0';
	st = pclose(f);
	unlink(tmp);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
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

static const char *attr_value(const struct t_rec *r, const char *key)
{
	static char buf[256];
	struct rt_attr_view a;
	size_t pos = 0;

	while (rt_attr_next(r->attrs, r->attrs_len, &pos, &a) == 1)
		if (a.key_len == strlen(key) && !memcmp(a.key, key, a.key_len)) {
			memcpy(buf, a.value, a.value_len);
			buf[a.value_len] = '\0';
			return buf;
		}
	return NULL;
}

int main(int argc, char **argv)
{
	char out[65536];
	struct t_recs rs;
	struct stat st;
	int rc;

	CHECK(argc == 2, "usage: tools_cli PATH-OF-ringtail");
	tool = argv[1];
	ring = strdup(t_ring_path("cli"));
	unlink(ring);

	/* No ring: a clear error and a non-zero exit. */
	rc = run("log hello", NULL, out, sizeof(out));
	CHECK(rc == 1 && strstr(out, "no ring"), "log without a ring: %d '%s'", rc, out);
	rc = run("stat", NULL, out, sizeof(out));
	CHECK(rc == 1 && strstr(out, "no ring"), "stat without a ring: %d '%s'", rc, out);
	printf("ok - no ring: clear errors\n");

	/* ring create: mode 0660 by default, refuses to replace. */
	rc = run("ring create --size 4M --chunk-size 16K --slots 32", NULL, out, sizeof(out));
	CHECK(rc == 0, "ring create: %s", out);
	CHECK(stat(ring, &st) == 0 && (st.st_mode & 0777) == 0660, "mode %o", st.st_mode & 0777);
	rc = run("ring create", NULL, out, sizeof(out));
	CHECK(rc == 1 && strstr(out, "already exists"), "second create: %d '%s'", rc, out);
	rc = run("ring create --size 12Q", NULL, out, sizeof(out));
	CHECK(rc == 2 && strstr(out, "bad size"), "bad size: %d '%s'", rc, out);
	printf("ok - ring create\n");

	/* log: words joined, levels, ids, attributes. */
	rc = run("log -t api -p warning --trace 0af7651916cd43dd8448eb211c80319c --span "
		 "b7ad6b7169203331 -a user=alice -a 'note=a b' hello   big world",
		 NULL, out, sizeof(out));
	CHECK(rc == 0, "log: %s", out);
	rc = run("log -t batch -p user.err", "line one\n\nline three\nno newline at end", out,
		 sizeof(out));
	CHECK(rc == 0, "log from stdin: %s", out);
	rc = run("log -p 3 numeric", NULL, out, sizeof(out));
	CHECK(rc == 0, "numeric level: %s", out);
	rc = run("log -p loud x", NULL, out, sizeof(out));
	CHECK(rc == 2 && strstr(out, "bad level"), "bad level: %d '%s'", rc, out);
	rc = run("log -t 'a/b' x", NULL, out, sizeof(out));
	CHECK(rc == 2 && strstr(out, "bad service"), "bad service: %d '%s'", rc, out);
	rc = run("log --trace 12 x", NULL, out, sizeof(out));
	CHECK(rc == 2, "bad trace: %d '%s'", rc, out);
	rs = drain();
	CHECK_EQ(rs.n, 6);
	CHECK(!strcmp(rs.v[0].service, "api") && rs.v[0].severity == 13 &&
		      !strcmp(rs.v[0].msg, "hello big world"),
	      "log 0: %s %d '%s'", rs.v[0].service, rs.v[0].severity, rs.v[0].msg);
	CHECK(rs.v[0].has_trace && rs.v[0].trace[0] == 0x0a && rs.v[0].trace[15] == 0x9c &&
		      rs.v[0].has_span && rs.v[0].span[7] == 0x31,
	      "ids");
	CHECK(attr_value(&rs.v[0], "user") && !strcmp(attr_value(&rs.v[0], "user"), "alice"),
	      "attr user");
	CHECK(attr_value(&rs.v[0], "note") && !strcmp(attr_value(&rs.v[0], "note"), "a b"),
	      "attr note");
	CHECK(!strcmp(rs.v[1].msg, "line one") && !strcmp(rs.v[2].msg, "") &&
		      !strcmp(rs.v[3].msg, "line three") && !strcmp(rs.v[4].msg, "no newline at end"),
	      "stdin lines");
	CHECK(rs.v[1].severity == 17 && !strcmp(rs.v[1].service, "batch"), "stdin level/service");
	/* No -t: the login name, as logger(1) takes it; never "ringtail". */
	{
		const char *login = getlogin();
		struct passwd *pw = getpwuid(geteuid());
		if (!login || !rt_service_name_ok(login, strlen(login)))
			login = pw ? pw->pw_name : "?";
		CHECK(rs.v[5].severity == 3 && !strcmp(rs.v[5].service, login),
		      "numeric level, default service '%s' (want '%s')", rs.v[5].service, login);
	}
	t_recs_free(&rs);
	printf("ok - log\n");

	/* wrap: stdout INFO, stderr ERROR, status passed through. */
	rc = run("wrap -t job -- sh -c 'echo out1; echo err1 >&2; printf partial; exit 7'", NULL,
		 out, sizeof(out));
	CHECK(rc == 7, "wrap status %d: %s", rc, out);
	CHECK(out[0] == '\0', "wrap printed '%s' without --tee", out);
	rc = run("wrap -t job --tee -- sh -c 'echo shown'", NULL, out, sizeof(out));
	CHECK(rc == 0 && !strcmp(out, "shown\n"), "tee: %d '%s'", rc, out);
	rc = run("wrap -t job -- sh -c 'kill -TERM $$'", NULL, out, sizeof(out));
	CHECK(rc == 128 + 15, "killed child: %d", rc);
	rc = run("wrap -t job -- /nonexistent/command", NULL, out, sizeof(out));
	CHECK(rc == 127 && strstr(out, "cannot run"), "missing command: %d '%s'", rc, out);
	rc = run("wrap -- true", NULL, out, sizeof(out));
	CHECK(rc == 2, "wrap without -t: %d", rc);
	rs = drain();
	CHECK_EQ(rs.n, 4);
	{
		int out1 = 0, err1 = 0, partial = 0, shown = 0;
		for (size_t i = 0; i < rs.n; i++) {
			CHECK(!strcmp(rs.v[i].service, "job"), "service");
			if (!strcmp(rs.v[i].msg, "out1"))
				out1 = rs.v[i].severity == 9;
			if (!strcmp(rs.v[i].msg, "err1"))
				err1 = rs.v[i].severity == 17;
			if (!strcmp(rs.v[i].msg, "partial"))
				partial = rs.v[i].severity == 9;
			if (!strcmp(rs.v[i].msg, "shown"))
				shown = 1;
		}
		CHECK(out1 && err1 && partial && shown, "wrap records %d %d %d %d", out1, err1, partial,
		      shown);
	}
	t_recs_free(&rs);
	printf("ok - wrap\n");

	/* stat: the writers and their drops. */
	rc = run("log -p 0 never", NULL, out, sizeof(out));
	CHECK(rc == 2, "level 0 refused by the tool: %d", rc);
	rc = run("stat", NULL, out, sizeof(out));
	CHECK(rc == 0 && strstr(out, "consumer   none") && strstr(out, "written"), "stat: %s", out);
	rc = run("stat --json", NULL, out, sizeof(out));
	CHECK(rc == 0 && strstr(out, "\"written\":10,") && strstr(out, "\"consumed\":10,") &&
		      strstr(out, "\"dropped\":0,"),
	      "stat --json: %s", out);
	printf("ok - stat\n");

	rc = run("ring remove", NULL, out, sizeof(out));
	CHECK(rc == 0 && stat(ring, &st) < 0, "ring remove: %s", out);
	printf("ok - ring remove\n");
	return 0;
}
