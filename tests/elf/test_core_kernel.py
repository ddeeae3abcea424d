"""Every CO-RE relocation kind resolved against the running kernel, and run: the program reports what it saw.

Marked both_kernels: they run on the host (6.18) and again in the guest (6.1)
with ``scripts/guest test tests/elf -m both_kernels``; some values differ
between the two, and each test says which and why.
"""

from __future__ import annotations

import os
import threading

import pytest

from openat.btf import BTF_INT_SIGNED, BtfKind
from openat.elf import load_spec
from openat.elf.kconfig import kernel_version_code
from openat.syscalls import VerifierError
from openat.syscalls.btf import vmlinux_btf

from ..support import need_root
from openat.syscalls import features

pytestmark = [pytest.mark.both_kernels, pytest.mark.usefixtures("no_fd_leaks")]


def _kernel_at_least(version: str) -> bool:
    return kernel_version_code(os.uname().release) >= kernel_version_code(version)


@pytest.fixture(scope="module")
def seen(bpf_object):
    """What core_kinds saw, run once with BPF_PROG_TEST_RUN in this thread."""
    need_root()
    if not features.btf():
        pytest.skip(f"this kernel has no BTF: {features.btf().reason}")
    spec = load_spec(bpf_object("core"))
    with spec.load() as coll:
        coll.programs["core_kinds"].test_run(ctx_in=bytes(16))
        values = {name: variable.get() for name, variable in coll.variables.items()}
        values["_results"] = coll.core
    values["_spec"] = spec
    return values


def test_field_relocations(seen):
    kernel = vmlinux_btf()
    assert seen["pid"] == threading.get_native_id() and seen["tgid"] == os.getpid()  # byte offsets, also through a flavour
    with open("/proc/thread-self/comm", "rb") as f:
        assert seen["comm0"] == f.read()[0]
    assert seen["comm_size"] == 16
    assert seen["array_elem_offset"] == kernel.member_offset("task_struct", "comm") + 3
    assert (seen["pid_exists"], seen["fake_exists"], seen["pid_signed"]) == (1, 0, 1)


def test_bitfield_relocations(seen):
    """lshift/rshift extract a bitfield with two shifts of a u64 load (libbpf's formula, little-endian)."""
    kernel = vmlinux_btf()
    member, bit_offset = kernel.member("task_struct", "sched_reset_on_fork")
    assert member.bitfield_size == 1
    size = kernel.size_of(member.type_id)
    byte_offset = bit_offset // 8 // size * size
    assert seen["bitfield_lshift"] == 64 - (bit_offset + 1 - byte_offset * 8)
    assert seen["bitfield_rshift"] == 63
    assert seen["bitfield_value"] in (0, 1)
    assert (seen["flags_lshift"], seen["flags_rshift"]) == (32, 32)  # a plain u32: the whole word


def test_type_relocations(seen):
    kernel = vmlinux_btf()
    spec = seen["_spec"]
    assert seen["local_id"] == spec.btf.find("task_struct", BtfKind.STRUCT)
    assert seen["target_id"] == kernel.find("task_struct", BtfKind.STRUCT)
    assert (seen["task_exists"], seen["fake_type_exists"]) == (1, 0)
    assert seen["task_size"] == kernel.size_of(kernel.find("task_struct", BtfKind.STRUCT))
    assert seen["task_pids_match"] == 1


def test_enum_relocations(seen):
    assert (seen["ringbuf_output_exists"], seen["ringbuf_output_value"]) == (1, 130)


def test_relocations_that_differ_between_host_and_guest(seen):
    """BPF_FUNC_cgrp_storage_get came with 6.2, struct bpf_arena with 6.9: 1 on the host, 0 on the guest's 6.1.
    TYPE_MATCHES of a struct with a char[16]: BPF's char is signed, the kernel's too until 6.2 built it with
    -funsigned-char: 0 on the host, 1 on the guest."""
    assert seen["cgrp_storage_exists"] == int(_kernel_at_least("6.2"))
    assert seen["arena_exists"] == int(_kernel_at_least("6.9"))
    char = vmlinux_btf().type(vmlinux_btf().find("char", BtfKind.INT))
    assert seen["task_matches"] == int(bool(char.encoding & BTF_INT_SIGNED))
    if os.environ.get("OPENAT_GUEST") == "1":
        assert (seen["cgrp_storage_exists"], seen["arena_exists"], seen["task_matches"]) == (0, 0, 1)


def test_an_unresolvable_relocation_in_dead_code_is_poisoned_and_dropped(seen):
    results = seen["_results"]
    poisoned = [key for key, result in results.items() if result.poison]
    assert len(poisoned) == 1 and seen["dead_code_ran"] == 0


def test_a_reached_poisoned_instruction_is_named_by_the_verifier(bpf_object):
    need_root()
    spec = load_spec(bpf_object("poison"))
    with pytest.raises(VerifierError) as caught:
        spec.load()
    error = caught.value
    assert "invalid func unknown#195896080" in error.log  # 0xbad2310, libbpf's poison
    poisoned = next(line for line in error.annotated_log.splitlines() if "call unknown#195896080" in line)
    assert poisoned.startswith("poison.bpf.c:")  # the poisoned instruction, with its C line


