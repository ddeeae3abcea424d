"""BTF reader: synthetic blobs for the format, the real vmlinux for lookups."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys

import pytest

from openat.syscalls._libc import ARCH
from openat.syscalls.errors import NotSupportedError
from openat.syscalls.btf import (
    PT_REGS_FALLBACK,
    Btf,
    BtfError,
    BtfHeader,
    BtfKind,
    BtfTypeRecord,
    Member,
    Param,
    function_arg_offsets,
    pt_regs_offsets,
    syscall_arg_offsets,
    vmlinux_btf,
)


class BtfBuilder:
    """Writes a tiny native-endian BTF blob, the way pahole lays it out."""

    def __init__(self) -> None:
        self.strings = bytearray(b"\0")
        self.types = bytearray()
        self.count = 0

    def s(self, name: str) -> int:
        if not name:
            return 0
        off = len(self.strings)
        self.strings += name.encode() + b"\0"
        return off

    def add(self, name: str, kind: BtfKind, size_or_type: int, items: list[tuple] = (), extra: bytes = b"", kflag=False) -> int:
        info = (int(kflag) << 31) | (kind << 24) | len(items)
        self.types += struct.pack("=III", self.s(name), info, size_or_type) + extra
        for item in items:
            self.types += struct.pack("=" + "I" * len(item), *item)
        self.count += 1
        return self.count

    def member(self, name: str, type_id: int, bit_offset: int, bits: int = 0) -> tuple:
        return (self.s(name), type_id, (bits << 24) | bit_offset if bits else bit_offset)

    def blob(self) -> bytes:
        header = struct.pack("=HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(self.types), len(self.types), len(self.strings))
        return header + bytes(self.types) + bytes(self.strings)


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


def test_pt_regs_from_synthetic_btf_array_member(tiny):
    # arm64-style "regs[i]" resolves through the array member's element size.
    btf, _ = tiny
    assert pt_regs_offsets(["pad", "regs[0]", "regs[3]"], arch="aarch64", btf=btf) == {"pad": 0, "regs[0]": 8, "regs[3]": 32}
    with pytest.raises(BtfError):
        pt_regs_offsets(["pad[1]"], btf=btf)


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
    # The walk stops after 64 records without reading past the 64th, so only
    # the decoder can notice that its trailing word lies beyond the section.
    b = BtfBuilder()
    for _ in range(63):
        b.add("", BtfKind.PTR, 0)
    b.add("int", BtfKind.INT, 4, extra=struct.pack("=I", 32))
    blob = bytearray(b.blob())
    struct.pack_into("=I", blob, 12, len(b.types) - 4)  # type_len: the INT without its encoding word
    btf = Btf(bytes(blob))
    assert btf.kind(64) == BtfKind.INT
    with pytest.raises(BtfError, match="runs past the end"):
        btf.raw_type(64)
    with pytest.raises(BtfError):
        btf.type(64)


def test_missing_file_is_not_supported(tmp_path):
    with pytest.raises(NotSupportedError):
        Btf.load(str(tmp_path / "vmlinux"))


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


# --- the running kernel ------------------------------------------------------------

needs_vmlinux = pytest.mark.skipif(
    not os.path.exists("/sys/kernel/btf/vmlinux"), reason="kernel has no BTF (/sys/kernel/btf/vmlinux missing)"
)


@needs_vmlinux
def test_vmlinux_open_functions_and_structs():
    btf = vmlinux_btf()
    assert len(btf) > 10_000
    func = btf.func_id("do_sys_openat2")
    assert btf.kind(func) == BtfKind.FUNC
    assert btf.name_of(func) == "do_sys_openat2"
    assert [p.name for p in btf.func_params("do_sys_openat2")] == ["dfd", "filename", "how"]
    assert btf.member_offset("open_how", "flags") == 0
    assert btf.member_offset("open_how", "mode") == 8
    assert btf.size_of(btf.find("open_how", BtfKind.STRUCT)) == 24
    typedef = btf.find("btf_trace_sys_enter", BtfKind.TYPEDEF)
    assert btf.kind(btf.resolve(typedef)) == BtfKind.PTR


@needs_vmlinux
def test_vmlinux_pt_regs_matches_builtin_table():
    # The fallback table is only trustworthy if it agrees with BTF where both exist.
    btf = vmlinux_btf()
    table = PT_REGS_FALLBACK[ARCH]
    names = ["di", "si", "dx", "r10", "cx", "ax", "r8", "r9", "sp", "ip"] if ARCH == "x86_64" else ["regs[0]", "regs[5]", "sp", "pc"]
    assert pt_regs_offsets(names, btf=btf) == {n: table[n] for n in names}
    assert function_arg_offsets(6, btf=btf) == function_arg_offsets(6, use_btf=False)
    assert syscall_arg_offsets(6, btf=btf) == syscall_arg_offsets(6, use_btf=False)


def test_fallback_tables_for_both_architectures():
    assert function_arg_offsets(4, arch="x86_64", use_btf=False) == [112, 104, 96, 88]
    assert syscall_arg_offsets(4, arch="x86_64", use_btf=False) == [112, 104, 96, 56]
    assert function_arg_offsets(3, arch="arm64", use_btf=False) == [0, 8, 16]
    assert syscall_arg_offsets(2, arch="aarch64", use_btf=False) == [0, 8]
    with pytest.raises(BtfError):
        pt_regs_offsets(["di"], arch="aarch64", use_btf=False)


# --- bpftool: an independent decoder of the same blob ------------------------------

VMLINUX = "/sys/kernel/btf/vmlinux"
needs_bpftool = pytest.mark.skipif(
    shutil.which("bpftool") is None or not os.path.exists(VMLINUX), reason="needs bpftool and kernel BTF"
)
_MODIFIER_KINDS = ("TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG")


@pytest.fixture(scope="module")
def bpftool_types() -> dict[int, dict]:
    """Every vmlinux type, by id, as ``bpftool -j btf dump file ... format raw`` decodes it."""
    command = ["bpftool", "-j", "btf", "dump", "file", VMLINUX, "format", "raw"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return {t["id"]: t for t in json.loads(out)["types"]}


_INT_ENCODINGS = {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}
_LINKAGES = {0: "static", 1: "global", 2: "extern"}


def as_bpftool(btf: Btf, type_id: int) -> dict:
    """``btf.raw_type(type_id)`` in the terms bpftool's JSON uses (bpftool/btf.c, dump_btf_type)."""
    r = btf.raw_type(type_id)
    kind = BtfKind(r.kind)

    def name(offset: int) -> str:
        return btf.string(offset) if offset else "(anon)"

    out: dict = {"id": type_id, "kind": kind.name, "name": name(r.name_off)}
    if kind == BtfKind.INT:
        e = r.extra.encoding
        encoding = _INT_ENCODINGS.get((e >> 24) & 0x0F, "UNKN")
        out.update(size=r.size_or_type, bits_offset=(e >> 16) & 0xFF, nr_bits=e & 0xFF, encoding=encoding)
    elif kind.name in _MODIFIER_KINDS or kind == BtfKind.PTR:
        out["type_id"] = r.size_or_type
    elif kind == BtfKind.ARRAY:
        out.update(type_id=r.extra.type, index_type_id=r.extra.index_type, nr_elems=r.extra.nelems)
    elif kind in (BtfKind.STRUCT, BtfKind.UNION):
        members = []
        for m in r.extra:
            bits, size = (m.offset & 0xFFFFFF, m.offset >> 24) if r.kind_flag else (m.offset, 0)
            members.append({"name": name(m.name_off), "type_id": m.type, "bits_offset": bits})
            if size:
                members[-1]["bitfield_size"] = size
        out.update(size=r.size_or_type, vlen=r.vlen, members=members)
    elif kind in (BtfKind.ENUM, BtfKind.ENUM64):
        values = []
        for v in r.extra:
            if kind == BtfKind.ENUM:
                # A u32 when kind_flag is clear, but bpftool's JSON widens the
                # s32 field to its u64 with the sign (its text output does not).
                val = v.val if r.kind_flag else v.val & 0xFFFF_FFFF_FFFF_FFFF
            else:
                val = v.val_hi32 << 32 | v.val_lo32
                if r.kind_flag and val >> 63:
                    val -= 1 << 64
            values.append({"name": name(v.name_off), "val": val})
        out.update(encoding="SIGNED" if r.kind_flag else "UNSIGNED", size=r.size_or_type, vlen=r.vlen, values=values)
    elif kind == BtfKind.FWD:
        out["fwd_kind"] = "union" if r.kind_flag else "struct"
    elif kind == BtfKind.FUNC:
        out.update(type_id=r.size_or_type, linkage=_LINKAGES.get(r.vlen, "(unknown)"))
    elif kind == BtfKind.FUNC_PROTO:
        params = [{"name": name(p.name_off), "type_id": p.type} for p in r.extra]
        out.update(ret_type_id=r.size_or_type, vlen=r.vlen, params=params)
    elif kind == BtfKind.VAR:
        out.update(type_id=r.size_or_type, linkage=_LINKAGES.get(r.extra.linkage, "(unknown)"))
    elif kind == BtfKind.DATASEC:
        entries = [{"type_id": e.type, "offset": e.offset, "size": e.size} for e in r.extra]
        out.update(size=r.size_or_type, vlen=r.vlen, vars=entries)
    elif kind == BtfKind.FLOAT:
        out["size"] = r.size_or_type
    elif kind == BtfKind.DECL_TAG:
        out.update(type_id=r.size_or_type, component_idx=r.extra.component_idx)
    return out


@needs_bpftool
def test_every_vmlinux_type_decodes_as_bpftool_decodes_it(bpftool_types):
    btf = Btf.load(VMLINUX)
    assert len(btf) == len(bpftool_types)
    for type_id, expected in bpftool_types.items():
        assert as_bpftool(btf, type_id) == expected


def bpftool_resolve(types: dict[int, dict], type_id: int) -> dict:
    while types[type_id]["kind"] in _MODIFIER_KINDS:
        type_id = types[type_id]["type_id"]
    return types[type_id]


def bpftool_members(types: dict[int, dict], struct_id: int) -> dict[str, tuple[int, int, int]]:
    """name → (bit offset, bitfield size, type id) of a struct's members, anonymous members' own included.

    C11 makes an anonymous struct/union's members the parent's, so names are
    unique across them and the order of the search does not matter.
    """
    found: dict[str, tuple[int, int, int]] = {}
    for m in types[struct_id]["members"]:
        if m["name"] != "(anon)":
            inner = {m["name"]: (m["bits_offset"], m.get("bitfield_size", 0), m["type_id"])}
        else:
            target = bpftool_resolve(types, m["type_id"])
            if target["kind"] not in ("STRUCT", "UNION"):
                continue
            nested = bpftool_members(types, target["id"]).items()
            inner = {name: (m["bits_offset"] + bits, size, t) for name, (bits, size, t) in nested}
        assert not inner.keys() & found.keys(), f"{types[struct_id]['name']}: duplicate member names"
        found.update(inner)
    return found


def bpftool_struct_id(types: dict[int, dict], name: str) -> int:
    return min(i for i, t in types.items() if t["kind"] == "STRUCT" and t["name"] == name)


@needs_bpftool
@pytest.mark.parametrize(
    "struct_name, wanted",
    [
        ("pt_regs", {"sp"}),
        ("task_struct", {"pid", "tgid", "comm", "cred", "real_cred"}),
        ("cred", {"uid", "gid", "euid"}),
        ("open_how", {"flags", "mode", "resolve"}),
        ("sk_buff", {"len", "data_len", "protocol"}),
    ],
)
def test_member_offsets_match_bpftool(bpftool_types, struct_name, wanted):
    # Every member, those inside anonymous unions (pt_regs.cs/ss on x86 since
    # 6.9, most of sk_buff) and bitfields (no byte offset) included.
    members = bpftool_members(bpftool_types, bpftool_struct_id(bpftool_types, struct_name))
    assert wanted <= members.keys()
    btf = vmlinux_btf()
    for name, (bits, bitfield_size, _) in members.items():
        if bitfield_size or bits % 8:
            with pytest.raises(BtfError, match="bitfield"):
                btf.member_offset(struct_name, name)
        else:
            assert btf.member_offset(struct_name, name) == bits // 8, name
    assert any(size for _, size, _ in members.values()) == (struct_name in ("task_struct", "sk_buff"))


@needs_bpftool
@pytest.mark.parametrize("struct_name, path", [("cred", "uid.val"), ("cred", "gid.val"), ("task_struct", "se.vruntime")])
def test_member_paths_match_bpftool(bpftool_types, struct_name, path):
    # Through typedef'd structs (kuid_t) and embedded ones (sched_entity).
    type_id, bits = bpftool_struct_id(bpftool_types, struct_name), 0
    for part in path.split("."):
        offset, _, type_id = bpftool_members(bpftool_types, bpftool_resolve(bpftool_types, type_id)["id"])[part]
        bits += offset
    assert vmlinux_btf().member_offset(struct_name, path) == bits // 8
