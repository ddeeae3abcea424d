/*
 * openat()+close() of one file N times, as fast as the machine allows.
 * Compiled by the bench with the machine's gcc (never committed as a binary),
 * so the per-call figure reflects this kernel and libc, not a build box.
 *
 * usage: loadgen PATH N
 * prints one JSON line: {"calls": N, "elapsed_ns": T, "ns_per_call": T/N}
 *
 * usage: loadgen --getppid N
 * calls getppid() N times (through syscall(2), so libc cannot cache it) and
 * prints the same JSON line: the price of a syscall that opens nothing, which
 * is what a tracer hooked on every syscall's exit taxes.
 *
 * usage: loadgen --spin MS
 * keeps its core busy for MS milliseconds without a single syscall
 * (clock_gettime goes through the vDSO): the bench's stand-in for the
 * generator while it measures what BPF programs spend on other processes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s PATH N\n", argv[0]);
		return 2;
	}
	if (strcmp(argv[1], "--spin") == 0) {
		long long until = now_ns() + strtoll(argv[2], NULL, 10) * 1000000LL;
		while (now_ns() < until)
			;
		return 0;
	}
	if (strcmp(argv[1], "--getppid") == 0) {
		long n = strtol(argv[2], NULL, 10);
		if (n <= 0) {
			fprintf(stderr, "N must be positive\n");
			return 2;
		}
		long long start = now_ns();
		for (long i = 0; i < n; i++)
			syscall(SYS_getppid);
		long long elapsed = now_ns() - start;
		printf("{\"calls\": %ld, \"elapsed_ns\": %lld, \"ns_per_call\": %.1f}\n",
		       n, elapsed, (double)elapsed / (double)n);
		return 0;
	}
	const char *path = argv[1];
	long n = strtol(argv[2], NULL, 10);
	if (n <= 0) {
		fprintf(stderr, "N must be positive\n");
		return 2;
	}
	long long start = now_ns();
	for (long i = 0; i < n; i++) {
		/* openat() explicitly: that is the syscall every tracer under test hooks. */
		int fd = openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "openat %s: %s\n", path, strerror(errno));
			return 1;
		}
		close(fd);
	}
	long long elapsed = now_ns() - start;
	printf("{\"calls\": %ld, \"elapsed_ns\": %lld, \"ns_per_call\": %.1f}\n",
	       n, elapsed, (double)elapsed / (double)n);
	return 0;
}
