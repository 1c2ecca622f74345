/* SPDX-License-Identifier: MIT */
/* cmd_spool.c - `ringtail dump` and `ringtail verify`: segments from a shell. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "rtspool.h"

const char *cli_default_spool(void)
{
	static char buf[4096];
	const char *env = getenv("RINGTAIL_SPOOL"), *x = getenv("XDG_STATE_HOME"),
		   *home = getenv("HOME");

	if (env && *env)
		return env;
	if (geteuid() == 0)
		return "/var/lib/ringtail";
	if (x && *x)
		snprintf(buf, sizeof(buf), "%s/ringtail", x);
	else if (home && *home)
		snprintf(buf, sizeof(buf), "%s/.local/state/ringtail", home);
	else
		return "/var/lib/ringtail";
	return buf;
}

/* Print every record of one segment file as a line. */
static int dump_file(int dirfd, const char *name, const char *shown, uint64_t from)
{
	struct rt_buf body = {0};
	struct rt_block blk;
	struct rt_seg *s;
	char *line = NULL;
	size_t line_cap = 0;
	int err, bad = 0;

	memset(&blk, 0, sizeof(blk));
	err = rt_seg_open(dirfd, name, 0, &s);
	if (err) {
		cli_err("%s: %s", shown, err == -EBADMSG ? "not a segment (bad header)" : strerror(-err));
		return 1;
	}
	for (uint32_t i = 0; i < s->nblocks; i++) {
		const struct rt_seg_block *b = &s->blocks[i];
		if (b->first_seq + b->nrec <= from)
			continue;
		err = rt_seg_read_body(s, i, &body);
		if (!err)
			err = rt_block_decode(body.p, body.len, b->first_seq, b->nrec, &blk);
		if (err) {
			cli_err("%s: block %u (records #%" PRIu64 "..#%" PRIu64 "): %s", shown, i,
				b->first_seq, b->first_seq + b->nrec - 1,
				err == -EBADMSG ? "damaged" : strerror(-err));
			bad = 1;
			continue;
		}
		for (uint32_t k = 0; k < blk.nrec; k++) {
			struct rt_rec r;
			size_t n;
			if (b->first_seq + k < from)
				continue;
			rt_block_rec(&blk, k, &r);
			n = rt_render_len(&r, b->first_seq + k, strlen(s->hdr.host));
			if (n > line_cap) {
				char *nl = realloc(line, n);
				if (!nl) {
					cli_err("out of memory");
					bad = 1;
					goto out;
				}
				line = nl;
				line_cap = n;
			}
			rt_render(&r, b->first_seq + k, s->hdr.host, strlen(s->hdr.host), line);
			if (fwrite(line, 1, n, stdout) != n) {
				bad = 1;
				goto out;
			}
		}
	}
	if (s->damaged) {
		cli_err("%s: %s", shown, s->damage);
		bad = 1;
	}
out:
	free(line);
	rt_block_free(&blk);
	rt_buf_free(&body);
	rt_seg_close(s);
	return bad;
}

static const char dump_usage[] =
	"usage: ringtail dump [--from SEQ] SEGMENT|SPOOL...\n"
	"Prints the records of segment files (or of every segment of a spool\n"
	"directory) as lines, the way ringtailfs shows them (docs/fs.md).\n";

int cmd_dump(int argc, char **argv)
{
	static const struct option opts[] = {
		{"from", required_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint64_t from = 0;
	int c, bad = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (rt_parse_u64(optarg, &from)) {
				cli_err("bad sequence number '%s'", optarg);
				return 2;
			}
			break;
		case 'h':
			fputs(dump_usage, stdout);
			return 0;
		default:
			fputs(dump_usage, stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fputs(dump_usage, stderr);
		return 2;
	}
	for (; optind < argc; optind++) {
		const char *arg = argv[optind];
		struct stat st;
		if (stat(arg, &st) < 0) {
			cli_err("%s: %s", arg, strerror(errno));
			bad = 1;
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			struct rt_spool *sp;
			uint64_t *seqs;
			int n, err = rt_spool_open(arg, NULL, 0, &sp);
			if (err) {
				cli_err("%s: not a spool (%s)", arg, strerror(-err));
				bad = 1;
				continue;
			}
			n = rt_spool_list(sp, &seqs);
			for (int i = 0; i < n; i++) {
				char name[32], shown[4200];
				rt_seg_name(name, seqs[i]);
				snprintf(shown, sizeof(shown), "%s/%s", arg, name);
				bad |= dump_file(sp->dirfd, name, shown, from);
			}
			if (n > 0)
				free(seqs);
			rt_spool_close(sp);
		} else {
			bad |= dump_file(AT_FDCWD, arg, arg, from);
		}
	}
	fflush(stdout);
	return bad;
}

/* ------------------------------------------------------------------------
 * verify
 * ------------------------------------------------------------------------ */

struct vstats {
	uint64_t segments, blocks, records, first, last;
	int problems;
};

static void problem(struct vstats *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct vstats *v, const char *fmt, ...)
{
	va_list ap;

	v->problems++;
	fputs("DAMAGED: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

/*
 * Check one segment thoroughly: read it whole past any damage
 * (rt_seg_salvage: every frame, every checksum), report every damaged piece
 * with what it held, decode every block's records. @limit: how much of it
 * is durable (the segment being written), else 0. @next_name: the next
 * segment's name (UINT64_MAX: none), @durable: the durable sequence.
 */
static void verify_segment(struct rt_spool *sp, const char *name, uint64_t want_first, int last,
			   uint64_t limit, uint64_t next_name, uint64_t durable,
			   uint64_t *expect_next, struct vstats *v)
{
	struct rt_buf body = {0};
	struct rt_block blk;
	struct rt_seg *s = NULL;
	struct rt_seg_piece *p = NULL;
	uint32_t np = 0;
	int err, fd;

	memset(&blk, 0, sizeof(blk));
	fd = rt_openat_beneath(sp->dirfd, name, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0) {
		problem(v, "%s: %s", name,
			fd == -ELOOP ? "a symbolic link, not a segment (not followed)"
				     : strerror(-fd));
		return;
	}
	err = rt_seg_salvage(fd, want_first, limit, &s, &p, &np);
	if (err) {
		problem(v, "%s: %s", name, strerror(-err));
		close(fd);
		return;
	}
	v->segments++;
	if (s->hdr_bad && s->nblocks == 0) {
		problem(v, "%s: nothing in it can be read (%s at offset 0)", name,
			np ? p[0].why : "empty file");
		goto out;
	}
	if (!s->hdr_bad && memcmp(s->hdr.epoch, sp->epoch, 16))
		problem(v, "%s: belongs to another spool (epoch differs)", name);
	if (!s->hdr_bad && s->hdr.first_seq != want_first)
		problem(v, "%s: its first record is #%" PRIu64 ", its name says #%" PRIu64, name,
			s->hdr.first_seq, want_first);
	for (uint32_t i = 0; i < np; i++) {
		char what[160];
		if (p[i].kind == RT_PIECE_STALE) {
			problem(v, "%s: bytes %" PRIu64 " to %" PRIu64
				   ": a footer that does not list the segment's blocks",
				name, p[i].off, p[i].end - 1);
			continue;
		}
		if (p[i].kind != RT_PIECE_DAMAGE)
			continue;
		rt_seg_piece_what(s, p, np, i, last ? durable + 1 : next_name, what, sizeof(what));
		problem(v, "%s: bytes %" PRIu64 " to %" PRIu64 " damaged (%s%s): %s", name, p[i].off,
			p[i].end - 1, i == 0 && s->hdr_bad ? "the header: " : "", p[i].why, what);
	}
	if (!s->closed && !last)
		problem(v, "%s: not closed (no footer) although it is not the newest segment; only the "
			   "newest may be open",
			name);
	if (*expect_next && s->hdr.first_seq > *expect_next)
		problem(v, "%s: sequence gap: records #%" PRIu64 " to #%" PRIu64 " are missing before it",
			name, *expect_next, s->hdr.first_seq - 1);
	else if (*expect_next && s->hdr.first_seq < *expect_next)
		problem(v, "%s: starts at #%" PRIu64 ", but the segment before it holds records up to #%" PRIu64,
			name, s->hdr.first_seq, *expect_next - 1);
	for (uint32_t i = 0; i < s->nblocks; i++) {
		const struct rt_seg_block *b = &s->blocks[i];
		err = rt_seg_read_body(s, i, &body);
		if (err) {
			problem(v, "%s: block %u at offset %" PRIu64 " (records #%" PRIu64 " to #%" PRIu64
				   "): data does not decompress or fails its checksum",
				name, b->block_no, b->index_off, b->first_seq, b->first_seq + b->nrec - 1);
			continue;
		}
		err = rt_block_decode(body.p, body.len, b->first_seq, b->nrec, &blk);
		if (err) {
			problem(v, "%s: block %u at offset %" PRIu64 " (records #%" PRIu64 " to #%" PRIu64
				   "): its records are malformed",
				name, b->block_no, b->index_off, b->first_seq, b->first_seq + b->nrec - 1);
			continue;
		}
		v->blocks++;
		v->records += b->nrec;
		if (!v->first)
			v->first = b->first_seq;
		v->last = b->first_seq + b->nrec - 1;
	}
	*expect_next = s->nblocks ? s->next_seq : s->hdr.first_seq;
out:
	rt_block_free(&blk);
	rt_buf_free(&body);
	free(p);
	rt_seg_close(s);
	close(fd);
}

static const char verify_usage[] =
	"usage: ringtail verify [SPOOL]\n"
	"Checks every segment of the spool (default: ringtaild's default spool): every\n"
	"frame and checksum, every block's records, the footers (only the newest segment\n"
	"may be open), that sequence numbers run on without gaps, and that every record\n"
	"SPOOL/state says is durable is there. Prints each problem (every damaged range\n"
	"with the blocks and records it held) and exits 1 if there is any.\n";

int cmd_verify(int argc, char **argv)
{
	struct rt_spool_state st;
	struct vstats v;
	struct rt_spool *sp;
	uint64_t *seqs, expect = 0, durable = 0, open_seg = 0, open_bytes = 0;
	const char *path;
	int n, err, have_state = 0, running = 0;

	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(verify_usage, stdout);
		return 0;
	}
	if (argc > 2) {
		fputs(verify_usage, stderr);
		return 2;
	}
	path = argc == 2 ? argv[1] : cli_default_spool();
	err = rt_spool_open(path, NULL, 0, &sp);
	if (err) {
		cli_err("%s: not a spool (%s)", path,
			err == -ENOENT ? "no spool.meta" : rt_spool_why(err));
		return 2;
	}
	memset(&v, 0, sizeof(v));
	/* What the spooler published as durable: those records must be there.
	 * While one runs, its open segment is read only as far as is durable. */
	if (sp->state && rt_state_read(sp->state, &st) == 0 && !memcmp(st.epoch, sp->epoch, 16)) {
		int lfd = rt_openat_beneath(sp->dirfd, "lock", O_RDONLY | O_NONBLOCK, 0);
		have_state = 1;
		durable = st.durable_seq;
		if (lfd >= 0) {
			running = flock(lfd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
			close(lfd);
		}
		open_seg = st.segment;
		open_bytes = st.segment_bytes;
	}
	n = rt_spool_list(sp, &seqs);
	if (n < 0) {
		cli_err("%s: %s", path, strerror(-n));
		rt_spool_close(sp);
		return 2;
	}
	for (int i = 0; i < n; i++) {
		char name[32];
		uint64_t limit = 0;
		if (running && open_seg && seqs[i] > open_seg)
			break; /* being started: not published yet */
		if (running && seqs[i] == open_seg)
			limit = open_bytes;
		rt_seg_name(name, seqs[i]);
		verify_segment(sp, name, seqs[i], i == n - 1 || (running && seqs[i] == open_seg), limit,
			       i + 1 < n ? seqs[i + 1] : UINT64_MAX, durable, &expect, &v);
	}
	free(seqs);
	if (have_state && durable && (expect ? expect - 1 : 0) < durable)
		problem(&v, "records #%" PRIu64 " to #%" PRIu64
			    " were made durable (SPOOL/state) but are in no segment",
			expect ? expect : 1, durable);
	rt_spool_close(sp);
	if (v.records)
		printf("%s: %" PRIu64 " segments, %" PRIu64 " blocks, %" PRIu64
		       " records (#%" PRIu64 " to #%" PRIu64 "): %s\n",
		       path, v.segments, v.blocks, v.records, v.first, v.last,
		       v.problems ? "DAMAGED" : "OK");
	else
		printf("%s: %" PRIu64 " segments, no records: %s\n", path, v.segments,
		       v.problems ? "DAMAGED" : "OK");
	return v.problems ? 1 : 0;
}
