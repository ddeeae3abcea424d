"""``openat [options] -- CMD [ARGS...]``: CMD and every process it starts, from the first open, with CMD's status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ..support import need_root
from .conftest import ATTACH_TIMEOUT_S, trace_command


def test_exit_status_is_the_commands(tmp_path):
    assert trace_command([], ["sh", "-c", "exit 3"]).status == 3
    assert trace_command([], ["sh", "-c", "kill -TERM $$"]).status == 128 + signal.SIGTERM


def test_children_that_live_for_a_moment_are_traced(tmp_path):
    """Background, nested and immediately exiting children: forks are followed in the kernel, at the fork."""
    files = [tmp_path / name for name in ("background", "direct", "nested", "grandchild")]
    for path in files:
        path.write_text("")
    script = (f"(cat {files[0]} >/dev/null &); cat {files[1]} >/dev/null; "
              f"sh -c 'cat {files[2]} >/dev/null; (exec cat {files[3]}) >/dev/null'; wait")
    run = trace_command(["--json"], ["sh", "-c", script])
    assert run.status == 0, run.stderr
    records = run.records()
    for path in files:
        matching = [r for r in records if r["file"] == str(path)]
        assert len(matching) == 1, (path, run.stderr)
        assert matching[0]["comm"] == "cat" and matching[0]["ret"] >= 0
    assert len({r["pid"] for r in records if r["file"] in map(str, files)}) == 4  # four processes of their own


def test_only_the_commands_processes(tmp_path):
    """An open elsewhere on the machine while the command runs is not shown."""
    outside = tmp_path / "outside"
    outside.write_text("")
    stop = tmp_path / "stop"
    opener = subprocess.Popen([sys.executable, "-c",
                               f"import os, time\nwhile not os.path.exists({str(stop)!r}):\n"
                               f"    os.close(os.open({str(outside)!r}, os.O_RDONLY)); time.sleep(0.001)"])
    try:
        inside = tmp_path / "inside"
        inside.write_text("")
        run = trace_command(["--json"], ["sh", "-c", f"sleep 0.5; cat {inside} {outside} > /dev/null"])
    finally:
        stop.write_text("")
        opener.wait(timeout=30)
    files = [r["file"] for r in run.records()]
    assert files.count(str(inside)) == 1 and files.count(str(outside)) == 1  # cat's, not the opener's
    assert all(r["comm"] in ("sh", "cat", "sleep") for r in run.records())


def test_a_command_that_cannot_run(tmp_path):
    missing = trace_command([], ["/nonexistent/openat-test-command"])
    assert missing.status == 127
    assert "openat: cannot run /nonexistent/openat-test-command: No such file or directory" in missing.stderr
    assert not missing.lines and not missing.output
    not_a_program = tmp_path / "data"
    not_a_program.write_bytes(b"\0\1\2 not a program")
    not_a_program.chmod(0o755)
    refused = trace_command([], [str(not_a_program)])
    assert refused.status == 126
    assert f"openat: cannot run {not_a_program}: Exec format error" in refused.stderr


@pytest.mark.parametrize("inherited,expected", [(signal.SIG_DFL, False), (signal.SIG_IGN, True)])
def test_the_command_gets_the_signal_dispositions_openat_inherited(inherited, expected):
    run = trace_command([], ["grep", "^SigIgn:", "/proc/self/status"],
                        preexec_fn=lambda: signal.signal(signal.SIGINT, inherited))
    (line,) = [line for line in run.output if line.startswith(b"SigIgn:")]
    assert bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1))) is expected


def _start(command, **popen) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "openat", "--", *command], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, **popen)
    deadline = time.monotonic() + ATTACH_TIMEOUT_S
    for line in process.stderr:
        if "tracing opens via" in line or time.monotonic() > deadline:
            break
    return process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_openat_is_passed_on_to_the_command(signum):
    """Outside a terminal a signal reaches only openat: it passes it on, and ends with the command."""
    need_root()
    process = _start(["sleep", "60"])
    time.sleep(0.5)  # sleep has exec'd
    process.send_signal(signum)
    assert process.wait(timeout=30) == 128 + signum
    assert "Traceback" not in process.stderr.read()


def test_a_second_signal_stops_openat_when_the_command_ignores_the_first(tmp_path):
    need_root()
    pid_file = tmp_path / "pid"
    process = _start(["sh", "-c", f"trap '' TERM; echo $$ > {pid_file}; while :; do sleep 0.1; done"])
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    shell = int(pid_file.read_text())
    try:
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert process.poll() is None  # still following: the command ignored it
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
        assert os.path.exists(f"/proc/{shell}"), "openat leaves the command running"
    finally:
        os.kill(shell, signal.SIGKILL)


def test_output_file_keeps_the_trace_apart_from_the_commands_output():
    run = trace_command(["--timestamp", "none"], ["sh", "-c", "echo hello; cat /etc/hostname"])
    with open("/etc/hostname", "rb") as f:
        assert run.output == [b"hello"] + f.read().splitlines()
    assert [line for line in run.lines if b" file=/etc/hostname " in line]
    assert all(line.startswith(b"pid=") for line in run.lines)
