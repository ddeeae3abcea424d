"""``-F``: full paths resolved in the kernel at the moment of the open (the probe's directory walk)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import openat.tracer.attach as tracer_module
from openat.tracer.attach import Tracer
from openat.tracer.pathwalk import DEPTH
from openat.tracer.probe import Filters, ProbeOptions

from ..support import need_root
from .conftest import trace_command


def _python(code: str) -> list:
    return [sys.executable, "-c", code]


@pytest.fixture
def mounts(tmp_path):
    """A tmpfs at tmp_path/mnt, and tmp_path/bound: a bind mount of its directory "inner"."""
    need_root()
    mount, bound = tmp_path / "mnt", tmp_path / "bound"
    mount.mkdir()
    bound.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "openat-test", str(mount)], check=True)
    (mount / "inner").mkdir()
    subprocess.run(["mount", "--bind", str(mount / "inner"), str(bound)], check=True)
    yield mount, bound
    subprocess.run(["umount", str(bound)], check=True)
    subprocess.run(["umount", str(mount)], check=True)


# One command, one tracer start (seconds in the qemu guest), every case.
WALKS = """
import os, subprocess, sys
tmp, mount, bound, deep, root = sys.argv[1:6]
# a process that exits at once: /proc could not tell its directory afterwards
subprocess.run(["sh", "-c", f"cd {tmp}/d && exec cat f ../d/./f > /dev/null"], check=True)
# mount points: a tmpfs's root, a bind mount's root (a directory inside another tmpfs), a dfd on a mount root
os.chdir(os.path.join(mount, "inner")); os.close(os.open("a", os.O_CREAT | os.O_WRONLY))
os.chdir(bound); os.close(os.open("b", os.O_CREAT | os.O_WRONLY))
fd = os.open(mount, os.O_RDONLY); os.close(os.open("c", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
# deeper than the walk goes
os.chdir(deep); os.close(os.open("f", os.O_RDONLY))
# a dfd that is not open
try:
    os.open("nowhere", os.O_RDONLY, dir_fd=987)
except OSError:
    pass
# in a chroot: the path as the process sees it
if os.fork() == 0:
    os.chroot(root); os.chdir("/sub")
    os.close(os.open("g", os.O_RDONLY)); os.close(os.open("../sub/g", os.O_RDONLY))
    os._exit(0)
os.wait()
"""


def test_paths_are_resolved_in_the_kernel(tmp_path, mounts):
    mount, bound = mounts
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("")
    deep = tmp_path.joinpath(*["d"] * (DEPTH + 4))
    deep.mkdir(parents=True)
    (deep / "f").write_text("")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "g").write_text("")
    run = trace_command(["-F", "--json"], _python(WALKS) + [str(tmp_path), str(mount), str(bound), str(deep), str(root)])
    assert run.status == 0, run.stderr
    records = run.records()
    files = [r["file"] for r in records]
    # the process that exited at once, "../d/./f" normalised
    assert [r["file"] for r in records if r["comm"] == "cat" and r["file"].endswith("/f")] == [f"{tmp_path}/d/f"] * 2
    assert {f"{mount}/inner/a", f"{bound}/b", f"{mount}/c"} <= set(files), sorted(f for f in files if str(tmp_path) in f)
    (cut,) = [r for r in records if r["file"].endswith("d/d/f")]
    assert cut["path_cut"] is True and cut["resolved"] is False
    assert cut["file"] == "/".join(["d"] * DEPTH) + "/f"  # the deepest DEPTH components, then the name
    (bad,) = [r for r in records if r["file"] == "nowhere"]
    assert (bad["error"], bad["resolved"], bad["dfd"]) == ("EBADF", False, 987)
    assert [f for f in files if f.endswith("sub/g")] == ["/sub/g", "/sub/g"]


def test_without_kernel_btf_paths_come_from_proc_and_it_is_said(monkeypatch, tmp_path):
    """Where the kernel cannot walk (no BTF offsets), -F falls back to /proc in user space, and says so."""
    need_root()
    monkeypatch.setattr(tracer_module, "open_btf", lambda report=None: None)
    said = []
    options = ProbeOptions(full_path=True, filters=Filters(pids=(os.getpid(),)))
    with Tracer(attach="raw_tp", options=options, report=said.append) as tracer:
        tracer.start()
        assert not tracer.kernel_paths
        assert "bpf_get_current_task" not in "\n".join(p.program.listing() for p in tracer.programs)
    assert [line for line in said if line.startswith("-F joins relative names in user space, from /proc")]


def test_without_f_the_probe_does_no_walk():
    """The walk costs nothing unless asked for: no code, no room in the record."""
    from openat.syscalls.tracefs import find_tracefs
    from openat.tracer.kernel_layout import discover_layout
    from openat.tracer.probe import ATTACH_MODES, build_probe, scratch_value_size

    layout = discover_layout(find_tracefs(), tracer_module.open_btf(), wanted=["paths"])
    if layout.paths is None:
        pytest.skip(f"no BTF offsets for the walk: {layout.missing.get('paths')}")
    for mode in ATTACH_MODES:
        if mode == "tracepoint" and not layout.tracepoint_fields:
            continue  # no tracefs to read the syscall tracepoints' fields from
        plain = "\n".join(p.program.listing() for p in build_probe(mode, layout, ProbeOptions()))
        walking = "\n".join(p.program.listing() for p in build_probe(mode, layout, ProbeOptions(full_path=True)))
        assert "probe_read_kernel_str" not in plain and "probe_read_kernel_str" in walking
    assert scratch_value_size(ProbeOptions(full_path=True)) > scratch_value_size(ProbeOptions())
