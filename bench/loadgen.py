"""openat()+close() of one file N times from Python; prints ns per call as one JSON line.

The Python variant shows the overhead as a Python program would feel it: the
interpreter's own cost per call dilutes the tracer's share, unlike the C loop.
usage: python bench/loadgen.py PATH N
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} PATH N", file=sys.stderr)
        return 2
    path, n = argv[1], int(argv[2])
    flags = os.O_RDONLY | os.O_CLOEXEC
    # Bound methods hoisted: attribute lookups would be measured as "openat" cost.
    do_open, do_close = os.open, os.close
    start = time.perf_counter_ns()
    for _ in range(n):
        do_close(do_open(path, flags))  # os.open is openat(AT_FDCWD, ...) on Linux
    elapsed = time.perf_counter_ns() - start
    print(json.dumps({"calls": n, "elapsed_ns": elapsed, "ns_per_call": round(elapsed / n, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
