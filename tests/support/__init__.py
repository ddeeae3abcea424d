"""What the test packages share: the one event factory, the root check, and skips driven by openat.syscalls.features."""

from __future__ import annotations

import functools
import os
from typing import Callable, Dict

import pytest

from openat.syscalls import features
from openat.tracer.records import KIND_COMPLETE, OpenEvent

__all__ = ["ATTACH_FEATURES", "kprobe_feature", "make_event", "need_root", "requires", "skip_unless"]


def make_event(**changes: object) -> OpenEvent:
    """An OpenEvent with plausible fields (a successful openat of /etc/hosts by cat), ``changes`` applied."""
    fields: Dict[str, object] = dict(
        timestamp_ns=123_456_789,
        tid=4321,
        pid=1234,
        uid=1000,
        gid=100,
        flags=0o101,
        ret=3,
        dfd=-100,
        syscall=2,
        comm=b"cat",
        filename=b"/etc/hosts",
        truncated=False,
        read_error=None,
        kind=KIND_COMPLETE,
    )
    fields.update(changes)
    return OpenEvent(**fields)  # type: ignore[arg-type]


def need_root() -> None:
    """Skip unless root: loading BPF programs needs it (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (CAP_BPF + CAP_PERFMON) to load BPF programs")


def skip_unless(feature: features.Feature, what: str) -> None:
    """Skip, saying why, when the kernel lacks ``feature``."""
    if not feature:
        pytest.skip(f"this kernel has no {what}: {feature.reason}")


def requires(*checks: Callable[[], features.Feature]):
    """Decorator: the test runs as root on a kernel where every ``features`` check passes, else skips naming the one that did not."""

    def decorate(test):
        @functools.wraps(test)
        def run(*args, **kwargs):
            need_root()
            for check in checks:
                name = check.__name__
                skip_unless(check(), "such feature" if name == "<lambda>" else name.replace("_", " "))
            return test(*args, **kwargs)

        return run

    return decorate


def kprobe_feature(interface: str = "auto") -> features.Feature:
    """The feature behind ``--kprobe-interface``: the PMU, tracefs kprobe_events, or either."""
    return {"pmu": features.kprobe_pmu, "tracefs": features.kprobe_events}.get(interface, features.kprobes)()


# What the kernel must have for each of the tracer's attach points (not
# whether the tracer's probe works there: that is what the tests check).
ATTACH_FEATURES: Dict[str, Callable[[], features.Feature]] = {
    "kprobe": features.kprobes,
    "fentry": lambda: features.fentry(attach=True),
    "tp_btf": lambda: features.tp_btf("sys_exit", attach=True),
    "raw_tp": features.raw_tracepoint,
    "tracepoint": features.syscall_tracepoints,
}
