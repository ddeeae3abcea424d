"""CO-RE results applied to a program's instructions, as libbpf patches them (pure).

:meth:`openat.elf.CollectionSpec.resolve_core` says, per relocation, the
compiler's value and the target's (:class:`openat.btf.core.CoreResult`);
:func:`apply_core` writes the target's into each instruction:

- ``rX = imm``, ``rX += imm`` (ALU with an immediate): the immediate;
- ``rX = *(T *)(rY + off)``, stores: the offset, and the access size when
  the target field has another size (allowed for pointers and unsigned
  integers only, else the access is poisoned);
- ``rX = imm64 ll``: the 64-bit immediate.

Where ``validate`` is set, the instruction must hold the compiler's value,
else the object and the relocation disagree (an error). A *poisoned*
instruction becomes ``call 0xbad2310`` (a 64-bit load two of them): the
verifier drops it as dead code, or names it if the program can reach it.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Tuple

from ..asm import Instruction
from ..asm.errors import AsmError
from ..asm.opcodes import LDDW
from ..btf.core import CORE_POISON_HELPER, CoreResult
from .errors import ElfError
from .programs import CoreReference

__all__ = ["apply_core", "poison"]

_CALL = 0x85
_U64 = (1 << 64) - 1
_SIZE_CODES = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}  # BPF_B, BPF_H, BPF_W, BPF_DW
_SIZE_BYTES = {code: size for size, code in _SIZE_CODES.items()}


def poison(instruction: Instruction) -> List[Instruction]:
    """The instruction(s) a poisoned one becomes: ``call 0xbad2310`` per slot, keeping its source."""
    call = Instruction(_CALL, 0, 0, 0, CORE_POISON_HELPER, source=instruction.source)
    return [call, call] if instruction.opcode == LDDW else [call]


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def patch_instruction(instruction: Instruction, result: CoreResult, where: str) -> List[Instruction]:
    """``instruction`` with ``result`` applied: one instruction, or the poisoned ones."""
    if result.poison:
        return poison(instruction)
    opcode = instruction.opcode
    klass = opcode & 0x07
    original, new = result.original & _U64, result.new & _U64
    if klass in (0x04, 0x07):  # ALU, ALU64
        if opcode & 0x08:
            raise ElfError(f"{where}: an ALU instruction with a register source cannot be relocated ({instruction})")
        if result.validate and instruction.imm & _U64 != original:
            raise ElfError(f"{where}: expected immediate {original}, found {instruction.imm} ({instruction})")
        return [instruction.replace(imm=_s32(new))]
    if klass in (0x01, 0x02, 0x03):  # LDX, ST, STX
        if result.validate and instruction.off & _U64 != original:
            raise ElfError(f"{where}: expected offset {original}, found {instruction.off} ({instruction})")
        if new > 0x7FFF:
            raise ElfError(f"{where}: offset {new} does not fit an instruction's 16 bits")
        if result.memory_size_mismatch:
            return poison(instruction)
        if result.new_size == result.original_size:
            return [instruction.replace(off=new)]
        if _SIZE_BYTES.get(opcode & 0x18) != result.original_size or result.new_size not in _SIZE_CODES:
            raise ElfError(f"{where}: a {_SIZE_BYTES.get(opcode & 0x18)}-byte access cannot become {result.new_size} bytes")
        return [instruction.replace(opcode=(opcode & 0xE7) | _SIZE_CODES[result.new_size], off=new)]
    if opcode == LDDW:
        if instruction.src or instruction.off:
            raise ElfError(f"{where}: only a plain 64-bit constant load can be relocated ({instruction})")
        if result.validate and instruction.imm & _U64 != original:
            raise ElfError(f"{where}: expected constant {original}, found {instruction.imm & _U64} ({instruction})")
        return [instruction.replace(imm=new)]
    raise ElfError(f"{where}: {instruction} cannot carry a CO-RE relocation")


def apply_core(
    instructions: List[Instruction], relocations: Iterable[CoreReference], results: Dict[Tuple[str, int], CoreResult], program: str = ""
) -> List[Instruction]:
    """``instructions`` with every CO-RE relocation applied (a poisoned 64-bit load becomes two instructions).

    ``results`` from :meth:`openat.elf.CollectionSpec.resolve_core`; a
    relocation without a result is left as the compiler wrote it.
    """
    out = list(instructions)
    for reference in sorted(relocations, key=lambda r: r.index, reverse=True):  # from the end: expansion shifts nothing pending
        result = results.get((reference.section, reference.insn_off))
        if result is None:
            continue
        where = f"program {program!r}: CO-RE relocation at instruction {reference.insn_off // 8} of section {reference.section!r}"
        try:
            out[reference.index : reference.index + 1] = patch_instruction(out[reference.index], result, where)
        except AsmError as error:
            raise ElfError(f"{where}: {error}") from None
    return out
