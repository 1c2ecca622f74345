/* SPDX-License-Identifier: MIT */
/*
 * bench_spool.c - `ringtail bench spool`: sustained throughput from the ring
 * to durable segments.
 *
 * The spooler engine (the code ringtaild runs) works on one core; a writer
 * thread on the other core writes records as fast as the ring takes them.
 * Records are either synthetic messages of --size bytes or the lines of the
 * log files in --corpus DIR. Beside the figures, in the same run, the same
 * bytes are compressed by liblz4 at level 1 with the lz4 command's frame
 * settings on one core: its speed and ratio are the baseline.
 */
#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <lz4frame.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "cli.h"
#include "rtspool.h"

struct shared {
	const struct bench_input *in;
	volatile int stop;
	volatile int go;
	uint64_t written;
	uint64_t bytes;
	uint64_t retries;
};

static void pin(int cpu)
{
	cpu_set_t set;
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	CPU_ZERO(&set);
	CPU_SET(cpu % (int)(n > 0 ? n : 1), &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void *writer(void *arg)
{
	struct shared *sh = arg;
	const struct bench_input *in = sh->in;
	size_t i = 0;

	pin(1);
	rt_set_service("bench");
	while (!sh->go)
		sched_yield();
	while (!sh->stop) {
		const char *m = in->text + in->off[i];
		int r = rt_write(RT_INFO, m, in->llen[i]);
		if (r == 0) {
			/* Only this thread writes these; the main thread reads
			 * them after stop (a relaxed store is enough). */
			__atomic_store_n(&sh->written, sh->written + 1, __ATOMIC_RELAXED);
			__atomic_store_n(&sh->bytes, sh->bytes + in->llen[i], __ATOMIC_RELAXED);
			if (++i == in->nlines)
				i = 0;
		} else {
			sh->retries++;
			sched_yield(); /* full: the spooler is behind; try again */
		}
	}
	return NULL;
}

/* lz4 -1 on the same bytes: the frame settings of the lz4 command (4 MiB
 * independent blocks, content checksum), level 1, one core. */
static void lz4_baseline(const struct bench_input *in, double *mbps, double *ratio)
{
	LZ4F_preferences_t p;
	size_t cap, out = 0;
	double best = 0;
	char *dst;

	memset(&p, 0, sizeof(p));
	p.frameInfo.blockSizeID = LZ4F_max4MB;
	p.frameInfo.blockMode = LZ4F_blockIndependent;
	p.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
	p.compressionLevel = 1;
	cap = LZ4F_compressFrameBound(in->len, &p);
	dst = malloc(cap);
	if (!dst) {
		*mbps = *ratio = 0;
		return;
	}
	for (int r = 0; r < 5; r++) {
		uint64_t t0 = bench_now_ns();
		out = LZ4F_compressFrame(dst, cap, in->text, in->len, &p);
		double s = (double)(bench_now_ns() - t0) / 1e9, v = (double)in->len / 1e6 / s;
		if (v > best)
			best = v;
	}
	free(dst);
	*mbps = best;
	*ratio = LZ4F_isError(out) ? 0 : (double)in->len / (double)out;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void remove_spool(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	char path[4400];

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) < 0)
			rmdir(path);
	}
	closedir(d);
	rmdir(dir);
}

static const char usage[] =
	"usage: ringtail bench spool [--size BYTES | --corpus DIR] [--seconds N] [--rounds N]\n"
	"                            [--dir DIR] [--fsync block|none] [--json]\n"
	"Records/s and MB/s from the ring to durable segments, the spooler on one core\n"
	"and a writer on the other, beside lz4 -1 compressing the same bytes. Default:\n"
	"100-byte synthetic records, 3 s per round, 3 rounds, the spool in /var/tmp.\n";

int bench_spool(int argc, char **argv)
{
	static const struct option opts[] = {
		{"size", required_argument, NULL, 's'},   {"corpus", required_argument, NULL, 'c'},
		{"seconds", required_argument, NULL, 'S'}, {"rounds", required_argument, NULL, 'R'},
		{"dir", required_argument, NULL, 'd'},    {"fsync", required_argument, NULL, 'f'},
		{"json", no_argument, NULL, 'j'},         {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct bench_input in;
	uint64_t size = 100, secs = 3, rounds = 3, v;
	const char *corpus = NULL, *base = "/var/tmp";
	int json = 0, c, fsync_mode = RT_FSYNC_BLOCK, ret = 1;
	double rps[16], mbps[16], cratio[16], lz4_mbps, lz4_ratio;
	char ring[128];

	memset(&in, 0, sizeof(in));
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (rt_parse_size(optarg, &size) || size == 0 || size > 60000)
				goto bad;
			break;
		case 'c':
			corpus = optarg;
			break;
		case 'S':
			if (rt_parse_u64(optarg, &secs) || secs == 0 || secs > 600)
				goto bad;
			break;
		case 'R':
			if (rt_parse_u64(optarg, &rounds) || rounds == 0 || rounds > 16)
				goto bad;
			break;
		case 'd':
			base = optarg;
			break;
		case 'f':
			if (!strcmp(optarg, "none"))
				fsync_mode = RT_FSYNC_NONE;
			else if (strcmp(optarg, "block"))
				goto bad;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (corpus) {
		int err = bench_input_corpus(&in, corpus);
		if (err) {
			cli_err("%s: cannot read log files (%s)", corpus, strerror(-err));
			return 1;
		}
	} else if (bench_input_synthetic(&in, size)) {
		cli_err("out of memory");
		return 1;
	}
	pin(0);
	lz4_baseline(&in, &lz4_mbps, &lz4_ratio);
	if (!json)
		printf("bench spool: %s, %zu distinct records (%.1f MB), %" PRIu64 " s x %" PRIu64
		       " rounds, fsync %s\n"
		       "  baseline: lz4 -1 (liblz4 level 1, lz4's frame settings, one core) "
		       "%.0f MB/s, ratio %.2f\n",
		       corpus ? corpus : "synthetic records", in.nlines, (double)in.len / 1e6, secs,
		       rounds, fsync_mode == RT_FSYNC_BLOCK ? "after every write" : "none", lz4_mbps,
		       lz4_ratio);

	snprintf(ring, sizeof(ring), "/dev/shm/ringtail-bench-spool-%d", (int)getpid());
	setenv(RT_RING_ENV, ring, 1);
	for (v = 0; v < rounds; v++) {
		struct rt_spoold_config cfg;
		struct rt_spoold_stats st0, st1;
		struct rt_spoold *d;
		struct shared sh;
		pthread_t th;
		char dir[4096];
		uint64_t t0, t1, w0, b0, w1, b1, out0, out1;
		int err;

		snprintf(dir, sizeof(dir), "%s/ringtail-bench-spool-%d-%" PRIu64, base, (int)getpid(), v);
		remove_spool(dir);
		unlink(ring);
		rt_spoold_defaults(&cfg);
		cfg.ring_path = ring;
		cfg.ring_size = 256ull << 20;
		cfg.spool_dir = dir;
		cfg.host = "bench";
		cfg.fsync = fsync_mode;
		cfg.retain_bytes = UINT64_MAX;
		err = rt_spoold_start(&cfg, &d);
		if (err) {
			cli_err("cannot start the spooler in %s: %s", dir, strerror(-err));
			goto out;
		}
		memset(&sh, 0, sizeof(sh));
		sh.in = &in;
		pthread_create(&th, NULL, writer, &sh);
		sh.go = 1;
		/* Warm up a second, then measure. */
		t0 = bench_now_ns();
		while (bench_now_ns() - t0 < 1000000000ull)
			rt_spoold_step(d, 1);
		rt_spoold_get_stats(d, &st0);
		w0 = __atomic_load_n(&sh.written, __ATOMIC_RELAXED);
		b0 = __atomic_load_n(&sh.bytes, __ATOMIC_RELAXED);
		out0 = st0.bytes_out;
		t0 = bench_now_ns();
		while ((t1 = bench_now_ns()) - t0 < secs * 1000000000ull)
			rt_spoold_step(d, 1);
		rt_spoold_get_stats(d, &st1);
		w1 = __atomic_load_n(&sh.written, __ATOMIC_RELAXED);
		b1 = __atomic_load_n(&sh.bytes, __ATOMIC_RELAXED);
		out1 = st1.bytes_out;
		sh.stop = 1;
		pthread_join(th, NULL);
		rt_spoold_finish(d);
		{
			/* Durable records in the window; the input bytes of the
			 * records written in it stand for theirs (same mix). */
			double s = (double)(t1 - t0) / 1e9;
			double recs = (double)(st1.records - st0.records);
			double bpr = w1 > w0 ? (double)(b1 - b0) / (double)(w1 - w0) : 0;
			rps[v] = recs / s;
			mbps[v] = recs * bpr / 1e6 / s;
			cratio[v] = out1 > out0 ? recs * bpr / (double)(out1 - out0) : 0;
			if (!json)
				printf("  round %" PRIu64 ": %.2f M records/s, %.0f MB/s of input, "
				       "compression ratio %.2f, %" PRIu64 " syncs, %" PRIu64
				       " blocks, %" PRIu64 " segments\n",
				       v + 1, rps[v] / 1e6, mbps[v], cratio[v],
				       st1.syncs - st0.syncs, st1.blocks - st0.blocks,
				       st1.segments_made);
		}
		rt_spoold_free(d);
		/* Writers move to the next round's ring when this one is marked
		 * dead. */
		rt_ring_remove(ring);
		if (bench_segment_bytes(dir) == 0) {
			cli_err("nothing was written to %s", dir);
			goto out;
		}
		remove_spool(dir);
	}
	{
		double r = 0, m = 0, cr = 0;
		qsort(rps, rounds, sizeof(double), cmp_dbl);
		qsort(mbps, rounds, sizeof(double), cmp_dbl);
		qsort(cratio, rounds, sizeof(double), cmp_dbl);
		r = rps[rounds / 2];
		m = mbps[rounds / 2];
		cr = cratio[rounds / 2];
		if (!json)
			printf("median: %.2f M records/s, %.0f MB/s of input = %.0f%% of lz4 -1's "
			       "%.0f MB/s; compression ratio %.2f vs lz4 -1's %.2f (%.0f%%)\n",
			       r / 1e6, m, 100 * m / lz4_mbps, lz4_mbps, cr, lz4_ratio,
			       100 * cr / lz4_ratio);
		printf("{\"bench\":\"spool\",\"input\":\"%s\",\"record_bytes\":%.1f,"
		       "\"records_per_s\":%.0f,\"mb_per_s\":%.1f,\"lz4_mb_per_s\":%.1f,"
		       "\"ratio\":%.3f,\"compression_ratio\":%.3f,\"lz4_compression_ratio\":%.3f,"
		       "\"fsync\":\"%s\"}\n",
		       corpus ? "corpus" : "synthetic", r > 0 ? m * 1e6 / r : 0, r, m, lz4_mbps,
		       m / lz4_mbps, cr, lz4_ratio, fsync_mode == RT_FSYNC_BLOCK ? "block" : "none");
	}
	ret = 0;
out:
	unlink(ring);
	bench_input_free(&in);
	return ret;
bad:
	fputs(usage, stderr);
	return 2;
}
