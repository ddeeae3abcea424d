"""openat.asm.packet emits the bounds checks the verifier needs, each instruction and error at the caller's line."""

from __future__ import annotations

import inspect

import pytest

from openat.asm import (
    R1, R2, R3, R4, R5, R6, W4,
    AsmError, Program, check_packet_bounds, ipv4_payload, load_packet, load_packet_pointers,
)
from openat.uapi import SK_BUFF_DATA, SK_BUFF_DATA_END, XDP_MD_DATA, XDP_MD_DATA_END


def texts(p: Program) -> list[str]:
    return [line.split("#")[0].split(":", 1)[1].strip() for line in p.listing().splitlines() if not line.endswith(":")]


def here() -> str:
    return f"test_packet.py:{inspect.currentframe().f_back.f_lineno}"  # type: ignore[union-attr]


def test_pointers_come_from_the_right_context_with_32_bit_loads():
    xdp, skb = Program(), Program()
    load_packet_pointers(xdp, R2, R3, context="xdp")
    load_packet_pointers(skb, R2, R3, context="skb")
    assert texts(xdp) == [f"w2 = *(u32 *)(r1 + {XDP_MD_DATA:#x})", f"w3 = *(u32 *)(r1 + {XDP_MD_DATA_END:#x})"]
    assert texts(skb) == [f"w2 = *(u32 *)(r1 + {SK_BUFF_DATA:#x})", f"w3 = *(u32 *)(r1 + {SK_BUFF_DATA_END:#x})"]


def test_ctx_may_be_overwritten_by_data_last():
    p = Program()
    load_packet_pointers(p, R1, R2, context="xdp")
    assert texts(p) == ["w2 = *(u32 *)(r1 + 0x4)", "w1 = *(u32 *)(r1 + 0x0)"]


def test_a_load_checks_its_bytes_then_loads_and_converts_from_network_order():
    p = Program()
    load_packet(p, R4, R2, 12, 2, data_end=R3, fail_label="out", scratch=R5)
    load_packet(p, R4, R2, 23, 1, data_end=R3, fail_label="out", scratch=R5)
    load_packet(p, R4, R2, 30, 4, data_end=R3, fail_label="out", scratch=R5, network_order=False)
    p.label("out")
    assert texts(p) == [
        "r5 = r2", "r5 += 0xe", "if r5 > r3 goto out", "w4 = *(u16 *)(r2 + 0xc)", "r4 = be16 r4",
        "r5 = r2", "r5 += 0x18", "if r5 > r3 goto out", "w4 = *(u8 *)(r2 + 0x17)",
        "r5 = r2", "r5 += 0x22", "if r5 > r3 goto out", "w4 = *(u32 *)(r2 + 0x1e)",
    ]


def test_ipv4_payload_skips_the_header_length_the_packet_says():
    p = Program()
    ipv4_payload(p, R6, R4, data_end=R3, fail_label="out", scratch=R5)
    p.label("out")
    assert texts(p) == [
        "r5 = r4", "r5 += 0x14", "if r5 > r3 goto out",
        "w5 = *(u8 *)(r4 + 0x0)", "r5 &= 0xf", "r5 <<= 0x2", "if r5 < 0x14 goto out",
        "r6 = r4", "r6 += r5",
    ]


def test_every_emitted_instruction_names_the_callers_line():
    p = Program()
    load_packet(p, R4, R2, 12, 2, data_end=R3, fail_label="out", scratch=R5); line = here()  # noqa: E702
    p.label("out")
    assert set(p.slot_sources()) == {line}


@pytest.mark.parametrize(
    "emit, problem",
    [
        (lambda p: load_packet_pointers(p, R2, R3, context="sk_buff"), "context must be one of 'xdp', 'skb'"),
        (lambda p: load_packet_pointers(p, R2, R2, context="xdp"), "data_end and data must be different registers"),
        (lambda p: check_packet_bounds(p, R2, R3, 14, "out", scratch=R2), "scratch and pointer must be different"),
        (lambda p: check_packet_bounds(p, R2, R3, 0, "out", scratch=R5), r"size must be an int in 1\.\.65535, got 0"),
        (lambda p: load_packet(p, R4, R2, 12, 3, data_end=R3, fail_label="out", scratch=R5), "size must be 1, 2, 4 or 8"),
        (lambda p: load_packet(p, R4, R2, -1, 2, data_end=R3, fail_label="out", scratch=R5), "offset must be an int"),
        (lambda p: load_packet(p, R4, R2, 40000, 2, data_end=R3, fail_label="out", scratch=R5), "signed 16-bit offset"),
        (lambda p: load_packet(p, W4, R2, 0, 8, data_end=R3, fail_label="out", scratch=R5), "must be an R register"),
        (lambda p: ipv4_payload(p, R5, R4, data_end=R3, fail_label="out", scratch=R5), "scratch and dst must be different"),
        (lambda p: check_packet_bounds(p, W4, R3, 1, "out", scratch=R5), "pointer must be a 64-bit R register"),
    ],
)
def test_bad_arguments_name_the_callers_line(emit, problem):
    with pytest.raises(AsmError, match=problem) as raised:
        emit(Program())
    assert "test_packet.py:" in str(raised.value)


def test_the_dst_of_a_load_may_be_its_pointer():
    p = Program()
    load_packet(p, R2, R2, 0, 1, data_end=R3, fail_label="out", scratch=R5)
    p.label("out")
    assert texts(p)[-1] == "w2 = *(u8 *)(r2 + 0x0)"


def test_ipv4_payload_needs_isa_v2():
    with pytest.raises(AsmError, match="needs ISA v2"):
        ipv4_payload(Program(isa="v1"), R6, R4, data_end=R3, fail_label="out", scratch=R5)
