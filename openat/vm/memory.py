"""The machine's address space: tagged regions at distinct fake base addresses.

A pointer is an ordinary 64-bit number, so a program may add to it, subtract, compare and
store it like the kernel's code does. Each region (a frame's stack, the context, the
packet, a map value, a ring-buffer reservation, memory the caller maps) owns one 4 GiB
*window* of the address space: its base is ``window << 32`` and an address's window is
``address >> 32``. Finding the region of an access is one dict lookup, its offset is the
low 32 bits, and anything outside every region (NULL, a pointer walked off its region's
start into the empty window below, or past the end of its buffer) faults.

Fixed windows make the addresses a learner sees in a trace stable from run to run:

=========  ======================  =========================================
window     base address            what
=========  ======================  =========================================
0x1        0x100000000             the context (``run(ctx=...)``)
0x2        0x200000000             the packet (``run(mem=...)``)
0x3        0x300000000             map handles (what ``ld_map_fd`` loads; not memory)
0x4        0x400000000             code: ``ld_func`` addresses, slot * 8
0x10-0x1e  0x1000000000...         the stack of call frame k at window 0x10 + 2k (r10 = base + 512)
0x100-     0x10000000000...        map values, reservations, caller regions
=========  ======================  =========================================

User-space regions (``add(..., user=True)``) hold what a probe reads with
``probe_read_user``: a direct load from them faults, as the verifier would refuse it.
"""

from __future__ import annotations

from typing import Dict, Optional, Union

from .errors import VmError

__all__ = [
    "CODE_BASE",
    "CTX_BASE",
    "MAP_HANDLE_BASE",
    "Memory",
    "MemoryFault",
    "PACKET_BASE",
    "Region",
    "STACK_BASE",
    "STACK_SIZE",
]

WINDOW_SHIFT = 32
OFFSET_MASK = (1 << WINDOW_SHIFT) - 1

CTX_WINDOW = 0x1
PACKET_WINDOW = 0x2
MAP_HANDLE_WINDOW = 0x3
CODE_WINDOW = 0x4
STACK_WINDOW = 0x10  # + 2 * frame number
MAX_FRAMES = 8  # as Linux's MAX_CALL_FRAMES
FIRST_DYNAMIC_WINDOW = 0x100

CTX_BASE = CTX_WINDOW << WINDOW_SHIFT
PACKET_BASE = PACKET_WINDOW << WINDOW_SHIFT
MAP_HANDLE_BASE = MAP_HANDLE_WINDOW << WINDOW_SHIFT
CODE_BASE = CODE_WINDOW << WINDOW_SHIFT
STACK_BASE = STACK_WINDOW << WINDOW_SHIFT
#: Bytes of stack per call frame, as in Linux (MAX_BPF_STACK) and RFC 9669.
STACK_SIZE = 512

Buffer = Union[bytearray, memoryview]


class MemoryFault(Exception):
    """An access a helper made outside readable (or writable) memory; the message says where."""


class Region:
    """One block of the address space.

    ``data`` is the live buffer (a ``bytearray`` or a writable ``memoryview`` into a map's
    storage); ``user`` marks user-space memory; ``strict_alignment`` makes every access to it
    need natural alignment (the stack's rule in the kernel verifier).
    """

    __slots__ = ("name", "window", "base", "data", "writable", "user", "strict_alignment", "per_run")

    def __init__(self, name: str, window: int, data: Buffer, writable: bool, user: bool,
                 strict_alignment: bool, per_run: bool) -> None:
        self.name = name
        self.window = window
        self.base = window << WINDOW_SHIFT
        self.data = data
        self.writable = writable
        self.user = user
        self.strict_alignment = strict_alignment
        self.per_run = per_run

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def end(self) -> int:
        """The first address past the region."""
        return self.base + len(self.data)

    def describe(self, address: int) -> str:
        """``address`` relative to this region: ``ctx+0x8``; stacks count down from r10: ``fp-0x4``."""
        if STACK_WINDOW <= self.window < STACK_WINDOW + 2 * MAX_FRAMES:
            below = self.end - address
            return f"{self.name}-{below:#x}" if below else self.name
        return f"{self.name}+{address - self.base:#x}"

    def __repr__(self) -> str:
        kind = "user" if self.user else ("rw" if self.writable else "ro")
        return f"<Region {self.name!r} {self.base:#x}+{self.size} {kind}>"


class Memory:
    """The regions, and the two lookup tables the instructions use.

    ``loads`` and ``stores`` map a window to its buffer for direct loads and stores: the
    interpreter's fast path. Everything else (helpers, error messages) goes through the
    methods here.
    """

    def __init__(self) -> None:
        self.regions: Dict[int, Region] = {}
        self.loads: Dict[int, Buffer] = {}
        self.stores: Dict[int, Buffer] = {}
        self._next_window = FIRST_DYNAMIC_WINDOW

    def add(
        self, name: str, data: Union[bytes, bytearray, memoryview], *, writable: bool = True,
        user: bool = False, strict_alignment: bool = False, window: Optional[int] = None, per_run: bool = False,
    ) -> Region:
        """Map ``data`` in a window of its own and return its :class:`Region` (``.base`` is its address).

        ``bytes`` are copied into a new ``bytearray``; a ``bytearray`` or ``memoryview`` is
        used in place, so the caller sees what the program stores. ``per_run`` regions are
        dropped when the next run starts (the machine's own: map values, reservations).
        """
        if isinstance(data, bytes):
            data = bytearray(data)
        elif not isinstance(data, (bytearray, memoryview)):
            raise TypeError(f"region {name!r}: expected bytes, bytearray or memoryview, got {type(data).__name__}")
        if len(data) > OFFSET_MASK:
            raise VmError(f"region {name!r} of {len(data)} bytes does not fit in a 4 GiB window")
        if window is None:
            window = self._next_window
            self._next_window += 2  # an empty window between regions: walking off one faults
        elif window in self.regions:
            self.remove(self.regions[window])
        region = Region(name, window, data, writable, user, strict_alignment, per_run)
        self.regions[window] = region
        if not user:
            self.loads[window] = data
            if writable:
                self.stores[window] = data
        return region

    def remove(self, region: Region) -> None:
        """Unmap ``region``: later accesses to it fault."""
        if self.regions.get(region.window) is region:
            del self.regions[region.window]
            self.loads.pop(region.window, None)
            self.stores.pop(region.window, None)

    def clear_per_run(self) -> None:
        for region in [r for r in self.regions.values() if r.per_run]:
            self.remove(region)

    def region_at(self, address: int) -> Optional[Region]:
        """The region holding ``address``, or None."""
        region = self.regions.get(address >> WINDOW_SHIFT) if address >= 0 else None
        if region is not None and region.base <= address < region.end:
            return region
        return None

    def where(self, address: int) -> str:
        """The region ``address`` points into and its offset (``ctx+0x8``), or "" for none."""
        region = self.region_at(address)
        if region is None:
            below = self.regions.get(address >> WINDOW_SHIFT)
            if below is not None and address == below.end:
                region = below  # one past the end: what loop bounds and data_end look like
        return region.describe(address) if region is not None else ""

    def describe(self, address: int) -> str:
        """``address`` in hex, with the region it points into when there is one."""
        address &= (1 << 64) - 1
        where = self.where(address)
        return f"{address:#x} ({where})" if where else f"{address:#x}"

    def find_access(self, address: int, size: int, *, user: bool = False, write: bool = False) -> tuple[Region, int]:
        """The region and offset of an access of ``size`` bytes at ``address``; MemoryFault if it cannot be made."""
        region = self.region_at(address)
        if region is None or address + size > region.end:
            raise MemoryFault(self.why_not(address, size))
        if region.user is not user:
            space = "user" if region.user else "kernel"
            raise MemoryFault(f"{self.describe(address)} is {space} memory")
        if write and not region.writable:
            raise MemoryFault(f"{self.describe(address)} is read-only")
        return region, address - region.base

    def read(self, address: int, size: int, *, user: bool = False) -> bytes:
        """``size`` bytes at ``address`` (user memory only with ``user``); MemoryFault if unreadable."""
        region, offset = self.find_access(address, size, user=user)
        return bytes(region.data[offset : offset + size])

    def write(self, address: int, data: bytes, *, user: bool = False) -> None:
        """Store ``data`` at ``address``; MemoryFault unless it is writable memory."""
        region, offset = self.find_access(address, len(data), user=user, write=True)
        region.data[offset : offset + len(data)] = data

    def read_string(self, address: int, limit: int, *, user: bool = False) -> bytes:
        """The bytes at ``address`` up to a NUL (excluded) or ``limit`` bytes; MemoryFault if the
        region ends first."""
        region, offset = self.find_access(address, 1, user=user)
        chunk = bytes(region.data[offset : offset + limit])
        end = chunk.find(b"\0")
        if end >= 0:
            return chunk[:end]
        if len(chunk) < limit:
            raise MemoryFault(f"string at {self.describe(address)} runs off the end of {region.name}")
        return chunk

    def why_not(self, address: int, size: int) -> str:
        """Why an access of ``size`` bytes at ``address`` faults (for error messages)."""
        address &= (1 << 64) - 1
        what = f"{size}-byte access at {address:#x}"
        if address < 0x10000:
            return f"{what}: a NULL pointer (did a map lookup return NULL?)"
        window = address >> WINDOW_SHIFT
        region = self.regions.get(window)
        if region is None:
            above = self.regions.get(window + 1)
            if above is not None:
                return f"{what} is {above.base - address} bytes before the start of {above.name} ({above.size} bytes at {above.base:#x})"
            if window == MAP_HANDLE_WINDOW:
                return f"{what} is a map handle, not memory: pass it to map helpers"
            return f"{what} is in no region of the machine"
        if address < region.base + region.size:
            return f"{what} ({region.describe(address)}) runs past the end of {region.name} ({region.size} bytes)"
        past = address - region.end
        distance = "starts right at the end" if past == 0 else f"is {past} bytes past the end"
        return f"{what} {distance} of {region.name} ({region.size} bytes at {region.base:#x})"
