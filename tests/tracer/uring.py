"""A small io_uring program for the tests: opens files with IORING_OP_OPENAT and IORING_OP_OPENAT2.

Raw syscalls through ctypes (io_uring_setup, io_uring_enter) and the rings
mapped with mmap, so no liburing is needed. Usage:

    python uring.py [--dir DIR] [--bad-dfd] PATH...

opens each PATH with IORING_OP_OPENAT then IORING_OP_OPENAT2 (O_RDONLY;
relative to DIR, opened as the requests' dfd, when given; to fd 9999 with
--bad-dfd) and prints one line per request: ``openat PATH RESULT`` and
``openat2 PATH RESULT``, RESULT being the CQE's res (fd or -errno). Its
first line is its pid, or ``unsupported REASON`` when the kernel refuses io_uring.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
import sys
from typing import Iterator, Tuple

SYS_IO_URING_SETUP = 425  # the same number on x86_64 and arm64
SYS_IO_URING_ENTER = 426
IORING_OP_OPENAT = 18
IORING_OP_OPENAT2 = 28
IORING_ENTER_GETEVENTS = 1
IORING_FEAT_SINGLE_MMAP = 1
IORING_OFF_SQ_RING = 0
IORING_OFF_CQ_RING = 0x8000000
IORING_OFF_SQES = 0x10000000
AT_FDCWD = -100

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


class SqringOffsets(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in
                ("head", "tail", "ring_mask", "ring_entries", "flags", "dropped", "array", "resv1")] + [
        ("user_addr", ctypes.c_uint64)]


class CqringOffsets(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in
                ("head", "tail", "ring_mask", "ring_entries", "overflow", "cqes", "flags", "resv1")] + [
        ("user_addr", ctypes.c_uint64)]


class Params(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in
                ("sq_entries", "cq_entries", "flags", "sq_thread_cpu", "sq_thread_idle", "features", "wq_fd")] + [
        ("resv", ctypes.c_uint32 * 3), ("sq_off", SqringOffsets), ("cq_off", CqringOffsets)]


class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


SQE = struct.Struct("<BBHiQQIIQHHiQQ")  # opcode flags ioprio fd off/addr2 addr len open_flags user_data ...
CQE = struct.Struct("<QiI")


class Ring:
    """One io_uring instance with 8 entries, used synchronously: submit one, wait for it."""

    def __init__(self) -> None:
        self.params = Params()
        fd = libc.syscall(SYS_IO_URING_SETUP, 8, ctypes.byref(self.params))
        if fd < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        self.fd = fd
        p = self.params
        sq_size = p.sq_off.array + p.sq_entries * 4
        cq_size = p.cq_off.cqes + p.cq_entries * CQE.size
        if p.features & IORING_FEAT_SINGLE_MMAP:
            sq_size = cq_size = max(sq_size, cq_size)
        self.sq = mmap.mmap(fd, sq_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=IORING_OFF_SQ_RING)
        self.cq = self.sq if p.features & IORING_FEAT_SINGLE_MMAP else mmap.mmap(
            fd, cq_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=IORING_OFF_CQ_RING)
        self.sqes = mmap.mmap(fd, p.sq_entries * SQE.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                              offset=IORING_OFF_SQES)
        self.keep: list = []  # buffers the kernel reads until the request completes

    def _u32(self, area: mmap.mmap, offset: int, value: int = None) -> int:
        if value is not None:
            struct.pack_into("<I", area, offset, value)
        return struct.unpack_from("<I", area, offset)[0]

    def run(self, opcode: int, dfd: int, path: bytes, flags: int = os.O_RDONLY) -> int:
        """Submit one open request and wait for its completion: the CQE's res."""
        name = ctypes.create_string_buffer(path)
        mode = 0o600 if flags & (os.O_CREAT | os.O_TMPFILE) else 0  # openat2 refuses a mode it would not use
        how = OpenHow(flags, mode, 0)
        self.keep = [name, how]
        if opcode == IORING_OP_OPENAT:
            sqe = SQE.pack(opcode, 0, 0, dfd, 0, ctypes.addressof(name), mode, flags, 1, 0, 0, 0, 0, 0)
        else:
            sqe = SQE.pack(opcode, 0, 0, dfd, ctypes.addressof(how), ctypes.addressof(name), ctypes.sizeof(how), 0,
                           2, 0, 0, 0, 0, 0)
        p = self.params
        tail = self._u32(self.sq, p.sq_off.tail)
        index = tail & self._u32(self.sq, p.sq_off.ring_mask)
        self.sqes[index * SQE.size : (index + 1) * SQE.size] = sqe
        self._u32(self.sq, p.sq_off.array + index * 4, index)
        self._u32(self.sq, p.sq_off.tail, tail + 1)
        done = libc.syscall(SYS_IO_URING_ENTER, self.fd, 1, 1, IORING_ENTER_GETEVENTS, None, 0)
        if done < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        head = self._u32(self.cq, p.cq_off.head)
        slot = head & self._u32(self.cq, p.cq_off.ring_mask)
        _, res, _ = CQE.unpack_from(self.cq, p.cq_off.cqes + slot * CQE.size)
        self._u32(self.cq, p.cq_off.head, head + 1)
        return res


def opens(paths, dfd: int) -> Iterator[Tuple[str, bytes, int]]:
    ring = Ring()
    for path in paths:
        for label, opcode in (("openat", IORING_OP_OPENAT), ("openat2", IORING_OP_OPENAT2)):
            result = ring.run(opcode, dfd, path)
            if result >= 0:
                os.close(result)
            yield label, path, result


def main(argv) -> int:
    dfd = AT_FDCWD
    if argv[:1] == ["--dir"]:
        dfd = os.open(argv[1], os.O_RDONLY | os.O_DIRECTORY)
        argv = argv[2:]
    elif argv[:1] == ["--bad-dfd"]:
        dfd = 9999
        argv = argv[1:]
    try:
        Ring()
    except OSError as error:
        print(f"unsupported {error.strerror}", flush=True)
        return 0
    print(os.getpid(), flush=True)
    for label, path, result in opens([os.fsencode(p) for p in argv], dfd):
        print(label, os.fsdecode(path), result, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
