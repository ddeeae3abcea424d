"""Tracepoints (``syscalls/sys_enter_openat``, ...) through perf events.

The program (BPF_PROG_TYPE_TRACEPOINT) reads the tracepoint's fields at the
offsets its tracefs ``format`` file gives.
"""

from __future__ import annotations

from ..syscalls.fd import FdLike
from ..syscalls.perf import perf_event_open_tracepoint
from ..uapi import ProgType
from .link import Link, attach_perf_event

__all__ = ["TRACEPOINT_PROG_TYPE", "attach"]

TRACEPOINT_PROG_TYPE = ProgType.TRACEPOINT


def attach(program: FdLike, category: str, name: str) -> Link:
    """Run ``program`` on tracepoint ``category/name``; NotSupportedError when there is no such tracepoint."""
    event = perf_event_open_tracepoint(category, name)
    return attach_perf_event(event, program)
