"""Feature probes agree with what actually happens when the same thing is done directly."""

from __future__ import annotations

import os

import pytest

from openat.syscalls import AttachType, BpfError, MapType, ProgType, features, map_create, prog_load
from openat.syscalls.btf import vmlinux_btf
from openat.syscalls.perf import kprobe_pmu_type

from .programs import return_imm

pytestmark = pytest.mark.usefixtures("root")


def _loads(**kwargs) -> bool:
    try:
        prog_load(return_imm(0).encode(), name="t_direct", **kwargs).close()
        return True
    except BpfError:
        return False


def test_fentry_probe_matches_a_direct_load():
    func = vmlinux_btf().func_id("do_sys_openat2")
    result = features.fentry("do_sys_openat2")
    assert result.available == _loads(prog_type=ProgType.TRACING, expected_attach_type=AttachType.TRACE_FENTRY, attach_btf_id=func)
    assert result.reason and "\n" not in result.reason
    if not result:
        assert "EPERM" in result.reason or "ENOTSUPP" in result.reason or "EINVAL" in result.reason


def test_tp_btf_probe_loads_and_attaches_here():
    result = features.tp_btf("sys_enter", attach=True)
    assert result.available, result.reason
    missing = features.tp_btf("no_such_tracepoint")
    assert not missing and "btf_trace_no_such_tracepoint" in missing.reason


def test_program_type_probe():
    assert features.program_type(ProgType.SOCKET_FILTER)
    assert features.raw_tracepoint()


def test_task_btf_helper_probe_matches_a_direct_load():
    from openat.asm import R0, Program

    p = Program()
    p.call("get_current_task_btf")
    p.mov(R0, 0)
    p.exit()
    try:
        prog_load(p.encode(), ProgType.RAW_TRACEPOINT, name="t_task_btf").close()
        works = True
    except BpfError:
        works = False
    assert bool(features.task_btf_helper()) == works


def test_ringbuf_probe_matches_map_creation():
    try:
        map_create(MapType.RINGBUF, 0, 0, 4096, name="t_rb").close()
        works = True
    except BpfError:
        works = False
    assert bool(features.ringbuf()) == works


def test_kprobe_pmu_probe_matches_sysfs():
    assert features.kprobe_pmu().available == (kprobe_pmu_type() is not None)
    assert bool(features.kprobes()) == bool(features.kprobe_pmu() or features.kprobe_events())


def test_answers_are_cached():
    assert features.ringbuf() is features.ringbuf()
    assert features.highest_isa() is features.highest_isa()


def test_highest_isa_follows_the_kernel_version():
    # ISA v4 (sdiv, movsx, ...) came with Linux 6.6; openat's probe needs v3 (5.1).
    level, refused = features.highest_isa()
    major, minor = (int(part) for part in os.uname().release.split(".")[:2])
    if (major, minor) >= (6, 6):
        assert (level, refused) == ("v4", "")
    else:
        assert level == "v3" and refused.startswith("v4 refused: ")


def test_report_has_every_probe():
    report = features.report()
    assert {
        "btf", "ringbuf", "perf_event_array", "kprobe_pmu", "kprobe_events", "fentry", "tp_btf", "raw_tp",
        "tracepoint", "tracefs", "task_btf_helper", "run_time_stats", "lockdown",
    } <= set(report)
    assert report["raw_tp"] and report["ringbuf"] and report["btf"]
    assert all(isinstance(f.reason, str) and f.reason and "\n" not in f.reason for f in report.values())
