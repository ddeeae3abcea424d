"""openat.link: each hook attaches for real, and closing the Link removes exactly what it added."""

from __future__ import annotations

import os

import pytest

from openat.btf import BtfKind
from openat.link import Link, kprobe, raw_tracepoint, tracepoint, tracing
from openat.syscalls import MapType, NotSupportedError, features, map_create, prog_load
from openat.syscalls.btf import vmlinux_btf
from openat.uapi import LinkType

from ..support import requires, skip_unless
from ..syscalls.programs import count_own_calls, return_imm


class Resource:
    def __init__(self, name: str, log: list, fails: bool = False) -> None:
        self.name, self.log, self.fails = name, log, fails

    def close(self) -> None:
        self.log.append(self.name)
        if self.fails:
            raise OSError(5, f"{self.name} would not close")


def test_link_releases_in_reverse_once_even_when_one_release_fails():
    log: list = []
    link = Link("test", [Resource("event", log), Resource("program", log, fails=True), Resource("probe", log)])
    with pytest.raises(OSError, match="program would not close"):
        link.close()
    assert log == ["probe", "program", "event"] and link.closed
    link.close()
    assert log == ["probe", "program", "event"]
    with pytest.raises(ValueError, match="no BPF link"):
        link.info()


def count_getpid(attach) -> int:
    """Load count_own_calls for ``attach``'s hook, getpid() while attached and after; the count."""
    with map_create(MapType.ARRAY, 4, 8, 1, name="counter") as counter:
        link, program = attach(count_own_calls().encode({"counter": counter}))
        with program:
            with link:
                assert not link.closed
                for _ in range(5):
                    os.getpid()
            seen = int.from_bytes(counter.lookup(0), "little")
            for _ in range(5):
                os.getpid()  # detached: no longer counted
            assert int.from_bytes(counter.lookup(0), "little") == seen
    return seen


@requires(features.syscall_tracepoints)
def test_tracepoint_runs_until_closed():
    def attach(code):
        program = prog_load(code, tracepoint.TRACEPOINT_PROG_TYPE, name="t_tracepoint")
        return tracepoint.attach(program, "syscalls", "sys_enter_getpid"), program

    assert count_getpid(attach) >= 5


@requires(features.syscall_tracepoints)
def test_tracepoint_that_does_not_exist_leaves_nothing_open():
    with prog_load(return_imm(0).encode(), tracepoint.TRACEPOINT_PROG_TYPE, name="t_no_tp") as program:
        with pytest.raises(NotSupportedError, match="no_such_event"):
            tracepoint.attach(program, "syscalls", "no_such_event")


@requires(features.raw_tracepoint)
def test_raw_tracepoint_link_is_a_bpf_link():
    links = []

    def attach(code):
        program = prog_load(code, raw_tracepoint.RAW_TRACEPOINT_PROG_TYPE, name="t_raw_tp")
        link = raw_tracepoint.attach(program, "sys_enter")
        links.append(link.info())
        return link, program

    assert count_getpid(attach) >= 5
    assert links[0].type == LinkType.RAW_TRACEPOINT and links[0].tp_name == "sys_enter"


@requires(lambda: features.tp_btf("sys_enter", attach=True))
def test_tp_btf_loads_for_its_target_and_attaches():
    def attach(code):
        program = tracing.load(code, "tp_btf", "sys_enter", btf=vmlinux_btf(), name="t_tp_btf")
        return tracing.attach(program, "tp_btf sys_enter"), program

    assert count_getpid(attach) >= 5


def test_tracing_names_a_missing_target():
    skip_unless(features.btf(), "BTF")
    with pytest.raises(NotSupportedError, match="no BTF func 'no_such_function' in vmlinux"):
        tracing.target_btf_id("fentry", "no_such_function", vmlinux_btf())
    assert tracing.target_btf_id("tp_btf", "sys_exit", vmlinux_btf()) == vmlinux_btf().find("btf_trace_sys_exit", BtfKind.TYPEDEF)
    with pytest.raises(ValueError, match="unknown tracing program kind 'fnord'"):
        tracing.load(b"", "fnord", "x", btf=vmlinux_btf(), name="t")


def test_kprobe_says_what_the_kernel_lacks():
    with pytest.raises(ValueError, match="unknown kprobe interface 'uprobe'"):
        kprobe.attach(0, "do_sys_openat2", interface="uprobe")
    if features.kprobes():
        pytest.skip("this kernel has kprobes: the guest suite attaches them (tests/guest)")
    with pytest.raises(NotSupportedError, match="no kprobe PMU"):
        kprobe.attach(0, "do_sys_openat2")


def count_opens(attach) -> int:
    """Like count_getpid, for opens: the kprobe's hook."""
    with map_create(MapType.ARRAY, 4, 8, 1, name="counter") as counter:
        link, program = attach(count_own_calls().encode({"counter": counter}))
        with program:
            with link:
                for _ in range(5):
                    os.close(os.open("/dev/null", os.O_RDONLY))
            seen = int.from_bytes(counter.lookup(0), "little")
            os.close(os.open("/dev/null", os.O_RDONLY))
            assert int.from_bytes(counter.lookup(0), "little") == seen
    return seen


@pytest.mark.parametrize("interface", ["pmu", "tracefs"])
def test_kprobe_runs_until_closed_and_leaves_no_probe(interface):
    from openat.syscalls.kallsyms import open_syscall_function
    from openat.syscalls.tracefs import find_tracefs

    from ..support import kprobe_feature, need_root

    need_root()
    skip_unless(kprobe_feature(interface), f"kprobes through the {interface}")
    symbol = open_syscall_function().name
    reports: list = []

    def attach(code):
        program = prog_load(code, kprobe.KPROBE_PROG_TYPE, name="t_kprobe")
        return kprobe.attach(program, symbol, interface=interface, report=reports.append), program

    assert count_opens(attach) >= 5
    assert reports == []  # the interface asked for was used, with no fallback to report
    events = os.path.join(find_tracefs() or "/sys/kernel/tracing", "kprobe_events")
    if os.path.exists(events):
        with open(events) as f:
            assert f"openat_{os.getpid()}/" not in f.read()
