"""CO-RE resolution on hand-built BTF: libbpf's rules one at a time (the kernel-backed checks are in tests/elf)."""

from __future__ import annotations

import struct

import pytest

from openat.btf import Btf, BtfKind
from openat.btf.core import CandidateCache, CoreError, CoreKind, essential_name, find_candidates, parse_spec, resolve
from openat.btf.ext import CoreRelo

from .builder import BtfBuilder

INT_SIGNED = 1 << 24


def _int(b: BtfBuilder, name: str = "int", size: int = 4, signed: bool = True) -> int:
    return b.add(name, BtfKind.INT, size, extra=struct.pack("=I", (INT_SIGNED if signed else 0) | size * 8))


def _array(b: BtfBuilder, element: int, index: int, count: int) -> int:
    return b.add("", BtfKind.ARRAY, 0, extra=struct.pack("=III", element, index, count))


def _local() -> tuple[Btf, dict]:
    """struct foo___v1 { int a; struct { int b; }; char c[4]; unsigned flags:3; int flex[]; }; enum e___v { X = 1 }."""
    b = BtfBuilder()
    ids = {}
    ids["int"] = _int(b)
    ids["uint"] = _int(b, "unsigned int", signed=False)
    ids["char"] = _int(b, "char", 1)
    ids["anon"] = b.add("", BtfKind.STRUCT, 4, [b.member("b", ids["int"], 0)])
    ids["c"] = _array(b, ids["char"], ids["int"], 4)
    ids["flex"] = _array(b, ids["int"], ids["int"], 0)
    ids["foo"] = b.add("foo___v1", BtfKind.STRUCT, 16, [
        b.member("a", ids["int"], 0), b.member("", ids["anon"], 32), b.member("c", ids["c"], 64),
        b.member("flags", ids["uint"], 96, bits=3), b.member("flex", ids["flex"], 128),
    ], kflag=True)
    ids["e"] = b.add("e___v", BtfKind.ENUM, 4, [(b.s("X"), 1)])
    ids["missing"] = b.add("nothere", BtfKind.STRUCT, 4, [b.member("z", ids["int"], 0)])
    ids["anonymous_root"] = b.add("", BtfKind.STRUCT, 4, [b.member("q", ids["int"], 0)])
    for text in ("0", "0:0", "0:2", "0:1:0", "0:2:2", "0:3", "0:4:5", "0:9", "0:2:9"):
        b.s(text)
    return Btf(b.blob()), ids


def _target(second_foo: bool = False, shifted: bool = False) -> Btf:
    """struct foo { long pad; int a; union { int b; }; char c[8]; unsigned x:5, flags:3; int flex[]; }; enum e { Y = 5, X = 7 }."""
    b = BtfBuilder()
    int_ = _int(b)
    uint = _int(b, "unsigned int", signed=False)
    long_ = _int(b, "long", 8)
    char = _int(b, "char", 1)
    anon = b.add("", BtfKind.UNION, 4, [b.member("b", int_, 0)])
    c = _array(b, char, int_, 8)
    flex = _array(b, int_, int_, 0)
    members = lambda extra: [  # noqa: E731
        b.member("pad", long_, 0), b.member("a", int_, 64 + extra), b.member("", anon, 96 + extra), b.member("c", c, 128 + extra),
        b.member("x", uint, 192 + extra, bits=5), b.member("flags", uint, 197 + extra, bits=3), b.member("flex", flex, 224 + extra),
    ]
    b.add("foo", BtfKind.STRUCT, 28, members(0), kflag=True)
    if second_foo:
        b.add("foo___dup", BtfKind.STRUCT, 36, members(32 if shifted else 0), kflag=True)
    b.add("e", BtfKind.ENUM64, 8, [(b.s("Y"), 5, 0), (b.s("X"), 7, 0)])
    return Btf(b.blob())


def _relo(local: Btf, type_id: int, access: str, kind: CoreKind) -> CoreRelo:
    offset = bytes(local.data[local.header.hdr_len + local.header.str_off :]).index(b"\0" + access.encode() + b"\0") + 1
    return CoreRelo(0, type_id, offset, kind)


def _resolve(access: str, kind: CoreKind, type_name: str = "foo", target: Btf | None = None):
    local, ids = _local()
    return resolve(_relo(local, ids[type_name], access, kind), local, CandidateCache(target or _target()))


@pytest.mark.parametrize(
    "name, expected",
    [("foo", "foo"), ("foo___v1", "foo"), ("a___b___c", "a___b"), ("__x___y", "__x"), ("x___", "x___"), ("x____y", "x____y"), ("___y", "___y")],
)
def test_essential_names(name, expected):
    assert essential_name(name) == expected


def test_field_offsets_follow_the_target_through_flavours_and_anonymous_members():
    assert _resolve("0:0", CoreKind.FIELD_BYTE_OFFSET)[1:3] == (0, 8)  # a
    assert _resolve("0:1:0", CoreKind.FIELD_BYTE_OFFSET)[1:3] == (4, 12)  # b inside struct -> inside union
    result = _resolve("0:2:2", CoreKind.FIELD_BYTE_OFFSET)  # c[2]
    assert result[1:3] == (10, 18) and (result.original_size, result.new_size) == (1, 1)
    assert _resolve("0:4:5", CoreKind.FIELD_BYTE_OFFSET)[1:3] == (36, 48)  # flex[5]: a flexible array has no bound
    assert "foo.c[2] (0:3:2 @ offset 18)" in _resolve("0:2:2", CoreKind.FIELD_BYTE_OFFSET).target


def test_field_sizes_signedness_and_existence():
    assert _resolve("0:2", CoreKind.FIELD_BYTE_SIZE)[1:3] == (4, 8)
    assert _resolve("0:0", CoreKind.FIELD_SIGNED)[1:3] == (1, 1)
    assert _resolve("0:0", CoreKind.FIELD_EXISTS)[1:3] == (1, 1)


def test_bitfields_shift_as_libbpf_computes():
    # local flags: bits 96..98 of a 4-byte unsigned; target: bits 197..199 (byte offset 24 for a 4-byte load)
    assert _resolve("0:3", CoreKind.FIELD_BYTE_OFFSET)[1:3] == (12, 24)
    assert _resolve("0:3", CoreKind.FIELD_LSHIFT_U64)[1:3] == (64 - 3, 64 - (197 + 3 - 24 * 8))
    assert _resolve("0:3", CoreKind.FIELD_RSHIFT_U64)[1:3] == (61, 61)
    assert not _resolve("0:3", CoreKind.FIELD_BYTE_OFFSET).validate  # bitfield offsets are ambiguous: not checked


def test_a_missing_field_or_type_poisons_or_resolves_to_zero():
    assert _resolve("0:0", CoreKind.FIELD_BYTE_OFFSET, "missing").poison
    assert _resolve("0:0", CoreKind.FIELD_EXISTS, "missing")[1:3] == (1, 0)
    assert _resolve("0", CoreKind.TYPE_EXISTS, "missing")[1:3] == (1, 0)
    assert _resolve("0", CoreKind.TYPE_SIZE, "missing")[1:3] == (4, 0)
    assert not _resolve("0", CoreKind.TYPE_EXISTS, "missing").poison


def test_type_relocations():
    local, ids = _local()
    assert _resolve("0", CoreKind.TYPE_ID_LOCAL)[1:3] == (ids["foo"], ids["foo"])
    target = _target()
    assert _resolve("0", CoreKind.TYPE_ID_TARGET, target=target).new == target.find("foo", BtfKind.STRUCT)
    assert _resolve("0", CoreKind.TYPE_SIZE)[1:3] == (16, 28)
    assert _resolve("0", CoreKind.TYPE_EXISTS)[1:3] == (1, 1)
    assert _resolve("0", CoreKind.TYPE_MATCHES).new == 0  # target's c is char[8], local's char[4]: no match


def test_enumerators_by_name_and_enum_against_enum64():
    assert _resolve("0", CoreKind.ENUMVAL_VALUE, "e")[1:3] == (1, 7)
    assert _resolve("0", CoreKind.ENUMVAL_EXISTS, "e")[1:3] == (1, 1)


def test_candidates_that_agree_and_that_disagree():
    assert _resolve("0:0", CoreKind.FIELD_BYTE_OFFSET, target=_target(second_foo=True))[1:3] == (0, 8)
    with pytest.raises(CoreError, match="field offset ambiguity"):
        _resolve("0:0", CoreKind.FIELD_BYTE_OFFSET, target=_target(second_foo=True, shifted=True))


def test_candidates_are_found_by_essential_name_and_kind():
    local, ids = _local()
    target = _target(second_foo=True)
    assert [target.name_of(i) for i in find_candidates(local, ids["foo"], target)] == ["foo", "foo___dup"]
    assert [target.name_of(i) for i in find_candidates(local, ids["e"], target)] == ["e"]  # ENUM finds ENUM64


def test_malformed_relocations_are_core_errors():
    local, ids = _local()
    cache = CandidateCache(_target())
    with pytest.raises(CoreError, match="anonymous"):
        resolve(_relo(local, ids["anonymous_root"], "0:0", CoreKind.FIELD_BYTE_OFFSET), local, cache)
    with pytest.raises(CoreError, match="member 9 of a 5-member struct"):
        parse_spec(local, _relo(local, ids["foo"], "0:9", CoreKind.FIELD_BYTE_OFFSET))
    with pytest.raises(CoreError, match="index 9 of a 4-element array"):
        parse_spec(local, _relo(local, ids["foo"], "0:2:9", CoreKind.FIELD_BYTE_OFFSET))
    with pytest.raises(CoreError, match="type relocation with access string"):
        resolve(_relo(local, ids["foo"], "0:0", CoreKind.TYPE_SIZE), local, cache)
    with pytest.raises(CoreError, match="unknown CO-RE relocation kind 99"):
        resolve(CoreRelo(0, ids["foo"], _relo(local, ids["foo"], "0", 0).access_str_off, 99), local, cache)


def test_the_candidate_cache_keeps_the_matching_ones():
    local, ids = _local()
    target = _target(second_foo=True)
    cache = CandidateCache(target)
    resolve(_relo(local, ids["foo"], "0:0", CoreKind.FIELD_BYTE_OFFSET), local, cache)
    assert len(cache.get(local, ids["foo"])) == 2
    resolve(_relo(local, ids["missing"], "0:0", CoreKind.FIELD_EXISTS), local, cache)
    assert cache.get(local, ids["missing"]) == []
