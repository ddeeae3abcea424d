"""Info/test-run result classes load on first use; the ring buffer needs none of them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from openat.syscalls import MapType, RingBuffer, create_map


def test_info_classes_resolve_lazily_and_are_the_same_objects():
    code = (
        "import sys, openat.syscalls as s, openat.syscalls.bpf as b\n"
        "assert 'openat.syscalls._info' not in sys.modules\n"
        "from openat.syscalls import ProgInfo, TestRunResult\n"
        "assert ProgInfo is b.ProgInfo is s.ProgInfo and TestRunResult is b.TestRunResult\n"
        "from openat.syscalls.bpf import *\n"
        "assert MapInfo is b.MapInfo and LinkInfo is s.LinkInfo\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ring_buffer_names_the_wrong_map_type(root):
    with create_map(MapType.ARRAY, 4, 4, 1, name="t_notring") as m:
        assert m.info().type_name == "array"
        with pytest.raises(ValueError, match="'t_notring' is a array map, not a ringbuf"):
            RingBuffer(m)
