"""ELF64 little-endian relocatable objects, as clang writes BPF code: sections, symbols, relocations (pure).

Only what a BPF loader needs is decoded, and every offset is checked
against the file before it is read, so a truncated or corrupted file gives
an :class:`~openat.elf.errors.ElfError` naming the part that is wrong.
"""

from __future__ import annotations

import struct
from typing import Dict, List, NamedTuple, Optional

from .errors import ElfError

__all__ = [
    "EM_BPF",
    "ElfFile",
    "Relocation",
    "Section",
    "Symbol",
    "SHF_EXECINSTR",
    "SHN_UNDEF",
    "STB_GLOBAL",
    "STB_LOCAL",
    "STB_WEAK",
    "STT_FUNC",
    "STT_OBJECT",
    "STT_SECTION",
]

ELF_MAGIC = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2LSB = 1
ET_REL = 1
EM_BPF = 247
SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_RELA = 4
SHT_NOBITS = 8
SHT_REL = 9
SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
SHN_UNDEF = 0
SHN_LORESERVE = 0xFF00
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2
SHN_XINDEX = 0xFFFF
STB_LOCAL = 0
STB_GLOBAL = 1
STB_WEAK = 2
STT_NOTYPE = 0
STT_OBJECT = 1
STT_FUNC = 2
STT_SECTION = 3
STV_HIDDEN = 2
STV_INTERNAL = 1

_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
_SECTION = struct.Struct("<IIQQQQIIQQ")
_SYMBOL = struct.Struct("<IBBHQQ")
_REL = struct.Struct("<QQ")
_RELA = struct.Struct("<QQq")

# A few machines by number, so a wrong object says what it is.
_MACHINES = {3: "i386", 40: "arm", 62: "x86-64", 183: "aarch64", 243: "riscv", 21: "ppc64", 22: "s390"}


class Section(NamedTuple):
    """A section header, its name, and its bytes (empty for SHT_NOBITS: ``.bss``)."""

    index: int
    name: str
    type: int
    flags: int
    size: int
    link: int
    info: int
    alignment: int
    entry_size: int
    data: bytes

    @property
    def is_code(self) -> bool:
        return self.type == SHT_PROGBITS and bool(self.flags & SHF_EXECINSTR)


class Symbol(NamedTuple):
    """An ELF64 symbol; ``section`` is st_shndx (0: undefined, an extern)."""

    index: int
    name: str
    bind: int
    type: int
    visibility: int
    section: int
    value: int
    size: int

    @property
    def is_extern(self) -> bool:
        """An undefined global (a ``__kconfig``/``__ksym`` extern): clang writes them as untyped symbols."""
        return self.section == SHN_UNDEF and self.bind in (STB_GLOBAL, STB_WEAK) and self.type == STT_NOTYPE


class Relocation(NamedTuple):
    """One relocation of ``target`` section: at byte ``offset``, against symbol ``symbol`` (index)."""

    offset: int
    symbol: int
    type: int
    addend: int = 0


class ElfFile:
    """A parsed object: ``sections`` (by index), ``by_name``, ``symbols``, ``relocations`` (target index -> list)."""

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self._parse_header()
        self.sections: List[Section] = self._parse_sections()
        self.by_name: Dict[str, Section] = {}
        for section in self.sections[1:]:
            self.by_name.setdefault(section.name, section)
        self.symbols: List[Symbol] = self._parse_symbols()
        self.relocations: Dict[int, List[Relocation]] = self._parse_relocations()

    # --- header -------------------------------------------------------------------

    def _parse_header(self) -> None:
        data = self.data
        if len(data) < 4 or data[:4] != ELF_MAGIC:
            raise ElfError("not an ELF file (no \\x7fELF magic)")
        if len(data) < _HEADER.size:
            raise ElfError(f"truncated ELF header: {len(data)} bytes, 64 needed")
        (ident, e_type, machine, _, _, _, shoff, _, _, _, _, shentsize, shnum, shstrndx) = _HEADER.unpack_from(data)
        if ident[4] != ELFCLASS64:
            raise ElfError(f"not a 64-bit ELF object (class {ident[4]}): BPF objects are ELF64")
        if ident[5] != ELFDATA2LSB:
            raise ElfError("big-endian ELF object: only little-endian BPF (clang -target bpfel, or bpf on x86/arm64) is supported")
        if machine != EM_BPF:
            name = _MACHINES.get(machine, "machine")
            raise ElfError(f"not a BPF object: ELF machine is {name} ({machine}), BPF is {EM_BPF} (compile with clang -target bpf)")
        if e_type != ET_REL:
            raise ElfError(f"ELF type {e_type} is not a relocatable object (ET_REL, what clang -c writes)")
        if shnum == 0 or shstrndx == SHN_XINDEX:
            raise ElfError("ELF extended section numbering (more than 65279 sections) is not supported")
        if shentsize != _SECTION.size:
            raise ElfError(f"section header entries of {shentsize} bytes, ELF64 has {_SECTION.size}")
        if shoff + shnum * shentsize > len(data) or shoff < _HEADER.size:
            raise ElfError(f"section header table ({shnum} entries at byte {shoff}) lies outside the {len(data)}-byte file")
        if shstrndx >= shnum:
            raise ElfError(f"section name table index {shstrndx} out of range (there are {shnum} sections)")
        self._shoff, self._shnum, self._shstrndx = shoff, shnum, shstrndx

    def _parse_sections(self) -> List[Section]:
        raw = [_SECTION.unpack_from(self.data, self._shoff + i * _SECTION.size) for i in range(self._shnum)]
        names_header = raw[self._shstrndx]
        names = self._section_bytes(self._shstrndx, names_header, "section name table")
        sections = []
        for index, (name_off, sh_type, flags, _, offset, size, link, info, align, entsize) in enumerate(raw):
            name = _string(names, name_off, f"name of section {index}")
            data = b"" if sh_type == SHT_NOBITS else self._section_bytes(index, raw[index], f"section {name!r}")
            sections.append(Section(index, name, sh_type, flags, size, link, info, align, entsize, data))
        return sections

    def _section_bytes(self, index: int, header: tuple, what: str) -> bytes:
        sh_type, offset, size = header[1], header[4], header[5]
        if sh_type == SHT_NOBITS or index == 0:
            return b""
        if offset + size > len(self.data):
            raise ElfError(f"{what} ({size} bytes at {offset}) runs past the end of the {len(self.data)}-byte file")
        return self.data[offset : offset + size]

    # --- symbols and relocations ---------------------------------------------------------

    def _parse_symbols(self) -> List[Symbol]:
        tables = [s for s in self.sections if s.type == SHT_SYMTAB]
        if not tables:
            return []
        if len(tables) > 1:
            raise ElfError("more than one symbol table")
        table = tables[0]
        if table.entry_size != _SYMBOL.size or table.size % _SYMBOL.size:
            raise ElfError(f"symbol table {table.name!r}: {table.size} bytes are not whole {_SYMBOL.size}-byte symbols")
        if not 0 < table.link < len(self.sections) or self.sections[table.link].type != SHT_STRTAB:
            raise ElfError(f"symbol table {table.name!r} links to section {table.link}, which is no string table")
        strings = self.sections[table.link].data
        symbols = []
        for index in range(table.size // _SYMBOL.size):
            name_off, info, other, shndx, value, size = _SYMBOL.unpack_from(table.data, index * _SYMBOL.size)
            name = _string(strings, name_off, f"name of symbol {index}")
            if shndx >= len(self.sections) and shndx < SHN_LORESERVE:
                raise ElfError(f"symbol {name or index!r} is in section {shndx}, which does not exist")
            symbols.append(Symbol(index, name, info >> 4, info & 0xF, other & 0x3, shndx, value, size))
        return symbols

    def _parse_relocations(self) -> Dict[int, List[Relocation]]:
        relocations: Dict[int, List[Relocation]] = {}
        for section in self.sections:
            if section.type not in (SHT_REL, SHT_RELA):
                continue
            codec = _REL if section.type == SHT_REL else _RELA
            if section.size % codec.size:
                raise ElfError(f"relocation section {section.name!r}: {section.size} bytes are not whole {codec.size}-byte entries")
            if not 0 < section.info < len(self.sections):
                raise ElfError(f"relocation section {section.name!r} applies to section {section.info}, which does not exist")
            entries = relocations.setdefault(section.info, [])
            for start in range(0, section.size, codec.size):
                fields = codec.unpack_from(section.data, start)
                offset, info = fields[0], fields[1]
                symbol = info >> 32
                if symbol >= len(self.symbols):
                    target = self.sections[section.info].name
                    raise ElfError(f"relocation in {target!r} at byte {offset} refers to symbol {symbol}, which does not exist")
                entries.append(Relocation(offset, symbol, info & 0xFFFFFFFF, fields[2] if len(fields) > 2 else 0))
        return relocations

    def section(self, index: int) -> Optional[Section]:
        """Section ``index``, or None for 0 and the reserved indices (SHN_ABS, SHN_COMMON, ...)."""
        if 0 < index < len(self.sections):
            return self.sections[index]
        return None

    def symbol_name(self, symbol: Symbol) -> str:
        """A symbol's name; a section symbol (which has none) is named after its section."""
        if symbol.name or symbol.type != STT_SECTION:
            return symbol.name
        section = self.section(symbol.section)
        return section.name if section else f"section {symbol.section}"


def _string(table: bytes, offset: int, what: str) -> str:
    if offset == 0:
        return ""
    if offset >= len(table):
        raise ElfError(f"{what}: string offset {offset} is outside its {len(table)}-byte string table")
    end = table.find(b"\0", offset)
    if end < 0:
        raise ElfError(f"{what}: string at offset {offset} is not NUL-terminated")
    return table[offset:end].decode("utf-8", errors="replace")
