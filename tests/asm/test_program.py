"""Program behaviour beyond single encodings: sources, listing, relocations, sequences."""

from __future__ import annotations

import pytest

from openat.asm import (
    R0, R1, R2, R3, R6, R7, R10, W1,
    AsmError, Program, decode, disassemble, read_str, ringbuf_reserve, ringbuf_submit, zero_stack,
)


def test_each_slot_has_the_emitting_line() -> None:
    p = Program()
    p.mov(R0, 0); first = _this_line()  # noqa: E702
    p.lddw(R1, 1 << 40); second = _this_line()  # noqa: E702
    assert p.slot_sources() == [f"test_program.py:{first}", f"test_program.py:{second}", f"test_program.py:{second}"]
    assert p.instructions[1].source == f"test_program.py:{second}"


def _this_line() -> int:
    import sys

    return sys._getframe(1).f_lineno


def test_sequence_helpers_attribute_instructions_to_the_caller() -> None:
    p = Program()
    zero_stack(p, -16, 16); line = _this_line()  # noqa: E702
    assert set(p.slot_sources()) == {f"test_program.py:{line}"}


def test_one_program_encodes_with_different_fds() -> None:
    p = Program()
    p.ld_map_fd(R1, "events")
    p.ld_map_value(R2, "cfg", 4)
    p.exit()
    first = decode(p.encode({"events": 3, "cfg": 4}))
    second = decode(p.encode({"events": 30, "cfg": 40}))
    assert (first[0].imm, first[1].imm) == (3, (4 << 32) | 4)
    assert (second[0].imm, second[1].imm) == (30, (4 << 32) | 40)
    assert p.map_names == ["events", "cfg"]
    assert [(r.slot, r.kind, r.offset) for r in p.relocations] == [(0, "map_fd", 0), (2, "map_value", 4)]


def test_fileno_objects_are_accepted_as_fds() -> None:
    class FakeMap:
        def fileno(self) -> int:
            return 9

    p = Program()
    p.ld_map_fd(R1, "m")
    assert decode(p.encode({"m": FakeMap()}))[0].imm == 9


def test_backward_and_forward_labels_and_bpf_to_bpf_call() -> None:
    p = Program()
    p.label("top")
    p.call_label("sub")
    p.jne(R0, 0, "top")
    p.ja("end")
    p.label("sub")
    p.mov(R0, 1)
    p.exit()
    p.label("end")
    p.exit()
    insns = p.instructions
    assert (insns[0].src, insns[0].imm) == (1, 2)  # call → slot 3
    assert insns[1].off == -2  # jne → slot 0
    assert insns[2].off == 2  # ja → slot 5


def test_ld_func_points_at_label() -> None:
    p = Program()
    p.ld_func(R2, "cb")
    p.exit()
    p.label("cb")
    p.exit()
    ins = p.instructions[0]
    assert (ins.src, ins.imm) == (4, 2)  # target = slot of lddw + imm + 1, as the verifier reads it


def test_listing_shows_labels_helpers_maps_and_lines() -> None:
    p = Program()
    p.ld_map_fd(R1, "events")
    p.call("ktime_get_ns")
    p.jeq(R0, 0, "out")
    p.label("out")
    p.exit()
    lines = p.listing().splitlines()
    assert lines[0].startswith("    0:  ld_pseudo r1, 0x1, 0x0") and "map 'events'; test_program.py:" in lines[0]
    assert "call 0x5 # bpf_ktime_get_ns" in lines[1]
    assert "if r0 == 0x0 goto out" in lines[2]
    assert lines[3] == "out:"


def test_instructions_are_cached_until_next_emit() -> None:
    p = Program()
    p.ja("x")
    p.label("x")
    before = p.instructions
    p.exit()
    assert len(p.instructions) == len(before) + 1


def test_zero_stack_uses_widest_aligned_stores() -> None:
    p = Program()
    zero_stack(p, -15, 15)
    text = disassemble(p.encode())
    assert text.split("\n")[:-1] == [
        "\t*(u8 *)(r10 - 0xf) = 0x0",
        "\t*(u16 *)(r10 - 0xe) = 0x0",
        "\t*(u32 *)(r10 - 0xc) = 0x0",
        "\t*(u64 *)(r10 - 0x8) = 0x0",
    ]


@pytest.mark.parametrize("offset, size", [(-8, 16), (-520, 8), (-8, 0)])
def test_zero_stack_refuses_areas_outside_the_stack(offset: int, size: int) -> None:
    with pytest.raises(AsmError, match=r"zero_stack.*test_program\.py:\d+"):
        zero_stack(Program(), offset, size)


def test_read_str_handles_argument_registers_as_inputs() -> None:
    p = Program()
    read_str(p, R3, 0, 16, R1)  # dst in r3, src in r1: both are argument registers
    text = disassemble(p.encode())
    assert text.split("\n")[:-1] == [
        "\tr0 = r1", "\tr1 = r3", "\tr3 = r0", "\tr2 = 0x10", "\tcall 0x72",
    ]


def test_ringbuf_reserve_submit_sequence() -> None:
    p = Program()
    ringbuf_reserve(p, R6, "events", 64, "out")
    read_str(p, R6, 8, 56, R7, user=False)
    ringbuf_submit(p, R6)
    p.label("out")
    p.exit()
    text = disassemble(p.encode({"events": 5}), helper_comments=True)
    assert "ld_pseudo r1, 0x1, 0x5" in text
    assert "call 0x83 # bpf_ringbuf_reserve" in text
    assert "if r0 == 0x0 goto +0x9" in text
    assert "call 0x73 # bpf_probe_read_kernel_str" in text
    assert "call 0x84 # bpf_ringbuf_submit" in text


def test_sequence_argument_checks() -> None:
    with pytest.raises(AsmError, match="64-bit R register"):
        ringbuf_reserve(Program(), W1, "events", 8, "out")
    with pytest.raises(AsmError, match="positive"):
        read_str(Program(), R10, -8, 0, R2)
    with pytest.raises(AsmError, match="64-bit R register"):
        read_str(Program(), R10, -8, 8, W1)


def test_registers_are_immutable_and_pickle_to_themselves() -> None:
    import pickle

    with pytest.raises(AttributeError):
        R1.num = 2  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(R10)) is R10
    assert R1.w is W1 and W1.r is R1 and str(W1) == "w1" and repr(R3) == "R3"
    assert R2.num == 2


def test_instruction_equality_ignores_source_and_supports_replace() -> None:
    a = Program()
    a.mov(R1, 5)
    b = Program()
    b.mov(R1, 5)
    assert a.instructions[0] == b.instructions[0]
    assert hash(a.instructions[0]) == hash(b.instructions[0])
    changed = a.instructions[0].replace(imm=6)
    assert changed != a.instructions[0] and changed.imm == 6
