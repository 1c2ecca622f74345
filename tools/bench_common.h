/* SPDX-License-Identifier: MIT */
/*
 * bench_common.h - what the benchmarks of the ringtail tool share: the
 * records they write (synthetic, or the lines of a corpus of log files),
 * clocks and medians, the size of a spool, and running the real daemons.
 */
#ifndef RT_BENCH_COMMON_H
#define RT_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The records: lines of text, each ending in '\n' in @text. */
struct bench_input {
	char *text;
	size_t len;
	uint32_t *off;     /* start of each line */
	uint32_t *llen;    /* its length without the '\n' */
	size_t nlines;
	size_t cap_text, cap_lines;
};

/* 200,000 synthetic records of @size bytes that read like an access log.
 * @return 0 or -ENOMEM. */
int bench_input_synthetic(struct bench_input *in, size_t size);

/* The lines of every DIR/ *.log file (sorted by name), without their line
 * ends. @return 0, -ENOENT when there are none, or -errno. */
int bench_input_corpus(struct bench_input *in, const char *dir);

void bench_input_free(struct bench_input *in);

/* CLOCK_MONOTONIC in ns. */
uint64_t bench_now_ns(void);

void bench_sleep_ms(unsigned ms);

/* The median of @n values (1 <= n <= 64); @v is left as it is. */
double bench_median(const double *v, int n);

/* Bytes of the segment files directly in spool @dir. */
uint64_t bench_segment_bytes(const char *dir);

/* Remove @path and everything below it (no symlink is followed). */
void bench_rm_rf(const char *path);

/*
 * bench_find_bin - where the binary @name is: in $RINGTAIL_BIN_DIR, in the
 * build tree (@rel from this program's directory, e.g. "../spooler"), beside
 * this program, or in ../sbin from it. Fills @out (PATH_MAX bytes).
 * @return 0, or -ENOENT after saying so on stderr.
 */
int bench_find_bin(const char *name, const char *rel, char *out);

/* Start @argv[0] with @argv; its stderr appended to @log (NULL: /dev/null),
 * its stdout to /dev/null. It is killed if this process dies. @return the
 * pid, or -1. */
pid_t bench_spawn(char *const argv[], const char *log);

/* Wait for @pid. @return its exit status, 128 + signal, or -1. */
int bench_wait(pid_t pid);

/* SIGTERM to @pid, and wait (SIGKILL after @grace_ms). @return as bench_wait. */
int bench_stop(pid_t pid, unsigned grace_ms);

#endif
