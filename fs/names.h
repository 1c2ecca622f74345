/* SPDX-License-Identifier: MIT */
/*
 * names.h - the tree ringtailfs shows, and its inode numbers.
 *
 *   /all  /stats  /by-service/NAME  /errors/{all,by-service/NAME}
 *   /by-severity/CLASS/{all,by-service/NAME}
 *   /by-day/YYYY-MM-DD/{all,by-service/NAME,errors/...}  /by-hour/YYYY-MM-DDTHH/{...}
 *   /since/SEQ/{all,by-service/NAME,errors/...}  (one host's sequence numbers)
 *   /by-trace/TRACE_ID  /tail/{all,by-service/NAME}
 *
 * Service names only ever appear under a by-service/ directory, which holds
 * nothing else: whatever a service is called ("all", "errors", ...), it
 * never shadows a name of the tree.
 *   /by-host/HOST/...   (a central server: the same tree per host)
 *
 * A node's inode number is a hash of its path, so it is the same every time
 * the name is looked up (and in every mount), and readdir can give it
 * without making the node. A node lives while the kernel remembers it
 * (lookups not yet forgotten) or something holds it.
 */
#ifndef RTFS_NAMES_H
#define RTFS_NAMES_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "rtfs.h"

enum rtfs_kind {
	RTFS_ROOT,
	RTFS_HOSTS,   /* /by-host */
	RTFS_HOST,    /* /by-host/HOST: like the root, for one host */
	RTFS_SVCDIR,  /* /by-service: one file per service */
	RTFS_SELDIR,  /* all, by-service/ [, errors/] under one filter */
	RTFS_SEVDIR,  /* /by-severity: one SELDIR per class */
	RTFS_SLICES,  /* /by-day, /by-hour: one SELDIR per slice */
	RTFS_SINCE,   /* /since: one SELDIR per sequence number */
	RTFS_TRACES,  /* /by-trace */
	RTFS_TAILDIR, /* /tail: all, by-service/ */
	RTFS_TAILSVC, /* /tail/by-service: one stream per service */
	RTFS_VIEW,    /* a file of lines */
	RTFS_TRACE,   /* /by-trace/ID */
	RTFS_TAIL,    /* /tail/NAME: a stream */
	RTFS_STATS,   /* /stats */
};

#define RTFS_SEL_ERRORS 0x1 /* an SELDIR with an errors/ subdirectory */

struct rtfs_node {
	uint64_t ino;
	enum rtfs_kind kind;
	int32_t hid;             /* scope: -1 every host */
	struct rtfs_filter f;    /* SELDIR, VIEW, TAIL */
	int sel;                 /* SELDIR: RTFS_SEL_*; SLICES: hours per slice */
	uint8_t trace[16];
	char *path;
	uint64_t phash;
	uint64_t nlookup;        /* the kernel's references */
	int refs;                /* ours: handles, requests in flight */
	struct rtfs_view *view;  /* VIEW, TAIL */
	struct rtfs_tview *tview;
	struct rtfs_node *inext, *pnext;
};

struct rtfs_dirent {
	char name[256];
	uint64_t ino;
	int dir;
};

int rtfs_names_new(struct rtfs *fs, struct rtfs_names **out);
void rtfs_names_free(struct rtfs_names *ns);

/* rtfs_node_get - node @ino with a reference taken, or NULL if unknown. */
struct rtfs_node *rtfs_node_get(struct rtfs_names *ns, uint64_t ino);

/* rtfs_node_put - drop a reference; the node goes when nothing holds it. */
void rtfs_node_put(struct rtfs_names *ns, struct rtfs_node *n);

/*
 * rtfs_node_lookup - the child @name of @parent, with a reference taken and
 * the kernel's lookup count raised by one (the caller replies with it).
 * @return 0; -ENOENT; -ENOTDIR; -ENOMEM.
 */
int rtfs_node_lookup(struct rtfs *fs, struct rtfs_node *parent, const char *name,
		     struct rtfs_node **out);

/* rtfs_node_forget - the kernel dropped @nlookup references to @ino. */
void rtfs_node_forget(struct rtfs_names *ns, uint64_t ino, uint64_t nlookup);

/*
 * rtfs_dir_list - the entries of directory @dir ("." and ".." first).
 * @return the count with *@out malloc'd, or -errno.
 */
int rtfs_dir_list(struct rtfs *fs, struct rtfs_node *dir, struct rtfs_dirent **out);

/* rtfs_node_is_dir - is @n a directory? */
int rtfs_node_is_dir(const struct rtfs_node *n);

/* rtfs_class_name - "TRACE" ... "FATAL" for severity class @c. */
const char *rtfs_class_name(int c);

#endif /* RTFS_NAMES_H */
