"""errno → exception mapping for bpf(), perf_event_open() and friends.

Every failure names the command and what was attempted, in one line, so the
tracer can print ``str(exc)`` to stderr without a traceback.
"""

from __future__ import annotations

import errno as _errno
import os
import re
from typing import Sequence

__all__ = [
    "BpfError",
    "NotSupportedError",
    "PermissionDeniedError",
    "VerifierError",
    "annotate_verifier_log",
    "error_from_errno",
    "lockdown_mode",
    "privilege_hint",
]

ENOTSUPP = 524  # kernel-internal errno that bpf() leaks to user space
# How a NotSupportedError's message ends when only the errno says so.
NOT_SUPPORTED_SUFFIX = "; the running kernel does not support this"

CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39
LOCKDOWN_FILE = "/sys/kernel/security/lockdown"


class BpfError(OSError):
    """A bpf()/perf_event_open()/tracefs operation failed.

    ``errno`` is the kernel's errno, ``command`` the operation that failed
    (``"BPF_PROG_LOAD"``, ``"perf_event_open"``, ...).
    """

    def __init__(self, err: int, command: str, message: str) -> None:
        super().__init__(err, message)
        self.command = command
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # keep pickling (multiprocessing, pytest-xdist) working
        return (self.__class__._rebuild, (self.__class__, self.errno, self.command, self.message))

    @staticmethod
    def _rebuild(cls, err, command, message):
        obj = BpfError.__new__(cls)
        BpfError.__init__(obj, err, command, message)
        return obj


class PermissionDeniedError(BpfError, PermissionError):
    """EPERM/EACCES: missing privileges, or the kernel refuses even root (lockdown)."""


class NotSupportedError(BpfError):
    """The running kernel lacks the feature that was tried."""


class VerifierError(BpfError):
    """The verifier rejected a program.

    ``log`` is the raw verifier log; ``annotated_log`` the same log where each
    instruction line starts with the Python ``file:line`` that emitted the
    instruction (when slot sources were given). ``str(exc)`` is a one-line
    summary followed by the annotated log.
    """

    def __init__(
        self,
        err: int,
        command: str,
        name: str,
        log: str,
        slot_sources: Sequence[str] | None = None,
        log_buffer_size: int = 0,
        truncated: bool = False,
    ) -> None:
        self.name = name
        self.log = log
        self.slot_sources = list(slot_sources) if slot_sources is not None else None
        self.annotated_log = annotate_verifier_log(log, slot_sources)
        self.log_buffer_size = log_buffer_size
        self.truncated = truncated
        reason = _last_meaningful_line(log) or os.strerror(err)
        self.summary = f"{command}: verifier rejected program {name!r} ({_errno_name(err)}): {reason}"
        super().__init__(err, command, f"{self.summary}\n{self.annotated_log}".rstrip("\n"))

    def __reduce__(self):
        return (
            VerifierError,
            (self.errno, self.command, self.name, self.log, self.slot_sources, self.log_buffer_size, self.truncated),
        )


# "12: (85) call bpf_ringbuf_reserve#131" - the verifier's instruction line.
# State-only lines ("12: R0_w=...") have no "(opcode)" and are left alone.
_INSN_LINE = re.compile(r"^(\d+): \([0-9a-f]{2}\)")


def annotate_verifier_log(log: str, slot_sources: Sequence[str] | None) -> str:
    """Prefix each instruction line of a verifier log with its Python source.

    ``slot_sources[i]`` is the ``file:line`` that emitted 8-byte slot ``i``;
    the result reads like compiler diagnostics (``probe.py:42: 12: (85) call ...``)
    so editors can jump to the line.
    """
    if not slot_sources:
        return log
    out = []
    for line in log.splitlines():
        match = _INSN_LINE.match(line)
        if match:
            index = int(match.group(1))
            if 0 <= index < len(slot_sources) and slot_sources[index]:
                line = f"{slot_sources[index]}: {line}"
        out.append(line)
    return "\n".join(out) + ("\n" if log.endswith("\n") else "")


def _last_meaningful_line(log: str) -> str:
    # The verifier ends with statistics ("processed N insns ...", "verification
    # time ...") after the actual reason; skip those to find the reason.
    for line in reversed(log.strip().splitlines()):
        line = line.strip()
        if not line or line.startswith(("processed ", "verification time", "stack depth", "max_states_per_insn")):
            continue
        return line
    return ""


def _errno_name(err: int) -> str:
    if err == ENOTSUPP:
        return "ENOTSUPP"
    return _errno.errorcode.get(err, str(err))


def lockdown_mode(path: str = LOCKDOWN_FILE) -> str | None:
    """The active kernel lockdown mode ("integrity", "confidentiality"), or None.

    Only read when securityfs is already mounted: mounting it just to explain
    an error would be a surprising side effect. ``path`` is the ``lockdown``
    file of a securityfs mounted elsewhere.
    """
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    match = re.search(r"\[(\w+)\]", text)
    if match and match.group(1) != "none":
        return match.group(1)
    return None


def effective_capabilities() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def privilege_hint() -> str:
    """Explain which privileges are needed, or that they are present and still refused."""
    caps = effective_capabilities()
    has_admin = bool(caps & (1 << CAP_SYS_ADMIN))
    has_bpf = bool(caps & (1 << CAP_BPF)) and bool(caps & (1 << CAP_PERFMON))
    lockdown = lockdown_mode()
    if has_admin or has_bpf:
        hint = "refused although this process has " + ("CAP_SYS_ADMIN" if has_admin else "CAP_BPF + CAP_PERFMON")
        if lockdown:
            hint += f"; kernel lockdown is on ({lockdown})"
        else:
            hint += "; the kernel or an LSM policy forbids it (lockdown, SELinux, ...)"
        return hint
    hint = "needs root, or CAP_BPF + CAP_PERFMON (CAP_SYS_ADMIN for some operations)"
    if lockdown:
        hint += f"; kernel lockdown is on ({lockdown})"
    return hint


def error_from_errno(
    err: int,
    command: str,
    what: str = "",
    *,
    missing_feature_errnos: Sequence[int] = (),
) -> BpfError:
    """Build the exception for a failed call.

    ``what`` describes the attempt ("create ringbuf map 'events'"). Errnos in
    ``missing_feature_errnos`` (typically EINVAL/ENOENT for a probe of an
    optional feature) become :class:`NotSupportedError`; EOPNOTSUPP, ENOTSUPP
    and ENOSYS always do.
    """
    what_part = f" ({what})" if what else ""
    base = f"{command}{what_part} failed: {_errno_name(err)} {os.strerror(err) if err != ENOTSUPP else 'Operation not supported'}"
    if err in (_errno.EPERM, _errno.EACCES):
        return PermissionDeniedError(err, command, f"{base}; {privilege_hint()}")
    if err in (_errno.EOPNOTSUPP, ENOTSUPP, _errno.ENOSYS) or err in missing_feature_errnos:
        return NotSupportedError(err, command, f"{base}{NOT_SUPPORTED_SUFFIX}")
    return BpfError(err, command, base)
