"""Fixtures for the syscalls tests: they run for real as root (CI does)."""

from __future__ import annotations

import os

import pytest

from ..support import need_root

def _open_fds() -> dict[int, str]:
    """fd → target; the directory fd listdir itself used is gone by now and dropped."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
    return fds


@pytest.fixture(autouse=True)
def no_fd_leaks():
    """Every test must close what it opens (bpf objects, perf events, mmaps' dup'ed fds)."""
    before = _open_fds()
    yield
    after = _open_fds()
    leaked = {fd: target for fd, target in after.items() if before.get(fd) != target}
    assert not leaked, f"test leaked fds: {leaked}"


@pytest.fixture(scope="session")
def root():
    need_root()
