"""openat.link.tc on a veth pair in private network namespaces: tcx links and clsact bpf filters."""

from __future__ import annotations

from typing import List

import pytest
from pyroute2 import IPRoute

from openat.link import tc
from openat.syscalls import BpfError, features
from openat.uapi import ETH_P_ALL, ProgType, TcAction, XdpAction

from ..support import requires, skip_unless
from .conftest import Side, inside, send_and_count
from .programs import arp_frame, hits, load_udp_port_program, returning, udp_frame

PORT, SENTINEL = 7100, 7101
COUNT = 20
UNSPEC = TcAction.UNSPEC & 0xFFFFFFFF  # test_run's retval is a u32


@pytest.fixture(params=["tcx", "netlink"])
def interface(request) -> str:
    if request.param == "tcx":
        skip_unless(features.tcx_link(), "tcx (BPF_LINK_CREATE with BPF_TCX_INGRESS)")
    return request.param


def qdiscs(side: Side) -> List[str]:
    with IPRoute(netns=side.netns) as ipr:
        return [q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(side.index) if q.get_attr("TCA_KIND") == "clsact"]


def filters(side: Side, direction: str) -> List[tuple]:
    """(priority, handle, name) of the bpf filters on ``direction``."""
    with IPRoute(netns=side.netns) as ipr:
        found = ipr.get_filters(index=side.index, parent=tc.CLSACT_PARENTS[direction])
        return [(f["info"] >> 16, f["handle"], dict(f.get_attr("TCA_OPTIONS")["attrs"]).get("TCA_BPF_NAME"))
                for f in found if f["handle"]]


def add_their_filter(side: Side, direction: str, program, priority: int, name: str = "theirs", command: str = "add-filter") -> None:
    """What another tool does: clsact (if absent) and a bpf filter with pyroute2 directly."""
    with IPRoute(netns=side.netns) as ipr:
        if not qdiscs(side):
            ipr.tc("add", "clsact", side.index)
        ipr.tc(command, "bpf", side.index, 1, fd=program.fileno(), name=name, parent=tc.CLSACT_PARENTS[direction],
               prio=priority, protocol=ETH_P_ALL, direct_action=True)


def nothing_attached(side: Side) -> bool:
    return not qdiscs(side) and not filters(side, "ingress") and not filters(side, "egress")


@requires(features.sched_cls_program)
def test_prog_test_run_on_hand_made_frames_gives_the_verdict_and_counts():
    program, hits_map = load_udp_port_program(ProgType.SCHED_CLS, PORT, TcAction.SHOT)
    with program, hits_map:
        assert program.test_run(udp_frame(PORT)).retval == TcAction.SHOT
        assert program.test_run(udp_frame(PORT, options=bytes(8))).retval == TcAction.SHOT
        for other in (udp_frame(PORT + 1), arp_frame(), udp_frame(PORT)[:37]):
            assert program.test_run(other).retval == UNSPEC
        assert hits(hits_map) == 2


@requires(features.sched_cls_program)
@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_tc_filters_see_and_drop_what_they_should_and_detaching_restores_traffic(veth, interface, direction):
    sender = veth.b if direction == "ingress" else veth.a
    program, hits_map = load_udp_port_program(ProgType.SCHED_CLS, PORT, TcAction.SHOT)
    with program, hits_map:
        with inside(veth.a):
            link = tc.attach(program, veth.a.ifname, direction, interface=interface)
        assert send_and_count(veth, sender, PORT, COUNT, SENTINEL) == 0
        assert hits(hits_map) == COUNT
        link.close()
        assert nothing_attached(veth.a)
        assert send_and_count(veth, sender, PORT, COUNT, SENTINEL) == COUNT
        assert hits(hits_map) == COUNT


@requires(features.sched_cls_program)
def test_a_program_without_verdict_counts_and_lets_everything_through(veth, interface):
    program, hits_map = load_udp_port_program(ProgType.SCHED_CLS, PORT, TcAction.UNSPEC)
    with program, hits_map:
        with inside(veth.a), tc.attach(program, veth.a.ifname, "egress", interface=interface) as link:
            assert send_and_count(veth, veth.a, PORT, COUNT, SENTINEL) == COUNT
            assert f"tc egress {veth.a.ifname}" in link.description
        assert hits(hits_map) == COUNT


@requires(features.sched_cls_program)
def test_netlink_creates_clsact_only_when_absent_and_removes_only_its_own(veth):
    with returning(ProgType.SCHED_CLS, TcAction.UNSPEC) as program, inside(veth.a):
        with tc.attach(program, veth.a.ifname, "ingress", interface="netlink") as link:
            assert "clsact qdisc (created)" in link.description
            assert qdiscs(veth.a) == ["clsact"]
            assert filters(veth.a, "ingress") == [(1, 1, f"t_return:{program.id}")]
        assert nothing_attached(veth.a)
        with IPRoute(netns=veth.a.netns) as ipr:
            ipr.tc("add", "clsact", veth.a.index)
        with tc.attach(program, veth.a.ifname, "egress", interface="netlink", priority=7, handle=3) as link:
            assert "priority 7 handle 3" in link.description and "(already there)" in link.description
        assert qdiscs(veth.a) == ["clsact"] and not filters(veth.a, "egress")


@requires(features.sched_cls_program)
def test_closing_ours_leaves_a_filter_another_tool_added_before(veth, interface):
    theirs, their_hits = load_udp_port_program(ProgType.SCHED_CLS, PORT, TcAction.UNSPEC, "t_theirs")
    ours, our_hits = load_udp_port_program(ProgType.SCHED_CLS, PORT, TcAction.UNSPEC)
    with theirs, their_hits, ours, our_hits:
        add_their_filter(veth.a, "ingress", theirs, priority=5)
        with inside(veth.a):
            link = tc.attach(ours, veth.a.ifname, "ingress", interface=interface)
        assert send_and_count(veth, veth.b, PORT, COUNT, SENTINEL) == COUNT
        assert (hits(our_hits), hits(their_hits)) == (COUNT, COUNT)  # both saw every packet
        link.close()
        assert filters(veth.a, "ingress") == [(5, 1, "theirs")] and qdiscs(veth.a) == ["clsact"]
        assert send_and_count(veth, veth.b, PORT, COUNT, SENTINEL) == COUNT
        assert (hits(our_hits), hits(their_hits)) == (COUNT, 2 * COUNT)


@requires(features.sched_cls_program)
def test_a_clsact_we_created_stays_while_another_tools_filter_is_on_it(veth):
    with returning(ProgType.SCHED_CLS, TcAction.UNSPEC, "t_theirs") as theirs, returning(ProgType.SCHED_CLS, TcAction.UNSPEC) as ours:
        with inside(veth.a):
            link = tc.attach(ours, veth.a.ifname, "ingress", interface="netlink")
        add_their_filter(veth.a, "egress", theirs, priority=2)
        link.close()
        assert qdiscs(veth.a) == ["clsact"]
        assert filters(veth.a, "egress") == [(2, 1, "theirs")] and not filters(veth.a, "ingress")


@requires(features.sched_cls_program)
def test_a_filter_that_replaced_ours_is_left_in_place(veth):
    with returning(ProgType.SCHED_CLS, TcAction.UNSPEC, "t_theirs") as theirs, returning(ProgType.SCHED_CLS, TcAction.UNSPEC) as ours:
        with inside(veth.a):
            link = tc.attach(ours, veth.a.ifname, "ingress", interface="netlink")
        add_their_filter(veth.a, "ingress", theirs, priority=tc.DEFAULT_PRIORITY, command="replace-filter")
        link.close()
        assert filters(veth.a, "ingress") == [(1, 1, "theirs")] and qdiscs(veth.a) == ["clsact"]


@requires(features.sched_cls_program)
def test_auto_prefers_tcx_unless_a_priority_is_given_and_says_which(veth):
    said: List[str] = []
    with returning(ProgType.SCHED_CLS, TcAction.UNSPEC) as program, inside(veth.a):
        with tc.attach(program, veth.a.ifname, report=said.append):
            pass
        with tc.attach(program, veth.a.ifname, priority=3, report=said.append) as link:
            assert "priority 3 handle 1" in link.description
    if features.tcx_link():
        assert "via tcx link" in said[0]
    else:
        assert "via netlink" in said[0] and "tcx unavailable" in said[0]
    assert "via netlink" in said[1] and "a priority or handle was given" in said[1]
    assert nothing_attached(veth.a)


@requires(features.sched_cls_program)
def test_a_taken_priority_and_handle_is_a_clear_error_and_leaves_nothing_of_ours(veth):
    with returning(ProgType.SCHED_CLS, TcAction.UNSPEC, "t_theirs") as theirs, returning(ProgType.SCHED_CLS, TcAction.UNSPEC) as ours:
        add_their_filter(veth.a, "ingress", theirs, priority=1)
        with inside(veth.a), pytest.raises(BpfError, match="already has a filter at priority 1 handle 1: choose another priority"):
            tc.attach(ours, veth.a.ifname, "ingress", interface="netlink")
        assert filters(veth.a, "ingress") == [(1, 1, "theirs")]


@requires(features.sched_cls_program)
def test_egress_next_to_an_ingress_qdisc_is_a_clear_error(veth):
    with IPRoute(netns=veth.a.netns) as ipr:
        ipr.tc("add", "ingress", veth.a.index)
    with returning(ProgType.SCHED_CLS, TcAction.UNSPEC) as program, inside(veth.a):
        with pytest.raises(BpfError, match="has an 'ingress' qdisc where clsact goes: egress filters need clsact"):
            tc.attach(program, veth.a.ifname, "egress", interface="netlink")
    assert not filters(veth.a, "egress")


@requires(features.sched_cls_program, features.xdp_program)
def test_bad_input_is_a_clear_error_and_attaches_nothing(veth, interface):
    with returning(ProgType.XDP, XdpAction.PASS, "t_xdp") as wrong, returning(ProgType.SCHED_CLS, 0) as program, inside(veth.a):
        with pytest.raises(ValueError, match=r"needs a BPF_PROG_TYPE_SCHED_CLS program; .*'t_xdp'.* is BPF_PROG_TYPE_XDP"):
            tc.attach(wrong, veth.a.ifname, interface=interface)
        for unknown in ("oa9", 4242):
            with pytest.raises(ValueError, match="no network interface"):
                tc.attach(program, unknown, interface=interface)
        with pytest.raises(ValueError, match="unknown tc direction 'sideways'"):
            tc.attach(program, veth.a.ifname, "sideways", interface=interface)
        with pytest.raises(ValueError, match="priority must be an int in 1..65535"):
            tc.attach(program, veth.a.ifname, priority=0x10000, interface="netlink")
    assert nothing_attached(veth.a)


def test_tcx_has_no_priority():
    with pytest.raises(ValueError, match="tcx programs have no priority or handle"):
        tc.attach(0, "lo", priority=2, interface="tcx")
