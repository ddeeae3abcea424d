"""``python -m openat.elf``: the listing of an object, for people."""

from __future__ import annotations

import os
import subprocess
import sys

from openat.elf import load_spec
from openat.elf.__main__ import main, printable, render

from .objects import fixture


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    return subprocess.run([sys.executable, "-m", "openat.elf", *args], capture_output=True, text=True, env=env)


def test_the_listing_of_an_object():
    result = _run(str(fixture("subprog")), "--btf", "none")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("object subprog: license 'GPL', 2 programs, 1 maps, 1 variables, BTF")
    for part in ("sections:", "programs:", "maps:", "variables:", "CO-RE relocations: 0"):
        assert part in out
    assert "first  [syscall]  syscall; 12 instructions; sub-programs sum_of_squares, square" in out
    # C lines before the instructions they compiled to, sub-programs named where they start
    assert "    ; return sum_of_squares(3, 4);            /* 25 */  [subprog.bpf.c:" in out
    assert "    square:\n" in out and "call L" in out and "# bpf_loop" in out
    assert "loop_total               .bss+0 (8 bytes)  u64 = 0" in out


def test_core_relocations_resolved_against_a_btf_file():
    spec = load_spec(fixture("core"))
    out = render(spec, code=False, target=None)
    assert f"CO-RE relocations: {len(spec.core_relocations(list(spec.programs)))}\n" in out
    assert "<byte_off> [" in out and "=>" not in out
    if os.path.exists("/sys/kernel/btf/vmlinux"):
        result = _run(str(fixture("core")), "--no-code")
        assert "(resolved against /sys/kernel/btf/vmlinux)" in result.stdout and "=> <byte_off>" in result.stdout
        assert "poisoned" in result.stdout


def test_one_program(capsys):
    assert main([str(fixture("sections")), "--program", "xdp_pass", "--btf", "none"]) == 0
    out = capsys.readouterr().out
    assert "xdp_pass  [xdp]" in out and "tc_ok  [tc]" not in out
    assert sum(line.endswith(": exit") for line in out.splitlines()) == 1  # only xdp_pass, with its code
    assert main([str(fixture("sections")), "--program", "nope"]) == 1


def test_bad_input_is_one_line_on_stderr(tmp_path):
    bad = tmp_path / "bad.o"
    bad.write_bytes(b"\x7fELF\x02\x01" + bytes(10))
    result = _run(str(bad))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "truncated ELF header" in result.stderr


def test_unprintable_names_never_reach_the_terminal_raw():
    assert printable("ok") == "ok"
    assert printable("a\x1b[31mred\x07") == "a\\x1b[31mred\\x07"
    assert printable("\u202eevil") == "\\u{202e}evil"
    data = bytearray(fixture("subprog").read_bytes())
    position = data.rindex(b"\0second\0") + 1  # in .strtab: the program's symbol
    data[position : position + 6] = b"\x1b[2J\x07x"
    spec = load_spec(bytes(data))
    out = render(spec, code=True)
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[2J\\x07x" in out
