"""Raw tracepoints (``sys_enter``, ``sys_exit``, ...): the tracepoint's own arguments, untyped."""

from __future__ import annotations

from ..syscalls.fd import FdLike
from ..syscalls.links import raw_tracepoint_open
from ..uapi import ProgType
from .link import Link

__all__ = ["RAW_TRACEPOINT_PROG_TYPE", "attach"]

RAW_TRACEPOINT_PROG_TYPE = ProgType.RAW_TRACEPOINT


def attach(program: FdLike, name: str) -> Link:
    """Run ``program`` (BPF_PROG_TYPE_RAW_TRACEPOINT) on raw tracepoint ``name`` (Linux 4.17+)."""
    link = raw_tracepoint_open(program, name)
    return Link(f"raw_tp {name}", [link])
