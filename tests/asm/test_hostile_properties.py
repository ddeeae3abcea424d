"""Property tests on hostile input to the assembler and the decoder (generators: tests/hostile.py).

Random and mutated valid inputs: only AsmError (text) or DecodeError (bytes) comes out, and
valid inputs, and whatever is accepted, read back exactly. bench/fuzz.py runs the same
checks a million times.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openat.asm import disassemble
from openat.asm.instruction import encode

from ..hostile import RoundTripMismatch, check_code, check_text, mutate_bytes, mutate_text, valid_program


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False))
def test_valid_text_round_trips_and_mutated_text_raises_only_asm_errors(rng: random.Random) -> None:
    program = valid_program(rng)
    code = encode(program)
    text = disassemble(code, labels=rng.random() < 0.5, helper_comments=rng.random() < 0.5)
    assert check_text(text, expected=code) == (True, [])
    check_text(mutate_text(rng, text))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_random_text_raises_only_asm_errors(text: str) -> None:
    check_text(text)


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False))
def test_valid_code_round_trips_and_mutated_code_raises_only_decode_errors(rng: random.Random) -> None:
    program = valid_program(rng)
    code = encode(program)
    check_code(code, rng, expected=program)
    check_code(mutate_bytes(rng, code), rng)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80), st.randoms(use_true_random=False))
def test_random_bytes_raise_only_decode_errors(data: bytes, rng: random.Random) -> None:
    check_code(data, rng)


def test_the_checks_see_a_mismatch() -> None:
    code = encode(valid_program(random.Random(1)))
    with pytest.raises(RoundTripMismatch):
        check_text(disassemble(code), expected=code + code)
    with pytest.raises(RoundTripMismatch):
        check_code(code, random.Random(1), expected=[])
