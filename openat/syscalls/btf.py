"""BTF and the kernel: its own (/sys/kernel/btf/vmlinux, mapped and read with :class:`openat.btf.Btf`),
and an object's, handed to it with BPF_BTF_LOAD (:func:`btf_load`, a :class:`BtfFd`).

``python -m openat.syscalls.btf [FUNC]`` looks up FUNC and ``pt_regs`` and
says how long it took and how much memory it cost.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import os
from typing import List, Optional

from ..btf import Btf, BtfError, BtfKind
from ..uapi import Cmd
from .attrs import BtfInfoStruct, BtfLoadAttr, InfoAttr, bpf, bpf_or_raise
from .errors import BpfError, NotSupportedError, error_from_errno
from .fd import OwnedFd
from .libc import MappedFile

__all__ = ["VMLINUX_BTF", "Btf", "BtfError", "BtfFd", "BtfKind", "BtfLoadError", "btf_load", "read_btf_file", "vmlinux_btf"]

_BTF_LOG_SIZE = 1 << 20

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"


def read_btf_file(path: str) -> Btf:
    """A BTF file, mapped where the kernel allows it (sysfs BTF since Linux 6.16), else read.

    A private read-only mapping costs ~0.1 ms and no resident memory until
    touched; read() of the 5 MB vmlinux BTF takes ~5 ms, 4 KiB a call.
    NotSupportedError when the file is missing.
    """
    try:
        with open(path, "rb") as f:
            try:
                mapping = MappedFile(f.fileno(), os.fstat(f.fileno()).st_size)
            except OSError:
                return Btf(f.read())
            return Btf(mapping.buffer, find=mapping.find)
    except FileNotFoundError:
        raise NotSupportedError(_errno.ENOENT, "btf", f"{path} missing: kernel built without CONFIG_DEBUG_INFO_BTF") from None


@functools.lru_cache(maxsize=1)
def vmlinux_btf(path: str = VMLINUX_BTF) -> Btf:
    """The running kernel's BTF, read once per process (NotSupportedError when absent)."""
    return read_btf_file(path)


class BtfLoadError(BpfError):
    """BPF_BTF_LOAD refused the blob; ``log`` is the kernel's BTF verifier log, ``str()`` ends with its verdict."""

    def __init__(self, err: int, message: str, log: str) -> None:
        super().__init__(err, "BPF_BTF_LOAD", message)
        self.log = log


class BtfFd(OwnedFd):
    """BTF the kernel holds: programs (``prog_btf_fd``) and maps (``btf_fd``) refer to its types by id."""

    __slots__ = ()

    @property
    def id(self) -> int:
        """Kernel-wide BTF id (``bpftool btf show``)."""
        info = BtfInfoStruct()
        attr = InfoAttr(bpf_fd=self.fileno(), info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
        bpf_or_raise(Cmd.OBJ_GET_INFO_BY_FD, attr, f"info of BTF fd {self.fileno()}")
        return info.id


def btf_load(data: bytes, *, log_size: int = _BTF_LOG_SIZE) -> BtfFd:
    """BPF_BTF_LOAD ``data`` (a whole BTF blob, header first).

    Loads without a log first; when the kernel refuses, loads again with
    one and raises :class:`BtfLoadError` quoting the kernel's reason (its
    last log lines name the type it rejected).
    """
    data = bytes(data)
    blob = ctypes.create_string_buffer(data, len(data))
    attr = BtfLoadAttr(btf=ctypes.addressof(blob), btf_size=len(data))
    fd, err = bpf(Cmd.BTF_LOAD, attr)
    if not err:
        return BtfFd(fd)
    if err in (_errno.EPERM, _errno.EACCES, _errno.E2BIG, _errno.ENOMEM):
        raise error_from_errno(err, "BPF_BTF_LOAD", f"load {len(data)} bytes of BTF")
    log_buf = ctypes.create_string_buffer(log_size)
    attr.btf_log_buf, attr.btf_log_size, attr.btf_log_level = ctypes.addressof(log_buf), log_size, 1
    fd, err = bpf(Cmd.BTF_LOAD, attr)
    if not err:  # refused without a log, accepted with one: take it
        return BtfFd(fd)
    log = log_buf.value.decode(errors="replace")
    reason = "; ".join(line.strip() for line in log.strip().splitlines()[-2:] if line.strip())
    base = str(error_from_errno(err, "BPF_BTF_LOAD", f"load {len(data)} bytes of BTF"))
    raise BtfLoadError(err, f"{base}; kernel says: {reason}" if reason else base, log)


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _main(argv: Optional[List[str]] = None) -> int:
    """``python -m openat.syscalls.btf [FUNC]``: look up FUNC and pt_regs, report time and memory."""
    import argparse
    import time

    from ..arch import pt_regs_offsets

    parser = argparse.ArgumentParser(prog="python -m openat.syscalls.btf", description=_main.__doc__)
    parser.add_argument("function", nargs="?", default="do_sys_openat2")
    parser.add_argument("--path", default=VMLINUX_BTF)
    args = parser.parse_args(argv)
    rss_before = _rss_kib()
    start = time.perf_counter()
    btf = read_btf_file(args.path)
    func = btf.func_id(args.function)
    regs = pt_regs_offsets(btf=btf)
    how = btf.member_offset("open_how", "flags")
    elapsed = time.perf_counter() - start
    params = ", ".join(p.name for p in btf.func_params(args.function))
    print(f"{args.function}: BTF id {func} ({params})")
    print("pt_regs: " + " ".join(f"{name}={offset}" for name, offset in regs.items()))
    print(f"open_how.flags: {how}")
    print(f"{len(btf)} types; lookups took {elapsed * 1000:.1f} ms, RSS +{(_rss_kib() - rss_before) / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
