"""Pure-Python eBPF assembler, DSL and disassembler (no syscalls, any OS)."""
