"""kprobes and kretprobes: through the perf kprobe PMU, or tracefs ``kprobe_events``.

The PMU (Linux 4.17+) leaves nothing in tracefs; ``kprobe_events`` works on
older kernels and where the PMU is refused, and the Link removes its probe
again on close. ``interface="auto"`` tries the PMU, then tracefs, and says
so through ``report``.
"""

from __future__ import annotations

import errno
from typing import Callable, Optional

from ..syscalls.errors import NotSupportedError
from ..syscalls.fd import FdLike
from ..syscalls.perf import PerfEventFd, perf_event_open_kprobe, perf_event_open_kprobe_legacy
from ..syscalls.tracefs import kprobe_events_available
from ..uapi import ProgType
from .link import Link, attach_perf_event

__all__ = ["INTERFACES", "KPROBE_PROG_TYPE", "attach"]

KPROBE_PROG_TYPE = ProgType.KPROBE
INTERFACES = ("auto", "pmu", "tracefs")

Report = Callable[[str], None]


def attach(
    program: FdLike,
    symbol: str,
    *,
    retprobe: bool = False,
    offset: int = 0,
    interface: str = "auto",
    report: Optional[Report] = None,
) -> Link:
    """Run ``program`` (BPF_PROG_TYPE_KPROBE) at ``symbol+offset``, or at its return with ``retprobe``.

    ``symbol`` as /proc/kallsyms spells it (``do_sys_openat2.isra.0``: see
    ``openat.syscalls.kallsyms.find_symbol``). NotSupportedError when the
    kernel has no kprobes or does not know the symbol.
    """
    if interface not in INTERFACES:
        raise ValueError(f"unknown kprobe interface {interface!r}; choose one of {', '.join(INTERFACES)}")
    event = _open_event(symbol, offset, retprobe, interface, report or (lambda message: None))
    return attach_perf_event(event, program)


def _open_event(symbol: str, offset: int, retprobe: bool, interface: str, report: Report) -> PerfEventFd:
    if interface == "tracefs":
        return perf_event_open_kprobe_legacy(symbol, offset, retprobe=retprobe)
    try:
        return perf_event_open_kprobe(symbol, offset, retprobe=retprobe)
    except NotSupportedError as pmu_error:
        if interface == "pmu":
            raise
        if not kprobe_events_available():
            raise NotSupportedError(pmu_error.errno or errno.ENOENT, "kprobe", f"{pmu_error}; no tracefs kprobe_events either") from None
        report(f"kprobe PMU unusable ({str(pmu_error).splitlines()[0]}); using tracefs kprobe_events")
        return perf_event_open_kprobe_legacy(symbol, offset, retprobe=retprobe)
