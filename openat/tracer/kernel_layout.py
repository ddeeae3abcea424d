"""What the probe needs to know of the running kernel: register and struct offsets, tracepoint fields.

Offsets come from the kernel's BTF where it has one, else from the tables of
:mod:`openat.arch`; tracepoint field offsets from tracefs ``format`` files.
"""

from __future__ import annotations

import os
import re
from types import MappingProxyType
from typing import Dict, Mapping, NamedTuple, Optional, Sequence, Tuple

from ..arch import Arch, UnsupportedMachine, arch, machine_name, pt_regs_offsets
from ..btf import Btf, BtfError
from ..uapi import OPEN_HOW_FLAGS_OFFSET
from .records import SYSCALL_NAMES, SYSCALL_UNKNOWN

__all__ = [
    "KernelLayout",
    "TRACEPOINT_EVENTS",
    "TaskLayout",
    "discover_layout",
    "parse_tracepoint_format",
    "read_tracepoint_fields",
]

# The open syscalls' names, by the records' own code.
_OPEN_SYSCALLS = {code: name for code, name in SYSCALL_NAMES.items() if code != SYSCALL_UNKNOWN}

TRACEPOINT_EVENTS = tuple(
    f"sys_{side}_{name}" for name in _OPEN_SYSCALLS.values() for side in ("enter", "exit")
)


class TaskLayout(NamedTuple):
    """Offsets in ``struct task_struct`` and ``struct cred`` (from BTF).

    With them the probe reads who opened with plain loads from
    ``bpf_get_current_task_btf()`` instead of three helper calls
    (get_current_pid_tgid, get_current_uid_gid, get_current_comm): measured
    on 6.18, about 100 ns less per open, a fifth of the probe's cost.
    ``uid``/``gid`` are offsets in ``struct cred``, whose address is at
    ``cred`` in the task (the subjective credentials, as the helper reads).
    """

    pid: int
    tgid: int
    comm: int
    cred: int
    uid: int
    gid: int


class KernelLayout(NamedTuple):
    """Offsets the probe needs from the running kernel (BTF, or tables).

    ``arg_offsets``: byte offsets in ``struct pt_regs`` of the first three
    arguments of a kernel function at entry (di, si, dx on x86_64);
    ``exit_arg_offsets`` of the first three syscall arguments at sys_exit;
    ``return_offset`` of the return value (ax); ``syscall_nr_offset`` of the
    syscall number at exit (orig_ax, read as 32 bits: arm64's syscallno is
    an s32).
    """

    machine: str
    arg_offsets: Tuple[int, int, int]
    return_offset: int
    syscall_nr_offset: int
    open_how_flags_offset: int = OPEN_HOW_FLAGS_OFFSET
    # The same registers as at entry on x86_64; on arm64 the result
    # overwrote x0, whose first argument is kept in orig_x0.
    exit_arg_offsets: Tuple[int, int, int] = (0, 0, 0)
    # tracepoint name -> {field name -> offset}, from tracefs format files
    tracepoint_fields: Mapping[str, Mapping[str, int]] = MappingProxyType({})
    # None without kernel BTF (or without bpf_get_current_task_btf): then the identity comes from helpers
    task: Optional[TaskLayout] = None

    @property
    def syscall_numbers(self) -> Dict[int, int]:
        """The records' syscall code -> this machine's syscall number, for the open syscalls it has."""
        numbers = arch(self.machine).syscalls
        return {code: numbers[name] for code, name in _OPEN_SYSCALLS.items() if name in numbers}


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


def discover_layout(
    tracefs: Optional[str] = None, btf: Optional[Btf] = None, machine: Optional[str] = None, *, task_btf: bool = True
) -> KernelLayout:
    """Offsets from ``btf`` when given, else from the built-in tables.

    ``machine`` other than this one (for ``--dump`` of another machine's
    probe, and for tests) always uses the tables. ``task_btf``: the kernel
    has ``bpf_get_current_task_btf`` (5.11+), so the identity may be read
    from the task with BTF offsets. BTF that lacks a member the probe needs
    falls back to the tables. ValueError for a machine openat does not know.
    """
    try:
        facts = arch(machine)
    except UnsupportedMachine as error:
        raise ValueError(str(error)) from None
    if facts.name != machine_name():
        btf = None
    fields = read_tracepoint_fields(TRACEPOINT_EVENTS, tracefs)
    if btf is not None:
        try:
            return _layout(facts, btf, fields, task_btf)
        except BtfError:
            pass  # odd BTF: the tables still hold
    return _layout(facts, None, fields, False)


def _layout(facts: Arch, btf: Optional[Btf], fields: Dict[str, Dict[str, int]], task_btf: bool) -> KernelLayout:
    wanted = facts.function_args[:3] + facts.syscall_args_at_exit[:3] + (facts.return_value, facts.syscall_number)
    regs = pt_regs_offsets(dict.fromkeys(wanted), facts.name, btf)
    return KernelLayout(
        machine=facts.name,
        arg_offsets=tuple(regs[name] for name in facts.function_args[:3]),  # type: ignore[arg-type]
        return_offset=regs[facts.return_value],
        syscall_nr_offset=regs[facts.syscall_number],
        open_how_flags_offset=btf.member_offset("open_how", "flags") if btf is not None else OPEN_HOW_FLAGS_OFFSET,
        exit_arg_offsets=tuple(regs[name] for name in facts.syscall_args_at_exit[:3]),  # type: ignore[arg-type]
        tracepoint_fields=fields,
        task=_task_layout(btf) if btf is not None and task_btf else None,
    )


def _task_layout(btf: Btf) -> TaskLayout:
    return TaskLayout(
        pid=btf.member_offset("task_struct", "pid"),
        tgid=btf.member_offset("task_struct", "tgid"),
        comm=btf.member_offset("task_struct", "comm"),
        cred=btf.member_offset("task_struct", "cred"),
        uid=btf.member_offset("cred", "uid"),
        gid=btf.member_offset("cred", "gid"),
    )
