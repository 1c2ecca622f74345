/* SPDX-License-Identifier: MIT */
/*
 * stats.c - /stats: counted from the index (no block is decoded here).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "names.h"
#include "stats.h"

struct text {
	char *p;
	size_t len, cap;
	int err;
};


/* Is @pid a running ringtaild (not a pid since reused by another)? */
static int spooler_alive(uint64_t pid)
{
	char path[64], comm[32];
	int fd;
	ssize_t n;

	if (pid == 0 || pid > INT32_MAX)
		return 0;
	snprintf(path, sizeof(path), "/proc/%" PRIu64 "/comm", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	comm[n] = '\0';
	return !strncmp(comm, "ringtaild", 9);
}

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->err)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->err = -EINVAL;
			return;
		}
		if (t->p && t->len + (size_t)n < t->cap) {
			t->len += (size_t)n;
			return;
		}
		{
			size_t cap = t->cap ? t->cap * 2 : 4096;
			char *np;
			while (cap < t->len + (size_t)n + 1)
				cap *= 2;
			np = realloc(t->p, cap);
			if (!np) {
				t->err = -ENOMEM;
				return;
			}
			t->p = np;
			t->cap = cap;
		}
	}
}

static void put_time(struct text *t, const char *key, uint64_t ns)
{
	char buf[RT_RENDER_TIME_LEN + 1];

	if (!ns) {
		put(t, "%s -\n", key);
		return;
	}
	*rt_render_time(buf, ns) = '\0';
	put(t, "%s %s\n", key, buf);
}

struct svcsum {
	uint64_t count[RTFS_NCLS];
	uint64_t bytes;
};

struct hostsum {
	uint64_t records, drops, lost, refused, malformed, blocks, segments, spool_bytes, head,
		durable;
	uint64_t tmin, tmax;
	uint64_t updated;   /* the spooler's (or, on a central, the sender's) last word */
};

/* Segments, their bytes, head and durable sequence of host @hid's spools. */
static void spools_of(struct rtfs_model *m, int32_t hid, struct hostsum *h, uint64_t *pid)
{
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nspools; i++) {
		struct rtfs_spool *sp = m->spools[i];
		if (hid >= 0 && sp->hid != (uint32_t)hid)
			continue;
		for (size_t j = 0; j < sp->nsegs; j++) {
			struct rtfs_seg *sg = sp->segs[j];
			struct stat st;
			if (sg->removed)
				continue;
			h->segments++;
			if (sg->fd >= 0 && fstat(sg->fd, &st) == 0)
				h->spool_bytes += (uint64_t)st.st_size;
		}
		if (sp->head_seq > h->head)
			h->head = sp->head_seq;
		if (sp->durable_seq > h->durable)
			h->durable = sp->durable_seq;
		if (sp->updated_ns > h->updated)
			h->updated = sp->updated_ns;
		if (pid && sp->spooler_pid)
			*pid = sp->spooler_pid;
	}
	pthread_mutex_unlock(&m->mu);
}

int rtfs_stats_text(struct rtfs *fs, int32_t hid, char **out, size_t *len)
{
	struct rtfs_model *m = fs->m;
	uint32_t nb = rtfs_model_nblocks(m), nsvc = rtfs_model_nservices(m);
	uint32_t nh = rtfs_model_nhosts(m);
	struct svcsum *ss = calloc(nsvc ? nsvc : 1, sizeof(*ss));
	struct hostsum *hs = calloc(nh ? nh : 1, sizeof(*hs));
	struct hostsum all;
	struct rtfs_cache_stats cs;
	struct text t = {0};
	uint64_t pid = 0, dseg = 0, dblk = 0, removed = 0;

	if (!ss || !hs) {
		free(ss);
		free(hs);
		return -ENOMEM;
	}
	memset(&all, 0, sizeof(all));
	for (uint32_t gid = 0; gid < nb; gid++) {
		struct rtfs_block *b = rtfs_model_block(m, gid);
		struct hostsum *h = &hs[b->hid];
		if (hid >= 0 && b->hid != (uint32_t)hid)
			continue;
		/* Removed by retention: no longer in the spool. */
		if (__atomic_load_n(&b->seg->removed, __ATOMIC_ACQUIRE)) {
			removed += b->nrec;
			continue;
		}
		h->records += b->nrec;
		h->drops += b->loss_records;
		h->lost += b->lost;
		h->refused += b->refused;
		h->malformed += b->malformed;
		h->blocks++;
		if (!h->tmin || b->tmin < h->tmin)
			h->tmin = b->tmin;
		if (b->tmax > h->tmax)
			h->tmax = b->tmax;
		for (uint32_t i = 0; i < b->nsvc; i++)
			for (int c = 0; c < RTFS_NCLS; c++) {
				ss[b->svc[i].sid].count[c] += b->svc[i].count[c];
				ss[b->svc[i].sid].bytes += b->svc[i].bytes[c];
			}
	}
	for (uint32_t i = 0; i < nh; i++) {
		if (hid >= 0 && i != (uint32_t)hid)
			continue;
		spools_of(m, (int32_t)i, &hs[i], &pid);
		all.records += hs[i].records;
		all.drops += hs[i].drops;
		all.lost += hs[i].lost;
		all.refused += hs[i].refused;
		all.malformed += hs[i].malformed;
		all.blocks += hs[i].blocks;
		all.segments += hs[i].segments;
		all.spool_bytes += hs[i].spool_bytes;
		if (hs[i].head > all.head)
			all.head = hs[i].head;
		if (hs[i].durable > all.durable)
			all.durable = hs[i].durable;
		if (hs[i].tmin && (!all.tmin || hs[i].tmin < all.tmin))
			all.tmin = hs[i].tmin;
		if (hs[i].tmax > all.tmax)
			all.tmax = hs[i].tmax;
	}
	pthread_mutex_lock(&m->dmu);
	for (size_t i = 0; i < m->ndamage; i++) {
		if (hid >= 0 && m->damage[i].hid != (uint32_t)hid)
			continue;
		if (m->damage[i].block < 0)
			dseg++;
		else
			dblk++;
	}
	pthread_mutex_unlock(&m->dmu);

	put(&t, "ringtailfs %s\n", RTFS_VERSION);
	put(&t, "%s %s\n", m->central ? "central" : "spool", m->root);
	if (hid >= 0 || !m->central)
		put(&t, "host %s\n", m->hosts[hid >= 0 ? hid : 0]->name);
	else
		put(&t, "hosts %u\n", nh);
	put(&t, "head_seq %" PRIu64 "\n", all.head);
	put(&t, "durable_seq %" PRIu64 "\n", all.durable);
	put(&t, "records %" PRIu64 "\n", all.records);
	/* Three different counts, never added up (docs/ring.md): calls the
	 * writers refused and told, records lost, bytes malformed. */
	put(&t, "loss_records %" PRIu64 "\n", all.drops);
	put(&t, "calls_refused %" PRIu64 "\n", all.refused);
	put(&t, "records_lost %" PRIu64 "\n", all.lost);
	put(&t, "malformed_bytes %" PRIu64 "\n", all.malformed);
	put(&t, "segments %" PRIu64 "\n", all.segments);
	put(&t, "blocks %" PRIu64 "\n", all.blocks);
	put(&t, "spool_bytes %" PRIu64 "\n", all.spool_bytes);
	put_time(&t, "oldest", all.tmin);
	put_time(&t, "newest", all.tmax);
	put(&t, "damaged_segments %" PRIu64 "\n", dseg);
	put(&t, "damaged_blocks %" PRIu64 "\n", dblk);
	put(&t, "records_removed %" PRIu64 "\n", removed);
	put(&t, "overflow %" PRIu64 "\n", __atomic_load_n(&m->overflow, __ATOMIC_RELAXED));
	/* Only a spooler that runs: a pid left in SPOOL/state by one that
	 * is gone (or now another program's) is shown as gone. */
	if (pid && !spooler_alive(pid)) {
		put(&t, "spooler_pid 0\n");
		put(&t, "spooler_gone %" PRIu64 "\n", pid);
	} else {
		put(&t, "spooler_pid %" PRIu64 "\n", pid);
	}
	{
		uint32_t n = 0;
		for (uint32_t s = 0; s < nsvc; s++)
			for (int c = 0; c < RTFS_NCLS; c++)
				if (ss[s].count[c]) {
					n++;
					break;
				}
		put(&t, "services %u\n", n);
	}
	for (uint32_t s = 0; s < nsvc; s++) {
		uint64_t total = 0;
		for (int c = 0; c < RTFS_NCLS; c++)
			total += ss[s].count[c];
		if (!total)
			continue;
		put(&t, "service %s records %" PRIu64 " bytes %" PRIu64, rtfs_model_service(m, s)->name,
		    total, ss[s].bytes);
		for (int c = 0; c < RTFS_NCLS; c++)
			put(&t, " %s %" PRIu64, rtfs_class_name(c), ss[s].count[c]);
		put(&t, "\n");
	}
	if (hid < 0 && m->central)
		for (uint32_t i = 0; i < nh; i++) {
			char when[RT_RENDER_TIME_LEN + 1] = "-";
			if (hs[i].updated)
				*rt_render_time(when, hs[i].updated) = '\0';
			put(&t,
			    "host %s records %" PRIu64 " loss_records %" PRIu64 " head_seq %" PRIu64
			    " durable_seq %" PRIu64 " segments %" PRIu64 " spool_bytes %" PRIu64
			    " last_contact %s\n",
			    m->hosts[i]->name, hs[i].records, hs[i].drops, hs[i].head, hs[i].durable,
			    hs[i].segments, hs[i].spool_bytes, when);
		}
	pthread_mutex_lock(&m->dmu);
	for (size_t i = 0; i < m->ndamage; i++)
		if (hid < 0 || m->damage[i].hid == (uint32_t)hid)
			put(&t, "damage %s\n", m->damage[i].what);
	pthread_mutex_unlock(&m->dmu);
	if (fs->cache) {
		rtfs_cache_stats(fs->cache, &cs);
		put(&t,
		    "cache_bytes %" PRIu64 " cache_hits %" PRIu64 " cache_misses %" PRIu64
		    " cache_prefetched %" PRIu64 "\n",
		    cs.bytes, cs.hits, cs.misses, cs.prefetched);
	}
	free(ss);
	free(hs);
	if (t.err) {
		free(t.p);
		return t.err;
	}
	*out = t.p;
	*len = t.len;
	return 0;
}
