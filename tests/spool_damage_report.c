/* SPDX-License-Identifier: MIT */
/*
 * spool_damage_report - what recovery says about damage names the segment,
 * the exact bytes it set aside, the block and the records they held, and
 * the quarantine file that has those bytes (byte for byte).
 *
 *   spool_damage_report data|index|header|footer|tail
 *
 *  data:   a bit of block 2's DATA frame flipped (the INDEX says what it held)
 *  index:  a bit of block 2's INDEX frame flipped (its neighbours say it)
 *  header: a bit of the HEADER flipped: a new header, no records lost
 *  footer: a bit of the FOOTER of a closed segment flipped: no records lost
 *  tail:   the newest segment cut inside block 3 after it was durable: the
 *          cut-off bytes are kept, and the lost records are named
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "helpers.h"
#include "rtspool.h"

#define NBLOCKS 5
#define NAME "00000000000000000001.lz4"

static struct rt_buf seg;
static uint64_t frame_end[NBLOCKS + 2], index_off[NBLOCKS], first[NBLOCKS + 1];
static char logbuf[16384];

static void collect(void *arg, int sev, const char *msg)
{
	(void)arg;
	(void)sev;
	snprintf(logbuf + strlen(logbuf), sizeof(logbuf) - strlen(logbuf), "%s\n", msg);
}

static void build(const uint8_t epoch[16], const char *host, int closed)
{
	struct rt_seg_hdrinfo h;
	struct rt_bb *bb;
	struct rt_cursor c = {0, 1, 0, 0, 0, 0, 0};
	uint64_t seq = 1;
	char msg[64];

	memset(&h, 0, sizeof(h));
	memcpy(h.epoch, epoch, 16);
	snprintf(h.host, sizeof(h.host), "%s", host);
	h.first_seq = 1;
	h.ring_id = 7;
	h.render_version = RT_RENDER_VERSION;
	CHECK_EQ(rt_seg_header_frame(&seg, &h, &c, 1), 0);
	frame_end[0] = seg.len;
	CHECK_EQ(rt_bb_new(host, &bb), 0);
	for (int b = 0; b < NBLOCKS; b++) {
		rt_bb_reset(bb, seq);
		first[b] = seq;
		for (int k = 0; k < 20; k++) {
			struct rt_rec r;
			memset(&r, 0, sizeof(r));
			r.time_ns = 1700000000000000000ull + seq * 1000;
			r.pid = 42;
			r.tid = 43;
			r.severity = RT_INFO;
			r.service = "svc";
			r.service_len = 3;
			r.msg = msg;
			r.msg_len = (size_t)snprintf(msg, sizeof(msg), "record %llu", (unsigned long long)seq);
			CHECK_EQ(rt_bb_add(bb, &r), 0);
			seq++;
		}
		c.pos = seq * 64;
		index_off[b] = seg.len;
		CHECK_EQ(rt_bb_seal(bb, &seg, seg.len, (uint32_t)b, 7, &c, 1), 0);
		frame_end[b + 1] = seg.len;
	}
	first[NBLOCKS] = seq;
	rt_bb_free(bb);
	if (closed)
		CHECK_EQ(rt_seg_footer_frame(&seg, seg.len, 1, seq, 0, 0, index_off, NBLOCKS), 0);
}

/* The log says @want (a substring). */
static void expect(const char *want)
{
	CHECK(strstr(logbuf, want), "the report lacks \"%s\"; it says:\n%s", want, logbuf);
}

/* quarantine/NAME.damaged-OFF holds exactly bytes [off, end) of the segment. */
static void expect_quarantined(const char *spool, uint64_t off, uint64_t end)
{
	char path[512];
	struct stat st;
	uint8_t *p;
	int fd;

	snprintf(path, sizeof(path), "%s/quarantine/%s.damaged-%llu", spool, NAME,
		 (unsigned long long)off);
	fd = open(path, O_RDONLY);
	CHECK(fd >= 0 && fstat(fd, &st) == 0, "%s is missing", path);
	CHECK((uint64_t)st.st_size == end - off, "%s holds %lld bytes, want %llu", path,
	      (long long)st.st_size, (unsigned long long)(end - off));
	p = malloc(end - off);
	CHECK(read(fd, p, end - off) == (ssize_t)(end - off), "read");
	CHECK(!memcmp(p, seg.p + off, end - off), "%s holds other bytes than the segment's", path);
	close(fd);
	free(p);
}

int main(int argc, char **argv)
{
	char spool[128], want[512];
	struct rt_spool *sp;
	struct rt_recovered rec;
	const char *c = argc > 1 ? argv[1] : "";
	uint64_t durable = 0;
	size_t len;
	int fd, closed = !strcmp(c, "footer");

	CHECK(argc == 2, "usage: spool_damage_report data|index|header|footer|tail");
	snprintf(spool, sizeof(spool), "/dev/shm/rt-test-report-%d", (int)getpid());
	CHECK_EQ(rt_spool_open(spool, "report-host", RT_SPOOL_CREATE | RT_SPOOL_LOCK, &sp), 0);
	build(sp->epoch, sp->host, closed);
	len = seg.len;
	if (!strcmp(c, "data")) {
		seg.p[index_off[2] + (frame_end[3] - index_off[2]) * 3 / 4] ^= 0x10;
	} else if (!strcmp(c, "index")) {
		seg.p[index_off[2] + 40] ^= 0x01;
	} else if (!strcmp(c, "header")) {
		seg.p[30] ^= 0x04;
	} else if (!strcmp(c, "footer")) {
		seg.p[seg.len - 20] ^= 0x80;
	} else if (!strcmp(c, "tail")) {
		len = (size_t)(frame_end[4] - 10); /* inside block 3's DATA frame */
		durable = first[NBLOCKS] - 1; /* everything was durable */
	} else {
		CHECK(0, "unknown case %s", c);
	}
	fd = openat(sp->dirfd, NAME, O_WRONLY | O_CREAT | O_TRUNC, 0640);
	CHECK(fd >= 0 && write(fd, seg.p, len) == (ssize_t)len, "write");
	close(fd);
	memset(sp->state, 0, sizeof(*sp->state));
	memcpy(sp->state->magic, RT_STATE_MAGIC, 8);
	memcpy(sp->state->epoch, sp->epoch, 16);
	sp->state->durable_seq = durable;
	CHECK_EQ(rt_spool_recover(sp, 7, 16, collect, NULL, &rec), 0);
	rt_recovered_free(&rec);

	if (!strcmp(c, "data") || !strcmp(c, "index")) {
		snprintf(want, sizeof(want),
			 "segment %s: bytes %llu to %llu are damaged (", NAME,
			 (unsigned long long)index_off[2], (unsigned long long)frame_end[3] - 1);
		expect(want);
		snprintf(want, sizeof(want), "block 2, records #%llu to #%llu; moved to quarantine/%s.damaged-%llu",
			 (unsigned long long)first[2], (unsigned long long)first[3] - 1, NAME,
			 (unsigned long long)index_off[2]);
		expect(want);
		expect(!strcmp(c, "data") ? "data checksum mismatch" : "frame checksum mismatch");
		expect_quarantined(spool, index_off[2], frame_end[3]);
		snprintf(want, sizeof(want), "#1 to #%llu in %s, #%llu to #%llu in %020llu.lz4",
			 (unsigned long long)first[2] - 1, NAME, (unsigned long long)first[3],
			 (unsigned long long)first[NBLOCKS] - 1, (unsigned long long)first[3]);
		expect(want);
	} else if (!strcmp(c, "header")) {
		snprintf(want, sizeof(want), "segment %s: bytes 0 to %llu are damaged (", NAME,
			 (unsigned long long)frame_end[0] - 1);
		expect(want);
		expect("the header, no records");
		expect("repaired (with a new header)");
		snprintf(want, sizeof(want), "#1 to #%llu in %s", (unsigned long long)first[NBLOCKS] - 1,
			 NAME);
		expect(want);
		expect_quarantined(spool, 0, frame_end[0]);
	} else if (!strcmp(c, "footer")) {
		snprintf(want, sizeof(want), "segment %s: bytes %llu to %llu are damaged (", NAME,
			 (unsigned long long)frame_end[NBLOCKS], (unsigned long long)seg.len - 1);
		expect(want);
		expect("): no records; moved to");
		expect_quarantined(spool, frame_end[NBLOCKS], seg.len);
	} else {
		snprintf(want, sizeof(want),
			 "segment %s: bytes %llu to %llu are damaged (data frame cut short at offset "
			 "%llu): block 3 and after, records #%llu to #%llu; moved to quarantine/%s.damaged-%llu",
			 NAME, (unsigned long long)index_off[3], (unsigned long long)len - 1,
			 (unsigned long long)index_off[3], (unsigned long long)first[3],
			 (unsigned long long)durable, NAME, (unsigned long long)index_off[3]);
		expect(want);
		expect_quarantined(spool, index_off[3], len);
		snprintf(want, sizeof(want), "records #%llu to #%llu were lost to damage; numbering "
			 "continues at #%llu",
			 (unsigned long long)first[3], (unsigned long long)durable,
			 (unsigned long long)durable + 1);
		expect(want);
	}
	printf("ok - %s damage: the report names %s, the bytes, the block and the records; the "
	       "quarantine file holds exactly those bytes\n%s",
	       c, NAME, logbuf);
	rt_spool_close(sp);
	{
		char cmd[256];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", spool);
		CHECK(system(cmd) == 0, "cleanup");
	}
	rt_buf_free(&seg);
	return 0;
}
