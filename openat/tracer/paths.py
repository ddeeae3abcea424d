"""``--full-path``: absolute paths for relative names.

Where the kernel has BTF, the probe walks the opener's directory at the
moment of the open (:mod:`openat.tracer.pathwalk`) and :func:`kernel_path`
joins it with the name and normalises the result. Elsewhere, the fallback
here resolves a relative name against the caller's working directory
(``dfd`` = AT_FDCWD) or the directory open as ``dfd``, read from
``/proc/PID/cwd`` or ``/proc/PID/fd/DFD`` when the event is printed. That is
after the open, so it can be wrong:

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
from .records import DIR_COMPLETE, DIR_CUT, OpenEvent


def normalise(path: bytes) -> bytes:
    """``path`` without empty, ``.`` and ``..`` components, lexically (as ``os.path.normpath``, one leading slash).

    A ``..`` above the root stays at the root; in a relative path (the part
    below a cut) a ``..`` above its start is kept. Lexical: after a
    symbolic link, ``..`` is the kernel's business, not this.
    """
    absolute = path.startswith(b"/")
    parts: list = []
    for part in path.split(b"/"):
        if part in (b"", b"."):
            continue
        if part == b".." and (parts and parts[-1] != b".." or absolute):
            if parts:
                parts.pop()
            continue
        parts.append(part)
    joined = b"/".join(parts)
    return b"/" + joined if absolute else joined or b"."


def kernel_path(event: OpenEvent) -> bytes:
    """The normalised full path from the probe's walk: absolute, or below a cut (DIR_CUT), or the name as it was."""
    name = event.filename
    if event.read_error is not None:
        return name
    if name.startswith(b"/"):
        return name if event.truncated else normalise(name)
    if event.dir_state in (DIR_COMPLETE, DIR_CUT):
        if event.truncated:  # the name's last component may be cut short: leave the name as it is
            return normalise(event.directory) + b"/" + name
        return normalise(event.directory + b"/" + name)
    return name  # no directory to be relative to (DIR_FAILED): as the opener passed it


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
