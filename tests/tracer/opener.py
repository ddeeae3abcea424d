"""A child process for the end-to-end tests: it opens files on command.

Usage: python opener.py COMM; then lines on stdin, each one of
``open PATH FLAGS``, ``openat2 PATH FLAGS``, ``openrel DIR NAME FLAGS`` or
``open_at_dir DIR NAME FLAGS``; it answers each with ``RESULT`` (fd or -errno)
and exits at end of input. Its first line out is its pid.
"""

import ctypes
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NAME = 15
SYS_OPENAT2 = 437


class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(path: bytes, flags: int) -> int:
    how = OpenHow(flags, 0o600, 0)
    fd = libc.syscall(SYS_OPENAT2, -100, ctypes.c_char_p(path), ctypes.byref(how), ctypes.sizeof(how))
    return fd if fd >= 0 else -ctypes.get_errno()


def plain_open(path: bytes, flags: int, dir_fd=None) -> int:
    try:
        return os.open(path, flags, 0o600, dir_fd=dir_fd)
    except OSError as error:
        return -error.errno


def main() -> None:
    libc.prctl(PR_SET_NAME, sys.argv[1].encode(), 0, 0, 0)
    print(os.getpid(), flush=True)
    for line in sys.stdin:
        verb, *rest = line.split()
        if verb == "open":
            result = plain_open(bytes.fromhex(rest[0]), int(rest[1]))
        elif verb == "openat2":
            result = openat2(bytes.fromhex(rest[0]), int(rest[1]))
        elif verb == "openrel":  # relative to the working directory
            os.chdir(bytes.fromhex(rest[0]))
            result = plain_open(bytes.fromhex(rest[1]), int(rest[2]))
        elif verb == "open_at_dir":  # relative to a directory fd
            dir_fd = os.open(bytes.fromhex(rest[0]), os.O_RDONLY | os.O_DIRECTORY)
            result = plain_open(bytes.fromhex(rest[1]), int(rest[2]), dir_fd=dir_fd)
            print(f"dfd {dir_fd}", flush=True)
        else:
            raise SystemExit(f"unknown verb {verb}")
        print(result, flush=True)
        # Keep the fd open: the tests resolve --full-path while we live.


if __name__ == "__main__":
    main()
