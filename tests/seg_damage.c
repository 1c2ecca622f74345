/* SPDX-License-Identifier: MIT */
/*
 * seg_damage - a segment cut at every byte offset, and with every single
 * bit flipped, is never read as data it is not:
 *
 *  - cut: recovery keeps exactly the blocks that are wholly before the cut
 *    (a cut inside the header leaves nothing, and the file goes to
 *    quarantine), truncates the file there, continues the numbering after
 *    the last kept record, and hands back exactly the ring positions of the
 *    kept blocks;
 *  - flip (open and closed segments): the reader reports damage at the block
 *    holding the flipped bit (or refuses the header), keeps the blocks before
 *    it readable, and nothing crashes; for a sample of flips recovery keeps
 *    every block but the damaged one (tests/spool_recover.c does this over a
 *    real spool, every offset and kind of segment).
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>

#include "helpers.h"
#include "rtspool.h"

#define NBLOCKS 5

static struct rt_buf seg;            /* the open segment (no footer) */
static struct rt_buf closed;         /* the same, closed */
static uint64_t frame_end[NBLOCKS + 2]; /* end of the header, then of each block */
static uint32_t block_recs[NBLOCKS];
static int logged;

static void count_log(void *arg, int sev, const char *msg)
{
	(void)arg;
	(void)sev;
	(void)msg;
	logged++;
}

static void build(const uint8_t epoch[16], const char *host)
{
	struct rt_seg_hdrinfo h;
	struct rt_bb *bb;
	struct rt_cursor c = {0, 1, 0, 0, 0, 0, 0};
	uint64_t seq = 1, index_off[NBLOCKS];
	char msg[64];

	memset(&h, 0, sizeof(h));
	memcpy(h.epoch, epoch, 16);
	snprintf(h.host, sizeof(h.host), "%s", host);
	h.first_seq = 1;
	h.ring_id = 7;
	h.render_version = RT_RENDER_VERSION;
	CHECK_EQ(rt_seg_header_frame(&seg, &h, &c, 1), 0);
	frame_end[0] = seg.len;
	CHECK_EQ(rt_bb_new(host, &bb), 0);
	for (int b = 0; b < NBLOCKS; b++) {
		rt_bb_reset(bb, seq);
		block_recs[b] = (uint32_t)(b + 1) * 3;
		for (uint32_t k = 0; k < block_recs[b]; k++) {
			struct rt_rec r;
			memset(&r, 0, sizeof(r));
			r.time_ns = 1700000000000000000ull + seq * 1000;
			r.pid = 42;
			r.tid = 43;
			r.severity = RT_INFO;
			r.service = "svc";
			r.service_len = 3;
			r.msg = msg;
			r.msg_len = (size_t)snprintf(msg, sizeof(msg), "record %llu", (unsigned long long)seq);
			CHECK_EQ(rt_bb_add(bb, &r), 0);
			seq++;
		}
		c.pos = seq * 64; /* each block moves the cursor on */
		index_off[b] = seg.len;
		CHECK_EQ(rt_bb_seal(bb, &seg, seg.len, (uint32_t)b, 7, &c, 1), 0);
		frame_end[b + 1] = seg.len;
	}
	rt_bb_free(bb);
	CHECK_EQ(rt_buf_put(&closed, seg.p, seg.len), 0);
	CHECK_EQ(rt_seg_footer_frame(&closed, closed.len, 1, seq, 0, 0, index_off, NBLOCKS), 0);
}

/* Blocks wholly before @cut, and the offset where they end. */
static int kept(uint64_t cut, uint64_t *end)
{
	int n = 0;
	*end = frame_end[0];
	while (n < NBLOCKS && frame_end[n + 1] <= cut)
		*end = frame_end[++n];
	return n;
}

static uint64_t records_in(int nblocks)
{
	uint64_t n = 0;
	for (int b = 0; b < nblocks; b++)
		n += block_recs[b];
	return n;
}

static int quarantined(const char *spool)
{
	char path[512];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/quarantine", spool);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.') {
			char f[1024];
			snprintf(f, sizeof(f), "%s/%s", path, de->d_name);
			unlink(f);
			n++;
		}
	closedir(d);
	return n;
}

static void put_segment(struct rt_spool *sp, const uint8_t *p, size_t n)
{
	int fd = openat(sp->dirfd, "00000000000000000001.lz4", O_WRONLY | O_CREAT | O_TRUNC, 0640);
	CHECK(fd >= 0 && write(fd, p, n) == (ssize_t)n, "write segment");
	close(fd);
}

static uint64_t seg_size(struct rt_spool *sp, int *exists)
{
	struct stat st;
	*exists = fstatat(sp->dirfd, "00000000000000000001.lz4", &st, 0) == 0;
	return *exists ? (uint64_t)st.st_size : 0;
}

int main(void)
{
	char spool[128];
	struct rt_spool *sp;
	struct rt_recovered rec;
	int exists, flips = 0, q;
	size_t header_bits;

	snprintf(spool, sizeof(spool), "/dev/shm/rt-test-damage-%d", (int)getpid());
	CHECK_EQ(rt_spool_open(spool, "damage-host", RT_SPOOL_CREATE | RT_SPOOL_LOCK, &sp), 0);
	build(sp->epoch, sp->host);

	/* Cut at every byte offset. */
	for (uint64_t cut = 0; cut <= seg.len; cut++) {
		uint64_t end;
		int n = kept(cut, &end);
		put_segment(sp, seg.p, cut);
		memset(sp->state, 0, sizeof(*sp->state)); /* nothing published */
		logged = 0;
		CHECK_EQ(rt_spool_recover(sp, 7, 16, count_log, NULL, &rec), 0);
		q = quarantined(spool);
		if (cut < frame_end[0]) {
			/* The header itself is cut: nothing to keep. */
			CHECK(q == 1 && seg_size(sp, &exists) == 0 && !exists,
			      "cut %llu: a segment with a cut header must go to quarantine",
			      (unsigned long long)cut);
			CHECK_EQ(rec.next_seq, 1);
			CHECK(logged > 0, "cut %llu: not reported", (unsigned long long)cut);
			rt_recovered_free(&rec);
			continue;
		}
		CHECK(q == 0, "cut %llu: a torn tail went to quarantine", (unsigned long long)cut);
		CHECK(seg_size(sp, &exists) == end && exists, "cut %llu: file is %llu bytes, want %llu",
		      (unsigned long long)cut, (unsigned long long)seg_size(sp, &exists),
		      (unsigned long long)end);
		CHECK(rec.last_open && rec.nblocks == (uint32_t)n && rec.last_end == end,
		      "cut %llu: kept %u blocks, want %d", (unsigned long long)cut, rec.nblocks, n);
		CHECK_EQ(rec.next_seq, 1 + records_in(n));
		CHECK(logged == (cut > end), "cut %llu: %d reports", (unsigned long long)cut, logged);
		/* The ring positions: those of the last kept block (or the
		 * header's when none is kept). */
		CHECK(rec.ncur == 1 && rec.cur[0].pos == (n ? (1 + records_in(n)) * 64 : 0),
		      "cut %llu: ring position", (unsigned long long)cut);
		rt_recovered_free(&rec);
	}
	printf("ok - cut at each of %zu offsets: exactly the whole blocks before the cut are kept\n",
	       seg.len + 1);

	/* Flip every bit, open and closed: the reader finds each one. */
	header_bits = frame_end[0] * 8;
	for (int which = 0; which < 2; which++) {
		struct rt_buf *src = which ? &closed : &seg;
		uint8_t *copy = malloc(src->len);
		int fd = memfd_create("flip", 0);
		CHECK(copy && fd >= 0, "memfd");
		for (size_t bit = 0; bit < src->len * 8; bit++) {
			struct rt_seg *s = NULL;
			int r;
			memcpy(copy, src->p, src->len);
			copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			CHECK(ftruncate(fd, 0) == 0 && pwrite(fd, copy, src->len, 0) == (ssize_t)src->len,
			      "pwrite");
			r = rt_seg_open_fd(fd, RT_SEG_NOFOOTER | RT_SEG_VERIFY, 0, &s);
			flips++;
			if (bit < header_bits) {
				CHECK(r == -EBADMSG, "flip %zu in the header not detected", bit);
				continue;
			}
			CHECK_EQ(r, 0);
			if (bit >= seg.len * 8) {
				/* In the footer of the closed segment. */
				CHECK(s->damaged && !s->closed && s->nblocks == NBLOCKS,
				      "flip %zu in the footer not detected", bit);
			} else {
				uint64_t end;
				int n = kept(bit / 8, &end);
				CHECK(s->damaged, "flip %zu (block %d) not detected", bit, n);
				CHECK(s->nblocks == (uint32_t)n && s->valid_end == end,
				      "flip %zu: kept %u blocks, want %d", bit, s->nblocks, n);
			}
			/* What was kept still reads. */
			for (uint32_t b = 0; b < s->nblocks; b++) {
				struct rt_buf body = {0};
				struct rt_block blk;
				memset(&blk, 0, sizeof(blk));
				CHECK(rt_seg_read_body(s, b, &body) == 0 &&
					      rt_block_decode(body.p, body.len, s->blocks[b].first_seq,
							      s->blocks[b].nrec, &blk) == 0,
				      "flip %zu: block %u before it does not read", bit, b);
				rt_block_free(&blk);
				rt_buf_free(&body);
			}
			rt_seg_close(s);
		}
		free(copy);
		close(fd);
	}
	printf("ok - %d single-bit flips (open and closed segment): every one detected, the blocks "
	       "before it still read\n",
	       flips);

	/* Recovery with flips, a sample: every block but the flipped one stays
	 * readable (the blocks after it in a segment of their own), the
	 * damaged bytes go to quarantine, and a second recovery changes
	 * nothing. */
	for (size_t bit = 5; bit < seg.len * 8; bit += 37) {
		uint8_t *copy = malloc(seg.len);
		uint64_t *seqs, want = 0, got = 0;
		int hit = -1, nseg;
		memcpy(copy, seg.p, seg.len);
		copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		for (int b = 0; b < NBLOCKS; b++)
			if (bit / 8 >= frame_end[b] && bit / 8 < frame_end[b + 1])
				hit = b;
		for (int b = 0; b < NBLOCKS; b++)
			if (b != hit)
				want += block_recs[b];
		nseg = rt_spool_list(sp, &seqs);
		for (int k = 0; k < nseg; k++) {
			char name[32];
			rt_seg_name(name, seqs[k]);
			unlinkat(sp->dirfd, name, 0);
		}
		free(seqs);
		put_segment(sp, copy, seg.len);
		free(copy);
		memset(sp->state, 0, sizeof(*sp->state));
		logged = 0;
		CHECK_EQ(rt_spool_recover(sp, 7, 16, count_log, NULL, &rec), 0);
		CHECK(logged >= 1, "flip %zu not reported", bit);
		rt_recovered_free(&rec);
		q = quarantined(spool);
		CHECK(q == 1, "flip %zu: %d files in quarantine, want the damaged bytes", bit, q);
		logged = 0;
		CHECK_EQ(rt_spool_recover(sp, 7, 16, count_log, NULL, &rec), 0);
		rt_recovered_free(&rec);
		CHECK(quarantined(spool) == 0, "flip %zu: the second recovery set more aside", bit);
		nseg = rt_spool_list(sp, &seqs);
		for (int k = 0; k < nseg; k++) {
			struct rt_seg *s;
			char name[32];
			rt_seg_name(name, seqs[k]);
			CHECK_EQ(rt_seg_open(sp->dirfd, name, RT_SEG_NOFOOTER | RT_SEG_VERIFY, &s), 0);
			CHECK(!s->damaged && (s->closed || k == nseg - 1), "flip %zu: %s: %s", bit, name,
			      s->damaged ? s->damage : "no footer");
			got += s->next_seq - s->hdr.first_seq;
			rt_seg_close(s);
		}
		free(seqs);
		CHECK(got == want, "flip %zu (block %d): %llu records kept, want %llu", bit, hit,
		      (unsigned long long)got, (unsigned long long)want);
	}
	printf("ok - recovery after flips keeps every block but the damaged one, sets the damaged "
	       "bytes aside and reports them\n");

	rt_spool_close(sp);
	{
		char cmd[256];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", spool);
		CHECK(system(cmd) == 0, "cleanup");
	}
	rt_buf_free(&seg);
	rt_buf_free(&closed);
	return 0;
}
