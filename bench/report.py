"""Turning raw bench measurements into figures, target verdicts, markdown and a chart.

Everything here is pure (no kernel, no subprocesses) so tests/bench can check the
arithmetic and the table without root or a tracer.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

BASELINE = "baseline"
TRACER_ORDER = ("bpftrace", "opensnoop", "openat")
TRACER_LABELS = {
    "bpftrace": "bpftrace",
    "opensnoop": "opensnoop (libbpf-tools)",
    "openat": "openat",
}


@dataclass(frozen=True)
class Target:
    """One row of issue 16's table: a figure of openat's as a ratio to something measured in the same run.

    ``limit`` None: the figure is reported, not judged.
    """

    key: str
    label: str
    against: str
    limit: Optional[float]
    unit: str = "×"


# Issue 16: absolute times do not carry from one machine to the next, so every
# target is a ratio (or a difference) against a baseline of the same run.
TARGETS: tuple[Target, ...] = (
    Target("c_ratio", "per-open time ÷ no tracer (C generator)", "no tracer", 1.20),
    Target("floor_ratio", "in-kernel ns per open ÷ the floor probe", "bench/floor.py on the same attach point", 1.5),
    Target("opensnoop_kernel_ratio", "in-kernel ns per open ÷ opensnoop's", "libbpf-tools opensnoop", None),
    Target("tax_ns", "tax on other syscalls: ns per getppid() with the tracer − without", "opensnoop's tax", None, "ns"),
    Target("startup_ratio", "start-up − bare interpreter's, ÷ opensnoop's start-up", "opensnoop", 1.0),
    Target("rss_excess_mb", "peak RSS − bare interpreter's", "python -c pass", 4.0, "MB"),
    Target("lost", "lines missing at full load, default settings", "the generator's count", 0, "lines"),
    Target("asm_ms", "DSL build + encode, 4,096 instructions", "–", None, "ms"),
    Target("elf_ratio", "ELF load (parse + CO-RE + load) ÷ bpftool prog loadall", "bpftool", 2.0),
    Target("vm_ips", "openat.vm instructions per second", "–", None, "/s"),
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


def _neighbouring_baselines(sequence: Sequence[tuple[str, Optional[float]]], index: int) -> list[float]:
    """The nearest successful baseline on each side of run ``index`` (a failed baseline is skipped)."""
    neighbours = []
    for step in (-1, 1):
        j = index + step
        while 0 <= j < len(sequence):
            other_slot, other_value = sequence[j]
            if other_slot == BASELINE and other_value is not None:
                neighbours.append(other_value)
                break
            j += step
    return neighbours


def _paired(sequence: Sequence[tuple[str, Optional[float]]],
            against: Callable[[float, float], float]) -> dict[str, list[float]]:
    """``against(run, mean of its neighbouring baselines)`` for every tracer run, by tracer."""
    out: dict[str, list[float]] = {}
    for index, (slot, value) in enumerate(sequence):
        if slot == BASELINE or value is None:
            continue
        neighbours = _neighbouring_baselines(sequence, index)
        if neighbours:
            out.setdefault(slot, []).append(against(value, statistics.fmean(neighbours)))
    return out


def paired_ratios(sequence: Sequence[tuple[str, Optional[float]]]) -> dict[str, list[float]]:
    """Ratio of each tracer run to the no-tracer runs right next to it.

    ``sequence`` is one repeat's runs in the order they happened, e.g.
    baseline, bpftrace, baseline, openat, baseline. Dividing by the mean of the
    neighbouring baselines (rather than one global baseline) is what makes slow
    drift of the machine (thermal, other tenants) cancel.
    """
    return _paired(sequence, lambda run, baseline: run / baseline)


def paired_differences(sequence: Sequence[tuple[str, Optional[float]]]) -> dict[str, list[float]]:
    """Like :func:`paired_ratios`, but each tracer run less the mean of its neighbouring baselines.

    The tax on other syscalls is a few nanoseconds on a ~100-ns syscall, so it
    reads better as the difference than as a ratio near 1.
    """
    return _paired(sequence, lambda run, baseline: run - baseline)


def _median(values: Iterable[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _ns_plain(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:,.1f}"


def _startup_cell(result: dict[str, Any]) -> str:
    ms = result.get("interpreter_startup_ms")
    return "–" if ms is None else f"{ms:.0f} ms (python -c pass)"


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

    base_getppid = [r["getppid"]["ns_per_call"] for r in runs if r["slot"] == BASELINE and r.get("getppid")]
    summary[BASELINE]["getppid_ns"] = _median(base_getppid)
    ratios: dict[str, dict[str, list[float]]] = {"c": {}, "py": {}}
    taxes: dict[str, list[float]] = {}
    for repeat in sorted({r["repeat"] for r in runs}):
        in_repeat = [r for r in runs if r["repeat"] == repeat]
        for gen in ("c", "py"):
            seq = [(r["slot"], (r.get(gen) or {}).get("ns_per_call")) for r in in_repeat]
            for slot, values in paired_ratios(seq).items():
                ratios[gen].setdefault(slot, []).extend(values)
        seq = [(r["slot"], (r.get("getppid") or {}).get("ns_per_call")) for r in in_repeat]
        for slot, values in paired_differences(seq).items():
            taxes.setdefault(slot, []).extend(values)

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
        figures["getppid_ns"] = _median((r.get("getppid") or {}).get("ns_per_call") for r in mine)
        figures["tax_ns"] = _median(taxes.get(name, []))
        figures["tax_ns_all"] = taxes.get(name, [])
        modes = [l.get("mode") for l in ok_launches if l.get("mode")]
        figures["mode"] = modes[0] if modes else None
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


def _get(summary: dict[str, Any], name: str, key: str) -> Optional[float]:
    figures = summary.get(name) or {}
    return figures.get(key) if figures.get("available") else None


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def openat_figures(result: dict[str, Any]) -> dict[str, Any]:
    """Issue 16's figures for openat's default settings, with the peers' matching figures.

    Returns ``{key: {"value", "peers": {label: text}}}``; the floor is the one
    on the attach point openat's auto chose in this run.
    """
    summary = result["summary"]
    o = summary.get("openat") or {}
    mode = o.get("mode")
    floor = summary.get(f"floor:{mode}") if mode else None
    floor_ns = (floor or {}).get("kernel_ns")
    snoop_ns = _get(summary, "opensnoop", "kernel_ns")
    interp_ms = result.get("interpreter_startup_ms")
    interp_mb = result["interpreter_vmhwm_kb"] * 1024 / 1e6 if result.get("interpreter_vmhwm_kb") else None
    startup_excess = o.get("startup_ms") - interp_ms if o.get("startup_ms") is not None and interp_ms else None
    snoop_tax = _get(summary, "opensnoop", "tax_ns")
    elf = result.get("elf") or {}
    out: dict[str, Any] = {
        "c_ratio": {"value": o.get("c_ratio"), "peers": {n: fmt("c_ratio", _get(summary, n, "c_ratio")) for n in ("bpftrace", "opensnoop")}},
        "floor_ratio": {"value": _ratio(o.get("kernel_ns"), floor_ns),
                        "peers": {f"floor ({mode})": fmt("kernel_ns", floor_ns) + " ns", "openat": fmt("kernel_ns", o.get("kernel_ns")) + " ns"}},
        "opensnoop_kernel_ratio": {"value": _ratio(o.get("kernel_ns"), snoop_ns),
                                   "peers": {"opensnoop": fmt("kernel_ns", snoop_ns) + " ns", "bpftrace": fmt("kernel_ns", _get(summary, "bpftrace", "kernel_ns")) + " ns"}},
        "tax_ns": {"value": o.get("tax_ns"), "limit": snoop_tax,
                   "peers": {n: _ns(_get(summary, n, "tax_ns")) for n in ("bpftrace", "opensnoop")}},
        "startup_ratio": {"value": _ratio(startup_excess, _get(summary, "opensnoop", "startup_ms")),
                          "peers": {"openat": fmt("startup_ms", o.get("startup_ms")), "python -c pass": fmt("startup_ms", interp_ms),
                                    "opensnoop": fmt("startup_ms", _get(summary, "opensnoop", "startup_ms"))}},
        "rss_excess_mb": {"value": o.get("peak_rss_mb") - interp_mb if o.get("peak_rss_mb") and interp_mb else None,
                          "peers": {"openat": fmt("peak_rss_mb", o.get("peak_rss_mb")), "python -c pass": fmt("peak_rss_mb", interp_mb),
                                    "opensnoop": fmt("peak_rss_mb", _get(summary, "opensnoop", "peak_rss_mb"))}},
        "lost": {"value": o.get("lost"), "peers": {n: fmt("lost", _get(summary, n, "lost")) for n in ("bpftrace", "opensnoop")},
                 "reported_lost": o.get("reported_lost")},
        "asm_ms": {"value": (result.get("asm") or {}).get("dsl_build_encode_ms_median"), "peers": {}},
        "elf_ratio": {"value": elf.get("ratio"),
                      "peers": {"openat": f"{elf['openat_process_ms']:.0f} ms", "bpftool": f"{elf['bpftool_ms']:.1f} ms"} if elf else {}},
        "vm_ips": {"value": (result.get("vm") or {}).get("vm_instructions_per_s"), "peers": {}},
    }
    return out


def _ns(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:+.1f} ns"


def verdicts(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 16's targets for openat, met/missed/reported, with a miss spelled out as a factor."""
    figures = openat_figures(result)
    out = []
    for target in TARGETS:
        figure = figures[target.key]
        value = figure["value"]
        limit = figure.get("limit", target.limit)
        row: dict[str, Any] = {"key": target.key, "label": target.label, "limit": limit, "value": value,
                               "peers": figure["peers"], "against": target.against}
        if value is None:
            row["status"] = "not measured"
        elif target.key == "tax_ns" and limit is None:
            row["status"] = "not measured"  # no opensnoop in this run: nothing to be held to
        elif limit is None:
            row["status"] = "reported"
        elif value <= limit:
            row["status"] = "met"
        else:
            row["status"] = "missed"
            row["over_by"] = value - limit
            if limit > 0:
                row["factor"] = value / limit
        if target.key == "lost" and figure.get("reported_lost") not in (None, 0) and row["status"] == "met":
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


def _limit_text(target: Target, limit: Optional[float]) -> str:
    if target.key == "tax_ns":
        return "≤ opensnoop's" + (f" ({limit:+.1f} ns)" if limit is not None else "")
    if limit is None:
        return "report"
    if target.key == "lost":
        return "0"
    if target.unit == "MB":
        return f"≤ {limit:g} MB"
    return f"≤ {limit:.2f}"


def _value_text(target: Target, value: Optional[float]) -> str:
    if value is None:
        return "–"
    if target.key == "tax_ns":
        return f"{value:+.1f} ns"
    if target.unit == "MB":
        return f"{value:.1f} MB"
    if target.key == "lost":
        return f"{int(value):,}"
    if target.key == "asm_ms":
        return f"{value:.1f} ms"
    if target.key == "vm_ips":
        return f"{value / 1e6:.1f} M"
    return f"{value:.2f}"


def _status_text(row: dict[str, Any]) -> str:
    if row["status"] == "missed":
        return "**missed**" + (f" ({row['factor']:.2f}× the target)" if row.get("factor") else "")
    return row["status"]


def mode_names(summary: dict[str, Any]) -> list[str]:
    return [n for n in summary if n.startswith("openat:")]


def render_markdown(result: dict[str, Any]) -> str:
    """The results tables a person reads: issue 16's targets, the raw figures per tracer, per attach mode."""
    summary = result["summary"]
    machine = result.get("machine", {})
    sizes = result.get("sizes", {})
    names = [n for n in TRACER_ORDER if n in summary]
    lines = [
        f"# openat bench, {result.get('date', '?')}",
        "",
        f"- machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
        f"{machine.get('memory_gib', '?')} GiB",
        f"- kernel: {machine.get('kernel', '?')}; Python {machine.get('python', '?')}",
        f"- sizes: {sizes.get('opens', '?'):,} opens (C generator) and {sizes.get('py_opens', '?'):,} "
        f"(Python generator) per run, {sizes.get('getppid', 0) or 0:,} getppid() calls, {sizes.get('repeats', '?')} repeat(s), "
        f"{sizes.get('kstats_opens', '?'):,} opens for in-kernel cost"
        + (" — quick smoke run, not for quoting" if sizes.get("quick") else ""),
        f"- command: `{result.get('command', 'python -m bench')}`, took {result.get('elapsed_s', 0):.0f} s",
        "",
    ]
    for name in names:
        tool = result.get("tools", {}).get(name, {})
        if tool.get("version"):
            lines.append(f"- {TRACER_LABELS.get(name, name)}: {tool['version']}")
    openat_ok = summary.get("openat", {}).get("available")
    if openat_ok:
        lines.append(f"- openat's auto chose: {summary['openat'].get('mode') or '?'}")
    lines.append("")

    by_key = {t.key: t for t in TARGETS}
    openat_verdicts = {v["key"]: v for v in verdicts(result)} if openat_ok else {}
    if openat_verdicts:
        lines += ["## Issue 16's targets (openat, default settings)", "",
                  "| figure | against, same run | openat | target | met? |", "|---|---|---|---|---|"]
        for key, v in openat_verdicts.items():
            target = by_key[key]
            peers = "; ".join(f"{k} {val}" for k, val in v["peers"].items())
            lines.append(f"| {target.label} | {peers or target.against} | {_value_text(target, v['value'])} | "
                         f"{_limit_text(target, v['limit'])} | {_status_text(v)} |")
        lines.append("")

    base = summary.get(BASELINE, {})
    lines += ["## Figures per tracer", ""]
    header = "| figure | no tracer | " + " | ".join(TRACER_LABELS.get(n, n) for n in names) + " |"
    lines += [header, "|" + "---|" * (len(names) + 2)]

    def cells(key: str, render=None) -> list[str]:
        out = []
        for n in names:
            fig = summary[n]
            if not fig.get("available"):
                out.append("not available")
            else:
                out.append(render(fig) if render else fmt(key, fig.get(key)))
        return out

    rows = [
        ("ns per open+close, C generator", fmt("c_ns", base.get("c_ns")), cells("c_ns")),
        ("per-open time ÷ no tracer (C)", "1.00", cells("c_ratio")),
        ("ns per open+close, Python generator", fmt("py_ns", base.get("py_ns")), cells("py_ns")),
        ("per-open time ÷ no tracer (Python)", "1.00", cells("py_ratio")),
        ("ns per getppid()", _ns_plain(base.get("getppid_ns")), cells("getppid_ns", lambda f: _ns_plain(f.get("getppid_ns")))),
        ("tax on getppid() (− no tracer)", "–", cells("tax_ns", lambda f: _ns(f.get("tax_ns")))),
        ("in-kernel ns per event (BPF run time ÷ opens)", "–", cells("kernel_ns")),
        ("BPF program runs per open (ns per run)", "–", cells("kernel_runs", _runs_cell)),
        ("start-up (launch → first marker line)", _startup_cell(result), cells("startup_ms")),
        ("peak RSS (VmHWM)", _interpreter_cell(result), cells("peak_rss_mb")),
        ("lines missing at full load", "–", cells("lost", _lost_cell)),
    ]
    for label, base_cell, tracer_cells in rows:
        lines.append(f"| {label} | {base_cell} | " + " | ".join(tracer_cells) + " |")

    modes = mode_names(summary)
    if modes:
        lines += ["", "## openat per attach mode", "",
                  "| mode | per-open ÷ no tracer (C) | getppid() tax | in-kernel ns per open | runs per open (ns per run) "
                  "| floor ns per open | ÷ floor | lines missing |", "|---|---|---|---|---|---|---|---|"]
        for name in modes:
            fig = summary[name]
            mode = name.split(":", 1)[1]
            if not fig.get("available"):
                lines.append(f"| {mode} | not available: {fig.get('reason', '')} | | | | | | |")
                continue
            floor_ns = (summary.get(f"floor:{mode}") or {}).get("kernel_ns")
            lines.append(
                f"| {mode} | {fmt('c_ratio', fig.get('c_ratio'))} | {_ns(fig.get('tax_ns'))} | {fmt('kernel_ns', fig.get('kernel_ns'))} "
                f"| {_runs_cell(fig)} | {fmt('kernel_ns', floor_ns)} | {fmt('floor_ratio', _ratio(fig.get('kernel_ns'), floor_ns))} "
                f"| {_lost_cell(fig)} |"
            )

    misses = [v for v in openat_verdicts.values() if v["status"] == "missed"]
    if misses:
        lines += ["", "## Where openat misses a target", ""]
        for v in misses:
            target = by_key[v["key"]]
            lines.append(f"- {v['label']}: {_value_text(target, v['value'])} against {_limit_text(target, v['limit'])}"
                         + (f" ({v['factor']:.2f}× the target)" if v.get("factor") else ""))

    for name in names:
        fig = summary[name]
        if not fig.get("available"):
            lines.append(f"\n{TRACER_LABELS.get(name, name)} not available: {fig.get('reason', '')}")
        for err in fig.get("errors", []):
            lines.append(f"\n{TRACER_LABELS.get(name, name)} error: {err}")

    program_lines = []
    for name in names + modes + [n for n in summary if n.startswith("floor:")]:
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
    if result.get("elf"):
        extras.append("- ELF load against bpftool (bench/elf_bench.py): " + _dict_text(result["elf"]))
    elif result.get("elf_note"):
        extras.append(f"- ELF load: {result['elf_note']}")
    if result.get("vm"):
        extras.append("- openat.vm (bench/vm_bench.py): " + _dict_text(result["vm"]))
    elif result.get("vm_note"):
        extras.append(f"- openat.vm: {result['vm_note']}")
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
    names = [n for n in TRACER_ORDER if n in summary] + [n for n in mode_names(summary) if summary[n].get("available")]
    c_values = [summary[n].get("c_ratio") or 0 for n in names]
    py_values = [summary[n].get("py_ratio") or 0 for n in names]
    # A tracer that could not run keeps its place on the axis, labelled, so the
    # chart never silently looks like a two-way comparison.
    labels = [
        TRACER_LABELS.get(n, n) + ("" if summary[n].get("available") else "\n(not available)") for n in names
    ]
    fig, ax = plt.subplots(figsize=(max(7, 1.4 * len(names)), 4), dpi=110)
    x = range(len(names))
    width = 0.38
    bars_c = ax.bar([i - width / 2 for i in x], c_values, width, label="C generator")
    bars_py = ax.bar([i + width / 2 for i in x], py_values, width, label="Python generator")
    for bars, values in ((bars_c, c_values), (bars_py, py_values)):
        ax.bar_label(bars, labels=[f"{v:.2f}" if v else "" for v in values], fontsize=8)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    limit = next(t.limit for t in TARGETS if t.key == "c_ratio")
    ax.axhline(limit, color="tab:red", linestyle="--", linewidth=1, label=f"openat target ≤ {limit:.2f}")
    ax.set_xticks(list(x), [label.replace("openat:", "openat\n--attach ") for label in labels], fontsize=8)
    ax.set_ylabel("per-open time ÷ no tracer")
    machine = result.get("machine", {})
    ax.set_title(f"openat() overhead, {result.get('date', '')}, kernel {machine.get('kernel', '?')}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
