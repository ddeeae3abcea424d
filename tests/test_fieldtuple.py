"""openat.fieldtuple.FieldTuple behaves as typing.NamedTuple where openat relies on it."""

from __future__ import annotations

import copy
import pickle
from typing import NamedTuple

import pytest

from openat.fieldtuple import FieldTuple


class Point(FieldTuple):
    x: int
    y: int = 0


class Checked(Point):
    """A subclass that validates, as tracer.probe's Filters and ProbeOptions do."""

    __slots__ = ()

    def __new__(cls, *args: object, **kwargs: object) -> "Checked":
        self = super().__new__(cls, *args, **kwargs)
        if self.x < 0:
            raise ValueError("negative x")
        return self

    @property
    def total(self) -> int:
        return self.x + self.y


class Twin(NamedTuple):
    x: int
    y: int = 0


@pytest.mark.parametrize("args, kwargs", [((1,), {}), ((1, 2), {}), ((), {"x": 3}), ((1,), {"y": 5}), ((), {"y": 4, "x": 2})])
def test_construction_as_namedtuple(args: tuple, kwargs: dict) -> None:
    point, twin = Point(*args, **kwargs), Twin(*args, **kwargs)
    assert tuple(point) == tuple(twin)
    assert (point.x, point.y) == (twin.x, twin.y)
    assert repr(point) == repr(twin).replace("Twin", "Point")
    assert point._asdict() == twin._asdict()
    assert point == twin and hash(point) == hash(twin)


def test_class_attributes_as_namedtuple() -> None:
    assert Point._fields == Twin._fields == ("x", "y")
    assert Point._field_defaults == Twin._field_defaults == {"y": 0}
    assert Point.__match_args__ == ("x", "y")
    assert Point._make([7, 8]) == Point(7, 8)


@pytest.mark.parametrize("call", [lambda t: t(), lambda t: t(1, 2, 3), lambda t: t(1, z=2), lambda t: t(1, x=2)])
def test_bad_arguments_raise_type_error_as_namedtuple(call) -> None:
    with pytest.raises(TypeError):
        call(Twin)
    with pytest.raises(TypeError):
        call(Point)


def test_fields_are_read_only_and_there_is_no_instance_dict() -> None:
    point = Point(1)
    with pytest.raises(AttributeError):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        point.other = 2  # type: ignore[attr-defined]


def test_replace_applies_changes_and_refuses_unknown_fields() -> None:
    assert Point(1, 2)._replace(y=9) == Point(1, 9)
    with pytest.raises(ValueError, match="'z'"):
        Point(1)._replace(z=1)


def test_subclass_keeps_fields_and_its_own_new() -> None:
    checked = Checked(2, 3)
    assert checked._fields == ("x", "y") and checked.total == 5 and repr(checked) == "Checked(x=2, y=3)"
    assert type(checked._replace(y=1)) is Checked
    with pytest.raises(ValueError, match="negative"):
        Checked(-1)


def test_pickle_and_copy_round_trip() -> None:
    for value in (Point(1, 2), Checked(4, 5)):
        assert pickle.loads(pickle.dumps(value)) == value
        assert type(copy.deepcopy(value)) is type(value)


def test_pattern_matching_by_position() -> None:
    match Point(1, 2):
        case Point(a, b):
            assert (a, b) == (1, 2)
        case _:
            pytest.fail("no match")


def test_a_subclass_cannot_add_fields() -> None:
    with pytest.raises(TypeError, match="cannot add fields"):
        class Wider(Point):  # noqa: F841 - the definition itself must fail
            z: int


def test_a_required_field_cannot_follow_a_default() -> None:
    with pytest.raises(TypeError, match="'b' without a default"):
        class Bad(FieldTuple):  # noqa: F841
            a: int = 0
            b: int
