/* SPDX-License-Identifier: MIT */
/*
 * parse.c - what users type on command lines and in file names: numbers,
 * sizes, durations, hex ids (see rtshm.h). One parser for every program.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rtshm.h"

/* The decimal number @s starts with (no sign, no space), *@end after it. */
static int leading(const char *s, unsigned long long *v, char **end)
{
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	*v = strtoull(s, end, 10);
	return errno ? -EINVAL : 0;
}

int rt_parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (leading(s, &v, &end) || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

int rt_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift;

	if (leading(s, &v, &end))
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case '\0':
		shift = 0;
		break;
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	default:
		return -EINVAL;
	}
	if (*end) {
		/* "64M", "64MB", "64MiB": all the same (powers of 1024). */
		end++;
		if (toupper((unsigned char)*end) == 'I')
			end++;
		if (toupper((unsigned char)*end) == 'B')
			end++;
		if (*end)
			return -EINVAL;
	}
	if (v > UINT64_MAX >> shift)
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

int rt_parse_duration(const char *s, uint64_t *ns)
{
	static const struct {
		const char *unit;
		uint64_t mul;
	} units[] = {
		{"ns", 1},
		{"us", 1000},
		{"ms", 1000000},
		{"s", 1000000000ull},
		{"m", 60ull * 1000000000},
		{"h", 3600ull * 1000000000},
		{"d", 86400ull * 1000000000},
		{"", 1000000000ull},
	};
	char *end;
	unsigned long long v;

	if (leading(s, &v, &end))
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcmp(end, units[i].unit)) {
			if (v > UINT64_MAX / units[i].mul)
				return -EINVAL;
			*ns = v * units[i].mul;
			return 0;
		}
	return -EINVAL;
}

static int hexval(int c, unsigned flags)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (!(flags & RT_HEX_LOWER) && c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int rt_parse_hex(const char *s, uint8_t *out, size_t n, unsigned flags)
{
	if (!s || strlen(s) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval((unsigned char)s[2 * i], flags);
		int lo = hexval((unsigned char)s[2 * i + 1], flags);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}
