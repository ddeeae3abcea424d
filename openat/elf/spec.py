"""``load_spec``: a clang-compiled BPF object read into a :class:`CollectionSpec` (pure: bytes in, no syscalls).

The spec is everything the object says, ready to load: programs (linked
with their sub-programs, see :mod:`openat.elf.programs`), maps (BTF-defined
and global data, see :mod:`openat.elf.maps`), global variables (settable
before load, see :mod:`openat.elf.variables`), externs, and the object's
BTF. Three things depend on the kernel and are pure functions of what the
caller gives: :meth:`CollectionSpec.resolve_core` (CO-RE against a target
BTF), :meth:`CollectionSpec.kernel_btf` (the BTF blob for BPF_BTF_LOAD,
fixed up and sanitized for the kernel's features) and
:func:`openat.elf.kconfig.kconfig_data` (the ``.kconfig`` map's bytes).
:meth:`CollectionSpec.load` is the one bridge upward: it imports
:mod:`openat.collection` when called, and nothing else in ``openat.elf``
imports above the pure layers.
"""

from __future__ import annotations

import os
import struct
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

from ..asm.errors import AsmError
from ..btf import Btf, BtfError, BtfKind
from ..btf.core import CandidateCache, CoreResult, resolve
from ..btf.ext import BtfExt, CoreRelo
from ..btf.writer import BtfFeatures, BtfPatch, sanitize
from ..uapi import BPF_F_MMAPABLE, BPF_F_RDONLY_PROG, MapType
from .errors import ElfError
from .maps import MapSpec, data_map, data_map_kind, internal_map_name, parse_maps_section
from .programs import KCONFIG_MAP, CodeSection, ProgramSpec, RelocationTargets, classify_relocations, link_program, split_functions
from .reader import STB_WEAK, STT_OBJECT, STT_SECTION, STV_HIDDEN, STV_INTERNAL, ElfFile
from .sections import match_section
from .variables import VariableSpec

__all__ = ["CollectionSpec", "ExternSpec", "SectionSummary", "load_spec"]

KSYMS_SECTION = ".ksyms"
MAPS_SECTION = ".maps"
TEXT_SECTION = ".text"
BTF_VAR_STATIC = 0
BTF_VAR_GLOBAL_ALLOCATED = 1
BTF_FUNC_GLOBAL = 1
DUMMY_KSYM = "dummy_ksym"


class ExternSpec(NamedTuple):
    """An undefined global the loader supplies.

    ``kind`` ``"kconfig"`` (a value of the running kernel's config, or
    LINUX_KERNEL_VERSION..., at ``offset`` of the ``.kconfig`` map) or
    ``"ksym"`` (a kernel symbol: typed variables by BTF id, untyped by
    address, functions (kfuncs) by BTF id). ``type_id`` is its VAR or FUNC
    in the object's BTF, ``value_type_id`` what it holds; ``weak`` ones may
    be missing (then zero).
    """

    name: str
    kind: str
    type_id: int
    value_type_id: int
    weak: bool
    is_function: bool = False
    offset: int = 0
    size: int = 0
    align: int = 1

    @property
    def typed(self) -> bool:
        """A ksym with a type (``extern const struct rq runqueues __ksym``): resolved through the kernel's BTF."""
        return self.is_function or self.value_type_id != 0


class SectionSummary(NamedTuple):
    """A section as ``python -m openat.elf`` lists it: what openat makes of it."""

    index: int
    name: str
    size: int
    role: str


class CollectionSpec:
    """An object's programs, maps, variables and externs, as :func:`load_spec` read them.

    ``programs``, ``maps`` and ``variables`` are dicts by name (global data
    maps are named after their section: ``.rodata``); ``btf`` is the
    object's BTF, ``btf_ext`` its ``.BTF.ext`` (None when absent).
    """

    def __init__(self, name: str, elf: ElfFile) -> None:
        self.name = name
        self.elf = elf
        self.license = ""
        self.kern_version = 0
        self.btf: Optional[Btf] = None
        self.btf_ext: Optional[BtfExt] = None
        self.programs: Dict[str, ProgramSpec] = {}
        self.maps: Dict[str, MapSpec] = {}
        self.variables: Dict[str, VariableSpec] = {}
        self.externs: Dict[str, ExternSpec] = {}
        self.sections: List[SectionSummary] = []
        self._symbol_offsets: Dict[int, Dict[str, int]] = {}
        self._hidden: Dict[int, set] = {}

    # --- CO-RE ----------------------------------------------------------------------

    def core_relocations(self, programs: Optional[List[str]] = None) -> List[Tuple[str, CoreRelo]]:
        """The CO-RE relocations the given programs (default: those to autoload) carry, in .BTF.ext order."""
        if self.btf_ext is None:
            return []
        chosen = [self.programs[name] for name in programs] if programs is not None else [p for p in self.programs.values() if p.autoload]
        wanted = {(ref.section, ref.insn_off) for program in chosen for ref in program.core_relocations}
        return [
            (section, relo)
            for section, records in self.btf_ext.core_relo.items()
            for relo in records
            if (section, relo.insn_off) in wanted
        ]

    def resolve_core(self, target: Btf, programs: Optional[List[str]] = None) -> Dict[Tuple[str, int], CoreResult]:
        """Each CO-RE relocation resolved against ``target`` (a kernel's BTF): ``{(section, insn_off): result}``.

        Resolved in .BTF.ext order with one candidate cache, as libbpf does;
        ElfError when a relocation cannot be resolved at all (poisoning is a result, not an error).
        """
        if self.btf is None:
            return {}
        cache = CandidateCache(target)
        results: Dict[Tuple[str, int], CoreResult] = {}
        for section, relo in self.core_relocations(programs):
            where = f"CO-RE relocation of section {section!r} at instruction {relo.insn_off // 8}"
            try:
                results[(section, relo.insn_off)] = resolve(relo, self.btf, cache, where)
            except BtfError as error:
                raise ElfError(str(error)) from None
        return results

    # --- BTF for the kernel ----------------------------------------------------------------

    def kernel_btf(self, features: BtfFeatures = BtfFeatures()) -> bytes:
        """The object's BTF as BPF_BTF_LOAD takes it: DATASEC sizes and offsets filled in from the ELF
        symbols, externs turned into allocated variables, kinds the kernel lacks rewritten (see
        :mod:`openat.btf.writer`), every type id unchanged (plus a ``dummy_ksym`` VAR when kfuncs are
        declared, and an ``enum64_placeholder`` INT when ENUM64 is rewritten, both appended)."""
        if self.btf is None:
            raise ElfError("the object has no .BTF section")
        try:
            patch = BtfPatch(self.btf)
            self._fix_externs(patch)
            self._fix_datasecs(patch)
            return sanitize(self.btf, features, patch).blob()
        except BtfError as error:
            raise ElfError(f".BTF: {error}") from None

    def _fix_externs(self, patch: BtfPatch) -> None:
        btf = self.btf
        assert btf is not None
        for section in (KSYMS_SECTION, KCONFIG_MAP):
            try:
                datasec = btf.find(section, BtfKind.DATASEC)
            except BtfError:
                continue
            entries = btf.type(datasec).entries
            if section == KSYMS_SECTION:
                self._fix_ksyms(patch, datasec, entries)
            else:
                for item, entry in enumerate(entries):
                    extern = self.externs.get(btf.name_of(entry.type_id))
                    patch.set_word(entry.type_id, 3, BTF_VAR_GLOBAL_ALLOCATED)
                    patch.set_word(datasec, 3 + 3 * item + 1, extern.offset if extern else 0)
                kconfig = self.maps.get(KCONFIG_MAP)
                patch.set_word(datasec, 2, kconfig.value_size if kconfig else 0)

    def _fix_ksyms(self, patch: BtfPatch, datasec: int, entries) -> None:
        """libbpf's way: every .ksyms entry a 4-byte allocated int variable; kfuncs global, via a dummy VAR."""
        btf = self.btf
        assert btf is not None
        int_id = next((i for i in range(1, len(btf) + 1) if btf.kind(i) == BtfKind.INT and btf.type(i).bits == 32), 0)
        dummy = 0
        for item, entry in enumerate(entries):
            if btf.kind(entry.type_id) == BtfKind.FUNC:
                if not dummy:
                    dummy = patch.add_type(patch.add_string(DUMMY_KSYM), BtfKind.VAR << 24, int_id, BTF_VAR_GLOBAL_ALLOCATED)
                proto = btf.type(entry.type_id).type_id or 0
                for position, param in enumerate(btf.type(proto).params if proto else ()):
                    if param.type_id and not param.name:
                        patch.set_word(proto, 3 + 2 * position, patch.word(dummy, 0))
                patch.set_word(datasec, 3 + 3 * item, dummy)
                patch.set_info(entry.type_id, BtfKind.FUNC, BTF_FUNC_GLOBAL)
            else:
                patch.set_word(entry.type_id, 2, int_id)
                patch.set_word(entry.type_id, 3, BTF_VAR_GLOBAL_ALLOCATED)
            patch.set_word(datasec, 3 + 3 * item + 1, 4 * item)
            patch.set_word(datasec, 3 + 3 * item + 2, 4)
        patch.set_word(datasec, 2, 4 * len(entries))

    def _fix_datasecs(self, patch: BtfPatch) -> None:
        """Sizes from the ELF sections, global variables' offsets from their symbols, entries sorted by offset."""
        btf = self.btf
        assert btf is not None
        for type_id in range(1, len(btf) + 1):
            if btf.kind(type_id) != BtfKind.DATASEC:
                continue
            name = btf.name_of(type_id)
            vlen = patch.vlen(type_id)
            if name not in (KSYMS_SECTION, KCONFIG_MAP):
                self._fix_datasec(patch, type_id, name, vlen)
            entries = sorted((patch.word(type_id, 3 + 3 * i), patch.word(type_id, 4 + 3 * i), patch.word(type_id, 5 + 3 * i)) for i in range(vlen))
            entries.sort(key=lambda entry: entry[1])
            for item, entry in enumerate(entries):
                for word, value in enumerate(entry):
                    patch.set_word(type_id, 3 + 3 * item + word, value)

    def _fix_datasec(self, patch: BtfPatch, type_id: int, name: str, vlen: int) -> None:
        section = self.elf.by_name.get(name)
        if section is None:
            raise ElfError(f".BTF: DATASEC {name!r} names no ELF section")
        fix_offsets = patch.word(type_id, 2) == 0
        if fix_offsets:
            patch.set_word(type_id, 2, section.size)
        offsets = self._symbol_offsets.get(section.index, {})
        hidden = self._hidden.get(section.index, set())
        for item in range(vlen):
            var = patch.word(type_id, 3 + 3 * item)
            if patch.kind(var) != BtfKind.VAR or patch.word(var, 3) not in (BTF_VAR_GLOBAL_ALLOCATED,):
                continue  # static variables have their offsets already; externs are elsewhere
            var_name = patch.string(patch.word(var, 0))
            if var_name not in offsets:
                raise ElfError(f".BTF: variable {var_name!r} of {name} has no ELF symbol")
            if fix_offsets:
                patch.set_word(type_id, 3 + 3 * item + 1, offsets[var_name])
            if var_name in hidden:
                patch.set_word(var, 3, BTF_VAR_STATIC)

    # --- loading ----------------------------------------------------------------------

    def load(self, **options):
        """Load everything into the running kernel: a :class:`openat.collection.Collection`.

        The bridge to the layers above: this imports :mod:`openat.collection`
        when called (so ``openat.elf`` stays pure); ``options`` are those of
        :meth:`openat.collection.Collection.load`.
        """
        from ..collection import Collection

        return Collection.load(self, **options)

    def __repr__(self) -> str:
        return f"<CollectionSpec {self.name!r}: {len(self.programs)} programs, {len(self.maps)} maps, {len(self.variables)} variables>"


# --- reading the object --------------------------------------------------------------------------


def load_spec(source: Union[str, os.PathLike, bytes, bytearray, memoryview], *, name: Optional[str] = None) -> CollectionSpec:
    """Read a BPF object (a path, or its bytes) into a :class:`CollectionSpec`. Pure: no syscalls, any OS.

    ``name`` is the object's name (what global data maps' kernel names
    start with): by default the file name up to its first dot, as libbpf
    does (``minimal.bpf.o`` -> ``minimal``). Anything wrong with the
    object raises :class:`~openat.elf.errors.ElfError` naming the section
    or symbol.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        object_name = name or "object"
    else:
        path = os.fspath(source)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as error:
            raise ElfError(f"{path}: {error.strerror or error}") from None
        object_name = name or os.path.basename(path).split(".", 1)[0] or "object"
    try:
        return _Builder(ElfFile(data), object_name).build()
    except BtfError as error:
        raise ElfError(f".BTF: {error}") from None
    except AsmError as error:
        raise ElfError(f"code: {error}") from None


class _Builder:
    def __init__(self, elf: ElfFile, name: str) -> None:
        self.elf = elf
        self.spec = CollectionSpec(name, elf)
        self.roles: Dict[int, str] = {}

    def build(self) -> CollectionSpec:
        self._metadata()
        self._btf()
        self._symbols()
        self._externs()
        self._data_maps()
        self._btf_maps()
        self._programs()
        self._variables()
        self._order_maps()
        self.spec.sections = [
            SectionSummary(s.index, s.name, s.size, self.roles.get(s.index, _default_role(s.name)))
            for s in self.elf.sections[1:]
        ]
        return self.spec

    def _metadata(self) -> None:
        license_section = self.elf.by_name.get("license")
        if license_section is not None:
            self.spec.license = license_section.data.split(b"\0", 1)[0].decode("utf-8", errors="replace")
            self.roles[license_section.index] = f"license {self.spec.license!r}"
        version = self.elf.by_name.get("version")
        if version is not None:
            if len(version.data) != 4:
                raise ElfError(f"section 'version' is {len(version.data)} bytes, not a 4-byte kernel version")
            (self.spec.kern_version,) = struct.unpack("<I", version.data)
            self.roles[version.index] = f"kernel version 0x{self.spec.kern_version:x}"

    def _btf(self) -> None:
        section = self.elf.by_name.get(".BTF")
        if section is None:
            return
        try:
            btf = Btf(section.data)
            len(btf)  # walk every record now: a torn section fails here, not during a lookup
        except BtfError as error:
            raise ElfError(f"section '.BTF': {error}") from None
        self.spec.btf = btf
        self.roles[section.index] = f"BTF, {len(btf)} types"
        ext = self.elf.by_name.get(".BTF.ext")
        if ext is not None:
            try:
                self.spec.btf_ext = BtfExt(ext.data, btf)
            except BtfError as error:
                raise ElfError(f"section '.BTF.ext': {error}") from None
            self.roles[ext.index] = "BTF.ext: func_info, line_info, CO-RE relocations"

    def _symbols(self) -> None:
        for symbol in self.elf.symbols:
            if symbol.type in (STT_OBJECT, 0) and symbol.name and symbol.section and symbol.type != STT_SECTION:
                self.spec._symbol_offsets.setdefault(symbol.section, {})[symbol.name] = symbol.value
                if symbol.visibility in (STV_HIDDEN, STV_INTERNAL):
                    self.spec._hidden.setdefault(symbol.section, set()).add(symbol.name)

    # --- externs --------------------------------------------------------------------------

    def _externs(self) -> None:
        btf = self.spec.btf
        externs = [s for s in self.elf.symbols if s.is_extern and s.name]
        if not externs:
            return
        if btf is None:
            raise ElfError(f"extern {externs[0].name!r} needs .BTF to say what it is (compile with -g)")
        sections = {}
        for section in (KCONFIG_MAP, KSYMS_SECTION):
            try:
                datasec = btf.find(section, BtfKind.DATASEC)
            except BtfError:
                continue
            for entry in btf.type(datasec).entries:
                sections[btf.name_of(entry.type_id)] = (section, entry.type_id)
        found: List[ExternSpec] = []
        for symbol in externs:
            if symbol.name not in sections:
                raise ElfError(f"extern {symbol.name!r} is in neither .kconfig nor .ksyms (declare it __kconfig or __ksym)")
            section, type_id = sections[symbol.name]
            found.append(self._extern(symbol.name, section, type_id, symbol.bind == STB_WEAK))
        self._layout_kconfig([e for e in found if e.kind == "kconfig"])
        for extern in found:
            if extern.kind == "ksym":
                self.spec.externs[extern.name] = extern

    def _extern(self, name: str, section: str, type_id: int, weak: bool) -> ExternSpec:
        btf = self.spec.btf
        assert btf is not None
        t = btf.type(type_id)
        is_function = t.kind == BtfKind.FUNC
        if section == KCONFIG_MAP:
            if is_function:
                raise ElfError(f"extern function {name!r} cannot be __kconfig")
            value = t.type_id or 0
            size, align = btf.size_of(value), btf.align_of(value)
            return ExternSpec(name, "kconfig", type_id, value, weak, False, 0, size, align)
        value = 0 if is_function else btf.resolve(t.type_id or 0)
        return ExternSpec(name, "ksym", type_id, value, weak, is_function)

    def _layout_kconfig(self, externs: List[ExternSpec]) -> None:
        """Offsets in the .kconfig map, as libbpf lays them out: by alignment (largest first), size, name."""
        if not externs:
            return
        offset = 0
        for extern in sorted(externs, key=lambda e: (-e.align, e.size, e.name)):
            start = (offset + extern.align - 1) // extern.align * extern.align
            self.spec.externs[extern.name] = extern._replace(offset=start)
            offset = start + extern.size
        btf = self.spec.btf
        assert btf is not None
        value_type_id = btf.find(KCONFIG_MAP, BtfKind.DATASEC)
        self.spec.maps[KCONFIG_MAP] = MapSpec(
            KCONFIG_MAP, MapType.ARRAY, 4, offset, 1, BPF_F_RDONLY_PROG | BPF_F_MMAPABLE, section=KCONFIG_MAP, kind="kconfig",
            kernel_name=internal_map_name(self.spec.name, KCONFIG_MAP), value_type_id=value_type_id, data=bytearray(offset), btf=btf,
        )

    # --- maps -----------------------------------------------------------------------------

    def _data_maps(self) -> None:
        for section in self.elf.sections[1:]:
            kind = data_map_kind(section.name)
            if kind is None or not section.size or section.is_code:
                continue
            spec = data_map(self.spec.name, section.name, kind, section.data, section.size, self.spec.btf)
            spec.check()
            self.spec.maps[section.name] = spec
            self.roles[section.index] = f"global data ({kind}): map {spec.kernel_name!r}, {section.size} bytes"

    def _btf_maps(self) -> None:
        section = self.elf.by_name.get(MAPS_SECTION)
        if section is None:
            legacy = self.elf.by_name.get("maps")
            if legacy is not None and legacy.size:
                raise ElfError("section 'maps' holds legacy struct bpf_map_def maps; define them in SEC(\".maps\") with __uint/__type")
            return
        if self.elf.relocations.get(section.index):
            raise ElfError("section '.maps' has relocations: initial values of prog arrays and map-in-maps (__array(values, ...) = {...}) are not supported")
        offsets = self.spec._symbol_offsets.get(section.index, {})
        by_offset: Dict[int, str] = {}
        for offset, spec in parse_maps_section(self.spec.btf, MAPS_SECTION, offsets):
            spec.check()
            if spec.name in self.spec.maps:
                raise ElfError(f"map {spec.name!r} is defined twice")
            self.spec.maps[spec.name] = spec
            by_offset[offset] = spec.name
        self._maps_by_offset = by_offset
        self.roles[section.index] = f"maps: {', '.join(by_offset.values()) or 'none'}"

    # --- programs -----------------------------------------------------------------------------

    def _programs(self) -> None:
        spec, elf = self.spec, self.elf
        ext = spec.btf_ext
        codes: Dict[int, CodeSection] = {}
        for section in elf.sections[1:]:
            if section.is_code and section.size:
                code = CodeSection(section, ext.line_info.get(section.name, []) if ext else [], spec.btf)
                split_functions(code, elf.symbols)
                if not code.functions:
                    raise ElfError(f"section {section.name!r} has code but no function symbol")
                codes[section.index] = code
        text = next((c for c in codes.values() if c.name == TEXT_SECTION), None)
        maps_section = elf.by_name.get(MAPS_SECTION)
        targets = RelocationTargets(
            text.index if text else -1,
            maps_section.index if maps_section else -1,
            getattr(self, "_maps_by_offset", {}),
            {s.index: s.name for s in elf.sections[1:] if s.name in spec.maps and spec.maps[s.name].kind},
            self._extern_target,
        )
        for code in codes.values():
            classify_relocations(elf, code, targets)
        kconfig_offsets = {e.name: e.offset for e in spec.externs.values() if e.kind == "kconfig"}
        for code in codes.values():
            if code is text:
                self.roles[code.index] = f"sub-programs: {', '.join(f.name for f in code.functions)}"
                continue
            for function in code.functions:
                if function.name in spec.programs:
                    raise ElfError(f"two programs are named {function.name!r}")
                spec.programs[function.name] = self._program(function, text, kconfig_offsets)
            self.roles[code.index] = f"programs: {', '.join(f.name for f in code.functions)}"

    def _extern_target(self, symbol) -> Optional[str]:
        extern = self.spec.externs.get(symbol.name)
        return f"{extern.kind}:{extern.name}" if extern else None

    def _program(self, function, text: Optional[CodeSection], kconfig_offsets: Dict[str, int]) -> ProgramSpec:
        spec = self.spec
        linker = link_program(function, text, spec.btf_ext, kconfig_offsets)
        match = match_section(function.section.name)
        keep_info = spec.btf is not None and spec.btf_ext is not None and not linker.missing_func_info
        sizes = spec.btf_ext.record_sizes if spec.btf_ext is not None else {}
        program = ProgramSpec(
            function.name, function.section.name, 0, 0, "", spec.license, linker.instructions,
            references=tuple(linker.references), core_relocations=tuple(linker.core_refs),
            func_info=tuple(linker.func_info) if keep_info else (), line_info=tuple(linker.line_info) if keep_info else (),
            func_info_record_size=sizes.get("func_info", 8), line_info_record_size=sizes.get("line_info", 16),
            kern_version=spec.kern_version, subprograms=tuple(linker.order[1:]), btf=spec.btf,
        )
        if match is None:
            program.unsupported = f"section {function.section.name!r} is not one libbpf's section names know"
            program.autoload = False
        else:
            program.prog_type = match.definition.prog_type
            program.attach_type = match.definition.attach_type
            program.attach_to = match.attach_to
            program.prog_flags = match.prog_flags
            program.autoload = match.autoload
            program.definition = match.definition
        return program

    def _order_maps(self) -> None:
        """libbpf's order (the order maps are created in): .maps maps, global data by section, .kconfig."""
        maps = self.spec.maps
        order = sorted(maps, key=lambda name: (bool(maps[name].kind), maps[name].kind == "kconfig"))
        self.spec.maps = {name: maps[name] for name in order}

    # --- variables --------------------------------------------------------------------------

    def _variables(self) -> None:
        spec, btf = self.spec, self.spec.btf
        if btf is None:
            return
        for map_spec in spec.maps.values():
            if map_spec.kind not in ("data", "rodata", "bss") or not map_spec.value_type_id:
                continue
            section = self.elf.by_name[map_spec.section]
            offsets = spec._symbol_offsets.get(section.index, {})
            for entry in btf.type(map_spec.value_type_id).entries:
                var = btf.type(entry.type_id)
                if var.kind != BtfKind.VAR:
                    continue
                static = var.linkage == BTF_VAR_STATIC
                offset = entry.offset if static else offsets.get(var.name, entry.offset)
                size = btf.size_of(var.type_id or 0)
                if offset + size > map_spec.value_size:
                    raise ElfError(f"variable {var.name!r} ({size} bytes at {offset}) lies outside {map_spec.section} ({map_spec.value_size} bytes)")
                key = var.name if var.name not in spec.variables else f"{map_spec.section}:{var.name}"
                spec.variables[key] = VariableSpec(var.name, map_spec.section, offset, size, var.type_id or 0, btf, map_spec, static)


def _default_role(name: str) -> str:
    if name.startswith(".rel"):
        return "relocations"
    if name.startswith(".debug") or name in (".llvm_addrsig", ".strtab", ".symtab"):
        return "debug info / symbols" if name.startswith(".debug") else "symbols and names"
    return "ignored"

