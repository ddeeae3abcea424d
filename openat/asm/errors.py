"""Exceptions raised by :mod:`openat.asm`; every failure in the package is one of these."""

from __future__ import annotations

__all__ = ["AsmError", "AsmSyntaxError", "DecodeError", "IsaLevelError"]


class AsmError(Exception):
    """Anything wrong with a program: bad operand, out-of-range value, label, ISA level, map.

    The message names the instruction and, when known, the Python ``file.py:LINE`` (DSL) or
    the text line (text assembler) that produced it.
    """


class IsaLevelError(AsmError):
    """An instruction needs a newer ISA level than the program targets."""


class DecodeError(AsmError):
    """Bytes that are not a valid eBPF instruction stream.

    ``offset`` is the byte offset of the offending 8-byte slot.
    """

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


class AsmSyntaxError(AsmError):
    """Text that the assembler cannot turn into instructions; carries 1-based line and column."""

    def __init__(self, message: str, line: int, column: int, text: str = "") -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column
        self.text = text
        self.reason = message
