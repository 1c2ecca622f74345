/* SPDX-License-Identifier: MIT */
/*
 * model.h - ringtailfs's index of a spool (or of a central server's spools):
 * the blocks that exist, in the order this mount discovered them, with what
 * the segment index says about each (records per service and severity class,
 * and the exact bytes their lines take).
 *
 * The block list only ever grows, and a block never changes once published:
 * every file of the filesystem is a function of a prefix of that list, which
 * is what keeps the bytes at an offset of a file fixed while the mount lives.
 *
 *   spool(s) --list/refresh--> segments --index frames--> blocks[gid]
 *                                                  |
 *                 published with a release store of nblocks (readers acquire)
 *
 * Functions return 0 (or a count) or a negative errno; nothing here prints.
 */
#ifndef RTFS_MODEL_H
#define RTFS_MODEL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "rtspool.h"

#define RTFS_NCLS RT_SEV_CLASSES
#define RTFS_SEV_ALL 0x3fu
#define RTFS_SEV_ERRORS 0x30u /* ERROR and FATAL */

#define RTFS_HOUR_NS (3600ull * 1000000000ull)
#define RTFS_DAY_NS (86400ull * 1000000000ull)

/* Limits: a host id is 16 bits in a block; service ids index a directory
 * of 1024-entry chunks. Both are far past what fits in memory at the
 * size of a listing; reaching one is counted (overflow in /stats). */
#define RTFS_MAX_HOSTS 65535u
#define RTFS_MAX_SERVICES (65536u * 1024u)
#define RTFS_BCHUNK_SHIFT 12u
#define RTFS_BCHUNK (1u << RTFS_BCHUNK_SHIFT)
#define RTFS_MAX_BCHUNKS 65536u

/* One service's records in one block (from the INDEX frame). */
struct rtfs_svcrec {
	uint32_t sid;
	uint32_t count[RTFS_NCLS];
	uint64_t bytes[RTFS_NCLS]; /* exact bytes of their lines */
};

/* For a block whose records fall in more than one hour: the records of one
 * (hour, service, class). Hour = time / RTFS_HOUR_NS. */
struct rtfs_part {
	uint32_t hour;
	uint32_t sid;
	uint32_t cls;
	uint32_t count;
	uint64_t bytes;
};

struct rtfs_seg;

/* A published block. Immutable except @health. */
struct rtfs_block {
	uint32_t gid;             /* position in the mount's block list */
	uint32_t idx;             /* block number in its segment */
	struct rtfs_seg *seg;
	uint64_t first_seq;       /* record k has sequence first_seq + k */
	uint32_t nrec;
	uint16_t hid;             /* host */
	uint32_t nsvc;
	uint64_t tmin, tmax;
	uint64_t found_ns;        /* wall clock when this mount found it */
	struct rtfs_svcrec *svc;
	uint32_t nparts;          /* 0: every record is in hour(tmin) */
	struct rtfs_part *parts;
	uint32_t loss_records;    /* records with RT_REC_LOSS */
	uint64_t lost;            /* records those reports say were lost (lost=N) */
	uint64_t refused;         /* calls they say were refused (refused=N) */
	uint64_t malformed;       /* bytes they say were malformed (malformed_bytes=N) */
	int health;               /* atomic: 0 not checked, 1 good, -errno damaged */
};

/* A segment file. @lock serialises rt_seg_refresh() (which may move
 * s->blocks) against readers of s->blocks and rt_seg_read_body(). */
struct rtfs_seg {
	struct rtfs_spool *spool;
	uint64_t name;            /* its first sequence number */
	int fd;
	struct rt_seg *s;
	pthread_rwlock_t lock;
	uint32_t published;       /* blocks of s published to the model */
	int done;                 /* closed (or given up on): no more blocks */
	int removed;              /* gone from the spool directory */
	int damaged;
	char damage[256];
	uint64_t file_size;
};

/* A spool directory: the local one, or one HOST/EPOCH of a central. */
struct rtfs_spool {
	struct rt_spool *sp;
	uint16_t hid;
	char rel[512];            /* path shown in /stats */
	uint64_t last_gen;        /* state gen seen by the last refresh */
	uint64_t open_seg;        /* state.segment then */
	uint64_t durable_seq;     /* state.durable_seq then */
	uint64_t records_total;
	uint64_t spooler_pid;
	uint64_t updated_ns;
	int have_state;
	struct rtfs_seg **segs;   /* ascending names */
	size_t nsegs, segs_cap;
	uint64_t head_seq;        /* last record published (0: none) */
	uint64_t last_list_ns;
	int dir_transient;        /* central: sp->dirfd open only while listing */
	int rootfd;               /* central: the root, rel resolved beneath it */
};

struct rtfs_host {
	char name[256];
	uint16_t hid;
};

struct rtfs_svc_hash {
	uint32_t mask;
	struct rtfs_svc_hash *older;
	uint32_t slots[];
};

struct rtfs_service {
	char name[RT_SERVICE_MAX + 1];
	uint8_t len;
};

/* A damaged segment or block, as /stats reports it. */
struct rtfs_damage {
	char what[1024];
	uint64_t seg;
	int64_t block;            /* -1: the segment itself */
	uint16_t hid;
};

struct rtfs_model {
	char root[4096];
	int central;
	int rootfd;
	uint64_t mount_ns;
	/* Refreshing: one at a time; guards the spool list and spools. */
	pthread_mutex_t mu;
	struct rtfs_spool **spools;
	size_t nspools, spools_cap;
	uint64_t last_refresh_ns; /* the last refresh that looked at every spool */
	uint32_t *rel_tab;        /* open addressing: index + 1 of a spool by rel */
	size_t rel_cap;           /* a power of two, > 2 * nspools (0: none yet) */
	uint64_t last_hostscan_ns;
	/* Hosts and services: append-only tables; counts published with
	 * release stores, read with acquire loads. */
	struct rtfs_host *hosts[RTFS_MAX_HOSTS];
	uint32_t nhosts;
	struct rtfs_service *svc_chunks[RTFS_MAX_SERVICES / 1024];
	uint32_t nsvc;
	/* Names to ids: open addressing, sid + 1 per slot; replaced by one
	 * twice the size when half full (readers keep using the one they
	 * loaded; replaced tables are freed at close). */
	struct rtfs_svc_hash *svc_hash;
	/* Blocks. */
	struct rtfs_block *bchunks[RTFS_MAX_BCHUNKS];
	uint32_t nblocks;
	/* Damage found so far. */
	pthread_mutex_t dmu;
	struct rtfs_damage *damage;
	size_t ndamage, damage_cap;
	uint64_t overflow;        /* hosts/services/blocks past the limits */
};

/*
 * rtfs_model_open - check @path is a spool (spool.meta) or a central server
 * directory (central.meta) and read its index.
 * @return 0 with *@out set; -ENOENT, -ENOTDIR, -EACCES when it cannot be
 * read; -EBADMSG when it is neither kind of directory; -ENOMEM.
 */
int rtfs_model_open(const char *path, struct rtfs_model **out);

/* rtfs_model_close - free everything (NULL is fine). */
void rtfs_model_close(struct rtfs_model *m);

/*
 * rtfs_model_refresh - pick up what the spooler made durable since the last
 * call: new blocks of the open segment, new segments, new hosts. With @full,
 * also list directories even if no state changed (finds removed segments).
 * @return new blocks published (>= 0), or -errno.
 */
int rtfs_model_refresh(struct rtfs_model *m, int full);

/*
 * rtfs_model_stale - 1 if some spool's published state moved since the last
 * refresh (a cheap read of the mapped state files; no locks).
 */
int rtfs_model_stale(struct rtfs_model *m);

/* rtfs_model_nblocks - blocks published (acquire: pairs with the release
 * store in publish()). */
static inline uint32_t rtfs_model_nblocks(const struct rtfs_model *m)
{
	return __atomic_load_n(&m->nblocks, __ATOMIC_ACQUIRE);
}

/* rtfs_model_block - block @gid, which must be below rtfs_model_nblocks(). */
static inline struct rtfs_block *rtfs_model_block(const struct rtfs_model *m, uint32_t gid)
{
	return &m->bchunks[gid >> RTFS_BCHUNK_SHIFT][gid & (RTFS_BCHUNK - 1)];
}

static inline uint32_t rtfs_model_nservices(const struct rtfs_model *m)
{
	return __atomic_load_n(&m->nsvc, __ATOMIC_ACQUIRE);
}

static inline const struct rtfs_service *rtfs_model_service(const struct rtfs_model *m,
							     uint32_t sid)
{
	return &m->svc_chunks[sid >> 10][sid & 1023];
}

static inline uint32_t rtfs_model_nhosts(const struct rtfs_model *m)
{
	return __atomic_load_n(&m->nhosts, __ATOMIC_ACQUIRE);
}

/* rtfs_model_find_service - the id of service @name, or -1 if no block
 * names it (yet). */
int rtfs_model_find_service(const struct rtfs_model *m, const char *name, size_t len);

/* rtfs_model_intern_service - the id of service @name, adding it to the
 * table if no block named it yet (a /tail of a service not seen so far).
 * @return the id, or -ENOSPC when the table is full. */
int rtfs_model_intern_service(struct rtfs_model *m, const char *name, size_t len);

/* rtfs_block_svc - block @b's entry for service @sid (b->svc is sorted by
 * sid), or NULL. O(log services in the block). */
static inline const struct rtfs_svcrec *rtfs_block_svc(const struct rtfs_block *b, uint32_t sid)
{
	uint32_t lo = 0, hi = b->nsvc;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (b->svc[mid].sid < sid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < b->nsvc && b->svc[lo].sid == sid ? &b->svc[lo] : NULL;
}

/* rtfs_model_find_host - the id of host @name, or -1. */
int rtfs_model_find_host(const struct rtfs_model *m, const char *name);

/*
 * rtfs_block_decode - read, check and decode block @b into the calling
 * thread's scratch space. *@out and *@host stay valid until the next call
 * in this thread. A damaged block is recorded (rtfs_model_damaged()).
 * @return 0; -EIO when the block is damaged or unreadable; -ENOMEM.
 */
int rtfs_block_decode(struct rtfs_model *m, struct rtfs_block *b, const struct rt_block **out,
		      const char **host, size_t *host_len);

/*
 * rtfs_block_local_sids - map block-local service indexes of decoded @blk to
 * model ids: @map gets blk->nsvc entries (-1 for a name the model lacks).
 */
void rtfs_block_local_sids(const struct rtfs_model *m, const struct rt_block *blk,
			   int32_t *map);

/*
 * rtfs_block_maybe_trace - could block @b hold trace id @trace (its bloom
 * filter)? Takes the segment's lock.
 */
int rtfs_block_maybe_trace(struct rtfs_block *b, const uint8_t trace[16]);

/*
 * rtfs_block_willneed - start reading block @b's DATA frame from the disk
 * (posix_fadvise WILLNEED), for a read of it that comes soon.
 */
void rtfs_block_willneed(struct rtfs_block *b);

/*
 * rtfs_block_check - check block @b's DATA frame against its checksum
 * without decompressing it (the scrubber). @return 0, -EIO if damaged.
 */
int rtfs_block_check(struct rtfs_model *m, struct rtfs_block *b);

/* rtfs_model_damaged - record damage of block @b (e.g. seen by a read). */
void rtfs_model_damaged(struct rtfs_model *m, struct rtfs_block *b, const char *why);

/* Decode scratch slots shared by all renderers: the fixed overhead of
 * rendering is this many (plus one for refreshing) blocks' scratch. */
#define RTFS_SCRATCH_SLOTS 2

/*
 * rtfs_scratch_acquire - take one of the RTFS_SCRATCH_SLOTS slots for the
 * calling thread (waiting until one is free); rtfs_block_decode() then
 * decodes into it until rtfs_scratch_release(). Nests (counted). Hold no
 * lock a renderer needs while waiting.
 */
void rtfs_scratch_acquire(void);
void rtfs_scratch_release(void);

/* rtfs_model_thread_done - free the calling thread's decode scratch. */
void rtfs_model_thread_done(void);

#endif /* RTFS_MODEL_H */
