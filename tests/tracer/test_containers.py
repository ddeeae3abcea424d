"""Containers: cgroup id and path, mount namespace and container id in JSON; ``--container ID`` in the kernel.

No container runtime is needed: a cgroup named as docker names its
containers' is a container to openat, which reads only the cgroup tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from openat.tracer.containers import CgroupNames, container_id, find_container

from .conftest import Opener, cgroup2_root, trace_command
from .test_filters import names

CLONE_NEWNS = 0x00020000


@pytest.fixture
def fake_containers():
    """make(name) -> a cgroup directory named like a docker container's, removed afterwards."""
    root = cgroup2_root()
    parent = os.path.join(root, f"openat-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(parent)
    made = []

    def make(identifier: str) -> str:
        path = os.path.join(parent, f"docker-{identifier}.scope")
        os.mkdir(path)
        made.append(path)
        return path

    yield make
    for path in reversed(made):
        _empty(path)
        os.rmdir(path)
    os.rmdir(parent)


def _empty(cgroup: str) -> None:
    """Move what is left in ``cgroup`` back to the root, so it can be removed."""
    with open(os.path.join(cgroup, "cgroup.procs")) as procs:
        pids = procs.read().split()
    for pid in pids:
        with open(os.path.join(cgroup2_root(), "cgroup.procs"), "w") as root_procs:
            root_procs.write(pid)


def _join(cgroup: str, pid: int) -> None:
    with open(os.path.join(cgroup, "cgroup.procs"), "w") as procs:
        procs.write(str(pid))


def test_container_filter_and_fields(run_tracer, fake_containers, tmp_path, marker):
    identifier = uuid.uuid4().hex + uuid.uuid4().hex
    cgroup = fake_containers(identifier)
    inside, outside = Opener("in-container"), Opener("on-the-host")
    try:
        _join(cgroup, inside.pid)
        tracer = run_tracer("--json", "--container", identifier[:12])
        a, b = names(tmp_path, marker, "inside", "outside")
        outside.open(b, os.O_WRONLY | os.O_CREAT)
        inside.open(a, os.O_WRONLY | os.O_CREAT)
        records = [json.loads(line) for line in tracer.lines_until(marker, a)]
    finally:
        inside.close()
        outside.close()
    assert [r["file"] for r in records] == [os.fsdecode(a)]
    (record,) = records
    assert record["container"] == identifier
    assert record["cgroup"] == "/" + os.path.relpath(cgroup, cgroup2_root())
    assert record["cgroup_id"] == os.stat(cgroup).st_ino
    assert record["mntns"] == os.stat("/proc/self/ns/mnt").st_ino


def test_mount_namespace_of_the_opener(tmp_path):
    """A process in a mount namespace of its own: mntns is that namespace's id, not the host's."""
    code = ("import ctypes, os\n"
            f"assert ctypes.CDLL(None, use_errno=True).unshare({CLONE_NEWNS}) == 0, 'unshare'\n"
            "print('mntns', os.stat('/proc/self/ns/mnt').st_ino, flush=True)\n"
            f"os.close(os.open({str(tmp_path)!r}, os.O_RDONLY))")
    run = trace_command(["--json"], [sys.executable, "-c", code])
    assert run.status == 0, run
    (own,) = [int(line.split()[1]) for line in run.output if line.startswith(b"mntns ")]
    assert own != os.stat("/proc/self/ns/mnt").st_ino
    (record,) = [r for r in run.records() if r["file"] == str(tmp_path)]
    assert record["mntns"] == own


def test_container_ids_from_cgroup_paths():
    cid = "0123456789abcdef" * 4
    for path in (f"/system.slice/docker-{cid}.scope", f"/docker/{cid}", f"/kubepods.slice/kubepods-burstable.slice/"
                 f"kubepods-burstable-pod1a2b.slice/cri-containerd-{cid}.scope", f"/kubepods/besteffort/pod1a2b/{cid}",
                 f"/machine.slice/libpod-{cid}.scope/container", f"/system.slice/crio-{cid}.scope"):
        assert container_id(path) == cid, path
    for path in ("/", "/user.slice/user-1000.slice", f"/machine.slice/libpod-conmon-{cid}.scope", f"/docker/{cid[:-1]}"):
        assert container_id(path) is None, path


def test_a_removed_cgroup_has_no_path(fake_containers):
    cgroup = fake_containers(uuid.uuid4().hex * 2)
    cgroup_id = os.stat(cgroup).st_ino
    names = CgroupNames()
    assert names.path(cgroup_id) == "/" + os.path.relpath(cgroup, cgroup2_root())
    os.rmdir(cgroup)
    os.mkdir(cgroup)  # for the fixture to remove; a new cgroup, with a new id
    assert CgroupNames().path(cgroup_id) is None
    assert names.path(1) == "/"


def test_find_container_refuses_none_and_several(fake_containers):
    from openat.tracer.containers import ContainerError

    first = "abcd" + uuid.uuid4().hex + uuid.uuid4().hex[:28]
    second = "abcd" + uuid.uuid4().hex + uuid.uuid4().hex[:28]
    fake_containers(first)
    fake_containers(second)
    assert find_container(first[:20]).endswith(f"docker-{first}.scope")
    with pytest.raises(ContainerError, match="matches 2 containers"):
        find_container("abcd")
    with pytest.raises(ContainerError, match="no running container"):
        find_container("f" * 64)


@pytest.mark.parametrize("value,message", [("XYZ", "1 to 64 lower-case hex digits"), ("a" * 65, "1 to 64"),
                                           ("f" * 64, "no running container")])
def test_bad_container_ids_are_one_line_exit_2(value, message):
    result = subprocess.run([sys.executable, "-m", "openat", "--container", value], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_text_has_no_container_cost():
    """The container fields cost the probe nothing unless asked for (JSON, --container)."""
    from openat.syscalls.tracefs import find_tracefs
    from openat.tracer.attach import open_btf
    from openat.tracer.kernel_layout import discover_layout
    from openat.tracer.probe import ATTACH_MODES, ProbeOptions, build_probe

    layout = discover_layout(find_tracefs(), open_btf(), wanted=["namespaces"])
    for mode in ATTACH_MODES:
        plain = "\n".join(p.program.listing() for p in build_probe(mode, layout, ProbeOptions()))
        asked = "\n".join(p.program.listing() for p in build_probe(mode, layout, ProbeOptions(containers=True)))
        assert "get_current_cgroup_id" not in plain and ("get_current_cgroup_id" in asked or not plain)
