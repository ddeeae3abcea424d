"""SIGINT and SIGTERM stop the tracer cleanly whenever they arrive (issue #11 defect 1, issue #17 item 7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import openat.tracer.attach
from openat.tracer import cli, signals
from openat.tracer.signals import StopSignals

from ..support import need_root
from .conftest import TracerProcess, program_ids_held_by, wait_until_unloaded

WATCHED_FILES = {Path(cli.__file__).resolve(), Path(signals.__file__).resolve()}
PARSER = cli.build_parser()


class FakeTracer:
    """Stands in for Tracer; remembers whether it was closed."""

    instances: list = []

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.mode = None
        self.closed = False
        self.polls = 0
        FakeTracer.instances.append(self)

    def start(self) -> str:
        self.mode = "fake"
        return self.mode

    def poll_records(self, on_record, timeout_ms: int = 100, limit=None, *, in_place: bool = False) -> int:
        self.polls += 1
        if self.polls == 2:  # stop on its own when no signal came
            os.kill(os.getpid(), signal.SIGINT)
        return 0

    def lost_events(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True


def _ours(signum: int) -> bool:
    return isinstance(getattr(signal.getsignal(signum), "__self__", None), StopSignals)


def _run_with_signal_at(monkeypatch, line_number: int, signum: int) -> tuple[int, int]:
    """Run cli.main, sending ``signum`` at the ``line_number``-th line it executes in cli.py or signals.py
    once our handler for it is installed; returns (exit status, lines seen)."""
    seen = 0

    def trace(frame, event, arg):
        nonlocal seen
        if Path(frame.f_code.co_filename).resolve() not in WATCHED_FILES:
            return None
        if event == "line" and _ours(signum):
            seen += 1
            if seen == line_number:
                os.kill(os.getpid(), signum)  # the handler runs before the next line of the traced code
        return trace

    FakeTracer.instances.clear()
    monkeypatch.setattr(openat.tracer.attach, "Tracer", FakeTracer)
    monkeypatch.setattr(cli, "build_parser", lambda: PARSER)  # its lines are like any other before tracing; 40% of the time
    sys.settrace(trace)
    try:
        status = cli.main(["--timestamp", "none"])
    finally:
        sys.settrace(None)
    return status, seen


def test_a_signal_at_any_line_stops_cleanly(monkeypatch, capsys):
    """A signal after every single line of the CLI: always exit 0, never an exception, never a tracer left open."""
    previous = {signum: signal.getsignal(signum) for signum in signals.STOP_SIGNALS}
    status, lines = _run_with_signal_at(monkeypatch, 0, signal.SIGTERM)  # a plain run counts the lines
    assert status == cli.EXIT_OK and lines > 50
    for line_number in range(1, lines + 1):
        signum = (signal.SIGTERM, signal.SIGINT)[line_number % 2]
        status, _ = _run_with_signal_at(monkeypatch, line_number, signum)
        assert status == cli.EXIT_OK, line_number
        assert all(tracer.closed for tracer in FakeTracer.instances), line_number
        assert {signum: signal.getsignal(signum) for signum in signals.STOP_SIGNALS} == previous
    assert "Traceback" not in capsys.readouterr().err


def test_handlers_replace_an_inherited_ignore():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        stop = StopSignals()
        stop.install()
        assert _ours(signal.SIGINT) and _ours(signal.SIGTERM)
        assert stop.previous[signal.SIGINT] == signal.SIG_IGN  # what -- CMD gives back to its command
        stop.restore()
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_sigint_stops_a_tracer_that_inherited_it_ignored():
    """A shell starts background jobs with SIGINT ignored: `openat > log & kill -INT $!` must still stop it."""
    need_root()
    tracer = TracerProcess([], preexec_fn=_ignore_sigint)
    try:
        with open(f"/proc/{tracer.process.pid}/status") as status:
            ignored = int(next(line for line in status if line.startswith("SigIgn:")).split()[1], 16)
        assert not ignored & (1 << (signal.SIGINT - 1)), "openat should handle SIGINT, not ignore it"
        mine = program_ids_held_by(tracer.process.pid)
        assert tracer.stop(signal.SIGINT) == 0
        assert not wait_until_unloaded(mine)
        assert any("events lost" in line for line in tracer.stderr_lines)
    finally:
        tracer.stop(signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signals_during_start_up_never_print_a_traceback(signum):
    """Signals at spread-out moments of start-up: before openat's handler exists the signal's own
    status (no traceback), after it a clean exit 0. (Everything openat makes in raw_tp mode is
    an fd, released by the kernel whenever the process ends.)

    SIGTERM goes from the first moment. SIGINT goes once openat's entry point has
    taken it over: before that it is the interpreter's own start-up, where Python's
    SIGINT handler (which openat cannot replace before its first line runs) may
    report a KeyboardInterrupt in site's imports.
    """
    need_root()
    for delay in (0.0, 0.05, 0.3):  # before the handlers (SIGTERM), while parsing, while attaching
        process = subprocess.Popen([sys.executable, "-m", "openat", "--attach", "raw_tp"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if signum == signal.SIGINT:
            _wait_for_handover(process.pid)
        time.sleep(delay)
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
        assert process.returncode in (0, -signum), (delay, process.returncode, err)
        assert "Traceback" not in err, (delay, err)


def _wait_for_handover(pid: int) -> None:
    """Until openat's entry point owns SIGINT: the default action (launch), or its handler (which catches SIGTERM too)."""
    sigint, sigterm = 1 << (signal.SIGINT - 1), 1 << (signal.SIGTERM - 1)
    python_had_it = False  # the interpreter's handler was seen: its losing SIGINT is launch's doing
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/status") as status:
                fields = dict(line.split(":", 1) for line in status)
        except OSError:
            return  # already gone
        caught = int(fields["SigCgt"], 16)
        if caught & sigterm or python_had_it and not caught & sigint:
            return
        python_had_it = python_had_it or bool(caught & sigint)
        time.sleep(0.001)
    raise AssertionError("openat never took SIGINT over")
