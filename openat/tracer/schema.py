"""The records the probe writes, defined once, with ``construct``.

``EVENT_HEADER`` is the record every open sends through the ring buffer (the
header; the file name follows it). ``INFLIGHT`` is what an entry program
leaves for the exit program in a hash, where an attach point sees the
arguments and the result separately (kprobe, syscall tracepoints).

These definitions are the single source of truth, but the tracer does not
import this module while it runs: importing ``construct`` costs about 7 MB
of resident memory and 20 ms of start-up, a third of the tracer's memory
budget. What the tracer needs from them (``struct`` formats, sizes, field
offsets) is generated into ``openat/tracer/_layout.py`` by::

    python -m openat.tracer.schema          # rewrite openat/tracer/_layout.py
    python -m openat.tracer.schema --check  # exit 1 if it is stale

and ``tests/tracer/test_records.py`` fails when the generated file does not
match these definitions, so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from construct import Bytes, Int16ul, Int32sl, Int32ul, Int64sl, Int64ul, Struct

# Fields are ordered so that the u64 returned by get_current_pid_tgid() and
# get_current_uid_gid() can be stored with one 64-bit store each: the low half
# (tid, uid) lands first in little-endian memory.
EVENT_HEADER = Struct(
    "timestamp_ns" / Int64ul,  # bpf_ktime_get_ns(): CLOCK_MONOTONIC
    "tid" / Int32ul,
    "pid" / Int32ul,  # thread-group id, what ps calls the pid
    "uid" / Int32ul,
    "gid" / Int32ul,
    "flags" / Int64ul,  # open flags (how->flags for openat2: 64 bits)
    "ret" / Int64sl,  # fd or -errno; 0 in ENTRY records
    "dfd" / Int32sl,
    "syscall" / Int32ul,
    "comm" / Bytes(16),
    "filename_len" / Int32sl,  # name length with NUL, or -errno; > bytes sent if cut short
    "kind" / Int32ul,
    # Filled only when asked for (JSON, --container; -F): otherwise they stay
    # zero, as the probe's scratch record was created, and cost nothing.
    "cgroup_id" / Int64ul,  # bpf_get_current_cgroup_id(): the cgroup v2 directory's inode number
    "mntns_id" / Int32ul,  # the mount namespace's inode number (/proc/PID/ns/mnt), 0 when unknown
    # -F: the opener's directory (its cwd or dfd's), walked in the kernel,
    # follows the name as components leaf first, each ended by "/".
    "dir_len" / Int16ul,  # bytes of those components
    "dir_state" / Int16ul,  # DIR_* in records.py: not walked, complete, cut, failed
)

# What entry leaves for exit, per thread (kprobe and tracepoint attach).
INFLIGHT = Struct(
    "filename_ptr" / Int64ul,
    "flags" / Int64ul,
    "timestamp_ns" / Int64ul,
    "dfd" / Int32sl,
    "syscall" / Int32ul,
)

# Name in _layout.py -> definition.
DEFINITIONS: Dict[str, Struct] = {"EVENT": EVENT_HEADER, "INFLIGHT": INFLIGHT}

LAYOUT_FILE = Path(__file__).with_name("_layout.py")

_FORMAT_OF = {Int64ul: "Q", Int64sl: "q", Int32ul: "I", Int32sl: "i", Int16ul: "H"}


def struct_format(definition: Struct) -> str:
    """The ``struct`` format equal to ``definition``'s layout, field for field."""
    parts = ["<"]
    for sub in definition.subcons:
        inner = sub.subcon
        if isinstance(inner, Bytes):
            parts.append(f"{inner.sizeof()}s")
        elif inner in _FORMAT_OF:
            parts.append(_FORMAT_OF[inner])
        else:
            raise TypeError(f"no struct format for field {sub.name!r} ({inner!r})")
    return "".join(parts)


def offsets(definition: Struct) -> Dict[str, int]:
    """Field name -> byte offset, in definition order."""
    result: Dict[str, int] = {}
    offset = 0
    for sub in definition.subcons:
        result[sub.name] = offset
        offset += sub.sizeof()
    return result


def render_layout() -> str:
    """The source of ``openat/tracer/_layout.py`` for the current definitions."""
    lines: List[str] = [
        '"""Record layouts for the tracer\'s run-time path. GENERATED: do not edit.',
        "",
        "Made by ``python -m openat.tracer.schema`` from the construct definitions in",
        "openat/tracer/schema.py; tests/tracer/test_records.py fails when it is stale.",
        '"""',
        "",
    ]
    for name, definition in DEFINITIONS.items():
        fields = offsets(definition)
        lines += [
            f"{name}_FORMAT = {struct_format(definition)!r}",
            f"{name}_SIZE = {definition.sizeof()}",
            f"{name}_FIELDS = (" + " ".join(f"{field!r}," for field in fields) + ")",
            f"{name}_OFFSETS = {{" + ", ".join(f"{field!r}: {offset}" for field, offset in fields.items()) + "}",
            "",
        ]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m openat.tracer.schema [--check]``: write (or check) openat/tracer/_layout.py."""
    parser = argparse.ArgumentParser(prog="python -m openat.tracer.schema", description=main.__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if openat/tracer/_layout.py is stale; write nothing")
    args = parser.parse_args(argv)
    wanted = render_layout()
    current = LAYOUT_FILE.read_text() if LAYOUT_FILE.exists() else None
    if args.check:
        if current != wanted:
            print(f"{LAYOUT_FILE} is stale: run python -m openat.tracer.schema", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        LAYOUT_FILE.write_text(wanted)
        print(f"wrote {LAYOUT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
