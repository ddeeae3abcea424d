/* __kconfig and __ksym externs, each value copied to .bss by a program the tests run. */
#include "common.h"

extern u32 LINUX_KERNEL_VERSION __kconfig;
extern bool LINUX_HAS_BPF_COOKIE __kconfig;
extern int CONFIG_HZ __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig;
extern enum libbpf_tristate CONFIG_TUN __kconfig __weak;
extern char CONFIG_DEFAULT_HOSTNAME[16] __kconfig __weak;
extern int CONFIG_OPENAT_NO_SUCH_OPTION __kconfig __weak;

extern const void do_sys_openat2 __ksym;              /* untyped: by address (/proc/kallsyms) */
extern const int openat_no_such_ksym __ksym __weak;   /* typed, missing, weak: 0 */

u64 kernel_version, has_cookie, hz, bpf_syscall, tun, no_such_option, openat2_address, missing_ksym;
char hostname[16];

SEC("raw_tp/sys_enter")
int read_externs(void *ctx)
{
	int i;

	kernel_version = LINUX_KERNEL_VERSION;
	has_cookie = LINUX_HAS_BPF_COOKIE;
	hz = CONFIG_HZ;
	bpf_syscall = CONFIG_BPF_SYSCALL;
	tun = CONFIG_TUN;
	no_such_option = CONFIG_OPENAT_NO_SUCH_OPTION;
	for (i = 0; i < sizeof(hostname); i++)
		hostname[i] = CONFIG_DEFAULT_HOSTNAME[i];
	openat2_address = (u64)&do_sys_openat2;
	missing_ksym = (u64)&openat_no_such_ksym;
	return 0;
}
