/* SPDX-License-Identifier: MIT */
/* spool.c - the spool directory: meta, lock, published state, segments. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rtspool.h"

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
	for (int tries = 0; tries < 1000; tries++) {
		uint64_t g1 = __atomic_load_n(&st->gen, __ATOMIC_ACQUIRE);
		if (g1 & 1)
			continue;
		out->durable_seq = __atomic_load_n(&st->durable_seq, __ATOMIC_RELAXED);
		out->segment = __atomic_load_n(&st->segment, __ATOMIC_RELAXED);
		out->segment_bytes = __atomic_load_n(&st->segment_bytes, __ATOMIC_RELAXED);
		out->updated_ns = __atomic_load_n(&st->updated_ns, __ATOMIC_RELAXED);
		out->records_total = __atomic_load_n(&st->records_total, __ATOMIC_RELAXED);
		out->pid = __atomic_load_n(&st->pid, __ATOMIC_RELAXED);
		memcpy(out->epoch, st->epoch, 16);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&st->gen, __ATOMIC_RELAXED) == g1) {
			out->gen = g1;
			return 0;
		}
	}
	return -EAGAIN;
}

/* Read spool.meta. */
static int read_meta(struct rt_spool *sp)
{
	char buf[1024], *line, *save = NULL;
	int fd = openat(sp->dirfd, "spool.meta", O_RDONLY | O_CLOEXEC | O_NOFOLLOW), seen = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
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
	fd = openat(sp->dirfd, "spool.meta.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		    0640);
	if (fd < 0)
		return -errno;
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
	int fd = openat(sp->dirfd, "state",
			(writable ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW, 0644);
	struct stat st;
	void *m;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || (writable && st.st_size < (off_t)sizeof(struct rt_spool_state) &&
				   ftruncate(fd, sizeof(struct rt_spool_state)) < 0)) {
		int err = -errno;
		close(fd);
		return err;
	}
	if (!writable && st.st_size < (off_t)sizeof(struct rt_spool_state)) {
		close(fd);
		return -EBADMSG;
	}
	m = mmap(NULL, sizeof(struct rt_spool_state), writable ? PROT_READ | PROT_WRITE : PROT_READ,
		 MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return -errno;
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

static int spool_open(const char *path, const char *host, const uint8_t *epoch, unsigned flags,
		      struct rt_spool **out)
{
	struct rt_spool *sp;
	int err;

	if (strlen(path) >= sizeof(sp->path))
		return -ENAMETOOLONG;
	if ((flags & RT_SPOOL_CREATE) && mkdir(path, 0750) < 0 && errno != EEXIST)
		return -errno;
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	sp->lockfd = -1;
	strcpy(sp->path, path);
	sp->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd < 0) {
		err = -errno;
		free(sp);
		return err;
	}
	if (flags & RT_SPOOL_LOCK) {
		sp->lockfd = openat(sp->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
		if (sp->lockfd < 0) {
			err = -errno;
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
	if ((flags & RT_SPOOL_CREATE) && mkdirat(sp->dirfd, "quarantine", 0750) < 0 &&
	    errno != EEXIST) {
		err = -errno;
		goto fail;
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
	return spool_open(path, host, NULL, flags, out);
}

int rt_spool_open_as(const char *path, const char *host, const uint8_t epoch[16], unsigned flags,
		     struct rt_spool **out)
{
	return spool_open(path, host, epoch, flags, out);
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

int rt_spool_quarantine(struct rt_spool *sp, const char *name, uint64_t tail_off)
{
	char dst[512];
	int qfd, err = 0;

	qfd = openat(sp->dirfd, "quarantine", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (qfd < 0) {
		if (mkdirat(sp->dirfd, "quarantine", 0750) < 0 && errno != EEXIST)
			return -errno;
		qfd = openat(sp->dirfd, "quarantine", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (qfd < 0)
			return -errno;
	}
	if (tail_off == 0) {
		/* Never overwrite an earlier quarantined file of that name. */
		for (int i = 0; i < 1000; i++) {
			if (i == 0)
				snprintf(dst, sizeof(dst), "%s", name);
			else
				snprintf(dst, sizeof(dst), "%s.%d", name, i);
			if (faccessat(qfd, dst, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
				break;
		}
		if (renameat(sp->dirfd, name, qfd, dst) < 0)
			err = -errno;
	} else {
		char buf[65536];
		int in = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), outfd;
		ssize_t r;
		off_t off = (off_t)tail_off;
		snprintf(dst, sizeof(dst), "%s.tail-%" PRIu64, name, tail_off);
		if (in < 0) {
			close(qfd);
			return -errno;
		}
		outfd = openat(qfd, dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
		if (outfd < 0) {
			err = -errno;
			close(in);
			close(qfd);
			return err;
		}
		while ((r = pread(in, buf, sizeof(buf), off)) > 0) {
			if (write(outfd, buf, (size_t)r) != r) {
				err = -EIO;
				break;
			}
			off += r;
		}
		if (r < 0)
			err = -errno;
		if (!err && fsync(outfd) < 0)
			err = -errno;
		close(outfd);
		close(in);
	}
	if (!err)
		fsync(qfd);
	close(qfd);
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
