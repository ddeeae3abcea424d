"""Bytes → text in LLVM's BPF assembly syntax (what ``llvm-objdump -d`` prints).

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

from typing import Callable, Mapping

from .errors import DecodeError
from .helper_ids import HELPER_NAMES
from .instruction import UINT64_MAX, Instruction, iter_decode
from .opcodes import (
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
    FORMS,
    JMP_OP_SYMBOLS,
)

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


def format_instruction(
    ins: Instruction,
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
    form = FORMS[opcode]
    kind = form.kind
    if kind == "alu":
        prefix = "w" if form.is32 else "r"
        symbol = ALU_OP_SYMBOLS[form.op]
        if off == 1 and form.op in (BPF_DIV, BPF_MOD):
            symbol = "s" + symbol
        operand = f"{prefix}{src}" if form.uses_reg_source else hex_signed(imm)
        return f"{prefix}{dst} {symbol} {operand}"
    if kind == "mov":
        prefix = "w" if form.is32 else "r"
        if not form.uses_reg_source:
            return f"{prefix}{dst} = {hex_signed(imm)}"
        if off:
            return f"{prefix}{dst} = (s{off}){prefix}{src}"
        return f"{prefix}{dst} = {prefix}{src}"
    if kind == "jcond":
        prefix = "w" if form.is32 else "r"
        operand = f"{prefix}{src}" if form.uses_reg_source else hex_signed(imm)
        target = _target(slot, off, label_for_slot)
        return f"if {prefix}{dst} {JMP_OP_SYMBOLS[form.op]} {operand} goto {target}"
    if kind == "ldx":
        prefix = "r" if form.size == 8 else "w"
        return f"{prefix}{dst} = *(u{form.size * 8} *)({_address(src, off)})"
    if kind == "stx":
        prefix = "r" if form.size == 8 else "w"
        return f"*(u{form.size * 8} *)({_address(dst, off)}) = {prefix}{src}"
    if kind == "st":
        return f"*(u{form.size * 8} *)({_address(dst, off)}) = {hex_signed(imm)}"
    if kind == "lddw":
        if src == 0:
            return f"r{dst} = {hex_signed(imm)} ll"
        return f"ld_pseudo r{dst}, 0x{src:x}, 0x{imm & UINT64_MAX:x}"
    if kind == "call":
        if src == 0:
            text = f"call {hex_signed(imm)}"
            if helper_comments and 0 <= imm < len(HELPER_NAMES):
                text += f" # bpf_{HELPER_NAMES[imm]}"
            return text
        if src == 1:
            return f"call {_target(slot, imm, label_for_slot, pc_prefix=True)}"
        return f"call kfunc {hex_signed(imm)}"
    if kind == "exit":
        return "exit"
    if kind == "ja":
        return f"goto {_target(slot, off, label_for_slot)}"
    if kind == "gotol":
        return f"gotol {_target(slot, imm, label_for_slot)}"
    if kind == "neg":
        prefix = "w" if form.is32 else "r"
        return f"{prefix}{dst} = -{prefix}{dst}"
    if kind == "end":
        if not form.is32:
            return f"r{dst} = bswap{imm} r{dst}"
        return f"r{dst} = {'be' if opcode & 0x08 else 'le'}{imm} r{dst}"
    if kind == "ldxs":
        return f"r{dst} = *(s{form.size * 8} *)({_address(src, off)})"
    if kind == "atomic":
        return _format_atomic(form.size, dst, src, off, imm)
    if kind == "ldabs":
        return f"r0 = *(u{form.size * 8} *)skb[{hex_signed(imm)}]"
    # ldind
    if imm:
        sign = "-" if imm < 0 else "+"
        return f"r0 = *(u{form.size * 8} *)skb[r{src} {sign} 0x{abs(imm):x}]"
    return f"r0 = *(u{form.size * 8} *)skb[r{src}]"


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


def _target(
    slot: int | None,
    delta: int,
    label_for_slot: LabelLookup | Mapping[int, str] | None,
    pc_prefix: bool = False,
) -> str:
    if slot is not None and label_for_slot is not None:
        target_slot = slot + 1 + delta
        if callable(label_for_slot):
            name = label_for_slot(target_slot)
        else:
            name = label_for_slot.get(target_slot)
        if name:
            return name
    return ("pc" if pc_prefix else "") + _relative(delta)


def jump_target_slots(items: list[tuple[int, Instruction]]) -> set[int]:
    """Slots that some jump, bpf-to-bpf call or gotol in ``items`` lands on."""
    targets: set[int] = set()
    for slot, ins in items:
        kind = FORMS[ins[0]].kind
        if kind in ("jcond", "ja"):
            targets.add(slot + 1 + ins[3])
        elif kind == "gotol" or (kind == "call" and ins[2] == 1):
            targets.add(slot + 1 + ins[4])
    return targets


def disassemble(
    code: bytes | bytearray | memoryview,
    *,
    labels: bool | Mapping[int, str] = False,
    helper_comments: bool = False,
    addresses: bool = False,
    hex_bytes: bool = False,
) -> str:
    """Disassemble ``code`` to LLVM-syntax text, one instruction per line.

    ``labels=True`` names every jump/call target inside the program ``L<slot>`` and prints
    ``L<slot>:`` lines before them (a mapping slot → name uses your names instead).
    ``helper_comments`` appends ``# bpf_NAME`` to helper calls; ``addresses`` prefixes each
    line with its slot number, ``hex_bytes`` with its raw bytes (like llvm-objdump). Raises
    :class:`~openat.asm.errors.DecodeError` on malformed input, never another exception.
    """
    items = list(iter_decode(code))
    total_slots = len(code) // 8
    names: dict[int, str] = {}
    if labels is True:
        # Only slots where an instruction starts (or the end) can carry a label; a jump into
        # the middle of an lddw keeps its numeric offset.
        starts = {slot for slot, _ in items}
        starts.add(total_slots)
        names = {t: f"L{t}" for t in sorted(jump_target_slots(items)) if t in starts}
    elif labels:
        names = dict(labels)
    lines: list[str] = []
    raw = bytes(code) if hex_bytes else b""
    for slot, ins in items:
        if slot in names:
            lines.append(f"{names[slot]}:")
        text = format_instruction(
            ins,
            slot=slot,
            label_for_slot=names if names else None,
            helper_comments=helper_comments,
        )
        prefix = ""
        if addresses:
            prefix += f"{slot:6}:\t"
        if hex_bytes:
            prefix += raw[slot * 8 : slot * 8 + ins.size].hex(" ") + "\t"
        lines.append(f"{prefix}{text}" if prefix else f"\t{text}")
    if total_slots in names:
        lines.append(f"{names[total_slots]}:")
    return "\n".join(lines) + ("\n" if lines else "")


__all__ = ["DecodeError", "disassemble", "format_instruction", "hex_signed", "jump_target_slots"]
