"""Results of BPF_OBJ_GET_INFO_BY_FD and BPF_PROG_TEST_RUN, as frozen dataclasses.

Imported on first use (``openat.syscalls.bpf`` resolves these names lazily):
defining the dataclasses is most of what importing the bpf() layer would
otherwise cost the tracer's start-up, which never needs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .bpf import _enum_name
from .constants import LinkType, MapType, ProgType

__all__ = ["LinkInfo", "MapInfo", "ProgInfo", "TestRunResult"]


@dataclass(frozen=True)
class ProgInfo:
    """BPF_OBJ_GET_INFO_BY_FD for a program."""

    id: int
    name: str
    type: int
    tag: str
    run_time_ns: int
    run_cnt: int
    recursion_misses: int
    verified_insns: int
    load_time: int
    created_by_uid: int
    btf_id: int
    attach_btf_id: int
    gpl_compatible: bool
    map_ids: tuple[int, ...] = ()

    @property
    def type_name(self) -> str:
        return _enum_name(ProgType, self.type)


@dataclass(frozen=True)
class MapInfo:
    """BPF_OBJ_GET_INFO_BY_FD for a map."""

    id: int
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int

    @property
    def type_name(self) -> str:
        return _enum_name(MapType, self.type)


@dataclass(frozen=True)
class LinkInfo:
    """BPF_OBJ_GET_INFO_BY_FD for a link (raw_tp name / tracing target filled in)."""

    id: int
    type: int
    prog_id: int
    tp_name: str | None = None
    attach_type: int | None = None
    target_obj_id: int | None = None
    target_btf_id: int | None = None

    @property
    def type_name(self) -> str:
        return _enum_name(LinkType, self.type)


@dataclass(frozen=True)
class TestRunResult:
    """Outcome of BPF_PROG_TEST_RUN; unpacks as ``(retval, data_out, duration)``."""

    retval: int
    data_out: bytes
    duration: int
    ctx_out: bytes = field(default=b"", repr=False)

    def __iter__(self):
        return iter((self.retval, self.data_out, self.duration))

    __test__ = False  # not a pytest test class despite the name
