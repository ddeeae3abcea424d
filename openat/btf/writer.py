"""Writing BTF back: patches to a blob's records, and sanitizing it for older kernels (pure).

An object's ``.BTF`` goes to the kernel (BPF_BTF_LOAD) nearly as the
compiler wrote it, but a loader must first change a few records in place
(DATASEC sizes and variable offsets the compiler left at zero, extern
variables' linkage) and, for a kernel older than the compiler, rewrite the
kinds that kernel does not know. :class:`BtfPatch` does the former on a copy
of the blob, keeping every type id; :func:`sanitize` the latter, as libbpf's
``bpf_object__sanitize_btf`` does:

======================  ==================  ================================================
kernel lacks            kind                becomes
======================  ==================  ================================================
``datasec`` (5.2)       VAR                 INT, 1 byte, 8 bits (size 1: never too big)
                        DATASEC             STRUCT of the same members; '.' and '?' in its
                                            name become '_'
``decl_tag`` (5.16)     DECL_TAG            INT, 1 byte
``qmark_datasec``       DATASEC '?name'    its leading '?' becomes '_'
``func`` (5.0)          FUNC_PROTO          ENUM of as many (4-byte) values
                        FUNC                TYPEDEF
``func_global`` (5.6)   global FUNC         static FUNC
``float`` (5.13)        FLOAT               anonymous empty STRUCT of the same size
``type_tag`` (5.17)     TYPE_TAG            anonymous CONST
``enum64`` (6.0)        ENUM                its kind flag (signedness) cleared
                        ENUM64              UNION of its enumerators' names, each of a new
                                            1-byte INT ``enum64_placeholder``
======================  ==================  ================================================

Each rewrite keeps the record's length, so every type id stays what the
object's instructions, maps and ``.BTF.ext`` say.
"""

from __future__ import annotations

import struct
from typing import Dict, Optional

from ..fieldtuple import FieldTuple
from .reader import BTF_MAGIC, Btf, BtfError, BtfKind

__all__ = ["BtfFeatures", "BtfPatch", "sanitize"]

_WORD = struct.Struct("=I")
_HEADER = struct.Struct("=HBBIIIII")
_FUNC_GLOBAL = 1


class BtfFeatures(FieldTuple):
    """What BTF the kernel accepts (all True: a kernel of 6.0 or later needs no sanitizing)."""

    func: bool = True
    func_global: bool = True
    datasec: bool = True
    qmark_datasec: bool = True
    float: bool = True
    decl_tag: bool = True
    type_tag: bool = True
    enum64: bool = True

    def missing(self) -> list:
        """Names of the features the kernel lacks."""
        return [name for name, present in zip(self._fields, self) if not present]


def _info(kind: int, vlen: int = 0, kind_flag: bool = False) -> int:
    return int(kind_flag) << 31 | int(kind) << 24 | vlen


class BtfPatch:
    """A mutable copy of a BTF blob: change records word by word, append types and strings.

    Word ``i`` of a record is its i-th u32 (0: name_off, 1: info, 2:
    size_or_type, then the kind's trailing words). :meth:`blob` writes the
    result with a fresh header.
    """

    def __init__(self, btf: Btf) -> None:
        self.btf = btf
        header = btf.header
        base = header.hdr_len
        data = bytes(btf.data[: base + max(header.type_off + header.type_len, header.str_off + header.str_len)])
        self.types = bytearray(data[base + header.type_off : base + header.type_off + header.type_len])
        self.strings = bytearray(data[base + header.str_off : base + header.str_off + header.str_len])
        self._types_start = base + header.type_off
        self.count = len(btf)
        self._added: Dict[int, int] = {}  # type id -> offset in self.types of an appended record

    def _offset(self, type_id: int) -> int:
        if type_id in self._added:
            return self._added[type_id]
        return self.btf.type_offset(type_id) - self._types_start

    def _position(self, type_id: int, index: int) -> int:
        position = self._offset(type_id) + 4 * index
        if not 0 <= position <= len(self.types) - 4:
            raise BtfError(f"word {index} of type id {type_id} lies outside the type section")
        return position

    def word(self, type_id: int, index: int) -> int:
        return _WORD.unpack_from(self.types, self._position(type_id, index))[0]

    def set_word(self, type_id: int, index: int, value: int) -> None:
        _WORD.pack_into(self.types, self._position(type_id, index), value & 0xFFFFFFFF)

    def kind(self, type_id: int) -> int:
        return self.word(type_id, 1) >> 24 & 0x1F

    def vlen(self, type_id: int) -> int:
        return self.word(type_id, 1) & 0xFFFF

    def set_info(self, type_id: int, kind: int, vlen: int = 0, kind_flag: bool = False) -> None:
        self.set_word(type_id, 1, _info(kind, vlen, kind_flag))

    def _end(self, offset: int) -> int:
        end = self.strings.find(0, offset) if 0 <= offset < len(self.strings) else -1
        if end < 0:
            raise BtfError(f"string offset {offset} is outside the string section or not NUL-terminated")
        return end

    def string(self, offset: int) -> str:
        return self.strings[offset : self._end(offset)].decode(errors="replace")

    def set_string(self, offset: int, text: str) -> None:
        """Overwrite the string at ``offset`` with ``text`` of the same length (every user of it sees the change)."""
        old_end = self._end(offset)
        encoded = text.encode()
        if len(encoded) != old_end - offset:
            raise BtfError(f"string {self.string(offset)!r} cannot be replaced by {text!r} of another length")
        self.strings[offset:old_end] = encoded

    def add_string(self, text: str) -> int:
        offset = len(self.strings)
        self.strings += text.encode() + b"\0"
        return offset

    def add_type(self, *words: int) -> int:
        """Append a record (its u32 words); its type id."""
        self.count += 1
        self._added[self.count] = len(self.types)
        self.types += b"".join(_WORD.pack(word & 0xFFFFFFFF) for word in words)
        return self.count

    def add_int(self, name: str, size: int, bits: int, encoding: int = 0) -> int:
        return self.add_type(self.add_string(name), _info(BtfKind.INT), size, encoding << 24 | bits)

    def blob(self) -> bytes:
        """The patched BTF: a 24-byte header, the types, the strings."""
        header = _HEADER.pack(BTF_MAGIC, 1, 0, _HEADER.size, 0, len(self.types), len(self.types), len(self.strings))
        return header + bytes(self.types) + bytes(self.strings)


def sanitize(btf: Btf, features: BtfFeatures, patch: Optional[BtfPatch] = None) -> BtfPatch:
    """Rewrite, in ``patch`` (a fresh one of ``btf`` by default), every kind the kernel lacks (see the module docstring)."""
    patch = patch or BtfPatch(btf)
    if all(features):
        return patch
    placeholder = 0
    for type_id in range(1, len(btf) + 1):
        kind = patch.kind(type_id)
        if (not features.datasec and kind == BtfKind.VAR) or (not features.decl_tag and kind == BtfKind.DECL_TAG):
            patch.set_info(type_id, BtfKind.INT)
            patch.set_word(type_id, 2, 1)  # size 1 byte
            patch.set_word(type_id, 3, 8)  # encoding 0, offset 0, 8 bits
        elif not features.datasec and kind == BtfKind.DATASEC:
            _datasec_to_struct(patch, type_id)
        elif not features.qmark_datasec and kind == BtfKind.DATASEC and patch.string(patch.word(type_id, 0)).startswith("?"):
            name_off = patch.word(type_id, 0)
            patch.set_string(name_off, "_" + patch.string(name_off)[1:])
        elif not features.func and kind == BtfKind.FUNC_PROTO:
            patch.set_info(type_id, BtfKind.ENUM, patch.vlen(type_id))
            patch.set_word(type_id, 2, 4)  # the kernel insists on 4-byte enums
        elif not features.func and kind == BtfKind.FUNC:
            patch.set_info(type_id, BtfKind.TYPEDEF)
        elif not features.func_global and kind == BtfKind.FUNC:
            patch.set_info(type_id, BtfKind.FUNC)  # linkage (vlen) 0: static
        elif not features.float and kind == BtfKind.FLOAT:
            patch.set_word(type_id, 0, 0)  # "float" is no valid struct name: anonymous
            patch.set_info(type_id, BtfKind.STRUCT)
        elif not features.type_tag and kind == BtfKind.TYPE_TAG:
            patch.set_word(type_id, 0, 0)
            patch.set_info(type_id, BtfKind.CONST)
        elif not features.enum64 and kind == BtfKind.ENUM:
            patch.set_info(type_id, BtfKind.ENUM, patch.vlen(type_id))
        elif not features.enum64 and kind == BtfKind.ENUM64:
            if not placeholder:
                placeholder = patch.add_int("enum64_placeholder", 1, 8)
            vlen = patch.vlen(type_id)
            patch.set_info(type_id, BtfKind.UNION, vlen)
            for item in range(vlen):  # (name_off, lo32, hi32) -> (name_off, type, bit offset 0)
                patch.set_word(type_id, 3 + 3 * item + 1, placeholder)
                patch.set_word(type_id, 3 + 3 * item + 2, 0)
    return patch


def _datasec_to_struct(patch: BtfPatch, type_id: int) -> None:
    name_off = patch.word(type_id, 0)
    name = patch.string(name_off)
    patch.set_string(name_off, name.replace(".", "_").replace("?", "_"))
    vlen = patch.vlen(type_id)
    patch.set_info(type_id, BtfKind.STRUCT, vlen)
    for item in range(vlen):  # (var type, offset, size) -> (name_off, type, bit offset)
        first = 3 + 3 * item
        var_type, offset = patch.word(type_id, first), patch.word(type_id, first + 1)
        patch.set_word(type_id, first, patch.word(var_type, 0))  # the variable's name as the member's
        patch.set_word(type_id, first + 1, var_type)
        patch.set_word(type_id, first + 2, offset * 8)
