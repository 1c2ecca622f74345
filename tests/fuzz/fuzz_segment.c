/* SPDX-License-Identifier: MIT */
/*
 * fuzz_segment - any bytes as a segment file: opened both ways (footer and
 * frame by frame with every checksum) and salvaged (read whole past damage),
 * every readable block decompressed, decoded and rendered, refreshed and
 * probed, every salvaged block's INDEX frame renumbered and parsed again. It may say "damaged"; it must
 * never crash, hang, leak or read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rtseg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_all(struct rt_seg *s)
{
	struct rt_buf body = {0};
	struct rt_block blk;
	char *line = NULL;
	size_t cap = 0;

	memset(&blk, 0, sizeof(blk));
	for (uint32_t b = 0; b < s->nblocks; b++) {
		const struct rt_seg_block *sb = &s->blocks[b];
		uint8_t trace[16] = {0};
		(void)rt_bloom_maybe(sb, trace);
		if (sb->body_len > (64u << 20) || rt_seg_read_body(s, b, &body) ||
		    rt_block_decode(body.p, body.len, sb->first_seq, sb->nrec, &blk))
			continue;
		for (uint32_t k = 0; k < blk.nrec; k++) {
			struct rt_rec r;
			size_t n;
			rt_block_rec(&blk, k, &r);
			n = rt_render_len(&r, sb->first_seq + k, strlen(s->hdr.host));
			if (n > cap) {
				char *nl = realloc(line, n);
				if (!nl)
					break;
				line = nl;
				cap = n;
			}
			if (rt_render(&r, sb->first_seq + k, s->hdr.host, strlen(s->hdr.host), line) != n)
				__builtin_trap();
		}
	}
	free(line);
	rt_block_free(&blk);
	rt_buf_free(&body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz", 0);
	struct rt_seg *s;

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	if (rt_seg_open_fd(fd, 0, 0, &s) == 0) {
		read_all(s);
		rt_seg_refresh(s, 0, 0);
		rt_seg_close(s);
	}
	if (rt_seg_open_fd(fd, RT_SEG_NOFOOTER | RT_SEG_VERIFY, size / 2 + 1, &s) == 0) {
		rt_seg_refresh(s, 0, RT_SEG_VERIFY);
		read_all(s);
		(void)rt_seg_probe(s, s->valid_end);
		rt_seg_close(s);
	}
	/* Read whole past damage, as recovery and verify do: every block it
	 * finds must be one that stands on its own (its INDEX frame, moved
	 * and renumbered, still parses), and every piece can be described. */
	{
		struct rt_seg_piece *p = NULL;
		uint32_t np = 0;
		if (rt_seg_salvage(fd, 1, 0, &s, &p, &np) == 0) {
			char what[160];
			read_all(s);
			for (uint32_t i = 0; i < np; i++)
				if (p[i].kind == RT_PIECE_DAMAGE)
					rt_seg_piece_what(s, p, np, i, UINT64_MAX, what, sizeof(what));
			for (uint32_t b = 0; b < s->nblocks; b++) {
				const struct rt_seg_block *sb = &s->blocks[b];
				struct rt_seg_block pb;
				uint8_t *f = malloc(sb->index_len);
				if (!f || sb->index_off + sb->index_len > size)
					__builtin_trap();
				memcpy(f, data + sb->index_off, sb->index_len);
				if (rt_seg_reindex(f, sb->index_len, b, 4096) ||
				    rt_seg_parse_index(f, sb->index_len, &pb))
					__builtin_trap();
				rt_seg_block_free(&pb);
				free(f);
			}
			free(p);
			rt_seg_close(s);
		}
	}
	close(fd);
	return 0;
}
