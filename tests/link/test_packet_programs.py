"""The packet helpers' code passes the verifier in XDP and tc programs and reads the right bytes (PROG_TEST_RUN)."""

from __future__ import annotations

import pytest

from openat.asm import R0, R2, R3, R4, R5, Program, load_packet, load_packet_pointers
from openat.syscalls import VerifierError, features, prog_load
from openat.uapi import ETH_HLEN, ProgType

from ..support import requires
from .programs import CONTEXT, ethernet

FAILED = 0xBAD  # r0 when the bytes are not in the packet
LOCAL_EXPERIMENTAL_ETHERTYPE = 0x88B5


def reader(prog_type: int, offset: int, size: int, network_order: bool) -> bytes:
    """Returns the low 32 bits of the ``size`` bytes at ``offset``, or FAILED."""
    p = Program()
    load_packet_pointers(p, R2, R3, context=CONTEXT[prog_type])
    load_packet(p, R0, R2, offset, size, data_end=R3, fail_label="short", scratch=R5, network_order=network_order)
    p.exit()
    p.label("short")
    p.mov(R0, FAILED)
    p.exit()
    return p.encode()


def expected(frame: bytes, offset: int, size: int, network_order: bool) -> int:
    value = int.from_bytes(frame[offset:offset + size], "big" if network_order else "little")
    return value & 0xFFFFFFFF


def prog_types():
    return [pytest.param(ProgType.XDP, id="xdp"), pytest.param(ProgType.SCHED_CLS, id="tc")]


@requires(features.xdp_program, features.sched_cls_program)
@pytest.mark.parametrize("prog_type", prog_types())
@pytest.mark.parametrize("size", [1, 2, 4, 8])
@pytest.mark.parametrize("network_order", [True, False])
def test_loads_pass_the_verifier_and_read_the_packet(prog_type, size, network_order):
    # Not IPv4: an skb test run refuses an IPv4 frame cut inside its IP header.
    frame = ethernet(LOCAL_EXPERIMENTAL_ETHERTYPE, bytes(range(1, 60)))
    for offset in (0, 12, 15, 33, len(frame) - size):
        with prog_load(reader(prog_type, offset, size, network_order), prog_type, name="t_reader") as program:
            assert program.test_run(frame).retval == expected(frame, offset, size, network_order), offset
            if offset + size - 1 >= ETH_HLEN:  # test runs want at least an Ethernet header
                assert program.test_run(frame[:offset + size - 1]).retval == FAILED  # one byte short


@requires(features.xdp_program)
def test_the_same_load_without_the_check_is_rejected():
    p = Program()
    load_packet_pointers(p, R2, R3, context="xdp")
    p.ldxh(R4, R2, 12)  # no comparison with data_end first
    p.mov(R0, 2)
    p.exit()
    with pytest.raises(VerifierError, match="invalid access to packet"):
        prog_load(p.encode(), ProgType.XDP, name="t_unchecked", slot_sources=p.slot_sources())
