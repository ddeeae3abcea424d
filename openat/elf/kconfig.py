"""``__kconfig`` externs: the ``.kconfig`` map's bytes from a kernel config text (pure).

``extern int CONFIG_HZ __kconfig;`` reads the running kernel's config;
the loader finds it (/proc/config.gz, /boot/config-RELEASE) and this module
turns its text into the values, encoded by each extern's C type as libbpf
does:

=========================  ================================================
C type                     config value
=========================  ================================================
``bool``                   ``y`` -> 1, ``n`` -> 0 (``m`` is an error)
``enum libbpf_tristate``   ``n`` -> 0, ``y`` -> 1, ``m`` -> 2
``char``                   the letter itself: ``'y'``, ``'n'``, ``'m'``
``char[N]``                a quoted string, NUL-terminated, cut to N - 1
integers                   a number (decimal, 0x hex, 0 octal), checked to fit
=========================  ================================================

``LINUX_KERNEL_VERSION``, ``LINUX_HAS_BPF_COOKIE`` and
``LINUX_HAS_SYSCALL_WRAPPER`` are not in any config file: the caller gives
them (``linux``). A strong (non-``__weak``) extern without a value is an
error naming it; a weak one stays 0.
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional

from ..btf import BTF_INT_BOOL, BTF_INT_CHAR, BTF_INT_SIGNED, Btf, BtfKind
from .errors import ElfError

__all__ = ["kconfig_data", "kernel_version_code", "parse_config"]

LINUX_VALUES = ("LINUX_KERNEL_VERSION", "LINUX_HAS_BPF_COOKIE", "LINUX_HAS_SYSCALL_WRAPPER")


def kernel_version_code(release: str) -> int:
    """KERNEL_VERSION(a, b, c) of a release string such as ``6.1.0-56-amd64`` (c capped at 255, as the kernel does)."""
    numbers = []
    for part in release.split(".")[:3]:
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        numbers.append(int(digits or 0))
    while len(numbers) < 3:
        numbers.append(0)
    major, minor, patch = numbers
    return major << 16 | minor << 8 | min(patch, 255)


def parse_config(text: str) -> Dict[str, str]:
    """``CONFIG_NAME=value`` lines of a kernel config; comments (``# CONFIG_X is not set``) and blanks skipped."""
    values: Dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        if equals and name.startswith("CONFIG_"):
            values[name] = value
    return values


def _encode(btf: Btf, extern, value: str) -> bytes:
    """One extern's bytes from its config ``value`` (ElfError naming it when the type cannot hold it)."""
    where = f"kconfig extern {extern.name!r}"
    t = btf.type(btf.resolve(extern.value_type_id))
    size = extern.size
    if t.kind == BtfKind.INT and t.encoding & BTF_INT_BOOL:
        if value not in ("y", "n"):
            raise ElfError(f"{where} is a bool, and the config says {value!r} (only y or n)")
        return bytes([value == "y"]) + bytes(size - 1)
    if t.kind == BtfKind.ENUM and t.name == "libbpf_tristate":
        if value not in ("y", "n", "m"):
            raise ElfError(f"{where} is a tristate, and the config says {value!r}")
        return {"n": 0, "y": 1, "m": 2}[value].to_bytes(size, "little")
    if t.kind == BtfKind.INT and size == 1 and t.encoding & BTF_INT_CHAR and value in ("y", "n", "m"):
        return value.encode()
    if t.kind == BtfKind.ARRAY:
        element = btf.type(btf.resolve(t.type_id or 0))
        if element.kind == BtfKind.INT and element.size == 1:
            if len(value) < 2 or value[0] != '"' or value[-1] != '"':
                raise ElfError(f"{where} is a char array, and the config value {value!r} is not a quoted string")
            text = value[1:-1].encode()[: size - 1]
            return text + bytes(size - len(text))
    if t.kind in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64):
        return _number(value, size, t.kind == BtfKind.INT and bool(t.encoding & BTF_INT_SIGNED) or t.kind_flag, where)
    raise ElfError(f"{where}: its type cannot hold a config value")


def _number(value: str, size: int, signed: bool, where: str) -> bytes:
    text = value.strip('"')
    try:
        number = int(text, 0)
    except ValueError:
        if text in ("y", "n"):
            number = int(text == "y")
        else:
            raise ElfError(f"{where} is an integer, and the config says {value!r}") from None
    low, high = (-(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1) if signed else (0, (1 << (8 * size)) - 1)
    if not low <= number <= high:
        raise ElfError(f"{where}: {number} does not fit in {size} bytes")
    return number.to_bytes(size, "little", signed=number < 0)


def kconfig_data(btf: Btf, externs: Iterable, size: int, config: Optional[Dict[str, str]], linux: Dict[str, int]) -> bytes:
    """The ``.kconfig`` map's value: each kconfig extern's bytes at its offset.

    ``config`` from :func:`parse_config` (None: the kernel's config could
    not be read); ``linux`` the LINUX_* values.
    """
    data = bytearray(size)
    for extern in externs:
        if extern.kind != "kconfig":
            continue
        if extern.name.startswith("LINUX_"):
            if extern.name not in LINUX_VALUES:
                raise ElfError(f"kconfig extern {extern.name!r}: unknown LINUX_ value (known: {', '.join(LINUX_VALUES)})")
            value: Optional[str] = str(int(linux.get(extern.name, 0)))
            if extern.name != "LINUX_KERNEL_VERSION":
                value = "y" if int(value) else "n"
        elif config is None:
            if not extern.weak:
                raise ElfError(f"kconfig extern {extern.name!r}: the kernel's config is unreadable (no /proc/config.gz or /boot/config-*)")
            continue
        else:
            value = config.get(extern.name)
        if value is None:
            if not extern.weak:
                raise ElfError(f"kconfig extern {extern.name!r} is not set in the kernel's config (declare it __weak to allow that)")
            continue
        data[extern.offset : extern.offset + extern.size] = _encode(btf, extern, value)
    return bytes(data)
