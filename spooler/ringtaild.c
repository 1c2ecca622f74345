/* SPDX-License-Identifier: MIT */
/*
 * ringtaild.c - the spooler daemon: runs in the foreground with no
 * configuration; drains the ring into the spool until SIGTERM or SIGINT,
 * then drains what the ring holds and exits. SIGHUP is logged and changes
 * nothing. Its own messages go straight into the spool as service
 * "ringtaild" (a name no writer may use), and to stderr (all of them, or
 * with -q warnings and errors only); the central server (--listen) has no
 * spool of its own and uses stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ringtail.h"
#include "rtcentral.h"
#include "rtspool.h"
#include "rtwire.h"

static volatile sig_atomic_t stop, hup;
static int quiet;
/* The running spooler, for messages of other threads (the forwarder). */
static struct rt_spoold *volatile cur;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_hup(int sig)
{
	(void)sig;
	hup = 1;
}

/* The engine stores its own messages in the spool itself (rt_spoold_own):
 * this only shows them on stderr. */
static void log_cb(void *arg, int sev, const char *msg)
{
	(void)arg;
	/* Connection threads log too: one fprintf each, nothing shared. */
	if (sev >= RT_WARN || !quiet)
		fprintf(stderr, "ringtaild: %s\n", msg);
}

/* The forwarder's messages: into the spool too. */
static void fw_log_cb(void *arg, int sev, const char *msg)
{
	rt_spoold_own(cur, sev, msg);
	log_cb(arg, sev, msg);
}

static const char *default_spool(char *buf, size_t n)
{
	const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

	if (geteuid() == 0)
		return "/var/lib/ringtail";
	if (x && *x)
		snprintf(buf, n, "%s/ringtail", x);
	else if (home && *home)
		snprintf(buf, n, "%s/.local/state/ringtail", home);
	else
		return "/var/lib/ringtail";
	return buf;
}

static const char usage[] =
	"usage: ringtaild [OPTIONS]\n"
	"Drains the shared-memory ring into a spool of sequenced LZ4 segment files.\n"
	"Runs in the foreground; SIGTERM or SIGINT drain the ring and exit; SIGHUP\n"
	"is logged and otherwise ignored (there is no configuration to reload).\n"
	"A ring that is unusable at start (bad header, cut short) is replaced by a\n"
	"new one, with a record saying so; one cut short while running is the same,\n"
	"after what was taken from it is written.\n"
	"\n"
	"  --ring PATH            the ring (default $RINGTAIL_RING or /dev/shm/ringtail);\n"
	"                         made if missing\n"
	"  --ring-size BYTES      size of a ring it makes (default 64M)\n"
	"  --ring-group GROUP     group of a ring it makes (mode 0660)\n"
	"  --spool DIR            the spool (default /var/lib/ringtail for root, else\n"
	"                         $XDG_STATE_HOME/ringtail or ~/.local/state/ringtail);\n"
	"                         refused if another user owns it or may write to it\n"
	"  --host NAME            host name recorded in a new spool (default: hostname):\n"
	"                         1-255 of A-Z a-z 0-9 . _ -, not starting with . or -\n"
	"  --segment-size BYTES   start a new segment past this size (default 64M)\n"
	"  --segment-age DURATION ... or this age (default 1h)\n"
	"  --retain-bytes BYTES   remove the oldest segments past this total (default 4G)\n"
	"  --retain-age DURATION  ... or past this age (default: no limit)\n"
	"  --block-size BYTES     largest block, before compression (default 4M)\n"
	"  --commit-window DURATION  longest a record waits before it is written\n"
	"                         (default 2ms); writes are group commits\n"
	"  --fsync block|none     fdatasync after each write (default), or never\n"
	"  -q, --quiet            only warnings and errors on stderr\n"
	"\n"
	"Forwarding (docs/protocol.md):\n"
	"  --upstream HOST:PORT   also forward the spool, as it grows, to a central ringtaild\n"
	"  --retain-hard-bytes BYTES  segments not yet forwarded are removed only past\n"
	"                         this (default: twice --retain-bytes), then with a record\n"
	"                         of exactly which records were given up\n"
	"  --listen ADDR:PORT     be the central server instead: receive forwarding hosts\n"
	"                         into --spool DIR (one spool per host and epoch); no ring;\n"
	"                         port 0: any free port\n"
	"  --auth-key FILE        a secret (16+ bytes, mode 0600, ours) both ends prove they\n"
	"                         hold; every frame is then authenticated with keys drawn\n"
	"                         from it. On a sender, its key (shared or its own); on the\n"
	"                         server, the key of hosts without one in --host-keys.\n"
	"                         No key at all: the server takes loopback connections only\n"
	"  --host-keys DIR        server: a key file per host name; such a host must prove\n"
	"                         its own key (the shared one will not do), and only its own\n"
	"                         key may bring the server a new spool epoch of that host\n"
	"  --port-file FILE       server: write the port listened on to FILE once listening\n"
	"  --max-conns N          server: authenticated connections at once (default 256);\n"
	"                         N/4 more may be in their handshake, 8 of them per address\n"
	"  --handshake-timeout DURATION  server: the whole handshake, and a message once\n"
	"                         begun, must be done within this (default 10s) ...\n"
	"  --min-rate BYTES       ... a message also at this rate per second (default 16K)\n"
	"DURATION: a number with ns, us, ms, s, m, h or d. BYTES: with K, M, G or T.\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"ring", required_argument, NULL, 'r'},
		{"ring-size", required_argument, NULL, 'S'},
		{"ring-group", required_argument, NULL, 'G'},
		{"spool", required_argument, NULL, 's'},
		{"host", required_argument, NULL, 'H'},
		{"segment-size", required_argument, NULL, 'z'},
		{"segment-age", required_argument, NULL, 'a'},
		{"retain-bytes", required_argument, NULL, 'b'},
		{"retain-age", required_argument, NULL, 'A'},
		{"block-size", required_argument, NULL, 'k'},
		{"commit-window", required_argument, NULL, 'w'},
		{"fsync", required_argument, NULL, 'f'},
		{"upstream", required_argument, NULL, 'u'},
		{"listen", required_argument, NULL, 'l'},
		{"auth-key", required_argument, NULL, 'K'},
		{"retain-hard-bytes", required_argument, NULL, 'B'},
		{"host-keys", required_argument, NULL, 'D'},
		{"port-file", required_argument, NULL, 'P'},
		{"max-conns", required_argument, NULL, 'M'},
		{"handshake-timeout", required_argument, NULL, 'T'},
		{"min-rate", required_argument, NULL, 'R'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct rt_spoold_config cfg;
	struct rt_forwarder *fw = NULL;
	const char *upstream = NULL, *listen_addr = NULL, *key_file = NULL;
	const char *host_keys = NULL, *port_file = NULL;
	uint64_t max_conns = 0, handshake_ns = 0, min_rate = 0;
	struct rt_spoold *d;
	struct rt_spoold_stats st;
	struct sigaction sa;
	char spoolbuf[4096];
	int c, err;

	rt_spoold_defaults(&cfg);
	cfg.spool_dir = default_spool(spoolbuf, sizeof(spoolbuf));
	int li = 0;
	while ((c = getopt_long(argc, argv, "qh", opts, &li)) != -1) {
		err = 0;
		switch (c) {
		case 'r':
			cfg.ring_path = optarg;
			break;
		case 'S':
			err = rt_parse_size(optarg, &cfg.ring_size);
			break;
		case 'G': {
			struct group *g = getgrnam(optarg);
			if (!g) {
				fprintf(stderr, "ringtaild: unknown group '%s'\n", optarg);
				return 2;
			}
			cfg.ring_gid = (int)g->gr_gid;
			break;
		}
		case 's':
			cfg.spool_dir = optarg;
			break;
		case 'H':
			cfg.host = optarg;
			if (!rt_wire_host_ok(optarg)) {
				fprintf(stderr, "ringtaild: bad host name '%s': 1 to 255 of A-Z a-z "
						"0-9 . _ -, not starting with . or -\n",
					optarg);
				return 2;
			}
			break;
		case 'z':
			err = rt_parse_size(optarg, &cfg.segment_bytes);
			break;
		case 'a':
			err = rt_parse_duration(optarg, &cfg.segment_age_ns);
			break;
		case 'b':
			err = rt_parse_size(optarg, &cfg.retain_bytes);
			break;
		case 'A':
			err = rt_parse_duration(optarg, &cfg.retain_age_ns);
			break;
		case 'k':
			err = rt_parse_size(optarg, &cfg.block_bytes);
			if (!err && (cfg.block_bytes < 4096 || cfg.block_bytes > (256u << 20)))
				err = -EINVAL;
			break;
		case 'w':
			err = rt_parse_duration(optarg, &cfg.commit_ns);
			break;
		case 'f':
			if (!strcmp(optarg, "block"))
				cfg.fsync = RT_FSYNC_BLOCK;
			else if (!strcmp(optarg, "none"))
				cfg.fsync = RT_FSYNC_NONE;
			else
				err = -EINVAL;
			break;
		case 'u':
			upstream = optarg;
			break;
		case 'l':
			listen_addr = optarg;
			break;
		case 'K':
			key_file = optarg;
			break;
		case 'B':
			err = rt_parse_size(optarg, &cfg.retain_hard_bytes);
			break;
		case 'D':
			host_keys = optarg;
			break;
		case 'P':
			port_file = optarg;
			break;
		case 'M':
			err = rt_parse_size(optarg, &max_conns);
			if (!err && (max_conns == 0 || max_conns > 65536))
				err = -EINVAL;
			break;
		case 'T':
			err = rt_parse_duration(optarg, &handshake_ns);
			if (!err && handshake_ns == 0)
				err = -EINVAL;
			break;
		case 'R':
			err = rt_parse_size(optarg, &min_rate);
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			printf("ringtaild %s\n", RINGTAIL_VERSION_STRING);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
		if (err) {
			fprintf(stderr, "ringtaild: bad value '%s' for --%s\n", optarg, opts[li].name);
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ringtaild: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (listen_addr && upstream) {
		fprintf(stderr, "ringtaild: --listen and --upstream cannot be used together\n");
		return 2;
	}
	if (!listen_addr && (host_keys || port_file || max_conns || handshake_ns || min_rate)) {
		fprintf(stderr, "ringtaild: --host-keys, --port-file, --max-conns, "
				"--handshake-timeout and --min-rate are for --listen\n");
		return 2;
	}
	cfg.log = log_cb;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (listen_addr) {
		struct rt_central_config cc;
		struct rt_central *central;
		rt_central_defaults(&cc);
		cc.listen = listen_addr;
		cc.dir = cfg.spool_dir;
		cc.key_file = key_file;
		cc.host_keys = host_keys;
		cc.port_file = port_file;
		if (max_conns)
			cc.max_conns = (unsigned)max_conns;
		if (handshake_ns)
			cc.handshake_ns = handshake_ns;
		if (min_rate)
			cc.min_rate = min_rate;
		cc.segment_bytes = cfg.segment_bytes;
		cc.segment_age_ns = cfg.segment_age_ns;
		cc.retain_bytes = cfg.retain_bytes;
		cc.retain_age_ns = cfg.retain_age_ns;
		cc.fsync = cfg.fsync;
		cc.log = log_cb;
		if (rt_central_start(&cc, &central))
			return 1;
		/* SIGHUP sets hup, which nothing here needs: it is ignored. */
		rt_central_run(central, &stop);
		rt_central_free(central);
		if (!quiet)
			fprintf(stderr, "ringtaild: stopped listening\n");
		return 0;
	}
	if (upstream && !cfg.retain_hard_bytes)
		cfg.retain_hard_bytes = cfg.retain_bytes > UINT64_MAX / 2 ? UINT64_MAX
									 : cfg.retain_bytes * 2;

start:
	err = rt_spoold_start(&cfg, &d);
	if (err)
		return 1;
	cur = d;
	if (upstream) {
		struct rt_forward_config fc;
		memset(&fc, 0, sizeof(fc));
		fc.upstream = upstream;
		fc.key_file = key_file;
		fc.log = fw_log_cb;
		err = rt_forward_start(&fc, rt_spoold_spool(d), rt_spoold_acked(d), &fw);
		if (err) {
			/* rt_forward_start() said why. */
			rt_spoold_free(d);
			return 1;
		}
	} else if (key_file) {
		fprintf(stderr, "ringtaild: --auth-key is for --upstream or --listen\n");
		rt_spoold_free(d);
		return 2;
	}
	while (!stop) {
		if (hup) {
			hup = 0;
			rt_spoold_own(d, RT_INFO, "SIGHUP: ignored (nothing to reload); SIGTERM or "
						  "SIGINT stop ringtaild");
			log_cb(NULL, RT_INFO, "SIGHUP: ignored (nothing to reload)");
		}
		err = rt_spoold_step(d, 5);
		if (err == -ESTALE) {
			rt_spoold_own(d, RT_ERROR,
				      "the ring file was cut short under ringtaild (by a member of "
				      "its group?): writing what was taken from it, then starting "
				      "again on a new ring");
			log_cb(NULL, RT_ERROR, "the ring file was cut short: starting again");
			err = rt_spoold_finish(d);
			rt_forward_stop(fw);
			fw = NULL;
			cur = NULL;
			rt_spoold_free(d);
			if (err)
				fprintf(stderr, "ringtaild: records taken from the cut ring could not "
						"all be written: %s\n",
					strerror(-err));
			goto start;
		}
		if (err < 0) {
			log_cb(NULL, RT_FATAL, "fatal error in the spooler; stopping");
			break;
		}
	}
	err = rt_spoold_finish(d);
	rt_forward_stop(fw);
	cur = NULL;
	rt_spoold_get_stats(d, &st);
	if (err) {
		fprintf(stderr, "ringtaild: stopping with records still in the ring: %s\n",
			strerror(-err));
	} else if (!quiet) {
		fprintf(stderr, "ringtaild: stopped; %" PRIu64 " records written, up to #%" PRIu64 "\n",
			st.records, st.durable_seq);
	}
	rt_spoold_free(d);
	return err ? 1 : 0;
}
