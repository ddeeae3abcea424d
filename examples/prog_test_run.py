"""Run a BPF program in the kernel on input you choose, without attaching it: BPF_PROG_TEST_RUN.

What it shows: a socket filter built with the DSL that keeps IPv4 packets
(its result: the bytes to keep) and drops everything else (0), run by the
kernel on two hand-made Ethernet frames; the verifier checks it and the
kernel runs it as it would on a socket, but nothing is attached anywhere.
A socket filter sees the packet from its network header on (the kernel
strips the Ethernet header first), so the program looks at the IP version.

Run it as root::

    sudo python examples/prog_test_run.py
"""

from __future__ import annotations

from openat.asm import R0, R1, R6, Program
from openat.syscalls import ProgType, prog_load

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806


def ipv4_only() -> Program:
    """Keep the whole packet when its IP version is 4, else drop it (return 0)."""
    p = Program()
    p.mov(R6, R1)  # packet loads (ldabs) read the packet whose context is in r6
    p.ldabsb(0)  # r0 = the first byte of the network header: version << 4 | header length
    p.rsh(R0, 4)
    p.jne(R0, 4, "drop")
    p.mov(R0, -1)  # keep it all (the kernel cuts the length to the packet's)
    p.exit()
    p.label("drop")
    p.mov(R0, 0)
    p.exit()
    return p


def frame(ether_type: int, payload: bytes) -> bytes:
    return bytes(6) + bytes.fromhex("020000000001") + ether_type.to_bytes(2, "big") + payload


def main() -> None:
    program = ipv4_only()
    print(program.listing())
    ipv4 = frame(ETH_P_IP, bytes.fromhex("4500001c000000004011") + bytes(18))
    arp = frame(ETH_P_ARP, bytes.fromhex("0001080006040001") + bytes(20))
    with prog_load(program.encode(), ProgType.SOCKET_FILTER, name="ipv4_only") as loaded:
        for name, packet in (("IPv4", ipv4), ("ARP", arp)):
            result = loaded.test_run(data_in=packet)
            verdict = "kept" if result.retval else "dropped"
            print(f"{name} packet of {len(packet)} bytes: {verdict} (retval {result.retval:#x})")


if __name__ == "__main__":
    main()
