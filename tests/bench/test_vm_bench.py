"""bench/vm_bench.py runs and reports every figure (a smoke run: no timing is checked)."""

from __future__ import annotations

import os

from bench import vm_bench


def test_a_small_run_reports_every_figure():
    figures = vm_bench.run(runs=1, repeat=2)
    assert figures["instructions_per_run"] == 3 + 10 * vm_bench.ROUNDS + 1
    assert figures["learner_trace_steps"] == 13
    for name in ("vm_instructions_per_s", "trace_us_per_step", "run_us_per_step", "compile_us_per_instruction"):
        assert figures[name] > 0, name
    if os.geteuid() == 0:  # the kernel half needs PROG_TEST_RUN
        assert figures["kernel_ns_per_run"] > 0 and figures["vm_to_kernel_time_ratio"] > 0
