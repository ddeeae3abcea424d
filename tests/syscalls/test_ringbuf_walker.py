"""RecordWalker on synthetic memory: no kernel involved."""

from __future__ import annotations

import struct

import pytest

from openat.syscalls.constants import BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT
from openat.syscalls.ringbuf import RecordWalker, RingBufferCorrupt, record_span


class SyntheticRing:
    """A ring buffer data area written the way the kernel writes it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.mem = bytearray(size)
        self.producer = 0

    def _write(self, pos: int, data: bytes) -> None:
        for i, byte in enumerate(data):
            self.mem[(pos + i) % self.size] = byte

    def add(self, payload: bytes, *, busy: bool = False, discard: bool = False, at: int | None = None) -> int:
        pos = self.producer if at is None else at
        header = len(payload) | (BPF_RINGBUF_BUSY_BIT if busy else 0) | (BPF_RINGBUF_DISCARD_BIT if discard else 0)
        self._write(pos, struct.pack("=II", header, 0))
        self._write(pos + 8, payload)
        self.producer = pos + record_span(len(payload))
        return pos

    def commit(self, pos: int) -> None:
        """Clear the busy bit of the record at ``pos``, as bpf_ringbuf_submit does."""
        offset = pos % self.size
        (header,) = struct.unpack_from("=I", self.mem, offset)
        struct.pack_into("=I", self.mem, offset, header & ~BPF_RINGBUF_BUSY_BIT)

    def walkers(self) -> list[RecordWalker]:
        # Both layouts the walker supports: the data area mapped once (wrapped
        # records are stitched together) and mapped twice like the kernel does.
        return [RecordWalker(bytes(self.mem), self.size), RecordWalker(bytes(self.mem) * 2, self.size)]


def walk(walker: RecordWalker, start: int, end: int) -> list[tuple[int, bytes | None]]:
    return [(pos, None if rec is None else bytes(rec)) for pos, rec in walker.walk(start, end)]


def test_record_span_is_header_plus_payload_rounded_to_8():
    assert [record_span(n) for n in (0, 1, 7, 8, 9, 16)] == [8, 16, 16, 16, 24, 24]


def test_records_in_order_with_alignment():
    ring = SyntheticRing(128)
    payloads = [b"a", b"12345678", b"thirteen byte", b""]
    for p in payloads:
        ring.add(p)
    for walker in ring.walkers():
        result = walk(walker, 0, ring.producer)
        assert [r for _, r in result] == payloads
        assert [pos for pos, _ in result] == [16, 32, 56, 64]
        assert walker.double_mapped == (len(walker.data) == 256)


def test_discarded_records_are_skipped_but_consumed():
    ring = SyntheticRing(128)
    ring.add(b"keep1")
    ring.add(b"drop", discard=True)
    ring.add(b"keep2")
    for walker in ring.walkers():
        result = walk(walker, 0, ring.producer)
        assert result == [(16, b"keep1"), (32, None), (48, b"keep2")]


def test_busy_record_stops_the_walk_until_committed():
    ring = SyntheticRing(128)
    ring.add(b"first")
    busy_at = ring.add(b"pending", busy=True)
    ring.add(b"after")  # committed, but behind an uncommitted one
    for walker in ring.walkers():
        assert walk(walker, 0, ring.producer) == [(16, b"first")]
    ring.commit(busy_at)
    for walker in ring.walkers():
        assert [r for _, r in walk(walker, 16, ring.producer)] == [b"pending", b"after"]


def test_busy_discarded_record_also_stops():
    ring = SyntheticRing(64)
    ring.add(b"x", busy=True, discard=True)
    for walker in ring.walkers():
        assert walk(walker, 0, ring.producer) == []


@pytest.mark.parametrize("offset", [48, 56])
def test_record_wrapping_past_the_end(offset):
    # offset 48: header at the end, payload split across the boundary;
    # offset 56: header fills the last 8 bytes, payload starts at offset 0.
    ring = SyntheticRing(64)
    start = 10 * 64 + offset  # positions are free-running counters
    payload = bytes(range(100, 120))
    ring.add(payload, at=start)
    for walker in ring.walkers():
        assert walk(walker, start, ring.producer) == [(start + 32, payload)]


def test_wrapped_record_is_zero_copy_when_double_mapped():
    ring = SyntheticRing(64)
    ring.add(b"W" * 20, at=48)
    double = RecordWalker(bytearray(bytes(ring.mem) * 2), 64)
    (_, view), = list(double.walk(48, ring.producer))
    double.data[56] = ord("X")  # the view must alias the mapping, not a copy
    assert bytes(view)[0:1] == b"X"


def test_walk_stops_at_producer_position():
    ring = SyntheticRing(128)
    ring.add(b"one")
    ring.add(b"two")
    for walker in ring.walkers():
        assert walk(walker, 0, 16) == [(16, b"one")]
        assert walk(walker, 16, 16) == []


def test_corrupt_length_is_reported_not_looped_on():
    ring = SyntheticRing(64)
    struct.pack_into("=I", ring.mem, 0, 500)
    for walker in ring.walkers():
        with pytest.raises(RingBufferCorrupt):
            walk(walker, 0, 64)


def test_invalid_geometry_rejected():
    with pytest.raises(ValueError):
        RecordWalker(bytes(96), 96)  # not a power of two
    with pytest.raises(ValueError):
        RecordWalker(bytes(32), 64)  # smaller than the ring
