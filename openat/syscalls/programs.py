"""BPF programs: BPF_PROG_LOAD (with the verifier log mapped to source lines), BPF_PROG_TEST_RUN, :class:`ProgramFd`."""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from typing import Iterator, Optional, Sequence

from ..uapi import AttachType, Cmd, ProgType, enum_name
from . import libc
from .attrs import GetIdAttr, ProgLoadAttr, TestRunAttr, bpf, bpf_or_raise, sanitize_name
from .errors import BpfError, VerifierError, error_from_errno
from .fd import FdLike, OwnedFd, fd_of
from .info import ProgInfo, prog_info

__all__ = ["ProgramFd", "TestRunResult", "prog_get_fd_by_id", "prog_load", "prog_test_run"]

BPF_LOG_LEVEL1 = 1
# The kernel accepts up to UINT_MAX >> 2 (since 5.2); a log bigger than this
# helps nobody and would cost that much memory per retry.
_LOG_SIZE_MAX = 64 << 20
# Not a verdict on the code (privileges, attr size, a bad fd, memory): a
# verifier log would not explain more, so these are reported at once.
_NOT_THE_CODE = (_errno.EPERM, _errno.E2BIG, _errno.EBADF, _errno.EFAULT, _errno.ENOMEM)


class TestRunResult:
    """Outcome of BPF_PROG_TEST_RUN; unpacks as ``(retval, data_out, duration)``."""

    __slots__ = ("retval", "data_out", "duration", "ctx_out")
    __test__ = False  # not a pytest test class despite the name

    def __init__(self, retval: int, data_out: bytes, duration: int, ctx_out: bytes = b"") -> None:
        self.retval = retval
        self.data_out = data_out
        self.duration = duration
        self.ctx_out = ctx_out

    def __iter__(self) -> Iterator[object]:
        return iter((self.retval, self.data_out, self.duration))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TestRunResult):
            return NotImplemented
        return (self.retval, self.data_out, self.duration, self.ctx_out) == (
            other.retval, other.data_out, other.duration, other.ctx_out,
        )

    def __repr__(self) -> str:
        return f"TestRunResult(retval={self.retval}, data_out={self.data_out!r}, duration={self.duration})"


class ProgramFd(OwnedFd):
    """A loaded program. ``verifier_log`` holds the log when one was requested."""

    __slots__ = ("name", "prog_type", "expected_attach_type", "verifier_log")

    def __init__(self, fd: int, name: str, prog_type: int, expected_attach_type: int = 0, verifier_log: Optional[str] = None):
        super().__init__(fd)
        self.name = name
        self.prog_type = prog_type
        self.expected_attach_type = expected_attach_type
        self.verifier_log = verifier_log

    def info(self) -> ProgInfo:
        return prog_info(self)

    @property
    def id(self) -> int:
        """Kernel-wide program id (as shown by ``bpftool prog show``)."""
        return self.info().id

    def test_run(self, data_in: bytes = b"", ctx_in: bytes = b"", repeat: int = 1) -> TestRunResult:
        """BPF_PROG_TEST_RUN of this program (see :func:`prog_test_run`)."""
        return prog_test_run(self, data_in=data_in, ctx_in=ctx_in, repeat=repeat)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<ProgramFd {self.name!r} {enum_name(ProgType, self.prog_type)} {state}>"


def _load_once(attr: ProgLoadAttr, log_size: int) -> tuple[int, int, str, int]:
    """One PROG_LOAD attempt; returns (fd, errno, log text, log size the kernel wanted)."""
    log_buf = ctypes.create_string_buffer(log_size) if log_size else None
    attr.log_size = log_size
    attr.log_buf = ctypes.addressof(log_buf) if log_buf is not None else 0
    attr.log_true_size = 0
    fd, err = bpf(Cmd.PROG_LOAD, attr)
    log = log_buf.value.decode(errors="replace") if log_buf is not None else ""
    return fd, err, log, attr.log_true_size


def prog_load(
    code: bytes,
    prog_type: int,
    *,
    name: str,
    license: str = "GPL",
    expected_attach_type: int = 0,
    attach_btf_id: int = 0,
    attach_btf_obj_fd: int = 0,
    attach_prog_fd: int = 0,
    prog_flags: int = 0,
    kern_version: int = 0,
    btf_fd: int = 0,
    func_info: bytes = b"",
    func_info_rec_size: int = 0,
    line_info: bytes = b"",
    line_info_rec_size: int = 0,
    fd_array: Sequence[int] = (),
    slot_sources: Optional[Sequence[str]] = None,
    log_level: int = 0,
    log_size: int = 64 * 1024,
) -> ProgramFd:
    """BPF_PROG_LOAD ``code`` (raw 8-byte instruction slots).

    The first attempt runs without a verifier log (cheap); on rejection the
    load is repeated with ``log_level=1`` to obtain the log, growing the
    buffer from ``log_size`` while the kernel reports it truncated (ENOSPC or
    ``log_true_size``), and :class:`VerifierError` is raised with the log
    annotated by ``slot_sources`` (one source location per 8-byte slot). With
    ``log_level > 0`` the log is requested from the start and kept in
    ``ProgramFd.verifier_log``. ``btf_fd`` with ``func_info``/``line_info``
    (records as ``.BTF.ext`` holds them, instruction offsets in slots) lets
    the verifier name functions and source lines itself. ``fd_array``: the
    fds that BPF_PSEUDO_MAP_IDX loads and kfunc calls (``off``: the BTF of
    a module) index.
    """
    code = bytes(code)
    if not code or len(code) % 8:
        raise ValueError(f"program {name!r}: code length {len(code)} is not a positive multiple of 8")
    buffers = [ctypes.create_string_buffer(code, len(code)), libc.c_string(license)]
    attr = ProgLoadAttr(
        prog_type=prog_type,
        insn_cnt=len(code) // 8,
        insns=ctypes.addressof(buffers[0]),
        license=ctypes.addressof(buffers[1]),
        kern_version=kern_version,
        prog_flags=prog_flags,
        prog_name=sanitize_name(name),
        expected_attach_type=expected_attach_type,
        attach_btf_id=attach_btf_id,
        attach_btf_obj_fd=attach_btf_obj_fd or attach_prog_fd,
        prog_btf_fd=btf_fd,
    )
    if fd_array:
        fds = (ctypes.c_int32 * len(fd_array))(*fd_array)
        buffers.append(fds)
        attr.fd_array = ctypes.addressof(fds)
    _set_records(attr, buffers, "func_info", func_info, func_info_rec_size)
    _set_records(attr, buffers, "line_info", line_info, line_info_rec_size)
    what = _describe_load(name, prog_type, expected_attach_type, attach_btf_id)

    if log_level == 0:
        fd, err, _, _ = _load_once(attr, 0)
        if not err:
            return ProgramFd(fd, name, prog_type, expected_attach_type)
        if err in _NOT_THE_CODE:
            raise _load_error(err, what, attr)
        attr.log_level = BPF_LOG_LEVEL1
    else:
        attr.log_level = log_level
    fd, err, log, size, truncated = _load_with_log(attr, log_size)
    if not err:
        return ProgramFd(fd, name, prog_type, expected_attach_type, verifier_log=log if log_level else None)
    if log.strip() and err != _errno.EPERM:
        raise VerifierError(err, "BPF_PROG_LOAD", name, log, slot_sources, log_buffer_size=size, truncated=truncated)
    raise _load_error(err, what, attr, log)


def _set_records(attr: ProgLoadAttr, keep: list, field: str, records: bytes, record_size: int) -> None:
    """Point ``attr``'s ``func_info``/``line_info`` at ``records`` (kept alive in ``keep``)."""
    if not records:
        return
    if record_size <= 0 or len(records) % record_size:
        raise ValueError(f"{field}: {len(records)} bytes are not whole records of {record_size}")
    buffer = ctypes.create_string_buffer(bytes(records), len(records))
    keep.append(buffer)
    setattr(attr, field, ctypes.addressof(buffer))
    setattr(attr, f"{field}_rec_size", record_size)
    setattr(attr, f"{field}_cnt", len(records) // record_size)


def _load_with_log(attr: ProgLoadAttr, log_size: int) -> tuple[int, int, str, int, bool]:
    """PROG_LOAD with a log, growing the buffer while the kernel says it was cut: (fd, errno, log, size, truncated)."""
    size = max(int(log_size), 128)
    while True:
        fd, err, log, wanted = _load_once(attr, size)
        truncated = err == _errno.ENOSPC or wanted > size
        if not truncated or size >= _LOG_SIZE_MAX:
            return fd, err, log, size, truncated
        if fd >= 0:  # it loaded, only the log was cut: load again for the whole log
            os.close(fd)
        size = min(wanted if wanted > size else size * 4, _LOG_SIZE_MAX)


def _describe_load(name: str, prog_type: int, expected_attach_type: int, attach_btf_id: int) -> str:
    parts = [f"load {enum_name(ProgType, prog_type)} program {name!r}"]
    if expected_attach_type:
        parts.append(f"attach type {enum_name(AttachType, expected_attach_type)}")
    if attach_btf_id:
        parts.append(f"btf id {attach_btf_id}")
    return ", ".join(parts)


def _load_error(err: int, what: str, attr: ProgLoadAttr, log: str = "") -> BpfError:
    # EINVAL with a program type or attach type the kernel does not know is a
    # missing feature; EINVAL on a known one is a plain error.
    missing = (_errno.EINVAL,) if attr.prog_type > max(ProgType) or attr.expected_attach_type > max(AttachType) else ()
    if log.strip():
        what = f"{what}; verifier: {log.strip().splitlines()[-1]}"
    return error_from_errno(err, "BPF_PROG_LOAD", what, missing_feature_errnos=missing)


def prog_test_run(
    prog: FdLike,
    data_in: bytes = b"",
    ctx_in: bytes = b"",
    repeat: int = 1,
    *,
    data_out_size: Optional[int] = None,
    ctx_out_size: Optional[int] = None,
    flags: int = 0,
    cpu: int = 0,
) -> TestRunResult:
    """BPF_PROG_TEST_RUN: run ``prog`` in the kernel on the given input.

    ``repeat=1`` is sent as 0, which the kernel also runs once: program types
    that cannot repeat (raw_tracepoint, syscall) reject any other value.
    Unsupported program types raise NotSupportedError.
    """
    fd = fd_of(prog)
    data_in = bytes(data_in)
    ctx_in = bytes(ctx_in)
    if data_out_size is None:
        data_out_size = len(data_in) + 256 if data_in else 0
    if ctx_out_size is None:
        # raw_tracepoint test runs reject any ctx_out; ask for it explicitly.
        ctx_out_size = 0
    din = ctypes.create_string_buffer(data_in, len(data_in)) if data_in else None
    dout = ctypes.create_string_buffer(data_out_size) if data_out_size else None
    cin = ctypes.create_string_buffer(ctx_in, len(ctx_in)) if ctx_in else None
    cout = ctypes.create_string_buffer(ctx_out_size) if ctx_out_size else None
    attr = TestRunAttr(
        prog_fd=fd,
        data_size_in=len(data_in),
        data_size_out=data_out_size,
        data_in=libc.buffer_address(din),
        data_out=libc.buffer_address(dout),
        repeat=0 if repeat == 1 else repeat,
        ctx_size_in=len(ctx_in),
        ctx_size_out=ctx_out_size,
        ctx_in=libc.buffer_address(cin),
        ctx_out=libc.buffer_address(cout),
        flags=flags,
        cpu=cpu,
    )
    bpf_or_raise(Cmd.PROG_TEST_RUN, attr, f"test run of program fd {fd}")
    data_out = dout.raw[: attr.data_size_out] if dout is not None else b""
    ctx_out = cout.raw[: attr.ctx_size_out] if cout is not None else b""
    return TestRunResult(attr.retval, data_out, attr.duration, ctx_out)


prog_test_run.__test__ = False  # type: ignore[attr-defined]


def prog_get_fd_by_id(prog_id: int) -> ProgramFd:
    """BPF_PROG_GET_FD_BY_ID: an owned fd to program ``prog_id`` (ENOENT if gone)."""
    fd = bpf_or_raise(Cmd.PROG_GET_FD_BY_ID, GetIdAttr(start_id=prog_id), f"program id {prog_id}")
    try:
        info = prog_info(fd)
    except BaseException:
        os.close(fd)
        raise
    return ProgramFd(fd, info.name, info.type)
