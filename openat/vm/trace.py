"""``machine.trace()``: every step of a run, as records for code and as text for a person.

Each :class:`TraceStep` holds the instruction (its slot, disassembly and the line that emitted
it), the registers it changed (old and new values, and what a new value points into), the
memory it stored (by the instruction, or by the helper it called) and what trace_printk
printed. :meth:`Trace.text` lays them out one line per step::

        0  r6 = r1                         r6 = 0x100000000 (ctx+0x0)
        1  *(u32 *)(r10 - 0x4) = 0x0       [fp-0x4] = 0x00000000
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, List, Optional, Tuple

from ..asm.formatter import format_instruction
from ..fieldtuple import FieldTuple
from .errors import VmError
from .memory import MemoryFault

if TYPE_CHECKING:
    from ..asm.instruction import Instruction
    from .machine import Machine

__all__ = ["MemoryWrite", "RegisterChange", "Trace", "TraceStep", "printable"]

M64 = (1 << 64) - 1


class RegisterChange(FieldTuple):
    """A register an instruction changed; ``points_to`` names the region the new value points into."""

    register: int
    old: int
    new: int
    points_to: str = ""


class MemoryWrite(FieldTuple):
    """Bytes stored at ``address`` (``where``: region and offset, e.g. ``fp-0x8``)."""

    address: int
    data: bytes
    where: str


class TraceStep(FieldTuple):
    """One executed instruction: ``step`` counts from 0; ``depth`` is the call frame (0: main)."""

    step: int
    slot: int
    instruction: str
    source: str
    depth: int
    changes: Tuple[RegisterChange, ...]
    writes: Tuple[MemoryWrite, ...]
    printk: Tuple[str, ...]


def printable(text: str) -> str:
    """``text`` with control characters, backslashes and invisible code points escaped, so it
    cannot drive a terminal (trace_printk output is the program's, hence untrusted)."""
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char.isprintable():
            out.append(char)
        else:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{{{code:04x}}}")
    return "".join(out)


def _value_text(change: RegisterChange) -> str:
    text = f"r{change.register} = {change.new:#x}"
    if change.points_to:
        return f"{text} ({change.points_to})"
    if change.new >> 63:
        return f"{text} ({change.new - (1 << 64)})"
    if change.new > 9:
        return f"{text} ({change.new})"
    return text


def _write_text(write: MemoryWrite) -> str:
    if len(write.data) in (1, 2, 4, 8):
        value = int.from_bytes(write.data, "little")
        return f"[{write.where}] = {value:#0{2 + 2 * len(write.data)}x}"
    shown = write.data[:16].hex(" ")
    return f"[{write.where}] = {shown}{' ...' if len(write.data) > 16 else ''} ({len(write.data)} bytes)"


def _line(machine: "Machine", slot: int, ins: "Instruction") -> str:
    text = format_instruction(ins, slot=slot, label_for_slot=None, helper_comments=True)
    bpf_map = machine.map_of(ins)
    return f"{text} # map {bpf_map.name or '?'}" if bpf_map is not None else text


class Trace:
    """What ``machine.trace()`` saw: ``steps``, then ``result`` (r0) or ``error`` (a VmError)."""

    def __init__(self, machine: "Machine") -> None:
        self.machine = machine
        self.steps: List[TraceStep] = []
        self.result: Optional[int] = None
        self.error: Optional[VmError] = None
        self.printk: List[str] = []
        self._lines = {slot: _line(machine, slot, ins) for slot, ins in machine.instructions}
        self._stores = {slot: ins for slot, ins in machine.instructions if ins.form.kind in ("st", "stx", "atomic")}

    def __iter__(self) -> Iterator[TraceStep]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    # -- recording (called by the machine)

    def record(self, slot: int, before: List[int], printed: int, depth: int) -> None:
        """Note the step the machine just ran: the instruction at ``slot``, with the registers
        ``before`` it, the ``printk`` lines after the first ``printed``, at call ``depth``."""
        m = self.machine
        where = m.memory.where
        changes = [RegisterChange(register, old, new, m.points_to(new))
                   for register, (old, new) in enumerate(zip(before, m.registers)) if old != new]
        writes = [MemoryWrite(address, data, where(address) or f"{address:#x}") for address, data in (m.writes or ())]
        store = self._stores.get(slot)
        if store is not None:
            address = (before[store[1]] + store[3]) & M64
            try:
                data = m.memory.read(address, store.form.size)
            except MemoryFault:  # a region the step itself removed: nothing to show
                data = b""
            if data:
                writes.insert(0, MemoryWrite(address, data, where(address) or f"{address:#x}"))
        ins = m.instruction_at(slot)
        self.steps.append(TraceStep(len(self.steps), slot, self._lines[slot], ins[5], depth,
                                    tuple(changes), tuple(writes), tuple(m.printk[printed:])))

    # -- reading

    def text(self, *, sources: bool = True) -> str:
        """The trace for a person: one line per step (slot, instruction, what changed), the
        trace_printk lines where they were printed, and how the run ended."""
        lines = []
        for step in self.steps:
            effects = [_value_text(change) for change in step.changes]
            effects += [_write_text(write) for write in step.writes]
            indent = "  " * step.depth
            where = f"  # {step.source}" if sources and step.source else ""
            lines.append(f"{step.slot:6}  {indent}{step.instruction:<40} {', '.join(effects)}{where}".rstrip())
            lines += [f"{'':6}  {indent}printk: {printable(message)}" for message in step.printk]
        if self.error is not None:
            lines.append(f"error: {self.error}")
        elif self.result is not None:
            signed = self.result - (1 << 64) if self.result >> 63 else self.result
            lines.append(f"exit: r0 = {self.result:#x} ({signed}) after {len(self.steps)} instructions")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        end = f"error={self.error}" if self.error is not None else f"result={self.result}"
        return f"<Trace of {len(self.steps)} steps, {end}>"
