"""Which container opened: cgroup v2 paths and the container ids they name.

The probe records the opener's cgroup id (``bpf_get_current_cgroup_id``:
the inode number of its cgroup v2 directory) and mount namespace id. Here
the id becomes the cgroup's path, through ``open_by_handle_at`` on the
cgroup2 mount (a cgroup id is its kernfs file handle, so no tree walk is
needed), and the path gives the container id where a runtime put one in a
directory name:

=========================  ==============================================================
runtime                    cgroup directory (systemd driver / cgroupfs driver)
=========================  ==============================================================
docker                     ``docker-<id>.scope`` / ``docker/<id>``
containerd (CRI)           ``cri-containerd-<id>.scope`` / ``kubepods/.../pod<uid>/<id>``
CRI-O                      ``crio-<id>.scope`` / ``kubepods/.../pod<uid>/<id>``
podman                     ``libpod-<id>.scope`` / ``libpod_parent/libpod-<id>``
=========================  ==============================================================

``<id>`` is 64 hex digits; the innermost directory that names one wins
(podman's ``libpod-conmon-<id>`` is the monitor, not the container). A
cgroup removed before its line is printed has no path any more: ``None``.
"""

from __future__ import annotations

import ctypes
import os
import re
from typing import Dict, Optional

__all__ = ["CgroupNames", "ContainerError", "cgroup2_mount", "container_id", "find_container"]

_ID = "[0-9a-f]{64}"
_NAMED = re.compile(rf"^(?:docker|cri-containerd|crio|libpod|containerd)-({_ID})(?:\.scope)?$")
_BARE = re.compile(rf"^({_ID})$")
_FILEID_KERNFS = 0xFE  # the file handle type of kernfs (cgroupfs): 8 bytes, the node id
_CACHE_LIMIT = 4096


class ContainerError(Exception):
    """No single running container matches what the user named; the message says why."""


def cgroup2_mount(mounts: str = "/proc/self/mounts") -> Optional[str]:
    """Where the cgroup v2 hierarchy is mounted, or None."""
    try:
        with open(mounts) as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[2] == "cgroup2":
                    return fields[1].replace("\\040", " ")
    except OSError:
        pass
    return None


def container_id(cgroup_path: str) -> Optional[str]:
    """The container id ``cgroup_path`` names (see module doc), or None."""
    for part in reversed(cgroup_path.split("/")):
        match = _NAMED.match(part) or _BARE.match(part)
        if match:
            return match.group(1)
    return None


def find_container(prefix: str, root: Optional[str] = None) -> str:
    """The cgroup directory of the one running container whose id starts with ``prefix``.

    The highest such directory: the container's processes are in it or
    below it. ContainerError when none or several containers match.
    """
    if not re.fullmatch(r"[0-9a-f]{1,64}", prefix):
        raise ContainerError(f"a container id is 1 to 64 lower-case hex digits, got {prefix!r}")
    root = root or cgroup2_mount()
    if root is None:
        raise ContainerError("no cgroup v2 hierarchy is mounted: containers are found by their cgroup")
    found: Dict[str, str] = {}  # container id -> its highest cgroup directory
    for directory, subdirectories, _ in os.walk(root):
        identifier = container_id(os.path.basename(directory))
        if identifier is not None and identifier.startswith(prefix):
            found.setdefault(identifier, directory)
            subdirectories.clear()  # below it is the same container
    if not found:
        raise ContainerError(f"no running container's id starts with {prefix} "
                             f"(looked for docker, containerd, CRI-O and podman cgroups under {root})")
    if len(found) > 1:
        raise ContainerError(f"{prefix} matches {len(found)} containers: {', '.join(sorted(found))}; give more of the id")
    return next(iter(found.values()))


class _FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint32), ("handle_type", ctypes.c_int), ("id", ctypes.c_uint64)]


class CgroupNames:
    """Cgroup id -> its path below the cgroup2 mount (``/system.slice/x.service``), cached."""

    def __init__(self, root: Optional[str] = None) -> None:
        self.root = root if root is not None else cgroup2_mount()
        self._mount_fd: Optional[int] = None
        self._paths: Dict[int, Optional[str]] = {}
        self._libc = None

    def path(self, cgroup_id: int) -> Optional[str]:
        """The path of cgroup ``cgroup_id``, or None (no cgroup2 mount, or the cgroup is gone)."""
        if cgroup_id in self._paths:
            return self._paths[cgroup_id]
        if len(self._paths) >= _CACHE_LIMIT:
            self._paths.clear()
        path = self._paths[cgroup_id] = self._look_up(cgroup_id)
        return path

    def _look_up(self, cgroup_id: int) -> Optional[str]:
        if self.root is None or cgroup_id == 0:
            return None
        if cgroup_id == 1:
            return "/"  # the root cgroup
        try:
            if self._mount_fd is None:
                self._mount_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                self._libc = ctypes.CDLL(None, use_errno=True)
            handle = _FileHandle(8, _FILEID_KERNFS, cgroup_id)
            fd = self._libc.open_by_handle_at(self._mount_fd, ctypes.byref(handle), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            if fd < 0:
                return None  # ESTALE: removed meanwhile; EPERM: no CAP_DAC_READ_SEARCH
            try:
                path = os.readlink(f"/proc/self/fd/{fd}")
            finally:
                os.close(fd)
        except OSError:
            return None
        relative = os.path.relpath(path, self.root)
        return "/" if relative == "." else "/" + relative

    def close(self) -> None:
        if self._mount_fd is not None:
            os.close(self._mount_fd)
            self._mount_fd = None
