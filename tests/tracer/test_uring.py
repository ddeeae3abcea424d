"""io_uring opens (IORING_OP_OPENAT, IORING_OP_OPENAT2), which no open syscall shows, with their results."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import openat.tracer.kernel_layout as kernel_layout
from openat.tracer.attach import Tracer
from openat.tracer.probe import Filters, ProbeOptions

from ..support import need_root
from .conftest import trace_command

URING = Path(__file__).with_name("uring.py")


def _uring(*args: str) -> list:
    return [sys.executable, str(URING), *args]


def _skip_without_io_uring(run) -> None:
    if any(line.startswith(b"unsupported ") for line in run.output):
        pytest.skip(f"io_uring refused here: {run.output[0].decode()}")
    if any("io_uring opens are not traced" in line for line in run.stderr):
        pytest.skip(f"this kernel cannot trace io_uring opens: {run.stderr}")


def test_io_uring_opens_in_text(tmp_path):
    target = tmp_path / "target"
    target.write_text("")
    run = trace_command(["--timestamp", "none"], _uring(str(target)))
    _skip_without_io_uring(run)
    lines = [line for line in run.lines if b" file=" + bytes(target) + b" " in line]
    results = [int(line.split()[2]) for line in run.output if line.startswith(b"openat")]
    assert len(lines) == 2 and all(line.endswith(b" via=io_uring") for line in lines), run.lines
    assert [line.split(b" ret=")[1].split()[0] for line in lines] == [str(r).encode() for r in results]


def test_failed_and_filtered_io_uring_opens(tmp_path):
    """-x keeps only failures (decided at completion); -F resolves against the request's dfd."""
    (tmp_path / "exists").write_text("")
    run = trace_command(["--json", "-x", "-F"], _uring("--dir", str(tmp_path), "missing", "exists"))
    _skip_without_io_uring(run)
    uring = [r for r in run.records() if r["via"] == "io_uring"]
    assert [(r["syscall"], r["file"], r["error"]) for r in uring] == [
        ("openat", f"{tmp_path}/missing", "ENOENT"), ("openat2", f"{tmp_path}/missing", "ENOENT")]
    bad = trace_command(["--json", "-F"], _uring("--bad-dfd", "name"))
    (first, second) = [r for r in bad.records() if r["via"] == "io_uring"]
    assert (first["file"], first["error"], first["dfd"], first["resolved"]) == ("name", "EBADF", 9999, False)


def test_a_pid_filter_applies_to_the_submitter(tmp_path):
    target = tmp_path / "target"
    target.write_text("")
    run = trace_command(["--json", "-p", "1"], _uring(str(target)))  # init's opens only: not the command's
    _skip_without_io_uring(run)
    assert not [r for r in run.records() if r["via"] == "io_uring"]


def test_a_kernel_without_the_tracepoints_is_said_once(monkeypatch):
    need_root()
    monkeypatch.setitem(kernel_layout.EXTRA_TRACEPOINTS, "io_uring", ("io_uring", ("openat_no_such_tracepoint",)))
    said = []
    with Tracer(attach="raw_tp", options=ProbeOptions(filters=Filters(pids=(os.getpid(),))), report=said.append) as tracer:
        tracer.start()
        assert not tracer.uring_programs
    about = [line for line in said if "io_uring" in line]
    assert len(about) == 1 and about[0].startswith("io_uring opens are not traced: no tracepoint io_uring/"), said
