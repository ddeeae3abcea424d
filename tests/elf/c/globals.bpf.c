/* Global data of every kind: .rodata (const volatile, set before load and
 * frozen), .data (initialised), .bss (zero); read by a program run with
 * BPF_PROG_TEST_RUN, which copies what it sees into .bss. */
#include "common.h"

enum colour { RED = 1, GREEN = 2, BLUE = -3 };
struct pair { int a; char name[8]; u16 b; };

const volatile int ro_int = -5;
const volatile u64 ro_u64 = 1ULL << 40;
const volatile bool ro_flag = false;
const volatile enum colour ro_colour = GREEN;
const volatile char ro_name[12] = "openat";
const volatile u32 ro_list[3] = {1, 2, 3};

int data_int = 42;
struct pair data_pair = { 7, "pair", 9 };
static u32 data_static = 1000;

u64 bss_seen_int;
u64 bss_seen_u64;
u64 bss_seen_flag;
u64 bss_seen_colour;
char bss_seen_name[12];
u64 bss_seen_list_sum;
u64 bss_seen_data;
u64 bss_runs;

SEC("syscall")
int read_globals(void *ctx)
{
	int i;

	bss_seen_int = ro_int;
	bss_seen_u64 = ro_u64;
	bss_seen_flag = ro_flag;
	bss_seen_colour = ro_colour;
	for (i = 0; i < sizeof(bss_seen_name); i++)
		bss_seen_name[i] = ro_name[i];
	bss_seen_list_sum = ro_list[0] + ro_list[1] + ro_list[2];
	bss_seen_data = data_int + data_pair.a + data_pair.b + data_static;
	data_static++;
	bss_runs++;
	return ro_flag ? 1 : 2;
}
