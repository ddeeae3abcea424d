"""pyroute2 is loaded by the network hooks' attach calls only, and its absence is a one-line error."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_importing_the_network_hooks_does_not_load_pyroute2():
    result = run(
        "import sys, openat.link.xdp, openat.link.tc, openat.asm.packet, openat.syscalls.features\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyroute2'))\n"
    )
    assert result.stdout.strip() == "[]", result.stderr


def test_the_tracer_loads_neither_pyroute2_nor_the_network_modules():
    result = run(
        "import sys, openat.tracer.cli, openat.tracer.attach, openat.tracer.doctor, openat.syscalls.features\n"
        "banned = ('pyroute2', 'openat.link.net', 'openat.link.xdp', 'openat.link.tc', 'openat.link.lifetime',"
        " 'openat.syscalls.netns', 'openat.asm.packet')\n"
        "print(sorted(m for m in sys.modules if m.startswith(banned)))\n"
    )
    assert result.stdout.strip() == "[]", result.stderr


def test_without_pyroute2_attaching_says_what_to_install():
    result = run(
        "import sys\n"
        "sys.modules['pyroute2'] = None  # as if it were not installed\n"
        "from openat.link import tc, xdp\n"
        "for attach in (xdp.attach, tc.attach):\n"
        "    try:\n"
        "        attach(0, 'lo')\n"
        "    except ImportError as error:\n"
        "        print(error)\n"
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout + result.stderr
    for line in lines:
        assert line == "XDP and tc attach need pyroute2, which is not installed: pip install 'openat[net]' (or: pip install pyroute2)"
