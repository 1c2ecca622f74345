// SPDX-License-Identifier: MIT
// header_cpp - the C++17 half of header_c11: the header compiles cleanly as
// C++ and its writer state is the same object the C unit uses.
#include <ringtail.h>

#include <cstring>

extern "C" int cpp_write(const char *msg)
{
	return rt_write(RT_INFO, msg, std::strlen(msg));
}

extern "C" uint64_t cpp_dropped(void)
{
	return rt_dropped();
}
