"""Run the same counter program in the kernel and in openat.vm, side by side.

What it shows: one program built with the DSL (a socket filter that counts packets by
their IPv4 protocol in a hash map) run on the same packets twice: by the kernel, with
BPF_PROG_TEST_RUN, and by openat.vm, the pure-Python interpreter, with the machine's own
in-memory hash map. Both maps end up holding the same counts; ``--trace`` also prints
what the machine did with the first packet, instruction by instruction. The machine needs
no root and no Linux: without root (or with ``--vm-only``) only its half runs.

Run it::

    sudo python examples/vm_counter.py
    python examples/vm_counter.py --vm-only --trace
"""

from __future__ import annotations

import argparse
import os
import struct
from typing import Dict, List

from openat.asm import R0, R1, R2, R3, R4, R6, R10, Program
from openat.vm import HashMap, Machine

COUNTS = "counts"  # IPv4 protocol (u32) -> packets (u64)
KEY, ONE = -4, -16  # on the stack: the key, and the first count
PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp"}
ETH_HLEN = 14  # a socket filter sees the packet from the network header on


def counter_program() -> Program:
    """counts[protocol of the packet] += 1 (inserting 1 the first time); returns 0."""
    p = Program(isa="v3")
    p.mov(R6, R1)  # ldabs reads the packet of the context in r6
    p.ldabsb(9)  # r0 = the IPv4 header's protocol byte
    p.stxw(R10, KEY, R0)
    p.ld_map_fd(R1, COUNTS)
    p.mov(R2, R10)
    p.add(R2, KEY)
    p.call("map_lookup_elem")
    p.jeq(R0, 0, "first")
    p.mov(R1, 1)
    p.atomic_add(R0, 0, R1)
    p.ja("out")
    p.label("first")
    p.stdw(R10, ONE, 1)
    p.ld_map_fd(R1, COUNTS)
    p.mov(R2, R10)
    p.add(R2, KEY)
    p.mov(R3, R10)
    p.add(R3, ONE)
    p.mov(R4, 0)
    p.call("map_update_elem")
    p.label("out")
    p.mov(R0, 0)
    p.exit()
    return p


def packets() -> List[bytes]:
    """Ethernet frames carrying IPv4 packets: 3 TCP, 2 UDP, 1 ICMP."""
    frames = []
    for protocol in (6, 17, 6, 1, 6, 17):
        ip = bytes.fromhex("450000140000000040") + bytes([protocol]) + bytes(10)
        frames.append(bytes(12) + b"\x08\x00" + ip)
    return frames


def counts_of(items) -> Dict[str, int]:
    return {PROTOCOLS.get(struct.unpack("<I", key)[0], "?"): struct.unpack("<Q", value)[0] for key, value in items}


def run_in_vm(program: Program, frames: List[bytes], trace: bool) -> Dict[str, int]:
    counts = HashMap(4, 8, 64, name=COUNTS)
    machine = Machine(program, maps={COUNTS: counts})
    for index, frame in enumerate(frames):
        if trace and index == 0:
            print("openat.vm, first packet:")
            print(machine.trace(ctx=bytes(192), mem=frame[ETH_HLEN:]).text())
        else:
            machine.run(ctx=bytes(192), mem=frame[ETH_HLEN:])
    return counts_of(counts.items())


def run_in_kernel(program: Program, frames: List[bytes]) -> Dict[str, int]:
    from openat.syscalls import MapType, ProgType, map_create, prog_load  # the kernel half only

    with map_create(MapType.HASH, 4, 8, 64, name=COUNTS) as counts:
        with prog_load(program.encode({COUNTS: counts}), ProgType.SOCKET_FILTER, name="vm_counter") as loaded:
            for frame in frames:
                loaded.test_run(data_in=frame)
        return counts_of(counts.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vm-only", action="store_true", help="run only the machine (no root needed)")
    parser.add_argument("--trace", action="store_true", help="print the machine's steps for the first packet")
    args = parser.parse_args()
    program, frames = counter_program(), packets()
    vm = run_in_vm(program, frames, args.trace)
    kernel = None if args.vm_only or os.geteuid() != 0 else run_in_kernel(program, frames)
    print(f"{'protocol':<10}{'kernel':>8}{'openat.vm':>11}")
    for name in sorted(set(vm) | set(kernel or {})):
        print(f"{name:<10}{kernel.get(name, 0) if kernel is not None else '-':>8}{vm.get(name, 0):>11}")
    if kernel is None:
        print("kernel: not run (needs root)" if not args.vm_only else "kernel: not run (--vm-only)")
    else:
        print(f"same counts: {'yes' if kernel == vm else 'NO'}")


if __name__ == "__main__":
    main()
