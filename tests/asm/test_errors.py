"""Nothing silently wrong: each bad input raises, naming the instruction and the source line."""

from __future__ import annotations

import re
from typing import Callable

import pytest

from openat.asm import (
    R0, R1, R2, R6, R10, W1, W2,
    AsmError, AsmSyntaxError, DecodeError, Instruction, IsaLevelError, Program,
    assemble, disassemble,
)

THIS_FILE = "test_errors.py"


def _line_of(marker: str) -> int:
    """Line number in this file of the (unique) line containing ``marker``."""
    with open(__file__, encoding="utf-8") as handle:
        hits = [
            n for n, text in enumerate(handle, 1)
            if marker in text and "_line_of(" not in text and "_raises_at(" not in text
        ]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


def _raises_at(marker: str, call_text: str, problem: str, error: type[AsmError] = AsmError):
    """Context: the error names the DSL call, this file's line with ``marker``, and the problem."""
    where = f"{THIS_FILE}:{_line_of(marker)}"
    pattern = re.escape(call_text) + r".*" + re.escape(where) + r".*" + problem
    return pytest.raises(error, match=pattern)


# --------------------------------------------------------------------------- DSL values

def test_alu64_immediate_beyond_signed_32_bits() -> None:
    p = Program()
    with _raises_at("#m-alu64", "mov(R1, 0xffffffff)", "sign-extends"):
        p.mov(R1, 0xFFFFFFFF)  #m-alu64


def test_alu32_immediate_beyond_32_bits() -> None:
    p = Program()
    with _raises_at("#m-alu32", "add(W1, 0x100000000)", "does not fit in 32 bits"):
        p.add(W1, 1 << 32)  #m-alu32


def test_alu32_accepts_unsigned_32_bit_pattern() -> None:
    p = Program()
    p.mov(W1, 0xFFFFFFFF)
    assert p.instructions[0].imm == -1


def test_offset_beyond_16_bits() -> None:
    p = Program()
    with _raises_at("#m-off", "ldxdw(R1, R6, 32768)", "signed 16-bit"):
        p.ldxdw(R1, R6, 32768)  #m-off


def test_store_value_wider_than_the_store() -> None:
    p = Program()
    with _raises_at("#m-stb", "stb(R10, -1, 256)", "does not fit in 8 bits"):
        p.stb(R10, -1, 256)  #m-stb
    with _raises_at("#m-sth", "sth(R10, -2, -32769)", "does not fit in 16 bits"):
        p.sth(R10, -2, -32769)  #m-sth


def test_lddw_beyond_64_bits() -> None:
    p = Program()
    with _raises_at("#m-lddw", "lddw(R1, 0x10000000000000000)", "64 bits"):
        p.lddw(R1, 1 << 64)  #m-lddw


def test_not_a_register() -> None:
    p = Program()
    with _raises_at("#m-reg", "mov(1, R2)", "must be a register"):
        p.mov(1, R2)  # type: ignore[arg-type]  #m-reg


def test_bool_is_not_an_immediate() -> None:
    p = Program()
    with _raises_at("#m-bool", "mov(R1, True)", "must be an int"):
        p.mov(R1, True)  #m-bool


def test_32_bit_address_register() -> None:
    p = Program()
    with _raises_at("#m-base", "ldxw(R1, W2, 0)", "64-bit R register"):
        p.ldxw(R1, W2, 0)  #m-base


def test_mixed_widths_in_alu() -> None:
    p = Program()
    with _raises_at("#m-mix", "add(R1, W2)", "mixes 32-bit"):
        p.add(R1, W2)  #m-mix


def test_64_bit_load_into_w_register() -> None:
    p = Program()
    with _raises_at("#m-ldw", "ldxdw(W1, R2, 0)", "R register"):
        p.ldxdw(W1, R2, 0)  #m-ldw


def test_shift_out_of_range_and_division_by_zero() -> None:
    p = Program()
    with _raises_at("#m-shift", "lsh(W1, 32)", "outside 0..31"):
        p.lsh(W1, 32)  #m-shift
    with _raises_at("#m-div", "div(R1, 0)", "division by the constant 0"):
        p.div(R1, 0)  #m-div


def test_bad_swap_and_movsx_widths() -> None:
    p = Program(isa="v4")
    with _raises_at("#m-be", "be(R1, 8)", "16, 32 or 64"):
        p.be(R1, 8)  #m-be
    with _raises_at("#m-sx", "movsx(W1, W2, 32)", "bits must be one of"):
        p.movsx(W1, W2, 32)  #m-sx


def test_unknown_helper_suggests_names() -> None:
    p = Program()
    with _raises_at("#m-helper", "call('ringbuf_reserv')", "did you mean ringbuf_reserve"):
        p.call("ringbuf_reserv")  #m-helper
    with _raises_at("#m-hid", "call(212)", "not in include/uapi/linux/bpf.h"):
        p.call(212)  #m-hid


def test_map_value_offset_negative() -> None:
    p = Program()
    with _raises_at("#m-mapoff", "ld_map_value(R1, 'cfg', -1)", "value offset"):
        p.ld_map_value(R1, "cfg", -1)  #m-mapoff


def test_pseudo_source_out_of_range() -> None:
    p = Program()
    with _raises_at("#m-pseudo", "ld_pseudo(R1, 7, 0)", "0-6"):
        p.ld_pseudo(R1, 7, 0)  #m-pseudo


def test_bad_isa_name() -> None:
    with pytest.raises(AsmError, match="v1, v2, v3, v4"):
        Program(isa="v5")


# --------------------------------------------------------------------------- labels and jumps

def test_undefined_label_names_the_jump_and_its_line() -> None:
    p = Program()
    p.label("out")
    p.jeq(R0, 0, "ot")  #m-undef
    p.exit()
    with _raises_at("#m-undef", "jeq(R0, 0, 'ot')", "undefined label 'ot'; did you mean out"):
        p.encode()


def test_duplicate_label_names_both_lines() -> None:
    p = Program()
    p.label("out")  #m-dup1
    first = f"{THIS_FILE}:{_line_of('#m-dup1')}"
    with _raises_at("#m-dup2", "label('out')", re.escape(first)):
        p.label("out")  #m-dup2


def test_label_must_be_an_identifier() -> None:
    p = Program()
    with _raises_at("#m-lname", "label('no spaces')", "identifier"):
        p.label("no spaces")  #m-lname


def _far_program(isa: str, jump: str) -> Program:
    p = Program(isa=isa)
    if jump == "ja":
        p.ja("far")  #m-far-ja
    else:
        p.jeq(R1, 0, "far")  #m-far-jeq
    for _ in range(32768):
        p.mov(R0, 0)
    p.label("far")
    p.exit()
    return p


def test_conditional_jump_too_far_is_an_error_at_every_level() -> None:
    p = _far_program("v4", "jeq")
    with _raises_at("#m-far-jeq", "jeq(R1, 0, 'far')", "32768 slots away"):
        p.encode()


def test_goto_too_far_is_an_error_below_v4() -> None:
    p = _far_program("v3", "ja")
    with _raises_at("#m-far-ja", "ja('far')", "gotol"):
        p.encode()


def test_goto_too_far_becomes_gotol_at_v4() -> None:
    p = _far_program("v4", "ja")
    first = p.instructions[0]
    assert (first.opcode, first.off, first.imm) == (0x06, 0, 32768)
    assert disassemble(first.encode()) == "\tgotol +0x8000\n"


def test_numeric_offset_too_far() -> None:
    p = Program()
    with _raises_at("#m-num", "jne(R1, R2, 40000)", "signed 16-bit"):
        p.jne(R1, R2, 40000)  #m-num


# --------------------------------------------------------------------------- maps

def test_unresolved_map_names_the_load_and_its_line() -> None:
    p = Program()
    p.ld_map_fd(R1, "events")  #m-nofd
    with _raises_at("#m-nofd", "ld_map_fd(R1, 'events')", "has no fd"):
        p.encode({})


def test_invalid_fd_value() -> None:
    p = Program()
    p.ld_map_fd(R1, "events")  #m-fd
    with _raises_at("#m-fd", "ld_map_fd(R1, 'events')", "not a valid fd"):
        p.encode({"events": -1})


# --------------------------------------------------------------------------- ISA levels

LEVEL_CASES: list[tuple[Callable[[Program], None], int, str]] = [
    (lambda p: p.jlt(R1, 0, 1), 2, "jlt"),
    (lambda p: p.jsle(R1, R2, 1), 2, "jsle"),
    (lambda p: p.jeq(W1, 0, 1), 3, "32-bit jump (JMP32 class)"),
    (lambda p: p.atomic_or(R1, 0, R2), 3, "atomic atomic_or"),
    (lambda p: p.atomic_add(R1, 0, R2, fetch=True), 3, "atomic atomic_add"),
    (lambda p: p.xchg(R1, 0, W2), 3, "atomic xchg"),
    (lambda p: p.cmpxchg(R1, 0, R2), 3, "atomic cmpxchg"),
    (lambda p: p.sdiv(R1, 3), 4, "signed division"),
    (lambda p: p.smod(W1, W2), 4, "signed modulo"),
    (lambda p: p.movsx(R1, R2, 8), 4, "sign-extending move"),
    (lambda p: p.ldxsb(R1, R2, 0), 4, "sign-extending load"),
    (lambda p: p.bswap(R1, 16), 4, "bswap"),
    (lambda p: p.gotol(5), 4, "gotol"),
    (lambda p: p.raw(Instruction(0xBF, 1, 2, 8, 0)), 4, "sign-extending move"),
]


@pytest.mark.parametrize("emit, level, what", LEVEL_CASES, ids=[c[2] + str(i) for i, c in enumerate(LEVEL_CASES)])
def test_instruction_above_target_level(emit: Callable[[Program], None], level: int, what: str) -> None:
    below = Program(isa=f"v{level - 1}")
    pattern = rf"{THIS_FILE}:\d+: {re.escape(what)} needs ISA v{level}, but this program targets v{level - 1}"
    with pytest.raises(IsaLevelError, match=pattern):
        emit(below)
    at_level = Program(isa=f"v{level}")
    emit(at_level)
    assert at_level.instructions[0].required_level == level


def test_v1_has_alu32_plain_atomic_add_and_packet_loads() -> None:
    p = Program(isa="v1")
    p.add(W1, 1)
    p.atomic_add(R1, 0, W2)
    p.ldabsw(0)
    p.stw(R10, -4, 0)
    assert {i.required_level for i in p.instructions} == {1}


# --------------------------------------------------------------------------- Instruction values

@pytest.mark.parametrize(
    "fields, problem",
    [
        ((0x100, 0, 0, 0, 0), "opcode"),
        ((0xB7, 16, 0, 0, 0), "dst"),
        ((0xB7, 1, 0, 1 << 15, 0), "off"),
        ((0xB7, 1, 0, 0, 1 << 32), "32 bits"),
        ((0x18, 1, 0, 0, 1 << 64), "64 bits"),
        ((0xB7, 11, 0, 0, 0), "no register r11"),
        ((0x07, 1, 1, 0, 0), "src must be 0"),
        ((0x8F, 1, 0, 0, 0), "unknown opcode 0x8f"),
        ((0xDB, 1, 2, 0, 2), "unknown atomic operation"),
    ],
)
def test_instruction_constructor_validates(fields: tuple[int, ...], problem: str) -> None:
    with pytest.raises(AsmError, match=problem):
        Instruction(*fields)


# --------------------------------------------------------------------------- decoding

@pytest.mark.parametrize(
    "hex_bytes, problem",
    [
        ("b7 01 00 00 05 00 00", "not a multiple of 8"),
        ("18 01 00 00 05 00 00 00", "second 8-byte slot"),
        ("18 01 00 00 05 00 00 00 b7 00 00 00 00 00 00 00", "second half of lddw"),
        ("18 71 00 00 05 00 00 00 00 00 00 00 00 00 00 00", "lddw src must be 0-6"),
        ("07 11 00 00 05 00 00 00", "src must be 0"),  # LLVM silently drops src here
        ("0f 21 00 00 05 00 00 00", "imm must be 0"),  # ...and imm here
        ("61 21 00 00 02 00 00 00", "imm must be 0"),
        ("c3 21 00 00 02 00 00 00", "unknown atomic operation 0x2"),
        ("b7 0b 00 00 02 00 00 00", "no register r11"),
        ("8d 01 00 00 00 00 00 00", "unknown opcode 0x8d"),  # callx: not RFC 9669
        ("e5 00 00 00 00 00 00 00", "unknown opcode 0xe5"),  # may_goto: not RFC 9669
        ("bf 21 01 00 08 00 00 00", "sign-extension width"),  # addr_space_cast
        ("85 30 00 00 00 00 00 00", "call src must be"),
        ("30 01 00 00 04 00 00 00", "dst, src and offset must be 0"),
    ],
)
def test_malformed_bytes_raise_decode_error_with_slot(hex_bytes: str, problem: str) -> None:
    code = bytes.fromhex("9500000000000000" + hex_bytes.replace(" ", ""))
    with pytest.raises(DecodeError, match=problem) as info:
        disassemble(code)
    assert info.value.offset >= 8
    assert "slot" in str(info.value) or "bytes" in str(info.value)


def test_decode_rejects_non_bytes() -> None:
    with pytest.raises(DecodeError):
        disassemble("b701000005000000")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- text assembler

@pytest.mark.parametrize(
    "text, line, column, problem",
    [
        ("r0 = 0\nr11 = 1\n", 2, 1, "no register r11"),
        ("r1 = 0x80000000\n", 1, 6, "does not fit"),
        ("  w1 += r2\n", 1, 9, "mixes r and w"),
        ("r1 = *(u64 *)(r2 + 0x8000)\n", 1, 20, "does not fit in 16 bits"),
        ("r1 = *(u24 *)(r2 + 0)\n", 1, 9, "access size"),
        ("exit\ngoto nowhere\n", 2, 6, "undefined label 'nowhere'"),
        ("a:\nexit\na:\n", 3, 1, "duplicate label 'a'"),
        ("r1 = 010\n", 1, 6, "octal"),
        ("r1 = r2 ; r3 = 1\n", 1, 6, "cannot parse"),
        ("frobnicate r1\n", 1, 1, "not an instruction"),
        ("r1 = 1 /* open\n", 1, 8, "unterminated"),
        ("callx r1\n", 1, 1, "callx"),
        ("if r1 > 5 goto\n", 1, 1, "expected 'if"),
        (".byte 1\n", 1, 1, "unsupported directive"),
    ],
)
def test_text_errors_carry_line_and_column(text: str, line: int, column: int, problem: str) -> None:
    with pytest.raises(AsmSyntaxError, match=problem) as info:
        assemble(text)
    assert (info.value.line, info.value.column) == (line, column), str(info.value)
    assert str(info.value).startswith(f"line {line}, column {column}: ")


def test_text_level_errors() -> None:
    with pytest.raises(AsmSyntaxError, match="needs ISA v4, but the target is v3") as info:
        assemble("r0 = 0\nr1 s/= r2\n", isa="v3")
    assert info.value.line == 2


def test_text_far_conditional_jump() -> None:
    text = "if r1 == 0 goto far\n" + "r0 = 0\n" * 32768 + "far:\nexit\n"
    with pytest.raises(AsmSyntaxError, match="32768 slots away") as info:
        assemble(text)
    assert (info.value.line, info.value.column) == (1, 17)
