/* A program the verifier must refuse: the map value is used without the NULL check. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} values SEC(".maps");

SEC("syscall")
int unchecked(void *ctx)
{
	u32 key = 0;
	u64 *value = bpf_map_lookup_elem(&values, &key);

	return *value + 1; /* REJECTED HERE */
}
