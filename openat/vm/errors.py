"""Exceptions of :mod:`openat.vm`."""

from __future__ import annotations

from typing import Optional

__all__ = ["VmError"]


class VmError(Exception):
    """The machine cannot load or run the program; one line saying why.

    When an instruction is to blame the message names it: its index (in 8-byte slots, as
    the disassembler and the kernel verifier count), its disassembly, and the Python line
    (DSL) or text line (assembler) that emitted it. ``slot``, ``instruction`` (the
    disassembly), ``source`` and ``reason`` hold the parts.
    """

    def __init__(self, reason: str, *, slot: Optional[int] = None, instruction: str = "", source: str = "") -> None:
        self.reason = reason
        self.slot = slot
        self.instruction = instruction
        self.source = source
        super().__init__(self._message())

    def _message(self) -> str:
        if self.slot is None:
            return self.reason
        where = f"insn {self.slot}"
        if self.instruction:
            where += f" `{self.instruction}`"
        if self.source:
            where += f" ({self.source})"
        return f"{where}: {self.reason}"

    def at(self, slot: int, instruction: str, source: str) -> "VmError":
        """This error, now naming the instruction (unless it already names one)."""
        if self.slot is None:
            self.slot, self.instruction, self.source = slot, instruction, source
            self.args = (self._message(),)
        return self
