"""``-F`` in the kernel: the opener's directory, walked up its dentry chain at the moment of the open.

A relative name means nothing once the opener has moved on or exited, so the
probe resolves the directory it is relative to while it runs, as
libbpf-tools' opensnoop does: the task's working directory (``dfd`` =
AT_FDCWD) or the file open as ``dfd``, then up ``d_parent`` one component at
a time, crossing from the root of a mount to its mount point in the parent
mount, until the task's root (so a process in a chroot or a container gets
the path it sees) or the root of its mount namespace. The components go
into the record after the name, leaf first, each ended by ``/``; user space
reverses them, joins the name and normalises the result
(:func:`openat.tracer.paths.kernel_path`).

Every pointer is a plain number read with ``bpf_probe_read_kernel`` at BTF
offsets (:class:`~openat.tracer.kernel_layout.PathLayout`), so the same code
runs in every attach mode; a kernel without BTF has no offsets, and then
``-F`` falls back to ``/proc`` in user space.

The walk is one bounded loop of at most :data:`DEPTH` components. Crossing
mounts happens inside an iteration (at most :data:`CROSSINGS` in a row), so
that every path through an iteration reaches the next one with the same
write position and the verifier's state pruning keeps its work linear in
the depth. A walk cut by the depth limit, or by the room for components, is
marked DIR_CUT.
"""

from __future__ import annotations

from typing import Iterator

from ..asm import R0, R1, R2, R3, R6, R7, R8, R9, R10, W1, Program, Register
from ..uapi import AT_FDCWD
from .kernel_layout import PathLayout
from .records import DIR_COMPLETE, DIR_CUT, DIR_FAILED, HEADER_SIZE, field_offset

__all__ = ["CROSSINGS", "DEPTH", "DIR_AREA", "NAME_MAX", "emit_directory_walk"]

DEPTH = 32  # components at most; deeper directories are marked cut
CROSSINGS = 4  # mount points crossed in a row at most (mounts stacked on one another)
NAME_MAX = 255  # bytes of one component, as the kernel allows
DIR_AREA = 4096  # room for components after the name buffer (PATH_MAX)

OFF_DFD = field_offset("dfd")
OFF_DIR_LEN = field_offset("dir_len")
OFF_DIR_STATE = field_offset("dir_state")
assert OFF_DIR_STATE == OFF_DIR_LEN + 2

# The walk's stack slots, from its frame's start.
_CUR = 0  # the dentry being climbed
_MOUNT = 8  # the struct mount it is in
_MNT_ROOT = 16  # that mount's root dentry
_ROOT = 24  # the task's root: a struct path (16 bytes)
_PATH = 40  # the starting directory: a struct path (16 bytes)
_FIELDS = 56  # scratch for reads (32 bytes): d_parent..d_name.name, or single pointers
FRAME_SIZE = 88

POS = R6  # where the next component goes, as an offset in the record
COUNT = R8  # components so far


def emit_directory_walk(p: Program, walk: PathLayout, *, record: Register, name_bytes: Register, frame: int,
                        record_size: int) -> None:
    """Append the opener's directory to the record in ``record`` (see module doc).

    Expects the name at HEADER_SIZE in the record and ``name_bytes`` (R9)
    holding how many bytes of it are sent; leaves ``name_bytes`` holding
    the bytes after the header to send (name and components). Uses R6 and
    R8 (callee-saved, so the caller must need neither) and the stack from
    ``frame`` (FRAME_SIZE bytes). ``record_size`` is the size of the map
    value ``record`` points into.
    """
    assert record is R7 and name_bytes is R9
    labels = _Labels()
    limit = record_size - (NAME_MAX + 1)  # a component read must fit in the value
    p.stw(record, OFF_DIR_LEN, 0)  # dir_len and dir_state: nothing walked
    p.jeq(name_bytes, 0, "walk_end")  # no name read: nothing it could be relative to
    p.ldxb(R1, record, HEADER_SIZE)
    p.jeq(R1, ord("/"), "walk_end")  # absolute: nothing to walk
    p.mov(POS, name_bytes)
    p.add(POS, HEADER_SIZE)
    _start(p, walk, record, frame)
    p.mov(COUNT, 0)
    p.label("walk_loop")
    p.jge(COUNT, DEPTH, "walk_cut")
    p.add(COUNT, 1)
    _at_root(p, walk, frame, labels)
    for _ in range(CROSSINGS):
        p.ldxdw(R1, R10, frame + _CUR)
        p.ldxdw(R2, R10, frame + _MNT_ROOT)
        p.jne(R1, R2, "walk_component")
        _cross_mount(p, walk, frame)
        _at_root(p, walk, frame, labels)
    p.ja("walk_cut")  # more mounts stacked on one point than CROSSINGS
    p.label("walk_component")
    _component(p, walk, record, frame, limit)
    p.ja("walk_loop")
    _finish(p, record, name_bytes)


class _Labels:
    """Unique label names for code emitted more than once."""

    def __init__(self) -> None:
        self._count = 0

    def __call__(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"


def _read(p: Program, frame: int, slot: int, size: int, source: Register, offset: int) -> None:
    """stack[frame + slot] = ``size`` bytes at ``source`` + ``offset`` (kernel memory; zeros when unreadable)."""
    if source is not R3:
        p.mov(R3, source)
    if offset:
        p.add(R3, offset)
    p.mov(R1, R10)
    p.add(R1, frame + slot)
    p.mov(R2, size)
    p.call("probe_read_kernel")


def _read_pointer(p: Program, frame: int, slot: int, base_slot: int, offset: int) -> None:
    """stack[slot] = *(u64 *)(stack[base_slot] + offset)."""
    p.ldxdw(R3, R10, frame + base_slot)
    _read(p, frame, slot, 8, R3, offset)


def _start(p: Program, walk: PathLayout, record: Register, frame: int) -> None:
    """The task's root and the starting directory (its cwd, or the file open as dfd) onto the stack."""
    p.call("get_current_task")  # a plain address: every read goes through probe_read_kernel
    p.stxdw(R10, frame + _FIELDS, R0)
    _read_pointer(p, frame, _FIELDS + 8, _FIELDS, walk.task_fs)
    p.ldxdw(R3, R10, frame + _FIELDS + 8)
    p.jeq(R3, 0, "walk_failed")  # an exiting task has no fs_struct any more
    _read(p, frame, _ROOT, 16, R3, walk.fs_root)
    p.ldxw(W1, record, OFF_DFD)
    p.jne(W1, AT_FDCWD, "walk_dfd")
    p.ldxdw(R3, R10, frame + _FIELDS + 8)
    _read(p, frame, _PATH, 16, R3, walk.fs_pwd)
    p.ja("walk_have_path")
    p.label("walk_dfd")
    p.jslt(W1, 0, "walk_failed")  # no such descriptor: the open failed with EBADF
    _read_pointer(p, frame, _FIELDS + 16, _FIELDS, walk.task_files)
    _read_pointer(p, frame, _FIELDS + 16, _FIELDS + 16, walk.files_fdt)
    _read_pointer(p, frame, _FIELDS + 24, _FIELDS + 16, walk.fdt_max_fds)  # 8 bytes read, 4 used
    p.ldxw(R2, R10, frame + _FIELDS + 24)
    p.ldxw(R1, record, OFF_DFD)  # 0..2**31-1 here, zero-extended
    p.jge(R1, R2, "walk_failed")
    _read_pointer(p, frame, _FIELDS + 16, _FIELDS + 16, walk.fdt_fd)
    p.ldxw(R1, record, OFF_DFD)
    p.lsh(R1, 3)  # fd[dfd]: pointers of 8 bytes
    p.ldxdw(R3, R10, frame + _FIELDS + 16)
    p.add(R3, R1)
    _read(p, frame, _FIELDS + 16, 8, R3, 0)
    p.ldxdw(R3, R10, frame + _FIELDS + 16)
    p.jeq(R3, 0, "walk_failed")  # closed meanwhile
    _read(p, frame, _PATH, 16, R3, walk.file_path)
    p.label("walk_have_path")
    p.ldxdw(R1, R10, frame + _PATH + walk.path_dentry)
    p.jeq(R1, 0, "walk_failed")
    p.stxdw(R10, frame + _CUR, R1)
    p.ldxdw(R1, R10, frame + _PATH + walk.path_mnt)
    p.jeq(R1, 0, "walk_failed")
    p.mov(R3, R1)
    p.add(R1, -walk.mount_mnt)  # container_of(vfsmount, struct mount, mnt)
    p.stxdw(R10, frame + _MOUNT, R1)
    _read(p, frame, _MNT_ROOT, 8, R3, walk.vfsmount_root)


def _at_root(p: Program, walk: PathLayout, frame: int, labels: _Labels) -> None:
    """Go to walk_complete when the current dentry and mount are the task's root."""
    other = labels("walk_not_root")
    p.ldxdw(R1, R10, frame + _CUR)
    p.ldxdw(R2, R10, frame + _ROOT + walk.path_dentry)
    p.jne(R1, R2, other)
    p.ldxdw(R1, R10, frame + _MOUNT)
    p.add(R1, walk.mount_mnt)
    p.ldxdw(R2, R10, frame + _ROOT + walk.path_mnt)
    p.jeq(R1, R2, "walk_complete")
    p.label(other)


def _cross_mount(p: Program, walk: PathLayout, frame: int) -> None:
    """From the root of the current mount to its mount point in the parent mount."""
    _read_pointer(p, frame, _FIELDS, _MOUNT, walk.mount_parent)
    p.ldxdw(R1, R10, frame + _FIELDS)
    p.jeq(R1, 0, "walk_failed")
    p.ldxdw(R2, R10, frame + _MOUNT)
    p.jeq(R1, R2, "walk_complete")  # its own parent: the root mount of the namespace
    _read_pointer(p, frame, _CUR, _MOUNT, walk.mount_mountpoint)
    p.ldxdw(R1, R10, frame + _FIELDS)
    p.stxdw(R10, frame + _MOUNT, R1)
    _read_pointer(p, frame, _MNT_ROOT, _MOUNT, walk.mount_mnt + walk.vfsmount_root)


def _dentry_reads(walk: PathLayout) -> Iterator[tuple]:
    """(slot, size, offset) reads that bring d_parent and d_name.name to _FIELDS and _FIELDS + 8."""
    span = walk.dentry_name + 8 - walk.dentry_parent
    if 0 < span <= 32 - 8 and walk.dentry_name > walk.dentry_parent:
        yield _FIELDS, span, walk.dentry_parent  # one read: they are close, as in every kernel so far
    else:
        yield _FIELDS, 8, walk.dentry_parent
        yield _FIELDS + 8, 8, walk.dentry_name


def _component(p: Program, walk: PathLayout, record: Register, frame: int, limit: int) -> None:
    """Append the current dentry's name and a "/", then climb to its parent."""
    reads = list(_dentry_reads(walk))
    for slot, size, offset in reads:
        p.ldxdw(R3, R10, frame + _CUR)
        _read(p, frame, slot, size, R3, offset)
    name_slot = _FIELDS + 8 if len(reads) == 2 else _FIELDS + walk.dentry_name - walk.dentry_parent
    p.ldxdw(R1, R10, frame + _FIELDS)  # d_parent
    p.jeq(R1, 0, "walk_failed")
    p.ldxdw(R2, R10, frame + _CUR)
    p.jeq(R1, R2, "walk_cut")  # the root of a tree no mount shows (detached): its top is unknown
    p.jgt(POS, limit, "walk_cut")  # no room for another component
    p.mov(R1, record)
    p.add(R1, POS)
    p.mov(R2, NAME_MAX + 1)
    p.ldxdw(R3, R10, frame + name_slot)
    p.call("probe_read_kernel_str")
    p.jsle(R0, 0, "walk_failed")
    p.jgt(R0, NAME_MAX + 1, "walk_failed")  # never: the bound the verifier needs
    p.mov(R1, record)
    p.add(R1, POS)
    p.add(R1, R0)
    p.stb(R1, -1, ord("/"))  # over the NUL
    p.add(POS, R0)
    p.ldxdw(R1, R10, frame + _FIELDS)
    p.stxdw(R10, frame + _CUR, R1)


def _finish(p: Program, record: Register, name_bytes: Register) -> None:
    p.label("walk_complete")
    p.mov(R1, DIR_COMPLETE)
    p.ja("walk_store")
    p.label("walk_cut")
    p.mov(R1, DIR_CUT)
    p.ja("walk_store")
    p.label("walk_failed")
    p.mov(POS, name_bytes)  # no components: a failed walk sends none
    p.add(POS, HEADER_SIZE)
    p.mov(R1, DIR_FAILED)
    p.label("walk_store")
    p.stxh(record, OFF_DIR_STATE, R1)
    p.mov(R1, POS)
    p.sub(R1, name_bytes)
    p.add(R1, -HEADER_SIZE)
    p.stxh(record, OFF_DIR_LEN, R1)
    p.mov(name_bytes, POS)
    p.add(name_bytes, -HEADER_SIZE)
    p.label("walk_end")
