"""``openat [options] -- CMD [ARGS...]``: CMD and every process it starts, from the first open, with CMD's status.

Each run costs a tracer start (seconds in the qemu guest), so one command
checks as much as it can.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ..support import need_root
from .conftest import ATTACH_TIMEOUT_S, trace_command


def _sigint_ignored(status_line: bytes) -> bool:
    return bool(int(status_line.split()[1], 16) & (1 << (signal.SIGINT - 1)))


def test_children_status_output_and_nothing_else(tmp_path):
    """Background, nested and immediately exiting children are traced (forks are followed in the
    kernel, at the fork); opens elsewhere on the machine are not; CMD's output stays apart (-o);
    CMD's exit status is openat's; CMD gets the SIGINT disposition openat had (here the default);
    CMD inherits no descriptor of openat's (probe, maps, ring, trace file)."""
    files = [tmp_path / name for name in ("background", "direct", "nested", "grandchild", "outside")]
    for path in files:
        path.write_text("")
    stop = tmp_path / "stop"
    outsider = subprocess.Popen([sys.executable, "-c", (
        f"import os, time\nwhile not os.path.exists({str(stop)!r}):\n"
        f"    os.close(os.open({str(files[4])!r}, os.O_RDONLY)); time.sleep(0.001)")])
    script = (f"echo hello; grep ^SigIgn: /proc/self/status; ls /proc/self/fd; "
              f"(cat {files[0]} >/dev/null &); cat {files[1]} >/dev/null; "
              f"sh -c 'cat {files[2]} >/dev/null; (exec cat {files[3]}) >/dev/null'; wait; "
              f"cat {files[4]} > /dev/null; exit 3")
    try:
        run = trace_command(["--json"], ["sh", "-c", script])
    finally:
        stop.write_text("")
        outsider.wait(timeout=30)
    assert run.status == 3, run.stderr
    assert run.output[0] == b"hello" and not _sigint_ignored(run.output[1])
    assert sorted(run.output[2:]) == [b"0", b"1", b"2", b"3"]  # ls's own directory fd is 3
    records = run.records()
    assert all(record["comm"] in ("sh", "cat", "grep", "ls") for record in records), {r["comm"] for r in records}
    for path in files:
        matching = [r for r in records if r["file"] == str(path)]
        assert len(matching) == 1, (path, run.stderr)  # the outsider's opens of files[4] are not there
        assert matching[0]["comm"] == "cat" and matching[0]["ret"] >= 0
    assert len({r["pid"] for r in records if r["file"] in map(str, files)}) == 5  # processes of their own


def test_a_command_killed_by_a_signal():
    assert trace_command([], ["sh", "-c", "kill -TERM $$"]).status == 128 + signal.SIGTERM


def test_an_ignored_sigint_stays_ignored_in_the_command():
    run = trace_command([], ["grep", "^SigIgn:", "/proc/self/status"],
                        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert _sigint_ignored(run.output[0])


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
    time.sleep(0.5)  # sleep has exec'd, or is about to: the signal reaches it either way
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


class _FollowsNothing:
    """The tracer's part in ``_start_command``: noting the command's pid (a map update)."""

    def follow(self, pid: int) -> None:
        pass


@pytest.mark.parametrize("when", ["while it is released", "at once after the fork"])
def test_a_signal_as_the_command_starts_is_passed_on(monkeypatch, when):
    """A SIGTERM that comes while the command is being released (an exec is slow under
    emulation), or the moment it is forked, ends the command: it is never lost with openat
    waiting for a command nobody stopped."""
    from openat.tracer import cli
    from openat.tracer.command import Command
    from openat.tracer.signals import StopSignals

    hook = "release" if when == "while it is released" else "__init__"
    original = getattr(Command, hook)

    def then_signal(self, *args):
        original(self, *args)
        if hook == "release":
            os.kill(os.getpid(), signal.SIGTERM)  # to openat, as `kill` would: passed on from its handler
        else:
            os.kill(self.pid, signal.SIGTERM)  # before the child may have set its own dispositions

    monkeypatch.setattr(Command, hook, then_signal)
    stop = StopSignals()
    stop.install()
    stop.note_only()
    try:
        try:
            command = cli._start_command(["sleep", "60"], _FollowsNothing(), stop)
        except cli.CommandError as error:  # the signal came before the release: CMD never ran
            assert error.status == 128 + signal.SIGTERM
            return
        deadline = time.monotonic() + 30
        while command.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if command.poll() is None:
            command.signal(signal.SIGKILL)
            command.wait()
        assert command.status == 128 + signal.SIGTERM, "the signal was lost: the command ran on"
    finally:
        stop.restore()
