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
from typing import Callable, List, Optional, Sequence, Tuple

from .asm import R0, R1, W0, W1, Program
from .probe import ATTACH_MODES, ProbeOptions
from .syscalls.errors import CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, LOCKDOWN_FILE, effective_capabilities, lockdown_mode



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

    from .syscalls import _libc

    where = tempfile.mkdtemp(prefix="openat-securityfs-")
    try:
        _libc.mount("securityfs", where, "securityfs")
    except OSError:
        os.rmdir(where)
        return None
    try:
        return lockdown_mode(os.path.join(where, "lockdown"))
    finally:
        _libc.umount(where)
        os.rmdir(where)


def attach_support(mode: str, kprobe_interface: str = "auto") -> Tuple[bool, str]:
    """Whether the tracer can attach via ``mode`` here, by attaching for a moment.

    Returns (True, "") or (False, the kernel's reason in one line).
    """
    from .syscalls.errors import BpfError
    from .tracer import Tracer, TracerError

    tracer = Tracer(attach=mode, options=ProbeOptions(), ring_size=4096, kprobe_interface=kprobe_interface)
    try:
        tracer.start()
        return True, ""
    except (TracerError, BpfError) as error:
        reason = str(error).splitlines()[0]
        return False, reason.removeprefix(f"cannot attach via {mode}: ")
    finally:
        tracer.close()


def _isa_program(level: str) -> Program:
    """A tiny program that needs ``level`` (and loads nowhere below it)."""
    p = Program(isa=level)
    p.mov(R0, 0)
    if level == "v2":
        p.jlt(R0, 1, "done")  # jlt is new in v2
    elif level == "v3":
        p.jlt(W0, 1, "done")  # 32-bit jumps are new in v3
    elif level == "v4":
        p.mov(R1, 7)
        p.sdiv(R1, 1)  # signed division is new in v4
        p.movsx(W1, W1, 8)
    p.label("done")
    p.mov(R0, 0)
    p.exit()
    return p


def highest_isa() -> Tuple[Optional[str], str]:
    """The highest ISA level whose instructions this kernel's verifier accepts."""
    from .syscalls import BpfError, ProgType, load_program

    best: Optional[str] = None
    refused = ""
    for level in ("v1", "v2", "v3", "v4"):
        program = _isa_program(level)
        try:
            load_program(program.encode(), ProgType.SOCKET_FILTER, name=f"openat_isa_{level}").close()
            best = level
        except BpfError as error:
            refused = f"{level} refused: {str(error).splitlines()[0]}"
            break
    return best, refused


def run_checks(report: Callable[[Check], None]) -> List[Check]:
    """Run every check, reporting each as it completes."""
    checks: List[Check] = []

    def add(check: Check) -> None:
        checks.append(check)
        report(check)

    release = platform.release()
    add(Check("kernel", "OK", f"Linux {release} {platform.machine()}"))

    caps = effective_capabilities()
    if os.geteuid() == 0 or caps & (1 << CAP_SYS_ADMIN):
        add(Check("privileges", "OK", "root" if os.geteuid() == 0 else "CAP_SYS_ADMIN"))
    elif caps & (1 << CAP_BPF) and caps & (1 << CAP_PERFMON):
        add(Check("privileges", "OK", "CAP_BPF + CAP_PERFMON"))
    else:
        add(Check("privileges", "FAIL", "neither root nor CAP_BPF + CAP_PERFMON", "run with sudo"))
        return checks  # everything after this needs them

    from .syscalls import BpfError, MapType, map_create
    from .syscalls.perf import kprobe_events_available, kprobe_pmu_type
    from .syscalls.tracefs import ensure_tracefs, tracepoint_exists
    from .tracer import open_btf

    lockdown = lockdown_mode() if os.path.exists(LOCKDOWN_FILE) else read_lockdown_via_temporary_mount()
    if lockdown is None and not os.path.exists(LOCKDOWN_FILE):
        add(Check("lockdown", "WARN", "unknown: securityfs could not be read",
                  "mount -t securityfs securityfs /sys/kernel/security to see it"))
    elif lockdown:
        add(Check("lockdown", "WARN", f"{lockdown}: the kernel may refuse some program types to root",
                  "nothing to fix for openat: it falls back to an attach point lockdown allows"))
    else:
        add(Check("lockdown", "OK", "none"))

    btf = open_btf()
    if btf is not None:
        add(Check("BTF", "OK", "/sys/kernel/btf/vmlinux"))
    else:
        add(Check("BTF", "WARN", "no /sys/kernel/btf/vmlinux: tp_btf and fentry unavailable, offsets from built-in tables",
                  "use a kernel built with CONFIG_DEBUG_INFO_BTF=y"))

    try:
        tracefs = ensure_tracefs()
        add(Check("tracefs", "OK", tracefs))
    except (OSError, BpfError) as error:
        tracefs = None
        add(Check("tracefs", "FAIL", str(error).splitlines()[0], "mount -t tracefs tracefs /sys/kernel/tracing"))

    if kprobe_pmu_type() is not None:
        add(Check("kprobes", "OK", "kprobe PMU"))
    elif tracefs and kprobe_events_available(tracefs):
        add(Check("kprobes", "OK", "tracefs kprobe_events (no kprobe PMU)"))
    else:
        add(Check("kprobes", "FAIL", "no kprobe PMU and no kprobe_events",
                  "kernel built without CONFIG_KPROBES; openat uses another attach point"))

    if tracefs:
        missing = [name for name in ("sys_enter_openat", "sys_exit_openat") if not tracepoint_exists("syscalls", name, tracefs)]
        if missing:
            add(Check("syscall tracepoints", "FAIL", f"missing {', '.join(missing)}", "kernel built without CONFIG_FTRACE_SYSCALLS"))
        else:
            add(Check("syscall tracepoints", "OK", "syscalls/sys_enter_openat and friends"))

    try:
        map_create(MapType.RINGBUF, 0, 0, 4096, name="openat_doctor").close()
        add(Check("ring buffer", "OK", "BPF_MAP_TYPE_RINGBUF"))
    except BpfError as error:
        add(Check("ring buffer", "FAIL", str(error).splitlines()[0], "openat needs Linux 5.8 or later"))
        return checks

    level, refused = highest_isa()
    if level is None:
        add(Check("ISA level", "FAIL", refused, "the kernel refuses even v1 programs"))
    else:
        add(Check("ISA level", "OK" if level >= "v3" else "WARN",
                  f"{level} accepted" + (f" ({refused})" if refused else ""),
                  "" if level >= "v3" else "openat's probe needs v3 (Linux 5.1 or later)"))

    chosen = None
    for mode in ATTACH_MODES:
        usable, reason = attach_support(mode)
        if usable:
            add(Check(f"attach {mode}", "OK", "loads and attaches"))
            chosen = chosen or mode
        else:
            add(Check(f"attach {mode}", "FAIL", reason, _ATTACH_FIXES[mode]))
    if chosen:
        add(Check("auto attach", "OK", f"openat --attach auto uses {chosen}"))
    else:
        add(Check("auto attach", "FAIL", "no attach point works", "see the FAIL lines above"))
    return checks


_ATTACH_FIXES = {
    "kprobe": "needs CONFIG_KPROBES; otherwise openat falls back",
    "fentry": "needs BPF trampolines (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS) and no lockdown refusal; openat falls back",
    "tp_btf": "needs BTF (CONFIG_DEBUG_INFO_BTF) and Linux 5.5+",
    "raw_tp": "needs Linux 4.17+",
    "tracepoint": "needs CONFIG_FTRACE_SYSCALLS and tracefs",
}


def main(argv: Sequence[str] = ()) -> int:
    """``openat doctor``: prints one line per check; exit 1 when tracing cannot work."""
    parser = argparse.ArgumentParser(prog="openat doctor", description=__doc__.splitlines()[0])
    parser.parse_args(list(argv))

    def show(check: Check) -> None:
        line = f"{check.status:<4}  {check.name:<20} {check.detail}"
        if check.fix and check.status != "OK":
            line += f"\n      {'':<20} fix: {check.fix}"
        print(line, flush=True)

    checks = run_checks(show)
    usable = any(c.name == "auto attach" and c.status == "OK" for c in checks)
    print("tracing works here" if usable else "tracing cannot work here: see the FAIL lines", flush=True)
    return 0 if usable else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
