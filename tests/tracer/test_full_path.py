"""``-F``: full paths resolved in the kernel at the moment of the open (the probe's directory walk)."""

from __future__ import annotations

import json
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


def test_a_process_that_exits_at_once_gets_its_full_path(tmp_path):
    """/proc cannot help once the process is gone: the kernel walked its directory at the open."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("")
    run = trace_command(["-F", "--json"], ["sh", "-c", f"cd {tmp_path}/d && exec cat f ../d/./f > /dev/null"])
    files = [r["file"] for r in run.records() if r["comm"] == "cat" and r["file"].endswith("/f")]
    assert files == [f"{tmp_path}/d/f", f"{tmp_path}/d/f"]  # "../d/./f" normalised


def test_mount_points_are_crossed(tmp_path):
    need_root()
    mount = tmp_path / "mnt"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "openat-test", str(mount)], check=True)
    try:
        (mount / "inner").mkdir()
        bound = tmp_path / "bound"
        bound.mkdir()
        subprocess.run(["mount", "--bind", str(mount / "inner"), str(bound)], check=True)
        try:
            code = (f"import os\nos.chdir({str(mount / 'inner')!r}); os.close(os.open('a', os.O_CREAT | os.O_WRONLY))\n"
                    f"os.chdir({str(bound)!r}); os.close(os.open('b', os.O_CREAT | os.O_WRONLY))\n"
                    f"fd = os.open({str(mount)!r}, os.O_RDONLY); os.close(os.open('c', os.O_CREAT | os.O_WRONLY, dir_fd=fd))")
            run = trace_command(["-F", "--json"], _python(code))
        finally:
            subprocess.run(["umount", str(bound)], check=True)
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    files = {r["file"] for r in run.records()}
    # tmpfs root -> its mount point; a bind mount's root is a directory inside another tmpfs
    assert {f"{mount}/inner/a", f"{bound}/b", f"{mount}/c"} <= files, sorted(f for f in files if str(tmp_path) in f)


def test_a_path_deeper_than_the_walk_is_marked_cut(tmp_path):
    deep = tmp_path.joinpath(*["d"] * (DEPTH + 4))
    deep.mkdir(parents=True)
    (deep / "f").write_text("")
    code = f"import os\nos.chdir({str(deep)!r})\nos.close(os.open('f', os.O_RDONLY))"
    json_run = trace_command(["-F", "--json"], _python(code))
    (record,) = [r for r in json_run.records() if r["file"].endswith("d/f")]
    assert record["path_cut"] is True and record["resolved"] is False
    assert record["file"] == "/".join(["d"] * DEPTH) + "/f"  # the deepest DEPTH components, then the name
    text_run = trace_command(["-F"], _python(code))
    (line,) = [line for line in text_run.lines if line.endswith(b"d/f ret=3") or b"d/f ret=" in line]
    assert b" file=\\.../" + b"/".join([b"d"] * DEPTH) + b"/f ret=" in line


def test_a_chrooted_process_gets_the_path_it_sees(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "f").write_text("")
    code = (f"import os\nos.chroot({str(root)!r}); os.chdir('/sub')\n"
            "os.close(os.open('f', os.O_RDONLY)); os.close(os.open('../sub/f', os.O_RDONLY))")
    run = trace_command(["-F", "--json"], _python(code))
    assert [r["file"] for r in run.records() if r["file"].endswith("sub/f")] == ["/sub/f", "/sub/f"]


def test_a_bad_dfd_leaves_the_name_relative(tmp_path):
    code = "import os\ntry:\n    os.open('nowhere', os.O_RDONLY, dir_fd=987)\nexcept OSError:\n    pass"
    run = trace_command(["-F", "--json"], _python(code))
    (record,) = [r for r in run.records() if r["file"] == "nowhere"]
    assert (record["error"], record["resolved"], record["dfd"]) == ("EBADF", False, 987)


def test_without_kernel_btf_paths_come_from_proc_and_it_is_said(monkeypatch, tmp_path):
    """Where the kernel cannot walk (no BTF offsets), -F falls back to /proc in user space, and says so."""
    need_root()
    monkeypatch.setattr(tracer_module, "open_btf", lambda: None)
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


def test_json_of_a_relative_name_without_f_is_unchanged(tmp_path):
    (tmp_path / "r").write_text("")
    run = trace_command(["--json"], _python(f"import os\nos.chdir({str(tmp_path)!r}); os.close(os.open('r', 0))"))
    (record,) = [r for r in run.records() if r["file"] == "r"]
    assert "resolved" not in record and "path_cut" not in record
    assert json.dumps(record)  # plain JSON
