/* SPDX-License-Identifier: MIT */
/*
 * rtseg.h - segment files: the spool's on-disk format (docs/segment.md).
 *
 * A segment is a valid LZ4 frame stream: `lz4 -t` accepts it and `lz4 -dc`
 * decodes it. ringtail's own metadata rides in LZ4 skippable frames, which
 * lz4 passes over:
 *
 *   +--------+-------+------+-------+------+-- ... --+--------+
 *   | HEADER | INDEX | DATA | INDEX | DATA |         | FOOTER |   FOOTER only
 *   | skip   | skip  | LZ4  | skip  | LZ4  |         | skip   |   once closed
 *   +--------+-------+------+-------+------+-- ... --+--------+
 *
 * Every skippable frame is
 *
 *   0        4        8      12   13  14      16               24
 *   +--------+--------+------+----+---+-------+----------------+------...
 *   |2A5E 4D18| size  | RTSG |kind|ver|fixlen | XXH3-64 of     | fixed part,
 *   | (magic) |       |      |    |   |       | bytes 24..end  | then variable
 *   +--------+--------+------+----+---+-------+----------------+------...
 *   size = bytes after the first 8; all integers little-endian.
 *
 * A block is an INDEX frame (what the block holds, where its DATA frame is,
 * the XXH3-64 of the DATA frame's bytes) followed by the DATA frame: one LZ4
 * frame (with its content size) whose content is the columnar block body.
 * Records in a block have consecutive sequence numbers.
 *
 * Functions return 0 (or a count) or a negative errno; nothing here prints.
 */
#ifndef RTSEG_H
#define RTSEG_H

#include <stddef.h>
#include <stdint.h>

#include "rtrec.h"
#include "rtshm.h"

#define RT_SEG_VERSION 1
#define RT_SEG_SKIP_MAGIC 0x184D2A5Eu /* an LZ4 skippable frame magic */
#define RT_SEG_MAGIC 0x47535452u      /* "RTSG" */
#define RT_SEG_TRAILER_MAGIC 0x54465452u /* "RTFT": the last 4 bytes of a closed segment */
#define RT_LZ4_FRAME_MAGIC 0x184D2204u
#define RT_SEG_FRAME_HDR 24u          /* magic, size, RTSG, kind, ver, fixlen, checksum */
#define RT_SEG_MAX_FRAME (64u << 20)

enum rt_seg_kind {
	RT_SEG_HEADER = 1,
	RT_SEG_INDEX = 2,
	RT_SEG_FOOTER = 3,
};

/* Severity classes of the per-service statistics: TRACE DEBUG INFO WARN
 * ERROR FATAL (SeverityNumber 1-4, 5-8, ...). */
#define RT_SEV_CLASSES 6
static inline int rt_sev_class(int sev)
{
	return (sev - 1) / 4;
}

/* A growable byte buffer. */
struct rt_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
};
int rt_buf_grow(struct rt_buf *b, size_t more);
/* Make room for @more bytes after b->len. @return 0 or -ENOMEM. */
static inline int rt_buf_reserve(struct rt_buf *b, size_t more)
{
	return b->cap - b->len >= more ? 0 : rt_buf_grow(b, more);
}
int rt_buf_put(struct rt_buf *b, const void *p, size_t n);
void rt_buf_free(struct rt_buf *b);

/* ------------------------------------------------------------------------
 * Building blocks (the spooler)
 * ------------------------------------------------------------------------ */

struct rt_bb; /* a block being built */

/* rt_bb_new - a block builder rendering sizes for host @host.
 * @return 0 with *@out set, or -ENOMEM. */
int rt_bb_new(const char *host, struct rt_bb **out);
void rt_bb_free(struct rt_bb *bb);

/* rt_bb_reset - start an empty block whose first record gets @first_seq. */
void rt_bb_reset(struct rt_bb *bb, uint64_t first_seq);

/*
 * rt_bb_add - append @r (time in ns) as the next record; its sequence number
 * is the block's first plus the records before it.
 * @return 0; -ENOSPC when the block cannot take it (too many distinct
 * services or writers): seal, reset, and add again; -ENOMEM.
 */
int rt_bb_add(struct rt_bb *bb, const struct rt_rec *r);

/* Records in the block, and bytes its body will have. */
uint32_t rt_bb_count(const struct rt_bb *bb);
size_t rt_bb_body_len(const struct rt_bb *bb);
/* Sequence number the next record would get. */
uint64_t rt_bb_next_seq(const struct rt_bb *bb);
/* Earliest and latest record time in the block. */
void rt_bb_times(const struct rt_bb *bb, uint64_t *tmin, uint64_t *tmax);

/*
 * rt_bb_seal - append the block to @out as an INDEX frame and a DATA frame.
 * @data_off: file offset where the bytes appended to @out will start.
 * @block_no: the block's position in its segment.
 * @ring_id/@cur/@ncur: the ring positions the block's records take the
 * consumer to (rt_consumer_mark()), so a restart neither loses nor repeats.
 * @return 0, -ENOMEM, or -EIO if LZ4 failed.
 */
int rt_bb_seal(struct rt_bb *bb, struct rt_buf *out, uint64_t data_off, uint32_t block_no,
	       uint64_t ring_id, const struct rt_cursor *cur, size_t ncur);

/* ------------------------------------------------------------------------
 * Headers and footers (the spooler)
 * ------------------------------------------------------------------------ */

struct rt_seg_hdrinfo {
	uint8_t epoch[16];  /* the spool's epoch id */
	char host[256];     /* NUL-terminated host name */
	uint64_t first_seq;
	uint64_t created_ns;
	uint64_t ring_id;   /* 0 when the cursor below means nothing */
	uint32_t render_version;
};

/* rt_seg_header_frame - append a HEADER frame. @return 0 or -ENOMEM. */
int rt_seg_header_frame(struct rt_buf *out, const struct rt_seg_hdrinfo *h,
			const struct rt_cursor *cur, size_t ncur);

/*
 * rt_seg_footer_frame - append the FOOTER frame that closes a segment.
 * @footer_off: file offset the frame will start at.
 * @index_off: file offset of each block's INDEX frame.
 */
int rt_seg_footer_frame(struct rt_buf *out, uint64_t footer_off, uint64_t first_seq,
			uint64_t next_seq, uint64_t tmin, uint64_t tmax, const uint64_t *index_off,
			uint32_t nblocks);

/* ------------------------------------------------------------------------
 * Reading segments
 * ------------------------------------------------------------------------ */

struct rt_svcstat {
	char name[RT_SERVICE_MAX + 1];
	uint8_t name_len;
	uint32_t count[RT_SEV_CLASSES];
	uint64_t bytes[RT_SEV_CLASSES]; /* rendered bytes (docs/fs.md lines) */
};

struct rt_seg_block {
	uint32_t block_no;
	uint32_t nrec;
	uint64_t first_seq;
	uint64_t tmin, tmax;
	uint64_t index_off;
	uint32_t index_len;
	uint64_t data_off;
	uint32_t data_len;
	uint32_t body_len;
	uint64_t data_sum;     /* XXH3-64 of the DATA frame's bytes */
	uint64_t ring_id;
	uint32_t render_version;
	uint32_t nsvc;
	struct rt_svcstat *svc;
	uint32_t bloom_bits;
	uint8_t *bloom;
	uint32_t ncursor;
	struct rt_cursor *cursor;
};

struct rt_seg {
	int fd;
	int own_fd;
	uint64_t size;          /* bytes of the file when scanned */
	struct rt_seg_hdrinfo hdr;
	uint32_t hdr_ncursor;
	struct rt_cursor *hdr_cursor;
	uint32_t nblocks;
	struct rt_seg_block *blocks;
	int closed;             /* a valid footer ends it */
	uint64_t valid_end;     /* end of the last whole, valid frame */
	uint64_t next_seq;      /* first_seq + records in the valid blocks */
	uint64_t tmin, tmax;
	/* The first problem found, if any (valid_end is where it starts). */
	int damaged;
	char damage[192];
	/* The largest sequence number any readable INDEX frame claims, valid
	 * or not, so that numbers are never handed out twice. */
	uint64_t seq_ceiling;
	/* rt_seg_salvage() only: the header could not be read (->hdr holds
	 * only the first sequence number the file's name gives). */
	int hdr_bad;
};

#define RT_SEG_VERIFY 0x1u   /* check every DATA frame's checksum while scanning */
#define RT_SEG_NOFOOTER 0x2u /* scan frame by frame even if a footer is there */

/*
 * rt_seg_open_fd - read a segment's header and index (from the footer when
 * there is a valid one, else frame by frame). A segment with damage is still
 * opened: ->damaged says what and where, and ->blocks holds the valid prefix.
 * @limit: read no frame that ends past this offset (0: the file's size);
 * readers of a segment being written pass its durable length (SPOOL/state).
 * The fd is not closed by rt_seg_close() (use rt_seg_open() for that).
 * @return 0; -EBADMSG if the header itself is unreadable; -ENOMEM; -EIO.
 */
int rt_seg_open_fd(int fd, unsigned flags, uint64_t limit, struct rt_seg **out);

/* rt_seg_open - rt_seg_open_fd() on @name in directory @dirfd, no limit. */
int rt_seg_open(int dirfd, const char *name, unsigned flags, struct rt_seg **out);

void rt_seg_close(struct rt_seg *s);

/*
 * rt_seg_refresh - pick up blocks (and a footer) appended to a segment that
 * was not closed when opened or last refreshed, up to @limit (0: the file's
 * size). A frame cut short at the limit is not damage: it is looked at again
 * next time. @return blocks added, or -errno.
 */
int rt_seg_refresh(struct rt_seg *s, uint64_t limit, unsigned flags);

/*
 * rt_seg_read_body - read block @i's DATA frame, check its checksum, and
 * decompress it into @body (grown as needed).
 * @return 0; -EBADMSG on any mismatch; -EIO; -ENOMEM.
 */
int rt_seg_read_body(struct rt_seg *s, uint32_t i, struct rt_buf *body);

/*
 * rt_seg_probe - is there a whole, checksum-valid ringtail frame starting
 * anywhere in [@from, end of file)? Tells a torn tail (nothing valid after
 * the cut) from damage in the middle (valid frames follow it).
 * @return 1, 0, or a negative errno.
 */
int rt_seg_probe(struct rt_seg *s, uint64_t from);

/*
 * Salvage: a segment read whole, past any damage.
 *
 * rt_seg_salvage() reads every byte of a segment, checking every checksum,
 * and cuts it into pieces in file order: the HEADER, each BLOCK whose INDEX
 * and DATA frames both check, the FOOTER, and DAMAGE: bytes that hold no
 * such frame. After damage it looks for the next frame that checks and
 * whose block number and first sequence number come after those of the
 * blocks before it, so that every intact block is found, wherever the
 * damage is (the header included).
 */
enum rt_seg_piece_kind {
	RT_PIECE_HEADER = 1,
	RT_PIECE_BLOCK = 2,
	RT_PIECE_FOOTER = 3, /* the footer of exactly the blocks found */
	RT_PIECE_STALE = 4,  /* a footer that checks but lists other blocks */
	RT_PIECE_DAMAGE = 5,
};

struct rt_seg_piece {
	uint64_t off, end;  /* bytes [off, end) of the file */
	int kind;           /* enum rt_seg_piece_kind */
	int torn;           /* DAMAGE: a frame cut short by the end of the file, nothing after */
	uint32_t block;     /* BLOCK: index into ->blocks; DAMAGE: the block number when its
			     * INDEX frame checked (its DATA did not), else UINT32_MAX */
	uint32_t nrec;      /* DAMAGE with a readable INDEX: its records, from ... */
	uint64_t first_seq; /* ... this one */
	uint64_t claim;     /* DAMAGE: the number after those a readable INDEX frame in it
			     * claims (0: none). A frame the end of the file cuts short
			     * counts only here, not in ->seq_ceiling: it may be a write
			     * that never completed, whose numbers were never used. */
	char why[80];       /* DAMAGE: what is wrong at @off */
};

/*
 * rt_seg_salvage - read segment @fd whole (every checksum), up to @limit
 * (0: the file's size). @name_seq is the first sequence number its name
 * gives; it stands in for the header's when that is damaged (->hdr_bad).
 * *@out holds every valid block in file order (->blocks; each comes after
 * the one before it in number and sequence, but there may be gaps), ->closed
 * when a footer lists exactly them, ->damaged and ->damage (the first
 * damage), ->valid_end (the end of the undamaged prefix), ->next_seq (after
 * the last valid block) and ->seq_ceiling. *@pieces (malloc'd) and *@npieces
 * describe the whole file. rt_seg_read_body() works on the blocks.
 * @return 0, -ENOMEM, -EIO.
 */
int rt_seg_salvage(int fd, uint64_t name_seq, uint64_t limit, struct rt_seg **out,
		   struct rt_seg_piece **pieces, uint32_t *npieces);

/*
 * rt_seg_piece_what - what damaged piece @i of a salvage held, in words
 * ("block 4, records #81 to #100", "blocks 4 to 6, ...", "block 9 and
 * after, ...", "no records"), from the blocks on either side of it.
 * @tail_next: the number after the last record a damaged end can have held
 * (the next segment's name, or what was published as durable).
 */
void rt_seg_piece_what(const struct rt_seg *sv, const struct rt_seg_piece *p, uint32_t np,
		       uint32_t i, uint64_t tail_next, char *out, size_t n);

/*
 * rt_seg_reindex - @frame (@len bytes) is a whole, valid INDEX frame; make
 * it say block number @block_no with its DATA frame at @data_off (a block
 * moved to another place or file), everything else as it was, and its
 * checksum right again. @return 0 or -EBADMSG if it is not an INDEX frame.
 */
int rt_seg_reindex(uint8_t *frame, size_t len, uint32_t block_no, uint64_t data_off);

/*
 * rt_seg_parse_index - check a whole INDEX frame that is not read from a
 * file (@frame, @len bytes: its checksum, every field but the offsets, which
 * are the other file's) and fill @b (free with rt_seg_block_free()).
 * @return 0, -EBADMSG, -ENOMEM.
 */
int rt_seg_parse_index(const uint8_t *frame, size_t len, struct rt_seg_block *b);
void rt_seg_block_free(struct rt_seg_block *b);

/*
 * rt_seg_index_frame - append an INDEX frame for @b with its DATA frame at
 * @data_off and block number @block_no, carrying no ring cursor (a block
 * stored again elsewhere: the central server). @return 0, -ENOMEM, -E2BIG.
 */
int rt_seg_index_frame(struct rt_buf *out, const struct rt_seg_block *b, uint32_t block_no,
		       uint64_t data_off);

/* rt_seg_index_len - bytes rt_seg_index_frame() appends for @b. */
size_t rt_seg_index_len(const struct rt_seg_block *b);

/*
 * rt_block_inflate - decompress a DATA frame (@data, @data_len bytes) that
 * must hold exactly @body_len bytes, into @body. The caller has checked its
 * XXH3-64. @return 0, -EBADMSG, -ENOMEM.
 */
int rt_block_inflate(const uint8_t *data, uint32_t data_len, uint32_t body_len,
		     struct rt_buf *body);

/* rt_seg_name - "%020llu.lz4" for a segment whose first record is @seq. */
void rt_seg_name(char out[32], uint64_t seq);
/* rt_seg_parse_name - the first sequence number in a segment's name. */
int rt_seg_parse_name(const char *name, uint64_t *seq);

/* rt_bloom_maybe - could block @b hold trace id @trace? */
int rt_bloom_maybe(const struct rt_seg_block *b, const uint8_t trace[16]);

/* ------------------------------------------------------------------------
 * Decoding block bodies
 * ------------------------------------------------------------------------ */

struct rt_block {
	uint64_t first_seq;
	uint32_t nrec;
	/* Per record, decoded from the body. */
	uint64_t *time;
	uint8_t *sev;
	uint8_t *flags;
	uint16_t *svc;
	uint16_t *writer;
	uint32_t *msg_off, *msg_len;
	uint32_t *attr_off, *attr_len;
	uint32_t *ids_off;
	/* Dictionaries. */
	uint16_t nsvc, nwriters;
	const uint8_t *body;
	size_t body_len;
	const uint8_t *svc_names;   /* nsvc x {u8 len, bytes} */
	uint32_t *svc_off;          /* offset of each name in svc_names */
	const uint8_t *writers;     /* nwriters x {u32 pid, u32 tid} */
	const uint8_t *ids, *attrs, *msgs;
	void *mem;
	size_t mem_cap;
};

/*
 * rt_block_decode - check and decode a block body of @nrec records.
 * Pointers in @b point into @body, which must outlive it. @b may be reused
 * (its arrays grow). @return 0, -EBADMSG, -ENOMEM.
 */
int rt_block_decode(const void *body, size_t len, uint64_t first_seq, uint32_t nrec,
		    struct rt_block *b);
void rt_block_free(struct rt_block *b);

/* rt_block_rec - record @i of a decoded block (time in ns). */
void rt_block_rec(const struct rt_block *b, uint32_t i, struct rt_rec *out);

/* rt_block_service - record @i's service name and length. */
const char *rt_block_service(const struct rt_block *b, uint32_t i, size_t *len);

#endif /* RTSEG_H */
