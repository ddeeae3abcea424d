"""RecordWalker on synthetic memory: no kernel involved."""

from __future__ import annotations

import struct

import pytest

from openat.uapi import BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT
from openat.syscalls.ringbuf import PUBLISH_EVERY_BYTES, RecordWalker, RingBufferCorrupt, record_span


class SyntheticRing:
    """A ring buffer data area written the way the kernel writes it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.mem = bytearray(size)
        self.producer = 0

    def _write(self, pos: int, data: bytes) -> None:
        offset = pos % self.size
        first = min(len(data), self.size - offset)
        self.mem[offset : offset + first] = data[:first]
        self.mem[0 : len(data) - first] = data[first:]

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
        # records are stitched together, as RingBuffer maps it) and mapped twice.
        return [RecordWalker(bytes(self.mem), self.size), RecordWalker(bytes(self.mem) * 2, self.size)]


def drain(walker: RecordWalker, start: int, end: int, limit: int | None = None) -> tuple[int, list[bytes]]:
    """(position drain returned, payloads it handed out), checking its count.

    Drains twice, handing out views and in place, and checks both agree.
    """
    got: list[bytes] = []
    position, count = walker.drain(start, end, lambda rec: got.append(bytes(rec)), limit)
    assert count == len(got)
    in_place: list[bytes] = []
    same = walker.drain(
        start, end, lambda buffer, offset, length: in_place.append(bytes(buffer[offset : offset + length])), limit,
        in_place=True,
    )
    assert same == (position, count) and in_place == got
    return position, got


def walk(walker: RecordWalker, start: int, end: int) -> list[tuple[int, bytes]]:
    return [(pos, bytes(rec)) for pos, rec in walker.walk(start, end)]


def test_record_span_is_header_plus_payload_rounded_to_8():
    assert [record_span(n) for n in (0, 1, 7, 8, 9, 16)] == [8, 16, 16, 16, 24, 24]


def test_records_in_order_with_alignment():
    ring = SyntheticRing(128)
    payloads = [b"a", b"12345678", b"thirteen byte", b""]
    for p in payloads:
        ring.add(p)
    for walker in ring.walkers():
        assert drain(walker, 0, ring.producer) == (64, payloads)
        assert walk(walker, 0, ring.producer) == list(zip([16, 32, 56, 64], payloads))
        assert walker.double_mapped == (len(walker.data) == 256)


def test_discarded_records_are_skipped_but_consumed():
    ring = SyntheticRing(128)
    ring.add(b"keep1")
    ring.add(b"drop", discard=True)
    ring.add(b"keep2")
    ring.add(b"drop2", discard=True)
    for walker in ring.walkers():
        assert drain(walker, 0, ring.producer) == (64, [b"keep1", b"keep2"])
        # walk: a record's position covers the discarded ones before it; the
        # trailing one is covered by the last publish.
        published: list[int] = []
        assert [(pos, bytes(rec)) for pos, rec in walker.walk(0, ring.producer, published.append)] == [
            (16, b"keep1"),
            (48, b"keep2"),
        ]
        assert published[-1] == 64


def test_busy_record_stops_the_walk_until_committed():
    ring = SyntheticRing(128)
    ring.add(b"first")
    busy_at = ring.add(b"pending", busy=True)
    ring.add(b"after")  # committed, but behind an uncommitted one
    for walker in ring.walkers():
        assert drain(walker, 0, ring.producer) == (16, [b"first"])
        assert walk(walker, 0, ring.producer) == [(16, b"first")]
    ring.commit(busy_at)
    for walker in ring.walkers():
        assert drain(walker, 16, ring.producer) == (ring.producer, [b"pending", b"after"])


def test_busy_discarded_record_also_stops():
    ring = SyntheticRing(64)
    ring.add(b"x", busy=True, discard=True)
    for walker in ring.walkers():
        assert drain(walker, 0, ring.producer) == (0, [])
        assert walk(walker, 0, ring.producer) == []


@pytest.mark.parametrize("offset", [32, 40, 48, 56])
def test_record_wrapping_past_the_end(offset):
    # 32: the record ends at the end of the data area (no wrap: control case);
    # 40: header and 16 payload bytes at the end, 4 at the start;
    # 48: header at the end, payload split 8/12;
    # 56: header fills the last 8 bytes, payload starts at offset 0.
    ring = SyntheticRing(64)
    start = 10 * 64 + offset  # positions are free-running counters
    payload = bytes(range(100, 120))
    ring.add(payload, at=start)
    for walker in ring.walkers():
        assert drain(walker, start, ring.producer) == (start + 32, [payload])
        assert walk(walker, start, ring.producer) == [(start + 32, payload)]


def test_wrapped_record_is_zero_copy_when_double_mapped():
    ring = SyntheticRing(64)
    ring.add(b"W" * 20, at=48)
    double = RecordWalker(bytearray(bytes(ring.mem) * 2), 64)
    seen = []

    def check_alias(view):
        double.data[56] = ord("X")  # the view must alias the mapping, not a copy
        seen.append(bytes(view))

    assert double.drain(48, ring.producer, check_alias) == (80, 1)
    assert seen == [b"X" + b"W" * 19]


def test_wrapped_record_is_a_copy_when_mapped_once():
    ring = SyntheticRing(64)
    ring.add(b"W" * 20, at=48)
    single = RecordWalker(bytearray(ring.mem), 64)
    seen = []

    def check_copy(view):
        single.data[56] = ord("X")
        seen.append(bytes(view))

    assert single.drain(48, ring.producer, check_copy) == (80, 1)
    assert seen == [b"W" * 20]


def test_walk_stops_at_producer_position():
    ring = SyntheticRing(128)
    ring.add(b"one")
    ring.add(b"two")
    for walker in ring.walkers():
        assert drain(walker, 0, 16) == (16, [b"one"])
        assert drain(walker, 16, 16) == (16, [])
        assert walk(walker, 0, 16) == [(16, b"one")]


def test_limit_stops_after_that_many_records():
    ring = SyntheticRing(128)
    for payload in (b"one", b"two", b"three"):
        ring.add(payload)
    ring.add(b"gone", discard=True)
    walker = RecordWalker(bytes(ring.mem), 128)
    assert drain(walker, 0, ring.producer, limit=2) == (32, [b"one", b"two"])
    assert drain(walker, 32, ring.producer, limit=2) == (64, [b"three"])
    assert drain(walker, 0, ring.producer, limit=0) == (0, [])


def test_corrupt_length_is_reported_not_looped_on():
    ring = SyntheticRing(64)
    ring.add(b"fine")
    struct.pack_into("=I", ring.mem, 16, 500)
    for walker in ring.walkers():
        published: list[int] = []
        with pytest.raises(RingBufferCorrupt):
            walker.drain(0, 64, lambda rec: None, publish=published.append)
        assert published[-1] == 16  # the good record before it was consumed
        with pytest.raises(RingBufferCorrupt):
            walk(walker, 0, 64)


def test_corrupt_discarded_record_is_reported():
    ring = SyntheticRing(64)
    struct.pack_into("=I", ring.mem, 0, 500 | BPF_RINGBUF_DISCARD_BIT)
    for walker in ring.walkers():
        with pytest.raises(RingBufferCorrupt):
            drain(walker, 0, 64)


def test_producer_more_than_a_ring_ahead_is_corrupt():
    ring = SyntheticRing(64)
    for walker in ring.walkers():
        with pytest.raises(RingBufferCorrupt):
            drain(walker, 0, 72)


@pytest.mark.parametrize(
    "consumer, producer, problem",
    [
        (61, 87, "not 8-aligned (records are 8-byte multiples)"),  # once a struct.error: a header read past the data area
        (60, 64, "not 8-aligned (records are 8-byte multiples)"),
        (0, 60, "not 8-aligned (records are 8-byte multiples)"),
        (64, 0, "the producer is behind the consumer"),  # once a silent (64, 0)
        (-8, 0, "the consumer is negative"),
        (0, 72, "the producer is more than a ring (64 bytes) ahead of the consumer"),
    ],
)
def test_impossible_positions_are_corrupt(consumer, producer, problem):
    for walker in [RecordWalker(bytes(64), 64), RecordWalker(bytes(128), 64)]:
        for run in (lambda: walker.drain(consumer, producer, print), lambda: list(walker.walk(consumer, producer))):
            with pytest.raises(RingBufferCorrupt) as info:
                run()
            assert str(info.value) == f"ring positions consumer {consumer}, producer {producer}: {problem}"


def test_views_are_released_when_their_callback_returns():
    ring = SyntheticRing(64)
    ring.add(b"one")
    ring.add(b"two")
    kept = []
    walker = RecordWalker(bytes(ring.mem), 64)
    assert walker.drain(0, ring.producer, kept.append) == (32, 2)
    for view in kept:
        with pytest.raises(ValueError):
            bytes(view)


def test_raising_callback_counts_its_record_as_consumed_and_publishes():
    ring = SyntheticRing(128)
    for payload in (b"one", b"two", b"three"):
        ring.add(payload)
    walker = RecordWalker(bytes(ring.mem), 128)
    seen: list[memoryview] = []
    published: list[int] = []

    def fail_on_two(view):
        seen.append(view)
        if bytes(view) == b"two":
            raise RuntimeError("consumer bug")

    with pytest.raises(RuntimeError):
        walker.drain(0, ring.producer, fail_on_two, publish=published.append)
    assert published[-1] == 32  # past "two": it is not redelivered
    assert len(seen) == 2
    with pytest.raises(ValueError):
        bytes(seen[1])  # released although its callback raised


def test_long_drain_publishes_along_the_way():
    payload = bytes(1000)
    span = record_span(len(payload))
    ring = SyntheticRing(4 * PUBLISH_EVERY_BYTES)
    count = (ring.size - span) // span
    for _ in range(count):
        ring.add(payload)
    walker = RecordWalker(bytes(ring.mem), ring.size)
    published: list[int] = []
    handed_out: list[tuple[int, int]] = []  # (record's end position, publishes before it)

    def note(view):
        handed_out.append(((len(handed_out) + 1) * span, len(published)))

    assert walker.drain(0, ring.producer, note, publish=published.append) == (ring.producer, count)
    assert published[-1] == ring.producer
    assert len(set(published)) >= 3  # the last record was handed out after earlier publishes
    assert handed_out[-1][1] >= 2
    assert published == sorted(published) and all(pos % span == 0 for pos in published)
    # A published position never covers a record not yet handed out.
    for end, publishes_before in handed_out:
        assert all(pos < end for pos in published[:publishes_before])


def test_walk_releases_each_view_and_publishes_when_the_next_is_asked_for():
    ring = SyntheticRing(128)
    for payload in (b"one", b"two", b"three"):
        ring.add(payload)
    walker = RecordWalker(bytes(ring.mem), 128)
    published: list[int] = []
    records = walker.walk(0, ring.producer, published.append)
    _, first = next(records)
    assert bytes(first) == b"one" and published == []
    _, second = next(records)
    assert published == [16]
    with pytest.raises(ValueError):
        bytes(first)
    records.close()  # stopping while holding "two" consumes it
    assert published[-1] == 32
    with pytest.raises(ValueError):
        bytes(second)


def test_invalid_geometry_rejected():
    with pytest.raises(ValueError):
        RecordWalker(bytes(96), 96)  # not a power of two
    with pytest.raises(ValueError):
        RecordWalker(bytes(32), 64)  # smaller than the ring
