/* SPDX-License-Identifier: MIT */
/*
 * fmt - the writer's own printf conversions give exactly what vsnprintf
 * gives, for random formats over every supported flag, width, precision,
 * length and conversion, and for truncation at every capacity; formats it
 * does not handle are left to vsnprintf (it says so with -1).
 */
#include "helpers.h"
#include "ringtail.h"

static long fmt(char *buf, size_t cap, const char *f, ...)
{
	va_list ap;
	long n;

	va_start(ap, f);
	n = rt__fmt(buf, cap, f, ap);
	va_end(ap);
	return n;
}

/* Build a random conversion and the argument it takes. */
static const char *convs = "diuxXocsp%";

int main(void)
{
	char f[64], got[512], want[512];
	long tested = 0, fallback = 0;

	srandom(7);
	for (int iter = 0; iter < 200000; iter++) {
		char conv = convs[random() % 10];
		const char *len = "";
		int pos = 0, lk = (int)(random() % 8);
		long long iv = (long long)(((uint64_t)random() << 33) ^ (uint64_t)random());
		const char *sv = (random() % 10 == 0) ? NULL : "hello world";
		void *pv = random() % 4 ? (void *)(uintptr_t)iv : NULL;
		long n;
		int w;

		if (random() % 3 == 0)
			iv = (long long)(random() % 2000) - 1000;
		if (conv == 'd' || conv == 'i' || conv == 'u' || conv == 'x' || conv == 'X' ||
		    conv == 'o')
			len = lk == 0 ? "hh" : lk == 1 ? "h" : lk == 2 ? "l" : lk == 3 ? "ll" : lk == 4 ? "z"
			      : lk == 5 ? "j" : "";
		pos += sprintf(f + pos, "a%%");
		if (random() % 3 == 0)
			f[pos++] = "-0+ "[random() % 4];
		if (random() % 4 == 0)
			f[pos++] = "-0+ "[random() % 4];
		if (random() % 2)
			pos += sprintf(f + pos, "%d", (int)(random() % 25));
		if (random() % 3 == 0)
			pos += sprintf(f + pos, ".%d", (int)(random() % 25));
		pos += sprintf(f + pos, "%s%cz", len, conv);

		/* The argument must match the conversion's type. */
#define BOTH(...)                                                                     \
	do {                                                                          \
		n = fmt(got, sizeof(got), f, __VA_ARGS__);                            \
		w = snprintf(want, sizeof(want), f, __VA_ARGS__);                     \
	} while (0)
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-security"
		if (conv == 's')
			BOTH(sv);
		else if (conv == 'p')
			BOTH(pv);
		else if (conv == 'c')
			BOTH((int)('A' + iv % 26));
		else if (conv == '%')
			BOTH(0);
		else if (!strcmp(len, "ll") || !strcmp(len, "j"))
			BOTH(iv);
		else if (!strcmp(len, "l") || !strcmp(len, "z"))
			BOTH((long)iv);
		else
			BOTH((int)iv);
		if (n < 0) {
			fallback++;
			continue;
		}
		CHECK(n == w && !memcmp(got, want, (size_t)n), "format '%s': got '%.*s' (%ld), want '%s' (%d)",
		      f, (int)(n < 0 ? 0 : n), got, n, want, w);
		/* Truncated output is a prefix of the whole. */
		{
			size_t cap = (size_t)(random() % (w + 1));
			char small[512];
			memset(small, '#', sizeof(small));
			if (conv == 's')
				n = fmt(small, cap, f, sv);
			else if (conv == 'p' || conv == 'c' || conv == '%')
				n = w; /* covered above */
			else if (!strcmp(len, "ll") || !strcmp(len, "j"))
				n = fmt(small, cap, f, iv);
			else if (!strcmp(len, "l") || !strcmp(len, "z"))
				n = fmt(small, cap, f, (long)iv);
			else
				n = fmt(small, cap, f, (int)iv);
			CHECK(n == w, "length with cap %zu", cap);
			if (conv != 'p' && conv != 'c' && conv != '%') {
				CHECK(!memcmp(small, want, cap), "prefix with cap %zu of '%s'", cap, f);
				CHECK(small[cap] == '#', "wrote past cap %zu of '%s'", cap, f);
			}
		}
		tested++;
	}
	CHECK(tested > 100000, "only %ld formats handled", tested);
	/* What it must leave to vsnprintf. */
	CHECK_EQ(fmt(got, sizeof(got), "%f", 1.0), -1);
	CHECK_EQ(fmt(got, sizeof(got), "%1$d", 1), -1);
	CHECK_EQ(fmt(got, sizeof(got), "%#x", 1), -1);
	CHECK_EQ(fmt(got, sizeof(got), "%m"), -1);
	CHECK_EQ(fmt(got, sizeof(got), "%n", (int *)NULL), -1);
	printf("ok - %ld random formats identical to snprintf (%ld left to it)\n", tested, fallback);
	return 0;
}
