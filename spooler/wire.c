/* SPDX-License-Identifier: MIT */
/* wire.c - the forwarding protocol's messages, checked byte by byte. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "rtwire.h"

uint32_t rt_wire_sum(const void *p, size_t n)
{
	return (uint32_t)XXH3_64bits(p, n);
}

void rt_wire_hdr_put(uint8_t out[RT_WIRE_HDR], int type, uint32_t len, uint32_t sum)
{
	uint32_t magic = RT_WIRE_MAGIC;
	uint16_t flags = 0;

	memcpy(out, &magic, 4);
	out[4] = (uint8_t)type;
	out[5] = RT_WIRE_VERSION;
	memcpy(out + 6, &flags, 2);
	memcpy(out + 8, &len, 4);
	memcpy(out + 12, &sum, 4);
}

int rt_wire_hdr_get(const uint8_t in[RT_WIRE_HDR], uint32_t max, struct rt_wire_hdr *h)
{
	uint32_t magic;

	memcpy(&magic, in, 4);
	h->type = in[4];
	h->version = in[5];
	memcpy(&h->flags, in + 6, 2);
	memcpy(&h->len, in + 8, 4);
	memcpy(&h->sum, in + 12, 4);
	if (magic != RT_WIRE_MAGIC)
		return -EBADMSG;
	if (h->version != RT_WIRE_VERSION)
		return -EPROTONOSUPPORT;
	if (h->type < RT_W_HELLO || h->type > RT_W_PONG || h->flags != 0)
		return -EBADMSG;
	if (h->len > max)
		return -EMSGSIZE;
	return 0;
}

int rt_wire_begin(struct rt_buf *b)
{
	uint8_t zero[RT_WIRE_HDR] = {0};
	return rt_buf_put(b, zero, sizeof(zero));
}

void rt_wire_end(struct rt_buf *b, size_t start, int type)
{
	size_t len = b->len - start - RT_WIRE_HDR;
	rt_wire_hdr_put(b->p + start, type, (uint32_t)len,
			rt_wire_sum(b->p + start + RT_WIRE_HDR, len));
}

/* Little helpers for payloads. */
static int put(struct rt_buf *b, const void *p, size_t n)
{
	return rt_buf_put(b, p, n);
}

static int put32(struct rt_buf *b, uint32_t v)
{
	return rt_buf_put(b, &v, 4);
}

static int put64(struct rt_buf *b, uint64_t v)
{
	return rt_buf_put(b, &v, 8);
}

struct rd {
	const uint8_t *p;
	size_t n, pos;
	int bad;
};

static void get(struct rd *r, void *out, size_t n)
{
	if (r->bad || r->n - r->pos < n) {
		r->bad = 1;
		memset(out, 0, n);
		return;
	}
	memcpy(out, r->p + r->pos, n);
	r->pos += n;
}

static uint32_t get32(struct rd *r)
{
	uint32_t v;
	get(r, &v, 4);
	return v;
}

static uint64_t get64(struct rd *r)
{
	uint64_t v;
	get(r, &v, 8);
	return v;
}

/* The whole payload must have been read, exactly. */
static int done(const struct rd *r)
{
	return r->bad || r->pos != r->n ? -EBADMSG : 0;
}

int rt_wire_host_ok(const char *host)
{
	size_t n = strnlen(host, 256), i;

	if (n == 0 || n > 255 || !strcmp(host, ".") || !strcmp(host, ".."))
		return 0;
	for (i = 0; i < n; i++)
		if (host[i] <= ' ' || host[i] > '~' || host[i] == '/')
			return 0;
	return 1;
}

int rt_wire_hello(struct rt_buf *b, const struct rt_hello *h)
{
	size_t start = b->len, hl = strlen(h->host);
	uint16_t l = (uint16_t)hl;

	if (rt_wire_begin(b) || put32(b, h->version) || put32(b, h->features) ||
	    put(b, h->epoch, 16) || put(b, h->nonce, RT_WIRE_NONCE) || put(b, &l, 2) ||
	    put(b, h->host, hl))
		return -ENOMEM;
	rt_wire_end(b, start, RT_W_HELLO);
	return 0;
}

int rt_wire_get_hello(const uint8_t *p, size_t n, struct rt_hello *h)
{
	struct rd r = {p, n, 0, 0};
	uint16_t l;

	memset(h, 0, sizeof(*h));
	h->version = get32(&r);
	h->features = get32(&r);
	get(&r, h->epoch, 16);
	get(&r, h->nonce, RT_WIRE_NONCE);
	get(&r, &l, 2);
	if (r.bad || l == 0 || l > 255)
		return -EBADMSG;
	get(&r, h->host, l);
	h->host[l] = '\0';
	if (done(&r) || strlen(h->host) != l || !rt_wire_host_ok(h->host))
		return -EBADMSG;
	return 0;
}

int rt_wire_challenge(struct rt_buf *b, const struct rt_challenge *c)
{
	size_t start = b->len;

	if (rt_wire_begin(b) || put32(b, c->version) || put32(b, c->flags) ||
	    put(b, c->nonce, RT_WIRE_NONCE))
		return -ENOMEM;
	rt_wire_end(b, start, RT_W_CHALLENGE);
	return 0;
}

int rt_wire_get_challenge(const uint8_t *p, size_t n, struct rt_challenge *c)
{
	struct rd r = {p, n, 0, 0};

	c->version = get32(&r);
	c->flags = get32(&r);
	get(&r, c->nonce, RT_WIRE_NONCE);
	return done(&r) || (c->flags & ~RT_CH_AUTH) ? -EBADMSG : 0;
}

int rt_wire_auth(struct rt_buf *b, const uint8_t *mac, uint32_t mac_len)
{
	size_t start = b->len;

	if (rt_wire_begin(b) || put32(b, mac_len) || put(b, mac, mac_len))
		return -ENOMEM;
	rt_wire_end(b, start, RT_W_AUTH);
	return 0;
}

int rt_wire_get_auth(const uint8_t *p, size_t n, uint8_t mac[RT_WIRE_MAC], uint32_t *mac_len)
{
	struct rd r = {p, n, 0, 0};

	*mac_len = get32(&r);
	if (*mac_len != 0 && *mac_len != RT_WIRE_MAC)
		return -EBADMSG;
	get(&r, mac, *mac_len);
	return done(&r);
}

int rt_wire_welcome(struct rt_buf *b, const struct rt_welcome *w)
{
	size_t start = b->len;

	if (rt_wire_begin(b) || put64(b, w->durable_seq) || put32(b, w->max_batch) ||
	    put32(b, w->mac_len) || put(b, w->mac, w->mac_len))
		return -ENOMEM;
	rt_wire_end(b, start, RT_W_WELCOME);
	return 0;
}

int rt_wire_get_welcome(const uint8_t *p, size_t n, struct rt_welcome *w)
{
	struct rd r = {p, n, 0, 0};

	memset(w, 0, sizeof(*w));
	w->durable_seq = get64(&r);
	w->max_batch = get32(&r);
	w->mac_len = get32(&r);
	if (w->mac_len != 0 && w->mac_len != RT_WIRE_MAC)
		return -EBADMSG;
	get(&r, w->mac, w->mac_len);
	return done(&r) || w->max_batch < 4096 ? -EBADMSG : 0;
}

int rt_wire_u64(struct rt_buf *b, int type, uint64_t v)
{
	size_t start = b->len;

	if (rt_wire_begin(b) || put64(b, v))
		return -ENOMEM;
	rt_wire_end(b, start, type);
	return 0;
}

int rt_wire_get_u64(const uint8_t *p, size_t n, uint64_t *v)
{
	struct rd r = {p, n, 0, 0};

	*v = get64(&r);
	return done(&r);
}

int rt_wire_gap(struct rt_buf *b, uint64_t from, uint64_t to)
{
	size_t start = b->len;

	if (rt_wire_begin(b) || put64(b, from) || put64(b, to))
		return -ENOMEM;
	rt_wire_end(b, start, RT_W_GAP);
	return 0;
}

int rt_wire_get_gap(const uint8_t *p, size_t n, uint64_t *from, uint64_t *to)
{
	struct rd r = {p, n, 0, 0};

	*from = get64(&r);
	*to = get64(&r);
	return done(&r) || *from == 0 || *to < *from ? -EBADMSG : 0;
}

int rt_wire_error(struct rt_buf *b, uint32_t code, const char *reason)
{
	size_t start = b->len, l = strnlen(reason, 1024);
	uint16_t l16 = (uint16_t)l;

	if (rt_wire_begin(b) || put32(b, code) || put(b, &l16, 2) || put(b, reason, l))
		return -ENOMEM;
	rt_wire_end(b, start, RT_W_ERROR);
	return 0;
}

int rt_wire_get_error(const uint8_t *p, size_t n, uint32_t *code, char *reason, size_t cap)
{
	struct rd r = {p, n, 0, 0};
	uint16_t l;
	char buf[1025];

	*code = get32(&r);
	get(&r, &l, 2);
	if (r.bad || l > 1024)
		return -EBADMSG;
	get(&r, buf, l);
	buf[l] = '\0';
	if (done(&r))
		return -EBADMSG;
	/* Shown to people: keep only printable bytes. */
	for (size_t i = 0; i < l; i++)
		if ((unsigned char)buf[i] < ' ' || (unsigned char)buf[i] > '~')
			buf[i] = '?';
	snprintf(reason, cap, "%s", buf);
	return 0;
}

int rt_wire_empty(struct rt_buf *b, int type)
{
	size_t start = b->len;

	if (rt_wire_begin(b))
		return -ENOMEM;
	rt_wire_end(b, start, type);
	return 0;
}

int rt_wire_batch_start(struct rt_buf *b)
{
	return put32(b, 0);
}

int rt_wire_batch_add(struct rt_buf *b, size_t start, const uint8_t *index, uint32_t index_len,
		      const uint8_t *data, uint32_t data_len)
{
	uint32_t count;

	if (put32(b, index_len) || put(b, index, index_len) || put32(b, data_len) ||
	    put(b, data, data_len))
		return -ENOMEM;
	memcpy(&count, b->p + start + RT_WIRE_HDR, 4);
	count++;
	memcpy(b->p + start + RT_WIRE_HDR, &count, 4);
	return 0;
}

int rt_wire_batch_count(const uint8_t *p, size_t n, uint32_t *count)
{
	if (n < 4)
		return -EBADMSG;
	memcpy(count, p, 4);
	/* Each block takes at least its two lengths and an INDEX frame. */
	if (*count == 0 || *count > n / (8 + RT_SEG_FRAME_HDR))
		return -EBADMSG;
	return 0;
}

int rt_wire_batch_next(const uint8_t *p, size_t n, size_t *pos, struct rt_wire_block *b)
{
	struct rd r = {p, n, *pos, 0};

	if (*pos == n)
		return 0;
	b->index_len = get32(&r);
	if (r.bad || b->index_len > n - r.pos || b->index_len < RT_SEG_FRAME_HDR)
		return -EBADMSG;
	b->index = p + r.pos;
	r.pos += b->index_len;
	b->data_len = get32(&r);
	if (r.bad || b->data_len > n - r.pos || b->data_len == 0)
		return -EBADMSG;
	b->data = p + r.pos;
	r.pos += b->data_len;
	*pos = r.pos;
	return 1;
}

int rt_wire_mac(const uint8_t *key, size_t key_len, int server, const uint8_t *nonce_peer,
		const uint8_t *nonce_own, const uint8_t epoch[16], const char *host,
		uint8_t out[RT_WIRE_MAC])
{
	static const char client_label[] = "ringtail/1 client";
	static const char server_label[] = "ringtail/1 server";
	uint8_t msg[sizeof(client_label) + 2 * RT_WIRE_NONCE + 16 + 256];
	unsigned int out_len = RT_WIRE_MAC;
	size_t n = 0, hl = strnlen(host, 255);

	memcpy(msg, server ? server_label : client_label, sizeof(client_label));
	n += sizeof(client_label);
	memcpy(msg + n, nonce_peer, RT_WIRE_NONCE);
	n += RT_WIRE_NONCE;
	memcpy(msg + n, nonce_own, RT_WIRE_NONCE);
	n += RT_WIRE_NONCE;
	memcpy(msg + n, epoch, 16);
	n += 16;
	memcpy(msg + n, host, hl);
	n += hl;
	if (!HMAC(EVP_sha256(), key, (int)key_len, msg, n, out, &out_len) || out_len != RT_WIRE_MAC)
		return -EIO;
	return 0;
}

int rt_wire_mac_equal(const uint8_t *a, const uint8_t *b)
{
	return CRYPTO_memcmp(a, b, RT_WIRE_MAC) == 0;
}

int rt_wire_load_key(const char *path, uint8_t *key, size_t cap)
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	if (st.st_mode & 077) {
		close(fd);
		return -EPERM;
	}
	n = read(fd, key, cap);
	close(fd);
	if (n < 0)
		return -errno;
	while (n > 0 && (key[n - 1] == '\n' || key[n - 1] == '\r'))
		n--;
	if (n < 16 || (size_t)n >= cap)
		return -EINVAL;
	return (int)n;
}

int rt_wire_parse_addr(const char *s, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *colon;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':' || !end[2] || (size_t)(end - s - 1) >= hcap)
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = '\0';
		snprintf(port, pcap, "%s", end + 2);
		return 0;
	}
	colon = strrchr(s, ':');
	if (!colon) {
		host[0] = '\0'; /* just a port: every address */
		snprintf(port, pcap, "%s", s);
	} else {
		if ((size_t)(colon - s) >= hcap || !colon[1])
			return -EINVAL;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
		snprintf(port, pcap, "%s", colon + 1);
	}
	for (const char *p = port; *p; p++)
		if (*p < '0' || *p > '9')
			return -EINVAL;
	return port[0] ? 0 : -EINVAL;
}
