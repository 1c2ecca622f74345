/* SPDX-License-Identifier: MIT */
/*
 * helpers.h - small things the test programs share. A test exits 0 on
 * success, 1 on failure (after saying what failed), 77 to be skipped.
 */
#ifndef RT_TEST_HELPERS_H
#define RT_TEST_HELPERS_H

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rtshm.h"

#define T_SKIP 77

/* T_TSAN: built with ThreadSanitizer, which runs code 5-15x slower. Tests
 * that need a volume of traffic to reach a state scale it by T_SLOW (1, or
 * 10 under TSan); what they assert stays the same. */
#if defined(__SANITIZE_THREAD__)
#define T_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#endif
#endif
#ifndef T_TSAN
#define T_TSAN 0
#endif
#define T_SLOW (T_TSAN ? 10 : 1)

#define CHECK(cond, ...)                                                                  \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                     \
			fputc('\n', stderr);                                              \
			exit(1);                                                          \
		}                                                                         \
	} while (0)

#define CHECK_EQ(a, b)                                                                    \
	CHECK((long long)(a) == (long long)(b), "%s = %lld, %s = %lld", #a, (long long)(a), \
	      #b, (long long)(b))

static inline uint64_t t_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A ring path private to this test process. */
static inline const char *t_ring_path(const char *name)
{
	static char buf[256];
	snprintf(buf, sizeof(buf), "/dev/shm/rt-test-%s-%d", name, (int)getpid());
	return buf;
}

/* Give the CPU away briefly while waiting for a condition (never used as
 * the synchronisation itself: every wait re-checks a condition). */
static inline void t_pause(void)
{
	struct timespec d = {0, 200 * 1000};
	nanosleep(&d, NULL);
}

/* Wait for a child and return its exit status, or 128+signal. */
static inline int t_wait(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A record copied out of the ring, for checking after the poll. */
struct t_rec {
	uint64_t time_ns;
	uint32_t pid, tid;
	uint8_t severity, flags;
	uint8_t trace[16], span[8];
	int has_trace, has_span;
	char service[RT_SERVICE_MAX + 1];
	char *msg;
	size_t msg_len;
	uint8_t *attrs;
	size_t attrs_len;
	uint32_t slot;
};

struct t_recs {
	struct t_rec *v;
	size_t n, cap;
};

static inline int t_collect(void *arg, const struct rt_rec *r, const struct rt_origin *o)
{
	struct t_recs *rs = arg;
	struct t_rec *t;

	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? rs->cap * 2 : 256;
		rs->v = realloc(rs->v, rs->cap * sizeof(*rs->v));
		CHECK(rs->v != NULL, "out of memory");
	}
	t = &rs->v[rs->n++];
	memset(t, 0, sizeof(*t));
	t->time_ns = r->time_ns;
	t->pid = r->pid;
	t->tid = r->tid;
	t->severity = r->severity;
	t->flags = r->flags;
	if (r->trace_id) {
		memcpy(t->trace, r->trace_id, 16);
		t->has_trace = 1;
	}
	if (r->span_id) {
		memcpy(t->span, r->span_id, 8);
		t->has_span = 1;
	}
	memcpy(t->service, r->service, r->service_len);
	t->msg = malloc(r->msg_len + 1);
	memcpy(t->msg, r->msg, r->msg_len);
	t->msg[r->msg_len] = '\0';
	t->msg_len = r->msg_len;
	if (r->attrs_len) {
		t->attrs = malloc(r->attrs_len);
		memcpy(t->attrs, r->attrs, r->attrs_len);
		t->attrs_len = r->attrs_len;
	}
	t->slot = o->slot;
	return 0;
}

static inline void t_recs_free(struct t_recs *rs)
{
	size_t i;
	for (i = 0; i < rs->n; i++) {
		free(rs->v[i].msg);
		free(rs->v[i].attrs);
	}
	free(rs->v);
	memset(rs, 0, sizeof(*rs));
}

/* Poll, mark and release until a poll brings nothing new. */
static inline size_t t_drain(struct rt_consumer *c, rt_consume_fn fn, void *arg)
{
	size_t total = 0;
	int got;

	do {
		int64_t m;
		got = rt_consumer_poll(c, fn, arg, 1u << 16);
		CHECK(got >= 0, "poll failed: %d", got);
		total += (size_t)got;
		m = rt_consumer_mark(c, NULL, NULL);
		CHECK(m > 0, "mark failed: %lld", (long long)m);
		CHECK(rt_consumer_release(c, m) == 0, "release failed");
	} while (got > 0);
	return total;
}

#endif
