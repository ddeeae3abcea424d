"""What the kernel says about its BPF objects: BPF_OBJ_GET_INFO_BY_FD, the id walks, run-time stats.

The results are FieldTuples (:mod:`openat.fieldtuple`): as immutable and
comparable as frozen dataclasses, without the import of ``dataclasses`` (and
``inspect``) that would cost every user of ``openat.syscalls`` start-up time.
"""

from __future__ import annotations

import ctypes
import errno as _errno
from typing import Iterator, Optional, Tuple

from ..fieldtuple import FieldTuple
from ..uapi import BPF_STATS_RUN_TIME, Cmd, LinkType, MapType, ProgType, enum_name
from .attrs import EnableStatsAttr, GetIdAttr, InfoAttr, LinkInfoStruct, MapInfoStruct, ProgInfoStruct, bpf, bpf_or_raise, u32
from .errors import error_from_errno
from .fd import FdLike, OwnedFd, fd_of

__all__ = [
    "LinkInfo",
    "MapInfo",
    "ProgInfo",
    "StatsFd",
    "enable_stats",
    "link_get_next_id",
    "link_ids",
    "link_info",
    "map_get_next_id",
    "map_ids",
    "map_info",
    "prog_get_next_id",
    "prog_ids",
    "prog_info",
    "raw_map_info",
]


class ProgInfo(FieldTuple):
    """BPF_OBJ_GET_INFO_BY_FD for a program."""

    id: int
    name: str
    type: int
    tag: str
    run_time_ns: int
    run_cnt: int
    recursion_misses: int
    verified_insns: int
    load_time: int
    created_by_uid: int
    btf_id: int
    attach_btf_id: int
    gpl_compatible: bool
    map_ids: Tuple[int, ...] = ()

    @property
    def type_name(self) -> str:
        return enum_name(ProgType, self.type)


class MapInfo(FieldTuple):
    """BPF_OBJ_GET_INFO_BY_FD for a map."""

    id: int
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    btf_id: int = 0
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0

    @property
    def type_name(self) -> str:
        return enum_name(MapType, self.type)


class LinkInfo(FieldTuple):
    """BPF_OBJ_GET_INFO_BY_FD for a link (raw_tp name / tracing target filled in)."""

    id: int
    type: int
    prog_id: int
    tp_name: Optional[str] = None
    attach_type: Optional[int] = None
    target_obj_id: Optional[int] = None
    target_btf_id: Optional[int] = None
    ifindex: Optional[int] = None  # XDP and tcx links

    @property
    def type_name(self) -> str:
        return enum_name(LinkType, self.type)


def _get_info(fd: int, info: ctypes.Structure, what: str) -> None:
    attr = InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    bpf_or_raise(Cmd.OBJ_GET_INFO_BY_FD, attr, what)


def prog_info(prog: FdLike) -> ProgInfo:
    """BPF_OBJ_GET_INFO_BY_FD on a program: id, name, type, run stats, map ids."""
    fd = fd_of(prog)
    raw = ProgInfoStruct()
    _get_info(fd, raw, f"program info of fd {fd}")
    map_ids: Tuple[int, ...] = ()
    if raw.nr_map_ids:
        # Second call with only the map id array requested: the kernel fills
        # just the pointers we set, everything else must stay zero.
        ids = (u32 * raw.nr_map_ids)()
        again = ProgInfoStruct(nr_map_ids=raw.nr_map_ids, map_ids=ctypes.addressof(ids))
        _get_info(fd, again, f"program map ids of fd {fd}")
        map_ids = tuple(ids[: min(raw.nr_map_ids, again.nr_map_ids)])
    return ProgInfo(
        id=raw.id,
        name=raw.name.decode(errors="replace"),
        type=raw.type,
        tag=bytes(raw.tag).hex(),
        run_time_ns=raw.run_time_ns,
        run_cnt=raw.run_cnt,
        recursion_misses=raw.recursion_misses,
        verified_insns=raw.verified_insns,
        load_time=raw.load_time,
        created_by_uid=raw.created_by_uid,
        btf_id=raw.btf_id,
        attach_btf_id=raw.attach_btf_id,
        gpl_compatible=bool(raw.gpl_compatible & 1),
        map_ids=map_ids,
    )


def raw_map_info(map_: FdLike) -> MapInfoStruct:
    """BPF_OBJ_GET_INFO_BY_FD on a map, as the kernel's struct (nothing built: the ring buffer's start-up)."""
    fd = fd_of(map_)
    raw = MapInfoStruct()
    _get_info(fd, raw, f"map info of fd {fd}")
    return raw


def map_info(map_: FdLike) -> MapInfo:
    """BPF_OBJ_GET_INFO_BY_FD on a map."""
    raw = raw_map_info(map_)
    return MapInfo(
        id=raw.id,
        name=raw.name.decode(errors="replace"),
        type=raw.type,
        key_size=raw.key_size,
        value_size=raw.value_size,
        max_entries=raw.max_entries,
        map_flags=raw.map_flags,
        btf_id=raw.btf_id,
        btf_key_type_id=raw.btf_key_type_id,
        btf_value_type_id=raw.btf_value_type_id,
    )


def link_info(link: FdLike) -> LinkInfo:
    """BPF_OBJ_GET_INFO_BY_FD on a link; raw_tracepoint links report their tracepoint."""
    fd = fd_of(link)
    raw = LinkInfoStruct()
    _get_info(fd, raw, f"link info of fd {fd}")
    if raw.type == LinkType.RAW_TRACEPOINT:
        name_buf = ctypes.create_string_buffer(256)
        again = LinkInfoStruct(word16=ctypes.addressof(name_buf), word24=len(name_buf))
        _get_info(fd, again, f"link tracepoint name of fd {fd}")
        return LinkInfo(id=raw.id, type=raw.type, prog_id=raw.prog_id, tp_name=name_buf.value.decode(errors="replace"))
    if raw.type == LinkType.TRACING:
        return LinkInfo(
            id=raw.id,
            type=raw.type,
            prog_id=raw.prog_id,
            attach_type=raw.word16 & 0xFFFFFFFF,
            target_obj_id=raw.word16 >> 32,
            target_btf_id=raw.word24 & 0xFFFFFFFF,
        )
    if raw.type in (LinkType.XDP, LinkType.TCX):
        return LinkInfo(id=raw.id, type=raw.type, prog_id=raw.prog_id, ifindex=raw.word16 & 0xFFFFFFFF)
    return LinkInfo(id=raw.id, type=raw.type, prog_id=raw.prog_id)


# --- ids -------------------------------------------------------------------------


def _next_id(cmd: Cmd, start_id: int) -> Optional[int]:
    attr = GetIdAttr(start_id=start_id)
    _, err = bpf(cmd, attr)
    if err == _errno.ENOENT:
        return None
    if err:
        raise error_from_errno(err, f"BPF_{cmd.name}", f"after id {start_id}")
    return attr.next_id


def prog_get_next_id(start_id: int = 0) -> Optional[int]:
    """BPF_PROG_GET_NEXT_ID: the next loaded program id after ``start_id``, None at the end."""
    return _next_id(Cmd.PROG_GET_NEXT_ID, start_id)


def map_get_next_id(start_id: int = 0) -> Optional[int]:
    """BPF_MAP_GET_NEXT_ID."""
    return _next_id(Cmd.MAP_GET_NEXT_ID, start_id)


def link_get_next_id(start_id: int = 0) -> Optional[int]:
    """BPF_LINK_GET_NEXT_ID."""
    return _next_id(Cmd.LINK_GET_NEXT_ID, start_id)


def _walk(cmd: Cmd) -> Iterator[int]:
    current = 0
    while (current := _next_id(cmd, current)) is not None:
        yield current


def prog_ids() -> Iterator[int]:
    """Ids of every loaded program (PROG_GET_NEXT_ID walk)."""
    return _walk(Cmd.PROG_GET_NEXT_ID)


def map_ids() -> Iterator[int]:
    """Ids of every map (MAP_GET_NEXT_ID walk)."""
    return _walk(Cmd.MAP_GET_NEXT_ID)


def link_ids() -> Iterator[int]:
    """Ids of every link (LINK_GET_NEXT_ID walk)."""
    return _walk(Cmd.LINK_GET_NEXT_ID)


# --- stats -------------------------------------------------------------------------


class StatsFd(OwnedFd):
    """Keeps BPF run-time statistics enabled until closed."""

    __slots__ = ()


def enable_stats(stats_type: int = BPF_STATS_RUN_TIME) -> StatsFd:
    """BPF_ENABLE_STATS: run_time_ns/run_cnt are counted while the returned fd is open."""
    fd = bpf_or_raise(Cmd.ENABLE_STATS, EnableStatsAttr(type=stats_type), "enable run-time stats", (_errno.EINVAL,))
    return StatsFd(fd)
