"""``python -m openat.elf FILE.bpf.o``: what a BPF object holds, for people.

Sections (and what openat makes of each), programs (type, attach point,
sub-programs, then the disassembly through :mod:`openat.asm` with each C
source line from ``.BTF.ext`` before the instructions it compiled to, like
``llvm-objdump -dS``), maps, variables, externs and CO-RE relocations
(resolved against ``--btf``, by default this machine's kernel BTF when it
is readable). Pure: reads the files, makes no syscall of BPF's.

Exit status 0, or 1 with a one-line error for an object openat cannot read.
Names and source text come from the object: anything unprintable in them is
shown escaped, never raw.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional, Sequence

from ..asm import format_instruction
from ..asm.disasm import jump_target_slots
from ..btf import Btf, BtfError
from ..btf.core import CoreKind, format_spec, parse_spec
from ..uapi import AttachType, ProgType, enum_name
from .errors import ElfError
from .programs import ProgramSpec
from .spec import CollectionSpec, load_spec
from .variables import type_name

PROG = "python -m openat.elf"
DEFAULT_TARGET_BTF = "/sys/kernel/btf/vmlinux"


def printable(text: str) -> str:
    """``text`` with every unprintable character escaped (\\xNN, \\u{XXXX}), so nothing reaches a terminal raw."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable():
            out.append(char)
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{{{ord(char):04x}}}")
    return "".join(out)


def _sections(spec: CollectionSpec, out: List[str]) -> None:
    out.append("sections:")
    for section in spec.sections:
        out.append(f"  [{section.index:2}] {printable(section.name):<28} {section.size:>8}  {printable(section.role)}")


def _describe_program(program: ProgramSpec) -> str:
    if program.unsupported:
        return f"not loadable: {program.unsupported}"
    parts = [enum_name(ProgType, program.prog_type)]
    if program.attach_type:
        parts.append(f"attach type {enum_name(AttachType, program.attach_type)}")
    if program.attach_to:
        parts.append(f"on {program.attach_to}")
    if not program.autoload:
        parts.append("not loaded by default ('?' section)")
    return ", ".join(printable(p) for p in parts)


def _code(program: ProgramSpec, out: List[str]) -> None:
    """The disassembly, each C line before its first instruction, references and CO-RE noted."""
    lines = program.source_lines()
    notes: Dict[int, str] = {}
    for reference in program.references:
        target = f"{reference.target}+{reference.offset}" if reference.kind == "map_value" else reference.target
        notes[reference.index] = f"{reference.kind} {printable(target)}"
    for core in program.core_relocations:
        notes[core.index] = f"CO-RE {_core_kind(core.relocation.kind)}"
    slots: List[int] = []
    slot = 0
    for instruction in program.instructions:
        slots.append(slot)
        slot += instruction.slots
    targets = jump_target_slots(list(zip(slots, program.instructions)))
    labels = {t: f"L{t}" for t in targets if t in set(slots)}
    starts = dict(zip(_subprogram_starts(program), program.subprograms))
    shown = None
    for index, (slot, instruction) in enumerate(zip(slots, program.instructions)):
        if slot in starts:
            out.append(f"    {printable(starts[slot])}:")
            shown = None
        if index in lines and lines[index][:2] != shown:  # a C line once where it starts, as llvm-objdump -S does
            file, line, text = lines[index]
            out.append(f"    ; {printable(text.strip())}  [{printable(os.path.basename(file))}:{line}]")
            shown = (file, line)
        if slot in labels:
            out.append(f"    {labels[slot]}:")
        text = format_instruction(instruction, slot=slot, label_for_slot=labels, helper_comments=True)
        note = f"  # {notes[index]}" if index in notes else ""
        out.append(f"    {slot:5}: {text}{note}")


def _subprogram_starts(program: ProgramSpec) -> List[int]:
    """Slots where the appended sub-programs start: their func_info records after the first."""
    return [record.insn_off for record in program.func_info[1:]]


def _core_kind(kind: int) -> str:
    try:
        return CoreKind(kind).name.lower()
    except ValueError:
        return str(kind)


def _programs(spec: CollectionSpec, out: List[str], code: bool, only: Optional[str]) -> None:
    out.append("programs:")
    for program in spec.programs.values():
        if only and program.name != only:
            continue
        subs = f"; sub-programs {', '.join(map(printable, program.subprograms))}" if program.subprograms else ""
        out.append(f"  {printable(program.name)}  [{printable(program.section)}]  {_describe_program(program)}; "
                   f"{program.slot_count()} instructions{subs}")
        if code:
            _code(program, out)


def _maps(spec: CollectionSpec, out: List[str]) -> None:
    out.append("maps:")
    for m in spec.maps.values():
        types = ""
        if m.btf is not None and (m.key_type_id or m.value_type_id) and not m.kind:
            types = f"  key {printable(type_name(m.btf, m.key_type_id))}, value {printable(type_name(m.btf, m.value_type_id))}"
        entries = m.max_entries if m.max_entries else "one per CPU"
        pin = "  pinned by name" if m.pinning else ""
        out.append(f"  {printable(m.name):<20} {m.type_name:<18} key {m.key_size:>3}  value {m.value_size:>5}  entries {entries}  "
                   f"flags 0x{m.flags:x}  kernel name {printable(m.kernel_name)!r}{types}{pin}")


def _variables(spec: CollectionSpec, out: List[str]) -> None:
    out.append("variables:")
    for v in spec.variables.values():
        try:
            value = repr(v.get())
        except (ElfError, BtfError) as error:
            value = f"<{error}>"
        scope = " static" if v.static else ""
        out.append(f"  {printable(v.name):<24} {v.section}+{v.offset} ({v.size} bytes{scope})  {printable(v.type)} = {printable(value)}")
    for e in spec.externs.values():
        what = f"offset {e.offset} of .kconfig" if e.kind == "kconfig" else ("kfunc" if e.is_function else ("typed" if e.typed else "address"))
        weak = " weak" if e.weak else ""
        out.append(f"  extern {printable(e.name):<17} __{e.kind}{weak}  {what}")


def _core(spec: CollectionSpec, out: List[str], target: Optional[Btf], target_name: str) -> None:
    relocations = spec.core_relocations(list(spec.programs))
    out.append(f"CO-RE relocations: {len(relocations)}" + (f" (resolved against {target_name})" if target and relocations else ""))
    if not relocations or spec.btf is None:
        return
    results = {}
    if target is not None:
        try:
            results = spec.resolve_core(target, list(spec.programs))
        except ElfError as error:
            out.append(f"  cannot resolve: {printable(str(error))}")
    for section, relo in relocations:
        try:
            local = format_spec(parse_spec(spec.btf, relo))
        except BtfError as error:
            local = f"<{error}>"
        line = f"  {printable(section)} insn {relo.insn_off // 8}: {printable(local)}"
        result = results.get((section, relo.insn_off))
        if result is not None:
            outcome = "poisoned" if result.poison else f"{result.original} -> {result.new}"
            line += f"\n      => {printable(result.target)}: {outcome}"
        out.append(line)


def render(spec: CollectionSpec, *, code: bool = True, program: Optional[str] = None, target: Optional[Btf] = None,
           target_name: str = "") -> str:
    """The whole listing as text."""
    btf = f", BTF {len(spec.btf)} types" if spec.btf is not None else ", no BTF"
    out = [f"object {printable(spec.name)}: license {printable(spec.license)!r}, {len(spec.programs)} programs, "
           f"{len(spec.maps)} maps, {len(spec.variables)} variables{btf}"]
    _sections(spec, out)
    _programs(spec, out, code, program)
    _maps(spec, out)
    _variables(spec, out)
    _core(spec, out, target, target_name)
    return "\n".join(out) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = argparse.ArgumentParser(prog=PROG, description="Show what a clang-compiled BPF object holds.")
    parser.add_argument("file", help="the object (FILE.bpf.o)")
    parser.add_argument("--program", help="show only this program's code")
    parser.add_argument("--no-code", action="store_true", help="leave out the disassembly")
    parser.add_argument("--btf", help=f"resolve CO-RE relocations against this BTF file (default {DEFAULT_TARGET_BTF} if readable; 'none': do not)")
    args = parser.parse_args(argv)
    try:
        spec = load_spec(args.file)
    except ElfError as error:
        print(f"{PROG}: {printable(args.file)}: {printable(str(error))}", file=sys.stderr)
        return 1
    target, target_name = _target(args.btf)
    if args.program and args.program not in spec.programs:
        print(f"{PROG}: no program {printable(args.program)!r}; the object has {', '.join(map(printable, spec.programs))}", file=sys.stderr)
        return 1
    sys.stdout.write(render(spec, code=not args.no_code, program=args.program, target=target, target_name=target_name))
    return 0


def _target(path: Optional[str]):
    if path == "none":
        return None, ""
    chosen = path or DEFAULT_TARGET_BTF
    try:
        return Btf.load(chosen), chosen
    except (OSError, BtfError) as error:
        if path:
            print(f"{PROG}: --btf {printable(path)}: {printable(str(error))}", file=sys.stderr)
        return None, ""


if __name__ == "__main__":
    sys.exit(main())
