/* SPDX-License-Identifier: MIT */
/*
 * fs_hosts - no fixed cap on hosts hides data: a central server's directory
 * with 10,000 hosts (CENTRAL/hosts/HOST/EPOCH) mounted at once lists every
 * host once in /by-host, and each host's /by-host/HOST/all reads exactly the
 * host's records with the host's own name in the host field; /stats says
 * `hosts 10000` and the merged /all holds every host's lines. (The host
 * table held 4,096.)
 *
 * One spool is made by a real ringtaild; the 10,000 host spools are hard
 * links of its files (the mount names a host by its directory, so each is a
 * host of its own), which builds the tree in about a second without 10,000
 * senders.
 *
 *   fs_hosts RINGTAILD RINGTAILFS RINGTAIL
 *
 * RT_TEST_HOSTS=N changes the count; RT_TEST_SAMPLE=K reads every K-th
 * host's file (default 10, and the last; 1 reads all of them).
 */
#include <sys/resource.h>

#include "fs_helpers.h"
#include "rtseg.h"
#include "rtspool.h"

/* The template host: as long as every host's name (h00000). */
#define TMPL "tmplhh"

static char central[256];

static void name_of(unsigned i, char *out, size_t cap)
{
	snprintf(out, cap, "h%05u", i);
}

/* The template spool, by a real ringtaild: @n api records and one db error.
 * Its epoch in @epoch. */
static void make_template(const char *spool, int n, char epoch[33])
{
	char ring[200], cmd[1024], *argv[12];
	struct rt_spool *sp;
	uint64_t deadline = t_now_ns() + 10ull * 1000000000;
	pid_t d;
	FILE *f;
	int i = 0;

	snprintf(ring, sizeof(ring), "%s-tmpl", T.ring);
	argv[i++] = (char *)T.ringtaild;
	argv[i++] = "--ring";
	argv[i++] = ring;
	argv[i++] = "--spool";
	argv[i++] = (char *)spool;
	argv[i++] = "--host";
	argv[i++] = TMPL;
	argv[i++] = "-q";
	argv[i] = NULL;
	d = t_spawn_v(argv, NULL);
	CHECK(d > 0, "fork");
	while (access(ring, F_OK) != 0) {
		CHECK(t_now_ns() < deadline, "ringtaild did not start");
		t_pause();
	}
	snprintf(cmd, sizeof(cmd), "'%s' log --ring '%s' -t api -p info", T.ringtail, ring);
	f = popen(cmd, "w");
	CHECK(f != NULL, "popen");
	for (int k = 0; k < n; k++)
		fprintf(f, "request %d\n", k);
	i = pclose(f);
	CHECK(i == 0, "ringtail log: %d", i);
	snprintf(cmd, sizeof(cmd), "'%s' log --ring '%s' -t db -p error disk slow", T.ringtail,
		 ring);
	CHECK_EQ(system(cmd), 0);
	kill(d, SIGTERM); /* stopping drains the ring into the spool */
	CHECK_EQ(t_wait(d), 0);
	unlink(ring);
	CHECK_EQ(rt_spool_open(spool, NULL, 0, &sp), 0);
	rt_epoch_hex(sp->epoch, epoch);
	rt_spool_close(sp);
}

/* A segment of the template, its HEADER frame rebuilt for each host. */
struct tseg {
	char name[64];
	uint8_t *bytes;
	size_t len, hdr_len;
	struct rt_seg_hdrinfo hdr;
	struct rt_cursor *cur;
	uint32_t ncur;
};

static struct tseg segs[16];
static size_t nsegs;

/* Read the template's segments (every file rt_seg_open_fd takes). */
static void load_template(const char *tmpl)
{
	DIR *d = opendir(tmpl);
	struct dirent *e;

	CHECK(d != NULL, "opendir %s", tmpl);
	while ((e = readdir(d)) != NULL) {
		char path[600];
		struct rt_seg *sg;
		struct rt_buf hb = {0};
		struct tseg *t = &segs[nsegs];
		struct stat st;
		int fd;
		if (e->d_name[0] == '.' || !strcmp(e->d_name, "spool.meta") ||
		    !strcmp(e->d_name, "state") || !strcmp(e->d_name, "lock"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpl, e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
		    rt_seg_open_fd(fd, 0, 0, &sg) != 0) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		CHECK(nsegs < 16 && strlen(e->d_name) < sizeof(t->name), "template segments");
		memcpy(t->name, e->d_name, strlen(e->d_name) + 1);
		t->len = (size_t)st.st_size;
		t->bytes = malloc(t->len);
		CHECK(t->bytes && pread(fd, t->bytes, t->len, 0) == (ssize_t)t->len, "read %s", path);
		t->hdr = sg->hdr;
		t->ncur = sg->hdr_ncursor;
		t->cur = calloc(t->ncur ? t->ncur : 1, sizeof(*t->cur));
		CHECK(t->cur != NULL, "calloc");
		if (t->ncur)
			memcpy(t->cur, sg->hdr_cursor, t->ncur * sizeof(*t->cur));
		rt_seg_close(sg);
		close(fd);
		/* The header frame as the library writes it is the file's first
		 * bytes: then swapping it for another host's is exact. */
		CHECK_EQ(rt_seg_header_frame(&hb, &t->hdr, t->cur, t->ncur), 0);
		CHECK(hb.len <= t->len && !memcmp(hb.p, t->bytes, hb.len),
		      "%s: header not rebuilt as written", path);
		t->hdr_len = hb.len;
		free(hb.p);
		nsegs++;
	}
	closedir(d);
	CHECK(nsegs > 0, "no segment in the template");
}

static void write_file(const char *path, const void *a, size_t an, const void *b, size_t bn)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);

	CHECK(fd >= 0, "create %s: %s", path, strerror(errno));
	CHECK(write(fd, a, an) == (ssize_t)an && (bn == 0 || write(fd, b, bn) == (ssize_t)bn),
	      "write %s", path);
	close(fd);
}

/*
 * CENTRAL/hosts/@host/@epoch: the template's spool as @host's: spool.meta
 * naming @host, each segment with a HEADER naming @host (same length as the
 * template's name, so the INDEX frames' rendered lengths stay true), the
 * state file a hard link.
 */
static void make_host(const char *tmpl, const char *host, const char *epoch)
{
	char dir[600], src[1200], dst[1200], meta[4096];
	int n;
	size_t mlen;
	FILE *f;
	char *p;

	snprintf(dir, sizeof(dir), "%s/hosts/%s", central, host);
	CHECK(mkdir(dir, 0750) == 0, "mkdir %s: %s", dir, strerror(errno));
	snprintf(dir, sizeof(dir), "%s/hosts/%s/%s", central, host, epoch);
	CHECK(mkdir(dir, 0750) == 0, "mkdir %s: %s", dir, strerror(errno));
	snprintf(src, sizeof(src), "%s/state", tmpl);
	snprintf(dst, sizeof(dst), "%s/state", dir);
	CHECK(link(src, dst) == 0, "link %s: %s", dst, strerror(errno));
	snprintf(src, sizeof(src), "%s/spool.meta", tmpl);
	f = fopen(src, "re");
	CHECK(f != NULL, "open %s", src);
	mlen = fread(meta, 1, sizeof(meta) - 1, f);
	fclose(f);
	meta[mlen] = '\0';
	p = strstr(meta, "host " TMPL "\n");
	CHECK(p != NULL, "spool.meta without host " TMPL ":\n%s", meta);
	memcpy(p + 5, host, strlen(TMPL));
	snprintf(dst, sizeof(dst), "%s/spool.meta", dir);
	write_file(dst, meta, mlen, NULL, 0);
	for (size_t i = 0; i < nsegs; i++) {
		struct rt_seg_hdrinfo h = segs[i].hdr;
		struct rt_buf hb = {0};
		snprintf(h.host, sizeof(h.host), "%s", host);
		CHECK_EQ(rt_seg_header_frame(&hb, &h, segs[i].cur, segs[i].ncur), 0);
		CHECK_EQ(hb.len, segs[i].hdr_len);
		n = snprintf(dst, sizeof(dst), "%s/%s", dir, segs[i].name);
		CHECK(n > 0 && (size_t)n < sizeof(dst), "path");
		write_file(dst, hb.p, hb.len, segs[i].bytes + segs[i].hdr_len,
			   segs[i].len - segs[i].hdr_len);
		free(hb.p);
	}
}

/* @t with every " TMPL " host field (the second field) made " @host ". */
static struct t_text as_host(const struct t_text *t, const char *host)
{
	struct t_text out = {0};
	const char *p = t->p, *end = t->p + t->len;

	t_text_add(&out, "", 0);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *sp = memchr(p, ' ', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		size_t tl = strlen(TMPL);
		CHECK(sp && !strncmp(sp + 1, TMPL, tl) && sp[1 + tl] == ' ', "template line: %.80s",
		      p);
		t_text_add(&out, p, (size_t)(sp - p) + 1);
		t_text_add(&out, host, strlen(host));
		t_text_add(&out, sp + 1 + tl, n - (size_t)(sp + 1 + tl - p));
		p += n;
	}
	return out;
}

static uint64_t stats_value(const struct t_text *st, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\n%s ", key);
	p = strstr(st->p, pat);
	return p ? strtoull(p + strlen(pat), NULL, 10) : UINT64_MAX;
}

int main(int argc, char **argv)
{
	const char *env = getenv("RT_TEST_HOSTS");
	/* A tenth under ThreadSanitizer (T_SLOW), where making and reading
	 * 10,000 host trees takes minutes; the checks are the same. */
	unsigned n = env ? (unsigned)strtoul(env, NULL, 10) : 10000 / T_SLOW;
	unsigned sample = getenv("RT_TEST_SAMPLE") ? (unsigned)atoi(getenv("RT_TEST_SAMPLE")) : 10;
	char tmpl[300], meta[300], epoch[33];
	uint8_t *seen = calloc(n ? n : 1, 1);
	uint64_t t0, t_built, t_listed, listed = 0, read_files = 0;
	struct t_text dump, st, all;
	size_t per;
	DIR *d;
	struct dirent *e;
	FILE *f;

	CHECK(seen != NULL && n > 0 && n <= 65535 && sample > 0, "hosts");
	t_setup("hosts", argc, argv);
	snprintf(central, sizeof(central), "%s/central", T.dir);
	CHECK(mkdir(central, 0750) == 0, "mkdir");
	snprintf(meta, sizeof(meta), "%s/hosts", central);
	CHECK(mkdir(meta, 0750) == 0, "mkdir");
	snprintf(meta, sizeof(meta), "%s/central.meta", central);
	f = fopen(meta, "w");
	CHECK(f != NULL, "central.meta");
	fputs("ringtail-central 1\n", f);
	fclose(f);
	snprintf(tmpl, sizeof(tmpl), "%s/template", T.dir);
	make_template(tmpl, 3, epoch);
	dump = t_dump(tmpl);
	load_template(tmpl);
	per = t_count_lines(&dump);
	CHECK(per >= 4 && strstr(dump.p, " INFO request 2\n") && strstr(dump.p, " ERROR disk slow\n"),
	      "template:\n%s", dump.p);

	t0 = t_now_ns();
	for (unsigned i = 0; i < n; i++) {
		char host[16];
		name_of(i, host, sizeof(host));
		make_host(tmpl, host, epoch);
	}
	t_built = t_now_ns();
	/* ringtailfs needs a descriptor per host directory and per segment
	 * (2 a host here) and raises its soft limit to the hard one; make the
	 * hard limit at least systemd's default where it is lower (this
	 * container's is 20,000), as a central's unit would. */
	{
		struct rlimit rl;
		CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit");
		if (rl.rlim_max < 16384) {
			rl.rlim_max = rl.rlim_cur = 16384;
			CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0,
			      "hard RLIMIT_NOFILE below 16384 and not raised: %s", strerror(errno));
		}
	}
	t_mount_src(central, NULL);

	/* Every host listed, once. */
	d = opendir(t_path("by-host"));
	CHECK(d != NULL, "opendir by-host: %s", strerror(errno));
	while ((e = readdir(d)) != NULL) {
		unsigned i;
		char host[16];
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		CHECK(sscanf(e->d_name, "h%5u", &i) == 1 && i < n, "stray entry %s", e->d_name);
		name_of(i, host, sizeof(host));
		CHECK(!strcmp(host, e->d_name), "stray entry %s", e->d_name);
		CHECK(!seen[i], "%s listed twice", e->d_name);
		seen[i] = 1;
		listed++;
	}
	closedir(d);
	CHECK_EQ(listed, n);
	t_listed = t_now_ns();

	/* Each host's file: exactly the template's lines under its name. */
	for (unsigned i = 0; i < n; i++) {
		char host[16], rel[64];
		struct t_text got, want;
		if (i % sample && i != n - 1)
			continue;
		name_of(i, host, sizeof(host));
		snprintf(rel, sizeof(rel), "by-host/%s/all", host);
		got = t_read_file(t_path(rel));
		want = as_host(&dump, host);
		t_same(&got, &want, rel);
		t_text_free(&got);
		t_text_free(&want);
		read_files++;
	}

	st = t_read_file(t_path("stats"));
	CHECK_EQ(stats_value(&st, "hosts"), n);
	CHECK_EQ(stats_value(&st, "overflow"), 0);
	t_text_free(&st);
	all = t_read_file(t_path("all"));
	CHECK_EQ(t_count_lines(&all), (size_t)n * per);
	t_text_free(&all);
	printf("ok - %u hosts: all %llu listed once in /by-host, %llu of their files read "
	       "exactly, /stats hosts %u, /all holds all %zu lines (tree %.1f s, mount and "
	       "list %.1f s, reads %.1f s)\n",
	       n, (unsigned long long)listed, (unsigned long long)read_files, n, (size_t)n * per,
	       (double)(t_built - t0) / 1e9, (double)(t_listed - t_built) / 1e9,
	       (double)(t_now_ns() - t_listed) / 1e9);
	t_text_free(&dump);
	free(seen);
	CHECK_EQ(t_unmount(), 0);
	return 0;
}
