"""Network namespaces: the calling thread's, running code in another one, and a private one for probes.

A network namespace belongs to a thread: setns(2) and unshare(2) move only
the thread that calls them, and interface indexes, netlink sockets and
BPF_LINK_CREATE's ``target_ifindex`` all refer to the namespace of the
thread that uses them. So code that must act in another namespace runs in a
short-lived helper thread that enters it first, and the caller's thread never
moves (a thread that moved and failed to move back would leave the whole
process acting in the wrong namespace).
"""

from __future__ import annotations

import os
import threading
from typing import Callable, List, Tuple, TypeVar

from . import libc
from .fd import OwnedFd, fd_of

__all__ = ["CLONE_NEWNET", "NetnsFd", "current_netns", "run_in_netns", "run_in_private_netns"]

CLONE_NEWNET = 0x40000000
THREAD_NETNS = "/proc/thread-self/ns/net"

Result = TypeVar("Result")


class NetnsFd(OwnedFd):
    """An open reference to a network namespace; it keeps the namespace alive while open."""

    __slots__ = ()

    @property
    def identity(self) -> Tuple[int, int]:
        """(device, inode): equal for two fds of the same namespace."""
        status = os.fstat(self.fileno())
        return status.st_dev, status.st_ino

    def is_current(self) -> bool:
        """Is the calling thread in this namespace?"""
        status = os.stat(THREAD_NETNS)
        return (status.st_dev, status.st_ino) == self.identity

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<NetnsFd {state}>"


def current_netns() -> NetnsFd:
    """The calling thread's network namespace."""
    return NetnsFd(os.open(THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC))


def run_in_netns(netns: NetnsFd, function: Callable[[], Result]) -> Result:
    """``function()`` in network namespace ``netns``: directly when the caller is in it, else in a helper thread."""
    if netns.is_current():
        return function()
    fd = fd_of(netns)
    return _in_helper_thread(lambda: libc.setns(fd, CLONE_NEWNET), function)


def run_in_private_netns(function: Callable[[], Result]) -> Result:
    """``function()`` in a new, empty network namespace (only a ``lo`` that is down, ifindex 1).

    The namespace disappears when ``function`` returns and whatever it made
    there is closed: a probe can attach to that ``lo`` without touching an
    interface of the machine. Needs CAP_SYS_ADMIN.
    """
    return _in_helper_thread(lambda: libc.unshare(CLONE_NEWNET), function)


def _in_helper_thread(enter: Callable[[], None], function: Callable[[], Result]) -> Result:
    outcome: List[object] = []

    def run() -> None:
        try:
            enter()
            outcome.append((True, function()))
        except BaseException as error:  # handed to the caller's thread, raised there
            outcome.append((False, error))

    helper = threading.Thread(target=run, name="openat-netns", daemon=True)
    helper.start()
    helper.join()
    succeeded, value = outcome[0]  # type: ignore[misc]
    if not succeeded:
        raise value  # type: ignore[misc]
    return value  # type: ignore[return-value]

