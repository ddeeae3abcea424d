"""What differs between the machines openat runs on: x86_64 and arm64 (aarch64).

Syscall numbers, the layout of ``struct pt_regs`` and which of its registers
hold a function's or a syscall's arguments, and the open flag bits that arm64
numbers its own way: each fact is here once, for every layer (pure: no
syscalls, any OS). :func:`pt_regs_offsets` reads offsets from a BTF object
when one is given (the running kernel's, say) and falls back to the tables,
which follow the uapi headers.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, Mapping, Optional, Protocol, Sequence, Tuple

from .fieldtuple import FieldTuple

__all__ = ["Arch", "ARCHES", "UnsupportedMachine", "arch", "machine_name", "pt_regs_offsets", "syscall_wrapper_prefix"]


class UnsupportedMachine(ValueError):
    """A machine openat has no tables for."""


class _MemberOffsets(Protocol):
    """What :func:`pt_regs_offsets` needs of a BTF object (``openat.btf.Btf`` has it)."""

    def member_offset(self, struct: str, path: str) -> int: ...


class Arch(FieldTuple):
    """One machine's facts. Register names are ``struct pt_regs`` member paths."""

    name: str  # as the kernel's uname -m says: x86_64, aarch64
    syscalls: Mapping[str, int]  # syscall name -> number
    pt_regs: Mapping[str, int]  # member path -> byte offset: the table used without BTF
    function_args: Tuple[str, ...]  # arguments 1..6 of a kernel function (kprobe context)
    syscall_args: Tuple[str, ...]  # arguments 1..6 of a syscall, at entry
    syscall_args_at_exit: Tuple[str, ...]  # the same at sys_exit (arm64's result overwrote x0)
    return_value: str  # a function's result (kretprobe context)
    syscall_number: str  # the syscall number, still there at sys_exit (read as 32 bits)
    open_flags: Mapping[str, int]  # O_* name -> bit, access modes excepted


# asm-generic/fcntl.h. O_SYNC and O_TMPFILE are two bits each (with O_DSYNC,
# O_DIRECTORY); the bit given is the one that tells them apart.
_GENERIC_OPEN_FLAGS = {
    "O_CREAT": 0o100,
    "O_EXCL": 0o200,
    "O_NOCTTY": 0o400,
    "O_TRUNC": 0o1000,
    "O_APPEND": 0o2000,
    "O_NONBLOCK": 0o4000,
    "O_DSYNC": 0o10000,
    "O_ASYNC": 0o20000,
    "O_DIRECT": 0o40000,
    "O_LARGEFILE": 0o100000,
    "O_DIRECTORY": 0o200000,
    "O_NOFOLLOW": 0o400000,
    "O_NOATIME": 0o1000000,
    "O_CLOEXEC": 0o2000000,
    "O_SYNC": 0o4000000,
    "O_PATH": 0o10000000,
    "O_TMPFILE": 0o20000000,
}

# arch/x86/include/asm/ptrace.h: uapi-stable order.
_X86_64_PT_REGS = {
    name: 8 * index
    for index, name in enumerate(
        "r15 r14 r13 r12 bp bx r11 r10 r9 r8 ax cx dx si di orig_ax ip cs flags sp ss".split()
    )
}
# arch/arm64/include/asm/ptrace.h: user_pt_regs {u64 regs[31]; sp; pc; pstate},
# then orig_x0 and the s32 syscallno.
_ARM64_PT_REGS = {
    **{f"regs[{i}]": 8 * i for i in range(31)},
    "sp": 248,
    "pc": 256,
    "pstate": 264,
    "orig_x0": 272,
    "syscallno": 280,
}

ARCHES: Dict[str, Arch] = {
    "x86_64": Arch(
        name="x86_64",
        syscalls={
            "open": 2, "getpid": 39, "getppid": 110, "perf_event_open": 298, "openat": 257,
            "bpf": 321, "io_uring_setup": 425, "io_uring_enter": 426, "openat2": 437,
        },
        pt_regs=_X86_64_PT_REGS,
        function_args=("di", "si", "dx", "cx", "r8", "r9"),
        syscall_args=("di", "si", "dx", "r10", "r8", "r9"),
        syscall_args_at_exit=("di", "si", "dx", "r10", "r8", "r9"),
        return_value="ax",
        syscall_number="orig_ax",
        open_flags=_GENERIC_OPEN_FLAGS,
    ),
    # arm64 never had open(2): its C library opens with openat.
    "aarch64": Arch(
        name="aarch64",
        syscalls={
            "openat": 56, "getpid": 172, "getppid": 173, "perf_event_open": 241,
            "bpf": 280, "io_uring_setup": 425, "io_uring_enter": 426, "openat2": 437,
        },
        pt_regs=_ARM64_PT_REGS,
        function_args=tuple(f"regs[{i}]" for i in range(6)),
        syscall_args=tuple(f"regs[{i}]" for i in range(6)),
        syscall_args_at_exit=("orig_x0",) + tuple(f"regs[{i}]" for i in range(1, 6)),
        return_value="regs[0]",
        syscall_number="syscallno",
        open_flags={
            **_GENERIC_OPEN_FLAGS,
            "O_DIRECTORY": 0o40000,
            "O_NOFOLLOW": 0o100000,
            "O_DIRECT": 0o200000,
            "O_LARGEFILE": 0o400000,
        },
    ),
}

_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


def machine_name(machine: Optional[str] = None) -> str:
    """The kernel's name of ``machine`` (``arm64`` -> ``aarch64``); default: this machine."""
    name = machine or os.uname().machine
    return _ALIASES.get(name, name)


def arch(machine: Optional[str] = None) -> Arch:
    """The facts of ``machine`` (default: this one); UnsupportedMachine for others."""
    name = machine_name(machine)
    try:
        return ARCHES[name]
    except KeyError:
        raise UnsupportedMachine(f"unsupported machine {name!r}: openat knows {', '.join(ARCHES)}") from None


def pt_regs_offsets(
    names: Optional[Iterable[str]] = None, machine: Optional[str] = None, btf: Optional[_MemberOffsets] = None
) -> Dict[str, int]:
    """Byte offsets of ``struct pt_regs`` members (``"di"``, ``"regs[3]"``): from ``btf`` when given, else the table.

    Pass the running kernel's BTF only for this machine's own layout. Without
    ``names``, every member the table knows. A name the table lacks raises
    KeyError; one the BTF lacks raises what ``btf.member_offset`` raises.
    """
    table = arch(machine).pt_regs
    wanted: Sequence[str] = list(table) if names is None else list(names)
    if btf is not None:
        return {name: btf.member_offset("pt_regs", name) for name in wanted}
    unknown = [name for name in wanted if name not in table]
    if unknown:
        raise KeyError(f"pt_regs on {arch(machine).name} has no member {unknown[0]!r}")
    return {name: table[name] for name in wanted}


# The prefix of the kernel functions that wrap each syscall since 4.17
# (ARCH_HAS_SYSCALL_WRAPPER: __x64_sys_openat), what libbpf's ksyscall
# sections attach to.
_SYSCALL_WRAPPER_PREFIXES = {"x86_64": "__x64_", "aarch64": "__arm64_"}


def syscall_wrapper_prefix(machine: Optional[str] = None) -> str:
    """``"__x64_"`` on x86_64, ``"__arm64_"`` on aarch64: before ``sys_NAME`` in the syscall wrappers' names."""
    name = machine_name(machine)
    try:
        return _SYSCALL_WRAPPER_PREFIXES[name]
    except KeyError:
        raise UnsupportedMachine(f"unsupported machine {name!r}: openat knows {', '.join(_SYSCALL_WRAPPER_PREFIXES)}") from None
