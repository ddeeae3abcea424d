"""The :class:`Link`: a program attached to a hook, detached by ``close()``."""

from __future__ import annotations

from typing import List, Optional, Protocol, Sequence

from ..syscalls.errors import BpfError
from ..syscalls.info import LinkInfo
from ..syscalls.fd import FdLike
from ..syscalls.links import LinkFd
from ..syscalls.perf import PerfEventFd

__all__ = ["Closable", "Link", "attach_perf_event"]


class Closable(Protocol):
    def close(self) -> None: ...


class Link:
    """A program attached to a hook.

    ``close()`` detaches it and releases what attaching created (a perf
    event, a tracefs kprobe, a qdisc), in reverse order of creation, exactly
    once; a Link is a context manager and is closed when garbage-collected.
    ``description`` says what it is attached to and how, in words.
    """

    __slots__ = ("description", "_resources", "__weakref__")

    def __init__(self, description: str, resources: Sequence[Closable]) -> None:
        self.description = description
        self._resources: List[Closable] = list(resources)

    @property
    def closed(self) -> bool:
        return not self._resources

    @property
    def link_fd(self) -> Optional[LinkFd]:
        """The kernel's BPF link, where the hook makes one (raw_tp, tracing, XDP, tcx)."""
        for resource in self._resources:
            if isinstance(resource, LinkFd):
                return resource
        return None

    def info(self) -> LinkInfo:
        """BPF_OBJ_GET_INFO_BY_FD of the kernel's link; ValueError for hooks without one."""
        link_fd = self.link_fd
        if link_fd is None:
            raise ValueError(f"{self.description}: this attachment has no BPF link")
        return link_fd.info()

    def close(self) -> None:
        """Detach and release everything, even if one release fails; then raise that failure."""
        failure: Optional[BaseException] = None
        while self._resources:
            resource = self._resources.pop()
            try:
                resource.close()
            except (OSError, BpfError) as error:
                failure = failure or error
        if failure is not None:
            raise failure

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown, or already gone: nothing useful to do
            pass

    def __repr__(self) -> str:
        return f"<Link {self.description}{' closed' if self.closed else ''}>"


def attach_perf_event(event: PerfEventFd, program: FdLike) -> Link:
    """Run ``program`` when ``event`` fires (PERF_EVENT_IOC_SET_BPF + ENABLE): a Link owning the event.

    The event is closed if attaching fails: what the caller opened for this
    attachment is gone either way.
    """
    try:
        event.attach_bpf(program)
    except BaseException:
        event.close()
        raise
    return Link(event.description, [event])
