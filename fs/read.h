/* SPDX-License-Identifier: MIT */
/*
 * read.h - a read of a view file: the pieces of the blocks it covers, taken
 * from the render cache (rendered now if missing) and sent in one reply that
 * points straight into the cached text (fuse_reply_iov: no copy here).
 */
#ifndef RTFS_READ_H
#define RTFS_READ_H

#include "rtfs.h"

/* Per open file: where the last read ended (sequential readers get the
 * blocks after it rendered ahead). */
struct rtfs_rstate {
	uint64_t last_end;
};

/*
 * rtfs_read_view - reply to @req with the bytes of @v at [@off, @off+@size)
 * (fewer at the end of the file). @rs may be NULL (no prefetch).
 * @return bytes sent (the reply is made), or -errno (no reply made): -EIO
 * when a block in the range is damaged, -ENOMEM.
 */
long rtfs_read_view(struct rtfs *fs, fuse_req_t req, struct rtfs_view *v, uint64_t off,
		    size_t size, struct rtfs_rstate *rs);

#endif /* RTFS_READ_H */
