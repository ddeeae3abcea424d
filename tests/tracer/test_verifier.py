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
    pids=(1, 2), tids=(3,), uids=(0, 1000), comm=b"cat", failed_only=True,
    access_modes=(0, 2), flag_mask=0o100, cgroup=True,
)


@pytest.mark.parametrize("filename_size", [2, 256, 4096])
@pytest.mark.parametrize("filters", [Filters(), ALL_FILTERS], ids=["no-filters", "all-filters"])
@pytest.mark.parametrize("mode", ATTACH_MODES)
def test_probe_variant_loads(mode, filters, filename_size):
    need_root()
    skip_unless(ATTACH_FEATURES[mode](), mode)
    cgroup_fd = os.open(cgroup2_root(), os.O_RDONLY | os.O_DIRECTORY) if filters.cgroup else None
    try:
        options = ProbeOptions(filename_size=filename_size, filters=filters)
        with Tracer(attach=mode, options=options, ring_size=1 << 16, cgroup_fd=cgroup_fd) as tracer:
            assert tracer.start() == mode
            assert tracer.programs
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
