"""CO-RE: resolving an object's relocations against a target kernel's BTF, with libbpf's rules (pure).

A CO-RE relocation (``.BTF.ext`` core_relo) says: the instruction at
``insn_off`` holds a value the compiler computed from a *local* type (the
object's BTF), which must be recomputed for the *target* (the running
kernel's vmlinux BTF). ``kind`` (``enum bpf_core_relo_kind``) says which
value, the access string (``"0:1:3"``) which field or enumerator:

- field based: byte offset, byte size, exists, signed, lshift_u64,
  rshift_u64 (the last two extract a bitfield with two shifts);
- type based: local type id, target type id, exists, size, matches;
- enumerator based: value exists, value.

How a relocation is resolved (libbpf's relo_core.c, reimplemented from its
documented behaviour, not copied):

1. The local spec: the access string walked through the local type,
   recording the named fields and array indices ("accessors") and the
   bit offset.
2. Candidates: target types whose *essential* name equals the local
   one's (everything before the last ``___``: ``task_struct___old`` and
   ``task_struct`` are one name) and whose kind is the local kind (any enum
   matches any enum). A :class:`CandidateCache` shared by an object's
   relocations keeps, per local type, the candidates that matched so far,
   as libbpf does.
3. Each candidate is matched: fields by name through the target's members
   (anonymous structs and unions searched recursively), array indices within
   bounds (a flexible array at a struct's end has none), field types
   compatible; types by compatibility, or for TYPE_MATCHES by the stricter
   match; enumerators by essential name.
4. All matching candidates must agree (same bit offset, same value), else
   :class:`CoreError`. None matching: existence kinds resolve to 0, type
   kinds to 0, and the rest *poison* the instruction: it becomes a call of
   the invalid helper 0xbad2310, which the verifier removes as dead code,
   or reports if it is reached.

:func:`resolve` gives a :class:`CoreResult` (old and new value, whether to
poison, whether to check the old value, memory access sizes); applying it
to an instruction is :func:`openat.elf.core.apply_core` (the instruction
encoding belongs to the ELF layer).
"""

from __future__ import annotations

import weakref
from enum import IntEnum
from typing import Dict, List, NamedTuple, Optional, Tuple

from .ext import CoreRelo
from .reader import BTF_INT_SIGNED, Btf, BtfError, BtfKind, BtfType

__all__ = [
    "CORE_POISON_HELPER",
    "CandidateCache",
    "CoreError",
    "CoreKind",
    "CoreResult",
    "CoreSpec",
    "essential_name",
    "find_candidates",
    "format_spec",
    "parse_spec",
    "resolve",
]

#: The helper id a poisoned instruction calls (``call 0xbad2310``: "bad relo"), as libbpf writes it.
CORE_POISON_HELPER = 0xBAD2310
_MAX_SPEC_LEN = 64  # BPF_CORE_SPEC_MAX_LEN
_MAX_DEPTH = 32


class CoreKind(IntEnum):
    """enum bpf_core_relo_kind."""

    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12


_FIELD_KINDS = frozenset(range(0, 6))
_TYPE_KINDS = frozenset((CoreKind.TYPE_ID_LOCAL, CoreKind.TYPE_ID_TARGET, CoreKind.TYPE_EXISTS, CoreKind.TYPE_SIZE, CoreKind.TYPE_MATCHES))
_ENUMVAL_KINDS = frozenset((CoreKind.ENUMVAL_EXISTS, CoreKind.ENUMVAL_VALUE))
_ENUMS = (BtfKind.ENUM, BtfKind.ENUM64)
_COMPOSITES = (BtfKind.STRUCT, BtfKind.UNION)


class CoreError(BtfError):
    """A relocation that cannot be resolved at all (malformed, ambiguous): libbpf refuses the object too."""


class Accessor(NamedTuple):
    """One high-level step of a spec: a named member (``name``) or an array index (``name`` None)."""

    type_id: int
    index: int
    name: Optional[str]


class CoreSpec(NamedTuple):
    """An access resolved in one BTF: its accessors, raw indices and bit offset."""

    btf: Btf
    root_type_id: int
    kind: int
    accessors: Tuple[Accessor, ...]
    raw: Tuple[int, ...]
    bit_offset: int


class CoreResult(NamedTuple):
    """What a relocation does to its instruction.

    ``original`` is the value the compiler put there (checked when
    ``validate``), ``new`` the value for the target. ``poison``: replace the
    instruction with a call of :data:`CORE_POISON_HELPER`. Memory accesses
    change size from ``original_size`` to ``new_size`` bytes when those
    differ (``memory_size_mismatch``: they may not, and the access is
    poisoned). ``local`` and ``target`` describe the specs for people.
    """

    kind: int
    original: int
    new: int
    poison: bool = False
    validate: bool = True
    original_size: int = 0
    new_size: int = 0
    memory_size_mismatch: bool = False
    local: str = ""
    target: str = ""


# --- names -----------------------------------------------------------------------


def essential_name(name: str) -> str:
    """``name`` without its flavour: up to the last ``X___Y`` separator (X, Y not underscores)."""
    for i in range(len(name) - 5, -1, -1):
        if name[i] != "_" and name[i + 1 : i + 4] == "___" and name[i + 4] != "_":
            return name[: i + 1]
    return name


def _kinds_compatible(a: BtfKind, b: BtfKind) -> bool:
    return a == b or (a in _ENUMS and b in _ENUMS)


def _skip(btf: Btf, type_id: int) -> Tuple[int, BtfType]:
    """(id, type) behind modifiers and typedefs; CoreError for void."""
    resolved = btf.resolve(type_id)
    if resolved == 0:
        raise CoreError("reached void where a type was expected")
    return resolved, btf.type(resolved)


_VOID = BtfType(0, BtfKind.UNKN, "")


def _skip_to_any(btf: Btf, type_id: int) -> Tuple[int, BtfType]:
    """(id, type) behind modifiers and typedefs, void included (kind UNKN), for matching."""
    resolved = btf.resolve(type_id)
    return resolved, btf.type(resolved) if resolved else _VOID


class CandidateCache:
    """Per local type id, the target candidates still in play (shared by an object's relocations)."""

    def __init__(self, target: Btf) -> None:
        self.target = target
        self._candidates: Dict[int, List[int]] = {}

    def get(self, local: Btf, local_id: int) -> List[int]:
        found = self._candidates.get(local_id)
        if found is None:
            found = self._candidates[local_id] = find_candidates(local, local_id, self.target)
        return found

    def keep(self, local_id: int, matched: List[int]) -> None:
        self._candidates[local_id] = matched


def find_candidates(local: Btf, local_id: int, target: Btf) -> List[int]:
    """Ids of target types named like ``local_id`` (essential names equal), of a compatible kind, ascending."""
    local_type = local.type(local_id)
    if not local_type.name:
        raise CoreError(f"type [{local_id}] is anonymous: CO-RE cannot look for it by name")
    essential = essential_name(local_type.name)
    names = [essential] + [n for n in target.names_starting(essential + "___") if essential_name(n) == essential]
    kinds = _ENUMS if local_type.kind in _ENUMS else (local_type.kind,)
    found: set[int] = set()
    for name in names:
        if len(kinds) == 1:
            found.update(target.find_all(name, kinds[0]))
        else:  # one search of the name, then its kinds: a search scans the whole type section
            found.update(i for i in target.find_all(name) if target.kind(i) in kinds)
    return sorted(found)


# --- specs ------------------------------------------------------------------------


def _is_flex_array(btf: Btf, previous: Accessor, nelems: int) -> bool:
    """A zero-length array that is the last member of the struct ``previous`` names."""
    if previous.name is None or nelems > 0:
        return False
    return previous.index == len(btf.type(previous.type_id).members) - 1


def _access_string(btf: Btf, relo: CoreRelo) -> str:
    try:
        return btf.string(relo.access_str_off)
    except BtfError as error:
        raise CoreError(f"access string: {error}") from None


def parse_spec(btf: Btf, relo: CoreRelo) -> CoreSpec:
    """The local spec of ``relo``: its access string walked through ``btf`` (CoreError when invalid)."""
    text = _access_string(btf, relo)
    kind = relo.kind
    if kind not in CoreKind._value2member_map_:
        raise CoreError(f"unknown CO-RE relocation kind {kind}")
    if not text or text.startswith(":"):
        raise CoreError(f"access string {text!r} is empty or starts with ':'")
    if kind in _TYPE_KINDS:
        if text != "0":
            raise CoreError(f"type relocation with access string {text!r} (must be '0')")
        return CoreSpec(btf, relo.type_id, kind, (), (), 0)
    try:
        raw = tuple(int(part) for part in text.split(":"))
    except ValueError:
        raise CoreError(f"access string {text!r} is not numbers separated by ':'") from None
    if any(index < 0 for index in raw) or len(raw) > _MAX_SPEC_LEN:
        raise CoreError(f"access string {text!r} has a negative index or is too long")
    type_id, t = _skip(btf, relo.type_id)
    if kind in _ENUMVAL_KINDS:
        if t.kind not in _ENUMS or len(raw) > 1 or raw[0] >= len(t.values):
            raise CoreError(f"enumerator access {text!r} into {t.kind.name.lower()} [{type_id}]")
        return CoreSpec(btf, relo.type_id, kind, (Accessor(type_id, raw[0], t.values[raw[0]].name),), raw, 0)
    accessors = [Accessor(type_id, raw[0], None)]
    bit_offset = raw[0] * btf.size_of(type_id) * 8
    for index in raw[1:]:
        type_id, t = _skip(btf, type_id)
        if t.kind in _COMPOSITES:
            if index >= len(t.members):
                raise CoreError(f"access string {text!r}: member {index} of a {len(t.members)}-member {t.kind.name.lower()}")
            member = t.members[index]
            bit_offset += member.bit_offset
            if member.name:
                accessors.append(Accessor(type_id, index, member.name))
            type_id = member.type_id
        elif t.kind == BtfKind.ARRAY:
            element_id, _ = _skip(btf, t.type_id or 0)
            if not _is_flex_array(btf, accessors[-1], t.nelems or 0) and index >= (t.nelems or 0):
                raise CoreError(f"access string {text!r}: index {index} of a {t.nelems}-element array")
            accessors.append(Accessor(element_id, index, None))
            bit_offset += index * btf.size_of(element_id) * 8
            type_id = element_id
        else:
            raise CoreError(f"access string {text!r} goes into a {t.kind.name.lower()} [{type_id}]")
    return CoreSpec(btf, relo.type_id, kind, tuple(accessors), raw, bit_offset)


# --- compatibility -----------------------------------------------------------------------


def _int_offset(t: BtfType) -> int:
    return t.bit_offset


def _types_compatible(local: Btf, local_id: int, target: Btf, target_id: int, level: int = _MAX_DEPTH) -> bool:
    """libbpf's bpf_core_types_are_compat: the rules of type-based relocations."""
    if not _kinds_compatible(local.type(local_id).kind if local_id else BtfKind.UNKN, target.type(target_id).kind if target_id else BtfKind.UNKN):
        return False
    for _ in range(_MAX_DEPTH):
        local_id, target_id = local.resolve(local_id), target.resolve(target_id)
        lt = local.type(local_id) if local_id else None
        tt = target.type(target_id) if target_id else None
        if lt is None or tt is None:
            return lt is None and tt is None  # void against void
        if not _kinds_compatible(lt.kind, tt.kind):
            return False
        if lt.kind in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.FWD, BtfKind.ENUM64):
            return True
        if lt.kind == BtfKind.INT:
            return _int_offset(lt) == 0 and _int_offset(tt) == 0
        if lt.kind == BtfKind.PTR:
            local_id, target_id = lt.type_id or 0, tt.type_id or 0
        elif lt.kind == BtfKind.ARRAY:
            local_id, target_id = lt.type_id or 0, tt.type_id or 0
        elif lt.kind == BtfKind.FUNC_PROTO:
            if len(lt.params) != len(tt.params):
                return False
            for lp, tp in zip(lt.params, tt.params):
                if level <= 0:
                    raise CoreError("function prototypes nest too deep")
                if not _types_compatible(local, local.resolve(lp.type_id), target, target.resolve(tp.type_id), level - 1):
                    return False
            local_id, target_id = lt.type_id or 0, tt.type_id or 0
        else:
            return False
    raise CoreError("types nest too deep")


def _fields_compatible(local: Btf, local_id: int, target: Btf, target_id: int) -> bool:
    """libbpf's bpf_core_fields_are_compat: may a local field be read as the target's?"""
    for _ in range(_MAX_DEPTH):
        local_id, lt = _skip_to_any(local, local_id)
        target_id, tt = _skip_to_any(target, target_id)
        if lt.kind in _COMPOSITES and tt.kind in _COMPOSITES:
            return True
        if not _kinds_compatible(lt.kind, tt.kind):
            return False
        if lt.kind in (BtfKind.PTR, BtfKind.FLOAT):
            return True
        if lt.kind in (BtfKind.FWD, BtfKind.ENUM, BtfKind.ENUM64):
            a, b = essential_name(lt.name), essential_name(tt.name)
            return not a or not b or a == b
        if lt.kind == BtfKind.INT:
            return _int_offset(lt) == 0 and _int_offset(tt) == 0
        if lt.kind == BtfKind.ARRAY:
            local_id, target_id = lt.type_id or 0, tt.type_id or 0
            continue
        return False
    raise CoreError("field types nest too deep")


def _names_match(local_name: str, target_name: str) -> bool:
    if not target_name:
        return not local_name
    return essential_name(local_name) == essential_name(target_name)


def _types_match(local: Btf, local_id: int, target: Btf, target_id: int, behind_pointer: bool = False, level: int = _MAX_DEPTH) -> bool:
    """libbpf's bpf_core_types_match: TYPE_MATCHES' stricter rules (names, sizes, signedness, members)."""
    if level <= 0:
        raise CoreError("types nest too deep to match")
    for _ in range(_MAX_DEPTH):
        local_id, target_id = local.resolve(local_id), target.resolve(target_id)
        lt = local.type(local_id) if local_id else None
        tt = target.type(target_id) if target_id else None
        if lt is None or tt is None:
            return lt is None and tt is None
        if not _names_match(lt.name, tt.name):
            return False
        if lt.kind == BtfKind.FWD:
            if behind_pointer and tt.kind != BtfKind.FWD:
                return (tt.kind == BtfKind.STRUCT and not lt.kind_flag) or (tt.kind == BtfKind.UNION and lt.kind_flag)
            return tt.kind == BtfKind.FWD and lt.kind_flag == tt.kind_flag
        if lt.kind in _ENUMS:
            return tt.kind in _ENUMS and _enums_match(lt, tt)
        if lt.kind in _COMPOSITES:
            if behind_pointer:
                if lt.kind == tt.kind:
                    return True
                return tt.kind == BtfKind.FWD and (lt.kind == BtfKind.UNION) == tt.kind_flag
            return lt.kind == tt.kind and _composites_match(local, lt, target, tt, behind_pointer, level)
        if lt.kind != tt.kind:
            return False
        if lt.kind == BtfKind.INT:
            return lt.size == tt.size and (lt.encoding & BTF_INT_SIGNED) == (tt.encoding & BTF_INT_SIGNED)
        if lt.kind == BtfKind.PTR:
            behind_pointer = True
            local_id, target_id = lt.type_id or 0, tt.type_id or 0
        elif lt.kind == BtfKind.ARRAY:
            if lt.nelems != tt.nelems:
                return False
            local_id, target_id = lt.type_id or 0, tt.type_id or 0
        elif lt.kind == BtfKind.FUNC_PROTO:
            if len(lt.params) != len(tt.params):
                return False
            for lp, tp in zip(lt.params, tt.params):
                if not _types_match(local, lp.type_id, target, tp.type_id, behind_pointer, level - 1):
                    return False
            local_id, target_id = lt.type_id or 0, tt.type_id or 0
        else:
            return False
    raise CoreError("types nest too deep to match")


def _enums_match(lt: BtfType, tt: BtfType) -> bool:
    if lt.size != tt.size or len(lt.values) > len(tt.values):
        return False
    return all(any(_names_match(value.name, other.name) for other in tt.values) for value in lt.values)


def _composites_match(local: Btf, lt: BtfType, target: Btf, tt: BtfType, behind_pointer: bool, level: int) -> bool:
    if len(lt.members) > len(tt.members):
        return False
    for lm in lt.members:
        if not any(
            _names_match(lm.name, tm.name) and _types_match(local, lm.type_id, target, tm.type_id, behind_pointer, level - 1)
            for tm in tt.members
        ):
            return False
    return True


# --- matching a candidate ---------------------------------------------------------------------


class _TargetSpec:
    """A target spec being built: accessors, raw indices and bit offset, as matching speculates."""

    def __init__(self, btf: Btf, root_type_id: int, kind: int) -> None:
        self.btf, self.root_type_id, self.kind = btf, root_type_id, kind
        self.accessors: List[Accessor] = []
        self.raw: List[int] = []
        self.bit_offset = 0

    def frozen(self) -> CoreSpec:
        return CoreSpec(self.btf, self.root_type_id, self.kind, tuple(self.accessors), tuple(self.raw), self.bit_offset)


# Per BTF, per composite type: its named members' first indices, and its anonymous members' indices.
_MEMBER_INDEX: "weakref.WeakKeyDictionary[Btf, Dict[int, Tuple[Dict[str, int], Tuple[int, ...]]]]" = weakref.WeakKeyDictionary()


def _member_index(btf: Btf, type_id: int, t: BtfType) -> Tuple[Dict[str, int], Tuple[int, ...]]:
    per_btf = _MEMBER_INDEX.setdefault(btf, {})
    index = per_btf.get(type_id)
    if index is None:
        named: Dict[str, int] = {}
        for position, member in enumerate(t.members):
            if member.name:
                named.setdefault(member.name, position)
        index = per_btf[type_id] = (named, tuple(i for i, m in enumerate(t.members) if not m.name))
    return index


def _match_member(local: Btf, accessor: Accessor, target: Btf, target_id: int, spec: _TargetSpec) -> Optional[int]:
    """The target member matching local ``accessor`` inside ``target_id``: its type id, None when none matches.

    As libbpf's linear search: members in order, anonymous ones searched
    recursively, the first member of the name decides (indexed, so a big
    struct is not walked member by member for each relocation).
    """
    target_id, tt = _skip_to_any(target, target_id)
    if tt.kind not in _COMPOSITES:
        return None
    local_member = local.type(accessor.type_id).members[accessor.index]
    named, anonymous = _member_index(target, target_id, tt)
    first_named = named.get(local_member.name, len(tt.members))
    for index in anonymous:
        if index > first_named:
            break
        member = tt.members[index]
        if len(spec.raw) == _MAX_SPEC_LEN:
            raise CoreError("struct/union/array nesting too deep")
        spec.bit_offset += member.bit_offset
        spec.raw.append(index)
        found = _match_member(local, accessor, target, member.type_id, spec)
        if found is not None:
            return found
        spec.bit_offset -= member.bit_offset
        spec.raw.pop()
    if first_named == len(tt.members):
        return None
    member = tt.members[first_named]
    if len(spec.raw) == _MAX_SPEC_LEN:
        raise CoreError("struct/union/array nesting too deep")
    spec.bit_offset += member.bit_offset
    spec.raw.append(first_named)
    if not _fields_compatible(local, local_member.type_id, target, member.type_id):
        return None  # the name matched, the type did not: no other member can match
    spec.accessors.append(Accessor(target_id, first_named, member.name))
    return member.type_id


def _match(local_spec: CoreSpec, target: Btf, target_id: int) -> Optional[CoreSpec]:
    """``local_spec`` matched against candidate ``target_id``: the target spec, or None."""
    local = local_spec.btf
    kind = local_spec.kind
    if kind in _TYPE_KINDS:
        if kind == CoreKind.TYPE_MATCHES:
            matched = _types_match(local, local_spec.root_type_id, target, target_id)
        else:
            matched = _types_compatible(local, local_spec.root_type_id, target, target_id)
        return CoreSpec(target, target_id, kind, (), (), 0) if matched else None
    if kind in _ENUMVAL_KINDS:
        resolved, tt = _skip_to_any(target, target_id)
        if tt.kind not in _ENUMS:
            return None
        wanted = essential_name(local_spec.accessors[0].name or "")
        for index, value in enumerate(tt.values):
            if essential_name(value.name) == wanted:
                return CoreSpec(target, target_id, kind, (Accessor(resolved, index, value.name),), (index,), 0)
        return None
    spec = _TargetSpec(target, target_id, kind)
    for position, accessor in enumerate(local_spec.accessors):
        target_id, tt = _skip_to_any(target, target_id)
        if accessor.name is not None:
            next_id = _match_member(local, accessor, target, target_id, spec)
            if next_id is None:
                return None
            target_id = next_id
            continue
        if position > 0:
            if tt.kind != BtfKind.ARRAY:
                return None
            if not _is_flex_array(target, spec.accessors[-1], tt.nelems or 0) and accessor.index >= (tt.nelems or 0):
                return None
            target_id, _ = _skip_to_any(target, tt.type_id or 0)
        if len(spec.raw) == _MAX_SPEC_LEN:
            raise CoreError("struct/union/array nesting too deep")
        spec.accessors.append(Accessor(target_id, accessor.index, None))
        spec.raw.append(accessor.index)
        spec.bit_offset += accessor.index * target.size_of(target_id) * 8
    return spec.frozen()


# --- values ----------------------------------------------------------------------------------


class _FieldValue(NamedTuple):
    value: int
    size: int  # memory access size for a byte-offset relocation, else 0
    type_id: int  # the field's type (for the access-size check), else 0
    validate: bool


def _element_size(btf: Btf, type_id: int) -> Tuple[int, int]:
    """(size of the innermost element, its id): an array's element, not the whole array."""
    type_id, t = _skip(btf, type_id)
    while t.kind == BtfKind.ARRAY:
        type_id, t = _skip(btf, t.type_id or 0)
    return btf.size_of(type_id), type_id


def _field_value(spec: CoreSpec, kind: int, where: str) -> _FieldValue:
    """A field relocation's value in one spec (libbpf's bpf_core_calc_field_relo)."""
    btf = spec.btf
    last = spec.accessors[-1]
    if last.name is None:  # an array element
        if kind == CoreKind.FIELD_BYTE_OFFSET:
            size, element_id = _element_size(btf, last.type_id)
            return _FieldValue(spec.bit_offset // 8, size, last.type_id, True)
        if kind == CoreKind.FIELD_BYTE_SIZE:
            return _FieldValue(btf.size_of(last.type_id), 0, 0, True)
        raise CoreError(f"{where}: {CoreKind(kind).name.lower()} cannot apply to an array element")
    parent = btf.type(last.type_id)
    member = parent.members[last.index]
    field_id, field_type = _skip(btf, member.type_id)
    bit_offset, bit_size = spec.bit_offset, member.bitfield_size
    if bit_size:
        byte_size = field_type.size or 0
        byte_offset = bit_offset // 8 // byte_size * byte_size
        while bit_offset + bit_size - byte_offset * 8 > byte_size * 8:  # the smallest load that holds the bitfield
            if byte_size >= 8:
                raise CoreError(f"{where}: bitfield at bit {bit_offset} cannot be read with one 64-bit load")
            byte_size *= 2
            byte_offset = bit_offset // 8 // byte_size * byte_size
    else:
        byte_size = btf.size_of(field_id)
        byte_offset = bit_offset // 8
        bit_size = byte_size * 8
    validate = not member.bitfield_size  # a bitfield's values are ambiguous (the compiler may differ), except as noted below
    if kind == CoreKind.FIELD_BYTE_OFFSET:
        if member.bitfield_size:
            return _FieldValue(byte_offset, 0, 0, False)
        size, _ = _element_size(btf, field_id)
        return _FieldValue(byte_offset, size, field_id, validate)
    if kind == CoreKind.FIELD_BYTE_SIZE:
        return _FieldValue(byte_size, 0, 0, validate)
    if kind == CoreKind.FIELD_SIGNED:
        signed = (field_type.kind in _ENUMS and field_type.kind_flag) or (
            field_type.kind == BtfKind.INT and bool(field_type.encoding & BTF_INT_SIGNED)
        )
        return _FieldValue(int(signed), 0, 0, True)  # signedness is never ambiguous
    if kind == CoreKind.FIELD_LSHIFT_U64:
        return _FieldValue(64 - (bit_offset + bit_size - byte_offset * 8), 0, 0, validate)  # little-endian
    if kind == CoreKind.FIELD_RSHIFT_U64:
        return _FieldValue(64 - bit_size, 0, 0, True)  # never ambiguous
    raise CoreError(f"{where}: unknown field relocation kind {kind}")


def _type_value(spec: Optional[CoreSpec], kind: int) -> int:
    if spec is None:
        return 0  # type relocations resolve to zero when the target has no such type
    if kind == CoreKind.TYPE_ID_TARGET:
        return spec.root_type_id
    if kind in (CoreKind.TYPE_EXISTS, CoreKind.TYPE_MATCHES):
        return 1
    return spec.btf.size_of(spec.root_type_id)  # TYPE_SIZE


def _enum_value(spec: CoreSpec) -> int:
    accessor = spec.accessors[0]
    return spec.btf.type(accessor.type_id).values[accessor.index].value


def _calculate(local: CoreSpec, target: Optional[CoreSpec], where: str) -> CoreResult:
    """The result for one candidate (``target``) or for none (None): libbpf's bpf_core_calc_relo."""
    kind = local.kind
    text_local, text_target = format_spec(local), format_spec(target) if target else "<not found>"
    if kind in _FIELD_KINDS:
        if kind == CoreKind.FIELD_EXISTS:
            return CoreResult(kind, 1, int(target is not None), local=text_local, target=text_target)
        original = _field_value(local, kind, where)
        if target is None:
            return CoreResult(kind, original.value, 0, poison=True, local=text_local, target=text_target)
        new = _field_value(target, kind, where)
        mismatch = False
        if original.size != new.size:
            lt, tt = local.btf.type(original.type_id), target.btf.type(new.type_id)
            pointers = lt.kind == BtfKind.PTR and tt.kind == BtfKind.PTR
            unsigned = (
                lt.kind == BtfKind.INT and tt.kind == BtfKind.INT and lt.encoding != BTF_INT_SIGNED and tt.encoding != BTF_INT_SIGNED
            )
            mismatch = not (pointers or unsigned)
        return CoreResult(kind, original.value, new.value, False, original.validate, original.size, new.size, mismatch, text_local, text_target)
    if kind in _TYPE_KINDS:
        return CoreResult(kind, _type_value(local, kind), _type_value(target, kind), validate=kind != CoreKind.TYPE_ID_TARGET,
                          local=text_local, target=text_target)
    if kind == CoreKind.ENUMVAL_EXISTS:
        return CoreResult(kind, 1, int(target is not None), local=text_local, target=text_target)
    if target is None:
        return CoreResult(kind, _enum_value(local), 0, poison=True, local=text_local, target=text_target)
    return CoreResult(kind, _enum_value(local), _enum_value(target), local=text_local, target=text_target)


def resolve(relo: CoreRelo, local: Btf, cache: CandidateCache, where: str = "") -> CoreResult:
    """Resolve one relocation of the object whose BTF is ``local`` against ``cache.target``.

    ``where`` names the relocation in errors (``"sec 'kprobe/x' insn 12"``).
    CoreError when libbpf would refuse the object (malformed relocation,
    an anonymous root type, candidates that disagree).
    """
    where = where or f"relocation at byte {relo.insn_off}"
    try:
        local_spec = parse_spec(local, relo)
    except BtfError as error:
        raise CoreError(f"{where}: {error}") from None
    if relo.kind == CoreKind.TYPE_ID_LOCAL:
        text = format_spec(local_spec)
        return CoreResult(relo.kind, relo.type_id, relo.type_id, validate=False, local=text, target=text)
    try:
        candidates = cache.get(local, relo.type_id)
        chosen: Optional[CoreResult] = None
        chosen_spec: Optional[CoreSpec] = None
        matched: List[int] = []
        for candidate in candidates:
            target_spec = _match(local_spec, cache.target, candidate)
            if target_spec is None:
                continue
            result = _calculate(local_spec, target_spec, where)
            if chosen is None:
                chosen, chosen_spec = result, target_spec
            elif target_spec.bit_offset != chosen_spec.bit_offset:
                raise CoreError(f"{where}: field offset ambiguity: {target_spec.bit_offset} != {chosen_spec.bit_offset} bits")
            elif (result.poison, result.new) != (chosen.poison, chosen.new):
                raise CoreError(f"{where}: candidates disagree: {result.new} != {chosen.new}")
            matched.append(candidate)
        if matched:
            cache.keep(relo.type_id, matched)
            assert chosen is not None
            return chosen
        return _calculate(local_spec, None, where)
    except CoreError as error:
        if str(error).startswith(where):
            raise
        raise CoreError(f"{where}: {error}") from None
    except BtfError as error:
        raise CoreError(f"{where}: {error}") from None


# --- for people --------------------------------------------------------------------------------


def format_spec(spec: Optional[CoreSpec]) -> str:
    """A spec as libbpf's debug output spells it: ``<byte_off> [5] struct task_struct.pid (0:73 @ offset 2460)``."""
    if spec is None:
        return "<not found>"
    btf = spec.btf
    root = btf.type(spec.root_type_id)
    text = f"<{_KIND_NAMES[spec.kind]}> [{spec.root_type_id}] {root.kind.name.lower()} {root.name or '<anon>'}"
    if spec.kind in _TYPE_KINDS:
        return text
    if spec.kind in _ENUMVAL_KINDS:
        accessor = spec.accessors[0]
        value = btf.type(accessor.type_id).values[accessor.index]
        return f"{text}::{value.name} = {value.value}"
    path = ""
    for position, accessor in enumerate(spec.accessors):
        if accessor.name is not None:
            path += f".{accessor.name}"
        elif position > 0 or accessor.index > 0:
            path += f"[{accessor.index}]"
    raw = ":".join(str(index) for index in spec.raw)
    offset = f"{spec.bit_offset // 8}.{spec.bit_offset % 8}" if spec.bit_offset % 8 else f"{spec.bit_offset // 8}"
    return f"{text}{path} ({raw} @ offset {offset})"


_KIND_NAMES = {
    CoreKind.FIELD_BYTE_OFFSET: "byte_off",
    CoreKind.FIELD_BYTE_SIZE: "byte_sz",
    CoreKind.FIELD_EXISTS: "field_exists",
    CoreKind.FIELD_SIGNED: "signed",
    CoreKind.FIELD_LSHIFT_U64: "lshift_u64",
    CoreKind.FIELD_RSHIFT_U64: "rshift_u64",
    CoreKind.TYPE_ID_LOCAL: "local_type_id",
    CoreKind.TYPE_ID_TARGET: "target_type_id",
    CoreKind.TYPE_EXISTS: "type_exists",
    CoreKind.TYPE_MATCHES: "type_matches",
    CoreKind.TYPE_SIZE: "type_size",
    CoreKind.ENUMVAL_EXISTS: "enumval_exists",
    CoreKind.ENUMVAL_VALUE: "enumval_value",
}
