"""Objects loaded into the running kernel with spec.load(): maps of each kind, globals, sub-programs, line info."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess

import pytest

from openat.elf import ElfError, load_spec
from openat.syscalls import VerifierError
from openat.syscalls.errors import NotSupportedError
from openat.syscalls.maps import possible_cpus
from openat.syscalls.perfbuf import PerfBuffer
from openat.syscalls.ringbuf import RingBuffer
from openat.uapi import MapType

from ..support import need_root
from ..syscalls.programs import NR_GETPPID

EVENT = struct.Struct("=II16s")  # struct event {u32 pid; u32 seq; char comm[16]}

pytestmark = pytest.mark.usefixtures("no_fd_leaks")


@pytest.fixture(autouse=True)
def root():
    need_root()


@pytest.fixture
def pin_root(bpf_fs):
    """A directory in the BPF filesystem for pinned maps, removed afterwards (with what was pinned there)."""
    path = os.path.join(bpf_fs, f"openat-test-{os.getpid()}")
    os.makedirs(path, exist_ok=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _comm() -> bytes:
    with open(f"/proc/thread-self/comm", "rb") as f:
        return f.read().strip()


def test_every_map_kind_is_created_and_written_by_the_program(bpf_object, pin_root):
    spec = load_spec(bpf_object("maps"))
    spec.variables["target_tgid"].set(os.getpid())
    spec.variables["target_nr"].set(NR_GETPPID)
    events, samples = [], []
    with spec.load(pin_root=pin_root) as coll:
        assert coll.maps["perf_events"].max_entries == possible_cpus()
        assert {name: m.info().type for name, m in coll.maps.items()}["stacks"] == MapType.STACK_TRACE
        with RingBuffer(coll.maps["ringbuf"]) as ring, PerfBuffer(coll.maps["perf_events"], lambda cpu, data: samples.append(bytes(data))) as perf:
            with coll.programs["fill_maps"].attach():
                for _ in range(3):
                    os.getppid()
            ring.consume(lambda record: events.append(EVENT.unpack(record)))
            perf.consume()
        maps = coll.maps
        me = os.getpid()
        assert maps["hash"].lookup(me) == (3).to_bytes(8, "little")
        pid, seq, comm = EVENT.unpack(maps["array"].lookup(0))
        assert (pid, seq) == (me, 2) and comm.rstrip(b"\0") == _comm()
        assert sum(int.from_bytes(v, "little") for v in maps["percpu_hash"].lookup_percpu(0)) == 3
        assert sum(int.from_bytes(v, "little") for v in maps["percpu_array"].lookup_percpu(0)) == 3
        assert maps["lru_hash"].lookup(me) == (1).to_bytes(8, "little")
        assert any(v == (1).to_bytes(8, "little") for v in maps["lru_percpu_hash"].lookup_percpu(me))
        assert [e[1] for e in events] == [0, 1, 2] and {e[0] for e in events} == {me}
        assert sorted(EVENT.unpack(s[: EVENT.size])[1] for s in samples) == [0, 1, 2]
        stack_id = coll.variables["stack_id"].get()
        assert stack_id > 0 and maps["stacks"].lookup(stack_id - 1) is not None
        assert coll.variables["seq"].get() == 3
        assert list(maps["array"].decoded_items())[0][1] == {"pid": me, "seq": 2, "comm": comm}
        assert maps["pinned_counts"].pinned == os.path.join(pin_root, "pinned_counts")
    # a second load shares the pinned map, with what the first one left in it
    with spec.load(pin_root=pin_root) as again:
        assert again.maps["pinned_counts"].lookup(me) == (2).to_bytes(4, "little")


def test_rodata_is_frozen_and_set_before_load(bpf_object):
    spec = load_spec(bpf_object("globals"))
    spec.variables["ro_int"].set(-77)
    spec.variables["ro_u64"].set(12345678901)
    spec.variables["ro_flag"].set(True)
    spec.variables["ro_colour"].set("BLUE")
    spec.variables["ro_name"].set("elf")
    spec.variables["ro_list"].set([10, 20, 30])
    with spec.load() as coll:
        program = coll.programs["read_globals"]
        assert program.test_run().retval == 1  # ro_flag, dead-code eliminated on a frozen map
        seen = {name: coll.variables[name].get() for name in coll.variables if name.startswith("bss_seen")}
        assert seen == {
            "bss_seen_int": (-77) & (2**64 - 1), "bss_seen_u64": 12345678901, "bss_seen_flag": 1,
            "bss_seen_colour": (-3) & (2**64 - 1), "bss_seen_name": b"elf" + bytes(9), "bss_seen_list_sum": 60,
            "bss_seen_data": 42 + 7 + 9 + 1000,
        }
        assert coll.maps[".rodata"].info().map_flags & 0x80  # BPF_F_RDONLY_PROG
        with pytest.raises(ElfError, match="frozen once loaded"):
            coll.variables["ro_int"].set(1)
        with pytest.raises(OSError):  # the kernel refuses writes to a frozen map
            coll.maps[".rodata"].update(0, bytes(coll.maps[".rodata"].value_size))
        # .data and .bss can be written while loaded, and the program sees it
        coll.variables["data_int"].set(1)
        coll.variables["data_pair"].set({"a": 0, "b": 0})
        program.test_run()
        assert coll.variables["bss_seen_data"].get() == 1 + 0 + 0 + 1001  # data_static went up by one
        assert coll.variables["bss_runs"].get() == 2


def test_sub_programs_run(bpf_object):
    with load_spec(bpf_object("subprog")).load() as coll:
        assert coll.programs["first"].test_run().retval == 25
        assert coll.programs["second"].test_run().retval == 22
        assert coll.variables["loop_total"].get() == 10
        assert coll.programs["first"].info().btf_id == coll.btf.id


def test_a_verifier_rejection_names_the_c_line(compiled):
    path = compiled("reject")
    with open(os.path.join(os.path.dirname(__file__), "c", "reject.bpf.c")) as f:
        line = next(number for number, text in enumerate(f, 1) if "REJECTED HERE" in text)
    with pytest.raises(VerifierError) as caught:
        load_spec(path).load()
    error = caught.value
    assert "invalid mem access 'map_value_or_null'" in error.summary
    assert f"reject.bpf.c:{line}: " in error.annotated_log  # openat's annotation, per instruction
    assert "; return *value + 1; /* REJECTED HERE */" in error.log  # the kernel quotes the line from line_info
    assert f"reject.bpf.c:{line}" in str(error)


def test_unknown_sections_are_listed_and_loading_them_says_why(bpf_object, tmp_path):
    spec = load_spec(bpf_object("odd_sections"))
    with spec.load() as coll:  # the default: what may be loaded, without asking
        assert list(coll.programs) == ["autoloaded"]
    with pytest.raises(ElfError, match="'openat_unknown/section' is not one libbpf's section names know"):
        spec.load(programs=["unknown_section"])
    with pytest.raises(ElfError, match="no program 'nope'"):
        spec.load(programs=["nope"])
    with spec.load(programs=["not_autoloaded"]) as coll, coll.programs["not_autoloaded"].attach():
        os.getppid()
        assert coll.variables["runs"].get() > 0  # a '?' program loads when named


def test_programs_attach_by_section(bpf_object, tmp_path):
    spec = load_spec(bpf_object("sections"))
    names = ["tracepoint_openat", "tp_openat", "raw_tracepoint_enter", "raw_tp_enter", "tp_btf_enter"]
    with spec.load(programs=names) as coll:
        links = [coll.programs[name].attach() for name in names]
        try:
            with open(tmp_path / "x", "w"):
                pass
        finally:
            for link in links:
                link.close()
        hits = {i: int.from_bytes(coll.maps["hits"].lookup(i), "little") for i in range(5)}
        assert all(hits.values()), f"programs that never ran: {[i for i, n in hits.items() if not n]}"


def test_attach_of_a_program_openat_cannot_attach_says_so(bpf_object):
    spec = load_spec(bpf_object("sections"))
    with spec.load(programs=["socket_all", "raw_tp_enter"]) as coll:
        with pytest.raises(NotSupportedError, match="cannot attach socket programs by section"):
            coll.programs["socket_all"].attach()
        with pytest.raises(TypeError, match="takes no options"):
            coll.programs["raw_tp_enter"].attach(mode="skb")


def test_loading_fails_cleanly_and_releases_what_it_made(bpf_object):
    """A program that cannot load (fentry here: refused or missing) leaves no map or BTF behind."""
    spec = load_spec(bpf_object("sections"))
    spec.programs["raw_tp_enter"].instructions[0:1] = []  # corrupt: the verifier refuses it
    with pytest.raises((VerifierError, OSError)):
        spec.load(programs=["tp_openat", "raw_tp_enter"])


def test_bpftool_sees_what_was_loaded(bpf_object):
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed")
    with load_spec(bpf_object("subprog")).load() as coll:
        out = subprocess.run(["bpftool", "prog", "show", "id", str(coll.programs["first"].id)], capture_output=True, text=True, check=True).stdout
        assert "name first" in out and "syscall" in out


MAP_IN_MAP = """#include "common.h"
struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2); __type(key, u32); __type(value, u64); };
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, u32);
	__array(values, struct inner);
} outer SEC(".maps");
SEC("syscall") int read_inner(void *ctx)
{
	u32 zero = 0;
	void *inner = bpf_map_lookup_elem(&outer, &zero);
	return inner ? 1 : 0;
}
"""


def test_a_map_in_map_gets_its_inner_definition(compiled, build_dir):
    source = build_dir / "map_in_map.bpf.c"
    source.write_text(MAP_IN_MAP)
    spec = load_spec(compiled("map_in_map", source))
    outer = spec.maps["outer"]
    assert outer.type == MapType.ARRAY_OF_MAPS and (outer.inner.type, outer.inner.max_entries) == (MapType.ARRAY, 2)
    with spec.load() as coll:
        assert coll.programs["read_inner"].test_run().retval == 0  # no inner map stored yet
        from openat.syscalls import map_create

        with map_create(MapType.ARRAY, 4, 8, 2, name="inner_one") as inner:
            coll.maps["outer"].update(0, inner.fileno())
            assert coll.programs["read_inner"].test_run().retval == 1
            coll.maps["outer"].delete(0)


def test_initial_map_in_map_values_are_refused_with_the_reason(compiled, build_dir):
    source = build_dir / "map_in_map_values.bpf.c"
    source.write_text(MAP_IN_MAP.replace("} outer SEC(\".maps\");", "} outer SEC(\".maps\") = { .values = { [0] = &inner_map } };")
                      .replace("struct {\n\t__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);", "struct inner inner_map SEC(\".maps\");\nstruct {\n\t__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);"))
    with pytest.raises(ElfError, match="initial values of prog arrays and map-in-maps"):
        load_spec(compiled("map_in_map_values", source))
