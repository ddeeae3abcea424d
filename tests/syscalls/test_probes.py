"""Feature probes agree with what actually happens."""

from __future__ import annotations

import pytest

from openat.syscalls import AttachType, BpfError, MapType, ProgType, create_map, load_program
from openat.syscalls.btf import vmlinux_btf
from openat.syscalls.perf import kprobe_pmu_type
from openat.syscalls.probes import (
    feature_report,
    probe_fentry,
    probe_kprobe_pmu,
    probe_program,
    probe_ringbuf,
    probe_tp_btf,
)

from .programs import return_imm

pytestmark = pytest.mark.usefixtures("root")


def _loads(**kwargs) -> bool:
    try:
        load_program(return_imm(0).encode(), name="t_direct", **kwargs).close()
        return True
    except BpfError:
        return False


def test_fentry_probe_matches_a_direct_load():
    func = vmlinux_btf().func_id("do_sys_openat2")
    result = probe_fentry("do_sys_openat2")
    assert result.ok == _loads(prog_type=ProgType.TRACING, expected_attach_type=AttachType.TRACE_FENTRY, attach_btf_id=func)
    assert result.reason and "\n" not in result.reason
    if not result:
        assert "EPERM" in result.reason or "ENOTSUPP" in result.reason or "EINVAL" in result.reason


def test_tp_btf_probe_loads_and_attaches_here():
    result = probe_tp_btf("sys_enter", attach=True)
    assert result.ok, result.reason
    assert not probe_tp_btf("no_such_tracepoint")


def test_program_probe_reports_failure_reason():
    assert probe_program(ProgType.SOCKET_FILTER)
    bad = probe_program(ProgType.TRACING, AttachType.TRACE_FENTRY, attach_btf_id=0)
    assert not bad and "BPF_PROG_LOAD" in bad.reason


def test_ringbuf_probe_matches_map_creation():
    try:
        create_map(MapType.RINGBUF, 0, 0, 4096, name="t_rb").close()
        works = True
    except BpfError:
        works = False
    assert bool(probe_ringbuf()) == works


def test_kprobe_pmu_probe_matches_sysfs():
    assert probe_kprobe_pmu().ok == (kprobe_pmu_type() is not None)


def test_feature_report_has_every_probe():
    report = feature_report()
    assert {"btf", "ringbuf", "kprobe_pmu", "kprobe_events", "fentry", "tp_btf", "raw_tp", "tracepoint", "tracefs", "lockdown"} <= set(report)
    assert report["raw_tp"].ok and report["ringbuf"].ok and report["btf"].ok
    assert all(isinstance(p.reason, str) and p.reason for p in report.values())
