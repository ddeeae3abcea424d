"""The BTF index walks only as far as a lookup needs: it must agree with a full decode everywhere."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openat.btf import Btf, BtfError, BtfKind

from .builder import BtfBuilder

NAMES = ["a", "b", "pt_regs", "open_how", "do_sys_openat2", ""]

# kind → (fixed extra bytes, bytes per vlen item)
SHAPES = {
    BtfKind.INT: (4, 0),
    BtfKind.PTR: (0, 0),
    BtfKind.ARRAY: (12, 0),
    BtfKind.STRUCT: (0, 12),
    BtfKind.UNION: (0, 12),
    BtfKind.ENUM: (0, 8),
    BtfKind.FWD: (0, 0),
    BtfKind.TYPEDEF: (0, 0),
    BtfKind.CONST: (0, 0),
    BtfKind.FUNC: (0, 0),
    BtfKind.FUNC_PROTO: (0, 8),
    BtfKind.VAR: (4, 0),
    BtfKind.DATASEC: (0, 12),
    BtfKind.DECL_TAG: (4, 0),
    BtfKind.ENUM64: (0, 12),
}


def build(types: list[tuple[str, BtfKind, int, int]]) -> tuple[bytes, list[tuple[str, BtfKind]]]:
    """A blob of (name, kind, vlen, filler) records; extra words hold ``filler`` to tempt false matches."""
    b = BtfBuilder()
    for name in NAMES:  # every name gets a string, used or not
        b.s(name)
    offsets = {name: bytes(b.strings).index(b"\0" + name.encode() + b"\0") + 1 if name else 0 for name in NAMES}
    for name, kind, vlen, filler in types:
        fixed, item = SHAPES[kind]
        if kind == BtfKind.FUNC:
            vlen = min(vlen, 2)  # vlen is the linkage: still a 3-word record
        elif not item:
            vlen = 0
        info = (kind << 24) | vlen
        words = (fixed + item * vlen) // 4
        b.types += struct.pack("=III", offsets[name], info, filler) + struct.pack("=I", filler) * words
        b.count += 1
    return b.blob(), [(name, kind) for name, kind, _, _ in types]


def reference(decoded: list[tuple[str, BtfKind]], name: str, kind: BtfKind | None) -> list[int]:
    if not name:
        return []  # anonymous types have no name to find
    return [i for i, (n, k) in enumerate(decoded, 1) if n == name and (kind is None or k == kind)]


type_records = st.lists(
    st.tuples(st.sampled_from(NAMES), st.sampled_from(sorted(SHAPES)), st.integers(0, 5), st.integers(0, 40)),
    max_size=300,
)


@settings(max_examples=60, deadline=None)
@given(type_records, st.sampled_from(NAMES), st.sampled_from([None, *sorted(SHAPES)]), st.booleans())
def test_lookups_agree_with_a_full_decode(types, name, kind, lookup_first):
    blob, decoded = build(types)
    btf = Btf(blob)
    if not lookup_first:
        assert len(btf) == len(decoded)  # index complete before the lookup
    expected = reference(decoded, name, kind)
    if expected:
        weak = (BtfKind.FWD, BtfKind.DECL_TAG, BtfKind.VAR)
        strong = [i for i in expected if decoded[i - 1][1] not in weak] if kind is None else expected
        assert btf.find(name, kind) == (strong or expected)[0]
    else:
        with pytest.raises(BtfError):
            btf.find(name, kind)
    assert btf.find_all(name, kind) == expected
    assert len(btf) == len(decoded)
    for type_id, (n, k) in enumerate(decoded, 1):
        assert btf.kind(type_id) == k
        assert btf.name_of(type_id) == n
        # The decoder reads as many trailing words as the walk steps over:
        # each holds the record's filler, as does size_or_type.
        raw = btf.raw_type(type_id)
        fixed, item = SHAPES[k]
        if item:
            assert len(raw.extra) == raw.vlen
            assert all(len(entry) == item // 4 for entry in raw.extra)
            assert all(field == raw.size_or_type for entry in raw.extra for field in entry)
        elif fixed:
            assert len(raw.extra) == fixed // 4
            assert all(field == raw.size_or_type for field in raw.extra)
        else:
            assert raw.extra is None
    with pytest.raises(BtfError):
        btf.kind(len(decoded) + 1)
    with pytest.raises(BtfError):
        btf.kind(0)


@pytest.mark.parametrize("count", [0, 1, 63, 64, 65, 128, 200])
def test_stride_edges(count):
    # Counts around the 64-record mark, looked up from the end backwards and forwards.
    types = [("a" if i % 7 else "b", BtfKind.STRUCT if i % 3 else BtfKind.PTR, i % 4, 0) for i in range(count)]
    blob, decoded = build(types)
    backwards = Btf(blob)
    for type_id in range(count, 0, -1):
        assert backwards.kind(type_id) == decoded[type_id - 1][1]
    forwards = Btf(blob)
    assert forwards.find_all("b") == reference(decoded, "b", None)
    assert len(forwards) == len(backwards) == count


def test_a_word_inside_a_record_is_not_a_record():
    # The struct's member words hold the name offset of "b" and a FUNC-like
    # info word; only the walk can tell they are not a record of their own.
    b = BtfBuilder()
    name_b = b.s("b")
    b.types += struct.pack("=III", 0, (BtfKind.STRUCT << 24) | 1, 8)
    b.types += struct.pack("=III", name_b, BtfKind.FUNC << 24, 0)  # a member, not a FUNC
    b.count += 1
    real = b.add("b", BtfKind.FUNC, 0)
    btf = Btf(b.blob())
    assert btf.find("b", BtfKind.FUNC) == real == 2
    assert btf.find_all("b") == [2]


def test_torn_section_found_after_a_partial_walk():
    blob, _ = build([("a", BtfKind.PTR, 0, 0)] * 100 + [("b", BtfKind.STRUCT, 2, 0)])
    blob = bytearray(blob)
    type_len = struct.unpack_from("=I", blob, 12)[0]
    struct.pack_into("=I", blob, 12, type_len - 4)  # cut the last member short
    struct.pack_into("=I", blob, 16, type_len - 4)  # strings start where the types now end
    btf = Btf(bytes(blob))
    assert btf.kind(1) == BtfKind.PTR  # the first stride is fine
    with pytest.raises(BtfError):
        len(btf)
