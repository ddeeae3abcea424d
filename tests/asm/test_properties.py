"""Property tests: random valid instructions round-trip; random bytes decode or raise DecodeError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from .asm_forms import FORMS_LIST, Form, make
from openat.asm import AsmError, DecodeError, Instruction, assemble, decode, disassemble
from openat.asm.instruction import encode


@st.composite
def instructions(draw: st.DrawFn) -> Instruction:
    form: Form = draw(st.sampled_from(FORMS_LIST))
    values = {name: draw(st.integers(lo, hi)) for name, (lo, hi) in form.free.items()}
    return make(form, values)


@settings(max_examples=300, deadline=None)
@given(st.lists(instructions(), min_size=1, max_size=12))
def test_random_valid_programs_round_trip_through_bytes_and_text(program: list[Instruction]) -> None:
    code = encode(program)
    assert decode(code) == program
    assert assemble(disassemble(code)) == code
    assert assemble(disassemble(code, labels=True, helper_comments=True)) == code


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    try:
        text = disassemble(data)
    except DecodeError:
        return
    assert assemble(text) == data  # whatever decodes must reassemble exactly


@settings(max_examples=400, deadline=None)
@given(
    st.integers(0, 255), st.integers(0, 15), st.integers(0, 15),
    st.integers(-(1 << 15), (1 << 15) - 1), st.integers(-(1 << 31), (1 << 31) - 1),
)
def test_random_fields_construct_or_raise_asm_error(opcode: int, dst: int, src: int, off: int, imm: int) -> None:
    try:
        ins = Instruction(opcode, dst, src, off, imm)
    except AsmError:
        return
    assert decode(ins.encode()) == [ins]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="rw0123456789+-*()=<>&|^sxlgoifcatbeunp ;#\n[]:,", max_size=40))
def test_random_text_assembles_or_raises_asm_error(text: str) -> None:
    try:
        code = assemble(text)
    except AsmError:
        return
    assert assemble(disassemble(code)) == code
