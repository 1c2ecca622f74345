/* SPDX-License-Identifier: MIT */
/* cli.h - helpers shared by the commands of the ringtail tool. */
#ifndef RT_CLI_H
#define RT_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "rtshm.h" /* rt_parse_u64(), rt_parse_size(), rt_parse_hex() */

/* Every command: argv[0] is the command name. Returns the exit status. */
int cmd_log(int argc, char **argv);
int cmd_wrap(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_ring(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int bench_writer(int argc, char **argv);
int bench_fs(int argc, char **argv);
int bench_spool(int argc, char **argv);
int bench_forward(int argc, char **argv);

/* $RINGTAIL_SPOOL, or ringtaild's default spool for this user. */
const char *cli_default_spool(void);

/* Parse "info", "warning", "err", "user.notice", or 1..24. -EINVAL if bad. */
int cli_parse_severity(const char *s);
/* Print "ringtail: " + message to stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Point the writer at @path (sets $RINGTAIL_RING) when @path is not NULL. */
void cli_use_ring(const char *path);

#endif
