"""Higher-level building blocks: plain functions that emit short instruction sequences.

Each takes the :class:`~openat.asm.program.Program` first and emits into it; errors (and the
recorded source lines) point at the caller's line, not at this module.
"""

from __future__ import annotations

from .errors import AsmError
from .program import Program, caller_source
from .registers import R0, R1, R2, R3, R10, Register

__all__ = ["STACK_SIZE", "read_str", "ringbuf_discard", "ringbuf_reserve", "ringbuf_submit", "zero_stack"]

#: Size of the eBPF stack frame below r10.
STACK_SIZE = 512


def _fail(call: str, message: str) -> AsmError:
    return AsmError(f"{call} at {caller_source()}: {message}")


def zero_stack(p: Program, offset: int, size: int) -> None:
    """Zero ``size`` bytes of stack at ``r10 + offset`` with immediate stores.

    Uses the widest aligned store at each step (8, 4, 2, 1 bytes), so an 8-aligned area
    costs ``size / 8`` instructions and touches no register.
    """
    call = f"zero_stack({offset}, {size})"
    if type(offset) is not int or type(size) is not int:
        raise _fail(call, "offset and size must be ints")
    if size <= 0:
        raise _fail(call, f"size must be positive, got {size}")
    if offset < -STACK_SIZE or offset + size > 0:
        raise _fail(call, f"area r10{offset:+d}..r10{offset + size:+d} is outside the {STACK_SIZE}-byte stack")
    position, end = offset, offset + size
    while position < end:
        for width, store in ((8, p.stdw), (4, p.stw), (2, p.sth), (1, p.stb)):
            if position % width == 0 and end - position >= width:
                store(R10, position, 0)
                position += width
                break


def read_str(p: Program, dst: Register, dst_offset: int, size: int, src: Register, *,
             user: bool = True) -> None:
    """Copy a NUL-terminated string from ``src`` into ``dst + dst_offset`` (``size`` bytes max).

    Emits ``bpf_probe_read_user_str`` (or ``_kernel_str`` with ``user=False``); r0 gets the
    length including the NUL, or a negative errno. r1-r5 are clobbered, as by any call.
    ``dst`` is typically R10 (with a negative offset) or a ring-buffer record pointer.
    """
    helper = "probe_read_user_str" if user else "probe_read_kernel_str"
    call = f"read_str({dst!r}, {dst_offset}, {size}, {src!r})"
    for reg in (dst, src):
        if type(reg) is not Register or reg.is32:
            raise _fail(call, f"{reg!r} must be a 64-bit R register")
    if type(size) is not int or not 0 < size <= 0x7FFFFFFF:
        raise _fail(call, f"size must be a positive int, got {size!r}")
    # r1 = dst + off, r2 = size, r3 = src, in an order that reads every input before
    # overwriting it (the inputs may themselves live in r1-r3).
    if src.num == 1 and dst.num == 3:
        p.mov(R0, src)  # r0 is free: the call overwrites it anyway
        src = R0
    if src.num == 1:
        p.mov(R3, src)
        src = R3
    if dst.num != 1:
        p.mov(R1, dst)
    if dst_offset:
        p.add(R1, dst_offset)
    if src.num != 3:
        p.mov(R3, src)
    p.mov(R2, size)
    p.call(helper)


def ringbuf_reserve(p: Program, dst: Register, map_name: str, size: int, fail_label: str) -> None:
    """Reserve a ``size``-byte record in ring buffer ``map_name``; pointer in ``dst``.

    Jumps to ``fail_label`` when the buffer is full (r0 == 0). Use a callee-saved register
    (R6-R9) for ``dst`` so the pointer survives later helper calls.
    """
    call = f"ringbuf_reserve({dst!r}, {map_name!r}, {size!r}, {fail_label!r})"
    if type(dst) is not Register or dst.is32:
        raise _fail(call, "dst must be a 64-bit R register")
    if type(size) is not int or not 0 < size <= 0x7FFFFFFF:
        raise _fail(call, f"size must be a positive int, got {size!r}")
    p.ld_map_fd(R1, map_name)
    p.mov(R2, size)
    p.mov(R3, 0)
    p.call("ringbuf_reserve")
    p.jeq(R0, 0, fail_label)
    if dst.num != 0:
        p.mov(dst, R0)


def ringbuf_submit(p: Program, record: Register, flags: int = 0) -> None:
    """Submit a record obtained from :func:`ringbuf_reserve` (``bpf_ringbuf_submit``)."""
    p.mov(R1, record)
    p.mov(R2, flags)
    p.call("ringbuf_submit")


def ringbuf_discard(p: Program, record: Register, flags: int = 0) -> None:
    """Give back a reserved record without publishing it (``bpf_ringbuf_discard``)."""
    p.mov(R1, record)
    p.mov(R2, flags)
    p.call("ringbuf_discard")
