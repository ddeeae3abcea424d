"""A lazy, pure-Python reader of BTF, such as the kernel's (/sys/kernel/btf/vmlinux).

The vmlinux BTF holds ~130,000 types in ~5 MB. Decoding all of them into
objects would take seconds and tens of MB, so:

- the blob may be a mapping rather than a copy (``openat.syscalls.btf``
  maps the kernel's, where Linux ≥ 6.16 allows it), searched with the
  ``find`` the caller gives (glibc's memmem for a mapping);
- the record layouts are defined once, as a table of each kind's trailing
  fields (struct formats and field names), from which both the walk's
  record lengths and the decoder of the few types a caller asks about
  derive; the standard library's ``struct`` decodes them, because importing
  ``construct`` would cost the tracer ~7 MB of resident memory at every
  start (hashlib → libcrypto, inspect, pdb);
- a name is found by locating its string in the string section with
  ``bytes.find``, then that string offset among the type words with another
  ``bytes.find``: the candidate records. A type id is a record's position,
  which only a walk over the variable-length records before it can tell, so
  a tight walk marks every 64th record's start and goes only as far as the
  candidates asked about (do_sys_openat2 is ~60% in, pt_regs and the
  tracepoint typedefs in the first 10%). No dictionary of 130k names is
  ever built.

Only native-endian BTF is read (sysfs BTF always is).
"""

from __future__ import annotations

import collections
import functools
import struct
from array import array
from bisect import bisect_right
from enum import IntEnum
from typing import Callable, Iterator, Optional, Union

from ..fieldtuple import FieldTuple


__all__ = [
    "BTF_INT_BOOL",
    "BTF_INT_CHAR",
    "BTF_INT_SIGNED",
    "BTF_MAGIC",
    "MAX_DEPTH",
    "Btf",
    "BtfError",
    "BtfHeader",
    "BtfKind",
    "BtfType",
    "BtfTypeRecord",
    "DatasecEntry",
    "EnumValue",
    "Member",
    "Param",
]

BTF_MAGIC = 0xEB9F
# An INT's encoding bits (BTF_INT_ENCODING of its trailing word).
BTF_INT_SIGNED = 1 << 0
BTF_INT_CHAR = 1 << 1
BTF_INT_BOOL = 1 << 2


class BtfKind(IntEnum):
    """BTF_KIND_* from linux/btf.h."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


class BtfError(KeyError):
    """A name or type is not in the BTF, or the BTF is malformed.

    A KeyError (hence LookupError) so ``except KeyError`` around a lookup
    works; ``str()`` is the plain message, not KeyError's quoted repr.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# --- the format, defined once ---------------------------------------------------

Buffer = Union[bytes, bytearray, memoryview, "ctypes.Array[ctypes.c_char]"]
Finder = Callable[[bytes, int, int], int]

_HEADER = struct.Struct("=HBBIIIII")  # struct btf_header, in BtfHeader's field order


class BtfHeader(FieldTuple):
    """struct btf_header. Section offsets are relative to the end of the header (``hdr_len``)."""

    magic: int
    version: int
    flags: int
    hdr_len: int
    type_off: int
    type_len: int
    str_off: int
    str_len: int

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> "BtfHeader":
        """Decode the header at the start of ``data``: any buffer of at least 24 bytes (a mapping's too)."""
        if len(data) < _HEADER.size:
            raise BtfError(f"BTF blob too short: {len(data)} bytes, the header alone is {_HEADER.size}")
        return cls._make(_HEADER.unpack_from(data))


# Every type record starts with three u32 words, struct btf_type: name_off,
# info (kind_flag << 31 | kind << 24 | vlen) and size_or_type (a size for
# INT/STRUCT/UNION/ENUM/ENUM64/DATASEC/FLOAT, else a type id).
_COMMON_WORDS = 3

# What follows those words, by kind: (name of the decoded NamedTuple, after
# linux/btf.h's struct; struct format of its 4-byte fields; field names;
# whether it comes vlen times rather than once). Other kinds have nothing
# more. This is the format's one definition: the walk's record lengths and
# raw_type()'s decoding both derive from it.
_TrailingSpec = tuple[str, str, tuple[str, ...], bool]
# offset: the bit offset; with kind_flag, bitfield size << 24 | bit offset.
_MEMBERS: _TrailingSpec = ("BtfMember", "III", ("name_off", "type", "offset"), True)
_TRAILING: dict[int, _TrailingSpec] = {
    BtfKind.INT: ("BtfInt", "I", ("encoding",), False),  # encoding << 24 | bit offset << 16 | bits
    BtfKind.ARRAY: ("BtfArray", "III", ("type", "index_type", "nelems"), False),
    BtfKind.STRUCT: _MEMBERS,
    BtfKind.UNION: _MEMBERS,
    BtfKind.ENUM: ("BtfEnum", "Ii", ("name_off", "val"), True),  # val is unsigned when kind_flag is clear
    BtfKind.FUNC_PROTO: ("BtfParam", "II", ("name_off", "type"), True),
    BtfKind.VAR: ("BtfVar", "I", ("linkage",), False),
    BtfKind.DATASEC: ("BtfVarSecinfo", "III", ("type", "offset", "size"), True),
    BtfKind.DECL_TAG: ("BtfDeclTag", "i", ("component_idx",), False),  # -1: the type itself
    BtfKind.ENUM64: ("BtfEnum64", "III", ("name_off", "val_lo32", "val_hi32"), True),
}

# Record lengths in 4-byte words for the fast walk, by kind (5 bits, so 32
# slots): fixed words including the common ones, and words per vlen item.
_WORDS_FIXED = [_COMMON_WORDS] * 32
_WORDS_PER_ITEM = [0] * 32
for _kind, (_, _format, _, _repeated) in _TRAILING.items():
    if _repeated:
        _WORDS_PER_ITEM[_kind] = struct.calcsize("=" + _format) // 4
    else:
        _WORDS_FIXED[_kind] += struct.calcsize("=" + _format) // 4
del _kind, _format, _repeated


@functools.cache
def _trailing_codec(spec: _TrailingSpec) -> tuple[struct.Struct, type, bool]:
    """(Struct, NamedTuple class, repeated) decoding one _TRAILING entry, made on first use.

    A NamedTuple class costs ~50 µs to define and the tracer's lookups need
    two or three of the nine, so none is defined at import.
    """
    name, fmt, fields, repeated = spec
    return struct.Struct("=" + fmt), collections.namedtuple(name, fields), repeated


class BtfTypeRecord(FieldTuple):
    """A type record as stored, from :meth:`Btf.raw_type`: struct btf_type with ``info`` split up.

    ``extra`` is what follows the common words, per ``_TRAILING``: None for
    kinds with nothing more (PTR, TYPEDEF, FUNC, ...), one NamedTuple for
    INT/ARRAY/VAR/DECL_TAG (``.encoding``, ``.nelems``, ``.linkage``,
    ``.component_idx``), else a tuple of ``vlen`` NamedTuples (struct/union
    members, enum values, func_proto params, datasec entries).
    """

    name_off: int
    info: int
    kind: int  # a plain int, as stored: kinds 20..31 have no BtfKind member
    vlen: int
    kind_flag: bool
    size_or_type: int
    extra: tuple | None  # a NamedTuple, or a tuple of them


_MODIFIERS = (BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG)


# --- decoded views --------------------------------------------------------------


# FieldTuples rather than frozen dataclasses: as immutable and comparable,
# and cheaper to define, which every start of the tracer pays.


class Member(FieldTuple):
    """A struct/union member; ``bit_offset`` from the start of its parent."""

    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int = 0

    @property
    def byte_offset(self) -> int:
        return self.bit_offset // 8


class Param(FieldTuple):
    name: str
    type_id: int


class EnumValue(FieldTuple):
    """An enumerator; ``value`` is signed when its enum's ``kind_flag`` is set, else unsigned."""

    name: str
    value: int


class DatasecEntry(FieldTuple):
    """A variable of a DATASEC: its VAR (or FUNC) type, offset and size in the section."""

    type_id: int
    offset: int
    size: int


class BtfType(FieldTuple):
    """One decoded type. ``size`` for sized kinds, ``type_id`` for referencing ones.

    INT: ``encoding`` (BTF_INT_SIGNED/CHAR/BOOL), ``bits`` and
    ``bit_offset``; ENUM/ENUM64: ``values`` (signed when ``kind_flag``);
    DATASEC: ``entries``; FWD: ``kind_flag`` set for a union;
    DECL_TAG: ``component_idx`` (-1: the type itself).
    """

    id: int
    kind: BtfKind
    name: str
    size: int | None = None
    type_id: int | None = None
    members: tuple[Member, ...] = ()
    params: tuple[Param, ...] = ()
    nelems: int | None = None  # ARRAY
    linkage: int | None = None  # FUNC (in vlen) / VAR
    kind_flag: bool = False
    encoding: int = 0  # INT
    bits: int = 0  # INT
    bit_offset: int = 0  # INT
    values: tuple[EnumValue, ...] = ()  # ENUM, ENUM64
    entries: tuple[DatasecEntry, ...] = ()  # DATASEC
    index_type_id: int | None = None  # ARRAY
    component_idx: int | None = None  # DECL_TAG


_SIZED = (BtfKind.INT, BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.DATASEC, BtfKind.FLOAT)


_LAST_KIND = max(BtfKind)
# How deep any walk over the type graph goes (modifier chains, nested arrays, anonymous
# members within anonymous members): real BTF needs a few levels (the kernel's own
# verifier allows 32), and a cycle in corrupt BTF is reported instead of looping.
MAX_DEPTH = 64


def _known_kind(kind: int, type_id: int) -> int:
    """``kind``, checked: 1 (INT) to 19 (ENUM64); anything else has no known record layout."""
    if not 1 <= kind <= _LAST_KIND:
        raise BtfError(f"type id {type_id}: unknown kind {kind} (this reader knows 1..{int(_LAST_KIND)})")
    return kind


def _record_words(info: int, type_id: int) -> int:
    """Length in words of type record ``type_id``, whose info word is ``info``."""
    kind = _known_kind((info >> 24) & 0x1F, type_id)
    return _WORDS_FIXED[kind] + _WORDS_PER_ITEM[kind] * (info & 0xFFFF)


# The walk records where every _STRIDE-th type starts; any type is then at
# most _STRIDE - 1 steps from a mark.
_STRIDE = 64
_WEAK_KINDS = (BtfKind.FWD, BtfKind.DECL_TAG, BtfKind.VAR)  # lose to a real definition in find()


class Btf:
    """Kernel BTF, indexed lazily. Type ids start at 1 (0 is void).

    A type id is a record's position in the type section, and records have
    variable length, so an id is only known by walking the records before it.
    Lookups walk only as far as the record they need: a name is found in the
    string section, its records among the type words with ``bytes.find``, and
    the walk (which marks every 64th record, for id → record afterwards)
    stops once it has passed the candidate.
    """

    def __init__(self, data: Buffer, find: Optional[Finder] = None) -> None:
        """``data``: the BTF blob, any buffer. ``find(sub, start, end)``: a search of
        ``data`` like ``bytes.find``, for a buffer that has none of its own (a mapping)."""
        if find is None:
            try:
                data = data if isinstance(data, bytes) else memoryview(data).tobytes()
            except (TypeError, ValueError) as error:
                raise BtfError(f"BTF must be a bytes-like object: {error}") from None
            find = data.find
        self.data = data
        self._find = find
        self.header = BtfHeader.parse(self.data)
        if self.header.magic != BTF_MAGIC:
            raise BtfError("not native-endian BTF (bad magic)")
        if self.header.version != 1:
            raise BtfError(f"BTF version {self.header.version}: this reader knows version 1")
        if self.header.hdr_len < _HEADER.size:
            raise BtfError(f"BTF header length {self.header.hdr_len} is shorter than the header ({_HEADER.size} bytes)")
        if self.header.type_len % 4:
            raise BtfError(f"type section length {self.header.type_len} is not a multiple of 4")
        base = self.header.hdr_len
        self._types_start = base + self.header.type_off
        self._types_end = self._types_start + self.header.type_len
        self._strings_start = base + self.header.str_off
        self._strings_end = self._strings_start + self.header.str_len
        if self._types_end > len(self.data) or self._strings_end > len(self.data) or self._types_start % 4:
            raise BtfError("BTF sections out of bounds or misaligned")
        # The type section as bytes (for struct) and as native u32 words (for the walk).
        self._type_bytes = memoryview(self.data).cast("B")[self._types_start : self._types_end]
        self._words = self._type_bytes.cast("I")
        # info word → record length in words: only a few hundred distinct
        # info words occur, so one dict hit is the walk's whole per-record cost.
        self._steps: dict[int, int] = {}
        self._marks = array("I")  # word offset of type id 1 + _STRIDE * i at index i
        self._walked = 0  # word offset up to which every record is marked (a record start)
        self._count: int | None = None  # number of types, once the walk reached the end
        self._string_hits: dict[str, list[int]] = {}
        self._found: dict[tuple[str, BtfKind | None], list[int]] = {}
        self._first: dict[tuple[str, BtfKind | None], int | None] = {}
        self._decoded: dict[int, BtfType] = {}

    @classmethod
    def load(cls, path: str) -> "Btf":
        """Read a BTF file (a raw ``.BTF`` blob, as /sys/kernel/btf/* holds)."""
        with open(path, "rb") as f:
            return cls(f.read())

    # --- index ---------------------------------------------------------------

    def _walk(self, until_word: int, until_marks: int = 0) -> None:
        """Mark records until the walk passes word ``until_word`` and holds ``until_marks`` marks, or ends."""
        if self._count is not None:
            return
        marks = self._marks
        first_new_mark = len(marks)
        try:
            i = self._walk_strides(self._walked, until_word, until_marks)
            if i >= len(self._words):  # the last record ended at, or ran past, the section's end
                self._finish_walk()
                return
        except BtfError:
            del marks[first_new_mark:]  # as before the walk: asking again finds the same fault
            raise
        self._walked = i

    def _walk_strides(self, i: int, until_word: int, until_marks: int) -> int:
        """The walk from word ``i``, a stride at a time; returns where it stopped."""
        words, steps, marks = self._words, self._steps, self._marks
        mark = marks.append
        try:
            # The hot loop, ~80 ns a record. A plain dict (whose lookups the
            # interpreter specialises) learns step sizes through KeyError, and
            # running off the section's end raises IndexError: both cheaper
            # than a test per record.
            while i <= until_word or len(marks) < until_marks:
                mark(i)
                k = 0
                while True:
                    try:
                        for k in range(k, _STRIDE):
                            i += steps[words[i + 1]]
                        break
                    except KeyError as missing:  # first record with this info word: retry step k
                        info = missing.args[0]
                        steps[info] = _record_words(info, (len(marks) - 1) * _STRIDE + k + 1)
        except IndexError:
            return len(words)  # ran off the end: _finish_walk() finds where and why
        return i

    def _step(self, word: int, type_id: int) -> int:
        """Length in words of the record starting at ``word``, type ``type_id``."""
        info = self._words[word + 1]
        step = self._steps.get(info)
        if step is None:
            step = self._steps[info] = _record_words(info, type_id)
        return step

    def _finish_walk(self) -> None:
        """Count the last, partial stride with bounds checks; reject a torn section."""
        marks = self._marks
        total = len(self._words)
        i = marks[-1]
        n = 0
        while i < total:
            type_id = (len(marks) - 1) * _STRIDE + n + 1
            if i + _COMMON_WORDS > total:
                raise BtfError(
                    f"type id {type_id}: the type section ends {4 * (total - i)} bytes into its "
                    f"{4 * _COMMON_WORDS}-byte header (section not on a record boundary)"
                )
            step = self._step(i, type_id)
            if i + step > total:
                info = self._words[i + 1]
                raise BtfError(
                    f"type id {type_id} ({BtfKind((info >> 24) & 0x1F).name}, vlen {info & 0xFFFF}) "
                    f"runs {4 * (i + step - total)} bytes past the end of the type section"
                )
            i += step
            n += 1
        if n == 0:
            marks.pop()  # the mark was the section's end, not a record
            n = _STRIDE if marks else 0
        self._count = (len(marks) - 1) * _STRIDE + n if marks else 0
        self._walked = total

    def _id_at(self, word: int) -> int | None:
        """The id of the record starting at word offset ``word``; None when none starts there."""
        if word >= self._walked:
            self._walk(word)
            if word >= self._walked:
                return None
        marks = self._marks
        k = bisect_right(marks, word) - 1
        i = marks[k]
        type_id = k * _STRIDE + 1
        while i < word:
            i += self._step(i, type_id)
            type_id += 1
        return type_id if i == word else None

    def __len__(self) -> int:
        """Number of types (not counting void)."""
        if self._count is None:
            self._walk(len(self._words))
        assert self._count is not None
        return self._count

    def index_state(self) -> Optional[bytes]:
        """The walk's index (type count, then the word offset of every 64th record) as bytes.

        None until the walk has reached the end. Only :meth:`adopt_index` of a
        Btf over the very same bytes may take it back: it saves the walk, which
        is most of what counting the types costs.
        """
        if self._count is None:
            return None
        return struct.pack("=I", self._count) + self._marks.tobytes()

    def adopt_index(self, state: bytes) -> bool:
        """Take an index from :meth:`index_state`; False, with nothing changed, when it does not fit these bytes.

        Checked without a walk of the whole section: the marks must rise from
        word 0 and stay inside the section, and the last stride,
        walked with bounds checks, must end exactly at the section's end with
        the saved count. A state from other BTF almost never passes; the
        caller keys it on the file's identity so that it never has to.
        """
        if self._count is not None or self._walked or len(state) < 4 or (len(state) - 4) % self._marks.itemsize:
            return False
        (count,) = struct.unpack_from("=I", state)
        marks = array("I")
        marks.frombytes(state[4:])
        words = self._words
        if not marks or marks[0] != 0 or not (len(marks) - 1) * _STRIDE < count <= len(marks) * _STRIDE:
            return False
        # Rising and in bounds; the kinds are not read, as that would touch
        # every page of the section (a mapping faults them in: the walk's cost again).
        if any(a >= b for a, b in zip(marks, marks[1:])) or marks[-1] >= len(words) - 1:
            return False
        saved = self._marks, self._walked, dict(self._steps)
        self._marks, self._walked = marks, marks[-1]
        try:
            self._finish_walk()
        except BtfError:
            self._count = None
        if self._count != count:
            self._marks, self._walked, self._steps = saved
            self._count = None
            return False
        return True

    def _record_offset(self, type_id: int) -> int:
        k, steps_from_mark = divmod(type_id - 1, _STRIDE)
        if type_id >= 1 and len(self._marks) <= k:
            self._walk(-1, k + 1)
        if type_id < 1 or len(self._marks) <= k or (self._count is not None and type_id > self._count):
            raise BtfError(f"type id {type_id} out of range 1..{len(self)}")
        i = self._marks[k]
        for step in range(steps_from_mark):
            i += self._step(i, k * _STRIDE + step + 1)
        return i

    def string(self, offset: int) -> str:
        """The NUL-terminated string at ``offset`` in the string section."""
        start = self._strings_start + offset
        if not self._strings_start <= start < self._strings_end:
            raise BtfError(f"string offset {offset} out of range")
        end = self._find(b"\0", start, self._strings_end)
        if end < 0:
            raise BtfError(f"string at offset {offset} is not NUL-terminated")
        return self.data[start:end].decode(errors="replace")

    def _string_offsets(self, name: str) -> list[int]:
        found = self._string_hits.get(name)
        if found is None:
            needle = b"\0" + name.encode() + b"\0"
            found = []
            pos = self._find(needle, self._strings_start, self._strings_end)
            while pos >= 0:
                found.append(pos + 1 - self._strings_start)
                pos = self._find(needle, pos + 1, self._strings_end)
            self._string_hits[name] = found
        return found

    def _ids_named(self, name_off: int, kind: BtfKind | None) -> Iterator[int]:
        """Ids of the records whose name is at ``name_off`` (and of ``kind``), ascending, found lazily.

        Candidates are the aligned type words equal to ``name_off``; a
        candidate is a record only if the walk lands on it, so the walk goes
        no further than the candidates asked for.
        """
        find, words = self._find, self._words
        start, end = self._types_start, self._types_end
        needle = struct.pack("=I", name_off)
        pos = find(needle, start, end)
        while pos >= 0:
            offset = pos - start
            if not offset % 4:
                word = offset // 4
                if word + 1 < len(words) and (kind is None or (words[word + 1] >> 24) & 0x1F == kind):
                    type_id = self._id_at(word)
                    if type_id is not None:
                        yield type_id
            pos = find(needle, pos + 1, end)

    # --- lookups ---------------------------------------------------------------

    def find_all(self, name: str, kind: BtfKind | None = None) -> list[int]:
        """Ids of every type called ``name`` (of ``kind``, if given)."""
        key = (name, kind)
        if key not in self._found:
            ids = []
            for name_off in self._string_offsets(name):
                ids.extend(self._ids_named(name_off, kind))
            ids.sort()
            self._found[key] = ids
        return list(self._found[key])

    def find(self, name: str, kind: BtfKind | None = None) -> int:
        """The id of the type ``name`` (of ``kind``); BtfError when absent.

        Without ``kind``, a struct/union/typedef/func wins over a forward
        declaration or another kind sharing the name. Of several, the lowest
        id wins, so the walk stops at the first that qualifies.
        """
        key = (name, kind)
        if key not in self._first:
            best = weak = None
            for name_off in self._string_offsets(name):
                for type_id in self._ids_named(name_off, kind):
                    if kind is None and self.kind(type_id) in _WEAK_KINDS:
                        weak = type_id if weak is None else min(weak, type_id)
                        continue
                    best = type_id if best is None else min(best, type_id)
                    break
            self._first[key] = best if best is not None else weak
        found = self._first[key]
        if found is None:
            what = f"{kind.name.lower()} " if kind is not None else ""
            raise BtfError(f"no BTF {what}type named {name!r}")
        return found

    def find_id(self, name: str, kind: str | BtfKind | None = None) -> int:
        """Like :meth:`find`, with the kind also accepted by name (``"func"``, ``"typedef"``)."""
        if isinstance(kind, str):
            try:
                kind = BtfKind[kind.upper()]
            except KeyError:
                raise ValueError(f"unknown BTF kind {kind!r}") from None
        return self.find(name, kind)

    def func_id(self, name: str) -> int:
        """The BTF id of kernel function ``name`` (what fentry/fexit attach to)."""
        return self.find(name, BtfKind.FUNC)

    def kind(self, type_id: int) -> BtfKind:
        cached = self._decoded.get(type_id)
        if cached is not None:  # a decoded type is a dict hit; a record found anew is a walk from its mark
            return cached.kind
        return BtfKind(_known_kind((self._words[self._record_offset(type_id) + 1] >> 24) & 0x1F, type_id))

    def name_of(self, type_id: int) -> str:
        return self.string(self._words[self._record_offset(type_id)])

    def raw_type(self, type_id: int) -> BtfTypeRecord:
        """The record of ``type_id`` as stored (string offsets, not names); see :class:`BtfTypeRecord`."""
        first = self._record_offset(type_id)
        words = self._words
        if first + _COMMON_WORDS > len(words) or first + self._step(first, type_id) > len(words):
            raise BtfError(f"type id {type_id} runs past the end of the type section")
        info = words[first + 1]
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        extra = None
        spec = _TRAILING.get(kind)
        if spec is not None:
            codec, record, repeated = _trailing_codec(spec)
            start = 4 * (first + _COMMON_WORDS)
            if repeated:
                items = codec.iter_unpack(self._type_bytes[start : start + codec.size * vlen])
                extra = tuple(map(record._make, items))
            else:
                extra = record._make(codec.unpack_from(self._type_bytes, start))
        return BtfTypeRecord(words[first], info, kind, vlen, bool(info >> 31), words[first + 2], extra)

    def type(self, type_id: int) -> BtfType:
        """Decode one type (names resolved); decoded types are cached."""
        cached = self._decoded.get(type_id)
        if cached is None:
            cached = self._decoded[type_id] = self._decode(type_id)
        return cached

    def _decode(self, type_id: int) -> BtfType:
        record = self.raw_type(type_id)
        kind = BtfKind(_known_kind(record.kind, type_id))
        fields = dict(id=type_id, kind=kind, name=self.string(record.name_off), kind_flag=record.kind_flag)
        if kind in _SIZED:
            fields["size"] = record.size_or_type
        else:
            fields["type_id"] = record.size_or_type
        extra = record.extra
        if kind in (BtfKind.STRUCT, BtfKind.UNION):
            members = []
            for m in extra:
                if record.kind_flag:
                    members.append(Member(self.string(m.name_off), m.type, m.offset & 0xFFFFFF, m.offset >> 24))
                else:
                    members.append(Member(self.string(m.name_off), m.type, m.offset))
            fields["members"] = tuple(members)
        elif kind == BtfKind.FUNC_PROTO:
            fields["params"] = tuple(Param(self.string(p.name_off), p.type) for p in extra)
        elif kind == BtfKind.ARRAY:
            fields.update(type_id=extra.type, index_type_id=extra.index_type, nelems=extra.nelems)
        elif kind == BtfKind.FUNC:
            fields["linkage"] = record.vlen
        elif kind == BtfKind.VAR:
            fields["linkage"] = extra.linkage
        elif kind == BtfKind.INT:
            fields.update(encoding=extra.encoding >> 24 & 0xF, bit_offset=extra.encoding >> 16 & 0xFF, bits=extra.encoding & 0xFF)
        elif kind == BtfKind.ENUM:
            # stored as s32; an unsigned enum's values read as u32
            mask = 0 if record.kind_flag else 0xFFFFFFFF
            fields["values"] = tuple(EnumValue(self.string(e.name_off), e.val & mask if mask else e.val) for e in extra)
        elif kind == BtfKind.ENUM64:
            values = []
            for e in extra:
                value = e.val_hi32 << 32 | e.val_lo32
                if record.kind_flag and value >= 1 << 63:
                    value -= 1 << 64
                values.append(EnumValue(self.string(e.name_off), value))
            fields["values"] = tuple(values)
        elif kind == BtfKind.DATASEC:
            fields["entries"] = tuple(DatasecEntry(*entry) for entry in extra)
        elif kind == BtfKind.DECL_TAG:
            fields["component_idx"] = extra.component_idx
        return BtfType(**fields)

    def type_offset(self, type_id: int) -> int:
        """Byte offset of ``type_id``'s record in the blob (where a writer patches it)."""
        return self._types_start + 4 * self._record_offset(type_id)

    def record_size(self, type_id: int) -> int:
        """Length in bytes of ``type_id``'s record."""
        return 4 * self._step(self._record_offset(type_id), type_id)

    def names_starting(self, prefix: str) -> list[str]:
        """Every distinct string of the string section that starts with ``prefix`` (not empty)."""
        if not prefix:
            raise ValueError("names_starting needs a prefix")
        needle = b"\0" + prefix.encode()
        found: set[str] = set()
        pos = self._find(needle, self._strings_start, self._strings_end)
        while pos >= 0:
            end = self._find(b"\0", pos + 1, self._strings_end)
            if end < 0:
                break
            found.add(bytes(self.data[pos + 1 : end]).decode(errors="replace"))
            pos = self._find(needle, end, self._strings_end)
        return sorted(found)

    def resolve(self, type_id: int) -> int:
        """Follow typedef/const/volatile/restrict/type_tag to the underlying type id.

        BtfError when the chain is longer than :data:`MAX_DEPTH` (a cycle, in corrupt BTF).
        """
        start = type_id
        for _ in range(MAX_DEPTH):
            if not type_id:
                return 0
            t = self.type(type_id)  # decoded once and cached: a chain is followed by dict hits
            if t.kind not in _MODIFIERS:
                return type_id
            type_id = t.type_id or 0
        raise BtfError(f"type id {start}: more than {MAX_DEPTH} typedef/const/volatile/restrict/type_tag in a row (a cycle?)")

    def align_of(self, type_id: int) -> int:
        """alignof() of a type, as libbpf's btf__align_of computes it (1 for a packed struct)."""
        t = self.type(self.resolve(type_id))
        if t.kind in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.FLOAT):
            return min(8, t.size or 1)
        if t.kind == BtfKind.PTR:
            return 8
        if t.kind == BtfKind.ARRAY:
            return self.align_of(t.type_id or 0)
        if t.kind in (BtfKind.STRUCT, BtfKind.UNION):
            best = 1
            for member in t.members:
                align = self.align_of(member.type_id)
                if not member.bitfield_size and member.bit_offset % (8 * align):
                    return 1  # a member off its natural alignment: packed
                best = max(best, align)
            return 1 if (t.size or 0) % best else best
        raise BtfError(f"type {t.name or t.id} ({t.kind.name}) has no alignment")

    def size_of(self, type_id: int) -> int:
        """sizeof() of a type, through modifiers; pointers are 8 bytes (64-bit kernels).

        BtfError when arrays nest deeper than :data:`MAX_DEPTH` (a cycle, in corrupt BTF).
        """
        elements = 1  # arrays of arrays: the product of their lengths
        for _ in range(MAX_DEPTH):
            t = self.type(self.resolve(type_id))
            if t.kind == BtfKind.PTR:
                return elements * 8
            if t.kind != BtfKind.ARRAY:
                if t.size is None:
                    raise BtfError(f"type {t.name or t.id} ({t.kind.name}) has no size")
                return elements * t.size
            elements *= t.nelems or 0
            type_id = t.type_id or 0
        raise BtfError(f"type id {t.id}: arrays nested more than {MAX_DEPTH} deep (a cycle?)")

    def _struct(self, struct: str | int) -> BtfType:
        if isinstance(struct, str):
            # The first struct of that name, else the first union, else what
            # the first typedef of it names: find() stops at the first, where
            # find_all() would walk every type.
            for kind in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.TYPEDEF):
                try:
                    type_id = self.find(struct, kind)
                    break
                except BtfError:
                    continue
            else:
                raise BtfError(f"no BTF struct/union named {struct!r}")
            if kind == BtfKind.TYPEDEF:
                type_id = self.resolve(type_id)
        else:
            type_id = self.resolve(struct)
        t = self.type(type_id)
        if t.kind not in (BtfKind.STRUCT, BtfKind.UNION):
            raise BtfError(f"type {t.name or t.id} is a {t.kind.name.lower()}, not a struct or union")
        return t

    def _find_member(
        self, parent: BtfType, name: str, base_bits: int, searched: set[int] | None = None,
        enclosing: tuple[int, ...] = (),
    ) -> tuple[Member, int] | None:
        """Member ``name`` of ``parent`` or of its anonymous members, with its bit offset.

        ``searched``: the struct/union ids already searched in vain (a type that lacks the
        name lacks it wherever it appears, so each is searched once); ``enclosing``: the
        ids whose anonymous members lead here. A struct cannot hold itself, so meeting one
        of those again is corrupt BTF.
        """
        for member in parent.members:
            if member.name == name:
                return member, base_bits + member.bit_offset
        searched = set() if searched is None else searched
        searched.add(parent.id)
        enclosing += (parent.id,)
        # C11 anonymous struct/union members: their fields belong to the parent
        # (x86 pt_regs wraps cs/ss in unions since 6.9, for FRED).
        for member in parent.members:
            if not member.name:
                inner = self.type(self.resolve(member.type_id))
                if inner.kind not in (BtfKind.STRUCT, BtfKind.UNION):
                    continue
                if inner.id in enclosing:
                    raise BtfError(f"type id {parent.id}: an anonymous member is of type id {inner.id}, which holds it (a cycle)")
                if len(enclosing) > MAX_DEPTH:
                    raise BtfError(f"type id {parent.id}: anonymous members nested more than {MAX_DEPTH} deep")
                if inner.id not in searched:
                    found = self._find_member(inner, name, base_bits + member.bit_offset, searched, enclosing)
                    if found:
                        return found
        return None

    def member(self, struct: str | int, path: str) -> tuple[Member, int]:
        """Member ``path`` of a struct: (member, bit offset from the struct start).

        ``path`` names members through nested structs and array elements:
        ``"flags"``, ``"a.b"``, ``"regs[3]"``. For an element the member is the
        array's, the offset the element's.
        """
        parent = self._struct(struct)
        bits = 0
        member = None
        parts = path.split(".")
        for depth, part in enumerate(parts):
            name, index = _split_index(part, path)
            found = self._find_member(parent, name, bits)
            if found is None:
                raise BtfError(f"{parent.name or 'anonymous struct'} has no member {name!r}")
            member, bits = found
            element_type = member.type_id
            if index is not None:
                array_type = self.type(self.resolve(member.type_id))
                if array_type.kind != BtfKind.ARRAY or not 0 <= index < (array_type.nelems or 0):
                    raise BtfError(f"{path}: {name} is not an array with an element {index}")
                element_type = array_type.type_id or 0
                bits += 8 * index * self.size_of(element_type)
            if depth < len(parts) - 1:
                parent = self._struct(element_type)
        assert member is not None
        return member, bits

    def member_offset(self, struct: str | int, path: str) -> int:
        """Byte offset of member ``path`` (see :meth:`member`) in ``struct``; BtfError for bitfields."""
        member, bits = self.member(struct, path)
        if member.bitfield_size or bits % 8:
            raise BtfError(f"{path} is a bitfield (bit offset {bits}), it has no byte offset")
        return bits // 8

    def func_params(self, name: str) -> tuple[Param, ...]:
        """Parameters of kernel function ``name`` from its FUNC_PROTO."""
        func = self.type(self.func_id(name))
        proto = self.type(func.type_id or 0)
        return proto.params


def _split_index(part: str, path: str) -> tuple[str, int | None]:
    """``"regs[3]"`` -> ("regs", 3); ``"flags"`` -> ("flags", None)."""
    name, bracket, rest = part.partition("[")
    if not bracket:
        return part, None
    digits = rest[:-1]
    if not rest.endswith("]") or not digits.isdigit() or not digits.isascii() or len(digits) > 18:
        raise BtfError(f"{path[:80]}: {part[:40]!r} is not NAME[INDEX] (an index of at most 18 digits)")
    return name, int(digits)
