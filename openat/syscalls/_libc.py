"""Raw access to libc's syscall(2), ioctl(2) and mount(2) through ctypes.

Nothing here knows about BPF semantics: callers get ``(result, errno)`` and
turn errno into the project's exceptions themselves, because only the caller
knows what was being attempted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

__all__ = [
    "ARCH",
    "NR_BPF",
    "NR_PERF_EVENT_OPEN",
    "buffer_address",
    "c_string",
    "ioctl",
    "mount",
    "syscall",
    "umount",
]

# Syscall numbers differ per architecture; these are the only two we need.
_SYSCALL_NUMBERS = {
    "x86_64": {"bpf": 321, "perf_event_open": 298},
    "aarch64": {"bpf": 280, "perf_event_open": 241},
}

_machine = platform.machine()
ARCH = {"amd64": "x86_64", "arm64": "aarch64"}.get(_machine, _machine)
try:
    NR_BPF = _SYSCALL_NUMBERS[ARCH]["bpf"]
    NR_PERF_EVENT_OPEN = _SYSCALL_NUMBERS[ARCH]["perf_event_open"]
except KeyError:  # pragma: no cover - only reached on unsupported machines
    NR_BPF = NR_PERF_EVENT_OPEN = -1


def _load_libc() -> ctypes.CDLL:
    # find_library() runs ldconfig in a subprocess (tens of ms): try the
    # glibc soname first and only search when that fails (musl, ...).
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


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


def syscall(number: int, *args: int | ctypes._SimpleCData | ctypes._Pointer) -> tuple[int, int]:
    """Call syscall(2); return ``(result, errno)`` where errno is 0 on success."""
    if number < 0:
        raise OSError(38, f"syscall not available on {_machine}")  # ENOSYS
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


def buffer_address(buf: ctypes.Array | None) -> int:
    """Address of a ctypes buffer as the u64 the kernel ABI wants (0 for None)."""
    return ctypes.addressof(buf) if buf is not None else 0


def c_string(text: str | bytes) -> ctypes.Array:
    """A NUL-terminated ctypes buffer; the caller must keep it alive during the call."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    return ctypes.create_string_buffer(data)
