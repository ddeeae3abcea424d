"""The running kernel's BTF: /sys/kernel/btf/vmlinux, mapped and read with :class:`openat.btf.Btf`.

``python -m openat.syscalls.btf [FUNC]`` looks up FUNC and ``pt_regs`` and
says how long it took and how much memory it cost.
"""

from __future__ import annotations

import errno as _errno
import functools
import os
from typing import List, Optional

from ..btf import Btf, BtfError, BtfKind
from .errors import NotSupportedError
from .libc import MappedFile

__all__ = ["VMLINUX_BTF", "Btf", "BtfError", "BtfKind", "read_btf_file", "vmlinux_btf"]

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
