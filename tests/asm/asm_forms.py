"""Every instruction form of the ISA, with boundary and random operands (shared by tests).

A *form* is an opcode plus the fields that select a variant of it (atomic op, swap width,
movsx width, sdiv flag, call kind, pseudo source); the remaining fields are operands whose
domains are listed per form, so tests can fill them with boundary or random values.
"""

from __future__ import annotations

import random
from typing import NamedTuple

from openat.asm import Instruction
from openat.asm.opcodes import ATOMIC_OPS, BPF_DIV, BPF_MOD, FORMS

REG = (0, 10)
OFF16 = (-(1 << 15), (1 << 15) - 1)
IMM32 = (-(1 << 31), (1 << 31) - 1)
IMM64 = (-(1 << 63), (1 << 63) - 1)


class Form(NamedTuple):
    opcode: int
    fixed: dict[str, int]  # fields that select the variant
    free: dict[str, tuple[int, int]]  # operand field → inclusive range

    @property
    def name(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.fixed.items()))
        return f"0x{self.opcode:02x}" + (f"[{extra}]" if extra else "")


def _forms() -> list[Form]:
    forms: list[Form] = []
    for opcode, f in sorted(FORMS.items()):
        kind = f.kind
        if kind == "alu":
            offs = (0, 1) if f.op in (BPF_DIV, BPF_MOD) else (0,)
            for off in offs:
                if f.uses_reg_source:
                    forms.append(Form(opcode, {"off": off}, {"dst": REG, "src": REG}))
                else:
                    forms.append(Form(opcode, {"off": off}, {"dst": REG, "imm": IMM32}))
        elif kind == "mov":
            if f.uses_reg_source:
                for off in (0, 8, 16) + (() if f.is32 else (32,)):
                    forms.append(Form(opcode, {"off": off}, {"dst": REG, "src": REG}))
            else:
                forms.append(Form(opcode, {}, {"dst": REG, "imm": IMM32}))
        elif kind == "neg":
            forms.append(Form(opcode, {}, {"dst": REG}))
        elif kind == "end":
            for width in (16, 32, 64):
                forms.append(Form(opcode, {"imm": width}, {"dst": REG}))
        elif kind == "jcond":
            if f.uses_reg_source:
                forms.append(Form(opcode, {}, {"dst": REG, "src": REG, "off": OFF16}))
            else:
                forms.append(Form(opcode, {}, {"dst": REG, "imm": IMM32, "off": OFF16}))
        elif kind == "ja":
            forms.append(Form(opcode, {}, {"off": OFF16}))
        elif kind == "gotol":
            forms.append(Form(opcode, {}, {"imm": IMM32}))
        elif kind == "call":
            for src in (0, 1, 2):
                forms.append(Form(opcode, {"src": src}, {"imm": IMM32}))
        elif kind == "exit":
            forms.append(Form(opcode, {}, {}))
        elif kind in ("ldx", "ldxs", "stx"):
            forms.append(Form(opcode, {}, {"dst": REG, "src": REG, "off": OFF16}))
        elif kind == "st":
            forms.append(Form(opcode, {}, {"dst": REG, "off": OFF16, "imm": IMM32}))
        elif kind == "atomic":
            for operation in ATOMIC_OPS:
                forms.append(Form(opcode, {"imm": operation}, {"dst": REG, "src": REG, "off": OFF16}))
        elif kind == "lddw":
            for src in range(7):
                forms.append(Form(opcode, {"src": src}, {"dst": REG, "imm": IMM64}))
        elif kind == "ldabs":
            forms.append(Form(opcode, {}, {"imm": IMM32}))
        elif kind == "ldind":
            forms.append(Form(opcode, {}, {"src": REG, "imm": IMM32}))
        else:  # pragma: no cover - a new kind must be added above
            raise AssertionError(kind)
    return forms


FORMS_LIST: list[Form] = _forms()


def make(form: Form, values: dict[str, int]) -> Instruction:
    fields = {"dst": 0, "src": 0, "off": 0, "imm": 0}
    fields.update(form.fixed)
    fields.update(values)
    return Instruction(form.opcode, fields["dst"], fields["src"], fields["off"], fields["imm"])


def instances(form: Form, rng: random.Random, randoms: int = 3) -> list[Instruction]:
    """The form with all-minimum, all-maximum, zero/one and ``randoms`` random operands."""
    picks: list[dict[str, int]] = [
        {k: lo for k, (lo, hi) in form.free.items()},
        {k: hi for k, (lo, hi) in form.free.items()},
        {k: (0 if lo <= 0 <= hi else lo) for k, (lo, hi) in form.free.items()},
        {k: (-1 if lo < 0 else 1) for k, (lo, hi) in form.free.items()},
    ]
    for _ in range(randoms):
        picks.append({k: rng.randint(lo, hi) for k, (lo, hi) in form.free.items()})
    return [make(form, values) for values in picks]


def llvm_can_spell(ins: Instruction) -> bool:
    """Whether LLVM 19's BPF syntax represents this instruction without losing bits."""
    if ins.opcode == 0x85 and ins.src != 0:
        return False  # pc-relative and kfunc calls print as plain 'call N'
    if ins.opcode == 0x18 and ins.src != 0 and (ins.imm & ((1 << 64) - 1)) >> 32:
        return False  # ld_pseudo keeps only 32 bits
    if ins.opcode in (0x40, 0x48, 0x50) and ins.imm != 0:
        return False  # skb[rN] drops the immediate
    return True


def llvm_can_parse(ins: Instruction) -> bool:
    """Whether llvm-mc-19 reads our text for it back (its gotol parser takes 16 bits only)."""
    if ins.opcode == 0x06 and not -(1 << 15) <= ins.imm < (1 << 15):
        return False
    return llvm_can_spell(ins)
