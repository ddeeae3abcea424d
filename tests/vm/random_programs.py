"""Random programs the verifier accepts, for the VM's differential test against the kernel.

A program is a socket filter (so PROG_TEST_RUN runs it on a packet) in three parts:

* prologue: r6 = ctx (``ld_abs`` needs it), r7 = the value of array map ``out``
  (768 bytes: 0-63 get the registers at the end, 64-127 the stack slots, 128-255 are
  scratch the body reads and writes, 256-767 a log), eight stack slots fp-64..fp-8 and the
  data registers r0-r5, r8, r9 set to random values;
* body: random instructions of every kind on the data registers, the stack slots and the
  scratch, with forward jumps (no loops, so the verifier accepts every one); after each one
  that writes a register, that register is stored in the next slot of the log, so that no
  result is lost by being overwritten before the end;
* epilogue: every data register still readable stored to the value, the stack slots copied
  after them, then exit with r0.

What a run leaves in the map value and r0 is the whole observable state, so the VM must give
the same bytes and the same r0 (the kernel reports its low 32 bits).

The verifier is strict about what may be read: ``ld_abs``/``ld_ind`` make r1-r5
unreadable, so the generator tracks, per program point, which registers are readable (the
intersection over the paths that reach it) and sets a register again before reading it
when it is not. No pointer ever reaches a data register (its value would differ).
"""

from __future__ import annotations

import random
from typing import Dict, List, Set

from hypothesis import strategies as st

from openat.asm import Program, R6, R7, R10
from openat.asm.registers import R, W

__all__ = ["MAP_VALUE_SIZE", "build", "initial_value", "random_spec", "specs"]

DATA = (0, 1, 2, 3, 4, 5, 8, 9)
SCRATCH = 128  # first byte of the value the body may use
LOG = 256  # first byte of the log: 64 slots of 8 bytes, used round robin
LOG_SLOTS = 64
MAP_VALUE_SIZE = LOG + 8 * LOG_SLOTS
STACK_LOW = -64  # the eight stack slots: fp-64 .. fp-1
ALU_OPS = ("add", "sub", "mul", "div", "sdiv", "or_", "and_", "lsh", "rsh", "mod", "smod", "xor", "mov", "arsh")
JUMP_OPS = ("jeq", "jne", "jgt", "jge", "jlt", "jle", "jset", "jsgt", "jsge", "jslt", "jsle")
ATOMICS = ("add", "or", "and", "xor", "xchg", "cmpxchg")

_EDGES32 = [0, 1, -1, 2, 3, 7, 31, 32, 63, 64, -(1 << 31), (1 << 31) - 1, 0x80, 0xFF, 0x8000, -0x8000]
_EDGES64 = [0, 1, 2, 3, (1 << 63), (1 << 64) - 1, (1 << 32) - 1, 1 << 32, (1 << 31), (1 << 64) - (1 << 31),
            0xFFFFFFFF80000000, 0x7FFFFFFFFFFFFFFF, 0x00000000FFFFFFFE, 0x123456789ABCDEF0, 0x80, 0xFF80,
            32, 40, 63, 64, 65, 100]  # the last: shift counts past 31 and 63


class _Draw:
    """The generator's choices, from a ``random.Random``: edge values (division by 0,
    INT_MIN / -1, sign bits, upper halves, shift counts past the width) are drawn about as
    often as uniform ones, because that is where implementations differ."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def register(self) -> int:
        return self.rng.choice(DATA)

    def imm32(self) -> int:
        rng = self.rng
        return rng.choice(_EDGES32) if rng.random() < 0.4 else rng.randint(-(1 << 31), (1 << 31) - 1)

    def value64(self) -> int:
        rng = self.rng
        return rng.choice(_EDGES64) if rng.random() < 0.4 else rng.getrandbits(64)

    def alu(self) -> tuple:
        rng = self.rng
        op, is32, by_register, imm = rng.choice(ALU_OPS), rng.random() < 0.5, rng.random() < 0.5, self.imm32()
        if op in ("lsh", "rsh", "arsh"):
            imm %= 32 if is32 else 64  # the verifier refuses out-of-range shift immediates
        if op in ("div", "sdiv", "mod", "smod") and imm == 0:
            imm = 3  # and division by the constant 0
        # Often an operand is set to an edge value just before: random values alone reach a
        # 0 divisor or a shift count past the width too rarely.
        primed = (rng.random() < 0.5, rng.choice(_EDGES64)) if rng.random() < 0.3 else None
        return ("alu", op, is32, self.register(), self.register() if by_register else None, imm, primed)

    def memory(self) -> tuple:
        rng = self.rng
        size, in_stack = rng.choice((1, 2, 4, 8)), rng.random() < 0.5
        if in_stack:  # the stack needs aligned accesses
            offset = STACK_LOW + size * rng.randrange(64 // size)
        else:  # the map value takes misaligned ones too, as on x86-64
            offset = rng.randint(SCRATCH, LOG - size)
        kind = rng.choice(("load", "load", "store", "store_imm", "signed_load"))
        if kind == "signed_load" and size == 8:
            kind = "load"
        return (kind, in_stack, size, offset, self.register(), self.imm32())

    def atomic(self) -> tuple:
        rng = self.rng
        size, in_stack = rng.choice((4, 8)), rng.random() < 0.5
        offset = (STACK_LOW if in_stack else SCRATCH) + size * rng.randrange(64 // size)
        return ("atomic", in_stack, size, offset, self.register(), rng.choice(ATOMICS), rng.random() < 0.5)

    def jump(self) -> tuple:
        rng = self.rng
        by_register = rng.random() < 0.5
        return ("jump", rng.choice(JUMP_OPS), rng.random() < 0.5, self.register(),
                self.register() if by_register else None, self.imm32(), rng.randint(0, 6))

    def other(self) -> tuple:
        rng = self.rng
        kind = rng.choice(("neg", "movsx", "swap", "lddw", "goto0"))
        if kind == "neg":
            return ("neg", rng.random() < 0.5, self.register())
        if kind == "movsx":
            return ("movsx", rng.random() < 0.5, self.register(), self.register(), rng.choice((8, 16, 32)))
        if kind == "swap":
            return ("swap", rng.choice(("le", "be", "bswap")), self.register(), rng.choice((16, 32, 64)))
        if kind == "lddw":
            return ("lddw", self.register(), self.value64())
        return ("goto0", rng.random() < 0.5)

    def packet(self) -> tuple:
        """Rarer: a packet load makes r1-r5 unreadable, which ends what they were computing."""
        rng = self.rng
        if rng.random() < 0.5:
            return ("ldabs", rng.choice((1, 2, 4)), rng.randint(0, 66))
        return ("ldind", rng.choice((1, 2, 4)), self.register(), rng.randint(0, 40), rng.randint(-8, 24))

    def body_instruction(self) -> tuple:
        kinds = (self.alu,) * 8 + (self.memory,) * 4 + (self.atomic,) * 2 + (self.jump,) * 3 + (self.other, self.packet)
        return self.rng.choice(kinds)()


def random_spec(rng: random.Random, min_size: int = 16, max_size: int = 64) -> tuple:
    """A whole program's description: initial register and stack values, and the body."""
    draw = _Draw(rng)
    return (
        [draw.value64() for _ in DATA],
        [draw.value64() for _ in range(8)],
        [draw.body_instruction() for _ in range(rng.randint(min_size, max_size))],
    )


def specs(min_size: int = 16, max_size: int = 64) -> st.SearchStrategy:
    """Programs as hypothesis draws them: each from a Random hypothesis seeds (generating a
    program draw by draw through hypothesis costs 30 ms; this, microseconds)."""
    return st.randoms(use_true_random=True).map(lambda rng: random_spec(rng, min_size, max_size))


class _Emitter:
    """Emits specs into a Program, keeping track of which data registers are readable."""

    def __init__(self, p: Program) -> None:
        self.p = p
        self.readable: Set[int] = set(DATA)
        self.incoming: Dict[str, List[Set[int]]] = {}
        self.logged = 0

    def read(self, register: int, seed: int = 0x5A5A) -> None:
        """Make ``register`` readable (set it to a value made from ``seed``) if a path may reach here without it."""
        if register not in self.readable:
            self.p.lddw(R[register], (seed * 0x9E3779B97F4A7C15 + register) & ((1 << 64) - 1))
            self.readable.add(register)

    def write(self, register: int) -> None:
        """``register`` was written: it is readable, and its value goes to the log."""
        self.readable.add(register)
        self.p.stxdw(R7, LOG + 8 * (self.logged % LOG_SLOTS), R[register])
        self.logged += 1

    def jump_to(self, label: str) -> None:
        self.incoming.setdefault(label, []).append(set(self.readable))

    def place(self, label: str) -> None:
        for readable in self.incoming.pop(label, []):
            self.readable &= readable
        self.p.label(label)


def build(initial: List[int], stack: List[int], body: list) -> Program:
    """The program for a spec drawn from :func:`specs`."""
    p = Program(isa="v4")
    p.mov(R6, R[1])
    p.stw(R10, -72, 0)
    p.mov(R[2], R10)
    p.add(R[2], -72)
    p.ld_map_fd(R[1], "out")
    p.call("map_lookup_elem")
    p.jeq(R[0], 0, "bail")
    p.mov(R7, R[0])
    for index, value in enumerate(stack):
        p.lddw(R[1], value)
        p.stxdw(R10, STACK_LOW + 8 * index, R[1])
    for register, value in zip(DATA, initial):
        p.lddw(R[register], value)
    e = _Emitter(p)
    pending: Dict[int, List[str]] = {}
    for index, spec in enumerate(body):
        for label in pending.pop(index, []):
            e.place(label)
        _emit(e, spec, index, pending)
    for label in [label for labels in pending.values() for label in labels]:
        e.place(label)
    _epilogue(e)
    return p


def _emit(e: _Emitter, spec: tuple, index: int, pending: Dict[int, List[str]]) -> None:
    p, kind = e.p, spec[0]
    if kind == "alu":
        _, op, is32, dst, src, imm, primed = spec
        regs = W if is32 else R
        if primed is not None:
            on_source, value = primed
            register = src if on_source and src is not None else dst
            p.lddw(R[register], value)
            e.readable.add(register)
        if op != "mov":
            e.read(dst, imm)
        if src is not None:
            e.read(src, imm + 1)
        getattr(p, op)(regs[dst], regs[src] if src is not None else imm)
        e.write(dst)
    elif kind in ("load", "signed_load", "store", "store_imm"):
        _memory_access(e, spec)
    elif kind == "atomic":
        _atomic_access(e, spec)
    elif kind == "jump":
        _, op, is32, dst, src, imm, skip = spec
        regs = W if is32 else R
        e.read(dst, imm)
        if src is not None:
            e.read(src, imm + 2)
        label = f"L{index}_{skip}"
        e.jump_to(label)
        getattr(p, op)(regs[dst], regs[src] if src is not None else imm, label)
        pending.setdefault(index + 1 + skip, []).append(label)
    else:
        _emit_other(e, spec)


def _emit_other(e: _Emitter, spec: tuple) -> None:
    p, kind = e.p, spec[0]
    if kind == "neg":
        _, is32, dst = spec
        e.read(dst)
        p.neg((W if is32 else R)[dst])
        e.write(dst)
    elif kind == "movsx":
        _, is32, dst, src, bits = spec
        e.read(src)
        p.movsx((W if is32 else R)[dst], (W if is32 else R)[src], 16 if is32 and bits == 32 else bits)
        e.write(dst)
    elif kind == "swap":
        _, how, dst, bits = spec
        e.read(dst)
        getattr(p, how)(R[dst], bits)
        e.write(dst)
    elif kind == "lddw":
        p.lddw(R[spec[1]], spec[2])
        e.write(spec[1])
    elif kind == "goto0":
        (p.gotol if spec[1] else p.ja)(0)
    elif kind == "ldabs":
        _, size, offset = spec
        getattr(p, {1: "ldabsb", 2: "ldabsh", 4: "ldabsw"}[size])(offset)
        _after_packet_load(e)
    else:  # ldind: a small index, so that the offset is never one of the negative SKF_* areas
        _, size, index, base, imm = spec
        p.mov(R[index], base)
        getattr(p, {1: "ldindb", 2: "ldindh", 4: "ldindw"}[size])(R[index], imm if base + imm >= 0 else -base)
        _after_packet_load(e)


def _after_packet_load(e: _Emitter) -> None:
    e.readable -= {1, 2, 3, 4, 5}  # the verifier treats a packet load like a helper call
    e.write(0)


_LOADS = {1: "ldxb", 2: "ldxh", 4: "ldxw", 8: "ldxdw"}
_SIGNED_LOADS = {1: "ldxsb", 2: "ldxsh", 4: "ldxsw"}
_STORES = {1: "stxb", 2: "stxh", 4: "stxw", 8: "stxdw"}
_STORES_IMM = {1: "stb", 2: "sth", 4: "stw", 8: "stdw"}


def _memory_access(e: _Emitter, spec: tuple) -> None:
    p = e.p
    kind, in_stack, size, offset, register, imm = spec
    base = R10 if in_stack else R7
    if kind == "load":
        getattr(p, _LOADS[size])((R if size == 8 else W)[register], base, offset)
        e.write(register)
    elif kind == "signed_load":
        getattr(p, _SIGNED_LOADS[size])(R[register], base, offset)
        e.write(register)
    elif kind == "store":
        e.read(register, imm)
        getattr(p, _STORES[size])(base, offset, (R if size == 8 else W)[register])
    else:
        value = imm if size == 8 else imm & ((1 << (8 * size)) - 1)
        getattr(p, _STORES_IMM[size])(base, offset, value)


def _atomic_access(e: _Emitter, spec: tuple) -> None:
    p = e.p
    _, in_stack, size, offset, register, operation, fetch = spec
    base = R10 if in_stack else R7
    regs = W if size == 4 else R
    e.read(register)
    if operation == "cmpxchg":
        e.read(0)
        p.cmpxchg(base, offset, regs[register])
        e.write(0)
    elif operation == "xchg":
        p.xchg(base, offset, regs[register])
        e.write(register)
    else:
        getattr(p, f"atomic_{operation}")(base, offset, regs[register], fetch=fetch)
        if fetch:
            e.write(register)


def _epilogue(e: _Emitter) -> None:
    p = e.p
    e.read(0)
    for slot, register in enumerate(DATA):
        if register in e.readable:
            p.stxdw(R7, 8 * slot, R[register])
    for index in range(8):
        p.ldxdw(R[1], R10, STACK_LOW + 8 * index)
        p.stxdw(R7, 64 + 8 * index, R[1])
    p.exit()
    p.label("bail")
    p.mov(R[0], 0)
    p.exit()


def initial_value(seed: int) -> bytes:
    """The map value both runs start from: registers and stack areas zero, scratch from ``seed``."""
    scratch = bytes((seed * 131 + i * 29) & 0xFF for i in range(LOG - SCRATCH))
    return bytes(SCRATCH) + scratch + bytes(MAP_VALUE_SIZE - LOG)
