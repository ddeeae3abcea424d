"""Turning events into lines a terminal, a pipe or a JSON parser can trust.

File names and comms are chosen by whoever runs a process, so they are
untrusted: a name holding a newline could forge a whole line, an ESC could
drive the terminal, a space or a blank-looking character could forge a
field. Every character that is not a visible glyph is escaped:

* ``\\\\`` for a backslash, so every other backslash starts an escape;
* ``\\xNN`` for an ASCII control byte, space, DEL, or a byte that is not part
  of valid UTF-8;
* ``\\u{XXXX}`` for a valid character that shows no glyph of its own: by
  Unicode category Cc, Cf, Cs, Co, Cn (C1 controls such as U+009B CSI,
  bidi overrides, zero-width characters, private use, unassigned), Zs, Zl,
  Zp (separators: no-break and ideographic spaces, line separators), a
  combining mark (Mn, Me) at the start of a field, where it would sit on
  the ``=`` before it; and :data:`BLANK_CHARACTERS`, which Unicode calls
  printable but which render as nothing (the Hangul fillers, the Braille
  blank, the default-ignorable marks).

The escaped form is reversible: :func:`unescape` gives back the bytes, and
refuses (:class:`EscapeError`) any text :func:`escape` never writes.
"""

from __future__ import annotations

import errno
import re
import struct
import time
from typing import Callable, Dict, Optional, Tuple

from .records import DIR_CUT, HEADER_SIZE, KIND_COMPLETE, OPERATION_NAMES, OpenEvent, decode_event, field_offset

# Bytes that need no thought: printable ASCII except space and backslash.
_PLAIN_BYTES = bytes(range(0x21, 0x7F)).replace(b"\\", b"")

# Printable by Unicode's categories, yet blank on a terminal: the fillers
# (Hangul, Braille blank, the musical null notehead) and the default-ignorable
# code points that are not format characters (the combining grapheme joiner,
# Khmer inherent vowels, Mongolian and Unicode variation selectors).
BLANK_CHARACTERS = frozenset(
    chr(code)
    for code in (
        0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180F, 0x2800, 0x3164, 0xFFA0, 0x1D159,
        *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0),
    )
)


def _escape_char(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that surrogateescape could not decode
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x80:
        return "\\\\" if char == "\\" else f"\\x{code:02x}"
    return f"\\u{{{code:04x}}}"


def _visible(char: str) -> bool:
    """Whether ``char`` may be written as itself anywhere but at the start of a field."""
    return char.isprintable() and char != " " and char != "\\" and char not in BLANK_CHARACTERS


def _is_combining(char: str) -> bool:
    if char < "\u0300":  # the first combining mark: ASCII and Latin-1 never need the table
        return False
    import unicodedata  # only names that start with a non-Latin-1 character pay for it

    return unicodedata.category(char) in ("Mn", "Me")


def escape(raw: bytes) -> str:
    """``raw`` as a single token of visible glyphs without spaces (see module doc)."""
    if not raw.translate(None, _PLAIN_BYTES):  # C-speed check: nothing to escape
        return raw.decode("ascii")
    text = raw.decode("utf-8", "surrogateescape")
    # Whole-string checks at C speed first: most non-ASCII names need no escape.
    if text.isprintable() and " " not in text and "\\" not in text and BLANK_CHARACTERS.isdisjoint(text):
        if not _is_combining(text[0]):
            return text
    first = _escape_char(text[0]) if _is_combining(text[0]) or not _visible(text[0]) else text[0]
    return first + "".join(char if _visible(char) else _escape_char(char) for char in text[1:])


class EscapeError(ValueError):
    """Text that :func:`escape` never writes, so no bytes it stands for."""


_UNESCAPE = re.compile(r"\\(?:(\\)|x([0-9a-f]{2})|u\{([0-9a-f]{4,6})\})|\\")


def unescape(text: str) -> bytes:
    """Invert :func:`escape`: the bytes ``text`` stands for.

    EscapeError (a ValueError) for anything :func:`escape` never writes: a
    backslash that starts no escape, a code point above U+10FFFF or a
    surrogate, or a character written in another form than escape's
    (``\\x41`` for ``A``, a raw space).
    """
    out = bytearray()
    position = 0
    for match in _UNESCAPE.finditer(text):
        out += _literal(text[position : match.start()], text)
        if match.group(1) is not None:
            out += b"\\"
        elif match.group(2) is not None:
            out.append(int(match.group(2), 16))
        elif match.group(3) is not None:
            out += _code_point(match.group(0))
        else:
            raise EscapeError(f"a backslash that starts no escape at {match.start()} in {text!r}")
        position = match.end()
    out += _literal(text[position:], text)
    raw = bytes(out)
    if escape(raw) != text:
        raise EscapeError(f"{text!r} is not what escape writes for these bytes (that is {escape(raw)!r})")
    return raw


def _literal(chunk: str, text: str) -> bytes:
    try:
        return chunk.encode("utf-8")
    except UnicodeEncodeError:
        raise EscapeError(f"a lone surrogate in {text!r}, which escape never writes") from None


def _code_point(escaped: str) -> bytes:
    code = int(escaped[3:-1], 16)
    if code > 0x10FFFF:
        raise EscapeError(f"{escaped} is beyond U+10FFFF, the last code point")
    if 0xD800 <= code <= 0xDFFF:
        raise EscapeError(f"{escaped} is a surrogate, which is no character")
    return chr(code).encode("utf-8")


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
        self._iso_zone = "Z"
        # the hot path binds the right one once: no test of the mode per line
        self.iso = self._iso_local if mode == "local" else self._iso_utc  # type: ignore[method-assign]

    def wall_ns(self, monotonic_ns: int) -> int:
        return monotonic_ns + self.offset_ns

    def text(self, monotonic_ns: int) -> Optional[str]:
        """The stamp for display, or None in mode ``none``."""
        if self.mode == "none":
            return None
        if self.mode == "relative":
            return self.seconds(monotonic_ns)
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
        """Full-precision RFC 3339 stamp (JSON's ``time``): UTC, or local time with its offset in mode ``local``."""
        return self._iso_local(monotonic_ns) if self.mode == "local" else self._iso_utc(monotonic_ns)

    def _iso_utc(self, monotonic_ns: int) -> str:
        seconds, nanos = divmod(monotonic_ns + self.offset_ns, 1_000_000_000)
        if seconds != self._iso_second:
            self._iso_second = seconds
            self._iso_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        return f"{self._iso_text}.{nanos:09d}Z"

    def _iso_local(self, monotonic_ns: int) -> str:
        seconds, nanos = divmod(monotonic_ns + self.offset_ns, 1_000_000_000)
        if seconds != self._iso_second:
            self._iso_second = seconds
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))
            self._iso_text, self._iso_zone = stamp[:-5], stamp[-5:-2] + ":" + stamp[-2:]  # RFC 3339: +hh:mm
        return f"{self._iso_text}.{nanos:09d}{self._iso_zone}"

    def seconds(self, monotonic_ns: int) -> str:
        """Seconds since start with microseconds, as a JSON number (mode ``relative``)."""
        return f"{(monotonic_ns - self.start_monotonic_ns) / 1e9:.6f}"


# ---------------------------------------------------------------- formatting


def errno_name(number: int) -> str:
    """``ENOENT`` for 2; ``E999`` for a number this system has no name for."""
    return errno.errorcode.get(number, f"E{number}")


def format_return(ret: int) -> str:
    """``3`` for an fd, ``-2:ENOENT`` for an error (number first, then name)."""
    if ret >= 0:
        return str(ret)
    return f"{ret}:{errno_name(-ret)}"


class _TailStructs(dict):
    """Record length -> Struct giving ``(timestamp_ns, tail)`` in one call,
    where the tail is every byte of the record from ``skip`` on.

    Everything a line shows except its stamp is a function of those bytes
    (the timestamp and, for text, the tid come before them), so the tail is
    the key of a cache of whole formatted lines. Lengths are bounded by the
    probe's name buffer.
    """

    def __init__(self, skip: int) -> None:
        super().__init__()
        self.skip = skip

    def __missing__(self, length: int) -> struct.Struct:
        if length < HEADER_SIZE:
            raise ValueError(f"record of {length} bytes is shorter than the {HEADER_SIZE}-byte header")
        value = self[length] = struct.Struct(f"<Q{self.skip - 8}x{length - self.skip}s")
        return value


FULL_PATH_SOURCES = ("kernel", "proc")


def _path_function(full_path: Optional[str]) -> Optional[Callable[[OpenEvent], bytes]]:
    """What ``-F`` makes of an event's name: from the probe's walk (``kernel``), from /proc now (``proc``), or nothing."""
    if full_path is None:
        return None
    if full_path not in FULL_PATH_SOURCES:
        raise ValueError(f"unknown full path source {full_path!r}; choose one of {', '.join(FULL_PATH_SOURCES)}")
    from .paths import full_path as from_proc, kernel_path

    return kernel_path if full_path == "kernel" else from_proc


class _FlagNames(dict):
    """flags -> ["O_WRONLY", "O_CREAT", ...] (or "O_WRONLY|O_CREAT" as text), cached."""

    def __init__(self, machine: Optional[str], joined: bool) -> None:
        super().__init__()
        self.machine = machine
        self.joined = joined

    def __missing__(self, flags: int):
        from .flags import flag_names

        names = flag_names(flags, self.machine)
        value = self[flags] = "|".join(names) if self.joined else names
        return value


class TextFormatter:
    """The seed's line: ``TIME pid= uid= flags= comm= file=`` then ``ret=``.

    ``show_tid`` adds ``tid=`` after ``pid=``; ``flag_names`` writes the
    flags as names (``O_WRONLY|O_CREAT``) instead of hex; ``full_path``
    (``kernel`` or ``proc``, see :mod:`openat.tracer.paths`) makes names
    absolute. An io_uring open ends in ``via=io_uring``.

    ``formatter(event)`` formats an :class:`OpenEvent`; ``from_buffer`` and
    ``from_record`` format a raw ring-buffer record, the consumer's hot path:
    one unpack, one cache lookup of the rest of the line, the stamp. Both
    make the line with :meth:`_body` and :meth:`_with_stamp`, so they
    cannot disagree. Only ``full_path="proc"``, which reads /proc when the
    line is made, takes the slow path for every record.
    """

    def __init__(self, clock: Clock, *, full_path: Optional[str] = None, show_tid: bool = False,
                 flag_names: bool = False, machine: Optional[str] = None) -> None:
        self.clock = clock
        self.path_of = _path_function(full_path)
        self.per_event = full_path == "proc"  # the line depends on more than the record
        self.kernel_paths = full_path == "kernel"
        self.show_tid = show_tid
        # without --tid the line never shows the tid: it is not part of the cache key
        self._tails = _TailStructs(field_offset("tid" if show_tid else "pid"))
        self._flags = _FlagNames(machine, joined=True) if flag_names else None
        self._names = _BoundedCache(escape)
        # record tail -> "pid=… file=… ret=…": repeated opens cost one lookup
        self._bodies = _BoundedCache(self._body_of_tail)
        self._stamped = clock.mode in ("utc", "local")
        # Monotonic span [from, until) that self._stamp covers; empty until the first line.
        self._stamp_from, self._stamp_until, self._stamp = 0, 0, ""

    def __call__(self, event: OpenEvent) -> str:
        return self._with_stamp(event.timestamp_ns, self._body(event))

    def from_record(self, record: "bytes | memoryview") -> str:
        """The line for one raw ring-buffer record."""
        return self.from_buffer(record, 0, len(record))

    def from_buffer(self, buffer: "bytes | memoryview", offset: int, length: int) -> str:
        """The line for the record of ``length`` bytes at ``offset`` in ``buffer``."""
        if self.per_event:  # resolving a path from /proc needs the whole event, now
            return self(decode_event(bytes(buffer[offset : offset + length])))
        timestamp_ns, tail = self._tails[length].unpack_from(buffer, offset)
        body = self._bodies[tail]
        if self._stamp_from <= timestamp_ns < self._stamp_until:
            return f"{self._stamp} {body}"  # what _with_stamp makes of it, without the call
        return self._with_stamp(timestamp_ns, body)

    def _body_of_tail(self, tail: bytes) -> str:
        return self._body(decode_event(bytes(self._tails.skip) + tail))

    def _body(self, event: OpenEvent) -> str:
        """The line after its stamp: ``pid=… uid=… flags=… comm=… file=…`` and ``ret=…``."""
        if event.read_error is not None:
            file_text = f"\\?{errno_name(-event.read_error)}"
        else:
            name = event.filename if self.path_of is None else self.path_of(event)
            file_text = self._names[name] + ("\\..." if event.truncated else "")
            if self.kernel_paths and event.dir_state == DIR_CUT and not event.filename.startswith(b"/"):
                file_text = "\\.../" + file_text  # the top of the path is missing
        comm = event.comm.split(b"\0", 1)[0]
        flags = f"{event.flags:#x}" if self._flags is None else self._flags[event.flags]
        tid = f" tid={event.tid}" if self.show_tid else ""
        body = f"pid={event.pid}{tid} uid={event.uid} flags={flags} comm={escape(comm)} file={file_text}"
        if event.kind == KIND_COMPLETE:
            body += f" ret={format_return(event.ret)}"
        if event.via_io_uring:
            body += " via=io_uring"
        return body

    def _with_stamp(self, timestamp_ns: int, body: str) -> str:
        """``body`` behind its stamp, in the clock's mode."""
        stamp = self.clock.text(timestamp_ns)
        if stamp is None:
            return body
        if self._stamped:  # wall-clock stamps change once a second: remember this one's span
            second_ns = (timestamp_ns + self.clock.offset_ns) // 1_000_000_000 * 1_000_000_000
            self._stamp_from = second_ns - self.clock.offset_ns
            self._stamp_until = self._stamp_from + 1_000_000_000
            self._stamp = stamp
        return f"{stamp} {body}"


class JsonFormatter:
    """One JSON object per line: every field the record holds (docs/openat.md lists them, with types).

    ``json.dumps`` with ``ensure_ascii`` writes every control and non-ASCII
    character as ``\\uXXXX``, so the line is plain ASCII. A name or comm that
    is not valid UTF-8 gets ``\\xNN`` escapes and ``file_hex``/``comm_hex``
    with its exact bytes. ``cgroups`` (a :class:`~openat.tracer.containers.CgroupNames`)
    adds the container fields.
    """

    def __init__(self, clock: Clock, *, full_path: Optional[str] = None, cgroups=None,
                 machine: Optional[str] = None) -> None:
        import json  # only --json needs it: text output starts ~2 ms sooner without

        self._dumps = json.dumps
        self.clock = clock
        self.path_of = _path_function(full_path)
        self.per_event = full_path == "proc"
        self.kernel_paths = full_path == "kernel"
        self.cgroups = cgroups
        self._tails = _TailStructs(field_offset("tid"))
        self._flags = _FlagNames(machine, joined=False)
        # record tail -> the object's text after its stamps: repeated opens reuse it
        self._bodies = _BoundedCache(self._body_of_tail)

    def from_record(self, record: "bytes | memoryview") -> str:
        """The line for one raw ring-buffer record."""
        return self.from_buffer(record, 0, len(record))

    def from_buffer(self, buffer: "bytes | memoryview", offset: int, length: int) -> str:
        """The line for the record of ``length`` bytes at ``offset`` in ``buffer``."""
        if self.per_event:
            return self(decode_event(bytes(buffer[offset : offset + length])))
        timestamp_ns, tail = self._tails[length].unpack_from(buffer, offset)
        return self._head(timestamp_ns) + self._bodies[tail]

    def __call__(self, event: OpenEvent) -> str:
        return self._head(event.timestamp_ns) + self._body(event)

    def _head(self, timestamp_ns: int) -> str:
        # Built from JSON fragments in the order one json.dumps of the whole
        # object would give: "type", the stamps, then the body.
        mode = self.clock.mode
        if mode == "none":
            return '{"type":"open"'
        head = f'{{"type":"open","time":"{self.clock.iso(timestamp_ns)}"'
        if mode == "relative":
            head += f',"relative":{self.clock.seconds(timestamp_ns)}'
        return head

    def _body_of_tail(self, tail: bytes) -> str:
        return self._body(decode_event(bytes(self._tails.skip) + tail))

    def _body(self, event: OpenEvent) -> str:
        record: dict = dict(pid=event.pid, tid=event.tid, uid=event.uid, gid=event.gid, flags=event.flags,
                            flag_names=self._flags[event.flags])
        _put_text(record, "comm", event.comm)
        record["dfd"] = event.dfd
        record["syscall"] = OPERATION_NAMES.get(event.syscall, str(event.syscall))
        record["via"] = "io_uring" if event.via_io_uring else "syscall"
        name = event.filename if self.path_of is None or event.read_error is not None else self.path_of(event)
        _put_text(record, "file", name)
        if self.path_of is not None:
            record["resolved"] = name.startswith(b"/")
            if self.kernel_paths and event.dir_state == DIR_CUT and not event.filename.startswith(b"/"):
                record["path_cut"] = True
        if event.truncated:
            record["truncated"] = True
        if event.read_error is not None:
            record["read_error"] = errno_name(-event.read_error)
        if event.kind == KIND_COMPLETE:
            record["ret"] = event.ret
            if event.ret < 0:
                record["error"] = errno_name(-event.ret)
        if self.cgroups is not None:
            self._put_container(record, event)
        return "," + self._dumps(record, ensure_ascii=True, separators=(",", ":"))[1:]

    def _put_container(self, record: dict, event: OpenEvent) -> None:
        from .containers import container_id

        path = self.cgroups.path(event.cgroup_id)
        record["cgroup_id"] = event.cgroup_id
        record["cgroup"] = path
        record["container"] = container_id(path) if path is not None else None
        record["mntns"] = event.mntns_id or None


def _put_text(record: dict, key: str, raw: bytes) -> None:
    """``record[key]`` = ``raw`` as text; when it is not UTF-8, with ``\\xNN`` escapes, and ``key_hex`` = its exact bytes."""
    try:
        record[key] = raw.decode("utf-8")
    except UnicodeDecodeError:
        record[key] = raw.decode("utf-8", "backslashreplace")
        record[key + "_hex"] = raw.hex()


def lost_record(count: int, total: int) -> str:
    """The JSON line that reports lost events."""
    import json

    return json.dumps({"type": "lost", "count": count, "total": total}, separators=(",", ":"))
