"""tc: a program on a network interface's ingress or egress, as a tcx link or a clsact ``bpf`` filter.

``attach(program, "eth0", "egress")`` runs a tc classifier program
(BPF_PROG_TYPE_SCHED_CLS, direct action: its return value is the verdict,
:class:`openat.uapi.TcAction`) on every packet the interface receives
(ingress) or sends (egress). Two ways, and ``interface="auto"`` picks the
first the kernel has (:func:`openat.syscalls.features.tcx_link` decides),
saying which through ``report``:

- ``"tcx"``: BPF_LINK_CREATE with BPF_TCX_INGRESS/EGRESS (Linux 6.6+). The
  program runs after the interface's other tcx programs and before any
  clsact filter; the kernel removes it with the link's last fd, even when
  the process is killed.
- ``"netlink"``: a ``bpf`` filter with ``direct_action`` on the ``clsact``
  qdisc, through pyroute2. The qdisc is created if absent; the filter gets
  ``priority`` and ``handle`` (default 1 and 1; an explicit one chooses
  this way under "auto", as tcx has neither). Both stay until removed: the
  Link removes them on close, at exit and on SIGTERM
  (:mod:`openat.link.lifetime`): the filter only while it is still ours
  (same priority, handle and name), the qdisc only if this Link created it
  and no filter of anyone is left on it.

A program that has no verdict on a packet should return ``TcAction.UNSPEC``:
the next filter or tcx program decides then, and with none left the packet
passes. pyroute2 (``pip install 'openat[net]'``) is needed either way.
"""

from __future__ import annotations

import errno
from typing import Callable, Dict, List, Optional, Tuple, Union

from ..syscalls.errors import BpfError
from ..syscalls.fd import FdLike, fd_of
from ..syscalls.info import ProgInfo
from ..syscalls.links import link_create
from ..uapi import ETH_P_ALL, AttachType, ProgType
from .lifetime import close_at_exit
from .link import Closable, Link
from .net import Interface, find_interface, import_pyroute2, program_of_type, release

__all__ = ["CLSACT_PARENTS", "DEFAULT_HANDLE", "DEFAULT_PRIORITY", "DIRECTIONS", "INTERFACES", "SCHED_CLS_PROG_TYPE", "attach"]

SCHED_CLS_PROG_TYPE = ProgType.SCHED_CLS
DIRECTIONS: Dict[str, int] = {"ingress": AttachType.TCX_INGRESS, "egress": AttachType.TCX_EGRESS}
#: direction -> the clsact qdisc's parent for it (TC_H_CLSACT:TC_H_MIN_INGRESS / _EGRESS)
CLSACT_PARENTS: Dict[str, int] = {"ingress": 0xFFFFFFF2, "egress": 0xFFFFFFF3}
CLSACT_HANDLE = 0xFFFF0000
INTERFACES = ("auto", "tcx", "netlink")
DEFAULT_PRIORITY = 1
DEFAULT_HANDLE = 1

Report = Callable[[str], None]


def attach(
    program: FdLike,
    ifname_or_index: Union[str, int],
    direction: str = "ingress",
    *,
    priority: Optional[int] = None,
    handle: Optional[int] = None,
    interface: str = "auto",
    report: Optional[Report] = None,
) -> Link:
    """Run sched_cls ``program`` on ``direction`` of interface ``ifname_or_index`` (calling thread's namespace).

    ValueError for an unknown interface, a program of another type or a bad
    argument; BpfError when the kernel refuses (a filter already at that
    priority and handle, ...). Nothing stays attached when it raises.
    """
    placement = _checked(direction, priority, handle, interface)
    import_pyroute2()
    info = program_of_type(program, SCHED_CLS_PROG_TYPE, "tc.attach")
    device = find_interface(ifname_or_index)
    resources: List[Closable] = [device]
    try:
        use_tcx, why = _choose(interface, placement)
        if use_tcx:
            resources.append(device.in_namespace(lambda: link_create(program, device.index, DIRECTIONS[direction])))
            how = "tcx link"
        else:
            how = _attach_filter(program, info, device, direction, placement, resources)
    except BaseException:
        release(resources)
        raise
    link = Link(f"tc {direction} {device} via {how}", resources)
    if not use_tcx:
        close_at_exit(link)
    if report is not None:
        report(f"tc program {info.name!r} on {device} {direction} via {how}{why}")
    return link


def _checked(direction: str, priority: Optional[int], handle: Optional[int], interface: str) -> Tuple[bool, int, int]:
    """(placement given?, priority, handle), or ValueError."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown tc direction {direction!r}; choose one of {', '.join(DIRECTIONS)}")
    if interface not in INTERFACES:
        raise ValueError(f"unknown tc interface {interface!r}; choose one of {', '.join(INTERFACES)}")
    for name, value, top in (("priority", priority, 0xFFFF), ("handle", handle, 0xFFFFFFFF)):
        if value is not None and (type(value) is not int or not 1 <= value <= top):
            raise ValueError(f"tc filter {name} must be an int in 1..{top}, got {value!r}")
    given = priority is not None or handle is not None
    if given and interface == "tcx":
        raise ValueError("tcx programs have no priority or handle (they run in attach order): use interface='netlink'")
    return given, priority or DEFAULT_PRIORITY, handle or DEFAULT_HANDLE


def _choose(interface: str, placement: Tuple[bool, int, int]) -> Tuple[bool, str]:
    """(use tcx?, why not, for the report)."""
    if interface != "auto":
        return interface == "tcx", ""
    if placement[0]:
        return False, " (a priority or handle was given: a clsact filter has them, tcx not)"
    from ..syscalls import features

    tcx = features.tcx_link()
    return (True, "") if tcx else (False, f" (tcx unavailable: {tcx.reason})")


def _attach_filter(program: FdLike, info: ProgInfo, device: Interface, direction: str,
                   placement: Tuple[bool, int, int], resources: List[Closable]) -> str:
    """Add clsact (if absent) and the filter, appending each to ``resources`` as it is made; says what was done."""
    _, priority, handle = placement
    created = _ensure_clsact(device, direction)
    if created is not None:
        resources.append(created)
    bpf_filter = _Filter(device, CLSACT_PARENTS[direction], priority, handle, f"{info.name or 'openat'}:{info.id}")
    bpf_filter.add(program, direction)
    resources.append(bpf_filter)
    qdisc = "created" if created is not None else "already there"
    return f"netlink: bpf filter priority {priority} handle {handle} on the clsact qdisc ({qdisc})"


def _ensure_clsact(device: Interface, direction: str) -> Optional["_Clsact"]:
    """Add the clsact qdisc; the resource that removes it, or None when a qdisc was already there."""
    try:
        device.request("RTM_NEWQDISC", "add clsact qdisc", lambda iproute: iproute.tc("add", "clsact", device.index))
        return _Clsact(device)
    except BpfError as error:
        if error.errno != errno.EEXIST:
            raise
    kind = _qdisc_kind(device)
    if kind != "clsact" and direction == "egress":
        raise BpfError(errno.EEXIST, "RTM_NEWQDISC", f"{device} has an {kind!r} qdisc where clsact goes: "
                       f"egress filters need clsact (remove it: tc qdisc del dev {device.name} {kind})")
    return None


def _qdisc_kind(device: Interface) -> Optional[str]:
    qdiscs = device.request("RTM_GETQDISC", "list qdiscs", lambda iproute: list(iproute.get_qdiscs(device.index)))
    for qdisc in qdiscs:
        if qdisc["handle"] == CLSACT_HANDLE:
            return qdisc.get_attr("TCA_KIND")
    return None


class _Clsact:
    """The clsact qdisc this Link created; ``close()`` removes it unless a filter (anyone's) is still on it."""

    def __init__(self, device: Interface) -> None:
        self.device = device
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.device.in_creator_process:
            return
        try:
            if not any(_filters(self.device, parent) for parent in CLSACT_PARENTS.values()):
                self.device.request("RTM_DELQDISC", "remove clsact qdisc", lambda iproute: iproute.tc("del", "clsact", self.device.index))
        except BpfError as error:
            # ENODEV: the interface is gone. EINVAL/ENOENT: so is the qdisc.
            if error.errno not in (errno.ENODEV, errno.EINVAL, errno.ENOENT):
                raise


def _filters(device: Interface, parent: int) -> list:
    """The filters on ``parent``, without the entries that only stand for a priority's chain (handle 0)."""
    found = device.request("RTM_GETTFILTER", "list filters",
                           lambda iproute: list(iproute.get_filters(index=device.index, parent=parent)))
    return [entry for entry in found if entry["handle"]]


class _Filter:
    """A direct-action bpf filter at (parent, priority, handle), named so that close() knows it is still ours."""

    def __init__(self, device: Interface, parent: int, priority: int, handle: int, name: str) -> None:
        self.device = device
        self.parent = parent
        self.priority = priority
        self.handle = handle
        self.name = name
        self.added = False

    def add(self, program: FdLike, direction: str) -> None:
        def add(iproute):
            return iproute.tc("add-filter", "bpf", self.device.index, self.handle, fd=fd_of(program), name=self.name,
                              parent=self.parent, prio=self.priority, protocol=ETH_P_ALL, direct_action=True)

        try:
            self.device.request("RTM_NEWTFILTER", f"add bpf filter on {direction}", add)
        except BpfError as error:
            if error.errno == errno.EEXIST:
                raise BpfError(error.errno, error.command, f"{self.device} {direction} already has a filter at priority "
                               f"{self.priority} handle {self.handle}: choose another priority") from None
            raise
        self.added = True

    def is_ours(self) -> bool:
        for entry in _filters(self.device, self.parent):
            if entry["handle"] == self.handle and entry["info"] >> 16 == self.priority:
                options = entry.get_attr("TCA_OPTIONS")
                return bool(options) and dict(options["attrs"]).get("TCA_BPF_NAME") == self.name
        return False

    def close(self) -> None:
        if not self.added:
            return
        self.added = False
        if not self.device.in_creator_process:
            return
        try:
            if self.is_ours():  # replaced by another tool: theirs now, it stays
                self.device.request("RTM_DELTFILTER", "remove bpf filter", self._delete)
        except BpfError as error:
            if error.errno not in (errno.ENODEV, errno.ENOENT, errno.EINVAL):  # gone already
                raise

    def _delete(self, iproute) -> object:
        return iproute.tc("del-filter", "bpf", self.device.index, self.handle, parent=self.parent,
                          prio=self.priority, protocol=ETH_P_ALL)
