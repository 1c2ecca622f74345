/* SPDX-License-Identifier: MIT */
/*
 * forward_identity - who may send for which host. Two machines (a ring, a
 * spool, writers and a real ringtaild --upstream each) and a central; one
 * case per run (CASE):
 *
 *   pose_as_keyed_host  web01 has a key of its own on the central
 *                       (--host-keys); a second machine holding the shared
 *                       key says --host web01: refused, and the central's
 *                       web01 holds web01's records only
 *   new_epoch_shared    web02 has no key of its own; a second machine with
 *                       the shared key says --host web02 (another spool, so
 *                       another epoch): refused with ERROR 8 and a log line
 *                       saying what to do; one epoch, web02's own records
 *   new_epoch_own_key   web01's spool is made anew (a new epoch): with its
 *                       own key it is taken, beside the first; the primary
 *                       file still names the first epoch
 *   keyless_new_epoch   no keys (loopback): a second epoch of a host is
 *                       refused the same way
 *   bad_key_file        web05's key file on the central may be read by
 *                       others: web05 is refused (never let in with the
 *                       shared key instead), said at start and at each try
 *   host_keys_only      --host-keys and no shared key: a host without a
 *                       file of its own is refused
 *
 * In every case CENTRAL/hosts/HOST/primary names the host's first epoch,
 * 32 hex digits and a newline, and no host shows records of two machines
 * under one epoch.
 *
 *   forward_identity RINGTAILD RINGTAIL CASE
 */
#define SC_PROCS 2
#define SC_MAXREC 2000000u
#include "forward_check.h"

static struct fc f;
static char keys[200], key_web01[300], key_other[300];

static void wait_log(const char *file, const char *s, const char *what)
{
	for (uint64_t deadline = t_now_ns() + 30ull * 1000000000; !fc_file_has(file, s);) {
		CHECK(t_now_ns() < deadline, "%s: %s does not say '%s'", what, file, s);
		t_pause();
	}
	printf("  %s: \"%s\"\n", what, s);
}

static void epoch_of(const char *spool, char hex[33])
{
	struct rt_spool *sp;

	CHECK_EQ(rt_spool_open(spool, NULL, 0, &sp), 0);
	rt_epoch_hex(sp->epoch, hex);
	rt_spool_close(sp);
}

/* CENTRAL/hosts/@host/primary says @hex. */
static void check_primary(const char *host, const char *hex)
{
	char path[400], buf[64] = "";
	FILE *fp;

	snprintf(path, sizeof(path), "%s/hosts/%s/primary", f.central, host);
	fp = fopen(path, "r");
	CHECK(fp, "no %s", path);
	CHECK(fgets(buf, sizeof(buf), fp), "empty %s", path);
	fclose(fp);
	CHECK(strlen(buf) == 33 && buf[32] == '\n' && !strncmp(buf, hex, 32),
	      "%s says '%s', expected %s", path, buf, hex);
}

/* Epoch directories of @host on the central. */
static int epochs(const char *host)
{
	char dir[300];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(dir, sizeof(dir), "%s/hosts/%s", f.central, host);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((e = readdir(d)))
		n += strlen(e->d_name) == 32;
	closedir(d);
	return n;
}

/* Host 0 forwards; host 1 (the second machine) tries and is refused with
 * @why (central) and @said (its own log). Then host 0's records, and only
 * its, are on the central, once. */
static void second_machine_refused(const char *why, const char *said)
{
	struct sc_result loc, cen;
	const char *rings[2] = {f.host[0].ring, f.host[1].ring};
	char hex[33];

	fc_start_sender(&f, 0);
	sc_start_writers_into(3000, rings);
	for (uint64_t deadline = t_now_ns() + 60ull * 1000000000; fc_central_durable(&f, 0) < 1000;) {
		CHECK(t_now_ns() < deadline, "%s never reached the central", f.host[0].name);
		t_pause();
	}
	fc_start_sender(&f, 1);
	wait_log(f.log, why, "the central");
	wait_log(f.host[1].log, said, "the second machine");
	sc_stop_writers();
	fc_wait_forwarded(&f, 0, 60ull * 1000000000);
	fc_stop(f.host[0].pid);
	fc_stop(f.host[1].pid);
	fc_stop(f.central_pid);
	CHECK(epochs(f.host[0].name) == 1, "%d epochs of %s", epochs(f.host[0].name),
	      f.host[0].name);
	epoch_of(f.host[0].spool, hex);
	check_primary(f.host[0].name, hex);
	/* Only writer 0's records under the name (sc_record checks each). */
	fc_check_host(&f, 0, 1, &loc, &cen);
	CHECK(cen.taken == loc.taken, "%llu at home, %llu on the central",
	      (unsigned long long)loc.taken, (unsigned long long)cen.taken);
	CHECK(fc_durable(f.host[1].spool) > 0, "the second machine wrote nothing");
	printf("  %s on the central: %llu records, all the first machine's, one epoch (%s, the "
	       "primary); the second machine's %llu records refused\n",
	       f.host[0].name, (unsigned long long)cen.taken, hex,
	       (unsigned long long)fc_durable(f.host[1].spool));
}

static void case_pose_as_keyed_host(void)
{
	f.host[0].key = key_web01;
	snprintf(f.host[0].name, sizeof(f.host[0].name), "web01");
	snprintf(f.host[1].name, sizeof(f.host[1].name), "web01");
	f.central_args[0] = "--host-keys";
	f.central_args[1] = keys;
	fc_start_central(&f);
	second_machine_refused("wrong proof of the key (this host has a key of its own",
			       "refused: wrong proof of the key (this host has a key of its own");
}

static void case_new_epoch_shared(void)
{
	snprintf(f.host[0].name, sizeof(f.host[0].name), "web02");
	snprintf(f.host[1].name, sizeof(f.host[1].name), "web02");
	f.central_args[0] = "--host-keys";
	f.central_args[1] = keys;
	fc_start_central(&f);
	second_machine_refused("give web02 a key of its own",
			       "refused: this server holds another spool epoch of host web02");
}

static void case_keyless_new_epoch(void)
{
	snprintf(f.host[0].name, sizeof(f.host[0].name), "web04");
	snprintf(f.host[1].name, sizeof(f.host[1].name), "web04");
	f.use_key = 0;
	fc_start_central(&f);
	second_machine_refused("without a key (loopback)) has a new spool epoch",
			       "refused: this server holds another spool epoch of host web04");
}

static void case_new_epoch_own_key(void)
{
	const char *rings[2] = {f.host[0].ring, f.host[1].ring};
	char e1[33], e2[33], path[600];

	f.host[0].key = key_web01;
	snprintf(f.host[0].name, sizeof(f.host[0].name), "web01");
	f.central_args[0] = "--host-keys";
	f.central_args[1] = keys;
	fc_start_central(&f);
	fc_start_sender(&f, 0);
	sc_start_writers_into(3000, rings);
	for (uint64_t deadline = t_now_ns() + 60ull * 1000000000; fc_central_durable(&f, 0) < 1000;) {
		CHECK(t_now_ns() < deadline, "web01 never reached the central");
		t_pause();
	}
	sc_stop_writers();
	fc_wait_forwarded(&f, 0, 60ull * 1000000000);
	fc_stop(f.host[0].pid);
	epoch_of(f.host[0].spool, e1);
	check_primary("web01", e1);
	/* The machine is set up anew: a new spool, a new epoch. */
	sc_rm_rf(f.host[0].spool);
	fc_start_sender(&f, 0);
	sc_start_writers_into(3000, rings);
	for (uint64_t deadline = t_now_ns() + 60ull * 1000000000; epochs("web01") < 2;) {
		CHECK(t_now_ns() < deadline, "the new epoch of web01 never reached the central");
		t_pause();
	}
	sc_stop_writers();
	epoch_of(f.host[0].spool, e2);
	CHECK(strcmp(e1, e2), "the spool made anew has the old epoch");
	snprintf(path, sizeof(path), "%s/hosts/web01/%s", f.central, e2);
	for (uint64_t deadline = t_now_ns() + 60ull * 1000000000;
	     fc_durable(path) < fc_durable(f.host[0].spool);) {
		CHECK(t_now_ns() < deadline, "the new epoch was not all forwarded");
		t_pause();
	}
	fc_stop(f.host[0].pid);
	fc_stop(f.central_pid);
	check_primary("web01", e1);
	CHECK(epochs("web01") == 2, "%d epochs", epochs("web01"));
	for (int i = 0; i < 2; i++) {
		char cmd[800];
		snprintf(cmd, sizeof(cmd), "'%s' verify '%s/hosts/web01/%s' >/dev/null", f.tool,
			 f.central, i ? e2 : e1);
		CHECK(system(cmd) == 0, "verify of epoch %s", i ? e2 : e1);
	}
	printf("  web01 with its own key: a second epoch %s taken beside %s (the primary), %llu "
	       "records in it, both verify clean\n",
	       e2, e1, (unsigned long long)fc_durable(path));
}

static void case_bad_key_file(void)
{
	char path[300];
	pid_t d;

	snprintf(path, sizeof(path), "%s/web05", keys);
	fc_write_key(path, "a-key-others-may-read-here\n");
	CHECK_EQ(chmod(path, 0644), 0);
	snprintf(f.host[0].name, sizeof(f.host[0].name), "web05");
	f.central_args[0] = "--host-keys";
	f.central_args[1] = keys;
	fc_start_central(&f);
	wait_log(f.log, "web05: group or others may read or write it (chmod 600); host web05 is "
			"refused until it is fixed",
		 "the central, at start");
	fc_start_sender(&f, 0); /* with the shared key */
	wait_log(f.log, "the key of host web05 in", "the central, at the try");
	wait_log(f.host[0].log, "refused: this server cannot use its key for host web05",
		 "the sender");
	d = f.host[0].pid;
	fc_stop(d);
	fc_stop(f.central_pid);
	CHECK(epochs("web05") == 0, "web05 got in");
}

static void case_host_keys_only(void)
{
	f.use_key = 0;
	f.host[0].key = key_other;
	snprintf(f.host[0].name, sizeof(f.host[0].name), "web06");
	f.central_args[0] = "--host-keys";
	f.central_args[1] = keys;
	fc_start_central(&f);
	wait_log(f.log, "no shared --auth-key: only hosts with a key in", "the central, at start");
	fc_start_sender(&f, 0);
	wait_log(f.host[0].log, "refused: host web06 has no key on this server", "the sender");
	fc_stop(f.host[0].pid);
	fc_stop(f.central_pid);
	CHECK(epochs("web06") == 0, "web06 got in");
}

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
	{"pose_as_keyed_host", case_pose_as_keyed_host},
	{"new_epoch_shared", case_new_epoch_shared},
	{"new_epoch_own_key", case_new_epoch_own_key},
	{"keyless_new_epoch", case_keyless_new_epoch},
	{"bad_key_file", case_bad_key_file},
	{"host_keys_only", case_host_keys_only},
};

int main(int argc, char **argv)
{
	size_t i;

	CHECK(argc == 4, "usage: forward_identity RINGTAILD RINGTAIL CASE");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]) && strcmp(argv[3], cases[i].name); i++)
		;
	CHECK(i < sizeof(cases) / sizeof(cases[0]), "no case '%s'", argv[3]);
	if (system("command -v lz4 >/dev/null") != 0) {
		printf("SKIP: lz4 is not installed\n");
		return T_SKIP;
	}
	fc_init(&f, "fwident", argv[1], argv[2], 1);
	snprintf(keys, sizeof(keys), "%s/host-keys", f.dir);
	CHECK_EQ(mkdir(keys, 0700), 0);
	snprintf(key_web01, sizeof(key_web01), "%s/web01", keys);
	fc_write_key(key_web01, "web01's-very-own-secret\n");
	snprintf(key_other, sizeof(key_other), "%s/other-key", f.dir);
	fc_write_key(key_other, "a-key-no-central-has\n");
	for (int h = 0; h < FC_HOSTS; h++)
		snprintf(f.host[h].log, sizeof(f.host[h].log), "%s/machine%d.log", f.dir, h);
	printf("%s:\n", cases[i].name);
	cases[i].fn();
	printf("ok - %s\n", cases[i].name);
	fc_cleanup(&f);
	return 0;
}
