"""xdp and tc programs of an object attached by section to an interface: a veth pair in private namespaces."""

from __future__ import annotations

import pytest

pytest.importorskip("pyroute2", reason="the xdp and tc hooks need pyroute2 (pip install 'openat[net]')")

from openat.elf import ElfError, load_spec  # noqa: E402
from openat.syscalls import features  # noqa: E402

from ..link.conftest import inside, send_and_count, veth  # noqa: E402,F401  (veth: the fixture)
from ..support import requires  # noqa: E402

XDP_INDEX, TC_INDEX = 9, 10  # tests/elf/c/sections.bpf.c counts each program's runs in 'hits' at its index

pytestmark = pytest.mark.usefixtures("no_fd_leaks")


def _hits(coll, index: int) -> int:
    return int.from_bytes(coll.maps["hits"].lookup(index), "little")


@requires(features.xdp_program)
def test_xdp_and_tc_sections_attach_to_the_interface_given(bpf_object, veth):
    spec = load_spec(bpf_object("sections"))
    with spec.load(programs=["xdp_pass", "tc_ok"]) as coll:
        with pytest.raises(ElfError, match=r"attaches to an interface: attach\(target='eth0'\)"):
            coll.programs["xdp_pass"].attach()
        with inside(veth.a):
            xdp_link = coll.programs["xdp_pass"].attach(veth.a.ifname)
            tc_link = coll.programs["tc_ok"].attach(str(veth.a.index))  # an index works too
        with xdp_link, tc_link:
            arrived = send_and_count(veth, veth.b, 7100, 10, 7101)
        assert arrived == 10  # XDP_PASS and TC_ACT_OK let everything through
        assert _hits(coll, XDP_INDEX) >= 11 and _hits(coll, TC_INDEX) >= 11  # the 10 and the sentinel, at least
        before = (_hits(coll, XDP_INDEX), _hits(coll, TC_INDEX))
        send_and_count(veth, veth.b, 7100, 3, 7101)
        assert (_hits(coll, XDP_INDEX), _hits(coll, TC_INDEX)) == before  # detached on close
