"""Instructions → closures: what makes the interpreter fast.

Each instruction is compiled once, when the machine is made, into a small Python function
with its operands bound: it does the instruction's work on the shared register list and
returns the slot to run next. The run loop is then ``pc = ops[pc]()``, with no decoding,
no dispatch on the opcode and no bounds test on ``pc`` (every jump target is checked here,
once; a bad one becomes a function that stops with the error when the jump is taken).

The arithmetic and comparisons are written once, as the RFC 9669 tables are, in
:data:`ALU64`, :data:`ALU32` and :data:`JUMPS`; a factory per entry is generated from them at
import. Registers always hold the unsigned 64-bit pattern (0 .. 2**64-1).

Memory instructions find a region with ``loads[address >> 32]`` and index its buffer with
the low 32 bits (see :mod:`openat.vm.memory`); a missing region, an index past the end or a
read-only region raises KeyError, IndexError or struct.error, which the machine turns into
a :class:`~openat.vm.errors.VmError` that says what the access hit. Misaligned addresses take
a slow path that checks the region's alignment rule.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

from ..asm.instruction import Instruction
from ..asm.opcodes import (
    ALL_FORMS,
    ATOMIC_OPS,
    BPF_ADD,
    BPF_AND,
    BPF_ARSH,
    BPF_CMPXCHG,
    BPF_DIV,
    BPF_FETCH,
    BPF_JEQ,
    BPF_JGE,
    BPF_JGT,
    BPF_JLE,
    BPF_JLT,
    BPF_JNE,
    BPF_JSET,
    BPF_JSGE,
    BPF_JSGT,
    BPF_JSLE,
    BPF_JSLT,
    BPF_LSH,
    BPF_MOD,
    BPF_MOV,
    BPF_MUL,
    BPF_OR,
    BPF_RSH,
    BPF_SUB,
    BPF_TO_BE,
    BPF_XCHG,
    BPF_XOR,
)
from .errors import VmError

if TYPE_CHECKING:
    from .machine import Machine

__all__ = ["ALU32", "ALU64", "JUMPS", "Exit", "compile_program"]

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
S64 = 1 << 63
S32 = 1 << 31

Op = Callable[[], int]


class Exit(Exception):
    """Raised by ``exit`` of the outermost frame (or of a callback): the run is over."""


# ------------------------------------------------------------ the tables

#: 64-bit ALU: the new value of dst from X (dst) and Y (src, or the sign-extended imm).
ALU64: Dict[Tuple[int, int], str] = {
    (BPF_ADD, 0): "(X + Y) & M64",
    (BPF_SUB, 0): "(X - Y) & M64",
    (BPF_MUL, 0): "(X * Y) & M64",
    (BPF_DIV, 0): "X // Y if Y else 0",
    (BPF_DIV, 1): "sdiv(X, Y, 64)",
    (BPF_OR, 0): "X | Y",
    (BPF_AND, 0): "X & Y",
    (BPF_LSH, 0): "(X << (Y & 63)) & M64",
    (BPF_RSH, 0): "X >> (Y & 63)",
    (BPF_MOD, 0): "X % Y if Y else X",
    (BPF_MOD, 1): "smod(X, Y, 64)",
    (BPF_XOR, 0): "X ^ Y",
    (BPF_MOV, 0): "Y",
    (BPF_ARSH, 0): "(((X ^ S64) - S64) >> (Y & 63)) & M64",
}

#: 32-bit ALU: the same on the low halves; the result is zero-extended.
ALU32: Dict[Tuple[int, int], str] = {
    (BPF_ADD, 0): "(X + Y) & M32",
    (BPF_SUB, 0): "(X - Y) & M32",
    (BPF_MUL, 0): "((X & M32) * (Y & M32)) & M32",
    (BPF_DIV, 0): "(X & M32) // (Y & M32) if Y & M32 else 0",
    (BPF_DIV, 1): "sdiv(X, Y, 32)",
    (BPF_OR, 0): "(X | Y) & M32",
    (BPF_AND, 0): "X & Y & M32",
    (BPF_LSH, 0): "(X << (Y & 31)) & M32",
    (BPF_RSH, 0): "(X & M32) >> (Y & 31)",
    (BPF_MOD, 0): "(X & M32) % (Y & M32) if Y & M32 else X & M32",
    (BPF_MOD, 1): "smod(X, Y, 32)",
    (BPF_XOR, 0): "(X ^ Y) & M32",
    (BPF_MOV, 0): "Y & M32",
    (BPF_ARSH, 0): "((((X & M32) ^ S32) - S32) >> (Y & 31)) & M32",
}

#: Conditional jumps: (comparison, signed). Operands are compared as unsigned numbers after
#: the width's mask, and signed ones after flipping the sign bit (which orders them).
JUMPS: Dict[int, Tuple[str, bool]] = {
    BPF_JEQ: ("==", False), BPF_JNE: ("!=", False), BPF_JGT: (">", False), BPF_JGE: (">=", False),
    BPF_JLT: ("<", False), BPF_JLE: ("<=", False), BPF_JSET: ("&", False), BPF_JSGT: (">", True),
    BPF_JSGE: (">=", True), BPF_JSLT: ("<", True), BPF_JSLE: ("<=", True),
}


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def sdiv(x: int, y: int, bits: int) -> int:
    """Signed division truncating toward zero; by zero gives 0, INT_MIN / -1 wraps to INT_MIN."""
    a, b = _signed(x, bits), _signed(y, bits)
    if b == 0:
        return 0
    quotient = abs(a) // abs(b)
    return (-quotient if (a < 0) != (b < 0) else quotient) & ((1 << bits) - 1)


def smod(x: int, y: int, bits: int) -> int:
    """Signed remainder with the dividend's sign; by zero leaves dst (its low half for 32 bits)."""
    mask = (1 << bits) - 1
    a, b = _signed(x, bits), _signed(y, bits)
    if b == 0:
        return x & mask
    remainder = abs(a) % abs(b)
    return (-remainder if a < 0 else remainder) & mask


# ------------------------------------------------------------ generated factories

_NAMESPACE = {"M64": M64, "M32": M32, "S64": S64, "S32": S32, "sdiv": sdiv, "smod": smod}


def _generate(name: str, parameters: str, body: str) -> Callable[..., Op]:
    """A factory ``make(parameters) -> op`` whose op runs ``body`` (lines joined by ``;``-free newlines)."""
    lines = "\n".join(f"        {line}" for line in body.splitlines())
    source = f"def make({parameters}):\n    def {name}():\n{lines}\n    return {name}\n"
    namespace = dict(_NAMESPACE)
    exec(compile(source, f"<openat.vm {name}>", "exec"), namespace)  # noqa: S102 - our own templates
    return namespace["make"]  # type: ignore[no-any-return]


def _alu_factories() -> Dict[Tuple[int, int, bool, bool], Callable[..., Op]]:
    """(op, off, is32, register source) -> factory(r, d, s, k, nxt)."""
    factories = {}
    for is32, table in ((False, ALU64), (True, ALU32)):
        for (op, off), expression in table.items():
            for by_register in (False, True):
                y = "r[s]" if by_register else "k"
                body = f"r[d] = {expression.replace('X', 'r[d]').replace('Y', y)}\nreturn nxt"
                factories[op, off, is32, by_register] = _generate("alu", "r, d, s, k, nxt", body)
    return factories


def _jump_factories() -> Dict[Tuple[int, bool, bool], Callable[..., Op]]:
    """(op, is32, register source) -> factory(r, d, s, k, t, nxt)."""
    factories = {}
    for op, (symbol, signed) in JUMPS.items():
        for is32 in (False, True):
            for by_register in (False, True):
                def operand(text: str) -> str:
                    text = f"({text} & M32)" if is32 else text
                    return f"({text} ^ {'S32' if is32 else 'S64'})" if signed else text

                right = operand("r[s]") if by_register else "k"
                body = f"return t if {operand('r[d]')} {symbol} {right} else nxt"
                factories[op, is32, by_register] = _generate("jump", "r, d, s, k, t, nxt", body)
    return factories


_ALU = _alu_factories()
_JUMP = _jump_factories()
_STRUCTS = {2: struct.Struct("<H"), 4: struct.Struct("<I"), 8: struct.Struct("<Q")}
_SIGNED_STRUCTS = {2: struct.Struct("<h"), 4: struct.Struct("<i")}
_SIZE_MASK = {1: 0xFF, 2: 0xFFFF, 4: M32, 8: M64}

_LOAD_BYTE = _generate("load", "r, d, s, off, loads, nxt", """\
a = r[s] + off
r[d] = loads[a >> 32][a & 0xFFFFFFFF]
return nxt""")
_LOAD = _generate("load", "r, d, s, off, loads, unpack, align, slow, nxt", """\
a = r[s] + off
if a & align:
    r[d] = slow(a)
    return nxt
r[d] = unpack(loads[a >> 32], a & 0xFFFFFFFF)[0]
return nxt""")
_LOAD_SIGNED_BYTE = _generate("load", "r, d, s, off, loads, nxt", """\
a = r[s] + off
r[d] = ((loads[a >> 32][a & 0xFFFFFFFF] ^ 0x80) - 0x80) & M64
return nxt""")
_LOAD_SIGNED = _generate("load", "r, d, s, off, loads, unpack, align, slow, nxt", """\
a = r[s] + off
if a & align:
    r[d] = slow(a) & M64
    return nxt
r[d] = unpack(loads[a >> 32], a & 0xFFFFFFFF)[0] & M64
return nxt""")
_STORE_BYTE = _generate("store", "r, d, s, off, stores, nxt", """\
a = r[d] + off
stores[a >> 32][a & 0xFFFFFFFF] = r[s] & 0xFF
return nxt""")
_STORE = _generate("store", "r, d, s, off, stores, pack, mask, align, slow, nxt", """\
a = r[d] + off
if a & align:
    slow(a, r[s] & mask)
    return nxt
pack(stores[a >> 32], a & 0xFFFFFFFF, r[s] & mask)
return nxt""")
_STORE_IMM_BYTE = _generate("store", "r, d, off, stores, value, nxt", """\
a = r[d] + off
stores[a >> 32][a & 0xFFFFFFFF] = value
return nxt""")
_STORE_IMM = _generate("store", "r, d, off, stores, pack, value, align, slow, nxt", """\
a = r[d] + off
if a & align:
    slow(a, value)
    return nxt
pack(stores[a >> 32], a & 0xFFFFFFFF, value)
return nxt""")


# ------------------------------------------------------------ the compiler


class _Compiler:
    """Builds the op list of one machine: one op per slot, then the ops that stop with errors."""

    def __init__(self, machine: "Machine", items: Sequence[Tuple[int, Instruction]], slot_count: int) -> None:
        self.m = machine
        self.r = machine.registers
        self.items = items
        self.slot_count = slot_count
        self.starts = {slot for slot, _ in items}
        self.ops: List[Op] = []
        self.error_ops: List[Op] = []

    def build(self) -> List[Op]:
        ops: List[Optional[Op]] = [None] * (self.slot_count + 1)
        for slot, ins in self.items:
            self.slot = slot
            ops[slot] = self.compile(slot, ins)
            if ins.slots == 2:
                ops[slot + 1] = self.fail_op(slot + 1, "this is the second half of an lddw, not an instruction")
        last = self.items[-1][0] if self.items else 0
        ops[self.slot_count] = self.fail_op(
            last, "execution ran past the last instruction without exit" if self.items else "the program is empty")
        result = [op for op in ops if op is not None]
        assert len(result) == self.slot_count + 1
        return result + self.error_ops

    def fail_op(self, slot: int, reason: str) -> Op:
        m = self.m

        def fail() -> int:
            raise m.error_at(slot, reason)

        return fail

    def target(self, slot: int, delta: int) -> int:
        """The op index a jump by ``delta`` lands on; a bad target gets an op that raises when reached."""
        target = slot + 1 + delta
        if target in self.starts:
            return target
        if 0 <= target < self.slot_count:
            reason = f"jump to slot {target}, the second half of an lddw"
        else:
            reason = f"jump to slot {target}, outside the program (slots 0..{self.slot_count - 1})"
        self.error_ops.append(self.fail_op(slot, reason))
        return self.slot_count + len(self.error_ops)

    def compile(self, slot: int, ins: Instruction) -> Op:
        opcode, dst, src, off, imm = ins[:5]
        form = ALL_FORMS[opcode]
        return getattr(self, "op_" + form.kind)(form, opcode, dst, src, off, imm, slot + 1)

    # -- arithmetic

    def op_alu(self, form, opcode, dst, src, off, imm, nxt):  # type: ignore[no-untyped-def]
        k = imm & (M32 if form.is32 else M64)
        return _ALU[form.op, off, form.is32, form.uses_reg_source](self.r, dst, src, k, nxt)

    def op_mov(self, form, opcode, dst, src, off, imm, nxt):  # type: ignore[no-untyped-def]
        if not off:
            return self.op_alu(form, opcode, dst, src, 0, imm, nxt)
        r, mask, bits = self.r, M32 if form.is32 else M64, off
        low, sign = (1 << bits) - 1, 1 << (bits - 1)

        def movsx() -> int:
            r[dst] = (((r[src] & low) ^ sign) - sign) & mask
            return nxt

        return movsx

    def op_neg(self, form, opcode, dst, src, off, imm, nxt):  # type: ignore[no-untyped-def]
        r, mask = self.r, M32 if form.is32 else M64

        def neg() -> int:
            r[dst] = -r[dst] & mask
            return nxt

        return neg

    def op_end(self, form, opcode, dst, src, off, imm, nxt):  # type: ignore[no-untyped-def]
        r, size = self.r, imm // 8
        if form.is32 and not opcode & BPF_TO_BE:  # le on a little-endian machine: truncation
            mask = _SIZE_MASK[size]

            def to_le() -> int:
                r[dst] &= mask
                return nxt

            return to_le

        mask = _SIZE_MASK[size]

        def swap() -> int:  # be, and the v4 unconditional bswap
            r[dst] = int.from_bytes((r[dst] & mask).to_bytes(size, "little"), "big")
            return nxt

        return swap

    # -- jumps and calls

    def op_jcond(self, form, opcode, dst, src, off, imm, nxt):  # type: ignore[no-untyped-def]
        _, signed = JUMPS[form.op]
        k = imm & (M32 if form.is32 else M64)
        if signed:
            k ^= S32 if form.is32 else S64
        target = self.target(nxt - 1, off)
        return _JUMP[form.op, form.is32, form.uses_reg_source](self.r, dst, src, k, target, nxt)

    def op_ja(self, form, opcode, dst, src, off, imm, nxt):  # type: ignore[no-untyped-def]
        return self._goto(self.target(nxt - 1, off))

    def op_gotol(self, form, opcode, dst, src, off, imm, nxt):  # type: ignore[no-untyped-def]
        return self._goto(self.target(nxt - 1, imm))

    @staticmethod
    def _goto(target: int) -> Op:
        def goto() -> int:
            return target

        return goto

    def op_exit(self, form, opcode, dst, src, off, imm, nxt):  # type: ignore[no-untyped-def]
        r, frames, m = self.r, self.m.frames, self.m

        def exit_() -> int:
            if frames:
                back, r[6], r[7], r[8], r[9], r[10] = frames.pop()
                if back is not None:
                    return back
                raise Exit  # the end of a callback: back to the helper that called it
            m.check_exit()
            raise Exit

        return exit_

    def op_call(self, form, opcode, dst, src, off, imm, nxt):  # type: ignore[no-untyped-def]
        m, slot = self.m, nxt - 1
        if src == 1:
            return self.m.bpf_call_op(self.target(slot, imm), nxt)
        if src == 2:
            return self.fail_op(slot, f"kfunc calls (BTF id {imm}) are not modelled by openat.vm")
        return m.helper_call_op(imm, nxt)

    def op_callx(self, form, opcode, dst, src, off, imm, nxt):  # type: ignore[no-untyped-def]
        return self.m.callx_op(dst, nxt)

    # -- memory

    def op_ldx(self, form, opcode, dst, src, off, imm, nxt):  # type: ignore[no-untyped-def]
        size, loads = form.size, self.m.memory.loads
        if size == 1:
            return _LOAD_BYTE(self.r, dst, src, off, loads, nxt)
        unpack = _STRUCTS[size].unpack_from
        return _LOAD(self.r, dst, src, off, loads, unpack, size - 1, self.m.misaligned_load(unpack, size), nxt)

    def op_ldxs(self, form, opcode, dst, src, off, imm, nxt):  # type: ignore[no-untyped-def]
        size, loads = form.size, self.m.memory.loads
        if size == 1:
            return _LOAD_SIGNED_BYTE(self.r, dst, src, off, loads, nxt)
        unpack = _SIGNED_STRUCTS[size].unpack_from
        return _LOAD_SIGNED(self.r, dst, src, off, loads, unpack, size - 1, self.m.misaligned_load(unpack, size), nxt)

    def op_stx(self, form, opcode, dst, src, off, imm, nxt):  # type: ignore[no-untyped-def]
        size, stores = form.size, self.m.memory.stores
        if size == 1:
            return _STORE_BYTE(self.r, dst, src, off, stores, nxt)
        pack = _STRUCTS[size].pack_into
        return _STORE(self.r, dst, src, off, stores, pack, _SIZE_MASK[size], size - 1,
                      self.m.misaligned_store(pack, size), nxt)

    def op_st(self, form, opcode, dst, src, off, imm, nxt):  # type: ignore[no-untyped-def]
        size, stores = form.size, self.m.memory.stores
        value = imm & _SIZE_MASK[size]
        if size == 1:
            return _STORE_IMM_BYTE(self.r, dst, off, stores, value, nxt)
        pack = _STRUCTS[size].pack_into
        return _STORE_IMM(self.r, dst, off, stores, pack, value, size - 1, self.m.misaligned_store(pack, size), nxt)

    def op_atomic(self, form, opcode, dst, src, off, imm, nxt):  # type: ignore[no-untyped-def]
        return _atomic(self.m, self.r, form.size, dst, src, off, imm, nxt)

    def op_lddw(self, form, opcode, dst, src, off, imm, nxt):  # type: ignore[no-untyped-def]
        nxt += 1  # the second slot
        r, value = self.r, self.m.wide_value(src, imm, self.slot)
        if callable(value):
            def load_computed() -> int:
                r[dst] = value()
                return nxt

            return load_computed

        def load_constant() -> int:
            r[dst] = value
            return nxt

        return load_constant

    def op_ldabs(self, form, opcode, dst, src, off, imm, nxt):  # type: ignore[no-untyped-def]
        return self.m.packet_load_op(form.size, None, imm, nxt)

    def op_ldind(self, form, opcode, dst, src, off, imm, nxt):  # type: ignore[no-untyped-def]
        return self.m.packet_load_op(form.size, src, imm, nxt)


_ATOMIC_COMBINE: Dict[int, Callable[[int, int], int]] = {
    BPF_ADD: lambda old, value: old + value,
    BPF_OR: lambda old, value: old | value,
    BPF_AND: lambda old, value: old & value,
    BPF_XOR: lambda old, value: old ^ value,
}


def _atomic(m: "Machine", r: List[int], size: int, dst: int, src: int, off: int, operation: int, nxt: int) -> Op:
    """One atomic read-modify-write; it needs natural alignment in every region, as in the kernel."""
    layout, mask, stores = _STRUCTS[size], _SIZE_MASK[size], m.memory.stores
    unpack, pack = layout.unpack_from, layout.pack_into
    name = ATOMIC_OPS[operation]
    combine = _ATOMIC_COMBINE.get(operation & ~BPF_FETCH)
    fetch = bool(operation & BPF_FETCH)

    def atomic() -> int:
        a = r[dst] + off
        if a & (size - 1):
            raise VmError(f"misaligned {size}-byte atomic {name} at {m.memory.describe(a)}: atomics need aligned addresses")
        buffer, i = stores[a >> 32], a & M32
        old = unpack(buffer, i)[0]
        if operation == BPF_CMPXCHG:
            if old == r[0] & mask:
                pack(buffer, i, r[src] & mask)
            r[0] = old
        elif operation == BPF_XCHG:
            pack(buffer, i, r[src] & mask)
            r[src] = old
        else:
            pack(buffer, i, combine(old, r[src]) & mask)  # type: ignore[misc]
            if fetch:
                r[src] = old
        return nxt

    return atomic


def compile_program(machine: "Machine", items: Sequence[Tuple[int, Instruction]], slot_count: int) -> List[Op]:
    """The op list for ``items`` (``(slot, instruction)`` pairs): index = slot, then a sentinel
    for running off the end, then the ops of bad jump targets."""
    return _Compiler(machine, items, slot_count).build()
