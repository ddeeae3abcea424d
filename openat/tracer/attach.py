"""Load the probe, attach it at the best point this kernel offers, read events.

``Tracer`` owns every kernel object it makes (maps, programs, links, perf
events, tracefs kprobes) and releases all of them in ``close()``, which the
CLI calls on exit, Ctrl-C and SIGTERM. Attaching is :mod:`openat.link`'s
job; what is decided here is the order of attach points to try, and what a
kernel that refuses one is told.
"""

from __future__ import annotations

import errno
import os
import select
import struct
from typing import Callable, Dict, List, Optional

from ..btf import Btf
from ..fieldtuple import FieldTuple
from ..link import kprobe, raw_tracepoint, tracepoint, tracing
from ..syscalls import features
from ..syscalls.btf import vmlinux_btf
from ..syscalls.errors import BpfError, NotSupportedError, PermissionDeniedError, VerifierError
from ..syscalls.maps import MapFd, lift_memlock_limit, map_create, possible_cpus
from ..syscalls.programs import prog_load
from ..syscalls.perfbuf import PerfBuffer
from ..syscalls.ringbuf import RingBuffer
from ..syscalls.tracefs import ensure_tracefs, find_tracefs
from ..uapi import MapType
from ._layout import INFLIGHT_SIZE
from .kernel_layout import discover_layout
from .probe import (
    ATTACH_MODES,
    CGROUP_MAP,
    CGROUP_SLOTS,
    DEFAULT_RING_SIZE,
    EVENTS_MAP,
    FOLLOW_ENTRIES,
    FOLLOW_MAP,
    INFLIGHT_ENTRIES,
    INFLIGHT_MAP,
    LOST_MAP,
    SCRATCH_MAP,
    URING_ENTRIES,
    URING_MAP,
    ProbeOptions,
    ProbeProgram,
    auto_order,
    build_follow_probe,
    build_probe,
    build_uring_probe,
    scratch_value_size,
)
from .records import HEADER_SIZE, OpenEvent, decode_event, field_offset

__all__ = ["Attempt", "OPEN_FUNCTIONS", "TRANSPORTS", "Tracer", "TracerError", "dump_probe", "open_btf", "wanted_features"]

Report = Callable[[str], None]

# The function every open goes through since Linux 5.6 (do_sys_open before).
OPEN_FUNCTIONS = features.OPEN_FUNCTIONS

# How records reach the reader: the BPF ring buffer (5.8+), or a perf event
# array (every kernel with BPF; auto falls back to it where there is no ring).
TRANSPORTS = ("auto", "ringbuf", "perf")


class TracerError(Exception):
    """The tracer cannot run; the message says why, in one line."""


class Attempt(FieldTuple):
    """One attach point tried, and what the kernel said."""

    mode: str
    error: Optional[str] = None  # None: it worked


def open_btf(report: Optional[Report] = None) -> Optional[Btf]:
    """The kernel's BTF, or None when the kernel does not expose it or it is unreadable.

    Unreadable (corrupt) BTF is said once to ``report``: the tracer then uses what needs no BTF.
    """
    available = features.btf()
    if available:
        return vmlinux_btf()
    if report is not None and available.reason.startswith(features.BTF_UNREADABLE):
        report(f"{available.reason}; using the attach points and offsets that need no BTF")
    return None


# ------------------------------------------------------------ the tracer


class Tracer:
    """The openat probe, attached and readable.

    >>> with Tracer(report=print) as tracer:      # doctest: +SKIP
    ...     tracer.start()
    ...     tracer.poll(print, timeout_ms=100)
    """

    def __init__(
        self,
        attach: str = "auto",
        options: ProbeOptions = ProbeOptions(),
        ring_size: int = DEFAULT_RING_SIZE,
        report: Optional[Report] = None,
        cgroup_fd: Optional[int] = None,
        kprobe_interface: str = "auto",
        *,
        container_fd: Optional[int] = None,
        io_uring: bool = True,
        transport: str = "auto",
    ) -> None:
        """``kprobe_interface``: how kprobes are made: ``pmu`` (the perf
        kprobe PMU), ``tracefs`` (legacy kprobe_events, removed on close) or
        ``auto`` (the PMU, else tracefs). ``cgroup_fd`` and ``container_fd``:
        open cgroup v2 directories for ``Filters.cgroup`` and
        ``Filters.container``. ``io_uring``: also report opens made by
        io_uring requests (where the kernel lets us: see :attr:`missing`).
        ``transport``: one of TRANSPORTS; with ``perf`` each CPU has a ring
        of ``ring_size`` bytes."""
        if transport not in TRANSPORTS:
            raise TracerError(f"unknown transport {transport!r}; choose one of {', '.join(TRANSPORTS)}")
        self.transport = transport
        if kprobe_interface not in kprobe.INTERFACES:
            raise TracerError(f"unknown kprobe interface {kprobe_interface!r}; choose one of {', '.join(kprobe.INTERFACES)}")
        self.kprobe_interface = kprobe_interface
        if attach != "auto" and attach not in ATTACH_MODES:
            raise TracerError(f"unknown attach point {attach!r}; choose auto or one of {', '.join(ATTACH_MODES)}")
        self.attach = attach
        self.options = options
        self.ring_size = ring_size
        self.report: Report = report or (lambda message: None)
        self.cgroup_fds = {"cgroup": cgroup_fd, "container": container_fd}
        self.io_uring = io_uring
        self.mode: Optional[str] = None
        # What was asked for and this kernel cannot do (feature -> reason); each said once through report.
        self.missing: Dict[str, str] = {}
        self.attempts: List[Attempt] = []
        self.programs: List[ProbeProgram] = []
        self._owned: List[object] = []  # closed in reverse order
        self._maps: Dict[str, MapFd] = {}
        self._ring: "Optional[RingBuffer | _PerfReader]" = None
        self._btf: Optional[Btf] = None

    # -- lifetime

    def __enter__(self) -> "Tracer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Detach and release everything (idempotent)."""
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        while self._owned:
            resource = self._owned.pop()
            try:
                resource.close()  # type: ignore[attr-defined]
            except (OSError, BpfError):
                pass  # already gone; keep releasing the rest
        self._maps.clear()

    def _own(self, resource):
        self._owned.append(resource)
        return resource

    # -- start-up

    def start(self) -> str:
        """Create maps, then load and attach at the first point that works.

        Returns the attach mode in use. Reports one line per skipped point
        and one for the point chosen.
        """
        self._choose_transport()
        try:
            self._create_maps()
        except PermissionDeniedError:
            # Before 5.11 maps count against RLIMIT_MEMLOCK: lift it and retry once.
            self._release_from(0)
            self._maps.clear()
            if not lift_memlock_limit():
                raise
            self.report("lifted RLIMIT_MEMLOCK: this kernel charges BPF memory to it (before 5.11)")
            self._create_maps()
        # The reader before any probe: a perf array's slots must hold the
        # CPUs' events before the first output, or those records are lost.
        self._ring = self._open_reader()
        tracefs = _tracefs_or_none()
        self._btf = open_btf(self.report)
        try:
            self.layout = discover_layout(tracefs, self._btf, task_btf=bool(features.task_btf_helper()),
                                          wanted=wanted_features(self.options, self.io_uring))
        except ValueError as error:  # a machine openat has no tables for
            raise TracerError(str(error)) from None
        self._note_missing()
        task_helper = features.task_btf_helper()
        if self._btf is not None and not task_helper:  # before 5.11
            self.report(f"no bpf_get_current_task_btf, identity from helpers: {task_helper.reason}")
        modes = auto_order(self._tracepoint_exit_only()) if self.attach == "auto" else (self.attach,)
        for mode in modes:
            mark = len(self._owned)
            try:
                self._attach(mode)
            except (NotSupportedError, PermissionDeniedError, VerifierError, TracerError) as error:
                self._release_from(mark)
                reason = _one_line(error)
                self.attempts.append(Attempt(mode, reason))
                if isinstance(error, PermissionDeniedError) and not _is_root():
                    raise TracerError(reason) from None
                if self.attach != "auto":
                    raise TracerError(f"cannot attach via {mode}: {reason}") from None
                self.report(f"skipped {mode}: {reason}")
                continue
            except BaseException:
                self._release_from(mark)
                raise
            self.mode = mode
            self.attempts.append(Attempt(mode))
            extras = self._attach_extras()
            self._btf = None  # only loading needs it
            self.report(f"tracing opens via {mode} ({_targets(self.programs[: len(self.programs) - extras])})"
                        + (f", io_uring opens via tracepoint ({_targets(self.uring_programs)})" if self.uring_programs else ""))
            return mode
        raise TracerError("no attach point works on this kernel: " + "; ".join(f"{a.mode}: {a.error}" for a in self.attempts))

    def _tracepoint_exit_only(self) -> bool:
        """Can the tracepoint mode do without entry programs here (BTF task layout and bpf_task_pt_regs)?"""
        return self.layout.task is not None and bool(features.task_pt_regs_helper())

    # -- what goes beyond the open syscalls

    @property
    def uring_programs(self) -> List[ProbeProgram]:
        return [program for program in self.programs if program.target.startswith("io_uring/")]

    def _note_missing(self) -> None:
        """Say once what this kernel cannot do of what was asked, and what happens instead."""
        consequences = {
            "paths": "-F joins relative names in user space, from /proc, when each line is printed",
            "namespaces": "JSON has no mntns",
            "io_uring": "io_uring opens are not traced",
        }
        for feature, reason in self.layout.missing.items():
            if feature == "follow":
                raise TracerError(f"cannot follow the command's processes: {reason}")
            self.missing[feature] = reason
            self.report(f"{consequences[feature]}: {reason}")

    @property
    def kernel_paths(self) -> bool:
        """Whether the probe resolves -F's directories in the kernel (else user space must)."""
        return self.options.full_path and "paths" not in self.missing

    def _attach_extras(self) -> int:
        """-- CMD's fork tracking and io_uring's programs, whatever the mode; how many were attached."""
        before = len(self.programs)
        if self.options.filters.follow:
            self._attach_follow()
        if self.io_uring and "io_uring" not in self.missing:
            self._attach_uring()
        return len(self.programs) - before

    def _attach_follow(self) -> None:
        programs = build_follow_probe(self.layout)
        if not programs:
            raise TracerError("cannot follow the command's processes: no sched/sched_process_fork tracepoint")
        fds = self.map_fds()
        for probe in programs:
            self._load_and_attach(probe, probe.program.encode(fds))
            self.programs.append(probe)

    def _attach_uring(self) -> None:
        """Both io_uring programs or neither; a refusal is said once, and tracing goes on without them."""
        fds = self.map_fds()
        mark = len(self._owned)
        attached = []
        try:
            for probe in build_uring_probe(self.layout, self.options):
                self._load_and_attach(probe, probe.program.encode(fds))
                attached.append(probe)
        except (BpfError, OSError) as error:  # io_uring is a bonus: whatever refuses it, the rest goes on
            self._release_from(mark, keep_programs=True)
            self.missing["io_uring"] = _one_line(error)
            self.report(f"io_uring opens are not traced: {_one_line(error)}")
            return
        self.programs += attached

    def follow(self, pid: int) -> None:
        """Report the opens of process ``pid`` (and, from now on, of every process it forks): ``Filters.follow``."""
        self._maps[FOLLOW_MAP].update(struct.pack("<I", pid), b"\1")

    def _release_from(self, mark: int, *, keep_programs: bool = False) -> None:
        while len(self._owned) > mark:
            try:
                self._owned.pop().close()  # type: ignore[attr-defined]
            except (OSError, BpfError):
                pass
        if not keep_programs:
            self.programs = []

    def _choose_transport(self) -> None:
        """Decide ringbuf or perf (``self.transport`` becomes the one in use) and tell the probe."""
        if self.transport == "auto":
            ring = features.ringbuf()
            # Only where a perf array can be made: without privileges neither
            # can, and the ring's own error is the one to show.
            self.transport = "perf" if not ring and features.perf_event_array() else "ringbuf"
            if self.transport == "perf":
                self.report(f"no BPF ring buffer ({ring.reason}): sending records through a perf event array")
        self.options = self.options._replace(perf_output=self.transport == "perf")

    def _open_reader(self) -> "RingBuffer | _PerfReader":
        if self.transport == "perf":
            return _PerfReader(self._maps[EVENTS_MAP], self.ring_size, self.options)
        return RingBuffer(self._maps[EVENTS_MAP], wakeups_only=True)

    def _create_maps(self) -> None:
        if self.transport == "perf":
            ring = map_create(MapType.PERF_EVENT_ARRAY, 4, 4, possible_cpus(), name="openat_events")
        else:
            ring = map_create(MapType.RINGBUF, 0, 0, self.ring_size, name="openat_events")
        scratch = map_create(
            MapType.PERCPU_ARRAY, 4, scratch_value_size(self.options), 1, name="openat_scratch"
        )
        lost = map_create(MapType.ARRAY, 4, 8, 1, name="openat_lost")
        inflight = map_create(MapType.HASH, 8, INFLIGHT_SIZE, INFLIGHT_ENTRIES, name="openat_inflight")
        maps = [(EVENTS_MAP, ring), (SCRATCH_MAP, scratch), (LOST_MAP, lost), (INFLIGHT_MAP, inflight)]
        cgroup_fds = {name: fd for name, fd in self.cgroup_fds.items() if fd is not None}
        if cgroup_fds:
            maps.append((CGROUP_MAP, map_create(MapType.CGROUP_ARRAY, 4, 4, len(CGROUP_SLOTS), name="openat_cgroup")))
        if self.options.filters.follow:
            maps.append((FOLLOW_MAP, map_create(MapType.HASH, 4, 1, FOLLOW_ENTRIES, name="openat_follow")))
        if self.io_uring:
            # LRU: a request whose completion never came (a CQE skipped) ages out instead of filling the map
            record = scratch_value_size(self.options)
            maps.append((URING_MAP, map_create(MapType.LRU_HASH, 8, record, URING_ENTRIES, name="openat_uring")))
        for name, map_fd in maps:
            self._maps[name] = self._own(map_fd)
        for name, fd in cgroup_fds.items():
            self._maps[CGROUP_MAP].update(CGROUP_SLOTS[name], fd)

    def map_fds(self) -> Dict[str, int]:
        return {name: map_fd.fileno() for name, map_fd in self._maps.items()}

    def _attach(self, mode: str) -> None:
        # The target first: when the kernel lacks it, the mode is skipped
        # without building programs it cannot load (start-up time).
        if mode == "kprobe":
            self._require(features.kprobes(), "kprobe")
            function = self._open_function()  # kallsyms: the name may carry a suffix
        elif mode == "fentry":
            function = self._open_function_in_btf()
        else:
            function = None
        layout = self.layout
        if mode == "tracepoint" and self._tracepoint_exit_only():
            layout = layout._replace(task_pt_regs=True)  # exit programs only: half the runs, no hash
        programs = build_probe(mode, layout, self.options)
        if not programs:
            raise TracerError(f"{mode}: this kernel has none of the open syscall tracepoints")
        fds = self.map_fds()
        for probe in programs:
            if function is not None:
                probe = probe._replace(target=function)
            self._load_and_attach(probe, probe.program.encode(fds))
            self.programs.append(probe)

    def _load_and_attach(self, probe: ProbeProgram, code: bytes) -> None:
        options = dict(name=probe.name, slot_sources=probe.program.slot_sources())
        kind, target = probe.kind, probe.target
        if kind in ("kprobe", "kretprobe"):
            prog = self._own(prog_load(code, kprobe.KPROBE_PROG_TYPE, **options))
            self._own(kprobe.attach(prog, target, retprobe=kind == "kretprobe", interface=self.kprobe_interface, report=self.report))
        elif kind in ("fexit", "tp_btf"):
            prog = self._own(tracing.load(code, kind, target, btf=self._kernel_btf(), **options))
            self._own(tracing.attach(prog, f"{kind} {target}"))
        elif kind == "raw_tp":
            prog = self._own(prog_load(code, raw_tracepoint.RAW_TRACEPOINT_PROG_TYPE, **options))
            self._own(raw_tracepoint.attach(prog, target))
        elif kind == "tracepoint":
            category, name = target.split("/")
            prog = self._own(prog_load(code, tracepoint.TRACEPOINT_PROG_TYPE, **options))
            self._own(tracepoint.attach(prog, category, name))
        else:
            raise TracerError(f"unknown program kind {kind!r}")

    def _open_function(self) -> str:
        """do_sys_openat2 (or do_sys_open), as kallsyms spells it here."""
        from ..syscalls.kallsyms import find_symbol  # kprobe mode only: not imported at start-up

        for name in OPEN_FUNCTIONS:
            symbol = find_symbol(name)
            if symbol is not None:
                return symbol.name
        raise NotSupportedError(errno.ENOENT, "kallsyms", f"none of {', '.join(OPEN_FUNCTIONS)} in /proc/kallsyms")

    def _open_function_in_btf(self) -> str:
        """do_sys_openat2 (or do_sys_open), as BTF names it: fentry's target."""
        btf = self._kernel_btf()
        for name in OPEN_FUNCTIONS:
            try:
                tracing.target_btf_id("fexit", name, btf)
                return name
            except NotSupportedError as error:
                missing = error
        raise missing

    @staticmethod
    def _require(feature: features.Feature, what: str) -> None:
        """Fail fast, before any lookup or load, when the kernel lacks ``feature``."""
        if not feature:
            raise NotSupportedError(errno.ENOENT, what, feature.reason)

    def _kernel_btf(self) -> Btf:
        if self._btf is None:
            raise NotSupportedError(errno.ENOENT, "BTF", "the kernel exposes no readable BTF (/sys/kernel/btf/vmlinux)")
        return self._btf

    # -- running

    def poll_records(
        self, on_record: Callable[..., None], timeout_ms: int = 100, limit: Optional[int] = None, *,
        in_place: bool = False,
    ) -> int:
        """Sleep until the probe wakes the reader or ``timeout_ms`` passes,
        then hand every waiting record (at most ``limit``) to ``on_record``.

        The probe sends records without waking the reader, except when the
        unread data crosses a fill mark, so this drains in large batches; the
        timeout bounds how long a quiet event waits. ``on_record(view)`` gets
        each record as a memoryview, or with ``in_place``
        ``on_record(buffer, offset, length)`` (no view per record: the
        fastest path). Either is only valid during the call: copy what you keep.
        """
        self.wait(timeout_ms)
        return self._started_ring().consume(on_record, limit, in_place=in_place)

    def wait(self, timeout_ms: int = 100) -> bool:
        """Sleep until the probe wakes the reader (True) or ``timeout_ms`` passes (False).

        The probe wakes it each time the unread data crosses a multiple of
        ``ProbeOptions.wakeup_mark``; records sent in between wait for that
        or for the timeout.
        """
        return self._started_ring().wait(timeout_ms)

    def _started_ring(self) -> "RingBuffer | _PerfReader":
        if self._ring is None:
            raise TracerError("the tracer is not started")
        return self._ring

    def poll(self, on_event: Callable[[OpenEvent], None], timeout_ms: int = 100, limit: Optional[int] = None) -> int:
        """Like :meth:`poll_records`, with each record decoded to an :class:`OpenEvent`."""
        return self.poll_records(lambda record: on_event(decode_event(record)), timeout_ms, limit)

    def lost_events(self) -> int:
        """Records the probe could not send because the ring buffer was full."""
        lost = self._maps.get(LOST_MAP)
        if lost is None:
            return 0
        try:
            value = lost.lookup(0)
        except BpfError:
            return 0
        counted = struct.unpack("<Q", value)[0] if value else 0
        if isinstance(self._ring, _PerfReader):
            # The probe counts each output the kernel refused; a perf ring
            # also reports its drops itself (PERF_RECORD_LOST, once there is
            # room again): the same records, so the larger count, not the sum.
            return max(counted, self._ring.lost)
        return counted


_FILENAME_LEN = field_offset("filename_len")


class _PerfReader:
    """The perf event array seen as the tracer's ring: wait, consume, close.

    Perf pads each sample to 8 bytes; the record's own length (header plus
    the name bytes the probe sent) is read back from its ``filename_len``.
    """

    def __init__(self, events: MapFd, ring_size: int, options: ProbeOptions) -> None:
        pages = max(1, ring_size // os.sysconf("SC_PAGE_SIZE"))
        self._filename_size = options.filename_size
        self._buffer = PerfBuffer(events, pages=1 << (pages.bit_length() - 1), wakeup_bytes=options.wakeup_mark)

    @property
    def lost(self) -> int:
        return self._buffer.lost

    def wait(self, timeout_ms: int = -1) -> bool:
        timeout = None if timeout_ms is None or timeout_ms < 0 else timeout_ms / 1000.0
        return bool(select.select([self._buffer.fileno()], [], [], timeout)[0])

    def consume(self, callback, limit: Optional[int] = None, *, in_place: bool = False) -> int:
        """Every waiting record to ``callback`` (``limit`` is not needed: perf rings are drained whole)."""
        size = self._filename_size

        def on_sample(cpu: int, data: memoryview) -> None:
            name_len = struct.unpack_from("<i", data, _FILENAME_LEN)[0]
            length = HEADER_SIZE + min(max(name_len, 0), size)
            if in_place:
                callback(data, 0, length)
            else:
                callback(data[:length])

        return self._buffer.consume(on_sample)

    def close(self) -> None:
        self._buffer.close()


def _targets(programs: List[ProbeProgram]) -> str:
    return ", ".join(dict.fromkeys(program.target for program in programs))


def _one_line(error: BaseException) -> str:
    if isinstance(error, VerifierError):
        return error.summary
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _is_root() -> bool:
    return os.geteuid() == 0


def _tracefs_or_none() -> Optional[str]:
    try:
        return ensure_tracefs()
    except (OSError, BpfError):
        return None


# ------------------------------------------------------------ --dump


def dump_probe(attach: str, options: ProbeOptions) -> str:
    """Annotated disassembly of the probe for ``attach`` (all modes for auto).

    Needs no privileges: offsets come from BTF and tracefs when readable,
    else from the built-in tables.
    """
    layout = discover_layout(find_tracefs(), open_btf(), wanted=wanted_features(options))  # find, never mount: no root here
    if layout.task is not None and _is_root() and features.task_pt_regs_helper():
        layout = layout._replace(task_pt_regs=True)  # what start() would load here (finding out needs a load: root)
    modes = auto_order(layout.task_pt_regs) if attach == "auto" else (attach,)
    programs = [(mode, probe) for mode in modes for probe in build_probe(mode, layout, options)]
    programs += [("io_uring", probe) for probe in build_uring_probe(layout, options)]
    if options.filters.follow:
        programs += [("-- CMD", probe) for probe in build_follow_probe(layout)]
    out: List[str] = []
    for mode, probe in programs:
        out.append(f"; ---- {mode}: {probe.name}, {probe.kind} on {probe.target} "
                   f"({len(probe.program.instructions)} instructions)")
        out.append(probe.program.listing())
    return "\n".join(out) + "\n"


def wanted_features(options: ProbeOptions, io_uring: bool = True) -> List[str]:
    """The kernel layout's FEATURES that ``options`` need (each costs BTF lookups at start-up)."""
    needs = (("paths", options.full_path), ("namespaces", options.containers), ("io_uring", io_uring),
             ("follow", options.filters.follow))
    return [feature for feature, needed in needs if needed]

