"""The network examples run as a user would run them, inside a private network namespace with a veth pair."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from typing import Callable, List

from openat.link import xdp
from openat.syscalls import features

from ..link.conftest import Side, inside, send_and_count, veth  # noqa: F401 (veth: the fixture)
from ..link.test_tc import nothing_attached
from ..support import requires
from .test_examples import EXAMPLES, RUN_TIMEOUT_S

# Runs the example as it is, in the namespace (entered with pyroute2's netns support).
ENTER_NETNS = "import os, sys; from pyroute2 import netns; netns.setns(sys.argv[1]); os.execv(sys.executable, [sys.executable] + sys.argv[2:])"
COUNT = 30


class Example:
    """An example running in ``side``'s namespace; its stdout lines arrive in a queue as they are printed."""

    def __init__(self, side: Side, name: str, *args: str) -> None:
        environment = dict(os.environ, PYTHONPATH=str(EXAMPLES.parent))  # this tree's openat, also in the guest
        self.process = subprocess.Popen([sys.executable, "-c", ENTER_NETNS, side.netns, str(EXAMPLES / name), *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
        self.lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:  # type: ignore[union-attr]
            self.lines.put(line.rstrip("\n"))

    def attached(self) -> str:
        """The report line saying how it attached (first on stderr)."""
        line = self.process.stderr.readline()  # type: ignore[union-attr]
        assert " via " in line, line + self.process.stderr.read()  # type: ignore[union-attr]
        return line

    def wait_for(self, wanted: Callable[[str], bool]) -> List[str]:
        """stdout lines up to the first one ``wanted`` accepts."""
        seen: List[str] = []
        while not seen or not wanted(seen[-1]):
            seen.append(self.lines.get(timeout=RUN_TIMEOUT_S))
        return seen

    def stop(self, signum: int) -> str:
        self.process.send_signal(signum)
        self.process.wait(timeout=RUN_TIMEOUT_S)  # not communicate(): stdout is the reader thread's
        err = self.process.stderr.read()  # type: ignore[union-attr]
        assert self.process.returncode == 0, err
        assert "Traceback" not in err
        return err


def xdp_programs(side: Side) -> dict:
    with inside(side):
        return xdp.attached_program_ids(side.ifname)


@requires(features.xdp_program)
def test_xdp_count_prints_a_table_with_every_packet_sent_per_protocol(veth):  # noqa: F811
    example = Example(veth.a, "xdp_count.py", veth.a.ifname)
    try:
        assert "XDP program 'xdp_count' on oa0" in example.attached()
        assert send_and_count(veth, veth.b, 7200, COUNT, 7201) == COUNT  # every packet passes
        # the sentinel is one more UDP packet: COUNT + 1 in the udp row
        lines = example.wait_for(lambda line: re.match(rf"^udp\s+{COUNT + 1}\s+\d+$", line) is not None)
        assert any(line.split() == ["PROTOCOL", "PACKETS", "LAST", "SECOND"] for line in lines)
    finally:
        example.stop(signal.SIGTERM)
    assert xdp_programs(veth.a) == {}


@requires(features.sched_cls_program)
def test_tc_drop_udp_drops_what_it_says_and_stops_on_ctrl_c(veth):  # noqa: F811
    example = Example(veth.a, "tc_drop_udp.py", veth.a.ifname, "7300")
    try:
        assert "tc program 'tc_drop_udp' on oa0" in example.attached()
        assert send_and_count(veth, veth.a, 7300, COUNT, 7301) == 0  # to port 7300: none arrive; 7301 passes
        example.wait_for(lambda line: line == f"dropped {COUNT} UDP datagrams to port 7300")
    finally:
        example.stop(signal.SIGINT)
    assert example.lines.get(timeout=RUN_TIMEOUT_S) == f"in all: dropped {COUNT} UDP datagrams to port 7300"
    assert nothing_attached(veth.a)
    assert send_and_count(veth, veth.a, 7300, COUNT, 7301) == COUNT


@requires(features.xdp_program)
def test_an_unknown_interface_is_one_line_on_stderr(veth):  # noqa: F811
    for name, args in (("xdp_count.py", ["nope0"]), ("tc_drop_udp.py", ["nope0", "53"])):
        example = Example(veth.a, name, *args)
        example.process.wait(timeout=RUN_TIMEOUT_S)
        err = example.process.stderr.read()  # type: ignore[union-attr]
        assert example.process.returncode == 1
        assert err.splitlines() == [f"{name[:-3]}: no network interface 'nope0' in this network namespace"]
