"""The static helper table matches include/uapi/linux/bpf.h."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from openat.asm import HELPER_IDS, HELPER_NAMES

HEADER = Path("/usr/include/linux/bpf.h")


def test_well_known_ids() -> None:
    assert HELPER_IDS["map_lookup_elem"] == 1
    assert HELPER_IDS["get_current_pid_tgid"] == 14
    assert HELPER_IDS["probe_read_user_str"] == 114
    assert HELPER_IDS["ringbuf_reserve"] == 131
    assert HELPER_IDS["cgrp_storage_delete"] == 211  # last one: the list is frozen upstream
    assert len(HELPER_NAMES) == 212 and len(HELPER_IDS) == 212


@pytest.mark.skipif(not HEADER.exists(), reason="no kernel UAPI headers (linux-libc-dev) installed")
def test_table_agrees_with_installed_header() -> None:
    text = HEADER.read_text()
    with_ids = re.findall(r"FN\((\w+), (\d+), ##ctx\)", text)  # 6.2+ headers carry the ids
    if with_ids:
        pairs = [(name, int(number)) for name, number in with_ids]
    else:  # older headers: position in __BPF_FUNC_MAPPER is the id
        block = text[text.index("#define __BPF_FUNC_MAPPER(FN)"):]
        block = block[: block.index("\n\n")]
        pairs = [(name, number) for number, name in enumerate(re.findall(r"FN\((\w+)\)", block))]
    assert len(pairs) > 200
    for name, number in pairs:
        assert HELPER_IDS[name] == number
