/* SPDX-License-Identifier: MIT */
/* cli.c - argument parsing helpers for the ringtail tool. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "ringtail.h"
#include "rtshm.h"

int cli_parse_severity(const char *s)
{
	static const struct {
		const char *name;
		int sev;
	} names[] = {
		{"trace", RT_TRACE},  {"debug", RT_DEBUG},   {"info", RT_INFO},
		{"notice", RT_INFO + 1}, {"warn", RT_WARN},  {"warning", RT_WARN},
		{"error", RT_ERROR},  {"err", RT_ERROR},     {"crit", RT_FATAL - 1},
		{"critical", RT_FATAL - 1}, {"alert", RT_FATAL}, {"emerg", RT_FATAL + 1},
		{"fatal", RT_FATAL},  {"panic", RT_FATAL + 1},
	};
	const char *dot = strrchr(s, '.');
	uint64_t v;
	size_t i;

	if (dot) /* logger(1) style facility.level: the level is what counts */
		s = dot + 1;
	if (rt_parse_u64(s, &v) == 0)
		return v >= RT_SEVERITY_MIN && v <= RT_SEVERITY_MAX ? (int)v : -EINVAL;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(s, names[i].name) == 0)
			return names[i].sev;
	return -EINVAL;
}

void cli_err(const char *fmt, ...)
{
	va_list ap;

	fputs("ringtail: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void cli_use_ring(const char *path)
{
	if (path)
		setenv(RT_RING_ENV, path, 1);
}
