"""Side-by-side benchmark of `python -m openat` against bpftrace and libbpf-tools' opensnoop.

Run from the repository root as ``python -m bench`` (``--quick`` for a smoke run).
What each figure means and how it is measured: docs/bench.md.
"""
