/* SPDX-License-Identifier: MIT */
/* wire.c - the forwarding protocol's messages, checked byte by byte, and the
 * keys and tags of a session (docs/protocol.md). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
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

static void hdr_put(uint8_t out[RT_WIRE_HDR], int version, int type, uint32_t len,
		    uint32_t sum)
{
	uint32_t magic = RT_WIRE_MAGIC;
	uint16_t flags = 0;

	memcpy(out, &magic, 4);
	out[4] = (uint8_t)type;
	out[5] = (uint8_t)version;
	memcpy(out + 6, &flags, 2);
	memcpy(out + 8, &len, 4);
	memcpy(out + 12, &sum, 4);
}

void rt_wire_hdr_put(uint8_t out[RT_WIRE_HDR], int type, uint32_t len, uint32_t sum)
{
	hdr_put(out, RT_WIRE_VERSION, type, len, sum);
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
	if (h->type < RT_W_HELLO || h->type > RT_W_PONG || (h->flags & ~RT_WF_TAG))
		return -EBADMSG;
	if (h->len > max)
		return -EMSGSIZE;
	return 0;
}

long rt_wire_frame(const uint8_t *p, size_t n, uint32_t max, struct rt_wire_hdr *h)
{
	size_t need;
	int err;

	if (n < RT_WIRE_HDR)
		return 0;
	err = rt_wire_hdr_get(p, max, h);
	if (err)
		return err;
	need = RT_WIRE_HDR + (size_t)h->len + (h->flags & RT_WF_TAG ? RT_WIRE_TAG : 0);
	return n < need ? 0 : (long)need;
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

	if (n == 0 || n > 255 || host[0] == '.' || host[0] == '-')
		return 0;
	for (i = 0; i < n; i++) {
		char ch = host[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == '-'))
			return 0;
	}
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
	if (r.bad || l > 255)
		return -EBADMSG;
	get(&r, h->host, l);
	h->host[l] = '\0';
	if (done(&r))
		return -EBADMSG;
	if (strlen(h->host) != l || !rt_wire_host_ok(h->host))
		return -EINVAL;
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

int rt_wire_auth(struct rt_buf *b)
{
	size_t start = b->len;

	if (rt_wire_begin(b))
		return -ENOMEM;
	rt_wire_end(b, start, RT_W_AUTH);
	return 0;
}

int rt_wire_get_auth(const uint8_t *p, size_t n)
{
	(void)p;
	return n == 0 ? 0 : -EBADMSG;
}

int rt_wire_welcome(struct rt_buf *b, const struct rt_welcome *w)
{
	size_t start = b->len;

	if (rt_wire_begin(b) || put64(b, w->durable_seq) || put32(b, w->max_batch) ||
	    put32(b, w->flags))
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
	w->flags = get32(&r);
	return done(&r) || w->max_batch < 4096 || w->flags ? -EBADMSG : 0;
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

static int error_msg(struct rt_buf *b, int version, uint32_t code, const char *reason)
{
	size_t start = b->len, l = strnlen(reason, 1024), len;
	uint16_t l16 = (uint16_t)l;

	if (rt_wire_begin(b) || put32(b, code) || put(b, &l16, 2) || put(b, reason, l))
		return -ENOMEM;
	len = b->len - start - RT_WIRE_HDR;
	hdr_put(b->p + start, version, RT_W_ERROR, (uint32_t)len,
		rt_wire_sum(b->p + start + RT_WIRE_HDR, len));
	return 0;
}

int rt_wire_error(struct rt_buf *b, uint32_t code, const char *reason)
{
	return error_msg(b, RT_WIRE_VERSION, code, reason);
}

int rt_wire_error_v1(struct rt_buf *b, uint32_t code, const char *reason)
{
	/* Version 1's header is this one with 1 in its version byte, and its
	 * ERROR payload is the same. */
	return error_msg(b, 1, code, reason);
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

/* ------------------------------------------------------------------------
 * Sessions
 * ------------------------------------------------------------------------ */

static const char transcript_label[] = "ringtail/2 transcript";
static const char c2s_label[] = "ringtail/2 sender->server frames";
static const char s2c_label[] = "ringtail/2 server->sender frames";

/* HKDF-SHA256(@key, @salt, @label | @t) -> 32 bytes into @out. */
static int derive(const uint8_t *key, size_t key_len, const uint8_t *salt, size_t salt_len,
		  const char *label, const uint8_t t[32], uint8_t out[32])
{
	uint8_t info[64 + 32];
	size_t ll = strlen(label);
	EVP_KDF *kdf;
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[5];
	int ok = 0;

	memcpy(info, label, ll);
	memcpy(info + ll, t, 32);
	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (kdf)
		kctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (!kctx)
		return -EIO;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, key_len);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, ll + 32);
	params[4] = OSSL_PARAM_construct_end();
	ok = EVP_KDF_derive(kctx, out, 32, params) == 1;
	EVP_KDF_CTX_free(kctx);
	OPENSSL_cleanse(info, sizeof(info));
	return ok ? 0 : -EIO;
}

/* An HMAC-SHA256 context keyed with @k. */
static void *mac_ctx(const uint8_t k[32])
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[2];

	EVP_MAC_free(mac);
	if (!ctx)
		return NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(ctx, k, 32, params) != 1) {
		EVP_MAC_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int rt_wire_session_init(struct rt_wire_session *s, const uint8_t *key, size_t key_len, int server,
			 const uint8_t *hello, size_t hello_len, const uint8_t *challenge,
			 size_t challenge_len)
{
	uint8_t t[32], salt[2 * RT_WIRE_NONCE], c2s[32], s2c[32];
	uint32_t hl = (uint32_t)hello_len, cl = (uint32_t)challenge_len;
	EVP_MD_CTX *md;
	int err = 0;

	memset(s, 0, sizeof(*s));
	if (!key)
		return 0;
	/* The nonces: HELLO's after its version, features and epoch;
	 * CHALLENGE's after its version and flags. */
	if (hello_len < 24 + RT_WIRE_NONCE || challenge_len < 8 + RT_WIRE_NONCE)
		return -EBADMSG;
	memcpy(salt, hello + 24, RT_WIRE_NONCE);
	memcpy(salt + RT_WIRE_NONCE, challenge + 8, RT_WIRE_NONCE);
	md = EVP_MD_CTX_new();
	if (!md)
		return -ENOMEM;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, transcript_label, sizeof(transcript_label) - 1) != 1 ||
	    EVP_DigestUpdate(md, &hl, 4) != 1 ||
	    EVP_DigestUpdate(md, hello, hello_len) != 1 ||
	    EVP_DigestUpdate(md, &cl, 4) != 1 ||
	    EVP_DigestUpdate(md, challenge, challenge_len) != 1 ||
	    EVP_DigestFinal_ex(md, t, NULL) != 1)
		err = -EIO;
	EVP_MD_CTX_free(md);
	if (!err)
		err = derive(key, key_len, salt, sizeof(salt), c2s_label, t, c2s);
	if (!err)
		err = derive(key, key_len, salt, sizeof(salt), s2c_label, t, s2c);
	if (!err) {
		s->send_mac = mac_ctx(server ? s2c : c2s);
		s->recv_mac = mac_ctx(server ? c2s : s2c);
		if (!s->send_mac || !s->recv_mac)
			err = -EIO;
	}
	OPENSSL_cleanse(c2s, sizeof(c2s));
	OPENSSL_cleanse(s2c, sizeof(s2c));
	if (err) {
		rt_wire_session_free(s);
		return err;
	}
	s->keyed = 1;
	return 0;
}

void rt_wire_session_free(struct rt_wire_session *s)
{
	EVP_MAC_CTX_free(s->send_mac);
	EVP_MAC_CTX_free(s->recv_mac);
	memset(s, 0, sizeof(*s));
}

/* tag = HMAC(direction key, u64 counter | header | payload) */
static int frame_tag(void *ctx, uint64_t counter, const uint8_t *hdr, const uint8_t *payload,
		     size_t len, uint8_t out[RT_WIRE_TAG])
{
	size_t out_len = 0;

	/* Re-initialised with the key it holds (a NULL key keeps it). */
	if (EVP_MAC_init(ctx, NULL, 0, NULL) != 1 || EVP_MAC_update(ctx, (void *)&counter, 8) != 1 ||
	    EVP_MAC_update(ctx, hdr, RT_WIRE_HDR) != 1 ||
	    (len && EVP_MAC_update(ctx, payload, len) != 1) ||
	    EVP_MAC_final(ctx, out, &out_len, RT_WIRE_TAG) != 1 || out_len != RT_WIRE_TAG)
		return -EIO;
	return 0;
}

int rt_wire_tag(struct rt_wire_session *s, struct rt_buf *b, size_t start)
{
	uint8_t tag[RT_WIRE_TAG];
	uint16_t flags;
	uint32_t len;
	int err;

	if (!s || !s->keyed)
		return 0;
	memcpy(&flags, b->p + start + 6, 2);
	flags |= RT_WF_TAG;
	memcpy(b->p + start + 6, &flags, 2);
	memcpy(&len, b->p + start + 8, 4);
	err = frame_tag(s->send_mac, s->sent, b->p + start, b->p + start + RT_WIRE_HDR, len, tag);
	if (err)
		return err;
	s->sent++;
	return rt_buf_put(b, tag, sizeof(tag));
}

int rt_wire_verify(struct rt_wire_session *s, const uint8_t raw[RT_WIRE_HDR],
		   const struct rt_wire_hdr *h, const uint8_t *payload, const uint8_t *tag,
		   const char **why)
{
	*why = NULL;
	if (s && s->keyed) {
		uint8_t want[RT_WIRE_TAG];
		if (!(h->flags & RT_WF_TAG) || !tag) {
			*why = "a frame without its authentication tag";
			return -EACCES;
		}
		if (frame_tag(s->recv_mac, s->received, raw, payload, h->len, want))
			return -EIO;
		if (!rt_wire_tag_equal(want, tag)) {
			*why = "a frame failed authentication (modified, injected, replayed, "
			       "reordered or cut on the way?)";
			return -EACCES;
		}
		s->received++;
	} else if (h->flags & RT_WF_TAG) {
		*why = "an authentication tag in a session without a key";
		return -EBADMSG;
	}
	if (rt_wire_sum(payload, h->len) != h->sum) {
		*why = "message checksum mismatch";
		return -EBADMSG;
	}
	return 0;
}

int rt_wire_tag_equal(const uint8_t *a, const uint8_t *b)
{
	return CRYPTO_memcmp(a, b, RT_WIRE_TAG) == 0;
}

int rt_wire_load_key(int dirfd, const char *name, uint8_t *key, size_t cap)
{
	struct stat st;
	ssize_t n;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		close(fd);
		return -EOWNERDEAD;
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

const char *rt_wire_key_error(int err)
{
	switch (err) {
	case -EPERM:
		return "group or others may read or write it (chmod 600)";
	case -EOWNERDEAD:
		return "it belongs to another user (it must be ours or root's)";
	case -ELOOP:
		return "it is a symbolic link";
	case -EINVAL:
		return "it must be a regular file holding 16 to 1023 bytes";
	default:
		return strerror(-err);
	}
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
