/* SPDX-License-Identifier: MIT */
/*
 * rtcentral.h - forwarding: the central server (ringtaild --listen) and the
 * sender (ringtaild --upstream). The protocol is in rtwire.h and
 * docs/protocol.md.
 */
#ifndef RTCENTRAL_H
#define RTCENTRAL_H

#include <signal.h>
#include <stdint.h>

#include "rtspool.h"

/* ------------------------------------------------------------------------
 * The central server
 * ------------------------------------------------------------------------ */

struct rt_central_config {
	const char *listen;       /* ADDR:PORT (port 0: any free one) */
	const char *port_file;    /* NULL, or where to write the port once listening */
	const char *dir;          /* the central spool (CENTRAL/ in rtspool.h) */
	const char *key_file;     /* the shared key, for hosts without one of their own */
	const char *host_keys;    /* NULL, or a directory of keys named by host */
	/* Neither key: no authentication, loopback connections only. */
	uint64_t segment_bytes;
	uint64_t segment_age_ns;
	uint64_t retain_bytes;    /* per sending host */
	uint64_t retain_age_ns;
	int fsync;                /* enum rt_fsync_policy */
	uint32_t max_batch;       /* largest BATCH payload taken */
	unsigned max_conns;       /* authenticated connections (256) */
	unsigned max_pending;     /* connections in their handshake (0: max_conns / 4) */
	unsigned max_pending_addr; /* ... from one peer address (8) */
	uint64_t handshake_ns;    /* the whole handshake, from accept (10 s); also the
				     grace of a frame begun */
	uint64_t idle_ns;         /* silence allowed between frames (60 s) */
	uint64_t min_rate;        /* bytes/s a frame begun must keep up (16 KiB/s) */
	rt_log_fn log;
	void *log_arg;
};

struct rt_central;

void rt_central_defaults(struct rt_central_config *c);

/*
 * rt_central_start - take the central spool (one server per directory),
 * load the keys, listen, and write the port file. @return 0; -EBUSY,
 * -ENOTDIR (a local spool), -EBADMSG, or the errno of what failed (the log
 * callback said why).
 */
int rt_central_start(const struct rt_central_config *c, struct rt_central **out);

/* rt_central_run - accept and serve connections until *@stop: handshakes in
 * this thread (no peer has a thread of its own before it authenticates),
 * each authenticated connection in a thread of its own. */
int rt_central_run(struct rt_central *c, volatile sig_atomic_t *stop);

/* rt_central_port - the port listened on. */
int rt_central_port(const struct rt_central *c);

/* rt_central_free - close every connection (after the batch it is storing)
 * and stop. Accepts NULL. */
void rt_central_free(struct rt_central *c);

/* ------------------------------------------------------------------------
 * The sender
 *
 * SPOOL/forward, 4096 bytes written through mmap, says how forwarding goes
 * (`ringtail stat` shows it); the same sequence lock as SPOOL/state.
 * ------------------------------------------------------------------------ */

#define RT_FWD_MAGIC "RTFWDST"

struct rt_forward_state {
	char magic[8];
	uint32_t version;
	uint32_t connected;     /* 1 while a connection is up */
	uint64_t gen;
	uint64_t acked_seq;     /* the upstream holds every record up to this */
	uint64_t lag_bytes;     /* segment bytes not yet acknowledged (about) */
	uint64_t last_contact_ns;
	uint64_t last_error_ns;
	uint64_t sent_records;  /* acknowledged by this run */
	char upstream[256];
	char last_error[256];
	uint8_t pad[4096 - 320 - 256];
};

/* rt_forward_state_read - a consistent copy. @return 0 or -EAGAIN. */
int rt_forward_state_read(const struct rt_forward_state *st, struct rt_forward_state *out);

struct rt_forward_config {
	const char *upstream;     /* HOST:PORT */
	const char *key_file;     /* NULL: no key */
	uint32_t max_batch;       /* bytes of blocks per BATCH */
	rt_log_fn log;
	void *log_arg;
};

struct rt_forwarder;

/*
 * rt_forward_start - forward spool @sp (opened by the engine, which keeps
 * writing it) in a thread of its own; it stores what the upstream has
 * acknowledged in *@acked_seq (for retention). @return 0, or -errno when
 * the key cannot be used.
 */
int rt_forward_start(const struct rt_forward_config *c, struct rt_spool *sp, uint64_t *acked_seq,
		     struct rt_forwarder **out);

/* rt_forward_stop - stop the thread (a batch in flight is abandoned: the
 * upstream keeps it or not, and resending is safe). Accepts NULL. */
void rt_forward_stop(struct rt_forwarder *f);

#endif /* RTCENTRAL_H */
