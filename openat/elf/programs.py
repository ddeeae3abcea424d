"""Programs: code sections decoded, relocations classified, sub-programs appended (pure).

clang puts each ``SEC("...")`` function in its own section and every other
function (``static __noinline``, global sub-programs) in ``.text``. A
program as the kernel loads it is its function followed by every ``.text``
function it calls, directly or not, each appended once, depth first in the
order of the calls, with each bpf-to-bpf call's offset rewritten for where
its callee landed; libbpf does exactly this, so both produce the same
instructions. ``func_info`` and ``line_info`` of each piece follow it.

Relocations of a code section are classified as libbpf does:

- a call against a ``.text`` symbol: a sub-program call;
- a 64-bit load against a ``.text`` symbol: a sub-program's address
  (callbacks for ``bpf_loop``...), ``BPF_PSEUDO_FUNC``;
- a 64-bit load against a ``.maps`` symbol: that map (``BPF_PSEUDO_MAP_FD``);
- against a data section: a global variable (``BPF_PSEUDO_MAP_VALUE`` into
  the section's map, at the symbol's offset plus the instruction's);
- against an undefined symbol: an extern (``__kconfig``, ``__ksym``, a
  kfunc when it is a call).

What stays for load time (map fds, extern addresses, CO-RE values) is
recorded in :class:`Reference` and :class:`CoreReference` entries.
"""

from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from ..asm import Instruction, iter_decode
from ..asm.errors import AsmError, DecodeError
from ..asm.opcodes import BPF_PSEUDO_BTF_ID, BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC, BPF_PSEUDO_KFUNC_CALL, BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE, LDDW
from ..btf import Btf, BtfError
from ..btf.ext import CoreRelo, FuncInfo, LineInfo
from .errors import ElfError
from .reader import SHN_LORESERVE, ElfFile, Section, Symbol, STT_FUNC
from .sections import SectionDef

__all__ = [
    "KCONFIG_MAP",
    "POISON_KFUNC_BASE",
    "CodeSection",
    "CoreReference",
    "ResolvedSymbol",
    "ProgramSpec",
    "Reference",
    "RelocationTargets",
    "classify_relocations",
    "fill_references",
    "link_program",
    "split_functions",
]

CALL = 0x85  # BPF_JMP | BPF_CALL
KCONFIG_MAP = ".kconfig"


class Reference(NamedTuple):
    """An instruction that needs something only loading has: a map's fd, an extern's value.

    ``kind``: ``"map"`` (fd of map ``target``), ``"map_value"`` (address of
    byte ``offset`` of map ``target``'s value), ``"ksym"`` (a kernel
    variable's BTF id, or address when untyped), ``"kfunc"`` (a kernel
    function's BTF id, on a call).
    """

    index: int
    kind: str
    target: str
    offset: int = 0


class CoreReference(NamedTuple):
    """Instruction ``index`` carries CO-RE relocation ``relocation`` (of ``section`` at byte ``insn_off``)."""

    index: int
    section: str
    insn_off: int
    relocation: CoreRelo


class _Relocation(NamedTuple):
    """A classified relocation: ``kind`` "call", "subprog_addr", "map", "data", "extern"."""

    kind: str
    symbol: str
    value: int  # the symbol's st_value
    target: str = ""  # map name, data map name, extern name


class _Function(NamedTuple):
    name: str
    section: "CodeSection"
    first: int  # index of its first instruction in the section
    end: int  # index after its last
    first_slot: int
    end_slot: int
    global_: bool


class CodeSection:
    """One code section: its instructions (lddw as one), slot of each, sources from line_info, relocations."""

    def __init__(self, section: Section, line_info: List[LineInfo], btf: Optional[Btf]) -> None:
        self.name = section.name
        self.index = section.index
        self.instructions: List[Instruction] = []
        self.slots: List[int] = []
        try:
            for slot, instruction in iter_decode(section.data):
                self.slots.append(slot)
                self.instructions.append(instruction)
        except DecodeError as error:
            raise ElfError(f"section {section.name!r}: {error}") from None
        self.total_slots = len(section.data) // 8
        self.index_at: Dict[int, int] = {slot: index for index, slot in enumerate(self.slots)}
        self.relocations: Dict[int, _Relocation] = {}
        self.line_info = sorted(line_info, key=lambda record: record.insn_off)
        self.sources = self._sources(btf)
        self.functions: List[_Function] = []

    def _sources(self, btf: Optional[Btf]) -> List[str]:
        """``file:line`` of each instruction, from the line_info record that covers it."""
        sources = [""] * len(self.instructions)
        if btf is None or not self.line_info:
            return sources
        records = iter(self.line_info)
        record = next(records, None)
        current = ""
        for index, slot in enumerate(self.slots):
            while record is not None and record.insn_off // 8 <= slot:
                current = f"{_base_name(_file_name(btf, record.file_name_off))}:{record.line}"
                record = next(records, None)
            sources[index] = current
        return sources

    def index_of(self, byte_offset: int, what: str) -> int:
        """The instruction starting at ``byte_offset``; ElfError when none does."""
        index = self.index_at.get(byte_offset // 8) if byte_offset % 8 == 0 else None
        if index is None:
            raise ElfError(f"{what} at byte {byte_offset} of section {self.name!r} is not at an instruction")
        return index

    def function_at(self, slot: int) -> Optional[_Function]:
        for function in self.functions:
            if function.first_slot <= slot < function.end_slot:
                return function
        return None


def _base_name(path: str) -> str:
    """``probe.bpf.c`` of ``/build/dir/probe.bpf.c``: the build machine's directories say nothing here (as the DSL's ``file.py:LINE``)."""
    return path.rsplit("/", 1)[-1]


def _file_name(btf: Btf, offset: int) -> str:
    try:
        return btf.string(offset)
    except BtfError:
        return "?"


def split_functions(code: CodeSection, symbols: List[Symbol]) -> None:
    """Give ``code`` its functions, one per STT_FUNC symbol of the section (ElfError for a bad range)."""
    for symbol in sorted((s for s in symbols if s.section == code.index and s.type == STT_FUNC), key=lambda s: s.value):
        where = f"function {symbol.name!r} in section {code.name!r}"
        if symbol.value % 8 or symbol.size % 8 or symbol.value // 8 + symbol.size // 8 > code.total_slots:
            raise ElfError(f"{where}: bytes {symbol.value}..{symbol.value + symbol.size} are not whole instructions of the section")
        first_slot, end_slot = symbol.value // 8, (symbol.value + symbol.size) // 8
        first = code.index_at.get(first_slot)
        end = code.index_at.get(end_slot, len(code.instructions) if end_slot == code.total_slots else None)
        if first is None or end is None or end <= first:
            raise ElfError(f"{where}: does not start and end at instructions")
        if any(f.first_slot < end_slot and first_slot < f.end_slot for f in code.functions):
            raise ElfError(f"{where}: overlaps another function")
        code.functions.append(_Function(symbol.name, code, first, end, first_slot, end_slot, symbol.bind != 0))


class RelocationTargets(NamedTuple):
    """What relocations may point at: section indices of .text and .maps, maps by offset, data maps, externs."""

    text_index: int
    maps_index: int
    map_by_offset: Dict[int, str]
    data_map_of: Dict[int, str]  # data section index -> its map's name
    extern_of: Callable[[Symbol], Optional[str]]  # an undefined symbol -> "kconfig:NAME" / "ksym:NAME", None if unknown


def classify_relocations(elf: ElfFile, code: CodeSection, targets: RelocationTargets) -> None:
    """Record what each relocation of ``code`` refers to (libbpf's rules; ElfError naming the symbol otherwise)."""
    for relocation in elf.relocations.get(code.index, []):
        symbol = elf.symbols[relocation.symbol]
        name = elf.symbol_name(symbol)
        index = code.index_of(relocation.offset, f"relocation against {name!r}")
        instruction = code.instructions[index]
        where = f"relocation against {name!r} at instruction {code.slots[index]} of section {code.name!r}"
        is_call = instruction.opcode == CALL
        if not is_call and instruction.opcode != LDDW:
            raise ElfError(f"{where}: only calls and 64-bit loads can be relocated, not {instruction}")
        code.relocations[index] = _classify(symbol, name, is_call, instruction, where, targets)


def _classify(symbol: Symbol, name: str, is_call: bool, instruction: Instruction, where: str, targets: RelocationTargets) -> _Relocation:
    if symbol.is_extern:
        extern = targets.extern_of(symbol)
        if extern is None:
            raise ElfError(f"{where}: extern {name!r} has no __kconfig or __ksym declaration in .BTF")
        return _Relocation("extern", name, 0, extern)
    if is_call:
        if instruction.src != BPF_PSEUDO_CALL:
            raise ElfError(f"{where}: a relocated call must be a bpf-to-bpf call (src 1), not src {instruction.src}")
        if not symbol.section or symbol.section != targets.text_index:
            raise ElfError(f"{where}: calls go to functions in .text, and {name!r} is not there")
        if symbol.value % 8:
            raise ElfError(f"{where}: target offset {symbol.value} is not an instruction")
        return _Relocation("call", name, symbol.value)
    if not symbol.section or symbol.section >= SHN_LORESERVE:
        raise ElfError(f"{where}: symbol {name!r} is in no section (a global variable without initial value, or a missing definition?)")
    if symbol.section == targets.text_index:
        if symbol.value % 8 or (instruction.imm & 0xFFFFFFFF) % 8:
            raise ElfError(f"{where}: sub-program address {symbol.value}+{instruction.imm} is not an instruction")
        return _Relocation("subprog_addr", name, symbol.value)
    if symbol.section == targets.maps_index:
        found = targets.map_by_offset.get(symbol.value)
        if found is None:
            raise ElfError(f"{where}: no map is defined at offset {symbol.value} of .maps")
        return _Relocation("map", name, symbol.value, found)
    if symbol.section in targets.data_map_of:
        return _Relocation("data", name, symbol.value, targets.data_map_of[symbol.section])
    raise ElfError(f"{where}: symbol {name!r} is in a section that holds no map, data or code")


# --- the program as it is loaded ----------------------------------------------------------------


class ProgramSpec:
    """A program, as loading it will need it.

    ``instructions`` are the program and its appended sub-programs, bpf-to-bpf
    calls already resolved, each with its C ``file.c:LINE`` in ``source``;
    maps, globals and externs are still placeholders (``references``), and
    CO-RE relocations still hold the compiler's local values
    (``core_relocations``). ``func_info``/``line_info`` have instruction
    offsets in slots. ``unsupported`` is "" when a loader knows the section,
    else why not. Fields may be changed before loading (``autoload``...).
    """

    def __init__(
        self, name: str, section: str, prog_type: int, attach_type: int, attach_to: str, license: str,
        instructions: List[Instruction], *, references: Tuple[Reference, ...] = (), core_relocations: Tuple[CoreReference, ...] = (),
        func_info: Tuple[FuncInfo, ...] = (), line_info: Tuple[LineInfo, ...] = (), func_info_record_size: int = 8,
        line_info_record_size: int = 16, prog_flags: int = 0, kern_version: int = 0, autoload: bool = True,
        definition: Optional[SectionDef] = None, unsupported: str = "", subprograms: Tuple[str, ...] = (), btf: Optional[Btf] = None,
    ) -> None:
        self.name = name
        self.section = section
        self.prog_type = prog_type
        self.attach_type = attach_type
        self.attach_to = attach_to
        self.license = license
        self.instructions = instructions
        self.references = references
        self.core_relocations = core_relocations
        self.func_info = func_info
        self.line_info = line_info
        self.func_info_record_size = func_info_record_size
        self.line_info_record_size = line_info_record_size
        self.prog_flags = prog_flags
        self.kern_version = kern_version
        self.autoload = autoload
        self.definition = definition
        self.unsupported = unsupported
        self.subprograms = subprograms
        self.btf = btf

    def __repr__(self) -> str:
        return f"<ProgramSpec {self.name!r} [{self.section}] {self.slot_count()} instructions>"

    def slot_sources(self) -> List[str]:
        """One ``file:line`` per 8-byte slot (an lddw's twice), for verifier-log annotation."""
        sources: List[str] = []
        for instruction in self.instructions:
            sources.append(instruction.source)
            if instruction.opcode == LDDW:
                sources.append(instruction.source)
        return sources

    def slot_count(self) -> int:
        return sum(instruction.slots for instruction in self.instructions)

    def source_lines(self) -> Dict[int, Tuple[str, int, str]]:
        """Instruction index -> (file, line, C text) where a new C line starts (for listings)."""
        if self.btf is None:
            return {}
        by_slot: Dict[int, Tuple[str, int, str]] = {}
        for record in self.line_info:
            try:
                text = self.btf.string(record.line_off)
            except BtfError:
                text = ""
            by_slot[record.insn_off] = (_file_name(self.btf, record.file_name_off), record.line, text)
        lines: Dict[int, Tuple[str, int, str]] = {}
        slot = 0
        for index, instruction in enumerate(self.instructions):
            if slot in by_slot:
                lines[index] = by_slot[slot]
            slot += instruction.slots
        return lines


class _Linker:
    """Builds one program: its function, then each .text function it reaches, as libbpf appends them."""

    def __init__(self, text: Optional[CodeSection], ext_func: Dict[str, List[FuncInfo]], ext_line: Dict[str, List[LineInfo]],
                 core: Dict[str, List[CoreRelo]], kconfig_offsets: Dict[str, int]) -> None:
        self.text = text
        self.kconfig_offsets = kconfig_offsets
        self.ext_func, self.ext_line, self.core = ext_func, ext_line, core
        self.instructions: List[Instruction] = []
        self.slot_count = 0
        self.placed: Dict[Tuple[str, int], int] = {}  # function (section, first slot) -> its start slot here
        self.references: List[Reference] = []
        self.core_refs: List[CoreReference] = []
        self.func_info: List[FuncInfo] = []
        self.line_info: List[LineInfo] = []
        self.missing_func_info = False
        self.order: List[str] = []

    def append(self, function: _Function) -> int:
        """Copy ``function`` to the end; the index of its first instruction here."""
        start_index, start_slot = len(self.instructions), self.slot_count
        self.placed[(function.section.name, function.first_slot)] = start_slot
        self.order.append(function.name)
        code = function.section
        for index in range(function.first, function.end):
            instruction = code.instructions[index]
            if code.sources[index]:
                instruction = Instruction(*instruction[:5], source=code.sources[index])
            self.instructions.append(instruction)
            self.slot_count += instruction.slots
        self._append_ext(function, start_slot)
        return start_index

    def _append_ext(self, function: _Function, start_slot: int) -> None:
        section = function.section.name
        rebase = start_slot - function.first_slot
        funcs = [r for r in self.ext_func.get(section, ()) if function.first_slot <= r.insn_off // 8 < function.end_slot]
        if not funcs:
            self.missing_func_info = True
        self.func_info += [r._replace(insn_off=r.insn_off // 8 + rebase) for r in funcs]
        self.line_info += [
            r._replace(insn_off=r.insn_off // 8 + rebase)
            for r in self.ext_line.get(section, ())
            if function.first_slot <= r.insn_off // 8 < function.end_slot
        ]

    def relocate(self, function: _Function, start_index: int) -> None:
        """Resolve ``function``'s calls (appending callees first seen), then record its references."""
        code = function.section
        slot = self.placed[(code.name, function.first_slot)]
        core_by_offset = {r.insn_off: r for r in self.core.get(code.name, ())}
        for offset, index in enumerate(range(function.first, function.end)):
            here = start_index + offset
            instruction = self.instructions[here]
            relocation = code.relocations.get(index)
            section_slot = code.slots[index]
            if relocation is not None and relocation.kind == "extern":
                self._reference(here, instruction, relocation, code.name, section_slot)
            elif (instruction.opcode == CALL and instruction.src == BPF_PSEUDO_CALL) or (relocation and relocation.kind == "subprog_addr"):
                self._relocate_call(function, index, here, slot, relocation)
            elif relocation is not None:
                self._reference(here, instruction, relocation, code.name, section_slot)
            core = core_by_offset.get(section_slot * 8)
            if core is not None:
                self.core_refs.append(CoreReference(here, code.name, core.insn_off, core))
            slot += instruction.slots

    def _relocate_call(self, function: _Function, index: int, here: int, slot: int, relocation: Optional[_Relocation]) -> None:
        code = function.section
        instruction = self.instructions[here]
        where = f"call at instruction {code.slots[index]} of section {code.name!r}"
        if relocation is not None and relocation.kind == "call":
            target_slot = relocation.value // 8 + instruction.imm + 1
        elif relocation is not None and relocation.kind == "subprog_addr":
            low = instruction.imm & 0xFFFFFFFF
            target_slot = (relocation.value + (low - (1 << 32) if low >= 1 << 31 else low)) // 8
        elif relocation is None:
            if code is not self.text:
                raise ElfError(f"{where}: a call without relocation out of {code.name!r}; sub-programs must be in .text")
            target_slot = code.slots[index] + instruction.imm + 1
        else:
            raise ElfError(f"{where}: relocated against {relocation.symbol!r}, which is no function")
        if self.text is None:
            raise ElfError(f"{where}: the object has no .text section for the sub-program")
        callee = self.text.function_at(target_slot)
        if callee is None or callee.first_slot != target_slot:
            raise ElfError(f"{where}: target instruction {target_slot} of .text starts no function")
        key = (self.text.name, callee.first_slot)
        if key not in self.placed:
            start = self.append(callee)
            self.relocate(callee, start)
        delta = self.placed[key] - (slot + 1)
        if instruction.opcode == LDDW:
            self.instructions[here] = instruction.replace(src=BPF_PSEUDO_FUNC, imm=delta & 0xFFFFFFFF)
        else:
            self.instructions[here] = instruction.replace(imm=delta)

    def _reference(self, here: int, instruction: Instruction, relocation: _Relocation, section: str, slot: int) -> None:
        kind = relocation.kind
        if kind == "map":
            self.instructions[here] = instruction.replace(src=BPF_PSEUDO_MAP_FD, imm=0)
            self.references.append(Reference(here, "map", relocation.target))
        elif kind == "data":
            low = instruction.imm & 0xFFFFFFFF
            offset = (low - (1 << 32) if low >= 1 << 31 else low) + relocation.value
            self.instructions[here] = instruction.replace(src=BPF_PSEUDO_MAP_VALUE, imm=(offset & 0xFFFFFFFF) << 32)
            self.references.append(Reference(here, "map_value", relocation.target, offset))
        elif kind == "extern":
            self.references.append(self._extern_reference(here, instruction, relocation.target))
        else:
            raise ElfError(f"instruction {slot} of section {section!r}: unexpected {kind} relocation against {relocation.symbol!r}")

    def _extern_reference(self, here: int, instruction: Instruction, target: str) -> Reference:
        kind, _, name = target.partition(":")
        if instruction.opcode == CALL:
            self.instructions[here] = instruction.replace(src=BPF_PSEUDO_KFUNC_CALL, imm=0, off=0)
            return Reference(here, "kfunc", name)
        if kind == "kconfig":  # a value of the .kconfig map, which loading fills from the kernel's config
            offset = self.kconfig_offsets[name]
            self.instructions[here] = instruction.replace(src=BPF_PSEUDO_MAP_VALUE, imm=offset << 32)
            return Reference(here, "map_value", KCONFIG_MAP, offset)
        self.instructions[here] = instruction.replace(imm=0)
        return Reference(here, "ksym", name)


def link_program(function: _Function, text: Optional[CodeSection], btf_ext, kconfig_offsets: Dict[str, int]) -> _Linker:
    """The linked program of ``function``: instructions, references, CO-RE references, func/line info."""
    func = btf_ext.func_info if btf_ext is not None else {}
    line = btf_ext.line_info if btf_ext is not None else {}
    core = btf_ext.core_relo if btf_ext is not None else {}
    linker = _Linker(text, func, line, core, kconfig_offsets)
    start = linker.append(function)
    try:
        linker.relocate(function, start)
    except AsmError as error:
        raise ElfError(f"program {function.name!r}: {error}") from None
    return linker



class ResolvedSymbol(NamedTuple):
    """How a ``__ksym`` extern was resolved: a BTF id (and the fd of the BTF holding it, 0 for vmlinux,
    or for a kfunc its index in the program's fd_array) or, for an untyped one, an address."""

    btf_id: int = 0
    btf_fd: int = 0
    address: int = 0


POISON_KFUNC_BASE = 2002000000  # libbpf's: call 2002000000 + n stands for the missing weak kfunc n


def fill_references(
    instructions: List[Instruction], references: Tuple[Reference, ...], map_fds: Dict[str, int], symbols: Dict[str, ResolvedSymbol]
) -> List[Instruction]:
    """``instructions`` with each reference filled: map fds, value addresses, kernel symbols.

    A ksym missing from ``symbols`` (a weak extern the kernel lacks) gets 0,
    a missing kfunc the poisoned call libbpf writes. ElfError names a map
    or symbol that has no value.
    """
    out = list(instructions)
    for position, reference in enumerate(references):
        instruction = out[reference.index]
        if reference.kind in ("map", "map_value"):
            if reference.target not in map_fds:
                raise ElfError(f"instruction {reference.index} refers to map {reference.target!r}, which has no fd")
            fd = map_fds[reference.target]
            imm = fd if reference.kind == "map" else fd | (reference.offset & 0xFFFFFFFF) << 32
            out[reference.index] = instruction.replace(imm=imm)
        elif reference.kind == "ksym":
            symbol = symbols.get(reference.target)
            if symbol is not None and symbol.btf_id:
                out[reference.index] = instruction.replace(src=BPF_PSEUDO_BTF_ID, imm=symbol.btf_id | symbol.btf_fd << 32)
            else:
                out[reference.index] = instruction.replace(src=0, imm=symbol.address if symbol else 0)
        elif reference.kind == "kfunc":
            symbol = symbols.get(reference.target)
            if symbol is None or not symbol.btf_id:
                out[reference.index] = Instruction(CALL, 0, 0, 0, POISON_KFUNC_BASE + position, source=instruction.source)
            else:
                out[reference.index] = instruction.replace(src=BPF_PSEUDO_KFUNC_CALL, imm=symbol.btf_id, off=symbol.btf_fd)
        else:
            raise ElfError(f"instruction {reference.index}: unknown reference kind {reference.kind!r}")
    return out
