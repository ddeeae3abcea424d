"""Starting, watching and stopping the tracers under test.

Every tracer writes to a file on tmpfs rather than to a pipe the harness reads
live: on a 2-core machine a reader process would steal the tracer's core, and a
full pipe would throttle the tracer and show up as lost events that are really
the harness's fault. The harness still reads the file incrementally, which is
how it sees the marker (start-up) and knows when the backlog has drained.

Output is line-buffered for every tracer, as a user watching a terminal gets:
bpftrace with ``-B line``, opensnoop (plain stdio) under ``stdbuf -oL``;
openat is run as is, so it must flush its own output (at least per poll batch)
for its marker to be seen.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .env import REPO

BPFTRACE_PROGRAM = (
    'tracepoint:syscalls:sys_enter_openat { printf("%d %s %s\\n", pid, comm, str(args->filename)); }'
)


@dataclass
class TracerSpec:
    name: str
    command: list[str]
    available: bool = True
    reason: str = ""
    version: Optional[str] = None
    env: dict = field(default_factory=dict)
    # openat reports running totals of lost events, the peers report increments
    lost_cumulative: bool = False


def bpftrace_spec(binary: str) -> TracerSpec:
    return TracerSpec("bpftrace", [binary, "-B", "line", "-e", BPFTRACE_PROGRAM])


def opensnoop_spec(binary: str) -> TracerSpec:
    return TracerSpec("opensnoop", ["stdbuf", "-oL", binary])  # stdbuf execs: same pid


def openat_spec() -> TracerSpec:
    """`python -m openat` if it runs in this tree, else a spec marked not available.

    Probed with --help so an unfinished tracer costs a line in the report, not the run.
    """
    spec = TracerSpec(
        "openat", [sys.executable, "-m", "openat"], env={"PYTHONPATH": str(REPO)}, lost_cumulative=True
    )
    if not (REPO / "openat" / "__main__.py").exists():
        spec.available = False
        spec.reason = "`python -m openat` is not in the tree yet (no openat/__main__.py)"
        return spec
    try:
        probe = subprocess.run(
            spec.command + ["--help"], cwd=REPO, env=_env(spec), capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        spec.available = False
        spec.reason = "`python -m openat --help` did not finish in 60 s"
        return spec
    if probe.returncode != 0:
        tail = (probe.stderr or probe.stdout).strip().splitlines()[-1:] or [""]
        spec.available = False
        spec.reason = f"`python -m openat --help` exited {probe.returncode}: {tail[0]}"
        return spec
    try:
        import openat

        spec.version = f"openat {openat.__version__}"
    except Exception:
        spec.version = "openat"
    return spec


def openat_mode_spec(base: TracerSpec, mode: str) -> TracerSpec:
    """``python -m openat --attach MODE``: the tracer pinned to one attach mode, for the per-mode figures."""
    spec = TracerSpec(f"openat:{mode}", base.command + ["--attach", mode], available=base.available,
                      reason=base.reason, version=base.version, env=dict(base.env), lost_cumulative=True)
    return spec


def floor_spec(mode: str) -> TracerSpec:
    """bench/floor.py on ``mode``: the least a tracer must do there (issue 16's floor probe)."""
    return TracerSpec(f"floor:{mode}", [sys.executable, "-m", "bench.floor", "--attach", mode],
                      env={"PYTHONPATH": str(REPO)}, version="bench/floor.py")


ATTACHED_VIA = re.compile(r"tracing opens via (\w+)")


def attached_mode(stderr_text: str) -> Optional[str]:
    """The attach mode openat reported choosing ("tracing opens via MODE"), or None."""
    match = ATTACHED_VIA.search(stderr_text)
    return match.group(1) if match else None


# Interpreter switches a developer's or CI shell may carry and a user's would
# not: no bytecode cache makes every launch recompile openat (start-up), an
# unbuffered stdout changes how output is written, the rest add debug work.
DISTORTING_ENV = (
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "PYTHONDEVMODE",
    "PYTHONMALLOC",
    "PYTHONMALLOCSTATS",
    "PYTHONTRACEMALLOC",
    "PYTHONPROFILEIMPORTTIME",
    "PYTHONASYNCIODEBUG",
    "PYTHONVERBOSE",
    "PYTHONINSPECT",
    "PYTHONWARNINGS",
)


def clean_env() -> dict:
    """This process's environment less the switches above: what tracers and generators get."""
    return {k: v for k, v in os.environ.items() if k not in DISTORTING_ENV}


def removed_env() -> list[str]:
    return [k for k in DISTORTING_ENV if k in os.environ]


def _env(spec: TracerSpec) -> dict:
    env = clean_env()
    for key, value in spec.env.items():  # a caller's explicit choice wins over the clean-up
        env[key] = value + (os.pathsep + env[key] if key == "PYTHONPATH" and env.get(key) else "")
    return env


def pin(cpu: int):
    """preexec_fn pinning the child before exec, so every thread it starts inherits the core."""

    def _pin() -> None:
        os.sched_setaffinity(0, {cpu})

    return _pin


def read_vmhwm_kb(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class LineCounter:
    """Counts, incrementally, the lines of a growing file that contain given needles.

    Only complete lines are examined, so a needle split across two reads is
    neither missed nor counted twice.
    """

    def __init__(self, path: Path) -> None:
        self.file = open(path, "rb")
        self.rest = b""
        self.counts: dict[bytes, int] = {}
        self.bytes_read = 0
        self.lost_lines: list[str] = []

    def watch(self, needle: bytes) -> None:
        self.counts.setdefault(needle, 0)

    def poll(self) -> int:
        """Read what was appended since the last call; returns how many bytes."""
        chunk = self.file.read()
        if not chunk:
            return 0
        self.bytes_read += len(chunk)
        data = self.rest + chunk
        cut = data.rfind(b"\n") + 1
        self.rest = data[cut:]
        complete = data[:cut]
        for needle in self.counts:
            self.counts[needle] += complete.count(needle)
        # bpftrace reports lost events on stdout, between the event lines
        if b"Lost " in complete:
            for match in re.finditer(rb"(?m)^Lost (\d+) events", complete):
                self.lost_lines.append(match.group(0).decode())
        return len(chunk)

    def close(self) -> None:
        self.poll()
        self.file.close()


class TracerRun:
    """One launch of one tracer, from start-up to stop."""

    def __init__(self, spec: TracerSpec, workdir: Path, tag: str, cpu: int) -> None:
        self.spec = spec
        self.tag = tag
        self.cpu = cpu
        self.out_path = workdir / f"{tag}.out"
        self.err_path = workdir / f"{tag}.err"
        self.marker = workdir / f"m-{tag}"
        self.marker.touch()
        self.proc: Optional[subprocess.Popen] = None
        self.counter: Optional[LineCounter] = None
        self.stop_how = ""

    def start(self, timeout: float = 30.0) -> float:
        """Launch and open the marker until the tracer prints it; returns ms from launch.

        The marker is opened about every millisecond, so the start-up figure has
        that resolution, and the first open after attach is what gets printed.
        """
        out = open(self.out_path, "wb")
        err = open(self.err_path, "wb")
        marker_bytes = str(self.marker).encode()
        launched = time.perf_counter()
        self.proc = subprocess.Popen(
            self.spec.command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=REPO,
            env=_env(self.spec),
            preexec_fn=pin(self.cpu),
            start_new_session=True,  # a Ctrl-C on the bench must not hit the tracer first
        )
        out.close()
        err.close()
        self.counter = LineCounter(self.out_path)
        self.counter.watch(marker_bytes)
        marker = str(self.marker)
        deadline = launched + timeout
        while True:
            os.close(os.open(marker, os.O_RDONLY))
            self.counter.poll()
            if self.counter.counts[marker_bytes]:
                return (time.perf_counter() - launched) * 1000
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited {self.proc.returncode} before attaching: {self.stderr_tail()}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{self.spec.name} printed no marker line within {timeout:.0f} s: {self.stderr_tail()}")
            time.sleep(0.001)

    def settle(self, seconds: float = 0.2) -> None:
        """Let the marker burst drain so it is not counted against the generator."""
        time.sleep(seconds)
        self.counter.poll()

    def wait_drained(self, expected: dict[bytes, int], quiet: float = 1.0, limit: float = 60.0) -> float:
        """Wait until every expected line arrived, or the counts stop moving.

        Other processes' opens keep the file growing, so "file stopped growing"
        would never come; the counts of our own target files are what matter.
        """
        start = time.perf_counter()
        last = None
        last_change = start
        while True:
            self.counter.poll()
            now = time.perf_counter()
            counts = tuple(self.counter.counts[n] for n in expected)
            if all(self.counter.counts[n] >= want for n, want in expected.items()):
                return now - start
            if counts != last:
                last, last_change = counts, now
            elif now - last_change >= quiet or now - start >= limit:
                return now - start
            time.sleep(0.05)

    def vmhwm_kb(self) -> Optional[int]:
        return read_vmhwm_kb(self.proc.pid) if self.proc else None

    def stop(self) -> None:
        """SIGINT as a user's Ctrl-C (tracers print their lost counts then), harder if ignored."""
        if self.proc is None or self.proc.poll() is not None:
            self.stop_how = "already exited"
        else:
            for sig, grace in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.kill(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(grace)
                    self.stop_how = signal.Signals(sig).name
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.counter:
            self.counter.close()

    def stderr_text(self) -> str:
        try:
            return self.err_path.read_text(errors="replace")
        except OSError:
            return ""

    def stderr_tail(self, lines: int = 3) -> str:
        text = self.stderr_text().strip().splitlines()
        return " | ".join(text[-lines:]) if text else "(no stderr)"

    def cleanup(self) -> None:
        for path in (self.out_path, self.err_path, self.marker):
            try:
                path.unlink()
            except OSError:
                pass
