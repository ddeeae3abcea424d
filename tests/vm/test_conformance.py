"""The public bpf_conformance suite (tests/vm/conformance, vendored with its licence): every
test's expected r0 in the machine, directly and through the plugin protocol the suite's
runner speaks (``python -m openat.vm.plugin``)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from openat.vm import Machine, VmError
from openat.vm import plugin

from .conformance_format import parse

DATA = Path(__file__).with_name("conformance")
FILES = sorted(DATA.glob("*.data"))


def base16(data: bytes) -> str:
    """What the runner sends: each byte as two hex digits and spaces."""
    return "".join(f"{byte:02x}  " for byte in data)


def test_the_suite_is_all_there():
    assert len(FILES) == 313
    assert (DATA / "LICENSE").read_text().startswith("MIT License")


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_expected_result(path):
    test = parse(path)
    machine = Machine(test.program, sources=test.sources)
    if test.error is not None:
        with pytest.raises(VmError):
            machine.run(mem=test.memory)
    else:
        assert machine.run(mem=test.memory) == test.result


def run_plugin(monkeypatch, capsys, code: bytes, memory) -> tuple:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(base16(code).encode())))
    status = plugin.main([base16(memory)] if memory else [])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_every_test_through_the_plugin_protocol(monkeypatch, capsys):
    for path in FILES:
        test = parse(path)
        status, out, err = run_plugin(monkeypatch, capsys, test.program, test.memory)
        assert (status, err) == (0, ""), path.name
        assert int(out, 16) == test.result, path.name


def test_the_plugin_as_the_runner_starts_it():
    test = parse(DATA / "mem-len.data")  # r0 = r2: the memory's length
    done = subprocess.run([sys.executable, "-m", "openat.vm.plugin", base16(test.memory)],
                          input=base16(test.program).encode(), capture_output=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"8\n", b"")


def test_the_plugin_reports_a_fault_on_stderr(monkeypatch, capsys):
    ldxdw_past_the_end = bytes.fromhex("7910080000000000" "9500000000000000")
    status, out, err = run_plugin(monkeypatch, capsys, ldxdw_past_the_end, b"\x01" * 8)
    assert (status, out) == (1, "")
    assert err.startswith("openat.vm: insn 0 `r0 = *(u64 *)(r1 + 0x8)`: load:") and err.count("\n") == 1


def test_the_plugin_refuses_bad_arguments(monkeypatch, capsys):
    assert run_plugin(monkeypatch, capsys, bytes.fromhex("9500000000000000"), b"")[0] == 0
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"95 00 00 00 00 00 00 00")))
    assert plugin.main(["zz"]) == 1
    assert "not base16" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert plugin.main(["--xdp"]) == 1
    assert "unknown option '--xdp'" in capsys.readouterr().err


def test_an_error_section_expects_an_error(tmp_path):
    data = tmp_path / "fault.data"
    data.write_text("-- asm\nldxdw %r0, [%r1+8]\nexit\n-- mem\n00 01\n-- error\nout of bounds\n")
    test = parse(data)
    assert (test.error, test.result, test.memory) == ("out of bounds", None, b"\x00\x01")
    with pytest.raises(VmError, match="past the end of packet"):
        Machine(test.program, sources=test.sources).run(mem=test.memory)


def test_a_fault_names_the_data_files_line(tmp_path):
    data = tmp_path / "named.data"
    data.write_text("-- asm\nmov %r0, 1\nldxw %r0, [%r0+0]\nexit\n-- result\n0x0\n")
    with pytest.raises(VmError, match=r"insn 1 `w0 = \*\(u32 \*\)\(r0 \+ 0x0\)` \(named.data:3\): load: .*NULL"):
        test = parse(data)
        Machine(test.program, sources=test.sources).run()
