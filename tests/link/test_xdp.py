"""openat.link.xdp on a veth pair in private network namespaces, through BPF links and netlink, and PROG_TEST_RUN."""

from __future__ import annotations

import errno

import pytest
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from openat.link import xdp
from openat.syscalls import BpfError, NotSupportedError, features
from openat.uapi import XDP_FLAGS_SKB_MODE, ProgType, XdpAction

from ..support import requires, skip_unless
from .conftest import inside, send_and_count
from .programs import arp_frame, hits, load_udp_port_program, returning, udp_frame

PORT, SENTINEL = 7000, 7001
COUNT = 25


def need_interface(interface: str) -> None:
    if interface == "link":
        skip_unless(features.xdp_link(), "XDP links (BPF_LINK_CREATE with BPF_XDP)")


@pytest.fixture(params=["link", "netlink"])
def interface(request) -> str:
    need_interface(request.param)
    return request.param


def program_ids(side) -> dict:
    with inside(side):
        return xdp.attached_program_ids(side.ifname)


@requires(features.xdp_program)
def test_prog_test_run_on_hand_made_frames_gives_the_verdict_and_counts():
    for verdict in (XdpAction.PASS, XdpAction.DROP):
        program, hits_map = load_udp_port_program(ProgType.XDP, PORT, verdict)
        with program, hits_map:
            frame = udp_frame(PORT)
            result = program.test_run(frame)
            assert (result.retval, result.data_out) == (verdict, frame)
            assert hits(hits_map) == 1
            with_options = udp_frame(PORT, options=bytes([1, 1, 1, 0]))  # three NOPs and an end: ihl 6
            assert program.test_run(with_options).retval == verdict
            assert hits(hits_map) == 2
            for other in (udp_frame(PORT + 1), arp_frame(), frame[:30], frame[:37]):
                assert program.test_run(other).retval == XdpAction.PASS, other
            assert hits(hits_map) == 2


@requires(features.xdp_program)
@pytest.mark.parametrize("mode", ["skb", "driver"])
def test_xdp_counts_exactly_the_packets_sent(veth, interface, mode):
    program, hits_map = load_udp_port_program(ProgType.XDP, PORT, XdpAction.PASS)
    with program, hits_map:
        with inside(veth.a):
            link = xdp.attach(program, veth.a.ifname, mode, interface=interface)
        with link:
            assert f"{mode} mode" in link.description and veth.a.ifname in link.description
            assert program_ids(veth.a) == {mode: program.id}
            assert send_and_count(veth, veth.b, PORT, COUNT, SENTINEL) == COUNT
            assert hits(hits_map) == COUNT
        assert program_ids(veth.a) == {}


@requires(features.xdp_program)
def test_xdp_drop_drops_and_detaching_restores_traffic(veth, interface):
    program, hits_map = load_udp_port_program(ProgType.XDP, PORT, XdpAction.DROP)
    with program, hits_map:
        with inside(veth.a):
            link = xdp.attach(program, veth.a.index, "skb", interface=interface)
        assert send_and_count(veth, veth.b, PORT, COUNT, SENTINEL) == 0
        assert hits(hits_map) == COUNT
        link.close()
        assert send_and_count(veth, veth.b, PORT, COUNT, SENTINEL) == COUNT
        assert hits(hits_map) == COUNT


@requires(features.xdp_program)
def test_auto_prefers_links_and_says_which_was_used(veth):
    said = []
    with returning(ProgType.XDP, XdpAction.PASS) as program:
        with inside(veth.a):
            with xdp.attach(program, veth.a.ifname, report=said.append) as link:
                link_fd = link.link_fd
    assert len(said) == 1
    if features.xdp_link():
        assert "via BPF link" in said[0] and "via BPF link" in link.description
        assert link_fd is not None and link_fd.closed
    else:
        assert "via netlink" in said[0] and "XDP links unavailable" in said[0]


def attach_theirs(side, program, flags: int = 0) -> None:
    """What another tool does: IFLA_XDP with pyroute2 directly (no UPDATE_IF_NOEXIST)."""
    attrs = [("IFLA_XDP_FD", program.fileno())] + ([("IFLA_XDP_FLAGS", flags)] if flags else [])
    with IPRoute(netns=side.netns) as ipr:
        ipr.link("set", index=side.index, xdp={"attrs": attrs})


@requires(features.xdp_program)
@pytest.mark.parametrize("their_flags", [0, XDP_FLAGS_SKB_MODE], ids=["their-driver-mode", "their-skb-mode"])
def test_another_tools_program_is_never_replaced(veth, interface, their_flags):
    with returning(ProgType.XDP, XdpAction.PASS, "t_theirs") as theirs, returning(ProgType.XDP, XdpAction.PASS) as ours:
        attach_theirs(veth.a, theirs, their_flags)
        before = program_ids(veth.a)
        with inside(veth.a), pytest.raises(BpfError) as raised:
            xdp.attach(ours, veth.a.ifname, "skb", interface=interface)
        assert f"already has an XDP program (id {theirs.id}" in str(raised.value)
        assert "\n" not in str(raised.value)
        assert program_ids(veth.a) == before and theirs.id in before.values()


@requires(features.xdp_program)
def test_closing_ours_leaves_a_program_that_replaced_it(veth):
    with returning(ProgType.XDP, XdpAction.PASS, "t_theirs") as theirs, returning(ProgType.XDP, XdpAction.PASS) as ours:
        with inside(veth.a):
            link = xdp.attach(ours, veth.a.ifname, "skb", interface="netlink")
        attach_theirs(veth.a, theirs, XDP_FLAGS_SKB_MODE)  # a tool that replaces what is there
        link.close()
        assert program_ids(veth.a) == {"skb": theirs.id}


@requires(features.xdp_program, features.xdp_link)
def test_the_kernel_keeps_other_tools_from_replacing_a_link(veth):
    with returning(ProgType.XDP, XdpAction.PASS, "t_theirs") as theirs, returning(ProgType.XDP, XdpAction.PASS) as ours:
        with inside(veth.a):
            link = xdp.attach(ours, veth.a.ifname, "skb", interface="link")
        with link:
            with pytest.raises(NetlinkError) as raised:
                attach_theirs(veth.a, theirs, XDP_FLAGS_SKB_MODE)
            assert raised.value.code == errno.EBUSY
            assert program_ids(veth.a) == {"skb": ours.id}


@requires(features.xdp_program)
def test_unknown_interfaces_are_a_clear_error(veth):
    with returning(ProgType.XDP, XdpAction.PASS) as program, inside(veth.a):
        for unknown in ("oa9", 4242):
            with pytest.raises(ValueError, match=f"no network interface {unknown!r} in this network namespace"):
                xdp.attach(program, unknown)
        for bad in ("", "x" * 16, "a/b", 0, -1):
            with pytest.raises(ValueError, match="not a network interface"):
                xdp.attach(program, bad)
        with pytest.raises(TypeError):
            xdp.attach(program, 1.5)  # type: ignore[arg-type]
    assert program_ids(veth.a) == {}


@requires(features.xdp_program, features.sched_cls_program)
def test_a_program_of_another_type_is_a_clear_error(veth, interface):
    with returning(ProgType.SCHED_CLS, 0, "t_classifier") as program, inside(veth.a):
        with pytest.raises(ValueError) as raised:
            xdp.attach(program, veth.a.ifname, interface=interface)
    message = str(raised.value)
    assert "needs a BPF_PROG_TYPE_XDP program" in message and "'t_classifier'" in message
    assert "is BPF_PROG_TYPE_SCHED_CLS" in message
    assert program_ids(veth.a) == {}


@requires(features.xdp_program)
def test_driver_mode_where_the_driver_refuses_is_a_clear_error(veth, interface):
    # veth refuses native XDP while its peer's MTU is beyond a page; lo has no native XDP at all
    with IPRoute(netns=veth.b.netns) as ipr:
        ipr.link("set", index=veth.b.index, mtu=9000)
    with returning(ProgType.XDP, XdpAction.PASS) as program, inside(veth.a):
        for ifname in (veth.a.ifname, "lo"):
            with pytest.raises(NotSupportedError) as raised:
                xdp.attach(program, ifname, "driver", interface=interface)
            message = str(raised.value)
            assert f"the driver of {ifname}" in message and "mode='skb' works on any interface" in message
            assert "\n" not in message
            assert xdp.attached_program_ids(ifname) == {}
        with xdp.attach(program, veth.a.ifname, "skb", interface=interface):  # the same interface in skb mode
            assert xdp.attached_program_ids(veth.a.ifname) == {"skb": program.id}


def test_bad_arguments_are_refused_before_anything_is_done():
    with pytest.raises(ValueError, match="unknown XDP mode 'native'"):
        xdp.attach(0, "lo", "native")
    with pytest.raises(ValueError, match="unknown XDP interface 'ioctl'"):
        xdp.attach(0, "lo", interface="ioctl")
