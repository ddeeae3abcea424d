"""The bench harness's own arithmetic and rendering: no kernel, no tracer, no timing."""

from __future__ import annotations

import pytest

from bench import report
from bench.kstats import delta, subtract_background
from bench.tracers import LineCounter


def run(repeat: int, slot: str, c: float, py: float) -> dict:
    return {"repeat": repeat, "slot": slot, "c": {"ns_per_call": c, "calls": 10}, "py": {"ns_per_call": py, "calls": 5}}


def launch(tracer: str, **extra) -> dict:
    base = {"tracer": tracer, "repeat": 0, "full_load": True, "startup_ms": 50.0, "vmhwm_kb": 10_000,
            "c_opens": 10, "c_lines": 10, "reported_lost": None}
    base.update(extra)
    return base


def test_ratio_uses_both_neighbouring_baselines() -> None:
    seq = [("baseline", 100.0), ("a", 300.0), ("baseline", 200.0), ("b", 600.0), ("baseline", 200.0)]
    assert report.paired_ratios(seq) == {"a": [2.0], "b": [3.0]}


def test_ratio_with_one_neighbour_and_missing_values() -> None:
    seq = [("a", 50.0), ("baseline", 25.0), ("b", None), ("baseline", None), ("c", 10.0)]
    # a and c each have one usable baseline; b failed and gives no ratio
    assert report.paired_ratios(seq) == {"a": [2.0], "c": [0.4]}


def test_ratio_skips_adjacent_tracers_to_find_a_baseline() -> None:
    seq = [("baseline", 10.0), ("a", 20.0), ("b", 40.0), ("baseline", 10.0)]
    assert report.paired_ratios(seq) == {"a": [2.0], "b": [4.0]}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Lost 12 events on CPU #1!\nLost 3 events on CPU #0!\n", 15),
        ("openat: lost=7 events (ring buffer full)\n", 7),
        ("4 events lost\n", 4),
        ("openat: 12 events lost (ring buffer full); try a larger --ring-size\n", 12),
        ("Attaching 1 probe...\n", None),
        ("lost 0 events\n", 0),
    ],
)
def test_parse_lost(text: str, expected) -> None:
    assert report.parse_lost(text) == expected


def test_parse_lost_running_totals_take_the_largest() -> None:
    text = (
        "openat: tracing opens via tp_btf (sys_enter, sys_exit)\n"
        "openat: 6167 events lost (ring buffer full), 17363 in all; try a larger --ring-size\n"
        "openat: 17363 events lost; try a larger --ring-size\n"
    )
    assert report.parse_lost(text, cumulative=True) == 17363
    assert report.parse_lost("openat: tracing opens via tp_btf (sys_enter, sys_exit)\n", cumulative=True) is None


def test_kernel_ns_sums_programs_over_generator_opens() -> None:
    programs = [
        {"id": 1, "run_time_ns": 3000, "run_cnt": 10},  # sys_enter
        {"id": 2, "run_time_ns": 7000, "run_cnt": 10},  # sys_exit
        {"id": 3, "run_time_ns": 0, "run_cnt": 0},  # loaded but never hit
    ]
    assert report._kernel_ns_per_event(programs, 10) == 1000.0
    assert report._kernel_runs(programs, 10) == (2.0, 500.0)
    assert report._kernel_ns_per_event([{"id": 1, "run_time_ns": 0, "run_cnt": 0}], 10) is None
    assert report._kernel_ns_per_event(programs, 0) is None


def test_kstats_delta_subtracts_per_program() -> None:
    before = {1: {"id": 1, "run_time_ns": 100, "run_cnt": 1}}
    after = {1: {"id": 1, "run_time_ns": 350, "run_cnt": 6}, 2: {"id": 2, "run_time_ns": 40, "run_cnt": 2}}
    assert delta(before, after) == [
        {"id": 1, "run_time_ns": 250, "run_cnt": 5},
        {"id": 2, "run_time_ns": 40, "run_cnt": 2},
    ]


def test_background_is_scaled_to_the_window_and_floored() -> None:
    measured = [{"id": 1, "run_time_ns": 10_000, "run_cnt": 30}, {"id": 2, "run_time_ns": 50, "run_cnt": 1}]
    background = [{"id": 1, "run_time_ns": 1_000, "run_cnt": 5}, {"id": 2, "run_time_ns": 100, "run_cnt": 4}]
    assert subtract_background(measured, background, 2.0) == [
        {"id": 1, "run_time_ns": 8_000, "run_cnt": 20},
        {"id": 2, "run_time_ns": 0, "run_cnt": 0},
    ]


def sample_result(openat_available: bool = True) -> dict:
    runs = [
        run(0, "baseline", 2000, 3000),
        run(0, "bpftrace", 10000, 9000),
        run(0, "baseline", 2000, 3000),
        run(0, "openat", 2400, 3300),
        run(0, "baseline", 2000, 3000),
    ]
    if not openat_available:
        runs = runs[:3]
    launches = [
        launch("bpftrace", vmhwm_kb=100_000, startup_ms=120.0),
        launch("openat", vmhwm_kb=30_000, startup_ms=80.0, c_lines=9, reported_lost=1),
    ]
    result = {
        "date": "2026-01-01 00:00 UTC",
        "machine": {"cpu": "Test CPU", "cores": 2, "memory_gib": 24, "kernel": "6.18.0", "python": "3.11"},
        "sizes": {"opens": 10, "py_opens": 5, "repeats": 1, "kstats_opens": 10, "quick": False},
        "tracers": {
            "bpftrace": {"available": True},
            "openat": {"available": openat_available, "reason": "no openat/__main__.py"},
        },
        "runs": runs,
        "launches": launches if openat_available else launches[:1],
        "kstats": {
            "bpftrace": {"programs": [{"id": 1, "run_time_ns": 74_400, "run_cnt": 10}], "opens": 10},
            "openat": {"programs": [{"id": 2, "run_time_ns": 3_000, "run_cnt": 40}], "opens": 10},
        },
    }
    result["summary"] = report.summarize(result)
    return result


def test_summary_figures() -> None:
    summary = sample_result()["summary"]
    assert summary["baseline"]["c_ns"] == 2000
    assert summary["bpftrace"]["c_ratio"] == 5.0
    assert summary["openat"]["c_ratio"] == pytest.approx(1.2)
    assert summary["openat"]["py_ratio"] == pytest.approx(1.1)
    assert summary["bpftrace"]["kernel_ns"] == 7440
    assert summary["openat"]["kernel_runs_per_open"] == 4.0
    assert summary["openat"]["kernel_ns_per_run"] == 75.0
    assert summary["openat"]["peak_rss_mb"] == pytest.approx(30.72)
    assert summary["openat"]["missing"] == 1
    assert summary["openat"]["lost"] == 1
    assert summary["bpftrace"]["reported_lost"] is None


def with_issue16_figures(result: dict) -> dict:
    """sample_result plus what issue 16's targets are measured against: opensnoop, the floor, the bare interpreter."""
    result["tracers"]["opensnoop"] = {"available": True}
    result["tracers"]["floor:tp_btf"] = {"available": True}
    result["runs"] = [
        run(0, "baseline", 2000, 3000) | {"getppid": {"ns_per_call": 100.0}},
        run(0, "opensnoop", 10000, 9000) | {"getppid": {"ns_per_call": 110.0}},
        run(0, "baseline", 2000, 3000) | {"getppid": {"ns_per_call": 100.0}},
        run(0, "openat", 2400, 3300) | {"getppid": {"ns_per_call": 104.0}},
        run(0, "baseline", 2000, 3000) | {"getppid": {"ns_per_call": 102.0}},
    ]
    result["launches"].append(launch("opensnoop", vmhwm_kb=13_000, startup_ms=20.0))
    result["launches"][1]["mode"] = "tp_btf"
    result["kstats"]["opensnoop"] = {"programs": [{"id": 3, "run_time_ns": 60_000, "run_cnt": 20}], "opens": 10}
    result["kstats"]["floor:tp_btf"] = {"programs": [{"id": 4, "run_time_ns": 2_500, "run_cnt": 20}], "opens": 10}
    result["interpreter_startup_ms"] = 50.0
    result["interpreter_vmhwm_kb"] = 27_000
    result["elf"] = {"ratio": 3.0, "openat_process_ms": 60.0, "bpftool_ms": 20.0}
    result["summary"] = report.summarize(result)
    return result


def test_tax_is_the_difference_to_the_neighbouring_baselines() -> None:
    summary = with_issue16_figures(sample_result())["summary"]
    assert summary["opensnoop"]["tax_ns"] == pytest.approx(10.0)
    assert summary["openat"]["tax_ns"] == pytest.approx(3.0)
    assert summary["baseline"]["getppid_ns"] == 100.0


def test_verdicts_met_and_missed() -> None:
    by_key = {v["key"]: v for v in report.verdicts(with_issue16_figures(sample_result()))}
    assert by_key["c_ratio"]["status"] == "met"  # 1.2 ≤ 1.20
    assert by_key["floor_ratio"]["value"] == pytest.approx(300 / 250)
    assert by_key["floor_ratio"]["status"] == "met"
    assert by_key["opensnoop_kernel_ratio"]["status"] == "reported"
    assert by_key["tax_ns"]["status"] == "met"  # 3 ns ≤ opensnoop's 10
    assert by_key["startup_ratio"]["value"] == pytest.approx((80 - 50) / 20)
    assert by_key["startup_ratio"]["status"] == "missed"
    assert by_key["rss_excess_mb"]["value"] == pytest.approx((30_000 - 27_000) * 1024 / 1e6)
    assert by_key["rss_excess_mb"]["status"] == "met"
    assert by_key["lost"]["status"] == "missed"
    assert by_key["elf_ratio"]["status"] == "missed"
    assert by_key["elf_ratio"]["factor"] == pytest.approx(1.5)
    assert by_key["asm_ms"]["status"] == "not measured"


def test_tax_without_opensnoop_is_not_judged() -> None:
    by_key = {v["key"]: v for v in report.verdicts(sample_result())}
    assert by_key["tax_ns"]["status"] == "not measured"
    assert by_key["floor_ratio"]["status"] == "not measured"


def test_markdown_lists_every_tracer_and_the_misses() -> None:
    text = report.render_markdown(with_issue16_figures(sample_result()))
    assert "| per-open time ÷ no tracer (C) | 1.00 | – | 5.00 | 1.20 |" in text
    assert "| per-open time ÷ no tracer (C generator) | bpftrace –; opensnoop 5.00 | 1.20 | ≤ 1.20 | met |" in text
    assert "## Where openat misses a target" in text
    assert "start-up − bare interpreter's, ÷ opensnoop's start-up: 1.50 against ≤ 1.00 (1.50× the target)" in text
    assert "1 of 10" in text


def test_markdown_when_openat_is_not_available() -> None:
    result = sample_result(openat_available=False)
    text = report.render_markdown(result)
    assert "not available" in text
    assert "openat not available: no openat/__main__.py" in text
    assert "Where openat misses" not in text
    assert result["summary"]["bpftrace"]["c_ratio"] == 5.0


def test_line_counter_counts_needles_split_across_reads(tmp_path) -> None:
    path = tmp_path / "out"
    path.write_bytes(b"1 cat /tmp/x/t1\n2 cat /tm")
    counter = LineCounter(path)
    counter.watch(b"/tmp/x/t1")
    counter.poll()
    with open(path, "ab") as f:
        f.write(b"p/x/t1\nLost 3 events\n3 cat /tmp/x/t1")
    counter.poll()
    assert counter.counts[b"/tmp/x/t1"] == 2  # the unterminated last line waits for its newline
    assert counter.lost_lines == ["Lost 3 events"]
    counter.close()


def test_markdown_shows_the_bare_interpreter_under_peak_rss() -> None:
    result = sample_result()
    row = lambda text: next(line for line in text.splitlines() if line.startswith("| peak RSS (VmHWM)"))
    assert row(report.render_markdown(result)).split(" | ")[1] == "–"
    result["interpreter_vmhwm_kb"] = 13_184
    assert row(report.render_markdown(result)).split(" | ")[1] == "13.5 MB (python -c pass)"
