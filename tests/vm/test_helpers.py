"""Each helper the machine implements, and the maps behind them, against the kernel's documented behaviour."""

from __future__ import annotations

import errno
import struct

import pytest

from openat.asm import Program, R0, R1, R2, R3, R4, R5, R10
from openat.uapi import BPF_EXIST, BPF_NOEXIST, BPF_RB_AVAIL_DATA, BPF_RB_CONS_POS, BPF_RB_PROD_POS, BPF_RB_RING_SIZE
from openat.uapi import MapType
from openat.vm import (
    ArrayMap, CurrentTask, HashMap, Machine, PerCpuArrayMap, PerCpuHashMap, RingBufMap, VmError, create_map,
)
from openat.vm.helpers import format_printk

M64 = (1 << 64) - 1


def neg(code: int) -> int:
    return -code & M64


def key_on_stack(p: Program, value: int, offset: int = -4) -> None:
    """r2 = &u32 value on the stack."""
    p.stw(R10, offset, value)
    p.mov(R2, R10)
    p.add(R2, offset)


# ------------------------------------------------------------ maps


def lookup_program(map_name: str = "m") -> Program:
    """r0 = *(u64 *)lookup(m, key from ctx) or -1 when absent."""
    p = Program(isa="v4")
    p.ldxw(R1, R1, 0)
    p.stxw(R10, -4, R1)
    p.mov(R2, R10)
    p.add(R2, -4)
    p.ld_map_fd(R1, map_name)
    p.call("map_lookup_elem")
    p.jeq(R0, 0, "absent")
    p.ldxdw(R0, R0, 0)
    p.exit()
    p.label("absent")
    p.mov(R0, -1)
    p.exit()
    return p


def update_program(flags: int, map_name: str = "m") -> Program:
    """update(m, key ctx[0:4], value ctx[8:16], flags); r0 = the result."""
    p = Program(isa="v4")
    p.mov(R3, R1)
    p.add(R3, 8)
    p.mov(R2, R1)
    p.ld_map_fd(R1, map_name)
    p.mov(R4, flags)
    p.call("map_update_elem")
    p.exit()
    return p


def ctx(key: int, value: int = 0) -> bytes:
    return struct.pack("<IIQ", key, 0, value)


def test_array_lookup_update_and_its_errors():
    array = ArrayMap(8, 4, name="m")
    array.update(2, 77)
    assert Machine(lookup_program(), maps={"m": array}).run(ctx=ctx(2)) == 77
    assert Machine(lookup_program(), maps={"m": array}).run(ctx=ctx(4)) == M64  # out of range: NULL
    update = Machine(update_program(0), maps={"m": array})
    assert update.run(ctx=ctx(1, 5)) == 0 and array.lookup(1) == (5).to_bytes(8, "little")
    assert update.run(ctx=ctx(9, 5)) == neg(errno.E2BIG)
    assert Machine(update_program(BPF_NOEXIST), maps={"m": array}).run(ctx=ctx(1, 5)) == neg(errno.EEXIST)
    assert Machine(update_program(7), maps={"m": array}).run(ctx=ctx(1, 5)) == neg(errno.EINVAL)


def test_hash_update_flags_fullness_and_delete():
    table = HashMap(4, 8, 2, name="m")
    insert, replace = (Machine(update_program(flags), maps={"m": table}) for flags in (BPF_NOEXIST, BPF_EXIST))
    assert replace.run(ctx=ctx(1, 10)) == neg(errno.ENOENT)
    assert insert.run(ctx=ctx(1, 10)) == 0
    assert insert.run(ctx=ctx(1, 11)) == neg(errno.EEXIST)
    assert replace.run(ctx=ctx(1, 12)) == 0
    assert insert.run(ctx=ctx(2, 20)) == 0
    assert insert.run(ctx=ctx(3, 30)) == neg(errno.E2BIG)  # two entries: full
    assert dict(table.items()) == {(1).to_bytes(4, "little"): (12).to_bytes(8, "little"),
                                   (2).to_bytes(4, "little"): (20).to_bytes(8, "little")}
    p = Program(isa="v4")
    key_on_stack(p, 1)
    p.ld_map_fd(R1, "m")
    p.call("map_delete_elem")
    p.exit()
    delete = Machine(p, maps={"m": table})
    assert [delete.run(), delete.run()] == [0, neg(errno.ENOENT)]
    assert table.lookup(1) is None and list(table.keys()) == [(2).to_bytes(4, "little")]


def test_a_lookup_points_into_the_map():
    array = ArrayMap(8, 1, name="m")
    p = Program(isa="v4")
    key_on_stack(p, 0)
    p.ld_map_fd(R1, "m")
    p.call("map_lookup_elem")
    p.stdw(R0, 0, 1234)  # the program writes the map's own value
    p.mov(R0, 0)
    p.exit()
    Machine(p, maps={"m": array}).run()
    assert array.lookup(0) == (1234).to_bytes(8, "little")


def test_per_cpu_maps_give_the_current_cpus_value():
    array = PerCpuArrayMap(8, 1, name="m", cpus=4)
    array.update(0, b"".join((10 * cpu).to_bytes(8, "little") for cpu in range(4)))
    assert [Machine(lookup_program(), maps={"m": array}, cpu=cpu).run(ctx=ctx(0)) for cpu in range(4)] == [0, 10, 20, 30]
    assert array.lookup_percpu(0) == [(10 * cpu).to_bytes(8, "little") for cpu in range(4)]
    table = PerCpuHashMap(4, 8, 4, name="m", cpus=2)
    assert Machine(update_program(0), maps={"m": table}, cpu=1).run(ctx=ctx(5, 99)) == 0
    assert table.lookup_percpu(5) == [bytes(8), (99).to_bytes(8, "little")]  # other CPUs: zero
    p = Program(isa="v4")
    key_on_stack(p, 5)
    p.ld_map_fd(R1, "m")
    p.mov(R3, 1)
    p.call("map_lookup_percpu_elem")
    p.ldxdw(R0, R0, 0)
    p.exit()
    assert Machine(p, maps={"m": table}, cpu=0).run() == 99


def test_python_side_of_the_maps():
    array = create_map(MapType.ARRAY, 4, 8, 2, name="a")
    assert isinstance(array, ArrayMap) and array.lookup(1) == bytes(8)
    with pytest.raises(OSError) as caught:
        array.update(5, 1)
    assert caught.value.errno == errno.E2BIG
    with pytest.raises(ValueError, match="key is 2 bytes, expected 4"):
        array.lookup(b"ab")
    with pytest.raises(ValueError, match="value is 3 bytes"):
        array.update(0, b"abc")
    table = create_map(MapType.HASH, 2, 2, 8)
    table.update(b"ab", b"cd")
    assert table.delete(b"ab") is True and table.delete(b"ab") is False
    assert isinstance(create_map(MapType.RINGBUF, 0, 0, 4096), RingBufMap)
    with pytest.raises(ValueError, match="not modelled by openat.vm"):
        create_map(MapType.LPM_TRIE, 8, 8, 1)
    with pytest.raises(ValueError, match="power of two"):
        RingBufMap(5000)


# ------------------------------------------------------------ ring buffers


def output_program(size: int, flags: int = 0) -> Program:
    p = Program(isa="v4")
    p.lddw(R1, 0x0807060504030201)
    p.stxdw(R10, -8, R1)
    p.ld_map_fd(R1, "ring")
    p.mov(R2, R10)
    p.add(R2, -8)
    p.mov(R3, size)
    p.mov(R4, flags)
    p.call("ringbuf_output")
    p.exit()
    return p


def test_ringbuf_output_hands_records_to_the_callback():
    seen = []
    ring = RingBufMap(4096, on_record=seen.append)
    machine = Machine(output_program(5), maps={"ring": ring})
    assert machine.run() == 0 and machine.run() == 0
    assert seen == [b"\x01\x02\x03\x04\x05"] * 2
    assert ring.query(BPF_RB_AVAIL_DATA) == 0 and ring.query(BPF_RB_PROD_POS) == 32  # 2 x (8 + 5 -> 16)
    assert Machine(output_program(5, flags=4), maps={"ring": ring}).run() == neg(errno.EINVAL)


def test_without_a_callback_records_fill_the_ring():
    ring = RingBufMap(4096)
    machine = Machine(output_program(8), maps={"ring": ring})
    results = [machine.run() for _ in range(257)]
    assert results[:256] == [0] * 256 and results[256] == neg(errno.EAGAIN)  # 256 x 16 bytes: full
    assert ring.query(BPF_RB_AVAIL_DATA) == 4096 and ring.query(BPF_RB_RING_SIZE) == 4096
    records = ring.take()
    assert len(records) == 256 and ring.query(BPF_RB_CONS_POS) == 4096 and machine.run() == 0


def test_reserve_submit_and_discard():
    seen = []
    ring = RingBufMap(4096, on_record=seen.append)
    p = Program(isa="v4")
    for value, commit in ((0xAA, "ringbuf_submit"), (0xBB, "ringbuf_discard"), (0xCC, "ringbuf_submit")):
        p.ld_map_fd(R1, "ring")
        p.mov(R2, 2)
        p.mov(R3, 0)
        p.call("ringbuf_reserve")
        p.jeq(R0, 0, "out")
        p.sth(R0, 0, value)
        p.mov(R1, R0)
        p.mov(R2, 0)
        p.call(commit)
    p.ld_map_fd(R1, "ring")
    p.mov(R2, 1 << 20)  # bigger than the ring: NULL
    p.mov(R3, 0)
    p.call("ringbuf_reserve")
    p.label("out")
    p.exit()
    assert Machine(p, maps={"ring": ring}).run() == 0
    assert seen == [b"\xaa\x00", b"\xcc\x00"]
    assert ring.query(BPF_RB_CONS_POS) == 3 * 16  # the discarded record's room is consumed too


def test_records_wait_behind_an_unsubmitted_reservation():
    ring = RingBufMap(4096)
    first = ring.reserve(4)
    second = ring.reserve(4)
    ring.commit(second, b"2222")
    assert ring.take() == []  # the first is still busy
    ring.commit(first, b"1111")
    assert ring.take() == [b"1111", b"2222"]


# ------------------------------------------------------------ the current task, time, randomness


def call_program(helper: str, *setup) -> Program:
    p = Program(isa="v4")
    for line in setup:
        line(p)
    p.call(helper)
    p.exit()
    return p


def test_identity_helpers_report_the_current_task():
    current = CurrentTask(pid=4321, tid=4325, uid=1000, gid=100, comm=b"learner", cgroup_id=77)
    assert Machine(call_program("get_current_pid_tgid"), current=current).run() == 4321 << 32 | 4325
    assert Machine(call_program("get_current_uid_gid"), current=current).run() == 100 << 32 | 1000
    assert Machine(call_program("get_current_cgroup_id"), current=current).run() == 77
    p = Program(isa="v4")
    p.stdw(R10, -16, -1)
    p.stdw(R10, -8, -1)
    p.mov(R1, R10)
    p.add(R1, -16)
    p.mov(R2, 16)
    p.call("get_current_comm")
    p.exit()
    machine = Machine(p, current=current)
    assert machine.run() == 0
    assert bytes(machine.memory.regions[0x10].data[-16:]) == b"learner" + bytes(9)  # NUL-padded
    machine.current = current._replace(comm=b"a-very-long-command-name")
    machine.run()
    assert bytes(machine.memory.regions[0x10].data[-16:]) == b"a-very-long-com\0"


def test_time_randomness_and_cpu_come_from_the_machine():
    ticks = iter(range(100, 200))
    machine = Machine(call_program("ktime_get_ns"), clock=lambda: next(ticks))
    assert [machine.run(), machine.run()] == [100, 101]
    assert Machine(call_program("ktime_get_boot_ns"), clock=lambda: 5).run() == 5
    draws = [Machine(call_program("get_prandom_u32"), seed=7).run() for _ in range(2)]
    assert draws[0] == draws[1] < 1 << 32
    assert Machine(call_program("get_smp_processor_id"), cpu=3).run() == 3
    assert Machine(call_program("get_numa_node_id")).run() == 0


def test_get_current_task_needs_a_modelled_task():
    with pytest.raises(VmError, match="the machine has no task_struct: map one"):
        Machine(call_program("get_current_task_btf")).run()
    machine = Machine(call_program("get_current_task_btf"))
    task = machine.memory.add("task_struct", bytes(64), writable=False)
    machine.current = CurrentTask(task_struct=task.base)
    assert machine.run() == task.base


# ------------------------------------------------------------ reading the traced task's memory


def read_program(helper: str, size: int) -> Program:
    """helper(fp-32, size, ctx[0]); r0 = its result; the 32 stack bytes hold what it read."""
    p = Program(isa="v4")
    p.ldxdw(R3, R1, 0)
    for offset in range(-32, 0, 8):
        p.stdw(R10, offset, -1)  # 0xff everywhere: what the helper leaves untouched shows
    p.mov(R1, R10)
    p.add(R1, -32)
    p.mov(R2, size)
    p.call(helper)
    p.exit()
    return p


def read(helper: str, size: int, data: bytes, *, user: bool) -> tuple:
    machine = Machine(read_program(helper, size))
    region = machine.memory.add("source", data, user=user, writable=False)
    result = machine.run(ctx=region.base.to_bytes(8, "little"))
    return result, bytes(machine.memory.regions[0x10].data[-32:])


def test_probe_read_kernel_and_user_copy_or_zero_the_destination():
    result, stack = read("probe_read_kernel", 4, b"abcdef", user=False)
    assert result == 0 and stack[:6] == b"abcd\xff\xff"
    result, stack = read("probe_read_user", 4, b"abcdef", user=True)
    assert result == 0 and stack[:4] == b"abcd"
    for helper, user in (("probe_read_user", False), ("probe_read_kernel", True)):  # the other space
        result, stack = read(helper, 4, b"abcdef", user=user)
        assert result == neg(errno.EFAULT) and stack[:5] == b"\0\0\0\0\xff"
    result, stack = read("probe_read_kernel", 8, b"abc", user=False)  # past the region's end
    assert result == neg(errno.EFAULT) and stack[:8] == bytes(8)
    assert read("probe_read", 3, b"xyz", user=True)[0] == 0  # the legacy helper reads either


def test_probe_read_str_returns_the_length_with_the_nul():
    result, stack = read("probe_read_user_str", 16, b"hello\0junk", user=True)
    assert result == 6 and stack[:8] == b"hello\0\xff\xff"  # bytes after the NUL untouched
    result, stack = read("probe_read_user_str", 4, b"hello\0", user=True)
    assert result == 4 and stack[:5] == b"hel\0\xff"  # cut to size - 1 and a NUL: returns size
    result, stack = read("probe_read_kernel_str", 16, b"no nul here", user=False)
    assert result == neg(errno.EFAULT) and stack[:16] == bytes(16)
    assert read("probe_read_str", 8, b"ok\0", user=False)[0] == 3
    assert read("probe_read_user_str", 0, b"ok\0", user=True)[0] == 0


# ------------------------------------------------------------ trace_printk


def printk_program(template: bytes, *args: int) -> Program:
    p = Program(isa="v4")
    data = template + b"\0" * (8 - len(template) % 8)
    for index in range(0, len(data), 8):
        p.lddw(R1, int.from_bytes(data[index : index + 8], "little"))
        p.stxdw(R10, -len(data) + index, R1)
    for register, value in zip((R3, R4, R5), args):
        p.lddw(register, value)
    p.mov(R1, R10)
    p.add(R1, -len(data))
    p.mov(R2, len(template) + 1)
    p.call("trace_printk")
    p.exit()
    return p


def test_trace_printk_formats_like_the_kernel_and_collects_the_lines():
    machine = Machine(printk_program(b"n=%d u=%u x=%llx", M64, 7, 0xABC))
    assert machine.run() == len("n=-1 u=7 x=abc")
    assert machine.printk == ["n=-1 u=7 x=abc"]
    trace = machine.trace()
    assert trace.printk == ["n=-1 u=7 x=abc"] and "printk: n=-1 u=7 x=abc" in trace.text()


@pytest.mark.parametrize("template, args, text", [
    (b"%5d|%-3x|%%", [42, 10], "   42|a  |%"),
    (b"%c%c", [ord("o"), ord("k")], "ok"),
    (b"%lld", [M64], "-1"),
    (b"%d", [0xFFFF_FFFF], "-1"),  # %d is an int: the low 32 bits
    (b"%hhu", [0x1FF], "255"),
    (b"%p", [0x1234], "0x1234"),
])
def test_printk_conversions(template, args, text):
    assert format_printk(Machine(b"\x95" + bytes(7)), template, args) == text.encode()


def test_printk_refuses_what_the_kernel_refuses():
    assert Machine(printk_program(b"%d %d %d %d", 1, 2, 3)).run() == neg(errno.EINVAL)  # a fourth argument
    assert Machine(printk_program(b"%q", 1)).run() == neg(errno.EINVAL)


def test_printk_s_reads_a_string_from_memory():
    p = Program(isa="v4")
    p.ldxdw(R3, R1, 0)  # the string's address, from the context
    p.lddw(R1, int.from_bytes(b"name=%s\0", "little"))
    p.stxdw(R10, -8, R1)
    p.mov(R1, R10)
    p.add(R1, -8)
    p.mov(R2, 8)
    p.call("trace_printk")
    p.exit()
    machine = Machine(p)
    name = machine.memory.add("name", b"cat\0", writable=False)
    assert machine.run(ctx=name.base.to_bytes(8, "little")) == len("name=cat")
    assert machine.printk == ["name=cat"]
    machine.run(ctx=bytes(8))  # unreadable: the kernel prints an empty string
    assert machine.printk == ["name="]


# ------------------------------------------------------------ callbacks and registered helpers


def test_bpf_loop_calls_back_with_the_index_and_stops_on_nonzero():
    p = Program(isa="v4")
    p.stdw(R10, -8, 0)
    p.mov(R1, 10)
    p.ld_func(R2, "add_index")
    p.mov(R3, R10)
    p.add(R3, -8)
    p.mov(R4, 0)
    p.call("loop")
    p.ldxdw(R1, R10, -8)
    p.lsh(R0, 32)
    p.or_(R0, R1)
    p.exit()
    p.label("add_index")  # *ctx += index; stop after index 4
    p.ldxdw(R3, R2, 0)
    p.add(R3, R1)
    p.stxdw(R2, 0, R3)
    p.mov(R0, 0)
    p.jne(R1, 4, "next")
    p.mov(R0, 1)
    p.label("next")
    p.exit()
    machine = Machine(p)
    assert machine.run() == 5 << 32 | (0 + 1 + 2 + 3 + 4)
    trace = machine.trace()
    assert max(step.depth for step in trace.steps) == 1 and trace.result == machine.run()


def test_registered_helpers_by_name_and_by_id():
    machine = Machine(call_program("get_prandom_u32"))
    machine.register_helper("bpf_get_prandom_u32", lambda m, *args: 4)  # chosen by fair dice roll
    assert machine.run() == 4
    p = Program(isa="v4")
    p.mov(R1, 20)
    p.call(211)  # the last Linux id; a runtime may use any
    p.exit()
    custom = Machine(p)
    custom.register_helper(211, lambda m, r1, *rest: r1 * 2 + 2)
    assert custom.run() == 42
    with pytest.raises(VmError, match=r"unknown helper 'ktime_get_nss'; did you mean ktime_get_ns"):
        custom.register_helper("ktime_get_nss", lambda m, *args: 0)
    with pytest.raises(VmError, match="must be callable"):
        custom.register_helper(211, 5)  # type: ignore[arg-type]


def test_a_helper_may_use_the_machines_memory():
    def sum_bytes(m, address, size, *_):
        return sum(m.read(address, size))

    p = Program(isa="v4")
    p.mov(R2, 4)
    p.call(200)
    p.exit()
    machine = Machine(p)
    machine.register_helper(200, sum_bytes)
    assert machine.run(ctx=b"\x01\x02\x03\x04") == 10
    machine.register_helper(200, lambda m, address, *_: m.read(address, 99))
    with pytest.raises(VmError, match=r"insn 1 .*: bpf_\w+: 99-byte access at 0x100000000 \(ctx\+0x0\) runs past"):
        machine.run(ctx=b"\x01\x02\x03\x04")
