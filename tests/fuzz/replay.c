/* SPDX-License-Identifier: MIT */
/*
 * replay - run a fuzz target without libFuzzer: on its seeds, on every
 * truncation of each seed, on thousands of seeded random byte changes, and on
 * the files of any directories given. Part of every build's test suite, so
 * the harnesses and the parsers behind them are exercised under ASan/UBSan
 * even where libFuzzer is not built.
 *
 *   replay_KIND [DIR...]
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seeds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long runs;
static uint64_t rs = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

static void one(void *arg, const char *name, const uint8_t *p, size_t n)
{
	uint8_t *m = malloc(n + 1);

	(void)arg;
	(void)name;
	if (!m)
		return;
	LLVMFuzzerTestOneInput(p, n);
	runs++;
	for (size_t len = 0; len < n; len += 1 + n / 512) {
		LLVMFuzzerTestOneInput(p, len);
		runs++;
	}
	for (int k = 0; k < 3000 && n; k++) {
		memcpy(m, p, n);
		for (int j = 0; j < 1 + (int)(rnd() % 4); j++)
			m[rnd() % n] = (uint8_t)rnd();
		LLVMFuzzerTestOneInput(m, n);
		runs++;
	}
	free(m);
}

int main(int argc, char **argv)
{
	const char *kind = strrchr(argv[0], '_');
	int n;

	kind = kind ? kind + 1 : "";
	n = rt_fuzz_seeds(kind, one, NULL);
	if (n <= 0) {
		fprintf(stderr, "replay: no seeds for '%s'\n", kind);
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			char path[4096];
			FILE *f;
			long len;
			uint8_t *buf;
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
			f = fopen(path, "rb");
			if (!f)
				continue;
			fseek(f, 0, SEEK_END);
			len = ftell(f);
			rewind(f);
			buf = malloc((size_t)len + 1);
			if (buf && fread(buf, 1, (size_t)len, f) == (size_t)len)
				one(NULL, de->d_name, buf, (size_t)len);
			free(buf);
			fclose(f);
		}
		if (d)
			closedir(d);
	}
	printf("ok - %s: %d seeds, %lu inputs (seeds, truncations, random byte changes): no crash\n",
	       kind, n, runs);
	return 0;
}
