"""``--full-path``: absolute paths for relative names, from /proc.

The probe sees the name as the caller passed it. A relative name is
resolved against the caller's working directory (``dfd`` = AT_FDCWD) or
against the directory open as ``dfd``, read from ``/proc/PID/cwd`` or
``/proc/PID/fd/DFD`` when the event is printed. That is after the open, so
it can be wrong:

* the process may have exited (short-lived processes are common), changed
  directory, or closed or reused the descriptor in the meantime;
* ``/proc`` shows paths in the reader's mount namespace; a process in a
  container or chroot sees another tree;
* a directory deleted meanwhile shows as ``... (deleted)``.

A name that cannot be resolved stays relative, so "does not start with /"
is the mark of an unresolved name; JSON also says ``"resolved": false``.
"""

from __future__ import annotations

import os
from typing import Optional

from ..uapi import AT_FDCWD
from .records import OpenEvent


def resolve(event: OpenEvent, proc: str = "/proc") -> Optional[bytes]:
    """The absolute path of ``event``'s name, or None when it cannot be known."""
    name = event.filename
    if name.startswith(b"/"):
        return name
    if event.read_error is not None:
        return None
    if event.dfd == AT_FDCWD:
        link = f"{proc}/{event.tid}/cwd"
    elif event.dfd >= 0:
        link = f"{proc}/{event.pid}/fd/{event.dfd}"
    else:
        return None
    try:
        base = os.readlink(os.fsencode(link))
    except OSError:
        return None
    if not base.startswith(b"/") or base.endswith(b" (deleted)"):
        return None  # not a directory path (a socket, a pipe) or gone
    if not name:
        return base  # e.g. O_PATH with AT_EMPTY_PATH semantics
    return base.rstrip(b"/") + b"/" + name


def full_path(event: OpenEvent) -> bytes:
    """The resolved path, or the name unchanged (still relative) when unknown."""
    resolved = resolve(event)
    return event.filename if resolved is None else resolved
