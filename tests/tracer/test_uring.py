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


def test_io_uring_opens_in_json(tmp_path):
    """Successes and failures, relative to the request's dfd (-F resolves against it), a dfd that is not open."""
    (tmp_path / "exists").write_text("")
    script = f"{sys.executable} {URING} --dir {tmp_path} missing exists && {sys.executable} {URING} --bad-dfd name"
    run = trace_command(["--json", "-F"], ["sh", "-c", script])
    _skip_without_io_uring(run)
    uring = [(r["syscall"], r["file"], r.get("error"), r["ret"] >= 0) for r in run.records() if r["via"] == "io_uring"]
    assert uring == [
        ("openat", f"{tmp_path}/missing", "ENOENT", False), ("openat2", f"{tmp_path}/missing", "ENOENT", False),
        ("openat", f"{tmp_path}/exists", None, True), ("openat2", f"{tmp_path}/exists", None, True),
        ("openat", "name", "EBADF", False), ("openat2", "name", "EBADF", False)]
    results = [int(line.split()[2]) for line in run.output if line.startswith(b"openat")]
    assert [r["ret"] for r in run.records() if r["via"] == "io_uring"] == results
    assert all(r["resolved"] is (r["file"] != "name") for r in run.records() if r["via"] == "io_uring")


def test_failed_only_applies_at_completion_in_text(tmp_path):
    (tmp_path / "exists").write_text("")
    run = trace_command(["-x", "--timestamp", "none"], _uring("--dir", str(tmp_path), "missing", "exists"))
    _skip_without_io_uring(run)
    lines = [line for line in run.lines if line.endswith(b" via=io_uring")]
    assert [line.split(b" file=")[1] for line in lines] == [b"missing ret=-2:ENOENT via=io_uring"] * 2


def test_a_kernel_without_the_tracepoints_is_said_once(monkeypatch):
    need_root()
    monkeypatch.setitem(kernel_layout.EXTRA_TRACEPOINTS, "io_uring", ("io_uring", ("openat_no_such_tracepoint",)))
    said = []
    with Tracer(attach="raw_tp", options=ProbeOptions(filters=Filters(pids=(os.getpid(),))), report=said.append) as tracer:
        tracer.start()
        assert not tracer.uring_programs
    about = [line for line in said if "io_uring" in line]
    assert len(about) == 1 and about[0].startswith("io_uring opens are not traced: no tracepoint io_uring/"), said


def test_a_refused_io_uring_attach_is_said_once_and_tracing_goes_on(monkeypatch):
    import openat.tracer.attach as attach

    need_root()
    real = attach.build_uring_probe

    def elsewhere(layout, options):  # the second program's tracepoint does not exist: a refusal mid-way
        first, second = real(layout, options)
        return [first, second._replace(target="io_uring/openat_no_such_tracepoint")]

    monkeypatch.setattr(attach, "build_uring_probe", elsewhere)
    said = []
    with Tracer(attach="raw_tp", options=ProbeOptions(filters=Filters(pids=(os.getpid(),))), report=said.append) as tracer:
        tracer.start()
        assert tracer.mode == "raw_tp" and not tracer.uring_programs
        assert len(tracer.programs) == 1
    about = [line for line in said if "io_uring" in line]
    assert len(about) == 1 and about[0].startswith("io_uring opens are not traced: "), said
