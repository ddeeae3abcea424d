"""Maps of a loaded object: created from their :class:`~openat.elf.MapSpec`, and global variables read and written through them."""

from __future__ import annotations

import errno
import mmap
import os
from typing import Any, Iterator, Optional, Tuple

from ..elf import ElfError, LIBBPF_PIN_BY_NAME, MapSpec, VariableSpec, decode_value, encode_value
from ..syscalls.errors import BpfError
from ..syscalls.info import map_info
from ..syscalls.maps import MapFd, map_create, possible_cpus
from ..syscalls.pin import obj_get, obj_pin
from ..uapi import MapType

__all__ = ["LoadedMap", "LoadedVariable", "create_map"]


class LoadedMap(MapFd):
    """A map the collection created (a :class:`~openat.syscalls.maps.MapFd`: lookup, update, delete, keys, items).

    ``spec`` is its definition; :meth:`decoded_items` gives keys and values
    decoded by their BTF types when the object has them. ``pinned`` is the
    bpffs path when the map is pinned.
    """

    __slots__ = ("spec", "pinned")

    def __init__(self, fd: int, spec: MapSpec, max_entries: int, pinned: Optional[str] = None) -> None:
        super().__init__(fd, spec.name, spec.type, spec.key_size, spec.value_size, max_entries, spec.flags)
        self.spec = spec
        self.pinned = pinned

    def decode_key(self, key: bytes) -> Any:
        if self.spec.btf is None or not self.spec.key_type_id:
            return key
        return decode_value(self.spec.btf, self.spec.key_type_id, key)

    def decode_value(self, value: bytes) -> Any:
        if self.spec.btf is None or not self.spec.value_type_id or self.spec.kind:
            return value
        return decode_value(self.spec.btf, self.spec.value_type_id, value)

    def decoded_items(self) -> Iterator[Tuple[Any, Any]]:
        """``(key, value)`` decoded by the map's BTF key and value types (bytes where it has none)."""
        for key, value in self.items():
            if self.is_percpu:
                stride = (self.value_size + 7) & ~7
                yield self.decode_key(key), [self.decode_value(value[i : i + self.value_size]) for i in range(0, len(value), stride)]
            else:
                yield self.decode_key(key), self.decode_value(value)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<LoadedMap {self.name!r} {self.spec.type_name} {state}>"


def _ringbuf_size(size: int) -> int:
    """A ringbuf's size as the kernel takes it: a power-of-two multiple of the page size (libbpf rounds up too)."""
    page = mmap.PAGESIZE
    pages = max(1, -(-size // page))
    return page * (1 << (pages - 1).bit_length())


def _geometry(spec: MapSpec) -> Tuple[int, int, int]:
    """(key_size, value_size, max_entries) as they are created: a PERF_EVENT_ARRAY has a slot per CPU by default."""
    key_size, value_size, max_entries = spec.key_size, spec.value_size, spec.max_entries
    if spec.type == MapType.PERF_EVENT_ARRAY:
        key_size, value_size = key_size or 4, value_size or 4
        max_entries = max_entries or possible_cpus()
    elif spec.type == MapType.RINGBUF:
        max_entries = _ringbuf_size(max_entries)
    return key_size, value_size, max_entries


def _create(spec: MapSpec, btf_fd: int, inner_fd: int) -> MapFd:
    key_size, value_size, max_entries = _geometry(spec)
    common = dict(name=spec.kernel_name, flags=spec.flags, inner_map_fd=inner_fd, map_extra=spec.map_extra)
    if btf_fd and spec.btf_types_allowed and (spec.key_type_id or spec.value_type_id):
        try:
            return map_create(spec.type, key_size, value_size, max_entries, btf_fd=btf_fd, btf_key_type_id=spec.key_type_id,
                              btf_value_type_id=spec.value_type_id, **common)
        except BpfError as error:
            if error.errno in (errno.EPERM, errno.EACCES):
                raise
            # As libbpf: a kernel that refuses the BTF types may still create the map without them.
    return map_create(spec.type, key_size, value_size, max_entries, **common)


def _compatible(fd: int, spec: MapSpec) -> Optional[str]:
    """Why the pinned map ``fd`` cannot stand for ``spec`` (None when it can)."""
    info = map_info(fd)
    key_size, value_size, max_entries = _geometry(spec)
    wanted = (int(spec.type), key_size, value_size, max_entries, spec.flags)
    found = (info.type, info.key_size, info.value_size, info.max_entries, info.map_flags)
    if wanted != found:
        return f"pinned as (type, key, value, entries, flags) {found}, the object wants {wanted}"
    return None


def create_map(spec: MapSpec, btf_fd: int, pin_root: str) -> LoadedMap:
    """Create (or, for a pinned map already there, reuse) the map ``spec`` defines; fill and freeze global data."""
    pinned = os.path.join(pin_root, spec.name) if spec.pinning == LIBBPF_PIN_BY_NAME else None
    if pinned and os.path.exists(pinned):
        fd = obj_get(pinned)
        problem = _compatible(fd, spec)
        if problem:
            os.close(fd)
            raise ElfError(f"map {spec.name!r}: {pinned} is {problem}")
        return LoadedMap(fd, spec, _geometry(spec)[2], pinned)
    inner = _create(spec.inner, btf_fd, 0) if spec.inner is not None else None
    try:
        created = _create(spec, btf_fd, inner.fileno() if inner else 0)
    finally:
        if inner is not None:
            inner.close()  # the outer map keeps what it needs of its template
    loaded = LoadedMap(created.detach(), spec, created.max_entries)
    try:
        if spec.kind and (spec.kind != "bss" or any(spec.data)):
            loaded.update(0, bytes(spec.data))
        if spec.kind in ("rodata", "kconfig"):
            loaded.freeze()
        if pinned:
            obj_pin(loaded, pinned)
            loaded.pinned = pinned
    except BaseException:
        loaded.close()
        raise
    return loaded


class LoadedVariable:
    """A global variable of a loaded object, read and written in its map (``.rodata`` only read: it is frozen)."""

    def __init__(self, spec: VariableSpec, map_: LoadedMap) -> None:
        self.spec = spec
        self.map = map_

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def raw(self) -> bytes:
        """Its bytes, as the kernel holds them now."""
        value = self.map.lookup(0)
        if value is None:
            raise ElfError(f"variable {self.name!r}: its map {self.map.name!r} has no element 0")
        return value[self.spec.offset : self.spec.offset + self.spec.size]

    def get(self) -> Any:
        """Its value now, decoded by its BTF type."""
        return decode_value(self.spec.btf, self.spec.type_id, self.raw)

    def set(self, value: Any) -> None:
        """Write ``value`` (encoded by its type) into the map; ElfError for a frozen ``.rodata`` variable."""
        if self.map.spec.kind == "rodata":
            raise ElfError(f"variable {self.name!r} is in {self.spec.section}, frozen once loaded: set it on the spec before load()")
        whole = bytearray(self.map.lookup(0) or bytes(self.map.value_size))
        start, end = self.spec.offset, self.spec.offset + self.spec.size
        whole[start:end] = encode_value(self.spec.btf, self.spec.type_id, value, bytes(whole[start:end]), f"variable {self.name!r}")
        self.map.update(0, bytes(whole))

    def __repr__(self) -> str:
        return f"<LoadedVariable {self.name!r} {self.spec.type} in {self.spec.section}>"
