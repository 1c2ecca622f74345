/* SPDX-License-Identifier: MIT */
/*
 * block.c - block bodies: the columnar content of a DATA frame.
 *
 * A body keeps each field of the records in a column of its own, so that LZ4
 * sees long runs of like with like: messages with messages, severities with
 * severities (mostly the same byte again and again). That keeps the
 * compression ratio close to that of the bare log text.
 *
 *   0      4      8      10        12         16                     48      56
 *   +------+------+------+---------+----------+----------------------+-------+
 *   | RTBK | nrec | nsvc | nwriters|svc_bytes | col_len[8] (u32 each) | tbase |
 *   +------+------+------+---------+----------+----------------------+-------+
 *   | services   nsvc x {u8 len, name}                                       |
 *   | writers    nwriters x {u32 pid, u32 tid}                               |
 *   | time       per record: varint zigzag(time - previous), from tbase      |
 *   | severity   nrec bytes                                                  |
 *   | flags      nrec bytes: 0x02 trace, 0x04 span, 0x08 loss, 0x80 the      |
 *   |            message holds '\n' so its length is in the mlen column      |
 *   | service    per record: varint index into services                      |
 *   | writer     per record: varint index into writers                       |
 *   | alen       per record: varint length of its attribute block            |
 *   | mlen       varint message length, only for records with flag 0x80      |
 *   | ids        16-byte trace id and/or 8-byte span id, in record order      |
 *   | attrs      the attribute blocks, one after another                     |
 *   | msgs       each message followed by '\n' (so most need no length)      |
 *   +-------------------------------------------------------------------------+
 *   col_len[] gives the bytes of: time, service, writer, alen, mlen, ids,
 *   attrs, msgs (severity and flags are nrec bytes each).
 */
#include <errno.h>
#include <lz4frame.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "rtseg.h"
#include "seg_int.h"

#define BODY_MAGIC 0x4b425452u /* "RTBK" */
#define BODY_HDR 56u
#define BF_MSGLEN 0x80u /* body-only flag: the message length is stored */
enum { COL_TIME, COL_SVC, COL_WRITER, COL_ALEN, COL_MLEN, COL_IDS, COL_ATTRS, COL_MSGS, NCOLS };
#define MAX_DICT 65535u

/* ------------------------------------------------------------------------
 * Buffers and little-endian helpers
 * ------------------------------------------------------------------------ */

int rt_buf_grow(struct rt_buf *b, size_t more)
{
	size_t cap;
	uint8_t *p;

	if (b->cap - b->len >= more)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap - b->len < more) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int rt_buf_put(struct rt_buf *b, const void *p, size_t n)
{
	int err = rt_buf_reserve(b, n);
	if (err)
		return err;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

void rt_buf_free(struct rt_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static inline void put_varint(struct rt_buf *b, uint64_t v)
{
	/* The caller reserved room (at most 10 bytes). */
	while (v >= 0x80) {
		b->p[b->len++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	b->p[b->len++] = (uint8_t)v;
}

static inline int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;

	while (*p < end && shift < 64) {
		uint8_t c = *(*p)++;
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*out = v;
			return 0;
		}
		shift += 7;
	}
	return -EBADMSG;
}

/* ------------------------------------------------------------------------
 * The builder
 * ------------------------------------------------------------------------ */

struct svc_acc {
	char name[RT_SERVICE_MAX];
	uint8_t len;
	uint32_t count[RT_SEV_CLASSES];
	uint64_t bytes[RT_SEV_CLASSES];
};

struct slot16 {
	uint64_t key;  /* writer: pid << 32 | tid; service: hash */
	uint32_t idx1; /* index + 1; 0 = empty */
};

struct rt_bb {
	char host[256];
	size_t host_len;
	uint64_t first_seq;
	uint32_t nrec;
	uint64_t tbase, tprev, tmin, tmax;
	struct rt_buf col[NCOLS], sev, flags, svcnames, writers;
	/* services */
	struct slot16 *st;
	uint32_t st_cap;
	struct svc_acc *svc;
	uint32_t nsvc, svc_cap;
	/* writers */
	struct slot16 *wt;
	uint32_t wt_cap, nwriters;
	/* trace id hashes, for the bloom filter */
	uint64_t *traces;
	size_t ntraces, traces_cap;
	LZ4F_cctx *cctx;
	size_t body_len;
	/* The last record's service, writer and line prefix length: runs of
	 * records from one writer skip the lookups. */
	const char *last_svc;
	size_t last_svc_len;
	int last_svc_idx;
	uint32_t last_pid, last_tid;
	int last_wr_idx;
	size_t last_prefix;
};

int rt_bb_new(const char *host, struct rt_bb **out)
{
	struct rt_bb *bb = calloc(1, sizeof(*bb));

	if (!bb)
		return -ENOMEM;
	bb->host_len = strlen(host);
	if (bb->host_len >= sizeof(bb->host)) {
		free(bb);
		return -EINVAL;
	}
	memcpy(bb->host, host, bb->host_len + 1);
	if (LZ4F_isError(LZ4F_createCompressionContext(&bb->cctx, LZ4F_VERSION))) {
		free(bb);
		return -ENOMEM;
	}
	*out = bb;
	return 0;
}

void rt_bb_free(struct rt_bb *bb)
{
	if (!bb)
		return;
	for (int i = 0; i < NCOLS; i++)
		rt_buf_free(&bb->col[i]);
	rt_buf_free(&bb->sev);
	rt_buf_free(&bb->flags);
	rt_buf_free(&bb->svcnames);
	rt_buf_free(&bb->writers);
	free(bb->st);
	free(bb->svc);
	free(bb->wt);
	free(bb->traces);
	LZ4F_freeCompressionContext(bb->cctx);
	free(bb);
}

void rt_bb_reset(struct rt_bb *bb, uint64_t first_seq)
{
	bb->first_seq = first_seq;
	bb->nrec = 0;
	for (int i = 0; i < NCOLS; i++)
		bb->col[i].len = 0;
	bb->sev.len = bb->flags.len = bb->svcnames.len = bb->writers.len = 0;
	if (bb->st)
		memset(bb->st, 0, bb->st_cap * sizeof(*bb->st));
	if (bb->wt)
		memset(bb->wt, 0, bb->wt_cap * sizeof(*bb->wt));
	bb->nsvc = bb->nwriters = 0;
	bb->ntraces = 0;
	bb->body_len = BODY_HDR;
	bb->last_svc_idx = bb->last_wr_idx = -1;
}

uint32_t rt_bb_count(const struct rt_bb *bb)
{
	return bb->nrec;
}

uint64_t rt_bb_next_seq(const struct rt_bb *bb)
{
	return bb->first_seq + bb->nrec;
}

void rt_bb_times(const struct rt_bb *bb, uint64_t *tmin, uint64_t *tmax)
{
	*tmin = bb->tmin;
	*tmax = bb->tmax;
}

size_t rt_bb_body_len(const struct rt_bb *bb)
{
	return bb->body_len;
}

/* The sum of the parts, to keep the running total honest. */
static size_t body_len_now(const struct rt_bb *bb)
{
	size_t n = BODY_HDR + bb->svcnames.len + bb->writers.len + bb->sev.len + bb->flags.len;
	for (int i = 0; i < NCOLS; i++)
		n += bb->col[i].len;
	return n;
}

/* Grow an open-addressing table to @cap slots and re-insert. */
static int table_grow(struct slot16 **t, uint32_t *cap, uint32_t want, const uint64_t *keys_of,
		      uint32_t n)
{
	struct slot16 *nt = calloc(want, sizeof(*nt));
	uint32_t i;

	if (!nt)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		uint32_t h = (uint32_t)(keys_of[i] * 0x9e3779b97f4a7c15ull >> 32) & (want - 1);
		while (nt[h].idx1)
			h = (h + 1) & (want - 1);
		nt[h].key = keys_of[i];
		nt[h].idx1 = i + 1;
	}
	free(*t);
	*t = nt;
	*cap = want;
	return 0;
}

/* Find @key; on a miss return -1 and set *slot to where it would go. */
static int table_find(const struct slot16 *t, uint32_t cap, uint64_t key, uint32_t *slot)
{
	uint32_t h = (uint32_t)(key * 0x9e3779b97f4a7c15ull >> 32) & (cap - 1);

	while (t[h].idx1) {
		if (t[h].key == key) {
			*slot = h;
			return (int)t[h].idx1 - 1;
		}
		h = (h + 1) & (cap - 1);
	}
	*slot = h;
	return -1;
}

/* Index of the service named in @r, adding it to the block if new. */
static int service_index(struct rt_bb *bb, const struct rt_rec *r)
{
	uint64_t key = XXH3_64bits(r->service, r->service_len);
	uint32_t slot, h, i;
	int idx;

	if (!bb->st || bb->nsvc * 2 >= bb->st_cap) {
		uint64_t *keys = malloc((bb->nsvc + 1) * sizeof(*keys));
		int err;
		if (!keys)
			return -ENOMEM;
		for (i = 0; i < bb->nsvc; i++)
			keys[i] = XXH3_64bits(bb->svc[i].name, bb->svc[i].len);
		err = table_grow(&bb->st, &bb->st_cap, bb->st_cap ? bb->st_cap * 2 : 64, keys, bb->nsvc);
		free(keys);
		if (err)
			return err;
	}
	/* Equal hashes are checked against the name: walk the probe chain. */
	h = (uint32_t)(key * 0x9e3779b97f4a7c15ull >> 32) & (bb->st_cap - 1);
	while (bb->st[h].idx1) {
		struct svc_acc *a = &bb->svc[bb->st[h].idx1 - 1];
		if (bb->st[h].key == key && a->len == r->service_len &&
		    !memcmp(a->name, r->service, a->len))
			return (int)bb->st[h].idx1 - 1;
		h = (h + 1) & (bb->st_cap - 1);
	}
	slot = h;
	if (bb->nsvc == MAX_DICT)
		return -ENOSPC;
	if (bb->nsvc == bb->svc_cap) {
		uint32_t cap = bb->svc_cap ? bb->svc_cap * 2 : 16;
		struct svc_acc *ns = realloc(bb->svc, cap * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		bb->svc = ns;
		bb->svc_cap = cap;
	}
	if (rt_buf_reserve(&bb->svcnames, 1 + r->service_len))
		return -ENOMEM;
	idx = (int)bb->nsvc++;
	memset(&bb->svc[idx], 0, sizeof(bb->svc[idx]));
	memcpy(bb->svc[idx].name, r->service, r->service_len);
	bb->svc[idx].len = (uint8_t)r->service_len;
	bb->svcnames.p[bb->svcnames.len++] = (uint8_t)r->service_len;
	memcpy(bb->svcnames.p + bb->svcnames.len, r->service, r->service_len);
	bb->svcnames.len += r->service_len;
	bb->st[slot].key = key;
	bb->st[slot].idx1 = (uint32_t)idx + 1;
	return idx;
}

static int writer_index(struct rt_bb *bb, uint32_t pid, uint32_t tid)
{
	uint64_t key = (uint64_t)pid << 32 | tid;
	uint32_t slot, i;
	int idx;

	if (!bb->wt || bb->nwriters * 2 >= bb->wt_cap) {
		uint64_t *keys = malloc((bb->nwriters + 1) * sizeof(*keys));
		int err;
		if (!keys)
			return -ENOMEM;
		for (i = 0; i < bb->nwriters; i++) {
			uint32_t p, t;
			memcpy(&p, bb->writers.p + 8 * i, 4);
			memcpy(&t, bb->writers.p + 8 * i + 4, 4);
			keys[i] = (uint64_t)p << 32 | t;
		}
		err = table_grow(&bb->wt, &bb->wt_cap, bb->wt_cap ? bb->wt_cap * 2 : 64, keys,
				 bb->nwriters);
		free(keys);
		if (err)
			return err;
	}
	idx = table_find(bb->wt, bb->wt_cap, key, &slot);
	if (idx >= 0)
		return idx;
	if (bb->nwriters == MAX_DICT)
		return -ENOSPC;
	if (rt_buf_reserve(&bb->writers, 8))
		return -ENOMEM;
	memcpy(bb->writers.p + bb->writers.len, &pid, 4);
	memcpy(bb->writers.p + bb->writers.len + 4, &tid, 4);
	bb->writers.len += 8;
	idx = (int)bb->nwriters++;
	bb->wt[slot].key = key;
	bb->wt[slot].idx1 = (uint32_t)idx + 1;
	return idx;
}

int rt_bb_add(struct rt_bb *bb, const struct rt_rec *r)
{
	uint64_t seq = bb->first_seq + bb->nrec, zz;
	int64_t delta;
	int svc, wr, cls, same;
	uint8_t flags;

	/* Records come in runs from one writer: compare with the last one
	 * before hashing anything. */
	same = bb->last_svc_idx >= 0 && r->service_len == bb->last_svc_len &&
	       !memcmp(r->service, bb->last_svc, r->service_len);
	svc = same ? bb->last_svc_idx : service_index(bb, r);
	if (svc < 0)
		return svc;
	if (bb->last_wr_idx >= 0 && r->pid == bb->last_pid && r->tid == bb->last_tid) {
		wr = bb->last_wr_idx;
	} else {
		same = 0;
		wr = writer_index(bb, r->pid, r->tid);
		if (wr < 0)
			return wr;
	}
	if (!same || svc != bb->last_svc_idx)
		bb->last_prefix = rt_render_prefix_len(r, bb->host_len);
	bb->last_svc = bb->svc[svc].name;
	bb->last_svc_len = bb->svc[svc].len;
	bb->last_svc_idx = svc;
	bb->last_pid = r->pid;
	bb->last_tid = r->tid;
	bb->last_wr_idx = wr;
	if (rt_buf_reserve(&bb->col[COL_TIME], 10) || rt_buf_reserve(&bb->col[COL_SVC], 3) ||
	    rt_buf_reserve(&bb->col[COL_WRITER], 3) || rt_buf_reserve(&bb->col[COL_ALEN], 5) ||
	    rt_buf_reserve(&bb->col[COL_MLEN], 5) || rt_buf_reserve(&bb->col[COL_IDS], 24) ||
	    rt_buf_reserve(&bb->col[COL_ATTRS], r->attrs_len) ||
	    rt_buf_reserve(&bb->col[COL_MSGS], r->msg_len + 1) || rt_buf_reserve(&bb->sev, 1) ||
	    rt_buf_reserve(&bb->flags, 1))
		return -ENOMEM;
	if (r->trace_id && bb->ntraces == bb->traces_cap) {
		size_t cap = bb->traces_cap ? bb->traces_cap * 2 : 256;
		uint64_t *nt = realloc(bb->traces, cap * sizeof(*nt));
		if (!nt)
			return -ENOMEM;
		bb->traces = nt;
		bb->traces_cap = cap;
	}

	if (bb->nrec == 0) {
		bb->tbase = bb->tprev = bb->tmin = bb->tmax = r->time_ns;
	} else {
		if (r->time_ns < bb->tmin)
			bb->tmin = r->time_ns;
		if (r->time_ns > bb->tmax)
			bb->tmax = r->time_ns;
	}
	delta = (int64_t)(r->time_ns - bb->tprev);
	zz = ((uint64_t)delta << 1) ^ (uint64_t)(delta >> 63);
	bb->tprev = r->time_ns;
	flags = (uint8_t)((r->flags & RT_REC_LOSS) | (r->trace_id ? RT_REC_TRACE : 0) |
			  (r->span_id ? RT_REC_SPAN : 0));
	/* A message that holds a newline cannot be found by its terminator. */
	if (r->msg_len && memchr(r->msg, '\n', r->msg_len)) {
		flags |= BF_MSGLEN;
		put_varint(&bb->col[COL_MLEN], r->msg_len);
	}
	put_varint(&bb->col[COL_TIME], zz);
	bb->sev.p[bb->sev.len++] = r->severity;
	bb->flags.p[bb->flags.len++] = flags;
	put_varint(&bb->col[COL_SVC], (uint64_t)svc);
	put_varint(&bb->col[COL_WRITER], (uint64_t)wr);
	put_varint(&bb->col[COL_ALEN], r->attrs_len);
	if (r->trace_id) {
		struct rt_buf *ids = &bb->col[COL_IDS];
		memcpy(ids->p + ids->len, r->trace_id, 16);
		ids->len += 16;
		bb->traces[bb->ntraces++] = XXH3_64bits(r->trace_id, 16);
	}
	if (r->span_id) {
		struct rt_buf *ids = &bb->col[COL_IDS];
		memcpy(ids->p + ids->len, r->span_id, 8);
		ids->len += 8;
	}
	if (r->attrs_len) {
		memcpy(bb->col[COL_ATTRS].p + bb->col[COL_ATTRS].len, r->attrs, r->attrs_len);
		bb->col[COL_ATTRS].len += r->attrs_len;
	}
	{
		struct rt_buf *m = &bb->col[COL_MSGS];
		if (r->msg_len)
			memcpy(m->p + m->len, r->msg, r->msg_len);
		m->len += r->msg_len;
		m->p[m->len++] = '\n';
	}

	cls = rt_sev_class(r->severity);
	bb->svc[svc].count[cls]++;
	bb->svc[svc].bytes[cls] += rt_render_len_rest(r, seq, bb->last_prefix);
	bb->nrec++;
	bb->body_len = body_len_now(bb);
	return 0;
}

/* Bits of the bloom filter for @n trace ids: about 12 per id, a multiple of
 * 64, between 64 and 2^19. */
static uint32_t bloom_bits_for(size_t n)
{
	uint64_t bits = (uint64_t)n * 12;
	if (bits < 64)
		bits = 64;
	if (bits > (1u << 19))
		bits = 1u << 19;
	return (uint32_t)((bits + 63) & ~63ull);
}

#define BLOOM_K 4

static void bloom_positions(uint64_t h, uint32_t bits, uint32_t pos[BLOOM_K])
{
	uint32_t h1 = (uint32_t)h, h2 = (uint32_t)(h >> 32) | 1u, i;
	for (i = 0; i < BLOOM_K; i++)
		pos[i] = (h1 + i * h2) % bits;
}

int rt_bloom_maybe(const struct rt_seg_block *b, const uint8_t trace[16])
{
	uint32_t pos[BLOOM_K], i;

	if (!b->bloom_bits)
		return 0;
	bloom_positions(XXH3_64bits(trace, 16), b->bloom_bits, pos);
	for (i = 0; i < BLOOM_K; i++)
		if (!(b->bloom[pos[i] / 8] & (1u << (pos[i] % 8))))
			return 0;
	return 1;
}

int rt_bb_seal(struct rt_bb *bb, struct rt_buf *out, uint64_t data_off, uint32_t block_no,
	       uint64_t ring_id, const struct rt_cursor *cur, size_t ncur)
{
	LZ4F_preferences_t prefs;
	uint8_t hdr[BODY_HDR];
	uint32_t bloom_bits = bb->ntraces ? bloom_bits_for(bb->ntraces) : 0, u32, i;
	size_t body_len = rt_bb_body_len(bb), index_len, bound, start, dpos, n;
	const struct rt_buf *parts[4 + NCOLS] = {
		&bb->svcnames,          &bb->writers,           &bb->col[COL_TIME],
		&bb->sev,               &bb->flags,             &bb->col[COL_SVC],
		&bb->col[COL_WRITER],   &bb->col[COL_ALEN],     &bb->col[COL_MLEN],
		&bb->col[COL_IDS],      &bb->col[COL_ATTRS],    &bb->col[COL_MSGS],
	};
	uint8_t *w, *fixed;
	uint64_t u64;

	if (bb->nrec == 0 || body_len > UINT32_MAX)
		return -EINVAL;

	/* The INDEX frame's size is known before compressing: reserve it,
	 * compress straight after it, then fill it in. */
	index_len = RT_SEG_FRAME_HDR + SEG_INDEX_FIXED + (size_t)bloom_bits / 8 +
		    ncur * SEG_CURSOR_BYTES;
	for (i = 0; i < bb->nsvc; i++)
		index_len += 1 + bb->svc[i].len + 4 * RT_SEV_CLASSES + 8 * RT_SEV_CLASSES;
	if (index_len > RT_SEG_MAX_FRAME)
		return -E2BIG;

	memset(&prefs, 0, sizeof(prefs));
	prefs.frameInfo.blockSizeID = LZ4F_max4MB;
	prefs.frameInfo.blockMode = LZ4F_blockIndependent;
	/* The INDEX frame's XXH3-64 covers every byte of this frame, so LZ4's
	 * own XXH32 checksums (as costly as the compression here) would only
	 * repeat it. The frame stays a valid one for `lz4 -t` and `lz4 -dc`. */
	prefs.frameInfo.contentChecksumFlag = LZ4F_noContentChecksum;
	prefs.frameInfo.blockChecksumFlag = LZ4F_noBlockChecksum;
	prefs.frameInfo.contentSize = body_len;
	prefs.compressionLevel = 1; /* what `lz4 -1` uses */
	/* Compress each column as it is handed over, straight from our buffer:
	 * without autoFlush LZ4F copies the input into a 4 MiB buffer that it
	 * allocates and zeroes for every frame. */
	prefs.autoFlush = 1;
	/* With autoFlush every piece becomes LZ4 blocks of its own: bound
	 * each piece, not the sum. */
	bound = LZ4F_HEADER_SIZE_MAX + LZ4F_compressBound(BODY_HDR, &prefs);
	for (i = 0; i < 4 + NCOLS; i++)
		bound += LZ4F_compressBound(parts[i]->len, &prefs);
	if (rt_buf_reserve(out, index_len + bound))
		return -ENOMEM;
	start = out->len;
	w = out->p + start + index_len;

	/* The DATA frame. */
	memset(hdr, 0, sizeof(hdr));
	u32 = BODY_MAGIC;
	memcpy(hdr, &u32, 4);
	memcpy(hdr + 4, &bb->nrec, 4);
	u32 = bb->nsvc | (bb->nwriters << 16);
	memcpy(hdr + 8, &u32, 4);
	u32 = (uint32_t)bb->svcnames.len;
	memcpy(hdr + 12, &u32, 4);
	for (i = 0; i < NCOLS; i++) {
		u32 = (uint32_t)bb->col[i].len;
		memcpy(hdr + 16 + 4 * i, &u32, 4);
	}
	memcpy(hdr + 48, &bb->tbase, 8);
	n = LZ4F_compressBegin(bb->cctx, w, bound, &prefs);
	if (LZ4F_isError(n))
		return -EIO;
	dpos = n;
	n = LZ4F_compressUpdate(bb->cctx, w + dpos, bound - dpos, hdr, sizeof(hdr), NULL);
	if (LZ4F_isError(n))
		return -EIO;
	dpos += n;
	for (i = 0; i < 4 + NCOLS; i++) {
		if (!parts[i]->len)
			continue;
		n = LZ4F_compressUpdate(bb->cctx, w + dpos, bound - dpos, parts[i]->p, parts[i]->len,
					NULL);
		if (LZ4F_isError(n))
			return -EIO;
		dpos += n;
	}
	n = LZ4F_compressEnd(bb->cctx, w + dpos, bound - dpos, NULL);
	if (LZ4F_isError(n))
		return -EIO;
	dpos += n;
	if (dpos > UINT32_MAX)
		return -E2BIG;

	/* The INDEX frame. */
	w = out->p + start;
	fixed = seg_frame_begin(w, index_len, RT_SEG_INDEX, SEG_INDEX_FIXED);
	memset(fixed, 0, SEG_INDEX_FIXED);
	memcpy(fixed + 0, &block_no, 4);
	memcpy(fixed + 4, &bb->nrec, 4);
	memcpy(fixed + 8, &bb->first_seq, 8);
	memcpy(fixed + 16, &bb->tmin, 8);
	memcpy(fixed + 24, &bb->tmax, 8);
	u64 = data_off + index_len;
	memcpy(fixed + 32, &u64, 8);
	u32 = (uint32_t)dpos;
	memcpy(fixed + 40, &u32, 4);
	u32 = (uint32_t)body_len;
	memcpy(fixed + 44, &u32, 4);
	u64 = XXH3_64bits(out->p + start + index_len, dpos);
	memcpy(fixed + 48, &u64, 8);
	memcpy(fixed + 56, &ring_id, 8);
	u32 = RT_RENDER_VERSION;
	memcpy(fixed + 64, &u32, 4);
	memcpy(fixed + 68, &bb->nsvc, 4);
	memcpy(fixed + 72, &bloom_bits, 4);
	u32 = (uint32_t)ncur;
	memcpy(fixed + 76, &u32, 4);
	w = fixed + SEG_INDEX_FIXED;
	for (i = 0; i < bb->nsvc; i++) {
		*w++ = bb->svc[i].len;
		memcpy(w, bb->svc[i].name, bb->svc[i].len);
		w += bb->svc[i].len;
		memcpy(w, bb->svc[i].count, 4 * RT_SEV_CLASSES);
		w += 4 * RT_SEV_CLASSES;
		memcpy(w, bb->svc[i].bytes, 8 * RT_SEV_CLASSES);
		w += 8 * RT_SEV_CLASSES;
	}
	if (bloom_bits) {
		memset(w, 0, bloom_bits / 8);
		for (size_t k = 0; k < bb->ntraces; k++) {
			uint32_t pos[BLOOM_K];
			bloom_positions(bb->traces[k], bloom_bits, pos);
			for (i = 0; i < BLOOM_K; i++)
				w[pos[i] / 8] |= (uint8_t)(1u << (pos[i] % 8));
		}
		w += bloom_bits / 8;
	}
	for (size_t k = 0; k < ncur; k++)
		w = seg_put_cursor(w, &cur[k]);
	seg_frame_end(out->p + start, index_len);
	out->len = start + index_len + dpos;
	return 0;
}

/* ------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------ */

void rt_block_free(struct rt_block *b)
{
	free(b->mem);
	memset(b, 0, sizeof(*b));
}

int rt_block_decode(const void *body, size_t len, uint64_t first_seq, uint32_t nrec,
		    struct rt_block *b)
{
	const uint8_t *p = body, *end, *col[NCOLS], *cend[NCOLS], *sev, *flg;
	uint32_t magic, n, dicts, svc_bytes, clen[NCOLS], i;
	uint64_t t, total, ids_pos = 0, attr_pos = 0, msg_pos = 0;
	size_t need;
	uint8_t *mem;

	if (len < BODY_HDR)
		return -EBADMSG;
	memcpy(&magic, p, 4);
	memcpy(&n, p + 4, 4);
	memcpy(&dicts, p + 8, 4);
	memcpy(&svc_bytes, p + 12, 4);
	memcpy(clen, p + 16, sizeof(clen));
	memcpy(&t, p + 48, 8);
	if (magic != BODY_MAGIC || n != nrec || n == 0)
		return -EBADMSG;
	b->nsvc = (uint16_t)dicts;
	b->nwriters = (uint16_t)(dicts >> 16);
	total = (uint64_t)BODY_HDR + svc_bytes + (uint64_t)b->nwriters * 8 + 2ull * n;
	for (i = 0; i < NCOLS; i++)
		total += clen[i];
	if (total != len)
		return -EBADMSG;

	/* One allocation for every per-record array. */
	need = (size_t)n * (8 + 1 + 1 + 2 + 2 + 4 * 5) + (size_t)b->nsvc * 4 + 64;
	if (b->mem_cap < need) {
		mem = realloc(b->mem, need);
		if (!mem)
			return -ENOMEM;
		b->mem = mem;
		b->mem_cap = need;
	}
	mem = b->mem;
	b->time = (uint64_t *)(void *)mem;
	mem += (size_t)n * 8;
	b->msg_off = (uint32_t *)(void *)mem;
	mem += (size_t)n * 4;
	b->msg_len = (uint32_t *)(void *)mem;
	mem += (size_t)n * 4;
	b->attr_off = (uint32_t *)(void *)mem;
	mem += (size_t)n * 4;
	b->attr_len = (uint32_t *)(void *)mem;
	mem += (size_t)n * 4;
	b->ids_off = (uint32_t *)(void *)mem;
	mem += (size_t)n * 4;
	b->svc_off = (uint32_t *)(void *)mem;
	mem += (size_t)b->nsvc * 4;
	b->svc = (uint16_t *)(void *)mem;
	mem += (size_t)n * 2;
	b->writer = (uint16_t *)(void *)mem;
	mem += (size_t)n * 2;
	b->sev = mem;
	mem += n;
	b->flags = mem;

	b->body = body;
	b->body_len = len;
	b->first_seq = first_seq;
	b->nrec = n;
	p += BODY_HDR;
	b->svc_names = p;
	end = p + svc_bytes;
	for (i = 0; i < b->nsvc; i++) {
		uint8_t l;
		if (p >= end)
			return -EBADMSG;
		l = *p;
		if (l == 0 || l > RT_SERVICE_MAX || (size_t)(end - p) < 1u + l ||
		    !rt_service_valid((const char *)p + 1, l))
			return -EBADMSG;
		b->svc_off[i] = (uint32_t)(p - b->svc_names);
		p += 1 + l;
	}
	if (p != end)
		return -EBADMSG;
	b->writers = p;
	p += (size_t)b->nwriters * 8;
	col[COL_TIME] = p;
	cend[COL_TIME] = p + clen[COL_TIME];
	sev = cend[COL_TIME];
	flg = sev + n;
	p = flg + n;
	for (i = COL_SVC; i < NCOLS; i++) {
		col[i] = p;
		cend[i] = p + clen[i];
		p = cend[i];
	}
	b->ids = col[COL_IDS];
	b->attrs = col[COL_ATTRS];
	b->msgs = col[COL_MSGS];
	memcpy(b->sev, sev, n);
	memcpy(b->flags, flg, n);
	for (i = 0; i < n; i++) {
		uint64_t zz, svc, wr, al, ml;
		uint8_t f = b->flags[i];
		if (get_varint(&col[COL_TIME], cend[COL_TIME], &zz))
			return -EBADMSG;
		t += (uint64_t)((int64_t)(zz >> 1) ^ -(int64_t)(zz & 1));
		b->time[i] = t;
		if (b->sev[i] < RT_SEVERITY_MIN || b->sev[i] > RT_SEVERITY_MAX ||
		    (f & ~(RT_REC_TRACE | RT_REC_SPAN | RT_REC_LOSS | BF_MSGLEN)))
			return -EBADMSG;
		if (get_varint(&col[COL_SVC], cend[COL_SVC], &svc) ||
		    get_varint(&col[COL_WRITER], cend[COL_WRITER], &wr) ||
		    get_varint(&col[COL_ALEN], cend[COL_ALEN], &al))
			return -EBADMSG;
		if (svc >= b->nsvc || wr >= b->nwriters)
			return -EBADMSG;
		b->svc[i] = (uint16_t)svc;
		b->writer[i] = (uint16_t)wr;
		b->ids_off[i] = (uint32_t)ids_pos;
		ids_pos += ((f & RT_REC_TRACE) ? 16 : 0) + ((f & RT_REC_SPAN) ? 8 : 0);
		if (ids_pos > clen[COL_IDS] || al > (uint64_t)(clen[COL_ATTRS] - attr_pos))
			return -EBADMSG;
		b->attr_off[i] = (uint32_t)attr_pos;
		b->attr_len[i] = (uint32_t)al;
		if (al && rt_attrs_check(b->attrs + attr_pos, al))
			return -EBADMSG;
		attr_pos += al;
		if (f & BF_MSGLEN) {
			if (get_varint(&col[COL_MLEN], cend[COL_MLEN], &ml) ||
			    ml >= (uint64_t)(clen[COL_MSGS] - msg_pos) || b->msgs[msg_pos + ml] != '\n')
				return -EBADMSG;
		} else {
			/* The message runs to the next newline. */
			const uint8_t *nl = memchr(b->msgs + msg_pos, '\n', clen[COL_MSGS] - msg_pos);
			if (!nl)
				return -EBADMSG;
			ml = (uint64_t)(nl - (b->msgs + msg_pos));
		}
		b->msg_off[i] = (uint32_t)msg_pos;
		b->msg_len[i] = (uint32_t)ml;
		msg_pos += ml + 1;
		b->flags[i] = f & (uint8_t)~BF_MSGLEN;
	}
	for (i = 0; i < NCOLS; i++)
		if (i != COL_IDS && i != COL_ATTRS && i != COL_MSGS && col[i] != cend[i])
			return -EBADMSG;
	if (ids_pos != clen[COL_IDS] || attr_pos != clen[COL_ATTRS] || msg_pos != clen[COL_MSGS])
		return -EBADMSG;
	return 0;
}

const char *rt_block_service(const struct rt_block *b, uint32_t i, size_t *len)
{
	const uint8_t *s = b->svc_names + b->svc_off[b->svc[i]];
	*len = s[0];
	return (const char *)s + 1;
}

void rt_block_rec(const struct rt_block *b, uint32_t i, struct rt_rec *out)
{
	const uint8_t *w = b->writers + (size_t)b->writer[i] * 8;
	const uint8_t *ids = b->ids + b->ids_off[i];

	out->time_ns = b->time[i];
	memcpy(&out->pid, w, 4);
	memcpy(&out->tid, w + 4, 4);
	out->severity = b->sev[i];
	out->flags = b->flags[i];
	out->trace_id = NULL;
	out->span_id = NULL;
	if (b->flags[i] & RT_REC_TRACE) {
		out->trace_id = ids;
		ids += 16;
	}
	if (b->flags[i] & RT_REC_SPAN)
		out->span_id = ids;
	out->service = rt_block_service(b, i, &out->service_len);
	out->attrs = b->attrs + b->attr_off[i];
	out->attrs_len = b->attr_len[i];
	out->msg = (const char *)b->msgs + b->msg_off[i];
	out->msg_len = b->msg_len[i];
}
