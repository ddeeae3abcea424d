"""BPF_MAP_TYPE_RINGBUF consumer over mmap.

Memory layout of a ring buffer map fd (kernel/bpf/ringbuf.c):

- offset 0, one page, read-write: ``consumer_pos`` (u64) - ours to advance;
- offset 1 page, read-only: ``producer_pos`` (u64), then the data area of
  ``max_entries`` bytes mapped *twice* back to back, so a record that wraps
  past the end is still contiguous in our mapping.

Each record starts with an 8-byte header: u32 ``len`` whose bit 31 (BUSY)
means "reserved, not yet committed" and bit 30 (DISCARD) means "skip me",
then u32 page offset (kernel-internal). Records occupy
``round_up(len + 8, 8)`` bytes. Positions are free-running u64 counters;
``pos & (size - 1)`` is the offset in the data area.

:class:`RecordWalker` is the record-walking logic as a pure class over any
buffer, so tests can feed it synthetic memory; :class:`RingBuffer` wires it
to the mmapped map and epoll.
"""

from __future__ import annotations

import mmap
import select
import struct
from typing import Callable, Iterator

from .bpf import MapFd, _enum_name, raw_map_info
from .constants import BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT, BPF_RINGBUF_HDR_SZ, MapType
from .fd import FdLike, fd_of

__all__ = ["RecordWalker", "RingBuffer", "RingBufferCorrupt", "record_span"]

_HEADER = struct.Struct("=I")  # native-endian u32 length word
_LEN_MASK = ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT) & 0xFFFFFFFF


class RingBufferCorrupt(ValueError):
    """A record header points outside the ring: the memory is not a BPF ring buffer."""


def record_span(length: int) -> int:
    """Bytes a record of ``length`` payload bytes occupies: header + payload, 8-aligned."""
    return (length + BPF_RINGBUF_HDR_SZ + 7) & ~7


class RecordWalker:
    """Walks the records between two ring positions in a data area.

    ``data`` is the data area: either ``size`` bytes, or ``2 * size`` bytes
    when the same memory is mapped twice (then wrapped records are returned
    zero-copy; otherwise they are copied into a new buffer).
    """

    def __init__(self, data, size: int) -> None:
        if size <= 0 or size & (size - 1) or size % 8:
            raise ValueError(f"ring size {size} is not a power of two multiple of 8")
        self.data = memoryview(data).cast("B")
        if len(self.data) < size:
            raise ValueError(f"data area of {len(self.data)} bytes is smaller than the ring size {size}")
        self.size = size
        self.mask = size - 1
        self.double_mapped = len(self.data) >= 2 * size

    def walk(self, consumer_pos: int, producer_pos: int) -> Iterator[tuple[int, memoryview | None]]:
        """Yield ``(position after the record, payload or None if discarded)``.

        Stops before the first BUSY record (its producer has not committed it
        yet, and everything after it must wait: the consumer position may only
        move past committed records) and at ``producer_pos``.
        """
        data = self.data
        mask = self.mask
        size = self.size
        unpack = _HEADER.unpack_from
        pos = consumer_pos
        while pos < producer_pos:
            offset = pos & mask
            header = unpack(data, offset)[0]
            if header & BPF_RINGBUF_BUSY_BIT:
                return
            length = header & _LEN_MASK
            span = record_span(length)
            if span > size or pos + span > producer_pos:
                raise RingBufferCorrupt(
                    f"record at position {pos} claims {length} bytes; ring size {size}, producer at {producer_pos}"
                )
            pos += span
            if header & BPF_RINGBUF_DISCARD_BIT:
                yield pos, None
                continue
            start = offset + BPF_RINGBUF_HDR_SZ
            end = start + length
            if end <= size or self.double_mapped:
                yield pos, data[start:end]
            else:  # wrapped and only mapped once: stitch the two halves together
                start &= mask
                first = data[start:size] if start else data[0:0]
                rest = length - len(first)
                yield pos, memoryview(bytes(first) + bytes(data[0:rest]))


RecordCallback = Callable[[memoryview], object]


class RingBuffer:
    """Consumer of a BPF_MAP_TYPE_RINGBUF map.

    ``poll(timeout_ms)`` waits with epoll and then consumes; ``consume()``
    takes what is there now; iterating yields the records available now as
    memoryviews. Record views are only valid until the batch ends - the
    consumer position is published then and the kernel may overwrite the
    space; they are released (any later use raises ValueError), so copy
    (``bytes(view)``) what you keep.

    Memory ordering: the consumer position is written after the batch's
    records were read. On x86_64 (TSO) plain loads and stores in program
    order already give the acquire/release pairing the protocol needs;
    CPython has no fence to offer on weakly ordered CPUs.
    """

    def __init__(
        self, map_fd: FdLike | MapFd, callback: RecordCallback | None = None, *, wakeups_only: bool = False
    ) -> None:
        """``wakeups_only``: ``wait()`` returns only when the producer woke the
        ring (or on timeout), not as soon as anything is pending. For a
        consumer that drains everything after each wait and lets producers
        decide when a wakeup is worth it (BPF_RB_NO_WAKEUP/FORCE_WAKEUP):
        without it, a consumer under load spins on one record at a time.
        """
        self.wakeups_only = wakeups_only
        fd = fd_of(map_fd)
        info = raw_map_info(fd)
        if info.type != MapType.RINGBUF:
            name = info.name.decode(errors="replace")
            raise ValueError(f"map {name!r} is a {_enum_name(MapType, info.type)} map, not a ringbuf")
        self.size = info.max_entries
        self.callback = callback
        self._map_fd = map_fd  # keep a MapFd alive while we use it
        page = mmap.PAGESIZE
        self._consumer_map = self._producer_map = self._epoll = None
        try:
            self._consumer_map = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
            self._producer_map = mmap.mmap(fd, page + 2 * self.size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
            self._epoll = select.epoll()
            # Edge-triggered: readiness is reported once per wakeup of the
            # ring's wait queue, not for as long as data is there.
            self._epoll.register(fd, select.EPOLLIN | (select.EPOLLET if wakeups_only else 0))
        except BaseException:
            self._close_resources()
            raise
        self._consumer_pos = memoryview(self._consumer_map)[:8].cast("Q")
        self._producer_pos = memoryview(self._producer_map)[:8].cast("Q")
        self._data = memoryview(self._producer_map)[page:]
        self._walker = RecordWalker(self._data, self.size)

    # --- positions ---------------------------------------------------------

    @property
    def consumer_pos(self) -> int:
        return self._consumer_pos[0]

    @property
    def producer_pos(self) -> int:
        return self._producer_pos[0]

    def pending_bytes(self) -> int:
        """Bytes between consumer and producer (committed or not)."""
        return self._producer_pos[0] - self._consumer_pos[0]

    # --- consuming ---------------------------------------------------------

    def _batch(self) -> Iterator[memoryview]:
        # One pass from the consumer to the producer position read now. The
        # position is published when the pass ends, however it ends (even if
        # the consumer raised: that record counts as consumed, so a record
        # that makes the callback fail cannot wedge the ring).
        consumer = self._consumer_pos[0]
        producer = self._producer_pos[0]
        handed_out: list[memoryview] = []
        try:
            for consumer, record in self._walker.walk(consumer, producer):
                if record is not None:
                    handed_out.append(record)
                    yield record
        finally:
            self._consumer_pos[0] = consumer
            for view in handed_out:
                view.release()

    def consume(self, callback: RecordCallback | None = None, limit: int | None = None) -> int:
        """Hand every committed record to ``callback`` (default: the constructor's); return the count.

        Keeps going while the producer keeps committing, up to ``limit`` records.
        """
        callback = callback or self.callback
        count = 0
        while True:
            progressed = False
            batch = self._batch()
            try:
                for record in batch:
                    progressed = True
                    count += 1
                    if callback is not None:
                        callback(record)
                    if limit is not None and count >= limit:
                        return count
            finally:
                batch.close()
            if not progressed:
                return count

    def __iter__(self) -> Iterator[memoryview]:
        """The records committed so far, as one batch."""
        return self._batch()

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until data is available (with ``wakeups_only``: until the
        producer wakes the ring) or the timeout passes; True when woken by data."""
        if self._epoll is None:
            raise ValueError("RingBuffer is closed")
        if not self.wakeups_only and self.pending_bytes():
            return True
        timeout = -1 if timeout_ms is None or timeout_ms < 0 else timeout_ms / 1000.0
        try:
            return bool(self._epoll.poll(timeout, 1))
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for signal handlers that raise
            return False

    def poll(self, timeout_ms: int = -1, callback: RecordCallback | None = None) -> int:
        """Wait up to ``timeout_ms`` (-1: forever) for records, then consume them; return the count."""
        if not self.wait(timeout_ms):
            return 0
        return self.consume(callback)

    # --- lifetime ------------------------------------------------------------

    def fileno(self) -> int:
        """The epoll fd: readable when the ring has data (for select/selectors loops)."""
        if self._epoll is None:
            raise ValueError("RingBuffer is closed")
        return self._epoll.fileno()

    @property
    def closed(self) -> bool:
        return self._epoll is None

    def _close_resources(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        for name in ("_consumer_pos", "_producer_pos", "_data"):
            view = getattr(self, name, None)
            if view is not None:
                view.release()
        self._walker = None
        for name in ("_consumer_map", "_producer_map"):
            mapping = getattr(self, name, None)
            setattr(self, name, None)
            if mapping is None:
                continue
            try:
                mapping.close()
            except BufferError:
                # Someone still holds a view derived from a record; the
                # mapping (and its dup'ed fd) goes away when that view does.
                pass

    def close(self) -> None:
        """Unmap and stop polling (idempotent). The map fd itself is not closed."""
        self._close_resources()
        self._map_fd = None

    def __enter__(self) -> "RingBuffer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._close_resources()
        except Exception:
            pass

    def __repr__(self) -> str:
        if self.closed:
            return "<RingBuffer closed>"
        return f"<RingBuffer size={self.size} consumer={self.consumer_pos} producer={self.producer_pos}>"

