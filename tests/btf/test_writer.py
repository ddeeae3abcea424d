"""Writing BTF back: patches keep every type id, and each sanitizing rewrite gives BTF the kernel takes."""

from __future__ import annotations

import os
import struct

import pytest

from openat.btf import Btf, BtfError, BtfKind
from openat.btf.ext import BtfExt, FuncInfo, LineInfo, encode_func_info, encode_line_info
from openat.btf.writer import BtfFeatures, BtfPatch, sanitize

from .builder import BtfBuilder

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "elf", "fixtures")


def every_kind() -> bytes:
    """Valid BTF with each kind a sanitizer may rewrite: FUNC (global), FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64."""
    b = BtfBuilder()
    int_ = b.add("int", BtfKind.INT, 4, extra=struct.pack("=I", 1 << 24 | 32))  # 1
    proto = b.add("", BtfKind.FUNC_PROTO, int_, [(b.s("x"), int_)])  # 2
    b.add("f", BtfKind.FUNC, proto, kflag=False)  # 3
    struct.pack_into("=I", b.types, len(b.types) - 8, (BtfKind.FUNC << 24) | 1)  # linkage global
    var = b.add("v", BtfKind.VAR, int_, extra=struct.pack("=I", 1))  # 4, global allocated
    b.add(".data", BtfKind.DATASEC, 4, [(var, 0, 4)])  # 5
    b.add("float", BtfKind.FLOAT, 4)  # 6
    b.add("tag", BtfKind.DECL_TAG, var, extra=struct.pack("=i", -1))  # 7
    tag = b.add("user", BtfKind.TYPE_TAG, int_)  # 8
    b.add("", BtfKind.PTR, tag)  # 9
    b.add("big", BtfKind.ENUM64, 8, [(b.s("HUGE"), 0, 1), (b.s("SMALL"), 1, 0)])  # 10
    b.add("small", BtfKind.ENUM, 4, [(b.s("NEG"), 0xFFFFFFFF)], kflag=True)  # 11
    b.add("?.bss", BtfKind.DATASEC, 4, [(b.add("w", BtfKind.VAR, int_, extra=struct.pack("=I", 1)), 0, 4)])  # 13, var 12
    return b.blob()


def _kinds(blob: bytes) -> list:
    btf = Btf(blob)
    return [btf.kind(i) for i in range(1, len(btf) + 1)]


def test_a_patch_without_changes_is_the_same_btf():
    btf = Btf(every_kind())
    assert BtfPatch(btf).blob() == every_kind()


def test_patched_words_strings_and_added_types():
    btf = Btf(every_kind())
    patch = BtfPatch(btf)
    patch.set_word(5, 2, 16)  # .data's size
    added = patch.add_int("extra", 2, 16)
    patch.set_string(patch.word(3, 0), "g")
    out = Btf(patch.blob())
    assert out.type(5).size == 16 and out.name_of(3) == "g"
    assert (added, out.type(added).name, out.type(added).size) == (14, "extra", 2)
    with pytest.raises(BtfError, match="another length"):
        patch.set_string(patch.word(3, 0), "longer")
    with pytest.raises(BtfError, match="outside the type section"):
        patch.word(13, 40)


@pytest.mark.parametrize(
    "feature, expected",
    [
        ("datasec", {4: BtfKind.INT, 5: BtfKind.STRUCT, 12: BtfKind.INT, 13: BtfKind.STRUCT}),
        ("decl_tag", {7: BtfKind.INT}),
        ("func", {2: BtfKind.ENUM, 3: BtfKind.TYPEDEF}),
        ("float", {6: BtfKind.STRUCT}),
        ("type_tag", {8: BtfKind.CONST}),
        ("enum64", {10: BtfKind.UNION, 14: BtfKind.INT}),
        ("func_global", {}),
        ("qmark_datasec", {}),
    ],
)
def test_each_missing_feature_rewrites_its_kinds_in_place(feature, expected):
    btf = Btf(every_kind())
    features = BtfFeatures()._replace(**{feature: False})
    blob = sanitize(btf, features).blob()
    before, after = _kinds(every_kind()), _kinds(blob)
    changed = {i + 1: kind for i, kind in enumerate(after) if i >= len(before) or before[i] != kind}
    assert changed == expected
    out = Btf(blob)
    if feature == "datasec":
        assert out.name_of(5) == "_data" and [m.name for m in out.type(5).members] == ["v"] and out.type(4).size == 1
    if feature == "func_global":
        assert out.type(3).linkage == 0
    if feature == "qmark_datasec":
        assert out.name_of(13) == "_.bss"
    if feature == "enum64":
        assert out.name_of(14) == "enum64_placeholder" and {m.type_id for m in out.type(10).members} == {14}
        assert not out.type(11).kind_flag  # a signed ENUM loses its flag too
    if feature == "float":
        assert out.name_of(6) == "" and out.type(6).size == 4


def test_nothing_missing_nothing_changed():
    btf = Btf(every_kind())
    assert sanitize(btf, BtfFeatures()).blob() == every_kind()
    assert BtfFeatures(enum64=False).missing() == ["enum64"]


# Features in the order kernels gained them: a kernel without one lacks every later one too.
_BY_AGE = ["func", "datasec", "func_global", "float", "decl_tag", "type_tag", "enum64", "qmark_datasec"]


@pytest.mark.parametrize("feature", _BY_AGE[1:])
def test_the_kernel_takes_what_is_written_for_an_older_one(feature):
    """What the sanitizer writes for a kernel that came before ``feature``, this kernel still takes.

    "func" is left out: its rewrite (FUNC_PROTO as an ENUM of unnamed values) is for kernels before 5.0,
    whose checks allowed that; today's reject unnamed enumerators."""
    from ..support import need_root
    from openat.syscalls.btf import btf_load

    need_root()
    missing = _BY_AGE[_BY_AGE.index(feature):]
    blob = sanitize(Btf(every_kind()), BtfFeatures()._replace(**{name: False for name in missing})).blob()
    btf_load(blob).close()
    btf_load(every_kind()).close()


# --- .BTF.ext ----------------------------------------------------------------------------


def _object_sections(name: str) -> tuple[Btf, bytes]:
    from openat.elf import ElfFile

    with open(os.path.join(FIXTURES, f"{name}.bpf.o"), "rb") as f:
        elf = ElfFile(f.read())
    return Btf(elf.by_name[".BTF"].data), elf.by_name[".BTF.ext"].data


def test_btf_ext_of_an_object():
    btf, ext_data = _object_sections("subprog")
    ext = BtfExt(ext_data, btf)
    assert set(ext.func_info) == {".text", "syscall"} and ext.sections() == [".text", "syscall"]
    assert [btf.name_of(r.type_id) for r in ext.func_info["syscall"]] == ["first", "second"]
    assert all(r.insn_off % 8 == 0 for records in ext.line_info.values() for r in records)
    assert ext.record_sizes == {"func_info": 8, "line_info": 16}
    line = ext.line_info["syscall"][0]
    assert "first" in btf.string(line.line_off) or btf.string(line.line_off)
    assert line.line == line.line_col >> 10 and line.column == line.line_col & 0x3FF


def test_core_records_of_an_object():
    btf, ext_data = _object_sections("core")
    ext = BtfExt(ext_data, btf)
    records = ext.core_relo["raw_tp/sys_enter"]
    assert len(records) > 25 and {r.kind for r in records} == set(range(13))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: b"\x00\x00" + d[2:], "bad magic"),
        (lambda d: d[:6], "too short"),
        (lambda d: d[:4] + struct.pack("=I", 999) + d[8:], "header length 999"),
        (lambda d: d[:-40], "runs past the end|more than fit|ends inside"),
    ],
)
def test_a_bad_btf_ext_is_a_btf_error(mutate, message):
    btf, ext_data = _object_sections("subprog")
    with pytest.raises(BtfError, match=message):
        BtfExt(mutate(ext_data), btf)


def test_records_encode_for_prog_load_keeping_unknown_tails():
    funcs = [FuncInfo(0, 3), FuncInfo(5, 7, b"\x01\x00\x00\x00")]
    assert encode_func_info(funcs) == struct.pack("=IIII", 0, 3, 5, 7)
    assert encode_func_info(funcs, 12) == struct.pack("=III", 0, 3, 0) + struct.pack("=III", 5, 7, 1)
    assert encode_line_info([LineInfo(1, 2, 3, 4 << 10 | 5)]) == struct.pack("=IIII", 1, 2, 3, 4 << 10 | 5)
