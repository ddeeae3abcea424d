"""The event record the probe writes into the ring buffer, and its decoder.

The record is defined once, as a ``construct`` Struct in
:mod:`openat.tracer.schema`; the probe takes its field offsets and the decoder its
``struct`` format from ``openat/tracer/_layout.py``, generated from that definition
(``python -m openat.tracer.schema``), so the tracer never imports ``construct``
while it runs (7 MB of resident memory) and decodes with ``struct``
(``construct``'s generic parse costs several microseconds per record, and
the consumer must keep up with hundreds of thousands of opens per second).

A record is the fixed header followed by the file name and its NUL, then
(with ``-F``, for a relative name) the components of the opener's
directory as the probe walked them, leaf first, each ended by ``/``
(``dir_len`` bytes, ``dir_state`` says how the walk ended); the probe sends
only the bytes these use, so a short name costs a short record.
``filename_len`` is what ``bpf_probe_read_user_str`` returned (the length
with its NUL, or -errno), except that a name longer than the probe's buffer
is signalled by a ``filename_len`` larger than the name bytes the record
carries: ``probe_read_user_str`` alone cannot tell a name that exactly fills
the buffer from a longer one, so the probe checks the next byte.
"""

from __future__ import annotations

import struct
from typing import Mapping, Optional, Tuple

from ..fieldtuple import FieldTuple
from ._layout import EVENT_FORMAT, EVENT_OFFSETS, EVENT_SIZE

# Kinds of record. Only ENTRY and COMPLETE carry a file name.
KIND_ENTRY = 0  # an open seen at syscall entry; no return value known
KIND_COMPLETE = 1  # an open seen at syscall exit, with its return value

# The syscall a record came from, as our own code rather than the
# architecture's syscall number (openat is 257 on x86_64, 56 on arm64).
# A kprobe or fentry on do_sys_openat2 sees all three and cannot tell them apart.
SYSCALL_UNKNOWN = 0
SYSCALL_OPEN = 1
SYSCALL_OPENAT = 2
SYSCALL_OPENAT2 = 3
SYSCALL_NAMES = {
    SYSCALL_UNKNOWN: "do_sys_openat2",
    SYSCALL_OPEN: "open",
    SYSCALL_OPENAT: "openat",
    SYSCALL_OPENAT2: "openat2",
}
# io_uring requests open without a syscall of their own; the same field says which.
URING_OPENAT = 4  # IORING_OP_OPENAT
URING_OPENAT2 = 5  # IORING_OP_OPENAT2
URING_NAMES = {URING_OPENAT: "openat", URING_OPENAT2: "openat2"}
# The operation's name (JSON "syscall"), io_uring's included.
OPERATION_NAMES = {**SYSCALL_NAMES, **URING_NAMES}

# How the probe's walk of the opener's directory ended (dir_state).
DIR_NONE = 0  # not walked: no -F, an absolute or unreadable name, or no BTF to walk with
DIR_COMPLETE = 1  # up to the opener's root: the components make an absolute path
DIR_CUT = 2  # the depth limit (or the room for components) ended it: the top is missing
DIR_FAILED = 3  # no directory to walk (a dfd that is not open), or the kernel refused a read

HEADER_SIZE: int = EVENT_SIZE
HEADER_STRUCT = struct.Struct(EVENT_FORMAT)
COMM_SIZE = EVENT_OFFSETS["filename_len"] - EVENT_OFFSETS["comm"]  # the comm field's bytes
DEFAULT_FILENAME_SIZE = 256


def field_offset(name: str, offsets: Mapping[str, int] = EVENT_OFFSETS) -> int:
    """Byte offset of field ``name`` in a generated layout (by default the event header's)."""
    try:
        return offsets[name]
    except KeyError:
        raise KeyError(f"the record has no field {name!r}; it has {', '.join(offsets)}") from None


class OpenEvent(FieldTuple):
    """One decoded open: what the probe saw, with the name's raw bytes."""

    timestamp_ns: int
    tid: int
    pid: int
    uid: int
    gid: int
    flags: int
    ret: int
    dfd: int
    syscall: int
    comm: bytes
    filename: bytes
    truncated: bool
    read_error: Optional[int]  # -errno from probe_read_user_str, else None
    kind: int
    cgroup_id: int = 0  # 0: not asked for
    mntns_id: int = 0  # 0: not asked for, or unknown
    # -F: the directory the name is relative to, as the probe walked it:
    # "/a/b" (DIR_COMPLETE), "a/b" below a cut (DIR_CUT), else b"".
    directory: bytes = b""
    dir_state: int = DIR_NONE

    @property
    def has_return(self) -> bool:
        return self.kind == KIND_COMPLETE

    @property
    def via_io_uring(self) -> bool:
        return self.syscall in URING_NAMES


def split_name(record: "bytes | memoryview", name_len: int, dir_len: int = 0) -> Tuple[bytes, bool, Optional[int]]:
    """(name, truncated, read_error) from a record, its ``filename_len`` and ``dir_len``."""
    if name_len <= 0:
        return b"", False, (name_len if name_len < 0 else None)
    carried = len(record) - HEADER_SIZE - dir_len
    # The carried bytes end with the NUL the probe copied; a name_len beyond
    # them is the probe's mark for a name cut short.
    end = HEADER_SIZE + (name_len if name_len <= carried else carried) - 1
    return bytes(record[HEADER_SIZE:end]), name_len > carried, None


def join_directory(components: bytes, dir_state: int) -> bytes:
    """The directory path from the probe's components (leaf first, each ended by "/")."""
    if dir_state not in (DIR_COMPLETE, DIR_CUT):
        return b""
    path = b"/".join(reversed(components.split(b"/")[:-1]))
    return b"/" + path if dir_state == DIR_COMPLETE else path


def decode_event(record: "bytes | memoryview") -> OpenEvent:
    """Decode one ring-buffer record (header, name bytes, directory components)."""
    if len(record) < HEADER_SIZE:
        raise ValueError(f"record of {len(record)} bytes is shorter than the {HEADER_SIZE}-byte header")
    (timestamp_ns, tid, pid, uid, gid, flags, ret, dfd, syscall, comm, name_len, kind, cgroup_id, mntns_id, dir_len,
     dir_state) = HEADER_STRUCT.unpack_from(record)
    if dir_len > len(record) - HEADER_SIZE:
        raise ValueError(f"record of {len(record)} bytes cannot carry {dir_len} bytes of directory")
    filename, truncated, read_error = split_name(record, name_len, dir_len)
    directory = join_directory(bytes(record[len(record) - dir_len :]), dir_state)
    return OpenEvent(
        timestamp_ns, tid, pid, uid, gid, flags, ret, dfd, syscall,
        comm.split(b"\0", 1)[0], filename, truncated, read_error, kind, cgroup_id, mntns_id, directory, dir_state,
    )


def encode_event(event: OpenEvent) -> bytes:
    """The record the probe would write for ``event`` (for tests and benchmarks)."""
    name = event.filename
    name_len = event.read_error if event.read_error is not None else len(name) + 1
    if event.truncated:
        name_len += 1  # the probe's mark for "the name went on"
    from .schema import EVENT_HEADER  # construct: for tests and benchmarks, never while tracing

    parts = [part for part in event.directory.split(b"/") if part]
    components = b"".join(part + b"/" for part in reversed(parts))

    header = EVENT_HEADER.build(
        dict(
            timestamp_ns=event.timestamp_ns,
            tid=event.tid,
            pid=event.pid,
            uid=event.uid,
            gid=event.gid,
            flags=event.flags,
            ret=event.ret,
            dfd=event.dfd,
            syscall=event.syscall,
            comm=event.comm[:COMM_SIZE].ljust(COMM_SIZE, b"\0"),
            filename_len=name_len,
            kind=event.kind,
            cgroup_id=event.cgroup_id,
            mntns_id=event.mntns_id,
            dir_len=len(components),
            dir_state=event.dir_state,
        )
    )
    return header + (name + b"\0" if event.read_error is None else b"") + components
