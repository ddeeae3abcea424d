"""Open flag names, as the kernel numbers them on each machine.

Python's ``os.O_*`` come from the C library, which defines O_LARGEFILE as 0
on 64-bit machines although the kernel has a bit for it; these tables follow
the kernel's uapi headers instead (:mod:`openat.arch` holds them: ``asm-generic/fcntl.h``,
and arm64's own values for the four flags it moves).
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

from ..arch import arch
from ..uapi import O_ACCMODE

ACCESS_MODES = {"O_RDONLY": 0, "O_WRONLY": 1, "O_RDWR": 2}
_ALIASES = {"O_NDELAY": "O_NONBLOCK", "O_FSYNC": "O_SYNC", "O_RSYNC": "O_SYNC", "FASYNC": "O_ASYNC"}


def flag_bits(machine: Optional[str] = None) -> Dict[str, int]:
    """Name → bit of every open flag other than the access modes, on ``machine`` (default: this one)."""
    return dict(arch(machine).open_flags)


class FlagError(ValueError):
    """An unknown flag name."""


def split_flag_list(spec: str) -> List[str]:
    """``"O_WRONLY,O_CREAT"`` -> its names; FlagError for an empty list or an empty name in it."""
    names = [name.strip() for name in spec.split(",")]
    if not any(names):
        raise FlagError(f"empty flag list {spec!r}: name at least one flag, e.g. -f O_WRONLY")
    if not all(names):
        raise FlagError(f"empty flag name in {spec!r}: flags are separated by single commas")
    return names


def parse_flag_filter(names: Iterable[str], machine: Optional[str] = None) -> Tuple[Tuple[int, ...], int]:
    """``O_WRONLY,O_CREAT`` → (access modes, mask of other flags).

    An open passes when it has any of the flags: access modes are compared
    with ``flags & O_ACCMODE`` (O_RDONLY is 0, so no mask can select it),
    the other flags are tested as a mask.
    Names are case-insensitive and the ``O_`` prefix is optional.
    """
    bits = flag_bits(machine)
    modes = []
    mask = 0
    for raw in names:
        name = raw.strip().upper()
        if not name:
            raise FlagError("empty flag name")
        if not name.startswith("O_") and name != "FASYNC":
            name = "O_" + name
        name = _ALIASES.get(name, name)
        if name in ACCESS_MODES:
            if ACCESS_MODES[name] not in modes:
                modes.append(ACCESS_MODES[name])
        elif name in bits:
            mask |= bits[name]
        else:
            known = ", ".join(sorted(list(ACCESS_MODES) + list(bits)))
            raise FlagError(f"unknown open flag {raw.strip()!r}; known flags: {known}")
    return tuple(modes), mask


def flag_names(flags: int, machine: Optional[str] = None) -> List[str]:
    """``["O_WRONLY", "O_CREAT", "O_TRUNC"]`` for 0o1101: the access mode first, then each flag's
    own bit as the filter matches it (so C's O_SYNC, which includes O_DSYNC, shows as both);
    bits no name covers in hex, and so an access mode of 3, which has no name."""
    mode = flags & O_ACCMODE
    names = [name for name, value in ACCESS_MODES.items() if value == mode] or [hex(mode)]
    rest = flags & ~O_ACCMODE
    for name, bit in flag_bits(machine).items():
        if rest & bit:
            names.append(name)
            rest &= ~bit
    if rest:
        names.append(hex(rest))
    return names


def describe_flags(flags: int, machine: Optional[str] = None) -> str:
    """``O_WRONLY|O_CREAT|O_TRUNC`` for 0o1101 (unknown bits in hex)."""
    return "|".join(flag_names(flags, machine))
