"""/proc/kallsyms lookups that survive compiler-renamed functions.

GCC clones functions it specialises (``do_sys_openat2.isra.0``,
``.constprop.0``, ``.part.0``); a kprobe must use the name as the kernel
spells it. ``.cold`` parts are split-off unlikely paths, not entry points,
so they never match.
"""

from __future__ import annotations

import re
from typing import Iterator, Optional

from ..fieldtuple import FieldTuple

__all__ = ["KernelSymbol", "find_symbol", "lookup", "open_syscall_function"]

KALLSYMS = "/proc/kallsyms"


class KernelSymbol(FieldTuple):
    """One /proc/kallsyms line. ``address`` is 0 when kptr_restrict hides it."""

    name: str
    address: int
    kind: str  # nm-style type letter: t/T text, d/D data, ...
    module: Optional[str] = None

    @property
    def is_function(self) -> bool:
        return self.kind in "tTwW"


_LINE = re.compile(rb"([0-9a-fA-F]+) (\w) (\S+?)(?:\t\[(\S+)\])?")
_CHUNK = 1 << 18


def _matching_lines(data: bytes, needle: bytes) -> Iterator[bytes]:
    # bytes.find is ~100x faster than a multiline regex over the 5 MB file;
    # only the few lines containing the name are parsed.
    pos = data.find(needle)
    while pos >= 0:
        start = data.rfind(b"\n", 0, pos) + 1
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        yield data[start:end]
        pos = data.find(needle, end)


def _scan(name: str, path: str) -> Iterator[KernelSymbol]:
    """Symbols named ``name`` or ``name.<suffix>`` (never ``.cold``), in file order.

    Reads in chunks so a caller that is satisfied early stops reading: the
    kernel formats /proc/kallsyms on the fly, and reading all of it costs
    tens of milliseconds.
    """
    encoded = name.encode()
    needle = b" " + encoded
    carry = b""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            data = carry + chunk
            if chunk:
                cut = data.rfind(b"\n") + 1
                data, carry = data[:cut], data[cut:]
            for line in _matching_lines(data, needle):
                match = _LINE.fullmatch(line)
                if not match:
                    continue
                symbol_name = match.group(3)
                suffix = symbol_name[len(encoded) :]
                if not symbol_name.startswith(encoded) or (suffix and not suffix.startswith(b".")):
                    continue
                if b".cold" in suffix:
                    continue
                yield KernelSymbol(
                    name=symbol_name.decode(),
                    address=int(match.group(1), 16),
                    kind=match.group(2).decode(),
                    module=match.group(4).decode() if match.group(4) else None,
                )
            if not chunk:
                return


def lookup(name: str, path: str = KALLSYMS) -> list[KernelSymbol]:
    """Every symbol named ``name`` or ``name.<suffix>`` (suffix not ``.cold``); exact matches first."""
    found = list(_scan(name, path))
    return [s for s in found if s.name == name] + [s for s in found if s.name != name]


def find_symbol(name: str, path: str = KALLSYMS, *, functions_only: bool = True) -> KernelSymbol | None:
    """The best match for ``name``: exact, else the first compiler-suffixed one; None if absent."""
    fallback = None
    for symbol in _scan(name, path):
        if functions_only and not symbol.is_function:
            continue
        if symbol.name == name:
            return symbol
        fallback = fallback or symbol
    return fallback


def open_syscall_function(path: str = KALLSYMS) -> KernelSymbol | None:
    """The kernel function every open path goes through.

    ``do_sys_openat2`` since 5.6 (it takes ``struct open_how *``), else
    ``do_sys_open`` (flags passed directly). None if neither is found.
    """
    return find_symbol("do_sys_openat2", path) or find_symbol("do_sys_open", path)
