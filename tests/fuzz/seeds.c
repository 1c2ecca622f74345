/* SPDX-License-Identifier: MIT */
/* seeds.c - real segments, block bodies and ring records as fuzz seeds. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "rtseg.h"
#include "rtshm.h"
#include "rtwire.h"
#include "seeds.h"

/* A small but varied set of records: every flag, binary and newline-holding
 * messages, attributes, several services and writers. */
static void make_rec(int i, struct rt_rec *r, char *msg, uint8_t *ids, uint8_t *attrs)
{
	static const char *const svcs[] = {"api", "billing", "ringtail", "a-much-longer-service"};
	memset(r, 0, sizeof(*r));
	r->time_ns = 1700000000000000000ull + (uint64_t)i * 12345;
	r->pid = 100 + (uint32_t)(i % 3);
	r->tid = r->pid + (uint32_t)(i % 2);
	r->severity = (uint8_t)(1 + i % 24);
	r->flags = i % 11 == 0 ? RT_REC_LOSS : 0;
	r->service = svcs[i % 4];
	r->service_len = strlen(r->service);
	r->msg = msg;
	r->msg_len = (size_t)snprintf(msg, 128, "message %d%s", i,
				      i % 5 == 0 ? " with\na newline" : i % 7 == 0 ? "\x01\xff\\" : "");
	if (i % 3 == 0) {
		memset(ids, i, 16);
		r->trace_id = ids;
	}
	if (i % 4 == 0) {
		memset(ids + 16, i + 1, 8);
		r->span_id = ids + 16;
	}
	if (i % 6 == 0) {
		static const uint8_t a[] = {1, 'k', 2, 0, 'v', 'v'};
		memcpy(attrs, a, sizeof(a));
		r->attrs = attrs;
		r->attrs_len = sizeof(a);
	}
}

/* Append a header and @nblocks blocks (1, 6, 11... records) to @out. */
static int build(struct rt_buf *out, int nblocks, uint64_t *index_off, uint64_t *next)
{
	struct rt_seg_hdrinfo h;
	struct rt_cursor cur = {1, 2, 3, 4, 5, 0, 0};
	struct rt_bb *bb;
	uint64_t seq = 1;

	memset(&h, 0, sizeof(h));
	memset(h.epoch, 7, 16);
	strcpy(h.host, "fuzz-host");
	h.first_seq = 1;
	h.ring_id = 9;
	h.render_version = RT_RENDER_VERSION;
	if (rt_seg_header_frame(out, &h, &cur, 1) || rt_bb_new("fuzz-host", &bb))
		return -1;
	for (int b = 0; b < nblocks; b++) {
		rt_bb_reset(bb, seq);
		for (int i = 0; i < 1 + b * 5; i++) {
			struct rt_rec r;
			char msg[128];
			uint8_t ids[24], attrs[16];
			make_rec((int)seq, &r, msg, ids, attrs);
			rt_bb_add(bb, &r);
			seq++;
		}
		index_off[b] = out->len;
		if (rt_bb_seal(bb, out, out->len, (uint32_t)b, 9, &cur, 1))
			break;
	}
	rt_bb_free(bb);
	*next = seq;
	return 0;
}

static int segments(rt_seed_fn fn, void *arg)
{
	struct rt_buf out = {0};
	uint64_t index_off[4], next;

	if (build(&out, 4, index_off, &next))
		return -1;
	fn(arg, "open.lz4", out.p, out.len);
	rt_seg_footer_frame(&out, out.len, 1, next, 0, 0, index_off, 4);
	fn(arg, "closed.lz4", out.p, out.len);
	rt_buf_free(&out);
	return 2;
}

/* Block bodies as the reader decompresses them, each behind a u32 record
 * count (what the block fuzzer takes). */
static int bodies(rt_seed_fn fn, void *arg)
{
	struct rt_buf out = {0}, body = {0}, seed = {0};
	uint64_t index_off[4], next;
	struct rt_seg *s;
	char name[32];
	int count = 0, fd;
	FILE *f;

	if (build(&out, 4, index_off, &next) || !(f = tmpfile()))
		return -1;
	fd = fileno(f);
	if (write(fd, out.p, out.len) == (ssize_t)out.len && rt_seg_open_fd(fd, 0, 0, &s) == 0) {
		for (uint32_t b = 0; b < s->nblocks; b++) {
			if (rt_seg_read_body(s, b, &body))
				continue;
			seed.len = 0;
			rt_buf_put(&seed, &s->blocks[b].nrec, 4);
			rt_buf_put(&seed, body.p, body.len);
			snprintf(name, sizeof(name), "body-%u.bin", b);
			fn(arg, name, seed.p, seed.len);
			count++;
		}
		rt_seg_close(s);
	}
	fclose(f);
	rt_buf_free(&out);
	rt_buf_free(&body);
	rt_buf_free(&seed);
	return count;
}

static int records(rt_seed_fn fn, void *arg)
{
	struct rt_buf out = {0};

	for (int i = 0; i < 24; i++) {
		struct rt_rec r;
		char msg[128];
		uint8_t ids[24], attrs[16];
		make_rec(i, &r, msg, ids, attrs);
		r.flags &= (uint8_t)~RT_REC_LOSS; /* writers may not set it */
		if (rt_buf_reserve(&out, RT__ALIGN8(rt_rec_size(&r))))
			return -1;
		out.len += rt_rec_encode(&r, out.p + out.len);
	}
	fn(arg, "records.bin", out.p, out.len);
	rt_buf_free(&out);
	return 1;
}

/* What a server reads from a sender: HELLO, AUTH, batches of the blocks of
 * a real segment (the second repeating one block of the first), a GAP and
 * a PING, tagged as a sender with the harness's key tags them; and the
 * HELLO of a version 1 sender. */
static int wire(rt_seed_fn fn, void *arg)
{
	struct rt_buf seg = {0}, out = {0}, chm = {0};
	struct rt_wire_session sess;
	struct rt_challenge ch = {RT_WIRE_VERSION, RT_CH_AUTH, {0}};
	struct rt_hello hello;
	uint64_t index_off[4], next;
	struct rt_seg *s;
	FILE *f;
	int fd, count = 0;

	if (build(&seg, 4, index_off, &next) || !(f = tmpfile()))
		return -1;
	fd = fileno(f);
	memset(&hello, 0, sizeof(hello));
	hello.version = RT_WIRE_VERSION;
	memset(hello.nonce, 0x11, sizeof(hello.nonce));
	strcpy(hello.host, "fuzz-host");
	rt_wire_hello(&out, &hello);
	rt_fuzz_wire_challenge(ch.nonce);
	rt_wire_challenge(&chm, &ch);
	if (rt_wire_session_init(&sess, (const uint8_t *)RT_FUZZ_WIRE_KEY,
				 sizeof(RT_FUZZ_WIRE_KEY) - 1, 0, out.p + RT_WIRE_HDR,
				 out.len - RT_WIRE_HDR, chm.p + RT_WIRE_HDR, chm.len - RT_WIRE_HDR))
		return -1;
	{
		size_t start = out.len;
		rt_wire_auth(&out);
		rt_wire_tag(&sess, &out, start);
	}
	if (write(fd, seg.p, seg.len) == (ssize_t)seg.len && rt_seg_open_fd(fd, 0, 0, &s) == 0) {
		size_t start;
		for (int batch = 0; batch < 2; batch++) {
			start = out.len;
			rt_wire_begin(&out);
			rt_wire_batch_start(&out);
			for (uint32_t b = batch ? 1 : 0; b < (batch ? s->nblocks : 2); b++) {
				const struct rt_seg_block *sb = &s->blocks[b];
				rt_wire_batch_add(&out, start, seg.p + sb->index_off, sb->index_len,
						  seg.p + sb->data_off, sb->data_len);
			}
			rt_wire_end(&out, start, RT_W_BATCH);
			rt_wire_tag(&sess, &out, start);
		}
		rt_seg_close(s);
		start = out.len;
		rt_wire_gap(&out, next, next + 10);
		rt_wire_tag(&sess, &out, start);
		start = out.len;
		rt_wire_empty(&out, RT_W_PING);
		rt_wire_tag(&sess, &out, start);
		fn(arg, "stream.bin", out.p, out.len);
		count++;
	}
	/* A version 1 sender's HELLO. */
	out.len = 0;
	hello.version = 1;
	rt_wire_hello(&out, &hello);
	out.p[5] = 1;
	fn(arg, "hello-v1.bin", out.p, out.len);
	count++;
	rt_wire_session_free(&sess);
	fclose(f);
	rt_buf_free(&seg);
	rt_buf_free(&out);
	rt_buf_free(&chm);
	return count;
}

/* Images of a ring file: made empty, and after a writer wrote records of
 * every kind into it (the writer is this process: gone when the fuzzer
 * reads them, so the consumer drains and frees its slot). */
static int rings(rt_seed_fn fn, void *arg)
{
	struct rt_ring_params p;
	char path[128];
	uint8_t *img;
	size_t size;
	int n = 0, fd;

	snprintf(path, sizeof(path), "/dev/shm/rt-fuzz-seed-%d", (int)getpid());
	rt_ring_params_default(&p);
	p.size = RT_FUZZ_RING_SIZE;
	p.chunk_size = RT_FUZZ_RING_CHUNK;
	p.nslots = RT_FUZZ_RING_SLOTS;
	p.tsc = 0;
	p.writer_pct = 100;
	p.reserve_pct = 0;
	unlink(path);
	if (rt_ring_create(path, &p))
		return -1;
	fd = open(path, O_RDONLY);
	size = fd < 0 ? 0 : (size_t)lseek(fd, 0, SEEK_END); /* rounded to chunks */
	img = malloc(size);
	if (!img || pread(fd, img, size, 0) != (ssize_t)size)
		return -1;
	fn(arg, "ring-empty", img, size);
	n++;
	setenv(RT_RING_ENV, path, 1);
	rt_set_service("fuzz");
	for (int i = 0; i < 60; i++) {
		struct rt_opts o;
		struct rt_attr a = {"k", "v"};
		uint8_t tid[16] = {1, 2, 3};
		memset(&o, 0, sizeof(o));
		if (i % 3 == 0) {
			o.attrs = &a;
			o.nattrs = 1;
		}
		if (i % 4 == 0)
			o.trace_id = tid;
		if (i % 5 == 0)
			o.service = "other";
		if (i % 7 == 0)
			rt_printf(RT_WARN, "printf %d %s", i, "x");
		else
			rt_writex(RT_INFO + i % 4, &o, "a message of the seed, of 30 b", 21u + (size_t)(i % 9));
	}
	if (pread(fd, img, size, 0) != (ssize_t)size)
		return -1;
	fn(arg, "ring-records", img, size);
	n++;
	close(fd);
	unlink(path);
	free(img);
	return n;
}

int rt_fuzz_seeds(const char *kind, rt_seed_fn fn, void *arg)
{
	if (!strcmp(kind, "ring"))
		return rings(fn, arg);
	if (!strcmp(kind, "wire"))
		return wire(fn, arg);
	if (!strcmp(kind, "segment"))
		return segments(fn, arg);
	if (!strcmp(kind, "block"))
		return bodies(fn, arg);
	if (!strcmp(kind, "record"))
		return records(fn, arg);
	return -1;
}
