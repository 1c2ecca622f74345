/* SPDX-License-Identifier: MIT */
/*
 * forward_tamper - a sender and a central, both with --auth-key, with a
 * hostile proxy between them that this test controls (a process of its
 * own): it reads every frame
 * both ways and, for the first ATTACKS connections, does one thing to them
 * (CASE):
 *
 *   rewrite      rewrites the text of the records of a BATCH, rebuilding its
 *                blocks, INDEX frames, checksums and the header's sum (the
 *                forgery passes every content check of the central: checked
 *                in-process), keeping the tag or dropping it
 *   inject       injects a forged BATCH of 52 records that follow on from
 *                what the central holds, right after the WELCOME, before
 *                the sender's own
 *   inject_ack   keeps the sender's BATCH from the central and answers it
 *                with a forged ACK
 *   replay_same  sends a BATCH the central has acknowledged to it again, in
 *                the same connection
 *   replay_other sends a BATCH of an earlier connection in a later one
 *   truncate     cuts a BATCH's payload short, length and sum made to match
 *   reorder      (the sender never has two frames in flight, so a proxy can
 *                move a frame only by replaying it, above): two frames
 *                tagged in order by a client holding the key, sent swapped
 *
 * Every attack must be refused by the end it was aimed at (the log says it
 * failed authentication), and nothing of it stored or believed; the sender
 * must not stall: once the proxy is honest, every record its writers were
 * told was taken is on the central exactly once, in the same blocks as at
 * home, and none that the proxy made or changed.
 *
 *   forward_tamper RINGTAILD RINGTAIL CASE
 */
#include <fcntl.h>

#define SC_PROCS 1
#define SC_MAXREC 2000000u
#include "forward_check.h"
#include "forward_client.h"

#define ATTACKS 3

enum mode { REWRITE, INJECT, INJECT_ACK, REPLAY_SAME, REPLAY_OTHER, TRUNCATE, REORDER };
static const char *const mode_names[] = {"rewrite",      "inject",   "inject_ack", "replay_same",
					 "replay_other", "truncate", "reorder"};

static struct fc f;
static int mode;

/* ------------------------------------------------------------------------
 * The proxy: whole frames both ways, each looked at before it goes on
 * ------------------------------------------------------------------------ */

struct side {
	int fd;
	struct rt_buf in; /* bytes read, not yet a whole frame */
};

struct link {
	struct side s, c; /* the sender's side, the central's */
	int conn_no;      /* which connection of the sender this is */
	int batches;      /* BATCHes seen from the sender */
	uint64_t durable; /* what the WELCOME said the central holds */
	int attacked;     /* this connection has been attacked */
	int replay_armed; /* replay_same: send the saved batch after this ACK */
};

/* The proxy is a process of its own (so that the test forks its writers
 * with no thread running); this lives in memory both share. */
static struct px {
	int lfd, port;
	pid_t pid;
	int stop;
	int attacks;     /* done (atomic) */
	int would_pass;  /* forgeries the content checks alone would have taken */
	int conns;
	struct link l[4];
	int nl;
	struct rt_buf saved; /* a BATCH frame, for the replays (the proxy's) */
	int saved_conn;
} *px;

static void px_send(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return; /* that end has gone: the link closes at the next read */
		p += w;
		n -= (size_t)w;
	}
}

/* The blocks of a BATCH payload, rebuilt with their records' text changed
 * ("payload-" becomes "PAYLOAD-"), into a new BATCH payload in @out. */
static void rewrite_payload(const uint8_t *p, size_t n, struct rt_buf *out)
{
	struct rt_wire_block wb;
	struct rt_buf body = {0}, sealed = {0};
	struct rt_block blk;
	struct rt_cursor cur = {1, 2, 3, 4, 5, 0, 0};
	struct rt_bb *bb;
	size_t pos = 4;

	memset(&blk, 0, sizeof(blk));
	CHECK_EQ(rt_bb_new(f.host[0].name, &bb), 0);
	out->len = 0;
	rt_wire_batch_start(out);
	while (rt_wire_batch_next(p, n, &pos, &wb) == 1) {
		struct rt_seg_block sb;
		uint32_t size, count;
		CHECK_EQ(rt_seg_parse_index(wb.index, wb.index_len, &sb), 0);
		CHECK_EQ(rt_block_inflate(wb.data, wb.data_len, sb.body_len, &body), 0);
		CHECK_EQ(rt_block_decode(body.p, body.len, sb.first_seq, sb.nrec, &blk), 0);
		rt_bb_reset(bb, sb.first_seq);
		for (uint32_t i = 0; i < blk.nrec; i++) {
			struct rt_rec r;
			char msg[512];
			char *at;
			rt_block_rec(&blk, i, &r);
			CHECK(r.msg_len < sizeof(msg), "long message");
			memcpy(msg, r.msg, r.msg_len);
			msg[r.msg_len] = '\0';
			if ((at = strstr(msg, "payload-")))
				memcpy(at, "PAYLOAD-", 8);
			r.msg = msg;
			CHECK_EQ(rt_bb_add(bb, &r), 0);
		}
		sealed.len = 0;
		CHECK_EQ(rt_bb_seal(bb, &sealed, 0, sb.block_no, 9, &cur, 1), 0);
		memcpy(&size, sealed.p + 4, 4);
		rt_buf_put(out, &(uint32_t){8 + size}, 4);
		rt_buf_put(out, sealed.p, 8 + size);
		rt_buf_put(out, &(uint32_t){(uint32_t)(sealed.len - 8 - size)}, 4);
		rt_buf_put(out, sealed.p + 8 + size, sealed.len - 8 - size);
		memcpy(&count, out->p, 4);
		count++;
		memcpy(out->p, &count, 4);
		rt_seg_block_free(&sb);
	}
	rt_bb_free(bb);
	rt_block_free(&blk);
	rt_buf_free(&body);
	rt_buf_free(&sealed);
}

/* Would the central's content checks alone take BATCH payload @p? */
static int passes_checks(const uint8_t *p, size_t n, uint64_t durable)
{
	struct rt_batch b;
	int ok;

	memset(&b, 0, sizeof(b));
	ok = rt_batch_check(&b, p, n, f.host[0].name, durable, durable ? durable + 1 : 0) == 0 &&
	     b.n > b.skip;
	rt_batch_free(&b);
	return ok;
}

/* A frame of @type with payload @p, and a tag of 32 random bytes (the best
 * a stranger can do) or, with @tagged 0, none. */
static void forged_frame(struct rt_buf *m, int type, const uint8_t *p, size_t n, int tagged)
{
	uint8_t tag[RT_WIRE_TAG];
	uint16_t flags = RT_WF_TAG;

	m->len = 0;
	rt_wire_begin(m);
	rt_buf_put(m, p, n);
	rt_wire_end(m, 0, type);
	if (tagged) {
		CHECK(getrandom(tag, sizeof(tag), 0) == sizeof(tag), "getrandom");
		memcpy(m->p + 6, &flags, 2);
		rt_buf_put(m, tag, sizeof(tag));
	}
}

static int attack_now(struct link *l)
{
	return !l->attacked && __atomic_load_n(&px->attacks, __ATOMIC_ACQUIRE) < ATTACKS;
}

static void attacked(struct link *l)
{
	l->attacked = 1;
	__atomic_add_fetch(&px->attacks, 1, __ATOMIC_RELEASE);
}

/* A whole frame @p (@n bytes) from the sender: pass it on, or not. */
static void from_sender(struct link *l, uint8_t *p, size_t n)
{
	struct rt_wire_hdr h;
	struct rt_buf m = {0}, pl = {0};

	rt_wire_hdr_get(p, RT_WIRE_MAX_PAYLOAD, &h);
	if (h.type != RT_W_BATCH) {
		px_send(l->c.fd, p, n);
		return;
	}
	l->batches++;
	if (mode == REWRITE && attack_now(l)) {
		int keep_tag = __atomic_load_n(&px->attacks, __ATOMIC_ACQUIRE) % 2 == 0;
		rewrite_payload(p + RT_WIRE_HDR, h.len, &pl);
		px->would_pass += passes_checks(pl.p, pl.len, l->durable);
		forged_frame(&m, RT_W_BATCH, pl.p, pl.len, 0);
		if (keep_tag) {
			uint16_t flags = RT_WF_TAG;
			memcpy(m.p + 6, &flags, 2);
			rt_buf_put(&m, p + n - RT_WIRE_TAG, RT_WIRE_TAG);
		}
		attacked(l);
		px_send(l->c.fd, m.p, m.len);
	} else if (mode == INJECT_ACK && attack_now(l)) {
		/* The central never sees it; the sender is told it was taken. */
		struct rt_wire_block wb;
		struct rt_seg_block sb;
		size_t pos = 4;
		uint64_t last = 0, v;
		while (rt_wire_batch_next(p + RT_WIRE_HDR, h.len, &pos, &wb) == 1) {
			CHECK_EQ(rt_seg_parse_index(wb.index, wb.index_len, &sb), 0);
			last = sb.first_seq + sb.nrec - 1;
			rt_seg_block_free(&sb);
		}
		v = last;
		forged_frame(&m, RT_W_ACK, (const uint8_t *)&v, 8, px->attacks % 2 == 0);
		attacked(l);
		px_send(l->s.fd, m.p, m.len);
	} else if (mode == TRUNCATE && attack_now(l)) {
		uint32_t len = h.len / 2, sum;
		rt_buf_put(&m, p, RT_WIRE_HDR + len);
		memcpy(m.p + 8, &len, 4);
		sum = rt_wire_sum(m.p + RT_WIRE_HDR, len);
		memcpy(m.p + 12, &sum, 4);
		rt_buf_put(&m, p + n - RT_WIRE_TAG, RT_WIRE_TAG);
		attacked(l);
		px_send(l->c.fd, m.p, m.len);
	} else {
		if ((mode == REPLAY_SAME || mode == REPLAY_OTHER) && !px->saved.len && attack_now(l)) {
			rt_buf_put(&px->saved, p, n);
			px->saved_conn = l->conn_no;
			l->replay_armed = mode == REPLAY_SAME;
		}
		px_send(l->c.fd, p, n);
	}
	rt_buf_free(&m);
	rt_buf_free(&pl);
}

/* A whole frame from the central: pass it on, then perhaps attack. */
static void from_central(struct link *l, uint8_t *p, size_t n)
{
	struct rt_wire_hdr h;
	struct rt_welcome wl;

	rt_wire_hdr_get(p, RT_WIRE_MAX_PAYLOAD, &h);
	px_send(l->s.fd, p, n);
	if (h.type == RT_W_WELCOME && rt_wire_get_welcome(p + RT_WIRE_HDR, h.len, &wl) == 0) {
		l->durable = wl.durable_seq;
		if (mode == INJECT && attack_now(l)) {
			static const char *const svc[] = {"test-writer"};
			struct blk b[1];
			struct rt_buf m = {0}, forged = {0};
			make_blocks(b, 1, f.host[0].name, l->durable + 1, 52, svc, 1);
			batch_of(&m, b, (int[]){0}, 1);
			px->would_pass += passes_checks(m.p + RT_WIRE_HDR, m.len - RT_WIRE_HDR, l->durable);
			forged_frame(&forged, RT_W_BATCH, m.p + RT_WIRE_HDR, m.len - RT_WIRE_HDR, 1);
			attacked(l);
			px_send(l->c.fd, forged.p, forged.len);
			free_blocks(b, 1);
			rt_buf_free(&m);
			rt_buf_free(&forged);
		}
		if (mode == REPLAY_OTHER && px->saved.len && l->conn_no != px->saved_conn &&
		    attack_now(l)) {
			attacked(l);
			px_send(l->c.fd, px->saved.p, px->saved.len);
		}
	}
	if (h.type == RT_W_ACK && l->replay_armed && attack_now(l)) {
		l->replay_armed = 0;
		attacked(l);
		px_send(l->c.fd, px->saved.p, px->saved.len);
		/* The next saved batch is of a later connection. */
		px->saved.len = 0;
	}
	if (h.type == RT_W_ACK && mode == REPLAY_OTHER && l->conn_no == px->saved_conn &&
	    !l->attacked) {
		/* End this connection, so that the saved batch meets another. */
		shutdown(l->s.fd, SHUT_RDWR);
		shutdown(l->c.fd, SHUT_RDWR);
	}
}

static void link_close(int i)
{
	close(px->l[i].s.fd);
	close(px->l[i].c.fd);
	rt_buf_free(&px->l[i].s.in);
	rt_buf_free(&px->l[i].c.in);
	px->l[i] = px->l[--px->nl];
}

/* Read what @from has; hand each whole frame to @fn. @return -1 when it
 * has closed. */
static int pump(struct link *l, struct side *from, void (*fn)(struct link *, uint8_t *, size_t))
{
	uint8_t buf[65536];
	ssize_t r = recv(from->fd, buf, sizeof(buf), 0);

	if (r <= 0)
		return -1;
	rt_buf_put(&from->in, buf, (size_t)r);
	for (;;) {
		struct rt_wire_hdr h;
		long whole = rt_wire_frame(from->in.p, from->in.len, RT_WIRE_MAX_PAYLOAD, &h);
		if (whole <= 0)
			return whole < 0 ? -1 : 0;
		fn(l, from->in.p, (size_t)whole);
		memmove(from->in.p, from->in.p + whole, from->in.len - (size_t)whole);
		from->in.len -= (size_t)whole;
	}
}

static _Noreturn void px_main(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while (!__atomic_load_n(&px->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd pf[1 + 8];
		int n = 1;

		pf[0] = (struct pollfd){px->lfd, POLLIN, 0};
		for (int i = 0; i < px->nl; i++) {
			pf[n++] = (struct pollfd){px->l[i].s.fd, POLLIN, 0};
			pf[n++] = (struct pollfd){px->l[i].c.fd, POLLIN, 0};
		}
		if (poll(pf, (nfds_t)n, 10) <= 0)
			continue;
		for (int i = px->nl - 1; i >= 0; i--) {
			if ((pf[1 + 2 * i].revents && pump(&px->l[i], &px->l[i].s, from_sender) < 0) ||
			    (pf[2 + 2 * i].revents && pump(&px->l[i], &px->l[i].c, from_central) < 0))
				link_close(i);
		}
		if (pf[0].revents & POLLIN) {
			int a = accept4(px->lfd, NULL, NULL, SOCK_CLOEXEC);
			if (a < 0)
				continue;
			if (px->nl == 4) {
				close(a);
				continue;
			}
			memset(&px->l[px->nl], 0, sizeof(px->l[px->nl]));
			px->l[px->nl].s.fd = a;
			px->l[px->nl].c.fd = cl_connect_fd(NULL, "127.0.0.1", f.port, 1);
			px->l[px->nl].conn_no = ++px->conns;
			if (px->l[px->nl].c.fd < 0) {
				close(a);
				continue;
			}
			px->nl++;
		}
	}
	while (px->nl)
		link_close(px->nl - 1);
	_exit(0);
}

static void px_start(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);

	px = mmap(NULL, sizeof(*px), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(px != MAP_FAILED, "mmap");
	memset(px, 0, sizeof(*px));
	px->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(px->lfd >= 0, "socket");
	CHECK_EQ(bind(px->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	CHECK_EQ(listen(px->lfd, 16), 0);
	CHECK_EQ(getsockname(px->lfd, (struct sockaddr *)&a, &l), 0);
	px->port = ntohs(a.sin_port);
	fflush(stdout);
	px->pid = fork();
	CHECK(px->pid >= 0, "fork");
	if (px->pid == 0)
		px_main();
}

/* ------------------------------------------------------------------------ */

/* Lines of @file holding @s. */
static int count_lines(const char *file, const char *s)
{
	char line[2048];
	int n = 0;
	FILE *fp = fopen(file, "r");

	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp))
		n += strstr(line, s) != NULL;
	fclose(fp);
	return n;
}

/* Records on the central whose text holds @s. */
static int central_records_with(const char *s)
{
	char path[400], cmd[800], out[64] = "0";
	FILE *p;

	if (!fc_central_spool(&f, f.host[0].name, path, sizeof(path)))
		return 0;
	snprintf(cmd, sizeof(cmd), "'%s' dump '%s' | grep -c -- '%s'", f.tool, path, s);
	p = popen(cmd, "r");
	CHECK(p, "popen");
	if (!fgets(out, sizeof(out), p))
		strcpy(out, "0");
	pclose(p);
	return atoi(out);
}

/* The sender's own word on what the upstream acknowledged. */
static uint64_t sender_acked(void)
{
	char path[300];
	struct rt_forward_state st, copy;
	int fd;

	snprintf(path, sizeof(path), "%s/forward", f.host[0].spool);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	if (pread(fd, &st, sizeof(st), 0) != (ssize_t)sizeof(st)) {
		close(fd);
		return 0;
	}
	close(fd);
	return rt_forward_state_read(&st, &copy) == 0 ? copy.acked_seq : 0;
}

/* A key holder's two frames, tagged in order, sent swapped. */
static void reorder(void)
{
	static const char *const svc[] = {"test-writer"};
	const uint8_t k[] = "a-shared-secret-for-the-fleet";
	struct blk b[2];
	struct cl c;
	struct rt_buf m1 = {0}, m2 = {0};
	uint64_t held;
	uint8_t epoch[16] = {0x77};

	cl_open(&c, NULL, "127.0.0.1", f.port);
	held = cl_welcome(&c, "reorder-host", epoch, k, sizeof(k) - 1);
	make_blocks(b, 2, "reorder-host", held + 1, 20, svc, 1);
	batch_of(&m1, b, (int[]){0}, 1);
	batch_of(&m2, b, (int[]){1}, 1);
	CHECK_EQ(rt_wire_tag(&c.sess, &m1, 0), 0);
	CHECK_EQ(rt_wire_tag(&c.sess, &m2, 0), 0);
	cl_send(c.fd, m2.p, m2.len);
	cl_send(c.fd, m1.p, m1.len);
	cl_expect_error(&c, RT_WE_AUTH, "failed authentication", "two frames swapped");
	cl_close(&c);
	free_blocks(b, 2);
	rt_buf_free(&m1);
	rt_buf_free(&m2);
	{
		char path[400];
		CHECK(!fc_central_spool(&f, "reorder-host", path, sizeof(path)),
		      "swapped frames left a spool on the central");
	}
}

int main(int argc, char **argv)
{
	struct sc_result loc, cen;
	const char *rings[1];
	uint64_t t0, deadline, worst_lead = 0;
	int refused_c, refused_s, altered;

	CHECK(argc == 4, "usage: forward_tamper RINGTAILD RINGTAIL CASE");
	for (mode = 0; mode <= REORDER && strcmp(argv[3], mode_names[mode]); mode++)
		;
	CHECK(mode <= REORDER, "no case '%s'", argv[3]);
	if (system("command -v lz4 >/dev/null") != 0) {
		printf("SKIP: lz4 is not installed\n");
		return T_SKIP;
	}
	fc_init(&f, "fwtamper", argv[1], argv[2], 1);
	fc_start_central(&f);
	if (mode == REORDER) {
		reorder();
		CHECK(count_lines(f.log, "failed authentication") == 1, "the central's log");
		fc_stop(f.central_pid);
		printf("ok - reorder: two frames of a key holder, tagged in order and sent swapped, "
		       "refused; nothing stored\n");
		fc_cleanup(&f);
		return 0;
	}
	px_start();
	f.upstream_port = px->port;
	rings[0] = f.host[0].ring;
	fc_start_sender(&f, 0);
	sc_start_writers_into(2000, rings);

	/* The attacks, while the writers write and the sender sends. */
	t0 = t_now_ns();
	deadline = t0 + 60ull * 1000000000;
	while (__atomic_load_n(&px->attacks, __ATOMIC_ACQUIRE) < ATTACKS) {
		uint64_t a = sender_acked(), d = fc_central_durable(&f, 0);
		/* The sender never believes more than the central holds. */
		if (a > d)
			worst_lead = a - d > worst_lead ? a - d : worst_lead;
		CHECK(t_now_ns() < deadline, "only %d attacks in 60 s", px->attacks);
		t_pause();
	}
	/* Then an honest proxy: everything gets through, no stall. */
	sc_stop_writers();
	fc_wait_forwarded(&f, 0, 60ull * 1000000000);
	printf("%s: %d attacks; the sender delivered everything %.2f s after the first\n",
	       mode_names[mode], ATTACKS, (double)(t_now_ns() - t0) / 1e9);
	fc_stop(f.host[0].pid);
	fc_stop(f.central_pid);
	__atomic_store_n(&px->stop, 1, __ATOMIC_RELEASE);
	CHECK_EQ(t_wait(px->pid), 0); /* the proxy's own checks passed */
	close(px->lfd);

	refused_c = count_lines(f.log, "failed authentication") +
		    count_lines(f.log, "a frame without its authentication tag");
	refused_s = count_lines(f.host[0].log, "not believed");
	if (mode == INJECT_ACK)
		CHECK(refused_s >= ATTACKS, "the sender refused %d of %d forged ACKs", refused_s,
		      ATTACKS);
	else
		CHECK(refused_c >= ATTACKS, "the central refused %d of %d attacks as unauthentic",
		      refused_c, ATTACKS);
	CHECK(worst_lead == 0, "the sender believed #%llu more than the central held",
	      (unsigned long long)worst_lead);
	if (mode == REWRITE || mode == INJECT)
		CHECK(px->would_pass == ATTACKS,
		      "only %d of %d forgeries would have passed the content checks: the test "
		      "does not show what the tags stop",
		      px->would_pass, ATTACKS);
	fc_check_host(&f, 0, 1, &loc, &cen);
	CHECK(cen.taken == loc.taken, "%llu records at home, %llu on the central",
	      (unsigned long long)loc.taken, (unsigned long long)cen.taken);
	altered = central_records_with("PAYLOAD-") + central_records_with("request ");
	CHECK(altered == 0, "%d altered or forged records on the central", altered);
	printf("ok - %s: %d attacks, %d refused by the central and %d by the sender as not "
	       "authentic%s; altered/injected/replayed records stored: %d; all %llu records "
	       "taken are on the central once, in the same blocks as at home\n",
	       mode_names[mode], ATTACKS, refused_c, refused_s,
	       mode == REWRITE || mode == INJECT ? " (each forgery passed every content check)"
						 : "",
	       altered, (unsigned long long)cen.taken);
	fc_cleanup(&f);
	return 0;
}
