"""Decoding any bytes-like object at any offset: the instructions, or DecodeError and nothing else."""

from __future__ import annotations

import array
import ctypes
import mmap
from typing import Callable

import pytest

from openat.asm import DecodeError, Instruction, assemble, decode, disassemble, iter_decode

CODE = assemble("r0 = 1\nr1 = 2 ll\nexit")  # 4 slots: mov, lddw (two), exit
TEXT = disassemble(CODE)


def _released() -> memoryview:
    view = memoryview(CODE)
    view.release()
    return view


def _closed_mmap() -> mmap.mmap:
    mapping = mmap.mmap(-1, len(CODE))
    mapping.close()
    return mapping


def _mapped() -> mmap.mmap:
    mapping = mmap.mmap(-1, len(CODE))
    mapping.write(CODE)
    return mapping


# The same bytes, in every kind of buffer: each decodes to the same program.
SAME_BYTES: dict[str, Callable[[], object]] = {
    "bytearray": lambda: bytearray(CODE),
    "memoryview": lambda: memoryview(CODE),
    "format Q": lambda: memoryview(CODE).cast("Q"),
    "two-dimensional": lambda: memoryview(CODE).cast("B", (4, 8)),
    "every other byte": lambda: memoryview(bytes(b for pair in zip(CODE, bytes(32)) for b in pair))[::2],
    "array.array": lambda: array.array("B", CODE),
    "array of u64": lambda: array.array("Q", memoryview(CODE).cast("Q").tolist()),
    "ctypes array": lambda: (ctypes.c_char * len(CODE)).from_buffer_copy(CODE),
    "mmap": _mapped,
}


@pytest.mark.parametrize("name", list(SAME_BYTES))
def test_every_bytes_like_object_decodes_as_its_bytes(name: str) -> None:
    data = SAME_BYTES[name]()
    assert disassemble(data) == TEXT
    assert decode(data) == decode(CODE)
    assert [slot for slot, _ in iter_decode(data)] == [0, 1, 3]
    assert Instruction.decode(data, 8) == decode(CODE)[1]


@pytest.mark.parametrize(
    "data, problem",
    [
        ("b701000005000000", "expected a bytes-like object, got str"),
        (None, "got NoneType"),
        (5, "got int"),
        ([0x95] + [0] * 7, "got list"),
        (_released(), "released"),
        (_closed_mmap(), "closed"),
        (memoryview(bytes(12)), "not a multiple of 8"),
        (memoryview(bytes(48))[::3], "unknown opcode 0x00"),  # 16 bytes, every third
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, str) or " " in value else value[:12],
)
def test_what_is_not_a_program_is_a_decode_error(data: object, problem: str) -> None:
    whole_programs = (disassemble, decode, lambda d: list(iter_decode(d)))
    for call in whole_programs if "multiple of 8" in problem else (*whole_programs, Instruction.decode):
        with pytest.raises(DecodeError) as info:
            call(data)
        assert problem in str(info.value), (call, str(info.value))


@pytest.mark.parametrize(
    "offset, problem",
    [
        (-8, "byte -8: offset is negative"),  # once decoded the last slot, as Python indexing would
        (-3, "byte -3: offset is negative"),  # once a struct.error
        (-(1 << 70), "offset is negative"),
        (32, "byte 32: offset is at or past the end of the code (32 bytes)"),
        (1 << 70, "past the end"),
        (28, "truncated instruction (4 bytes left, 8 needed)"),
        (16, "slot 2 (00 00 00 00 00 00 00 00): unknown opcode 0x00"),  # inside the lddw
        (1.0, "offset must be an int, got float"),
        ("8", "offset must be an int, got str"),
        (None, "offset must be an int, got NoneType"),
    ],
)
def test_instruction_decode_rejects_offsets_outside_the_code(offset: object, problem: str) -> None:
    with pytest.raises(DecodeError) as info:
        Instruction.decode(CODE, offset)  # type: ignore[arg-type]
    assert problem in str(info.value)


def test_instruction_decode_reads_the_lddw_at_its_offset() -> None:
    assert Instruction.decode(CODE, 8).imm == 2
    assert Instruction.decode(memoryview(CODE)[8:], 0).imm == 2
