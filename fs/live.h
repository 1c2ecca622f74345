/* SPDX-License-Identifier: MIT */
/*
 * live.h - following the spool as the spooler writes it.
 *
 * One thread polls SPOOL/state (a mapped page: reading it is a handful of
 * loads) every poll_us while some /tail file is open or polled, every
 * idle_poll_us otherwise, refreshes the index when the state moved, and
 * hands new lines to /tail readers that wait: their read requests are parked
 * (no FUSE thread is held) and answered from this thread, and poll() handles
 * are notified. Requests that look at sizes (lookup, getattr, open, a read
 * at the end of a file) also refresh first, so nothing durable is missed
 * between two polls.
 */
#ifndef RTFS_LIVE_H
#define RTFS_LIVE_H

#include "names.h"
#include "rtfs.h"

struct rtfs_tail;

/* rtfs_live_start - start the poller (and the scrubber with -o scrub).
 * @mountpoint: where the mount is (to set its readahead). @return 0/-errno. */
int rtfs_live_start(struct rtfs *fs, const char *mountpoint);

/* rtfs_live_stop - stop the threads; parked reads get EINTR. */
void rtfs_live_stop(struct rtfs *fs);

/*
 * rtfs_tail_open - a /tail reader positioned at the end of @n's view: it
 * gets what becomes durable from now on. @flags: the open flags
 * (O_NONBLOCK: reads with nothing new fail with EAGAIN).
 * @return 0 or -ENOMEM.
 */
int rtfs_tail_open(struct rtfs *fs, struct rtfs_node *n, int flags, struct rtfs_tail **out);

/* rtfs_tail_read - answer @req now if there is something new, else park
 * it until there is (or it is interrupted). */
void rtfs_tail_read(struct rtfs *fs, struct rtfs_tail *t, fuse_req_t req, size_t size);

/* rtfs_tail_poll - POLLIN when something new is there; else remember @ph
 * (if given) and notify it when something is. */
void rtfs_tail_poll(struct rtfs *fs, struct rtfs_tail *t, fuse_req_t req,
		    struct fuse_pollhandle *ph);

void rtfs_tail_release(struct rtfs *fs, struct rtfs_tail *t);

#endif /* RTFS_LIVE_H */
