"""The floor probe: the least any openat() tracer must do, built with openat.asm.

Issue 16 measures openat's in-kernel cost against it. On the attach point the
tracer uses, it does only the irreducible work: find out whether this is an
openat() (on ``sys_exit`` every syscall runs the program), reserve a record in
a ring buffer, read the file name into it with ``probe_read_user_str`` and
submit it. No identity, no timestamp, no flags, no return value, no lost
count, no wakeup (``BPF_RB_NO_WAKEUP``: the reader polls on a timer), and only
openat(), not open() and openat2(): everything the tracer does beyond this is
what the ratio to the floor prices.

Run as root: ``python -m bench.floor [--attach tp_btf|raw_tp|tracepoint]``.
It prints every name it reads, one a line, flushed per batch, so the bench
drives it like any tracer (launch, marker line, generator, SIGINT).
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Optional

from openat.asm import R0, R1, R2, R3, R6, R7, R10, W2, Program
from openat.link import raw_tracepoint, tracepoint, tracing
from openat.syscalls import MapType, RingBuffer, map_create, prog_load
from openat.syscalls.btf import vmlinux_btf
from openat.syscalls.tracefs import find_tracefs
from openat.tracer.kernel_layout import KernelLayout, discover_layout
from openat.tracer.records import DEFAULT_FILENAME_SIZE, SYSCALL_OPENAT
from openat.uapi import BPF_RB_NO_WAKEUP

MODES = ("tp_btf", "raw_tp", "tracepoint")
EVENTS = "events"
RING_SIZE = 1 << 20  # the tracer's default ring
NAME_SIZE = DEFAULT_FILENAME_SIZE  # the tracer's default name buffer
STACK_REGS = -64  # raw_tp: the pt_regs span holding the syscall number and the name pointer


def _read_name(p: Program, name_ptr) -> None:
    """Reserve NAME_SIZE bytes, probe_read_user_str the name into them, submit."""
    p.mov(R7, name_ptr)  # survives the reserve call
    p.ld_map_fd(R1, EVENTS)
    p.mov(R2, NAME_SIZE)
    p.mov(R3, 0)
    p.call("ringbuf_reserve")
    p.jeq(R0, 0, "out")
    p.mov(R6, R0)
    p.mov(R1, R6)
    p.mov(R2, NAME_SIZE)
    p.mov(R3, R7)
    p.call("probe_read_user_str")
    p.mov(R1, R6)
    p.mov(R2, BPF_RB_NO_WAKEUP)
    p.call("ringbuf_submit")
    p.label("out")
    p.mov(R0, 0)
    p.exit()


def build(mode: str, layout: KernelLayout) -> Program:
    """The floor program for ``mode``: sys_exit (tp_btf, raw_tp) or syscalls:sys_exit_openat."""
    p = Program(isa="v3")
    number = layout.syscall_numbers[SYSCALL_OPENAT]
    name_arg = layout.exit_arg_offsets[1]  # openat(dfd, name, flags): the second argument
    if mode == "tracepoint":
        # sys_exit_openat, as openat's tracepoint mode: the name pointer from
        # the user registers (bpf_task_pt_regs), where the name's page is resident.
        p.call("get_current_task_btf")
        p.mov(R1, R0)
        p.call("task_pt_regs")
        p.ldxdw(R3, R0, name_arg)
    elif mode == "tp_btf":
        p.ldxdw(R6, R1, 0)  # args[0]: the user pt_regs, a BTF pointer
        p.ldxw(W2, R6, layout.syscall_nr_offset)
        p.jne(R2, number, "out")
        p.ldxdw(R3, R6, name_arg)
    elif mode == "raw_tp":
        # One probe_read_kernel of the span holding the number and the name
        # pointer, as the tracer does (x86_64: si and orig_ax, 24 bytes).
        first = min(layout.syscall_nr_offset, name_arg)
        span = max(layout.syscall_nr_offset, name_arg) + 8 - first
        p.ldxdw(R3, R1, 0)
        p.add(R3, first)
        p.mov(R1, R10)
        p.add(R1, STACK_REGS)
        p.mov(R2, span)
        p.call("probe_read_kernel")
        p.ldxw(W2, R10, STACK_REGS + layout.syscall_nr_offset - first)
        p.jne(R2, number, "out")
        p.ldxdw(R3, R10, STACK_REGS + name_arg - first)
    else:
        raise ValueError(f"unknown floor mode {mode!r}; choose one of {', '.join(MODES)}")
    _read_name(p, R3)
    return p


def attach(mode: str, ring_map, layout: KernelLayout, btf) -> list:
    """Load and attach the floor; returns what must stay open."""
    code = build(mode, layout).encode({EVENTS: ring_map})
    if mode == "tp_btf":
        prog = tracing.load(code, "tp_btf", "sys_exit", btf=btf, name="floor_btf_exit")
        return [prog, tracing.attach(prog, "tp_btf sys_exit")]
    if mode == "raw_tp":
        prog = prog_load(code, raw_tracepoint.RAW_TRACEPOINT_PROG_TYPE, name="floor_raw_exit")
        return [prog, raw_tracepoint.attach(prog, "sys_exit")]
    prog = prog_load(code, tracepoint.TRACEPOINT_PROG_TYPE, name="floor_tp_exit")
    return [prog, tracepoint.attach(prog, "syscalls", "sys_exit_openat")]


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attach", choices=MODES, default="tp_btf")
    args = parser.parse_args(argv)
    btf = vmlinux_btf() if args.attach == "tp_btf" else None
    layout = discover_layout(find_tracefs(), btf)
    out = sys.stdout.buffer
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    def show(record: memoryview) -> None:
        out.write(bytes(record).split(b"\0", 1)[0] + b"\n")

    with map_create(MapType.RINGBUF, 0, 0, RING_SIZE, name=EVENTS) as ring_map:
        held = attach(args.attach, ring_map, layout, btf)
        print(f"floor: attached via {args.attach}", file=sys.stderr, flush=True)
        with RingBuffer(ring_map) as ring:
            while not stop:
                ring.poll(timeout_ms=2, callback=show)  # no wakeups: a short timer keeps the ring from filling
                out.flush()
            ring.consume(show)
            out.flush()
        for item in reversed(held):
            item.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
