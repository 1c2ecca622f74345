/* SPDX-License-Identifier: MIT */
/*
 * rtspool.h - the spool: a directory of segments, and the engine that fills
 * it from the ring (ringtaild's work, also run in-process by
 * `ringtail bench spool` and the tests).
 *
 *   SPOOL/
 *     spool.meta                 "ringtail-spool 1", epoch id, host, created
 *     lock                       flock(LOCK_EX) by the one ringtaild using it
 *     state                      the durable position, for readers (mmap)
 *     00000000000000000001.lz4   segments, named by their first sequence number
 *     NAME.repair                a repair in progress (recovery finishes or drops it)
 *     quarantine/                what recovery set aside: NAME.damaged-OFFSET, NAME
 *
 * A central server (ringtaild --listen) keeps one such spool per sending host
 * and spool epoch:
 *
 *   CENTRAL/
 *     central.meta               "ringtail-central 1"
 *     lock
 *     hosts/HOST/EPOCH/          a spool as above (EPOCH: 32 hex digits); its
 *                                spool.meta names the sender's host and epoch
 */
#ifndef RTSPOOL_H
#define RTSPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rtseg.h"
#include "rtshm.h"

/* ------------------------------------------------------------------------
 * The published state (SPOOL/state, 4096 bytes, host byte order)
 *
 *   0       8     12     16    24           32        40             48     64
 *   +-------+-----+------+-----+------------+---------+--------------+------+
 *   |RTSTATE| ver | 0    | gen |durable_seq |segment  |segment_bytes |epoch |
 *   +-------+-----+------+-----+------------+---------+--------------+------+
 *   | updated_ns | records_total | writer pid | ...                          |
 *
 * gen is a sequence counter (odd while the spooler updates the fields);
 * readers retry until they see the same even value before and after.
 * "segment" is the first sequence number of the segment being written and
 * segment_bytes how much of it is durable.
 * ------------------------------------------------------------------------ */

#define RT_CENTRAL_META "central.meta"
#define RT_CENTRAL_HOSTS "hosts"

#define RT_STATE_MAGIC "RTSTATE"
#define RT_STATE_VERSION 1u

struct rt_spool_state {
	char magic[8];
	uint32_t version;
	uint32_t pad0;
	uint64_t gen;
	uint64_t durable_seq;   /* every record up to this one is durable; 0 = none */
	uint64_t segment;       /* first sequence number (name) of the open segment */
	uint64_t segment_bytes; /* its durable length */
	uint8_t epoch[16];
	uint64_t updated_ns;
	uint64_t records_total; /* records made durable by this spooler run */
	uint64_t pid;
	uint8_t pad1[4096 - 88];
};

/* rt_state_read - a consistent copy of the published state (its fields;
 * never SIGBUS, whatever happens to the file: rt_shared_snapshot()).
 * @return 0; -EAGAIN if it kept changing under us; -EFAULT if the file
 * was cut short under the mapping. */
int rt_state_read(const struct rt_spool_state *st, struct rt_spool_state *out);

/* ------------------------------------------------------------------------
 * Shared state files (SPOOL/state, SPOOL/forward)
 *
 * Others may change the size of a file we map: a page past its end raises
 * SIGBUS on access. So a mapping is made only of a regular file that is
 * whole, and readers copy out of a mapping only through rt_shared_read() or
 * rt_shared_snapshot(), which fail with -EFAULT where a plain load would
 * have been killed: a SIGBUS handler (installed once, on first use, for the
 * process) turns a fault inside the range a thread is copying into a jump
 * back, and hands every other SIGBUS to the handler that was there before,
 * or to the default action. Where no handler can be installed (and under
 * ThreadSanitizer) the kernel makes the copy (process_vm_readv).
 * ------------------------------------------------------------------------ */

/*
 * rt_map_state_file - map the state file @name beneath directory @dirfd
 * (never through a link: rt_openat_beneath()). A reader (@writable 0) gets
 * a read-only mapping of @size bytes of a regular file that has at least
 * that many; a writer gets a shared read-write one, the file made (0644) if
 * missing and grown to @size if shorter, and only of a file that is its
 * user's and has no other links. Unmap with munmap(*out, @size).
 * @return 0; -EBADMSG if it is not a regular file of at least @size bytes;
 * -ELOOP if it is a symbolic link; -EPERM (a writer) if another user owns it
 * or it has other links; the errno of open or mmap.
 */
int rt_map_state_file(int dirfd, const char *name, size_t size, int writable, void **out);

/*
 * rt_shared_read - copy @n bytes from @src, a shared mapping that may have
 * shrunk under us. @return 0, or -EFAULT where the file no longer has them.
 */
int rt_shared_read(void *dst, const void *src, size_t n);

/*
 * rt_shared_snapshot - copy a struct of @n bytes guarded by a sequence lock:
 * a u64 at @gen_off, odd while its writer changes the rest. Copies until the
 * gen before and after agree. @return 0, -EAGAIN (it kept changing), or
 * -EFAULT (rt_shared_read).
 */
int rt_shared_snapshot(const void *src, void *dst, size_t n, size_t gen_off);

/* ------------------------------------------------------------------------
 * Paths
 * ------------------------------------------------------------------------ */

/*
 * rt_openat_beneath - openat(@dirfd, @path, @flags, @mode), @path resolved
 * beneath @dirfd without following any symbolic link, its last component
 * included (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS; O_CLOEXEC and
 * O_NOFOLLOW are added). @return the fd, -ELOOP for a link (or a path
 * leaving @dirfd), or -errno.
 */
int rt_openat_beneath(int dirfd, const char *path, int flags, mode_t mode);

/*
 * rt_dir_check - is directory @fd one a daemon may write into, as ssh checks
 * a key file: owned by this user or root, and writable by nobody else (no
 * group or other write bit, sticky or not)? @what names it in the error.
 * @return 0, -EPERM, -ENOTDIR (rt_spool_why() says which and how to fix).
 */
int rt_dir_check(int fd, const char *what);

/*
 * rt_spool_why - the last rt_spool_open*(), rt_dir_check() or
 * rt_spool_recover() failure in this thread, in words, when it returned
 * @err; else strerror(-@err). Never NULL.
 */
const char *rt_spool_why(int err);

/* ------------------------------------------------------------------------
 * The spool directory
 * ------------------------------------------------------------------------ */

struct rt_spool {
	int dirfd;
	int lockfd;   /* -1 when opened read-only */
	char path[4096];
	uint8_t epoch[16];
	char host[256];
	uint64_t created_ns;
	struct rt_spool_state *state; /* mapped; read-only unless locked */
};

#define RT_SPOOL_CREATE 0x1u /* make the directory and its meta if missing */
#define RT_SPOOL_LOCK 0x2u   /* take the writer's lock: -EBUSY if held */

/*
 * rt_spool_open - open (and with RT_SPOOL_CREATE make) a spool directory.
 * @host: the host name recorded when the spool is made (NULL: gethostname).
 * Every file in it is opened beneath it without following links. A writer
 * (RT_SPOOL_LOCK) refuses a spool directory, or a quarantine/ in it, that
 * rt_dir_check() refuses, and a lock, state or spool.meta that is a link or
 * not a regular file (rt_spool_why() says which).
 * @return 0; -EBUSY if another ringtaild holds it; -EBADMSG if spool.meta is
 * unreadable; -EPERM (owner or mode); -ELOOP (a link where a file should
 * be); the errno of a failed system call.
 */
int rt_spool_open(const char *path, const char *host, unsigned flags, struct rt_spool **out);

/*
 * rt_spool_open_as - rt_spool_open() for a spool that must carry the given
 * @host and @epoch (the central server's copy of a sender's spool): made with
 * them if missing, refused with -EBADMSG if it carries others.
 */
int rt_spool_open_as(const char *path, const char *host, const uint8_t epoch[16], unsigned flags,
		     struct rt_spool **out);

/*
 * rt_spool_openat - rt_spool_open_as() of @rel ("HOST/EPOCH") beneath
 * directory @basefd, each component resolved without following a link and,
 * with RT_SPOOL_CREATE, made (0750) if missing; a writer checks each with
 * rt_dir_check(). @epoch may be NULL (a spool of its own). Same returns.
 */
int rt_spool_openat(int basefd, const char *rel, const char *host, const uint8_t epoch[16],
		    unsigned flags, struct rt_spool **out);
void rt_spool_close(struct rt_spool *sp);

/*
 * rt_spool_map_state - for a spool opened without the lock: map SPOOL/state
 * if that was not possible at open (a reader that came before the spooler
 * made it). @return 0 once sp->state is mapped, else -errno (-ENOENT: not
 * there yet).
 */
int rt_spool_map_state(struct rt_spool *sp);

/* rt_spool_list - the segments' first sequence numbers, ascending.
 * @return the count (the array is malloc'd), or -errno. */
int rt_spool_list(struct rt_spool *sp, uint64_t **seqs);

/*
 * rt_spool_quarantine - move the entry @name of the spool, whole, into
 * quarantine/ as @as (NULL: @name), or "@as.N" if that is taken; the
 * quarantine path it got goes to @dst (@dstlen bytes) if not NULL.
 * @return 0 or -errno.
 */
int rt_spool_quarantine(struct rt_spool *sp, const char *name, const char *as, char *dst,
			size_t dstlen);

/*
 * rt_spool_quarantine_copy - copy bytes [@off, @end) of segment @name (open
 * as @fd) into quarantine/NAME.damaged-OFF (durably), or "....N" if a file
 * with other bytes has that name; a file holding the same bytes already is
 * kept as it is. @dst as above. @return 0 or -errno.
 */
int rt_spool_quarantine_copy(struct rt_spool *sp, int fd, const char *name, uint64_t off,
			     uint64_t end, char *dst, size_t dstlen);

/* The spool's epoch as 32 hex digits (and a NUL). */
void rt_epoch_hex(const uint8_t epoch[16], char out[33]);

/* ------------------------------------------------------------------------
 * Recovery
 * ------------------------------------------------------------------------ */

/* What recovery found, for the engine to carry on from. */
struct rt_recovered {
	uint64_t next_seq;        /* the next sequence number to hand out */
	int last_open;            /* 1: keep appending to the last segment */
	uint64_t last_seg;        /* its name (first sequence number) */
	uint64_t last_end;        /* its valid length */
	uint64_t last_created_ns;
	uint64_t last_next_seq;   /* sequence after its last block */
	uint64_t tmin, tmax;
	uint32_t nblocks;
	uint64_t *index_off;      /* its blocks' INDEX frames (malloc'd) */
	/* The ring positions durable in the spool for ring @ring_id: the last
	 * segment's header snapshot and every block's changes, in order. */
	struct rt_cursor *cur;    /* malloc'd */
	size_t ncur;
	uint64_t segments;        /* segments found in good order */
	uint64_t quarantined;
};

typedef void (*rt_log_fn)(void *arg, int sev, const char *msg);

/*
 * rt_spool_recover - check and repair the spool before writing to it
 * (docs/segment.md, "Recovery"). A segment whose footer and INDEX frames
 * check is taken as it is; any other is read whole (rt_seg_salvage) and
 * repaired so that the next recovery takes it as it is: every intact block
 * kept (blocks after a gap in a closed segment of their own, named by their
 * first record), damaged bytes copied to quarantine/NAME.damaged-OFFSET, a
 * torn tail of the newest segment (nothing durable in it) dropped, a damaged
 * header written anew; closed by a footer, except the newest when the
 * numbering goes on in it (->last_open). Running it again changes nothing.
 * Sequence numbers already used anywhere, or published as durable, are never
 * handed out again; every damage (segment, bytes, blocks, records), gap and
 * loss is reported through @log. @ring_id/@nslots: the ring whose durable
 * positions ->cur gathers (0/0: none, a central spool).
 * @return 0, or -errno when the spool cannot be read or repaired.
 */
int rt_spool_recover(struct rt_spool *sp, uint64_t ring_id, uint32_t nslots, rt_log_fn log,
		     void *arg, struct rt_recovered *out);
void rt_recovered_free(struct rt_recovered *r);

/* ------------------------------------------------------------------------
 * Writing segments (the engine and the central server)
 * ------------------------------------------------------------------------ */

struct io_uring;

/* The segment being written in a spool. */
struct rt_segw {
	struct rt_spool *sp;
	struct io_uring *uring;   /* the caller's, for the writes made here */
	int fsync;                /* enum rt_fsync_policy */
	int fd;                   /* -1 while no segment is open */
	uint64_t first;           /* its name: the first sequence number */
	uint64_t end;             /* where the next block goes */
	uint64_t durable;         /* bytes of it that are durable */
	uint64_t created_ns;      /* wall clock */
	uint64_t next_seq;        /* after its durable blocks */
	uint64_t tmin, tmax;
	uint32_t nblocks;         /* blocks assigned to it */
	uint64_t *index_off;      /* their INDEX frames */
	uint32_t index_cap;
};

/*
 * rt_write_sync - write @len bytes at @off through io_uring @u and, unless
 * @sync is 0, fdatasync the file; with @dirfd >= 0 also fsync that
 * directory. Waits for all of it. @return 0 or a negative errno.
 */
int rt_write_sync(struct io_uring *u, int fd, const void *buf, size_t len, uint64_t off, int sync,
		  int dirfd);

/* rt_segw_new - start a segment named @first_seq whose HEADER carries the
 * ring positions @snap (for ring @ring_id; none for a central spool). */
int rt_segw_new(struct rt_segw *w, uint64_t first_seq, uint64_t ring_id,
		const struct rt_cursor *snap, size_t n);
/* rt_segw_resume - go on appending to the open segment recovery found. */
int rt_segw_resume(struct rt_segw *w, const struct rt_recovered *rec);
/* rt_segw_close - write the FOOTER; on failure it is cut off again and the
 * segment stays open. */
int rt_segw_close(struct rt_segw *w);
/* rt_segw_assign - a block's INDEX frame will be at @off. */
int rt_segw_assign(struct rt_segw *w, uint64_t off);
/* rt_segw_durable - the segment is durable up to @end, its records up to
 * @next_seq - 1, times between @tmin and @tmax. */
void rt_segw_durable(struct rt_segw *w, uint64_t end, uint64_t next_seq, uint64_t tmin,
		     uint64_t tmax);
/* rt_segw_due - has the segment reached @max_bytes or @max_age_ns? */
int rt_segw_due(const struct rt_segw *w, uint64_t max_bytes, uint64_t max_age_ns);
void rt_segw_free(struct rt_segw *w);

/* ------------------------------------------------------------------------
 * Retention
 * ------------------------------------------------------------------------ */

struct rt_retain {
	uint64_t bytes;      /* remove the oldest segments past this total */
	uint64_t age_ns;     /* ... and segments older than this (0: none) */
	uint64_t hard_bytes; /* segments not yet forwarded go only past this */
	uint64_t acked_seq;  /* records up to this are forwarded (UINT64_MAX: no forwarding) */
};

/*
 * rt_spool_retain - remove the oldest segments (never @current, the one being
 * written) while the spool is over its limits. Segments holding records not
 * yet forwarded upstream stay unless the spool is past the hard limit; then
 * they go too and @log says exactly which records were given up.
 * @return segments removed, or a negative errno.
 */
int rt_spool_retain(struct rt_spool *sp, uint64_t current, const struct rt_retain *lim,
		    rt_log_fn log, void *arg);

/* ------------------------------------------------------------------------
 * The engine
 * ------------------------------------------------------------------------ */

enum rt_fsync_policy {
	RT_FSYNC_BLOCK = 0, /* fdatasync linked after every write (group commit) */
	RT_FSYNC_NONE = 1,  /* leave it to the kernel (survives a crash of ringtaild, not of the host) */
};

struct rt_spoold_config {
	const char *ring_path;
	uint64_t ring_size;       /* when the ring has to be made */
	int ring_gid;             /* its group, -1 for ours */
	const char *spool_dir;
	const char *host;         /* NULL: the spool's, or gethostname() for a new spool */
	uint64_t segment_bytes;   /* start a new segment past this size */
	uint64_t segment_age_ns;  /* ... or this age */
	uint64_t retain_bytes;    /* remove the oldest segments past this total */
	uint64_t retain_age_ns;   /* ... or past this age (0: no age limit) */
	uint64_t retain_hard_bytes; /* segments not yet forwarded go only past this (0: never) */
	uint64_t block_bytes;     /* largest block body */
	uint64_t commit_ns;       /* longest a record waits before its block is written */
	int fsync;                /* enum rt_fsync_policy */
	/* Where the engine's own messages go (ringtaild sends them into the
	 * ring as service "ringtaild"). @sev is a SeverityNumber. */
	rt_log_fn log;
	void *log_arg;
};

/* rt_spoold_defaults - fill @c with the defaults (docs/spooler.md). */
void rt_spoold_defaults(struct rt_spoold_config *c);

struct rt_spoold;

struct rt_spoold_stats {
	uint64_t records;        /* made durable */
	uint64_t blocks;
	uint64_t bytes_in;       /* block bodies */
	uint64_t bytes_out;      /* bytes written to segments */
	uint64_t syncs;
	uint64_t write_errors;
	uint64_t durable_seq;
	uint64_t segments_made;
	uint64_t segments_removed;
};

/*
 * rt_spoold_start - open (or make) the ring and the spool, repair the last
 * segment, pick up the ring where the last durable record left it.
 * @return 0; -EBUSY if another ringtaild has the ring or the spool; other
 * negative errnos from opening things (the log callback said why).
 */
int rt_spoold_start(const struct rt_spoold_config *c, struct rt_spoold **out);

/*
 * rt_spoold_step - drain, write, sync, publish; waits at most @wait_ms when
 * there is nothing to do. @return records made durable in this step (>= 0),
 * -ESTALE when the ring file was cut short under us (finish, free and start
 * again: the start replaces the ring), or a negative errno for a fatal
 * error.
 */
int rt_spoold_step(struct rt_spoold *d, int wait_ms);

/*
 * rt_spoold_own - a message of ringtaild itself, to be stored as a record
 * of service "ringtaild" (thread-safe; at most 32 wait, the rest are
 * counted). The engine's own messages go there too, besides cfg.log.
 */
void rt_spoold_own(struct rt_spoold *d, int sev, const char *msg);

/*
 * rt_spoold_finish - drain what the ring holds now, make it durable, and stop
 * writing. @return 0, or the error that kept something from being written.
 */
int rt_spoold_finish(struct rt_spoold *d);

void rt_spoold_free(struct rt_spoold *d);
void rt_spoold_get_stats(const struct rt_spoold *d, struct rt_spoold_stats *st);
struct rt_spool *rt_spoold_spool(struct rt_spoold *d);
/* rt_spoold_acked - where a forwarder keeps the last record the upstream
 * acknowledged, for retention (UINT64_MAX while not forwarding). */
uint64_t *rt_spoold_acked(struct rt_spoold *d);
struct rt_consumer *rt_spoold_consumer(struct rt_spoold *d);

#endif /* RTSPOOL_H */
