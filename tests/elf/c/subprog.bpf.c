/* bpf-to-bpf calls: static and global functions in .text, shared by two
 * programs, calling each other, and a bpf_loop callback (a function address). */
#include "common.h"

static __noinline int square(int x)
{
	return x * x;
}

static __noinline int sum_of_squares(int a, int b)
{
	return square(a) + square(b);
}

__noinline int global_triple(int x)
{
	return x * 3;
}

static int add_index(u32 index, void *ctx)
{
	*(u64 *)ctx += index;
	return 0;
}

u64 loop_total;

SEC("syscall")
int first(void *ctx)
{
	return sum_of_squares(3, 4);            /* 25 */
}

SEC("syscall")
int second(void *ctx)
{
	u64 total = 0;

	bpf_loop(5, add_index, &total, 0);      /* 0 + 1 + 2 + 3 + 4 */
	loop_total = total;
	return global_triple(square(2)) + total; /* 12 + 10 */
}
