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
import struct
import time
from typing import Callable, Optional, Tuple

from .records import HEADER_SIZE, KIND_COMPLETE, SYSCALL_NAMES, OpenEvent, decode_event, split_name, text_fields_struct

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
        self._iso_second = -1
        self._iso_text = ""

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
        seconds, nanos = divmod(monotonic_ns + self.offset_ns, 1_000_000_000)
        if seconds != self._iso_second:
            self._iso_second = seconds
            self._iso_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        return f"{self._iso_text}.{nanos:09d}Z"


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
    Both build the line from the same cached ``pid=… file=…`` text and the
    same :meth:`_finish`, so they cannot disagree.
    """

    def __init__(self, clock: Clock, *, path_of: Optional[Callable[[OpenEvent], bytes]] = None) -> None:
        self.clock = clock
        self.path_of = path_of
        # (pid, uid, flags, comm bytes, name bytes) -> "pid=… file=<name>": one
        # lookup per line while the same processes open the same files.
        self._bodies = _BoundedCache(_body_text)
        self._names = _BoundedCache(escape)
        self._stamped = clock.mode in ("utc", "local")
        # Monotonic span [from, until) that self._stamp covers; empty until the first line.
        self._stamp_from, self._stamp_until, self._stamp = 0, 0, ""

    def __call__(self, event: OpenEvent) -> str:
        name = self.path_of(event) if self.path_of else event.filename
        if event.read_error is None and not event.truncated:
            body = self._bodies[(event.pid, event.uid, event.flags, event.comm, name)]
        else:
            body = _identity_text(event.pid, event.uid, event.flags, event.comm) + self._file_text(
                name, event.truncated, event.read_error
            )
        return self._finish(event.timestamp_ns, body, event.ret, event.kind)

    def from_record(self, record: "bytes | memoryview") -> str:
        """The line for one raw ring-buffer record."""
        if self.path_of is not None:
            return self(decode_event(record))  # resolving a path needs the whole event
        timestamp_ns, ret, name_len, kind = _unpack_line_fields(record)
        length = len(record)
        if 0 < name_len == length - HEADER_SIZE:  # the common case: a whole, readable name
            # One unpack gives the cache key (pid, uid, flags, raw comm, name).
            body = self._bodies[_body_keys[length].unpack_from(record)]
        else:
            event = decode_event(record)
            body = _identity_text(event.pid, event.uid, event.flags, event.comm) + self._file_text(
                event.filename, event.truncated, event.read_error
            )
        if self._stamp_from <= timestamp_ns < self._stamp_until and ret >= 0 and kind == KIND_COMPLETE:
            return f"{self._stamp} {body} ret={ret}"  # what _finish makes of it, without the call
        return self._finish(timestamp_ns, body, ret, kind)

    def _file_text(self, name: bytes, truncated: bool, read_error: Optional[int]) -> str:
        if read_error is not None:
            return f"\\?{errno_name(-read_error)}"
        return self._names[name] + ("\\..." if truncated else "")

    def _finish(self, timestamp_ns: int, body: str, ret: int, kind: int) -> str:
        """``body`` with the return value and the stamp: the end of every line."""
        if kind == KIND_COMPLETE:
            body = f"{body} ret={ret}" if ret >= 0 else f"{body} ret={format_return(ret)}"
        stamp = self.clock.text(timestamp_ns)
        if stamp is None:
            return body
        if self._stamped:  # wall-clock stamps change once a second: remember this one's span
            second_ns = (timestamp_ns + self.clock.offset_ns) // 1_000_000_000 * 1_000_000_000
            self._stamp_from = second_ns - self.clock.offset_ns
            self._stamp_until = self._stamp_from + 1_000_000_000
            self._stamp = stamp
        return f"{stamp} {body}"


# What a line needs besides the cached body, unpacked in one call (pad bytes skip the rest).
_unpack_line_fields = text_fields_struct(("timestamp_ns", "ret", "filename_len", "kind")).unpack_from
_BODY_KEY_FORMAT = text_fields_struct(("pid", "uid", "flags", "comm")).format


class _BodyKeyStructs(dict):
    """Record length -> Struct unpacking (pid, uid, flags, comm, name) of a
    record that carries its whole name: the cache key in one call, the name
    without its NUL. Lengths are bounded by the probe's name buffer."""

    def __missing__(self, length: int) -> struct.Struct:
        value = self[length] = struct.Struct(f"{_BODY_KEY_FORMAT}{length - HEADER_SIZE - 1}sx")
        return value


_body_keys = _BodyKeyStructs()


def _body_text(key: Tuple[int, int, int, bytes, bytes]) -> str:
    pid, uid, flags, comm, name = key
    return _identity_text(pid, uid, flags, comm) + escape(name)


def _identity_text(pid: int, uid: int, flags: int, comm: bytes) -> str:
    comm = comm.split(b"\0", 1)[0]
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
        # Everything between the stamp and the return value, as JSON text, by
        # what it is made of: repeated opens reuse it.
        self._bodies = _BoundedCache(self._body)

    def from_record(self, record: "bytes | memoryview") -> str:
        """The line for one raw ring-buffer record."""
        return self(decode_event(record))

    def __call__(self, event: OpenEvent) -> str:
        # Built from JSON fragments in the order one json.dumps of the whole
        # object would give: "type", stamps, the cached body, then the result.
        name = self.path_of(event) if self.path_of else event.filename
        line = '{"type":"open"'
        if self.clock.mode != "none":
            line += f',"time":"{self.clock.iso(event.timestamp_ns)}"'
            if self.clock.mode == "relative":
                line += f',"relative":"{self.clock.text(event.timestamp_ns)}"'
        line += self._bodies[
            (event.pid, event.tid, event.uid, event.gid, event.flags, event.comm, event.dfd, event.syscall, name,
             event.truncated, event.read_error)
        ]
        if event.kind == KIND_COMPLETE:
            line += f',"ret":{event.ret}' if event.ret >= 0 else f',"ret":{event.ret},"error":"{errno_name(-event.ret)}"'
        return line + "}"

    def _body(self, key: tuple) -> str:
        pid, tid, uid, gid, flags, comm, dfd, syscall, name, truncated, read_error = key
        record: dict = dict(
            pid=pid, tid=tid, uid=uid, gid=gid, flags=flags, comm=_json_text(comm), dfd=dfd,
            syscall=SYSCALL_NAMES.get(syscall, str(syscall)),
        )
        _put_text(record, "file", name)
        if self.path_of is not None:
            record["resolved"] = name.startswith(b"/")
        if truncated:
            record["truncated"] = True
        if read_error is not None:
            record["read_error"] = errno_name(-read_error)
        return "," + json.dumps(record, ensure_ascii=True, separators=(",", ":"))[1:-1]


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
