/* SPDX-License-Identifier: MIT */
/*
 * fuzz_record - any bytes as records in a ring chunk (what a buggy or
 * hostile writer could put there): decoded one after another as the
 * consumer does, each valid one rendered, its length checked.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rtrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Copy to an 8-aligned buffer, as records in a chunk are. */
	uint8_t *buf = malloc(size + 8);
	size_t off = 0;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	while (off < size) {
		struct rt_rec r;
		size_t stride, n;
		char *line;
		if (rt_rec_decode(buf + off, size - off, RT__RF_KNOWN & ~RT__RF_LOSS, &r, &stride))
			break;
		n = rt_render_len(&r, off, 1);
		line = malloc(n);
		if (!line)
			break;
		if (rt_render(&r, off, "h", 1, line) != n)
			__builtin_trap();
		free(line);
		off += stride;
	}
	free(buf);
	return 0;
}
