"""Turning raw bench measurements into figures, target verdicts, markdown and a chart.

Everything here is pure (no kernel, no subprocesses) so tests/bench can check the
arithmetic and the table without root or a tracer.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

BASELINE = "baseline"
TRACER_ORDER = ("bpftrace", "opensnoop", "openat")
TRACER_LABELS = {
    "bpftrace": "bpftrace",
    "opensnoop": "opensnoop (libbpf-tools)",
    "openat": "openat",
}


@dataclass(frozen=True)
class Target:
    """One row of issue 6's target table; every target there is an upper bound."""

    key: str
    label: str
    ref_bpftrace: str
    ref_opensnoop: str
    limit: float
    unit: str


# The reference column values are text because one of them is a range (0–571).
TARGETS: tuple[Target, ...] = (
    Target("c_ratio", "per-open time ÷ no tracer", "5.07", "5.16", 1.3, "×"),
    Target("kernel_ns", "in-kernel ns per event", "7,440", "8,305", 400, "ns"),
    Target("startup_ms", "start-up", "119 ms", "15 ms", 100, "ms"),
    Target("peak_rss_mb", "peak RSS", "106 MB", "13 MB", 25, "MB"),
    Target("lost", "events lost at full load", "0", "0–571", 0, "events"),
)

# Lost-event reports differ per tool ("Lost 12 events on CPU #1", "lost=12",
# "12 events lost"); all of them put a count within a few words of "lost".
_LOST_PATTERNS = (
    re.compile(r"(?i)\blost\b\D{0,24}?(\d+)"),
    re.compile(r"(?i)(\d+)\s+(?:\w+\s+){0,2}lost\b"),
)
_LOST_WORD = re.compile(r"(?i)\blost\b")


def parse_lost(stderr_text: str, cumulative: bool = False) -> Optional[int]:
    """The lost-event count a tracer printed, or None if it reported none.

    None (rather than 0) keeps "the tool never says" apart from "the tool said 0".
    Tools that report increments (opensnoop's "Lost N events on CPU #i" per
    perf-buffer callback, bpftrace's "Lost N events") are summed; a tool that
    reports running totals (openat: "N events lost …, M in all", then the total
    at exit) is read as the largest number on its lost lines.
    """
    total: Optional[int] = None
    for line in stderr_text.splitlines():
        if cumulative:
            if _LOST_WORD.search(line):
                numbers = [int(n) for n in re.findall(r"\d+", line)]
                if numbers:
                    total = max(total or 0, max(numbers))
            continue
        for pattern in _LOST_PATTERNS:
            match = pattern.search(line)
            if match:
                total = (total or 0) + int(match.group(1))
                break
    return total


def paired_ratios(sequence: Sequence[tuple[str, Optional[float]]]) -> dict[str, list[float]]:
    """Ratio of each tracer run to the no-tracer runs right next to it.

    ``sequence`` is one repeat's runs in the order they happened, e.g.
    baseline, bpftrace, baseline, openat, baseline. Dividing by the mean of the
    neighbouring baselines (rather than one global baseline) is what makes slow
    drift of the machine (thermal, other tenants) cancel.
    """
    ratios: dict[str, list[float]] = {}
    for index, (slot, value) in enumerate(sequence):
        if slot == BASELINE or value is None:
            continue
        neighbours = []
        for step in (-1, 1):
            j = index + step
            while 0 <= j < len(sequence):
                other_slot, other_value = sequence[j]
                if other_slot == BASELINE and other_value is not None:  # a failed baseline is skipped
                    neighbours.append(other_value)
                    break
                j += step
        if neighbours:
            ratios.setdefault(slot, []).append(value / statistics.fmean(neighbours))
    return ratios


def _median(values: Iterable[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _interpreter_cell(result: dict[str, Any]) -> str:
    """The bare interpreter's VmHWM, the floor under a Python tracer's RSS."""
    kb = result.get("interpreter_vmhwm_kb")
    return "–" if kb is None else f"{kb * 1024 / 1e6:.1f} MB (python -c pass)"


def _kernel_ns_per_event(programs: Sequence[dict[str, Any]], opens: int) -> Optional[float]:
    """Total BPF run time of a tracer's programs per open the generator made.

    Dividing by the generator's opens, not by each program's run_cnt, keeps the
    tracers comparable whatever they hook: opensnoop runs two programs per open
    (sys_enter_openat, sys_exit_openat), a tracer on the generic sys_enter and
    sys_exit runs its programs on the close() as well and pays for filtering it
    out. Either way the cost lands on the open+close the user makes. Opens by
    other processes during the window add to the numerator; on a quiet machine
    that is well under 1%.
    """
    if not opens or not any(p.get("run_cnt", 0) for p in programs):
        return None
    return sum(p["run_time_ns"] for p in programs) / opens


def _kernel_runs(programs: Sequence[dict[str, Any]], opens: int) -> tuple[Optional[float], Optional[float]]:
    """(program runs per open, ns per program run): the issue's run_time_ns ÷ run_cnt view."""
    runs = sum(p.get("run_cnt", 0) for p in programs)
    if not opens or not runs:
        return None, None
    return runs / opens, sum(p["run_time_ns"] for p in programs) / runs


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    """Figures per tracer (and for the no-tracer baseline) from the raw runs.

    ``raw["runs"]`` holds one entry per generator slot: ``{"repeat", "slot",
    "c": {"ns_per_call"}, "py": {"ns_per_call"}}``; ``raw["launches"]`` one per
    tracer start; ``raw["kstats"]`` the BPF program deltas per tracer.
    """
    runs = raw.get("runs", [])
    summary: dict[str, Any] = {}
    base_c = [r["c"]["ns_per_call"] for r in runs if r["slot"] == BASELINE and r.get("c")]
    base_py = [r["py"]["ns_per_call"] for r in runs if r["slot"] == BASELINE and r.get("py")]
    summary[BASELINE] = {
        "c_ns": _median(base_c),
        "py_ns": _median(base_py),
        "c_ns_all": base_c,
        "py_ns_all": base_py,
    }

    ratios = {"c": {}, "py": {}}
    for repeat in sorted({r["repeat"] for r in runs}):
        in_repeat = [r for r in runs if r["repeat"] == repeat]
        for gen in ("c", "py"):
            seq = [(r["slot"], (r.get(gen) or {}).get("ns_per_call")) for r in in_repeat]
            for slot, values in paired_ratios(seq).items():
                ratios[gen].setdefault(slot, []).extend(values)

    tracers = raw.get("tracers", {})
    for name in tracers:
        info = tracers[name]
        figures: dict[str, Any] = {"available": bool(info.get("available"))}
        if not info.get("available"):
            figures["reason"] = info.get("reason", "not available")
            summary[name] = figures
            continue
        mine = [r for r in runs if r["slot"] == name]
        launches = [l for l in raw.get("launches", []) if l["tracer"] == name]
        ok_launches = [l for l in launches if not l.get("error")]
        figures["c_ns"] = _median((r.get("c") or {}).get("ns_per_call") for r in mine)
        figures["py_ns"] = _median((r.get("py") or {}).get("ns_per_call") for r in mine)
        figures["c_ratio"] = _median(ratios["c"].get(name, []))
        figures["py_ratio"] = _median(ratios["py"].get(name, []))
        figures["c_ratio_all"] = ratios["c"].get(name, [])
        figures["py_ratio_all"] = ratios["py"].get(name, [])
        startups = [l["startup_ms"] for l in ok_launches if l.get("startup_ms") is not None]
        figures["startup_ms"] = _median(startups)
        figures["startup_ms_all"] = startups
        hwm = [l["vmhwm_kb"] for l in ok_launches if l.get("vmhwm_kb")]
        # kB in /proc is KiB; the table speaks MB, so convert to 10^6 bytes.
        figures["peak_rss_mb"] = max(hwm) * 1024 / 1e6 if hwm else None
        full_load = [l for l in ok_launches if l.get("full_load") and l.get("c_opens")]
        if full_load:
            opens = sum(l["c_opens"] for l in full_load)
            lines = sum(l.get("c_lines", 0) for l in full_load)
            reported = [l.get("reported_lost") for l in full_load]
            figures["opens"] = opens
            figures["lines"] = lines
            figures["missing"] = max(opens - lines, 0)
            figures["reported_lost"] = (
                None if all(r is None for r in reported) else sum(r or 0 for r in reported)
            )
            figures["lost"] = max(figures["missing"], figures["reported_lost"] or 0)
            figures["completeness"] = lines / opens
        kst = raw.get("kstats", {}).get(name)
        if kst and kst.get("programs"):
            figures["kernel_ns"] = _kernel_ns_per_event(kst["programs"], kst.get("opens", 0))
            figures["kernel_runs_per_open"], figures["kernel_ns_per_run"] = _kernel_runs(
                kst["programs"], kst.get("opens", 0)
            )
            opens = kst.get("opens") or 0
            figures["kernel_programs"] = [
                {
                    "name": p.get("name") or f"id {p['id']}",
                    "attach": p.get("attach"),
                    "runs_per_open": p["run_cnt"] / opens if opens else None,
                    "ns_per_run": p["run_time_ns"] / p["run_cnt"] if p.get("run_cnt") else None,
                    "ns_per_open": p["run_time_ns"] / opens if opens else None,
                }
                for p in kst["programs"]
            ]
        errors = [l["error"] for l in launches if l.get("error")]
        if errors:
            figures["errors"] = errors
        summary[name] = figures
    return summary


def verdicts(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Target met/missed for one tracer, with the miss spelled out as a factor."""
    out = []
    for target in TARGETS:
        value = figures.get(target.key)
        row: dict[str, Any] = {"key": target.key, "label": target.label, "limit": target.limit, "value": value}
        if value is None:
            row["status"] = "not measured"
        elif value <= target.limit:
            row["status"] = "met"
        else:
            row["status"] = "missed"
            row["over_by"] = value - target.limit
            if target.limit:
                row["factor"] = value / target.limit
        if target.key == "lost" and figures.get("reported_lost") not in (None, 0) and row["status"] == "met":
            row["status"] = "missed"
        out.append(row)
    return out


# ---------------------------------------------------------------- rendering


def fmt(key: str, value: Optional[float]) -> str:
    """One figure as the table shows it; units follow the issue's table."""
    if value is None:
        return "–"
    if key.endswith("ratio"):
        return f"{value:.2f}"
    if key.endswith("_ns") or key == "kernel_ns":
        return f"{value:,.0f}"
    if key == "startup_ms":
        return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"
    if key == "peak_rss_mb":
        return f"{value:.1f} MB"
    if key in ("lost", "missing", "opens", "lines"):
        return f"{int(value):,}"
    return f"{value}"


def _runs_cell(figures: dict[str, Any]) -> str:
    if figures.get("kernel_runs_per_open") is None:
        return "–"
    return f"{figures['kernel_runs_per_open']:.1f} ({figures['kernel_ns_per_run']:,.0f})"


def _lost_cell(figures: dict[str, Any]) -> str:
    if figures.get("opens") is None:
        return "–"
    cell = f"{figures['missing']:,} of {figures['opens']:,}"
    if figures.get("reported_lost") is not None:
        cell += f" (tool says {figures['reported_lost']:,})"
    return cell


def _limit_text(target: Target) -> str:
    if target.key == "c_ratio":
        return f"≤ {target.limit}"
    if target.key == "kernel_ns":
        return f"≤ {target.limit:,.0f}"
    if target.key == "lost":
        return "0, default settings"
    return f"≤ {target.limit:g} {target.unit}"


def render_markdown(result: dict[str, Any]) -> str:
    """The results table a person reads: one column per tracer, targets at the right."""
    summary = result["summary"]
    machine = result.get("machine", {})
    sizes = result.get("sizes", {})
    names = [n for n in TRACER_ORDER if n in summary] + [
        n for n in summary if n not in TRACER_ORDER and n != BASELINE
    ]
    lines = [
        f"# openat bench, {result.get('date', '?')}",
        "",
        f"- machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
        f"{machine.get('memory_gib', '?')} GiB",
        f"- kernel: {machine.get('kernel', '?')}; Python {machine.get('python', '?')}",
        f"- sizes: {sizes.get('opens', '?'):,} opens (C generator) and {sizes.get('py_opens', '?'):,} "
        f"(Python generator) per run, {sizes.get('repeats', '?')} repeat(s), "
        f"{sizes.get('kstats_opens', '?'):,} opens for in-kernel cost"
        + (" — quick smoke run, not for quoting" if sizes.get("quick") else ""),
        f"- command: `{result.get('command', 'python -m bench')}`, took {result.get('elapsed_s', 0):.0f} s",
        "",
    ]
    for name in names:
        tool = result.get("tools", {}).get(name, {})
        if tool.get("version"):
            lines.append(f"- {TRACER_LABELS.get(name, name)}: {tool['version']}")
    lines.append("")

    base = summary.get(BASELINE, {})
    header = "| figure | no tracer | " + " | ".join(TRACER_LABELS.get(n, n) for n in names) + " | target for openat | met by openat |"
    lines += [header, "|" + "---|" * (len(names) + 4)]
    openat_verdicts = {}
    if summary.get("openat", {}).get("available"):
        openat_verdicts = {v["key"]: v for v in verdicts(summary["openat"])}

    def cells(key: str, render=None) -> list[str]:
        out = []
        for n in names:
            fig = summary[n]
            if not fig.get("available"):
                out.append("not available")
            else:
                out.append(render(fig) if render else fmt(key, fig.get(key)))
        return out

    def verdict_cell(key: str) -> str:
        if not summary.get("openat", {}).get("available"):
            return "not available"
        v = openat_verdicts.get(key)
        if v is None or v["status"] == "not measured":
            return "not measured"
        if v["status"] == "met":
            return "met"
        if v.get("factor"):
            return f"**missed** ({v['factor']:.2f}× the target)"
        return "**missed**"

    per_target = {t.key: t for t in TARGETS}
    rows = [
        ("ns per open+close, C generator", fmt("c_ns", base.get("c_ns")), cells("c_ns"), "", ""),
        ("per-open time ÷ no tracer (C)", "1.00", cells("c_ratio"), _limit_text(per_target["c_ratio"]), verdict_cell("c_ratio")),
        ("ns per open+close, Python generator", fmt("py_ns", base.get("py_ns")), cells("py_ns"), "", ""),
        ("per-open time ÷ no tracer (Python)", "1.00", cells("py_ratio"), "", ""),
        ("in-kernel ns per event (BPF run time ÷ opens)", "–", cells("kernel_ns"), _limit_text(per_target["kernel_ns"]), verdict_cell("kernel_ns")),
        ("BPF program runs per open (ns per run)", "–", cells("kernel_runs", _runs_cell), "", ""),
        ("start-up (launch → first marker line)", "–", cells("startup_ms"), _limit_text(per_target["startup_ms"]), verdict_cell("startup_ms")),
        ("peak RSS (VmHWM)", _interpreter_cell(result), cells("peak_rss_mb"), _limit_text(per_target["peak_rss_mb"]), verdict_cell("peak_rss_mb")),
        ("lines missing at full load", "–", cells("lost", _lost_cell), _limit_text(per_target["lost"]), verdict_cell("lost")),
    ]
    for label, base_cell, tracer_cells, limit, verdict in rows:
        lines.append(f"| {label} | {base_cell} | " + " | ".join(tracer_cells) + f" | {limit} | {verdict} |")

    lines += ["", "Reference figures from issue 6 (bpftrace 0.17 / libbpf-tools 0.26, same kind of machine):", ""]
    lines += ["| figure | bpftrace 0.17 | libbpf-tools 0.26 | target for openat |", "|---|---|---|---|"]
    for t in TARGETS:
        lines.append(f"| {t.label} | {t.ref_bpftrace} | {t.ref_opensnoop} | {_limit_text(t)} |")

    misses = [v for v in openat_verdicts.values() if v["status"] == "missed"]
    if misses:
        lines += ["", "## Where openat misses a target", ""]
        for v in misses:
            target = per_target[v["key"]]
            if v["key"] == "lost":
                lines.append(f"- {v['label']}: {_lost_cell(summary['openat'])}, target 0")
            else:
                lines.append(
                    f"- {v['label']}: {fmt(v['key'], v['value'])} against {_limit_text(target)}"
                    + (f" ({v['factor']:.2f}× the target)" if v.get("factor") else "")
                )

    for name in names:
        fig = summary[name]
        if not fig.get("available"):
            lines.append(f"\n{TRACER_LABELS.get(name, name)} not available: {fig.get('reason', '')}")
        for err in fig.get("errors", []):
            lines.append(f"\n{TRACER_LABELS.get(name, name)} error: {err}")

    program_lines = []
    for name in names:
        progs = summary[name].get("kernel_programs") or []
        parts = []
        for p in progs:
            if p["runs_per_open"] is None or p["ns_per_run"] is None:
                continue
            where = f" at {p['attach']}" if p.get("attach") else ""
            parts.append(
                f"{p['name']}{where}: {p['runs_per_open']:.1f} runs per open × {p['ns_per_run']:,.0f} ns"
                f" = {p['ns_per_open']:,.0f} ns"
            )
        if parts:
            program_lines.append(f"- {TRACER_LABELS.get(name, name)}: " + "; ".join(parts))
    if program_lines:
        lines += ["", "## BPF programs (in-kernel phase, per open made by the generator)", ""] + program_lines

    extras = []
    if result.get("asm"):
        extras.append("- assembler (bench/asm_bench.py): " + _dict_text(result["asm"]))
    else:
        extras.append(f"- assembler: {result.get('asm_note', 'not run')}")
    if result.get("decode"):
        extras.append("- consumer decode rate (bench/decode_bench.py): " + _dict_text(result["decode"]))
    else:
        extras.append(f"- consumer decode rate: {result.get('decode_note', 'not run')}")
    lines += ["", "## Without the kernel", ""] + extras

    if result.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    if result.get("chart"):
        lines += ["", f"![per-open time ÷ no tracer]({result['chart']})"]
    return "\n".join(lines) + "\n"


def _dict_text(values: dict[str, Any]) -> str:
    parts = []
    for key, value in values.items():
        if isinstance(value, float):
            value = f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        parts.append(f"{key} = {value}")
    return ", ".join(parts)


def draw_chart(result: dict[str, Any], path: str) -> None:
    """Bar chart of the per-open ratios; imported lazily because matplotlib is a bench-only extra."""
    import matplotlib

    matplotlib.use("Agg")  # no display on CI or a server
    import matplotlib.pyplot as plt

    summary = result["summary"]
    names = [n for n in TRACER_ORDER if n in summary]
    c_values = [summary[n].get("c_ratio") or 0 for n in names]
    py_values = [summary[n].get("py_ratio") or 0 for n in names]
    # A tracer that could not run keeps its place on the axis, labelled, so the
    # chart never silently looks like a two-way comparison.
    labels = [
        TRACER_LABELS.get(n, n) + ("" if summary[n].get("available") else "\n(not available)") for n in names
    ]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    x = range(len(names))
    width = 0.38
    bars_c = ax.bar([i - width / 2 for i in x], c_values, width, label="C generator")
    bars_py = ax.bar([i + width / 2 for i in x], py_values, width, label="Python generator")
    for bars, values in ((bars_c, c_values), (bars_py, py_values)):
        ax.bar_label(bars, labels=[f"{v:.2f}" if v else "" for v in values], fontsize=8)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.axhline(1.3, color="tab:red", linestyle="--", linewidth=1, label="openat target ≤ 1.3")
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("per-open time ÷ no tracer")
    machine = result.get("machine", {})
    ax.set_title(f"openat() overhead, {result.get('date', '')}, kernel {machine.get('kernel', '?')}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
