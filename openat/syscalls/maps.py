"""BPF maps: BPF_MAP_CREATE, the element commands, and :class:`MapFd`, which owns a map."""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import os
from typing import Iterator, List, Optional, Tuple, Union

from ..uapi import BPF_ANY, Cmd, MapType, enum_name
from .attrs import GetIdAttr, MapCreateAttr, MapElemAttr, bpf, bpf_or_raise, sanitize_name
from .errors import error_from_errno
from .fd import FdLike, OwnedFd, fd_of
from .info import MapInfo, map_info

__all__ = [
    "MapFd",
    "map_create",
    "map_delete_elem",
    "map_freeze",
    "map_get_fd_by_id",
    "map_get_next_key",
    "map_lookup_elem",
    "map_update_elem",
    "lift_memlock_limit",
    "possible_cpus",
]

Key = Union[bytes, int]

_PERCPU_TYPES = (MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH, MapType.PERCPU_CGROUP_STORAGE)


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
        return self.map_type in _PERCPU_TYPES

    @property
    def value_buffer_size(self) -> int:
        """Bytes a lookup returns: per-CPU maps give one 8-aligned slot per possible CPU."""
        if self.is_percpu:
            return ((self.value_size + 7) & ~7) * possible_cpus()
        return self.value_size

    def _key(self, key: Key) -> bytes:
        if isinstance(key, int):
            return key.to_bytes(self.key_size, "little")
        key = bytes(key)
        if len(key) != self.key_size:
            raise ValueError(f"map {self.name!r}: key is {len(key)} bytes, expected {self.key_size}")
        return key

    def lookup(self, key: Key) -> Optional[bytes]:
        """The value stored under ``key``, or None if there is none."""
        return map_lookup_elem(self, self._key(key), self.value_buffer_size)

    def lookup_percpu(self, key: Key) -> Optional[List[bytes]]:
        """Per-CPU map lookup split into one value per possible CPU."""
        blob = self.lookup(key)
        if blob is None:
            return None
        stride = (self.value_size + 7) & ~7
        return [blob[i : i + self.value_size] for i in range(0, len(blob), stride)]

    def update(self, key: Key, value: Union[bytes, int], flags: int = BPF_ANY) -> None:
        """Store ``value`` under ``key`` (flags: BPF_ANY, BPF_NOEXIST, BPF_EXIST)."""
        if isinstance(value, int):
            value = value.to_bytes(self.value_size, "little")
        value = bytes(value)
        if len(value) != self.value_buffer_size:
            raise ValueError(f"map {self.name!r}: value is {len(value)} bytes, expected {self.value_buffer_size}")
        map_update_elem(self, self._key(key), value, flags)

    def delete(self, key: Key) -> bool:
        """Delete ``key``; False if it was not there."""
        return map_delete_elem(self, self._key(key))

    def next_key(self, key: Optional[Key] = None) -> Optional[bytes]:
        """The key after ``key`` (the first key for None); None at the end."""
        return map_get_next_key(self, None if key is None else self._key(key), self.key_size)

    def keys(self) -> Iterator[bytes]:
        """Every key, in the kernel's order."""
        key = self.next_key()
        while key is not None:
            yield key
            key = self.next_key(key)

    def items(self) -> Iterator[Tuple[bytes, bytes]]:
        """``(key, value)`` for every key that still has a value when it is looked up."""
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def freeze(self) -> None:
        """BPF_MAP_FREEZE: no more writes from user space (the ``.rodata`` of an object)."""
        map_freeze(self)

    def info(self) -> MapInfo:
        return map_info(self)

    @property
    def id(self) -> int:
        return self.info().id

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<MapFd {self.name!r} {enum_name(MapType, self.map_type)} {state}>"


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
    btf_fd: int = 0,
    btf_key_type_id: int = 0,
    btf_value_type_id: int = 0,
) -> MapFd:
    """BPF_MAP_CREATE. An unknown map type raises NotSupportedError."""
    attr = MapCreateAttr(
        map_type=map_type,
        key_size=key_size,
        value_size=value_size,
        max_entries=max_entries,
        map_flags=flags,
        inner_map_fd=inner_map_fd,
        map_name=sanitize_name(name),
        map_extra=map_extra,
        btf_fd=btf_fd,
        btf_key_type_id=btf_key_type_id,
        btf_value_type_id=btf_value_type_id,
    )
    what = f"create {enum_name(MapType, map_type)} map {name!r} key={key_size} value={value_size} entries={max_entries}"
    # EINVAL is ambiguous (bad geometry or unknown type); only call it a
    # missing feature when the type itself is beyond what we know.
    missing = (_errno.EINVAL,) if int(map_type) > max(MapType) else ()
    fd = bpf_or_raise(Cmd.MAP_CREATE, attr, what, missing)
    return MapFd(fd, name, map_type, key_size, value_size, max_entries, flags)


def _elem_attr(map_: FdLike, key: Optional[bytes], value: Optional[ctypes.Array], flags: int = 0) -> Tuple[MapElemAttr, object]:
    key_buf = ctypes.create_string_buffer(bytes(key), len(key)) if key is not None else None
    attr = MapElemAttr(
        map_fd=fd_of(map_),
        key=ctypes.addressof(key_buf) if key_buf is not None else 0,
        value=ctypes.addressof(value) if value is not None else 0,
        flags=flags,
    )
    return attr, key_buf  # the caller keeps key_buf alive during the call


def map_lookup_elem(map_: FdLike, key: bytes, value_size: int) -> Optional[bytes]:
    """BPF_MAP_LOOKUP_ELEM; None when the key is absent (ENOENT)."""
    value_buf = ctypes.create_string_buffer(value_size)
    attr, _key = _elem_attr(map_, key, value_buf)
    _, err = bpf(Cmd.MAP_LOOKUP_ELEM, attr)
    if err == _errno.ENOENT:
        return None
    if err:
        raise error_from_errno(err, "BPF_MAP_LOOKUP_ELEM", f"map fd {fd_of(map_)}")
    return value_buf.raw


def map_update_elem(map_: FdLike, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    """BPF_MAP_UPDATE_ELEM (flags: BPF_ANY, BPF_NOEXIST, BPF_EXIST)."""
    value_buf = ctypes.create_string_buffer(bytes(value), len(value))
    attr, _key = _elem_attr(map_, key, value_buf, flags)
    bpf_or_raise(Cmd.MAP_UPDATE_ELEM, attr, f"map fd {fd_of(map_)}")


def map_delete_elem(map_: FdLike, key: bytes) -> bool:
    """BPF_MAP_DELETE_ELEM; False when the key was absent."""
    attr, _key = _elem_attr(map_, key, None)
    _, err = bpf(Cmd.MAP_DELETE_ELEM, attr)
    if err == _errno.ENOENT:
        return False
    if err:
        raise error_from_errno(err, "BPF_MAP_DELETE_ELEM", f"map fd {fd_of(map_)}")
    return True


def map_get_next_key(map_: FdLike, key: Optional[bytes], key_size: int) -> Optional[bytes]:
    """BPF_MAP_GET_NEXT_KEY; ``key=None`` gives the first key, None means no more."""
    next_buf = ctypes.create_string_buffer(key_size)
    attr, _key = _elem_attr(map_, key, next_buf)
    _, err = bpf(Cmd.MAP_GET_NEXT_KEY, attr)
    if err == _errno.ENOENT:
        return None
    if err:
        raise error_from_errno(err, "BPF_MAP_GET_NEXT_KEY", f"map fd {fd_of(map_)}")
    return next_buf.raw


def map_freeze(map_: FdLike) -> None:
    """BPF_MAP_FREEZE: user space can no longer write the map (5.2+)."""
    attr, _key = _elem_attr(map_, None, None)
    bpf_or_raise(Cmd.MAP_FREEZE, attr, f"freeze map fd {fd_of(map_)}", (_errno.EINVAL,))


def map_get_fd_by_id(map_id: int) -> MapFd:
    """BPF_MAP_GET_FD_BY_ID: an owned fd to map ``map_id`` (ENOENT if gone)."""
    fd = bpf_or_raise(Cmd.MAP_GET_FD_BY_ID, GetIdAttr(start_id=map_id), f"map id {map_id}")
    try:
        return MapFd.from_fd(fd)
    except BaseException:
        os.close(fd)
        raise


def lift_memlock_limit() -> bool:
    """Raise RLIMIT_MEMLOCK to unlimited; True when it was lower and now is not.

    Kernels before 5.11 charge every BPF map and program to the locked-memory
    limit (64 KiB for a process of 5.10's own init), so creating maps there
    fails with EPERM even for root; later kernels charge memory cgroups and
    ignore the limit. Root may raise it; others get False.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft == resource.RLIM_INFINITY:
        return False
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        return False
    return True
