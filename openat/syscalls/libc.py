"""Raw access to libc's syscall(2), ioctl(2), mount(2), setns(2) and unshare(2) through ctypes.

Nothing here knows about BPF semantics: callers get ``(result, errno)`` and
turn errno into the project's exceptions themselves, because only the caller
knows what was being attempted.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import weakref

from ..arch import UnsupportedMachine, arch

__all__ = [
    "MappedFile",
    "NR_BPF",
    "NR_PERF_EVENT_OPEN",
    "buffer_address",
    "c_string",
    "ioctl",
    "mount",
    "setns",
    "syscall",
    "umount",
    "unshare",
]

try:
    _SYSCALLS = arch().syscalls
except UnsupportedMachine:  # pragma: no cover - only reached on unsupported machines
    _SYSCALLS = {}
NR_BPF = _SYSCALLS.get("bpf", -1)
NR_PERF_EVENT_OPEN = _SYSCALLS.get("perf_event_open", -1)


def _load_libc() -> ctypes.CDLL:
    # find_library() runs ldconfig in a subprocess (tens of ms), and merely
    # importing ctypes.util imports subprocess: try the glibc soname first and
    # only search when that fails (musl, ...).
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes.util import find_library

        return ctypes.CDLL(find_library("c"), use_errno=True)


_libc = _load_libc()

_syscall = _libc.syscall
_syscall.restype = ctypes.c_long  # argtypes stay unset: syscall() is variadic

_ioctl = _libc.ioctl
_ioctl.restype = ctypes.c_int
_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]

_mount = _libc.mount
_mount.restype = ctypes.c_int
_mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]

_umount2 = _libc.umount2
_umount2.restype = ctypes.c_int
_umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

_setns = _libc.setns
_setns.restype = ctypes.c_int
_setns.argtypes = [ctypes.c_int, ctypes.c_int]

_unshare = _libc.unshare
_unshare.restype = ctypes.c_int
_unshare.argtypes = [ctypes.c_int]

_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_MAP_FAILED = ctypes.c_void_p(-1).value

_munmap = _libc.munmap
_munmap.restype = ctypes.c_int
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]

_memmem = _libc.memmem
_memmem.restype = ctypes.c_void_p
_memmem.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]


def syscall(number: int, *args: int | ctypes._SimpleCData | ctypes._Pointer) -> tuple[int, int]:
    """Call syscall(2); return ``(result, errno)`` where errno is 0 on success."""
    if number < 0:
        raise OSError(38, f"syscall not available on {os.uname().machine}")  # ENOSYS
    converted = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    result = _syscall(ctypes.c_long(number), *converted)
    if result < 0:
        return result, ctypes.get_errno()
    return result, 0


def ioctl(fd: int, request: int, arg: int = 0) -> tuple[int, int]:
    """ioctl(2) with an integer argument; return ``(result, errno)``."""
    result = _ioctl(fd, request, arg)
    if result < 0:
        return result, ctypes.get_errno()
    return result, 0


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str | None = None) -> None:
    """mount(2); raise OSError on failure."""
    result = _mount(
        source.encode(), target.encode(), fstype.encode(), flags, data.encode() if data else None
    )
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount -t {fstype} {source} {target}: {os.strerror(err)}")


def umount(target: str, flags: int = 0) -> None:
    """umount2(2); raise OSError on failure."""
    if _umount2(target.encode(), flags) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def setns(fd: int, nstype: int) -> None:
    """setns(2): move the calling thread into the namespace ``fd`` refers to; raise OSError on failure."""
    if _setns(fd, nstype) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns(fd {fd}): {os.strerror(err)}")


def unshare(flags: int) -> None:
    """unshare(2) for the calling thread; raise OSError on failure."""
    if _unshare(flags) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare({flags:#x}): {os.strerror(err)}")


def buffer_address(buf: ctypes.Array | None) -> int:
    """Address of a ctypes buffer as the u64 the kernel ABI wants (0 for None)."""
    return ctypes.addressof(buf) if buf is not None else 0


def c_string(text: str | bytes) -> ctypes.Array:
    """A NUL-terminated ctypes buffer; the caller must keep it alive during the call."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    return ctypes.create_string_buffer(data)


class MappedFile:
    """The first ``size`` bytes of a file, mapped private and read-only, with a C-speed ``find``.

    ``buffer`` is a ctypes char array over the mapping: it has the buffer
    protocol (``memoryview``, ``struct.unpack_from``) and its slices are
    bytes. The mapping goes when neither this object nor ``buffer`` nor a view
    of it is referenced any more. Python's ``mmap`` would keep a dup of the fd
    open for as long as the mapping lives (3.11 has no ``trackfd``), and its
    ``find`` is several times slower than glibc's ``memmem``.
    """

    def __init__(self, fd: int, size: int) -> None:
        if size <= 0:
            raise OSError(22, "cannot map an empty file")  # EINVAL, as mmap(2) would say
        address = _mmap(None, size, mmap.PROT_READ, mmap.MAP_PRIVATE, fd, 0)
        if address is None or address == _MAP_FAILED:
            err = ctypes.get_errno()
            raise OSError(err, f"mmap: {os.strerror(err)}")
        self.address = address
        self.size = size
        self.buffer = (ctypes.c_char * size).from_address(address)
        self.buffer._mapping = self  # a view of the buffer keeps the mapping (a cycle the gc collects)
        finalizer = weakref.finalize(self, _munmap, address, size)
        finalizer.atexit = False  # the process's exit unmaps; nothing may touch it after that anyway

    def find(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        """Like ``bytes.find``: the lowest offset of ``sub`` within [start, end), or -1."""
        end = self.size if end is None else min(end, self.size)
        start = max(start, 0)
        if end - start < len(sub):
            return -1
        found = _memmem(self.address + start, end - start, sub, len(sub))
        return -1 if found is None else found - self.address
