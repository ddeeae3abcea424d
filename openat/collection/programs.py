"""Programs of a loaded object: their final instructions, BPF_PROG_LOAD, and attach() by section.

Attaching dispatches on the section's row of libbpf's table
(:data:`openat.elf.SECTION_DEFS`) to the :mod:`openat.link` module of that
hook; ``attach(target=...)`` replaces the attach point the section names
(for xdp and tc it is the interface, which no section names).
"""

from __future__ import annotations

import errno
from typing import Any, Dict, List, Optional, Tuple

from ..arch import syscall_wrapper_prefix
from ..btf import Btf, BtfError, BtfKind
from ..btf.core import CoreResult
from ..btf.ext import encode_func_info, encode_line_info
from ..elf import ElfError, ProgramSpec, ResolvedSymbol, apply_core, fill_references
from ..elf.sections import ATTACH_BTF
from ..link import Link
from ..link import kprobe, raw_tracepoint, tracepoint, tracing
from ..syscalls.errors import NotSupportedError
from ..syscalls.programs import ProgramFd, prog_load
from ..uapi import ProgType

__all__ = ["LoadedProgram", "attach_btf_id", "final_instructions", "load_program"]

# SEC("lsm/NAME") attaches to the LSM hook bpf_lsm_NAME, SEC("iter/NAME") to bpf_iter_NAME.
_BTF_TARGET_PREFIX = {ProgType.LSM: "bpf_lsm_"}


def attach_btf_id(program: ProgramSpec, kernel: Optional[Btf]) -> int:
    """The BTF id in the kernel that a BTF-attached program (fentry/fexit/tp_btf/lsm/iter) is loaded for; 0 for others."""
    if program.definition is None or ATTACH_BTF not in program.definition.flags:
        return 0
    if kernel is None:
        raise NotSupportedError(errno.ENOENT, "BTF", f"program {program.name!r} ({program.section}) needs the kernel's BTF, and it has none")
    if program.definition.pattern.startswith("tp_btf"):
        name, kind = f"btf_trace_{program.attach_to}", BtfKind.TYPEDEF
    elif program.definition.pattern.startswith("iter"):
        name, kind = f"bpf_iter_{program.attach_to}", BtfKind.FUNC
    else:
        name, kind = _BTF_TARGET_PREFIX.get(program.prog_type, "") + program.attach_to, BtfKind.FUNC
    if not program.attach_to:
        raise ElfError(f"program {program.name!r}: section {program.section!r} names no target (SEC(\"fentry/FUNCTION\"))")
    try:
        return kernel.find(name, kind)
    except BtfError:
        raise NotSupportedError(errno.ENOENT, "BTF", f"program {program.name!r}: no {kind.name.lower()} {name!r} in the kernel's BTF") from None


def final_instructions(
    program: ProgramSpec, map_fds: Dict[str, int], symbols: Dict[str, ResolvedSymbol], core: Dict[Tuple[str, int], CoreResult]
):
    """The instructions to load: references filled (same indices), then CO-RE applied (which may add instructions)."""
    filled = fill_references(program.instructions, program.references, map_fds, symbols)
    return apply_core(filled, program.core_relocations, core, program.name)


def load_program(
    program: ProgramSpec, instructions, *, kernel: Optional[Btf], btf_fd: int, kern_version: int, log_level: int = 0
) -> ProgramFd:
    """BPF_PROG_LOAD of ``program`` with ``instructions`` (from :func:`final_instructions`)."""
    if program.unsupported:
        raise ElfError(f"program {program.name!r} cannot be loaded: {program.unsupported}")
    code = b"".join(instruction.encode() for instruction in instructions)
    info = {}
    if btf_fd and program.func_info:
        # offsets in slots: a poisoned 64-bit load (two slots either way) moves nothing
        info = dict(
            btf_fd=btf_fd,
            func_info=encode_func_info(list(program.func_info), program.func_info_record_size),
            func_info_rec_size=program.func_info_record_size,
            line_info=encode_line_info(list(program.line_info), program.line_info_record_size),
            line_info_rec_size=program.line_info_record_size,
        )
    sources: List[str] = []
    for instruction in instructions:
        sources.extend([instruction.source] * instruction.slots)
    return prog_load(
        code, program.prog_type, name=program.name, license=program.license, expected_attach_type=program.attach_type,
        attach_btf_id=attach_btf_id(program, kernel), prog_flags=program.prog_flags, kern_version=kern_version,
        slot_sources=sources, log_level=log_level, **info,
    )


class LoadedProgram(ProgramFd):
    """A program of a loaded collection: a :class:`~openat.syscalls.programs.ProgramFd` that knows its ``spec``.

    :meth:`attach` attaches it where its section says (or to ``target``)
    and returns the :class:`~openat.link.Link`; closing the link detaches it.
    """

    __slots__ = ("spec",)

    def __init__(self, fd: ProgramFd, spec: ProgramSpec) -> None:
        super().__init__(fd.detach(), fd.name, fd.prog_type, fd.expected_attach_type, fd.verifier_log)
        self.spec = spec

    def attach(self, target: Optional[str] = None, **options: Any) -> Link:
        """Attach by section (``kprobe/FUNC``, ``tracepoint/CAT/NAME``, ``raw_tp/NAME``, ``fentry/...``);
        ``target`` overrides the section's attach point. ``xdp`` and ``tc`` programs need ``target``, the
        interface (name or index); ``options`` go to :func:`openat.link.xdp.attach` (``mode=``) or
        :func:`openat.link.tc.attach` (``direction=``, by default the section's: ``tc/egress``...)."""
        definition = self.spec.definition
        how = definition.attach if definition is not None else ""
        handler = _ATTACH.get(how)
        if handler is None:
            raise NotSupportedError(
                errno.EOPNOTSUPP, "attach",
                f"program {self.name!r} (section {self.spec.section!r}): openat cannot attach {how or 'this kind of'} programs by section; "
                "use the openat.link module of the hook, or BPF_LINK_CREATE, with this program's fd",
            )
        if how in _NETWORK:
            return handler(self, target, options)
        if options:
            raise TypeError(f"attach() of a {how} program takes no options ({', '.join(options)})")
        return handler(self, target if target is not None else self.spec.attach_to)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<LoadedProgram {self.name!r} {self.spec.section!r} {state}>"


def _need(program: LoadedProgram, where: str, form: str) -> str:
    if not where:
        raise ElfError(f"program {program.name!r}: section {program.spec.section!r} names no attach point; attach(target={form!r})")
    return where


def _kprobe(program: LoadedProgram, where: str, retprobe: bool = False) -> Link:
    symbol, plus, offset = _need(program, where, "FUNCTION[+OFFSET]").partition("+")
    try:
        number = int(offset, 0) if plus else 0
    except ValueError:
        raise ElfError(f"program {program.name!r}: kprobe offset {offset!r} is not a number") from None
    return kprobe.attach(program, symbol, retprobe=retprobe, offset=number)


def _ksyscall(program: LoadedProgram, where: str, retprobe: bool = False) -> Link:
    name = _need(program, where, "SYSCALL")
    return kprobe.attach(program, f"{syscall_wrapper_prefix()}sys_{name}", retprobe=retprobe)


def _tracepoint(program: LoadedProgram, where: str) -> Link:
    category, slash, name = _need(program, where, "CATEGORY/NAME").partition("/")
    if not slash or not name:
        raise ElfError(f"program {program.name!r}: tracepoint {where!r} is not CATEGORY/NAME")
    return tracepoint.attach(program, category, name)


def _raw_tracepoint(program: LoadedProgram, where: str) -> Link:
    return raw_tracepoint.attach(program, _need(program, where, "TRACEPOINT"))


def _tracing(program: LoadedProgram, where: str) -> Link:
    if where != program.spec.attach_to:
        raise ElfError(f"program {program.name!r}: a {program.spec.section.split('/')[0]} program's target is fixed when it is loaded")
    return tracing.attach(program, f"{program.spec.section}")


def _xdp(program: LoadedProgram, target: Optional[str], options: Dict[str, Any]) -> Link:
    from ..link import xdp  # pyroute2 comes with it: only for XDP programs

    return xdp.attach(program, _interface(program, target), **options)


def _tc(program: LoadedProgram, target: Optional[str], options: Dict[str, Any]) -> Link:
    from ..link import tc  # pyroute2 comes with it: only for tc programs

    options.setdefault("direction", program.spec.attach_to or "ingress")  # SEC("tc/egress"): egress
    return tc.attach(program, _interface(program, target), **options)


def _interface(program: LoadedProgram, target: Optional[str]):
    if target is None:
        raise ElfError(f"program {program.name!r} (section {program.spec.section!r}) attaches to an interface: attach(target='eth0')")
    return int(target) if isinstance(target, str) and target.isdigit() else target


_NETWORK = ("xdp", "tc")
_ATTACH = {
    "kprobe": _kprobe,
    "kretprobe": lambda program, where: _kprobe(program, where, retprobe=True),
    "ksyscall": _ksyscall,
    "kretsyscall": lambda program, where: _ksyscall(program, where, retprobe=True),
    "tracepoint": _tracepoint,
    "raw_tracepoint": _raw_tracepoint,
    "tracing": _tracing,
    "xdp": _xdp,
    "tc": _tc,
}
