"""load_spec on clang-compiled objects: pure parsing, no syscalls (the committed fixtures, or objects compiled now)."""

from __future__ import annotations

import pytest

from openat.asm import Instruction
from openat.asm.opcodes import BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC, BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE, LDDW
from openat.btf.core import CoreKind
from openat.elf import ElfError, load_spec
from openat.uapi import BPF_F_MMAPABLE, BPF_F_NO_PREALLOC, BPF_F_RDONLY_PROG, MapType, ProgType

from .objects import FIXTURE_NAMES, fixture

CALL = 0x85


def _calls(program) -> list:
    """(slot of each bpf-to-bpf call or function address, slot it targets)."""
    out, slot = [], 0
    for instruction in program.instructions:
        if (instruction.opcode == CALL and instruction.src == BPF_PSEUDO_CALL) or (instruction.opcode == LDDW and instruction.src == BPF_PSEUDO_FUNC):
            delta = instruction.imm if instruction.opcode == CALL else instruction.imm - (1 << 32) * (instruction.imm >= 1 << 31)
            out.append((slot, slot + 1 + delta))
        slot += instruction.slots
    return out


def test_maps_of_every_kind():
    spec = load_spec(fixture("maps"))
    kinds = {name: (m.type, m.key_size, m.value_size, m.max_entries) for name, m in spec.maps.items()}
    assert kinds == {
        "hash": (MapType.HASH, 4, 8, 64),
        "array": (MapType.ARRAY, 4, 24, 4),
        "percpu_hash": (MapType.PERCPU_HASH, 4, 8, 16),
        "percpu_array": (MapType.PERCPU_ARRAY, 4, 8, 1),
        "lru_hash": (MapType.LRU_HASH, 4, 8, 32),
        "lru_percpu_hash": (MapType.LRU_PERCPU_HASH, 4, 8, 32),
        "ringbuf": (MapType.RINGBUF, 0, 0, 4096),
        "stacks": (MapType.STACK_TRACE, 4, 127 * 8, 16),
        "perf_events": (MapType.PERF_EVENT_ARRAY, 4, 4, 0),  # 0: one slot per possible CPU, filled in at load
        "pinned_counts": (MapType.HASH, 4, 4, 8),
        ".rodata": (MapType.ARRAY, 4, 16, 1),
        ".bss": (MapType.ARRAY, 4, 12, 1),
    }
    assert list(spec.maps)[-2:] == [".rodata", ".bss"]  # libbpf's creation order: .maps first, then global data
    assert spec.maps["hash"].flags == BPF_F_NO_PREALLOC
    assert spec.maps["pinned_counts"].pinning == 1
    array = spec.maps["array"]
    assert array.key_type.name == "u32" and array.value_type.name == "event"
    assert [m.name for m in array.value_type.members] == ["pid", "seq", "comm"]
    assert spec.maps[".rodata"].flags == BPF_F_RDONLY_PROG | BPF_F_MMAPABLE and spec.maps[".rodata"].kernel_name == "maps.rodata"
    assert not spec.maps["perf_events"].btf_types_allowed and spec.maps["hash"].btf_types_allowed


def test_global_variables_and_their_types():
    spec = load_spec(fixture("globals"))
    values = {name: v.get() for name, v in spec.variables.items() if not name.startswith("bss_")}
    assert values == {
        "ro_int": -5,
        "ro_u64": 1 << 40,
        "ro_flag": False,
        "ro_colour": 2,
        "ro_name": b"openat" + bytes(6),
        "ro_list": [1, 2, 3],
        "data_int": 42,
        "data_pair": {"a": 7, "name": b"pair" + bytes(4), "b": 9},
        "data_static": 1000,
    }
    assert spec.variables["data_static"].static and not spec.variables["data_int"].static
    assert {v.section for v in spec.variables.values()} == {".rodata", ".data", ".bss"}
    assert spec.variables["ro_name"].type == "const volatile char[12]"


def test_setting_variables_encodes_by_type():
    spec = load_spec(fixture("globals"))
    v = spec.variables
    v["ro_int"].set(-123456)
    v["ro_flag"].set(True)
    v["ro_colour"].set("BLUE")
    v["ro_name"].set("kernel")
    v["ro_list"].set([7, 8, 9])
    v["data_pair"].set({"b": 65535})
    assert (v["ro_int"].get(), v["ro_flag"].get(), v["ro_colour"].get(), v["ro_name"].get()) == (-123456, True, -3, b"kernel" + bytes(6))
    assert v["ro_list"].get() == [7, 8, 9] and v["data_pair"].get() == {"a": 7, "name": b"pair" + bytes(4), "b": 65535}
    assert bytes(spec.maps[".rodata"].data[:4]) == (-123456).to_bytes(4, "little", signed=True)
    v["ro_u64"].set(bytes(range(8)))
    assert v["ro_u64"].get() == int.from_bytes(bytes(range(8)), "little")


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("ro_int", 1 << 31, "does not fit in 4 bytes"),
        ("ro_int", "five", "expected an int, got str"),
        ("ro_u64", -1, "does not fit in 8 bytes"),
        ("ro_flag", 2, "a bool is True, False, 1 or 0, not 2"),
        ("ro_colour", "PURPLE", "no enumerator 'PURPLE'; it has RED, GREEN, BLUE"),
        ("ro_name", "a name far too long", "19 bytes do not fit in 12"),
        ("ro_list", [1, 2], "expected 3 elements, got 2"),
        ("ro_list", [1, 2, -1], r"\[2\].*does not fit"),
        ("data_pair", {"c": 1}, "no member 'c'; it has a, name, b"),
        ("data_pair", 5, "expected a dict"),
        ("ro_u64", b"123", "is 8 bytes; got 3 bytes"),
    ],
)
def test_wrong_values_raise_naming_the_variable(name, value, message):
    variable = load_spec(fixture("globals")).variables[name]
    before = variable.raw
    with pytest.raises(ElfError, match=message) as caught:
        variable.set(value)
    assert f"variable {name!r}" in str(caught.value)
    assert variable.raw == before


def test_sub_programs_are_appended_per_program_and_calls_land_on_them():
    spec = load_spec(fixture("subprog"))
    first, second = spec.programs["first"], spec.programs["second"]
    assert first.subprograms == ("sum_of_squares", "square")
    assert second.subprograms == ("add_index", "square", "global_triple")
    for program in (first, second):
        starts = [record.insn_off for record in program.func_info]
        assert len(starts) == 1 + len(program.subprograms)  # one func_info per function, rebased
        assert starts[0] == 0 and starts == sorted(starts)
        for slot, target in _calls(program):
            assert target in starts, f"{program.name}: call at {slot} lands at {target}, not at a function start"
    # the address of the bpf_loop callback became BPF_PSEUDO_FUNC
    assert any(i.opcode == LDDW and i.src == BPF_PSEUDO_FUNC for i in second.instructions)
    assert not spec.programs.get("square")  # .text functions are no programs


def test_every_instruction_knows_its_c_line():
    spec = load_spec(fixture("subprog"))
    for program in spec.programs.values():
        assert {i.source.split(":")[0] for i in program.instructions} == {"subprog.bpf.c"}
        assert all(i.source.split(":")[1].isdigit() for i in program.instructions)
        lines = program.source_lines()
        assert lines and all(text for _, _, text in lines.values())
    assert any("bpf_loop(5, add_index" in text for _, _, text in spec.programs["second"].source_lines().values())


def test_references_to_maps_and_globals():
    spec = load_spec(fixture("maps"))
    program = spec.programs["fill_maps"]
    maps = {r.target for r in program.references if r.kind == "map"}
    assert maps == {"hash", "array", "percpu_hash", "percpu_array", "lru_hash", "lru_percpu_hash", "ringbuf", "perf_events", "stacks", "pinned_counts"}
    values = {(r.target, r.offset) for r in program.references if r.kind == "map_value"}
    assert values == {(".rodata", 0), (".rodata", 8), (".bss", 0), (".bss", 8)}  # target_tgid, target_nr, stack_id, seq
    for reference in program.references:
        instruction = program.instructions[reference.index]
        assert instruction.opcode == LDDW
        assert instruction.src == (BPF_PSEUDO_MAP_FD if reference.kind == "map" else BPF_PSEUDO_MAP_VALUE)


def test_every_core_relocation_kind_is_in_the_core_object():
    spec = load_spec(fixture("core"))
    kinds = {relo.kind for _, relo in spec.core_relocations(list(spec.programs))}
    assert kinds == set(CoreKind)
    program = spec.programs["core_kinds"]
    assert len(program.core_relocations) >= len(CoreKind)


def test_sections_and_their_programs():
    spec = load_spec(fixture("sections"))
    kinds = {name: (p.prog_type, p.attach_to, p.autoload, bool(p.unsupported)) for name, p in spec.programs.items()}
    assert kinds["tracepoint_openat"] == (ProgType.TRACEPOINT, "syscalls/sys_enter_openat", True, False)
    assert kinds["kprobe_openat2"] == (ProgType.KPROBE, "do_sys_openat2", True, False)
    assert all(p.autoload and not p.unsupported for p in spec.programs.values())
    assert spec.license == "GPL"
    summary = {s.name: s.role for s in spec.sections}
    assert summary["license"] == "license 'GPL'" and summary[".maps"] == "maps: hits"


def test_unknown_and_question_mark_sections_are_listed_not_loaded():
    spec = load_spec(fixture("odd_sections"))
    kinds = {name: (p.prog_type, p.attach_to, p.autoload, bool(p.unsupported)) for name, p in spec.programs.items()}
    assert kinds == {
        "unknown_section": (0, "", False, True),
        "not_autoloaded": (ProgType.RAW_TRACEPOINT, "sys_exit", False, False),
        "autoloaded": (ProgType.RAW_TRACEPOINT, "sys_exit", True, False),
    }
    assert "openat_unknown/section" in spec.programs["unknown_section"].unsupported


def test_instructions_are_openat_asm_instructions():
    spec = load_spec(fixture("globals"))
    program = spec.programs["read_globals"]
    assert all(isinstance(i, Instruction) for i in program.instructions)
    assert program.slot_count() == len(program.slot_sources())


def test_bytes_and_paths_give_the_same_spec():
    data = fixture("maps").read_bytes()
    from_bytes = load_spec(data, name="maps")
    from_path = load_spec(fixture("maps"))
    assert [p.instructions for p in from_bytes.programs.values()] == [p.instructions for p in from_path.programs.values()]
    assert load_spec(data).maps[".rodata"].kernel_name == "object.rodata"


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_committed_fixtures_match_the_c_sources(name, compiled):
    """A fixture rebuilt from tests/elf/c has the same programs, maps, variables and relocations (else: python -m tests.elf.objects)."""

    def shape(spec):
        return (
            {n: (p.section, len(p.references), len(p.core_relocations), p.subprograms) for n, p in spec.programs.items()},
            {n: (m.type, m.key_size, m.value_size, m.max_entries, m.flags) for n, m in spec.maps.items()},
            {n: (v.section, v.offset, v.size) for n, v in spec.variables.items()},
        )

    assert shape(load_spec(fixture(name))) == shape(load_spec(compiled(name)))


def test_a_missing_file_is_an_elf_error(tmp_path):
    with pytest.raises(ElfError, match="No such file"):
        load_spec(tmp_path / "missing.bpf.o")
