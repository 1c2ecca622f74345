/* SPDX-License-Identifier: MIT */
/* bench_fs.c - `ringtail bench fs` (not written yet). */
#include "cli.h"

int bench_fs(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cli_err("bench fs is not available yet");
	return 2;
}
