/* SPDX-License-Identifier: MIT */
/* cmd_ring.c - `ringtail stat` and `ringtail ring create|remove`. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"
#include "rtcentral.h"
#include "rtshm.h"

static void fmt_bytes(char *buf, size_t n, uint64_t v)
{
	if (v >= (1ull << 30))
		snprintf(buf, n, "%.1f GiB", (double)v / (1ull << 30));
	else if (v >= (1ull << 20))
		snprintf(buf, n, "%.1f MiB", (double)v / (1ull << 20));
	else if (v >= (1ull << 10))
		snprintf(buf, n, "%.1f KiB", (double)v / (1ull << 10));
	else
		snprintf(buf, n, "%llu B", (unsigned long long)v);
}

static const char *state_name(uint32_t s)
{
	switch (s) {
	case RT__SLOT_CLAIMED:
		return "starting";
	case RT__SLOT_ACTIVE:
		return "active";
	case RT__SLOT_RETIRED:
		return "exited";
	default:
		return "free";
	}
}

struct wctx {
	int json;
	int n;
};

static int print_writer(const struct rt_writer_stat *w, void *arg)
{
	struct wctx *x = arg;
	uint64_t dropped = w->drop_full + w->drop_large + w->drop_inval + w->drop_noring;

	if (x->json) {
		printf("%s{\"slot\":%u,\"pid\":%u,\"tid\":%u,\"service\":\"%s\",\"state\":\"%s\","
		       "\"written\":%llu,\"queued\":%llu,\"chunks\":%llu,\"dropped\":%llu,"
		       "\"dropped_full\":%llu,\"dropped_full_warn\":%llu,\"dropped_large\":%llu,"
		       "\"dropped_invalid\":%llu,\"dropped_noring\":%llu}",
		       x->n ? "," : "", w->slot, w->pid, w->tid, w->service, state_name(w->state),
		       (unsigned long long)w->written, (unsigned long long)w->records_queued,
		       (unsigned long long)w->chunks_held, (unsigned long long)dropped,
		       (unsigned long long)w->drop_full, (unsigned long long)w->drop_full_warn,
		       (unsigned long long)w->drop_large, (unsigned long long)w->drop_inval,
		       (unsigned long long)w->drop_noring);
	} else {
		if (x->n == 0)
			printf("\n%-7s %-8s %-8s %-16s %-8s %12s %10s %10s  %s\n", "slot", "pid", "tid",
			       "service", "state", "written", "queued", "refused",
			       "(full/warn+/large/invalid/noring)");
		printf("%-7u %-8u %-8u %-16s %-8s %12llu %10llu %10llu  (%llu/%llu/%llu/%llu/%llu)\n",
		       w->slot, w->pid, w->tid, w->service, state_name(w->state),
		       (unsigned long long)w->written, (unsigned long long)w->records_queued,
		       (unsigned long long)dropped, (unsigned long long)w->drop_full,
		       (unsigned long long)w->drop_full_warn, (unsigned long long)w->drop_large,
		       (unsigned long long)w->drop_inval, (unsigned long long)w->drop_noring);
	}
	x->n++;
	return 0;
}

/* What SPOOL/forward says, if the spooler of @r forwards. 0 when it does.
 * The file is mapped only when whole and read without SIGBUS, whatever its
 * owner does to it meanwhile (rt_map_state_file, rt_shared_snapshot). */
static int forward_state(struct rt_ring *r, struct rt_forward_state *out)
{
	char dir[sizeof(rt_ring_header(r)->spool_dir) + 1];
	void *m;
	int dfd, err;

	/* A copy first: the ring's members can change it under us. */
	memcpy(dir, rt_ring_header(r)->spool_dir, sizeof(dir) - 1);
	dir[sizeof(dir) - 1] = '\0';
	if (!dir[0])
		return -ENOENT;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	err = rt_map_state_file(dfd, "forward", sizeof(*out), 0, &m);
	close(dfd);
	if (err)
		return err;
	memset(out, 0, sizeof(*out));
	err = rt_shared_snapshot(m, out, offsetof(struct rt_forward_state, pad),
				 offsetof(struct rt_forward_state, gen));
	munmap(m, sizeof(*out));
	if (!err && memcmp(out->magic, RT_FWD_MAGIC, 8))
		err = -EBADMSG;
	out->upstream[sizeof(out->upstream) - 1] = '\0';
	out->last_error[sizeof(out->last_error) - 1] = '\0';
	return err;
}

static const char stat_usage[] = "usage: ringtail stat [--ring PATH] [--json]\n";

int cmd_stat(int argc, char **argv)
{
	static const struct option opts[] = {
		{"ring", required_argument, NULL, 'r'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	struct rt_ring_stat st;
	struct rt_ring *r;
	struct wctx x = {0, 0};
	char b1[32], b2[32], b3[32];
	int c, err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			path = optarg;
			break;
		case 'j':
			x.json = 1;
			break;
		case 'h':
			fputs(stat_usage, stdout);
			return 0;
		default:
			fputs(stat_usage, stderr);
			return 2;
		}
	}
	if (!path)
		path = rt_ring_path_default();
	err = rt_ring_open(path, RT_RING_RDONLY, &r);
	if (err) {
		cli_err("%s: %s", path, err == -ENOENT ? "no ring (is ringtaild running?)"
							: rt_strerror(err));
		return 1;
	}
	rt_ring_stat(r, &st);
	if (x.json) {
		printf("{\"ring\":\"%s\",\"size\":%llu,\"chunk_size\":%u,\"chunks\":%u,"
		       "\"chunks_free\":%u,\"slots\":%u,\"writers\":%u,\"bytes_queued\":%llu,"
		       "\"records_queued\":%llu,\"written\":%llu,\"consumed\":%llu,\"refused\":%llu,"
		       "\"dropped\":%llu,\"dropped_noslot\":%llu,\"lost\":%llu,"
		       "\"malformed_bytes\":%llu,\"corrupt\":%llu,"
		       "\"consumer_pid\":%llu,\"consumer_alive\":%s,\"durable_seq\":%llu,"
		       "\"writer_list\":[",
		       path, (unsigned long long)st.size, st.chunk_size, st.nchunks, st.free_chunks,
		       st.nslots, st.writers, (unsigned long long)st.bytes_queued,
		       (unsigned long long)st.records_queued, (unsigned long long)st.written,
		       (unsigned long long)st.consumed, (unsigned long long)st.dropped,
		       (unsigned long long)st.dropped, (unsigned long long)st.dropped_noslot,
		       (unsigned long long)st.lost, (unsigned long long)st.corrupt,
		       (unsigned long long)st.corrupt, (unsigned long long)st.consumer_pid,
		       st.consumer_alive ? "true" : "false", (unsigned long long)st.durable_seq);
		rt_ring_writers(r, print_writer, &x);
		printf("]");
		{
			struct rt_forward_state fw;
			if (forward_state(r, &fw) == 0)
				printf(",\"forward\":{\"upstream\":\"%s\",\"connected\":%s,"
				       "\"acked_seq\":%llu,\"lag_records\":%llu,\"lag_bytes\":%llu,"
				       "\"last_contact_ns\":%llu,\"last_error\":\"%s\"}",
				       fw.upstream, fw.connected ? "true" : "false",
				       (unsigned long long)fw.acked_seq,
				       (unsigned long long)(st.durable_seq > fw.acked_seq
								    ? st.durable_seq - fw.acked_seq
								    : 0),
				       (unsigned long long)fw.lag_bytes,
				       (unsigned long long)fw.last_contact_ns, fw.last_error);
		}
		printf("}\n");
	} else {
		fmt_bytes(b1, sizeof(b1), st.size);
		fmt_bytes(b2, sizeof(b2), (uint64_t)(st.nchunks - st.free_chunks) * st.chunk_size);
		fmt_bytes(b3, sizeof(b3), st.bytes_queued);
		printf("ring       %s (%s, %u chunks of %u KiB, %u writer slots, clock %s)\n", path,
		       b1, st.nchunks, st.chunk_size >> 10, st.nslots, st.tsc ? "tsc" : "realtime");
		printf("occupancy  %u of %u chunks in use (%s, %.1f%%), %s / %llu records queued\n",
		       st.nchunks - st.free_chunks, st.nchunks, b2,
		       100.0 * (st.nchunks - st.free_chunks) / st.nchunks, b3,
		       (unsigned long long)st.records_queued);
		printf("writers    %u active\n", st.writers);
		/* Three different counts (docs/ring.md, "Losses become records"). */
		printf("written    %llu records (taken into this ring: consumed + queued)\n",
		       (unsigned long long)st.written);
		printf("consumed   %llu records (durable in the spool)\n",
		       (unsigned long long)st.consumed);
		printf("refused    %llu calls (each told to its caller, who may have retried; %llu "
		       "with no free writer slot)\n",
		       (unsigned long long)st.dropped, (unsigned long long)st.dropped_noslot);
		printf("lost       %llu records (writers that died mid-write)\n",
		       (unsigned long long)st.lost);
		printf("malformed  %llu bytes skipped (not records: damage, or names no writer may "
		       "use)\n",
		       (unsigned long long)st.corrupt);
		if (st.consumer_alive)
			printf("consumer   pid %llu, durable sequence %llu\n",
			       (unsigned long long)st.consumer_pid, (unsigned long long)st.durable_seq);
		else
			printf("consumer   none (records wait in the ring; is ringtaild running?)\n");
		{
			struct rt_forward_state fw;
			if (forward_state(r, &fw) == 0) {
				uint64_t lag = st.durable_seq > fw.acked_seq ? st.durable_seq - fw.acked_seq
									     : 0;
				fmt_bytes(b1, sizeof(b1), fw.lag_bytes);
				printf("forwarding to %s: %s, acknowledged up to #%llu, behind by %llu "
				       "records (about %s)\n",
				       fw.upstream, fw.connected ? "connected" : "NOT connected",
				       (unsigned long long)fw.acked_seq, (unsigned long long)lag, b1);
				if (fw.last_error[0])
					printf("           last error: %s\n", fw.last_error);
			}
		}
		rt_ring_writers(r, print_writer, &x);
	}
	rt_ring_close(r);
	return 0;
}

static const char ring_usage[] =
	"usage: ringtail ring create [--ring PATH] [--size BYTES] [--chunk-size BYTES]\n"
	"                            [--slots N] [--group GROUP] [--mode OCTAL]\n"
	"                            [--reserve PCT] [--writer-share PCT] [--no-tsc]\n"
	"       ringtail ring remove [--ring PATH]\n"
	"Defaults: 64M ring, 64K chunks, 1024 slots, mode 0660, 12% of chunks reserved\n"
	"for WARN and above, 25% of chunks at most per writer.\n";

int cmd_ring(int argc, char **argv)
{
	static const struct option opts[] = {
		{"ring", required_argument, NULL, 'r'},  {"size", required_argument, NULL, 's'},
		{"chunk-size", required_argument, NULL, 'c'}, {"slots", required_argument, NULL, 'n'},
		{"group", required_argument, NULL, 'g'}, {"mode", required_argument, NULL, 'm'},
		{"reserve", required_argument, NULL, 'R'}, {"writer-share", required_argument, NULL, 'W'},
		{"no-tsc", no_argument, NULL, 'T'},      {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct rt_ring_params p;
	const char *path = NULL, *verb;
	uint64_t v;
	int c, err;

	if (argc < 2) {
		fputs(ring_usage, stderr);
		return 2;
	}
	verb = argv[1];
	rt_ring_params_default(&p);
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			path = optarg;
			break;
		case 's':
			if (rt_parse_size(optarg, &p.size)) {
				cli_err("bad size '%s'", optarg);
				return 2;
			}
			break;
		case 'c':
			if (rt_parse_size(optarg, &v) || v > UINT32_MAX) {
				cli_err("bad chunk size '%s'", optarg);
				return 2;
			}
			p.chunk_size = (uint32_t)v;
			break;
		case 'n':
			if (rt_parse_u64(optarg, &v) || v == 0 || v > (1u << 20)) {
				cli_err("bad slot count '%s'", optarg);
				return 2;
			}
			p.nslots = (uint32_t)v;
			break;
		case 'g': {
			struct group *g = getgrnam(optarg);
			if (g) {
				p.gid = (int)g->gr_gid;
			} else if (rt_parse_u64(optarg, &v) == 0) {
				p.gid = (int)v;
			} else {
				cli_err("unknown group '%s'", optarg);
				return 2;
			}
			break;
		}
		case 'm': {
			char *end;
			unsigned long m = strtoul(optarg, &end, 8);
			if (*end || m > 0777) {
				cli_err("bad mode '%s'", optarg);
				return 2;
			}
			p.mode = (uint32_t)m;
			break;
		}
		case 'R':
			if (rt_parse_u64(optarg, &v) || v > 50) {
				cli_err("--reserve takes 0..50");
				return 2;
			}
			p.reserve_pct = (uint32_t)v;
			break;
		case 'W':
			if (rt_parse_u64(optarg, &v) || v == 0 || v > 100) {
				cli_err("--writer-share takes 1..100");
				return 2;
			}
			p.writer_pct = (uint32_t)v;
			break;
		case 'T':
			p.tsc = 0;
			break;
		case 'h':
			fputs(ring_usage, stdout);
			return 0;
		default:
			fputs(ring_usage, stderr);
			return 2;
		}
	}
	if (!path)
		path = rt_ring_path_default();
	if (!strcmp(verb, "create")) {
		err = rt_ring_create(path, &p);
		if (err) {
			cli_err("cannot create %s: %s", path,
				err == -EINVAL ? "bad parameters (see ringtail ring --help)"
					       : err == -EEXIST ? "a ring already exists there"
								: strerror(-err));
			return 1;
		}
		printf("created %s\n", path);
		return 0;
	}
	if (!strcmp(verb, "remove")) {
		err = rt_ring_remove(path);
		if (err) {
			cli_err("cannot remove %s: %s", path, rt_strerror(err));
			return 1;
		}
		return 0;
	}
	cli_err("unknown ring command '%s'", verb);
	fputs(ring_usage, stderr);
	return 2;
}
