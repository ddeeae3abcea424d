"""The bpf(2) system call through ctypes: one function per command.

Each command gets its own ``ctypes.Structure`` holding just the members of
``union bpf_attr`` it uses, laid out as in linux/bpf.h; the kernel accepts a
shorter attr and zero-fills the rest, which is what libbpf does too.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import os
import re
from typing import TYPE_CHECKING, Iterator, Sequence

from . import _libc
from .constants import (
    BPF_ANY,
    BPF_OBJ_NAME_LEN,
    BPF_STATS_RUN_TIME,
    AttachType,
    Cmd,
    LinkType,
    MapType,
    ProgType,
)
from .errors import BpfError, VerifierError, error_from_errno
from .fd import FdLike, OwnedFd, fd_of

if TYPE_CHECKING:
    from ._info import LinkInfo, MapInfo, ProgInfo, TestRunResult

__all__ = [
    "LinkFd",
    "LinkInfo",
    "MapFd",
    "MapInfo",
    "ProgInfo",
    "ProgramFd",
    "StatsFd",
    "TestRunResult",
    "bpf",
    "create_map",
    "enable_stats",
    "link_create",
    "link_get_fd_by_id",
    "link_ids",
    "link_info",
    "load_program",
    "map_create",
    "map_delete_elem",
    "map_get_fd_by_id",
    "map_get_next_key",
    "map_ids",
    "map_info",
    "map_lookup_elem",
    "map_update_elem",
    "possible_cpus",
    "prog_get_fd_by_id",
    "prog_get_next_id",
    "prog_ids",
    "prog_info",
    "prog_load",
    "prog_test_run",
    "raw_tracepoint_open",
    "sanitize_name",
    "test_run",
    "link_get_next_id",
    "map_get_next_id",
]

_u32 = ctypes.c_uint32
_u64 = ctypes.c_uint64
_NAME = ctypes.c_char * BPF_OBJ_NAME_LEN

BPF_LOG_LEVEL1 = 1
# The kernel accepts up to UINT_MAX >> 2 (since 5.2); a log bigger than this
# helps nobody and would cost that much memory per retry.
_LOG_SIZE_MAX = 64 << 20


# --- attr layouts (offsets checked against linux/bpf.h in tests) -------------


class _MapCreateAttr(ctypes.Structure):
    _fields_ = [
        ("map_type", _u32),
        ("key_size", _u32),
        ("value_size", _u32),
        ("max_entries", _u32),
        ("map_flags", _u32),
        ("inner_map_fd", _u32),
        ("numa_node", _u32),
        ("map_name", _NAME),
        ("map_ifindex", _u32),
        ("btf_fd", _u32),
        ("btf_key_type_id", _u32),
        ("btf_value_type_id", _u32),
        ("btf_vmlinux_value_type_id", _u32),
        ("map_extra", _u64),
    ]


class _MapElemAttr(ctypes.Structure):
    _fields_ = [
        ("map_fd", _u32),
        ("key", _u64),
        ("value", _u64),  # also next_key
        ("flags", _u64),
    ]


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = [
        ("prog_type", _u32),
        ("insn_cnt", _u32),
        ("insns", _u64),
        ("license", _u64),
        ("log_level", _u32),
        ("log_size", _u32),
        ("log_buf", _u64),
        ("kern_version", _u32),
        ("prog_flags", _u32),
        ("prog_name", _NAME),
        ("prog_ifindex", _u32),
        ("expected_attach_type", _u32),
        ("prog_btf_fd", _u32),
        ("func_info_rec_size", _u32),
        ("func_info", _u64),
        ("func_info_cnt", _u32),
        ("line_info_rec_size", _u32),
        ("line_info", _u64),
        ("line_info_cnt", _u32),
        ("attach_btf_id", _u32),
        ("attach_btf_obj_fd", _u32),  # also attach_prog_fd
        ("core_relo_cnt", _u32),
        ("fd_array", _u64),
        ("core_relos", _u64),
        ("core_relo_rec_size", _u32),
        # Output since 6.4: the log size the verifier needed. Older kernels see
        # a zero tail and accept the longer attr.
        ("log_true_size", _u32),
    ]


class _TestRunAttr(ctypes.Structure):
    _fields_ = [
        ("prog_fd", _u32),
        ("retval", _u32),
        ("data_size_in", _u32),
        ("data_size_out", _u32),
        ("data_in", _u64),
        ("data_out", _u64),
        ("repeat", _u32),
        ("duration", _u32),
        ("ctx_size_in", _u32),
        ("ctx_size_out", _u32),
        ("ctx_in", _u64),
        ("ctx_out", _u64),
        ("flags", _u32),
        ("cpu", _u32),
        ("batch_size", _u32),
    ]


class _GetIdAttr(ctypes.Structure):
    _fields_ = [
        ("start_id", _u32),  # also prog_id / map_id / link_id for GET_FD_BY_ID
        ("next_id", _u32),
        ("open_flags", _u32),
    ]


class _InfoAttr(ctypes.Structure):
    _fields_ = [
        ("bpf_fd", _u32),
        ("info_len", _u32),
        ("info", _u64),
    ]


class _RawTracepointAttr(ctypes.Structure):
    _fields_ = [
        ("name", _u64),
        ("prog_fd", _u32),
    ]


class _LinkCreateAttr(ctypes.Structure):
    # The tail is a union whose layout depends on attach_type; callers fill
    # the u64 words (see link_create) rather than modelling every variant.
    _fields_ = [
        ("prog_fd", _u32),
        ("target_fd", _u32),
        ("attach_type", _u32),
        ("flags", _u32),
        ("word16", _u64),
        ("word24", _u64),
        ("word32", _u64),
        ("word40", _u64),
    ]


class _EnableStatsAttr(ctypes.Structure):
    _fields_ = [("type", _u32)]


class _ProgInfoStruct(ctypes.Structure):
    _fields_ = [
        ("type", _u32),
        ("id", _u32),
        ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", _u32),
        ("xlated_prog_len", _u32),
        ("jited_prog_insns", _u64),
        ("xlated_prog_insns", _u64),
        ("load_time", _u64),
        ("created_by_uid", _u32),
        ("nr_map_ids", _u32),
        ("map_ids", _u64),
        ("name", _NAME),
        ("ifindex", _u32),
        ("gpl_compatible", _u32),  # bit 0; the other 31 bits are padding
        ("netns_dev", _u64),
        ("netns_ino", _u64),
        ("nr_jited_ksyms", _u32),
        ("nr_jited_func_lens", _u32),
        ("jited_ksyms", _u64),
        ("jited_func_lens", _u64),
        ("btf_id", _u32),
        ("func_info_rec_size", _u32),
        ("func_info", _u64),
        ("nr_func_info", _u32),
        ("nr_line_info", _u32),
        ("line_info", _u64),
        ("jited_line_info", _u64),
        ("nr_jited_line_info", _u32),
        ("line_info_rec_size", _u32),
        ("jited_line_info_rec_size", _u32),
        ("nr_prog_tags", _u32),
        ("prog_tags", _u64),
        ("run_time_ns", _u64),
        ("run_cnt", _u64),
        ("recursion_misses", _u64),
        ("verified_insns", _u32),
        ("attach_btf_obj_id", _u32),
        ("attach_btf_id", _u32),
        ("_pad", _u32),
    ]


class _MapInfoStruct(ctypes.Structure):
    _fields_ = [
        ("type", _u32),
        ("id", _u32),
        ("key_size", _u32),
        ("value_size", _u32),
        ("max_entries", _u32),
        ("map_flags", _u32),
        ("name", _NAME),
        ("ifindex", _u32),
        ("btf_vmlinux_value_type_id", _u32),
        ("netns_dev", _u64),
        ("netns_ino", _u64),
        ("btf_id", _u32),
        ("btf_key_type_id", _u32),
        ("btf_value_type_id", _u32),
        ("_pad", _u32),
        ("map_extra", _u64),
    ]


class _LinkInfoStruct(ctypes.Structure):
    _fields_ = [
        ("type", _u32),
        ("id", _u32),
        ("prog_id", _u32),
        ("_pad", _u32),
        # union: raw_tracepoint {u64 tp_name; u32 tp_name_len}
        #        tracing {u32 attach_type; u32 target_obj_id; u32 target_btf_id}
        ("word16", _u64),
        ("word24", _u64),
        ("word32", _u64),
        ("word40", _u64),
    ]


# --- the syscall ---------------------------------------------------------------


def bpf(cmd: int, attr: ctypes.Structure) -> tuple[int, int]:
    """Raw bpf(cmd, &attr, sizeof attr); returns ``(result, errno)``."""
    return _libc.syscall(_libc.NR_BPF, int(cmd), ctypes.byref(attr), ctypes.sizeof(attr))


def _bpf_checked(cmd: Cmd, attr: ctypes.Structure, what: str, missing_feature: Sequence[int] = ()) -> int:
    result, err = bpf(cmd, attr)
    if err:
        raise error_from_errno(err, f"BPF_{cmd.name}", what, missing_feature_errnos=missing_feature)
    return result


_NAME_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.]")


def sanitize_name(name: str) -> bytes:
    """An object name the kernel accepts: [A-Za-z0-9_.], at most 15 bytes.

    Anything else would make PROG_LOAD/MAP_CREATE fail with EINVAL, and a
    silently dropped name would defeat ``bpftool prog show``.
    """
    return _NAME_BAD_CHARS.sub("_", name)[: BPF_OBJ_NAME_LEN - 1].encode("ascii")


def _enum_name(enum_cls, value: int) -> str:
    try:
        return enum_cls(value).name.lower()
    except ValueError:
        return str(value)


@functools.lru_cache(maxsize=None)
def possible_cpus() -> int:
    """Number of possible CPUs: the stride count of per-CPU map values.

    Fixed for the life of the system, so read once: a per-CPU lookup then
    makes no syscall besides its own.
    """
    with open("/sys/devices/system/cpu/possible") as f:
        text = f.read().strip()
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += (int(hi) if hi else int(lo)) - int(lo) + 1
    return count


# --- info --------------------------------------------------------------------


def _get_info(fd: int, info: ctypes.Structure, what: str) -> None:
    attr = _InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    _bpf_checked(Cmd.OBJ_GET_INFO_BY_FD, attr, what)


def prog_info(prog: FdLike) -> ProgInfo:
    """BPF_OBJ_GET_INFO_BY_FD on a program: id, name, type, run stats, map ids."""
    from ._info import ProgInfo
    fd = fd_of(prog)
    raw = _ProgInfoStruct()
    _get_info(fd, raw, f"program info of fd {fd}")
    map_ids: tuple[int, ...] = ()
    if raw.nr_map_ids:
        # Second call with only the map id array requested: the kernel fills
        # just the pointers we set, everything else must stay zero.
        ids = (_u32 * raw.nr_map_ids)()
        again = _ProgInfoStruct(nr_map_ids=raw.nr_map_ids, map_ids=ctypes.addressof(ids))
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


def raw_map_info(map_: FdLike) -> _MapInfoStruct:
    """BPF_OBJ_GET_INFO_BY_FD on a map, as the kernel's struct (no MapInfo to build: start-up)."""
    fd = fd_of(map_)
    raw = _MapInfoStruct()
    _get_info(fd, raw, f"map info of fd {fd}")
    return raw


def map_info(map_: FdLike) -> MapInfo:
    """BPF_OBJ_GET_INFO_BY_FD on a map."""
    from ._info import MapInfo
    raw = raw_map_info(map_)
    return MapInfo(
        id=raw.id,
        name=raw.name.decode(errors="replace"),
        type=raw.type,
        key_size=raw.key_size,
        value_size=raw.value_size,
        max_entries=raw.max_entries,
        map_flags=raw.map_flags,
    )


def link_info(link: FdLike) -> LinkInfo:
    """BPF_OBJ_GET_INFO_BY_FD on a link; raw_tracepoint links report their tracepoint."""
    from ._info import LinkInfo
    fd = fd_of(link)
    raw = _LinkInfoStruct()
    _get_info(fd, raw, f"link info of fd {fd}")
    if raw.type == LinkType.RAW_TRACEPOINT:
        name_buf = ctypes.create_string_buffer(256)
        again = _LinkInfoStruct(word16=ctypes.addressof(name_buf), word24=len(name_buf))
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
    return LinkInfo(id=raw.id, type=raw.type, prog_id=raw.prog_id)


# --- owned objects -------------------------------------------------------------


class ProgramFd(OwnedFd):
    """A loaded program. ``verifier_log`` holds the log when one was requested."""

    __slots__ = ("name", "prog_type", "expected_attach_type", "verifier_log")

    def __init__(self, fd: int, name: str, prog_type: int, expected_attach_type: int = 0, verifier_log: str | None = None):
        super().__init__(fd)
        self.name = name
        self.prog_type = prog_type
        self.expected_attach_type = expected_attach_type
        self.verifier_log = verifier_log

    def info(self) -> ProgInfo:
        return prog_info(self)

    @property
    def id(self) -> int:
        """Kernel-wide program id (as shown by ``bpftool prog show``)."""
        return self.info().id

    def test_run(self, data_in: bytes = b"", ctx_in: bytes = b"", repeat: int = 1) -> "TestRunResult":
        return prog_test_run(self, data_in=data_in, ctx_in=ctx_in, repeat=repeat)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<ProgramFd {self.name!r} {_enum_name(ProgType, self.prog_type)} {state}>"


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


class StatsFd(OwnedFd):
    """Keeps BPF run-time statistics enabled until closed."""

    __slots__ = ()


class MapFd(OwnedFd):
    """A map with its geometry; keys and values are bytes (ints are packed to size)."""

    __slots__ = ("name", "map_type", "key_size", "value_size", "max_entries", "flags")

    def __init__(self, fd: int, name: str, map_type: int, key_size: int, value_size: int, max_entries: int, flags: int = 0):
        super().__init__(fd)
        self.name = name
        self.map_type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.flags = flags

    @classmethod
    def from_fd(cls, fd: int) -> "MapFd":
        """Adopt an fd (e.g. from BPF_MAP_GET_FD_BY_ID), reading its geometry from the kernel."""
        info = map_info(fd)
        return cls(fd, info.name, info.type, info.key_size, info.value_size, info.max_entries, info.map_flags)

    @property
    def is_percpu(self) -> bool:
        return self.map_type in (MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH, MapType.PERCPU_CGROUP_STORAGE)

    @property
    def value_buffer_size(self) -> int:
        """Bytes a lookup returns: per-CPU maps give one 8-aligned slot per possible CPU."""
        if self.is_percpu:
            return ((self.value_size + 7) & ~7) * possible_cpus()
        return self.value_size

    def _key(self, key: bytes | int) -> bytes:
        if isinstance(key, int):
            return key.to_bytes(self.key_size, "little")
        key = bytes(key)
        if len(key) != self.key_size:
            raise ValueError(f"map {self.name!r}: key is {len(key)} bytes, expected {self.key_size}")
        return key

    def lookup(self, key: bytes | int) -> bytes | None:
        """The value stored under ``key``, or None if there is none."""
        return map_lookup_elem(self, self._key(key), self.value_buffer_size)

    def lookup_percpu(self, key: bytes | int) -> list[bytes] | None:
        """Per-CPU map lookup split into one value per possible CPU."""
        blob = self.lookup(key)
        if blob is None:
            return None
        stride = (self.value_size + 7) & ~7
        return [blob[i : i + self.value_size] for i in range(0, len(blob), stride)]

    def update(self, key: bytes | int, value: bytes | int, flags: int = BPF_ANY) -> None:
        if isinstance(value, int):
            value = value.to_bytes(self.value_size, "little")
        value = bytes(value)
        if len(value) != self.value_buffer_size:
            raise ValueError(f"map {self.name!r}: value is {len(value)} bytes, expected {self.value_buffer_size}")
        map_update_elem(self, self._key(key), value, flags)

    def delete(self, key: bytes | int) -> bool:
        """Delete ``key``; False if it was not there."""
        return map_delete_elem(self, self._key(key))

    def next_key(self, key: bytes | int | None = None) -> bytes | None:
        """The key after ``key`` (the first key for None); None at the end."""
        return map_get_next_key(self, None if key is None else self._key(key), self.key_size)

    def keys(self) -> Iterator[bytes]:
        key = self.next_key()
        while key is not None:
            yield key
            key = self.next_key(key)

    def info(self) -> MapInfo:
        return map_info(self)

    @property
    def id(self) -> int:
        return self.info().id

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<MapFd {self.name!r} {_enum_name(MapType, self.map_type)} {state}>"


# --- maps ----------------------------------------------------------------------


def map_create(
    map_type: int,
    key_size: int,
    value_size: int,
    max_entries: int,
    *,
    name: str,
    flags: int = 0,
    inner_map_fd: int = 0,
    map_extra: int = 0,
) -> MapFd:
    """BPF_MAP_CREATE. An unknown map type raises NotSupportedError."""
    attr = _MapCreateAttr(
        map_type=map_type,
        key_size=key_size,
        value_size=value_size,
        max_entries=max_entries,
        map_flags=flags,
        inner_map_fd=inner_map_fd,
        map_name=sanitize_name(name),
        map_extra=map_extra,
    )
    what = f"create {_enum_name(MapType, map_type)} map {name!r} key={key_size} value={value_size} entries={max_entries}"
    # EINVAL is ambiguous (bad geometry or unknown type); only call it a
    # missing feature when the type itself is beyond what we know.
    missing = (_errno.EINVAL,) if int(map_type) > max(MapType) else ()
    fd = _bpf_checked(Cmd.MAP_CREATE, attr, what, missing)
    return MapFd(fd, name, map_type, key_size, value_size, max_entries, flags)


create_map = map_create  # the name docs/architecture.md promises


def map_lookup_elem(map_: FdLike, key: bytes, value_size: int) -> bytes | None:
    """BPF_MAP_LOOKUP_ELEM; None when the key is absent (ENOENT)."""
    key_buf = ctypes.create_string_buffer(bytes(key), len(key))
    value_buf = ctypes.create_string_buffer(value_size)
    attr = _MapElemAttr(map_fd=fd_of(map_), key=ctypes.addressof(key_buf), value=ctypes.addressof(value_buf))
    _, err = bpf(Cmd.MAP_LOOKUP_ELEM, attr)
    if err == _errno.ENOENT:
        return None
    if err:
        raise error_from_errno(err, "BPF_MAP_LOOKUP_ELEM", f"map fd {fd_of(map_)}")
    return value_buf.raw


def map_update_elem(map_: FdLike, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    """BPF_MAP_UPDATE_ELEM (flags: BPF_ANY, BPF_NOEXIST, BPF_EXIST)."""
    key_buf = ctypes.create_string_buffer(bytes(key), len(key))
    value_buf = ctypes.create_string_buffer(bytes(value), len(value))
    attr = _MapElemAttr(map_fd=fd_of(map_), key=ctypes.addressof(key_buf), value=ctypes.addressof(value_buf), flags=flags)
    _bpf_checked(Cmd.MAP_UPDATE_ELEM, attr, f"map fd {fd_of(map_)}")


def map_delete_elem(map_: FdLike, key: bytes) -> bool:
    """BPF_MAP_DELETE_ELEM; False when the key was absent."""
    key_buf = ctypes.create_string_buffer(bytes(key), len(key))
    attr = _MapElemAttr(map_fd=fd_of(map_), key=ctypes.addressof(key_buf))
    _, err = bpf(Cmd.MAP_DELETE_ELEM, attr)
    if err == _errno.ENOENT:
        return False
    if err:
        raise error_from_errno(err, "BPF_MAP_DELETE_ELEM", f"map fd {fd_of(map_)}")
    return True


def map_get_next_key(map_: FdLike, key: bytes | None, key_size: int) -> bytes | None:
    """BPF_MAP_GET_NEXT_KEY; ``key=None`` gives the first key, None means no more."""
    key_buf = ctypes.create_string_buffer(bytes(key), len(key)) if key is not None else None
    next_buf = ctypes.create_string_buffer(key_size)
    attr = _MapElemAttr(
        map_fd=fd_of(map_),
        key=ctypes.addressof(key_buf) if key_buf is not None else 0,
        value=ctypes.addressof(next_buf),
    )
    _, err = bpf(Cmd.MAP_GET_NEXT_KEY, attr)
    if err == _errno.ENOENT:
        return None
    if err:
        raise error_from_errno(err, "BPF_MAP_GET_NEXT_KEY", f"map fd {fd_of(map_)}")
    return next_buf.raw


# --- programs ----------------------------------------------------------------------


def _load_once(attr: _ProgLoadAttr, log_size: int) -> tuple[int, int, str, int]:
    """One PROG_LOAD attempt; returns (fd, errno, log text, log size the kernel wanted)."""
    log_buf = ctypes.create_string_buffer(log_size) if log_size else None
    attr.log_size = log_size
    attr.log_buf = ctypes.addressof(log_buf) if log_buf is not None else 0
    attr.log_true_size = 0
    fd, err = bpf(Cmd.PROG_LOAD, attr)
    log = log_buf.value.decode(errors="replace") if log_buf is not None else ""
    return fd, err, log, attr.log_true_size


def load_program(
    code: bytes,
    prog_type: int,
    *,
    name: str,
    license: str = "GPL",
    expected_attach_type: int = 0,
    attach_btf_id: int = 0,
    attach_btf_obj_fd: int = 0,
    attach_prog_fd: int = 0,
    prog_flags: int = 0,
    slot_sources: Sequence[str] | None = None,
    log_level: int = 0,
    log_size: int = 64 * 1024,
) -> ProgramFd:
    """BPF_PROG_LOAD ``code`` (raw 8-byte instruction slots).

    The first attempt runs without a verifier log (cheap); on rejection the
    load is repeated with ``log_level=1`` to obtain the log, growing the
    buffer from ``log_size`` while the kernel reports it truncated (ENOSPC or
    ``log_true_size``), and :class:`VerifierError` is raised with the log
    annotated by ``slot_sources``. With ``log_level > 0`` the log is requested
    from the start and kept in ``ProgramFd.verifier_log``.
    """
    code = bytes(code)
    if not code or len(code) % 8:
        raise ValueError(f"program {name!r}: code length {len(code)} is not a positive multiple of 8")
    insns = ctypes.create_string_buffer(code, len(code))
    license_buf = _libc.c_string(license)
    attr = _ProgLoadAttr(
        prog_type=prog_type,
        insn_cnt=len(code) // 8,
        insns=ctypes.addressof(insns),
        license=ctypes.addressof(license_buf),
        prog_flags=prog_flags,
        prog_name=sanitize_name(name),
        expected_attach_type=expected_attach_type,
        attach_btf_id=attach_btf_id,
        attach_btf_obj_fd=attach_btf_obj_fd or attach_prog_fd,
    )
    what = _describe_load(name, prog_type, expected_attach_type, attach_btf_id)

    if log_level == 0:
        fd, err, _, _ = _load_once(attr, 0)
        if not err:
            return ProgramFd(fd, name, prog_type, expected_attach_type)
        if err in (_errno.EPERM, _errno.E2BIG, _errno.EBADF, _errno.EFAULT, _errno.ENOMEM):
            # Not a verdict on the code: privileges, attr size, bad fd. A log
            # would not explain more, so report it directly.
            raise _load_error(err, what, attr)
        attr.log_level = BPF_LOG_LEVEL1
    else:
        attr.log_level = log_level

    size = max(int(log_size), 128)
    while True:
        fd, err, log, wanted = _load_once(attr, size)
        truncated = err == _errno.ENOSPC or wanted > size
        if not truncated or size >= _LOG_SIZE_MAX:
            break
        if fd >= 0:  # it loaded, only the log was cut: load again for the whole log
            os.close(fd)
        size = min(wanted if wanted > size else size * 4, _LOG_SIZE_MAX)
    if not err:
        return ProgramFd(fd, name, prog_type, expected_attach_type, verifier_log=log if log_level else None)
    if log.strip() and err not in (_errno.EPERM,):
        raise VerifierError(err, "BPF_PROG_LOAD", name, log, slot_sources, log_buffer_size=size, truncated=truncated)
    raise _load_error(err, what, attr, log)


prog_load = load_program


def _describe_load(name: str, prog_type: int, expected_attach_type: int, attach_btf_id: int) -> str:
    parts = [f"load {_enum_name(ProgType, prog_type)} program {name!r}"]
    if expected_attach_type:
        parts.append(f"attach type {_enum_name(AttachType, expected_attach_type)}")
    if attach_btf_id:
        parts.append(f"btf id {attach_btf_id}")
    return ", ".join(parts)


def _load_error(err: int, what: str, attr: _ProgLoadAttr, log: str = "") -> BpfError:
    # EINVAL with a program type or attach type the kernel does not know is a
    # missing feature; EINVAL on a known one is a plain error.
    missing = (_errno.EINVAL,) if attr.prog_type > max(ProgType) or attr.expected_attach_type > max(AttachType) else ()
    if log.strip():
        what = f"{what}; verifier: {log.strip().splitlines()[-1]}"
    return error_from_errno(err, "BPF_PROG_LOAD", what, missing_feature_errnos=missing)


def prog_test_run(
    prog: FdLike,
    data_in: bytes = b"",
    ctx_in: bytes = b"",
    repeat: int = 1,
    *,
    data_out_size: int | None = None,
    ctx_out_size: int | None = None,
    flags: int = 0,
    cpu: int = 0,
) -> TestRunResult:
    """BPF_PROG_TEST_RUN: run ``prog`` in the kernel on the given input.

    ``repeat=1`` is sent as 0, which the kernel also runs once: program types
    that cannot repeat (raw_tracepoint, syscall) reject any other value.
    Unsupported program types raise NotSupportedError.
    """
    from ._info import TestRunResult

    fd = fd_of(prog)
    data_in = bytes(data_in)
    ctx_in = bytes(ctx_in)
    if data_out_size is None:
        data_out_size = len(data_in) + 256 if data_in else 0
    if ctx_out_size is None:
        # raw_tracepoint test runs reject any ctx_out; ask for it explicitly.
        ctx_out_size = 0
    din = ctypes.create_string_buffer(data_in, len(data_in)) if data_in else None
    dout = ctypes.create_string_buffer(data_out_size) if data_out_size else None
    cin = ctypes.create_string_buffer(ctx_in, len(ctx_in)) if ctx_in else None
    cout = ctypes.create_string_buffer(ctx_out_size) if ctx_out_size else None
    attr = _TestRunAttr(
        prog_fd=fd,
        data_size_in=len(data_in),
        data_size_out=data_out_size,
        data_in=_libc.buffer_address(din),
        data_out=_libc.buffer_address(dout),
        repeat=0 if repeat == 1 else repeat,
        ctx_size_in=len(ctx_in),
        ctx_size_out=ctx_out_size,
        ctx_in=_libc.buffer_address(cin),
        ctx_out=_libc.buffer_address(cout),
        flags=flags,
        cpu=cpu,
    )
    _bpf_checked(Cmd.PROG_TEST_RUN, attr, f"test run of program fd {fd}")
    data_out = dout.raw[: attr.data_size_out] if dout is not None else b""
    ctx_out = cout.raw[: attr.ctx_size_out] if cout is not None else b""
    return TestRunResult(attr.retval, data_out, attr.duration, ctx_out)


test_run = prog_test_run
test_run.__test__ = False  # type: ignore[attr-defined]
prog_test_run.__test__ = False  # type: ignore[attr-defined]


# --- attach --------------------------------------------------------------------------


def raw_tracepoint_open(prog: FdLike, name: str | None) -> LinkFd:
    """BPF_RAW_TRACEPOINT_OPEN: attach a raw_tp program to tracepoint ``name``.

    For tp_btf/fentry/fexit programs pass ``name=None``: the target comes from
    the program's attach_btf_id. An unknown tracepoint raises NotSupportedError.
    """
    name_buf = _libc.c_string(name) if name else None
    attr = _RawTracepointAttr(name=_libc.buffer_address(name_buf), prog_fd=fd_of(prog))
    target = name or "the program's BTF target"
    fd = _bpf_checked(Cmd.RAW_TRACEPOINT_OPEN, attr, f"attach to raw tracepoint {target}", (_errno.ENOENT,))
    return LinkFd(fd, f"raw_tp:{target}")


def link_create(
    prog: FdLike,
    target_fd: int = 0,
    attach_type: int = 0,
    *,
    flags: int = 0,
    target_btf_id: int = 0,
    cookie: int = 0,
) -> LinkFd:
    """BPF_LINK_CREATE.

    ``attach_type`` BPF_PERF_EVENT links a kprobe/tracepoint program to the
    perf event ``target_fd`` (``cookie`` → bpf_get_attach_cookie);
    BPF_TRACE_RAW_TP/FENTRY/FEXIT link a tracing program (``target_fd`` 0,
    target from the program's attach_btf_id, or ``target_btf_id``).
    """
    attr = _LinkCreateAttr(prog_fd=fd_of(prog), target_fd=target_fd, attach_type=attach_type, flags=flags)
    if attach_type == AttachType.PERF_EVENT:
        attr.word16 = cookie
    else:
        # tracing: u32 target_btf_id, then the u64 cookie at offset 24
        attr.word16 = target_btf_id
        attr.word24 = cookie
    kind = _enum_name(AttachType, attach_type)
    fd = _bpf_checked(
        Cmd.LINK_CREATE, attr, f"link {kind} program fd {fd_of(prog)} to target fd {target_fd}", (_errno.EINVAL,)
    )
    return LinkFd(fd, f"{kind}:{target_fd}")


# --- ids ---------------------------------------------------------------------------


def _next_id(cmd: Cmd, start_id: int) -> int | None:
    attr = _GetIdAttr(start_id=start_id)
    _, err = bpf(cmd, attr)
    if err == _errno.ENOENT:
        return None
    if err:
        raise error_from_errno(err, f"BPF_{cmd.name}", f"after id {start_id}")
    return attr.next_id


def prog_get_next_id(start_id: int = 0) -> int | None:
    """BPF_PROG_GET_NEXT_ID: the next loaded program id after ``start_id``, None at the end."""
    return _next_id(Cmd.PROG_GET_NEXT_ID, start_id)


def map_get_next_id(start_id: int = 0) -> int | None:
    """BPF_MAP_GET_NEXT_ID."""
    return _next_id(Cmd.MAP_GET_NEXT_ID, start_id)


def link_get_next_id(start_id: int = 0) -> int | None:
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
    return _walk(Cmd.MAP_GET_NEXT_ID)


def link_ids() -> Iterator[int]:
    return _walk(Cmd.LINK_GET_NEXT_ID)


def _fd_by_id(cmd: Cmd, obj_id: int, what: str) -> int:
    return _bpf_checked(cmd, _GetIdAttr(start_id=obj_id), f"{what} id {obj_id}")


def prog_get_fd_by_id(prog_id: int) -> ProgramFd:
    """BPF_PROG_GET_FD_BY_ID: an owned fd to program ``prog_id`` (ENOENT if gone)."""
    fd = _fd_by_id(Cmd.PROG_GET_FD_BY_ID, prog_id, "program")
    try:
        info = prog_info(fd)
    except BaseException:
        os.close(fd)
        raise
    return ProgramFd(fd, info.name, info.type)


def map_get_fd_by_id(map_id: int) -> MapFd:
    """BPF_MAP_GET_FD_BY_ID."""
    fd = _fd_by_id(Cmd.MAP_GET_FD_BY_ID, map_id, "map")
    try:
        return MapFd.from_fd(fd)
    except BaseException:
        os.close(fd)
        raise


def link_get_fd_by_id(link_id: int) -> LinkFd:
    """BPF_LINK_GET_FD_BY_ID."""
    fd = _fd_by_id(Cmd.LINK_GET_FD_BY_ID, link_id, "link")
    return LinkFd(fd, f"id:{link_id}")


# --- stats -------------------------------------------------------------------------


def enable_stats(stats_type: int = BPF_STATS_RUN_TIME) -> StatsFd:
    """BPF_ENABLE_STATS: run_time_ns/run_cnt are counted while the returned fd is open."""
    fd = _bpf_checked(Cmd.ENABLE_STATS, _EnableStatsAttr(type=stats_type), "enable run-time stats", (_errno.EINVAL,))
    return StatsFd(fd)


# The info and test-run result classes are dataclasses, whose creation costs
# ~2 ms of the tracer's start-up; the tracer never asks for them.
_INFO_CLASSES = ("LinkInfo", "MapInfo", "ProgInfo", "TestRunResult")


def __getattr__(name: str) -> object:
    if name in _INFO_CLASSES:
        from . import _info

        value = getattr(_info, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
