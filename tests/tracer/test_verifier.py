"""Every probe variant this kernel supports loads and passes the verifier."""

from __future__ import annotations

import os

import pytest

from openat.tracer import doctor
from openat.tracer.probe import ATTACH_MODES, Filters, ProbeOptions
from openat.tracer.attach import Tracer

from ..support import ATTACH_FEATURES, need_root, skip_unless
from .conftest import cgroup2_root

ALL_FILTERS = Filters(
    pids=(1, 2, 2**32 - 1), tids=(3, 2**31), uids=(0, 1000, 2**32 - 1), comm=b"cat", failed_only=True,
    access_modes=(0, 2), flag_mask=0o100, cgroup=True, container=True, follow=True,
)


@pytest.mark.parametrize("filename_size", [2, 256, 4096])
@pytest.mark.parametrize("filters", [Filters(), ALL_FILTERS], ids=["no-filters", "all-filters"])
@pytest.mark.parametrize("mode", ATTACH_MODES)
def test_probe_variant_loads(mode, filters, filename_size):
    need_root()
    skip_unless(ATTACH_FEATURES[mode](), mode)
    cgroup_fd = os.open(cgroup2_root(), os.O_RDONLY | os.O_DIRECTORY) if filters.cgroup else None
    try:
        # all-filters also asks for everything that adds code: -F's walk, the container fields, io_uring
        every = filters is ALL_FILTERS
        options = ProbeOptions(filename_size=filename_size, filters=filters, full_path=every, containers=every)
        with Tracer(attach=mode, options=options, ring_size=1 << 16, cgroup_fd=cgroup_fd, container_fd=cgroup_fd) as tracer:
            assert tracer.start() == mode
            assert tracer.programs
            if every:
                assert tracer.kernel_paths or "paths" in tracer.missing
                assert tracer.uring_programs or "io_uring" in tracer.missing
    finally:
        if cgroup_fd is not None:
            os.close(cgroup_fd)


def test_the_three_syscall_attach_points_work_here():
    """This kernel has tracepoints, raw_tp and tp_btf: none may be skipped."""
    need_root()
    for mode in ("tp_btf", "raw_tp", "tracepoint"):
        feature = ATTACH_FEATURES[mode]()
        assert feature, f"{mode}: {feature.reason}"
        usable, reason = doctor.attach_support(mode)
        assert usable, f"{mode}: {reason}"


def test_loaded_programs_have_distinct_names():
    """What bpftool prog show lists: each program of the tracer under its own name (issue #11 defect 4)."""
    from openat.syscalls.info import prog_info
    from openat.syscalls.programs import prog_get_fd_by_id
    from openat.tracer.probe import PROGRAM_NAMES

    from .conftest import program_ids_held_by

    need_root()
    options = ProbeOptions(filters=Filters(pids=(os.getpid(),), follow=True))
    with Tracer(attach="tracepoint", options=options) as tracer:
        tracer.start()
        names = []
        for prog_id in program_ids_held_by(os.getpid()):
            with prog_get_fd_by_id(prog_id) as fd:
                names.append(prog_info(fd).name)
    ours = [name for name in names if name.startswith("openat_")]
    assert len(ours) == len(set(ours)) == len(tracer.programs) >= 6, ours
    assert set(ours) <= set(PROGRAM_NAMES.values())
