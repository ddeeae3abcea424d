"""`python -m openat` against the real kernel: the lines it prints are right."""

from __future__ import annotations

import json
import os
import re
import signal

import pytest

from ..support import ATTACH_FEATURES, kprobe_feature, skip_unless
from .conftest import Opener, program_ids_held_by, wait_until_unloaded

LINE = re.compile(
    rb"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) pid=(?P<pid>\d+) uid=(?P<uid>\d+) "
    rb"flags=(?P<flags>0x[0-9a-f]+) comm=(?P<comm>\S+) file=(?P<file>\S+) ret=(?P<ret>\S+)$"
)


def parse(line: bytes) -> dict:
    match = LINE.match(line)
    assert match, line
    return match.groupdict()


def test_openat_line_has_pid_uid_comm_flags_path_and_fd(run_tracer, opener, tmp_path, marker):
    tracer = run_tracer()
    path = bytes(tmp_path) + b"/" + marker
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = opener.open(path, flags)
    assert fd >= 0
    fields = parse(tracer.wait_for(marker))
    assert int(fields["pid"]) == opener.pid
    assert int(fields["uid"]) == os.getuid()
    assert fields["comm"] == opener.comm.encode()
    # os.open adds O_CLOEXEC (PEP 446); the kernel may add O_LARGEFILE.
    assert int(fields["flags"], 16) & ~0o100000 == flags | os.O_CLOEXEC
    assert fields["file"] == path
    assert fields["ret"] == str(fd).encode()


def test_failed_open_shows_errno_name(run_tracer, opener, tmp_path, marker):
    tracer = run_tracer()
    path = bytes(tmp_path) + b"/missing-" + marker
    assert opener.open(path) == -2
    assert parse(tracer.wait_for(marker))["ret"] == b"-2:ENOENT"


def test_openat2_flags_come_from_open_how(run_tracer, opener, tmp_path, marker):
    tracer = run_tracer()
    path = bytes(tmp_path) + b"/" + marker
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    fd = opener.openat2(path, flags)
    assert fd >= 0
    fields = parse(tracer.wait_for(marker))
    assert int(fields["flags"], 16) == flags
    assert int(fields["pid"]) == opener.pid
    assert fields["ret"] == str(fd).encode()


def test_json_output(run_tracer, opener, tmp_path, marker):
    tracer = run_tracer("--json")
    path = bytes(tmp_path) + b"/" + marker
    fd = opener.openat2(path, os.O_WRONLY | os.O_CREAT)
    record = json.loads(tracer.wait_for(marker))
    assert record["type"] == "open"
    assert record["pid"] == opener.pid and record["uid"] == os.getuid()
    assert record["comm"] == opener.comm
    assert record["file"] == os.fsdecode(path)
    assert record["flags"] == os.O_WRONLY | os.O_CREAT
    assert record["ret"] == fd
    assert record["syscall"] in ("openat2", "do_sys_openat2")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$", record["time"])


HOSTILE_NAMES = [
    b"new\nline",
    b"\x1b[2J\x1b[31mansi",
    b"not-utf8-\xff\xfe",
    b"x\n2026-02-21T12:34:56Z pid=1 uid=0 flags=0x0 comm=init file=shadow ret=3",
    b"space ret=0",
]


def test_hostile_names_cannot_forge_lines(run_tracer, opener, tmp_path, marker):
    from openat.tracer.output import unescape

    tracer = run_tracer()
    for index, hostile in enumerate(HOSTILE_NAMES):
        unique = marker + b"-%d-" % index
        path = bytes(tmp_path) + b"/" + unique + hostile
        assert opener.open(path, os.O_WRONLY | os.O_CREAT) >= 0
        line = tracer.wait_for(unique)
        fields = parse(line)
        assert unescape(fields["file"].decode("ascii")) == path
        assert all(32 <= byte < 127 for byte in line)
    # Nothing else in the output mentions the marker: no second, forged line.
    assert tracer.lines_with(marker, settle=0.5) == []


def test_name_longer_than_buffer_is_marked_truncated(run_tracer, opener, tmp_path, marker):
    tracer = run_tracer("--filename-size", "32")
    path = bytes(tmp_path) + b"/" + marker + b"-" + b"z" * 40
    opener.open(path)
    fields = parse(tracer.wait_for(path[:31]))
    assert fields["file"] == path[:31] + b"\\..."


def test_name_that_fills_buffer_exactly_is_not_truncated(run_tracer, opener, tmp_path, marker):
    tracer = run_tracer("--filename-size", "160")
    path = bytes(tmp_path) + b"/" + marker
    path += b"q" * (159 - len(path))
    assert len(path) == 159
    opener.open(path)
    assert parse(tracer.wait_for(marker))["file"] == path


CLEANUP_CASES = [
    pytest.param(signal.SIGINT, (), id="SIGINT"),
    pytest.param(signal.SIGTERM, (), id="SIGTERM"),
    pytest.param(signal.SIGINT, ("--attach", "kprobe", "--kprobe-interface", "tracefs"), id="SIGINT-kprobe_events"),
    pytest.param(signal.SIGTERM, ("--attach", "kprobe", "--kprobe-interface", "tracefs"), id="SIGTERM-kprobe_events"),
]


@pytest.mark.parametrize("sig,args", CLEANUP_CASES)
def test_signal_detaches_everything_and_reports_lost(run_tracer, sig, args):
    if args:
        skip_unless(kprobe_feature("tracefs"), "tracefs kprobe_events")
    tracer = run_tracer(*args)
    mine = program_ids_held_by(tracer.process.pid)
    assert len(mine) >= 1, "the tracer's programs should be loaded while it runs"
    ours_in_tracefs = f"openat_{tracer.process.pid}/"
    if args:
        assert ours_in_tracefs in kprobe_events(), "the forced legacy kprobes should be in kprobe_events"
    assert tracer.stop(sig) == 0
    assert not wait_until_unloaded(mine), "programs left loaded after exit"
    assert ours_in_tracefs not in kprobe_events(), "kprobe left in tracefs"
    assert any(re.search(r"\d+ events lost", line) for line in tracer.stderr_lines), tracer.stderr_lines
    assert not any("Traceback" in line for line in tracer.stderr_lines)


def kprobe_events() -> str:
    """Every probe in tracefs kprobe_events ("" where there is none)."""
    text = ""
    for path in ("/sys/kernel/tracing/kprobe_events", "/sys/kernel/debug/tracing/kprobe_events"):
        if os.path.exists(path):
            with open(path) as f:
                text += f.read()
    return text


def test_attach_choice_is_reported(run_tracer):
    tracer = run_tracer()
    chosen = [line for line in tracer.stderr_lines if "tracing opens via" in line]
    assert len(chosen) == 1
    if os.path.exists("/sys/bus/event_source/devices/kprobe/type"):
        # kprobes are the first choice wherever the kernel has them.
        assert chosen[0].startswith("openat: tracing opens via kprobe (do_sys_openat2")
    else:
        # On a kernel without kprobes, auto says why it skipped them.
        assert any(line.startswith("openat: skipped kprobe:") for line in tracer.stderr_lines)


ATTACH_CASES = [
    pytest.param("tp_btf", "auto", id="tp_btf"),
    pytest.param("raw_tp", "auto", id="raw_tp"),
    pytest.param("tracepoint", "auto", id="tracepoint"),
    pytest.param("kprobe", "pmu", id="kprobe-pmu"),
    pytest.param("kprobe", "tracefs", id="kprobe-kprobe_events"),
    pytest.param("fentry", "auto", id="fentry"),
]


@pytest.mark.parametrize("mode,kprobe_interface", ATTACH_CASES)
def test_each_attach_point_reports_opens(run_tracer, opener, tmp_path, marker, mode, kprobe_interface):
    """openat, openat2 and a failed open, through one tracer per attach point."""
    feature = kprobe_feature(kprobe_interface) if mode == "kprobe" else ATTACH_FEATURES[mode]()
    skip_unless(feature, f"{mode} ({kprobe_interface})")
    tracer = run_tracer("--attach", mode, "--kprobe-interface", kprobe_interface, "--json")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    cases = [
        (b"openat", opener.open, flags | os.O_CLOEXEC),  # os.open adds O_CLOEXEC (PEP 446)
        (b"openat2", opener.openat2, flags),
    ]
    for name, call, expected_flags in cases:
        path = bytes(tmp_path) + b"/" + marker + b"-" + name
        fd = call(path, flags)
        assert fd >= 0
        record = json.loads(tracer.wait_for(path))
        assert record["pid"] == opener.pid and record["tid"] == opener.pid
        assert record["uid"] == os.getuid()
        assert record["comm"] == opener.comm
        assert record["flags"] == expected_flags, (name, hex(record["flags"]))
        assert record["file"] == os.fsdecode(path)
        assert record["ret"] == fd
        assert record["syscall"] in (name.decode(), "do_sys_openat2")
    missing = bytes(tmp_path) + b"/missing-" + marker
    assert opener.open(missing) == -2
    record = json.loads(tracer.wait_for(missing))
    assert (record["ret"], record["error"]) == (-2, "ENOENT")
