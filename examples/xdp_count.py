"""Count the packets a network interface receives, per IP protocol, with XDP and a per-CPU array.

What it shows: an XDP program written with the DSL whose packet reads go
through openat.asm.packet (bounds-checked loads the verifier accepts), a
per-CPU array read from Python, and openat.link.xdp putting the program on
the interface (a BPF link where the kernel has one, else netlink). Every
packet the interface receives adds one to its IPv4 protocol's slot, or to
the "other" slot (not IPv4, or too short); each second the program prints a
table of what it counted so far and in the last second. Every packet is
passed on (XDP_PASS): the interface works as before.

Run it as root, with pyroute2 installed (``pip install 'openat[net]'``)::

    sudo python examples/xdp_count.py eth0
    sudo python examples/xdp_count.py eth0 --mode skb --seconds 10

Ctrl-C or SIGTERM stops it; the program is detached either way.
"""

from __future__ import annotations

import argparse
import signal
import struct
import sys
import time
from typing import Dict, List

from openat.asm import R0, R1, R2, R3, R4, R5, R6, R10, Program, load_packet, load_packet_pointers
from openat.link import xdp
from openat.syscalls import MapFd, MapType, map_create, prog_load
from openat.uapi import ETH_HLEN, ETH_P_IP, ETHHDR_PROTO, IPHDR_PROTOCOL, XdpAction

COUNTS = "counts"  # per-CPU array: IPv4 protocol (0..255), or OTHER -> packets (u64)
OTHER = 256
KEY = -4  # the slot number, on the stack
NAMES = {1: "icmp", 2: "igmp", 4: "ipip", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre", 50: "esp", 51: "ah",
         58: "ipv6-icmp", 89: "ospf", 103: "pim", 112: "vrrp", 132: "sctp", OTHER: "other"}


def count_program() -> Program:
    """counts[IPv4 protocol, or OTHER]++ on this CPU; every packet passes."""
    p = Program()
    load_packet_pointers(p, R2, R3, context="xdp")  # r2 = data, r3 = data_end
    p.mov(R6, OTHER)  # the slot, unless the packet turns out to be IPv4
    load_packet(p, R4, R2, ETHHDR_PROTO, 2, data_end=R3, fail_label="count", scratch=R5)
    p.jne(R4, ETH_P_IP, "count")
    load_packet(p, R6, R2, ETH_HLEN + IPHDR_PROTOCOL, 1, data_end=R3, fail_label="count", scratch=R5)
    p.label("count")
    p.stxw(R10, KEY, R6)
    p.mov(R2, R10)
    p.add(R2, KEY)
    p.ld_map_fd(R1, COUNTS)
    p.call("map_lookup_elem")
    p.jeq(R0, 0, "pass")
    p.ldxdw(R1, R0, 0)  # this CPU's own slot: no other CPU writes it, no atomic needed
    p.add(R1, 1)
    p.stxdw(R0, 0, R1)
    p.label("pass")
    p.mov(R0, XdpAction.PASS)
    p.exit()
    return p


def totals(counts: MapFd) -> Dict[int, int]:
    """slot -> packets, summed over the CPUs, for the slots that counted any."""
    found = {}
    for slot in range(OTHER + 1):
        per_cpu = counts.lookup_percpu(slot) or []
        total = sum(struct.unpack("<Q", value)[0] for value in per_cpu)
        if total:
            found[slot] = total
    return found


def table(now: Dict[int, int], before: Dict[int, int]) -> List[str]:
    lines = [f"{'PROTOCOL':<12} {'PACKETS':>12} {'LAST SECOND':>12}"]
    for slot in sorted(now, key=lambda s: (s == OTHER, s)):
        name = NAMES.get(slot, f"proto {slot}")
        lines.append(f"{name:<12} {now[slot]:>12} {now[slot] - before.get(slot, 0):>12}")
    return lines


def count(args: argparse.Namespace) -> None:
    report = lambda message: print(f"xdp_count: {message}", file=sys.stderr, flush=True)  # noqa: E731
    with map_create(MapType.PERCPU_ARRAY, 4, 8, OTHER + 1, name=COUNTS) as counts:
        code = count_program()
        with prog_load(code.encode({COUNTS: counts}), xdp.XDP_PROG_TYPE, name="xdp_count",
                       slot_sources=code.slot_sources()) as program:
            interface = int(args.interface) if args.interface.isdigit() else args.interface
            with xdp.attach(program, interface, args.mode, report=report):
                before: Dict[int, int] = {}
                end = time.monotonic() + args.seconds if args.seconds else None
                while end is None or time.monotonic() < end:
                    time.sleep(1)
                    now = totals(counts)
                    print("\n".join(table(now, before)) + "\n", flush=True)
                    before = now


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("interface", help="network interface name (or index) to count on")
    parser.add_argument("--mode", choices=list(xdp.MODES), default="auto", help="XDP mode (default auto)")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (default: at Ctrl-C)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))  # unwinds: the with blocks detach
    try:
        count(args)
    except KeyboardInterrupt:
        pass
    except (ImportError, ValueError, OSError) as error:  # BpfError is an OSError; each says what to do in one line
        print(f"xdp_count: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
