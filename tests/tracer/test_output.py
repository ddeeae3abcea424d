"""Untrusted names never forge a line, a field or a terminal escape."""

import errno
import json
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openat.tracer.output import TIMESTAMP_MODES, Clock, JsonFormatter, TextFormatter, escape, format_return, unescape
from openat.tracer.records import KIND_COMPLETE, KIND_ENTRY, OpenEvent, encode_event, field_offset

from ..support import make_event

LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ pid=\d+ uid=\d+ flags=0x[0-9a-f]+ comm=\S* file=\S*( ret=\S+)?$"
)


def event(name: bytes, comm: bytes = b"cat", **changes) -> OpenEvent:
    """An open of ``name`` by ``comm`` (pid 10, tid 11, uid 1000, flags 0) stamped now."""
    fields = dict(timestamp_ns=Clock().start_monotonic_ns, tid=11, pid=10, uid=1000, gid=1000, flags=0)
    fields.update(changes)
    return make_event(filename=name, comm=comm, **fields)


HOSTILE = [
    b"/tmp/a\nb",
    b"/tmp/x\n2026-02-21T12:34:56Z pid=1 uid=0 flags=0x0 comm=init file=/etc/shadow",
    b"/tmp/\x1b[2J\x1b[31mred",
    b"/tmp/\xff\xfe\x80",
    b"/tmp/with space ret=0",
    b"/tmp/back\\x41slash",
    "/tmp/\u202egnp.exe".encode(),
    "/tmp/\u009b31m".encode(),
    b"/tmp/\r\t\x00\x7f",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_stay_on_one_well_formed_line(name):
    line = TextFormatter(Clock())(event(name, comm=name[:16]))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert line.isprintable()
    assert LINE.match(line), line
    file_field = line.split(" file=", 1)[1].rsplit(" ret=", 1)[0]
    assert unescape(file_field) == name


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_in_json(name):
    text = JsonFormatter(Clock())(event(name))
    assert text.isascii() and "\n" not in text
    record = json.loads(text)
    if "file_hex" in record:
        assert bytes.fromhex(record["file_hex"]) == name
    else:
        assert record["file"].encode() == name


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_escape_is_reversible_and_printable(raw):
    text = escape(raw)
    assert unescape(text) == raw
    assert text.isprintable() and " " not in text


def test_seed_line_format():
    line = TextFormatter(Clock())(event(b"/etc/hosts", kind=KIND_ENTRY))
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ pid=10 uid=1000 flags=0x0 comm=cat file=/etc/hosts$", line)


def test_truncated_and_unreadable_names_are_marked():
    formatter = TextFormatter(Clock())
    assert formatter(event(b"/long", truncated=True)).endswith("file=/long\\... ret=3")
    assert formatter(event(b"", read_error=-14)).endswith("file=\\?EFAULT ret=3")
    assert formatter(event(b"/in", kind=KIND_ENTRY)).endswith("file=/in")


def test_return_values():
    assert format_return(3) == "3"
    assert format_return(-2) == "-2:ENOENT"
    line = TextFormatter(Clock())(event(b"/nope", ret=-13))
    assert line.endswith(" ret=-13:EACCES")


@pytest.mark.parametrize("mode", ["utc", "local", "relative", "none"])
def test_timestamp_modes(mode):
    clock = Clock(mode)
    line = TextFormatter(clock)(event(b"/x"))
    if mode == "none":
        assert line.startswith("pid=")
    elif mode == "relative":
        assert re.match(r"^-?\d+\.\d{6} pid=", line)
    elif mode == "utc":
        assert re.match(r"^\S+Z pid=", line)
    else:
        assert re.match(r"^\S+[+-]\d\d:\d\d pid=", line)


def test_unknown_timestamp_mode():
    with pytest.raises(ValueError, match="unknown timestamp mode"):
        Clock("martian")


@settings(max_examples=300, deadline=None)
@given(
    name=st.binary(max_size=40),
    comm=st.binary(max_size=15).map(lambda c: c.replace(b"\0", b"")),
    ret=st.integers(-4095, 2**31),
    flags=st.integers(0, 2**32),
    truncated=st.booleans(),
    unreadable=st.booleans(),
)
def test_record_fast_path_equals_event_path(name, comm, ret, flags, truncated, unreadable):
    from openat.tracer.records import decode_event, encode_event

    original = event(name.replace(b"\0", b""), comm=comm, ret=ret, flags=flags, truncated=truncated and not unreadable,
                     read_error=-14 if unreadable else None)
    if unreadable:
        original = original._replace(filename=b"")
    raw = encode_event(original)
    for mode in TIMESTAMP_MODES:
        formatter = TextFormatter(Clock(mode))
        # Twice: the second line comes from the caches and the remembered stamp.
        assert formatter.from_record(raw) == formatter.from_record(raw) == formatter(decode_event(raw)) == formatter(original)
    json_formatter = JsonFormatter(Clock())
    line = json_formatter.from_record(raw)
    assert line == json_formatter.from_record(raw) == json_formatter(original)
    assert line.isascii() and "\n" not in line
    expected = {"type": "open", "time": json_formatter.clock.iso(original.timestamp_ns), "pid": original.pid, "tid": original.tid,
                "uid": original.uid, "gid": original.gid, "flags": original.flags,
                "comm": original.comm.decode("utf-8", "backslashreplace"), "dfd": original.dfd, "syscall": "openat",
                "file": original.filename.decode("utf-8", "backslashreplace")}
    try:
        original.filename.decode("utf-8")
    except UnicodeDecodeError:
        expected["file_hex"] = original.filename.hex()
    if original.truncated:
        expected["truncated"] = True
    if original.read_error is not None:
        expected["read_error"] = "EFAULT"
    expected["ret"] = original.ret
    if original.ret < 0:
        expected["error"] = errno.errorcode.get(-original.ret, f"E{-original.ret}")
    parsed = json.loads(line)
    assert parsed == expected and list(parsed) == list(expected)


def test_remembered_stamp_changes_with_the_second():
    clock = Clock("utc")
    formatter = TextFormatter(clock)
    second_start = (clock.start_monotonic_ns + clock.offset_ns) // 10**9 * 10**9 - clock.offset_ns + 10**9
    lines = [formatter.from_record(encode_event(event(b"/x")._replace(timestamp_ns=second_start + delta)))
             for delta in (-1, 0, 10**9 - 1, 10**9)]
    stamps = [line.split()[0] for line in lines]
    assert stamps[0] != stamps[1] == stamps[2] != stamps[3]
    assert [TextFormatter(clock).from_record(encode_event(event(b"/x")._replace(timestamp_ns=second_start + delta)))
            for delta in (-1, 0, 10**9 - 1, 10**9)] == lines


def test_comm_bytes_after_its_nul_are_ignored():
    """A comm read straight from the task may hold old bytes after its NUL."""
    raw = bytearray(encode_event(event(b"/x", comm=b"cat")))
    raw[field_offset("comm") : field_offset("comm") + 16] = b"cat\0old-garbage\x1b"
    formatter = TextFormatter(Clock("none"))
    assert " comm=cat " in formatter.from_record(bytes(raw))
    assert json.loads(JsonFormatter(Clock("none")).from_record(bytes(raw)))["comm"] == "cat"


def test_json_says_whether_a_full_path_was_resolved():
    formatter = JsonFormatter(Clock(), path_of=lambda event: event.filename)
    assert json.loads(formatter(event(b"relative")))["resolved"] is False
    assert json.loads(formatter(event(b"/abs")))["resolved"] is True
    assert "resolved" not in json.loads(JsonFormatter(Clock())(event(b"relative")))


def test_iso_stamp_follows_the_second():
    clock = Clock("utc")
    for monotonic_ns in (clock.start_monotonic_ns, clock.start_monotonic_ns + 999_999_999, clock.start_monotonic_ns + 10**9,
                         clock.start_monotonic_ns - 1, clock.start_monotonic_ns + 86_400 * 10**9):
        seconds, nanos = divmod(monotonic_ns + clock.offset_ns, 10**9)
        assert clock.iso(monotonic_ns) == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"
