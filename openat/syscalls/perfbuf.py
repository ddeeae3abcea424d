"""The perf buffer: samples that BPF programs emit with ``bpf_perf_event_output()``.

A BPF_MAP_TYPE_PERF_EVENT_ARRAY map holds, per CPU, a perf event fd; a
program's ``bpf_perf_event_output(ctx, &map, BPF_F_CURRENT_CPU, data, size)``
appends a sample to the ring of the event in its CPU's slot. This is how
most libbpf-tools objects emit events, and the only way on kernels before
5.8, which have no ring buffer map. :class:`PerfBuffer` does what libbpf's
``perf_buffer__new`` does:

- for each online CPU (up to the map's ``max_entries``), a
  ``PERF_COUNT_SW_BPF_OUTPUT`` software event, opened on that CPU with
  ``PERF_SAMPLE_RAW``, its fd stored in the map's slot for that CPU;
- its ring mmapped: one control page (``struct perf_event_mmap_page``:
  ``data_head`` written by the kernel, ``data_tail`` by us) and a power of
  two of data pages, which the kernel never overwrites before we advance
  ``data_tail`` (a full ring drops samples and counts them);
- one epoll over all the events; :meth:`PerfBuffer.poll` waits, then walks
  each ready ring.

The data area holds ``struct perf_event_header`` records (u32 type, u16
misc, u16 size, then ``size - 8`` bytes): ``PERF_RECORD_SAMPLE`` carries a
u32 length and the raw data (padded by the kernel so the record is 8-byte
aligned: the length includes the padding, as libbpf reports it too);
``PERF_RECORD_LOST`` carries (u64 id, u64 lost), the number of samples
dropped since the last one that fitted, written once there is room again.
Records are not aligned to the ring's end: one that wraps is stitched into
a copy.

:class:`PerfRecordWalker` is the record walk as a pure class over any
buffer, so tests can feed it synthetic memory; :class:`PerfBuffer` wires it
to the kernel.
"""

from __future__ import annotations

import errno as _errno
import functools
import mmap
import select
import struct
from typing import Callable, Dict, List, Optional, Sequence

from ..uapi import (
    PERF_COUNT_SW_BPF_OUTPUT,
    PERF_MMAP_DATA_HEAD_OFFSET,
    PERF_RECORD_LOST,
    PERF_RECORD_SAMPLE,
    PERF_SAMPLE_RAW,
    PERF_TYPE_SOFTWARE,
    MapType,
    enum_name,
)
from .errors import BpfError
from .fd import FdLike, fd_of
from .info import raw_map_info
from .maps import MapFd, map_delete_elem, map_update_elem
from .perf import PerfEventAttr, PerfEventFd, perf_event_open

__all__ = ["PerfBuffer", "PerfBufferCorrupt", "PerfRecordWalker", "online_cpus"]

_HEADER = struct.Struct("=IHH")  # struct perf_event_header: type, misc, size
_RAW_SIZE = struct.Struct("=I")
_LOST = struct.Struct("=QQ")  # id, lost
_HEADER_SIZE = _HEADER.size
# struct perf_event_attr's bitfield word: ``watermark`` makes wakeup_events a byte count.
_ATTR_WATERMARK = 1 << 14

SampleCallback = Callable[[int, memoryview], object]  # (cpu, raw data)
LostCallback = Callable[[int, int], object]  # (cpu, samples lost)
WalkerSample = Callable[[memoryview], object]
WalkerLost = Callable[[int], object]


class PerfBufferCorrupt(ValueError):
    """A record header points outside the unread part of the ring: not a perf ring."""


def _parse_cpu_list(text: str) -> List[int]:
    """``"0-3,5"`` (the format of /sys/devices/system/cpu/online) -> [0, 1, 2, 3, 5]."""
    cpus: List[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.extend(range(int(low), int(high or low) + 1))
    return cpus


@functools.lru_cache(maxsize=None)
def online_cpus() -> tuple[int, ...]:
    """The CPUs online now (/sys/devices/system/cpu/online): where a perf event can be opened."""
    with open("/sys/devices/system/cpu/online") as f:
        return tuple(_parse_cpu_list(f.read()))


def _ignore_sample(record: memoryview) -> None:
    """The sample callback of a walk without one: samples are only counted."""


def _sample_data(record: memoryview) -> memoryview:
    """The raw data of a PERF_RECORD_SAMPLE record (``PERF_SAMPLE_RAW``: a u32 length, then the data)."""
    if len(record) < _HEADER_SIZE + _RAW_SIZE.size:
        raise PerfBufferCorrupt(f"sample record of {len(record)} bytes has no room for its length")
    (raw_size,) = _RAW_SIZE.unpack_from(record, _HEADER_SIZE)
    start = _HEADER_SIZE + _RAW_SIZE.size
    if start + raw_size > len(record):
        raise PerfBufferCorrupt(f"sample of {raw_size} bytes does not fit its {len(record)}-byte record")
    return record[start : start + raw_size]


class PerfRecordWalker:
    """Walks the perf records between two positions of a ring's data area.

    ``data`` is the data area, ``size`` bytes (a power of two); positions
    are free-running u64 counters, ``position & (size - 1)`` the offset.
    """

    def __init__(self, data, size: int) -> None:
        if size <= 0 or size & (size - 1) or size % 8:
            raise ValueError(f"perf ring size {size} is not a power of two multiple of 8")
        self.data = memoryview(data).cast("B")
        if len(self.data) < size:
            raise ValueError(f"data area of {len(self.data)} bytes is smaller than the ring size {size}")
        self.size = size
        self.mask = size - 1

    def _record(self, offset: int, length: int) -> memoryview:
        """The record at ring offset ``offset``: a view, or a copy when it wraps past the end."""
        data = self.data
        end = offset + length
        if end <= self.size:
            return data[offset:end]
        first = self.size - offset
        return memoryview(bytes(data[offset:]) + bytes(data[: length - first]))

    def _header(self, offset: int) -> tuple[int, int]:
        """(type, size) of the header at ring offset ``offset`` (which may wrap)."""
        if offset + _HEADER_SIZE <= self.size:
            record_type, _, length = _HEADER.unpack_from(self.data, offset)
        else:
            with self._record(offset, _HEADER_SIZE) as header:
                record_type, _, length = _HEADER.unpack_from(header)
        return record_type, length

    def drain(
        self,
        tail: int,
        head: int,
        on_sample: Optional[WalkerSample] = None,
        on_lost: Optional[WalkerLost] = None,
        publish: Optional[Callable[[int], object]] = None,
    ) -> tuple[int, int, int]:
        """Hand each record from ``tail`` to ``head`` over; return ``(new tail, samples, lost)``.

        ``on_sample(data)`` gets each sample's raw data as a memoryview,
        released when it returns (copy what you keep); ``on_lost(count)``
        each lost record's count. Other record types are skipped.
        ``publish(position)`` is called when the walk ends, however it ends
        (a callback that raised: its record counts as read), with the
        position after the last record walked. A record whose length runs
        outside [tail, head] raises :class:`PerfBufferCorrupt`.
        """
        if head - tail > self.size or head < tail:
            raise PerfBufferCorrupt(f"head {head} and tail {tail} are not within one ring of {self.size} bytes")
        on_sample = on_sample or _ignore_sample
        samples = lost = 0
        position = tail
        try:
            while position < head:
                offset = position & self.mask
                if head - position < _HEADER_SIZE:
                    raise PerfBufferCorrupt(f"{head - position} bytes at position {position} are too few for a record header")
                record_type, length = self._header(offset)
                if length < _HEADER_SIZE or position + length > head:
                    raise PerfBufferCorrupt(f"record of {length} bytes at position {position} runs past the head at {head}")
                next_position = position + length
                if record_type == PERF_RECORD_SAMPLE:
                    samples += 1
                    with self._record(offset, length) as record, _sample_data(record) as data:
                        position = next_position  # a callback that raises has still had its record
                        on_sample(data)
                elif record_type == PERF_RECORD_LOST:
                    count = self._lost_count(offset, length)
                    lost += count
                    position = next_position
                    if on_lost is not None:
                        on_lost(count)
                else:
                    position = next_position
        finally:
            if publish is not None:
                publish(position)
        return position, samples, lost

    def _lost_count(self, offset: int, length: int) -> int:
        if length < _HEADER_SIZE + _LOST.size:
            raise PerfBufferCorrupt(f"lost record of {length} bytes has no room for its count")
        with self._record(offset, length) as record:
            _, count = _LOST.unpack_from(record, _HEADER_SIZE)
        return count


class _CpuRing:
    """One CPU's perf event, its mapping and the walker over its data area."""

    def __init__(self, cpu: int, event: PerfEventFd, pages: int) -> None:
        self.cpu = cpu
        self.event = event
        page = mmap.PAGESIZE
        self.mapping = mmap.mmap(event.fileno(), page * (1 + pages), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        control = memoryview(self.mapping)[PERF_MMAP_DATA_HEAD_OFFSET : PERF_MMAP_DATA_HEAD_OFFSET + 32].cast("Q")
        self.control = control  # data_head, data_tail, data_offset, data_size
        offset, size = control[2] or page, control[3] or page * pages  # 0 before Linux 4.1: the old layout
        self.data = memoryview(self.mapping)[offset : offset + size]
        self.walker = PerfRecordWalker(self.data, size)

    def pending_bytes(self) -> int:
        return self.control[0] - self.control[1]

    def _publish(self, position: int) -> None:
        self.control[1] = position

    def drain(self, on_sample: SampleCallback, on_lost: LostCallback) -> tuple[int, int]:
        """Every record there now: (samples, lost)."""
        cpu = self.cpu
        _, samples, lost = self.walker.drain(
            self.control[1], self.control[0], lambda data: on_sample(cpu, data), lambda count: on_lost(cpu, count), self._publish
        )
        return samples, lost

    def close(self) -> None:
        for view in (self.control, self.data):
            view.release()
        try:
            self.mapping.close()
        except BufferError:  # a sample view is still held: the mapping goes with it
            pass
        self.event.close()


def _ignore_cpu_sample(cpu: int, data: memoryview) -> None:
    """The callback of a PerfBuffer without one: samples are only counted."""


class PerfBuffer:
    """Consumer of a BPF_MAP_TYPE_PERF_EVENT_ARRAY map: one mmapped ring per online CPU.

    ``callback(cpu, data)`` gets each sample's raw data (a memoryview valid
    only during the call, padded to 8-byte alignment by the kernel);
    ``lost_callback(cpu, count)`` each report of dropped samples. ``lost``
    is the running total of samples the kernel reported dropped (a ring
    reports its losses at its next sample that fits). ``pages`` data pages
    per CPU (a power of two). ``wakeup_events``: wake the reader every that
    many samples; ``wakeup_bytes``: instead, once that many bytes are
    pending (fewer wakeups under load).

    ``close()`` removes exactly what was added: the map's slots, the
    mappings, the events and the epoll; the map fd itself stays open.
    """

    def __init__(
        self,
        map_fd: FdLike | MapFd,
        callback: Optional[SampleCallback] = None,
        *,
        lost_callback: Optional[LostCallback] = None,
        pages: int = 8,
        wakeup_events: int = 1,
        wakeup_bytes: Optional[int] = None,
        cpus: Optional[Sequence[int]] = None,
    ) -> None:
        if pages <= 0 or pages & (pages - 1):
            raise ValueError(f"perf buffer pages={pages} is not a power of two")
        fd = fd_of(map_fd)
        info = raw_map_info(fd)
        if info.type != MapType.PERF_EVENT_ARRAY:
            name = info.name.decode(errors="replace")
            raise ValueError(f"map {name!r} is a {enum_name(MapType, info.type)} map, not a perf_event_array")
        self.callback = callback
        self.lost_callback = lost_callback
        self.lost = 0
        self._map_fd = map_fd  # keep a MapFd alive while its slots point at our events
        self._rings: Dict[int, _CpuRing] = {}
        self._slots: List[int] = []
        self._epoll: Optional[select.epoll] = select.epoll()
        try:
            chosen = [cpu for cpu in (online_cpus() if cpus is None else cpus) if cpu < info.max_entries]
            if not chosen:
                raise ValueError(f"perf_event_array of {info.max_entries} slots has no slot for the CPUs {list(cpus or online_cpus())}")
            for cpu in chosen:
                self._open_ring(fd, cpu, pages, wakeup_events, wakeup_bytes)
        except BaseException:
            self._close_resources()
            raise
        self.cpus = tuple(ring.cpu for ring in self._rings.values())

    def _open_ring(self, map_fd: int, cpu: int, pages: int, wakeup_events: int, wakeup_bytes: Optional[int]) -> None:
        attr = PerfEventAttr(type=PERF_TYPE_SOFTWARE, config=PERF_COUNT_SW_BPF_OUTPUT, sample_period=1, sample_type=PERF_SAMPLE_RAW)
        if wakeup_bytes is not None:
            attr.flags |= _ATTR_WATERMARK
            attr.wakeup_events = wakeup_bytes
        else:
            attr.wakeup_events = wakeup_events
        event = perf_event_open(attr, pid=-1, cpu=cpu, description=f"bpf output event on cpu {cpu}", missing_feature=(_errno.ENOENT,))
        try:
            ring = _CpuRing(cpu, event, pages)
        except BaseException:
            event.close()
            raise
        self._rings[ring.event.fileno()] = ring
        key = cpu.to_bytes(4, "little")
        map_update_elem(map_fd, key, event.fileno().to_bytes(4, "little"))
        self._slots.append(cpu)
        event.enable()
        assert self._epoll is not None
        self._epoll.register(event.fileno(), select.EPOLLIN)

    # --- consuming ---------------------------------------------------------------

    def _handlers(self, callback: Optional[SampleCallback]) -> tuple[SampleCallback, LostCallback]:
        if self._epoll is None:
            raise ValueError("PerfBuffer is closed")

        def on_lost(cpu: int, count: int) -> None:
            self.lost += count
            if self.lost_callback is not None:
                self.lost_callback(cpu, count)

        return callback or self.callback or _ignore_cpu_sample, on_lost

    def consume(self, callback: Optional[SampleCallback] = None) -> int:
        """Walk every CPU's ring now; the number of samples handed to ``callback`` (default: the constructor's)."""
        on_sample, on_lost = self._handlers(callback)
        return sum(ring.drain(on_sample, on_lost)[0] for ring in list(self._rings.values()))

    def poll(self, timeout_ms: int = -1, callback: Optional[SampleCallback] = None) -> int:
        """Wait up to ``timeout_ms`` (-1: forever) for a ring to wake us, then walk the ready rings; the sample count."""
        on_sample, on_lost = self._handlers(callback)
        assert self._epoll is not None
        timeout = -1 if timeout_ms is None or timeout_ms < 0 else timeout_ms / 1000.0
        ready = self._epoll.poll(timeout)
        return sum(self._rings[fd].drain(on_sample, on_lost)[0] for fd, _ in ready if fd in self._rings)

    def pending_bytes(self) -> int:
        """Unread bytes over all rings."""
        return sum(ring.pending_bytes() for ring in self._rings.values())

    # --- lifetime ----------------------------------------------------------------

    def fileno(self) -> int:
        """The epoll fd: readable when a ring woke us (for select/selectors loops)."""
        if self._epoll is None:
            raise ValueError("PerfBuffer is closed")
        return self._epoll.fileno()

    @property
    def closed(self) -> bool:
        return self._epoll is None

    def _close_resources(self) -> None:
        failure: Optional[BaseException] = None
        map_fd = self._map_fd
        while self._slots:
            cpu = self._slots.pop()
            try:
                map_delete_elem(map_fd, cpu.to_bytes(4, "little"))
            except ValueError:  # the MapFd was closed first: its slots went with it
                pass
            except BpfError as error:
                if error.errno != _errno.EBADF:  # a raw fd closed first, likewise
                    failure = failure or error
        while self._rings:
            _, ring = self._rings.popitem()
            ring.close()
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        if failure is not None:
            raise failure

    def close(self) -> None:
        """Empty the map's slots, unmap, close the events and the epoll (idempotent)."""
        try:
            self._close_resources()
        finally:
            self._map_fd = None

    def __enter__(self) -> "PerfBuffer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._close_resources()
        except Exception:
            pass

    def __repr__(self) -> str:
        if self.closed:
            return "<PerfBuffer closed>"
        return f"<PerfBuffer cpus={list(self.cpus)} lost={self.lost}>"

