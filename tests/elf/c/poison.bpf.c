/* An unresolvable CO-RE read that the program reaches: libbpf and openat poison it
 * (call 0xbad2310), and the verifier rejects the program naming that call.
 * Not in core.bpf.c: bpftool prog loadall could not load that object at all. */
#include "common.h"

struct task_struct___fake {
	int openat_no_such_field;
} __attribute__((preserve_access_index));

SEC("raw_tp/sys_enter")
int core_poisoned(void *ctx)
{
	struct task_struct___fake *task = (void *)bpf_get_current_task();

	return BPF_CORE_READ(task, openat_no_such_field);
}
