"""perf_event_open(2) for tracepoints and kprobes, and the BPF ioctls.

Three ways to get a perf event a BPF program can be attached to:

- ``perf_event_open_tracepoint``: a tracefs tracepoint (id from tracefs);
- ``perf_event_open_kprobe``: the kprobe PMU (kernel >= 4.17), nothing left
  behind in tracefs;
- ``perf_event_open_kprobe_legacy``: a probe written to tracefs
  ``kprobe_events`` under a group named after our pid, removed on close.

Attach with ``PerfEventFd.attach_bpf(prog)`` (PERF_EVENT_IOC_SET_BPF +
ENABLE) or with ``link_create(prog, perf_fd, AttachType.PERF_EVENT)``.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import re

from ..uapi import (
    PERF_EVENT_IOC_DISABLE,
    PERF_EVENT_IOC_ENABLE,
    PERF_EVENT_IOC_SET_BPF,
    PERF_FLAG_FD_CLOEXEC,
    PERF_TYPE_TRACEPOINT,
)
from . import libc
from .errors import NotSupportedError, error_from_errno
from .fd import FdLike, OwnedFd, fd_of
from .tracefs import KprobeEvent, tracepoint_id

__all__ = [
    "KPROBE_PMU_DIR",
    "PerfEventAttr",
    "PerfEventFd",
    "kprobe_pmu_retprobe_bit",
    "kprobe_pmu_type",
    "perf_event_open",
    "perf_event_open_kprobe",
    "perf_event_open_kprobe_legacy",
    "perf_event_open_tracepoint",
    "perf_ioc_disable",
    "perf_ioc_enable",
    "perf_ioc_set_bpf",
]

_u32 = ctypes.c_uint32
_u64 = ctypes.c_uint64

KPROBE_PMU_DIR = "/sys/bus/event_source/devices/kprobe"


class PerfEventAttr(ctypes.Structure):
    """struct perf_event_attr (128 bytes, PERF_ATTR_SIZE_VER8).

    The bitfield word after ``read_format`` is one u64 ``flags`` here; BPF
    attachment needs none of those bits.
    """

    _fields_ = [
        ("type", _u32),
        ("size", _u32),
        ("config", _u64),
        ("sample_period", _u64),
        ("sample_type", _u64),
        ("read_format", _u64),
        ("flags", _u64),
        ("wakeup_events", _u32),
        ("bp_type", _u32),
        ("config1", _u64),  # kprobe_func for the kprobe PMU
        ("config2", _u64),  # probe_offset
        ("branch_sample_type", _u64),
        ("sample_regs_user", _u64),
        ("sample_stack_user", _u32),
        ("clockid", ctypes.c_int32),
        ("sample_regs_intr", _u64),
        ("aux_watermark", _u32),
        ("sample_max_stack", ctypes.c_uint16),
        ("_reserved_2", ctypes.c_uint16),
        ("aux_sample_size", _u32),
        ("_reserved_3", _u32),
        ("sig_data", _u64),
    ]


# --- ioctls --------------------------------------------------------------------


def _ioctl(fd: int, request: int, arg: int, what: str) -> None:
    _, err = libc.ioctl(fd, request, arg)
    if err:
        raise error_from_errno(err, what.split()[0], what, missing_feature_errnos=(_errno.EINVAL, _errno.ENOTTY))


def perf_ioc_set_bpf(perf_fd: FdLike, prog: FdLike) -> None:
    """PERF_EVENT_IOC_SET_BPF: run ``prog`` when the event fires."""
    _ioctl(fd_of(perf_fd), PERF_EVENT_IOC_SET_BPF, fd_of(prog), f"PERF_EVENT_IOC_SET_BPF prog fd {fd_of(prog)}")


def perf_ioc_enable(perf_fd: FdLike) -> None:
    """PERF_EVENT_IOC_ENABLE."""
    _ioctl(fd_of(perf_fd), PERF_EVENT_IOC_ENABLE, 0, "PERF_EVENT_IOC_ENABLE")


def perf_ioc_disable(perf_fd: FdLike) -> None:
    """PERF_EVENT_IOC_DISABLE."""
    _ioctl(fd_of(perf_fd), PERF_EVENT_IOC_DISABLE, 0, "PERF_EVENT_IOC_DISABLE")


# --- the event -------------------------------------------------------------------


class PerfEventFd(OwnedFd):
    """A perf event fd; closing it detaches any BPF program set on it.

    ``owned`` resources (a legacy tracefs kprobe) are released after the fd is
    closed, since the kernel refuses to remove a probe that is still open.
    """

    __slots__ = ("description", "_owned")

    def __init__(self, fd: int, description: str, owned: KprobeEvent | None = None):
        super().__init__(fd)
        self.description = description
        self._owned = owned

    def set_bpf(self, prog: FdLike) -> None:
        perf_ioc_set_bpf(self, prog)

    def enable(self) -> None:
        perf_ioc_enable(self)

    def disable(self) -> None:
        perf_ioc_disable(self)

    def attach_bpf(self, prog: FdLike) -> None:
        """SET_BPF then ENABLE: the program runs from now on until close()."""
        self.set_bpf(prog)
        self.enable()

    def close(self) -> None:
        try:
            super().close()
        finally:
            owned, self._owned = self._owned, None
            if owned is not None:
                owned.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<PerfEventFd {self.description} {state}>"


def perf_event_open(
    attr: PerfEventAttr,
    pid: int = -1,
    cpu: int = 0,
    group_fd: int = -1,
    flags: int = PERF_FLAG_FD_CLOEXEC,
    *,
    description: str = "perf event",
    missing_feature: tuple[int, ...] = (),
) -> PerfEventFd:
    """Raw perf_event_open(2); ``attr.size`` is filled in when left 0.

    pid=-1/cpu=0 is what BPF attachment wants: the program runs for every
    task on every CPU, the cpu only selects where the (unused) counter lives.
    """
    if not attr.size:
        attr.size = ctypes.sizeof(attr)
    fd, err = libc.syscall(libc.NR_PERF_EVENT_OPEN, ctypes.byref(attr), pid, cpu, group_fd, flags)
    if err:
        raise error_from_errno(err, "perf_event_open", description, missing_feature_errnos=missing_feature)
    return PerfEventFd(fd, description)


def perf_event_open_tracepoint(
    category: str, name: str | None = None, *, tp_id: int | None = None, cpu: int = 0, tracefs: str | None = None
) -> PerfEventFd:
    """A perf event on tracepoint ``category/name`` (or on a known ``tp_id``).

    Mounts tracefs when needed to read the id; a missing tracepoint raises
    NotSupportedError.
    """
    if tp_id is None:
        if name is None:
            raise TypeError("perf_event_open_tracepoint needs a name or tp_id")
        tp_id = tracepoint_id(category, name, tracefs)
    attr = PerfEventAttr(type=PERF_TYPE_TRACEPOINT, config=tp_id, sample_period=1, wakeup_events=1)
    label = f"tracepoint {category}/{name}" if name else f"tracepoint id {tp_id}"
    return perf_event_open(attr, cpu=cpu, description=label, missing_feature=(_errno.ENOENT, _errno.EINVAL))


# --- kprobe PMU ---------------------------------------------------------------------


def kprobe_pmu_type(pmu_dir: str = KPROBE_PMU_DIR) -> int | None:
    """The dynamic PMU type of the kprobe PMU, None when the kernel has none."""
    try:
        with open(os.path.join(pmu_dir, "type")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def kprobe_pmu_retprobe_bit(pmu_dir: str = KPROBE_PMU_DIR) -> int | None:
    """Bit of ``config`` selecting a kretprobe (format file says e.g. ``config:0``)."""
    try:
        with open(os.path.join(pmu_dir, "format", "retprobe")) as f:
            text = f.read().strip()
    except OSError:
        return None
    match = re.fullmatch(r"config:(\d+)", text)
    return int(match.group(1)) if match else None


def perf_event_open_kprobe(symbol: str, offset: int = 0, *, retprobe: bool = False, pmu_dir: str = KPROBE_PMU_DIR) -> PerfEventFd:
    """A kprobe (or kretprobe) on ``symbol+offset`` through the kprobe PMU.

    Raises NotSupportedError when the kernel has no kprobe PMU (no
    CONFIG_KPROBES, or older than 4.17) or does not know the symbol.
    """
    kind = "kretprobe" if retprobe else "kprobe"
    pmu_type = kprobe_pmu_type(pmu_dir)
    if pmu_type is None:
        raise NotSupportedError(
            _errno.ENOENT, "perf_event_open", f"{kind} on {symbol}: no kprobe PMU ({pmu_dir}/type missing; kernel without CONFIG_KPROBES?)"
        )
    config = 0
    if retprobe:
        bit = kprobe_pmu_retprobe_bit(pmu_dir)
        if bit is None:
            raise NotSupportedError(_errno.ENOENT, "perf_event_open", f"kretprobe on {symbol}: kprobe PMU has no retprobe format bit")
        config = 1 << bit
    name_buf = libc.c_string(symbol)
    attr = PerfEventAttr(type=pmu_type, config=config, config1=ctypes.addressof(name_buf), config2=offset, sample_period=1, wakeup_events=1)
    where = f"{symbol}+{offset}" if offset else symbol
    event = perf_event_open(
        attr, description=f"{kind} {where} (kprobe PMU)", missing_feature=(_errno.ENOENT, _errno.EINVAL, _errno.EADDRNOTAVAIL)
    )
    del name_buf  # the kernel copied the name during the call
    return event


# --- legacy tracefs kprobe_events ------------------------------------------------------


def perf_event_open_kprobe_legacy(
    symbol: str, offset: int = 0, *, retprobe: bool = False, tracefs: str | None = None
) -> PerfEventFd:
    """A kprobe through tracefs ``kprobe_events``; closing the event removes the probe."""
    probe = KprobeEvent(symbol, offset, retprobe=retprobe, tracefs=tracefs)
    try:
        event = perf_event_open_tracepoint(probe.group, probe.event, tp_id=probe.id)
    except BaseException:
        probe.close()
        raise
    event._owned = probe
    event.description = f"{'kretprobe' if retprobe else 'kprobe'} {symbol} (tracefs {probe.group}/{probe.event})"
    return event
