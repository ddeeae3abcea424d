"""Every attach mode on the running kernel: the same end-to-end assertions, and what it costs.

Run on the host and on every kernel of the guest matrix (docs/guest.md), so
each (kernel, attach mode) pair is proven by the same code: one tracer per
mode, in this process, with the pid, uid and comm filters compiled in; opens
made by a named thread of this process (pid and tid differ, so a swap shows)
through openat, openat2 and, where the machine has it, open; the record's
pid, tid, uid, comm, flags, path, syscall and result; an open the filters
must drop; and after close, nothing left loaded or in tracefs.

kprobe, raw_tp and tp_btf read registers at offsets from ``struct pt_regs``:
each runs twice, with the offsets from the kernel's BTF and from the built-in
table of :mod:`openat.arch` (the fallback for kernels without BTF).

With BPF_ENABLE_STATS on, the kernel counts each program's runs exactly
(also under emulation): the test records runs per open and per non-open
syscall (JUnit properties, and the test's output) and asserts them.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
import time
from typing import Callable, Dict, List, Optional, Set, Tuple

import pytest

import openat.tracer.attach as tracer_module
from openat.arch import arch
from openat.syscalls import features
from openat.syscalls.info import enable_stats, prog_info
from openat.syscalls.programs import prog_get_fd_by_id
from openat.tracer.attach import Tracer
from openat.tracer.probe import ATTACH_MODES, Filters, ProbeOptions
from openat.tracer.records import SYSCALL_NAMES, SYSCALL_UNKNOWN, OpenEvent, decode_event
from tests.support import ATTACH_FEATURES, kprobe_feature, need_root, skip_unless

from .conftest import EVENT_TIMEOUT_S, program_ids_held_by, wait_until_unloaded

COMM = b"matrix-opener"
FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
SYSCALLS = arch().syscalls
LOOPS = 200  # syscalls per run count: exact counts, so a few suffice
TRIES = 5  # a background process's syscall may land in a count: take the best of a few
# The guest runs nothing but the tests, so there the counts are exact; on a
# busy host the raw tracepoints also count every other process's syscalls.
QUIET_MACHINE = os.environ.get("OPENAT_GUEST") == "1"

# Runs of the probe's programs per open, and per syscall that is not an open.
RUNS_PER_OPEN = {"kprobe": 2, "fentry": 1, "tp_btf": 1, "raw_tp": 1, "tracepoint": 2}
# With bpf_task_pt_regs (5.15+) the tracepoint mode has exit programs only.
RUNS_PER_OPEN_EXIT_ONLY = {**RUNS_PER_OPEN, "tracepoint": 1}
RUNS_PER_OTHER_SYSCALL = {"kprobe": 0, "fentry": 0, "tp_btf": 1, "raw_tp": 1, "tracepoint": 0}

# (mode, kprobe interface, pt_regs offsets from, transport)
CASES = [
    ("kprobe", "pmu", "btf", "ringbuf"),
    ("kprobe", "pmu", "table", "ringbuf"),
    ("kprobe", "tracefs", "btf", "ringbuf"),
    ("fentry", "auto", "btf", "ringbuf"),
    ("tp_btf", "auto", "btf", "ringbuf"),
    ("tp_btf", "auto", "table", "ringbuf"),
    ("raw_tp", "auto", "btf", "ringbuf"),
    ("raw_tp", "auto", "table", "ringbuf"),
    ("tracepoint", "auto", "btf", "ringbuf"),
    # The perf event array transport (kernels before 5.8 have no ring buffer): every mode once.
    ("kprobe", "pmu", "btf", "perf"),
    ("fentry", "auto", "btf", "perf"),
    ("tp_btf", "auto", "btf", "perf"),
    ("raw_tp", "auto", "btf", "perf"),
    ("tracepoint", "auto", "btf", "perf"),
]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _result(ret: int) -> int:
    return ret if ret >= 0 else -ctypes.get_errno()


def sys_openat(path: bytes, flags: int) -> int:
    return _result(_libc.syscall(SYSCALLS["openat"], -100, path, flags, 0o600))


def sys_openat2(path: bytes, flags: int) -> int:
    how = _OpenHow(flags, 0o600, 0)
    return _result(_libc.syscall(SYSCALLS["openat2"], -100, path, ctypes.byref(how), ctypes.sizeof(how)))


def sys_open(path: bytes, flags: int) -> int:
    return _result(_libc.syscall(SYSCALLS["open"], path, flags, 0o600))


OPENERS: Dict[str, Callable[[bytes, int], int]] = {"openat": sys_openat, "openat2": sys_openat2}
if "open" in SYSCALLS:  # x86_64; arm64 never had open(2)
    OPENERS["open"] = sys_open


def in_named_thread(work: Callable[[], object]) -> Tuple[int, object]:
    """Run ``work`` in a new thread whose comm is COMM; its tid and what it returned."""
    out: List[object] = []

    def run() -> None:
        tid = threading.get_native_id()
        with open(f"/proc/self/task/{tid}/comm", "wb") as comm:
            comm.write(COMM)
        out.extend((tid, work()))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return out[0], out[1]  # type: ignore[return-value]


def usable_or_skip(mode: str, interface: str) -> None:
    need_root()
    feature = kprobe_feature(interface) if mode == "kprobe" else ATTACH_FEATURES[mode]()
    skip_unless(feature, f"{mode} ({interface})")


def table_offsets(monkeypatch) -> None:
    """Make the tracer take pt_regs offsets from openat.arch's table, as without BTF."""
    discover = tracer_module.discover_layout

    def from_table(tracefs, btf, *args, **kwargs):
        return discover(tracefs, None)._replace(task=discover(tracefs, btf, *args, **kwargs).task)

    monkeypatch.setattr(tracer_module, "discover_layout", from_table)


def drain(tracer: Tracer, wanted: Set[bytes], events: List[OpenEvent]) -> None:
    """Poll until an event for each of ``wanted`` is in ``events`` (or time is up)."""
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while not wanted <= {event.filename for event in events} and time.monotonic() < deadline:
        tracer.poll_records(lambda record: events.append(decode_event(record)), 50)


def run_counts(program_fds) -> int:
    return sum(prog_info(fd).run_cnt for fd in program_fds)


def runs_per_call(program_fds, call: Callable[[], int]) -> float:
    """The fewest runs of the programs per ``call`` (one syscall) over TRIES rounds of LOOPS calls.

    What the calls return is closed after each round, outside the count, if
    it is an fd: a close is a syscall too, and the raw tracepoints count it.
    """
    readings, rounds = [], []
    for _ in range(TRIES):
        # Reading the counts is a bpf() syscall or two, whose exits the raw
        # tracepoints count: what a round of no calls counts is subtracted.
        before = run_counts(program_fds)
        readings.append(run_counts(program_fds) - before)
        results = [0] * LOOPS  # no allocation (brk, mmap) while counting
        before = run_counts(program_fds)
        for index in range(LOOPS):
            results[index] = call()
        rounds.append(run_counts(program_fds) - before)
        for result in results:
            if result > 2:
                os.close(result)
    # Others' syscalls only add: the quietest round, less the quietest reading.
    return (min(rounds) - min(readings)) / LOOPS


@pytest.mark.parametrize("mode,interface,regs,transport", CASES, ids=["-".join(case) for case in CASES])
def test_attach_mode_end_to_end(monkeypatch, tmp_path, record_property, mode, interface, regs, transport):
    usable_or_skip(mode, interface)
    skip_unless(features.ringbuf() if transport == "ringbuf" else features.perf_event_array(), transport)
    if regs == "table":
        table_offsets(monkeypatch)
    reports: List[str] = []
    filters = Filters(pids=(os.getpid(),), uids=(os.getuid(),), comm=COMM)
    held_before = program_ids_held_by(os.getpid())
    tracer = Tracer(attach=mode, options=ProbeOptions(filters=filters), ring_size=1 << 20,
                    report=reports.append, kprobe_interface=interface, transport=transport)
    try:
        tracer.start()
        assert reports[-1].startswith(f"tracing opens via {mode} ("), reports
        # Without bpf_get_current_task_btf (before 5.11) the identity comes from helpers, and the tracer says so.
        no_task_helper = bool(features.btf()) and not features.task_btf_helper()
        said = [line for line in reports if line.startswith("no bpf_get_current_task_btf, identity from helpers: ")]
        assert len(said) == no_task_helper, reports
        assert (tracer.layout.task is None) == (no_task_helper or not features.btf()), tracer.layout
        mine = program_ids_held_by(os.getpid()) - held_before
        assert len(mine) == len(tracer.programs), (mine, tracer.programs)
        check_records(tracer, tmp_path, mode)
        exit_only = mode == "tracepoint" and not any("sys_enter_" in p.target for p in tracer.programs)
        assert exit_only == bool(tracer.layout.task is not None and mode == "tracepoint" and features.task_pt_regs_helper())
        check_run_counts(mine, mode, tmp_path, record_property, RUNS_PER_OPEN_EXIT_ONLY if exit_only else RUNS_PER_OPEN)
    finally:
        tracer.close()
    assert not wait_until_unloaded(mine), "programs left loaded after close"
    if mode == "kprobe" and interface == "tracefs":
        assert f"openat_{os.getpid()}/" not in kprobe_events(), "kprobe left in tracefs kprobe_events"


def check_records(tracer: Tracer, tmp_path, mode: str) -> None:
    """Each open syscall, a failed open, and an open the comm filter drops."""
    expected: Dict[bytes, Tuple[str, int, int]] = {}  # path -> (syscall, flags, result)
    for name, call in OPENERS.items():
        path = bytes(tmp_path) + b"/" + name.encode()
        tid, fd = in_named_thread(lambda: call(path, FLAGS))
        assert fd >= 0, (name, os.strerror(-fd))
        expected[path] = (name, FLAGS, fd)
        os.close(fd)
    missing = bytes(tmp_path) + b"/missing"
    tid, ret = in_named_thread(lambda: sys_openat(missing, os.O_RDONLY))
    assert ret == -errno.ENOENT
    expected[missing] = ("openat", os.O_RDONLY, ret)
    dropped = bytes(tmp_path) + b"/dropped-by-comm"  # this thread's comm is not COMM
    os.close(sys_openat(dropped, FLAGS))
    last = bytes(tmp_path) + b"/last"
    in_named_thread(lambda: os.close(sys_openat(last, FLAGS)))

    events: List[OpenEvent] = []
    drain(tracer, set(expected) | {last}, events)
    by_path = {event.filename: event for event in events}
    assert dropped not in by_path, "the comm filter let an open of another comm through"
    assert set(expected) <= set(by_path), (sorted(expected), sorted(by_path))
    for path, (name, flags, result) in expected.items():
        event = by_path[path]
        assert event.pid == os.getpid() and event.tid not in (0, os.getpid()), event
        assert (event.uid, event.gid) == (os.getuid(), os.getgid()), event
        assert event.comm == COMM, event
        assert event.flags == flags, (name, hex(event.flags), hex(flags))
        assert event.ret == result, (name, event.ret, result)
        assert not event.truncated and event.read_error is None, event
        in_function = mode in ("kprobe", "fentry")  # below the syscall: which one is unknown
        assert SYSCALL_NAMES[event.syscall] == ("do_sys_openat2" if in_function else name), event
        if not in_function:
            assert event.syscall != SYSCALL_UNKNOWN


def check_run_counts(program_ids: Set[int], mode: str, tmp_path, record_property,
                     runs_per_open: Dict[str, int] = RUNS_PER_OPEN) -> None:
    if not features.run_time_stats():
        pytest.skip(f"this kernel has no BPF run-time statistics: {features.run_time_stats().reason}")
    program_fds = [prog_get_fd_by_id(prog_id) for prog_id in program_ids]
    path = bytes(tmp_path) + b"/counted"
    os.close(sys_openat(path, os.O_WRONLY | os.O_CREAT))
    getppid = SYSCALLS["getppid"]
    try:
        with enable_stats():
            per_open = runs_per_call(program_fds, lambda: sys_openat(path, os.O_RDONLY))
            per_other = runs_per_call(program_fds, lambda: 0 * _libc.syscall(getppid))
    finally:
        for fd in program_fds:
            fd.close()
    record_property("runs_per_open", per_open)
    record_property("runs_per_other_syscall", per_other)
    print(f"{os.uname().release} {mode}: {per_open:g} runs per open, {per_other:g} per other syscall")
    if QUIET_MACHINE or RUNS_PER_OTHER_SYSCALL[mode] == 0:
        assert per_other == RUNS_PER_OTHER_SYSCALL[mode]
    else:
        assert per_other >= RUNS_PER_OTHER_SYSCALL[mode]
    if QUIET_MACHINE:
        assert per_open == runs_per_open[mode]
    else:
        assert per_open >= runs_per_open[mode]


def kprobe_events() -> str:
    text = ""
    for path in ("/sys/kernel/tracing/kprobe_events", "/sys/kernel/debug/tracing/kprobe_events"):
        if os.path.exists(path):
            with open(path) as f:
                text += f.read()
    return text


def test_auto_takes_the_first_mode_that_works_and_names_each_it_skipped():
    """The fallback chain: each mode the kernel lacks is reported, with why, before the one chosen."""
    need_root()
    usable = [mode for mode in ATTACH_MODES if ATTACH_FEATURES[mode]()]
    if not usable:
        pytest.skip("this kernel offers no attach mode at all")
    reports: List[str] = []
    with Tracer(ring_size=1 << 16, report=reports.append) as tracer:
        chosen = tracer.start()
    assert chosen == usable[0], reports
    skipped = ATTACH_MODES[: ATTACH_MODES.index(chosen)]
    for mode in skipped:
        line = next((r for r in reports if r.startswith(f"skipped {mode}: ")), None)
        assert line is not None and len(line) > len(f"skipped {mode}: "), reports
    assert reports[-1].startswith(f"tracing opens via {chosen} ("), reports


MEMLOCK_SCRIPT = """
import resource
from openat.tracer.attach import Tracer
resource.setrlimit(resource.RLIMIT_MEMLOCK, (64 << 10, 64 << 10))
reports = []
with Tracer(attach="tracepoint", report=reports.append) as tracer:
    tracer.start()
print("\\n".join(reports))
print("limit", resource.getrlimit(resource.RLIMIT_MEMLOCK)[0])
"""


def test_starts_under_a_small_memlock_limit():
    """Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK: the tracer lifts it there, and says so."""
    import subprocess
    import sys

    need_root()
    skip_unless(ATTACH_FEATURES["tracepoint"](), "syscall tracepoints")
    out = subprocess.run([sys.executable, "-c", MEMLOCK_SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("tracing opens via tracepoint") for line in lines), lines
    lifted = "lifted RLIMIT_MEMLOCK: this kernel charges BPF memory to it (before 5.11)" in lines
    import resource

    assert lines[-1] == f"limit {resource.RLIM_INFINITY if lifted else 64 << 10}", lines
    if os.environ.get("OPENAT_GUEST") == "1" and tuple(map(int, os.uname().release.split(".")[:2])) < (5, 11):
        assert lifted, lines


@pytest.mark.parametrize("transport", ["ringbuf", "perf"])
def test_lost_records_are_counted_exactly(tmp_path, transport):
    """A burst into a ring nobody reads: every open is either read or counted lost, none twice."""
    need_root()
    skip_unless(ATTACH_FEATURES["raw_tp"](), "raw_tp")
    opens = 400
    filters = Filters(pids=(os.getpid(),), comm=COMM)
    # One page per CPU for perf, the smallest ring buffer: a few dozen records fit.
    with Tracer(attach="raw_tp", options=ProbeOptions(filters=filters, wakeup_mark=1 << 12), ring_size=4096,
                transport=transport) as tracer:
        tracer.start()
        path = bytes(tmp_path) + b"/burst"
        os.close(sys_openat(path, os.O_WRONLY | os.O_CREAT))

        def burst() -> None:
            for _ in range(opens):
                os.close(sys_openat(path, os.O_RDONLY))

        in_named_thread(burst)
        last = bytes(tmp_path) + b"/after-the-burst"
        events: List[OpenEvent] = []
        tracer.poll_records(lambda record: events.append(decode_event(record)), 0)
        in_named_thread(lambda: os.close(sys_openat(last, os.O_WRONLY | os.O_CREAT)))
        drain(tracer, {last}, events)
        read = sum(1 for event in events if event.filename == path)
        lost = tracer.lost_events()
    assert lost > 0, "the burst should overflow a one-page ring"
    assert read > 0
    assert read + lost == opens, (read, lost)  # the creating open was this thread's: another comm


def test_auto_transport_falls_back_to_perf_without_a_ring_buffer(monkeypatch):
    """Kernels before 5.8 have no ring buffer: auto then sends through a perf event array, and says so."""
    need_root()
    skip_unless(ATTACH_FEATURES["raw_tp"](), "raw_tp")
    no_ring = features.Feature(False, "BPF_MAP_CREATE (create ringbuf map) failed: EINVAL")
    skip_unless(features.perf_event_array(), "perf event array")
    monkeypatch.setattr(features, "ringbuf", lambda: no_ring)  # no kernel of the matrix lacks it
    reports: List[str] = []
    with Tracer(attach="raw_tp", ring_size=1 << 16, report=reports.append) as tracer:
        tracer.start()
        assert tracer.transport == "perf"
    assert f"no BPF ring buffer ({no_ring.reason}): sending records through a perf event array" in reports


@pytest.mark.parametrize("mode", ATTACH_MODES)
def test_every_filter_loads_over_perf(mode):
    """The perf transport's probe passes this kernel's verifier in every mode, with every filter."""
    need_root()
    skip_unless(ATTACH_FEATURES[mode](), mode)
    every = Filters(pids=(1, 2), tids=(3,), uids=(0, 1000), comm=b"cat", failed_only=True, access_modes=(0, 2), flag_mask=0o100)
    for size in (2, 4096):
        with Tracer(attach=mode, options=ProbeOptions(filename_size=size, filters=every), ring_size=1 << 12, transport="perf") as tracer:
            assert tracer.start() == mode
            assert any("perf_event_output" in probe.program.listing() for probe in tracer.programs)
