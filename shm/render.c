/* SPDX-License-Identifier: MIT */
/*
 * render.c - a record as one line of text (docs/fs.md):
 *
 *   2026-11-21T23:53:07.123456789Z web01 api[1234/1235] #4711 INFO trace=... span=... message k=v
 *
 * rt_render_len() gives the exact length rt_render() writes, without
 * writing, so the spooler can record file sizes the filesystem shows.
 */
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "rtrec.h"

static const char hexd[] = "0123456789abcdef";

/* Length of an unsigned decimal. */
static size_t dec_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

static char *put_dec(char *w, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*w++ = tmp[--n];
	return w;
}

/* Bytes of a valid UTF-8 sequence starting at s (at most n available),
 * 0 if the bytes there are not one (then they are escaped byte by byte). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len, i;
	unsigned cp;

	if (c < 0xc2 || c > 0xf4)
		return 0;
	len = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
	if (len > n)
		return 0;
	cp = c & (0x7f >> len);
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* No overlong forms, no surrogates, nothing past U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Does byte c go out as it is (and is it ASCII)? */
static inline int plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '\\';
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Eight bytes at once: are they all plain? (No byte below 0x20, none with
 * the high bit, no 0x7f, no backslash.) */
static inline int plain8(const unsigned char *p)
{
	uint64_t x, lt, bs, del;

	memcpy(&x, p, 8);
	lt = (x - ONES * 0x20) & ~x;      /* high bit where a byte < 0x20 */
	bs = x ^ (ONES * '\\');
	bs = (bs - ONES) & ~bs;           /* ... where a byte == '\\' */
	del = x ^ (ONES * 0x7f);
	del = (del - ONES) & ~del;        /* ... where a byte == 0x7f */
	return ((lt | bs | del | x) & HIGHS) == 0;
}

/* Bytes at the start of p[0..n) that need no escaping, in steps of 16 (SSE2)
 * or 8: a signed compare below 0x20 also catches every byte >= 0x80. */
static inline size_t plain_run(const unsigned char *p, size_t n)
{
	size_t i = 0;
#if defined(__SSE2__)
	const __m128i lo = _mm_set1_epi8(0x20), bs = _mm_set1_epi8('\\'), del = _mm_set1_epi8(0x7f);
	while (n - i >= 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		__m128i bad = _mm_or_si128(_mm_cmplt_epi8(x, lo),
					   _mm_or_si128(_mm_cmpeq_epi8(x, bs), _mm_cmpeq_epi8(x, del)));
		if (_mm_movemask_epi8(bad))
			break;
		i += 16;
	}
#endif
	while (n - i >= 8 && plain8(p + i))
		i += 8;
	return i;
}

size_t rt_escaped_len(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, out = 0;

	while (i < n) {
		unsigned char c;
		size_t k, run = plain_run(p + i, n - i);
		if (run) {
			i += run;
			out += run;
			continue;
		}
		c = p[i];
		if (plain(c)) {
			i++;
			out++;
		} else if (c == '\\' || c == '\n' || c == '\t' || c == '\r') {
			i++;
			out += 2;
		} else if (c >= 0x80 && (k = utf8_seq(p + i, n - i)) != 0) {
			i += k;
			out += k;
		} else {
			i++;
			out += 4;
		}
	}
	return out;
}

char *rt_escape(char *w, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		unsigned char c;
		size_t k, run = plain_run(p + i, n - i);
		/* Runs of plain bytes are copied whole. */
		if (run) {
			memcpy(w, p + i, run);
			w += run;
			i += run;
			continue;
		}
		c = p[i];
		if (plain(c)) {
			*w++ = (char)c;
			i++;
			continue;
		}
		switch (c) {
		case '\\':
			*w++ = '\\';
			*w++ = '\\';
			i++;
			continue;
		case '\n':
			*w++ = '\\';
			*w++ = 'n';
			i++;
			continue;
		case '\t':
			*w++ = '\\';
			*w++ = 't';
			i++;
			continue;
		case '\r':
			*w++ = '\\';
			*w++ = 'r';
			i++;
			continue;
		default:
			break;
		}
		if (c >= 0x80 && (k = utf8_seq(p + i, n - i)) != 0) {
			memcpy(w, p + i, k);
			w += k;
			i += k;
			continue;
		}
		*w++ = '\\';
		*w++ = 'x';
		*w++ = hexd[c >> 4];
		*w++ = hexd[c & 15];
		i++;
	}
	return w;
}

/* Civil date from days since 1970-01-01 (proleptic Gregorian). */
static void civil(int64_t days, int *y, unsigned *m, unsigned *d)
{
	int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static char *put2(char *w, unsigned v)
{
	*w++ = (char)('0' + v / 10);
	*w++ = (char)('0' + v % 10);
	return w;
}

char *rt_render_time(char *w, uint64_t ns)
{
	/* Consecutive records mostly share their second: keep its text. */
	static __thread uint64_t cached_secs = UINT64_MAX;
	static __thread char cached[20];
	uint64_t secs = ns / 1000000000u, frac = ns % 1000000000u;
	int64_t days = (int64_t)(secs / 86400);
	unsigned sod = (unsigned)(secs % 86400), m, d, i;
	char *start = w;
	int y;

	if (secs == cached_secs) {
		memcpy(w, cached, 20);
		w += 20;
		goto frac;
	}
	civil(days, &y, &m, &d);
	if (y > 9999)
		y = 9999;
	w = put2(w, (unsigned)y / 100);
	w = put2(w, (unsigned)y % 100);
	*w++ = '-';
	w = put2(w, m);
	*w++ = '-';
	w = put2(w, d);
	*w++ = 'T';
	w = put2(w, sod / 3600);
	*w++ = ':';
	w = put2(w, sod / 60 % 60);
	*w++ = ':';
	w = put2(w, sod % 60);
	*w++ = '.';
	memcpy(cached, start, 20);
	cached_secs = secs;
frac:
	for (i = 9; i-- > 0;) {
		w[i] = (char)('0' + frac % 10);
		frac /= 10;
	}
	w += 9;
	*w++ = 'Z';
	return w;
}

/* "time host service[pid/tid] " */
size_t rt_render_prefix_len(const struct rt_rec *r, size_t host_len)
{
	return RT_RENDER_TIME_LEN + 1 + host_len + 1 + r->service_len + 1 + dec_len(r->pid) + 1 +
	       dec_len(r->tid) + 2;
}

size_t rt_render_len(const struct rt_rec *r, uint64_t seq, size_t host_len)
{
	return rt_render_len_rest(r, seq, rt_render_prefix_len(r, host_len));
}

size_t rt_render_len_rest(const struct rt_rec *r, uint64_t seq, size_t prefix_len)
{
	static const uint8_t sev_len[6] = {5, 5, 4, 4, 5, 5}; /* TRACE DEBUG INFO WARN ... */
	struct rt_attr_view a;
	size_t n, pos = 0;

	/* "#seq SEV" */
	n = prefix_len + 1 + dec_len(seq) + 1 + sev_len[(r->severity - 1) / 4];
	if (r->trace_id)
		n += 7 + 32;
	if (r->span_id)
		n += 6 + 16;
	n += 1 + rt_escaped_len(r->msg, r->msg_len);
	if (r->attrs_len == 0)
		return n + 1; /* newline */
	while (rt_attr_next(r->attrs, r->attrs_len, &pos, &a) == 1)
		n += 1 + rt_escaped_len(a.key, a.key_len) + 1 + rt_escaped_len(a.value, a.value_len);
	return n + 1; /* newline */
}

size_t rt_render(const struct rt_rec *r, uint64_t seq, const char *host, size_t host_len,
		 char *out)
{
	const char *sev = rt_severity_name(r->severity);
	struct rt_attr_view a;
	size_t pos = 0, i;
	char *w = out;

	w = rt_render_time(w, r->time_ns);
	*w++ = ' ';
	memcpy(w, host, host_len);
	w += host_len;
	*w++ = ' ';
	memcpy(w, r->service, r->service_len);
	w += r->service_len;
	*w++ = '[';
	w = put_dec(w, r->pid);
	*w++ = '/';
	w = put_dec(w, r->tid);
	*w++ = ']';
	*w++ = ' ';
	*w++ = '#';
	w = put_dec(w, seq);
	*w++ = ' ';
	i = strlen(sev);
	memcpy(w, sev, i);
	w += i;
	if (r->trace_id) {
		memcpy(w, " trace=", 7);
		w += 7;
		for (i = 0; i < 16; i++) {
			*w++ = hexd[r->trace_id[i] >> 4];
			*w++ = hexd[r->trace_id[i] & 15];
		}
	}
	if (r->span_id) {
		memcpy(w, " span=", 6);
		w += 6;
		for (i = 0; i < 8; i++) {
			*w++ = hexd[r->span_id[i] >> 4];
			*w++ = hexd[r->span_id[i] & 15];
		}
	}
	*w++ = ' ';
	w = rt_escape(w, r->msg, r->msg_len);
	while (rt_attr_next(r->attrs, r->attrs_len, &pos, &a) == 1) {
		*w++ = ' ';
		w = rt_escape(w, a.key, a.key_len);
		*w++ = '=';
		w = rt_escape(w, a.value, a.value_len);
	}
	*w++ = '\n';
	return (size_t)(w - out);
}
