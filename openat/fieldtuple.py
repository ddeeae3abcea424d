"""``FieldTuple``: what ``typing.NamedTuple`` gives, at a fraction of its class-creation cost.

openat's modules define about 30 record types on the tracer's import path
alone. ``typing.NamedTuple`` builds each one with ``collections.namedtuple``
(an ``eval`` per class) and, under ``from __future__ import annotations``,
compiles every field's annotation into a ``ForwardRef``: measured with
callgrind, 27 such classes cost 46 M instructions, about a third of the
tracer's whole import, where ``FieldTuple`` costs 17 M. Nothing here evaluates
an annotation; only the field names and their order are read from it.

Use it exactly as ``typing.NamedTuple``::

    class Point(FieldTuple):
        x: int
        y: int = 0

Instances are tuples (unpacking, indexing, equality and hashing are the
tuple's), with read-only fields by name, ``_fields``, ``_field_defaults``,
``_make``, ``_replace``, ``_asdict`` and a ``Point(x=1, y=0)`` repr. A
subclass without annotations keeps its parent's fields and may add methods
or a validating ``__new__``, as with a NamedTuple; a subclass that declares
more fields is refused, because ``typing.NamedTuple`` would silently ignore
them. Type checkers see ``typing.NamedTuple`` itself.
"""

from __future__ import annotations

from operator import itemgetter
from typing import TYPE_CHECKING, Any, Dict, Iterable, Tuple

try:  # CPython's C field accessor, what namedtuple itself uses
    from collections import _tuplegetter  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - other interpreters
    _tuplegetter = None


def _accessor(index: int, name: str) -> Any:
    if _tuplegetter is not None:
        return _tuplegetter(index, f"Field {index}: {name}")
    return property(itemgetter(index), doc=f"Field {index}: {name}")


class _FieldTupleMeta(type):
    def __new__(mcs, name: str, bases: Tuple[type, ...], namespace: Dict[str, Any]) -> "_FieldTupleMeta":
        namespace.setdefault("__slots__", ())  # no per-instance __dict__, as a namedtuple
        is_record = any(isinstance(base, _FieldTupleMeta) for base in bases)  # not _FieldTuple itself
        declared = tuple(namespace.get("__annotations__", ())) if is_record else ()
        inherited = any(isinstance(base, _FieldTupleMeta) and base._fields for base in bases)  # type: ignore[attr-defined]
        if declared and inherited:
            raise TypeError(f"{name}: a FieldTuple's subclass cannot add fields ({', '.join(declared)})")
        defaults: Dict[str, Any] = {}
        for field in declared:
            if field in namespace:
                defaults[field] = namespace.pop(field)
            elif defaults:
                raise TypeError(f"{name}: field {field!r} without a default follows fields with one")
        cls = super().__new__(mcs, name, bases, namespace)
        if declared:
            for index, field in enumerate(declared):
                setattr(cls, field, _accessor(index, field))
            cls._fields = declared
            cls._field_defaults = defaults
            cls.__match_args__ = declared
        return cls


class _FieldTuple(tuple, metaclass=_FieldTupleMeta):
    _fields: Tuple[str, ...] = ()
    _field_defaults: Dict[str, Any] = {}

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if kwargs or len(args) != len(cls._fields):
            args = cls._complete(args, kwargs)
        return tuple.__new__(cls, args)

    @classmethod
    def _complete(cls, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Tuple[Any, ...]:
        """The full argument tuple from positional and keyword arguments and the defaults."""
        fields = cls._fields
        if len(args) > len(fields):
            raise TypeError(f"{cls.__name__}() takes {len(fields)} arguments, {len(args)} given")
        values = list(args)
        for field in fields[len(args):]:
            if field in kwargs:
                values.append(kwargs.pop(field))
            elif field in cls._field_defaults:
                values.append(cls._field_defaults[field])
            else:
                raise TypeError(f"{cls.__name__}() missing required argument {field!r}")
        if kwargs:
            unknown = next(iter(kwargs))
            kind = "repeated" if unknown in fields else "unexpected"
            raise TypeError(f"{cls.__name__}() got {'an' if kind == 'unexpected' else 'a'} {kind} argument {unknown!r}")
        return tuple(values)

    @classmethod
    def _make(cls, iterable: Iterable[Any]) -> Any:
        """An instance from ``iterable``'s values, as namedtuple's ``_make`` (no ``__new__`` of a subclass)."""
        values = tuple.__new__(cls, iterable)
        if len(values) != len(cls._fields):
            raise TypeError(f"{cls.__name__}: expected {len(cls._fields)} values, got {len(values)}")
        return values

    def _replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` applied, field by field."""
        values = self._make(map(changes.pop, self._fields, self))
        if changes:
            raise ValueError(f"{type(self).__name__}: no fields named {', '.join(map(repr, changes))}")
        return values

    def _asdict(self) -> Dict[str, Any]:
        return dict(zip(self._fields, self))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in zip(self._fields, self))
        return f"{type(self).__name__}({fields})"

    def __getnewargs__(self) -> Tuple[Any, ...]:
        return tuple(self)  # pickle and copy rebuild through __new__ with the values


if TYPE_CHECKING:
    from typing import NamedTuple as FieldTuple
else:
    FieldTuple = _FieldTuple
