"""RFC 9669 semantics in the machine, one rule at a time (the conformance suite and the kernel
differential cover them broadly; these pin each edge)."""

from __future__ import annotations

import struct

import pytest

from openat.asm import Instruction, Program, R0, R1, R2, R3, R6, R7, R8, R9, R10, W0, W1, W2
from openat.vm import ArrayMap, Machine
from openat.vm.memory import CODE_BASE, STACK_BASE

M64 = (1 << 64) - 1
INT64_MIN = 1 << 63
INT32_MIN = 1 << 31


def result(*lines, isa="v4", maps=None, **run) -> int:
    """r0 after running ``lines`` (callables taking the Program) and an exit."""
    p = Program(isa=isa, out_of_range_shifts=True, callx=True)
    for line in lines:
        line(p)
    p.exit()
    return Machine(p, maps=maps).run(**run)


def load(register, value):
    return lambda p: p.lddw(register, value)


# ------------------------------------------------------------ ALU


@pytest.mark.parametrize("op, a, b, expected", [
    ("add", M64, 2, 1),
    ("sub", 0, 1, M64),
    ("mul", 1 << 63, 2, 0),
    ("div", 7, 0, 0),  # division by zero: 0
    ("mod", 7, 0, 7),  # modulo by zero: dst unchanged
    ("sdiv", INT64_MIN, M64, INT64_MIN),  # INT_MIN / -1 wraps
    ("smod", INT64_MIN, M64, 0),
    ("sdiv", -7 & M64, 2, -3 & M64),  # truncation toward zero
    ("smod", -7 & M64, 2, -1 & M64),  # the remainder has the dividend's sign
    ("smod", 7, -2 & M64, 1),
    ("sdiv", 5, 0, 0),
    ("smod", -5 & M64, 0, -5 & M64),
    ("lsh", 1, 65, 2),  # the count is masked to 6 bits
    ("rsh", 1 << 63, 127, 1),
    ("arsh", INT64_MIN, 63, M64),
    ("arsh", INT64_MIN, 64, INT64_MIN),  # masked: a shift by 0
])
def test_alu64_register_source(op, a, b, expected):
    assert result(load(R0, a), load(R1, b), lambda p: getattr(p, op)(R0, R1)) == expected


@pytest.mark.parametrize("op, a, b, expected", [
    ("add", 0xFFFF_FFFF_FFFF_FFFF, 1, 0),  # the upper half is zeroed
    ("mov", 0xAAAA_AAAA_5555_5555, None, 0x5555_5555),
    ("div", 0x1_0000_0007, 0x1_0000_0000, 0),  # the divisor's low half is 0
    ("mod", 0xFFFF_FFFF_0000_0007, 0, 7),  # mod by zero: dst's low half, zero-extended
    ("sdiv", INT32_MIN, 0xFFFF_FFFF, INT32_MIN),
    ("smod", INT32_MIN, 0xFFFF_FFFF, 0),
    ("smod", 0xFFFF_FFFF_FFFF_FFF9, 0, 0xFFFF_FFF9),
    ("lsh", 1, 33, 2),  # masked to 5 bits
    ("rsh", 0xFFFF_FFFF_8000_0000, 31, 1),  # the upper half does not shift in
    ("arsh", 0x0000_0000_8000_0000, 4, 0xF800_0000),  # sign of bit 31, zero-extended
    ("mul", 0x1_0000_0003, 0x5, 15),
    ("neg", 1, None, 0xFFFF_FFFF),
])
def test_alu32(op, a, b, expected):
    def operate(p):
        if op == "neg":
            p.neg(W0)
        elif b is None:
            p.mov(W0, W0)
        else:
            getattr(p, op)(W0, W1)
    assert result(load(R0, a), load(R1, b or 0), operate) == expected


def test_alu_immediates_are_sign_extended_for_64_bits_only():
    assert result(lambda p: p.mov(R0, -1)) == M64
    assert result(lambda p: p.mov(W0, -1)) == 0xFFFF_FFFF
    assert result(lambda p: p.mov(R0, 0), lambda p: p.sub(R0, 1)) == M64
    assert result(lambda p: p.mov(R0, 1), lambda p: p.lsh(R0, 70)) == 64  # opt-in: 70 & 63 = 6
    assert result(lambda p: p.mov(W0, 1), lambda p: p.lsh(W0, 40)) == 256  # 40 & 31 = 8


@pytest.mark.parametrize("bits, is32, value, expected", [
    (8, False, 0x80, M64 - 0x7F),
    (16, False, 0x1_7FFF, 0x7FFF),
    (32, False, 0xFFFF_FFFF, M64),
    (8, True, 0xFF, 0xFFFF_FFFF),
    (16, True, 0x8000, 0xFFFF_8000),
])
def test_movsx(bits, is32, value, expected):
    reg0, reg1 = (W0, W1) if is32 else (R0, R1)
    assert result(load(R1, value), lambda p: p.movsx(reg0, reg1, bits)) == expected


@pytest.mark.parametrize("how, bits, expected", [
    ("le", 16, 0x3344), ("le", 32, 0x1122_3344), ("le", 64, 0xAABB_CCDD_1122_3344),
    ("be", 16, 0x4433), ("be", 32, 0x4433_2211), ("be", 64, 0x4433_2211_DDCC_BBAA),
    ("bswap", 16, 0x4433), ("bswap", 32, 0x4433_2211), ("bswap", 64, 0x4433_2211_DDCC_BBAA),
])
def test_byte_swaps(how, bits, expected):
    assert result(load(R0, 0xAABB_CCDD_1122_3344), lambda p: getattr(p, how)(R0, bits)) == expected


# ------------------------------------------------------------ jumps


@pytest.mark.parametrize("op, a, b, taken", [
    ("jgt", M64, 1, True), ("jsgt", M64, 1, False), ("jslt", M64, 0, True), ("jle", 5, 5, True),
    ("jset", 0b1010, 0b0100, False), ("jset", 0b1010, 0b0010, True), ("jne", 1, 1, False),
    ("jsge", INT64_MIN, INT64_MIN, True), ("jlt", 0, M64, True), ("jsle", 0, M64, False),
])
def test_conditional_jumps(op, a, b, taken):
    def jump(p):
        getattr(p, op)(R1, R2, "taken")
        p.mov(R0, 0)
        p.exit()
        p.label("taken")
        p.mov(R0, 1)
    assert result(load(R1, a), load(R2, b), jump) == int(taken)


def test_jmp32_compares_the_low_halves():
    def jump(p):
        p.jeq(W1, 5, "taken")  # 0xffffffff_00000005 == 5 in 32 bits
        p.mov(R0, 0)
        p.exit()
        p.label("taken")
        p.jslt(W1, 0, "negative")  # low half 5: not negative
        p.mov(R0, 1)
        p.exit()
        p.label("negative")
        p.mov(R0, 2)
    assert result(load(R1, 0xFFFF_FFFF_0000_0005), jump) == 1


def test_gotol_reaches_beyond_16_bits():
    p = Program(isa="v4")
    p.mov(R0, 1)
    p.gotol("far")
    for _ in range(33000):  # past the 16-bit reach of goto
        p.mov(R0, 2)
    p.label("far")
    p.exit()
    machine = Machine(p)
    assert machine.run() == 1 and machine.steps == 3


# ------------------------------------------------------------ memory


def test_loads_and_stores_of_every_width_and_sign_extension():
    def body(p):
        p.lddw(R1, 0x8182_8384_8586_8788)
        p.stxdw(R10, -8, R1)
        p.ldxsb(R2, R10, -8)  # 0x88: negative
        p.ldxsh(R3, R10, -6)  # 0x8586
        p.ldxsw(R6, R10, -4)  # 0x81828384
        p.ldxw(R7, R10, -4)
        p.ldxh(R8, R10, -2)
        p.ldxb(R9, R10, -1)
        p.stb(R10, -16, 0x1FF & 0xFF)
        p.sth(R10, -14, 0xBEEF)
        p.stw(R10, -12, -2)
        p.ldxdw(R0, R10, -16)
        for register, offset in ((R2, 0), (R3, 8), (R6, 16), (R7, 24), (R8, 32), (R9, 40)):
            p.stxdw(R10, -64 + offset, register)
    p = Program(isa="v4")
    body(p)
    p.exit()
    machine = Machine(p)
    assert machine.run() == 0xFFFF_FFFE_BEEF_00FF
    stack = machine.memory.regions[0x10].data
    values = struct.unpack_from("<6Q", stack, 512 - 64)
    assert values == (M64 - 0x77, 0xFFFF_FFFF_FFFF_8586, 0xFFFF_FFFF_8182_8384, 0x8182_8384, 0x8182, 0x81)


def test_pointers_take_ordinary_arithmetic():
    def body(p):
        p.mov(R2, R10)
        p.add(R2, -16)
        p.stdw(R2, 8, 42)  # = fp-8
        p.mov(R3, R10)
        p.sub(R3, R2)  # a pointer difference is a number
        p.ldxdw(R0, R10, -8)
        p.add(R0, R3)
    assert result(body) == 42 + 16


def test_ctx_and_packet_are_the_callers_buffers():
    ctx = bytearray(b"\x07\x00\x00\x00" + bytes(4))
    def body(p):
        p.ldxw(R0, R1, 0)
        p.stw(R1, 4, 99)
    assert result(body, ctx=ctx) == 7
    assert ctx[4] == 99  # stored in place
    assert result(lambda p: p.mov(R0, R2), mem=b"12345") == 5  # with only mem: r2 is its length


@pytest.mark.parametrize("op, fetch, memory, operand, after, fetched", [
    ("atomic_add", False, 5, 3, 8, None), ("atomic_or", True, 0b100, 0b001, 0b101, 0b100),
    ("atomic_and", True, 0b110, 0b011, 0b010, 0b110), ("atomic_xor", True, 0b110, 0b011, 0b101, 0b110),
    ("atomic_add", True, M64, 2, 1, M64),
])
def test_atomics_64(op, fetch, memory, operand, after, fetched):
    def body(p):
        p.lddw(R1, memory)
        p.stxdw(R10, -8, R1)
        p.lddw(R2, operand)
        getattr(p, op)(R10, -8, R2, fetch=fetch)
        p.ldxdw(R0, R10, -8)
        p.stxdw(R10, -16, R2)
    p = Program(isa="v4")
    body(p)
    p.exit()
    machine = Machine(p)
    assert machine.run() == after
    stack = machine.memory.regions[0x10].data
    assert struct.unpack_from("<Q", stack, 512 - 16)[0] == (fetched if fetch else operand)


def test_atomics_32_zero_extend_what_they_fetch():
    def body(p):
        p.lddw(R1, 0xFFFF_FFFF_8000_0001)
        p.stxdw(R10, -8, R1)
        p.lddw(R2, 0x7777_7777_0000_0001)
        p.atomic_fetch_add(R10, -8, W2)  # the low word: 0x80000001 + 1
        p.ldxdw(R0, R10, -8)
        p.xor(R0, R2)  # R2 = 0x80000001, zero-extended
    assert result(body) == 0xFFFF_FFFF_8000_0002 ^ 0x8000_0001


def test_xchg_and_cmpxchg():
    def body(p):
        p.stdw(R10, -8, 10)
        p.mov(R1, 20)
        p.xchg(R10, -8, R1)  # R1 = 10, memory 20
        p.mov(R0, 99)
        p.mov(R2, 30)
        p.cmpxchg(R10, -8, R2)  # 99 != 20: no store, R0 = 20
        p.mov(R3, R0)
        p.cmpxchg(R10, -8, R2)  # 20 == 20: store 30, R0 = 20
        p.ldxdw(R0, R10, -8)
        p.lsh(R0, 16)
        p.add(R0, R1)
        p.lsh(R0, 8)
        p.add(R0, R3)
    assert result(body) == (30 << 24) | (10 << 8) | 20


def test_cmpxchg32_compares_only_the_low_half_of_r0():
    def body(p):
        p.stw(R10, -4, 7)
        p.lddw(R0, 0x1234_5678_0000_0007)
        p.mov(W1, 9)
        p.cmpxchg(R10, -4, W1)  # low halves equal: stores 9; r0 = 7 zero-extended
        p.ldxw(R1, R10, -4)
        p.lsh(R0, 8)
        p.or_(R0, R1)
    assert result(body) == (7 << 8) | 9


def test_wide_loads():
    counter = ArrayMap(8, 1, name="counter")
    counter.update(0, 0x1122)
    def body(p):
        p.lddw(R0, 0x1_0000_0000)
        p.ld_map_value(R1, "counter", 1)
        p.ldxb(R1, R1, 0)  # the second byte of the value: 0x11
        p.add(R0, R1)
    assert result(body, maps={"counter": counter}) == 0x1_0000_0011


def test_map_index_pseudo_sources_index_the_machines_maps():
    first, second = ArrayMap(4, 1, name="first"), ArrayMap(4, 1, name="second")
    second.update(0, 0x2A)
    p = Program(isa="v4")
    p.ld_map_idx_value(R1, 1)  # maps[1]
    p.ldxw(R0, R1, 0)
    p.exit()
    assert Machine(p, maps=[first, second]).run() == 0x2A


def test_legacy_packet_loads_are_big_endian_and_end_the_program_out_of_bounds():
    def body(p):
        p.mov(R6, R1)
        p.ldabsh(1)  # bytes 1-2, big-endian
        p.mov(R7, R0)
        p.mov(R1, 2)
        p.ldindb(R1, 1)  # byte 3
        p.lsh(R7, 8)
        p.or_(R0, R7)
    assert result(body, ctx=bytes(8), mem=b"\x00\x12\x34\x56") == 0x123456
    assert result(body, ctx=bytes(8), mem=b"\x00\x12") == 0  # ldabsh(1) reads past the end: r0 = 0, exit


# ------------------------------------------------------------ calls


def test_bpf_to_bpf_calls_have_their_own_frames():
    p = Program(isa="v4")
    p.mov(R6, 6)
    p.mov(R9, 9)
    p.stdw(R10, -8, 1000)
    p.mov(R1, 20)
    p.call_label("double")
    p.ldxdw(R2, R10, -8)  # the caller's stack is untouched
    p.add(R0, R2)
    p.add(R0, R6)  # r6-r9 come back as they were
    p.add(R0, R9)
    p.exit()
    p.label("double")
    p.stdw(R10, -8, 555)  # its own r10: its own stack
    p.mov(R6, 0)
    p.mov(R9, 0)
    p.mov(R0, R1)
    p.add(R0, R1)
    p.exit()
    machine = Machine(p)
    assert machine.run() == 40 + 1000 + 6 + 9
    assert machine.registers[10] == STACK_BASE + 512


def test_ld_func_and_callx_call_a_function_by_address():
    p = Program(isa="v4", callx=True)
    p.ld_func(R3, "seven")
    p.callx(R3)
    p.exit()
    p.label("seven")
    p.mov(R0, 7)
    p.exit()
    machine = Machine(p)
    assert machine.run() == 7
    assert machine.registers[3] == CODE_BASE + 8 * p.labels["seven"]  # a code address: slot * 8


def test_callx_with_a_helper_id_calls_the_helper():
    p = Program(isa="v4", callx=True)
    p.mov(R2, 7)  # get_prandom_u32
    p.callx(R2)
    p.exit()
    assert Machine(p, seed=1).run() == Machine(p, seed=1).run() < 1 << 32


def test_runs_start_fresh_but_maps_persist():
    counter = ArrayMap(8, 1, name="counter")
    p = Program(isa="v4")
    p.ldxdw(R0, R10, -8)  # zero at every start
    p.ld_map_value(R1, "counter")
    p.ldxdw(R2, R1, 0)
    p.add(R2, 1)
    p.stxdw(R1, 0, R2)
    p.stxdw(R10, -8, R2)
    p.exit()
    machine = Machine(p, maps={"counter": counter})
    assert [machine.run() for _ in range(3)] == [0, 0, 0]
    assert counter.lookup(0) == (3).to_bytes(8, "little")


def test_instructions_and_bytes_and_programs_run_alike():
    p = Program(isa="v4")
    p.mov(R0, 3)
    p.lsh(R0, 4)
    p.exit()
    assert Machine(p).run() == Machine(p.encode()).run() == Machine(p.instructions).run() == 48
    assert Machine([Instruction(0xB7, 0, 0, 0, 5), Instruction(0x95)]).run() == 5
