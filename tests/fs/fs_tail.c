/* SPDX-License-Identifier: MIT */
/*
 * fs_tail - following: a reader blocked in /tail/api gets a record written
 * after it started (and only api's) within 1 s; /tail/all gets every
 * service; poll() and select() wake up for a new record; O_NONBLOCK reads
 * say EAGAIN; a reader killed while it waits leaves the filesystem working;
 * GNU tail -f and tail -F on /by-service/api see a new record.
 *
 *   fs_tail RINGTAILD RINGTAILFS RINGTAIL
 */
#include <poll.h>
#include <pthread.h>
#include <sys/select.h>

#include "fs_helpers.h"

struct reader {
	const char *path;
	char buf[65536];
	size_t len;
	int ready;
	uint64_t got_ns;
	const char *want;
	pthread_mutex_t mu;
};

/* Read until the wanted text shows up. */
static void *reader(void *arg)
{
	struct reader *r = arg;
	int fd = open(r->path, O_RDONLY);

	CHECK(fd >= 0, "open %s: %s", r->path, strerror(errno));
	pthread_mutex_lock(&r->mu);
	r->ready = 1;
	pthread_mutex_unlock(&r->mu);
	for (;;) {
		ssize_t n = read(fd, r->buf + r->len, sizeof(r->buf) - 1 - r->len);
		CHECK(n > 0, "read %s: %zd %s", r->path, n, strerror(errno));
		pthread_mutex_lock(&r->mu);
		r->len += (size_t)n;
		r->buf[r->len] = '\0';
		if (strstr(r->buf, r->want)) {
			r->got_ns = t_now_ns();
			pthread_mutex_unlock(&r->mu);
			break;
		}
		pthread_mutex_unlock(&r->mu);
	}
	close(fd);
	return NULL;
}

static void wait_ready(struct reader *r)
{
	uint64_t deadline = t_now_ns() + 5ull * 1000000000;

	for (;;) {
		int ready;
		pthread_mutex_lock(&r->mu);
		ready = r->ready;
		pthread_mutex_unlock(&r->mu);
		if (ready)
			return;
		CHECK(t_now_ns() < deadline, "reader did not open");
		t_pause();
	}
}

static void say(const char *svc, const char *msg)
{
	struct rt_opts o;

	memset(&o, 0, sizeof(o));
	o.service = svc;
	CHECK_EQ(rt_writex(RT_INFO, &o, msg, strlen(msg)), 0);
}

/* Does process @pid have @path open? */
static int has_open(pid_t pid, const char *path)
{
	char dir[64], link[600], target[600];
	struct dirent *de;
	DIR *d;
	int found = 0;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	if (!d)
		return 0;
	while (!found && (de = readdir(d))) {
		ssize_t n;
		snprintf(link, sizeof(link), "%s/%s", dir, de->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			found = !strcmp(target, path);
		}
	}
	closedir(d);
	return found;
}

/* GNU tail -n 0 @mode on @path sees a record written once it is following. */
static void gnu_tail(const char *mode, const char *path, const char *line)
{
	char out[300];
	char *argv[] = {"tail", "-n", "0", (char *)mode, (char *)path, NULL};
	uint64_t deadline = t_now_ns() + 10ull * 1000000000;
	pid_t pid;

	snprintf(out, sizeof(out), "%s/tail%s.out", T.dir, mode);
	pid = t_spawn_v(argv, out);
	CHECK(pid > 0, "fork");
	while (!has_open(pid, path)) {
		CHECK(t_now_ns() < deadline, "tail %s did not open %s", mode, path);
		t_pause();
	}
	say("api", line);
	for (;;) {
		int err;
		struct t_text t = t_read_file_err(out, &err);
		int seen = !err && strstr(t.p, line);
		t_text_free(&t);
		if (seen)
			break;
		CHECK(t_now_ns() < deadline, "tail %s: '%s' not seen within 10 s", mode, line);
		t_pause();
	}
	kill(pid, SIGTERM);
	t_wait(pid);
}

static void on_usr1(int sig)
{
	(void)sig;
}

int main(int argc, char **argv)
{
	struct reader ra, rall;
	pthread_t th[2];
	uint64_t t0;
	int fd;

	t_setup("tail", argc, argv);
	t_start_daemon(NULL);
	say("api", "before anything follows");
	t_mount(NULL);
	t_wait_lines(t_path("by-service/api"), 1, 10);

	/* Blocking readers of /tail/api and /tail/all. */
	memset(&ra, 0, sizeof(ra));
	memset(&rall, 0, sizeof(rall));
	pthread_mutex_init(&ra.mu, NULL);
	pthread_mutex_init(&rall.mu, NULL);
	ra.path = t_path("tail/by-service/api");
	ra.want = "hello from api";
	rall.path = t_path("tail/all");
	rall.want = "hello from api";
	CHECK_EQ(pthread_create(&th[0], NULL, reader, &ra), 0);
	CHECK_EQ(pthread_create(&th[1], NULL, reader, &rall), 0);
	wait_ready(&ra);
	wait_ready(&rall);
	t0 = t_now_ns();
	say("auth", "hello from auth");
	say("api", "hello from api");
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
	CHECK(ra.got_ns - t0 < 1000000000ull, "/tail/api took %.3f s",
	      (double)(ra.got_ns - t0) / 1e9);
	CHECK(!strstr(ra.buf, "hello from auth") && !strstr(ra.buf, "before anything"),
	      "/tail/api got other lines: %s", ra.buf);
	CHECK(strstr(rall.buf, "hello from auth") && strstr(rall.buf, " auth[") &&
		      strstr(rall.buf, " api["),
	      "/tail/all: %s", rall.buf);
	printf("ok - /tail/api got the new record in %.1f ms; /tail/all got both\n",
	       (double)(ra.got_ns - t0) / 1e6);

	/* O_NONBLOCK, poll(), select(). */
	fd = open(t_path("tail/by-service/billing"), O_RDONLY | O_NONBLOCK);
	CHECK(fd >= 0, "open tail/billing: %s", strerror(errno));
	{
		char buf[4096];
		struct pollfd p = {fd, POLLIN, 0};
		fd_set rs;
		struct timeval tv = {5, 0};
		ssize_t n;

		CHECK(read(fd, buf, sizeof(buf)) < 0 && errno == EAGAIN, "nonblocking read: %s",
		      strerror(errno));
		CHECK_EQ(poll(&p, 1, 0), 0);
		say("billing", "charged 42");
		CHECK(poll(&p, 1, 5000) == 1 && (p.revents & POLLIN), "poll: %d", p.revents);
		n = read(fd, buf, sizeof(buf) - 1);
		CHECK(n > 0, "read after poll");
		buf[n] = '\0';
		CHECK(strstr(buf, "charged 42\n"), "got: %s", buf);
		CHECK(read(fd, buf, sizeof(buf)) < 0 && errno == EAGAIN, "again: EAGAIN");
		FD_ZERO(&rs);
		FD_SET(fd, &rs);
		say("billing", "charged 43");
		CHECK(select(fd + 1, &rs, NULL, NULL, &tv) == 1 && FD_ISSET(fd, &rs), "select");
		n = read(fd, buf, sizeof(buf) - 1);
		CHECK(n > 0, "read after select");
		buf[n] = '\0';
		CHECK(strstr(buf, "charged 43\n"), "got: %s", buf);
	}
	close(fd);
	printf("ok - O_NONBLOCK gives EAGAIN; poll() and select() wake for a new record\n");

	/* A reader killed while it waits. */
	{
		char *catv[] = {"cat", (char *)t_path("tail/by-service/api"), NULL};
		uint64_t deadline = t_now_ns() + 5ull * 1000000000;
		pid_t pid = t_spawn_v(catv, "/dev/null");
		while (!has_open(pid, t_path("tail/by-service/api"))) {
			CHECK(t_now_ns() < deadline, "cat did not open tail/api");
			t_pause();
		}
		kill(pid, SIGKILL);
		CHECK_EQ(t_wait(pid), 128 + SIGKILL);
		say("api", "after the kill");
		t_wait_lines(t_path("by-service/api"), 3, 10);
	}
	printf("ok - a reader killed while waiting: the filesystem carries on\n");

	/* Readers interrupted while they wait, while records arrive: the
	 * interrupt and the poller's reply race for the parked request (the
	 * interrupt function was registered after parking: the poller could
	 * reply to, and free, the request first). Each read ends with data
	 * or EINTR; ringtailfs lives (and under TSan reports nothing: its
	 * exit status is checked at the end). */
	{
		int got_data = 0, got_eintr = 0, st = 0;
		for (int i = 0; i < 200; i++) {
			int pfd[2];
			pid_t pid;
			char c;
			CHECK_EQ(pipe(pfd), 0);
			fflush(stdout);
			pid = fork();
			CHECK(pid >= 0, "fork");
			if (pid == 0) {
				struct sigaction sa;
				char b[4096];
				int fd2;
				ssize_t r;
				memset(&sa, 0, sizeof(sa));
				sa.sa_handler = on_usr1; /* no SA_RESTART: read says EINTR */
				sigaction(SIGUSR1, &sa, NULL);
				fd2 = open(t_path("tail/by-service/api"), O_RDONLY);
				if (fd2 < 0 || write(pfd[1], "o", 1) != 1)
					_exit(3);
				r = read(fd2, b, sizeof(b));
				_exit(r > 0 ? 0 : r < 0 && errno == EINTR ? 1 : 2);
			}
			close(pfd[1]);
			CHECK_EQ(read(pfd[0], &c, 1), 1);
			close(pfd[0]);
			if (i % 2)
				say("api", "racing the interrupt");
			/* Again until it ends: one may come before its read. */
			for (;;) {
				int ws;
				pid_t w;
				kill(pid, SIGUSR1);
				w = waitpid(pid, &ws, WNOHANG);
				CHECK(w >= 0, "waitpid");
				if (w == pid) {
					st = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
					break;
				}
				t_pause();
			}
			CHECK(st == 0 || st == 1, "interrupted reader %d: status %d", i, st);
			got_data += st == 0;
			got_eintr += st == 1;
		}
		CHECK(waitpid(T.fs, &st, WNOHANG) == 0, "ringtailfs died");
		CHECK(t_is_mounted(T.mnt), "the mount is gone");
		printf("ok - 200 readers of /tail/api interrupted while records arrive: %d got "
		       "data, %d EINTR, the filesystem carries on\n", got_data, got_eintr);
	}

	/* Names that do not exist, looked up under /tail/, take nothing
	 * lasting: 33,000 of them used to fill the service table, and a
	 * real service that came later was missing from /all, ENOENT in
	 * /by-service and ENOSPC in /tail. A /tail of it opened before it
	 * logs still gets its first record. */
	{
		struct t_text st0 = t_read_file(t_path("stats")), st1, all, one;
		const char *p0 = strstr(st0.p, "\nservices "), *p1;
		char rel[64], buf[4096];
		struct stat sb;
		int lfd;
		ssize_t r;
		for (int i = 0; i < 33000; i++) {
			snprintf(rel, sizeof(rel), "tail/by-service/nobody-%05d", i);
			CHECK(stat(t_path(rel), &sb) == 0, "stat %s: %s", rel, strerror(errno));
		}
		st1 = t_read_file(t_path("stats"));
		p1 = strstr(st1.p, "\nservices ");
		CHECK(p0 && p1 && strtoul(p0 + 10, NULL, 10) == strtoul(p1 + 10, NULL, 10),
		      "/stats services before %s, after %s", p0 ? p0 + 10 : "?", p1 ? p1 + 10 : "?");
		lfd = open(t_path("tail/by-service/late-comer"), O_RDONLY);
		CHECK(lfd >= 0, "open tail/late-comer: %s", strerror(errno));
		say("late-comer", "here at last");
		r = read(lfd, buf, sizeof(buf) - 1);
		CHECK(r > 0, "read tail/late-comer");
		buf[r] = '\0';
		CHECK(strstr(buf, "late-comer[") && strstr(buf, "here at last\n"),
		      "/tail/late-comer got: %s", buf);
		close(lfd);
		one = t_read_file(t_path("by-service/late-comer"));
		CHECK_EQ(t_count_lines(&one), 1);
		all = t_read_file(t_path("all"));
		CHECK(strstr(all.p, "here at last\n"), "/all lacks the late service");
		t_text_free(&st0);
		t_text_free(&st1);
		t_text_free(&one);
		t_text_free(&all);
	}
	printf("ok - 33,000 names looked up under /tail/: no service made; a service that logs "
	       "later is in /all, /by-service/NAME and /tail/NAME opened before it logged\n");

	/* GNU tail on a regular file. */
	gnu_tail("-f", t_path("by-service/api"), "seen by tail -f");
	gnu_tail("-F", t_path("by-service/api"), "seen by tail -F");
	printf("ok - tail -f and tail -F on /by-service/api follow new records\n");

	CHECK_EQ(t_unmount(), 0);
	return 0;
}
