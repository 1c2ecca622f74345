/* SPDX-License-Identifier: MIT */
/*
 * stats.h - the text of /stats (docs/fs.md): one "key value" per line,
 * "service NAME ..." per service, "host NAME ..." per host of a central
 * server, "damage ..." per damaged segment or block found so far.
 */
#ifndef RTFS_STATS_H
#define RTFS_STATS_H

#include <stddef.h>

#include "rtfs.h"

/*
 * rtfs_stats_text - /stats of host @hid (-1: everything).
 * @return 0 with *@out malloc'd (*@len bytes), or -ENOMEM.
 */
int rtfs_stats_text(struct rtfs *fs, int32_t hid, char **out, size_t *len);

#endif /* RTFS_STATS_H */
