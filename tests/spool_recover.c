/* SPDX-License-Identifier: MIT */
/*
 * spool_recover - recovery keeps every intact record, whatever the damage,
 * however many times it runs.
 *
 * A spool made by the real engine (in-process, from a real ring) holds some
 * segments of a few blocks each. One segment of it is damaged - cut at an
 * offset, or one bit flipped - and rt_spool_recover() runs three times, as
 * three restarts of ringtaild would. Four kinds of segment are damaged: the
 * open newest one, a closed one in the middle, a closed newest one, and one
 * in the middle without its footer (what a crash between closing and
 * starting, or the old recovery, left). After each case:
 *
 *  - every record of a block the damage did not touch is readable through
 *    the reader (rt_seg_open_fd from the footer, rt_seg_read_body), with its
 *    own bytes, exactly once: the figure "intact records lost" must be 0;
 *  - no record of a damaged block is ever read as data;
 *  - every segment but the newest is closed by a valid footer;
 *  - the second and third recovery change nothing at all (every file in the
 *    spool and in quarantine/ is the same), and all three agree on the next
 *    sequence number, which is past every number used or published.
 *
 *   spool_recover [--full] [--seed N]
 *
 * The default runs a sample (every 31st offset, every frame boundary and its
 * neighbours, 50 flips per kind); --full (the soak suite) runs every offset
 * and 1,000 flips per kind.
 */
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "spool_check.h"

#define NREC 1000
#define MAXSEG 128

struct blk {
	uint64_t index_off, data_end, first;
	uint32_t nrec;
};

struct file {
	char name[32];
	uint8_t *p;
	size_t n;
	struct blk *b;
	uint32_t nb;
	int closed;
};

/* One spool's files: what each case starts from. */
struct variant {
	const char *what;
	struct file seg[MAXSEG];
	int nseg, target;
	uint8_t state[sizeof(struct rt_spool_state)];
	uint64_t durable;
};

static uint8_t *meta;
static size_t meta_len;
static char *msgs[NREC + 64];
static size_t msg_len[NREC + 64];
static uint64_t ring_id;
static uint32_t nslots;
static char dir[256];
static int reports;

static void count_log(void *arg, int sev, const char *m)
{
	(void)arg;
	(void)m;
	if (sev >= RT_WARN)
		reports++;
}

static uint8_t *slurp(const char *path, size_t *n)
{
	struct stat st;
	uint8_t *p;
	int fd = open(path, O_RDONLY);

	CHECK(fd >= 0 && fstat(fd, &st) == 0, "open %s", path);
	p = malloc((size_t)st.st_size + 1);
	CHECK(p && read(fd, p, (size_t)st.st_size) == st.st_size, "read %s", path);
	close(fd);
	*n = (size_t)st.st_size;
	return p;
}

static void spit(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
	CHECK(fd >= 0 && write(fd, p, n) == (ssize_t)n, "write %s", path);
	close(fd);
}

/* The blocks of a segment, and (once) the records they hold. */
static void index_file(struct file *f, int keep_msgs)
{
	struct rt_buf body = {0};
	struct rt_block blk;
	struct rt_seg *s;
	int fd = memfd_create("seg", 0);

	memset(&blk, 0, sizeof(blk));
	CHECK(fd >= 0 && write(fd, f->p, f->n) == (ssize_t)f->n, "memfd");
	CHECK_EQ(rt_seg_open_fd(fd, RT_SEG_NOFOOTER | RT_SEG_VERIFY, 0, &s), 0);
	CHECK(!s->damaged, "%s: %s", f->name, s->damage);
	f->closed = s->closed;
	f->nb = s->nblocks;
	f->b = calloc(s->nblocks + 1, sizeof(*f->b));
	for (uint32_t i = 0; i < s->nblocks; i++) {
		f->b[i].index_off = s->blocks[i].index_off;
		f->b[i].data_end = s->blocks[i].data_off + s->blocks[i].data_len;
		f->b[i].first = s->blocks[i].first_seq;
		f->b[i].nrec = s->blocks[i].nrec;
		if (!keep_msgs)
			continue;
		CHECK_EQ(rt_seg_read_body(s, i, &body), 0);
		CHECK_EQ(rt_block_decode(body.p, body.len, s->blocks[i].first_seq, s->blocks[i].nrec,
					 &blk),
			 0);
		for (uint32_t k = 0; k < blk.nrec; k++) {
			struct rt_rec r;
			uint64_t seq = s->blocks[i].first_seq + k;
			rt_block_rec(&blk, k, &r);
			CHECK(seq < NREC + 64, "too many records");
			msgs[seq] = malloc(r.msg_len + 1);
			memcpy(msgs[seq], r.msg, r.msg_len);
			msg_len[seq] = r.msg_len;
		}
	}
	rt_block_free(&blk);
	rt_buf_free(&body);
	rt_seg_close(s);
	close(fd);
}

/* Make a spool with the real engine and read it back. */
static void make_base(struct variant *v)
{
	struct rt_spool *sp;
	uint64_t *seqs;
	char base[300], path[400];
	int n;

	snprintf(base, sizeof(base), "%s/base", dir);
	sc_engine_spool(base, NREC, 6144, 700, &ring_id, &nslots);

	snprintf(path, sizeof(path), "%s/spool.meta", base);
	meta = slurp(path, &meta_len);
	{
		size_t sn;
		uint8_t *s;
		snprintf(path, sizeof(path), "%s/state", base);
		s = slurp(path, &sn);
		CHECK(sn >= sizeof(v->state), "state");
		memcpy(v->state, s, sizeof(v->state));
		free(s);
		memcpy(&v->durable, v->state + offsetof(struct rt_spool_state, durable_seq), 8);
	}
	CHECK_EQ(rt_spool_open(base, NULL, 0, &sp), 0);
	n = rt_spool_list(sp, &seqs);
	CHECK(n >= 5 && n < MAXSEG, "%d segments", n);
	for (int i = 0; i < n; i++) {
		struct file *f = &v->seg[i];
		rt_seg_name(f->name, seqs[i]);
		snprintf(path, sizeof(path), "%s/%s", base, f->name);
		f->p = slurp(path, &f->n);
		index_file(f, 1);
	}
	v->nseg = n;
	free(seqs);
	rt_spool_close(sp);
	snprintf(path, sizeof(path), "rm -rf '%s'", base);
	CHECK(system(path) == 0, "rm");
}

static void copy_file(struct file *to, const struct file *from)
{
	*to = *from;
	to->p = malloc(from->n + 1);
	memcpy(to->p, from->p, from->n);
	to->b = calloc(from->nb + 1, sizeof(*to->b));
	memcpy(to->b, from->b, from->nb * sizeof(*to->b));
}

/* A middle segment with at least 3 blocks. */
static int middle(const struct variant *v)
{
	for (int i = v->nseg / 2; i < v->nseg - 1; i++)
		if (v->seg[i].nb >= 3 && v->seg[i].closed)
			return i;
	for (int i = 1; i < v->nseg - 1; i++)
		if (v->seg[i].nb >= 3 && v->seg[i].closed)
			return i;
	CHECK(0, "no middle segment with 3 blocks");
	return -1;
}

static void make_variants(struct variant *v)
{
	/* 0: the newest segment, open (as ringtaild leaves it). */
	v[0].what = "the open newest segment";
	v[0].target = v[0].nseg - 1;
	CHECK(!v[0].seg[v[0].target].closed && v[0].seg[v[0].target].nb >= 2,
	      "the newest segment is not open with 2 blocks");
	/* 1: a closed segment in the middle. */
	v[1] = v[0];
	v[1].what = "a closed segment in the middle";
	for (int i = 0; i < v[0].nseg; i++)
		copy_file(&v[1].seg[i], &v[0].seg[i]);
	v[1].target = middle(&v[1]);
	/* 2: a closed newest segment: the open one is gone, the state says
	 * durable up to the end of the one before. */
	v[2] = v[1];
	v[2].what = "a closed newest segment";
	v[2].nseg = v[0].nseg - 1;
	for (int i = 0; i < v[2].nseg; i++)
		copy_file(&v[2].seg[i], &v[0].seg[i]);
	{
		const struct file *f = &v[2].seg[v[2].nseg - 1];
		v[2].durable = f->b[f->nb - 1].first + f->b[f->nb - 1].nrec - 1;
		memcpy(v[2].state + offsetof(struct rt_spool_state, durable_seq), &v[2].durable, 8);
	}
	v[2].target = v[2].nseg - 1;
	CHECK(v[2].seg[v[2].target].closed && v[2].seg[v[2].target].nb >= 2, "closed newest");
	/* 3: a segment in the middle without its footer. */
	v[3] = v[1];
	v[3].what = "a segment in the middle without its footer";
	for (int i = 0; i < v[0].nseg; i++)
		copy_file(&v[3].seg[i], &v[0].seg[i]);
	{
		struct file *f = &v[3].seg[v[3].target];
		f->n = f->b[f->nb - 1].data_end;
		f->closed = 0;
	}
}

/* Write variant @v into the case directory, the target damaged by @cut
 * (SIZE_MAX: none) or by flipping bit @flip (SIZE_MAX: none). */
/* Empty directory @path (one level of subdirectories). */
static void empty_dir(const char *path)
{
	struct dirent *de;
	DIR *d = opendir(path);

	if (!d)
		return;
	while ((de = readdir(d))) {
		char f[700];
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(f, sizeof(f), "%s/%s", path, de->d_name);
		if (unlink(f) < 0 && errno == EISDIR) {
			empty_dir(f);
			CHECK(rmdir(f) == 0, "rmdir %s", f);
		}
	}
	closedir(d);
}

static void put_case(const struct variant *v, size_t cut, size_t flip)
{
	char path[400];

	snprintf(path, sizeof(path), "%s/case", dir);
	empty_dir(path);
	CHECK(mkdir(path, 0750) == 0 || errno == EEXIST, "mkdir %s", path);
	snprintf(path, sizeof(path), "%s/case/spool.meta", dir);
	spit(path, meta, meta_len);
	snprintf(path, sizeof(path), "%s/case/state", dir);
	spit(path, v->state, sizeof(v->state));
	for (int i = 0; i < v->nseg; i++) {
		const struct file *f = &v->seg[i];
		size_t n = f->n;
		snprintf(path, sizeof(path), "%s/case/%s", dir, f->name);
		if (i == v->target && flip != SIZE_MAX) {
			f->p[flip / 8] ^= (uint8_t)(1u << (flip % 8));
			spit(path, f->p, n);
			f->p[flip / 8] ^= (uint8_t)(1u << (flip % 8));
			continue;
		}
		if (i == v->target && cut != SIZE_MAX)
			n = cut;
		spit(path, f->p, n);
	}
}

/* A fingerprint of every file in the case directory and its quarantine. */
static uint64_t fingerprint(void)
{
	static const char *sub[] = {"", "/quarantine"};
	uint64_t h = 0;

	for (int k = 0; k < 2; k++) {
		char path[400];
		struct dirent **de;
		int n;
		snprintf(path, sizeof(path), "%s/case%s", dir, sub[k]);
		n = scandir(path, &de, NULL, alphasort);
		for (int i = 0; i < n; i++) {
			char f[700];
			struct stat st;
			if (strcmp(de[i]->d_name, "lock") && strcmp(de[i]->d_name, "state") &&
			    de[i]->d_name[0] != '.') {
				snprintf(f, sizeof(f), "%s/%s", path, de[i]->d_name);
				h = XXH3_64bits_withSeed(de[i]->d_name, strlen(de[i]->d_name), h);
				if (lstat(f, &st) == 0 && S_ISREG(st.st_mode)) {
					size_t len;
					uint8_t *p = slurp(f, &len);
					h = XXH3_64bits_withSeed(p, len, h);
					free(p);
				}
			}
			free(de[i]);
		}
		if (n >= 0)
			free(de);
	}
	return h;
}

struct tally {
	uint64_t cases, intact, lost, recoveries, quarantined;
};

/* Recover three times, read everything back, check. @damaged(b) says
 * whether block b of the target is touched. */
static void run_case(const struct variant *v, size_t cut, size_t flip, struct tally *t)
{
	static uint8_t intact[NREC + 64], seen[NREC + 64];
	const struct file *tf = &v->seg[v->target];
	uint64_t fp[3], next[3], lost = 0;
	char path[400];
	struct rt_spool *sp;
	uint64_t *seqs;
	int n;

	put_case(v, cut, flip);
	memset(intact, 0, sizeof(intact));
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < v->nseg; i++) {
		const struct file *f = &v->seg[i];
		for (uint32_t b = 0; b < f->nb; b++) {
			int bad = 0;
			if (i == v->target && cut != SIZE_MAX)
				bad = f->b[b].data_end > cut;
			if (i == v->target && flip != SIZE_MAX)
				bad = flip / 8 >= f->b[b].index_off && flip / 8 < f->b[b].data_end;
			if (i == v->target && b >= f->nb)
				bad = 1;
			for (uint32_t k = 0; k < f->b[b].nrec && !bad; k++)
				intact[f->b[b].first + k] = 1;
		}
	}
	(void)tf;
	snprintf(path, sizeof(path), "%s/case", dir);
	for (int r = 0; r < 3; r++) {
		struct rt_recovered rec;
		CHECK_EQ(rt_spool_open(path, NULL, RT_SPOOL_LOCK, &sp), 0);
		CHECK_EQ(rt_spool_recover(sp, ring_id, nslots, count_log, NULL, &rec), 0);
		next[r] = rec.next_seq;
		t->quarantined += r == 0 ? rec.quarantined : 0;
		CHECK(r == 0 || rec.quarantined == 0, "recovery %d set more aside", r + 1);
		rt_recovered_free(&rec);
		rt_spool_close(sp);
		fp[r] = fingerprint();
		t->recoveries++;
	}
	CHECK(fp[1] == fp[0] && fp[2] == fp[0],
	      "%s, %s %zu: the second or third recovery changed the spool", v->what,
	      cut != SIZE_MAX ? "cut at" : "bit", cut != SIZE_MAX ? cut : flip);
	CHECK(next[1] == next[0] && next[2] == next[0], "next sequence differs between recoveries");
	CHECK(next[0] > v->durable, "%s: next #%llu, but #%llu was published durable", v->what,
	      (unsigned long long)next[0], (unsigned long long)v->durable);

	/* Read it all back the way dump and the filesystem do. */
	CHECK_EQ(rt_spool_open(path, NULL, 0, &sp), 0);
	n = rt_spool_list(sp, &seqs);
	for (int i = 0; i < n; i++) {
		struct rt_buf body = {0};
		struct rt_block blk;
		struct rt_seg *s;
		char name[32];
		rt_seg_name(name, seqs[i]);
		memset(&blk, 0, sizeof(blk));
		CHECK_EQ(rt_seg_open(sp->dirfd, name, 0, &s), 0);
		CHECK(i == n - 1 || (s->closed && !s->damaged),
		      "%s, %s %zu: %s is not the newest and not closed (%s)", v->what,
		      cut != SIZE_MAX ? "cut at" : "bit", cut != SIZE_MAX ? cut : flip, name,
		      s->damaged ? s->damage : "no footer");
		CHECK(!s->damaged, "%s: %s", name, s->damage);
		for (uint32_t b = 0; b < s->nblocks; b++) {
			const struct rt_seg_block *sb = &s->blocks[b];
			CHECK(next[0] >= sb->first_seq + sb->nrec, "next #%llu inside the spool",
			      (unsigned long long)next[0]);
			if (rt_seg_read_body(s, b, &body) != 0) {
				/* Only a flip in the DATA frame of a closed
				 * segment stays where it is (readers see it). */
				CHECK(flip != SIZE_MAX && !intact[sb->first_seq],
				      "%s: block %u (#%llu) is intact but does not read", name, b,
				      (unsigned long long)sb->first_seq);
				continue;
			}
			CHECK_EQ(rt_block_decode(body.p, body.len, sb->first_seq, sb->nrec, &blk), 0);
			for (uint32_t k = 0; k < blk.nrec; k++) {
				struct rt_rec r;
				uint64_t seq = sb->first_seq + k;
				rt_block_rec(&blk, k, &r);
				CHECK(seq < NREC + 64 && intact[seq],
				      "%s, %s %zu: record #%llu is read but was damaged", v->what,
				      cut != SIZE_MAX ? "cut at" : "bit", cut != SIZE_MAX ? cut : flip,
				      (unsigned long long)seq);
				CHECK(!seen[seq], "record #%llu twice", (unsigned long long)seq);
				CHECK(r.msg_len == msg_len[seq] && !memcmp(r.msg, msgs[seq], r.msg_len),
				      "record #%llu: other bytes", (unsigned long long)seq);
				seen[seq] = 1;
			}
		}
		rt_block_free(&blk);
		rt_buf_free(&body);
		rt_seg_close(s);
	}
	free(seqs);
	rt_spool_close(sp);
	for (uint64_t q = 0; q < NREC + 64; q++) {
		t->intact += intact[q];
		if (intact[q] && !seen[q])
			lost++;
	}
	if (lost)
		fprintf(stderr, "%s, %s %zu: %llu intact records lost\n", v->what,
			cut != SIZE_MAX ? "cut at" : "bit", cut != SIZE_MAX ? cut : flip,
			(unsigned long long)lost);
	t->lost += lost;
	t->cases++;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"full", no_argument, NULL, 'f'},
					     {"seed", required_argument, NULL, 's'},
					     {NULL, 0, NULL, 0}};
	static struct variant v[4];
	uint64_t seed = t_now_ns(), t0;
	int full = 0, opt, nflips;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'f')
			full = 1;
		else if (opt == 's')
			seed = strtoull(optarg, NULL, 10);
	}
	printf("seed %llu\n", (unsigned long long)seed);
	srandom((unsigned)seed);
	snprintf(dir, sizeof(dir), "/dev/shm/rt-test-recover-%d", (int)getpid());
	CHECK(mkdir(dir, 0750) == 0, "mkdir %s", dir);
	make_base(&v[0]);
	make_variants(v);
	nflips = full ? 1000 : 50;
	t0 = t_now_ns();

	for (int k = 0; k < 4; k++) {
		const struct file *f = &v[k].seg[v[k].target];
		struct tally cut = {0}, fl = {0};
		for (size_t off = 0; off <= f->n; off++) {
			int boundary = 0;
			for (uint32_t b = 0; b <= f->nb && !boundary; b++) {
				uint64_t e = b < f->nb ? f->b[b].index_off : f->b[f->nb - 1].data_end;
				boundary = off + 1 >= e && off <= e + 1;
			}
			if (full || off % 31 == 0 || boundary || off == f->n)
				run_case(&v[k], off, SIZE_MAX, &cut);
		}
		for (int i = 0; i < nflips; i++)
			run_case(&v[k], SIZE_MAX, (size_t)random() % (f->n * 8), &fl);
		printf("ok - %s (%zu bytes, %u blocks): %llu cuts, intact records lost %llu of "
		       "%llu; %llu bit flips, intact records lost %llu of %llu; 3 recoveries each, "
		       "the 2nd and 3rd changed nothing\n",
		       v[k].what, f->n, f->nb, (unsigned long long)cut.cases,
		       (unsigned long long)cut.lost, (unsigned long long)cut.intact,
		       (unsigned long long)fl.cases, (unsigned long long)fl.lost,
		       (unsigned long long)fl.intact);
		CHECK(cut.lost == 0 && fl.lost == 0, "intact records were lost");
	}
	printf("# %.1f s, %d reports\n", (double)(t_now_ns() - t0) / 1e9, reports);
	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		CHECK(system(cmd) == 0, "cleanup");
	}
	for (int k = 1; k < 4; k++)
		for (int i = 0; i < v[k].nseg; i++) {
			free(v[k].seg[i].p);
			free(v[k].seg[i].b);
		}
	for (int i = 0; i < v[0].nseg; i++) {
		free(v[0].seg[i].p);
		free(v[0].seg[i].b);
	}
	for (int i = 0; i < NREC + 64; i++)
		free(msgs[i]);
	free(meta);
	return 0;
}
