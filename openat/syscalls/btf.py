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

__all__ = [
    "VMLINUX_BTF", "Btf", "BtfError", "BtfFd", "BtfKind", "BtfLoadError", "btf_load", "index_cache_path", "read_btf_file",
    "save_vmlinux_index", "vmlinux_btf",
]

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
    """The running kernel's BTF, read once per process (NotSupportedError when absent).

    Its type index comes from the cache :func:`save_vmlinux_index` wrote, when
    that was made from this very file in this boot.
    """
    btf = read_btf_file(path)
    key = _index_key(path)
    if key is not None:
        state = _read_index(key)
        if state is not None:
            btf.adopt_index(state)
    return btf


# The index cache. Walking the ~130,000 types of vmlinux BTF to count them
# (which is how corrupt BTF is found) costs ~15 ms of every tracer's start-up.
# The file cannot change while the kernel runs, so a walk made once per boot
# holds until the next: the key is the boot's id and the file's identity on
# sysfs. A file that is not sysfs's own (a copy, or bind-mounted over it, as
# the corrupt-BTF tests do) has no key and is always walked.
_INDEX_MAGIC = b"openat-btf-index-1\n"


def index_cache_path() -> Optional[str]:
    """Where the index is kept: $OPENAT_CACHE_DIR (empty: no cache), else $XDG_CACHE_HOME/openat or ~/.cache/openat."""
    directory = os.environ.get("OPENAT_CACHE_DIR")
    if directory is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        directory = os.path.join(base, "openat")
    return os.path.join(directory, "vmlinux-btf.index") if directory else None


def _index_key(path: str) -> Optional[bytes]:
    """This boot's id and the file's identity, or None when ``path`` is not the kernel's own file on sysfs."""
    try:
        st = os.stat(path)
        if st.st_dev != os.stat("/sys").st_dev:
            return None
        with open("/proc/sys/kernel/random/boot_id", "rb") as f:
            boot = f.read().strip()
    except OSError:
        return None
    return b"%s %d %d %d %d\n" % (boot, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _read_index(key: bytes) -> Optional[bytes]:
    where = index_cache_path()
    if where is None:
        return None
    try:
        with open(where, "rb") as f:
            st = os.fstat(f.fileno())
            # Root run with a user's $HOME (sudo -E) must not take an index that
            # user wrote: wrong marks would give wrong offsets, not an error.
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return None
            data = f.read()
    except OSError:
        return None
    head = _INDEX_MAGIC + key
    return data[len(head):] if data.startswith(head) else None


def save_vmlinux_index(btf: Btf, path: str = VMLINUX_BTF) -> bool:
    """Keep ``btf``'s index (once its walk is complete) for the next process of this boot; best effort."""
    state = btf.index_state()
    key = _index_key(path)
    where = index_cache_path()
    if state is None or key is None or where is None or _read_index(key) == state:
        return False
    try:
        os.makedirs(os.path.dirname(where), mode=0o700, exist_ok=True)
        temporary = f"{where}.{os.getpid()}"
        with open(temporary, "wb") as f:
            f.write(_INDEX_MAGIC + key + state)
        os.replace(temporary, where)  # atomic: a concurrent start-up reads the old index or the new
    except OSError:
        return False
    return True


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
