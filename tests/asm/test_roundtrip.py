"""Round trips over every form: Instruction ↔ bytes ↔ text, with boundary and random operands."""

from __future__ import annotations

import random

import pytest

from .asm_forms import FORMS_LIST, Form, instances
from openat.asm import Instruction, assemble, decode, disassemble
from openat.asm.instruction import encode


@pytest.mark.parametrize("form", FORMS_LIST, ids=[f.name for f in FORMS_LIST])
def test_bytes_text_bytes(form: Form) -> None:
    rng = random.Random(form.name)
    for ins in instances(form, rng, randoms=8):
        code = ins.encode()
        assert len(code) == ins.size
        assert decode(code) == [ins]
        text = disassemble(code)
        assert assemble(text) == code, text
        labelled = disassemble(code, labels=True, helper_comments=True)
        assert assemble(labelled) == code, labelled


def test_whole_program_of_every_form_round_trips_with_labels() -> None:
    rng = random.Random(1)
    program = [ins for form in FORMS_LIST for ins in instances(form, rng, randoms=1)]
    code = encode(program)
    assert decode(code) == program
    for options in ({}, {"labels": True}, {"labels": True, "helper_comments": True}):
        assert assemble(disassemble(code, **options)) == code


def test_short_jumps_get_labels_and_still_round_trip() -> None:
    code = bytes.fromhex(
        "1501020000000000"  # if r1 == 0 goto +2
        "b700000001000000"
        "0500feff00000000"  # goto -2 → lands on the mov above
        "8510000001000000"  # call pc+1 → lands after exit
        "9500000000000000"
        "9500000000000000"
    )
    text = disassemble(code, labels=True)
    assert "goto L3" in text and "goto L1" in text and "call L5" in text
    assert "L1:\n" in text and "L3:\n" in text and "L5:\n" in text
    assert assemble(text) == code


def test_jump_into_the_middle_of_lddw_keeps_a_numeric_offset() -> None:
    code = Instruction(0x05, off=1).encode() + Instruction(0x18, 1, 0, 0, 5).encode()
    text = disassemble(code, labels=True)
    assert "goto +0x1" in text
    assert assemble(text) == code


def test_disassemble_options_prefix_slots_and_bytes() -> None:
    code = Instruction(0xB7, 1, 0, 0, 5).encode() + Instruction(0x85, imm=14).encode()
    out = disassemble(code, addresses=True, hex_bytes=True, helper_comments=True)
    assert out.splitlines() == [
        "     0:\tb7 01 00 00 05 00 00 00\tr1 = 0x5",
        "     1:\t85 00 00 00 0e 00 00 00\tcall 0xe # bpf_get_current_pid_tgid",
    ]
