"""The network feature probes agree with attaching for real, leave nothing behind, and doctor shows them."""

from __future__ import annotations

import subprocess
import sys

from openat.syscalls import BpfError, features, link_create, link_ids
from openat.tracer.doctor import Check, run_network_checks
from openat.uapi import AttachType, ProgType, TcAction, XdpAction

from ..support import need_root, requires
from .conftest import inside
from .programs import returning


def links_directly(side, prog_type: int, attach_type: int, verdict: int) -> bool:
    """Does BPF_LINK_CREATE of ``attach_type`` work on the test veth (what the probe claims to know)?"""
    with returning(prog_type, verdict) as program, inside(side):
        try:
            link_create(program, side.index, attach_type).close()
            return True
        except BpfError:
            return False


@requires(features.xdp_program)
def test_xdp_link_probe_matches_linking_to_a_veth(veth):
    assert bool(features.xdp_link()) == links_directly(veth.a, ProgType.XDP, AttachType.XDP, XdpAction.PASS)
    assert features.xdp_link().reason and "\n" not in features.xdp_link().reason


@requires(features.sched_cls_program)
def test_tcx_probe_matches_linking_to_a_veth(veth):
    assert bool(features.tcx_link()) == links_directly(veth.a, ProgType.SCHED_CLS, AttachType.TCX_INGRESS, TcAction.UNSPEC)


def test_program_type_probes():
    need_root()
    assert features.xdp_program() and features.sched_cls_program()


def test_link_probes_leave_no_link_behind():
    need_root()
    before = set(link_ids())
    for probe in (features.xdp_link, features.tcx_link):
        probe.__wrapped__()  # uncached: probe again now
    assert set(link_ids()) <= before


def test_doctor_has_a_network_section_that_says_what_the_probes_say():
    need_root()
    shown: list[Check] = []
    checks = run_network_checks(shown.append)
    assert shown == checks
    by_name = {check.name: check for check in checks}
    assert list(by_name) == ["pyroute2", "XDP programs", "XDP links", "sched_cls programs", "tcx links"]
    assert by_name["pyroute2"].status == "OK"  # the test extra installs it
    for name, feature in (("XDP links", features.xdp_link()), ("tcx links", features.tcx_link())):
        assert by_name[name].status == ("OK" if feature else "WARN") and by_name[name].detail == feature.reason
    assert all(check.status != "FAIL" for check in checks)  # tracing needs none of them


def test_doctor_prints_the_section_after_the_tracing_verdict():
    need_root()
    out = subprocess.run([sys.executable, "-m", "openat", "doctor"], capture_output=True, text=True, timeout=120).stdout
    tail = out.split("network hooks (openat.link.xdp, openat.link.tc; not needed for tracing):\n", 1)
    assert len(tail) == 2, out
    assert "tracing works here" in tail[0]
    assert [line.split()[1] for line in tail[1].splitlines() if line[:4].strip()] == ["pyroute2", "XDP", "XDP", "sched_cls", "tcx"]
