"""Hostile input for every parser: valid inputs, mutations of them, and the one check per parser.

Shared by the property tests (which drive these generators with hypothesis' ``st.randoms()``,
so failures shrink and replay) and ``bench/fuzz.py`` (which runs them a million times).

Each ``check_*`` feeds one input to a parser through its public API and returns an
:class:`Outcome`: whether the parser's entry point accepted the input as a whole, and the
names of the parser's own errors its calls raised (one per failed call: some calls ask for
what is absent on purpose). Any other exception propagates: that is the defect being looked
for. A valid input that does not read back as it was written raises :class:`RoundTripMismatch`.
"""

from __future__ import annotations

import array
import random
import re
import struct
from typing import Callable, List, NamedTuple, Optional

from openat.asm import AsmError, DecodeError, Instruction, assemble, decode, disassemble, iter_decode
from openat.asm.instruction import encode
from openat.btf import Btf, BtfError, BtfKind, BtfType, Member, Param
from openat.syscalls.ringbuf import RecordWalker, RingBufferCorrupt, record_span
from openat.uapi import BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT

from .asm.asm_forms import FORMS_LIST, make
from .btf.builder import BtfBuilder

__all__ = [
    "Outcome",
    "Ring",
    "RoundTripMismatch",
    "check_btf",
    "check_code",
    "check_ring",
    "check_text",
    "mutate_bytes",
    "mutate_text",
    "random_ring",
    "valid_btf",
    "valid_program",
    "valid_ring",
]


class Outcome(NamedTuple):
    """What a parser made of one input."""

    accepted: bool  # assemble(), decode(), Btf() with len(), or drain() took it
    errors: List[str]  # the parser's own errors, by type name, one per failed call


class RoundTripMismatch(AssertionError):
    """A valid input (or one a parser accepted) did not read back as it was."""


def _expect(condition: bool, what: Callable[[], str]) -> None:
    """Raise RoundTripMismatch(what()) unless ``condition`` (the message is only made then)."""
    if not condition:
        raise RoundTripMismatch(what())


# --------------------------------------------------------------------------- mutations

# What a hostile edit inserts into text: the assembler's own syntax, numbers at and past
# every limit, other scripts' digits and spaces, comment markers, control characters.
_TEXT_PIECES = [
    "0", "1", "9", "0x", "0X", "ff", "-", "+", " ", "\t", "\n", "r", "w", "r1", "r10", "r11", "w0",
    "=", "+=", "s>>=", "(", ")", "*(", "u8", "u64", "s32", "*)", "[", "]", "skb", "ll", ":", "L0",
    "goto", "gotol", "call", "pc", "kfunc", "exit", "if", "lock", "bswap", "be16", "atomic_fetch_add",
    "cmpxchg_64", "ld_pseudo", ",", "/*", "*/", "#", "//", ".text", ".byte",
    "\uff11", "\u0665", "\u00b2", "\u00a0", "\u200b", "\u3164", "\u2028", "\x00", "\x1b[31m", "\u00e9",
    "2147483648", "4294967296", "18446744073709551616", "9223372036854775808", "32768", "0x8000",
    "1" * 30, "7" * 5000, "0x" + "f" * 17, "0x" + "0" * 40 + "1",
]


# What replaces a number: past every limit (Python's int() refuses 4,300 digits), other
# scripts' digits, separators int() would accept, whitespace inside.
_HOSTILE_NUMBERS = [
    "7" * 5000, "0x" + "f" * 5000, "0" * 30 + "1", "2147483648", "-2147483649", "4294967296",
    "18446744073709551616", "-9223372036854775809", "１", "٥", "1²", "𝟙",
    "1_000", "0x_1", "	5", " 0x5", "	05", "5 ", "0x", "+-1", "--1",
]
_NUMBER = re.compile(r"0x[0-9a-fA-F]+|[0-9]+")


def mutate_text(rng: random.Random, text: str) -> str:
    """``text`` after one to four random edits: insertions, deletions, replacements, repeats,
    numbers swapped for hostile ones."""
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(text))
        choice = rng.random()
        numbers = list(_NUMBER.finditer(text)) if choice < 0.25 else []
        if numbers:
            number = rng.choice(numbers)
            text = text[: number.start()] + rng.choice(_HOSTILE_NUMBERS) + text[number.end() :]
        elif choice < 0.45:
            piece = rng.choice(_TEXT_PIECES) if rng.random() < 0.9 else chr(rng.randint(0, 0x10FFFF))
            if 0xD800 <= ord(piece[0]) <= 0xDFFF:
                piece = "\ufffd"  # a lone surrogate is not text
            text = text[:at] + piece + text[at:]
        elif choice < 0.7:
            text = text[:at] + text[at + rng.randint(1, 8) :]
        elif choice < 0.9:
            text = text[:at] + rng.choice(_TEXT_PIECES) + text[at + 1 :]
        else:  # a stretch repeated: long lines, runs of comments or digits
            end = min(len(text), at + rng.randint(1, 6))
            text = text[:at] + text[at:end] * rng.choice((2, 10, 200)) + text[end:]
    return text


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """``data`` after one to four random edits: bit flips, byte changes, cuts, insertions."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if buf and choice < 0.4:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif buf and choice < 0.65:
            buf[rng.randrange(len(buf))] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif buf and choice < 0.75 and len(buf) >= 4:  # a whole word: a length, a type id
            at = rng.randrange(len(buf) - 3)
            word = rng.choice((0, 1, 2, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, rng.randrange(64), rng.getrandbits(32)))
            buf[at : at + 4] = struct.pack("=I", word)
        elif choice < 0.85:
            del buf[rng.randrange(len(buf) + 1) :]
        else:
            at = rng.randrange(len(buf) + 1)
            buf[at:at] = rng.randbytes(rng.randint(1, 16))
    return bytes(buf)


# --------------------------------------------------------------------------- assembler, decoder

def valid_program(rng: random.Random, max_instructions: int = 12) -> List[Instruction]:
    """Random valid instructions of every form, operands anywhere in their fields' ranges."""
    program = []
    for _ in range(rng.randint(1, max_instructions)):
        form = rng.choice(FORMS_LIST)
        values = {}
        for field, (low, high) in form.free.items():
            values[field] = rng.choice((low, high, 0 if low <= 0 <= high else low, rng.randint(low, high)))
        program.append(make(form, values))
    return program


def check_text(text: str, expected: Optional[bytes] = None) -> Outcome:
    """Assemble ``text``: only AsmError; what assembles reassembles from its disassembly.

    ``expected``: the bytes the text was disassembled from, which it must assemble to.
    """
    try:
        code = assemble(text)
    except AsmError as error:
        return Outcome(False, [type(error).__name__])
    if expected is not None:
        _expect(code == expected, lambda: f"assembled {code.hex()}, expected {expected.hex()}")
    again = assemble(disassemble(code))
    _expect(again == code, lambda: f"{code.hex()} reassembled as {again.hex()}")
    return Outcome(True, [])


def _buffers(data: bytes, rng: random.Random) -> List[object]:
    """``data`` in a few kinds of buffer (each holding the same bytes), picked at random."""
    made: List[Callable[[], object]] = [
        lambda: data,
        lambda: bytearray(data),
        lambda: memoryview(data),
        lambda: memoryview(bytes(b for pair in zip(data, bytes(len(data))) for b in pair))[::2],
        lambda: array.array("B", data),
    ]
    if data and len(data) % 8 == 0:
        made.append(lambda: memoryview(data).cast("Q"))
        made.append(lambda: memoryview(data).cast("B", (len(data) // 8, 8)))
    return [rng.choice(made)()]


def check_code(data: bytes, rng: random.Random, expected: Optional[List[Instruction]] = None) -> Outcome:
    """Decode ``data`` (as some bytes-like object, at some offsets): only DecodeError.

    What decodes disassembles and reassembles to the same bytes; ``expected``: the
    program the bytes were encoded from.
    """
    errors: List[str] = []
    accepted = False
    for buffer in _buffers(data, rng):
        try:
            program = decode(buffer)
            text = disassemble(buffer, labels=rng.random() < 0.5, helper_comments=rng.random() < 0.5)
        except DecodeError as error:
            errors.append(type(error).__name__)
        else:
            accepted = True
            _expect(encode(program) == data, lambda: f"{data.hex()} decoded and encoded as {encode(program).hex()}")
            _expect(assemble(text) == data, lambda: f"{data.hex()} disassembled and reassembled differently")
            _expect([slot for slot, _ in iter_decode(buffer)] == _slots(program), lambda: "iter_decode slots")
            if expected is not None:
                _expect(program == expected, lambda: f"{data.hex()} decoded as {program}, expected {expected}")
        offset = rng.choice((0, 8, -8, -1, len(data), len(data) - 8, rng.randint(-64, len(data) + 64), 1 << 70))
        try:
            Instruction.decode(buffer, offset)  # type: ignore[arg-type]
        except DecodeError as error:
            errors.append(type(error).__name__)
    return Outcome(accepted, errors)


def _slots(program: List[Instruction]) -> List[int]:
    slots, slot = [], 0
    for ins in program:
        slots.append(slot)
        slot += ins.slots
    return slots


# --------------------------------------------------------------------------- BTF

_NAMES = ["", "", "a", "b", "pt_regs", "task_struct", "comm", "x" * 40, "\u00e9t\u00e9"]


def valid_btf(rng: random.Random, max_types: int = 30) -> tuple[bytes, List[BtfType]]:
    """A random valid BTF blob of every kind, and the types a reader must decode from it.

    References that lookups follow (modifiers, arrays, members, params) point at earlier
    types or void, so the graph has no cycles; pointers point anywhere, as in real BTF.
    """
    b = BtfBuilder()
    count = rng.randint(1, max_types)
    expected: List[BtfType] = []
    for type_id in range(1, count + 1):
        expected.append(_add_random_type(b, rng, type_id, count))
    return b.blob(), expected


def _add_random_type(b: BtfBuilder, rng: random.Random, type_id: int, count: int) -> BtfType:
    name = rng.choice(_NAMES)
    earlier = rng.randint(0, type_id - 1)  # 0: void
    kind = BtfKind(rng.randint(1, 19))
    if kind in (BtfKind.INT, BtfKind.FLOAT):
        size = rng.choice((1, 2, 4, 8, 16))
        b.add(name, kind, size, extra=struct.pack("=I", size * 8) if kind == BtfKind.INT else b"")
        return BtfType(type_id, kind, name, size=size)
    if kind in (BtfKind.STRUCT, BtfKind.UNION):
        members, items = [], []
        kflag = rng.random() < 0.5
        for _ in range(rng.randint(0, 5)):
            member_name = rng.choice(_NAMES)
            member_type = rng.randint(0, type_id - 1)
            bits = rng.randint(0, 255) if kflag else 0
            offset = rng.randint(0, (1 << 24) - 1) if kflag else rng.getrandbits(32)
            items.append(b.member(member_name, member_type, offset, bits))
            members.append(Member(member_name, member_type, offset, bits))
        size = rng.getrandbits(32)
        b.add(name, kind, size, items, kflag=kflag)
        return BtfType(type_id, kind, name, size=size, members=tuple(members))
    if kind in (BtfKind.ENUM, BtfKind.ENUM64):
        width = 2 if kind == BtfKind.ENUM else 3
        items = [(b.s(rng.choice(_NAMES)), *(rng.getrandbits(32) for _ in range(width - 1))) for _ in range(rng.randint(0, 4))]
        size = 4 if kind == BtfKind.ENUM else 8
        b.add(name, kind, size, items)
        return BtfType(type_id, kind, name, size=size)
    if kind == BtfKind.ARRAY:
        nelems = rng.choice((0, 1, 16, rng.getrandbits(32)))
        b.add(name, kind, 0, extra=struct.pack("=III", earlier, rng.randint(0, count), nelems))
        return BtfType(type_id, kind, name, type_id=earlier, nelems=nelems)
    if kind == BtfKind.FUNC_PROTO:
        params = [Param(rng.choice(_NAMES), rng.randint(0, type_id - 1)) for _ in range(rng.randint(0, 4))]
        b.add(name, kind, earlier, [(b.s(p.name), p.type_id) for p in params])
        return BtfType(type_id, kind, name, type_id=earlier, params=tuple(params))
    if kind == BtfKind.FUNC:  # the linkage is in vlen, and no item follows
        linkage = rng.randint(0, 2)
        b.types += struct.pack("=III", b.s(name), (kind << 24) | linkage, earlier)
        b.count += 1
        return BtfType(type_id, kind, name, type_id=earlier, linkage=linkage)
    if kind == BtfKind.VAR:
        linkage = rng.randint(0, 2)
        b.add(name, kind, earlier, extra=struct.pack("=I", linkage))
        return BtfType(type_id, kind, name, type_id=earlier, linkage=linkage)
    if kind == BtfKind.DATASEC:
        size = rng.getrandbits(32)
        b.add(name, kind, size, [(rng.randint(0, count), rng.getrandbits(32), rng.getrandbits(32)) for _ in range(rng.randint(0, 3))])
        return BtfType(type_id, kind, name, size=size)
    if kind == BtfKind.DECL_TAG:
        b.add(name, kind, earlier, extra=struct.pack("=i", rng.randint(-1, 5)))
        return BtfType(type_id, kind, name, type_id=earlier)
    if kind == BtfKind.PTR:
        target = rng.randint(0, count)
        b.add(name, kind, target)
        return BtfType(type_id, kind, name, type_id=target)
    # FWD and the modifiers: TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG
    b.add(name, kind, earlier, kflag=kind == BtfKind.FWD and rng.random() < 0.5)
    return BtfType(type_id, kind, name, type_id=earlier)


def check_btf(blob: bytes, expected: Optional[List[BtfType]] = None, max_ids: int = 64) -> Outcome:
    """Read ``blob`` through every lookup of :class:`Btf`: only BtfError, and no endless walk.

    ``expected``: the types the blob was built from, which every lookup must agree with.
    """
    errors: List[str] = []

    def attempt(call: Callable[[], object]) -> object:
        try:
            return call()
        except BtfError as error:
            errors.append(type(error).__name__)
            return None

    btf = attempt(lambda: Btf(blob))
    if btf is None:
        return Outcome(False, errors)
    count = attempt(lambda: len(btf))
    if expected is not None:
        _expect(count == len(expected), lambda: f"{count} types read, {len(expected)} written")
    last = min(count if isinstance(count, int) else max_ids, max_ids)
    for type_id in range(0, last + 2):  # with void and one past the end, which must fail
        _check_one_type(btf, type_id, attempt, expected)
    return Outcome(isinstance(count, int), errors)


def _check_one_type(btf: Btf, type_id: int, attempt: Callable[[Callable[[], object]], object],
                    expected: Optional[List[BtfType]]) -> None:
    decoded = attempt(lambda: btf.type(type_id))
    attempt(lambda: btf.raw_type(type_id))
    kind = attempt(lambda: btf.kind(type_id))
    name = attempt(lambda: btf.name_of(type_id))
    attempt(lambda: btf.resolve(type_id))
    attempt(lambda: btf.size_of(type_id))
    if name:
        found = attempt(lambda: btf.find_all(name))
        attempt(lambda: btf.find(name))
        if kind == BtfKind.FUNC:
            attempt(lambda: btf.func_params(name))
        if expected is not None:
            ids = [t.id for t in expected if t.name == name]
            _expect(found == ids, lambda: f"find_all({name!r}) is {found}, expected {ids}")
    if isinstance(decoded, BtfType):
        for member in decoded.members:
            if member.name:
                attempt(lambda: btf.member(type_id, member.name))
                attempt(lambda: btf.member_offset(type_id, f"{member.name}[1]"))
                attempt(lambda: btf.member(type_id, f"{member.name}.{member.name}"))
    if expected is not None and 1 <= type_id <= len(expected):
        want = expected[type_id - 1]
        _expect(decoded == want, lambda: f"type {type_id} read as {decoded}, written as {want}")
        _expect(kind == want.kind and name == want.name, lambda: f"type {type_id}: kind/name")
        first = {}
        for member in want.members:
            first.setdefault(member.name, member)
        for member_name, member in first.items():
            if member_name:
                got = attempt(lambda: btf.member(type_id, member_name))
                _expect(got == (member, member.bit_offset), lambda: f"member {member_name!r} of {type_id}: {got}")


# --------------------------------------------------------------------------- ring buffer

class Ring(NamedTuple):
    """A ring-buffer data area and the positions to walk it between, with what a walk must yield."""

    data: bytes  # size bytes, or 2 * size when mapped twice
    size: int
    consumer: int
    producer: int
    expected: Optional[List[bytes]]  # committed payloads up to the first busy record (None: unknown)
    end: Optional[int]  # where the walk must stop


def valid_ring(rng: random.Random) -> Ring:
    """Records as the kernel writes them (wrapping, discarded, one busy at the end at times)."""
    size = 1 << rng.randint(3, 12)
    mem = bytearray(size)
    consumer = 8 * rng.randrange(4 * size // 8)  # free-running: positions past the first lap
    pos = consumer
    expected: List[bytes] = []
    end: Optional[int] = None
    while rng.random() < 0.9:
        payload = rng.randbytes(rng.randint(0, size // 3))
        span = record_span(len(payload))
        if pos + span > consumer + size:
            break
        busy, discard = rng.random() < 0.05, rng.random() < 0.15
        header = len(payload) | (BPF_RINGBUF_BUSY_BIT if busy else 0) | (BPF_RINGBUF_DISCARD_BIT if discard else 0)
        _write_wrapped(mem, pos, struct.pack("=II", header, 0) + payload)
        if busy and end is None:
            end = pos
        if end is None and not discard:
            expected.append(payload)
        pos += span
    data = bytes(mem) * (2 if rng.random() < 0.5 else 1)
    return Ring(data, size, consumer, pos, expected, pos if end is None else end)


def _write_wrapped(mem: bytearray, pos: int, data: bytes) -> None:
    size = len(mem)
    for i, byte in enumerate(data):
        mem[(pos + i) % size] = byte


def random_ring(rng: random.Random, ring: Ring) -> Ring:
    """``ring`` corrupted: mutated bytes, or positions anywhere (unaligned, behind, far ahead)."""
    data = ring.data
    consumer, producer = ring.consumer, ring.producer
    choice = rng.random()
    if choice < 0.5:
        mutated = bytearray(mutate_bytes(rng, data[: ring.size]).ljust(ring.size, b"\0")[: ring.size])
        data = bytes(mutated) * (len(data) // ring.size)
    elif choice < 0.8:
        consumer += rng.choice((1, 3, 4, -8, 8, ring.size, -ring.size, rng.randint(-100, 100)))
    else:
        producer += rng.choice((1, 4, -8, 8, ring.size, 2 * ring.size, -consumer - 8, rng.randint(-100, 100)))
    return Ring(data, ring.size, consumer, producer, None, None)


def check_ring(ring: Ring, rng: random.Random) -> Outcome:
    """Walk ``ring`` with drain (views and in place) and walk(): only RingBufferCorrupt, every
    record inside the data area; a valid ring yields exactly its committed payloads."""
    errors: List[str] = []
    walker = RecordWalker(ring.data, ring.size)
    area = len(walker.data)
    limit = rng.choice((None, None, 1, 2, 1000))
    views: List[bytes] = []
    in_place: List[bytes] = []

    def take_in_place(buffer: memoryview, offset: int, length: int) -> None:
        if buffer is walker.data:
            _expect(0 <= offset and offset + length <= area, lambda: f"record at {offset}+{length} outside {area} bytes")
        in_place.append(bytes(buffer[offset : offset + length]))

    outcomes = []
    for run in (lambda: walker.drain(ring.consumer, ring.producer, lambda record: views.append(bytes(record)), limit),
                lambda: walker.drain(ring.consumer, ring.producer, take_in_place, limit, in_place=True),
                lambda: [bytes(record) for _, record in walker.walk(ring.consumer, ring.producer)]):
        try:
            outcomes.append(run())
        except RingBufferCorrupt as error:
            errors.append(type(error).__name__)
            outcomes.append(None)
    if outcomes[0] is not None and outcomes[1] is not None:
        _expect(outcomes[0] == outcomes[1] and views == in_place, lambda: "drain with views and in place disagree")
    if ring.expected is not None:
        _expect(not errors, lambda: f"a valid ring raised {errors}")
        wanted = ring.expected if limit is None else ring.expected[:limit]
        _expect(views == wanted, lambda: f"payloads {views}, expected {wanted}")
        _expect(outcomes[2] == ring.expected, lambda: "walk() payloads")
        if limit is None:
            _expect(outcomes[0][0] == ring.end, lambda: f"stopped at {outcomes[0][0]}, expected {ring.end}")
    return Outcome(outcomes[0] is not None, errors)
