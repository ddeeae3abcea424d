"""What a network Link leaves behind when the program using it stops: nothing, on exit, Ctrl-C and SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openat.link import tc, xdp
from openat.syscalls import features
from openat.uapi import ProgType, TcAction, XdpAction

from ..support import requires
from .conftest import inside
from .programs import returning
from .test_tc import filters, nothing_attached

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 30  # a bound for a loaded machine, not a timing check

# A program that attaches an XDP program and a tc filter to oa0 in namespace
# argv[1] (entered with pyroute2's netns support), says so, and waits.
USER = """
import sys, time
from pyroute2 import netns
netns.setns(sys.argv[1])
from openat.asm import Program, R0
from openat.link import tc, xdp
from openat.syscalls import prog_load
from openat.uapi import ProgType
def returning(prog_type, value):
    p = Program(); p.mov(R0, value); p.exit()
    return prog_load(p.encode(), prog_type, name="t_user")
xdp_link = xdp.attach(returning(ProgType.XDP, 2), "oa0", "skb", interface=sys.argv[2])
tc_link = tc.attach(returning(ProgType.SCHED_CLS, -1), "oa0", "egress", interface=sys.argv[3])
print("attached", flush=True)
time.sleep(120)
"""


def start_user(side, xdp_interface: str, tc_interface: str) -> subprocess.Popen:
    environment = dict(os.environ, PYTHONPATH=str(REPO))
    user = subprocess.Popen([sys.executable, "-c", USER, side.netns, xdp_interface, tc_interface],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    line = user.stdout.readline()
    assert line == "attached\n", line + user.stderr.read()
    return user


def xdp_ids(side) -> dict:
    with inside(side):
        return xdp.attached_program_ids(side.ifname)


def wait_detached(side) -> None:
    """Until the XDP program is gone (a BPF link goes when the kernel releases the dead process's fds)."""
    deadline = time.monotonic() + WAIT_S
    while xdp_ids(side) and time.monotonic() < deadline:
        time.sleep(0.05)


@requires(features.xdp_program, features.sched_cls_program)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "ctrl-c"])
def test_a_signal_to_the_program_removes_its_netlink_attachments(veth, signum):
    user = start_user(veth.a, "netlink", "netlink")
    try:
        assert "skb" in xdp_ids(veth.a) and filters(veth.a, "egress")
        user.send_signal(signum)
        _, err = user.communicate(timeout=WAIT_S)
    finally:
        user.kill()
    if signum == signal.SIGTERM:
        assert user.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err
    assert xdp_ids(veth.a) == {} and nothing_attached(veth.a), err


@requires(features.xdp_program, features.sched_cls_program, features.xdp_link)
def test_sigkill_leaves_nothing_where_the_kernel_has_links(veth):
    tc_interface = "tcx" if features.tcx_link() else "netlink"
    user = start_user(veth.a, "link", tc_interface)
    user.kill()
    user.wait(timeout=WAIT_S)
    wait_detached(veth.a)
    assert xdp_ids(veth.a) == {}
    if tc_interface == "tcx":
        assert nothing_attached(veth.a)


@requires(features.xdp_program)
def test_a_forked_child_neither_removes_the_parents_attachment_nor_inherits_the_sigterm_handler(veth):
    with returning(ProgType.XDP, XdpAction.PASS) as program:
        with inside(veth.a):
            link = xdp.attach(program, veth.a.ifname, "skb", interface="netlink")
        ready_read, ready_write = os.pipe()
        child = os.fork()
        if child == 0:  # never returns into pytest
            try:
                link.close()  # a copy of the parent's Link: closing it must not detach anything
                os.write(ready_write, b"x")
                time.sleep(WAIT_S)
            finally:
                os._exit(3)  # reached only if SIGTERM raised instead of killing
        os.close(ready_write)
        assert os.read(ready_read, 1) == b"x"
        os.close(ready_read)
        os.kill(child, signal.SIGTERM)
        _, status = os.waitpid(child, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
        assert xdp_ids(veth.a) == {"skb": program.id}
        link.close()
        assert xdp_ids(veth.a) == {}


@requires(features.sched_cls_program)
def test_a_programs_own_sigterm_handler_is_kept(veth):
    def own(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, own)
    try:
        with returning(ProgType.SCHED_CLS, TcAction.UNSPEC) as program, inside(veth.a):
            with tc.attach(program, veth.a.ifname, interface="netlink"):
                assert signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, previous)
