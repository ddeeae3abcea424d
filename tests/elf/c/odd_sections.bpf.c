/* A program in a section libbpf's table does not know, and one not loaded by
 * default ('?'): listed in the spec, the first never loadable, the second on request. */
#include "common.h"

u64 runs;

SEC("openat_unknown/section") int unknown_section(void *ctx) { return 0; }
SEC("?raw_tp/sys_exit") int not_autoloaded(void *ctx) { runs++; return 0; }
SEC("raw_tp/sys_exit") int autoloaded(void *ctx) { return 0; }
