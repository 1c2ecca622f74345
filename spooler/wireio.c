/* SPDX-License-Identifier: MIT */
/* wireio.c - frames read and written within deadlines (wireio.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "wireio.h"

uint64_t rt_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t allowance(const struct rt_wire_limits *lim, uint64_t bytes)
{
	uint64_t t = lim->grace_ns;
	if (lim->min_rate)
		t += bytes * 1000000000ull / lim->min_rate;
	return t;
}

/* Wait until @fd has @events or @deadline passes. @return 1, 0 (timed out),
 * -ECANCELED (@stop_fd readable), -errno. */
static int wait_fd(int fd, short events, int stop_fd, uint64_t deadline)
{
	for (;;) {
		struct pollfd p[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
		uint64_t now = rt_mono_ns();
		uint64_t left_ms;
		int r;

		if (now >= deadline)
			return 0;
		left_ms = (deadline - now + 999999) / 1000000;
		r = poll(p, stop_fd >= 0 ? 2 : 1, left_ms > 1000 ? 1000 : (int)left_ms);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0 && stop_fd >= 0 && p[1].revents)
			return -ECANCELED;
		if (r > 0 && p[0].revents)
			return 1;
	}
}

/* Read exactly @n bytes by @deadline. @return 0, -ETIME, -ENODATA (closed;
 * *@got says how much came), -errno. */
static int read_by(int fd, uint8_t *p, size_t n, uint64_t deadline, size_t *got)
{
	*got = 0;
	while (*got < n) {
		ssize_t r = recv(fd, p + *got, n - *got, MSG_DONTWAIT);
		if (r > 0) {
			*got += (size_t)r;
			continue;
		}
		if (r == 0)
			return -ENODATA;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		r = wait_fd(fd, POLLIN, -1, deadline);
		if (r == 0)
			return -ETIME;
		if (r < 0)
			return (int)r;
	}
	return 0;
}

int rt_wire_recv(int fd, int stop_fd, uint32_t max, uint64_t first_deadline,
		 const struct rt_wire_limits *lim, struct rt_wire_in *in)
{
	uint64_t begun, deadline;
	size_t got, tag_len, n;
	int err;

	in->why = NULL;
	in->tag = NULL;
	in->buf.len = 0;
	/* Nothing yet: wait for the first byte as long as the caller allows. */
	err = wait_fd(fd, POLLIN, stop_fd, first_deadline);
	if (err == 0)
		return -ETIMEDOUT;
	if (err < 0)
		return err;
	begun = rt_mono_ns();
	err = read_by(fd, in->raw, RT_WIRE_HDR, begun + lim->grace_ns, &got);
	if (err == -ENODATA && got == 0)
		return -ECONNRESET;
	if (err == -ENODATA) {
		in->why = "truncated message (the connection closed in the middle of it)";
		return err;
	}
	if (err == -ETIME) {
		in->why = "too slow: a message begun was not whole in time";
		return err;
	}
	if (err)
		return err;
	err = rt_wire_hdr_get(in->raw, max, &in->h);
	if (err == -EPROTONOSUPPORT && in->h.len <= RT_WIRE_MAX_HANDSHAKE) {
		/* Another version: read what it says (version 1's frames are
		 * ours without tags), so the caller can answer it in kind. */
		if (rt_buf_reserve(&in->buf, in->h.len) == 0 &&
		    read_by(fd, in->buf.p, in->h.len, begun + lim->grace_ns, &got) == 0)
			in->buf.len = in->h.len;
	}
	if (err) {
		in->why = err == -EPROTONOSUPPORT ? "protocol version not supported"
			  : err == -EMSGSIZE      ? "message too large"
						  : "not a ringtail message";
		return err;
	}
	tag_len = in->h.flags & RT_WF_TAG ? RT_WIRE_TAG : 0;
	n = (size_t)in->h.len + tag_len;
	if (rt_buf_reserve(&in->buf, n))
		return -ENOMEM;
	deadline = begun + allowance(lim, RT_WIRE_HDR + n);
	err = read_by(fd, in->buf.p, n, deadline, &got);
	if (err == -ENODATA) {
		in->why = "truncated message (the connection closed in the middle of it)";
		return err;
	}
	if (err == -ETIME) {
		in->why = "too slow: a message begun was not whole in time";
		return err;
	}
	if (err)
		return err;
	in->buf.len = in->h.len;
	in->tag = tag_len ? in->buf.p + in->h.len : NULL;
	return 0;
}

int rt_wire_send(int fd, const void *p, size_t n, const struct rt_wire_limits *lim)
{
	const uint8_t *b = p;
	uint64_t deadline = rt_mono_ns() + allowance(lim, n);

	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		int r;
		if (w > 0) {
			b += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		r = wait_fd(fd, POLLOUT, -1, deadline);
		if (r == 0)
			return -ETIME;
		if (r < 0)
			return r;
	}
	return 0;
}

void rt_wire_in_free(struct rt_wire_in *in)
{
	rt_buf_free(&in->buf);
}
