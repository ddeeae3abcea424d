"""The BTF reader on synthetic blobs: every kind, lookups, members, malformed input."""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest

from openat.btf import Btf, BtfError, BtfHeader, BtfKind, BtfTypeRecord, Member, Param

from .builder import BtfBuilder


@pytest.fixture
def tiny() -> tuple[Btf, dict[str, int]]:
    b = BtfBuilder()
    ids = {}
    ids["u64"] = b.add("u64", BtfKind.INT, 8, extra=struct.pack("=I", 64))
    ids["int"] = b.add("int", BtfKind.INT, 4, extra=struct.pack("=I", (1 << 24) | 32))
    ids["const_u64"] = b.add("", BtfKind.CONST, ids["u64"])
    ids["__u64"] = b.add("__u64", BtfKind.TYPEDEF, ids["const_u64"])
    inner = b.add("", BtfKind.UNION, 8, [b.member("cs", ids["u64"], 0), b.member("csx", ids["int"], 0)])
    ids["regs"] = b.add(
        "regs",
        BtfKind.STRUCT,
        24,
        [b.member("a", ids["__u64"], 0), b.member("", inner, 64), b.member("bits", ids["int"], 128, 3)],
        kflag=True,
    )
    ids["arr"] = b.add("", BtfKind.ARRAY, 0, extra=struct.pack("=III", ids["u64"], ids["int"], 4))
    ids["pt_regs"] = b.add("pt_regs", BtfKind.STRUCT, 40, [b.member("pad", ids["u64"], 0), b.member("regs", ids["arr"], 64)])
    ids["fwd"] = b.add("regs", BtfKind.FWD, 0)
    proto = b.add("", BtfKind.FUNC_PROTO, ids["int"], [(b.s("dfd"), ids["int"]), (b.s("how"), ids["regs"])])
    ids["func"] = b.add("do_thing", BtfKind.FUNC, proto)
    ids["enum"] = b.add("colour", BtfKind.ENUM, 4, [(b.s("RED"), 1)])
    return Btf(b.blob()), ids


def test_synthetic_lookup_by_name_and_kind(tiny):
    btf, ids = tiny
    assert len(btf) == ids["enum"]
    assert btf.find("regs") == ids["regs"]  # the struct wins over the forward declaration
    assert btf.find_all("regs") == [ids["regs"], ids["fwd"]]
    assert btf.find("regs", BtfKind.FWD) == ids["fwd"]
    assert btf.func_id("do_thing") == ids["func"]
    assert btf.find("colour", BtfKind.ENUM) == ids["enum"]
    with pytest.raises(BtfError):
        btf.find("missing")
    with pytest.raises(BtfError):
        btf.func_id("regs")
    # the spelling the tracer uses: kind by name, KeyError when absent
    assert btf.find_id("do_thing", "func") == ids["func"]
    with pytest.raises(KeyError) as exc:
        btf.find_id("do_thing", "typedef")
    assert str(exc.value) == "no BTF typedef type named 'do_thing'"


def test_synthetic_member_offsets_through_typedefs_and_anonymous_unions(tiny):
    btf, ids = tiny
    assert btf.member_offset("regs", "a") == 0
    assert btf.member_offset("regs", "csx") == 8  # inside the anonymous union
    assert btf.resolve(btf.member("regs", "a")[0].type_id) == ids["u64"]
    member, bits = btf.member("regs", "bits")
    assert (member.bitfield_size, bits) == (3, 128)
    with pytest.raises(BtfError):
        btf.member_offset("regs", "bits")
    with pytest.raises(BtfError):
        btf.member_offset("regs", "nope")
    assert btf.size_of(ids["__u64"]) == 8
    assert btf.size_of(ids["arr"]) == 32


def test_synthetic_func_params(tiny):
    btf, ids = tiny
    params = btf.func_params("do_thing")
    assert [(p.name, p.type_id) for p in params] == [("dfd", ids["int"]), ("how", ids["regs"])]


def test_member_paths_index_arrays(tiny):
    # arm64's pt_regs members are spelled "regs[i]": the element size comes from the array's type.
    btf, _ = tiny
    assert [btf.member_offset("pt_regs", name) for name in ("pad", "regs[0]", "regs[3]")] == [0, 8, 32]
    with pytest.raises(BtfError, match="not an array with an element 1"):
        btf.member_offset("pt_regs", "pad[1]")
    with pytest.raises(BtfError, match="not an array with an element 4"):
        btf.member_offset("pt_regs", "regs[4]")
    with pytest.raises(BtfError, match="NAME\\[INDEX\\]"):
        btf.member_offset("pt_regs", "regs[x]")


def test_malformed_blobs_are_rejected():
    with pytest.raises(BtfError):
        Btf(b"\0" * 40)
    good = BtfBuilder()
    good.add("int", BtfKind.INT, 4, extra=struct.pack("=I", 32))
    blob = bytearray(good.blob())
    struct.pack_into("=I", blob, 12, 8)  # type_len cuts the INT record short
    with pytest.raises(BtfError):
        len(Btf(bytes(blob)))


def test_every_kind_decodes_as_packed():
    # One record of each kind, its trailing words holding distinct values, so
    # a field read from the wrong word or with the wrong sign shows; the
    # record after each (a PTR) checks the record's length.
    b = BtfBuilder()
    ids = {}
    ids["int"] = b.add("int", BtfKind.INT, 4, extra=struct.pack("=I", (1 << 24) | (3 << 16) | 29))
    ids["ptr"] = b.add("", BtfKind.PTR, ids["int"])
    ids["arr"] = b.add("", BtfKind.ARRAY, 0, extra=struct.pack("=III", ids["int"], ids["ptr"], 7))
    ids["bits"] = b.add(
        "bits", BtfKind.STRUCT, 8, [b.member("lo", ids["int"], 0, 3), b.member("hi", ids["int"], 35, 29)], kflag=True
    )
    ids["plain"] = b.add("plain", BtfKind.STRUCT, 8, [b.member("x", ids["int"], 32)])
    ids["u"] = b.add("u", BtfKind.UNION, 4, [b.member("a", ids["int"], 0), b.member("b", ids["ptr"], 0)])
    ids["enum"] = b.add("e", BtfKind.ENUM, 4, [(b.s("NEG"), -5 & 0xFFFFFFFF), (b.s("POS"), 7)], kflag=True)
    ids["fwd"] = b.add("u", BtfKind.FWD, 0, kflag=True)  # a forward-declared union
    ids["typedef"] = b.add("t", BtfKind.TYPEDEF, ids["int"])
    ids["volatile"] = b.add("", BtfKind.VOLATILE, ids["typedef"])
    ids["const"] = b.add("", BtfKind.CONST, ids["volatile"])
    ids["restrict"] = b.add("", BtfKind.RESTRICT, ids["ptr"])
    ids["proto"] = b.add("", BtfKind.FUNC_PROTO, ids["int"], [(b.s("a"), ids["int"]), (0, ids["ptr"])])
    # FUNC keeps its linkage in vlen (1: global) and has no trailing words.
    b.types += struct.pack("=III", b.s("f"), (BtfKind.FUNC << 24) | 1, ids["proto"])
    b.count += 1
    ids["func"] = b.count
    ids["var"] = b.add("v", BtfKind.VAR, ids["int"], extra=struct.pack("=I", 1))
    ids["sec"] = b.add(".data", BtfKind.DATASEC, 12, [(ids["var"], 0, 4), (ids["var"], 8, 4)])
    ids["float"] = b.add("double", BtfKind.FLOAT, 8)
    ids["tag_type"] = b.add("kfunc", BtfKind.DECL_TAG, ids["func"], extra=struct.pack("=i", -1))
    ids["tag_param"] = b.add("nonnull", BtfKind.DECL_TAG, ids["func"], extra=struct.pack("=i", 1))
    ids["type_tag"] = b.add("user", BtfKind.TYPE_TAG, ids["int"])
    ids["enum64"] = b.add("e64", BtfKind.ENUM64, 8, [(b.s("BIG"), 0x89ABCDEF, 0x01234567)])
    btf = Btf(b.blob())
    assert len(btf) == len(ids) == b.count
    name = btf.string

    raw = btf.raw_type(ids["int"])
    assert raw == BtfTypeRecord(raw.name_off, BtfKind.INT << 24, BtfKind.INT, 0, False, 4, ((1 << 24) | (3 << 16) | 29,))
    assert name(raw.name_off) == "int" and raw.extra.encoding >> 24 == 1
    assert btf.raw_type(ids["ptr"]).extra is None
    arr = btf.raw_type(ids["arr"]).extra
    assert (arr.type, arr.index_type, arr.nelems) == (ids["int"], ids["ptr"], 7)

    bits = btf.raw_type(ids["bits"])
    assert (bits.kind, bits.vlen, bits.kind_flag, bits.size_or_type) == (BtfKind.STRUCT, 2, True, 8)
    assert [(name(m.name_off), m.type, m.offset) for m in bits.extra] == [
        ("lo", ids["int"], (3 << 24) | 0),
        ("hi", ids["int"], (29 << 24) | 35),
    ]
    assert btf.type(ids["bits"]).members == (Member("lo", ids["int"], 0, 3), Member("hi", ids["int"], 35, 29))
    # without kind_flag the offset word is all bit offset
    assert btf.type(ids["plain"]).members == (Member("x", ids["int"], 32),)
    assert btf.member_offset("plain", "x") == 4
    assert [name(m.name_off) for m in btf.raw_type(ids["u"]).extra] == ["a", "b"]
    assert btf.type(ids["u"]).kind == BtfKind.UNION

    enum = btf.raw_type(ids["enum"])
    assert enum.kind_flag and [(name(v.name_off), v.val) for v in enum.extra] == [("NEG", -5), ("POS", 7)]
    fwd = btf.raw_type(ids["fwd"])
    assert (fwd.kind, fwd.kind_flag, fwd.extra) == (BtfKind.FWD, True, None)
    assert btf.find("u") == ids["u"]  # the union, not its forward declaration
    assert btf.resolve(ids["const"]) == ids["int"]
    assert btf.type(ids["restrict"]).type_id == ids["ptr"]

    assert [(name(p.name_off), p.type) for p in btf.raw_type(ids["proto"]).extra] == [("a", ids["int"]), ("", ids["ptr"])]
    assert btf.func_params("f") == (Param("a", ids["int"]), Param("", ids["ptr"]))
    func = btf.raw_type(ids["func"])
    assert func == BtfTypeRecord(func.name_off, (BtfKind.FUNC << 24) | 1, BtfKind.FUNC, 1, False, ids["proto"], None)
    assert btf.type(ids["func"]).linkage == 1
    assert btf.raw_type(ids["var"]).extra.linkage == 1
    assert btf.type(ids["var"]).linkage == 1
    sec = btf.raw_type(ids["sec"])
    assert [(e.type, e.offset, e.size) for e in sec.extra] == [(ids["var"], 0, 4), (ids["var"], 8, 4)]
    assert btf.type(ids["float"]).size == 8
    assert btf.raw_type(ids["tag_type"]).extra.component_idx == -1
    assert btf.raw_type(ids["tag_param"]).extra.component_idx == 1
    assert btf.find("kfunc") == ids["tag_type"]  # a tag is found when nothing stronger has the name
    assert btf.type(ids["type_tag"]).type_id == ids["int"]
    big = btf.raw_type(ids["enum64"]).extra
    assert [(name(v.name_off), v.val_hi32 << 32 | v.val_lo32) for v in big] == [("BIG", 0x0123456789ABCDEF)]
    assert btf.type(ids["enum64"]).size == 8


def test_header_is_decoded_and_checked():
    b = BtfBuilder()
    b.add("int", BtfKind.INT, 4, extra=struct.pack("=I", 32))
    blob = b.blob()
    assert Btf(blob).header == BtfHeader(0xEB9F, 1, 0, 24, 0, 16, 16, len(b.strings))
    swapped = struct.pack(">H", 0xEB9F) + blob[2:]  # big-endian BTF on this little-endian host
    with pytest.raises(BtfError, match="bad magic"):
        Btf(swapped)
    with pytest.raises(BtfError, match="too short"):
        Btf(blob[:23])


def test_a_torn_last_record_is_an_error_not_garbage():
    # The 64th record ends a stride: the walk steps past it without reading
    # anything beyond, and must still notice that it ends past the section
    # (it once left the index half-built, and len() failed an assert).
    b = BtfBuilder()
    for _ in range(63):
        b.add("", BtfKind.PTR, 0)
    b.add("int", BtfKind.INT, 4, extra=struct.pack("=I", 32))
    blob = bytearray(b.blob())
    struct.pack_into("=I", blob, 12, len(b.types) - 4)  # type_len: the INT without its encoding word
    btf = Btf(bytes(blob))
    for lookup in (len, lambda btf: btf.kind(64), lambda btf: btf.raw_type(64), lambda btf: btf.type(64),
                   lambda btf: btf.find("int")):
        with pytest.raises(BtfError, match="type id 64 \\(INT, vlen 0\\) runs 4 bytes past the end"):
            lookup(btf)  # every time: a failed walk leaves the index as it was


def test_load_reads_a_file(tmp_path):
    b = BtfBuilder()
    b.add("int", BtfKind.INT, 4, extra=struct.pack("=I", 32))
    path = tmp_path / "btf"
    path.write_bytes(b.blob())
    assert Btf.load(str(path)).find("int", BtfKind.INT) == 1


def test_reading_btf_does_not_import_construct():
    # construct costs the tracer ~7 MB of resident memory; BTF is read at every start.
    code = (
        "import sys, os\n"
        "from openat.syscalls.btf import vmlinux_btf\n"
        "if os.path.exists('/sys/kernel/btf/vmlinux'):\n"
        "    vmlinux_btf().member_offset('task_struct', 'comm')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'construct'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
