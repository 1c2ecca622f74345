/* SPDX-License-Identifier: MIT */
/* header_c11_helper - the ring side of header_c11 (see rtshm_c11.h). */
#include "helpers.h"
#include "rtshm_c11.h"

int t11_make_ring(const char *path)
{
	struct rt_ring_params p;

	rt_ring_params_default(&p);
	p.size = 1u << 20;
	p.chunk_size = 4096;
	p.nslots = 16;
	unlink(path);
	return rt_ring_create(path, &p);
}

int t11_check(const char *path)
{
	static const char *want[] = {"from C", "from C++", "C again 3"};
	struct rt_consumer *c;
	struct t_recs rs = {0};

	CHECK_EQ(rt_consumer_open(path, &c), 0);
	t_drain(c, t_collect, &rs);
	rt_consumer_close(c);
	CHECK_EQ(rs.n, 4);
	for (int i = 0; i < 3; i++) {
		CHECK(!strcmp(rs.v[i].msg, want[i]), "record %d is '%s'", i, rs.v[i].msg);
		CHECK(!strcmp(rs.v[i].service, "c11"), "service '%s'", rs.v[i].service);
		CHECK(rs.v[i].slot == rs.v[0].slot && rs.v[i].tid == rs.v[0].tid, "one slot");
	}
	CHECK(rs.v[3].flags & RT_REC_LOSS, "the invalid call is reported");
	t_recs_free(&rs);
	return 0;
}
