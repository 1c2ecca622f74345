/* SPDX-License-Identifier: MIT */
/*
 * service_name_stub.c - TEMPORARY, until package ring's
 * rt_service_name_ok() (shm/record.c) is merged: the same rule
 * (docs/ring.md, COMMON interface 3), so that the central's batch check can
 * be built and tested on this branch. It is a weak definition: once
 * shm/record.c defines the real one, the linker takes that, and this file
 * and its line in spooler/meson.build are to be deleted.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int rt_service_name_ok(const char *s, size_t n);

__attribute__((weak)) int rt_service_name_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	if (n == 0 || n > 64 || (n == 1 && s[0] == '.') || (n == 2 && !memcmp(s, "..", 2)) ||
	    (n == 8 && !memcmp(s, "ringtail", 8)) || (n == 9 && !memcmp(s, "ringtaild", 9)))
		return 0;
	while (i < n) {
		uint32_t cp;
		size_t len;
		if (p[i] < 0x80) {
			if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '/')
				return 0;
			i++;
			continue;
		}
		if (p[i] >= 0xc2 && p[i] <= 0xdf) {
			len = 2;
			cp = p[i] & 0x1f;
		} else if (p[i] >= 0xe0 && p[i] <= 0xef) {
			len = 3;
			cp = p[i] & 0x0f;
		} else if (p[i] >= 0xf0 && p[i] <= 0xf4) {
			len = 4;
			cp = p[i] & 0x07;
		} else {
			return 0; /* a continuation byte first, an overlong lead, or past U+10FFFF */
		}
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}
