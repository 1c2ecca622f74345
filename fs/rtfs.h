/* SPDX-License-Identifier: MIT */
/*
 * rtfs.h - one mounted ringtailfs: the parts and the options they share.
 *
 *   FUSE worker threads --> ops.c --> names.c (the tree) --> view.c (offsets)
 *                               \--> read.c --> render.c (cache, workers) --> model.c
 *   live.c: one thread polling SPOOL/state, waking /tail readers and poll()
 */
#ifndef RTFS_H
#define RTFS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <stdint.h>
#include <sys/types.h>

#include "model.h"
#include "render.h"
#include "view.h"

#define RTFS_VERSION "0.1.0"

struct rtfs_opts {
	size_t cache_bytes;      /* render cache budget */
	int workers;             /* prefetch threads */
	uint32_t max_read;       /* largest read request */
	uint64_t prefetch_bytes; /* rendered ahead of a sequential reader */
	unsigned poll_us;        /* SPOOL/state polling while someone follows */
	unsigned idle_poll_us;   /* ... and while nobody does */
	uint32_t readahead_kb;   /* the mount's kernel readahead (0: leave it) */
	int scrub;               /* check every block's checksum in the background */
	unsigned blksize;        /* st_blksize: the read size cat & co. use */
};

struct rtfs_names;
struct rtfs_live;

struct rtfs {
	struct rtfs_model *m;
	struct rtfs_views *vs;
	struct rtfs_cache *cache;
	struct rtfs_names *names;
	struct rtfs_live *live;
	struct fuse_session *se;
	struct rtfs_opts o;
	uid_t uid;
	gid_t gid;
	mode_t dmode;            /* permission bits of directories */
	mode_t fmode;            /* ... and of files */
	uint64_t start_ns;       /* wall clock at mount */
	int initialised;
};

#endif /* RTFS_H */
