/* SPDX-License-Identifier: MIT */
/*
 * ops.h - ringtailfs's FUSE low-level operations.
 *
 * Caching, and why it is safe: the bytes at an offset of a file never
 * change, so files are opened with keep_cache: re-reads come from the page
 * cache. The one page that would go stale is the one that held the old end
 * of file (zeros past it), so the kernel is left to drop a file's pages when
 * its size changes (no FUSE_CAP_EXPLICIT_INVAL_DATA): a file that grew is
 * read again, one that did not keeps its cache. Sizes are never cached by
 * the kernel (attr_timeout 0), so stat and tail -f see growth at once;
 * /tail and /stats use direct_io.
 */
#ifndef RTFS_OPS_H
#define RTFS_OPS_H

#include "rtfs.h"

/* The operations; userdata is the struct rtfs. */
extern const struct fuse_lowlevel_ops rtfs_ops;

/* rtfs_setup - make the parts (views, cache, names) after the model is open.
 * @return 0 or -errno. */
int rtfs_setup(struct rtfs *fs);

/* rtfs_teardown - free what rtfs_setup() made and the model. */
void rtfs_teardown(struct rtfs *fs);

#endif /* RTFS_OPS_H */
