"""The running kernel's BTF: read by openat.syscalls.btf, checked against bpftool, an independent decoder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from openat.btf import Btf, BtfError, BtfKind
from openat.syscalls.btf import VMLINUX_BTF, read_btf_file, vmlinux_btf
from openat.syscalls.errors import NotSupportedError
from openat.syscalls.libc import MappedFile

from ..btf.test_index import NAMES, build, reference


def test_a_missing_file_is_not_supported(tmp_path):
    with pytest.raises(NotSupportedError, match="CONFIG_DEBUG_INFO_BTF"):
        read_btf_file(str(tmp_path / "vmlinux"))


# --- the running kernel ------------------------------------------------------------

needs_vmlinux = pytest.mark.skipif(
    not os.path.exists(VMLINUX_BTF), reason="kernel has no BTF (/sys/kernel/btf/vmlinux missing)"
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


# --- bpftool: an independent decoder of the same blob ------------------------------

VMLINUX = VMLINUX_BTF
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
    btf = read_btf_file(VMLINUX)
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


def test_mapped_file_find_matches_bytes_find(tmp_path):
    data = bytes(range(256)) * 40 + b"needle" + b"\0needle\0" + bytes(100)
    path = tmp_path / "blob"
    path.write_bytes(data)
    with open(path, "rb") as f:
        mapping = MappedFile(f.fileno(), len(data))
    assert bytes(mapping.buffer[:16]) == data[:16]
    for needle in (b"needle", b"\0needle\0", b"\x05\x06", b"absent", b"\0"):
        for start, end in ((0, None), (10, 200), (10250, len(data)), (len(data) - 3, len(data)), (50, 40), (-5, 10)):
            assert mapping.find(needle, start, end) == data.find(needle, max(start, 0), end), (needle, start, end)


def test_load_maps_or_reads_to_the_same_result(tmp_path):
    blob, decoded = build([(name, BtfKind.TYPEDEF, 0, 0) for name in NAMES[:-1]] * 30)
    path = tmp_path / "vmlinux"
    path.write_bytes(blob)
    loaded = read_btf_file(str(path))
    assert loaded.find_all("pt_regs") == Btf(blob).find_all("pt_regs") == reference(decoded, "pt_regs", None)
    assert len(loaded) == len(decoded)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(BtfError):
        read_btf_file(str(empty))  # nothing to map: read, then rejected as too short
