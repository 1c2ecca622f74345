/* SPDX-License-Identifier: MIT */
/*
 * spool_symlink - a spool that another user could write to is refused, and
 * no path in a spool is ever followed through a link, with a real attacker:
 * a process of an unprivileged user (uid 65534, `nobody`) plants the links,
 * then the real ringtaild runs as root. A victim directory outside the spool
 * (root's, with one file) must come out exactly as it was.
 *
 *   spool_symlink RINGTAILD CASE
 *
 * CASE:
 *  world_writable   spool 0777; the attacker plants quarantine/ -> victim
 *                   and a damaged segment: refused
 *  group_writable   spool 0770 with group nobody: refused
 *  other_owner      spool owned by the attacker (0755): refused
 *  quarantine_link  spool safe (root 0750) but quarantine/ is a link the
 *                   attacker planted earlier, and a damaged segment waits for
 *                   quarantine: refused, nothing renamed or created there
 *  state_link, lock_link, meta_link
 *                   the same for SPOOL/state, lock, spool.meta: refused
 *  segment_link     a segment name is a link to a victim file: the link
 *                   itself goes to quarantine/, the daemon runs
 *  central_writable ringtaild --listen on a central directory of 0777: refused
 *  central_hosts_link  CENTRAL/hosts is a link: refused
 *  central_host_link   CENTRAL/hosts/HOST is a link to the victim: opening
 *                   that host's spool (rt_spool_openat, as the central does
 *                   for a sender) is refused with -ELOOP
 */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>

#include "spool_check.h"

#define ATTACKER 65534

static char victim[256], spool[256], ring[256];
static const char *ringtaild;

/* Run @fn in a process of the attacker's uid and gid. */
static void as_attacker(void (*fn)(void))
{
	pid_t p;

	fflush(stdout);
	p = fork();
	CHECK(p >= 0, "fork");
	if (p == 0) {
		if (setgroups(0, NULL) < 0 || setresgid(ATTACKER, ATTACKER, ATTACKER) < 0 ||
		    setresuid(ATTACKER, ATTACKER, ATTACKER) < 0)
			_exit(3);
		if (geteuid() != ATTACKER)
			_exit(4);
		fn();
		_exit(0);
	}
	CHECK_EQ(t_wait(p), 0);
}

static void plant(const char *target, const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", spool, name);
	CHECK(symlink(target, path) == 0, "symlink %s: %s", path, strerror(errno));
}

static void plant_damaged_segment(void)
{
	char path[512];
	int fd;
	snprintf(path, sizeof(path), "%s/00000000000000000000.lz4", spool);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0666);
	CHECK(fd >= 0 && write(fd, "attacker bytes, not a segment\n", 30) == 30, "write");
	close(fd);
}

/* What the issue found: quarantine/ a link to the victim, and a segment
 * whose damage sends it there. */
static void plant_all(void)
{
	plant(victim, "quarantine");
	plant_damaged_segment();
}

static const char *link_name, *link_target;
static void plant_one_link(void)
{
	plant(link_target, link_name);
}

static void set_link(const char *name, int to_dir)
{
	static char file[512];
	snprintf(file, sizeof(file), "%s/precious", victim);
	link_name = name;
	link_target = to_dir ? victim : file;
}

/* Run ringtaild on the spool (or with --listen @listen) with stderr into a
 * file; with @until_started, stop it with SIGTERM once it says it started.
 * @return its exit status; its stderr in @out. */
static int daemon_run(const char *listen, int until_started, char *out, size_t n)
{
	char logf[300];
	uint64_t deadline = t_now_ns() + 30ull * 1000000000;
	int st = -1, fd, stopped = 0;
	ssize_t got;
	pid_t p;

	snprintf(logf, sizeof(logf), "%s.log", spool);
	fflush(stdout);
	p = fork();
	CHECK(p >= 0, "fork");
	if (p == 0) {
		int lf = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(lf, STDERR_FILENO);
		if (listen)
			execl(ringtaild, "ringtaild", "--listen", listen, "--spool", spool, (char *)NULL);
		else
			execl(ringtaild, "ringtaild", "--ring", ring, "--spool", spool, (char *)NULL);
		_exit(127);
	}
	for (;;) {
		pid_t w = waitpid(p, &st, WNOHANG);
		if (w == p)
			break;
		if (until_started && !stopped) {
			fd = open(logf, O_RDONLY);
			got = fd >= 0 ? read(fd, out, n - 1) : 0;
			if (fd >= 0)
				close(fd);
			out[got > 0 ? got : 0] = '\0';
			if (strstr(out, "ringtaild started") || strstr(out, "listening on")) {
				kill(p, SIGTERM);
				stopped = 1;
			}
		}
		if (t_now_ns() > deadline) {
			kill(p, SIGKILL);
			waitpid(p, &st, 0);
			CHECK(0, "ringtaild neither stopped nor started in 30 s");
		}
		t_pause();
	}
	fd = open(logf, O_RDONLY);
	got = fd >= 0 ? read(fd, out, n - 1) : 0;
	if (fd >= 0)
		close(fd);
	out[got > 0 ? got : 0] = '\0';
	unlink(logf);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The victim directory holds exactly its one file, as it was. */
static void victim_untouched(void)
{
	char path[512], buf[64];
	struct dirent *de;
	struct stat st;
	DIR *d = opendir(victim);
	int n = 0, fd;

	CHECK(d != NULL, "victim directory gone");
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			CHECK(!strcmp(de->d_name, "precious"), "%s appeared in the victim directory",
			      de->d_name);
			n++;
		}
	closedir(d);
	CHECK(n == 1, "the victim file is gone");
	snprintf(path, sizeof(path), "%s/precious", victim);
	fd = open(path, O_RDONLY);
	CHECK(fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 10 && read(fd, buf, 10) == 10 &&
		      !memcmp(buf, "untouched\n", 10) && st.st_uid == 0,
	      "the victim file changed");
	close(fd);
}

static void expect_refused(int rc, const char *out, const char *want)
{
	CHECK(rc == 1, "ringtaild exited %d, want 1 (refused); it said:\n%s", rc, out);
	CHECK(strstr(out, want), "ringtaild did not say \"%s\"; it said:\n%s", want, out);
	victim_untouched();
}

int main(int argc, char **argv)
{
	char out[8192], path[512];
	const char *c;
	int rc, fd;

	CHECK(argc == 3, "usage: spool_symlink RINGTAILD CASE");
	ringtaild = argv[1];
	c = argv[2];
	if (geteuid() != 0) {
		printf("SKIP: needs root, to run ringtaild as root against a spool another user "
		       "(uid %d) wrote links into\n",
		       ATTACKER);
		return T_SKIP;
	}
	snprintf(victim, sizeof(victim), "/var/tmp/rt-test-victim-%d", (int)getpid());
	snprintf(spool, sizeof(spool), "/var/tmp/rt-test-symspool-%d", (int)getpid());
	snprintf(ring, sizeof(ring), "/dev/shm/rt-test-symring-%d", (int)getpid());
	CHECK(mkdir(victim, 0755) == 0 && chmod(victim, 0755) == 0, "mkdir victim");
	snprintf(path, sizeof(path), "%s/precious", victim);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	CHECK(fd >= 0 && write(fd, "untouched\n", 10) == 10, "victim file");
	close(fd);
	CHECK(mkdir(spool, 0750) == 0, "mkdir spool");

	if (!strcmp(c, "world_writable")) {
		CHECK(chmod(spool, 0777) == 0, "chmod");
		as_attacker(plant_all);
		rc = daemon_run(NULL, 0, out, sizeof(out));
		expect_refused(rc, out, "is writable by everyone (mode 0777)");
	} else if (!strcmp(c, "group_writable")) {
		CHECK(chown(spool, 0, ATTACKER) == 0 && chmod(spool, 0770) == 0, "chmod");
		as_attacker(plant_all);
		rc = daemon_run(NULL, 0, out, sizeof(out));
		expect_refused(rc, out, "is writable by its group (mode 0770)");
	} else if (!strcmp(c, "other_owner")) {
		CHECK(chown(spool, ATTACKER, ATTACKER) == 0 && chmod(spool, 0755) == 0, "chown");
		as_attacker(plant_all);
		rc = daemon_run(NULL, 0, out, sizeof(out));
		expect_refused(rc, out, "is owned by uid 65534");
	} else if (!strcmp(c, "quarantine_link")) {
		/* A spool made by ringtaild, with a segment that needs the
		 * quarantine; then the attacker had a moment of access. */
		rc = daemon_run(NULL, 1, out, sizeof(out));
		CHECK(rc == 0, "a first run failed (%d):\n%s", rc, out);
		snprintf(path, sizeof(path), "%s/quarantine", spool);
		CHECK(rmdir(path) == 0, "rmdir quarantine");
		CHECK(chmod(spool, 0777) == 0, "chmod");
		set_link("quarantine", 1);
		as_attacker(plant_one_link);
		as_attacker(plant_damaged_segment);
		CHECK(chmod(spool, 0750) == 0, "chmod back");
		rc = daemon_run(NULL, 0, out, sizeof(out));
		expect_refused(rc, out, "quarantine is a symbolic link: not followed");
	} else if (!strcmp(c, "state_link") || !strcmp(c, "lock_link") || !strcmp(c, "meta_link")) {
		const char *name = !strcmp(c, "state_link") ? "state"
				   : !strcmp(c, "lock_link") ? "lock"
							     : "spool.meta";
		char want[128];
		rc = daemon_run(NULL, 1, out, sizeof(out));
		CHECK(rc == 0, "a first run failed (%d):\n%s", rc, out);
		snprintf(path, sizeof(path), "%s/%s", spool, name);
		CHECK(unlink(path) == 0, "unlink %s", path);
		CHECK(chmod(spool, 0777) == 0, "chmod");
		set_link(name, 0);
		as_attacker(plant_one_link);
		CHECK(chmod(spool, 0750) == 0, "chmod back");
		rc = daemon_run(NULL, 0, out, sizeof(out));
		snprintf(want, sizeof(want), "/%s is a symbolic link: not followed", name);
		expect_refused(rc, out, want);
	} else if (!strcmp(c, "segment_link")) {
		struct stat st;
		rc = daemon_run(NULL, 1, out, sizeof(out));
		CHECK(rc == 0, "a first run failed (%d):\n%s", rc, out);
		CHECK(chmod(spool, 0777) == 0, "chmod");
		set_link("00000000000000000000.lz4", 0);
		as_attacker(plant_one_link);
		CHECK(chmod(spool, 0750) == 0, "chmod back");
		rc = daemon_run(NULL, 1, out, sizeof(out));
		CHECK(rc == 0, "ringtaild did not run past the planted link (%d):\n%s", rc, out);
		CHECK(strstr(out, "00000000000000000000.lz4 in the spool is not a regular file (a "
				  "symbolic link); moved to quarantine/"),
		      "not reported:\n%s", out);
		snprintf(path, sizeof(path), "%s/quarantine/00000000000000000000.lz4", spool);
		CHECK(lstat(path, &st) == 0 && S_ISLNK(st.st_mode), "the link itself is not in quarantine");
		victim_untouched();
	} else if (!strcmp(c, "central_writable")) {
		CHECK(chmod(spool, 0777) == 0, "chmod");
		rc = daemon_run("127.0.0.1:0", 0, out, sizeof(out));
		expect_refused(rc, out, "is writable by everyone (mode 0777)");
	} else if (!strcmp(c, "central_hosts_link")) {
		CHECK(chmod(spool, 0777) == 0, "chmod");
		set_link("hosts", 1);
		as_attacker(plant_one_link);
		CHECK(chmod(spool, 0750) == 0, "chmod back");
		rc = daemon_run("127.0.0.1:0", 0, out, sizeof(out));
		CHECK(rc == 1, "ringtaild --listen exited %d, want 1:\n%s", rc, out);
		victim_untouched();
	} else if (!strcmp(c, "central_host_link")) {
		struct rt_spool *sp = NULL;
		uint8_t epoch[16];
		int hfd;
		snprintf(path, sizeof(path), "%s/hosts", spool);
		CHECK(chmod(spool, 0755) == 0 && mkdir(path, 0750) == 0, "mkdir hosts");
		CHECK(chmod(path, 0777) == 0, "chmod");
		set_link("hosts/web01", 1);
		as_attacker(plant_one_link);
		snprintf(path, sizeof(path), "%s/hosts", spool);
		CHECK(chmod(path, 0750) == 0, "chmod back");
		hfd = open(path, O_RDONLY | O_DIRECTORY);
		CHECK(hfd >= 0, "open hosts");
		memset(epoch, 0xab, sizeof(epoch));
		rc = rt_spool_openat(hfd, "web01/abababababababababababababababab", "web01", epoch,
				     RT_SPOOL_CREATE | RT_SPOOL_LOCK, &sp);
		CHECK(rc == -ELOOP, "opening hosts/web01/EPOCH through a link: %d (%s)", rc,
		      rt_spool_why(rc));
		CHECK(strstr(rt_spool_why(rc), "web01 is a symbolic link: not followed"), "why: %s",
		      rt_spool_why(rc));
		close(hfd);
		victim_untouched();
	} else {
		CHECK(0, "unknown case %s", c);
	}
	printf("ok - %s: %s\n", c,
	       !strcmp(c, "segment_link") ? "the planted link went to quarantine unfollowed"
					  : "refused with a clear error, the victim untouched");
	sc_rm_rf(spool);
	sc_rm_rf(victim);
	unlink(ring);
	return 0;
}
