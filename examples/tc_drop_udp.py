"""Drop the UDP datagrams a network interface sends to one port, with a tc egress program.

What it shows: a tc classifier (sched_cls, direct action) written with the
DSL, which finds the UDP header behind IPv4 options with
openat.asm.packet.ipv4_payload and reads the destination port with a
bounds-checked load; its verdict (TcAction.SHOT: drop, TcAction.UNSPEC:
no opinion, let the packet go on); and openat.link.tc putting it on the
interface's egress (a tcx link where the kernel has one, else a clsact bpf
filter, removed again on exit). An array map counts the drops; each second
the program prints the count when it has grown.

Run it as root, with pyroute2 installed (``pip install 'openat[net]'``)::

    sudo python examples/tc_drop_udp.py eth0 53      # no DNS over UDP leaves eth0 while it runs
    sudo python examples/tc_drop_udp.py eth0 9999 --seconds 30

Ctrl-C or SIGTERM stops it; the program is detached either way.
"""

from __future__ import annotations

import argparse
import signal
import struct
import sys
import time

from openat.asm import R0, R1, R2, R3, R4, R5, R6, R10, Program, ipv4_payload, load_packet, load_packet_pointers
from openat.link import tc
from openat.syscalls import MapType, map_create, prog_load
from openat.uapi import ETH_HLEN, ETH_P_IP, ETHHDR_PROTO, IPHDR_PROTOCOL, IPPROTO_UDP, UDPHDR_DEST, TcAction

DROPS = "drops"  # array, one u64: datagrams dropped
KEY = -4


def drop_program(port: int) -> Program:
    """TC_ACT_SHOT for IPv4 UDP to ``port`` (counted in drops[0]); TC_ACT_UNSPEC for everything else."""
    p = Program()
    load_packet_pointers(p, R2, R3, context="skb")  # r2 = data, r3 = data_end
    load_packet(p, R4, R2, ETHHDR_PROTO, 2, data_end=R3, fail_label="other", scratch=R5)
    p.jne(R4, ETH_P_IP, "other")
    load_packet(p, R4, R2, ETH_HLEN + IPHDR_PROTOCOL, 1, data_end=R3, fail_label="other", scratch=R5)
    p.jne(R4, IPPROTO_UDP, "other")
    p.mov(R6, R2)
    p.add(R6, ETH_HLEN)  # r6 = the IPv4 header
    ipv4_payload(p, R6, R6, data_end=R3, fail_label="other", scratch=R5)  # r6 = the UDP header
    load_packet(p, R4, R6, UDPHDR_DEST, 2, data_end=R3, fail_label="other", scratch=R5)
    p.jne(R4, port, "other")
    p.stw(R10, KEY, 0)
    p.mov(R2, R10)
    p.add(R2, KEY)
    p.ld_map_fd(R1, DROPS)
    p.call("map_lookup_elem")
    p.jeq(R0, 0, "drop")
    p.mov(R1, 1)
    p.atomic_add(R0, 0, R1)  # several CPUs send at once
    p.label("drop")
    p.mov(R0, TcAction.SHOT)
    p.exit()
    p.label("other")
    p.mov(R0, TcAction.UNSPEC)  # not ours to judge: the next filter, or the default (pass), decides
    p.exit()
    return p


def drop(args: argparse.Namespace) -> None:
    report = lambda message: print(f"tc_drop_udp: {message}", file=sys.stderr, flush=True)  # noqa: E731
    with map_create(MapType.ARRAY, 4, 8, 1, name=DROPS) as drops:
        code = drop_program(args.port)
        with prog_load(code.encode({DROPS: drops}), tc.SCHED_CLS_PROG_TYPE, name="tc_drop_udp",
                       slot_sources=code.slot_sources()) as program:
            interface = int(args.interface) if args.interface.isdigit() else args.interface
            with tc.attach(program, interface, "egress", report=report):
                shown = 0
                end = time.monotonic() + args.seconds if args.seconds else None
                try:
                    while end is None or time.monotonic() < end:
                        time.sleep(1)
                        dropped = struct.unpack("<Q", drops.lookup(0))[0]
                        if dropped != shown:
                            print(f"dropped {dropped} UDP datagrams to port {args.port}", flush=True)
                            shown = dropped
                finally:
                    print(f"in all: dropped {struct.unpack('<Q', drops.lookup(0))[0]} UDP datagrams to port {args.port}",
                          flush=True)


def port_number(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{port} is not a UDP port (1..65535)")
    return port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("interface", help="network interface name (or index) whose egress to filter")
    parser.add_argument("port", type=port_number, help="UDP destination port to drop")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (default: at Ctrl-C)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))  # unwinds: the with blocks detach
    try:
        drop(args)
    except KeyboardInterrupt:
        pass
    except (ImportError, ValueError, OSError) as error:  # BpfError is an OSError; each says what to do in one line
        print(f"tc_drop_udp: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
