/* SPDX-License-Identifier: MIT */
/*
 * rtrec.h - the ringtail record: decoded view, validation and encoding.
 *
 * The byte layout is drawn in include/ringtail.h (struct rt__rec) and written
 * up in docs/ring.md; ring chunks and segment blocks hold records in the same
 * layout. Nothing here trusts its input: every decoder checks every length.
 */
#ifndef RTREC_H
#define RTREC_H

#include <stddef.h>
#include <stdint.h>

#include "ringtail.h"

/* Public record flags (the same bits as RT__RF_*). */
#define RT_REC_TRACE RT__RF_TRACE
#define RT_REC_SPAN RT__RF_SPAN
#define RT_REC_LOSS RT__RF_LOSS

/* A decoded record. Pointers point into the buffer it was decoded from. */
struct rt_rec {
	uint64_t time_ns;   /* ns since the epoch (raw TSC ticks in a ring record with RT__RF_TSC) */
	uint32_t pid;
	uint32_t tid;
	uint8_t severity;   /* OTel SeverityNumber 1..24 */
	uint8_t flags;      /* RT_REC_* */
	const uint8_t *trace_id; /* 16 bytes, or NULL */
	const uint8_t *span_id;  /* 8 bytes, or NULL */
	const char *service;
	size_t service_len;
	const uint8_t *attrs;    /* encoded: {u8 klen, key, u16le vlen, value}... */
	size_t attrs_len;
	const char *msg;
	size_t msg_len;
};

/* One attribute, as iterated by rt_attr_next(). */
struct rt_attr_view {
	const char *key;
	size_t key_len;
	const char *value;
	size_t value_len;
};

/*
 * rt_rec_decode - validate and decode the record at @buf.
 * @avail: bytes available at @buf.
 * @flags_ok: record flags accepted (e.g. RT__RF_KNOWN & ~RT__RF_LOSS for
 *   records a writer made).
 * @stride: set to the record's padded size on success.
 * @return 0, or -EBADMSG when any field is out of range or the lengths do
 * not add up. Reads the header once, so a buffer changing underneath (shared
 * memory) cannot make it read out of bounds.
 */
int rt_rec_decode(const void *buf, size_t avail, unsigned flags_ok, struct rt_rec *out,
		  size_t *stride);

/*
 * rt_rec_size - bytes @r encodes to, before padding to 8.
 */
size_t rt_rec_size(const struct rt_rec *r);

/*
 * rt_rec_encode - write @r at @buf in the record layout, padding with zeros
 * to a multiple of 8. The caller provides RT__ALIGN8(rt_rec_size(r)) bytes.
 * @return the padded size written.
 */
size_t rt_rec_encode(const struct rt_rec *r, void *buf);

/*
 * rt_attr_next - step through an encoded attribute block.
 * @pos: in/out offset into @attrs (start at 0).
 * @return 1 with @out filled, 0 at the end, -EBADMSG if malformed.
 */
int rt_attr_next(const uint8_t *attrs, size_t len, size_t *pos, struct rt_attr_view *out);

/*
 * rt_attrs_check - 0 when the attribute block is well formed, else -EBADMSG.
 */
int rt_attrs_check(const uint8_t *attrs, size_t len);

/*
 * rt_service_valid - 1 if @s (length @n) may name a service: 1..64 bytes,
 * no '/', no control bytes, not "." or "..".
 */
int rt_service_valid(const char *s, size_t n);

/*
 * rt_service_name_ok - 1 if a writer may give @s (length @n) as its
 * service: 1..64 bytes of strict UTF-8 (no overlong forms, no surrogates,
 * nothing past U+10FFFF), no C0 control, no DEL, no '/', not "." or "..",
 * and not reserved. The writer refuses other names with -EINVAL; the
 * spooler counts a ring record under one as malformed; the central refuses
 * a batch holding one.
 */
int rt_service_name_ok(const char *s, size_t n);

/* rt_service_reserved - 1 for "ringtail" (loss records) and "ringtaild"
 * (the daemon's own messages): only ringtaild makes records under them. */
int rt_service_reserved(const char *s, size_t n);

/* ------------------------------------------------------------------------
 * A record as a line of text (docs/fs.md). The version changes whenever the
 * line changes; stored sizes carry it.
 * ------------------------------------------------------------------------ */

#define RT_RENDER_VERSION 1
#define RT_RENDER_TIME_LEN 30 /* 2026-11-21T23:53:07.123456789Z */

/*
 * rt_render_len - exact bytes rt_render() writes for @r with sequence @seq
 * and a host name of @host_len bytes, newline included.
 */
size_t rt_render_len(const struct rt_rec *r, uint64_t seq, size_t host_len);

/*
 * rt_render - write @r as one line at @out (rt_render_len() bytes, ending
 * in '\n'). Control bytes, backslashes and bytes that are not valid UTF-8
 * are escaped (\n \t \r \\ \xHH), so one record is always one line.
 * @return bytes written.
 */
size_t rt_render(const struct rt_rec *r, uint64_t seq, const char *host, size_t host_len,
		 char *out);

/*
 * rt_render_len_rest - rt_render_len() without the part that depends only
 * on the host, service, pid and tid: pass that part's length, as
 * rt_render_prefix_len() gives it (the spooler computes it once per writer).
 */
size_t rt_render_prefix_len(const struct rt_rec *r, size_t host_len);
size_t rt_render_len_rest(const struct rt_rec *r, uint64_t seq, size_t prefix_len);

/* rt_render_time - write @ns as 2026-11-21T23:53:07.123456789Z (30 bytes);
 * returns the end. */
char *rt_render_time(char *w, uint64_t ns);

/* rt_escaped_len / rt_escape - the escaping rt_render() applies. */
size_t rt_escaped_len(const char *s, size_t n);
char *rt_escape(char *w, const char *s, size_t n);

#endif /* RTREC_H */
