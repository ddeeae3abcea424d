"""Corrupt BTF: each fault is a BtfError naming the type id and what is wrong, never another exception."""

from __future__ import annotations

import struct
from typing import Callable

import pytest

from openat.btf import MAX_DEPTH, Btf, BtfError, BtfKind

from .builder import BtfBuilder

INT32 = struct.pack("=I", 32)


def _int_blob() -> bytearray:
    b = BtfBuilder()
    b.add("int", BtfKind.INT, 4, extra=INT32)
    return bytearray(b.blob())


def _header_field(blob: bytearray, index: int, value: int) -> bytes:
    fields = list(struct.unpack_from("=HBBIIIII", blob))
    fields[index] = value
    struct.pack_into("=HBBIIIII", blob, 0, *fields)
    return bytes(blob)


@pytest.mark.parametrize(
    "blob, problem",
    [
        (_header_field(_int_blob(), 5, 14), "type section length 14 is not a multiple of 4"),  # once a TypeError
        (_header_field(_int_blob(), 3, 8), "BTF header length 8 is shorter than the header"),
        (_header_field(_int_blob(), 1, 2), "BTF version 2"),
        (_header_field(_int_blob(), 4, 1 << 20), "out of bounds"),
        (b"\x9f\xeb", "BTF blob too short: 2 bytes"),
        ("not bytes", "BTF must be a bytes-like object"),
        (12, "BTF must be a bytes-like object"),  # bytes(12) would be twelve zeros
    ],
)
def test_a_bad_header_is_a_btf_error(blob: object, problem: str) -> None:
    with pytest.raises(BtfError) as info:
        Btf(blob)  # type: ignore[arg-type]
    assert problem in str(info.value)


@pytest.mark.parametrize("kind", [0, 20, 25, 31])
def test_an_unknown_kind_names_the_type(kind: int) -> None:
    b = BtfBuilder()
    b.add("int", BtfKind.INT, 4, extra=INT32)
    b.add("odd", kind, 0)  # type: ignore[arg-type]
    b.add("after", BtfKind.PTR, 1)
    for lookup in (len, lambda btf: btf.kind(2), lambda btf: btf.type(2), lambda btf: btf.find("after")):
        with pytest.raises(BtfError, match=f"type id 2: unknown kind {kind} \\(this reader knows 1..19\\)"):
            lookup(Btf(b.blob()))  # once a ValueError from BtfKind()


@pytest.mark.parametrize("count", [1, 2, 63, 64, 65, 128])
def test_a_vlen_running_past_the_section_names_the_type(count: int) -> None:
    # At the end of a 64-record stride the walk reads nothing after the
    # record: it once left the index half-built and len() failed an assert.
    b = BtfBuilder()
    for _ in range(count - 1):
        b.add("", BtfKind.PTR, 0)
    b.add("s", BtfKind.STRUCT, 4, [b.member("a", 1, 0)])
    blob = bytearray(b.blob())
    info_at = 24 + len(b.types) - 12 - 12 + 4  # the struct's info word: its 3 words, 1 member of 3
    struct.pack_into("=I", blob, info_at, (BtfKind.STRUCT << 24) | 5000)
    btf = Btf(bytes(blob))
    for lookup in (len, lambda btf: btf.type(count), lambda btf: btf.find("s"), len):
        with pytest.raises(BtfError, match=f"type id {count} \\(STRUCT, vlen 5000\\) runs 59988 bytes past the end"):
            lookup(btf)


def test_a_record_header_cut_by_the_section_end_names_the_type() -> None:
    b = BtfBuilder()
    b.add("int", BtfKind.INT, 4, extra=INT32)
    b.types += struct.pack("=II", 0, BtfKind.PTR << 24)  # 8 of a PTR's 12 bytes
    with pytest.raises(BtfError, match="type id 2: the type section ends 8 bytes into its 12-byte header"):
        len(Btf(b.blob()))


def _cycles() -> dict[str, tuple[Callable[[Btf], object], str]]:
    return {
        "anonymous member of its own struct": (lambda btf: btf.member("s", "x"), "type id 1: an anonymous member is of type id 1"),
        "anonymous members in a ring": (lambda btf: btf.member("ring", "x"), "(a cycle)"),
        "typedef of itself": (lambda btf: btf.size_of(3), f"type id 3: more than {MAX_DEPTH} typedef"),
        "array of itself": (lambda btf: btf.size_of(4), f"type id 4: arrays nested more than {MAX_DEPTH} deep"),
        "struct through a typedef of itself": (lambda btf: btf.member("t", "a.b"), "more than"),
        "member path through a typedef loop": (lambda btf: btf.member_offset(5, "x"), "more than"),
    }


def _cyclic_btf() -> Btf:
    b = BtfBuilder()
    b.add("s", BtfKind.STRUCT, 4, [b.member("", 1, 0)])  # 1: holds itself
    b.add("ring", BtfKind.STRUCT, 4, [b.member("", 6, 0)])  # 2 -> 6 -> 2
    b.add("t", BtfKind.TYPEDEF, 3)  # 3: typedef of itself
    b.add("", BtfKind.ARRAY, 0, extra=struct.pack("=III", 4, 4, 2))  # 4: array of itself
    b.add("", BtfKind.CONST, 5)  # 5: const of itself
    b.add("", BtfKind.UNION, 4, [b.member("", 2, 0)])  # 6
    return Btf(b.blob())


@pytest.mark.parametrize("name", list(_cycles()))
def test_cycles_in_the_type_graph_are_errors_not_recursion(name: str) -> None:
    lookup, problem = _cycles()[name]
    with pytest.raises(BtfError) as info:
        lookup(_cyclic_btf())  # once a RecursionError (or an endless loop)
    assert problem in str(info.value)


def test_shared_anonymous_members_are_searched_once() -> None:
    # 40 levels, each holding two anonymous members of the level below: 2**40 paths
    # if each were searched, 40 types when a type searched in vain is not searched again.
    b = BtfBuilder()
    below = b.add("int", BtfKind.INT, 4, extra=INT32)
    below = b.add("leaf", BtfKind.STRUCT, 4, [b.member("leaf_field", below, 0)])
    for level in range(40):
        below = b.add(f"level{level}", BtfKind.STRUCT, 8, [b.member("", below, 0), b.member("", below, 32)])
    btf = Btf(b.blob())
    assert btf.member_offset("level39", "leaf_field") == 0
    with pytest.raises(BtfError, match="has no member 'absent'"):
        btf.member("level39", "absent")


def test_anonymous_members_nested_too_deep_are_an_error() -> None:
    b = BtfBuilder()
    below = b.add("int", BtfKind.INT, 4, extra=INT32)
    for level in range(MAX_DEPTH + 2):
        below = b.add(f"level{level}", BtfKind.STRUCT, 4, [b.member("", below, 0)] if level else [b.member("x", below, 0)])
    with pytest.raises(BtfError, match=f"anonymous members nested more than {MAX_DEPTH} deep"):
        Btf(b.blob()).member(below, "x")


def test_an_over_long_array_index_is_a_btf_error() -> None:
    b = BtfBuilder()
    b.add("int", BtfKind.INT, 4, extra=INT32)
    b.add("s", BtfKind.STRUCT, 4, [b.member("a", 1, 0)])
    with pytest.raises(BtfError, match="is not NAME\\[INDEX\\]"):
        Btf(b.blob()).member("s", "a[" + "1" * 5000 + "]")  # once int()'s ValueError
