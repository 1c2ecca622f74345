/* SPDX-License-Identifier: MIT */
/*
 * fuzz_wire - any bytes as what a central server reads from a connection: a
 * stream of messages, each decoded as the server decodes it (header, then
 * the payload of its type), batches checked whole with rt_batch_check()
 * and, when one passes, the server's position moved on as it would be, so
 * that later batches in the stream meet repeats and sequences. Message
 * checksums are computed but not required (the fuzzer could not make them);
 * everything behind them is what the server runs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rtwire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rt_batch batch;
	uint64_t durable = 0, expect = 0;
	size_t pos = 0;

	memset(&batch, 0, sizeof(batch));
	while (size - pos >= RT_WIRE_HDR) {
		struct rt_wire_hdr h;
		const uint8_t *p;
		union {
			struct rt_hello hello;
			struct rt_challenge ch;
			struct rt_welcome wl;
			char reason[64];
		} u;
		uint8_t mac[RT_WIRE_MAC];
		uint32_t mac_len, code;
		uint64_t a, b;

		if (rt_wire_hdr_get(data + pos, RT_WIRE_MAX_PAYLOAD, &h))
			break;
		pos += RT_WIRE_HDR;
		if (h.len > size - pos)
			break;
		p = data + pos;
		pos += h.len;
		(void)rt_wire_sum(p, h.len);
		switch (h.type) {
		case RT_W_HELLO:
			if (rt_wire_get_hello(p, h.len, &u.hello) == 0 && !rt_wire_host_ok(u.hello.host))
				__builtin_trap(); /* a host name that passed must be usable */
			break;
		case RT_W_CHALLENGE:
			rt_wire_get_challenge(p, h.len, &u.ch);
			break;
		case RT_W_AUTH:
			rt_wire_get_auth(p, h.len, mac, &mac_len);
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
	}
	rt_batch_free(&batch);
	return 0;
}
