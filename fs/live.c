/* SPDX-License-Identifier: MIT */
/*
 * live.c - the state poller, /tail readers, poll(), the scrubber.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "live.h"
#include "read.h"

struct rtfs_tail {
	struct rtfs_node *node;
	struct rtfs_view *view;
	uint64_t pos;              /* next byte of the view to hand out */
	int nonblock;
	fuse_req_t parked;         /* a read waiting for data */
	size_t parked_size;
	struct fuse_pollhandle *ph;
	int busy;                  /* the poller is sending to it (lv->mu) */
	/* /tail/NAME of a service no block named yet: its name, until it
	 * appears (then @view becomes its own; the empty one is kept in
	 * @old_view until the end: a reader may still hold it). */
	char name[RT_SERVICE_MAX + 1];
	struct rtfs_view *old_view;
	int released;              /* the file is closed: the last user frees */
	struct rtfs_tail *prev, *next;
};

struct rtfs_live {
	struct rtfs *fs;
	pthread_mutex_t mu;        /* the tail list, each tail's pos/parked/ph */
	pthread_cond_t kick;
	struct rtfs_tail *tails;
	int ntails;
	int stop;
	pthread_t poller, scrubber;
	int have_poller, have_scrubber;
	char mountpoint[4096];
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------
 * /tail
 * ------------------------------------------------------------------------ */

static int resolve(struct rtfs *fs, struct rtfs_tail *t);

int rtfs_tail_open(struct rtfs *fs, struct rtfs_node *n, int flags, struct rtfs_tail **out)
{
	struct rtfs_live *lv = fs->live;
	struct rtfs_tail *t = calloc(1, sizeof(*t));
	int err;

	if (!t)
		return -ENOMEM;
	t->node = n;
	if (n->f.sid == RTFS_SID_NONE) {
		const char *slash = strrchr(n->path, '/');
		snprintf(t->name, sizeof(t->name), "%s", slash ? slash + 1 : n->path);
	}
	/* A reference of its own: the poller may still send from the view
	 * after the file (and its node) is released. */
	err = rtfs_view_get(fs->vs, &n->view->f, &t->view);
	if (err) {
		free(t);
		return err;
	}
	t->nonblock = (flags & O_NONBLOCK) != 0;
	err = resolve(fs, t);
	if (!err)
		err = rtfs_view_update(fs->m, t->view);
	if (err < 0) {
		if (t->old_view)
			rtfs_view_put(fs->vs, t->old_view);
		rtfs_view_put(fs->vs, t->view);
		free(t);
		return err;
	}
	t->pos = rtfs_view_size(t->view);
	pthread_mutex_lock(&lv->mu);
	t->next = lv->tails;
	if (lv->tails)
		lv->tails->prev = t;
	lv->tails = t;
	lv->ntails++;
	/* The poller goes to its fast pace. */
	pthread_cond_signal(&lv->kick);
	pthread_mutex_unlock(&lv->mu);
	*out = t;
	return 0;
}

/*
 * A /tail/NAME opened (or looked up) before service NAME existed: once a
 * block names it, follow its own view from the start (every record of it
 * came after the open). At open (lv->mu not needed: nobody else knows @t)
 * and with lv->mu held later. @return 0, -ENOMEM.
 */
static int resolve(struct rtfs *fs, struct rtfs_tail *t)
{
	struct rtfs_filter f;
	struct rtfs_view *v;
	int sid, err;

	if (!t->name[0])
		return 0;
	sid = rtfs_model_find_service(fs->m, t->name, strlen(t->name));
	if (sid < 0)
		return 0;
	f = t->view->f;
	f.sid = sid;
	err = rtfs_view_get(fs->vs, &f, &v);
	if (err)
		return err;
	t->old_view = t->view;
	t->view = v;
	t->pos = 0;
	t->name[0] = '\0';
	return 0;
}

/* Claim up to @size new bytes of @t: returns their start and sets *@n.
 * lv->mu held. */
static uint64_t claim(struct rtfs_tail *t, uint64_t vsize, size_t size, size_t *n)
{
	uint64_t from = t->pos, avail = vsize > t->pos ? vsize - t->pos : 0;

	*n = avail < size ? (size_t)avail : size;
	t->pos += *n;
	return from;
}

/* Send @n bytes of @t's view at @from (a range claimed above). */
static void send_range(struct rtfs *fs, struct rtfs_view *v, fuse_req_t req, uint64_t from,
		       size_t n)
{
	long r = rtfs_read_view(fs, req, v, from, n, NULL);

	if (r < 0)
		fuse_reply_err(req, (int)-r);
}

/*
 * The kernel interrupted a read (its reader got a signal). Called by libfuse
 * with the request's own lock held, from fuse_req_interrupt_func() itself
 * when the request was interrupted before it was registered: then the read
 * is not parked yet, nothing is replied here, and rtfs_tail_read() sees
 * fuse_req_interrupted() under lv->mu instead.
 */
static void on_interrupt(fuse_req_t req, void *data)
{
	struct rtfs_live *lv = data;
	struct rtfs_tail *t;

	/* The tail may be gone already: find the request by itself. */
	pthread_mutex_lock(&lv->mu);
	for (t = lv->tails; t; t = t->next)
		if (t->parked == req) {
			t->parked = NULL;
			pthread_mutex_unlock(&lv->mu);
			fuse_reply_err(req, EINTR);
			return;
		}
	pthread_mutex_unlock(&lv->mu);
}

void rtfs_tail_read(struct rtfs *fs, struct rtfs_tail *t, fuse_req_t req, size_t size)
{
	struct rtfs_live *lv = fs->live;
	struct rtfs_view *v;
	uint64_t vsize, from;
	size_t n;

	rtfs_model_refresh(fs->m, 0);
	/* Before the request can be parked: once parked (and lv->mu dropped)
	 * the poller may reply to it, which frees it. Registering may call
	 * on_interrupt() at once, which takes lv->mu: not held here. */
	if (!t->nonblock)
		fuse_req_interrupt_func(req, on_interrupt, lv);
	pthread_mutex_lock(&lv->mu);
	for (;;) {
		resolve(fs, t);
		v = t->view;
		pthread_mutex_unlock(&lv->mu);
		if (rtfs_view_update(fs->m, v) < 0) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		vsize = rtfs_view_size(v);
		pthread_mutex_lock(&lv->mu);
		if (t->view == v)
			break;
	}
	/* (entry lookups under v->mu, taken inside lv->mu as elsewhere) */
	t->pos = rtfs_view_skip_removed(fs->m, v, t->pos);
	from = claim(t, vsize, size, &n);
	if (n) {
		pthread_mutex_unlock(&lv->mu);
		send_range(fs, v, req, from, n);
		return;
	}
	if (t->nonblock || t->parked) {
		pthread_mutex_unlock(&lv->mu);
		fuse_reply_err(req, EAGAIN);
		return;
	}
	/* Interrupted before it was registered (on_interrupt() found nothing
	 * parked) or since: answer now instead of parking. An interrupt after
	 * this check finds the request parked. */
	if (fuse_req_interrupted(req)) {
		pthread_mutex_unlock(&lv->mu);
		fuse_reply_err(req, EINTR);
		return;
	}
	t->parked = req;
	t->parked_size = size;
	pthread_mutex_unlock(&lv->mu);
}

void rtfs_tail_poll(struct rtfs *fs, struct rtfs_tail *t, fuse_req_t req,
		    struct fuse_pollhandle *ph)
{
	struct rtfs_live *lv = fs->live;
	struct fuse_pollhandle *old = NULL;
	unsigned revents = 0;

	rtfs_model_refresh(fs->m, 0);
	pthread_mutex_lock(&lv->mu);
	resolve(fs, t);
	/* (Views only grow, and their own lock is brief.) */
	rtfs_view_update(fs->m, t->view);
	if (rtfs_view_size(t->view) > t->pos) {
		revents = POLLIN | POLLRDNORM;
		old = ph;
	} else if (ph) {
		old = t->ph;
		t->ph = ph;
		pthread_cond_signal(&lv->kick);
	}
	pthread_mutex_unlock(&lv->mu);
	if (old)
		fuse_pollhandle_destroy(old);
	fuse_reply_poll(req, revents);
}

static void tail_free(struct rtfs *fs, struct rtfs_tail *t)
{
	if (t->ph)
		fuse_pollhandle_destroy(t->ph);
	if (t->old_view)
		rtfs_view_put(fs->vs, t->old_view);
	rtfs_view_put(fs->vs, t->view);
	free(t);
}

void rtfs_tail_release(struct rtfs *fs, struct rtfs_tail *t)
{
	struct rtfs_live *lv = fs->live;
	fuse_req_t parked;
	int busy;

	if (!t)
		return;
	pthread_mutex_lock(&lv->mu);
	if (t->prev)
		t->prev->next = t->next;
	else
		lv->tails = t->next;
	if (t->next)
		t->next->prev = t->prev;
	lv->ntails--;
	parked = t->parked;
	t->parked = NULL;
	t->released = 1;
	busy = t->busy;
	pthread_mutex_unlock(&lv->mu);
	if (parked)
		fuse_reply_err(parked, EINTR);
	if (!busy)
		tail_free(fs, t);
}

/* New blocks: answer parked reads, notify poll handles. */
static void serve_tails(struct rtfs *fs)
{
	struct rtfs_live *lv = fs->live;
	struct rtfs_tail *t;

	for (;;) {
		struct fuse_pollhandle *ph = NULL;
		struct rtfs_view *v = NULL;
		fuse_req_t req = NULL;
		uint64_t from = 0;
		size_t n = 0;
		int gone;

		pthread_mutex_lock(&lv->mu);
		for (t = lv->tails; t; t = t->next) {
			uint64_t vsize;
			if (!t->parked && !t->ph)
				continue;
			resolve(fs, t);
			/* Views only grow under their own lock; this one is
			 * brief (the index is already refreshed). */
			rtfs_view_update(fs->m, t->view);
			vsize = rtfs_view_size(t->view);
			if (vsize <= t->pos)
				continue;
			v = t->view;
			t->pos = rtfs_view_skip_removed(fs->m, t->view, t->pos);
			if (t->parked) {
				req = t->parked;
				t->parked = NULL;
				from = claim(t, vsize, t->parked_size, &n);
			}
			ph = t->ph;
			t->ph = NULL;
			/* A release meanwhile leaves the freeing to us. */
			t->busy++;
			break;
		}
		pthread_mutex_unlock(&lv->mu);
		if (!t)
			return;
		if (req)
			send_range(fs, v, req, from, n);
		if (ph) {
			fuse_lowlevel_notify_poll(ph);
			fuse_pollhandle_destroy(ph);
		}
		pthread_mutex_lock(&lv->mu);
		gone = --t->busy == 0 && t->released;
		pthread_mutex_unlock(&lv->mu);
		if (gone)
			tail_free(fs, t);
	}
}

/* ------------------------------------------------------------------------
 * The poller
 * ------------------------------------------------------------------------ */

/* As root, give the mount a larger kernel readahead than the 128 KiB the
 * kernel offers FUSE: sequential readers then send large, concurrent
 * requests, which the prefetch workers turn into parallel rendering. */
/* Undo mountinfo's octal escapes (\040 for a space...) in place. */
static void unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/*
 * The device number of our mount, from /proc/self/mountinfo (the last FUSE
 * mount on our mount point). Never stat() the mount point: that is a request
 * to ourselves, and one that nobody answers once the session loop has ended
 * (a SIGTERM right after mounting) would keep this thread, and so the
 * unmount, waiting forever.
 */
static int mount_dev(const char *mnt, unsigned *maj, unsigned *min)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int found = 0;

	if (!f)
		return 0;
	while (getline(&line, &cap, f) > 0) {
		unsigned a, b;
		char *mp, *sep;
		int pos = 0;
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT ... - FSTYPE SOURCE ... */
		if (sscanf(line, "%*u %*u %u:%u %*s %n", &a, &b, &pos) != 2 || !pos)
			continue;
		mp = line + pos;
		sep = strchr(mp, ' ');
		if (!sep)
			continue;
		*sep = '\0';
		if (!strstr(sep + 1, " - fuse"))
			continue;
		unescape(mp);
		if (!strcmp(mp, mnt)) {
			*maj = a;
			*min = b;
			found = 1;
		}
	}
	free(line);
	fclose(f);
	return found;
}

static void set_readahead(struct rtfs_live *lv)
{
	char path[128], val[32];
	unsigned maj, min;
	int fd, n;

	if (!lv->fs->o.readahead_kb || !mount_dev(lv->mountpoint, &maj, &min))
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", maj, min);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = snprintf(val, sizeof(val), "%u", lv->fs->o.readahead_kb);
	if (write(fd, val, (size_t)n) != n) {
		/* not root, or not allowed: the kernel's default stays */
	}
	close(fd);
}

static void *poller(void *arg)
{
	struct rtfs_live *lv = arg;
	struct rtfs *fs = lv->fs;
	uint64_t last_full = mono_ns();
	uint32_t seen = rtfs_model_nblocks(fs->m);
	int ra_done = 0;

	pthread_mutex_lock(&lv->mu);
	while (!lv->stop) {
		struct timespec ts;
		uint64_t now, wait;
		uint32_t nb;
		int full;

		pthread_mutex_unlock(&lv->mu);
		if (!ra_done) {
			set_readahead(lv);
			ra_done = 1;
		}
		now = mono_ns();
		full = now - last_full >= 1000ull * 1000000;
		if (full)
			last_full = now;
		rtfs_model_refresh(fs->m, full);
		nb = rtfs_model_nblocks(fs->m);
		if (nb != seen) {
			seen = nb;
			serve_tails(fs);
		}
		pthread_mutex_lock(&lv->mu);
		if (lv->stop)
			break;
		wait = (uint64_t)(lv->ntails ? fs->o.poll_us : fs->o.idle_poll_us) * 1000;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(wait % 1000000000);
		ts.tv_sec += (time_t)(wait / 1000000000) + ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		pthread_cond_timedwait(&lv->kick, &lv->mu, &ts);
	}
	pthread_mutex_unlock(&lv->mu);
	rtfs_model_thread_done();
	return NULL;
}

/* ------------------------------------------------------------------------
 * The scrubber (-o scrub): every block's checksum, slowly, once.
 * ------------------------------------------------------------------------ */

static void *scrubber(void *arg)
{
	struct rtfs_live *lv = arg;
	struct rtfs *fs = lv->fs;
	uint32_t gid = 0;

	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
	pthread_mutex_lock(&lv->mu);
	while (!lv->stop) {
		struct timespec ts;
		uint32_t n, done = 0;

		pthread_mutex_unlock(&lv->mu);
		n = rtfs_model_nblocks(fs->m);
		while (gid < n && done < 64) {
			struct rtfs_block *b = rtfs_model_block(fs->m, gid++);
			if (__atomic_load_n(&b->health, __ATOMIC_RELAXED) == 0)
				rtfs_block_check(fs->m, b);
			done++;
		}
		pthread_mutex_lock(&lv->mu);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += gid < n ? 10 * 1000000 : 0;
		ts.tv_sec += gid < n ? 0 : 1;
		ts.tv_sec += ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		if (!lv->stop)
			pthread_cond_timedwait(&lv->kick, &lv->mu, &ts);
	}
	pthread_mutex_unlock(&lv->mu);
	return NULL;
}

int rtfs_live_start(struct rtfs *fs, const char *mountpoint)
{
	struct rtfs_live *lv = calloc(1, sizeof(*lv));
	int err;

	if (!lv)
		return -ENOMEM;
	lv->fs = fs;
	snprintf(lv->mountpoint, sizeof(lv->mountpoint), "%s", mountpoint ? mountpoint : "");
	pthread_mutex_init(&lv->mu, NULL);
	pthread_cond_init(&lv->kick, NULL);
	fs->live = lv;
	err = pthread_create(&lv->poller, NULL, poller, lv);
	if (err) {
		fs->live = NULL;
		free(lv);
		return -err;
	}
	lv->have_poller = 1;
	if (fs->o.scrub && pthread_create(&lv->scrubber, NULL, scrubber, lv) == 0)
		lv->have_scrubber = 1;
	return 0;
}

void rtfs_live_stop(struct rtfs *fs)
{
	struct rtfs_live *lv = fs->live;

	if (!lv)
		return;
	pthread_mutex_lock(&lv->mu);
	lv->stop = 1;
	pthread_cond_broadcast(&lv->kick);
	pthread_mutex_unlock(&lv->mu);
	if (lv->have_poller)
		pthread_join(lv->poller, NULL);
	if (lv->have_scrubber)
		pthread_join(lv->scrubber, NULL);
	/* Tails still open (the kernel went away first) end here. */
	while (lv->tails) {
		struct rtfs_tail *t = lv->tails;
		lv->tails = t->next;
		if (t->parked)
			fuse_reply_err(t->parked, EINTR);
		tail_free(fs, t);
	}
	pthread_mutex_destroy(&lv->mu);
	pthread_cond_destroy(&lv->kick);
	free(lv);
	fs->live = NULL;
}
