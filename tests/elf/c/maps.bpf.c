/* One map of each kind the libbpf-tools use, each written by one program:
 * tests/elf/test_load.py reads every one back. */
#include "common.h"

struct event {
	u32 pid;
	u32 seq;
	char comm[16];
};

const volatile u32 target_tgid = 0;
const volatile u64 target_nr = 110; /* getppid on x86_64; the tests set it */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, u32);
	__type(value, u64);
} hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, u32);
	__type(value, struct event);
} array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16);
	__type(key, u32);
	__type(value, u64);
} percpu_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} percpu_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32);
	__type(key, u32);
	__type(value, u64);
} lru_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 32);
	__type(key, u32);
	__type(value, u64);
} lru_percpu_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} ringbuf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16);
	__uint(key_size, sizeof(u32));
	__uint(value_size, 127 * sizeof(u64));
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(u32));
	__uint(value_size, sizeof(u32));
} perf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, u32);
	__type(value, u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned_counts SEC(".maps");

u64 stack_id = 0;
u32 seq = 0;

SEC("raw_tp/sys_enter")
int fill_maps(struct bpf_raw_tracepoint_args *ctx)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32, zero = 0;
	struct event e = {};
	u64 one = 1, *count;

	if (tgid != target_tgid || ctx->args[1] != target_nr)
		return 0;
	e.pid = tgid;
	e.seq = seq++;
	bpf_get_current_comm(e.comm, sizeof(e.comm));

	count = bpf_map_lookup_elem(&hash, &tgid);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&hash, &tgid, &one, BPF_ANY);
	bpf_map_update_elem(&array, &zero, &e, BPF_ANY);
	count = bpf_map_lookup_elem(&percpu_hash, &zero);
	if (count)
		*count += 1;
	else
		bpf_map_update_elem(&percpu_hash, &zero, &one, BPF_ANY);
	count = bpf_map_lookup_elem(&percpu_array, &zero);
	if (count)
		*count += 1;
	bpf_map_update_elem(&lru_hash, &tgid, &one, BPF_ANY);
	bpf_map_update_elem(&lru_percpu_hash, &tgid, &one, BPF_ANY);
	bpf_map_update_elem(&pinned_counts, &tgid, &e.seq, BPF_ANY);
	bpf_ringbuf_output(&ringbuf, &e, sizeof(e), 0);
	bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU, &e, sizeof(e));
	stack_id = bpf_get_stackid(ctx, &stacks, 0) + 1;
	return 0;
}
