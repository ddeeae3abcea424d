"""Bad objects: each a specific one-line ElfError naming what is wrong, never a traceback from struct or IndexError.

Hand-made corruptions check the messages; hypothesis then throws random
bytes and mutated valid objects at the parser (and at what reads the
parsed result: the listing, the kernel BTF, CO-RE against the object's own
BTF), and only ElfError may come out.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openat.btf import Btf, BtfKind
from openat.btf.writer import BtfFeatures
from openat.elf import ElfError, ElfFile, apply_core, fill_references, load_spec
from openat.elf.__main__ import render

from .objects import FIXTURE_NAMES, fixture

SECTION_HEADER = struct.Struct("<IIQQQQIIQQ")
SYMBOL = struct.Struct("<IBBHQQ")


def _valid(name: str = "maps") -> bytearray:
    return bytearray(fixture(name).read_bytes())


def _section(data: bytes, name: str):
    """(file offset of the section's header, its offset, its size)."""
    elf = ElfFile(bytes(data))
    section = elf.by_name[name]
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    header = shoff + section.index * SECTION_HEADER.size
    _, _, _, _, offset, size, *_ = SECTION_HEADER.unpack_from(data, header)
    return header, offset, size


def _expect(data: bytes, message: str) -> str:
    with pytest.raises(ElfError, match=message) as caught:
        load_spec(bytes(data))
    text = str(caught.value)
    assert "\n" not in text
    return text


def test_not_elf():
    _expect(b"", "not an ELF file")
    _expect(b"#!/bin/sh\necho hi\n", "not an ELF file")


@pytest.mark.parametrize("length", [4, 16, 63])
def test_truncated_header(length):
    _expect(_valid()[:length], "truncated ELF header")


def test_truncated_anywhere_after_the_header():
    data = _valid()
    for length in range(64, len(data), max(1, len(data) // 97)):
        _expect(data[:length], "runs past the end|lies outside|truncated|out of range|too short")


def test_wrong_class_endianness_machine_and_type():
    data = _valid()
    data[4] = 1
    _expect(data, "not a 64-bit ELF object")
    data = _valid()
    data[5] = 2
    _expect(data, "big-endian ELF object")
    data = _valid()
    struct.pack_into("<H", data, 18, 62)
    _expect(data, r"not a BPF object: ELF machine is x86-64 \(62\)")
    data = _valid()
    struct.pack_into("<H", data, 16, 2)
    _expect(data, "not a relocatable object")


def test_a_relocation_against_a_symbol_that_does_not_exist():
    data = _valid()
    _, offset, _ = _section(data, ".relraw_tp/sys_enter")
    info = struct.unpack_from("<Q", data, offset + 8)[0]
    struct.pack_into("<Q", data, offset + 8, (0xFFFF << 32) | (info & 0xFFFFFFFF))
    _expect(data, "relocation in 'raw_tp/sys_enter' at byte .* refers to symbol 65535, which does not exist")


def test_a_map_whose_symbol_is_gone():
    data = _valid()
    elf = ElfFile(bytes(data))
    symbol = next(s for s in elf.symbols if s.name == "hash")
    _, table, _ = _section(data, ".symtab")
    struct.pack_into("<H", data, table + symbol.index * SYMBOL.size + 6, 0)
    _expect(data, "map 'hash' in .maps: no ELF symbol of that name in .maps")


def test_a_relocation_against_a_symbol_defined_nowhere():
    data = _valid()
    elf = ElfFile(bytes(data))
    symbol = next(s for s in elf.symbols if s.name == "seq")
    _, table, _ = _section(data, ".symtab")
    struct.pack_into("<H", data, table + symbol.index * SYMBOL.size + 6, 0)  # st_shndx = SHN_UNDEF
    _expect(data, "relocation against 'seq' at instruction .* of section 'raw_tp/sys_enter': symbol 'seq' is in no section")


def _patch_map_number(data: bytearray, map_name: str, field: str, value: int) -> None:
    """Rewrite ``__uint(field, N)`` of map ``map_name`` in the object's BTF: the array's nelems."""
    _, btf_offset, _ = _section(data, ".BTF")
    btf = Btf(bytes(data[btf_offset:]))
    variable = btf.type(btf.find(map_name, BtfKind.VAR))
    definition = btf.type(btf.resolve(variable.type_id))
    member = next(m for m in definition.members if m.name == field)
    array_id = btf.type(btf.resolve(member.type_id)).type_id
    struct.pack_into("<I", data, btf_offset + btf.type_offset(array_id) + 12 + 8, value)  # btf_array.nelems


@pytest.mark.parametrize(
    "map_name, field, value, message",
    [  # values no other map shares (BTF deduplicates int (*)[N] across maps)
        ("hash", "max_entries", 0, "map 'hash' in .maps: max_entries is 0"),
        ("ringbuf", "max_entries", 0, "map 'ringbuf' in .maps: a ringbuf needs max_entries"),
        ("stacks", "value_size", 0, "map 'stacks' in .maps: value_size is 0"),
    ],
)
def test_impossible_maps_are_named(map_name, field, value, message):
    data = _valid()
    _patch_map_number(data, map_name, field, value)
    _expect(data, message)


_MAP_SOURCES = {
    "array_key": ("__uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4); __type(key, u64); __type(value, u32);",
                  "map 'bad' in .maps: an array map has 4-byte keys, not 8"),
    "perf_value": ("__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4); __uint(value_size, 8);",
                   "map 'bad' in .maps: a perf_event_array has 4-byte keys and values, not 4 and 8"),
    "huge_key": ("__uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __uint(key_size, 4096); __type(value, u32);",
                 "map 'bad' in .maps: key_size 4096 is over the kernel's 512"),
    "pinning": ("__uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __type(key, u32); __type(value, u32); __uint(pinning, 7);",
                "map 'bad' in .maps: pinning 7"),
    "conflict": ("__uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __uint(key_size, 8); __type(key, u32); __type(value, u32);",
                 "map 'bad' in .maps: conflicting key sizes 8 and 4"),
    "unknown_field": ("__uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __type(key, u32); __type(value, u32); __uint(colour, 3);",
                      "map 'bad' in .maps: unknown field 'colour'"),
    "no_type": ("__uint(max_entries, 4); __type(key, u32); __type(value, u32);", "map 'bad' in .maps: no map type"),
}


@pytest.mark.parametrize("case", sorted(_MAP_SOURCES))
def test_impossible_map_definitions_in_c(case, compiled, build_dir):
    body, message = _MAP_SOURCES[case]
    source = build_dir / f"bad_map_{case}.bpf.c"
    source.write_text(f'#include "common.h"\nstruct {{ {body} }} bad SEC(".maps");\n'
                      'SEC("syscall") int use(void *ctx) { return bpf_map_lookup_elem(&bad, &(u32){0}) != 0; }\n')
    _expect(compiled(f"bad_map_{case}", source).read_bytes(), message)


def test_a_code_section_that_is_not_whole_instructions():
    data = _valid("subprog")
    header, _, size = _section(data, "syscall")
    struct.pack_into("<Q", data, header + 32, size - 4)  # sh_size
    _expect(data, r"section 'syscall': .*(not a multiple of 8|whole instructions)")


def test_a_torn_btf_section():
    data = _valid()
    header, offset, size = _section(data, ".BTF")
    type_len = struct.unpack_from("<I", data, offset + 12)[0]
    struct.pack_into("<I", data, offset + 12, type_len - 4)
    _expect(data, r"\.BTF")


# --- fuzzing: nothing but ElfError ------------------------------------------------------------------


def _everything(data: bytes) -> None:
    """Parse and use the result the way callers do; ElfError is the only failure allowed."""
    try:
        spec = load_spec(data)
    except ElfError as error:
        assert str(error) and "\n" not in str(error)
        return
    render(spec)
    results = {}
    if spec.btf is not None:
        for features in (BtfFeatures(), BtfFeatures(*[False] * len(BtfFeatures._fields))):
            try:
                spec.kernel_btf(features)
            except ElfError:
                pass
        try:
            results = spec.resolve_core(spec.btf)
        except ElfError:
            pass
    fds = {name: 3 for name in spec.maps}
    for program in spec.programs.values():
        try:
            filled = fill_references(program.instructions, program.references, fds, {})
            b"".join(i.encode() for i in apply_core(filled, program.core_relocations, results, program.name))
        except ElfError:
            pass
    for variable in spec.variables.values():
        try:
            variable.set(variable.get())
        except ElfError:
            pass


_FUZZ = settings(max_examples=int(__import__("os").environ.get("OPENAT_FUZZ_EXAMPLES", 250)), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    _everything(data)


@_FUZZ
@given(st.binary(min_size=64, max_size=512))
def test_random_bytes_behind_an_elf_header(tail):
    header = bytearray(_valid("subprog")[:64])
    _everything(bytes(header) + tail)


_NAMES = st.sampled_from([n for n in FIXTURE_NAMES if n != "core"])  # core is big: mutated below with fewer examples
_WORDS = st.sampled_from([0, 1, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 8, 24, 64])


@st.composite
def _mutated(draw, names=_NAMES):
    data = bytearray(fixture(draw(names)).read_bytes())
    for _ in range(draw(st.integers(1, 8))):
        how = draw(st.sampled_from(["byte", "word", "bit", "truncate"]))
        position = draw(st.integers(0, len(data) - 1))
        if how == "byte":
            data[position] = draw(st.integers(0, 255))
        elif how == "word" and position + 4 <= len(data):
            struct.pack_into("<I", data, position & ~3, draw(_WORDS))
        elif how == "bit":
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif how == "truncate":
            del data[position:]
            if not data:
                break
    return bytes(data)


@_FUZZ
@given(_mutated())
def test_mutated_objects(data):
    _everything(data)


@st.composite
def _mutated_headers(draw):
    """Mutations aimed where they matter most: the ELF header, section headers, symbols, relocations, BTF headers."""
    name = draw(_NAMES)
    data = bytearray(fixture(name).read_bytes())
    elf = ElfFile(bytes(data))
    targets = [(0, 64)]
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    targets.append((shoff, len(elf.sections) * SECTION_HEADER.size))
    for wanted in (".symtab", ".BTF", ".BTF.ext") + tuple(s.name for s in elf.sections if s.name.startswith(".rel")):
        if wanted in elf.by_name:
            _, offset, size = _section(data, wanted)
            targets.append((offset, min(size, 256)))
    start, length = draw(st.sampled_from(targets))
    for _ in range(draw(st.integers(1, 4))):
        position = start + draw(st.integers(0, max(0, length - 4))) // 4 * 4
        if position + 4 <= len(data):
            struct.pack_into("<I", data, position, draw(_WORDS | st.integers(0, 0xFFFFFFFF)))
    return bytes(data)


@_FUZZ
@given(_mutated_headers())
def test_mutated_headers_symbols_relocations_and_btf(data):
    _everything(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_mutated(st.just("core")))
def test_mutated_core_object(data):
    _everything(data)
