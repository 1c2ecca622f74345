/* SPDX-License-Identifier: MIT */
/* record.c - decode, validate and encode ringtail records. */
#include <errno.h>
#include <string.h>

#include "rtrec.h"

int rt_service_valid(const char *s, size_t n)
{
	return rt__service_ok(s, n);
}

int rt_service_name_ok(const char *s, size_t n)
{
	return rt__service_name_ok(s, n);
}

int rt_service_reserved(const char *s, size_t n)
{
	return rt__service_reserved(s, n);
}

int rt_attr_next(const uint8_t *attrs, size_t len, size_t *pos, struct rt_attr_view *out)
{
	size_t p = *pos, kl, vl;

	if (p == len)
		return 0;
	if (p > len || len - p < 1)
		return -EBADMSG;
	kl = attrs[p];
	if (kl == 0 || len - p - 1 < kl + 2)
		return -EBADMSG;
	out->key = (const char *)attrs + p + 1;
	out->key_len = kl;
	p += 1 + kl;
	vl = (size_t)attrs[p] | (size_t)attrs[p + 1] << 8;
	p += 2;
	if (len - p < vl)
		return -EBADMSG;
	out->value = (const char *)attrs + p;
	out->value_len = vl;
	*pos = p + vl;
	return 1;
}

int rt_attrs_check(const uint8_t *attrs, size_t len)
{
	struct rt_attr_view a;
	size_t pos = 0;
	int r;

	while ((r = rt_attr_next(attrs, len, &pos, &a)) == 1)
		;
	return r;
}

int rt_rec_decode(const void *buf, size_t avail, unsigned flags_ok, struct rt_rec *out,
		  size_t *stride)
{
	const uint8_t *b = buf, *w;
	struct rt__rec h;
	size_t want, st;

	if (avail < RT__REC_HDR)
		return -EBADMSG;
	memcpy(&h, b, sizeof(h)); /* one read: the source may be shared memory */
	if (h.len < RT__REC_HDR || h.len > avail)
		return -EBADMSG;
	st = RT__ALIGN8((size_t)h.len);
	if (st > avail)
		return -EBADMSG;
	if (h.zero != 0 || (h.flags & ~flags_ok) || h.severity < RT_SEVERITY_MIN ||
	    h.severity > RT_SEVERITY_MAX || h.svc_len == 0 || h.svc_len > RT_SERVICE_MAX)
		return -EBADMSG;
	want = (size_t)RT__REC_HDR + ((h.flags & RT__RF_TRACE) ? 16 : 0) +
	       ((h.flags & RT__RF_SPAN) ? 8 : 0) + h.svc_len + (size_t)h.attr_len +
	       (size_t)h.msg_len;
	if (want != h.len)
		return -EBADMSG;
	w = b + RT__REC_HDR;
	out->time_ns = h.time;
	out->pid = h.pid;
	out->tid = h.tid;
	out->severity = h.severity;
	out->flags = h.flags;
	out->trace_id = NULL;
	out->span_id = NULL;
	if (h.flags & RT__RF_TRACE) {
		out->trace_id = w;
		w += 16;
	}
	if (h.flags & RT__RF_SPAN) {
		out->span_id = w;
		w += 8;
	}
	out->service = (const char *)w;
	out->service_len = h.svc_len;
	w += h.svc_len;
	out->attrs = w;
	out->attrs_len = h.attr_len;
	w += h.attr_len;
	out->msg = (const char *)w;
	out->msg_len = h.msg_len;
	/* Content checks last (they read the body). */
	if (!rt__service_ok(out->service, out->service_len))
		return -EBADMSG;
	if (h.attr_len && rt_attrs_check(out->attrs, out->attrs_len) != 0)
		return -EBADMSG;
	*stride = st;
	return 0;
}

size_t rt_rec_size(const struct rt_rec *r)
{
	return RT__REC_HDR + (r->trace_id ? 16u : 0u) + (r->span_id ? 8u : 0u) + r->service_len +
	       r->attrs_len + r->msg_len;
}

size_t rt_rec_encode(const struct rt_rec *r, void *buf)
{
	uint8_t *b = buf, *w = b + RT__REC_HDR;
	struct rt__rec h;
	size_t len = rt_rec_size(r), st = RT__ALIGN8(len);

	memset(&h, 0, sizeof(h));
	h.len = (uint32_t)len;
	h.severity = r->severity;
	h.flags = (uint8_t)((r->flags & RT__RF_LOSS) | (r->trace_id ? RT__RF_TRACE : 0) |
			    (r->span_id ? RT__RF_SPAN : 0));
	h.svc_len = (uint8_t)r->service_len;
	h.time = r->time_ns;
	h.pid = r->pid;
	h.tid = r->tid;
	h.attr_len = (uint32_t)r->attrs_len;
	h.msg_len = (uint32_t)r->msg_len;
	memcpy(b, &h, sizeof(h));
	if (r->trace_id) {
		memcpy(w, r->trace_id, 16);
		w += 16;
	}
	if (r->span_id) {
		memcpy(w, r->span_id, 8);
		w += 8;
	}
	memcpy(w, r->service, r->service_len);
	w += r->service_len;
	if (r->attrs_len)
		memcpy(w, r->attrs, r->attrs_len);
	w += r->attrs_len;
	if (r->msg_len)
		memcpy(w, r->msg, r->msg_len);
	w += r->msg_len;
	memset(w, 0, st - len);
	return st;
}
