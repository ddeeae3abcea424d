"""One instruction as text in LLVM's BPF assembly syntax (what ``llvm-objdump -d`` prints).

Numbers are printed the way llvm-objdump prints them (signed hex: ``0x10``, ``-0x8``), so
each line is accepted by ``llvm-mc -triple bpfel -mcpu=v4`` and by :func:`openat.asm.assemble`.

Three encodings have no faithful LLVM spelling, so the text extends it (our assembler reads
these; llvm-mc does not):

* bpf-to-bpf call (``call`` with src 1): ``call pc+0x3`` (the kernel verifier's spelling),
  or ``call LABEL`` when labels are on (which llvm-mc also accepts);
* kfunc call (``call`` with src 2): ``call kfunc 0x1234``;
* ``ld_pseudo`` whose 64-bit value has upper bits set (e.g. a map-value offset), and an
  indirect packet load with a non-zero immediate ``r0 = *(u8 *)skb[r1 + 0x4]``: LLVM 19's
  syntax exists but it drops the extra bits, so only our assembler reads them back exactly.
"""

from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional, Sequence, Union

from ..fieldtuple import FieldTuple
from .helper_ids import HELPER_NAMES
from .opcodes import (
    ALL_FORMS,
    ALU_OP_SYMBOLS,
    BPF_ADD,
    BPF_AND,
    BPF_CMPXCHG,
    BPF_DIV,
    BPF_FETCH,
    BPF_MOD,
    BPF_OR,
    BPF_XCHG,
    BPF_XOR,
    JMP_OP_SYMBOLS,
    Form,
)

# An instruction's fields (opcode, dst, src, off, imm, ...): an Instruction or any tuple
# laid out like one. Typed structurally so that this module needs nothing from
# openat.asm.instruction, which uses it for Instruction.__str__.
Fields = Sequence[int]

__all__ = ["Fields", "LabelLookup", "format_instruction", "hex_signed"]

_UINT64_MAX = (1 << 64) - 1

_ATOMIC_SYMBOLS = {BPF_ADD: "+=", BPF_OR: "|=", BPF_AND: "&=", BPF_XOR: "^="}
_ATOMIC_FETCH_NAMES = {BPF_ADD: "add", BPF_OR: "or", BPF_AND: "and", BPF_XOR: "xor"}

LabelLookup = Callable[[int], "str | None"]


def hex_signed(value: int) -> str:
    """llvm-objdump's number format: ``0x1f``, ``-0x8``."""
    return f"-0x{-value:x}" if value < 0 else f"0x{value:x}"


def _address(reg: int, off: int) -> str:
    return f"r{reg} - 0x{-off:x}" if off < 0 else f"r{reg} + 0x{off:x}"


def _relative(delta: int) -> str:
    return f"-0x{-delta:x}" if delta < 0 else f"+0x{delta:x}"


class _Context(FieldTuple):
    """What spelling one instruction may need besides its fields."""

    slot: Optional[int]
    label_for_slot: Union[LabelLookup, Mapping[int, str], None]
    helper_comments: bool


def format_instruction(
    ins: Fields,
    *,
    slot: int | None = None,
    label_for_slot: LabelLookup | Mapping[int, str] | None = None,
    helper_comments: bool = False,
) -> str:
    """One instruction in LLVM syntax.

    With ``slot`` (its position in 8-byte slots) and ``label_for_slot`` (a mapping or a
    callable from a target slot to a label name, or ``None`` for no label), jump and
    bpf-to-bpf call targets print as label names. ``helper_comments`` appends
    ``# bpf_NAME`` to helper calls.
    """
    opcode, dst, src, off, imm = ins[:5]
    form = ALL_FORMS[opcode]
    return _BY_KIND[form.kind](form, opcode, dst, src, off, imm, _Context(slot, label_for_slot, helper_comments))


def _width(form: Form) -> str:
    """The register prefix of an ALU or jump form: ``w`` for 32 bits, else ``r``."""
    return "w" if form.is32 else "r"


def _alu(form: Form, opcode: int, dst: int, src: int, off: int, imm: int, ctx: _Context) -> str:
    prefix = _width(form)
    symbol = ALU_OP_SYMBOLS[form.op]
    if off == 1 and form.op in (BPF_DIV, BPF_MOD):
        symbol = "s" + symbol
    operand = f"{prefix}{src}" if form.uses_reg_source else hex_signed(imm)
    return f"{prefix}{dst} {symbol} {operand}"


def _mov(form: Form, opcode: int, dst: int, src: int, off: int, imm: int, ctx: _Context) -> str:
    prefix = _width(form)
    if not form.uses_reg_source:
        return f"{prefix}{dst} = {hex_signed(imm)}"
    if off:
        return f"{prefix}{dst} = (s{off}){prefix}{src}"
    return f"{prefix}{dst} = {prefix}{src}"


def _jcond(form: Form, opcode: int, dst: int, src: int, off: int, imm: int, ctx: _Context) -> str:
    prefix = _width(form)
    operand = f"{prefix}{src}" if form.uses_reg_source else hex_signed(imm)
    return f"if {prefix}{dst} {JMP_OP_SYMBOLS[form.op]} {operand} goto {_target(ctx, off)}"


def _ldx(form: Form, opcode: int, dst: int, src: int, off: int, imm: int, ctx: _Context) -> str:
    prefix = "r" if form.size == 8 else "w"
    return f"{prefix}{dst} = *(u{form.size * 8} *)({_address(src, off)})"


def _ldxs(form: Form, opcode: int, dst: int, src: int, off: int, imm: int, ctx: _Context) -> str:
    return f"r{dst} = *(s{form.size * 8} *)({_address(src, off)})"


def _stx(form: Form, opcode: int, dst: int, src: int, off: int, imm: int, ctx: _Context) -> str:
    prefix = "r" if form.size == 8 else "w"
    return f"*(u{form.size * 8} *)({_address(dst, off)}) = {prefix}{src}"


def _st(form: Form, opcode: int, dst: int, src: int, off: int, imm: int, ctx: _Context) -> str:
    return f"*(u{form.size * 8} *)({_address(dst, off)}) = {hex_signed(imm)}"


def _lddw(form: Form, opcode: int, dst: int, src: int, off: int, imm: int, ctx: _Context) -> str:
    if src == 0:
        return f"r{dst} = {hex_signed(imm)} ll"
    return f"ld_pseudo r{dst}, 0x{src:x}, 0x{imm & _UINT64_MAX:x}"


def _call(form: Form, opcode: int, dst: int, src: int, off: int, imm: int, ctx: _Context) -> str:
    if src == 0:
        text = f"call {hex_signed(imm)}"
        if ctx.helper_comments and 0 <= imm < len(HELPER_NAMES):
            text += f" # bpf_{HELPER_NAMES[imm]}"
        return text
    if src == 1:
        return f"call {_target(ctx, imm, pc_prefix=True)}"
    return f"call kfunc {hex_signed(imm)}"


def _callx(form: Form, opcode: int, dst: int, src: int, off: int, imm: int, ctx: _Context) -> str:
    return f"callx r{dst}"


def _exit(form: Form, opcode: int, dst: int, src: int, off: int, imm: int, ctx: _Context) -> str:
    return "exit"


def _ja(form: Form, opcode: int, dst: int, src: int, off: int, imm: int, ctx: _Context) -> str:
    return f"goto {_target(ctx, off)}"


def _gotol(form: Form, opcode: int, dst: int, src: int, off: int, imm: int, ctx: _Context) -> str:
    return f"gotol {_target(ctx, imm)}"


def _neg(form: Form, opcode: int, dst: int, src: int, off: int, imm: int, ctx: _Context) -> str:
    prefix = _width(form)
    return f"{prefix}{dst} = -{prefix}{dst}"


def _end(form: Form, opcode: int, dst: int, src: int, off: int, imm: int, ctx: _Context) -> str:
    if not form.is32:
        return f"r{dst} = bswap{imm} r{dst}"
    return f"r{dst} = {'be' if opcode & 0x08 else 'le'}{imm} r{dst}"


def _atomic(form: Form, opcode: int, dst: int, src: int, off: int, imm: int, ctx: _Context) -> str:
    return _format_atomic(form.size, dst, src, off, imm)


def _ldabs(form: Form, opcode: int, dst: int, src: int, off: int, imm: int, ctx: _Context) -> str:
    return f"r0 = *(u{form.size * 8} *)skb[{hex_signed(imm)}]"


def _ldind(form: Form, opcode: int, dst: int, src: int, off: int, imm: int, ctx: _Context) -> str:
    if imm:
        sign = "-" if imm < 0 else "+"
        return f"r0 = *(u{form.size * 8} *)skb[r{src} {sign} 0x{abs(imm):x}]"
    return f"r0 = *(u{form.size * 8} *)skb[r{src}]"


_BY_KIND: Dict[str, Callable[..., str]] = {
    "alu": _alu, "mov": _mov, "jcond": _jcond, "ldx": _ldx, "ldxs": _ldxs, "stx": _stx, "st": _st,
    "lddw": _lddw, "call": _call, "exit": _exit, "ja": _ja, "gotol": _gotol, "neg": _neg,
    "end": _end, "atomic": _atomic, "ldabs": _ldabs, "ldind": _ldind, "callx": _callx,
}


def _format_atomic(size: int, dst: int, src: int, off: int, imm: int) -> str:
    prefix = "w" if size == 4 else "r"
    bits = size * 8
    address = _address(dst, off)
    if imm in _ATOMIC_SYMBOLS:
        return f"lock *(u{bits} *)({address}) {_ATOMIC_SYMBOLS[imm]} {prefix}{src}"
    if imm == BPF_XCHG:
        name = "xchg32_32" if size == 4 else "xchg_64"
        return f"{prefix}{src} = {name}({address}, {prefix}{src})"
    if imm == BPF_CMPXCHG:
        name = "cmpxchg32_32" if size == 4 else "cmpxchg_64"
        return f"{prefix}0 = {name}({address}, {prefix}0, {prefix}{src})"
    name = _ATOMIC_FETCH_NAMES[imm & ~BPF_FETCH]
    return f"{prefix}{src} = atomic_fetch_{name}((u{bits} *)({address}), {prefix}{src})"


def _target(ctx: _Context, delta: int, pc_prefix: bool = False) -> str:
    """A jump or call target: its label when there is one, else the relative offset."""
    if ctx.slot is not None and ctx.label_for_slot is not None:
        target_slot = ctx.slot + 1 + delta
        lookup = ctx.label_for_slot
        name = lookup(target_slot) if callable(lookup) else lookup.get(target_slot)
        if name:
            return name
    return ("pc" if pc_prefix else "") + _relative(delta)
