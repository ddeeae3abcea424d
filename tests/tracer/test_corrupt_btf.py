"""A corrupt /sys/kernel/btf/vmlinux: the tracer says so in one line and traces without BTF.

The corrupt file is bind-mounted over the real one in a mount namespace of the tracer's
own (``unshare -m``), so nothing outside the test sees it; the kernel keeps its real BTF.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, List

import pytest

from openat.syscalls import features
from openat.syscalls.btf import VMLINUX_BTF
from tests.support import requires

from .conftest import ATTACH_TIMEOUT_S, Opener

_HEADER = struct.Struct("=HBBIIIII")  # struct btf_header: magic version flags hdr_len type_off type_len str_off str_len


def _unknown_kind_at_type_1(blob: bytearray) -> str:
    header = _HEADER.unpack_from(blob)
    info_at = header[3] + header[4] + 4  # type id 1's info word
    (info,) = struct.unpack_from("=I", blob, info_at)
    struct.pack_into("=I", blob, info_at, (info & ~(0x1F << 24)) | (25 << 24))
    return r"type id 1: unknown kind 25"


def _torn_last_record(blob: bytearray) -> str:
    header = list(_HEADER.unpack_from(blob))
    header[5] -= 4  # type_len: the last record loses its last word
    _HEADER.pack_into(blob, 0, *header)
    # Where the cut falls decides the message: inside the record's trailing data,
    # or inside its 12-byte header when the last record has none (5.10's BTF).
    return r"bytes past the end of the type section|the type section ends \d+ bytes into its 12-byte header"


CORRUPTIONS: dict[str, Callable[[bytearray], str]] = {
    "unknown kind": _unknown_kind_at_type_1,
    "torn last record": _torn_last_record,
}


def _run_with_btf(btf_file: Path, *args: str) -> subprocess.Popen:
    """``python -m openat ARGS`` seeing ``btf_file`` at /sys/kernel/btf/vmlinux."""
    script = f'mount --bind "$0" {VMLINUX_BTF} && exec "$@"'
    return subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(btf_file),
         sys.executable, "-m", "openat", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
@requires(features.btf, features.raw_tracepoint)
def test_corrupt_kernel_btf_is_reported_and_tracing_goes_on_without_it(corruption, tmp_path, marker):
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) from util-linux for a mount namespace")
    blob = bytearray(Path(VMLINUX_BTF).read_bytes())
    fault = CORRUPTIONS[corruption](blob)
    btf_file = tmp_path / "vmlinux"
    btf_file.write_bytes(bytes(blob))
    opener = Opener()
    tracer = _run_with_btf(btf_file, "-n", opener.comm, "-d", "4")
    stderr: List[str] = []
    attached = threading.Event()

    def read_stderr() -> None:
        for raw in tracer.stderr:
            stderr.append(raw.decode(errors="replace").rstrip("\n"))
            if "tracing opens via" in stderr[-1]:
                attached.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert attached.wait(ATTACH_TIMEOUT_S), stderr
        path = bytes(tmp_path) + b"/" + marker
        assert opener.open(path, os.O_WRONLY | os.O_CREAT) >= 0
        stdout, _ = tracer.communicate(timeout=30)
    finally:
        if tracer.poll() is None:
            tracer.kill()
            tracer.wait()
        opener.close()
    reader.join(timeout=5)
    assert tracer.returncode == 0, stderr
    unreadable = [line for line in stderr if "kernel BTF unreadable: " in line]
    assert len(unreadable) == 1 and re.search(fault, unreadable[0]), stderr
    assert unreadable[0].startswith("openat: kernel BTF unreadable: ")
    assert not any("Traceback" in line for line in stderr), stderr
    mode = next(line for line in stderr if "tracing opens via" in line).split()[4]
    assert mode in ("kprobe", "raw_tp", "tracepoint"), stderr  # the points that need no BTF (kprobe: in the guest)
    assert marker in stdout
