/* SPDX-License-Identifier: MIT */
/*
 * batch.c - the central server's check of a BATCH payload, whole, before
 * anything of it is stored: framing, every INDEX frame, every DATA frame's
 * XXH3-64, that the blocks follow on in sequence, and (decompressing and
 * decoding each new block) that what its INDEX frame says is true and that
 * every service name in it is one a writer could have given. No I/O:
 * receive.c stores what passes, the fuzzer feeds it anything.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "rtwire.h"

/* The largest block body ringtaild makes (--block-size) */
#define MAX_BODY (256u << 20)

/* shm/record.c (package ring): a service name as a writer may give it:
 * 1..64 bytes, valid UTF-8, no '/' or control bytes, not "." or "..", not
 * reserved. Declared here until rtshm.h carries it. */
int rt_service_name_ok(const char *s, size_t n);

/* Names ringtaild itself gives its records, which a writer may not: a
 * sender's own messages ("ringtaild") and its loss records ("ringtail")
 * travel in its blocks like any other. */
static int service_ok(const char *s, size_t n)
{
	return rt_service_name_ok(s, n) || (n == 8 && !memcmp(s, "ringtail", 8)) ||
	       (n == 9 && !memcmp(s, "ringtaild", 9));
}

/* Every service name of a block, in its INDEX frame (@blk NULL) or in its
 * body's dictionary, as the ring would have taken it. */
static const char *bad_service(const struct rt_seg_block *sb, const struct rt_block *blk)
{
	if (!blk) {
		for (uint32_t v = 0; v < sb->nsvc; v++)
			if (!service_ok(sb->svc[v].name, sb->svc[v].name_len))
				return "its index names a service that is not a valid name";
		return NULL;
	}
	for (uint32_t v = 0; v < blk->nsvc; v++) {
		const uint8_t *name = blk->svc_names + blk->svc_off[v];
		if (!service_ok((const char *)name + 1, name[0]))
			return "its records name a service that is not a valid name";
	}
	return NULL;
}

static int no(struct rt_batch *b, uint32_t code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int no(struct rt_batch *b, uint32_t code, const char *fmt, ...)
{
	va_list ap;

	b->code = code;
	va_start(ap, fmt);
	vsnprintf(b->why, sizeof(b->why), fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

/* Is what @sb's INDEX frame says about its records true? Decompress,
 * decode, and count again. @return 0, -EBADMSG with b->why, -ENOMEM. */
static int check_block(struct rt_batch *b, const struct rt_seg_block *sb, const uint8_t *data,
		       size_t host_len)
{
	struct acc {
		uint32_t count[RT_SEV_CLASSES];
		uint64_t bytes[RT_SEV_CLASSES];
	} *acc;
	uint64_t tmin = UINT64_MAX, tmax = 0;
	const char *why = NULL;
	int err;

	if (sb->render_version != RT_RENDER_VERSION)
		return no(b, RT_WE_DATA, "block #%" PRIu64 ": its sizes are for line format %u",
			  sb->first_seq, sb->render_version);
	if (sb->body_len > MAX_BODY || sb->body_len / 256 > sb->data_len)
		return no(b, RT_WE_DATA, "block #%" PRIu64 ": claims an impossible size (%u bytes)",
			  sb->first_seq, sb->body_len);
	why = bad_service(sb, NULL);
	if (why)
		return no(b, RT_WE_DATA, "block #%" PRIu64 ": %s", sb->first_seq, why);
	err = rt_block_inflate(data, sb->data_len, sb->body_len, &b->body);
	if (err == -ENOMEM)
		return err;
	if (err || rt_block_decode(b->body.p, b->body.len, sb->first_seq, sb->nrec, &b->blk))
		return no(b, RT_WE_DATA,
			  "block #%" PRIu64 ": its data does not decompress to a valid block",
			  sb->first_seq);
	why = bad_service(sb, &b->blk);
	if (why)
		return no(b, RT_WE_DATA, "block #%" PRIu64 ": %s", sb->first_seq, why);
	acc = calloc(sb->nsvc, sizeof(*acc));
	if (!acc)
		return -ENOMEM;
	/* Per service and severity class: records and rendered bytes. */
	for (uint32_t i = 0; i < b->blk.nrec && !why; i++) {
		struct rt_rec r;
		uint32_t v;
		rt_block_rec(&b->blk, i, &r);
		for (v = 0; v < sb->nsvc; v++)
			if (sb->svc[v].name_len == r.service_len &&
			    !memcmp(sb->svc[v].name, r.service, r.service_len))
				break;
		if (v == sb->nsvc) {
			why = "a record's service is not in its index";
			break;
		}
		acc[v].count[rt_sev_class(r.severity)]++;
		acc[v].bytes[rt_sev_class(r.severity)] +=
			rt_render_len(&r, sb->first_seq + i, host_len);
		if (r.time_ns < tmin)
			tmin = r.time_ns;
		if (r.time_ns > tmax)
			tmax = r.time_ns;
		if (r.trace_id && !rt_bloom_maybe(sb, r.trace_id))
			why = "a record's trace id is not in its bloom filter";
	}
	for (uint32_t v = 0; v < sb->nsvc && !why; v++)
		if (memcmp(acc[v].count, sb->svc[v].count, sizeof(acc[v].count)) ||
		    memcmp(acc[v].bytes, sb->svc[v].bytes, sizeof(acc[v].bytes)))
			why = "its per-service counts or sizes are not what its records give";
	if (!why && (tmin != sb->tmin || tmax != sb->tmax))
		why = "its time range is not what its records give";
	free(acc);
	return why ? no(b, RT_WE_DATA, "block #%" PRIu64 ": %s", sb->first_seq, why) : 0;
}

static void drop_blocks(struct rt_batch *b)
{
	for (uint32_t i = 0; i < b->n; i++)
		rt_seg_block_free(&b->blocks[i]);
	free(b->blocks);
	b->blocks = NULL;
	b->n = b->skip = 0;
}

int rt_batch_check(struct rt_batch *b, const uint8_t *p, size_t n, const char *host,
		   uint64_t durable, uint64_t expect)
{
	struct rt_wire_block wb;
	size_t pos = 4, host_len = strlen(host);
	uint32_t count;
	int r, err;

	drop_blocks(b);
	b->code = 0;
	b->why[0] = '\0';
	b->next = expect;
	if (rt_wire_batch_count(p, n, &count))
		return no(b, RT_WE_PROTOCOL, "malformed BATCH");
	b->blocks = calloc(count, sizeof(*b->blocks));
	if (!b->blocks)
		return -ENOMEM;
	while ((r = rt_wire_batch_next(p, n, &pos, &wb)) == 1) {
		struct rt_seg_block *sb = &b->blocks[b->n];
		if (b->n == count)
			return no(b, RT_WE_PROTOCOL, "BATCH holds more blocks than it says");
		err = rt_seg_parse_index(wb.index, wb.index_len, sb);
		b->n++; /* freed with the others, parsed or not */
		if (err == -ENOMEM)
			return err;
		if (err)
			return no(b, RT_WE_DATA, "block %u of the batch: malformed INDEX frame",
				  b->n);
		if (wb.data_len != sb->data_len || XXH3_64bits(wb.data, wb.data_len) != sb->data_sum)
			return no(b, RT_WE_DATA, "block #%" PRIu64 ": data checksum mismatch",
				  sb->first_seq);
		/* Blocks the server holds already are acknowledged again and not
		 * stored; they may only come first. */
		if (durable && sb->first_seq + sb->nrec - 1 <= durable) {
			if (b->n > b->skip + 1)
				return no(b, RT_WE_SEQUENCE,
					  "sequence numbers go backwards at #%" PRIu64 " (after #%" PRIu64
					  ")",
					  sb->first_seq, b->next - 1);
			b->skip++;
			continue;
		}
		if (b->next && sb->first_seq != b->next)
			return no(b, RT_WE_SEQUENCE,
				  "block starts at #%" PRIu64 " where #%" PRIu64 " was expected",
				  sb->first_seq, b->next);
		err = check_block(b, sb, wb.data, host_len);
		if (err)
			return err;
		b->next = sb->first_seq + sb->nrec;
	}
	if (r < 0 || b->n != count)
		return no(b, RT_WE_PROTOCOL, "malformed BATCH (its blocks are not what it says)");
	return 0;
}

void rt_batch_free(struct rt_batch *b)
{
	drop_blocks(b);
	rt_buf_free(&b->body);
	rt_block_free(&b->blk);
}
