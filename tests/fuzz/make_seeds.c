/* SPDX-License-Identifier: MIT */
/* make_seeds - write the fuzz seeds of KIND into DIR (for libFuzzer). */
#include <stdio.h>
#include <stdlib.h>

#include "seeds.h"

static void save(void *arg, const char *name, const uint8_t *p, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", (const char *)arg, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: make_seeds KIND DIR\n");
		return 2;
	}
	return rt_fuzz_seeds(argv[1], save, argv[2]) > 0 ? 0 : 1;
}
