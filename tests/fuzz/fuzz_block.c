/* SPDX-License-Identifier: MIT */
/*
 * fuzz_block - any bytes as a block body (what a DATA frame decompresses
 * to): the first four bytes say how many records it claims. Decoded, every
 * record rendered and its length checked against rt_render_len().
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rtseg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rt_block blk;
	uint32_t nrec;
	char *line;

	if (size < 4)
		return 0;
	memcpy(&nrec, data, 4);
	if (nrec > (1u << 20))
		return 0;
	memset(&blk, 0, sizeof(blk));
	if (rt_block_decode(data + 4, size - 4, 1000, nrec, &blk) == 0) {
		for (uint32_t k = 0; k < blk.nrec; k++) {
			struct rt_rec r;
			size_t n;
			rt_block_rec(&blk, k, &r);
			n = rt_render_len(&r, 1000 + k, 4);
			line = malloc(n);
			if (!line)
				break;
			if (rt_render(&r, 1000 + k, "host", 4, line) != n)
				__builtin_trap();
			free(line);
		}
	}
	rt_block_free(&blk);
	return 0;
}
