"""Pinning BPF objects in the BPF filesystem: BPF_OBJ_PIN and BPF_OBJ_GET.

A pinned map outlives the process that made it (``/sys/fs/bpf/NAME``), so
that a later load can share it: what ``LIBBPF_PIN_BY_NAME`` maps are for.
"""

from __future__ import annotations

from ..uapi import Cmd
from . import libc
from .attrs import ObjAttr, bpf_or_raise
from .fd import FdLike, fd_of

__all__ = ["BPF_FS", "obj_get", "obj_pin"]

BPF_FS = "/sys/fs/bpf"


def obj_pin(obj: FdLike, path: str) -> None:
    """BPF_OBJ_PIN: make ``path`` (in a bpffs mount) refer to the program, map or link ``obj``."""
    name = libc.c_string(path)
    attr = ObjAttr(pathname=libc.buffer_address(name), bpf_fd=fd_of(obj))
    bpf_or_raise(Cmd.OBJ_PIN, attr, f"pin fd {fd_of(obj)} at {path}")


def obj_get(path: str) -> int:
    """BPF_OBJ_GET: a new fd of the object pinned at ``path`` (the caller owns it)."""
    name = libc.c_string(path)
    attr = ObjAttr(pathname=libc.buffer_address(name))
    return bpf_or_raise(Cmd.OBJ_GET, attr, f"open pinned object {path}")
