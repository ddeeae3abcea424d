"""BPF links: BPF_RAW_TRACEPOINT_OPEN, BPF_LINK_CREATE, BPF_LINK_DETACH and :class:`LinkFd`.

These are the kernel's commands; :mod:`openat.link` builds one attach
function per hook on top of them.
"""

from __future__ import annotations

import errno as _errno
from typing import Optional

from ..uapi import AttachType, Cmd, enum_name
from . import libc
from .attrs import GetIdAttr, LinkCreateAttr, RawTracepointAttr, bpf_or_raise
from .fd import FdLike, OwnedFd, fd_of
from .info import LinkInfo, link_info

__all__ = ["LinkFd", "link_create", "link_detach", "link_get_fd_by_id", "raw_tracepoint_open"]

# The tail of link_create's attr is a union chosen by attach type: perf_event
# {u64 bpf_cookie}, tcx {u32 relative_fd; u64 expected_revision}, tracing
# {u32 target_btf_id; u64 cookie}; xdp uses none of it.
_PERF_EVENT = (AttachType.PERF_EVENT,)
_TCX = (AttachType.TCX_INGRESS, AttachType.TCX_EGRESS)
_IFINDEX_TARGETS = (AttachType.XDP, *_TCX)


class LinkFd(OwnedFd):
    """An attachment; closing it detaches the program."""

    __slots__ = ("description",)

    def __init__(self, fd: int, description: str = ""):
        super().__init__(fd)
        self.description = description

    def info(self) -> LinkInfo:
        return link_info(self)

    @property
    def id(self) -> int:
        return self.info().id

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<LinkFd {self.description} {state}>"


def raw_tracepoint_open(prog: FdLike, name: Optional[str]) -> LinkFd:
    """BPF_RAW_TRACEPOINT_OPEN: attach a raw_tp program to tracepoint ``name``.

    For tp_btf/fentry/fexit programs pass ``name=None``: the target comes from
    the program's attach_btf_id. An unknown tracepoint raises NotSupportedError.
    """
    name_buf = libc.c_string(name) if name else None
    attr = RawTracepointAttr(name=libc.buffer_address(name_buf), prog_fd=fd_of(prog))
    target = name or "the program's BTF target"
    fd = bpf_or_raise(Cmd.RAW_TRACEPOINT_OPEN, attr, f"attach to raw tracepoint {target}", (_errno.ENOENT,))
    return LinkFd(fd, f"raw_tp:{target}")


def link_create(
    prog: FdLike,
    target_fd: int = 0,
    attach_type: int = 0,
    *,
    flags: int = 0,
    target_btf_id: int = 0,
    cookie: int = 0,
    relative_fd: int = 0,
    expected_revision: int = 0,
) -> LinkFd:
    """BPF_LINK_CREATE.

    ``attach_type`` BPF_PERF_EVENT links a kprobe/tracepoint program to the
    perf event ``target_fd`` (``cookie`` → bpf_get_attach_cookie);
    BPF_TRACE_RAW_TP/FENTRY/FEXIT link a tracing program (``target_fd`` 0,
    target from the program's attach_btf_id, or ``target_btf_id``);
    BPF_XDP and BPF_TCX_INGRESS/EGRESS take the interface index as
    ``target_fd`` (tcx: ``relative_fd`` and ``expected_revision`` place it
    among the interface's other programs).
    """
    attr = LinkCreateAttr(prog_fd=fd_of(prog), target_fd=target_fd, attach_type=attach_type, flags=flags)
    if attach_type in _PERF_EVENT:
        attr.word16 = cookie
    elif attach_type in _TCX:
        # tcx: u32 relative_fd (or id), then u64 expected_revision at offset 24
        attr.word16 = relative_fd
        attr.word24 = expected_revision
    elif attach_type != AttachType.XDP:
        # tracing: u32 target_btf_id, then the u64 cookie at offset 24
        attr.word16 = target_btf_id
        attr.word24 = cookie
    kind = enum_name(AttachType, attach_type)
    target = f"ifindex {target_fd}" if attach_type in _IFINDEX_TARGETS else f"target fd {target_fd}"
    fd = bpf_or_raise(Cmd.LINK_CREATE, attr, f"link {kind} program fd {fd_of(prog)} to {target}", (_errno.EINVAL,))
    return LinkFd(fd, f"{kind}:{target_fd}")


def link_detach(link: FdLike) -> None:
    """BPF_LINK_DETACH: detach the program, keeping the link fd (which then refers to nothing)."""
    attr = LinkCreateAttr(prog_fd=fd_of(link))  # link_detach's attr is just the link fd
    bpf_or_raise(Cmd.LINK_DETACH, attr, f"detach link fd {fd_of(link)}", (_errno.EINVAL,))


def link_get_fd_by_id(link_id: int) -> LinkFd:
    """BPF_LINK_GET_FD_BY_ID."""
    fd = bpf_or_raise(Cmd.LINK_GET_FD_BY_ID, GetIdAttr(start_id=link_id), f"link id {link_id}")
    return LinkFd(fd, f"id:{link_id}")
