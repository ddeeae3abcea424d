"""Hostile input at length: each parser fed a million random and mutated inputs.

The parsers are openat's readers of untrusted bytes and text: the assembler (text), the
instruction decoder and disassembler (bytes), the BTF reader and the ring-buffer walker.
Each round feeds a parser one valid input (which must read back exactly), mutations of
it and an input made at random, through the checks of tests/hostile.py (the property
tests run the same checks a few hundred times). Counted: inputs, inputs accepted, the
parser's own errors by type, any other exception (a defect: none is expected), and
round-trip mismatches (also defects), with the time taken. Not part of the unit suite.

    PYTHONPATH=$PWD python -m bench.fuzz [--inputs 1000000] [--seed 0] [--parsers asm_text,btf]
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import string
import struct
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:  # run as a script: the generators live in the tests package
    sys.path.insert(0, ROOT)

from openat.asm import disassemble  # noqa: E402
from openat.asm.instruction import encode  # noqa: E402
from tests.hostile import (  # noqa: E402
    Outcome,
    Ring,
    RoundTripMismatch,
    check_btf,
    check_code,
    check_ring,
    check_text,
    mutate_bytes,
    mutate_text,
    random_ring,
    valid_btf,
    valid_program,
    valid_ring,
)

DEFAULT_INPUTS = 1_000_000
# Smaller BTF than the property tests use (30 types, 64 ids read): a million blobs of
# those would take hours; the kinds, lookups and faults are the same.
FUZZ_BTF_TYPES = 12
FUZZ_BTF_IDS = 16

# One round's inputs: (source, check). A check returns an Outcome (accepted, the parser's
# own errors by name); other exceptions and RoundTripMismatch propagate to the tally.
Check = Callable[[], Outcome]
Round = Callable[[random.Random], List[Tuple[str, Check]]]


def _asm_text_round(rng: random.Random) -> List[Tuple[str, Check]]:
    code = encode(valid_program(rng))
    text = disassemble(code, labels=rng.random() < 0.5, helper_comments=rng.random() < 0.5)
    junk = "".join(rng.choice(string.printable + "\uff11\u00a0\u200b\u0665") for _ in range(rng.randint(0, 60)))
    return [
        ("valid", lambda: check_text(text, expected=code)),
        ("mutated", lambda: check_text(mutate_text(rng, text))),
        ("mutated", lambda: check_text(mutate_text(rng, text))),
        ("random", lambda: check_text(junk)),
    ]


def _asm_code_round(rng: random.Random) -> List[Tuple[str, Check]]:
    program = valid_program(rng)
    code = encode(program)
    return [
        ("valid", lambda: check_code(code, rng, expected=program)),
        ("mutated", lambda: check_code(mutate_bytes(rng, code), rng)),
        ("mutated", lambda: check_code(mutate_bytes(rng, code), rng)),
        ("random", lambda: check_code(rng.randbytes(rng.choice((8, 16, 24, rng.randint(0, 80)))), rng)),
    ]


def _btf_round(rng: random.Random) -> List[Tuple[str, Check]]:
    blob, expected = valid_btf(rng, FUZZ_BTF_TYPES)

    def random_types() -> Outcome:
        types = rng.randbytes(rng.randint(0, 200))
        type_len, str_len = rng.randint(0, 300) & ~3, rng.randint(0, 300)
        header = struct.pack("=HBBIIIII", 0xEB9F, 1, 0, 24, 0, type_len, type_len, str_len)
        return check_btf(header + types, max_ids=FUZZ_BTF_IDS)

    return [
        ("valid", lambda: check_btf(blob, expected, max_ids=FUZZ_BTF_IDS)),
        ("mutated", lambda: check_btf(mutate_bytes(rng, blob), max_ids=FUZZ_BTF_IDS)),
        ("mutated", lambda: check_btf(mutate_bytes(rng, mutate_bytes(rng, blob)), max_ids=FUZZ_BTF_IDS)),
        ("random", random_types),
    ]


def _ring_round(rng: random.Random) -> List[Tuple[str, Check]]:
    ring = valid_ring(rng)

    def random_memory() -> Outcome:
        size = 1 << rng.randint(3, 8)
        consumer = rng.randint(-600, 600)
        data = rng.randbytes(size) * rng.choice((1, 2))
        return check_ring(Ring(data, size, consumer, consumer + rng.randint(-600, 600), None, None), rng)

    return [
        ("valid", lambda: check_ring(ring, rng)),
        ("mutated", lambda: check_ring(random_ring(rng, ring), rng)),
        ("mutated", lambda: check_ring(random_ring(rng, ring), rng)),
        ("random", random_memory),
    ]


PARSERS: Dict[str, Round] = {
    "asm_text": _asm_text_round,  # openat.asm.assemble
    "asm_code": _asm_code_round,  # Instruction.decode, decode, iter_decode, disassemble
    "btf": _btf_round,  # openat.btf.Btf and its lookups
    "ring": _ring_round,  # openat.syscalls.ringbuf.RecordWalker
}


class Tally(NamedTuple):
    """What one parser did with its inputs."""

    parser: str
    inputs: Dict[str, int]  # by source: valid, mutated, random
    accepted: int  # inputs the parser's entry point took (assemble, decode, Btf + len, drain)
    errors: Dict[str, int]  # the parser's own errors, by type, counted per failed call
    foreign: Dict[str, int]  # any other exception, by type: defects
    mismatches: int  # round trips that did not hold: defects
    examples: List[str]  # the first few defects, for a report
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.inputs.values())


def fuzz(parser: str, inputs: int, seed: int = 0, progress: Optional[Callable[[str], None]] = None) -> Tally:
    """Feed ``parser`` at least ``inputs`` inputs (whole rounds), from ``seed``."""
    make_round = PARSERS[parser]
    rng = random.Random(f"{seed}:{parser}")
    sources: collections.Counter = collections.Counter()
    errors: collections.Counter = collections.Counter()
    foreign: collections.Counter = collections.Counter()
    examples: List[str] = []
    accepted = mismatches = done = 0
    next_report = inputs // 10
    start = time.perf_counter()
    while done < inputs:
        for source, check in make_round(rng):
            done += 1
            sources[source] += 1
            try:
                outcome = check()
            except RoundTripMismatch as mismatch:
                mismatches += 1
                _keep(examples, f"{source}: round trip: {mismatch}")
                continue
            except Exception as error:  # noqa: BLE001 - counting what must never happen
                foreign[type(error).__name__] += 1
                _keep(examples, f"{source}: {type(error).__name__}: {error}")
                continue
            errors.update(outcome.errors)
            accepted += outcome.accepted
        if progress is not None and done >= next_report:
            progress(f"{parser}: {done:,} inputs, {sum(foreign.values())} foreign, {mismatches} mismatches")
            next_report += inputs // 10
    elapsed = time.perf_counter() - start
    return Tally(parser, dict(sources), accepted, dict(errors), dict(foreign), mismatches, examples, elapsed)


def _keep(examples: List[str], text: str) -> None:
    if len(examples) < 5:
        examples.append(text[:300])


def markdown(tallies: Sequence[Tally]) -> str:
    """The figures as the table docs/fuzz.md shows."""
    lines = [
        "| parser | inputs (valid / mutated / random) | accepted | own errors, by type (per call) | other exceptions | round-trip mismatches | time |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in tallies:
        sources = " / ".join(f"{t.inputs.get(s, 0):,}" for s in ("valid", "mutated", "random"))
        own = ", ".join(f"{name} {count:,}" for name, count in sorted(t.errors.items())) or "none"
        other = ", ".join(f"{name} {count:,}" for name, count in sorted(t.foreign.items())) or "0"
        lines.append(
            f"| {t.parser} | {t.total:,} ({sources}) | {t.accepted:,} | {own} | {other} | {t.mismatches:,} | {t.seconds:,.0f} s |"
        )
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the fuzzers; exit status 1 when any parser raised a foreign exception or mismatched."""
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=DEFAULT_INPUTS, help=f"inputs per parser (default {DEFAULT_INPUTS:,})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parsers", default=",".join(PARSERS), help=f"comma-separated subset of {','.join(PARSERS)}")
    parser.add_argument("--json", type=Path, help="also write the tallies here")
    args = parser.parse_args(argv)
    names = [name for name in args.parsers.split(",") if name]
    unknown = [name for name in names if name not in PARSERS]
    if unknown:
        parser.error(f"unknown parser {', '.join(unknown)}; choose from {', '.join(PARSERS)}")

    def progress(message: str) -> None:
        print(f"[fuzz {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    tallies = [fuzz(name, args.inputs, args.seed, progress) for name in names]
    print(markdown(tallies))
    for tally in tallies:
        for example in tally.examples:
            print(f"{tally.parser}: {example}")
    if args.json:
        args.json.write_text(json.dumps([t._asdict() for t in tallies], indent=2) + "\n")
    return 1 if any(t.foreign or t.mismatches for t in tallies) else 0


if __name__ == "__main__":
    raise SystemExit(main())
