"""Map definitions: BTF-defined maps of ``.maps``, and the maps that hold global data (pure).

A libbpf-style object defines each map as a variable of section ``.maps``
whose *type* says everything (the variable's bytes are zero)::

    struct {
        __uint(type, BPF_MAP_TYPE_HASH);   // int (*type)[BPF_MAP_TYPE_HASH]: the number is an array length
        __uint(max_entries, 10240);
        __type(key, u32);                  // u32 *key: the pointee is the key type
        __type(value, struct event);
    } events SEC(".maps");

so the object's BTF is read here: a pointer-to-array member is a number, a
pointer member a type. Fields, as libbpf knows them: ``type``,
``max_entries``, ``map_flags``, ``numa_node``, ``key_size``, ``key``,
``value_size``, ``value``, ``pinning``, ``map_extra``, and ``values`` (the
inner map of a map-in-map, or a prog array's programs). An unknown field is
an error, as in libbpf.

Global variables live in sections ``.data``, ``.rodata``, ``.bss`` (and
``.data.NAME``...): each becomes a one-element ARRAY map whose value is the
section, ``.rodata`` read-only for programs (BPF_F_RDONLY_PROG) and frozen
after it is filled.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from ..btf import Btf, BtfError, BtfKind, BtfType
from ..uapi import BPF_F_MMAPABLE, BPF_F_RDONLY_PROG, MapType, enum_name
from .errors import ElfError

__all__ = [
    "LIBBPF_PIN_BY_NAME",
    "MapSpec",
    "data_map",
    "data_map_kind",
    "internal_map_name",
    "parse_map_definition",
    "parse_maps_section",
]

LIBBPF_PIN_NONE = 0
LIBBPF_PIN_BY_NAME = 1
BTF_VAR_STATIC = 0
_U32_MAX = 0xFFFFFFFF
_MAX_KEY = 512  # the kernel's limit for a hash key (MAX_BPF_STACK)
# An array's value is allocated with kmalloc/vmalloc: KMALLOC_MAX_SIZE is a few MiB; far beyond it is impossible.
_MAX_DATA_SECTION = 1 << 26
# Map types libbpf creates without BTF key/value types (the kernel rejects them there).
_NO_BTF_TYPES = frozenset(
    int(t)
    for t in (
        MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY, MapType.STACK_TRACE, MapType.ARRAY_OF_MAPS,
        MapType.HASH_OF_MAPS, MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.XSKMAP,
        MapType.SOCKMAP, MapType.SOCKHASH, MapType.QUEUE, MapType.STACK,
    )
)
_NUMBER_FIELDS = ("type", "max_entries", "map_flags", "numa_node", "key_size", "value_size", "pinning", "map_extra")


class MapSpec:
    """A map as the object defines it; change fields (``max_entries``...) before loading if you must.

    ``section`` is ``.maps`` for a defined map, the data section for global
    data (then ``data`` holds its initial bytes, and ``kind`` is
    ``"data"``, ``"rodata"``, ``"bss"`` or ``"kconfig"``). ``max_entries``
    0 for a PERF_EVENT_ARRAY means one slot per possible CPU, filled in at
    load. ``key_type_id``/``value_type_id`` are ids in the object's BTF (0:
    none); ``kernel_name`` is the name the kernel is given (libbpf's, at
    most 15 characters).
    """

    # A plain class, not a dataclass: importing dataclasses costs every load ~10 ms (inspect).
    _FIELDS = ("name", "type", "key_size", "value_size", "max_entries", "flags", "section", "kind", "kernel_name",
               "numa_node", "pinning", "map_extra", "key_type_id", "value_type_id", "inner")

    def __init__(
        self, name: str, type: int, key_size: int, value_size: int, max_entries: int, flags: int = 0, *,
        section: str = ".maps", kind: str = "", kernel_name: str = "", numa_node: int = 0, pinning: int = LIBBPF_PIN_NONE,
        map_extra: int = 0, key_type_id: int = 0, value_type_id: int = 0, inner: Optional["MapSpec"] = None,
        data: Optional[bytearray] = None, btf: Optional[Btf] = None,
    ) -> None:
        self.name = name
        self.type = type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.flags = flags
        self.section = section
        self.kind = kind  # "" for a .maps map, else the global data kind
        self.kernel_name = kernel_name or name
        self.numa_node = numa_node
        self.pinning = pinning
        self.map_extra = map_extra
        self.key_type_id = key_type_id
        self.value_type_id = value_type_id
        self.inner = inner
        self.data = data if data is not None else bytearray()
        self.btf = btf

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"MapSpec({fields})"

    @property
    def key_type(self) -> Optional[BtfType]:
        """The key's BTF type (in the object's BTF), or None."""
        return self.btf.type(self.key_type_id) if self.btf is not None and self.key_type_id else None

    @property
    def value_type(self) -> Optional[BtfType]:
        """The value's BTF type (for global data: the section's DATASEC), or None."""
        return self.btf.type(self.value_type_id) if self.btf is not None and self.value_type_id else None

    @property
    def btf_types_allowed(self) -> bool:
        """Whether the kernel takes BTF key/value types for this map type (libbpf drops them for these)."""
        return self.type not in _NO_BTF_TYPES

    @property
    def type_name(self) -> str:
        return enum_name(MapType, self.type)

    def check(self) -> None:
        """ElfError naming the map when its geometry cannot be right for its type."""
        where = f"map {self.name!r} in {self.section}"
        kind = self.type
        if kind <= 0:
            raise ElfError(f"{where}: no map type (__uint(type, BPF_MAP_TYPE_...) missing)")
        if kind == MapType.RINGBUF:
            if self.key_size or self.value_size:
                raise ElfError(f"{where}: a ringbuf has no key or value (key_size {self.key_size}, value_size {self.value_size})")
            if self.max_entries <= 0:
                raise ElfError(f"{where}: a ringbuf needs max_entries, its size in bytes")
            return
        if kind == MapType.PERF_EVENT_ARRAY:
            if (self.key_size, self.value_size) not in ((4, 4), (0, 0)):
                raise ElfError(f"{where}: a perf_event_array has 4-byte keys and values, not {self.key_size} and {self.value_size}")
            return
        if kind in (MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER) and self.key_size:
            raise ElfError(f"{where}: a {self.type_name} map has no key (key_size {self.key_size})")
        if kind not in (MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER) and self.key_size <= 0:
            raise ElfError(f"{where}: key_size is 0 (give __type(key, ...) or __uint(key_size, ...))")
        if kind in (MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.PROG_ARRAY, MapType.ARRAY_OF_MAPS) and self.key_size != 4:
            raise ElfError(f"{where}: an {self.type_name} map has 4-byte keys, not {self.key_size}")
        if self.key_size > _MAX_KEY:
            raise ElfError(f"{where}: key_size {self.key_size} is over the kernel's {_MAX_KEY}")
        if self.value_size <= 0 and kind not in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.PROG_ARRAY):
            raise ElfError(f"{where}: value_size is 0 (give __type(value, ...) or __uint(value_size, ...))")
        if self.max_entries <= 0:
            raise ElfError(f"{where}: max_entries is 0")
        if kind in (MapType.ARRAY, MapType.PERCPU_ARRAY) and self.value_size * self.max_entries > _U32_MAX:
            raise ElfError(f"{where}: {self.max_entries} values of {self.value_size} bytes exceed 4 GiB")


def internal_map_name(object_name: str, section: str) -> str:
    """The kernel name libbpf gives a global data map: ``<object name prefix><section>``, 15 characters at most.

    ``.data``, ``.rodata``, ``.bss`` and ``.kconfig`` get as much of the
    object's name as fits before them (7 characters are kept for the
    suffix); ``.data.NAME``-style sections keep their own name only.
    """
    suffix_length = min(max(7, len(section)), 15)
    prefix_length = 0 if "." in section[1:] else min(16 - suffix_length - 1, len(object_name))
    name = object_name[:prefix_length] + section[:suffix_length]
    return "".join(c if c.isascii() and (c.isalnum() or c in "_.") else "_" for c in name)


def data_map_kind(section: str) -> Optional[str]:
    """``"data"``, ``"rodata"`` or ``"bss"`` for a global data section name, else None."""
    for kind in ("data", "rodata", "bss"):
        if section == f".{kind}" or section.startswith(f".{kind}."):
            return kind
    return None


def data_map(object_name: str, section: str, kind: str, data: bytes, size: int, btf: Optional[Btf]) -> MapSpec:
    """The ARRAY map holding global data section ``section`` (``data`` its bytes, empty for .bss)."""
    if size > _MAX_DATA_SECTION:
        raise ElfError(f"section {section!r}: {size} bytes of global data are more than a map value can hold")
    value_type_id = 0
    mmapable = False
    if btf is not None:
        try:
            value_type_id = btf.find(section, BtfKind.DATASEC)
        except BtfError:
            value_type_id = 0  # .rodata.str1.1 and friends: strings, no variables
        if value_type_id:
            mmapable = any(btf.type(entry.type_id).linkage != BTF_VAR_STATIC for entry in btf.type(value_type_id).entries
                           if btf.kind(entry.type_id) == BtfKind.VAR)
    flags = BPF_F_RDONLY_PROG if kind in ("rodata", "kconfig") else 0
    if mmapable:
        flags |= BPF_F_MMAPABLE
    content = bytearray(data) if kind != "bss" else bytearray(size)
    return MapSpec(
        section, MapType.ARRAY, 4, size, 1, flags, section=section, kind=kind,
        kernel_name=internal_map_name(object_name, section), value_type_id=value_type_id, data=content, btf=btf,
    )


# --- BTF-defined maps ---------------------------------------------------------------


def _number(btf: Btf, member_type: int, where: str) -> int:
    """The value of an ``__uint(name, value)`` member: ``int (*name)[value]``."""
    pointer = btf.type(btf.resolve(member_type))
    if pointer.kind != BtfKind.PTR:
        raise ElfError(f"{where} is not a pointer to an array (write it with __uint())")
    array = btf.type(pointer.type_id or 0) if pointer.type_id else None
    if array is None or array.kind != BtfKind.ARRAY:
        raise ElfError(f"{where} does not point to an array (write it with __uint())")
    return array.nelems or 0


def _pointee(btf: Btf, member_type: int, where: str) -> int:
    """The type of an ``__type(name, T)`` member: ``T *name``."""
    pointer = btf.type(btf.resolve(member_type))
    if pointer.kind != BtfKind.PTR or not pointer.type_id:
        raise ElfError(f"{where} is not a pointer to a type (write it with __type())")
    return pointer.type_id


def _sized(btf: Btf, type_id: int, where: str) -> int:
    try:
        return btf.size_of(type_id)
    except BtfError as error:
        raise ElfError(f"{where}: {error}") from None


def parse_map_definition(btf: Btf, name: str, type_id: int, where: str, inner: bool = False) -> MapSpec:
    """The MapSpec that BTF type ``type_id`` (a struct of __uint/__type members) defines."""
    definition = btf.type(btf.resolve(type_id))
    if definition.kind != BtfKind.STRUCT:
        raise ElfError(f"{where}: the map definition is a {definition.kind.name.lower()}, not a struct")
    values: Dict[str, int] = {}
    key_type_id = value_type_id = 0
    inner_spec: Optional[MapSpec] = None
    for position, member in enumerate(definition.members):
        what = f"{where}: field {member.name!r}"
        if member.name in _NUMBER_FIELDS:
            values[member.name] = _number(btf, member.type_id, what)
        elif member.name in ("key", "value"):
            pointee = _pointee(btf, member.type_id, what)
            size = _sized(btf, pointee, what)
            given = values.get(f"{member.name}_size")
            if given is not None and given != size:
                raise ElfError(f"{where}: conflicting {member.name} sizes {given} and {size} ({member.name}_size against the {member.name} type)")
            values[f"{member.name}_size"] = size
            if member.name == "key":
                key_type_id = pointee
            else:
                value_type_id = pointee
        elif member.name == "values":
            if inner or position != len(definition.members) - 1:
                raise ElfError(f"{where}: 'values' must be the last field, and inner maps cannot nest")
            inner_spec = _parse_values(btf, name, member.type_id, where)
        else:
            raise ElfError(f"{where}: unknown field {member.name!r}")
    pinning = values.get("pinning", LIBBPF_PIN_NONE)
    if pinning not in (LIBBPF_PIN_NONE, LIBBPF_PIN_BY_NAME) or (inner and pinning):
        raise ElfError(f"{where}: pinning {pinning} (only LIBBPF_PIN_BY_NAME, and not for an inner map)")
    spec = MapSpec(
        name, values.get("type", 0), values.get("key_size", 0), values.get("value_size", 0), values.get("max_entries", 0),
        values.get("map_flags", 0), numa_node=values.get("numa_node", 0), pinning=pinning, map_extra=values.get("map_extra", 0),
        key_type_id=key_type_id, value_type_id=value_type_id, inner=inner_spec, btf=btf,
    )
    if spec.type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.PROG_ARRAY) and not spec.value_size:
        spec.value_size = 4  # a map or program fd
    if spec.type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS) and inner_spec is None:
        raise ElfError(f"{where}: a map-in-map needs __array(values, struct {{...}}) to define its inner map")
    return spec


def _parse_values(btf: Btf, name: str, member_type: int, where: str) -> Optional[MapSpec]:
    """``__array(values, struct inner)``: a zero-length array of pointers to the inner definition (None for a prog array)."""
    array = btf.type(btf.resolve(member_type))
    if array.kind != BtfKind.ARRAY or array.nelems:
        raise ElfError(f"{where}: 'values' is not a zero-length array (write it with __array())")
    pointer = btf.type(btf.resolve(array.type_id or 0))
    if pointer.kind != BtfKind.PTR or not pointer.type_id:
        raise ElfError(f"{where}: 'values' is not an array of pointers")
    target = btf.type(btf.resolve(pointer.type_id))
    if target.kind == BtfKind.FUNC_PROTO:
        return None  # a prog array's element type
    if target.kind != BtfKind.STRUCT:
        raise ElfError(f"{where}: 'values' points to a {target.kind.name.lower()}, not an inner map definition")
    inner = parse_map_definition(btf, f"{name}.inner", pointer.type_id, f"{where} (inner map)", inner=True)
    inner.check()
    return inner


def parse_maps_section(btf: Optional[Btf], section: str, symbol_offsets: Dict[str, int]) -> List[tuple]:
    """``(offset, MapSpec)`` for each variable of DATASEC ``section`` (``.maps``).

    Offsets come from the ELF symbols (``symbol_offsets``: name -> value),
    since clang leaves them zero in BTF. ElfError when BTF is missing or wrong.
    """
    if btf is None:
        raise ElfError(f"section {section!r} defines maps but the object has no .BTF (compile with -g)")
    try:
        datasec_id = btf.find(section, BtfKind.DATASEC)
    except BtfError:
        raise ElfError(f"section {section!r} has no DATASEC in .BTF describing its maps") from None
    maps = []
    try:
        for entry in btf.type(datasec_id).entries:
            variable = btf.type(entry.type_id)
            if variable.kind != BtfKind.VAR:
                raise ElfError(f"{section}: entry [{entry.type_id}] is a {variable.kind.name.lower()}, not a map variable")
            where = f"map {variable.name!r} in {section}"
            if variable.name not in symbol_offsets:
                raise ElfError(f"{where}: no ELF symbol of that name in {section}")
            spec = parse_map_definition(btf, variable.name, variable.type_id or 0, where)
            maps.append((symbol_offsets[variable.name], spec))
    except BtfError as error:
        raise ElfError(f"{section}: bad BTF of a map definition: {error}") from None
    return maps
