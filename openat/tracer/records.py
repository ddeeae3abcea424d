"""The event record the probe writes into the ring buffer, and its decoder.

The record is defined once, as a ``construct`` Struct in
:mod:`openat.tracer.schema`; the probe takes its field offsets and the decoder its
``struct`` format from ``openat/tracer/_layout.py``, generated from that definition
(``python -m openat.tracer.schema``), so the tracer never imports ``construct``
while it runs (7 MB of resident memory) and decodes with ``struct``
(``construct``'s generic parse costs several microseconds per record, and
the consumer must keep up with hundreds of thousands of opens per second).

A record is the fixed header followed by the file name and its NUL; the probe
sends only the bytes the name uses, so a short name costs a short record.
``filename_len`` is what ``bpf_probe_read_user_str`` returned (the length
with its NUL, or -errno), except that a name longer than the probe's buffer
is signalled by a ``filename_len`` larger than the name bytes the record
carries: ``probe_read_user_str`` alone cannot tell a name that exactly fills
the buffer from a longer one, so the probe checks the next byte.
"""

from __future__ import annotations

import struct
from typing import Mapping, NamedTuple, Optional, Tuple

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


class OpenEvent(NamedTuple):
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

    @property
    def has_return(self) -> bool:
        return self.kind == KIND_COMPLETE


def split_name(record: "bytes | memoryview", name_len: int) -> Tuple[bytes, bool, Optional[int]]:
    """(name, truncated, read_error) from a record and its ``filename_len``."""
    if name_len <= 0:
        return b"", False, (name_len if name_len < 0 else None)
    carried = len(record) - HEADER_SIZE
    # The carried bytes end with the NUL the probe copied; a name_len beyond
    # them is the probe's mark for a name cut short.
    end = HEADER_SIZE + (name_len if name_len <= carried else carried) - 1
    return bytes(record[HEADER_SIZE:end]), name_len > carried, None


def decode_event(record: "bytes | memoryview") -> OpenEvent:
    """Decode one ring-buffer record (header plus name bytes)."""
    if len(record) < HEADER_SIZE:
        raise ValueError(f"record of {len(record)} bytes is shorter than the {HEADER_SIZE}-byte header")
    (timestamp_ns, tid, pid, uid, gid, flags, ret, dfd, syscall, comm, name_len, kind) = (
        HEADER_STRUCT.unpack_from(record)
    )
    filename, truncated, read_error = split_name(record, name_len)
    return OpenEvent(
        timestamp_ns, tid, pid, uid, gid, flags, ret, dfd, syscall,
        comm.split(b"\0", 1)[0], filename, truncated, read_error, kind,
    )


def encode_event(event: OpenEvent) -> bytes:
    """The record the probe would write for ``event`` (for tests and benchmarks)."""
    name = event.filename
    name_len = event.read_error if event.read_error is not None else len(name) + 1
    if event.truncated:
        name_len += 1  # the probe's mark for "the name went on"
    from .schema import EVENT_HEADER  # construct: for tests and benchmarks, never while tracing

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
        )
    )
    return header + (name + b"\0" if event.read_error is None else b"")
