"""python -m openat.vm run: assembly, raw bytes, memory, tracing, maps, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from openat.vm.cli import main

LOOP = """\
    r1 = 10          # sum 10..1
    r0 = 0
loop:
    r0 += r1
    r1 += -1
    if r1 != 0 goto loop
    exit
"""


@pytest.fixture
def loop_file(tmp_path):
    path = tmp_path / "loop.s"
    path.write_text(LOOP)
    return path


def test_run_prints_r0(loop_file, capsys):
    assert main(["run", str(loop_file)]) == 0
    assert capsys.readouterr().out == "r0 = 0x37 (55)\n"


def test_trace_prints_each_step_with_its_line(loop_file, capsys):
    assert main(["run", str(loop_file), "--trace"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("     0  r1 = 0xa") and lines[0].endswith("# line 1")
    assert len(lines) == 2 + 3 * 10 + 1 + 1 + 1  # two sets, ten rounds of three, exit, the end, r0
    assert lines[-2] == "exit: r0 = 0x37 (55) after 33 instructions" and lines[-1] == "r0 = 0x37 (55)"


def test_raw_bytes_memory_and_context(tmp_path, capsys):
    raw = tmp_path / "prog.bin"
    raw.write_bytes(bytes.fromhex("61 10 00 00 00 00 00 00 95 00 00 00 00 00 00 00"))  # w0 = *(u32 *)(r1 + 0)
    assert main(["run", str(raw), "--mem", "2a 00 00 00"]) == 0
    assert main(["run", str(raw), "--ctx", "0x07,0x00,0x00,0x00"]) == 0
    hexed = tmp_path / "prog.hex"
    hexed.write_text("b7 00 00 00 ff ff ff ff\n95 00 00 00 00 00 00 00\n")
    assert main(["run", str(hexed), "--hex"]) == 0
    assert capsys.readouterr().out.splitlines() == ["r0 = 0x2a (42)", "r0 = 0x7 (7)", "r0 = 0xffffffffffffffff (-1)"]


def test_maps_are_made_and_printed(tmp_path, capsys):
    source = tmp_path / "count.s"
    source.write_text("""\
    *(u32 *)(r10 - 4) = 0
    r2 = r10
    r2 += -4
    ld_pseudo r1, 1, 3
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r1 = 5
    lock *(u64 *)(r0 + 0) += r1
out:
    r0 = 0
    exit
""")
    assert main(["run", str(source), "--map", "3=array:4:8:1"]) == 0
    assert capsys.readouterr().out.splitlines() == ["map 3 [00 00 00 00] = 05 00 00 00 00 00 00 00", "r0 = 0x0 (0)"]


def test_printk_goes_to_stderr_escaped(tmp_path, capsys):
    source = tmp_path / "hello.s"
    source.write_text("""\
    r1 = 0x0a1b6968 ll
    *(u64 *)(r10 - 8) = r1
    r1 = r10
    r1 += -8
    r2 = 8
    call bpf_trace_printk
    exit
""")
    assert main(["run", str(source)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "printk: hi\\x1b\\x0a\n" and captured.out == "r0 = 0x4 (4)\n"


@pytest.mark.parametrize("args, message", [
    (["run", "{missing}"], "No such file or directory"),
    (["run", "{bad_s}"], "{bad_s}:1:1: not an instruction"),
    (["run", "{loop}", "--mem", "xyz"], "--mem: 'xyz' is not hex bytes"),
    (["run", "{loop}", "--map", "3=trie:4:4:1"], "expected FD=TYPE:KEY:VALUE:ENTRIES"),
    (["run", "{fault}"], "insn 0 `r0 = *(u64 *)(r1 + 0x0)` (line 1): load: 8-byte access at 0x0: a NULL pointer"),
    (["run", "{obj}:xdp"], "needs openat.elf"),
])
def test_errors_are_one_line(tmp_path, loop_file, capsys, args, message):
    (tmp_path / "bad.s").write_text("nonsense\n")
    (tmp_path / "fault.s").write_text("r0 = *(u64 *)(r1 + 0)\nexit\n")
    (tmp_path / "prog.o").write_bytes(b"\x7fELF")
    names = {"missing": tmp_path / "none.s", "bad_s": tmp_path / "bad.s", "loop": loop_file,
             "fault": tmp_path / "fault.s", "obj": tmp_path / "prog.o"}
    argv = [arg.format(**{key: str(value) for key, value in names.items()}) for arg in args]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m openat.vm: error: ") and err.count("\n") == 1
    assert message.format(**{key: str(value) for key, value in names.items()}) in err


def test_as_a_module(loop_file):
    done = subprocess.run([sys.executable, "-m", "openat.vm", "run", str(loop_file)], capture_output=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"r0 = 0x37 (55)\n", b"")
    usage = subprocess.run([sys.executable, "-m", "openat.vm"], capture_output=True, timeout=60)
    assert usage.returncode == 2
