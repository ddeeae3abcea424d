/* One program per section kind of libbpf's table that the issue names, each
 * counting its runs in the array 'hits' at its own index. (Sections libbpf does
 * not know, and '?' ones, are in odd_sections.bpf.c: bpftool prog loadall
 * would refuse this object with them.) */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 32);
	__type(key, u32);
	__type(value, u64);
} hits SEC(".maps");

static __always_inline int hit(u32 index)
{
	u64 *count = bpf_map_lookup_elem(&hits, &index);

	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat") int tracepoint_openat(void *ctx) { return hit(0); }
SEC("tp/syscalls/sys_enter_openat") int tp_openat(void *ctx) { return hit(1); }
SEC("raw_tracepoint/sys_enter") int raw_tracepoint_enter(void *ctx) { return hit(2); }
SEC("raw_tp/sys_enter") int raw_tp_enter(void *ctx) { return hit(3); }
SEC("tp_btf/sys_enter") int tp_btf_enter(void *ctx) { return hit(4); }
SEC("kprobe/do_sys_openat2") int kprobe_openat2(void *ctx) { return hit(5); }
SEC("kretprobe/do_sys_openat2") int kretprobe_openat2(void *ctx) { return hit(6); }
SEC("fentry/do_sys_openat2") int fentry_openat2(void *ctx) { return hit(7); }
SEC("fexit/do_sys_openat2") int fexit_openat2(void *ctx) { return hit(8); }
SEC("xdp") int xdp_pass(struct xdp_md *ctx) { hit(9); return XDP_PASS; }
SEC("tc") int tc_ok(struct __sk_buff *skb) { hit(10); return 0; }
SEC("classifier") int classifier_ok(struct __sk_buff *skb) { hit(11); return 0; }
SEC("socket") int socket_all(struct __sk_buff *skb) { hit(12); return skb->len; }
SEC("cgroup_skb/ingress") int cgroup_ingress(struct __sk_buff *skb) { hit(13); return 1; }
SEC("cgroup_skb/egress") int cgroup_egress(struct __sk_buff *skb) { hit(14); return 1; }
SEC("perf_event") int perf_event_sample(void *ctx) { return hit(15); }
SEC("ksyscall/getppid") int ksyscall_getppid(void *ctx) { return hit(16); }
