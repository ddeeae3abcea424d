"""In-memory maps for the machine: array, hash, their per-CPU forms, and the ring buffer.

Each behaves as its kernel map type does for the program (the same helper results, the same
errors as negative errnos) and offers Python the calls :class:`openat.syscalls.maps.MapFd`
offers (``lookup``, ``update``, ``delete``, ``keys``, ``items``), so a test can fill a map,
run the program in the machine and read the map back. Keys and values are bytes; an int key
or value is packed little-endian to its size.
"""

from __future__ import annotations

import errno
from collections import deque
from typing import Callable, Deque, Dict, Iterator, List, Optional, Tuple, Union

from ..uapi import (
    BPF_ANY,
    BPF_EXIST,
    BPF_NOEXIST,
    BPF_RB_AVAIL_DATA,
    BPF_RB_CONS_POS,
    BPF_RB_PROD_POS,
    BPF_RB_RING_SIZE,
    BPF_RINGBUF_HDR_SZ,
    MapType,
)

__all__ = [
    "ArrayMap",
    "HashMap",
    "PerCpuArrayMap",
    "PerCpuHashMap",
    "RingBufMap",
    "VmMap",
    "create_map",
]

Key = Union[bytes, bytearray, int]
Value = Union[bytes, bytearray, int]
Buffer = Union[bytearray, memoryview]

_PAGE_SIZE = 4096


class VmMap:
    """What every map of the machine has: its type and geometry, and the Python-side calls."""

    map_type: MapType = MapType.UNSPEC

    def __init__(self, key_size: int, value_size: int, max_entries: int, *, name: str = "", cpus: int = 1) -> None:
        for what, value in (("key size", key_size), ("value size", value_size), ("max entries", max_entries)):
            if type(value) is not int or value < 0:
                raise ValueError(f"map {name!r}: {what} must be a non-negative int, got {value!r}")
        if type(cpus) is not int or cpus < 1:
            raise ValueError(f"map {name!r}: cpus must be a positive int, got {cpus!r}")
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.name = name
        self.cpus = cpus

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name!r} key {self.key_size} value {self.value_size} "
                f"entries {self.max_entries}>")

    @property
    def is_percpu(self) -> bool:
        return False

    def key(self, key: Key) -> bytes:
        """``key`` as the map's key bytes; ValueError for a wrong size."""
        if isinstance(key, int):
            return key.to_bytes(self.key_size, "little")
        key = bytes(key)
        if len(key) != self.key_size:
            raise ValueError(f"map {self.name!r}: key is {len(key)} bytes, expected {self.key_size}")
        return key

    def _value(self, value: Value) -> bytes:
        if isinstance(value, int):
            value = value.to_bytes(self.value_size, "little")
        value = bytes(value)
        if len(value) != self.value_size:
            raise ValueError(f"map {self.name!r}: value is {len(value)} bytes, expected {self.value_size}")
        return value

    def _raise(self, result: int, key: bytes) -> None:
        if result < 0:
            raise OSError(-result, f"map {self.name!r} key {key.hex()}: {errno.errorcode.get(-result, -result)}")

    # -- the program's side: live buffers, negative errnos

    def value_buffer(self, key: bytes, cpu: int) -> Optional[Buffer]:
        """The live value under ``key`` for ``cpu`` (what map_lookup_elem points to), or None."""
        raise NotImplementedError

    def update_value(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        """map_update_elem from a program: 0 or a negative errno."""
        raise NotImplementedError

    def delete_key(self, key: bytes) -> int:
        """map_delete_elem from a program: 0 or a negative errno."""
        raise NotImplementedError

    def iter_keys(self) -> Iterator[bytes]:
        raise NotImplementedError

    # -- Python's side

    def lookup(self, key: Key) -> Optional[bytes]:
        """A copy of the value under ``key`` (CPU 0's for a per-CPU map), or None."""
        buffer = self.value_buffer(self.key(key), 0)
        return None if buffer is None else bytes(buffer)

    def update(self, key: Key, value: Value, flags: int = BPF_ANY) -> None:
        """Store ``value`` under ``key``; OSError with the kernel's errno when the map refuses."""
        key = self.key(key)
        self._raise(self.update_value(key, self._value(value), flags, 0), key)

    def delete(self, key: Key) -> bool:
        """Delete ``key``; False if it was not there (OSError if this map type cannot delete)."""
        key = self.key(key)
        result = self.delete_key(key)
        if result == -errno.ENOENT:
            return False
        self._raise(result, key)
        return True

    def keys(self) -> Iterator[bytes]:
        """Every key, in the map's order."""
        return iter(list(self.iter_keys()))

    def items(self) -> Iterator[Tuple[bytes, bytes]]:
        """``(key, value)`` for every key."""
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:
                yield key, value


def _check_flags(flags: int) -> int:
    return 0 if flags in (BPF_ANY, BPF_NOEXIST, BPF_EXIST) else -errno.EINVAL


class ArrayMap(VmMap):
    """BPF_MAP_TYPE_ARRAY: ``max_entries`` zeroed values under u32 keys 0..max_entries-1."""

    map_type = MapType.ARRAY

    def __init__(self, value_size: int, max_entries: int, *, name: str = "", cpus: int = 1) -> None:
        super().__init__(4, value_size, max_entries, name=name, cpus=cpus)
        copies = cpus if self.is_percpu else 1
        self._storage = [bytearray(value_size * max_entries) for _ in range(copies)]

    def _index(self, key: bytes) -> int:
        return int.from_bytes(key[:4], "little")

    def value_buffer(self, key: bytes, cpu: int) -> Optional[Buffer]:
        index = self._index(key)
        if index >= self.max_entries:
            return None
        size = self.value_size
        return memoryview(self._storage[cpu % len(self._storage)])[index * size : (index + 1) * size]

    def update_value(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        if _check_flags(flags):
            return -errno.EINVAL
        index = self._index(key)
        if index >= self.max_entries:
            return -errno.E2BIG
        if flags == BPF_NOEXIST:
            return -errno.EEXIST  # every element of an array exists
        self.value_buffer(key, cpu)[:] = value  # type: ignore[index]
        return 0

    def delete_key(self, key: bytes) -> int:
        return -errno.EINVAL  # array elements cannot be deleted

    def iter_keys(self) -> Iterator[bytes]:
        return (index.to_bytes(4, "little") for index in range(self.max_entries))


class HashMap(VmMap):
    """BPF_MAP_TYPE_HASH: up to ``max_entries`` keys, in insertion order."""

    map_type = MapType.HASH

    def __init__(self, key_size: int, value_size: int, max_entries: int, *, name: str = "", cpus: int = 1) -> None:
        super().__init__(key_size, value_size, max_entries, name=name, cpus=cpus)
        self._entries: Dict[bytes, List[bytearray]] = {}

    def value_buffer(self, key: bytes, cpu: int) -> Optional[Buffer]:
        values = self._entries.get(bytes(key))
        return None if values is None else values[cpu % len(values)]

    def update_value(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        if _check_flags(flags):
            return -errno.EINVAL
        key = bytes(key)
        values = self._entries.get(key)
        if values is None:
            if flags == BPF_EXIST:
                return -errno.ENOENT
            if len(self._entries) >= self.max_entries:
                return -errno.E2BIG
            copies = self.cpus if self.is_percpu else 1
            values = self._entries[key] = [bytearray(self.value_size) for _ in range(copies)]
        elif flags == BPF_NOEXIST:
            return -errno.EEXIST
        values[cpu % len(values)][:] = value
        return 0

    def delete_key(self, key: bytes) -> int:
        return 0 if self._entries.pop(bytes(key), None) is not None else -errno.ENOENT

    def iter_keys(self) -> Iterator[bytes]:
        return iter(self._entries)


class _PerCpu:
    """What the per-CPU maps add: one value per CPU, and the MapFd-style calls that see all of them."""

    cpus: int
    value_size: int
    name: str

    @property
    def is_percpu(self) -> bool:
        return True

    def lookup_percpu(self, key: Key) -> Optional[List[bytes]]:
        """One value per CPU under ``key``, or None."""
        key = self.key(key)  # type: ignore[attr-defined]
        if self.value_buffer(key, 0) is None:  # type: ignore[attr-defined]
            return None
        return [bytes(self.value_buffer(key, cpu)) for cpu in range(self.cpus)]  # type: ignore[attr-defined]

    def update(self, key: Key, value: Value, flags: int = BPF_ANY) -> None:
        """Store ``value`` under ``key`` on every CPU: one value, or ``cpus`` of them back to back."""
        key = self.key(key)  # type: ignore[attr-defined]
        if isinstance(value, int):
            value = value.to_bytes(self.value_size, "little")
        value = bytes(value)
        if len(value) == self.value_size:
            value *= self.cpus
        if len(value) != self.value_size * self.cpus:
            raise ValueError(f"map {self.name!r}: value is {len(value)} bytes, expected {self.value_size} "
                             f"(or {self.cpus} x {self.value_size})")
        for cpu in range(self.cpus):
            part = value[cpu * self.value_size : (cpu + 1) * self.value_size]
            self._raise(self.update_value(key, part, flags if cpu == 0 else BPF_ANY, cpu), key)  # type: ignore[attr-defined]


class PerCpuArrayMap(_PerCpu, ArrayMap):
    """BPF_MAP_TYPE_PERCPU_ARRAY: an array with one copy of each value per CPU (``cpus``)."""

    map_type = MapType.PERCPU_ARRAY


class PerCpuHashMap(_PerCpu, HashMap):
    """BPF_MAP_TYPE_PERCPU_HASH: a hash with one copy of each value per CPU (``cpus``).

    An element a program inserts holds its value on the current CPU and zeros on the others.
    """

    map_type = MapType.PERCPU_HASH


class _Record:
    __slots__ = ("span", "data", "state")

    def __init__(self, span: int) -> None:
        self.span = span  # bytes of the ring: 8-byte header + payload, rounded up to 8
        self.data = b""
        self.state = "busy"  # busy (reserved), ready (submitted) or discarded


class RingBufMap(VmMap):
    """BPF_MAP_TYPE_RINGBUF of ``size`` bytes (a power of two, a multiple of 4096).

    With ``on_record`` each record is handed to it (as bytes) the moment the program submits
    it and the ring has room again at once, as for a consumer that never falls behind.
    Without one, records stay in the ring, fill it as they would in the kernel (reserve
    fails, output returns -EAGAIN), and :meth:`take` consumes them.
    """

    map_type = MapType.RINGBUF

    def __init__(self, size: int, *, name: str = "", on_record: Optional[Callable[[bytes], object]] = None) -> None:
        if type(size) is not int or size < _PAGE_SIZE or size & (size - 1):
            raise ValueError(f"ring buffer {name!r}: size must be a power of two of at least {_PAGE_SIZE}, got {size!r}")
        super().__init__(0, 0, size, name=name)
        self.on_record = on_record
        self.producer_position = 0
        self.consumer_position = 0
        self._records: Deque[_Record] = deque()

    def reserve(self, size: int) -> Optional[_Record]:
        """Room for a record of ``size`` bytes, or None when the ring is full."""
        span = (size + BPF_RINGBUF_HDR_SZ + 7) & ~7
        if span > self.max_entries or self.producer_position + span - self.consumer_position > self.max_entries:
            return None
        record = _Record(span)
        self._records.append(record)
        self.producer_position += span
        return record

    def commit(self, record: _Record, data: Optional[bytes]) -> None:
        """Submit ``record`` with ``data``, or discard it (None); then deliver what is ready."""
        if data is None:
            record.state = "discarded"
        else:
            record.data, record.state = bytes(data), "ready"
        if self.on_record is not None:
            for payload in self.take():
                self.on_record(payload)

    def output(self, data: bytes) -> int:
        """ringbuf_output: 0, or -EAGAIN when the ring has no room."""
        record = self.reserve(len(data))
        if record is None:
            return -errno.EAGAIN
        self.commit(record, data)
        return 0

    def query(self, flags: int) -> int:
        """ringbuf_query: available data, ring size, consumer or producer position."""
        return {
            BPF_RB_AVAIL_DATA: self.producer_position - self.consumer_position,
            BPF_RB_RING_SIZE: self.max_entries,
            BPF_RB_CONS_POS: self.consumer_position,
            BPF_RB_PROD_POS: self.producer_position,
        }.get(flags, 0)

    def take(self) -> List[bytes]:
        """Consume every record up to the first one still reserved; the submitted ones, in order."""
        taken = []
        while self._records and self._records[0].state != "busy":
            record = self._records.popleft()
            self.consumer_position += record.span
            if record.state == "ready":
                taken.append(record.data)
        return taken

    def value_buffer(self, key: bytes, cpu: int) -> Optional[Buffer]:
        return None

    def update_value(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        return -errno.EINVAL

    def delete_key(self, key: bytes) -> int:
        return -errno.EINVAL

    def iter_keys(self) -> Iterator[bytes]:
        return iter(())


_BY_TYPE = {
    MapType.ARRAY: ArrayMap,
    MapType.PERCPU_ARRAY: PerCpuArrayMap,
    MapType.HASH: HashMap,
    MapType.PERCPU_HASH: PerCpuHashMap,
}


def create_map(map_type: int, key_size: int, value_size: int, max_entries: int, *, name: str = "",
               cpus: int = 1) -> VmMap:
    """The machine's map for ``map_type`` with this geometry, as ``map_create`` would make it
    in the kernel; ValueError for a type or geometry the machine does not model."""
    if map_type == MapType.RINGBUF:
        return RingBufMap(max_entries, name=name)
    cls = _BY_TYPE.get(map_type)  # type: ignore[call-overload]
    if cls is None:
        known = ", ".join(t.name for t in (*_BY_TYPE, MapType.RINGBUF))
        raise ValueError(f"map {name!r}: type {map_type} is not modelled by openat.vm (it has {known})")
    if cls in (ArrayMap, PerCpuArrayMap):
        if key_size != 4:
            raise ValueError(f"map {name!r}: an array's key is 4 bytes, got {key_size}")
        return cls(value_size, max_entries, name=name, cpus=cpus)
    return cls(key_size, value_size, max_entries, name=name, cpus=cpus)
