/* SPDX-License-Identifier: MIT */
/*
 * wireio.h - frames of the forwarding protocol (rtwire.h) read from and
 * written to a socket within deadlines, so that no peer can hold a
 * connection (or the thread serving it) by sending, or reading, a byte now
 * and then. Used by both ends (forward.c, receive.c).
 */
#ifndef RT_WIREIO_H
#define RT_WIREIO_H

#include <stdint.h>

#include "rtwire.h"

/* How slow a frame may be, once it has begun: whole within @grace_ns plus
 * its length at @min_rate bytes per second. */
struct rt_wire_limits {
	uint64_t grace_ns;
	uint64_t min_rate;
};

/* A frame as received. */
struct rt_wire_in {
	struct rt_wire_hdr h;
	uint8_t raw[RT_WIRE_HDR];  /* the header as it came */
	struct rt_buf buf;         /* the payload (h.len bytes), then the tag if any */
	const uint8_t *tag;        /* into buf, or NULL */
	const char *why;           /* why it was refused, for the log and the ERROR */
};

uint64_t rt_mono_ns(void);

/*
 * rt_wire_recv - read one frame of at most @max payload bytes from socket
 * @fd (blocking or not: every call here is MSG_DONTWAIT). Its first byte must come before
 * @first_deadline (rt_mono_ns() time), the rest within @lim from that byte.
 * With @stop_fd >= 0, that fd becoming readable ends the wait for the first
 * byte (once a frame has begun, it is read whole or fails by its limits).
 * A header of another protocol version with a payload of at most
 * RT_WIRE_MAX_HANDSHAKE bytes is read whole, so that the caller can tell
 * what the peer is (in->h says which version).
 * @return 0 (the tag and sum are the caller's to check: rt_wire_verify());
 * -ETIMEDOUT (nothing began in time); -ETIME (a frame begun came too
 * slowly); -ECONNRESET (closed before its first byte); -ENODATA (closed in
 * the middle of it); -EBADMSG, -EMSGSIZE, -EPROTONOSUPPORT (the header);
 * -ECANCELED (@stop_fd); -ENOMEM; another -errno. in->why is set for every
 * error a peer caused but -ECONNRESET and -ETIMEDOUT.
 */
int rt_wire_recv(int fd, int stop_fd, uint32_t max, uint64_t first_deadline,
		 const struct rt_wire_limits *lim, struct rt_wire_in *in);

/*
 * rt_wire_send - write @n bytes to socket @fd within @lim (the peer must
 * read them at the rate).
 * @return 0, -ETIME (too slow), or -errno.
 */
int rt_wire_send(int fd, const void *p, size_t n, const struct rt_wire_limits *lim);

void rt_wire_in_free(struct rt_wire_in *in);

#endif
