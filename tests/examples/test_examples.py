"""Each example runs as a user would run it, against the real kernel, and shows what it says it shows."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openat.syscalls import features
from openat.uapi import ProgType

from ..support import requires

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RUN_TIMEOUT_S = 60  # a bound for a loaded machine, not a timing check


def run_example(name: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=RUN_TIMEOUT_S)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    return out


def busy_opener(comm: str, seconds: float) -> subprocess.Popen:
    """A process named ``comm`` that opens /dev/null over and over for ``seconds``."""
    code = (
        "import os, time\n"
        f"open('/proc/self/comm', 'w').write({comm!r})\n"
        f"end = time.monotonic() + {seconds}\n"
        "while time.monotonic() < end:\n"
        "    os.close(os.open('/dev/null', os.O_RDONLY))\n"
        "    time.sleep(0.001)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code])


@requires(features.syscall_tracepoints)
def test_tracepoint_counter_counts_a_process_that_opens():
    example = run_example("tracepoint_counter.py", "--seconds", "3", "--top", "1000")
    opener = busy_opener("ex-counter", 4)
    out = finish(example)
    opener.wait(timeout=RUN_TIMEOUT_S)
    counts = dict(re.findall(r"^(\S+)\s+(\d+)$", out, re.M))
    assert int(counts.get("ex-counter", 0)) > 10, out


@requires(features.ringbuf, features.raw_tracepoint)
def test_ringbuf_reader_prints_each_program_started(tmp_path):
    program = tmp_path / "ex-ringbuf-true"
    shutil.copy("/bin/true", program)
    example = run_example("ringbuf_reader.py", "--seconds", "3")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # until the example has attached and stops
        subprocess.run([str(program)], check=True)
        time.sleep(0.1)
    out = finish(example)
    assert re.search(r"^pid=\d+ comm='ex-ringbuf-true'$", out, re.M), out


def socket_filters() -> features.Feature:
    return features.program_type(ProgType.SOCKET_FILTER)


@requires(socket_filters)
def test_prog_test_run_keeps_ipv4_and_drops_arp():
    out = finish(run_example("prog_test_run.py"))
    assert "IPv4 packet of 42 bytes: kept" in out
    assert "ARP packet of 42 bytes: dropped" in out
    assert "r0 = *(u8 *)skb[0x0]" in out  # the listing, with the line that emitted each instruction
