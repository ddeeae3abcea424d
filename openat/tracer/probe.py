"""The probe: eBPF programs, written with ``openat.asm``, that report opens.

Each open becomes one record, sent at syscall **exit**, where the result is
known and the file name's page is resident (at entry it may not be yet, and
a probe cannot fault it in: ``probe_read_user_str`` would give EFAULT).

How each attach point gets the arguments to the exit side:

===========  ==========================================  ==========================
attach       programs                                    arguments at exit from
===========  ==========================================  ==========================
tp_btf       sys_exit only: ctx is (regs, ret)           the user pt_regs, BTF loads
raw_tp       sys_exit only: ctx is (regs, ret)           the user pt_regs, one read
fentry       fexit on do_sys_openat2 only                its (dfd, name, how, ret)
kprobe       kprobe + kretprobe on do_sys_openat2        a hash keyed by thread
tracepoint   sys_exit_* per syscall (5.15+, BTF)          bpf_task_pt_regs: the user pt_regs
             else sys_enter_* + sys_exit_* per syscall   a hash keyed by thread
===========  ==========================================  ==========================

At sys_exit the user registers still hold the arguments (the kernel restores
them for the return to user space), so the raw tracepoints need one program
and no hash. A kretprobe or a sys_exit_* tracepoint only sees the result, so
there an entry program notes the arguments in a hash keyed by thread.

Filters are compiled into the code, so a filtered-out open costs no record.
Wakeups are what a ring buffer costs most, so records go out with
BPF_RB_NO_WAKEUP and only the record that makes the unread data cross a
multiple of the fill mark wakes the reader; it also polls on a short timer.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from ..arch import arch
from ..asm import R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, W0, W1, W2, Program, Register
from ..fieldtuple import FieldTuple
from ..uapi import (
    AT_FDCWD,
    BPF_ANY,
    BPF_F_CURRENT_CPU,
    BPF_RB_AVAIL_DATA,
    BPF_RB_FORCE_WAKEUP,
    BPF_RB_NO_WAKEUP,
    BPF_RINGBUF_HDR_SZ,
    IORING_OP_OPENAT,
    IORING_OP_OPENAT2,
    O_ACCMODE,
)
from ._layout import INFLIGHT_OFFSETS, INFLIGHT_SIZE
from .kernel_layout import KernelLayout, TaskLayout
from .pathwalk import DIR_AREA, FRAME_SIZE as WALK_FRAME_SIZE, emit_directory_walk
from .records import (
    COMM_SIZE,
    DEFAULT_FILENAME_SIZE,
    HEADER_SIZE,
    KIND_COMPLETE,
    SYSCALL_OPEN,
    SYSCALL_OPENAT,
    SYSCALL_NAMES,
    SYSCALL_OPENAT2,
    SYSCALL_UNKNOWN,
    URING_OPENAT,
    URING_OPENAT2,
    field_offset,
)

# Names of the maps the programs refer to; the loader creates them.
EVENTS_MAP = "events"  # BPF_MAP_TYPE_RINGBUF
SCRATCH_MAP = "scratch"  # BPF_MAP_TYPE_PERCPU_ARRAY: the record being built
LOST_MAP = "lost"  # BPF_MAP_TYPE_ARRAY: u64 count of records not sent
INFLIGHT_MAP = "inflight"  # BPF_MAP_TYPE_HASH: pid_tgid -> schema.INFLIGHT
CGROUP_MAP = "cgroup"  # BPF_MAP_TYPE_CGROUP_ARRAY: the trees --cgroup and --container pass
FOLLOW_MAP = "follow"  # BPF_MAP_TYPE_HASH: u32 pid or tid -> u8, the processes of -- CMD
URING_MAP = "uring"  # BPF_MAP_TYPE_LRU_HASH: u64 io_uring request -> the record built at its submission

INFLIGHT_ENTRIES = 16384  # threads inside an open at the same time
CGROUP_SLOTS = {"cgroup": 0, "container": 1}  # CGROUP_MAP index of each filter's cgroup
FOLLOW_ENTRIES = 1 << 16  # processes and threads of -- CMD alive at once
# io_uring opens between submission and completion at once; the least
# recently submitted is dropped (unreported) when more are in flight.
URING_ENTRIES = 256

# The ring's default size. Measured at full load (bench/loadgen.c making
# ~500,000 opens a second on one core, the reader on the other): the reader
# keeps up, and 1 MiB (~7,000 of its records, ~14 ms of that load) absorbed
# its stalls with nothing lost in 10 runs of 500,000 opens, 2 of them with a
# busy loop sharing the reader's core; 512 KiB lost 765 records in one of 3,
# 256 KiB 216 in one of 3. The ring's pages are resident in the reader, so
# every MiB more is a MiB of its RSS. --ring-size buys more for longer stalls.
DEFAULT_RING_SIZE = 1 << 20

# Best first, as auto tries them. kprobe and fentry run only on the open path;
# tracepoint runs no BPF on other syscalls (0 runs, where tp_btf and raw_tp on
# sys_exit run on every syscall of the machine), and with bpf_task_pt_regs
# needs one program per open, about as dear in the kernel as tp_btf's two
# runs (the open's exit and the close's); the per-syscall tracepoint's own
# path costs a little more per open (docs/bench.md has the measured trade).
# Without that helper it needs an entry program and a hash (twice the
# in-kernel cost): then it goes last (auto_order).
ATTACH_MODES = ("kprobe", "fentry", "tracepoint", "tp_btf", "raw_tp")


def auto_order(tracepoint_exit_only: bool) -> Tuple[str, ...]:
    """The attach points auto tries, best first: tracepoint last unless its exit programs can stand alone."""
    if tracepoint_exit_only:
        return ATTACH_MODES
    return tuple(mode for mode in ATTACH_MODES if mode != "tracepoint") + ("tracepoint",)


# Which syscall argument (0-based) holds what.
_ARGUMENTS = {
    SYSCALL_OPEN: {"filename": 0, "flags": 1},
    SYSCALL_OPENAT: {"dfd": 0, "filename": 1, "flags": 2},
    SYSCALL_OPENAT2: {"dfd": 0, "filename": 1, "how": 2},
}

IN_NAME_PTR = field_offset("filename_ptr", INFLIGHT_OFFSETS)
IN_FLAGS = field_offset("flags", INFLIGHT_OFFSETS)
IN_TIMESTAMP = field_offset("timestamp_ns", INFLIGHT_OFFSETS)
IN_DFD = field_offset("dfd", INFLIGHT_OFFSETS)

OFF_TIMESTAMP = field_offset("timestamp_ns")
OFF_TID = field_offset("tid")
OFF_PID = field_offset("pid")
OFF_UID = field_offset("uid")
OFF_GID = field_offset("gid")
OFF_FLAGS = field_offset("flags")
OFF_RET = field_offset("ret")
OFF_DFD = field_offset("dfd")
OFF_SYSCALL = field_offset("syscall")
OFF_COMM = field_offset("comm")
OFF_FILENAME_LEN = field_offset("filename_len")
OFF_KIND = field_offset("kind")
OFF_CGROUP_ID = field_offset("cgroup_id")
OFF_MNTNS_ID = field_offset("mntns_id")
OFF_DIR_LEN = field_offset("dir_len")
# dfd and syscall travel together as one 64-bit copy in both layouts.
assert OFF_SYSCALL == OFF_DFD + 4 and field_offset("syscall", INFLIGHT_OFFSETS) == IN_DFD + 4

# Stack frame (offsets from r10). Each slot has one use per program.
STACK_KEY = -8  # u64 pid_tgid: the inflight key
STACK_INFLIGHT = -40  # INFLIGHT being built at entry (32 bytes)
STACK_ARGS = -128  # raw_tp: pt_regs slots copied to the stack (up to 32 bytes)
STACK_COMM = -80  # --name: this task's comm (16 bytes)
STACK_INDEX = -84  # u32 0: index into the array maps
STACK_BYTE = -88  # the byte after a full name buffer
STACK_FOLLOW = -96  # -- CMD: pid_tgid, whose halves are the follow map's keys
STACK_WALK = -224  # -F: the directory walk's frame (pathwalk.FRAME_SIZE bytes, down to STACK_ARGS)
assert INFLIGHT_SIZE == STACK_KEY - STACK_INFLIGHT
assert STACK_WALK + WALK_FRAME_SIZE <= STACK_ARGS

# Registers kept across helper calls (r6-r9 are callee-saved).
CTX = R6
RECORD = R7
NAME_PTR = R8


# FieldTuples, not dataclasses: importing dataclasses (and inspect with it)
# and creating the classes cost the tracer's start-up about 10 ms and 1 MB.


class _FilterFields(FieldTuple):
    pids: Tuple[int, ...] = ()
    tids: Tuple[int, ...] = ()
    uids: Tuple[int, ...] = ()
    comm: Optional[bytes] = None
    failed_only: bool = False
    access_modes: Tuple[int, ...] = ()
    flag_mask: int = 0
    cgroup: bool = False  # CGROUP_MAP[0] holds the cgroup whose tree passes (--cgroup)
    container: bool = False  # CGROUP_MAP[1] holds the container's cgroup (--container)
    follow: bool = False  # only the processes in FOLLOW_MAP (-- CMD, which the fork programs extend)


class Filters(_FilterFields):
    """Which opens to report; every test runs in the kernel.

    An open passes the flag filter when it has any of the listed flags:
    ``access_modes`` (O_RDONLY/O_WRONLY/O_RDWR as 0/1/2) are compared with
    ``flags & O_ACCMODE``, because no mask can test for O_RDONLY, which is 0;
    ``flag_mask`` holds the other flags.
    """

    __slots__ = ()

    def __new__(cls, *args: object, **kwargs: object) -> "Filters":
        self = super().__new__(cls, *args, **kwargs)
        if self.comm is not None and not 0 < len(self.comm) < COMM_SIZE:
            raise ValueError(f"a comm is 1 to {COMM_SIZE - 1} bytes, got {len(self.comm)}: {self.comm!r}")
        for name in ("pids", "tids", "uids"):
            for value in getattr(self, name):
                if not 0 <= value <= 0xFFFFFFFF:
                    raise ValueError(f"{name[:-1]} {value} is out of range 0..4294967295")
        return self

    @property
    def any(self) -> bool:
        return bool(self.pids or self.tids or self.uids or self.comm or self.access_modes or self.flag_mask
                    or self.cgroup or self.container or self.follow)


class _OptionFields(FieldTuple):
    filename_size: int = DEFAULT_FILENAME_SIZE  # bytes, NUL included
    wakeup_mark: int = DEFAULT_RING_SIZE // 8  # the reader is woken each time unread data crosses a multiple of this
    filters: Filters = Filters()
    containers: bool = False  # fill cgroup_id and mntns_id (JSON, --container)
    full_path: bool = False  # walk the opener's directory for relative names (-F), where the layout allows
    perf_output: bool = False  # send with perf_event_output to a PERF_EVENT_ARRAY (no ring buffer)


class ProbeOptions(_OptionFields):
    """What the user chose that changes the generated code."""

    __slots__ = ()

    def __new__(cls, *args: object, **kwargs: object) -> "ProbeOptions":
        self = super().__new__(cls, *args, **kwargs)
        if not 2 <= self.filename_size <= 4096:
            raise ValueError(f"file name size {self.filename_size} is out of range 2..4096")
        mark = self.wakeup_mark
        if mark < 8 or mark & (mark - 1) or mark >= 1 << 31:
            raise ValueError(f"wakeup mark {mark} must be a power of two from 8 to 2**30")
        return self


class ProbeProgram(FieldTuple):
    """One program of the probe and where it goes.

    ``kind`` is how the kernel attaches it: kprobe, kretprobe, fexit,
    tp_btf, raw_tp or tracepoint.
    """

    name: str  # BPF object name (at most 15 characters): what bpftool shows
    kind: str
    target: str  # function, raw tracepoint, or "category/name" tracepoint
    program: Program


def scratch_value_size(options: ProbeOptions) -> int:
    """Bytes of the record being built: header, name buffer, and with -F the room for directory components."""
    return HEADER_SIZE + options.filename_size + (DIR_AREA if options.full_path else 0)


# ------------------------------------------------------------ shared pieces


def _array_slot(p: Program, map_name: str) -> None:
    """R0 = &map[0], or leave the program."""
    p.stw(R10, STACK_INDEX, 0)
    p.ld_map_fd(R1, map_name)
    p.mov(R2, R10)
    p.add(R2, STACK_INDEX)
    p.call("map_lookup_elem")
    p.jeq(R0, 0, "out")


def _count_lost(p: Program) -> None:
    """lost[0] += 1, atomically: the ring buffer keeps no count of its own."""
    _array_slot(p, LOST_MAP)
    p.mov(R1, 1)
    p.atomic_add(R0, 0, R1)


def _finish(p: Program) -> None:
    p.label("out")
    p.mov(R0, 0)
    p.exit()


def _emit_entry_filters(p: Program, filters: Filters, flags_base: Register, flags_off: int) -> None:
    """Leave the program (to "out") unless the current open passes every filter."""
    if filters.pids or filters.tids:
        p.call("get_current_pid_tgid")
        if filters.pids:
            p.mov(R1, R0)
            p.rsh(R1, 32)
            _one_of(p, W1, filters.pids, "pid_ok")
        if filters.tids:
            p.mov(W1, W0)  # the low half: tid
            _one_of(p, W1, filters.tids, "tid_ok")
    if filters.uids:
        p.call("get_current_uid_gid")
        p.mov(W1, W0)  # the low half: uid
        _one_of(p, W1, filters.uids, "uid_ok")
    for name, slot in CGROUP_SLOTS.items():
        if getattr(filters, name):
            p.ld_map_fd(R1, CGROUP_MAP)
            p.mov(R2, slot)
            p.call("current_task_under_cgroup")
            p.jne(R0, 1, "out")
    if filters.follow:
        _emit_follow_filter(p)
    if filters.comm is not None:
        # Older kernels copy the comm with strscpy, which leaves the bytes
        # after its NUL as they were: zero them, or the compare sees garbage.
        p.stdw(R10, STACK_COMM, 0)
        p.stdw(R10, STACK_COMM + 8, 0)
        p.mov(R1, R10)
        p.add(R1, STACK_COMM)
        p.mov(R2, COMM_SIZE)
        p.call("get_current_comm")
        wanted = filters.comm.ljust(COMM_SIZE, b"\0")
        for half in (0, 8):  # comm is NUL-padded: two 64-bit compares
            p.ldxdw(R1, R10, STACK_COMM + half)
            p.lddw(R2, int.from_bytes(wanted[half : half + 8], "little"))
            p.jne(R1, R2, "out")
    if filters.access_modes or filters.flag_mask:
        # Any listed flag passes: an access mode by equality, the rest by mask.
        p.ldxdw(R1, flags_base, flags_off)
        if filters.flag_mask:
            p.jset(R1, filters.flag_mask, "flags_ok")
        if filters.access_modes:
            p.and_(R1, O_ACCMODE)
            for mode in filters.access_modes:
                p.jeq(R1, mode, "flags_ok")
        p.ja("out")
        p.label("flags_ok")


def _emit_follow_filter(p: Program) -> None:
    """Leave unless this process (its tgid) or this thread (its tid) is in FOLLOW_MAP.

    The tid too: a thread of a followed process stays followed after the
    process's first thread exited (and removed the tgid's entry).
    """
    p.call("get_current_pid_tgid")
    p.stxdw(R10, STACK_FOLLOW, R0)
    for key, found in ((STACK_FOLLOW + 4, "follow_ok"), (STACK_FOLLOW, None)):
        p.ld_map_fd(R1, FOLLOW_MAP)
        p.mov(R2, R10)
        p.add(R2, key)
        p.call("map_lookup_elem")
        if found:
            p.jne(R0, 0, found)
        else:
            p.jeq(R0, 0, "out")
    p.label("follow_ok")


def _one_of(p: Program, register: Register, values: Sequence[int], passed: str) -> None:
    """Go on at ``passed`` when the 32-bit ``register`` is one of ``values``, else out.

    A 32-bit compare (JMP32) takes every u32 as its immediate; a 64-bit one
    would sign-extend 2**31 and above.
    """
    for value in values:
        p.jeq(register, value, passed)
    p.ja("out")
    p.label(passed)


def _identity(p: Program, layout: KernelLayout, options: ProbeOptions) -> None:
    """tid, pid, uid, gid and comm of the current task into RECORD; with ``containers``, its cgroup and mount namespace."""
    task = layout.task
    if task is None:
        p.call("get_current_pid_tgid")
        p.stxdw(RECORD, OFF_TID, R0)  # low half tid, high half pid
        p.call("get_current_uid_gid")
        p.stxdw(RECORD, OFF_UID, R0)  # low half uid, high half gid
        p.mov(R1, RECORD)
        p.add(R1, OFF_COMM)
        p.mov(R2, COMM_SIZE)
        p.call("get_current_comm")
    else:
        # uid and gid by the helper, not through task->cred: loading that
        # pointer makes the verifier search vmlinux BTF by name, type by
        # type, for the pointee's trusted/RCU markers, ~1 ms per program
        # loaded (6.18), against a few ns per open for the call.
        p.call("get_current_uid_gid")
        p.stxdw(RECORD, OFF_UID, R0)  # low half uid, high half gid
        p.call("get_current_task_btf")  # a BTF pointer: plain loads read the task
        p.ldxw(R1, R0, task.pid)  # the kernel's pid is the thread id
        p.stxw(RECORD, OFF_TID, R1)
        p.ldxw(R1, R0, task.tgid)
        p.stxw(RECORD, OFF_PID, R1)
        for half in (0, 8):  # the comm as two 64-bit words; the decoder stops at its NUL
            p.ldxdw(R1, R0, task.comm + half)
            p.stxdw(RECORD, OFF_COMM + half, R1)
        if options.containers and layout.namespaces is not None:
            ns = layout.namespaces
            p.ldxdw(R1, R0, ns.task_nsproxy)  # NULL only while the task exits: the load then gives 0
            p.ldxdw(R1, R1, ns.nsproxy_mnt_ns)
            p.ldxw(R1, R1, ns.mnt_ns_inum)
            p.stxw(RECORD, OFF_MNTNS_ID, R1)
    if options.containers:
        if task is None and layout.namespaces is not None:
            _mount_namespace_by_reads(p, layout)
        p.call("get_current_cgroup_id")
        p.stxdw(RECORD, OFF_CGROUP_ID, R0)


def _mount_namespace_by_reads(p: Program, layout: KernelLayout) -> None:
    """mntns_id through probe_read_kernel, for kernels with BTF but without bpf_get_current_task_btf (5.8-5.10)."""
    ns = layout.namespaces
    assert ns is not None
    p.call("get_current_task")
    for offset in (ns.task_nsproxy, ns.nsproxy_mnt_ns):
        p.mov(R3, R0)
        p.add(R3, offset)
        p.mov(R1, R10)
        p.add(R1, STACK_FOLLOW)
        p.mov(R2, 8)
        p.call("probe_read_kernel")
        p.ldxdw(R0, R10, STACK_FOLLOW)
    p.mov(R3, R0)
    p.add(R3, ns.mnt_ns_inum)
    p.mov(R1, RECORD)
    p.add(R1, OFF_MNTNS_ID)
    p.mov(R2, 4)
    p.call("probe_read_kernel")


def _send(p: Program, options: ProbeOptions, layout: KernelLayout) -> None:
    """Shared tail: fill in who opened and the name, then send the record.

    Expects RECORD with timestamp, flags, ret, dfd and syscall filled in,
    and NAME_PTR holding the user pointer to the name.
    """
    _fill(p, options, layout)
    _output(p, options)


def _fill(p: Program, options: ProbeOptions, layout: KernelLayout, *, name_in_kernel: bool = False) -> None:
    """Identity fields, the name (and with -F the directory), leaving R9 = bytes to send.

    The name is read from NAME_PTR: user memory, or kernel memory with
    ``name_in_kernel`` (io_uring's copy of it).
    """
    size = options.filename_size
    read_str, read = ("probe_read_kernel_str", "probe_read_kernel") if name_in_kernel else ("probe_read_user_str", "probe_read_user")
    _identity(p, layout, options)
    p.stw(RECORD, OFF_KIND, KIND_COMPLETE)

    p.mov(R1, RECORD)
    p.add(R1, HEADER_SIZE)
    p.mov(R2, size)
    p.mov(R3, NAME_PTR)
    p.call(read_str)
    p.mov(R9, R0)
    # A full buffer means size-1 bytes or more; the next byte says which.
    p.jne(R9, size, "length_known")
    p.mov(R1, R10)
    p.add(R1, STACK_BYTE)
    p.mov(R2, 1)
    p.mov(R3, NAME_PTR)
    p.add(R3, size - 1)
    p.call(read)
    p.ldxb(R1, R10, STACK_BYTE)
    p.jeq(R1, 0, "length_known")
    p.mov(R9, size + 1)  # the decoder's mark for "cut short"
    p.label("length_known")
    p.stxw(RECORD, OFF_FILENAME_LEN, R9)

    # Bytes to send: min(max(len, 0), size), proven to the verifier.
    p.jsgt(R9, 0, "positive")
    p.mov(R9, 0)
    p.label("positive")
    p.jle(R9, size, "bounded")
    p.mov(R9, size)
    p.label("bounded")
    if options.full_path and layout.paths is not None:
        emit_directory_walk(p, layout.paths, record=RECORD, name_bytes=R9, frame=STACK_WALK,
                            record_size=scratch_value_size(options))
    p.add(R9, HEADER_SIZE)


def _output(p: Program, options: ProbeOptions, done: str = "out") -> None:
    """ringbuf_output(RECORD, R9 bytes), waking the reader at the fill mark; count it lost if the ring is full.

    Goes on at ``done`` either way.
    """
    if options.perf_output:
        _perf_output(p, done)
        return
    # Wake the reader only when this record makes the unread data cross a
    # multiple of the mark: waking on every record above it would cost
    # microseconds per record exactly when the reader is behind. The unread
    # data grows by the record's whole span in the ring (8-byte header,
    # payload, padding to 8), not by the payload alone: with the payload
    # alone, same-sized records whose span divides the mark (128 bytes:
    # a 47-byte name) would step over every multiple and never wake it.
    p.ld_map_fd(R1, EVENTS_MAP)
    p.mov(R2, BPF_RB_AVAIL_DATA)
    p.call("ringbuf_query")
    shift = options.wakeup_mark.bit_length() - 1
    p.mov(R1, R9)
    p.add(R1, BPF_RINGBUF_HDR_SZ + 7)
    p.and_(R1, -8)
    p.add(R1, R0)
    p.rsh(R1, shift)
    p.rsh(R0, shift)
    p.mov(R4, BPF_RB_NO_WAKEUP)
    p.jeq(R0, R1, "send")
    p.mov(R4, BPF_RB_FORCE_WAKEUP)
    p.label("send")
    p.ld_map_fd(R1, EVENTS_MAP)
    p.mov(R2, RECORD)
    p.mov(R3, R9)
    p.call("ringbuf_output")
    p.jeq(R0, 0, done)
    _count_lost(p)
    if done != "out":
        p.ja(done)


def _perf_output(p: Program, done: str = "out") -> None:
    """perf_event_output(ctx, events, this CPU, RECORD, R9 bytes), counting a refusal as lost.

    The perf ring wakes the reader itself, by its watermark (PerfBuffer's
    ``wakeup_bytes``), so there is no wakeup decision here.
    """
    p.mov(R1, CTX)
    p.ld_map_fd(R2, EVENTS_MAP)
    p.lddw(R3, BPF_F_CURRENT_CPU)
    p.mov(R4, RECORD)
    p.mov(R5, R9)
    p.call("perf_event_output")
    p.jeq(R0, 0, done)
    _count_lost(p)
    if done != "out":
        p.ja(done)


# ------------------------------------------------------------ entry side


class _Destination(FieldTuple):
    """Where argument-reading code puts what it reads."""

    base: Register
    flags: int
    dfd: int  # the syscall code goes in the 4 bytes after dfd
    name_ptr: Optional[int]  # offset from base, or None: into NAME_PTR


_TO_INFLIGHT = _Destination(R10, STACK_INFLIGHT + IN_FLAGS, STACK_INFLIGHT + IN_DFD, STACK_INFLIGHT + IN_NAME_PTR)
_TO_RECORD = _Destination(RECORD, OFF_FLAGS, OFF_DFD, None)


def _stash_arguments(
    p: Program, code: int, base: Register, offsets: Sequence[int], *, how_in_user_memory: bool,
    layout: KernelLayout, to: _Destination = _TO_INFLIGHT,
) -> None:
    """Copy dfd, name pointer and flags of syscall ``code`` to ``to``.

    Argument ``i`` is the 64-bit value at ``base + offsets[i]``.
    """
    roles = _ARGUMENTS[code]
    if to.name_ptr is None:
        p.ldxdw(NAME_PTR, base, offsets[roles["filename"]])
    else:
        p.ldxdw(R2, base, offsets[roles["filename"]])
        p.stxdw(to.base, to.name_ptr, R2)
    if "dfd" in roles:
        p.ldxdw(R2, base, offsets[roles["dfd"]])
        p.stxw(to.base, to.dfd, R2)
    else:
        p.stw(to.base, to.dfd, AT_FDCWD)
    p.stw(to.base, to.dfd + 4, code)
    if "flags" in roles:
        p.ldxdw(R2, base, offsets[roles["flags"]])
        p.mov(W2, W2)  # flags is an int: drop whatever the upper half holds
        p.stxdw(to.base, to.flags, R2)
    else:
        p.ldxdw(R3, base, offsets[roles["how"]])
        _read_how_flags(p, to.base, to.flags, layout, in_user_memory=how_in_user_memory)


def _read_how_flags(p: Program, base: Register, off: int, layout: KernelLayout, *, in_user_memory: bool) -> None:
    """*(base + off) = how->flags with ``how`` in R3 (zero if unreadable)."""
    p.mov(R1, base)
    p.add(R1, off)
    p.mov(R2, 8)
    p.add(R3, layout.open_how_flags_offset)
    p.call("probe_read_user" if in_user_memory else "probe_read_kernel")


def _drop_forced_largefile(p: Program, register: Register, layout: KernelLayout) -> None:
    """Clear O_LARGEFILE from flags read inside the kernel.

    On 64-bit kernels open, openat and openat2 add O_LARGEFILE before
    calling do_sys_openat2, so there it says nothing about the caller;
    clearing it makes kprobe and fentry report the flags the caller passed,
    as the syscall attach points do.
    """
    p.and_(register, ~arch(layout.machine).open_flags["O_LARGEFILE"])


def _remember(p: Program, options: ProbeOptions) -> None:
    """Filters, then inflight[pid_tgid] = the stack INFLIGHT."""
    _emit_entry_filters(p, options.filters, R10, STACK_INFLIGHT + IN_FLAGS)
    p.call("ktime_get_ns")
    p.stxdw(R10, STACK_INFLIGHT + IN_TIMESTAMP, R0)
    p.call("get_current_pid_tgid")
    p.stxdw(R10, STACK_KEY, R0)
    p.ld_map_fd(R1, INFLIGHT_MAP)
    p.mov(R2, R10)
    p.add(R2, STACK_KEY)
    p.mov(R3, R10)
    p.add(R3, STACK_INFLIGHT)
    p.mov(R4, BPF_ANY)
    p.call("map_update_elem")
    p.jeq(R0, 0, "out")
    _count_lost(p)


def _syscall_dispatch(p: Program, layout: KernelLayout, id_register: Register, prefix: str) -> None:
    """Jump to ``prefix<code>`` for an open-family syscall number, else out."""
    for code, number in sorted(layout.syscall_numbers.items()):
        p.jeq(id_register, number, f"{prefix}{code}")
    p.ja("out")


def build_tracepoint_enter(layout: KernelLayout, options: ProbeOptions, code: int, fields: Dict[str, int]) -> Program:
    """Entry on ``syscalls:sys_enter_<open|openat|openat2>``: fields at format offsets."""
    p = Program(isa="v3")
    p.mov(CTX, R1)
    offsets = [0, 0, 0]
    for role, index in _ARGUMENTS[code].items():
        offsets[index] = fields[role]
    _stash_arguments(p, code, CTX, offsets, how_in_user_memory=True, layout=layout)
    _remember(p, options)
    _finish(p)
    return p


def build_kprobe_enter(layout: KernelLayout, options: ProbeOptions) -> Program:
    """kprobe on do_sys_openat2(dfd, filename, how): ctx is the kernel's pt_regs."""
    p = Program(isa="v3")
    p.mov(CTX, R1)
    dfd_off, name_off, how_off = layout.arg_offsets
    frame = STACK_INFLIGHT
    p.ldxdw(R2, CTX, name_off)
    p.stxdw(R10, frame + IN_NAME_PTR, R2)
    p.ldxdw(R2, CTX, dfd_off)
    p.stxw(R10, frame + IN_DFD, R2)
    p.stw(R10, frame + IN_DFD + 4, SYSCALL_UNKNOWN)
    p.ldxdw(R3, CTX, how_off)  # how is a kernel copy of the user's struct
    _read_how_flags(p, R10, frame + IN_FLAGS, layout, in_user_memory=False)
    p.ldxdw(R2, R10, frame + IN_FLAGS)
    _drop_forced_largefile(p, R2, layout)
    p.stxdw(R10, frame + IN_FLAGS, R2)
    _remember(p, options)
    _finish(p)
    return p


# ------------------------------------------------------------ exit side


def _complete(p: Program, options: ProbeOptions, layout: KernelLayout, load_return) -> None:
    """Exit: take this thread's INFLIGHT back, add the return value, send.

    ``load_return(p, register)`` emits the load of the return value.
    """
    _array_slot(p, SCRATCH_MAP)
    p.mov(RECORD, R0)
    p.call("get_current_pid_tgid")
    p.stxdw(R10, STACK_KEY, R0)
    p.ld_map_fd(R1, INFLIGHT_MAP)
    p.mov(R2, R10)
    p.add(R2, STACK_KEY)
    p.call("map_lookup_elem")
    p.jeq(R0, 0, "out")  # not an open we saw begin (or filtered out)
    p.ldxdw(NAME_PTR, R0, IN_NAME_PTR)
    p.ldxdw(R1, R0, IN_FLAGS)
    p.stxdw(RECORD, OFF_FLAGS, R1)
    p.ldxdw(R1, R0, IN_TIMESTAMP)
    p.stxdw(RECORD, OFF_TIMESTAMP, R1)
    p.ldxdw(R1, R0, IN_DFD)  # dfd and syscall in one copy
    p.stxdw(RECORD, OFF_DFD, R1)
    p.ld_map_fd(R1, INFLIGHT_MAP)
    p.mov(R2, R10)
    p.add(R2, STACK_KEY)
    p.call("map_delete_elem")
    load_return(p, R1)
    p.stxdw(RECORD, OFF_RET, R1)
    if options.filters.failed_only:
        p.jsge(R1, 0, "out")
    _send(p, options, layout)


def build_sys_exit(layout: KernelLayout, options: ProbeOptions, *, btf: bool) -> Program:
    """The whole probe on ``sys_exit``: ctx args are (regs, ret).

    The user registers still hold the arguments at exit (the kernel restores
    them for the return to user space), so one program sees the arguments,
    the syscall number and the result: no entry program, no hash, and no
    BPF run on the entry of every syscall on the machine.
    """
    p = Program(isa="v3")
    p.mov(CTX, R1)
    wanted = list(layout.exit_arg_offsets) + [layout.syscall_nr_offset]
    first = min(wanted)
    span = max(wanted) + 8 - first
    p.ldxdw(R3, CTX, 0)  # args[0]: struct pt_regs * of the user registers
    if btf:
        p.mov(R9, R3)  # a BTF pointer: plain loads, kept across helper calls
        base, offsets, nr_offset = R9, layout.exit_arg_offsets, layout.syscall_nr_offset
    elif span <= 64:
        # One read brings the argument registers and the number onto the stack.
        p.mov(R1, R10)
        p.add(R1, STACK_ARGS)
        p.mov(R2, span)
        p.add(R3, first)
        p.call("probe_read_kernel")
        base = R10
        offsets = tuple(STACK_ARGS + offset - first for offset in layout.exit_arg_offsets)
        nr_offset = STACK_ARGS + layout.syscall_nr_offset - first
    else:
        # Registers far apart (arm64: orig_x0 is 264 bytes past regs[1]): read each.
        p.mov(R9, R3)
        slots = {}
        for index, offset in enumerate(wanted):
            slots[offset] = STACK_ARGS + 8 * index
            p.mov(R1, R10)
            p.add(R1, slots[offset])
            p.mov(R2, 8)
            p.mov(R3, R9)
            p.add(R3, offset)
            p.call("probe_read_kernel")
        base = R10
        offsets = tuple(slots[offset] for offset in layout.exit_arg_offsets)
        nr_offset = slots[layout.syscall_nr_offset]
    p.ldxw(W2, base, nr_offset)  # an s32 on arm64: the low half on both
    _syscall_dispatch(p, layout, R2, "exit_")
    for code in sorted(layout.syscall_numbers):
        p.label(f"exit_{code}")
        _array_slot(p, SCRATCH_MAP)
        p.mov(RECORD, R0)
        _stash_arguments(p, code, base, offsets, how_in_user_memory=True, layout=layout, to=_TO_RECORD)
        p.ja("arguments_read")
    p.label("arguments_read")
    _finish_at_exit(p, options, layout, 8)  # args[1]: the return value
    return p


def _finish_at_exit(p: Program, options: ProbeOptions, layout: KernelLayout, ret_offset: int) -> None:
    """The rest of an exit program that read the arguments itself: result, filters, time, send."""
    p.ldxdw(R1, CTX, ret_offset)
    p.stxdw(RECORD, OFF_RET, R1)
    if options.filters.failed_only:
        p.jsge(R1, 0, "out")
    _emit_entry_filters(p, options.filters, RECORD, OFF_FLAGS)
    p.call("ktime_get_ns")
    p.stxdw(RECORD, OFF_TIMESTAMP, R0)
    _send(p, options, layout)
    _finish(p)


def build_tracepoint_exit(layout: KernelLayout, options: ProbeOptions, fields: Dict[str, int]) -> Program:
    """Exit on ``syscalls:sys_exit_<open|openat|openat2>``."""
    p = Program(isa="v3")
    p.mov(CTX, R1)
    _complete(p, options, layout, lambda p, register: p.ldxdw(register, CTX, fields["ret"]))
    _finish(p)
    return p


def build_tracepoint_exit_only(layout: KernelLayout, options: ProbeOptions, code: int, fields: Dict[str, int]) -> Program:
    """``syscalls:sys_exit_<open|openat|openat2>`` alone: the arguments from the user registers.

    bpf_task_pt_regs(current task) is the user pt_regs, which still hold the
    arguments at exit (as for tp_btf): no entry program and no hash, so one
    run per open and none on any other syscall.
    """
    p = Program(isa="v3")
    p.mov(CTX, R1)
    p.call("get_current_task_btf")
    p.mov(R1, R0)
    p.call("task_pt_regs")
    p.mov(R9, R0)  # a BTF pointer: plain loads, kept across helper calls
    _array_slot(p, SCRATCH_MAP)
    p.mov(RECORD, R0)
    _stash_arguments(p, code, R9, layout.exit_arg_offsets, how_in_user_memory=True, layout=layout, to=_TO_RECORD)
    _finish_at_exit(p, options, layout, fields["ret"])
    return p


def build_kretprobe(layout: KernelLayout, options: ProbeOptions) -> Program:
    """kretprobe on do_sys_openat2: the return value is in pt_regs' ax."""
    p = Program(isa="v3")
    p.mov(CTX, R1)
    _complete(p, options, layout, lambda p, register: p.ldxdw(register, CTX, layout.return_offset))
    _finish(p)
    return p


def build_fexit(layout: KernelLayout, options: ProbeOptions) -> Program:
    """fexit on do_sys_openat2(dfd, filename, how) -> ret: all in one context."""
    p = Program(isa="v3")
    p.mov(CTX, R1)
    _array_slot(p, SCRATCH_MAP)
    p.mov(RECORD, R0)
    p.ldxdw(R3, CTX, 16)  # how: a BTF pointer, so a plain load reads it
    p.ldxdw(R3, R3, layout.open_how_flags_offset)
    _drop_forced_largefile(p, R3, layout)
    p.stxdw(RECORD, OFF_FLAGS, R3)
    _emit_entry_filters(p, options.filters, RECORD, OFF_FLAGS)
    p.ldxdw(NAME_PTR, CTX, 8)
    p.ldxdw(R2, CTX, 0)
    p.stxw(RECORD, OFF_DFD, R2)
    p.stw(RECORD, OFF_SYSCALL, SYSCALL_UNKNOWN)
    p.ldxdw(R1, CTX, 24)
    p.stxdw(RECORD, OFF_RET, R1)
    if options.filters.failed_only:
        p.jsge(R1, 0, "out")
    p.call("ktime_get_ns")
    p.stxdw(RECORD, OFF_TIMESTAMP, R0)
    _send(p, options, layout)
    _finish(p)
    return p


# ------------------------------------------------------------ io_uring


def build_uring_submit(layout: KernelLayout, options: ProbeOptions, fields: Dict[str, int]) -> Program:
    """On ``io_uring/io_uring_submit_req``: the record of an open request, kept in URING_MAP by request.

    The request was prepared just before the tracepoint fires: its
    ``struct io_open`` holds dfd, flags and the kernel's copy of the name
    (freed once the open ran, so read here). Who opened is the submitter,
    whose filters apply now; the result comes at completion.
    """
    uring = layout.uring
    assert uring is not None
    p = Program(isa="v3")
    p.mov(CTX, R1)
    p.ldxb(R8, CTX, fields["opcode"])
    p.jeq(R8, IORING_OP_OPENAT, "uring_open")
    p.jeq(R8, IORING_OP_OPENAT2, "uring_open")
    p.ja("out")
    p.label("uring_open")
    _array_slot(p, SCRATCH_MAP)
    p.mov(RECORD, R0)
    p.stw(RECORD, OFF_SYSCALL, URING_OPENAT)
    p.jeq(R8, IORING_OP_OPENAT, "uring_code_known")
    p.stw(RECORD, OFF_SYSCALL, URING_OPENAT2)
    p.label("uring_code_known")
    p.ldxdw(R9, CTX, fields["req"])
    p.stxdw(R10, STACK_KEY, R9)
    for destination, size, offset in ((OFF_DFD, 4, uring.dfd), (OFF_FLAGS, 8, uring.flags)):
        _read_kernel(p, RECORD, destination, size, R9, offset)
    p.ldxdw(R1, RECORD, OFF_FLAGS)
    _drop_forced_largefile(p, R1, layout)  # io_uring adds it as open() does
    p.stxdw(RECORD, OFF_FLAGS, R1)
    _read_kernel(p, R10, STACK_INFLIGHT, 8, R9, uring.filename)
    p.ldxdw(R3, R10, STACK_INFLIGHT)
    _read_kernel(p, R10, STACK_INFLIGHT, 8, R3, uring.filename_name)
    p.ldxdw(NAME_PTR, R10, STACK_INFLIGHT)
    _emit_entry_filters(p, options.filters, RECORD, OFF_FLAGS)
    p.call("ktime_get_ns")
    p.stxdw(RECORD, OFF_TIMESTAMP, R0)
    p.stdw(RECORD, OFF_RET, 0)
    _fill(p, options, layout, name_in_kernel=True)
    p.ld_map_fd(R1, URING_MAP)
    p.mov(R2, R10)
    p.add(R2, STACK_KEY)
    p.mov(R3, RECORD)
    p.mov(R4, BPF_ANY)
    p.call("map_update_elem")
    p.jeq(R0, 0, "out")
    _count_lost(p)
    _finish(p)
    return p


def _read_kernel(p: Program, base: Register, offset: int, size: int, source: Register, source_offset: int) -> None:
    """*(base + offset) = ``size`` bytes of kernel memory at ``source`` + ``source_offset`` (zeros if unreadable)."""
    p.mov(R3, source)
    p.add(R3, source_offset)
    p.mov(R1, base)
    p.add(R1, offset)
    p.mov(R2, size)
    p.call("probe_read_kernel")


def build_uring_complete(layout: KernelLayout, options: ProbeOptions, fields: Dict[str, int]) -> Program:
    """On ``io_uring/io_uring_complete``: the result of a request seen at submission; send its record."""
    size = options.filename_size
    p = Program(isa="v3")
    p.mov(CTX, R1)
    p.ldxdw(R1, CTX, fields["req"])
    p.stxdw(R10, STACK_KEY, R1)
    p.ld_map_fd(R1, URING_MAP)
    p.mov(R2, R10)
    p.add(R2, STACK_KEY)
    p.call("map_lookup_elem")
    p.jeq(R0, 0, "out")  # not an open, or one the filters dropped
    p.mov(RECORD, R0)
    p.ldxw(R1, CTX, fields["res"])
    p.lsh(R1, 32)  # an int: sign-extend
    p.arsh(R1, 32)
    p.stxdw(RECORD, OFF_RET, R1)
    if options.filters.failed_only:
        p.jsge(R1, 0, "uring_done")
    # The bytes the record carries, as _fill counted them, proven to the verifier again.
    p.ldxw(R9, RECORD, OFF_FILENAME_LEN)
    p.lsh(R9, 32)
    p.arsh(R9, 32)
    p.jsgt(R9, 0, "uring_positive")
    p.mov(R9, 0)
    p.label("uring_positive")
    p.jle(R9, size, "uring_bounded")
    p.mov(R9, size)
    p.label("uring_bounded")
    if options.full_path:
        p.ldxh(R1, RECORD, OFF_DIR_LEN)
        p.jle(R1, DIR_AREA, "uring_dir_bounded")
        p.mov(R1, DIR_AREA)
        p.label("uring_dir_bounded")
        p.add(R9, R1)
    p.add(R9, HEADER_SIZE)
    _output(p, options, done="uring_done")
    p.label("uring_done")
    p.ld_map_fd(R1, URING_MAP)
    p.mov(R2, R10)
    p.add(R2, STACK_KEY)
    p.call("map_delete_elem")
    _finish(p)
    return p


def build_uring_probe(layout: KernelLayout, options: ProbeOptions) -> List[ProbeProgram]:
    """The io_uring programs, on io_uring's tracepoints (any attach mode); [] where the kernel lacks what they need."""
    fields = layout.tracepoint_fields
    submit = next((name for name in ("io_uring_submit_req", "io_uring_submit_sqe") if name in fields), None)
    if layout.uring is None or submit is None or "io_uring_complete" not in fields:
        return []
    return [
        ProbeProgram(PROGRAM_NAMES["io_uring", "submit"], "tracepoint", f"io_uring/{submit}",
                     build_uring_submit(layout, options, dict(fields[submit]))),
        ProbeProgram(PROGRAM_NAMES["io_uring", "complete"], "tracepoint", "io_uring/io_uring_complete",
                     build_uring_complete(layout, options, dict(fields["io_uring_complete"]))),
    ]


# ------------------------------------------------------------ -- CMD: following its processes


def build_follow_fork(fields: Dict[str, int]) -> Program:
    """On ``sched/sched_process_fork``: a followed process's (or thread's) new child is followed too.

    In the kernel, at the fork, so that a child that opens and exits at
    once is not missed. The key is the child's pid, which for a new thread
    is its tid (see _emit_follow_filter).
    """
    p = Program(isa="v3")
    p.mov(CTX, R1)
    _emit_follow_filter(p)
    p.ldxw(R1, CTX, fields["child_pid"])
    p.stxw(R10, STACK_KEY, R1)
    p.stb(R10, STACK_BYTE, 1)
    p.ld_map_fd(R1, FOLLOW_MAP)
    p.mov(R2, R10)
    p.add(R2, STACK_KEY)
    p.mov(R3, R10)
    p.add(R3, STACK_BYTE)
    p.mov(R4, BPF_ANY)
    p.call("map_update_elem")
    _finish(p)
    return p


def build_follow_exit() -> Program:
    """On ``sched/sched_process_exit``: an exiting thread leaves FOLLOW_MAP, so its pid, once reused, is not followed."""
    p = Program(isa="v3")
    p.call("get_current_pid_tgid")
    p.stxw(R10, STACK_KEY, R0)  # the low half: the thread's id
    p.ld_map_fd(R1, FOLLOW_MAP)
    p.mov(R2, R10)
    p.add(R2, STACK_KEY)
    p.call("map_delete_elem")
    _finish(p)
    return p


def build_follow_probe(layout: KernelLayout) -> List[ProbeProgram]:
    """The programs that keep FOLLOW_MAP up to date; [] where the kernel lacks the sched tracepoints."""
    fields = layout.tracepoint_fields
    if "sched_process_fork" not in fields or "sched_process_exit" not in fields:
        return []
    return [
        ProbeProgram(PROGRAM_NAMES["follow", "fork"], "tracepoint", "sched/sched_process_fork",
                     build_follow_fork(dict(fields["sched_process_fork"]))),
        ProbeProgram(PROGRAM_NAMES["follow", "exit"], "tracepoint", "sched/sched_process_exit", build_follow_exit()),
    ]


# ------------------------------------------------------------ assembling a probe


# Program names, at most BPF_OBJ_NAME_LEN - 1 = 15 bytes each (what bpftool
# prints): one per program of every mode, so that two programs never share one.
_TRACEPOINT_TAGS = {SYSCALL_OPEN: "open", SYSCALL_OPENAT: "at", SYSCALL_OPENAT2: "at2"}
PROGRAM_NAMES = {
    ("kprobe", "enter"): "openat_kp_in",
    ("kprobe", "exit"): "openat_kp_out",
    ("fentry", "exit"): "openat_fexit",
    ("tp_btf", "exit"): "openat_btf_exit",
    ("raw_tp", "exit"): "openat_raw_exit",
    **{("tracepoint", f"enter_{code}"): f"openat_in_{tag}" for code, tag in _TRACEPOINT_TAGS.items()},
    **{("tracepoint", f"exit_{code}"): f"openat_out_{tag}" for code, tag in _TRACEPOINT_TAGS.items()},
    ("io_uring", "submit"): "openat_iou_sub",
    ("io_uring", "complete"): "openat_iou_done",
    ("follow", "fork"): "openat_fork",
    ("follow", "exit"): "openat_exited",
}
assert all(len(name) <= 15 for name in PROGRAM_NAMES.values())
assert len(set(PROGRAM_NAMES.values())) == len(PROGRAM_NAMES)


def build_probe(attach: str, layout: KernelLayout, options: ProbeOptions = ProbeOptions()) -> List[ProbeProgram]:
    """The programs for ``attach`` (one of ATTACH_MODES), entry before exit."""
    if attach == "kprobe":
        return [
            ProbeProgram(PROGRAM_NAMES["kprobe", "enter"], "kprobe", "do_sys_openat2", build_kprobe_enter(layout, options)),
            ProbeProgram(PROGRAM_NAMES["kprobe", "exit"], "kretprobe", "do_sys_openat2", build_kretprobe(layout, options)),
        ]
    if attach == "fentry":
        return [ProbeProgram(PROGRAM_NAMES["fentry", "exit"], "fexit", "do_sys_openat2", build_fexit(layout, options))]
    if attach in ("tp_btf", "raw_tp"):
        program = build_sys_exit(layout, options, btf=attach == "tp_btf")
        return [ProbeProgram(PROGRAM_NAMES[attach, "exit"], attach, "sys_exit", program)]
    if attach == "tracepoint":
        programs = []
        for code in sorted(layout.syscall_numbers):
            suffix = SYSCALL_NAMES[code]
            enter = layout.tracepoint_fields.get(f"sys_enter_{suffix}")
            leave = layout.tracepoint_fields.get(f"sys_exit_{suffix}")
            if enter is None or leave is None:
                continue  # this kernel has no such tracepoint
            if layout.task_pt_regs and layout.task is not None:
                programs.append(
                    ProbeProgram(PROGRAM_NAMES["tracepoint", f"exit_{code}"], "tracepoint", f"syscalls/sys_exit_{suffix}",
                                 build_tracepoint_exit_only(layout, options, code, leave))
                )
                continue
            programs.append(
                ProbeProgram(PROGRAM_NAMES["tracepoint", f"enter_{code}"], "tracepoint", f"syscalls/sys_enter_{suffix}",
                             build_tracepoint_enter(layout, options, code, enter))
            )
            programs.append(
                ProbeProgram(PROGRAM_NAMES["tracepoint", f"exit_{code}"], "tracepoint", f"syscalls/sys_exit_{suffix}",
                             build_tracepoint_exit(layout, options, leave))
            )
        return programs
    raise ValueError(f"unknown attach mode {attach!r}; choose one of {', '.join(ATTACH_MODES)}")
