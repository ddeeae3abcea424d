"""Packet access for XDP and tc programs: bounds-checked loads between ``data`` and ``data_end``.

An XDP or tc program may read the packet only through pointers derived from
``ctx->data``, and only bytes it has proved to lie before ``ctx->data_end``:
the verifier rejects ``*(u16 *)(data + 12)`` unless a comparison of
``data + 14`` (or more) with ``data_end`` comes first on every path. These
plain functions emit that pattern, so each load is one call::

    load_packet_pointers(p, R2, R3, context="xdp")          # r2 = data, r3 = data_end
    load_packet(p, R4, R2, ETHHDR_PROTO, 2, data_end=R3, fail_label="pass", scratch=R5)
    p.jne(R4, ETH_P_IP, "pass")                              # r4 is the ethertype, in host order

Like :mod:`openat.asm.sequences`, each takes the
:class:`~openat.asm.program.Program` first; errors, and the source line of
every emitted instruction, point at the caller's line. Contexts: ``"xdp"``
(``struct xdp_md``) and ``"skb"`` (``struct __sk_buff``: tc/tcx, also
cgroup_skb and socket filters), offsets from :mod:`openat.uapi`.
"""

from __future__ import annotations

from typing import Dict, Tuple

from ..uapi import IPHDR_MIN_LEN, SK_BUFF_DATA, SK_BUFF_DATA_END, XDP_MD_DATA, XDP_MD_DATA_END
from .errors import AsmError
from .program import Program, caller_source
from .registers import R1, Register

__all__ = ["MAX_PACKET_OFFSET", "PACKET_CONTEXTS", "check_packet_bounds", "ipv4_payload", "load_packet", "load_packet_pointers"]

#: Context kind -> offsets of (data, data_end) in it.
PACKET_CONTEXTS: Dict[str, Tuple[int, int]] = {
    "xdp": (XDP_MD_DATA, XDP_MD_DATA_END),
    "skb": (SK_BUFF_DATA, SK_BUFF_DATA_END),
}
#: The verifier tracks packet ranges up to this many bytes (MAX_PACKET_OFF).
MAX_PACKET_OFFSET = 0xFFFF
_LOADS = {1: "ldxb", 2: "ldxh", 4: "ldxw", 8: "ldxdw"}


def _fail(call: str, message: str) -> AsmError:
    return AsmError(f"{call} at {caller_source()}: {message}")


def _registers(call: str, **registers: object) -> None:
    """Each must be a 64-bit R register (packet pointers and their bounds are 64-bit)."""
    for role, register in registers.items():
        if type(register) is not Register or register.is32:
            raise _fail(call, f"{role} must be a 64-bit R register, got {register!r}")


def _distinct(call: str, **registers: Register) -> None:
    seen: Dict[int, str] = {}
    for role, register in registers.items():
        if register.num in seen:
            raise _fail(call, f"{role} and {seen[register.num]} must be different registers, both are {register!r}")
        seen[register.num] = role


def load_packet_pointers(p: Program, data: Register, data_end: Register, *, context: str, ctx: Register = R1) -> None:
    """``data = ctx->data; data_end = ctx->data_end`` for a ``context`` ("xdp" or "skb") program.

    Two 32-bit loads, which the verifier turns into packet pointers. ``ctx``
    (the program's r1 at entry) may be one of the two destinations.
    """
    call = f"load_packet_pointers({data!r}, {data_end!r}, context={context!r}, ctx={ctx!r})"
    offsets = PACKET_CONTEXTS.get(context) if isinstance(context, str) else None
    if offsets is None:
        raise _fail(call, f"context must be one of {', '.join(map(repr, PACKET_CONTEXTS))}")
    _registers(call, data=data, data_end=data_end, ctx=ctx)
    _distinct(call, data=data, data_end=data_end)
    data_offset, end_offset = offsets
    if data.num == ctx.num:  # load data_end while ctx is still there
        p.ldxw(data_end, ctx, end_offset)
        p.ldxw(data, ctx, data_offset)
    else:
        p.ldxw(data, ctx, data_offset)
        p.ldxw(data_end, ctx, end_offset)


def _size(call: str, size: object, low: int = 1) -> int:
    if type(size) is not int or not low <= size <= MAX_PACKET_OFFSET:
        raise _fail(call, f"size must be an int in {low}..{MAX_PACKET_OFFSET}, got {size!r}")
    return size


def check_packet_bounds(p: Program, pointer: Register, data_end: Register, size: int, fail_label: str, *,
                        scratch: Register) -> None:
    """``if pointer + size > data_end goto fail_label``; after it the program may read ``[pointer, pointer + size)``.

    ``pointer`` is ``data`` or a pointer derived from it; ``scratch`` is
    overwritten (three instructions: mov, add, jgt).
    """
    call = f"check_packet_bounds({pointer!r}, {data_end!r}, {size!r}, {fail_label!r}, scratch={scratch!r})"
    _registers(call, pointer=pointer, data_end=data_end, scratch=scratch)
    _distinct(call, pointer=pointer, data_end=data_end, scratch=scratch)
    _size(call, size)
    p.mov(scratch, pointer)
    p.add(scratch, size)
    p.jgt(scratch, data_end, fail_label)


def load_packet(p: Program, dst: Register, pointer: Register, offset: int, size: int, *, data_end: Register,
                fail_label: str, scratch: Register, network_order: bool = True) -> None:
    """``dst = *(u<size*8> *)(pointer + offset)`` after checking those bytes are in the packet, else ``goto fail_label``.

    ``size`` is 1, 2, 4 or 8 bytes. Packet fields are big-endian, so the
    value is converted to host order (``be``) unless ``network_order=False``
    (compare it with a big-endian constant then, or with a byte).
    ``scratch`` is overwritten; ``dst`` may be ``pointer`` (the load comes last).
    """
    call = f"load_packet({dst!r}, {pointer!r}, {offset!r}, {size!r}, data_end={data_end!r}, ...)"
    if size not in _LOADS or type(size) is not int:
        raise _fail(call, f"size must be 1, 2, 4 or 8 bytes, got {size!r}")
    if type(offset) is not int or not 0 <= offset <= MAX_PACKET_OFFSET - size:
        raise _fail(call, f"offset must be an int in 0..{MAX_PACKET_OFFSET - size}, got {offset!r}")
    if offset > 0x7FFF:
        raise _fail(call, f"offset {offset} does not fit a load's signed 16-bit offset; advance {pointer!r} first")
    check_packet_bounds(p, pointer, data_end, offset + size, fail_label, scratch=scratch)
    getattr(p, _LOADS[size])(dst, pointer, offset)
    if network_order and size > 1:
        p.be(dst, size * 8)


def ipv4_payload(p: Program, dst: Register, ip: Register, *, data_end: Register, fail_label: str,
                 scratch: Register) -> None:
    """``dst = ip + ihl * 4``: the start of the IPv4 payload (the TCP/UDP header), options skipped.

    ``ip`` points at the IPv4 header; goes to ``fail_label`` when its 20
    bytes are not all in the packet or ``ihl`` is below 5 (not IPv4). ``dst``
    is a packet pointer with a variable offset: check it with
    :func:`load_packet` or :func:`check_packet_bounds` before reading. Uses
    ``jlt`` (ISA v2 or later).
    """
    call = f"ipv4_payload({dst!r}, {ip!r}, data_end={data_end!r}, fail_label={fail_label!r}, scratch={scratch!r})"
    _registers(call, dst=dst, ip=ip, data_end=data_end, scratch=scratch)
    _distinct(call, dst=dst, data_end=data_end, scratch=scratch)
    _distinct(call, ip=ip, data_end=data_end, scratch=scratch)
    check_packet_bounds(p, ip, data_end, IPHDR_MIN_LEN, fail_label, scratch=scratch)
    p.ldxb(scratch, ip, 0)  # version << 4 | ihl
    p.and_(scratch, 0x0F)
    p.lsh(scratch, 2)  # bytes, 0..60: the verifier knows the bound from the mask
    p.jlt(scratch, IPHDR_MIN_LEN, fail_label)
    if dst.num != ip.num:
        p.mov(dst, ip)
    p.add(dst, scratch)
