/* Every CO-RE relocation kind, each result stored in .bss by a program the
 * tests run with BPF_PROG_TEST_RUN (a reached unresolvable one is poison.bpf.c). Some resolve differently on the host
 * (6.18) and the guest (6.1): BPF_FUNC_cgrp_storage_get and struct
 * bpf_arena came after 6.1. */
#include "common.h"

/* Flavours: local definitions of kernel types, matched by essential name. */
struct task_struct___mine {
	int pid;
	int tgid;
	char comm[16];
} __attribute__((preserve_access_index));

struct task_struct___pids {
	int pid;
	int tgid;
} __attribute__((preserve_access_index));

struct task_struct___fake {
	int openat_no_such_field;
} __attribute__((preserve_access_index));

/* struct bpf_arena came with 6.9: a local flavour, so that vmlinux.h of an older kernel compiles too */
struct bpf_arena___probe {
	int x;
} __attribute__((preserve_access_index));

struct openat_no_such_type {
	int x;
} __attribute__((preserve_access_index));

/* enum flavour, to name an enumerator newer kernels have */
enum bpf_func_id___new {
	BPF_FUNC_cgrp_storage_get___new = 210,
};

u64 pid, tgid, comm_size, comm0, pid_exists, fake_exists, pid_signed;
u64 flags_lshift, flags_rshift, bitfield_lshift, bitfield_rshift, bitfield_value;
u64 local_id, target_id, task_exists, fake_type_exists, task_size, task_matches, task_pids_match;
u64 ringbuf_output_exists, ringbuf_output_value, cgrp_storage_exists, arena_exists, dead_code_ran;
u64 array_elem_offset;

SEC("raw_tp/sys_enter")
int core_kinds(void *ctx)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct task_struct___mine *mine = (void *)task;

	pid = BPF_CORE_READ(task, pid);                                   /* FIELD_BYTE_OFFSET */
	tgid = BPF_CORE_READ(mine, tgid);                                 /* flavour: ___mine -> task_struct */
	comm_size = bpf_core_field_size(task->comm);                      /* FIELD_BYTE_SIZE */
	comm0 = BPF_CORE_READ(task, comm[0]);                             /* array element */
	array_elem_offset = bpf_core_field_offset(task->comm[3]);
	pid_exists = bpf_core_field_exists(task->pid);                    /* FIELD_EXISTS: yes */
	fake_exists = bpf_core_field_exists(((struct task_struct___fake *)task)->openat_no_such_field); /* no */
	pid_signed = __builtin_preserve_field_info(task->pid, BPF_FIELD_SIGNED); /* FIELD_SIGNED */
	bitfield_value = BPF_CORE_READ_BITFIELD_PROBED(task, sched_reset_on_fork); /* LSHIFT_U64 + RSHIFT_U64 */
	bitfield_lshift = __builtin_preserve_field_info(task->sched_reset_on_fork, BPF_FIELD_LSHIFT_U64);
	bitfield_rshift = __builtin_preserve_field_info(task->sched_reset_on_fork, BPF_FIELD_RSHIFT_U64);
	flags_lshift = __builtin_preserve_field_info(task->flags, BPF_FIELD_LSHIFT_U64);
	flags_rshift = __builtin_preserve_field_info(task->flags, BPF_FIELD_RSHIFT_U64);
	local_id = bpf_core_type_id_local(struct task_struct);            /* TYPE_ID_LOCAL */
	target_id = bpf_core_type_id_kernel(struct task_struct);          /* TYPE_ID_TARGET */
	task_exists = bpf_core_type_exists(struct task_struct);           /* TYPE_EXISTS: yes */
	fake_type_exists = bpf_core_type_exists(struct openat_no_such_type); /* no */
	task_size = bpf_core_type_size(struct task_struct);               /* TYPE_SIZE */
	task_pids_match = bpf_core_type_matches(struct task_struct___pids); /* TYPE_MATCHES: yes */
	/* ___mine has a char[16]: signed here (BPF), unsigned in kernels built with -funsigned-char (6.2+):
	 * it matches on the guest (6.1), not on the host (6.18). */
	task_matches = bpf_core_type_matches(struct task_struct___mine);
	ringbuf_output_exists = bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_ringbuf_output); /* ENUMVAL_EXISTS */
	ringbuf_output_value = bpf_core_enum_value(enum bpf_func_id, BPF_FUNC_ringbuf_output);         /* ENUMVAL_VALUE */
	/* These two differ between the host (6.18: 1) and the guest (6.1: 0). */
	cgrp_storage_exists = bpf_core_enum_value_exists(enum bpf_func_id___new, BPF_FUNC_cgrp_storage_get___new);
	arena_exists = bpf_core_type_exists(struct bpf_arena___probe);
	/* A relocation that cannot be resolved, in code the verifier proves dead: it is poisoned and dropped. */
	if (bpf_core_field_exists(((struct task_struct___fake *)task)->openat_no_such_field))
		dead_code_ran = BPF_CORE_READ((struct task_struct___fake *)task, openat_no_such_field);
	return 0;
}
