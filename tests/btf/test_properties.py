"""Property tests on hostile BTF (generators: tests/hostile.py): only BtfError, valid BTF reads back.

Valid blobs are built with tests/btf/builder.py from random types of every kind; mutated
ones have bits, bytes and words changed (type ids pointing at themselves make cycles),
cut or extended. bench/fuzz.py runs the same checks a million times.
"""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ..hostile import RoundTripMismatch, check_btf, mutate_bytes, valid_btf


@settings(max_examples=150, deadline=None)
@given(st.randoms(use_true_random=False))
def test_valid_btf_reads_back_as_built(rng: random.Random) -> None:
    blob, expected = valid_btf(rng)
    check_btf(blob, expected)


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False))
def test_mutated_btf_raises_only_btf_errors(rng: random.Random) -> None:
    blob, _ = valid_btf(rng)
    for _ in range(rng.randint(1, 3)):
        blob = mutate_bytes(rng, blob)
    check_btf(blob)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 300), st.integers(0, 300))
def test_random_type_sections_raise_only_btf_errors(types: bytes, type_len: int, str_len: int) -> None:
    # A valid header over random records, so that the records are what gets read.
    header = struct.pack("=HBBIIIII", 0xEB9F, 1, 0, 24, 0, type_len & ~3, type_len & ~3, str_len)
    check_btf(header + types)


def test_the_check_sees_a_mismatch() -> None:
    blob, expected = valid_btf(random.Random(3))
    with pytest.raises(RoundTripMismatch):
        check_btf(blob, expected[:-1] or expected * 2)
