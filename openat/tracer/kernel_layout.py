"""What the probe needs to know of the running kernel: register and struct offsets, tracepoint fields.

Offsets come from the kernel's BTF where it has one, else from the tables of
:mod:`openat.arch`; tracepoint field offsets from tracefs ``format`` files.
"""

from __future__ import annotations

import os
import re
from types import MappingProxyType
from typing import Dict, Mapping, Optional, Sequence, Tuple

from ..arch import Arch, UnsupportedMachine, arch, machine_name, pt_regs_offsets
from ..btf import Btf, BtfError
from ..fieldtuple import FieldTuple
from ..uapi import OPEN_HOW_FLAGS_OFFSET
from .records import SYSCALL_NAMES, SYSCALL_UNKNOWN

__all__ = [
    "EXTRA_TRACEPOINTS",
    "FEATURES",
    "KernelLayout",
    "NamespaceLayout",
    "PathLayout",
    "TRACEPOINT_EVENTS",
    "TaskLayout",
    "UringLayout",
    "discover_layout",
    "parse_tracepoint_format",
    "read_tracepoint_fields",
]

# The open syscalls' names, by the records' own code.
_OPEN_SYSCALLS = {code: name for code, name in SYSCALL_NAMES.items() if code != SYSCALL_UNKNOWN}

TRACEPOINT_EVENTS = tuple(
    f"sys_{side}_{name}" for name in _OPEN_SYSCALLS.values() for side in ("enter", "exit")
)


class TaskLayout(FieldTuple):
    """Offsets in ``struct task_struct`` (from BTF).

    With them the probe reads who opened with plain loads from
    ``bpf_get_current_task_btf()`` instead of helper calls
    (get_current_pid_tgid, get_current_comm): measured on 6.18, with
    get_current_uid_gid among them, about 100 ns less per open, a fifth of
    the probe's cost. uid and gid still come from get_current_uid_gid: the
    load of ``task->cred`` costs the verifier ~1 ms per program (probe.py).
    """

    pid: int
    tgid: int
    comm: int


class PathLayout(FieldTuple):
    """Offsets for ``-F``'s walk of the opener's directory in the kernel (from BTF).

    From the task to its ``fs_struct`` (root and cwd, each a ``struct path``
    of mount and dentry) and its open files (``files_struct`` -> ``fdtable``
    -> ``struct file`` -> ``f_path``); up the dentry chain by ``d_parent``
    with each ``d_name``; across mount points from a ``struct vfsmount``'s
    root to its ``struct mount``'s parent mount and mount point.
    """

    task_fs: int
    task_files: int
    fs_root: int
    fs_pwd: int
    path_mnt: int
    path_dentry: int
    files_fdt: int
    fdt_max_fds: int
    fdt_fd: int
    file_path: int
    dentry_parent: int
    dentry_name: int  # d_name.name: the component's bytes, NUL-terminated
    vfsmount_root: int
    mount_mnt: int  # the struct vfsmount inside struct mount: container_of's offset
    mount_parent: int
    mount_mountpoint: int


class NamespaceLayout(FieldTuple):
    """task_struct -> nsproxy -> mnt_namespace -> ns.inum: the mount namespace's id (from BTF)."""

    task_nsproxy: int
    nsproxy_mnt_ns: int
    mnt_ns_inum: int


class UringLayout(FieldTuple):
    """Where an io_uring open request keeps its arguments (from BTF).

    The request (``struct io_kiocb``) holds a ``struct io_open`` at ``cmd``
    (Linux 6.0+; a union member named ``open`` before), prepared when the
    request is submitted: ``dfd``, ``filename`` (a ``struct filename`` whose
    ``name`` is the kernel's copy of the path) and ``how.flags``.
    """

    dfd: int  # offsets from the request
    filename: int
    flags: int
    filename_name: int  # offset in struct filename


# What discover_layout can be asked for beyond the open syscalls.
FEATURES = ("paths", "namespaces", "io_uring", "follow")

# The tracepoints those need, by category (offsets from their tracefs format).
EXTRA_TRACEPOINTS = {
    "io_uring": ("io_uring", ("io_uring_submit_req", "io_uring_submit_sqe", "io_uring_complete")),
    "follow": ("sched", ("sched_process_fork", "sched_process_exit")),
}


class KernelLayout(FieldTuple):
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
    # None when not asked for or not known here (``missing`` says why)
    paths: Optional[PathLayout] = None
    namespaces: Optional[NamespaceLayout] = None
    uring: Optional[UringLayout] = None
    # feature (of FEATURES) -> why this kernel cannot serve it, in a few words
    missing: Mapping[str, str] = MappingProxyType({})
    # bpf_task_pt_regs works in tracepoint programs (5.15+, with ``task``):
    # the sys_exit_* programs then read the arguments themselves, no entry program
    task_pt_regs: bool = False

    @property
    def syscall_numbers(self) -> Dict[int, int]:
        """The records' syscall code -> this machine's syscall number, for the open syscalls it has."""
        numbers = arch(self.machine).syscalls
        return {code: numbers[name] for code, name in _OPEN_SYSCALLS.items() if name in numbers}


_FORMAT_FIELD = re.compile(r"field:[^;]*?(\w+)(?:\[\d*\])?;\s*offset:(\d+);")


def parse_tracepoint_format(text: str) -> Dict[str, int]:
    """Field name → offset from a tracefs ``format`` file."""
    return {name: int(offset) for name, offset in _FORMAT_FIELD.findall(text)}


def read_tracepoint_fields(
    names: Sequence[str], tracefs: Optional[str], category: str = "syscalls"
) -> Dict[str, Dict[str, int]]:
    """Fields of each ``<category>/<name>`` tracepoint that exists."""
    fields: Dict[str, Dict[str, int]] = {}
    if tracefs is None:
        return fields
    for name in names:
        try:
            with open(os.path.join(tracefs, "events", category, name, "format")) as f:
                fields[name] = parse_tracepoint_format(f.read())
        except OSError:
            continue
    return fields


def discover_layout(
    tracefs: Optional[str] = None, btf: Optional[Btf] = None, machine: Optional[str] = None, *, task_btf: bool = True,
    wanted: Sequence[str] = (),
) -> KernelLayout:
    """Offsets from ``btf`` when given, else from the built-in tables.

    ``machine`` other than this one (for ``--dump`` of another machine's
    probe, and for tests) always uses the tables. ``task_btf``: the kernel
    has ``bpf_get_current_task_btf`` (5.11+), so the identity may be read
    from the task with BTF offsets. BTF that lacks a member the probe needs
    falls back to the tables. ``wanted``: which of FEATURES to look up (each
    costs BTF lookups at start-up); one the kernel cannot serve is None,
    with the reason in ``missing``. ValueError for a machine openat does not know.
    """
    try:
        facts = arch(machine)
    except UnsupportedMachine as error:
        raise ValueError(str(error)) from None
    if facts.name != machine_name():
        btf = None
    fields = read_tracepoint_fields(TRACEPOINT_EVENTS, tracefs)
    for feature in wanted:
        if feature in EXTRA_TRACEPOINTS:
            category, names = EXTRA_TRACEPOINTS[feature]
            fields.update(read_tracepoint_fields(names, tracefs, category))
    layout = None
    if btf is not None:
        try:
            layout = _layout(facts, btf, fields, task_btf)
        except BtfError:
            pass  # odd BTF: the tables still hold
    if layout is None:
        layout = _layout(facts, None, fields, False)
    return _with_features(layout, btf, wanted)


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
    )


def _with_features(layout: KernelLayout, btf: Optional[Btf], wanted: Sequence[str]) -> KernelLayout:
    """``layout`` with the FEATURES asked for looked up, and why each missing one is missing."""
    found: Dict[str, object] = {}
    missing: Dict[str, str] = {}
    readers = {"paths": ("paths", _path_layout), "namespaces": ("namespaces", _namespace_layout),
               "io_uring": ("uring", _uring_layout)}
    for feature in wanted:
        if feature not in FEATURES:
            raise ValueError(f"unknown feature {feature!r}; choose from {', '.join(FEATURES)}")
        if feature in readers:
            field, read = readers[feature]
            if btf is None:
                missing[feature] = "the kernel exposes no BTF (/sys/kernel/btf/vmlinux) to take offsets from"
                continue
            try:
                found[field] = read(btf)
            except BtfError as error:
                missing[feature] = f"kernel BTF: {error}"
                continue
        if feature in EXTRA_TRACEPOINTS:
            reason = _missing_tracepoints(feature, layout.tracepoint_fields)
            if reason:
                missing[feature] = reason
                found.pop("uring", None)
    return layout._replace(missing=MappingProxyType(missing), **found)  # type: ignore[arg-type]


def _missing_tracepoints(feature: str, fields: Mapping[str, Mapping[str, int]]) -> Optional[str]:
    category, names = EXTRA_TRACEPOINTS[feature]
    needs = {
        "io_uring": (("io_uring_submit_req", "io_uring_submit_sqe"), ("req", "opcode")),
        "follow": (("sched_process_fork",), ("child_pid",)),
    }[feature]
    submit, members = needs
    present = [name for name in submit if name in fields]
    if not present:
        return f"no tracepoint {category}/{' or '.join(submit)}"
    lacking = [member for member in members if member not in fields[present[0]]]
    if lacking:
        return f"tracepoint {category}/{present[0]} has no field {lacking[0]}"
    if feature == "io_uring" and "req" not in fields.get("io_uring_complete", {}):
        return "no tracepoint io_uring/io_uring_complete with a req field (Linux 5.18+)"
    if feature == "follow" and "sched_process_exit" not in fields:
        return "no tracepoint sched/sched_process_exit"
    return None


def _path_layout(btf: Btf) -> PathLayout:
    return PathLayout(
        task_fs=btf.member_offset("task_struct", "fs"),
        task_files=btf.member_offset("task_struct", "files"),
        fs_root=btf.member_offset("fs_struct", "root"),
        fs_pwd=btf.member_offset("fs_struct", "pwd"),
        path_mnt=btf.member_offset("path", "mnt"),
        path_dentry=btf.member_offset("path", "dentry"),
        files_fdt=btf.member_offset("files_struct", "fdt"),
        fdt_max_fds=btf.member_offset("fdtable", "max_fds"),
        fdt_fd=btf.member_offset("fdtable", "fd"),
        file_path=btf.member_offset("file", "f_path"),
        dentry_parent=btf.member_offset("dentry", "d_parent"),
        dentry_name=btf.member_offset("dentry", "d_name.name"),
        vfsmount_root=btf.member_offset("vfsmount", "mnt_root"),
        mount_mnt=btf.member_offset("mount", "mnt"),
        mount_parent=btf.member_offset("mount", "mnt_parent"),
        mount_mountpoint=btf.member_offset("mount", "mnt_mountpoint"),
    )


def _namespace_layout(btf: Btf) -> NamespaceLayout:
    return NamespaceLayout(
        task_nsproxy=btf.member_offset("task_struct", "nsproxy"),
        nsproxy_mnt_ns=btf.member_offset("nsproxy", "mnt_ns"),
        mnt_ns_inum=btf.member_offset("mnt_namespace", "ns.inum"),
    )


def _uring_layout(btf: Btf) -> UringLayout:
    try:
        base = btf.member_offset("io_kiocb", "cmd")  # 6.0+: the request's per-op data, cast to io_open
    except BtfError:
        base = btf.member_offset("io_kiocb", "open")  # 5.x: a union member per op
    return UringLayout(
        dfd=base + btf.member_offset("io_open", "dfd"),
        filename=base + btf.member_offset("io_open", "filename"),
        flags=base + btf.member_offset("io_open", "how.flags"),
        filename_name=btf.member_offset("filename", "name"),
    )
