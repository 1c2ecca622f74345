/* SPDX-License-Identifier: MIT */
/*
 * spool_state_truncate_fs - SPOOL/state cut short under a mounted ringtailfs
 * never kills it: another process cuts the file to 0 bytes and restores it,
 * over and over, while /stats and /all are read 100 times; ringtailfs stays
 * mounted and alive, every read returns, /all keeps every record; with the
 * file left at 0 bytes /all still holds them all; it unmounts and exits 0.
 *
 *   spool_state_truncate_fs RINGTAILD RINGTAILFS RINGTAIL
 */
#include <sys/prctl.h>

#include "fs/fs_helpers.h"

#define NREC 500

int main(int argc, char **argv)
{
	char state[300];
	uint8_t keep[4096];
	int fd, st, errs = 0;
	pid_t cutter;

	t_setup("trunc", argc, argv);
	t_start_daemon(NULL);
	rt_set_service("trunc-test");
	for (int i = 0; i < NREC; i++) {
		char m[64];
		int n = snprintf(m, sizeof(m), "record %d", i);
		CHECK_EQ(rt_write(RT_INFO, m, (size_t)n), 0);
	}
	t_mount(NULL);
	t_wait_lines(t_path("all"), NREC, 30);
	/* The spooler, the file's owner, is done; its readers are tested. */
	CHECK_EQ(t_stop_daemon(), 0);

	snprintf(state, sizeof(state), "%s/state", T.spool);
	fd = open(state, O_RDWR);
	CHECK(fd >= 0 && pread(fd, keep, sizeof(keep), 0) == (ssize_t)sizeof(keep), "read state");
	fflush(stdout);
	cutter = fork();
	CHECK(cutter >= 0, "fork");
	if (cutter == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			if (ftruncate(fd, 0) < 0 || pwrite(fd, keep, sizeof(keep), 0) < 0)
				_exit(1);
	}
	for (int i = 0; i < 100; i++) {
		int err;
		struct t_text t = t_read_file_err(t_path("stats"), &err);
		errs += err != 0;
		t_text_free(&t);
		t = t_read_file_err(t_path("all"), &err);
		errs += err != 0;
		CHECK(err || t_count_lines(&t) >= NREC, "/all lost records: %zu lines", t_count_lines(&t));
		t_text_free(&t);
		CHECK(waitpid(T.fs, &st, WNOHANG) == 0, "ringtailfs died (status %d) while SPOOL/state "
							"was being cut",
		      WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st));
		CHECK(t_is_mounted(T.mnt), "the mount is gone");
	}
	kill(cutter, SIGKILL);
	t_wait(cutter);
	printf("ok - 100 reads of /stats and /all while another process cut SPOOL/state to 0 bytes "
	       "and back: ringtailfs alive and mounted (%d reads returned an error)\n",
	       errs);
	CHECK(ftruncate(fd, 0) == 0, "truncate");
	close(fd);
	{
		struct t_text t = t_read_file(t_path("all"));
		struct t_text mine = t_filter(&t, t_keep_service, "trunc-test");
		CHECK(t_count_lines(&mine) == NREC,
		      "/all: %zu of our lines with SPOOL/state at 0 bytes, want %d",
		      t_count_lines(&mine), NREC);
		t_text_free(&mine);
		t_text_free(&t);
	}
	printf("ok - with SPOOL/state at 0 bytes /all still holds all %d records\n", NREC);
	st = t_unmount();
	CHECK(st == 0, "ringtailfs exited %d", st);
	printf("ok - ringtailfs unmounted and exited 0\n");
	return 0;
}
