"""examples/vm_counter.py runs as a user would run it and shows what it says: the kernel's and
the machine's counts side by side, equal, and the machine's trace."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from openat.syscalls import features
from openat.uapi import ProgType

from ..support import requires

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vm_counter.py"
RUN_TIMEOUT_S = 60  # a bound for a loaded machine, not a timing check


def run(*args: str) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return done.stdout


def socket_filters() -> features.Feature:
    return features.program_type(ProgType.SOCKET_FILTER)


@requires(socket_filters)
def test_the_kernel_and_the_machine_count_the_same():
    out = run()
    rows = dict((name, (int(kernel), int(vm))) for name, kernel, vm in re.findall(r"^(\w+)\s+(\d+)\s+(\d+)$", out, re.M))
    assert rows == {"icmp": (1, 1), "tcp": (3, 3), "udp": (2, 2)}, out
    assert out.rstrip().endswith("same counts: yes")


def test_the_machine_alone_needs_no_root_and_traces():
    out = run("--vm-only", "--trace")
    assert "r0 = *(u8 *)skb[0x9]                     r0 = 0x6" in out
    assert "call 0x1 # bpf_map_lookup_elem" in out and "exit: r0 = 0x0 (0) after 18 instructions" in out
    assert re.search(r"^tcp\s+-\s+3$", out, re.M) and out.rstrip().endswith("kernel: not run (--vm-only)")
