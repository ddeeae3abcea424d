"""bench/fuzz.py in miniature: every parser's round runs, and defects are counted, not hidden."""

from __future__ import annotations

import random

import pytest

from bench import fuzz
from tests.hostile import Outcome, RoundTripMismatch


@pytest.mark.parametrize("parser", list(fuzz.PARSERS))
def test_each_parser_takes_its_inputs_without_defects(parser: str) -> None:
    tally = fuzz.fuzz(parser, 100, seed=1)
    assert tally.total >= 100 and set(tally.inputs) == {"valid", "mutated", "random"}
    assert tally.foreign == {} and tally.mismatches == 0, tally.examples
    assert 0 < tally.accepted < tally.total and tally.errors  # both outcomes were exercised


def test_foreign_exceptions_and_mismatches_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(rng: random.Random):
        def foreign() -> Outcome:
            raise TypeError("a defect")

        def mismatch() -> Outcome:
            raise RoundTripMismatch("read back differently")

        return [("valid", lambda: Outcome(True, [])), ("mutated", foreign), ("random", mismatch)]

    monkeypatch.setitem(fuzz.PARSERS, "broken", broken)
    tally = fuzz.fuzz("broken", 6)
    assert (tally.total, tally.accepted, tally.foreign, tally.mismatches) == (6, 2, {"TypeError": 2}, 2)
    assert "mutated: TypeError: a defect" in tally.examples
    assert fuzz.main(["--inputs", "3", "--parsers", "broken"]) == 1
    table = fuzz.markdown([tally])
    assert "| broken | 6 (2 / 2 / 2) | 2 | none | TypeError 2 | 2 |" in table
