"""Who opened: pid, tid, uid, gid and comm, read both ways the probe can.

With kernel BTF the probe reads them from the task with plain loads; without
it, with helpers. Both run here for real, from a second thread of this
process so that pid and tid differ and a swap shows.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

import openat.tracer.attach as tracer_module
from openat.syscalls import features
from openat.tracer.probe import ProbeOptions
from openat.tracer.records import decode_event
from openat.tracer.attach import Tracer, open_btf

from ..support import need_root
from .conftest import EVENT_TIMEOUT_S

THREAD_COMM = b"ident-\x01thread"  # 14 bytes: a control byte and all


def _open_from_thread(path: str) -> int:
    """Open ``path`` from a new thread named THREAD_COMM; return its tid."""
    tid: list[int] = []

    def run() -> None:
        tid.append(threading.get_native_id())
        with open(f"/proc/self/task/{tid[0]}/comm", "wb") as comm:
            comm.write(THREAD_COMM)
        os.close(os.open(path, os.O_RDONLY))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return tid[0]


@pytest.mark.parametrize("source", ["task-btf", "helpers"])
@pytest.mark.parametrize("mode", ["tp_btf", "raw_tp", "tracepoint"])
def test_identity_of_the_opening_thread(monkeypatch, tmp_path, mode, source):
    need_root()
    if source == "task-btf" and open_btf() is None:
        pytest.skip("the kernel exposes no BTF: the probe can only use helpers")
    if source == "task-btf" and not features.task_btf_helper():
        pytest.skip(f"this kernel has no bpf_get_current_task_btf (5.11+): {features.task_btf_helper().reason}")
    if source == "helpers":
        discover = tracer_module.discover_layout
        monkeypatch.setattr(
            tracer_module, "discover_layout",
            lambda *args, **kwargs: discover(*args, **kwargs)._replace(task=None),
        )
    target = tmp_path / "identity-marker"
    target.write_bytes(b"")
    with Tracer(attach=mode, options=ProbeOptions(), ring_size=1 << 20) as tracer:
        tracer.start()
        has_task = tracer.layout.task is not None
        assert has_task == (source == "task-btf")
        listing = "\n".join(probe.program.listing() for probe in tracer.programs)
        assert ("bpf_get_current_comm" in listing) == (source == "helpers")
        tid = _open_from_thread(str(target))
        events = []
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        while not events and time.monotonic() < deadline:
            tracer.poll_records(lambda record: events.append(decode_event(record)), 50)
            events = [event for event in events if event.filename == os.fsencode(target)]
    assert events, f"no event for {target} within {EVENT_TIMEOUT_S} s"
    (event,) = events
    assert tid != os.getpid()
    assert (event.pid, event.tid) == (os.getpid(), tid)
    assert (event.uid, event.gid) == (os.getuid(), os.getgid())
    assert event.comm == THREAD_COMM
