/* SPDX-License-Identifier: MIT */
/*
 * rtwire.h - the forwarding protocol between ringtaild --upstream (the
 * sender) and ringtaild --listen (the central server): docs/protocol.md.
 *
 * Every message (frame) is a 16-byte header, a payload and, in a keyed
 * session once the handshake has reached it, a 32-byte tag:
 *
 *   0        4      5      6       8        12       16            16+len
 *   +--------+------+------+-------+--------+--------+---------+---------+
 *   | RTFW   | type | ver  | flags | length | sum    | payload | [tag]   |
 *   +--------+------+------+-------+--------+--------+---------+---------+
 *   ver 2; flags: RT_WF_TAG when the tag follows (length does not count it);
 *   sum: the low 32 bits of the XXH3-64 of the payload (against corruption,
 *   in both modes; it is not security);
 *   tag = HMAC-SHA256(direction key, u64 frame counter | header | payload).
 *
 * The direction keys come from HKDF-SHA256 over the authenticating key, both
 * nonces and a hash of the HELLO and CHALLENGE payloads; the counter is
 * implicit (each side counts the frames it sends and receives from the
 * first tagged one), so a frame modified, injected, replayed, reordered or
 * cut fails its tag. The sender's first tagged frame is AUTH, the server's
 * WELCOME: each proves its end holds the key.
 *
 * Functions here only encode and check bytes; they do no I/O and trust
 * nothing they decode.
 */
#ifndef RTWIRE_H
#define RTWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "rtseg.h"

#define RT_WIRE_MAGIC 0x57465452u /* "RTFW" */
#define RT_WIRE_VERSION 2
#define RT_WIRE_HDR 16u
#define RT_WIRE_MAX_PAYLOAD (64u << 20)   /* any message */
#define RT_WIRE_MAX_HANDSHAKE 4096u       /* any message before authentication */
#define RT_WIRE_NONCE 32u
#define RT_WIRE_TAG 32u                   /* HMAC-SHA256 */
#define RT_WIRE_DEFAULT_PORT 7347

#define RT_WF_TAG 0x0001u /* header flag: a tag follows the payload */

enum rt_wire_type {
	RT_W_HELLO = 1,     /* sender: who it is */
	RT_W_CHALLENGE = 2, /* server: a nonce, and whether it wants a proof */
	RT_W_AUTH = 3,      /* sender: its proof (the tag of this frame) */
	RT_W_WELCOME = 4,   /* server: its proof (the tag), and what it holds already */
	RT_W_BATCH = 5,     /* sender: blocks, taken whole or not at all */
	RT_W_ACK = 6,       /* server: durable up to here */
	RT_W_GAP = 7,       /* sender: these records are not there to send */
	RT_W_ERROR = 8,     /* either: why the connection is closing */
	RT_W_PING = 9,
	RT_W_PONG = 10,
};

/* Error codes of RT_W_ERROR. */
enum rt_wire_err {
	RT_WE_PROTOCOL = 1,  /* malformed or unexpected message */
	RT_WE_VERSION = 2,   /* version not supported */
	RT_WE_AUTH = 3,      /* proof missing or wrong; a frame failing its tag */
	RT_WE_BUSY = 4,      /* that host and epoch are connected already, or too many */
	RT_WE_SEQUENCE = 5,  /* a batch that does not follow on */
	RT_WE_DATA = 6,      /* a block that fails its checks */
	RT_WE_STORAGE = 7,   /* the server cannot store it now (disk full...) */
	RT_WE_FORBIDDEN = 8, /* not from loopback and no key configured; a new epoch
				without the host's own key */
	RT_WE_TIMEOUT = 9,   /* too slow: the handshake's deadline, a frame's rate */
};

struct rt_wire_hdr {
	uint8_t type;
	uint8_t version;
	uint16_t flags;
	uint32_t len;
	uint32_t sum;
};

uint32_t rt_wire_sum(const void *p, size_t n);

/* rt_wire_hdr_put - a version 2 header, no flags, for a payload of @len
 * bytes with @sum. */
void rt_wire_hdr_put(uint8_t out[RT_WIRE_HDR], int type, uint32_t len, uint32_t sum);

/*
 * rt_wire_hdr_get - check a header: magic, version, a known type and flags,
 * a length within @max. @h is filled in whatever the answer (so that a
 * caller can tell a peer of another version what it is).
 * @return 0; -EBADMSG (not ours, unknown type or flags), -EPROTONOSUPPORT
 * (another version), -EMSGSIZE (too long).
 */
int rt_wire_hdr_get(const uint8_t in[RT_WIRE_HDR], uint32_t max, struct rt_wire_hdr *h);

/*
 * rt_wire_frame - is there a whole frame at the start of @p (@n bytes)?
 * @return its length on the wire (header, payload and tag), 0 when more
 * bytes are needed, or the error of rt_wire_hdr_get() (@h filled in).
 */
long rt_wire_frame(const uint8_t *p, size_t n, uint32_t max, struct rt_wire_hdr *h);

/* A message in a buffer: rt_wire_begin() reserves the header, the payload is
 * appended, rt_wire_end() fills in the header (version 2, untagged). */
int rt_wire_begin(struct rt_buf *b);
void rt_wire_end(struct rt_buf *b, size_t start, int type);

/* ------------------------------------------------------------------------
 * Sessions: the keys of one connection, and the tags of its frames
 * ------------------------------------------------------------------------ */

struct rt_wire_session {
	int keyed;              /* 0: no key (loopback): no tags, and none accepted */
	uint64_t sent, received; /* frames tagged so far, each way: the counters */
	void *send_mac, *recv_mac; /* EVP_MAC_CTX, keyed with the direction keys */
};

/*
 * rt_wire_session_init - the session of one connection, from the
 * authenticating @key (NULL: a keyless session) and the HELLO and CHALLENGE
 * payloads exactly as sent (@hello, @challenge). @server: which end this is
 * (its send key is the server->sender one). Both ends derive
 *
 *   T        = SHA-256("ringtail/2 transcript" | u32 len | HELLO | u32 len | CHALLENGE)
 *   salt     = nonce of the HELLO | nonce of the CHALLENGE
 *   key(dir) = HKDF-SHA256(@key, salt, "ringtail/2 " dir " frames" | T), 32 bytes
 *
 * for dir "sender->server" and "server->sender".
 * @return 0, -EBADMSG (payloads too short to hold nonces), -ENOMEM, -EIO.
 */
int rt_wire_session_init(struct rt_wire_session *s, const uint8_t *key, size_t key_len, int server,
			 const uint8_t *hello, size_t hello_len, const uint8_t *challenge,
			 size_t challenge_len);
/* rt_wire_session_free - forget the keys. Accepts a zeroed session. */
void rt_wire_session_free(struct rt_wire_session *s);

/*
 * rt_wire_tag - in a keyed session, set RT_WF_TAG in the header of the
 * finished message at @start of @b (the last one in it) and append its tag;
 * the send counter moves on. In a keyless session, nothing.
 * @return 0, -ENOMEM, -EIO.
 */
int rt_wire_tag(struct rt_wire_session *s, struct rt_buf *b, size_t start);

/*
 * rt_wire_verify - check a received frame: @raw is its header as received,
 * @h that header parsed, @payload its h->len bytes, @tag the RT_WIRE_TAG
 * bytes after them when h->flags has RT_WF_TAG (else NULL). In a keyed
 * session the tag must be there and be this frame's (compared in constant
 * time); the receive counter moves on only then. In a keyless session there
 * must be none. Then the sum. *@why says what failed, for the log.
 * @return 0; -EACCES (tag missing or wrong); -EBADMSG (a tag where none is
 * due, the sum); -EIO.
 */
int rt_wire_verify(struct rt_wire_session *s, const uint8_t raw[RT_WIRE_HDR],
		   const struct rt_wire_hdr *h, const uint8_t *payload, const uint8_t *tag,
		   const char **why);

/* ------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------ */

struct rt_hello {
	uint32_t version;
	uint32_t features;
	uint8_t epoch[16];
	uint8_t nonce[RT_WIRE_NONCE];
	char host[256];
};

struct rt_challenge {
	uint32_t version;
	uint32_t flags;               /* RT_CH_* */
	uint8_t nonce[RT_WIRE_NONCE];
};
#define RT_CH_AUTH 0x1u /* the server has a key for this host: prove you hold it */

struct rt_welcome {
	uint64_t durable_seq;   /* last record held for this host and epoch (0: none) */
	uint32_t max_batch;     /* largest BATCH payload it takes */
	uint32_t flags;         /* 0 */
};

int rt_wire_hello(struct rt_buf *b, const struct rt_hello *h);
/* rt_wire_get_hello - decode a HELLO of any version whose layout is this
 * one's (1 and 2). @return 0, -EBADMSG (malformed), -EINVAL (its host fails
 * rt_wire_host_ok()). */
int rt_wire_get_hello(const uint8_t *p, size_t n, struct rt_hello *h);
int rt_wire_challenge(struct rt_buf *b, const struct rt_challenge *c);
int rt_wire_get_challenge(const uint8_t *p, size_t n, struct rt_challenge *c);
int rt_wire_auth(struct rt_buf *b);                      /* empty: its tag is the proof */
int rt_wire_get_auth(const uint8_t *p, size_t n);
int rt_wire_welcome(struct rt_buf *b, const struct rt_welcome *w);
int rt_wire_get_welcome(const uint8_t *p, size_t n, struct rt_welcome *w);
int rt_wire_u64(struct rt_buf *b, int type, uint64_t v);         /* ACK */
int rt_wire_get_u64(const uint8_t *p, size_t n, uint64_t *v);
int rt_wire_gap(struct rt_buf *b, uint64_t from, uint64_t to);
int rt_wire_get_gap(const uint8_t *p, size_t n, uint64_t *from, uint64_t *to);
int rt_wire_error(struct rt_buf *b, uint32_t code, const char *reason);
/* rt_wire_error_v1 - an ERROR framed as protocol version 1 has it, for a
 * peer that speaks only that: it can read why it is refused. */
int rt_wire_error_v1(struct rt_buf *b, uint32_t code, const char *reason);
int rt_wire_get_error(const uint8_t *p, size_t n, uint32_t *code, char *reason, size_t cap);
int rt_wire_empty(struct rt_buf *b, int type); /* PING, PONG */

/*
 * A BATCH payload: u32 blocks, then per block u32 INDEX frame length, the
 * sender's INDEX frame as it is in its segment, u32 DATA frame length, the
 * DATA frame. rt_wire_batch_add() appends one block to a message begun with
 * rt_wire_begin() and a u32 0 written by rt_wire_batch_start().
 */
int rt_wire_batch_start(struct rt_buf *b);
int rt_wire_batch_add(struct rt_buf *b, size_t start, const uint8_t *index, uint32_t index_len,
		      const uint8_t *data, uint32_t data_len);

struct rt_wire_block {
	const uint8_t *index;
	uint32_t index_len;
	const uint8_t *data;
	uint32_t data_len;
};

/* rt_wire_batch_count - the blocks a BATCH payload claims; -EBADMSG. */
int rt_wire_batch_count(const uint8_t *p, size_t n, uint32_t *count);
/* rt_wire_batch_next - the next block at *@pos (start at 4).
 * @return 1 with @b filled, 0 at the end, -EBADMSG. */
int rt_wire_batch_next(const uint8_t *p, size_t n, size_t *pos, struct rt_wire_block *b);

/*
 * Checking a BATCH before anything of it is stored (batch.c): framing, every
 * INDEX frame and DATA checksum, sequence, and the INDEX frame's claims
 * against the decompressed, decoded block. Trusts nothing in @p.
 */
struct rt_batch {
	struct rt_seg_block *blocks; /* the INDEX frames, parsed */
	uint32_t n;                  /* blocks */
	uint32_t skip;               /* the first @skip are held already */
	uint64_t next;               /* the record after the last new block */
	uint32_t code;               /* when refused: RT_WE_* */
	char why[200];               /* ... and why, for the ERROR and the log */
	struct rt_buf body;          /* scratch, kept between batches */
	struct rt_block blk;
};

/*
 * rt_batch_check - check BATCH payload @p against what the server holds for
 * @host: every record up to @durable (0: none), the next expected @expect
 * (0: any). @b starts zeroed and is reused from batch to batch.
 * @return 0 (blocks[skip..n) are new and follow on), -EBADMSG (refused:
 * b->code, b->why), -ENOMEM.
 */
int rt_batch_check(struct rt_batch *b, const uint8_t *p, size_t n, const char *host,
		   uint64_t durable, uint64_t expect);
void rt_batch_free(struct rt_batch *b);

/* ------------------------------------------------------------------------
 * Names and keys
 * ------------------------------------------------------------------------ */

/* rt_wire_host_ok - a host name as it may be sent and stored: 1..255 bytes
 * of [A-Za-z0-9._-], not starting with '.' or '-' (so never "." or "..",
 * never a path, never '~', which the views use to name other epochs). */
int rt_wire_host_ok(const char *host);

/* rt_wire_tag_equal - constant-time comparison of two tags. */
int rt_wire_tag_equal(const uint8_t *a, const uint8_t *b);

/*
 * rt_wire_load_key - read a key file (16 to @cap - 1 bytes; a trailing
 * newline is not part of it), @name beneath directory @dirfd (AT_FDCWD: a
 * path), never through a symbolic link. Refuses what an ssh would refuse
 * for a private key: a file that is not regular, owned by someone other
 * than us or root, or that group or others may read or write.
 * @return the key length, or -ENOENT, -EACCES, -ELOOP (a symbolic link),
 * -EPERM (mode), -EOWNERDEAD (owner), -EINVAL (not a regular file, too
 * short or too long).
 */
int rt_wire_load_key(int dirfd, const char *name, uint8_t *key, size_t cap);

/* rt_wire_key_error - what a rt_wire_load_key() error means, for people. */
const char *rt_wire_key_error(int err);

/* rt_wire_parse_addr - "HOST:PORT", "[V6]:PORT", or ":PORT"/"PORT" (any). */
int rt_wire_parse_addr(const char *s, char *host, size_t hcap, char *port, size_t pcap);

#endif /* RTWIRE_H */
