"""Global variables of an object, and Python values encoded and decoded by their BTF types (pure).

``const volatile int targ_tgid = 0;`` lands in ``.rodata``, ``int counter``
with an initial value in ``.data``, ``u64 hits;`` in ``.bss``. The object's
BTF describes each section (a DATASEC listing its variables) and each
variable's type, so a value is checked and encoded the way C would lay it
out:

======================  =============================================================
BTF type                Python value
======================  =============================================================
integer, ``bool``       ``int`` (range-checked for the size and signedness), ``bool``
enum                    ``int``, or an enumerator's name
pointer                 ``int`` (an address)
``float``, ``double``   ``float``
``char[N]``, ``u8[N]``  ``bytes`` or ``str`` (UTF-8) of at most N bytes, zero-padded
other arrays            a list or tuple of exactly N elements
struct, union           a dict of member names (members not named keep their bytes)
any                     ``bytes`` of exactly the type's size
======================  =============================================================

Anything else raises :class:`~openat.elf.errors.ElfError` naming the
variable and its type.
"""

from __future__ import annotations

import struct
from typing import Any, Dict

from ..btf import BTF_INT_BOOL, BTF_INT_SIGNED, Btf, BtfError, BtfKind
from .errors import ElfError

__all__ = ["VariableSpec", "decode_value", "encode_value", "type_name"]

_FLOATS = {4: struct.Struct("<f"), 8: struct.Struct("<d")}


def type_name(btf: Btf, type_id: int) -> str:
    """A C-like spelling of a type: ``int``, ``struct config``, ``char[8]``, ``u32 *``, ``const volatile int``."""
    if type_id == 0:
        return "void"
    try:
        t = btf.type(type_id)
    except BtfError:
        return f"[{type_id}]"
    kind = t.kind
    if kind in (BtfKind.INT, BtfKind.FLOAT, BtfKind.TYPEDEF):
        return t.name or kind.name.lower()
    if kind in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.FWD):
        word = {BtfKind.ENUM64: "enum", BtfKind.FWD: "struct"}.get(kind, kind.name.lower())
        return f"{word} {t.name or '(anon)'}"
    if kind == BtfKind.PTR:
        return f"{type_name(btf, t.type_id or 0)} *"
    if kind == BtfKind.ARRAY:
        return f"{type_name(btf, t.type_id or 0)}[{t.nelems}]"
    if kind in (BtfKind.CONST, BtfKind.VOLATILE, BtfKind.RESTRICT):
        return f"{kind.name.lower()} {type_name(btf, t.type_id or 0)}"
    if kind == BtfKind.TYPE_TAG:
        return type_name(btf, t.type_id or 0)
    return f"{kind.name.lower()} {t.name}".strip()


def _resolved(btf: Btf, type_id: int):
    return btf.type(btf.resolve(type_id))


def decode_value(btf: Btf, type_id: int, data: bytes) -> Any:
    """The Python value of ``data`` (exactly the type's size) read as BTF type ``type_id``; ElfError for broken BTF."""
    try:
        return _decode(btf, type_id, data)
    except BtfError as error:
        raise ElfError(f"cannot decode a value of type [{type_id}]: {error}") from None


def _decode(btf: Btf, type_id: int, data: bytes) -> Any:
    t = _resolved(btf, type_id)
    kind = t.kind
    if kind == BtfKind.INT:
        value = int.from_bytes(data[: t.size], "little", signed=bool(t.encoding & BTF_INT_SIGNED))
        return bool(value) if t.encoding & BTF_INT_BOOL else value
    if kind in (BtfKind.ENUM, BtfKind.ENUM64):
        return int.from_bytes(data[: t.size], "little", signed=t.kind_flag)
    if kind == BtfKind.PTR:
        return int.from_bytes(data[:8], "little")
    if kind == BtfKind.FLOAT and t.size in _FLOATS:
        return _FLOATS[t.size].unpack(data[: t.size])[0]
    if kind == BtfKind.ARRAY:
        element = t.type_id or 0
        size = btf.size_of(element)
        if size == 1 and _resolved(btf, element).kind == BtfKind.INT:
            return bytes(data[: t.nelems])
        return [_decode(btf, element, data[i * size : (i + 1) * size]) for i in range(t.nelems or 0)]
    if kind in (BtfKind.STRUCT, BtfKind.UNION):
        return _decode_members(btf, t, data)
    return bytes(data)


def _decode_members(btf: Btf, t, data: bytes) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for member in t.members:
        if member.bitfield_size:
            word = int.from_bytes(data, "little") >> member.bit_offset
            out[member.name] = word & ((1 << member.bitfield_size) - 1)
            continue
        size = btf.size_of(member.type_id)
        value = _decode(btf, member.type_id, data[member.byte_offset : member.byte_offset + size])
        if member.name:
            out[member.name] = value
        elif isinstance(value, dict):
            out.update(value)  # an anonymous struct or union: its members are the parent's
    return out


def encode_value(btf: Btf, type_id: int, value: Any, current: bytes, where: str) -> bytes:
    """``value`` encoded as BTF type ``type_id``; ``current`` is the bytes it replaces (for partial structs).

    ElfError naming ``where`` and the type when the value does not fit (or the BTF is broken).
    """
    try:
        return _encode(btf, type_id, value, current, where)
    except BtfError as error:
        raise ElfError(f"{where}: {error}") from None


def _encode(btf: Btf, type_id: int, value: Any, current: bytes, where: str) -> bytes:
    size = btf.size_of(type_id)
    if isinstance(value, (bytes, bytearray, memoryview)) and not _is_byte_array(btf, type_id):
        value = bytes(value)
        if len(value) != size:
            raise ElfError(f"{where} ({type_name(btf, type_id)}) is {size} bytes; got {len(value)} bytes")
        return value
    t = _resolved(btf, type_id)
    kind = t.kind
    what = f"{where} ({type_name(btf, type_id)})"
    if kind == BtfKind.INT:
        return _encode_int(value, size, bool(t.encoding & BTF_INT_SIGNED), bool(t.encoding & BTF_INT_BOOL), what)
    if kind in (BtfKind.ENUM, BtfKind.ENUM64):
        if isinstance(value, str):
            names = {v.name: v.value for v in t.values}
            if value not in names:
                raise ElfError(f"{what}: no enumerator {value!r}; it has {', '.join(names) or 'none'}")
            value = names[value]
        return _encode_int(value, size, t.kind_flag or (isinstance(value, int) and value < 0), False, what)
    if kind == BtfKind.PTR:
        return _encode_int(value, 8, False, False, what)
    if kind == BtfKind.FLOAT:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or size not in _FLOATS:
            raise ElfError(f"{what}: expected a float, got {type(value).__name__}")
        return _FLOATS[size].pack(float(value))
    if kind == BtfKind.ARRAY:
        return _encode_array(btf, t, value, current, what)
    if kind in (BtfKind.STRUCT, BtfKind.UNION):
        return _encode_members(btf, t, value, current, what)
    raise ElfError(f"{what}: only bytes of size {size} can be stored in a {kind.name.lower()}")


def _is_byte_array(btf: Btf, type_id: int) -> bool:
    t = _resolved(btf, type_id)
    return t.kind == BtfKind.ARRAY and btf.size_of(t.type_id or 0) == 1 and _resolved(btf, t.type_id or 0).kind == BtfKind.INT


def _encode_int(value: Any, size: int, signed: bool, boolean: bool, what: str) -> bytes:
    if boolean and isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int) or (isinstance(value, bool) and not boolean):
        raise ElfError(f"{what}: expected an int, got {type(value).__name__}")
    if boolean and value not in (0, 1):
        raise ElfError(f"{what}: a bool is True, False, 1 or 0, not {value}")
    low, high = (-(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1) if signed else (0, (1 << (8 * size)) - 1)
    if not low <= value <= high:
        raise ElfError(f"{what}: {value} does not fit in {size} bytes ({low}..{high})")
    return value.to_bytes(size, "little", signed=value < 0)


def _encode_array(btf: Btf, t, value: Any, current: bytes, what: str) -> bytes:
    element = t.type_id or 0
    count = t.nelems or 0
    size = btf.size_of(element)
    if _is_byte_array(btf, t.id):
        if isinstance(value, str):
            value = value.encode()
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = bytes(value)
            if len(value) > count:
                raise ElfError(f"{what}: {len(value)} bytes do not fit in {count}")
            return value + bytes(count - len(value))
    if not isinstance(value, (list, tuple)):
        raise ElfError(f"{what}: expected a list of {count} elements, got {type(value).__name__}")
    if len(value) != count:
        raise ElfError(f"{what}: expected {count} elements, got {len(value)}")
    parts = []
    for i, item in enumerate(value):
        parts.append(_encode(btf, element, item, current[i * size : (i + 1) * size], f"{what}[{i}]"))
    return b"".join(parts)


def _encode_members(btf: Btf, t, value: Any, current: bytes, what: str) -> bytes:
    if not isinstance(value, dict):
        raise ElfError(f"{what}: expected a dict of member values (or {t.size} bytes), got {type(value).__name__}")
    out = bytearray(current.ljust(t.size, b"\0")[: t.size])
    left = dict(value)
    _store_members(btf, t, left, out, 0, what)
    if left:
        names = [m.name for m in t.members if m.name]
        raise ElfError(f"{what}: no member {', '.join(map(repr, left))}; it has {', '.join(names)}")
    return bytes(out)


def _store_members(btf: Btf, t, values: Dict[str, Any], out: bytearray, base_bits: int, what: str) -> None:
    for member in t.members:
        bits = base_bits + member.bit_offset
        if not member.name:
            inner = _resolved(btf, member.type_id)
            if inner.kind in (BtfKind.STRUCT, BtfKind.UNION):
                _store_members(btf, inner, values, out, bits, what)
            continue
        if member.name not in values:
            continue
        item = values.pop(member.name)
        where = f"{what}.{member.name}"
        if member.bitfield_size:
            if not isinstance(item, int) or not 0 <= item < 1 << member.bitfield_size:
                raise ElfError(f"{where}: {item!r} does not fit in a {member.bitfield_size}-bit field")
            word = int.from_bytes(out, "little")
            mask = ((1 << member.bitfield_size) - 1) << bits
            word = (word & ~mask) | (item << bits)
            out[:] = word.to_bytes(len(out), "little")
            continue
        start = bits // 8
        size = btf.size_of(member.type_id)
        out[start : start + size] = _encode(btf, member.type_id, item, bytes(out[start : start + size]), where)


class VariableSpec:
    """A global variable: where it lives (``section``, ``offset``, ``size``) and its BTF type.

    :meth:`set` changes the initial value in the section's map (before
    load); :meth:`get` decodes it. ``type_id`` is the VAR's type in the
    object's BTF (``const volatile`` included; ``type`` says it in C).
    """

    def __init__(self, name: str, section: str, offset: int, size: int, type_id: int, btf: Btf, map_spec, static: bool) -> None:
        self.name = name
        self.section = section
        self.offset = offset
        self.size = size
        self.type_id = type_id
        self.btf = btf
        self.map = map_spec
        self.static = static

    @property
    def type(self) -> str:
        return type_name(self.btf, self.type_id)

    @property
    def raw(self) -> bytes:
        """The variable's bytes as they stand in the spec."""
        return bytes(self.map.data[self.offset : self.offset + self.size])

    def get(self) -> Any:
        """The current initial value, decoded by its type."""
        return decode_value(self.btf, self.type_id, self.raw)

    def set(self, value: Any) -> None:
        """Encode ``value`` by the variable's type into its section (ElfError when it does not fit)."""
        encoded = encode_value(self.btf, self.type_id, value, self.raw, f"variable {self.name!r}")
        self.map.data[self.offset : self.offset + self.size] = encoded

    def __repr__(self) -> str:
        return f"<VariableSpec {self.name!r} {self.type} in {self.section}+{self.offset}>"

