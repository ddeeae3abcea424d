"""BTF-typed tracing programs: fentry, fexit and tp_btf (BPF_PROG_TYPE_TRACING).

Their target is fixed when the program is loaded (``attach_btf_id``: the
kernel function's BTF id, or the ``btf_trace_<name>`` typedef of a raw
tracepoint), so this module loads them too; attaching then needs no name.
fentry/fexit need BPF trampolines, which kernel lockdown may refuse even
to root.
"""

from __future__ import annotations

import errno
from typing import Any, Dict

from ..btf import Btf, BtfError, BtfKind
from ..syscalls.errors import NotSupportedError
from ..syscalls.fd import FdLike
from ..syscalls.links import raw_tracepoint_open
from ..syscalls.programs import ProgramFd, prog_load
from ..uapi import AttachType, ProgType
from .link import Link

__all__ = ["TRACING_ATTACH_TYPES", "attach", "load", "target_btf_id"]

TRACING_ATTACH_TYPES: Dict[str, int] = {
    "fentry": AttachType.TRACE_FENTRY,
    "fexit": AttachType.TRACE_FEXIT,
    "fmod_ret": AttachType.MODIFY_RETURN,
    "tp_btf": AttachType.TRACE_RAW_TP,
}


def target_btf_id(kind: str, target: str, btf: Btf) -> int:
    """The BTF id a ``kind`` program on ``target`` is loaded with; NotSupportedError when ``btf`` lacks it."""
    if kind == "tp_btf":
        name, btf_kind = f"btf_trace_{target}", BtfKind.TYPEDEF
    else:
        name, btf_kind = target, BtfKind.FUNC
    try:
        return btf.find(name, btf_kind)
    except BtfError:
        raise NotSupportedError(errno.ENOENT, "BTF", f"no BTF {btf_kind.name.lower()} {name!r} in vmlinux") from None


def load(code: bytes, kind: str, target: str, *, btf: Btf, name: str, **options: Any) -> ProgramFd:
    """BPF_PROG_LOAD a ``kind`` ("fentry", "fexit", "fmod_ret", "tp_btf") program on ``target``.

    ``options`` go to :func:`openat.syscalls.programs.prog_load` (``slot_sources``, ...).
    """
    try:
        attach_type = TRACING_ATTACH_TYPES[kind]
    except KeyError:
        raise ValueError(f"unknown tracing program kind {kind!r}; choose one of {', '.join(TRACING_ATTACH_TYPES)}") from None
    return prog_load(
        code, ProgType.TRACING, name=name, expected_attach_type=attach_type,
        attach_btf_id=target_btf_id(kind, target, btf), **options,
    )


def attach(program: FdLike, description: str = "its BTF target") -> Link:
    """Attach a loaded tracing program to the target it was loaded for."""
    link = raw_tracepoint_open(program, None)
    return Link(f"tracing {description}", [link])
