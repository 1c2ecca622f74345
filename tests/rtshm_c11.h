/* SPDX-License-Identifier: MIT */
/* rtshm_c11.h - the ring helpers header_c11 needs, built apart (with
 * _GNU_SOURCE) so that the strict unit only includes ringtail.h. */
#ifndef RTSHM_C11_H
#define RTSHM_C11_H

/* Make a small ring at @path. 0 or -errno. */
int t11_make_ring(const char *path);
/* Drain @path: 0 if it holds exactly the three records of header_c11 plus
 * the report of one invalid call, all from one slot and thread. */
int t11_check(const char *path);

#endif
