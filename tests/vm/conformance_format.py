"""Reads the bpf_conformance suite's ``.data`` files (tests/vm/conformance).

A file has sections opened by ``-- NAME`` lines: ``asm`` (a program in the suite's own
assembler syntax: ``mov32 %r0, 1``, ``ldxw %r0, [%r1+4]``, ``lock fetch add [%r10-8], %r1``),
``raw`` (the program as 64-bit instruction words instead), ``mem`` (hex bytes of the memory
the program gets), ``result`` (the expected r0) and ``error`` (the error a runtime must report
instead of a result); ``c`` and ``no register offset`` are notes. ``#`` starts a comment.

The ``asm`` text is assembled through the :class:`openat.asm.Program` DSL, with its opt-ins
for what the suite uses and Linux refuses (shifts by out-of-range immediates, ``callx``): one
DSL call per line of the file. ``sources`` names the ``.data`` line of each slot, for the
machine's errors and traces (``Machine(test.program, sources=test.sources)``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

from openat.asm import Instruction, Program, Register
from openat.asm.registers import R, W

__all__ = ["ConformanceTest", "assemble", "parse"]

_ALU = {"add", "sub", "mul", "div", "sdiv", "or", "and", "lsh", "rsh", "mod", "smod", "xor", "mov", "arsh"}
_DSL_ALU = {"or": "or_", "and": "and_"}
_JUMPS = {"jeq", "jgt", "jge", "jset", "jne", "jsgt", "jsge", "jlt", "jle", "jslt", "jsle"}
_ADDRESS = re.compile(r"\[%r(\d+)\s*(?:([+-])\s*(\w+))?\]\Z")
_MOVSX = re.compile(r"movsx(8|16|32)(32|64)\Z")


class ConformanceTest(NamedTuple):
    """One ``.data`` file: the program's bytes and the ``.data`` line of each slot, its memory,
    and what it must give."""

    name: str
    program: bytes
    sources: List[str]
    memory: Optional[bytes]
    result: Optional[int]
    error: Optional[str]


def parse(path: Path) -> ConformanceTest:
    """Read one ``.data`` file."""
    sections: Dict[str, List[Tuple[int, str]]] = {}
    current: Optional[str] = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].rstrip()
        if line.strip().startswith("--"):
            current = line.strip()[2:].strip()
            sections.setdefault(current, [])
            continue
        if current is not None and line.strip():
            sections[current].append((number, line.strip()))
    result = sections.get("result")
    error = sections.get("error")
    if not result and not error:
        raise ValueError(f"{path.name}: no result and no error section")
    memory = bytes.fromhex(" ".join(text for _, text in sections["mem"])) if "mem" in sections else None
    if sections.get("raw"):
        words = " ".join(text for _, text in sections["raw"]).split()
        program = b"".join(int(word, 0).to_bytes(8, "little") for word in words)
        sources = [f"{path.name}: raw word {index}" for index in range(len(words))]
    else:
        program, sources = assemble(sections.get("asm", []), path.name)
    return ConformanceTest(
        path.name, program, sources, memory,
        int(result[-1][1], 0) if result else None,
        error[-1][1] if error else None,
    )


def _number(text: str) -> int:
    return int(text, 16) if text.lower().startswith("0x") or text.lower().startswith("-0x") else int(text, 10)


def _imm32(text: str) -> int:
    value = _number(text) & 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


def _register(text: str, is32: bool = False) -> Register:
    if not text.startswith("%r"):
        raise ValueError(f"expected a register, got {text!r}")
    return (W if is32 else R)[int(text[2:])]


def _address(text: str) -> Tuple[Register, int]:
    match = _ADDRESS.match(text.replace(" ", ""))
    if not match:
        raise ValueError(f"expected [%rN+OFF], got {text!r}")
    register, sign, offset = match.groups()
    value = _number(offset) if offset else 0
    return R[int(register)], -value if sign == "-" else value


def _target(text: str) -> Union[int, str]:
    return _number(text) if text[0] in "+-" else text


def assemble(lines: List[Tuple[int, str]], name: str) -> Tuple[bytes, List[str]]:
    """The ``asm`` section's bytes, and the ``.data`` line of each slot."""
    p = Program(isa="v4", out_of_range_shifts=True, callx=True)
    sources: List[str] = []
    labels = {text[:-1] for _, text in lines if text.endswith(":")}
    first_exit = True
    for number, text in lines:
        words = [word.rstrip(",") for word in text.split()]
        mnemonic, operands = words[0], words[1:]
        if mnemonic.endswith(":"):
            p.label(mnemonic[:-1])
            continue
        if mnemonic == "exit" and first_exit and "exit" not in labels:
            p.label("exit")  # the suite's assembler names the first exit "exit"
            first_exit = False
        try:
            _statement(p, mnemonic, operands)
        except (ValueError, IndexError, KeyError) as error:
            raise ValueError(f"{name}:{number}: {text!r}: {error}") from None
        sources += [f"{name}:{number}"] * (p.slot_count - len(sources))
    return p.encode(), sources


def _statement(p: Program, mnemonic: str, operands: List[str]) -> None:
    if mnemonic == "exit":
        return p.exit()
    if mnemonic == "lddw":
        return p.lddw(_register(operands[0]), _number(operands[1]) & ((1 << 64) - 1))
    if mnemonic in ("ja", "ja32"):
        return (p.ja if mnemonic == "ja" else p.gotol)(_target(operands[0]))
    if mnemonic == "call":
        return _call(p, operands)
    if mnemonic == "lock":
        return _atomic(p, operands)
    if mnemonic.startswith(("ldx", "st")):
        return _memory(p, mnemonic, operands)
    base, is32 = (mnemonic[:-2], mnemonic.endswith("32")) if mnemonic[-2:] in ("32", "64") else (mnemonic, False)
    if base in _JUMPS:
        dst = _register(operands[0], is32)
        src: Union[Register, int] = _register(operands[1], is32) if operands[1].startswith("%") else _imm32(operands[1])
        return getattr(p, base)(dst, src, _target(operands[2]))
    return _alu(p, mnemonic, base, is32, operands)


def _alu(p: Program, mnemonic: str, base: str, is32: bool, operands: List[str]) -> None:
    swap = re.match(r"(le|be|swap|bswap)(16|32|64)\Z", mnemonic)
    if swap:
        method = "bswap" if swap.group(1) in ("swap", "bswap") else swap.group(1)
        return getattr(p, method)(_register(operands[0]), int(swap.group(2)))
    movsx = _MOVSX.match(mnemonic)
    if movsx:
        is32 = movsx.group(2) == "32"
        return p.movsx(_register(operands[0], is32), _register(operands[1], is32), int(movsx.group(1)))
    if base == "neg":
        return p.neg(_register(operands[0], is32))
    if base not in _ALU:
        raise ValueError(f"unknown mnemonic {mnemonic!r}")
    dst = _register(operands[0], is32)
    src: Union[Register, int] = _register(operands[1], is32) if operands[1].startswith("%") else _imm32(operands[1])
    getattr(p, _DSL_ALU.get(base, base))(dst, src)


def _call(p: Program, operands: List[str]) -> None:
    mode, target = (operands[0], operands[1]) if len(operands) == 2 else ("helper", operands[0])
    if mode == "local":
        return p.call_label(target) if not target[0] in "+-" else p.raw(Instruction(0x85, 0, 1, 0, _number(target)))
    if mode == "runtime":
        return p.call_kfunc(_number(target))
    if target.startswith("%"):
        return p.callx(_register(target))
    p.call(_number(target))


def _memory(p: Program, mnemonic: str, operands: List[str]) -> None:
    if mnemonic.startswith("ldx"):
        base, off = _address(operands[1])
        return getattr(p, mnemonic)(_register(operands[0]), base, off)
    base, off = _address(operands[0])
    if mnemonic.startswith("stx"):
        return getattr(p, mnemonic)(base, off, _register(operands[1]))
    value = _imm32(operands[1])
    size = {"stb": 8, "sth": 16, "stw": 32, "stdw": 64}[mnemonic]
    if size < 32:
        value &= (1 << size) - 1  # the suite's assembler keeps the imm's bits; the store truncates them
    getattr(p, mnemonic)(base, off, value)


def _atomic(p: Program, operands: List[str]) -> None:
    fetch = operands[0] == "fetch"
    if fetch:
        operands = operands[1:]
    operation, address, source = operands
    is32 = operation.endswith("32")
    operation = operation[:-2] if is32 else operation
    base, off = _address(address)
    src = _register(source, is32)
    if operation in ("xchg", "cmpxchg"):
        return getattr(p, operation)(base, off, src)
    getattr(p, f"atomic_{operation}")(base, off, src, fetch=fetch)
