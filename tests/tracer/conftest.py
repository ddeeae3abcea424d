"""Fixtures that run the real tracer against the running kernel."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator, List, NamedTuple, Optional, Sequence, Set

import pytest

from ..support import need_root

OPENER = Path(__file__).with_name("opener.py")
ATTACH_TIMEOUT_S = 30
EVENT_TIMEOUT_S = 30  # a bound for loaded machines (CI, the qemu guest), not a timing check


def cgroup2_root() -> str:
    """Where the cgroup v2 hierarchy is mounted (skips when there is none)."""
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if fields[2] == "cgroup2":
                return fields[1]
    pytest.skip("no cgroup v2 hierarchy mounted: --cgroup needs one")


class TracerProcess:
    """``python -m openat ARGS`` with its output read in the background."""

    def __init__(self, args: List[str], **popen: object) -> None:
        self.args = args
        self.process = subprocess.Popen(
            [sys.executable, "-m", "openat", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **popen,  # type: ignore[arg-type]
        )
        self.lines: "queue.Queue[bytes]" = queue.Queue()
        self.stderr_lines: List[str] = []
        self.attached = threading.Event()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_thread.start()
        deadline = time.monotonic() + ATTACH_TIMEOUT_S
        while not self.attached.is_set():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"tracer did not attach: {self.stderr_lines}")
            self.attached.wait(0.05)

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip(b"\n"))

    def _read_stderr(self) -> None:
        for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.stderr_lines.append(line)
            if "tracing opens via" in line:
                self.attached.set()

    def wait_for(self, needle: bytes, timeout: float = EVENT_TIMEOUT_S) -> bytes:
        """The first output line containing ``needle``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line with {needle!r} within {timeout}s; stderr: {self.stderr_lines}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if needle in line:
                return line

    def lines_until(self, needle: bytes, last: bytes, timeout: float = EVENT_TIMEOUT_S) -> List[bytes]:
        """Every line with ``needle`` up to the first one with ``last``, then stragglers.

        Tests make the open that must appear last: records come out in the
        order the probe reserved them, so an earlier open that wrongly passed
        a filter is in the output before it.
        """
        found = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line with {last!r} within {timeout}s; saw {found}; stderr: {self.stderr_lines}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if needle in line:
                found.append(line)
                if last in line:
                    return found + self.lines_with(needle, settle=0.3)

    def lines_with(self, needle: bytes, settle: float = 1.0, limit: float = 60.0) -> List[bytes]:
        """Every line with ``needle`` printed until output stays quiet for ``settle`` s.

        An unfiltered tracer on a busy machine may never go quiet: after ``limit``
        s, what was found so far.
        """
        found = []
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=settle)
            except queue.Empty:
                break
            if needle in line:
                found.append(line)
        return found

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._stderr_thread.join(timeout=5)
        return code


class Opener:
    """The opener child: a process with a chosen comm that opens on command."""

    def __init__(self, comm: str = "openat-test") -> None:
        self.comm = comm
        self.process = subprocess.Popen(
            [sys.executable, str(OPENER), comm], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.pid = int(self.process.stdout.readline())

    def _ask(self, *words: str) -> int:
        self.process.stdin.write(" ".join(words) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if answer.startswith("dfd "):
            self.last_dfd = int(answer.split()[1])
            answer = self.process.stdout.readline()
        return int(answer)

    def open(self, path: bytes, flags: int = os.O_RDONLY) -> int:
        return self._ask("open", path.hex(), str(flags))

    def openat2(self, path: bytes, flags: int = os.O_RDONLY) -> int:
        return self._ask("openat2", path.hex(), str(flags))

    def open_relative(self, directory: bytes, name: bytes, flags: int = os.O_RDONLY) -> int:
        return self._ask("openrel", directory.hex(), name.hex(), str(flags))

    def open_at_dir(self, directory: bytes, name: bytes, flags: int = os.O_RDONLY) -> int:
        return self._ask("open_at_dir", directory.hex(), name.hex(), str(flags))

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=10)
        self.process.stdout.close()


@pytest.fixture
def marker() -> bytes:
    return f"openat-e2e-{uuid.uuid4().hex[:12]}".encode()


@pytest.fixture
def run_tracer():
    """Start tracers with given arguments; all are stopped at teardown."""
    need_root()
    started: List[TracerProcess] = []

    def start(*args: str) -> TracerProcess:
        tracer = TracerProcess(list(args))
        started.append(tracer)
        return tracer

    yield start
    for tracer in started:
        tracer.stop()


@pytest.fixture
def opener() -> Iterator[Opener]:
    child = Opener()
    yield child
    child.close()


def program_ids_held_by(pid: int) -> Set[int]:
    """Ids of the BPF programs process ``pid`` holds (fds on programs or links)."""
    texts = []
    for entry in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            texts.append(entry.read_text())
        except OSError:
            continue  # closed meanwhile
    return _program_ids_in_fdinfo("".join(texts))


def program_ids_held_by_unseen(pid: int) -> Set[int]:
    """``program_ids_held_by``, reading /proc from a child process: no open is made by this one.

    For a tracer told to trace this process (``-p``), which would see those opens.
    """
    result = subprocess.run(["sh", "-c", f'cat /proc/{pid}/fdinfo/* 2>/dev/null'],
                            stdout=subprocess.PIPE, text=True, timeout=60)
    return _program_ids_in_fdinfo(result.stdout)


def _program_ids_in_fdinfo(text: str) -> Set[int]:
    return {int(line.split()[1]) for line in text.splitlines() if line.startswith("prog_id:")}


def loaded_program_ids() -> Set[int]:
    from openat.syscalls import prog_ids

    return set(prog_ids())


def wait_until_unloaded(ids: Set[int], timeout: float = 10.0) -> Set[int]:
    """Wait for the kernel to free programs ``ids``; return those still loaded.

    Freeing is asynchronous (after an RCU grace period), so a program can be
    listed for a moment after its last fd closed.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = ids & loaded_program_ids()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


class CommandRun(NamedTuple):
    status: int
    lines: List[bytes]  # the trace (openat's -o file)
    output: List[bytes]  # what the command itself wrote to stdout
    stderr: List[str]  # openat's and the command's

    def records(self) -> List[dict]:
        """The JSON records of a --json run."""
        import json

        return [json.loads(line) for line in self.lines]


def trace_command(args: Sequence[str], command: Sequence[str], timeout: float = 120, **popen: object) -> CommandRun:
    """``python -m openat ARGS -o FILE -- COMMAND``, run to its end (openat stops when the command does).

    The trace goes to its own file: on a shared stdout the command's writes
    and openat's could interleave inside a line.
    """
    import tempfile

    need_root()
    with tempfile.NamedTemporaryFile(prefix="openat-trace-") as trace:
        result = subprocess.run([sys.executable, "-m", "openat", *args, "-o", trace.name, "--", *command],
                                capture_output=True, timeout=timeout, **popen)  # type: ignore[call-overload]
        lines = open(trace.name, "rb").read().splitlines()
    stderr = result.stderr.decode(errors="replace").splitlines()
    assert not any("Traceback" in line for line in stderr), stderr
    return CommandRun(result.returncode, lines, result.stdout.splitlines(), stderr)
