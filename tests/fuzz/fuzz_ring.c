/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ring - any bytes as the image of a ring file (header, slots, owner
 * table, chunks: what a hostile member of the ring's group can write),
 * consumed as ringtaild consumes it: open, several polls with every record
 * rendered, marks released, close. The consumer must never read outside
 * the file, loop without bound or crash, whatever the image says.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rtshm.h"
#include "seeds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[128];
static uint8_t *pristine, *img;
static size_t ring_size;
static int fd = -1;

/* A real ring of the seeds' geometry, made once; each input is laid over a
 * fresh copy of it (bytes past the input keep the fresh ring's). */
static int setup(void)
{
	struct rt_ring_params p;

	snprintf(path, sizeof(path), "/dev/shm/rt-fuzz-ring-%d", (int)getpid());
	rt_ring_params_default(&p);
	p.size = RT_FUZZ_RING_SIZE;
	p.chunk_size = RT_FUZZ_RING_CHUNK;
	p.nslots = RT_FUZZ_RING_SLOTS;
	p.tsc = 0;
	p.writer_pct = 100;
	p.reserve_pct = 0;
	unlink(path);
	if (rt_ring_create(path, &p))
		return -1;
	fd = open(path, O_RDWR);
	ring_size = fd < 0 ? 0 : (size_t)lseek(fd, 0, SEEK_END); /* the size rounded to chunks */
	pristine = malloc(ring_size);
	img = malloc(ring_size);
	if (!pristine || !img || pread(fd, pristine, ring_size, 0) != (ssize_t)ring_size)
		return -1;
	return 0;
}

static int take(void *arg, const struct rt_rec *r, const struct rt_origin *o)
{
	size_t n = rt_render_len(r, o->pos, 1);
	char *line = malloc(n);

	(void)arg;
	if (!line)
		return -1;
	if (rt_render(r, o->pos, "h", 1, line) != n)
		__builtin_trap();
	free(line);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rt_consumer *c;

	if (fd < 0 && setup())
		return 0;
	memcpy(img, pristine, ring_size);
	memcpy(img, data, size < ring_size ? size : ring_size);
	if (pwrite(fd, img, ring_size, 0) != (ssize_t)ring_size)
		return 0;
	if (rt_consumer_open(path, &c) != 0)
		return 0;
	for (int k = 0; k < 4; k++) {
		const struct rt_cursor *e;
		size_t n;
		int64_t m;
		rt_consumer_poll(c, take, NULL, 64);
		m = rt_consumer_mark(c, &e, &n);
		if (m > 0)
			rt_consumer_release(c, m);
	}
	rt_consumer_close(c);
	return 0;
}
