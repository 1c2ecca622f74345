/* SPDX-License-Identifier: MIT */
/*
 * parse - the one parser of numbers, sizes, durations and hex ids every program uses
 * (shm/parse.c): what it takes, what it refuses, overflow.
 */
#include "helpers.h"
#include "rtshm.h"

static void size_is(const char *s, uint64_t want)
{
	uint64_t v = 0;
	int err = rt_parse_size(s, &v);

	CHECK(err == 0 && v == want, "size '%s': %d, %llu (want %llu)", s, err,
	      (unsigned long long)v, (unsigned long long)want);
}

static void size_bad(const char *s)
{
	uint64_t v = 12345;

	CHECK(rt_parse_size(s, &v) == -EINVAL && v == 12345, "size '%s' taken", s ? s : "NULL");
}

static void dur_is(const char *s, uint64_t want)
{
	uint64_t v = 0;
	int err = rt_parse_duration(s, &v);

	CHECK(err == 0 && v == want, "duration '%s': %d, %llu", s, err, (unsigned long long)v);
}

int main(void)
{
	uint8_t b[16];

	{
		uint64_t v = 7;
		CHECK(rt_parse_u64("0", &v) == 0 && v == 0, "u64 0");
		CHECK(rt_parse_u64("18446744073709551615", &v) == 0 && v == UINT64_MAX, "u64 max");
		CHECK_EQ(rt_parse_u64("18446744073709551616", &v), -EINVAL);
		CHECK_EQ(rt_parse_u64("12K", &v), -EINVAL);
		CHECK_EQ(rt_parse_u64("-1", &v), -EINVAL);
		CHECK_EQ(rt_parse_u64("", &v), -EINVAL);
		CHECK_EQ(rt_parse_u64(NULL, &v), -EINVAL);
	}
	printf("ok - numbers\n");

	size_is("0", 0);
	size_is("4096", 4096);
	size_is("64K", 64ull << 10);
	size_is("64k", 64ull << 10);
	size_is("64M", 64ull << 20);
	size_is("64MB", 64ull << 20);
	size_is("64MiB", 64ull << 20);
	size_is("4G", 4ull << 30);
	size_is("2T", 2ull << 40);
	size_is("16777215T", 16777215ull << 40);
	size_bad(NULL);
	size_bad("");
	size_bad("-1");
	size_bad(" 1");
	size_bad("1X");
	size_bad("1KBB");
	size_bad("1 K");
	size_bad("16777216T");              /* 2^64 */
	size_bad("99999999999999999999999"); /* past strtoull */
	printf("ok - sizes\n");

	dur_is("7", 7000000000ull);
	dur_is("500ns", 500);
	dur_is("500us", 500000);
	dur_is("2ms", 2000000);
	dur_is("30s", 30000000000ull);
	dur_is("15m", 900000000000ull);
	dur_is("1h", 3600000000000ull);
	dur_is("14d", 14ull * 86400 * 1000000000);
	{
		uint64_t v;
		CHECK(rt_parse_duration("1w", &v) == -EINVAL, "1w");
		CHECK(rt_parse_duration("ms", &v) == -EINVAL, "ms");
		CHECK(rt_parse_duration("1.5s", &v) == -EINVAL, "1.5s");
		CHECK(rt_parse_duration("999999999999d", &v) == -EINVAL, "overflow");
	}
	printf("ok - durations\n");

	CHECK_EQ(rt_parse_hex("00ff7f80", b, 4, 0), 0);
	CHECK(b[0] == 0 && b[1] == 0xff && b[2] == 0x7f && b[3] == 0x80, "bytes");
	CHECK_EQ(rt_parse_hex("00FF7F80", b, 4, 0), 0);
	CHECK(b[1] == 0xff, "upper case");
	CHECK_EQ(rt_parse_hex("00FF7F80", b, 4, RT_HEX_LOWER), -EINVAL);
	CHECK_EQ(rt_parse_hex("00ff7f8", b, 4, 0), -EINVAL);   /* short */
	CHECK_EQ(rt_parse_hex("00ff7f800", b, 4, 0), -EINVAL); /* long */
	CHECK_EQ(rt_parse_hex("00ff7f8g", b, 4, 0), -EINVAL);
	CHECK_EQ(rt_parse_hex("4bf92f3577b34da6a3ce929d0e0e4736", b, 16, RT_HEX_LOWER), 0);
	CHECK(b[0] == 0x4b && b[15] == 0x36, "a trace id");
	printf("ok - hex ids\n");
	return 0;
}
