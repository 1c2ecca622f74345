/* SPDX-License-Identifier: MIT */
/*
 * header_c11 - ringtail.h builds as strict ISO C11 (no _GNU_SOURCE, -std=c11
 * -pedantic) when it is the first include, links with a C++17 translation
 * unit that includes it too, and both share one writer state: records from
 * either come through the same slot of the same thread.
 */
#undef _GNU_SOURCE
#include "ringtail.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "rtshm_c11.h"

int cpp_write(const char *msg);
uint64_t cpp_dropped(void);

int main(void)
{
	char path[64];
	int n;

	snprintf(path, sizeof(path), "/dev/shm/rt-test-c11-%d", (int)getpid());
	setenv(RT_RING_ENV, path, 1);
	if (t11_make_ring(path) != 0)
		return 1;
	if (rt_set_service("c11") != 0 || rt_write(RT_INFO, "from C", 6) != 0 ||
	    cpp_write("from C++") != 0 || rt_printf(RT_WARN, "%s %d", "C again", 3) != 0) {
		fprintf(stderr, "write failed\n");
		return 1;
	}
	(void)rt_write(0, "bad", 3);
	if (rt_dropped() != 1 || cpp_dropped() != 1) {
		fprintf(stderr, "the two translation units do not share state\n");
		return 1;
	}
	n = t11_check(path);
	unlink(path);
	if (n != 0)
		return 1;
	printf("ok - strict C11 and C++17 units share one writer\n");
	return 0;
}
