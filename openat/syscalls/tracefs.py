"""tracefs: find or mount it, look up tracepoint ids.

A fresh machine may have tracefs unmounted; ``ensure_tracefs()`` mounts it at
/sys/kernel/tracing (leaving it mounted is harmless and what most distros do
at boot anyway).
"""

from __future__ import annotations

import errno as _errno
import itertools
import os
import re

from . import libc
from .errors import BpfError, NotSupportedError, error_from_errno

__all__ = [
    "DEFAULT_MOUNTPOINT",
    "KprobeEvent",
    "ensure_tracefs",
    "find_tracefs",
    "kprobe_event_definition",
    "kprobe_event_name",
    "kprobe_events_available",
    "mount_tracefs",
    "tracepoint_id",
    "tracepoint_exists",
]

DEFAULT_MOUNTPOINT = "/sys/kernel/tracing"
_CANDIDATES = (DEFAULT_MOUNTPOINT, "/sys/kernel/debug/tracing")


def _unescape_mount_field(field: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as octal.
    return (
        field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
    )


def _tracefs_mounts(mounts_file: str = "/proc/self/mounts") -> list[str]:
    found = []
    try:
        with open(mounts_file) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "tracefs":
                    found.append(_unescape_mount_field(parts[1]))
    except OSError:
        pass
    return found


def _looks_like_tracefs(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "events"))


def find_tracefs(mounts_file: str = "/proc/self/mounts") -> str | None:
    """The tracefs mount point to use, or None when tracefs is not mounted.

    Prefers the standard locations, then any other tracefs mount; also
    accepts /sys/kernel/debug/tracing when debugfs provides it.
    """
    mounted = _tracefs_mounts(mounts_file)
    for candidate in _CANDIDATES:
        if candidate in mounted and _looks_like_tracefs(candidate):
            return candidate
    for path in mounted:
        if _looks_like_tracefs(path):
            return path
    for candidate in _CANDIDATES:
        # debugfs auto-mounts tracefs below itself on access on some kernels
        if _looks_like_tracefs(candidate):
            return candidate
    return None


def mount_tracefs(target: str = DEFAULT_MOUNTPOINT) -> str:
    """mount -t tracefs nodev ``target``; returns ``target``.

    Raises NotSupportedError when the kernel has no tracefs (ENODEV) and
    PermissionDeniedError without CAP_SYS_ADMIN.
    """
    try:
        libc.mount("nodev", target, "tracefs")
    except OSError as exc:
        raise error_from_errno(
            exc.errno or _errno.EIO, "mount", f"mount tracefs at {target}", missing_feature_errnos=(_errno.ENODEV,)
        ) from None
    return target


def ensure_tracefs(target: str = DEFAULT_MOUNTPOINT) -> str:
    """The tracefs mount point, mounting tracefs at ``target`` if necessary."""
    found = find_tracefs()
    if found:
        return found
    return mount_tracefs(target)


def _event_dir(category: str, name: str, tracefs: str | None) -> str:
    if "/" in category or "/" in name or category.startswith(".") or name.startswith("."):
        raise ValueError(f"invalid tracepoint name {category}/{name}")
    root = tracefs or ensure_tracefs()
    return os.path.join(root, "events", category, name)


def tracepoint_exists(category: str, name: str, tracefs: str | None = None) -> bool:
    """True when tracepoint ``category/name`` exists (e.g. syscalls/sys_enter_open)."""
    return os.path.isfile(os.path.join(_event_dir(category, name, tracefs), "id"))



def tracepoint_id(category: str, name: str, tracefs: str | None = None) -> int:
    """The perf tracepoint id of ``category/name`` from tracefs ``events/<cat>/<name>/id``."""
    path = os.path.join(_event_dir(category, name, tracefs), "id")
    try:
        with open(path) as f:
            return int(f.read().strip())
    except FileNotFoundError:
        raise NotSupportedError(
            _errno.ENOENT, "tracefs", f"tracepoint {category}/{name} does not exist ({path} missing)"
        ) from None
    except PermissionError as exc:
        raise error_from_errno(exc.errno, "tracefs", f"read {path}") from None
    except (OSError, ValueError) as exc:
        raise BpfError(getattr(exc, "errno", None) or _errno.EIO, "tracefs", f"cannot read {path}: {exc}") from None


# --- kprobe_events -----------------------------------------------------------------

_GROUP_PREFIX = "openat_"
_counter = itertools.count()


def _kprobe_events_path(tracefs: str) -> str:
    return os.path.join(tracefs, "kprobe_events")


def kprobe_events_available(tracefs: str | None = None) -> bool:
    """True when tracefs has a ``kprobe_events`` file (CONFIG_KPROBE_EVENTS)."""
    try:
        root = tracefs or ensure_tracefs()
    except BpfError:
        return False
    return os.path.exists(_kprobe_events_path(root))


def _append(path: str, line: str, what: str) -> None:
    try:
        # O_APPEND: writing without it would clear every other probe in the file.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotSupportedError(_errno.ENOENT, "kprobe_events", f"{what}: {path} missing (kernel without CONFIG_KPROBE_EVENTS)") from None
    except OSError as exc:
        raise error_from_errno(exc.errno, "kprobe_events", f"{what}: open {path}") from None
    try:
        os.write(fd, line.encode() + b"\n")
    except OSError as exc:
        raise error_from_errno(
            exc.errno, "kprobe_events", f"{what}: write {line!r}", missing_feature_errnos=(_errno.ENOENT, _errno.EINVAL)
        ) from None
    finally:
        os.close(fd)


def kprobe_event_definition(group: str, event: str, symbol: str, offset: int = 0, retprobe: bool = False) -> str:
    """The kprobe_events line defining a probe (``p:grp/ev sym+off`` / ``r:...``)."""
    where = f"{symbol}+{offset}" if offset else symbol
    return f"{'r' if retprobe else 'p'}:{group}/{event} {where}"


def kprobe_event_name(symbol: str, retprobe: bool, serial: int) -> str:
    """A tracefs event name from a symbol: [A-Za-z0-9_] only, unique within our group."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", symbol)[:48]
    return f"{'r' if retprobe else 'p'}_{cleaned}_{serial}"


class KprobeEvent:
    """A tracefs kprobe_events probe we created; close() removes it again.

    The group name carries our pid (``openat_<pid>``) so concurrent tracers
    never collide and leftovers of a killed process can be recognised.
    """

    def __init__(self, symbol: str, offset: int = 0, *, retprobe: bool = False, tracefs: str | None = None):
        self.tracefs = tracefs or ensure_tracefs()
        self.group = f"{_GROUP_PREFIX}{os.getpid()}"
        self.event = kprobe_event_name(symbol, retprobe, next(_counter))
        self.symbol = symbol
        definition = kprobe_event_definition(self.group, self.event, symbol, offset, retprobe)
        _append(_kprobe_events_path(self.tracefs), definition, f"add {definition!r}")
        self._added = True
        try:
            self.id = tracepoint_id(self.group, self.event, self.tracefs)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Remove the probe (idempotent)."""
        if not getattr(self, "_added", False):
            return
        self._added = False
        _append(_kprobe_events_path(self.tracefs), f"-:{self.group}/{self.event}", f"remove {self.group}/{self.event}")

    @property
    def closed(self) -> bool:
        return not getattr(self, "_added", False)

    def __enter__(self) -> "KprobeEvent":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
