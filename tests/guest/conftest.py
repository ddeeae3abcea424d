"""Guest tests need a kernel with kprobes; on one without, they are skipped.

They run for real inside the qemu guest started by ``scripts/guest test``
(Debian's distribution kernel, which has kprobes, kprobe_events, BTF and
fentry). There the script sets ``OPENAT_GUEST=1`` and nothing is skipped: a
guest kernel that lacks a feature makes the tests fail, not vanish.

On the host (``python -m pytest -q`` from the repo root, as CI runs it), every
test under tests/guest, and every test marked ``@pytest.mark.guest`` collected
in the same session, is skipped when the running kernel has no kprobe PMU, and
the reason is printed once in the terminal summary.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

KPROBE_PMU_TYPE = Path("/sys/bus/event_source/devices/kprobe/type")
HERE = Path(__file__).resolve().parent
IN_GUEST = os.environ.get("OPENAT_GUEST") == "1"

_skipped_key = pytest.StashKey[int]()


def host_skip_reason() -> str | None:
    """Why guest tests cannot run on this kernel, or None when they can."""
    if IN_GUEST or KPROBE_PMU_TYPE.exists():
        return None
    return (
        f"kernel {os.uname().release} has no kprobes ({KPROBE_PMU_TYPE} is missing); "
        "guest tests run inside a kprobe-enabled qemu guest: scripts/guest test"
    )


def _is_guest_test(item: pytest.Item) -> bool:
    if item.get_closest_marker("guest") is not None:
        return True
    return HERE in Path(str(item.path)).resolve().parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = host_skip_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    count = 0
    for item in items:
        if _is_guest_test(item):
            item.add_marker(skip)
            count += 1
    config.stash[_skipped_key] = count


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    count = config.stash.get(_skipped_key, 0)
    if count:
        terminalreporter.write_line(f"guest: {count} test(s) skipped: {host_skip_reason()}")
