"""kprobe, kretprobe, ksyscall, fentry and fexit programs of an object, loaded and attached by section.

The host kernel has no kprobes and refuses fentry; these run in the qemu
guest (``scripts/guest test tests/elf -m both_kernels``) and skip, saying
why, where the kernel lacks them.
"""

from __future__ import annotations

import os

import pytest

from openat.elf import load_spec
from openat.syscalls import features

from ..support import requires

pytestmark = [pytest.mark.both_kernels, pytest.mark.usefixtures("no_fd_leaks")]

INDEX = {"kprobe_openat2": 5, "kretprobe_openat2": 6, "fentry_openat2": 7, "fexit_openat2": 8, "ksyscall_getppid": 16}


def _hits(coll, name: str) -> int:
    return int.from_bytes(coll.maps["hits"].lookup(INDEX[name]), "little")


def _run_attached(path, names, tmp_path):
    with load_spec(path).load(programs=names) as coll:
        links = [coll.programs[name].attach() for name in names]
        try:
            with open(tmp_path / "opened", "w"):
                pass
            os.getppid()
        finally:
            for link in links:
                link.close()
        return {name: _hits(coll, name) for name in names}


def fentry_attach():
    return features.fentry(attach=True)


@requires(features.kprobes)
def test_kprobes_from_sections(bpf_object, tmp_path):
    hits = _run_attached(bpf_object("sections"), ["kprobe_openat2", "kretprobe_openat2", "ksyscall_getppid"], tmp_path)
    assert all(count > 0 for count in hits.values()), hits


@requires(fentry_attach)
def test_fentry_and_fexit_from_sections(bpf_object, tmp_path):
    hits = _run_attached(bpf_object("sections"), ["fentry_openat2", "fexit_openat2"], tmp_path)
    assert all(count > 0 for count in hits.values()), hits
