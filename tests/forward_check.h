/* SPDX-License-Identifier: MIT */
/*
 * forward_check.h - what the forwarding tests share: sending hosts (a ring,
 * a spool and a ringtaild --upstream each, with a writer process of their
 * own), a central ringtaild --listen on a loopback port of its own choosing
 * (port 0, read back from its --port-file: no port is ever picked by
 * binding, closing and reusing), a proxy the test controls (it can refuse,
 * cut, and follow a central that moved to another port), and the checks
 * that the central holds what each host holds.
 *
 * Include after defining SC_PROCS to the number of hosts.
 */
#ifndef RT_FORWARD_CHECK_H
#define RT_FORWARD_CHECK_H

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "rtcentral.h"
#include "spool_check.h"

#define FC_HOSTS SC_PROCS

struct fc_host {
	char name[32];
	char ring[128];
	char spool[200];
	char log[220];      /* its stderr */
	const char *key;    /* its --auth-key (NULL: the fleet's, with use_key) */
	pid_t pid;
};

struct fc {
	const char *ringtaild, *tool;
	char dir[128];      /* everything of this test */
	char central[160];  /* the central spool */
	char log[160];      /* the central's stderr */
	char key[160];      /* the key file, when one is used */
	char port_file[160]; /* the central's --port-file */
	int use_key;
	int port;           /* the central's, read from its port file */
	int upstream_port;  /* where the senders connect (the central, or a proxy) */
	pid_t central_pid;
	struct fc_host host[FC_HOSTS];
	const char *sender_args[8];  /* more arguments for every sender */
	const char *central_args[8]; /* ... and for the central */
};

/* Write @n bytes of @key to @path, mode 0600. */
static inline void fc_write_key(const char *path, const char *key)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, key, strlen(key)) == (ssize_t)strlen(key), "key %s", path);
	close(fd);
}

/* Run @bin with @argv (argv[0] included, NULL-terminated), stderr appended
 * to @log (or /dev/null). */
static inline pid_t fc_spawn(const char *bin, const char *const *argv, const char *log)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* die with the test */
		dup2(fd, STDERR_FILENO);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* Set up hosts "host0".. with rings and spools under a fresh directory. */
static inline void fc_init(struct fc *f, const char *name, const char *ringtaild,
			   const char *tool, int use_key)
{
	char cmd[300];

	memset(f, 0, sizeof(*f));
	f->ringtaild = ringtaild;
	f->tool = tool;
	f->use_key = use_key;
	snprintf(f->dir, sizeof(f->dir), "/var/tmp/rt-test-%s-%d", name, (int)getpid());
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", f->dir, f->dir);
	CHECK(system(cmd) == 0, "%s", cmd);
	snprintf(f->central, sizeof(f->central), "%s/central", f->dir);
	snprintf(f->log, sizeof(f->log), "%s/central.log", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/key", f->dir);
	snprintf(f->port_file, sizeof(f->port_file), "%s/central.port", f->dir);
	if (use_key)
		fc_write_key(f->key, "a-shared-secret-for-the-fleet\n");
	sc_spooler_slots = 2; /* its forwarding thread logs too */
	for (int h = 0; h < FC_HOSTS; h++) {
		struct rt_ring_params rp;
		struct fc_host *x = &f->host[h];
		snprintf(x->name, sizeof(x->name), "host%d", h);
		snprintf(x->ring, sizeof(x->ring), "/dev/shm/rt-test-%s-%d-%d", name, (int)getpid(), h);
		snprintf(x->spool, sizeof(x->spool), "%s/%s", f->dir, x->name);
		snprintf(x->log, sizeof(x->log), "%s/%s.log", f->dir, x->name);
		rt_ring_params_default(&rp);
		rp.size = 16u << 20;
		unlink(x->ring);
		CHECK_EQ(rt_ring_create(x->ring, &rp), 0);
	}
	/* ringtaild's own messages go to $RINGTAIL_RING: the central's to a
	 * ring that is not there (so, to its stderr). */
	setenv(RT_RING_ENV, "/dev/shm/rt-test-no-ring", 1);
}

/* The port a ringtaild --listen wrote to @port_file, once it has; fails
 * the test if @pid exits first. */
static inline int fc_wait_port(const char *port_file, pid_t pid)
{
	for (uint64_t deadline = t_now_ns() + 30ull * 1000000000;;) {
		FILE *fp = fopen(port_file, "r");
		int port = 0, st;
		if (fp) {
			if (fscanf(fp, "%d", &port) != 1)
				port = 0;
			fclose(fp);
		}
		if (port > 0)
			return port;
		CHECK(waitpid(pid, &st, WNOHANG) == 0, "the central exited before listening");
		CHECK(t_now_ns() < deadline, "the central never wrote %s", port_file);
		t_pause();
	}
}

/* A central on 127.0.0.1, port 0; returns once it listens (f->port). */
static inline void fc_start_central(struct fc *f)
{
	const char *argv[32];
	int n = 0;

	unlink(f->port_file);
	argv[n++] = "ringtaild";
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--port-file";
	argv[n++] = f->port_file;
	argv[n++] = "--spool";
	argv[n++] = f->central;
	argv[n++] = "--ring";
	argv[n++] = "/dev/shm/rt-test-no-ring";
	argv[n++] = "--segment-size";
	argv[n++] = "256K";
	if (f->use_key) {
		argv[n++] = "--auth-key";
		argv[n++] = f->key;
	}
	for (int i = 0; f->central_args[i] && n < 30; i++)
		argv[n++] = f->central_args[i];
	argv[n] = NULL;
	f->central_pid = fc_spawn(f->ringtaild, argv, f->log);
	f->port = fc_wait_port(f->port_file, f->central_pid);
	if (!f->upstream_port)
		f->upstream_port = f->port;
}

static inline void fc_start_sender(struct fc *f, int h)
{
	struct fc_host *x = &f->host[h];
	char up[64];
	const char *argv[32];
	int n = 0;

	snprintf(up, sizeof(up), "127.0.0.1:%d", f->upstream_port);
	argv[n++] = "ringtaild";
	argv[n++] = "--ring";
	argv[n++] = x->ring;
	argv[n++] = "--spool";
	argv[n++] = x->spool;
	argv[n++] = "--host";
	argv[n++] = x->name;
	argv[n++] = "--upstream";
	argv[n++] = up;
	argv[n++] = "--segment-size";
	argv[n++] = "64K";
	argv[n++] = "--commit-window";
	argv[n++] = "1ms";
	argv[n++] = "-q";
	if (x->key || f->use_key) {
		argv[n++] = "--auth-key";
		argv[n++] = x->key ? x->key : f->key;
	}
	for (int i = 0; f->sender_args[i] && n < 30; i++)
		argv[n++] = f->sender_args[i];
	argv[n] = NULL;
	x->pid = fc_spawn(f->ringtaild, argv, x->log);
}

static inline void fc_stop(pid_t pid)
{
	kill(pid, SIGTERM);
	CHECK_EQ(t_wait(pid), 0);
}

/* The central's copy of host @name: hosts/NAME/EPOCH. @return 1 with its
 * path, 0 if there is none yet; more than one epoch is a failure. */
static inline int fc_central_spool(const struct fc *f, const char *name, char *out, size_t cap)
{
	char dir[300];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(dir, sizeof(dir), "%s/hosts/%s", f->central, name);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || !strcmp(e->d_name, "primary"))
			continue;
		CHECK(strlen(e->d_name) == 32, "%s/%s: not an epoch", dir, e->d_name);
		snprintf(out, cap, "%s/%s", dir, e->d_name);
		n++;
	}
	closedir(d);
	CHECK(n <= 1, "%s: %d epochs for one spool", dir, n);
	return n;
}

/* The last durable record of a spool (0: none, or no spool yet). */
static inline uint64_t fc_durable(const char *spool)
{
	struct rt_spool_state st;
	struct rt_spool *sp;
	uint64_t d = 0;

	if (access(spool, F_OK) != 0 || rt_spool_open(spool, NULL, 0, &sp) != 0)
		return 0;
	if (sp->state && !memcmp(sp->state->magic, RT_STATE_MAGIC, 8))
		for (int i = 0; i < 100; i++)
			if (rt_state_read(sp->state, &st) == 0) {
				d = st.durable_seq;
				break;
			}
	rt_spool_close(sp);
	return d;
}

static inline uint64_t t_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* When the central last heard from host @h (wall clock ns; 0: never). */
static inline uint64_t fc_central_contact(const struct fc *f, int h)
{
	struct rt_spool_state st;
	struct rt_spool *sp;
	char path[400];
	uint64_t t = 0;

	if (!fc_central_spool(f, f->host[h].name, path, sizeof(path)) ||
	    rt_spool_open(path, NULL, 0, &sp) != 0)
		return 0;
	if (sp->state && rt_state_read(sp->state, &st) == 0)
		t = st.updated_ns;
	rt_spool_close(sp);
	return t;
}

/* Wait until host @h has connected to the central after wall time @since. */
static inline void fc_wait_contact(const struct fc *f, int h, uint64_t since, uint64_t timeout_ns)
{
	for (uint64_t deadline = t_now_ns() + timeout_ns; fc_central_contact(f, h) <= since;) {
		CHECK(t_now_ns() < deadline, "%s never connected", f->host[h].name);
		t_pause();
	}
}

/* What the central holds of host @h, by its state. */
static inline uint64_t fc_central_durable(const struct fc *f, int h)
{
	char path[400];
	return fc_central_spool(f, f->host[h].name, path, sizeof(path)) ? fc_durable(path) : 0;
}

/* Wait until every record host @h has made durable by now is on the central. */
static inline void fc_wait_forwarded(const struct fc *f, int h, uint64_t timeout_ns)
{
	uint64_t want, deadline = t_now_ns() + timeout_ns;

	sc_wait_drained(f->host[h].ring, timeout_ns);
	want = fc_durable(f->host[h].spool);
	CHECK(want > 0, "%s: nothing durable", f->host[h].name);
	while (fc_central_durable(f, h) < want) {
		CHECK(t_now_ns() < deadline, "%s: the central holds up to #%llu of #%llu",
		      f->host[h].name, (unsigned long long)fc_central_durable(f, h),
		      (unsigned long long)want);
		t_pause();
	}
}

/* The blocks of a spool, in order: first record, records, DATA checksum. */
struct fc_block {
	uint64_t first, sum;
	uint32_t nrec;
};

static inline size_t fc_blocks(const char *spool, struct fc_block **out)
{
	struct rt_spool *sp;
	uint64_t *seqs;
	size_t n = 0, cap = 0;
	int ns;

	*out = NULL;
	CHECK_EQ(rt_spool_open(spool, NULL, 0, &sp), 0);
	ns = rt_spool_list(sp, &seqs);
	CHECK(ns >= 0, "list %s", spool);
	for (int k = 0; k < ns; k++) {
		struct rt_seg *s;
		char name[32];
		rt_seg_name(name, seqs[k]);
		CHECK_EQ(rt_seg_open(sp->dirfd, name, RT_SEG_NOFOOTER | RT_SEG_VERIFY, &s), 0);
		for (uint32_t b = 0; b < s->nblocks; b++) {
			if (n == cap) {
				cap = cap ? cap * 2 : 256;
				*out = realloc(*out, cap * sizeof(**out));
				CHECK(*out, "realloc");
			}
			(*out)[n].first = s->blocks[b].first_seq;
			(*out)[n].nrec = s->blocks[b].nrec;
			(*out)[n].sum = s->blocks[b].data_sum;
			n++;
		}
		rt_seg_close(s);
	}
	if (ns > 0)
		free(seqs);
	rt_spool_close(sp);
	return n;
}

/*
 * The central's copy of host @h is the same blocks, byte for byte (their
 * DATA checksums), as the host's own spool, where both have them: from the
 * first block the host still has to the last the central has. @return the
 * blocks compared.
 */
static inline size_t fc_same_blocks(const struct fc *f, int h)
{
	const struct fc_host *x = &f->host[h];
	struct fc_block *lb, *cb;
	size_t nl, nc, i = 0, j = 0, same = 0;
	char path[400];

	CHECK(fc_central_spool(f, x->name, path, sizeof(path)) == 1, "%s: not on the central",
	      x->name);
	nl = fc_blocks(x->spool, &lb);
	nc = fc_blocks(path, &cb);
	CHECK(nl > 0 && nc > 0, "%s: %zu blocks at home, %zu on the central", x->name, nl, nc);
	while (j < nc && cb[j].first < lb[0].first)
		j++;
	for (; i < nl && j < nc; i++, j++, same++)
		CHECK(cb[j].first == lb[i].first && cb[j].nrec == lb[i].nrec && cb[j].sum == lb[i].sum,
		      "%s: block #%llu differs on the central (#%llu there)", x->name,
		      (unsigned long long)lb[i].first, (unsigned long long)cb[j].first);
	free(lb);
	free(cb);
	return same;
}

/* `ringtail dump` works on the central's copy as it is, and names the host. */
static inline void fc_check_dump(const struct fc *f, int h)
{
	char path[400], cmd[600], line[512];
	FILE *p;

	CHECK(fc_central_spool(f, f->host[h].name, path, sizeof(path)) == 1, "not on the central");
	snprintf(cmd, sizeof(cmd), "'%s' dump '%s' | grep -m1 test-writer", f->tool, path);
	p = popen(cmd, "r");
	CHECK(p && fgets(line, sizeof(line), p), "ringtail dump %s printed nothing", path);
	pclose(p);
	snprintf(cmd, sizeof(cmd), " %s test-writer[", f->host[h].name);
	CHECK(strstr(line, cmd), "%s: dump of the central's copy says '%s'", f->host[h].name, line);
}

/*
 * Check host @h on both ends: its own spool holds every record its writers
 * were told was taken, exactly once, gapless, verify clean; the central's
 * copy is the same blocks from the first record on, holds every taken
 * record of this host and no other host's, exactly once and gapless,
 * verify and lz4 -t clean, and `ringtail dump` prints it under the host's
 * name. With @home 0 the host's spool is not expected to hold everything
 * any more (retention): only the central's copy is held to it.
 */
static inline void fc_check_host(const struct fc *f, int h, int home, struct sc_result *local,
				 struct sc_result *central)
{
	char path[400];

	memset(local, 0, sizeof(*local));
	memset(central, 0, sizeof(*central));
	if (home)
		sc_check_spool_of(f->host[h].spool, f->tool, h, 0, local);
	CHECK(fc_central_spool(f, f->host[h].name, path, sizeof(path)) == 1, "%s: not on the central",
	      f->host[h].name);
	sc_check_spool_of(path, f->tool, h, 1, central);
	fc_same_blocks(f, h);
	fc_check_dump(f, h);
}

/* Does @file contain @s? */
static inline int fc_file_has(const char *file, const char *s)
{
	char *buf = NULL;
	size_t cap = 0, n = 0;
	int found;
	FILE *fp = fopen(file, "r");

	if (!fp)
		return 0;
	for (;;) {
		if (n + 4096 > cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap + 1);
			CHECK(buf, "realloc");
		}
		size_t r = fread(buf + n, 1, cap - n, fp);
		if (r == 0)
			break;
		n += r;
	}
	fclose(fp);
	found = buf && memmem(buf, n, s, strlen(s)) != NULL;
	free(buf);
	return found;
}

/* ------------------------------------------------------------------------
 * A proxy the test controls: a process of its own (so that the test can
 * still fork writer processes safely: no thread of its runs when they are
 * forked) relaying sender <-> central, whose port it reads at each
 * connection, so a central started again on another port is followed.
 * Until fc_px_listen() its port is bound but not listening: connections to
 * it are refused, as to a central that is not there. While the central is
 * away it resets what it accepted. On request, it cuts each connection
 * after a random number of further bytes from the sender. Its controls and
 * counts are shared memory (fc_px->...).
 * ------------------------------------------------------------------------ */

#define FC_PX_MAX 16

struct fc_px_pair {
	int a, b;      /* the sender's side, the central's side */
	long budget;   /* bytes sender -> central until the cut; -1: none */
	/* Where the sender's stream is: a header being read, or a payload. */
	uint8_t hdr[16];
	uint32_t hdr_have;
	uint64_t left;
	int type;
};

struct fc_px_ctl {
	int lfd, port;
	pid_t pid;
	int target;        /* atomics: the central's port (0: away) */
	int stop, listening;
	int want;          /* cut requests made */
	int cuts;          /* connections cut (set by the proxy) */
	int in_batch;      /* ... of which in the middle of a BATCH */
	int conns;         /* connections relayed */
	int reset;         /* connections reset, the central being away */
	unsigned seed;
};

static struct fc_px_ctl *fc_px;

/* The proxy process's own. */
static struct fc_px_pair fc_px_p[FC_PX_MAX];
static int fc_px_np;

static inline void fc_px_close(int i, int cut)
{
	struct fc_px_pair *q = &fc_px_p[i];

	if (cut) {
		__atomic_add_fetch(&fc_px->cuts, 1, __ATOMIC_RELEASE);
		if ((q->left > 0 && q->type == 5 /* BATCH */) || (q->hdr_have > 4 && q->hdr[4] == 5))
			__atomic_add_fetch(&fc_px->in_batch, 1, __ATOMIC_RELEASE);
	}
	close(q->a);
	close(q->b);
	fc_px_p[i] = fc_px_p[--fc_px_np];
}

/* Follow the message framing of bytes going to the central. */
static inline void fc_px_track(struct fc_px_pair *q, const uint8_t *p, size_t n)
{
	while (n) {
		if (q->left) {
			size_t k = n < q->left ? n : (size_t)q->left;
			q->left -= k;
			p += k;
			n -= k;
			continue;
		}
		q->hdr[q->hdr_have++] = *p++;
		n--;
		if (q->hdr_have == 16) {
			uint32_t len;
			uint16_t flags;
			memcpy(&len, q->hdr + 8, 4);
			memcpy(&flags, q->hdr + 6, 2);
			q->type = q->hdr[4];
			q->left = len + (flags & 1 ? 32 : 0); /* the tag */
			q->hdr_have = 0;
		}
	}
}

static inline int fc_px_send(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static inline void fc_px_accept(void)
{
	struct sockaddr_in to = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)__atomic_load_n(&fc_px->target,
									      __ATOMIC_ACQUIRE)),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int a = accept4(fc_px->lfd, NULL, NULL, SOCK_CLOEXEC), b = -1, one = 1;

	if (a < 0)
		return;
	if (fc_px_np < FC_PX_MAX && to.sin_port) {
		b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (b >= 0 && connect(b, (struct sockaddr *)&to, sizeof(to)) < 0) {
			close(b);
			b = -1;
		}
	}
	if (b < 0) {
		/* Nobody to relay to: as if refused. */
		struct linger l = {1, 0};
		setsockopt(a, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		close(a);
		__atomic_add_fetch(&fc_px->reset, 1, __ATOMIC_RELEASE);
		return;
	}
	setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fc_px_p[fc_px_np++] = (struct fc_px_pair){a, b, -1, {0}, 0, 0, 0};
	__atomic_add_fetch(&fc_px->conns, 1, __ATOMIC_RELEASE);
}

static inline _Noreturn void fc_px_main(void)
{
	static uint8_t buf[1 << 16];
	unsigned seed = fc_px->seed;
	int done = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while (!__atomic_load_n(&fc_px->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd pf[1 + 2 * FC_PX_MAX];
		int want = __atomic_load_n(&fc_px->want, __ATOMIC_ACQUIRE), n = 1;

		if (want != done && fc_px_np > 0) {
			/* A cut: each connection goes after 0 to 256 KiB more
			 * (while there is none, the request waits for one);
			 * a tenth of that under TSan (T_SLOW), where traffic
			 * is that much slower and 30 s may not see 256 KiB. */
			for (int i = 0; i < fc_px_np; i++)
				if (fc_px_p[i].budget < 0)
					fc_px_p[i].budget =
						rand_r(&seed) % ((256 << 10) / T_SLOW);
			done = want;
		}
		pf[0] = (struct pollfd){
			__atomic_load_n(&fc_px->listening, __ATOMIC_ACQUIRE) ? fc_px->lfd : -1, POLLIN, 0};
		for (int i = 0; i < fc_px_np; i++) {
			pf[n++] = (struct pollfd){fc_px_p[i].a, POLLIN, 0};
			pf[n++] = (struct pollfd){fc_px_p[i].b, POLLIN, 0};
		}
		if (poll(pf, (nfds_t)n, 10) <= 0)
			continue;
		/* Relay; walk down so that closing (which moves the last pair
		 * into slot i) does not skip a pair that was polled. */
		for (int i = fc_px_np - 1; i >= 0; i--) {
			struct fc_px_pair *q = &fc_px_p[i];
			short ra = pf[1 + 2 * i].revents, rb = pf[2 + 2 * i].revents;
			ssize_t r;
			if (ra) {
				size_t cap = sizeof(buf);
				if (q->budget >= 0 && (size_t)q->budget < cap)
					cap = (size_t)q->budget;
				r = cap ? recv(q->a, buf, cap, 0) : 0;
				if (cap && r <= 0) {
					fc_px_close(i, 0);
					continue;
				}
				if (r > 0) {
					fc_px_track(q, buf, (size_t)r);
					if (fc_px_send(q->b, buf, (size_t)r)) {
						fc_px_close(i, 0);
						continue;
					}
					if (q->budget >= 0)
						q->budget -= r;
				}
				if (q->budget == 0) {
					fc_px_close(i, 1);
					continue;
				}
			}
			if (rb) {
				r = recv(q->b, buf, sizeof(buf), 0);
				if (r <= 0 || fc_px_send(q->a, buf, (size_t)r)) {
					fc_px_close(i, 0);
					continue;
				}
			}
		}
		if (pf[0].revents & POLLIN)
			fc_px_accept();
	}
	while (fc_px_np)
		fc_px_close(fc_px_np - 1, 0);
	_exit(0);
}

/* Start the proxy on a port of its own (fc_px->port), relaying to port
 * @target (0: none yet); listening at once if @listening. */
static inline void fc_px_start(int target, int listening, unsigned seed)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);

	fc_px = mmap(NULL, sizeof(*fc_px), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(fc_px != MAP_FAILED, "mmap");
	memset(fc_px, 0, sizeof(*fc_px));
	fc_px->target = target;
	fc_px->seed = seed;
	fc_px->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fc_px->lfd >= 0, "socket");
	CHECK_EQ(bind(fc_px->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	CHECK_EQ(getsockname(fc_px->lfd, (struct sockaddr *)&a, &l), 0);
	fc_px->port = ntohs(a.sin_port);
	if (listening) {
		CHECK_EQ(listen(fc_px->lfd, 16), 0);
		fc_px->listening = 1;
	}
	fflush(stdout);
	fc_px->pid = fork();
	CHECK(fc_px->pid >= 0, "fork");
	if (fc_px->pid == 0)
		fc_px_main();
}

/* From now on the proxy accepts (its port has been held all along; the
 * socket is the proxy's and ours alike). */
static inline void fc_px_listen(void)
{
	CHECK_EQ(listen(fc_px->lfd, 16), 0);
	__atomic_store_n(&fc_px->listening, 1, __ATOMIC_RELEASE);
}

static inline void fc_px_target(int port)
{
	__atomic_store_n(&fc_px->target, port, __ATOMIC_RELEASE);
}

static inline void fc_px_stop(void)
{
	__atomic_store_n(&fc_px->stop, 1, __ATOMIC_RELEASE);
	CHECK_EQ(t_wait(fc_px->pid), 0);
	close(fc_px->lfd);
}

static inline void fc_cleanup(struct fc *f)
{
	for (int h = 0; h < FC_HOSTS; h++)
		unlink(f->host[h].ring);
	sc_rm_rf(f->dir);
}

#endif
