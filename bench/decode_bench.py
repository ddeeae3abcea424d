"""The consumer's rate without the kernel: ring walk, decode and format.

Fills a synthetic ring-buffer data area with records as the probe writes
them (a mix of processes and file names, some failures), then times the path
``python -m openat`` takes for each: ``RecordWalker`` over the ring, then
``TextFormatter.from_record`` (and ``JsonFormatter`` for --json).

    python bench/decode_bench.py [RECORDS]
"""

from __future__ import annotations

import struct
import sys
import time
from typing import Dict

from openat.output import Clock, JsonFormatter, TextFormatter
from openat.records import KIND_COMPLETE, SYSCALL_OPENAT, OpenEvent, encode_event
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


def decode_rate(records: int = 200_000) -> Dict[str, float]:
    """Records per second through walk + decode + format, text and JSON."""
    data, size, producer = synthetic_ring(records)
    walker = RecordWalker(data, size)
    result: Dict[str, float] = {"records": records}
    for label, formatter in (("text", TextFormatter(Clock())), ("json", JsonFormatter(Clock()))):
        format_record = formatter.from_record
        lines = []
        add = lines.append
        start = time.perf_counter()
        for _, record in walker.walk(0, producer):
            add(format_record(record))
        elapsed = time.perf_counter() - start
        assert len(lines) == records
        result[f"{label}_records_per_s"] = records / elapsed
        result[f"{label}_us_per_record"] = elapsed / records * 1e6
    result["records_per_s"] = result["text_records_per_s"]
    return result


if __name__ == "__main__":
    figures = decode_rate(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
    for key, value in figures.items():
        print(f"{key:24} {value:,.2f}")
