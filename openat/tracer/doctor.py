"""``openat doctor``: what this kernel offers the tracer, and how to fix what is missing.

Each check asks the kernel itself (loads a tiny program, creates a map,
attaches the real probe for a moment) rather than guessing from the version
or the config, and prints OK, WARN or FAIL with a one-line fix. The exit
status is non-zero when no attach point works.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from ..syscalls.errors import CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, LOCKDOWN_FILE, effective_capabilities, lockdown_mode
from .probe import ProbeOptions, auto_order

CheckReport = Callable[["Check"], None]


@dataclass
class Check:
    name: str
    status: str  # OK, WARN or FAIL
    detail: str
    fix: str = ""


def read_lockdown_via_temporary_mount() -> Optional[str]:
    """The lockdown mode, read from a securityfs mounted for a moment.

    securityfs is often not mounted; mounting it on a private temporary
    directory (and unmounting it again) leaves the system as it was.
    Returns None when it cannot be read, or when lockdown is off.
    """
    import tempfile

    from ..syscalls import libc

    where = tempfile.mkdtemp(prefix="openat-securityfs-")
    try:
        libc.mount("securityfs", where, "securityfs")
    except OSError:
        os.rmdir(where)
        return None
    try:
        return lockdown_mode(os.path.join(where, "lockdown"))
    finally:
        libc.umount(where)
        os.rmdir(where)


def attach_support(mode: str, kprobe_interface: str = "auto") -> Tuple[bool, str]:
    """Whether the tracer can attach via ``mode`` here, by attaching for a moment.

    Returns (True, "") or (False, the kernel's reason in one line).
    """
    from ..syscalls.errors import BpfError
    from .attach import Tracer, TracerError

    tracer = Tracer(attach=mode, options=ProbeOptions(), ring_size=4096, kprobe_interface=kprobe_interface)
    try:
        tracer.start()
        return True, ""
    except (TracerError, BpfError) as error:
        reason = str(error).splitlines()[0]
        return False, reason.removeprefix(f"cannot attach via {mode}: ")
    finally:
        tracer.close()


def run_checks(report: CheckReport) -> List[Check]:
    """Run every check, reporting each as it completes."""
    checks: List[Check] = []
    for section in (_privilege_checks, _kernel_checks, _attach_checks):
        for check in section():
            checks.append(check)
            report(check)
            if check.status == "FAIL" and check.name in _FATAL:
                return checks  # everything after this needs what failed
    return checks


# A failure of these makes every later check pointless.
_FATAL = ("privileges", "ring buffer")


def _privilege_checks() -> Iterator[Check]:
    yield Check("kernel", "OK", f"Linux {platform.release()} {platform.machine()}")
    caps = effective_capabilities()
    if os.geteuid() == 0 or caps & (1 << CAP_SYS_ADMIN):
        yield Check("privileges", "OK", "root" if os.geteuid() == 0 else "CAP_SYS_ADMIN")
    elif caps & (1 << CAP_BPF) and caps & (1 << CAP_PERFMON):
        yield Check("privileges", "OK", "CAP_BPF + CAP_PERFMON")
    else:
        yield Check("privileges", "FAIL", "neither root nor CAP_BPF + CAP_PERFMON", "run with sudo")


def _kernel_checks() -> Iterator[Check]:
    from ..syscalls import features
    from ..syscalls.errors import BpfError
    from ..syscalls.tracefs import ensure_tracefs

    yield _lockdown_check()
    if features.btf():
        yield Check("BTF", "OK", "/sys/kernel/btf/vmlinux")
    elif features.btf().reason.startswith(features.BTF_UNREADABLE):
        yield Check("BTF", "WARN", f"{features.btf().reason}: tp_btf and fentry unavailable, offsets from built-in tables",
                    "the file is corrupt or of a newer BTF format than openat reads")
    else:
        yield Check("BTF", "WARN", "no /sys/kernel/btf/vmlinux: tp_btf and fentry unavailable, offsets from built-in tables",
                    "use a kernel built with CONFIG_DEBUG_INFO_BTF=y")
    try:
        yield Check("tracefs", "OK", ensure_tracefs())
        tracefs = True
    except (OSError, BpfError) as error:
        tracefs = False
        yield Check("tracefs", "FAIL", str(error).splitlines()[0], "mount -t tracefs tracefs /sys/kernel/tracing")
    kprobes = features.kprobes()
    if kprobes:
        yield Check("kprobes", "OK", "kprobe PMU" if features.kprobe_pmu() else "tracefs kprobe_events (no kprobe PMU)")
    else:
        yield Check("kprobes", "FAIL", "no kprobe PMU and no kprobe_events",
                    "kernel built without CONFIG_KPROBES; openat uses another attach point")
    if tracefs:
        syscalls = features.syscall_tracepoints()
        if syscalls:
            yield Check("syscall tracepoints", "OK", syscalls.reason)
        else:
            yield Check("syscall tracepoints", "FAIL", syscalls.reason, "kernel built without CONFIG_FTRACE_SYSCALLS")
    ring = features.ringbuf()
    if ring:
        yield Check("ring buffer", "OK", "BPF_MAP_TYPE_RINGBUF")
    else:
        yield Check("ring buffer", "FAIL", ring.reason, "openat needs Linux 5.8 or later")
        return
    yield _isa_check(*features.highest_isa())


def _lockdown_check() -> Check:
    lockdown = lockdown_mode() if os.path.exists(LOCKDOWN_FILE) else read_lockdown_via_temporary_mount()
    if lockdown is None and not os.path.exists(LOCKDOWN_FILE):
        return Check("lockdown", "WARN", "unknown: securityfs could not be read",
                     "mount -t securityfs securityfs /sys/kernel/security to see it")
    if lockdown:
        return Check("lockdown", "WARN", f"{lockdown}: the kernel may refuse some program types to root",
                     "nothing to fix for openat: it falls back to an attach point lockdown allows")
    return Check("lockdown", "OK", "none")


def _isa_check(level: Optional[str], refused: str) -> Check:
    if level is None:
        return Check("ISA level", "FAIL", refused, "the kernel refuses even v1 programs")
    return Check("ISA level", "OK" if level >= "v3" else "WARN",
                 f"{level} accepted" + (f" ({refused})" if refused else ""),
                 "" if level >= "v3" else "openat's probe needs v3 (Linux 5.1 or later)")


def _attach_checks() -> Iterator[Check]:
    from ..syscalls import features

    chosen = None
    exit_only = bool(features.btf() and features.task_btf_helper() and features.task_pt_regs_helper())
    for mode in auto_order(exit_only):
        usable, reason = attach_support(mode)
        if usable:
            yield Check(f"attach {mode}", "OK", "loads and attaches")
            chosen = chosen or mode
        else:
            yield Check(f"attach {mode}", "FAIL", reason, _ATTACH_FIXES[mode])
    if chosen:
        yield Check("auto attach", "OK", f"openat --attach auto uses {chosen}")
    else:
        yield Check("auto attach", "FAIL", "no attach point works", "see the FAIL lines above")


_ATTACH_FIXES = {
    "kprobe": "needs CONFIG_KPROBES; otherwise openat falls back",
    "fentry": "needs BPF trampolines (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS) and no lockdown refusal; openat falls back",
    "tp_btf": "needs BTF (CONFIG_DEBUG_INFO_BTF) and Linux 5.5+",
    "raw_tp": "needs Linux 4.17+",
    "tracepoint": "needs CONFIG_FTRACE_SYSCALLS and tracefs",
}


def run_network_checks(report: CheckReport) -> List[Check]:
    """The network hooks' checks (openat.link.xdp, openat.link.tc), reporting each: tracing needs none of them."""
    checks = list(_network_checks())
    for check in checks:
        report(check)
    return checks


def _network_checks() -> Iterator[Check]:
    from importlib.util import find_spec  # finds pyroute2 without importing it

    from ..syscalls import features

    if find_spec("pyroute2") is not None:
        yield Check("pyroute2", "OK", "installed: openat.link.xdp and openat.link.tc can attach")
    else:
        yield Check("pyroute2", "WARN", "not installed: openat.link.xdp and openat.link.tc cannot attach",
                    "pip install 'openat[net]'")
    for name, feature, fix in (
        ("XDP programs", features.xdp_program(), "needs Linux 4.8 or later"),
        ("XDP links", features.xdp_link(), "needs Linux 5.9+; until then xdp.attach goes through netlink"),
        ("sched_cls programs", features.sched_cls_program(), "needs CONFIG_NET_CLS_BPF"),
        ("tcx links", features.tcx_link(), "needs Linux 6.6+; until then tc.attach adds a clsact filter"),
    ):
        yield Check(name, "OK" if feature else "WARN", feature.reason, fix)


def main(argv: Sequence[str] = ()) -> int:
    """``openat doctor``: prints one line per check; exit 1 when tracing cannot work."""
    parser = argparse.ArgumentParser(
        prog="openat doctor",
        description="What this kernel offers the tracer, and how to fix what is missing: one line per check "
        "(OK, WARN or FAIL), found by asking the kernel itself. Exit status 1 when no attach point works.",
    )
    parser.parse_args(list(argv))

    def show(check: Check) -> None:
        line = f"{check.status:<4}  {check.name:<20} {check.detail}"
        if check.fix and check.status != "OK":
            line += f"\n      {'':<20} fix: {check.fix}"
        print(line, flush=True)

    checks = run_checks(show)
    usable = any(c.name == "auto attach" and c.status == "OK" for c in checks)
    print("tracing works here" if usable else "tracing cannot work here: see the FAIL lines", flush=True)
    print("\nnetwork hooks (openat.link.xdp, openat.link.tc; not needed for tracing):", flush=True)
    run_network_checks(show)
    return 0 if usable else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
