/* SPDX-License-Identifier: MIT */
/*
 * demo_app - a pretend web service that logs the way applications use
 * ringtail.h: a service name set once, printf-style and preformatted calls,
 * severities, and a W3C trace id carried across three services for each
 * request. tools/demo runs it; it is also the program tools/test builds
 * against the installed header with pkg-config.
 *
 *   ringtail-demo-app [REQUESTS]     (default 1000)
 */
#include <ringtail.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
	static const char *const users[] = {"alice", "bob", "carol", "dave"};
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000, i, failed = 0;
	struct rt_opts o = {0};
	uint8_t trace[16], span[8];
	/* Trace ids differ from run to run (the time, and where the stack
	 * is): each request's trace is its own. */
	uint32_t run = (uint32_t)time(NULL) ^ (uint32_t)(uintptr_t)&n;
	int err;

	err = rt_set_service("api");
	if (err == 0)
		err = rt_attach();
	if (err) {
		fprintf(stderr, "demo-app: %s\n", rt_strerror(err));
		return 1;
	}
	o.trace_id = trace;
	o.span_id = span;
	for (i = 0; i < n; i++) {
		const char *user = users[i % 4];
		int ms = (int)((i * 37) % 900);
		for (int k = 0; k < 16; k++)
			trace[k] = (uint8_t)(i * 131 + k * 7 + 1);
		for (int k = 0; k < 4; k++)
			trace[k] = (uint8_t)(run >> (8 * k));
		trace[4] = (uint8_t)(i >> 8);
		for (int k = 0; k < 8; k++)
			span[k] = (uint8_t)(i + k);

		o.service = NULL;
		failed += rt_printfx(RT_INFO, &o, "GET /orders/%ld user=%s", i, user) != 0;
		o.service = "auth";
		failed += rt_printfx(RT_DEBUG, &o, "token ok for %s", user) != 0;
		o.service = "billing";
		if (ms > 800)
			failed += rt_printfx(RT_ERROR, &o, "payment provider timeout after %d ms", ms) != 0;
		else
			failed += rt_printfx(RT_INFO, &o, "charged order %ld in %d ms", i, ms) != 0;
		o.service = NULL;
		failed += rt_printfx(ms > 500 ? RT_WARN : RT_INFO, &o, "200 /orders/%ld %d ms", i, ms) != 0;
	}
	failed += rt_write(RT_INFO, "demo-app done", 13) != 0;
	printf("demo-app: %ld requests, %ld records, %ld not taken\n", n, 4 * n + 1, failed);
	return failed ? 1 : 0;
}
