"""The perf buffer: the pure record walk on synthetic rings, then real rings fed by real programs.

The programs (tests/syscalls/programs.py: perf_output_sequence) number their
samples and count their own failed outputs in a map, so every test can say
exactly which samples must have arrived and how many the kernel dropped.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import struct
import subprocess
import sys

import pytest

from openat.syscalls import MapType, ProgType, map_create, prog_load, raw_tracepoint_open
from openat.syscalls.perfbuf import PerfBuffer, PerfBufferCorrupt, PerfRecordWalker, online_cpus
from openat.uapi import PERF_RECORD_LOST, PERF_RECORD_SAMPLE

from .programs import PERF_PATTERN, PERF_SAMPLE, perf_output_sequence

COUNTER = struct.Struct("=QQq")  # next sequence, failed outputs, last error

# --- the walk, on synthetic memory ---------------------------------------------------


def _sample_record(payload: bytes) -> bytes:
    """As the kernel writes it: the payload padded so the record is 8-byte aligned, its length counting the padding."""
    padded = payload + b"\0" * (-(12 + len(payload)) % 8)
    raw = struct.pack("=I", len(padded)) + padded
    return struct.pack("=IHH", PERF_RECORD_SAMPLE, 0, 8 + len(raw)) + raw


def _lost_record(count: int) -> bytes:
    return struct.pack("=IHHQQ", PERF_RECORD_LOST, 0, 24, 7, count)


def _ring_with(records: list[bytes], size: int, start: int) -> tuple[bytearray, int, int]:
    """A ``size``-byte ring holding ``records`` written from position ``start`` on: (data, tail, head)."""
    data = bytearray(b"\xee" * size)
    position = start
    for record in records:
        for byte in record:
            data[position % size] = byte
            position += 1
    return data, start, position


def _walk(data, size, tail, head):
    samples, lost = [], []
    walker = PerfRecordWalker(data, size)
    end, count, dropped = walker.drain(tail, head, lambda view: samples.append(bytes(view)), lost.append)
    return end, count, dropped, samples, lost


def test_samples_and_lost_records_come_out_in_order():
    records = [_sample_record(b"a" * 12), _lost_record(5), _sample_record(b"bcdefgh")]
    data, tail, head = _ring_with(records, 256, 0)
    end, count, dropped, samples, lost = _walk(data, 256, tail, head)
    assert (end, count, dropped) == (head, 2, 5)
    assert samples == [b"a" * 12, b"bcdefgh" + b"\0" * 5] and lost == [5]  # the kernel's padding is part of the sample


@pytest.mark.parametrize("start", range(256 - 48, 256, 4))
def test_records_wrapping_past_the_end_are_stitched(start):
    """Every way a record can straddle the end: inside the header, the length, the payload, a lost record's count."""
    payloads = [bytes(range(i, i + 20)) for i in range(3)]
    records = [_sample_record(payloads[0]), _lost_record(3), _sample_record(payloads[1]), _sample_record(payloads[2])]
    data, tail, head = _ring_with(records, 256, (1 << 40) + start)
    end, count, dropped, samples, lost = _walk(data, 256, tail, head)
    assert (end, count, dropped) == (head, 3, 3)
    assert [sample[:20] for sample in samples] == payloads


def test_unknown_record_types_are_skipped():
    other = struct.pack("=IHH", 3, 0, 16) + b"x" * 8  # PERF_RECORD_COMM, say
    data, tail, head = _ring_with([other, _sample_record(b"abcd")], 64, 0)
    assert _walk(data, 64, tail, head)[1:4] == (1, 0, [b"abcd"])


@pytest.mark.parametrize(
    "record, why",
    [
        (struct.pack("=IHH", PERF_RECORD_SAMPLE, 0, 0), "runs past"),  # a zero length would never advance
        (struct.pack("=IHH", PERF_RECORD_SAMPLE, 0, 200), "runs past"),
        (struct.pack("=IHHI", PERF_RECORD_SAMPLE, 0, 16, 100) + b"\0" * 4, "does not fit"),
        (struct.pack("=IHH", PERF_RECORD_LOST, 0, 8), "no room for its count"),
        (struct.pack("=IH", PERF_RECORD_SAMPLE, 0), "too few"),
    ],
)
def test_corrupt_records_raise_and_keep_the_position_before_them(record, why):
    data, tail, head = _ring_with([_sample_record(b"good"), record], 128, 0)
    published = []
    walker = PerfRecordWalker(data, 128)
    with pytest.raises(PerfBufferCorrupt, match=why):
        walker.drain(tail, head, None, None, published.append)
    assert published == [16]


def test_a_callback_that_raises_still_consumes_its_record():
    data, tail, head = _ring_with([_sample_record(b"one!"), _sample_record(b"two!")], 64, 0)
    published = []

    def fail(view):
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError):
        PerfRecordWalker(data, 64).drain(tail, head, fail, None, published.append)
    assert published == [16]


def test_head_more_than_a_ring_ahead_is_corrupt():
    with pytest.raises(PerfBufferCorrupt, match="not within one ring"):
        PerfRecordWalker(bytearray(64), 64).drain(0, 65)
    with pytest.raises(ValueError, match="power of two"):
        PerfRecordWalker(bytearray(96), 96)


# --- real rings ------------------------------------------------------------------------


@pytest.fixture
def maps(root):
    with map_create(MapType.PERF_EVENT_ARRAY, 4, 4, max(online_cpus()) + 1, name="t_perf_events") as events, map_create(
        MapType.ARRAY, 4, COUNTER.size, 1, name="counter"
    ) as counter:
        yield events, counter


def _load(maps, on_sys_enter: bool, size: int = PERF_SAMPLE.size, tgids: tuple[int, ...] = ()):
    events, counter = maps
    program = perf_output_sequence(on_sys_enter, size, tgids)
    prog_type = ProgType.RAW_TRACEPOINT if on_sys_enter else ProgType.XDP
    code = program.encode({"events": events.fileno(), "counter": counter.fileno()})
    return prog_load(code, prog_type, name="t_perf_output", slot_sources=program.slot_sources())


def _counter(maps) -> tuple[int, int, int]:
    return COUNTER.unpack(maps[1].lookup(0))


@contextlib.contextmanager
def _pinned(cpu: int):
    """Run this thread on ``cpu`` only, so every sample goes to that CPU's ring."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _run(prog, times: int) -> None:
    prog.test_run(data_in=bytes(64), repeat=times)


def _collect(into: list):
    return lambda cpu, data: into.append((cpu, len(data), PERF_SAMPLE.unpack_from(data)))


def test_every_sample_arrives_in_order_with_its_cpu(maps):
    cpu = online_cpus()[-1]
    got: list = []
    with _load(maps, False) as prog, _pinned(cpu), PerfBuffer(maps[0], _collect(got), pages=64) as buffer:
        assert buffer.cpus == online_cpus()
        _run(prog, 1000)
        assert buffer.poll(1000) == 1000
        assert buffer.consume() == 0 and buffer.lost == 0
    # 16 bytes of sample: an 8-byte header, a u32 length and 4 bytes of padding make 32.
    assert [(c, size) for c, size, _ in got] == [(cpu, 20)] * 1000
    assert [sample for _, _, sample in got] == [(seq, seq ^ PERF_PATTERN) for seq in range(1000)]
    assert _counter(maps)[1] == 0


def test_samples_that_wrap_the_ring_arrive_whole(maps):
    """24-byte samples make 40-byte records: over 50 passes round a 4 KiB ring they straddle its end at every 8-byte offset."""
    got: list = []
    with _load(maps, False, size=24) as prog, _pinned(online_cpus()[0]), PerfBuffer(maps[0], _collect(got), pages=1) as buffer:
        for _ in range(50):
            _run(prog, 80)  # 3200 bytes: fits the ring, which is drained after each pass
            buffer.consume()
        assert buffer.lost == 0
    assert [sample for _, _, sample in got] == [(seq, seq ^ PERF_PATTERN) for seq in range(4000)]
    assert {size for _, size, _ in got} == {28}


def test_a_full_ring_drops_samples_and_reports_how_many(maps):
    reports: list = []
    got: list = []
    cpu = online_cpus()[0]
    # 16-byte samples make 32-byte records; the kernel keeps a byte of the ring free (CIRC_SPACE).
    fits = (mmap.PAGESIZE - 1) // 32
    dropped = 1000 - fits
    with _load(maps, False) as prog, _pinned(cpu):
        with PerfBuffer(maps[0], _collect(got), pages=1, lost_callback=lambda c, n: reports.append((c, n))) as buffer:
            _run(prog, 1000)
            assert buffer.consume() == fits and buffer.lost == 0  # losses are reported with the next sample that fits
            _run(prog, 1)
            assert buffer.consume() == 1
            assert reports == [(cpu, dropped)] and buffer.lost == dropped
        _, failed, last_error = _counter(maps)
        assert failed == dropped and last_error == -errno.ENOSPC
        assert [sample[0] for _, _, sample in got] == [*range(fits), 1000]
        # close() emptied the map's slots: outputs now find no event there.
        _run(prog, 1)
        assert _counter(maps)[1:] == (dropped + 1, -errno.ENOENT)


def test_under_load_every_sample_is_received_or_counted_lost(maps):
    """Another process makes syscalls flat out while this one polls small rings: nothing goes missing unaccounted."""
    got: list = []
    calls = 100_000
    producer = subprocess.Popen(
        [sys.executable, "-c", f"import os, sys; sys.stdin.read(1)\nfor _ in range({calls}): os.getppid()"], stdin=subprocess.PIPE
    )
    try:
        with _load(maps, True, tgids=(producer.pid,)) as prog, raw_tracepoint_open(prog, "sys_enter"):
            with PerfBuffer(maps[0], _collect(got), pages=2, wakeup_events=8) as buffer:
                producer.stdin.close()  # go
                while producer.poll() is None:
                    buffer.poll(50)
                buffer.consume()
                for cpu in buffer.cpus:  # one more sample per ring delivers the losses it still owes
                    with _pinned(cpu):
                        os.getppid()
                buffer.consume()
                sent, failed, _ = _counter(maps)
                assert producer.returncode == 0 and sent == calls + len(buffer.cpus)
                assert buffer.lost == failed
                assert len(got) + buffer.lost == sent
    finally:
        producer.kill()
        producer.wait()
    sequences = sorted(sample[0] for _, _, sample in got)
    assert len(set(sequences)) == len(sequences) and sequences[-1] < sent
    assert all(seq ^ PERF_PATTERN == check for _, _, (seq, check) in got)


def test_not_a_perf_event_array(maps):
    with pytest.raises(ValueError, match="is a array map, not a perf_event_array"):
        PerfBuffer(maps[1])
    with pytest.raises(ValueError, match="power of two"):
        PerfBuffer(maps[0], pages=3)


def test_a_map_with_fewer_slots_than_cpus_gets_rings_for_its_slots(root):
    with map_create(MapType.PERF_EVENT_ARRAY, 4, 4, 1, name="t_perf_one") as events, PerfBuffer(events) as buffer:
        assert buffer.cpus == (online_cpus()[0],) and buffer.pending_bytes() == 0
        assert buffer.fileno() >= 0
    assert buffer.closed
    with pytest.raises(ValueError, match="closed"):
        buffer.poll(0)
