"""The opt-ins for what Linux refuses but RFC 9669 or other runtimes allow: out-of-range shift
immediates and ``callx``. Refused by default, with the errors they always had."""

from __future__ import annotations

import pytest

from openat.asm import AsmError, Program, R2, R3, W0, assemble, decode, disassemble
from openat.asm.instruction import field_problem
from openat.asm.opcodes import BPF_CALLX


def test_out_of_range_shift_is_refused_by_default() -> None:
    p = Program(isa="v4")
    with pytest.raises(AsmError, match=r"shift by 60 is outside 0\.\.31"):
        p.lsh(W0, 60)


@pytest.mark.parametrize("method, register, count, opcode", [
    ("lsh", W0, 60, 0x64), ("rsh", R2, 64, 0x77), ("arsh", R2, -1, 0xC7),
])
def test_out_of_range_shift_opt_in_encodes_the_immediate(method, register, count, opcode) -> None:
    p = Program(isa="v4", out_of_range_shifts=True)
    getattr(p, method)(register, count)
    (ins,) = p.instructions
    assert (ins.opcode, ins.imm) == (opcode, count)


def test_callx_is_refused_by_default_in_the_dsl_text_and_decoder() -> None:
    with pytest.raises(AsmError, match="callx is not an RFC 9669 instruction.*Program\\(callx=True\\)"):
        Program(isa="v4").callx(R2)
    with pytest.raises(AsmError, match="callx is not an RFC 9669 instruction"):
        assemble("callx r2\n")
    with pytest.raises(AsmError, match="unknown opcode 0x8d"):
        decode(bytes.fromhex("8d02000000000000"))


def test_callx_opt_in_matches_llvm_encoding_and_round_trips() -> None:
    p = Program(isa="v4", callx=True)
    p.callx(R3)
    p.exit()
    code = p.encode()
    assert code[:8] == bytes.fromhex("8d03000000000000")  # what llvm-mc -mcpu=v4 emits for callx r3
    assert assemble("callx r3\nexit\n", callx=True) == code
    (callx, _) = decode(code, callx=True)
    assert callx.text() == "callx r3" and callx.form.kind == "callx"


def test_callx_fields_are_checked() -> None:
    assert field_problem(BPF_CALLX, 2, 0, 0, 0, callx=True) is None
    assert "must be 0" in field_problem(BPF_CALLX, 2, 1, 0, 0, callx=True)
    assert field_problem(BPF_CALLX, 2, 0, 0, 0) == "unknown opcode 0x8d"
    with pytest.raises(AsmError, match="must be 0 for callx"):
        decode(bytes.fromhex("8d02010000000000"), callx=True)
    with pytest.raises(AsmError, match="64-bit R register"):
        Program(isa="v4", callx=True).callx(W0)


def test_disassembler_stays_strict() -> None:
    with pytest.raises(AsmError, match="unknown opcode 0x8d"):
        disassemble(bytes.fromhex("8d02000000000000"))
