"""The :class:`Collection`: an object's maps and programs loaded into the running kernel.

Loading, in the order libbpf does it: the kernel's BTF (for CO-RE, typed
ksyms and BTF-attached programs), CO-RE resolved against it; the object's
BTF loaded (BPF_BTF_LOAD, sanitized for this kernel); the maps created
(``.rodata`` and ``.kconfig`` filled, then frozen); externs resolved; each
program's references filled, CO-RE applied, and BPF_PROG_LOAD with its
func_info and line_info, so that a verifier rejection names the C line of
each instruction. Everything is released on ``close()``, and on any failure
during loading (except pinned maps, which are pinned to outlive it).
"""

from __future__ import annotations

import errno
from typing import Dict, Iterable, Optional

from ..btf import Btf
from ..elf import CollectionSpec, ElfError, ResolvedSymbol, kconfig_data
from ..elf.programs import KCONFIG_MAP
from ..syscalls import features
from ..syscalls.btf import BtfFd, btf_load, vmlinux_btf
from ..syscalls.errors import BpfError, NotSupportedError
from ..syscalls.pin import BPF_FS
from .kernel import kernel_config, kernel_version, linux_values, resolve_ksym
from .maps import LoadedMap, LoadedVariable, create_map
from .programs import LoadedProgram, final_instructions, load_program

__all__ = ["Collection"]


class Collection:
    """Loaded programs, maps and variables of one object, by name; a context manager.

    ``programs`` (:class:`~openat.collection.programs.LoadedProgram`),
    ``maps`` (:class:`~openat.collection.maps.LoadedMap`), ``variables``
    (:class:`~openat.collection.maps.LoadedVariable`), ``btf`` (the
    object's BTF in the kernel, or None), ``btf_error`` (why it could not be
    loaded, when it could not: programs then load without func/line info),
    ``core`` (the CO-RE results used), ``spec``.
    """

    def __init__(self, spec: CollectionSpec) -> None:
        self.spec = spec
        self.programs: Dict[str, LoadedProgram] = {}
        self.maps: Dict[str, LoadedMap] = {}
        self.variables: Dict[str, LoadedVariable] = {}
        self.btf: Optional[BtfFd] = None
        self.btf_error: Optional[str] = None
        self.core: Dict = {}
        self.kernel_btf: Optional[Btf] = None

    @classmethod
    def load(
        cls,
        spec: CollectionSpec,
        *,
        programs: Optional[Iterable[str]] = None,
        kernel_btf: Optional[Btf] = None,
        kconfig: Optional[str] = None,
        pin_root: str = BPF_FS,
        log_level: int = 0,
    ) -> "Collection":
        """Load ``spec``: every autoload program (or those named in ``programs``) and every map.

        ``kernel_btf``: the BTF to resolve CO-RE against (default: this
        kernel's, /sys/kernel/btf/vmlinux); ``kconfig``: a config file for
        ``__kconfig`` externs (default: /proc/config.gz, then
        /boot/config-RELEASE); ``pin_root``: where LIBBPF_PIN_BY_NAME maps
        are pinned; ``log_level`` > 0 keeps each program's verifier log.
        """
        chosen = cls._chosen(spec, programs)
        collection = cls(spec)
        try:
            collection._load(chosen, kernel_btf, kconfig, pin_root, log_level)
        except BaseException:
            collection.close()
            raise
        return collection

    @staticmethod
    def _chosen(spec: CollectionSpec, programs: Optional[Iterable[str]]) -> list:
        if programs is None:
            return [name for name, program in spec.programs.items() if program.autoload]
        chosen = list(programs)
        for name in chosen:
            if name not in spec.programs:
                raise ElfError(f"no program {name!r} in the object; it has {', '.join(spec.programs) or 'none'}")
            if spec.programs[name].unsupported:
                raise ElfError(f"program {name!r} cannot be loaded: {spec.programs[name].unsupported}")
        return chosen

    def _load(self, chosen: list, kernel_btf: Optional[Btf], kconfig: Optional[str], pin_root: str, log_level: int) -> None:
        spec = self.spec
        self.kernel_btf = kernel_btf if kernel_btf is not None else self._kernel_btf(chosen)
        if self.kernel_btf is not None:
            self.core = spec.resolve_core(self.kernel_btf, chosen)
        elif spec.core_relocations(chosen):
            raise NotSupportedError(errno.ENOENT, "BTF", "the object has CO-RE relocations and this kernel has no BTF to resolve them against")
        self._load_btf()
        self._create_maps(kconfig, pin_root)
        symbols = self._resolve_ksyms()
        fds = {name: m.fileno() for name, m in self.maps.items()}
        version = spec.kern_version or kernel_version()
        for name in chosen:
            program = spec.programs[name]
            instructions = final_instructions(program, fds, symbols, self.core)
            fd = load_program(program, instructions, kernel=self.kernel_btf, btf_fd=self.btf.fileno() if self.btf else 0,
                              kern_version=version, log_level=log_level)
            self.programs[name] = LoadedProgram(fd, program)

    def _kernel_btf(self, chosen: list) -> Optional[Btf]:
        try:
            return vmlinux_btf()
        except BpfError:
            return None  # no BTF: fine unless something needs it, which says so

    def _load_btf(self) -> None:
        if self.spec.btf is None:
            return
        if not features.btf():
            self.btf_error = f"this kernel takes no BTF: {features.btf().reason}"
            return
        try:
            self.btf = btf_load(self.spec.kernel_btf(features.btf_features()))
        except BpfError as error:
            if error.errno in (errno.EPERM, errno.EACCES):
                raise
            self.btf_error = str(error)  # as libbpf: BTF is optional, programs load without it

    def _create_maps(self, kconfig: Optional[str], pin_root: str) -> None:
        spec = self.spec
        kconfig_map = spec.maps.get(KCONFIG_MAP)
        if kconfig_map is not None:
            config, _ = kernel_config(kconfig)
            assert spec.btf is not None
            kconfig_map.data[:] = kconfig_data(spec.btf, spec.externs.values(), kconfig_map.value_size, config, linux_values())
        btf_fd = self.btf.fileno() if self.btf else 0
        for name, map_spec in spec.maps.items():
            self.maps[name] = create_map(map_spec, btf_fd, pin_root)
        for name, variable in spec.variables.items():
            self.variables[name] = LoadedVariable(variable, self.maps[variable.section])

    def _resolve_ksyms(self) -> Dict[str, ResolvedSymbol]:
        symbols: Dict[str, ResolvedSymbol] = {}
        for extern in self.spec.externs.values():
            if extern.kind != "ksym":
                continue
            assert self.spec.btf is not None
            found = resolve_ksym(extern, self.spec.btf, self.kernel_btf)
            if found is not None:
                symbols[extern.name] = found
        return symbols

    # --- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Close every program, map and the BTF (idempotent). Pinned maps stay pinned."""
        failure: Optional[BaseException] = None
        for group in (self.programs, self.maps):
            while group:
                _, resource = group.popitem()
                try:
                    resource.close()
                except OSError as error:
                    failure = failure or error
        self.variables.clear()
        if self.btf is not None:
            self.btf.close()
            self.btf = None
        if failure is not None:
            raise failure

    @property
    def closed(self) -> bool:
        return not self.programs and not self.maps and self.btf is None

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<Collection {self.spec.name!r}: programs {list(self.programs)}, maps {list(self.maps)}>"

