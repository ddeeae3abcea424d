"""Print every program started on the machine, sent by a BPF program through a ring buffer.

What it shows: a raw tracepoint program (``sched_process_exec``) that
reserves a record in a BPF ring buffer, fills it with the new program's pid
and name, and submits it; and the Python side that waits on the ring with
epoll and reads each record in place (openat.syscalls.RingBuffer).

Run it as root, then start programs in another terminal::

    sudo python examples/ringbuf_reader.py              # until Ctrl-C
    sudo python examples/ringbuf_reader.py --seconds 10
"""

from __future__ import annotations

import argparse
import struct
import time

from openat.asm import R0, R1, R2, R3, R6, Program
from openat.link import raw_tracepoint
from openat.syscalls import MapType, RingBuffer, map_create, prog_load

EVENTS = "events"
RECORD = struct.Struct("<I16s")  # pid, comm: what the program writes
RING_SIZE = 64 << 10


def exec_program() -> Program:
    """On every exec: a RECORD with the process's pid and its new comm, into ring buffer EVENTS."""
    p = Program()
    p.ld_map_fd(R1, EVENTS)
    p.mov(R2, RECORD.size)
    p.mov(R3, 0)
    p.call("ringbuf_reserve")
    p.jeq(R0, 0, "out")  # the ring is full: this exec goes unreported
    p.mov(R6, R0)  # the record, kept across the helper calls (r6-r9 survive them)
    p.call("get_current_pid_tgid")
    p.rsh(R0, 32)
    p.stxw(R6, 0, R0)
    p.mov(R1, R6)
    p.add(R1, 4)
    p.mov(R2, 16)
    p.call("get_current_comm")  # the comm after exec: the new program's name
    p.mov(R1, R6)
    p.mov(R2, 0)
    p.call("ringbuf_submit")
    p.label("out")
    p.mov(R0, 0)
    p.exit()
    return p


def show(record: memoryview) -> None:
    pid, comm = RECORD.unpack(record)
    name = comm.split(b"\0", 1)[0].decode(errors="backslashreplace")
    print(f"pid={pid} comm={name!r}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, help="stop after this long (default: at Ctrl-C)")
    args = parser.parse_args()
    deadline = time.monotonic() + args.seconds if args.seconds else None
    with map_create(MapType.RINGBUF, 0, 0, RING_SIZE, name=EVENTS) as ring_map:
        code = exec_program().encode({EVENTS: ring_map})
        with prog_load(code, raw_tracepoint.RAW_TRACEPOINT_PROG_TYPE, name="exec_events") as program, \
                raw_tracepoint.attach(program, "sched_process_exec"), RingBuffer(ring_map) as ring:
            try:
                while deadline is None or time.monotonic() < deadline:
                    ring.poll(timeout_ms=100, callback=show)
            except KeyboardInterrupt:
                pass


if __name__ == "__main__":
    main()
