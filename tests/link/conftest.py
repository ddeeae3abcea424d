"""Network namespaces with a veth pair for the network hook tests: they touch no interface of the machine.

Each test that takes ``veth`` gets two fresh namespaces, ``a`` and ``b``,
joined by a veth pair (``oa0`` in a, ``oa1`` in b) with IPv4 addresses and
permanent neighbour entries (so no ARP is sent). Programs are attached in
``a``; traffic goes only between the two ends. Both namespaces, and with
them the interfaces and whatever is attached to them, are removed when the
test ends, also when it fails.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
from typing import Iterator, List, NamedTuple

import pytest
from pyroute2 import IPRoute, netns
from pyroute2.netlink.rtnl.ndmsg import NUD_PERMANENT

from ..support import need_root

_numbers = itertools.count(1)
RECEIVE_TIMEOUT_S = 10  # a bound for a loaded machine: the sentinel always arrives long before


class Side(NamedTuple):
    """One end of the pair: its namespace (a name under /run/netns), interface, addresses."""

    netns: str
    ifname: str
    index: int
    address: str
    mac: str


class VethPair(NamedTuple):
    a: Side
    b: Side

    def peer(self, side: Side) -> Side:
        return self.b if side is self.a else self.a


@contextlib.contextmanager
def inside(side: Side) -> Iterator[None]:
    """Run the block with this thread in ``side``'s namespace (attach calls find the interface there)."""
    netns.pushns(side.netns)
    try:
        yield
    finally:
        netns.popns()


def _make_pair(number: int) -> VethPair:
    names = [f"openat-test-{os.getpid()}-{number}-{end}" for end in "ab"]
    for name in names:
        netns.create(name)
    subnet = f"10.{200 + number // 250}.{number % 250}"
    with IPRoute(netns=names[0]) as ipr_a, IPRoute(netns=names[1]) as ipr_b:
        ipr_a.link("add", ifname="oa0", kind="veth", peer={"ifname": "oa1", "net_ns_fd": names[1]})
        sides = []
        for ipr, name, ifname, host in ((ipr_a, names[0], "oa0", 1), (ipr_b, names[1], "oa1", 2)):
            index = ipr.link_lookup(ifname=ifname)[0]
            ipr.addr("add", index=index, address=f"{subnet}.{host}", prefixlen=24)
            ipr.link("set", index=index, state="up")
            mac = ipr.link("get", index=index)[0].get_attr("IFLA_ADDRESS")
            sides.append(Side(name, ifname, index, f"{subnet}.{host}", mac))
        for ipr, here, there in ((ipr_a, sides[0], sides[1]), (ipr_b, sides[1], sides[0])):
            ipr.neigh("add", dst=there.address, lladdr=there.mac, ifindex=here.index, state=NUD_PERMANENT)
    return VethPair(*sides)


@pytest.fixture
def veth() -> Iterator[VethPair]:
    need_root()
    number = next(_numbers)
    try:
        pair = _make_pair(number)
        yield pair
    finally:
        for end in "ab":
            name = f"openat-test-{os.getpid()}-{number}-{end}"
            if name in netns.listnetns():
                netns.remove(name)


def udp_socket(side: Side, port: int = 0) -> socket.socket:
    """A UDP socket in ``side``'s namespace bound to its address (made by a child process entered into it)."""
    sock = netns.create_socket(side.netns, socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((side.address, port))
    return sock


@contextlib.contextmanager
def one_cpu() -> Iterator[None]:
    """Keep this thread on one CPU: what a veth receives goes to that CPU's backlog, in the order sent."""
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def send_and_count(pair: VethPair, sender: Side, port: int, count: int, sentinel_port: int) -> int:
    """Send ``count`` datagrams from ``sender`` to the other end's ``port``, then one to ``sentinel_port``.

    Returns how many arrived on ``port``, once the sentinel (sent last, on
    the same path, never filtered by the tests' programs) has arrived: all
    the earlier datagrams have been delivered or dropped by then.
    """
    receiver_side = pair.peer(sender)
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(udp_socket(receiver_side, port))
        sentinel = stack.enter_context(udp_socket(receiver_side, sentinel_port))
        source = stack.enter_context(udp_socket(sender))
        with one_cpu():
            for sequence in range(count):
                source.sendto(b"openat %d" % sequence, (receiver_side.address, port))
            source.sendto(b"sentinel", (receiver_side.address, sentinel_port))
        sentinel.settimeout(RECEIVE_TIMEOUT_S)
        assert sentinel.recv(64) == b"sentinel"
        receiver.setblocking(False)
        arrived: List[bytes] = []
        while True:
            try:
                arrived.append(receiver.recv(64))
            except BlockingIOError:
                return len(arrived)
