/* SPDX-License-Identifier: MIT */
/*
 * names.c - the tree: what a name under a directory means, directory
 * listings, and the table of nodes by inode number and by path.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "names.h"

#define NBUCKETS 4096u

struct rtfs_names {
	struct rtfs *fs;
	pthread_mutex_t mu;
	struct rtfs_node *by_ino[NBUCKETS];
	struct rtfs_node *by_path[NBUCKETS];
	struct rtfs_node *root;
};

static const char *const class_names[RTFS_NCLS] = {"TRACE", "DEBUG", "INFO",
						    "WARN",  "ERROR", "FATAL"};

const char *rtfs_class_name(int c)
{
	return c >= 0 && c < RTFS_NCLS ? class_names[c] : "UNSET";
}

int rtfs_node_is_dir(const struct rtfs_node *n)
{
	return n->kind < RTFS_VIEW;
}

/* An inode number for @path: a hash, never 0 or FUSE_ROOT_ID. */
static uint64_t path_ino(const char *path)
{
	uint64_t h = XXH3_64bits(path, strlen(path)) >> 1;

	return h < 2 ? h + 2 : h;
}

/* ------------------------------------------------------------------------
 * Dates: slice names
 * ------------------------------------------------------------------------ */

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static int64_t days_from_civil(int y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static int digits(const char *s, int n, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* "YYYY-MM-DD" (hours 24) or "YYYY-MM-DDTHH" (hours 1) into the first hour
 * since the epoch. Only names the listing would show are accepted. */
static int parse_slice(const char *s, int hours, uint32_t *h0)
{
	unsigned y, mo, d, hh = 0;
	int64_t days;

	if (strlen(s) != (hours == 24 ? 10u : 13u) || s[4] != '-' || s[7] != '-' ||
	    digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d))
		return -ENOENT;
	if (hours == 1 && (s[10] != 'T' || digits(s + 11, 2, &hh) || hh > 23))
		return -ENOENT;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31)
		return -ENOENT;
	days = days_from_civil((int)y, mo, d);
	{
		int yy;
		unsigned mm, dd;
		civil_from_days(days, &yy, &mm, &dd);
		if (mm != mo || dd != d)
			return -ENOENT; /* 2026-02-30 */
	}
	if (days * 24 + hh > UINT32_MAX - 24)
		return -ENOENT;
	*h0 = (uint32_t)(days * 24 + hh);
	return 0;
}

static void slice_name(uint32_t h0, int hours, char *out, size_t n)
{
	int y;
	unsigned m, d;

	civil_from_days(h0 / 24, &y, &m, &d);
	if (hours == 24)
		snprintf(out, n, "%04d-%02u-%02u", y, m, d);
	else
		snprintf(out, n, "%04d-%02u-%02uT%02u", y, m, d, h0 % 24);
}

static void trace_hex(const uint8_t t[16], char out[33])
{
	static const char hx[] = "0123456789abcdef";

	for (int i = 0; i < 16; i++) {
		out[2 * i] = hx[t[i] >> 4];
		out[2 * i + 1] = hx[t[i] & 15];
	}
	out[32] = '\0';
}

/* A canonical decimal (no leading zeros). */
static int parse_seq(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
		return -ENOENT;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - 9) / 10)
			return -ENOENT;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* ------------------------------------------------------------------------
 * What a name means
 * ------------------------------------------------------------------------ */

static void filter_init(struct rtfs_filter *f, int32_t hid, uint32_t mask)
{
	memset(f, 0, sizeof(*f));
	f->hid = hid;
	f->sid = -1;
	f->sevmask = mask;
}

/* Does @p's scope have one host's sequence numbers (so /since works)? */
static int one_host(struct rtfs *fs, const struct rtfs_node *p)
{
	return p->kind == RTFS_HOST || !fs->m->central;
}

/* Fill @t (kind and parameters) for child @name of @p. */
static int child(struct rtfs *fs, struct rtfs_node *p, const char *name, struct rtfs_node *t)
{
	int sid;

	memset(t, 0, sizeof(*t));
	t->hid = p->hid;
	filter_init(&t->f, p->hid, RTFS_SEV_ALL);
	switch (p->kind) {
	case RTFS_ROOT:
	case RTFS_HOST:
		if (!strcmp(name, "all")) {
			t->kind = RTFS_VIEW;
		} else if (!strcmp(name, "stats")) {
			t->kind = RTFS_STATS;
		} else if (!strcmp(name, "by-service")) {
			t->kind = RTFS_SVCDIR;
		} else if (!strcmp(name, "errors")) {
			t->kind = RTFS_SELDIR;
			t->f.sevmask = RTFS_SEV_ERRORS;
		} else if (!strcmp(name, "by-severity")) {
			t->kind = RTFS_SEVDIR;
		} else if (!strcmp(name, "by-day")) {
			t->kind = RTFS_SLICES;
			t->sel = 24;
		} else if (!strcmp(name, "by-hour")) {
			t->kind = RTFS_SLICES;
			t->sel = 1;
		} else if (!strcmp(name, "since") && one_host(fs, p)) {
			t->kind = RTFS_SINCE;
		} else if (!strcmp(name, "by-trace")) {
			t->kind = RTFS_TRACES;
		} else if (!strcmp(name, "tail")) {
			t->kind = RTFS_TAILDIR;
		} else if (!strcmp(name, "by-host") && p->kind == RTFS_ROOT && fs->m->central) {
			t->kind = RTFS_HOSTS;
		} else {
			return -ENOENT;
		}
		return 0;
	case RTFS_HOSTS: {
		int hid = rtfs_model_find_host(fs->m, name);
		if (hid < 0)
			return -ENOENT;
		t->kind = RTFS_HOST;
		t->hid = hid;
		t->f.hid = hid;
		return 0;
	}
	case RTFS_SVCDIR:
		sid = rtfs_model_find_service(fs->m, name, strlen(name));
		if (sid < 0)
			return -ENOENT;
		t->kind = RTFS_VIEW;
		t->f = p->f;
		t->f.sid = sid;
		return 0;
	case RTFS_SELDIR:
		t->f = p->f;
		if (!strcmp(name, "all")) {
			t->kind = RTFS_VIEW;
			return 0;
		}
		if (!strcmp(name, "errors") && (p->sel & RTFS_SEL_ERRORS)) {
			t->kind = RTFS_SELDIR;
			t->f.sevmask &= RTFS_SEV_ERRORS;
			return 0;
		}
		if (!strcmp(name, "by-service")) {
			t->kind = RTFS_SVCDIR;
			return 0;
		}
		return -ENOENT;
	case RTFS_SEVDIR:
		for (int c = 0; c < RTFS_NCLS; c++)
			if (!strcmp(name, class_names[c])) {
				t->kind = RTFS_SELDIR;
				t->f.sevmask = 1u << c;
				return 0;
			}
		return -ENOENT;
	case RTFS_SLICES: {
		uint32_t h0;
		int err = parse_slice(name, p->sel, &h0);
		if (err)
			return err;
		t->kind = RTFS_SELDIR;
		t->sel = RTFS_SEL_ERRORS;
		t->f.h0 = h0;
		t->f.h1 = h0 + (uint32_t)p->sel;
		return 0;
	}
	case RTFS_SINCE: {
		uint64_t seq;
		int err = parse_seq(name, &seq);
		if (err)
			return err;
		t->kind = RTFS_SELDIR;
		t->sel = RTFS_SEL_ERRORS;
		t->f.since = seq;
		return 0;
	}
	case RTFS_TRACES: {
		int err = rt_parse_hex(name, t->trace, 16, RT_HEX_LOWER) ? -ENOENT : 0;
		if (err)
			return err;
		t->kind = RTFS_TRACE;
		return 0;
	}
	case RTFS_TAILDIR:
		if (!strcmp(name, "all")) {
			t->kind = RTFS_TAIL;
			return 0;
		}
		if (!strcmp(name, "by-service")) {
			t->kind = RTFS_TAILSVC;
			return 0;
		}
		return -ENOENT;
	case RTFS_TAILSVC:
		t->kind = RTFS_TAIL;
		if (!rt_service_valid(name, strlen(name)))
			return -ENOENT;
		/* A service not seen yet can be followed before it logs; the
		 * lookup takes nothing lasting (no entry in the service table:
		 * every such name shares one empty view until the tail is read
		 * and the service exists, live.c resolve()). */
		sid = rtfs_model_find_service(fs->m, name, strlen(name));
		t->f.sid = sid >= 0 ? sid : RTFS_SID_NONE;
		return 0;
	default:
		return -ENOTDIR;
	}
}

/* ------------------------------------------------------------------------
 * The node table
 * ------------------------------------------------------------------------ */

static void node_free(struct rtfs *fs, struct rtfs_node *n)
{
	if (n->view)
		rtfs_view_put(fs->vs, n->view);
	if (n->tview)
		rtfs_tview_put(fs->vs, n->tview);
	free(n->path);
	free(n);
}

static struct rtfs_node *find_ino(struct rtfs_names *ns, uint64_t ino)
{
	struct rtfs_node *n;

	for (n = ns->by_ino[ino % NBUCKETS]; n; n = n->inext)
		if (n->ino == ino)
			return n;
	return NULL;
}

static struct rtfs_node *find_path(struct rtfs_names *ns, const char *path, uint64_t ph)
{
	struct rtfs_node *n;

	for (n = ns->by_path[ph % NBUCKETS]; n; n = n->pnext)
		if (n->phash == ph && !strcmp(n->path, path))
			return n;
	return NULL;
}

/* Put @n in the tables, choosing its inode number. ns->mu held. */
static void insert(struct rtfs_names *ns, struct rtfs_node *n)
{
	uint64_t ino = n->ino;

	/* A hash collision (never seen in practice) moves on to a free one. */
	while (find_ino(ns, ino))
		ino = ino + 1 < 2 ? 2 : ino + 1;
	n->ino = ino;
	n->inext = ns->by_ino[ino % NBUCKETS];
	ns->by_ino[ino % NBUCKETS] = n;
	n->pnext = ns->by_path[n->phash % NBUCKETS];
	ns->by_path[n->phash % NBUCKETS] = n;
}

static void unlink_node(struct rtfs_names *ns, struct rtfs_node *n)
{
	struct rtfs_node **pp;

	for (pp = &ns->by_ino[n->ino % NBUCKETS]; *pp; pp = &(*pp)->inext)
		if (*pp == n) {
			*pp = n->inext;
			break;
		}
	for (pp = &ns->by_path[n->phash % NBUCKETS]; *pp; pp = &(*pp)->pnext)
		if (*pp == n) {
			*pp = n->pnext;
			break;
		}
}

int rtfs_names_new(struct rtfs *fs, struct rtfs_names **out)
{
	struct rtfs_names *ns = calloc(1, sizeof(*ns));
	struct rtfs_node *r;

	if (!ns)
		return -ENOMEM;
	r = calloc(1, sizeof(*r));
	if (!r) {
		free(ns);
		return -ENOMEM;
	}
	ns->fs = fs;
	pthread_mutex_init(&ns->mu, NULL);
	r->kind = RTFS_ROOT;
	r->hid = -1;
	filter_init(&r->f, -1, RTFS_SEV_ALL);
	r->path = strdup("");
	r->ino = FUSE_ROOT_ID;
	r->phash = XXH3_64bits("", 0);
	r->nlookup = 1; /* the kernel never forgets the root */
	if (!r->path) {
		free(r);
		free(ns);
		return -ENOMEM;
	}
	ns->root = r;
	r->inext = NULL;
	ns->by_ino[r->ino % NBUCKETS] = r;
	ns->by_path[r->phash % NBUCKETS] = r;
	*out = ns;
	return 0;
}

void rtfs_names_free(struct rtfs_names *ns)
{
	if (!ns)
		return;
	for (uint32_t i = 0; i < NBUCKETS; i++)
		while (ns->by_ino[i]) {
			struct rtfs_node *n = ns->by_ino[i];
			ns->by_ino[i] = n->inext;
			node_free(ns->fs, n);
		}
	pthread_mutex_destroy(&ns->mu);
	free(ns);
}

struct rtfs_node *rtfs_node_get(struct rtfs_names *ns, uint64_t ino)
{
	struct rtfs_node *n;

	pthread_mutex_lock(&ns->mu);
	n = find_ino(ns, ino);
	if (n)
		n->refs++;
	pthread_mutex_unlock(&ns->mu);
	return n;
}

/* Free @n if nothing holds it. ns->mu held; returns it unlinked or NULL. */
static struct rtfs_node *maybe_drop(struct rtfs_names *ns, struct rtfs_node *n)
{
	if (n->refs > 0 || n->nlookup > 0 || n == ns->root)
		return NULL;
	unlink_node(ns, n);
	return n;
}

void rtfs_node_put(struct rtfs_names *ns, struct rtfs_node *n)
{
	struct rtfs_node *gone;

	if (!n)
		return;
	pthread_mutex_lock(&ns->mu);
	n->refs--;
	gone = maybe_drop(ns, n);
	pthread_mutex_unlock(&ns->mu);
	if (gone)
		node_free(ns->fs, gone);
}

void rtfs_node_forget(struct rtfs_names *ns, uint64_t ino, uint64_t nlookup)
{
	struct rtfs_node *n, *gone = NULL;

	pthread_mutex_lock(&ns->mu);
	n = find_ino(ns, ino);
	if (n && n != ns->root) {
		n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
		gone = maybe_drop(ns, n);
	}
	pthread_mutex_unlock(&ns->mu);
	if (gone)
		node_free(ns->fs, gone);
}

static char *join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = malloc(a + b + 2);

	if (!p)
		return NULL;
	memcpy(p, dir, a);
	p[a] = '/';
	memcpy(p + a + 1, name, b + 1);
	return p;
}

int rtfs_node_lookup(struct rtfs *fs, struct rtfs_node *parent, const char *name,
		     struct rtfs_node **out)
{
	struct rtfs_names *ns = fs->names;
	struct rtfs_node t, *n, *have;
	uint64_t ph;
	char *path;
	int err;

	if (!rtfs_node_is_dir(parent))
		return -ENOTDIR;
	if (strlen(name) > 255)
		return -ENAMETOOLONG;
	path = join(parent->path, name);
	if (!path)
		return -ENOMEM;
	ph = XXH3_64bits(path, strlen(path));
	pthread_mutex_lock(&ns->mu);
	n = find_path(ns, path, ph);
	if (n) {
		n->refs++;
		n->nlookup++;
		pthread_mutex_unlock(&ns->mu);
		free(path);
		*out = n;
		return 0;
	}
	pthread_mutex_unlock(&ns->mu);

	/* New: work out what it is (outside the lock: views may take a while). */
	err = child(fs, parent, name, &t);
	if (err) {
		free(path);
		return err;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		free(path);
		return -ENOMEM;
	}
	*n = t;
	n->path = path;
	n->phash = ph;
	n->ino = path_ino(path);
	if (n->kind == RTFS_VIEW || n->kind == RTFS_TAIL)
		err = rtfs_view_get(fs->vs, &n->f, &n->view);
	else if (n->kind == RTFS_TRACE)
		err = rtfs_tview_get(fs->vs, n->trace, n->hid, &n->tview);
	if (err) {
		node_free(fs, n);
		return err;
	}
	pthread_mutex_lock(&ns->mu);
	have = find_path(ns, path, ph);
	if (have) {
		/* Made meanwhile by another lookup: use that one. */
		have->refs++;
		have->nlookup++;
		pthread_mutex_unlock(&ns->mu);
		node_free(fs, n);
		*out = have;
		return 0;
	}
	insert(ns, n);
	n->refs = 1;
	n->nlookup = 1;
	pthread_mutex_unlock(&ns->mu);
	*out = n;
	return 0;
}

/* ------------------------------------------------------------------------
 * Listings
 * ------------------------------------------------------------------------ */

struct dlist {
	struct rtfs_dirent *e;
	int n, cap;
};

static int add(struct rtfs_names *ns, struct dlist *l, const struct rtfs_node *dir,
	       const char *name, int is_dir)
{
	struct rtfs_dirent *d;

	if (l->n == l->cap) {
		int cap = l->cap ? l->cap * 2 : 32;
		struct rtfs_dirent *ne = realloc(l->e, (size_t)cap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		l->e = ne;
		l->cap = cap;
	}
	d = &l->e[l->n++];
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->dir = is_dir;
	if (!strcmp(name, ".")) {
		d->ino = dir->ino;
	} else if (!strcmp(name, "..")) {
		d->ino = FUSE_ROOT_ID; /* readdir's ".." inode is not used */
	} else {
		char *path = join(dir->path, name);
		struct rtfs_node *n;
		if (!path)
			return -ENOMEM;
		/* The inode a lookup would give. */
		pthread_mutex_lock(&ns->mu);
		n = find_path(ns, path, XXH3_64bits(path, strlen(path)));
		d->ino = n ? n->ino : path_ino(path);
		pthread_mutex_unlock(&ns->mu);
		free(path);
	}
	return 0;
}

/* Services with records passing @f (ignoring its service). */
static int scope_services(struct rtfs *fs, const struct rtfs_filter *f, uint8_t *present)
{
	uint32_t n = rtfs_model_nblocks(fs->m);

	for (uint32_t gid = 0; gid < n; gid++) {
		struct rtfs_block *b = rtfs_model_block(fs->m, gid);
		if (f->hid >= 0 && b->hid != (uint32_t)f->hid)
			continue;
		if (f->since && b->first_seq + b->nrec <= f->since)
			continue;
		if (f->h1 && b->nparts) {
			for (uint32_t i = 0; i < b->nparts; i++)
				if (b->parts[i].hour >= f->h0 && b->parts[i].hour < f->h1 &&
				    (f->sevmask & (1u << b->parts[i].cls)))
					present[b->parts[i].sid] = 1;
			continue;
		}
		if (f->h1 && (b->tmin / RTFS_HOUR_NS < f->h0 || b->tmin / RTFS_HOUR_NS >= f->h1))
			continue;
		for (uint32_t i = 0; i < b->nsvc; i++)
			for (int c = 0; c < RTFS_NCLS; c++)
				if ((f->sevmask & (1u << c)) && b->svc[i].count[c])
					present[b->svc[i].sid] = 1;
	}
	return 0;
}

static int list_services(struct rtfs *fs, struct dlist *l, const struct rtfs_node *dir,
			 const struct rtfs_filter *f)
{
	uint32_t nsvc = rtfs_model_nservices(fs->m);
	uint8_t *present = calloc(nsvc ? nsvc : 1, 1);
	int err = 0;

	if (!present)
		return -ENOMEM;
	scope_services(fs, f, present);
	for (uint32_t s = 0; s < nsvc && !err; s++)
		if (present[s])
			err = add(fs->names, l, dir, rtfs_model_service(fs->m, s)->name, 0);
	free(present);
	return err;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int list_slices(struct rtfs *fs, struct dlist *l, const struct rtfs_node *dir)
{
	uint32_t n = rtfs_model_nblocks(fs->m), *v = NULL, nv = 0, cap = 0;
	int hours = dir->sel, err = 0;

	for (uint32_t gid = 0; gid < n; gid++) {
		struct rtfs_block *b = rtfs_model_block(fs->m, gid);
		uint32_t k = b->nparts ? b->nparts : 1;
		if (dir->hid >= 0 && b->hid != (uint32_t)dir->hid)
			continue;
		for (uint32_t i = 0; i < k; i++) {
			uint32_t h = b->nparts ? b->parts[i].hour : (uint32_t)(b->tmin / RTFS_HOUR_NS);
			h -= h % (uint32_t)hours;
			if (nv && v[nv - 1] == h)
				continue;
			if (nv == cap) {
				uint32_t *nn;
				cap = cap ? cap * 2 : 64;
				nn = realloc(v, cap * sizeof(*v));
				if (!nn) {
					free(v);
					return -ENOMEM;
				}
				v = nn;
			}
			v[nv++] = h;
		}
	}
	if (nv)
		qsort(v, nv, sizeof(*v), cmp_u32);
	for (uint32_t i = 0; i < nv && !err; i++) {
		char name[32];
		if (i && v[i] == v[i - 1])
			continue;
		slice_name(v[i], hours, name, sizeof(name));
		err = add(fs->names, l, dir, name, 1);
	}
	free(v);
	return err;
}

static int list_traces(struct rtfs *fs, struct dlist *l, const struct rtfs_node *dir)
{
	enum { MAX = 1000 };
	uint8_t(*ids)[16] = malloc(MAX * 16);
	int n, err = 0;

	if (!ids)
		return -ENOMEM;
	n = rtfs_recent_traces(fs->m, dir->hid, ids, MAX, 64ull << 20);
	for (int i = 0; i < n && !err; i++) {
		char hex[33];
		trace_hex(ids[i], hex);
		err = add(fs->names, l, dir, hex, 0);
	}
	free(ids);
	return n < 0 ? n : err;
}

int rtfs_dir_list(struct rtfs *fs, struct rtfs_node *dir, struct rtfs_dirent **out)
{
	struct rtfs_names *ns = fs->names;
	struct dlist l = {0};
	struct rtfs_filter f;
	int err;

	if (!rtfs_node_is_dir(dir))
		return -ENOTDIR;
	err = add(ns, &l, dir, ".", 1);
	if (!err)
		err = add(ns, &l, dir, "..", 1);
	switch (dir->kind) {
	case RTFS_ROOT:
	case RTFS_HOST: {
		static const char *const dirs[] = {"by-service", "by-trace", "by-day", "by-hour",
						   "by-severity", "errors", "tail"};
		for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && !err; i++)
			err = add(ns, &l, dir, dirs[i], 1);
		if (!err && one_host(fs, dir))
			err = add(ns, &l, dir, "since", 1);
		if (!err && dir->kind == RTFS_ROOT && fs->m->central)
			err = add(ns, &l, dir, "by-host", 1);
		if (!err)
			err = add(ns, &l, dir, "all", 0);
		if (!err)
			err = add(ns, &l, dir, "stats", 0);
		break;
	}
	case RTFS_HOSTS: {
		uint32_t nh = rtfs_model_nhosts(fs->m);
		for (uint32_t h = 0; h < nh && !err; h++)
			err = add(ns, &l, dir, fs->m->hosts[h]->name, 1);
		break;
	}
	case RTFS_SVCDIR:
		if (!err)
			err = list_services(fs, &l, dir, &dir->f);
		break;
	case RTFS_SELDIR:
		if (!err)
			err = add(ns, &l, dir, "all", 0);
		if (!err && (dir->sel & RTFS_SEL_ERRORS))
			err = add(ns, &l, dir, "errors", 1);
		if (!err)
			err = add(ns, &l, dir, "by-service", 1);
		break;
	case RTFS_SEVDIR:
		for (int c = 0; c < RTFS_NCLS && !err; c++)
			err = add(ns, &l, dir, class_names[c], 1);
		break;
	case RTFS_SLICES:
		if (!err)
			err = list_slices(fs, &l, dir);
		break;
	case RTFS_SINCE:
		break; /* any sequence number can be looked up */
	case RTFS_TRACES:
		if (!err)
			err = list_traces(fs, &l, dir);
		break;
	case RTFS_TAILDIR:
		if (!err)
			err = add(ns, &l, dir, "all", 0);
		if (!err)
			err = add(ns, &l, dir, "by-service", 1);
		break;
	case RTFS_TAILSVC:
		filter_init(&f, dir->hid, RTFS_SEV_ALL);
		if (!err)
			err = list_services(fs, &l, dir, &f);
		break;
	default:
		err = -ENOTDIR;
	}
	if (err) {
		free(l.e);
		return err;
	}
	*out = l.e;
	return l.n;
}
