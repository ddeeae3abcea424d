"""What loading an object needs to know about the running kernel: its config, version, symbols.

Only reads files (/proc/config.gz, /boot/config-RELEASE, /proc/kallsyms,
the kernel's BTF) and asks :mod:`openat.syscalls.features`; the encoding
itself is pure (:mod:`openat.elf.kconfig`).
"""

from __future__ import annotations

import gzip
import os
from typing import Dict, Optional, Tuple

from ..arch import UnsupportedMachine, syscall_wrapper_prefix
from ..btf import Btf, BtfError, BtfKind
from ..btf.core import essential_name
from ..elf import ElfError, ExternSpec, ResolvedSymbol, kernel_version_code, parse_config
from ..syscalls import features
from ..syscalls.kallsyms import find_symbol, lookup

__all__ = ["kernel_config", "kernel_version", "linux_values", "resolve_ksym"]

PROC_CONFIG = "/proc/config.gz"


def kernel_config(path: Optional[str] = None) -> Tuple[Optional[Dict[str, str]], str]:
    """The running kernel's config (``CONFIG_X`` -> value) and where it came from; (None, why) when unreadable.

    ``path`` overrides the search (a plain or gzipped config file).
    """
    candidates = [path] if path else [PROC_CONFIG, f"/boot/config-{os.uname().release}"]
    reasons = []
    for candidate in candidates:
        try:
            with open(candidate, "rb") as f:
                raw = f.read()
        except OSError as error:
            reasons.append(f"{candidate}: {error.strerror}")
            continue
        try:
            text = gzip.decompress(raw).decode(errors="replace") if raw[:2] == b"\x1f\x8b" else raw.decode(errors="replace")
        except (OSError, EOFError) as error:
            reasons.append(f"{candidate}: {error}")
            continue
        return parse_config(text), candidate
    return None, "; ".join(reasons)


def kernel_version() -> int:
    """KERNEL_VERSION(a, b, c) of the running kernel (uname -r)."""
    return kernel_version_code(os.uname().release)


def _has_syscall_wrapper() -> bool:
    try:
        prefix = syscall_wrapper_prefix()
    except UnsupportedMachine:
        return False
    return find_symbol(f"{prefix}sys_bpf") is not None


def linux_values() -> Dict[str, int]:
    """LINUX_KERNEL_VERSION, LINUX_HAS_BPF_COOKIE and LINUX_HAS_SYSCALL_WRAPPER for this kernel."""
    return {
        "LINUX_KERNEL_VERSION": kernel_version(),
        "LINUX_HAS_BPF_COOKIE": int(bool(features.bpf_cookie())),
        "LINUX_HAS_SYSCALL_WRAPPER": int(_has_syscall_wrapper()),
    }


def resolve_ksym(extern: ExternSpec, local: Btf, kernel: Optional[Btf]) -> Optional[ResolvedSymbol]:
    """Where ``__ksym`` extern ``extern`` is in this kernel; None for a weak one it lacks (ElfError for a strong one).

    Typed variables and kfuncs by BTF id in the kernel's BTF (by essential
    name, so ``foo___v2`` finds ``foo``), untyped ones by /proc/kallsyms
    address.
    """
    name = essential_name(extern.name)
    if extern.typed:
        if kernel is None:
            raise ElfError(f"__ksym extern {extern.name!r} is typed, and this kernel has no BTF to find it in")
        kind = BtfKind.FUNC if extern.is_function else BtfKind.VAR
        try:
            return ResolvedSymbol(btf_id=kernel.find(name, kind))
        except BtfError:
            if extern.weak:
                return None
            what = "kfunc" if extern.is_function else "variable"
            raise ElfError(f"__ksym extern {extern.name!r}: this kernel's BTF has no {what} {name!r}") from None
    found = [s for s in lookup(name) if s.module is None and s.name == name]
    if not found:
        if extern.weak:
            return None
        raise ElfError(f"__ksym extern {extern.name!r}: no symbol {name!r} in /proc/kallsyms")
    if not found[0].address:
        raise ElfError(f"__ksym extern {extern.name!r}: /proc/kallsyms hides its address (kptr_restrict; needs root)")
    return ResolvedSymbol(address=found[0].address)
