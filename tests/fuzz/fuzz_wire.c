/* SPDX-License-Identifier: MIT */
/*
 * fuzz_wire - any bytes as what a central server reads from a connection: a
 * stream of frames, each taken apart as the server does (rt_wire_frame(),
 * the header, the tag and sum by rt_wire_verify() in the session the first
 * HELLO opens with the harness's key and CHALLENGE, then the payload of its
 * type), batches checked whole with rt_batch_check() and, when one passes,
 * the server's position moved on as it would be, so that later batches in
 * the stream meet repeats and sequences. Tags and sums are checked but not
 * required (the fuzzer could not make them; the seeds carry real ones):
 * everything behind them is what the server runs. A frame of another
 * version is read as the server reads a version 1 peer's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rtwire.h"
#include "seeds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rt_batch batch;
	struct rt_wire_session sess;
	struct rt_buf scratch = {0};
	uint64_t durable = 0, expect = 0;
	size_t pos = 0;
	int have_session = 0;

	memset(&batch, 0, sizeof(batch));
	memset(&sess, 0, sizeof(sess));
	while (pos < size) {
		struct rt_wire_hdr h;
		const uint8_t *p, *tag;
		const char *why;
		union {
			struct rt_hello hello;
			struct rt_challenge ch;
			struct rt_welcome wl;
			char reason[64];
		} u;
		uint32_t code;
		uint64_t a, b;
		long whole = rt_wire_frame(data + pos, size - pos, RT_WIRE_MAX_PAYLOAD, &h);

		if (whole == -EPROTONOSUPPORT && h.len <= size - pos - RT_WIRE_HDR) {
			/* Another version: what the server reads of it. */
			p = data + pos + RT_WIRE_HDR;
			if (h.type == RT_W_HELLO)
				rt_wire_get_hello(p, h.len, &u.hello);
			else
				rt_wire_get_error(p, h.len, &code, u.reason, sizeof(u.reason));
			scratch.len = 0;
			rt_wire_error_v1(&scratch, RT_WE_VERSION, "upgrade");
			break;
		}
		if (whole <= 0)
			break;
		p = data + pos + RT_WIRE_HDR;
		tag = h.flags & RT_WF_TAG ? p + h.len : NULL;
		(void)rt_wire_verify(have_session ? &sess : NULL, data + pos, &h, p, tag, &why);
		pos += (size_t)whole;
		switch (h.type) {
		case RT_W_HELLO:
			if (rt_wire_get_hello(p, h.len, &u.hello) == 0) {
				if (!rt_wire_host_ok(u.hello.host))
					__builtin_trap(); /* a host name that passed must be usable */
				if (!have_session) {
					struct rt_challenge ch = {RT_WIRE_VERSION, RT_CH_AUTH, {0}};
					rt_fuzz_wire_challenge(ch.nonce);
					scratch.len = 0;
					if (rt_wire_challenge(&scratch, &ch) == 0 &&
					    rt_wire_session_init(&sess, (const uint8_t *)RT_FUZZ_WIRE_KEY,
								 sizeof(RT_FUZZ_WIRE_KEY) - 1, 1, p, h.len,
								 scratch.p + RT_WIRE_HDR,
								 scratch.len - RT_WIRE_HDR) == 0)
						have_session = 1;
				}
			}
			break;
		case RT_W_CHALLENGE:
			rt_wire_get_challenge(p, h.len, &u.ch);
			break;
		case RT_W_AUTH:
			rt_wire_get_auth(p, h.len);
			break;
		case RT_W_WELCOME:
			rt_wire_get_welcome(p, h.len, &u.wl);
			break;
		case RT_W_BATCH:
			if (rt_batch_check(&batch, p, h.len, "fuzz-host", durable, expect) == 0 &&
			    batch.n > batch.skip) {
				/* What passed follows on. */
				if (expect && batch.blocks[batch.skip].first_seq != expect)
					__builtin_trap();
				durable = batch.next - 1;
				expect = batch.next;
			}
			break;
		case RT_W_GAP:
			if (rt_wire_get_gap(p, h.len, &a, &b) == 0 && (!expect || a == expect))
				expect = b + 1;
			break;
		case RT_W_ERROR:
			rt_wire_get_error(p, h.len, &code, u.reason, sizeof(u.reason));
			break;
		default:
			rt_wire_get_u64(p, h.len, &a);
			break;
		}
		/* The server's answer, tagged in the session. */
		scratch.len = 0;
		if (have_session && rt_wire_u64(&scratch, RT_W_ACK, durable) == 0)
			rt_wire_tag(&sess, &scratch, 0);
	}
	rt_wire_session_free(&sess);
	rt_batch_free(&batch);
	rt_buf_free(&scratch);
	return 0;
}
