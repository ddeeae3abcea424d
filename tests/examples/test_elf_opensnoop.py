"""examples/elf_opensnoop.py loads a clang-compiled object and prints the opens of the process it is told to watch."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ..elf.objects import compile_object, toolchain_missing, write_vmlinux_h
from ..support import need_root

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT_S = 120  # a bound for a loaded machine, not a timing check


@pytest.fixture(scope="module")
def opensnoop_object(tmp_path_factory) -> Path:
    """The example's C source compiled now, where clang-19 is there; else the object committed beside it."""
    if toolchain_missing():
        return EXAMPLES / "elf_opensnoop.bpf.o"
    directory = tmp_path_factory.mktemp("example")
    write_vmlinux_h(directory)
    return compile_object(EXAMPLES / "elf_opensnoop.bpf.c", directory)


@pytest.mark.parametrize("which", ["compiled", "committed"])
def test_opensnoop_prints_the_opens_of_the_watched_process(which, opensnoop_object, tmp_path):
    need_root()
    path = opensnoop_object if which == "compiled" else EXAMPLES / "elf_opensnoop.bpf.o"
    target = tmp_path / f"opened-{uuid.uuid4().hex}"
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; open('/proc/self/comm', 'w').write('elf-example'); sys.stdin.readline(); open(sys.argv[1], 'w').close()", str(target)],
        stdin=subprocess.PIPE, text=True,
    )
    env = dict(os.environ, PYTHONPATH=str(EXAMPLES.parent))
    example = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "elf_opensnoop.py"), "--object", str(path), "--pid", str(child.pid), "--seconds", "6"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        header = example.stdout.readline()
        assert header.split() == ["PID", "COMM", "FLAGS", "FILE"], example.stderr.read()
        child.communicate("go\n", timeout=TIMEOUT_S)
        out, err = example.communicate(timeout=TIMEOUT_S)
    finally:
        for process in (child, example):
            process.kill()
            process.wait()
    assert example.returncode in (0, -9) and "Traceback" not in err, err
    lines = [line.split() for line in out.splitlines()]
    assert [str(child.pid), "elf-example", "0x80241", str(target)] in lines  # O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC (Python adds it)
    assert all(line[0] == str(child.pid) for line in lines)  # the .rodata filter let nothing else through
