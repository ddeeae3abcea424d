"""Property tests on hostile ring memory (generators: tests/hostile.py): only RingBufferCorrupt.

Valid rings are written as the kernel writes them (records wrapping at the end, discarded,
busy); corrupt ones have mutated bytes or positions anywhere. Every walk of a valid ring
yields exactly its committed records; no walk reads outside the data area.
bench/fuzz.py runs the same checks a million times.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ..hostile import Ring, RoundTripMismatch, check_ring, random_ring, valid_ring


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False))
def test_valid_rings_yield_their_records_and_corrupt_ones_raise_only_ring_buffer_corrupt(rng: random.Random) -> None:
    ring = valid_ring(rng)
    assert check_ring(ring, rng) == (True, [])
    check_ring(random_ring(rng, ring), rng)


@settings(max_examples=300, deadline=None)
@given(st.integers(3, 8), st.binary(min_size=256, max_size=256), st.integers(-600, 600), st.integers(-600, 600),
       st.booleans(), st.randoms(use_true_random=False))
def test_random_memory_and_positions_raise_only_ring_buffer_corrupt(
    size_bits: int, memory: bytes, consumer: int, ahead: int, double: bool, rng: random.Random
) -> None:
    size = 1 << size_bits
    data = memory[:size] * (2 if double else 1)
    check_ring(Ring(data, size, consumer, consumer + ahead, None, None), rng)


def test_the_check_sees_a_mismatch() -> None:
    rng = random.Random(5)
    ring = valid_ring(rng)
    while not ring.expected:
        ring = valid_ring(rng)
    with pytest.raises(RoundTripMismatch):
        check_ring(ring._replace(expected=ring.expected + [b"extra"]), rng)
