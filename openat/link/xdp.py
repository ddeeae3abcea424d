"""XDP: a program on a network interface's receive path, through a BPF link or netlink.

``attach(program, "eth0")`` runs an XDP program (BPF_PROG_TYPE_XDP) on every
packet the interface receives, before the kernel allocates an skb. Two ways
to put it there, and ``interface="auto"`` picks the first the kernel has
(:func:`openat.syscalls.features.xdp_link` decides), saying which through
``report``:

- ``"link"``: BPF_LINK_CREATE with BPF_XDP (Linux 5.9+). The kernel removes
  the program with the link's last fd, even when the process is killed.
- ``"netlink"``: IFLA_XDP in an RTM_SETLINK request, through pyroute2. The
  program stays until removed: the Link removes it on close, at exit and on
  SIGTERM (:mod:`openat.link.lifetime`), and only if it is still the one
  this Link attached (``XDP_FLAGS_REPLACE`` with the expected fd).

Neither way replaces a program another tool attached: that is an error
naming it. Modes: ``"skb"`` (generic XDP, any interface), ``"driver"``
(native, in the driver; an error where the driver has none or refuses),
``"auto"`` (the kernel's choice: native where the driver has it, else
generic). The Link's description says which mode the kernel used.
pyroute2 (``pip install 'openat[net]'``) is needed either way, so that a
program behaves the same on every kernel.
"""

from __future__ import annotations

import errno
import os
from typing import Any, Callable, Dict, List, Optional, Union

from ..syscalls.errors import ENOTSUPP, NOT_SUPPORTED_SUFFIX, BpfError, NotSupportedError
from ..syscalls.fd import FdLike, OwnedFd, fd_of
from ..syscalls.info import ProgInfo
from ..syscalls.links import link_create
from ..uapi import (
    XDP_FLAGS_DRV_MODE,
    XDP_FLAGS_HW_MODE,
    XDP_FLAGS_REPLACE,
    XDP_FLAGS_SKB_MODE,
    XDP_FLAGS_UPDATE_IF_NOEXIST,
    AttachType,
    ProgType,
)
from .lifetime import close_at_exit
from .link import Closable, Link
from .net import Interface, find_interface, import_pyroute2, program_of_type, release

__all__ = ["INTERFACES", "MODES", "XDP_PROG_TYPE", "attach", "attached_program_ids"]

XDP_PROG_TYPE = ProgType.XDP
#: mode -> XDP_FLAGS_* mode bit (0: the kernel chooses)
MODES: Dict[str, int] = {"auto": 0, "skb": XDP_FLAGS_SKB_MODE, "driver": XDP_FLAGS_DRV_MODE}
INTERFACES = ("auto", "link", "netlink")
# IFLA_XDP's per-mode program ids -> the mode's name and XDP_FLAGS bit
_MODE_ATTRIBUTES = {
    "IFLA_XDP_DRV_PROG_ID": ("driver", XDP_FLAGS_DRV_MODE),
    "IFLA_XDP_SKB_PROG_ID": ("skb", XDP_FLAGS_SKB_MODE),
    "IFLA_XDP_HW_PROG_ID": ("hardware", XDP_FLAGS_HW_MODE),
}

# What a driver answers when it has no native XDP (EOPNOTSUPP), or not in its
# present state (veth: ERANGE when the peer's MTU is too large, ENOTCONN without a peer).
_DRIVER_REFUSALS = (errno.EOPNOTSUPP, ENOTSUPP, errno.ERANGE, errno.ENOTCONN)

Report = Callable[[str], None]


def attach(
    program: FdLike,
    ifname_or_index: Union[str, int],
    mode: str = "auto",
    *,
    interface: str = "auto",
    report: Optional[Report] = None,
) -> Link:
    """Run XDP ``program`` on interface ``ifname_or_index`` (of the calling thread's network namespace).

    ValueError for an unknown interface or a program of another type;
    BpfError (NotSupportedError where the driver or kernel lacks it) when
    the kernel refuses. Nothing stays attached when it raises.
    """
    if mode not in MODES:
        raise ValueError(f"unknown XDP mode {mode!r}; choose one of {', '.join(MODES)}")
    if interface not in INTERFACES:
        raise ValueError(f"unknown XDP interface {interface!r}; choose one of {', '.join(INTERFACES)}")
    import_pyroute2()
    info = program_of_type(program, XDP_PROG_TYPE, "xdp.attach")
    device = find_interface(ifname_or_index)
    resources: List[Closable] = [device]
    try:
        use_link, why = _choose(interface)
        if use_link:
            resources.append(device.in_namespace(lambda: _attach_link(program, device, mode)))
            used, _ = _attached_mode(device, info)
        else:
            attachment = _attach_netlink(program, device, mode)
            resources.append(attachment)
            used, attachment.mode_flag = _attached_mode(device, info)
    except BaseException:
        release(resources)
        raise
    how = "BPF link" if use_link else "netlink (IFLA_XDP)"
    link = Link(f"xdp {device}, {used} mode, via {how}", resources)
    if not use_link:
        close_at_exit(link)
    if report is not None:
        report(f"XDP program {info.name!r} on {device}: {used} mode via {how}{why}")
    return link


def _choose(interface: str) -> tuple[bool, str]:
    """(use a BPF link?, why not, for the report)."""
    if interface != "auto":
        return interface == "link", ""
    from ..syscalls import features

    links = features.xdp_link()
    return (True, "") if links else (False, f" (XDP links unavailable: {links.reason})")


def _attach_link(program: FdLike, device: Interface, mode: str) -> OwnedFd:
    try:
        return link_create(program, device.index, AttachType.XDP, flags=MODES[mode])
    except BpfError as error:
        raise _attach_error(error, device, mode, "BPF_LINK_CREATE") from None


class _NetlinkAttachment:
    """An XDP program attached with IFLA_XDP; ``close()`` detaches it if it is still the one attached."""

    def __init__(self, device: Interface, program_fd: OwnedFd) -> None:
        self.device = device
        self.program_fd = program_fd  # our own dup: IFLA_XDP_EXPECTED_FD needs it after the caller closed theirs
        self.mode_flag = 0

    def close(self) -> None:
        if self.program_fd.closed:
            return
        try:
            if self.device.in_creator_process:
                self._detach()
        finally:
            self.program_fd.close()

    def _detach(self) -> None:
        attrs = [
            ("IFLA_XDP_FD", -1),
            ("IFLA_XDP_FLAGS", self.mode_flag | XDP_FLAGS_REPLACE),
            ("IFLA_XDP_EXPECTED_FD", self.program_fd.fileno()),
        ]
        try:
            _set_xdp(self.device, attrs, "detach XDP program")
        except BpfError as error:
            # EEXIST/EBUSY: another program is attached now, not ours: it stays.
            # ENODEV: the interface is gone, and the program with it.
            if error.errno not in (errno.EEXIST, errno.EBUSY, errno.ENODEV):
                raise


def _set_xdp(device: Interface, attrs: List[tuple], what: str) -> None:
    # pyroute2's link("set") sends a nested IFLA_XDP as given, flags included.
    device.request("RTM_SETLINK", what, lambda iproute: iproute.link("set", index=device.index, xdp={"attrs": attrs}))


def _attach_netlink(program: FdLike, device: Interface, mode: str) -> _NetlinkAttachment:
    attachment = _NetlinkAttachment(device, OwnedFd(os.dup(fd_of(program))))
    flags = MODES[mode] | XDP_FLAGS_UPDATE_IF_NOEXIST  # never replace another tool's program
    try:
        _set_xdp(device, [("IFLA_XDP_FD", attachment.program_fd.fileno()), ("IFLA_XDP_FLAGS", flags)], "attach XDP program")
    except BpfError as error:
        attachment.program_fd.close()
        raise _attach_error(error, device, mode, "RTM_SETLINK") from None
    return attachment


def attached_program_ids(ifname_or_index: Union[str, int]) -> Dict[str, int]:
    """XDP programs on an interface of this namespace, by mode (``{"skb": 42}``); empty when none."""
    device = find_interface(ifname_or_index)
    try:
        return _program_ids(device)
    finally:
        device.close()


def _program_ids(device: Interface) -> Dict[str, int]:
    message = device.request("RTM_GETLINK", "read IFLA_XDP", lambda iproute: iproute.link("get", index=device.index)[0])
    xdp: Any = message.get_attr("IFLA_XDP") or {"attrs": []}
    ids = {}
    for name, value in xdp["attrs"]:
        if name in _MODE_ATTRIBUTES and value:
            ids[_MODE_ATTRIBUTES[name][0]] = value
    return ids


def _attached_mode(device: Interface, info: ProgInfo) -> tuple[str, int]:
    """The mode our program runs in, and its XDP_FLAGS bit (to detach it in the same mode)."""
    for used, program_id in _program_ids(device).items():
        if program_id == info.id:
            flag = next(bit for name, bit in _MODE_ATTRIBUTES.values() if name == used)
            return used, flag
    raise BpfError(errno.ENOENT, "RTM_GETLINK", f"XDP program id {info.id} is not on {device} right after attaching it")


def _attach_error(error: BpfError, device: Interface, mode: str, command: str) -> BpfError:
    """The attach failure, said in XDP's terms: who holds the interface, what the driver lacks."""
    if error.errno in (errno.EBUSY, errno.EEXIST):
        held = ", ".join(f"id {pid} in {used} mode" for used, pid in _program_ids(device).items()) or "another one"
        return BpfError(error.errno, command, f"{device} already has an XDP program ({held}); "
                        f"openat does not replace another tool's program: detach it first")
    if mode != "skb" and error.errno in _DRIVER_REFUSALS:
        message = str(error).removesuffix(NOT_SUPPORTED_SUFFIX)
        return NotSupportedError(error.errno, command, f"{message}; the driver of {device} refuses native XDP "
                                 f"(mode={mode!r}): mode='skb' works on any interface")
    return error
