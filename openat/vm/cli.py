"""``python -m openat.vm run FILE [--mem HEX] [--ctx HEX] [--trace]``: run a program in the machine.

FILE is LLVM-syntax assembly (``.s``, as :func:`openat.asm.assemble` reads it), raw
instruction bytes (anything else; ``-`` for stdin; ``--hex`` for base16 text), or a section
of an ELF object (``FILE.o[:SECTION]``, which needs :mod:`openat.elf`). ``--map FD=TYPE:KEY:VALUE:ENTRIES``
makes a map the program's ``ld_pseudo rN, 1, FD`` refers to; after the run its contents are
printed. Exit status: 0 when the program ran to its exit, 1 when it (or its input) is wrong,
2 for a usage error. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, Optional, Sequence, Union

from ..asm.errors import AsmError, AsmSyntaxError
from ..asm.program import Program
from ..asm.text import assemble_program
from .errors import VmError
from .machine import DEFAULT_BUDGET, Machine
from .maps import RingBufMap, VmMap, create_map
from .plugin import parse_base16
from .trace import printable

__all__ = ["main"]

PROG = "python -m openat.vm"
_MAP_TYPES = {"array": 2, "hash": 1, "percpu_array": 6, "percpu_hash": 5, "ringbuf": 27}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Run an eBPF program in openat's pure-Python machine.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a program and print r0 (or trace it)")
    run.add_argument("file", help="a .s file, raw instruction bytes ('-': stdin), or FILE.o[:SECTION]")
    run.add_argument("--mem", metavar="HEX", help="the packet, as hex bytes: r1 points to it, r2 holds its length")
    run.add_argument("--ctx", metavar="HEX", help="the context r1 points to, as hex bytes")
    run.add_argument("--trace", action="store_true", help="print every step: instruction and what it changed")
    run.add_argument("--hex", action="store_true", help="FILE holds base16 text instead of raw bytes")
    run.add_argument("--isa", default="v4", choices=("v1", "v2", "v3", "v4"), help="highest ISA level (default v4)")
    run.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help=f"instruction budget (default {DEFAULT_BUDGET})")
    run.add_argument("--map", action="append", default=[], metavar="FD=TYPE:KEY:VALUE:ENTRIES",
                     help=f"a map for ld_pseudo rN, 1, FD; TYPE one of {', '.join(_MAP_TYPES)} (repeatable)")
    return parser


def _hex_argument(option: str, text: Optional[str]) -> Optional[bytes]:
    if text is None:
        return None
    data = parse_base16(text.replace(",", " ").replace("0x", "").encode())
    if data is None:
        raise VmError(f"{option}: {text!r} is not hex bytes (such as 'de ad be ef')")
    return data


def _map_argument(spec: str) -> tuple:
    try:
        fd_text, geometry = spec.split("=", 1)
        kind, key, value, entries = geometry.split(":")
        fd = int(fd_text, 0)
        map_type = _MAP_TYPES[kind]
        sizes = int(key, 0), int(value, 0), int(entries, 0)
    except (ValueError, KeyError):
        raise VmError(f"--map {spec!r}: expected FD=TYPE:KEY:VALUE:ENTRIES with TYPE one of {', '.join(_MAP_TYPES)}") from None
    try:
        return fd, create_map(map_type, *sizes, name=f"fd {fd}")
    except ValueError as error:
        raise VmError(f"--map {spec!r}: {error}") from None


def _program(path: str, as_hex: bool) -> Union[Program, bytes]:
    base = path.partition(":")[0]
    if base.endswith(".o"):
        raise VmError(f"{base}: running ELF objects needs openat.elf (ELF object support), which this openat does not have")
    if path.endswith(".s"):
        with open(path, encoding="utf-8") as handle:
            return assemble_program(handle.read(), callx=True)
    if path == "-":
        raw = sys.stdin.buffer.read()
    else:
        with open(path, "rb") as handle:
            raw = handle.read()
    if as_hex:
        data = parse_base16(raw.replace(b",", b" ").replace(b"0x", b""))
        if data is None:
            raise VmError(f"{path}: not hex bytes (--hex)")
        return data
    return raw


def _print_maps(maps: Dict[int, VmMap]) -> None:
    for fd, bpf_map in sorted(maps.items()):
        if isinstance(bpf_map, RingBufMap):
            for record in bpf_map.take():
                print(f"map {fd} record: {record.hex(' ')}")
            continue
        for key, value in bpf_map.items():
            if any(value):
                print(f"map {fd} [{key.hex(' ')}] = {value.hex(' ')}")


def _run(args: argparse.Namespace) -> int:
    maps = dict(_map_argument(spec) for spec in args.map)
    machine = Machine(_program(args.file, args.hex), isa=args.isa, maps=maps or None, budget=args.budget)
    ctx, mem = _hex_argument("--ctx", args.ctx), _hex_argument("--mem", args.mem)
    if args.trace:
        trace = machine.trace(ctx=ctx, mem=mem)
        sys.stdout.write(trace.text())
        if trace.error is not None:
            return 1
        result = trace.result or 0
    else:
        result = machine.run(ctx=ctx, mem=mem)
        for message in machine.printk:
            print(f"printk: {printable(message)}", file=sys.stderr)
    _print_maps(maps)
    signed = result - (1 << 64) if result >> 63 else result
    print(f"r0 = {result:#x} ({signed})")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:  # the reader (head, less) has seen enough
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so that the exit's flush cannot fail again
        return 0
    except AsmSyntaxError as error:
        print(f"{PROG}: error: {args.file}:{error.line}:{error.column}: {error.reason}", file=sys.stderr)
    except (AsmError, VmError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        print(f"{PROG}: error: {args.file}: {reason}", file=sys.stderr)
    return 1

