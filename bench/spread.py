"""min / median / max of issue 16's figures across several `python -m bench` results.

usage: python -m bench.spread bench/results/A.json bench/results/B.json ...

One run can be lucky on a shared machine; docs/bench.md quotes the spread
across full runs instead. Prints a markdown table: openat's figure per run,
then min, median and max, and how many runs met the target.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any, Optional

from . import report


def _cell(target: report.Target, value: Optional[float]) -> str:
    return report._value_text(target, value)


def mode_rows(results: list[dict[str, Any]]) -> list[str]:
    """Per attach mode: the per-open ratio, the getppid() tax and the in-kernel ratio to its floor, as min/median/max."""
    lines = ["| mode | per-open ÷ no tracer | getppid() tax (ns) | in-kernel ns per open | ÷ its floor |", "|---|---|---|---|---|"]
    modes = sorted({n for r in results for n in r["summary"] if n.startswith("openat:")})
    for name in modes:
        cols = []
        for getter in (
            lambda s: s[name].get("c_ratio"),
            lambda s: s[name].get("tax_ns"),
            lambda s: s[name].get("kernel_ns"),
            lambda s: report._ratio(s[name].get("kernel_ns"), (s.get("floor:" + name.split(":")[1]) or {}).get("kernel_ns")),
        ):
            values = [getter(r["summary"]) for r in results if r["summary"].get(name, {}).get("available")]
            values = [v for v in values if v is not None]
            cols.append(_spread(values))
        if any(c != "–" for c in cols):
            lines.append(f"| {name.split(':')[1]} | " + " | ".join(cols) + " |")
    return lines


def _spread(values: list[float]) -> str:
    if not values:
        return "–"
    fmt = (lambda v: f"{v:,.0f}") if max(abs(v) for v in values) >= 100 else (lambda v: f"{v:.2f}")
    return f"{fmt(min(values))} / {fmt(statistics.median(values))} / {fmt(max(values))}"


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    results = []
    for path in argv:
        result = json.loads(Path(path).read_text())
        result["summary"] = report.summarize(result)
        results.append(result)
    verdicts = [{v["key"]: v for v in report.verdicts(r)} for r in results]
    head = "| figure | " + " | ".join(r["date"].split(" ", 1)[1] for r in results) + " | min / median / max | target | met in |"
    lines = [head, "|" + "---|" * (len(results) + 4)]
    for target in report.TARGETS:
        values = [v[target.key]["value"] for v in verdicts]
        present = [x for x in values if x is not None]
        spread = (f"{_cell(target, min(present))} / {_cell(target, statistics.median(present))} / {_cell(target, max(present))}"
                  if present else "–")
        met = sum(v[target.key]["status"] == "met" for v in verdicts)
        judged = sum(v[target.key]["status"] in ("met", "missed") for v in verdicts)
        limits = {report._limit_text(target, v[target.key]["limit"]) for v in verdicts}
        limit = next(iter(limits)) if len(limits) == 1 else report._limit_text(target, None if target.key == "tax_ns" else target.limit)
        lines.append(f"| {target.label} | " + " | ".join(_cell(target, x) for x in values)
                     + f" | {spread} | {limit} | {f'{met} of {judged}' if judged else '–'} |")
    print("\n".join(lines))
    print()
    print("\n".join(mode_rows(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
