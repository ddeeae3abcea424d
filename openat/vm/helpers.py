"""The helper functions the machine implements, in Python.

A helper is ``function(machine, r1, r2, r3, r4, r5) -> r0``: it gets the argument registers
(unsigned 64-bit values; pointers are addresses in the machine's memory, see
:mod:`openat.vm.memory`) and returns r0. It reads and writes the program's memory with
``machine.read``/``machine.write``; a :class:`~openat.vm.memory.MemoryFault` it lets escape
stops the program with an error naming the helper. :meth:`Machine.register_helper
<openat.vm.machine.Machine.register_helper>` adds or replaces one.

Results follow the kernel's: negative errnos as 64-bit patterns, NULL as 0. The values the
kernel would take from the running task (pid, uid, comm, the time, the CPU) come from the
machine's :class:`~openat.vm.machine.CurrentTask`, ``clock``, ``cpu`` and ``random``.
"""

from __future__ import annotations

import errno
import re
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

from ..asm.helper_ids import HELPER_IDS
from ..uapi import BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP
from .errors import VmError
from .maps import RingBufMap
from .memory import MemoryFault

if TYPE_CHECKING:
    from .machine import Machine

__all__ = ["BUILTIN_HELPERS", "Helper", "format_printk"]

Helper = Callable[..., int]
M64 = (1 << 64) - 1
MAX_LOOPS = 1 << 23  # bpf_loop's limit


def _errno(code: int) -> int:
    return -code & M64


# ------------------------------------------------------------ maps


def map_lookup_elem(m: "Machine", map_handle: int, key: int, *_: int) -> int:
    bpf_map = m.map_at(map_handle)
    return m.value_address(bpf_map, m.read(key, bpf_map.key_size), m.cpu)


def map_update_elem(m: "Machine", map_handle: int, key: int, value: int, flags: int, *_: int) -> int:
    bpf_map = m.map_at(map_handle)
    data = m.read(value, bpf_map.value_size)
    return bpf_map.update_value(m.read(key, bpf_map.key_size), data, flags, m.cpu) & M64


def map_delete_elem(m: "Machine", map_handle: int, key: int, *_: int) -> int:
    bpf_map = m.map_at(map_handle)
    key_bytes = m.read(key, bpf_map.key_size)
    result = bpf_map.delete_key(key_bytes)
    if result == 0:
        m.forget_value(bpf_map, key_bytes)
    return result & M64


def map_lookup_percpu_elem(m: "Machine", map_handle: int, key: int, cpu: int, *_: int) -> int:
    bpf_map = m.map_at(map_handle)
    if not bpf_map.is_percpu or cpu >= bpf_map.cpus:
        return 0
    return m.value_address(bpf_map, m.read(key, bpf_map.key_size), cpu)


# ------------------------------------------------------------ memory of the traced task


def _probe_read(m: "Machine", dst: int, size: int, src: int, user: Optional[bool]) -> int:
    """Copy ``size`` bytes; on a fault zero ``dst`` and return -EFAULT, as the kernel does."""
    spaces = (False, True) if user is None else (user,)
    for space in spaces:
        try:
            data = m.read(src, size, user=space)
        except MemoryFault:
            continue
        m.write(dst, data)
        return 0
    m.write(dst, bytes(size))
    return _errno(errno.EFAULT)


def _probe_read_str(m: "Machine", dst: int, size: int, src: int, user: Optional[bool]) -> int:
    """At most ``size - 1`` bytes and a NUL; returns the length with the NUL, or -EFAULT."""
    if size == 0:
        return 0
    spaces = (False, True) if user is None else (user,)
    for space in spaces:
        try:
            text = m.read_string(src, size, user=space)
        except MemoryFault:
            continue
        text = text[: size - 1]
        m.write(dst, text + b"\0")
        return len(text) + 1
    m.write(dst, bytes(size))
    return _errno(errno.EFAULT)


def probe_read_kernel(m: "Machine", dst: int, size: int, src: int, *_: int) -> int:
    return _probe_read(m, dst, size, src, False)


def probe_read_user(m: "Machine", dst: int, size: int, src: int, *_: int) -> int:
    return _probe_read(m, dst, size, src, True)


def probe_read(m: "Machine", dst: int, size: int, src: int, *_: int) -> int:
    return _probe_read(m, dst, size, src, None)


def probe_read_kernel_str(m: "Machine", dst: int, size: int, src: int, *_: int) -> int:
    return _probe_read_str(m, dst, size, src, False)


def probe_read_user_str(m: "Machine", dst: int, size: int, src: int, *_: int) -> int:
    return _probe_read_str(m, dst, size, src, True)


def probe_read_str(m: "Machine", dst: int, size: int, src: int, *_: int) -> int:
    return _probe_read_str(m, dst, size, src, None)


# ------------------------------------------------------------ the current task, time, CPU


def get_current_pid_tgid(m: "Machine", *_: int) -> int:
    return (m.current.pid << 32 | m.current.tid) & M64


def get_current_uid_gid(m: "Machine", *_: int) -> int:
    return (m.current.gid << 32 | m.current.uid) & M64


def get_current_comm(m: "Machine", buffer: int, size: int, *_: int) -> int:
    if size:
        comm = m.current.comm[: size - 1]
        m.write(buffer, comm + bytes(size - len(comm)))  # NUL-padded, as strscpy_pad leaves it
    return 0


def get_current_task(m: "Machine", *_: int) -> int:
    if not m.current.task_struct:
        raise VmError("the machine has no task_struct: map one (machine.memory.add) and pass "
                      "current=CurrentTask(task_struct=region.base)")
    return m.current.task_struct


def get_current_cgroup_id(m: "Machine", *_: int) -> int:
    return m.current.cgroup_id


def ktime_get_ns(m: "Machine", *_: int) -> int:
    return m.clock() & M64


def get_prandom_u32(m: "Machine", *_: int) -> int:
    return m.random.getrandbits(32)


def get_smp_processor_id(m: "Machine", *_: int) -> int:
    return m.cpu


def get_numa_node_id(m: "Machine", *_: int) -> int:
    return 0


# ------------------------------------------------------------ trace_printk

_SPEC = re.compile(rb"%([-+ #0]*)(\d*)(?:\.(\d+))?(ll|l|hh|h|z)?([diuxXcsp%])?")


def format_printk(m: "Machine", template: bytes, args: List[int]) -> Optional[bytes]:
    """``template`` with ``args`` as the kernel's bpf_trace_printk formats them, or None when
    the format is not one it accepts (at most three arguments; %d %i %u %x %X with l/ll/h/hh,
    %c, %s, %p, %%)."""
    out = bytearray()
    position = 0
    remaining = list(args)
    for match in _SPEC.finditer(template):
        out += template[position : match.start()]
        position = match.end()
        flags, width, precision, length, conversion = match.groups()
        if conversion is None:
            return None
        if conversion == b"%":
            out += b"%"
            continue
        if not remaining:
            return None
        out += _format_one(m, flags, width, precision, length, conversion, remaining.pop(0))
    out += template[position:]
    return bytes(out)


def _format_one(m: "Machine", flags: bytes, width: bytes, precision: Optional[bytes], length: Optional[bytes],
                conversion: bytes, value: int) -> bytes:
    bits = {b"ll": 64, b"l": 64, b"z": 64, b"h": 16, b"hh": 8}.get(length or b"", 32)
    spec = "%" + (flags + width).decode() + (f".{precision.decode()}" if precision else "")
    if conversion == b"s":
        try:
            text = m.read_string(value, 4096)
        except MemoryFault:
            text = b""  # the kernel prints an empty string for an unreadable one
        return (spec + "s").encode() % text
    if conversion == b"c":
        return (spec + "c").encode() % (value & 0xFF)
    if conversion == b"p":
        return (spec + "s").encode() % f"{value:#x}".encode()
    value &= (1 << bits) - 1
    if conversion in (b"d", b"i") and value >> (bits - 1):
        value -= 1 << bits
    python = {b"i": "d", b"u": "d"}.get(conversion, conversion.decode())
    return (spec + python).encode() % value


def trace_printk(m: "Machine", fmt: int, fmt_size: int, arg1: int, arg2: int, arg3: int) -> int:
    raw = m.read(fmt, fmt_size)
    if not raw or raw[-1] != 0:
        return _errno(errno.EINVAL)
    text = format_printk(m, raw[: raw.index(b"\0")], [arg1, arg2, arg3])
    if text is None:
        return _errno(errno.EINVAL)
    m.printk.append(text.decode("utf-8", "backslashreplace"))
    return len(text)


# ------------------------------------------------------------ ring buffers

_RB_FLAGS = BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP


def _ring(m: "Machine", handle: int) -> RingBufMap:
    ring = m.map_at(handle)
    if not isinstance(ring, RingBufMap):
        raise VmError(f"map {ring.name!r} is not a ring buffer")
    return ring


def ringbuf_output(m: "Machine", handle: int, data: int, size: int, flags: int, *_: int) -> int:
    ring = _ring(m, handle)
    if flags & ~_RB_FLAGS:
        return _errno(errno.EINVAL)
    return ring.output(m.read(data, size)) & M64


def ringbuf_reserve(m: "Machine", handle: int, size: int, flags: int, *_: int) -> int:
    ring = _ring(m, handle)
    if flags:
        return 0
    return m.reserve(ring, size)


def ringbuf_submit(m: "Machine", data: int, flags: int, *_: int) -> int:
    m.commit(data, submit=True)
    return 0


def ringbuf_discard(m: "Machine", data: int, flags: int, *_: int) -> int:
    m.commit(data, submit=False)
    return 0


def ringbuf_query(m: "Machine", handle: int, flags: int, *_: int) -> int:
    return _ring(m, handle).query(flags)


# ------------------------------------------------------------ callbacks


def loop(m: "Machine", count: int, callback: int, context: int, flags: int, *_: int) -> int:
    """bpf_loop: call ``callback(index, context)`` ``count`` times, or until it returns non-zero."""
    if flags:
        return _errno(errno.EINVAL)
    if count > MAX_LOOPS:
        return _errno(errno.E2BIG)
    for index in range(count):
        if m.call_function(callback, index, context):
            return index + 1
    return count


_BY_NAME: Dict[str, Helper] = {
    "map_lookup_elem": map_lookup_elem,
    "map_update_elem": map_update_elem,
    "map_delete_elem": map_delete_elem,
    "map_lookup_percpu_elem": map_lookup_percpu_elem,
    "probe_read": probe_read,
    "probe_read_str": probe_read_str,
    "probe_read_kernel": probe_read_kernel,
    "probe_read_kernel_str": probe_read_kernel_str,
    "probe_read_user": probe_read_user,
    "probe_read_user_str": probe_read_user_str,
    "get_current_pid_tgid": get_current_pid_tgid,
    "get_current_uid_gid": get_current_uid_gid,
    "get_current_comm": get_current_comm,
    "get_current_task": get_current_task,
    "get_current_task_btf": get_current_task,
    "get_current_cgroup_id": get_current_cgroup_id,
    "ktime_get_ns": ktime_get_ns,
    "ktime_get_boot_ns": ktime_get_ns,
    "ktime_get_coarse_ns": ktime_get_ns,
    "ktime_get_tai_ns": ktime_get_ns,
    "get_prandom_u32": get_prandom_u32,
    "get_smp_processor_id": get_smp_processor_id,
    "get_numa_node_id": get_numa_node_id,
    "trace_printk": trace_printk,
    "ringbuf_output": ringbuf_output,
    "ringbuf_reserve": ringbuf_reserve,
    "ringbuf_submit": ringbuf_submit,
    "ringbuf_discard": ringbuf_discard,
    "ringbuf_query": ringbuf_query,
    "loop": loop,
}

#: helper id -> the machine's implementation.
BUILTIN_HELPERS: Dict[int, Helper] = {HELPER_IDS[name]: function for name, function in _BY_NAME.items()}
