// SPDX-License-Identifier: GPL-2.0
/* opensnoop as libbpf-tools writes it, compiled by clang and loaded by
 * examples/elf_opensnoop.py with openat.elf: a tracepoint on openat(2) sends
 * one event per open through a perf buffer. Build:
 *
 *   bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h
 *   clang-19 -target bpf -O2 -g -D__TARGET_ARCH_x86 -I. -c elf_opensnoop.bpf.c -o elf_opensnoop.bpf.o
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define NAME_MAX 256

struct event {
	u32 pid;
	u32 flags;
	char comm[16];
	char filename[NAME_MAX];
};

const volatile u32 targ_tgid = 0;   /* 0: every process */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct event);
} scratch SEC(".maps");             /* an event is too big for the 512-byte stack */

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(u32));
	__uint(value_size, sizeof(u32));
} events SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_openat")
int trace_openat(struct trace_event_raw_sys_enter *ctx)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32, zero = 0;
	struct event *event;

	if (targ_tgid && tgid != targ_tgid)
		return 0;
	event = bpf_map_lookup_elem(&scratch, &zero);
	if (!event)
		return 0;
	event->pid = tgid;
	event->flags = ctx->args[2];
	bpf_get_current_comm(event->comm, sizeof(event->comm));
	bpf_probe_read_user_str(event->filename, sizeof(event->filename), (const char *)ctx->args[1]);
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
