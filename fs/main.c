/* SPDX-License-Identifier: MIT */
/*
 * main.c - ringtailfs SPOOL_DIR MOUNTPOINT [-f] [-o OPTIONS]: check the
 * spool, mount read-only with default_permissions, serve until unmounted.
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "live.h"
#include "ops.h"
#include "rtfs.h"

struct cfg {
	char *spool;
	char *mountpoint;
	int nonopt;
	char *cache;
	char *prefetch;
	char *readahead;
	int workers;
	unsigned poll_us;
	int scrub;
	unsigned max_read;
	int help;
	int version;
};

enum { KEY_HELP, KEY_VERSION, KEY_MAX_READ };

static const struct fuse_opt cfg_opts[] = {
	{"cache=%s", offsetof(struct cfg, cache), 0},
	{"prefetch=%s", offsetof(struct cfg, prefetch), 0},
	{"readahead=%s", offsetof(struct cfg, readahead), 0},
	{"workers=%d", offsetof(struct cfg, workers), 0},
	{"poll_us=%u", offsetof(struct cfg, poll_us), 0},
	{"scrub", offsetof(struct cfg, scrub), 1},
	FUSE_OPT_KEY("max_read=", KEY_MAX_READ),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END,
};

static const char usage[] =
	"usage: ringtailfs SPOOL_DIR MOUNTPOINT [-f] [-s] [-d] [-o OPTION[,OPTION...]]\n"
	"Shows a ringtail spool (or a central server's spools) as read-only text files:\n"
	"/by-service/NAME, /by-trace/ID, /tail/by-service/NAME, /errors, /by-day, /by-hour,\n"
	"/since/SEQ (services only ever under a by-service/ directory),\n"
	"/stats (docs/fs.md). Always read-only with default_permissions; files get the spool\n"
	"directory's owner, group and read permissions. Only the mounting user can read the\n"
	"mount unless -o allow_other (or allow_root) is given. A mount point that is\n"
	"already a ringtail mount is refused.\n"
	"\n"
	"  -f                 stay in the foreground\n"
	"  -s                 one thread\n"
	"  -d                 debug output (implies -f)\n"
	"  -o cache=SIZE      rendered text kept in memory (default 128M)\n"
	"  -o workers=N       threads rendering ahead of sequential readers (default: CPUs)\n"
	"  -o prefetch=SIZE   how far ahead they render (default 16M)\n"
	"  -o readahead=SIZE  the mount's kernel readahead, when run as root (default 4M;\n"
	"                     0 leaves the kernel's 128K)\n"
	"  -o max_read=N      largest read request (default 1048576)\n"
	"  -o poll_us=N       how often SPOOL/state is polled while a /tail file is open\n"
	"                     (default 1000)\n"
	"  -o scrub           check every block's checksum in the background (damage\n"
	"                     shows in /stats; otherwise it is found when read)\n"
	"  -o allow_other     let other users in (permissions still apply)\n"
	"  other -o options are libfuse's (ringtailfs -h lists them)\n";

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cfg *c = data;

	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (c->nonopt++ == 0) {
			c->spool = strdup(arg);
			return 0;
		}
		if (c->nonopt == 2)
			return 1; /* the mount point, for fuse_parse_cmdline() */
		fprintf(stderr, "ringtailfs: unexpected argument '%s'\n", arg);
		return -1;
	case KEY_MAX_READ:
		c->max_read = (unsigned)strtoul(arg + strlen("max_read="), NULL, 10);
		return 1;
	case KEY_HELP:
		c->help = 1;
		return 0;
	case KEY_VERSION:
		c->version = 1;
		return 0;
	default:
		return 1;
	}
}

static const char *why(int err)
{
	switch (err) {
	case -ENOENT:
		return "no such directory";
	case -ENOTDIR:
		return "not a directory";
	case -EACCES:
	case -EPERM:
		return "permission denied";
	case -EBADMSG:
		return "not a ringtail spool or central server directory (no usable spool.meta "
		       "or central.meta)";
	case -EPROTONOSUPPORT:
		return "a spool format this ringtailfs does not know";
	default:
		return strerror(-err);
	}
}

/* Is the last mount on @mnt (a real path) a ringtailfs? From
 * /proc/self/mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT ... - TYPE ...",
 * the mount point with octal escapes (\040 for a space). */
static int ringtail_mounted(const char *mnt)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int found = 0;

	if (!f)
		return 0;
	while (getline(&line, &cap, f) > 0) {
		char *mp, *sep, *w, *r;
		int pos = 0;
		if (sscanf(line, "%*u %*u %*u:%*u %*s %n", &pos) != 0 || !pos)
			continue;
		mp = line + pos;
		sep = strchr(mp, ' ');
		if (!sep)
			continue;
		*sep = '\0';
		for (w = r = mp; *r; r++) {
			if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' &&
			    r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
				*w++ = (char)((r[1] - '0') << 6 | (r[2] - '0') << 3 | (r[3] - '0'));
				r += 3;
			} else {
				*w++ = *r;
			}
		}
		*w = '\0';
		if (!strcmp(mp, mnt))
			found = strstr(sep + 1, " - fuse.ringtailfs ") != NULL;
	}
	free(line);
	fclose(f);
	return found;
}

static long ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 8 ? 8 : n;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts o;
	struct fuse_loop_config *lc = NULL;
	struct fuse_session *se = NULL;
	struct rtfs fs;
	struct cfg c;
	struct timespec now;
	struct stat st;
	uint64_t v;
	char buf[64];
	int err, rc = 1;

	memset(&fs, 0, sizeof(fs));
	memset(&c, 0, sizeof(c));
	memset(&o, 0, sizeof(o));
	c.workers = -1;
	if (fuse_opt_parse(&args, &c, cfg_opts, opt_proc) == -1)
		goto out;
	if (c.help) {
		fputs(usage, stdout);
		printf("\nlibfuse options:\n");
		fuse_cmdline_help();
		fuse_lowlevel_help();
		rc = 0;
		goto out;
	}
	if (c.version) {
		printf("ringtailfs %s (libfuse %s)\n", RTFS_VERSION, fuse_pkgversion());
		rc = 0;
		goto out;
	}
	if (!c.spool || c.nonopt < 2) {
		fputs(usage, stderr);
		rc = 2;
		goto out;
	}

	/* A central mount holds a directory and each segment of every host
	 * open: 10,000 hosts need more than 20,000 descriptors. Take all the
	 * hard limit allows (the soft limit is often 1,024). */
	{
		struct rlimit rl;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	/* Block-sized buffers (cache entries, decode scratch) are mapped and
	 * unmapped whole: with glibc's sliding threshold they came from
	 * per-thread arenas that kept what was freed (RSS 2x the cache). */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	fs.o.cache_bytes = 128ull << 20;
	fs.o.workers = c.workers >= 0 ? c.workers : (int)ncpus();
	fs.o.max_read = c.max_read ? c.max_read : 1u << 20;
	fs.o.prefetch_bytes = 16ull << 20;
	fs.o.poll_us = c.poll_us ? c.poll_us : 1000;
	fs.o.idle_poll_us = 10000;
	fs.o.readahead_kb = 4096;
	fs.o.scrub = c.scrub;
	fs.o.blksize = fs.o.max_read;
	if (c.cache && (rt_parse_size(c.cache, &v) || v < (1u << 20))) {
		fprintf(stderr, "ringtailfs: bad cache size '%s' (at least 1M)\n", c.cache);
		rc = 2;
		goto out;
	} else if (c.cache) {
		fs.o.cache_bytes = v;
	}
	if (c.prefetch && rt_parse_size(c.prefetch, &v)) {
		fprintf(stderr, "ringtailfs: bad prefetch size '%s'\n", c.prefetch);
		rc = 2;
		goto out;
	} else if (c.prefetch) {
		fs.o.prefetch_bytes = v;
	}
	if (c.readahead && (rt_parse_size(c.readahead, &v) || v > (1ull << 30))) {
		fprintf(stderr, "ringtailfs: bad readahead size '%s'\n", c.readahead);
		rc = 2;
		goto out;
	} else if (c.readahead) {
		fs.o.readahead_kb = (uint32_t)(v >> 10);
	}
	if (fs.o.max_read < 4096 || fs.o.max_read > (1u << 20)) {
		fprintf(stderr, "ringtailfs: max_read must be between 4096 and 1048576\n");
		rc = 2;
		goto out;
	}
	/* libfuse wants max_read both as a mount option and in init(). */
	if (!c.max_read) {
		snprintf(buf, sizeof(buf), "-omax_read=%u", fs.o.max_read);
		fuse_opt_add_arg(&args, buf);
	}
	/* Always read-only with the kernel checking permissions. */
	fuse_opt_add_arg(&args, "-oro,default_permissions,fsname=ringtail,subtype=ringtailfs");
	if (fuse_parse_cmdline(&args, &o) != 0)
		goto out;
	if (!o.mountpoint) {
		fputs(usage, stderr);
		rc = 2;
		goto out;
	}

	/* Never a second ringtailfs stacked on one. */
	{
		char *real = realpath(o.mountpoint, NULL);
		if (real && ringtail_mounted(real)) {
			fprintf(stderr,
				"ringtailfs: %s: already a ringtail mount (fusermount3 -u %s first)\n",
				o.mountpoint, o.mountpoint);
			free(real);
			goto out;
		}
		free(real);
	}
	/* The spool first: a clear error, never a mount that hangs. */
	if (stat(c.spool, &st) < 0) {
		fprintf(stderr, "ringtailfs: %s: %s\n", c.spool, why(-errno));
		goto out;
	}
	err = rtfs_model_open(c.spool, &fs.m);
	if (err) {
		fprintf(stderr, "ringtailfs: %s: %s\n", c.spool, why(err));
		goto out;
	}
	fs.uid = st.st_uid;
	fs.gid = st.st_gid;
	fs.dmode = st.st_mode & 0555;
	fs.fmode = st.st_mode & 0444;
	clock_gettime(CLOCK_REALTIME, &now);
	fs.start_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;

	se = fuse_session_new(&args, &rtfs_ops, sizeof(rtfs_ops), &fs);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	if (fuse_session_mount(se, o.mountpoint) != 0) {
		fuse_remove_signal_handlers(se);
		goto out;
	}
	fs.se = se;
	fuse_daemonize(o.foreground);
	/* Threads only now: fuse_daemonize() may have forked. */
	err = rtfs_setup(&fs);
	if (!err)
		err = rtfs_live_start(&fs, o.mountpoint);
	if (err) {
		fprintf(stderr, "ringtailfs: cannot start: %s\n", strerror(-err));
		fuse_session_unmount(se);
		fuse_remove_signal_handlers(se);
		goto out;
	}
	if (o.singlethread) {
		err = fuse_session_loop(se);
	} else {
		lc = fuse_loop_cfg_create();
		if (!lc) {
			err = -ENOMEM;
		} else {
			fuse_loop_cfg_set_clone_fd(lc, (unsigned)o.clone_fd);
			/* libfuse's own defaults unless given (-o max_threads=...). */
			if (o.max_idle_threads != UINT_MAX)
				fuse_loop_cfg_set_idle_threads(lc, o.max_idle_threads);
			if (o.max_threads && o.max_threads <= 100000)
				fuse_loop_cfg_set_max_threads(lc, o.max_threads);
			err = fuse_session_loop_mt(se, lc);
		}
	}
	rtfs_live_stop(&fs);
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
	rc = err < 0 ? 1 : 0; /* > 0: the signal that ended it */
out:
	if (se)
		fuse_session_destroy(se);
	fuse_loop_cfg_destroy(lc);
	rtfs_teardown(&fs);
	rtfs_model_thread_done();
	free(o.mountpoint);
	free(c.spool);
	free(c.cache);
	free(c.prefetch);
	free(c.readahead);
	fuse_opt_free_args(&args);
	return rc;
}
