"""The :class:`Program` builder: one method call emits one instruction.

Registers decide widths: ``p.add(R1, 5)`` is 64-bit ALU, ``p.add(W1, 5)`` 32-bit ALU,
``p.jeq(W1, 5, "out")`` a JMP32 comparison. Jumps name labels; ``label()`` may come before or
after the jump. Maps are referenced by name and resolved to fds only in :meth:`encode`, so one
built program can be loaded many times. Every instruction records the ``file.py:LINE`` of the
first caller outside this package, and every error names the call and that line.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Mapping, NoReturn, Union

from ..fieldtuple import FieldTuple
from .errors import AsmError, IsaLevelError
from .formatter import format_instruction
from .helper_ids import HELPER_IDS, HELPER_NAMES
from .instruction import (
    INT16_MAX,
    INT16_MIN,
    INT32_MAX,
    INT32_MIN,
    INT64_MIN,
    UINT32_MAX,
    UINT64_MAX,
    Instruction,
    describe_level,
    pack_slot,
    pack_wide,
    required_level,
    signed64,
)
from .opcodes import (
    BPF_ADD,
    BPF_ALU,
    BPF_ALU64,
    BPF_AND,
    BPF_ARSH,
    BPF_ATOMIC,
    BPF_B,
    BPF_CALL,
    BPF_CALLX,
    BPF_CMPXCHG,
    BPF_DIV,
    BPF_DW,
    BPF_END,
    BPF_EXIT,
    BPF_FETCH,
    BPF_H,
    BPF_IND,
    BPF_ABS,
    BPF_JA,
    BPF_JEQ,
    BPF_JGE,
    BPF_JGT,
    BPF_JLE,
    BPF_JLT,
    BPF_JMP,
    BPF_JMP32,
    BPF_JNE,
    BPF_JSET,
    BPF_JSGE,
    BPF_JSGT,
    BPF_JSLE,
    BPF_JSLT,
    BPF_LD,
    BPF_LDX,
    BPF_LSH,
    BPF_MEM,
    BPF_MEMSX,
    BPF_MOD,
    BPF_MOV,
    BPF_MUL,
    BPF_NEG,
    BPF_OR,
    BPF_PSEUDO_BTF_ID,
    BPF_PSEUDO_CALL,
    BPF_PSEUDO_FUNC,
    BPF_PSEUDO_KFUNC_CALL,
    BPF_PSEUDO_MAP_FD,
    BPF_PSEUDO_MAP_IDX,
    BPF_PSEUDO_MAP_IDX_VALUE,
    BPF_PSEUDO_MAP_VALUE,
    BPF_RSH,
    BPF_ST,
    BPF_STX,
    BPF_SUB,
    BPF_TO_BE,
    BPF_TO_LE,
    BPF_W,
    BPF_X,
    BPF_XCHG,
    BPF_XOR,
    ISA_LEVELS,
    LDDW,
    SIZE_BYTES,
)
from .registers import Register

Operand = Union[Register, int]
#: A jump target: a label name, or a relative offset in slots (from the next instruction).
Target = Union[str, int]

__all__ = ["Program", "Relocation", "caller_source"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# co_filename → basename, or "" for this package's own files (skipped when finding the caller).
_caller_names: dict[str, str] = {}
_LABEL_NAME = re.compile(r"[A-Za-z_.$][\w.$]*\Z")
_SHIFTS = (BPF_LSH, BPF_RSH, BPF_ARSH)
_DIVISIONS = (BPF_DIV, BPF_MOD)


def caller_source(skip: int = 1) -> str:
    """``"file.py:LINE"`` of the innermost frame outside openat/asm (cheap: no inspect).

    ``skip`` frames above this function's caller are known to be inside the package and are
    not examined.
    """
    frame: Any = sys._getframe(skip)
    names = _caller_names
    while frame is not None:
        filename = frame.f_code.co_filename
        name = names.get(filename)
        if name is None:
            inside = os.path.abspath(filename).startswith(_PACKAGE_DIR)
            name = names[filename] = "" if inside else os.path.basename(filename)
        if name:
            return f"{name}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


class Relocation(FieldTuple):
    """A map reference in a wide load, resolved to an fd by :meth:`Program.encode`."""

    index: int  #: position in :attr:`Program.instructions`
    slot: int  #: position in 8-byte slots
    map_name: str
    kind: str  #: ``"map_fd"`` or ``"map_value"``
    offset: int  #: byte offset into the value (``map_value``), else 0
    source: str


class _Fixup(FieldTuple):
    index: int
    slot: int
    label: str
    kind: str  # "jump" (16-bit off), "ja" (off, or gotol at v4), "call"/"func" (imm)
    text: str  # the DSL call, for error messages


def _fmt_arg(value: object) -> str:
    if isinstance(value, Register):
        return repr(value)
    if type(value) is int and (value > 0xFFFF or value < -0xFFFF):
        return hex(value)
    return repr(value)


def _call_text(name: str, args: tuple[object, ...]) -> str:
    return f"{name}({', '.join(_fmt_arg(a) for a in args)})"


class Program:
    """An eBPF program under construction for ISA level ``isa`` ("v1".."v4", default "v3").

    Each DSL method appends one instruction (``lddw``-family methods append one 16-byte
    instruction). Nothing is resolved until :attr:`instructions`, :meth:`encode`,
    :meth:`slot_sources` or :meth:`listing` is used, so labels may be defined after use.

    Two opt-ins emit what RFC 9669 allows or runtimes other than Linux have, and Linux
    refuses: ``out_of_range_shifts`` (a shift by an immediate outside 0..31/0..63, which the
    RFC masks) and ``callx`` (:meth:`callx`, call by register). Without them both are errors.
    """

    def __init__(self, isa: str = "v3", *, out_of_range_shifts: bool = False, callx: bool = False) -> None:
        level = ISA_LEVELS.get(isa) if isinstance(isa, str) else None
        if level is None:
            raise AsmError(f"Program(isa={isa!r}): ISA level must be one of {', '.join(ISA_LEVELS)}")
        self.isa: str = isa
        self.level: int = level
        self.out_of_range_shifts: bool = bool(out_of_range_shifts)
        self.callx_allowed: bool = bool(callx)
        self._insns: list[Instruction] = []
        self._slot_count = 0
        self._labels: dict[str, int] = {}
        self._label_sources: dict[str, str] = {}
        self._fixups: list[_Fixup] = []
        self._relocations: list[Relocation] = []
        self._resolved: list[Instruction] | None = None

    # ------------------------------------------------------------------ plumbing

    def _source(self) -> str:
        return caller_source()

    def _fail(self, name: str, args: tuple[object, ...], message: str) -> NoReturn:
        raise AsmError(f"{_call_text(name, args)} at {self._source()}: {message}")

    def _emit(self, opcode: int, dst: int, src: int, off: int, imm: int) -> int:
        """Append a pre-validated instruction; returns its index."""
        insns = self._insns
        # Every caller of _emit is a DSL method, so the walk starts at that method's caller.
        insns.append(
            tuple.__new__(
                Instruction,
                (opcode, dst, src, off, imm, caller_source(3)),
            )
        )
        self._slot_count += 2 if opcode == LDDW else 1
        self._resolved = None
        return len(insns) - 1

    def _need(self, level: int, name: str, args: tuple[object, ...], what: str) -> None:
        if level > self.level:
            raise IsaLevelError(
                f"{_call_text(name, args)} at {self._source()}: {what} needs ISA v{level}, "
                f"but this program targets {self.isa} (use Program(isa=\"v{level}\"))"
            )

    def _reg(self, name: str, args: tuple[object, ...], value: object, role: str) -> Register:
        if type(value) is Register:
            return value
        self._fail(name, args, f"{role} must be a register R0-R10 or W0-W10, got {value!r}")

    def _base(self, name: str, args: tuple[object, ...], value: object) -> int:
        if type(value) is Register and not value.is32:
            return value.num
        self._fail(name, args, f"the address register must be a 64-bit R register, got {value!r}")

    def _int(self, name: str, args: tuple[object, ...], value: object, role: str) -> int:
        if type(value) is int:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        self._fail(name, args, f"{role} must be an int, got {value!r}")

    def _off16(self, name: str, args: tuple[object, ...], value: object) -> int:
        off = self._int(name, args, value, "offset")
        if INT16_MIN <= off <= INT16_MAX:
            return off
        self._fail(name, args, f"offset {off} does not fit in the signed 16-bit off field")

    def _imm32(self, name: str, args: tuple[object, ...], value: object, is32: bool) -> int:
        """An imm for a 32-bit (any 32-bit pattern) or 64-bit (sign-extended) operation."""
        imm = self._int(name, args, value, "immediate")
        if INT32_MIN <= imm <= INT32_MAX:
            return imm
        if is32 and imm <= UINT32_MAX and imm > 0:
            return imm - (1 << 32)
        if is32:
            self._fail(name, args, f"immediate {imm} does not fit in 32 bits")
        self._fail(
            name,
            args,
            f"immediate {imm} does not fit in the signed 32-bit imm field (a 64-bit operation "
            "sign-extends it); load it with lddw into a register instead",
        )

    # ------------------------------------------------------------------ ALU

    def _alu(self, name: str, op: int, dst: object, src: object, off: int = 0) -> None:
        args = (dst, src)
        if type(dst) is not Register:
            self._reg(name, args, dst, "destination")
        is32 = dst.is32  # type: ignore[union-attr]
        cls = BPF_ALU if is32 else BPF_ALU64
        if type(src) is Register:
            if src.is32 is not is32:
                self._fail(name, args, "mixes 32-bit (W) and 64-bit (R) registers; use one width")
            self._emit(cls | op | BPF_X, dst.num, src.num, off, 0)  # type: ignore[union-attr]
            return
        if type(src) is int and INT32_MIN <= src <= INT32_MAX:  # the common case, checked inline
            imm = src
        else:
            imm = self._imm32(name, args, src, is32)
        if op in _SHIFTS and not 0 <= imm < (32 if is32 else 64) and not self.out_of_range_shifts:
            self._fail(name, args, f"shift by {imm} is outside 0..{31 if is32 else 63}")
        if op in _DIVISIONS and imm == 0:
            self._fail(name, args, "division by the constant 0 (the verifier rejects it)")
        self._emit(cls | op, dst.num, 0, off, imm)  # type: ignore[union-attr]

    def mov(self, dst: Register, src: Operand) -> None:
        """``dst = src`` (register or 32-bit immediate; W destination zero-extends)."""
        self._alu("mov", BPF_MOV, dst, src)

    def add(self, dst: Register, src: Operand) -> None:
        """``dst += src``."""
        self._alu("add", BPF_ADD, dst, src)

    def sub(self, dst: Register, src: Operand) -> None:
        """``dst -= src``."""
        self._alu("sub", BPF_SUB, dst, src)

    def mul(self, dst: Register, src: Operand) -> None:
        """``dst *= src``."""
        self._alu("mul", BPF_MUL, dst, src)

    def div(self, dst: Register, src: Operand) -> None:
        """``dst /= src`` (unsigned)."""
        self._alu("div", BPF_DIV, dst, src)

    def mod(self, dst: Register, src: Operand) -> None:
        """``dst %= src`` (unsigned)."""
        self._alu("mod", BPF_MOD, dst, src)

    def sdiv(self, dst: Register, src: Operand) -> None:
        """``dst s/= src`` (signed; ISA v4)."""
        self._need(4, "sdiv", (dst, src), "signed division")
        self._alu("sdiv", BPF_DIV, dst, src, 1)

    def smod(self, dst: Register, src: Operand) -> None:
        """``dst s%= src`` (signed; ISA v4)."""
        self._need(4, "smod", (dst, src), "signed modulo")
        self._alu("smod", BPF_MOD, dst, src, 1)

    def or_(self, dst: Register, src: Operand) -> None:
        """``dst |= src``."""
        self._alu("or_", BPF_OR, dst, src)

    def and_(self, dst: Register, src: Operand) -> None:
        """``dst &= src``."""
        self._alu("and_", BPF_AND, dst, src)

    def xor(self, dst: Register, src: Operand) -> None:
        """``dst ^= src``."""
        self._alu("xor", BPF_XOR, dst, src)

    def lsh(self, dst: Register, src: Operand) -> None:
        """``dst <<= src``."""
        self._alu("lsh", BPF_LSH, dst, src)

    def rsh(self, dst: Register, src: Operand) -> None:
        """``dst >>= src`` (logical)."""
        self._alu("rsh", BPF_RSH, dst, src)

    def arsh(self, dst: Register, src: Operand) -> None:
        """``dst s>>= src`` (arithmetic)."""
        self._alu("arsh", BPF_ARSH, dst, src)

    def neg(self, dst: Register) -> None:
        """``dst = -dst``."""
        reg = self._reg("neg", (dst,), dst, "destination")
        self._emit((BPF_ALU if reg.is32 else BPF_ALU64) | BPF_NEG, reg.num, 0, 0, 0)

    def movsx(self, dst: Register, src: Register, bits: int) -> None:
        """``dst = (s<bits>)src``: sign-extend the low 8/16 (32 for R) bits (ISA v4)."""
        args = (dst, src, bits)
        self._need(4, "movsx", args, "sign-extending move")
        d = self._reg("movsx", args, dst, "destination")
        s = self._reg("movsx", args, src, "source")
        if s.is32 is not d.is32:
            self._fail("movsx", args, "mixes 32-bit (W) and 64-bit (R) registers; use one width")
        allowed = (8, 16) if d.is32 else (8, 16, 32)
        if bits not in allowed or type(bits) is not int:
            self._fail("movsx", args, f"bits must be one of {allowed}")
        self._emit((BPF_ALU if d.is32 else BPF_ALU64) | BPF_MOV | BPF_X, d.num, s.num, bits, 0)

    def _swap(self, name: str, opcode: int, dst: object, bits: object) -> None:
        args = (dst, bits)
        reg = self._reg(name, args, dst, "register")
        if bits not in (16, 32, 64) or type(bits) is not int:
            self._fail(name, args, "bits must be 16, 32 or 64")
        self._emit(opcode, reg.num, 0, 0, bits)  # type: ignore[arg-type]

    def le(self, dst: Register, bits: int) -> None:
        """``dst = le<bits> dst``: convert to little endian (truncates to ``bits``)."""
        self._swap("le", BPF_ALU | BPF_END | BPF_TO_LE, dst, bits)

    def be(self, dst: Register, bits: int) -> None:
        """``dst = be<bits> dst``: convert to big endian (truncates to ``bits``)."""
        self._swap("be", BPF_ALU | BPF_END | BPF_TO_BE, dst, bits)

    def bswap(self, dst: Register, bits: int) -> None:
        """``dst = bswap<bits> dst``: unconditional byte swap (ISA v4)."""
        self._need(4, "bswap", (dst, bits), "bswap")
        self._swap("bswap", BPF_ALU64 | BPF_END, dst, bits)

    # ------------------------------------------------------------------ memory

    def _load(self, name: str, size_bits: int, dst: object, src: object, off: object,
              mode: int = BPF_MEM) -> None:
        args = (dst, src, off)
        reg = self._reg(name, args, dst, "destination")
        if reg.is32 and (size_bits == BPF_DW or mode == BPF_MEMSX):
            self._fail(name, args, "the destination of a 64-bit or sign-extending load must be an R register")
        base = self._base(name, args, src)
        self._emit(BPF_LDX | mode | size_bits, reg.num, base, self._off16(name, args, off), 0)

    def ldxb(self, dst: Register, src: Register, off: int) -> None:
        """``dst = *(u8 *)(src + off)``."""
        self._load("ldxb", BPF_B, dst, src, off)

    def ldxh(self, dst: Register, src: Register, off: int) -> None:
        """``dst = *(u16 *)(src + off)``."""
        self._load("ldxh", BPF_H, dst, src, off)

    def ldxw(self, dst: Register, src: Register, off: int) -> None:
        """``dst = *(u32 *)(src + off)``."""
        self._load("ldxw", BPF_W, dst, src, off)

    def ldxdw(self, dst: Register, src: Register, off: int) -> None:
        """``dst = *(u64 *)(src + off)``."""
        self._load("ldxdw", BPF_DW, dst, src, off)

    def ldxsb(self, dst: Register, src: Register, off: int) -> None:
        """``dst = *(s8 *)(src + off)`` sign-extended to 64 bits (ISA v4)."""
        self._need(4, "ldxsb", (dst, src, off), "sign-extending load")
        self._load("ldxsb", BPF_B, dst, src, off, BPF_MEMSX)

    def ldxsh(self, dst: Register, src: Register, off: int) -> None:
        """``dst = *(s16 *)(src + off)`` sign-extended to 64 bits (ISA v4)."""
        self._need(4, "ldxsh", (dst, src, off), "sign-extending load")
        self._load("ldxsh", BPF_H, dst, src, off, BPF_MEMSX)

    def ldxsw(self, dst: Register, src: Register, off: int) -> None:
        """``dst = *(s32 *)(src + off)`` sign-extended to 64 bits (ISA v4)."""
        self._need(4, "ldxsw", (dst, src, off), "sign-extending load")
        self._load("ldxsw", BPF_W, dst, src, off, BPF_MEMSX)

    def _store_imm(self, name: str, size_bits: int, dst: object, off: object, value: object) -> None:
        args = (dst, off, value)
        base = self._base(name, args, dst)
        offset = self._off16(name, args, off)
        imm = self._int(name, args, value, "value")
        nbytes = SIZE_BYTES[size_bits]
        if nbytes == 8:
            imm = self._imm32(name, args, imm, False)
        else:
            bits = nbytes * 8
            if not -(1 << (bits - 1)) <= imm < (1 << bits):
                self._fail(name, args, f"value {imm} does not fit in {bits} bits")
            if imm >= 1 << 31:
                imm -= 1 << 32
        self._emit(BPF_ST | BPF_MEM | size_bits, base, 0, offset, imm)

    def stb(self, dst: Register, off: int, value: int) -> None:
        """``*(u8 *)(dst + off) = value``."""
        self._store_imm("stb", BPF_B, dst, off, value)

    def sth(self, dst: Register, off: int, value: int) -> None:
        """``*(u16 *)(dst + off) = value``."""
        self._store_imm("sth", BPF_H, dst, off, value)

    def stw(self, dst: Register, off: int, value: int) -> None:
        """``*(u32 *)(dst + off) = value``."""
        self._store_imm("stw", BPF_W, dst, off, value)

    def stdw(self, dst: Register, off: int, value: int) -> None:
        """``*(u64 *)(dst + off) = value`` (value sign-extended from 32 bits)."""
        self._store_imm("stdw", BPF_DW, dst, off, value)

    def _store_reg(self, name: str, size_bits: int, dst: object, off: object, src: object) -> None:
        args = (dst, off, src)
        base = self._base(name, args, dst)
        reg = self._reg(name, args, src, "source")
        if reg.is32 and size_bits == BPF_DW:
            self._fail(name, args, "a 64-bit store needs an R source register")
        self._emit(BPF_STX | BPF_MEM | size_bits, base, reg.num, self._off16(name, args, off), 0)

    def stxb(self, dst: Register, off: int, src: Register) -> None:
        """``*(u8 *)(dst + off) = src``."""
        self._store_reg("stxb", BPF_B, dst, off, src)

    def stxh(self, dst: Register, off: int, src: Register) -> None:
        """``*(u16 *)(dst + off) = src``."""
        self._store_reg("stxh", BPF_H, dst, off, src)

    def stxw(self, dst: Register, off: int, src: Register) -> None:
        """``*(u32 *)(dst + off) = src``."""
        self._store_reg("stxw", BPF_W, dst, off, src)

    def stxdw(self, dst: Register, off: int, src: Register) -> None:
        """``*(u64 *)(dst + off) = src``."""
        self._store_reg("stxdw", BPF_DW, dst, off, src)

    # ------------------------------------------------------------------ atomics

    def _atomic(self, name: str, operation: int, dst: object, off: object, src: object) -> None:
        args = (dst, off, src)
        base = self._base(name, args, dst)
        reg = self._reg(name, args, src, "source")
        if operation != BPF_ADD:
            self._need(3, name, args, f"atomic {name}")
        size_bits = BPF_W if reg.is32 else BPF_DW
        self._emit(BPF_STX | BPF_ATOMIC | size_bits, base, reg.num, self._off16(name, args, off), operation)

    def atomic_add(self, dst: Register, off: int, src: Register, fetch: bool = False) -> None:
        """``lock *(dst + off) += src``; width from ``src`` (W: 32, R: 64). ``fetch`` puts the old value in src."""
        self._atomic("atomic_add", BPF_ADD | (BPF_FETCH if fetch else 0), dst, off, src)

    def atomic_or(self, dst: Register, off: int, src: Register, fetch: bool = False) -> None:
        """``lock *(dst + off) |= src`` (ISA v3)."""
        self._atomic("atomic_or", BPF_OR | (BPF_FETCH if fetch else 0), dst, off, src)

    def atomic_and(self, dst: Register, off: int, src: Register, fetch: bool = False) -> None:
        """``lock *(dst + off) &= src`` (ISA v3)."""
        self._atomic("atomic_and", BPF_AND | (BPF_FETCH if fetch else 0), dst, off, src)

    def atomic_xor(self, dst: Register, off: int, src: Register, fetch: bool = False) -> None:
        """``lock *(dst + off) ^= src`` (ISA v3)."""
        self._atomic("atomic_xor", BPF_XOR | (BPF_FETCH if fetch else 0), dst, off, src)

    def atomic_fetch_add(self, dst: Register, off: int, src: Register) -> None:
        """``src = atomic_fetch_add(dst + off, src)`` (ISA v3)."""
        self._atomic("atomic_fetch_add", BPF_ADD | BPF_FETCH, dst, off, src)

    def atomic_fetch_or(self, dst: Register, off: int, src: Register) -> None:
        """``src = atomic_fetch_or(dst + off, src)`` (ISA v3)."""
        self._atomic("atomic_fetch_or", BPF_OR | BPF_FETCH, dst, off, src)

    def atomic_fetch_and(self, dst: Register, off: int, src: Register) -> None:
        """``src = atomic_fetch_and(dst + off, src)`` (ISA v3)."""
        self._atomic("atomic_fetch_and", BPF_AND | BPF_FETCH, dst, off, src)

    def atomic_fetch_xor(self, dst: Register, off: int, src: Register) -> None:
        """``src = atomic_fetch_xor(dst + off, src)`` (ISA v3)."""
        self._atomic("atomic_fetch_xor", BPF_XOR | BPF_FETCH, dst, off, src)

    def xchg(self, dst: Register, off: int, src: Register) -> None:
        """Swap ``src`` with ``*(dst + off)`` atomically (ISA v3)."""
        self._atomic("xchg", BPF_XCHG, dst, off, src)

    def cmpxchg(self, dst: Register, off: int, src: Register) -> None:
        """If ``*(dst + off) == r0`` store ``src``; r0 gets the old value (ISA v3)."""
        self._atomic("cmpxchg", BPF_CMPXCHG, dst, off, src)

    # ------------------------------------------------------------------ 64-bit immediates

    def _wide(self, name: str, args: tuple[object, ...], dst: object, pseudo: int, imm: int) -> int:
        if type(dst) is not Register or dst.is32:
            self._fail(name, args, f"the destination of a 64-bit load must be an R register, got {dst!r}")
        return self._emit(LDDW, dst.num, pseudo, 0, imm)

    def lddw(self, dst: Register, value: int) -> None:
        """``dst = value ll``: a full 64-bit constant (two slots)."""
        args = (dst, value)
        imm = self._int("lddw", args, value, "value")
        if not INT64_MIN <= imm <= UINT64_MAX:
            self._fail("lddw", args, f"value {imm} does not fit in 64 bits")
        imm = signed64(imm)
        self._wide("lddw", args, dst, 0, imm)

    def ld_pseudo(self, dst: Register, pseudo_source: int, value: int) -> None:
        """A raw ``lddw`` with src ``pseudo_source`` (0-6) and a 64-bit ``value``."""
        args = (dst, pseudo_source, value)
        src = self._int("ld_pseudo", args, pseudo_source, "pseudo source")
        if not 0 <= src <= 6:
            self._fail("ld_pseudo", args, f"pseudo source must be 0-6, got {src}")
        imm = self._int("ld_pseudo", args, value, "value")
        if not INT64_MIN <= imm <= UINT64_MAX:
            self._fail("ld_pseudo", args, f"value {imm} does not fit in 64 bits")
        imm = signed64(imm)
        self._wide("ld_pseudo", args, dst, src, imm)

    def _map_ref(self, name: str, dst: object, map_ref: object, offset: object, pseudo: int,
                 kind: str) -> None:
        args = (dst, map_ref) if kind == "map_fd" else (dst, map_ref, offset)
        off = self._int(name, args, offset, "offset")
        if not 0 <= off <= UINT32_MAX:
            self._fail(name, args, f"value offset {off} must be within 0..{UINT32_MAX}")
        if isinstance(map_ref, str):
            if not map_ref:
                self._fail(name, args, "map name is empty")
            slot = self._slot_count
            index = self._wide(name, args, dst, pseudo, off << 32)
            self._relocations.append(
                Relocation(index, slot, map_ref, kind, off, self._insns[index].source)
            )
            return
        fd = self._int(name, args, map_ref, "map (a name, or an fd)")
        if not 0 <= fd <= INT32_MAX:
            self._fail(name, args, f"map fd {fd} is out of range")
        imm = (off << 32) | fd
        self._wide(name, args, dst, pseudo, signed64(imm))

    def ld_map_fd(self, dst: Register, map_name: str | int) -> None:
        """``dst = &map``: wide load with BPF_PSEUDO_MAP_FD, relocated by map name (or a raw fd)."""
        self._map_ref("ld_map_fd", dst, map_name, 0, BPF_PSEUDO_MAP_FD, "map_fd")

    def ld_map_value(self, dst: Register, map_name: str | int, offset: int = 0) -> None:
        """``dst = &map_value[0] + offset`` (array maps): BPF_PSEUDO_MAP_VALUE."""
        self._map_ref("ld_map_value", dst, map_name, offset, BPF_PSEUDO_MAP_VALUE, "map_value")

    def ld_map_idx(self, dst: Register, index: int) -> None:
        """Map by index into the load attribute's fd_array: BPF_PSEUDO_MAP_IDX."""
        self._id_load("ld_map_idx", dst, index, 0, BPF_PSEUDO_MAP_IDX)

    def ld_map_idx_value(self, dst: Register, index: int, offset: int = 0) -> None:
        """Map value by fd_array index plus offset: BPF_PSEUDO_MAP_IDX_VALUE."""
        self._id_load("ld_map_idx_value", dst, index, offset, BPF_PSEUDO_MAP_IDX_VALUE)

    def ld_btf_id(self, dst: Register, btf_id: int) -> None:
        """Address of a kernel variable by BTF id: BPF_PSEUDO_BTF_ID."""
        self._id_load("ld_btf_id", dst, btf_id, 0, BPF_PSEUDO_BTF_ID)

    def _id_load(self, name: str, dst: object, ident: object, offset: object, pseudo: int) -> None:
        args = (dst, ident) if pseudo != BPF_PSEUDO_MAP_IDX_VALUE else (dst, ident, offset)
        low = self._int(name, args, ident, "id")
        high = self._int(name, args, offset, "offset")
        if not 0 <= low <= UINT32_MAX:
            self._fail(name, args, f"id {low} does not fit in 32 bits")
        if not 0 <= high <= UINT32_MAX:
            self._fail(name, args, f"offset {high} must be within 0..{UINT32_MAX}")
        imm = (high << 32) | low
        self._wide(name, args, dst, pseudo, signed64(imm))

    def ld_func(self, dst: Register, label: str) -> None:
        """``dst = &subprog`` (BPF_PSEUDO_FUNC), e.g. a callback for bpf_loop."""
        args = (dst, label)
        self._check_label_name("ld_func", args, label)
        slot = self._slot_count
        index = self._wide("ld_func", args, dst, BPF_PSEUDO_FUNC, 0)
        self._fixups.append(_Fixup(index, slot, label, "func", _call_text("ld_func", args)))

    # ------------------------------------------------------------------ control flow

    def _check_label_name(self, name: str, args: tuple[object, ...], label: object) -> None:
        if type(label) is not str or not _LABEL_NAME.match(label):
            self._fail(name, args, f"label must be an identifier, got {label!r}")

    def _jump(self, name: str, op: int, dst: object, src: object, target: object) -> None:
        args = (dst, src, target)
        if type(dst) is not Register:
            self._reg(name, args, dst, "the compared register")
        is32 = dst.is32  # type: ignore[union-attr]
        if is32:
            self._need(3, name, args, "32-bit jump (JMP32 class)")
        elif op >= BPF_JLT:  # jlt jle jslt jsle
            self._need(2, name, args, name)
        cls = BPF_JMP32 if is32 else BPF_JMP
        if type(src) is Register:
            opcode, src_num, imm = cls | op | BPF_X, src.num, 0
        else:
            opcode, src_num, imm = cls | op, 0, self._imm32(name, args, src, is32)
        if type(target) is str:
            self._check_label_name(name, args, target)
            slot = self._slot_count
            index = self._emit(opcode, dst.num, src_num, 0, imm)  # type: ignore[union-attr]
            self._fixups.append(_Fixup(index, slot, target, "jump", _call_text(name, args)))
            return
        off = self._target_offset(name, args, target)
        self._emit(opcode, dst.num, src_num, off, imm)  # type: ignore[union-attr]

    def _target_offset(self, name: str, args: tuple[object, ...], target: object) -> int:
        if isinstance(target, bool) or not isinstance(target, int):
            self._fail(name, args, f"jump target must be a label name or an int offset, got {target!r}")
        if INT16_MIN <= target <= INT16_MAX:
            return int(target)
        self._fail(name, args, f"jump offset {target} does not fit in the signed 16-bit off field")

    def jeq(self, dst: Register, src: Operand, target: Target) -> None:
        """``if dst == src goto target``."""
        self._jump("jeq", BPF_JEQ, dst, src, target)

    def jne(self, dst: Register, src: Operand, target: Target) -> None:
        """``if dst != src goto target``."""
        self._jump("jne", BPF_JNE, dst, src, target)

    def jgt(self, dst: Register, src: Operand, target: Target) -> None:
        """``if dst > src goto target`` (unsigned)."""
        self._jump("jgt", BPF_JGT, dst, src, target)

    def jge(self, dst: Register, src: Operand, target: Target) -> None:
        """``if dst >= src goto target`` (unsigned)."""
        self._jump("jge", BPF_JGE, dst, src, target)

    def jlt(self, dst: Register, src: Operand, target: Target) -> None:
        """``if dst < src goto target`` (unsigned; ISA v2)."""
        self._jump("jlt", BPF_JLT, dst, src, target)

    def jle(self, dst: Register, src: Operand, target: Target) -> None:
        """``if dst <= src goto target`` (unsigned; ISA v2)."""
        self._jump("jle", BPF_JLE, dst, src, target)

    def jset(self, dst: Register, src: Operand, target: Target) -> None:
        """``if dst & src goto target``."""
        self._jump("jset", BPF_JSET, dst, src, target)

    def jsgt(self, dst: Register, src: Operand, target: Target) -> None:
        """``if dst s> src goto target`` (signed)."""
        self._jump("jsgt", BPF_JSGT, dst, src, target)

    def jsge(self, dst: Register, src: Operand, target: Target) -> None:
        """``if dst s>= src goto target`` (signed)."""
        self._jump("jsge", BPF_JSGE, dst, src, target)

    def jslt(self, dst: Register, src: Operand, target: Target) -> None:
        """``if dst s< src goto target`` (signed; ISA v2)."""
        self._jump("jslt", BPF_JSLT, dst, src, target)

    def jsle(self, dst: Register, src: Operand, target: Target) -> None:
        """``if dst s<= src goto target`` (signed; ISA v2)."""
        self._jump("jsle", BPF_JSLE, dst, src, target)

    def ja(self, target: Target) -> None:
        """``goto target``; becomes ``gotol`` at v4 when the distance needs more than 16 bits."""
        args = (target,)
        if type(target) is str:
            self._check_label_name("ja", args, target)
            slot = self._slot_count
            index = self._emit(BPF_JMP | BPF_JA, 0, 0, 0, 0)
            self._fixups.append(_Fixup(index, slot, target, "ja", _call_text("ja", args)))
            return
        if isinstance(target, int) and not isinstance(target, bool) and self.level >= 4 and \
                not INT16_MIN <= target <= INT16_MAX:
            self.gotol(target)
            return
        self._emit(BPF_JMP | BPF_JA, 0, 0, self._target_offset("ja", args, target), 0)

    def gotol(self, target: Target) -> None:
        """``gotol target``: unconditional jump with a 32-bit offset (ISA v4)."""
        args = (target,)
        self._need(4, "gotol", args, "gotol")
        if type(target) is str:
            self._check_label_name("gotol", args, target)
            slot = self._slot_count
            index = self._emit(BPF_JMP32 | BPF_JA, 0, 0, 0, 0)
            self._fixups.append(_Fixup(index, slot, target, "call", _call_text("gotol", args)))
            return
        self._emit(BPF_JMP32 | BPF_JA, 0, 0, 0, self._imm32("gotol", args, target, False))

    def call(self, helper: str | int) -> None:
        """Call a helper by name (``"ringbuf_reserve"`` or ``"bpf_ringbuf_reserve"``) or id."""
        args = (helper,)
        if type(helper) is str:
            name = helper[4:] if helper.startswith("bpf_") else helper
            helper_id = HELPER_IDS.get(name)
            if helper_id is None:
                from difflib import get_close_matches  # error path only: difflib costs start-up

                close = get_close_matches(name, HELPER_NAMES, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                self._fail("call", args, f"unknown helper {helper!r}{hint}")
        else:
            helper_id = self._int("call", args, helper, "helper")
            if not 0 <= helper_id < len(HELPER_NAMES):
                self._fail("call", args, f"helper id {helper_id} is not in include/uapi/linux/bpf.h (0..{len(HELPER_NAMES) - 1})")
        self._emit(BPF_JMP | BPF_CALL, 0, 0, 0, helper_id)

    def callx(self, target: Register) -> None:
        """``callx target``: call the function whose address is in ``target`` (an extension:
        needs ``Program(callx=True)``; Linux refuses it, LLVM and some runtimes have it)."""
        args = (target,)
        if not self.callx_allowed:
            self._fail("callx", args, "callx is not an RFC 9669 instruction (the kernel rejects it); "
                       "Program(callx=True) emits it for a runtime that has it")
        reg = self._base("callx", args, target)
        self._emit(BPF_CALLX, reg, 0, 0, 0)

    def call_label(self, label: str) -> None:
        """bpf-to-bpf call to the subprogram at ``label`` (BPF_PSEUDO_CALL)."""
        args = (label,)
        self._check_label_name("call_label", args, label)
        slot = self._slot_count
        index = self._emit(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, 0)
        self._fixups.append(_Fixup(index, slot, label, "call", _call_text("call_label", args)))

    def call_kfunc(self, btf_id: int) -> None:
        """Call a kernel function by BTF id (BPF_PSEUDO_KFUNC_CALL)."""
        args = (btf_id,)
        ident = self._int("call_kfunc", args, btf_id, "BTF id")
        if not 0 <= ident <= INT32_MAX:
            self._fail("call_kfunc", args, f"BTF id {ident} is out of range")
        self._emit(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_KFUNC_CALL, 0, ident)

    def exit(self) -> None:
        """Return r0 to the caller."""
        self._emit(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

    def label(self, name: str, *, source: str | None = None) -> None:
        """Name the position of the next instruction (``source``: where it was defined, for errors)."""
        self._check_label_name("label", (name,), name)
        if name in self._labels:
            self._fail("label", (name,), f"duplicate label {name!r} (first defined at {self._label_sources[name]})")
        self._labels[name] = self._slot_count
        self._label_sources[name] = source or self._source()
        self._resolved = None

    # ------------------------------------------------------------------ legacy packet access

    def _packet(self, name: str, mode: int, size_bits: int, src: object, imm: object) -> None:
        args = (imm,) if mode == BPF_ABS else (src, imm)
        value = self._imm32(name, args, imm, False)
        if mode == BPF_ABS:
            self._emit(BPF_LD | BPF_ABS | size_bits, 0, 0, 0, value)
            return
        reg = self._reg(name, args, src, "index register")
        self._emit(BPF_LD | BPF_IND | size_bits, 0, reg.num, 0, value)

    def ldabsb(self, offset: int) -> None:
        """``r0 = *(u8 *)skb[offset]`` (legacy socket-filter packet load)."""
        self._packet("ldabsb", BPF_ABS, BPF_B, None, offset)

    def ldabsh(self, offset: int) -> None:
        """``r0 = *(u16 *)skb[offset]`` (big-endian packet data, converted)."""
        self._packet("ldabsh", BPF_ABS, BPF_H, None, offset)

    def ldabsw(self, offset: int) -> None:
        """``r0 = *(u32 *)skb[offset]``."""
        self._packet("ldabsw", BPF_ABS, BPF_W, None, offset)

    def ldindb(self, src: Register, offset: int) -> None:
        """``r0 = *(u8 *)skb[src + offset]``."""
        self._packet("ldindb", BPF_IND, BPF_B, src, offset)

    def ldindh(self, src: Register, offset: int) -> None:
        """``r0 = *(u16 *)skb[src + offset]``."""
        self._packet("ldindh", BPF_IND, BPF_H, src, offset)

    def ldindw(self, src: Register, offset: int) -> None:
        """``r0 = *(u32 *)skb[src + offset]``."""
        self._packet("ldindw", BPF_IND, BPF_W, src, offset)

    # ------------------------------------------------------------------ raw

    def raw(self, instruction: Instruction) -> None:
        """Append a ready-made :class:`Instruction` (checked against the ISA level) at the caller's line."""
        if not isinstance(instruction, Instruction):
            self._fail("raw", (instruction,), "expected an Instruction")
        self._check_level(instruction, "raw", (instruction,))
        self._emit(*instruction[:5])

    def append(self, instruction: Instruction, target: str | None = None, kind: str = "jump") -> int:
        """Append ``instruction`` with its own ``source`` (for assemblers built on Program); returns its index.

        With ``target``, the instruction refers to that label, resolved like the DSL's: ``kind``
        says which field takes the distance: ``"jump"`` (off), ``"ja"`` (off, or gotol at v4),
        ``"call"`` (imm: bpf-to-bpf call, gotol) or ``"func"`` (the imm of an ld_func).
        """
        self._check_level(instruction, "append", (instruction,))
        slot = self._slot_count
        self._insns.append(instruction)
        self._slot_count += instruction.slots
        self._resolved = None
        if target is not None:
            self._fixups.append(_Fixup(len(self._insns) - 1, slot, target, kind, instruction.text()))
        return len(self._insns) - 1

    def _check_level(self, instruction: Instruction, name: str, args: tuple[object, ...]) -> None:
        opcode, _, src, off, imm = instruction[:5]
        level = required_level(opcode, src, off, imm)
        if level > self.level:
            self._need(level, name, args, describe_level(opcode, src, off, imm))

    # ------------------------------------------------------------------ results

    @property
    def slot_count(self) -> int:
        """Length of the program in 8-byte slots."""
        return self._slot_count

    @property
    def labels(self) -> dict[str, int]:
        """Label name → slot."""
        return dict(self._labels)

    @property
    def relocations(self) -> list[Relocation]:
        """Map references that :meth:`encode` resolves, in program order."""
        return list(self._relocations)

    @property
    def map_names(self) -> list[str]:
        """Distinct map names referenced, in first-use order."""
        return list(dict.fromkeys(r.map_name for r in self._relocations))

    @property
    def instructions(self) -> list[Instruction]:
        """The instructions with labels resolved (map fds still 0); raises on label errors."""
        return list(self._resolve())

    def _resolve(self) -> list[Instruction]:
        if self._resolved is not None:
            return self._resolved
        insns = list(self._insns)
        labels = self._labels
        for fixup in self._fixups:
            ins = insns[fixup.index]
            where = f"{fixup.text} at {ins[5]}"
            target = labels.get(fixup.label)
            if target is None:
                from difflib import get_close_matches

                close = get_close_matches(fixup.label, list(labels), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise AsmError(f"{where}: undefined label {fixup.label!r}{hint}")
            delta = target - fixup.slot - 1
            kind = fixup.kind
            if kind == "call":
                new = (ins[0], ins[1], ins[2], 0, delta)
            elif kind == "func":
                new = (LDDW, ins[1], ins[2], 0, delta & UINT32_MAX)
            elif INT16_MIN <= delta <= INT16_MAX:
                new = (ins[0], ins[1], ins[2], delta, ins[4])
            elif kind == "ja" and self.level >= 4:
                new = (BPF_JMP32 | BPF_JA, 0, 0, 0, delta)
            else:
                hint = (
                    "; use Program(isa=\"v4\") so goto becomes gotol"
                    if kind == "ja"
                    else "; jump over a goto/gotol to it instead"
                )
                raise AsmError(
                    f"{where}: label {fixup.label!r} is {delta} slots away, beyond the "
                    f"signed 16-bit jump offset{hint}"
                )
            insns[fixup.index] = tuple.__new__(Instruction, (*new, ins[5]))
        self._resolved = insns
        return insns

    def encode(self, map_fds: Mapping[str, Any] | None = None) -> bytes:
        """The program's bytes, with each named map replaced by its fd from ``map_fds``.

        Values may be ints or objects with ``fileno()``. Raises :class:`AsmError` for an
        undefined label, a jump too far, or a map missing from ``map_fds``.
        """
        insns = self._resolve()
        fds: dict[int, int] = {}
        for reloc in self._relocations:
            fds[reloc.index] = self._map_fd(reloc, map_fds)
        parts: list[bytes] = []
        append = parts.append
        for index, ins in enumerate(insns):
            opcode = ins[0]
            if opcode == LDDW:
                imm = ins[4] & UINT64_MAX
                if fds:
                    imm |= fds.get(index, 0)
                append(pack_wide(opcode, ins[2] << 4 | ins[1], 0, imm & UINT32_MAX, 0, 0, 0, imm >> 32))
            else:
                append(pack_slot(opcode, ins[2] << 4 | ins[1], ins[3], ins[4]))
        return b"".join(parts)

    def _map_fd(self, reloc: Relocation, map_fds: Mapping[str, Any] | None) -> int:
        call = "ld_map_fd" if reloc.kind == "map_fd" else "ld_map_value"
        where = f"{call}(R{self._insns[reloc.index][1]}, {reloc.map_name!r}) at {reloc.source}"
        if map_fds is None or reloc.map_name not in map_fds:
            raise AsmError(
                f"{where}: map {reloc.map_name!r} has no fd; pass encode({{{reloc.map_name!r}: fd, ...}})"
            )
        value = map_fds[reloc.map_name]
        fd = value.fileno() if hasattr(value, "fileno") else value
        if isinstance(fd, bool) or not isinstance(fd, int) or not 0 <= fd <= INT32_MAX:
            raise AsmError(f"{where}: {fd!r} is not a valid fd for map {reloc.map_name!r}")
        return int(fd)

    def slot_sources(self) -> list[str]:
        """One ``"file.py:LINE"`` per 8-byte slot (an lddw's line appears twice)."""
        sources: list[str] = []
        for ins in self._resolve():
            sources.append(ins[5])
            if ins[0] == LDDW:
                sources.append(ins[5])
        return sources

    def listing(self, *, helper_comments: bool = True) -> str:
        """Annotated disassembly: slot, LLVM-syntax text, helper name, and the Python line."""
        insns = self._resolve()
        by_slot: dict[int, list[str]] = {}
        for name, slot in self._labels.items():
            by_slot.setdefault(slot, []).append(name)
        first_name = {slot: names[0] for slot, names in by_slot.items()}
        relocs = {r.index: r for r in self._relocations}
        lines: list[str] = []
        slot = 0
        for index, ins in enumerate(insns):
            for name in by_slot.get(slot, ()):
                lines.append(f"{name}:")
            text = format_instruction(ins, slot=slot, label_for_slot=first_name, helper_comments=helper_comments)
            note = ins[5]
            reloc = relocs.get(index)
            if reloc is not None:
                note = f"map {reloc.map_name!r}; {note}"
            lines.append(f"{slot:5}:  {text:<44} # {note}")
            slot += ins.slots
        for name in by_slot.get(slot, ()):
            lines.append(f"{name}:")
        return "\n".join(lines) + ("\n" if lines else "")
