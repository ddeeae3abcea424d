"""Feature probes: what this kernel lets us do, each with a one-line reason.

Used by the tracer's attach fallback and by a ``doctor`` command. Probes
leave nothing behind: every object they create is closed before returning,
and tracefs is never mounted by a probe.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .bpf import create_map, load_program, raw_tracepoint_open
from .btf import BtfKind, vmlinux_btf
from .constants import AttachType, MapType, ProgType
from .errors import BpfError, lockdown_mode
from .kallsyms import open_syscall_function
from .perf import KPROBE_PMU_DIR, kprobe_pmu_type
from .tracefs import find_tracefs

__all__ = [
    "Probe",
    "feature_report",
    "probe_btf",
    "probe_fentry",
    "probe_kprobe_events",
    "probe_kprobe_pmu",
    "probe_program",
    "probe_ringbuf",
    "probe_tp_btf",
    "probe_tracefs",
]

# r0 = 0; exit - valid for every tracing program type.
_RETURN_ZERO = bytes.fromhex("b700000000000000" "9500000000000000")


@dataclass(frozen=True)
class Probe:
    """Outcome of a probe; truthy when the feature works."""

    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok


def _failed(exc: BaseException) -> Probe:
    return Probe(False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def probe_program(
    prog_type: int,
    expected_attach_type: int = 0,
    attach_btf_id: int = 0,
    *,
    attach: bool = False,
    tracepoint: str | None = None,
) -> Probe:
    """Can a trivial program of this type/attach type be loaded (and, with ``attach``, attached)?

    Attaching works for raw_tp (pass ``tracepoint``) and BTF-targeted
    tracing programs; the link is closed at once.
    """
    try:
        with load_program(
            _RETURN_ZERO,
            prog_type,
            name="openat_probe",
            expected_attach_type=expected_attach_type,
            attach_btf_id=attach_btf_id,
        ) as prog:
            if attach:
                with raw_tracepoint_open(prog, tracepoint):
                    pass
    except BpfError as exc:
        return _failed(exc)
    what = ProgType(prog_type).name.lower() if prog_type in ProgType._value2member_map_ else str(prog_type)
    return Probe(True, f"{what} program {'attached' if attach else 'loaded'}")


def probe_btf() -> Probe:
    """Does the kernel expose its BTF?"""
    try:
        btf = vmlinux_btf()
        return Probe(True, f"/sys/kernel/btf/vmlinux has {len(btf)} types")
    except (BpfError, KeyError) as exc:
        return _failed(exc)


def probe_fentry(function: str | None = None, *, attach: bool = False) -> Probe:
    """Can an fentry program on ``function`` (default: the open syscall's) be loaded?"""
    try:
        if function is None:
            symbol = open_syscall_function()
            if symbol is None:
                return Probe(False, "neither do_sys_openat2 nor do_sys_open is in /proc/kallsyms")
            function = symbol.name.split(".")[0]  # BTF names the function without the clone suffix
        func_id = vmlinux_btf().func_id(function)
    except (BpfError, KeyError) as exc:
        return _failed(exc)
    return probe_program(ProgType.TRACING, AttachType.TRACE_FENTRY, func_id, attach=attach)


def probe_tp_btf(tracepoint: str = "sys_enter", *, attach: bool = False) -> Probe:
    """Can a tp_btf program on raw tracepoint ``tracepoint`` be loaded?"""
    try:
        type_id = vmlinux_btf().find(f"btf_trace_{tracepoint}", BtfKind.TYPEDEF)
    except (BpfError, KeyError) as exc:
        return _failed(exc)
    return probe_program(ProgType.TRACING, AttachType.TRACE_RAW_TP, type_id, attach=attach)


def probe_ringbuf() -> Probe:
    """Can a BPF_MAP_TYPE_RINGBUF map be created (kernel >= 5.8)?"""
    try:
        with create_map(MapType.RINGBUF, 0, 0, os.sysconf("SC_PAGE_SIZE"), name="openat_probe"):
            pass
    except BpfError as exc:
        return _failed(exc)
    return Probe(True, "ring buffer map created")


def probe_kprobe_pmu() -> Probe:
    """Is the perf kprobe PMU there (CONFIG_KPROBES, kernel >= 4.17)?"""
    pmu_type = kprobe_pmu_type()
    if pmu_type is None:
        return Probe(False, f"no kprobe PMU: {KPROBE_PMU_DIR}/type missing (kernel without CONFIG_KPROBES?)")
    return Probe(True, f"kprobe PMU type {pmu_type}")


def probe_tracefs() -> Probe:
    """Is tracefs mounted? (Not mounting it: probes have no side effects.)"""
    path = find_tracefs()
    if path is None:
        return Probe(False, "tracefs is not mounted (the tracer mounts it at /sys/kernel/tracing when needed)")
    return Probe(True, f"tracefs at {path}")


def probe_kprobe_events() -> Probe:
    """Does tracefs offer kprobe_events (CONFIG_KPROBE_EVENTS)?"""
    path = find_tracefs()
    if path is None:
        return Probe(False, "tracefs is not mounted, kprobe_events unknown")
    if not os.path.exists(os.path.join(path, "kprobe_events")):
        return Probe(False, f"{path}/kprobe_events missing (kernel without CONFIG_KPROBE_EVENTS)")
    return Probe(True, f"{path}/kprobe_events present")


def feature_report() -> dict[str, Probe]:
    """Every probe, by name, for a doctor-style listing."""
    report = {
        "btf": probe_btf(),
        "ringbuf": probe_ringbuf(),
        "kprobe_pmu": probe_kprobe_pmu(),
        "tracefs": probe_tracefs(),
        "kprobe_events": probe_kprobe_events(),
        "fentry": probe_fentry(),
        "tp_btf": probe_tp_btf(),
        "raw_tp": probe_program(ProgType.RAW_TRACEPOINT, attach=True, tracepoint="sys_enter"),
        "tracepoint": probe_program(ProgType.TRACEPOINT),
    }
    mode = lockdown_mode()
    if mode:
        report["lockdown"] = Probe(False, f"kernel lockdown is on ({mode})")
    elif os.path.exists("/sys/kernel/security/lockdown"):
        report["lockdown"] = Probe(True, "kernel lockdown is off")
    else:
        report["lockdown"] = Probe(True, "kernel lockdown state unknown (securityfs not mounted)")
    return report
