"""Print every openat() on the machine, from a clang-compiled BPF object loaded in pure Python.

What it shows: openat.elf loading what the rest of the world builds. The
object (examples/elf_opensnoop.bpf.c, libbpf-tools style: a tracepoint, a
per-CPU scratch map, a perf event array, a ``const volatile`` filter in
.rodata) was compiled by clang on some machine; here ``elf.load_spec``
reads it, ``spec.variables["targ_tgid"].set()`` sets the filter before the
load freezes .rodata, ``spec.load()`` creates the maps and loads the program
(CO-RE, BTF and line info included), ``attach()`` puts it on the tracepoint
its section names, and openat.syscalls.PerfBuffer reads the events, one
ring per CPU, decoded with the event's layout from the object's BTF.

Run it as root (a prebuilt object is committed beside this file; rebuild it
with the commands in the C source's header)::

    sudo python examples/elf_opensnoop.py                      # until Ctrl-C
    sudo python examples/elf_opensnoop.py --pid 1234 --seconds 10
    sudo python examples/elf_opensnoop.py --object my.bpf.o
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from openat import elf
from openat.syscalls import PerfBuffer
from openat.tracer.output import escape

HERE = os.path.dirname(os.path.abspath(__file__))
OBJECT = os.path.join(HERE, "elf_opensnoop.bpf.o")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--object", default=OBJECT, help="the compiled object (default: the prebuilt one here)")
    parser.add_argument("--pid", type=int, default=0, help="only this process (default: every one)")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (default: at Ctrl-C)")
    args = parser.parse_args(argv)

    spec = elf.load_spec(args.object)
    spec.variables["targ_tgid"].set(args.pid)  # in .rodata: the verifier sees the constant
    event_type = spec.maps["scratch"].value_type  # struct event, from the object's BTF
    fields = {member.name: member.byte_offset for member in event_type.members}

    def show(cpu: int, data: memoryview) -> None:
        pid = int.from_bytes(data[fields["pid"] : fields["pid"] + 4], "little")
        flags = int.from_bytes(data[fields["flags"] : fields["flags"] + 4], "little")
        comm = bytes(data[fields["comm"] : fields["comm"] + 16]).split(b"\0", 1)[0]
        name = bytes(data[fields["filename"] :]).split(b"\0", 1)[0]
        print(f"{pid:<7} {escape(comm):<16} 0x{flags:<6x} {escape(name)}", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with spec.load() as coll, coll.programs["trace_openat"].attach():
        with PerfBuffer(coll.maps["events"], show, lost_callback=lambda cpu, n: print(f"cpu {cpu}: {n} events lost", file=sys.stderr)) as perf:
            print(f"{'PID':<7} {'COMM':<16} {'FLAGS':<8} FILE", flush=True)
            deadline = time.monotonic() + args.seconds if args.seconds else None
            try:
                while deadline is None or time.monotonic() < deadline:
                    perf.poll(100)
                perf.consume()
            except KeyboardInterrupt:
                pass
            except BrokenPipeError:  # the reader of our output went away (| head): nothing more to say
                sys.stdout = open(os.devnull, "w")
    return 0


if __name__ == "__main__":
    sys.exit(main())
