/* SPDX-License-Identifier: MIT */
/*
 * forward_names - names from the network cost nothing on disk. A hostile
 * process says HELLO with --hellos (4,100) invented host names, 16
 * connections at a time, while five real hosts forward; one case per run:
 *
 *   strangers   the central has --auth-key; the invented hosts cannot prove
 *               it (an AUTH with a tag of random bytes)
 *   key_holder  the invented hosts hold the key: every handshake succeeds,
 *               and each goes away without a batch
 *   keyless     no key (loopback): every handshake succeeds, as above
 *
 * Checked: the central directory's size and its number of entries are what
 * they were before the flood but for the five real hosts (nothing is made
 * for a host before its first batch is stored); every real host is there
 * with all its records, exactly once; refusals are counted in the log, not
 * written one by one (at most a burst of lines, then a summary).
 *
 *   forward_names RINGTAILD RINGTAIL CASE [--hellos N]
 */
#include <ftw.h>
#include <getopt.h>

#define SC_PROCS 5
#define SC_MAXREC 1000000u
#include "forward_check.h"
#include "forward_client.h"

static struct fc f;
static uint64_t du_bytes, du_entries;

static int du_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)path;
	(void)type;
	(void)ftw;
	du_bytes += (uint64_t)st->st_blocks * 512;
	du_entries++;
	return 0;
}

/* Bytes (allocated) and entries under @dir. */
static void du(const char *dir, uint64_t *bytes, uint64_t *entries)
{
	du_bytes = du_entries = 0;
	CHECK_EQ(nftw(dir, du_one, 16, FTW_PHYS), 0);
	*bytes = du_bytes;
	*entries = du_entries;
}

/* ... of the real hosts' directories on the central. */
static void real_hosts_du(uint64_t *bytes, uint64_t *entries)
{
	*bytes = *entries = 0;
	for (int h = 0; h < FC_HOSTS; h++) {
		char dir[300];
		uint64_t b, e;
		snprintf(dir, sizeof(dir), "%s/hosts/%s", f.central, f.host[h].name);
		if (access(dir, F_OK) == 0) {
			du(dir, &b, &e);
			*bytes += b;
			*entries += e;
		}
	}
}

/* The hostile process: @n HELLOs with invented names, @par at a time.
 * @mode 0: an AUTH with a random tag; 1: with the key; 2: keyless. */
static _Noreturn void hellos(int n, int par, int mode)
{
	const uint8_t k[] = "a-shared-secret-for-the-fleet";
	int done = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while (done < n) {
		struct cl c[16];
		int m = n - done < par ? n - done : par;
		for (int i = 0; i < m; i++) {
			char name[64];
			uint8_t epoch[16];
			CHECK(getrandom(epoch, sizeof(epoch), 0) == sizeof(epoch), "getrandom");
			char from[32];
			snprintf(name, sizeof(name), "invented-%d.example", done + i);
			/* An address of its own for each of the 16 (the real hosts
			 * are on 127.0.0.1). */
			snprintf(from, sizeof(from), "127.0.0.%d", 2 + i);
			cl_open(&c[i], from, "127.0.0.1", f.port);
			cl_hello(&c[i], name, epoch);
		}
		for (int i = 0; i < m; i++) {
			if (mode == 0) {
				struct rt_buf a = {0};
				uint8_t tag[RT_WIRE_TAG];
				uint16_t flags = RT_WF_TAG;
				cl_challenge(&c[i], NULL, 0);
				rt_wire_auth(&a);
				CHECK(getrandom(tag, sizeof(tag), 0) == sizeof(tag), "getrandom");
				memcpy(a.p + 6, &flags, 2);
				rt_buf_put(&a, tag, sizeof(tag));
				cl_send(c[i].fd, a.p, a.len);
				rt_buf_free(&a);
				cl_expect_error(&c[i], RT_WE_AUTH, "wrong proof", "an invented host");
			} else {
				struct rt_welcome wl;
				cl_challenge(&c[i], mode == 1 ? k : NULL, mode == 1 ? sizeof(k) - 1 : 0);
				cl_auth(&c[i]);
				CHECK(cl_read(&c[i]) == 0 && c[i].h.type == RT_W_WELCOME, "no WELCOME");
				CHECK_EQ(rt_wire_get_welcome(c[i].in.p, c[i].in.len, &wl), 0);
				CHECK(wl.durable_seq == 0, "an invented host holds records");
			}
			cl_close(&c[i]);
		}
		done += m;
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	static const char *const modes[] = {"strangers", "key_holder", "keyless"};
	static const struct option opts[] = {{"hellos", required_argument, NULL, 'n'},
					     {NULL, 0, NULL, 0}};
	struct sc_result loc, cen;
	const char *rings[FC_HOSTS];
	uint64_t b0, e0, b1, e1, rb, re, total = 0;
	int n = 4100, mode, opt, hosts = 0, lines;
	char dir[300];
	pid_t attacker;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1)
		if (opt == 'n')
			n = atoi(optarg);
	CHECK(optind + 3 == argc, "usage: forward_names RINGTAILD RINGTAIL CASE [--hellos N]");
	for (mode = 0; mode < 3 && strcmp(argv[optind + 2], modes[mode]); mode++)
		;
	CHECK(mode < 3, "no case '%s'", argv[optind + 2]);
	if (system("command -v lz4 >/dev/null") != 0) {
		printf("SKIP: lz4 is not installed\n");
		return T_SKIP;
	}
	fc_init(&f, "fwnames", argv[optind], argv[optind + 1], mode != 2);
	fc_start_central(&f);
	du(f.central, &b0, &e0);

	fflush(stdout);
	attacker = fork();
	CHECK(attacker >= 0, "fork");
	if (attacker == 0)
		hellos(n, 16, mode);
	/* Five real hosts, forwarding while it goes on. */
	for (int h = 0; h < FC_HOSTS; h++) {
		fc_start_sender(&f, h);
		rings[h] = f.host[h].ring;
	}
	sc_start_writers_into(20000, rings);
	{
		uint64_t t0 = t_now_ns();
		CHECK_EQ(t_wait(attacker), 0);
		printf("%s: %d handshakes with invented names in %.2f s\n", modes[mode], n,
		       (double)(t_now_ns() - t0) / 1e9);
	}
	sc_stop_writers();
	for (int h = 0; h < FC_HOSTS; h++)
		fc_wait_forwarded(&f, h, 60ull * 1000000000);
	for (int h = 0; h < FC_HOSTS; h++)
		fc_stop(f.host[h].pid);
	fc_stop(f.central_pid);

	du(f.central, &b1, &e1);
	real_hosts_du(&rb, &re);
	snprintf(dir, sizeof(dir), "%s/hosts", f.central);
	{
		DIR *d = opendir(dir);
		struct dirent *e;
		CHECK(d, "%s", dir);
		while ((e = readdir(d)))
			hosts += e->d_name[0] != '.';
		closedir(d);
	}
	printf("%s: %d HELLOs with invented names; the central grew by %lld bytes and %lld entries "
	       "beside the five real hosts' spools (%llu bytes, %llu entries)\n",
	       modes[mode], n, (long long)(b1 - b0 - rb), (long long)(e1 - e0 - re),
	       (unsigned long long)rb, (unsigned long long)re);
	CHECK(hosts == FC_HOSTS, "%d host directories on the central, %d real hosts", hosts,
	      FC_HOSTS);
	CHECK(b1 - b0 == rb && e1 - e0 == re,
	      "the invented hosts left %lld bytes and %lld entries on disk",
	      (long long)(b1 - b0 - rb), (long long)(e1 - e0 - re));
	for (int h = 0; h < FC_HOSTS; h++) {
		fc_check_host(&f, h, 1, &loc, &cen);
		CHECK(cen.taken == loc.taken, "%s: %llu at home, %llu on the central", f.host[h].name,
		      (unsigned long long)loc.taken, (unsigned long long)cen.taken);
		total += cen.taken;
	}
	if (mode == 0) {
		/* Counted, not written line by line. */
		lines = 0;
		{
			char line[2048];
			FILE *fp = fopen(f.log, "r");
			CHECK(fp, "log");
			while (fgets(line, sizeof(line), fp))
				lines += strstr(line, "invented-") != NULL;
			fclose(fp);
		}
		CHECK(lines < n / 10, "%d of %d refusals logged one by one", lines, n);
		CHECK(fc_file_has(f.log, "were refused"), "no count of the refusals in the log");
		printf("  %d refusals logged one by one, the rest counted\n", lines);
	}
	printf("ok - %s: %d invented hosts left nothing on disk (0 bytes, 0 entries); all 5 real "
	       "hosts are there with their %llu records, each once\n",
	       modes[mode], n, (unsigned long long)total);
	fc_cleanup(&f);
	return 0;
}
