"""Count the openat() calls of every program name with a tracepoint and a hash map.

What it shows: a program written with the DSL (openat.asm), a map created and
read with openat.syscalls, and a tracepoint attached with openat.link.
Every ``openat()`` on the machine runs the program, which adds one to the
count of the calling task's name (its comm, 16 bytes) in a hash map; Python
reads the map when the time is up.

Run it as root::

    sudo python examples/tracepoint_counter.py            # 5 seconds
    sudo python examples/tracepoint_counter.py --seconds 1 --top 3
"""

from __future__ import annotations

import argparse
import struct
import time

from openat.asm import R0, R1, R2, R3, R4, R10, Program
from openat.link import tracepoint
from openat.syscalls import BPF_NOEXIST, MapType, map_create, prog_load

COUNTS = "counts"  # comm (16 bytes) -> openat calls (u64)
KEY = -16  # the comm, on the stack
VALUE = -24  # a first count, on the stack


def counter_program() -> Program:
    """counts[comm]++ for the calling task, creating the entry at 1."""
    p = Program()
    p.stdw(R10, KEY, 0)  # get_current_comm fills up to the NUL: zero the rest of the key first
    p.stdw(R10, KEY + 8, 0)
    p.mov(R1, R10)
    p.add(R1, KEY)
    p.mov(R2, 16)
    p.call("get_current_comm")
    p.ld_map_fd(R1, COUNTS)
    p.mov(R2, R10)
    p.add(R2, KEY)
    p.call("map_lookup_elem")
    p.jeq(R0, 0, "first")
    p.mov(R1, 1)
    p.atomic_add(R0, 0, R1)  # several CPUs may count the same name at once
    p.ja("out")
    p.label("first")
    p.stdw(R10, VALUE, 1)
    p.ld_map_fd(R1, COUNTS)
    p.mov(R2, R10)
    p.add(R2, KEY)
    p.mov(R3, R10)
    p.add(R3, VALUE)
    p.mov(R4, BPF_NOEXIST)  # if another CPU created it meanwhile, this call fails, harmlessly
    p.call("map_update_elem")
    p.label("out")
    p.mov(R0, 0)
    p.exit()
    return p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to count (default 5)")
    parser.add_argument("--top", type=int, default=10, help="how many names to show (default 10)")
    args = parser.parse_args()
    with map_create(MapType.HASH, 16, 8, 10240, name=COUNTS) as counts:
        code = counter_program().encode({COUNTS: counts})
        with prog_load(code, tracepoint.TRACEPOINT_PROG_TYPE, name="count_openat") as program:
            with tracepoint.attach(program, "syscalls", "sys_enter_openat"):
                time.sleep(args.seconds)
        rows = [(struct.unpack("<Q", value)[0], key.split(b"\0", 1)[0]) for key, value in counts.items()]
    print(f"{'COMM':<16} OPENAT CALLS")
    for calls, comm in sorted(rows, reverse=True)[: args.top]:
        print(f"{comm.decode(errors='backslashreplace'):<16} {calls}")


if __name__ == "__main__":
    main()
