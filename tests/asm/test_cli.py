"""python -m openat.asm: assemble/disassemble, exit codes, one-line errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from openat.asm.__main__ import main

SOURCE = """\
# count to three
    r0 = 0
loop:
    r0 += 1
    if r0 < 3 goto loop
    call bpf_ktime_get_ns
    exit
"""
CODE = bytes.fromhex(
    "b700000000000000"  # r0 = 0
    "0700000001000000"  # r0 += 1
    "a500feff03000000"  # if r0 < 3 goto -2
    "8500000005000000"  # call 5
    "9500000000000000"  # exit
)


def test_assemble_to_file_and_disassemble_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "prog.s"
    src.write_text(SOURCE)
    out = tmp_path / "prog.bin"
    assert main(["assemble", str(src), "-o", str(out)]) == 0
    assert out.read_bytes() == CODE
    assert main(["disassemble", str(out), "--labels", "--helpers"]) == 0
    printed = capsys.readouterr().out
    assert printed == "\tr0 = 0x0\nL1:\n\tr0 += 0x1\n\tif r0 < 0x3 goto L1\n\tcall 0x5 # bpf_ktime_get_ns\n\texit\n"


def test_disassemble_hex_text_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hex_file = tmp_path / "prog.hex"
    hex_file.write_text("b7 00 00 00 2a 00 00 00\n95 00 00 00 00 00 00 00\n")
    assert main(["disassemble", str(hex_file), "--hex"]) == 0
    assert capsys.readouterr().out == "\tr0 = 0x2a\n\texit\n"


def test_syntax_error_is_one_line_with_file_line_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bad.s"
    src.write_text("r0 = 0\nr0 = r12\n")
    assert main(["assemble", str(src)]) == 1
    err = capsys.readouterr().err
    assert err == f"python -m openat.asm: error: {src}:2:6: no register r12 (r0-r10 / w0-w10 exist)\n"


def test_malformed_bytes_and_missing_file_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\xff" * 8)
    assert main(["disassemble", str(bad)]) == 1
    assert "unknown opcode 0xff" in capsys.readouterr().err
    assert main(["disassemble", str(tmp_path / "missing")]) == 1
    assert "No such file" in capsys.readouterr().err


def test_usage_error_exits_2_without_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "openat.asm", "frobnicate"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "invalid choice" in result.stderr


def test_real_process_writes_bytes_to_stdout(tmp_path: Path) -> None:
    src = tmp_path / "prog.s"
    src.write_text(SOURCE)
    result = subprocess.run([sys.executable, "-m", "openat.asm", "assemble", str(src)], capture_output=True, check=False)
    assert result.returncode == 0 and result.stdout == CODE
    bad = tmp_path / "bad.s"
    bad.write_text("goto nowhere\n")
    result = subprocess.run([sys.executable, "-m", "openat.asm", "assemble", str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
