"""Fixtures for the syscalls tests: they run for real as root (CI does)."""

from __future__ import annotations

import os
import struct

import pytest

# Hand-built bytecode for the few tiny programs the tests need: this keeps the
# syscalls tests independent of the assembler, which has its own suite.


def insn(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One 8-byte BPF instruction slot."""
    return struct.pack("<BBhi", opcode, (src << 4) | dst, off, imm)


def lddw(dst: int, imm64: int, src: int = 0) -> bytes:
    """The two-slot 64-bit immediate load (src=1: BPF_PSEUDO_MAP_FD)."""
    return insn(0x18, dst, src, 0, imm64 & 0xFFFFFFFF) + insn(0, 0, 0, 0, (imm64 >> 32) & 0xFFFFFFFF)


MOV64_IMM = 0xB7
MOV64_REG = 0xBF
EXIT = 0x95
CALL = 0x85


def return_imm(value: int) -> bytes:
    """r0 = value; exit"""
    return insn(MOV64_IMM, 0, imm=value) + insn(EXIT)


def _open_fds() -> dict[int, str]:
    """fd → target; the directory fd listdir itself used is gone by now and dropped."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
    return fds


@pytest.fixture(autouse=True)
def no_fd_leaks():
    """Every test must close what it opens (bpf objects, perf events, mmaps' dup'ed fds)."""
    before = _open_fds()
    yield
    after = _open_fds()
    leaked = {fd: target for fd, target in after.items() if before.get(fd) != target}
    assert not leaked, f"test leaked fds: {leaked}"


@pytest.fixture(scope="session")
def root():
    if os.geteuid() != 0:
        pytest.skip("needs root (CI runs these as root)")
