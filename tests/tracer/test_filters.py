"""Each filter, compiled into the probe, against the real kernel.

Every test makes opens that must appear and opens that must not, from
children whose identity the filter tells apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import Opener, cgroup2_root
from .test_end_to_end import parse


def names(tmp_path, marker: bytes, *suffixes: str):
    return [bytes(tmp_path) + b"/" + marker + b"-" + s.encode() for s in suffixes]


def test_pid_filter_keeps_only_listed_processes(run_tracer, tmp_path, marker):
    wanted, other, also = Opener("wanted"), Opener("other"), Opener("also")
    try:
        # 4294967295: the top of the range compiles (a 32-bit compare) and matches nobody here
        tracer = run_tracer("-p", str(wanted.pid), "--pid", str(also.pid), "-p", "4294967295")
        a, b, c = names(tmp_path, marker, "a", "b", "c")
        other.open(b)
        wanted.open(a)
        also.open(c)
        seen = {parse(line)["file"] for line in tracer.lines_until(marker, c)}
        assert seen == {a, c}
    finally:
        for child in (wanted, other, also):
            child.close()


def test_tid_filter(run_tracer, tmp_path, marker):
    wanted, other = Opener("t1"), Opener("t2")
    try:
        # A single-threaded child's only thread has tid == pid.
        tracer = run_tracer("-t", str(wanted.pid))
        a, b = names(tmp_path, marker, "a", "b")
        other.open(b)
        wanted.open(a)
        seen = {parse(line)["file"] for line in tracer.lines_until(marker, a)}
        assert seen == {a}
    finally:
        wanted.close()
        other.close()


# 4294967294 is the highest uid a process can take (-1 means "unchanged"):
# above 2**31, where a 64-bit compare would sign-extend the immediate.
@pytest.mark.parametrize("uid", [65534, 4294967294])
def test_uid_filter(run_tracer, tmp_path, marker, uid):
    os.chmod(tmp_path, 0o777)
    tracer = run_tracer("-u", str(uid))
    a, b = names(tmp_path, marker, "nobody", "root")
    code = "import os,sys; os.setuid(int(sys.argv[2]))\n" \
           "try:\n  os.open(sys.argv[1], os.O_WRONLY|os.O_CREAT, 0o600)\nexcept OSError: pass"
    with open(b, "w"):  # root: must not appear
        pass
    subprocess.run([sys.executable, "-c", code, a, str(uid)], check=True)
    lines = tracer.lines_until(marker, a)
    assert [parse(line)["file"] for line in lines] == [a]
    assert parse(lines[0])["uid"] == str(uid).encode()


def test_uid_filter_accepts_user_names(run_tracer, tmp_path, marker):
    tracer = run_tracer("-u", "root")
    (path,) = names(tmp_path, marker, "byname")
    with open(path, "w"):
        pass
    assert parse(tracer.wait_for(marker))["uid"] == b"0"


def test_comm_filter_matches_whole_comm(run_tracer, tmp_path, marker):
    exact, longer = Opener("catty"), Opener("cattywampus")
    try:
        tracer = run_tracer("-n", "catty")
        a, b = names(tmp_path, marker, "exact", "longer")
        longer.open(b)
        exact.open(a)
        lines = tracer.lines_until(marker, a)
        assert [parse(line)["file"] for line in lines] == [a]
        assert parse(lines[0])["comm"] == b"catty"
    finally:
        exact.close()
        longer.close()


def test_failed_only(run_tracer, opener, tmp_path, marker):
    tracer = run_tracer("-x")
    ok, missing = names(tmp_path, marker, "ok", "missing")
    assert opener.open(ok, os.O_WRONLY | os.O_CREAT) >= 0
    assert opener.open(missing) == -2
    lines = tracer.lines_until(marker, missing)
    assert [parse(line)["file"] for line in lines] == [missing]
    assert parse(lines[0])["ret"] == b"-2:ENOENT"


def test_flag_filter_any_of_listed_flags(run_tracer, opener, tmp_path, marker):
    tracer = run_tracer("-f", "O_WRONLY,O_TRUNC", "-p", str(opener.pid))  # not our own set-up opens
    ro, wo, rw_trunc, rw = names(tmp_path, marker, "ro", "wo", "rwtrunc", "rw")
    for path in (ro, wo, rw_trunc, rw):
        with open(path, "w"):
            pass
    opener.open(ro, os.O_RDONLY)
    opener.open(rw, os.O_RDWR)
    opener.open(wo, os.O_WRONLY)
    opener.open(rw_trunc, os.O_RDWR | os.O_TRUNC)
    seen = {parse(line)["file"] for line in tracer.lines_until(marker, rw_trunc)}
    assert seen == {wo, rw_trunc}


def test_o_rdonly_filter_selects_read_only_opens(run_tracer, opener, tmp_path, marker):
    # BCC's flag mask makes O_RDONLY (0) drop everything; here it is an access mode.
    tracer = run_tracer("-f", "O_RDONLY", "-p", str(opener.pid))
    ro, wo = names(tmp_path, marker, "ro", "wo")
    for path in (ro, wo):
        with open(path, "w"):
            pass
    opener.open(wo, os.O_WRONLY)
    opener.open(ro, os.O_RDONLY)
    seen = {parse(line)["file"] for line in tracer.lines_until(marker, ro)}
    assert seen == {ro}


def test_cgroup_filter_keeps_processes_in_that_tree(run_tracer, tmp_path, marker):
    root = cgroup2_root()
    group = os.path.join(root, f"openat-test-{marker.decode()}")
    child_group = os.path.join(group, "inner")
    os.makedirs(child_group)
    inside, outside = Opener("inside"), Opener("outside")
    try:
        with open(os.path.join(child_group, "cgroup.procs"), "w") as procs:
            procs.write(str(inside.pid))
        tracer = run_tracer("--cgroup", group)
        a, b = names(tmp_path, marker, "inside", "outside")
        outside.open(b)
        inside.open(a)
        seen = {parse(line)["file"] for line in tracer.lines_until(marker, a)}
        assert seen == {a}
    finally:
        inside.close()
        outside.close()
        os.rmdir(child_group)
        os.rmdir(group)


def test_full_path_resolves_cwd_and_dir_fd(run_tracer, opener, tmp_path, marker):
    tracer = run_tracer("-F", "-p", str(opener.pid))
    rel = marker + b"-rel"
    at_dir = marker + b"-atdir"
    (tmp_path / os.fsdecode(rel)).touch()
    (tmp_path / os.fsdecode(at_dir)).touch()
    opener.open_relative(bytes(tmp_path), rel)
    assert parse(tracer.wait_for(rel))["file"] == bytes(tmp_path) + b"/" + rel
    opener.open_at_dir(bytes(tmp_path), at_dir)
    assert parse(tracer.wait_for(at_dir))["file"] == bytes(tmp_path) + b"/" + at_dir


def test_without_full_path_relative_names_stay_relative(run_tracer, opener, tmp_path, marker):
    tracer = run_tracer("-p", str(opener.pid))
    rel = marker + b"-rel"
    (tmp_path / os.fsdecode(rel)).touch()
    opener.open_relative(bytes(tmp_path), rel)
    assert parse(tracer.wait_for(rel))["file"] == rel


def test_duration_stops_by_itself(run_tracer):
    tracer = run_tracer("-d", "1")
    assert tracer.process.wait(timeout=20) == 0
    assert any("events lost" in line for line in tracer.stderr_lines)


@pytest.mark.parametrize("mode,pattern", [
    ("relative", rb"^\d+\.\d{6} pid="),
    ("none", rb"^pid="),
    ("local", rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d pid="),
])
def test_timestamp_modes(run_tracer, opener, tmp_path, marker, mode, pattern):
    import re

    tracer = run_tracer("--timestamp", mode)
    opener.open(bytes(tmp_path) + b"/" + marker, os.O_WRONLY | os.O_CREAT)
    assert re.match(pattern, tracer.wait_for(marker))


def test_lost_events_are_counted_and_reported(run_tracer, tmp_path, marker):
    # A 4 KiB ring holds a few dozen records: a burst of opens overflows it
    # before the reader's next poll, so events are lost and must be reported.
    tracer = run_tracer("--json", "--ring-size", "4096")
    path = bytes(tmp_path) + b"/" + marker
    with open(path, "w"):
        pass
    burst = "import os,sys\nfor _ in range(20000): os.close(os.open(sys.argv[1], os.O_RDONLY))"
    subprocess.run([sys.executable, "-c", burst, path], check=True)
    lost_records = [json.loads(line) for line in tracer.lines_with(b'"type":"lost"', settle=2.0)]
    assert lost_records and all(r["count"] > 0 for r in lost_records)
    assert tracer.stop() == 0
    assert any("events lost" in line and not line.startswith("openat: 0 ") for line in tracer.stderr_lines)


BAD_INPUT = [
    (["-f", "O_BOGUS"], "unknown open flag"),
    (["-f", ""], "empty flag list"),
    (["-f", "O_WRONLY,"], "empty flag name"),
    (["-f", "O_WRONLY,,O_CREAT"], "empty flag name"),
    (["-p", "4294967296"], "pid must be 0..4294967295"),
    (["--"], "must be followed by a command"),
    (["-o", "/nonexistent/dir/trace"], "-o /nonexistent/dir/trace: No such file or directory"),
    (["-d", "1", "--", "true"], "exclude each other"),
    (["-p", "-5"], "pid must be"),
    (["-p", "abc"], "pid must be a number"),
    (["--bogus-option"], "unrecognized arguments"),
    (["--cgroup", "/nonexistent/cgroup"], "no such directory"),
    (["--cgroup", "/tmp"], "not a cgroup v2 directory"),
    (["-u", "no-such-user-here"], "no such user"),
    (["-n", "a-comm-longer-than-15"], "1 to 15 bytes"),
    (["--ring-size", "5000"], "power of two"),
    (["--filename-size", "1"], "out of range"),
    (["-d", "0"], "must be positive"),
    (["--attach", "uprobe"], "invalid choice"),
]


@pytest.mark.parametrize("args,message", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_exit_2_nothing_loaded(args, message):
    result = subprocess.run([sys.executable, "-m", "openat", *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
