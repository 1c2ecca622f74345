/* SPDX-License-Identifier: MIT */
/*
 * spool_verify - `ringtail verify` reports every durable record that is
 * missing and every segment without a footer that is not the newest:
 *
 *  - the newest segment cut at each of its frame boundaries (and a sample of
 *    other offsets): verify exits 1 and names exactly the records SPOOL/state
 *    says are durable but that are gone ("records #A to #B were made
 *    durable..."); uncut it exits 0;
 *  - a segment in the middle cut at each of its frame boundaries: verify
 *    exits 1, says it is not closed although it is not the newest, and names
 *    the records missing after it;
 *  - a bit flipped in a middle segment's INDEX frame: verify names the damaged
 *    bytes with the block and records they held, and reads the blocks after
 *    the damage too.
 *
 *   spool_verify RINGTAIL
 */
#include <sys/stat.h>

#include "spool_check.h"

static const char *tool;
static char spool[256];

static int run(char *out, size_t n)
{
	char cmd[600];
	FILE *f;
	size_t got;
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' verify '%s' 2>&1", tool, spool);
	f = popen(cmd, "r");
	CHECK(f != NULL, "popen");
	got = fread(out, 1, n - 1, f);
	out[got] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

struct segfile {
	char name[32];
	uint8_t *p;
	size_t n;
	uint64_t bound[256], first[256];
	int nb;
	uint64_t next;
};

static void load(struct segfile *f, int dirfd, int min_blocks)
{
	struct rt_seg *s;
	struct stat st;
	int fd = openat(dirfd, f->name, O_RDWR);

	CHECK(fd >= 0 && fstat(fd, &st) == 0, "open %s", f->name);
	f->n = (size_t)st.st_size;
	f->p = malloc(f->n);
	CHECK(pread(fd, f->p, f->n, 0) == (ssize_t)f->n, "read");
	CHECK_EQ(rt_seg_open_fd(fd, RT_SEG_NOFOOTER | RT_SEG_VERIFY, 0, &s), 0);
	f->nb = (int)s->nblocks;
	CHECK(f->nb >= min_blocks && f->nb < 255, "%s has %d blocks", f->name, f->nb);
	for (int b = 0; b < f->nb; b++) {
		f->bound[b] = s->blocks[b].index_off;
		f->first[b] = s->blocks[b].first_seq;
	}
	f->bound[f->nb] = s->blocks[f->nb - 1].data_off + s->blocks[f->nb - 1].data_len;
	f->first[f->nb] = s->next_seq;
	f->next = s->next_seq;
	rt_seg_close(s);
	close(fd);
}

static void put(const struct segfile *f, size_t len)
{
	char path[400];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", spool, f->name);
	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(fd >= 0 && write(fd, f->p, len) == (ssize_t)len, "write %s", path);
	close(fd);
}

/* The records that are in the blocks wholly before @cut, counted from the
 * segment's first: the number after the last one kept. */
static uint64_t kept_next(const struct segfile *f, size_t cut)
{
	uint64_t next = f->first[0];
	for (int b = 0; b < f->nb; b++)
		if (f->bound[b + 1] <= cut)
			next = f->first[b + 1];
	return next;
}

int main(int argc, char **argv)
{
	struct rt_spool *sp;
	struct segfile newest, mid;
	uint64_t *seqs, ring_id, durable;
	uint32_t nslots;
	char out[65536], want[300];
	int n, cuts = 0, rc;

	CHECK(argc == 2, "usage: spool_verify RINGTAIL");
	tool = argv[1];
	snprintf(spool, sizeof(spool), "/dev/shm/rt-test-verify-%d", (int)getpid());
	sc_engine_spool(spool, 1500, 6144, 700, &ring_id, &nslots);
	CHECK_EQ(rt_spool_open(spool, NULL, 0, &sp), 0);
	n = rt_spool_list(sp, &seqs);
	CHECK(n >= 4, "%d segments", n);
	memset(&newest, 0, sizeof(newest));
	memset(&mid, 0, sizeof(mid));
	rt_seg_name(newest.name, seqs[n - 1]);
	rt_seg_name(mid.name, seqs[n / 2]);
	load(&newest, sp->dirfd, 1);
	load(&mid, sp->dirfd, 3);
	{
		struct rt_spool_state st;
		CHECK_EQ(rt_state_read(sp->state, &st), 0);
		durable = st.durable_seq;
	}
	CHECK(durable == newest.next - 1, "durable #%llu", (unsigned long long)durable);
	rc = run(out, sizeof(out));
	CHECK(rc == 0, "verify of the whole spool: %d\n%s", rc, out);

	/* The newest segment cut: at every frame boundary, and a sample of
	 * other offsets. */
	for (size_t cut = newest.bound[0]; cut < newest.n; cut++) {
		int boundary = 0;
		uint64_t next;
		for (int b = 0; b <= newest.nb; b++)
			boundary |= newest.bound[b] == cut;
		if (!boundary && cut % 41)
			continue;
		put(&newest, cut);
		next = kept_next(&newest, cut);
		rc = run(out, sizeof(out));
		CHECK(rc == 1, "cut at %zu of the newest segment: verify says %d\n%s", cut, rc, out);
		snprintf(want, sizeof(want),
			 "records #%llu to #%llu were made durable (SPOOL/state) but are in no segment",
			 (unsigned long long)next, (unsigned long long)durable);
		CHECK(strstr(out, want), "cut at %zu%s: verify does not say \"%s\":\n%s", cut,
		      boundary ? " (a frame boundary)" : "", want, out);
		cuts++;
	}
	put(&newest, newest.n);
	printf("ok - the newest segment cut at %d offsets (every frame boundary among them): verify "
	       "reports exactly the durable records that are gone\n",
	       cuts);

	/* A middle segment cut at each frame boundary. */
	cuts = 0;
	for (int b = 0; b <= mid.nb; b++) {
		size_t cut = (size_t)mid.bound[b];
		put(&mid, cut);
		rc = run(out, sizeof(out));
		CHECK(rc == 1, "cut at %zu of a middle segment: verify says %d\n%s", cut, rc, out);
		snprintf(want, sizeof(want), "%s: not closed (no footer) although it is not the newest",
			 mid.name);
		CHECK(strstr(out, want), "cut at %zu: no \"%s\":\n%s", cut, want, out);
		if (kept_next(&mid, cut) < mid.next) {
			snprintf(want, sizeof(want), "records #%llu to #%llu are missing before it",
				 (unsigned long long)kept_next(&mid, cut), (unsigned long long)mid.next - 1);
			CHECK(strstr(out, want), "cut at %zu: no \"%s\":\n%s", cut, want, out);
		}
		cuts++;
	}
	put(&mid, mid.n);
	printf("ok - a middle segment cut at each of its %d frame boundaries: verify says it has no "
	       "footer although it is not the newest, and which records are missing\n",
	       cuts);

	/* A flip in a middle segment's INDEX frame of block 1. */
	mid.p[mid.bound[1] + 30] ^= 0x08;
	put(&mid, mid.n);
	rc = run(out, sizeof(out));
	CHECK(rc == 1, "flip: verify says %d", rc);
	snprintf(want, sizeof(want), "%s: bytes %llu to %llu damaged (frame checksum mismatch): block 1, "
		 "records #%llu to #%llu",
		 mid.name, (unsigned long long)mid.bound[1], (unsigned long long)mid.bound[2] - 1,
		 (unsigned long long)mid.first[1], (unsigned long long)mid.first[2] - 1);
	CHECK(strstr(out, want), "flip: no \"%s\":\n%s", want, out);
	{
		/* Every other block is still read and counted. */
		uint64_t total = newest.next - 1 - (mid.first[2] - mid.first[1]);
		snprintf(want, sizeof(want), " records (#1 to #%llu): DAMAGED", (unsigned long long)durable);
		CHECK(strstr(out, want), "flip: no \"%s\":\n%s", want, out);
		snprintf(want, sizeof(want), "blocks, %llu records", (unsigned long long)total);
		CHECK(strstr(out, want), "flip: the blocks after the damage are not all read (\"%s\"):\n%s",
		      want, out);
	}
	printf("ok - a flip in an INDEX frame: verify names the damaged bytes, the block and its "
	       "records, and reads every block after it\n");

	free(seqs);
	free(newest.p);
	free(mid.p);
	rt_spool_close(sp);
	sc_rm_rf(spool);
	return 0;
}
