/* SPDX-License-Identifier: MIT */
/*
 * rtshm.h - the shared-memory ring, daemon side: create, open, inspect,
 * remove, and the single consumer that drains it.
 *
 * Writers use include/ringtail.h; the layout is drawn there and described in
 * docs/ring.md. Functions return 0 (or a count) on success and a negative
 * errno on failure; nothing here prints.
 */
#ifndef RTSHM_H
#define RTSHM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ringtail.h"
#include "rtrec.h"

/* ------------------------------------------------------------------------
 * Creating and opening rings
 * ------------------------------------------------------------------------ */

#define RT_RING_DEFAULT_SIZE (64ull << 20)
#define RT_RING_DEFAULT_CHUNK (64u << 10)
#define RT_RING_DEFAULT_SLOTS 1024u

struct rt_ring_params {
	uint64_t size;        /* bytes of the ring file (rounded down to chunks) */
	uint32_t chunk_size;  /* bytes per chunk: 4 KiB..64 MiB, multiple of 64 */
	uint32_t nslots;      /* writer threads that may write at once */
	uint32_t reserve_pct; /* share of chunks only WARN and above may claim */
	uint32_t writer_pct;  /* share of chunks one writer may hold */
	int gid;              /* group of the file, -1 for the creator's */
	uint32_t mode;        /* permission bits, default 0660 */
	int tsc;              /* -1 auto (TSC if it is the kernel clocksource), 0, 1 */
};

/* rt_ring_params_default - fill @p with the defaults (64 MiB, 64 KiB chunks,
 * 1024 slots, 12% reserve for WARN+, 25% per writer, mode 0660). */
void rt_ring_params_default(struct rt_ring_params *p);

/*
 * rt_ring_create - create a ring at @path. The file is made under a
 * temporary name with O_CREAT|O_EXCL|O_NOFOLLOW, sized and fully allocated
 * (so writers can never fault on a full /dev/shm), initialised, and only then
 * linked to @path, so that no writer ever sees a half-made ring.
 * @return 0; -EEXIST if @path exists; -EINVAL for bad parameters; -ENOSPC if
 * the memory cannot be reserved; or the errno of a failed system call.
 */
int rt_ring_create(const char *path, const struct rt_ring_params *p);

/* An open ring (opaque). */
struct rt_ring;

#define RT_RING_RDONLY 0
#define RT_RING_RDWR 1

/*
 * rt_ring_open - map an existing ring after the same checks writers make
 * (no symlink, regular file, safe owner and mode, magic, version, sizes).
 * @return 0 with *@out set; errors as listed under "Return values" in
 * ringtail.h (-ENOENT, -ELOOP, -ENODEV, -EPERM, -EPROTO, -EPROTONOSUPPORT,
 * -EBADMSG) or of open/mmap.
 */
int rt_ring_open(const char *path, int mode, struct rt_ring **out);

/* rt_ring_close - unmap and free; accepts NULL. */
void rt_ring_close(struct rt_ring *r);

/* rt_ring_lost - 1 once the ring file was found cut short under our
 * mapping (the mapping then reads as zeros; reopen the path). */
int rt_ring_lost(struct rt_ring *r);

/*
 * rt_ring_replace - replace an unusable ring at @path (bad magic, version or
 * geometry, cut short) by a new one made with @p. Refused while a consumer
 * holds it (-EBUSY), and for anything but a regular file (-ENODEV) or a
 * symbolic link (-ELOOP). Writers still mapping the old file are told to
 * move (its state is set to dead when it still has a header).
 * @return 0, or a negative errno.
 */
int rt_ring_replace(const char *path, const struct rt_ring_params *p);

/* rt_ring_header - the mapped header (for the spooler's published fields). */
struct rt__ring_hdr *rt_ring_header(struct rt_ring *r);

/*
 * rt_ring_remove - mark the ring dead (writers move to a new ring at the
 * same path on their next chunk claim) and unlink it.
 * @return 0, or a negative errno.
 */
int rt_ring_remove(const char *path);

/* rt_ring_path_default - $RINGTAIL_RING or RT_RING_DEFAULT_PATH. */
const char *rt_ring_path_default(void);

/* What `ringtail stat` shows about a ring. */
struct rt_ring_stat {
	uint64_t size;
	uint32_t chunk_size;
	uint32_t nchunks;
	uint32_t free_chunks;     /* counted now from the owner table */
	uint32_t nslots;
	uint32_t writers;         /* slots in use */
	uint32_t tsc;             /* writers stamp with the TSC */
	uint64_t bytes_queued;    /* committed, not yet released by the consumer */
	uint64_t records_queued;
	uint64_t written;         /* records taken into this ring (consumed + queued) */
	uint64_t consumed;        /* records the consumer released (durable) */
	uint64_t dropped;         /* calls refused, each told to its caller */
	uint64_t dropped_noslot;  /* ... of which for want of a writer slot */
	uint64_t lost;            /* records lost to writers that died mid-write */
	uint64_t corrupt;         /* bytes of malformed records skipped */
	uint64_t consumer_pid;    /* 0 when no consumer has the ring */
	int consumer_alive;
	uint64_t heartbeat_ns;
	uint64_t durable_seq;
	uint64_t spool_records;
	uint64_t ring_id;
	uint64_t created_ns;
};

/* One writer slot as `ringtail stat` shows it. */
struct rt_writer_stat {
	uint32_t slot;
	uint32_t pid;
	uint32_t tid;
	uint32_t state;          /* RT__SLOT_* */
	char service[33];
	uint64_t written;
	uint64_t records_queued;
	uint64_t chunks_held;
	uint64_t drop_full;
	uint64_t drop_full_warn;
	uint64_t drop_large;
	uint64_t drop_inval;
	uint64_t drop_noring;
};

/* rt_ring_stat - fill @st from a consistent-enough snapshot. @return 0. */
int rt_ring_stat(struct rt_ring *r, struct rt_ring_stat *st);

/*
 * rt_ring_writers - call @fn for every writer slot in use; stops early and
 * returns what @fn returned when it is non-zero. @return 0 otherwise.
 */
int rt_ring_writers(struct rt_ring *r, int (*fn)(const struct rt_writer_stat *w, void *arg),
		    void *arg);

/* ------------------------------------------------------------------------
 * The consumer
 *
 * One process at a time drains a ring (an exclusive flock on the ring file).
 * rt_consumer_poll() hands out records in per-writer order; the memory they
 * point into stays valid until they are released. The caller makes them
 * durable, then calls rt_consumer_release() with a mark taken after them:
 * only then does the ring reuse their space and remember the position, so a
 * consumer killed at any moment neither loses nor repeats a record, as long
 * as the caller also stores each mark's cursor entries with the records and
 * hands the last ones back to rt_consumer_restore() after a restart.
 * ------------------------------------------------------------------------ */

struct rt_consumer;

/* One writer's position, as stored beside the records it covers. */
struct rt_cursor {
	uint32_t slot;        /* slot index, or RT_CURSOR_GLOBAL */
	uint32_t gen;         /* slot generation */
	uint64_t pos;         /* stream position after the last record taken */
	uint64_t records;     /* records taken from this writer */
	uint64_t dropped;     /* drops already reported in the log */
	uint32_t flags;       /* RT_CURSOR_* */
	uint32_t pad;
};
#define RT_CURSOR_GLOBAL 0xffffffffu /* .dropped is the no-slot drops reported */
#define RT_CURSOR_LOST 0x1u          /* the loss of a dying write was reported */
#define RT_CURSOR_FINAL 0x2u         /* the writer is gone and fully drained */

/* Where a record delivered by rt_consumer_poll() came from. */
struct rt_origin {
	uint32_t slot;
	uint32_t gen;
	uint64_t pos;         /* stream position just after the record */
};

/*
 * Called for each record. Return 0 to take it and go on, or a negative value
 * to leave it in the ring and stop the poll.
 */
typedef int (*rt_consume_fn)(void *arg, const struct rt_rec *rec, const struct rt_origin *o);

/*
 * rt_consumer_open - become the consumer of the ring at @path.
 * @return 0 with *@out set; -EBUSY if another process is the consumer; the
 * errors of rt_ring_open().
 */
int rt_consumer_open(const char *path, struct rt_consumer **out);

/* rt_consumer_close - stop consuming (records not released will be
 * delivered again to the next consumer); accepts NULL. */
void rt_consumer_close(struct rt_consumer *c);

/*
 * rt_consumer_lost - 1 when the ring can no longer be consumed: its file was
 * cut short under us (a group member's ftruncate). What was delivered stays
 * valid (it was copied); close the consumer and open the path again.
 */
int rt_consumer_lost(struct rt_consumer *c);

/* rt_consumer_ring - the ring being consumed. */
struct rt_ring *rt_consumer_ring(struct rt_consumer *c);

/*
 * rt_consumer_poll - deliver up to @max records (writers' records and the
 * records ringtail makes to report losses) to @fn.
 * Time stamps are converted to ns since the epoch.
 * @return the number of records delivered (0 when there is nothing new).
 */
int rt_consumer_poll(struct rt_consumer *c, rt_consume_fn fn, void *arg, size_t max);

/*
 * rt_consumer_mark - close the records delivered so far into a mark.
 * @entries/@n: set to the cursor entries that changed since the previous
 * mark (store them with the records); valid until the mark is released.
 * @return the mark id (> 0); -ENOSPC when too many marks are outstanding.
 */
int64_t rt_consumer_mark(struct rt_consumer *c, const struct rt_cursor **entries, size_t *n);

/*
 * rt_consumer_release - the records of every mark up to @mark are durable:
 * remember their positions in the ring and free the chunks they used.
 * @return 0; -EINVAL for an unknown mark.
 */
int rt_consumer_release(struct rt_consumer *c, int64_t mark);

/*
 * rt_consumer_cursor_all - every tracked writer's position as of the
 * records delivered so far (for the snapshot that opens a segment).
 * @return the number of entries written to @out (at most @max), or -ENOSPC
 * if @max is too small.
 */
int rt_consumer_cursor_all(struct rt_consumer *c, struct rt_cursor *out, size_t max);

/*
 * rt_consumer_restore - after a restart, apply positions the caller had made
 * durable (the last cursor entries it stored) but that the ring may not yet
 * know: records up to them are skipped, not delivered again.
 * Call before the first poll. @return 0; -EINVAL if an entry does not fit the
 * ring (ignored entries of departed writers are not errors).
 */
int rt_consumer_restore(struct rt_consumer *c, const struct rt_cursor *e, size_t n);

/* rt_consumer_ring_id - the id of the ring (cursor entries belong to it). */
uint64_t rt_consumer_ring_id(struct rt_consumer *c);

/* rt_consumer_pending - marks delivered but not yet released. */
size_t rt_consumer_pending(struct rt_consumer *c);

/* ------------------------------------------------------------------------
 * What users type (shm/parse.c): one parser for every program
 * ------------------------------------------------------------------------ */

/* rt_parse_u64 - a non-negative decimal, nothing else. @return 0 or -EINVAL. */
int rt_parse_u64(const char *s, uint64_t *out);

/* rt_parse_size - "4096", "64K", "64M", "4G", "1T" (powers of 1024; "64MB"
 * and "64MiB" too). @return 0, or -EINVAL for anything else or an overflow. */
int rt_parse_size(const char *s, uint64_t *out);

/* rt_parse_duration - a number with ns, us, ms, s, m, h or d (none: seconds)
 * into nanoseconds. @return 0 or -EINVAL. */
int rt_parse_duration(const char *s, uint64_t *ns);

#define RT_HEX_LOWER 0x1u /* only lower-case digits (canonical file names) */

/* rt_parse_hex - exactly 2*@n hex digits into @n bytes. @return 0 or
 * -EINVAL. */
int rt_parse_hex(const char *s, uint8_t *out, size_t n, unsigned flags);

#endif /* RTSHM_H */
