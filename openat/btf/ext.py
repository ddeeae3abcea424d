"""``.BTF.ext``: what clang records per instruction beside an object's ``.BTF`` (pure).

Three tables, each grouped by ELF section (named by an offset into the
``.BTF`` string section) and each record starting with the byte offset of
its instruction within that section:

- ``func_info``: (insn_off, type_id of the FUNC) at each function's start;
- ``line_info``: (insn_off, file name, source line text, line << 10 | column)
  where a new C line starts; the kernel's verifier log quotes them, and
  openat annotates instructions with them;
- ``core_relo``: (insn_off, local type_id, access string, kind): the CO-RE
  relocations (see :mod:`openat.btf.core`).

Layout (linux/btf.h has none; libbpf's btf.h and the kernel's bpf_verifier
agree): a header (u16 magic 0xeb9f, u8 version, u8 flags, u32 hdr_len, then
u32 offset/length pairs for func_info, line_info and, if hdr_len allows,
core_relo, relative to the header's end); each table is a u32 record size,
then per section (u32 name offset, u32 record count, the records). Records
may be larger than the fields known here (a newer compiler): the extra bytes
are kept, so what the kernel gets is what the compiler wrote.
"""

from __future__ import annotations

import struct
from typing import Dict, List, Tuple

from ..fieldtuple import FieldTuple
from .reader import BTF_MAGIC, Btf, BtfError

__all__ = ["BtfExt", "CoreRelo", "FuncInfo", "LineInfo", "encode_func_info", "encode_line_info"]

_HEADER = struct.Struct("=HBBI")
_PAIR = struct.Struct("=II")
_U32 = struct.Struct("=I")
_FUNC_INFO = struct.Struct("=II")
_LINE_INFO = struct.Struct("=IIII")
_CORE_RELO = struct.Struct("=IIII")


class FuncInfo(FieldTuple):
    """struct bpf_func_info: the FUNC type of the function starting at ``insn_off``."""

    insn_off: int  # bytes within the section here; instructions once rebased for PROG_LOAD
    type_id: int
    tail: bytes = b""  # bytes past the known fields, as the compiler wrote them


class LineInfo(FieldTuple):
    """struct bpf_line_info: the C line starting at ``insn_off``."""

    insn_off: int
    file_name_off: int
    line_off: int
    line_col: int  # line << 10 | column
    tail: bytes = b""

    @property
    def line(self) -> int:
        return self.line_col >> 10

    @property
    def column(self) -> int:
        return self.line_col & 0x3FF


class CoreRelo(FieldTuple):
    """struct bpf_core_relo: the instruction at ``insn_off`` depends on ``kind`` of the local type ``type_id``."""

    insn_off: int
    type_id: int
    access_str_off: int
    kind: int


_KNOWN = {"func_info": (_FUNC_INFO, FuncInfo), "line_info": (_LINE_INFO, LineInfo), "core_relo": (_CORE_RELO, CoreRelo)}


class BtfExt:
    """A parsed ``.BTF.ext``: per table, ``{section name: [records]}``; names come from ``btf``.

    BtfError when the blob is malformed (bad magic, a table or record out of
    bounds, a record smaller than its known fields).
    """

    def __init__(self, data: bytes, btf: Btf) -> None:
        data = bytes(data)
        if len(data) < _HEADER.size:
            raise BtfError(".BTF.ext: too short for its header")
        magic, self.version, self.flags, hdr_len = _HEADER.unpack_from(data)
        if magic != BTF_MAGIC:
            raise BtfError(f".BTF.ext: bad magic 0x{magic:04x}")
        if hdr_len < _HEADER.size + 2 * _PAIR.size or hdr_len > len(data):
            raise BtfError(f".BTF.ext: header length {hdr_len} out of bounds")
        tables: List[Tuple[int, int]] = []
        for offset in range(_HEADER.size, hdr_len - _PAIR.size + 1, _PAIR.size):
            tables.append(_PAIR.unpack_from(data, offset))
        self.record_sizes: Dict[str, int] = {}
        self.func_info: Dict[str, List[FuncInfo]] = {}
        self.line_info: Dict[str, List[LineInfo]] = {}
        self.core_relo: Dict[str, List[CoreRelo]] = {}
        for name, (offset, length) in zip(("func_info", "line_info", "core_relo"), tables):
            if length:
                self._parse_table(name, data, hdr_len + offset, length, btf)

    def _parse_table(self, name: str, data: bytes, start: int, length: int, btf: Btf) -> None:
        end = start + length
        if end > len(data) or length < _U32.size:
            raise BtfError(f".BTF.ext: {name} ({length} bytes at {start}) runs past the end ({len(data)} bytes)")
        codec, record_type = _KNOWN[name]
        (record_size,) = _U32.unpack_from(data, start)
        if record_size < codec.size or record_size % 4:
            raise BtfError(f".BTF.ext: {name} record size {record_size} (at least {codec.size}, a multiple of 4)")
        self.record_sizes[name] = record_size
        table: Dict[str, list] = getattr(self, name)
        position = start + _U32.size
        while position < end:
            if position + _PAIR.size > end:
                raise BtfError(f".BTF.ext: {name} ends inside a section header")
            name_off, count = _PAIR.unpack_from(data, position)
            position += _PAIR.size
            if count > (end - position) // record_size:
                raise BtfError(f".BTF.ext: {name} has {count} records of {record_size} bytes, more than fit")
            section = btf.string(name_off)
            records = table.setdefault(section, [])
            for _ in range(count):
                fields = codec.unpack_from(data, position)
                if record_type is CoreRelo:
                    records.append(CoreRelo(*fields))
                else:
                    records.append(record_type(*fields, data[position + codec.size : position + record_size]))
                position += record_size

    def sections(self) -> List[str]:
        """Every section any table names."""
        return sorted(set(self.func_info) | set(self.line_info) | set(self.core_relo))


def _encode(records, codec: struct.Struct, record_size: int) -> bytes:
    out = bytearray()
    for record in records:
        tail = record.tail[: record_size - codec.size]
        # every known field is a u32; the tail is what a newer compiler added, zeros where it added nothing
        out += codec.pack(*record[: codec.size // 4]) + tail + bytes(record_size - codec.size - len(tail))
    return bytes(out)


def encode_func_info(records: List[FuncInfo], record_size: int = _FUNC_INFO.size) -> bytes:
    """``records`` as BPF_PROG_LOAD's func_info array (insn_off already in instructions)."""
    return _encode(records, _FUNC_INFO, record_size)


def encode_line_info(records: List[LineInfo], record_size: int = _LINE_INFO.size) -> bytes:
    """``records`` as BPF_PROG_LOAD's line_info array (insn_off already in instructions)."""
    return _encode(records, _LINE_INFO, record_size)
