"""Turning events into lines a terminal, a pipe or a JSON parser can trust.

File names and comms are chosen by whoever runs a process, so they are
untrusted: a name holding a newline could forge a whole line, an ESC could
drive the terminal, a space could forge a field. Every byte that is not a
printable, non-space character is escaped:

* ``\\\\`` for a backslash, so every other backslash starts an escape;
* ``\\xNN`` for an ASCII control byte, space, DEL, or a byte that is not part
  of valid UTF-8;
* ``\\u{XXXX}`` for a valid but invisible or format-changing character
  (C1 controls such as U+009B CSI, bidi overrides, line separators).

The escaped form is reversible: :func:`unescape` gives back the bytes.
"""

from __future__ import annotations

import errno
import json
import re
import time
from typing import Callable, Optional, Tuple

from .records import HEADER_SIZE, HEADER_STRUCT, KIND_COMPLETE, SYSCALL_NAMES, OpenEvent, decode_event, split_name

_unpack_header = HEADER_STRUCT.unpack_from

# Bytes that need no thought: printable ASCII except space and backslash.
_PLAIN_BYTES = bytes(range(0x21, 0x7F)).replace(b"\\", b"")


def _escape_char(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that surrogateescape could not decode
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x80:
        return "\\\\" if char == "\\" else f"\\x{code:02x}"
    return f"\\u{{{code:04x}}}"


def escape(raw: bytes) -> str:
    """``raw`` as a single printable token with no spaces (see module doc)."""
    if not raw.translate(None, _PLAIN_BYTES):  # C-speed check: nothing to escape
        return raw.decode("ascii")
    text = raw.decode("utf-8", "surrogateescape")
    return "".join(
        char if (char.isprintable() and char != " " and char != "\\") else _escape_char(char)
        for char in text
    )


class _BoundedCache(dict):
    """A dict that computes missing values and forgets everything when full.

    Consecutive opens mostly come from the same few processes and files;
    caching what they format to saves most of the work per line.
    """

    LIMIT = 4096

    def __init__(self, compute: Callable) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, key):
        if len(self) >= self.LIMIT:
            self.clear()
        value = self[key] = self.compute(key)
        return value


_UNESCAPE = re.compile(r"\\(\\|x([0-9a-f]{2})|u\{([0-9a-f]+)\})")


def unescape(text: str) -> bytes:
    """Invert :func:`escape`."""
    out = bytearray()
    position = 0
    for match in _UNESCAPE.finditer(text):
        out += text[position : match.start()].encode("utf-8")
        if match.group(1) == "\\":
            out += b"\\"
        elif match.group(2) is not None:
            out.append(int(match.group(2), 16))
        else:
            out += chr(int(match.group(3), 16)).encode("utf-8")
        position = match.end()
    out += text[position:].encode("utf-8")
    return bytes(out)


# ---------------------------------------------------------------- timestamps

TIMESTAMP_MODES = ("utc", "local", "relative", "none")


class Clock:
    """Converts the probe's CLOCK_MONOTONIC nanoseconds to the chosen display.

    The monotonic-to-wall offset is read once at start: it keeps wall-clock
    stamps consistent with each other even if the system clock is stepped
    while tracing (stamps then drift from the new wall clock, by design).
    """

    def __init__(self, mode: str = "utc") -> None:
        if mode not in TIMESTAMP_MODES:
            raise ValueError(f"unknown timestamp mode {mode!r}; choose one of {', '.join(TIMESTAMP_MODES)}")
        self.mode = mode
        self.start_monotonic_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        self.offset_ns = time.time_ns() - self.start_monotonic_ns
        self._cached_second = -1
        self._cached_text = ""

    def wall_ns(self, monotonic_ns: int) -> int:
        return monotonic_ns + self.offset_ns

    def text(self, monotonic_ns: int) -> Optional[str]:
        """The stamp for display, or None in mode ``none``."""
        if self.mode == "none":
            return None
        if self.mode == "relative":
            return f"{(monotonic_ns - self.start_monotonic_ns) / 1e9:.6f}"
        second = (monotonic_ns + self.offset_ns) // 1_000_000_000
        if second != self._cached_second:  # many events share a second
            self._cached_second = second
            if self.mode == "utc":
                self._cached_text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
            else:
                self._cached_text = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(second))
                # RFC 3339 wants the offset as +hh:mm
                self._cached_text = self._cached_text[:-2] + ":" + self._cached_text[-2:]
        return self._cached_text

    def iso(self, monotonic_ns: int) -> str:
        """Full-precision RFC 3339 UTC stamp (JSON's ``time``)."""
        wall = monotonic_ns + self.offset_ns
        seconds, nanos = divmod(wall, 1_000_000_000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


# ---------------------------------------------------------------- formatting


def errno_name(number: int) -> str:
    """``ENOENT`` for 2; ``E999`` for a number this system has no name for."""
    return errno.errorcode.get(number, f"E{number}")


def format_return(ret: int) -> str:
    """``3`` for an fd, ``-2:ENOENT`` for an error (number first, then name)."""
    if ret >= 0:
        return str(ret)
    return f"{ret}:{errno_name(-ret)}"


class TextFormatter:
    """The seed's line: ``TIME pid= uid= flags= comm= file=`` then ``ret=``.

    ``formatter(event)`` formats an :class:`OpenEvent`; ``from_record(raw)``
    formats a ring-buffer record directly, which is the consumer's hot path.
    Both go through :meth:`_line`, so they cannot disagree.
    """

    def __init__(self, clock: Clock, *, path_of: Optional[Callable[[OpenEvent], bytes]] = None) -> None:
        self.clock = clock
        self.path_of = path_of
        self._prefixes = _BoundedCache(_identity_text)  # (pid, uid, flags, comm) -> "pid=… file="
        self._names = _BoundedCache(escape)

    def __call__(self, event: OpenEvent) -> str:
        name = self.path_of(event) if self.path_of else event.filename
        return self._line(
            event.timestamp_ns, (event.pid, event.uid, event.flags, event.comm),
            self._file_text(name, event.truncated, event.read_error), event.ret, event.kind,
        )

    def from_record(self, record: "bytes | memoryview") -> str:
        """The line for one raw ring-buffer record."""
        if self.path_of is not None:
            return self(decode_event(record))  # resolving a path needs the whole event
        (timestamp_ns, _tid, pid, uid, _gid, flags, ret, _dfd, _syscall, comm, name_len, kind) = _unpack_header(record)
        if 0 < name_len <= len(record) - HEADER_SIZE:  # the common case: a whole, readable name
            file_text = self._names[bytes(record[HEADER_SIZE : HEADER_SIZE + name_len - 1])]
        else:
            file_text = self._file_text(*split_name(record, name_len))
        return self._line(timestamp_ns, (pid, uid, flags, comm.split(b"\0", 1)[0]), file_text, ret, kind)

    def _file_text(self, name: bytes, truncated: bool, read_error: Optional[int]) -> str:
        if read_error is not None:
            return f"\\?{errno_name(-read_error)}"
        return self._names[name] + ("\\..." if truncated else "")

    def _line(self, timestamp_ns: int, identity: Tuple[int, int, int, bytes], file_text: str, ret: int, kind: int) -> str:
        line = self._prefixes[identity] + file_text
        if kind == KIND_COMPLETE:
            line += f" ret={ret}" if ret >= 0 else f" ret={format_return(ret)}"
        stamp = self.clock.text(timestamp_ns)
        return line if stamp is None else f"{stamp} {line}"


def _identity_text(identity: Tuple[int, int, int, bytes]) -> str:
    pid, uid, flags, comm = identity
    return f"pid={pid} uid={uid} flags={flags:#x} comm={escape(comm)} file="


class JsonFormatter:
    """One JSON object per line, the text line's fields and a few more.

    ``json.dumps`` with ``ensure_ascii`` writes every control and non-ASCII
    character as ``\\uXXXX``, so the line is plain ASCII. A name that is not
    valid UTF-8 gets ``file`` with ``\\xNN`` escapes and ``file_hex`` with
    its exact bytes.
    """

    def __init__(self, clock: Clock, *, path_of: Optional[Callable[[OpenEvent], bytes]] = None) -> None:
        self.clock = clock
        self.path_of = path_of

    def from_record(self, record: "bytes | memoryview") -> str:
        """The line for one raw ring-buffer record."""
        return self(decode_event(record))

    def __call__(self, event: OpenEvent) -> str:
        name = self.path_of(event) if self.path_of else event.filename
        record: dict = {"type": "open"}
        if self.clock.mode != "none":
            record["time"] = self.clock.iso(event.timestamp_ns)
            if self.clock.mode == "relative":
                record["relative"] = self.clock.text(event.timestamp_ns)
        record.update(
            pid=event.pid,
            tid=event.tid,
            uid=event.uid,
            gid=event.gid,
            flags=event.flags,
            comm=_json_text(event.comm),
            dfd=event.dfd,
            syscall=SYSCALL_NAMES.get(event.syscall, str(event.syscall)),
        )
        _put_text(record, "file", name)
        if self.path_of is not None:
            record["resolved"] = name.startswith(b"/")
        if event.truncated:
            record["truncated"] = True
        if event.read_error is not None:
            record["read_error"] = errno_name(-event.read_error)
        if event.kind == KIND_COMPLETE:
            record["ret"] = event.ret
            if event.ret < 0:
                record["error"] = errno_name(-event.ret)
        return json.dumps(record, ensure_ascii=True, separators=(",", ":"))


def _json_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace")


def _put_text(record: dict, key: str, raw: bytes) -> None:
    try:
        record[key] = raw.decode("utf-8")
    except UnicodeDecodeError:
        record[key] = raw.decode("utf-8", "backslashreplace")
        record[key + "_hex"] = raw.hex()


def lost_record(count: int, total: int) -> str:
    """The JSON line that reports lost events."""
    return json.dumps({"type": "lost", "count": count, "total": total}, separators=(",", ":"))
