"""An output that cannot be written: one line, cleanup, exit status 1 (issue #17 item 6)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from ..support import need_root
from .conftest import ATTACH_TIMEOUT_S, program_ids_held_by_unseen, wait_until_unloaded

NO_SPACE = "openat: cannot write output: No space left on device"


def _trace_into(stdout, *args: str) -> tuple[int, list[str], set]:
    """Run the tracer with ``stdout``, opening files until it gives up; (status, stderr lines, its programs).

    The tracer sees only this process's opens, and none before its programs are
    recorded: it fails on its first write, and cleans up, within milliseconds of
    the first event, too fast to catch by sampling on a slow (emulated) kernel.
    """
    process = subprocess.Popen([sys.executable, "-m", "openat", "-p", str(os.getpid()), *args],
                               stdout=stdout, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    attached = threading.Event()

    def read_stderr() -> None:
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            if line.startswith("openat: tracing opens via"):
                attached.set()
        attached.set()  # exited without attaching: the assertions say so

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    attached.wait(ATTACH_TIMEOUT_S)
    programs = program_ids_held_by_unseen(process.pid) if process.poll() is None else set()
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        for _ in range(50):  # opens for the tracer to report, so that it has something to write
            os.close(os.open("/etc/hostname", os.O_RDONLY))
        time.sleep(0.01)
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)
    reader.join(timeout=30)
    return process.returncode, lines, programs


def _assert_stopped_on_write_error(status: int, lines: list[str], programs: set, message: str = NO_SPACE) -> None:
    assert status == 1, lines
    assert lines.count(message) == 1, lines
    assert not [line for line in lines if "cannot write" in line and line != message], lines
    assert not any("Traceback" in line or "Exception ignored" in line for line in lines), lines
    assert any(line.startswith("openat: tracing opens via") for line in lines), lines
    assert any(line.endswith("events lost") for line in lines), lines  # cleanup ran to its end
    assert programs, "the tracer should have loaded programs"
    assert not wait_until_unloaded(programs), "programs left loaded"


def test_full_disk_under_stdout(tmp_path):
    need_root()
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "openat-test", str(mount)], check=True)
    try:
        with open(mount / "out", "wb") as out:
            status, lines, programs = _trace_into(out, "--attach", "raw_tp")
        assert 0 < (mount / "out").stat().st_size <= 16 * 1024
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    _assert_stopped_on_write_error(status, lines, programs)


def test_dev_full_under_stdout_in_json():
    need_root()
    with open("/dev/full", "wb") as out:
        status, lines, programs = _trace_into(out, "--attach", "raw_tp", "--json")
    _assert_stopped_on_write_error(status, lines, programs)


def test_a_read_only_stdout_is_any_other_write_error():
    need_root()
    with open("/dev/null", "rb") as out:  # write(2) on it: EBADF
        status, lines, programs = _trace_into(out, "--attach", "raw_tp")
    _assert_stopped_on_write_error(status, lines, programs, "openat: cannot write output: Bad file descriptor")


def test_a_closed_stdout():
    need_root()
    result = subprocess.run([sys.executable, "-m", "openat"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, timeout=60, preexec_fn=lambda: os.close(1))
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["openat: cannot write output: standard output is closed"]


def test_dump_into_a_full_device():
    with open("/dev/full", "wb") as out:
        result = subprocess.run([sys.executable, "-m", "openat", "--dump"], stdout=out, stderr=subprocess.PIPE,
                                text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [NO_SPACE]
