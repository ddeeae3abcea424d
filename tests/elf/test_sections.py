"""Section names to program types and attach points: libbpf's table and matching rules."""

from __future__ import annotations

import pytest

from openat.elf import SECTION_DEFS, match_section
from openat.uapi import BPF_F_SLEEPABLE, BPF_F_XDP_HAS_FRAGS, AttachType, ProgType


@pytest.mark.parametrize(
    "section, prog_type, attach_type, attach_to",
    [
        ("tracepoint/syscalls/sys_enter_openat", ProgType.TRACEPOINT, 0, "syscalls/sys_enter_openat"),
        ("tp/sched/sched_switch", ProgType.TRACEPOINT, 0, "sched/sched_switch"),
        ("raw_tracepoint/sys_enter", ProgType.RAW_TRACEPOINT, 0, "sys_enter"),
        ("raw_tp/sys_exit", ProgType.RAW_TRACEPOINT, 0, "sys_exit"),
        ("tp_btf/sched_switch", ProgType.TRACING, AttachType.TRACE_RAW_TP, "sched_switch"),
        ("kprobe/do_sys_openat2", ProgType.KPROBE, 0, "do_sys_openat2"),
        ("kprobe/do_sys_openat2+0x10", ProgType.KPROBE, 0, "do_sys_openat2+0x10"),
        ("kretprobe/do_sys_openat2", ProgType.KPROBE, 0, "do_sys_openat2"),
        ("fentry/do_unlinkat", ProgType.TRACING, AttachType.TRACE_FENTRY, "do_unlinkat"),
        ("fexit/do_unlinkat", ProgType.TRACING, AttachType.TRACE_FEXIT, "do_unlinkat"),
        ("xdp", ProgType.XDP, AttachType.XDP, ""),
        ("tc", ProgType.SCHED_CLS, 0, ""),
        ("classifier", ProgType.SCHED_CLS, 0, ""),
        ("socket", ProgType.SOCKET_FILTER, 0, ""),
        ("cgroup_skb/ingress", ProgType.CGROUP_SKB, AttachType.CGROUP_INET_INGRESS, ""),
        ("cgroup_skb/egress", ProgType.CGROUP_SKB, AttachType.CGROUP_INET_EGRESS, ""),
        ("perf_event", ProgType.PERF_EVENT, 0, ""),
        ("tc/ingress", ProgType.SCHED_CLS, AttachType.TCX_INGRESS, "ingress"),
        ("sk_skb/stream_parser", ProgType.SK_SKB, AttachType.SK_SKB_STREAM_PARSER, ""),
        ("kprobe", ProgType.KPROBE, 0, ""),  # "type+" matches the bare type too
        ("lsm/file_open", ProgType.LSM, AttachType.LSM_MAC, "file_open"),
        ("ksyscall/openat", ProgType.KPROBE, 0, "openat"),
    ],
)
def test_libbpf_section_names(section, prog_type, attach_type, attach_to):
    match = match_section(section)
    assert match is not None
    assert (match.definition.prog_type, match.definition.attach_type, match.attach_to) == (prog_type, attach_type, attach_to)
    assert match.autoload and match.prog_flags == 0


@pytest.mark.parametrize("section", ["kprobex/foo", "xdpfoo", "socket/extra", "tcx", "openat/unknown", "", "kprobe_multi"])
def test_names_libbpf_does_not_know(section):
    assert match_section(section) is None


def test_question_mark_turns_autoload_off():
    match = match_section("?xdp")
    assert match is not None and match.definition.prog_type == ProgType.XDP and not match.autoload


def test_flags_from_the_section():
    assert match_section("fentry.s/do_unlinkat").prog_flags == BPF_F_SLEEPABLE
    assert match_section("xdp.frags").prog_flags == BPF_F_XDP_HAS_FRAGS


def test_more_specific_rows_come_first():
    """The first row that matches wins, so no row may be shadowed by an earlier one for its own name."""
    for position, row in enumerate(SECTION_DEFS):
        name = row.pattern.rstrip("+")
        match = match_section(name)
        assert match is not None and match.definition == row, f"row {position} {row.pattern!r} is shadowed by {match.definition.pattern!r}"
