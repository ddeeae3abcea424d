"""BTF, the BPF Type Format (pure: bytes in, no syscalls, any OS).

``reader``: :class:`Btf`, a lazy reader of any BTF blob (the names below).
``ext``: an object's ``.BTF.ext`` (func_info, line_info, CO-RE records).
``core``: CO-RE relocations resolved against a target BTF, libbpf's rules.
``writer``: BTF written back for BPF_BTF_LOAD, patched and sanitized.
The three are imported by name (``from openat.btf.core import resolve``),
so the tracer, which needs only the reader, loads nothing more.

The running kernel's BTF comes from :func:`openat.syscalls.btf.vmlinux_btf`,
which maps /sys/kernel/btf/vmlinux and hands it to :class:`Btf`.
"""

from .reader import (
    BTF_INT_BOOL,
    BTF_INT_CHAR,
    BTF_INT_SIGNED,
    BTF_MAGIC,
    MAX_DEPTH,
    Btf,
    BtfError,
    BtfHeader,
    BtfKind,
    BtfType,
    BtfTypeRecord,
    DatasecEntry,
    EnumValue,
    Member,
    Param,
)
from .reader import __all__  # noqa: F401  the package's names are the reader's
