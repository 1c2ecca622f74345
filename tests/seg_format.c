/* SPDX-License-Identifier: MIT */
/*
 * seg_format - records go into blocks and segments and come back out
 * exactly: every field of random records (binary messages, newlines, trace
 * and span ids, attributes, many services and writers, the loss flag),
 * across blocks and a footer; the per-service counts and rendered sizes in
 * the index equal what rendering the records gives; the trace bloom filter
 * has no false negatives; a reader with a byte limit sees only what is
 * before it; segment names parse back.
 */
#include <sys/mman.h>

#include "helpers.h"
#include "rtseg.h"

#define NREC 20000
#define HOST "host-1.example"

struct srec {
	struct rt_rec r;
	char svc[RT_SERVICE_MAX];
	char msg[600];
	uint8_t trace[16], span[8];
	uint8_t attrs[200];
};

static uint64_t rnd_state = 12345;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static void make(struct srec *s, uint64_t i)
{
	size_t n, k;

	memset(s, 0, sizeof(*s));
	s->r.time_ns = 1700000000000000000ull + i * 1000 + rnd() % 5000;
	s->r.pid = 1000 + (uint32_t)(rnd() % 7);
	s->r.tid = s->r.pid + (uint32_t)(rnd() % 3);
	s->r.severity = (uint8_t)(1 + rnd() % 24);
	s->r.flags = rnd() % 50 == 0 ? RT_REC_LOSS : 0;
	n = (size_t)snprintf(s->svc, sizeof(s->svc), "svc-%u", (unsigned)(rnd() % 12));
	s->r.service = s->svc;
	s->r.service_len = n;
	if (rnd() % 3 == 0) {
		for (k = 0; k < 16; k++)
			s->trace[k] = (uint8_t)rnd();
		s->r.trace_id = s->trace;
	}
	if (rnd() % 4 == 0) {
		for (k = 0; k < 8; k++)
			s->span[k] = (uint8_t)rnd();
		s->r.span_id = s->span;
	}
	n = rnd() % 500;
	for (k = 0; k < n; k++) {
		uint64_t c = rnd() % 100;
		/* Mostly text; sometimes newlines, control bytes, UTF-8,
		 * invalid bytes, backslashes. */
		s->msg[k] = c < 80 ? (char)('a' + rnd() % 26)
			    : c < 85 ? '\n'
			    : c < 90 ? (char)(rnd() % 32)
			    : c < 95 ? (char)(0x80 + rnd() % 128)
				     : '\\';
	}
	s->r.msg = s->msg;
	s->r.msg_len = n;
	if (rnd() % 5 == 0) {
		/* Two attributes: {klen, key, vlen(2), value}. */
		uint8_t *w = s->attrs;
		*w++ = 3;
		memcpy(w, "key", 3);
		w += 3;
		*w++ = 5;
		*w++ = 0;
		memcpy(w, "v\nal\0", 5);
		w += 5;
		*w++ = 1;
		*w++ = 'k';
		*w++ = 0;
		*w++ = 0;
		s->r.attrs = s->attrs;
		s->r.attrs_len = (size_t)(w - s->attrs);
	}
}

static void same(const struct rt_rec *a, const struct rt_rec *b, uint64_t i)
{
	CHECK(a->time_ns == b->time_ns, "record %llu: time", (unsigned long long)i);
	CHECK(a->pid == b->pid && a->tid == b->tid, "record %llu: pid/tid", (unsigned long long)i);
	CHECK(a->severity == b->severity, "record %llu: severity", (unsigned long long)i);
	CHECK((a->flags & RT_REC_LOSS) == (b->flags & RT_REC_LOSS), "record %llu: loss flag",
	      (unsigned long long)i);
	CHECK(a->service_len == b->service_len && !memcmp(a->service, b->service, a->service_len),
	      "record %llu: service", (unsigned long long)i);
	CHECK(!a->trace_id == !b->trace_id && (!a->trace_id || !memcmp(a->trace_id, b->trace_id, 16)),
	      "record %llu: trace", (unsigned long long)i);
	CHECK(!a->span_id == !b->span_id && (!a->span_id || !memcmp(a->span_id, b->span_id, 8)),
	      "record %llu: span", (unsigned long long)i);
	CHECK(a->msg_len == b->msg_len && !memcmp(a->msg, b->msg, a->msg_len),
	      "record %llu: message", (unsigned long long)i);
	CHECK(a->attrs_len == b->attrs_len && (!a->attrs_len || !memcmp(a->attrs, b->attrs, a->attrs_len)),
	      "record %llu: attributes", (unsigned long long)i);
}

int main(void)
{
	static struct srec recs[NREC];
	struct rt_seg_hdrinfo h;
	struct rt_buf out = {0}, body = {0};
	struct rt_block blk;
	struct rt_seg *s;
	struct rt_bb *bb;
	struct rt_cursor cur = {3, 7, 4096, 100, 2, RT_CURSOR_LOST, 0};
	uint64_t index_off[64], seq = 41, svc_bytes[16][RT_SEV_CLASSES] = {{0}};
	uint32_t svc_count[16][RT_SEV_CLASSES] = {{0}}, nblocks = 0;
	size_t header_end, cut_at = 0;
	int fd;
	char *line = malloc(1 << 16);

	memset(&blk, 0, sizeof(blk));
	for (uint64_t i = 0; i < NREC; i++)
		make(&recs[i], i);

	/* A segment: header, blocks of varying size, footer. */
	memset(&h, 0, sizeof(h));
	memset(h.epoch, 0xab, 16);
	strcpy(h.host, HOST);
	h.first_seq = seq;
	h.created_ns = 1;
	h.ring_id = 99;
	h.render_version = RT_RENDER_VERSION;
	CHECK_EQ(rt_seg_header_frame(&out, &h, &cur, 1), 0);
	header_end = out.len;
	CHECK_EQ(rt_bb_new(HOST, &bb), 0);
	for (uint64_t i = 0; i < NREC;) {
		uint64_t n = 1 + rnd() % 3000, k;
		rt_bb_reset(bb, seq + i);
		for (k = 0; k < n && i + k < NREC; k++) {
			const struct rt_rec *r = &recs[i + k].r;
			unsigned sv = (unsigned)atoi(r->service + 4);
			CHECK_EQ(rt_bb_add(bb, r), 0);
			svc_count[sv][rt_sev_class(r->severity)]++;
			svc_bytes[sv][rt_sev_class(r->severity)] +=
				rt_render_len(r, seq + i + k, strlen(HOST));
		}
		index_off[nblocks] = out.len;
		CHECK_EQ(rt_bb_seal(bb, &out, out.len, nblocks, 99, &cur, 1), 0);
		nblocks++;
		if (nblocks == 3)
			cut_at = out.len;
		i += k;
	}
	CHECK_EQ(rt_seg_footer_frame(&out, out.len, seq, seq + NREC, 0, 0, index_off, nblocks), 0);

	fd = memfd_create("seg", 0);
	CHECK(fd >= 0 && write(fd, out.p, out.len) == (ssize_t)out.len, "memfd");

	/* Both ways of reading it: from the footer, and frame by frame with
	 * every checksum. */
	for (int mode = 0; mode < 2; mode++) {
		uint64_t next = seq, got_bytes[16][RT_SEV_CLASSES] = {{0}};
		uint32_t got_count[16][RT_SEV_CLASSES] = {{0}};
		CHECK_EQ(rt_seg_open_fd(fd, mode ? RT_SEG_NOFOOTER | RT_SEG_VERIFY : 0, 0, &s), 0);
		CHECK(!s->damaged, "damaged: %s", s->damage);
		CHECK(s->closed && s->nblocks == nblocks && s->next_seq == seq + NREC, "layout");
		CHECK(!strcmp(s->hdr.host, HOST) && s->hdr.ring_id == 99 && s->hdr_ncursor == 1 &&
			      s->hdr_cursor[0].pos == 4096 && s->hdr_cursor[0].flags == RT_CURSOR_LOST,
		      "header");
		for (uint32_t b = 0; b < s->nblocks; b++) {
			const struct rt_seg_block *sb = &s->blocks[b];
			CHECK_EQ(sb->first_seq, next);
			CHECK(sb->ncursor == 1 && sb->cursor[0].gen == 7, "block cursor");
			CHECK_EQ(rt_seg_read_body(s, b, &body), 0);
			CHECK_EQ(rt_block_decode(body.p, body.len, sb->first_seq, sb->nrec, &blk), 0);
			for (uint32_t k = 0; k < blk.nrec; k++) {
				struct rt_rec r;
				uint64_t i = sb->first_seq + k - seq;
				size_t n;
				rt_block_rec(&blk, k, &r);
				same(&r, &recs[i].r, i);
				n = rt_render(&r, sb->first_seq + k, HOST, strlen(HOST), line);
				CHECK(n == rt_render_len(&r, sb->first_seq + k, strlen(HOST)),
				      "render length");
				CHECK(memchr(line, '\n', n) == line + n - 1, "one record, one line");
				if (r.trace_id)
					CHECK(rt_bloom_maybe(sb, r.trace_id), "bloom false negative");
			}
			for (uint32_t v = 0; v < sb->nsvc; v++) {
				unsigned sv = (unsigned)atoi(sb->svc[v].name + 4);
				for (int c = 0; c < RT_SEV_CLASSES; c++) {
					got_count[sv][c] += sb->svc[v].count[c];
					got_bytes[sv][c] += sb->svc[v].bytes[c];
				}
			}
			next += sb->nrec;
		}
		CHECK(!memcmp(got_count, svc_count, sizeof(svc_count)), "per-service counts");
		CHECK(!memcmp(got_bytes, svc_bytes, sizeof(svc_bytes)), "per-service rendered bytes");
		rt_seg_close(s);
	}
	printf("ok - %d records in %u blocks come back exactly, both ways of reading\n", NREC,
	       nblocks);

	/* With a limit, a reader sees the blocks before it and nothing else. */
	CHECK_EQ(rt_seg_open_fd(fd, 0, cut_at, &s), 0);
	CHECK(s->nblocks == 3 && !s->closed && !s->damaged, "limit: %u blocks", s->nblocks);
	CHECK_EQ(rt_seg_refresh(s, 0, 0), (int)nblocks - 3);
	CHECK(s->closed && s->nblocks == nblocks, "refresh to the end");
	rt_seg_close(s);
	CHECK_EQ(rt_seg_open_fd(fd, 0, header_end, &s), 0);
	CHECK(s->nblocks == 0, "header only");
	rt_seg_close(s);
	printf("ok - reading up to a limit, then refreshing\n");

	/* `lz4 -t` takes it and `lz4 -dc` decodes it. */
	{
		char path[64], cmd[256];
		FILE *f;
		snprintf(path, sizeof(path), "/tmp/rt-test-seg-%d.lz4", (int)getpid());
		f = fopen(path, "w");
		CHECK(f && fwrite(out.p, 1, out.len, f) == out.len, "write");
		fclose(f);
		snprintf(cmd, sizeof(cmd), "lz4 -t -q '%s' && lz4 -dc '%s' > /dev/null", path, path);
		if (system("command -v lz4 >/dev/null") == 0)
			CHECK(system(cmd) == 0, "lz4 refused the segment");
		unlink(path);
		printf("ok - lz4 -t accepts it\n");
	}

	/* Names. */
	{
		char name[32];
		uint64_t v;
		rt_seg_name(name, 123456789);
		CHECK(!strcmp(name, "00000000000123456789.lz4"), "%s", name);
		CHECK(rt_seg_parse_name(name, &v) == 0 && v == 123456789, "parse");
		CHECK(rt_seg_parse_name("0000000000012345678.lz4", &v) < 0, "short");
		CHECK(rt_seg_parse_name("00000000000123456789.lz", &v) < 0, "suffix");
		CHECK(rt_seg_parse_name("99999999999999999999.lz4", &v) < 0, "overflow");
		printf("ok - segment names\n");
	}
	rt_bb_free(bb);
	rt_block_free(&blk);
	rt_buf_free(&out);
	rt_buf_free(&body);
	close(fd);
	free(line);
	return 0;
}
