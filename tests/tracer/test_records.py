"""The record layout: one definition, the decoder derived from it."""

import struct
import subprocess
import sys

import pytest

from openat.tracer import schema
from openat.tracer.records import (
    HEADER_SIZE,
    HEADER_STRUCT,
    KIND_COMPLETE,
    KIND_ENTRY,
    OpenEvent,
    decode_event,
    encode_event,
    field_offset,
)
from openat.tracer.schema import EVENT_HEADER, INFLIGHT

from ..support import make_event


def test_derived_decoder_matches_construct_definition():
    event = make_event()
    raw = encode_event(event)  # built by construct
    fields = HEADER_STRUCT.unpack_from(raw)  # read by the derived struct
    parsed = EVENT_HEADER.parse(raw)
    names = [sub.name for sub in EVENT_HEADER.subcons]
    assert [parsed[name] for name in names] == list(fields)
    assert HEADER_SIZE == EVENT_HEADER.sizeof() == HEADER_STRUCT.size


def test_generated_layout_is_current():
    """openat/_layout.py is what ``python -m openat.tracer.schema`` makes of the definitions now."""
    assert schema.LAYOUT_FILE.read_text() == schema.render_layout(), "stale: run python -m openat.tracer.schema"
    assert schema.main(["--check"]) == 0


def test_layout_offsets_match_construct():
    """Offsets from the generated file equal what construct builds."""
    from openat.tracer._layout import INFLIGHT_OFFSETS, INFLIGHT_SIZE

    assert INFLIGHT_SIZE == INFLIGHT.sizeof()
    raw = INFLIGHT.build(dict(filename_ptr=1, flags=2, timestamp_ns=3, dfd=-4, syscall=5))
    for name, value in (("filename_ptr", 1), ("flags", 2), ("timestamp_ns", 3)):
        assert struct.unpack_from("<Q", raw, field_offset(name, INFLIGHT_OFFSETS))[0] == value
    assert struct.unpack_from("<iI", raw, field_offset("dfd", INFLIGHT_OFFSETS)) == (-4, 5)


def test_stale_layout_is_reported(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "_layout.py"
    stale.write_text(schema.render_layout().replace("EVENT_SIZE = 72", "EVENT_SIZE = 64"))
    monkeypatch.setattr(schema, "LAYOUT_FILE", stale)
    assert schema.main(["--check"]) == 1
    assert "stale" in capsys.readouterr().err
    assert schema.main([]) == 0  # rewrites it
    assert stale.read_text() == schema.render_layout()


def test_tracing_never_imports_construct():
    """construct costs ~7 MB of RSS: the tracer's whole run-time path goes without it."""
    code = (
        "import sys\n"
        "import openat.tracer.cli, openat.tracer.attach, openat.tracer.output, openat.tracer.records, openat.tracer.probe, openat.tracer.paths\n"
        "from openat.tracer.attach import open_btf\n"
        "from openat.tracer.kernel_layout import discover_layout\n"
        "discover_layout(None, open_btf())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'construct'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_field_offsets_follow_definition():
    assert field_offset("timestamp_ns") == 0
    # pid_tgid's low half is the tid: one 64-bit store fills tid then pid.
    assert field_offset("pid") == field_offset("tid") + 4
    assert field_offset("gid") == field_offset("uid") + 4
    assert field_offset("kind") + 4 == HEADER_SIZE
    with pytest.raises(KeyError):
        field_offset("nonexistent")


@pytest.mark.parametrize(
    "event",
    [
        make_event(),
        make_event(kind=KIND_ENTRY, ret=0),
        make_event(filename=b"", comm=b"x" * 16),
        make_event(filename=b"\xff\n\x1b", ret=-2),
        make_event(truncated=True, filename=b"a" * 255),
        make_event(filename=b"", read_error=-14),
    ],
)
def test_round_trip(event):
    assert decode_event(encode_event(event)) == event


def test_name_that_exactly_fills_buffer_is_not_truncated():
    raw = encode_event(make_event(filename=b"b" * 255))
    assert len(raw) == HEADER_SIZE + 256
    assert not decode_event(raw).truncated


def test_name_length_never_read_past_record():
    raw = bytearray(encode_event(make_event(filename=b"abc")))
    struct.pack_into("<i", raw, field_offset("filename_len"), 10_000)
    event = decode_event(bytes(raw))
    assert event.filename == b"abc" and event.truncated


def test_short_record_is_rejected():
    with pytest.raises(ValueError, match="shorter than"):
        decode_event(b"\0" * (HEADER_SIZE - 1))
