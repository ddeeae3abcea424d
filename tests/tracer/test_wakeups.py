"""The probe wakes the reader when unread data crosses the fill mark, for real."""

from __future__ import annotations

import os
import tempfile

import pytest

from openat.tracer.probe import Filters, ProbeOptions
from openat.tracer.records import HEADER_SIZE
from openat.uapi import BPF_RINGBUF_HDR_SZ
from openat.tracer.attach import Tracer

from ..support import need_root

MARK = 4096


@pytest.mark.parametrize("span", [104, 128])
def test_reader_is_woken_when_unread_data_crosses_the_mark(span):
    """Records of one size, opened by this process only, until they pass MARK.

    128 bytes divides the mark: each crossing then lands exactly at the end
    of a record's span, past its payload, which a test on the payload's
    length alone would never see (the reader slept until its timer).
    """
    need_root()
    name_size = span - BPF_RINGBUF_HDR_SZ - HEADER_SIZE - 1  # the name without its NUL
    with tempfile.TemporaryDirectory(prefix="w", dir="/tmp") as directory:  # short: the name's size is exact
        path = os.path.join(directory, "n" * (name_size - len(os.fsencode(directory)) - 1))
        open(path, "wb").close()
        assert len(os.fsencode(path)) == name_size
        _open_until_woken(path, span)


def _open_until_woken(path: str, span: int) -> None:
    options = ProbeOptions(wakeup_mark=MARK, filters=Filters(pids=(os.getpid(),)))
    with Tracer(options=options, ring_size=1 << 16) as tracer:
        tracer.start()
        while tracer.poll_records(lambda record: None, timeout_ms=0):  # start from an empty ring
            pass
        opens = MARK // span + 1
        for _ in range(opens):
            os.close(os.open(path, os.O_RDONLY))
        # Woken, not timed out: only a wakeup makes wait() return True.
        assert tracer.wait(timeout_ms=10_000), "the probe never woke the reader"
        sizes: list[int] = []
        tracer.poll_records(lambda record: sizes.append(len(record)), timeout_ms=0)
    assert sizes.count(span - BPF_RINGBUF_HDR_SZ) == opens
