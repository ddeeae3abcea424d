"""BTF reader: synthetic blobs for the format, the real vmlinux for lookups."""

from __future__ import annotations

import os
import struct

import pytest

from openat.syscalls._libc import ARCH
from openat.syscalls.btf import (
    PT_REGS_FALLBACK,
    Btf,
    BtfError,
    BtfKind,
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
