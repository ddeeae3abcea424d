"""BTF, the BPF Type Format: a lazy reader (pure: bytes in, no syscalls, any OS).

The running kernel's BTF comes from :func:`openat.syscalls.btf.vmlinux_btf`,
which maps /sys/kernel/btf/vmlinux and hands it to :class:`Btf`.
"""

from .reader import BTF_MAGIC, MAX_DEPTH, Btf, BtfError, BtfHeader, BtfKind, BtfType, BtfTypeRecord, Member, Param

__all__ = ["BTF_MAGIC", "MAX_DEPTH", "Btf", "BtfError", "BtfHeader", "BtfKind", "BtfType", "BtfTypeRecord", "Member", "Param"]
