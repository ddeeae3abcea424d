/* A typed __ksym: a kernel variable by BTF id. The kernel still needs its address
 * from kallsyms, so only kernels with CONFIG_KALLSYMS_ALL load it (the guest's). */
#include "common.h"

extern const struct rq runqueues __ksym;

u64 rq_cpu = ~0ULL;

SEC("raw_tp/sys_enter")
int read_runqueue(void *ctx)
{
	struct rq *rq = bpf_this_cpu_ptr(&runqueues);

	rq_cpu = rq->cpu;
	return 0;
}
