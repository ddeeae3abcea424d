"""Differential test against LLVM's independent BPF encoder/decoder (llvm-mc-19).

Over every instruction form with boundary and random operands, in both directions:

* our text → llvm-mc bytes must equal our bytes; those llvm bytes → our disassembler → our
  assembler must give the same bytes back;
* our bytes → llvm-mc's disassembler text must match our text (LLVM prints decimal, we print
  hex like llvm-objdump) and must assemble with our assembler to the same bytes.

All forms go through one llvm-mc process per direction, because its start-up dominates.
Forms LLVM 19 cannot spell losslessly are listed in asm_forms.llvm_can_spell and skipped.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from typing import NamedTuple

import pytest

from .asm_forms import FORMS_LIST, instances, llvm_can_parse, llvm_can_spell
from openat.asm import DecodeError, Instruction, assemble, disassemble

LLVM_MC = shutil.which("llvm-mc-19")

if LLVM_MC is None and os.environ.get("CI"):
    pytest.fail("llvm-mc-19 is missing in CI: .ci/run must install Debian's llvm-19", pytrace=False)

pytestmark = pytest.mark.skipif(
    LLVM_MC is None,
    reason="llvm-mc-19 not found: install Debian's llvm-19 package (apt-get install llvm-19)",
)

ENCODING = re.compile(r"^\s*(?P<text>.*?)\s*# encoding: \[(?P<bytes>[^\]]*)\]\s*$")
SEED = 9669


class LlvmLine(NamedTuple):
    text: str
    code: bytes


def _run_llvm(args: list[str], stdin: str) -> list[LlvmLine]:
    assert LLVM_MC is not None
    result = subprocess.run(
        [LLVM_MC, "-triple", "bpfel", "-mcpu=v4", "-show-encoding", *args],
        input=stdin, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0 and "error" not in result.stderr and "warning" not in result.stderr, result.stderr[:2000]
    lines = []
    for raw in result.stdout.splitlines():
        m = ENCODING.match(raw)
        if m:
            code = bytes(int(b, 16) for b in m.group("bytes").split(","))
            lines.append(LlvmLine(" ".join(m.group("text").split()), code))
    return lines


@pytest.fixture(scope="module")
def corpus() -> list[Instruction]:
    rng = random.Random(SEED)
    return [ins for form in FORMS_LIST for ins in instances(form, rng, randoms=5)]


def _decimal(text: str) -> str:
    return " ".join(re.sub(r"0x([0-9a-f]+)", lambda m: str(int(m.group(1), 16)), text).split())


def test_our_text_assembled_by_llvm_gives_our_bytes(corpus: list[Instruction]) -> None:
    cases = [ins for ins in corpus if llvm_can_parse(ins)]
    texts = [disassemble(ins.encode()).strip() for ins in cases]
    llvm = _run_llvm([], "\n".join(texts) + "\n")
    assert len(llvm) == len(cases)
    mismatches = [
        (text, ins.encode().hex(" "), got.code.hex(" "))
        for ins, text, got in zip(cases, texts, llvm)
        if got.code != ins.encode()
    ]
    assert not mismatches, mismatches[:10]
    # ...and LLVM's bytes come back unchanged through our disassembler and assembler.
    for got in llvm:
        assert assemble(disassemble(got.code)) == got.code


def test_llvm_disassembly_of_our_bytes_matches_our_text_and_reassembles(
    corpus: list[Instruction],
) -> None:
    cases = [ins for ins in corpus if llvm_can_spell(ins)]
    listing = "\n".join(" ".join(f"0x{b:02x}" for b in ins.encode()) for ins in cases) + "\n"
    llvm = _run_llvm(["--disassemble"], listing)
    assert len(llvm) == len(cases)
    problems = []
    for ins, got in zip(cases, llvm):
        ours = disassemble(ins.encode()).strip()
        if got.code != ins.encode() or _decimal(ours) != got.text:
            problems.append((ins, ours, got.text))
        elif assemble(got.text) != ins.encode():
            problems.append((ins, "reassembly of LLVM text differs", got.text))
    assert not problems, problems[:10]


def test_encodings_llvm_rejects_are_decode_errors_for_us_too() -> None:
    bad = [
        "d7 01 00 00 11 00 00 00",  # bswap17
        "8f 01 00 00 00 00 00 00",  # NEG with the register bit
        "95 21 00 00 02 00 00 00",  # exit with operands
        "00 00 00 00 00 00 00 00",  # opcode 0
    ]
    assert LLVM_MC is not None
    listing = "\n".join(" ".join(f"0x{b}" for b in h.split()) for h in bad) + "\n"
    result = subprocess.run(
        [LLVM_MC, "-triple", "bpfel", "-mcpu=v4", "--disassemble"],
        input=listing, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.stderr.count("invalid instruction encoding") == len(bad), result.stderr
    for h in bad:
        with pytest.raises(DecodeError):
            disassemble(bytes.fromhex(h))
