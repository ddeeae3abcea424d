/* What every test object includes: the kernel's types (vmlinux.h, generated from
 * the running kernel's BTF at test time) and libbpf's helper headers (Debian's
 * libbpf-dev: a test aid, never needed at run time). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";
