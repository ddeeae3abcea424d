"""openat against libbpf: the same object loaded by both, the kernel's translated instructions compared.

libbpf loads through ``bpftool prog loadall`` (Debian's bpftool, libbpf 1.1).
Each program's ``bpftool prog dump xlated`` must be the same text for both
loads once map ids are replaced by map names: same CO-RE values, same
sub-program layout, same global data offsets, same dead code removed on the
frozen ``.rodata``, same BTF line info. No difference is expected, so none is
tolerated; a program libbpf loads and openat does not (or the other way
round) fails the test too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from openat.elf import load_spec
from openat.syscalls import features

from ..support import need_root

pytestmark = [pytest.mark.both_kernels, pytest.mark.usefixtures("no_fd_leaks")]

_MAP_ID = re.compile(r"map\[id:(\d+)\]")


def _bpftool(*args: str) -> str:
    result = subprocess.run(["bpftool", *args], capture_output=True, text=True)
    if result.returncode:
        raise AssertionError(f"bpftool {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def _xlated(prog_id: int) -> str:
    """The kernel's translated program as bpftool prints it, each map id replaced by the map's name."""
    text = _bpftool("prog", "dump", "xlated", "id", str(prog_id))
    names = {}
    for map_id in set(_MAP_ID.findall(text)):
        names[map_id] = json.loads(_bpftool("-j", "map", "show", "id", map_id))["name"]
    return _MAP_ID.sub(lambda match: f"map[{names[match.group(1)]}]", text)


def _libbpf_load(path, directory: str) -> dict:
    """bpftool prog loadall: {program name: its xlated text}."""
    _bpftool("prog", "loadall", str(path), directory)
    programs = {}
    for pinned in sorted(os.listdir(directory)):
        info = json.loads(_bpftool("-j", "prog", "show", "pinned", os.path.join(directory, pinned)))
        programs[pinned] = _xlated(info["id"])
    return programs


@pytest.fixture
def loadall_dir(bpf_fs):
    need_root()
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed (Debian package bpftool; .ci/run installs it)")
    directory = os.path.join(bpf_fs, f"openat-differential-{os.getpid()}")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("name", ["maps", "globals", "core", "subprog", "sections"])
def test_xlated_instructions_equal_libbpf(name, bpf_object, bpf_fs, loadall_dir):
    if name == "sections" and not features.fentry(attach=False):
        pytest.skip(f"the object has fentry programs, which this kernel refuses: {features.fentry().reason}")
    path = bpf_object(name)
    spec = load_spec(path)
    pins = [os.path.join(bpf_fs, m.name) for m in spec.maps.values() if m.pinning]
    try:
        theirs = _libbpf_load(path, loadall_dir)
        with spec.load() as coll:  # same pin root as libbpf's default: a pinned map is shared, as it should be
            ours = {program_name: _xlated(program.id) for program_name, program in coll.programs.items()}
    finally:
        for pin in pins:
            if os.path.exists(pin):
                os.unlink(pin)
    assert sorted(ours) == sorted(theirs)
    for program_name in theirs:
        assert ours[program_name] == theirs[program_name], f"{name}.bpf.o: program {program_name} differs from libbpf's"
