/* SPDX-License-Identifier: MIT */
/* spool.c - the spool directory: meta, lock, published state, segments. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "rtspool.h"

/* ------------------------------------------------------------------------
 * Why the last call failed, in words (rt_spool_why)
 * ------------------------------------------------------------------------ */

static __thread char why_buf[512];
static __thread int why_err;

static int fail_why(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail_why(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why_buf, sizeof(why_buf), fmt, ap);
	va_end(ap);
	why_err = err;
	return err;
}

const char *rt_spool_why(int err)
{
	return err && err == why_err && why_buf[0] ? why_buf : strerror(-err);
}

/* ------------------------------------------------------------------------
 * Paths beneath a directory, never through a link
 * ------------------------------------------------------------------------ */

int rt_openat_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
	struct open_how how;
	long fd;

	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW);
	how.mode = (flags & O_CREAT) ? mode : 0;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	if (fd < 0 && (errno == ENOSYS || errno == EPERM) && !strchr(path, '/') &&
	    strcmp(path, "..") != 0) {
		/* No openat2 (or a seccomp filter refusing it): one name
		 * beneath @dirfd, its last (only) component not followed, is
		 * the same thing. */
		fd = openat(dirfd, path, flags | O_CLOEXEC | O_NOFOLLOW, mode);
	}
	if (fd < 0) {
		int err = errno;
		struct stat st;
		/* O_DIRECTORY on a link says ENOTDIR: say what it is. */
		if (err == ENOTDIR && !strchr(path, '/') &&
		    fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
			err = ELOOP;
		return err == EXDEV || err == ELOOP ? -ELOOP : -err;
	}
	return (int)fd;
}

int rt_dir_check(int fd, const char *what)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return fail_why(-ENOTDIR, "%s is not a directory", what);
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return fail_why(-EPERM,
				"%s is owned by uid %u, not by this user (uid %u) or root: refused, "
				"since its owner could plant links in it",
				what, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return fail_why(-EPERM,
				"%s is writable by %s (mode %04o): refused, since they could plant "
				"links in it (chmod go-w)",
				what, (st.st_mode & S_IWOTH) ? "everyone" : "its group",
				(unsigned)(st.st_mode & 07777));
	return 0;
}

/* ------------------------------------------------------------------------
 * Shared state files: mapped only when whole, read without SIGBUS
 * ------------------------------------------------------------------------ */

int rt_map_state_file(int dirfd, const char *name, size_t size, int writable, void **out)
{
	struct stat st;
	void *m;
	int fd, err = 0;

	fd = rt_openat_beneath(dirfd, name, writable ? O_RDWR | O_CREAT : O_RDONLY | O_NONBLOCK,
			       0644);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0)
		err = -errno;
	else if (!S_ISREG(st.st_mode))
		err = -EBADMSG;
	else if (writable && (st.st_uid != geteuid() || st.st_nlink != 1))
		err = -EPERM; /* not a file of ours alone: never write through it */
	else if (writable && st.st_size < (off_t)size && ftruncate(fd, (off_t)size) < 0)
		err = -errno;
	else if (!writable && st.st_size < (off_t)size)
		err = -EBADMSG;
	if (err) {
		close(fd);
		return err;
	}
	m = mmap(NULL, size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
	err = m == MAP_FAILED ? -errno : 0;
	close(fd);
	if (!err)
		*out = m;
	return err;
}

/*
 * Reading a mapping that may shrink under us. A page past the end of the
 * file raises SIGBUS on access; a guard turns that into -EFAULT for the
 * copies made here, and only those. The handler is the one of ringtail.h
 * (rt__on_sigbus_v1: one per program, shared with the writer's and the
 * consumer's ring mappings), installed on first use:
 *
 *  - a thread arms a jump (rt__bus_jump_v1) with the address range it
 *    copies from; a fault (BUS_ADRERR) inside that range in that thread
 *    jumps back (siglongjmp; the handler runs with SA_NODEFER, so SIGBUS
 *    stays unblocked and no signal mask needs restoring);
 *  - anything else goes to the ring mappings' zero-page guard, then to
 *    whatever handler was there before, or to the default action (the
 *    access is made again and kills; a SIGBUS sent by kill() is raised
 *    again).
 *
 * Where no handler can be installed, the kernel makes the copies instead
 * (process_vm_readv on ourselves fails with EFAULT): about 3 us each, where
 * the guarded copy costs tens of nanoseconds.
 */
static pthread_once_t bus_once = PTHREAD_ONCE_INIT;
static int bus_ok;

static void bus_jump(void *arg)
{
	siglongjmp(*(sigjmp_buf *)arg, 1);
}

/* ThreadSanitizer runs a handler of its own in front of ours that does not
 * let a fault inside its instrumented loads jump back (the access is made
 * again and kills): there the kernel copies. */
#if defined(__SANITIZE_THREAD__)
#define RT_NO_SIGBUS_GUARD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RT_NO_SIGBUS_GUARD 1
#endif
#endif

static void bus_install(void)
{
#ifdef RT_NO_SIGBUS_GUARD
	return;
#endif
	bus_ok = rt__guard_install_v1() == 0;
}

/* The kernel's copy: no signal, EFAULT where the file has no page. */
static int vm_read(void *dst, const void *src, size_t n)
{
	struct iovec l = {dst, n}, r = {(void *)(uintptr_t)src, n};
	ssize_t got = process_vm_readv(getpid(), &l, 1, &r, 1, 0);

	if (got == (ssize_t)n)
		return 0;
	if (got >= 0 || errno == EFAULT)
		return -EFAULT;
	return -errno;
}

/*
 * Copy @n bytes from @src to @dst under the guard; with @gen_off <
 * SIZE_MAX as a sequence lock: the u64 at @gen_off before (even) and after
 * the copy must agree.
 */
static int guarded_copy(const void *src, void *dst, size_t n, size_t gen_off)
{
	const uint64_t *gp = (const uint64_t *)(const void *)((const uint8_t *)src +
							      (gen_off == SIZE_MAX ? 0 : gen_off));
	struct rt__bus_jump bj;
	sigjmp_buf jb;
	int err = -EAGAIN;

	pthread_once(&bus_once, bus_install);
	if (!bus_ok) {
		if (gen_off == SIZE_MAX)
			return vm_read(dst, src, n);
		for (int tries = 0; tries < 1000; tries++) {
			uint64_t g1, g2;
			if ((err = vm_read(&g1, gp, 8)) != 0)
				return err;
			if (g1 & 1)
				continue;
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if ((err = vm_read(dst, src, n)) != 0)
				return err;
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if ((err = vm_read(&g2, gp, 8)) != 0)
				return err;
			if (g1 == g2) {
				memcpy((uint8_t *)dst + gen_off, &g1, 8);
				return 0;
			}
		}
		return -EAGAIN;
	}
	if (sigsetjmp(jb, 0))
		return -EFAULT; /* the handler disarmed the guard */
	bj.lo = (uintptr_t)src;
	bj.hi = bj.lo + (gen_off != SIZE_MAX && gen_off + 8 > n ? gen_off + 8 : n);
	bj.fn = bus_jump;
	bj.arg = &jb;
	/* The compiler keeps the copies inside the armed stretch. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	rt__bus_jump_v1 = &bj;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (gen_off == SIZE_MAX) {
		memcpy(dst, src, n);
		err = 0;
	} else {
		for (int tries = 0; tries < 1000; tries++) {
			/* The writer makes gen odd (relaxed), then a release
			 * fence, then the fields, then gen even (release):
			 * this acquire load pairs with that release store, the
			 * fence below with the writer's release fence. */
			uint64_t g1 = __atomic_load_n(gp, __ATOMIC_ACQUIRE), g2;
			if (g1 & 1)
				continue;
			memcpy(dst, src, n);
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			g2 = __atomic_load_n(gp, __ATOMIC_RELAXED);
			if (g1 == g2) {
				memcpy((uint8_t *)dst + gen_off, &g1, 8);
				err = 0;
				break;
			}
		}
	}
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	rt__bus_jump_v1 = NULL;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	return err;
}

int rt_shared_read(void *dst, const void *src, size_t n)
{
	return guarded_copy(src, dst, n, SIZE_MAX);
}

int rt_shared_snapshot(const void *src, void *dst, size_t n, size_t gen_off)
{
	return guarded_copy(src, dst, n, gen_off);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void rt_epoch_hex(const uint8_t epoch[16], char out[33])
{
	static const char hx[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hx[epoch[i] >> 4];
		out[2 * i + 1] = hx[epoch[i] & 15];
	}
	out[32] = '\0';
}

int rt_state_read(const struct rt_spool_state *st, struct rt_spool_state *out)
{
	/* Only the fields: the rest of the page is padding. */
	return rt_shared_snapshot(st, out, offsetof(struct rt_spool_state, pad1),
				  offsetof(struct rt_spool_state, gen));
}

/* Read spool.meta. */
static int read_meta(struct rt_spool *sp)
{
	char buf[1024], *line, *save = NULL;
	int fd = rt_openat_beneath(sp->dirfd, "spool.meta", O_RDONLY | O_NONBLOCK, 0), seen = 0;
	struct stat st;
	ssize_t n;

	if (fd < 0)
		return fd == -ELOOP ? fail_why(fd, "%s/spool.meta is a symbolic link: not followed",
					       sp->path)
				    : fd;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail_why(-EBADMSG, "%s/spool.meta is not a regular file", sp->path);
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EBADMSG;
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *sp_ = strchr(line, ' ');
		if (!sp_)
			return -EBADMSG;
		*sp_++ = '\0';
		if (!strcmp(line, "ringtail-spool")) {
			if (strcmp(sp_, "1"))
				return -EPROTONOSUPPORT;
			seen |= 1;
		} else if (!strcmp(line, "epoch")) {
			if (rt_parse_hex(sp_, sp->epoch, 16, RT_HEX_LOWER))
				return -EBADMSG;
			seen |= 2;
		} else if (!strcmp(line, "host")) {
			if (!*sp_ || strlen(sp_) >= sizeof(sp->host) || strchr(sp_, '/'))
				return -EBADMSG;
			strcpy(sp->host, sp_);
			seen |= 4;
		} else if (!strcmp(line, "created")) {
			sp->created_ns = strtoull(sp_, NULL, 10);
		}
	}
	return seen == 7 ? 0 : -EBADMSG;
}

/* Make spool.meta, atomically (a temporary file renamed into place), with
 * @epoch or a new random one. */
static int write_meta(struct rt_spool *sp, const char *host, const uint8_t *epoch)
{
	char buf[512], hex[33];
	int fd, n, err = 0;

	if (epoch)
		memcpy(sp->epoch, epoch, 16);
	else if (getrandom(sp->epoch, 16, 0) != 16)
		return -EIO;
	if (host) {
		if (!*host || strlen(host) >= sizeof(sp->host) || strchr(host, '/') ||
		    strchr(host, ' ') || strchr(host, '\n'))
			return -EINVAL;
		strcpy(sp->host, host);
	} else {
		char *dot;
		if (gethostname(sp->host, sizeof(sp->host) - 1) < 0)
			strcpy(sp->host, "localhost");
		sp->host[sizeof(sp->host) - 1] = '\0';
		dot = strchr(sp->host, ' ');
		if (dot)
			*dot = '\0';
	}
	sp->created_ns = now_ns();
	rt_epoch_hex(sp->epoch, hex);
	n = snprintf(buf, sizeof(buf), "ringtail-spool 1\nepoch %s\nhost %s\ncreated %" PRIu64 "\n",
		     hex, sp->host, sp->created_ns);
	/* A new file of our own (O_EXCL follows nothing); a leftover of a run
	 * that died here goes first. */
	unlinkat(sp->dirfd, "spool.meta.tmp", 0);
	fd = rt_openat_beneath(sp->dirfd, "spool.meta.tmp", O_WRONLY | O_CREAT | O_EXCL, 0640);
	if (fd < 0)
		return fd;
	if (write(fd, buf, (size_t)n) != n || fsync(fd) < 0)
		err = -errno ? -errno : -EIO;
	close(fd);
	if (!err && renameat(sp->dirfd, "spool.meta.tmp", sp->dirfd, "spool.meta") < 0)
		err = -errno;
	if (!err && fsync(sp->dirfd) < 0)
		err = -errno;
	return err;
}

static int map_state(struct rt_spool *sp, int writable)
{
	void *m;
	int err = rt_map_state_file(sp->dirfd, "state", sizeof(struct rt_spool_state), writable, &m);

	if (err == -ELOOP)
		return fail_why(err, "%s/state is a symbolic link: not followed", sp->path);
	if (err == -EPERM)
		return fail_why(err, "%s/state is not a file of this user's alone (owner or links)",
				sp->path);
	if (err == -EBADMSG && writable)
		return fail_why(err, "%s/state is not a regular file", sp->path);
	if (err)
		return err;
	sp->state = m;
	if (writable && memcmp(sp->state->magic, RT_STATE_MAGIC, 8) != 0) {
		memset(sp->state, 0, sizeof(*sp->state));
		memcpy(sp->state->magic, RT_STATE_MAGIC, 8);
		sp->state->version = RT_STATE_VERSION;
	}
	if (writable)
		memcpy(sp->state->epoch, sp->epoch, 16);
	return 0;
}

int rt_spool_map_state(struct rt_spool *sp)
{
	return sp->state ? 0 : map_state(sp, 0);
}

/*
 * Open (with RT_SPOOL_CREATE make) the directory: @path as given (the
 * administrator's choice, links and all) when @basefd is -1, else @path's
 * components one by one beneath @basefd, never through a link. A writer
 * (RT_SPOOL_LOCK) only uses directories of its own that nobody else can
 * write to, as ssh does a key file.
 */
static int open_dir(int basefd, const char *path, unsigned flags)
{
	int lock = (flags & RT_SPOOL_LOCK) != 0, fd, err;
	char comp[256], shown[4096];
	const char *p = path;

	if (basefd < 0) {
		if ((flags & RT_SPOOL_CREATE) && mkdir(path, 0750) < 0 && errno != EEXIST)
			return fail_why(-errno, "cannot make %s: %s", path, strerror(errno));
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (lock && (err = rt_dir_check(fd, path)) != 0) {
			close(fd);
			return err;
		}
		return fd;
	}
	fd = dup(basefd);
	if (fd < 0)
		return -errno;
	shown[0] = '\0';
	while (*p) {
		size_t n = strcspn(p, "/");
		int next;
		if (n == 0) {
			p++;
			continue;
		}
		if (n >= sizeof(comp) || (n == 1 && p[0] == '.') || (n == 2 && !strncmp(p, "..", 2))) {
			close(fd);
			return -EINVAL;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		p += n;
		snprintf(shown + strlen(shown), sizeof(shown) - strlen(shown), "%s%s",
			 shown[0] ? "/" : "", comp);
		if ((flags & RT_SPOOL_CREATE) && mkdirat(fd, comp, 0750) < 0 && errno != EEXIST) {
			err = fail_why(-errno, "cannot make %s: %s", shown, strerror(errno));
			close(fd);
			return err;
		}
		next = rt_openat_beneath(fd, comp, O_RDONLY | O_DIRECTORY, 0);
		close(fd);
		if (next < 0)
			return next == -ELOOP ? fail_why(next, "%s is a symbolic link: not followed",
							 shown)
					      : next;
		fd = next;
		if (lock && (err = rt_dir_check(fd, shown)) != 0) {
			close(fd);
			return err;
		}
	}
	return fd;
}

static int spool_open(int basefd, const char *path, const char *host, const uint8_t *epoch,
		      unsigned flags, struct rt_spool **out)
{
	struct rt_spool *sp;
	struct stat st;
	int err;

	why_buf[0] = '\0';
	why_err = 0;
	if (strlen(path) >= sizeof(sp->path))
		return -ENAMETOOLONG;
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	sp->lockfd = -1;
	strcpy(sp->path, path);
	sp->dirfd = open_dir(basefd, path, flags);
	if (sp->dirfd < 0) {
		err = sp->dirfd;
		free(sp);
		return err;
	}
	if (flags & RT_SPOOL_LOCK) {
		sp->lockfd = rt_openat_beneath(sp->dirfd, "lock", O_RDWR | O_CREAT, 0640);
		if (sp->lockfd < 0) {
			err = sp->lockfd == -ELOOP
				      ? fail_why(-ELOOP, "%s/lock is a symbolic link: not followed", path)
				      : sp->lockfd;
			goto fail;
		}
		if (fstat(sp->lockfd, &st) < 0 || !S_ISREG(st.st_mode)) {
			err = fail_why(-EBADMSG, "%s/lock is not a regular file", path);
			goto fail;
		}
		if (flock(sp->lockfd, LOCK_EX | LOCK_NB) < 0) {
			err = errno == EWOULDBLOCK ? -EBUSY : -errno;
			goto fail;
		}
	}
	err = read_meta(sp);
	if (err == -ENOENT && (flags & RT_SPOOL_CREATE))
		err = write_meta(sp, host, epoch);
	else if (!err && epoch && (memcmp(sp->epoch, epoch, 16) || strcmp(sp->host, host)))
		err = -EBADMSG; /* another sender's spool at this path */
	if (err)
		goto fail;
	if (flags & RT_SPOOL_LOCK) {
		/* quarantine/ must be a directory of ours, not a link. */
		int qfd;
		if ((flags & RT_SPOOL_CREATE) && mkdirat(sp->dirfd, "quarantine", 0750) < 0 &&
		    errno != EEXIST) {
			err = -errno;
			goto fail;
		}
		qfd = rt_openat_beneath(sp->dirfd, "quarantine", O_RDONLY | O_DIRECTORY, 0);
		if (qfd == -ELOOP) {
			err = fail_why(qfd, "%s/quarantine is a symbolic link: not followed (remove it)",
				       path);
			goto fail;
		}
		if (qfd >= 0) {
			char what[4200];
			snprintf(what, sizeof(what), "%s/quarantine", path);
			err = rt_dir_check(qfd, what);
			close(qfd);
			if (err)
				goto fail;
		} else if (qfd != -ENOENT) {
			err = qfd;
			goto fail;
		}
	}
	err = map_state(sp, (flags & RT_SPOOL_LOCK) != 0);
	if (err && (flags & RT_SPOOL_LOCK))
		goto fail;
	*out = sp;
	return 0;
fail:
	rt_spool_close(sp);
	return err;
}

int rt_spool_open(const char *path, const char *host, unsigned flags, struct rt_spool **out)
{
	return spool_open(-1, path, host, NULL, flags, out);
}

int rt_spool_open_as(const char *path, const char *host, const uint8_t epoch[16], unsigned flags,
		     struct rt_spool **out)
{
	return spool_open(-1, path, host, epoch, flags, out);
}

int rt_spool_openat(int basefd, const char *rel, const char *host, const uint8_t epoch[16],
		    unsigned flags, struct rt_spool **out)
{
	if (basefd < 0)
		return -EBADF;
	return spool_open(basefd, rel, host, epoch, flags, out);
}

void rt_spool_close(struct rt_spool *sp)
{
	if (!sp)
		return;
	if (sp->state)
		munmap(sp->state, sizeof(*sp->state));
	if (sp->lockfd >= 0)
		close(sp->lockfd);
	close(sp->dirfd);
	free(sp);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int rt_spool_list(struct rt_spool *sp, uint64_t **seqs)
{
	int fd = dup(sp->dirfd), n = 0, cap = 0;
	uint64_t *v = NULL, seq;
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		if (rt_seg_parse_name(de->d_name, &seq))
			continue;
		if (n == cap) {
			uint64_t *nv;
			cap = cap ? cap * 2 : 64;
			nv = realloc(v, (size_t)cap * sizeof(*v));
			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[n++] = seq;
	}
	closedir(d);
	if (n > 1)
		qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	*seqs = v;
	return n;
}

/* quarantine/, made if missing; a directory of ours, never a link. */
static int open_quarantine(struct rt_spool *sp)
{
	char what[4200];
	int qfd, err;

	if (mkdirat(sp->dirfd, "quarantine", 0750) < 0 && errno != EEXIST)
		return -errno;
	qfd = rt_openat_beneath(sp->dirfd, "quarantine", O_RDONLY | O_DIRECTORY, 0);
	if (qfd < 0)
		return qfd == -ELOOP ? fail_why(qfd, "%s/quarantine is a symbolic link: not followed",
						sp->path)
				     : qfd;
	snprintf(what, sizeof(what), "%s/quarantine", sp->path);
	if ((err = rt_dir_check(qfd, what)) != 0) {
		close(qfd);
		return err;
	}
	return qfd;
}

int rt_spool_quarantine(struct rt_spool *sp, const char *name, const char *as, char *dst,
			size_t dstlen)
{
	char buf[512];
	int qfd, err = 0;

	qfd = open_quarantine(sp);
	if (qfd < 0)
		return qfd;
	/* Never over an earlier quarantined file: renameat2 with NOREPLACE
	 * (a link planted there is not followed either way). */
	for (int i = 0;; i++) {
		if (i == 0)
			snprintf(buf, sizeof(buf), "%s", as ? as : name);
		else
			snprintf(buf, sizeof(buf), "%s.%d", as ? as : name, i);
		if (renameat2(sp->dirfd, name, qfd, buf, RENAME_NOREPLACE) == 0)
			break;
		if (errno != EEXIST || i == 999) {
			err = -errno;
			break;
		}
	}
	if (!err && (fsync(qfd) < 0 || fsync(sp->dirfd) < 0))
		err = -errno;
	close(qfd);
	if (!err && dst)
		snprintf(dst, dstlen, "quarantine/%s", buf);
	return err;
}

/* Does file @fd hold exactly bytes [@off, @end) of @in? */
static int same_bytes(int fd, int in, uint64_t off, uint64_t end)
{
	uint8_t a[16384], b[16384];
	struct stat st;
	uint64_t pos = 0;

	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != end - off)
		return 0;
	while (off + pos < end) {
		size_t n = end - off - pos < sizeof(a) ? (size_t)(end - off - pos) : sizeof(a);
		if (pread(fd, a, n, (off_t)pos) != (ssize_t)n ||
		    pread(in, b, n, (off_t)(off + pos)) != (ssize_t)n || memcmp(a, b, n))
			return 0;
		pos += n;
	}
	return 1;
}

int rt_spool_quarantine_copy(struct rt_spool *sp, int in, const char *name, uint64_t off,
			     uint64_t end, char *dst, size_t dstlen)
{
	char buf[512], base[256];
	int qfd, out = -1, err = 0;

	qfd = open_quarantine(sp);
	if (qfd < 0)
		return qfd;
	snprintf(base, sizeof(base), "%s.damaged-%" PRIu64, name, off);
	for (int i = 0;; i++) {
		if (i == 0)
			snprintf(buf, sizeof(buf), "%s", base);
		else
			snprintf(buf, sizeof(buf), "%s.%d", base, i);
		out = rt_openat_beneath(qfd, buf, O_WRONLY | O_CREAT | O_EXCL, 0640);
		if (out >= 0)
			break;
		if (out != -EEXIST || i == 999) {
			err = out;
			goto done;
		}
		/* There already: the same bytes (a repair done again after a
		 * crash) need no second copy. */
		{
			int ex = rt_openat_beneath(qfd, buf, O_RDONLY | O_NONBLOCK, 0), same;
			same = ex >= 0 && same_bytes(ex, in, off, end);
			if (ex >= 0)
				close(ex);
			if (same)
				goto done;
		}
	}
	{
		char b[65536];
		uint64_t pos = off;
		while (pos < end) {
			size_t n = end - pos < sizeof(b) ? (size_t)(end - pos) : sizeof(b);
			ssize_t r = pread(in, b, n, (off_t)pos);
			if (r <= 0) {
				err = r < 0 ? -errno : -EIO;
				break;
			}
			if (write(out, b, (size_t)r) != r) {
				err = -errno ? -errno : -EIO;
				break;
			}
			pos += (uint64_t)r;
		}
	}
	if (!err && fsync(out) < 0)
		err = -errno;
	close(out);
	if (err)
		unlinkat(qfd, buf, 0);
	else if (fsync(qfd) < 0)
		err = -errno;
done:
	close(qfd);
	if (!err && dst)
		snprintf(dst, dstlen, "quarantine/%s", buf);
	return err;
}

int rt_spool_retain(struct rt_spool *sp, uint64_t current, const struct rt_retain *lim,
		    rt_log_fn log, void *arg)
{
	uint64_t *seqs = NULL, total = 0, now = now_ns(), *sizes = NULL, *mtimes = NULL;
	char name[32], msg[512];
	int n, i, removed = 0;

	n = rt_spool_list(sp, &seqs);
	if (n <= 1) {
		free(seqs);
		return n < 0 ? n : 0;
	}
	sizes = calloc((size_t)n, sizeof(*sizes));
	mtimes = calloc((size_t)n, sizeof(*mtimes));
	if (!sizes || !mtimes) {
		removed = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct stat st;
		rt_seg_name(name, seqs[i]);
		if (fstatat(sp->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			sizes[i] = (uint64_t)st.st_size;
			mtimes[i] = (uint64_t)st.st_mtim.tv_sec * 1000000000ull +
				    (uint64_t)st.st_mtim.tv_nsec;
		}
		total += sizes[i];
	}
	/* Oldest first; never the segment being written (nor anything after
	 * it), whose last record is known from the next one's name. */
	for (i = 0; i < n - 1 && seqs[i] < current; i++) {
		uint64_t last = seqs[i + 1] - 1;
		int over_size = total > lim->bytes;
		int over_age = lim->age_ns && now - mtimes[i] > lim->age_ns;
		int forwarded = lim->acked_seq == UINT64_MAX || last <= lim->acked_seq;
		int hard = total > lim->hard_bytes;

		if (!over_size && !over_age)
			break;
		if (!forwarded && !hard)
			break; /* kept for the upstream, until the hard limit */
		rt_seg_name(name, seqs[i]);
		if (unlinkat(sp->dirfd, name, 0) < 0)
			continue;
		total -= sizes[i];
		removed++;
		if (log) {
			if (forwarded)
				snprintf(msg, sizeof(msg),
					 "removed segment %s (records #%llu to #%llu) to keep the spool "
					 "within its %s limit",
					 name, (unsigned long long)seqs[i], (unsigned long long)last,
					 over_size ? "size" : "age");
			else
				snprintf(msg, sizeof(msg),
					 "gave up records #%llu to #%llu (segment %s) before they were "
					 "forwarded upstream: the spool passed its hard limit of %llu bytes",
					 (unsigned long long)(lim->acked_seq + 1 > seqs[i]
								      ? lim->acked_seq + 1
								      : seqs[i]),
					 (unsigned long long)last, name, (unsigned long long)lim->hard_bytes);
			log(arg, forwarded ? RT_INFO : RT_ERROR, msg);
		}
	}
out:
	free(seqs);
	free(sizes);
	free(mtimes);
	return removed;
}
