/* SPDX-License-Identifier: MIT */
/*
 * ops.c - the FUSE low-level operations of ringtailfs.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "live.h"
#include "names.h"
#include "ops.h"
#include "read.h"
#include "stats.h"

#define PAGE 4096u

/* What an open file or directory holds. */
/*
 * An open file or directory. The kernel's handle holds one reference and
 * every request working on it one more: the last one frees it. A RELEASE can
 * come while a reply of a READ is still being written (the reader returned,
 * closed, and the kernel moved on) or while a READ of a reader that was
 * killed is still being worked on.
 */
struct fh {
	int refs;
	struct rtfs_node *node;
	struct rtfs_rstate rs;      /* VIEW */
	struct rtfs_tail *tail;     /* TAIL */
	char *text;                 /* STATS: the snapshot read from */
	size_t len;
	struct rtfs_dirent *ents;   /* directories: the listing */
	int nents;
};

static struct rtfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct fh *fh_new(struct rtfs_node *n)
{
	struct fh *h = calloc(1, sizeof(*h));

	if (h) {
		h->refs = 1;
		h->node = n;
	}
	return h;
}

static struct fh *fh_get(struct fuse_file_info *fi)
{
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;

	__atomic_add_fetch(&h->refs, 1, __ATOMIC_RELAXED);
	return h;
}

/* Drop a reference; the last one frees the handle and what it holds. */
static void fh_put(struct rtfs *fs, struct fh *h)
{
	if (__atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	rtfs_tail_release(fs, h->tail);
	free(h->text);
	free(h->ents);
	rtfs_node_put(fs->names, h->node);
	free(h);
}

/* ------------------------------------------------------------------------
 * Attributes
 * ------------------------------------------------------------------------ */

/* The size of @n's file now (brought up to date with the index). */
static uint64_t file_size(struct rtfs *fs, struct rtfs_node *n)
{
	if (n->kind == RTFS_VIEW) {
		rtfs_view_update(fs->m, n->view);
		return rtfs_view_size(n->view);
	}
	if (n->kind == RTFS_TRACE) {
		rtfs_tview_update(fs->m, n->tview);
		return rtfs_tview_size(n->tview);
	}
	return 0;
}

static void node_attr(struct rtfs *fs, struct rtfs_node *n, struct stat *st)
{
	uint64_t mtime = fs->start_ns;

	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_blksize = fs->o.blksize;
	if (rtfs_node_is_dir(n)) {
		st->st_mode = S_IFDIR | fs->dmode;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | fs->fmode;
		st->st_nlink = 1;
		st->st_size = (off_t)file_size(fs, n);
		if (n->kind == RTFS_STATS) {
			char *text;
			size_t len;
			if (rtfs_stats_text(fs, n->hid, &text, &len) == 0) {
				st->st_size = (off_t)len;
				free(text);
			}
		}
		st->st_blocks = (st->st_size + 511) / 512;
		if (n->kind == RTFS_VIEW && n->view->mtime_ns)
			mtime = n->view->mtime_ns;
		else if (n->kind == RTFS_TRACE && n->tview->mtime_ns)
			mtime = n->tview->mtime_ns;
	}
	st->st_mtim.tv_sec = (time_t)(mtime / 1000000000u);
	st->st_mtim.tv_nsec = (long)(mtime % 1000000000u);
	st->st_ctim = st->st_mtim;
	st->st_atim = st->st_mtim;
}

/* Sizes of files change: never let the kernel keep them. */
static double attr_timeout(const struct rtfs_node *n)
{
	return n->kind == RTFS_VIEW || n->kind == RTFS_TRACE || n->kind == RTFS_STATS ? 0.0 : 1.0;
}

/* ------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------ */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct rtfs *fs = userdata;

	/* Must equal -o max_read (main() passes both). */
	conn->max_read = fs->o.max_read;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	/* Without FUSE_CAP_EXPLICIT_INVAL_DATA the kernel drops a file's
	 * cached pages when it learns a new size: the page that held the old
	 * end of file (zeros past it) must not outlive growth, and only the
	 * kernel can drop it without racing our own replies (a notification
	 * from us would make the reply carrying the new size stale). A file
	 * whose size has not changed keeps its cache. */
	conn->want &= ~FUSE_CAP_EXPLICIT_INVAL_DATA;
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	conn->want &= ~FUSE_CAP_READDIRPLUS;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	fs->initialised = 1;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct rtfs *fs = fs_of(req);
	struct fuse_entry_param e;
	struct rtfs_node *p, *n;
	int err;

	rtfs_model_refresh(fs->m, 0);
	p = rtfs_node_get(fs->names, parent);
	if (!p) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	err = rtfs_node_lookup(fs, p, name, &n);
	rtfs_node_put(fs->names, p);
	if (err) {
		fuse_reply_err(req, -err);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = n->ino;
	node_attr(fs, n, &e.attr);
	e.attr_timeout = attr_timeout(n);
	e.entry_timeout = 1.0;
	if (fuse_reply_entry(req, &e) != 0)
		rtfs_node_forget(fs->names, n->ino, 1);
	rtfs_node_put(fs->names, n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	rtfs_node_forget(fs_of(req)->names, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct rtfs *fs = fs_of(req);

	for (size_t i = 0; i < count; i++)
		rtfs_node_forget(fs->names, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rtfs *fs = fs_of(req);
	struct rtfs_node *n;
	struct stat st;

	rtfs_model_refresh(fs->m, 0);
	n = rtfs_node_get(fs->names, ino);
	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	node_attr(fs, n, &st);
	fuse_reply_attr(req, &st, attr_timeout(n));
	rtfs_node_put(fs->names, n);
}

/* ------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------ */

/* A handle on node @ino, which must be a directory if @dir and a file if
 * not; NULL once the error is replied. */
static struct fh *open_fh(struct rtfs *fs, fuse_req_t req, fuse_ino_t ino, int dir)
{
	struct rtfs_node *n;
	struct fh *h;

	rtfs_model_refresh(fs->m, 0);
	n = rtfs_node_get(fs->names, ino);
	if (!n) {
		fuse_reply_err(req, ENOENT);
		return NULL;
	}
	if (rtfs_node_is_dir(n) != dir) {
		rtfs_node_put(fs->names, n);
		fuse_reply_err(req, dir ? ENOTDIR : EISDIR);
		return NULL;
	}
	h = fh_new(n);
	if (!h) {
		rtfs_node_put(fs->names, n);
		fuse_reply_err(req, ENOMEM);
	}
	return h;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rtfs *fs = fs_of(req);
	struct rtfs_node *n;
	struct fh *h;
	int err = 0;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	h = open_fh(fs, req, ino, 0);
	if (!h)
		return;
	n = h->node;
	switch (n->kind) {
	case RTFS_VIEW:
	case RTFS_TRACE:
		/* What is at an offset never changes: keep the page cache. */
		fi->keep_cache = 1;
		break;
	case RTFS_TAIL:
		fi->direct_io = 1;
		fi->nonseekable = 1;
		err = rtfs_tail_open(fs, n, fi->flags, &h->tail);
		break;
	case RTFS_STATS:
		fi->direct_io = 1;
		err = rtfs_stats_text(fs, n->hid, &h->text, &h->len);
		break;
	default:
		err = -EISDIR;
	}
	if (err) {
		fh_put(fs, h);
		fuse_reply_err(req, -err);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_open(req, fi) != 0)
		fh_put(fs, h); /* the opener went away: no release will come */
}

static void read_fh(struct rtfs *fs, fuse_req_t req, struct fh *h, size_t size, off_t off)
{
	struct rtfs_node *n = h->node;
	long r;

	switch (n->kind) {
	case RTFS_VIEW:
		if ((uint64_t)off + size > rtfs_view_size(n->view)) {
			rtfs_model_refresh(fs->m, 0);
			rtfs_view_update(fs->m, n->view);
		}
		r = rtfs_read_view(fs, req, n->view, (uint64_t)off, size, &h->rs);
		if (r < 0)
			fuse_reply_err(req, (int)-r);
		return;
	case RTFS_TRACE: {
		char *buf = malloc(size ? size : 1);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		rtfs_model_refresh(fs->m, 0);
		rtfs_tview_update(fs->m, n->tview);
		r = rtfs_tview_read(fs->m, n->tview, (uint64_t)off, size, buf);
		if (r < 0)
			fuse_reply_err(req, (int)-r);
		else
			fuse_reply_buf(req, buf, (size_t)r);
		free(buf);
		return;
	}
	case RTFS_TAIL:
		rtfs_tail_read(fs, h->tail, req, size);
		return;
	case RTFS_STATS:
		if ((uint64_t)off >= h->len)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_buf(req, h->text + off,
				       h->len - (size_t)off < size ? h->len - (size_t)off : size);
		return;
	default:
		fuse_reply_err(req, EISDIR);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct rtfs *fs = fs_of(req);
	struct fh *h = fh_get(fi);

	read_fh(fs, req, h, size, off);
	fh_put(fs, h);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fh_put(fs_of(req), (struct fh *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		    struct fuse_pollhandle *ph)
{
	struct rtfs *fs = fs_of(req);
	struct fh *h = fh_get(fi);

	if (h->tail) {
		rtfs_tail_poll(fs, h->tail, req, ph);
		fh_put(fs, h);
		return;
	}
	fh_put(fs, h);
	/* A regular file is always readable (at its end, read returns 0). */
	if (ph)
		fuse_pollhandle_destroy(ph);
	fuse_reply_poll(req, POLLIN | POLLRDNORM);
}

/* ------------------------------------------------------------------------
 * Directories
 * ------------------------------------------------------------------------ */

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rtfs *fs = fs_of(req);
	struct fh *h = open_fh(fs, req, ino, 1);
	int cnt;

	if (!h)
		return;
	cnt = rtfs_dir_list(fs, h->node, &h->ents);
	if (cnt < 0) {
		fh_put(fs, h);
		fuse_reply_err(req, -cnt);
		return;
	}
	h->nents = cnt;
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_open(req, fi) != 0)
		fh_put(fs, h);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct rtfs *fs = fs_of(req);
	struct fh *h = fh_get(fi);
	char *buf = malloc(size ? size : 1);
	size_t used = 0;

	if (!buf) {
		fh_put(fs, h);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (int i = (int)off; i < h->nents; i++) {
		struct stat st;
		size_t need;

		memset(&st, 0, sizeof(st));
		st.st_ino = h->ents[i].ino;
		st.st_mode = h->ents[i].dir ? S_IFDIR : S_IFREG;
		need = fuse_add_direntry(req, buf + used, size - used, h->ents[i].name, &st, i + 1);
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
	fh_put(fs, h);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fh_put(fs_of(req), (struct fh *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = PAGE;
	sv.f_frsize = PAGE;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

const struct fuse_lowlevel_ops rtfs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.poll = op_poll,
};

int rtfs_setup(struct rtfs *fs)
{
	int err = rtfs_views_new(fs->m, &fs->vs);

	if (!err)
		err = rtfs_cache_new(fs->m, fs->o.cache_bytes, fs->o.workers, &fs->cache);
	if (!err)
		err = rtfs_names_new(fs, &fs->names);
	return err;
}

void rtfs_teardown(struct rtfs *fs)
{
	rtfs_live_stop(fs);
	rtfs_cache_free(fs->cache);
	fs->cache = NULL;
	rtfs_names_free(fs->names);
	fs->names = NULL;
	rtfs_views_free(fs->vs);
	fs->vs = NULL;
	rtfs_model_close(fs->m);
	fs->m = NULL;
}
