"""The network tests' BPF programs, written with openat.asm and its packet helpers, and hand-made frames."""

from __future__ import annotations

import socket
import struct

from openat.asm import R0, R1, R2, R3, R4, R5, R6, R10, Program, ipv4_payload, load_packet, load_packet_pointers
from openat.syscalls import MapFd, MapType, ProgramFd, map_create, prog_load
from openat.uapi import (
    ETH_HLEN,
    ETH_P_ARP,
    ETH_P_IP,
    ETHHDR_PROTO,
    IPHDR_PROTOCOL,
    IPPROTO_UDP,
    UDPHDR_DEST,
    ProgType,
    TcAction,
    XdpAction,
)

HITS = "hits"  # array map, one u64: packets the program matched
# What a program returns for the packets it does not match.
NO_VERDICT = {ProgType.XDP: XdpAction.PASS, ProgType.SCHED_CLS: TcAction.UNSPEC}
CONTEXT = {ProgType.XDP: "xdp", ProgType.SCHED_CLS: "skb"}


def udp_port_program(prog_type: int, port: int, verdict: int) -> Program:
    """Counts IPv4 UDP packets to ``port`` in ``hits[0]`` and returns ``verdict`` for them; others get no verdict."""
    p = Program()
    load_packet_pointers(p, R2, R3, context=CONTEXT[prog_type])
    load_packet(p, R4, R2, ETHHDR_PROTO, 2, data_end=R3, fail_label="other", scratch=R5)
    p.jne(R4, ETH_P_IP, "other")
    load_packet(p, R4, R2, ETH_HLEN + IPHDR_PROTOCOL, 1, data_end=R3, fail_label="other", scratch=R5)
    p.jne(R4, IPPROTO_UDP, "other")
    p.mov(R6, R2)
    p.add(R6, ETH_HLEN)
    ipv4_payload(p, R6, R6, data_end=R3, fail_label="other", scratch=R5)
    load_packet(p, R4, R6, UDPHDR_DEST, 2, data_end=R3, fail_label="other", scratch=R5)
    p.jne(R4, port, "other")
    p.stw(R10, -4, 0)
    p.mov(R2, R10)
    p.add(R2, -4)
    p.ld_map_fd(R1, HITS)
    p.call("map_lookup_elem")
    p.jeq(R0, 0, "matched")
    p.mov(R1, 1)
    p.atomic_add(R0, 0, R1)
    p.label("matched")
    p.mov(R0, verdict)
    p.exit()
    p.label("other")
    p.mov(R0, NO_VERDICT[prog_type])
    p.exit()
    return p


def load_udp_port_program(prog_type: int, port: int, verdict: int, name: str = "t_udp_port") -> tuple[ProgramFd, MapFd]:
    """The loaded program and its ``hits`` map (the caller closes both)."""
    hits = map_create(MapType.ARRAY, 4, 8, 1, name="t_hits")
    try:
        code = udp_port_program(prog_type, port, verdict)
        return prog_load(code.encode({HITS: hits}), prog_type, name=name, slot_sources=code.slot_sources()), hits
    except BaseException:
        hits.close()
        raise


def hits(hits_map: MapFd) -> int:
    return struct.unpack("<Q", hits_map.lookup(0))[0]


def returning(prog_type: int, value: int, name: str = "t_return") -> ProgramFd:
    p = Program()
    p.mov(R0, value)
    p.exit()
    return prog_load(p.encode(), prog_type, name=name)


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(dport: int, *, sport: int = 40000, payload: bytes = b"openat", options: bytes = b"",
              src: str = "10.0.0.2", dst: str = "10.0.0.1") -> bytes:
    """Ethernet + IPv4 (with ``options``, a multiple of 4 bytes) + UDP, checksums right."""
    ihl = 5 + len(options) // 4
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(udp), 1, 0, 64, IPPROTO_UDP, 0,
                         socket.inet_aton(src), socket.inet_aton(dst)) + options
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return ethernet(ETH_P_IP, header + udp)


def ethernet(ethertype: int, payload: bytes) -> bytes:
    return bytes.fromhex("020000000001") + bytes.fromhex("020000000002") + struct.pack("!H", ethertype) + payload


def arp_frame() -> bytes:
    return ethernet(ETH_P_ARP, bytes(28))
