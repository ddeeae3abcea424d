"""The assembler on hostile text of growing size: time for 4n ÷ time for n, per input shape.

Quadratic scanning or a backtracking regex shows as a ratio near 16; linear
work stays near 4. A timing ratio, so it lives here and not in a unit test
(tests/asm/test_hostile_text.py checks the outcome on the same inputs).
``python bench/asm_linear.py`` prints each shape; :func:`run` returns a dict.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from openat.asm import AsmSyntaxError, assemble  # noqa: E402

TARGET_RATIO = 8.0  # 4x the input under 8x the time (quadratic would be 16x)


def _best_seconds(text: str, repetitions: int = 5) -> float:
    """The fastest of a few runs, in CPU time: what the code costs, not what a busy machine added.

    Wall time would count the time other processes held the CPU, which on a loaded machine
    falls more often on a long run than on a short one and skews the ratio.
    """
    best = float("inf")
    for _ in range(repetitions):
        start = time.process_time()
        try:
            assemble(text)
        except AsmSyntaxError:
            pass
        best = min(best, time.process_time() - start)
    return best


# Inputs that a quadratic scan or a backtracking regex would make slow, by size n: each
# regex of the assembler meets long runs of what its quantifiers accept, then a mismatch.
HOSTILE: dict[str, Callable[[int], str]] = {
    "block comments": lambda n: "/**/" * n + "exit",
    "comment after comment": lambda n: "/* */#" * n,
    "unterminated comments": lambda n: "exit " + "/*" * n,
    "spaces then junk": lambda n: "r0 = " + " " * n + "x",
    "digits then junk": lambda n: "r0 = " + "1" * n + " x",
    "hex digits then junk": lambda n: "r0 = 0x" + "f" * n + " x",
    "register digits": lambda n: "r" + "1" * n + " x",
    "identifier": lambda n: "a" * n,
    "label definitions": lambda n: "a:" * n,
    "spaces in a jump": lambda n: "if r1 ==" + " " * n + "1" + " " * n + "goto",
    "spaces in a packet load": lambda n: "r0 = *(u8 *)skb[r1" + " " * n + "+" + " " * n,
    "spaces in an address": lambda n: "r0 = *(u8 *)(r1" + " " * n + "+" + " " * n + "1" + " " * n,
    "spaces in call pc": lambda n: "call pc" + " " * n + "+" + " " * n,
    "opening parentheses": lambda n: "r0 = *(" * n,
    "spaces before ll": lambda n: "r0 = 1" + " " * n + "l",
}



def ratio(make: Callable[[int], str]) -> tuple[int, float]:
    """(n, time for 4n ÷ time for n), n grown until the timer's resolution does not count."""
    size = 1000
    while _best_seconds(make(size), 1) < 0.002 and size < 256_000:
        size *= 2
    return size, _best_seconds(make(4 * size)) / max(_best_seconds(make(size)), 1e-9)


def run() -> dict[str, Any]:
    """The worst shape's ratio and every shape's, against TARGET_RATIO."""
    ratios = {name: round(ratio(make)[1], 2) for name, make in HOSTILE.items()}
    worst = max(ratios, key=ratios.__getitem__)
    return {"worst_shape": worst, "worst_ratio": ratios[worst], "target_ratio": TARGET_RATIO,
            "meets_target": ratios[worst] < TARGET_RATIO, "ratios": ratios}


if __name__ == "__main__":
    for name, make in HOSTILE.items():
        n, r = ratio(make)
        print(f"{name:28} n={n:>7}: 4n/n = {r:5.2f} ({'ok' if r < TARGET_RATIO else 'SUPERLINEAR'})")
