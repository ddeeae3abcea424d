"""What this kernel lets a BPF user do: the one set of feature probes.

Each probe asks the kernel itself (creates a map, loads a two-instruction
program, attaches it for a moment) rather than guessing from the version or
the config, and answers with a :class:`Feature`: truthy when it works, with a
one-line reason either way. Answers are cached for the life of the process
(the kernel does not change under it). ``openat doctor``, the tracer's
attach fallback and the tests' skips all ask here.

Probes leave nothing behind: every object they create is closed before they
return, and tracefs is never mounted by a probe.
"""

from __future__ import annotations

import functools
import os
from typing import Dict, Optional, Tuple

from ..asm import R0, R1, W0, W1, Program
from ..btf import BtfError, BtfKind
from ..fieldtuple import FieldTuple
from ..uapi import XDP_FLAGS_SKB_MODE, AttachType, MapType, ProgType, TcAction, XdpAction, enum_name
from .btf import save_vmlinux_index, vmlinux_btf
from .errors import LOCKDOWN_FILE, BpfError, lockdown_mode
from .info import enable_stats
from .links import link_create, raw_tracepoint_open
from .maps import map_create
from .perf import KPROBE_PMU_DIR, kprobe_pmu_type
from .programs import prog_load
from .tracefs import find_tracefs, tracepoint_exists

__all__ = [
    "BTF_UNREADABLE",
    "Feature",
    "bpf_cookie",
    "btf",
    "btf_features",
    "btf_kind",
    "fentry",
    "highest_isa",
    "kprobe_events",
    "kprobe_pmu",
    "kprobes",
    "lockdown",
    "perf_event_array",
    "program_type",
    "raw_tracepoint",
    "report",
    "ringbuf",
    "run_time_stats",
    "sched_cls_program",
    "syscall_tracepoints",
    "task_btf_helper",
    "tcx_link",
    "tp_btf",
    "tracefs",
    "xdp_link",
    "xdp_program",
]

# The function every open goes through (since 5.6; do_sys_open before): a
# target for the fentry probe that every kernel has.
OPEN_FUNCTIONS = ("do_sys_openat2", "do_sys_open")
# The loopback device of a new network namespace always has this index.
LOOPBACK_IFINDEX = 1
ISA_LEVELS = ("v1", "v2", "v3", "v4")


class Feature(FieldTuple):
    """A probe's answer; truthy when the feature works. ``reason`` is one line either way."""

    available: bool
    reason: str

    def __bool__(self) -> bool:
        return self.available


def _failed(error: BaseException) -> Feature:
    text = str(error)
    return Feature(False, text.splitlines()[0] if text else type(error).__name__)


def _return_zero(isa: str = "v1") -> Program:
    return _returning(0, isa)


def _returning(value: int, isa: str = "v1") -> Program:
    p = Program(isa=isa)
    p.mov(R0, value)
    p.exit()
    return p


def _loads(program: Program, prog_type: int, *, attach_tracepoint: Optional[str] = None, **load: int) -> Feature:
    """Does ``program`` load as ``prog_type`` (and attach to raw tracepoint ``attach_tracepoint``)?

    With ``attach_tracepoint=""`` the program attaches to its BTF target.
    """
    try:
        with prog_load(program.encode(), prog_type, name="openat_feature", **load) as prog:
            if attach_tracepoint is not None:
                with raw_tracepoint_open(prog, attach_tracepoint or None):
                    pass
    except BpfError as error:
        return _failed(error)
    done = "attached" if attach_tracepoint is not None else "loaded"
    return Feature(True, f"{enum_name(ProgType, prog_type)} program {done}")


# How btf() begins its reason when the kernel's BTF is there but cannot be read or is corrupt.
BTF_UNREADABLE = "kernel BTF unreadable"


@functools.cache
def btf() -> Feature:
    """Does the kernel expose its BTF (CONFIG_DEBUG_INFO_BTF), readable?

    Counting the types walks every record, so a corrupt file is found here: its reason
    then begins with :data:`BTF_UNREADABLE` and names the fault.
    """
    try:
        btf = vmlinux_btf()
        count = len(btf)  # walks every record unless this boot's index was cached
        save_vmlinux_index(btf)
        return Feature(True, f"/sys/kernel/btf/vmlinux has {count} types")
    except BpfError as error:
        return _failed(error)
    except (BtfError, OSError) as error:
        return Feature(False, f"{BTF_UNREADABLE}: {_failed(error).reason}")


@functools.cache
def _map_type(map_type: int, key_size: int, value_size: int, max_entries: int) -> Feature:
    name = enum_name(MapType, map_type)
    try:
        with map_create(map_type, key_size, value_size, max_entries, name="openat_feature"):
            pass
    except BpfError as error:
        return _failed(error)
    return Feature(True, f"{name} map created")


def ringbuf() -> Feature:
    """Can a BPF_MAP_TYPE_RINGBUF map be created (Linux 5.8+)?"""
    return _map_type(MapType.RINGBUF, 0, 0, os.sysconf("SC_PAGE_SIZE"))


def perf_event_array() -> Feature:
    """Can a BPF_MAP_TYPE_PERF_EVENT_ARRAY map be created (Linux 4.3+)?"""
    return _map_type(MapType.PERF_EVENT_ARRAY, 4, 4, 1)


@functools.cache
def program_type(prog_type: int) -> Feature:
    """Can a trivial program of ``prog_type`` be loaded?"""
    return _loads(_return_zero(), prog_type)


@functools.cache
def raw_tracepoint() -> Feature:
    """Can a raw_tp program be loaded and attached to sys_enter (Linux 4.17+)?"""
    return _loads(_return_zero(), ProgType.RAW_TRACEPOINT, attach_tracepoint="sys_enter")


@functools.cache
def tp_btf(tracepoint: str = "sys_enter", *, attach: bool = False) -> Feature:
    """Can a tp_btf program on raw tracepoint ``tracepoint`` be loaded (and attached)?"""
    if not btf():
        return btf()
    try:
        type_id = vmlinux_btf().find(f"btf_trace_{tracepoint}", BtfKind.TYPEDEF)
    except (BpfError, BtfError) as error:
        return _failed(error)
    return _loads(
        _return_zero(), ProgType.TRACING, attach_tracepoint="" if attach else None,
        expected_attach_type=AttachType.TRACE_RAW_TP, attach_btf_id=type_id,
    )


@functools.cache
def fentry(function: Optional[str] = None, *, attach: bool = False) -> Feature:
    """Can an fentry program on ``function`` (default: the open syscall's) be loaded (and attached)?

    Needs BPF trampolines, which kernel lockdown or an LSM may refuse even to root.
    """
    if not btf():
        return btf()
    try:
        func_id = _function_id(function)
    except (BpfError, BtfError) as error:
        return _failed(error)
    return _loads(
        _return_zero(), ProgType.TRACING, attach_tracepoint="" if attach else None,
        expected_attach_type=AttachType.TRACE_FENTRY, attach_btf_id=func_id,
    )


def _function_id(function: Optional[str]) -> int:
    btf_data = vmlinux_btf()
    if function is not None:
        return btf_data.func_id(function)
    for name in OPEN_FUNCTIONS:
        try:
            return btf_data.func_id(name)
        except BtfError:
            continue
    raise BtfError(f"none of {', '.join(OPEN_FUNCTIONS)} in the kernel's BTF")


@functools.cache
def xdp_program() -> Feature:
    """Can an XDP program (BPF_PROG_TYPE_XDP, Linux 4.8+) be loaded?"""
    return program_type(ProgType.XDP)


@functools.cache
def sched_cls_program() -> Feature:
    """Can a tc classifier program (BPF_PROG_TYPE_SCHED_CLS, Linux 4.1+) be loaded?"""
    return program_type(ProgType.SCHED_CLS)


@functools.cache
def xdp_link() -> Feature:
    """Can BPF_LINK_CREATE attach an XDP program to an interface (BPF_XDP, Linux 5.9+)?

    Tried on the loopback device of a private network namespace, in generic
    (skb) mode, so no interface of the machine is touched.
    """
    return _links_to_private_lo(ProgType.XDP, AttachType.XDP, XdpAction.PASS, flags=XDP_FLAGS_SKB_MODE)


@functools.cache
def tcx_link() -> Feature:
    """Can BPF_LINK_CREATE attach a sched_cls program as tcx (BPF_TCX_INGRESS, Linux 6.6+)?

    Tried like :func:`xdp_link`, on the ``lo`` of a private network namespace.
    """
    return _links_to_private_lo(ProgType.SCHED_CLS, AttachType.TCX_INGRESS, TcAction.UNSPEC)


def _links_to_private_lo(prog_type: int, attach_type: int, verdict: int, flags: int = 0) -> Feature:
    """Does a ``prog_type`` program returning ``verdict`` link (``attach_type``) to a private namespace's lo?"""
    from .netns import run_in_private_netns  # only network probes need it: not on the tracer's path

    def attach() -> None:
        with prog_load(_returning(verdict).encode(), prog_type, name="openat_feature") as prog:
            with link_create(prog, LOOPBACK_IFINDEX, attach_type, flags=flags):
                pass

    try:
        run_in_private_netns(attach)
    except BpfError as error:
        return _failed(error)
    except OSError as error:  # unshare: no private namespace to try in
        return Feature(False, f"cannot make a private network namespace to probe in: {error}")
    return Feature(True, f"BPF_LINK_CREATE with BPF_{enum_name(AttachType, attach_type).upper()} works (tried on a private lo)")


@functools.cache
def task_btf_helper() -> Feature:
    """Can tracing programs call bpf_get_current_task_btf (Linux 5.11+)?"""
    p = Program()
    p.call("get_current_task_btf")
    p.mov(R0, 0)
    p.exit()
    return _loads(p, ProgType.RAW_TRACEPOINT)


@functools.cache
def task_pt_regs_helper() -> Feature:
    """Can tracepoint programs call bpf_task_pt_regs on the current task (Linux 5.15+)?

    With it, a sys_exit_* tracepoint program reads the syscall's arguments
    from the user registers itself, and needs no entry program.
    """
    p = Program()
    p.call("get_current_task_btf")
    p.mov(R1, R0)
    p.call("task_pt_regs")
    p.mov(R0, 0)
    p.exit()
    return _loads(p, ProgType.TRACEPOINT)


@functools.cache
def kprobe_pmu() -> Feature:
    """Is the perf kprobe PMU there (CONFIG_KPROBES, Linux 4.17+)?"""
    pmu_type = kprobe_pmu_type()
    if pmu_type is None:
        return Feature(False, f"no kprobe PMU: {KPROBE_PMU_DIR}/type missing (kernel without CONFIG_KPROBES?)")
    return Feature(True, f"kprobe PMU type {pmu_type}")


def tracefs() -> Feature:
    """Is tracefs mounted? (Not mounting it: probes have no side effects.) Not cached: the tracer may mount it."""
    path = find_tracefs()
    if path is None:
        return Feature(False, "tracefs is not mounted (the tracer mounts it at /sys/kernel/tracing when needed)")
    return Feature(True, f"tracefs at {path}")


def kprobe_events() -> Feature:
    """Does tracefs offer kprobe_events (CONFIG_KPROBE_EVENTS)?"""
    path = find_tracefs()
    if path is None:
        return Feature(False, "tracefs is not mounted, kprobe_events unknown")
    if not os.path.exists(os.path.join(path, "kprobe_events")):
        return Feature(False, f"{path}/kprobe_events missing (kernel without CONFIG_KPROBE_EVENTS)")
    return Feature(True, f"{path}/kprobe_events present")


def kprobes() -> Feature:
    """Can kprobes be made at all: through the PMU, else through tracefs kprobe_events?"""
    pmu = kprobe_pmu()
    if pmu:
        return pmu
    events = kprobe_events()
    if events:
        return Feature(True, f"tracefs kprobe_events (no kprobe PMU): {events.reason}")
    return Feature(False, "no kprobe PMU and no tracefs kprobe_events (kernel without CONFIG_KPROBES?)")


def syscall_tracepoints() -> Feature:
    """Does tracefs have the syscall tracepoints (CONFIG_FTRACE_SYSCALLS)?"""
    path = find_tracefs()
    if path is None:
        return Feature(False, "tracefs is not mounted, syscall tracepoints unknown")
    missing = [name for name in ("sys_enter_openat", "sys_exit_openat") if not tracepoint_exists("syscalls", name, path)]
    if missing:
        return Feature(False, f"missing syscalls/{', syscalls/'.join(missing)} (kernel without CONFIG_FTRACE_SYSCALLS)")
    return Feature(True, "syscalls/sys_enter_openat and friends")


@functools.cache
def run_time_stats() -> Feature:
    """Can BPF run-time statistics be enabled (BPF_ENABLE_STATS, Linux 5.8+)?"""
    try:
        enable_stats().close()
    except BpfError as error:
        return _failed(error)
    return Feature(True, "run-time statistics can be enabled")


def lockdown() -> Feature:
    """Is kernel lockdown off? (Read only where securityfs is already mounted.)"""
    mode = lockdown_mode()
    if mode:
        return Feature(False, f"kernel lockdown is on ({mode})")
    if os.path.exists(LOCKDOWN_FILE):
        return Feature(True, "kernel lockdown is off")
    return Feature(True, "kernel lockdown state unknown (securityfs not mounted)")


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


@functools.cache
def highest_isa() -> Tuple[Optional[str], str]:
    """The highest ISA level whose instructions the verifier accepts, and why the next was refused."""
    best: Optional[str] = None
    for level in ISA_LEVELS:
        verdict = _loads(_isa_program(level), ProgType.SOCKET_FILTER)
        if not verdict:
            return best, f"{level} refused: {verdict.reason}"
        best = level
    return best, ""


def report() -> Dict[str, Feature]:
    """Every probe, by name, for a doctor-style listing."""
    return {
        "btf": btf(),
        "ringbuf": ringbuf(),
        "perf_event_array": perf_event_array(),
        "kprobe_pmu": kprobe_pmu(),
        "tracefs": tracefs(),
        "kprobe_events": kprobe_events(),
        "fentry": fentry(),
        "tp_btf": tp_btf(),
        "raw_tp": raw_tracepoint(),
        "tracepoint": program_type(ProgType.TRACEPOINT),
        "task_btf_helper": task_btf_helper(),
        "run_time_stats": run_time_stats(),
        "lockdown": lockdown(),
        "xdp_program": xdp_program(),
        "xdp_link": xdp_link(),
        "sched_cls_program": sched_cls_program(),
        "tcx_link": tcx_link(),
    }


# --- BTF kinds (what openat.btf.writer.sanitize must rewrite for this kernel) ---------------


def _btf_blob(strings: bytes, *records: Tuple[int, ...]) -> bytes:
    """A BTF blob of ``records`` (each its u32 words) and ``strings`` (starting with the empty name)."""
    import struct

    types = b"".join(struct.pack(f"={len(r)}I", *r) for r in records)
    header = struct.pack("=HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def _info(kind: int, vlen: int = 0, kind_flag: int = 0) -> int:
    return kind_flag << 31 | kind << 24 | vlen


_INT32 = (1, _info(BtfKind.INT), 4, 1 << 24 | 32)  # "int" (name at offset 1): signed, 32 bits
# One probe per feature, after libbpf's: the smallest BTF that uses it.
_BTF_PROBES: Dict[str, bytes] = {
    "func": _btf_blob(b"\0int\0x\0f\0", _INT32, (0, _info(BtfKind.FUNC_PROTO, 1), 1, 5, 1), (7, _info(BtfKind.FUNC), 2)),
    "func_global": _btf_blob(b"\0int\0x\0f\0", _INT32, (0, _info(BtfKind.FUNC_PROTO, 1), 1, 5, 1), (7, _info(BtfKind.FUNC, 1), 2)),
    "datasec": _btf_blob(b"\0x\0.data\0", (0,) + _INT32[1:], (1, _info(BtfKind.VAR), 1, 1), (3, _info(BtfKind.DATASEC, 1), 4, 2, 0, 4)),
    "qmark_datasec": _btf_blob(b"\0x\0?.data\0", (0,) + _INT32[1:], (1, _info(BtfKind.VAR), 1, 1), (3, _info(BtfKind.DATASEC, 1), 4, 2, 0, 4)),
    "float": _btf_blob(b"\0float\0", (1, _info(BtfKind.FLOAT), 4)),
    "decl_tag": _btf_blob(b"\0x\0tag\0", (0,) + _INT32[1:], (1, _info(BtfKind.VAR), 1, 1), (3, _info(BtfKind.DECL_TAG), 2, 0xFFFFFFFF)),
    "type_tag": _btf_blob(b"\0tag\0", (0,) + _INT32[1:], (1, _info(BtfKind.TYPE_TAG), 1), (0, _info(BtfKind.PTR), 2)),
    "enum64": _btf_blob(b"\0e\0v\0", (1, _info(BtfKind.ENUM64, 1), 8, 3, 0, 1)),
}


@functools.cache
def btf_kind(feature: str) -> Feature:
    """Does BPF_BTF_LOAD accept ``feature`` (a field of openat.btf.writer.BtfFeatures: "func", "datasec", "enum64", ...)?"""
    from .btf import btf_load

    try:
        blob = _BTF_PROBES[feature]
    except KeyError:
        raise ValueError(f"unknown BTF feature {feature!r}; known: {', '.join(_BTF_PROBES)}") from None
    try:
        btf_load(blob).close()
    except BpfError as error:
        return _failed(error)
    return Feature(True, f"BTF with {feature} loaded")


def btf_features():
    """What BTF this kernel takes, as openat.btf.writer.BtfFeatures (all False where BTF itself is refused)."""
    from ..btf.writer import BtfFeatures

    return BtfFeatures(*(bool(btf_kind(name)) for name in BtfFeatures._fields))


@functools.cache
def bpf_cookie() -> Feature:
    """Can kprobe programs call bpf_get_attach_cookie (Linux 5.15+)? (LINUX_HAS_BPF_COOKIE)"""
    p = Program()
    p.call("get_attach_cookie")
    p.mov(R0, 0)
    p.exit()
    return _loads(p, ProgType.KPROBE)
