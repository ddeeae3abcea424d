"""Fixtures of the ELF tests: objects compiled in this run (or committed ones), and fd-leak checks for the loads."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable, Dict, Iterator

import pytest

from ..support import need_root
from .objects import C_DIR, FIXTURE_NAMES, IN_GUEST, compile_object, fixture, toolchain_missing, write_vmlinux_h


def _open_fds() -> Dict[int, str]:
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
    return fds


@pytest.fixture
def no_fd_leaks():
    """The test must close everything it loads (programs, maps, BTF, perf events)."""
    before = _open_fds()
    yield
    leaked = {fd: target for fd, target in _open_fds().items() if before.get(fd) != target}
    assert not leaked, f"test leaked fds: {leaked}"


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bpf-objects")


@pytest.fixture(scope="session")
def compiled(build_dir) -> Callable[[str], Path]:
    """``compiled("maps")``: tests/elf/c/maps.bpf.c compiled now with clang-19 (skips where the toolchain is missing)."""
    missing = toolchain_missing()
    if missing:
        pytest.skip(f"cannot compile BPF objects: {missing}")
    write_vmlinux_h(build_dir)
    cache: Dict[str, Path] = {}

    def build(name: str, source: Path | None = None) -> Path:
        if name not in cache:
            cache[name] = compile_object(source or C_DIR / f"{name}.bpf.c", build_dir)
        return cache[name]

    return build


@pytest.fixture(scope="session")
def bpf_object(request) -> Callable[[str], Path]:
    """``bpf_object("core")``: compiled in this run where the toolchain is there, else the committed fixture.

    In the qemu guest the fixtures are used as they are: an object compiled
    on one kernel's headers and loaded on another is what CO-RE is for, and
    compiling under emulation would cost minutes.
    """
    missing = toolchain_missing()
    if IN_GUEST or missing:
        def committed(name: str) -> Path:
            if name not in FIXTURE_NAMES:
                pytest.skip(f"{name}.bpf.o has no committed fixture and cannot be compiled here: {missing or 'in the guest'}")
            return fixture(name)

        return committed
    return request.getfixturevalue("compiled")


SYS_FS_BPF = "/sys/fs/bpf"


@pytest.fixture(scope="session")
def bpf_fs() -> Iterator[str]:
    """/sys/fs/bpf, a BPF filesystem for pins (libbpf's default pin root, and the loader's).

    A machine without systemd (a container, a minimal VM) often has none
    mounted there; the kernel still has the filesystem, so the session mounts
    it, and unmounts it at the end.
    """
    if os.path.ismount(SYS_FS_BPF):
        yield SYS_FS_BPF
        return
    need_root()
    result = subprocess.run(["mount", "-t", "bpf", "bpf", SYS_FS_BPF], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"{SYS_FS_BPF} is not a BPF filesystem mount, and mounting one failed: {result.stderr.strip()}")
    try:
        yield SYS_FS_BPF
    finally:
        subprocess.run(["umount", SYS_FS_BPF], check=False)
