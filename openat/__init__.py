"""openat: a pure-Python eBPF assembler and loader, and the openat() tracer built on it."""

__version__ = "0.1.0"
