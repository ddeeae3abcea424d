"""The consumer's rate without the kernel: ring walk, decode and format.

Fills a synthetic ring-buffer data area with records as the probe writes
them (a mix of processes and file names, some failures), then times the path
``python -m openat`` takes for each: ``RecordWalker.drain`` over the ring
(the loop ``RingBuffer.consume`` runs, publishing its position as it goes)
handing each record in place to a callback shaped like the CLI's, which
calls ``TextFormatter.from_buffer`` (and ``JsonFormatter`` for --json). The
walk alone, with a callback that does nothing, is reported too.

    python bench/decode_bench.py [RECORDS]
"""

from __future__ import annotations

import struct
import sys
import time
from typing import Callable, Dict, List

from openat.tracer.output import Clock, JsonFormatter, TextFormatter
from openat.tracer.records import KIND_COMPLETE, SYSCALL_OPENAT, OpenEvent, encode_event
from openat.syscalls.ringbuf import RecordWalker, record_span

RING_HEADER = struct.Struct("<II")  # length (with busy/discard bits), page offset

NAMES = [
    b"/etc/ld.so.cache",
    b"/lib/x86_64-linux-gnu/libc.so.6",
    b"/usr/lib/locale/locale-archive",
    b"/proc/self/status",
    b"/home/user/project/src/module_%d.py",
    b"/tmp/openat-bench-target",
]


def synthetic_ring(records: int) -> tuple[bytearray, int, int]:
    """A data area holding ``records`` records; returns (data, size, producer position)."""
    payloads = []
    clock = Clock()
    for index in range(records):
        name = NAMES[index % len(NAMES)]
        if b"%d" in name:
            name = name % (index % 50)
        event = OpenEvent(
            clock.start_monotonic_ns + index * 1000, 1000 + index % 7, 1000 + index % 7, 1000, 1000,
            0o2000000, 3 if index % 10 else -2, -100, SYSCALL_OPENAT, b"worker-%d" % (index % 7),
            name, False, None, KIND_COMPLETE,
        )
        payloads.append(encode_event(event))
    used = sum(record_span(len(p)) for p in payloads)
    size = 1 << max(12, (used - 1).bit_length())
    data = bytearray(size)
    position = 0
    for payload in payloads:
        RING_HEADER.pack_into(data, position, len(payload), 0)
        data[position + 8 : position + 8 + len(payload)] = payload
        position += record_span(len(payload))
    return data, size, position


def _drain_seconds(walker: RecordWalker, producer: int, callback: Callable[[memoryview, int, int], object]) -> float:
    """Seconds for one drain of the whole ring, consumer position published as RingBuffer does."""
    consumer = memoryview(bytearray(8)).cast("Q")

    def publish(position: int) -> None:
        consumer[0] = position

    start = time.perf_counter()
    walker.drain(0, producer, callback, None, publish, in_place=True)
    return time.perf_counter() - start


def decode_rate(records: int = 200_000) -> Dict[str, float]:
    """Records per second through walk + decode + format, text and JSON; the walk alone per record."""
    data, size, producer = synthetic_ring(records)
    walker = RecordWalker(data, size)
    result: Dict[str, float] = {"records": records}
    for label, formatter in (("text", TextFormatter(Clock())), ("json", JsonFormatter(Clock()))):
        format_buffer = formatter.from_buffer
        lines: List[str] = []
        add = lines.append

        def on_record(buffer: memoryview, offset: int, length: int) -> None:
            add(format_buffer(buffer, offset, length))

        elapsed = _drain_seconds(walker, producer, on_record)
        assert len(lines) == records
        result[f"{label}_records_per_s"] = records / elapsed
        result[f"{label}_us_per_record"] = elapsed / records * 1e6
    result["records_per_s"] = result["text_records_per_s"]
    walk_only = min(_drain_seconds(walker, producer, _nothing) for _ in range(3))
    result["walk_ns_per_record"] = walk_only / records * 1e9
    return result


def _nothing(buffer: memoryview, offset: int, length: int) -> None:
    pass


if __name__ == "__main__":
    figures = decode_rate(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
    for key, value in figures.items():
        print(f"{key:24} {value:,.2f}")
