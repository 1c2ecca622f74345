/* SPDX-License-Identifier: MIT */
/*
 * line.h - the lines of a decoded block, fast.
 *
 * The line format is rt_render()'s (shm/rtrec.h, docs/fs.md): this renders
 * exactly the same bytes, with the same public pieces for the parts that need
 * care (rt_render_time() for the timestamp, rt_escape() for the message and
 * attributes), but per block instead of per record: the host, each service
 * name and each writer's "[pid/tid] #" are formatted once per block, the
 * sequence number is counted up in decimal instead of converted, and the
 * record's columns are read in place. Every block's output must come to the
 * byte count the spooler computed with rt_render_len() (checked), the build
 * stops if RT_RENDER_VERSION moves on, and tests/fs/fs_lines compares the two
 * renderers record by record.
 */
#ifndef RTFS_LINE_H
#define RTFS_LINE_H

#include <stddef.h>
#include <stdint.h>

#include "view.h"

/*
 * rtfs_lines - write the lines of the records of decoded block @blk (first
 * sequence number @first_seq) that pass @f, their services mapped to model
 * ids by @sidmap, at @out: exactly @len bytes.
 * @return 0; -EIO if the lines do not come to @len bytes; -ENOMEM.
 */
int rtfs_lines(const struct rt_block *blk, uint64_t first_seq, const char *host, size_t host_len,
	       const int32_t *sidmap, const struct rtfs_filter *f, char *out, size_t len);

#endif /* RTFS_LINE_H */
