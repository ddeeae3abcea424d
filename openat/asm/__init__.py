"""Pure-Python eBPF assembler, DSL and disassembler (no syscalls, any OS).

Quick tour::

    from openat.asm import Program, R0, R1, R6
    p = Program(isa="v3")
    p.mov(R6, R1)
    p.call("get_current_pid_tgid")
    p.jeq(R0, 0, "out")
    p.label("out")
    p.mov(R0, 0)
    p.exit()
    code = p.encode()

See docs/asm.md for the full API and docs/isa.md for the instruction format.
"""

from __future__ import annotations

from .disasm import disassemble, format_instruction
from .errors import AsmError, AsmSyntaxError, DecodeError, IsaLevelError
from .helper_ids import HELPER_IDS, HELPER_NAMES
from .instruction import Instruction, decode, encode
from .program import Program, Relocation
from .registers import (
    FP,
    R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10,
    W0, W1, W2, W3, W4, W5, W6, W7, W8, W9, W10,
    Register,
)

__all__ = [
    "AsmError", "AsmSyntaxError", "DecodeError", "IsaLevelError",
    "HELPER_IDS", "HELPER_NAMES",
    "Instruction", "Program", "Register", "Relocation",
    "decode", "disassemble", "encode", "format_instruction",
    "FP",
    "R0", "R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", "R10",
    "W0", "W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10",
]

from .text import assemble, assemble_program  # noqa: E402  (after Program, which it builds on)

__all__ += ["assemble", "assemble_program"]

from .sequences import read_str, ringbuf_discard, ringbuf_reserve, ringbuf_submit, zero_stack  # noqa: E402

__all__ += ["read_str", "ringbuf_discard", "ringbuf_reserve", "ringbuf_submit", "zero_stack"]
