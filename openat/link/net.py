"""What the network hooks (xdp, tc) share: pyroute2, interfaces, netlink requests in openat's terms.

pyroute2, the extra ``openat[net]``, is imported here by the first attach
and never at import time, so nothing on the tracer's path loads it (it costs
~0.2 s and several MB). Netlink errors become the same exceptions as bpf()
errors (:class:`~openat.syscalls.errors.BpfError` and its subclasses), with
the kernel's own message (netlink extended ack) when it sent one.
"""

from __future__ import annotations

import errno
import os
from typing import Any, Callable, List, TypeVar, Union

from ..syscalls.errors import ENOTSUPP, BpfError, NotSupportedError, PermissionDeniedError
from ..syscalls.fd import FdLike, fd_of
from ..syscalls.info import ProgInfo, prog_info
from ..syscalls.netns import NetnsFd, current_netns, run_in_netns
from ..uapi import ProgType, enum_name
from .link import Closable

__all__ = ["INSTALL_HINT", "Interface", "find_interface", "import_pyroute2", "netlink_error", "program_of_type", "release"]

INSTALL_HINT = "pip install 'openat[net]' (or: pip install pyroute2)"
IFNAMSIZ = 16  # with the NUL
Result = TypeVar("Result")


def import_pyroute2() -> Any:
    """The pyroute2 package; ImportError saying what to install when it is missing."""
    try:
        import pyroute2
    except ImportError:
        raise ImportError(f"XDP and tc attach need pyroute2, which is not installed: {INSTALL_HINT}") from None
    return pyroute2


def netlink_error(error: Exception, command: str, what: str) -> BpfError:
    """The openat exception for pyroute2's NetlinkError ``error`` from ``command`` (``"RTM_NEWTFILTER"``)."""
    err = int(getattr(error, "code", 0) or errno.EIO)
    text = os.strerror(err) if err != ENOTSUPP else "Operation not supported"
    said = str(error.args[1]) if len(error.args) > 1 else ""
    kernel = f"; the kernel says: {said}" if said and said != text else ""
    message = f"{command} ({what}) failed: {errno.errorcode.get(err, err)} {text}{kernel}"
    if err in (errno.EPERM, errno.EACCES):
        return PermissionDeniedError(err, command, f"{message}; needs root, or CAP_NET_ADMIN")
    if err in (errno.EOPNOTSUPP, ENOTSUPP):
        return NotSupportedError(err, command, message)
    return BpfError(err, command, message)


class Interface:
    """A network interface: its index and name in the network namespace it was found in.

    :meth:`request` talks netlink to that namespace, also from a thread in
    another one. It holds the namespace open (an fd) until closed: it is the
    first resource of a network Link, so it is closed last.
    """

    __slots__ = ("index", "name", "netns", "pid")

    def __init__(self, index: int, name: str, netns: NetnsFd) -> None:
        self.index = index
        self.name = name
        self.netns = netns
        self.pid = os.getpid()

    @property
    def in_creator_process(self) -> bool:
        """False in a forked child, which must not remove its parent's attachments."""
        return os.getpid() == self.pid

    def request(self, command: str, what: str, operation: Callable[[Any], Result]) -> Result:
        """``operation(iproute)`` with a fresh pyroute2 IPRoute in this interface's namespace."""
        netlink_error_class = import_pyroute2().NetlinkError

        def run() -> Result:
            with import_pyroute2().IPRoute(ext_ack=True) as iproute:
                return operation(iproute)

        try:
            return run_in_netns(self.netns, run)
        except netlink_error_class as error:
            raise netlink_error(error, command, f"{what} on {self}") from None

    def in_namespace(self, operation: Callable[[], Result]) -> Result:
        """``operation()`` in this interface's namespace (for bpf() calls that take an ifindex)."""
        return run_in_netns(self.netns, operation)

    def close(self) -> None:
        self.netns.close()

    def __str__(self) -> str:
        return f"{self.name} (ifindex {self.index})"

    def __repr__(self) -> str:
        return f"<Interface {self}>"


def find_interface(ifname_or_index: Union[str, int]) -> Interface:
    """The interface named (``"eth0"``) or numbered (``2``) so in the calling thread's network namespace.

    ValueError, in one line, when there is none.
    """
    wanted = _checked_interface(ifname_or_index)
    pyroute2 = import_pyroute2()
    key = {"ifname": wanted} if isinstance(wanted, str) else {"index": wanted}
    try:
        with pyroute2.IPRoute() as iproute:
            message = iproute.link("get", **key)[0]
    except pyroute2.NetlinkError as error:
        if error.code in (errno.ENODEV, errno.ENOENT):
            raise ValueError(f"no network interface {ifname_or_index!r} in this network namespace") from None
        raise netlink_error(error, "RTM_GETLINK", f"look up interface {ifname_or_index!r}") from None
    return Interface(message["index"], message.get_attr("IFLA_IFNAME"), current_netns())


def _checked_interface(value: object) -> Union[str, int]:
    if isinstance(value, str):
        if not value or len(value.encode()) >= IFNAMSIZ or "/" in value or value.strip() != value:
            raise ValueError(f"{value!r} is not a network interface name (1 to {IFNAMSIZ - 1} bytes, no '/' or blanks)")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 < value < 2**31:
            raise ValueError(f"{value} is not a network interface index (a positive int)")
        return int(value)
    raise TypeError(f"an interface is a name or an index, got {value!r}")


def program_of_type(program: FdLike, prog_type: int, hook: str) -> ProgInfo:
    """``program``'s info, after checking it is a ``prog_type`` program; ValueError (one line) if not."""
    info = prog_info(program)
    if info.type != prog_type:
        wanted = f"BPF_PROG_TYPE_{enum_name(ProgType, prog_type).upper()}"
        raise ValueError(
            f"{hook} needs a {wanted} program; program fd {fd_of(program)} "
            f"({info.name or 'unnamed'!r}, id {info.id}) is BPF_PROG_TYPE_{info.type_name.upper()}"
        )
    return info


def release(resources: List[Closable]) -> None:
    """Close what a failed attach made so far, newest first; their own errors give way to the attach error."""
    while resources:
        try:
            resources.pop().close()
        except (OSError, BpfError):
            pass
