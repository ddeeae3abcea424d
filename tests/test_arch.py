"""openat.arch: the machine tables, and that they agree with the running kernel's BTF."""

from __future__ import annotations

import os

import pytest

from openat.arch import ARCHES, UnsupportedMachine, arch, machine_name, pt_regs_offsets


def test_machine_names():
    assert machine_name("arm64") == "aarch64" and machine_name("amd64") == "x86_64"
    assert machine_name() == machine_name(os.uname().machine)
    with pytest.raises(UnsupportedMachine, match="riscv64"):
        arch("riscv64")


def test_fallback_tables_for_both_architectures():
    x86 = arch("x86_64")
    assert list(pt_regs_offsets(x86.function_args[:4], "x86_64").values()) == [112, 104, 96, 88]
    assert list(pt_regs_offsets(x86.syscall_args[:4], "x86_64").values()) == [112, 104, 96, 56]
    arm = arch("arm64")
    assert list(pt_regs_offsets(arm.function_args[:3], "arm64").values()) == [0, 8, 16]
    assert pt_regs_offsets([arm.syscall_number, "orig_x0"], "aarch64") == {"syscallno": 280, "orig_x0": 272}
    with pytest.raises(KeyError, match="'di'"):
        pt_regs_offsets(["di"], "aarch64")


def test_every_register_the_machine_names_is_in_its_table():
    for facts in ARCHES.values():
        named = facts.function_args + facts.syscall_args + facts.syscall_args_at_exit + (facts.return_value, facts.syscall_number)
        assert set(named) <= set(facts.pt_regs), facts.name


def test_arm64_moves_four_open_flags():
    generic, arm = arch("x86_64").open_flags, arch("aarch64").open_flags
    assert {name for name in generic if generic[name] != arm[name]} == {"O_DIRECTORY", "O_NOFOLLOW", "O_DIRECT", "O_LARGEFILE"}


@pytest.mark.skipif(not os.path.exists("/sys/kernel/btf/vmlinux"), reason="kernel has no BTF (/sys/kernel/btf/vmlinux missing)")
def test_the_table_agrees_with_this_kernels_btf():
    # The fallback table is only trustworthy if it agrees with BTF where both exist.
    from openat.syscalls.btf import vmlinux_btf

    facts = arch()
    names = sorted(set(facts.function_args + facts.syscall_args + (facts.return_value, facts.syscall_number)))
    assert pt_regs_offsets(names, btf=vmlinux_btf()) == pt_regs_offsets(names)
