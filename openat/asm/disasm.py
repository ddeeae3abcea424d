"""Bytes → text: whole programs in LLVM's BPF assembly syntax, optionally with labels.

Each instruction is spelled by :func:`openat.asm.formatter.format_instruction`.
"""

from __future__ import annotations

from typing import Mapping

from .formatter import format_instruction
from .instruction import Buffer, Instruction, code_bytes, iter_decode
from .opcodes import FORMS

__all__ = ["disassemble", "jump_target_slots"]

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
    code: Buffer,
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
    code = code_bytes(code)  # any bytes-like object, flat: len() and slices count bytes
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
