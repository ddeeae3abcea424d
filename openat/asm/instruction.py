"""The :class:`Instruction` value, its validation, ISA level, and byte encoding/decoding.

An eBPF instruction is 8 bytes, little-endian::

    byte 0      opcode
    byte 1      dst (low nibble) | src (high nibble)
    bytes 2-3   off  (signed 16-bit)
    bytes 4-7   imm  (signed 32-bit)

The 64-bit immediate load (``lddw``, opcode 0x18) takes two slots: the second slot is all
zero except its imm, which holds the upper 32 bits. This package models it as one
:class:`Instruction` whose ``imm`` is the whole 64-bit value.
"""

from __future__ import annotations

import operator
import struct
from operator import itemgetter
from typing import Any, Iterator, Union

from .errors import AsmError, DecodeError
from .formatter import format_instruction
from .opcodes import (
    ALL_FORMS,
    ATOMIC_OPS,
    BPF_CALLX,
    BPF_ADD,
    BPF_DIV,
    BPF_MOD,
    FORMS,
    LDDW,
    Form,
)

__all__ = ["Instruction", "decode", "encode", "iter_decode"]

# Any object with the buffer protocol is accepted (array.array, mmap, ctypes arrays too).
Buffer = Union[bytes, bytearray, memoryview, Any]

_SLOT = struct.Struct("<BBhi")
_WIDE = struct.Struct("<BBhIBBhI")
pack_slot = _SLOT.pack
pack_wide = _WIDE.pack
unpack_slot_from = _SLOT.unpack_from

INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
UINT32_MAX = (1 << 32) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1
MAX_REGISTER = 10

_MOVSX_OFFSETS_64 = (8, 16, 32)
_MOVSX_OFFSETS_32 = (8, 16)
_END_WIDTHS = (16, 32, 64)


def signed64(value: int) -> int:
    """The signed reading of a 64-bit pattern (values already in -2**63..2**64-1)."""
    return value - (1 << 64) if value > INT64_MAX else value


def field_problem(opcode: int, dst: int, src: int, off: int, imm: int, *, callx: bool = False) -> str | None:
    """Why these field values are not a valid RFC 9669 instruction, or ``None`` if they are.

    Fields are assumed to be within their bit widths already. Reserved fields must be zero,
    as RFC 9669 requires and LLVM's decoder enforces. ``callx`` also accepts the ``callx``
    extension (call by register), which RFC 9669 does not define.
    """
    form = FORMS.get(opcode)
    if form is None:
        if opcode == BPF_CALLX and callx:
            if dst > MAX_REGISTER:
                return f"no register r{dst} (r0-r10 exist)"
            return "src, offset and imm must be 0 for callx" if (src or off or imm) else None
        return f"unknown opcode 0x{opcode:02x}"
    kind = form.kind
    if dst > MAX_REGISTER and kind not in ("ldabs", "ldind", "ja", "gotol", "call", "exit"):
        return f"no register r{dst} (r0-r10 exist)"
    if src > MAX_REGISTER and form.uses_reg_source:
        return f"no register r{src} (r0-r10 exist)"
    if kind == "alu":
        if off != 0 and not (off == 1 and form.op in (BPF_DIV, BPF_MOD)):
            return f"offset must be 0 (1 for signed div/mod), got {off}"
        if form.uses_reg_source:
            return "imm must be 0 with a register source" if imm else None
        return "src must be 0 with an immediate source" if src else None
    if kind == "mov":
        if form.uses_reg_source:
            allowed = _MOVSX_OFFSETS_32 if form.is32 else _MOVSX_OFFSETS_64
            if off != 0 and off not in allowed:
                return f"offset must be 0 or a sign-extension width {allowed}, got {off}"
            return "imm must be 0 with a register source" if imm else None
        if src:
            return "src must be 0 with an immediate source"
        return f"offset must be 0, got {off}" if off else None
    if kind == "neg":
        if src or off or imm:
            return "src, offset and imm must be 0 for neg"
        return None
    if kind == "end":
        if src or off:
            return "src and offset must be 0 for a byte swap"
        return None if imm in _END_WIDTHS else f"byte-swap width must be 16, 32 or 64, got {imm}"
    if kind == "jcond":
        if form.uses_reg_source:
            return "imm must be 0 with a register source" if imm else None
        return "src must be 0 with an immediate source" if src else None
    if kind == "ja":
        return "dst, src and imm must be 0 for goto" if (dst or src or imm) else None
    if kind == "gotol":
        return "dst, src and offset must be 0 for gotol" if (dst or src or off) else None
    if kind == "call":
        if dst or off:
            return "dst and offset must be 0 for call"
        return None if src <= 2 else f"call src must be 0 (helper), 1 (bpf-to-bpf) or 2 (kfunc), got {src}"
    if kind == "exit":
        return "all fields must be 0 for exit" if (dst or src or off or imm) else None
    if kind in ("ldx", "ldxs", "stx"):
        return "imm must be 0 for a register load/store" if imm else None
    if kind == "st":
        return "src must be 0 for a store of an immediate" if src else None
    if kind == "atomic":
        return None if imm in ATOMIC_OPS else f"unknown atomic operation 0x{imm & UINT32_MAX:x}"
    if kind == "lddw":
        if off:
            return "offset must be 0 for lddw"
        return None if src <= 6 else f"lddw src must be 0-6 (a pseudo source), got {src}"
    if kind == "ldabs":
        return "dst, src and offset must be 0 for a packet load" if (dst or src or off) else None
    # ldind
    return "dst and offset must be 0 for a packet load" if (dst or off) else None


def required_level(opcode: int, src: int, off: int, imm: int) -> int:
    """The ISA level (1-4) a valid instruction needs; see docs/isa.md for the table."""
    form = ALL_FORMS[opcode]
    level = form.level
    kind = form.kind
    if kind == "alu" and off == 1:
        return 4  # sdiv / smod
    if kind == "mov" and off:
        return 4  # movsx
    if kind == "atomic" and imm != BPF_ADD:
        return 3  # everything but the original XADD came with the v3-era atomics
    return level


def describe_level(opcode: int, src: int, off: int, imm: int) -> str:
    """A short name for what makes an instruction need its level (for error messages)."""
    form = ALL_FORMS[opcode]
    if form.kind == "alu" and off == 1:
        return "signed division/modulo"
    if form.kind == "mov" and off:
        return "sign-extending move"
    if form.kind == "atomic" and imm != BPF_ADD:
        return f"atomic {ATOMIC_OPS[imm]}"
    if form.kind == "jcond" and form.is32:
        return "32-bit jump (JMP32 class)"
    return {
        "jcond": "jlt/jle/jslt/jsle",
        "end": "bswap",
        "ldxs": "sign-extending load",
        "gotol": "gotol",
    }.get(form.kind, form.kind)


class Instruction(tuple):
    """One eBPF instruction: an immutable ``(opcode, dst, src, off, imm)`` plus ``source``.

    ``source`` is where it came from (``"file.py:LINE"`` for the DSL, ``"line N"`` for text,
    ``""`` when decoded) and does not take part in equality or hashing. For ``lddw`` the
    ``imm`` is the full 64-bit value (stored signed, as the bits denote).

    Constructing one validates it: out-of-range fields or an encoding RFC 9669 does not
    define raise :class:`AsmError`.
    """

    __slots__ = ()

    opcode: int = property(itemgetter(0))  # type: ignore[assignment]
    dst: int = property(itemgetter(1))  # type: ignore[assignment]
    src: int = property(itemgetter(2))  # type: ignore[assignment]
    off: int = property(itemgetter(3))  # type: ignore[assignment]
    imm: int = property(itemgetter(4))  # type: ignore[assignment]
    source: str = property(itemgetter(5))  # type: ignore[assignment]

    def __new__(
        cls, opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0, source: str = ""
    ) -> "Instruction":
        for name, value, low, high in (
            ("opcode", opcode, 0, 0xFF),
            ("dst", dst, 0, 0xF),
            ("src", src, 0, 0xF),
            ("off", off, INT16_MIN, INT16_MAX),
        ):
            if type(value) is not int or not low <= value <= high:
                raise AsmError(f"Instruction {name}={value!r} is out of range {low}..{high}")
        if type(imm) is not int:
            raise AsmError(f"Instruction imm={imm!r} is not an int")
        if opcode == LDDW:
            if not INT64_MIN <= imm <= UINT64_MAX:
                raise AsmError(f"Instruction imm={imm} does not fit in 64 bits")
            if imm > INT64_MAX:
                imm -= 1 << 64
        else:
            if not INT32_MIN <= imm <= UINT32_MAX:
                raise AsmError(f"Instruction imm={imm} does not fit in 32 bits")
            if imm > INT32_MAX:
                imm -= 1 << 32
        problem = field_problem(opcode, dst, src, off, imm)
        if problem:
            raise AsmError(f"Instruction(0x{opcode:02x}, {dst}, {src}, {off}, {imm}): {problem}")
        return tuple.__new__(cls, (opcode, dst, src, off, imm, source))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Instruction):
            return self[:5] == other[:5]
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        if isinstance(other, Instruction):
            return self[:5] != other[:5]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self[:5])

    def __repr__(self) -> str:
        src = f", source={self[5]!r}" if self[5] else ""
        return (
            f"Instruction(opcode=0x{self[0]:02x}, dst={self[1]}, src={self[2]}, "
            f"off={self[3]}, imm={self[4]}{src})"
        )

    def __str__(self) -> str:
        return format_instruction(self)

    def __getnewargs__(self) -> tuple[Any, ...]:  # pickling goes through __new__
        return tuple(self)

    @property
    def form(self) -> Form:
        """The opcode's :class:`~openat.asm.opcodes.Form` (kind, op, width, size...)."""
        return ALL_FORMS[self[0]]

    @property
    def is_wide(self) -> bool:
        """True for the 16-byte 64-bit immediate load."""
        return self[0] == LDDW

    @property
    def slots(self) -> int:
        """Number of 8-byte slots: 2 for ``lddw``, else 1."""
        return 2 if self[0] == LDDW else 1

    @property
    def size(self) -> int:
        """Encoded size in bytes: 16 for ``lddw``, else 8."""
        return 16 if self[0] == LDDW else 8

    @property
    def required_level(self) -> int:
        """The ISA level (1-4) this instruction needs."""
        return required_level(self[0], self[2], self[3], self[4])

    def replace(self, **fields: int | str) -> "Instruction":
        """A copy with some fields changed (validated like the constructor)."""
        values = dict(zip(("opcode", "dst", "src", "off", "imm", "source"), self))
        values.update(fields)
        return Instruction(**values)  # type: ignore[arg-type]

    def encode(self) -> bytes:
        """The 8-byte (16 for ``lddw``) little-endian encoding."""
        opcode, dst, src, off, imm = self[:5]
        if opcode == LDDW:
            imm &= UINT64_MAX
            return pack_wide(opcode, src << 4 | dst, off, imm & UINT32_MAX, 0, 0, 0, imm >> 32)
        return pack_slot(opcode, src << 4 | dst, off, imm)

    def text(self, **options: Any) -> str:
        """This instruction in LLVM syntax; see :func:`openat.asm.formatter.format_instruction`."""
        return format_instruction(self, **options)

    @classmethod
    def decode(cls, data: Buffer, offset: int = 0) -> "Instruction":
        """Decode the instruction at byte ``offset`` of any bytes-like ``data``.

        Raises :class:`DecodeError`, never another exception: for malformed bytes, an offset
        that is negative, not an int or too close to the end, or ``data`` that is no buffer.
        """
        code = code_bytes(data)
        try:
            start = operator.index(offset)
        except TypeError:
            raise DecodeError(f"offset must be an int, got {type(offset).__name__}", 0) from None
        if start < 0:
            raise DecodeError(f"byte {start}: offset is negative", start)
        return _decode_at(code, start, len(code))


def _decode_at(data: bytes | bytearray | memoryview, offset: int, end: int, callx: bool = False) -> Instruction:
    if offset >= end:
        raise DecodeError(f"byte {offset}: offset is at or past the end of the code ({end} bytes)", offset)
    if offset + 8 > end:
        raise DecodeError(
            f"byte {offset}: truncated instruction ({end - offset} bytes left, 8 needed)", offset
        )
    opcode, regs, off, imm = unpack_slot_from(data, offset)
    dst = regs & 0x0F
    src = regs >> 4
    if opcode == LDDW:
        if offset + 16 > end:
            raise DecodeError(
                f"slot {offset // 8}: lddw needs a second 8-byte slot but the code ends", offset
            )
        op2, regs2, off2, imm2 = unpack_slot_from(data, offset + 8)
        if op2 or regs2 or off2:
            raise DecodeError(
                f"slot {offset // 8 + 1}: second half of lddw must have opcode, registers and "
                f"offset 0, got opcode 0x{op2:02x} regs 0x{regs2:02x} off {off2}",
                offset + 8,
            )
        imm = (imm2 << 32) | (imm & UINT32_MAX)  # imm2 is signed, so the result is too
    problem = field_problem(opcode, dst, src, off, imm, callx=callx)
    if problem:
        raw = bytes(data[offset : offset + 8]).hex(" ")
        raise DecodeError(f"slot {offset // 8} ({raw}): {problem}", offset)
    return tuple.__new__(Instruction, (opcode, dst, src, off, imm, ""))


def code_bytes(code: object) -> bytes | bytearray | memoryview:
    """``code`` as a flat sequence of bytes; :class:`DecodeError` when it is no bytes-like object.

    bytes and bytearray as they are; any other buffer (memoryview of any format, shape or
    strides, array.array, mmap, ctypes arrays) as its bytes in C order: a view of them
    when they are contiguous, else a copy.
    """
    if isinstance(code, (bytes, bytearray)):
        return code
    try:
        view = memoryview(code)  # type: ignore[arg-type]
    except TypeError:
        raise DecodeError(f"expected a bytes-like object, got {type(code).__name__}", 0) from None
    except ValueError as error:  # a released view, a closed mmap
        raise DecodeError(f"cannot read the {type(code).__name__}: {error}", 0) from None
    try:
        if view.c_contiguous:
            return view.cast("B")
        return view.tobytes()
    except (TypeError, ValueError, NotImplementedError) as error:  # formats memoryview cannot copy
        raise DecodeError(f"cannot read the {type(code).__name__} as bytes: {error}", 0) from None


def iter_decode(code: Buffer, *, callx: bool = False) -> Iterator[tuple[int, Instruction]]:
    """Yield ``(slot, instruction)`` for a whole program in any bytes-like ``code``.

    Raises :class:`DecodeError`, never another exception. ``callx`` accepts the ``callx``
    extension (opcode 0x8d), which is otherwise an unknown opcode.
    """
    code = code_bytes(code)
    end = len(code)
    if end % 8:
        raise DecodeError(f"code is {end} bytes, not a multiple of 8", end - end % 8)
    offset = 0
    while offset < end:
        ins = _decode_at(code, offset, end, callx)
        yield offset // 8, ins
        offset += 16 if ins[0] == LDDW else 8


def decode(code: Buffer, *, callx: bool = False) -> list[Instruction]:
    """Decode a whole program (any bytes-like object) into instructions; raises :class:`DecodeError` if malformed.

    ``callx`` accepts the ``callx`` extension, as :func:`iter_decode` does.
    """
    return [ins for _, ins in iter_decode(code, callx=callx)]


def encode(instructions: "list[Instruction] | tuple[Instruction, ...]") -> bytes:
    """Concatenate the encodings of ``instructions``."""
    return b"".join([ins.encode() for ins in instructions])
