/* SPDX-License-Identifier: MIT */
/*
 * ringtail.h - the header-only log writer.
 *
 * Include this file and call rt_write() or rt_printf(). Records go into the
 * per-host shared-memory ring (default /dev/shm/ringtail, or $RINGTAIL_RING),
 * which the spooler daemon ringtaild drains into sequenced, compressed
 * segment files.
 *
 *   #include <ringtail.h>
 *   rt_set_service("api");
 *   rt_write(RT_INFO, "started", 7);
 *   rt_printf(RT_WARN, "slow request %d ms from %s", ms, peer);
 *
 * Every call returns 0 when the record was taken, or a negative errno saying
 * why not (see "Return values" below). A call never blocks, never allocates
 * and never takes a lock on its hot path; when the ring is full it returns at
 * once and the loss is counted where the spooler and `ringtail stat` see it.
 *
 * C11 and C++17; needs only libc and pthreads. Linux only. In strict ISO
 * mode (-std=c11) include this header first, or define _POSIX_C_SOURCE to
 * 200809L (or _GNU_SOURCE) before any system header.
 *
 * The ring layout is defined here too, because the writer is header-only;
 * docs/ring.md describes it in prose. Everything named rt__ (two
 * underscores) is private to ringtail and may change between versions.
 */
#ifndef RINGTAIL_H
#define RINGTAIL_H

#define RINGTAIL_VERSION_MAJOR 0
#define RINGTAIL_VERSION_MINOR 1
#define RINGTAIL_VERSION_PATCH 0
#define RINGTAIL_VERSION_STRING "0.1.0"

/* Feature macros only take effect before the first system header. */
#if !defined(_FEATURES_H) && !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE) && \
	!defined(_DEFAULT_SOURCE) && !defined(_XOPEN_SOURCE)
#define _DEFAULT_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#error "ringtail.h needs POSIX.1-2008: include it first, or define _POSIX_C_SOURCE=200809L or _GNU_SOURCE"
#endif

#ifdef __cplusplus
extern "C" {
#define RT__CAST(type, expr) (reinterpret_cast<type>(expr))
#define RT__STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define RT__CAST(type, expr) ((type)(expr))
#define RT__STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* Tests define this to act in the middle of a record (after it is announced,
 * before it is published); it is empty otherwise. */
#ifndef RT__TEST_MIDWRITE
#define RT__TEST_MIDWRITE() ((void)0)
#endif

#define RT__LIKELY(x) __builtin_expect(!!(x), 1)
#define RT__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define RT__WEAK __attribute__((weak))
#define RT__COLD __attribute__((weak, noinline, cold))

/* ------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------ */

/*
 * Severities are OpenTelemetry SeverityNumber values. Any value 1..24 is
 * accepted; a value renders as the name of its range (9..12 is INFO).
 * WARN and above keep a reserved share of the ring (see docs/ring.md).
 */
enum rt_severity {
	RT_TRACE = 1,
	RT_DEBUG = 5,
	RT_INFO = 9,
	RT_WARN = 13,
	RT_ERROR = 17,
	RT_FATAL = 21,
};

#define RT_SEVERITY_MIN 1
#define RT_SEVERITY_MAX 24

/* Longest service name, in bytes. */
#define RT_SERVICE_MAX 64
/* Largest attribute key and value, in bytes. */
#define RT_ATTR_KEY_MAX 255
#define RT_ATTR_VALUE_MAX 65535

/* The ring writers attach to when $RINGTAIL_RING is not set. */
#define RT_RING_DEFAULT_PATH "/dev/shm/ringtail"
#define RT_RING_ENV "RINGTAIL_RING"

/* One key=value attribute; both strings are NUL-terminated. */
struct rt_attr {
	const char *key;
	const char *value;
};

/*
 * Per-call options; every field is optional (NULL or 0 means "not given").
 * service overrides the process service for this record; trace_id points at
 * 16 bytes and span_id at 8 bytes (W3C trace context, binary).
 */
struct rt_opts {
	const char *service;
	const uint8_t *trace_id;
	const uint8_t *span_id;
	const struct rt_attr *attrs;
	size_t nattrs;
};

/*
 * Return values of every writing call:
 *
 *   0            the record is in the ring.
 *   -ENOBUFS     the ring is full (or this writer has used its share, or an
 *                INFO-or-lower record hit the share reserved for WARN+).
 *   -ENOENT      no ring exists yet; the writer attaches when one appears.
 *   -EMSGSIZE    the record is larger than a ring chunk can hold.
 *   -EINVAL      bad argument: severity outside 1..24, NULL message with a
 *                non-zero length, a service name that rt_set_service() would
 *                refuse, an empty or oversized attribute.
 *   -EUSERS      every writer slot of the ring is taken.
 *   any error of rt_attach() when the ring file exists but is unusable:
 *   -ELOOP (symlink), -ENODEV (not a regular file), -EPERM (unsafe owner or
 *   mode), -EPROTO (not a ringtail ring), -EPROTONOSUPPORT (other version),
 *   -EBADMSG (truncated or inconsistent), or what open/mmap failed with.
 *
 * Every call that does not return 0 is counted (see rt_dropped() and
 * `ringtail stat`).
 */

/*
 * rt_write - write one preformatted record with the process service.
 * @severity: 1..24, e.g. RT_INFO.
 * @msg: the message bytes (any bytes; need not be NUL-terminated).
 * @len: length of @msg.
 * @return 0, or a negative errno listed above.
 */
static inline int rt_write(int severity, const char *msg, size_t len);

/*
 * rt_writex - like rt_write(), with per-call options (may be NULL).
 * @return 0, or a negative errno listed above.
 */
static inline int rt_writex(int severity, const struct rt_opts *opts, const char *msg,
			    size_t len);

/*
 * rt_printf - format a message with printf(3) rules straight into the ring.
 * @return 0, or a negative errno listed above.
 */
static inline int rt_printf(int severity, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* rt_printfx - rt_printf() with per-call options (may be NULL). */
static inline int rt_printfx(int severity, const struct rt_opts *opts, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* rt_vprintfx - the va_list form of rt_printfx(). */
static inline int rt_vprintfx(int severity, const struct rt_opts *opts, const char *fmt,
			      va_list ap) __attribute__((format(printf, 3, 0)));

/*
 * rt_set_service - set the service name of this process's records.
 * The default is the program's name ("unknown" if that is not a valid
 * name). The name is copied.
 * @return 0; -EINVAL if @name is NULL, empty, longer than RT_SERVICE_MAX,
 * not valid UTF-8 (strictly: no overlong forms, no surrogates, nothing past
 * U+10FFFF), holds '/', DEL or a control byte, is "." or "..", or is one of
 * ringtail's own names, "ringtail" and "ringtaild" (docs/ring.md).
 */
int rt_set_service(const char *name);

/*
 * rt_attach - attach to the ring now instead of on the first write.
 * Useful to report a configuration error early. Never blocks.
 * @return 0 when attached, else the reason (see "Return values").
 */
int rt_attach(void);

/*
 * rt_sigbus_guard - whether ringtail may install its SIGBUS handler (the
 * default: on). Any member of the ring's group can cut the ring file short,
 * and a store into a mapped page past the end of a file raises SIGBUS. So at
 * the first attach the writer installs one process-wide handler (chaining to
 * the handler that was there before): for a fault inside a ring mapping it
 * maps zero pages over the whole ring, the access completes, and the writer
 * moves to a new ring at its next chunk; every other SIGBUS goes to the
 * previous handler or the default action, as it would have. Call
 * rt_sigbus_guard(0) before the first write to keep your own SIGBUS
 * handling alone (a cut ring can then kill the process).
 * @return 0; -EBUSY if turning it off after it was installed.
 */
int rt_sigbus_guard(int on);

/*
 * rt_dropped - records this process failed to write, all reasons together,
 * since it started (including calls made before any ring existed).
 */
uint64_t rt_dropped(void);

/*
 * rt_strerror - a short description of a return value of this API.
 * @return a static string; never NULL.
 */
const char *rt_strerror(int err);

/*
 * rt_severity_name - "TRACE", "DEBUG", "INFO", "WARN", "ERROR" or "FATAL"
 * for a SeverityNumber, "UNSET" for 0 and anything out of range.
 */
static inline const char *rt_severity_name(int severity)
{
	static const char *const names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"};
	if (severity < RT_SEVERITY_MIN || severity > RT_SEVERITY_MAX)
		return "UNSET";
	return names[(severity - 1) / 4];
}

/* ------------------------------------------------------------------------
 * The ring layout (version 1). Host-local shared memory, so every integer is
 * in the host's byte order; ringtail supports little-endian hosts only.
 *
 *   file offset
 *   0            +------------------------------------------+
 *                | struct rt__ring_hdr  (RT__HDR_SIZE bytes)|  magic, version,
 *                |                                          |  sizes, counters
 *   slots_off    +------------------------------------------+
 *                | struct rt__slot [nslots]  (256 B each)   |  one per writer
 *                |                                          |  thread
 *   owners_off   +------------------------------------------+
 *                | uint32_t owner [nchunks]                 |  0 = free, else
 *                |                                          |  slot index + 1
 *   chunks_off   +------------------------------------------+
 *                | chunk 0 | chunk 1 | ... | chunk n-1      |  chunk_size each
 *                +------------------------------------------+
 *
 * Every writer thread owns one slot, and writes its records into a chain of
 * chunks that it claims one at a time from the shared pool. Inside a chunk
 * there is exactly one producer (the owning thread) and one consumer (the
 * spooler), so a record costs plain stores and one release store; the only
 * shared atomic operations happen once per chunk (a few hundred records).
 *
 * A chunk:
 *
 *   0          8          16      20      24      28      32        40    64
 *   +----------+----------+-------+-------+-------+-------+---------+-----+
 *   |committed |pending   | next  | slot  | gen   |  0    | base    | 0.. |
 *   +----------+----------+-------+-------+-------+-------+---------+-----+
 *   | record | record | record | ...                       (8-aligned)   |
 *   +----------------------------------------------------------------------+
 *
 *   committed  (count << 32) | end: records published so far and the offset
 *              just past the last one. Written by the owner with a release
 *              store after each record; the consumer reads it with acquire.
 *   pending    the value committed will take when the record being written
 *              is done. A dead writer with pending != committed died inside
 *              a write: exactly one record lost.
 *   next       index + 1 of the following chunk of the same writer, 0 while
 *              this is the writer's current chunk. Release-stored after the
 *              last commit into this chunk, so next != 0 means "sealed".
 *   slot, gen  the owning writer slot and its generation.
 *   base       the writer's stream position of the first record byte.
 *
 * A record (the same layout is used in segment files, see docs/segment.md):
 *
 *   0         4     5      6       7      8
 *   +---------+-----+------+-------+------+
 *   | len     | sev |flags |svc_len|  0   |   len: bytes of the record
 *   +---------+-----+------+-------+------+        before 8-byte padding
 *   | time (u64)                          |   TSC ticks if RT__RF_TSC,
 *   +------------------+------------------+   else ns since the epoch
 *   | pid (u32)        | tid (u32)        |
 *   +------------------+------------------+
 *   | attr_len (u32)   | msg_len (u32)    |
 *   +------------------+------------------+  32
 *   | trace_id[16]     if RT__RF_TRACE    |
 *   | span_id[8]       if RT__RF_SPAN     |
 *   | service[svc_len]                    |
 *   | attrs[attr_len]  {u8 klen, key, u16 vlen, value}...
 *   | msg[msg_len]                        |
 *   | 0..7 bytes of padding               |
 *   +-------------------------------------+
 * ------------------------------------------------------------------------ */

#define RT__RING_MAGIC "RTAILRNG"
#define RT__RING_VERSION 1u
#define RT__HDR_SIZE 4096u
#define RT__SLOT_SIZE 256u
#define RT__CHUNK_HDR 64u
#define RT__REC_HDR 32u
#define RT__CACHELINE 64

/* Ring header flags (incompatible: a writer must understand each one). */
#define RT__RING_F_TSC 0x1ull /* writers stamp records with the TSC */
#define RT__RING_INCOMPAT_KNOWN RT__RING_F_TSC
/* Ring state (rt__ring_hdr.state). */
#define RT__RING_LIVE 0u
#define RT__RING_DEAD 1u /* removed: writers re-attach to a new ring */

/* Record flags. */
#define RT__RF_TSC 0x01u   /* time is TSC ticks (ring only) */
#define RT__RF_TRACE 0x02u /* trace_id present */
#define RT__RF_SPAN 0x04u  /* span_id present */
#define RT__RF_LOSS 0x08u  /* made by ringtail to report lost records */
#define RT__RF_KNOWN 0x0fu

/* Slot states. */
#define RT__SLOT_FREE 0u
#define RT__SLOT_CLAIMED 1u /* the writer is filling in its identity */
#define RT__SLOT_ACTIVE 2u
#define RT__SLOT_RETIRED 3u /* the thread exited; drain and free */

struct rt__ring_hdr {
	/* Immutable after creation. */
	char magic[8];
	uint32_t version;
	uint32_t header_size;
	uint64_t flags_compat;
	uint64_t flags_incompat;
	uint64_t size;          /* bytes of the whole file */
	uint32_t chunk_size;    /* bytes per chunk, header included */
	uint32_t nchunks;
	uint32_t nslots;
	uint32_t slot_size;
	uint64_t slots_off;
	uint64_t owners_off;
	uint64_t chunks_off;
	uint64_t ring_id;       /* random, names this ring instance */
	uint64_t created_ns;    /* CLOCK_REALTIME at creation */
	uint32_t reserve_chunks; /* chunks only WARN+ may claim */
	uint32_t writer_max_chunks; /* chunks one writer may hold */
	uint64_t tsc_hz;        /* TSC frequency measured at creation */
	uint64_t tsc_ref;       /* TSC at creation ... */
	uint64_t mono_ref;      /* ... and CLOCK_MONOTONIC_RAW ns then */
	uint8_t reserved0[RT__CACHELINE * 3 - 128];

	/* Written by whoever removes the ring; writers poll it when claiming. */
	uint32_t state;
	uint32_t pad1;
	uint8_t reserved1[RT__CACHELINE - 8];

	/* Chunk allocation: touched once per chunk claim or free. */
	uint64_t free_chunks;   /* approximate; the consumer resyncs it */
	uint8_t reserved2[RT__CACHELINE - 8];
	uint64_t alloc_hint;
	uint32_t slot_hwm;      /* 1 + highest slot index ever claimed */
	uint8_t reserved3[RT__CACHELINE - 12];

	/* Failures with no slot to count them in (written atomically). */
	uint64_t dropped_noslot;
	uint64_t last_noslot_pid;
	uint8_t reserved4[RT__CACHELINE - 16];

	/* Consumer status, written only by the consumer. */
	uint64_t consumer_pid;
	uint64_t consumer_heartbeat_ns; /* CLOCK_REALTIME of its last poll */
	uint64_t noslot_reported;
	uint64_t written_retired;  /* records of writers already freed */
	uint64_t dropped_retired;  /* drops of writers already freed */
	uint64_t lost_total;       /* records lost to writers that died */
	uint64_t corrupt_total;    /* malformed records skipped */
	uint64_t consumed_total;   /* records the consumer has released */
	uint8_t reserved5[RT__CACHELINE];

	/* Published by the spooler (ringtaild). */
	uint64_t durable_seq;      /* highest sequence number durable on disk */
	uint64_t spool_records;
	uint8_t spool_epoch[16];
	uint8_t reserved6[RT__CACHELINE - 32];

	/* The spooler's spool directory (NUL-terminated), so that tools can
	 * find what it publishes there. Written once by the spooler. */
	char spool_dir[512];
	uint8_t tail[RT__HDR_SIZE - RT__CACHELINE * 10 - 512];
};
RT__STATIC_ASSERT(sizeof(struct rt__ring_hdr) == RT__HDR_SIZE, "ring header size");
RT__STATIC_ASSERT(offsetof(struct rt__ring_hdr, state) == 3 * RT__CACHELINE, "hdr state");
RT__STATIC_ASSERT(offsetof(struct rt__ring_hdr, free_chunks) == 4 * RT__CACHELINE, "hdr alloc");
RT__STATIC_ASSERT(offsetof(struct rt__ring_hdr, consumer_pid) == 7 * RT__CACHELINE, "hdr consumer");
RT__STATIC_ASSERT(offsetof(struct rt__ring_hdr, durable_seq) == 9 * RT__CACHELINE, "hdr spooler");

struct rt__slot {
	/* Line 0: identity, written by the owner before state becomes ACTIVE. */
	uint32_t owner;      /* pid of the owner, 0 when free (claimed by CAS) */
	uint32_t state;      /* RT__SLOT_* */
	uint32_t gen;        /* incremented by each new owner */
	uint32_t tid;
	uint64_t starttime;  /* owner's start time, clock ticks after boot */
	uint32_t first;      /* first chunk index + 1, 0 before the first */
	uint8_t svc_len;
	uint8_t pad0[3];
	char service[32];    /* the process service when the slot was claimed */

	/* Line 1: counters written only by the owner (relaxed atomics). */
	uint64_t drop_full;   /* ring full, share used, or reserve hit */
	uint64_t drop_full_warn; /* ... of which WARN and above */
	uint64_t drop_large;
	uint64_t drop_inval;
	uint64_t drop_noring; /* failed before the process had a ring */
	uint64_t chunks_claimed;
	uint64_t written_sealed; /* records in chunks already sealed */
	uint64_t pad1;

	/* Line 2: the consumer's durable position, written only by it. A
	 * consumer can be killed between any two stores, so the position is
	 * one word, and it is stored after the counters and before any chunk
	 * behind it is freed. */
	uint64_t c_where;     /* (chunk index + 1) << 32 | offset; 0 = before the first */
	uint64_t c_records;   /* records consumed */
	uint64_t c_dropped;   /* drops already reported in the log */
	uint64_t chunks_freed;
	uint32_t c_flags;     /* RT__CF_* */
	uint32_t pad2;
	uint64_t pad3[3];

	uint8_t pad4[RT__CACHELINE];
};
RT__STATIC_ASSERT(sizeof(struct rt__slot) == RT__SLOT_SIZE, "slot size");
RT__STATIC_ASSERT(offsetof(struct rt__slot, drop_full) == RT__CACHELINE, "slot line 1");
RT__STATIC_ASSERT(offsetof(struct rt__slot, c_where) == 2 * RT__CACHELINE, "slot line 2");

/* Consumer flags of a slot. */
#define RT__CF_LOST_REPORTED 0x1u /* the dying write's loss is in the log */
#define RT__CF_FINAL 0x2u         /* being freed: finish freeing it */
#define RT__WHERE(chunk, off) (((uint64_t)(chunk) << 32) | (uint32_t)(off))
#define RT__WHERE_CHUNK(w) ((uint32_t)((w) >> 32))
#define RT__WHERE_OFF(w) ((uint32_t)(w))

struct rt__chunk {
	uint64_t committed;
	uint64_t pending;
	uint32_t next;
	uint32_t slot;
	uint32_t gen;
	uint32_t pad0;
	uint64_t base;
	uint8_t pad1[RT__CHUNK_HDR - 40];
};
RT__STATIC_ASSERT(sizeof(struct rt__chunk) == RT__CHUNK_HDR, "chunk header size");

struct rt__rec {
	uint32_t len;
	uint8_t severity;
	uint8_t flags;
	uint8_t svc_len;
	uint8_t zero;
	uint64_t time;
	uint32_t pid;
	uint32_t tid;
	uint32_t attr_len;
	uint32_t msg_len;
};
RT__STATIC_ASSERT(sizeof(struct rt__rec) == RT__REC_HDR, "record header size");

#define RT__ALIGN8(n) (((n) + 7u) & ~(size_t)7u)
#define RT__COMMIT(count, end) (((uint64_t)(count) << 32) | (uint32_t)(end))
#define RT__COMMIT_COUNT(c) ((uint32_t)((c) >> 32))
#define RT__COMMIT_END(c) ((uint32_t)(c))

/* ------------------------------------------------------------------------
 * Writer state. The definitions are weak so that every translation unit of
 * a program (C or C++) shares one copy; the _v1 suffix keeps programs that
 * mix two incompatible versions of this header apart.
 * ------------------------------------------------------------------------ */

/* An attached ring: what the writer needs of its header, copied once at
 * attach (the shared header is not trusted afterwards). Never freed. */
struct rt__map {
	char *base;
	uint64_t size;
	uint64_t owners_off;
	uint64_t chunks_off;
	uint32_t chunk_size;
	uint32_t nchunks;
	uint32_t nslots;
	uint32_t reserve_chunks;
	uint32_t writer_max_chunks;
	uint32_t use_tsc;
	uint32_t lost;          /* the file was cut short under us (SIGBUS) */
	uint64_t dev, ino;      /* the file, to tell a removed ring from a poked state */
};

struct rt__proc {
	/* Read on every call: keep it on its own line. */
	uint32_t svc_gen;       /* bumped by rt_set_service() */
	uint8_t pad0[RT__CACHELINE - 4];

	struct rt__map *map;    /* the attached ring; NULL until attached */
	uint32_t pid;
	int last_err;           /* why the last attach failed */
	uint64_t starttime;
	uint64_t next_try_ns;   /* no attach attempt before this (monotonic) */
	uint64_t dropped;       /* every failed call of the process */
	uint64_t noring;        /* failed calls not yet moved into a slot */
	int svc_lock;           /* spin lock of rt_set_service() */
	int key_ok;             /* key is usable */
	pthread_key_t key;      /* its destructor retires a thread's slot */
	/* The service name, as words so that the sequence-locked copy in
	 * rt__sync_service() is made of atomic loads. */
	uint64_t svc_words[RT_SERVICE_MAX / 8];
	uint32_t svc_len;
};

/* Bytes of the per-thread record template: header plus the longest service. */
#define RT__TMPL (RT__REC_HDR + RT_SERVICE_MAX)

struct rt__tls {
	char *wp;               /* where the next record goes */
	uint32_t room;          /* bytes left in the chunk; 0 = take slow path */
	uint32_t tid;
	uint64_t commit;        /* committed word of the current chunk */
	struct rt__chunk *chunk;
	struct rt__slot *slot;
	const struct rt__map *map; /* the ring of this thread's slot */
	uint32_t pid;
	uint32_t use_tsc;
	uint64_t stream;        /* stream position of the chunk's first record */
	uint32_t slot_idx;
	/* Fields from here on survive a move to another ring. */
	uint32_t svc_gen;
	uint8_t svc_len;
	uint8_t pad[7];
	/* A record header with this thread's flags, pid, tid and service
	 * filled in, followed by the service name: a plain record is this
	 * copied whole, four fields patched, and the message. */
	__attribute__((aligned(16))) char tmpl[RT__TMPL];
};

RT__WEAK struct rt__proc rt__proc_v1;
RT__WEAK pthread_once_t rt__once_v1 = PTHREAD_ONCE_INIT;
RT__WEAK __thread struct rt__tls rt__tls_v1;

/* ------------------------------------------------------------------------
 * The SIGBUS guard (see rt_sigbus_guard()). One handler per program, weak
 * like the rest; the daemon side (shm/ring.c) and the spool's guarded copies
 * (spooler/spool.c) use this same handler, so a program never has two.
 *
 * Registered ranges are mappings of ring files: a fault (BUS_ADRERR) inside
 * one maps anonymous zero pages over the whole range, sets its lost flag and
 * returns, so the faulting access completes on memory nobody reads. A
 * thread may also arm a jump (rt__bus_jump_v1): a fault inside its range
 * calls fn, which does not return (a siglongjmp).
 * ------------------------------------------------------------------------ */

#define RT__GUARD_MAX 128

struct rt__guard_ent {
	uintptr_t lo;
	uintptr_t hi;            /* 0: the entry is free */
	uint32_t *lost;
	int used;                /* 0 free, 1 in use, 2 retired (an abandoned
				  * mapping: its place may be taken back) */
};

struct rt__guard {
	int state;               /* 0 none, 1 installing, 2 installed, 3 failed */
	int off;                 /* rt_sigbus_guard(0) */
	struct sigaction prev;
	struct rt__guard_ent e[RT__GUARD_MAX];
};

struct rt__bus_jump {
	uintptr_t lo, hi;
	void (*fn)(void *arg);
	void *arg;
};

RT__WEAK struct rt__guard rt__guard_v1;
RT__WEAK __thread struct rt__bus_jump *rt__bus_jump_v1;

#ifdef MAP_ANONYMOUS
#define RT__MAP_ANON MAP_ANONYMOUS
#else
#define RT__MAP_ANON 0x20 /* Linux; hidden in strict POSIX mode */
#endif
#ifndef BUS_ADRERR
#define BUS_ADRERR 2
#endif

void rt__on_sigbus_v1(int sig, siginfo_t *si, void *uc);
int rt__guard_install_v1(void);
int rt__guard_add_v1(void *base, size_t size, uint32_t *lost);
void rt__guard_del_v1(void *base);
void rt__guard_retire_v1(void *base);

RT__COLD void rt__on_sigbus_v1(int sig, siginfo_t *si, void *uc)
{
	struct rt__guard *g = &rt__guard_v1;
	struct rt__bus_jump *j = rt__bus_jump_v1;
	uintptr_t a = RT__CAST(uintptr_t, si->si_addr);
	struct sigaction dfl;
	int i, saved = errno;

	if (si->si_code == BUS_ADRERR) {
		if (j && a >= j->lo && a < j->hi) {
			rt__bus_jump_v1 = NULL;
			j->fn(j->arg); /* does not return */
		}
		for (i = 0; i < RT__GUARD_MAX; i++) {
			uintptr_t hi = __atomic_load_n(&g->e[i].hi, __ATOMIC_ACQUIRE);
			uintptr_t lo = __atomic_load_n(&g->e[i].lo, __ATOMIC_RELAXED);
			uint32_t *lost = __atomic_load_n(&g->e[i].lost, __ATOMIC_RELAXED);
			if (!hi || a < lo || a >= hi)
				continue;
			if (mmap(RT__CAST(void *, lo), hi - lo, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | RT__MAP_ANON | MAP_FIXED, -1, 0) == MAP_FAILED)
				break;
			if (lost)
				__atomic_store_n(lost, 1u, __ATOMIC_RELEASE);
			errno = saved;
			return; /* the access is made again, on zeros */
		}
	}
	errno = saved;
	if (g->prev.sa_flags & SA_SIGINFO) {
		g->prev.sa_sigaction(sig, si, uc);
		return;
	}
	if (g->prev.sa_handler != SIG_DFL && g->prev.sa_handler != SIG_IGN) {
		g->prev.sa_handler(sig);
		return;
	}
	/* The default action: a fault is made again and kills; a SIGBUS that
	 * was sent is raised again. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigaction(SIGBUS, &dfl, NULL);
	if (si->si_code <= 0)
		raise(SIGBUS);
}

/* Install the handler once. @return 0 when it is installed, -EPERM when
 * turned off, or the error of sigaction. */
RT__COLD int rt__guard_install_v1(void)
{
	struct rt__guard *g = &rt__guard_v1;
	struct sigaction sa;
	int st = 0;

	if (__atomic_load_n(&g->off, __ATOMIC_ACQUIRE))
		return -EPERM;
	while ((st = __atomic_load_n(&g->state, __ATOMIC_ACQUIRE)) != 2) {
		if (st == 3)
			return -ENOSYS;
		if (st == 1)
			continue; /* another thread is inside sigaction() */
		if (!__atomic_compare_exchange_n(&g->state, &st, 1, 0, __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE))
			continue;
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = rt__on_sigbus_v1;
		/* SA_NODEFER: a jump out of the handler leaves SIGBUS open. */
		sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
		sigemptyset(&sa.sa_mask);
		st = sigaction(SIGBUS, &sa, &g->prev) == 0 ? 2 : 3;
		__atomic_store_n(&g->state, st, __ATOMIC_RELEASE);
	}
	return 0;
}

/* Guard the mapping [@base, @base + @size): on SIGBUS there, zero pages
 * and *@lost = 1. @return 0, -ENOSPC (128 rings mapped), or as above. */
RT__COLD int rt__guard_add_v1(void *base, size_t size, uint32_t *lost)
{
	struct rt__guard *g = &rt__guard_v1;
	int i, err = rt__guard_install_v1();

	if (err)
		return err;
	for (i = 0; i < RT__GUARD_MAX; i++) {
		int zero = 0;
		if (__atomic_load_n(&g->e[i].used, __ATOMIC_RELAXED) ||
		    !__atomic_compare_exchange_n(&g->e[i].used, &zero, 1, 0, __ATOMIC_ACQUIRE,
						 __ATOMIC_RELAXED))
			continue;
		__atomic_store_n(&g->e[i].lo, RT__CAST(uintptr_t, base), __ATOMIC_RELAXED);
		__atomic_store_n(&g->e[i].lost, lost, __ATOMIC_RELAXED);
		__atomic_store_n(&g->e[i].hi, RT__CAST(uintptr_t, base) + size, __ATOMIC_RELEASE);
		return 0;
	}
	/* Every place taken: take back one of a mapping abandoned for a newer
	 * ring. Zero pages over it first, so that it can never fault again
	 * (a thread still writing there writes into memory nobody reads, as
	 * into a ring nobody drains). */
	for (i = 0; i < RT__GUARD_MAX; i++) {
		int two = 2;
		uintptr_t lo, hi;
		uint32_t *l;
		if (!__atomic_compare_exchange_n(&g->e[i].used, &two, 1, 0, __ATOMIC_ACQUIRE,
						 __ATOMIC_RELAXED))
			continue;
		lo = __atomic_load_n(&g->e[i].lo, __ATOMIC_RELAXED);
		hi = __atomic_load_n(&g->e[i].hi, __ATOMIC_RELAXED);
		l = __atomic_load_n(&g->e[i].lost, __ATOMIC_RELAXED);
		if (hi && mmap(RT__CAST(void *, lo), hi - lo, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | RT__MAP_ANON | MAP_FIXED, -1, 0) == MAP_FAILED) {
			__atomic_store_n(&g->e[i].used, 2, __ATOMIC_RELEASE);
			continue;
		}
		if (l)
			__atomic_store_n(l, 1u, __ATOMIC_RELEASE);
		__atomic_store_n(&g->e[i].hi, (uintptr_t)0, __ATOMIC_RELEASE);
		__atomic_store_n(&g->e[i].lo, RT__CAST(uintptr_t, base), __ATOMIC_RELAXED);
		__atomic_store_n(&g->e[i].lost, lost, __ATOMIC_RELAXED);
		__atomic_store_n(&g->e[i].hi, RT__CAST(uintptr_t, base) + size, __ATOMIC_RELEASE);
		return 0;
	}
	return -ENOSPC;
}

/* The mapping at @base was abandoned for a newer ring but stays mapped
 * (threads may be inside a write to it): still guarded, but its place may
 * be taken back when every place is in use (rt__guard_add_v1). */
RT__COLD void rt__guard_retire_v1(void *base)
{
	struct rt__guard *g = &rt__guard_v1;
	int i;

	for (i = 0; i < RT__GUARD_MAX; i++) {
		int one = 1;
		if (!__atomic_load_n(&g->e[i].hi, __ATOMIC_ACQUIRE) ||
		    __atomic_load_n(&g->e[i].lo, __ATOMIC_RELAXED) != RT__CAST(uintptr_t, base))
			continue;
		(void)__atomic_compare_exchange_n(&g->e[i].used, &one, 2, 0, __ATOMIC_RELEASE,
						  __ATOMIC_RELAXED);
		return;
	}
}

/* Forget the guard of the mapping at @base (before unmapping it). */
RT__COLD void rt__guard_del_v1(void *base)
{
	struct rt__guard *g = &rt__guard_v1;
	int i;

	for (i = 0; i < RT__GUARD_MAX; i++) {
		if (!__atomic_load_n(&g->e[i].hi, __ATOMIC_ACQUIRE) ||
		    __atomic_load_n(&g->e[i].lo, __ATOMIC_RELAXED) != RT__CAST(uintptr_t, base))
			continue;
		__atomic_store_n(&g->e[i].hi, (uintptr_t)0, __ATOMIC_RELEASE);
		__atomic_store_n(&g->e[i].used, 0, __ATOMIC_RELEASE);
		return;
	}
}

int rt_sigbus_guard(int on);
RT__WEAK int rt_sigbus_guard(int on)
{
	struct rt__guard *g = &rt__guard_v1;

	if (on) {
		__atomic_store_n(&g->off, 0, __ATOMIC_RELEASE);
		return 0;
	}
	if (__atomic_load_n(&g->state, __ATOMIC_ACQUIRE) == 2)
		return -EBUSY;
	__atomic_store_n(&g->off, 1, __ATOMIC_RELEASE);
	return 0;
}

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

static inline uint64_t rt__mono_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The record timestamp: TSC when the ring says it is the kernel's clock
 * source (the spooler converts), else CLOCK_REALTIME. */
static inline uint64_t rt__now(const struct rt__tls *t)
{
#if defined(__x86_64__) || defined(__i386__)
	if (RT__LIKELY(t->use_tsc))
		return __builtin_ia32_rdtsc();
#else
	(void)t;
#endif
	return rt__mono_ns(CLOCK_REALTIME);
}

/* The old rule, which stored records were written under: 1..64 bytes, no
 * '/', no control bytes, not "." or "..". Readers of segments use it. */
static inline int rt__service_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > RT_SERVICE_MAX)
		return 0;
	if (s[0] == '.' && (n == 1 || (n == 2 && s[1] == '.')))
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || c == '/')
			return 0;
	}
	return 1;
}

/* ringtail's own services: its loss records and the daemon's messages. */
static inline int rt__service_reserved(const char *s, size_t n)
{
	return (n == 8 && memcmp(s, "ringtail", 8) == 0) ||
	       (n == 9 && memcmp(s, "ringtaild", 9) == 0);
}

/*
 * The rule for a name a writer gives (docs/ring.md, "Service names"): the
 * old rule, and strict UTF-8 (shortest form, no surrogates, at most
 * U+10FFFF). Refused, never escaped. Reserved names are checked apart.
 */
static inline int rt__service_utf8_ok(const char *s, size_t n)
{
	const unsigned char *p = RT__CAST(const unsigned char *, s);
	size_t i = 0, k, len;
	uint32_t cp;

	if (!rt__service_ok(s, n))
		return 0;
	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if (p[i] >= 0xc2 && p[i] <= 0xdf) {
			len = 2;
			cp = p[i] & 0x1fu;
		} else if (p[i] >= 0xe0 && p[i] <= 0xef) {
			len = 3;
			cp = p[i] & 0x0fu;
		} else if (p[i] >= 0xf0 && p[i] <= 0xf4) {
			len = 4;
			cp = p[i] & 0x07u;
		} else {
			return 0; /* a continuation first, an overlong lead, past U+10FFFF */
		}
		if (n - i < len)
			return 0;
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + k] & 0x3fu);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

/* What a writer may name itself: the rule, and not reserved. */
static inline int rt__service_name_ok(const char *s, size_t n)
{
	return rt__service_utf8_ok(s, n) && !rt__service_reserved(s, n);
}

static inline uint32_t rt__load32(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/* The owner bumps its own counters: no other writer touches them, the
 * consumer only reads, so a relaxed load and store suffice. */
static inline void rt__count(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

/* Fill in the record template from this thread's identity and service. */
static inline void rt__build_tmpl(struct rt__tls *t)
{
	struct rt__rec *r = RT__CAST(struct rt__rec *, t->tmpl);

	memset(r, 0, sizeof(*r));
	r->flags = t->use_tsc ? (uint8_t)RT__RF_TSC : (uint8_t)0;
	r->svc_len = t->svc_len;
	r->pid = t->pid;
	r->tid = t->tid;
}

/* ------------------------------------------------------------------------
 * Slow paths: attaching, claiming a slot or a chunk, counting failures.
 * Weak and out of line so that one copy serves the whole program.
 * ------------------------------------------------------------------------ */

int rt__attach_v1(void);
int rt__refill_v1(struct rt__tls *t, int severity, size_t need);
int rt__fail_v1(struct rt__tls *t, int severity, int err);
void rt__thread_exit_v1(void *arg);
void rt__atfork_child_v1(void);
int rt__validate_v1(const struct rt__ring_hdr *h, uint64_t file_size);
int rt__open_checked_v1(const char *path, int flags, uint64_t *size);
uint64_t rt__starttime_v1(void);
uint32_t rt__gettid_v1(void);

/* Validate a ring header against the size of its file. */
RT__COLD int rt__validate_v1(const struct rt__ring_hdr *h, uint64_t file_size)
{
	uint64_t slots_end, owners_end, chunks_end;

	if (file_size < RT__HDR_SIZE)
		return -EBADMSG;
	if (memcmp(h->magic, RT__RING_MAGIC, 8) != 0)
		return -EPROTO;
	if (h->version != RT__RING_VERSION)
		return -EPROTONOSUPPORT;
	if (h->flags_incompat & ~RT__RING_INCOMPAT_KNOWN)
		return -EPROTONOSUPPORT;
	if (h->header_size != RT__HDR_SIZE || h->slot_size != RT__SLOT_SIZE)
		return -EBADMSG;
	if (h->size != file_size)
		return -EBADMSG;
	if (h->chunk_size < 4096 || h->chunk_size > (64u << 20) || (h->chunk_size & 63))
		return -EBADMSG;
	if (h->nchunks == 0 || h->nslots == 0 || h->nslots > (1u << 20))
		return -EBADMSG;
	if (h->slots_off != RT__HDR_SIZE || (h->owners_off & 63) || (h->chunks_off & 4095))
		return -EBADMSG;
	/* Offsets past the file first: the sums below must not wrap. */
	if (h->owners_off > file_size || h->chunks_off > file_size)
		return -EBADMSG;
	slots_end = h->slots_off + (uint64_t)h->nslots * RT__SLOT_SIZE;
	owners_end = h->owners_off + (uint64_t)h->nchunks * 4u;
	chunks_end = h->chunks_off + (uint64_t)h->nchunks * h->chunk_size;
	if (h->owners_off < slots_end || h->chunks_off < owners_end || chunks_end > file_size)
		return -EBADMSG;
	if (h->reserve_chunks >= h->nchunks || h->writer_max_chunks == 0)
		return -EBADMSG;
	return 0;
}

/*
 * Open a ring file with the checks every attacher makes: no symlink, a
 * regular file, and when another user (other than root) owns it, no access
 * for "other" (anyone could have planted or could read it).
 */
RT__COLD int rt__open_checked_v1(const char *path, int flags, uint64_t *size)
{
	struct stat st;
	int fd;

	/* O_NONBLOCK: a FIFO planted at the path must not hang the open. */
	fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return errno == EISDIR ? -ENODEV : -errno;
	if (fstat(fd, &st) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return -ENODEV;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0 && (st.st_mode & 0007)) {
		close(fd);
		return -EPERM;
	}
	*size = (uint64_t)st.st_size;
	return fd;
}

/* Start time of this process in clock ticks after boot (field 22 of
 * /proc/self/stat), so that the consumer can tell a recycled pid. */
RT__COLD uint64_t rt__starttime_v1(void)
{
	char buf[1024];
	ssize_t n;
	char *p;
	int fd, field;
	uint64_t v = 0;

	fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* After ") " comes field 3; walk to field 22. */
	for (field = 2; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	while (*p >= '0' && *p <= '9')
		v = v * 10 + (uint64_t)(*p++ - '0');
	return v;
}

/* The kernel thread id (gettid() itself needs _GNU_SOURCE). */
RT__COLD uint32_t rt__gettid_v1(void)
{
#if defined(SYS_gettid) && defined(__USE_MISC)
	return (uint32_t)syscall(SYS_gettid);
#else
	char buf[64];
	ssize_t n = readlink("/proc/thread-self", buf, sizeof(buf) - 1);
	char *p;
	uint32_t v = 0;

	if (n <= 0)
		return (uint32_t)getpid();
	buf[n] = '\0';
	p = strrchr(buf, '/');
	for (p = p ? p + 1 : buf; *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (uint32_t)(*p - '0');
	return v ? v : (uint32_t)getpid();
#endif
}

RT__COLD void rt__atfork_child_v1(void)
{
	struct rt__proc *p = &rt__proc_v1;
	struct rt__tls *t = &rt__tls_v1;

	/* The child must never write into its parent's slot: forget it, and
	 * forget the thread-exit hook so that our exit does not retire it. */
	if (__atomic_load_n(&p->key_ok, __ATOMIC_ACQUIRE))
		pthread_setspecific(p->key, NULL);
	memset(t, 0, sizeof(*t));
	__atomic_store_n(&p->pid, (uint32_t)getpid(), __ATOMIC_RELAXED);
	__atomic_store_n(&p->starttime, 0, __ATOMIC_RELAXED); /* read again by the next claim */
}

RT__COLD void rt__thread_exit_v1(void *arg)
{
	struct rt__slot *s = RT__CAST(struct rt__slot *, arg);
	struct rt__tls *t = &rt__tls_v1;

	if (s && t->slot == s) {
		/* Everything this thread wrote is committed; the release
		 * pairs with the consumer's acquire of state. */
		__atomic_store_n(&s->state, RT__SLOT_RETIRED, __ATOMIC_RELEASE);
	}
	memset(t, 0, sizeof(*t));
}

/* Map the ring named by $RINGTAIL_RING (or the default). */
static inline int rt__map_ring(struct rt__map **out)
{
	const char *path = getenv(RT_RING_ENV);
	struct rt__ring_hdr *h;
	struct rt__map *m;
	struct stat st;
	uint64_t size;
	void *base;
	int fd, err;

	if (!path || !*path)
		path = RT_RING_DEFAULT_PATH;
	fd = rt__open_checked_v1(path, O_RDWR, &size);
	if (fd < 0)
		return fd;
	if (size < RT__HDR_SIZE || fstat(fd, &st) < 0) {
		close(fd);
		return -EBADMSG;
	}
#ifdef MAP_POPULATE
	/* Fault the whole ring in now, once, rather than in the hot path. */
	base = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
#else
	base = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
#endif
	err = -errno;
	close(fd);
	if (base == MAP_FAILED)
		return err;
	m = RT__CAST(struct rt__map *, calloc(1, sizeof(*m)));
	h = RT__CAST(struct rt__ring_hdr *, malloc(sizeof(*h)));
	if (!m || !h) {
		free(m);
		free(h);
		munmap(base, (size_t)size);
		return -ENOMEM;
	}
	/* Guarded before the first read: the file may be cut short at any
	 * time. Without the guard (turned off, or 128 rings mapped) such a
	 * cut can kill us; the writer works all the same. */
	(void)rt__guard_add_v1(base, (size_t)size, &m->lost);
	/* Checked and used from one private copy: the shared header may
	 * change between any two reads of it. */
	memcpy(h, base, sizeof(*h));
	err = rt__validate_v1(h, size);
	if (err == 0 && (__atomic_load_n(&RT__CAST(struct rt__ring_hdr *, base)->state,
					 __ATOMIC_ACQUIRE) != RT__RING_LIVE ||
			 __atomic_load_n(&m->lost, __ATOMIC_ACQUIRE)))
		err = -ENOENT;
	if (err) {
		rt__guard_del_v1(base);
		munmap(base, (size_t)size);
		free(m);
		free(h);
		return err;
	}
	m->base = RT__CAST(char *, base);
	m->size = size;
	m->dev = (uint64_t)st.st_dev;
	m->ino = (uint64_t)st.st_ino;
	m->owners_off = h->owners_off;
	m->chunks_off = h->chunks_off;
	m->chunk_size = h->chunk_size;
	m->nchunks = h->nchunks;
	m->nslots = h->nslots;
	m->reserve_chunks = h->reserve_chunks;
	m->writer_max_chunks = h->writer_max_chunks;
#if defined(__x86_64__) || defined(__i386__)
	m->use_tsc = (h->flags_incompat & RT__RING_F_TSC) ? 1u : 0u;
#else
	m->use_tsc = 0;
#endif
	free(h);
	*out = m;
	return 0;
}

void rt__key_init_v1(void);
RT__COLD void rt__key_init_v1(void)
{
	struct rt__proc *p = &rt__proc_v1;

	if (pthread_key_create(&p->key, rt__thread_exit_v1) == 0) {
		pthread_atfork(NULL, NULL, rt__atfork_child_v1);
		__atomic_store_n(&p->key_ok, 1, __ATOMIC_RELEASE);
	}
}

/*
 * Attach to the ring. Threads that get here at the same time each map the
 * ring and race to publish their mapping; the losers unmap theirs. Nobody
 * waits for anybody.
 */
RT__COLD int rt__attach_v1(void)
{
	struct rt__proc *p = &rt__proc_v1;
	struct rt__map *m = NULL, *expect = NULL;
	uint64_t now;
	int err;

	if (__atomic_load_n(&p->map, __ATOMIC_ACQUIRE))
		return 0;
	now = rt__mono_ns(CLOCK_MONOTONIC_COARSE);
	if (now < __atomic_load_n(&p->next_try_ns, __ATOMIC_RELAXED)) {
		err = __atomic_load_n(&p->last_err, __ATOMIC_RELAXED);
		return err ? err : -ENOENT;
	}
	pthread_once(&rt__once_v1, rt__key_init_v1);
	if (__atomic_load_n(&p->pid, __ATOMIC_RELAXED) == 0)
		__atomic_store_n(&p->pid, (uint32_t)getpid(), __ATOMIC_RELAXED);
	err = rt__map_ring(&m);
	__atomic_store_n(&p->last_err, err, __ATOMIC_RELAXED);
	if (err) {
		/* Look again at most every 10 ms while there is no usable ring. */
		__atomic_store_n(&p->next_try_ns, now + 10000000ull, __ATOMIC_RELAXED);
		return err;
	}
	/* Release: a thread that acquires map sees the fields filled in. */
	if (!__atomic_compare_exchange_n(&p->map, &expect, m, 0, __ATOMIC_RELEASE,
					 __ATOMIC_ACQUIRE)) {
		rt__guard_del_v1(m->base);
		munmap(m->base, (size_t)m->size);
		free(m);
	}
	return 0;
}

/* Claim a slot in mapping @m, which the caller loaded once: another thread
 * may let go of p->map meanwhile (a lost ring), never of the mapping. */
static inline int rt__claim_slot(struct rt__tls *t, const struct rt__map *m)
{
	struct rt__proc *p = &rt__proc_v1;
	struct rt__ring_hdr *h = RT__CAST(struct rt__ring_hdr *, m->base);
	struct rt__slot *slots = RT__CAST(struct rt__slot *, m->base + RT__HDR_SIZE);
	struct rt__slot *s = NULL;
	uint32_t i, hwm, pid = __atomic_load_n(&p->pid, __ATOMIC_RELAXED), want;
	uint64_t noring;
	size_t n;

	if (__atomic_load_n(&p->starttime, __ATOMIC_RELAXED) == 0)
		__atomic_store_n(&p->starttime, rt__starttime_v1(), __ATOMIC_RELAXED);
	for (i = 0; i < m->nslots; i++) {
		uint32_t zero = 0;
		if (__atomic_load_n(&slots[i].owner, __ATOMIC_RELAXED) != 0)
			continue;
		/* Acquire pairs with the consumer's release when it freed the
		 * slot: its resets of line 2 are visible to us. */
		if (__atomic_compare_exchange_n(&slots[i].owner, &zero, pid, 0, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED)) {
			s = &slots[i];
			break;
		}
	}
	if (!s)
		return -EUSERS;
	/* The slot's last owner may have been another thread of this process,
	 * and its release of the slot went through the consumer, another
	 * process: pair with that thread's release of state (RETIRED) so that
	 * its stores happen before ours, in the model and for ThreadSanitizer
	 * (which cannot see the other process). */
	(void)__atomic_load_n(&s->state, __ATOMIC_ACQUIRE);

	t->tid = rt__gettid_v1();
	t->pid = pid;
	__atomic_store_n(&s->gen, s->gen + 1, __ATOMIC_RELAXED);
	s->tid = t->tid;
	s->starttime = __atomic_load_n(&p->starttime, __ATOMIC_RELAXED);
	s->first = 0;
	n = t->svc_len < sizeof(s->service) ? t->svc_len : sizeof(s->service);
	memcpy(s->service, t->tmpl + RT__REC_HDR, n);
	s->svc_len = (uint8_t)n;
	s->drop_full = s->drop_full_warn = s->drop_large = s->drop_inval = 0;
	s->chunks_claimed = s->written_sealed = 0;
	noring = __atomic_exchange_n(&p->noring, 0, __ATOMIC_RELAXED);
	s->drop_noring = noring;
	/* Release: the consumer acquires state and then reads the identity. */
	__atomic_store_n(&s->state, RT__SLOT_ACTIVE, __ATOMIC_RELEASE);

	want = (uint32_t)(s - slots) + 1;
	hwm = __atomic_load_n(&h->slot_hwm, __ATOMIC_RELAXED);
	while (hwm < want && !__atomic_compare_exchange_n(&h->slot_hwm, &hwm, want, 1,
							   __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		;
	if (__atomic_load_n(&p->key_ok, __ATOMIC_ACQUIRE))
		pthread_setspecific(p->key, s);

	t->slot = s;
	t->slot_idx = want - 1;
	t->chunk = NULL;
	t->stream = 0;
	t->map = m;
	t->use_tsc = m->use_tsc;
	rt__build_tmpl(t);
	return 0;
}

/* Claim a fresh chunk for this thread and link it after the current one. */
static inline int rt__claim_chunk(struct rt__tls *t, int severity)
{
	const struct rt__map *m = t->map;
	struct rt__ring_hdr *h = RT__CAST(struct rt__ring_hdr *, m->base);
	uint32_t *owners = RT__CAST(uint32_t *, m->base + m->owners_off);
	struct rt__slot *s = t->slot;
	struct rt__chunk *c;
	uint64_t held, free_now, start, claimed;
	uint32_t i, idx = 0, me = t->slot_idx + 1;
	int found = 0;

	claimed = s->chunks_claimed;
	held = claimed - __atomic_load_n(&s->chunks_freed, __ATOMIC_ACQUIRE);
	if (held >= m->writer_max_chunks)
		return -ENOBUFS;
	free_now = __atomic_load_n(&h->free_chunks, __ATOMIC_RELAXED);
	if (free_now == 0 || (severity < RT_WARN && free_now <= m->reserve_chunks))
		return -ENOBUFS;
	start = __atomic_load_n(&h->alloc_hint, __ATOMIC_RELAXED);
	for (i = 0; i < m->nchunks; i++) {
		uint32_t zero = 0;
		idx = (uint32_t)((start + i) % m->nchunks);
		if (__atomic_load_n(&owners[idx], __ATOMIC_RELAXED) != 0)
			continue;
		/* Acquire pairs with the consumer's release that freed it. */
		if (__atomic_compare_exchange_n(&owners[idx], &zero, me, 0, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED)) {
			found = 1;
			break;
		}
	}
	if (!found)
		return -ENOBUFS;
	__atomic_fetch_sub(&h->free_chunks, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&h->alloc_hint, (uint64_t)idx + 1, __ATOMIC_RELAXED);

	c = RT__CAST(struct rt__chunk *, m->base + m->chunks_off + (uint64_t)idx * m->chunk_size);
	/* As for slots: the chunk's last writer may be a thread of ours whose
	 * records were freed by the consumer, in another process. These
	 * acquire loads pair with that thread's release stores of committed
	 * (its last record) and next (the seal), so that its record stores
	 * happen before ours. Slow path only: once per chunk. */
	(void)__atomic_load_n(&c->committed, __ATOMIC_ACQUIRE);
	(void)__atomic_load_n(&c->next, __ATOMIC_ACQUIRE);
	__atomic_store_n(&c->committed, RT__COMMIT(0, RT__CHUNK_HDR), __ATOMIC_RELAXED);
	__atomic_store_n(&c->pending, RT__COMMIT(0, RT__CHUNK_HDR), __ATOMIC_RELAXED);
	__atomic_store_n(&c->next, 0u, __ATOMIC_RELAXED);
	c->slot = t->slot_idx;
	c->gen = s->gen;
	if (t->chunk)
		t->stream += RT__COMMIT_END(t->commit) - RT__CHUNK_HDR;
	__atomic_store_n(&c->base, t->stream, __ATOMIC_RELAXED);
	rt__count(&s->chunks_claimed, 1);
	/* Release: the consumer that follows the link sees the header above. */
	if (t->chunk) {
		rt__count(&s->written_sealed, RT__COMMIT_COUNT(t->commit));
		__atomic_store_n(&t->chunk->next, idx + 1, __ATOMIC_RELEASE);
	} else {
		__atomic_store_n(&s->first, idx + 1, __ATOMIC_RELEASE);
	}
	t->chunk = c;
	t->commit = RT__COMMIT(0, RT__CHUNK_HDR);
	t->wp = RT__CAST(char *, c) + RT__CHUNK_HDR;
	t->room = m->chunk_size - RT__CHUNK_HDR;
	return 0;
}

/*
 * Store the process service under a sequence lock: svc_gen is odd while the
 * name changes. @only_if_unset makes it a no-op once a name is set.
 */
static inline void rt__store_service(const char *name, size_t n, int only_if_unset)
{
	struct rt__proc *p = &rt__proc_v1;
	uint64_t w[RT_SERVICE_MAX / 8];
	int expect = 0;
	size_t i;

	memset(w, 0, sizeof(w));
	memcpy(w, name, n);
	/* The critical section is a handful of stores; it is only entered by
	 * rt_set_service() and once per process for the default name. */
	while (!__atomic_compare_exchange_n(&p->svc_lock, &expect, 1, 1, __ATOMIC_ACQUIRE,
					    __ATOMIC_RELAXED))
		expect = 0;
	if (!only_if_unset || __atomic_load_n(&p->svc_len, __ATOMIC_RELAXED) == 0) {
		__atomic_store_n(&p->svc_gen, p->svc_gen + 1, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_RELEASE);
		for (i = 0; i < RT_SERVICE_MAX / 8; i++)
			__atomic_store_n(&p->svc_words[i], w[i], __ATOMIC_RELAXED);
		__atomic_store_n(&p->svc_len, (uint32_t)n, __ATOMIC_RELAXED);
		__atomic_store_n(&p->svc_gen, p->svc_gen + 1, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&p->svc_lock, 0, __ATOMIC_RELEASE);
}

static inline void rt__default_service(void)
{
	extern char *program_invocation_short_name;
	const char *n = program_invocation_short_name;
	size_t len = n ? strlen(n) : 0;

	if (len > RT_SERVICE_MAX)
		len = RT_SERVICE_MAX;
	if (!n || !rt__service_name_ok(n, len)) {
		n = "unknown";
		len = 7;
	}
	rt__store_service(n, len, 1);
}

/* Refresh this thread's copy of the process service (a seqlock read). */
static inline void rt__sync_service(struct rt__tls *t)
{
	struct rt__proc *p = &rt__proc_v1;
	uint64_t w[RT_SERVICE_MAX / 8];
	uint32_t gen, len;
	size_t i;

	if (__atomic_load_n(&p->svc_len, __ATOMIC_ACQUIRE) == 0)
		rt__default_service();
	for (;;) {
		gen = __atomic_load_n(&p->svc_gen, __ATOMIC_ACQUIRE);
		if (gen & 1) {
			/* rt_set_service() is inside its few stores: keep the
			 * name we have rather than wait for it. */
			if (t->svc_len)
				return;
			continue;
		}
		for (i = 0; i < RT_SERVICE_MAX / 8; i++)
			w[i] = __atomic_load_n(&p->svc_words[i], __ATOMIC_RELAXED);
		len = __atomic_load_n(&p->svc_len, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&p->svc_gen, __ATOMIC_RELAXED) == gen)
			break;
	}
	memcpy(t->tmpl + RT__REC_HDR, w, RT_SERVICE_MAX);
	t->svc_len = (uint8_t)len;
	t->svc_gen = gen;
	rt__build_tmpl(t);
}

/* 1 if the ring path still names the file of @m: a state other than LIVE
 * there was written by a member, not by rt_ring_remove() (which unlinks
 * first), and moving would only leak our slot and its chunks. */
int rt__same_file_v1(const struct rt__map *m);
RT__COLD int rt__same_file_v1(const struct rt__map *m)
{
	const char *path = getenv(RT_RING_ENV);
	struct stat st;

	if (!path || !*path)
		path = RT_RING_DEFAULT_PATH;
	return stat(path, &st) == 0 && (uint64_t)st.st_dev == m->dev &&
	       (uint64_t)st.st_ino == m->ino;
}

/* Attach and claim a slot for this thread if it has none. */
static inline int rt__ensure_slot(struct rt__tls *t)
{
	struct rt__proc *p = &rt__proc_v1;
	struct rt__map *m = __atomic_load_n(&p->map, __ATOMIC_ACQUIRE);
	int err;

	/* Writing calls sync the service before sizing the record; only a
	 * thread that never wrote (a failure path) gets it here. */
	if (t->svc_len == 0)
		rt__sync_service(t);
	if (t->slot && t->map != m) /* the ring was replaced: start over */
		memset(t, 0, offsetof(struct rt__tls, svc_gen));
	if (!m) {
		err = rt__attach_v1();
		if (err)
			return err;
		m = __atomic_load_n(&p->map, __ATOMIC_ACQUIRE);
		if (!m)
			return -ENOENT; /* let go of again at once (below) */
	}
	if (__atomic_load_n(&m->lost, __ATOMIC_ACQUIRE) ||
	    (__atomic_load_n(&RT__CAST(struct rt__ring_hdr *, m->base)->state, __ATOMIC_ACQUIRE) !=
		     RT__RING_LIVE &&
	     !rt__same_file_v1(m))) {
		/* Removed, or cut short under us (the guard put zero pages
		 * there): attach to whatever ring now has the name. The old
		 * mapping stays: other threads may be inside a write to it. */
		struct rt__map *old = m;
		if (__atomic_compare_exchange_n(&p->map, &m, RT__CAST(struct rt__map *, NULL), 0,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			/* Its guard place is taken back when all 128 are
			 * in use, not now: another thread may have faulted
			 * there before the zero pages came and be on its
			 * way into the handler, which must still find the
			 * range (else it would hand the fault to the
			 * default action, for good). A ring replaced, not
			 * cut, may still be cut. */
			rt__guard_retire_v1(old->base);
		}
		__atomic_store_n(&p->next_try_ns, 0, __ATOMIC_RELAXED);
		memset(t, 0, offsetof(struct rt__tls, svc_gen));
		err = rt__attach_v1();
		if (err)
			return err;
		/* Not p->map again below: another thread that finds this
		 * ring lost too sets it to NULL at any moment. */
		m = __atomic_load_n(&p->map, __ATOMIC_ACQUIRE);
		if (!m)
			return -ENOENT; /* between rings: the caller is told */
	}
	if (!t->slot)
		return rt__claim_slot(t, m);
	return 0;
}

/*
 * Make room for a record of @need bytes: attach, claim a slot, or move to a
 * new chunk, as needed. On success t->room >= need.
 */
RT__COLD int rt__refill_v1(struct rt__tls *t, int severity, size_t need)
{
	int err = rt__ensure_slot(t);

	if (err)
		return err;
	if (need > t->map->chunk_size - RT__CHUNK_HDR)
		return -EMSGSIZE;
	if (t->room >= need)
		return 0;
	return rt__claim_chunk(t, severity);
}

/* Count a failed call and return its error. */
RT__COLD int rt__fail_v1(struct rt__tls *t, int severity, int err)
{
	struct rt__proc *p = &rt__proc_v1;
	struct rt__slot *s = t->slot;

	__atomic_fetch_add(&p->dropped, 1, __ATOMIC_RELAXED);
	if (!s && (err == -EINVAL || err == -EMSGSIZE) && rt__ensure_slot(t) == 0)
		s = t->slot; /* count it against this writer, not "no ring" */
	if (!s) {
		struct rt__map *m = __atomic_load_n(&p->map, __ATOMIC_ACQUIRE);
		if (m && err == -EUSERS) {
			struct rt__ring_hdr *h = RT__CAST(struct rt__ring_hdr *, m->base);
			__atomic_fetch_add(&h->dropped_noslot, 1, __ATOMIC_RELAXED);
			__atomic_store_n(&h->last_noslot_pid,
					 (uint64_t)__atomic_load_n(&p->pid, __ATOMIC_RELAXED),
					 __ATOMIC_RELAXED);
		} else {
			/* Moved into this process's first slot when it gets one. */
			__atomic_fetch_add(&p->noring, 1, __ATOMIC_RELAXED);
		}
		return err;
	}
	switch (err) {
	case -ENOBUFS:
		rt__count(&s->drop_full, 1);
		if (severity >= RT_WARN)
			rt__count(&s->drop_full_warn, 1);
		break;
	case -EMSGSIZE:
		rt__count(&s->drop_large, 1);
		break;
	case -EINVAL:
		rt__count(&s->drop_inval, 1);
		break;
	default:
		rt__count(&s->drop_full, 1);
		break;
	}
	return err;
}

int rt_set_service(const char *name);
RT__WEAK int rt_set_service(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (!name || !rt__service_name_ok(name, n))
		return -EINVAL;
	rt__store_service(name, n, 0);
	return 0;
}

int rt_attach(void);
RT__WEAK int rt_attach(void)
{
	return rt__attach_v1();
}

uint64_t rt_dropped(void);
RT__WEAK uint64_t rt_dropped(void)
{
	return __atomic_load_n(&rt__proc_v1.dropped, __ATOMIC_RELAXED);
}

const char *rt_strerror(int err);
RT__WEAK const char *rt_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -ENOBUFS:
		return "ring full: record dropped and counted";
	case -ENOENT:
		return "no ring: is ringtaild running? (record dropped and counted)";
	case -EMSGSIZE:
		return "record larger than a ring chunk";
	case -EINVAL:
		return "invalid argument";
	case -EUSERS:
		return "every writer slot of the ring is taken";
	case -ELOOP:
		return "ring path is a symbolic link: refused";
	case -ENODEV:
		return "ring path is not a regular file";
	case -EPERM:
		return "ring file is owned by another user and open to others: refused";
	case -EPROTO:
		return "not a ringtail ring (bad magic)";
	case -EPROTONOSUPPORT:
		return "ring has an unsupported version or flags";
	case -EBADMSG:
		return "ring file is truncated or its header is inconsistent";
	case -EACCES:
		return "no permission to open the ring";
	case -EBUSY:
		return "the ring already has a consumer";
	case -EEXIST:
		return "a ring already exists at that path";
	default:
		return err < 0 ? strerror(-err) : "unknown error";
	}
}

/* ------------------------------------------------------------------------
 * Record assembly
 * ------------------------------------------------------------------------ */

/* Bytes of the attribute block; sets *bad on an invalid attribute. */
static inline size_t rt__attr_bytes(const struct rt_opts *o, int *bad)
{
	size_t i, n = 0;

	for (i = 0; i < o->nattrs; i++) {
		const char *k = o->attrs[i].key, *v = o->attrs[i].value;
		size_t kl = k ? strlen(k) : 0, vl = v ? strlen(v) : 0;
		if (kl == 0 || kl > RT_ATTR_KEY_MAX || vl > RT_ATTR_VALUE_MAX)
			*bad = 1;
		n += 3 + kl + vl;
	}
	return n;
}

static inline char *rt__put_attrs(char *w, const struct rt_opts *o)
{
	size_t i;

	for (i = 0; i < o->nattrs; i++) {
		size_t kl = strlen(o->attrs[i].key);
		size_t vl = o->attrs[i].value ? strlen(o->attrs[i].value) : 0;
		*w++ = (char)kl;
		memcpy(w, o->attrs[i].key, kl);
		w += kl;
		*w++ = (char)(vl & 0xff);
		*w++ = (char)(vl >> 8);
		if (vl)
			memcpy(w, o->attrs[i].value, vl);
		w += vl;
	}
	return w;
}

/*
 * Write the record header and the parts before the message at t->wp; the
 * caller fills in len and msg_len. Needs RT__TMPL bytes of room even for a
 * short record (the template is copied whole). Returns where the message goes.
 */
static inline char *rt__put_head(struct rt__tls *t, int severity, const struct rt_opts *o,
				 const char *svc, size_t svc_len, size_t attr_len)
{
	struct rt__rec *r = RT__CAST(struct rt__rec *, t->wp);
	char *w = t->wp + RT__REC_HDR;
	uint8_t flags;

	if (!o || (!o->service && !o->trace_id && !o->span_id && !attr_len)) {
		memcpy(t->wp, t->tmpl, RT__TMPL);
		r->severity = (uint8_t)severity;
		r->time = rt__now(t);
		return w + t->svc_len;
	}
	flags = t->use_tsc ? (uint8_t)RT__RF_TSC : (uint8_t)0;
	r->time = rt__now(t);
	r->severity = (uint8_t)severity;
	r->svc_len = (uint8_t)svc_len;
	r->zero = 0;
	r->pid = t->pid;
	r->tid = t->tid;
	r->attr_len = (uint32_t)attr_len;
	if (o->trace_id) {
		memcpy(w, o->trace_id, 16);
		w += 16;
		flags |= RT__RF_TRACE;
	}
	if (o->span_id) {
		memcpy(w, o->span_id, 8);
		w += 8;
		flags |= RT__RF_SPAN;
	}
	r->flags = flags;
	memcpy(w, svc, svc_len);
	w += svc_len;
	if (attr_len)
		w = rt__put_attrs(w, o);
	return w;
}

/* Announce the record about to be written (so that a writer that dies
 * inside the write is counted), before any byte of it is stored. */
static inline uint64_t rt__begin(struct rt__tls *t, size_t stride)
{
	uint64_t next = t->commit + (1ull << 32) + stride;

	__atomic_store_n(&t->chunk->pending, next, __ATOMIC_RELAXED);
	/* Keep the compiler from sinking the pending store below the record
	 * stores; a killed process's completed stores all reach memory. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	return next;
}

/* Publish the record: the release store pairs with the consumer's acquire
 * load of committed, so it sees every byte of the record. */
static inline void rt__publish(struct rt__tls *t, uint64_t next, size_t stride)
{
	__atomic_store_n(&t->chunk->committed, next, __ATOMIC_RELEASE);
	t->commit = next;
	t->wp += stride;
	t->room -= (uint32_t)stride;
}

/* Check the options; sets the service and attribute size to use. */
static inline int rt__opts(struct rt__tls *t, const struct rt_opts *o, const char **svc,
			   size_t *svc_len, size_t *attr_len, size_t *head)
{
	int bad = 0;

	*svc = t->tmpl + RT__REC_HDR;
	*svc_len = t->svc_len;
	*attr_len = 0;
	if (o) {
		if (o->service) {
			*svc = o->service;
			*svc_len = strlen(o->service);
			if (!rt__service_name_ok(*svc, *svc_len))
				bad = 1;
		}
		if (o->nattrs) {
			if (!o->attrs)
				bad = 1;
			else
				*attr_len = rt__attr_bytes(o, &bad);
		}
	}
	*head = RT__REC_HDR + *svc_len + *attr_len;
	if (o)
		*head += (o->trace_id ? 16u : 0u) + (o->span_id ? 8u : 0u);
	return bad ? -EINVAL : 0;
}

static inline size_t rt__need(size_t stride)
{
	return stride < RT__TMPL ? RT__TMPL : stride;
}

/* ------------------------------------------------------------------------
 * A formatter for the common printf conversions: d i u o x X c s p %, with
 * flags - 0 + space, width, precision and the length modifiers hh h l ll z
 * j t. Anything else (floating point, %n, %m, '#', positional arguments)
 * returns -1 and the caller uses vsnprintf. Like vsnprintf it returns the
 * full length and writes what fits in @cap; unlike it, it writes no NUL.
 * ------------------------------------------------------------------------ */

struct rt__out {
	char *buf;
	size_t cap;
	size_t n;
};

static inline void rt__out_mem(struct rt__out *o, const char *s, size_t len)
{
	size_t n = o->n < o->cap ? (o->cap - o->n < len ? o->cap - o->n : len) : 0, i;

	if (n <= 16) {
		/* Short pieces (numbers, small strings): no call to memcpy. */
		for (i = 0; i < n; i++)
			o->buf[o->n + i] = s[i];
	} else {
		memcpy(o->buf + o->n, s, n);
	}
	o->n += len;
}

static inline void rt__out_pad(struct rt__out *o, char c, size_t len)
{
	if (o->n < o->cap)
		memset(o->buf + o->n, c, o->cap - o->n < len ? o->cap - o->n : len);
	o->n += len;
}

#define RT__F_LEFT 1
#define RT__F_ZERO 2
#define RT__F_PLUS 4
#define RT__F_SPACE 8

static inline void rt__out_int(struct rt__out *o, uint64_t v, int neg, unsigned base, int upper,
			       int flags, int width, int prec)
{
	static const char digits[] = "0123456789abcdef0123456789ABCDEF";
	char tmp[24];
	int nd = 0, len, zeros = 0;
	char sign = neg ? '-' : (flags & RT__F_PLUS) ? '+' : (flags & RT__F_SPACE) ? ' ' : 0;

	if (base == 10) {
		static const char d2[] = "00010203040506070809101112131415161718192021222324"
					 "25262728293031323334353637383940414243444546474849"
					 "50515253545556575859606162636465666768697071727374"
					 "75767778798081828384858687888990919293949596979899";
		char *d;
		int inplace = 0;
		if (RT__LIKELY(!sign && width == 0 && prec < 0 && o->n < o->cap &&
			       o->cap - o->n >= 20)) {
			/* The usual %d: digits straight into the output. */
			uint64_t x = v;
			nd = 1;
			while (x >= 10) {
				x /= 10;
				nd++;
			}
			d = o->buf + o->n + nd;
			o->n += (size_t)nd;
			inplace = 1;
		} else {
			d = tmp + sizeof(tmp);
		}
		/* Two digits per division, from the end. */
		while (v >= 100) {
			unsigned r = (unsigned)(v % 100);
			v /= 100;
			d -= 2;
			memcpy(d, d2 + 2 * r, 2);
		}
		if (v >= 10) {
			d -= 2;
			memcpy(d, d2 + 2 * v, 2);
		} else if (v || prec != 0) {
			*--d = (char)('0' + v);
		}
		if (inplace)
			return;
		nd = (int)(tmp + sizeof(tmp) - d);
	} else {
		unsigned shift = base == 16 ? 4 : 3;
		do {
			if (v == 0 && nd == 0 && prec == 0)
				break;
			tmp[sizeof(tmp) - 1 - nd++] = digits[(v & (base - 1)) + (upper ? 16 : 0)];
			v >>= shift;
		} while (v);
	}
	if (RT__LIKELY(!sign && width <= nd && prec <= nd)) {
		rt__out_mem(o, tmp + sizeof(tmp) - nd, (size_t)nd); /* the usual %d */
		return;
	}
	if (prec > nd)
		zeros = prec - nd;
	len = (sign ? 1 : 0) + zeros + nd;
	if (width > len && !(flags & RT__F_LEFT)) {
		if ((flags & RT__F_ZERO) && prec < 0)
			zeros += width - len;
		else
			rt__out_pad(o, ' ', (size_t)(width - len));
	}
	if (sign)
		rt__out_mem(o, &sign, 1);
	if (zeros)
		rt__out_pad(o, '0', (size_t)zeros);
	rt__out_mem(o, tmp + sizeof(tmp) - nd, (size_t)nd);
	if (width > len && (flags & RT__F_LEFT))
		rt__out_pad(o, ' ', (size_t)(width - len));
}

static inline long rt__fmt(char *buf, size_t cap, const char *fmt, va_list ap)
{
	struct rt__out o = {buf, cap, 0};
	const char *p = fmt;

	for (;;) {
		int flags = 0, width = 0, prec = -1, lng = 0;
		size_t lit;
		uint64_t u;
		int64_t s;

		/* Literal text (glibc's strcspn with one reject byte is its
		 * vectorised strchrnul). */
		lit = strcspn(p, "%");
		if (lit) {
			if (o.n < o.cap)
				memcpy(o.buf + o.n, p, o.cap - o.n < lit ? o.cap - o.n : lit);
			o.n += lit;
			p += lit;
		}
		if (!*p)
			return (long)o.n;
		p++;
		for (;; p++) {
			if (*p == '-')
				flags |= RT__F_LEFT;
			else if (*p == '0')
				flags |= RT__F_ZERO;
			else if (*p == '+')
				flags |= RT__F_PLUS;
			else if (*p == ' ')
				flags |= RT__F_SPACE;
			else
				break;
		}
		if (*p == '*') {
			width = va_arg(ap, int);
			if (width < 0) {
				flags |= RT__F_LEFT;
				width = width == INT32_MIN ? 0 : -width;
			}
			p++;
		} else {
			while (*p >= '0' && *p <= '9') {
				width = width * 10 + (*p++ - '0');
				if (width > 4096)
					return -1;
			}
			if (*p == '$')
				return -1; /* positional */
		}
		if (width > 4096)
			return -1;
		if (*p == '.') {
			p++;
			prec = 0;
			if (*p == '*') {
				prec = va_arg(ap, int);
				if (prec < 0)
					prec = -1;
				p++;
			} else {
				while (*p >= '0' && *p <= '9') {
					prec = prec * 10 + (*p++ - '0');
					if (prec > 65536)
						return -1;
				}
			}
		}
		switch (*p) {
		case 'h':
			lng = (p[1] == 'h') ? -2 : -1;
			p += (p[1] == 'h') ? 2 : 1;
			break;
		case 'l':
			lng = (p[1] == 'l') ? 2 : 1;
			p += (p[1] == 'l') ? 2 : 1;
			break;
		case 'z':
		case 'j':
		case 't':
			lng = 3; /* size_t, intmax_t, ptrdiff_t: 64 bits on every LP64 target */
			p++;
			break;
		default:
			break;
		}
		if (lng == 3 && sizeof(size_t) != 8)
			return -1;
		switch (*p++) {
		case 'd':
		case 'i':
			if (lng >= 2)
				s = va_arg(ap, long long);
			else if (lng == 1)
				s = va_arg(ap, long);
			else
				s = va_arg(ap, int);
			if (lng == -1)
				s = (short)s;
			else if (lng == -2)
				s = (signed char)s;
			u = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
			rt__out_int(&o, u, s < 0, 10, 0, flags, width, prec);
			break;
		case 'u':
		case 'x':
		case 'X':
		case 'o':
			if (lng >= 2)
				u = va_arg(ap, unsigned long long);
			else if (lng == 1)
				u = va_arg(ap, unsigned long);
			else
				u = va_arg(ap, unsigned int);
			if (lng == -1)
				u = (unsigned short)u;
			else if (lng == -2)
				u = (unsigned char)u;
			flags &= ~(RT__F_PLUS | RT__F_SPACE);
			rt__out_int(&o, u, 0, p[-1] == 'u' ? 10u : p[-1] == 'o' ? 8u : 16u,
				    p[-1] == 'X', flags, width, prec);
			break;
		case 'c': {
			char ch = (char)va_arg(ap, int);
			if (lng || (flags & ~RT__F_LEFT) || prec >= 0)
				return -1;
			if (width > 1 && !(flags & RT__F_LEFT))
				rt__out_pad(&o, ' ', (size_t)(width - 1));
			rt__out_mem(&o, &ch, 1);
			if (width > 1 && (flags & RT__F_LEFT))
				rt__out_pad(&o, ' ', (size_t)(width - 1));
			break;
		}
		case 's': {
			const char *str = va_arg(ap, const char *);
			size_t len;
			if (lng || (flags & ~RT__F_LEFT))
				return -1;
			if (!str) {
				if (prec >= 0)
					return -1;
				str = "(null)";
			}
			if (prec >= 0) {
				const void *z = memchr(str, '\0', (size_t)prec);
				len = z ? (size_t)(RT__CAST(const char *, z) - str) : (size_t)prec;
			} else {
				len = strlen(str);
			}
			if ((size_t)width > len && !(flags & RT__F_LEFT))
				rt__out_pad(&o, ' ', (size_t)width - len);
			rt__out_mem(&o, str, len);
			if ((size_t)width > len && (flags & RT__F_LEFT))
				rt__out_pad(&o, ' ', (size_t)width - len);
			break;
		}
		case 'p': {
			const void *ptr = va_arg(ap, const void *);
			if (lng || flags || width || prec >= 0)
				return -1;
			if (!ptr) {
				rt__out_mem(&o, "(nil)", 5);
			} else {
				rt__out_mem(&o, "0x", 2);
				rt__out_int(&o, (uint64_t)(uintptr_t)ptr, 0, 16, 0, 0, 0, -1);
			}
			break;
		}
		case '%':
			if (lng || flags || width || prec >= 0)
				return -1;
			rt__out_mem(&o, "%", 1);
			break;
		default:
			return -1;
		}
	}
}

/* ------------------------------------------------------------------------
 * The calls
 * ------------------------------------------------------------------------ */

int rt__writex_v1(int severity, const struct rt_opts *o, const char *msg, size_t len);
int rt__vprintfx_v1(int severity, const struct rt_opts *o, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* Everything but the plain record with room in the chunk: options, the
 * first call of a thread, a full chunk, errors. */
RT__WEAK __attribute__((noinline)) int rt__writex_v1(int severity, const struct rt_opts *o,
						     const char *msg, size_t len)
{
	struct rt__tls *t = &rt__tls_v1;
	const char *svc;
	size_t svc_len, attr_len, head, stride;
	uint64_t next;
	char *w;
	int err;

	if (severity < RT_SEVERITY_MIN || severity > RT_SEVERITY_MAX || (!msg && len) ||
	    len > UINT32_MAX)
		return rt__fail_v1(t, severity, -EINVAL);
	if (t->svc_gen != __atomic_load_n(&rt__proc_v1.svc_gen, __ATOMIC_RELAXED) ||
	    t->svc_len == 0)
		rt__sync_service(t);
	if (rt__opts(t, o, &svc, &svc_len, &attr_len, &head))
		return rt__fail_v1(t, severity, -EINVAL);
	stride = RT__ALIGN8(head + len);
	if (rt__need(stride) > t->room) {
		err = rt__refill_v1(t, severity, rt__need(stride));
		if (err)
			return rt__fail_v1(t, severity, err);
	}
	next = rt__begin(t, stride);
	w = rt__put_head(t, severity, o, svc, svc_len, attr_len);
	RT__CAST(struct rt__rec *, t->wp)->len = (uint32_t)(head + len);
	RT__CAST(struct rt__rec *, t->wp)->msg_len = (uint32_t)len;
	RT__TEST_MIDWRITE();
	if (len)
		memcpy(w, msg, len);
	rt__publish(t, next, stride);
	return 0;
}

RT__WEAK __attribute__((noinline)) int rt__vprintfx_v1(int severity, const struct rt_opts *o,
						       const char *fmt, va_list ap)
{
	struct rt__tls *t = &rt__tls_v1;
	const char *svc;
	size_t svc_len, attr_len, head, need, stride;
	va_list aq;
	int tries, err;

	if (severity < RT_SEVERITY_MIN || severity > RT_SEVERITY_MAX || !fmt)
		return rt__fail_v1(t, severity, -EINVAL);
	if (t->svc_gen != __atomic_load_n(&rt__proc_v1.svc_gen, __ATOMIC_RELAXED) ||
	    t->svc_len == 0)
		rt__sync_service(t);
	if (rt__opts(t, o, &svc, &svc_len, &attr_len, &head))
		return rt__fail_v1(t, severity, -EINVAL);

	/* Format straight into the ring; when the message does not fit in
	 * what is left of the chunk, move to a new chunk and format again. */
	need = rt__need(RT__ALIGN8(head + 1));
	for (tries = 0; tries < 2; tries++) {
		size_t space, cap;
		long n;
		int fits;
		char *w;

		if (need > t->room) {
			err = rt__refill_v1(t, severity, need);
			if (err)
				return rt__fail_v1(t, severity, err);
		}
		/* Mark all the free space pending (room is a multiple of 8):
		 * a writer killed while formatting counts as one lost record. */
		space = t->room;
		rt__begin(t, space);
		w = rt__put_head(t, severity, o, svc, svc_len, attr_len);
		RT__TEST_MIDWRITE();
		cap = space - head;
		va_copy(aq, ap);
		n = rt__fmt(w, cap, fmt, aq);
		va_end(aq);
		fits = n >= 0 && (size_t)n <= cap;
		if (n < 0) {
			va_copy(aq, ap);
			n = vsnprintf(w, cap, fmt, aq);
			va_end(aq);
			fits = n >= 0 && (size_t)n < cap;
		}
		if (fits) {
			uint64_t next;
			stride = RT__ALIGN8(head + (size_t)n);
			next = rt__begin(t, stride);
			RT__CAST(struct rt__rec *, t->wp)->len = (uint32_t)(head + (size_t)n);
			RT__CAST(struct rt__rec *, t->wp)->msg_len = (uint32_t)n;
			rt__publish(t, next, stride);
			return 0;
		}
		__atomic_store_n(&t->chunk->pending, t->commit, __ATOMIC_RELAXED);
		if (n < 0)
			return rt__fail_v1(t, severity, -EINVAL);
		/* Room for the whole record and vsnprintf's terminator. */
		need = rt__need(RT__ALIGN8(head + (size_t)n + 1));
	}
	return rt__fail_v1(t, severity, -EMSGSIZE);
}

static inline int rt_writex(int severity, const struct rt_opts *o, const char *msg, size_t len)
{
	struct rt__tls *t = &rt__tls_v1;

	if (RT__LIKELY(!o && msg)) {
		/* The plain record: one template copy, four fields, the
		 * message, one release store. */
		size_t total = RT__REC_HDR + t->svc_len + len;
		size_t stride = RT__ALIGN8(total);
		if (RT__LIKELY(rt__need(stride) <= t->room &&
			       (unsigned)(severity - RT_SEVERITY_MIN) <
				       (unsigned)(RT_SEVERITY_MAX - RT_SEVERITY_MIN + 1) &&
			       t->svc_gen == __atomic_load_n(&rt__proc_v1.svc_gen,
							     __ATOMIC_RELAXED))) {
			uint64_t next = rt__begin(t, stride);
			char *w = t->wp;
			struct rt__rec *r = RT__CAST(struct rt__rec *, w);
			memcpy(w, t->tmpl, RT__TMPL);
			r->len = (uint32_t)total;
			r->severity = (uint8_t)severity;
			r->time = rt__now(t);
			r->msg_len = (uint32_t)len;
			RT__TEST_MIDWRITE();
			memcpy(w + RT__REC_HDR + t->svc_len, msg, len);
			rt__publish(t, next, stride);
			return 0;
		}
	}
	return rt__writex_v1(severity, o, msg, len);
}

static inline int rt_write(int severity, const char *msg, size_t len)
{
	return rt_writex(severity, NULL, msg, len);
}

static inline int rt_vprintfx(int severity, const struct rt_opts *o, const char *fmt, va_list ap)
{
	return rt__vprintfx_v1(severity, o, fmt, ap);
}

static inline int rt_printfx(int severity, const struct rt_opts *o, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = rt__vprintfx_v1(severity, o, fmt, ap);
	va_end(ap);
	return ret;
}

static inline int rt_printf(int severity, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = rt__vprintfx_v1(severity, NULL, fmt, ap);
	va_end(ap);
	return ret;
}

#ifdef __cplusplus
}
#endif

#endif /* RINGTAIL_H */
