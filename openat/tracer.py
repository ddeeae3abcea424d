"""Load the probe, attach it at the best point this kernel offers, read events.

``Tracer`` owns every kernel object it makes (maps, programs, links, perf
events, tracefs kprobes) and releases all of them in ``close()``, which the
CLI calls on exit, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import errno
import os
import platform
import re
import struct
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

from .probe import (
    ATTACH_MODES,
    CGROUP_MAP,
    DEFAULT_RING_SIZE,
    EVENTS_MAP,
    INFLIGHT_ENTRIES,
    INFLIGHT_MAP,
    LOST_MAP,
    SCRATCH_MAP,
    KernelLayout,
    ProbeOptions,
    ProbeProgram,
    TaskLayout,
    build_probe,
    scratch_value_size,
)
from ._layout import INFLIGHT_SIZE
from .records import OpenEvent, decode_event
from .syscalls import (
    AttachType,
    BpfError,
    MapType,
    NotSupportedError,
    PermissionDeniedError,
    ProgType,
    VerifierError,
    load_program,
    map_create,
    raw_tracepoint_open,
)
from .syscalls.btf import Btf, BtfError, BtfKind, return_value_offset, syscall_arg_offsets, vmlinux_btf
from .syscalls.perf import (
    kprobe_events_available,
    kprobe_pmu_type,
    perf_event_open_kprobe,
    perf_event_open_kprobe_legacy,
    perf_event_open_tracepoint,
)
from .syscalls.ringbuf import RingBuffer
from .syscalls.tracefs import ensure_tracefs, find_tracefs

Report = Callable[[str], None]

KPROBE_INTERFACES = ("auto", "pmu", "tracefs")

# The function every open goes through since Linux 5.6 (do_sys_open before).
OPEN_FUNCTIONS = ("do_sys_openat2", "do_sys_open")


class TracerError(Exception):
    """The tracer cannot run; the message says why, in one line."""


class Attempt(NamedTuple):
    """One attach point tried, and what the kernel said."""

    mode: str
    error: Optional[str] = None  # None: it worked


# ------------------------------------------------------------ kernel discovery

_FORMAT_FIELD = re.compile(r"field:[^;]*?(\w+)(?:\[\d*\])?;\s*offset:(\d+);")


def parse_tracepoint_format(text: str) -> Dict[str, int]:
    """Field name → offset from a tracefs ``format`` file."""
    return {name: int(offset) for name, offset in _FORMAT_FIELD.findall(text)}


def read_tracepoint_fields(names: Sequence[str], tracefs: Optional[str]) -> Dict[str, Dict[str, int]]:
    """Fields of each ``syscalls/<name>`` tracepoint that exists."""
    fields: Dict[str, Dict[str, int]] = {}
    if tracefs is None:
        return fields
    for name in names:
        try:
            with open(os.path.join(tracefs, "events", "syscalls", name, "format")) as f:
                fields[name] = parse_tracepoint_format(f.read())
        except OSError:
            continue
    return fields


TRACEPOINT_EVENTS = tuple(
    f"sys_{side}_{name}" for name in ("open", "openat", "openat2") for side in ("enter", "exit")
)


# The register holding the syscall number at sys_exit.
_SYSCALL_NR_REGISTER = {"x86_64": "orig_ax", "aarch64": "syscallno"}
_SYSCALL_NR_FALLBACK = {"x86_64": 120, "aarch64": 280}
# arm64 returns the result in x0; the first argument survives in orig_x0.
_ORIG_X0_FALLBACK = 272


def discover_layout(tracefs: Optional[str] = None, btf: Optional[Btf] = None, machine: Optional[str] = None) -> KernelLayout:
    """Register offsets from BTF when given, else from the built-in tables.

    ``machine`` other than this one (for ``--dump`` of another machine's
    probe, and for tests) always uses the tables.
    """
    machine = machine or platform.machine()
    if machine not in _SYSCALL_NR_REGISTER:
        raise TracerError(f"unsupported machine {machine!r}: openat knows x86_64 and aarch64")
    if machine != platform.machine():
        btf = None
    use_btf = btf is not None
    try:
        args = syscall_arg_offsets(3, arch=machine, btf=btf, use_btf=use_btf)
        ret = return_value_offset(arch=machine, btf=btf, use_btf=use_btf)
        if use_btf:
            nr = btf.member_offset("pt_regs", _SYSCALL_NR_REGISTER[machine])
            how_flags = btf.member_offset("open_how", "flags")
            first_at_exit = btf.member_offset("pt_regs", "orig_x0") if machine == "aarch64" else args[0]
            task = TaskLayout(
                pid=btf.member_offset("task_struct", "pid"),
                tgid=btf.member_offset("task_struct", "tgid"),
                comm=btf.member_offset("task_struct", "comm"),
                cred=btf.member_offset("task_struct", "cred"),
                uid=btf.member_offset("cred", "uid"),
                gid=btf.member_offset("cred", "gid"),
            )
        else:
            task = None
            nr, how_flags = _SYSCALL_NR_FALLBACK[machine], 0
            first_at_exit = _ORIG_X0_FALLBACK if machine == "aarch64" else args[0]
    except BtfError:
        if not use_btf:
            raise
        return discover_layout(tracefs, None, machine)  # odd BTF: the tables still hold
    return KernelLayout(
        machine=machine,
        arg_offsets=tuple(args),
        return_offset=ret,
        syscall_nr_offset=nr,
        open_how_flags_offset=how_flags,
        exit_arg_offsets=(first_at_exit, args[1], args[2]),
        tracepoint_fields=read_tracepoint_fields(TRACEPOINT_EVENTS, tracefs),
        task=task,
    )


def open_btf() -> Optional[Btf]:
    """The kernel's BTF, or None when the kernel does not expose it."""
    try:
        return vmlinux_btf()
    except (OSError, BtfError):
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
    ) -> None:
        """``kprobe_interface``: how kprobes are made: ``pmu`` (the perf
        kprobe PMU), ``tracefs`` (legacy kprobe_events, removed on close) or
        ``auto`` (the PMU, else tracefs)."""
        if kprobe_interface not in KPROBE_INTERFACES:
            raise TracerError(f"unknown kprobe interface {kprobe_interface!r}; choose one of {', '.join(KPROBE_INTERFACES)}")
        self.kprobe_interface = kprobe_interface
        if attach != "auto" and attach not in ATTACH_MODES:
            raise TracerError(f"unknown attach point {attach!r}; choose auto or one of {', '.join(ATTACH_MODES)}")
        self.attach = attach
        self.options = options
        self.ring_size = ring_size
        self.report: Report = report or (lambda message: None)
        self.cgroup_fd = cgroup_fd  # an open cgroup v2 directory, for Filters.cgroup
        self.mode: Optional[str] = None
        self.attempts: List[Attempt] = []
        self.programs: List[ProbeProgram] = []
        self._owned: List[object] = []  # closed in reverse order
        self._maps: Dict[str, object] = {}
        self._ring: Optional[RingBuffer] = None
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
        self._create_maps()
        tracefs = _tracefs_or_none()
        self._btf = open_btf()
        self.layout = discover_layout(tracefs, self._btf)
        modes = ATTACH_MODES if self.attach == "auto" else (self.attach,)
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
            self._btf = None  # only loading needs it
            self._ring = RingBuffer(self._maps[EVENTS_MAP], wakeups_only=True)
            targets = ", ".join(dict.fromkeys(program.target for program in self.programs))
            self.report(f"tracing opens via {mode} ({targets})")
            return mode
        raise TracerError("no attach point works on this kernel: " + "; ".join(f"{a.mode}: {a.error}" for a in self.attempts))

    def _release_from(self, mark: int) -> None:
        while len(self._owned) > mark:
            try:
                self._owned.pop().close()  # type: ignore[attr-defined]
            except (OSError, BpfError):
                pass
        self.programs = []

    def _create_maps(self) -> None:
        ring = map_create(MapType.RINGBUF, 0, 0, self.ring_size, name="openat_events")
        scratch = map_create(
            MapType.PERCPU_ARRAY, 4, scratch_value_size(self.options), 1, name="openat_scratch"
        )
        lost = map_create(MapType.ARRAY, 4, 8, 1, name="openat_lost")
        inflight = map_create(MapType.HASH, 8, INFLIGHT_SIZE, INFLIGHT_ENTRIES, name="openat_inflight")
        maps = [(EVENTS_MAP, ring), (SCRATCH_MAP, scratch), (LOST_MAP, lost), (INFLIGHT_MAP, inflight)]
        if self.cgroup_fd is not None:
            cgroups = map_create(MapType.CGROUP_ARRAY, 4, 4, 1, name="openat_cgroup")
            maps.append((CGROUP_MAP, cgroups))
        for name, map_fd in maps:
            self._maps[name] = self._own(map_fd)
        if self.cgroup_fd is not None:
            cgroups.update(0, self.cgroup_fd)

    def map_fds(self) -> Dict[str, int]:
        return {name: map_fd.fileno() for name, map_fd in self._maps.items()}  # type: ignore[attr-defined]

    def _attach(self, mode: str) -> None:
        # The target first: when the kernel lacks it, the mode is skipped
        # without building programs it cannot load (start-up time).
        if mode == "kprobe":
            self._require_kprobes()
            function = self._open_function()  # kallsyms: the name may carry a suffix
        elif mode == "fentry":
            function = self._open_function_in_btf()
        else:
            function = None
        programs = build_probe(mode, self.layout, self.options)
        if not programs:
            raise TracerError(f"{mode}: this kernel has none of the open syscall tracepoints")
        fds = self.map_fds()
        for probe in programs:
            if function is not None:
                probe = probe._replace(target=function)
            self._load_and_attach(probe, probe.program.encode(fds))
            self.programs.append(probe)

    def _load_and_attach(self, probe: ProbeProgram, code: bytes) -> None:
        load = dict(name=probe.name, slot_sources=probe.program.slot_sources())
        kind, target = probe.kind, probe.target
        if kind in ("kprobe", "kretprobe"):
            event = self._own(self._kprobe_event(target, retprobe=kind == "kretprobe"))
            prog = self._own(load_program(code, ProgType.KPROBE, **load))
            event.attach_bpf(prog)
        elif kind == "fexit":
            btf_id = self._btf_id(target, BtfKind.FUNC)
            prog = self._own(
                load_program(code, ProgType.TRACING, expected_attach_type=AttachType.TRACE_FEXIT, attach_btf_id=btf_id, **load)
            )
            self._own(raw_tracepoint_open(prog, None))
        elif kind == "tp_btf":
            btf_id = self._btf_id(f"btf_trace_{target}", BtfKind.TYPEDEF)
            prog = self._own(
                load_program(code, ProgType.TRACING, expected_attach_type=AttachType.TRACE_RAW_TP, attach_btf_id=btf_id, **load)
            )
            self._own(raw_tracepoint_open(prog, None))
        elif kind == "raw_tp":
            prog = self._own(load_program(code, ProgType.RAW_TRACEPOINT, **load))
            self._own(raw_tracepoint_open(prog, target))
        elif kind == "tracepoint":
            category, name = target.split("/")
            event = self._own(perf_event_open_tracepoint(category, name))
            prog = self._own(load_program(code, ProgType.TRACEPOINT, **load))
            event.attach_bpf(prog)
        else:
            raise TracerError(f"unknown program kind {kind!r}")

    def _open_function(self) -> str:
        """do_sys_openat2 (or do_sys_open), as kallsyms spells it here."""
        from .syscalls.kallsyms import find_symbol  # kprobe mode only: not imported at start-up

        for name in OPEN_FUNCTIONS:
            symbol = find_symbol(name)
            if symbol is not None:
                return symbol.name
        raise NotSupportedError(errno.ENOENT, "kallsyms", f"none of {', '.join(OPEN_FUNCTIONS)} in /proc/kallsyms")

    def _open_function_in_btf(self) -> str:
        """do_sys_openat2 (or do_sys_open), as BTF names it: fentry's target."""
        for name in OPEN_FUNCTIONS:
            try:
                self._btf_id(name, BtfKind.FUNC)
                return name
            except NotSupportedError as error:
                missing = error
        raise missing

    def _require_kprobes(self) -> None:
        """Fail fast, before reading kallsyms, when the kernel has no kprobes at all."""
        if kprobe_pmu_type() is None and not kprobe_events_available():
            raise NotSupportedError(
                errno.ENOENT,
                "kprobe",
                "no kprobe PMU and no tracefs kprobe_events (kernel without CONFIG_KPROBES?)",
            )

    def _kprobe_event(self, symbol: str, retprobe: bool):
        if self.kprobe_interface == "tracefs":
            return perf_event_open_kprobe_legacy(symbol, retprobe=retprobe)
        try:
            return perf_event_open_kprobe(symbol, retprobe=retprobe)
        except NotSupportedError as pmu_error:
            if self.kprobe_interface == "pmu":
                raise
            if not kprobe_events_available():
                raise NotSupportedError(
                    pmu_error.errno, "kprobe", f"{pmu_error}; no tracefs kprobe_events either"
                ) from None
            self.report(f"kprobe PMU unusable ({_one_line(pmu_error)}); using tracefs kprobe_events")
            return perf_event_open_kprobe_legacy(symbol, retprobe=retprobe)

    def _btf_id(self, name: str, kind: BtfKind) -> int:
        if self._btf is None:
            raise NotSupportedError(errno.ENOENT, "BTF", "the kernel exposes no BTF (/sys/kernel/btf/vmlinux)")
        try:
            return self._btf.find(name, kind)
        except BtfError:
            raise NotSupportedError(errno.ENOENT, "BTF", f"no BTF {kind.name.lower()} {name!r} in vmlinux") from None

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

    def _started_ring(self) -> RingBuffer:
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
            value = lost.lookup(0)  # type: ignore[attr-defined]
        except BpfError:
            return 0
        return struct.unpack("<Q", value)[0] if value else 0


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
    layout = discover_layout(find_tracefs(), open_btf())  # find, never mount: no root here
    modes = ATTACH_MODES if attach == "auto" else (attach,)
    out: List[str] = []
    for mode in modes:
        for probe in build_probe(mode, layout, options):
            out.append(f"; ---- {mode}: {probe.name}, {probe.kind} on {probe.target} "
                       f"({len(probe.program.instructions)} instructions)")
            out.append(probe.program.listing())
    return "\n".join(out) + "\n"
