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
    "assemble", "assemble_program",
    "read_str", "ringbuf_discard", "ringbuf_reserve", "ringbuf_submit", "zero_stack",
]

# The tracer builds programs with the DSL only; the text assembler, the
# disassembler and the sequence helpers are imported on first use, because
# loading them (regex compiles, and without bytecode caches their compile)
# would be most of this package's share of the tracer's start-up.
_LAZY = {
    "disassemble": "disasm",
    "format_instruction": "disasm",
    "assemble": "text",
    "assemble_program": "text",
    "read_str": "sequences",
    "ringbuf_discard": "sequences",
    "ringbuf_reserve": "sequences",
    "ringbuf_submit": "sequences",
    "zero_stack": "sequences",
}


_LAZY_MODULES = frozenset(_LAZY.values())


def __getattr__(name: str) -> object:
    from importlib import import_module

    if name in _LAZY_MODULES:  # ``openat.asm.text`` without importing it first, as before
        return import_module(f"{__name__}.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
