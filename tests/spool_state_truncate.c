/* SPDX-License-Identifier: MIT */
/*
 * spool_state_truncate - a shared state file cut short under its readers
 * never raises SIGBUS in them.
 *
 *   spool_state_truncate inproc
 *     SPOOL/state and SPOOL/forward mapped through rt_map_state_file(): a
 *     file shorter than its struct is refused (-EBADMSG) before mapping;
 *     one cut to 0 bytes after mapping makes rt_state_read() and
 *     rt_shared_snapshot() fail with -EFAULT, in this process, no signal;
 *     grown again, they read it again. A SIGBUS from anywhere else still
 *     does what it did: kills, or goes to the program's own handler.
 *   spool_state_truncate stat RINGTAILD RINGTAIL
 *     the real ringtaild forwarding (to nobody) made SPOOL/forward; another
 *     process cuts it to 0 bytes and restores it, over and over, while
 *     `ringtail stat` runs 200 times: every run exits 0; with the file left
 *     at 0 bytes, stat still exits 0 and shows no forwarding line.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "helpers.h"
#include "rtcentral.h"
#include "rtspool.h"

static char spool[256], ring[256];

/* Under a sanitizer its own SIGBUS handler (there before ours) reports
 * the fault and exits instead of the default action: the same outcome. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static volatile sig_atomic_t own_handler_ran;
static void own_handler(int sig)
{
	(void)sig;
	own_handler_ran = 1;
	_exit(42);
}

/* In a child: touch a page past the end of a file outside any guard. */
static int touch_cut_mapping(int with_own_handler, int by_kill)
{
	pid_t p;

	fflush(stdout);
	p = fork();
	CHECK(p >= 0, "fork");
	if (p == 0) {
		char path[300];
		struct rt_spool_state st;
		volatile const char *m;
		int fd;
		if (with_own_handler)
			signal(SIGBUS, own_handler);
		snprintf(path, sizeof(path), "%s/touch", spool);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || ftruncate(fd, 4096) < 0)
			_exit(2);
		m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED)
			_exit(3);
		/* The guard is installed (a guarded read), then the fault
		 * comes from elsewhere. */
		(void)rt_state_read((const void *)m, &st);
		if (ftruncate(fd, 0) < 0)
			_exit(4);
		if (by_kill)
			kill(getpid(), SIGBUS);
		else
			(void)m[100];
		_exit(0);
	}
	return t_wait(p);
}

static void inproc(void)
{
	struct rt_spool *sp;
	struct rt_spool_state st;
	struct rt_forward_state fw;
	void *m;
	int fd;

	CHECK_EQ(rt_spool_open(spool, "trunc-host", RT_SPOOL_CREATE | RT_SPOOL_LOCK, &sp), 0);
	sp->state->durable_seq = 42;
	/* A reader of SPOOL/state, as the filesystem is. */
	CHECK_EQ(rt_map_state_file(sp->dirfd, "state", sizeof(st), 0, &m), 0);
	CHECK_EQ(rt_state_read(m, &st), 0);
	CHECK_EQ(st.durable_seq, 42);
	fd = openat(sp->dirfd, "state", O_RDWR);
	CHECK(fd >= 0 && ftruncate(fd, 0) == 0, "truncate state");
	CHECK_EQ(rt_state_read(m, &st), -EFAULT);
	printf("ok - SPOOL/state cut to 0 bytes under a mapping: rt_state_read() says -EFAULT, no "
	       "SIGBUS\n");
	{
		void *m2 = NULL;
		CHECK_EQ(rt_map_state_file(sp->dirfd, "state", sizeof(st), 0, &m2), -EBADMSG);
		CHECK(ftruncate(fd, 100) == 0, "truncate");
		CHECK_EQ(rt_map_state_file(sp->dirfd, "state", sizeof(st), 0, &m2), -EBADMSG);
	}
	printf("ok - a state file shorter than its struct is refused before mapping (-EBADMSG)\n");
	CHECK(ftruncate(fd, sizeof(st)) == 0, "grow");
	CHECK_EQ(rt_state_read(m, &st), 0);
	CHECK_EQ(st.durable_seq, 0); /* the bytes came back as zeros */
	printf("ok - grown again, the same mapping reads again\n");
	close(fd);
	munmap(m, sizeof(st));

	/* SPOOL/forward, the way `ringtail stat` reads it. */
	CHECK_EQ(rt_map_state_file(sp->dirfd, "forward", sizeof(fw), 1, &m), 0);
	memcpy(((struct rt_forward_state *)m)->magic, RT_FWD_MAGIC, 8);
	munmap(m, sizeof(fw));
	CHECK_EQ(rt_map_state_file(sp->dirfd, "forward", sizeof(fw), 0, &m), 0);
	CHECK_EQ(rt_shared_snapshot(m, &fw, offsetof(struct rt_forward_state, pad),
				    offsetof(struct rt_forward_state, gen)),
		 0);
	CHECK(!memcmp(fw.magic, RT_FWD_MAGIC, 8), "magic");
	fd = openat(sp->dirfd, "forward", O_RDWR);
	CHECK(fd >= 0 && ftruncate(fd, 0) == 0, "truncate forward");
	CHECK_EQ(rt_shared_snapshot(m, &fw, offsetof(struct rt_forward_state, pad),
				    offsetof(struct rt_forward_state, gen)),
		 -EFAULT);
	close(fd);
	munmap(m, sizeof(fw));
	printf("ok - SPOOL/forward cut to 0 bytes under a mapping: rt_shared_snapshot() says "
	       "-EFAULT, no SIGBUS\n");
	/* A writer does not write through a file that is not its own alone. */
	CHECK(linkat(sp->dirfd, "forward", sp->dirfd, "forward.link", 0) == 0, "link");
	CHECK_EQ(rt_map_state_file(sp->dirfd, "forward", sizeof(fw), 1, &m), -EPERM);
	CHECK(symlinkat("forward", sp->dirfd, "forward.sym") == 0, "symlink");
	CHECK_EQ(rt_map_state_file(sp->dirfd, "forward.sym", sizeof(fw), 0, &m), -ELOOP);
	printf("ok - a state file with another link is not written through (-EPERM); a symbolic link "
	       "is not followed (-ELOOP)\n");
	rt_spool_close(sp);

	/* The guard is for its own copies only. */
	for (int by_kill = 0; by_kill < 2; by_kill++) {
		int status = touch_cut_mapping(0, by_kill);
		CHECK(status == 128 + SIGBUS || (SANITIZED && status != 0 && status != 42),
		      "%s SIGBUS outside the guard: status %d, want killed", by_kill ? "a sent" : "a",
		      status);
	}
	CHECK_EQ(touch_cut_mapping(1, 0), 42);
	printf("ok - a SIGBUS outside the guarded copies still kills (a fault, or kill -BUS), and a "
	       "handler the program had installed still gets it\n");
}

static int stat_run(const char *tool, char *out, size_t n)
{
	char cmd[600];
	FILE *f;
	size_t got;
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' stat --ring '%s' 2>&1", tool, ring);
	f = popen(cmd, "r");
	CHECK(f != NULL, "popen");
	got = fread(out, 1, n - 1, f);
	out[got] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void stat_case(const char *ringtaild, const char *tool)
{
	char path[400], out[16384];
	uint8_t keep[4096];
	uint64_t deadline = t_now_ns() + 20ull * 1000000000;
	int fd, with = 0, without = 0;
	pid_t d, cutter;

	snprintf(path, sizeof(path), "%s/forward", spool);
	fflush(stdout);
	d = fork();
	CHECK(d >= 0, "fork");
	if (d == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(devnull, STDERR_FILENO);
		/* Port 9 (discard) on loopback: nobody answers, it retries. */
		execl(ringtaild, "ringtaild", "--ring", ring, "--spool", spool, "--upstream",
		      "127.0.0.1:9", "-q", (char *)NULL);
		_exit(127);
	}
	while (access(path, F_OK) != 0) {
		CHECK(t_now_ns() < deadline, "ringtaild made no SPOOL/forward");
		CHECK(waitpid(d, NULL, WNOHANG) == 0, "ringtaild exited");
		t_pause();
	}
	/* Its owner is done with it; a reader is what is tested here. */
	kill(d, SIGTERM);
	CHECK_EQ(t_wait(d), 0);
	CHECK(stat_run(tool, out, sizeof(out)) == 0 && strstr(out, "forwarding to 127.0.0.1:9"),
	      "stat before: %s", out);
	fd = open(path, O_RDWR);
	CHECK(fd >= 0 && pread(fd, keep, sizeof(keep), 0) == (ssize_t)sizeof(keep), "read forward");

	fflush(stdout);
	cutter = fork();
	CHECK(cutter >= 0, "fork");
	if (cutter == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;) {
			if (ftruncate(fd, 0) < 0 || pwrite(fd, keep, sizeof(keep), 0) < 0)
				_exit(1);
		}
	}
	for (int i = 0; i < 100; i++) {
		int rc = stat_run(tool, out, sizeof(out));
		CHECK(rc == 0, "ringtail stat exited %d while SPOOL/forward was being cut:\n%s", rc, out);
		if (strstr(out, "forwarding to"))
			with++;
		else
			without++;
	}
	kill(cutter, SIGKILL);
	t_wait(cutter);
	printf("ok - 100 runs of ringtail stat while another process cut SPOOL/forward to 0 bytes "
	       "and back: all exited 0 (%d showed forwarding, %d found the file short)\n",
	       with, without);
	CHECK(ftruncate(fd, 0) == 0, "truncate");
	close(fd);
	CHECK(stat_run(tool, out, sizeof(out)) == 0, "stat with SPOOL/forward at 0 bytes:\n%s", out);
	CHECK(!strstr(out, "forwarding to"), "a forwarding line from an empty file:\n%s", out);
	printf("ok - with SPOOL/forward at 0 bytes ringtail stat exits 0 and shows no forwarding\n");
}

int main(int argc, char **argv)
{
	char cmd[600];

	CHECK(argc >= 2, "usage: spool_state_truncate inproc | stat RINGTAILD RINGTAIL");
	snprintf(spool, sizeof(spool), "/dev/shm/rt-test-trunc-%d", (int)getpid());
	snprintf(ring, sizeof(ring), "/dev/shm/rt-test-trunc-ring-%d", (int)getpid());
	if (!strcmp(argv[1], "inproc")) {
		inproc();
	} else {
		CHECK(!strcmp(argv[1], "stat") && argc == 4, "usage");
		stat_case(argv[2], argv[3]);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", spool);
	CHECK(system(cmd) == 0, "cleanup");
	unlink(ring);
	return 0;
}
